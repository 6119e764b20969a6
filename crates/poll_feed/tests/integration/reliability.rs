//! At-least-once forwarding (ADR 001): the checkpoint only moves past events SQS accepted. A
//! crash re-sends instead of skipping, a partial SendMessageBatch failure re-sends only the failed
//! entries, and of two concurrent runs only one may move the checkpoint.

use crate::common::gate::EntryFault;
use crate::common::*;
use dmm_simulator::{Fault, FaultKind};
use local_stack::InvokeError;
use serde_json::{Value, json};

fn ids(events: &[dmm_simulator::CloudEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn a_crash_between_sending_and_checkpointing_resends_rather_than_skips() {
    let stack = Stack::start(5).await;
    let agreements: Vec<String> = (0..3).map(|i| format!("agr-{i}")).collect();
    let events = stack
        .sim
        .emit_bulk("AccessActivatedEvent", &agreements, 8)
        .unwrap();
    let all = ids(&events);
    let gate = stack.gate().await;
    let function = stack.function_via(&gate, &[]).await;

    // Page 1 (5 events) is sent and checkpointed; page 2 (3 events) is sent, then the process
    // dies while its checkpoint write is in flight.
    gate.hold_s3_puts_after(1);
    let (result, ()) = tokio::join!(run(&function, TIMEOUT), async {
        gate.wait_held().await;
        function.kill().await;
    });
    assert!(
        matches!(result, Err(InvokeError::ProcessExited { .. })),
        "{result:?}"
    );
    let sent_before_crash: Vec<String> = gate.batches().concat();
    assert_eq!(
        sent_before_crash, all,
        "everything was sent before the crash"
    );
    assert_eq!(stack.checkpoint().await.as_deref(), Some(all[4].as_str()));

    // The next run (a cold start) continues from the checkpoint: it sends page 2 again.
    gate.hold_s3_puts_after(usize::MAX / 2);
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            forwarded: 3,
            skipped: 0,
            duplicates: 0,
            pages: 2,
            last_event_id: Some(all[7].clone()),
            caught_up: true,
        }
    );
    // A new process: it had to read the API key again.
    assert_eq!(gate.calls("secretsmanager.GetSecretValue"), 2);
    let resent: Vec<String> = gate.batches()[2..].concat();
    assert_eq!(resent, all[5..], "page 2 must be re-sent, not skipped");
    assert_eq!(stack.checkpoint().await.as_deref(), Some(all[7].as_str()));

    // SQS deduplicated the re-sent events: each event is in the queue once, in order.
    let queued: Vec<String> = stack
        .drain()
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect();
    assert_eq!(queued, all);
}

