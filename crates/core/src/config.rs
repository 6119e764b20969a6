//! Runtime configuration from environment variables.
//!
//! The names are the Python reference integration's, so an existing deployment's Terraform keeps
//! working. Every variable a function reads is listed in one place per function
//! ([`POLL_FEED_VARIABLES`], [`MANAGE_IAM_POLICIES_VARIABLES`]); Terraform sets exactly these and a
//! test checks it. Configuration is read once at start; a missing or malformed value fails every
//! invocation with a message naming the variable, so an operator sees the cause in the Lambda
//! console instead of a bare exit code.

use std::str::FromStr;
use std::time::Duration;

/// Base URL of the Data Mesh Manager API, e.g. `https://api.datamesh-manager.com`.
pub const DMM_BASE_URL: &str = "dmm_base_url";
/// Name (or ARN) of the Secrets Manager secret holding the DMM API key.
pub const DMM_API_KEY_SECRET_NAME: &str = "dmm_api_key_secret_name";
/// S3 bucket for the checkpoint (poll_feed) and the grant ledger (manage_iam_policies).
pub const BUCKET_NAME: &str = "bucket_name";
/// Key of the checkpoint object; the reference integration's default is kept.
pub const LAST_EVENT_ID_OBJECT_NAME: &str = "last_event_id_object_name";
/// URL of the SQS FIFO queue: poll_feed forwards events to it, manage_iam_policies queues
/// reconcile requests on it (data product changes, the drift sweep).
pub const SQS_QUEUE_URL: &str = "sqs_queue_url";
/// `true` forwards every event type, not only the agreement events manage_iam_policies acts on.
pub const FORWARD_ALL_EVENTS: &str = "forward_all_events";
/// Timeout of one DMM HTTP request, in milliseconds.
pub const DMM_REQUEST_TIMEOUT_MS: &str = "dmm_request_timeout_ms";
/// Longest an AWS call (S3, SQS, IAM, STS, Secrets Manager) may take including the SDK's
/// retries, in milliseconds; one attempt gets two fifths of it (ADR 015).
pub const AWS_OPERATION_TIMEOUT_MS: &str = "aws_operation_timeout_ms";
/// poll_feed stops starting new pages once less than this many milliseconds are left.
pub const DEADLINE_MARGIN_MS: &str = "deadline_margin_ms";
/// After catching up, poll_feed waits this many milliseconds and reads the feed again, until
/// its deadline margin; `0` reads the feed once per run.
pub const POLL_INTERVAL_MS: &str = "poll_interval_ms";
/// Log filter (`error`, `warn`, `info`, `debug`, or a tracing directive).
pub const LOG_LEVEL: &str = "log_level";
/// Roles the integration may manage must have a path starting with this prefix.
pub const MANAGED_ROLE_PATH_PREFIX: &str = "managed_role_path_prefix";
/// Roles the integration may manage must have a name matching this pattern (`*` wildcards).
pub const MANAGED_ROLE_NAME_PATTERN: &str = "managed_role_name_pattern";
/// Comma-separated role names the integration must never write to (its own roles).
pub const PROTECTED_ROLE_NAMES: &str = "protected_role_names";

/// `enforce` (default), `audit` or `off`: whether a grant needs proof that the provider owns the
/// port's resources and the consumer owns the role (ADR 017).
pub const OWNERSHIP_CHECK: &str = "ownership_check";
/// JSON: owner team id → ARN patterns the team owns, for resources that cannot be tagged.
pub const OWNERSHIP_MAP: &str = "ownership_map";
/// Comma-separated buckets never granted, besides the state and artifacts buckets.
pub const PROTECTED_BUCKET_NAMES: &str = "protected_bucket_names";
/// The bucket holding the Lambda artifacts (never granted); empty when deployed from local zips.
pub const ARTIFACTS_BUCKET_NAME: &str = "artifacts_bucket_name";

/// `both` (default), `tags` or `provisioning`: where each agreement's state is reported in DMM
/// (ADR 018).
pub const STATUS_REPORTING: &str = "status_reporting";
/// `iam` (default) or `lake_formation`: how `glue_table` ports are granted (ADR 022).
pub const GLUE_ACCESS_MODE: &str = "glue_access_mode";
/// `inline` (default) or `packed`: how grants are laid out on consumer roles (ADR 023).
pub const GRANT_LAYOUT: &str = "grant_layout";
/// With `packed`: how many managed policies the integration may attach to one role.
pub const MANAGED_POLICIES_PER_ROLE: &str = "managed_policies_per_role";
/// The id of the integration's connector document in DMM (`PUT /api/connectors/{id}`).
pub const CONNECTOR_ID: &str = "connector_id";

/// Accounts other than its own the integration manages, as JSON:
/// `{"<account id>": {"role_arn": "<management role ARN>", "external_id": "<external id>"}}`.
pub const MANAGED_ACCOUNTS: &str = "managed_accounts";

/// The default checkpoint key, as in the reference integration.
pub const DEFAULT_LAST_EVENT_ID_OBJECT_NAME: &str = "poll_feed/last_event_id";

