//! The DMM API subset: auth, feed paging, agreements, data products and teams.

use dmm_simulator::{Scenario, UnknownLastEventId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Harness, agreement, event_type};

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_api_route_requires_the_api_key() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();
    for path in [
        "/api/events",
        "/api/access",
        "/api/access/a-1",
        "/api/teams/t",
    ] {
        let missing = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path} without key");
        assert_eq!(
            missing.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["status"], 401);

        let wrong = h
            .http
            .get(h.url(path))
            .header("x-api-key", "not-the-key")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong key");
        let text = wrong.text().await.unwrap();
        assert!(!text.contains(h.sim.api_key()), "the key must not leak");
    }
    let put = h
        .http
        .put(h.url("/api/access/a-1"))
        .json(&agreement("a-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 401);
    assert!(
        h.sim.puts().is_empty(),
        "an unauthorised PUT is not applied"
    );
    assert_eq!(h.get("/api/access/a-1").await.status(), 200);
}

#[tokio::test]
async fn the_feed_pages_oldest_first_and_ends_with_an_empty_array() {
    let h = Harness::start(Scenario {
        page_size: 2,
        ..Scenario::default()
    })
    .await;
    let emitted: Vec<String> = (0..5)
        .map(|i| h.sim.emit("AccessActivatedEvent", &format!("a-{i}")).id)
        .collect();

    let response = h.get("/api/events").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/cloudevents-batch+json"
    );
    let first: Vec<Value> = response.json().await.unwrap();
    assert_eq!(ids(&first), emitted[..2]);
    let event = &first[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], event_type("AccessActivatedEvent"));
    assert_eq!(event["subject"], "a-0");
    assert_eq!(event["data"]["id"], "a-0");
    assert_eq!(event["datacontenttype"], "application/json");
    assert!(event["source"].is_string() && event["time"].is_string());

    let second: Vec<Value> = h
        .api(Method::GET, "/api/events")
        .query(&[("lastEventId", &emitted[1])])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&second), emitted[2..4]);

    assert_eq!(ids(&h.read_feed().await), emitted);
    let caught_up: Vec<Value> = h
        .api(Method::GET, "/api/events")
        .query(&[("lastEventId", &emitted[4])])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(caught_up.is_empty());

    let later = h.sim.emit("AccessDeactivatedEvent", "a-0");
    let resumed: Vec<Value> = h
        .api(Method::GET, "/api/events")
        .query(&[("lastEventId", &emitted[4])])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&resumed), vec![later.id]);
}

#[tokio::test]
async fn an_empty_feed_is_an_empty_array() {
    let h = Harness::start(Scenario::default()).await;
    assert_eq!(h.get_json("/api/events").await, json!([]));
}

async fn after_unknown_id(policy: UnknownLastEventId) -> reqwest::Response {
    let h = Harness::start(Scenario {
        unknown_last_event_id: policy,
        ..Scenario::default()
    })
    .await;
    h.sim.emit("AccessActivatedEvent", "a-1");
    h.api(Method::GET, "/api/events")
        .query(&[("lastEventId", "never-issued")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_unknown_last_event_id_is_rejected_by_default() {
    let response = after_unknown_id(UnknownLastEventId::default()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("never-issued"));
}

#[tokio::test]
async fn an_unknown_last_event_id_can_look_caught_up_or_replay() {
    let empty = after_unknown_id(UnknownLastEventId::Empty).await;
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.json::<Value>().await.unwrap(), json!([]));

    let replay = after_unknown_id(UnknownLastEventId::FromStart).await;
    assert_eq!(replay.status(), 200);
    let events: Vec<Value> = replay.json().await.unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn a_put_replaces_the_document_keeps_unknown_fields_and_emits_updated() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();

    let mut document = h.get_json("/api/access/a-1").await;
    assert_eq!(document, agreement("a-1"));
    document["tags"] = json!(["user-tag", "aws-integration", "aws-integration-active"]);
    document["custom"]["aws-policy-name"] = json!("DMM_DataUsageAgreement_a-1");
    let response = h.put_json("/api/access/a-1", &document).await;
    assert_eq!(response.status(), 200);

    let stored = h.get_json("/api/access/a-1").await;
    assert_eq!(stored, document);
    assert_eq!(stored["futureField"], json!({"nested": [1, 2, 3]}));
    assert_eq!(
        serde_json::to_string(&stored).unwrap(),
        serde_json::to_string(&document).unwrap(),
        "key order survives the round trip"
    );

    let puts = h.sim.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, "/api/access/a-1");
    assert_eq!(puts[0].id, "a-1");
    assert_eq!(puts[0].body, document);

    let feed = h.read_feed().await;
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0]["type"], event_type("AccessUpdatedEvent"));
    assert_eq!(feed[0]["data"]["id"], "a-1");
}

