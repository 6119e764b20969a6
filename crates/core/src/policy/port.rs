//! From an output port in a DMM data product to the AWS resources an agreement grants.
//!
//! Compatible with the reference integration: the port type comes from
//! `custom.output-port-type`, and the resources from every custom field whose name starts with
//! `aws` and ends with `arn` — the text in between is free, so `aws-s3-bucket-arn` and the
//! reference README's `aws-s3-aws-s3-folder-arn` both work. Fields are recognised by the ARN they
//! hold, not by their name. Unlike the reference, every ARN must belong to the port type: an ARN
//! the type cannot use is an error, not silently dropped, because it usually means the provider
//! expects access the integration is not going to grant.

use serde_json::{Map, Value};

use super::Context;
use super::arn::{Arn, Partition};
use super::document::PolicyDocument;
use super::error::PolicyError;
use super::glue_table::{
    AthenaWorkgroup, GLUE_ACCESS_FIELD, GlueAccess, GlueResource, GlueTable, GlueTableRef,
};
use super::kinesis_stream::KinesisStream;
use super::kms::KmsKey;
use super::msk_topic::{MskCluster, MskResource, MskTopic};
use super::port_type::PortType;
use super::s3_bucket::S3Bucket;
use super::s3_folder::{S3Folder, S3Location};
use crate::text::shown;

/// The custom field naming the port type, as in the reference integration.
pub const OUTPUT_PORT_TYPE_FIELD: &str = "output-port-type";

const NEEDS_BUCKET: &str = "an S3 bucket ARN in a custom field such as `aws-s3-bucket-arn` \
    (arn:aws:s3:::bucket), or a `server.location` like s3://bucket";
const NEEDS_FOLDER: &str = "an S3 folder ARN in a custom field such as `aws-s3-folder-arn` \
    (arn:aws:s3:::bucket/folder), or a `server.location` like s3://bucket/folder/";
const NEEDS_TABLE: &str = "a Glue table ARN in a custom field such as `aws-glue-table-arn` \
    (arn:aws:glue:region:account:table/database/table)";
const NEEDS_WORKGROUP: &str = "an Athena workgroup ARN in a custom field such as \
    `aws-athena-workgroup-arn` (arn:aws:athena:region:account:workgroup/name)";
const NEEDS_TABLE_LOCATION: &str = "the table's S3 location: an S3 ARN in a custom field such as \
    `aws-s3-folder-arn` (arn:aws:s3:::bucket/folder), or a `server.location` like s3://bucket/folder/";
const NEEDS_STREAM: &str = "a Kinesis stream ARN in a custom field such as \
    `aws-kinesis-stream-arn` (arn:aws:kinesis:region:account:stream/name)";
const NEEDS_TOPIC: &str = "an MSK topic ARN in a custom field such as `aws-msk-topic-arn` \
    (arn:aws:kafka:region:account:topic/cluster/uuid/topic)";

/// The resources of a port, typed by port type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortResource {
    S3Bucket(S3Bucket),
    S3Folder(S3Folder),
    GlueTable(GlueTable),
    KinesisStream(KinesisStream),
    MskTopic(MskTopic),
}

/// Everything an agreement on a port grants: the port's resources and, for encrypted data,
/// the KMS key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortAccess {
    resource: PortResource,
    kms_key: Option<KmsKey>,
}

impl PortAccess {
    pub fn port_type(&self) -> PortType {
        match self.resource {
            PortResource::S3Bucket(_) => PortType::S3Bucket,
            PortResource::S3Folder(_) => PortType::S3Folder,
            PortResource::GlueTable(_) => PortType::GlueTable,
            PortResource::KinesisStream(_) => PortType::KinesisStream,
            PortResource::MskTopic(_) => PortType::MskTopic,
        }
    }

    pub fn resource(&self) -> &PortResource {
        &self.resource
    }

    pub fn kms_key(&self) -> Option<&KmsKey> {
        self.kms_key.as_ref()
    }

    /// The read-only policy for a consumer of this port.
    pub fn policy(&self) -> PolicyDocument {
        let mut statements = match &self.resource {
            PortResource::S3Bucket(bucket) => bucket.statements(),
            PortResource::S3Folder(folder) => folder.statements(),
            PortResource::GlueTable(table) => table.statements(),
            PortResource::KinesisStream(stream) => stream.statements(),
            PortResource::MskTopic(topic) => topic.statements(),
        };
        if let (Some(key), Some(services)) = (&self.kms_key, self.kms_services()) {
            statements.push(key.statement(services));
        }
        PolicyDocument::new(statements)
    }

    /// The services that decrypt the port's data on the consumer's behalf, i.e. the
    /// `kms:ViaService` values; `None` where a consumer never needs the key.
    fn kms_services(&self) -> Option<&'static [&'static str]> {
        match self.resource {
            PortResource::S3Bucket(_) | PortResource::S3Folder(_) => Some(&["s3"]),
            // Athena reads the data through S3; Glue decrypts an encrypted Data Catalog. Under
            // Lake Formation, S3 is read with credentials Lake Formation vends, which decrypt
            // with the registered location's role, not the consumer's.
            PortResource::GlueTable(ref table) => match table.access() {
                GlueAccess::Iam => Some(&["glue", "s3"]),
                GlueAccess::LakeFormation => Some(&["glue"]),
            },
            PortResource::KinesisStream(_) => Some(&["kinesis"]),
            // MSK decrypts at rest itself; the resolver refuses a key on such a port.
            PortResource::MskTopic(_) => None,
        }
    }
}

/// Resolves the output port `port` (one element of a data product's `outputPorts`) into the
/// access an agreement on it grants. Pure: the same port always gives the same answer, so a
/// failure is permanent and goes to the agreement's error status.
pub fn resolve_port(port: &Value, ctx: &Context) -> Result<PortAccess, PolicyError> {
    let object = port.as_object().ok_or_else(|| PolicyError::InvalidPort {
        port: "(unknown)".into(),
        reason: "the port is not a JSON object".into(),
    })?;
    let label = match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => shown(id),
        _ => "(no id)".to_owned(),
    };
    let empty = Map::new();
    let custom = match object.get("custom") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(custom)) => custom,
        Some(_) => {
            return Err(PolicyError::InvalidPort {
                port: label,
                reason: "`custom` is not an object".into(),
            });
        }
    };
    let fields = arn_fields(&label, custom, ctx.partition())?;
    let server_location = server_location(object);
    let declared = match custom.get(OUTPUT_PORT_TYPE_FIELD) {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) if value.is_empty() => None,
        Some(Value::String(value)) => Some(value),
        Some(_) => {
            return Err(PolicyError::FieldNotAString {
                port: label,
                field: OUTPUT_PORT_TYPE_FIELD.into(),
            });
        }
    };
    let port_type = match declared {
        Some(value) => PortType::parse(value).ok_or_else(|| PolicyError::UnknownPortType {
            port: label.clone(),
            value: shown(value),
        })?,
        None => infer_port_type(&label, object, &fields, server_location, ctx.partition())?,
    };
    let glue_access = glue_access(&label, custom, port_type, ctx)?;
    Resolver {
        label,
        port_type,
        partition: ctx.partition(),
        server_location,
        glue_access,
    }
    .resolve(&fields)
}

