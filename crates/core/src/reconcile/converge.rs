//! Making IAM and the grant ledger match the desired state, with as few writes as possible.
//!
//! Order matters for "nothing lost, nothing over-granted": the ledger learns about a grant
//! before IAM gets it (so a crash in between can still be revoked), and forgets it only after IAM
//! lost it. Every write is preceded by a read, so a replay makes no write at all.
//!
//! IAM is reached per account through [`AccountIam`]: the integration's own account directly,
//! managed accounts through their management role. Grants within one account are an inline
//! policy on the consumer role (as in the reference integration); grants across accounts are
//! handled by [`cross_account`](super::cross_account).

use std::collections::BTreeSet;
use std::future::Future;

use super::plan::GrantPlan;
use super::status::AccessRoleStatus;
use super::{Permanent, ReconcileError, cross_account};
use crate::aws::access_roles::AccessRoles;
use crate::aws::accounts::{AccountClients, AssumeRole};
use crate::aws::iam::{IamRoles, RoleInfo, RolePolicies};
use crate::aws::ledger::{GrantKind, GrantLedger, GrantRecord, LedgerEntry};
use crate::policy::{
    ConsumerRole, PolicyDocument, RoleGuard, RoleName, check_inline_policy_budget,
    decode_iam_document, policy_name, policy_size,
};

/// A grant in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub role_arn: String,
    pub policy_name: String,
    /// Cross-account grants: the access role and external id the consumer uses.
    pub access_role: Option<AccessRoleStatus>,
    /// IAM writes made (0 when the grant was already in place).
    pub iam_writes: usize,
}

/// The IAM of each account, for one agreement.
pub trait AccountIam: Sync {
    type Iam: RolePolicies + AccessRoles + Sync;
    /// The IAM of `account` (`None`: the integration's own account).
    fn iam(
        &self,
        account: Option<&str>,
    ) -> impl Future<Output = Result<Self::Iam, ReconcileError>> + Send;
    /// The integration's own account id, when known.
    fn own_account(&self) -> Option<&str>;
}

/// [`AccountIam`] of the deployed function: its own IAM client, and the managed accounts'
/// through STS with a session naming `agreement_id`.
pub struct AgreementIam<'a, S> {
    pub clients: &'a AccountClients<S>,
    pub own_account: Option<&'a str>,
    pub agreement_id: &'a str,
}

impl<S: AssumeRole> AccountIam for AgreementIam<'_, S> {
    type Iam = IamRoles;

    async fn iam(&self, account: Option<&str>) -> Result<IamRoles, ReconcileError> {
        Ok(self
            .clients
            .iam(account, self.own_account, self.agreement_id)
            .await?)
    }

    fn own_account(&self) -> Option<&str> {
        self.own_account
    }
}

/// IAM per account and the ledger.
pub struct Converger<'a, A, L> {
    pub iam: &'a A,
    pub ledger: &'a L,
    pub guard: &'a RoleGuard,
}

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
    let mut sizes = Vec::new();
    for name in iam.policy_names(role).await? {
        if name == policy_name {
            continue;
        }
        if let Some(raw) = iam.policy(role, &name).await? {
            let decoded = decode_iam_document(&raw).map(|d| policy_size(&d));
            sizes.push(decoded.unwrap_or_else(|_| policy_size(&raw)));
        }
    }
    check_inline_policy_budget(role, policy_name, document, sizes)?;
    Ok(())
}

