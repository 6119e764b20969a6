//! The customer managed policies attached to a role, read back with their documents, for the
//! tests, the demo and the benchmark of the packed layout (ADR 023).

use aws_sdk_iam::Client;
use serde_json::Value;

use crate::MotoError;

/// Every managed policy attached to `role`: its name and its default version's document, sorted
/// by name.
pub async fn attached(iam: &Client, role: &str) -> Result<Vec<(String, Value)>, MotoError> {
    let failed = |what: &str, e: &dyn std::fmt::Debug| MotoError::Setup(format!("{what}: {e:?}"));
    let listed = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| failed(&format!("list the policies attached to {role}"), &e))?;
    let mut policies = Vec::new();
    for arn in listed
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
    {
        let policy = iam
            .get_policy()
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| failed(&format!("get policy {arn}"), &e))?
            .policy
            .ok_or_else(|| MotoError::Setup(format!("no policy in the answer for {arn}")))?;
        let version = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(policy.default_version_id().unwrap_or("v1"))
            .send()
            .await
            .map_err(|e| failed(&format!("get the default version of {arn}"), &e))?;
        let raw = version
            .policy_version()
            .and_then(|v| v.document())
            .unwrap_or_default();
        // IAM returns the document URL-encoded; plain JSON is taken as it is.
        let json = if raw.trim_start().starts_with('{') {
            raw.into()
        } else {
            percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
        };
        let document = serde_json::from_str(&json)
            .map_err(|e| MotoError::Setup(format!("the document of {arn}: {e}")))?;
        policies.push((policy.policy_name().unwrap_or(arn).to_owned(), document));
    }
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(policies)
}
