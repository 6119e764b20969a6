//! What poll_feed forwards, and how: event routing, SQS FIFO group and deduplication ids, and
//! batching. Pure functions; the polling loop lives in [`poll`].

pub mod event_types;
pub mod poll;

use sha2::{Digest, Sha256};

use crate::dmm::FeedEvent;
use event_types::Kind;

/// SQS accepts at most ten entries per `SendMessageBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Sum of message bodies per batch. SQS allows 256 KiB per batch on every queue; staying under
/// it means one oversized batch can never be rejected as a whole.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The FIFO group for events that name no resource: they are still delivered, in order.
pub const FALLBACK_GROUP_ID: &str = "dmm-events-without-resource";

/// Whether poll_feed forwards an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Forward,
    Skip,
}

/// Forwards the agreement events manage_iam_policies acts on, or every event when configured.
/// Skipped events still move the checkpoint.
pub fn route(event: &FeedEvent, forward_all: bool) -> Route {
    if forward_all || event.event_type().is_some_and(event_types::is_acted_on) {
        Route::Forward
    } else {
        Route::Skip
    }
}

/// Characters SQS allows in `MessageGroupId` and `MessageDeduplicationId`.
fn is_sqs_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c.is_ascii_punctuation()
}

/// A value SQS accepts as a FIFO id (1–128 chars of alphanumerics and punctuation). Other values
/// are hashed, so the mapping stays deterministic and distinct values stay distinct.
pub fn sqs_id(value: &str) -> String {
    if !value.is_empty() && value.len() <= 128 && value.chars().all(is_sqs_id_char) {
        value.to_owned()
    } else {
        format!("sha256-{}", hex::encode(Sha256::digest(value.as_bytes())))
    }
}

/// One FIFO group per agreement: different agreements are processed in parallel, events of one
/// agreement strictly in order. A product, team or contract change gets a group of its own
/// namespace, so it never waits on (or for) an agreement that happens to share its id.
pub fn group_id(event: &FeedEvent) -> String {
    let Some(resource) = event.resource_id() else {
        return FALLBACK_GROUP_ID.to_owned();
    };
    let namespace = match event.event_type().and_then(event_types::kind) {
        Some(Kind::Product) => PRODUCT_GROUP_PREFIX,
        Some(Kind::Team) => TEAM_GROUP_PREFIX,
        Some(Kind::Contract) => CONTRACT_GROUP_PREFIX,
        Some(Kind::Agreement { .. }) | None => return agreement_group_id(resource),
    };
    sqs_id(&format!("{namespace}{resource}"))
}

/// The FIFO group of an agreement, for its events and for the reconcile requests made for it.
pub fn agreement_group_id(agreement_id: &str) -> String {
    sqs_id(agreement_id)
}

/// Prefixes of the FIFO groups of data product, team and data contract changes.
pub const PRODUCT_GROUP_PREFIX: &str = "data-product:";
pub const TEAM_GROUP_PREFIX: &str = "team:";
pub const CONTRACT_GROUP_PREFIX: &str = "data-contract:";

/// The event id, so a re-sent event (after a crash before the checkpoint) is dropped by SQS
/// within its five-minute deduplication window.
pub fn deduplication_id(event: &FeedEvent) -> String {
    sqs_id(event.id())
}

/// Splits events into `SendMessageBatch` calls: at most ten entries and [`MAX_BATCH_BYTES`] of
/// bodies each, order kept.
pub fn batches<'a>(events: &[&'a FeedEvent]) -> Vec<Vec<&'a FeedEvent>> {
    let mut out: Vec<Vec<&FeedEvent>> = Vec::new();
    let mut bytes = 0usize;
    for &event in events {
        let size = event.raw_json().len();
        let full = out
            .last()
            .is_none_or(|batch| batch.len() == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(batch) = out.last_mut() {
            batch.push(event);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn event(id: &str, event_type: &str, resource: Option<&str>, pad: usize) -> FeedEvent {
        let data = resource.map_or("{}".to_owned(), |r| format!(r#"{{"id":"{r}"}}"#));
        let json = format!(
            r#"{{"id":"{id}","type":"{event_type}","data":{data},"pad":"{}"}}"#,
            "x".repeat(pad)
        );
        FeedEvent::parse(RawValue::from_string(json).unwrap(), 0).unwrap()
    }

    const ACTIVATED: &str = "com.datamesh-manager.events.AccessActivatedEvent";

    #[test]
    fn routes_agreement_events_and_skips_the_rest() {
        assert_eq!(
            route(&event("1", ACTIVATED, Some("a"), 0), false),
            Route::Forward
        );
        let other = event(
            "2",
            "com.datamesh-manager.events.TeamCreatedEvent",
            Some("t"),
            0,
        );
        assert_eq!(route(&other, false), Route::Skip);
        assert_eq!(route(&other, true), Route::Forward);
    }

    #[test]
    fn product_changes_are_forwarded_in_their_own_group() {
        let changed = event(
            "3",
            "com.datamesh-manager.events.DataProductUpdatedEvent",
            Some("orders"),
            0,
        );
        assert_eq!(route(&changed, false), Route::Forward);
        assert_eq!(group_id(&changed), "data-product:orders");
        assert_eq!(
            group_id(&event("4", ACTIVATED, Some("orders"), 0)),
            "orders"
        );
        let team = event(
            "5",
            "com.entropy-data.events.TeamUpdatedEvent",
            Some("t1"),
            0,
        );
        assert_eq!(group_id(&team), "team:t1");
        let contract = event(
            "6",
            "com.datamesh-manager.events.DataContractUpdatedEvent",
            Some("c"),
            0,
        );
        assert_eq!(group_id(&contract), "data-contract:c");
    }

    #[test]
    fn group_is_the_resource_id_or_a_stable_fallback() {
        assert_eq!(group_id(&event("1", ACTIVATED, Some("agr-1"), 0)), "agr-1");
        assert_eq!(group_id(&event("1", ACTIVATED, None, 0)), FALLBACK_GROUP_ID);
    }

    #[test]
    fn ids_sqs_would_reject_are_hashed_deterministically() {
        let long = "a".repeat(129);
        for bad in [long.as_str(), "has space", "ünïcode"] {
            let mapped = sqs_id(bad);
            assert_eq!(mapped, sqs_id(bad));
            assert!(
                mapped.len() <= 128 && mapped.chars().all(is_sqs_id_char),
                "{mapped}"
            );
        }
        assert_ne!(sqs_id("has space"), sqs_id("has  space"));
        assert_eq!(sqs_id("a-1_b.c:d"), "a-1_b.c:d");
    }

    #[test]
    fn batches_respect_count_size_and_order() {
        let events: Vec<FeedEvent> = (0..23)
            .map(|i| event(&i.to_string(), ACTIVATED, Some("a"), 0))
            .collect();
        let refs: Vec<&FeedEvent> = events.iter().collect();
        let split = batches(&refs);
        assert_eq!(split.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        let flat: Vec<&str> = split.iter().flatten().map(|e| e.id()).collect();
        assert_eq!(flat, (0..23).map(|i| i.to_string()).collect::<Vec<_>>());

        let big: Vec<FeedEvent> = (0..4)
            .map(|i| event(&i.to_string(), ACTIVATED, Some("a"), 100 * 1024))
            .collect();
        let refs: Vec<&FeedEvent> = big.iter().collect();
        let split = batches(&refs);
        assert_eq!(split.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
        assert!(batches(&[]).is_empty());
    }
}
