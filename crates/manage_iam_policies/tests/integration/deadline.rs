//! A batch answers before its Lambda deadline: a message still waiting on a slow DMM is abandoned
//! and given back to SQS with the rest of its group, while the other groups' work is kept.

use std::time::{Duration, Instant};

use crate::common::*;
use dmm_simulator::{Fault, FaultKind};
use serde_json::{Value, json};

#[tokio::test]
async fn a_message_stuck_on_dmm_is_given_back_before_the_deadline_and_the_rest_is_kept() {
    let stack = Stack::start(scenario(vec![
        agreement("agr-slow", "bucket", by_product(SHIPMENTS)),
        agreement("agr-fast", "stream", by_product(BILLING)),
    ]))
    .await;
    stack.create_consumer_roles().await;
    // A request timeout longer than the invocation: only the deadline can end the wait.
    let function = stack.function(&[("dmm_request_timeout_ms", "30000")]).await;
    let events: Vec<Value> = ["agr-slow", "agr-fast"]
        .iter()
        .map(|id| stack.activated(id))
        .collect();
    let updated = serde_json::to_value(stack.sim.emit("AccessUpdatedEvent", "agr-slow")).unwrap();
    stack
        .send(&[events[0].clone(), updated, events[1].clone()])
        .await;
    stack
        .sim
        .inject_fault(Fault::new(FaultKind::Delay { ms: 20_000 }).on_path("/api/access/agr-slow"))
        .unwrap();

    let records = stack.receive().await;
    assert_eq!(records.len(), 3);
    let timeout = Duration::from_secs(6);
    let started = Instant::now();
    let answer = function
        .lambda
        .invoke(json!({"Records": records}), timeout)
        .await
        .expect("the function answers before its timeout instead of being killed");
    let took = started.elapsed();
    assert!(took < timeout, "answered after {took:?}");
    let failed: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    let slow_group: Vec<&str> = records[..2]
        .iter()
        .map(|r| r["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(failed, slow_group, "{answer}");
    let log = function.lambda.logs();
    assert!(
        log.iter()
            .any(|l| l.text.contains("abandoned at the invocation's deadline")),
        "the log says why"
    );
    // The other group finished inside the same invocation.
    assert_eq!(
        stack.policy(BILLING_ROLE, &policy_name("agr-fast")).await,
        Some(expected_policy("stream"))
    );
    assert!(
        stack
            .policy(SHIPMENTS_ROLE, &policy_name("agr-slow"))
            .await
            .is_none()
    );

    // SQS redelivers the given-back group; DMM answers now.
    stack
        .settle(
            &records,
            &failed.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>(),
        )
        .await;
    let handled = Handled::merge(stack.drain(&function, 5).await);
    assert!(handled.failures.is_empty(), "{}", handled.dump());
    assert_eq!(
        stack.policy(SHIPMENTS_ROLE, &policy_name("agr-slow")).await,
        Some(expected_policy("bucket"))
    );
    assert_status(
        &stack.agreement("agr-slow"),
        TAG_ACTIVE,
        Some(&role_arn(SHIPMENTS_ROLE, "/")),
    );
}
