//! The DMM API key from Secrets Manager, fetched once per container.

use tokio::sync::OnceCell;

use super::{describe, error_code};
use crate::dmm::ApiKey;

/// Reading the API key failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret does not exist, is empty, or the function may not read it: a deployment
    /// problem that retrying will not fix.
    #[error("the DMM API key secret `{name}` cannot be used: {reason}")]
    Unusable { name: String, reason: String },
    /// Throttling, timeouts, network: worth retrying.
    #[error("reading the DMM API key secret `{name}` failed: {reason}")]
    Unavailable { name: String, reason: String },
}

impl SecretError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The secret's value is cached for the life of the container, so warm invocations make no
/// Secrets Manager call. A failed read is not cached: the next invocation tries again.
#[derive(Debug)]
pub struct SecretApiKey {
    client: aws_sdk_secretsmanager::Client,
    name: String,
    cached: OnceCell<ApiKey>,
}

const PERMANENT_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "AccessDeniedException",
    "InvalidRequestException",
    "InvalidParameterException",
    "DecryptionFailure",
];

impl SecretApiKey {
    pub fn new(client: aws_sdk_secretsmanager::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            cached: OnceCell::new(),
        }
    }

    pub async fn get(&self) -> Result<&ApiKey, SecretError> {
        self.cached.get_or_try_init(|| self.fetch()).await
    }

    async fn fetch(&self) -> Result<ApiKey, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.name)
            .send()
            .await
            .map_err(|e| {
                let reason = describe(&e);
                if error_code(&e).is_some_and(|c| PERMANENT_CODES.contains(&c)) {
                    SecretError::Unusable {
                        name: self.name.clone(),
                        reason,
                    }
                } else {
                    SecretError::Unavailable {
                        name: self.name.clone(),
                        reason,
                    }
                }
            })?;
        let key = ApiKey::new(output.secret_string().unwrap_or_default());
        if key.is_empty() {
            return Err(SecretError::Unusable {
                name: self.name.clone(),
                reason: "the secret has no string value".to_owned(),
            });
        }
        Ok(key)
    }
}
