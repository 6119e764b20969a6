//! AWS adapters. Each implements one of the small traits the domain uses, with the real SDK
//! clients; endpoints, region and credentials come from the standard SDK configuration
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, the credential chain incl. web identity).

pub mod access_roles;
pub mod accounts;
pub mod checkpoint;
pub mod iam;
pub mod ledger;
pub mod queue;
pub mod secrets;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;

/// Loads the SDK configuration once per container.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
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
