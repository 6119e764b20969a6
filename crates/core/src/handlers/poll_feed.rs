//! poll_feed: forwards new DMM feed events to the SQS FIFO queue.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ConnectError, DmmSettings, LazyDmm, deadline_instant};
use crate::aws::checkpoint::S3Checkpoint;
use crate::aws::queue::SqsQueue;
use crate::aws::s3_client;
use crate::config::{self, ConfigError, Env};
use crate::dmm::DmmError;
use crate::feed::poll::{CheckpointError, PollError, PollSettings, Summary, poll};
use crate::telemetry::metrics::{Metrics, Unit};

/// poll_feed's settings (README "Configuration").
#[derive(Debug, Clone)]
pub struct PollFeedConfig {
    pub dmm: DmmSettings,
    pub bucket_name: String,
    pub checkpoint_key: String,
    pub queue_url: String,
    pub forward_all_events: bool,
    pub deadline_margin: Duration,
}

impl PollFeedConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            dmm: DmmSettings::from_env(env)?,
            bucket_name: env.required(config::BUCKET_NAME)?,
            checkpoint_key: env
                .optional(config::LAST_EVENT_ID_OBJECT_NAME)
                .unwrap_or_else(|| config::DEFAULT_LAST_EVENT_ID_OBJECT_NAME.to_owned()),
            queue_url: env.required(config::SQS_QUEUE_URL)?,
            forward_all_events: env.parsed_or(config::FORWARD_ALL_EVENTS, false)?,
            deadline_margin: env.millis_or(config::DEADLINE_MARGIN_MS, 10_000)?,
        })
    }
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum PollFeedError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Poll(#[from] PollError),
}

impl PollFeedError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect(e) => e.is_transient(),
            Self::Poll(e) => e.is_transient(),
        }
    }

    /// The Lambda error type an operator sees and can alarm on: what failed, in a word.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Connect(ConnectError::Secret(_)) => "DmmApiKeySecret",
            Self::Connect(ConnectError::Client(e)) | Self::Poll(PollError::Feed(e)) => match e {
                DmmError::Unauthorized { .. } => "DmmUnauthorized",
                DmmError::Unavailable { .. } | DmmError::Network { .. } => "DmmUnavailable",
                DmmError::Malformed { .. } | DmmError::Unusable(_) => "DmmMalformedResponse",
                DmmError::BaseUrl(_) => "InvalidConfiguration",
                DmmError::Refused { .. } | DmmError::InvalidId { .. } => "DmmRequestRefused",
            },
            Self::Poll(PollError::FeedDeadline { .. }) => "DmmUnavailable",
            Self::Poll(PollError::Checkpoint(CheckpointError::Conflict { .. })) => {
                "CheckpointConflict"
            }
            Self::Poll(PollError::Checkpoint(CheckpointError::Storage { .. })) => {
                "CheckpointStorage"
            }
            Self::Poll(PollError::Queue(_)) => "QueueUnavailable",
            Self::Poll(PollError::Rejected { .. }) => "QueueRejected",
        }
    }
}

/// Everything poll_feed keeps across warm invocations.
#[derive(Debug)]
pub struct PollFeed {
    config: PollFeedConfig,
    dmm: LazyDmm,
    checkpoint: S3Checkpoint,
    queue: SqsQueue,
}

impl PollFeed {
    pub fn new(config: PollFeedConfig, sdk: &SdkConfig) -> Self {
        let dmm = LazyDmm::new(config.dmm.clone(), aws_sdk_secretsmanager::Client::new(sdk));
        let checkpoint =
            S3Checkpoint::new(s3_client(sdk), &config.bucket_name, &config.checkpoint_key);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
        Self {
            config,
            dmm,
            checkpoint,
            queue,
        }
    }

    /// One scheduled run; `deadline` is the Lambda invocation's.
    pub async fn handle(&self, deadline: SystemTime) -> Result<Summary, PollFeedError> {
        let settings = PollSettings {
            forward_all: self.config.forward_all_events,
            deadline: deadline_instant(deadline),
            margin: self.config.deadline_margin,
            entry_retries: 4,
            entry_retry_delay: Duration::from_millis(200),
        };
        let dmm = self.dmm.client().await?;
        let result = poll(dmm, &self.checkpoint, &self.queue, &settings).await;
        match &result {
            Ok(summary) => {
                tracing::info!(
                    forwarded = summary.forwarded,
                    skipped = summary.skipped,
                    pages = summary.pages,
                    last_event_id = summary.last_event_id.as_deref(),
                    caught_up = summary.caught_up,
                    "poll finished"
                );
                metrics(summary).emit();
            }
            Err(e) => tracing::error!(error = %e, transient = e.is_transient(), "poll failed"),
        }
        Ok(result?)
    }
}

/// The run's metrics (EMF). The feed lag is reported only when the run read events: it is the
/// age of the newest one, which grows while DMM is unreachable or poll_feed keeps failing.
fn metrics(summary: &Summary) -> Metrics {
    let mut metrics = Metrics::new("poll_feed");
    metrics
        .count("EventsForwarded", summary.forwarded)
        .count("EventsSkipped", summary.skipped)
        .count("FeedPages", summary.pages);
    let newest = summary
        .newest_event_time
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    if let Some(newest) = newest {
        let lag = (OffsetDateTime::now_utc() - newest)
            .as_seconds_f64()
            .max(0.0);
        metrics.add("FeedLagSeconds", lag, Unit::Seconds);
    }
    metrics
}
