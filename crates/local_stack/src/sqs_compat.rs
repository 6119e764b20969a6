//! A proxy in front of moto that fills two gaps of moto's SQS which the Terraform AWS provider
//! trips over (and nothing else does), so `terraform apply` of the real configuration runs
//! against moto:
//!
//! - moto keeps the `RedriveAllowPolicy` attribute a client sets but never returns it, and
//!   refuses it as an attribute name in `GetQueueAttributes`. The provider's
//!   `aws_sqs_queue_redrive_allow_policy` then waits forever for the value it wrote. The proxy
//!   remembers the value per queue and answers it.
//! - moto returns `RedrivePolicy` as JSON with spaces, which the provider takes for a change
//!   on every plan. The proxy returns it compact, as SQS does.
//!
//! Everything else (every other service, every other SQS call) passes through unchanged. Only
//! SQS's JSON protocol (`X-Amz-Target: AmazonSQS.*`, what current SDKs speak) is rewritten.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const REDRIVE_ALLOW_POLICY: &str = "RedriveAllowPolicy";
const REDRIVE_POLICY: &str = "RedrivePolicy";

/// The running proxy; it stops when dropped.
pub struct SqsCompatProxy {
    url: String,
    task: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    /// Queue (URL path, e.g. `/123456789012/events.fifo`) → the `RedriveAllowPolicy` last set.
    redrive_allow: Mutex<HashMap<String, String>>,
}

impl SqsCompatProxy {
    /// Listens on loopback and forwards to `upstream` (moto's endpoint, `http://host:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(std::io::Error::other)?,
            redrive_allow: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let task = tokio::spawn(async move {
            // Serving ends only when the task is aborted.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{address}"),
            task,
        })
    }

    /// The endpoint to give clients instead of moto's.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for SqsCompatProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The SQS operation of a JSON-protocol request, if it is one.
fn sqs_operation(headers: &HeaderMap) -> Option<String> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    target.strip_prefix("AmazonSQS.").map(str::to_owned)
}

/// The path of a queue URL (`http://host/123456789012/name` → `/123456789012/name`), so the
/// same queue is recognised whichever host name the client used.
fn queue_key(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    without_scheme
        .find('/')
        .map_or_else(|| "/".to_owned(), |i| without_scheme[i..].to_owned())
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response<Body> {
    match forward_inner(&shared, request).await {
        Ok(response) => response,
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(format!("sqs compat proxy: {e}")))
            .unwrap_or_default(),
    }
}

async fn forward_inner(shared: &Shared, request: Request) -> Result<Response<Body>, String> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let operation = sqs_operation(&parts.headers);
    let mut request_json: Option<Value> = operation
        .as_ref()
        .and_then(|_| serde_json::from_slice(&body).ok());
    let mut asked_for_redrive_allow = false;
    if let (Some(op), Some(json)) = (operation.as_deref(), request_json.as_mut()) {
        match op {
            "CreateQueue" | "SetQueueAttributes" => remember(shared, json),
            "GetQueueAttributes" => asked_for_redrive_allow = strip_redrive_allow_name(json),
            _ => {}
        }
    }
    let body = match &request_json {
        Some(json) => Bytes::from(json.to_string()),
        None => body,
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_header(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    if operation.as_deref() == Some("GetQueueAttributes") && status.is_success() {
        let queue = request_json
            .as_ref()
            .and_then(|j| j.get("QueueUrl"))
            .and_then(Value::as_str)
            .map(queue_key);
        if let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) {
            complete_attributes(shared, &mut json, queue.as_deref(), asked_for_redrive_allow);
            bytes = Bytes::from(json.to_string());
        }
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !is_hop_header(name) && name != "content-length" {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(bytes)).map_err(|e| e.to_string())
}

fn is_hop_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
    )
}

/// Keeps a `RedriveAllowPolicy` set by `CreateQueue` (`QueueName`, answered later by URL) or
/// `SetQueueAttributes` (`QueueUrl`), or forgets it when it is set empty; the request goes on to
/// moto, which stores the value.
fn remember(shared: &Shared, request: &Value) {
    let Some(policy) = request
        .get("Attributes")
        .and_then(|a| a.get(REDRIVE_ALLOW_POLICY))
        .and_then(Value::as_str)
    else {
        return;
    };
    let key = match (request.get("QueueUrl"), request.get("QueueName")) {
        (Some(Value::String(url)), _) => queue_key(url),
        (_, Some(Value::String(name))) => format!("/*/{name}"),
        _ => return,
    };
    let mut known = shared
        .redrive_allow
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // An empty value is how a client removes the policy.
    if policy.is_empty() {
        known.remove(&key);
    } else {
        known.insert(key, policy.to_owned());
    }
}

