//! manage_iam_policies Lambda: converges IAM for each agreement event from the SQS FIFO queue
//! and reports the outcome back to Data Mesh Manager.

use aws_lambda_events::event::sqs::SqsEvent;
use dmm_aws_core::config::{self, process_env};
use dmm_aws_core::handlers::manage_iam_policies::{ManageIamPolicies, ManageIamPoliciesConfig};
use dmm_aws_core::{aws, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = process_env();
    telemetry::init(env.optional(config::LOG_LEVEL).as_deref());
    // A configuration error does not end the process: every invocation reports it, naming the
    // variable, where an operator looks first.
    let config = ManageIamPoliciesConfig::from_env(&env)
        .and_then(|config| Ok((config, aws::AwsTimeouts::from_env(&env)?)));
    let function = match config {
        Ok((config, timeouts)) => Ok(ManageIamPolicies::new(
            config,
            &aws::load_sdk_config(timeouts).await,
        )),
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            Err(e)
        }
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        match function {
            Ok(function) => {
                let arn = &event.context.invoked_function_arn;
                Ok(Box::pin(function.handle(event.payload, arn)).await?)
            }
            Err(e) => Err(Error::from(e.clone())),
        }
    }))
    .await
}
