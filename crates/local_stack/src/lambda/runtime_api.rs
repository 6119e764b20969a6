//! The HTTP side of one execution environment: the subset of the Lambda Runtime API
//! (`2018-06-01`) that a custom runtime such as `lambda_runtime` calls.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Notify, oneshot};

use super::Metrics;

/// Lambda's limit for a synchronous request or response payload.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// One queued call of the function, waiting for the runtime to ask for it.
pub(super) struct Invocation {
    pub(super) request_id: String,
    pub(super) payload: Bytes,
    pub(super) timeout: Duration,
    pub(super) function_arn: String,
    pub(super) trace_id: String,
    /// When the runtime took it: the function's timeout counts from here, not from the queueing,
    /// so a cold start's init does not eat into it (as on Lambda).
    pub(super) dispatched: oneshot::Sender<Instant>,
    pub(super) outcome: oneshot::Sender<Outcome>,
}

/// What the runtime reported for an invocation.
#[derive(Debug)]
pub(super) enum Outcome {
    Response(Bytes),
    Error(ErrorReport),
}

/// The runtime's error document (`lambda_runtime::Diagnostic` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorReport {
    #[serde(default)]
    pub(super) error_type: String,
    #[serde(default)]
    pub(super) error_message: String,
}

impl ErrorReport {
    /// Runtimes other than `lambda_runtime` may post any body; keep what they said.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_else(|_| Self {
            error_type: headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Unknown")
                .to_owned(),
            error_message: String::from_utf8_lossy(body).into_owned(),
        })
    }
}

pub(super) struct RuntimeApi {
    pending: Mutex<VecDeque<Invocation>>,
    queued: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<ErrorReport>>,
    spawned_at: OnceLock<Instant>,
    first_poll: OnceLock<Duration>,
    dispatched_any: AtomicBool,
    metrics: Arc<Mutex<Metrics>>,
    /// Lambda tears an environment down after an init error; this asks its owner to.
    kill: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single push, pop or insert; poison carries no meaning.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RuntimeApi {
    pub(super) fn new(kill: Arc<Notify>, metrics: Arc<Mutex<Metrics>>) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            spawned_at: OnceLock::new(),
            first_poll: OnceLock::new(),
            dispatched_any: AtomicBool::new(false),
            metrics,
            kill,
        })
    }

    /// Starts the cold-start clock; call right before spawning the process.
    pub(super) fn mark_spawned(&self) {
        let _ = self.spawned_at.set(Instant::now());
    }

    pub(super) fn enqueue(&self, invocation: Invocation) {
        lock(&self.pending).push_back(invocation);
        self.queued.notify_one();
    }

    pub(super) fn take_init_error(&self) -> Option<ErrorReport> {
        lock(&self.init_error).take()
    }

    /// Whether the process ever took an invocation, i.e. got through its init.
    pub(super) fn dispatched_any(&self) -> bool {
        self.dispatched_any.load(Ordering::SeqCst)
    }

    pub(super) fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
            .with_state(self)
    }

    fn record_first_poll(&self) {
        let Some(spawned_at) = self.spawned_at.get() else {
            return;
        };
        let took = spawned_at.elapsed();
        if self.first_poll.set(took).is_ok() {
            lock(&self.metrics).cold_starts.push(took);
        }
    }

    fn settle(&self, request_id: &str, outcome: Outcome) -> Response {
        let Some(waiter) = lock(&self.in_flight).remove(request_id) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "errorType": "InvalidRequestID",
                    "errorMessage": format!("no invocation {request_id} is in progress"),
                })),
            )
                .into_response();
        };
        // The invoker may have given up (timeout); the report then has nobody to go to.
        let _ = waiter.send(outcome);
        accepted()
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

/// Long-polls like Lambda: the runtime's request stays open until there is work.
async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    api.record_first_poll();
    let invocation = loop {
        let queued = api.queued.notified();
        if let Some(invocation) = lock(&api.pending).pop_front() {
            break invocation;
        }
        queued.await;
    };
    // From here to the return nothing awaits, so a dropped connection cannot lose the invocation
    // half-way: it is either still queued or in flight.
    let deadline = SystemTime::now() + invocation.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    lock(&api.in_flight).insert(invocation.request_id.clone(), invocation.outcome);
    api.dispatched_any.store(true, Ordering::SeqCst);
    let _ = invocation.dispatched.send(Instant::now());
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::HeaderName::from_static("lambda-runtime-aws-request-id"),
                invocation.request_id,
            ),
            (
                header::HeaderName::from_static("lambda-runtime-deadline-ms"),
                deadline_ms.to_string(),
            ),
            (
                header::HeaderName::from_static("lambda-runtime-invoked-function-arn"),
                invocation.function_arn,
            ),
            (
                header::HeaderName::from_static("lambda-runtime-trace-id"),
                invocation.trace_id,
            ),
        ],
        invocation.payload,
    )
        .into_response()
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    api.settle(&request_id, Outcome::Response(body))
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.settle(
        &request_id,
        Outcome::Error(ErrorReport::parse(&headers, &body)),
    )
}

