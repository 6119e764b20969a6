//! The packed layout's customer managed policies (ADR 023): read, created, versioned, attached,
//! detached and deleted in IAM.

use super::iam::{IamRoles, classify, is_no_such_entity};
use crate::reconcile::iam::IamError;
use crate::reconcile::packed::{ManagedPolicies, ManagedPolicy};

impl ManagedPolicies for IamRoles {
    async fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, IamError> {
        let policy = match self.client().get_policy().policy_arn(arn).send().await {
            Ok(output) => output.policy,
            Err(e) if is_no_such_entity(&e) => return Ok(None),
            Err(e) => return Err(classify("GetPolicy", arn, &e)),
        };
        let Some(policy) = policy else {
            return Ok(None);
        };
        let default_version = policy.default_version_id().unwrap_or_default().to_owned();
        let document = self
            .client()
            .get_policy_version()
            .policy_arn(arn)
            .version_id(&default_version)
            .send()
            .await
            .map_err(|e| classify("GetPolicyVersion", arn, &e))?
            .policy_version
            .and_then(|v| v.document)
            .unwrap_or_default();
        let mut versions = self
            .client()
            .list_policy_versions()
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| classify("ListPolicyVersions", arn, &e))?
            .versions
            .unwrap_or_default();
        versions.retain(|v| !v.is_default_version());
        versions.sort_by_key(|v| v.create_date().copied());
        Ok(Some(ManagedPolicy {
            arn: arn.to_owned(),
            document,
            other_versions: versions
                .iter()
                .filter_map(|v| v.version_id().map(str::to_owned))
                .collect(),
            tags: policy
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        }))
    }

    async fn create_managed_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        tags: &[(&str, &str)],
    ) -> Result<String, IamError> {
        let tags = tags
            .iter()
            .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(*k).value(*v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IamError::Refused {
                action: "CreatePolicy",
                role: name.to_owned(),
                reason: e.to_string(),
            })?;
        let output = self
            .client()
            .create_policy()
            .policy_name(name)
            .path(path)
            .policy_document(document)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify("CreatePolicy", name, &e))?;
        Ok(output.policy.and_then(|p| p.arn).unwrap_or_default())
    }

    async fn create_policy_version(&self, arn: &str, document: &str) -> Result<(), IamError> {
        self.client()
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(document)
            .set_as_default(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("CreatePolicyVersion", arn, &e))
    }

    async fn delete_policy_version(&self, arn: &str, version: &str) -> Result<(), IamError> {
        match self
            .client()
            .delete_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_entity(&e) => Ok(()),
            Err(e) => Err(classify("DeletePolicyVersion", arn, &e)),
        }
    }

    async fn delete_managed_policy(&self, arn: &str) -> Result<(), IamError> {
        match self.client().delete_policy().policy_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_entity(&e) => Ok(()),
            Err(e) => Err(classify("DeletePolicy", arn, &e)),
        }
    }

    async fn attached_policies(&self, role: &str) -> Result<Vec<String>, IamError> {
        let mut arns = Vec::new();
        let mut marker = None;
        loop {
            let output = match self
                .client()
                .list_attached_role_policies()
                .role_name(role)
                .set_marker(marker)
                .send()
                .await
            {
                Ok(output) => output,
                // A deleted role has nothing attached.
                Err(e) if is_no_such_entity(&e) => return Ok(Vec::new()),
                Err(e) => return Err(classify("ListAttachedRolePolicies", role, &e)),
            };
            arns.extend(
                output
                    .attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn().map(str::to_owned)),
            );
            marker = output.marker().map(str::to_owned);
            if !output.is_truncated() || marker.is_none() {
                return Ok(arns);
            }
        }
    }

    async fn attach_policy(&self, role: &str, arn: &str) -> Result<(), IamError> {
        self.client()
            .attach_role_policy()
            .role_name(role)
            .policy_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("AttachRolePolicy", role, &e))
    }

    async fn detach_policy(&self, role: &str, arn: &str) -> Result<(), IamError> {
        match self
            .client()
            .detach_role_policy()
            .role_name(role)
            .policy_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_entity(&e) => Ok(()),
            Err(e) => Err(classify("DetachRolePolicy", role, &e)),
        }
    }
}
