//! The policy catalogue: from DMM's description of an output port and a consumer to the IAM
//! policy that grants read access, and nothing more.
//!
//! Pure domain logic, no I/O: everything here is decided from DMM documents and the
//! integration's own configuration, so every outcome is unit-testable and every error is
//! permanent ([`PolicyError`]). The reconciler does the AWS calls around it:
//!
//! 1. [`resolve_port`] turns the provider's output port into a [`PortAccess`] (typed, validated
//!    resources) and [`PortAccess::policy`] into a [`PolicyDocument`];
//! 2. [`ConsumerRole::from_custom`] reads the consumer's role, [`RoleGuard::check`] decides
//!    whether the integration may write to it;
//! 3. [`policy_name`] (and [`access_role_name`] across accounts) names what gets written;
//! 4. [`PolicyDocument::from_iam`] and structural equality decide whether a write is needed,
//!    [`check_inline_policy_budget`] whether it fits.

mod account;
mod arn;
pub mod contract;
mod document;
mod error;
mod glue_table;
mod kinesis_stream;
mod kms;
mod msk_topic;
mod name;
pub mod packing;
mod port;
mod port_type;
mod role;
mod s3_bucket;
mod s3_folder;

pub use account::AccountId;
pub use arn::{Arn, ArnError, MAX_ARN_LEN, Partition};
pub use document::{
    Conditions, Effect, POLICY_VERSION, PolicyDocument, ROLE_INLINE_POLICY_LIMIT, Statement,
    check_inline_policy_budget, decode_iam_document, policy_size,
};
pub use error::PolicyError;
pub use glue_table::{AthenaWorkgroup, GLUE_ACCESS_FIELD, GlueAccess, GlueTable, GlueTableRef};
pub use kinesis_stream::KinesisStream;
pub use kms::KmsKey;
pub use msk_topic::{MskCluster, MskTopic};
pub use name::{
    ACCESS_ROLE_NAME_PREFIX, MAPPED_ACCESS_ROLE_NAME_PREFIX, MAPPED_POLICY_NAME_PREFIX,
    MAX_POLICY_NAME_LEN, MAX_ROLE_NAME_LEN, POLICY_NAME_PREFIX, access_role_name,
    is_access_role_name, is_policy_name, policy_name,
};
pub use port::{OUTPUT_PORT_TYPE_FIELD, PortAccess, PortResource, resolve_port};
pub use port_type::PortType;
pub use role::{
    ConsumerRole, DEFAULT_ROLE_NAME_PATTERN, DEFAULT_ROLE_PATH_PREFIX, ROLE_ARN_FIELD,
    ROLE_NAME_FIELD, RoleArn, RoleGuard, RoleName,
};
pub use s3_bucket::S3Bucket;
pub use s3_folder::{S3Folder, S3Location};

/// Every action any grant of the catalogue contains: the permissions boundary of cross-account
/// access roles (Terraform's `access_role_boundary`) allows exactly these, so an access role can
/// never do more than read, whatever policy it is given.
pub const CATALOGUE_ACTIONS: &[&str] = &[
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:GetObject",
    "kms:Decrypt",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:GetWorkGroup",
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
    "glue:BatchGetPartition",
    "glue:GetDatabase",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:GetTable",
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamConsumer",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
    "kinesis:RegisterStreamConsumer",
    "kinesis:SubscribeToShard",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeCluster",
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:ReadData",
    "lakeformation:GetDataAccess",
];

/// What the catalogue needs to know about the integration itself: the partition it runs in,
/// which every ARN in a grant must share (IAM accepts a policy naming another partition's
/// resources, but it grants nothing), and how the deployment's Glue tables are governed unless a
/// port says otherwise (`glue_access_mode`, ADR 022).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    partition: Partition,
    glue_access: GlueAccess,
}

impl Context {
    pub fn new(partition: Partition) -> Self {
        Context {
            partition,
            glue_access: GlueAccess::Iam,
        }
    }

    pub fn with_glue_access(self, glue_access: GlueAccess) -> Self {
        Context {
            glue_access,
            ..self
        }
    }

    pub fn glue_access(&self) -> GlueAccess {
        self.glue_access
    }

