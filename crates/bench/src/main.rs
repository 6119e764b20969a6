//! Benchmarks of both Lambda functions on the local stack (moto, the DMM simulator, the Lambda
//! Runtime API emulator), written to `BENCHMARKS.md`.
//!
//! Every figure is measured in the run: wall times around real invocations, AWS calls counted by
//! the proxy in front of moto, DMM requests counted by the simulator, IAM writes from both, cold
//! starts and peak RSS from the Runtime API emulator, zip sizes from `cargo lambda build`'s
//! output. Three parts: throughput and calls per event (medians of `--runs` runs), event-to-access
//! latency with and without continuous polling, and the background jobs on meshes of growing
//! size.

mod latency;
mod report;
mod roles;
mod scale;
mod stack;
mod throughput;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::report::{Figures, Setup};
use crate::stack::BenchResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Throughput,
    Latency,
    Scale,
    /// Many agreements on one role; run alone, it replaces only its section of the report.
    Roles,
}

#[derive(Parser)]
#[command(about = "Benchmark poll_feed and manage_iam_policies on the local stack")]
struct Args {
    /// The parts to run; the report names those left out.
    #[arg(long, value_delimiter = ',', default_values = ["throughput", "latency", "scale", "roles"])]
    parts: Vec<Part>,
    /// Runs per throughput figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Events in the poll_feed backlog.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
    /// Agreements activated and deactivated per throughput run.
    #[arg(long, default_value_t = 1_000)]
    agreements: usize,
    /// Agreements activated and deactivated per polling mode in the latency part.
    #[arg(long, default_value_t = 100)]
    latency_agreements: usize,
    /// Seconds between two changes in the latency part.
    #[arg(long, default_value_t = 1.25)]
    latency_spacing: f64,
    /// Mesh sizes of the scale part.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000])]
    mesh: Vec<usize>,
    /// The most agreements one role is filled with per port type and layout in the roles part.
    #[arg(long, default_value_t = 1_200)]
    role_max: usize,
    /// Folder agreements activated on one role in the roles part.
    #[arg(long, default_value_t = 1_000)]
    role_activations: usize,
    /// Where `cargo lambda build --release --arm64 --output-format zip` put the zips
    /// (`<dir>/<function>/bootstrap.zip`); sizes are reported when present.
    #[arg(long)]
    zip_dir: Option<PathBuf>,
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,
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

#[tokio::main]
async fn main() -> BenchResult<()> {
    let args = Args::parse();
    let mut figures = Figures::default();
    let runs = |part| args.parts.contains(&part);
    if runs(Part::Throughput) {
        throughput::poll_feed(args.runs, args.backlog, args.agreements, &mut figures).await?;
        throughput::manage(args.runs, args.agreements, &mut figures).await?;
    }
    if runs(Part::Latency) {
        let spacing = Duration::from_secs_f64(args.latency_spacing);
        figures.latency = latency::run(args.latency_agreements, spacing).await?;
    }
    if runs(Part::Scale) {
        figures.scale = scale::run(&args.mesh).await?;
    }
    let roles_section = if runs(Part::Roles) {
        let (capacity, one) = roles::run(args.role_max, args.role_activations).await?;
        Some(report::roles(&capacity, &one, &commit()))
    } else {
        None
    };
    if args.parts == [Part::Roles] {
        let existing = std::fs::read_to_string(&args.output).unwrap_or_default();
        let md = report::splice_roles(&existing, roles_section.as_deref().unwrap_or_default());
        std::fs::write(&args.output, &md)?;
        println!(
            "
{}",
            roles_section.unwrap_or_default()
        );
        return Ok(());
    }
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
    let setup = Setup {
        machine: machine(),
        commit: commit(),
        runs: args.runs,
        backlog: args.backlog,
        agreements: args.agreements,
        latency_agreements: args.latency_agreements,
        latency_spacing_s: args.latency_spacing,
        skipped: [
            (Part::Throughput, "throughput"),
            (Part::Latency, "latency"),
            (Part::Scale, "scale"),
            (Part::Roles, "roles"),
        ]
        .into_iter()
        .filter(|(part, _)| !runs(*part))
        .map(|(_, name)| name)
        .collect(),
    };
    let mut md = report::render(&setup, &figures, &zips);
    if let Some(section) = roles_section {
        md = report::splice_roles(&md, &section);
    }
    std::fs::write(&args.output, &md)?;
    println!("\n{md}");
    Ok(())
}
