//! Making IAM and the grant ledger match the desired state, with as few writes as possible.
//!
//! Order matters for "nothing lost, nothing over-granted": the ledger learns about a grant
//! before IAM gets it (so a crash in between can still be revoked), and forgets it only after IAM
//! lost it. Every write is preceded by a read, so a replay makes no write at all.
//!
//! IAM is reached per account through [`AccountIam`]: the integration's own account directly,
//! managed accounts through their management role. Grants within one account are an inline
//! policy on the consumer role (as in the reference integration); grants across accounts are
//! handled by [`super::cross_account`] (ADR 003).
//!
//! The ledger is read from S3 and is only as trustworthy as the bucket, so revoking from it obeys
//! the same rules as granting: an inline policy is deleted only when it is the agreement's own
//! policy, and only from a role the [`RoleGuard`] allows (judged by the path IAM reports, in the
//! account the record names); an access role only when it has the agreement's own access-role
//! name and carries the integration's tags. A grant that cannot be revoked stays in the ledger
//! and is reported ([`Permanent::RevokeRefused`], [`Permanent::ForeignAccessRole`]) rather than
//! forgotten.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ownership::Finding;
use super::plan::GrantPlan;
use super::status::AccessRoleStatus;
use super::{Permanent, ReconcileError, cross_account};
use crate::aws::access_roles::AccessRoles;
use crate::aws::accounts::{AccountClients, AssumeRole};
use crate::aws::iam::{IamRoles, RoleInfo, RolePolicies};
use crate::aws::ledger::{GrantKind, GrantLedger, GrantRecord, LedgerEntry, LedgerError};
use crate::policy::{
    ConsumerRole, PolicyDocument, RoleGuard, RoleName, access_role_name,
    check_inline_policy_budget, decode_iam_document, policy_name, policy_size,
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
    /// Missing ownership proofs, in `audit` mode (the grant was made anyway).
    pub findings: Vec<Finding>,
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
    pub(super) iam: &'a A,
    pub(super) ledger: &'a L,
    pub(super) guard: &'a RoleGuard,
    /// IAM writes made through this converger, whatever the outcome.
    writes: AtomicUsize,
}

/// What [`Converger::remove`] did with a set of ledger records.
pub(super) struct Removal {
    /// Records that still describe a grant in IAM (the integration may not remove it).
    pub(super) kept: BTreeSet<GrantRecord>,
    /// Why the first kept record could not be revoked.
    pub(super) refused: Option<Permanent>,
}

impl Removal {
    fn keep(&mut self, record: &GrantRecord, why: Permanent) {
        self.kept.insert(record.clone());
        self.refused.get_or_insert(why);
    }
}

impl<'a, A, L> Converger<'a, A, L> {
    pub fn new(iam: &'a A, ledger: &'a L, guard: &'a RoleGuard) -> Self {
        Self {
            iam,
            ledger,
            guard,
            writes: AtomicUsize::new(0),
        }
    }

