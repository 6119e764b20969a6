//! Making IAM and the grant ledger match the desired state, with as few writes as possible.
//!
//! Order matters for "nothing lost, nothing over-granted": the ledger learns about a grant
//! before IAM gets it (so a crash in between can still be revoked), and forgets it only after IAM
//! lost it. Every write is preceded by a read, so a replay makes no write at all.
//!
//! The ledger is read from S3 and is only as trustworthy as the bucket, so revoking from it obeys
//! the same rules as granting: only the agreement's own policy is ever deleted, and only from a
//! role the [`RoleGuard`] allows. A grant that cannot be revoked stays in the ledger and is
//! reported ([`Permanent::RevokeRefused`]) rather than forgotten.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    iam: &'a I,
    ledger: &'a L,
    guard: &'a RoleGuard,
    /// IAM writes made through this converger, whatever the outcome.
    writes: AtomicUsize,
}

/// What [`Converger::remove`] did with a set of ledger records.
struct Removal {
    /// Records that still describe a grant in IAM (the guard refused to touch them).
    kept: BTreeSet<GrantRecord>,
    /// Why the first kept record could not be revoked.
    refused: Option<Permanent>,
}

impl<'a, I, L> Converger<'a, I, L> {
    pub fn new(iam: &'a I, ledger: &'a L, guard: &'a RoleGuard) -> Self {
        Self {
            iam,
            ledger,
            guard,
            writes: AtomicUsize::new(0),
        }
    }

    /// IAM writes made so far (puts and deletes), including those of a call that then failed.
    pub fn iam_writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
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
    ///
    /// A record is acted on only when it names the agreement's own policy on a role the guard
    /// allows. Records naming anything else were not written by the integration for this
    /// agreement and are dropped without a write; records on a role the guard refuses are kept,
    /// because the grant is still there, and reported.
    async fn remove(
        &self,
        agreement_id: &str,
        records: &BTreeSet<GrantRecord>,
    ) -> Result<Removal, ReconcileError> {
        let own_policy = policy_name(agreement_id)?;
        let mut removal = Removal {
            kept: BTreeSet::new(),
            refused: None,
        };
        for record in records {
            let name = match RoleName::parse(&record.role_name) {
                Ok(name) if record.policy_name == own_policy => name,
                _ => {
                    tracing::warn!(
                        agreement_id,
                        role = record.role_name,
                        policy = record.policy_name,
                        "grant ledger names a policy that is not the agreement's own; ignored"
                    );
                    continue;
                }
            };
            // IAM's path decides, not the ARN stored in the ledger.
            let Some(role) = self.iam.role(name.as_str()).await? else {
                // The role is gone, and its inline policies with it.
                continue;
            };
            if let Err(source) = self.guard.check(&name, &role.path) {
                removal.kept.insert(record.clone());
                removal.refused.get_or_insert(Permanent::RevokeRefused {
                    role: record.role_name.clone(),
                    policy: record.policy_name.clone(),
                    source,
                });
                continue;
            }
            if self
                .iam
                .policy(&role.name, &record.policy_name)
                .await?
                .is_some()
            {
                self.iam
                    .delete_policy(&role.name, &record.policy_name)
                    .await?;
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(removal)
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
        let before = self.iam_writes();
        if !in_place {
            self.iam
                .put_policy(&role.name, &plan.policy_name, &plan.document.to_json())
                .await?;
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        if !stale.is_empty() {
            let removal = self.remove(agreement_id, &stale).await?;
            let mut remaining = removal.kept;
            remaining.insert(wanted);
            self.record(agreement_id, &remaining).await?;
            if let Some(refused) = removal.refused {
                return Err(refused.into());
            }
        }
        Ok(Granted {
            role_arn: role.arn,
            policy_name: plan.policy_name.clone(),
            iam_writes: self.iam_writes() - before,
        })
    }

    /// Removes every grant of the agreement: those in the ledger, and the policy on the role the
    /// agreement names today (`consumer`), which covers grants made before the ledger existed.
    /// Returns the number of IAM writes. A grant the guard does not allow the integration to
    /// remove stays in the ledger and fails the call with [`Permanent::RevokeRefused`], after
    /// everything else was revoked.
    pub async fn revoke(
        &self,
        agreement_id: &str,
        consumer: Option<&ConsumerRole>,
    ) -> Result<usize, ReconcileError> {
        let before = self.iam_writes();
        let entry = self.ledger.get(agreement_id).await?;
        let recorded = Self::recorded(&entry);
        let mut targets = recorded.clone();
        if let Some(role) = consumer {
            let name = policy_name(agreement_id)?;
            let role_name = role.name().as_str();
            let known = targets
                .iter()
                .any(|r| r.role_name.eq_ignore_ascii_case(role_name) && r.policy_name == name);
            if !known && self.iam.policy(role_name, &name).await?.is_some() {
                if let Some(info) = self.iam.role(role_name).await? {
                    targets.insert(GrantRecord {
                        role_name: info.name,
                        role_arn: info.arn,
                        policy_name: name,
                    });
                }
            }
        }
        let removal = self.remove(agreement_id, &targets).await?;
        if removal.kept.is_empty() {
            if entry.is_some() {
                self.ledger.delete(agreement_id).await?;
            }
        } else if removal.kept != recorded {
            self.record(agreement_id, &removal.kept).await?;
        }
        match removal.refused {
            Some(refused) => Err(refused.into()),
            None => Ok(self.iam_writes() - before),
        }
    }
}
