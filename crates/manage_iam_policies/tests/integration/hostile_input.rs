//! Hostile input from DMM, end to end: moto, the DMM simulator and the real manage_iam_policies
//! binary behind the Lambda Runtime API, fed through the FIFO queue with poll_feed's group and
//! deduplication ids. Every case ends in a specific outcome (a grant where the input is legal,
//! an error status naming the problem, or an acknowledged message where there is no agreement
//! document to write to), no IAM write where nothing may be granted, and nothing left for retry.
//!
//! Roles that are protected by name or path, or outside the allowlist, are covered by
//! `reconcile.rs` (`protected_and_unlisted_roles_are_never_written`); ids that are no IAM names
//! by `ids_that_are_no_iam_names_are_mapped_consistently`. This file adds what they do not.

use crate::common::*;
use dmm_aws_core::dmm::FeedEvent;
use dmm_aws_core::feed::{deduplication_id, group_id};
use dmm_simulator::{Fault, FaultKind};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

fn active(id: &str, port: &str, consumer: Value) -> Value {
    let mut a = agreement(id, port, consumer);
    a["info"]["active"] = json!(true);
    a["info"]["status"] = json!("approved");
    a
}

/// An `AccessActivatedEvent` for `id`, without touching the document (these are active already,
/// or deliberately absent).
fn activation_event(stack: &Stack, id: &str) -> Value {
    serde_json::to_value(stack.sim.emit("AccessActivatedEvent", id)).unwrap()
}

/// Sends `events` as poll_feed does (group and deduplication ids hashed where SQS would refuse
/// the raw id), processes the queue, and checks that every message was acknowledged.
async fn run(stack: &Stack, function: &Function, events: &[Value]) -> Handled {
    for event in events {
        let raw = RawValue::from_string(event.to_string()).unwrap();
        let event = FeedEvent::parse(raw, 0).expect("a feed event");
        stack
            .sqs
            .send_message()
            .queue_url(&stack.queue_url)
            .message_body(event.raw_json())
            .message_group_id(group_id(&event))
            .message_deduplication_id(deduplication_id(&event))
            .send()
            .await
            .expect("send to the queue");
    }
    let handled = Handled::merge(stack.drain(function, events.len() + 3).await);
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(handled.metric("Retries"), 0.0, "{}", handled.dump());
    assert!(stack.receive().await.is_empty(), "nothing left for retry");
    handled
}

/// The per-message log line of `agreement_id` (exactly one).
fn line_of<'h>(handled: &'h Handled, agreement_id: &str) -> &'h Value {
    let lines: Vec<&Value> = handled
        .outcomes()
        .into_iter()
        .filter(|l| l["agreement_id"] == agreement_id)
        .collect();
    assert_eq!(lines.len(), 1, "{agreement_id}: {}", handled.dump());
    lines[0]
}

/// The per-message log line of the message carrying `event`.
fn line_for<'h>(handled: &'h Handled, event: &Value) -> &'h Value {
    let found = handled
        .outcomes()
        .into_iter()
        .find(|l| l["event_id"] == event["id"]);
    found.unwrap_or_else(|| panic!("no line for {}: {}", event["id"], handled.dump()))
}

/// A message acknowledged with a WARN and without any DMM write.
fn assert_acknowledged(line: &Value, outcome: &str, iam_writes: u64) {
    assert_eq!(line["outcome"], outcome, "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["iam_writes"], iam_writes, "{line}");
    assert_eq!(line["status_written"], false, "{line}");
}

/// No integration policy on any of `roles`, no ledger entry for any of `agreements`.
async fn assert_nothing_granted(stack: &Stack, roles: &[&str], agreements: &[&str]) {
    assert_eq!(stack.grants(roles).await, Default::default(), "no grant");
    for id in agreements {
        assert_eq!(stack.ledger(id).await, None, "no ledger entry for {id}");
    }
}

/// The agreement shows the error status with a message containing `expected`.
fn assert_error(stack: &Stack, id: &str, expected: &str) {
    let document = stack.agreement(id);
    let error = error_of(&document);
    assert!(
        error.contains(expected),
        "{id}: `{error}` lacks `{expected}`"
    );
    assert_status(&document, TAG_ERROR, None);
}

/// The agreement is granted on the shipments role under the (possibly mapped) policy name.
async fn assert_granted(stack: &Stack, id: &str, port: &str) {
    let name = dmm_aws_core::policy::policy_name(id).unwrap();
    let document = stack.agreement(id);
    assert_eq!(status_tags(&document).last().unwrap(), TAG_ACTIVE, "{id}");
    assert_eq!(document["custom"]["aws-policy-name"], name.as_str(), "{id}");
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &name).await,
        Some(expected_policy(port)),
        "{id}"
    );
    let ledger = stack.ledger(id).await.expect("ledger entry");
    assert_eq!(ledger["agreementId"], id, "{id}");
}

