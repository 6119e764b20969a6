//! The control API under `/_sim`, for tests that run the simulator as a separate process.

use reqwest::Method;
use serde_json::{Value, json};

use dmm_simulator::Scenario;

use crate::common::{Harness, agreement, event_type};

impl Harness {
    /// A control request: no API key, as the control API needs none.
    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }
}

#[tokio::test]
async fn events_can_be_appended_fully_emitted_or_bulk_generated() {
    let h = Harness::start(Scenario::default()).await;
    let full = json!({
        "specversion": "1.0", "id": "e-1", "type": "org.example.Other", "source": "test",
        "time": null, "subject": null, "data": {"id": "x"}, "principal": "system"
    });
    let response = h
        .control(Method::POST, "/_sim/events", Some(full.clone()))
        .await;
    assert_eq!(response.status(), 200);

    let duplicate = h
        .control(
            Method::POST,
            "/_sim/events",
            Some(json!([{"id": "e-2"}, {"id": "e-1"}])),
        )
        .await;
    assert_eq!(duplicate.status(), 409);

    let emitted: Value = h
        .control(
            Method::POST,
            "/_sim/events/emit",
            Some(json!({"type": "AccessActivatedEvent", "resourceId": "a-1"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(emitted["type"], event_type("AccessActivatedEvent"));

    let bulk: Value = h
        .control(
            Method::POST,
            "/_sim/events/bulk",
            Some(json!({"type": "AccessUpdatedEvent", "resourceIds": ["a-1", "a-2"], "count": 5})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bulk["count"], 5);

    let feed = h.read_feed().await;
    assert_eq!(feed.len(), 7, "the refused batch appended nothing");
    assert_eq!(feed[0], full, "a full event is served exactly as given");
    assert_eq!(feed[1], emitted);
    assert_eq!(feed[2]["id"], bulk["firstId"]);
    assert_eq!(feed[6]["id"], bulk["lastId"]);
    let subjects: Vec<&Value> = feed[2..].iter().map(|event| &event["subject"]).collect();
    assert_eq!(subjects, ["a-1", "a-2", "a-1", "a-2", "a-1"]);
}

#[tokio::test]
async fn agreements_can_be_staged_deleted_and_toggled() {
    let h = Harness::start(Scenario::default()).await;
    let upserted: Value = h
        .control(Method::POST, "/_sim/agreements", Some(agreement("a-1")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(upserted, json!({"id": "a-1"}));
    assert!(h.read_feed().await.is_empty(), "staging is silent");

    let activated = h
        .control(Method::POST, "/_sim/agreements/a-1/activate", None)
        .await;
    assert_eq!(activated.status(), 200);
    assert_eq!(h.get_json("/api/access/a-1").await["info"]["active"], true);
    let deactivated = h
        .control(Method::POST, "/_sim/agreements/a-1/deactivate", None)
        .await;
    assert_eq!(deactivated.status(), 200);
    assert_eq!(h.get_json("/api/access/a-1").await["info"]["active"], false);

    let deleted: Value = h
        .control(Method::DELETE, "/_sim/agreements/a-1", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["type"], event_type("AccessDeletedEvent"));
    assert_eq!(h.get("/api/access/a-1").await.status(), 404);
    let again = h
        .control(Method::DELETE, "/_sim/agreements/a-1", None)
        .await;
    assert_eq!(again.status(), 404);

    let without_id = h
        .control(Method::POST, "/_sim/agreements", Some(json!({"info": {}})))
        .await;
    assert_eq!(without_id.status(), 400);
}

#[tokio::test]
async fn data_products_and_teams_can_be_staged() {
    let h = Harness::start(Scenario::default()).await;
    let product = json!({"id": "orders", "custom": {}, "outputPorts": []});
    let team = json!({"id": "sales", "custom": {"aws-role-name": "r"}});
    h.control(Method::POST, "/_sim/dataproducts", Some(product.clone()))
        .await;
    h.control(Method::POST, "/_sim/teams", Some(team.clone()))
        .await;
    assert_eq!(h.get_json("/api/dataproducts/orders").await, product);
    assert_eq!(h.get_json("/api/teams/sales").await, team);
}

#[tokio::test]
async fn puts_requests_and_faults_are_reachable() {
    let h = Harness::start(Scenario::default()).await;
    h.put_json("/api/access/a-1", &agreement("a-1")).await;
    let puts: Value = h
        .control(Method::GET, "/_sim/puts", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        puts,
        json!([{"path": "/api/access/a-1", "id": "a-1", "body": agreement("a-1")}])
    );

    let counts: Value = h
        .control(Method::GET, "/_sim/requests", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({"PUT /api/access/{id}": 1}));
    let reset = h.control(Method::DELETE, "/_sim/requests", None).await;
    assert_eq!(reset.status(), 204);
    assert!(h.sim.request_counts().is_empty());

    let armed = h
        .control(
            Method::POST,
            "/_sim/faults",
            Some(json!({"kind": "tooManyRequests", "retryAfterSeconds": 2, "pathPrefix": "/api/events"})),
        )
        .await;
    assert_eq!(armed.status(), 204);
    let response = h.get("/api/events").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");

    h.control(
        Method::POST,
        "/_sim/faults",
        Some(json!({"kind": "status", "status": 503, "times": 3})),
    )
    .await;
    let cleared = h.control(Method::DELETE, "/_sim/faults", None).await;
    assert_eq!(cleared.status(), 204);
    assert_eq!(h.get("/api/events").await.status(), 200);

    let invalid = h
        .control(
            Method::POST,
            "/_sim/faults",
            Some(json!({"kind": "status", "status": 7})),
        )
        .await;
    assert_eq!(invalid.status(), 400);
    let unknown_kind = h
        .control(
            Method::POST,
            "/_sim/faults",
            Some(json!({"kind": "explode"})),
        )
        .await;
    assert_eq!(unknown_kind.status(), 422);
}

#[tokio::test]
async fn a_bulk_backlog_of_ten_thousand_events_pages_in_thousands() {
    let h = Harness::start(Scenario::default()).await;
    let ids: Vec<String> = (0..100).map(|i| format!("a-{i}")).collect();
    let events = h
        .sim
        .emit_bulk("AccessActivatedEvent", &ids, 10_000)
        .unwrap();
    assert_eq!(events.len(), 10_000);
    let first: Vec<Value> = h.get("/api/events").await.json().await.unwrap();
    assert_eq!(first.len(), 1000);
    let feed = h.read_feed().await;
    assert_eq!(feed.len(), 10_000);
    assert_eq!(feed[9_999]["id"].as_str(), Some(events[9_999].id.as_str()));
    assert_eq!(h.sim.request_counts()["GET /api/events"], 12);
}
