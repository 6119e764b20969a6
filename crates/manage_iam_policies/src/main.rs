//! manage_iam_policies Lambda: converges IAM for each agreement event from the SQS FIFO queue
//! and reports the outcome back to Data Mesh Manager. Invoked directly with
//! `{"reconcile": "all" | "dry-run"}`, it sweeps every agreement for drift.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use dmm_aws_core::handlers::manage_iam_policies::sweep::{SweepReport, SweepRequest};
use dmm_aws_core::handlers::manage_iam_policies::{ManageIamPolicies, ManageIamPoliciesConfig};
use dmm_aws_core::handlers::{configure, diagnostic};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
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
    Batch(SqsBatchResponse),
    Sweep(Box<SweepReport>),
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let function = configure(ManageIamPoliciesConfig::from_env)
        .await
        .map(|(config, sdk)| ManageIamPolicies::new(config, &sdk));
    let function = &function;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Invocation>| async move {
            let function = function.as_ref().map_err(|e| diagnostic(e))?;
            let context = &event.context;
            let arn = &context.invoked_function_arn;
            Ok::<_, Diagnostic>(match event.payload {
                Invocation::Sqs(batch) => Response::Batch(
                    Box::pin(function.handle(batch, arn, context.deadline()))
                        .await
                        .map_err(|e| diagnostic(&e))?,
                ),
                Invocation::Sweep(request) => {
                    let deadline = context.deadline();
                    let sweep = function.sweep(request, arn, &context.request_id, deadline);
                    Response::Sweep(Box::new(Box::pin(sweep).await.map_err(|e| diagnostic(&e))?))
                }
            })
        },
    ))
    .await
}
