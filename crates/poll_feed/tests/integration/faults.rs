//! Faults outside poll_feed: DMM failing (5xx, 429, slow, garbled), a wrong API key, missing or
//! malformed configuration, an unreadable checkpoint. Transient faults are recovered without
//! losing an event; permanent ones fail the invocation with a message that names the cause.

use std::time::{Duration, Instant};

use crate::common::*;
use dmm_simulator::{Fault, FaultKind};
use local_stack::{InvokeError, with_overrides};

const EVENTS_ROUTE: &str = "GET /api/events";

fn feed_requests(stack: &Stack) -> u64 {
    stack
        .sim
        .request_counts()
        .get(EVENTS_ROUTE)
        .copied()
        .unwrap_or(0)
}

fn function_error(result: Result<Summary, InvokeError>) -> (String, String) {
    match result {
        Err(InvokeError::Function {
            error_type,
            error_message,
        }) => (error_type, error_message),
        other => panic!("expected a function error, got {other:?}"),
    }
}

/// Forwarded event ids, in queue order.
async fn forwarded_ids(stack: &Stack) -> Vec<String> {
    stack
        .drain()
        .await
        .into_iter()
        .map(|m| m.deduplication_id)
        .collect()
}

#[tokio::test]
async fn dmm_5xx_429_slow_and_garbled_pages_are_retried_without_loss() {
    let stack = Stack::start(2).await;
    let sim = &stack.sim;
    let mut expected: Vec<String> = (0..5)
        .map(|i| sim.emit("AccessActivatedEvent", &format!("agr-{i}")).id)
        .collect();
    sim.inject_fault(
        Fault::new(FaultKind::Status { status: 500 })
            .times(2)
            .on_path("/api/events"),
    )
    .unwrap();
    sim.inject_fault(Fault::new(FaultKind::Status { status: 503 }).on_path("/api/events"))
        .unwrap();
    let function = stack.function(&[("dmm_request_timeout_ms", "300")]).await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (summary.forwarded, summary.pages, summary.caught_up),
        (5, 4, true)
    );
    // Three failed attempts, then the pages 2 + 2 + 1 + the empty one.
    assert_eq!(feed_requests(&stack), 3 + 4);
    assert_eq!(forwarded_ids(&stack).await, expected);

    // 429 with Retry-After: the client waits as told, then carries on.
    let more: Vec<String> = (5..8)
        .map(|i| sim.emit("AccessUpdatedEvent", &format!("agr-{i}")).id)
        .collect();
    sim.inject_fault(
        Fault::new(FaultKind::TooManyRequests {
            retry_after_seconds: 1,
        })
        .on_path("/api/events"),
    )
    .unwrap();
    let started = Instant::now();
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!((summary.forwarded, summary.caught_up), (3, true));
    assert_eq!(forwarded_ids(&stack).await, more);
    expected.extend(more);

    // A response slower than the request timeout, a garbled body and a truncated page: each
    // is retried; nothing is forwarded from a page that did not parse.
    let last: Vec<String> = (8..11)
        .map(|i| sim.emit("AccessDeletedEvent", &format!("agr-{i}")).id)
        .collect();
    for kind in [
        FaultKind::Delay { ms: 1_000 },
        FaultKind::MalformedJson,
        FaultKind::TruncatedPage,
    ] {
        sim.inject_fault(Fault::new(kind).on_path("/api/events"))
            .unwrap();
    }
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (
            summary.forwarded,
            summary.caught_up,
            summary.last_event_id.as_deref()
        ),
        (3, true, Some(last[2].as_str()))
    );
    assert_eq!(forwarded_ids(&stack).await, last);
    assert_eq!(stack.checkpoint().await.as_deref(), Some(last[2].as_str()));
}

