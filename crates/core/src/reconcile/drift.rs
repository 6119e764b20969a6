//! Drift, found without changing anything: the dry run of the drift sweep.
//!
//! The dry run converges every agreement with the same code as a real run, but through IAM and
//! ledger wrappers that read for real and record each write instead of making it. What a
//! convergence would write *is* the drift, so the report cannot disagree with what a repair
//! does: a policy deleted or edited by hand shows as the policy it would put back, a grant whose
//! agreement is gone as the policy it would delete.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::ReconcileError;
use super::converge::AccountIam;
use super::iam::{AccessRoleInfo, AccessRoles};
use super::iam::{IamError, RoleInfo, RolePolicies};
use super::lake_formation::{LakeFormationError, LfResource, TablePermissions};
use super::ledger::{GrantLedger, LedgerEntry, LedgerError};
use super::packed::{ManagedPolicies, ManagedPolicy, RoleGrants};

/// One write a convergence would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum Change {
    /// `existed`: the policy is there with another document (edited by hand); otherwise it is
    /// missing.
    PutPolicy {
        account: Option<String>,
        role: String,
        policy: String,
        existed: bool,
    },
    DeletePolicy {
        account: Option<String>,
        role: String,
        policy: String,
    },
    CreateAccessRole {
        account: Option<String>,
        role: String,
    },
    UpdateTrustPolicy {
        account: Option<String>,
        role: String,
    },
    /// The access role lacks the permissions boundary (made before boundaries existed, or the
    /// boundary was changed by hand).
    PutBoundary {
        account: Option<String>,
        role: String,
    },
    DeleteAccessRole {
        account: Option<String>,
        role: String,
    },
    /// A packed managed policy would be created (`existed`: false) or given a new version.
    PutManagedPolicy {
        account: Option<String>,
        policy: String,
        existed: bool,
    },
    AttachPolicy {
        account: Option<String>,
        role: String,
        policy: String,
    },
    DetachPolicy {
        account: Option<String>,
        role: String,
        policy: String,
    },
    DeleteManagedPolicy {
        account: Option<String>,
        policy: String,
    },
    /// Lake Formation permissions the consumer role (`principal`) lacks on `resource`.
    GrantTable {
        account: Option<String>,
        principal: String,
        resource: String,
        permissions: Vec<String>,
    },
    /// Lake Formation permissions no agreement holds any more.
    RevokeTable {
        account: Option<String>,
        principal: String,
        resource: String,
        permissions: Vec<String>,
    },
    /// The ledger would be rewritten: it misses a grant that is (or is about to be) in IAM, or
    /// still lists one that is gone.
    RecordGrants,
    /// The ledger entry would be deleted: nothing is granted any more.
    ForgetAgreement,
    /// The status in DMM would change (`from`: the integration's status tag now, if any).
    Status { from: Option<String>, to: String },
    /// The access provisioning record in DMM would change (`from`: its status now, if any).
    Provisioning { from: Option<String>, to: String },
}

