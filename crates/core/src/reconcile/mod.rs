//! Converging AWS to an agreement's current state in DMM (level-triggered).
//!
//! An event only says *which* agreement to look at. The reconciler re-reads the agreement and
//! the data products it names, decides the desired grant ([`plan`]), makes IAM and the grant
//! ledger match it ([`converge`]), and writes the outcome back to DMM ([`status`]). Running it
//! twice, or for events that arrive duplicated or out of order, ends in the same state.

pub mod agreement;
pub mod converge;
pub mod cross_account;
pub mod directory;
pub mod drift;
pub mod iam;
pub mod lake_formation;
pub mod ledger;
pub mod ownership;
pub mod packed;
pub mod plan;
pub mod report;
pub mod requests;
mod role_checks;
pub mod status;

use crate::aws::accounts::AccountError;
use crate::dmm::{DmmError, ModelError};
use crate::policy::PolicyError;
use crate::queue::QueueError;
use iam::IamError;
use lake_formation::LakeFormationError;
use ledger::LedgerError;
use ownership::TagError;

/// A problem with the agreement's data or the AWS objects it names. Retrying cannot help: the
/// agreement gets the error status in DMM, and the message is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum Permanent {
    #[error("the agreement document is unusable: {0}")]
    Agreement(#[from] ModelError),
    #[error("the provider data product `{0}` does not exist in Data Mesh Manager")]
    ProviderNotFound(String),
    /// A document the agreement names cannot be read safely: its id cannot be put in a URL
    /// ([`DmmError::InvalidId`]), or DMM sent it with duplicated keys ([`DmmError::Unusable`]).
    #[error("{0}")]
    Document(DmmError),
    #[error("the output port `{port}` does not exist on data product `{product}`")]
    PortNotFound { product: String, port: String },
    #[error(
        "output port `{port}` of data product `{product}` is described by the data contract \
         `{contract}`, which does not exist in Data Mesh Manager"
    )]
    ContractNotFound {
        product: String,
        port: String,
        contract: String,
    },
    #[error("output port `{port}` of data product `{product}`: {source}")]
    Contract {
        product: String,
        port: String,
        source: crate::policy::contract::ContractError,
    },
    /// `source` names the output port itself.
    #[error("provider data product `{product}`: {source}")]
    Provider {
        product: String,
        port: String,
        source: PolicyError,
    },
    #[error("the consumer {kind} `{id}` does not exist in Data Mesh Manager")]
    ConsumerNotFound { kind: &'static str, id: String },
    #[error(
        "the consumer is the user `{0}`; only data products and teams can hold an AWS role \
         (set `aws-role-name` or `aws-role-arn` on a consumer data product or team)"
    )]
    UserConsumer(String),
    #[error("consumer {kind} `{id}`: {source}")]
    Consumer {
        kind: &'static str,
        id: String,
        source: PolicyError,
    },
    #[error("the consumer role `{0}` does not exist in IAM")]
    RoleNotFound(String),
    #[error(
        "the consumer role `{role}` is in account {account}, which this integration does not \
         manage"
    )]
    UnmanagedAccount { role: String, account: String },
    #[error(
        "the provider data product `{product}` is in account {account}, which this integration \
         does not manage"
    )]
    UnmanagedProviderAccount { product: String, account: String },
    #[error("`{0}` is not a 12-digit AWS account id (custom field `aws-account-id`)")]
    InvalidAccountId(String),
    #[error(
        "a role named `{role}` already exists in account {account} and was not created by this \
         integration for this agreement (no tag managed-by=dmm-integration-aws, or a \
         dmm-agreement-id tag naming another agreement); it is never adopted, changed or deleted"
    )]
    ForeignAccessRole { role: String, account: String },
    #[error(
        "the access role `{role}` in account {account} carries policies the integration did not \
         write ({policies}); it is not used until they are removed"
    )]
    AccessRoleAltered {
        role: String,
        account: String,
        policies: String,
    },
    #[error(
        "the consumer role `{role}` and the provider are in different accounts, and the account \
         of the integration itself is unknown"
    )]
    UnknownOwnAccount { role: String },
    /// A grant of the agreement sits on a role the integration may not write to (its own, a
    /// reserved one, or one outside the allowlist, e.g. after the allowlist was narrowed). The
    /// grant stays in the ledger; a person has to remove it or widen the allowlist.
    #[error(
        "the grant `{policy}` on role `{role}` cannot be revoked by the integration: {source}; \
         remove it in IAM or allow the role"
    )]
    RevokeRefused {
        role: String,
        policy: String,
        source: PolicyError,
    },
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error(
        "the S3 bucket `{0}` is the integration's own or protected by the operator \
         (protected_bucket_names); it is never granted"
    )]
    ProtectedBucket(String),
    /// A resource the port names is not proven to be its data product's (ADR 017).
    #[error(
        "the {resource} is not proven to belong to the {whose}: it needs the tag {expected}, \
         and {map_note}"
    )]
    NotOwned {
        resource: String,
        whose: String,
        expected: String,
        map_note: String,
    },
    #[error(
        "the consumer role `{role}` is not proven to belong to the {consumer}: it needs the tag \
         {expected}"
    )]
    RoleNotOwned {
        role: String,
        consumer: String,
        expected: String,
    },
    #[error(
        "{0}; grant the integration the tag-read permission or tag-read access in that account"
    )]
    TagsUnreadable(TagError),
    #[error(
        "the agreement's policy would take {size} characters; one agreement may put at most \
         {limit} on a consumer role"
    )]
    PolicyTooLarge { size: usize, limit: usize },
    #[error("the port names {count} MSK consumer groups; one agreement may grant at most {limit}")]
    TooManyGroups { count: usize, limit: usize },
    #[error(
        "the MSK consumer group `{group}` is not the consumer's: a group must be named \
         `{consumer}` or start with `{consumer}-`, `{consumer}.` or `{consumer}_`"
    )]
    ForeignConsumerGroup { group: String, consumer: String },
    #[error(transparent)]
    Iam(IamError),
    #[error(transparent)]
    LakeFormation(LakeFormationError),
    #[error(
        "the consumer role `{role}` has no room for this grant ({size} characters): its inline \
         policy budget and its {policies} packed managed policies (managed_policies_per_role) are \
         full at {limit} characters each; raise managed_policies_per_role (and the role's attached-policy quota, \
         10 by default, 20 at most) or use another role"
    )]
    RoleFull {
        role: String,
        policies: usize,
        limit: usize,
        size: usize,
    },
    #[error(
        "the managed policy `{policy}` the integration would use for role `{role}` exists but \
         was not created by it (no tag managed-by=dmm-integration-aws); it is never changed"
    )]
    ForeignManagedPolicy { policy: String, role: String },
    #[error(
        "the Glue table of output port `{port}` of data product `{product}` is granted through \
         Lake Formation, but the consumer role is in account {consumer_account} and the table in \
         {table_account}; Lake Formation grants across accounts need a RAM share and a resource \
         link in the consumer account, which this integration does not make: grant the table \
         with IAM (`aws-glue-access-mode: iam`) or use a consumer role in the table's account"
    )]
    LakeFormationCrossAccount {
        product: String,
        port: String,
        consumer_account: String,
        table_account: String,
    },
    #[error(transparent)]
    Account(AccountError),
}

