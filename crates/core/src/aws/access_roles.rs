//! The per-agreement access roles of cross-account grants (ADR 003): created, updated and
//! deleted in the provider account.

use super::iam::{IamRoles, classify, is_no_such_entity};
use crate::reconcile::iam::{AccessRoleInfo, AccessRoles, IamError};

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
