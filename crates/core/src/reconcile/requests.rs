//! Reconcile requests: queue messages asking manage_iam_policies to converge one agreement, for
//! triggers that are not the agreement's own events (a data product change, the drift sweep).
//!
//! They travel in the agreement's FIFO group, so they never run at the same time as the
//! agreement's own events: converging is level-triggered, but two convergences of one agreement
//! racing each other could still leave a grant a later event had revoked.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Retry;
use crate::dmm::{AccessQuery, Agreement, ConsumerRef, ConsumerType, UNKNOWN};
use crate::feed::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, agreement_group_id};
use crate::queue::{EventQueue, QueueError, QueueMessage};

/// The CloudEvent type of a reconcile request. Not DMM's prefix: nobody mistakes it for a DMM
/// event in the queue or the logs.
pub const RECONCILE_REQUESTED: &str = "dmm-integration-aws.AgreementReconcileRequested";

/// Largest message SQS accepts on every queue.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Attempts per batch for entries SQS rejected as transient.
const SEND_ATTEMPTS: u32 = 4;

/// The request for `agreement_id`, made because of `trigger` (an event id, or the sweep's
/// invocation id), in the agreement's FIFO group.
pub fn request(trigger: &str, agreement_id: &str, reason: &str) -> QueueMessage {
    own_message(
        "reconcile",
        [trigger, agreement_id],
        RECONCILE_REQUESTED,
        json!({"id": agreement_id, "reason": reason}),
        agreement_group_id(agreement_id),
    )
}

/// The CloudEvent type of a drift sweep's continuation: the sweep ran out of time and the
/// function, receiving this, requests the agreements after `data.after`.
pub const SWEEP_CONTINUES: &str = "dmm-integration-aws.DriftSweepContinues";

/// The FIFO group of sweep continuations: one continuation of a sweep at a time, beside the
/// agreements' groups.
pub const SWEEP_GROUP: &str = "drift-sweep";

/// The continuation of sweep `sweep` (its first invocation's id) after agreement `after`.
pub fn sweep_continuation(sweep: &str, after: &str) -> QueueMessage {
    own_message(
        "sweep",
        [sweep, after],
        SWEEP_CONTINUES,
        json!({"id": sweep, "after": after}),
        SWEEP_GROUP.to_owned(),
    )
}

/// A CloudEvent the integration sends itself. Its id is derived from `key`: the same key always
/// gives the same id, so SQS drops the copy a retried trigger sends within its deduplication
/// window.
fn own_message(
    prefix: &str,
    key: [&str; 2],
    event_type: &str,
    data: Value,
    group_id: String,
) -> QueueMessage {
    let mut digest = Sha256::new();
    digest.update(key[0].as_bytes());
    digest.update([0]);
    digest.update(key[1].as_bytes());
    let id = format!("{prefix}-{}", hex::encode(digest.finalize()));
    let body = json!({
        "specversion": "1.0",
        "id": id,
        "type": event_type,
        "source": "dmm-integration-aws/manage_iam_policies",
        "data": data,
    });
    QueueMessage {
        body: body.to_string(),
        group_id,
        deduplication_id: id,
    }
}

