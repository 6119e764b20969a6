//! Inline role policies in IAM, the only IAM objects a same-account grant touches.

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::SdkError;

use super::{describe, error_code};
use crate::reconcile::iam::{IamError, RoleInfo, RolePolicies};

const REFUSED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "MalformedPolicyDocument",
    "LimitExceeded",
    "UnmodifiableEntity",
    "InvalidInput",
    "ValidationError",
];

/// Whether IAM refused the request itself. A `403` whose body carries no error code the SDK can
/// read (some gateways and emulators render the denial differently) is an access denial too:
/// retrying it only fills the dead-letter queue.
fn is_refusal<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: aws_sdk_iam::error::ProvideErrorMetadata,
{
    match error_code(err) {
        Some(code) => REFUSED_CODES.contains(&code),
        None => matches!(err, SdkError::ServiceError(e) if e.raw().status().as_u16() == 403),
    }
}

pub(crate) fn classify<E>(
    action: &'static str,
    role: &str,
    err: &SdkError<E, HttpResponse>,
) -> IamError
where
    E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error,
{
    let reason = match err {
        SdkError::ServiceError(e) if error_code(err).is_none() => {
            format!(
                "HTTP {} without an error code the SDK could read",
                e.raw().status().as_u16()
            )
        }
        _ => describe(err),
    };
    if is_refusal(err) {
        IamError::Refused {
            action,
            role: role.to_owned(),
            reason,
        }
    } else {
        IamError::Unavailable {
            action,
            role: role.to_owned(),
            reason,
        }
    }
}

pub(crate) fn is_no_such_entity<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_iam::error::ProvideErrorMetadata,
{
    error_code(err) == Some("NoSuchEntity")
}

/// The permission services of one account, as one session reaches them: [`RolePolicies`] and
/// access roles in IAM, and the Lake Formation permissions of its Data Catalog
/// (`aws::lake_formation`).
#[derive(Debug, Clone)]
pub struct IamRoles {
    client: aws_sdk_iam::Client,
    /// Lake Formation of the session's own region (other regions get a client per call).
    lake_formation: aws_sdk_lakeformation::Client,
}

impl IamRoles {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_iam::Client::new(sdk),
            lake_formation: aws_sdk_lakeformation::Client::new(sdk),
        }
    }

    pub(crate) fn client(&self) -> &aws_sdk_iam::Client {
        &self.client
    }

    pub(crate) fn own_lake_formation(&self) -> &aws_sdk_lakeformation::Client {
        &self.lake_formation
    }
}

impl RolePolicies for IamRoles {
    async fn role(&self, name: &str) -> Result<Option<RoleInfo>, IamError> {
        match self.client.get_role().role_name(name).send().await {
            Ok(output) => Ok(output.role().map(|role| RoleInfo {
                name: role.role_name().to_owned(),
                arn: role.arn().to_owned(),
                path: role.path().to_owned(),
                tags: role
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            })),
            Err(e) if is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(classify("GetRole", name, &e)),
        }
    }

    async fn policy_names(&self, role: &str) -> Result<Vec<String>, IamError> {
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let output = self
                .client
                .list_role_policies()
                .role_name(role)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("ListRolePolicies", role, &e))?;
            names.extend(output.policy_names().iter().cloned());
            marker = output.marker().map(str::to_owned);
            if !output.is_truncated() || marker.is_none() {
                return Ok(names);
            }
        }
    }

    async fn policy(&self, role: &str, name: &str) -> Result<Option<String>, IamError> {
        match self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.policy_document().to_owned())),
            Err(e) if is_no_such_entity(&e) => Ok(None),
            Err(e) => Err(classify("GetRolePolicy", role, &e)),
        }
    }

    async fn put_policy(&self, role: &str, name: &str, document: &str) -> Result<(), IamError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutRolePolicy", role, &e))
    }

    async fn delete_policy(&self, role: &str, name: &str) -> Result<(), IamError> {
        match self
            .client
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_entity(&e) => Ok(()),
            Err(e) => Err(classify("DeleteRolePolicy", role, &e)),
        }
    }
}
