//! poll_feed Lambda: every minute, forwards new Data Mesh Manager events to the SQS FIFO queue.

use dmm_aws_core::config::{self, process_env};
use dmm_aws_core::handlers::poll_feed::{PollFeed, PollFeedConfig};
use dmm_aws_core::{aws, telemetry};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = process_env();
    telemetry::init(env.optional(config::LOG_LEVEL).as_deref());
    // A configuration error does not end the process: every invocation reports it, naming the
    // variable, where an operator looks first.
    let config = PollFeedConfig::from_env(&env)
        .and_then(|config| Ok((config, aws::AwsTimeouts::from_env(&env)?)));
    let function = match config {
        Ok((config, timeouts)) => Ok(PollFeed::new(config, &aws::load_sdk_config(timeouts).await)),
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            Err(e)
        }
    };
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        match function {
            Ok(function) => Box::pin(function.handle(event.context.deadline()))
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.error_type().to_owned(),
                    error_message: e.to_string(),
                }),
            Err(e) => Err(Diagnostic {
                error_type: "InvalidConfiguration".to_owned(),
                error_message: e.to_string(),
            }),
        }
    }))
    .await
}
