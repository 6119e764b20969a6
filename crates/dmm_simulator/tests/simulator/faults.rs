//! Fault injection as the client meets it.

use std::time::Duration;

use dmm_simulator::{Fault, FaultKind, Scenario};
use serde_json::Value;

use crate::common::{Harness, agreement};

async fn harness_with_events(count: usize) -> Harness {
    let h = Harness::start(Scenario::default()).await;
    for i in 0..count {
        h.sim.emit("AccessActivatedEvent", &format!("a-{i}"));
    }
    h
}

#[tokio::test]
async fn status_faults_answer_the_next_matching_requests_then_disarm() {
    let h = harness_with_events(1).await;
    h.sim
        .inject_fault(
            Fault::new(FaultKind::Status { status: 503 })
                .times(2)
                .on_path("/api/events"),
        )
        .unwrap();
    h.sim.upsert_agreement(agreement("a-1")).unwrap();
    assert_eq!(
        h.get("/api/access/a-1").await.status(),
        200,
        "other paths are not affected"
    );
    for _ in 0..2 {
        let response = h.get("/api/events").await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 503);
    }
    assert_eq!(h.get("/api/events").await.status(), 200);
    assert_eq!(h.sim.request_counts()["GET /api/events"], 3);
}

#[tokio::test]
async fn status_faults_reject_puts_before_they_are_applied() {
    let h = Harness::start(Scenario::default()).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::Status { status: 500 }))
        .unwrap();
    let response = h.put_json("/api/access/a-1", &agreement("a-1")).await;
    assert_eq!(response.status(), 500);
    assert!(h.sim.puts().is_empty());
    assert_eq!(h.get("/api/access/a-1").await.status(), 404);
}

#[tokio::test]
async fn faults_fire_in_injection_order() {
    let h = harness_with_events(1).await;
    for status in [500, 502] {
        h.sim
            .inject_fault(Fault::new(FaultKind::Status { status }))
            .unwrap();
    }
    assert_eq!(h.get("/api/events").await.status(), 500);
    assert_eq!(h.get("/api/events").await.status(), 502);
    assert_eq!(h.get("/api/events").await.status(), 200);
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_in_seconds() {
    let h = harness_with_events(1).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::TooManyRequests {
            retry_after_seconds: 7,
        }))
        .unwrap();
    let response = h.get("/api/events").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(h.get("/api/events").await.status(), 200);
}

#[tokio::test]
async fn a_delay_makes_a_client_time_out_but_the_put_is_applied() {
    let h = Harness::start(Scenario::default()).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::Delay { ms: 1500 }))
        .unwrap();
    let result = h
        .api(reqwest::Method::PUT, "/api/access/a-1")
        .json(&agreement("a-1"))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    let error = result.expect_err("the client gives up before the response");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(h.sim.puts().len(), 1, "the server processed it anyway");
    assert_eq!(h.get("/api/access/a-1").await.status(), 200);
}

#[tokio::test]
async fn a_delayed_response_arrives_intact_after_the_delay() {
    let h = harness_with_events(1).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::Delay { ms: 300 }))
        .unwrap();
    let started = std::time::Instant::now();
    let events: Vec<Value> = h.get("/api/events").await.json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn malformed_json_keeps_status_and_content_type() {
    let h = harness_with_events(1).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::MalformedJson).on_path("/api/events"))
        .unwrap();
    let response = h.get("/api/events").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/cloudevents-batch+json"
    );
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(h.get("/api/events").await.status(), 200);
}

#[tokio::test]
async fn a_truncated_page_is_a_json_array_cut_in_the_middle() {
    let h = harness_with_events(4).await;
    let full = h.get("/api/events").await.text().await.unwrap();
    h.sim
        .inject_fault(Fault::new(FaultKind::TruncatedPage))
        .unwrap();
    let response = h.get("/api/events").await;
    assert_eq!(response.status(), 200);
    let cut = response.text().await.unwrap();
    assert!(full.starts_with(&cut) && cut.len() < full.len() && cut.starts_with('['));
    assert!(serde_json::from_str::<Value>(&cut).is_err());
}

#[tokio::test]
async fn faults_fire_before_the_key_check_and_count_as_requests() {
    let h = harness_with_events(1).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::Status { status: 502 }))
        .unwrap();
    let response = h.http.get(h.url("/api/events")).send().await.unwrap();
    assert_eq!(
        response.status(),
        502,
        "a gateway fails before DMM checks the key"
    );
    assert_eq!(h.sim.request_counts()["GET /api/events"], 1);
}

#[tokio::test]
async fn cleared_faults_no_longer_fire() {
    let h = harness_with_events(1).await;
    h.sim
        .inject_fault(Fault::new(FaultKind::Status { status: 503 }).times(10))
        .unwrap();
    h.sim.clear_faults();
    assert_eq!(h.get("/api/events").await.status(), 200);
}

#[tokio::test]
async fn nonsense_faults_are_refused() {
    let h = Harness::start(Scenario::default()).await;
    assert!(
        h.sim
            .inject_fault(Fault::new(FaultKind::Status { status: 1000 }))
            .is_err()
    );
    assert!(
        h.sim
            .inject_fault(Fault::new(FaultKind::MalformedJson).times(0))
            .is_err()
    );
}

#[tokio::test]
async fn a_raw_body_is_served_verbatim_with_the_handlers_status() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();
    let raw = r#"{"id": "a-1", "consumer": {"teamId": "t"}, "consumer": {"teamId": "u"}}"#;
    h.sim
        .inject_fault(
            Fault::new(FaultKind::RawBody { body: raw.into() })
                .times(2)
                .on_path("/api/access/a-1"),
        )
        .unwrap();
    for _ in 0..2 {
        let response = h.get("/api/access/a-1").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.text().await.unwrap(), raw);
    }
    let stored: Value = h.get("/api/access/a-1").await.json().await.unwrap();
    assert_eq!(
        stored,
        agreement("a-1"),
        "used up: the stored document again"
    );
    h.sim
        .inject_fault(Fault::new(FaultKind::RawBody { body: raw.into() }).on_path("/api/access/b"))
        .unwrap();
    assert_eq!(
        h.get("/api/access/b").await.status(),
        404,
        "an unknown document stays unknown"
    );
}
