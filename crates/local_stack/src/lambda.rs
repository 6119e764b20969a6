use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::logs::{LogBook, LogLine, LogMark, LogSync};
use crate::moto::{DEFAULT_ACCOUNT_ID, DEFAULT_REGION};
use crate::process::{capture_output, isolate, kill_group};

mod runtime_api;

use runtime_api::{ErrorReport, Invocation, Outcome, RuntimeApi};

/// Lambda gives a function's init phase 10 s before it gives up on the environment.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack for the result's trip over loopback after the function finished just in time.
const RESULT_GRACE: Duration = Duration::from_millis(250);

/// Lines of a dead process's output quoted in [`InvokeError::ProcessExited`].
const TAIL_LINES: usize = 20;

/// The ways an invocation fails, told apart the way Lambda's own reporting does, because the
/// tests assert on which one happened (a handler error is not a crash is not a timeout).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error (posted to `/invocation/{id}/error`).
    #[error("function error {error_type}: {error_message}")]
    Function {
        error_type: String,
        error_message: String,
    },
    /// The runtime reported a failed initialisation (`/init/error`).
    #[error("init error {error_type}: {error_message}")]
    Init {
        error_type: String,
        error_message: String,
    },
    /// The process died before answering (crash, `exit`, or a kill from the test).
    #[error("process exited ({}) before answering; last output:\n{}", status_text(status), tail.join("\n"))]
    ProcessExited {
        /// `None` only if the exit could not be observed.
        status: Option<ExitStatus>,
        tail: Vec<String>,
    },
    /// No answer in time; like Lambda, the environment was destroyed.
    #[error("timed out after {after:?} during {phase:?}")]
    Timeout {
        phase: TimeoutPhase,
        after: Duration,
    },
    /// The runtime posted a response that is not JSON.
    #[error("response is not JSON ({source}): {body}")]
    MalformedResponse {
        body: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

fn status_text(status: &Option<ExitStatus>) -> String {
    status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
}

/// Which clock ran out: the process never asked for the invocation, or it did not finish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Init,
    Invoke,
}

/// The binary could not be started at all (missing, not executable, ...).
#[derive(Debug, thiserror::Error)]
#[error("cannot start {}: {source}", binary.display())]
pub struct SpawnError {
    pub binary: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What the benchmarks report about a function, accumulated over its lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Time from spawning each process to its first `/invocation/next` request, oldest first;
    /// one entry per cold start that got that far.
    pub cold_starts: Vec<Duration>,
    /// Invocations that got an answer (success or function error).
    pub invocations: u64,
    /// Highest resident set size (`VmHWM`) seen across all processes, in KiB. Sampled after
    /// every answered invocation, so it includes each invocation's peak.
    pub peak_rss_kib: Option<u64>,
}

/// A Lambda function backed by a real binary, driven through the Runtime API exactly as the
/// Lambda service drives it: the process is started with Lambda's environment, asks for work
/// over HTTP, stays warm between invocations, and is replaced by a fresh one (a cold start) after
/// it crashed, timed out or was killed.
///
/// Invocations are serialised, like a single execution environment; run several functions for
/// concurrency. Dropping it kills the process.
pub struct LambdaFunction {
    inner: Arc<Inner>,
}

struct Inner {
    binary: PathBuf,
    name: String,
    region: String,
    caller_env: Vec<(String, String)>,
    logs: LogBook,
    metrics: Arc<Mutex<Metrics>>,
    current: Mutex<Option<Arc<Environment>>>,
    serial: tokio::sync::Mutex<()>,
    environments: AtomicU64,
}

/// One process and the Runtime API endpoint it talks to. Each process gets its own endpoint, so
/// a request still open from a killed process can never take an invocation meant for the next.
struct Environment {
    number: u64,
    pid: Option<u32>,
    api: Arc<RuntimeApi>,
    kill: Arc<Notify>,
    ended: watch::Receiver<Option<Ended>>,
    log_syncs: Vec<LogSync>,
    server: JoinHandle<()>,
}

#[derive(Debug, Clone, Copy)]
struct Ended(Option<ExitStatus>);

impl Drop for Environment {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Environment {
    fn ended_now(&self) -> Option<Ended> {
        *self.ended.borrow()
    }