/// Ids DMM can hold are granted (they are only ever one encoded URL segment and a mapped policy
/// name); ids that cannot be put in a URL are acknowledged with a WARN naming the event and an
/// excerpt of the id, without reading or writing anything.
#[tokio::test]
async fn legal_ids_are_granted_and_unaddressable_ids_are_acknowledged() {
    let legal = [
        "agr/with/slash",
        "a/../b",
        "../dataproducts/orders",
        "agr%2Fx?y=1#z",
        "agr-ü-✓",
        "agr-\u{200f}\u{202e}rtl",
    ];
    let huge = format!("agr-{}", "x".repeat(10 * 1024));
    let unaddressable = ["..", ".", huge.as_str()];
    let ids: Vec<&str> = legal.iter().chain(&unaddressable).copied().collect();
    let mut agreements: Vec<Value> = ids
        .iter()
        .map(|id| active(id, "bucket", by_product(SHIPMENTS)))
        .collect();
    // Legal agreements naming a data product or team by an id that cannot be put in a URL.
    let mut dot_provider = active("agr-dot-provider", "bucket", by_product(SHIPMENTS));
    dot_provider["provider"]["dataProductId"] = json!("..");
    agreements.extend([dot_provider, active("agr-dot-team", "bucket", by_team("."))]);
    let stack = Stack::start(scenario(agreements)).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;

    let mut events: Vec<Value> = ids.iter().map(|id| activation_event(&stack, id)).collect();
    events.extend(["agr-dot-provider", "agr-dot-team"].map(|id| activation_event(&stack, id)));
    let mut nameless = activation_event(&stack, "agr-with-slash");
    nameless["data"]["id"] = json!("");
    events.push(nameless.clone());
    let handled = run(&stack, &function, &events).await;

    assert_eq!(
        handled.iam_writes(),
        legal.len() as u64,
        "{}",
        handled.dump()
    );
    for id in legal {
        assert_eq!(line_of(&handled, id)["outcome"], "granted", "{id}");
        assert_granted(&stack, id, "bucket").await;
        assert_eq!(stack.puts_for(id), 1, "{id}");
    }
    assert_eq!(
        stack.inline_policies(SHIPMENTS_ROLE).await.len(),
        legal.len()
    );

    for (id, event) in unaddressable.iter().zip(&events[legal.len()..]) {
        let line = line_for(&handled, event);
        assert_acknowledged(line, "unusable_id", 0);
        let excerpt = line["id_excerpt"].as_str().unwrap();
        if id.len() > 100 {
            assert!(
                excerpt.starts_with("agr-xxx") && excerpt.ends_with('…'),
                "{excerpt}"
            );
            assert!(
                excerpt.len() < 200 && line.to_string().len() < 2000,
                "{line}"
            );
        } else {
            assert_eq!(excerpt, *id);
        }
        assert_eq!(stack.puts_for(id), 0, "no DMM write for {id:.20}");
        assert_eq!(stack.ledger(id).await, None);
        assert!(
            status_tags(&stack.agreement(id))
                .iter()
                .all(|t| !t.starts_with(TAG_INTEGRATION)),
            "untouched"
        );
    }
    assert_eq!(handled.metric("Unreadable"), 3.0, "{}", handled.dump());
    assert_eq!(line_for(&handled, &nameless)["outcome"], "ignored");
    assert_error(
        &stack,
        "agr-dot-provider",
        "the data product id `..` cannot be used in a DMM URL",
    );
    assert_error(
        &stack,
        "agr-dot-team",
        "the team id `.` cannot be used in a DMM URL",
    );
    assert_eq!(handled.metric("ErrorStatuses"), 2.0);
    // Only the agreements' own GETs, each twice (the fresh read before the status is written,
    // ADR 018): nothing was requested for the unaddressable ids.
    let counts = stack.sim.request_counts();
    assert_eq!(
        counts["GET /api/access/{id}"],
        2 * (legal.len() as u64 + 2),
        "{counts:?}"
    );
}

