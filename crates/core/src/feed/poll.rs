//! The poll_feed loop: read pages from the DMM feed, forward agreement events to SQS in order,
//! and move the checkpoint only past events SQS accepted.
//!
//! The loop talks to its three collaborators through small traits: the feed and the checkpoint
//! below, the queue in [`crate::queue`] (shared with the reconcile requests); the AWS and DMM
//! implementations live in [`crate::aws`] and [`crate::dmm`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{Route, batches, deduplication_id, group_id, route};
use crate::clock::Clock;
use crate::dmm::{DmmClient, DmmError, FeedEvent};
use crate::queue::{EventQueue, QueueError, QueueMessage};

/// Where pages of events come from.
pub trait EventSource {
    fn page(
        &self,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, DmmError>> + Send;
}

impl EventSource for DmmClient {
    fn page(
        &self,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, DmmError>> + Send {
        self.events_page(after)
    }
}

/// The last event id forwarded, with the version token needed to write it back conditionally.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub last_event_id: Option<String>,
    /// The stored object's version (S3 ETag); `None` when nothing is stored yet.
    pub version: Option<String>,
}

/// A checkpoint read or write that failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Another poll_feed run wrote the checkpoint since this run read it. Two concurrent runs
    /// would forward the same events twice and could move the checkpoint backwards.
    #[error(
        "the checkpoint `{key}` was changed by another poll_feed run since this run read it; \
         this run stops so that only one run moves the checkpoint"
    )]
    Conflict { key: String },
    #[error("could not {action} the checkpoint `{key}` in bucket `{bucket}`: {reason}")]
    Storage {
        action: &'static str,
        bucket: String,
        key: String,
        reason: String,
    },
}

/// Persists the checkpoint; `save` must fail with [`CheckpointError::Conflict`] when the stored
/// version is no longer `previous.version`.
pub trait CheckpointStore {
    fn load(&self) -> impl Future<Output = Result<Checkpoint, CheckpointError>> + Send;
    fn save(
        &self,
        previous: &Checkpoint,
        last_event_id: &str,
    ) -> impl Future<Output = Result<Checkpoint, CheckpointError>> + Send;
}

/// Why a poll run stopped early. Whatever SQS accepted before the failure is checkpointed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("reading the DMM event feed failed: {0}")]
    Feed(#[from] DmmError),
    /// The feed request (with its retries) was still running when the invocation had to stop,
    /// so the run stopped instead of being killed by Lambda's timeout.
    #[error(
        "DMM did not answer the feed request within {waited:?}, before the Lambda deadline; \
         the run stopped there and the next run continues from the checkpoint"
    )]
    FeedDeadline { waited: Duration },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "SQS kept rejecting event `{event_id}` ({code}: {message}) after {attempts} attempts; \
         the checkpoint stays before it"
    )]
    Rejected {
        event_id: String,
        code: String,
        message: String,
        attempts: usize,
    },
}

impl PollError {
    /// Every poll failure is retried by the next scheduled run; this tells an operator whether
    /// that can succeed without a configuration change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Feed(e) => e.is_transient(),
            Self::FeedDeadline { .. } => true,
            Self::Checkpoint(CheckpointError::Conflict { .. }) => false,
            Self::Checkpoint(_) | Self::Queue(_) | Self::Rejected { .. } => true,
        }
    }
}

/// The run's output (ADR 001).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub forwarded: usize,
    pub skipped: usize,
    /// Events whose id this run had already read: the feed may repeat an event, and a repeat is
    /// a duplicate, not news (counted in `skipped` too).
    pub duplicates: usize,
    pub pages: usize,
    pub last_event_id: Option<String>,
    /// The run's last read of the feed found nothing new.
    pub caught_up: bool,
    /// `time` of the newest event this run read, for the feed-lag metric (not part of the
    /// function's output).
    #[serde(skip)]
    pub newest_event_time: Option<String>,
}

/// What a run may do.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub forward_all: bool,
    /// When the Lambda invocation ends, by `clock`.
    pub deadline: Instant,
    pub clock: Arc<dyn Clock>,
    /// No new page or batch is started with less time than this left.
    pub margin: Duration,
    /// After catching up, the run waits this long and reads the feed again, until the margin
    /// (ADR 021); zero reads the feed to its end once per run.
    pub interval: Duration,
    /// Re-sends of entries SQS rejected as transient, per batch.
    pub entry_retries: usize,
    pub entry_retry_delay: Duration,
}

/// Time kept after a feed request to report the run's outcome: a slow DMM (or its retries)
/// must never push the run past its Lambda deadline, where Lambda would kill it.
const REPORT_GRACE: Duration = Duration::from_millis(500);