    async fn wait_ended(&self) -> Option<Ended> {
        let mut ended = self.ended.clone();
        let result = ended.wait_for(Option::is_some).await;
        result.ok().and_then(|value| *value)
    }

    /// Makes everything the process printed up to now visible in the log.
    async fn sync_logs(&self) {
        for log in &self.log_syncs {
            let _ = tokio::time::timeout(Duration::from_secs(1), log.sync()).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are single assignments; a panic elsewhere cannot leave them torn.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LambdaFunction {
    /// Starts the first execution environment right away, so a binary that cannot even start
    /// fails here. `env` is the function's configuration (Lambda environment variables) and wins
    /// over the Lambda defaults; nothing is inherited from the test process, so a test cannot pass
    /// because of the developer's shell (only `LLVM_PROFILE_FILE` is passed through, for coverage).
    pub async fn start(
        binary: impl Into<PathBuf>,
        name: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self, SpawnError> {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|key| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let inner = Arc::new(Inner {
            binary: binary.into(),
            name: name.to_owned(),
            region,
            caller_env: env,
            logs: LogBook::new(name),
            metrics: Arc::default(),
            current: Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
            environments: AtomicU64::new(0),
        });
        let environment = inner.spawn_environment().await?;
        *lock(&inner.current) = Some(environment);
        Ok(Self { inner })
    }

    /// Invokes the function synchronously (`RequestResponse`) and returns its JSON result.
    ///
    /// `timeout` is the function's configured timeout: the runtime sees it as the deadline
    /// header, and the environment is destroyed when it passes without an answer.
    pub async fn invoke(
        &self,
        payload: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, InvokeError> {
        let _one_at_a_time = self.inner.serial.lock().await;
        let environment = self.inner.environment_for_invoke().await?;
        let sequence = next_sequence();
        let (dispatched_tx, dispatched_rx) = oneshot::channel();
        let (outcome_tx, mut outcome_rx) = oneshot::channel();
        environment.api.enqueue(Invocation {
            request_id: request_id(sequence),
            payload: Bytes::from(payload.to_string()),
            timeout,
            function_arn: self.inner.function_arn(),
            trace_id: trace_id(sequence),
            dispatched: dispatched_tx,
            outcome: outcome_tx,
        });

        let dispatched_at = tokio::select! {
            biased;
            Ok(at) = dispatched_rx => at,
            ended = environment.wait_ended() => {
                return Err(self.inner.death_error(&environment, ended));
            }
            () = tokio::time::sleep(INIT_TIMEOUT) => {
                self.inner.destroy(&environment).await;
                return Err(InvokeError::Timeout { phase: TimeoutPhase::Init, after: INIT_TIMEOUT });
            }
        };
        let outcome = tokio::select! {
            biased;
            Ok(outcome) = &mut outcome_rx => outcome,
            ended = environment.wait_ended() => match outcome_rx.try_recv() {
                // Answered, then exited before we looked: the answer counts.
                Ok(outcome) => outcome,
                Err(_) => return Err(self.inner.death_error(&environment, ended)),
            },
            () = tokio::time::sleep_until((dispatched_at + timeout + RESULT_GRACE).into()) => {
                self.inner.destroy(&environment).await;
                return Err(InvokeError::Timeout { phase: TimeoutPhase::Invoke, after: timeout });
            }
        };
        self.inner.record_answer(&environment);
        // The handler's log lines were written before its answer; make them visible with it.
        environment.sync_logs().await;
        outcome_to_result(outcome)
    }

    /// Kills the process now (SIGKILL, no chance to clean up), like a crash or an out-of-memory
    /// kill; the next [`invoke`](Self::invoke) starts a fresh process. An invocation in progress
    /// fails with [`InvokeError::ProcessExited`].
    pub async fn kill(&self) {
        self.inner.kill_current().await;
    }

    /// Kills whatever process is running `delay` from now, to crash a function in the middle of
    /// an invocation that is started right after this call.
    pub fn kill_after(&self, delay: Duration) {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            inner.kill_current().await;
        });
    }

    /// Everything the function's processes printed so far (kept in memory; set
    /// `DMM_AWS_ECHO_LOGS=1` to also see it live on stderr).
    pub fn logs(&self) -> Vec<LogLine> {
        self.inner.logs.since(LogMark::default())
    }

    /// The current end of the log; pass it to [`logs_since`](Self::logs_since) later to see only
    /// what happened in between.
    pub fn log_mark(&self) -> LogMark {
        self.inner.logs.mark()
    }

    /// Lines printed after `mark` was taken.
    pub fn logs_since(&self, mark: LogMark) -> Vec<LogLine> {
        self.inner.logs.since(mark)
    }

    /// Cold-start times, invocation count and peak memory so far.
    pub fn metrics(&self) -> Metrics {
        let live = lock(&self.inner.current)
            .as_ref()
            .filter(|env| env.ended_now().is_none())
            .and_then(|env| env.pid)
            .and_then(peak_rss_kib);
        let mut metrics = lock(&self.inner.metrics).clone();
        metrics.peak_rss_kib = metrics.peak_rss_kib.max(live);
        metrics
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        if let Some(environment) = lock(&self.inner.current).take() {
            environment.kill.notify_one();
        }
    }
}

impl Inner {
    fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{DEFAULT_ACCOUNT_ID}:function:{}",
            self.region, self.name
        )
    }

    async fn environment_for_invoke(self: &Arc<Self>) -> Result<Arc<Environment>, InvokeError> {
        let existing = lock(&self.current).clone();
        if let Some(environment) = existing {
            match environment.ended_now() {
                None => return Ok(environment),
                Some(ended) => {
                    self.forget(&environment);
                    // It died before taking any work, i.e. during init: that is this
                    // invocation's cold start failing, as Lambda would report it. A process that
                    // died while idle after serving is simply replaced.
                    if !environment.api.dispatched_any() {
                        return Err(self.death_error(&environment, Some(ended)));
                    }
                }
            }
        }
        let environment = self.spawn_environment().await?;
        *lock(&self.current) = Some(Arc::clone(&environment));
        Ok(environment)
    }

    async fn spawn_environment(self: &Arc<Self>) -> Result<Arc<Environment>, SpawnError> {
        let spawn_error = |source| SpawnError {
            binary: self.binary.clone(),
            source,
        };
        let number = self.environments.fetch_add(1, Ordering::SeqCst) + 1;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(spawn_error)?;
        let address = listener.local_addr().map_err(spawn_error)?;
        let kill = Arc::new(Notify::new());
        let api = RuntimeApi::new(Arc::clone(&kill), Arc::clone(&self.metrics));
        let router = Arc::clone(&api).router();
        let server = tokio::spawn(async move {
            // Serving ends only when the environment is dropped and aborts this task.
            let _ = axum::serve(listener, router).await;
        });

        let mut cmd = Command::new(&self.binary);
        cmd.env_clear()
            .envs(self.process_env(address, number))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(task_root) = self.binary.parent() {
            cmd.current_dir(task_root);
        }
        isolate(&mut cmd);
        api.mark_spawned();
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let pid = child.id();
        let (log_syncs, readers) = capture_output(&mut child, &self.logs, number)
            .map_err(spawn_error)?
            .into_iter()
            .map(|capture| (capture.sync, capture.task))
            .unzip();
        let (ended_tx, ended) = watch::channel(None);
        tokio::spawn(watch_process(child, Arc::clone(&kill), readers, ended_tx));
        Ok(Arc::new(Environment {
            number,
            pid,
            api,
            kill,
            ended,
            log_syncs,
            server,
        }))
    }

    /// The variables Lambda sets for a `provided.al2023` function, then the function's own.
    fn process_env(&self, api: SocketAddr, number: u64) -> Vec<(String, String)> {
        let task_root = self
            .binary
            .parent()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default();
        let today = time::OffsetDateTime::now_utc().date();
        let log_stream = format!(
            "{:04}/{:02}/{:02}/[$LATEST]{number:032x}",
            today.year(),
            u8::from(today.month()),
            today.day()
        );
        let mut env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("LANG", "en_US.UTF-8"),
            ("TZ", ":UTC"),
            ("_HANDLER", "bootstrap"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend([
            ("LAMBDA_TASK_ROOT".to_owned(), task_root.clone()),
            ("LAMBDA_RUNTIME_DIR".to_owned(), task_root),
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), self.name.clone()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".to_owned(),
                format!("/aws/lambda/{}", self.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME".to_owned(), log_stream),
            ("AWS_REGION".to_owned(), self.region.clone()),
            ("AWS_DEFAULT_REGION".to_owned(), self.region.clone()),
        ]);
        if let Ok(profile) = std::env::var("LLVM_PROFILE_FILE") {
            env.push(("LLVM_PROFILE_FILE".to_owned(), profile));
        }
        env.extend(self.caller_env.iter().cloned());
        env
    }

    fn forget(&self, environment: &Arc<Environment>) {
        let mut current = lock(&self.current);
        if current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, environment))
        {
            *current = None;
        }
    }

