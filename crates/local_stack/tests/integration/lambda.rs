//! The Lambda Runtime API emulator, driving `echo_lambda` (a `lambda_runtime` binary of this
//! crate) through success and every failure path.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use local_stack::{InvokeError, LambdaFunction, Stream, TimeoutPhase, binary_path};
use serde_json::{Value, json};

const ECHO: &str = env!("CARGO_BIN_EXE_echo_lambda");
const TIMEOUT: Duration = Duration::from_secs(10);

async fn echo(env: &[(&str, &str)]) -> LambdaFunction {
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    LambdaFunction::start(ECHO, "echo", env).await.unwrap()
}

fn unix_ms() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(now.as_millis()).unwrap()
}

fn pid(answer: &Value) -> u64 {
    answer["pid"].as_u64().unwrap()
}

#[test]
fn binary_path_finds_the_binary_cargo_built_for_these_tests() {
    let found = binary_path("echo_lambda").unwrap();
    assert_eq!(
        found.canonicalize().unwrap(),
        Path::new(ECHO).canonicalize().unwrap()
    );
}

#[tokio::test]
async fn answers_with_lambda_context_and_environment_and_stays_warm() {
    let f = echo(&[("dmm_base_url", "http://x"), ("AWS_REGION", "eu-central-1")]).await;
    let before = unix_ms();
    let first = f
        .invoke(json!({"hello": "world"}), Duration::from_secs(30))
        .await
        .unwrap();
    let after = unix_ms();

    assert_eq!(first["payload"], json!({"hello": "world"}));
    let deadline = first["deadline_ms"].as_u64().unwrap();
    assert!(
        (before + 30_000..=after + 30_000).contains(&deadline),
        "deadline {deadline} not 30 s after the call ({before}..{after})"
    );
    assert_eq!(
        first["function_arn"],
        "arn:aws:lambda:eu-central-1:123456789012:function:echo"
    );
    assert!(first["trace_id"].as_str().unwrap().starts_with("Root=1-"));

    let env = first["env"].as_object().unwrap();
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/echo");
    assert!(
        env["AWS_LAMBDA_LOG_STREAM_NAME"]
            .as_str()
            .unwrap()
            .contains("/[$LATEST]")
    );
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(env["AWS_REGION"], "eu-central-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-central-1");
    assert_eq!(env["dmm_base_url"], "http://x");
    let lambda_set = [
        "PATH",
        "LANG",
        "TZ",
        "_HANDLER",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "LLVM_PROFILE_FILE",
        "dmm_base_url",
        // Set by lambda_runtime itself from the trace header, as on Lambda.
        "_X_AMZN_TRACE_ID",
    ];
    for key in env.keys() {
        assert!(
            key.starts_with("AWS_LAMBDA_") || lambda_set.contains(&key.as_str()),
            "{key} leaked into the function's environment"
        );
    }

    let second = f.invoke(json!({"n": 2}), TIMEOUT).await.unwrap();
    assert_eq!(
        pid(&second),
        pid(&first),
        "a warm process serves the next call"
    );
    assert_eq!(second["invocation"], 2);
    assert_ne!(second["request_id"], first["request_id"]);

    let metrics = f.metrics();
    assert_eq!(metrics.cold_starts.len(), 1);
    assert!(
        metrics.cold_starts[0] < Duration::from_secs(5),
        "{metrics:?}"
    );
    assert_eq!(metrics.invocations, 2);
    assert!(metrics.peak_rss_kib.unwrap() > 100, "{metrics:?}");
}