/// The port's `aws-glue-access-mode`, else the deployment's. The field on a port of another type
/// is refused rather than ignored: whoever set it expects Lake Formation to be involved.
fn glue_access(
    label: &str,
    custom: &Map<String, Value>,
    port_type: PortType,
    ctx: &Context,
) -> Result<GlueAccess, PolicyError> {
    let value = match custom.get(GLUE_ACCESS_FIELD) {
        None | Some(Value::Null) => return Ok(ctx.glue_access()),
        Some(Value::String(value)) if value.trim().is_empty() => return Ok(ctx.glue_access()),
        Some(Value::String(value)) => value,
        Some(_) => {
            return Err(PolicyError::FieldNotAString {
                port: label.to_owned(),
                field: GLUE_ACCESS_FIELD.into(),
            });
        }
    };
    let invalid = |reason: String| PolicyError::InvalidPort {
        port: label.to_owned(),
        reason,
    };
    if port_type != PortType::GlueTable {
        return Err(invalid(format!(
            "custom field `{GLUE_ACCESS_FIELD}` applies only to glue_table ports, and this port \
             is {port_type}"
        )));
    }
    GlueAccess::parse(value).ok_or_else(|| {
        invalid(format!(
            "custom field `{GLUE_ACCESS_FIELD}` is `{}`; expected `iam` or `lake-formation`",
            shown(value)
        ))
    })
}

/// A custom field holding an ARN.
struct ArnField {
    name: String,
    arn: Arn,
}

/// The `aws…arn` custom fields, parsed, in document order. Empty and `null` fields count as not
/// set, because DMM's UI leaves them behind when a value is cleared.
fn arn_fields(
    label: &str,
    custom: &Map<String, Value>,
    partition: Partition,
) -> Result<Vec<ArnField>, PolicyError> {
    let mut fields = Vec::new();
    for (name, value) in custom {
        if !(name.starts_with("aws") && name.ends_with("arn")) {
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(text) if text.is_empty() => continue,
            Value::String(text) => text,
            _ => {
                return Err(PolicyError::FieldNotAString {
                    port: label.to_owned(),
                    field: shown(name),
                });
            }
        };
        let arn = Arn::parse(text).map_err(|reason| PolicyError::InvalidArn {
            port: label.to_owned(),
            field: shown(name),
            value: shown(text),
            reason,
        })?;
        if arn.partition() != partition {
            return Err(PolicyError::PartitionMismatch {
                port: label.to_owned(),
                field: shown(name),
                arn: arn.to_string(),
                found: arn.partition().to_string(),
                expected: partition.to_string(),
            });
        }
        fields.push(ArnField {
            name: name.clone(),
            arn,
        });
    }
    Ok(fields)
}

/// `server.location` when it is an `s3://` URL; other schemes belong to other technologies and
/// are not the integration's business.
fn server_location(object: &Map<String, Value>) -> Option<&str> {
    object
        .get("server")?
        .get("location")?
        .as_str()
        .filter(|location| location.starts_with("s3://"))
}

/// The port type implied by the standard `type` and `server` block, where that is unambiguous:
/// `s3` is a bucket or a folder depending on the location; `kinesis` is a stream. Other types
/// (`glue` may be a table or a database, `kafka` need not be MSK) must say what they are.
fn infer_port_type(
    label: &str,
    object: &Map<String, Value>,
    fields: &[ArnField],
    server_location: Option<&str>,
    partition: Partition,
) -> Result<PortType, PolicyError> {
    let not_inferable = |reason: String| PolicyError::PortTypeNotInferable {
        port: label.to_owned(),
        reason,
    };
    let declared = object
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match declared.to_ascii_lowercase().as_str() {
        "s3" => {
            let is_folder = if let Some(field) = fields.iter().find(|f| f.arn.service() == "s3") {
                field.arn.resource().contains('/')
            } else if let Some(url) = server_location {
                let location = S3Location::from_url(url, partition).map_err(|reason| {
                    PolicyError::InvalidS3Location {
                        port: label.to_owned(),
                        location: shown(url),
                        reason,
                    }
                })?;
                matches!(location, S3Location::Folder(_))
            } else {
                return Err(not_inferable(
                    "the port has type s3 but neither an S3 ARN custom field nor a `server.location` s3://…".into(),
                ));
            };
            Ok(if is_folder {
                PortType::S3Folder
            } else {
                PortType::S3Bucket
            })
        }
        "kinesis" => Ok(PortType::KinesisStream),
        "" => Err(not_inferable("the port has no `type` either".into())),
        _ => Err(not_inferable(format!(
            "type `{}` does not determine which access to grant",
            shown(declared)
        ))),
    }
}

/// Whether `server.location` `url` names `location`, or is a glob whose literal part (up to the
/// last `/` before the first wildcard) lies inside it.
fn agrees(location: &S3Location, url: &str, partition: Partition) -> bool {
    if let Ok(same) = S3Location::from_url(url, partition) {
        return same == *location;
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return false;
    };
    let Some(glob_at) = rest.find(['*', '?', '[', '{']) else {
        return false;
    };
    // No `/` before the wildcard: the glob is in the bucket name.
    let Some((literal, _)) = rest[..glob_at].rsplit_once('/') else {
        return false;
    };
    let Ok(base) = S3Location::from_url(&format!("s3://{literal}/"), partition) else {
        return false;
    };
    base.bucket() == location.bucket()
        && match (location, &base) {
            (S3Location::Bucket(_), _) => true,
            (S3Location::Folder(folder), S3Location::Folder(inner)) => {
                inner.path() == folder.path()
                    || inner
                        .path()
                        .strip_prefix(folder.path())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            (S3Location::Folder(_), S3Location::Bucket(_)) => false,
        }
}

/// A resource found in a custom field.
struct Found<'f, T> {
    field: &'f ArnField,
    value: T,
}

/// Every resource the port's fields name, sorted into slots by kind.
struct Collected<'f> {
    kms: Option<Found<'f, KmsKey>>,
    s3: Option<Found<'f, S3Location>>,
    glue_table: Option<Found<'f, GlueTableRef>>,
    glue_context: Vec<Found<'f, GlueResource>>,
    workgroup: Option<Found<'f, AthenaWorkgroup>>,
    stream: Option<Found<'f, KinesisStream>>,
    msk_cluster: Option<Found<'f, MskCluster>>,
    msk_topic: Option<Found<'f, (MskCluster, String)>>,
    msk_groups: Vec<Found<'f, (MskCluster, String)>>,
}

/// Where an S3 location came from, for pointing at it in messages.
enum Source<'a> {
    Field(&'a ArnField),
    ServerLocation(&'a str),
}

struct Resolver<'a> {
    label: String,
    port_type: PortType,
    partition: Partition,
    server_location: Option<&'a str>,
    glue_access: GlueAccess,
}

impl<'a> Resolver<'a> {
    fn unexpected(&self, field: &ArnField, reason: String) -> PolicyError {
        PolicyError::UnexpectedResource {
            port: self.label.clone(),
            port_type: self.port_type,
            field: shown(&field.name),
            arn: field.arn.to_string(),
            reason,
        }
    }

    fn missing(&self, what: &'static str) -> PolicyError {
        PolicyError::MissingResource {
            port: self.label.clone(),
            port_type: self.port_type,
            what,
        }
    }

    fn inconsistent(&self, reason: String) -> PolicyError {
        PolicyError::InconsistentResources {
            port: self.label.clone(),
            port_type: self.port_type,
            reason,
        }
    }