impl<A: AccountIam, L: GrantLedger> Converger<'_, A, L> {
    /// Removes what the records stand for, consumer side first: the inline policies (on consumer
    /// roles), then the access roles (their inline policies, then the role). Reading first, so
    /// what is already gone costs no write.
    pub(super) async fn remove(
        &self,
        records: &BTreeSet<GrantRecord>,
    ) -> Result<usize, ReconcileError> {
        let mut writes = 0;
        let ordered = records
            .iter()
            .filter(|r| r.kind == GrantKind::InlinePolicy)
            .chain(records.iter().filter(|r| r.kind == GrantKind::AccessRole));
        for record in ordered {
            let iam = self.iam.iam(record.account.as_deref()).await?;
            writes += match record.kind {
                GrantKind::InlinePolicy => {
                    if iam
                        .policy(&record.role_name, &record.policy_name)
                        .await?
                        .is_some()
                    {
                        iam.delete_policy(&record.role_name, &record.policy_name)
                            .await?;
                        1
                    } else {
                        0
                    }
                }
                GrantKind::AccessRole => cross_account::delete_access_role(&iam, record).await?,
            };
        }
        Ok(writes)
    }

    pub(super) fn recorded(entry: &Option<LedgerEntry>) -> BTreeSet<GrantRecord> {
        entry
            .iter()
            .flat_map(|e| e.grants.iter().cloned())
            .collect()
    }

    pub(super) async fn record(
        &self,
        agreement_id: &str,
        grants: &BTreeSet<GrantRecord>,
        external_id: Option<&str>,
    ) -> Result<(), ReconcileError> {
        self.ledger
            .put(&LedgerEntry {
                agreement_id: agreement_id.to_owned(),
                grants: grants.iter().cloned().collect(),
                external_id: external_id.map(str::to_owned),
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
        if plan.is_cross_account() {
            return cross_account::grant(self, agreement_id, plan).await;
        }
        let account = plan.consumer_account.as_deref();
        let iam = self.iam.iam(account).await?;
        let role = allowed_role(&iam, self.guard, plan.role.name()).await?;
        let in_place = has_policy(&iam, &role.name, &plan.policy_name, &plan.document).await?;
        if !in_place {
            check_budget(&iam, &role.name, &plan.policy_name, &plan.document).await?;
        }
        let wanted = GrantRecord {
            role_name: role.name.clone(),
            role_arn: role.arn.clone(),
            policy_name: plan.policy_name.clone(),
            account: account.map(str::to_owned),
            kind: GrantKind::InlinePolicy,
        };
        let entry = self.ledger.get(agreement_id).await?;
        // Kept, so an agreement that moves back across accounts keeps its external id.
        let external_id = entry.as_ref().and_then(|e| e.external_id.clone());
        let known = Self::recorded(&entry);
        let stale: BTreeSet<GrantRecord> =
            known.iter().filter(|r| **r != wanted).cloned().collect();
        if !known.contains(&wanted) {
            let mut all = known.clone();
            all.insert(wanted.clone());
            self.record(agreement_id, &all, external_id.as_deref())
                .await?;
        }
        let mut iam_writes = 0;
        if !in_place {
            iam.put_policy(&role.name, &plan.policy_name, &plan.document.to_json())
                .await?;
            iam_writes += 1;
        }
        if !stale.is_empty() {
            iam_writes += self.remove(&stale).await?;
            self.record(
                agreement_id,
                &BTreeSet::from([wanted]),
                external_id.as_deref(),
            )
            .await?;
        }
        Ok(Granted {
            role_arn: role.arn,
            policy_name: plan.policy_name.clone(),
            access_role: None,
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
            let account = role
                .account()
                .filter(|a| Some(*a) != self.iam.own_account());
            let known = targets.iter().any(|r| {
                r.role_name == role_name && r.policy_name == name && r.account.as_deref() == account
            });
            // Only the policy's own name on a role the guard allows: revocation must not become
            // a way to delete policies from protected roles.
            let iam = self.iam.iam(account).await?;
            if !known && iam.policy(role_name, &name).await?.is_some() {
                if let Ok(info) = allowed_role(&iam, self.guard, role.name()).await {
                    targets.insert(GrantRecord {
                        role_name: info.name,
                        role_arn: info.arn,
                        policy_name: name,
                        account: account.map(str::to_owned),
                        kind: GrantKind::InlinePolicy,
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
