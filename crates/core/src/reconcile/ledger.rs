//! The grant ledger as the reconciler uses it: what was granted for each agreement, so that
//! access can be revoked even after DMM forgot the agreement (a deleted agreement answers 404)
//! or its consumer changed. `aws::ledger` keeps it in the state bucket.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::lake_formation::TableRef;
use super::packed::RoleGrants;

/// What a [`GrantRecord`] stands for.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum GrantKind {
    /// An inline policy `policy_name` on the (existing) role `role_name`; removed by deleting
    /// the policy. Every record written before cross-account grants existed is one.
    #[default]
    InlinePolicy,
    /// The access role `role_name` the integration created in the provider account, holding the
    /// data policy `policy_name`; removed by deleting its inline policies and then the role.
    AccessRole,
    /// Lake Formation permissions on `table` for the role `role_name` (ADR 022), shared with the
    /// other agreements holding the same table; revoked when the last holder lets go.
    LakeFormation,
    /// The agreement's grant packed with others' into the managed policies of the role
    /// `role_name` (ADR 023); removed by taking it out of the role's record and rewriting the
    /// policy that held it.
    Packed,
}

impl GrantKind {
    fn is_inline_policy(&self) -> bool {
        *self == Self::InlinePolicy
    }
}

/// One IAM object the integration wrote for an agreement.
///
/// The fields added for cross-account grants are optional and left out when they have their
/// default, so entries written by earlier versions read the same and same-account entries are
/// written as before.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRecord {
    pub role_name: String,
    pub role_arn: String,
    pub policy_name: String,
    /// The account of the role; `None` is the integration's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "GrantKind::is_inline_policy")]
    pub kind: GrantKind,
    /// The table of a [`GrantKind::LakeFormation`] record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableRef>,
}

/// Everything granted for one agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub agreement_id: String,
    pub grants: Vec<GrantRecord>,
    /// The external id of the agreement's access role (cross-account grants): random, made
    /// once and kept here so every later convergence uses the same one (see ADR 003).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Reading or writing the ledger failed: worth retrying (S3 faults, throttling), unless the
/// entry was read but is not a ledger entry (`corrupt`), which no retry changes.
#[derive(Debug, thiserror::Error)]
#[error("could not {action} the grant ledger entry `{key}`: {reason}")]
pub struct LedgerError {
    pub action: &'static str,
    pub key: String,
    pub reason: String,
    pub corrupt: bool,
}

pub trait GrantLedger {
    fn get(
        &self,
        agreement_id: &str,
    ) -> impl Future<Output = Result<Option<LedgerEntry>, LedgerError>> + Send;
    fn put(&self, entry: &LedgerEntry) -> impl Future<Output = Result<(), LedgerError>> + Send;
    fn delete(&self, agreement_id: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Marks an agreement as holding a shared Lake Formation permission; `key` comes from
    /// [`holder_key`](super::lake_formation::holder_key).
    fn hold(&self, key: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Removing a mark that is already gone succeeds.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// The packed grants of one role (ADR 023) and the version they were read at; `None` when
    /// the role has no record. `key` comes from
    /// [`PackedRole::record_key`](super::packed::PackedRole::record_key).
    fn role_grants(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(RoleGrants, Option<String>)>, LedgerError>> + Send;
    /// Writes the record only if it is still at `expected` (`None`: only if there is none);
    /// returns the new version, or `None` when another writer changed it first.
    fn put_role_grants(
        &self,
        key: &str,
        grants: &RoleGrants,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>, LedgerError>> + Send;
    /// The marks below `prefix` (from
    /// [`holders_prefix`](super::lake_formation::holders_prefix)), relative to it.
    fn holders(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, LedgerError>> + Send;
}
