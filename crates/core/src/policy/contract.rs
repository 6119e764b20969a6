//! Output ports described by their data contract (ADR 018): a port without `aws…arn` custom
//! fields that names a contract finds its data in the contract's ODCS `servers`. The server is
//! turned into the port the catalogue already understands (the same custom fields and
//! `server.location` a person would write), so every value from a contract passes exactly the
//! checks a custom field passes: parsing, the port type's service and resource kind, the
//! partition, no wildcards, and ownership.

use serde_json::{Map, Value, json};

use super::port::OUTPUT_PORT_TYPE_FIELD;
use crate::text::shown;

/// The port's custom field naming its contract's server, when the contract has several.
pub const CONTRACT_SERVER_FIELD: &str = "contractServer";

/// Why a contract cannot describe the port's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "its data contract `{contract}` has no server of a type the integration grants (s3, glue, kinesis, kafka)"
    )]
    NoServer { contract: String },
    #[error(
        "its data contract `{contract}` has several servers the integration could grant ({servers}); \
         name one in the port's custom field `contractServer`"
    )]
    AmbiguousServer { contract: String, servers: String },
    #[error(
        "its data contract `{contract}` has no server `{server}` (named by the port's `contractServer`)"
    )]
    UnknownServer { contract: String, server: String },
    #[error(
        "server `{server}` of its data contract `{contract}` lacks `{field}`, which a {kind} grant \
         needs (a field of the server or one of its customProperties)"
    )]
    MissingField {
        contract: String,
        server: String,
        kind: &'static str,
        field: &'static str,
    },
    #[error(
        "server `{server}` of its data contract `{contract}` has type `{kind}`, which the integration does not grant"
    )]
    Unsupported {
        contract: String,
        server: String,
        kind: String,
    },
}

/// The contract id a port names (`dataContractId`, or `contractId` as some DMM versions call it)
/// when the port has nothing else to go by: no `aws…arn` custom field and no `server.location`.
/// Custom fields keep precedence, as with the reference integration.
pub fn described_by(port: &Value) -> Option<&str> {
    let custom_arns = port
        .get("custom")
        .and_then(Value::as_object)
        .is_some_and(|custom| {
            custom
                .keys()
                .any(|key| key.starts_with("aws") && key.ends_with("arn"))
        });
    let location = port
        .get("server")
        .and_then(|server| server.get("location"))
        .is_some();
    if custom_arns || location {
        return None;
    }
    ["dataContractId", "contractId"]
        .iter()
        .find_map(|field| port.get(*field).and_then(Value::as_str))
        .filter(|id| !id.is_empty())
}

/// Server types the integration can grant.
const GRANTABLE: &[&str] = &["s3", "glue", "athena", "kinesis", "kafka"];

/// `port` with the data its contract's server describes. `account` is the account of the
/// provider's resources when the port or product names one (`aws-account-id`), for servers that
/// do not.
pub fn port_from_contract(
    port: &Value,
    contract_id: &str,
    contract: &Value,
    partition: &str,
    account: Option<&str>,
) -> Result<Value, ContractError> {
    let server = choose_server(port, contract_id, contract)?;
    let reader = ServerReader {
        server,
        contract: shown(contract_id),
        name: shown(server_name(server).unwrap_or("(unnamed)")),
    };
    let kind = server
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut described = port.as_object().cloned().unwrap_or_default();
    let mut custom: Map<String, Value> = port
        .get("custom")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match kind {
        "s3" => {
            let location = reader.require("S3", "location")?;
            described.insert("type".into(), json!("s3"));
            described.insert("server".into(), json!({"location": location}));
        }
        "glue" | "athena" => {
            let account = reader.get("account").or(account);
            let account = account.ok_or_else(|| reader.missing("Glue table", "account"))?;
            let region = reader
                .get("region")
                .or_else(|| reader.get("regionName"))
                .ok_or_else(|| reader.missing("Glue table", "region"))?;
            let database = reader
                .get("database")
                .or_else(|| reader.get("schema"))
                .ok_or_else(|| reader.missing("Glue table", "database"))?;
            let table = reader.require("Glue table", "table")?;
            let workgroup = reader.require("Glue table", "workgroup")?;
            let location = reader.require("Glue table", "location")?;
            custom.insert(OUTPUT_PORT_TYPE_FIELD.into(), json!("glue_table"));
            custom.insert(
                "aws-glue-table-arn".into(),
                json!(format!(
                    "arn:{partition}:glue:{region}:{account}:table/{database}/{table}"
                )),
            );
            custom.insert(
                "aws-athena-workgroup-arn".into(),
                json!(format!(
                    "arn:{partition}:athena:{region}:{account}:workgroup/{workgroup}"
                )),
            );
            described.insert("server".into(), json!({"location": location}));
        }
        "kinesis" => {
            let account = reader.get("account").or(account);
            let account = account.ok_or_else(|| reader.missing("Kinesis stream", "account"))?;
            let region = reader.require("Kinesis stream", "region")?;
            let stream = reader.require("Kinesis stream", "stream")?;
            custom.insert(OUTPUT_PORT_TYPE_FIELD.into(), json!("kinesis_stream"));
            custom.insert(
                "aws-kinesis-stream-arn".into(),
                json!(format!(
                    "arn:{partition}:kinesis:{region}:{account}:stream/{stream}"
                )),
            );
        }
        "kafka" => {
            let cluster = reader.require("MSK topic", "clusterArn")?;
            let topic = reader.require("MSK topic", "topic")?;
            custom.insert(OUTPUT_PORT_TYPE_FIELD.into(), json!("msk_topic"));
            custom.insert("aws-msk-cluster-arn".into(), json!(cluster));
            // The topic ARN is the cluster ARN with `topic` for `cluster` and the topic appended;
            // the catalogue checks that the two agree.
            let topic_arn = match cluster.split_once(":cluster/") {
                Some((head, cluster_path)) => format!("{head}:topic/{cluster_path}/{topic}"),
                None => cluster.to_owned(),
            };
            custom.insert("aws-msk-topic-arn".into(), json!(topic_arn));
        }
        other => {
            return Err(ContractError::Unsupported {
                contract: reader.contract,
                server: reader.name,
                kind: shown(other),
            });
        }
    }
    described.insert("custom".into(), Value::Object(custom));
    Ok(Value::Object(described))
}

