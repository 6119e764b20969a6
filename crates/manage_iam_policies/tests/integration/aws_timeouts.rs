//! Every AWS call has a timeout (ADR 001, ADR 015): a hung service costs one message a retry,
//! not the whole invocation. The real binary reaches IAM through the fault proxy, which accepts
//! requests and never answers them; `aws_operation_timeout_ms` is lowered so the test is quick
//! (the default is 25 s, attempts 10 s, against a 60 s function timeout).

use std::time::{Duration, Instant};

use crate::common::*;
use local_stack::{Fault, FaultPlan, FaultProxy, Matcher, Trigger};

#[tokio::test]
async fn a_stalled_iam_call_is_given_back_for_retry_well_before_the_lambda_timeout() {
    let stack = Stack::start(scenario(vec![agreement(
        "agr-stall",
        "bucket",
        by_product(SHIPMENTS),
    )]))
    .await;
    stack.create_consumer_roles().await;
    let proxy = FaultProxy::start(stack.moto.endpoint()).await.unwrap();
    proxy.set_faults(FaultPlan::seeded(1).with(
        Fault::Stall,
        Matcher::service("iam"),
        Trigger::Probability(1.0),
    ));
    let operation = Duration::from_millis(2_000);
    let function = stack
        .function(&[
            ("AWS_ENDPOINT_URL_IAM", proxy.endpoint()),
            ("aws_operation_timeout_ms", "2000"),
        ])
        .await;

    let activated = stack.activated("agr-stall");
    stack.send(&[activated]).await;
    let records = stack.receive().await;
    assert_eq!(records.len(), 1);
    let started = Instant::now();
    let handled = function.handle(records.clone()).await;
    let took = started.elapsed();

    // Reported for retry, after about the operation timeout, far from the 60 s Lambda timeout.
    assert_eq!(
        handled.failures,
        [records[0]["messageId"].as_str().unwrap()],
        "{}",
        handled.dump()
    );
    assert!(
        took >= operation && took < operation * 3,
        "took {took:?}; {}",
        handled.dump()
    );
    let retry = handled
        .lines
        .iter()
        .find(|l| l["outcome"] == "retry")
        .unwrap_or_else(|| panic!("no retry line: {}", handled.dump()));
    let error = retry["error"].as_str().unwrap();
    assert!(
        error.contains("IAM") && error.contains("timed out"),
        "{error}"
    );
    assert_eq!(retry["agreement_id"], "agr-stall");
    // The SDK retried the timed-out attempt (attempts get 2/5 of the operation) before giving up.
    let stalled = proxy.stats().stall;
    assert!((2..=3).contains(&stalled), "{stalled} stalled IAM requests");
    assert_eq!(proxy.stats().forwarded, 0);
    assert_eq!(stack.ledger("agr-stall").await, None, "nothing recorded");
    assert_eq!(stack.puts_for("agr-stall"), 0, "no status written");

    // IAM answers again: the redelivered message grants.
    stack.settle(&records, &handled.failures).await;
    proxy.clear();
    let handled = Handled::merge(stack.drain(&function, 3).await);
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(handled.iam_writes(), 1);
    assert_eq!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-stall"))
            .await,
        Some(expected_policy("bucket"))
    );
    assert_status(
        &stack.agreement("agr-stall"),
        TAG_ACTIVE,
        Some(&role_arn(SHIPMENTS_ROLE, "/")),
    );
}
