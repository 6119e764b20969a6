//! Today's DMM / Entropy Data API (ADR 018), with the real binary against moto and the simulator
//! serving what the real server serves: the `"unknown"` sentinels, both event namespaces, the
//! access provisioning record, its echo events, an older DMM without it, and team changes found
//! through the access list's filters.

use crate::common::*;
use dmm_simulator::{Fault, FaultKind};
use serde_json::{Value, json};

const ENTROPY_PREFIX: &str = "com.entropy-data.events.";

fn provisioning(stack: &Stack, id: &str) -> Value {
    stack
        .sim
        .provisioning(id)
        .unwrap_or_else(|| panic!("no provisioning record for {id}"))
}

fn count(stack: &Stack, route: &str) -> u64 {
    stack
        .sim
        .request_counts()
        .get(route)
        .copied()
        .unwrap_or_default()
}

const PROVISIONING_PUT: &str = "PUT /api/access/{id}/provisioning";

/// A team consumer and a data product consumer as the real server serves them (sentinels in
/// the unused discriminators), each activated under one of the two event namespaces: both are
/// granted and reported in the provisioning record and the tags; a replay and the echo events
/// of the integration's own reports write nothing.
#[tokio::test]
async fn sentinels_both_namespaces_provisioning_and_a_silent_replay() {
    let team = agreement(
        "agr-team",
        "bucket",
        json!({"dataProductId": "unknown", "teamId": ANALYTICS, "userId": "unknown"}),
    );
    let product = agreement(
        "agr-product",
        "folder",
        json!({"dataProductId": SHIPMENTS, "teamId": LOGISTICS, "userId": "unknown"}),
    );
    let stack = Stack::start(scenario(vec![team, product])).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;

    let mut rebranded = stack.activated("agr-team");
    rebranded["type"] = json!(format!("{ENTROPY_PREFIX}AccessActivatedEvent"));
    let current = stack.activated("agr-product");
    let handled = stack.deliver(&function, &[rebranded, current]).await;
    assert_eq!(handled.iam_writes(), 2, "{}", handled.dump());

    let analytics_arn = role_arn(ANALYTICS_ROLE, ANALYTICS_ROLE_PATH);
    let shipments_arn = role_arn(SHIPMENTS_ROLE, "/");
    assert!(
        stack
            .policy(ANALYTICS_ROLE, &policy_name("agr-team"))
            .await
            .is_some(),
        "the team consumer is the team, not the data product `unknown`"
    );
    assert_status(
        &stack.agreement("agr-team"),
        TAG_ACTIVE,
        Some(&analytics_arn),
    );
    assert_status(
        &stack.agreement("agr-product"),
        TAG_ACTIVE,
        Some(&shipments_arn),
    );
    let record = provisioning(&stack, "agr-team");
    assert_eq!(record["status"], "provisioned");
    assert_eq!(record["platform"], "aws");
    assert_eq!(record["reference"], analytics_arn.as_str());
    assert!(
        record["executor"]
            .as_str()
            .unwrap()
            .starts_with("dmm-integration-aws "),
        "{record}"
    );
    assert!(record["provisionedAt"].is_string());
    assert_eq!(
        record["customProperties"],
        json!([{"property": "roleArn", "value": analytics_arn},
               {"property": "policyName", "value": policy_name("agr-team")}])
    );
    assert_eq!(count(&stack, PROVISIONING_PUT), 2);

    // The echoes of the two reports and our own tag updates, and a replay of the activations:
    // nothing is written anywhere.
    let echoes: Vec<Value> = stack
        .feed()
        .await
        .into_iter()
        .filter(|e| {
            let kind = e["type"].as_str().unwrap_or_default();
            kind.ends_with("AccessProvisionedEvent") || kind.ends_with("AccessUpdatedEvent")
        })
        .collect();
    assert_eq!(echoes.len(), 4, "two provisioning echoes, two tag updates");
    let puts = stack.sim.puts().len();
    let feed_length = stack.feed().await.len();
    let mut replay = stack.activated("agr-team");
    replay["id"] = json!("replayed-activation");
    let mut events = echoes;
    events.push(replay);
    let handled = stack.deliver(&function, &events).await;
    assert_eq!(handled.iam_writes(), 0, "{}", handled.dump());
    assert_eq!(handled.statuses_written(), 0, "{}", handled.dump());
    assert_eq!(
        handled
            .outcomes()
            .iter()
            .filter(|l| l["outcome"] == "ignored")
            .count(),
        2,
        "the provisioning echoes are not acted on: {}",
        handled.dump()
    );
    assert_eq!(stack.sim.puts().len(), puts);
    assert_eq!(count(&stack, PROVISIONING_PUT), 2, "no provisioning write");
    assert_eq!(
        stack.feed().await.len(),
        feed_length + 1,
        "only the test's own activation was added: no feedback loop"
    );
}

