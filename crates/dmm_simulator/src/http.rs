//! The HTTP surface: DMM's API under `/api`, the test control API under `/_sim`.

use std::collections::{BTreeMap, HashMap};
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

use crate::fault::{Fault, FaultKind};
use crate::scenario::{DEFAULT_PAGE_SIZE, MAX_LIST_PAGE_SIZE};
use crate::state::{AccessFilter, Family, Shared, UnknownEventId};
use crate::{CloudEvent, Error, RecordedPut};

type AppState = Arc<Shared>;

const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";

/// The body `MalformedJson` faults send: starts like a document, then stops being JSON.
const MALFORMED_BODY: &str = "{\"id\": \"malformed\", <html>502 Bad Gateway</html>";

pub(crate) fn router(shared: AppState) -> Router {
    let api = Router::new()
        .route("/api/events", get(events))
        .route("/api/access", get(list_access))
        .route("/api/access/{id}", get(get_access).put(put_access))
        .route(
            "/api/access/{id}/provisioning",
            get(get_provisioning).put(put_provisioning),
        )
        .route("/api/connectors", get(list_connectors))
        .route(
            "/api/connectors/{id}",
            get(get_connector).put(put_connector),
        )
        .route("/api/datacontracts/{id}", get(get_data_contract))
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
        .route("/_sim/events/{id}/repeat", post(control_repeat_event))
        .route("/_sim/dataproducts", post(control_upsert_data_product))
        .route(
            "/_sim/dataproducts/{id}",
            axum::routing::delete(control_delete_data_product),
        )
        .route("/_sim/datacontracts", post(control_upsert_data_contract))
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
            Problem::new(
                StatusCode::NOT_FOUND,
                format!("no route for {}", uri.path()),
            )
        })
        .with_state(shared)
}

/// An RFC 9457 problem body: every error is JSON a client can log, with the reason in `detail`.
struct Problem {
    status: StatusCode,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            status,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::DuplicateEventId(_) => StatusCode::CONFLICT,
            Error::InvalidDocument(_) | Error::InvalidFault(_) => StatusCode::BAD_REQUEST,
            Error::ReadScenario { .. }
            | Error::ParseScenario(_)
            | Error::InvalidScenario(_)
            | Error::Bind(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem::new(status, error.to_string())
    }
}

/// axum's own rejections (wrong content type, bad JSON) are plain text; DMM answers with problems.
impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        Problem::new(rejection.status(), rejection.body_text())
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
            return Problem::new(status, "injected fault").into_response();
        }
        Some(FaultKind::TooManyRequests {
            retry_after_seconds,
        }) => {
            let mut response =
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "injected fault").into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            return response;
        }
        _ => {}
    }
    let refusal = match request.headers().get("x-api-key") {
        Some(key) if key.as_bytes() == shared.api_key().as_bytes() => None,
        Some(_) => Some("the x-api-key header is not valid"),
        None => Some("the x-api-key header is missing"),
    };
    let response = match refusal {
        None => next.run(request).await,
        Some(detail) => Problem::new(StatusCode::UNAUTHORIZED, detail).into_response(),
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
        Some(FaultKind::RawBody { body }) => replace_body(response, |_| Bytes::from(body)).await,
        _ => response,
    }
}

/// Swaps the body; status and headers stay as the handler made them, except the length.
async fn replace_body(response: Response, change: impl FnOnce(Bytes) -> Bytes) -> Response {
    let (mut parts, body) = response.into_parts();
    let original = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the response to spoil: {error}"),
            )
            .into_response();
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(change(original)))
}

/// A non-negative integer query parameter, `None` when absent.
fn number_param(query: &HashMap<String, String>, name: &str) -> Result<Option<usize>, Problem> {
    query
        .get(name)
        .map(|raw| {
            raw.parse().map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name} must be a non-negative integer, not {raw:?}"),
                )
            })
        })
        .transpose()
}

type JsonBody<T> = Result<Json<T>, JsonRejection>;

// ----- DMM API -----

async fn events(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let last_event_id = query.get("lastEventId").map(String::as_str);
    let page = shared
        .events_page(last_event_id)
        .map_err(|UnknownEventId(id)| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                format!("lastEventId {id} is not an event of this feed"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, CLOUDEVENTS_BATCH)], page).into_response())
}

