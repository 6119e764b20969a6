//! The status the integration writes back to the agreement in DMM (README "What the integration
//! writes back to DMM"): the access provisioning record, and tags and custom fields, replacing only
//! its own and leaving everything a user set untouched (ADR 018).

use std::str::FromStr;

use serde_json::{Map, Value, json};

use crate::dmm::Agreement;
use crate::text::shown;

/// Where the integration reports each agreement's state (`status_reporting`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StatusReporting {
    /// The provisioning record and the tags (the default): DMM's access page shows the state,
    /// and dashboards built on the reference integration's tags keep working.
    #[default]
    Both,
    /// Only the tags and custom fields, as the reference integration did.
    Tags,
    /// Only the provisioning record: the agreement document is never written.
    Provisioning,
}

impl StatusReporting {
    pub fn provisioning(self) -> bool {
        matches!(self, Self::Both | Self::Provisioning)
    }

    pub fn tags(self) -> bool {
        matches!(self, Self::Both | Self::Tags)
    }
}

impl FromStr for StatusReporting {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "both" => Ok(Self::Both),
            "tags" => Ok(Self::Tags),
            "provisioning" => Ok(Self::Provisioning),
            other => Err(format!(
                "`{}` is not one of both, tags, provisioning",
                shown(other)
            )),
        }
    }
}

/// `platform` of every provisioning report.
pub const PLATFORM: &str = "aws";
/// `executor` of every provisioning report: the integration and its version. The prefix tells
/// the integration's records from other connectors' and from a person's.
pub const EXECUTOR_NAME: &str = "dmm-integration-aws";

pub fn executor() -> String {
    format!("{EXECUTOR_NAME} {}", env!("CARGO_PKG_VERSION"))
}

/// `customProperties` of a provisioning report, the names a consumer looks for.
pub const PROPERTY_ROLE_ARN: &str = "roleArn";
pub const PROPERTY_POLICY_NAME: &str = "policyName";
pub const PROPERTY_ACCESS_ROLE_ARN: &str = "accessRoleArn";
pub const PROPERTY_EXTERNAL_ID: &str = "externalId";

/// The provisioning record fields a report declares; everything else (the transition times) is
/// the server's.
const DECLARED_FIELDS: &[&str] = &[
    "status",
    "platform",
    "executor",
    "reference",
    "diagnostics",
    "note",
    "customProperties",
    "links",
];

/// Whether the integration has reported on this agreement before, through either channel: only
/// then does a revocation with nothing to revoke still report "inactive".
pub fn handled_before(agreement: &Agreement) -> bool {
    status_tag(agreement).is_some()
        || agreement
            .provisioning()
            .and_then(|record| record.get("executor"))
            .and_then(Value::as_str)
            .is_some_and(|executor| executor.starts_with(EXECUTOR_NAME))
}

/// The provisioning record to declare for `status` (the body of `PUT …/provisioning`), or
/// `None` when the record DMM holds already says exactly that: a replay writes nothing, and the
/// `AccessProvisioned…` echo of a write causes no further write.
///
/// A failure is `provisioning-failed` while the agreement is active and `deprovisioning-failed`
/// once it is not, so the provider team's mail says which way it failed. `deprovisioned` keeps
/// the reference of the grant that was removed, as the spec asks. A person's `note` survives.
pub fn provisioning_report(agreement: &Agreement, status: &Status) -> Option<Value> {
    let current = agreement.provisioning();
    let mut report = Map::new();
    let mut put = |key: &str, value: Value| {
        report.insert(key.to_owned(), value);
    };
    put("platform", json!(PLATFORM));
    put("executor", json!(executor()));
    match status {
        Status::Active {
            role_arn,
            policy_name,
            access_role,
        } => {
            put("status", json!("provisioned"));
            let mut properties = vec![
                property(PROPERTY_ROLE_ARN, role_arn),
                property(PROPERTY_POLICY_NAME, policy_name),
            ];
            match access_role {
                Some(access) => {
                    put("reference", json!(access.role_arn));
                    properties.push(property(PROPERTY_ACCESS_ROLE_ARN, &access.role_arn));
                    properties.push(property(PROPERTY_EXTERNAL_ID, &access.external_id));
                }
                None => put("reference", json!(role_arn)),
            }
            put("customProperties", Value::Array(properties));
        }
        Status::Inactive => {
            put("status", json!("deprovisioned"));
            if let Some(reference) = current
                .and_then(|c| c.get("reference"))
                .filter(|r| r.is_string())
            {
                put("reference", reference.clone());
            }
        }
        Status::Error { message } => {
            let failed = if agreement.is_active() {
                "provisioning-failed"
            } else {
                "deprovisioning-failed"
            };
            put("status", json!(failed));
            put("diagnostics", json!(shorten(message)));
        }
    }
    if let Some(note) = current
        .and_then(|c| c.get("note"))
        .filter(|n| n.is_string())
    {
        put("note", note.clone());
    }
    let report = Value::Object(report);
    let unchanged = current.is_some_and(|current| {
        DECLARED_FIELDS
            .iter()
            .all(|field| declared(current.get(*field)) == declared(report.get(*field)))
    });
    (!unchanged).then_some(report)
}

