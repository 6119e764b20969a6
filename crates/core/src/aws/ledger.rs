//! The grant ledger in S3: what was granted for each agreement, so that access can be revoked
//! even after DMM forgot the agreement (a deleted agreement answers 404) or its consumer changed.

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::describe;
use crate::reconcile::ledger::{GrantLedger, LedgerEntry, LedgerError};
use crate::reconcile::packed::RoleGrants;

/// Prefix of the ledger objects in the state bucket (Terraform scopes the function's S3 access
/// to it).
pub const LEDGER_PREFIX: &str = "grants/";
/// Prefix of the holders of shared Lake Formation permissions (ADR 022): one empty object per
/// agreement and table.
pub const HOLDERS_PREFIX: &str = "lake-formation/";
/// Prefix of the role records of the packed layout (ADR 023): one JSON object per account and
/// role, written with conditional writes.
pub const ROLE_RECORDS_PREFIX: &str = "roles/";

/// The object key for an agreement. Ids of plain characters are kept readable; anything else
/// (slashes, `..`, unicode, very long ids) is hashed so it can never address another object.
pub fn ledger_key(agreement_id: &str) -> String {
    let plain = !agreement_id.is_empty()
        && agreement_id.len() <= 200
        && agreement_id != "."
        && agreement_id != ".."
        && agreement_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        format!("{LEDGER_PREFIX}{agreement_id}.json")
    } else {
        let digest = hex::encode(Sha256::digest(agreement_id.as_bytes()));
        format!("{LEDGER_PREFIX}sha256-{digest}.json")
    }
}

/// [`GrantLedger`] in the state bucket.
#[derive(Debug, Clone)]
pub struct S3Ledger {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Ledger {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

impl S3Ledger {
    /// Every object key in the ledger, for the drift sweep: an entry whose agreement DMM no
    /// longer lists is found only here.
    pub async fn keys(&self) -> Result<Vec<String>, LedgerError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(LEDGER_PREFIX)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| LedgerError {
                action: "list",
                key: LEDGER_PREFIX.to_owned(),
                reason: describe(&e),
                corrupt: false,
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// The entry stored under `key`; `None` when it is gone.
    pub async fn entry_at(&self, key: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        let error = |reason: String| LedgerError {
            action: "read",
            key: key.to_owned(),
            reason,
            corrupt: false,
        };
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(error(describe(&e))),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| error(e.to_string()))?
            .into_bytes();
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LedgerError {
                corrupt: true,
                ..error(format!("not a ledger entry: {e}"))
            })
    }
}

impl S3Ledger {
    fn holder_error(action: &'static str, key: &str, reason: String) -> LedgerError {
        LedgerError {
            action,
            key: key.to_owned(),
            reason,
            corrupt: false,
        }
    }
}

impl GrantLedger for S3Ledger {
    async fn role_grants(
        &self,
        key: &str,
    ) -> Result<Option<(RoleGrants, Option<String>)>, LedgerError> {
        let key = format!("{ROLE_RECORDS_PREFIX}{key}");
        let error = |reason: String, corrupt: bool| LedgerError {
            action: "read",
            key: key.clone(),
            reason,
            corrupt,
        };
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(error(describe(&e), false)),
        };
        let version = output.e_tag().map(str::to_owned);
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| error(e.to_string(), false))?
            .into_bytes();
        let grants = serde_json::from_slice(&bytes)
            .map_err(|e| error(format!("not a role record: {e}"), true))?;
        Ok(Some((grants, version)))
    }

    async fn put_role_grants(
        &self,
        key: &str,
        grants: &RoleGrants,
        expected: Option<&str>,
    ) -> Result<Option<String>, LedgerError> {
        let key = format!("{ROLE_RECORDS_PREFIX}{key}");
        let error = |reason: String| LedgerError {
            action: "write",
            key: key.clone(),
            reason,
            corrupt: false,
        };
        let body = serde_json::to_vec(grants).map_err(|e| error(e.to_string()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match expected {
            Some(version) => request.if_match(version),
            None => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(output) => Ok(Some(output.e_tag().unwrap_or_default().to_owned())),
            // 412: another writer changed it first; 409: another conditional write of the same
            // object is in flight. Either way the caller reads again.
            Err(e)
                if e.raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Ok(None)
            }
            Err(e) => Err(error(describe(&e))),
        }
    }

    async fn hold(&self, key: &str) -> Result<(), LedgerError> {
        let key = format!("{HOLDERS_PREFIX}{key}");
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Self::holder_error("mark", &key, describe(&e)))
    }

    async fn release(&self, key: &str) -> Result<(), LedgerError> {
        let key = format!("{HOLDERS_PREFIX}{key}");
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Self::holder_error("unmark", &key, describe(&e)))
    }

    async fn holders(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let prefix = format!("{HOLDERS_PREFIX}{prefix}");
        let mut holders = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Self::holder_error("list", &prefix, describe(&e)))?;
            holders.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key()?.strip_prefix(&prefix).map(str::to_owned)),
            );
        }
        Ok(holders)
    }

    async fn get(&self, agreement_id: &str) -> Result<Option<LedgerEntry>, LedgerError> {
        self.entry_at(&ledger_key(agreement_id)).await
    }

    async fn put(&self, entry: &LedgerEntry) -> Result<(), LedgerError> {
        let key = ledger_key(&entry.agreement_id);
        let body = serde_json::to_vec(entry).map_err(|e| LedgerError {
            action: "write",
            key: key.clone(),
            reason: e.to_string(),
            corrupt: false,
        })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| LedgerError {
                action: "write",
                key,
                reason: describe(&e),
                corrupt: false,
            })
    }

    async fn delete(&self, agreement_id: &str) -> Result<(), LedgerError> {
        let key = ledger_key(agreement_id);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| LedgerError {
                action: "delete",
                key,
                reason: describe(&e),
                corrupt: false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::ledger::{GrantKind, GrantRecord};

    #[test]
    fn plain_ids_stay_readable_and_others_are_hashed() {
        assert_eq!(ledger_key("agr-1_x.y"), "grants/agr-1_x.y.json");
        for hostile in ["../secrets", "a/b", "..", "ü", "", &"x".repeat(201)] {
            let key = ledger_key(hostile);
            assert!(
                key.starts_with("grants/sha256-") && !key.contains(".."),
                "{key}"
            );
        }
        assert_ne!(ledger_key("a/b"), ledger_key("a/c"));
    }

    #[test]
    fn entries_of_earlier_versions_read_and_same_account_entries_write_as_before() {
        let old = r#"{"agreementId":"a1","grants":[{"roleName":"r","roleArn":"arn:aws:iam::123456789012:role/r","policyName":"DMM_DataUsageAgreement_a1"}]}"#;
        let entry: LedgerEntry = serde_json::from_str(old).unwrap();
        assert_eq!(entry.grants[0].kind, GrantKind::InlinePolicy);
        assert_eq!(entry.grants[0].account, None);
        assert_eq!(entry.external_id, None);
        assert_eq!(serde_json::to_string(&entry).unwrap(), old);

        let cross = LedgerEntry {
            external_id: Some("e".into()),
            grants: vec![GrantRecord {
                kind: GrantKind::AccessRole,
                account: Some("333333333333".into()),
                ..entry.grants[0].clone()
            }],
            ..entry
        };
        let json = serde_json::to_value(&cross).unwrap();
        assert_eq!(json["externalId"], "e");
        assert_eq!(json["grants"][0]["kind"], "accessRole");
        assert_eq!(json["grants"][0]["account"], "333333333333");
        assert_eq!(serde_json::from_value::<LedgerEntry>(json).unwrap(), cross);
    }
}
