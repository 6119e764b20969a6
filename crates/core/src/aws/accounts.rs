//! Reaching the IAM of other accounts (ADR 003): STS `AssumeRole` into each managed account's
//! management role, with its external id and a session name naming the agreement.
//!
//! The integration runs in one hub account. Every other account it may write to is listed in
//! the `managed_accounts` variable; a role or resource in any other account is a permanent error
//! for the agreement that names it, never a reason to try.
//!
//! Credentials are requested for the shortest duration STS allows (15 minutes) and cached per
//! *(account, agreement)* until a minute before they expire. Per agreement, not per account,
//! because the session name is the one place CloudTrail in the managed account shows *why* a
//! role or policy changed (`assumed-role/<management role>/dmm-<agreement id>`); sharing one
//! session between agreements would attribute every change to whichever came first. The cost
//! is one `AssumeRole` per agreement and warm container, which is small next to the IAM calls
//! the grant itself makes. Credentials are never logged: neither [`SessionCredentials`] nor the
//! SDK's `Credentials` print their secrets.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::SdkError;
use serde::Deserialize;

use super::iam::IamRoles;
use super::{describe, error_code};
use crate::policy::{AccountId, RoleArn};
use crate::reconcile::ReconcileError;
use crate::reconcile::converge::AccountIam;

/// `AssumeRole`'s shortest duration: a grant takes seconds, so anything longer only widens the
/// window in which leaked credentials would work.
pub const SESSION_DURATION: Duration = Duration::from_secs(900);
/// Cached credentials are replaced this long before they expire, so no IAM call starts with
/// credentials that run out halfway through a grant.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Prefix of every session name.
pub const SESSION_NAME_PREFIX: &str = "dmm-";
const MAX_SESSION_NAME_LEN: usize = 64;

/// How the integration reaches one managed account.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedAccount {
    pub role_arn: String,
    pub external_id: String,
}

impl std::fmt::Debug for ManagedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The external id is not a secret in the strict sense, but it is one of the two things
        // a confused deputy would need; keep it out of logs.
        f.debug_struct("ManagedAccount")
            .field("role_arn", &self.role_arn)
            .field("external_id", &"***")
            .finish()
    }
}

/// The `managed_accounts` configuration: account id → management role and external id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedAccounts(BTreeMap<String, ManagedAccount>);

impl ManagedAccounts {
    /// Parses `{"<account>": {"role_arn": "...", "external_id": "..."}}`. Each role ARN must be
    /// a role in the account it is listed under, and each external id what STS accepts
    /// (2–1224 characters of `[\w+=,.@:/-]`).
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, ManagedAccount> =
            serde_json::from_str(json).map_err(|e| format!("not the expected JSON object: {e}"))?;
        for (account, managed) in &raw {
            if AccountId::parse(account).is_none() {
                return Err(format!("`{account}` is not a 12-digit account id"));
            }
            let arn = RoleArn::parse(&managed.role_arn)
                .map_err(|reason| format!("account {account}: role_arn: {reason}"))?;
            if arn.account() != account {
                return Err(format!(
                    "account {account}: role_arn `{}` is a role in account {}",
                    managed.role_arn,
                    arn.account()
                ));
            }
            let id = &managed.external_id;
            let valid = (2..=1224).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
            if !valid {
                return Err(format!(
                    "account {account}: external_id must be 2 to 1224 characters of \
                     letters, digits and _+=,.@:/-"
                ));
            }
        }
        Ok(Self(raw))
    }

    pub fn get(&self, account: &str) -> Option<&ManagedAccount> {
        self.0.get(account)
    }

    pub fn contains(&self, account: &str) -> bool {
        self.0.contains_key(account)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The session name for work on an agreement: `dmm-<id>`, with characters STS does not accept
/// replaced by `_`, at most 64 characters. It only attributes (CloudTrail), so a lossy mapping
/// is fine.
pub fn session_name(agreement_id: &str) -> String {
    let mut name = String::from(SESSION_NAME_PREFIX);
    name.extend(
        agreement_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_SESSION_NAME_LEN - SESSION_NAME_PREFIX.len()),
    );
    name
}

