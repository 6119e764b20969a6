use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A document from DMM that does not have the shape the integration needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{what} is not a JSON object")]
    NotAnObject { what: &'static str },
    #[error("{what} has no `{field}`")]
    MissingField {
        what: &'static str,
        field: &'static str,
    },
    #[error("{what}: `{field}` must be a non-empty string")]
    NotAString {
        what: &'static str,
        field: &'static str,
    },
    #[error("feed event #{position} in the page has no string `id`")]
    EventWithoutId { position: usize },
    /// A key twice in one object with different values: JSON readers disagree on which one
    /// counts, so what the DMM UI shows may not be what the integration would act on.
    #[error(
        "the {what} `{id}` has the key `{key}` more than once, with different values; JSON \
         readers disagree on which one counts, so it is refused until the duplicate is removed"
    )]
    DuplicateKey {
        what: &'static str,
        id: String,
        key: String,
    },
    /// The real server writes `"unknown"` into `provider.*` once the provider data product or
    /// output port is deleted: there is nothing left to grant from.
    #[error(
        "the agreement's provider `{field}` is `unknown`: Data Mesh Manager reports the provider \
         data product or output port as deleted"
    )]
    ProviderDeleted { field: &'static str },
    /// DMM answered a request for one agreement with a document naming another.
    #[error("{what} requested as `{requested}` names itself `{found}`")]
    IdMismatch {
        what: &'static str,
        requested: String,
        found: String,
    },
}

/// One CloudEvent from the feed. The exact bytes DMM sent are kept, because poll_feed forwards
/// the event unchanged; only the fields routing needs are parsed.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    raw: Box<RawValue>,
    id: String,
    event_type: Option<String>,
    time: Option<String>,
    resource_id: Option<String>,
    output_port_id: Option<String>,
}

#[derive(Deserialize)]
struct EventHead {
    id: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    time: Option<Value>,
    data: Option<Value>,
}

impl FeedEvent {
    /// Parses one element of a feed page. Only a missing `id` is an error: without it the
    /// checkpoint could not move past the event. Every other oddity is the router's concern.
    pub fn parse(raw: Box<RawValue>, position: usize) -> Result<Self, ModelError> {
        let head: EventHead =
            serde_json::from_str(raw.get()).map_err(|_| ModelError::EventWithoutId { position })?;
        let id = match head.id {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => return Err(ModelError::EventWithoutId { position }),
        };
        let event_type = match head.event_type {
            Some(Value::String(t)) => Some(t),
            _ => None,
        };
        let time = match head.time {
            Some(Value::String(t)) => Some(t),
            _ => None,
        };
        let data_string = |field: &str| match head.data.as_ref().and_then(|d| d.get(field)) {
            Some(Value::String(value)) if !value.is_empty() => Some(value.clone()),
            _ => None,
        };
        Ok(Self {
            raw,
            id,
            event_type,
            time,
            resource_id: data_string("id"),
            output_port_id: data_string("outputPortId"),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// When DMM says the event happened (`time`, RFC 3339), as sent.
    pub fn time(&self) -> Option<&str> {
        self.time.as_deref()
    }

    /// `data.id`: the agreement (or other resource) the event is about.
    pub fn resource_id(&self) -> Option<&str> {
        self.resource_id.as_deref()
    }

    /// `data.outputPortId` of output port events: only agreements on that port are affected.
    pub fn output_port_id(&self) -> Option<&str> {
        self.output_port_id.as_deref()
    }

    /// The event exactly as DMM sent it.
    pub fn raw_json(&self) -> &str {
        self.raw.get()
    }
}

/// Who an agreement grants access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRef {
    DataProduct(String),
    Team(String),
    User(String),
}

/// The output port an agreement grants access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRef {
    pub data_product_id: String,
    pub output_port_id: String,
}

/// A data usage agreement ("Access"). The whole document is kept so that a PUT writes back
/// every field DMM sent, including ones this integration does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    doc: Map<String, Value>,
    id: String,
}

const AGREEMENT: &str = "agreement";

/// What the real server writes into a consumer discriminator that does not apply (a team
/// consumer arrives as `{"dataProductId": "unknown", "teamId": "t1", "userId": "unknown"}`), and
/// into `provider.*` once the provider data product or port is deleted (ADR 018).
pub const UNKNOWN: &str = "unknown";

/// A string field that names something: present, non-empty and not the [`UNKNOWN`] sentinel.
fn known_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    non_empty_str(obj, field).filter(|value| *value != UNKNOWN)
}