/// Largest message SQS accepts on every queue.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The message for an event: the event exactly as DMM sent it, unless SQS cannot take it (too
/// large, or rejected as malformed). Then a minimal CloudEvent with the same id, type and
/// `data.id` stands in: manage_iam_policies re-reads the agreement anyway, so the trigger is
/// enough and the event is not lost.
fn message_for(event: &FeedEvent, original_rejected: Option<&str>) -> QueueMessage {
    let body = match original_rejected {
        None if event.raw_json().len() <= MAX_MESSAGE_BYTES => event.raw_json().to_owned(),
        reason => {
            tracing::warn!(
                event_id = event.id(),
                reason = reason.unwrap_or("larger than the SQS message limit"),
                "forwarding a reduced copy of the event"
            );
            json!({
                "specversion": "1.0",
                "id": event.id(),
                "type": event.event_type(),
                "source": "dmm-integration-aws/poll_feed",
                "data": reduced_data(event),
                "dmmIntegrationReduced": reason.unwrap_or("larger than the SQS message limit"),
            })
            .to_string()
        }
    };
    QueueMessage {
        body,
        group_id: group_id(event),
        deduplication_id: deduplication_id(event),
    }
}

/// The `data` of a reduced copy: what manage_iam_policies needs to find the agreements to
/// reconcile.
fn reduced_data(event: &FeedEvent) -> serde_json::Value {
    match event.output_port_id() {
        Some(port) => json!({"id": event.resource_id(), "outputPortId": port}),
        None => json!({"id": event.resource_id()}),
    }
}

/// Sends one batch until SQS accepted every entry, re-sending only rejected entries.
async fn send_batch_fully<Q: EventQueue>(
    queue: &Q,
    batch: &[&FeedEvent],
    settings: &PollSettings,
) -> Result<(), PollError> {
    let mut pending: Vec<(usize, QueueMessage)> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| (i, message_for(e, None)))
        .collect();
    let mut attempt = 0usize;
    loop {
        attempt += 1;
        let messages: Vec<QueueMessage> = pending.iter().map(|(_, m)| m.clone()).collect();
        let rejected = queue.send_batch(&messages).await?;
        if rejected.is_empty() {
            return Ok(());
        }
        let mut next = Vec::with_capacity(rejected.len());
        for entry in &rejected {
            let (original, message) = &pending[entry.index];
            let event = batch[*original];
            let reduced = message.body != event.raw_json();
            if entry.sender_fault && reduced {
                return Err(PollError::Rejected {
                    event_id: event.id().to_owned(),
                    code: entry.code.clone(),
                    message: entry.message.clone(),
                    attempts: attempt,
                });
            }
            let message = if entry.sender_fault {
                message_for(event, Some(&entry.code))
            } else {
                message.clone()
            };
            next.push((*original, message));
        }
        if attempt > settings.entry_retries {
            let (original, _) = &next[0];
            let entry = &rejected[0];
            return Err(PollError::Rejected {
                event_id: batch[*original].id().to_owned(),
                code: entry.code.clone(),
                message: entry.message.clone(),
                attempts: attempt,
            });
        }
        tracing::info!(
            rejected = next.len(),
            attempt,
            "SQS rejected entries; re-sending only those"
        );
        tokio::time::sleep(settings.entry_retry_delay * attempt as u32).await;
        pending = next;
    }
}

/// One INFO line per page read, with counts only: event payloads never reach the log.
fn log_page(summary: &Summary, events: usize, forwarded: usize, skipped: usize) {
    tracing::info!(
        page = summary.pages,
        events,
        forwarded,
        skipped,
        last_event_id = summary.last_event_id.as_deref(),
        "feed page processed"
    );
}