    /// Tears an environment down and waits until its process is gone, so the next invocation
    /// certainly gets a fresh one.
    async fn destroy(&self, environment: &Arc<Environment>) {
        self.forget(environment);
        environment.kill.notify_one();
        environment.wait_ended().await;
    }

    async fn kill_current(&self) {
        let environment = lock(&self.current).take();
        if let Some(environment) = environment {
            environment.kill.notify_one();
            environment.wait_ended().await;
        }
    }

    fn death_error(&self, environment: &Arc<Environment>, ended: Option<Ended>) -> InvokeError {
        self.forget(environment);
        if let Some(report) = environment.api.take_init_error() {
            return InvokeError::Init {
                error_type: report.error_type,
                error_message: report.error_message,
            };
        }
        InvokeError::ProcessExited {
            status: ended.and_then(|e| e.0),
            tail: self.logs.tail(environment.number, TAIL_LINES),
        }
    }

    fn record_answer(&self, environment: &Environment) {
        let rss = environment.pid.and_then(peak_rss_kib);
        let mut metrics = lock(&self.metrics);
        metrics.invocations += 1;
        metrics.peak_rss_kib = metrics.peak_rss_kib.max(rss);
    }
}

/// Owns the child: reaps it when it exits, or kills its whole process group when asked, then
/// waits for its output to be fully captured before announcing the end.
async fn watch_process(
    mut child: Child,
    kill: Arc<Notify>,
    readers: Vec<JoinHandle<()>>,
    ended: watch::Sender<Option<Ended>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = kill.notified() => {
            // Not reaped yet, so the group id is still this process's.
            if let Some(pid) = child.id() {
                kill_group(pid);
            }
            child.wait().await
        }
    };
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
    }
    ended.send_replace(Some(Ended(status.ok())));
}

