//! The one error type of the policy catalogue.
//!
//! Every message ends up in the agreement's `aws-integration-error` custom field, so it is written
//! for the operator who has to fix a data product in DMM: it names the port or role, the custom
//! field and the offending value, and says what was expected. Values come from DMM and are
//! untrusted, so they are shortened and escaped before they become part of a message.

use super::arn::ArnError;
use super::port_type::PortType;

/// Why a port, a role or a policy document cannot be turned into a grant.
///
/// Every variant is permanent: the input is wrong or the grant would not fit, and retrying the
/// same input gives the same answer. The caller records the message as the agreement's error
/// status and acknowledges the event instead of retrying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("output port `{port}`: {reason}")]
    InvalidPort { port: String, reason: String },

    #[error("output port `{port}`: custom field `{field}` must be a string")]
    FieldNotAString { port: String, field: String },

    #[error(
        "output port `{port}`: custom field `output-port-type` is `{value}`; \
         expected one of s3_bucket, s3_folder, glue_table, kinesis_stream, msk_topic"
    )]
    UnknownPortType { port: String, value: String },

    #[error(
        "output port `{port}`: custom field `output-port-type` is not set and the type cannot \
         be inferred: {reason}"
    )]
    PortTypeNotInferable { port: String, reason: String },

    #[error(
        "output port `{port}`: custom field `{field}` holds `{value}`, which is not a valid ARN: {reason}"
    )]
    InvalidArn {
        port: String,
        field: String,
        value: String,
        reason: ArnError,
    },

    #[error(
        "output port `{port}`: custom field `{field}` holds `{arn}` in partition {found}, \
         but the integration runs in partition {expected}"
    )]
    PartitionMismatch {
        port: String,
        field: String,
        arn: String,
        found: String,
        expected: String,
    },

    #[error("output port `{port}` ({port_type}): custom field `{field}` holds `{arn}`, {reason}")]
    UnexpectedResource {
        port: String,
        port_type: PortType,
        field: String,
        arn: String,
        reason: String,
    },

    #[error("output port `{port}` ({port_type}) needs {what}")]
    MissingResource {
        port: String,
        port_type: PortType,
        what: &'static str,
    },

    #[error(
        "output port `{port}` ({port_type}): custom fields `{first}` and `{second}` both name {what}, \
         but with different values; one port grants exactly one"
    )]
    DuplicateResource {
        port: String,
        port_type: PortType,
        what: &'static str,
        first: String,
        second: String,
    },

    #[error("output port `{port}` ({port_type}): {reason}")]
    InconsistentResources {
        port: String,
        port_type: PortType,
        reason: String,
    },

    /// A custom field and `server.location` name different S3 locations. Which one the
    /// provider meant cannot be known, so neither is granted.
    #[error(
        "output port `{port}` ({port_type}): custom field `{field}` names `{arn}`, but \
         `server.location` names `{location}`; a port grants exactly one S3 location, so make \
         them name the same one (a data contract glob inside it is fine) or remove one"
    )]
    ConflictingS3Locations {
        port: String,
        port_type: PortType,
        field: String,
        arn: String,
        location: String,
    },

    #[error(
        "output port `{port}`: `server.location` `{location}` is not a usable S3 location: {reason}"
    )]
    InvalidS3Location {
        port: String,
        location: String,
        reason: String,
    },

    #[error("consumer: neither custom field `aws-role-name` nor `aws-role-arn` is set")]
    MissingRole,

    #[error("consumer: custom field `{field}` must be a string")]
    RoleFieldNotAString { field: &'static str },

    #[error(
        "consumer: custom field `aws-role-name` holds `{value}`, which is not a valid IAM role name: {reason}"
    )]
    InvalidRoleName { value: String, reason: String },

    #[error(
        "consumer: custom field `aws-role-arn` holds `{value}`, which is not an IAM role ARN: {reason}"
    )]
    InvalidRoleArn { value: String, reason: String },

    #[error(
        "consumer: custom fields `aws-role-name` (`{name}`) and `aws-role-arn` (`{arn}`) name \
         different roles; set one of them"
    )]
    ConflictingRoleFields { name: String, arn: String },

    #[error("role `{role}` is protected ({reason}); the integration never writes to it")]
    ProtectedRole { role: String, reason: &'static str },

    #[error("role `{role}` is outside the roles this integration may manage: {reason}")]
    RoleNotAllowed { role: String, reason: String },

    #[error("role guard configuration: {0}")]
    InvalidRoleGuard(String),

    #[error("region `{region}` cannot be used: {reason}")]
    InvalidRegion { region: String, reason: ArnError },

    #[error("the agreement has an empty id")]
    EmptyAgreementId,

    #[error("IAM policy document cannot be read: {0}")]
    InvalidDocument(String),

    #[error(
        "policy `{policy}` needs {size} characters, but role `{role}` has only {available} of \
         {limit} left for inline policies ({used} used by its other inline policies)"
    )]
    PolicyTooLarge {
        role: String,
        policy: String,
        size: usize,
        used: usize,
        available: usize,
        limit: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_port_field_and_value() {
        let error = PolicyError::MissingResource {
            port: "orders".into(),
            port_type: PortType::KinesisStream,
            what: "a Kinesis stream ARN",
        };
        assert_eq!(
            error.to_string(),
            "output port `orders` (kinesis_stream) needs a Kinesis stream ARN"
        );
        let error = PolicyError::PolicyTooLarge {
            role: "consumer".into(),
            policy: "DMM_DataUsageAgreement_1".into(),
            size: 900,
            used: 9_500,
            available: 740,
            limit: 10_240,
        };
        assert_eq!(
            error.to_string(),
            "policy `DMM_DataUsageAgreement_1` needs 900 characters, but role `consumer` has only \
             740 of 10240 left for inline policies (9500 used by its other inline policies)"
        );
    }
}
