//! In-memory implementations of the domain's traits, for unit tests without moto or the
//! simulator: IAM of one account, the grant ledger, DMM's directory of documents, the agreement's
//! status in DMM, the feed, checkpoint and queue of the poll loop, the clock and the source of
//! external ids. Each keeps what was written and counts the writes (a [`Journal`] keeps their
//! order across fakes), so a test can assert the exact end state, the order of writes, and that a
//! replay writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::clock::Clock;
use crate::dmm::{Agreement, AgreementApi, DataProduct, DmmError, FeedEvent, Team};
use crate::feed::poll::{Checkpoint, CheckpointError, CheckpointStore, EventSource};
use crate::queue::{EventQueue, QueueError, QueueMessage, RejectedEntry};
use crate::reconcile::converge::AccountIam;
use crate::reconcile::cross_account::ExternalIds;
use crate::reconcile::directory::Directory;
use crate::reconcile::iam::{AccessRoleInfo, AccessRoles};
use crate::reconcile::iam::{IamError, RoleInfo, RolePolicies};
use crate::reconcile::lake_formation::{LakeFormationError, LfResource, TablePermissions};
use crate::reconcile::ledger::{GrantLedger, LedgerEntry, LedgerError};
use crate::reconcile::ownership::{ResourceTags, TagError, TagSource, Tags};
use crate::reconcile::packed::{ManagedPolicies, ManagedPolicy, RoleGrants};
use crate::reconcile::report::{StatusApi, Written};
use crate::reconcile::{Permanent, ReconcileError};

/// The account the fakes live in.
pub const ACCOUNT: &str = "123456789012";
/// A second account [`FakeIam::managing`] can reach.
pub const OTHER_ACCOUNT: &str = "222222222222";

/// The writes of several fakes in the order they happened (`ledger put a1`, `iam put
/// consumer/DMM_…`), for tests of write ordering. Cloning shares it.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    /// Everything written so far, and forgets it.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A clock that moves `step` forward each time it is read, from the moment it was made; a sleep
/// moves it forward at once by the time slept.
#[derive(Debug)]
pub struct SteppingClock {
    pub start: Instant,
    step: Duration,
    reads: AtomicUsize,
    slept: Mutex<Duration>,
}

impl SteppingClock {
    pub fn new(step: Duration) -> Self {
        Self {
            start: Instant::now(),
            step,
            reads: AtomicUsize::new(0),
            slept: Mutex::new(Duration::ZERO),
        }
    }

