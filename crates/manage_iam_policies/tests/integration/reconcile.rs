//! manage_iam_policies against moto and the DMM simulator, the binary driven through the Lambda
//! Runtime API with SQS events made from real FIFO queue messages.

use crate::common::*;
use serde_json::{Value, json};

const PORTS: [&str; 7] = [
    "bucket",
    "bucket-inferred",
    "folder",
    "folder-inferred",
    "table",
    "stream",
    "topic",
];

/// Every catalogue entry gives exactly the policy catalogue's policy on the consumer's role, with the ledger
/// entry and the status in DMM; a second delivery of the same events writes nothing at all.
#[tokio::test]
async fn each_port_type_gets_its_exact_policy_and_a_rerun_writes_nothing() {
    let mut agreements: Vec<Value> = PORTS
        .iter()
        .map(|port| agreement(&format!("agr-{port}"), port, by_product(SHIPMENTS)))
        .collect();
    // A team consumer naming its role by ARN (with a path).
    agreements.push(agreement("agr-team", "bucket", by_team(ANALYTICS)));
    let stack = Stack::start(scenario(agreements.clone())).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;

    let events: Vec<Value> = agreements
        .iter()
        .map(|a| {
            let id = a["id"].as_str().unwrap();
            stack.activated(id)
        })
        .collect();
    let first = stack.deliver(&function, &events).await;
    assert_eq!(first.iam_writes(), 8, "{}", first.dump());
    assert_eq!(first.statuses_written(), 8);
    // One batch of eight: every agreement is read, and read again right before its status is
    // written (ADR 018); each data product and team only once.
    let counts = stack.sim.request_counts();
    assert_eq!(counts["GET /api/access/{id}"], 16, "{counts:?}");
    assert_eq!(counts["PUT /api/access/{id}/provisioning"], 8, "{counts:?}");
    assert_eq!(counts["GET /api/dataproducts/{id}"], 2, "{counts:?}");
    assert_eq!(counts["GET /api/teams/{id}"], 1, "{counts:?}");

    let shipments_arn = role_arn(SHIPMENTS_ROLE, "/");
    for port in PORTS {
        let id = format!("agr-{port}");
        let policy = stack.policy(SHIPMENTS_ROLE, &policy_name(&id)).await;
        assert_eq!(
            policy,
            Some(expected_policy(port)),
            "policy for port {port}"
        );
        assert_eq!(
            stack.ledger(&id).await,
            Some(json!({"agreementId": id, "grants": [{
                "roleName": SHIPMENTS_ROLE, "roleArn": shipments_arn,
                "policyName": policy_name(&id)}]})),
            "ledger of {id}"
        );
        assert_status(&stack.agreement(&id), TAG_ACTIVE, Some(&shipments_arn));
    }
    let analytics_arn = role_arn(ANALYTICS_ROLE, ANALYTICS_ROLE_PATH);
    assert_eq!(
        stack.inline_policies(ANALYTICS_ROLE).await,
        [(policy_name("agr-team"), expected_policy("bucket"))].into()
    );
    assert_status(
        &stack.agreement("agr-team"),
        TAG_ACTIVE,
        Some(&analytics_arn),
    );
    // Nothing else was touched.
    assert_eq!(stack.inline_policies(SHIPMENTS_ROLE).await.len(), 7);
    assert!(stack.inline_policies(BILLING_ROLE).await.is_empty());

    // Level-triggered and idempotent: the same events again change nothing anywhere.
    let grants = stack.grants(&[SHIPMENTS_ROLE, ANALYTICS_ROLE]).await;
    let puts = stack.sim.puts().len();
    let replay: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["id"] = json!(format!("{}-replayed", e["id"].as_str().unwrap()));
            e
        })
        .collect();
    let second = stack.deliver(&function, &replay).await;
    assert_eq!(second.outcomes().len(), 8, "{}", second.dump());
    assert_eq!(second.iam_writes(), 0, "{}", second.dump());
    assert!(
        second
            .outcomes()
            .iter()
            .all(|l| l["outcome"] == "unchanged"),
        "{}",
        second.dump()
    );
    assert_eq!(stack.sim.puts().len(), puts, "no DMM write on a re-run");
    assert_eq!(
        stack.grants(&[SHIPMENTS_ROLE, ANALYTICS_ROLE]).await,
        grants
    );
}

/// The feed event of `short` type about `id` that came last.
fn last_event(feed: &[Value], short: &str, id: &str) -> Value {
    feed.iter()
        .rev()
        .find(|e| e["type"] == event_type(short).as_str() && e["data"]["id"] == id)
        .unwrap_or_else(|| panic!("no {short} for {id} in the feed"))
        .clone()
}

/// Activation grants, our own `AccessUpdatedEvent` fed back in writes nothing, deactivation
/// revokes, and a deleted agreement (404) is revoked from the ledger alone.
#[tokio::test]
async fn activation_deactivation_and_deletion_through_the_queue() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-1",
        "folder-inferred",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let name = policy_name("agr-1");
    let shipments_arn = role_arn(SHIPMENTS_ROLE, "/");

    // Activated.
    let activated = stack.activated("agr-1");
    let handled = stack.deliver(&function, &[activated]).await;
    assert_eq!(handled.outcomes()[0]["outcome"], "granted");
    assert_eq!(handled.iam_writes(), 1);
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &name).await,
        Some(expected_policy("folder-inferred"))
    );
    assert!(stack.ledger("agr-1").await.is_some());
    assert_eq!(stack.puts_for("agr-1"), 1);
    assert_status(&stack.agreement("agr-1"), TAG_ACTIVE, Some(&shipments_arn));

    // Our PUT emitted an AccessUpdatedEvent; feeding it back in must not write again.
    let feed = stack.feed().await;
    let own_update = last_event(&feed, "AccessUpdatedEvent", "agr-1");
    let handled = stack.deliver(&function, &[own_update]).await;
    assert_eq!(
        handled.outcomes()[0]["outcome"],
        "unchanged",
        "{}",
        handled.dump()
    );
    assert_eq!(handled.iam_writes(), 0);
    assert_eq!(handled.statuses_written(), 0);
    assert_eq!(
        stack.puts_for("agr-1"),
        1,
        "own update event caused a DMM write"
    );
    assert_eq!(
        stack.feed().await.len(),
        feed.len(),
        "no new event: the feedback loop is broken"
    );

    // Deactivated: the grant and its ledger entry go, the status says inactive.
    let deactivated = stack.deactivated("agr-1");
    let handled = stack.deliver(&function, &[deactivated]).await;
    assert_eq!(handled.outcomes()[0]["outcome"], "revoked");
    assert_eq!(handled.iam_writes(), 1);
    assert_eq!(stack.policy(SHIPMENTS_ROLE, &name).await, None);
    assert_eq!(stack.ledger("agr-1").await, None);
    assert_status(&stack.agreement("agr-1"), TAG_INACTIVE, None);
    assert_eq!(stack.puts_for("agr-1"), 2);
    // ...and its own update event is again a no-op.
    let own_update = last_event(&stack.feed().await, "AccessUpdatedEvent", "agr-1");
    let handled = stack.deliver(&function, &[own_update]).await;
    assert_eq!((handled.iam_writes(), handled.statuses_written()), (0, 0));
    assert_eq!(stack.puts_for("agr-1"), 2);

    // A grant someone already removed by hand: revoking it is a success without a write.
    let activated = stack.activated("agr-1");
    stack.deliver(&function, &[activated]).await;
    stack
        .iam
        .delete_role_policy()
        .role_name(SHIPMENTS_ROLE)
        .policy_name(&name)
        .send()
        .await
        .unwrap();
    let deactivated = stack.deactivated("agr-1");
    let handled = stack.deliver(&function, &[deactivated]).await;
    assert_eq!(handled.iam_writes(), 0, "{}", handled.dump());
    assert_eq!(stack.ledger("agr-1").await, None);
    assert_status(&stack.agreement("agr-1"), TAG_INACTIVE, None);

    // Activated again, then deleted in DMM: GET answers 404, and the ledger says what to revoke.
    let activated = stack.activated("agr-1");
    stack.deliver(&function, &[activated]).await;
    assert!(stack.policy(SHIPMENTS_ROLE, &name).await.is_some());
    let deleted = serde_json::to_value(stack.sim.delete_agreement("agr-1").unwrap()).unwrap();
    let puts = stack.sim.puts().len();
    let handled = stack
        .deliver(&function, std::slice::from_ref(&deleted))
        .await;
    assert_eq!(
        handled.outcomes()[0]["outcome"],
        "revoked",
        "{}",
        handled.dump()
    );
    assert_eq!(handled.iam_writes(), 1);
    assert_eq!(stack.policy(SHIPMENTS_ROLE, &name).await, None);
    assert_eq!(
        stack.ledger("agr-1").await,
        None,
        "ledger entry removed after revoke"
    );
    assert!(stack.ledger_keys().await.is_empty());
    assert_eq!(
        stack.sim.puts().len(),
        puts,
        "nothing to write back for a deleted agreement"
    );

    // A replay of the deletion is harmless.
    let mut replay = deleted;
    replay["id"] = json!("replayed-deletion");
    let handled = stack.deliver(&function, &[replay]).await;
    assert_eq!(handled.iam_writes(), 0);
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
}

