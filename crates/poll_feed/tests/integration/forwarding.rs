//! poll_feed forwards the feed to the FIFO queue exactly: bodies byte for byte, one group per
//! agreement, the event id as deduplication id, in feed order; the checkpoint and the summary
//! say where it stopped.

use crate::common::*;
use dmm_simulator::{Fault, FaultKind};
use serde_json::json;

/// Marker in event payloads: it must reach SQS but never a log line.
const PAYLOAD_MARKER: &str = "payload-marker-5f0c9e";

#[tokio::test]
async fn first_run_forwards_the_whole_feed_exactly_and_checkpoints_its_end() {
    let stack = Stack::start_with(StackOptions {
        least_privilege: true,
        ..StackOptions::page_size(3)
    })
    .await;
    let sim = &stack.sim;
    sim.emit("AccessActivatedEvent", "agr-1");
    sim.emit("AccessActivatedEvent", "agr-2");
    // Events exactly as a DMM could send them, with details a re-serialisation would change:
    // key order, unicode, escapes, numbers, nesting, extra attributes.
    let odd = [
        json!({"type": "com.datamesh-manager.events.AccessUpdatedEvent", "id": "evt-odd-1",
               "specversion": "1.0", "source": "https://dmm.example/tenant",
               "data": {"timestamp": "2025-01-01T00:00:00.000Z", "id": "agr-1",
                        "note": format!("Zugriff für Ünïcødé 🚀 \"quoted\" \\ {PAYLOAD_MARKER}")},
               "zExtension": [1, 2.5, -0.0, 1e21, null, true], "aExtension": {"b": 1, "a": 2}}),
        // No data.id: still forwarded, in the stable fallback group.
        json!({"specversion": "1.0", "id": "evt-no-resource",
               "type": "com.datamesh-manager.events.AccessDeletedEvent", "data": {"x": PAYLOAD_MARKER}}),
        // An id SQS does not accept as a deduplication id (spaces): mapped deterministically.
        json!({"specversion": "1.0", "id": "evt with spaces", "type":
               "com.datamesh-manager.events.DataUsageAgreementDeactivatedEvent",
               "data": {"id": "agr-2"}}),
    ];
    for event in odd.clone() {
        sim.append_event(event).unwrap();
    }
    sim.emit("AccessDeactivatedEvent", "agr-1");
    sim.emit("AccessCanceledEvent", "agr-3");
    let served = stack.served_feed().await;
    assert_eq!(served.len(), 7);
    // The odd events were served in the shape given (key order, unicode as UTF-8).
    assert!(served[2].starts_with(
        r#"{"type":"com.datamesh-manager.events.AccessUpdatedEvent","id":"evt-odd-1""#
    ));
    assert!(served[2].contains("Zugriff für Ünïcødé 🚀 \\\"quoted\\\" \\\\"));

    let function = stack.function(&[]).await;
    let mark = function.log_mark();
    let summary = run(&function, TIMEOUT).await.unwrap();
    let last = event_id(&served[6]);
    assert_eq!(
        summary,
        Summary {
            forwarded: 7,
            skipped: 0,
            duplicates: 0,
            // 3 + 3 + 1 events, then the empty page that says "caught up".
            pages: 4,
            last_event_id: Some(last.clone()),
            caught_up: true,
        }
    );
    assert_eq!(stack.checkpoint().await.as_deref(), Some(last.as_str()));

    let messages = stack.drain().await;
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    let served_refs: Vec<&str> = served.iter().map(String::as_str).collect();
    // Byte-identical, and in feed order (so in order within every group).
    assert_eq!(bodies, served_refs);
    let groups: Vec<&str> = messages.iter().map(|m| m.group_id.as_str()).collect();
    assert_eq!(
        groups,
        [
            "agr-1",
            "agr-2",
            "agr-1",
            "dmm-events-without-resource",
            "agr-2",
            "agr-1",
            "agr-3"
        ]
    );
    for (message, raw) in messages.iter().zip(&served) {
        let id = event_id(raw);
        if id == "evt with spaces" {
            assert!(
                message.deduplication_id.starts_with("sha256-")
                    && message.deduplication_id.len() <= 128,
                "{}",
                message.deduplication_id
            );
        } else {
            assert_eq!(message.deduplication_id, id);
        }
    }
    let per_group = by_group(&messages);
    assert_eq!(
        per_group["agr-1"],
        [&served[0], &served[2], &served[5]].map(String::clone)
    );

    // Structured logs: one JSON line per page with counts, and no event payload at INFO.
    let logs = json_logs(&function, mark);
    let pages: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|l| l["message"] == "feed page processed")
        .collect();
    assert_eq!(pages.len(), 4, "{logs:#?}");
    let counts: Vec<(u64, u64, u64)> = pages
        .iter()
        .map(|l| {
            assert_eq!(l["level"], "INFO");
            (
                l["events"].as_u64().unwrap(),
                l["forwarded"].as_u64().unwrap(),
                l["skipped"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(3, 3, 0), (3, 3, 0), (1, 1, 0), (0, 0, 0)]);
    // One CloudWatch Embedded Metric Format line per run, in the same log stream.
    let emf: Vec<&serde_json::Value> = logs.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 1, "{logs:#?}");
    let metrics = emf[0];
    assert_eq!(
        metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "DmmIntegrationAws"
    );
    assert_eq!(metrics["Function"], "poll_feed");
    assert_eq!(metrics["EventsForwarded"], 7.0);
    assert_eq!(metrics["EventsSkipped"], 0.0);
    assert_eq!(metrics["FeedPages"], 4.0);
    // The newest event was emitted moments ago by the simulator.
    let lag = metrics["FeedLagSeconds"]
        .as_f64()
        .expect("feed lag reported");
    assert!((0.0..60.0).contains(&lag), "{lag}");
    for line in function.logs_since(mark) {
        assert!(
            !line.text.contains(PAYLOAD_MARKER),
            "payload logged: {}",
            line.text
        );
        assert!(
            !line.text.contains(sim.api_key()),
            "API key logged: {}",
            line.text
        );
    }

    // The next scheduled run starts at the checkpoint, finds nothing new and writes nothing.
    let again = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        again,
        Summary {
            forwarded: 0,
            skipped: 0,
            duplicates: 0,
            pages: 1,
            last_event_id: Some(last.clone()),
            caught_up: true,
        }
    );
    assert!(stack.drain().await.is_empty());

    // New events later are picked up from the checkpoint, not from the start.
    let newer = sim.emit("AccessRejectedEvent", "agr-4");
    let third = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (third.forwarded, third.last_event_id.as_deref()),
        (1, Some(newer.id.as_str()))
    );
    let messages = stack.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].deduplication_id, newer.id);
    assert_eq!(stack.checkpoint().await.as_deref(), Some(newer.id.as_str()));
}