/// Temporary credentials from STS.
#[derive(Clone)]
pub struct SessionCredentials {
    pub credentials: Credentials,
    pub expires_at: SystemTime,
}

/// `AssumeRole` failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AssumeError {
    /// STS refused (the management role does not trust the integration, the external id does
    /// not match, the role does not exist): the same call will be refused again.
    #[error("STS refused AssumeRole on `{role_arn}`: {reason}")]
    Refused { role_arn: String, reason: String },
    #[error("STS AssumeRole on `{role_arn}` failed: {reason}")]
    Unavailable { role_arn: String, reason: String },
}

/// One STS call. A trait so the caching and the parameters are testable without STS.
pub trait AssumeRole: Send + Sync {
    fn assume_role(
        &self,
        role_arn: &str,
        external_id: &str,
        session_name: &str,
        duration: Duration,
    ) -> impl Future<Output = Result<SessionCredentials, AssumeError>> + Send;
}

/// [`AssumeRole`] with the SDK's STS client.
#[derive(Debug, Clone)]
pub struct StsAssumer {
    client: aws_sdk_sts::Client,
}

impl StsAssumer {
    pub fn new(client: aws_sdk_sts::Client) -> Self {
        Self { client }
    }
}

/// STS answers a refusal with 403 and `AccessDenied`. Some implementations (moto) answer 403 in
/// a shape the SDK does not parse into an error code, so the HTTP status decides as well.
fn classify_assume(
    role_arn: &str,
    err: &SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>,
) -> AssumeError {
    let code = error_code(err);
    let status = err.raw_response().map(|raw| raw.status().as_u16());
    let refused = matches!(
        code,
        Some("AccessDenied" | "AccessDeniedException" | "InvalidClientTokenId" | "ValidationError")
    ) || matches!(status, Some(400 | 403));
    let reason = match (code, status) {
        (None, Some(status)) if refused => format!("refused with HTTP {status}"),
        _ => describe(err),
    };
    if refused {
        AssumeError::Refused {
            role_arn: role_arn.to_owned(),
            reason,
        }
    } else {
        AssumeError::Unavailable {
            role_arn: role_arn.to_owned(),
            reason,
        }
    }
}

impl AssumeRole for StsAssumer {
    async fn assume_role(
        &self,
        role_arn: &str,
        external_id: &str,
        session_name: &str,
        duration: Duration,
    ) -> Result<SessionCredentials, AssumeError> {
        let output = self
            .client
            .assume_role()
            .role_arn(role_arn)
            .external_id(external_id)
            .role_session_name(session_name)
            .duration_seconds(duration.as_secs() as i32)
            .send()
            .await
            .map_err(|e| classify_assume(role_arn, &e))?;
        let unreadable = || AssumeError::Unavailable {
            role_arn: role_arn.to_owned(),
            reason: "the answer holds no credentials".to_owned(),
        };
        let c = output.credentials().ok_or_else(unreadable)?;
        let expires_at = SystemTime::try_from(*c.expiration()).map_err(|_| unreadable())?;
        Ok(SessionCredentials {
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                Some(expires_at),
                "dmm-managed-account",
            ),
            expires_at,
        })
    }
}

/// Getting the IAM client of an account failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccountError {
    /// The account is not in `managed_accounts`.
    #[error("account {0} is not managed by this integration (not in `managed_accounts`)")]
    Unmanaged(String),
    #[error("could not reach account {account}: {source}")]
    Assume {
        account: String,
        source: AssumeError,
    },
}

impl AccountError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Assume {
                source: AssumeError::Unavailable { .. },
                ..
            }
        )
    }
}

type CacheKey = (String, String);

