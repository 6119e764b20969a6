//! The packed layout (ADR 023): the grants of every agreement on one consumer role in a few
//! customer managed policies the integration owns, instead of one inline policy per agreement.
//!
//! **The role record.** Which agreement's grant sits in which policy ("slot") is kept per role in
//! the state bucket ([`RoleGrants`], `GrantLedger::role_grants`), written with S3 conditional
//! writes: the record is the one place where agreements converged at the same moment (one FIFO
//! group each, several Lambda instances) meet, and a write based on a stale read fails and is
//! redone. An agreement stays in its slot while it fits, so an activation or a revocation
//! rewrites one policy.
//!
//! **The policies.** Slot 0 is the role's inline policy `dmm-integration-grants`, as large as the
//! role's inline budget allows next to its other inline policies (at most a managed policy's
//! size): a change there is one `PutRolePolicy`. Slot `n` ≥ 1 of role `r` is the managed policy
//! `dmm-grants-<r>-<n>` on the path `/dmm-integration/`, tagged `managed-by=dmm-integration-aws`,
//! attached to the role. Each holds [`pack`] of the slot's grants. [`converge_slot`] makes IAM
//! match the record, then reads the record again: when another agreement changed the slot
//! meanwhile, it converges again, so the last writer always wrote what the record says (as
//! `lake_formation::settle` does for shared Lake Formation permissions).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::cross_account::assumes_only_access_roles;
use super::iam::{IamError, MANAGED_BY_TAG, MANAGED_BY_VALUE, RolePolicies};
use super::ledger::GrantLedger;
use super::role_checks::other_inline_sizes;
use super::{Permanent, ReconcileError, Retry};
use crate::policy::packing::{MANAGED_POLICY_LIMIT, pack, packed_size};
use crate::policy::{CATALOGUE_ACTIONS, Effect, PolicyDocument, ROLE_INLINE_POLICY_LIMIT};

/// The IAM path of every managed policy the integration creates; Terraform lets it create and
/// change policies only there.
pub const PACKED_POLICY_PATH: &str = "/dmm-integration/";
/// Name prefix of the packed policies.
pub const PACKED_POLICY_PREFIX: &str = "dmm-grants-";
/// The slot kept in the role's inline policy budget, filled first.
pub const INLINE_SLOT: usize = 0;
/// The inline policy holding slot 0.
pub const INLINE_POLICY_NAME: &str = "dmm-integration-grants";
/// Half of IAM's default quota of ten attached policies per role: the role's owners keep the
/// other half for their own.
pub const DEFAULT_MANAGED_POLICIES_PER_ROLE: usize = 5;
/// IAM keeps at most five versions of a managed policy.
const MAX_POLICY_VERSIONS: usize = 5;
/// How often a conditional write of the role record is redone after losing to another writer,
/// and how often a slot is converged again while others keep changing it, before the message is
/// retried.
const MAX_ROUNDS: usize = 8;

/// How grants are laid out on consumer roles (`grant_layout`; `packed` unless set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One inline policy `DMM_DataUsageAgreement_<id>` per agreement, as the Python reference
    /// did: readable names, and IAM's 10,240 characters of inline policy per role as the ceiling.
    Inline,
    /// Packed into the role's inline slot, then at most `policies` managed policies.
    Packed { policies: usize },
}

impl Layout {
    /// The deployment's default, `grant_layout = packed`.
    pub const DEFAULT: &str = "packed";

    pub fn parse(layout: &str, policies: usize) -> Result<Self, String> {
        match layout.trim() {
            "inline" => Ok(Self::Inline),
            "packed" if (1..=20).contains(&policies) => Ok(Self::Packed { policies }),
            "packed" => Err(format!(
                "managed_policies_per_role is {policies}; IAM attaches 1 to 20 managed policies \
                 to a role"
            )),
            other => Err(format!("`{other}`: expected `inline` or `packed`")),
        }
    }
}

