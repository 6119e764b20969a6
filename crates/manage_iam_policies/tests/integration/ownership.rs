//! The trust boundary (ADR 017), with the real binary, moto's tag APIs and IAM enforcement:
//! a provider can only share what it owns, grants land only on the consumer's own roles,
//! `audit` and `off` keep the Python reference's behaviour (with a report in `audit`), and a
//! grant whose proof disappears is revoked.

use crate::common::*;
use local_stack::owned::Owned;
use serde_json::{Value, json};

const HR: &str = "hr";
const PAYROLL: &str = "payroll-lake";
const SCRATCH: &str = "scratch-lake";
const BILLING_LAKE: &str = "billing-lake";
const HR_DATABASE: &str = "arn:aws:glue:us-east-1:123456789012:database/hr";
const HR_TABLE: &str = "arn:aws:glue:us-east-1:123456789012:table/hr/salaries";
const HR_WORKGROUP: &str = "arn:aws:athena:us-east-1:123456789012:workgroup/hr-analysts";

fn bucket_port(id: &str, bucket: &str) -> Value {
    json!({"id": id, "type": "s3", "custom": {
        "output-port-type": "s3_bucket", "aws-s3-bucket-arn": format!("arn:aws:s3:::{bucket}")}})
}

fn table_port(id: &str, table: &str, workgroup: &str) -> Value {
    json!({"id": id, "type": "glue", "custom": {
        "output-port-type": "glue_table",
        "aws-glue-table-arn": table,
        "aws-athena-workgroup-arn": workgroup,
        "aws-s3-folder-arn": format!("arn:aws:s3:::{LAKE}/tables/x")}})
}

/// A port naming something its provider does not own: (id, port, what the error status must
/// say, a bucket and key the consumer must not read).
type HostilePort = (
    &'static str,
    Value,
    Vec<String>,
    Option<(&'static str, &'static str)>,
);

/// The hostile provider ports: each names something the provider `orders` does not own.
/// (id, port, what the error status must say, a bucket and key the consumer must not read)
fn hostile_ports(foreign_key: &str) -> Vec<HostilePort> {
    vec![
        (
            "foreign-bucket",
            bucket_port("foreign-bucket", PAYROLL),
            vec![
                format!(
                    "S3 bucket `{PAYROLL}` is not proven to belong to the provider data product `orders`"
                ),
                "dmm-data-product=orders or dmm-team=sales".into(),
                "operator map (ownership_map) gives team `sales` no pattern".into(),
            ],
            Some((PAYROLL, "salaries.csv")),
        ),
        (
            "untagged-bucket",
            bucket_port("untagged-bucket", SCRATCH),
            vec![format!("S3 bucket `{SCRATCH}` is not proven")],
            Some((SCRATCH, "notes.txt")),
        ),
        (
            "state-bucket",
            bucket_port("state-bucket", BUCKET),
            vec![format!("S3 bucket `{BUCKET}` is the integration's own")],
            Some((BUCKET, "poll_feed/last_event_id")),
        ),
        (
            "other-product-bucket",
            bucket_port("other-product-bucket", BILLING_LAKE),
            vec![format!("S3 bucket `{BILLING_LAKE}` is not proven")],
            Some((BILLING_LAKE, "invoices.csv")),
        ),
        (
            "foreign-table",
            table_port("foreign-table", HR_TABLE, WORKGROUP),
            vec![
                format!("Glue table `{HR_TABLE}` is not proven"),
                "on the table or its database".into(),
            ],
            None,
        ),
        (
            "foreign-key",
            json!({"id": "foreign-key", "type": "s3", "custom": {
                "output-port-type": "s3_folder",
                "aws-s3-folder-arn": format!("arn:aws:s3:::{LAKE}/curated"),
                "aws-kms-key-arn": foreign_key}}),
            vec![format!("KMS key `{foreign_key}` is not proven")],
            None,
        ),
        (
            "foreign-workgroup",
            table_port("foreign-workgroup", GLUE_TABLE, HR_WORKGROUP),
            vec![
                format!(
                    "Athena workgroup `{HR_WORKGROUP}` is not proven to belong to the provider or the consumer"
                ),
                "dmm-data-product=orders or dmm-data-product=shipments".into(),
            ],
            None,
        ),
        (
            "foreign-group",
            json!({"id": "foreign-group", "type": "kafka", "custom": {
                "output-port-type": "msk_topic",
                "aws-msk-cluster-arn": MSK_CLUSTER,
                "aws-msk-topic-arn": MSK_TOPIC,
                "aws-msk-group-arn": MSK_GROUP.replace("/shipments", "/billing")}}),
            vec!["MSK consumer group `billing` is not the consumer's".into()],
            None,
        ),
    ]
}

