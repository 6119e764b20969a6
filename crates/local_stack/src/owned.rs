//! Provider resources and consumer roles in moto, tagged with their owner as a real deployment
//! tags them (`dmm-data-product`, `dmm-team`), so the integration's ownership check (ADR 017)
//! finds its proof with the real AWS APIs.
//!
//! moto quirks compensated here: Glue, Athena and MSK tags are kept per ARN whether or not the
//! resource exists, so those are tagged by ARN without creating the (costly, unused) catalog
//! objects; Kinesis and KMS check existence, so the stream and the key are created. KMS key ids
//! are random; [`Owned::kms_key`] seeds moto's generator first so a fixture can name its key's
//! ARN up front.

use aws_config::Region;
use aws_config::SdkConfig;

use crate::{Moto, MotoError, s3_client};

/// A tag key and value.
pub type Tag<'a> = (&'a str, &'a str);

/// Creates and tags resources as one account's holder (`sdk`).
pub struct Owned<'a> {
    pub moto: &'a Moto,
    pub sdk: &'a SdkConfig,
}

fn failed(what: &str, e: impl std::fmt::Debug) -> MotoError {
    MotoError::Setup(format!("{what}: {e:?}"))
}

impl Owned<'_> {
    fn in_region(&self, region: &str) -> SdkConfig {
        self.sdk
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build()
    }

    /// Creates the bucket (if needed) and sets its tags.
    pub async fn bucket(&self, name: &str, tags: &[Tag<'_>]) -> Result<(), MotoError> {
        let s3 = s3_client(self.sdk);
        let exists = s3.head_bucket().bucket(name).send().await.is_ok();
        if !exists {
            s3.create_bucket()
                .bucket(name)
                .send()
                .await
                .map_err(|e| failed(&format!("create bucket {name}"), e))?;
        }
        let tag_set = tags
            .iter()
            .map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(*k).value(*v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed("bucket tag", e))?;
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| failed("bucket tagging", e))?;
        s3.put_bucket_tagging()
            .bucket(name)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| failed(&format!("tag bucket {name}"), e))?;
        Ok(())
    }

    /// Tags a Glue table or database by ARN.
    pub async fn glue(&self, arn: &str, tags: &[Tag<'_>]) -> Result<(), MotoError> {
        let client = aws_sdk_glue::Client::new(&self.in_region(region_of(arn)));
        client
            .tag_resource()
            .resource_arn(arn)
            .set_tags_to_add(Some(owned_map(tags)))
            .send()
            .await
            .map_err(|e| failed(&format!("tag {arn}"), e))?;
        Ok(())
    }

    /// Tags an Athena workgroup by ARN.
    pub async fn workgroup(&self, arn: &str, tags: &[Tag<'_>]) -> Result<(), MotoError> {
        let client = aws_sdk_athena::Client::new(&self.in_region(region_of(arn)));
        let tags = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_athena::types::Tag::builder()
                    .key(*k)
                    .value(*v)
                    .build()
            })
            .collect();
        client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| failed(&format!("tag {arn}"), e))?;
        Ok(())
    }

    /// Tags an MSK cluster by ARN.
    pub async fn msk_cluster(&self, arn: &str, tags: &[Tag<'_>]) -> Result<(), MotoError> {
        let client = aws_sdk_kafka::Client::new(&self.in_region(region_of(arn)));
        client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(owned_map(tags)))
            .send()
            .await
            .map_err(|e| failed(&format!("tag {arn}"), e))?;
        Ok(())
    }

    /// Creates the Kinesis stream the ARN names and tags it.
    pub async fn stream(&self, arn: &str, tags: &[Tag<'_>]) -> Result<(), MotoError> {
        let client = aws_sdk_kinesis::Client::new(&self.in_region(region_of(arn)));
        let name = arn.rsplit('/').next().unwrap_or(arn);
        client
            .create_stream()
            .stream_name(name)
            .shard_count(1)
            .send()
            .await
            .map_err(|e| failed(&format!("create stream {name}"), e))?;
        client
            .add_tags_to_stream()
            .stream_arn(arn)
            .set_tags(Some(owned_map(tags)))
            .send()
            .await
            .map_err(|e| failed(&format!("tag {arn}"), e))?;
        Ok(())
    }

    /// Creates a KMS key in `region` with `tags` after seeding moto's id generator with
    /// `seed`, so the same seed on a fresh moto always gives the same key id. Returns its ARN.
    pub async fn kms_key(
        &self,
        region: &str,
        seed: u64,
        tags: &[Tag<'_>],
    ) -> Result<String, MotoError> {
        self.moto.seed(seed).await?;
        let client = aws_sdk_kms::Client::new(&self.in_region(region));
        let tags = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_kms::types::Tag::builder()
                    .tag_key(*k)
                    .tag_value(*v)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed("key tag", e))?;
        let key = client
            .create_key()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| failed("create KMS key", e))?;
        key.key_metadata()
            .and_then(|m| m.arn())
            .map(str::to_owned)
            .ok_or_else(|| MotoError::Setup("moto returned a key without an ARN".into()))
    }
}

fn owned_map(tags: &[Tag<'_>]) -> std::collections::HashMap<String, String> {
    tags.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The region part of an ARN.
fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}
