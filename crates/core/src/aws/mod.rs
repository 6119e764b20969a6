//! AWS adapters. Each implements one of the small traits the domain uses, with the real SDK
//! clients; endpoints, region and credentials come from the standard SDK configuration
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, the credential chain incl. web identity).

pub mod access_roles;
pub mod accounts;
pub mod checkpoint;
pub mod health;
pub mod iam;
pub mod lake_formation;
pub mod ledger;
pub mod managed_policies;
pub mod queue;
pub mod secrets;
pub mod tags;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;

use crate::config::{self, ConfigError, Env};

/// Default of [`config::AWS_OPERATION_TIMEOUT_MS`].
pub const DEFAULT_AWS_OPERATION_TIMEOUT_MS: u64 = 25_000;
/// Lowest accepted [`config::AWS_OPERATION_TIMEOUT_MS`]; anything shorter fails healthy calls.
pub const MIN_AWS_OPERATION_TIMEOUT_MS: u64 = 100;
/// Connecting to an AWS endpoint takes milliseconds; the SDK's own default is 3.1 s.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Timeouts of every AWS call both functions make (ADR 001, ADR 015). Without them the SDK waits
/// for a hung S3, SQS, IAM, STS or Secrets Manager call until Lambda kills the invocation, which
/// turns one stuck connection into a lost batch and a cold start.
///
/// One setting, the operation timeout (the whole call including the SDK's retries), decides the
/// others: each attempt may take two fifths of it, so a hung first attempt still leaves room for
/// the backoff and a second attempt, and connecting may take at most 3 s (or the attempt's time
/// when that is shorter). With the default 25 s: attempts of 10 s, connect 3 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    pub operation: Duration,
    pub attempt: Duration,
    pub connect: Duration,
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        Self::for_operation(Duration::from_millis(DEFAULT_AWS_OPERATION_TIMEOUT_MS))
    }
}

impl AwsTimeouts {
    pub fn for_operation(operation: Duration) -> Self {
        let attempt = operation * 2 / 5;
        Self {
            operation,
            attempt,
            connect: attempt.min(MAX_CONNECT_TIMEOUT),
        }
    }

    /// From `aws_operation_timeout_ms`, or the default.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let operation = env.millis_or(
            config::AWS_OPERATION_TIMEOUT_MS,
            DEFAULT_AWS_OPERATION_TIMEOUT_MS,
        )?;
        if operation < Duration::from_millis(MIN_AWS_OPERATION_TIMEOUT_MS) {
            return Err(ConfigError::Invalid {
                name: config::AWS_OPERATION_TIMEOUT_MS,
                reason: format!(
                    "`{}` is below the minimum of {MIN_AWS_OPERATION_TIMEOUT_MS}",
                    operation.as_millis()
                ),
            });
        }
        Ok(Self::for_operation(operation))
    }

    pub fn to_config(self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_timeout(self.operation)
            .operation_attempt_timeout(self.attempt)
            .connect_timeout(self.connect)
            .build()
    }
}

/// Loads the SDK configuration once per container; every client built from it (S3, SQS, IAM,
/// STS, Secrets Manager, and the clients of assumed roles) inherits `timeouts`.
pub async fn load_sdk_config(timeouts: AwsTimeouts) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts.to_config())
        .load()
        .await
}

/// An S3 client; with a custom endpoint (moto, LocalStack, a VPC endpoint URL) buckets are
/// addressed path-style, because such endpoints rarely resolve virtual-hosted bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// A short, log-safe description of an SDK error: the service's code and message when there is
/// one, otherwise the kind of failure (timeout, dispatch, …).
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(f) => format!("could not send the request: {f:?}"),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        other => other.to_string(),
    }
}

/// The error code of a service error, for classifying it.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(value: Option<&str>) -> Result<AwsTimeouts, ConfigError> {
        let value = value.map(str::to_owned);
        AwsTimeouts::from_env(&Env::new(move |name| {
            (name == config::AWS_OPERATION_TIMEOUT_MS)
                .then(|| value.clone())
                .flatten()
        }))
    }

    #[test]
    fn one_setting_decides_all_three_timeouts() {
        let default = from(None).unwrap();
        assert_eq!(default, AwsTimeouts::default());
        assert_eq!(
            (default.operation, default.attempt, default.connect),
            (
                Duration::from_secs(25),
                Duration::from_secs(10),
                Duration::from_secs(3)
            )
        );
        let short = from(Some("1500")).unwrap();
        assert_eq!(
            (short.operation, short.attempt, short.connect),
            (
                Duration::from_millis(1500),
                Duration::from_millis(600),
                Duration::from_millis(600)
            )
        );
        let config = default.to_config();
        assert_eq!(config.operation_timeout(), Some(Duration::from_secs(25)));
        assert_eq!(
            config.operation_attempt_timeout(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(config.connect_timeout(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn too_short_or_malformed_values_name_the_variable() {
        for value in ["99", "0", "ten", "-5"] {
            let error = from(Some(value)).unwrap_err().to_string();
            assert!(error.contains("aws_operation_timeout_ms"), "{error}");
        }
        assert!(from(Some("100")).is_ok());
    }
}