#[tokio::test]
async fn a_put_of_a_new_id_creates_the_agreement() {
    let h = Harness::start(Scenario::default()).await;
    let response = h.put_json("/api/access/new-1", &agreement("new-1")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.get_json("/api/access/new-1").await, agreement("new-1"));
    let feed = h.read_feed().await;
    assert_eq!(feed[0]["type"], event_type("AccessCreatedEvent"));
}

#[tokio::test]
async fn the_deprecated_route_shares_the_store_and_emits_its_own_event_family() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();
    assert_eq!(
        h.get_json("/api/datausageagreements/a-1").await,
        agreement("a-1")
    );

    let mut document = agreement("a-1");
    document["custom"]["aws-role-arn"] = json!("arn:aws:iam::123456789012:role/r");
    let response = h.put_json("/api/datausageagreements/a-1", &document).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.get_json("/api/access/a-1").await, document);

    assert_eq!(h.sim.puts()[0].path, "/api/datausageagreements/a-1");
    let feed = h.read_feed().await;
    assert_eq!(
        feed[0]["type"],
        event_type("DataUsageAgreementUpdatedEvent")
    );
}

#[tokio::test]
async fn old_agreements_with_info_id_are_served_and_writable() {
    let h = Harness::start(Scenario::default()).await;
    let old = json!({
        "info": {"id": "old-1", "purpose": "legacy", "active": true, "status": "approved"},
        "provider": {"dataProductId": "orders", "outputPortId": "orders-bucket"},
        "consumer": {"teamId": "logistics"}
    });
    assert_eq!(h.sim.upsert_agreement(old.clone()).unwrap(), "old-1");
    let served = h.get_json("/api/access/old-1").await;
    let mut expected = old.clone();
    expected["consumer"] =
        json!({"dataProductId": "unknown", "teamId": "logistics", "userId": "unknown"});
    assert_eq!(served, expected, "the real server's sentinels");
    assert_eq!(h.put_json("/api/access/old-1", &served).await.status(), 200);
}

#[tokio::test]
async fn sentinels_fill_the_consumer_and_a_deleted_provider_and_can_be_switched_off() {
    let team_consumer = json!({
        "id": "t-1", "info": {"active": true},
        "provider": {"dataProductId": "orders", "outputPortId": "orders-bucket"},
        "consumer": {"teamId": "logistics"}
    });
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_data_product(json!({"id": "orders"})).unwrap();
    h.sim.upsert_agreement(team_consumer.clone()).unwrap();
    let deleted = h.sim.delete_data_product("orders").unwrap();
    assert_eq!(deleted.event_type, event_type("DataProductDeletedEvent"));
    assert_eq!(h.get("/api/dataproducts/orders").await.status(), 404);
    let served = h.get_json("/api/access/t-1").await;
    assert_eq!(
        served["provider"],
        json!({"dataProductId": "unknown", "outputPortId": "unknown"})
    );
    assert_eq!(served["consumer"]["userId"], "unknown");

    let plain = Harness::start(Scenario {
        unknown_sentinels: false,
        ..Scenario::default()
    })
    .await;
    plain.sim.upsert_agreement(team_consumer.clone()).unwrap();
    assert_eq!(plain.get_json("/api/access/t-1").await, team_consumer);
}