/// The deprecated `DataUsageAgreement…` events re-read the agreement from the deprecated
/// endpoint and write the status back there.
#[tokio::test]
async fn deprecated_events_use_the_deprecated_endpoint() {
    let mut old = agreement("dua-1", "bucket", by_product(SHIPMENTS));
    // Very old documents carry the id in `info.id` only.
    old.as_object_mut().unwrap().remove("id");
    old["info"]["id"] = json!("dua-1");
    old["info"]["active"] = json!(true);
    old["info"]["status"] = json!("approved");
    let stack = Stack::start(scenario(vec![old])).await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;

    let event =
        serde_json::to_value(stack.sim.emit("DataUsageAgreementActivatedEvent", "dua-1")).unwrap();
    let handled = stack.deliver(&function, &[event]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("dua-1")).await,
        Some(expected_policy("bucket"))
    );
    let counts = stack.sim.request_counts();
    // Read, and read again right before the status is written (ADR 018).
    assert_eq!(
        counts.get("GET /api/datausageagreements/{id}"),
        Some(&2),
        "{counts:?}"
    );
    assert_eq!(counts.get("GET /api/access/{id}"), None, "{counts:?}");
    // The provisioning API has one route for both families.
    assert_eq!(
        counts.get("PUT /api/access/{id}/provisioning"),
        Some(&1),
        "{counts:?}"
    );
    let puts = stack.sim.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, "/api/datausageagreements/dua-1");
    assert_eq!(
        status_tags(&puts[0].body),
        ["gdpr-reviewed", TAG_INTEGRATION, TAG_ACTIVE]
    );
    assert_eq!(puts[0].body["info"]["id"], "dua-1");
}

/// A grant the Python reference integration made (no ledger entry) is still revoked when the
/// agreement ends: the policy of the agreement's name on the consumer's current role.
#[tokio::test]
async fn a_grant_made_before_the_ledger_is_revoked_on_the_consumers_role() {
    let mut legacy = agreement("legacy-1", "bucket", by_product(SHIPMENTS));
    legacy["info"]["active"] = json!(false);
    legacy["info"]["status"] = json!("approved");
    let stack = Stack::start(scenario(vec![legacy])).await;
    stack.create_consumer_roles().await;
    let name = policy_name("legacy-1");
    stack
        .put_policy(SHIPMENTS_ROLE, &name, &expected_policy("bucket"))
        .await;
    // An unrelated policy of the same role is not the integration's business.
    let own = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]});
    stack.put_policy(SHIPMENTS_ROLE, "team-managed", &own).await;
    assert_eq!(stack.ledger("legacy-1").await, None);
    let function = stack.function(&[]).await;

    let event = serde_json::to_value(stack.sim.emit("AccessDeactivatedEvent", "legacy-1")).unwrap();
    let handled = stack.deliver(&function, &[event]).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    assert_eq!(
        stack.inline_policies(SHIPMENTS_ROLE).await,
        [("team-managed".to_owned(), own)].into()
    );
    assert_status(&stack.agreement("legacy-1"), TAG_INACTIVE, None);
}

/// When the consumer's role changes, the grant moves: the new role gets the policy, the old one
/// loses it (found through the ledger), and the ledger names only the new role.
#[tokio::test]
async fn a_changed_consumer_role_moves_the_grant() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-m",
        "stream",
        by_product(BILLING),
    )]))
    .await;
    stack.create_consumer_roles().await;
    stack
        .create_role("billing-consumer-v2", "/", None, &[(PRODUCT_TAG, BILLING)])
        .await;
    let function = stack.function(&[]).await;
    let activated = stack.activated("agr-m");
    stack.deliver(&function, &[activated]).await;
    assert!(
        stack
            .policy(BILLING_ROLE, &policy_name("agr-m"))
            .await
            .is_some()
    );

    stack
        .sim
        .upsert_data_product(
            json!({"id": BILLING, "custom": {"aws-role-name": "billing-consumer-v2"}}),
        )
        .unwrap();
    let updated = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "agr-m")).unwrap();
    let handled = stack.deliver(&function, &[updated]).await;
    assert_eq!(
        handled.iam_writes(),
        2,
        "put on the new role, delete on the old"
    );
    assert!(stack.inline_policies(BILLING_ROLE).await.is_empty());
    assert_eq!(
        stack
            .policy("billing-consumer-v2", &policy_name("agr-m"))
            .await,
        Some(expected_policy("stream"))
    );
    let v2_arn = role_arn("billing-consumer-v2", "/");
    assert_eq!(
        stack.ledger("agr-m").await.unwrap()["grants"],
        json!([{"roleName": "billing-consumer-v2", "roleArn": v2_arn, "policyName": policy_name("agr-m")}])
    );
    assert_status(&stack.agreement("agr-m"), TAG_ACTIVE, Some(&v2_arn));
}

