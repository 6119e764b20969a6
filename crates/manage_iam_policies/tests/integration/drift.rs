//! Change over time: data product changes move the grants of the agreements naming the product,
//! and the drift sweep (`{"reconcile": "all" | "dry-run"}`) finds and repairs what events
//! missed or hands changed, through the same FIFO path as events.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use serde_json::{Value, json};

/// The provider product with its `bucket` port pointing at `bucket`.
fn provider_with_bucket(bucket: &str) -> Value {
    let mut product = provider_product();
    for port in product["outputPorts"].as_array_mut().unwrap() {
        if port["id"] == "bucket" {
            port["custom"]["aws-s3-bucket-arn"] = json!(format!("arn:aws:s3:::{bucket}"));
        }
    }
    product
}

fn event_value(event: dmm_simulator::CloudEvent) -> Value {
    serde_json::to_value(event).unwrap()
}

/// Activates the agreements through the queue.
async fn activate(stack: &Stack, function: &Function, ids: &[&str]) {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| event_value(stack.sim.activate(id).unwrap()))
        .collect();
    stack.deliver(function, &events).await;
}

fn outcomes_named(handled: &Handled, outcome: &str) -> Vec<Value> {
    handled
        .outcomes()
        .into_iter()
        .filter(|l| l["outcome"] == outcome)
        .cloned()
        .collect()
}

/// A changed bucket ARN, a changed consumer role and a deleted output port each move or remove
/// exactly the grants of the agreements naming them; agreements on other ports, other products
/// and inactive ones are not even looked at.
#[tokio::test]
async fn product_changes_move_the_grants_of_the_agreements_naming_them() {
    let stack = Stack::start(scenario(vec![
        agreement("agr-bucket", "bucket", by_product(SHIPMENTS)),
        agreement("agr-stream", "stream", by_product(SHIPMENTS)),
        agreement("agr-billing", "stream", by_product(BILLING)),
        agreement("agr-idle", "bucket", by_product(BILLING)),
    ]))
    .await;
    stack.create_consumer_roles().await;
    stack
        .create_role(
            "shipments-consumer-v2",
            "/",
            None,
            &[(PRODUCT_TAG, SHIPMENTS)],
        )
        .await;
    let function = stack.function(&[]).await;
    activate(
        &stack,
        &function,
        &["agr-bucket", "agr-stream", "agr-billing"],
    )
    .await;
    let before_billing = stack
        .policy(BILLING_ROLE, &policy_name("agr-billing"))
        .await;

    // The provider's bucket moves (to a new bucket it owns, tagged like the first): only
    // agr-bucket is on that port, but a product change reconciles every active agreement of the
    // product (the event does not say what changed).
    local_stack::owned::Owned {
        moto: &stack.moto,
        sdk: &stack.sdk,
    }
    .bucket("orders-lake-v2", &[(PRODUCT_TAG, PROVIDER)])
    .await
    .unwrap();
    stack
        .sim
        .upsert_data_product(provider_with_bucket("orders-lake-v2"))
        .unwrap();
    let change = event_value(stack.sim.emit("DataProductUpdatedEvent", PROVIDER));
    let handled = stack.deliver(&function, &[change]).await;
    let requested = outcomes_named(&handled, "requested");
    assert_eq!(requested.len(), 1, "{}", handled.dump());
    assert_eq!(requested[0]["reconcile_requests"], 3, "{}", handled.dump());
    assert_eq!(handled.metric("ProductChanges"), 1.0);
    let mut moved = expected_policy("bucket");
    moved["Statement"][0]["Resource"] = json!("arn:aws:s3:::orders-lake-v2");
    moved["Statement"][1]["Resource"] = json!("arn:aws:s3:::orders-lake-v2/*");
    assert_eq!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-bucket"))
            .await,
        Some(moved.clone())
    );
    assert_eq!(
        handled.iam_writes(),
        1,
        "only the moved bucket is rewritten: {}",
        handled.dump()
    );

    // The consumer's role changes: its two agreements move to the new role, the old one is
    // left without them; billing's agreement is untouched.
    stack
        .sim
        .upsert_data_product(
            json!({"id": SHIPMENTS, "custom": {"aws-role-name": "shipments-consumer-v2"}}),
        )
        .unwrap();
    let change = event_value(stack.sim.emit("DataProductUpdatedEvent", SHIPMENTS));
    let handled = stack.deliver(&function, &[change]).await;
    assert_eq!(
        outcomes_named(&handled, "requested")[0]["reconcile_requests"],
        2
    );
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
    let v2 = stack.inline_policies("shipments-consumer-v2").await;
    assert_eq!(
        v2,
        BTreeMap::from([
            (policy_name("agr-bucket"), moved),
            (policy_name("agr-stream"), expected_policy("stream")),
        ])
    );
    let v2_arn = role_arn("shipments-consumer-v2", "/");
    assert_status(&stack.agreement("agr-stream"), TAG_ACTIVE, Some(&v2_arn));
    assert_eq!(
        stack
            .policy(BILLING_ROLE, &policy_name("agr-billing"))
            .await,
        before_billing
    );

    // The stream port is deleted: its agreements lose their grant and say why.
    let mut provider = provider_with_bucket("orders-lake-v2");
    provider["outputPorts"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["id"] != "stream");
    stack.sim.upsert_data_product(provider).unwrap();
    let mut deleted = event_value(stack.sim.emit("OutputPortDeletedEvent", PROVIDER));
    deleted["data"]["outputPortId"] = json!("stream");
    let handled = stack.deliver(&function, &[deleted]).await;
    assert_eq!(
        outcomes_named(&handled, "requested")[0]["reconcile_requests"],
        2,
        "only the agreements on the deleted port: {}",
        handled.dump()
    );
    assert!(
        stack
            .policy("shipments-consumer-v2", &policy_name("agr-stream"))
            .await
            .is_none()
    );
    assert!(
        stack
            .policy(BILLING_ROLE, &policy_name("agr-billing"))
            .await
            .is_none()
    );
    assert_status(&stack.agreement("agr-billing"), TAG_ERROR, None);
    assert!(error_of(&stack.agreement("agr-billing")).contains("output port `stream`"));
    assert!(
        stack
            .policy("shipments-consumer-v2", &policy_name("agr-bucket"))
            .await
            .is_some()
    );
    assert!(stack.ledger("agr-idle").await.is_none());
}

