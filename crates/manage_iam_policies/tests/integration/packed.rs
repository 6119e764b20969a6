//! The packed layout (`grant_layout = packed`, ADR 023) against moto with IAM enforced: many
//! agreements on one consumer role in a few managed policies, converged at the same moment by
//! several function instances, with the consumer's real access checked through its own session.

use std::collections::BTreeSet;

use crate::common::*;
use dmm_aws_core::reconcile::packed::INLINE_POLICY_NAME;
use serde_json::{Value, json};

const POLICIES: &str = "3";

fn folder_port(i: usize) -> Value {
    json!({"id": format!("part-{i:02}"), "type": "s3", "custom": {
        "output-port-type": "s3_folder",
        "aws-s3-folder-arn": format!("arn:aws:s3:::{LAKE}/parts/p{i:02}")}})
}

/// The standard organisation plus `parts` folder ports of the provider, and one agreement of
/// shipments on each.
fn packed_scenario(parts: usize) -> dmm_simulator::Scenario {
    let mut scenario = scenario(
        (0..parts)
            .map(|i| {
                agreement(
                    &format!("agr-{i:02}"),
                    &format!("part-{i:02}"),
                    by_product(SHIPMENTS),
                )
            })
            .collect(),
    );
    let ports = scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .expect("the provider's ports");
    ports.extend((0..parts).map(folder_port));
    scenario
}

const SETTINGS: [(&str, &str); 2] = [PACKED, ("managed_policies_per_role", POLICIES)];

/// The packed policies of `role`, by name, with their documents: its inline slot's policy and
/// the managed policies attached to it.
async fn packed_policies(stack: &Stack, role: &str) -> Vec<(String, Value)> {
    let mut policies: Vec<(String, Value)> = stack
        .inline_policies(role)
        .await
        .into_iter()
        .filter(|(name, _)| name == INLINE_POLICY_NAME)
        .collect();
    policies.extend(
        local_stack::managed_policies::attached(&stack.iam, role)
            .await
            .unwrap(),
    );
    policies
}

/// The folders the role's packed policies let it read, after checking that they let it list
/// exactly the same folders of the one bucket and nothing else.
fn granted_folders(policies: &[(String, Value)]) -> BTreeSet<String> {
    let statements: Vec<Value> = policies
        .iter()
        .flat_map(|(_, doc)| doc["Statement"].as_array().cloned().unwrap_or_default())
        .collect();
    let listed: BTreeSet<String> = statements
        .iter()
        .filter(|s| s["Action"] == "s3:ListBucket")
        .inspect(|s| assert_eq!(s["Resource"], format!("arn:aws:s3:::{LAKE}"), "{s}"))
        .flat_map(|s| match &s["Condition"]["StringLike"]["s3:prefix"] {
            Value::Array(all) => all.clone(),
            one => vec![one.clone()],
        })
        .map(|p| {
            p.as_str()
                .unwrap()
                .trim_start_matches("parts/")
                .trim_end_matches("/*")
                .to_owned()
        })
        .collect();
    let read = read_folders(policies);
    assert_eq!(listed, read, "listed and read folders agree");
    for s in &statements {
        let action = s["Action"].as_str().unwrap_or_default();
        assert!(
            ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"].contains(&action),
            "only the folder actions: {s}"
        );
    }
    read
}