/// A role policy of about `chars` characters that is not the integration's.
fn bulky_policy(chars: usize) -> Value {
    let resources: Vec<String> = (0..chars / 34)
        .map(|i| format!("arn:aws:s3:::archive-{i:06}/*"))
        .collect();
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}]})
}

/// Every permanent problem ends as an error status in DMM naming the cause, a WARN log line with
/// the agreement id and the cause, no grant, and an acknowledged message; bodies that are not
/// CloudEvents are logged and acknowledged too.
#[tokio::test]
async fn permanent_errors_get_an_error_status_and_are_acknowledged() {
    let active = |id: &str, port: &str, consumer: Value| {
        let mut a = agreement(id, port, consumer);
        a["info"]["active"] = json!(true);
        a["info"]["status"] = json!("approved");
        a
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            active("err-user", "bucket", json!({"userId": "alice@example.com"})),
            "the consumer is the user `alice@example.com`; only data products and teams can hold an AWS role",
        ),
        (
            active("err-missing-field", "bucket", by_product("no-role")),
            "consumer data product `no-role`: consumer: neither custom field `aws-role-name` nor `aws-role-arn` is set",
        ),
        (
            active("err-no-role", "bucket", by_product("ghost")),
            "the consumer role `ghost-role` does not exist in IAM",
        ),
        (
            active("err-wildcard", "wildcard", by_product(SHIPMENTS)),
            "output port `wildcard`",
        ),
        (
            active("err-unknown-type", "redshift", by_product(SHIPMENTS)),
            "custom field `output-port-type` is `redshift`",
        ),
        (
            active("err-too-large", "table", by_product("crowded")),
            "crowded-consumer",
        ),
        (
            active("err-no-port", "nope", by_product(SHIPMENTS)),
            "the output port `nope` does not exist on data product `orders`",
        ),
        (
            active("err-no-team", "bucket", by_team("ghost-team")),
            "the consumer team `ghost-team` does not exist in Data Mesh Manager",
        ),
        (
            active("err-other-account", "bucket", by_product("elsewhere")),
            "is in account 999999999999, which this integration does not manage",
        ),
    ];
    let mut scenario = scenario(cases.iter().map(|(a, _)| a.clone()).collect());
    scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .unwrap()
        .extend([
            json!({"id": "wildcard", "custom": {"output-port-type": "s3_bucket",
                   "aws-s3-bucket-arn": "arn:aws:s3:::orders-*"}}),
            json!({"id": "redshift", "custom": {"output-port-type": "redshift"}}),
        ]);
    scenario.data_products.extend([
        json!({"id": "no-role", "custom": {"owner": "x"}}),
        json!({"id": "ghost", "custom": {"aws-role-name": "ghost-role"}}),
        json!({"id": "crowded", "custom": {"aws-role-name": "crowded-consumer"}}),
        json!({"id": "elsewhere", "custom": {
            "aws-role-arn": "arn:aws:iam::999999999999:role/elsewhere-consumer"}}),
    ]);
    let stack = Stack::start(scenario).await;
    stack.create_consumer_roles().await;
    stack
        .create_role("crowded-consumer", "/", None, &[(PRODUCT_TAG, "crowded")])
        .await;
    let bulky = bulky_policy(9_800);
    stack.put_policy("crowded-consumer", "bulky", &bulky).await;
    let function = stack.function(&[]).await;

    let mut events: Vec<Value> = cases
        .iter()
        .map(|(a, _)| {
            let id = a["id"].as_str().unwrap();
            serde_json::to_value(stack.sim.emit("AccessActivatedEvent", id)).unwrap()
        })
        .collect();
    // Not an event the integration acts on: skipped, acknowledged.
    events.push(serde_json::to_value(stack.sim.emit("AccessRequestedEvent", "err-user")).unwrap());
    stack.send(&events).await;
    stack
        .send_raw(&[
            ("garbage", "this is not JSON"),
            ("garbage", r#"{"specversion": "1.0", "type": "no id"}"#),
            ("garbage", "[1, 2, 3]"),
        ])
        .await;
    let handled = Handled::merge(stack.drain(&function, 5).await);
    assert!(
        handled.failures.is_empty(),
        "{:?}\n{}",
        handled.failures,
        handled.dump()
    );
    assert_eq!(
        handled.outcomes().len(),
        cases.len() + 4,
        "{}",
        handled.dump()
    );
    assert_eq!(handled.iam_writes(), 0);
    let queue_left = stack.receive().await;
    assert!(queue_left.is_empty(), "everything acknowledged");

    let unreadable = handled
        .outcomes()
        .into_iter()
        .filter(|l| l["outcome"] == "unreadable")
        .count();
    assert_eq!(unreadable, 3, "{}", handled.dump());
    assert!(
        handled
            .lines
            .iter()
            .filter(|l| l["outcome"] == "unreadable")
            .all(
                |l| l["level"] == "WARN" && l["message_id"].as_str().is_some_and(|m| !m.is_empty())
            ),
        "{}",
        handled.dump()
    );
    assert_eq!(
        handled
            .outcomes()
            .iter()
            .filter(|l| l["outcome"] == "ignored")
            .count(),
        1
    );

    for (a, expected) in &cases {
        let id = a["id"].as_str().unwrap();
        let document = stack.agreement(id);
        let error = error_of(&document);
        assert!(
            error.contains(expected),
            "{id}: `{error}` lacks `{expected}`"
        );
        assert_status(&document, TAG_ERROR, None);
        assert_eq!(stack.ledger(id).await, None, "{id}");
        let warned = handled.lines.iter().any(|l| {
            l["level"] == "WARN"
                && l["agreement_id"] == *id
                && l["cause"].as_str().is_some_and(|c| c.contains(expected))
        });
        assert!(
            warned,
            "no WARN with agreement id and cause for {id}:\n{}",
            handled.dump()
        );
    }
    assert!(
        stack
            .grants(&[SHIPMENTS_ROLE, ANALYTICS_ROLE, "crowded-consumer"])
            .await
            .is_empty()
    );
    assert_eq!(
        stack.inline_policies("crowded-consumer").await,
        [("bulky".to_owned(), bulky)].into(),
        "the too-large policy was refused before any write"
    );
    let too_large = error_of(&stack.agreement("err-too-large"));
    assert!(too_large.contains("10240"), "{too_large}");

    // Our own update events for agreements in error write nothing again.
    let puts = stack.sim.puts().len();
    assert_eq!(puts, cases.len());
    let own_updates: Vec<Value> = stack
        .feed()
        .await
        .into_iter()
        .filter(|e| e["type"] == event_type("AccessUpdatedEvent").as_str())
        .collect();
    assert_eq!(own_updates.len(), cases.len());
    let handled = stack.deliver(&function, &own_updates).await;
    assert_eq!((handled.iam_writes(), handled.statuses_written()), (0, 0));
    assert_eq!(stack.sim.puts().len(), puts);

    // Fixing the data resolves the error: the grant appears and the error field goes.
    stack
        .sim
        .upsert_data_product(json!({"id": "no-role", "info": {"owner": LOGISTICS},
                   "custom": {"owner": "x", "aws-role-name": SHIPMENTS_ROLE}}))
        .unwrap();
    let fixed =
        serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "err-missing-field")).unwrap();
    let handled = stack.deliver(&function, &[fixed]).await;
    assert_eq!(handled.iam_writes(), 1);
    assert_status(
        &stack.agreement("err-missing-field"),
        TAG_ACTIVE,
        Some(&role_arn(SHIPMENTS_ROLE, "/")),
    );
}