impl Permanent {
    /// The cause as written to DMM, where every user of the agreement reads it: specific, but
    /// without AWS's own error text (which names the integration's role and session) or the
    /// ARNs of the integration's management roles. The full error goes to the log.
    pub fn public_cause(&self) -> String {
        const SEE_LOG: &str = "the integration's log has the details";
        match self {
            Self::Iam(IamError::Refused {
                action,
                role,
                reason,
            })
            | Self::Iam(IamError::Unavailable {
                action,
                role,
                reason,
            }) => format!(
                "IAM refused {action} on role `{role}` ({}); {SEE_LOG}",
                error_code_of(reason)
            ),
            Self::LakeFormation(LakeFormationError::Refused {
                action,
                resource,
                reason,
            })
            | Self::LakeFormation(LakeFormationError::Unavailable {
                action,
                resource,
                reason,
            }) => format!(
                "Lake Formation refused {action} on {resource} ({}): the integration needs \
                 grantable SELECT and DESCRIBE on the table and DESCRIBE on its database, or to \
                 be a data lake administrator; {SEE_LOG}",
                error_code_of(reason)
            ),
            Self::Account(AccountError::Assume { account, .. }) => format!(
                "the integration could not act in account {account}: its management role \
                 could not be assumed; {SEE_LOG}"
            ),
            other => other.to_string(),
        }
    }
}

/// The AWS error code at the start of an SDK error description (`Code: message`), or a generic
/// word when there is none.
fn error_code_of(reason: &str) -> &str {
    match reason.split_once(':') {
        Some((code, _))
            if !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') =>
        {
            code
        }
        _ => "refused",
    }
}

impl crate::handlers::ErrorType for Retry {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Dmm(e) => crate::handlers::dmm_error_type(e),
            Self::Iam(_) => "IamUnavailable",
            Self::LakeFormation(_) => "LakeFormationUnavailable",
            Self::Ledger(_) => "StateBucketUnavailable",
            Self::Account(_) => "AccountUnavailable",
            Self::Deadline => "Deadline",
            Self::Tags(_) => "TagsUnreadable",
            Self::Queue(_) => "QueueUnavailable",
            Self::RoleContended { .. } => "RoleContended",
        }
    }
}