/// A failure is reported as `provisioning-failed` with the readable cause in `diagnostics`
/// (which DMM mails to the provider team); once the cause is fixed the record says
/// `provisioned` and the diagnostics are gone; a deactivation says `deprovisioned` and keeps
/// the reference.
#[tokio::test]
async fn failed_then_fixed_then_deprovisioned() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-1",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    let function = stack.function(&[]).await;

    // The consumer role does not exist yet.
    let handled = stack.deliver(&function, &[stack.activated("agr-1")]).await;
    assert_eq!(handled.iam_writes(), 0);
    let failed = provisioning(&stack, "agr-1");
    assert_eq!(failed["status"], "provisioning-failed", "{failed}");
    let diagnostics = failed["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains(SHIPMENTS_ROLE), "{diagnostics}");
    assert_eq!(
        diagnostics,
        error_of(&stack.agreement("agr-1")),
        "the same cause in both places"
    );

    stack.create_consumer_roles().await;
    stack.deliver(&function, &[stack.activated("agr-1")]).await;
    let fixed = provisioning(&stack, "agr-1");
    assert_eq!(fixed["status"], "provisioned");
    assert!(fixed.get("diagnostics").is_none(), "{fixed}");
    assert!(fixed["failedAt"].is_string(), "the server keeps its times");

    let deactivated = stack.deactivated("agr-1");
    stack.deliver(&function, &[deactivated]).await;
    let ended = provisioning(&stack, "agr-1");
    assert_eq!(ended["status"], "deprovisioned");
    assert_eq!(ended["reference"], role_arn(SHIPMENTS_ROLE, "/").as_str());
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-1")).await,
        None
    );
    let types: Vec<String> = stack
        .feed()
        .await
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.to_lowercase().contains("provision"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        types,
        [
            event_type("AccessProvisioningFailedEvent"),
            event_type("AccessProvisionedEvent"),
            event_type("AccessDeprovisionedEvent"),
        ]
    );
}

/// `status_reporting = provisioning` never writes the agreement document; against an older DMM
/// without the provisioning API the integration falls back to the tags, with one WARN per
/// invocation instead of an error per agreement.
#[tokio::test]
async fn provisioning_only_and_the_fallback_to_tags() {
    let agreements = vec![
        agreement("agr-1", "bucket", by_product(SHIPMENTS)),
        agreement("agr-2", "folder", by_product(SHIPMENTS)),
    ];
    let stack = Stack::start(scenario(agreements.clone())).await;
    stack.create_consumer_roles().await;
    let function = stack
        .function(&[("status_reporting", "provisioning")])
        .await;
    let events = [stack.activated("agr-1"), stack.activated("agr-2")];
    let handled = stack.deliver(&function, &events).await;
    assert_eq!(handled.iam_writes(), 2);
    assert_eq!(handled.statuses_written(), 2);
    assert!(stack.sim.puts().is_empty(), "the document is never written");
    assert_eq!(provisioning(&stack, "agr-2")["status"], "provisioned");
    assert_eq!(status_tags(&stack.agreement("agr-1")), ["gdpr-reviewed"]);

    let mut legacy_scenario = scenario(agreements);
    legacy_scenario.legacy_api = true;
    let legacy = Stack::start(legacy_scenario).await;
    legacy.create_consumer_roles().await;
    let function = legacy
        .function(&[("status_reporting", "provisioning")])
        .await;
    let events = [legacy.activated("agr-1"), legacy.activated("agr-2")];
    let handled = legacy.deliver(&function, &events).await;
    assert_eq!(handled.iam_writes(), 2);
    let warnings: Vec<&Value> = handled
        .lines
        .iter()
        .filter(|l| l["outcome"] == "provisioning_unsupported")
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one WARN per invocation: {}",
        handled.dump()
    );
    assert_eq!(warnings[0]["level"], "WARN");
    for id in ["agr-1", "agr-2"] {
        assert_status(
            &legacy.agreement(id),
            TAG_ACTIVE,
            Some(&role_arn(SHIPMENTS_ROLE, "/")),
        );
        assert_eq!(legacy.sim.provisioning(id), None);
    }
}