/// A change in DMM that can move the grants of agreements other than its own subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// A data product, or one of its output ports (`port`), changed or was `deleted`.
    Product {
        product: &'a str,
        port: Option<&'a str>,
        deleted: bool,
    },
    /// A team changed: a team consumer's role is the team's custom field.
    Team(&'a str),
    /// A data contract changed: ports described by it find their data in its servers.
    Contract(&'a str),
}

impl<'a> Change<'a> {
    /// The `GET /api/access` queries that find every agreement the change can affect, so a
    /// change costs requests in proportion to its own agreements rather than to the mesh. Two
    /// changes read the whole list (one request per 10,000 agreements): a contract change, as
    /// the list has no contract filter, and a deleted data product, whose agreements DMM then
    /// lists with the provider `unknown`.
    pub fn queries(&self) -> Vec<AccessQuery<'a>> {
        match *self {
            Self::Product {
                deleted: true,
                port: None,
                ..
            } => vec![AccessQuery::default()],
            Self::Product { product, port, .. } => {
                let provider = AccessQuery {
                    provider_data_product_id: Some(product),
                    ..AccessQuery::default()
                };
                let consumer = AccessQuery {
                    consumer_data_product_id: Some(product),
                    ..AccessQuery::default()
                };
                match port {
                    Some(_) => vec![provider],
                    None => vec![provider, consumer],
                }
            }
            Self::Team(_) => vec![AccessQuery {
                consumer_type: Some(ConsumerType::Team),
                ..AccessQuery::default()
            }],
            Self::Contract(_) => vec![AccessQuery::default()],
        }
    }

    /// Whether the change can move the grant of `agreement`. Only active agreements have a grant
    /// to move; one whose deactivation was missed is repaired by the drift sweep. Checked on
    /// every listed document, whatever the query asked: a server that ignores a filter must not
    /// turn a change into a reconcile of the whole mesh.
    pub fn affects(&self, agreement: &Agreement) -> bool {
        if !agreement.is_active() {
            return false;
        }
        match *self {
            Self::Product {
                product,
                port,
                deleted,
            } => {
                // Read raw: after a deletion DMM fills the provider with `unknown`.
                let (provider_product, provider_port) = agreement.provider_ids();
                let on_port = |listed: Option<&str>| {
                    port.is_none_or(|port| {
                        listed == Some(port) || (deleted && listed == Some(UNKNOWN))
                    })
                };
                let provider = provider_product == Some(product) && on_port(provider_port);
                // Any active agreement whose provider product is gone has nothing to grant from.
                let orphaned = deleted && port.is_none() && provider_product == Some(UNKNOWN);
                let consumer = port.is_none()
                    && matches!(agreement.consumer(), Ok(ConsumerRef::DataProduct(id)) if id == product);
                provider || orphaned || consumer
            }
            Self::Team(team) => {
                matches!(agreement.consumer(), Ok(ConsumerRef::Team(id)) if id == team)
            }
            Self::Contract(contract) => agreement.provider_contract_id() == Some(contract),
        }
    }
}