fn property(name: &str, value: &str) -> Value {
    json!({"property": name, "value": value})
}

/// A field as declared: `null`, an empty list and an empty object say nothing, like absence.
fn declared(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| match v {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        _ => true,
    })
}

/// Present on every agreement the integration has handled.
pub const TAG_INTEGRATION: &str = "aws-integration";
pub const TAG_ACTIVE: &str = "aws-integration-active";
pub const TAG_INACTIVE: &str = "aws-integration-inactive";
pub const TAG_ERROR: &str = "aws-integration-error";

/// Name of the inline policy holding the grant (the reference integration's field).
pub const FIELD_POLICY_NAME: &str = "aws-policy-name";
/// The role that received the grant.
pub const FIELD_ROLE_ARN: &str = "aws-role-arn";
/// Why the integration could not converge the agreement; removed once resolved.
pub const FIELD_ERROR: &str = "aws-integration-error";
/// Cross-account grants: the access role the consumer assumes, and the external id to pass.
pub const FIELD_ACCESS_ROLE_ARN: &str = "aws-access-role-arn";
pub const FIELD_EXTERNAL_ID: &str = "aws-external-id";

const OWN_TAGS: &[&str] = &[TAG_INTEGRATION, TAG_ACTIVE, TAG_INACTIVE, TAG_ERROR];
const OWN_FIELDS: &[&str] = &[
    FIELD_POLICY_NAME,
    FIELD_ROLE_ARN,
    FIELD_ERROR,
    FIELD_ACCESS_ROLE_ARN,
    FIELD_EXTERNAL_ID,
];

/// What AWS looks like for the agreement after convergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Active {
        role_arn: String,
        policy_name: String,
        /// Cross-account grants only.
        access_role: Option<AccessRoleStatus>,
    },
    Inactive,
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRoleStatus {
    pub role_arn: String,
    pub external_id: String,
}

/// Longest error text written to DMM; the full cause is in the log.
const MAX_ERROR_LEN: usize = 1000;

fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_ERROR_LEN) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// The integration's status tag on the agreement now (`aws-integration-active`, …), if any.
pub fn status_tag(agreement: &Agreement) -> Option<&'static str> {
    let tags = agreement.tags();
    [TAG_ACTIVE, TAG_INACTIVE, TAG_ERROR]
        .into_iter()
        .find(|own| tags.iter().any(|t| t == own))
}

