//! Lake Formation grants of `glue_table` ports (ADR 022).
//!
//! Unlike an inline policy, a Lake Formation permission is not the agreement's own object: two
//! agreements that give one consumer role two tables of a database share the database's
//! `DESCRIBE`, and a renewed agreement on the same port shares the table's `SELECT` with the one
//! it replaces. Lake Formation keeps a set, not a count, so revoking for one agreement would take
//! the other's access. Each agreement therefore marks itself as a *holder* of the table in the
//! state bucket (through [`GrantLedger::hold`]) before it grants, and a permission is revoked only
//! when no holder is left.
//!
//! Holders come and go concurrently (one FIFO group per agreement, several Lambda instances), so
//! [`settle`] works like the rest of the reconciler: level-triggered. It reads the holders, makes
//! Lake Formation match them, and, when it wrote, reads the holders again; if they changed in the
//! meantime it converges again. Whoever writes last has therefore read the holders after its
//! write, and the permissions end matching the holders whatever the interleaving.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ledger::GrantLedger;
use super::{ReconcileError, Retry};
use crate::policy::GlueTableRef;

/// What an agreement on a table gives its consumer: reading the table's definition and data.
pub const TABLE_PERMISSIONS: [&str; 2] = ["DESCRIBE", "SELECT"];
/// And seeing the table's database, without which Athena cannot name the table.
pub const DATABASE_PERMISSIONS: [&str; 1] = ["DESCRIBE"];

/// How often [`settle`] converges again while other agreements keep changing the holders,
/// before it gives up and lets the message be retried.
const MAX_ROUNDS: usize = 5;

/// A Glue table as Lake Formation names it: the catalog (the account holding it), the region of
/// that catalog, database and table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRef {
    pub catalog_id: String,
    pub region: String,
    pub database: String,
    pub table: String,
}

impl From<&GlueTableRef> for TableRef {
    fn from(table: &GlueTableRef) -> Self {
        Self {
            catalog_id: table.account().to_owned(),
            region: table.region().to_owned(),
            database: table.database().to_owned(),
            table: table.table().to_owned(),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "table {}.{} (catalog {}, {})",
            self.database, self.table, self.catalog_id, self.region
        )
    }
}

/// The two resources an agreement's permissions are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LfResource<'a> {
    Database(&'a TableRef),
    Table(&'a TableRef),
}

impl LfResource<'_> {
    pub fn table(&self) -> &TableRef {
        match self {
            Self::Database(t) | Self::Table(t) => t,
        }
    }

    fn permissions(&self) -> &'static [&'static str] {
        match self {
            Self::Database(_) => &DATABASE_PERMISSIONS,
            Self::Table(_) => &TABLE_PERMISSIONS,
        }
    }
}

impl std::fmt::Display for LfResource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database(t) => write!(
                f,
                "database {} (catalog {}, {})",
                t.database, t.catalog_id, t.region
            ),
            Self::Table(t) => t.fmt(f),
        }
    }
}

/// A Lake Formation call that failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeFormationError {
    /// Lake Formation refused the request itself (the integration may not grant on the
    /// resource, the table does not exist): the same request will be refused again.
    #[error("Lake Formation refused {action} on {resource}: {reason}")]
    Refused {
        action: &'static str,
        resource: String,
        reason: String,
    },
    /// Throttling, service errors, timeouts, network; or other agreements kept changing the
    /// holders of the table.
    #[error("Lake Formation {action} on {resource} failed: {reason}")]
    Unavailable {
        action: &'static str,
        resource: String,
        reason: String,
    },
}

impl LakeFormationError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The Lake Formation permissions of one account's Data Catalog.
pub trait TablePermissions {
    /// The permissions `principal` holds on `resource` (granted directly to it).
    fn permissions(
        &self,
        principal: &str,
        resource: LfResource<'_>,
    ) -> impl Future<Output = Result<BTreeSet<String>, LakeFormationError>> + Send;
    fn grant(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> impl Future<Output = Result<(), LakeFormationError>> + Send;
    /// Revoking permissions that are not held succeeds.
    fn revoke(
        &self,
        principal: &str,
        resource: LfResource<'_>,
        permissions: &[&str],
    ) -> impl Future<Output = Result<(), LakeFormationError>> + Send;
}

/// Where the holders of `principal`'s permissions on the tables of `table`'s database are kept,
/// relative to the holders' prefix; each holder is `<table>/<holder name>` below it. Glue names
/// are plain (checked when the port was resolved); the principal's ARN is hashed.
pub fn holders_prefix(principal: &str, table: &TableRef) -> String {
    let principal = hex::encode(Sha256::digest(principal.as_bytes()));
    format!(
        "{}/{}/{}/{}/",
        table.catalog_id, table.region, principal, table.database
    )
}

/// The agreement's name among the holders: its id when plain, otherwise a hash, so that no id
/// can address another object.
pub fn holder_name(agreement_id: &str) -> String {
    let plain = !agreement_id.is_empty()
        && agreement_id.len() <= 200
        && agreement_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        agreement_id.to_owned()
    } else {
        format!(
            "sha256-{}",
            hex::encode(Sha256::digest(agreement_id.as_bytes()))
        )
    }
}