/// Consumer roles that are not plain roles of a managed account: wildcards, other partitions,
/// other kinds of principal, the integration's execution role named by ARN, an access role, and
/// a managed account's management role. Each gets an error status naming the problem.
#[tokio::test]
async fn consumer_roles_that_are_no_grantable_roles_are_refused() {
    const MANAGED: &str = "222222222222";
    const MANAGEMENT_ROLE: &str = "dmm-integration-management";
    const EXECUTION_ROLE: &str = "dmm-integration__manage_iam_policies";
    let arn = |partition: &str, account: &str, resource: &str| {
        format!("arn:{partition}:iam::{account}:{resource}")
    };
    let shipments = format!("role/{SHIPMENTS_ROLE}");
    let (name, by_arn) = ("aws-role-name", "aws-role-arn");
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("wild-name", name, "*".into(), "`aws-role-name` holds `*`, which is not a valid IAM role name"),
        ("wild-arn", by_arn, arn("aws", ACCOUNT, "role/*"), "which is not an IAM role ARN"),
        ("wild-account", by_arn, arn("aws", "*", &shipments), "which is not an IAM role ARN"),
        ("china", by_arn, arn("aws-cn", ACCOUNT, &shipments), "it is in partition aws-cn, but the integration runs in aws"),
        ("govcloud", by_arn, arn("aws-us-gov", ACCOUNT, &shipments), "it is in partition aws-us-gov, but the integration runs in aws"),
        ("iam-user", by_arn, arn("aws", ACCOUNT, &format!("user/{SHIPMENTS_ROLE}")), "its resource is not `role/…`"),
        ("sts-session", by_arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/{SHIPMENTS_ROLE}/s"), "it is an ARN of service `sts`, not iam"),
        ("execution-role", by_arn, role_arn(EXECUTION_ROLE, "/service-role/"), "role `dmm-integration__manage_iam_policies` is protected (role of the integration itself)"),
        ("access-role", name, "dmm-access-another-agreement".into(), "is protected (access role of an agreement, managed by the integration)"),
        ("management-role", by_arn, arn("aws", MANAGED, &format!("role/{MANAGEMENT_ROLE}")), "role `dmm-integration-management` is protected (role of the integration itself)"),
    ];
    let mut agreements: Vec<Value> = cases
        .iter()
        .map(|(p, ..)| active(&format!("agr-{p}"), "bucket", by_product(p)))
        .collect();
    // The control: the same setup grants to an ordinary role named by ARN.
    agreements.push(active("agr-plain", "bucket", by_product("plain")));
    let mut scenario = scenario(agreements);
    scenario.data_products.extend(
        cases
            .iter()
            .map(|(p, field, value, _)| json!({"id": p, "custom": {*field: value}})),
    );
    scenario
        .data_products
        .push(json!({"id": "plain", "info": {"owner": LOGISTICS}, "custom": {"aws-role-arn": role_arn(SHIPMENTS_ROLE, "/")}}));
    let stack = Stack::start(scenario).await;
    stack.create_consumer_roles().await;
    stack
        .create_role(EXECUTION_ROLE, "/service-role/", None, &[])
        .await;
    stack
        .create_role("dmm-access-another-agreement", "/", None, &[])
        .await;
    let managed_admin = stack.moto.bootstrap_admin(MANAGED).await.unwrap();
    let managed_iam = aws_sdk_iam::Client::new(&stack.moto.sdk_config(&managed_admin));
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "sts:AssumeRole"}]});
    managed_iam
        .create_role()
        .role_name(MANAGEMENT_ROLE)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("management role");
    let managed_accounts = json!({MANAGED: {
        "role_arn": format!("arn:aws:iam::{MANAGED}:role/{MANAGEMENT_ROLE}"),
        "external_id": "hub-external-id"}});
    let function = stack
        .function(&[
            ("managed_accounts", &managed_accounts.to_string()),
            (
                "protected_role_names",
                "dmm-integration__manage_iam_policies,dmm-integration__poll_feed",
            ),
        ])
        .await;

    let events: Vec<Value> = cases
        .iter()
        .map(|(p, ..)| activation_event(&stack, &format!("agr-{p}")))
        .chain([activation_event(&stack, "agr-plain")])
        .collect();
    let handled = run(&stack, &function, &events).await;

    assert_eq!(
        handled.iam_writes(),
        1,
        "only the control: {}",
        handled.dump()
    );
    assert_granted(&stack, "agr-plain", "bucket").await;
    for (product, .., expected) in &cases {
        let id = format!("agr-{product}");
        assert_eq!(line_of(&handled, &id)["outcome"], "error_status");
        assert_error(&stack, &id, expected);
        assert_eq!(stack.ledger(&id).await, None, "{id}");
    }
    let roles = [
        BILLING_ROLE,
        ANALYTICS_ROLE,
        EXECUTION_ROLE,
        "dmm-access-another-agreement",
    ];
    assert_nothing_granted(&stack, &roles, &[]).await;
    assert_eq!(stack.inline_policies(SHIPMENTS_ROLE).await.len(), 1);
    let management_policies = managed_iam
        .list_role_policies()
        .role_name(MANAGEMENT_ROLE)
        .send()
        .await
        .unwrap();
    assert!(management_policies.policy_names().is_empty());
}