/// Other teams' resources in the provider's account, and one nobody tagged.
async fn foreign_resources(stack: &Stack) -> String {
    let owned = Owned {
        moto: &stack.moto,
        sdk: &stack.sdk,
    };
    let hr = [(TEAM_TAG, HR)];
    owned.bucket(PAYROLL, &hr).await.unwrap();
    owned.bucket(SCRATCH, &[]).await.unwrap();
    owned
        .bucket(BILLING_LAKE, &[(PRODUCT_TAG, BILLING)])
        .await
        .unwrap();
    // The state bucket tagged for the provider: still never granted.
    owned
        .bucket(BUCKET, &[(PRODUCT_TAG, PROVIDER)])
        .await
        .unwrap();
    owned.glue(HR_DATABASE, &hr).await.unwrap();
    owned.workgroup(HR_WORKGROUP, &hr).await.unwrap();
    for (bucket, key) in [
        (PAYROLL, "salaries.csv"),
        (SCRATCH, "notes.txt"),
        (BUCKET, "poll_feed/last_event_id"),
        (BILLING_LAKE, "invoices.csv"),
        (LAKE, "curated/orders.csv"),
    ] {
        put_object(&stack.s3, bucket, key).await;
    }
    owned.kms_key(REGION, KMS_KEY_SEED + 1, &hr).await.unwrap()
}

#[tokio::test]
async fn a_provider_can_only_share_what_it_owns() {
    let mut scenario = scenario(vec![agreement("agr-ok", "folder", by_product(SHIPMENTS))]);
    let stack = Stack::start(scenario.clone()).await;
    let foreign_key = foreign_resources(&stack).await;
    let cases = hostile_ports(&foreign_key);
    let mut provider = provider_product();
    for (id, port, _, _) in &cases {
        provider["outputPorts"]
            .as_array_mut()
            .unwrap()
            .push(port.clone());
        scenario
            .agreements
            .push(agreement(&format!("agr-{id}"), id, by_product(SHIPMENTS)));
    }
    stack.sim.upsert_data_product(provider).unwrap();
    for a in &scenario.agreements[1..] {
        stack.sim.upsert_agreement(a.clone()).unwrap();
    }
    let (service, function) = stack.enforced_with_shipments_service().await;

    let ids: Vec<String> = scenario
        .agreements
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let events: Vec<Value> = ids.iter().map(|id| stack.activated(id)).collect();
    let handled = stack.deliver(&function, &events).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(
        handled.iam_writes(),
        1,
        "only the owned folder is granted: {}",
        handled.dump()
    );

    // The control: the owned folder is readable, so a denial below is the boundary's doing.
    let consumer = assumed_s3(&stack, &service, SHIPMENTS_ROLE).await;
    assert_eq!(
        read(&consumer, LAKE, "curated/orders.csv").await,
        Ok(format!("contents of {LAKE}/curated/orders.csv"))
    );
    assert_status(
        &stack.agreement("agr-ok"),
        TAG_ACTIVE,
        Some(&role_arn(SHIPMENTS_ROLE, "/")),
    );
    assert_eq!(
        stack
            .inline_policies(SHIPMENTS_ROLE)
            .await
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [policy_name("agr-ok")],
        "no policy for any hostile port"
    );
    for (id, _, causes, denied) in &cases {
        let agreement_id = format!("agr-{id}");
        let document = stack.agreement(&agreement_id);
        assert_status(&document, TAG_ERROR, None);
        let error = error_of(&document);
        for cause in causes {
            assert!(
                error.contains(cause.as_str()),
                "{agreement_id}: `{error}` lacks `{cause}`"
            );
        }
        assert!(
            !error.contains("AccessDenied"),
            "{agreement_id}: no raw AWS text: {error}"
        );
        assert_eq!(stack.ledger(&agreement_id).await, None, "{agreement_id}");
        if let Some((bucket, key)) = denied {
            assert_eq!(
                read(&consumer, bucket, key).await,
                Err("AccessDenied".to_owned()),
                "{agreement_id}: the consumer reads {bucket}/{key}"
            );
        }
    }
}

