//! The simulated organisation: feed, documents, observations and armed faults behind one lock.
//!
//! Every operation is short and synchronous, so a plain mutex is enough and the HTTP handlers and
//! the in-process handle see exactly the same state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::event::CloudEvent;
use crate::fault::{Fault, FaultKind, Faults};
use crate::scenario::{Scenario, UnknownLastEventId};

/// A PUT the simulator received on an agreement, as the client sent it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedPut {
    /// The request path, which tells the current route from the deprecated one.
    pub path: String,
    pub id: String,
    pub body: Value,
}

/// Which of DMM's two names for agreements a request used; it decides the event type family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Access,
    DataUsageAgreement,
}

impl Family {
    fn event_type(self, what: &str) -> String {
        match self {
            Family::Access => format!("Access{what}Event"),
            Family::DataUsageAgreement => format!("DataUsageAgreement{what}Event"),
        }
    }
}

/// What the real server writes into a field that names nothing (see [`Shared::served`]).
const UNKNOWN: &str = "unknown";

/// The filters of `GET /api/access`; `None` matches everything.
#[derive(Debug, Default)]
pub(crate) struct AccessFilter {
    pub provider_data_product_id: Option<String>,
    pub consumer_data_product_id: Option<String>,
    pub consumer_type: Option<String>,
}

impl AccessFilter {
    fn matches(&self, served: &Value) -> bool {
        let known = |part: &str, key: &str| {
            served
                .get(part)
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty() && *value != UNKNOWN)
                .map(str::to_owned)
        };
        let product = known("consumer", "dataProductId");
        let kind = if product.is_some() {
            "dataproduct"
        } else if known("consumer", "teamId").is_some() {
            "team"
        } else {
            "user"
        };
        self.provider_data_product_id
            .as_ref()
            .is_none_or(|wanted| known("provider", "dataProductId").as_ref() == Some(wanted))
            && self
                .consumer_data_product_id
                .as_ref()
                .is_none_or(|wanted| product.as_ref() == Some(wanted))
            && self
                .consumer_type
                .as_deref()
                .is_none_or(|wanted| wanted == kind)
    }
}

/// A provisioning status: its name, the timestamp field it stamps and the event it emits.
struct ProvisioningStatus {
    name: &'static str,
    stamp: &'static str,
    event: &'static str,
}

const PROVISIONING_STATUSES: &[ProvisioningStatus] = &[
    ProvisioningStatus {
        name: "provisioning",
        stamp: "provisioningStartedAt",
        event: "AccessProvisioningStartedEvent",
    },
    ProvisioningStatus {
        name: "provisioned",
        stamp: "provisionedAt",
        event: "AccessProvisionedEvent",
    },
    ProvisioningStatus {
        name: "provisioning-failed",
        stamp: "failedAt",
        event: "AccessProvisioningFailedEvent",
    },
    ProvisioningStatus {
        name: "deprovisioning",
        stamp: "deprovisioningStartedAt",
        event: "AccessDeprovisioningStartedEvent",
    },
    ProvisioningStatus {
        name: "deprovisioned",
        stamp: "deprovisionedAt",
        event: "AccessDeprovisionedEvent",
    },
    ProvisioningStatus {
        name: "deprovisioning-failed",
        stamp: "failedAt",
        event: "AccessDeprovisioningFailedEvent",
    },
];

/// The fields of a provisioning report the server keeps.
const REPORT_FIELDS: &[&str] = &[
    "status",
    "platform",
    "executor",
    "reference",
    "diagnostics",
    "note",
    "customProperties",
    "links",
];

/// Server-kept times of the record's transitions.
const TIMESTAMP_FIELDS: &[&str] = &[
    "provisioningStartedAt",
    "provisionedAt",
    "deprovisioningStartedAt",
    "deprovisionedAt",
    "failedAt",
];

/// The report's `status`, which the spec requires on PUT (400 otherwise).
fn provisioning_status(report: &Value) -> Result<&'static ProvisioningStatus, Error> {
    let status = report.get("status").and_then(Value::as_str);
    PROVISIONING_STATUSES
        .iter()
        .find(|known| Some(known.name) == status)
        .ok_or_else(|| {
            Error::InvalidDocument(format!(
                "status must be one of {}, not {}",
                PROVISIONING_STATUSES
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", "),
                status.unwrap_or("missing")
            ))
        })
}

