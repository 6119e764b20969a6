//! `dmm-simulator --scenario FILE [--port N] [--api-key K]`: the simulator as a process, for the
//! local demo and for tests written in other languages.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use dmm_simulator::{Scenario, Simulator};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Serves the Data Mesh Manager API subset of a YAML scenario"
)]
struct Args {
    /// Scenario file (YAML) with teams, data products, agreements and initial events.
    #[arg(long)]
    scenario: PathBuf,
    /// Port to listen on; 0 picks a free one (read it from the `listening on` line).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on; 0.0.0.0 makes the simulator reachable from containers.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// API key clients must send as `x-api-key`, overriding the scenario's `apiKey`.
    #[arg(long)]
    api_key: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr: stdout carries only the `listening on` line that scripts parse.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dmm-simulator: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut scenario = Scenario::from_file(&args.scenario)?;
    if let Some(api_key) = args.api_key {
        scenario.api_key = api_key;
    }
    let sim = Simulator::start(scenario, (args.host.as_str(), args.port)).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", sim.base_url())?;
    stdout.flush()?;
    drop(stdout);
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