#[tokio::test]
async fn grants_land_only_on_the_consumers_own_roles() {
    let mut agreements = vec![
        agreement("agr-intruder", "bucket", by_product("intruder")),
        agreement("agr-freeloader", "bucket", by_product("freeloader")),
        agreement("agr-mislabel", "bucket", by_product("mislabel")),
        // Controls: a team consumer on the team's role, and a product whose role carries its
        // owner team's tag.
        agreement("agr-team", "bucket", by_team(ANALYTICS)),
        agreement("agr-reporting", "bucket", by_product("reporting")),
    ];
    for a in &mut agreements {
        a["info"]["active"] = json!(true);
    }
    let mut scenario = scenario(agreements);
    scenario.data_products.extend([
        json!({"id": "intruder", "info": {"owner": "growth"}, "custom": {"aws-role-name": ANALYTICS_ROLE}}),
        json!({"id": "freeloader", "custom": {"aws-role-name": "shared-role"}}),
        json!({"id": "mislabel", "custom": {"aws-role-name": BILLING_ROLE}}),
        json!({"id": "reporting", "info": {"owner": ANALYTICS}, "custom": {"aws-role-name": "reporting-role"}}),
    ]);
    let stack = Stack::start(scenario).await;
    stack.create_consumer_roles().await;
    stack.create_role("shared-role", "/", None, &[]).await;
    stack
        .create_role("reporting-role", "/", None, &[(TEAM_TAG, ANALYTICS)])
        .await;
    let function = stack.function(&[]).await;

    let events: Vec<Value> = [
        "agr-intruder",
        "agr-freeloader",
        "agr-mislabel",
        "agr-team",
        "agr-reporting",
    ]
    .iter()
    .map(|id| serde_json::to_value(stack.sim.emit("AccessActivatedEvent", id)).unwrap())
    .collect();
    let handled = stack.deliver(&function, &events).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(
        handled.iam_writes(),
        2,
        "only the two controls: {}",
        handled.dump()
    );

    for (id, role, expected) in [
        (
            "agr-intruder",
            ANALYTICS_ROLE,
            "dmm-data-product=intruder or dmm-team=growth",
        ),
        (
            "agr-freeloader",
            "shared-role",
            "dmm-data-product=freeloader",
        ),
        ("agr-mislabel", BILLING_ROLE, "dmm-data-product=mislabel"),
    ] {
        let document = stack.agreement(id);
        assert_status(&document, TAG_ERROR, None);
        let error = error_of(&document);
        assert!(
            error.contains(&format!(
                "the consumer role `{role}` is not proven to belong to the consumer data product"
            )) && error.contains(expected),
            "{id}: {error}"
        );
        assert!(
            !stack
                .inline_policies(role)
                .await
                .contains_key(&policy_name(id)),
            "{id}: a policy was written onto {role}"
        );
    }
    assert_status(
        &stack.agreement("agr-team"),
        TAG_ACTIVE,
        Some(&role_arn(ANALYTICS_ROLE, ANALYTICS_ROLE_PATH)),
    );
    assert_status(
        &stack.agreement("agr-reporting"),
        TAG_ACTIVE,
        Some(&role_arn("reporting-role", "/")),
    );
}