#[tokio::test]
async fn dmm_down_beyond_the_retries_fails_the_run_and_the_next_run_catches_up() {
    let stack = Stack::start(1000).await;
    let sim = &stack.sim;
    let first = sim.emit("AccessActivatedEvent", "agr-1").id;
    let function = stack.function(&[]).await;
    assert_eq!(run(&function, TIMEOUT).await.unwrap().forwarded, 1);
    assert_eq!(forwarded_ids(&stack).await, [first.as_str()]);

    let second = sim.emit("AccessDeactivatedEvent", "agr-1").id;
    sim.inject_fault(
        Fault::new(FaultKind::Status { status: 502 })
            .times(100)
            .on_path("/api/events"),
    )
    .unwrap();
    let before = feed_requests(&stack);
    let (error_type, message) = function_error(run(&function, TIMEOUT).await);
    assert_eq!(error_type, "DmmUnavailable");
    assert!(
        message.contains("502")
            && message.contains("/api/events")
            && message.contains("5 attempts"),
        "{message}"
    );
    // Bounded retries: the first attempt and four more.
    assert_eq!(feed_requests(&stack) - before, 5);
    assert_eq!(stack.checkpoint().await.as_deref(), Some(first.as_str()));
    assert!(forwarded_ids(&stack).await.is_empty());

    sim.clear_faults();
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(
        (summary.forwarded, summary.last_event_id.as_deref()),
        (1, Some(second.as_str()))
    );
    assert_eq!(forwarded_ids(&stack).await, [second]);
}

#[tokio::test]
async fn a_rejected_api_key_is_reported_clearly_and_not_retried() {
    let stack = Stack::start_with(StackOptions {
        secret_value: Some("wrong-key-4711".to_owned()),
        ..StackOptions::page_size(1000)
    })
    .await;
    stack.sim.emit("AccessActivatedEvent", "agr-1");
    let function = stack.function(&[]).await;
    let mark = function.log_mark();
    let (error_type, message) = function_error(run(&function, TIMEOUT).await);
    assert_eq!(error_type, "DmmUnauthorized");
    assert_eq!(
        message,
        "reading the DMM event feed failed: DMM rejected the API key with 401 on GET \
         /api/events: check the secret named by `dmm_api_key_secret_name` and the key's \
         permissions"
    );
    // A configuration error, not a transient one: one request, no retries.
    assert_eq!(feed_requests(&stack), 1);
    assert_eq!(stack.checkpoint().await, None);
    assert!(stack.drain().await.is_empty());
    let logs = function.logs_since(mark);
    assert!(
        logs.iter().any(|l| l.json().is_some_and(
            |j| j["level"] == "ERROR" && j["error"].as_str().is_some_and(|e| e.contains("401"))
        )),
        "{logs:#?}"
    );
    for line in &logs {
        assert!(
            !line.text.contains("wrong-key-4711"),
            "key logged: {}",
            line.text
        );
        assert!(
            !line.text.contains(stack.sim.api_key()),
            "key logged: {}",
            line.text
        );
    }

    // A secret that does not exist is named in the error, too.
    let function = stack
        .function(&[("dmm_api_key_secret_name", "no-such-secret")])
        .await;
    let (error_type, message) = function_error(run(&function, TIMEOUT).await);
    assert_eq!(error_type, "DmmApiKeySecret");
    assert!(
        message.starts_with(
            "the DMM API key secret `no-such-secret` cannot be used: ResourceNotFoundException"
        ),
        "{message}"
    );
    assert_eq!(feed_requests(&stack), 1);
}