fn server_name(server: &Value) -> Option<&str> {
    server
        .get("server")
        .or_else(|| server.get("id"))
        .and_then(Value::as_str)
}

/// The server the port names, or the only grantable one.
fn choose_server<'c>(
    port: &Value,
    contract_id: &str,
    contract: &'c Value,
) -> Result<&'c Value, ContractError> {
    let servers: Vec<&Value> = contract
        .get("servers")
        .and_then(Value::as_array)
        .map(|servers| servers.iter().collect())
        .unwrap_or_default();
    let named = port
        .get("custom")
        .and_then(|custom| custom.get(CONTRACT_SERVER_FIELD))
        .and_then(Value::as_str);
    if let Some(name) = named {
        return servers
            .into_iter()
            .find(|server| server_name(server) == Some(name))
            .ok_or_else(|| ContractError::UnknownServer {
                contract: shown(contract_id),
                server: shown(name),
            });
    }
    let grantable: Vec<&Value> = servers
        .into_iter()
        .filter(|server| {
            server
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| GRANTABLE.contains(&kind))
        })
        .collect();
    match grantable.as_slice() {
        [] => Err(ContractError::NoServer {
            contract: shown(contract_id),
        }),
        [only] => Ok(only),
        several => Err(ContractError::AmbiguousServer {
            contract: shown(contract_id),
            servers: several
                .iter()
                .map(|server| shown(server_name(server).unwrap_or("(unnamed)")))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A server's values: its own fields first, then its `customProperties` (`[{property, value}]`).
struct ServerReader<'s> {
    server: &'s Value,
    contract: String,
    name: String,
}

impl ServerReader<'_> {
    fn get(&self, field: &str) -> Option<&str> {
        let own = self.server.get(field).and_then(Value::as_str);
        let custom = || {
            self.server
                .get("customProperties")
                .and_then(Value::as_array)?
                .iter()
                .find(|p| p.get("property").and_then(Value::as_str) == Some(field))?
                .get("value")
                .and_then(Value::as_str)
        };
        own.or_else(custom).filter(|value| !value.is_empty())
    }

    fn missing(&self, kind: &'static str, field: &'static str) -> ContractError {
        ContractError::MissingField {
            contract: self.contract.clone(),
            server: self.name.clone(),
            kind,
            field,
        }
    }

    fn require(&self, kind: &'static str, field: &'static str) -> Result<&str, ContractError> {
        self.get(field).ok_or_else(|| self.missing(kind, field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(servers: Value) -> Value {
        json!({"apiVersion": "v3.1.0", "kind": "DataContract", "id": "orders-v1", "servers": servers})
    }

    fn port(extra: Value) -> Value {
        let mut port = json!({"id": "p", "dataContractId": "orders-v1"});
        if let (Some(port), Some(extra)) = (port.as_object_mut(), extra.as_object()) {
            port.extend(extra.clone());
        }
        port
    }

    fn translate(port: &Value, contract: &Value) -> Result<Value, ContractError> {
        port_from_contract(port, "orders-v1", contract, "aws", Some("123456789012"))
    }

    #[test]
    fn custom_fields_and_locations_keep_precedence() {
        assert_eq!(described_by(&port(json!({}))), Some("orders-v1"));
        assert_eq!(
            described_by(&json!({"id": "p", "contractId": "c"})),
            Some("c")
        );
        let with_arn = port(json!({"custom": {"aws-s3-bucket-arn": "arn:aws:s3:::b"}}));
        assert_eq!(described_by(&with_arn), None);
        let with_location = port(json!({"server": {"location": "s3://b"}}));
        assert_eq!(described_by(&with_location), None);
        assert_eq!(described_by(&json!({"id": "p"})), None);
    }

    #[test]
    fn each_server_type_becomes_the_port_a_person_would_write() {
        let s3 = translate(
            &port(json!({})),
            &contract(json!([{"server": "prod", "type": "s3", "location": "s3://lake/orders/"}])),
        )
        .unwrap();
        assert_eq!(s3["server"]["location"], "s3://lake/orders/");
        assert_eq!(s3["type"], "s3");

        let glue = translate(
            &port(json!({})),
            &contract(
                json!([{"server": "prod", "type": "glue", "account": "111122223333",
                "database": "sales", "location": "s3://lake/tables/orders/",
                "customProperties": [{"property": "table", "value": "orders"},
                                     {"property": "region", "value": "eu-central-1"},
                                     {"property": "workgroup", "value": "analysts"}]}]),
            ),
        )
        .unwrap();
        assert_eq!(
            glue["custom"]["aws-glue-table-arn"],
            "arn:aws:glue:eu-central-1:111122223333:table/sales/orders"
        );
        assert_eq!(
            glue["custom"]["aws-athena-workgroup-arn"],
            "arn:aws:athena:eu-central-1:111122223333:workgroup/analysts"
        );
        assert_eq!(glue["server"]["location"], "s3://lake/tables/orders/");

        let kinesis = translate(
            &port(json!({})),
            &contract(json!([{"type": "kinesis", "region": "us-east-1",
                "customProperties": [{"property": "stream", "value": "orders"}]}])),
        )
        .unwrap();
        assert_eq!(
            kinesis["custom"]["aws-kinesis-stream-arn"],
            "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
            "the account comes from the port or product when the server has none"
        );

        let kafka = translate(
            &port(json!({})),
            &contract(
                json!([{"type": "kafka", "host": "b-1.events:9098", "topic": "orders",
                "customProperties": [{"property": "clusterArn",
                    "value": "arn:aws:kafka:us-east-1:123456789012:cluster/events/abc-1"}]}]),
            ),
        )
        .unwrap();
        assert_eq!(
            kafka["custom"]["aws-msk-topic-arn"],
            "arn:aws:kafka:us-east-1:123456789012:topic/events/abc-1/orders"
        );
    }

    #[test]
    fn the_server_is_the_named_one_or_the_only_grantable_one() {
        let two = contract(json!([
            {"server": "dev", "type": "s3", "location": "s3://dev-lake/"},
            {"server": "prod", "type": "s3", "location": "s3://lake/"},
            {"server": "wh", "type": "snowflake"}
        ]));
        assert!(matches!(
            translate(&port(json!({})), &two),
            Err(ContractError::AmbiguousServer { .. })
        ));
        let named = port(json!({"custom": {"contractServer": "prod"}}));
        assert_eq!(
            translate(&named, &two).unwrap()["server"]["location"],
            "s3://lake/"
        );
        let unknown = port(json!({"custom": {"contractServer": "qa"}}));
        assert!(matches!(
            translate(&unknown, &two),
            Err(ContractError::UnknownServer { .. })
        ));
        let snowflake = port(json!({"custom": {"contractServer": "wh"}}));
        assert!(matches!(
            translate(&snowflake, &two),
            Err(ContractError::Unsupported { .. })
        ));
        assert!(matches!(
            translate(&port(json!({})), &contract(json!([]))),
            Err(ContractError::NoServer { .. })
        ));
        let error = translate(
            &port(json!({})),
            &contract(json!([{"server": "prod", "type": "glue", "database": "sales"}])),
        )
        .unwrap_err();
        assert!(error.to_string().contains("lacks `region`"), "{error}");
    }
}