/// `pageSize` of the list endpoints: 2..=10000, 1000 when absent, and never more than the
/// scenario's `listPageSize`.
fn page_size_param(shared: &Shared, query: &HashMap<String, String>) -> Result<usize, Problem> {
    let cap = shared.list_page_size();
    match number_param(query, "pageSize")? {
        None => Ok(DEFAULT_PAGE_SIZE.min(cap)),
        Some(size) if (2..=MAX_LIST_PAGE_SIZE).contains(&size) => Ok(size.min(cap)),
        Some(size) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("pageSize must be between 2 and 10000, not {size}"),
        )),
    }
}

/// `GET /api/access?p=N&pageSize=M&providerDataProductId=…&consumerDataProductId=…&consumerType=…`,
/// with `Link: <…>; rel="next"` while more pages follow. A legacy server ignores everything
/// but `p`.
async fn list_access(
    State(shared): State<AppState>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let page = number_param(&query, "p")?.unwrap_or(0);
    if shared.legacy_api() {
        let (items, _) = shared.agreements_page(
            page,
            DEFAULT_PAGE_SIZE.min(shared.list_page_size()),
            &AccessFilter::default(),
        );
        return Ok(Json(items).into_response());
    }
    let page_size = page_size_param(&shared, &query)?;
    let consumer_type = query.get("consumerType").cloned();
    if let Some(kind) = &consumer_type {
        if !["team", "user", "dataproduct"].contains(&kind.as_str()) {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("consumerType must be team, user or dataproduct, not {kind:?}"),
            ));
        }
    }
    let filter = AccessFilter {
        provider_data_product_id: query.get("providerDataProductId").cloned(),
        consumer_data_product_id: query.get("consumerDataProductId").cloned(),
        consumer_type,
    };
    let (items, more) = shared.agreements_page(page, page_size, &filter);
    let mut response = Json(items).into_response();
    if more {
        let mut next = form_urlencoded::Serializer::new(String::new());
        next.append_pair("p", &(page + 1).to_string());
        for (key, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
            if key != "p" {
                next.append_pair(&key, &value);
            }
        }
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), next.finish());
        let value = HeaderValue::from_str(&link).map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Link header: {e}"),
            )
        })?;
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// `GET /api/datausageagreements?p=N&pageSize=M`: the deprecated route also takes a page size
/// (2..=10000).
async fn list_data_usage_agreements(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Value>>, Problem> {
    let page = number_param(&query, "p")?.unwrap_or(0);
    let page_size = page_size_param(&shared, &query)?;
    Ok(Json(
        shared
            .agreements_page(page, page_size, &AccessFilter::default())
            .0,
    ))
}

fn found(kind: &'static str, id: String, document: Option<Value>) -> Result<Json<Value>, Problem> {
    document
        .map(Json)
        .ok_or_else(|| Error::NotFound { kind, id }.into())
}

async fn get_access(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let document = shared.agreement(&id);
    found("agreement", id, document)
}

async fn get_data_product(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let document = shared.data_product(&id);
    found("data product", id, document)
}

async fn get_team(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let document = shared.team(&id);
    found("team", id, document)
}

/// The provisioning and connector APIs are missing from an older DMM: its router answers 404.
fn require_current_api(shared: &Shared, uri: &Uri) -> Result<(), Problem> {
    if shared.legacy_api() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("no route for {}", uri.path()),
        ));
    }
    Ok(())
}

async fn get_provisioning(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    require_current_api(&shared, &uri)?;
    let record = shared.provisioning(&id);
    found("provisioning record", id, record)
}

async fn put_provisioning(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    body: JsonBody<Value>,
) -> Result<Json<Value>, Problem> {
    require_current_api(&shared, &uri)?;
    let Json(report) = body?;
    Ok(Json(shared.put_provisioning(&id, report)?))
}

async fn list_connectors(
    State(shared): State<AppState>,
    uri: Uri,
) -> Result<Json<Vec<Value>>, Problem> {
    require_current_api(&shared, &uri)?;
    Ok(Json(shared.connectors()))
}

async fn get_connector(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    require_current_api(&shared, &uri)?;
    let document = shared.connector(&id);
    found("connector", id, document)
}

