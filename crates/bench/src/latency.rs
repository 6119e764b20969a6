//! Event-to-access latency: how long after DMM's event a consumer can read (after an
//! activation) or can no longer read (after a deactivation), measured from the simulator's event
//! time to the first read through the consumer role's own session that succeeds, or is denied.
//!
//! Everything runs as deployed: poll_feed is invoked once a minute with its default timeout and
//! margin, as its EventBridge schedule does; manage_iam_policies gets each message as soon as it
//! is in the queue, as the event source mapping (no batching window) hands it over; IAM is
//! enforced by moto, so a read succeeds only with the grant in place. Activations are spread
//! evenly over more than two schedule periods, so every phase of the minute is sampled.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use futures::StreamExt;
use local_stack::{DEFAULT_ACCOUNT_ID, LambdaFunction, SqsEventSource, s3_client};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::stack::{BenchResult, MANAGE_TIMEOUT, Mesh, OBJECT, PROVIDER_BUCKET, Stack};

/// poll_feed's schedule, timeout and margin as Terraform deploys them by default.
const SCHEDULE: Duration = Duration::from_secs(60);
const POLL_FEED_TIMEOUT: Duration = Duration::from_secs(58);
const DEADLINE_MARGIN_MS: &str = "3000";
/// Time between two reads of one consumer waiting for its change.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_CONCURRENCY: usize = 8;
/// A change not visible after this long fails the benchmark.
const GIVE_UP: Duration = Duration::from_secs(300);
const PROBER: &str = "bench-prober";

/// One polling mode's figures.
pub struct LatencyRun {
    pub interval_ms: u64,
    /// Seconds from event to first successful read, per agreement.
    pub activation: Vec<f64>,
    /// Seconds from event to first denied read, per agreement.
    pub deactivation: Vec<f64>,
    /// poll_feed runs started by the schedule during the measurement.
    pub poll_runs: u64,
    /// Feed reads (`GET /api/events`) per poll_feed run.
    pub feed_reads_per_run: f64,
}

/// Both polling modes: continuous (the default interval) and one poll per run.
pub async fn run(agreements: usize, spacing: Duration) -> BenchResult<Vec<LatencyRun>> {
    let mut runs = Vec::new();
    for interval_ms in [2_000, 0] {
        let run = one_mode(agreements, spacing, interval_ms).await?;
        println!(
            "latency, poll_interval_ms={interval_ms}: {} activations, {} deactivations, {} poll_feed runs",
            run.activation.len(),
            run.deactivation.len(),
            run.poll_runs
        );
        runs.push(run);
    }
    Ok(runs)
}

async fn one_mode(
    agreements: usize,
    spacing: Duration,
    interval_ms: u64,
) -> BenchResult<LatencyRun> {
    let mesh = Mesh {
        agreements,
        providers: 1,
        per_role: 1,
        active_every: 0,
    };
    // moto checks no trust principal's existence, so the roles can trust the prober by its ARN
    // before the user is made.
    let prober_arn = format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{PROBER}");
    let stack = Stack::start(mesh, Some(&prober_arn)).await?;
    let may_assume = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/bench-consumer-*")}]});
    let iam = aws_sdk_iam::Client::new(&stack.aws);
    let (_, prober) = local_stack::iam_user(&iam, PROBER, Some(&may_assume.to_string())).await?;
    stack.moto.enforce_iam().await?;
    let readers = Readers::assume(&stack, &prober, agreements).await?;
    if readers.read(0).await != Read::Denied {
        return Err(
            "a consumer could read before any grant: the benchmark would measure nothing".into(),
        );
    }

    let queue = stack.queue("latency").await?;
    let start_after = stack.mark("latency")?;
    let interval = interval_ms.to_string();
    let poll = stack
        .poll_feed(
            &queue,
            "bench/latency/last_event_id",
            Some(&start_after),
            &[
                ("poll_interval_ms", interval.as_str()),
                ("deadline_margin_ms", DEADLINE_MARGIN_MS),
            ],
        )
        .await?;
    let source = SqsEventSource::new(aws_sdk_sqs::Client::new(&stack.aws), &queue).await?;
    let manage = stack.manage(&queue).await?;

    let dmm_before = stack.dmm_requests();
    let runs = std::sync::atomic::AtomicU64::new(0);
    let measured = async {
        // The first scheduled run is under way before the first change.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let ids: Vec<String> = (0..agreements).map(Mesh::agreement_id).collect();
        let activation = measure(&stack, &readers, &ids, spacing, Change::Activate).await?;
        let deactivation = measure(&stack, &readers, &ids, spacing, Change::Deactivate).await?;
        BenchResult::Ok((activation, deactivation))
    };
    let (activation, deactivation) = tokio::select! {
        result = measured => result?,
        failed = schedule(&poll, &runs) => return Err(failed.into()),
        failed = event_source(&source, &manage) => return Err(failed.into()),
    };
    let poll_runs = runs.load(std::sync::atomic::Ordering::SeqCst);
    let feed_reads = stack
        .dmm_requests()
        .since(&dmm_before)
        .get("GET /api/events");
    Ok(LatencyRun {
        interval_ms,
        activation,
        deactivation,
        poll_runs,
        feed_reads_per_run: feed_reads as f64 / poll_runs.max(1) as f64,
    })
}

