//! Throughput and calls per event: poll_feed on a backlog, manage_iam_policies on activations,
//! a replay and deactivations.
//!
//! Every run gets a fresh moto: its FIFO queues get slower with every message the server ever
//! stored, so runs sharing one server were each slower than the one before (the earlier
//! benchmark's "later runs four times slower" came from that, not from the integration).

use std::time::Instant;

use local_stack::{LambdaFunction, POLL_ONCE, SqsEventSource};
use serde_json::json;

use crate::report::Figures;
use crate::stack::{BenchResult, Mesh, Stack, TIMEOUT, median};

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
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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

pub async fn poll_feed(
    runs: usize,
    backlog: usize,
    agreements: usize,
    figures: &mut Figures,
) -> BenchResult<()> {
    let ids: Vec<String> = (0..agreements.max(1)).map(Mesh::agreement_id).collect();
    let mesh = Mesh {
        agreements: 0,
        providers: 1,
        per_role: 1,
        active_every: 0,
    };
    for run in 0..runs {
        let stack = Stack::start(mesh, None).await?;
        if run == 0 {
            figures.moto_send_batch_ms = moto_send_batch_ms(&stack).await?;
        }
        let events = stack.sim.emit_bulk("AccessUpdatedEvent", &ids, backlog)?;
        if events.len() != backlog {
            return Err(format!(
                "the simulator appended {} of {backlog} events",
                events.len()
            )
            .into());
        }
        let queue = stack.queue("poll").await?;
        let poll = stack
            .poll_feed(&queue, "bench/poll/last_event_id", None, &[POLL_ONCE])
            .await?;
        let (aws_before, dmm_before) = (stack.aws_calls(), stack.dmm_requests());
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
        let aws = stack.aws_calls().since(&aws_before);
        let dmm = stack.dmm_requests().since(&dmm_before);
        let n = forwarded as f64;
        figures.poll_events_per_s.push(n / elapsed);
        figures
            .poll_sqs_calls_per_event
            .push(aws.matching("sqs:") as f64 / n);
        figures
            .poll_s3_writes_per_event
            .push(aws.get("s3:PutObject") as f64 / n);
        figures
            .poll_dmm_requests_per_event
            .push(dmm.total() as f64 / n);
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
    let before = stack.aws_calls();
    let started = Instant::now();
    let report = source.drain(manage, TIMEOUT, usize::MAX).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let writes = stack.aws_calls().since(&before).iam_writes();
    if report.failed > 0 {
        return Err(format!("{} messages failed during the benchmark", report.failed).into());
    }
    Ok((report.delivered as u64, elapsed, writes))
}

pub async fn manage(runs: usize, agreements: usize, figures: &mut Figures) -> BenchResult<()> {
    let mesh = Mesh {
        agreements,
        providers: 1,
        per_role: 1,
        active_every: 0,
    };
    for run in 0..runs {
        let stack = Stack::start(mesh, None).await?;
        let queue = stack.queue("manage").await?;
        let poll = stack
            .poll_feed(&queue, "bench/manage/last_event_id", None, &[POLL_ONCE])
            .await?;
        let source = SqsEventSource::new(aws_sdk_sqs::Client::new(&stack.aws), &queue).await?;
        let manage = stack.manage(&queue).await?;
        let ids: Vec<String> = (0..agreements).map(Mesh::agreement_id).collect();

        for id in &ids {
            stack.sim.activate(id)?;
        }
        let dmm_before = stack.dmm_requests();
        let (n, secs, writes) = drain(&stack, &poll, &manage, &source).await?;
        let dmm = stack.dmm_requests().since(&dmm_before);
        let granted = stack.granted_agreements().await?;
        if granted != agreements {
            return Err(format!(
                "{granted} of {agreements} agreements were granted: the benchmark measured refusals"
            )
            .into());
        }
        figures.activations_per_s.push(n as f64 / secs);
        figures
            .activation_iam_writes_per_event
            .push(writes as f64 / n as f64);
        figures
            .product_reads_per_event
            .push(dmm.get("GET /api/dataproducts/{id}") as f64 / n as f64);
        figures
            .dmm_requests_per_activation
            .push(dmm.total() as f64 / n as f64);
        println!("activations run {run}: {n} in {secs:.2}s, {writes} IAM writes");

        // The status updates the integration wrote come back as AccessUpdatedEvents: a replay
        // of a converged state, which must write nothing.
        let puts = stack.sim.puts().len();
        let (n, _, writes) = drain(&stack, &poll, &manage, &source).await?;
        figures.replay_iam_writes.push(writes as f64);
        figures
            .replay_dmm_writes
            .push((stack.sim.puts().len() - puts) as f64);
        println!("replay run {run}: {n} events, {writes} IAM writes");

        for id in &ids {
            stack.sim.deactivate(id)?;
        }
        let (n, secs, writes) = drain(&stack, &poll, &manage, &source).await?;
        figures.deactivations_per_s.push(n as f64 / secs);
        figures
            .deactivation_iam_writes_per_event
            .push(writes as f64 / n as f64);
        println!("deactivations run {run}: {n} in {secs:.2}s, {writes} IAM writes");
        drain(&stack, &poll, &manage, &source).await?;
        figures.observe("poll_feed", &poll);
        figures.observe("manage_iam_policies", &manage);
    }
    Ok(())
}
