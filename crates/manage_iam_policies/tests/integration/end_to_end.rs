//! The whole path for real: access granted by manage_iam_policies is checked by moto with IAM
//! enforcement (the consumer assumes its role and reads S3), and events travel from the DMM
//! feed through poll_feed and the SQS FIFO queue into manage_iam_policies.
//!
//! Needs the `poll_feed` binary of this build: `cargo build -p poll_feed`.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::common::*;
use dmm_aws_core::reconcile::packed::INLINE_POLICY_NAME;
use local_stack::owned::Owned;
use local_stack::{LambdaFunction, binary_path};
use serde_json::{Value, json};

const ARCHIVE: &str = "archive-lake";
const OTHER: &str = "other-lake";

/// With IAM enforced: after activation the consumer, through its assumed role, reads the
/// granted folder and bucket and nothing else; after deactivation and deletion it reads nothing.
/// In the default layout, packed: the role's packed inline policy holds both grants.
#[tokio::test]
async fn the_consumer_role_can_read_exactly_what_is_granted_while_it_is_granted() {
    // Both agreements of the batch share the role's packed inline policy, so they share its
    // write when the second is placed before the first wrote: one PutRolePolicy or two; at the
    // end, one holding the remaining grant unless both left in time, then its deletion.
    readable_exactly_while_granted(PACKED, 1..=2, 1..=2).await;
}

/// The same in the one-inline-policy-per-agreement layout: one write per agreement.
#[tokio::test]
async fn inline_the_consumer_role_can_read_exactly_what_is_granted_while_it_is_granted() {
    readable_exactly_while_granted(INLINE, 2..=2, 2..=2).await;
}

async fn readable_exactly_while_granted(
    layout: (&str, &str),
    granting: RangeInclusive<u64>,
    revoking: RangeInclusive<u64>,
) {
    let mut scenario = scenario(vec![
        agreement("agr-folder", "folder-inferred", by_product(SHIPMENTS)),
        agreement("agr-archive", "archive", by_product(SHIPMENTS)),
    ]);
    scenario.data_products[0]["outputPorts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "archive", "type": "s3",
                     "server": {"location": format!("s3://{ARCHIVE}")}}));
    let stack = Stack::start(scenario).await;
    let owned = Owned {
        moto: &stack.moto,
        sdk: &stack.sdk,
    };
    owned
        .bucket(ARCHIVE, &[(PRODUCT_TAG, PROVIDER)])
        .await
        .unwrap();
    owned.bucket(OTHER, &[(TEAM_TAG, "hr")]).await.unwrap();
    for (bucket, key) in [
        (LAKE, "curated/orders.csv"),
        (LAKE, "curated-private/salaries.csv"),
        (LAKE, "raw/orders.json"),
        (ARCHIVE, "2019/orders.csv"),
        (OTHER, "orders.csv"),
    ] {
        put_object(&stack.s3, bucket, key).await;
    }
    let (service, function) = stack.enforced_with_shipments_service_and(&[layout]).await;

    let consumer = assumed_s3(&stack, &service, SHIPMENTS_ROLE).await;
    let everything = [
        (LAKE, "curated/orders.csv"),
        (LAKE, "curated-private/salaries.csv"),
        (LAKE, "raw/orders.json"),
        (ARCHIVE, "2019/orders.csv"),
        (OTHER, "orders.csv"),
    ];
    for (bucket, key) in everything {
        assert_eq!(
            read(&consumer, bucket, key).await,
            Err("AccessDenied".to_owned()),
            "before activation: {bucket}/{key}"
        );
    }

    let activated: Vec<Value> = ["agr-folder", "agr-archive"]
        .iter()
        .map(|id| stack.activated(id))
        .collect();
    let handled = stack.deliver(&function, &activated).await;
    assert!(
        granting.contains(&handled.iam_writes()),
        "{}",
        handled.dump()
    );
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    let inline: Vec<String> = stack
        .inline_policies(SHIPMENTS_ROLE)
        .await
        .into_keys()
        .collect();
    let expected = if layout == PACKED {
        vec![INLINE_POLICY_NAME.to_owned()]
    } else {
        ["agr-archive", "agr-folder"].map(policy_name).to_vec()
    };
    assert_eq!(inline, expected);

    assert_eq!(
        read(&consumer, LAKE, "curated/orders.csv").await,
        Ok(format!("contents of {LAKE}/curated/orders.csv"))
    );
    assert_eq!(
        read(&consumer, ARCHIVE, "2019/orders.csv").await,
        Ok(format!("contents of {ARCHIVE}/2019/orders.csv"))
    );
    for (bucket, key) in [
        (LAKE, "curated-private/salaries.csv"),
        (LAKE, "raw/orders.json"),
        (OTHER, "orders.csv"),
    ] {
        assert_eq!(
            read(&consumer, bucket, key).await,
            Err("AccessDenied".to_owned()),
            "outside the grant: {bucket}/{key}"
        );
    }

    // One agreement ends, the other is deleted: the same session can read nothing any more.
    let ended = [
        stack.deactivated("agr-folder"),
        serde_json::to_value(stack.sim.delete_agreement("agr-archive").unwrap()).unwrap(),
    ];
    let handled = stack.deliver(&function, &ended).await;
    assert!(
        revoking.contains(&handled.iam_writes()),
        "{}",
        handled.dump()
    );
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    for (bucket, key) in everything {
        assert_eq!(
            read(&consumer, bucket, key).await,
            Err("AccessDenied".to_owned()),
            "after deactivation: {bucket}/{key}"
        );
    }
    assert!(stack.ledger_keys().await.is_empty());
}