/// Why a feed page could not be served.
pub(crate) struct UnknownEventId(pub String);

pub(crate) struct Shared {
    api_key: String,
    page_size: usize,
    list_page_size: usize,
    unknown_sentinels: bool,
    legacy_api: bool,
    unknown_last_event_id: UnknownLastEventId,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    feed: Feed,
    agreements: DocStore,
    data_products: DocStore,
    /// Data products deleted through the control API: agreements naming one as provider then
    /// read `"unknown"` there.
    deleted_products: HashSet<String>,
    teams: DocStore,
    data_contracts: DocStore,
    connectors: DocStore,
    puts: Vec<RecordedPut>,
    requests: BTreeMap<String, u64>,
    faults: Faults,
}

impl Shared {
    pub(crate) fn from_scenario(scenario: Scenario) -> Result<Self, Error> {
        if scenario.api_key.is_empty() {
            return Err(Error::InvalidScenario(
                "apiKey must not be empty".to_owned(),
            ));
        }
        if scenario.page_size == 0 || scenario.list_page_size == 0 {
            return Err(Error::InvalidScenario(
                "pageSize and listPageSize must be at least 1".to_owned(),
            ));
        }
        let mut state = State::default();
        for team in scenario.teams {
            insert_new(&mut state.teams, "team", document_id(&team)?, team)?;
        }
        for product in scenario.data_products {
            let id = document_id(&product)?;
            insert_new(&mut state.data_products, "data product", id, product)?;
        }
        for agreement in scenario.agreements {
            let id = agreement_id(&agreement)?;
            insert_new(&mut state.agreements, "agreement", id, agreement)?;
        }
        for contract in scenario.data_contracts {
            let id = document_id(&contract)?;
            insert_new(&mut state.data_contracts, "data contract", id, contract)?;
        }
        for event in scenario.events {
            let mut generated = CloudEvent::generate(&event.event_type, &event.resource_id);
            match event.id {
                Some(id) => {
                    generated.id = id;
                    state.feed.append(generated.to_value())?;
                }
                None => state.feed.push_generated(generated),
            }
        }
        Ok(Shared {
            api_key: scenario.api_key,
            page_size: scenario.page_size,
            list_page_size: scenario.list_page_size,
            unknown_sentinels: scenario.unknown_sentinels,
            legacy_api: scenario.legacy_api,
            unknown_last_event_id: scenario.unknown_last_event_id,
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters
        // to a test double, so a poisoned lock is still used rather than failing every request.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    pub(crate) fn list_page_size(&self) -> usize {
        self.list_page_size
    }

    /// Whether the simulator plays an older DMM without the provisioning and connector APIs.
    pub(crate) fn legacy_api(&self) -> bool {
        self.legacy_api
    }

    // ----- the DMM API -----

    /// The serialized page after `last_event_id`, or the policy's answer to an unknown id.
    pub(crate) fn events_page(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Vec<u8>, UnknownEventId> {
        let state = self.state();
        let start = match last_event_id {
            None => 0,
            Some(id) => match state.feed.positions.get(id) {
                Some(position) => position + 1,
                None => match self.unknown_last_event_id {
                    UnknownLastEventId::Reject => return Err(UnknownEventId(id.to_owned())),
                    UnknownLastEventId::Empty => state.feed.events.len(),
                    UnknownLastEventId::FromStart => 0,
                },
            },
        };
        let end = state
            .feed
            .events
            .len()
            .min(start.saturating_add(self.page_size));
        Ok(serde_json::to_vec(&state.feed.events[start..end]).expect("JSON values serialize"))
    }

    /// The agreement as the API serves it (see [`Shared::served`]).
    pub(crate) fn agreement(&self, id: &str) -> Option<Value> {
        let state = self.state();
        state
            .agreements
            .get(id)
            .map(|document| self.served(&state, document))
    }

    /// One page of the agreements `filter` selects, as served, and whether another page follows.
    pub(crate) fn agreements_page(
        &self,
        page: usize,
        page_size: usize,
        filter: &AccessFilter,
    ) -> (Vec<Value>, bool) {
        let state = self.state();
        let mut matching = state
            .agreements
            .iter()
            .map(|document| self.served(&state, document))
            .filter(|document| filter.matches(document));
        let items: Vec<Value> = matching
            .by_ref()
            .skip(page.saturating_mul(page_size))
            .take(page_size)
            .collect();
        (items, matching.next().is_some())
    }

    /// The stored agreement with the real server's sentinels: consumer discriminators that do
    /// not apply read `"unknown"`, and so does `provider.*` once the provider product is deleted.
    fn served(&self, state: &State, document: &Value) -> Value {
        let mut served = document.clone();
        if !self.unknown_sentinels {
            return served;
        }
        if let Some(consumer) = served.get_mut("consumer").and_then(Value::as_object_mut) {
            for key in ["dataProductId", "teamId", "userId"] {
                consumer
                    .entry(key)
                    .or_insert_with(|| Value::String(UNKNOWN.to_owned()));
            }
        }
        if let Some(provider) = served.get_mut("provider").and_then(Value::as_object_mut) {
            let deleted = provider
                .get("dataProductId")
                .and_then(Value::as_str)
                .is_some_and(|product| state.deleted_products.contains(product));
            if deleted {
                for key in ["dataProductId", "outputPortId"] {
                    provider.insert(key.to_owned(), Value::String(UNKNOWN.to_owned()));
                }
            }
        }
        served
    }

    /// `PUT /api/access/{id}/provisioning`: replaces the whole record (absent fields cleared),
    /// stamps the time of a status change, and announces the change in the feed as the
    /// `AccessProvisioning…` event the status stands for. An unchanged status is a metadata
    /// correction: no event.
    pub(crate) fn put_provisioning(&self, id: &str, report: Value) -> Result<Value, Error> {
        let status = provisioning_status(&report)?;
        let mut state = self.state();
        let document = state
            .agreements
            .get_mut(id)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::NotFound {
                kind: "agreement",
                id: id.to_owned(),
            })?;
        let previous = document.get("provisioning").cloned();
        let mut record: Map<String, Value> = report
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| REPORT_FIELDS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        for stamp in TIMESTAMP_FIELDS {
            if let Some(value) = previous.as_ref().and_then(|p| p.get(*stamp)) {
                record.entry(stamp.to_string()).or_insert(value.clone());
            }
        }
        let changed = previous
            .as_ref()
            .and_then(|p| p.get("status"))
            .and_then(Value::as_str)
            != Some(status.name);
        if changed {
            record.insert(
                status.stamp.to_owned(),
                Value::String(crate::event::now_millis()),
            );
        }
        let record = Value::Object(record);
        document.insert("provisioning".to_owned(), record.clone());
        if changed {
            state.feed.emit(status.event, id);
        }
        Ok(record)
    }

    /// `GET /api/access/{id}/provisioning`: 404 for an unknown agreement, and for one nothing
    /// was reported for yet.
    pub(crate) fn provisioning(&self, id: &str) -> Option<Value> {
        self.state()
            .agreements
            .get(id)
            .and_then(|document| document.get("provisioning"))
            .cloned()
    }

    pub(crate) fn data_contract(&self, id: &str) -> Option<Value> {
        self.state().data_contracts.get(id).cloned()
    }

    pub(crate) fn connector(&self, id: &str) -> Option<Value> {
        self.state().connectors.get(id).cloned()
    }

    pub(crate) fn connectors(&self) -> Vec<Value> {
        self.state().connectors.iter().cloned().collect()
    }

    /// `PUT /api/connectors/{id}`: the id must match the path and `info` must be an object.
    pub(crate) fn put_connector(&self, id: &str, document: Value) -> Result<(), Error> {
        if document.get("id").and_then(Value::as_str) != Some(id) {
            return Err(Error::InvalidDocument(format!(
                "the connector's id must be the path's id {id}"
            )));
        }
        if !document.get("info").is_some_and(Value::is_object) {
            return Err(Error::InvalidDocument(
                "a connector needs an object info".to_owned(),
            ));
        }
        self.state().connectors.upsert(id.to_owned(), document);
        Ok(())
    }

    pub(crate) fn data_product(&self, id: &str) -> Option<Value> {
        self.state().data_products.get(id).cloned()
    }

    pub(crate) fn team(&self, id: &str) -> Option<Value> {
        self.state().teams.get(id).cloned()
    }

    /// A client's PUT: replaces (or creates) the document, logs it and announces it in the feed.
    pub(crate) fn put_agreement(
        &self,
        path: &str,
        path_id: &str,
        body: Value,
        family: Family,
    ) -> Result<CloudEvent, Error> {
        check_put_body(path_id, &body)?;
        let mut state = self.state();
        state.puts.push(RecordedPut {
            path: path.to_owned(),
            id: path_id.to_owned(),
            body: body.clone(),
        });
        // `provisioning` is read-only on the document: what a PUT sends there is ignored, and
        // the stored record stays.
        let mut body = body;
        if let Some(document) = body.as_object_mut() {
            document.remove("provisioning");
            let stored = state
                .agreements
                .get(path_id)
                .and_then(|existing| existing.get("provisioning"))
                .cloned();
            if let Some(record) = stored {
                document.insert("provisioning".to_owned(), record);
            }
        }
        let created = state.agreements.upsert(path_id.to_owned(), body);
        let what = if created { "Created" } else { "Updated" };
        Ok(state.feed.emit(&family.event_type(what), path_id))
    }

    // ----- observation and faults -----

    /// Counts a request under its route and hands out the fault it has to suffer, if any.
    pub(crate) fn observe_request(&self, route: String, path: &str) -> Option<FaultKind> {
        let mut state = self.state();
        *state.requests.entry(route).or_default() += 1;
        state.faults.take(path)
    }

    pub(crate) fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state().requests.clone()
    }

    pub(crate) fn reset_request_counts(&self) {
        self.state().requests.clear();
    }

    pub(crate) fn puts(&self) -> Vec<RecordedPut> {
        self.state().puts.clone()
    }

    pub(crate) fn inject_fault(&self, fault: Fault) -> Result<(), Error> {
        fault.validate()?;
        self.state().faults.arm(fault);
        Ok(())
    }

    pub(crate) fn clear_faults(&self) {
        self.state().faults.clear();
    }

    // ----- control operations -----

    /// Appends events exactly as given, all or none, so a rejected batch leaves the feed unchanged.
    pub(crate) fn append_events(&self, events: Vec<Value>) -> Result<(), Error> {
        let mut state = self.state();
        let mut new_ids = HashSet::new();
        for event in &events {
            let id = event_id(event)?;
            if state.feed.positions.contains_key(id) || !new_ids.insert(id) {
                return Err(Error::DuplicateEventId(id.to_owned()));
            }
        }
        for event in events {
            state.feed.append(event)?;
        }
        Ok(())
    }

    pub(crate) fn emit(&self, event_type: &str, resource_id: &str) -> CloudEvent {
        self.state().feed.emit(event_type, resource_id)
    }

    pub(crate) fn emit_bulk(
        &self,
        event_type: &str,
        resource_ids: &[String],
        count: usize,
    ) -> Result<Vec<CloudEvent>, Error> {
        if resource_ids.is_empty() {
            return Err(Error::InvalidDocument(
                "bulk events need at least one resource id".to_owned(),
            ));
        }
        let mut state = self.state();
        Ok(resource_ids
            .iter()
            .cycle()
            .take(count)
            .map(|resource_id| state.feed.emit(event_type, resource_id))
            .collect())
    }

    pub(crate) fn upsert_agreement(&self, document: Value) -> Result<String, Error> {
        let id = agreement_id(&document)?;
        self.state().agreements.upsert(id.clone(), document);
        Ok(id)
    }

    pub(crate) fn delete_agreement(&self, id: &str) -> Result<CloudEvent, Error> {
        let mut state = self.state();
        state.agreements.remove(id).ok_or_else(|| Error::NotFound {
            kind: "agreement",
            id: id.to_owned(),
        })?;
        Ok(state.feed.emit(&Family::Access.event_type("Deleted"), id))
    }

    /// Flips `info.active` the way DMM's scheduler does when an agreement starts or ends.
    ///
    /// Activation also sets `info.status` to `approved`, since only approved agreements become
    /// active. Deactivation keeps the status: DMM has no status for an ended agreement, it stays
    /// `approved` and merely stops being active.
    pub(crate) fn set_active(&self, id: &str, active: bool) -> Result<CloudEvent, Error> {
        let mut state = self.state();
        let document = state
            .agreements
            .get_mut(id)
            .ok_or_else(|| Error::NotFound {
                kind: "agreement",
                id: id.to_owned(),
            })?;
        let document = document.as_object_mut().ok_or_else(|| {
            Error::InvalidDocument(format!("agreement {id} is not a JSON object"))
        })?;
        let info = document
            .entry("info")
            .or_insert_with(|| Value::Object(Map::new()));
        if !info.is_object() {
            return Err(Error::InvalidDocument(format!(
                "info of agreement {id} is not a JSON object"
            )));
        }
        info["active"] = Value::Bool(active);
        if active {
            info["status"] = Value::String("approved".to_owned());
        }
        let what = if active { "Activated" } else { "Deactivated" };
        Ok(state.feed.emit(&Family::Access.event_type(what), id))
    }

    pub(crate) fn upsert_data_product(&self, document: Value) -> Result<String, Error> {
        let id = document_id(&document)?;
        self.state().data_products.upsert(id.clone(), document);
        Ok(id)
    }

    /// Removes a data product and appends `DataProductDeletedEvent`; agreements naming it as
    /// provider read `"unknown"` there from now on.
    pub(crate) fn delete_data_product(&self, id: &str) -> Result<CloudEvent, Error> {
        let mut state = self.state();
        state
            .data_products
            .remove(id)
            .ok_or_else(|| Error::NotFound {
                kind: "data product",
                id: id.to_owned(),
            })?;
        state.deleted_products.insert(id.to_owned());
        Ok(state.feed.emit("DataProductDeletedEvent", id))
    }

    pub(crate) fn upsert_data_contract(&self, document: Value) -> Result<String, Error> {
        let id = document_id(&document)?;
        self.state().data_contracts.upsert(id.clone(), document);
        Ok(id)
    }

    /// Appends the event with id `id` once more, unchanged, as the real feed may re-send an
    /// event: a client must take the repeat for a duplicate.
    pub(crate) fn repeat_event(&self, id: &str) -> Result<Value, Error> {
        let mut state = self.state();
        let position = *state
            .feed
            .positions
            .get(id)
            .ok_or_else(|| Error::NotFound {
                kind: "event",
                id: id.to_owned(),
            })?;
        let event = state.feed.events[position].clone();
        let end = state.feed.events.len();
        state.feed.positions.insert(id.to_owned(), end);
        state.feed.events.push(event.clone());
        Ok(event)
    }

    pub(crate) fn upsert_team(&self, document: Value) -> Result<String, Error> {
        let id = document_id(&document)?;
        self.state().teams.upsert(id.clone(), document);
        Ok(id)
    }
}

/// The feed, with an index from event id to position so every page is found in constant time.
#[derive(Default)]
struct Feed {
    events: Vec<Value>,
    positions: HashMap<String, usize>,
}

impl Feed {
    fn append(&mut self, event: Value) -> Result<(), Error> {
        let id = event_id(&event)?.to_owned();
        if self.positions.contains_key(&id) {
            return Err(Error::DuplicateEventId(id));
        }
        self.positions.insert(id, self.events.len());
        self.events.push(event);
        Ok(())
    }

