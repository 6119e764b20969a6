//! IAM as the reconciler sees it: the consumer roles' inline policies, and the per-agreement
//! access roles of cross-account grants (ADR 003). `aws::iam` and `aws::access_roles` implement
//! it with the SDK.

use std::future::Future;

use super::ownership::Tags;

/// What the grant needs to know about a role: IAM's ARN and path (the path decides whether the
/// integration may touch it; a path in DMM is only a claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    pub arn: String,
    pub path: String,
    /// Whose role it is (`dmm-data-product`, `dmm-team`): IAM's tags, not DMM's word.
    pub tags: Tags,
}

/// An IAM call that failed.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// IAM refused the request itself (access denied, malformed document, limit exceeded,
    /// unmodifiable role): the same request will be refused again.
    #[error("IAM refused {action} on role `{role}`: {reason}")]
    Refused {
        action: &'static str,
        role: String,
        reason: String,
    },
    /// Throttling, service errors, timeouts, network.
    #[error("IAM {action} on role `{role}` failed: {reason}")]
    Unavailable {
        action: &'static str,
        role: String,
        reason: String,
    },
}

impl IamError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The role and inline-policy operations of one account.
pub trait RolePolicies {
    /// `None` when the role does not exist.
    fn role(&self, name: &str) -> impl Future<Output = Result<Option<RoleInfo>, IamError>> + Send;
    fn policy_names(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Vec<String>, IamError>> + Send;
    /// The document as IAM returns it (URL-encoded JSON), `None` when absent.
    fn policy(
        &self,
        role: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, IamError>> + Send;
    fn put_policy(
        &self,
        role: &str,
        name: &str,
        document: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
    /// Deleting a policy that is already gone succeeds.
    fn delete_policy(
        &self,
        role: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
}

/// Tag on every role the integration creates; a role without it is never adopted or deleted.
pub const MANAGED_BY_TAG: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "dmm-integration-aws";
/// Tag naming the agreement an access role belongs to.
pub const AGREEMENT_TAG: &str = "dmm-agreement-id";
/// The managed policy every access role has as its permissions boundary (ADR 017): only the
/// catalogue's read actions, whatever the role's own policy says. Terraform creates it in each
/// account under this name (`terraform/access_role_boundary.tf`, the managed-account module).
pub const ACCESS_ROLE_BOUNDARY_NAME: &str = "dmm-integration-access-role-boundary";

/// The boundary's ARN in `account`.
pub fn access_role_boundary_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:policy/{ACCESS_ROLE_BOUNDARY_NAME}")
}

/// An access role as IAM holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRoleInfo {
    pub name: String,
    pub arn: String,
    pub path: String,
    /// The trust policy as IAM returns it (URL-encoded JSON).
    pub trust_policy: String,
    pub tags: Vec<(String, String)>,
    /// The permissions boundary's policy ARN, if any.
    pub permissions_boundary: Option<String>,
}

impl AccessRoleInfo {
    /// Whether the integration created the role.
    pub fn is_managed(&self) -> bool {
        self.tags
            .iter()
            .any(|(k, v)| k == MANAGED_BY_TAG && v == MANAGED_BY_VALUE)
    }

    /// Whether the integration created the role for `agreement_id`: it is managed, and its
    /// agreement tag (set at creation) names exactly this agreement.
    pub fn belongs_to(&self, agreement_id: &str) -> bool {
        self.is_managed()
            && self
                .tags
                .iter()
                .any(|(k, v)| k == AGREEMENT_TAG && v == agreement_id)
            && self
                .tags
                .iter()
                .all(|(k, v)| k != AGREEMENT_TAG || v == agreement_id)
    }
}

/// Role-level operations for access roles (inline policies go through
/// [`RolePolicies`](super::iam::RolePolicies)).
pub trait AccessRoles {
    /// `None` when the role does not exist.
    fn access_role(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<AccessRoleInfo>, IamError>> + Send;
    /// Creates the role with its trust policy, tags and permissions boundary; returns its ARN.
    fn create_access_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        tags: &[(&str, &str)],
        boundary: &str,
    ) -> impl Future<Output = Result<String, IamError>> + Send;
    /// Sets the role's permissions boundary (access roles made before boundaries existed).
    fn put_boundary(
        &self,
        name: &str,
        boundary: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
    fn update_trust_policy(
        &self,
        name: &str,
        trust_policy: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
    /// Deleting a role that is already gone succeeds. Its inline policies must be gone.
    fn delete_access_role(&self, name: &str) -> impl Future<Output = Result<(), IamError>> + Send;
}