/// poll_feed with this stack's configuration.
async fn poll_feed(stack: &Stack) -> LambdaFunction {
    let env = local_stack::Deployment {
        dmm_base_url: stack.sim.base_url(),
        dmm_api_key_secret_name: SECRET,
        bucket_name: BUCKET,
        sqs_queue_url: &stack.queue_url,
    }
    .poll_feed_env(&stack.moto, &stack.admin);
    let binary = binary_path("poll_feed").expect("build it first: cargo build -p poll_feed");
    LambdaFunction::start(binary, "poll_feed", env)
        .await
        .expect("start poll_feed")
}

async fn poll(poll_feed: &LambdaFunction) -> u64 {
    let summary = poll_feed
        .invoke(json!({"source": "aws.events"}), Duration::from_secs(60))
        .await
        .expect("poll_feed");
    assert_eq!(summary["caught_up"], true, "{summary}");
    summary["forwarded"].as_u64().expect("forwarded")
}

/// DMM feed → poll_feed → SQS FIFO → manage_iam_policies → IAM and back to DMM; the status
/// write comes back through the same path as an `AccessUpdatedEvent` and ends there.
#[tokio::test]
async fn feed_to_queue_to_iam_and_back_without_a_feedback_loop() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-e2e",
        "table",
        by_team(ANALYTICS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let poll_feed = poll_feed(&stack).await;
    let manage = stack.function(&[]).await;
    let name = policy_name("agr-e2e");
    let analytics_arn = role_arn(ANALYTICS_ROLE, ANALYTICS_ROLE_PATH);

    for (change, expected_policy_after, status) in [
        ("activate", Some(expected_policy("table")), TAG_ACTIVE),
        ("deactivate", None, TAG_INACTIVE),
    ] {
        match change {
            "activate" => stack.sim.activate("agr-e2e").unwrap(),
            _ => stack.sim.deactivate("agr-e2e").unwrap(),
        };
        let puts = stack.sim.puts().len();
        assert_eq!(poll(&poll_feed).await, 1, "{change} forwarded");
        let handled = Handled::merge(stack.drain(&manage, 5).await);
        assert!(handled.failures.is_empty(), "{}", handled.dump());
        assert_eq!(handled.iam_writes(), 1, "{change}: {}", handled.dump());
        assert_eq!(handled.statuses_written(), 1);
        // The same outcome as CloudWatch metrics (EMF lines in the function's log stream).
        let (applied, revoked) = if change == "activate" {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        assert_eq!(
            handled.metric("GrantsApplied"),
            applied,
            "{}",
            handled.dump()
        );
        assert_eq!(
            handled.metric("GrantsRevoked"),
            revoked,
            "{}",
            handled.dump()
        );
        assert_eq!(handled.metric("Retries"), 0.0);
        assert_eq!(
            stack.policy(ANALYTICS_ROLE, &name).await,
            expected_policy_after
        );
        let arn = (status == TAG_ACTIVE).then_some(analytics_arn.as_str());
        assert_status(&stack.agreement("agr-e2e"), status, arn);
        assert_eq!(stack.sim.puts().len(), puts + 1);

        // Our PUT produced an AccessUpdatedEvent; it travels the same way and stops here.
        assert_eq!(poll(&poll_feed).await, 1, "own update event forwarded");
        let handled = Handled::merge(stack.drain(&manage, 5).await);
        assert_eq!(handled.outcomes().len(), 1, "{}", handled.dump());
        assert_eq!(
            handled.outcomes()[0]["event_type"],
            event_type("AccessUpdatedEvent").as_str()
        );
        assert_eq!((handled.iam_writes(), handled.statuses_written()), (0, 0));
        assert_eq!(handled.metric("GrantsUnchanged"), 1.0, "{}", handled.dump());
        assert_eq!(stack.sim.puts().len(), puts + 1, "no second DMM write");
        assert_eq!(poll(&poll_feed).await, 0, "nothing new: the loop ended");
    }
}

/// IAM refusing the write (here: the execution role lacks `iam:PutRolePolicy`) is permanent for
/// the agreement: error status naming the refusal, message acknowledged, nothing granted.
#[tokio::test]
async fn an_iam_refusal_is_an_error_status_not_an_endless_retry() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-denied",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let mut policy = function_policy();
    let statements = policy["Statement"].as_array_mut().unwrap();
    let actions = statements[2]["Action"].as_array_mut().unwrap();
    actions.retain(|a| a != "iam:PutRolePolicy");
    let (_, credentials) = user(&stack, "manage-iam-policies", &policy).await;
    stack.moto.enforce_iam().await.unwrap();
    let function = stack.function_as(&credentials, &[]).await;

    let activated = stack.activated("agr-denied");
    let handled = stack.deliver(&function, &[activated]).await;
    assert_eq!(
        handled.outcomes()[0]["outcome"],
        "error_status",
        "{}",
        handled.dump()
    );
    let error = error_of(&stack.agreement("agr-denied"));
    assert!(
        error.contains("IAM refused PutRolePolicy on role `shipments-consumer`"),
        "{error}"
    );
    assert_status(&stack.agreement("agr-denied"), TAG_ERROR, None);
    assert!(stack.inline_policies(SHIPMENTS_ROLE).await.is_empty());
    assert_eq!(
        stack.ledger("agr-denied").await,
        None,
        "fail closed: ledger cleaned"
    );
}
