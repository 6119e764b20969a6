//! The event queue as the domain sees it: FIFO messages, and the one operation both poll_feed
//! (forwarding the feed) and manage_iam_policies (reconcile requests) need. The SQS adapter is
//! [`crate::aws::queue`].

use std::future::Future;

/// One SQS FIFO message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub body: String,
    pub group_id: String,
    pub deduplication_id: String,
}

/// An entry SQS did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEntry {
    /// Index into the batch that was sent.
    pub index: usize,
    pub code: String,
    pub message: String,
    /// SQS's verdict that the message itself is at fault, so sending it again cannot succeed.
    pub sender_fault: bool,
}

/// A `SendMessageBatch` call that failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("SendMessageBatch to the event queue failed: {reason}")]
pub struct QueueError {
    pub reason: String,
}

/// The FIFO queue poll_feed forwards to.
pub trait EventQueue {
    /// Sends up to ten messages in one call and returns the entries SQS rejected.
    fn send_batch(
        &self,
        messages: &[QueueMessage],
    ) -> impl Future<Output = Result<Vec<RejectedEntry>, QueueError>> + Send;
}