/// DMM's bytes between and inside events (whitespace, escapes that a JSON library would
/// normalise) reach SQS untouched. The simulator re-serialises its events, so this feed is
/// served verbatim by a tiny server of its own.
#[tokio::test]
async fn bodies_keep_the_exact_bytes_dmm_sent() {
    let first = "{ \"specversion\" : \"1.0\",\n  \"id\":\"raw-1\", \"type\":\"com.datamesh-manager.events.AccessActivatedEvent\",\t\"data\":{\"id\":\"agr-\\u0041\", \"n\": 1.50}\n}";
    let second = "{\"id\":\"raw-2\",\"type\":\"com.datamesh-manager.events.AccessDeletedEvent\",\"data\":{\"id\":\"agr-\u{e9}\"},\"esc\":\"\\/\\u00e9\\n\"}";
    let page = format!("[\n  {first} ,\n\n{second}   ]");
    let feed = RawFeed::start(page, "raw-2").await;

    let stack = Stack::start(1000).await;
    let function = stack.function(&[("dmm_base_url", &feed.url)]).await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!((summary.forwarded, summary.caught_up), (2, true));
    let messages = stack.drain().await;
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, [first, second]);
    // Groups come from the parsed data.id ("\u0041" is "A").
    let groups: Vec<&str> = messages.iter().map(|m| m.group_id.as_str()).collect();
    assert_eq!(groups[0], "agr-A");
    // A non-ASCII id is not a valid FIFO group id: mapped deterministically.
    assert!(groups[1].starts_with("sha256-"), "{}", groups[1]);
    assert_eq!(stack.checkpoint().await.as_deref(), Some("raw-2"));
}