    /// For an integration deployed in `region` (the Lambda's `AWS_REGION`); ARNs built from an
    /// `s3://` location get this region's partition.
    pub fn for_region(region: &str) -> Result<Self, PolicyError> {
        Partition::from_region(region)
            .map(Context::new)
            .map_err(|reason| PolicyError::InvalidRegion {
                region: crate::text::shown(region),
                reason,
            })
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "111122223333";

    fn ports() -> Vec<serde_json::Value> {
        vec![
            json!({"id": "bucket", "type": "s3", "server": {"location": "s3://lake"}}),
            json!({"id": "folder", "type": "s3", "server": {"location": "s3://lake/raw/orders/"},
                "custom": {"aws-kms-key-arn": format!("arn:aws:kms:eu-central-1:{ACCOUNT}:key/k")}}),
            json!({"id": "table", "custom": {
                "output-port-type": "glue_table",
                "aws-athena-workgroup-arn": format!("arn:aws:athena:eu-central-1:{ACCOUNT}:workgroup/primary"),
                "aws-glue-table-arn": format!("arn:aws:glue:eu-central-1:{ACCOUNT}:table/sales/orders"),
                "aws-s3-folder-arn": "arn:aws:s3:::lake/sales/orders"}}),
            json!({"id": "stream", "custom": {
                "output-port-type": "kinesis_stream",
                "aws-kinesis-stream-arn": format!("arn:aws:kinesis:eu-central-1:{ACCOUNT}:stream/orders")}}),
            json!({"id": "topic", "custom": {
                "output-port-type": "msk_topic",
                "aws-msk-topic-arn": format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:topic/events/u-1/orders"),
                "aws-msk-group-arn": format!("arn:aws:kafka:eu-central-1:{ACCOUNT}:group/events/u-1/reporting")}}),
        ]
    }

    /// What the reconciler does: build the policy, let IAM store it, read it back, compare.
    #[test]
    fn every_policy_survives_a_round_trip_through_iam() {
        let ctx = Context::for_region("eu-central-1").unwrap();
        for port in ports() {
            let written = resolve_port(&port, &ctx).unwrap().policy();
            let stored = percent_encoding::utf8_percent_encode(
                &written.to_json(),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            let read_back = PolicyDocument::from_iam(&stored).unwrap();
            assert_eq!(read_back, written, "{port}");
            assert_eq!(read_back.to_json(), written.to_json(), "{port}");
            assert_eq!(
                check_inline_policy_budget("consumer", "p", &written, []),
                Ok(())
            );
        }
    }

    #[test]
    fn policies_grant_read_actions_only() {
        let ctx = Context::new(Partition::Aws);
        let read_only = [
            "Get",
            "List",
            "Describe",
            "BatchGet",
            "Decrypt",
            "ReadData",
            "Connect",
            "SubscribeToShard",
        ];
        // Needed to run a query, consume with enhanced fan-out, or commit consumer offsets;
        // none of them changes the provider's data.
        let operational = [
            "athena:StartQueryExecution",
            "athena:StopQueryExecution",
            "kinesis:RegisterStreamConsumer",
            "kafka-cluster:AlterGroup",
        ];
        for port in ports() {
            for statement in resolve_port(&port, &ctx).unwrap().policy().statements() {
                assert_eq!(statement.effect(), Effect::Allow);
                for action in statement.actions() {
                    let verb = action.split_once(':').unwrap().1;
                    assert!(
                        operational.contains(&action.as_str())
                            || read_only.iter().any(|r| verb.starts_with(r)),
                        "{action}"
                    );
                }
                for resource in statement.resources() {
                    assert!(
                        !resource.contains('*') || resource.ends_with("/*"),
                        "{resource}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;
    use serde_json::json;

    /// One port of each type, each with every optional part, against the boundary's list.
    #[test]
    fn every_grant_stays_within_the_catalogue_actions() {
        let ctx = Context::new(Partition::Aws);
        let key = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let ports = [
            json!({"output-port-type": "s3_bucket", "aws-s3-bucket-arn": "arn:aws:s3:::bucket-one", "aws-kms-key-arn": key}),
            json!({"output-port-type": "s3_folder", "aws-s3-folder-arn": "arn:aws:s3:::bucket-one/f", "aws-kms-key-arn": key}),
            json!({"output-port-type": "glue_table",
                   "aws-glue-table-arn": "arn:aws:glue:eu-central-1:111122223333:table/d/t",
                   "aws-athena-workgroup-arn": "arn:aws:athena:eu-central-1:111122223333:workgroup/w",
                   "aws-s3-folder-arn": "arn:aws:s3:::bucket-one/t", "aws-kms-key-arn": key}),
            json!({"output-port-type": "glue_table", "aws-glue-access-mode": "lake-formation",
                   "aws-glue-table-arn": "arn:aws:glue:eu-central-1:111122223333:table/d/t",
                   "aws-athena-workgroup-arn": "arn:aws:athena:eu-central-1:111122223333:workgroup/w"}),
            json!({"output-port-type": "kinesis_stream",
                   "aws-kinesis-stream-arn": "arn:aws:kinesis:eu-central-1:111122223333:stream/s",
                   "aws-kms-key-arn": key}),
            json!({"output-port-type": "msk_topic",
                   "aws-msk-topic-arn": "arn:aws:kafka:eu-central-1:111122223333:topic/c/u-1/t",
                   "aws-msk-group-arn": "arn:aws:kafka:eu-central-1:111122223333:group/c/u-1/g"}),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for custom in ports {
            let access = resolve_port(&json!({"id": "p", "custom": custom}), &ctx).unwrap();
            let policy: serde_json::Value =
                serde_json::from_str(&access.policy().to_json()).unwrap();
            for statement in policy["Statement"].as_array().unwrap() {
                let actions = match &statement["Action"] {
                    serde_json::Value::Array(a) => a.clone(),
                    one => vec![one.clone()],
                };
                for action in actions {
                    let action = action.as_str().unwrap().to_owned();
                    assert!(CATALOGUE_ACTIONS.contains(&action.as_str()), "{action}");
                    seen.insert(action);
                }
            }
        }
        assert_eq!(
            seen.len(),
            CATALOGUE_ACTIONS.len(),
            "no action the catalogue never grants"
        );
    }
}