fn on(account: &Option<String>) -> String {
    account
        .as_deref()
        .map(|a| format!(" in account {a}"))
        .unwrap_or_default()
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PutPolicy {
                account,
                role,
                policy,
                existed,
            } => {
                let why = if *existed { "edited" } else { "missing" };
                write!(f, "put {policy} on role {role}{} ({why})", on(account))
            }
            Self::DeletePolicy {
                account,
                role,
                policy,
            } => write!(f, "delete {policy} from role {role}{}", on(account)),
            Self::CreateAccessRole { account, role } => {
                write!(f, "create access role {role}{}", on(account))
            }
            Self::UpdateTrustPolicy { account, role } => {
                write!(f, "reset trust policy of {role}{}", on(account))
            }
            Self::PutBoundary { account, role } => {
                write!(f, "set the permissions boundary of {role}{}", on(account))
            }
            Self::DeleteAccessRole { account, role } => {
                write!(f, "delete access role {role}{}", on(account))
            }
            Self::PutManagedPolicy {
                account,
                policy,
                existed,
            } => {
                let what = if *existed { "new version of" } else { "create" };
                write!(f, "{what} managed policy {policy}{}", on(account))
            }
            Self::AttachPolicy {
                account,
                role,
                policy,
            } => write!(f, "attach {policy} to role {role}{}", on(account)),
            Self::DetachPolicy {
                account,
                role,
                policy,
            } => write!(f, "detach {policy} from role {role}{}", on(account)),
            Self::DeleteManagedPolicy { account, policy } => {
                write!(f, "delete managed policy {policy}{}", on(account))
            }
            Self::GrantTable {
                account,
                principal,
                resource,
                permissions,
            } => write!(
                f,
                "Lake Formation: grant {} on {resource} to {principal}{}",
                permissions.join(", "),
                on(account)
            ),
            Self::RevokeTable {
                account,
                principal,
                resource,
                permissions,
            } => write!(
                f,
                "Lake Formation: revoke {} on {resource} from {principal}{}",
                permissions.join(", "),
                on(account)
            ),
            Self::RecordGrants => f.write_str("update the grant ledger"),
            Self::ForgetAgreement => f.write_str("delete the grant ledger entry"),
            Self::Status { from, to } => write!(
                f,
                "DMM status {} -> {to}",
                from.as_deref().unwrap_or("(none)")
            ),
            Self::Provisioning { from, to } => write!(
                f,
                "DMM provisioning {} -> {to}",
                from.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

/// The writes one dry convergence would make, in order, without repeats.
#[derive(Debug, Clone, Default)]
pub struct Changes(Arc<Mutex<Vec<Change>>>);

impl Changes {
    pub fn push(&self, change: Change) {
        let mut changes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !changes.contains(&change) {
            changes.push(change);
        }
    }

    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// [`AccountIam`] that hands out [`Recording`] IAM.
pub struct DryRunIam<'a, A> {
    inner: &'a A,
    changes: Changes,
}

impl<'a, A> DryRunIam<'a, A> {
    pub fn new(inner: &'a A, changes: Changes) -> Self {
        Self { inner, changes }
    }
}

impl<A: AccountIam> AccountIam for DryRunIam<'_, A> {
    type Iam = Recording<A::Iam>;

    async fn iam(&self, account: Option<&str>) -> Result<Self::Iam, ReconcileError> {
        Ok(Recording {
            inner: self.inner.iam(account).await?,
            account: account.map(str::to_owned),
            changes: self.changes.clone(),
        })
    }

    fn own_account(&self) -> Option<&str> {
        self.inner.own_account()
    }
}

/// One account's IAM: reads pass through, writes are recorded and succeed.
pub struct Recording<I> {
    inner: I,
    account: Option<String>,
    changes: Changes,
}

impl<I: RolePolicies + Sync> RolePolicies for Recording<I> {
    async fn role(&self, name: &str) -> Result<Option<RoleInfo>, IamError> {
        self.inner.role(name).await
    }

    async fn policy_names(&self, role: &str) -> Result<Vec<String>, IamError> {
        self.inner.policy_names(role).await
    }

    async fn policy(&self, role: &str, name: &str) -> Result<Option<String>, IamError> {
        self.inner.policy(role, name).await
    }

    async fn put_policy(&self, role: &str, name: &str, _document: &str) -> Result<(), IamError> {
        let existed = self.inner.policy(role, name).await?.is_some();
        self.changes.push(Change::PutPolicy {
            account: self.account.clone(),
            role: role.to_owned(),
            policy: name.to_owned(),
            existed,
        });
        Ok(())
    }

    async fn delete_policy(&self, role: &str, name: &str) -> Result<(), IamError> {
        self.changes.push(Change::DeletePolicy {
            account: self.account.clone(),
            role: role.to_owned(),
            policy: name.to_owned(),
        });
        Ok(())
    }
}

impl<I: AccessRoles + Sync> AccessRoles for Recording<I> {
    async fn access_role(&self, name: &str) -> Result<Option<AccessRoleInfo>, IamError> {
        self.inner.access_role(name).await
    }

    async fn create_access_role(
        &self,
        name: &str,
        path: &str,
        _trust_policy: &str,
        _tags: &[(&str, &str)],
        _boundary: &str,
    ) -> Result<String, IamError> {
        self.changes.push(Change::CreateAccessRole {
            account: self.account.clone(),
            role: name.to_owned(),
        });
        // The ARN the role would get; only the dry run's own later steps see it.
        let account = self.account.as_deref().unwrap_or("000000000000");
        Ok(format!("arn:aws:iam::{account}:role{path}{name}"))
    }

    async fn put_boundary(&self, name: &str, _boundary: &str) -> Result<(), IamError> {
        self.changes.push(Change::PutBoundary {
            account: self.account.clone(),
            role: name.to_owned(),
        });
        Ok(())
    }

    async fn update_trust_policy(&self, name: &str, _trust_policy: &str) -> Result<(), IamError> {
        self.changes.push(Change::UpdateTrustPolicy {
            account: self.account.clone(),
            role: name.to_owned(),
        });
        Ok(())
    }

    async fn delete_access_role(&self, name: &str) -> Result<(), IamError> {
        self.changes.push(Change::DeleteAccessRole {
            account: self.account.clone(),
            role: name.to_owned(),
        });
        Ok(())
    }
}

/// The policy name of a managed policy ARN, as the report shows it.
fn policy_of(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

impl<I: ManagedPolicies + Sync> ManagedPolicies for Recording<I> {
    async fn managed_policy(&self, arn: &str) -> Result<Option<ManagedPolicy>, IamError> {
        self.inner.managed_policy(arn).await
    }

    async fn create_managed_policy(
        &self,
        name: &str,
        path: &str,
        _document: &str,
        _tags: &[(&str, &str)],
    ) -> Result<String, IamError> {
        self.changes.push(Change::PutManagedPolicy {
            account: self.account.clone(),
            policy: name.to_owned(),
            existed: false,
        });
        Ok(format!("{path}{name}"))
    }

    async fn create_policy_version(&self, arn: &str, _document: &str) -> Result<(), IamError> {
        self.changes.push(Change::PutManagedPolicy {
            account: self.account.clone(),
            policy: policy_of(arn),
            existed: true,
        });
        Ok(())
    }

    /// Part of writing a new version; reported as that.
    async fn delete_policy_version(&self, _arn: &str, _version: &str) -> Result<(), IamError> {
        Ok(())
    }

    async fn delete_managed_policy(&self, arn: &str) -> Result<(), IamError> {
        self.changes.push(Change::DeleteManagedPolicy {
            account: self.account.clone(),
            policy: policy_of(arn),
        });
        Ok(())
    }

    async fn attached_policies(&self, role: &str) -> Result<Vec<String>, IamError> {
        self.inner.attached_policies(role).await
    }

    async fn attach_policy(&self, role: &str, arn: &str) -> Result<(), IamError> {
        self.changes.push(Change::AttachPolicy {
            account: self.account.clone(),
            role: role.to_owned(),
            policy: policy_of(arn),
        });
        Ok(())
    }

    async fn detach_policy(&self, role: &str, arn: &str) -> Result<(), IamError> {
        self.changes.push(Change::DetachPolicy {
            account: self.account.clone(),
            role: role.to_owned(),
            policy: policy_of(arn),
        });
        Ok(())
    }
}

impl<I: TablePermissions + Sync> TablePermissions for Recording<I> {
    async fn permissions(
        &self,
        principal: &str,
        resource: LfResource<'_>,
    ) -> Result<BTreeSet<String>, LakeFormationError> {
        self.inner.permissions(principal, resource).await
    }

    async fn grant(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        self.changes.push(Change::GrantTable {
            account: self.account.clone(),
            principal: principal.to_owned(),
            resource: resource.to_string(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        });
        Ok(())
    }

    async fn revoke(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        self.changes.push(Change::RevokeTable {
            account: self.account.clone(),
            principal: principal.to_owned(),
            resource: resource.to_string(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        });
        Ok(())
    }
}

/// The ledger, read for real; writes recorded.
pub struct DryRunLedger<'a, L> {
    inner: &'a L,
    changes: Changes,
    /// Role records this dry convergence would have written: read back as written, so what
    /// follows the write decides as it would after a real one.
    roles: Mutex<std::collections::HashMap<String, RoleGrants>>,
}

impl<'a, L> DryRunLedger<'a, L> {
    pub fn new(inner: &'a L, changes: Changes) -> Self {
        Self {
            inner,
            changes,
            roles: Mutex::default(),
        }
    }
}

/// The version a role record "written" by a dry run reads back as.
const DRY_RUN_VERSION: &str = "dry-run";

/// A holder mark that a run would add or remove is a ledger change. (What Lake Formation would
/// be told does not depend on it: [`lake_formation::settle`](super::lake_formation::settle)
/// decides without the agreement's own mark.)
impl<L: GrantLedger + Sync> GrantLedger for DryRunLedger<'_, L> {
    async fn hold(&self, key: &str) -> Result<(), LedgerError> {
        if self.inner.holders(key).await?.is_empty() {
            self.changes.push(Change::RecordGrants);
        }
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), LedgerError> {
        if !self.inner.holders(key).await?.is_empty() {
            self.changes.push(Change::RecordGrants);
        }
        Ok(())
    }

    async fn holders(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        self.inner.holders(prefix).await
    }

    async fn role_grants(
        &self,
        key: &str,
    ) -> Result<Option<(RoleGrants, Option<String>)>, LedgerError> {
        let written = self
            .roles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        match written {
            Some(grants) => Ok(Some((grants, Some(DRY_RUN_VERSION.to_owned())))),
            None => self.inner.role_grants(key).await,
        }
    }

    async fn put_role_grants(
        &self,
        key: &str,
        grants: &RoleGrants,
        _expected: Option<&str>,
    ) -> Result<Option<String>, LedgerError> {
        self.changes.push(Change::RecordGrants);
        self.roles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), grants.clone());
        Ok(Some(DRY_RUN_VERSION.to_owned()))
    }

    async fn get(&self, agreement_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        self.inner.get(agreement_id).await
    }

    async fn put(&self, _entry: &LedgerEntry) -> Result<(), LedgerError> {
        self.changes.push(Change::RecordGrants);
        Ok(())
    }

    async fn delete(&self, _agreement_id: &str) -> Result<(), LedgerError> {
        self.changes.push(Change::ForgetAgreement);
        Ok(())
    }
}

