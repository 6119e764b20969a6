//! Benchmarks of both Lambda functions on the local stack (moto, the DMM simulator, the Lambda
//! Runtime API emulator), written to `BENCHMARKS.md`.
//!
//! Every figure is measured in the run: wall times around real invocations, AWS calls counted by
//! the proxy in front of moto, DMM requests counted by the simulator, IAM writes from both, cold
//! starts and peak RSS from the Runtime API emulator, zip sizes from `cargo lambda build`'s
//! output. Each throughput figure is the median of `--runs` runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use clap::Parser;
use dmm_simulator::{Scenario, Simulator};
use local_stack::{
    DEFAULT_ACCOUNT_ID, FaultProxy, LambdaFunction, Moto, SqsEventSource, binary_path, s3_client,
};
use serde_json::json;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const STATE_BUCKET: &str = "bench-state";
const SECRET_NAME: &str = "bench_api_key";
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(about = "Benchmark poll_feed and manage_iam_policies on the local stack")]
struct Args {
    /// Runs per throughput figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Events in the poll_feed backlog.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
    /// Agreements activated and deactivated per run.
    #[arg(long, default_value_t = 1_000)]
    agreements: usize,
    /// Where `cargo lambda build --release --arm64 --output-format zip` put the zips
    /// (`<dir>/<function>/bootstrap.zip`); sizes are reported when present.
    #[arg(long)]
    zip_dir: Option<PathBuf>,
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Calls counted between two snapshots.
fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, key: &str) -> u64 {
    after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)
}

fn sum_matching(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
    prefix: &str,
) -> u64 {
    after
        .keys()
        .filter(|k| k.starts_with(prefix))
        .map(|k| delta(after, before, k))
        .sum()
}

struct Stack {
    moto: Moto,
    aws: SdkConfig,
    proxy: FaultProxy,
    sim: Simulator,
    env: Vec<(String, String)>,
    agreement_ids: Vec<String>,
}

fn scenario(agreements: usize) -> Scenario {
    let consumers = (0..agreements).map(|i| {
        json!({"id": format!("consumer-{i}"), "name": format!("Consumer {i}"),
               "custom": {"aws-role-name": format!("bench-consumer-{i}")}, "outputPorts": []})
    });
    let provider = json!({"id": "orders", "name": "Orders", "custom": {}, "outputPorts": [{
        "id": "orders-eu", "type": "s3", "server": {"location": "s3://bench-orders/eu/"},
        "custom": {"output-port-type": "s3_folder", "aws-s3-folder-arn": "arn:aws:s3:::bench-orders/eu"}}]});
    Scenario {
        data_products: std::iter::once(provider).chain(consumers).collect(),
        agreements: (0..agreements)
            .map(|i| {
                json!({"id": format!("bench-{i}"),
                       "info": {"purpose": "benchmark", "status": "requested", "active": false},
                       "provider": {"dataProductId": "orders", "outputPortId": "orders-eu"},
                       "consumer": {"dataProductId": format!("consumer-{i}")},
                       "tags": ["bench"], "custom": {}})
            })
            .collect(),
        ..Scenario::default()
    }
}

