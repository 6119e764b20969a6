use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, LINK, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use serde_json::value::RawValue;

use super::ApiKey;
use super::model::{Agreement, DataProduct, FeedEvent, ModelError, Team};
use super::strict_json::{self, StrictError};
use crate::reconcile::report::{StatusApi, Written};
use crate::text::shown;
use std::future::Future;

/// Accept header of the HTTP feed (a batch of CloudEvents).
const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";
/// How much of an error response body goes into the error: enough to diagnose.
const MAX_BODY_EXCERPT: usize = 300;

/// Which of DMM's two agreement endpoints to use. Events of the deprecated
/// `DataUsageAgreement…` family are answered from the deprecated endpoint, so a tenant that still
/// emits them keeps working exactly as with the reference integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementApi {
    Access,
    DataUsageAgreements,
}

impl AgreementApi {
    fn collection(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::DataUsageAgreements => "datausageagreements",
        }
    }
}

/// How often and how patiently to retry transient DMM failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Upper bound for a server's `Retry-After`, so a hostile or broken value cannot stall a
    /// Lambda until its deadline.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(20),
        }
    }
}

/// Timeouts and retries of the DMM client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// A DMM call that failed. Variants say whether retrying can help
/// ([`DmmError::is_transient`]); none of them ever contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum DmmError {
    #[error(
        "DMM rejected the API key with {status} on {method} {path}: check the secret named by \
         `dmm_api_key_secret_name` and the key's permissions"
    )]
    Unauthorized {
        status: u16,
        method: Method,
        path: String,
    },
    #[error("DMM refused {method} {path} with {status}: {body}")]
    Refused {
        status: u16,
        method: Method,
        path: String,
        body: String,
    },
    #[error("DMM answered {status} to {method} {path} (after {attempts} attempts)")]
    Unavailable {
        status: u16,
        method: Method,
        path: String,
        attempts: usize,
    },
    #[error("could not reach DMM for {method} {path} (after {attempts} attempts): {reason}")]
    Network {
        method: Method,
        path: String,
        attempts: usize,
        reason: String,
    },
    #[error("DMM sent a malformed response to {method} {path}: {reason}")]
    Malformed {
        method: Method,
        path: String,
        reason: String,
    },
    /// An id that cannot be put in a URL path (empty, `.`, `..`, over 512 bytes). It names no
    /// document the integration can read or write, and never will: permanent.
    #[error(
        "the {what} id `{id}` cannot be used in a DMM URL (it is empty, `.`, `..` or over 512 \
         bytes)"
    )]
    InvalidId { what: &'static str, id: String },
    /// DMM sent a well-formed document the integration must not act on (duplicated keys, an
    /// agreement naming another id). The same document gives the same answer: permanent.
    #[error("{0}")]
    Unusable(ModelError),
    #[error("invalid DMM base URL `{0}`")]
    BaseUrl(String),
}

impl DmmError {
    /// Transient failures are worth another attempt later (SQS redelivery, next poll); the
    /// others need a person to change configuration or data first.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Network { .. } | Self::Malformed { .. }
        )
    }
}

/// One attempt's failure, before retries are decided.
#[derive(Debug)]
enum Attempt {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: String,
    },
    Network(String),
    Malformed(String),
    /// Parsed, but not to be used: retrying would read the same document.
    Unusable(ModelError),
}

impl Attempt {
    fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::Network(_) | Self::Malformed(_) => true,
            Self::Unusable(_) => false,
        }
    }
}

/// Client for the DMM API subset the integration uses. Built once per Lambda container: the
/// connection pool is reused across invocations.
#[derive(Clone)]
pub struct DmmClient {
    http: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
}

impl std::fmt::Debug for DmmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmmClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