/// A fault outside the agreement (DMM or AWS unavailable, throttling, a configuration problem
/// that affects every agreement): the message is retried by SQS and, after `maxReceiveCount`,
/// parked in the dead-letter queue, where an operator can redrive it once the cause is fixed.
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error(transparent)]
    Dmm(#[from] DmmError),
    #[error(transparent)]
    Iam(IamError),
    #[error(transparent)]
    LakeFormation(LakeFormationError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Account(AccountError),
    /// The invocation was about to end while the message was still being converged; it was
    /// abandoned (safe at any point, like a crash) and is retried.
    #[error("the invocation's time ran out before the message was converged")]
    Deadline,
    /// The tags proving a resource's owner could not be read (throttling, a service fault).
    #[error(transparent)]
    Tags(TagError),
    /// Reconcile requests (change propagation, drift sweep) could not be queued.
    #[error("queueing reconcile requests failed: {0}")]
    Queue(QueueError),
    /// Other agreements on the role kept changing its role record (packed layout, ADR 023)
    /// faster than this one could write or converge it; the message is retried later.
    #[error(
        "other agreements on role `{role}` kept changing its packed policies ({rounds} rounds)"
    )]
    RoleContended { role: String, rounds: usize },
}

/// Why converging one agreement did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Permanent(#[from] Permanent),
    #[error(transparent)]
    Retry(#[from] Retry),
}

impl From<Box<Permanent>> for ReconcileError {
    fn from(e: Box<Permanent>) -> Self {
        Self::Permanent(*e)
    }
}

impl From<IamError> for ReconcileError {
    fn from(e: IamError) -> Self {
        if e.is_transient() {
            Self::Retry(Retry::Iam(e))
        } else {
            Self::Permanent(Permanent::Iam(e))
        }
    }
}

impl From<LakeFormationError> for ReconcileError {
    fn from(e: LakeFormationError) -> Self {
        if e.is_transient() {
            Self::Retry(Retry::LakeFormation(e))
        } else {
            Self::Permanent(Permanent::LakeFormation(e))
        }
    }
}

impl From<AccountError> for ReconcileError {
    fn from(e: AccountError) -> Self {
        if e.is_transient() {
            Self::Retry(Retry::Account(e))
        } else {
            Self::Permanent(Permanent::Account(e))
        }
    }
}

/// DMM faults are retried, except the two that are about the document asked for, which no
/// retry can change.
impl From<DmmError> for ReconcileError {
    fn from(e: DmmError) -> Self {
        match e {
            DmmError::InvalidId { .. } | DmmError::Unusable(_) => {
                Self::Permanent(Permanent::Document(e))
            }
            e => Self::Retry(Retry::Dmm(e)),
        }
    }
}

impl From<LedgerError> for ReconcileError {
    fn from(e: LedgerError) -> Self {
        Self::Retry(Retry::Ledger(e))
    }
}

impl From<PolicyError> for ReconcileError {
    fn from(e: PolicyError) -> Self {
        Self::Permanent(Permanent::Policy(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::accounts::AssumeError;

    #[test]
    fn causes_for_dmm_carry_no_aws_text_or_own_role_arns() {
        let iam = Permanent::Iam(IamError::Refused {
            action: "PutRolePolicy",
            role: "shipments".into(),
            reason: "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/dmm-manage/x is \
                     not authorized"
                .into(),
        });
        assert_eq!(
            iam.public_cause(),
            "IAM refused PutRolePolicy on role `shipments` (AccessDenied); the integration's log \
             has the details"
        );
        assert!(iam.to_string().contains("assumed-role"), "the log keeps it");
        let account = Permanent::Account(AccountError::Assume {
            account: "222222222222".into(),
            source: AssumeError::Refused {
                role_arn: "arn:aws:iam::222222222222:role/dmm-management".into(),
                reason: "AccessDenied: not trusted".into(),
            },
        });
        let cause = account.public_cause();
        assert!(
            cause.contains("222222222222") && !cause.contains("dmm-management"),
            "{cause}"
        );
        let odd = Permanent::Iam(IamError::Unavailable {
            action: "GetRole",
            role: "r".into(),
            reason: "HTTP 403 without an error code the SDK could read".into(),
        });
        assert!(
            odd.public_cause().contains("(refused)"),
            "{}",
            odd.public_cause()
        );
        let lake = Permanent::LakeFormation(LakeFormationError::Refused {
            action: "GrantPermissions",
            resource: "table sales.orders (catalog 111122223333, eu-west-1)".into(),
            reason: "AccessDeniedException: arn:aws:sts::123456789012:assumed-role/dmm-manage/x \
                     is not authorized"
                .into(),
        });
        let cause = lake.public_cause();
        assert!(
            cause.starts_with(
                "Lake Formation refused GrantPermissions on table sales.orders (catalog \
                 111122223333, eu-west-1) (AccessDeniedException): the integration needs grantable"
            ) && !cause.contains("assumed-role"),
            "{cause}"
        );
        let plain = Permanent::ProtectedBucket("state".into());
        assert_eq!(plain.public_cause(), plain.to_string());
    }
}