    /// Puts `value` into a one-resource slot. The same resource named twice (say, by the
    /// reference README's field name and by a newer one) is fine; two different ones are not.
    fn fill<'f, T: PartialEq>(
        &self,
        slot: &mut Option<Found<'f, T>>,
        field: &'f ArnField,
        value: T,
        what: &'static str,
    ) -> Result<(), PolicyError> {
        match slot {
            Some(existing) if existing.value != value => Err(PolicyError::DuplicateResource {
                port: self.label.clone(),
                port_type: self.port_type,
                what,
                first: shown(&existing.field.name),
                second: shown(&field.name),
            }),
            Some(_) => Ok(()),
            None => {
                *slot = Some(Found { field, value });
                Ok(())
            }
        }
    }

    fn collect<'f>(&self, fields: &'f [ArnField]) -> Result<Collected<'f>, PolicyError> {
        let mut found = Collected {
            kms: None,
            s3: None,
            glue_table: None,
            glue_context: Vec::new(),
            workgroup: None,
            stream: None,
            msk_cluster: None,
            msk_topic: None,
            msk_groups: Vec::new(),
        };
        for field in fields {
            let unexpected = |reason: String| self.unexpected(field, reason);
            match (self.port_type, field.arn.service()) {
                (PortType::MskTopic, "kms") => {
                    return Err(unexpected(
                        "but MSK decrypts its data itself and a consumer needs no KMS permission; remove this field".into(),
                    ));
                }
                (_, "kms") => {
                    let key = KmsKey::from_arn(&field.arn).map_err(unexpected)?;
                    self.fill(&mut found.kms, field, key, "a KMS key")?;
                }
                (PortType::S3Bucket | PortType::S3Folder | PortType::GlueTable, "s3") => {
                    let location = S3Location::from_arn(&field.arn).map_err(unexpected)?;
                    self.fill(&mut found.s3, field, location, "an S3 location")?;
                }
                (PortType::GlueTable, "glue") => {
                    match GlueResource::from_arn(&field.arn).map_err(unexpected)? {
                        GlueResource::Table(table) => {
                            self.fill(&mut found.glue_table, field, table, "a Glue table")?
                        }
                        context => found.glue_context.push(Found {
                            field,
                            value: context,
                        }),
                    }
                }
                (PortType::GlueTable, "athena") => {
                    let workgroup = AthenaWorkgroup::from_arn(&field.arn).map_err(unexpected)?;
                    self.fill(
                        &mut found.workgroup,
                        field,
                        workgroup,
                        "an Athena workgroup",
                    )?;
                }
                (PortType::KinesisStream, "kinesis") => {
                    let stream = KinesisStream::from_arn(&field.arn).map_err(unexpected)?;
                    self.fill(&mut found.stream, field, stream, "a Kinesis stream")?;
                }
                (PortType::MskTopic, "kafka") => {
                    match MskResource::from_arn(&field.arn).map_err(unexpected)? {
                        MskResource::Cluster(cluster) => {
                            self.fill(&mut found.msk_cluster, field, cluster, "an MSK cluster")?
                        }
                        MskResource::Topic(cluster, topic) => self.fill(
                            &mut found.msk_topic,
                            field,
                            (cluster, topic),
                            "an MSK topic",
                        )?,
                        MskResource::Group(cluster, group) => found.msk_groups.push(Found {
                            field,
                            value: (cluster, group),
                        }),
                    }
                }
                (port_type, service) => {
                    return Err(unexpected(format!(
                        "which is a `{service}` ARN, but port type {port_type} takes {}",
                        port_type.takes()
                    )));
                }
            }
        }
        Ok(found)
    }

    /// The S3 location from a custom field, or else from `server.location`.
    ///
    /// When both are set they must agree: `server.location` names the same bucket or folder, or
    /// is a data contract glob inside it (`s3://bucket/folder/*.json`). Anything else is two
    /// different places for one port, and granting either could be the wrong one.
    fn location<'f>(
        &self,
        found: Option<Found<'f, S3Location>>,
    ) -> Result<Option<(Source<'f>, S3Location)>, PolicyError>
    where
        'a: 'f,
    {
        if let Some(found) = found {
            if let Some(url) = self.server_location
                && !agrees(&found.value, url, self.partition)
            {
                return Err(PolicyError::ConflictingS3Locations {
                    port: self.label.clone(),
                    port_type: self.port_type,
                    field: shown(&found.field.name),
                    arn: found.field.arn.to_string(),
                    location: shown(url),
                });
            }
            return Ok(Some((Source::Field(found.field), found.value)));
        }
        let Some(url) = self.server_location else {
            return Ok(None);
        };
        S3Location::from_url(url, self.partition)
            .map(|location| Some((Source::ServerLocation(url), location)))
            .map_err(|reason| PolicyError::InvalidS3Location {
                port: self.label.clone(),
                location: shown(url),
                reason,
            })
    }

    /// A bucket where a folder is needed, or the other way round.
    fn wrong_kind(&self, source: Source<'_>, found: &str, rule: &str) -> PolicyError {
        match source {
            Source::Field(field) => {
                self.unexpected(field, format!("which names {found}, but {rule}"))
            }
            Source::ServerLocation(url) => PolicyError::InvalidS3Location {
                port: self.label.clone(),
                location: shown(url),
                reason: format!("it names {found}, but {rule}"),
            },
        }
    }

    fn resolve(&self, fields: &[ArnField]) -> Result<PortAccess, PolicyError> {
        let found = self.collect(fields)?;
        let resource = match self.port_type {
            PortType::S3Bucket => match self.location(found.s3)? {
                Some((_, S3Location::Bucket(bucket))) => PortResource::S3Bucket(bucket),
                Some((source, S3Location::Folder(_))) => {
                    return Err(self.wrong_kind(
                        source,
                        "a folder",
                        "an s3_bucket port grants a whole bucket (use output-port-type s3_folder for a folder)",
                    ));
                }
                None => return Err(self.missing(NEEDS_BUCKET)),
            },
            PortType::S3Folder => match self.location(found.s3)? {
                Some((_, S3Location::Folder(folder))) => PortResource::S3Folder(folder),
                Some((source, S3Location::Bucket(_))) => {
                    return Err(self.wrong_kind(
                        source,
                        "a whole bucket",
                        "an s3_folder port grants one folder (use output-port-type s3_bucket for a whole bucket)",
                    ));
                }
                None => return Err(self.missing(NEEDS_FOLDER)),
            },
            PortType::GlueTable => {
                let table = found.glue_table.ok_or_else(|| self.missing(NEEDS_TABLE))?;
                for context in &found.glue_context {
                    if let Some(reason) = context.value.mismatch(&table.value) {
                        return Err(self.unexpected(context.field, format!("which {reason}")));
                    }
                }
                let workgroup = found
                    .workgroup
                    .ok_or_else(|| self.missing(NEEDS_WORKGROUP))?;
                // Lake Formation vends the data's credentials itself: the location is needed
                // only for a grant in IAM.
                let location = self.location(found.s3)?.map(|(_, location)| location);
                if location.is_none() && self.glue_access == GlueAccess::Iam {
                    return Err(self.missing(NEEDS_TABLE_LOCATION));
                }
                PortResource::GlueTable(
                    GlueTable::new(table.value, workgroup.value, self.glue_access, location)
                        .map_err(|reason| self.inconsistent(reason))?,
                )
            }
            PortType::KinesisStream => {
                let stream = found
                    .stream
                    .ok_or_else(|| self.missing(NEEDS_STREAM))?
                    .value;
                if let Some(key) = &found.kms
                    && key.value.region() != stream.region()
                {
                    return Err(self.inconsistent(format!(
                        "the KMS key is in region {}, but the stream is in {}; Kinesis only uses keys of its own region",
                        key.value.region(),
                        stream.region()
                    )));
                }
                PortResource::KinesisStream(stream)
            }
            PortType::MskTopic => {
                let (cluster, topic) = found
                    .msk_topic
                    .ok_or_else(|| self.missing(NEEDS_TOPIC))?
                    .value;
                if let Some(other) = found.msk_cluster.as_ref().filter(|c| c.value != cluster) {
                    return Err(self
                        .unexpected(other.field, "which is not the cluster of the topic".into()));
                }
                let mut groups = Vec::with_capacity(found.msk_groups.len());
                for group in found.msk_groups {
                    if group.value.0 != cluster {
                        return Err(self.unexpected(
                            group.field,
                            "which is a consumer group of another cluster than the topic's".into(),
                        ));
                    }
                    groups.push(group.value.1);
                }
                PortResource::MskTopic(MskTopic::new(cluster, topic, groups))
            }
        };
        Ok(PortAccess {
            resource,
            kms_key: found.kms.map(|found| found.value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ArnError;
    use proptest::prelude::*;
    use serde_json::json;

    const ACCOUNT: &str = "111122223333";

    fn ctx() -> Context {
        Context::new(Partition::Aws)
    }

    fn resolve(port: Value) -> Result<PortAccess, PolicyError> {
        resolve_port(&port, &ctx())
    }

    fn policy(port: Value) -> String {
        resolve(port).unwrap().policy().to_json()
    }

    fn port(custom: Value) -> Value {
        json!({"id": "p1", "type": "custom", "custom": custom})
    }

    #[test]
    fn reference_s3_bucket_example() {
        let access = resolve(port(json!({
            "output-port-type": "s3_bucket",
            "aws-s3-bucket-arn": "arn:aws:s3:::sales-data"
        })))
        .unwrap();
        assert_eq!(access.port_type(), PortType::S3Bucket);
        assert_eq!(access.kms_key(), None);
        assert_eq!(
            access.policy().to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"S3ListBucket","Effect":"Allow","Action":["s3:GetBucketLocation","s3:ListBucket"],"Resource":"arn:aws:s3:::sales-data"},"#,
                r#"{"Sid":"S3ReadObjects","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::sales-data/*"}]}"#
            )
        );
    }

    #[test]
    fn reference_glue_table_example_with_its_field_names() {
        let access = resolve(port(json!({
            "output-port-type": "glue_table",
            "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-central-1:{ACCOUNT}:workgroup/primary"),
            "aws-glue-catalog-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:catalog"),
            "aws-glue-database-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:database/sales"),
            "aws-glue-table-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:table/sales/orders"),
            "aws-s3-aws-s3-folder-arn": "arn:aws:s3:::sales-data/orders"
        })))
        .unwrap();
        assert_eq!(access.port_type(), PortType::GlueTable);
        assert_eq!(
            access.policy().to_json(),
            crate::policy::glue_table::SALES_ORDERS_POLICY
        );
    }

    #[test]
    fn a_glue_table_goes_through_lake_formation_by_port_field_or_deployment_default() {
        let custom = |mode: Value| {
            port(json!({
                "output-port-type": "glue_table",
                "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-central-1:{ACCOUNT}:workgroup/wg"),
                "aws-glue-table-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:table/sales/orders"),
                "aws-s3-folder-arn": "arn:aws:s3:::sales-data/orders",
                "aws-kms-key-arn": format!("arn:aws:kms:eu-central-1:{ACCOUNT}:key/k"),
                "aws-glue-access-mode": mode
            }))
        };
        let lake_formation = resolve(custom(json!("lake-formation"))).unwrap();
        let json = lake_formation.policy().to_json();
        assert!(json.contains("lakeformation:GetDataAccess"), "{json}");
        assert!(!json.contains("sales-data"), "no S3 statement: {json}");
        assert!(
            json.contains(r#""kms:ViaService":"glue.eu-central-1.amazonaws.com""#),
            "the catalog's key only: {json}"
        );
        let deployment = ctx().with_glue_access(GlueAccess::LakeFormation);
        let by_default = resolve_port(&custom(Value::Null), &deployment).unwrap();
        assert_eq!(by_default, lake_formation);
        let overridden = resolve_port(&custom(json!("iam")), &deployment).unwrap();
        assert!(overridden.policy().to_json().contains("sales-data"));

        let without_location = |mode: &str| {
            resolve(port(json!({
                "output-port-type": "glue_table",
                "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-central-1:{ACCOUNT}:workgroup/wg"),
                "aws-glue-table-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:table/sales/orders"),
                "aws-glue-access-mode": mode
            })))
        };
        assert!(without_location("lake-formation").is_ok());
        assert!(
            without_location("iam")
                .unwrap_err()
                .to_string()
                .contains("needs the table's S3 location")
        );

        let unknown = resolve(custom(json!("lakeformation"))).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "output port `p1`: custom field `aws-glue-access-mode` is `lakeformation`; expected \
             `iam` or `lake-formation`"
        );
        let elsewhere = resolve(port(json!({
            "output-port-type": "s3_bucket",
            "aws-s3-bucket-arn": "arn:aws:s3:::lake",
            "aws-glue-access-mode": "lake-formation"
        })))
        .unwrap_err();
        assert!(
            elsewhere
                .to_string()
                .contains("applies only to glue_table ports"),
            "{elsewhere}"
        );
    }

    #[test]
    fn glue_table_needs_no_catalog_or_database_arn() {
        let minimal = policy(port(json!({
            "output-port-type": "glue_table",
            "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-central-1:{ACCOUNT}:workgroup/primary"),
            "aws-glue-table-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:table/sales/orders"),
            "aws-s3-folder-arn": "arn:aws:s3:::sales-data/orders/"
        })));
        assert!(
            minimal.contains("arn:aws:glue:eu-central-1:111122223333:catalog"),
            "{minimal}"
        );
    }

    #[test]
    fn s3_folder_with_kms_key() {
        assert_eq!(
            policy(port(json!({
                "output-port-type": "s3_folder",
                "aws-s3-folder-arn": "arn:aws:s3:::sales-data/orders/v1",
                "aws-kms-key-arn": format!("arn:aws:kms:eu-central-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab")
            }))),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"S3BucketLocation","Effect":"Allow","Action":"s3:GetBucketLocation","Resource":"arn:aws:s3:::sales-data"},"#,
                r#"{"Sid":"S3ListFolder","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::sales-data","Condition":{"StringLike":{"s3:prefix":["orders/v1/","orders/v1/*"]}}},"#,
                r#"{"Sid":"S3ReadFolder","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::sales-data/orders/v1/*"},"#,
                r#"{"Sid":"KmsDecrypt","Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","#,
                r#""Condition":{"StringEquals":{"kms:ViaService":"s3.eu-central-1.amazonaws.com"}}}]}"#
            )
        );
    }

    #[test]
    fn kinesis_stream_with_kms_key() {
        assert_eq!(
            policy(port(json!({
                "output-port-type": "kinesis_stream",
                "aws-kinesis-stream-arn": format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/orders"),
                "aws-kms-key-arn": format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/k-1")
            }))),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"KinesisReadStream","Effect":"Allow","Action":["kinesis:DescribeStream","kinesis:DescribeStreamSummary","kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards","kinesis:RegisterStreamConsumer"],"Resource":"arn:aws:kinesis:eu-west-1:111122223333:stream/orders"},"#,
                r#"{"Sid":"KinesisFanOut","Effect":"Allow","Action":["kinesis:DescribeStreamConsumer","kinesis:SubscribeToShard"],"Resource":"arn:aws:kinesis:eu-west-1:111122223333:stream/orders/consumer/*"},"#,
                r#"{"Sid":"KmsDecrypt","Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:eu-west-1:111122223333:key/k-1","#,
                r#""Condition":{"StringEquals":{"kms:ViaService":"kinesis.eu-west-1.amazonaws.com"}}}]}"#
            )
        );
    }

    #[test]
    fn glue_table_kms_key_works_through_glue_and_s3() {
        let json = policy(port(json!({
            "output-port-type": "glue_table",
            "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-central-1:{ACCOUNT}:workgroup/wg"),
            "aws-glue-table-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:table/db/t"),
            "aws-s3-folder-arn": "arn:aws:s3:::data-1/t",
            "aws-kms-key-arn": format!("arn:aws:kms:eu-central-1:{ACCOUNT}:key/k")
        })));
        assert!(
            json.ends_with(r#""Condition":{"StringEquals":{"kms:ViaService":["glue.eu-central-1.amazonaws.com","s3.eu-central-1.amazonaws.com"]}}}]}"#),
            "{json}"
        );
    }

    #[test]
    fn msk_topic_with_cluster_and_groups() {
        let cluster = format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:cluster/events/abcd-1");
        assert_eq!(
            policy(port(json!({
                "output-port-type": "msk_topic",
                "aws-msk-cluster-arn": cluster,
                "aws-msk-topic-arn": format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:topic/events/abcd-1/orders"),
                "aws-msk-group-arn": format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:group/events/abcd-1/reporting"),
                "aws-msk-group-2-arn": format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:group/events/abcd-1/billing")
            }))),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"KafkaConnect","Effect":"Allow","Action":["kafka-cluster:Connect","kafka-cluster:DescribeCluster"],"Resource":"arn:aws:kafka:eu-central-1:111122223333:cluster/events/abcd-1"},"#,
                r#"{"Sid":"KafkaReadTopic","Effect":"Allow","Action":["kafka-cluster:DescribeTopic","kafka-cluster:ReadData"],"Resource":"arn:aws:kafka:eu-central-1:111122223333:topic/events/abcd-1/orders"},"#,
                r#"{"Sid":"KafkaConsumerGroups","Effect":"Allow","Action":["kafka-cluster:AlterGroup","kafka-cluster:DescribeGroup"],"Resource":["arn:aws:kafka:eu-central-1:111122223333:group/events/abcd-1/billing","arn:aws:kafka:eu-central-1:111122223333:group/events/abcd-1/reporting"]}]}"#
            )
        );
    }

    #[test]
    fn msk_cluster_arn_is_optional() {
        let json = policy(port(json!({
            "output-port-type": "msk_topic",
            "aws-msk-topic-arn": format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:topic/events/abcd-1/orders")
        })));
        assert!(
            json.contains(
                r#""Resource":"arn:aws:kafka:eu-central-1:111122223333:cluster/events/abcd-1""#
            ),
            "{json}"
        );
        assert!(!json.contains("Group"), "{json}");
    }

    #[test]
    fn partition_variants() {
        let cn = Context::for_region("cn-north-1").unwrap();
        let access = resolve_port(
            &json!({"id": "p", "type": "s3", "server": {"location": "s3://lake/raw/"}}),
            &cn,
        )
        .unwrap();
        let json = access.policy().to_json();
        assert!(
            json.contains(r#""Resource":"arn:aws-cn:s3:::lake/raw/*""#),
            "{json}"
        );
        assert!(!json.contains("arn:aws:"), "{json}");

        let gov = Context::for_region("us-gov-west-1").unwrap();
        let access = resolve_port(
            &port(json!({
                "output-port-type": "kinesis_stream",
                "aws-kinesis-stream-arn": format!("arn:aws-us-gov:kinesis:us-gov-west-1:{ACCOUNT}:stream/s"),
                "aws-kms-key-arn": format!("arn:aws-us-gov:kms:us-gov-west-1:{ACCOUNT}:key/k")
            })),
            &gov,
        )
        .unwrap();
        let json = access.policy().to_json();
        assert!(
            json.contains("arn:aws-us-gov:kinesis:us-gov-west-1:111122223333:stream/s/consumer/*"),
            "{json}"
        );
        assert!(
            json.contains("kinesis.us-gov-west-1.amazonaws.com"),
            "{json}"
        );
    }

    #[test]
    fn context_for_region() {
        assert_eq!(
            Context::for_region("eu-central-1").unwrap().partition(),
            Partition::Aws
        );
        assert!(matches!(
            Context::for_region("moon-1"),
            Err(PolicyError::InvalidRegion { .. })
        ));
        assert!(matches!(
            Context::for_region("us-iso-east-1"),
            Err(PolicyError::InvalidRegion { .. })
        ));
    }

    #[test]
    fn infers_s3_ports_from_type_and_server() {
        let folder = resolve(
            json!({"id": "p", "type": "s3", "server": {"location": "s3://lake/raw/orders/"}}),
        )
        .unwrap();
        assert_eq!(folder.port_type(), PortType::S3Folder);
        let PortResource::S3Folder(f) = folder.resource() else {
            panic!()
        };
        assert_eq!((f.bucket().name(), f.path()), ("lake", "raw/orders"));

        for location in ["s3://lake", "s3://lake/"] {
            let bucket =
                resolve(json!({"id": "p", "type": "S3", "server": {"location": location}}))
                    .unwrap();
            assert_eq!(bucket.port_type(), PortType::S3Bucket, "{location}");
        }

        let by_arn = resolve(
            json!({"id": "p", "type": "s3", "custom": {"aws-s3-arn": "arn:aws:s3:::lake/x"}}),
        )
        .unwrap();
        assert_eq!(by_arn.port_type(), PortType::S3Folder);
        let by_arn = resolve(
            json!({"id": "p", "type": "s3", "custom": {"aws-s3-arn": "arn:aws:s3:::lake"}}),
        )
        .unwrap();
        assert_eq!(by_arn.port_type(), PortType::S3Bucket);

        let kinesis = resolve(json!({"id": "p", "type": "kinesis", "custom": {
            "aws-kinesis-stream-arn": format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/s")
        }}))
        .unwrap();
        assert_eq!(kinesis.port_type(), PortType::KinesisStream);

        let empty_type = resolve(json!({"id": "p", "type": "s3", "server": {"location": "s3://lake"}, "custom": {"output-port-type": ""}})).unwrap();
        assert_eq!(empty_type.port_type(), PortType::S3Bucket);
    }

    #[test]
    fn refuses_to_guess_ambiguous_types() {
        for (port, reason) in [
            (
                json!({"id": "p", "type": "glue"}),
                "type `glue` does not determine which access to grant",
            ),
            (
                json!({"id": "p", "type": "kafka"}),
                "type `kafka` does not determine which access to grant",
            ),
            (json!({"id": "p"}), "the port has no `type` either"),
            (
                json!({"id": "p", "type": "s3"}),
                "the port has type s3 but neither an S3 ARN custom field nor a `server.location` s3://…",
            ),
            (
                json!({"id": "p", "type": "s3", "server": {"location": "https://example.com/x"}}),
                "the port has type s3 but neither an S3 ARN custom field nor a `server.location` s3://…",
            ),
        ] {
            assert_eq!(
                resolve(port.clone()),
                Err(PolicyError::PortTypeNotInferable {
                    port: "p".into(),
                    reason: reason.into()
                }),
                "{port}"
            );
        }
    }

    #[test]
    fn server_location_is_the_fallback_for_an_explicit_type() {
        let access = resolve(
            json!({"id": "p", "type": "custom", "server": {"location": "s3://lake/raw"},
            "custom": {"output-port-type": "s3_folder"}}),
        )
        .unwrap();
        assert_eq!(access.port_type(), PortType::S3Folder);

        // A data contract glob in server.location does not matter when a field names the folder.
        let access = resolve(json!({"id": "p", "type": "s3", "server": {"location": "s3://lake/raw/*.json"},
            "custom": {"output-port-type": "s3_folder", "aws-s3-folder-arn": "arn:aws:s3:::lake/raw"}}))
        .unwrap();
        assert_eq!(access.port_type(), PortType::S3Folder);

        assert_eq!(
            resolve(
                json!({"id": "p", "type": "s3", "server": {"location": "s3://lake/raw/*.json"},
                "custom": {"output-port-type": "s3_folder"}})
            ),
            Err(PolicyError::InvalidS3Location {
                port: "p".into(),
                location: "s3://lake/raw/*.json".into(),
                reason: "it contains a wildcard; name the folder itself, e.g. s3://bucket/folder/"
                    .into()
            })
        );
    }

    #[test]
    fn a_server_location_must_agree_with_the_s3_field() {
        let folder_port = |location: &str| {
            json!({"id": "p", "type": "s3", "server": {"location": location},
                "custom": {"output-port-type": "s3_folder", "aws-s3-folder-arn": "arn:aws:s3:::lake/raw"}})
        };
        // The same folder, written any way, or a data contract glob inside it.
        for location in [
            "s3://lake/raw",
            "s3://lake/raw/",
            "s3://lake/raw/*.json",
            "s3://lake/raw/2024/*/part-?.parquet",
            "s3://lake/raw/{a,b}/x.csv",
            "https://other.example/raw", // not an s3:// URL: not an S3 location, ignored
        ] {
            let access = resolve(folder_port(location));
            assert!(access.is_ok(), "{location}: {access:?}");
        }
        // Somewhere else: another bucket, a sibling, the parent, a sub-folder (a narrower grant
        // than the field's), a glob reaching outside the folder, a glob in the bucket name,
        // something that is no location at all.
        for location in [
            "s3://other-bucket/raw/",
            "s3://lake/raw-private/",
            "s3://lake",
            "s3://lake/raw/2024/",
            "s3://lake/raw*/x.json",
            "s3://lake/*.json",
            "s3://la*/raw/",
            "s3://lake/raw/../secret/*.json",
            "s3://",
        ] {
            let error = failure(folder_port(location));
            assert_eq!(
                error,
                PolicyError::ConflictingS3Locations {
                    port: "p".into(),
                    port_type: PortType::S3Folder,
                    field: "aws-s3-folder-arn".into(),
                    arn: "arn:aws:s3:::lake/raw".into(),
                    location: location.into(),
                },
                "{location}"
            );
        }
        assert_eq!(
            failure(folder_port("s3://other-bucket/raw/")).to_string(),
            "output port `p` (s3_folder): custom field `aws-s3-folder-arn` names \
             `arn:aws:s3:::lake/raw`, but `server.location` names `s3://other-bucket/raw/`; a port \
             grants exactly one S3 location, so make them name the same one (a data contract glob \
             inside it is fine) or remove one"
        );

        // A bucket port: any glob inside the bucket agrees, another bucket does not.
        let bucket_port = |location: &str| {
            json!({"id": "p", "server": {"location": location},
                "custom": {"output-port-type": "s3_bucket", "aws-s3-bucket-arn": "arn:aws:s3:::lake"}})
        };
        for location in [
            "s3://lake",
            "s3://lake/",
            "s3://lake/*.json",
            "s3://lake/a/*",
        ] {
            assert!(resolve(bucket_port(location)).is_ok(), "{location}");
        }
        for location in ["s3://lake-2", "s3://lake/raw/", "s3://lake*"] {
            assert!(
                matches!(
                    failure(bucket_port(location)),
                    PolicyError::ConflictingS3Locations { .. }
                ),
                "{location}"
            );
        }

        // A Glue table's S3 location obeys the same rule.
        let mut table = port(json!({
            "output-port-type": "glue_table",
            "aws-glue-table-arn": "arn:aws:glue:eu-central-1:111122223333:table/sales/orders",
            "aws-athena-workgroup-arn": "arn:aws:athena:eu-central-1:111122223333:workgroup/primary",
            "aws-s3-folder-arn": "arn:aws:s3:::lake/orders"
        }));
        table["server"] = json!({"location": "s3://lake/customers/"});
        assert!(matches!(
            resolve(table),
            Err(PolicyError::ConflictingS3Locations { .. })
        ));
    }

    #[test]
    fn ignores_fields_that_are_not_aws_arns() {
        let access = resolve(port(json!({
            "output-port-type": "s3_bucket",
            "aws-s3-bucket-arn": "arn:aws:s3:::lake",
            "aws-region": "eu-central-1",
            "arn-note": "not ours",
            "description": "*",
            "aws-empty-arn": "",
            "aws-null-arn": null
        })))
        .unwrap();
        assert_eq!(access.port_type(), PortType::S3Bucket);
    }

    #[test]
    fn the_same_resource_in_two_fields_is_fine() {
        let access = resolve(port(json!({
            "output-port-type": "s3_bucket",
            "aws-s3-bucket-arn": "arn:aws:s3:::lake",
            "aws-s3-arn": "arn:aws:s3:::lake"
        })));
        assert!(access.is_ok());
    }

    fn failure(port_value: Value) -> PolicyError {
        resolve(port_value).unwrap_err()
    }

    #[test]
    fn rejects_wildcards_and_unsafe_characters_in_arns() {
        for value in [
            "arn:aws:s3:::lake/*",
            "arn:aws:s3:::lake/r?w",
            "arn:aws:s3:::lake/${aws:username}",
            "arn:aws:s3:::läke",
            "arn:aws:s3:::lake\n",
            " arn:aws:s3:::lake",
        ] {
            let error = failure(port(
                json!({"output-port-type": "s3_folder", "aws-s3-folder-arn": value}),
            ));
            assert!(
                matches!(&error, PolicyError::InvalidArn { port, field, .. } if port == "p1" && field == "aws-s3-folder-arn"),
                "{value:?}: {error}"
            );
        }
        assert_eq!(
            failure(port(
                json!({"output-port-type": "s3_bucket", "aws-s3-bucket-arn": "arn:aws:s3:::*"})
            ))
            .to_string(),
            "output port `p1`: custom field `aws-s3-bucket-arn` holds `arn:aws:s3:::*`, which is not a valid ARN: \
             it contains the wildcard `*`; only the integration itself adds wildcards to a policy"
        );
    }

    #[test]
    fn rejects_huge_values_with_a_short_message() {
        let huge = format!("arn:aws:s3:::{}", "a".repeat(10 * 1024));
        let error = failure(port(
            json!({"output-port-type": "s3_bucket", "aws-s3-bucket-arn": huge}),
        ));
        assert!(matches!(
            error,
            PolicyError::InvalidArn {
                reason: ArnError::TooLong(_),
                ..
            }
        ));
        assert!(error.to_string().len() < 400, "{error}");
        let huge_id = "p".repeat(10 * 1024);
        let error = failure(json!({"id": huge_id, "type": "glue"}));
        assert!(error.to_string().len() < 400, "{error}");
    }

    #[test]
    fn rejects_arns_of_other_services() {
        let error = failure(port(json!({
            "output-port-type": "s3_bucket",
            "aws-s3-bucket-arn": "arn:aws:s3:::lake",
            "aws-stream-arn": format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/s")
        })));
        assert_eq!(
            error.to_string(),
            "output port `p1` (s3_bucket): custom field `aws-stream-arn` holds \
             `arn:aws:kinesis:eu-west-1:111122223333:stream/s`, which is a `kinesis` ARN, but port type \
             s3_bucket takes an S3 bucket ARN and optionally a KMS key ARN"
        );
        for (port_type, arn) in [
            ("kinesis_stream", "arn:aws:s3:::lake".to_owned()),
            (
                "msk_topic",
                format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/s"),
            ),
            (
                "glue_table",
                format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/s"),
            ),
            ("s3_folder", format!("arn:aws:iam::{ACCOUNT}:role/consumer")),
            (
                "s3_bucket",
                format!("arn:aws:glue:eu-west-1:{ACCOUNT}:table/db/t"),
            ),
        ] {
            assert!(
                matches!(
                    error_of(port_type, &arn),
                    PolicyError::UnexpectedResource { .. }
                ),
                "{port_type} {arn}"
            );
        }
    }

    fn error_of(port_type: &str, arn: &str) -> PolicyError {
        failure(port(
            json!({"output-port-type": port_type, "aws-x-arn": arn}),
        ))
    }

    #[test]
    fn rejects_other_resource_kinds_of_the_right_service() {
        assert_eq!(
            error_of("s3_bucket", "arn:aws:s3:::lake/raw").to_string(),
            "output port `p1` (s3_bucket): custom field `aws-x-arn` holds `arn:aws:s3:::lake/raw`, which names a folder, \
             but an s3_bucket port grants a whole bucket (use output-port-type s3_folder for a folder)"
        );
        assert_eq!(
            error_of("s3_folder", "arn:aws:s3:::lake").to_string(),
            "output port `p1` (s3_folder): custom field `aws-x-arn` holds `arn:aws:s3:::lake`, which names a whole bucket, \
             but an s3_folder port grants one folder (use output-port-type s3_bucket for a whole bucket)"
        );
        assert!(matches!(
            resolve(
                json!({"id": "p", "server": {"location": "s3://lake/raw"}, "custom": {"output-port-type": "s3_bucket"}})
            ),
            Err(PolicyError::InvalidS3Location { .. })
        ));
        for (port_type, arn) in [
            ("s3_folder", "arn:aws:s3:::lake/a/../b".to_owned()),
            ("s3_folder", "arn:aws:s3:::lake//b".to_owned()),
            ("s3_folder", "arn:aws:s3:::lake/".to_owned()),
            ("s3_folder", "arn:aws:s3:::Lake/b".to_owned()),
            ("s3_bucket", "arn:aws:s3:::la".to_owned()),
            (
                "s3_bucket",
                format!("arn:aws:s3:eu-west-1:{ACCOUNT}:accesspoint/ap"),
            ),
            (
                "kinesis_stream",
                format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/s/consumer/c:1"),
            ),
            (
                "msk_topic",
                format!("arn:aws:kafka:eu-west-1:{ACCOUNT}:topic/c/u"),
            ),
            (
                "glue_table",
                format!("arn:aws:glue:eu-west-1:{ACCOUNT}:connection/c"),
            ),
            (
                "glue_table",
                format!("arn:aws:athena:eu-west-1:{ACCOUNT}:datacatalog/c"),
            ),
            (
                "s3_bucket",
                format!("arn:aws:kms:eu-west-1:{ACCOUNT}:alias/data"),
            ),
        ] {
            assert!(
                matches!(
                    error_of(port_type, &arn),
                    PolicyError::UnexpectedResource { .. }
                ),
                "{port_type} {arn}"
            );
        }
    }

    #[test]
    fn rejects_structurally_broken_arns() {
        for arn in [
            "lake".to_owned(),
            "arn:aws:s3".to_owned(),
            "arn:aws:s3:::".to_owned(),
            "arn:aws:kinesis::111122223333:stream/s".to_owned(),
            "arn:aws:kinesis:eu-west-1::stream/s".to_owned(),
            "arn:aws:kinesis:eu-west-1:1111:stream/s".to_owned(),
        ] {
            assert!(
                matches!(
                    error_of("kinesis_stream", &arn),
                    PolicyError::InvalidArn { .. }
                ),
                "{arn}"
            );
        }
    }

    #[test]
    fn rejects_arns_of_another_partition() {
        assert_eq!(
            error_of("s3_bucket", "arn:aws-cn:s3:::lake"),
            PolicyError::PartitionMismatch {
                port: "p1".into(),
                field: "aws-x-arn".into(),
                arn: "arn:aws-cn:s3:::lake".into(),
                found: "aws-cn".into(),
                expected: "aws".into()
            }
        );
    }

    #[test]
    fn rejects_two_different_resources_of_one_kind() {
        assert_eq!(
            failure(port(json!({
                "output-port-type": "s3_bucket",
                "aws-s3-bucket-arn": "arn:aws:s3:::lake",
                "aws-s3-other-arn": "arn:aws:s3:::pond"
            }))),
            PolicyError::DuplicateResource {
                port: "p1".into(),
                port_type: PortType::S3Bucket,
                what: "an S3 location",
                first: "aws-s3-bucket-arn".into(),
                second: "aws-s3-other-arn".into()
            }
        );
        assert!(matches!(
            failure(port(json!({
                "output-port-type": "s3_bucket",
                "aws-s3-bucket-arn": "arn:aws:s3:::lake",
                "aws-kms-key-arn": format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/a"),
                "aws-kms-key-2-arn": format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/b")
            }))),
            PolicyError::DuplicateResource {
                what: "a KMS key",
                ..
            }
        ));
    }

    #[test]
    fn reports_missing_resources() {
        for (port_type, what) in [
            ("s3_bucket", NEEDS_BUCKET),
            ("s3_folder", NEEDS_FOLDER),
            ("glue_table", NEEDS_TABLE),
            ("kinesis_stream", NEEDS_STREAM),
            ("msk_topic", NEEDS_TOPIC),
        ] {
            let port_type = PortType::parse(port_type).unwrap();
            assert_eq!(
                failure(port(json!({"output-port-type": port_type.as_str()}))),
                PolicyError::MissingResource {
                    port: "p1".into(),
                    port_type,
                    what
                }
            );
        }
        let table = format!("arn:aws:glue:eu-west-1:{ACCOUNT}:table/db/t");
        let workgroup = format!("arn:aws:athena:eu-west-1:{ACCOUNT}:workgroup/wg");
        assert!(matches!(
            failure(port(
                json!({"output-port-type": "glue_table", "aws-glue-table-arn": table})
            )),
            PolicyError::MissingResource {
                what: NEEDS_WORKGROUP,
                ..
            }
        ));
        assert!(matches!(
            failure(port(
                json!({"output-port-type": "glue_table", "aws-glue-table-arn": table, "aws-athena-workgroup-arn": workgroup})
            )),
            PolicyError::MissingResource {
                what: NEEDS_TABLE_LOCATION,
                ..
            }
        ));
        assert_eq!(
            failure(port(json!({"output-port-type": "kinesis_stream"}))).to_string(),
            "output port `p1` (kinesis_stream) needs a Kinesis stream ARN in a custom field such as \
             `aws-kinesis-stream-arn` (arn:aws:kinesis:region:account:stream/name)"
        );
    }

    #[test]
    fn checks_resources_against_each_other() {
        let glue = |extra: Value| {
            let mut custom = json!({
                "output-port-type": "glue_table",
                "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-west-1:{ACCOUNT}:workgroup/wg"),
                "aws-glue-table-arn": format!("arn:aws:glue:eu-west-1:{ACCOUNT}:table/db/t"),
                "aws-s3-folder-arn": "arn:aws:s3:::lake/t"
            });
            custom
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            resolve(port(custom))
        };
        assert_eq!(
            glue(json!({"aws-glue-database-arn": format!("arn:aws:glue:eu-west-1:{ACCOUNT}:database/other")}))
                .unwrap_err()
                .to_string(),
            "output port `p1` (glue_table): custom field `aws-glue-database-arn` holds \
             `arn:aws:glue:eu-west-1:111122223333:database/other`, which names database `other`, but the Glue table is in database `db`"
        );
        assert!(matches!(
            glue(
                json!({"aws-glue-catalog-arn": format!("arn:aws:glue:eu-west-1:444455556666:catalog")})
            ),
            Err(PolicyError::UnexpectedResource { .. })
        ));
        assert!(matches!(
            glue(
                json!({"aws-athena-workgroup-arn": format!("arn:aws:athena:us-east-1:{ACCOUNT}:workgroup/wg")})
            ),
            Err(PolicyError::InconsistentResources { .. })
        ));
        assert!(matches!(
            glue(
                json!({"aws-glue-table-2-arn": format!("arn:aws:glue:eu-west-1:{ACCOUNT}:table/db/u")})
            ),
            Err(PolicyError::DuplicateResource {
                what: "a Glue table",
                ..
            })
        ));
        assert!(
            glue(
                json!({"aws-glue-catalog-arn": format!("arn:aws:glue:eu-west-1:{ACCOUNT}:catalog")})
            )
            .is_ok()
        );

        assert!(matches!(
            failure(port(json!({
                "output-port-type": "kinesis_stream",
                "aws-kinesis-stream-arn": format!("arn:aws:kinesis:eu-west-1:{ACCOUNT}:stream/s"),
                "aws-kms-key-arn": format!("arn:aws:kms:eu-central-1:{ACCOUNT}:key/k")
            }))),
            PolicyError::InconsistentResources { .. }
        ));

        let topic = format!("arn:aws:kafka:eu-west-1:{ACCOUNT}:topic/events/u-1/orders");
        assert!(matches!(
            failure(port(
                json!({"output-port-type": "msk_topic", "aws-msk-topic-arn": topic,
                "aws-msk-cluster-arn": format!("arn:aws:kafka:eu-west-1:{ACCOUNT}:cluster/events/u-2")})
            )),
            PolicyError::UnexpectedResource { .. }
        ));
        assert!(matches!(
            failure(port(
                json!({"output-port-type": "msk_topic", "aws-msk-topic-arn": topic,
                "aws-msk-group-arn": format!("arn:aws:kafka:eu-west-1:{ACCOUNT}:group/other/u-1/g")})
            )),
            PolicyError::UnexpectedResource { .. }
        ));
        assert!(matches!(
            failure(port(
                json!({"output-port-type": "msk_topic", "aws-msk-topic-arn": topic,
                "aws-kms-key-arn": format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/k")})
            )),
            PolicyError::UnexpectedResource { .. }
        ));
    }

    #[test]
    fn rejects_malformed_ports() {
        assert!(matches!(
            resolve(json!([])),
            Err(PolicyError::InvalidPort { .. })
        ));
        assert!(matches!(
            resolve(json!("p")),
            Err(PolicyError::InvalidPort { .. })
        ));
        assert!(matches!(
            resolve(json!({"id": "p", "custom": []})),
            Err(PolicyError::InvalidPort { .. })
        ));
        assert_eq!(
            failure(port(json!({"output-port-type": 1}))),
            PolicyError::FieldNotAString {
                port: "p1".into(),
                field: "output-port-type".into()
            }
        );
        assert_eq!(
            failure(port(
                json!({"output-port-type": "s3_bucket", "aws-s3-bucket-arn": ["arn:aws:s3:::lake"]})
            )),
            PolicyError::FieldNotAString {
                port: "p1".into(),
                field: "aws-s3-bucket-arn".into()
            }
        );
        assert_eq!(
            failure(port(json!({"output-port-type": "S3_BUCKET"}))),
            PolicyError::UnknownPortType {
                port: "p1".into(),
                value: "S3_BUCKET".into()
            }
        );
        assert!(matches!(
            failure(json!({"custom": {"output-port-type": "redshift_table"}})),
            PolicyError::UnknownPortType { port, .. } if port == "(no id)"
        ));
    }

    #[test]
    fn port_types_round_trip() {
        for port_type in [
            PortType::S3Bucket,
            PortType::S3Folder,
            PortType::GlueTable,
            PortType::KinesisStream,
            PortType::MskTopic,
        ] {
            assert_eq!(PortType::parse(port_type.as_str()), Some(port_type));
            assert_eq!(port_type.to_string(), port_type.as_str());
        }
    }

    /// Arbitrary JSON, biased towards the shapes the resolver looks at.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "arn:aws(-cn)?:(s3|kms|glue|athena|kafka|kinesis|iam):(|eu-west-1):(|111122223333):[a-z/.*-]{0,20}".prop_map(Value::from),
            "s3://[a-z./*-]{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("type".to_owned()),
                        Just("server".to_owned()),
                        Just("location".to_owned()),
                        Just("custom".to_owned()),
                        Just("output-port-type".to_owned()),
                        "aws-[a-z]{0,6}-arn",
                        any::<String>(),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_ports(port in json_value()) {
            let _ = resolve(port).map(|access| access.policy().to_json());
        }

        #[test]
        fn never_panics_on_arbitrary_custom_fields(
            port_type in prop_oneof![Just("s3_bucket"), Just("s3_folder"), Just("glue_table"), Just("kinesis_stream"), Just("msk_topic")],
            values in prop::collection::vec(any::<String>(), 0..4),
        ) {
            let mut custom = serde_json::Map::new();
            custom.insert("output-port-type".into(), port_type.into());
            for (index, value) in values.into_iter().enumerate() {
                custom.insert(format!("aws-{index}-arn"), value.into());
            }
            let _ = resolve(json!({"id": "p", "custom": custom}));
        }

        #[test]
        fn granted_policies_contain_only_wildcards_the_catalogue_adds(
            bucket in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]",
            folder in "[a-zA-Z0-9=._-]{1,10}(/[a-zA-Z0-9=._-]{1,10}){0,3}",
        ) {
            prop_assume!(!folder.split('/').any(|s| s == "." || s == ".."));
            // The pattern also makes names S3 reserves (`xn--…`), which are refused, rightly.
            prop_assume!(crate::policy::s3_bucket::bucket_name_problem(&bucket).is_none());
            let access = resolve(json!({"id": "p", "type": "s3", "server": {"location": format!("s3://{bucket}/{folder}/")}}));
            let json = access.unwrap().policy().to_json();
            let expected = format!("arn:aws:s3:::{bucket}/{folder}/*");
            prop_assert_eq!(json.matches('*').count(), 2);
            prop_assert!(json.contains(&expected), "{}", json);
        }
    }
}
