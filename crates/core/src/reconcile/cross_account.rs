//! Grants across accounts (ADR 003): an access role in the provider account plus the consumer
//! role's permission to assume exactly that role: its own inline policy in the `inline` layout,
//! packed with the role's other grants in the `packed` layout (ADR 023).
//!
//! ```text
//!  consumer account                         provider account
//!  role <consumer>                          role dmm-access-<id>  (tags managed-by, dmm-agreement-id)
//!   └ DMM_DataUsageAgreement_<id>:           ├ trust: Principal = the consumer role ARN,
//!       Allow sts:AssumeRole                 │        StringEquals sts:ExternalId = <external id>
//!       on exactly dmm-access-<id>  ──────►  └ DMM_DataUsageAgreement_<id>: the catalogue policy
//! ```
//!
//! Access needs both halves (the consumer's permission to assume, and the role's trust), so a
//! grant that stopped halfway grants nothing; the ledger, written first, lists both halves, so a
//! retry completes the grant and a revocation removes whatever exists. Grant order is provider
//! side, then consumer side; revocation is the reverse (consumer side first), so at every step
//! in between neither half is usable alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use serde_json::{Value, json};

use super::iam::{
    AGREEMENT_TAG, AccessRoleInfo, AccessRoles, MANAGED_BY_TAG, MANAGED_BY_VALUE,
    access_role_boundary_arn,
};
use super::iam::{RoleInfo, RolePolicies};
use super::ledger::{GrantKind, GrantRecord};
use super::ownership::Finding;
use super::packed::Layout;
use super::plan::GrantPlan;
use super::role_checks::{allowed_role, check_budget, has_policy, owned_role};
use super::{Permanent, ReconcileError};
use crate::policy::{
    Effect, POLICY_VERSION, PolicyDocument, RoleGuard, Statement, access_role_name,
    check_inline_policy_budget, decode_iam_document, is_access_role_name,
};

/// Sid of the consumer-side statement.
pub const ASSUME_SID: &str = "AssumeDmmAccessRole";

/// Where new external ids come from. Random in the deployed function; a test passes its own to
/// know the id in advance.
pub trait ExternalIds: Sync {
    fn new_external_id(&self) -> String;
}

/// 128 random bits as 32 hex characters. Random rather than derived from the agreement (see
/// ADR 003): nothing public predicts it, and it does not change when a key is rotated. Kept in
/// the ledger and reused for the agreement's lifetime.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomExternalIds;

impl ExternalIds for RandomExternalIds {
    fn new_external_id(&self) -> String {
        hex::encode(rand::rng().random::<[u8; 16]>())
    }
}

