//! The DMM event types the integration acts on (SPEC §3.2).

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

/// The short name (`AccessActivatedEvent`) of a DMM event type.
pub fn short_name(event_type: &str) -> Option<&str> {
    event_type.strip_prefix(PREFIX)
}

pub fn is_acted_on(event_type: &str) -> bool {
    short_name(event_type).is_some_and(|name| ACTED_ON.contains(&name))
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
    fn deprecated_family_is_recognised() {
        assert!(is_deprecated_agreement_event(
            "com.datamesh-manager.events.DataUsageAgreementUpdatedEvent"
        ));
        assert!(!is_deprecated_agreement_event(
            "com.datamesh-manager.events.AccessUpdatedEvent"
        ));
    }
}
