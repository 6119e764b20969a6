//! Making IAM and the grant ledger match the desired state, with as few writes as possible.
//!
//! Order matters for "nothing lost, nothing over-granted": the ledger learns about a grant
//! before IAM gets it (so a crash in between can still be revoked), and forgets it only after IAM
//! lost it. Every write is preceded by a read, so a replay makes no write at all.
//!
//! IAM is reached per account through [`AccountIam`]: the integration's own account directly,
//! managed accounts through their management role. Grants within one account are packed into
//! the consumer role's inline slot and managed policies ([`super::packed`], ADR 023), or, in the `inline`
//! layout, an inline policy per agreement (as in the reference integration); grants across
//! accounts are handled by [`super::cross_account`] (ADR 003), their consumer side laid out the
//! same way.
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

use super::cross_account::{self, ExternalIds};
use super::iam::{AccessRoles, IamError, RoleInfo, RolePolicies};
use super::lake_formation::{self, TablePermissions, holder_key};
use super::ledger::{GrantKind, GrantLedger, GrantRecord, LedgerEntry, LedgerError};
use super::ownership::Finding;
use super::packed::{self, Layout, ManagedPolicies, PackedRole};
use super::plan::GrantPlan;
use super::role_checks::{allowed_role, check_budget, has_policy, owned_role};
use super::status::AccessRoleStatus;
use super::{Permanent, ReconcileError};
use crate::policy::{
    ConsumerRole, PolicyDocument, RoleGuard, RoleName, access_role_name, policy_name,
};

/// A grant in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub role_arn: String,
    /// The policy holding the grant: the agreement's inline policy, or in the packed layout the
    /// role's packed policy it sits in (what DMM shows as `aws-policy-name`).
    pub policy_name: String,
    /// Cross-account grants: the access role and external id the consumer uses.
    pub access_role: Option<AccessRoleStatus>,
    /// IAM writes made (0 when the grant was already in place).
    pub iam_writes: usize,
    /// Missing ownership proofs, in `audit` mode (the grant was made anyway).
    pub findings: Vec<Finding>,
}

/// The permission services of each account (IAM, and Lake Formation for `glue_table` ports),
/// for one agreement.
pub trait AccountIam: Sync {
    type Iam: RolePolicies + AccessRoles + TablePermissions + ManagedPolicies + Sync;
    /// The IAM of `account` (`None`: the integration's own account).
    fn iam(
        &self,
        account: Option<&str>,
    ) -> impl Future<Output = Result<Self::Iam, ReconcileError>> + Send;
    /// The integration's own account id, when known.
    fn own_account(&self) -> Option<&str>;
}

/// The role record and policy names of `role`'s packed grants.
fn packed_role(role: &RoleInfo) -> Result<PackedRole, Box<Permanent>> {
    PackedRole::new(&role.name, &role.arn).ok_or_else(|| {
        Box::new(Permanent::Iam(IamError::Refused {
            action: "GetRole",
            role: role.name.clone(),
            reason: format!("IAM answered with `{}`, which is not a role ARN", role.arn),
        }))
    })
}

/// IAM per account and the ledger.
pub struct Converger<'a, A, L> {
    iam: &'a A,
    ledger: &'a L,
    guard: &'a RoleGuard,
    /// How grants are laid out on consumer roles (`grant_layout`).
    layout: Layout,
    /// Where a cross-account grant's external id comes from the first time.
    ids: &'a dyn ExternalIds,
    /// IAM writes made through this converger, whatever the outcome.
    writes: AtomicUsize,
}

/// What [`Converger::remove`] did with a set of ledger records.
struct Removal {
    /// Records that still describe a grant in IAM (the integration may not remove it).
    kept: BTreeSet<GrantRecord>,
    /// Why the first kept record could not be revoked.
    refused: Option<Permanent>,
}

impl Removal {
    fn keep(&mut self, record: &GrantRecord, why: Permanent) {
        self.kept.insert(record.clone());
        self.refused.get_or_insert(why);
    }
}

impl<'a, A, L> Converger<'a, A, L> {
    pub fn new(iam: &'a A, ledger: &'a L, guard: &'a RoleGuard, ids: &'a dyn ExternalIds) -> Self {
        Self {
            iam,
            ledger,
            guard,
            ids,
            layout: Layout::Inline,
            writes: AtomicUsize::new(0),
        }
    }