/// The packed grants of one role, as the role record holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleGrants {
    /// Slot → agreement id → the agreement's policy document (compact JSON).
    pub slots: BTreeMap<usize, BTreeMap<String, String>>,
    /// Slot → how often it changed. A convergence that finds its slot changed again since its
    /// own change leaves the write to whoever changed it (see [`converge_slot`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<usize, u64>,
}

impl RoleGrants {
    /// The slot holding `agreement_id`, if any.
    pub fn slot_of(&self, agreement_id: &str) -> Option<usize> {
        self.slots
            .iter()
            .find(|(_, agreements)| agreements.contains_key(agreement_id))
            .map(|(slot, _)| *slot)
    }

    /// The documents of `slot`. The record is read from the state bucket, so a document that
    /// grants anything but the catalogue's read actions or the assumption of access roles
    /// (which no agreement's grant does) was not written by the integration and is left out:
    /// the bucket cannot be made to grant more than reads.
    fn documents(&self, slot: usize) -> Vec<PolicyDocument> {
        self.slots
            .get(&slot)
            .into_iter()
            .flatten()
            .filter_map(|(agreement_id, json)| {
                let document = PolicyDocument::from_iam(json).ok();
                let reads = document.filter(|d| {
                    d.statements().iter().all(|s| {
                        (s.effect() == Effect::Allow
                            && s.actions()
                                .iter()
                                .all(|a| CATALOGUE_ACTIONS.contains(&a.as_str())))
                            || assumes_only_access_roles(s)
                    })
                });
                if reads.is_none() {
                    tracing::warn!(
                        agreement_id,
                        slot,
                        "the role record holds a grant the integration does not write; left out"
                    );
                }
                reads
            })
            .collect()
    }

    /// The packed document of `slot`; `None` when the slot is empty.
    pub fn slot_document(&self, slot: usize) -> Option<PolicyDocument> {
        let documents = self.documents(slot);
        (!documents.is_empty()).then(|| pack(&documents))
    }

    /// Puts `document` of `agreement_id` in a slot: its own while it still fits there, else the
    /// first with room (the inline slot, with `inline_room` characters, before the managed
    /// ones), else a new one. Returns the agreement's slot and the slots that changed.
    fn place(
        &mut self,
        agreement_id: &str,
        document: &PolicyDocument,
        policies: usize,
        inline_room: usize,
        role: &str,
    ) -> Result<(usize, Vec<usize>), Box<Permanent>> {
        let json = document.to_json();
        let current = self.slot_of(agreement_id);
        if let Some(slot) = current
            && self.slots[&slot].get(agreement_id) == Some(&json)
        {
            return Ok((slot, Vec::new()));
        }
        let fits = |grants: &RoleGrants, slot: usize| {
            let mut documents: Vec<PolicyDocument> = grants
                .slots
                .get(&slot)
                .into_iter()
                .flatten()
                .filter(|(id, _)| id.as_str() != agreement_id)
                .filter_map(|(_, json)| PolicyDocument::from_iam(json).ok())
                .collect();
            documents.push(document.clone());
            let limit = match slot {
                INLINE_SLOT => inline_room.min(MANAGED_POLICY_LIMIT),
                _ => MANAGED_POLICY_LIMIT,
            };
            packed_size(&documents) <= limit
        };
        let slot = current
            .filter(|slot| fits(self, *slot))
            .or_else(|| {
                (INLINE_SLOT..=policies)
                    .filter(|slot| *slot == INLINE_SLOT || self.slots.contains_key(slot))
                    .find(|slot| fits(self, *slot))
            })
            .or_else(|| (1..=policies).find(|slot| !self.slots.contains_key(slot)))
            .filter(|slot| fits(self, *slot))
            .ok_or_else(|| {
                Box::new(Permanent::RoleFull {
                    role: role.to_owned(),
                    policies,
                    limit: MANAGED_POLICY_LIMIT,
                    size: document.size(),
                })
            })?;
        let mut changed = vec![slot];
        if let Some(old) = current.filter(|old| *old != slot) {
            self.remove(agreement_id);
            changed.push(old);
        }
        self.slots
            .entry(slot)
            .or_default()
            .insert(agreement_id.to_owned(), json);
        *self.changes.entry(slot).or_default() += 1;
        Ok((slot, changed))
    }

