//! The figures a benchmark run collects and `BENCHMARKS.md` as written from them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use local_stack::LambdaFunction;

use crate::latency::LatencyRun;
use crate::roles::{CapacityRun, OneRole};
use crate::scale::{Job, ScaleRun};
use crate::stack::{median, percentile};

#[derive(Default)]
pub struct Figures {
    pub moto_send_batch_ms: f64,
    pub poll_events_per_s: Vec<f64>,
    pub poll_sqs_calls_per_event: Vec<f64>,
    pub poll_s3_writes_per_event: Vec<f64>,
    pub poll_dmm_requests_per_event: Vec<f64>,
    pub activations_per_s: Vec<f64>,
    pub deactivations_per_s: Vec<f64>,
    pub activation_iam_writes_per_event: Vec<f64>,
    pub deactivation_iam_writes_per_event: Vec<f64>,
    pub replay_iam_writes: Vec<f64>,
    pub replay_dmm_writes: Vec<f64>,
    pub product_reads_per_event: Vec<f64>,
    pub dmm_requests_per_activation: Vec<f64>,
    pub cold_starts_ms: Vec<f64>,
    pub peak_rss_kib: BTreeMap<&'static str, u64>,
    pub latency: Vec<LatencyRun>,
    pub scale: Vec<ScaleRun>,
}

impl Figures {
    pub fn observe(&mut self, name: &'static str, function: &LambdaFunction) {
        let metrics = function.metrics();
        self.cold_starts_ms
            .extend(metrics.cold_starts.iter().map(|d| d.as_secs_f64() * 1000.0));
        if let Some(rss) = metrics.peak_rss_kib {
            let peak = self.peak_rss_kib.entry(name).or_default();
            *peak = (*peak).max(rss);
        }
    }
}

/// How the run was made, for the report's header.
pub struct Setup {
    pub machine: String,
    pub commit: String,
    pub runs: usize,
    pub backlog: usize,
    pub agreements: usize,
    pub latency_agreements: usize,
    pub latency_spacing_s: f64,
    /// Parts not run (`--parts`), named in the report.
    pub skipped: Vec<&'static str>,
}

fn verdict(holds: bool) -> &'static str {
    if holds { "met" } else { "MISSED" }
}

fn header(md: &mut String, columns: &[&str]) {
    let _ = writeln!(md, "| {} |", columns.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(columns.len()));
}

fn row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}

fn figure(md: &mut String, name: &str, value: String, target: &str, ok: Option<bool>) {
    row(
        md,
        &[
            name.to_owned(),
            value,
            target.to_owned(),
            ok.map_or("", verdict).to_owned(),
        ],
    );
}

