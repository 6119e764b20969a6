//! The two Lambda functions' handlers: configuration, client wiring and one invocation each.
//! The binaries only install logging and hand these to the Lambda runtime.

pub mod poll_feed;

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::OnceCell;

use crate::aws::secrets::{SecretApiKey, SecretError};
use crate::config::{self, ConfigError, Env};
use crate::dmm::{DmmClient, DmmError, HttpSettings};

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