    fn emit(&mut self, event_type: &str, resource_id: &str) -> CloudEvent {
        let event = CloudEvent::generate(event_type, resource_id);
        self.push_generated(event.clone());
        event
    }

    /// Appends a generated event; a random id that collides with one given by a scenario or a
    /// test (astronomically unlikely, but then the feed would be ambiguous) is drawn again.
    fn push_generated(&mut self, mut event: CloudEvent) {
        while self.positions.contains_key(&event.id) {
            event.id = CloudEvent::generate(&event.event_type, &event.subject).id;
        }
        self.positions.insert(event.id.clone(), self.events.len());
        self.events.push(event.to_value());
    }
}

/// Documents by id, listed in creation order as DMM's list endpoints are.
#[derive(Default)]
struct DocStore {
    documents: HashMap<String, (u64, Value)>,
    creation_order: BTreeMap<u64, String>,
    next_sequence: u64,
}

impl DocStore {
    fn get(&self, id: &str) -> Option<&Value> {
        self.documents.get(id).map(|(_, document)| document)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.documents.get_mut(id).map(|(_, document)| document)
    }

    /// Replaces or creates the document; `true` when it was created.
    fn upsert(&mut self, id: String, document: Value) -> bool {
        if let Some((_, existing)) = self.documents.get_mut(&id) {
            *existing = document;
            return false;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.creation_order.insert(sequence, id.clone());
        self.documents.insert(id, (sequence, document));
        true
    }

    fn remove(&mut self, id: &str) -> Option<Value> {
        let (sequence, document) = self.documents.remove(id)?;
        self.creation_order.remove(&sequence);
        Some(document)
    }

    /// Every document in creation order.
    fn iter(&self) -> impl Iterator<Item = &Value> {
        self.creation_order.values().map(|id| &self.documents[id].1)
    }
}

fn insert_new(store: &mut DocStore, kind: &str, id: String, document: Value) -> Result<(), Error> {
    if store.get(&id).is_some() {
        return Err(Error::InvalidScenario(format!(
            "{kind} {id} is defined twice"
        )));
    }
    store.upsert(id, document);
    Ok(())
}

fn event_id(event: &Value) -> Result<&str, Error> {
    match event.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(Error::InvalidDocument(
            "an event must be a JSON object with a non-empty string id".to_owned(),
        )),
    }
}

/// Top-level `id`, which data products and teams always carry.
fn document_id(document: &Value) -> Result<String, Error> {
    match document.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(Error::InvalidDocument(
            "a document must be a JSON object with a non-empty string id".to_owned(),
        )),
    }
}