#[tokio::test]
async fn the_access_list_filters_pages_by_size_and_links_the_next_page() {
    let h = Harness::start(Scenario::default()).await;
    let doc = |id: &str, provider: &str, consumer: Value| {
        json!({"id": id, "info": {"active": true},
               "provider": {"dataProductId": provider, "outputPortId": "p"},
               "consumer": consumer})
    };
    h.sim
        .upsert_agreement(doc("a", "orders", json!({"dataProductId": "shipments"})))
        .unwrap();
    h.sim
        .upsert_agreement(doc("b", "orders", json!({"teamId": "t1"})))
        .unwrap();
    h.sim
        .upsert_agreement(doc("c", "billing", json!({"dataProductId": "orders"})))
        .unwrap();
    h.sim
        .upsert_agreement(doc("d", "orders", json!({"userId": "u1"})))
        .unwrap();
    let ids = |page: &Value| -> Vec<String> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = h
        .get("/api/access?pageSize=2&providerDataProductId=orders")
        .await;
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(
        link,
        "</api/access?p=1&pageSize=2&providerDataProductId=orders>; rel=\"next\""
    );
    assert_eq!(ids(&first.json().await.unwrap()), ["a", "b"]);
    let last = h
        .get("/api/access?p=1&pageSize=2&providerDataProductId=orders")
        .await;
    assert!(last.headers().get("link").is_none(), "no next page");
    assert_eq!(ids(&last.json().await.unwrap()), ["d"]);
    assert_eq!(
        ids(&h.get_json("/api/access?consumerDataProductId=orders").await),
        ["c"]
    );
    assert_eq!(
        ids(&h.get_json("/api/access?consumerType=team").await),
        ["b"]
    );
    assert_eq!(
        ids(&h.get_json("/api/access?consumerType=user").await),
        ["d"]
    );
    assert_eq!(
        ids(&h.get_json("/api/access?consumerType=dataproduct").await),
        ["a", "c"]
    );
    assert_eq!(h.get("/api/access?consumerType=robot").await.status(), 400);
    assert_eq!(h.get("/api/access?pageSize=10001").await.status(), 400);

    let legacy = Harness::start(Scenario {
        legacy_api: true,
        list_page_size: 2,
        ..Scenario::default()
    })
    .await;
    for id in ["a", "b", "c"] {
        legacy
            .sim
            .upsert_agreement(doc(id, "orders", json!({"teamId": "t"})))
            .unwrap();
    }
    let page = legacy
        .get("/api/access?pageSize=10000&providerDataProductId=billing")
        .await;
    assert!(page.headers().get("link").is_none());
    assert_eq!(
        ids(&page.json().await.unwrap()),
        ["a", "b"],
        "filters and size ignored"
    );
}

#[tokio::test]
async fn provisioning_reports_are_stored_stamped_and_echoed_once_per_status() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();
    assert_eq!(h.get("/api/access/a-1/provisioning").await.status(), 404);
    assert_eq!(
        h.get("/api/access/missing/provisioning").await.status(),
        404
    );
    let report = json!({"status": "provisioned", "platform": "aws", "reference": "arn:r"});
    assert_eq!(
        h.put_json("/api/access/a-1/provisioning", &report)
            .await
            .status(),
        200
    );
    let stored = h.get_json("/api/access/a-1/provisioning").await;
    assert_eq!(stored["status"], "provisioned");
    assert!(stored["provisionedAt"].is_string());
    assert_eq!(h.get_json("/api/access/a-1").await["provisioning"], stored);
    // The same status again is a metadata correction: no event. Absent fields are cleared.
    let corrected = json!({"status": "provisioned", "platform": "aws"});
    h.put_json("/api/access/a-1/provisioning", &corrected).await;
    let stored = h.get_json("/api/access/a-1/provisioning").await;
    assert!(stored.get("reference").is_none());
    assert!(
        stored["provisionedAt"].is_string(),
        "times are the server's"
    );
    let failed = json!({"status": "provisioning-failed", "diagnostics": "no role"});
    h.put_json("/api/access/a-1/provisioning", &failed).await;
    let types: Vec<Value> = h
        .read_feed()
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!(event_type("AccessProvisionedEvent")),
            json!(event_type("AccessProvisioningFailedEvent"))
        ]
    );
    // A PUT of the document cannot overwrite the record.
    let mut document = h.get_json("/api/access/a-1").await;
    document["provisioning"] = json!({"status": "deprovisioned"});
    h.put_json("/api/access/a-1", &document).await;
    assert_eq!(
        h.sim.provisioning("a-1").unwrap()["status"],
        "provisioning-failed"
    );
    let invalid = h
        .put_json("/api/access/a-1/provisioning", &json!({"status": "done"}))
        .await;
    assert_eq!(invalid.status(), 400);

    let legacy = Harness::start(Scenario {
        legacy_api: true,
        ..Scenario::default()
    })
    .await;
    legacy.sim.upsert_agreement(agreement("a-1")).unwrap();
    let refused = legacy
        .put_json("/api/access/a-1/provisioning", &report)
        .await;
    assert_eq!(refused.status(), 404);
}