/// Serves one fixed page verbatim, then an empty page after `last_id`.
struct RawFeed {
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl RawFeed {
    async fn start(page: String, last_id: &'static str) -> RawFeed {
        use axum::extract::Query;
        use std::collections::HashMap;
        let app = axum::Router::new().route(
            "/api/events",
            axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                let page = page.clone();
                async move {
                    let body = match q.get("lastEventId").map(String::as_str) {
                        None => page,
                        Some(id) if id == last_id => "[]".to_owned(),
                        Some(other) => panic!("unexpected lastEventId {other}"),
                    };
                    (
                        [("content-type", "application/cloudevents-batch+json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RawFeed { url, server }
    }
}

impl Drop for RawFeed {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Only the agreement events of ADR 016 are forwarded by default; every other event still
/// moves the checkpoint, also when a whole page holds nothing to forward. `forward_all_events`
/// forwards everything.
#[tokio::test]
async fn other_event_types_are_skipped_but_passed_by_the_checkpoint() {
    let stack = Stack::start(4).await;
    let sim = &stack.sim;
    let mut forwarded = Vec::new();
    let mut all = Vec::new();
    for (i, short) in ACTED_ON.iter().enumerate() {
        let id = sim.emit(short, &format!("agr-{i}")).id;
        forwarded.push(id.clone());
        all.push(id);
        // A non-agreement event after each one.
        let other = [
            "TeamCreatedEvent",
            "DataContractCreatedEvent",
            "AccessProvisionedEvent",
        ][i % 3];
        all.push(sim.emit(other, &format!("res-{i}")).id);
    }
    // Types that only look like agreement events (types are matched by the short name after
    // the last dot, ADR 018), and events without a type.
    for (id, event_type) in [
        ("evt-foreign", Some("org.example.events.AccessActivated")),
        ("evt-unprefixed", Some("AccessActivatedEvent")),
        ("evt-untyped", None),
        ("evt-numeric-type", Some("7")),
    ] {
        let mut event = json!({"specversion": "1.0", "id": id, "data": {"id": "agr-x"}});
        if let Some(t) = event_type {
            event["type"] = json!(t);
        }
        if id == "evt-numeric-type" {
            event["type"] = json!(7);
        }
        sim.append_event(event).unwrap();
        all.push(id.to_owned());
    }
    // The feed ends with whole pages of skipped events.
    for i in 0..5 {
        all.push(sim.emit("DataProductCreatedEvent", &format!("dp-{i}")).id);
    }
    let total = all.len() as u64; // 12 + 12 + 4 + 5 = 33
    assert_eq!(total, 33);

    let function = stack.function(&[]).await;
    let mark = function.log_mark();
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            forwarded: 12,
            skipped: 21,
            duplicates: 0,
            pages: 10,
            last_event_id: Some(all[32].clone()),
            caught_up: true,
        }
    );
    assert_eq!(stack.checkpoint().await.as_deref(), Some(all[32].as_str()));
    let queued: Vec<String> = stack
        .drain()
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect();
    assert_eq!(queued, forwarded);
    let per_page: Vec<(u64, u64)> = json_logs(&function, mark)
        .iter()
        .filter(|l| l["message"] == "feed page processed")
        .map(|l| {
            (
                l["forwarded"].as_u64().unwrap(),
                l["skipped"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_page,
        [
            (2, 2),
            (2, 2),
            (2, 2),
            (2, 2),
            (2, 2),
            (2, 2),
            (0, 4),
            (0, 4),
            (0, 1),
            (0, 0)
        ]
    );

    // The next run does not see the skipped events again.
    let again = run(&function, TIMEOUT).await.unwrap();
    assert_eq!((again.pages, again.skipped, again.forwarded), (1, 0, 0));

    // forward_all_events forwards every event (with its own checkpoint and queue here).
    let everything = stack.new_queue("everything.fifo").await;
    let function = stack
        .function(&[
            ("forward_all_events", "true"),
            ("last_event_id_object_name", "poll_feed/all"),
            ("sqs_queue_url", &everything),
        ])
        .await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!((summary.forwarded, summary.skipped), (total, 0));
    let queued: Vec<String> = drain(&stack.sqs, &everything)
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect();
    assert_eq!(queued, all);
    assert_eq!(
        stack.object("poll_feed/all").await.as_deref(),
        Some(all[32].as_str())
    );
}

/// Data product and output port changes are forwarded too (manage_iam_policies reconciles the
/// agreements naming the product), each product in its own group, apart from an agreement that
/// happens to share its id; a product's creation is not.
#[tokio::test]
async fn product_changes_are_forwarded_in_the_product_group() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let changes = [
        sim.emit("DataProductUpdatedEvent", "orders"),
        sim.emit("OutputPortUpdatedEvent", "orders"),
        sim.emit("OutputPortDeletedEvent", "orders"),
        sim.emit("DataProductDeletedEvent", "billing"),
    ];
    sim.emit("DataProductCreatedEvent", "fresh");
    let agreement = sim.emit("AccessActivatedEvent", "orders");

    let function = stack.function(&[]).await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!((summary.forwarded, summary.skipped), (5, 1));
    let queued: Vec<(String, String)> = stack
        .drain()
        .await
        .into_iter()
        .map(|m| (m.deduplication_id, m.group_id))
        .collect();
    let mut expected: Vec<(String, String)> = changes
        .iter()
        .map(|e| {
            let product = e.data["id"].as_str().unwrap();
            (e.id.clone(), format!("data-product:{product}"))
        })
        .collect();
    expected.push((agreement.id, "orders".to_owned()));
    assert_eq!(queued, expected);
}

/// A drop-in replacement: the checkpoint the Python integration left (same key, plain text, here
/// with a trailing newline) is where this one continues.
#[tokio::test]
async fn continues_where_the_reference_integration_stopped() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let done = sim.emit("AccessActivatedEvent", "agr-1").id;
    let new = [
        sim.emit("AccessDeactivatedEvent", "agr-1").id,
        sim.emit("AccessActivatedEvent", "agr-2").id,
    ];
    stack.put_checkpoint(&format!("{done}\n")).await;

    let function = stack.function(&[]).await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (summary.forwarded, summary.last_event_id.as_deref()),
        (2, Some(new[1].as_str()))
    );
    let queued: Vec<String> = stack
        .drain()
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect();
    assert_eq!(queued, new);
    // Written back in the same format: the bare id.
    assert_eq!(stack.checkpoint().await.as_deref(), Some(new[1].as_str()));
}

/// A repeated event id is a duplicate (the real feed may re-send one): forwarded once, counted,
/// and an event under the rebranded `com.entropy-data.events.` namespace is forwarded like the
/// current one, while the echo of a provisioning report is skipped.
#[tokio::test]
async fn repeats_are_duplicates_and_both_namespaces_are_forwarded() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let first = sim.emit("AccessActivatedEvent", "agr-1").id;
    let rebranded = sim
        .emit("com.entropy-data.events.AccessDeactivatedEvent", "agr-2")
        .id;
    sim.repeat_event(&first).unwrap();
    sim.emit("AccessProvisionedEvent", "agr-1");
    let function = stack.function(&[]).await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (summary.forwarded, summary.skipped, summary.duplicates),
        (2, 2, 1),
        "{summary:?}"
    );
    let queued: Vec<String> = stack
        .drain()
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect();
    assert_eq!(queued, [first, rebranded]);
}

/// Every run declares the connector document: version, last event, heartbeat, the run's counts
/// and manage_iam_policies' last batch. A DMM refusing it does not fail the run; a failed run
/// keeps the last heartbeat and says why it failed.
#[tokio::test]
async fn the_connector_document_tells_dmm_the_integration_is_alive() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let last = sim.emit("AccessActivatedEvent", "agr-1").id;
    stack
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("health/manage_iam_policies.json")
        .body(
            json!({"lastBatchAt": "2026-12-01T10:00:00Z", "messages": 3, "granted": 2,
                   "revoked": 0, "errorStatuses": 1, "retries": 0})
            .to_string()
            .into_bytes()
            .into(),
        )
        .send()
        .await
        .unwrap();
    let function = stack.function(&[("connector_id", "aws-test-hub")]).await;
    run(&function, TIMEOUT).await.unwrap();
    let connector = sim.connector("aws-test-hub").expect("registered");
    assert_eq!(connector["info"]["type"], "aws");
    assert_eq!(
        connector["info"]["connectorVersion"],
        env!("CARGO_PKG_VERSION")
    );
    let state = &connector["state"];
    assert_eq!(state["lastEventId"], last.as_str());
    assert_eq!(state["lastRun"]["outcome"], "succeeded");
    assert_eq!(state["lastRun"]["forwarded"], 1);
    let heartbeat = state["lastHeartbeat"].as_str().unwrap().to_owned();
    assert_eq!(state["manageIamPolicies"]["granted"], 2);
    assert_eq!(state["manageIamPolicies"]["errorStatuses"], 1);
    assert_eq!(
        sim.request_counts()["PUT /api/connectors/{id}"],
        1,
        "one write per run"
    );

    // DMM refuses the connector: the run still succeeds, with a WARN.
    sim.inject_fault(Fault::new(FaultKind::Status { status: 422 }).on_path("/api/connectors"))
        .unwrap();
    let next = sim.emit("AccessDeactivatedEvent", "agr-1").id;
    let mark = function.log_mark();
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(summary.last_event_id.as_deref(), Some(next.as_str()));
    let warned = json_logs(&function, mark)
        .into_iter()
        .any(|l| l["outcome"] == "connector_update_failed" && l["level"] == "WARN");
    assert!(warned, "the refused write is logged");

    // The feed fails: the run fails, and the connector says so but keeps the last heartbeat.
    sim.inject_fault(Fault::new(FaultKind::Status { status: 401 }).on_path("/api/events"))
        .unwrap();
    assert!(run(&function, TIMEOUT).await.is_err());
    let state = sim.connector("aws-test-hub").unwrap()["state"].clone();
    assert_eq!(state["lastRun"]["outcome"], "failed");
    assert!(
        state["lastRun"]["error"].as_str().unwrap().contains("401"),
        "{state}"
    );
    assert_eq!(state["lastHeartbeat"], heartbeat.as_str());
    assert_eq!(state["lastEventId"], last.as_str(), "the last stored one");
}