/// The agreement with `status` applied, or `None` when the document would not change — then no
/// PUT is sent, which is what stops our own `AccessUpdatedEvent` from causing another write.
pub fn with_status(agreement: &Agreement, status: &Status) -> Option<Agreement> {
    let status_tag = match status {
        Status::Active { .. } => TAG_ACTIVE,
        Status::Inactive => TAG_INACTIVE,
        Status::Error { .. } => TAG_ERROR,
    };
    let mut tags: Vec<String> = agreement
        .tags()
        .into_iter()
        .filter(|t| !OWN_TAGS.contains(&t.as_str()))
        .collect();
    tags.push(TAG_INTEGRATION.to_owned());
    tags.push(status_tag.to_owned());

    let mut custom: Map<String, Value> = agreement.custom_map();
    let mut set = |key: &str, value: Option<String>| match value {
        Some(v) => {
            custom.insert(key.to_owned(), Value::String(v));
        }
        None => {
            custom.remove(key);
        }
    };
    match status {
        Status::Active {
            role_arn,
            policy_name,
            access_role,
        } => {
            set(FIELD_POLICY_NAME, Some(policy_name.clone()));
            set(FIELD_ROLE_ARN, Some(role_arn.clone()));
            set(FIELD_ERROR, None);
            set(
                FIELD_ACCESS_ROLE_ARN,
                access_role.as_ref().map(|a| a.role_arn.clone()),
            );
            set(
                FIELD_EXTERNAL_ID,
                access_role.as_ref().map(|a| a.external_id.clone()),
            );
        }
        Status::Inactive | Status::Error { .. } => {
            for field in OWN_FIELDS {
                set(field, None);
            }
            if let Status::Error { message } = status {
                set(FIELD_ERROR, Some(shorten(message)));
            }
        }
    }
    // The status is the set of tags and the custom map; the order DMM stores them in is not
    // part of it. Comparing documents literally would write a reordered but equal status again,
    // and each write emits an `AccessUpdatedEvent` that brings the agreement back here.
    let mut current_tags = agreement.tags();
    current_tags.sort();
    let mut wanted_tags = tags.clone();
    wanted_tags.sort();
    if current_tags == wanted_tags && custom == agreement.custom_map() {
        return None;
    }
    Some(agreement.with_status(tags, custom))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agreement(tags: Value, custom: Value) -> Agreement {
        Agreement::from_value(
            json!({"id": "a1", "info": {"active": true}, "tags": tags, "custom": custom}),
        )
        .unwrap()
    }

    fn active() -> Status {
        Status::Active {
            role_arn: "arn:aws:iam::123456789012:role/consumer".into(),
            policy_name: "DMM_DataUsageAgreement_a1".into(),
            access_role: None,
        }
    }

    #[test]
    fn active_keeps_user_tags_and_fields_and_replaces_own() {
        let a = agreement(
            json!([
                "business-critical",
                "aws-integration-error",
                "aws-integration"
            ]),
            json!({"owner": "x", "aws-integration-error": "old cause", "aws-external-id": "stale"}),
        );
        let updated = with_status(&a, &active()).unwrap().to_value();
        assert_eq!(
            updated["tags"],
            json!([
                "business-critical",
                "aws-integration",
                "aws-integration-active"
            ])
        );
        assert_eq!(
            updated["custom"],
            json!({"owner": "x", "aws-policy-name": "DMM_DataUsageAgreement_a1",
                   "aws-role-arn": "arn:aws:iam::123456789012:role/consumer"})
        );
    }

    #[test]
    fn unchanged_status_needs_no_put() {
        let a = agreement(json!(["x"]), json!({}));
        let once = with_status(&a, &active()).unwrap();
        assert_eq!(with_status(&once, &active()), None);
    }

    #[test]
    fn a_status_stored_in_another_order_needs_no_put() {
        let a = agreement(
            json!(["aws-integration-active", "x", "aws-integration"]),
            json!({"aws-role-arn": "arn:aws:iam::123456789012:role/consumer",
                   "k": "v", "aws-policy-name": "DMM_DataUsageAgreement_a1"}),
        );
        assert_eq!(with_status(&a, &active()), None);
        // A different status still is a change, whatever the order.
        assert!(with_status(&a, &Status::Inactive).is_some());
    }

    #[test]
    fn error_and_inactive_remove_grant_fields() {
        let a = with_status(&agreement(json!([]), json!({"k": "v"})), &active()).unwrap();
        let err = with_status(
            &a,
            &Status::Error {
                message: "role `r` does not exist".into(),
            },
        )
        .unwrap()
        .to_value();
        assert_eq!(
            err["tags"],
            json!(["aws-integration", "aws-integration-error"])
        );
        assert_eq!(
            err["custom"],
            json!({"k": "v", "aws-integration-error": "role `r` does not exist"})
        );
        let inactive = with_status(&a, &Status::Inactive).unwrap().to_value();
        assert_eq!(inactive["custom"], json!({"k": "v"}));
        assert_eq!(
            inactive["tags"],
            json!(["aws-integration", "aws-integration-inactive"])
        );
    }

    fn with_record(active: bool, record: Value) -> Agreement {
        Agreement::from_value(
            json!({"id": "a1", "info": {"active": active}, "provisioning": record}),
        )
        .unwrap()
    }

    #[test]
    fn provisioned_names_the_role_and_policy_and_a_replay_writes_nothing() {
        let none = Agreement::from_value(json!({"id": "a1", "info": {"active": true}})).unwrap();
        let report = provisioning_report(&none, &active()).unwrap();
        assert_eq!(report["status"], "provisioned");
        assert_eq!(report["platform"], "aws");
        assert_eq!(report["executor"], executor());
        assert_eq!(
            report["reference"],
            "arn:aws:iam::123456789012:role/consumer"
        );
        assert_eq!(
            report["customProperties"],
            json!([{"property": "roleArn", "value": "arn:aws:iam::123456789012:role/consumer"},
                   {"property": "policyName", "value": "DMM_DataUsageAgreement_a1"}])
        );
        assert!(report.get("diagnostics").is_none());
        // DMM's record as the server keeps it: our fields plus its own times.
        let mut stored = report.clone();
        stored["provisionedAt"] = json!("2026-12-01T10:00:00.000Z");
        stored["diagnostics"] = Value::Null;
        assert_eq!(
            provisioning_report(&with_record(true, stored), &active()),
            None
        );
    }

    #[test]
    fn failures_say_which_way_and_a_fix_clears_the_diagnostics() {
        let error = Status::Error {
            message: "role `r` does not exist".into(),
        };
        let failed = provisioning_report(&with_record(true, json!(null)), &error).unwrap();
        assert_eq!(failed["status"], "provisioning-failed");
        assert_eq!(failed["diagnostics"], "role `r` does not exist");
        let ending = provisioning_report(&with_record(false, json!(null)), &error).unwrap();
        assert_eq!(ending["status"], "deprovisioning-failed");
        let fixed = provisioning_report(&with_record(true, failed), &active()).unwrap();
        assert_eq!(fixed["status"], "provisioned");
        assert!(fixed.get("diagnostics").is_none(), "{fixed}");
    }

    #[test]
    fn deprovisioned_keeps_the_reference_and_a_person_keeps_the_note() {
        let record = json!({"status": "provisioned", "platform": "aws", "executor": executor(),
                            "reference": "arn:aws:iam::123456789012:role/consumer",
                            "note": "granted by hand during the migration"});
        let report = provisioning_report(&with_record(false, record), &Status::Inactive).unwrap();
        assert_eq!(report["status"], "deprovisioned");
        assert_eq!(
            report["reference"],
            "arn:aws:iam::123456789012:role/consumer"
        );
        assert_eq!(report["note"], "granted by hand during the migration");
        assert!(report.get("customProperties").is_none());
    }

    #[test]
    fn cross_account_grants_put_the_access_role_in_front_of_the_consumer() {
        let status = Status::Active {
            role_arn: "arn:aws:iam::111122223333:role/consumer".into(),
            policy_name: "DMM_DataUsageAgreement_a1".into(),
            access_role: Some(AccessRoleStatus {
                role_arn: "arn:aws:iam::444455556666:role/dmm-access/a1".into(),
                external_id: "ext-123".into(),
            }),
        };
        let none = Agreement::from_value(json!({"id": "a1", "info": {"active": true}})).unwrap();
        let report = provisioning_report(&none, &status).unwrap();
        assert_eq!(
            report["reference"],
            "arn:aws:iam::444455556666:role/dmm-access/a1"
        );
        let properties = report["customProperties"].as_array().unwrap();
        assert!(properties.contains(&json!({"property": "externalId", "value": "ext-123"})));
        assert!(properties.contains(
            &json!({"property": "accessRoleArn", "value": "arn:aws:iam::444455556666:role/dmm-access/a1"})
        ));
    }

    #[test]
    fn a_record_of_another_executor_is_not_ours() {
        assert!(!handled_before(&with_record(
            true,
            json!({"status": "provisioned", "executor": "Custom Connector BigQuery V1"})
        )));
        assert!(handled_before(&with_record(
            true,
            json!({"status": "provisioned", "executor": executor()})
        )));
        assert!("tags".parse::<StatusReporting>().unwrap().tags());
        assert!(!"provisioning".parse::<StatusReporting>().unwrap().tags());
        assert!("both".parse::<StatusReporting>().unwrap().provisioning());
        assert!("Both".parse::<StatusReporting>().is_err());
    }

    #[test]
    fn long_errors_are_shortened() {
        let a = agreement(json!([]), json!({}));
        let message = "é".repeat(5000);
        let updated = with_status(&a, &Status::Error { message })
            .unwrap()
            .to_value();
        let written = updated["custom"][FIELD_ERROR].as_str().unwrap();
        assert_eq!(written.chars().count(), MAX_ERROR_LEN + 1);
    }
}
