//! Making IAM and the grant ledger match the desired state, with as few writes as possible.
//!
//! Order matters for "nothing lost, nothing over-granted": the ledger learns about a grant
//! before IAM gets it (so a crash in between can still be revoked), and forgets it only after IAM
//! lost it. Every write is preceded by a read, so a replay makes no write at all.

use std::collections::BTreeSet;

use super::plan::GrantPlan;
use super::{Permanent, ReconcileError};
use crate::aws::iam::{RoleInfo, RolePolicies};
use crate::aws::ledger::{GrantLedger, GrantRecord, LedgerEntry};
use crate::policy::{
    ConsumerRole, PolicyDocument, RoleGuard, RoleName, check_inline_policy_budget,
    decode_iam_document, policy_name, policy_size,
};

/// A grant in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub role_arn: String,
    pub policy_name: String,
    /// IAM writes made (0 when the grant was already in place).
    pub iam_writes: usize,
}

/// IAM and the ledger of the integration's own account.
pub struct Converger<'a, I, L> {
    pub iam: &'a I,
    pub ledger: &'a L,
    pub guard: &'a RoleGuard,
}

impl<I: RolePolicies, L: GrantLedger> Converger<'_, I, L> {
    /// The role, if the integration may write to it.
    async fn allowed_role(&self, name: &RoleName) -> Result<RoleInfo, ReconcileError> {
        let role = self
            .iam
            .role(name.as_str())
            .await?
            .ok_or_else(|| Permanent::RoleNotFound(name.to_string()))?;
        self.guard.check(name, &role.path)?;
        Ok(role)
    }

    /// Whether the role's policy `name` is structurally `wanted` (an unreadable document is not).
    async fn has_policy(
        &self,
        role: &str,
        name: &str,
        wanted: &PolicyDocument,
    ) -> Result<bool, ReconcileError> {
        let current = self.iam.policy(role, name).await?;
        Ok(current
            .and_then(|raw| PolicyDocument::from_iam(&raw).ok())
            .is_some_and(|doc| doc == *wanted))
    }

    /// Refuses a policy that would push the role's inline policies past IAM's limit, before
    /// anything is written.
    async fn check_budget(&self, role: &str, plan: &GrantPlan) -> Result<(), ReconcileError> {
        let mut sizes = Vec::new();
        for name in self.iam.policy_names(role).await? {
            if name == plan.policy_name {
                continue;
            }
            if let Some(raw) = self.iam.policy(role, &name).await? {
                let decoded = decode_iam_document(&raw).map(|d| policy_size(&d));
                sizes.push(decoded.unwrap_or_else(|_| policy_size(&raw)));
            }
        }
        check_inline_policy_budget(role, &plan.policy_name, &plan.document, sizes)?;
        Ok(())
    }

    /// Deletes the records' policies (reading first, so an absent policy costs no write).
    async fn remove(&self, records: &BTreeSet<GrantRecord>) -> Result<usize, ReconcileError> {
        let mut writes = 0;
        for record in records {
            if self
                .iam
                .policy(&record.role_name, &record.policy_name)
                .await?
                .is_some()
            {
                self.iam
                    .delete_policy(&record.role_name, &record.policy_name)
                    .await?;
                writes += 1;
            }
        }
        Ok(writes)
    }

    fn recorded(entry: &Option<LedgerEntry>) -> BTreeSet<GrantRecord> {
        entry
            .iter()
            .flat_map(|e| e.grants.iter().cloned())
            .collect()
    }

    async fn record(
        &self,
        agreement_id: &str,
        grants: &BTreeSet<GrantRecord>,
    ) -> Result<(), ReconcileError> {
        self.ledger
            .put(&LedgerEntry {
                agreement_id: agreement_id.to_owned(),
                grants: grants.iter().cloned().collect(),
            })
            .await?;
        Ok(())
    }

    /// Puts exactly `plan` in place and removes whatever else the ledger knows for the agreement
    /// (a previous consumer role, a renamed policy).
    pub async fn grant(
        &self,
        agreement_id: &str,
        plan: &GrantPlan,
    ) -> Result<Granted, ReconcileError> {
        let role = self.allowed_role(plan.role.name()).await?;
        let in_place = self
            .has_policy(&role.name, &plan.policy_name, &plan.document)
            .await?;
        if !in_place {
            self.check_budget(&role.name, plan).await?;
        }
        let wanted = GrantRecord {
            role_name: role.name.clone(),
            role_arn: role.arn.clone(),
            policy_name: plan.policy_name.clone(),
        };
        let entry = self.ledger.get(agreement_id).await?;
        let known = Self::recorded(&entry);
        let stale: BTreeSet<GrantRecord> =
            known.iter().filter(|r| **r != wanted).cloned().collect();
        if !known.contains(&wanted) {
            let mut all = known.clone();
            all.insert(wanted.clone());
            self.record(agreement_id, &all).await?;
        }
        let mut iam_writes = 0;
        if !in_place {
            self.iam
                .put_policy(&role.name, &plan.policy_name, &plan.document.to_json())
                .await?;
            iam_writes += 1;
        }
        if !stale.is_empty() {
            iam_writes += self.remove(&stale).await?;
            self.record(agreement_id, &BTreeSet::from([wanted])).await?;
        }
        Ok(Granted {
            role_arn: role.arn,
            policy_name: plan.policy_name.clone(),
            iam_writes,
        })
    }

    /// Removes every grant of the agreement: those in the ledger, and the policy on the role the
    /// agreement names today (`consumer`), which covers grants made before the ledger existed.
    /// Returns the number of IAM writes.
    pub async fn revoke(
        &self,
        agreement_id: &str,
        consumer: Option<&ConsumerRole>,
    ) -> Result<usize, ReconcileError> {
        let entry = self.ledger.get(agreement_id).await?;
        let mut targets = Self::recorded(&entry);
        if let Some(role) = consumer {
            let name = policy_name(agreement_id)?;
            let role_name = role.name().as_str();
            let known = targets
                .iter()
                .any(|r| r.role_name == role_name && r.policy_name == name);
            // Only the policy's own name on a role the guard allows: revocation must not become
            // a way to delete policies from protected roles.
            if !known && self.iam.policy(role_name, &name).await?.is_some() {
                if let Ok(info) = self.allowed_role(role.name()).await {
                    targets.insert(GrantRecord {
                        role_name: info.name,
                        role_arn: info.arn,
                        policy_name: name,
                    });
                }
            }
        }
        let iam_writes = self.remove(&targets).await?;
        if entry.is_some() {
            self.ledger.delete(agreement_id).await?;
        }
        Ok(iam_writes)
    }
}