#[tokio::test]
async fn connectors_are_stored_and_checked() {
    let h = Harness::start(Scenario::default()).await;
    let connector = json!({"id": "aws-1", "info": {"type": "aws"}, "state": {"lastEventId": "e"}});
    assert_eq!(
        h.put_json("/api/connectors/aws-1", &connector)
            .await
            .status(),
        200
    );
    assert_eq!(h.get_json("/api/connectors/aws-1").await, connector);
    assert_eq!(h.get_json("/api/connectors").await, json!([connector]));
    assert_eq!(h.sim.connector("aws-1"), Some(connector.clone()));
    let mismatched = h.put_json("/api/connectors/other", &connector).await;
    assert_eq!(mismatched.status(), 422);
    assert_eq!(h.get("/api/connectors/other").await.status(), 404);
}

#[tokio::test]
async fn a_repeated_event_keeps_its_id() {
    let h = Harness::start(Scenario::default()).await;
    let first = h.sim.emit("AccessActivatedEvent", "a-1");
    h.sim.repeat_event(&first.id).unwrap();
    let feed = h.read_feed().await;
    assert_eq!(feed.len(), 2);
    assert_eq!(feed[0], feed[1]);
    assert!(h.sim.repeat_event("missing").is_err());
}

#[tokio::test]
async fn invalid_puts_are_refused_and_change_nothing() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();

    let other_id = h.put_json("/api/access/a-1", &agreement("a-2")).await;
    assert_eq!(other_id.status(), 400);
    let mut no_consumer = agreement("a-1");
    no_consumer.as_object_mut().unwrap().remove("consumer");
    assert_eq!(
        h.put_json("/api/access/a-1", &no_consumer).await.status(),
        400
    );
    let not_json = h
        .api(Method::PUT, "/api/access/a-1")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.headers()["content-type"],
        "application/problem+json"
    );

    assert_eq!(h.get_json("/api/access/a-1").await, agreement("a-1"));
    assert!(h.read_feed().await.is_empty(), "no event for a refused PUT");
}

#[tokio::test]
async fn unknown_and_deleted_agreements_are_404() {
    let h = Harness::start(Scenario::default()).await;
    assert_eq!(h.get("/api/access/nope").await.status(), 404);
    h.sim.upsert_agreement(agreement("a-1")).unwrap();

    let deleted = h.sim.delete_agreement("a-1").unwrap();
    assert_eq!(deleted.event_type, event_type("AccessDeletedEvent"));
    for path in ["/api/access/a-1", "/api/datausageagreements/a-1"] {
        let response = h.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 404);
    }
    assert_eq!(h.read_feed().await[0]["data"]["id"], "a-1");
    assert!(h.sim.delete_agreement("a-1").is_err());
}

#[tokio::test]
async fn activation_and_deactivation_change_info_and_announce_it() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();

    let activated = h.sim.activate("a-1").unwrap();
    let document = h.get_json("/api/access/a-1").await;
    assert_eq!(document["info"]["active"], true);
    assert_eq!(document["info"]["status"], "approved");
    assert_eq!(document["futureField"], agreement("a-1")["futureField"]);

    let deactivated = h.sim.deactivate("a-1").unwrap();
    let document = h.get_json("/api/access/a-1").await;
    assert_eq!(document["info"]["active"], false);
    assert_eq!(document["info"]["status"], "approved");

    let feed = h.read_feed().await;
    assert_eq!(ids(&feed), vec![activated.id, deactivated.id]);
    assert_eq!(feed[0]["type"], event_type("AccessActivatedEvent"));
    assert_eq!(feed[1]["type"], event_type("AccessDeactivatedEvent"));
    assert!(h.sim.activate("missing").is_err());
}