/// A grant whose agreement turns unusable is revoked (fail closed), not left in place.
#[tokio::test]
async fn a_granted_agreement_that_turns_invalid_is_revoked() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-x",
        "stream",
        by_product(BILLING),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let activated = stack.activated("agr-x");
    stack.deliver(&function, &[activated]).await;
    assert!(
        stack
            .policy(BILLING_ROLE, &policy_name("agr-x"))
            .await
            .is_some()
    );

    // Someone clears the role field of the consumer.
    stack
        .sim
        .upsert_data_product(json!({"id": BILLING, "custom": {"aws-role-name": ""}}))
        .unwrap();
    let updated = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "agr-x")).unwrap();
    let handled = stack.deliver(&function, &[updated]).await;
    assert_eq!(
        handled.outcomes()[0]["outcome"],
        "error_status",
        "{}",
        handled.dump()
    );
    assert!(
        stack.inline_policies(BILLING_ROLE).await.is_empty(),
        "revoked"
    );
    assert_eq!(stack.ledger("agr-x").await, None);
    let error = error_of(&stack.agreement("agr-x"));
    assert!(
        error.contains("neither custom field `aws-role-name` nor `aws-role-arn`"),
        "{error}"
    );
}

/// The integration never writes to its own roles, to service-linked or AWS-reserved roles, or to
/// roles outside the configured allowlist — neither to grant nor to revoke — and IAM's path
/// decides, not the path a role ARN in DMM claims.
#[tokio::test]
async fn protected_and_unlisted_roles_are_never_written() {
    // (consumer data product, role name, IAM path, expected message)
    let roles: [(&str, &str, &str, &str); 7] = [
        (
            "own",
            "dmm-integration-consumer",
            "/data-consumers/",
            "role `dmm-integration-consumer` is protected (role of the integration itself)",
        ),
        (
            "linked",
            "AWSServiceRoleForAthena-consumer",
            "/aws-service-role/athena.amazonaws.com/",
            "is protected (service-linked role)",
        ),
        (
            "sso",
            "AWSReservedSSO_Admin_0123-consumer",
            "/aws-reserved/sso.amazonaws.com/",
            "is protected (AWS-reserved role)",
        ),
        (
            "org",
            "OrganizationAccountAccessRole",
            "/data-consumers/",
            "is protected (AWS Organizations administrator role)",
        ),
        (
            "wrong-path",
            "ops-consumer",
            "/",
            "role `ops-consumer` is outside the roles this integration may manage: its path `/` is not under `/data-consumers/`",
        ),
        (
            "wrong-name",
            "ops-admin",
            "/data-consumers/",
            "role `ops-admin` is outside the roles this integration may manage: its name does not match `*-consumer`",
        ),
        // The ARN in DMM claims the allowed path; IAM knows the role lives at `/`.
        (
            "claimed-path",
            "sneaky-consumer",
            "/",
            "role `sneaky-consumer` is outside the roles this integration may manage: its path `/` is not under `/data-consumers/`",
        ),
    ];
    let mut agreements = Vec::new();
    let mut products = Vec::new();
    for (product, role, _, _) in &roles {
        let mut a = agreement(&format!("agr-{product}"), "bucket", by_product(product));
        a["info"]["active"] = json!(true);
        agreements.push(a);
        let custom = if *product == "claimed-path" {
            json!({"aws-role-arn": role_arn(role, "/data-consumers/")})
        } else {
            json!({"aws-role-name": role})
        };
        products.push(json!({"id": product, "custom": custom}));
    }
    // An allowed role, as the control, and an inactive agreement on the integration's own role
    // that carries a policy with the agreement's name (revocation must not touch it either).
    let mut good = agreement("agr-good", "bucket", by_product("good"));
    good["info"]["active"] = json!(true);
    agreements.push(good);
    products.push(json!({"id": "good", "custom": {"aws-role-name": "good-consumer"}}));
    agreements.push(agreement("agr-own-inactive", "bucket", by_product("own")));
    let mut scenario = scenario(agreements);
    scenario.data_products.extend(products);
    let stack = Stack::start(scenario).await;
    for (_, role, path, _) in &roles {
        stack.create_role(role, path, None, &[]).await;
    }
    stack
        .create_role(
            "good-consumer",
            "/data-consumers/",
            None,
            &[(PRODUCT_TAG, "good")],
        )
        .await;
    let planted = expected_policy("bucket");
    stack
        .put_policy(
            "dmm-integration-consumer",
            &policy_name("agr-own-inactive"),
            &planted,
        )
        .await;
    let function = stack
        .function(&[
            ("managed_role_path_prefix", "/data-consumers/"),
            ("managed_role_name_pattern", "*-consumer"),
            ("protected_role_names", "dmm-integration-*, dmm-poll-feed"),
        ])
        .await;

    let mut events: Vec<Value> = roles
        .iter()
        .map(|(product, ..)| {
            serde_json::to_value(
                stack
                    .sim
                    .emit("AccessActivatedEvent", &format!("agr-{product}")),
            )
            .unwrap()
        })
        .collect();
    for id in ["agr-good", "agr-own-inactive"] {
        events.push(serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", id)).unwrap());
    }
    let handled = stack.deliver(&function, &events).await;
    assert_eq!(
        handled.iam_writes(),
        1,
        "only the allowed role: {}",
        handled.dump()
    );

    for (product, role, _, expected) in &roles {
        let id = format!("agr-{product}");
        let error = error_of(&stack.agreement(&id));
        assert!(
            error.contains(expected),
            "{id}: `{error}` lacks `{expected}`"
        );
        let policies = stack.inline_policies(role).await;
        if *role == "dmm-integration-consumer" {
            assert_eq!(
                policies,
                [(policy_name("agr-own-inactive"), planted.clone())].into(),
                "the integration's own role is left alone, even for revocation"
            );
        } else {
            assert!(policies.is_empty(), "{role}: {policies:?}");
        }
        assert_eq!(stack.ledger(&id).await, None);
    }
    assert_eq!(
        stack.inline_policies("good-consumer").await,
        [(policy_name("agr-good"), expected_policy("bucket"))].into()
    );
    // The inactive agreement's policy on the protected role cannot be revoked by the
    // integration: the agreement says so instead of claiming to be inactive, and the ledger
    // remembers the grant.
    let error = error_of(&stack.agreement("agr-own-inactive"));
    assert!(
        error.contains("cannot be revoked by the integration")
            && error.contains("role `dmm-integration-consumer` is protected"),
        "{error}"
    );
    assert_status(&stack.agreement("agr-own-inactive"), TAG_ERROR, None);
    assert_eq!(
        stack.ledger("agr-own-inactive").await.unwrap()["grants"][0]["roleName"],
        "dmm-integration-consumer"
    );
}

fn message_ids_of(records: &[Value], agreement_id: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["attributes"]["MessageGroupId"] == agreement_id)
        .map(|r| r["messageId"].as_str().unwrap().to_owned())
        .collect()
}

