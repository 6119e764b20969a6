//! The YAML file a simulator starts from.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// Used when a scenario names no key, so the demo and ad-hoc `curl` work without configuration.
pub const DEFAULT_API_KEY: &str = "simulator-api-key";

/// DMM's page size of the feed, and of lists when the client names no `pageSize`.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// The largest `pageSize` DMM's access list serves.
pub const MAX_LIST_PAGE_SIZE: usize = 10_000;

/// The initial state of a simulated DMM organisation.
///
/// Documents stay raw JSON so that whatever a scenario author writes, including fields this crate
/// has never heard of, is served back exactly as a real DMM would serve it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Scenario {
    /// The value every `/api/...` request must send as `x-api-key`.
    pub api_key: String,
    /// Events per `/api/events` page; smaller than DMM's 1000 to exercise paging cheaply.
    pub page_size: usize,
    /// The most documents one page of the `/api/access` and `/api/datausageagreements` lists
    /// holds, whatever `pageSize` asks (the real limit is 10,000); smaller values exercise a
    /// client's paging cheaply. A client naming no `pageSize` gets at most 1000.
    pub list_page_size: usize,
    /// Serve agreements as the real server does: the consumer discriminators that do not apply
    /// read `"unknown"` (a team consumer is `{"dataProductId": "unknown", "teamId": "t1",
    /// "userId": "unknown"}`), and `provider.*` reads `"unknown"` once the provider data product
    /// was deleted. On by default; off serves documents exactly as stored.
    pub unknown_sentinels: bool,
    /// Behave like an older, on-premises DMM: no provisioning or connector endpoints (404), and
    /// an access list that ignores `pageSize` and the filters and sends no `Link` header.
    pub legacy_api: bool,
    /// How `/api/events` answers a `lastEventId` it has never issued (the vendor does not say).
    pub unknown_last_event_id: UnknownLastEventId,
    pub teams: Vec<Value>,
    pub data_products: Vec<Value>,
    /// Access documents; the id is top-level `id`, or `info.id` in very old documents.
    pub agreements: Vec<Value>,
    /// ODCS data contracts, by top-level `id`, served by `/api/datacontracts/{id}`.
    pub data_contracts: Vec<Value>,
    /// The feed's history before the simulator starts, oldest first.
    pub events: Vec<ScenarioEvent>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            api_key: DEFAULT_API_KEY.to_owned(),
            page_size: DEFAULT_PAGE_SIZE,
            list_page_size: MAX_LIST_PAGE_SIZE,
            unknown_sentinels: true,
            legacy_api: false,
            unknown_last_event_id: UnknownLastEventId::default(),
            teams: Vec::new(),
            data_products: Vec::new(),
            agreements: Vec::new(),
            data_contracts: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl Scenario {
    pub fn from_yaml(yaml: &str) -> Result<Self, Error> {
        Ok(serde_yaml::from_str(yaml)?)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|source| Error::ReadScenario {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&yaml)
    }
}

/// An event in a scenario's initial feed, in the short form a person writes by hand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenarioEvent {
    /// `AccessActivatedEvent` or a full `com.datamesh-manager.events.…` type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Becomes `subject` and `data.id`.
    pub resource_id: String,
    /// Fixed event id, e.g. to start a client from a known checkpoint; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
}

/// The answer to a `lastEventId` the feed does not contain.
///
/// The vendor spec documents only the 200 answer, so clients must not rely on any of these; the
/// choice exists to test that a client survives each plausible behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnknownLastEventId {
    /// 400 with a problem body: a lost or foreign checkpoint is made loud, never silently skipped.
    #[default]
    Reject,
    /// An empty page, as if caught up: the silent-stall behaviour a client cannot detect.
    Empty,
    /// The feed from its first event: a full replay.
    FromStart,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_an_empty_organisation_with_defaults() {
        let scenario = Scenario::from_yaml("{}").unwrap();
        assert_eq!(scenario, Scenario::default());
    }

    #[test]
    fn misspelt_settings_are_errors_not_silently_ignored() {
        let err = Scenario::from_yaml("pagesize: 3").unwrap_err();
        assert!(err.to_string().contains("pagesize"), "{err}");
    }

    #[test]
    fn events_use_the_short_form() {
        let scenario = Scenario::from_yaml(
            "events:\n  - type: AccessActivatedEvent\n    resourceId: a-1\n    id: e-1\nunknownLastEventId: fromStart\n",
        )
        .unwrap();
        assert_eq!(
            scenario.events,
            vec![ScenarioEvent {
                event_type: "AccessActivatedEvent".to_owned(),
                resource_id: "a-1".to_owned(),
                id: Some("e-1".to_owned()),
            }]
        );
        assert_eq!(
            scenario.unknown_last_event_id,
            UnknownLastEventId::FromStart
        );
    }
}