/// The agreements' grants as IAM holds them, for "nothing changed" checks.
async fn iam_state(stack: &Stack) -> BTreeMap<(String, String), Value> {
    stack
        .grants(&[SHIPMENTS_ROLE, BILLING_ROLE, ANALYTICS_ROLE])
        .await
}

/// A policy deleted by hand, one edited by hand, a deactivation whose event was lost, and a
/// ledger entry whose agreement is gone from DMM: the dry run reports exactly these, changing
/// nothing; the sweep repairs them through the queue; a second dry run finds nothing.
#[tokio::test]
async fn the_sweep_reports_drift_without_changes_then_repairs_it() {
    let ids = [
        "agr-ok",
        "agr-deleted-policy",
        "agr-edited",
        "agr-missed",
        "agr-gone",
    ];
    let mut organisation = scenario(vec![
        agreement("agr-ok", "bucket", by_product(SHIPMENTS)),
        agreement(
            "agr-deleted-policy",
            "folder-inferred",
            by_product(SHIPMENTS),
        ),
        agreement("agr-edited", "stream", by_product(BILLING)),
        agreement("agr-missed", "bucket", by_team(ANALYTICS)),
        agreement("agr-gone", "stream", by_product(SHIPMENTS)),
        agreement("agr-never", "bucket", by_product(BILLING)),
    ]);
    // Two agreements per page of GET /api/access: the sweep must read every page.
    organisation.list_page_size = 2;
    let stack = Stack::start(organisation).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    activate(&stack, &function, &ids).await;

    let clean = sweep(&function, "dry-run").await;
    assert_eq!(clean["checked"], 6, "{clean}");
    assert!(clean.get("drift").is_none(), "{clean}");

    // Drift that no event reports.
    stack
        .iam
        .delete_role_policy()
        .role_name(SHIPMENTS_ROLE)
        .policy_name(policy_name("agr-deleted-policy"))
        .send()
        .await
        .unwrap();
    stack
        .put_policy(
            BILLING_ROLE,
            &policy_name("agr-edited"),
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": "s3:*", "Resource": "*"}]}),
        )
        .await;
    stack.sim.deactivate("agr-missed").unwrap();
    stack.sim.delete_agreement("agr-gone").unwrap();
    let before = iam_state(&stack).await;
    let puts = stack.sim.puts().len();

    let report = sweep(&function, "dry-run").await;
    assert_eq!(
        (
            &report["mode"],
            &report["agreements"],
            &report["ledgerOnly"],
            &report["checked"]
        ),
        (&json!("dry-run"), &json!(5), &json!(1), &json!(6)),
        "{report}"
    );
    assert_eq!(report["complete"], true);
    let rows: BTreeMap<String, (String, Vec<String>)> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let changes = r["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            (
                r["agreementId"].as_str().unwrap().to_owned(),
                (r["inDmm"].as_str().unwrap().to_owned(), changes),
            )
        })
        .collect();
    let p = policy_name;
    let expected: BTreeMap<String, (String, Vec<String>)> = [
        (
            "agr-deleted-policy",
            "active",
            vec![format!(
                "put {} on role {SHIPMENTS_ROLE} (missing)",
                p("agr-deleted-policy")
            )],
        ),
        (
            "agr-edited",
            "active",
            vec![format!(
                "put {} on role {BILLING_ROLE} (edited)",
                p("agr-edited")
            )],
        ),
        (
            "agr-missed",
            "inactive",
            vec![
                format!("delete {} from role {ANALYTICS_ROLE}", p("agr-missed")),
                "delete the grant ledger entry".to_owned(),
                "DMM provisioning provisioned -> deprovisioned".to_owned(),
                "DMM status aws-integration-active -> aws-integration-inactive".to_owned(),
            ],
        ),
        (
            "agr-gone",
            "not in DMM",
            vec![
                format!("delete {} from role {SHIPMENTS_ROLE}", p("agr-gone")),
                "delete the grant ledger entry".to_owned(),
            ],
        ),
    ]
    .into_iter()
    .map(|(id, state, changes)| (id.to_owned(), (state.to_owned(), changes)))
    .collect();
    assert_eq!(rows, expected, "{}", report["table"]);
    let table = report["table"].as_str().unwrap();
    eprintln!("dry-run report:\n{table}");
    assert!(table.starts_with("AGREEMENT"), "{table}");
    assert!(
        table.ends_with(
            "4 of 6 agreements drifted; 0 could not be checked; 0 granted without proof of \
             ownership; nothing was changed\n"
        ),
        "{table}"
    );
    assert_eq!(
        iam_state(&stack).await,
        before,
        "a dry run writes nothing to IAM"
    );
    assert_eq!(
        stack.sim.puts().len(),
        puts,
        "a dry run writes nothing to DMM"
    );
    assert!(stack.ledger("agr-gone").await.is_some());

    // The scheduled sweep checks all six as the dry run does and queues a request for each of
    // the four that drifted, in the agreement's group; the two in sync cost only their reads.
    let swept = sweep(&function, "all").await;
    assert_eq!(
        (&swept["checked"], &swept["requested"]),
        (&json!(6), &json!(4)),
        "{swept}"
    );
    let queued = stack.receive().await;
    let mut groups: Vec<&str> = queued
        .iter()
        .map(|r| r["attributes"]["MessageGroupId"].as_str().unwrap())
        .collect();
    groups.sort_unstable();
    assert_eq!(
        groups,
        ["agr-deleted-policy", "agr-edited", "agr-gone", "agr-missed"]
    );
    let handled = stack.redeliver(&queued, &function).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());

    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &p("agr-deleted-policy")).await,
        Some(expected_policy("folder-inferred"))
    );
    assert_eq!(
        stack.policy(BILLING_ROLE, &p("agr-edited")).await,
        Some(expected_policy("stream"))
    );
    assert!(
        stack
            .policy(ANALYTICS_ROLE, &p("agr-missed"))
            .await
            .is_none()
    );
    assert_status(&stack.agreement("agr-missed"), TAG_INACTIVE, None);
    assert!(stack.policy(SHIPMENTS_ROLE, &p("agr-gone")).await.is_none());
    assert!(stack.ledger("agr-gone").await.is_none());
    assert_eq!(
        stack.ledger_keys().await,
        ["agr-ok", "agr-deleted-policy", "agr-edited"]
            .iter()
            .map(|id| format!("grants/{id}.json"))
            .collect::<BTreeSet<String>>()
    );

    let after = sweep(&function, "dry-run").await;
    assert!(after.get("drift").is_none(), "{after}");
    assert_eq!(
        after["table"],
        "AGREEMENT  IN DMM  OWNERSHIP  WHAT A RECONCILE WOULD CHANGE\n0 of 5 agreements drifted; \
         0 could not be checked; 0 granted without proof of ownership; nothing was changed\n"
    );
}

