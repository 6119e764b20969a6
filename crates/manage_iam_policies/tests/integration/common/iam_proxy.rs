//! A fault-injecting HTTP proxy in front of moto's IAM endpoint (the function reaches IAM through
//! it via `AWS_ENDPOINT_URL_IAM`): it forwards every request unchanged, except that IAM calls
//! naming an armed role are answered with IAM's `Throttling` error, as real IAM does under load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::task::JoinHandle;

const THROTTLING: &str = concat!(
    r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">"#,
    "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>",
    "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
);

struct Shared {
    upstream: String,
    http: reqwest::Client,
    /// (action or `None` for every action, role name) of the IAM calls that are throttled.
    throttled_calls: Mutex<Vec<(Option<String>, String)>>,
    throttled: AtomicUsize,
}

pub struct IamProxy {
    url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for IamProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl IamProxy {
    pub async fn start(upstream: &str) -> IamProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            throttled_calls: Mutex::default(),
            throttled: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the IAM proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        IamProxy {
            url,
            shared,
            server,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on, every IAM call with `RoleName=<role>` is throttled.
    pub fn throttle(&self, role: &str) {
        self.shared
            .throttled_calls
            .lock()
            .unwrap()
            .push((None, role.to_owned()));
    }

    /// From now on, IAM `action` (e.g. `DeleteRolePolicy`) on `role` is throttled.
    pub fn throttle_action(&self, action: &str, role: &str) {
        self.shared
            .throttled_calls
            .lock()
            .unwrap()
            .push((Some(action.to_owned()), role.to_owned()));
    }

    pub fn clear(&self) {
        self.shared.throttled_calls.lock().unwrap().clear();
    }

    /// Requests answered with `Throttling` so far.
    pub fn throttled(&self) -> usize {
        self.shared.throttled.load(Ordering::SeqCst)
    }
}

/// The form field `key` of an `application/x-www-form-urlencoded` body.
fn form_field<'a>(body: &'a [u8], key: &str) -> Option<&'a str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let throttle = match form_field(&body, "RoleName") {
        Some(role) => {
            let action = form_field(&body, "Action");
            shared
                .throttled_calls
                .lock()
                .unwrap()
                .iter()
                .any(|(a, r)| r == role && (a.is_none() || a.as_deref() == action))
        }
        None => false,
    };
    if throttle {
        shared.throttled.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "text/xml")
            .body(Body::from(THROTTLING))
            .unwrap();
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    // The Host header too: it is part of the SigV4 signature, which moto checks when it
    // enforces IAM.
    for (name, value) in &parts.headers {
        if name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).unwrap()
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(e.to_string()))
            .unwrap(),
    }
}