    /// With grants laid out as `layout`. Without it, one inline policy per agreement: the
    /// layout whose writes the unit tests read most plainly; the deployment's default is
    /// `packed` (`Layout::DEFAULT`), which the handlers pass.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// IAM writes made so far (puts, deletes, role changes), including those of a call that
    /// then failed.
    pub fn iam_writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Counts one IAM write.
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
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
    async fn remove(
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
        let of_kind = |kind| {
            records
                .iter()
                .filter(move |r: &&GrantRecord| r.kind == kind)
        };
        let ordered = of_kind(GrantKind::InlinePolicy)
            .chain(of_kind(GrantKind::Packed))
            .chain(of_kind(GrantKind::LakeFormation))
            .chain(of_kind(GrantKind::AccessRole));
        for record in ordered {
            let role_name = match record.kind {
                GrantKind::InlinePolicy | GrantKind::LakeFormation | GrantKind::Packed
                    if record.policy_name == own_policy =>
                {
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
                GrantKind::InlinePolicy | GrantKind::Packed => {
                    // IAM's path decides, not the ARN stored in the ledger.
                    let Some(role) = iam.role(role_name.as_str()).await? else {
                        // The role is gone, and its inline policies and attachments with it.
                        if record.kind == GrantKind::Packed {
                            self.remove_packed_of_deleted_role(&iam, record, agreement_id)
                                .await?;
                        }
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
                    if record.kind == GrantKind::Packed {
                        self.remove_packed(&iam, &role, agreement_id).await?;
                    } else if iam.policy(&role.name, &record.policy_name).await?.is_some() {
                        iam.delete_policy(&role.name, &record.policy_name).await?;
                        self.wrote();
                    }
                }
                GrantKind::LakeFormation => {
                    if let Some(why) = self
                        .release_table(&iam, agreement_id, &role_name, record)
                        .await?
                    {
                        removal.keep(record, why);
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

    /// Lets go of the agreement's hold on a Lake Formation table and revokes what no other
    /// agreement holds ([`lake_formation`]). The permissions were granted to the ARN in the
    /// record, and Lake Formation keeps them under that ARN even after the role is deleted (a
    /// role created again under the name would inherit them), so they are revoked from that ARN
    /// whether or not the role still exists; the guard judges the role by IAM's path when it
    /// exists, else by the path in the ARN. Returns why the record must be kept, if it must.
    async fn release_table(
        &self,
        iam: &A::Iam,
        agreement_id: &str,
        role_name: &RoleName,
        record: &GrantRecord,
    ) -> Result<Option<Permanent>, ReconcileError> {
        let principal = record.role_arn.as_str();
        let arn_path = principal
            .split_once(":role/")
            .and_then(|(_, rest)| rest.strip_suffix(role_name.as_str()))
            .filter(|path| path.is_empty() || (path.ends_with('/') && !path.starts_with('/')));
        let (Some(table), Some(arn_path)) = (&record.table, arn_path) else {
            tracing::warn!(
                agreement_id,
                role = record.role_name,
                role_arn = principal,
                "grant ledger names a Lake Formation grant without a table or with an ARN that is \
                 not the role's; ignored"
            );
            return Ok(None);
        };
        let path = match iam.role(role_name.as_str()).await? {
            Some(role) => role.path,
            None => format!("/{arn_path}"),
        };
        if let Err(source) = self.guard.check(role_name, &path) {
            return Ok(Some(Permanent::RevokeRefused {
                role: record.role_name.clone(),
                policy: format!("Lake Formation permissions on {table}"),
                source,
            }));
        }
        self.ledger
            .release(&holder_key(principal, table, agreement_id))
            .await?;
        lake_formation::settle(
            iam,
            self.ledger,
            principal,
            table,
            agreement_id,
            false,
            &self.writes,
        )
        .await?;
        Ok(None)
    }

    fn recorded(entry: &Option<LedgerEntry>) -> BTreeSet<GrantRecord> {
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

    async fn record(
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

    /// The order every grant follows, whatever it writes: the ledger learns the `wanted`
    /// records (and the external id) before `write` touches IAM, so a crash in between leaves
    /// something a revocation finds; what the ledger knew beyond `wanted` (a previous consumer
    /// role, a renamed policy, the other half of a grant that moved across accounts) is
    /// removed only after `write` succeeded, and forgotten only once IAM lost it.
    async fn in_ledger_order(
        &self,
        agreement_id: &str,
        entry: &Option<LedgerEntry>,
        wanted: &BTreeSet<GrantRecord>,
        external_id: Option<&str>,
        write: impl AsyncFnOnce() -> Result<(), ReconcileError>,
    ) -> Result<(), ReconcileError> {
        let known = Self::recorded(entry);
        let recorded_id = entry.as_ref().and_then(|e| e.external_id.as_deref());
        if !known.is_superset(wanted) || recorded_id != external_id {
            let all = known.union(wanted).cloned().collect();
            self.record(agreement_id, &all, external_id).await?;
        }
        write().await?;
        let stale: BTreeSet<GrantRecord> = known.difference(wanted).cloned().collect();
        if !stale.is_empty() {
            let removal = self.remove(agreement_id, &stale).await?;
            let remaining = removal.kept.union(wanted).cloned().collect();
            self.record(agreement_id, &remaining, external_id).await?;
            if let Some(refused) = removal.refused {
                return Err(refused.into());
            }
        }
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
            return self.grant_across_accounts(agreement_id, plan).await;
        }
        let account = plan.consumer_account.as_deref();
        let iam = self.iam.iam(account).await?;
        let role = allowed_role(&iam, self.guard, plan.role.name()).await?;
        let findings = owned_role(plan, &role)?;
        let (kind, in_place) = match self.layout {
            Layout::Inline => {
                let in_place =
                    has_policy(&iam, &role.name, &plan.policy_name, &plan.document).await?;
                if !in_place {
                    check_budget(&iam, &role.name, &plan.policy_name, &plan.document).await?;
                }
                (GrantKind::InlinePolicy, in_place)
            }
            Layout::Packed { .. } => (GrantKind::Packed, false),
        };
        let grant = GrantRecord {
            role_name: role.name.clone(),
            role_arn: role.arn.clone(),
            policy_name: plan.policy_name.clone(),
            account: account.map(str::to_owned),
            kind,
            table: None,
        };
        let mut wanted = BTreeSet::from([grant.clone()]);
        if let Some(table) = &plan.lake_formation {
            wanted.insert(GrantRecord {
                kind: GrantKind::LakeFormation,
                table: Some(table.clone()),
                ..grant
            });
        }
        let entry = self.ledger.get(agreement_id).await?;
        // Kept, so an agreement that moves back across accounts keeps its external id.
        let external_id = entry.as_ref().and_then(|e| e.external_id.clone());
        let before = self.iam_writes();
        let mut holder = plan.policy_name.clone();
        self.in_ledger_order(
            agreement_id,
            &entry,
            &wanted,
            external_id.as_deref(),
            async || {
                match self.layout {
                    Layout::Inline if !in_place => {
                        iam.put_policy(&role.name, &plan.policy_name, &plan.document.to_json())
                            .await?;
                        self.wrote();
                    }
                    Layout::Inline => {}
                    Layout::Packed { policies } => {
                        holder = self
                            .put_packed(
                                &iam,
                                &role,
                                agreement_id,
                                &plan.policy_name,
                                &plan.document,
                                policies,
                            )
                            .await?;
                    }
                }
                if let Some(table) = &plan.lake_formation {
                    // Marked before granting, so a revocation of another holder that runs
                    // meanwhile sees this agreement.
                    self.ledger
                        .hold(&holder_key(&role.arn, table, agreement_id))
                        .await?;
                    lake_formation::settle(
                        &iam,
                        self.ledger,
                        &role.arn,
                        table,
                        agreement_id,
                        true,
                        &self.writes,
                    )
                    .await?;
                }
                Ok(())
            },
        )
        .await?;
        Ok(Granted {
            role_arn: role.arn,
            policy_name: holder,
            access_role: None,
            iam_writes: self.iam_writes() - before,
            findings,
        })
    }

    /// The packed layout's write (ADR 023): the agreement's `document` into the role record, the
    /// policies whose slot changed (and its own, which repairs a policy changed by hand)
    /// converged, then the agreement's inline policy of the one-per-agreement layout
    /// (`policy_name`) deleted, now that the packed policy holds the grant. Returns the name of
    /// the packed policy holding it.
    async fn put_packed(
        &self,
        iam: &A::Iam,
        role: &RoleInfo,
        agreement_id: &str,
        policy_name: &str,
        document: &PolicyDocument,
        policies: usize,
    ) -> Result<String, ReconcileError> {
        let packed_role = packed_role(role)?;
        let room = packed::inline_room(iam, &role.name).await?;
        let (grants, (own, mut slots)) = packed::place(
            self.ledger,
            &packed_role,
            agreement_id,
            document,
            policies,
            room,
        )
        .await?;
        if !slots.contains(&own) {
            slots.push(own);
        }
        for slot in slots {
            packed::converge_slot(
                iam,
                self.ledger,
                &packed_role,
                slot,
                grants.clone(),
                &self.writes,
            )
            .await?;
        }
        if iam.policy(&role.name, policy_name).await?.is_some() {
            iam.delete_policy(&role.name, policy_name).await?;
            self.wrote();
        }
        Ok(packed_role.policy_name(own))
    }

    /// Takes the agreement out of the role's record and converges the policy that held it.
    async fn remove_packed(
        &self,
        iam: &A::Iam,
        role: &RoleInfo,
        agreement_id: &str,
    ) -> Result<(), ReconcileError> {
        let packed_role = packed_role(role)?;
        let (grants, slot) = packed::unplace(self.ledger, &packed_role, agreement_id).await?;
        if let Some(slot) = slot {
            packed::converge_slot(iam, self.ledger, &packed_role, slot, grants, &self.writes)
                .await?;
        }
        Ok(())
    }

    /// A packed grant whose role was deleted: the agreement still leaves the role record, or a
    /// role created again under the name would get its grant back from the next convergence of
    /// the slot. An emptied slot's policy, detached when the role was deleted, is deleted; one
    /// still holding other agreements is left to them (each leaves the same way).
    async fn remove_packed_of_deleted_role(
        &self,
        iam: &A::Iam,
        record: &GrantRecord,
        agreement_id: &str,
    ) -> Result<(), ReconcileError> {
        let Some(packed_role) = PackedRole::new(&record.role_name, &record.role_arn) else {
            tracing::warn!(
                agreement_id,
                role_arn = record.role_arn,
                "grant ledger names a packed grant with an ARN that is not a role's; ignored"
            );
            return Ok(());
        };
        let (grants, slot) = packed::unplace(self.ledger, &packed_role, agreement_id).await?;
        if let Some(slot) = slot.filter(|slot| !grants.slots.contains_key(slot)) {
            packed::converge_slot(iam, self.ledger, &packed_role, slot, grants, &self.writes)
                .await?;
        }
        Ok(())
    }

    /// An access role in the provider account and the consumer's permission to assume it
    /// ([`cross_account`]), in the same ledger order as every grant.
    async fn grant_across_accounts(
        &self,
        agreement_id: &str,
        plan: &GrantPlan,
    ) -> Result<Granted, ReconcileError> {
        let consumer_iam = self.iam.iam(plan.consumer_account.as_deref()).await?;
        let provider_iam = self.iam.iam(plan.provider_account.as_deref()).await?;
        let access = cross_account::prepare(
            &consumer_iam,
            &provider_iam,
            self.guard,
            self.iam.own_account(),
            agreement_id,
            plan,
            self.layout,
        )
        .await?;
        let entry = self.ledger.get(agreement_id).await?;
        let external_id = entry
            .as_ref()
            .and_then(|e| e.external_id.clone())
            .unwrap_or_else(|| self.ids.new_external_id());
        let before = self.iam_writes();
        self.in_ledger_order(
            agreement_id,
            &entry,
            &access.records(plan),
            Some(&external_id),
            async || {
                access
                    .apply(
                        &consumer_iam,
                        &provider_iam,
                        agreement_id,
                        plan,
                        &external_id,
                        &self.writes,
                    )
                    .await?;
                if let Layout::Packed { policies } = self.layout {
                    self.put_packed(
                        &consumer_iam,
                        &access.consumer,
                        agreement_id,
                        &plan.policy_name,
                        &access.consumer_policy,
                        policies,
                    )
                    .await?;
                }
                Ok(())
            },
        )
        .await?;
        Ok(Granted {
            role_arn: access.consumer.arn,
            policy_name: plan.policy_name.clone(),
            access_role: Some(AccessRoleStatus {
                role_arn: access.access_arn,
                external_id,
            }),
            iam_writes: self.iam_writes() - before,
            findings: access.findings,
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
                        table: None,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fakes::{ACCOUNT, CountingExternalIds, FakeIam, FakeLedger, Journal, OTHER_ACCOUNT};
    use crate::policy::{Context, Partition, PolicyDocument, Statement};
    use crate::reconcile::lake_formation::{LfResource, TableRef};
    use crate::reconcile::ownership::{Owners, OwnershipMode, RoleOwnership};

    const AGREEMENT: &str = "a1";
    const POLICY: &str = "DMM_DataUsageAgreement_a1";

    fn plan(role: &str, provider_account: Option<&str>) -> GrantPlan {
        GrantPlan {
            role: ConsumerRole::from_custom(
                &json!({"aws-role-name": role}),
                &Context::new(Partition::Aws),
            )
            .unwrap(),
            policy_name: POLICY.to_owned(),
            document: PolicyDocument::new(vec![Statement::allow(
                "Read",
                &["s3:GetObject"],
                ["arn:aws:s3:::orders/*"],
            )]),
            consumer_account: None,
            provider_account: provider_account.map(str::to_owned),
            role_ownership: RoleOwnership {
                mode: OwnershipMode::Off,
                owners: Owners::team("analytics"),
                consumer: "consumer team `analytics`".to_owned(),
            },
            findings: Vec::new(),
            lake_formation: None,
        }
    }

    fn orders() -> TableRef {
        TableRef {
            catalog_id: ACCOUNT.into(),
            region: "eu-central-1".into(),
            database: "sales".into(),
            table: "orders".into(),
        }
    }

    /// A grant of the table `sales.orders` through Lake Formation to `role`.
    fn table_plan(role: &str) -> GrantPlan {
        GrantPlan {
            lake_formation: Some(orders()),
            ..plan(role, None)
        }
    }

    /// IAM with two consumer roles, a ledger, both writing into one journal.
    struct World {
        journal: Journal,
        iam: FakeIam,
        ledger: FakeLedger,
        guard: RoleGuard,
        ids: CountingExternalIds,
    }

    impl World {
        fn new() -> Self {
            let journal = Journal::default();
            Self {
                iam: FakeIam::default()
                    .with_role("consumer", &[])
                    .with_role("other-consumer", &[])
                    .managing(OTHER_ACCOUNT)
                    .journal(&journal),
                ledger: FakeLedger::default().journal(&journal),
                guard: RoleGuard::new("/", "*", Vec::<String>::new()).unwrap(),
                ids: CountingExternalIds::default(),
                journal,
            }
        }

        fn converger(&self) -> Converger<'_, FakeIam, FakeLedger> {
            Converger::new(&self.iam, &self.ledger, &self.guard, &self.ids)
        }

        /// The converger in the packed layout, with two managed policies per role.
        fn packed(&self) -> Converger<'_, FakeIam, FakeLedger> {
            self.converger().with_layout(Layout::Packed { policies: 2 })
        }

        /// A first grant of `role`, with its writes taken out of the journal.
        async fn granted(&self, role: &str, provider_account: Option<&str>) {
            self.converger()
                .grant(AGREEMENT, &plan(role, provider_account))
                .await
                .unwrap();
            self.journal.take();
        }

        /// Gives `role` an inline policy of its owners that takes all of its inline budget, so
        /// packed grants go to managed policies.
        async fn fill_inline_budget(&self, role: &str) {
            let mut buckets = Vec::new();
            let document = loop {
                let document = PolicyDocument::new(vec![Statement::allow(
                    "Owners",
                    &["s3:GetObject"],
                    buckets.iter(),
                )]);
                if document.size() > 10_200 {
                    break document;
                }
                buckets.push(format!("arn:aws:s3:::owners-bucket-{:04}/*", buckets.len()));
            };
            self.iam
                .put_policy(role, "owners-own", &document.to_json())
                .await
                .unwrap();
            self.journal.take();
        }

        fn recorded(&self) -> Vec<String> {
            self.ledger
                .entry(AGREEMENT)
                .map(|e| e.grants.iter().map(|g| g.role_name.clone()).collect())
                .unwrap_or_default()
        }
    }

    #[tokio::test]
    async fn the_ledger_learns_a_grant_before_iam_gets_it_and_a_replay_writes_nothing() {
        let world = World::new();
        let granted = world
            .converger()
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(granted.iam_writes, 1);
        assert_eq!(
            world.journal.take(),
            [
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1]",
                "iam put consumer/DMM_DataUsageAgreement_a1",
            ]
        );
        let replay = world
            .converger()
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(replay.iam_writes, 0);
        assert_eq!(world.journal.take(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_lake_formation_table_is_held_then_granted_and_revoked_after_the_policy() {
        let world = World::new();
        let granted = world
            .converger()
            .grant(AGREEMENT, &table_plan("consumer"))
            .await
            .unwrap();
        assert_eq!(granted.iam_writes, 3);
        assert_eq!(
            world.journal.take(),
            [
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1, \
                 consumer/lake-formation sales.orders]",
                "iam put consumer/DMM_DataUsageAgreement_a1",
                "ledger hold sales/orders/a1",
                "lf grant consumer table sales.orders [DESCRIBE, SELECT]",
                "lf grant consumer database sales [DESCRIBE]",
            ]
        );
        let replay = world
            .converger()
            .grant(AGREEMENT, &table_plan("consumer"))
            .await
            .unwrap();
        assert_eq!(replay.iam_writes, 0);
        assert_eq!(world.journal.take(), Vec::<String>::new());

        let writes = world.converger().revoke(AGREEMENT, None).await.unwrap();
        assert_eq!(writes, 3);
        assert_eq!(
            world.journal.take(),
            [
                "iam delete consumer/DMM_DataUsageAgreement_a1",
                "ledger release sales/orders/a1",
                "lf revoke consumer table sales.orders [DESCRIBE, SELECT]",
                "lf revoke consumer database sales [DESCRIBE]",
                "ledger delete a1",
            ]
        );
        assert!(world.ledger.holder_keys().is_empty());
    }

    #[tokio::test]
    async fn a_table_moved_to_iam_or_to_another_role_is_revoked_where_it_was() {
        let world = World::new();
        world
            .converger()
            .grant(AGREEMENT, &table_plan("consumer"))
            .await
            .unwrap();
        world.journal.take();
        world
            .converger()
            .grant(AGREEMENT, &table_plan("other-consumer"))
            .await
            .unwrap();
        let principal = |role: &str| format!("arn:aws:iam::{ACCOUNT}:role/{role}");
        assert_eq!(
            world.iam.lake_formation.held(&principal("consumer")),
            Vec::<String>::new()
        );
        assert_eq!(
            world
                .iam
                .lake_formation
                .held(&principal("other-consumer"))
                .len(),
            2
        );
        world
            .converger()
            .grant(AGREEMENT, &plan("other-consumer", None))
            .await
            .unwrap();
        assert_eq!(
            world.iam.lake_formation.held(&principal("other-consumer")),
            Vec::<String>::new()
        );
        assert_eq!(world.recorded(), ["other-consumer"]);
    }

    #[tokio::test]
    async fn a_lake_formation_grant_on_a_role_the_guard_now_refuses_is_kept() {
        let world = World::new();
        world
            .converger()
            .grant(AGREEMENT, &table_plan("consumer"))
            .await
            .unwrap();
        let narrowed = RoleGuard::new("/", "other-*", Vec::<String>::new()).unwrap();
        let converger = Converger::new(&world.iam, &world.ledger, &narrowed, &world.ids);
        let refused = converger.revoke(AGREEMENT, None).await;
        assert!(
            matches!(
                refused,
                Err(ReconcileError::Permanent(Permanent::RevokeRefused { ref role, .. }))
                    if role == "consumer"
            ),
            "{refused:?}"
        );
        assert_eq!(
            world
                .iam
                .lake_formation
                .held(&format!("arn:aws:iam::{ACCOUNT}:role/consumer"))
                .len(),
            2
        );
        assert_eq!(world.ledger.holder_keys().len(), 1, "still held");
    }

    #[tokio::test]
    async fn a_ledger_record_whose_arn_is_not_its_roles_revokes_nothing_in_lake_formation() {
        let world = World::new();
        world
            .converger()
            .grant(AGREEMENT, &table_plan("consumer"))
            .await
            .unwrap();
        let mut entry = world.ledger.entry(AGREEMENT).unwrap();
        for grant in &mut entry.grants {
            if grant.kind == GrantKind::LakeFormation {
                grant.role_arn = format!("arn:aws:iam::{ACCOUNT}:role/other-consumer");
            }
        }
        world.ledger.put(&entry).await.unwrap();
        world
            .iam
            .lake_formation
            .grant(
                &format!("arn:aws:iam::{ACCOUNT}:role/other-consumer"),
                LfResource::Table(&orders()),
                &["SELECT"],
            )
            .await
            .unwrap();
        world.journal.take();
        world.converger().revoke(AGREEMENT, None).await.unwrap();
        let journal = world.journal.take();
        assert!(
            journal.iter().all(|line| !line.starts_with("lf revoke")),
            "{journal:?}"
        );
        assert_eq!(
            world
                .iam
                .lake_formation
                .held(&format!("arn:aws:iam::{ACCOUNT}:role/other-consumer")),
            ["table sales.orders: SELECT"]
        );
    }

    #[tokio::test]
    async fn packed_an_inline_grant_moves_into_the_packed_inline_policy_before_its_own_goes() {
        let world = World::new();
        world.granted("consumer", None).await;
        let packed = world.packed();
        let moved = packed
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(
            (moved.iam_writes, moved.policy_name.as_str()),
            (2, "dmm-integration-grants"),
            "the packed inline policy put, the agreement's own deleted"
        );
        assert_eq!(
            world.journal.take(),
            [
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1, \
                 consumer/DMM_DataUsageAgreement_a1]",
                "ledger role 123456789012/consumer.json",
                "iam put consumer/dmm-integration-grants",
                "iam delete consumer/DMM_DataUsageAgreement_a1",
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1]",
            ],
            "the ledger knows both records until the old one is gone"
        );
        assert_eq!(
            world.iam.policies("consumer").keys().collect::<Vec<_>>(),
            ["dmm-integration-grants"]
        );
        assert!(world.iam.attached("consumer").is_empty());
        let replay = packed
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(replay.iam_writes, 0);
        assert_eq!(packed.revoke(AGREEMENT, None).await.unwrap(), 1);
        assert!(world.iam.policies("consumer").is_empty());
    }

    #[tokio::test]
    async fn packed_without_inline_room_a_grant_moves_into_a_managed_policy_before_its_own_goes() {
        let world = World::new();
        world.granted("consumer", None).await;
        world.fill_inline_budget("consumer").await;
        let packed = world.packed();
        let moved = packed
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(
            moved.iam_writes, 3,
            "create, attach, delete the inline policy"
        );
        assert_eq!(
            moved.policy_name, "dmm-grants-consumer-1",
            "DMM is told the policy that holds the grant"
        );
        let journal = world.journal.take();
        let at = |line: &str| {
            journal
                .iter()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line} in {journal:?}"))
        };
        let attach = at("iam attach dmm-grants-consumer-1 to consumer");
        assert!(at("iam create policy dmm-grants-consumer-1") < attach);
        assert!(attach < at("iam delete consumer/DMM_DataUsageAgreement_a1"));
        assert_eq!(
            world.iam.policies("consumer").keys().collect::<Vec<_>>(),
            ["owners-own"]
        );
        assert_eq!(
            world.ledger.entry(AGREEMENT).unwrap().grants[0].kind,
            GrantKind::Packed
        );

        let replay = packed
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(replay.iam_writes, 0);
        world.journal.take();
        let writes = packed.revoke(AGREEMENT, None).await.unwrap();
        assert_eq!(writes, 2, "detach, delete the empty policy");
        assert_eq!(
            world.journal.take().last().map(String::as_str),
            Some("ledger delete a1"),
            "the ledger forgets last"
        );
        assert!(world.iam.attached("consumer").is_empty());
    }

    /// A plan granting `folder` of the lake to `consumer` for agreement `id`.
    fn folder_plan(id: &str, folder: &str) -> GrantPlan {
        GrantPlan {
            policy_name: policy_name(id).unwrap(),
            document: PolicyDocument::new(vec![Statement::allow(
                "Read",
                &["s3:GetObject"],
                [format!("arn:aws:s3:::lake/{folder}/*")],
            )]),
            ..plan("consumer", None)
        }
    }

    #[tokio::test]
    async fn packed_a_deleted_roles_agreements_leave_its_record_so_a_new_role_of_the_name_gets_none()
     {
        let world = World::new();
        world.fill_inline_budget("consumer").await;
        let packed = world.packed();
        for (id, folder) in [("a1", "orders"), ("a2", "returns")] {
            packed.grant(id, &folder_plan(id, folder)).await.unwrap();
        }
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy/dmm-integration/dmm-grants-consumer-1");
        world.iam.delete_role("consumer");
        world.journal.take();

        assert_eq!(packed.revoke("a1", None).await.unwrap(), 0);
        let document = world.iam.managed_document(&arn).unwrap();
        assert!(document.contains("returns"), "left to a2: {document}");
        assert_eq!(packed.revoke("a2", None).await.unwrap(), 2);
        assert_eq!(
            world.journal.take(),
            [
                "ledger role 123456789012/consumer.json",
                "ledger delete a1",
                "ledger role 123456789012/consumer.json",
                "iam delete version dmm-grants-consumer-1",
                "iam delete policy dmm-grants-consumer-1",
                "ledger delete a2",
            ],
            "each leaves the record; the last deletes the detached policy"
        );

        world.iam.create_role("consumer", &[]);
        world.fill_inline_budget("consumer").await;
        packed
            .grant("a3", &folder_plan("a3", "refunds"))
            .await
            .unwrap();
        let document = world.iam.managed_document(&arn).unwrap();
        assert!(
            document.contains("refunds")
                && !document.contains("orders")
                && !document.contains("returns"),
            "{document}"
        );
    }

    #[tokio::test]
    async fn a_failed_write_stays_in_the_ledger_so_a_revocation_finds_it() {
        let world = World::new();
        world.iam.fail_next_put();
        let failed = world
            .converger()
            .grant(AGREEMENT, &plan("consumer", None))
            .await;
        assert!(
            matches!(failed, Err(ReconcileError::Retry(_))),
            "{failed:?}"
        );
        assert_eq!(world.recorded(), ["consumer"]);
        // The crash case: IAM got the policy after all, but nothing more happened.
        world
            .iam
            .put_policy(
                "consumer",
                POLICY,
                &plan("consumer", None).document.to_json(),
            )
            .await
            .unwrap();
        world.journal.take();
        let writes = world.converger().revoke(AGREEMENT, None).await.unwrap();
        assert_eq!(writes, 1);
        assert_eq!(
            world.journal.take(),
            [
                "iam delete consumer/DMM_DataUsageAgreement_a1",
                "ledger delete a1"
            ]
        );
        assert!(world.iam.policies("consumer").is_empty());
    }

    #[tokio::test]
    async fn a_moved_grant_is_written_on_the_new_role_before_the_old_one_loses_it() {
        let world = World::new();
        world.granted("consumer", None).await;
        let moved = world
            .converger()
            .grant(AGREEMENT, &plan("other-consumer", None))
            .await
            .unwrap();
        assert_eq!(moved.iam_writes, 2);
        assert_eq!(
            world.journal.take(),
            [
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1, \
                 other-consumer/DMM_DataUsageAgreement_a1]",
                "iam put other-consumer/DMM_DataUsageAgreement_a1",
                "iam delete consumer/DMM_DataUsageAgreement_a1",
                "ledger put a1 [other-consumer/DMM_DataUsageAgreement_a1]",
            ]
        );
        assert!(world.iam.policies("consumer").is_empty());
        assert_eq!(
            world
                .iam
                .policies("other-consumer")
                .keys()
                .collect::<Vec<_>>(),
            [POLICY]
        );
    }

    #[tokio::test]
    async fn a_grant_on_a_role_the_guard_now_refuses_is_kept_in_the_ledger_and_reported() {
        let world = World::new();
        world.granted("consumer", None).await;
        let narrowed = RoleGuard::new("/", "other-*", Vec::<String>::new()).unwrap();
        let converger = Converger::new(&world.iam, &world.ledger, &narrowed, &world.ids);
        let refused = converger
            .grant(AGREEMENT, &plan("other-consumer", None))
            .await;
        assert!(
            matches!(
                refused,
                Err(ReconcileError::Permanent(Permanent::RevokeRefused { ref role, .. }))
                    if role == "consumer"
            ),
            "{refused:?}"
        );
        assert_eq!(world.recorded(), ["consumer", "other-consumer"]);
        assert_eq!(
            world.iam.policies("consumer").keys().collect::<Vec<_>>(),
            [POLICY]
        );
    }

    #[tokio::test]
    async fn across_accounts_the_provider_half_comes_first_and_goes_last() {
        let world = World::new();
        let granted = world
            .converger()
            .grant(AGREEMENT, &plan("consumer", Some(OTHER_ACCOUNT)))
            .await
            .unwrap();
        let access = granted.access_role.expect("an access role");
        assert_eq!(access.external_id, "ext-1");
        assert_eq!(
            access.role_arn,
            format!("arn:aws:iam::{OTHER_ACCOUNT}:role/dmm-access-a1")
        );
        assert_eq!(
            world.journal.take(),
            [
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1, \
                 dmm-access-a1/DMM_DataUsageAgreement_a1]",
                "iam create role dmm-access-a1",
                "iam put dmm-access-a1/DMM_DataUsageAgreement_a1",
                "iam put consumer/DMM_DataUsageAgreement_a1",
            ]
        );
        let trust = world
            .iam
            .access_role_info("dmm-access-a1")
            .unwrap()
            .trust_policy;
        assert!(
            cross_account::trust_matches(
                &trust,
                &cross_account::trust_policy(
                    &format!("arn:aws:iam::{ACCOUNT}:role/consumer"),
                    "ext-1"
                )
            ),
            "{trust}"
        );
        let replay = world
            .converger()
            .grant(AGREEMENT, &plan("consumer", Some(OTHER_ACCOUNT)))
            .await
            .unwrap();
        assert_eq!(
            (replay.iam_writes, replay.access_role.unwrap().external_id),
            (0, "ext-1".to_owned()),
            "the external id is the ledger's, not a new one"
        );
        assert_eq!(world.journal.take(), Vec::<String>::new());

        world.converger().revoke(AGREEMENT, None).await.unwrap();
        assert_eq!(
            world.journal.take(),
            [
                "iam delete consumer/DMM_DataUsageAgreement_a1",
                "iam delete dmm-access-a1/DMM_DataUsageAgreement_a1",
                "iam delete role dmm-access-a1",
                "ledger delete a1",
            ]
        );
    }

    #[tokio::test]
    async fn packed_across_accounts_the_consumer_side_is_packed_after_the_provider_side() {
        let world = World::new();
        world.granted("consumer", Some(OTHER_ACCOUNT)).await;
        world.fill_inline_budget("consumer").await;
        let packed = world.packed();
        let moved = packed
            .grant(AGREEMENT, &plan("consumer", Some(OTHER_ACCOUNT)))
            .await
            .unwrap();
        let journal = world.journal.take();
        assert_eq!(moved.iam_writes, 3, "{journal:?}");
        assert_eq!(
            moved.policy_name, POLICY,
            "the access role's policy, which holds the grant"
        );
        let at = |line: &str| {
            journal
                .iter()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line} in {journal:?}"))
        };
        let attach = at("iam attach dmm-grants-consumer-1 to consumer");
        assert!(at("iam create policy dmm-grants-consumer-1") < attach);
        assert!(
            attach < at("iam delete consumer/DMM_DataUsageAgreement_a1"),
            "the inline assume policy goes once the packed one is attached"
        );
        let document = world
            .iam
            .managed_document(&format!(
                "arn:aws:iam::{ACCOUNT}:policy/dmm-integration/dmm-grants-consumer-1"
            ))
            .unwrap();
        assert!(
            document.contains("sts:AssumeRole")
                && document.contains(&format!("{OTHER_ACCOUNT}:role/dmm-access-a1")),
            "{document}"
        );
        assert_eq!(
            world.iam.policies("consumer").keys().collect::<Vec<_>>(),
            ["owners-own"]
        );
        let kinds: BTreeSet<GrantKind> = world
            .ledger
            .entry(AGREEMENT)
            .unwrap()
            .grants
            .iter()
            .map(|g| g.kind)
            .collect();
        assert_eq!(
            kinds,
            BTreeSet::from([GrantKind::AccessRole, GrantKind::Packed])
        );

        let replay = packed
            .grant(AGREEMENT, &plan("consumer", Some(OTHER_ACCOUNT)))
            .await
            .unwrap();
        assert_eq!(replay.iam_writes, 0);
        world.journal.take();
        packed.revoke(AGREEMENT, None).await.unwrap();
        let journal = world.journal.take();
        let at = |line: &str| {
            journal
                .iter()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line} in {journal:?}"))
        };
        assert!(
            at("iam detach dmm-grants-consumer-1 from consumer")
                < at("iam delete role dmm-access-a1"),
            "the consumer side goes first"
        );
        assert!(world.iam.attached("consumer").is_empty());
    }

    #[tokio::test]
    async fn back_in_one_account_the_access_role_goes_after_the_direct_grant_is_in_place() {
        let world = World::new();
        world.granted("consumer", Some(OTHER_ACCOUNT)).await;
        world
            .converger()
            .grant(AGREEMENT, &plan("consumer", None))
            .await
            .unwrap();
        assert_eq!(
            world.journal.take(),
            [
                "iam put consumer/DMM_DataUsageAgreement_a1",
                "iam delete dmm-access-a1/DMM_DataUsageAgreement_a1",
                "iam delete role dmm-access-a1",
                "ledger put a1 [consumer/DMM_DataUsageAgreement_a1]",
            ]
        );
        assert_eq!(
            world
                .ledger
                .entry(AGREEMENT)
                .unwrap()
                .external_id
                .as_deref(),
            Some("ext-1"),
            "kept for a move back"
        );
    }
}