/// The tags are written onto a copy read right before the PUT, so a change a person made in
/// DMM while the grant was being converged is kept.
#[tokio::test]
async fn the_status_lands_on_a_fresh_copy_of_the_agreement() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-1",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[("status_reporting", "tags")]).await;
    let event = stack.activated("agr-1");
    // The first GET of the agreement is slow; meanwhile a person edits the document.
    stack
        .sim
        .inject_fault(
            Fault::new(FaultKind::Delay { ms: 1500 })
                .on_path("/api/access/agr-1")
                .times(1),
        )
        .unwrap();
    let events = [event];
    let (handled, ()) = tokio::join!(stack.deliver(&function, &events), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut edited = stack.agreement("agr-1");
        edited["custom"]["ticket"] = json!("DATA-8");
        edited["info"]["purpose"] = json!("Monthly reporting");
        stack.sim.upsert_agreement(edited).unwrap();
    });
    assert_eq!(handled.iam_writes(), 1);
    let agreement = stack.agreement("agr-1");
    assert_eq!(agreement["custom"]["ticket"], "DATA-8", "the edit survived");
    assert!(status_tags(&agreement).contains(&TAG_ACTIVE.to_owned()));
    assert_eq!(count(&stack, PROVISIONING_PUT), 0, "tags only");
}

/// A team's role change moves its grants at the `TeamUpdatedEvent`, found with the access
/// list's `consumerType=team` filter; a deleted provider (`provider.*` reads `unknown`) fails
/// closed with a clear cause.
#[tokio::test]
async fn a_team_change_moves_the_grant_and_a_deleted_provider_revokes() {
    let stack = Stack::start(scenario(vec![
        agreement("agr-team", "bucket", by_team(ANALYTICS)),
        agreement("agr-product", "folder", by_product(SHIPMENTS)),
    ]))
    .await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let events = [stack.activated("agr-team"), stack.activated("agr-product")];
    stack.deliver(&function, &events).await;

    // The team moves to a new role of its own.
    stack
        .create_role("analytics-v2", "/teams/", None, &[(TEAM_TAG, ANALYTICS)])
        .await;
    let new_arn = role_arn("analytics-v2", "/teams/");
    stack
        .sim
        .upsert_team(
            json!({"id": ANALYTICS, "name": "Analytics", "custom": {"aws-role-arn": new_arn}}),
        )
        .unwrap();
    stack.sim.reset_request_counts();
    let changed = serde_json::to_value(stack.sim.emit("TeamUpdatedEvent", ANALYTICS)).unwrap();
    let handled = stack.deliver(&function, &[changed]).await;
    assert_eq!(handled.metric("ProductChanges"), 1.0, "{}", handled.dump());
    let counts = stack.sim.request_counts();
    assert_eq!(
        counts["GET /api/access"], 1,
        "one filtered page: {counts:?}"
    );
    assert_eq!(
        stack.policy("analytics-v2", &policy_name("agr-team")).await,
        Some(expected_policy("bucket"))
    );
    assert_eq!(
        stack.policy(ANALYTICS_ROLE, &policy_name("agr-team")).await,
        None
    );
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-product"))
            .await
            .is_some(),
        "the product consumer's grant is untouched"
    );
    assert_eq!(
        provisioning(&stack, "agr-team")["reference"],
        new_arn.as_str()
    );

    let deleted = serde_json::to_value(stack.sim.delete_data_product(PROVIDER).unwrap()).unwrap();
    stack.deliver(&function, &[deleted]).await;
    for id in ["agr-team", "agr-product"] {
        let record = provisioning(&stack, id);
        assert_eq!(record["status"], "provisioning-failed", "{record}");
        assert!(
            record["diagnostics"]
                .as_str()
                .unwrap()
                .contains("provider `dataProductId` is `unknown`"),
            "{record}"
        );
    }
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
    assert!(stack.inline_policies("analytics-v2").await.is_empty());
}