#[tokio::test]
async fn a_handler_error_is_a_function_error_and_keeps_the_process() {
    let f = echo(&[]).await;
    let warm = f.invoke(json!({}), TIMEOUT).await.unwrap();
    match f.invoke(json!({"fail": "bucket missing"}), TIMEOUT).await {
        Err(InvokeError::Function {
            error_type,
            error_message,
        }) => {
            assert_eq!(error_type, "EchoFailure");
            assert_eq!(error_message, "bucket missing");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let again = f.invoke(json!({}), TIMEOUT).await.unwrap();
    assert_eq!(pid(&again), pid(&warm));
    assert_eq!(f.metrics().invocations, 3);
}

#[tokio::test]
async fn an_exit_mid_invocation_is_reported_and_the_next_call_cold_starts() {
    let f = echo(&[]).await;
    let first = f.invoke(json!({}), TIMEOUT).await.unwrap();
    match f.invoke(json!({"exit": 3}), TIMEOUT).await {
        Err(InvokeError::ProcessExited { status, tail }) => {
            assert_eq!(status.unwrap().code(), Some(3));
            assert_eq!(tail.last().map(String::as_str), Some("exiting with 3"));
        }
        other => panic!("expected a process exit, got {other:?}"),
    }
    let next = f.invoke(json!({}), TIMEOUT).await.unwrap();
    assert_ne!(pid(&next), pid(&first));
    assert_eq!(next["invocation"], 1, "a fresh process");
    assert_eq!(f.metrics().cold_starts.len(), 2);
}

#[tokio::test]
async fn a_slow_invocation_times_out_and_its_process_is_replaced() {
    let f = echo(&[]).await;
    let first = f.invoke(json!({}), TIMEOUT).await.unwrap();
    let started = Instant::now();
    let result = f
        .invoke(json!({"sleep_ms": 20_000}), Duration::from_millis(300))
        .await;
    let waited = started.elapsed();
    match result {
        Err(InvokeError::Timeout { phase, after }) => {
            assert_eq!(phase, TimeoutPhase::Invoke);
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
    let next = f.invoke(json!({}), TIMEOUT).await.unwrap();
    assert_ne!(pid(&next), pid(&first));
}

#[tokio::test]
async fn kill_forces_a_cold_start_and_kill_after_crashes_a_running_invocation() {
    let f = echo(&[]).await;
    let first = f.invoke(json!({}), TIMEOUT).await.unwrap();
    f.kill().await;
    let second = f.invoke(json!({}), TIMEOUT).await.unwrap();
    assert_ne!(pid(&second), pid(&first));
    assert_eq!(f.metrics().cold_starts.len(), 2);

    f.kill_after(Duration::from_millis(300));
    let started = Instant::now();
    match f
        .invoke(json!({"sleep_ms": 20_000}), Duration::from_secs(60))
        .await
    {
        Err(InvokeError::ProcessExited { status, .. }) => {
            assert_eq!(status.unwrap().signal(), Some(libc::SIGKILL));
        }
        other => panic!("expected a killed process, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let third = f.invoke(json!({}), TIMEOUT).await.unwrap();
    assert_ne!(pid(&third), pid(&second));
}

#[tokio::test]
async fn an_init_error_fails_the_invocation_every_time() {
    let f = echo(&[("ECHO_LAMBDA_INIT_ERROR", "dmm_base_url is not set")]).await;
    for attempt in 1..=2 {
        match f.invoke(json!({}), TIMEOUT).await {
            Err(InvokeError::Init {
                error_type,
                error_message,
            }) => {
                assert_eq!(error_type, "EchoInitError", "attempt {attempt}");
                assert_eq!(error_message, "dmm_base_url is not set");
            }
            other => panic!("attempt {attempt}: expected an init error, got {other:?}"),
        }
    }
    assert!(f.metrics().cold_starts.is_empty(), "never asked for work");
}

#[tokio::test]
async fn a_binary_that_dies_during_init_is_a_process_exit() {
    let f = LambdaFunction::start("/bin/false", "not-a-runtime", Vec::new())
        .await
        .unwrap();
    match f.invoke(json!({}), TIMEOUT).await {
        Err(InvokeError::ProcessExited { status, .. }) => {
            assert_eq!(status.unwrap().code(), Some(1));
        }
        other => panic!("expected a process exit, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_share_one_environment_one_at_a_time() {
    let f = std::sync::Arc::new(echo(&[]).await);
    let started = Instant::now();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let f = std::sync::Arc::clone(&f);
            tokio::spawn(async move { f.invoke(json!({"sleep_ms": 300}), TIMEOUT).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap().unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "ran in parallel"
    );
    assert_eq!(pid(&answers[0]), pid(&answers[1]));
    let mut served: Vec<u64> = answers
        .iter()
        .map(|a| a["invocation"].as_u64().unwrap())
        .collect();
    served.sort_unstable();
    assert_eq!(served, [1, 2]);
}

#[tokio::test]
async fn a_missing_binary_fails_at_start() {
    let missing = "/nonexistent/dmm/poll_feed";
    let err = match LambdaFunction::start(missing, "poll_feed", Vec::new()).await {
        Err(err) => err,
        Ok(_) => panic!("started a binary that does not exist"),
    };
    assert_eq!(err.binary, Path::new(missing));
    assert!(err.to_string().contains(missing), "{err}");
}

#[tokio::test]
async fn output_is_captured_per_stream_and_visible_when_invoke_returns() {
    let f = echo(&[]).await;
    f.invoke(json!({}), TIMEOUT).await.unwrap();
    let init = f
        .logs()
        .into_iter()
        .find(|line| {
            line.json()
                .is_some_and(|j| j["message"] == "echo_lambda initialised")
        })
        .expect("the init log line");
    assert_eq!((init.stream, init.environment), (Stream::Stdout, 1));

    let mark = f.log_mark();
    f.invoke(json!({"log": "marker-42"}), TIMEOUT)
        .await
        .unwrap();
    let lines = f.logs_since(mark);
    let texts: Vec<(Stream, &str)> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
    assert!(texts.contains(&(Stream::Stdout, "marker-42")), "{texts:?}");
    assert!(
        texts.contains(&(Stream::Stderr, "stderr: marker-42")),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|(_, t)| t.contains("initialised")),
        "logs_since must not repeat earlier lines"
    );

    f.kill().await;
    f.invoke(json!({"log": "after restart"}), TIMEOUT)
        .await
        .unwrap();
    let restarted = f
        .logs()
        .into_iter()
        .find(|line| line.text == "after restart")
        .unwrap();
    assert_eq!(restarted.environment, 2);
}

#[tokio::test]
async fn dropping_the_function_kills_its_process() {
    let f = echo(&[]).await;
    let answer = f.invoke(json!({}), TIMEOUT).await.unwrap();
    let proc_dir = format!("/proc/{}", pid(&answer));
    assert!(Path::new(&proc_dir).exists());
    drop(f);
    let gone = async {
        while Path::new(&proc_dir).exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("process still running after drop");
}
