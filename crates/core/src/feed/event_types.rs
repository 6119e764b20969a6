//! The DMM event types the integration acts on (ADR 016, ADR 018).
//!
//! Types are matched by their short name, the last dot-separated segment, as the vendor's own
//! connector SDK does: the feed says `com.datamesh-manager.events.AccessActivatedEvent` today and
//! `com.entropy-data.events.AccessActivatedEvent` after the vendor's rebranding, and a renamed
//! namespace must not silently turn every event into a skipped one.

/// Namespace of DMM's event types before the rebranding.
pub const PREFIX: &str = "com.datamesh-manager.events.";
/// Namespace of the same events under the vendor's new name, Entropy Data.
pub const ENTROPY_DATA_PREFIX: &str = "com.entropy-data.events.";

/// Agreement events, current (`Access…`) and deprecated (`DataUsageAgreement…`) names. Requests
/// and approvals are left out: an agreement grants only once DMM activates it.
const AGREEMENT_EVENTS: &[&str] = &[
    "AccessActivatedEvent",
    "AccessDeactivatedEvent",
    "AccessDeletedEvent",
    "AccessCanceledEvent",
    "AccessRejectedEvent",
    "AccessUpdatedEvent",
    "DataUsageAgreementActivatedEvent",
    "DataUsageAgreementDeactivatedEvent",
    "DataUsageAgreementDeletedEvent",
    "DataUsageAgreementCanceledEvent",
    "DataUsageAgreementRejectedEvent",
    "DataUsageAgreementUpdatedEvent",
];

/// Data product and output port changes: they can move the grants of every agreement naming the
/// product (a changed bucket ARN, a changed consumer role), so those agreements are reconciled.
/// A new output port matters too: an agreement may have been approved on a port id before the
/// port was added to the product, and stays in error until then.
const PRODUCT_CHANGES: &[&str] = &[
    "DataProductUpdatedEvent",
    "DataProductDeletedEvent",
    "OutputPortCreatedEvent",
    "OutputPortUpdatedEvent",
    "OutputPortDeletedEvent",
];

/// Team changes: a team consumer's role is a custom field of the team.
const TEAM_CHANGES: &[&str] = &["TeamUpdatedEvent", "TeamDeletedEvent"];

/// Data contract changes: a port described by its contract finds its data in the contract's
/// servers.
const CONTRACT_CHANGES: &[&str] = &["DataContractUpdatedEvent", "DataContractDeletedEvent"];

/// What an event acted on is about, which decides how its `data.id` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `data.id` is the agreement; `deprecated` events are answered from the deprecated
    /// `datausageagreements` endpoint.
    Agreement { deprecated: bool },
    /// `data.id` is the data product (`data.outputPortId` the port, for port events).
    Product,
    /// `data.id` is the team.
    Team,
    /// `data.id` is the data contract.
    Contract,
}

/// The short name (`AccessActivatedEvent`) of an event type: the part after the last dot. A type
/// without a namespace is not a DMM event.
pub fn short_name(event_type: &str) -> Option<&str> {
    let (namespace, name) = event_type.rsplit_once('.')?;
    (!namespace.is_empty() && !name.is_empty()).then_some(name)
}

/// What the event is about, or `None` for events the integration does not act on (including
/// the `AccessProvisioning…` echoes of its own provisioning reports).
pub fn kind(event_type: &str) -> Option<Kind> {
    let name = short_name(event_type)?;
    if AGREEMENT_EVENTS.contains(&name) {
        Some(Kind::Agreement {
            deprecated: name.starts_with("DataUsageAgreement"),
        })
    } else if PRODUCT_CHANGES.contains(&name) {
        Some(Kind::Product)
    } else if TEAM_CHANGES.contains(&name) {
        Some(Kind::Team)
    } else if CONTRACT_CHANGES.contains(&name) {
        Some(Kind::Contract)
    } else {
        None
    }
}

/// A deletion (`…DeletedEvent`): after it DMM lists the product's agreements with the
/// provider `unknown`, so they are looked for differently.
pub fn is_deletion(event_type: &str) -> bool {
    short_name(event_type).is_some_and(|name| name.ends_with("DeletedEvent"))
}

/// An agreement event: its `data.id` is the agreement to reconcile.
pub fn is_agreement_event(event_type: &str) -> bool {
    matches!(kind(event_type), Some(Kind::Agreement { .. }))
}

/// Whether manage_iam_policies acts on the event, so poll_feed forwards it by default.
pub fn is_acted_on(event_type: &str) -> bool {
    kind(event_type).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_namespaces_are_matched_by_short_name() {
        for prefix in [PREFIX, ENTROPY_DATA_PREFIX] {
            assert_eq!(
                kind(&format!("{prefix}AccessActivatedEvent")),
                Some(Kind::Agreement { deprecated: false })
            );
            assert_eq!(
                kind(&format!("{prefix}DataUsageAgreementDeletedEvent")),
                Some(Kind::Agreement { deprecated: true })
            );
        }
        assert!(!is_acted_on("AccessActivatedEvent"), "no namespace");
        assert!(!is_acted_on(".AccessActivatedEvent"));
        assert!(!is_acted_on("com.datamesh-manager.events."));
        assert!(!is_acted_on(&format!("{PREFIX}AccessRequestedEvent")));
    }

    #[test]
    fn changes_are_acted_on_by_kind() {
        for (name, expected) in [
            ("DataProductUpdatedEvent", Kind::Product),
            ("OutputPortCreatedEvent", Kind::Product),
            ("OutputPortDeletedEvent", Kind::Product),
            ("TeamUpdatedEvent", Kind::Team),
            ("TeamDeletedEvent", Kind::Team),
            ("DataContractUpdatedEvent", Kind::Contract),
        ] {
            let full = format!("{ENTROPY_DATA_PREFIX}{name}");
            assert_eq!(kind(&full), Some(expected), "{name}");
            assert!(!is_agreement_event(&full));
        }
    }

    #[test]
    fn deletions_are_recognised_in_either_namespace() {
        assert!(is_deletion(&format!("{PREFIX}DataProductDeletedEvent")));
        assert!(is_deletion(&format!(
            "{ENTROPY_DATA_PREFIX}OutputPortDeletedEvent"
        )));
        assert!(!is_deletion(&format!("{PREFIX}DataProductUpdatedEvent")));
        assert!(!is_deletion("DataProductDeletedEvent"), "no namespace");
    }

    #[test]
    fn provisioning_echoes_and_creations_are_not_acted_on() {
        for name in [
            "AccessProvisioningStartedEvent",
            "AccessProvisionedEvent",
            "AccessProvisioningFailedEvent",
            "AccessDeprovisionedEvent",
            "AccessDeprovisioningFailedEvent",
            "DataProductCreatedEvent",
            "TeamCreatedEvent",
            "DataContractCreatedEvent",
        ] {
            assert!(!is_acted_on(&format!("{PREFIX}{name}")), "{name}");
        }
    }
}
