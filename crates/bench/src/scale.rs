//! The background jobs on a large mesh: the drift sweep (`all`, then the reconciles it queues),
//! its dry run, and a data product change, each on meshes of growing size so an operator can
//! see how the cost grows.
//!
//! The mesh: ten agreements per provider data product and ten per consumer role, one in ten
//! active. The first sweep grants every active one (a mesh that lost all its events); the second
//! finds the mesh converged, which is the daily case. While a sweep runs, the queue is handed to a second
//! manage_iam_policies process, as the event source mapping does in a deployment (moto's FIFO
//! queue slows down with every message it holds, so letting the requests pile up would measure
//! moto).

use std::time::Instant;

use local_stack::{LambdaFunction, POLL_ONCE, SqsEventSource};
use serde_json::{Value, json};

use crate::stack::{BenchResult, Counts, MANAGE_TIMEOUT, Mesh, Stack};

/// One agreement in ten is active; the others are requests not (yet) approved, as in a mesh
/// where most access requests end or were never granted.
pub const ACTIVE_EVERY: usize = 10;

/// One background job on one mesh.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// Invocations of manage_iam_policies it took (the sweep's own, its continuations, the
    /// batches of reconciles).
    pub invocations: usize,
    pub seconds: f64,
    pub dmm: Counts,
    pub aws: Counts,
    /// Agreements it covered: the whole mesh for a sweep, the changed product's for a change.
    pub agreements: usize,
}

/// What one mesh size measured.
pub struct ScaleRun {
    pub mesh: usize,
    /// The sweep and the reconciles it queued, until the queue is empty: on a mesh where
    /// nothing is granted yet, then on the converged mesh (the daily case).
    pub first_sweep: Job,
    pub steady_sweep: Job,
    /// The sweep's own invocation (listing, queueing) on the converged mesh, in seconds.
    pub sweep_invocation_seconds: f64,
    /// Whether that invocation covered every agreement (otherwise its continuations did).
    pub sweep_fits_one_invocation: bool,
    /// Dry runs, each continuing after the last, until complete.
    pub dry_run: Job,
    /// One provider data product (ten agreements) changes.
    pub product_change: Job,
}

pub async fn run(sizes: &[usize]) -> BenchResult<Vec<ScaleRun>> {
    let mut runs = Vec::new();
    for &size in sizes {
        let run = one_size(size).await?;
        println!(
            "scale {size}: first sweep {:.1}s, steady sweep {:.1}s (its invocation {:.1}s), dry run {:.1}s in {}, product change {:.2}s",
            run.first_sweep.seconds,
            run.steady_sweep.seconds,
            run.sweep_invocation_seconds,
            run.dry_run.seconds,
            run.dry_run.invocations,
            run.product_change.seconds
        );
        runs.push(run);
    }
    Ok(runs)
}

async fn one_size(size: usize) -> BenchResult<ScaleRun> {
    let mesh = Mesh {
        agreements: size,
        providers: size.div_ceil(10),
        per_role: 10,
        active_every: ACTIVE_EVERY,
    };
    let stack = Stack::start(mesh, None).await?;
    let queue = stack.queue("scale").await?;
    let source = SqsEventSource::new(aws_sdk_sqs::Client::new(&stack.aws), &queue).await?;
    // One process invoked directly (the schedule, an operator), one behind the queue.
    let direct = stack.manage(&queue).await?;
    let manage = stack.manage(&queue).await?;

    let (first_sweep, _) = sweep_until_converged(&stack, &direct, &source, &manage).await?;
    let granted = stack.granted_agreements().await?;
    let active = size.div_ceil(ACTIVE_EVERY);
    if granted != active {
        return Err(
            format!("the first sweep granted {granted} of {active} active agreements").into(),
        );
    }
    let (steady_sweep, (sweep_invocation_seconds, report)) =
        sweep_until_converged(&stack, &direct, &source, &manage).await?;
    if steady_sweep.aws.iam_writes() != 0 {
        return Err("the sweep of a converged mesh wrote to IAM".into());
    }
    let dry_run = dry_runs(&stack, &direct, size).await?;
    let product_change = product_change(&stack, &queue, &source, &manage).await?;
    Ok(ScaleRun {
        mesh: size,
        first_sweep,
        steady_sweep,
        sweep_invocation_seconds,
        sweep_fits_one_invocation: report["complete"] == true,
        dry_run,
        product_change,
    })
}

