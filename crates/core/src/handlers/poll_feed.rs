//! poll_feed: forwards new DMM feed events to the SQS FIFO queue.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ConnectError, DmmSettings, ErrorType, LazyDmm, deadline_instant, dmm_error_type};
use crate::aws::checkpoint::S3Checkpoint;
use crate::aws::health::S3Health;
use crate::aws::queue::SqsQueue;
use crate::aws::s3_client;
use crate::clock::SystemClock;
use crate::config::{self, ConfigError, Env};
use crate::connector::{self, DEFAULT_CONNECTOR_ID, HealthStore, Run};
use crate::dmm::DmmClient;
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
    /// Wait between reads of a caught-up feed within one run (ADR 021).
    pub poll_interval: Duration,
    /// The integration's connector document in DMM.
    pub connector_id: String,
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
            deadline_margin: env.millis_or(config::DEADLINE_MARGIN_MS, 3_000)?,
            poll_interval: env.millis_or(config::POLL_INTERVAL_MS, 2_000)?,
            connector_id: env
                .optional(config::CONNECTOR_ID)
                .unwrap_or_else(|| DEFAULT_CONNECTOR_ID.to_owned()),
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
}

impl ErrorType for PollFeedError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Connect(e) => e.error_type(),
            Self::Poll(PollError::Feed(e)) => dmm_error_type(e),
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
    health: S3Health,
}

impl PollFeed {
    pub fn new(config: PollFeedConfig, sdk: &SdkConfig) -> Self {
        let dmm = LazyDmm::new(config.dmm.clone(), aws_sdk_secretsmanager::Client::new(sdk));
        let checkpoint =
            S3Checkpoint::new(s3_client(sdk), &config.bucket_name, &config.checkpoint_key);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &config.queue_url);
        let health = S3Health::new(s3_client(sdk), &config.bucket_name);
        Self {
            config,
            dmm,
            checkpoint,
            queue,
            health,
        }
    }

    /// One scheduled run; `deadline` is the Lambda invocation's.
    pub async fn handle(&self, deadline: SystemTime) -> Result<Summary, PollFeedError> {
        let settings = PollSettings {
            forward_all: self.config.forward_all_events,
            deadline: deadline_instant(deadline),
            clock: Arc::new(SystemClock),
            margin: self.config.deadline_margin,
            interval: self.config.poll_interval,
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
        self.register(dmm, &result, settings.deadline).await;
        Ok(result?)
    }

    /// One PUT of the connector document per run (ADR 018). It is a report, not the job: a
    /// failure or a slow DMM is logged and never fails the run or delays it past its deadline.
    async fn register(
        &self,
        dmm: &DmmClient,
        result: &Result<Summary, PollError>,
        deadline: Instant,
    ) {
        let id = self.config.connector_id.as_str();
        let write = async {
            let manage = self.health.read().await;
            let now = OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default();
            let document = match result {
                Ok(summary) => {
                    connector::document(id, Run::Finished(summary), None, manage.as_ref(), &now)
                }
                Err(error) => {
                    let previous = dmm.get_connector(id).await.ok().flatten();
                    let state = previous.as_ref().and_then(|doc| doc.get("state"));
                    let error = error.to_string();
                    connector::document(id, Run::Failed(&error), state, manage.as_ref(), &now)
                }
            };
            dmm.put_connector(id, &document).await
        };
        let answer_by = deadline.checked_sub(CONNECTOR_GRACE).unwrap_or(deadline);
        match tokio::time::timeout_at(answer_by.into(), write).await {
            Ok(Ok(())) => tracing::debug!(connector_id = id, "connector document updated"),
            Ok(Err(error)) => tracing::warn!(
                connector_id = id,
                outcome = "connector_update_failed",
                error = %error,
                "could not update the connector document in DMM; the run itself is unaffected"
            ),
            Err(_) => tracing::warn!(
                connector_id = id,
                outcome = "connector_update_failed",
                "DMM did not take the connector document before the deadline; the run itself is unaffected"
            ),
        }
    }
}

/// Time kept after the connector update to finish the invocation.
const CONNECTOR_GRACE: Duration = Duration::from_millis(500);

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