/// A custom map with `entries` small fields and one field of `big_bytes`, plus `extra`.
fn huge_custom(entries: usize, big_bytes: usize, extra: Value) -> Value {
    let mut custom: Map<String, Value> = (0..entries)
        .map(|i| (format!("note-{i:05}"), json!(format!("value {i}"))))
        .collect();
    custom.insert("blob".into(), json!("b".repeat(big_bytes)));
    custom.extend(extra.as_object().unwrap().clone());
    Value::Object(custom)
}

/// 5,000 custom entries and a 1 MB value on the provider, its ports, the consumer and the
/// agreement: the agreement is granted (or gets a short, specific error), the status PUT carries
/// every user field back, and the function's memory stays bounded.
#[tokio::test]
async fn huge_custom_maps_are_processed_with_bounded_memory() {
    const MB: usize = 1 << 20;
    // 5,000 ARN fields naming 5,000 buckets: one port grants one bucket, so this is an error.
    let mut thousands: Map<String, Value> = (0..5_000)
        .map(|i| {
            (
                format!("aws-s3-{i:05}-arn"),
                json!(format!("arn:aws:s3:::b-{i:05}")),
            )
        })
        .collect();
    thousands.insert("output-port-type".into(), json!("s3_bucket"));
    let bucket = json!({"output-port-type": "s3_bucket", "aws-s3-bucket-arn": format!("arn:aws:s3:::{LAKE}")});
    let provider = json!({"id": "big-provider", "info": {"owner": SALES}, "custom": huge_custom(5_000, MB, json!({})),
    "outputPorts": [
        {"id": "bucket", "custom": huge_custom(5_000, MB, bucket)},
        {"id": "thousands", "custom": thousands},
    ]});
    let consumer = json!({"id": "big-consumer", "info": {"owner": LOGISTICS},
        "custom": huge_custom(5_000, MB, json!({"aws-role-name": SHIPMENTS_ROLE}))});
    let mut agreements = Vec::new();
    for (id, port) in [("agr-big", "bucket"), ("agr-thousands", "thousands")] {
        let mut a = active(id, port, by_product("big-consumer"));
        a["provider"]["dataProductId"] = json!("big-provider");
        a["custom"] = huge_custom(
            5_000,
            MB,
            json!({"cost-center": "cc-42", "ticket": "DATA-7"}),
        );
        agreements.push(a);
    }
    let mut scenario = scenario(agreements);
    scenario.data_products.extend([provider, consumer]);
    let stack = Stack::start(scenario).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;

    let events = [
        activation_event(&stack, "agr-big"),
        activation_event(&stack, "agr-thousands"),
    ];
    let handled = run(&stack, &function, &events).await;

    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_granted(&stack, "agr-big", "bucket").await;
    let written = stack.agreement("agr-big");
    assert_eq!(stack.puts_for("agr-big"), 1);
    let custom = written["custom"].as_object().unwrap();
    assert_eq!(custom.len(), 5_000 + 3 + 2, "user fields + status fields");
    assert_eq!(custom["blob"].as_str().unwrap().len(), MB);
    assert_eq!(custom["note-04999"], "value 4999");

    let error = error_of(&stack.agreement("agr-thousands"));
    assert!(
        error.contains(
            "custom fields `aws-s3-00000-arn` and `aws-s3-00001-arn` both name an S3 location"
        ),
        "{error}"
    );
    assert!(error.chars().count() <= 1001, "{}", error.len());
    assert_eq!(stack.ledger("agr-thousands").await, None);
    assert_eq!(stack.inline_policies(SHIPMENTS_ROLE).await.len(), 1);

    let peak = function.lambda.metrics().peak_rss_kib.expect("peak RSS");
    assert!(
        peak < 96 * 1024,
        "peak RSS {peak} KiB for ~10 MB of documents"
    );
}