#[tokio::test]
async fn the_access_list_pages_in_creation_order() {
    let h = Harness::start(Scenario {
        list_page_size: 2,
        ..Scenario::default()
    })
    .await;
    for id in ["c", "a", "b"] {
        h.sim.upsert_agreement(agreement(id)).unwrap();
    }
    let page_ids = |page: Value| -> Vec<Value> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|document| document["id"].clone())
            .collect()
    };
    assert_eq!(
        page_ids(h.get_json("/api/access").await),
        [json!("c"), json!("a")]
    );
    assert_eq!(page_ids(h.get_json("/api/access?p=1").await), [json!("b")]);
    assert_eq!(h.get_json("/api/access?p=2").await, json!([]));
    assert_eq!(h.get("/api/access?p=-1").await.status(), 400);

    h.sim.delete_agreement("a").unwrap();
    assert_eq!(
        page_ids(h.get_json("/api/access").await),
        [json!("c"), json!("b")]
    );

    let deprecated = h.get_json("/api/datausageagreements?p=0&pageSize=3").await;
    assert_eq!(page_ids(deprecated), [json!("c"), json!("b")]);
    let too_small = h.get("/api/datausageagreements?pageSize=1").await;
    assert_eq!(too_small.status(), 400);
}

#[tokio::test]
async fn data_products_and_teams_are_served_as_stored() {
    let h = Harness::start(Scenario::default()).await;
    let product = json!({
        "id": "orders",
        "custom": {},
        "outputPorts": [{
            "id": "orders-bucket",
            "type": "s3",
            "server": {"location": "s3://demo-orders-bucket/"},
            "custom": {"output-port-type": "s3_bucket", "aws-s3-bucket-arn": "arn:aws:s3:::demo-orders-bucket"}
        }]
    });
    let team = json!({"id": "logistics", "name": "Logistics", "type": "Team", "custom": {"aws-role-name": "r"}});
    h.sim.upsert_data_product(product.clone()).unwrap();
    h.sim.upsert_team(team.clone()).unwrap();
    assert_eq!(h.get_json("/api/dataproducts/orders").await, product);
    assert_eq!(h.get_json("/api/teams/logistics").await, team);
    assert_eq!(h.get("/api/dataproducts/other").await.status(), 404);
    assert_eq!(h.get("/api/teams/other").await.status(), 404);
}

#[tokio::test]
async fn requests_are_counted_per_route() {
    let h = Harness::start(Scenario::default()).await;
    h.sim.upsert_agreement(agreement("a-1")).unwrap();
    h.get("/api/events").await;
    h.get("/api/access/a-1").await;
    h.get("/api/access/a-2").await;
    h.put_json("/api/access/a-1", &agreement("a-1")).await;
    h.http.get(h.url("/api/events")).send().await.unwrap(); // unauthorised, still a request
    h.http.get(h.url("/_sim/puts")).send().await.unwrap(); // control API: not counted

    let counts = h.sim.request_counts();
    assert_eq!(counts["GET /api/events"], 2);
    assert_eq!(counts["GET /api/access/{id}"], 2);
    assert_eq!(counts["PUT /api/access/{id}"], 1);
    assert_eq!(counts.len(), 3, "{counts:?}");

    h.sim.reset_request_counts();
    assert!(h.sim.request_counts().is_empty());
}

#[tokio::test]
async fn after_shutdown_the_port_no_longer_answers() {
    let h = Harness::start(Scenario::default()).await;
    assert_eq!(h.get("/api/events").await.status(), 200);
    let url = h.url("/api/events");
    let Harness { sim, http } = h;
    sim.shutdown().await;
    let error = http
        .get(&url)
        .send()
        .await
        .expect_err("nothing listens any more");
    assert!(error.is_connect() || error.is_request(), "{error}");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let h = Harness::start(Scenario::default()).await;
    let url = h.url("/api/events");
    let Harness { sim, http } = h;
    drop(sim);
    for _ in 0..50 {
        if http.get(&url).send().await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the server still answers a second after the handle was dropped");
}
