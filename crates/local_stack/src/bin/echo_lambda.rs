//! A Lambda function for the emulator's own tests. It runs on `lambda_runtime` like the real
//! binaries and misbehaves on request, so every path of the emulator can be provoked:
//!
//! - payload `{"log": "text"}`: prints `text` to stdout and `stderr: text` to stderr
//! - payload `{"sleep_ms": n}`: takes that long
//! - payload `{"exit": code}`: the process exits with `code` mid-invocation
//! - payload `{"fail": "message"}`: the handler returns an `EchoFailure` error
//! - env `ECHO_LAMBDA_INIT_ERROR=message`: reports an init error and exits, before serving
//!
//! Otherwise it answers with the payload and what it saw of the invocation and its process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

struct EchoFailure(String);

impl From<EchoFailure> for Diagnostic {
    fn from(failure: EchoFailure) -> Self {
        Diagnostic {
            error_type: "EchoFailure".to_owned(),
            error_message: failure.0,
        }
    }
}

impl std::fmt::Debug for EchoFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if let Ok(message) = std::env::var("ECHO_LAMBDA_INIT_ERROR") {
        report_init_error(&message).await?;
        return Err(message.into());
    }
    println!(
        "{}",
        json!({"level": "INFO", "message": "echo_lambda initialised"})
    );
    let served = Arc::new(AtomicU64::new(0));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let invocation = served.fetch_add(1, Ordering::SeqCst) + 1;
        handle(event, invocation)
    }))
    .await
}

async fn handle(event: LambdaEvent<Value>, invocation: u64) -> Result<Value, EchoFailure> {
    let (payload, context) = event.into_parts();
    if let Some(text) = payload.get("log").and_then(Value::as_str) {
        println!("{text}");
        eprintln!("stderr: {text}");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        eprintln!("exiting with {code}");
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(EchoFailure(message.to_owned()));
    }
    let env: serde_json::Map<String, Value> = std::env::vars()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "payload": payload,
        "request_id": context.request_id,
        "deadline_ms": context.deadline,
        "function_arn": context.invoked_function_arn,
        "trace_id": context.xray_trace_id,
        "pid": std::process::id(),
        "invocation": invocation,
        "env": env,
    }))
}

/// What a custom runtime does when its initialisation fails (`lambda_runtime` offers no public
/// call for it outside SnapStart).
async fn report_init_error(message: &str) -> Result<(), Error> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")?;
    reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .json(&json!({"errorType": "EchoInitError", "errorMessage": message}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