/// Documents that say two things at once are refused: an S3 port naming two locations, and
/// JSON with a key twice (which `serde_json` would silently resolve to the last value, while
/// the DMM UI may show the first). A data product or team in that state gives the agreement an
/// error status; an agreement in that state (or one naming another id) cannot be written back
/// safely, so its grants are revoked and the message is acknowledged with a WARN.
#[tokio::test]
async fn ambiguous_documents_are_refused() {
    let shipments_arn = role_arn(SHIPMENTS_ROLE, "/");
    let billing_arn = role_arn(BILLING_ROLE, "/");
    let mut agreements = vec![
        active("agr-two-places", "two-places", by_product(SHIPMENTS)),
        active("agr-glob-ok", "glob-ok", by_product(SHIPMENTS)),
        active("agr-dup-role", "bucket", by_product("dup-role")),
        active("agr-dup-port", "p", by_product(SHIPMENTS)),
        active("agr-dup-team", "bucket", by_team("dup-team")),
        active("agr-dup-consumer", "bucket", by_product(SHIPMENTS)),
        active("agr-other-id", "bucket", by_product(SHIPMENTS)),
        active("agr-turns-ambiguous", "bucket", by_product(BILLING)),
    ];
    agreements[3]["provider"]["dataProductId"] = json!("dup-port-provider");
    let mut scenario = scenario(agreements);
    scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .unwrap()
        .extend([
            json!({"id": "two-places", "type": "s3", "server": {"location": "s3://other-bucket"},
                   "custom": {"aws-s3-bucket-arn": format!("arn:aws:s3:::{LAKE}")}}),
            json!({"id": "glob-ok", "type": "s3", "server": {"location": format!("s3://{LAKE}/curated/*.parquet")},
                   "custom": {"aws-s3-folder-arn": format!("arn:aws:s3:::{LAKE}/curated")}}),
        ]);
    // What the stored documents (and a UI) show; the API answers with the raw bodies below.
    scenario.data_products.extend([
        json!({"id": "dup-role", "custom": {"aws-role-name": SHIPMENTS_ROLE}}),
        json!({"id": "dup-port-provider", "outputPorts": [{"id": "p"}]}),
    ]);
    scenario
        .teams
        .push(json!({"id": "dup-team", "custom": {"aws-role-arn": shipments_arn}}));
    let stack = Stack::start(scenario).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;

    // Granted first, so that its refusal below has something to revoke.
    let granted = run(
        &stack,
        &function,
        &[activation_event(&stack, "agr-turns-ambiguous")],
    )
    .await;
    assert_eq!(granted.iam_writes(), 1);

    let agreement_with = |id: &str, tail: &str| {
        format!(
            r#"{{"id": "{id}", "info": {{"active": true, "status": "approved"}},
                "provider": {{"dataProductId": "{PROVIDER}", "outputPortId": "bucket"}}, {tail}}}"#
        )
    };
    #[rustfmt::skip]
    let raw_bodies = [
        ("/api/dataproducts/dup-role", format!(
            r#"{{"id": "dup-role", "custom": {{"aws-role-name": "{SHIPMENTS_ROLE}", "aws-role-name": "{BILLING_ROLE}"}}}}"#)),
        ("/api/dataproducts/dup-port-provider", format!(
            r#"{{"id": "dup-port-provider", "outputPorts": [{{"id": "p", "custom": {{"output-port-type": "s3_bucket",
                "aws-s3-bucket-arn": "arn:aws:s3:::{LAKE}", "aws-s3-bucket-arn": "arn:aws:s3:::payroll"}}}}]}}"#)),
        ("/api/teams/dup-team", format!(
            r#"{{"id": "dup-team", "custom": {{"aws-role-arn": "{shipments_arn}"}}, "custom": {{"aws-role-arn": "{billing_arn}"}}}}"#)),
        ("/api/access/agr-dup-consumer", agreement_with("agr-dup-consumer",
            r#""consumer": {"dataProductId": "shipments"}, "consumer": {"dataProductId": "billing"}"#)),
        ("/api/access/agr-other-id", agreement_with("agr-glob-ok", r#""consumer": {"dataProductId": "shipments"}"#)),
        ("/api/access/agr-turns-ambiguous", agreement_with("agr-turns-ambiguous",
            r#""consumer": {"dataProductId": "billing"}, "info": {"active": false}"#)),
    ];
    for (path, body) in raw_bodies {
        let fault = Fault::new(FaultKind::RawBody { body }).times(50);
        stack.sim.inject_fault(fault.on_path(path)).unwrap();
    }

    let ids = [
        "agr-two-places",
        "agr-glob-ok",
        "agr-dup-role",
        "agr-dup-port",
        "agr-dup-team",
        "agr-dup-consumer",
        "agr-other-id",
        "agr-turns-ambiguous",
    ];
    let events: Vec<Value> = ids.iter().map(|id| activation_event(&stack, id)).collect();
    let handled = run(&stack, &function, &events).await;

    assert_granted(&stack, "agr-glob-ok", "folder-inferred").await;
    #[rustfmt::skip]
    let errors = [
        ("agr-two-places", "custom field `aws-s3-bucket-arn` names `arn:aws:s3:::orders-lake`, but `server.location` names `s3://other-bucket`"),
        ("agr-dup-role", "the data product `dup-role` has the key `custom.aws-role-name` more than once, with different values"),
        ("agr-dup-port", "the data product `dup-port-provider` has the key `outputPorts[0].custom.aws-s3-bucket-arn` more than once"),
        ("agr-dup-team", "the team `dup-team` has the key `custom` more than once"),
    ];
    for (id, expected) in errors {
        assert_eq!(line_of(&handled, id)["outcome"], "error_status", "{id}");
        assert_error(&stack, id, expected);
    }
    #[rustfmt::skip]
    let refused = [
        ("agr-dup-consumer", "has the key `consumer` more than once", 0),
        ("agr-other-id", "agreement requested as `agr-other-id` names itself `agr-glob-ok`", 0),
        ("agr-turns-ambiguous", "has the key `info` more than once", 1),
    ];
    for (id, cause, writes) in refused {
        let line = line_for(
            &handled,
            &events[ids.iter().position(|i| *i == id).unwrap()],
        );
        assert_acknowledged(line, "unusable_agreement", writes);
        assert_eq!(line["agreement_id"], id);
        assert!(line["cause"].as_str().unwrap().contains(cause), "{line}");
    }
    assert_eq!(
        stack.puts_for("agr-dup-consumer") + stack.puts_for("agr-other-id"),
        0
    );
    assert_eq!(
        stack.puts_for("agr-turns-ambiguous"),
        1,
        "only the grant's status"
    );
    assert_eq!(
        handled.iam_writes(),
        2,
        "the folder grant and the revocation"
    );
    assert_eq!(handled.metric("Unreadable"), 3.0);
    assert_eq!(handled.metric("ErrorStatuses"), 4.0);
    // Fail closed: the grant of the agreement that turned ambiguous is gone with its ledger entry.
    assert_nothing_granted(
        &stack,
        &[BILLING_ROLE, ANALYTICS_ROLE],
        &[
            "agr-turns-ambiguous",
            "agr-dup-consumer",
            "agr-other-id",
            "agr-dup-role",
            "agr-dup-team",
        ],
    )
    .await;
    assert_eq!(
        stack.inline_policies(SHIPMENTS_ROLE).await.len(),
        1,
        "only agr-glob-ok"
    );
}

/// What an operator sees in CloudWatch when an invocation fails: a stable `errorType` to alarm
/// on, naming the cause, never a Rust type name.
#[tokio::test]
async fn failed_invocations_report_a_meaningful_error_type() {
    let stack = Stack::start(scenario(vec![])).await;
    let failure = |result: Result<Value, local_stack::InvokeError>| match result {
        Err(local_stack::InvokeError::Function {
            error_type,
            error_message,
        }) => (error_type, error_message),
        other => panic!("expected a function error, got {other:?}"),
    };
    let sweep = json!({"reconcile": "dry-run"});

    let misconfigured = stack.function(&[("status_reporting", "email")]).await;
    let (error_type, message) = failure(misconfigured.lambda.invoke(sweep.clone(), TIMEOUT).await);
    assert_eq!(error_type, "InvalidConfiguration");
    assert!(message.contains("status_reporting"), "{message}");

    let no_secret = stack
        .function(&[("dmm_api_key_secret_name", "no-such-secret")])
        .await;
    let (error_type, _) = failure(no_secret.lambda.invoke(sweep.clone(), TIMEOUT).await);
    assert_eq!(error_type, "DmmApiKeySecret");

    let batch = json!({"Records": []});
    let (error_type, _) = failure(no_secret.lambda.invoke(batch, TIMEOUT).await);
    assert_eq!(
        error_type, "DmmApiKeySecret",
        "the batch path reports it too"
    );
}
