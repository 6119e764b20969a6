//! The DMM event types the integration acts on (ADR 016).

/// Prefix of every DMM event type.
pub const PREFIX: &str = "com.datamesh-manager.events.";

/// Agreement events, current (`Access…`) and deprecated (`DataUsageAgreement…`) names.
const ACTED_ON: &[&str] = &[
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
/// Creations are left out: no agreement can name a product or port before it exists.
const PRODUCT_CHANGES: &[&str] = &[
    "DataProductUpdatedEvent",
    "DataProductDeletedEvent",
    "OutputPortCreatedEvent",
    "OutputPortUpdatedEvent",
    "OutputPortDeletedEvent",
];

/// The short name (`AccessActivatedEvent`) of a DMM event type.
pub fn short_name(event_type: &str) -> Option<&str> {
    event_type.strip_prefix(PREFIX)
}

/// An agreement event: its `data.id` is the agreement to reconcile.
pub fn is_agreement_event(event_type: &str) -> bool {
    short_name(event_type).is_some_and(|name| ACTED_ON.contains(&name))
}

/// A data product or output port change: its `data.id` is the data product (and
/// `data.outputPortId` the port) whose agreements are reconciled.
pub fn is_product_change(event_type: &str) -> bool {
    short_name(event_type).is_some_and(|name| PRODUCT_CHANGES.contains(&name))
}

/// Whether manage_iam_policies acts on the event, so poll_feed forwards it by default.
pub fn is_acted_on(event_type: &str) -> bool {
    is_agreement_event(event_type) || is_product_change(event_type)
}

/// Events of the deprecated family are answered from the deprecated endpoint.
pub fn is_deprecated_agreement_event(event_type: &str) -> bool {
    short_name(event_type).is_some_and(|name| name.starts_with("DataUsageAgreement"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acted_on_requires_the_full_prefixed_name() {
        assert!(is_acted_on(
            "com.datamesh-manager.events.AccessActivatedEvent"
        ));
        assert!(is_acted_on(
            "com.datamesh-manager.events.DataUsageAgreementDeletedEvent"
        ));
        assert!(!is_acted_on("AccessActivatedEvent"));
        assert!(!is_acted_on(
            "com.datamesh-manager.events.AccessRequestedEvent"
        ));
        assert!(!is_acted_on("com.example.events.AccessActivatedEvent"));
    }

    #[test]
    fn product_changes_are_acted_on_but_are_not_agreement_events() {
        for name in ["DataProductUpdatedEvent", "OutputPortDeletedEvent"] {
            let full = format!("{PREFIX}{name}");
            assert!(is_acted_on(&full) && is_product_change(&full));
            assert!(!is_agreement_event(&full));
        }
        for name in [
            "DataProductCreatedEvent",
            "DataContractUpdatedEvent",
            "TeamUpdatedEvent",
        ] {
            assert!(!is_acted_on(&format!("{PREFIX}{name}")), "{name}");
        }
        assert!(!is_product_change(&format!("{PREFIX}AccessActivatedEvent")));
    }

    #[test]
    fn deprecated_family_is_recognised() {
        assert!(is_deprecated_agreement_event(
            "com.datamesh-manager.events.DataUsageAgreementUpdatedEvent"
        ));
        assert!(!is_deprecated_agreement_event(
            "com.datamesh-manager.events.AccessUpdatedEvent"
        ));
    }
}