impl DmmClient {
    pub fn new(base_url: &str, api_key: &ApiKey, settings: HttpSettings) -> Result<Self, DmmError> {
        let mut base = Url::parse(base_url).map_err(|_| DmmError::BaseUrl(base_url.to_owned()))?;
        if base.cannot_be_a_base() {
            return Err(DmmError::BaseUrl(base_url.to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut key = HeaderValue::from_str(api_key.expose())
            .map_err(|_| DmmError::BaseUrl("the API key is not a valid header value".into()))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(50))
            // The API key goes with every request: never to another host, so never a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dmm-integration-aws/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DmmError::BaseUrl(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            retry: settings.retry,
        })
    }

    /// `api/<segments…>`, each segment percent-encoded, so an id containing `/`, `?` or `#`
    /// can never address another resource.
    fn url(&self, segments: &[&str]) -> Result<Url, DmmError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| DmmError::BaseUrl(self.base.to_string()))?;
            path.pop_if_empty().push("api");
            for segment in segments {
                path.push(segment);
            }
        }
        Ok(url)
    }

    fn checked_id<'i>(what: &'static str, id: &'i str) -> Result<&'i str, DmmError> {
        if id.is_empty() || id == "." || id == ".." || id.len() > 512 {
            return Err(DmmError::InvalidId {
                what,
                id: shown(id),
            });
        }
        Ok(id)
    }

    /// Sends one request with retries and parses the body inside the retried attempt, so a
    /// truncated or garbled response is retried like a 5xx. `Ok(None)` is a 404.
    async fn call<T>(
        &self,
        method: Method,
        url: Url,
        accept: &'static str,
        body: Option<&Value>,
        parse: impl Fn(&HeaderMap, &str) -> Result<T, Attempt>,
    ) -> Result<Option<T>, DmmError> {
        let path = url.path().to_owned();
        let attempt = || async {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, accept);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Attempt::Network(e.without_url().to_string()))?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let retry_after = parse_retry_after(response.headers());
            let headers = response.headers().clone();
            let text = response
                .text()
                .await
                .map_err(|e| Attempt::Network(e.without_url().to_string()))?;
            if status.is_success() {
                parse(&headers, &text).map(Some)
            } else {
                Err(Attempt::Status {
                    status,
                    retry_after,
                    body: crate::text::excerpt(&text, MAX_BODY_EXCERPT),
                })
            }
        };
        let mut attempts = 0usize;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let max_retry_after = self.retry.max_retry_after;
        let result = (|| {
            attempts += 1;
            attempt()
        })
        .retry(backoff)
        .when(Attempt::retryable)
        .adjust(|err, planned| match (err, planned) {
            (
                Attempt::Status {
                    retry_after: Some(wait),
                    ..
                },
                Some(_),
            ) => Some((*wait).min(max_retry_after)),
            (_, planned) => planned,
        })
        .notify(|err, wait| {
            tracing::debug!(%path, ?wait, error = ?err, "retrying DMM request");
        })
        .await;
        result.map_err(|err| match err {
            Attempt::Status { status, body, .. } => match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => DmmError::Unauthorized {
                    status: status.as_u16(),
                    method: method.clone(),
                    path: path.clone(),
                },
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    DmmError::Unavailable {
                        status: s.as_u16(),
                        method: method.clone(),
                        path: path.clone(),
                        attempts,
                    }
                }
                s => DmmError::Refused {
                    status: s.as_u16(),
                    method: method.clone(),
                    path: path.clone(),
                    body,
                },
            },
            Attempt::Network(reason) => DmmError::Network {
                method: method.clone(),
                path: path.clone(),
                attempts,
                reason,
            },
            Attempt::Malformed(reason) => DmmError::Malformed {
                method: method.clone(),
                path: path.clone(),
                reason,
            },
            Attempt::Unusable(source) => DmmError::Unusable(source),
        })
    }

    /// GETs one document (`what` `id`, for messages). Duplicated keys make it unusable (see
    /// [`strict_json`]); a body that is not JSON, or JSON of the wrong shape, is retried like a
    /// 5xx, as a gateway's error page would be.
    async fn get_document<T>(
        &self,
        url: Url,
        what: &'static str,
        id: &str,
        from_value: impl Fn(Value) -> Result<T, Attempt>,
    ) -> Result<Option<T>, DmmError> {
        self.call(Method::GET, url, "application/json", None, |_, text| {
            let value = strict_json::parse(text).map_err(|e| match e {
                StrictError::Syntax(e) => Attempt::Malformed(e.to_string()),
                StrictError::DuplicateKey(key) => Attempt::Unusable(ModelError::DuplicateKey {
                    what,
                    id: shown(id),
                    key,
                }),
            })?;
            from_value(value)
        })
        .await
    }

    /// One page of the feed: events after `last_event_id` (from the start when `None`), oldest
    /// first; empty means caught up. Each event keeps its exact bytes.
    pub async fn events_page(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Vec<FeedEvent>, DmmError> {
        let mut url = self.url(&["events"])?;
        if let Some(id) = last_event_id {
            url.query_pairs_mut().append_pair("lastEventId", id);
        }
        let path = url.path().to_owned();
        let page = self
            .call(Method::GET, url, CLOUDEVENTS_BATCH, None, |_, text| {
                let items: Vec<Box<RawValue>> = serde_json::from_str(text)
                    .map_err(|e| Attempt::Malformed(format!("not a JSON array of events: {e}")))?;
                items
                    .into_iter()
                    .enumerate()
                    .map(|(position, raw)| {
                        FeedEvent::parse(raw, position)
                            .map_err(|e| Attempt::Malformed(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        // A 404 on the feed is not "nothing there": the base URL is wrong.
        page.ok_or_else(|| DmmError::Refused {
            status: 404,
            method: Method::GET,
            path,
            body: "the events feed was not found: check `dmm_base_url`".into(),
        })
    }

    /// The agreement, or `None` when DMM answers 404 (deleted). A document with duplicated
    /// keys, or one that names another id than `id`, is [`DmmError::Unusable`].
    pub async fn get_agreement(
        &self,
        api: AgreementApi,
        id: &str,
    ) -> Result<Option<Agreement>, DmmError> {
        const WHAT: &str = "agreement";
        let url = self.url(&[api.collection(), Self::checked_id(WHAT, id)?])?;
        self.get_document(url, WHAT, id, |value| {
            let agreement = Agreement::from_value(value).map_err(malformed)?;
            if agreement.id() != id {
                return Err(Attempt::Unusable(ModelError::IdMismatch {
                    what: WHAT,
                    requested: shown(id),
                    found: shown(agreement.id()),
                }));
            }
            Ok(agreement)
        })
        .await
    }

    /// Writes the whole agreement document back.
    pub async fn put_agreement(
        &self,
        api: AgreementApi,
        agreement: &Agreement,
    ) -> Result<(), DmmError> {
        let url = self.url(&[
            api.collection(),
            Self::checked_id("agreement", agreement.id())?,
        ])?;
        let path = url.path().to_owned();
        let document = agreement.to_value();
        self.call(
            Method::PUT,
            url,
            "application/json",
            Some(&document),
            |_, _| Ok(()),
        )
        .await?
        .ok_or_else(|| DmmError::Refused {
            status: 404,
            method: Method::PUT,
            path,
            body: "agreement not found".into(),
        })
    }

    /// Declares the agreement's provisioning record (`PUT /api/access/{id}/provisioning`).
    /// [`Written::NotFound`] is a 404 or 405: the agreement is gone, or this DMM has no
    /// provisioning API; the caller tells the two apart.
    pub async fn put_provisioning(&self, id: &str, report: &Value) -> Result<Written, DmmError> {
        let url = self.url(&["access", Self::checked_id("agreement", id)?, "provisioning"])?;
        match self
            .call(
                Method::PUT,
                url,
                "application/json",
                Some(report),
                |_, _| Ok(()),
            )
            .await
        {
            Ok(Some(())) => Ok(Written::Yes),
            Ok(None) | Err(DmmError::Refused { status: 405, .. }) => Ok(Written::NotFound),
            Err(other) => Err(other),
        }
    }

    /// The connector document stored under `id`, leniently parsed; `None` when there is none.
    pub async fn get_connector(&self, id: &str) -> Result<Option<Value>, DmmError> {
        let url = self.url(&["connectors", Self::checked_id("connector", id)?])?;
        self.call(Method::GET, url, "application/json", None, |_, text| {
            serde_json::from_str(text).map_err(|e| Attempt::Malformed(e.to_string()))
        })
        .await
    }

    /// Registers or updates the integration's connector document (`PUT /api/connectors/{id}`).
    pub async fn put_connector(&self, id: &str, document: &Value) -> Result<(), DmmError> {
        let url = self.url(&["connectors", Self::checked_id("connector", id)?])?;
        let path = url.path().to_owned();
        self.call(
            Method::PUT,
            url,
            "application/json",
            Some(document),
            |_, _| Ok(()),
        )
        .await?
        .ok_or_else(|| DmmError::Refused {
            status: 404,
            method: Method::PUT,
            path,
            body: "this DMM has no connectors API".into(),
        })
    }

    /// The agreements matching `query`, every page of them, oldest first.
    ///
    /// Pages are as large as the API allows ([`LIST_PAGE_SIZE`]) and followed through the
    /// `Link: <…>; rel="next"` header. A server that sends no `Link` (an older DMM) is paged by
    /// number until a page comes back empty, and one that ignores the filters is filtered by the
    /// caller anyway: the filters only save requests, they are never trusted to select.
    ///
    /// Parsed leniently (a duplicated key keeps its last value), so one odd agreement cannot
    /// hide all others: the documents are for finding agreements, not for acting on. Read an
    /// agreement with [`get_agreement`](Self::get_agreement) before granting from it.
    pub async fn list_access(&self, query: &AccessQuery<'_>) -> Result<Vec<Value>, DmmError> {
        let mut url = self.url(&["access"])?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("p", "0");
            pairs.append_pair("pageSize", &LIST_PAGE_SIZE.to_string());
            if let Some(product) = query.provider_data_product_id {
                pairs.append_pair("providerDataProductId", product);
            }
            if let Some(product) = query.consumer_data_product_id {
                pairs.append_pair("consumerDataProductId", product);
            }
            if let Some(kind) = query.consumer_type {
                pairs.append_pair("consumerType", kind.as_str());
            }
        }
        let mut all = Vec::new();
        let mut follows_links = false;
        let mut previous_first: Option<Value> = None;
        for page in 1u32.. {
            let shown_path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
            let request_url = url.clone();
            let (items, next) = self
                .call(
                    Method::GET,
                    url.clone(),
                    "application/json",
                    None,
                    |headers, text| {
                        let items = match serde_json::from_str(text) {
                            Ok(Value::Array(items)) => items,
                            Ok(_) => {
                                return Err(malformed(ModelError::NotAnObject {
                                    what: "agreement list (expected a JSON array)",
                                }));
                            }
                            Err(e) => return Err(Attempt::Malformed(e.to_string())),
                        };
                        Ok((items, next_link(headers, &request_url)))
                    },
                )
                .await?
                .unwrap_or_default();
            let first_id = items.first().and_then(|first| first.get("id")).cloned();
            if first_id.is_some() && previous_first == first_id {
                return Err(DmmError::Malformed {
                    method: Method::GET,
                    path: shown_path,
                    reason: "the page repeats the previous one; the server ignores the page".into(),
                });
            }
            previous_first = first_id;
            let count = items.len();
            all.extend(items);
            url = match next {
                Some(next) => {
                    follows_links = true;
                    self.same_origin(next, &shown_path)?
                }
                // The last page of a server that sends links, or a page shorter than any server
                // fills a page: nothing follows.
                None if follows_links || count < LEGACY_PAGE_SIZE => return Ok(all),
                None => numbered_page(&url, page),
            };
        }
        Ok(all)
    }

    /// A `Link` target is followed only on DMM's own origin: the API key goes with every request.
    fn same_origin(&self, next: Url, path: &str) -> Result<Url, DmmError> {
        if next.origin() == self.base.origin() && next.path().starts_with(self.base.path()) {
            Ok(next)
        } else {
            Err(DmmError::Malformed {
                method: Method::GET,
                path: path.to_owned(),
                reason: format!(
                    "the `Link` header points to another origin ({}); not followed, as the API \
                     key would go with it",
                    shown(next.origin().ascii_serialization().as_str())
                ),
            })
        }
    }

    pub async fn get_data_product(&self, id: &str) -> Result<Option<DataProduct>, DmmError> {
        const WHAT: &str = "data product";
        let url = self.url(&["dataproducts", Self::checked_id(WHAT, id)?])?;
        self.get_document(url, WHAT, id, |value| {
            DataProduct::from_value(value).map_err(malformed)
        })
        .await
    }

    /// The ODCS data contract `id` as DMM serves it (`/api/datacontracts/{id}`).
    pub async fn get_data_contract(&self, id: &str) -> Result<Option<Value>, DmmError> {
        const WHAT: &str = "data contract";
        let url = self.url(&["datacontracts", Self::checked_id(WHAT, id)?])?;
        self.get_document(url, WHAT, id, |value| match value {
            Value::Object(_) => Ok(value),
            _ => Err(malformed(ModelError::NotAnObject { what: WHAT })),
        })
        .await
    }

    pub async fn get_team(&self, id: &str) -> Result<Option<Team>, DmmError> {
        const WHAT: &str = "team";
        let url = self.url(&["teams", Self::checked_id(WHAT, id)?])?;
        self.get_document(url, WHAT, id, |value| {
            Team::from_value(value).map_err(malformed)
        })
        .await
    }
}

/// Page size asked of `GET /api/access`: the largest the API allows, so a mesh of 10,000
/// agreements is one request.
pub const LIST_PAGE_SIZE: usize = 10_000;

/// Agreements per page of DMM versions that page by number only (and ignore `pageSize`): a
/// shorter page is their last.
const LEGACY_PAGE_SIZE: usize = 1000;

/// The filters of `GET /api/access`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessQuery<'a> {
    pub provider_data_product_id: Option<&'a str>,
    pub consumer_data_product_id: Option<&'a str>,
    pub consumer_type: Option<ConsumerType>,
}

/// `consumerType` of `GET /api/access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerType {
    Team,
    User,
    DataProduct,
}

impl ConsumerType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::User => "user",
            Self::DataProduct => "dataproduct",
        }
    }
}