/// The IAM clients of every account the integration manages, kept across warm invocations.
pub struct AccountClients<S> {
    sdk: SdkConfig,
    own: IamRoles,
    own_account: Option<String>,
    managed: ManagedAccounts,
    sts: S,
    cache: Mutex<HashMap<CacheKey, (SdkConfig, SystemTime)>>,
    now: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl<S> std::fmt::Debug for AccountClients<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountClients")
            .field("own_account", &self.own_account)
            .field("managed", &self.managed)
            .finish_non_exhaustive()
    }
}

impl<S: AssumeRole> AccountClients<S> {
    /// `own_account` is the hub's id when known up front (tests); the handler sets it from the
    /// invoked function's ARN otherwise.
    pub fn new(sdk: &SdkConfig, managed: ManagedAccounts, sts: S) -> Self {
        Self {
            own: IamRoles::new(sdk),
            sdk: sdk.clone(),
            own_account: None,
            managed,
            sts,
            cache: Mutex::new(HashMap::new()),
            now: Arc::new(SystemTime::now),
        }
    }

    /// Replaces the clock (tests of the cache).
    pub fn with_clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    pub fn managed(&self) -> &ManagedAccounts {
        &self.managed
    }

    /// The IAM client for `account` (`None`, or `own_account`: the integration's own), acting
    /// for `agreement_id`.
    pub async fn iam(
        &self,
        account: Option<&str>,
        own_account: Option<&str>,
        agreement_id: &str,
    ) -> Result<IamRoles, AccountError> {
        match self.sdk(account, own_account, agreement_id).await? {
            None => Ok(self.own.clone()),
            Some(sdk) => Ok(IamRoles::new(&sdk)),
        }
    }

    /// The SDK configuration for `account` acting for `agreement_id`: `None` for the
    /// integration's own account (its own credentials), otherwise the managed account's
    /// management role session, cached per (account, agreement) until shortly before it
    /// expires. Every client of that account (IAM, and the tag reads) is built from it.
    pub async fn sdk(
        &self,
        account: Option<&str>,
        own_account: Option<&str>,
        agreement_id: &str,
    ) -> Result<Option<SdkConfig>, AccountError> {
        let Some(account) = account.filter(|a| Some(*a) != own_account) else {
            return Ok(None);
        };
        let managed = self
            .managed
            .get(account)
            .ok_or_else(|| AccountError::Unmanaged(account.to_owned()))?;
        let key = (account.to_owned(), agreement_id.to_owned());
        let now = (self.now)();
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.retain(|_, (_, expires)| now + REFRESH_MARGIN < *expires);
            if let Some((sdk, _)) = cache.get(&key) {
                return Ok(Some(sdk.clone()));
            }
        }
        let session = self
            .sts
            .assume_role(
                &managed.role_arn,
                &managed.external_id,
                &session_name(agreement_id),
                SESSION_DURATION,
            )
            .await
            .map_err(|source| AccountError::Assume {
                account: account.to_owned(),
                source,
            })?;
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(session.credentials))
            .build();
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (sdk.clone(), session.expires_at));
        Ok(Some(sdk))
    }

    /// The integration's own SDK configuration.
    pub fn own_sdk(&self) -> &SdkConfig {
        &self.sdk
    }
}

/// [`AccountIam`] of the deployed function: its own IAM client, and the managed accounts'
/// through STS with a session naming `agreement_id`.
pub struct AgreementIam<'a, S> {
    pub clients: &'a AccountClients<S>,
    pub own_account: Option<&'a str>,
    pub agreement_id: &'a str,
}