/// Removes `RedriveAllowPolicy` from the names asked for (moto refuses it); whether it was asked
/// for, by name or as `All`.
fn strip_redrive_allow_name(request: &mut Value) -> bool {
    let Some(Value::Array(names)) = request.get_mut("AttributeNames") else {
        return false;
    };
    let asked = names
        .iter()
        .any(|n| n == REDRIVE_ALLOW_POLICY || n == "All");
    names.retain(|n| n != REDRIVE_ALLOW_POLICY);
    if names.is_empty() {
        // Only that attribute was asked for: ask for one moto knows (an extra attribute in the
        // answer is harmless).
        names.push(Value::String("QueueArn".to_owned()));
    }
    asked
}

fn complete_attributes(shared: &Shared, answer: &mut Value, queue: Option<&str>, asked: bool) {
    let Some(attributes) = answer.get_mut("Attributes").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(compact) = attributes
        .get(REDRIVE_POLICY)
        .and_then(Value::as_str)
        .and_then(|raw| serde_json::from_str::<Value>(raw).ok())
        .map(|policy| policy.to_string())
    {
        attributes.insert(REDRIVE_POLICY.to_owned(), Value::String(compact));
    }
    if !asked {
        return;
    }
    let Some(queue) = queue else { return };
    let known = shared
        .redrive_allow
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(key, _)| {
            *key == queue
                || key
                    .strip_prefix("/*/")
                    .is_some_and(|name| queue.rsplit('/').next() == Some(name))
        })
        .map(|(_, policy)| policy.clone());
    if let Some(policy) = known {
        attributes.insert(REDRIVE_ALLOW_POLICY.to_owned(), Value::String(policy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_keyed_by_their_path() {
        assert_eq!(
            queue_key("http://127.0.0.1:5000/123456789012/events.fifo"),
            "/123456789012/events.fifo"
        );
        assert_eq!(
            queue_key("https://sqs.eu-central-1.amazonaws.com/1/q"),
            "/1/q"
        );
    }

    #[test]
    fn the_redrive_allow_name_is_taken_out_of_the_request() {
        let mut only =
            serde_json::json!({"QueueUrl": "u", "AttributeNames": ["RedriveAllowPolicy"]});
        assert!(strip_redrive_allow_name(&mut only));
        assert_eq!(only["AttributeNames"], serde_json::json!(["QueueArn"]));
        let mut all = serde_json::json!({"QueueUrl": "u", "AttributeNames": ["All"]});
        assert!(strip_redrive_allow_name(&mut all));
        assert_eq!(all["AttributeNames"], serde_json::json!(["All"]));
        let mut other = serde_json::json!({"QueueUrl": "u", "AttributeNames": ["QueueArn"]});
        assert!(!strip_redrive_allow_name(&mut other));
    }

    #[test]
    fn answers_carry_the_remembered_policy_and_a_compact_redrive_policy() {
        let shared = Shared {
            upstream: String::new(),
            client: reqwest::Client::new(),
            redrive_allow: Mutex::new(HashMap::new()),
        };
        remember(
            &shared,
            &serde_json::json!({"QueueUrl": "http://a/1/dlq", "Attributes": {"RedriveAllowPolicy": "{\"redrivePermission\":\"byQueue\"}"}}),
        );
        let mut answer = serde_json::json!({"Attributes": {
            "RedrivePolicy": "{\"deadLetterTargetArn\": \"arn:dlq\", \"maxReceiveCount\": 5}"}});
        complete_attributes(&shared, &mut answer, Some("/1/dlq"), true);
        assert_eq!(
            answer["Attributes"]["RedriveAllowPolicy"],
            "{\"redrivePermission\":\"byQueue\"}"
        );
        assert_eq!(
            answer["Attributes"]["RedrivePolicy"],
            "{\"deadLetterTargetArn\":\"arn:dlq\",\"maxReceiveCount\":5}"
        );
    }
}
