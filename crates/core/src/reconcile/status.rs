//! The status the integration writes back to the agreement in DMM (README "What the integration writes back to DMM"): tags and custom
//! fields, replacing only its own and leaving everything a user set untouched.

use serde_json::{Map, Value};

use crate::dmm::Agreement;

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
