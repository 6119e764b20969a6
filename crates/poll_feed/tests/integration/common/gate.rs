//! A small HTTP proxy in front of moto, set as the function's `AWS_ENDPOINT_URL`, for the faults
//! moto cannot produce on its own:
//!
//! - holding an S3 `PutObject` forever, so a test can kill the function at exactly the point
//!   "messages sent, checkpoint not yet written";
//! - failing chosen `SendMessageBatch` entries (what SQS reports in `Failed` on a partial
//!   failure), while forwarding the others to moto for real.
//!
//! It records every `SendMessageBatch` it saw (the deduplication ids of the entries), so a test
//! can check that only failed entries were re-sent. IAM is not enforced behind the gate: a
//! rewritten request no longer matches its signature.
//!
//! For volume tests it can also *be* the FIFO queue ([`Gate::stub_sqs`]): moto's SQS spends
//! time linear in the queue length on every message it accepts (it recomputes the queue's
//! attributes), so a queue of thousands of messages takes minutes there.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A synthetic `Failed` entry for a `SendMessageBatch`.
#[derive(Debug, Clone)]
pub struct EntryFault {
    pub code: &'static str,
    pub sender_fault: bool,
    /// How many more times the entry fails; `u32::MAX` for always.
    pub remaining: u32,
}

#[derive(Default)]
struct Rules {
    /// S3 PUTs let through before every further one is held.
    s3_puts_allowed: Option<usize>,
    s3_puts_seen: usize,
    /// By deduplication id (= event id).
    entry_faults: HashMap<String, EntryFault>,
    batches: Vec<Vec<String>>,
    bodies_by_dedup: Vec<(String, String)>,
    /// Requests per `x-amz-target` (JSON-protocol operations, e.g. `secretsmanager.GetSecretValue`).
    targets: HashMap<String, usize>,
    /// When set, SendMessageBatch is answered here after this latency instead of by moto.
    stub_latency: Option<std::time::Duration>,
    stub_queue: Vec<QueuedMessage>,
    stub_dedup: std::collections::HashSet<String>,
}

/// A message the stub queue accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub body: String,
    pub group_id: String,
    pub deduplication_id: String,
}

pub struct Gate {
    pub url: String,
    rules: Arc<Mutex<Rules>>,
    held: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    rules: Arc<Mutex<Rules>>,
    held: Arc<Notify>,
}