/// Needs no AWS: configuration is checked before anything is called.
#[tokio::test]
async fn missing_or_malformed_settings_fail_every_invocation_naming_the_variable() {
    let complete = [
        ("dmm_base_url", "http://127.0.0.1:9"),
        ("dmm_api_key_secret_name", "dmm-api-key"),
        ("bucket_name", "state"),
        ("sqs_queue_url", "http://127.0.0.1:9/123456789012/q.fifo"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    let mut cases: Vec<(Vec<(String, String)>, String)> = Vec::new();
    for missing in [
        "dmm_base_url",
        "dmm_api_key_secret_name",
        "bucket_name",
        "sqs_queue_url",
    ] {
        let env = complete
            .iter()
            .filter(|(k, _)| *k != missing)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        cases.push((
            env,
            format!("environment variable `{missing}` is required but not set"),
        ));
    }
    let base: Vec<(String, String)> = complete
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // Terraform renders an unset variable as an empty string: that is missing too.
    cases.push((
        with_overrides(base.clone(), &[("bucket_name", "  ")]),
        "environment variable `bucket_name` is required but not set".to_owned(),
    ));
    for (name, value) in [
        ("forward_all_events", "yes"),
        ("deadline_margin_ms", "10s"),
        ("dmm_request_timeout_ms", "-1"),
        ("dmm_base_url", "dmm.example.com"),
    ] {
        cases.push((
            with_overrides(base.clone(), &[(name, value)]),
            format!("environment variable `{name}` is invalid: "),
        ));
    }

    for (env, expected) in cases {
        let function = start_function(env).await;
        for _ in 0..2 {
            // Every invocation reports it, and the process stays up (no crash loop).
            let (error_type, message) = function_error(run(&function, TIMEOUT).await);
            assert_eq!(error_type, "InvalidConfiguration");
            assert!(message.starts_with(&expected), "{message} vs {expected}");
        }
        // Said once at start, too, where an operator looks first.
        let at_start = function
            .logs()
            .iter()
            .filter_map(local_stack::LogLine::json)
            .filter(|l| l["message"] == "invalid configuration")
            .count();
        assert_eq!(at_start, 1, "{expected}");
    }
}

#[tokio::test]
async fn a_checkpoint_that_cannot_be_read_fails_the_run_before_anything_is_sent() {
    let stack = Stack::start_with(StackOptions {
        least_privilege: true,
        ..StackOptions::page_size(1000)
    })
    .await;
    stack.sim.emit("AccessActivatedEvent", "agr-1");

    // No such bucket: not "no checkpoint yet", so no replay from the beginning.
    let function = stack.function(&[("bucket_name", "no-such-bucket")]).await;
    let (error_type, message) = function_error(run(&function, TIMEOUT).await);
    assert_eq!(error_type, "CheckpointStorage");
    assert!(
        message.contains(
            "could not read the checkpoint `poll_feed/last_event_id` in bucket `no-such-bucket`"
        ),
        "{message}"
    );

    // Access denied (a key outside the prefix the role may read) fails the same way.
    let function = stack
        .function(&[("last_event_id_object_name", "elsewhere/last_event_id")])
        .await;
    let (error_type, message) = function_error(run(&function, TIMEOUT).await);
    assert_eq!(error_type, "CheckpointStorage");
    assert!(
        message.contains("`elsewhere/last_event_id`") && message.contains("AccessDenied"),
        "{message}"
    );
    assert_eq!(
        feed_requests(&stack),
        0,
        "the feed was read without a checkpoint"
    );
    assert!(stack.drain().await.is_empty());

    // The configured key is the one used.
    let function = stack
        .function(&[("last_event_id_object_name", "poll_feed/custom")])
        .await;
    let summary = run(&function, TIMEOUT).await.unwrap();
    assert_eq!(summary.forwarded, 1);
    assert_eq!(
        stack.object("poll_feed/custom").await,
        summary.last_event_id
    );
    assert_eq!(stack.checkpoint().await, None);
}

/// A checkpoint DMM does not know (another tenant's, or a restored backup) is an error, not a
/// silent replay from the beginning.
#[tokio::test]
async fn a_checkpoint_dmm_does_not_know_fails_loudly() {
    let stack = Stack::start(1000).await;
    stack.sim.emit("AccessActivatedEvent", "agr-1");
    stack.put_checkpoint("id-from-another-tenant").await;
    let function = stack.function(&[]).await;
    let (error_type, message) = function_error(run(&function, TIMEOUT).await);
    assert_eq!(error_type, "DmmRequestRefused");
    assert!(
        message.contains("400") && message.contains("id-from-another-tenant"),
        "{message}"
    );
    assert!(stack.drain().await.is_empty());
    assert_eq!(
        stack.checkpoint().await.as_deref(),
        Some("id-from-another-tenant")
    );
}
