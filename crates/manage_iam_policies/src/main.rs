//! manage_iam_policies Lambda: converges IAM for each agreement event from the SQS FIFO queue
//! and reports the outcome back to Data Mesh Manager. Invoked directly with
//! `{"reconcile": "all" | "dry-run"}`, it sweeps every agreement for drift.

use aws_lambda_events::event::sqs::SqsEvent;
use dmm_aws_core::config::{self, process_env};
use dmm_aws_core::handlers::manage_iam_policies::sweep::{SweepReport, SweepRequest};
use dmm_aws_core::handlers::manage_iam_policies::{
    BatchResponse, ManageIamPolicies, ManageIamPoliciesConfig,
};
use dmm_aws_core::{aws, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The two ways the function is invoked. The sweep request comes first: an SQS event is only
/// recognised by its `Records`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Invocation {
    Sweep(SweepRequest),
    Sqs(SqsEvent),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Response {
    Batch(BatchResponse),
    Sweep(Box<SweepReport>),
}

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
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Invocation>| async move {
            let function = function.as_ref().map_err(|e| Error::from(e.clone()))?;
            let context = &event.context;
            let arn = &context.invoked_function_arn;
            Ok::<_, Error>(match event.payload {
                Invocation::Sqs(batch) => Response::Batch(
                    Box::pin(function.handle(batch, arn, context.deadline())).await?,
                ),
                Invocation::Sweep(request) => {
                    let deadline = context.deadline();
                    let sweep = function.sweep(request, arn, &context.request_id, deadline);
                    Response::Sweep(Box::new(Box::pin(sweep).await?))
                }
            })
        },
    ))
    .await
}