fn non_empty_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    obj.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Agreement {
    /// Accepts the id as top-level `id` (current API) or `info.id` (very old documents).
    pub fn from_value(value: Value) -> Result<Self, ModelError> {
        let Value::Object(doc) = value else {
            return Err(ModelError::NotAnObject { what: AGREEMENT });
        };
        let id = non_empty_str(&doc, "id")
            .or_else(|| {
                doc.get("info")
                    .and_then(Value::as_object)
                    .and_then(|info| non_empty_str(info, "id"))
            })
            .ok_or(ModelError::MissingField {
                what: AGREEMENT,
                field: "id",
            })?
            .to_owned();
        Ok(Self { doc, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn info(&self) -> Option<&Map<String, Value>> {
        self.doc.get("info").and_then(Value::as_object)
    }

    /// DMM's own verdict: approved and within the start/end dates. Anything but a literal
    /// `true` means no access, so a malformed document can never grant.
    pub fn is_active(&self) -> bool {
        self.info()
            .and_then(|i| i.get("active"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn status(&self) -> Option<&str> {
        self.info()
            .and_then(|i| i.get("status"))
            .and_then(Value::as_str)
    }

    pub fn provider(&self) -> Result<ProviderRef, ModelError> {
        let provider = self.doc.get("provider").and_then(Value::as_object).ok_or(
            ModelError::MissingField {
                what: AGREEMENT,
                field: "provider",
            },
        )?;
        let field = |name: &'static str| match non_empty_str(provider, name) {
            Some(UNKNOWN) => Err(ModelError::ProviderDeleted { field: name }),
            Some(value) => Ok(value.to_owned()),
            None => Err(ModelError::NotAString {
                what: AGREEMENT,
                field: name,
            }),
        };
        Ok(ProviderRef {
            data_product_id: field("dataProductId")?,
            output_port_id: field("outputPortId")?,
        })
    }

    /// `provider.dataProductId` and `provider.outputPortId` as DMM sent them, the [`UNKNOWN`]
    /// sentinel included: for finding the agreements of a deleted product or port.
    pub fn provider_ids(&self) -> (Option<&str>, Option<&str>) {
        let provider = self.doc.get("provider").and_then(Value::as_object);
        let field = |name| provider.and_then(|p| non_empty_str(p, name));
        (field("dataProductId"), field("outputPortId"))
    }

    /// The provisioning record DMM holds for the agreement (read-only on the document, written
    /// through `/api/access/{id}/provisioning`); absent until something was reported, and on
    /// DMM versions without the provisioning API.
    pub fn provisioning(&self) -> Option<&Map<String, Value>> {
        self.doc.get("provisioning").and_then(Value::as_object)
    }

    /// `provider.dataContractId`: the contract of the port when access was requested.
    pub fn provider_contract_id(&self) -> Option<&str> {
        self.doc
            .get("provider")
            .and_then(Value::as_object)
            .and_then(|provider| known_str(provider, "dataContractId"))
    }

    /// A consumer may name a data product and its team; the data product wins because its role
    /// is the more specific one. The [`UNKNOWN`] sentinel names nothing, so a team consumer as
    /// the real server sends it is a team.
    pub fn consumer(&self) -> Result<ConsumerRef, ModelError> {
        let consumer = self.doc.get("consumer").and_then(Value::as_object).ok_or(
            ModelError::MissingField {
                what: AGREEMENT,
                field: "consumer",
            },
        )?;
        let get = |name| known_str(consumer, name).map(str::to_owned);
        if let Some(id) = get("dataProductId") {
            Ok(ConsumerRef::DataProduct(id))
        } else if let Some(id) = get("teamId") {
            Ok(ConsumerRef::Team(id))
        } else if let Some(id) = get("userId") {
            Ok(ConsumerRef::User(id))
        } else {
            Err(ModelError::MissingField {
                what: AGREEMENT,
                field: "consumer.dataProductId|teamId|userId",
            })
        }
    }

    /// Tags as DMM sent them; non-string entries are ignored.
    pub fn tags(&self) -> Vec<String> {
        self.doc
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `custom` map's string values.
    pub fn custom(&self, key: &str) -> Option<&str> {
        self.doc
            .get("custom")
            .and_then(Value::as_object)
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
    }

    /// Replaces `tags` and `custom` as a whole; every other field stays as DMM sent it.
    pub fn with_status(&self, tags: Vec<String>, custom: Map<String, Value>) -> Self {
        let mut doc = self.doc.clone();
        doc.insert(
            "tags".to_owned(),
            Value::Array(tags.into_iter().map(Value::String).collect()),
        );
        doc.insert("custom".to_owned(), Value::Object(custom));
        Self {
            doc,
            id: self.id.clone(),
        }
    }

    /// The `custom` map as DMM sent it (non-string values included, so they survive a PUT).
    pub fn custom_map(&self) -> Map<String, Value> {
        self.doc
            .get("custom")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.doc.clone())
    }
}

/// A data product: its `custom` map names the consumer role, its output ports the resources.
#[derive(Debug, Clone, PartialEq)]
pub struct DataProduct {
    doc: Map<String, Value>,
}

/// A team; as a consumer, its `custom` map names the role.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    doc: Map<String, Value>,
}

fn custom_str<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    doc.get("custom")
        .and_then(Value::as_object)
        .and_then(|c| c.get(key))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The `custom` map as JSON (an empty object when absent), for readers that check value types.
fn custom_object(doc: &Map<String, Value>) -> Value {
    match doc.get("custom") {
        Some(custom @ Value::Object(_)) => custom.clone(),
        _ => Value::Object(Map::new()),
    }
}

impl DataProduct {
    pub fn from_value(value: Value) -> Result<Self, ModelError> {
        match value {
            Value::Object(doc) => Ok(Self { doc }),
            _ => Err(ModelError::NotAnObject {
                what: "data product",
            }),
        }
    }

    pub fn id(&self) -> Option<&str> {
        non_empty_str(&self.doc, "id")
    }

    pub fn custom(&self, key: &str) -> Option<&str> {
        custom_str(&self.doc, key)
    }

    pub fn custom_fields(&self) -> Value {
        custom_object(&self.doc)
    }

    /// The owner team's id (`info.owner`, or a top-level `owner` as some DMM versions serve
    /// it), which the data product's resources and roles may be tagged with instead of the
    /// product's own id.
    pub fn owner(&self) -> Option<&str> {
        self.doc
            .get("info")
            .and_then(Value::as_object)
            .and_then(|info| non_empty_str(info, "owner"))
            .or_else(|| non_empty_str(&self.doc, "owner"))
    }

    /// The output port with this id, as DMM sent it.
    pub fn output_port(&self, port_id: &str) -> Option<&Value> {
        self.doc
            .get("outputPorts")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| p.get("id").and_then(Value::as_str) == Some(port_id))
    }
}

impl Team {
    pub fn from_value(value: Value) -> Result<Self, ModelError> {
        match value {
            Value::Object(doc) => Ok(Self { doc }),
            _ => Err(ModelError::NotAnObject { what: "team" }),
        }
    }

    pub fn custom(&self, key: &str) -> Option<&str> {
        custom_str(&self.doc, key)
    }

    pub fn custom_fields(&self) -> Value {
        custom_object(&self.doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn feed_event_keeps_exact_bytes_and_routing_fields() {
        let text = r#"{ "id":"e1",  "type":"com.datamesh-manager.events.AccessActivatedEvent","data":{"id":"a-1","x":[1, 2]}}"#;
        let event = FeedEvent::parse(raw(text), 0).unwrap();
        assert_eq!(event.raw_json(), text);
        assert_eq!(event.id(), "e1");
        assert_eq!(
            event.event_type(),
            Some("com.datamesh-manager.events.AccessActivatedEvent")
        );
        assert_eq!(event.resource_id(), Some("a-1"));
    }

    #[test]
    fn feed_event_tolerates_odd_fields_but_needs_an_id() {
        let event = FeedEvent::parse(raw(r#"{"id":"e2","type":7,"data":{"id":3}}"#), 0).unwrap();
        assert_eq!(event.event_type(), None);
        assert_eq!(event.resource_id(), None);
        for bad in [
            r#"{"type":"x"}"#,
            r#"{"id":""}"#,
            r#"{"id":5}"#,
            "[1]",
            "\"s\"",
        ] {
            assert_eq!(
                FeedEvent::parse(raw(bad), 4).unwrap_err(),
                ModelError::EventWithoutId { position: 4 },
                "{bad}"
            );
        }
    }

    #[test]
    fn agreement_id_from_top_level_or_info() {
        let a = Agreement::from_value(json!({"id": "a1", "info": {"id": "old"}})).unwrap();
        assert_eq!(a.id(), "a1");
        let old = Agreement::from_value(json!({"info": {"id": "old", "active": true}})).unwrap();
        assert_eq!(old.id(), "old");
        assert!(old.is_active());
        assert!(Agreement::from_value(json!({"info": {}})).is_err());
        assert!(Agreement::from_value(json!([1])).is_err());
    }

    #[test]
    fn only_a_literal_true_is_active() {
        for info in [json!({"active": "true"}), json!({}), json!({"active": 1})] {
            let a = Agreement::from_value(json!({"id": "a", "info": info})).unwrap();
            assert!(!a.is_active());
        }
    }

    #[test]
    fn consumer_prefers_data_product_then_team_then_user() {
        let consumer = |c: Value| {
            Agreement::from_value(json!({"id": "a", "consumer": c}))
                .unwrap()
                .consumer()
        };
        assert_eq!(
            consumer(json!({"dataProductId": "dp", "teamId": "t"})),
            Ok(ConsumerRef::DataProduct("dp".into()))
        );
        assert_eq!(
            consumer(json!({"teamId": "t"})),
            Ok(ConsumerRef::Team("t".into()))
        );
        assert_eq!(
            consumer(json!({"userId": "u"})),
            Ok(ConsumerRef::User("u".into()))
        );
        assert!(consumer(json!({})).is_err());
    }

    #[test]
    fn the_unknown_sentinel_names_nothing() {
        let agreement = |doc: Value| Agreement::from_value(doc).unwrap();
        let team = agreement(json!({"id": "a", "consumer":
            {"dataProductId": "unknown", "teamId": "t1", "userId": "unknown"}}));
        assert_eq!(team.consumer(), Ok(ConsumerRef::Team("t1".into())));
        let product = agreement(json!({"id": "a", "consumer":
            {"dataProductId": "dp", "teamId": "t1", "userId": "unknown"}}));
        assert_eq!(
            product.consumer(),
            Ok(ConsumerRef::DataProduct("dp".into()))
        );
        let user = agreement(json!({"id": "a", "consumer":
            {"dataProductId": "unknown", "teamId": "unknown", "userId": "u1"}}));
        assert_eq!(user.consumer(), Ok(ConsumerRef::User("u1".into())));
        let nobody = agreement(json!({"id": "a", "consumer":
            {"dataProductId": "unknown", "teamId": "unknown", "userId": "unknown"}}));
        assert!(nobody.consumer().is_err());
        let deleted = agreement(json!({"id": "a", "provider":
            {"dataProductId": "unknown", "outputPortId": "unknown"}}));
        assert_eq!(
            deleted.provider(),
            Err(ModelError::ProviderDeleted {
                field: "dataProductId"
            })
        );
        let port_deleted = agreement(json!({"id": "a", "provider":
            {"dataProductId": "orders", "outputPortId": "unknown"}}));
        assert_eq!(
            port_deleted.provider(),
            Err(ModelError::ProviderDeleted {
                field: "outputPortId"
            })
        );
    }

    #[test]
    fn with_status_replaces_only_tags_and_custom() {
        let a = Agreement::from_value(json!({
            "id": "a", "unknownField": {"kept": true}, "tags": ["user"], "custom": {"k": "v"}
        }))
        .unwrap();
        let mut custom = a.custom_map();
        custom.insert("aws-policy-name".into(), json!("P"));
        let b = a.with_status(vec!["user".into(), "aws-integration".into()], custom);
        assert_eq!(
            b.to_value(),
            json!({"id": "a", "unknownField": {"kept": true}, "tags": ["user", "aws-integration"],
                   "custom": {"k": "v", "aws-policy-name": "P"}})
        );
    }

    #[test]
    fn data_product_finds_output_port_and_trims_custom() {
        let dp = DataProduct::from_value(json!({
            "id": "p", "custom": {"aws-role-name": " role "},
            "outputPorts": [{"id": "x"}, {"id": "y", "type": "s3"}]
        }))
        .unwrap();
        assert_eq!(dp.custom("aws-role-name"), Some("role"));
        assert_eq!(dp.output_port("y").unwrap()["type"], "s3");
        assert!(dp.output_port("z").is_none());
    }

    #[test]
    fn the_owner_team_comes_from_the_product_document() {
        let product = |doc| DataProduct::from_value(doc).unwrap();
        assert_eq!(
            product(json!({"info": {"owner": "sales"}})).owner(),
            Some("sales")
        );
        assert_eq!(product(json!({"owner": "sales"})).owner(), Some("sales"));
        assert_eq!(
            product(json!({"info": {"owner": "sales"}, "owner": "hr"})).owner(),
            Some("sales"),
            "info.owner wins"
        );
        assert_eq!(product(json!({"info": {"owner": ""}})).owner(), None);
        assert_eq!(product(json!({"info": {"owner": 7}})).owner(), None);
    }
}