async fn init_error(
    State(api): State<Arc<RuntimeApi>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *lock(&api.init_error) = Some(ErrorReport::parse(&headers, &body));
    api.kill.notify_one();
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Served {
        api: Arc<RuntimeApi>,
        base: String,
        kill: Arc<Notify>,
        http: reqwest::Client,
    }

    async fn serve() -> Served {
        let kill = Arc::new(Notify::new());
        let api = RuntimeApi::new(kill.clone(), Arc::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "http://{}/2018-06-01/runtime",
            listener.local_addr().unwrap()
        );
        tokio::spawn(axum::serve(listener, api.clone().router()).into_future());
        Served {
            api,
            base,
            kill,
            http: reqwest::Client::new(),
        }
    }

    fn invocation(
        request_id: &str,
    ) -> (
        Invocation,
        oneshot::Receiver<Instant>,
        oneshot::Receiver<Outcome>,
    ) {
        let (dispatched, dispatched_rx) = oneshot::channel();
        let (outcome, outcome_rx) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.to_owned(),
            payload: Bytes::from_static(br#"{"k":1}"#),
            timeout: Duration::from_secs(30),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".to_owned(),
            trace_id: "Root=1-abc".to_owned(),
            dispatched,
            outcome,
        };
        (invocation, dispatched_rx, outcome_rx)
    }

    #[tokio::test]
    async fn next_waits_for_work_and_hands_it_out_with_lambda_headers() {
        let s = serve().await;
        let poll = tokio::spawn({
            let (http, url) = (s.http.clone(), format!("{}/invocation/next", s.base));
            async move { http.get(url).send().await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !poll.is_finished(),
            "next must block while nothing is queued"
        );
        assert!(!s.api.dispatched_any());

        let (inv, dispatched, _outcome) = invocation("req-1");
        s.api.enqueue(inv);
        let reply = poll.await.unwrap();
        assert_eq!(reply.status(), 200);
        let h = reply.headers();
        assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
        assert_eq!(
            h["lambda-runtime-invoked-function-arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        assert_eq!(h["lambda-runtime-trace-id"], "Root=1-abc");
        let deadline: u128 = h["lambda-runtime-deadline-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(
            deadline > now + 29_000 && deadline <= now + 30_000,
            "{deadline} vs {now}"
        );
        assert_eq!(reply.bytes().await.unwrap(), r#"{"k":1}"#);
        assert!(dispatched.await.is_ok());
        assert!(s.api.dispatched_any());
    }

    #[tokio::test]
    async fn response_and_error_reach_the_invoker_once() {
        let s = serve().await;
        for id in ["ok", "bad", "raw"] {
            let (inv, _dispatched, outcome) = invocation(id);
            s.api.enqueue(inv);
            let next = s
                .http
                .get(format!("{}/invocation/next", s.base))
                .send()
                .await
                .unwrap();
            assert_eq!(next.headers()["lambda-runtime-aws-request-id"], id);
            let (path, body) = match id {
                "ok" => ("response", r#"{"done":true}"#),
                "bad" => ("error", r#"{"errorType":"E","errorMessage":"m"}"#),
                _ => ("error", "not json"),
            };
            let url = format!("{}/invocation/{id}/{path}", s.base);
            let post = || {
                s.http
                    .post(&url)
                    .header("lambda-runtime-function-error-type", "unhandled")
                    .body(body)
                    .send()
            };
            assert_eq!(post().await.unwrap().status(), 202);
            match (id, outcome.await.unwrap()) {
                ("ok", Outcome::Response(bytes)) => assert_eq!(bytes, body),
                ("bad", Outcome::Error(report)) => {
                    assert_eq!(
                        (report.error_type.as_str(), report.error_message.as_str()),
                        ("E", "m")
                    );
                }
                ("raw", Outcome::Error(report)) => {
                    assert_eq!(
                        (report.error_type.as_str(), report.error_message.as_str()),
                        ("unhandled", "not json")
                    );
                }
                (id, other) => panic!("{id}: unexpected {other:?}"),
            }
            assert_eq!(
                post().await.unwrap().status(),
                400,
                "a second report for {id} must be rejected"
            );
        }
    }

    #[tokio::test]
    async fn init_error_is_kept_and_asks_for_teardown() {
        let s = serve().await;
        let teardown = s.kill.notified();
        let reply = s
            .http
            .post(format!("{}/init/error", s.base))
            .body(r#"{"errorType":"Runtime.InitError","errorMessage":"no config"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
        tokio::time::timeout(Duration::from_secs(1), teardown)
            .await
            .unwrap();
        let report = s.api.take_init_error().unwrap();
        assert_eq!(report.error_type, "Runtime.InitError");
        assert_eq!(report.error_message, "no config");
        assert!(s.api.take_init_error().is_none());
    }

    #[tokio::test]
    async fn the_first_poll_after_spawn_is_recorded_as_the_cold_start() {
        let s = serve().await;
        s.api.mark_spawned();
        for _ in 0..2 {
            let (inv, _, _) = invocation("x");
            s.api.enqueue(inv);
            s.http
                .get(format!("{}/invocation/next", s.base))
                .send()
                .await
                .unwrap();
        }
        assert_eq!(lock(&s.api.metrics).cold_starts.len(), 1);
    }
}