/// Transient faults (IAM throttling, DMM 429) report the failing record and every later record
/// of its message group as batch item failures, leave other groups alone, and converge once
/// SQS redelivers them.
#[tokio::test]
async fn transient_iam_and_dmm_faults_are_retried_with_the_fifo_rule() {
    let ids = ["agr-ok", "agr-iam", "agr-dmm"];
    let consumers = [
        by_product(SHIPMENTS),
        by_product(BILLING),
        by_team(ANALYTICS),
    ];
    let agreements = ids
        .iter()
        .zip(consumers)
        .map(|(id, consumer)| agreement(id, "bucket", consumer))
        .collect();
    let stack = Stack::start(scenario(agreements)).await;
    stack.create_consumer_roles().await;
    let proxy = crate::common::iam_proxy::IamProxy::start(stack.moto.endpoint()).await;
    let function = stack
        .function(&[("AWS_ENDPOINT_URL_IAM", proxy.url())])
        .await;

    // Two events per agreement, in one batch.
    let mut events = Vec::new();
    for id in ids {
        events.push(stack.activated(id));
        events.push(serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", id)).unwrap());
    }
    stack.send(&events).await;
    proxy.throttle(BILLING_ROLE);
    stack
        .sim
        .inject_fault(
            dmm_simulator::Fault::new(dmm_simulator::FaultKind::TooManyRequests {
                retry_after_seconds: 0,
            })
            .times(1000)
            .on_path("/api/access/agr-dmm"),
        )
        .unwrap();

    let records = stack.receive().await;
    assert_eq!(records.len(), 6);
    let handled = function.handle(records.clone()).await;
    let iam_group = message_ids_of(&records, "agr-iam");
    let dmm_group = message_ids_of(&records, "agr-dmm");
    let mut expected: Vec<String> = iam_group.iter().chain(&dmm_group).cloned().collect();
    expected.sort();
    let mut failures = handled.failures.clone();
    failures.sort();
    assert_eq!(failures, expected, "{}", handled.dump());
    assert!(proxy.throttled() > 0, "IAM was throttled");

    // The first record of each failed group was tried and logged as a retry; the later one was
    // not processed at all (it must wait for its predecessor).
    for group in [&iam_group, &dmm_group] {
        let retried = handled
            .lines
            .iter()
            .filter(|l| l["message_id"] == group[0].as_str())
            .collect::<Vec<_>>();
        assert_eq!(retried.len(), 1, "{}", handled.dump());
        assert_eq!(retried[0]["outcome"], "retry");
        assert_eq!(retried[0]["level"], "ERROR");
        assert!(
            handled
                .lines
                .iter()
                .all(|l| l["message_id"] != group[1].as_str())
        );
    }
    let cause = |id: &str| {
        handled
            .lines
            .iter()
            .find(|l| l["outcome"] == "retry" && l["agreement_id"] == id)
            .and_then(|l| l["error"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        cause("agr-iam").contains("Throttling"),
        "{}",
        cause("agr-iam")
    );
    assert!(cause("agr-dmm").contains("429"), "{}", cause("agr-dmm"));
    // The healthy group was not held back.
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-ok"))
            .await
            .is_some()
    );
    assert!(stack.inline_policies(BILLING_ROLE).await.is_empty());
    assert!(stack.inline_policies(ANALYTICS_ROLE).await.is_empty());
    assert_eq!(stack.puts_for("agr-iam") + stack.puts_for("agr-dmm"), 0);

    // SQS redelivers the failures, in order; the faults have cleared.
    stack.settle(&records, &handled.failures).await;
    proxy.clear();
    stack.sim.clear_faults();
    let retried = Handled::merge(stack.drain(&function, 5).await);
    assert!(retried.failures.is_empty(), "{}", retried.dump());
    let order: Vec<&str> = retried
        .outcomes()
        .iter()
        .filter(|l| l["agreement_id"] == "agr-iam")
        .map(|l| l["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        iam_group.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        stack.policy(BILLING_ROLE, &policy_name("agr-iam")).await,
        Some(expected_policy("bucket"))
    );
    assert_eq!(
        stack.policy(ANALYTICS_ROLE, &policy_name("agr-dmm")).await,
        Some(expected_policy("bucket"))
    );
    for id in ids {
        assert_eq!(stack.puts_for(id), 1, "{id}");
    }
}

/// An S3 fault on the ledger is transient, and because the ledger is written before IAM, it
/// stops the grant: no access is ever granted that the ledger could not revoke.
#[tokio::test]
async fn a_ledger_fault_is_retried_and_grants_nothing() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-l",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let broken = stack.function(&[("bucket_name", "no-such-bucket")]).await;
    let activated = stack.activated("agr-l");
    let record = record(&activated, "msg-1", 1, 1);
    let handled = broken.handle(vec![record.clone()]).await;
    assert_eq!(handled.failures, ["msg-1"], "{}", handled.dump());
    let retry = handled.lines_with("will be retried by SQS");
    assert_eq!(retry.len(), 1);
    assert!(
        retry[0]["error"].as_str().unwrap().contains("grant ledger"),
        "{}",
        retry[0]
    );
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
    assert_eq!(stack.sim.puts().len(), 0);

    let working = stack.function(&[]).await;
    let mut redelivered = record;
    redelivered["attributes"]["ApproximateReceiveCount"] = json!("2");
    let handled = working.handle(vec![redelivered]).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-l"))
            .await
            .is_some()
    );
}

/// Delivers `records` in batches of ten, as the event source mapping would; every record must
/// succeed.
async fn handle_in_batches(function: &Function, records: &[Value]) -> Handled {
    let mut all = Vec::new();
    for batch in records.chunks(10) {
        let handled = function.handle(batch.to_vec()).await;
        assert!(handled.failures.is_empty(), "{}", handled.dump());
        all.push(handled);
    }
    Handled::merge(all)
}

/// `count` records made of every event in `events` at least once, the rest duplicates (some
/// redeliveries of the same SQS message, some new messages with the same event), all shuffled.
fn shuffled_records(events: &[Value], count: usize, rng: &mut Rng, tag: &str) -> Vec<Value> {
    assert!(events.len() <= count);
    let mut records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| record(e, &format!("{tag}-{i}"), i as u64, 1))
        .collect();
    while records.len() < count {
        let i = rng.below(events.len());
        let n = records.len();
        records.push(if rng.below(2) == 0 {
            record(&events[i], &format!("{tag}-{i}"), i as u64, 2)
        } else {
            record(&events[i], &format!("{tag}-dup-{n}"), n as u64, 1)
        });
    }
    rng.shuffle(&mut records);
    records
}