impl<S: AssumeRole> AccountIam for AgreementIam<'_, S> {
    type Iam = IamRoles;

    async fn iam(&self, account: Option<&str>) -> Result<IamRoles, ReconcileError> {
        Ok(self
            .clients
            .iam(account, self.own_account, self.agreement_id)
            .await?)
    }

    fn own_account(&self) -> Option<&str> {
        self.own_account
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const CONFIG: &str = r#"{"222222222222": {"role_arn": "arn:aws:iam::222222222222:role/dmm/dmm-management", "external_id": "hub-ext-1"}}"#;

    #[derive(Default)]
    struct RecordingSts {
        calls: Mutex<Vec<(String, String, String, Duration)>>,
    }

    impl AssumeRole for RecordingSts {
        async fn assume_role(
            &self,
            role_arn: &str,
            external_id: &str,
            session_name: &str,
            duration: Duration,
        ) -> Result<SessionCredentials, AssumeError> {
            self.calls.lock().unwrap().push((
                role_arn.to_owned(),
                external_id.to_owned(),
                session_name.to_owned(),
                duration,
            ));
            let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
            Ok(SessionCredentials {
                credentials: Credentials::new("ASIA", "secret", Some("t".into()), None, "t"),
                expires_at,
            })
        }
    }

    fn sdk() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    #[test]
    fn configuration_is_validated_and_names_the_account() {
        let accounts = ManagedAccounts::parse(CONFIG).unwrap();
        assert!(accounts.contains("222222222222"));
        assert!(!format!("{accounts:?}").contains("hub-ext-1"));
        for (bad, needle) in [
            (
                r#"{"2222": {"role_arn": "arn:aws:iam::2222:role/x", "external_id": "abc"}}"#,
                "12-digit",
            ),
            (
                r#"{"222222222222": {"role_arn": "arn:aws:iam::333333333333:role/x", "external_id": "abc"}}"#,
                "333333333333",
            ),
            (
                r#"{"222222222222": {"role_arn": "arn:aws:iam::222222222222:role/x", "external_id": "a b"}}"#,
                "external_id",
            ),
            (
                r#"{"222222222222": {"role_arn": "arn:aws:iam::222222222222:role/x"}}"#,
                "external_id",
            ),
            (r#"[]"#, "JSON object"),
        ] {
            let err = ManagedAccounts::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn session_names_name_the_agreement_within_sts_limits() {
        assert_eq!(session_name("agr-1"), "dmm-agr-1");
        assert_eq!(session_name("a/b c"), "dmm-a_b_c");
        let long = session_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("dmm-xxx"));
    }

    #[tokio::test]
    async fn assumes_with_external_id_and_session_name_and_caches_per_agreement() {
        let clock = Arc::new(AtomicU64::new(1_000));
        let c = clock.clone();
        let clients = AccountClients::new(
            &sdk(),
            ManagedAccounts::parse(CONFIG).unwrap(),
            RecordingSts::default(),
        )
        .with_clock(move || SystemTime::UNIX_EPOCH + Duration::from_secs(c.load(Ordering::SeqCst)));
        let own = Some("123456789012");

        clients.iam(None, own, "a1").await.unwrap();
        clients.iam(own, own, "a1").await.unwrap();
        assert!(
            clients.sts.calls.lock().unwrap().is_empty(),
            "own account needs no STS"
        );

        clients.iam(Some("222222222222"), own, "a1").await.unwrap();
        clients.iam(Some("222222222222"), own, "a1").await.unwrap();
        clients.iam(Some("222222222222"), own, "a2").await.unwrap();
        {
            let calls = clients.sts.calls.lock().unwrap();
            assert_eq!(calls.len(), 2, "cached per (account, agreement)");
            assert_eq!(
                calls[0],
                (
                    "arn:aws:iam::222222222222:role/dmm/dmm-management".to_owned(),
                    "hub-ext-1".to_owned(),
                    "dmm-a1".to_owned(),
                    Duration::from_secs(900)
                )
            );
            assert_eq!(calls[1].2, "dmm-a2");
        }
        // 59 s before expiry (10 000 s) the credentials are renewed.
        clock.store(10_000 - 59, Ordering::SeqCst);
        clients.iam(Some("222222222222"), own, "a1").await.unwrap();
        assert_eq!(clients.sts.calls.lock().unwrap().len(), 3);

        let err = clients
            .iam(Some("444444444444"), own, "a1")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("444444444444"), "{err}");
        assert!(!err.is_transient());
    }
}
