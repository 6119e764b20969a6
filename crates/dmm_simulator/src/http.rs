//! The HTTP surface: DMM's API under `/api`, the test control API under `/_sim`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Error;
use crate::fault::{Fault, FaultKind};
use crate::state::{Family, Shared, UnknownEventId};

type AppState = Arc<Shared>;

const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";

/// The body `MalformedJson` faults send: starts like a document, then stops being JSON.
const MALFORMED_BODY: &str = "{\"id\": \"malformed\", <html>502 Bad Gateway</html>";

pub(crate) fn router(shared: AppState) -> Router {
    let api = Router::new()
        .route("/api/events", get(events))
        .route("/api/access", get(list_access))
        .route("/api/access/{id}", get(get_access).put(put_access))
        .route("/api/datausageagreements", get(list_data_usage_agreements))
        .route(
            "/api/datausageagreements/{id}",
            get(get_access).put(put_data_usage_agreement),
        )
        .route("/api/dataproducts/{id}", get(get_data_product))
        .route("/api/teams/{id}", get(get_team))
        .layer(middleware::from_fn_with_state(shared.clone(), api_gate));
    let control = Router::new()
        .route("/_sim/events", post(control_append_events))
        .route("/_sim/events/emit", post(control_emit))
        .route("/_sim/events/bulk", post(control_emit_bulk))
        .route("/_sim/agreements", post(control_upsert_agreement))
        .route(
            "/_sim/agreements/{id}",
            axum::routing::delete(control_delete_agreement),
        )
        .route("/_sim/agreements/{id}/activate", post(control_activate))
        .route("/_sim/agreements/{id}/deactivate", post(control_deactivate))
        .route("/_sim/dataproducts", post(control_upsert_data_product))
        .route("/_sim/teams", post(control_upsert_team))
        .route("/_sim/puts", get(control_puts))
        .route(
            "/_sim/requests",
            get(control_request_counts).delete(control_reset_request_counts),
        )
        .route(
            "/_sim/faults",
            post(control_inject_fault).delete(control_clear_faults),
        );
    api.merge(control)
        .fallback(|uri: Uri| async move {
            problem(
                StatusCode::NOT_FOUND,
                format!("no route for {}", uri.path()),
            )
        })
        .with_state(shared)
}

/// An RFC 9457 problem body, the error shape of DMM's API.
fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::DuplicateEventId(_) => StatusCode::CONFLICT,
            Error::InvalidDocument(_) | Error::InvalidFault(_) => StatusCode::BAD_REQUEST,
            Error::ReadScenario { .. }
            | Error::ParseScenario(_)
            | Error::InvalidScenario(_)
            | Error::Bind(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        problem(status, self.to_string())
    }
}

/// Counts every API request, fires armed faults, then checks the API key.
///
/// Faults come before the key check because in reality they come from in front of DMM (a load
/// balancer, a gateway) as often as from DMM itself.
async fn api_gate(State(shared): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(path.as_str(), MatchedPath::as_str);
    let fault = shared.observe_request(format!("{} {route}", request.method()), &path);
    if let Some(fault) = &fault {
        tracing::info!(%path, ?fault, "injecting fault");
    }
    match fault {
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).expect("validated when the fault was armed");
            return problem(status, "injected fault");
        }
        Some(FaultKind::TooManyRequests {
            retry_after_seconds,
        }) => {
            let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "injected fault");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            return response;
        }
        _ => {}
    }
    let response = match request.headers().get("x-api-key") {
        Some(key) if key.as_bytes() == shared.api_key().as_bytes() => next.run(request).await,
        Some(_) => problem(
            StatusCode::UNAUTHORIZED,
            "the x-api-key header is not valid",
        ),
        None => problem(StatusCode::UNAUTHORIZED, "the x-api-key header is missing"),
    };
    match fault {
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            response
        }
        Some(FaultKind::MalformedJson) => {
            replace_body(response, |_| Bytes::from_static(MALFORMED_BODY.as_bytes())).await
        }
        Some(FaultKind::TruncatedPage) => {
            replace_body(response, |body| body.slice(..body.len() / 2)).await
        }
        _ => response,
    }
}

/// Swaps the body; status and headers stay as the handler made them, except the length.
async fn replace_body(response: Response, change: impl FnOnce(Bytes) -> Bytes) -> Response {
    let (mut parts, body) = response.into_parts();
    let original = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the response to spoil: {error}"),
            );
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(change(original)))
}

/// Turns axum's plain-text body rejections (wrong content type, bad JSON) into problem bodies.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    body.map(|Json(value)| value)
        .map_err(|rejection| problem(rejection.status(), rejection.body_text()))
}

/// A non-negative integer query parameter, `None` when absent.
fn number_param(query: &HashMap<String, String>, name: &str) -> Result<Option<usize>, Response> {
    query
        .get(name)
        .map(|raw| {
            raw.parse().map_err(|_| {
                problem(
                    StatusCode::BAD_REQUEST,
                    format!("{name} must be a non-negative integer, not {raw:?}"),
                )
            })
        })
        .transpose()
}

// ----- DMM API -----

async fn events(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match shared.events_page(query.get("lastEventId").map(String::as_str)) {
        Ok(page) => ([(header::CONTENT_TYPE, CLOUDEVENTS_BATCH)], page).into_response(),
        Err(UnknownEventId(id)) => problem(
            StatusCode::BAD_REQUEST,
            format!("lastEventId {id} is not an event of this feed"),
        ),
    }
}