/// poll_feed as its EventBridge schedule runs it: a run a minute, each with the deployed timeout.
/// Returns only on a failed run.
async fn schedule(poll: &LambdaFunction, runs: &std::sync::atomic::AtomicU64) -> String {
    let mut next = tokio::time::Instant::now();
    loop {
        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = poll.invoke(json!({}), POLL_FEED_TIMEOUT).await {
            return format!("a scheduled poll_feed run failed: {e}");
        }
        next += SCHEDULE;
        tokio::time::sleep_until(next).await;
    }
}

/// The SQS event source mapping: each message handed over as soon as it is visible. Returns only
/// on a failure.
async fn event_source(source: &SqsEventSource, manage: &LambdaFunction) -> String {
    loop {
        match source.deliver_once(manage, MANAGE_TIMEOUT).await {
            Ok(Some(delivery)) if !delivery.failed.is_empty() => {
                return format!("manage_iam_policies failed messages: {:?}", delivery.failed);
            }
            Ok(Some(_)) => {}
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => return format!("the event source failed: {e}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Activate,
    Deactivate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Allowed,
    Denied,
    Failed(String),
}

/// One S3 client per consumer role, on a session of that role.
struct Readers(Vec<aws_sdk_s3::Client>);

impl Readers {
    async fn assume(stack: &Stack, prober: &Credentials, count: usize) -> BenchResult<Self> {
        let sts = aws_sdk_sts::Client::new(&stack.moto.sdk_config(prober));
        let mut clients = Vec::with_capacity(count);
        for c in 0..count {
            let session = sts
                .assume_role()
                .role_arn(format!(
                    "arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{}",
                    Mesh::role_name(c)
                ))
                .role_session_name("consumer-workload")
                .send()
                .await?
                .credentials
                .ok_or("no session credentials")?;
            let credentials = Credentials::new(
                session.access_key_id,
                session.secret_access_key,
                Some(session.session_token),
                None,
                "bench-consumer",
            );
            clients.push(s3_client(&stack.moto.sdk_config(&credentials)));
        }
        Ok(Self(clients))
    }

    /// Consumer `i` reads its provider's object.
    async fn read(&self, i: usize) -> Read {
        let read = self.0[i]
            .get_object()
            .bucket(PROVIDER_BUCKET)
            .key(format!("p0/{OBJECT}"))
            .send()
            .await;
        match read {
            Ok(_) => Read::Allowed,
            Err(e) => match aws_sdk_s3::error::ProvideErrorMetadata::code(&e) {
                Some("AccessDenied") => Read::Denied,
                code => Read::Failed(format!("{code:?}: {e}")),
            },
        }
    }
}

/// Makes the change to each agreement, `spacing` apart, and returns the seconds from each
/// change's event to the consumer's first read showing it.
async fn measure(
    stack: &Stack,
    readers: &Readers,
    ids: &[String],
    spacing: Duration,
    change: Change,
) -> BenchResult<Vec<f64>> {
    let wanted = match change {
        Change::Activate => Read::Allowed,
        Change::Deactivate => Read::Denied,
    };
    let started = Instant::now();
    let mut pending: Vec<(usize, OffsetDateTime)> = Vec::new();
    let mut seconds = Vec::with_capacity(ids.len());
    let mut next = 0usize;
    while next < ids.len() || !pending.is_empty() {
        while next < ids.len() && started.elapsed() >= spacing * next as u32 {
            let event = match change {
                Change::Activate => stack.sim.activate(&ids[next])?,
                Change::Deactivate => stack.sim.deactivate(&ids[next])?,
            };
            pending.push((next, OffsetDateTime::parse(&event.time, &Rfc3339)?));
            next += 1;
        }
        let reads: Vec<(usize, Read)> = futures::stream::iter(pending.iter().map(|(i, _)| *i))
            .map(|i| async move { (i, readers.read(i).await) })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect()
            .await;
        let now = OffsetDateTime::now_utc();
        for (i, read) in reads {
            if let Read::Failed(reason) = &read {
                return Err(format!("consumer {i} could not read: {reason}").into());
            }
            if read == wanted {
                let at = pending
                    .iter()
                    .position(|(p, _)| *p == i)
                    .ok_or("lost a probe")?;
                let (_, event_time) = pending.swap_remove(at);
                seconds.push((now - event_time).as_seconds_f64());
            }
        }
        if let Some((i, event_time)) = pending.first()
            && (now - *event_time).unsigned_abs() > GIVE_UP
        {
            return Err(format!("{change:?} of {} not visible after {GIVE_UP:?}", ids[*i]).into());
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    Ok(seconds)
}