fn outcome_to_result(outcome: Outcome) -> Result<serde_json::Value, InvokeError> {
    match outcome {
        Outcome::Response(body) => {
            serde_json::from_slice(&body).map_err(|source| InvokeError::MalformedResponse {
                body: String::from_utf8_lossy(&body).into_owned(),
                source,
            })
        }
        Outcome::Error(ErrorReport {
            error_type,
            error_message,
        }) => Err(InvokeError::Function {
            error_type,
            error_message,
        }),
    }
}

/// Request ids must be unique across all functions of a test run, like Lambda's UUIDs.
fn next_sequence() -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    SEQUENCE.fetch_add(1, Ordering::SeqCst) + 1
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// UUID-shaped (version 4 layout), unique per process and sequence number.
fn request_id(sequence: u64) -> String {
    let seconds = unix_now().as_secs();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        seconds & 0xffff_ffff,
        std::process::id() & 0xffff,
        (sequence >> 48) & 0xfff,
        (sequence >> 36) & 0xfff,
        sequence & 0xffff_ffff_ffff
    )
}

/// X-Ray trace header in the format Lambda passes to the runtime.
fn trace_id(sequence: u64) -> String {
    format!(
        "Root=1-{:08x}-{:08x}{:016x};Parent={:016x};Sampled=0",
        unix_now().as_secs() & 0xffff_ffff,
        std::process::id(),
        sequence,
        sequence
    )
}

/// Peak resident set size of a live process, from the kernel's own high-water mark.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_json_response_is_reported_with_its_body() {
        let err =
            outcome_to_result(Outcome::Response(Bytes::from_static(b"plain text"))).unwrap_err();
        match err {
            InvokeError::MalformedResponse { body, .. } => assert_eq!(body, "plain text"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn request_ids_are_uuid_shaped_and_distinct() {
        let (a, b) = (request_id(1), request_id(2));
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert!(trace_id(1).starts_with("Root=1-"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_of_this_process_is_read_from_proc() {
        let kib = peak_rss_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib} KiB");
        assert_eq!(peak_rss_kib(u32::MAX), None);
    }
}