/// 200 shuffled, duplicated and replayed events over a history of activations, deactivations,
/// deletions, a moved consumer role and a changed port end in exactly the state DMM describes;
/// delivering them all again writes nothing, to IAM or to DMM.
#[tokio::test]
async fn shuffled_and_duplicated_events_converge_to_the_final_state() {
    let seed: u64 = std::env::var("CONVERGENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024);
    eprintln!("CONVERGENCE_SEED={seed}");
    let mut rng = Rng::new(seed);
    let consumers = [SHIPMENTS, BILLING, ANALYTICS];
    let ids: Vec<String> = (0..13).map(|i| format!("ag-{i:02}")).collect();
    let port_of = |i: usize| PORTS[i % PORTS.len()];
    let consumer_of = |i: usize| match consumers[i % 3] {
        ANALYTICS => by_team(ANALYTICS),
        product => by_product(product),
    };
    let agreements = ids
        .iter()
        .enumerate()
        .map(|(i, id)| agreement(id, port_of(i), consumer_of(i)))
        .collect();
    let stack = Stack::start(scenario(agreements)).await;
    stack.create_consumer_roles().await;
    stack
        .create_role("billing-consumer-v2", "/", None, &[(PRODUCT_TAG, BILLING)])
        .await;
    let function = stack.function(&[]).await;

    // Phase 1: everything but ag-12 is activated; some of it is processed, in order.
    let mut phase1 = Vec::new();
    for id in &ids[..12] {
        phase1.push(stack.activated(id));
    }
    let forced = ["ag-00", "ag-02", "ag-04", "ag-10"];
    let processed: Vec<Value> = phase1
        .iter()
        .filter(|e| forced.contains(&e["data"]["id"].as_str().unwrap()) || rng.below(2) == 0)
        .cloned()
        .enumerate()
        .map(|(i, e)| record(&e, &format!("p1-{i}"), i as u64, 1))
        .collect();
    handle_in_batches(&function, &processed).await;
    let granted_in_phase1: Vec<String> = processed
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            body["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let granted_in_phase1: Vec<&str> = granted_in_phase1.iter().map(String::as_str).collect();
    assert!(
        stack
            .policy(BILLING_ROLE, &policy_name("ag-10"))
            .await
            .is_some()
    );

    // Phase 2: DMM moves on.
    for id in ["ag-00", "ag-01"] {
        stack.sim.deactivate(id).unwrap();
    }
    for id in ["ag-02", "ag-03"] {
        stack.sim.delete_agreement(id).unwrap();
    }
    stack.sim.deactivate("ag-04").unwrap();
    stack.sim.activate("ag-04").unwrap();
    let mut moved = stack.agreement("ag-05");
    moved["provider"]["outputPortId"] = json!("folder-inferred");
    stack.sim.upsert_agreement(moved).unwrap();
    stack.sim.emit("AccessUpdatedEvent", "ag-05");
    for (id, status, event) in [
        ("ag-06", "rejected", "AccessRejectedEvent"),
        ("ag-07", "canceled", "AccessCanceledEvent"),
    ] {
        let mut ended = stack.agreement(id);
        ended["info"]["active"] = json!(false);
        ended["info"]["status"] = json!(status);
        stack.sim.upsert_agreement(ended).unwrap();
        stack.sim.emit(event, id);
    }
    stack.sim.emit("AccessUpdatedEvent", "ag-12");
    stack
        .sim
        .upsert_data_product(
            json!({"id": BILLING, "custom": {"aws-role-name": "billing-consumer-v2"}}),
        )
        .unwrap();

    // The whole feed, duplicated and shuffled to 200 records.
    let feed = stack.feed().await;
    assert!(feed.len() > 25 && feed.len() < 100, "{}", feed.len());
    let records = shuffled_records(&feed, 200, &mut rng, "m");
    handle_in_batches(&function, &records).await;

    // The final state, decided from what DMM says now.
    let roles = [
        SHIPMENTS_ROLE,
        BILLING_ROLE,
        "billing-consumer-v2",
        ANALYTICS_ROLE,
    ];
    let active = ["ag-04", "ag-05", "ag-08", "ag-09", "ag-10", "ag-11"];
    let role_for = |i: usize| match consumers[i % 3] {
        SHIPMENTS => (SHIPMENTS_ROLE, "/"),
        BILLING => ("billing-consumer-v2", "/"),
        _ => (ANALYTICS_ROLE, ANALYTICS_ROLE_PATH),
    };
    let mut expected_grants = std::collections::BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        if active.contains(&id.as_str()) {
            let port = if id == "ag-05" {
                "folder-inferred"
            } else {
                port_of(i)
            };
            expected_grants.insert(
                (role_for(i).0.to_owned(), policy_name(id)),
                expected_policy(port),
            );
        }
    }
    assert_eq!(stack.grants(&roles).await, expected_grants);
    let expected_keys: std::collections::BTreeSet<String> = active
        .iter()
        .map(|id| format!("grants/{id}.json"))
        .collect();
    assert_eq!(stack.ledger_keys().await, expected_keys);
    for (i, id) in ids.iter().enumerate() {
        match id.as_str() {
            "ag-02" | "ag-03" => assert!(stack.sim.agreement(id).is_none()),
            id if active.contains(&id) => {
                let (role, path) = role_for(i);
                assert_status(
                    &stack.agreement(id),
                    TAG_ACTIVE,
                    Some(&role_arn(role, path)),
                );
                let ledger = stack.ledger(id).await.unwrap();
                assert_eq!(ledger["grants"].as_array().unwrap().len(), 1, "{ledger}");
                assert_eq!(ledger["grants"][0]["roleName"], role);
            }
            // Granted in phase 1, revoked since: the status says so.
            id if granted_in_phase1.contains(&id) => {
                assert_status(&stack.agreement(id), TAG_INACTIVE, None)
            }
            // Never granted: nothing was revoked, so the document is left as the user wrote it.
            id => assert_eq!(status_tags(&stack.agreement(id)), ["gdpr-reviewed"], "{id}"),
        }
    }

    // Everything once more, in another order: not a single write.
    let puts = stack.sim.puts().len();
    let feed = stack.feed().await;
    let records = shuffled_records(&feed, 200.max(feed.len()), &mut rng, "again");
    let again = handle_in_batches(&function, &records).await;
    assert_eq!(again.iam_writes(), 0, "{}", again.dump());
    assert_eq!(again.statuses_written(), 0);
    assert_eq!(stack.sim.puts().len(), puts);
    assert_eq!(stack.grants(&roles).await, expected_grants);
}

/// The ledger lives in S3 and is only as trustworthy as the bucket: revoking from it must obey
/// the same rules as granting. Only the agreement's own policy is ever deleted, never on a
/// protected or unlisted role, and a grant that cannot be revoked is reported, not forgotten.
#[tokio::test]
async fn revoking_from_the_ledger_obeys_the_role_guard() {
    let mut inactive = agreement("agr-t", "bucket", by_product(SHIPMENTS));
    inactive["info"]["status"] = json!("approved");
    let stack = Stack::start(scenario(vec![inactive])).await;
    stack.create_consumer_roles().await;
    stack
        .create_role("dmm-integration-consumer", "/", None, &[])
        .await;
    stack.create_role("ops-admin", "/", None, &[]).await;
    let deny = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::prod-*"}]});
    stack.put_policy("ops-admin", "deny-prod", &deny).await;
    let grant = expected_policy("bucket");
    for (role, id) in [
        ("dmm-integration-consumer", "agr-t"),
        ("dmm-integration-consumer", "agr-gone"),
        (SHIPMENTS_ROLE, "agr-t"),
        (SHIPMENTS_ROLE, "agr-other"),
    ] {
        stack.put_policy(role, &policy_name(id), &grant).await;
    }
    // A ledger entry nobody should trust: other policies, other agreements, a protected role.
    let entry = |id: &str| {
        json!({"agreementId": id, "grants": [
            {"roleName": "ops-admin", "roleArn": role_arn("ops-admin", "/"), "policyName": "deny-prod"},
            {"roleName": SHIPMENTS_ROLE, "roleArn": role_arn(SHIPMENTS_ROLE, "/"), "policyName": policy_name("agr-other")},
            {"roleName": "dmm-integration-consumer", "roleArn": role_arn("dmm-integration-consumer", "/"), "policyName": policy_name(id)},
            {"roleName": SHIPMENTS_ROLE, "roleArn": role_arn(SHIPMENTS_ROLE, "/"), "policyName": policy_name(id)},
        ]})
    };
    for id in ["agr-t", "agr-gone"] {
        stack
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(format!("grants/{id}.json"))
            .body(entry(id).to_string().into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    let function = stack
        .function(&[("protected_role_names", "dmm-integration-*")])
        .await;

    let events = [
        serde_json::to_value(stack.sim.emit("AccessDeactivatedEvent", "agr-t")).unwrap(),
        serde_json::to_value(stack.sim.emit("AccessDeletedEvent", "agr-gone")).unwrap(),
    ];
    let handled = stack.deliver(&function, &events).await;
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());

    // Only agr-t's own policy on the allowed role went.
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-t")).await,
        None
    );
    assert_eq!(
        stack.inline_policies("ops-admin").await,
        [("deny-prod".to_owned(), deny)].into()
    );
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-other"))
            .await
            .is_some()
    );
    assert_eq!(
        stack
            .inline_policies("dmm-integration-consumer")
            .await
            .len(),
        2,
        "protected role untouched"
    );
    // What could not be revoked is still known, and the agreement says why.
    for id in ["agr-t", "agr-gone"] {
        let kept = stack.ledger(id).await.expect("entry kept");
        assert_eq!(
            kept["grants"],
            json!([{"roleName": "dmm-integration-consumer",
                    "roleArn": role_arn("dmm-integration-consumer", "/"),
                    "policyName": policy_name(id)}]),
            "{id}"
        );
    }
    let error = error_of(&stack.agreement("agr-t"));
    assert!(
        error.contains("cannot be revoked") && error.contains("dmm-integration-consumer"),
        "{error}"
    );
    assert!(
        handled
            .lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["agreement_id"] == "agr-gone"),
        "{}",
        handled.dump()
    );
}

