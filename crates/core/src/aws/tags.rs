//! Tags of the resources a grant reads, with each service's own API (ADR 017): S3
//! GetBucketTagging, Glue GetTags, Kinesis ListTagsForStream, MSK ListTagsForResource, KMS
//! ListResourceTags, Athena ListTagsForResource. Read in the account that holds the resource
//! (through the management role for a managed account) and in the region its ARN names.

use aws_config::Region;
use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::accounts::{AccountClients, AssumeRole};
use super::{describe, error_code, s3_client};
use crate::reconcile::ownership::{ResourceTags, TagError, TagSource, Tags};

/// Error codes meaning "no such resource" or "no tags": no proof, not a fault.
const ABSENT_CODES: &[&str] = &[
    "NoSuchTagSet",
    "NoSuchTagSetError",
    "NoSuchBucket",
    "EntityNotFoundException",
    "ResourceNotFoundException",
    "NotFoundException",
];

/// Error codes meaning the read is refused: the same read is refused again.
const REFUSED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidInputException",
    "InvalidArgumentException",
    "InvalidRequestException",
    "ValidationException",
    "BadRequestException",
    "InvalidArnException",
];

/// Turns a failed tag read into "no tags", a refusal or a transient fault.
fn classify<E, R>(source: &TagSource, err: SdkError<E, R>) -> Result<Tags, TagError>
where
    E: ProvideErrorMetadata + std::error::Error,
{
    let code = error_code(&err).map(str::to_owned);
    match code.as_deref() {
        Some(code) if ABSENT_CODES.contains(&code) => Ok(Tags::new()),
        Some(code) if REFUSED_CODES.contains(&code) => Err(TagError::Refused {
            resource: source.describe(),
            code: code.to_owned(),
        }),
        _ => Err(TagError::Unavailable {
            resource: source.describe(),
            reason: describe(&err),
        }),
    }
}

/// [`ResourceTags`] of the deployed function, acting for one agreement.
pub struct AgreementTags<'a, S> {
    pub clients: &'a AccountClients<S>,
    pub own_account: Option<&'a str>,
    pub agreement_id: &'a str,
}

impl<S: AssumeRole> AgreementTags<'_, S> {
    async fn sdk(&self, account: Option<&str>, source: &TagSource) -> Result<SdkConfig, TagError> {
        match self
            .clients
            .sdk(account, self.own_account, self.agreement_id)
            .await
        {
            Ok(Some(sdk)) => Ok(sdk),
            Ok(None) => Ok(self.clients.own_sdk().clone()),
            Err(e) if e.is_transient() => Err(TagError::Unavailable {
                resource: source.describe(),
                reason: e.to_string(),
            }),
            Err(_) => Err(TagError::Refused {
                resource: source.describe(),
                code: "the account's management role cannot be assumed".to_owned(),
            }),
        }
    }
}

/// `sdk` with the resource's region.
fn in_region(sdk: &SdkConfig, region: &str) -> SdkConfig {
    sdk.to_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

impl<S: AssumeRole> ResourceTags for AgreementTags<'_, S> {
    async fn tags(&self, account: Option<&str>, source: &TagSource) -> Result<Tags, TagError> {
        let sdk = self.sdk(account, source).await?;
        match source {
            TagSource::S3Bucket { name } => {
                match s3_client(&sdk)
                    .get_bucket_tagging()
                    .bucket(name)
                    .send()
                    .await
                {
                    Ok(out) => Ok(out
                        .tag_set()
                        .iter()
                        .map(|t| (t.key().to_owned(), t.value().to_owned()))
                        .collect()),
                    Err(e) => classify(source, e),
                }
            }
            TagSource::Glue { arn, region } => {
                let client = aws_sdk_glue::Client::new(&in_region(&sdk, region));
                match client.get_tags().resource_arn(arn).send().await {
                    Ok(out) => Ok(out
                        .tags()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .collect()),
                    Err(e) => classify(source, e),
                }
            }
            TagSource::KinesisStream { arn, region } => {
                let client = aws_sdk_kinesis::Client::new(&in_region(&sdk, region));
                let mut tags = Tags::new();
                let mut start: Option<String> = None;
                loop {
                    let out = match client
                        .list_tags_for_stream()
                        .stream_arn(arn)
                        .set_exclusive_start_tag_key(start.take())
                        .send()
                        .await
                    {
                        Ok(out) => out,
                        Err(e) => return classify(source, e),
                    };
                    for tag in out.tags() {
                        tags.insert(
                            tag.key().to_owned(),
                            tag.value().unwrap_or_default().to_owned(),
                        );
                    }
                    match (out.has_more_tags(), out.tags().last()) {
                        (true, Some(last)) => start = Some(last.key().to_owned()),
                        _ => return Ok(tags),
                    }
                }
            }
            TagSource::MskCluster { arn, region } => {
                let client = aws_sdk_kafka::Client::new(&in_region(&sdk, region));
                match client
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .send()
                    .await
                {
                    Ok(out) => Ok(out
                        .tags()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .collect()),
                    Err(e) => classify(source, e),
                }
            }
            TagSource::KmsKey { arn, region } => {
                let client = aws_sdk_kms::Client::new(&in_region(&sdk, region));
                let pages = client
                    .list_resource_tags()
                    .key_id(arn)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await;
                match pages {
                    Ok(tags) => Ok(tags
                        .into_iter()
                        .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
                        .collect()),
                    Err(e) => classify(source, e),
                }
            }
            TagSource::AthenaWorkgroup { arn, region } => {
                let client = aws_sdk_athena::Client::new(&in_region(&sdk, region));
                let pages = client
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await;
                match pages {
                    Ok(tags) => Ok(tags
                        .into_iter()
                        .filter_map(|t| Some((t.key?, t.value?)))
                        .collect()),
                    Err(e) => classify(source, e),
                }
            }
        }
    }
}
