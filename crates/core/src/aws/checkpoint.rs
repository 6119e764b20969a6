//! The poll_feed checkpoint in S3: the last forwarded event id as plain text, at the same key and
//! in the same format as the reference integration, written conditionally on the ETag it was
//! read with so that two concurrent runs cannot both move it.

use aws_sdk_s3::primitives::ByteStream;

use super::{describe, error_code};
use crate::feed::poll::{Checkpoint, CheckpointError, CheckpointStore};

#[derive(Debug, Clone)]
pub struct S3Checkpoint {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
}

impl S3Checkpoint {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    fn storage_error(&self, action: &'static str, reason: String) -> CheckpointError {
        CheckpointError::Storage {
            action,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            reason,
        }
    }
}

impl CheckpointStore for S3Checkpoint {
    async fn load(&self) -> Result<Checkpoint, CheckpointError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(Checkpoint::default());
            }
            Err(e) => return Err(self.storage_error("read", describe(&e))),
        };
        let version = output.e_tag().map(str::to_owned);
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| self.storage_error("read", e.to_string()))?
            .into_bytes();
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| self.storage_error("read", "the object is not UTF-8 text".into()))?;
        let id = text.trim();
        Ok(Checkpoint {
            last_event_id: (!id.is_empty()).then(|| id.to_owned()),
            version,
        })
    }

    async fn save(
        &self,
        previous: &Checkpoint,
        last_event_id: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("text/plain")
            .body(ByteStream::from(last_event_id.as_bytes().to_vec()));
        request = match &previous.version {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(output) => Ok(Checkpoint {
                last_event_id: Some(last_event_id.to_owned()),
                version: output.e_tag().map(str::to_owned),
            }),
            Err(e)
                if matches!(
                    error_code(&e),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                Err(CheckpointError::Conflict {
                    key: self.key.clone(),
                })
            }
            Err(e) => Err(self.storage_error("write", describe(&e))),
        }
    }
}
