//! The SQS FIFO queue poll_feed forwards to.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::describe;
use crate::queue::{EventQueue, QueueError, QueueMessage, RejectedEntry};

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl EventQueue for SqsQueue {
    async fn send_batch(
        &self,
        messages: &[QueueMessage],
    ) -> Result<Vec<RejectedEntry>, QueueError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .message_group_id(&m.group_id)
                    .message_deduplication_id(&m.deduplication_id)
                    .build()
                    .map_err(|e| QueueError {
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError {
                reason: describe(&e),
            })?;
        output
            .failed()
            .iter()
            .map(|f| {
                let index = f.id().parse::<usize>().ok().filter(|&i| i < messages.len());
                index
                    .map(|index| RejectedEntry {
                        index,
                        code: f.code().to_owned(),
                        message: f.message().unwrap_or_default().to_owned(),
                        sender_fault: f.sender_fault(),
                    })
                    .ok_or_else(|| QueueError {
                        reason: format!("SQS reported a failure for unknown entry id `{}`", f.id()),
                    })
            })
            .collect()
    }
}