#[tokio::test]
async fn audit_grants_and_reports_what_lacks_proof_and_off_reads_no_tags() {
    let mut agreements = vec![
        agreement("agr-audit", "foreign-bucket", by_product("freeloader")),
        agreement("agr-off", "foreign-bucket", by_product("freeloader")),
    ];
    for a in &mut agreements {
        a["info"]["active"] = json!(true);
    }
    let mut scenario = scenario(agreements);
    scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .unwrap()
        .push(bucket_port("foreign-bucket", PAYROLL));
    scenario
        .data_products
        .push(json!({"id": "freeloader", "custom": {"aws-role-name": "shared-role"}}));
    let stack = Stack::start(scenario).await;
    Owned {
        moto: &stack.moto,
        sdk: &stack.sdk,
    }
    .bucket(PAYROLL, &[(TEAM_TAG, HR)])
    .await
    .unwrap();
    stack.create_role("shared-role", "/", None, &[]).await;

    let audit = stack.function(&[("ownership_check", "audit")]).await;
    let event = serde_json::to_value(stack.sim.emit("AccessActivatedEvent", "agr-audit")).unwrap();
    let handled = stack.deliver(&audit, &[event]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_status(
        &stack.agreement("agr-audit"),
        TAG_ACTIVE,
        Some(&role_arn("shared-role", "/")),
    );
    let reported: Vec<&Value> = handled
        .lines
        .iter()
        .filter(|l| l["outcome"] == "ownership_unproven" && l["level"] == "WARN")
        .collect();
    assert_eq!(
        reported.len(),
        2,
        "the bucket and the role: {}",
        handled.dump()
    );
    assert!(reported.iter().all(|l| l["agreement_id"] == "agr-audit"));
    assert!(
        reported
            .iter()
            .any(|l| l["cause"].as_str().unwrap().contains(PAYROLL))
    );
    assert!(
        reported
            .iter()
            .any(|l| l["cause"].as_str().unwrap().contains("shared-role"))
    );
    assert_eq!(handled.metric("OwnershipUnproven"), 2.0);

    let report = audit
        .lambda
        .invoke(json!({"reconcile": "dry-run"}), TIMEOUT)
        .await
        .expect("dry run");
    let table = report["table"].as_str().unwrap();
    let row = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agreementId"] == "agr-audit")
        .unwrap_or_else(|| panic!("agr-audit not in the dry run: {table}"));
    assert_eq!(row["ownership"].as_array().unwrap().len(), 2, "{table}");
    assert!(
        table.contains("OWNERSHIP") && table.contains("unproven"),
        "{table}"
    );
    eprintln!("audit dry run:\n{table}");

    let off = stack.function(&[("ownership_check", "off")]).await;
    let event = serde_json::to_value(stack.sim.emit("AccessActivatedEvent", "agr-off")).unwrap();
    let handled = stack.deliver(&off, &[event]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_status(
        &stack.agreement("agr-off"),
        TAG_ACTIVE,
        Some(&role_arn("shared-role", "/")),
    );
    assert_eq!(handled.metric("OwnershipUnproven"), 0.0);
    assert!(
        handled
            .lines
            .iter()
            .all(|l| l["outcome"] != "ownership_unproven"),
        "{}",
        handled.dump()
    );
}

#[tokio::test]
async fn a_grant_whose_proof_disappears_is_revoked() {
    let mut active = agreement("agr-1", "bucket", by_product(SHIPMENTS));
    active["info"]["active"] = json!(true);
    let stack = Stack::start(scenario(vec![active])).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let event = serde_json::to_value(stack.sim.emit("AccessActivatedEvent", "agr-1")).unwrap();
    let handled = stack.deliver(&function, &[event]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-1"))
            .await
            .is_some()
    );

    // Someone removes the bucket's owner tag: the next reconcile revokes and says why.
    stack
        .s3
        .delete_bucket_tagging()
        .bucket(LAKE)
        .send()
        .await
        .unwrap();
    let event = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "agr-1")).unwrap();
    let handled = stack.deliver(&function, &[event]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-1")).await,
        None
    );
    let document = stack.agreement("agr-1");
    assert_status(&document, TAG_ERROR, None);
    assert!(error_of(&document).contains(&format!("S3 bucket `{LAKE}` is not proven")));
    assert_eq!(stack.ledger("agr-1").await, None);
}

