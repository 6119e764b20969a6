//! Lambda's SQS event source mapping, emulated against the moto queue: receive a batch, invoke
//! the function with the event Lambda would build, delete what succeeded, and make reported
//! failures visible again. With this, tests and the demo run feed → SQS → function as deployed.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

use crate::{LambdaFunction, sqs_record};

/// A step of the event source mapping that failed.
#[derive(Debug, thiserror::Error)]
pub enum EventSourceError {
    #[error("SQS {action} failed: {reason}")]
    Sqs {
        action: &'static str,
        reason: String,
    },
    #[error("the function's answer is not a batch response: {0}")]
    Response(Value),
}

/// One delivered batch.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Message ids in delivery order.
    pub message_ids: Vec<String>,
    /// The records of the Lambda SQS event the function was invoked with (body, attributes).
    pub records: Vec<Value>,
    /// Message ids the function reported as failed (all of them when the invocation failed).
    pub failed: Vec<String>,
    /// The invocation's error, when the function itself failed.
    pub invoke_error: Option<String>,
}

/// Totals of [`SqsEventSource::drain`].
#[derive(Debug, Clone, Default)]
pub struct DrainReport {
    pub batches: usize,
    pub delivered: usize,
    pub failed: usize,
}

/// Feeds one FIFO queue into one function, like an event source mapping with
/// `ReportBatchItemFailures` and batch size 10.
///
/// Reported failures are made visible again at once rather than after the visibility timeout, so
/// tests do not wait for it. A batch whose invocation failed as a whole (crash, kill, timeout,
/// function error) is treated the same way unless
/// [`failed_invocations_wait_for_visibility_timeout`](Self::failed_invocations_wait_for_visibility_timeout)
/// is set.
pub struct SqsEventSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    failed_invocations_stay_in_flight: bool,
    /// The queue's visibility timeout.
    visibility_timeout: Duration,
    /// moto's `ReceiveMessage` is not atomic: two at once can both take messages of one FIFO
    /// group (each sees the group idle), which SQS never allows. Consumers sharing this source
    /// therefore receive one at a time; the invocations still run concurrently.
    receiving: tokio::sync::Mutex<()>,
    /// Receipt handles of messages left in flight, with when their visibility timeout ends at
    /// the latest. moto returns such messages out of order once the timeout has passed (it skips
    /// the first of a group while a later one is still marked in flight), so before each receive
    /// the expired ones are made visible explicitly, which restores the group's order.
    left_in_flight: Mutex<Vec<(Instant, String)>>,
}

/// A receipt handle that no longer names the message in flight (the message was received again
/// meanwhile, here by the other consumer after its timeout): the message is back in SQS's hands,
/// so there is nothing left to delete or release. Lambda's mapping shrugs this off too; the
/// message is delivered again, which at-least-once delivery allows.
fn is_stale_handle<E, R>(err: &aws_sdk_sqs::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    matches!(
        err.as_service_error().and_then(|e| e.code()),
        Some("ReceiptHandleIsInvalid" | "MessageNotInflight")
    )
}

/// Ends a delete or release: a stale receipt handle is not a failure (see [`is_stale_handle`]).
fn settled<T, E: aws_sdk_sqs::error::ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    action: &'static str,
    result: Result<T, aws_sdk_sqs::error::SdkError<E, R>>,
) -> Result<(), EventSourceError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_stale_handle(&e) => Ok(()),
        Err(e) => Err(sqs_error(action, e)),
    }
}

fn sqs_error(action: &'static str, err: impl std::fmt::Debug) -> EventSourceError {
    EventSourceError::Sqs {
        action,
        reason: format!("{err:?}"),
    }
}

impl SqsEventSource {
    /// Makes a received message visible again at once.
    async fn release(&self, handle: &str) -> Result<(), EventSourceError> {
        let released = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
        settled("ChangeMessageVisibility", released)
    }

