//! The `dmm-simulator` binary as scripts use it.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::scenario::demo;

#[tokio::test]
async fn the_binary_prints_its_address_and_serves_the_scenario() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dmm-simulator"))
        .args([
            "--scenario",
            &demo(),
            "--port",
            "0",
            "--api-key",
            "from-cli",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the address is printed promptly")
        .unwrap()
        .expect("a line on stdout");
    let base_url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
    assert!(!base_url.ends_with(":0"), "{base_url}");

    let http = reqwest::Client::new();
    let url = format!("{base_url}/api/access/shipments-reads-orders-eu");
    let response = http
        .get(&url)
        .header("x-api-key", "from-cli")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let scenario_key = http
        .get(&url)
        .header("x-api-key", "demo-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        scenario_key.status(),
        401,
        "--api-key replaces the scenario's key"
    );

    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_bad_scenario_path_fails_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_dmm-simulator"))
        .args(["--scenario", "/nonexistent.yaml"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent.yaml"), "{stderr}");
}
