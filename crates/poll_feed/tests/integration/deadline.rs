//! Runs stop before their Lambda deadline and the next run continues where they stopped.
//!
//! A large backlog: 5,000 events over pages of 500, with a Lambda deadline so short that one run
//! cannot forward them all. Each run stops cleanly before its deadline, checkpoints where it
//! stopped, and the next run continues there: nothing lost, nothing sent twice, within the call
//! budget of issue 7 (≤ 0.01 S3 writes and ≤ 0.11 SQS calls per forwarded event). And a DMM
//! slower than the time left cannot push a run past its deadline either.

use std::time::Duration;

use crate::common::*;
use dmm_simulator::{Fault, FaultKind};
use local_stack::InvokeError;

const EVENTS: usize = 5_000;
/// With 1 s of margin, a run starts pages and batches during its first 0.5 s only...
const LAMBDA_TIMEOUT: Duration = Duration::from_millis(1_500);
const MARGIN_MS: &str = "1000";
/// ...and the 500 SendMessageBatch calls take at least 2 s, so no run can forward everything.
const SQS_LATENCY: Duration = Duration::from_millis(4);

#[tokio::test]
async fn a_5000_event_backlog_is_forwarded_over_several_pages_and_invocations() {
    let stack = Stack::start(500).await;
    let agreements: Vec<String> = (0..37).map(|i| format!("agr-{i}")).collect();
    let events = stack
        .sim
        .emit_bulk("AccessActivatedEvent", &agreements, EVENTS)
        .unwrap();
    let all: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    // The queue is the gate's stub (moto's SQS slows down with every message queued; see
    // gate.rs); S3 and Secrets Manager are moto.
    let gate = stack.gate().await;
    gate.stub_sqs(SQS_LATENCY);
    let function = stack
        .function_via(&gate, &[("deadline_margin_ms", MARGIN_MS)])
        .await;
    let mark = function.log_mark();

    let mut summaries: Vec<Summary> = Vec::new();
    loop {
        // Never a timeout: the run stops on its own before the deadline.
        let summary = run(&function, LAMBDA_TIMEOUT).await.unwrap();
        // The checkpoint is exactly where the run says it stopped.
        assert_eq!(stack.checkpoint().await, summary.last_event_id);
        summaries.push(summary.clone());
        if summary.caught_up {
            break;
        }
        assert!(summaries.len() < 200, "no progress: {summaries:?}");
    }

    assert!(
        summaries.len() >= 4,
        "the deadline did not cut the runs short: {summaries:?}"
    );
    let forwarded: u64 = summaries.iter().map(|s| s.forwarded).sum();
    let skipped: u64 = summaries.iter().map(|s| s.skipped).sum();
    let pages: u64 = summaries.iter().map(|s| s.pages).sum();
    assert_eq!((forwarded, skipped), (EVENTS as u64, 0));
    assert!(pages > (EVENTS / 500) as u64, "{summaries:?}");
    assert_eq!(
        summaries.last().unwrap().last_event_id.as_deref(),
        Some(all[EVENTS - 1].as_str())
    );
    let page_lines = json_logs(&function, mark)
        .iter()
        .filter(|l| l["message"] == "feed page processed")
        .count();
    assert_eq!(page_lines as u64, pages);

    // Warm invocations reuse the API key read at the first one (ADR 011).
    assert_eq!(gate.calls("secretsmanager.GetSecretValue"), 1);

    // Every event sent exactly once, in feed order, in batches of at most ten.
    let batches = gate.batches();
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 10));
    assert_eq!(batches.concat(), all);
    // Issue 7's budget per forwarded event.
    assert!(
        batches.len() * 100 <= EVENTS * 11,
        "{} SendMessageBatch calls",
        batches.len()
    );
    assert!(
        gate.s3_puts() * 100 <= EVENTS,
        "{} checkpoint writes",
        gate.s3_puts()
    );

    // And the queue holds exactly the feed, byte for byte, in order.
    let messages = gate.stub_queue();
    let served = stack.served_feed().await;
    assert_eq!(messages.len(), EVENTS);
    for (i, (message, raw)) in messages.iter().zip(&served).enumerate() {
        assert_eq!(message.deduplication_id, all[i]);
        assert_eq!(&message.body, raw, "event {i}");
        assert_eq!(message.group_id, agreements[i % agreements.len()]);
    }
}

/// A DMM that answers too slowly cannot make the run overrun its Lambda deadline: it stops
/// before it, with an error saying why, and the next run continues from the checkpoint.
#[tokio::test]
async fn a_dmm_slower_than_the_time_left_cannot_push_the_run_past_its_deadline() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let first = sim.emit("AccessActivatedEvent", "agr-1").id;
    let function = stack.function(&[("deadline_margin_ms", "1000")]).await;
    assert_eq!(run(&function, TIMEOUT).await.unwrap().forwarded, 1);

    let second = sim.emit("AccessUpdatedEvent", "agr-1").id;
    // Slower than the whole invocation (but within the 10 s request timeout).
    sim.inject_fault(Fault::new(FaultKind::Delay { ms: 6_000 }).on_path("/api/events"))
        .unwrap();
    let result = run(&function, Duration::from_secs(3)).await;
    let Err(InvokeError::Function {
        error_type,
        error_message: message,
    }) = result
    else {
        panic!("expected a function error before the deadline, got {result:?}")
    };
    assert_eq!(error_type, "DmmUnavailable");
    assert!(message.contains("before the Lambda deadline"), "{message}");
    assert_eq!(stack.checkpoint().await.as_deref(), Some(first.as_str()));

    // The same (warm) process runs again.
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (summary.forwarded, summary.last_event_id.as_deref()),
        (1, Some(second.as_str()))
    );
}