async fn stack(agreements: usize) -> BenchResult<Stack> {
    let moto = Moto::start().await?;
    let admin = moto.bootstrap_admin(DEFAULT_ACCOUNT_ID).await?;
    let aws = moto.sdk_config(&admin);
    s3_client(&aws)
        .create_bucket()
        .bucket(STATE_BUCKET)
        .send()
        .await?;
    let scenario = scenario(agreements);
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(SECRET_NAME)
        .secret_string(&scenario.api_key)
        .send()
        .await?;
    let iam = aws_sdk_iam::Client::new(&aws);
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    .to_string();
    for i in 0..agreements {
        iam.create_role()
            .role_name(format!("bench-consumer-{i}"))
            .assume_role_policy_document(&trust)
            .send()
            .await?;
    }
    let proxy = FaultProxy::start(moto.endpoint()).await?;
    let sim = Simulator::start(scenario, "127.0.0.1:0").await?;
    let mut env: Vec<(String, String)> = moto
        .lambda_env(&admin)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_ENDPOINT_URL" => (k, proxy.endpoint().to_owned()),
            _ => (k, v),
        })
        .collect();
    env.extend(
        [
            ("dmm_base_url", sim.base_url()),
            ("dmm_api_key_secret_name", SECRET_NAME),
            ("bucket_name", STATE_BUCKET),
            ("log_level", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Ok(Stack {
        moto,
        aws,
        proxy,
        sim,
        env,
        agreement_ids: (0..agreements).map(|i| format!("bench-{i}")).collect(),
    })
}

impl Stack {
    async fn queue(&self, name: &str) -> BenchResult<String> {
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let created = sqs
            .create_queue()
            .queue_name(format!("{name}.fifo"))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .send()
            .await?;
        Ok(created.queue_url().unwrap_or_default().to_owned())
    }

    /// A poll_feed process forwarding to `queue_url`, starting after `checkpoint` (when given).
    async fn poll_feed(
        &self,
        run: &str,
        queue_url: &str,
        checkpoint: Option<&str>,
    ) -> BenchResult<LambdaFunction> {
        let key = format!("bench/{run}/last_event_id");
        if let Some(id) = checkpoint {
            s3_client(&self.aws)
                .put_object()
                .bucket(STATE_BUCKET)
                .key(&key)
                .body(ByteStream::from(id.as_bytes().to_vec()))
                .send()
                .await?;
        }
        let mut env = self.env.clone();
        env.push(("sqs_queue_url".into(), queue_url.to_owned()));
        env.push(("last_event_id_object_name".into(), key));
        Ok(LambdaFunction::start(binary_path("poll_feed")?, "poll_feed", env).await?)
    }

    /// A manage_iam_policies process whose reconcile requests go to `queue_url`.
    async fn manage(&self, queue_url: &str) -> BenchResult<LambdaFunction> {
        let mut env = self.env.clone();
        env.push(("sqs_queue_url".into(), queue_url.to_owned()));
        Ok(LambdaFunction::start(
            binary_path("manage_iam_policies")?,
            "manage_iam_policies",
            env,
        )
        .await?)
    }

    /// Invokes poll_feed until it is caught up; returns events forwarded.
    async fn poll_until_caught_up(&self, poll: &LambdaFunction) -> BenchResult<u64> {
        let mut forwarded = 0;
        loop {
            let summary = poll.invoke(json!({}), TIMEOUT).await?;
            forwarded += summary["forwarded"].as_u64().unwrap_or(0);
            if summary["caught_up"] == true {
                return Ok(forwarded);
            }
        }
    }

    /// Appends a skipped event to the feed and returns its id, so a poll_feed can start there.
    fn mark(&self, name: &str) -> BenchResult<String> {
        let id = format!("bench-mark-{name}");
        self.sim
            .append_event(json!({"specversion": "1.0", "id": id,
            "type": "com.datamesh-manager.events.TeamUpdatedEvent", "source": "bench",
            "data": {"id": "orders"}}))?;
        Ok(id)
    }

    fn dmm_requests(&self) -> BTreeMap<String, u64> {
        self.sim.request_counts()
    }
}

/// Reads and deletes messages while poll_feed forwards, as manage_iam_policies does in a
/// deployment. It talks to moto directly, so its calls are not counted as poll_feed's; without
/// it moto's FIFO queue, which rescans every stored message on each send, would dominate.
struct Consumer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<u64, String>>,
}

impl Consumer {
    fn start(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut consumed = 0u64;
            loop {
                let finishing = *stopped.borrow_and_update();
                let received = sqs
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let messages = received.messages();
                if !messages.is_empty() {
                    let entries = messages
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle().unwrap_or_default())
                                .build()
                                .map_err(|e| e.to_string())
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    sqs.delete_message_batch()
                        .queue_url(&queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                }
                consumed += messages.len() as u64;
                if messages.is_empty() {
                    if finishing {
                        return Ok(consumed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self { stop, task }
    }

    /// Stops once the queue is empty; returns the messages consumed.
    async fn stop(self) -> BenchResult<u64> {
        let _ = self.stop.send(true);
        Ok(self.task.await??)
    }
}

#[derive(Default)]
struct Figures {
    moto_send_batch_ms: f64,
    poll_events_per_s: Vec<f64>,
    poll_sqs_calls_per_event: Vec<f64>,
    poll_s3_writes_per_event: Vec<f64>,
    poll_dmm_requests_per_event: Vec<f64>,
    activations_per_s: Vec<f64>,
    deactivations_per_s: Vec<f64>,
    activation_iam_writes_per_event: Vec<f64>,
    deactivation_iam_writes_per_event: Vec<f64>,
    replay_iam_writes: Vec<f64>,
    replay_dmm_writes: Vec<f64>,
    product_reads_per_event: Vec<f64>,
    cold_starts_ms: Vec<f64>,
    peak_rss_kib: BTreeMap<&'static str, u64>,
}

impl Figures {
    fn observe(&mut self, name: &'static str, function: &LambdaFunction) {
        let metrics = function.metrics();
        self.cold_starts_ms
            .extend(metrics.cold_starts.iter().map(|d| d.as_secs_f64() * 1000.0));
        if let Some(rss) = metrics.peak_rss_kib {
            let peak = self.peak_rss_kib.entry(name).or_default();
            *peak = (*peak).max(rss);
        }
    }
}

/// How long moto itself takes for one `SendMessageBatch` of ten events to a FIFO queue: the
/// floor under poll_feed's throughput on this stack, measured directly without the integration.
async fn moto_send_batch_ms(stack: &Stack) -> BenchResult<f64> {
    let queue = stack.queue("moto-floor").await?;
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let mut samples = Vec::new();
    for round in 0..20 {
        let entries = (0..10)
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(json!({"round": round, "i": i}).to_string())
                    .message_group_id(format!("g{i}"))
                    .message_deduplication_id(format!("{round}-{i}"))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        sqs.send_message_batch()
            .queue_url(&queue)
            .set_entries(Some(entries))
            .send()
            .await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(samples))
}

async fn bench_poll_feed(args: &Args, figures: &mut Figures) -> BenchResult<()> {
    let ids: Vec<String> = (0..args.agreements.max(1))
        .map(|i| format!("bench-{i}"))
        .collect();
    for run in 0..args.runs {
        // A fresh moto per run: its FIFO queues get slower with every message the server ever
        // stored, which would make each run slower than the one before for moto's sake alone.
        let stack = stack(0).await?;
        if run == 0 {
            figures.moto_send_batch_ms = moto_send_batch_ms(&stack).await?;
        }
        let events = stack
            .sim
            .emit_bulk("AccessUpdatedEvent", &ids, args.backlog)?;
        if events.len() != args.backlog {
            return Err(format!(
                "the simulator appended {} of {} events",
                events.len(),
                args.backlog
            )
            .into());
        }
        let queue = stack.queue("poll").await?;
        let poll = stack
            .poll_feed(&format!("poll-{run}"), &queue, None)
            .await?;
        let (aws_before, dmm_before) = (stack.proxy.calls(), stack.dmm_requests());
        let consumer = Consumer::start(aws_sdk_sqs::Client::new(&stack.aws), queue.clone());
        let started = Instant::now();
        let forwarded = stack.poll_until_caught_up(&poll).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let consumed = consumer.stop().await?;
        if consumed != forwarded {
            return Err(
                format!("poll_feed forwarded {forwarded} events but {consumed} arrived").into(),
            );
        }
        let (aws_after, dmm_after) = (stack.proxy.calls(), stack.dmm_requests());
        let n = forwarded as f64;
        figures.poll_events_per_s.push(n / elapsed);
        figures
            .poll_sqs_calls_per_event
            .push(sum_matching(&aws_after, &aws_before, "sqs:") as f64 / n);
        figures
            .poll_s3_writes_per_event
            .push(delta(&aws_after, &aws_before, "s3:PutObject") as f64 / n);
        figures.poll_dmm_requests_per_event.push(
            dmm_after.values().sum::<u64>() as f64 / n
                - dmm_before.values().sum::<u64>() as f64 / n,
        );
        figures.observe("poll_feed", &poll);
        println!("poll_feed run {run}: {forwarded} events in {elapsed:.2}s");
    }
    Ok(())
}

/// Drains the queue into manage_iam_policies; returns (messages, seconds, IAM writes).
async fn drain(
    stack: &Stack,
    poll: &LambdaFunction,
    manage: &LambdaFunction,
    source: &SqsEventSource,
) -> BenchResult<(u64, f64, u64)> {
    stack.poll_until_caught_up(poll).await?;
    let before = stack.proxy.calls();
    let started = Instant::now();
    let report = source.drain(manage, TIMEOUT, usize::MAX).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let after = stack.proxy.calls();
    let writes = delta(&after, &before, "iam:PutRolePolicy")
        + delta(&after, &before, "iam:DeleteRolePolicy");
    if report.failed > 0 {
        return Err(format!("{} messages failed during the benchmark", report.failed).into());
    }
    Ok((report.delivered as u64, elapsed, writes))
}

async fn bench_manage(stack: &Stack, args: &Args, figures: &mut Figures) -> BenchResult<()> {
    for run in 0..args.runs {
        let name = format!("manage-{run}");
        let queue = stack.queue(&name).await?;
        // This run's poll_feed starts after everything earlier runs caused.
        let start = stack.mark(&name)?;
        let poll = stack.poll_feed(&name, &queue, Some(&start)).await?;
        let source = SqsEventSource::new(aws_sdk_sqs::Client::new(&stack.aws), &queue).await?;
        let manage = stack.manage(&queue).await?;

        for id in &stack.agreement_ids {
            stack.sim.activate(id)?;
        }
        let dmm_before = stack.dmm_requests();
        let (n, secs, writes) = drain(stack, &poll, &manage, &source).await?;
        let dmm_after = stack.dmm_requests();
        figures.activations_per_s.push(n as f64 / secs);
        figures
            .activation_iam_writes_per_event
            .push(writes as f64 / n as f64);
        figures
            .product_reads_per_event
            .push(delta(&dmm_after, &dmm_before, "GET /api/dataproducts/{id}") as f64 / n as f64);
        println!("activations run {run}: {n} in {secs:.2}s, {writes} IAM writes");

        // The status updates the integration wrote come back as AccessUpdatedEvents: a replay
        // of a converged state, which must write nothing.
        let puts = stack.sim.puts().len();
        let (n, _, writes) = drain(stack, &poll, &manage, &source).await?;
        figures.replay_iam_writes.push(writes as f64);
        figures
            .replay_dmm_writes
            .push((stack.sim.puts().len() - puts) as f64);
        println!("replay run {run}: {n} events, {writes} IAM writes");

        for id in &stack.agreement_ids {
            stack.sim.deactivate(id)?;
        }
        let (n, secs, writes) = drain(stack, &poll, &manage, &source).await?;
        figures.deactivations_per_s.push(n as f64 / secs);
        figures
            .deactivation_iam_writes_per_event
            .push(writes as f64 / n as f64);
        println!("deactivations run {run}: {n} in {secs:.2}s, {writes} IAM writes");
        drain(stack, &poll, &manage, &source).await?;
        figures.observe("poll_feed", &poll);
        figures.observe("manage_iam_policies", &manage);
    }
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {cpu}, {}", std::env::consts::ARCH)
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let dirty = !git(&["status", "--porcelain"]).is_empty();
    format!(
        "{}{}",
        git(&["rev-parse", "--short", "HEAD"]),
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

fn verdict(holds: bool) -> &'static str {
    if holds { "met" } else { "MISSED" }
}

fn report(args: &Args, f: &Figures, zips: &BTreeMap<String, u64>) -> String {
    let mut md = String::new();
    let cold = median(f.cold_starts_ms.clone());
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench.sh` (crate `crates/bench`); every figure is measured in the run.\n"
    );
    let _ = writeln!(md, "- Machine: {}", machine());
    let _ = writeln!(md, "- Commit: {}", commit());
    let _ = writeln!(
        md,
        "- Stack: moto server (AWS, behind a counting proxy), DMM simulator, both binaries ({} build) behind the Lambda Runtime API emulator",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        md,
        "- Medians of {} runs; backlog {} events; {} agreements per run\n",
        args.runs, args.backlog, args.agreements
    );
    let _ = writeln!(md, "| Figure | Value | Target | |\n|---|---|---|---|");
    let mut row = |name: &str, value: String, target: &str, ok: Option<bool>| {
        let _ = writeln!(
            md,
            "| {name} | {value} | {target} | {} |",
            ok.map_or("", verdict)
        );
    };
    let sqs = median(f.poll_sqs_calls_per_event.clone());
    let s3 = median(f.poll_s3_writes_per_event.clone());
    row(
        "poll_feed throughput",
        format!("{:.0} events/s", median(f.poll_events_per_s.clone())),
        "",
        None,
    );
    row(
        "moto alone: one SendMessageBatch of 10 to a FIFO queue",
        format!(
            "{:.1} ms (a ceiling of {:.0} events/s on this stack)",
            f.moto_send_batch_ms,
            10_000.0 / f.moto_send_batch_ms
        ),
        "",
        None,
    );
    row(
        "poll_feed SQS calls per event",
        format!("{sqs:.4}"),
        "≤ 0.11",
        Some(sqs <= 0.11),
    );
    row(
        "poll_feed S3 writes per event",
        format!("{s3:.4}"),
        "≤ 0.01",
        Some(s3 <= 0.01),
    );
    row(
        "poll_feed DMM requests per event",
        format!("{:.4}", median(f.poll_dmm_requests_per_event.clone())),
        "",
        None,
    );
    row(
        "manage_iam_policies activations",
        format!("{:.0} events/s", median(f.activations_per_s.clone())),
        "",
        None,
    );
    row(
        "manage_iam_policies deactivations",
        format!("{:.0} events/s", median(f.deactivations_per_s.clone())),
        "",
        None,
    );
    let act = median(f.activation_iam_writes_per_event.clone());
    let deact = median(f.deactivation_iam_writes_per_event.clone());
    row(
        "IAM writes per activation",
        format!("{act:.3}"),
        "≤ 1",
        Some(act <= 1.0),
    );
    row(
        "IAM writes per deactivation",
        format!("{deact:.3}"),
        "≤ 1",
        Some(deact <= 1.0),
    );
    let replay = median(f.replay_iam_writes.clone());
    row(
        "IAM writes on a no-op replay",
        format!("{replay:.0}"),
        "0",
        Some(replay == 0.0),
    );
    row(
        "DMM writes on a no-op replay",
        format!("{:.0}", median(f.replay_dmm_writes.clone())),
        "0",
        Some(median(f.replay_dmm_writes.clone()) == 0.0),
    );
    let reads = median(f.product_reads_per_event.clone());
    row(
        "DMM data product reads per activation",
        format!("{reads:.3}"),
        "< 2 (one per batch and product)",
        Some(reads < 2.0),
    );
    row(
        "cold start to first Runtime API request",
        format!("{cold:.1} ms (median of {})", f.cold_starts_ms.len()),
        "< 20 ms",
        Some(cold < 20.0),
    );
    for (name, rss) in &f.peak_rss_kib {
        let mb = *rss as f64 / 1024.0;
        row(
            &format!("peak RSS {name}"),
            format!("{mb:.1} MB"),
            "< 40 MB",
            Some(mb < 40.0),
        );
    }
    if zips.is_empty() {
        row(
            "release zip size",
            "not built (run scripts/bench.sh without --no-zip)".into(),
            "< 8 MB",
            None,
        );
    }
    for (name, bytes) in zips {
        let mb = *bytes as f64 / (1024.0 * 1024.0);
        row(
            &format!("release zip {name} (arm64)"),
            format!("{mb:.2} MB"),
            "< 8 MB",
            Some(mb < 8.0),
        );
    }
    md
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let args = Args::parse();
    let mut figures = Figures::default();
    bench_poll_feed(&args, &mut figures).await?;
    let stack = stack(args.agreements).await?;
    bench_manage(&stack, &args, &mut figures).await?;
    let zips: BTreeMap<String, u64> = args
        .zip_dir
        .iter()
        .flat_map(|dir| {
            ["poll_feed", "manage_iam_policies"].map(|f| {
                std::fs::metadata(dir.join(f).join("bootstrap.zip"))
                    .ok()
                    .map(|m| (f.to_owned(), m.len()))
            })
        })
        .flatten()
        .collect();
    let md = report(&args, &figures, &zips);
    std::fs::write(&args.output, &md)?;
    println!("\n{md}");
    drop(stack.moto);
    Ok(())
}