/// Top-level `id`, or `info.id` for agreements written before DMM moved it.
fn agreement_id(document: &Value) -> Result<String, Error> {
    let id = document
        .get("id")
        .or_else(|| document.get("info").and_then(|info| info.get("id")));
    match id {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(Error::InvalidDocument(
            "an agreement must be a JSON object with a non-empty string id (or info.id)".to_owned(),
        )),
    }
}

/// The checks a real DMM applies to a PUT body that a client is most likely to get wrong when it
/// writes a document back: the id must match the path, and the schema's required parts must be there.
fn check_put_body(path_id: &str, body: &Value) -> Result<(), Error> {
    let body_id = agreement_id(body)?;
    if body_id != path_id {
        return Err(Error::InvalidDocument(format!(
            "the document's id {body_id} does not match the path's id {path_id}"
        )));
    }
    for required in ["info", "provider", "consumer"] {
        if !body.get(required).is_some_and(Value::is_object) {
            return Err(Error::InvalidDocument(format!(
                "the document needs an object {required}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn old_agreements_are_found_by_info_id() {
        let id = agreement_id(&json!({"info": {"id": "old-1"}})).unwrap();
        assert_eq!(id, "old-1");
        let id = agreement_id(&json!({"id": "new-1", "info": {"id": "ignored"}})).unwrap();
        assert_eq!(id, "new-1");
        assert!(agreement_id(&json!({"info": {}})).is_err());
    }

    #[test]
    fn lists_keep_creation_order_across_updates_and_deletes() {
        let mut store = DocStore::default();
        for id in ["a", "b", "c"] {
            store.upsert(id.to_owned(), json!({"id": id}));
        }
        assert!(!store.upsert("a".to_owned(), json!({"id": "a", "v": 2})));
        store.remove("b");
        assert!(store.upsert("b".to_owned(), json!({"id": "b"})));
        let ids: Vec<Value> = store.iter().map(|d| d["id"].clone()).collect();
        assert_eq!(ids, vec![json!("a"), json!("c"), json!("b")]);
    }

    #[test]
    fn put_bodies_must_match_the_path_and_keep_the_required_parts() {
        let ok = json!({"id": "a", "info": {}, "provider": {}, "consumer": {}});
        assert!(check_put_body("a", &ok).is_ok());
        assert!(check_put_body("b", &ok).is_err());
        let no_consumer = json!({"id": "a", "info": {}, "provider": {}});
        assert!(check_put_body("a", &no_consumer).is_err());
    }
}
