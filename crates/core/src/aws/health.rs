//! manage_iam_policies' health record in the state bucket, which poll_feed reports in the
//! connector document. Losing it costs only that line on DMM's connectors page, so a failed
//! read or write is logged and never fails a run or a batch.

use aws_sdk_s3::primitives::ByteStream;

use super::describe;
use crate::connector::{HealthStore, ManageHealth};

/// The health record's key in the state bucket.
pub const HEALTH_KEY: &str = "health/manage_iam_policies.json";

#[derive(Debug, Clone)]
pub struct S3Health {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Health {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

impl HealthStore for S3Health {
    async fn read(&self) -> Option<ManageHealth> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(HEALTH_KEY)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return None,
            Err(e) => {
                tracing::warn!(key = HEALTH_KEY, error = %describe(&e), "could not read manage_iam_policies' health record");
                return None;
            }
        };
        let bytes = output.body.collect().await.ok()?.into_bytes();
        serde_json::from_slice(&bytes)
            .inspect_err(|e| tracing::warn!(key = HEALTH_KEY, error = %e, "manage_iam_policies' health record is not readable"))
            .ok()
    }

    async fn write(&self, health: &ManageHealth) {
        let body = serde_json::to_vec(health).expect("the health record serializes");
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(HEALTH_KEY)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(key = HEALTH_KEY, error = %describe(&e), "could not write the health record");
        }
    }
}
