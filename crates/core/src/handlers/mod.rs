//! The two Lambda functions' handlers: configuration, client wiring and one invocation each.
//! The binaries only install logging and hand these to the Lambda runtime.

pub mod poll_feed;

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::OnceCell;

use aws_config::SdkConfig;
use lambda_runtime::Diagnostic;

use crate::aws::secrets::{SecretApiKey, SecretError};
use crate::aws::{AwsTimeouts, load_sdk_config};
use crate::config::{self, ConfigError, Env, ProcessEnv, process_env};
use crate::dmm::{DmmClient, DmmError, HttpSettings};
use crate::telemetry;

/// An invocation's failure as an operator sees it in CloudWatch: `errorType` is a stable word to
/// search and alarm on (not a Rust type name), the message says what to fix.
pub trait ErrorType: std::fmt::Display {
    fn error_type(&self) -> &'static str;
}

/// The Lambda Runtime API's error report for `error`.
pub fn diagnostic(error: &dyn ErrorType) -> Diagnostic {
    Diagnostic {
        error_type: error.error_type().to_owned(),
        error_message: error.to_string(),
    }
}

impl ErrorType for ConfigError {
    fn error_type(&self) -> &'static str {
        "InvalidConfiguration"
    }
}

/// What failed when DMM did, in a word.
pub(crate) fn dmm_error_type(error: &DmmError) -> &'static str {
    match error {
        DmmError::Unauthorized { .. } => "DmmUnauthorized",
        DmmError::Unavailable { .. } | DmmError::Network { .. } => "DmmUnavailable",
        DmmError::Malformed { .. } | DmmError::Unusable(_) => "DmmMalformedResponse",
        DmmError::BaseUrl(_) => "InvalidConfiguration",
        DmmError::Refused { .. } | DmmError::InvalidId { .. } => "DmmRequestRefused",
    }
}

/// Both functions start the same way: logging, then the configuration and the AWS SDK. A
/// configuration error does not end the process: it is logged once here and every invocation
/// reports it (see [`diagnostic`]), naming the variable, where an operator looks first.
pub async fn configure<C>(
    from_env: impl FnOnce(&ProcessEnv) -> Result<C, ConfigError>,
) -> Result<(C, SdkConfig), ConfigError> {
    let env = process_env();
    telemetry::init(env.optional(config::LOG_LEVEL).as_deref());
    let configured = from_env(&env).and_then(|config| Ok((config, AwsTimeouts::from_env(&env)?)));
    match configured {
        Ok((config, timeouts)) => Ok((config, load_sdk_config(timeouts).await)),
        Err(error) => {
            tracing::error!(error = %error, "invalid configuration");
            Err(error)
        }
    }
}

/// Converts the Lambda deadline (wall clock) to a monotonic instant for the run's time checks.
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

/// Settings both functions share for reaching DMM.
#[derive(Debug, Clone)]
pub struct DmmSettings {
    pub base_url: String,
    pub api_key_secret_name: String,
    pub http: HttpSettings,
}

impl DmmSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: env.base_url(config::DMM_BASE_URL)?,
            api_key_secret_name: env.required(config::DMM_API_KEY_SECRET_NAME)?,
            http: HttpSettings {
                request_timeout: env.millis_or(config::DMM_REQUEST_TIMEOUT_MS, 10_000)?,
                ..HttpSettings::default()
            },
        })
    }
}

/// Why the DMM client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Client(#[from] DmmError),
}

impl ErrorType for ConnectError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Secret(_) => "DmmApiKeySecret",
            Self::Client(e) => dmm_error_type(e),
        }
    }
}

impl ConnectError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Secret(e) => e.is_transient(),
            Self::Client(e) => e.is_transient(),
        }
    }
}

/// The DMM client, built on first use (it needs the API key from Secrets Manager) and then kept
/// for the life of the container with its connection pool.
#[derive(Debug)]
pub struct LazyDmm {
    settings: DmmSettings,
    secret: SecretApiKey,
    client: OnceCell<DmmClient>,
}

impl LazyDmm {
    pub fn new(settings: DmmSettings, secrets: aws_sdk_secretsmanager::Client) -> Self {
        let secret = SecretApiKey::new(secrets, settings.api_key_secret_name.clone());
        Self {
            settings,
            secret,
            client: OnceCell::new(),
        }
    }

    pub async fn client(&self) -> Result<&DmmClient, ConnectError> {
        self.client
            .get_or_try_init(|| async {
                let key = self.secret.get().await?;
                Ok(DmmClient::new(
                    &self.settings.base_url,
                    key,
                    self.settings.http.clone(),
                )?)
            })
            .await
    }
}
pub mod manage_iam_policies;
