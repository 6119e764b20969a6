//! The per-agreement access roles of cross-account grants (ADR 003): created, updated and
//! deleted in the provider account.

use std::future::Future;

use super::iam::{IamError, IamRoles, classify, is_no_such_entity};

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

impl AccessRoles for IamRoles {
    async fn access_role(&self, name: &str) -> Result<Option<AccessRoleInfo>, IamError> {
        match self.client().get_role().role_name(name).send().await {
            Ok(output) => Ok(output.role().map(|role| AccessRoleInfo {
                name: role.role_name().to_owned(),
                arn: role.arn().to_owned(),
                path: role.path().to_owned(),
                trust_policy: role
                    .assume_role_policy_document()
                    .unwrap_or_default()
                    .to_owned(),
                tags: role
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
                permissions_boundary: role
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_owned),
            })),
            Err(e) if is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(classify("GetRole", name, &e)),
        }
    }

    async fn create_access_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        tags: &[(&str, &str)],
        boundary: &str,
    ) -> Result<String, IamError> {
        let tags = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_iam::types::Tag::builder()
                    .key(*k)
                    .value(*v)
                    .build()
                    .map_err(|e| IamError::Refused {
                        action: "CreateRole",
                        role: name.to_owned(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client()
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(trust_policy)
            .set_tags(Some(tags))
            .permissions_boundary(boundary)
            .send()
            .await
            .map_err(|e| classify("CreateRole", name, &e))?;
        Ok(output
            .role()
            .map(|r| r.arn().to_owned())
            .unwrap_or_default())
    }

    async fn put_boundary(&self, name: &str, boundary: &str) -> Result<(), IamError> {
        self.client()
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(boundary)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutRolePermissionsBoundary", name, &e))
    }

    async fn update_trust_policy(&self, name: &str, trust_policy: &str) -> Result<(), IamError> {
        self.client()
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(trust_policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateAssumeRolePolicy", name, &e))
    }

    async fn delete_access_role(&self, name: &str) -> Result<(), IamError> {
        match self.client().delete_role().role_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_entity(&e) => Ok(()),
            Err(e) => Err(classify("DeleteRole", name, &e)),
        }
    }
}