/// Reading the consumer of an inactive agreement is how a grant made before the ledger is found;
/// a DMM outage while reading it must be retried, not taken as "no consumer" (which would mark
/// the agreement inactive in DMM and leave the old grant in place for good).
#[tokio::test]
async fn a_dmm_fault_while_reading_an_inactive_agreements_consumer_is_retried() {
    let mut legacy = agreement("legacy-2", "bucket", by_product(SHIPMENTS));
    legacy["info"]["status"] = json!("approved");
    let stack = Stack::start(scenario(vec![legacy])).await;
    stack.create_consumer_roles().await;
    let name = policy_name("legacy-2");
    stack
        .put_policy(SHIPMENTS_ROLE, &name, &expected_policy("bucket"))
        .await;
    let function = stack.function(&[]).await;
    stack
        .sim
        .inject_fault(
            dmm_simulator::Fault::new(dmm_simulator::FaultKind::TooManyRequests {
                retry_after_seconds: 0,
            })
            .times(1000)
            .on_path(format!("/api/dataproducts/{SHIPMENTS}")),
        )
        .unwrap();

    let event = serde_json::to_value(stack.sim.emit("AccessDeactivatedEvent", "legacy-2")).unwrap();
    let record = record(&event, "msg-legacy", 1, 1);
    let handled = function.handle(vec![record.clone()]).await;
    assert_eq!(handled.failures, ["msg-legacy"], "{}", handled.dump());
    assert_eq!(
        stack.sim.puts().len(),
        0,
        "no inactive status while the grant may exist"
    );
    assert!(stack.policy(SHIPMENTS_ROLE, &name).await.is_some());

    stack.sim.clear_faults();
    let handled = function.handle(vec![record]).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(stack.policy(SHIPMENTS_ROLE, &name).await, None);
    assert_status(&stack.agreement("legacy-2"), TAG_INACTIVE, None);
}

/// Agreement ids that are not valid in IAM names (or too long) get a deterministic mapped policy
/// name and a hashed ledger key; granting, reporting and revoking after deletion all agree on it.
#[tokio::test]
async fn ids_that_are_no_iam_names_are_mapped_consistently() {
    let long = format!("agr-{}", "x".repeat(140));
    let odd = "Orders & Co/2024 ü".to_owned();
    let stack = Stack::start(scenario(vec![
        agreement(&long, "bucket", by_product(SHIPMENTS)),
        agreement(&odd, "folder", by_product(SHIPMENTS)),
    ]))
    .await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let activated: Vec<Value> = [&long, &odd].iter().map(|id| stack.activated(id)).collect();
    let handled = stack.deliver(&function, &activated).await;
    assert_eq!(handled.iam_writes(), 2, "{}", handled.dump());

    let policies = stack.inline_policies(SHIPMENTS_ROLE).await;
    assert_eq!(policies.len(), 2);
    for (id, port) in [(&long, "bucket"), (&odd, "folder")] {
        let document = stack.agreement(id);
        let name = document["custom"]["aws-policy-name"].as_str().unwrap();
        assert!(name.starts_with("DMM_DUA_") && name.len() <= 128, "{name}");
        assert!(dmm_aws_core::policy::is_policy_name(name), "{name}");
        assert_eq!(policies.get(name), Some(&expected_policy(port)), "{id}");
        let entry = stack.ledger(id).await.expect("ledger entry");
        assert_eq!(entry["agreementId"], id.as_str());
        assert_eq!(entry["grants"][0]["policyName"], name);
    }
    // Plain ids stay readable in the bucket; anything else is hashed.
    let keys = stack.ledger_keys().await;
    assert!(keys.contains(&format!("grants/{long}.json")), "{keys:?}");
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("grants/sha256-"))
            .count(),
        1,
        "{keys:?}"
    );

    let deleted: Vec<Value> = [&long, &odd]
        .iter()
        .map(|id| serde_json::to_value(stack.sim.delete_agreement(id).unwrap()).unwrap())
        .collect();
    let handled = stack.deliver(&function, &deleted).await;
    assert_eq!(handled.iam_writes(), 2, "{}", handled.dump());
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
    assert!(stack.ledger_keys().await.is_empty());
}

