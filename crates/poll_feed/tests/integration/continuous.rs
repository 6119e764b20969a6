//! A deployed run keeps reading the feed after it caught up (ADR 021): an event DMM writes while
//! the run waits is forwarded by that same run, and the run returns only at its deadline margin.

use std::time::{Duration, Instant};

use crate::common::*;

const TIMEOUT: Duration = Duration::from_secs(6);
const MARGIN: Duration = Duration::from_millis(1_000);
const INTERVAL: Duration = Duration::from_millis(300);

#[tokio::test]
async fn an_event_written_while_the_run_waits_is_forwarded_by_the_same_run() {
    let stack = Stack::start(100).await;
    let first = stack.sim.emit("AccessActivatedEvent", "agr-1").id;
    let function = stack
        .function(&[
            ("poll_interval_ms", &INTERVAL.as_millis().to_string()),
            ("deadline_margin_ms", &MARGIN.as_millis().to_string()),
        ])
        .await;
    let started = Instant::now();
    let news = async {
        // Only once the run has forwarded what was there does DMM write more.
        while stack.checkpoint().await.as_deref() != Some(first.as_str()) {
            assert!(
                started.elapsed() < TIMEOUT,
                "the first event was never checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stack.sim.emit("AccessDeactivatedEvent", "agr-1").id
    };
    let (summary, second) = tokio::join!(run(&function, TIMEOUT), news);
    let summary = summary.expect("the run succeeds");
    let returned_after = started.elapsed();

    assert_eq!(
        (
            summary.forwarded,
            summary.last_event_id.as_deref(),
            summary.caught_up
        ),
        (2, Some(second.as_str()), true),
        "{summary:?}"
    );
    let messages = stack.drain().await;
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m.deduplication_id.as_str())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    assert!(
        summary.pages >= 4,
        "the run read the empty feed again while waiting: {summary:?}"
    );
    assert!(
        returned_after >= TIMEOUT - MARGIN - INTERVAL,
        "a continuous run waits for news until its margin; it returned after {returned_after:?}"
    );
    assert!(returned_after < TIMEOUT, "and returns before its deadline");
}

/// `poll_interval_ms=0` keeps the reference integration's behaviour: one read to the end per run.
#[tokio::test]
async fn an_interval_of_zero_returns_as_soon_as_the_run_caught_up() {
    let stack = Stack::start(100).await;
    stack.sim.emit("AccessActivatedEvent", "agr-1");
    let function = stack.function(&[("poll_interval_ms", "0")]).await;
    let started = Instant::now();
    let summary = run(&function, TIMEOUT).await.expect("the run succeeds");
    assert_eq!(
        (summary.forwarded, summary.pages, summary.caught_up),
        (1, 2, true)
    );
    assert!(
        started.elapsed() < TIMEOUT - MARGIN - INTERVAL,
        "returned after {:?}",
        started.elapsed()
    );
}
