//! Data Mesh Manager: the HTTP client, the documents it returns, and the API key.
//!
//! Documents are kept as the JSON DMM sent, with typed accessors on top, because the integration
//! writes agreements back with PUT (whole document) and must never drop a field it does not model.

mod api_key;
mod client;
mod model;
mod strict_json;

pub use api_key::ApiKey;
pub use client::{
    AccessQuery, AgreementApi, ConsumerType, DmmClient, DmmError, HttpSettings, LIST_PAGE_SIZE,
    RetryPolicy,
};
pub use model::{
    Agreement, ConsumerRef, DataProduct, FeedEvent, ModelError, ProviderRef, Team, UNKNOWN,
};