/// One agreement's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRow {
    pub agreement_id: String,
    /// `active`, `inactive`, or `not in DMM` (only the ledger knows it).
    pub in_dmm: String,
    /// What a reconcile would change; a row whose check failed has none and says why here.
    pub changes: Vec<String>,
    pub error: Option<String>,
    /// Ownership proofs the grant lacks (`ownership_check = audit`); empty when proven, not
    /// checked, or no grant.
    pub ownership: Vec<String>,
}

/// Longest agreement id shown in the table (ids are the user's; the JSON rows have them whole).
const ID_WIDTH: usize = 40;

fn shorten(id: &str) -> String {
    match id.char_indices().nth(ID_WIDTH) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_owned(),
    }
}

const OWNERSHIP_WIDTH: usize = "OWNERSHIP".len();

/// The drift report as a text table, one line per change, for a terminal or the log.
pub fn render_table(rows: &[DriftRow], checked: usize) -> String {
    let ids: Vec<String> = rows.iter().map(|r| shorten(&r.agreement_id)).collect();
    let id_width = ids
        .iter()
        .map(|i| i.chars().count())
        .chain(["AGREEMENT".len()])
        .max()
        .unwrap_or(0);
    let state_width = rows
        .iter()
        .map(|r| r.in_dmm.len())
        .chain(["IN DMM".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "{:id_width$}  {:state_width$}  {:OWNERSHIP_WIDTH$}  WHAT A RECONCILE WOULD CHANGE\n",
        "AGREEMENT", "IN DMM", "OWNERSHIP"
    );
    for (row, id) in rows.iter().zip(&ids) {
        let mut lines: Vec<String> = match &row.error {
            Some(error) => vec![format!("could not check: {error}")],
            None => row.changes.clone(),
        };
        lines.extend(row.ownership.iter().map(|f| format!("not proven: {f}")));
        let ownership = if row.ownership.is_empty() {
            "-"
        } else {
            "unproven"
        };
        for (i, line) in lines.iter().enumerate() {
            let (id, state, ownership) = if i == 0 {
                (id.as_str(), row.in_dmm.as_str(), ownership)
            } else {
                ("", "", "")
            };
            out.push_str(&format!(
                "{id:id_width$}  {state:state_width$}  {ownership:OWNERSHIP_WIDTH$}  {line}\n"
            ));
        }
    }
    let drifted = rows
        .iter()
        .filter(|r| r.error.is_none() && !r.changes.is_empty())
        .count();
    let unproven = rows.iter().filter(|r| !r.ownership.is_empty()).count();
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    out.push_str(&format!(
        "{drifted} of {checked} agreements drifted; {failed} could not be checked; \
         {unproven} granted without proof of ownership; nothing was changed\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_change_under_its_agreement() {
        let rows = vec![
            DriftRow {
                agreement_id: "agr-1".into(),
                in_dmm: "active".into(),
                changes: vec![
                    Change::PutPolicy {
                        account: None,
                        role: "shipments".into(),
                        policy: "DMM_DataUsageAgreement_agr-1".into(),
                        existed: true,
                    }
                    .to_string(),
                    Change::Status {
                        from: None,
                        to: "aws-integration-active".into(),
                    }
                    .to_string(),
                ],
                error: None,
                ownership: vec![],
            },
            DriftRow {
                agreement_id: "x".repeat(60),
                in_dmm: "not in DMM".into(),
                changes: vec![],
                error: Some("IAM unavailable".into()),
                ownership: vec![],
            },
            DriftRow {
                agreement_id: "agr-2".into(),
                in_dmm: "active".into(),
                changes: vec![],
                error: None,
                ownership: vec!["the S3 bucket `payroll` is not proven …".into()],
            },
        ];
        let table = render_table(&rows, 7);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[0].starts_with("AGREEMENT"));
        assert!(
            lines[1].contains("agr-1")
                && lines[1].contains("put DMM_DataUsageAgreement_agr-1 on role shipments (edited)")
        );
        assert!(
            lines[2]
                .trim_start()
                .starts_with("DMM status (none) -> aws-integration-active")
        );
        assert!(
            lines[3].contains(&format!("{}…", "x".repeat(40)))
                && lines[3].contains("could not check: IAM unavailable")
        );
        assert!(
            lines[4].contains("agr-2")
                && lines[4].contains("unproven")
                && lines[4].contains("not proven: the S3 bucket `payroll`"),
            "{table}"
        );
        assert!(
            lines[1].contains("  -  "),
            "proven or unchecked rows show -: {table}"
        );
        assert_eq!(
            lines[5],
            "1 of 7 agreements drifted; 1 could not be checked; 1 granted without proof of \
             ownership; nothing was changed"
        );
    }

    #[test]
    fn changes_are_recorded_once_in_order() {
        let changes = Changes::default();
        changes.push(Change::RecordGrants);
        changes.push(Change::ForgetAgreement);
        changes.push(Change::RecordGrants);
        assert_eq!(
            changes.take(),
            [Change::RecordGrants, Change::ForgetAgreement]
        );
        assert!(changes.take().is_empty());
    }
}