    /// Takes `agreement_id` out of its slot; returns the slot.
    fn remove(&mut self, agreement_id: &str) -> Option<usize> {
        let slot = self.slot_of(agreement_id)?;
        let agreements = self.slots.get_mut(&slot)?;
        agreements.remove(agreement_id);
        if agreements.is_empty() {
            self.slots.remove(&slot);
        }
        *self.changes.entry(slot).or_default() += 1;
        Some(slot)
    }
}

/// A customer managed policy as IAM holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub arn: String,
    /// The default version's document (URL-encoded JSON, as IAM returns it).
    pub document: String,
    /// The other versions, oldest first.
    pub other_versions: Vec<String>,
    pub tags: Vec<(String, String)>,
}

impl ManagedPolicy {
    fn is_managed(&self) -> bool {
        self.tags
            .iter()
            .any(|(k, v)| k == MANAGED_BY_TAG && v == MANAGED_BY_VALUE)
    }
}

/// The customer managed policies of one account, and their attachment to roles.
pub trait ManagedPolicies {
    /// `None` when there is no policy with this ARN.
    fn managed_policy(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Option<ManagedPolicy>, IamError>> + Send;
    /// Creates the policy with its tags; returns its ARN.
    fn create_managed_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        tags: &[(&str, &str)],
    ) -> impl Future<Output = Result<String, IamError>> + Send;
    /// A new default version.
    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
    fn delete_policy_version(
        &self,
        arn: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
    /// Deleting a policy that is already gone succeeds. It must be detached and have no other
    /// versions.
    fn delete_managed_policy(&self, arn: &str)
    -> impl Future<Output = Result<(), IamError>> + Send;
    /// The ARNs of the managed policies attached to `role`; none when the role does not exist.
    fn attached_policies(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Vec<String>, IamError>> + Send;
    fn attach_policy(
        &self,
        role: &str,
        arn: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
    /// Detaching a policy that is not attached succeeds.
    fn detach_policy(
        &self,
        role: &str,
        arn: &str,
    ) -> impl Future<Output = Result<(), IamError>> + Send;
}

/// Where one role's packed grants live: the record's key, the role, its account's policy ARNs.
#[derive(Debug, Clone)]
pub struct PackedRole {
    pub role_name: String,
    /// `arn:<partition>:iam::<account>:` of the role.
    arn_prefix: String,
}

impl PackedRole {
    /// For the role with ARN `role_arn`.
    pub fn new(role_name: &str, role_arn: &str) -> Option<Self> {
        let (prefix, _) = role_arn.split_once(":role/")?;
        Some(Self {
            role_name: role_name.to_owned(),
            arn_prefix: format!("{prefix}:"),
        })
    }

    /// The role record's key, relative to the records' prefix: one per account and role.
    pub fn record_key(&self) -> String {
        let account = self.arn_prefix.rsplit(':').nth(1).unwrap_or_default();
        format!("{account}/{}.json", self.role_name)
    }

    /// The name of slot `slot`'s policy: the inline policy for slot 0, else a managed policy.
    pub fn policy_name(&self, slot: usize) -> String {
        match slot {
            INLINE_SLOT => INLINE_POLICY_NAME.to_owned(),
            _ => format!("{PACKED_POLICY_PREFIX}{}-{slot}", self.role_name),
        }
    }

    pub fn policy_arn(&self, slot: usize) -> String {
        format!(
            "{}policy{PACKED_POLICY_PATH}{}",
            self.arn_prefix,
            self.policy_name(slot)
        )
    }
}

/// Applies `change` to the role record with a conditional write, redoing it from a fresh read
/// whenever another writer got there first. Returns the record as written and what `change`
/// returned.
pub async fn update<L, T>(
    ledger: &L,
    role: &PackedRole,
    mut change: impl FnMut(&mut RoleGrants) -> Result<T, Box<Permanent>>,
) -> Result<(RoleGrants, T), ReconcileError>
where
    L: GrantLedger,
{
    let key = role.record_key();
    for _ in 0..MAX_ROUNDS {
        let (mut grants, version) = ledger.role_grants(&key).await?.unwrap_or_default();
        let before = grants.clone();
        let answer = change(&mut grants)?;
        if grants == before
            || ledger
                .put_role_grants(&key, &grants, version.as_deref())
                .await?
                .is_some()
        {
            return Ok((grants, answer));
        }
    }
    Err(contended(role))
}

fn contended(role: &PackedRole) -> ReconcileError {
    Retry::RoleContended {
        role: role.role_name.clone(),
        rounds: MAX_ROUNDS,
    }
    .into()
}

/// Puts `agreement_id`'s `document` in the role record (`inline_room`: what [`inline_room`]
/// read); returns the record, the agreement's slot and the slots that changed.
pub async fn place<L: GrantLedger>(
    ledger: &L,
    role: &PackedRole,
    agreement_id: &str,
    document: &PolicyDocument,
    policies: usize,
    inline_room: usize,
) -> Result<(RoleGrants, (usize, Vec<usize>)), ReconcileError> {
    update(ledger, role, |grants| {
        grants.place(
            agreement_id,
            document,
            policies,
            inline_room,
            &role.role_name,
        )
    })
    .await
}

/// How many characters the inline slot may take on `role`: IAM's inline budget per role minus
/// the role's other inline policies (its owners', and grants of the one-inline-policy layout not
/// yet moved). Read before placing, so a grant goes inline only while it fits next to them.
pub async fn inline_room<I: RolePolicies>(iam: &I, role: &str) -> Result<usize, ReconcileError> {
    let used: usize = other_inline_sizes(iam, role, INLINE_POLICY_NAME)
        .await?
        .into_iter()
        .sum();
    Ok(ROLE_INLINE_POLICY_LIMIT.saturating_sub(used))
}

/// Takes `agreement_id` out of the role record; returns the record and the slot it was in.
pub async fn unplace<L: GrantLedger>(
    ledger: &L,
    role: &PackedRole,
    agreement_id: &str,
) -> Result<(RoleGrants, Option<usize>), ReconcileError> {
    update(ledger, role, |grants| Ok(grants.remove(agreement_id))).await
}

/// Makes the policy of `slot` match the record (`grants` as the caller wrote it): the inline
/// policy put or deleted; a managed policy created or given a new version and attached while the
/// slot holds grants, detached and deleted once it holds none; then, if the record moved on
/// meanwhile, again from the newer record.
///
/// When, before it writes anything, it finds the slot changed again since `grants`, it writes
/// nothing: that later change was written over this one (the conditional write saw to it), and
/// whoever made it converges the slot after it. Within one process the convergences of a slot
/// take turns ([`slot_turn`]), so the later ones find the policy written. A burst of agreements
/// on one role so costs a few writes, not one or more per agreement. Once it has written, it
/// converges to the end, since another writer may have finished before its write landed.
pub async fn converge_slot<I, L>(
    iam: &I,
    ledger: &L,
    role: &PackedRole,
    slot: usize,
    grants: RoleGrants,
    writes: &AtomicUsize,
) -> Result<(), ReconcileError>
where
    I: ManagedPolicies + RolePolicies + Sync,
    L: GrantLedger,
{
    let _turn = slot_turn(&role.record_key(), slot).await;
    let changes = |grants: &RoleGrants| grants.changes.get(&slot).copied().unwrap_or(0);
    let (now, now_version) = ledger
        .role_grants(&role.record_key())
        .await?
        .unwrap_or_default();
    if changes(&now) > changes(&grants) {
        return Ok(());
    }
    let (mut grants, mut version) = (now, now_version);
    for _ in 0..MAX_ROUNDS {
        let wanted = grants.slot_document(slot);
        let wrote = match slot {
            INLINE_SLOT => write_inline_slot(iam, role, wanted, writes).await?,
            _ => write_slot(iam, role, slot, wanted, writes).await?,
        };
        if !wrote {
            return Ok(());
        }
        let (now, now_version) = ledger
            .role_grants(&role.record_key())
            .await?
            .unwrap_or_default();
        if now_version == version {
            return Ok(());
        }
        (grants, version) = (now, now_version);
    }
    Err(contended(role))
}

/// Waits for this process's turn at one role's slot. The agreements of one batch run
/// concurrently, and those on one role would each write the policy; one at a time, the first
/// writes what the record holds by then and the others find it written. Instances in other
/// processes are kept right by the record (see [`converge_slot`]); this only saves writes.
async fn slot_turn(record_key: &str, slot: usize) -> tokio::sync::OwnedMutexGuard<()> {
    type Turns = HashMap<(String, usize), Arc<tokio::sync::Mutex<()>>>;
    static TURNS: LazyLock<Mutex<Turns>> = LazyLock::new(Mutex::default);
    let turn = {
        let mut turns = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        // Slots nobody waits for are forgotten, so the map stays as small as the work in flight.
        turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        turns
            .entry((record_key.to_owned(), slot))
            .or_default()
            .clone()
    };
    turn.lock_owned().await
}

/// Makes `document` the policy's default version, making room first: IAM keeps five versions,
/// so the oldest other one goes. Instances writing the same policy at once can each make room
/// for one and then find none (`LimitExceeded`): that is contention, not a refusal, and is
/// retried from a fresh read, then left to the message's retry. Returns the writes made.
async fn new_version<I: ManagedPolicies + Sync>(
    iam: &I,
    role: &PackedRole,
    arn: &str,
    mut policy: ManagedPolicy,
    document: &PolicyDocument,
) -> Result<usize, ReconcileError> {
    let mut count = 0;
    for _ in 0..MAX_ROUNDS {
        if policy.other_versions.len() + 1 >= MAX_POLICY_VERSIONS
            && let Some(oldest) = policy.other_versions.first()
        {
            iam.delete_policy_version(arn, oldest).await?;
            count += 1;
        }
        match iam.create_policy_version(arn, &document.to_json()).await {
            Ok(()) => return Ok(count + 1),
            Err(IamError::Refused { reason, .. }) if reason.starts_with("LimitExceeded") => {
                match iam.managed_policy(arn).await? {
                    Some(fresh) => policy = fresh,
                    None => return Err(contended(role)),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(contended(role))
}

/// One pass of [`converge_slot`] for the inline slot; returns whether it wrote.
async fn write_inline_slot<I: RolePolicies + Sync>(
    iam: &I,
    role: &PackedRole,
    wanted: Option<PolicyDocument>,
    writes: &AtomicUsize,
) -> Result<bool, ReconcileError> {
    let current = iam.policy(&role.role_name, INLINE_POLICY_NAME).await?;
    let wrote = match (wanted, current) {
        (Some(document), current) => {
            let same = current
                .and_then(|raw| PolicyDocument::from_iam(&raw).ok())
                .is_some_and(|d| d == document);
            if !same {
                iam.put_policy(&role.role_name, INLINE_POLICY_NAME, &document.to_json())
                    .await?;
            }
            !same
        }
        (None, Some(_)) => {
            iam.delete_policy(&role.role_name, INLINE_POLICY_NAME)
                .await?;
            true
        }
        (None, None) => false,
    };
    if wrote {
        writes.fetch_add(1, Ordering::SeqCst);
    }
    Ok(wrote)
}

/// One pass of [`converge_slot`] for a managed slot; returns whether it wrote.
async fn write_slot<I: ManagedPolicies + Sync>(
    iam: &I,
    role: &PackedRole,
    slot: usize,
    wanted: Option<PolicyDocument>,
    writes: &AtomicUsize,
) -> Result<bool, ReconcileError> {
    let arn = role.policy_arn(slot);
    let wrote = |n: usize| writes.fetch_add(n, Ordering::SeqCst);
    let current = iam.managed_policy(&arn).await?;
    if let Some(policy) = current.as_ref().filter(|p| !p.is_managed()) {
        return Err(Permanent::ForeignManagedPolicy {
            policy: policy.arn.clone(),
            role: role.role_name.clone(),
        }
        .into());
    }
    let attached = iam.attached_policies(&role.role_name).await?.contains(&arn);
    let mut count = 0;
    let current = match (&wanted, current) {
        (Some(document), None) => {
            let tags = [(MANAGED_BY_TAG, MANAGED_BY_VALUE)];
            let created = iam
                .create_managed_policy(
                    &role.policy_name(slot),
                    PACKED_POLICY_PATH,
                    &document.to_json(),
                    &tags,
                )
                .await;
            match created {
                Ok(_) => {
                    count += 1;
                    None
                }
                // Another agreement's convergence created it first: go on from what it wrote.
                Err(e) => match iam.managed_policy(&arn).await? {
                    Some(policy) if policy.is_managed() => Some(policy),
                    _ => return Err(e.into()),
                },
            }
        }
        (_, current) => current,
    };
    match (wanted, current) {
        (Some(_), None) => {
            if !attached {
                iam.attach_policy(&role.role_name, &arn).await?;
                count += 1;
            }
        }
        (Some(document), Some(policy)) => {
            let same = PolicyDocument::from_iam(&policy.document).is_ok_and(|d| d == document);
            if !same {
                count += new_version(iam, role, &arn, policy, &document).await?;
            }
            if !attached {
                iam.attach_policy(&role.role_name, &arn).await?;
                count += 1;
            }
        }
        (None, Some(policy)) => {
            if attached {
                iam.detach_policy(&role.role_name, &arn).await?;
                count += 1;
            }
            for version in &policy.other_versions {
                iam.delete_policy_version(&arn, version).await?;
                count += 1;
            }
            iam.delete_managed_policy(&arn).await?;
            count += 1;
        }
        (None, None) => {}
    }
    wrote(count);
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{ACCOUNT, FakeIam, FakeLedger};
    use crate::policy::Statement;

    /// A role whose inline budget its other inline policies use up: only managed slots.
    const NO_ROOM: usize = 0;

    fn folder(name: &str) -> PolicyDocument {
        PolicyDocument::new(vec![Statement::allow(
            "Read",
            &["s3:GetObject"],
            [format!("arn:aws:s3:::lake/{name}/*")],
        )])
    }

    fn role() -> PackedRole {
        PackedRole::new("consumer", &format!("arn:aws:iam::{ACCOUNT}:role/consumer")).unwrap()
    }

    async fn grant(iam: &FakeIam, ledger: &FakeLedger, id: &str, doc: &PolicyDocument) -> usize {
        grant_with_room(iam, ledger, id, doc, NO_ROOM).await
    }

    async fn grant_with_room(
        iam: &FakeIam,
        ledger: &FakeLedger,
        id: &str,
        doc: &PolicyDocument,
        room: usize,
    ) -> usize {
        let writes = AtomicUsize::new(0);
        let (grants, (_, slots)) = place(ledger, &role(), id, doc, 3, room).await.unwrap();
        for slot in slots {
            converge_slot(iam, ledger, &role(), slot, grants.clone(), &writes)
                .await
                .unwrap();
        }
        writes.load(Ordering::SeqCst)
    }

    async fn revoke(iam: &FakeIam, ledger: &FakeLedger, id: &str) -> usize {
        let writes = AtomicUsize::new(0);
        let (grants, slot) = unplace(ledger, &role(), id).await.unwrap();
        if let Some(slot) = slot {
            converge_slot(iam, ledger, &role(), slot, grants, &writes)
                .await
                .unwrap();
        }
        writes.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn agreements_share_one_policy_and_each_change_rewrites_it_once() {
        let (iam, ledger) = (
            FakeIam::default().with_role("consumer", &[]),
            FakeLedger::default(),
        );
        assert_eq!(
            grant(&iam, &ledger, "a1", &folder("orders")).await,
            2,
            "create + attach"
        );
        assert_eq!(
            grant(&iam, &ledger, "a2", &folder("returns")).await,
            1,
            "a new version"
        );
        assert_eq!(
            grant(&iam, &ledger, "a2", &folder("returns")).await,
            0,
            "a replay"
        );
        let arn = role().policy_arn(1);
        assert_eq!(iam.attached("consumer"), std::slice::from_ref(&arn));
        let document = iam.managed_document(&arn).unwrap();
        assert!(
            document.contains("lake/orders/*") && document.contains("lake/returns/*"),
            "{document}"
        );
        assert_eq!(revoke(&iam, &ledger, "a1").await, 1);
        assert!(!iam.managed_document(&arn).unwrap().contains("orders"));
        revoke(&iam, &ledger, "a2").await;
        assert_eq!(
            iam.managed_document(&arn),
            None,
            "the empty policy is deleted"
        );
        assert!(iam.attached("consumer").is_empty());
    }

    #[tokio::test]
    async fn the_inline_budget_is_used_first_at_one_write_a_change_then_managed_policies() {
        let (iam, ledger) = (
            FakeIam::default().with_role("consumer", &[]),
            FakeLedger::default(),
        );
        let room = packed_size([&folder("orders"), &folder("returns")]);
        for (id, name) in [("a1", "orders"), ("a2", "returns")] {
            assert_eq!(
                grant_with_room(&iam, &ledger, id, &folder(name), room).await,
                1,
                "{id}: one PutRolePolicy"
            );
        }
        let inline = &iam.policies("consumer")[INLINE_POLICY_NAME];
        assert!(
            inline.to_string().contains("lake/orders/*")
                && inline.to_string().contains("lake/returns/*"),
            "{inline}"
        );
        assert_eq!(
            grant_with_room(&iam, &ledger, "a3", &folder("refunds"), room).await,
            2,
            "the inline slot is full: create + attach"
        );
        assert!(
            iam.managed_document(&role().policy_arn(1))
                .unwrap()
                .contains("refunds")
        );

        // The role's owners took inline room meanwhile: a1 moves out of the inline slot when
        // it next converges, written into its new slot before it leaves the old one.
        let writes = AtomicUsize::new(0);
        let (grants, (slot, changed)) =
            place(&ledger, &role(), "a1", &folder("orders-v2"), 3, NO_ROOM)
                .await
                .unwrap();
        assert_eq!((slot, changed.clone()), (1, vec![1, INLINE_SLOT]));
        for slot in changed {
            converge_slot(&iam, &ledger, &role(), slot, grants.clone(), &writes)
                .await
                .unwrap();
        }
        let inline = iam.policies("consumer")[INLINE_POLICY_NAME].to_string();
        assert!(
            !inline.contains("orders") && inline.contains("returns"),
            "{inline}"
        );
        assert_eq!(revoke(&iam, &ledger, "a2").await, 1, "DeleteRolePolicy");
        assert!(iam.policies("consumer").is_empty());
    }

    #[tokio::test]
    async fn a_full_policy_overflows_into_the_next_and_the_last_refuses_with_the_limit() {
        let ledger = FakeLedger::default();
        let big = |n: usize| {
            PolicyDocument::new(vec![Statement::allow(
                "Read",
                &["s3:GetObject"],
                (0..60).map(|i| format!("arn:aws:s3:::lake-{n}/part-{i:03}/*")),
            )])
        };
        let mut placed = 0;
        let refusal = loop {
            match place(
                &ledger,
                &role(),
                &format!("a{placed}"),
                &big(placed),
                3,
                NO_ROOM,
            )
            .await
            {
                Ok(_) => placed += 1,
                Err(e) => break e,
            }
        };
        assert!(placed >= 6, "{placed}");
        assert!(
            matches!(
                refusal,
                ReconcileError::Permanent(Permanent::RoleFull { policies: 3, .. })
            ),
            "{refusal:?}"
        );
        let (grants, _) = ledger
            .role_grants(&role().record_key())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grants.slots.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        for slot in 1..=3 {
            assert!(grants.slot_document(slot).unwrap().size() <= MANAGED_POLICY_LIMIT);
        }
    }

    #[tokio::test]
    async fn a_write_that_lost_to_another_is_redone_from_a_fresh_read() {
        let ledger = FakeLedger::default();
        // Another instance places `a2` between this one's read and its write.
        let other = ledger.clone();
        ledger.before_next_role_write(move || {
            let mut grants = RoleGrants::default();
            grants
                .place("a2", &folder("returns"), 3, NO_ROOM, "consumer")
                .unwrap();
            other.replace_role_grants(&role().record_key(), &grants);
        });
        let (grants, _) = place(&ledger, &role(), "a1", &folder("orders"), 3, NO_ROOM)
            .await
            .unwrap();
        assert_eq!(
            grants.slots[&1].keys().collect::<Vec<_>>(),
            ["a1", "a2"],
            "neither is lost"
        );
    }

    /// Another instance writes the role record before every write of this one.
    fn keep_overtaking(ledger: &FakeLedger) {
        let other = ledger.clone();
        ledger.before_next_role_write(move || {
            other.replace_role_grants(&role().record_key(), &RoleGrants::default());
            keep_overtaking(&other);
        });
    }

    #[tokio::test]
    async fn a_role_record_that_keeps_changing_is_retried_later_not_refused() {
        let ledger = FakeLedger::default();
        keep_overtaking(&ledger);
        let error = place(&ledger, &role(), "a1", &folder("orders"), 3, NO_ROOM)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                ReconcileError::Retry(Retry::RoleContended { role, rounds: MAX_ROUNDS })
                    if role == "consumer"
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_convergence_overtaken_by_a_later_change_of_its_slot_leaves_the_write_to_it() {
        let (iam, ledger) = (
            FakeIam::default().with_role("consumer", &[]),
            FakeLedger::default(),
        );
        let writes = AtomicUsize::new(0);
        let (first, _) = place(&ledger, &role(), "a1", &folder("orders"), 3, NO_ROOM)
            .await
            .unwrap();
        let (second, _) = place(&ledger, &role(), "a2", &folder("returns"), 3, NO_ROOM)
            .await
            .unwrap();
        converge_slot(&iam, &ledger, &role(), 1, first, &writes)
            .await
            .unwrap();
        assert_eq!(
            writes.load(Ordering::SeqCst),
            0,
            "a1's change was overtaken"
        );
        converge_slot(&iam, &ledger, &role(), 1, second, &writes)
            .await
            .unwrap();
        let document = iam.managed_document(&role().policy_arn(1)).unwrap();
        assert!(
            document.contains("orders") && document.contains("returns"),
            "{document}"
        );
        assert_eq!(writes.load(Ordering::SeqCst), 2, "create and attach, once");
    }

    #[test]
    fn a_record_can_only_grant_the_catalogues_reads_and_access_roles() {
        let mut grants = RoleGrants::default();
        grants
            .place("a1", &folder("orders"), 3, NO_ROOM, "consumer")
            .unwrap();
        let admin = PolicyDocument::new(vec![Statement::allow("All", &["iam:*"], ["*"])]);
        grants
            .slots
            .get_mut(&1)
            .unwrap()
            .insert("tampered".into(), admin.to_json());
        let assume = |sid: &str, role: &str| {
            PolicyDocument::new(vec![Statement::allow(
                sid,
                &["sts:AssumeRole"],
                [format!("arn:aws:iam::333333333333:role/{role}")],
            )])
            .to_json()
        };
        let slot = grants.slots.get_mut(&1).unwrap();
        slot.insert("a2".into(), assume("Access", "dmm/dmm-access-a2"));
        slot.insert("chained".into(), assume("Admin", "admin"));
        let json = grants.slot_document(1).unwrap().to_json();
        assert!(
            json.contains("lake/orders/*")
                && json.contains("role/dmm/dmm-access-a2")
                && !json.contains("iam:*")
                && !json.contains("role/admin"),
            "{json}"
        );
    }

    #[test]
    fn layouts_parse_with_their_limits() {
        assert_eq!(Layout::parse("inline", 5), Ok(Layout::Inline));
        assert_eq!(
            Layout::parse("packed", 10),
            Ok(Layout::Packed { policies: 10 })
        );
        assert!(Layout::parse("packed", 21).unwrap_err().contains("1 to 20"));
        assert!(Layout::parse("tight", 5).is_err());
    }
}