/// Only poll_feed and the integration send to the queue, each message in the FIFO group of what
/// it names. A message in another group could run beside that agreement's own messages and undo
/// them: it is refused without a read or a write.
#[tokio::test]
async fn a_message_outside_its_agreements_group_is_refused() {
    let mut active = agreement("agr-1", "bucket", by_product(SHIPMENTS));
    active["info"]["active"] = json!(true);
    let stack = Stack::start(scenario(vec![active])).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let event = serde_json::to_value(stack.sim.emit("AccessActivatedEvent", "agr-1")).unwrap();
    stack.send_raw(&[("agr-2", &event.to_string())]).await;
    let handled = Handled::merge(stack.drain(&function, 3).await);
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(handled.iam_writes(), 0);
    let refused = handled
        .lines
        .iter()
        .find(|l| l["outcome"] == "wrong_group")
        .unwrap_or_else(|| panic!("no wrong_group outcome: {}", handled.dump()));
    assert_eq!(refused["expected_group"], "agr-1");
    assert_eq!(refused["message_group"], "agr-2");
    assert_eq!(refused["level"], "WARN");
    assert_eq!(handled.metric("Unreadable"), 1.0);
    assert_eq!(stack.puts_for("agr-1"), 0, "nothing written to DMM");
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
}

/// A ledger entry that is not a ledger entry (edited in the state bucket) is not retried into the
/// dead-letter queue: the agreement is revoked on the consumer's current role, the entry removed
/// and the cause shown; the next reconcile grants again from a clean ledger.
#[tokio::test]
async fn an_unreadable_ledger_entry_fails_closed_instead_of_retrying_forever() {
    let mut active = agreement("agr-1", "bucket", by_product(SHIPMENTS));
    active["info"]["active"] = json!(true);
    let stack = Stack::start(scenario(vec![active])).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let event = serde_json::to_value(stack.sim.emit("AccessActivatedEvent", "agr-1")).unwrap();
    assert_eq!(stack.deliver(&function, &[event]).await.iam_writes(), 1);

    put_object(&stack.s3, BUCKET, "grants/agr-1.json").await;
    let event = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "agr-1")).unwrap();
    let handled = stack.deliver(&function, &[event]).await;
    assert!(
        handled.failures.is_empty(),
        "not retried: {}",
        handled.dump()
    );
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_eq!(handled.metric("LedgerUnreadable"), 1.0);
    let logged = handled
        .lines
        .iter()
        .find(|l| l["outcome"] == "ledger_unreadable" && l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("{}", handled.dump()));
    assert_eq!(logged["ledger_key"], "grants/agr-1.json");
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-1")).await,
        None
    );
    assert_eq!(stack.ledger("agr-1").await, None);
    let document = stack.agreement("agr-1");
    assert_status(&document, TAG_ERROR, None);
    assert!(error_of(&document).contains("grant ledger entry) was unreadable"));

    let event = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "agr-1")).unwrap();
    assert_eq!(stack.deliver(&function, &[event]).await.iam_writes(), 1);
    assert_status(
        &stack.agreement("agr-1"),
        TAG_ACTIVE,
        Some(&role_arn(SHIPMENTS_ROLE, "/")),
    );
}