impl Gate {
    pub async fn start(upstream: &str) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let rules = Arc::new(Mutex::new(Rules::default()));
        let held = Arc::new(Notify::new());
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            rules: rules.clone(),
            held: held.clone(),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Gate {
            url: format!("http://{addr}"),
            rules,
            held,
            server,
        }
    }

    /// Lets `count` more S3 PUTs through, then holds every further one without answering.
    pub fn hold_s3_puts_after(&self, count: usize) {
        let mut rules = self.rules.lock().unwrap();
        rules.s3_puts_allowed = Some(rules.s3_puts_seen + count);
    }

    /// Resolves once a PUT is being held.
    pub async fn wait_held(&self) {
        self.held.notified().await;
    }

    pub fn fail_entry(&self, deduplication_id: &str, fault: EntryFault) {
        self.rules
            .lock()
            .unwrap()
            .entry_faults
            .insert(deduplication_id.to_owned(), fault);
    }

    /// Answers SendMessageBatch itself, like an SQS FIFO queue with a round trip of `latency`:
    /// every entry accepted, a deduplication id seen before accepted but not queued again.
    pub fn stub_sqs(&self, latency: std::time::Duration) {
        self.rules.lock().unwrap().stub_latency = Some(latency);
    }

    /// What the stub queue holds, in the order it accepted it.
    pub fn stub_queue(&self) -> Vec<QueuedMessage> {
        self.rules.lock().unwrap().stub_queue.clone()
    }

    pub fn clear_entry_faults(&self) {
        self.rules.lock().unwrap().entry_faults.clear();
    }

    /// How many requests for a JSON-protocol operation (`x-amz-target`) arrived.
    pub fn calls(&self, target: &str) -> usize {
        self.rules
            .lock()
            .unwrap()
            .targets
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    /// S3 PUTs received (checkpoint writes), held ones included.
    pub fn s3_puts(&self) -> usize {
        self.rules.lock().unwrap().s3_puts_seen
    }

    /// Deduplication ids of every `SendMessageBatch` received, in order.
    pub fn batches(&self) -> Vec<Vec<String>> {
        self.rules.lock().unwrap().batches.clone()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const HOP_BY_HOP: [&str; 4] = ["content-length", "transfer-encoding", "connection", "host"];

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();

    if !target.is_empty() {
        *shared
            .rules
            .lock()
            .unwrap()
            .targets
            .entry(target.clone())
            .or_default() += 1;
    }
    if parts.method == Method::PUT && target.is_empty() {
        let hold = {
            let mut rules = shared.rules.lock().unwrap();
            rules.s3_puts_seen += 1;
            rules
                .s3_puts_allowed
                .is_some_and(|allowed| rules.s3_puts_seen > allowed)
        };
        if hold {
            shared.held.notify_one();
            // Never answer: the caller is stuck exactly here until it is killed.
            std::future::pending::<()>().await;
        }
    }

    if target == "AmazonSQS.SendMessageBatch" {
        return send_message_batch(&shared, &parts.uri, &parts.headers, body).await;
    }
    forward(&shared, &parts.method, &parts.uri, &parts.headers, body).await
}

async fn forward(
    shared: &Shared,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .http
        .request(method.clone(), format!("{}{path}", shared.upstream));
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let upstream = request.body(body).send().await.expect("moto answers");
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.unwrap();
    response.body(Body::from(bytes)).unwrap()
}

async fn send_message_batch(
    shared: &Shared,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut request: Value = serde_json::from_slice(&body).expect("SQS JSON protocol");
    let entries = request["Entries"].as_array().unwrap().clone();
    let mut pass = Vec::new();
    let mut failed = Vec::new();
    {
        let mut rules = shared.rules.lock().unwrap();
        let ids: Vec<String> = entries
            .iter()
            .map(|e| e["MessageDeduplicationId"].as_str().unwrap().to_owned())
            .collect();
        rules.batches.push(ids);
        for entry in entries {
            let dedup = entry["MessageDeduplicationId"].as_str().unwrap().to_owned();
            let body = entry["MessageBody"].as_str().unwrap().to_owned();
            rules.bodies_by_dedup.push((dedup.clone(), body));
            match rules.entry_faults.get_mut(&dedup) {
                Some(fault) if fault.remaining > 0 => {
                    fault.remaining = fault.remaining.saturating_sub(1);
                    failed.push(json!({
                        "Id": entry["Id"],
                        "SenderFault": fault.sender_fault,
                        "Code": fault.code,
                        "Message": "injected by the test gate",
                    }));
                }
                _ => pass.push(entry),
            }
        }
    }
    let stub_latency = shared.rules.lock().unwrap().stub_latency;
    let mut answer = if pass.is_empty() {
        json!({"Successful": []})
    } else if let Some(latency) = stub_latency {
        tokio::time::sleep(latency).await;
        let mut rules = shared.rules.lock().unwrap();
        let mut successful = Vec::new();
        for entry in &pass {
            let dedup = entry["MessageDeduplicationId"].as_str().unwrap().to_owned();
            if rules.stub_dedup.insert(dedup.clone()) {
                rules.stub_queue.push(QueuedMessage {
                    body: entry["MessageBody"].as_str().unwrap().to_owned(),
                    group_id: entry["MessageGroupId"].as_str().unwrap().to_owned(),
                    deduplication_id: dedup,
                });
            }
            successful.push(json!({
                "Id": entry["Id"],
                "MessageId": format!("stub-{}", rules.stub_queue.len()),
                "MD5OfMessageBody": "00000000000000000000000000000000",
                "SequenceNumber": rules.stub_queue.len().to_string(),
            }));
        }
        json!({"Successful": successful})
    } else {
        request["Entries"] = Value::Array(pass);
        let forwarded = forward(
            shared,
            &Method::POST,
            uri,
            headers,
            Bytes::from(request.to_string()),
        )
        .await;
        let status = forwarded.status();
        let bytes = to_bytes(forwarded.into_body(), usize::MAX).await.unwrap();
        if status != StatusCode::OK {
            return Response::builder()
                .status(status)
                .body(Body::from(bytes))
                .unwrap();
        }
        serde_json::from_slice(&bytes).unwrap()
    };
    let all_failed = answer
        .as_object_mut()
        .unwrap()
        .entry("Failed")
        .or_insert_with(|| json!([]));
    all_failed.as_array_mut().unwrap().extend(failed);
    Response::builder()
        .status(StatusCode::OK)
        .header(
            HeaderName::from_static("content-type"),
            "application/x-amz-json-1.0",
        )
        .body(Body::from(answer.to_string()))
        .unwrap()
}
