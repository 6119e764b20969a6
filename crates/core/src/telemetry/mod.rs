//! Logging for CloudWatch: one JSON object per line, with the Lambda request id from the
//! runtime's span on every line, so Logs Insights can filter by field.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. `level` is the `log_level` setting: a level name or any
/// `tracing` filter directive. An invalid value falls back to `info` and says so, because a
/// typo in a log setting must not stop the integration.
pub fn init(level: Option<&str>) {
    let requested = level.unwrap_or("info");
    let (filter, invalid) = match EnvFilter::try_new(requested) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_ansi(false)
        .init();
    if let Some(reason) = invalid {
        tracing::warn!(log_level = requested, %reason, "invalid log_level, using info");
    }
}

pub mod metrics;