/// The ledger forgets a grant only after IAM lost it: when deleting the policy fails, the entry
/// stays, so the redelivered deletion event can still find what to revoke.
#[tokio::test]
async fn the_ledger_forgets_a_grant_only_after_iam_deleted_it() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-d",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let proxy = crate::common::iam_proxy::IamProxy::start(stack.moto.endpoint()).await;
    let function = stack
        .function(&[("AWS_ENDPOINT_URL_IAM", proxy.url())])
        .await;
    let activated = stack.activated("agr-d");
    stack.deliver(&function, &[activated]).await;

    proxy.throttle_action("DeleteRolePolicy", SHIPMENTS_ROLE);
    let deleted = serde_json::to_value(stack.sim.delete_agreement("agr-d").unwrap()).unwrap();
    let record = record(&deleted, "msg-d", 1, 1);
    let handled = function.handle(vec![record.clone()]).await;
    assert_eq!(handled.failures, ["msg-d"], "{}", handled.dump());
    assert!(proxy.throttled() > 0);
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-d"))
            .await
            .is_some()
    );
    assert!(stack.ledger("agr-d").await.is_some(), "still known");

    proxy.clear();
    let handled = function.handle(vec![record]).await;
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-d")).await,
        None
    );
    assert_eq!(stack.ledger("agr-d").await, None);
}

/// DMM may store tags and custom fields in its own order. A document that differs from ours
/// only in order is the same status: writing it again would emit another `AccessUpdatedEvent`,
/// and with a DMM that reorders on every save, that would never end.
#[tokio::test]
async fn a_status_that_dmm_stored_in_another_order_is_not_written_again() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-o",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let function = stack.function(&[]).await;
    let activated = stack.activated("agr-o");
    stack.deliver(&function, &[activated]).await;
    assert_eq!(stack.puts_for("agr-o"), 1);

    // DMM saved it with sorted tags and reordered custom fields, then announced the update.
    let mut stored = stack.agreement("agr-o");
    let mut tags = status_tags(&stored);
    tags.sort();
    stored["tags"] = json!(tags);
    let mut custom: Vec<(String, Value)> = stored["custom"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    custom.reverse();
    stored["custom"] = Value::Object(custom.into_iter().collect());
    stack.sim.upsert_agreement(stored).unwrap();
    let own_update = last_event(&stack.feed().await, "AccessUpdatedEvent", "agr-o");
    let handled = stack.deliver(&function, &[own_update]).await;
    assert_eq!((handled.iam_writes(), handled.statuses_written()), (0, 0));
    assert_eq!(stack.puts_for("agr-o"), 1, "reordering is not a change");
}

/// Migrating from the Python reference: an active agreement whose port it accepted but the
/// catalogue refuses (a wildcard bucket ARN) gets the error status, and the old, too broad grant
/// on the consumer's role is revoked with it (fail closed), though the ledger never knew it.
#[tokio::test]
async fn a_refused_port_revokes_the_grant_the_reference_made() {
    let mut migrated = agreement("py-1", "wildcard", by_product(SHIPMENTS));
    migrated["info"]["active"] = json!(true);
    migrated["info"]["status"] = json!("approved");
    let mut scenario = scenario(vec![migrated]);
    scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"id": "wildcard", "custom": {"output-port-type": "s3_bucket",
                     "aws-s3-bucket-arn": "arn:aws:s3:::orders-*"}}),
        );
    let stack = Stack::start(scenario).await;
    stack.create_consumer_roles().await;
    let too_broad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::orders-*", "arn:aws:s3:::orders-*/*"]}]});
    stack
        .put_policy(SHIPMENTS_ROLE, &policy_name("py-1"), &too_broad)
        .await;
    let function = stack.function(&[]).await;

    let event = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "py-1")).unwrap();
    let handled = stack.deliver(&function, &[event]).await;
    assert_eq!(
        handled.outcomes()[0]["outcome"],
        "error_status",
        "{}",
        handled.dump()
    );
    assert_eq!(handled.iam_writes(), 1, "{}", handled.dump());
    let error = error_of(&stack.agreement("py-1"));
    assert!(error.contains("output port `wildcard`"), "{error}");
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
    assert_eq!(stack.ledger("py-1").await, None);
}

/// IAM holding the same policy written differently (statements and actions in another order,
/// single values as lists, whitespace) is the same grant: compared structurally, not rewritten.
/// A policy that differs in substance is replaced.
#[tokio::test]
async fn an_equal_policy_written_differently_is_not_rewritten() {
    let stack = Stack::start(scenario(vec![
        agreement("agr-same", "folder", by_product(SHIPMENTS)),
        agreement("agr-tampered", "folder", by_product(SHIPMENTS)),
    ]))
    .await;
    stack.create_consumer_roles().await;
    let mut same = expected_policy("folder");
    let statements = same["Statement"].as_array_mut().unwrap();
    statements.reverse();
    for statement in statements.iter_mut() {
        let actions = match &statement["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .rev()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect(),
            other => panic!("{other}"),
        };
        statement["Action"] = json!(actions);
    }
    let pretty = serde_json::to_string_pretty(&same).unwrap();
    stack
        .iam
        .put_role_policy()
        .role_name(SHIPMENTS_ROLE)
        .policy_name(policy_name("agr-same"))
        .policy_document(pretty)
        .send()
        .await
        .unwrap();
    // Same shape, one resource widened by someone.
    let mut tampered = expected_policy("folder");
    tampered["Statement"][2]["Resource"] = json!(format!("arn:aws:s3:::{LAKE}/*"));
    stack
        .put_policy(SHIPMENTS_ROLE, &policy_name("agr-tampered"), &tampered)
        .await;
    let function = stack.function(&[]).await;

    let events: Vec<Value> = ["agr-same", "agr-tampered"]
        .iter()
        .map(|id| stack.activated(id))
        .collect();
    let handled = stack.deliver(&function, &events).await;
    let writes = |id: &str| {
        handled
            .outcomes()
            .iter()
            .find(|l| l["agreement_id"] == id)
            .map(|l| l["iam_writes"].as_u64().unwrap())
    };
    assert_eq!(writes("agr-same"), Some(0), "{}", handled.dump());
    assert_eq!(writes("agr-tampered"), Some(1), "{}", handled.dump());
    assert_eq!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-tampered"))
            .await,
        Some(expected_policy("folder"))
    );
    // Both are recorded in the ledger, so both can be revoked.
    assert!(stack.ledger("agr-same").await.is_some());
    assert!(stack.ledger("agr-tampered").await.is_some());
}
