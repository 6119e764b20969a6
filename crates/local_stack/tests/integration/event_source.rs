//! The SQS event source emulator against the real moto server from `.venv` (run
//! `scripts/setup.sh` first): these tests fail, never skip, when it is missing.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use local_stack::{DEFAULT_ACCOUNT_ID, LambdaFunction, Moto, SqsEventSource};
use serde_json::Value;

/// The bodies of a delivery's records, in delivery order.
fn bodies(records: &[Value]) -> Vec<&str> {
    records.iter().filter_map(|r| r["body"].as_str()).collect()
}

/// A crashed invocation's batch stays in flight for the visibility timeout, as with Lambda, and
/// then comes back whole and in order. (moto alone would hand out the group's last message
/// first: it skips the earlier ones while the later ones are still marked in flight.)
#[tokio::test]
async fn a_crashed_batch_comes_back_after_the_visibility_timeout_in_fifo_order() {
    let moto = Moto::start().await.unwrap();
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config(&admin));
    let queue_url = sqs
        .create_queue()
        .queue_name("events.fifo")
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let sent = ["first", "second", "third"];
    for body in sent {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .message_group_id("agreement-1")
            .message_deduplication_id(body)
            .send()
            .await
            .unwrap();
    }
    let source = SqsEventSource::new(sqs.clone(), &queue_url)
        .await
        .unwrap()
        .failed_invocations_wait_for_visibility_timeout();
    // Dies before serving: every invocation fails like a crash.
    let crashing = LambdaFunction::start("/bin/false", "crashing", Vec::new())
        .await
        .unwrap();
    let timeout = Duration::from_secs(5);

    let crashed = source.deliver_once(&crashing, timeout).await.unwrap();
    let crashed = crashed.expect("a batch");
    assert!(crashed.invoke_error.is_some());
    assert_eq!(bodies(&crashed.records), sent);
    assert!(
        source
            .deliver_once(&crashing, timeout)
            .await
            .unwrap()
            .is_none(),
        "in flight until the visibility timeout"
    );

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let again = source.deliver_once(&crashing, timeout).await.unwrap();
    let again = again.expect("the batch again");
    assert_eq!(bodies(&again.records), sent);
    assert!(
        again
            .records
            .iter()
            .all(|r| r["attributes"]["ApproximateReceiveCount"] == "2"),
        "{:?}",
        again.records
    );
}