/// The marker of `agreement_id` holding `table` for `principal`, relative to the holders' prefix.
pub fn holder_key(principal: &str, table: &TableRef, agreement_id: &str) -> String {
    format!(
        "{}{}/{}",
        holders_prefix(principal, table),
        table.table,
        holder_name(agreement_id)
    )
}

/// Whether the table, and the database, are wanted: by this agreement when it `holds` the table,
/// or by any other holder. The agreement's own marker is left out of the listing, so a dry run,
/// which writes no marker, decides exactly as a real run does.
async fn wanted<L: GrantLedger>(
    ledger: &L,
    principal: &str,
    table: &TableRef,
    me: &str,
    holds: bool,
) -> Result<(bool, bool), ReconcileError> {
    let own = format!("{}/{me}", table.table);
    let others: Vec<String> = ledger
        .holders(&holders_prefix(principal, table))
        .await?
        .into_iter()
        .filter(|h| *h != own)
        .collect();
    let table_prefix = format!("{}/", table.table);
    let table_wanted = holds || others.iter().any(|h| h.starts_with(&table_prefix));
    let database_wanted = holds || !others.is_empty();
    Ok((table_wanted, database_wanted))
}

/// Grants what is wanted and missing, revokes what is held and unwanted; returns whether it
/// wrote.
async fn converge<T: TablePermissions>(
    lf: &T,
    principal: &str,
    resource: LfResource<'_>,
    wanted: bool,
    writes: &AtomicUsize,
) -> Result<bool, LakeFormationError> {
    let held = lf.permissions(principal, resource).await?;
    let ours = resource.permissions();
    let change: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|p| held.contains(*p) != wanted)
        .collect();
    if change.is_empty() {
        return Ok(false);
    }
    let written = if wanted {
        lf.grant(principal, resource, &change).await
    } else {
        lf.revoke(principal, resource, &change).await
    };
    if let Err(e) = written {
        // Another agreement's convergence may have made the same change first: Lake Formation
        // refuses to revoke what is no longer held (InvalidInputException). What counts is the
        // state, so it is read again.
        let now = lf.permissions(principal, resource).await?;
        if change.iter().any(|p| now.contains(*p) != wanted) {
            return Err(e);
        }
        return Ok(false);
    }
    writes.fetch_add(1, Ordering::SeqCst);
    Ok(true)
}