/// `GET /api/access?p=N`: the vendor documents only the page number for the current route.
async fn list_access(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match number_param(&query, "p") {
        Ok(page) => {
            Json(shared.agreements_page(page.unwrap_or(0), shared.list_page_size())).into_response()
        }
        Err(response) => response,
    }
}

/// `GET /api/datausageagreements?p=N&pageSize=M`: the deprecated route also takes a page size (2..=10000).
async fn list_data_usage_agreements(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (page, page_size) = match (number_param(&query, "p"), number_param(&query, "pageSize")) {
        (Ok(page), Ok(page_size)) => (page.unwrap_or(0), page_size),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let page_size = match page_size {
        None => shared.list_page_size(),
        Some(size) if (2..=10_000).contains(&size) => size,
        Some(size) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("pageSize must be between 2 and 10000, not {size}"),
            );
        }
    };
    Json(shared.agreements_page(page, page_size)).into_response()
}

fn found(kind: &'static str, id: String, document: Option<Value>) -> Response {
    match document {
        Some(document) => Json(document).into_response(),
        None => Error::NotFound { kind, id }.into_response(),
    }
}

async fn get_access(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let document = shared.agreement(&id);
    found("agreement", id, document)
}

async fn get_data_product(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let document = shared.data_product(&id);
    found("data product", id, document)
}

async fn get_team(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let document = shared.team(&id);
    found("team", id, document)
}

async fn put_access(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    put_agreement(&shared, &uri, &id, body, Family::Access)
}

async fn put_data_usage_agreement(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    put_agreement(&shared, &uri, &id, body, Family::DataUsageAgreement)
}

fn put_agreement(
    shared: &Shared,
    uri: &Uri,
    id: &str,
    body: Result<Json<Value>, JsonRejection>,
    family: Family,
) -> Response {
    let body = match json_body(body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    match shared.put_agreement(uri.path(), id, body, family) {
        Ok(event) => {
            tracing::info!(%id, event = %event.event_type, "agreement written by client");
            StatusCode::OK.into_response()
        }
        Err(error) => error.into_response(),
    }
}

// ----- control API -----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EmitRequest {
    #[serde(rename = "type")]
    event_type: String,
    resource_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkRequest {
    #[serde(rename = "type")]
    event_type: String,
    resource_ids: Vec<String>,
    count: usize,
}

/// One full CloudEvent, or an array of them appended all or nothing.
async fn control_append_events(
    State(shared): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let events = match json_body(body) {
        Ok(Value::Array(events)) => events,
        Ok(event) => vec![event],
        Err(response) => return response,
    };
    let count = events.len();
    match shared.append_events(events) {
        Ok(()) => Json(json!({ "appended": count })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn control_emit(
    State(shared): State<AppState>,
    body: Result<Json<EmitRequest>, JsonRejection>,
) -> Response {
    match json_body(body) {
        Ok(request) => Json(shared.emit(&request.event_type, &request.resource_id)).into_response(),
        Err(response) => response,
    }
}

/// Answers with a summary rather than the events: a 10,000-event backlog need not travel back.
async fn control_emit_bulk(
    State(shared): State<AppState>,
    body: Result<Json<BulkRequest>, JsonRejection>,
) -> Response {
    let request = match json_body(body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match shared.emit_bulk(&request.event_type, &request.resource_ids, request.count) {
        Ok(events) => Json(json!({
            "count": events.len(),
            "firstId": events.first().map(|event| &event.id),
            "lastId": events.last().map(|event| &event.id),
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}

fn upserted(result: Result<String, Error>) -> Response {
    match result {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn control_upsert_agreement(
    State(shared): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    match json_body(body) {
        Ok(document) => upserted(shared.upsert_agreement(document)),
        Err(response) => response,
    }
}

async fn control_upsert_data_product(
    State(shared): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    match json_body(body) {
        Ok(document) => upserted(shared.upsert_data_product(document)),
        Err(response) => response,
    }
}

async fn control_upsert_team(
    State(shared): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    match json_body(body) {
        Ok(document) => upserted(shared.upsert_team(document)),
        Err(response) => response,
    }
}

fn emitted(result: Result<crate::CloudEvent, Error>) -> Response {
    match result {
        Ok(event) => Json(event).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn control_delete_agreement(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    emitted(shared.delete_agreement(&id))
}

async fn control_activate(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    emitted(shared.set_active(&id, true))
}

async fn control_deactivate(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    emitted(shared.set_active(&id, false))
}

async fn control_puts(State(shared): State<AppState>) -> Response {
    Json(shared.puts()).into_response()
}

async fn control_request_counts(State(shared): State<AppState>) -> Response {
    Json(shared.request_counts()).into_response()
}

async fn control_reset_request_counts(State(shared): State<AppState>) -> StatusCode {
    shared.reset_request_counts();
    StatusCode::NO_CONTENT
}

async fn control_inject_fault(
    State(shared): State<AppState>,
    body: Result<Json<Fault>, JsonRejection>,
) -> Response {
    let fault = match json_body(body) {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    match shared.inject_fault(fault) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn control_clear_faults(State(shared): State<AppState>) -> StatusCode {
    shared.clear_faults();
    StatusCode::NO_CONTENT
}