/// The data contract of the ports below: one server per port type.
fn orders_contract(s3_location: &str) -> Value {
    json!({
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "orders-contract",
        "status": "active",
        "servers": [
            {"server": "lake", "type": "s3", "location": s3_location},
            {"server": "catalog", "type": "glue", "account": ACCOUNT, "database": "sales",
             "location": format!("s3://{LAKE}/tables/orders"),
             "customProperties": [{"property": "table", "value": "orders"},
                                  {"property": "region", "value": REGION},
                                  {"property": "workgroup", "value": "analysts"}]},
            {"server": "stream", "type": "kinesis", "region": REGION,
             "customProperties": [{"property": "stream", "value": "orders-v1"}]},
            {"server": "events", "type": "kafka", "host": "b-1.events.kafka:9098", "topic": "orders",
             "customProperties": [{"property": "clusterArn", "value": MSK_CLUSTER}]},
            {"server": "warehouse", "type": "snowflake"},
        ]
    })
}

/// Ports without `aws-…-arn` fields that name a data contract find their data in the
/// contract's ODCS servers and get exactly the policy the equivalent custom fields give; a
/// `DataContractUpdatedEvent` moves the grant; a contract naming another team's bucket is
/// refused like a custom field would be.
#[tokio::test]
async fn contract_described_ports_are_granted_and_follow_their_contract() {
    const PORTS: [(&str, &str); 4] = [
        ("c-folder", "lake"),
        ("c-table", "catalog"),
        ("c-stream", "stream"),
        ("c-topic", "events"),
    ];
    let mut product = provider_product();
    for (id, server) in PORTS {
        product["outputPorts"].as_array_mut().unwrap().push(json!({
            "id": id, "type": "custom", "dataContractId": "orders-contract",
            "custom": {"contractServer": server}}));
    }
    let agreements: Vec<Value> = PORTS
        .iter()
        .map(|(port, _)| {
            let mut a = agreement(&format!("agr-{port}"), port, by_product(SHIPMENTS));
            a["provider"]["dataContractId"] = json!("orders-contract");
            a
        })
        .collect();
    let mut organisation = scenario(agreements);
    organisation.data_products[0] = product;
    organisation.data_contracts = vec![orders_contract(&format!("s3://{LAKE}/curated/"))];
    let stack = Stack::start(organisation).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let events: Vec<Value> = PORTS
        .iter()
        .map(|(port, _)| stack.activated(&format!("agr-{port}")))
        .collect();
    let handled = stack.deliver(&function, &events).await;
    assert_eq!(handled.iam_writes(), 4, "{}", handled.dump());
    let policy = |id: &str| {
        let name = policy_name(id);
        let stack = &stack;
        async move { stack.policy(SHIPMENTS_ROLE, &name).await }
    };
    assert_eq!(
        policy("agr-c-folder").await,
        Some(expected_policy("folder-inferred"))
    );
    assert_eq!(policy("agr-c-table").await, Some(expected_policy("table")));
    assert_eq!(
        policy("agr-c-stream").await,
        Some(expected_policy("stream"))
    );
    let topic = policy("agr-c-topic").await.expect("the topic is granted");
    assert!(topic.to_string().contains(MSK_TOPIC), "{topic}");
    // One contract read for the batch of four.
    assert_eq!(stack.sim.request_counts()["GET /api/datacontracts/{id}"], 1);

    // The contract moves the data: its update event moves the grant, nothing else changes.
    stack
        .sim
        .upsert_data_contract(orders_contract(&format!("s3://{LAKE}/tables/orders/")))
        .unwrap();
    let changed = serde_json::to_value(
        stack
            .sim
            .emit("DataContractUpdatedEvent", "orders-contract"),
    )
    .unwrap();
    let handled = stack.deliver(&function, &[changed]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    let moved = policy("agr-c-folder").await.unwrap().to_string();
    assert!(
        moved.contains("tables/orders") && !moved.contains("curated"),
        "{moved}"
    );

    // A contract is untrusted input like a custom field: another team's bucket is refused.
    stack
        .sim
        .upsert_data_contract(orders_contract("s3://payroll-lake/"))
        .unwrap();
    let changed = serde_json::to_value(
        stack
            .sim
            .emit("DataContractUpdatedEvent", "orders-contract"),
    )
    .unwrap();
    stack.deliver(&function, &[changed]).await;
    assert_eq!(policy("agr-c-folder").await, None, "revoked");
    let record = provisioning(&stack, "agr-c-folder");
    assert_eq!(record["status"], "provisioning-failed");
    assert!(
        record["diagnostics"]
            .as_str()
            .unwrap()
            .contains("payroll-lake"),
        "{record}"
    );
}
