//! poll_feed Lambda: every minute, forwards new Data Mesh Manager events to the SQS FIFO queue.

use dmm_aws_core::handlers::poll_feed::{PollFeed, PollFeedConfig};
use dmm_aws_core::handlers::{configure, diagnostic};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let function = configure(PollFeedConfig::from_env)
        .await
        .map(|(config, sdk)| PollFeed::new(config, &sdk));
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let function = function.as_ref().map_err(|e| diagnostic(e))?;
        Box::pin(function.handle(event.context.deadline()))
            .await
            .map_err(|e| diagnostic(&e))
    }))
    .await
}