/// The access role's trust policy: exactly the consumer role may assume it, and only with the
/// agreement's external id.
pub fn trust_policy(consumer_role_arn: &str, external_id: &str) -> Value {
    json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "DmmAgreementConsumer",
            "Effect": "Allow",
            "Principal": {"AWS": consumer_role_arn},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

/// The consumer role's inline policy: assume exactly the access role.
pub fn assume_policy(access_role_arn: &str) -> PolicyDocument {
    PolicyDocument::new(vec![Statement::allow(
        ASSUME_SID,
        &["sts:AssumeRole"],
        [access_role_arn],
    )])
}

/// Whether `statement` is a consumer side's permission: it allows only `sts:AssumeRole`, and
/// only on roles named as the integration names access roles. Such roles trust exactly their
/// agreement's consumer role with its external id, so this statement lets a role assume nothing
/// that does not already name it.
pub fn assumes_only_access_roles(statement: &Statement) -> bool {
    let access_role = |arn: &str| {
        arn.split_once(":role/")
            .and_then(|(_, path_and_name)| path_and_name.rsplit('/').next())
            .is_some_and(is_access_role_name)
            && arn.starts_with("arn:")
            && arn.split(':').nth(2) == Some("iam")
    };
    statement.effect() == Effect::Allow
        && statement
            .actions()
            .iter()
            .all(|a| a.eq_ignore_ascii_case("sts:AssumeRole"))
        && !statement.resources().is_empty()
        && statement.resources().iter().all(|r| access_role(r))
}

/// A string or a list of strings, as a set (`None` when it is neither).
fn string_set(value: &Value, lowercase: bool) -> Option<BTreeSet<String>> {
    let one = |v: &Value| {
        v.as_str().map(|s| {
            if lowercase {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        })
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|s| BTreeSet::from([s])),
    }
}

/// One statement of a trust policy with IAM's insignificant differences normalised away: a
/// value versus a list of one, order and duplicates in lists, the case of actions and condition
/// keys. Elements the integration never writes are kept verbatim, so they count as a change.
fn canonical_statement(statement: &Value) -> Option<Value> {
    // BTreeMaps, so the key order of the input does not matter (serde_json may preserve it).
    let mut out = BTreeMap::new();
    for (key, value) in statement.as_object()? {
        let normalised = match key.as_str() {
            "Action" | "NotAction" => json!(string_set(value, true)?),
            "Principal" | "NotPrincipal" => match value {
                Value::Object(kinds) => json!(
                    kinds
                        .iter()
                        .map(|(kind, ids)| Some((kind.clone(), string_set(ids, false)?)))
                        .collect::<Option<BTreeMap<_, _>>>()?
                ),
                other => other.clone(),
            },
            "Condition" => {
                let mut operators = BTreeMap::new();
                for (operator, keys) in value.as_object()? {
                    let mut by_key = BTreeMap::new();
                    for (k, values) in keys.as_object()? {
                        by_key.insert(k.to_ascii_lowercase(), string_set(values, false)?);
                    }
                    operators.insert(operator.clone(), by_key);
                }
                json!(operators)
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), normalised);
    }
    Some(json!(out))
}

fn canonical_trust(policy: &Value) -> Option<(Value, BTreeSet<String>)> {
    let statements = match policy.get("Statement")? {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    let statements = statements
        .into_iter()
        .map(|s| canonical_statement(s).map(|c| c.to_string()))
        .collect::<Option<_>>()?;
    Some((
        policy.get("Version").cloned().unwrap_or(Value::Null),
        statements,
    ))
}

/// Whether the trust policy IAM holds (`raw`, URL-encoded or plain) is structurally `wanted`.
pub fn trust_matches(raw: &str, wanted: &Value) -> bool {
    let Ok(json) = decode_iam_document(raw) else {
        return false;
    };
    let Ok(current) = serde_json::from_str::<Value>(&json) else {
        return false;
    };
    canonical_trust(&current).is_some_and(|c| Some(c) == canonical_trust(wanted))
}

/// The partition of an ARN (`arn:<partition>:…`).
fn partition_of(arn: &str) -> &str {
    arn.split(':').nth(1).unwrap_or("aws")
}

/// An access-role grant checked against IAM and ready to be written: everything that can refuse
/// it was checked before this exists, so writing it fails only on a fault.
pub(super) struct AccessGrant {
    pub(super) consumer: RoleInfo,
    /// The consumer role's findings, in `audit` mode.
    pub(super) findings: Vec<Finding>,
    access_name: String,
    pub(super) access_arn: String,
    existing: Option<AccessRoleInfo>,
    /// The IAM path a new access role gets (the allowlist's).
    path: String,
    boundary: String,
    pub(super) consumer_policy: PolicyDocument,
    /// How the consumer's permission is laid out: its own inline policy (written by
    /// [`AccessGrant::apply`] unless already in place) or packed (written by the converger).
    consumer_layout: Layout,
    consumer_in_place: bool,
}

/// Checks everything that can refuse the grant, with reads only: the consumer role (the guard
/// and its tags), an existing access role of that name (it must be the agreement's own and
/// carry nothing else), and both policies' size (the consumer's inline budget only in the
/// `inline` layout; a packed role's room is judged when the grant is placed).
pub(super) async fn prepare<I: RolePolicies + AccessRoles>(
    consumer_iam: &I,
    provider_iam: &I,
    guard: &RoleGuard,
    own_account: Option<&str>,
    agreement_id: &str,
    plan: &GrantPlan,
    consumer_layout: Layout,
) -> Result<AccessGrant, ReconcileError> {
    let provider_account = plan
        .provider_account
        .as_deref()
        .or(own_account)
        .ok_or_else(|| Permanent::UnknownOwnAccount {
            role: plan.role.name().to_string(),
        })?
        .to_owned();
    let consumer = allowed_role(consumer_iam, guard, plan.role.name()).await?;
    let findings = owned_role(plan, &consumer)?;
    let access_name = access_role_name(agreement_id)?;
    let existing = provider_iam.access_role(&access_name).await?;
    if existing
        .as_ref()
        .is_some_and(|r| !r.belongs_to(agreement_id))
    {
        return Err(Permanent::ForeignAccessRole {
            role: access_name,
            account: provider_account,
        }
        .into());
    }
    // Adopted only when nothing but the integration's own policy is on it: a role someone added
    // a policy to would grant more than the agreement.
    if existing.is_some() {
        let foreign: Vec<String> = provider_iam
            .policy_names(&access_name)
            .await?
            .into_iter()
            .filter(|name| *name != plan.policy_name)
            .collect();
        if !foreign.is_empty() {
            return Err(Permanent::AccessRoleAltered {
                role: access_name,
                account: provider_account,
                policies: foreign.join(", "),
            }
            .into());
        }
    }
    check_inline_policy_budget(&access_name, &plan.policy_name, &plan.document, [])?;
    let partition = partition_of(&consumer.arn);
    let boundary = access_role_boundary_arn(partition, &provider_account);
    let access_arn = match &existing {
        Some(role) => role.arn.clone(),
        None => format!(
            "arn:{partition}:iam::{provider_account}:role{}{access_name}",
            guard.path_prefix()
        ),
    };
    let consumer_policy = assume_policy(&access_arn);
    let consumer_in_place = consumer_layout == Layout::Inline
        && has_policy(
            consumer_iam,
            &consumer.name,
            &plan.policy_name,
            &consumer_policy,
        )
        .await?;
    if consumer_layout == Layout::Inline && !consumer_in_place {
        check_budget(
            consumer_iam,
            &consumer.name,
            &plan.policy_name,
            &consumer_policy,
        )
        .await?;
    }
    Ok(AccessGrant {
        consumer,
        findings,
        access_name,
        access_arn,
        existing,
        path: guard.path_prefix().to_owned(),
        boundary,
        consumer_policy,
        consumer_layout,
        consumer_in_place,
    })
}

impl AccessGrant {
    /// The ledger records of both halves.
    pub(super) fn records(&self, plan: &GrantPlan) -> BTreeSet<GrantRecord> {
        BTreeSet::from([
            GrantRecord {
                role_name: self.access_name.clone(),
                role_arn: self.access_arn.clone(),
                policy_name: plan.policy_name.clone(),
                account: plan.provider_account.clone(),
                kind: GrantKind::AccessRole,
                table: None,
            },
            GrantRecord {
                role_name: self.consumer.name.clone(),
                role_arn: self.consumer.arn.clone(),
                policy_name: plan.policy_name.clone(),
                account: plan.consumer_account.clone(),
                kind: match self.consumer_layout {
                    Layout::Inline => GrantKind::InlinePolicy,
                    Layout::Packed { .. } => GrantKind::Packed,
                },
                table: None,
            },
        ])
    }

    /// Writes what is missing: the provider side (the access role, its trust, its boundary, its
    /// data policy), then, in the `inline` layout, the consumer side (permission to assume
    /// exactly that role; the converger packs it in the `packed` layout, after this). IAM writes
    /// are counted in `writes` as they happen.
    pub(super) async fn apply<I: RolePolicies + AccessRoles>(
        &self,
        consumer_iam: &I,
        provider_iam: &I,
        agreement_id: &str,
        plan: &GrantPlan,
        external_id: &str,
        writes: &AtomicUsize,
    ) -> Result<(), ReconcileError> {
        let wrote = || writes.fetch_add(1, Ordering::SeqCst);
        let name = &self.access_name;
        let trust = trust_policy(&self.consumer.arn, external_id);
        match &self.existing {
            None => {
                provider_iam
                    .create_access_role(
                        name,
                        &self.path,
                        &trust.to_string(),
                        &[
                            (MANAGED_BY_TAG, MANAGED_BY_VALUE),
                            (AGREEMENT_TAG, agreement_id),
                        ],
                        &self.boundary,
                    )
                    .await?;
                wrote();
            }
            Some(role) if !trust_matches(&role.trust_policy, &trust) => {
                provider_iam
                    .update_trust_policy(name, &trust.to_string())
                    .await?;
                wrote();
            }
            Some(_) => {}
        }
        if self
            .existing
            .as_ref()
            .is_some_and(|role| role.permissions_boundary.as_deref() != Some(&self.boundary))
        {
            // IAM lets the integration write the data policy only onto a role with the boundary.
            provider_iam.put_boundary(name, &self.boundary).await?;
            wrote();
        }
        if !has_policy(provider_iam, name, &plan.policy_name, &plan.document).await? {
            provider_iam
                .put_policy(name, &plan.policy_name, &plan.document.to_json())
                .await?;
            wrote();
        }
        if self.consumer_layout == Layout::Inline && !self.consumer_in_place {
            consumer_iam
                .put_policy(
                    &self.consumer.name,
                    &plan.policy_name,
                    &self.consumer_policy.to_json(),
                )
                .await?;
            wrote();
        }
        Ok(())
    }
}

/// Deletes an access role the ledger lists (`record`, whose name the caller checked is the
/// agreement's own access-role name): its inline policies, then the role. A role that does not
/// carry the integration's tags for this agreement is left alone (someone else's role now holds
/// the name, or the ledger was tampered with) and returned as the reason it was kept. IAM writes
/// are counted in `writes` as they happen.
pub(super) async fn delete_access_role<I>(
    iam: &I,
    agreement_id: &str,
    record: &GrantRecord,
    writes: &AtomicUsize,
) -> Result<Option<Permanent>, ReconcileError>
where
    I: RolePolicies + AccessRoles,
{
    let Some(role) = iam.access_role(&record.role_name).await? else {
        return Ok(None);
    };
    if !role.belongs_to(agreement_id) {
        return Ok(Some(Permanent::ForeignAccessRole {
            role: record.role_name.clone(),
            account: record.account.clone().unwrap_or_else(|| "(own)".into()),
        }));
    }
    for name in iam.policy_names(&role.name).await? {
        iam.delete_policy(&role.name, &name).await?;
        writes.fetch_add(1, Ordering::SeqCst);
    }
    iam.delete_access_role(&role.name).await?;
    writes.fetch_add(1, Ordering::SeqCst);
    Ok(None)
}

/// The tags an access role is created with, as a map (tests and diagnostics).
pub fn access_role_tags(agreement_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (AGREEMENT_TAG.to_owned(), agreement_id.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSUMER: &str = "arn:aws:iam::222222222222:role/consumer";

    #[test]
    fn external_ids_are_random_hex_of_128_bits() {
        let a = RandomExternalIds.new_external_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, RandomExternalIds.new_external_id());
    }

    #[test]
    fn trust_comparison_ignores_spelling_but_not_meaning() {
        let wanted = trust_policy(CONSUMER, "e1");
        let stored = percent_encoding::utf8_percent_encode(
            &wanted.to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        assert!(trust_matches(&stored, &wanted));
        let respelled = json!({"Statement": {
            "Condition": {"StringEquals": {"STS:ExternalId": ["e1"]}},
            "Action": ["STS:AssumeRole", "sts:AssumeRole"],
            "Principal": {"AWS": [CONSUMER]}, "Effect": "Allow", "Sid": "DmmAgreementConsumer"
        }, "Version": "2012-10-17"});
        assert!(trust_matches(&respelled.to_string(), &wanted));
        for different in [
            trust_policy(CONSUMER, "e2"),
            trust_policy("arn:aws:iam::222222222222:role/other", "e1"),
            json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "DmmAgreementConsumer", "Effect": "Allow",
                "Principal": {"AWS": CONSUMER}, "Action": "sts:AssumeRole"}]}),
        ] {
            assert!(
                !trust_matches(&different.to_string(), &wanted),
                "{different}"
            );
        }
        assert!(!trust_matches("not json", &wanted));
    }

    #[test]
    fn the_consumer_may_assume_exactly_the_access_role() {
        let arn = "arn:aws:iam::333333333333:role/dmm-access-a1";
        assert_eq!(
            serde_json::from_str::<Value>(&assume_policy(arn).to_json()).unwrap(),
            json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "AssumeDmmAccessRole", "Effect": "Allow",
                "Action": "sts:AssumeRole", "Resource": arn}]})
        );
    }
}
