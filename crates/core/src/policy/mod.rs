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

mod arn;
mod document;
mod error;
mod glue_table;
mod kinesis_stream;
mod kms;
mod msk_topic;
mod name;
mod port;
mod role;
mod s3_bucket;
mod s3_folder;

pub use arn::{Arn, ArnError, MAX_ARN_LEN, Partition};
pub use document::{
    Conditions, Effect, POLICY_VERSION, PolicyDocument, ROLE_INLINE_POLICY_LIMIT, Statement,
    check_inline_policy_budget, decode_iam_document, policy_size,
};
pub use error::PolicyError;
pub use glue_table::{AthenaWorkgroup, GlueTable, GlueTableRef};
pub use kinesis_stream::KinesisStream;
pub use kms::KmsKey;
pub use msk_topic::{MskCluster, MskTopic};
pub use name::{
    ACCESS_ROLE_NAME_PREFIX, MAPPED_ACCESS_ROLE_NAME_PREFIX, MAPPED_POLICY_NAME_PREFIX,
    MAX_POLICY_NAME_LEN, MAX_ROLE_NAME_LEN, POLICY_NAME_PREFIX, access_role_name,
    is_access_role_name, is_policy_name, policy_name,
};
pub use port::{OUTPUT_PORT_TYPE_FIELD, PortAccess, PortResource, PortType, resolve_port};
pub use role::{
    ConsumerRole, DEFAULT_ROLE_NAME_PATTERN, DEFAULT_ROLE_PATH_PREFIX, ROLE_ARN_FIELD,
    ROLE_NAME_FIELD, RoleArn, RoleGuard, RoleName,
};
pub use s3_bucket::S3Bucket;
pub use s3_folder::{S3Folder, S3Location};

/// What the catalogue needs to know about the integration itself: the partition it runs in,
/// which every ARN in a grant must share (IAM accepts a policy naming another partition's
/// resources, but it grants nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    partition: Partition,
}

impl Context {
    pub fn new(partition: Partition) -> Self {
        Context { partition }
    }

    /// For an integration deployed in `region` (the Lambda's `AWS_REGION`); ARNs built from an
    /// `s3://` location get this region's partition.
    pub fn for_region(region: &str) -> Result<Self, PolicyError> {
        Partition::from_region(region)
            .map(Context::new)
            .map_err(|reason| PolicyError::InvalidRegion {
                region: error::shown(region),
                reason,
            })
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }
}