/// Runs one poll: pages through the feed until caught up, then (with an interval) waits and
/// reads again, until the deadline margin.
pub async fn poll<S, C, Q>(
    source: &S,
    store: &C,
    queue: &Q,
    settings: &PollSettings,
) -> Result<Summary, PollError>
where
    S: EventSource,
    C: CheckpointStore,
    Q: EventQueue,
{
    let mut checkpoint = store.load().await?;
    let mut summary = Summary {
        forwarded: 0,
        skipped: 0,
        duplicates: 0,
        pages: 0,
        last_event_id: checkpoint.last_event_id.clone(),
        caught_up: false,
        newest_event_time: None,
    };
    let clock = &settings.clock;
    let time_left = || settings.deadline.saturating_duration_since(clock.now());
    let mut seen: HashSet<String> = HashSet::new();

    while time_left() >= settings.margin {
        let started = clock.now();
        let answer_by = settings
            .deadline
            .checked_sub(REPORT_GRACE)
            .unwrap_or(started);
        let page = tokio::time::timeout_at(
            answer_by.into(),
            source.page(checkpoint.last_event_id.as_deref()),
        )
        .await
        .map_err(|_| PollError::FeedDeadline {
            waited: clock.now().saturating_duration_since(started),
        })??;
        summary.pages += 1;
        if page.is_empty() {
            if summary.caught_up {
                // Waiting for news: one INFO line per run is enough for an empty feed.
                tracing::debug!(page = summary.pages, "feed page empty");
            } else {
                log_page(&summary, 0, 0, 0);
            }
            summary.caught_up = true;
            if settings.interval.is_zero() || time_left() < settings.interval + settings.margin {
                break;
            }
            clock.sleep(settings.interval).await;
            continue;
        }
        summary.caught_up = false;
        if let Some(time) = page.last().and_then(FeedEvent::time) {
            summary.newest_event_time = Some(time.to_owned());
        }
        let mut forward_at = Vec::new();
        for (i, event) in page.iter().enumerate() {
            if !seen.insert(event.id().to_owned()) {
                summary.duplicates += 1;
            } else if route(event, settings.forward_all) == Route::Forward {
                forward_at.push(i);
            }
        }
        let forward: Vec<&FeedEvent> = forward_at.iter().map(|&i| &page[i]).collect();
        for event in &page {
            tracing::debug!(
                event_id = event.id(),
                payload = event.raw_json(),
                "event read"
            );
        }
        let mut forwarded = 0usize;
        let mut failure = None;
        for batch in batches(&forward) {
            if time_left() < settings.margin {
                break;
            }
            if let Err(e) = send_batch_fully(queue, &batch, settings).await {
                failure = Some(e);
                break;
            }
            forwarded += batch.len();
        }
        // Everything before the first event not sent is handled (sent or skipped).
        let handled = forward_at.get(forwarded).copied().unwrap_or(page.len());
        let skipped = handled - forwarded;
        summary.forwarded += forwarded;
        summary.skipped += skipped;
        if handled > 0 {
            let last = page[handled - 1].id();
            checkpoint = store.save(&checkpoint, last).await?;
            summary.last_event_id = Some(last.to_owned());
        }
        log_page(&summary, page.len(), forwarded, skipped);
        if let Some(e) = failure {
            return Err(e);
        }
        if handled < page.len() {
            break;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::clock::SystemClock;
    use crate::fakes::{FakeCheckpoint, FakeFeed, FakeQueue, SteppingClock};

    fn settings() -> PollSettings {
        PollSettings {
            forward_all: false,
            deadline: Instant::now() + Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            margin: Duration::from_secs(1),
            interval: Duration::ZERO,
            entry_retries: 2,
            entry_retry_delay: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn forwards_in_order_skips_the_rest_and_checkpoints_each_page() {
        let feed = FakeFeed::new(
            &[
                ("e1", "AccessActivatedEvent", "a1"),
                ("e2", "TeamCreatedEvent", "t1"),
                ("e3", "AccessDeactivatedEvent", "a2"),
                ("e1", "AccessActivatedEvent", "a1"),
                ("e4", "AccessProvisionedEvent", "a1"),
            ],
            2,
        );
        let checkpoint = FakeCheckpoint::default();
        let queue = FakeQueue::default();
        let summary = poll(&feed, &checkpoint, &queue, &settings()).await.unwrap();
        assert_eq!(
            (summary.forwarded, summary.skipped, summary.duplicates),
            (2, 3, 1),
            "{summary:?}"
        );
        assert_eq!((summary.pages, summary.caught_up), (4, true));
        assert_eq!(queue.deduplication_ids(), ["e1", "e3"]);
        assert_eq!(
            checkpoint.saves.load(Ordering::Relaxed),
            3,
            "one save per page"
        );
        assert_eq!(
            checkpoint.stored.lock().unwrap().last_event_id.as_deref(),
            Some("e4")
        );
    }

    #[tokio::test]
    async fn an_event_sqs_keeps_refusing_holds_the_checkpoint_before_it() {
        let feed = FakeFeed::new(
            &[
                ("e1", "AccessActivatedEvent", "a1"),
                ("e2", "AccessActivatedEvent", "a2"),
                ("e3", "AccessActivatedEvent", "a3"),
            ],
            10,
        );
        let checkpoint = FakeCheckpoint::default();
        let queue = FakeQueue {
            reject: vec!["e2".into()],
            ..FakeQueue::default()
        };
        let error = poll(&feed, &checkpoint, &queue, &settings())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, PollError::Rejected { event_id, .. } if event_id == "e2"),
            "{error}"
        );
        assert_eq!(checkpoint.saves.load(Ordering::Relaxed), 0);
        assert_eq!(checkpoint.stored.lock().unwrap().last_event_id, None);
    }

    #[tokio::test]
    async fn a_concurrent_run_stops_this_one() {
        let feed = FakeFeed::new(&[("e1", "AccessActivatedEvent", "a1")], 10);
        let checkpoint = FakeCheckpoint {
            conflict: true,
            ..FakeCheckpoint::default()
        };
        let queue = FakeQueue::default();
        let error = poll(&feed, &checkpoint, &queue, &settings())
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            PollError::Checkpoint(CheckpointError::Conflict { .. })
        ));
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn a_run_stops_before_its_deadline_margin_and_keeps_what_it_did() {
        let events: Vec<(String, &str, String)> = (1..=50)
            .map(|i| (format!("e{i}"), "AccessActivatedEvent", format!("a{i}")))
            .collect();
        let events: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|(id, kind, agreement)| (id.as_str(), *kind, agreement.as_str()))
            .collect();
        let feed = FakeFeed::new(&events, 1);
        let checkpoint = FakeCheckpoint::default();
        let queue = FakeQueue::default();
        // Each clock read is 1 s later; 60 s to the deadline, 10 s margin.
        let clock = Arc::new(SteppingClock::new(Duration::from_secs(1)));
        let settings = PollSettings {
            deadline: clock.start + Duration::from_secs(60),
            margin: Duration::from_secs(10),
            clock,
            ..settings()
        };
        let summary = poll(&feed, &checkpoint, &queue, &settings).await.unwrap();
        assert!(!summary.caught_up, "{summary:?}");
        assert!(
            (5..50).contains(&summary.forwarded),
            "stopped partway: {summary:?}"
        );
        let saved = checkpoint.stored.lock().unwrap().last_event_id.clone();
        assert_eq!(saved, Some(format!("e{}", summary.forwarded)));
        assert_eq!(queue.deduplication_ids().len(), summary.forwarded);
    }

    /// A feed that gets `e2` after the first read to its end, and `e3`, `e4` after the second.
    fn growing_feed() -> FakeFeed {
        FakeFeed::new(&[("e1", "AccessActivatedEvent", "a1")], 10)
            .later(&[("e2", "AccessDeactivatedEvent", "a1")])
            .later(&[
                ("e3", "AccessActivatedEvent", "a2"),
                ("e4", "AccessActivatedEvent", "a3"),
            ])
    }

    /// Virtual time that moves only by sleeping: 60 s to the deadline, a 10 s margin.
    fn continuous(interval: Duration) -> (Arc<SteppingClock>, PollSettings) {
        let clock = Arc::new(SteppingClock::new(Duration::ZERO));
        let settings = PollSettings {
            deadline: clock.start + Duration::from_secs(60),
            margin: Duration::from_secs(10),
            interval,
            clock: clock.clone(),
            ..settings()
        };
        (clock, settings)
    }

    #[tokio::test]
    async fn with_an_interval_the_run_keeps_reading_news_until_its_deadline_margin() {
        let feed = growing_feed();
        let checkpoint = FakeCheckpoint::default();
        let queue = FakeQueue::default();
        let (clock, settings) = continuous(Duration::from_secs(2));
        let summary = poll(&feed, &checkpoint, &queue, &settings).await.unwrap();
        assert_eq!(queue.deduplication_ids(), ["e1", "e2", "e3", "e4"]);
        assert_eq!((summary.forwarded, summary.caught_up), (4, true));
        // It sleeps while 2 s + the 10 s margin are left: 25 sleeps, the last ending 10 s
        // before the deadline.
        assert_eq!(clock.slept(), Duration::from_secs(50));
        assert_eq!(
            summary.pages,
            3 + 26,
            "three pages of news, one read per wake"
        );
        assert_eq!(
            checkpoint.saves.load(Ordering::Relaxed),
            3,
            "only pages with events move the checkpoint"
        );
        assert_eq!(
            checkpoint.stored.lock().unwrap().last_event_id.as_deref(),
            Some("e4")
        );
    }

    #[tokio::test]
    async fn an_interval_of_zero_reads_the_feed_to_its_end_once_per_run() {
        let feed = growing_feed();
        let checkpoint = FakeCheckpoint::default();
        let queue = FakeQueue::default();
        let (clock, settings) = continuous(Duration::ZERO);
        let summary = poll(&feed, &checkpoint, &queue, &settings).await.unwrap();
        assert_eq!(queue.deduplication_ids(), ["e1"]);
        assert_eq!((summary.pages, summary.caught_up), (2, true));
        assert_eq!(clock.slept(), Duration::ZERO);
    }
}