    pub async fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
    ) -> Result<Self, EventSourceError> {
        let queue_url = queue_url.into();
        let attributes = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", e))?;
        let attribute = |name| attributes.attributes().and_then(|a| a.get(&name)).cloned();
        let queue_arn = attribute(QueueAttributeName::QueueArn).unwrap_or_default();
        let visibility_timeout = attribute(QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(30), Duration::from_secs);
        let region = queue_arn
            .split(':')
            .nth(3)
            .unwrap_or("us-east-1")
            .to_owned();
        Ok(Self {
            client,
            queue_url,
            queue_arn,
            region,
            failed_invocations_stay_in_flight: false,
            visibility_timeout,
            receiving: tokio::sync::Mutex::new(()),
            left_in_flight: Mutex::new(Vec::new()),
        })
    }

    /// Leaves the messages of a failed invocation in flight, as Lambda does: they are received
    /// again only after the queue's visibility timeout, and every such receive counts towards
    /// the redrive policy's `maxReceiveCount`. Keep the visibility timeout above the function's
    /// timeout, or a slow invocation's messages reach a second consumer while it still runs.
    pub fn failed_invocations_wait_for_visibility_timeout(mut self) -> Self {
        self.failed_invocations_stay_in_flight = true;
        self
    }

    /// Receives one batch (up to ten messages) and delivers it; `None` when the queue is empty.
    pub async fn deliver_once(
        &self,
        function: &LambdaFunction,
        timeout: Duration,
    ) -> Result<Option<Delivery>, EventSourceError> {
        let receiving = self.receiving.lock().await;
        self.release_expired().await?;
        // Before the request, so that moto's end of the visibility timeout is never earlier.
        let asked = Instant::now();
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?;
        drop(receiving);
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(None);
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| sqs_record(m, &self.queue_arn, &self.region))
            .collect();
        let message_ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect();
        let (failed, invoke_error) = match function
            .invoke(json!({ "Records": &records }), timeout)
            .await
        {
            Ok(response) => (failed_ids(&response)?, None),
            Err(e) => (message_ids.clone(), Some(e.to_string())),
        };
        if invoke_error.is_some() && self.failed_invocations_stay_in_flight {
            let until = asked + self.visibility_timeout;
            self.left_in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(
                    messages
                        .iter()
                        .map(|m| (until, m.receipt_handle().unwrap_or_default().to_owned())),
                );
            return Ok(Some(Delivery {
                message_ids,
                records,
                failed,
                invoke_error,
            }));
        }
        for message in messages {
            let id = message.message_id().unwrap_or_default();
            let handle = message.receipt_handle().unwrap_or_default();
            if failed.iter().any(|f| f == id) {
                // Lambda leaves a failed message invisible until its visibility timeout ends;
                // here it comes back at once so a test does not wait for the timeout.
                self.release(handle).await?;
            } else {
                let deleted = self
                    .client
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await;
                settled("DeleteMessage", deleted)?;
            }
        }
        Ok(Some(Delivery {
            message_ids,
            records,
            failed,
            invoke_error,
        }))
    }

    /// Makes the messages left in flight whose visibility timeout has passed visible, in the
    /// order they were received (see `left_in_flight`). Called with `receiving` held, so no
    /// receive of this source can take them in between.
    async fn release_expired(&self) -> Result<(), EventSourceError> {
        let expired: Vec<String> = {
            let mut left = self
                .left_in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let (expired, waiting) = left.drain(..).partition(|(until, _)| *until <= now);
            *left = waiting;
            expired.into_iter().map(|(_, handle)| handle).collect()
        };
        for handle in expired {
            self.release(&handle).await?;
        }
        Ok(())
    }

    /// Delivers until the queue is empty or `max_batches` batches were delivered.
    pub async fn drain(
        &self,
        function: &LambdaFunction,
        timeout: Duration,
        max_batches: usize,
    ) -> Result<DrainReport, EventSourceError> {
        let mut report = DrainReport::default();
        while report.batches < max_batches {
            let Some(delivery) = self.deliver_once(function, timeout).await? else {
                break;
            };
            report.batches += 1;
            report.delivered += delivery.message_ids.len();
            report.failed += delivery.failed.len();
        }
        Ok(report)
    }
}

fn failed_ids(response: &Value) -> Result<Vec<String>, EventSourceError> {
    response
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .map(|failures| {
            failures
                .iter()
                .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .ok_or_else(|| EventSourceError::Response(response.clone()))
}