/// The ids of the agreements in `documents` (as listed by DMM) the change affects, each once;
/// documents that are not agreements are skipped.
pub fn affected(documents: &[Value], change: &Change<'_>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    documents
        .iter()
        .filter_map(|doc| Agreement::from_value(doc.clone()).ok())
        .filter(|agreement| change.affects(agreement))
        .map(|agreement| agreement.id().to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Sends every request, ten per call, re-sending entries SQS rejected as transient. A request
/// SQS refuses for good (larger than a message can be: only an absurd agreement id does that) is
/// logged and left out; there is no agreement it could converge. Returns how many were sent.
pub async fn send_all<Q: EventQueue>(queue: &Q, requests: &[QueueMessage]) -> Result<usize, Retry> {
    let (fit, too_large): (Vec<&QueueMessage>, Vec<&QueueMessage>) = requests
        .iter()
        .partition(|m| m.body.len() <= MAX_MESSAGE_BYTES);
    for message in &too_large {
        tracing::warn!(
            bytes = message.body.len(),
            "reconcile request larger than an SQS message; left out"
        );
    }
    let mut sent = 0usize;
    let mut batch: Vec<QueueMessage> = Vec::new();
    let mut bytes = 0usize;
    for message in fit {
        if batch.len() == MAX_BATCH_ENTRIES || bytes + message.body.len() > MAX_BATCH_BYTES {
            sent += send_batch(queue, std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
        bytes += message.body.len();
        batch.push(message.clone());
    }
    if !batch.is_empty() {
        sent += send_batch(queue, batch).await?;
    }
    Ok(sent)
}

async fn send_batch<Q: EventQueue>(
    queue: &Q,
    mut pending: Vec<QueueMessage>,
) -> Result<usize, Retry> {
    let total = pending.len();
    let mut refused = 0usize;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let rejected = queue.send_batch(&pending).await.map_err(Retry::Queue)?;
        let mut again = Vec::new();
        for entry in &rejected {
            let message = &pending[entry.index];
            if entry.sender_fault {
                refused += 1;
                tracing::warn!(
                    code = entry.code,
                    reason = entry.message,
                    request = message.deduplication_id,
                    "SQS refused a reconcile request; left out"
                );
            } else {
                again.push(message.clone());
            }
        }
        if again.is_empty() {
            return Ok(total - refused);
        }
        if attempt == SEND_ATTEMPTS {
            let entry = &rejected[0];
            return Err(Retry::Queue(QueueError {
                reason: format!(
                    "SQS kept rejecting reconcile requests ({}: {}) after {attempt} attempts",
                    entry.code, entry.message
                ),
            }));
        }
        tokio::time::sleep(Duration::from_millis(200) * attempt).await;
        pending = again;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreement(id: &str, active: bool, provider: (&str, &str), consumer: Value) -> Value {
        json!({"id": id, "info": {"active": active},
               "provider": {"dataProductId": provider.0, "outputPortId": provider.1},
               "consumer": consumer})
    }

    #[test]
    fn product_changes_affect_active_agreements_naming_the_product_or_port() {
        let docs = vec![
            agreement(
                "on-port",
                true,
                ("orders", "s3"),
                json!({"dataProductId": "billing"}),
            ),
            agreement(
                "other-port",
                true,
                ("orders", "raw"),
                json!({"teamId": "t"}),
            ),
            agreement(
                "consumer",
                true,
                ("sales", "s3"),
                json!({"dataProductId": "orders"}),
            ),
            agreement("inactive", false, ("orders", "s3"), json!({"teamId": "t"})),
            agreement(
                "unrelated",
                true,
                ("sales", "s3"),
                json!({"teamId": "orders"}),
            ),
            json!("not an agreement"),
        ];
        let product = Change::Product {
            product: "orders",
            port: None,
            deleted: false,
        };
        assert_eq!(
            affected(&docs, &product),
            ["on-port", "other-port", "consumer"]
        );
        assert_eq!(product.queries().len(), 2, "as provider and as consumer");
        let port = Change::Product {
            product: "orders",
            port: Some("s3"),
            deleted: false,
        };
        assert_eq!(affected(&docs, &port), ["on-port"]);
        assert_eq!(port.queries().len(), 1, "a port has no consumer side");
        // Listed twice (by both queries of a product change), reconciled once.
        let twice = [docs.clone(), docs].concat();
        assert_eq!(affected(&twice, &port), ["on-port"]);
    }

    #[test]
    fn a_deletion_finds_the_agreements_dmm_now_lists_with_the_provider_unknown() {
        let docs = vec![
            agreement(
                "orphan",
                true,
                ("unknown", "unknown"),
                json!({"teamId": "t"}),
            ),
            agreement(
                "port-gone",
                true,
                ("orders", "unknown"),
                json!({"teamId": "t"}),
            ),
            agreement("other", true, ("sales", "s3"), json!({"teamId": "t"})),
        ];
        let product = Change::Product {
            product: "orders",
            port: None,
            deleted: true,
        };
        assert_eq!(affected(&docs, &product), ["orphan", "port-gone"]);
        assert_eq!(product.queries(), [AccessQuery::default()]);
        let port = Change::Product {
            product: "orders",
            port: Some("s3"),
            deleted: true,
        };
        assert_eq!(affected(&docs, &port), ["port-gone"]);
        let updated = Change::Product {
            product: "orders",
            port: None,
            deleted: false,
        };
        assert_eq!(
            affected(&docs, &updated),
            ["port-gone"],
            "an update reaches the product's own agreements; only a deletion looks for orphans"
        );
    }

    #[test]
    fn team_and_contract_changes_affect_their_own_agreements() {
        let with_contract = |id: &str, contract: &str, consumer: Value| {
            let mut doc = agreement(id, true, ("orders", "s3"), consumer);
            doc["provider"]["dataContractId"] = json!(contract);
            doc
        };
        let docs = vec![
            with_contract(
                "team",
                "c1",
                json!({"dataProductId": "unknown", "teamId": "t", "userId": "unknown"}),
            ),
            with_contract(
                "product-of-team",
                "c2",
                json!({"dataProductId": "p", "teamId": "t", "userId": "unknown"}),
            ),
            agreement("other-team", true, ("orders", "s3"), json!({"teamId": "u"})),
        ];
        assert_eq!(affected(&docs, &Change::Team("t")), ["team"]);
        assert_eq!(
            Change::Team("t").queries()[0].consumer_type,
            Some(ConsumerType::Team)
        );
        assert_eq!(
            affected(&docs, &Change::Contract("c2")),
            ["product-of-team"]
        );
        assert!(affected(&docs, &Change::Contract("unknown")).is_empty());
    }

    #[test]
    fn requests_are_deterministic_per_trigger_and_grouped_by_agreement() {
        let a = request("evt-1", "agr/1", "why");
        assert_eq!(a, request("evt-1", "agr/1", "why"));
        assert_ne!(
            a.deduplication_id,
            request("evt-2", "agr/1", "why").deduplication_id
        );
        assert_ne!(
            a.deduplication_id,
            request("evt-1", "agr/2", "why").deduplication_id
        );
        assert_eq!(a.group_id, "agr/1");
        assert!(a.deduplication_id.len() <= 128);
        let body: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(body["type"], RECONCILE_REQUESTED);
        assert_eq!(body["data"]["id"], "agr/1");
        assert_eq!(body["id"], a.deduplication_id.as_str());
    }
}