#[tokio::test]
async fn a_partial_batch_failure_resends_only_the_failed_entries() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let regular: Vec<String> = (0..3).map(|i| format!("agr-{i}")).collect();
    let mut events = sim.emit_bulk("AccessUpdatedEvent", &regular, 14).unwrap();
    // In a group of its own, so a re-send cannot overtake another event of its agreement.
    let lonely = sim.emit("AccessActivatedEvent", "agr-lonely");
    events.push(lonely.clone());
    events.extend(sim.emit_bulk("AccessUpdatedEvent", &regular, 10).unwrap());
    let all = ids(&events);
    let served = stack.served_feed().await;

    let gate = stack.gate().await;
    gate.fail_entry(
        &lonely.id,
        EntryFault {
            code: "InternalError",
            sender_fault: false,
            remaining: 2,
        },
    );
    let function = stack.function_via(&gate, &[]).await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!((summary.forwarded, summary.caught_up), (25, true));

    // Batches of ten; the failed entry alone is sent again (twice), nothing else is repeated.
    let batches = gate.batches();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 1, 1, 5]);
    assert_eq!(batches[2], [lonely.id.as_str()]);
    assert_eq!(batches[3], [lonely.id.as_str()]);
    assert_eq!(batches.concat().len(), all.len() + 2);

    let messages = stack.drain().await;
    let queued: Vec<&str> = messages
        .iter()
        .map(|m| m.deduplication_id.as_str())
        .collect();
    let mut sorted_queued = queued.clone();
    sorted_queued.sort_unstable();
    let mut sorted_all: Vec<&str> = all.iter().map(String::as_str).collect();
    sorted_all.sort_unstable();
    assert_eq!(sorted_queued, sorted_all, "each event exactly once");
    // Order within every group is the feed's order.
    let mut expected_groups = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (event, raw) in events.iter().zip(&served) {
        expected_groups
            .entry(event.data["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(raw.clone());
    }
    assert_eq!(by_group(&messages), expected_groups);
    assert_eq!(stack.checkpoint().await.as_deref(), Some(all[24].as_str()));
}

#[tokio::test]
async fn an_entry_sqs_keeps_rejecting_holds_the_checkpoint_before_it() {
    let stack = Stack::start(1000).await;
    let agreements: Vec<String> = (0..4).map(|i| format!("agr-{i}")).collect();
    let events = stack
        .sim
        .emit_bulk("AccessActivatedEvent", &agreements, 25)
        .unwrap();
    let all = ids(&events);
    let gate = stack.gate().await;
    // The fifth event of the second batch fails every time.
    gate.fail_entry(
        &all[14],
        EntryFault {
            code: "InternalError",
            sender_fault: false,
            remaining: u32::MAX,
        },
    );
    let function = stack.function_via(&gate, &[]).await;
    let result = run(&function, TIMEOUT).await;
    let Err(InvokeError::Function {
        error_type,
        error_message,
    }) = result
    else {
        panic!("expected a function error, got {result:?}")
    };
    assert_eq!(error_type, "QueueRejected");
    assert!(
        error_message.contains(&format!("event `{}`", all[14]))
            && error_message.contains("InternalError")
            && error_message.contains("5 attempts"),
        "{error_message}"
    );
    // Everything before the batch holding the rejected event is checkpointed; nothing after it
    // was attempted.
    assert_eq!(stack.checkpoint().await.as_deref(), Some(all[9].as_str()));
    let batches = gate.batches();
    assert_eq!(batches.len(), 2 + 4, "{batches:?}");
    assert!(batches[2..].iter().all(|b| b == &[all[14].clone()]));

    // Once SQS accepts it again, the next run delivers the rest; nothing is lost or doubled.
    gate.clear_entry_faults();
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (summary.forwarded, summary.last_event_id.as_deref()),
        (15, Some(all[24].as_str()))
    );
    let queued: Vec<String> = stack
        .drain()
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect();
    // Each event exactly once. The rejected event comes after the rest of its batch, which SQS
    // had accepted in the first run: within its agreement (agr-2) it now follows a later event.
    // That is the price of re-sending only failed entries; it is harmless because the consumer
    // re-reads the agreement instead of trusting the event (ADR 001).
    let mut expected: Vec<String> = all[..14].to_vec();
    expected.extend_from_slice(&all[15..20]);
    expected.push(all[14].clone());
    expected.extend_from_slice(&all[20..]);
    assert_eq!(queued, expected);
}