/// The `rel="next"` target of a `Link` header, relative to the page that sent it.
fn next_link(headers: &HeaderMap, page: &Url) -> Option<Url> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| parse_link_header::parse_with_rel(value).ok())
        .find_map(|links| links.get("next").map(|link| link.raw_uri.clone()))
        .and_then(|raw| page.join(&raw).ok())
}

/// `url` asking for page `page` (numbered from 0) instead.
fn numbered_page(url: &Url, page: u32) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| key != "p")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut numbered = url.clone();
    numbered
        .query_pairs_mut()
        .clear()
        .append_pair("p", &page.to_string())
        .extend_pairs(kept);
    numbered
}

impl StatusApi for DmmClient {
    fn get_agreement(
        &self,
        api: AgreementApi,
        id: &str,
    ) -> impl Future<Output = Result<Option<Agreement>, DmmError>> + Send {
        DmmClient::get_agreement(self, api, id)
    }

    fn put_agreement(
        &self,
        api: AgreementApi,
        agreement: &Agreement,
    ) -> impl Future<Output = Result<(), DmmError>> + Send {
        DmmClient::put_agreement(self, api, agreement)
    }

    fn put_provisioning(
        &self,
        id: &str,
        report: &Value,
    ) -> impl Future<Output = Result<Written, DmmError>> + Send {
        DmmClient::put_provisioning(self, id, report)
    }
}