fn read_folders(policies: &[(String, Value)]) -> BTreeSet<String> {
    policies
        .iter()
        .flat_map(|(_, doc)| doc["Statement"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["Action"] == "s3:GetObject")
        .flat_map(|s| match &s["Resource"] {
            Value::Array(all) => all.clone(),
            one => vec![one.clone()],
        })
        .filter_map(|r| {
            r.as_str()
                .and_then(|r| r.strip_prefix(&format!("arn:aws:s3:::{LAKE}/parts/")))
                .map(|r| r.trim_end_matches("/*").to_owned())
        })
        .collect()
}

/// Thirty agreements on one role, activated at once by two instances while IAM and the role
/// record's writes fail now and then, end in the role's inline slot (as far as its owners' own
/// inline policy leaves room) and at most three managed policies that grant exactly the thirty
/// folders; the consumer reads each of a sample
/// and nothing else; ending half of them at once leaves exactly the other half; a replay writes
/// nothing.
#[tokio::test]
async fn many_agreements_on_one_role_pack_into_few_policies_with_exactly_their_access() {
    let parts = 30;
    let stack = Stack::start(packed_scenario(parts)).await;
    for i in 0..parts {
        put_object(&stack.s3, LAKE, &format!("parts/p{i:02}/data.csv")).await;
    }
    put_object(&stack.s3, LAKE, "parts/p99/data.csv").await;
    let (service, _) = stack.enforced_with_shipments_service().await;
    // The owners' own inline policy leaves the inline slot room for about half the grants.
    stack.owners_inline_policy(SHIPMENTS_ROLE, 9_000).await;
    let (_, function_credentials) = user(&stack, "manage-packed", &function_policy()).await;
    // IAM and the role record's writes fail now and then, as AWS does: a fault may hit a write
    // that landed (a reset connection) or one that did not (a 500).
    let proxy = local_stack::FaultProxy::start(stack.moto.endpoint())
        .await
        .unwrap();
    proxy.set_faults(
        local_stack::FaultPlan::seeded(7)
            .with(
                local_stack::Fault::InternalError,
                local_stack::Matcher::service("iam"),
                local_stack::Trigger::Probability(0.03),
            )
            .with(
                local_stack::Fault::ConnectionReset,
                local_stack::Matcher::s3("PUT", &format!("/{BUCKET}/roles/")),
                local_stack::Trigger::Probability(0.1),
            ),
    );
    let faulty: Vec<(&str, &str)> = SETTINGS
        .iter()
        .copied()
        .chain([("AWS_ENDPOINT_URL", proxy.endpoint())])
        .collect();
    let (first, second) = tokio::join!(
        stack.function_as(&function_credentials, &faulty),
        stack.function_as(&function_credentials, &faulty)
    );
    let ids: Vec<String> = (0..parts).map(|i| format!("agr-{i:02}")).collect();

    // All but the last at once: every convergence that loses a race converges again, so a
    // burst on one role costs more than one write per activation, but a bounded number.
    let (last, burst) = ids.split_last().unwrap();
    let activated = at_once(
        &first,
        &second,
        burst.iter().map(|id| stack.activated(id)).collect(),
    )
    .await;
    assert!(
        activated.iam_writes() <= 8 * burst.len() as u64,
        "{} IAM writes for a burst of {} activations",
        activated.iam_writes(),
        burst.len()
    );
    assert!(proxy.stats().injected() > 0, "{:?}", proxy.stats());
    proxy.clear();
    // Alone, an activation rewrites one policy: a new version, and room for it.
    let alone = at_once(&first, &second, vec![stack.activated(last)]).await;
    assert!((1..=2).contains(&alone.iam_writes()), "{}", alone.dump());
    let policies = packed_policies(&stack, SHIPMENTS_ROLE).await;
    // No agreement ended in an error status: a lost race is retried, never refused.
    for id in &ids {
        assert_eq!(
            status_tags(&stack.agreement(id)).last().map(String::as_str),
            Some(TAG_ACTIVE),
            "{id}"
        );
    }
    let names: Vec<&String> = policies.iter().map(|p| &p.0).collect();
    assert!((2..=4).contains(&names.len()), "{names:?}");
    assert_eq!(
        names[0], INLINE_POLICY_NAME,
        "the inline slot is filled first"
    );
    assert!(
        names[1..]
            .iter()
            .all(|name| name.starts_with(&format!("dmm-grants-{SHIPMENTS_ROLE}-"))),
        "{names:?}"
    );
    let all: BTreeSet<String> = (0..parts).map(|i| format!("p{i:02}")).collect();
    assert_eq!(granted_folders(&policies), all);
    assert_eq!(
        stack
            .inline_policies(SHIPMENTS_ROLE)
            .await
            .into_keys()
            .collect::<Vec<_>>(),
        [INLINE_POLICY_NAME, "owners-own"],
        "no inline policy per agreement, and the owners' own untouched"
    );

    let consumer = assumed_s3(&stack, &service, SHIPMENTS_ROLE).await;
    for i in [0, 7, 15, 29] {
        read(&consumer, LAKE, &format!("parts/p{i:02}/data.csv"))
            .await
            .unwrap_or_else(|e| panic!("p{i:02} should be readable: {e}"));
    }
    assert!(read(&consumer, LAKE, "parts/p99/data.csv").await.is_err());

    let replay = at_once(&first, &second, vec![stack.activated("agr-03")]).await;
    assert_eq!(replay.iam_writes(), 0, "{}", replay.dump());

    let ended: Vec<&String> = ids.iter().step_by(2).collect();
    at_once(
        &first,
        &second,
        ended.iter().map(|id| stack.deactivated(id)).collect(),
    )
    .await;
    let kept: BTreeSet<String> = (0..parts)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("p{i:02}"))
        .collect();
    assert_eq!(
        granted_folders(&packed_policies(&stack, SHIPMENTS_ROLE).await),
        kept
    );
    let consumer = assumed_s3(&stack, &service, SHIPMENTS_ROLE).await;
    assert!(read(&consumer, LAKE, "parts/p00/data.csv").await.is_err());
    read(&consumer, LAKE, "parts/p01/data.csv").await.unwrap();
    for id in ended {
        assert_eq!(stack.ledger(id).await, None, "{id}");
    }
}