/// Every variable poll_feed reads.
pub const POLL_FEED_VARIABLES: &[&str] = &[
    DMM_BASE_URL,
    DMM_API_KEY_SECRET_NAME,
    BUCKET_NAME,
    LAST_EVENT_ID_OBJECT_NAME,
    SQS_QUEUE_URL,
    FORWARD_ALL_EVENTS,
    DMM_REQUEST_TIMEOUT_MS,
    AWS_OPERATION_TIMEOUT_MS,
    DEADLINE_MARGIN_MS,
    POLL_INTERVAL_MS,
    LOG_LEVEL,
    CONNECTOR_ID,
];

/// Every variable manage_iam_policies reads.
pub const MANAGE_IAM_POLICIES_VARIABLES: &[&str] = &[
    DMM_BASE_URL,
    DMM_API_KEY_SECRET_NAME,
    BUCKET_NAME,
    SQS_QUEUE_URL,
    MANAGED_ROLE_PATH_PREFIX,
    MANAGED_ROLE_NAME_PATTERN,
    PROTECTED_ROLE_NAMES,
    MANAGED_ACCOUNTS,
    OWNERSHIP_CHECK,
    OWNERSHIP_MAP,
    PROTECTED_BUCKET_NAMES,
    STATUS_REPORTING,
    GLUE_ACCESS_MODE,
    GRANT_LAYOUT,
    MANAGED_POLICIES_PER_ROLE,
    ARTIFACTS_BUCKET_NAME,
    DMM_REQUEST_TIMEOUT_MS,
    AWS_OPERATION_TIMEOUT_MS,
    LOG_LEVEL,
];

/// A configuration problem, always naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable `{0}` is required but not set")]
    Missing(&'static str),
    #[error("environment variable `{name}` is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads variables through a lookup function, so parsing is testable without touching the
/// process environment.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

/// The process environment.
pub type ProcessEnv = Env<fn(&str) -> Option<String>>;

pub fn process_env() -> ProcessEnv {
    Env::new(|name| std::env::var(name).ok())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// A set, non-blank value; blank counts as missing because Terraform renders unset
    /// variables as empty strings.
    fn value(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.value(name).ok_or(ConfigError::Missing(name))
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.value(name)
    }

    /// A comma-separated list, blanks dropped.
    pub fn list(&self, name: &'static str) -> Vec<String> {
        self.value(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.value(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: format!("`{raw}`: {e}"),
            }),
        }
    }

    pub fn millis_or(&self, name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parsed_or(name, default_ms).map(Duration::from_millis)
    }

    /// An `https://` URL without a trailing slash; `http://` only for a loopback host (the local
    /// stack), because the URL receives the DMM API key with every request.
    pub fn base_url(&self, name: &'static str) -> Result<String, ConfigError> {
        let raw = self.required(name)?;
        let invalid = |reason: String| ConfigError::Invalid { name, reason };
        if let Some(rest) = raw.strip_prefix("http://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = match authority.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
            };
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(invalid(format!(
                    "`{raw}` sends the API key unencrypted; use https:// (http:// is accepted only \
                     for a loopback host)"
                )));
            }
        } else if !raw.starts_with("https://") {
            return Err(invalid(format!("`{raw}` must start with https://")));
        }
        Ok(raw.trim_end_matches('/').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::new(move |k| map.get(k).cloned())
    }

    #[test]
    fn missing_and_blank_name_the_variable() {
        let e = env(&[(BUCKET_NAME, "  ")]);
        assert_eq!(
            e.required(BUCKET_NAME),
            Err(ConfigError::Missing(BUCKET_NAME))
        );
        assert_eq!(
            e.required(SQS_QUEUE_URL).unwrap_err().to_string(),
            "environment variable `sqs_queue_url` is required but not set"
        );
    }

    #[test]
    fn malformed_number_names_variable_and_value() {
        let e = env(&[(DMM_REQUEST_TIMEOUT_MS, "ten")]);
        let err = e.millis_or(DMM_REQUEST_TIMEOUT_MS, 5).unwrap_err();
        assert!(err.to_string().contains("dmm_request_timeout_ms"), "{err}");
        assert!(err.to_string().contains("`ten`"), "{err}");
        assert_eq!(
            env(&[]).millis_or(DMM_REQUEST_TIMEOUT_MS, 5),
            Ok(Duration::from_millis(5))
        );
    }

    #[test]
    fn base_url_requires_scheme_and_drops_trailing_slash() {
        assert_eq!(
            env(&[(DMM_BASE_URL, "https://dmm.example/")]).base_url(DMM_BASE_URL),
            Ok("https://dmm.example".to_owned())
        );
        assert!(matches!(
            env(&[(DMM_BASE_URL, "dmm.example")]).base_url(DMM_BASE_URL),
            Err(ConfigError::Invalid {
                name: DMM_BASE_URL,
                ..
            })
        ));
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost/dmm",
            "http://[::1]:9",
        ] {
            assert!(
                env(&[(DMM_BASE_URL, local)]).base_url(DMM_BASE_URL).is_ok(),
                "{local}"
            );
        }
        for remote in [
            "http://dmm.example",
            "http://10.0.0.1:8080",
            "http://127.0.0.1.evil.example",
        ] {
            let error = env(&[(DMM_BASE_URL, remote)])
                .base_url(DMM_BASE_URL)
                .unwrap_err();
            assert!(
                error.to_string().contains("unencrypted"),
                "{remote}: {error}"
            );
        }
    }
}