/// A document of the wrong shape: retried, as before this distinction existed, because a proxy's
/// or gateway's answer can look like that for a while.
fn malformed(e: ModelError) -> Attempt {
    Attempt::Malformed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> DmmClient {
        DmmClient::new(base, &ApiKey::new("k"), HttpSettings::default()).unwrap()
    }

    #[test]
    fn ids_are_one_encoded_path_segment() {
        let c = client("https://dmm.example/tenant");
        let url = c.url(&["access", "a/../../teams?x#y"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://dmm.example/tenant/api/access/a%2F..%2F..%2Fteams%3Fx%23y"
        );
        assert_eq!(
            client("http://127.0.0.1:9/")
                .url(&["events"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/api/events"
        );
    }

    #[test]
    fn dot_segments_and_huge_ids_are_refused() {
        for id in ["", ".", "..", &"x".repeat(513)] {
            let error = DmmClient::checked_id("agreement", id).unwrap_err();
            assert!(
                matches!(
                    &error,
                    DmmError::InvalidId {
                        what: "agreement",
                        ..
                    }
                ),
                "{error}"
            );
            assert!(!error.is_transient());
        }
        assert!(DmmClient::checked_id("agreement", "ok-id").is_ok());
        assert!(DmmClient::checked_id("agreement", "a/../b").is_ok());
        // The id in the message is shortened and escaped.
        let error = DmmClient::checked_id("team", &format!("\u{202e}{}", "y".repeat(10_000)))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("the team id `\\u{202e}yyy"), "{error}");
        assert!(error.len() < 300, "{}", error.len());
    }

    #[test]
    fn the_next_page_is_the_link_relative_to_the_page_on_dmms_own_origin() {
        let page = Url::parse("https://dmm.example/tenant/api/access?p=0&pageSize=10000").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                r#"</tenant/api/access?p=1&pageSize=10000>; rel="next", </tenant/api/access?p=0>; rel="first""#,
            ),
        );
        let next = next_link(&headers, &page).unwrap();
        assert_eq!(
            next.as_str(),
            "https://dmm.example/tenant/api/access?p=1&pageSize=10000"
        );
        let c = client("https://dmm.example/tenant");
        assert_eq!(
            c.same_origin(next, "/api/access").unwrap().host_str(),
            Some("dmm.example")
        );
        for foreign in [
            "https://evil.example/tenant/api/access?p=1",
            "http://dmm.example/tenant/api/access?p=1",
            "https://dmm.example/other/api/access?p=1",
        ] {
            let error = c
                .same_origin(Url::parse(foreign).unwrap(), "/api/access")
                .unwrap_err();
            assert!(
                error.to_string().contains("not followed"),
                "{foreign}: {error}"
            );
        }
        headers.insert(LINK, HeaderValue::from_static(r#"</x>; rel="prev""#));
        assert_eq!(next_link(&headers, &page), None);
        assert_eq!(next_link(&HeaderMap::new(), &page), None);
    }

    #[test]
    fn an_older_dmm_is_paged_by_number_keeping_the_filters() {
        let url = Url::parse("https://dmm.example/api/access?p=0&pageSize=10000&consumerType=team")
            .unwrap();
        assert_eq!(
            numbered_page(&url, 3).query(),
            Some("p=3&pageSize=10000&consumerType=team")
        );
    }

    #[test]
    fn transient_vs_permanent() {
        let unavailable = DmmError::Unavailable {
            status: 503,
            method: Method::GET,
            path: "/api/events".into(),
            attempts: 5,
        };
        assert!(unavailable.is_transient());
        let unauthorized = DmmError::Unauthorized {
            status: 401,
            method: Method::GET,
            path: "/api/events".into(),
        };
        assert!(!unauthorized.is_transient());
        assert!(unauthorized.to_string().contains("dmm_api_key_secret_name"));
    }
}