/// Makes `principal`'s permissions on `table` and its database match the holders, `agreement_id`
/// included when it `holds` the table (its marker is written, or removed, by the caller before).
pub async fn settle<T: TablePermissions, L: GrantLedger>(
    lf: &T,
    ledger: &L,
    principal: &str,
    table: &TableRef,
    agreement_id: &str,
    holds: bool,
    writes: &AtomicUsize,
) -> Result<(), ReconcileError> {
    let me = holder_name(agreement_id);
    let mut basis = wanted(ledger, principal, table, &me, holds).await?;
    for _ in 0..MAX_ROUNDS {
        let (table_wanted, database_wanted) = basis;
        // The table before the database when granting, after it when revoking: the database
        // alone reveals nothing, the table without it cannot be queried.
        let mut wrote = converge(
            lf,
            principal,
            LfResource::Table(table),
            table_wanted,
            writes,
        )
        .await
        .map_err(ReconcileError::from)?;
        wrote |= converge(
            lf,
            principal,
            LfResource::Database(table),
            database_wanted,
            writes,
        )
        .await?;
        if !wrote {
            return Ok(());
        }
        let now = wanted(ledger, principal, table, &me, holds).await?;
        if now == basis {
            return Ok(());
        }
        basis = now;
    }
    Err(Retry::LakeFormation(LakeFormationError::Unavailable {
        action: "GrantPermissions",
        resource: table.to_string(),
        reason: format!(
            "the table's holders changed {MAX_ROUNDS} times while its permissions were converged"
        ),
    })
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeLakeFormation, FakeLedger};

    const ROLE: &str = "arn:aws:iam::111122223333:role/analytics";

    fn orders() -> TableRef {
        TableRef {
            catalog_id: "111122223333".into(),
            region: "eu-central-1".into(),
            database: "sales".into(),
            table: "orders".into(),
        }
    }

    fn returns() -> TableRef {
        TableRef {
            table: "returns".into(),
            ..orders()
        }
    }

    async fn hold(ledger: &FakeLedger, table: &TableRef, agreement: &str) {
        ledger
            .hold(&holder_key(ROLE, table, agreement))
            .await
            .unwrap();
    }

    async fn release(ledger: &FakeLedger, table: &TableRef, agreement: &str) {
        ledger
            .release(&holder_key(ROLE, table, agreement))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_shared_database_is_revoked_only_with_its_last_table() {
        let (lf, ledger, writes) = (
            FakeLakeFormation::default(),
            FakeLedger::default(),
            AtomicUsize::new(0),
        );
        for (table, agreement) in [(orders(), "a1"), (returns(), "a2")] {
            hold(&ledger, &table, agreement).await;
            settle(&lf, &ledger, ROLE, &table, agreement, true, &writes)
                .await
                .unwrap();
        }
        assert_eq!(
            lf.held(ROLE),
            [
                "database sales: DESCRIBE",
                "table sales.orders: DESCRIBE, SELECT",
                "table sales.returns: DESCRIBE, SELECT",
            ]
        );
        assert_eq!(writes.load(Ordering::SeqCst), 3, "the database once");

        release(&ledger, &orders(), "a1").await;
        settle(&lf, &ledger, ROLE, &orders(), "a1", false, &writes)
            .await
            .unwrap();
        assert_eq!(
            lf.held(ROLE),
            [
                "database sales: DESCRIBE",
                "table sales.returns: DESCRIBE, SELECT"
            ]
        );
        release(&ledger, &returns(), "a2").await;
        settle(&lf, &ledger, ROLE, &returns(), "a2", false, &writes)
            .await
            .unwrap();
        assert_eq!(lf.held(ROLE), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_renewed_agreement_keeps_the_table_its_predecessor_gives_up() {
        let (lf, ledger, writes) = (
            FakeLakeFormation::default(),
            FakeLedger::default(),
            AtomicUsize::new(0),
        );
        for agreement in ["old", "new"] {
            hold(&ledger, &orders(), agreement).await;
            settle(&lf, &ledger, ROLE, &orders(), agreement, true, &writes)
                .await
                .unwrap();
        }
        release(&ledger, &orders(), "old").await;
        settle(&lf, &ledger, ROLE, &orders(), "old", false, &writes)
            .await
            .unwrap();
        assert_eq!(lf.held(ROLE).len(), 2, "{:?}", lf.held(ROLE));
        assert_eq!(
            writes.load(Ordering::SeqCst),
            2,
            "granted once, never revoked"
        );
    }

    #[tokio::test]
    async fn a_holder_that_arrives_during_a_revocation_gets_the_table_back() {
        let (lf, ledger, writes) = (
            FakeLakeFormation::default(),
            FakeLedger::default(),
            AtomicUsize::new(0),
        );
        hold(&ledger, &orders(), "old").await;
        settle(&lf, &ledger, ROLE, &orders(), "old", true, &writes)
            .await
            .unwrap();
        release(&ledger, &orders(), "old").await;
        // `new` marks itself and finds the permissions in place (so it writes nothing) just
        // after `old` decided to revoke and just before its revocation lands.
        let (arriving, key) = (ledger.clone(), holder_key(ROLE, &orders(), "new"));
        lf.before_next_revoke(move || arriving.insert_holder(&key));
        settle(&lf, &ledger, ROLE, &orders(), "old", false, &writes)
            .await
            .unwrap();
        assert_eq!(
            lf.held(ROLE),
            [
                "database sales: DESCRIBE",
                "table sales.orders: DESCRIBE, SELECT"
            ],
            "re-granted after the second look at the holders"
        );
    }

    #[tokio::test]
    async fn a_revocation_another_instance_made_first_is_not_an_error() {
        let (lf, ledger, writes) = (
            FakeLakeFormation::default(),
            FakeLedger::default(),
            AtomicUsize::new(0),
        );
        hold(&ledger, &orders(), "a1").await;
        settle(&lf, &ledger, ROLE, &orders(), "a1", true, &writes)
            .await
            .unwrap();
        release(&ledger, &orders(), "a1").await;
        // Another instance, ending another agreement on the table, revokes between this one's
        // read and its revocation, which Lake Formation then refuses.
        let other = lf.clone();
        lf.before_next_revoke(move || other.remove(ROLE, LfResource::Table(&orders())));
        settle(&lf, &ledger, ROLE, &orders(), "a1", false, &writes)
            .await
            .unwrap();
        assert_eq!(lf.held(ROLE), Vec::<String>::new());
    }

    #[test]
    fn holder_keys_never_leave_their_table() {
        let key = holder_key(ROLE, &orders(), "../../x");
        assert!(key.contains("/orders/sha256-"), "{key}");
        assert_eq!(
            holder_key(ROLE, &orders(), "a-1_b"),
            format!("{}orders/a-1_b", holders_prefix(ROLE, &orders()))
        );
        assert_ne!(
            holders_prefix(ROLE, &orders()),
            holders_prefix("arn:aws:iam::111122223333:role/other", &orders())
        );
    }
}