    /// IAM writes made so far (puts, deletes, role changes), including those of a call that
    /// then failed.
    pub fn iam_writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Counts one IAM write.
    pub(super) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
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
    ///
    /// A record is acted on only when it names what the integration writes for this agreement:
    /// an inline policy with the agreement's own policy name, or the access role with the
    /// agreement's own access-role name. Records naming anything else were not written by the
    /// integration for this agreement and are dropped without a write. Records the integration
    /// may not remove (a role the guard refuses, an access role without the integration's tags,
    /// an account it can no longer reach) are kept, because the grant may still be there, and
    /// reported.
    pub(super) async fn remove(
        &self,
        agreement_id: &str,
        records: &BTreeSet<GrantRecord>,
    ) -> Result<Removal, ReconcileError> {
        let own_policy = policy_name(agreement_id)?;
        let own_access_role = access_role_name(agreement_id)?;
        let mut removal = Removal {
            kept: BTreeSet::new(),
            refused: None,
        };
        let ordered = records
            .iter()
            .filter(|r| r.kind == GrantKind::InlinePolicy)
            .chain(records.iter().filter(|r| r.kind == GrantKind::AccessRole));
        for record in ordered {
            let role_name = match record.kind {
                GrantKind::InlinePolicy if record.policy_name == own_policy => {
                    RoleName::parse(&record.role_name).ok()
                }
                GrantKind::AccessRole if record.role_name == own_access_role => {
                    RoleName::parse(&record.role_name).ok()
                }
                _ => None,
            };
            let Some(role_name) = role_name else {
                tracing::warn!(
                    agreement_id,
                    role = record.role_name,
                    policy = record.policy_name,
                    kind = ?record.kind,
                    "grant ledger names something that is not the agreement's own; ignored"
                );
                continue;
            };
            let iam = match self.iam.iam(record.account.as_deref()).await {
                Ok(iam) => iam,
                Err(ReconcileError::Permanent(why)) => {
                    removal.keep(record, why);
                    continue;
                }
                Err(retry) => return Err(retry),
            };
            match record.kind {
                GrantKind::InlinePolicy => {
                    // IAM's path decides, not the ARN stored in the ledger.
                    let Some(role) = iam.role(role_name.as_str()).await? else {
                        // The role is gone, and its inline policies with it.
                        continue;
                    };
                    if let Err(source) = self.guard.check(&role_name, &role.path) {
                        removal.keep(
                            record,
                            Permanent::RevokeRefused {
                                role: record.role_name.clone(),
                                policy: record.policy_name.clone(),
                                source,
                            },
                        );
                        continue;
                    }
                    if iam.policy(&role.name, &record.policy_name).await?.is_some() {
                        iam.delete_policy(&role.name, &record.policy_name).await?;
                        self.wrote();
                    }
                }
                GrantKind::AccessRole => {
                    let refused =
                        cross_account::delete_access_role(&iam, agreement_id, record, &self.writes)
                            .await?;
                    if let Some(why) = refused {
                        removal.keep(record, why);
                    }
                }
            }
        }
        Ok(removal)
    }

    pub(super) fn recorded(entry: &Option<LedgerEntry>) -> BTreeSet<GrantRecord> {
        entry
            .iter()
            .flat_map(|e| e.grants.iter().cloned())
            .collect()
    }

    /// Removes the agreement's ledger entry without looking at it (an entry that cannot be
    /// read; see the handler's `unreadable_ledger`).
    pub async fn forget(&self, agreement_id: &str) -> Result<(), LedgerError> {
        self.ledger.delete(agreement_id).await
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
        let findings = owned_role(plan, &role)?;
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
        let before = self.iam_writes();
        if !in_place {
            iam.put_policy(&role.name, &plan.policy_name, &plan.document.to_json())
                .await?;
            self.wrote();
        }
        if !stale.is_empty() {
            let removal = self.remove(agreement_id, &stale).await?;
            let mut remaining = removal.kept;
            remaining.insert(wanted);
            self.record(agreement_id, &remaining, external_id.as_deref())
                .await?;
            if let Some(refused) = removal.refused {
                return Err(refused.into());
            }
        }
        Ok(Granted {
            role_arn: role.arn,
            policy_name: plan.policy_name.clone(),
            access_role: None,
            iam_writes: self.iam_writes() - before,
            findings,
        })
    }

    /// Removes every grant of the agreement: those in the ledger, and the policy on the role the
    /// agreement names today (`consumer`), which covers grants made before the ledger existed.
    /// Returns the number of IAM writes. A grant the integration may not remove stays in the
    /// ledger and fails the call with a permanent error ([`Permanent::RevokeRefused`],
    /// [`Permanent::ForeignAccessRole`]), after everything else was revoked.
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
            let account = role
                .account()
                .filter(|a| Some(*a) != self.iam.own_account());
            let known = targets.iter().any(|r| {
                r.kind == GrantKind::InlinePolicy
                    && r.role_name.eq_ignore_ascii_case(role_name)
                    && r.policy_name == name
                    && r.account.as_deref() == account
            });
            let iam = self.iam.iam(account).await?;
            if !known && iam.policy(role_name, &name).await?.is_some() {
                // Only the policy's own name, and `remove` applies the guard: revocation must
                // not become a way to delete policies from protected roles.
                if let Some(info) = iam.role(role_name).await? {
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
        let removal = self.remove(agreement_id, &targets).await?;
        if removal.kept.is_empty() {
            if entry.is_some() {
                self.ledger.delete(agreement_id).await?;
            }
        } else if removal.kept != recorded {
            let external_id = entry.as_ref().and_then(|e| e.external_id.as_deref());
            self.record(agreement_id, &removal.kept, external_id)
                .await?;
        }
        match removal.refused {
            Some(refused) => Err(refused.into()),
            None => Ok(self.iam_writes() - before),
        }
    }
}