/// A sweep request the function does not know is an invocation error, not an empty success.
#[tokio::test]
async fn an_unknown_sweep_mode_fails_the_invocation() {
    let stack = Stack::start(scenario(vec![])).await;
    let function = stack.function(&[]).await;
    let answer = function
        .lambda
        .invoke(json!({"reconcile": "everything"}), TIMEOUT)
        .await;
    assert!(answer.is_err(), "{answer:?}");
    assert!(stack.receive().await.is_empty());
}

/// A sweep too large for one invocation stops before its deadline, says where, and queues its
/// own continuation; the function, receiving it from the queue, checks and requests the rest.
/// Every drifted agreement is reconciled exactly once. A dry run given `after` checks only what
/// sorts after it.
#[tokio::test]
async fn a_sweep_that_runs_out_of_time_continues_where_it_stopped() {
    let ids: Vec<String> = (0..30).map(|i| format!("agr-{i:02}")).collect();
    let agreements = ids
        .iter()
        .map(|id| agreement(id, "bucket", by_product(SHIPMENTS)))
        .collect();
    let stack = Stack::start(scenario(agreements)).await;
    stack.create_consumer_roles().await;
    // Active in DMM, granted nowhere: every agreement drifted (its events were lost).
    for id in &ids {
        stack.sim.activate(id).unwrap();
    }
    let proxy = local_stack::FaultProxy::start(stack.moto.endpoint())
        .await
        .unwrap();
    // Each check reads the consumer's policy, which now answers after 0.4 s, eight checks at a
    // time; a sweep starts nothing in the last 5 s, so a 6 s invocation checks one or a few
    // rounds of eight.
    proxy.set_faults(local_stack::FaultPlan::seeded(1).with(
        local_stack::Fault::Latency { ms: 400 },
        local_stack::Matcher::action("iam", "GetRolePolicy"),
        local_stack::Trigger::Probability(1.0),
    ));
    let slow = stack
        .function(&[("AWS_ENDPOINT_URL", proxy.endpoint())])
        .await;
    let report = slow
        .lambda
        .invoke(
            json!({"reconcile": "all"}),
            std::time::Duration::from_secs(6),
        )
        .await
        .expect("the sweep returns its report before the deadline");
    let requested = report["requested"].as_u64().unwrap() as usize;
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(
        report["checked"], requested as u64,
        "all it checked drifted: {report}"
    );
    assert!((1..30).contains(&requested), "{report}");
    assert_eq!(
        report["resumeAfter"],
        ids[requested - 1].as_str(),
        "{report}"
    );

    proxy.clear();
    let function = stack.function(&[]).await;
    let handled = Handled::merge(stack.drain(&function, 20).await);
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    let continued = outcomes_named(&handled, "requested");
    assert_eq!(continued.len(), 1, "one continuation: {}", handled.dump());
    assert_eq!(
        continued[0]["reconcile_requests"],
        (ids.len() - requested) as u64
    );
    let mut reconciled: Vec<String> = handled
        .outcomes()
        .into_iter()
        .filter(|l| l["outcome"] != "requested")
        .map(|l| l["agreement_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    reconciled.sort();
    assert_eq!(reconciled, ids, "each agreement once");

    let rest = function
        .lambda
        .invoke(json!({"reconcile": "dry-run", "after": ids[24]}), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        (&rest["checked"], &rest["after"], &rest["complete"]),
        (&json!(5), &json!(ids[24]), &json!(true)),
        "{rest}"
    );
    assert!(rest.get("resumeAfter").is_none(), "{rest}");
}