pub fn render(setup: &Setup, f: &Figures, zips: &BTreeMap<String, u64>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench.sh` (crate `crates/bench`); every figure is measured in the run.\n"
    );
    let _ = writeln!(md, "- Machine: {}", setup.machine);
    let _ = writeln!(md, "- Commit: {}", setup.commit);
    let _ = writeln!(
        md,
        "- Grants in the default layout, `grant_layout = packed` (ADR 023), unless a section says otherwise"
    );
    let _ = writeln!(
        md,
        "- Stack: moto server (AWS, behind a counting proxy), DMM simulator, both binaries ({} build) behind the Lambda Runtime API emulator; a fresh moto for every run",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    if !setup.skipped.is_empty() {
        let _ = writeln!(md, "- Not run this time: {}", setup.skipped.join(", "));
    }
    let _ = writeln!(md);
    throughput(&mut md, setup, f, zips);
    latency(&mut md, setup, &f.latency);
    scale(&mut md, &f.scale);
    md
}

fn throughput(md: &mut String, setup: &Setup, f: &Figures, zips: &BTreeMap<String, u64>) {
    if f.poll_events_per_s.is_empty() && f.activations_per_s.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Throughput and calls per event\n");
    let _ = writeln!(
        md,
        "Medians of {} runs; a backlog of {} events for poll_feed (one read of the feed per invocation); {} agreements activated, replayed and deactivated per run, each on its own consumer role. Every run starts a fresh moto: moto's FIFO queue rescans every message it ever stored on each send, which is what made later runs on one server up to four times slower in earlier versions of this benchmark; the per-run rates are listed to show they now agree.\n",
        setup.runs, setup.backlog, setup.agreements
    );
    header(md, &["Figure", "Value", "Target", ""]);
    let sqs = median(f.poll_sqs_calls_per_event.clone());
    let s3 = median(f.poll_s3_writes_per_event.clone());
    figure(
        md,
        "poll_feed throughput",
        rate(&f.poll_events_per_s),
        "",
        None,
    );
    figure(
        md,
        "moto alone: one SendMessageBatch of 10 to a FIFO queue",
        format!(
            "{:.1} ms (a ceiling of {:.0} events/s on this stack)",
            f.moto_send_batch_ms,
            10_000.0 / f.moto_send_batch_ms
        ),
        "",
        None,
    );
    figure(
        md,
        "poll_feed SQS calls per event",
        format!("{sqs:.4}"),
        "≤ 0.11",
        Some(sqs <= 0.11),
    );
    figure(
        md,
        "poll_feed S3 writes per event",
        format!("{s3:.4}"),
        "≤ 0.01",
        Some(s3 <= 0.01),
    );
    figure(
        md,
        "poll_feed DMM requests per event (feed pages, connector document)",
        format!("{:.4}", median(f.poll_dmm_requests_per_event.clone())),
        "",
        None,
    );
    figure(
        md,
        "manage_iam_policies activations",
        rate(&f.activations_per_s),
        "",
        None,
    );
    figure(
        md,
        "manage_iam_policies deactivations",
        rate(&f.deactivations_per_s),
        "",
        None,
    );
    let act = median(f.activation_iam_writes_per_event.clone());
    let deact = median(f.deactivation_iam_writes_per_event.clone());
    figure(
        md,
        "IAM writes per activation",
        format!("{act:.3}"),
        "≤ 1",
        Some(act <= 1.0),
    );
    figure(
        md,
        "IAM writes per deactivation",
        format!("{deact:.3}"),
        "≤ 1",
        Some(deact <= 1.0),
    );
    let replay = median(f.replay_iam_writes.clone());
    figure(
        md,
        "IAM writes on a no-op replay",
        format!("{replay:.0}"),
        "0",
        Some(replay == 0.0),
    );
    let replay_dmm = median(f.replay_dmm_writes.clone());
    figure(
        md,
        "DMM writes on a no-op replay",
        format!("{replay_dmm:.0}"),
        "0",
        Some(replay_dmm == 0.0),
    );
    let reads = median(f.product_reads_per_event.clone());
    figure(
        md,
        "DMM data product reads per activation",
        format!("{reads:.3}"),
        "< 2 (one per batch and product)",
        Some(reads < 2.0),
    );
    figure(
        md,
        "DMM requests per activation (agreement, data products, status)",
        format!("{:.3}", median(f.dmm_requests_per_activation.clone())),
        "",
        None,
    );
    let cold = median(f.cold_starts_ms.clone());
    figure(
        md,
        "cold start to first Runtime API request",
        format!("{cold:.1} ms (median of {})", f.cold_starts_ms.len()),
        "< 20 ms",
        Some(cold < 20.0),
    );
    for (name, rss) in &f.peak_rss_kib {
        let mb = *rss as f64 / 1024.0;
        figure(
            md,
            &format!("peak RSS {name}"),
            format!("{mb:.1} MB"),
            "< 40 MB",
            Some(mb < 40.0),
        );
    }
    if zips.is_empty() {
        figure(
            md,
            "release zip size",
            "not built (run scripts/bench.sh without --no-zip)".into(),
            "< 8 MB",
            None,
        );
    }
    for (name, bytes) in zips {
        let mb = *bytes as f64 / (1024.0 * 1024.0);
        figure(
            md,
            &format!("release zip {name} (arm64)"),
            format!("{mb:.2} MB"),
            "< 8 MB",
            Some(mb < 8.0),
        );
    }
    let _ = writeln!(md);
}

/// The median rate, then each run's.
fn rate(runs: &[f64]) -> String {
    let each: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
    format!(
        "{:.0} events/s (runs: {})",
        median(runs.to_vec()),
        each.join(", ")
    )
}

fn latency(md: &mut String, setup: &Setup, runs: &[LatencyRun]) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Event to access\n");
    let _ = writeln!(
        md,
        "From the simulator's event time to the first read through the consumer role's own session that succeeds (activation) or is denied (deactivation), under moto's IAM enforcement. {} agreements per mode, changed {:.1} s apart (over {:.0} s, so every phase of the one-minute schedule is sampled); poll_feed invoked once a minute with its deployed timeout (58 s) and margin (3 s); each queued message handed to manage_iam_policies as soon as it is visible; reads every 0.1 s.\n",
        setup.latency_agreements,
        setup.latency_spacing_s,
        setup.latency_agreements as f64 * setup.latency_spacing_s
    );
    header(
        md,
        &[
            "poll_feed",
            "Direction",
            "p50",
            "p95",
            "max",
            "Target (p95)",
            "",
            "Feed reads per run",
        ],
    );
    for run in runs {
        let mode = if run.interval_ms == 0 {
            "one read per run (`poll_interval_ms=0`)".to_owned()
        } else {
            format!("continuous (`poll_interval_ms={}`)", run.interval_ms)
        };
        for (direction, seconds) in [
            ("activation → readable", &run.activation),
            ("deactivation → denied", &run.deactivation),
        ] {
            let p95 = percentile(seconds, 95.0);
            let target = run.interval_ms > 0;
            row(
                md,
                &[
                    mode.clone(),
                    direction.to_owned(),
                    format!("{:.2} s", percentile(seconds, 50.0)),
                    format!("{p95:.2} s"),
                    format!("{:.2} s", percentile(seconds, 100.0)),
                    if target {
                        "< 5 s".into()
                    } else {
                        String::new()
                    },
                    if target {
                        verdict(p95 < 5.0).into()
                    } else {
                        String::new()
                    },
                    format!("{:.1} ({} runs)", run.feed_reads_per_run, run.poll_runs),
                ],
            );
        }
    }
    let _ = writeln!(
        md,
        "\nThe latency does not grow with the mesh: each change is one event, one message and one agreement's reconcile. Real IAM adds its own propagation (typically a few seconds) on top; moto applies a policy at once.\n"
    );
}

fn per_agreement(count: u64, job: &Job) -> String {
    if job.agreements == 0 {
        return format!("{count}");
    }
    format!("{count} ({:.2} each)", count as f64 / job.agreements as f64)
}

fn scale(md: &mut String, runs: &[ScaleRun]) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Background jobs by mesh size\n");
    let _ = writeln!(
        md,
        "Ten agreements per provider data product and ten per consumer role; one agreement in ten is active, the others are requests never approved (they are checked all the same). A sweep is its scheduled invocation plus the reconciles it queues, handed to manage_iam_policies ten per invocation while the sweep runs, until the queue is empty; one invocation at a time (a deployment runs up to `event_maximum_concurrency` at once), each with the deployed 60 s timeout. The first sweep finds nothing granted (every event lost) and grants every active agreement; the second finds the mesh converged, the daily case. The dry run is repeated with `after` until complete. The product change is one provider data product with ten agreements, from its event to the last reconcile. \"Each\" is per agreement the job reached.\n"
    );
    header(
        md,
        &[
            "Mesh",
            "Job",
            "Invocations",
            "Duration",
            "DMM requests",
            "AWS reads",
            "IAM writes",
        ],
    );
    for run in runs {
        let jobs: [(&str, &Job); 4] = [
            (
                "sweep `all` + reconciles, nothing granted yet",
                &run.first_sweep,
            ),
            (
                "sweep `all` + reconciles, converged (daily)",
                &run.steady_sweep,
            ),
            ("dry run", &run.dry_run),
            ("product change (10 agreements)", &run.product_change),
        ];
        for (name, job) in jobs {
            row(
                md,
                &[
                    format!("{}", run.mesh),
                    name.to_owned(),
                    format!("{}", job.invocations),
                    format!("{:.1} s", job.seconds),
                    per_agreement(job.dmm.total(), job),
                    per_agreement(job.aws.reads(), job),
                    per_agreement(job.aws.iam_writes(), job),
                ],
            );
        }
    }
    let _ = writeln!(md);
    for run in runs {
        let _ = writeln!(
            md,
            "- {} agreements: the sweep's own invocation took {:.1} s and {}; the dry run took {} invocation(s).",
            run.mesh,
            run.sweep_invocation_seconds,
            if run.sweep_fits_one_invocation {
                "covered every agreement"
            } else {
                "stopped before its deadline; its continuations through the queue did the rest"
            },
            run.dry_run.invocations
        );
    }
    if let [small, .., large] = runs {
        let growth = |a: &Job, b: &Job| b.seconds / a.seconds.max(f64::EPSILON);
        let _ = writeln!(
            md,
            "- From {} to {} agreements ({:.0}×): the converged sweep took {:.1}× as long, the dry run {:.1}×, the product change {:.1}× (its DMM requests: {} → {}).",
            small.mesh,
            large.mesh,
            large.mesh as f64 / small.mesh as f64,
            growth(&small.steady_sweep, &large.steady_sweep),
            growth(&small.dry_run, &large.dry_run),
            growth(&small.product_change, &large.product_change),
            small.product_change.dmm.total(),
            large.product_change.dmm.total()
        );
    }
    let _ = writeln!(md);
}

/// The markers around the roles section, so a run of that part alone replaces only it.
pub const ROLES_BEGIN: &str = "<!-- part: roles -->";
pub const ROLES_END: &str = "<!-- end of part: roles -->";

/// Many agreements on one role (ADR 023), between [`ROLES_BEGIN`] and [`ROLES_END`].
pub fn roles(runs: &[CapacityRun], one: &OneRole, commit: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "{ROLES_BEGIN}");
    let _ = writeln!(md, "## Many agreements on one role\n");
    let _ = writeln!(
        md,
        "Measured at commit {commit}. One consumer role; agreements on distinct resources of one port type activated one at a time until the first refusal. The ownership check is off (this part measures the layouts). Packed: `grant_layout = packed`, the role's inline slot (as much of its inline budget as its other inline policies leave, at most 6,144 characters) and the default `managed_policies_per_role`.\n"
    );
    header(
        &mut md,
        &[
            "Port type",
            "Layout",
            "Agreements on the role",
            "What refused the next",
        ],
    );
    for run in runs {
        let layout = if run.policies == 0 {
            "one inline policy each".to_owned()
        } else {
            format!("packed: inline + {} managed policies", run.policies)
        };
        let held = match &run.refusal {
            Some(_) => run.granted.to_string(),
            None => format!("≥ {} (all {} granted)", run.granted, run.max),
        };
        let cause = run.refusal.as_deref().unwrap_or("–").replace('|', "\\|");
        row(&mut md, &[run.port_type.to_owned(), layout, held, cause]);
    }
    let _ = writeln!(
        md,
        "\nPacked, the inline slot and {} managed policies per role, {} S3 folder agreements on one role:\n",
        one.policies, one.activations
    );
    header(&mut md, &["Figure", "Value"]);
    row(
        &mut md,
        &[
            format!("Time to converge the {} activations", one.activations),
            format!(
                "{:.1} s ({:.1} ms each)",
                one.seconds,
                1000.0 * one.seconds / one.activations.max(1) as f64
            ),
        ],
    );
    row(
        &mut md,
        &[
            "IAM writes per activation, ten at a time".to_owned(),
            format!("{:.2}", one.writes_per_activation),
        ],
    );
    for (which, at) in [
        ("the first agreement (inline slot)", &one.at),
        ("the agreement placed last", &one.at_last),
    ] {
        for (held, revoke, activate) in at {
            row(
                &mut md,
                &[
                    format!(
                        "IAM writes, one revocation / one activation alone, {held} grants on the \
                         role: {which}"
                    ),
                    format!("{revoke:.0} / {activate:.0}"),
                ],
            );
        }
    }
    row(
        &mut md,
        &[
            "Reads per reconcile of a grant in place (IAM / S3)".to_owned(),
            format!(
                "{:.1} / {:.1}",
                one.reads_per_replay.0, one.reads_per_replay.1
            ),
        ],
    );
    row(
        &mut md,
        &[
            "Packed policies on the role".to_owned(),
            format!(
                "{} managed{}",
                one.attached,
                if one.inline_slot {
                    " + the inline one"
                } else {
                    ""
                }
            ),
        ],
    );
    row(
        &mut md,
        &[
            "Real access (moto IAM enforcement, the role's own session)".to_owned(),
            format!(
                "{} of {} sampled folders readable; a folder of no agreement {}",
                one.readable,
                one.sampled,
                if one.outside_denied {
                    "denied"
                } else {
                    "READABLE"
                }
            ),
        ],
    );
    if let (Some(first), Some(last)) = (one.at.first(), one.at.last()) {
        let writes = |(_, revoke, activate): &(usize, f64, f64)| revoke + activate;
        let _ = writeln!(
            md,
            "\nGrowth: from {} to {} grants on the role, one revocation and one activation took {:.0} and then {:.0} IAM writes together ({}); each rewrites the one policy that holds the agreement, and a reconcile reads the role record and that policy, not the others.\n",
            first.0,
            last.0,
            writes(first),
            writes(last),
            if writes(first) == writes(last) {
                "flat"
            } else {
                "not flat"
            }
        );
    }
    let _ = writeln!(md, "{ROLES_END}");
    md
}

/// `report` with its roles section replaced by `section` (added at the end when it has none).
pub fn splice_roles(report: &str, section: &str) -> String {
    match (report.find(ROLES_BEGIN), report.find(ROLES_END)) {
        (Some(begin), Some(end)) if begin < end => {
            let end = end + ROLES_END.len();
            let rest = report[end..].strip_prefix('\n').unwrap_or(&report[end..]);
            format!("{}{section}{rest}", &report[..begin])
        }
        _ => format!("{}\n{section}", report.trim_end()),
    }
}