/// The scheduled sweep while the event source mapping hands the requests it queues (and its
/// continuations) to manage_iam_policies, as in a deployment; until the queue is empty. Returns
/// the job and the sweep invocation's own duration and report.
async fn sweep_until_converged(
    stack: &Stack,
    direct: &LambdaFunction,
    source: &SqsEventSource,
    manage: &LambdaFunction,
) -> BenchResult<(Job, (f64, Value))> {
    let (dmm, aws) = (stack.dmm_requests(), stack.aws_calls());
    let started = Instant::now();
    let swept = std::sync::OnceLock::new();
    let sweep = async {
        let report = direct
            .invoke(json!({"reconcile": "all"}), MANAGE_TIMEOUT)
            .await?;
        let _ = swept.set((started.elapsed().as_secs_f64(), report));
        BenchResult::Ok(())
    };
    let pump = async {
        let mut invocations = 0usize;
        loop {
            match source.deliver_once(manage, MANAGE_TIMEOUT).await? {
                Some(delivery) if !delivery.failed.is_empty() => {
                    let why: Vec<String> = manage
                        .logs()
                        .into_iter()
                        .filter(|line| line.text.contains("\"retry\""))
                        .map(|line| line.text)
                        .collect();
                    return Err(format!("reconciles failed: {:?}: {why:?}", delivery.failed).into());
                }
                Some(_) => invocations += 1,
                None if swept.get().is_some() => return BenchResult::Ok(invocations),
                None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    };
    let ((), invocations) = tokio::try_join!(sweep, pump)?;
    let job = Job {
        invocations: invocations + 1,
        seconds: started.elapsed().as_secs_f64(),
        dmm: stack.dmm_requests().since(&dmm),
        aws: stack.aws_calls().since(&aws),
        agreements: stack.mesh.agreements,
    };
    let invocation = swept.into_inner().ok_or("the sweep did not report")?;
    Ok((job, invocation))
}

/// Dry runs, each continuing where the last stopped, until one is complete.
async fn dry_runs(stack: &Stack, manage: &LambdaFunction, size: usize) -> BenchResult<Job> {
    let (dmm, aws) = (stack.dmm_requests(), stack.aws_calls());
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut checked = 0u64;
    let mut invocations = 0usize;
    loop {
        let request = match &after {
            Some(after) => json!({"reconcile": "dry-run", "after": after}),
            None => json!({"reconcile": "dry-run"}),
        };
        let report = manage.invoke(request, MANAGE_TIMEOUT).await?;
        invocations += 1;
        checked += report["checked"].as_u64().unwrap_or_default();
        if report.get("drift").is_some() {
            return Err(format!(
                "the dry run of a converged mesh found drift: {}",
                report["table"]
            )
            .into());
        }
        match report["resumeAfter"].as_str() {
            Some(resume) if report["complete"] == false => after = Some(resume.to_owned()),
            _ => break,
        }
    }
    if checked != size as u64 {
        return Err(format!("the dry runs checked {checked} of {size} agreements").into());
    }
    Ok(Job {
        invocations,
        seconds: started.elapsed().as_secs_f64(),
        dmm: stack.dmm_requests().since(&dmm),
        aws: stack.aws_calls().since(&aws),
        agreements: checked as usize,
    })
}

/// Provider data product 0 changes: poll_feed forwards the event, manage_iam_policies finds the
/// product's agreements and reconciles them.
async fn product_change(
    stack: &Stack,
    queue: &str,
    source: &SqsEventSource,
    manage: &LambdaFunction,
) -> BenchResult<Job> {
    let start_after = stack.mark("product-change")?;
    let poll = stack
        .poll_feed(
            queue,
            "bench/scale/last_event_id",
            Some(&start_after),
            &[POLL_ONCE],
        )
        .await?;
    let (dmm, aws) = (stack.dmm_requests(), stack.aws_calls());
    let started = Instant::now();
    stack
        .sim
        .emit("DataProductUpdatedEvent", &Mesh::provider_id(0));
    stack.poll_until_caught_up(&poll).await?;
    let report = source.drain(manage, MANAGE_TIMEOUT, usize::MAX).await?;
    if report.failed > 0 {
        return Err(format!("{} messages of the product change failed", report.failed).into());
    }
    let job = Job {
        invocations: report.batches,
        seconds: started.elapsed().as_secs_f64(),
        dmm: stack.dmm_requests().since(&dmm),
        aws: stack.aws_calls().since(&aws),
        // The change event itself, then one reconcile request per agreement.
        agreements: report.delivered.saturating_sub(1),
    };
    Ok(job)
}
