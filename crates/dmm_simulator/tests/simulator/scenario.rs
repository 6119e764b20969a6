//! Scenario files: the shipped demo and the format's rules.

use dmm_simulator::{Error, Scenario, Simulator};
use serde_json::{Value, json};

use crate::common::{Harness, event_type};

/// The demo scenario of this checkout. Read when the test runs (cargo sets the variable), not
/// compiled in: with a shared target directory a compiled-in path can name another checkout.
pub fn demo() -> String {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    format!("{manifest}/../../scenarios/demo.yaml")
}

#[tokio::test]
async fn the_demo_scenario_serves_provider_consumer_and_a_requested_agreement() {
    let h = Harness::start(Scenario::from_file(demo()).unwrap()).await;
    assert_eq!(h.sim.api_key(), "demo-api-key");

    let agreement = h.get_json("/api/access/shipments-reads-orders-eu").await;
    assert_eq!(agreement["info"]["active"], false);
    assert_eq!(agreement["info"]["status"], "requested");
    assert_eq!(
        agreement["consumer"],
        json!({"dataProductId": "shipments", "teamId": "logistics", "userId": "unknown"})
    );
    let provider = &agreement["provider"];

    let orders = h
        .get_json(&format!(
            "/api/dataproducts/{}",
            provider["dataProductId"].as_str().unwrap()
        ))
        .await;
    let ports = orders["outputPorts"].as_array().unwrap();
    let custom = |port_id: &str| -> Value {
        ports
            .iter()
            .find(|port| port["id"] == port_id)
            .unwrap_or_else(|| panic!("port {port_id}"))["custom"]
            .clone()
    };
    let bucket = custom("orders-bucket");
    assert_eq!(bucket["output-port-type"], "s3_bucket");
    assert_eq!(
        bucket["aws-s3-bucket-arn"],
        "arn:aws:s3:::demo-orders-bucket"
    );
    let folder = custom(provider["outputPortId"].as_str().unwrap());
    assert_eq!(folder["output-port-type"], "s3_folder");
    assert_eq!(
        folder["aws-s3-folder-arn"],
        "arn:aws:s3:::demo-orders-bucket/eu"
    );

    let shipments = h.get_json("/api/dataproducts/shipments").await;
    assert_eq!(shipments["custom"]["aws-role-name"], "shipments-consumer");
    let team = h
        .get_json(&format!(
            "/api/teams/{}",
            shipments["owner"].as_str().unwrap()
        ))
        .await;
    assert_eq!(team["custom"]["aws-role-name"], "logistics-analysts");

    let feed = h.read_feed().await;
    let types: Vec<&str> = feed
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            event_type("DataProductCreatedEvent"),
            event_type("AccessCreatedEvent"),
            event_type("AccessRequestedEvent")
        ]
    );
}

#[tokio::test]
async fn a_scenario_sets_key_page_size_documents_and_fixed_event_ids() {
    let scenario = Scenario::from_yaml(
        r#"
apiKey: k-1
pageSize: 1
agreements:
  - info: {id: legacy-1, purpose: old, active: true, status: approved}
    provider: {dataProductId: p, outputPortId: o}
    consumer: {userId: u}
events:
  - {type: AccessActivatedEvent, resourceId: legacy-1, id: checkpoint-1}
  - {type: com.example.Foreign, resourceId: x}
"#,
    )
    .unwrap();
    let h = Harness::start(scenario).await;
    assert_eq!(h.sim.api_key(), "k-1");
    assert_eq!(
        h.get_json("/api/access/legacy-1").await["consumer"]["userId"],
        "u"
    );

    let first = h.get_json("/api/events").await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["id"], "checkpoint-1");
    let next = h.get_json("/api/events?lastEventId=checkpoint-1").await;
    assert_eq!(next[0]["type"], "com.example.Foreign");
}

async fn start_error(yaml: &str) -> Error {
    let scenario = Scenario::from_yaml(yaml).unwrap();
    match Simulator::start(scenario, "127.0.0.1:0").await {
        Ok(_) => panic!("scenario should be refused:\n{yaml}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn inconsistent_scenarios_are_refused_with_the_reason() {
    let twice = start_error("teams: [{id: t}, {id: t}]").await;
    assert!(
        twice.to_string().contains("team t is defined twice"),
        "{twice}"
    );
    let no_id = start_error("dataProducts: [{name: nameless}]").await;
    assert!(no_id.to_string().contains("id"), "{no_id}");
    let same_event =
        start_error("events: [{type: A, resourceId: r, id: e}, {type: B, resourceId: r, id: e}]")
            .await;
    assert!(matches!(same_event, Error::DuplicateEventId(id) if id == "e"));
    assert!(matches!(
        start_error("pageSize: 0").await,
        Error::InvalidScenario(_)
    ));
    assert!(matches!(
        start_error("apiKey: ''").await,
        Error::InvalidScenario(_)
    ));
}

#[test]
fn a_missing_scenario_file_names_the_path() {
    let error = Scenario::from_file("/nonexistent/scenario.yaml").unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/scenario.yaml"),
        "{error}"
    );
}