/// Invalid connector documents get the spec's 422.
async fn put_connector(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    body: JsonBody<Value>,
) -> Result<StatusCode, Problem> {
    require_current_api(&shared, &uri)?;
    let Json(document) = body?;
    shared
        .put_connector(&id, document)
        .map_err(|error| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    Ok(StatusCode::OK)
}

async fn get_data_contract(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let document = shared.data_contract(&id);
    found("data contract", id, document)
}

async fn put_access(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    body: JsonBody<Value>,
) -> Result<StatusCode, Problem> {
    put_agreement(&shared, &uri, &id, body, Family::Access)
}

async fn put_data_usage_agreement(
    State(shared): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    body: JsonBody<Value>,
) -> Result<StatusCode, Problem> {
    put_agreement(&shared, &uri, &id, body, Family::DataUsageAgreement)
}

/// DMM answers a successful PUT with an empty 200.
fn put_agreement(
    shared: &Shared,
    uri: &Uri,
    id: &str,
    body: JsonBody<Value>,
    family: Family,
) -> Result<StatusCode, Problem> {
    let Json(body) = body?;
    let event = shared.put_agreement(uri.path(), id, body, family)?;
    tracing::info!(%id, event = %event.event_type, "agreement written by client");
    Ok(StatusCode::OK)
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
    body: JsonBody<Value>,
) -> Result<Json<Value>, Problem> {
    let events = match body? {
        Json(Value::Array(events)) => events,
        Json(event) => vec![event],
    };
    let count = events.len();
    shared.append_events(events)?;
    Ok(Json(json!({ "appended": count })))
}

async fn control_emit(
    State(shared): State<AppState>,
    body: JsonBody<EmitRequest>,
) -> Result<Json<CloudEvent>, Problem> {
    let Json(request) = body?;
    Ok(Json(shared.emit(&request.event_type, &request.resource_id)))
}

/// Answers with a summary rather than the events: a 10,000-event backlog need not travel back.
async fn control_emit_bulk(
    State(shared): State<AppState>,
    body: JsonBody<BulkRequest>,
) -> Result<Json<Value>, Problem> {
    let Json(request) = body?;
    let events = shared.emit_bulk(&request.event_type, &request.resource_ids, request.count)?;
    Ok(Json(json!({
        "count": events.len(),
        "firstId": events.first().map(|event| &event.id),
        "lastId": events.last().map(|event| &event.id),
    })))
}

async fn control_upsert_agreement(
    State(shared): State<AppState>,
    body: JsonBody<Value>,
) -> Result<Json<Value>, Problem> {
    let Json(document) = body?;
    Ok(Json(json!({ "id": shared.upsert_agreement(document)? })))
}

async fn control_upsert_data_product(
    State(shared): State<AppState>,
    body: JsonBody<Value>,
) -> Result<Json<Value>, Problem> {
    let Json(document) = body?;
    Ok(Json(json!({ "id": shared.upsert_data_product(document)? })))
}

async fn control_repeat_event(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(shared.repeat_event(&id)?))
}

async fn control_delete_data_product(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CloudEvent>, Problem> {
    Ok(Json(shared.delete_data_product(&id)?))
}

async fn control_upsert_data_contract(
    State(shared): State<AppState>,
    body: JsonBody<Value>,
) -> Result<Json<Value>, Problem> {
    let Json(document) = body?;
    Ok(Json(
        json!({ "id": shared.upsert_data_contract(document)? }),
    ))
}

async fn control_upsert_team(
    State(shared): State<AppState>,
    body: JsonBody<Value>,
) -> Result<Json<Value>, Problem> {
    let Json(document) = body?;
    Ok(Json(json!({ "id": shared.upsert_team(document)? })))
}

async fn control_delete_agreement(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CloudEvent>, Problem> {
    Ok(Json(shared.delete_agreement(&id)?))
}

async fn control_activate(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CloudEvent>, Problem> {
    Ok(Json(shared.set_active(&id, true)?))
}

async fn control_deactivate(
    State(shared): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CloudEvent>, Problem> {
    Ok(Json(shared.set_active(&id, false)?))
}

async fn control_puts(State(shared): State<AppState>) -> Json<Vec<RecordedPut>> {
    Json(shared.puts())
}

async fn control_request_counts(State(shared): State<AppState>) -> Json<BTreeMap<String, u64>> {
    Json(shared.request_counts())
}

async fn control_reset_request_counts(State(shared): State<AppState>) -> StatusCode {
    shared.reset_request_counts();
    StatusCode::NO_CONTENT
}

async fn control_inject_fault(
    State(shared): State<AppState>,
    body: JsonBody<Fault>,
) -> Result<StatusCode, Problem> {
    let Json(fault) = body?;
    shared.inject_fault(fault)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn control_clear_faults(State(shared): State<AppState>) -> StatusCode {
    shared.clear_faults();
    StatusCode::NO_CONTENT
}
