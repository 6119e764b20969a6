//! What both grant paths (same account and across accounts) check on a role before anything is
//! written to it, and the one comparison that decides whether a write is needed at all.

use super::iam::{RoleInfo, RolePolicies};
use super::ownership::Finding;
use super::plan::GrantPlan;
use super::{Permanent, ReconcileError};
use crate::policy::{
    PolicyDocument, RoleGuard, RoleName, check_inline_policy_budget, decode_iam_document,
    policy_size,
};

/// The role, if the integration may write to it.
pub(super) async fn allowed_role<I: RolePolicies>(
    iam: &I,
    guard: &RoleGuard,
    name: &RoleName,
) -> Result<RoleInfo, ReconcileError> {
    let role = iam
        .role(name.as_str())
        .await?
        .ok_or_else(|| Permanent::RoleNotFound(name.to_string()))?;
    guard.check(name, &role.path)?;
    Ok(role)
}

/// Checks that the consumer role is the consumer's (its IAM tags) before anything is written to
/// it, and returns the plan's findings with the role's, for `audit` mode.
pub(super) fn owned_role(
    plan: &GrantPlan,
    role: &RoleInfo,
) -> Result<Vec<Finding>, Box<Permanent>> {
    let mut findings = plan.findings.clone();
    findings.extend(plan.role_ownership.check(&role.name, &role.tags)?);
    Ok(findings)
}

/// Whether the role's policy `name` is structurally `wanted` (an unreadable document is not).
pub(super) async fn has_policy<I: RolePolicies>(
    iam: &I,
    role: &str,
    name: &str,
    wanted: &PolicyDocument,
) -> Result<bool, ReconcileError> {
    let current = iam.policy(role, name).await?;
    Ok(current
        .and_then(|raw| PolicyDocument::from_iam(&raw).ok())
        .is_some_and(|doc| doc == *wanted))
}

/// Refuses a policy that would push the role's inline policies past IAM's limit, before
/// anything is written.
pub(super) async fn check_budget<I: RolePolicies>(
    iam: &I,
    role: &str,
    policy_name: &str,
    document: &PolicyDocument,
) -> Result<(), ReconcileError> {
    let sizes = other_inline_sizes(iam, role, policy_name).await?;
    check_inline_policy_budget(role, policy_name, document, sizes)?;
    Ok(())
}

/// The sizes, as IAM counts them against the role's inline budget, of the role's inline
/// policies other than `except` (the one about to be written, which IAM replaces).
pub(super) async fn other_inline_sizes<I: RolePolicies>(
    iam: &I,
    role: &str,
    except: &str,
) -> Result<Vec<usize>, ReconcileError> {
    let mut sizes = Vec::new();
    for name in iam.policy_names(role).await? {
        if name == except {
            continue;
        }
        if let Some(raw) = iam.policy(role, &name).await? {
            let decoded = decode_iam_document(&raw).map(|d| policy_size(&d));
            sizes.push(decoded.unwrap_or_else(|_| policy_size(&raw)));
        }
    }
    Ok(sizes)
}
