//! The integration as a registered DMM connector (ADR 018): poll_feed declares one connector
//! document per deployment with its version and a `state` telling a DMM user, from DMM alone,
//! whether the AWS integration is alive: the last event forwarded, the last successful run, that
//! run's counts, and manage_iam_policies' last batch.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::feed::poll::Summary;
use crate::reconcile::status::{EXECUTOR_NAME, PLATFORM};

/// The connector id when `connector_id` is not set (Terraform sets one per deployment).
pub const DEFAULT_CONNECTOR_ID: &str = "dmm-integration-aws";

/// What manage_iam_policies last did, as it records it for poll_feed to report (at most once a
/// minute per function instance: cheap to write, and a minute is fine for "alive").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManageHealth {
    /// RFC 3339 time the batch finished.
    pub last_batch_at: String,
    pub messages: usize,
    pub granted: usize,
    pub revoked: usize,
    pub error_statuses: usize,
    pub retries: usize,
}

/// Where manage_iam_policies' health record is kept (the state bucket).
pub trait HealthStore: Sync {
    fn read(&self) -> impl Future<Output = Option<ManageHealth>> + Send;
    fn write(&self, health: &ManageHealth) -> impl Future<Output = ()> + Send;
}

/// How the run poll_feed reports ended.
#[derive(Debug)]
pub enum Run<'a> {
    Finished(&'a Summary),
    /// The error as shown to the operator.
    Failed(&'a str),
}

/// The connector document for `PUT /api/connectors/{id}`. A failed run keeps the last
/// successful run's heartbeat and event id from `previous_state` (the stored document's
/// `state`), so DMM shows since when the integration has been failing.
pub fn document(
    id: &str,
    run: Run<'_>,
    previous_state: Option<&Value>,
    manage: Option<&ManageHealth>,
    now: &str,
) -> Value {
    let carried = |key: &str| {
        previous_state
            .and_then(|state| state.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (last_event_id, heartbeat, last_run) = match run {
        Run::Finished(summary) => (
            summary
                .last_event_id
                .as_deref()
                .map_or_else(|| carried("lastEventId"), |id| json!(id)),
            json!(now),
            json!({
                "finishedAt": now,
                "outcome": "succeeded",
                "forwarded": summary.forwarded,
                "skipped": summary.skipped,
                "duplicates": summary.duplicates,
                "pages": summary.pages,
                "caughtUp": summary.caught_up,
            }),
        ),
        Run::Failed(error) => (
            carried("lastEventId"),
            carried("lastHeartbeat"),
            json!({"finishedAt": now, "outcome": "failed", "error": error}),
        ),
    };
    let mut state = json!({
        "lastEventId": last_event_id,
        "lastHeartbeat": heartbeat,
        "lastRun": last_run,
    });
    if let Some(manage) = manage {
        state["manageIamPolicies"] = json!(manage);
    }
    json!({
        "id": id,
        "info": {
            "type": PLATFORM,
            "description": "dmm-integration-aws: grants and revokes AWS IAM access for Data Mesh \
                            Manager access agreements (poll_feed forwards the event feed to an \
                            SQS FIFO queue, manage_iam_policies converges IAM)",
            "connectorVersion": env!("CARGO_PKG_VERSION"),
        },
        "state": state,
        "custom": {"executor": EXECUTOR_NAME},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(last: Option<&str>) -> Summary {
        Summary {
            forwarded: 3,
            skipped: 2,
            duplicates: 1,
            pages: 2,
            last_event_id: last.map(str::to_owned),
            caught_up: true,
            newest_event_time: None,
        }
    }

    #[test]
    fn a_finished_run_is_the_heartbeat() {
        let doc = document("c1", Run::Finished(&summary(Some("e9"))), None, None, "T1");
        assert_eq!(doc["id"], "c1");
        assert_eq!(doc["info"]["type"], "aws");
        assert_eq!(doc["info"]["connectorVersion"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["state"]["lastEventId"], "e9");
        assert_eq!(doc["state"]["lastHeartbeat"], "T1");
        assert_eq!(doc["state"]["lastRun"]["forwarded"], 3);
        assert_eq!(doc["state"]["lastRun"]["duplicates"], 1);
        assert!(doc["state"].get("manageIamPolicies").is_none());
    }

    #[test]
    fn a_failed_run_keeps_the_last_heartbeat_and_reports_the_error() {
        let previous = json!({"lastEventId": "e9", "lastHeartbeat": "T1"});
        let health = ManageHealth {
            last_batch_at: "T0".into(),
            messages: 4,
            granted: 1,
            ..ManageHealth::default()
        };
        let doc = document(
            "c1",
            Run::Failed("DMM answered 503"),
            Some(&previous),
            Some(&health),
            "T2",
        );
        assert_eq!(doc["state"]["lastHeartbeat"], "T1");
        assert_eq!(doc["state"]["lastEventId"], "e9");
        assert_eq!(doc["state"]["lastRun"]["outcome"], "failed");
        assert_eq!(doc["state"]["lastRun"]["error"], "DMM answered 503");
        assert_eq!(doc["state"]["manageIamPolicies"]["lastBatchAt"], "T0");
        assert_eq!(doc["state"]["manageIamPolicies"]["granted"], 1);
        // An idle run (nothing new) keeps the event id it had.
        let idle = document(
            "c1",
            Run::Finished(&summary(None)),
            Some(&previous),
            None,
            "T3",
        );
        assert_eq!(idle["state"]["lastEventId"], "e9");
    }
}
