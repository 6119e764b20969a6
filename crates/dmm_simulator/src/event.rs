//! CloudEvents as DMM's `/api/events` feed serves them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Prefix of every DMM event type; short names passed to the simulator get it prepended.
pub const EVENT_TYPE_PREFIX: &str = "com.datamesh-manager.events.";

/// `source` attribute of generated events: an absolute URI that cannot be mistaken for a real DMM.
pub const EVENT_SOURCE: &str = "urn:dmm-simulator";

/// A generated feed entry, typed so tests can read the id they later pass as `lastEventId`.
///
/// Events appended "given fully" are stored as raw JSON instead, so tests can also feed the client
/// events this type could not represent (a missing `data`, a `null` subject, extra attributes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub time: String,
    pub subject: String,
    pub datacontenttype: String,
    /// `{"id": <resource id>, "timestamp": <time>}`, the payload shape of the vendor's event schemas.
    pub data: Value,
}

impl CloudEvent {
    /// Builds an event the way DMM does: a fresh UUID, the current time in milliseconds, and the
    /// resource id both as `subject` and as `data.id`.
    pub(crate) fn generate(event_type: &str, resource_id: &str) -> Self {
        let time = now_millis();
        CloudEvent {
            specversion: "1.0".to_owned(),
            id: random_uuid(),
            event_type: full_event_type(event_type),
            source: EVENT_SOURCE.to_owned(),
            subject: resource_id.to_owned(),
            datacontenttype: "application/json".to_owned(),
            data: json!({ "id": resource_id, "timestamp": time }),
            time,
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a CloudEvent of strings and JSON always serializes")
    }
}

/// `AccessActivatedEvent` → `com.datamesh-manager.events.AccessActivatedEvent`; a name that already
/// contains a dot is taken as a full type, so foreign types can be fed to the client too.
pub(crate) fn full_event_type(event_type: &str) -> String {
    if event_type.contains('.') {
        event_type.to_owned()
    } else {
        format!("{EVENT_TYPE_PREFIX}{event_type}")
    }
}

/// A random version-4 UUID. Random rather than sequential on purpose: real event ids carry no order,
/// and a client that compares them instead of following the feed must fail against the simulator.
fn random_uuid() -> String {
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The current UTC time as RFC 3339 with millisecond precision, like DMM's timestamps.
pub(crate) fn now_millis() -> String {
    let now = OffsetDateTime::now_utc();
    let millis = now
        .replace_millisecond(now.millisecond())
        .expect("a millisecond read from a valid time is valid");
    millis
        .format(&Rfc3339)
        .expect("RFC 3339 formats every UTC time in the years DMM can produce")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn short_type_names_get_the_dmm_prefix() {
        assert_eq!(
            full_event_type("AccessActivatedEvent"),
            "com.datamesh-manager.events.AccessActivatedEvent"
        );
        assert_eq!(full_event_type("org.example.Other"), "org.example.Other");
    }

    #[test]
    fn generated_events_name_the_resource_in_subject_and_data() {
        let event = CloudEvent::generate("AccessUpdatedEvent", "a-1");
        let value = event.to_value();
        assert_eq!(value["data"]["id"], "a-1");
        assert_eq!(value["subject"], "a-1");
        assert_eq!(
            value["type"],
            "com.datamesh-manager.events.AccessUpdatedEvent"
        );
        assert!(OffsetDateTime::parse(&event.time, &Rfc3339).is_ok());
        assert!(event.time.ends_with('Z'), "{}", event.time);
    }
}