    /// The time slept so far.
    pub fn slept(&self) -> Duration {
        *self.slept.lock().unwrap()
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> Instant {
        let reads = self.reads.fetch_add(1, Ordering::SeqCst) as u32;
        self.start + self.step * reads + self.slept()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        *self.slept.lock().unwrap() += duration;
        Box::pin(std::future::ready(()))
    }
}

/// External ids known in advance: `ext-1`, `ext-2`, …
#[derive(Default)]
pub struct CountingExternalIds(AtomicUsize);

impl ExternalIds for CountingExternalIds {
    fn new_external_id(&self) -> String {
        format!("ext-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

/// (version id, document) or (tag key, value).
type Pair = (String, String);

#[derive(Default)]
struct IamState {
    /// Role name → the role and its inline policies (name → document as written).
    roles: BTreeMap<String, (RoleInfo, BTreeMap<String, String>)>,
    /// Access roles are also in `roles`, which holds their inline policies, as in IAM.
    access_roles: BTreeMap<String, AccessRoleInfo>,
    /// Managed policy ARN → its versions (id, document; the last is the default) and tags.
    managed: BTreeMap<String, (Vec<Pair>, Vec<Pair>)>,
    /// Role name → the ARNs of its attached managed policies.
    attached: BTreeMap<String, Vec<String>>,
    /// Version ids handed out so far.
    versions: usize,
}

/// The IAM of the integration's own account. Cloning shares the state, as every
/// [`AccountIam::iam`] call of one agreement sees the same account.
#[derive(Clone, Default)]
pub struct FakeIam {
    state: Arc<Mutex<IamState>>,
    writes: Arc<AtomicUsize>,
    journal: Journal,
    /// Another account reached through the same state (a managed account).
    managed: Option<&'static str>,
    /// The next policy put fails, as a throttled IAM would.
    fail_next_put: Arc<std::sync::atomic::AtomicBool>,
    /// The account's Lake Formation permissions.
    pub lake_formation: FakeLakeFormation,
}

impl FakeIam {
    pub fn journal(mut self, journal: &Journal) -> Self {
        self.journal = journal.clone();
        self.lake_formation = self.lake_formation.journal(journal);
        self
    }

    /// Also answers for `account`, with the same roles (role names do not collide in tests).
    pub fn managing(mut self, account: &'static str) -> Self {
        self.managed = Some(account);
        self
    }

    pub fn fail_next_put(&self) {
        self.fail_next_put.store(true, Ordering::SeqCst);
    }

    /// The access role named `name`, if there is one.
    pub fn access_role_info(&self, name: &str) -> Option<AccessRoleInfo> {
        self.lock().access_roles.get(name).cloned()
    }

    pub fn with_role(self, name: &str, tags: &[(&str, &str)]) -> Self {
        self.create_role(name, tags);
        self
    }

    /// Creates `role` (again), at path `/`.
    pub fn create_role(&self, role: &str, tags: &[(&str, &str)]) {
        let info = RoleInfo {
            name: role.to_owned(),
            arn: format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
            path: "/".to_owned(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.lock()
            .roles
            .insert(role.to_owned(), (info, BTreeMap::new()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IamState> {
        self.state.lock().unwrap()
    }

    /// Deletes `role` as an administrator would: its inline policies, its attachments, the role.
    pub fn delete_role(&self, role: &str) {
        let mut state = self.lock();
        state.roles.remove(role);
        state.attached.remove(role);
    }

    /// The inline policies of `role`, parsed.
    pub fn policies(&self, role: &str) -> BTreeMap<String, Value> {
        self.lock()
            .roles
            .get(role)
            .map(|(_, policies)| {
                policies
                    .iter()
                    .map(|(name, doc)| (name.clone(), serde_json::from_str(doc).unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    fn wrote(&self, what: String) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.journal.push(format!("iam {what}"));
    }

    fn no_role(role: &str) -> IamError {
        IamError::Refused {
            action: "iam:PutRolePolicy",
            role: role.to_owned(),
            reason: "NoSuchEntity: the role does not exist".to_owned(),
        }
    }
}

impl RolePolicies for FakeIam {
    async fn role(&self, name: &str) -> Result<Option<RoleInfo>, IamError> {
        Ok(self.lock().roles.get(name).map(|(info, _)| info.clone()))
    }

    async fn policy_names(&self, role: &str) -> Result<Vec<String>, IamError> {
        Ok(self
            .lock()
            .roles
            .get(role)
            .map(|(_, policies)| policies.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn policy(&self, role: &str, name: &str) -> Result<Option<String>, IamError> {
        // As IAM returns it: URL-encoded.
        Ok(self
            .lock()
            .roles
            .get(role)
            .and_then(|(_, policies)| policies.get(name))
            .map(|doc| {
                percent_encoding::utf8_percent_encode(doc, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            }))
    }

    async fn put_policy(&self, role: &str, name: &str, document: &str) -> Result<(), IamError> {
        let mut state = self.lock();
        let (_, policies) = state
            .roles
            .get_mut(role)
            .ok_or_else(|| Self::no_role(role))?;
        if self.fail_next_put.swap(false, Ordering::SeqCst) {
            return Err(IamError::Unavailable {
                action: "iam:PutRolePolicy",
                role: role.to_owned(),
                reason: "Throttling: rate exceeded".to_owned(),
            });
        }
        policies.insert(name.to_owned(), document.to_owned());
        drop(state);
        self.wrote(format!("put {role}/{name}"));
        Ok(())
    }

    async fn delete_policy(&self, role: &str, name: &str) -> Result<(), IamError> {
        let removed = self
            .lock()
            .roles
            .get_mut(role)
            .and_then(|(_, policies)| policies.remove(name));
        if removed.is_some() {
            self.wrote(format!("delete {role}/{name}"));
        }
        Ok(())
    }
}

impl AccessRoles for FakeIam {
    async fn access_role(&self, name: &str) -> Result<Option<AccessRoleInfo>, IamError> {
        Ok(self.lock().access_roles.get(name).cloned())
    }

    async fn create_access_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        tags: &[(&str, &str)],
        boundary: &str,
    ) -> Result<String, IamError> {
        let account = self.managed.unwrap_or(ACCOUNT);
        let arn = format!("arn:aws:iam::{account}:role{path}{name}");
        let info = AccessRoleInfo {
            name: name.to_owned(),
            arn: arn.clone(),
            path: path.to_owned(),
            trust_policy: trust_policy.to_owned(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            permissions_boundary: Some(boundary.to_owned()),
        };
        let role = RoleInfo {
            name: name.to_owned(),
            arn: arn.clone(),
            path: path.to_owned(),
            tags: info.tags.iter().cloned().collect(),
        };
        let mut state = self.lock();
        state.access_roles.insert(name.to_owned(), info);
        state.roles.insert(name.to_owned(), (role, BTreeMap::new()));
        drop(state);
        self.wrote(format!("create role {name}"));
        Ok(arn)
    }

    async fn put_boundary(&self, name: &str, boundary: &str) -> Result<(), IamError> {
        if let Some(role) = self.lock().access_roles.get_mut(name) {
            role.permissions_boundary = Some(boundary.to_owned());
        }
        self.wrote(format!("put boundary {name}"));
        Ok(())
    }

    async fn update_trust_policy(&self, name: &str, trust_policy: &str) -> Result<(), IamError> {
        if let Some(role) = self.lock().access_roles.get_mut(name) {
            role.trust_policy = trust_policy.to_owned();
        }
        self.wrote(format!("update trust {name}"));
        Ok(())
    }

    async fn delete_access_role(&self, name: &str) -> Result<(), IamError> {
        let mut state = self.lock();
        let removed = state.access_roles.remove(name).is_some();
        state.roles.remove(name);
        drop(state);
        if removed {
            self.wrote(format!("delete role {name}"));
        }
        Ok(())
    }
}

impl FakeIam {
    /// The ARNs attached to `role`.
    pub fn attached(&self, role: &str) -> Vec<String> {
        self.lock().attached.get(role).cloned().unwrap_or_default()
    }

    /// The default version's document of the managed policy `arn`.
    pub fn managed_document(&self, arn: &str) -> Option<String> {
        self.lock()
            .managed
            .get(arn)
            .and_then(|(versions, _)| versions.last())
            .map(|(_, doc)| doc.clone())
    }

    fn next_version(state: &mut IamState) -> String {
        state.versions += 1;
        format!("v{}", state.versions)
    }
}

impl ManagedPolicies for FakeIam {
    async fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, IamError> {
        Ok(self.lock().managed.get(arn).map(|(versions, tags)| {
            let (_, document) = versions.last().cloned().unwrap_or_default();
            ManagedPolicy {
                arn: arn.to_owned(),
                document,
                other_versions: versions[..versions.len().saturating_sub(1)]
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect(),
                tags: tags.clone(),
            }
        }))
    }

    async fn create_managed_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        tags: &[(&str, &str)],
    ) -> Result<String, IamError> {
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy{path}{name}");
        let mut state = self.lock();
        let version = Self::next_version(&mut state);
        let tags = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        state
            .managed
            .insert(arn.clone(), (vec![(version, document.to_owned())], tags));
        drop(state);
        self.wrote(format!("create policy {name}"));
        Ok(arn)
    }

    async fn create_policy_version(&self, arn: &str, document: &str) -> Result<(), IamError> {
        let mut state = self.lock();
        let version = Self::next_version(&mut state);
        let (versions, _) = state
            .managed
            .get_mut(arn)
            .ok_or_else(|| IamError::Refused {
                action: "CreatePolicyVersion",
                role: arn.to_owned(),
                reason: "NoSuchEntity".to_owned(),
            })?;
        if versions.len() >= 5 {
            return Err(IamError::Refused {
                action: "CreatePolicyVersion",
                role: arn.to_owned(),
                reason: "LimitExceeded: five versions".to_owned(),
            });
        }
        versions.push((version, document.to_owned()));
        drop(state);
        self.wrote(format!("version {}", short_policy(arn)));
        Ok(())
    }

    async fn delete_policy_version(&self, arn: &str, version: &str) -> Result<(), IamError> {
        if let Some((versions, _)) = self.lock().managed.get_mut(arn) {
            versions.retain(|(id, _)| id != version);
        }
        self.wrote(format!("delete version {}", short_policy(arn)));
        Ok(())
    }

    async fn delete_managed_policy(&self, arn: &str) -> Result<(), IamError> {
        self.lock().managed.remove(arn);
        self.wrote(format!("delete policy {}", short_policy(arn)));
        Ok(())
    }

    async fn attached_policies(&self, role: &str) -> Result<Vec<String>, IamError> {
        Ok(self.attached(role))
    }

    async fn attach_policy(&self, role: &str, arn: &str) -> Result<(), IamError> {
        let mut state = self.lock();
        let attached = state.attached.entry(role.to_owned()).or_default();
        if !attached.iter().any(|a| a == arn) {
            attached.push(arn.to_owned());
        }
        drop(state);
        self.wrote(format!("attach {} to {role}", short_policy(arn)));
        Ok(())
    }

    async fn detach_policy(&self, role: &str, arn: &str) -> Result<(), IamError> {
        if let Some(attached) = self.lock().attached.get_mut(role) {
            attached.retain(|a| a != arn);
        }
        self.wrote(format!("detach {} from {role}", short_policy(arn)));
        Ok(())
    }
}

/// The policy name of a managed policy ARN, for the journal.
fn short_policy(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl TablePermissions for FakeIam {
    async fn permissions(
        &self,
        principal: &str,
        resource: LfResource<'_>,
    ) -> Result<BTreeSet<String>, LakeFormationError> {
        self.lake_formation.permissions(principal, resource).await
    }

    async fn grant(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        self.lake_formation
            .grant(principal, resource, permissions)
            .await
    }

    async fn revoke(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        self.lake_formation
            .revoke(principal, resource, permissions)
            .await
    }
}

/// [`ACCOUNT`], and the account it is [`FakeIam::managing`]; another account is a refusal, as an
/// unmanaged account would be.
impl AccountIam for FakeIam {
    type Iam = FakeIam;

    async fn iam(&self, account: Option<&str>) -> Result<FakeIam, ReconcileError> {
        match account {
            None | Some(ACCOUNT) => Ok(self.clone()),
            Some(other) if Some(other) == self.managed => Ok(self.clone()),
            Some(other) => Err(Permanent::UnmanagedAccount {
                role: "(fake)".to_owned(),
                account: other.to_owned(),
            }
            .into()),
        }
    }

    fn own_account(&self) -> Option<&str> {
        Some(ACCOUNT)
    }
}

/// The grant ledger in memory. Cloning shares the state, as every Lambda instance sees the
/// same bucket.
#[derive(Clone, Default)]
pub struct FakeLedger {
    entries: Arc<Mutex<BTreeMap<String, LedgerEntry>>>,
    holders: Arc<Mutex<BTreeSet<String>>>,
    /// Role records and their versions (a counter, like an ETag that changes on every write).
    roles: Arc<Mutex<BTreeMap<String, (RoleGrants, u64)>>>,
    /// Runs once, just before the next role record write (a concurrent instance).
    before_next_role_write: Arc<Mutex<Option<BeforeRevoke>>>,
    journal: Journal,
}

impl FakeLedger {
    pub fn journal(mut self, journal: &Journal) -> Self {
        self.journal = journal.clone();
        self
    }

    pub fn entry(&self, agreement_id: &str) -> Option<LedgerEntry> {
        self.entries.lock().unwrap().get(agreement_id).cloned()
    }

    /// A holder marked behind the converger's back (another instance).
    pub fn insert_holder(&self, key: &str) {
        self.holders.lock().unwrap().insert(key.to_owned());
    }

    pub fn holder_keys(&self) -> Vec<String> {
        self.holders.lock().unwrap().iter().cloned().collect()
    }

    pub fn before_next_role_write(&self, act: impl FnOnce() + Send + 'static) {
        *self.before_next_role_write.lock().unwrap() = Some(Box::new(act));
    }

    /// Writes a role record unconditionally (another instance's write).
    pub fn replace_role_grants(&self, key: &str, grants: &RoleGrants) {
        let mut roles = self.roles.lock().unwrap();
        let version = roles.get(key).map_or(1, |(_, v)| v + 1);
        roles.insert(key.to_owned(), (grants.clone(), version));
    }
}

impl GrantLedger for FakeLedger {
    async fn get(&self, agreement_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        Ok(self.entry(agreement_id))
    }

    async fn put(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let mut grants: Vec<String> = entry
            .grants
            .iter()
            .map(|g| match &g.table {
                Some(t) => format!("{}/lake-formation {}.{}", g.role_name, t.database, t.table),
                None => format!("{}/{}", g.role_name, g.policy_name),
            })
            .collect();
        grants.sort();
        self.journal.push(format!(
            "ledger put {} [{}]",
            entry.agreement_id,
            grants.join(", ")
        ));
        self.entries
            .lock()
            .unwrap()
            .insert(entry.agreement_id.clone(), entry.clone());
        Ok(())
    }

    async fn delete(&self, agreement_id: &str) -> Result<(), LedgerError> {
        self.journal.push(format!("ledger delete {agreement_id}"));
        self.entries.lock().unwrap().remove(agreement_id);
        Ok(())
    }

    async fn hold(&self, key: &str) -> Result<(), LedgerError> {
        if self.holders.lock().unwrap().insert(key.to_owned()) {
            self.journal
                .push(format!("ledger hold {}", short_holder(key)));
        }
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), LedgerError> {
        if self.holders.lock().unwrap().remove(key) {
            self.journal
                .push(format!("ledger release {}", short_holder(key)));
        }
        Ok(())
    }

    async fn role_grants(
        &self,
        key: &str,
    ) -> Result<Option<(RoleGrants, Option<String>)>, LedgerError> {
        Ok(self
            .roles
            .lock()
            .unwrap()
            .get(key)
            .map(|(grants, version)| (grants.clone(), Some(version.to_string()))))
    }

    async fn put_role_grants(
        &self,
        key: &str,
        grants: &RoleGrants,
        expected: Option<&str>,
    ) -> Result<Option<String>, LedgerError> {
        let act = self.before_next_role_write.lock().unwrap().take();
        if let Some(act) = act {
            act();
        }
        let mut roles = self.roles.lock().unwrap();
        let current = roles.get(key).map(|(_, v)| v.to_string());
        if current.as_deref() != expected {
            return Ok(None);
        }
        let version = roles.get(key).map_or(1, |(_, v)| v + 1);
        roles.insert(key.to_owned(), (grants.clone(), version));
        self.journal.push(format!("ledger role {key}"));
        Ok(Some(version.to_string()))
    }

    async fn holders(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        Ok(self
            .holders
            .lock()
            .unwrap()
            .iter()
            .filter_map(|k| k.strip_prefix(prefix).map(str::to_owned))
            .collect())
    }
}

/// `<database>/<table>/<holder>` of a holder key, for the journal.
fn short_holder(key: &str) -> String {
    let parts: Vec<&str> = key.rsplitn(4, '/').collect();
    parts[..3.min(parts.len())]
        .iter()
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// Lake Formation's permissions in memory. Cloning shares the state.
#[derive(Clone, Default)]
pub struct FakeLakeFormation {
    grants: Arc<Mutex<LfGrants>>,
    /// Runs once, just before the next revocation lands (a concurrent instance).
    before_next_revoke: Arc<Mutex<Option<BeforeRevoke>>>,
    journal: Journal,
}

type BeforeRevoke = Box<dyn FnOnce() + Send>;
/// (principal, `database d` or `table d.t`) → permissions.
type LfGrants = BTreeMap<(String, String), BTreeSet<String>>;

impl FakeLakeFormation {
    pub fn journal(mut self, journal: &Journal) -> Self {
        self.journal = journal.clone();
        self
    }

    pub fn before_next_revoke(&self, act: impl FnOnce() + Send + 'static) {
        *self.before_next_revoke.lock().unwrap() = Some(Box::new(act));
    }

    /// `table d.t: DESCRIBE, SELECT` per resource `principal` holds anything on.
    pub fn held(&self, principal: &str) -> Vec<String> {
        self.grants
            .lock()
            .unwrap()
            .iter()
            .filter(|((p, _), perms)| p == principal && !perms.is_empty())
            .map(|((_, resource), perms)| {
                let perms: Vec<&str> = perms.iter().map(String::as_str).collect();
                format!("{resource}: {}", perms.join(", "))
            })
            .collect()
    }

    /// Removes a permission behind the converger's back (by hand, or another instance).
    pub fn remove(&self, principal: &str, resource: LfResource<'_>) {
        self.grants
            .lock()
            .unwrap()
            .remove(&(principal.to_owned(), Self::label(resource)));
    }

    fn label(resource: LfResource<'_>) -> String {
        match resource {
            LfResource::Database(t) => format!("database {}", t.database),
            LfResource::Table(t) => format!("table {}.{}", t.database, t.table),
        }
    }

    fn role_of(principal: &str) -> &str {
        principal.rsplit('/').next().unwrap_or(principal)
    }
}

impl TablePermissions for FakeLakeFormation {
    async fn permissions(
        &self,
        principal: &str,
        resource: LfResource<'_>,
    ) -> Result<BTreeSet<String>, LakeFormationError> {
        Ok(self
            .grants
            .lock()
            .unwrap()
            .get(&(principal.to_owned(), Self::label(resource)))
            .cloned()
            .unwrap_or_default())
    }

    async fn grant(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        let label = Self::label(resource);
        self.journal.push(format!(
            "lf grant {} {label} [{}]",
            Self::role_of(principal),
            permissions.join(", ")
        ));
        self.grants
            .lock()
            .unwrap()
            .entry((principal.to_owned(), label))
            .or_default()
            .extend(permissions.iter().map(|p| (*p).to_owned()));
        Ok(())
    }

    async fn revoke(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        let act = self.before_next_revoke.lock().unwrap().take();
        if let Some(act) = act {
            act();
        }
        let label = Self::label(resource);
        let mut grants = self.grants.lock().unwrap();
        let held = grants
            .entry((principal.to_owned(), label.clone()))
            .or_default();
        // As Lake Formation: revoking what is not held is refused.
        if !permissions.iter().all(|p| held.contains(*p)) {
            return Err(LakeFormationError::Refused {
                action: "RevokePermissions",
                resource: label,
                reason: "InvalidInputException: No permissions revoked".to_owned(),
            });
        }
        held.retain(|p| !permissions.contains(&p.as_str()));
        self.journal.push(format!(
            "lf revoke {} {label} [{}]",
            Self::role_of(principal),
            permissions.join(", ")
        ));
        Ok(())
    }
}

/// DMM's data products, teams and data contracts.
#[derive(Default)]
pub struct FakeDirectory {
    pub products: HashMap<String, Value>,
    pub teams: HashMap<String, Value>,
    pub contracts: HashMap<String, Value>,
}

impl Directory for FakeDirectory {
    async fn data_product(&self, id: &str) -> Result<Option<Arc<DataProduct>>, DmmError> {
        Ok(self
            .products
            .get(id)
            .map(|doc| Arc::new(DataProduct::from_value(doc.clone()).unwrap())))
    }

    async fn team(&self, id: &str) -> Result<Option<Arc<Team>>, DmmError> {
        Ok(self
            .teams
            .get(id)
            .map(|doc| Arc::new(Team::from_value(doc.clone()).unwrap())))
    }

    async fn data_contract(&self, id: &str) -> Result<Option<Arc<Value>>, DmmError> {
        Ok(self.contracts.get(id).cloned().map(Arc::new))
    }
}

/// No resource carries a tag: for scopes with `ownership_check = off`, which read none.
pub struct NoTags;

impl ResourceTags for NoTags {
    async fn tags(&self, _account: Option<&str>, _source: &TagSource) -> Result<Tags, TagError> {
        Ok(Tags::new())
    }
}

/// The agreement document and its provisioning record, with every call made.
pub struct FakeDmm {
    pub document: Mutex<Option<Value>>,
    /// `false` plays an older DMM without the provisioning API.
    pub provisioning_api: bool,
    calls: Mutex<Vec<String>>,
}

impl FakeDmm {
    pub fn new(document: Value, provisioning_api: bool) -> Self {
        Self {
            document: Mutex::new(Some(document)),
            provisioning_api,
            calls: Mutex::default(),
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The document now; panics once it was deleted.
    pub fn document(&self) -> Value {
        self.document.lock().unwrap().clone().unwrap()
    }

    pub fn set(&self, document: Option<Value>) {
        *self.document.lock().unwrap() = document;
    }

    fn call(&self, what: &str) {
        self.calls.lock().unwrap().push(what.to_owned());
    }
}

impl StatusApi for FakeDmm {
    async fn get_agreement(
        &self,
        _api: AgreementApi,
        _id: &str,
    ) -> Result<Option<Agreement>, DmmError> {
        self.call("get");
        let document = self.document.lock().unwrap().clone();
        Ok(document.map(|d| Agreement::from_value(d).unwrap()))
    }

    async fn put_agreement(
        &self,
        _api: AgreementApi,
        agreement: &Agreement,
    ) -> Result<(), DmmError> {
        self.call("put");
        // `provisioning` is read-only on the document: the stored record stays.
        let mut document = agreement.to_value();
        match self.document().get("provisioning") {
            Some(record) => document["provisioning"] = record.clone(),
            None => {
                if let Some(object) = document.as_object_mut() {
                    object.remove("provisioning");
                }
            }
        }
        self.set(Some(document));
        Ok(())
    }

    async fn put_provisioning(&self, _id: &str, report: &Value) -> Result<Written, DmmError> {
        self.call("put provisioning");
        if !self.provisioning_api {
            return Ok(Written::NotFound);
        }
        let Some(mut document) = self.document.lock().unwrap().clone() else {
            return Ok(Written::NotFound);
        };
        document["provisioning"] = report.clone();
        self.set(Some(document));
        Ok(Written::Yes)
    }
}

/// The DMM feed: pages of at most `page_size` events after a given id.
pub struct FakeFeed {
    events: Mutex<Vec<FeedEvent>>,
    /// Events that appear later, one group each time a page comes back empty (the feed caught
    /// up, then DMM wrote more).
    arriving: Mutex<std::collections::VecDeque<Vec<FeedEvent>>>,
    pub page_size: usize,
}

fn feed_events(events: &[(&str, &str, &str)], first_position: usize) -> Vec<FeedEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, (id, kind, agreement))| {
            let json = serde_json::json!({"id": id, "type": format!("com.datamesh-manager.events.{kind}"),
                                          "data": {"id": agreement}});
            FeedEvent::parse(RawValue::from_string(json.to_string()).unwrap(), first_position + i)
                .unwrap()
        })
        .collect()
}

impl FakeFeed {
    /// Events of `(id, short type, agreement id)`.
    pub fn new(events: &[(&str, &str, &str)], page_size: usize) -> Self {
        Self {
            events: Mutex::new(feed_events(events, 0)),
            arriving: Mutex::default(),
            page_size,
        }
    }

    /// Adds a group of events that appears after the feed was read to its end once more.
    pub fn later(self, events: &[(&str, &str, &str)]) -> Self {
        let position = self.events.lock().unwrap().len()
            + self
                .arriving
                .lock()
                .unwrap()
                .iter()
                .map(Vec::len)
                .sum::<usize>();
        self.arriving
            .lock()
            .unwrap()
            .push_back(feed_events(events, position));
        self
    }
}

impl EventSource for FakeFeed {
    async fn page(&self, after: Option<&str>) -> Result<Vec<FeedEvent>, DmmError> {
        let mut events = self.events.lock().unwrap();
        let start = match after {
            None => 0,
            Some(id) => events
                .iter()
                .rposition(|e| e.id() == id)
                .map_or(0, |p| p + 1),
        };
        let page: Vec<FeedEvent> = events
            .iter()
            .skip(start)
            .take(self.page_size)
            .cloned()
            .collect();
        if page.is_empty()
            && let Some(group) = self.arriving.lock().unwrap().pop_front()
        {
            events.extend(group);
        }
        Ok(page)
    }
}

/// The checkpoint object with its version; `conflict` plays another run writing it meanwhile.
#[derive(Default)]
pub struct FakeCheckpoint {
    pub stored: Mutex<Checkpoint>,
    pub saves: AtomicUsize,
    pub conflict: bool,
}

impl CheckpointStore for FakeCheckpoint {
    async fn load(&self) -> Result<Checkpoint, CheckpointError> {
        Ok(self.stored.lock().unwrap().clone())
    }

    async fn save(
        &self,
        previous: &Checkpoint,
        last_event_id: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut stored = self.stored.lock().unwrap();
        if self.conflict || stored.version != previous.version {
            return Err(CheckpointError::Conflict {
                key: "poll_feed/last_event_id".into(),
            });
        }
        let version = self.saves.fetch_add(1, Ordering::Relaxed) + 1;
        *stored = Checkpoint {
            last_event_id: Some(last_event_id.to_owned()),
            version: Some(version.to_string()),
        };
        Ok(stored.clone())
    }
}

/// The FIFO queue: keeps what it accepted; `reject` names deduplication ids SQS refuses as the
/// sender's fault every time.
#[derive(Default)]
pub struct FakeQueue {
    pub sent: Mutex<Vec<QueueMessage>>,
    pub reject: Vec<String>,
}

impl FakeQueue {
    pub fn deduplication_ids(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.deduplication_id.clone())
            .collect()
    }
}

impl EventQueue for FakeQueue {
    async fn send_batch(
        &self,
        messages: &[QueueMessage],
    ) -> Result<Vec<RejectedEntry>, QueueError> {
        let mut rejected = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            if self.reject.contains(&message.deduplication_id) {
                rejected.push(RejectedEntry {
                    index,
                    code: "InvalidMessageContents".into(),
                    message: "refused".into(),
                    sender_fault: true,
                });
            } else {
                self.sent.lock().unwrap().push(message.clone());
            }
        }
        Ok(rejected)
    }
}