#[tokio::test]
async fn events_sqs_cannot_take_are_forwarded_as_a_reduced_trigger() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let before = sim.emit("AccessActivatedEvent", "agr-1");
    // Over the SQS message size limit.
    sim.append_event(json!({
        "specversion": "1.0", "id": "evt-huge", "type": "com.datamesh-manager.events.AccessUpdatedEvent",
        "data": {"id": "agr-1", "blob": "x".repeat(300 * 1024)}
    }))
    .unwrap();
    let rejected = sim.emit("AccessDeactivatedEvent", "agr-2");
    let after = sim.emit("AccessDeletedEvent", "agr-1");
    let served = stack.served_feed().await;
    let gate = stack.gate().await;
    // SQS calls the message itself invalid (e.g. characters outside its allowed set).
    gate.fail_entry(
        &rejected.id,
        EntryFault {
            code: "InvalidMessageContents",
            sender_fault: true,
            remaining: 1,
        },
    );
    let function = stack.function_via(&gate, &[]).await;
    let mark = function.log_mark();
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!((summary.forwarded, summary.caught_up), (4, true));

    let messages = stack.drain().await;
    let dedup: Vec<&str> = messages
        .iter()
        .map(|m| m.deduplication_id.as_str())
        .collect();
    assert_eq!(
        dedup,
        [
            before.id.as_str(),
            "evt-huge",
            after.id.as_str(),
            rejected.id.as_str()
        ]
    );
    assert_eq!(messages[0].body, served[0]);
    assert_eq!(messages[2].body, served[3]);
    let huge: Value = serde_json::from_str(&messages[1].body).unwrap();
    assert_eq!(huge["id"], "evt-huge");
    assert_eq!(
        huge["type"],
        "com.datamesh-manager.events.AccessUpdatedEvent"
    );
    assert_eq!(huge["data"], json!({"id": "agr-1"}));
    assert_eq!(messages[1].group_id, "agr-1");
    let reduced: Value = serde_json::from_str(&messages[3].body).unwrap();
    assert_eq!(reduced["id"], rejected.id.as_str());
    assert_eq!(reduced["data"], json!({"id": "agr-2"}));
    assert_eq!(reduced["dmmIntegrationReduced"], "InvalidMessageContents");
    assert_eq!(messages[3].group_id, "agr-2");

    let warnings: Vec<Value> = json_logs(&function, mark)
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    let warned: Vec<&str> = warnings
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(warned, ["evt-huge", rejected.id.as_str()]);
    for line in function.logs_since(mark) {
        assert!(!line.text.contains("xxxxxxxx"), "payload logged");
    }
}

#[tokio::test]
async fn of_two_concurrent_runs_only_one_moves_the_checkpoint() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let first = ids(&sim
        .emit_bulk(
            "AccessActivatedEvent",
            &["agr-1".to_owned(), "agr-2".to_owned()],
            6,
        )
        .unwrap());
    let a = stack.function(&[]).await;
    let b = stack.function(&[]).await;

    // Round 1 starts without a checkpoint (conditional create), round 2 from one (ETag match).
    for round in [1, 2] {
        let expected_last = if round == 1 {
            first[5].clone()
        } else {
            sim.emit("AccessDeletedEvent", "agr-1");
            sim.emit("AccessDeletedEvent", "agr-2").id
        };
        // A reads the checkpoint, then its feed request is answered slowly; B reads the same
        // checkpoint meanwhile. Whichever writes second must fail.
        sim.inject_fault(Fault::new(FaultKind::Delay { ms: 1_500 }).on_path("/api/events"))
            .unwrap();
        let feed_requests = || {
            sim.request_counts()
                .get("GET /api/events")
                .copied()
                .unwrap_or(0)
        };
        let started_with = feed_requests();
        let (result_a, result_b) = tokio::join!(run(&a, TIMEOUT), async {
            wait_until("A asked for the feed", || feed_requests() > started_with).await;
            run(&b, TIMEOUT).await
        });
        let (winner, loser) = match (&result_a, &result_b) {
            (Ok(summary), Err(e)) | (Err(e), Ok(summary)) => (summary, e),
            other => panic!("round {round}: exactly one run must fail, got {other:?}"),
        };
        let InvokeError::Function {
            error_type,
            error_message,
        } = loser
        else {
            panic!("round {round}: {loser:?}")
        };
        assert_eq!(error_type, "CheckpointConflict", "round {round}");
        assert_eq!(
            error_message,
            "the checkpoint `poll_feed/last_event_id` was changed by another poll_feed run since \
             this run read it; this run stops so that only one run moves the checkpoint"
        );
        assert_eq!(
            winner.last_event_id.as_deref(),
            Some(expected_last.as_str())
        );
        assert_eq!(
            stack.checkpoint().await.as_deref(),
            Some(expected_last.as_str())
        );
        // Both sent; SQS kept one copy of each event.
        let queued = stack.drain().await;
        let expected_count = if round == 1 { 6 } else { 2 };
        assert_eq!(queued.len(), expected_count, "round {round}");
    }
}