/// An agreement granted in the one-inline-policy layout moves into the packed policy when it
/// converges with `packed` (on its next event, or through the sweep), the inline policy deleted
/// only after; a packed policy deleted by hand is reported by the dry run and put back by the
/// sweep.
#[tokio::test]
async fn inline_grants_move_into_the_packed_policy_and_hand_deletions_are_repaired() {
    let stack = Stack::start(packed_scenario(2)).await;
    stack.create_consumer_roles().await;
    // The owners' own inline policy and the two agreements' leave the inline slot no room when
    // agr-00 moves, so it goes to a managed policy; once its inline policy is gone, agr-01 fits
    // in the inline slot.
    stack.owners_inline_policy(SHIPMENTS_ROLE, 9_300).await;
    let inline = stack.function(&[]).await;
    stack
        .deliver(
            &inline,
            &[stack.activated("agr-00"), stack.activated("agr-01")],
        )
        .await;
    assert_eq!(stack.grants(&[SHIPMENTS_ROLE]).await.len(), 2);

    let packed = stack.function(&SETTINGS).await;
    let handled = stack.deliver(&packed, &[stack.activated("agr-00")]).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(
        stack
            .grants(&[SHIPMENTS_ROLE])
            .await
            .into_keys()
            .map(|(_, name)| name)
            .collect::<Vec<_>>(),
        [policy_name("agr-01")],
        "agr-00 moved on its event"
    );
    // agr-01 has no event: the sweep finds its grant in the old layout and converges it.
    let swept = sweep(&packed, "all").await;
    assert_eq!(swept["requested"], 1, "{swept}");
    let queued = stack.receive().await;
    let moved = stack.redeliver(&queued, &packed).await;
    assert!(moved.failures.is_empty(), "{}", moved.dump());
    assert!(stack.grants(&[SHIPMENTS_ROLE]).await.is_empty());
    let policies = packed_policies(&stack, SHIPMENTS_ROLE).await;
    assert_eq!(
        policies.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
        [
            INLINE_POLICY_NAME.to_owned(),
            format!("dmm-grants-{SHIPMENTS_ROLE}-1")
        ],
    );
    assert_eq!(
        (read_folders(&policies[..1]), read_folders(&policies[1..])),
        (
            BTreeSet::from(["p01".to_owned()]),
            BTreeSet::from(["p00".to_owned()])
        ),
        "agr-00 moved while the inline budget had no room; agr-01 after it did"
    );
    assert_eq!(
        granted_folders(&policies),
        BTreeSet::from(["p00".to_owned(), "p01".to_owned()])
    );
    let ledger = stack.ledger("agr-00").await.unwrap();
    assert_eq!(ledger["grants"][0]["kind"], "packed", "{ledger}");

    // Deleted by hand.
    let arn =
        format!("arn:aws:iam::{ACCOUNT}:policy/dmm-integration/dmm-grants-{SHIPMENTS_ROLE}-1");
    stack
        .iam
        .detach_role_policy()
        .role_name(SHIPMENTS_ROLE)
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    stack
        .iam
        .delete_policy()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    let report = sweep(&packed, "dry-run").await;
    let changes: BTreeSet<String> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row["changes"].as_array().unwrap().clone())
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let name = format!("dmm-grants-{SHIPMENTS_ROLE}-1");
    assert!(
        changes.contains(&format!("create managed policy {name}"))
            && changes.contains(&format!("attach {name} to role {SHIPMENTS_ROLE}")),
        "{}",
        report["table"]
    );
    assert!(
        local_stack::managed_policies::attached(&stack.iam, SHIPMENTS_ROLE)
            .await
            .unwrap()
            .is_empty(),
        "a dry run writes nothing"
    );
    let swept = sweep(&packed, "all").await;
    assert!(swept["requested"].as_u64() >= Some(1), "{swept}");
    let queued = stack.receive().await;
    let repaired = stack.redeliver(&queued, &packed).await;
    assert!(repaired.failures.is_empty(), "{}", repaired.dump());
    assert_eq!(
        granted_folders(&packed_policies(&stack, SHIPMENTS_ROLE).await),
        BTreeSet::from(["p00".to_owned(), "p01".to_owned()])
    );
}
