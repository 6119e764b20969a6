//! Fault injection: the failures a real DMM (or the network in front of it) produces, on demand.

use serde::{Deserialize, Serialize};

use crate::Error;

/// What goes wrong with a matching request.
///
/// `Status` and `TooManyRequests` answer before the request reaches DMM's logic, so nothing is
/// applied. `Delay`, `MalformedJson`, `TruncatedPage` and `RawBody` let the request be processed
/// first and spoil only the response: a client that times out or fails to parse cannot know whether its PUT
/// was applied, which is exactly the case it must tolerate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum FaultKind {
    /// Answer with this HTTP status and a problem body (e.g. 500, 502, 503).
    Status { status: u16 },
    /// Answer 429 with a `Retry-After` header of this many seconds.
    TooManyRequests { retry_after_seconds: u64 },
    /// Hold the response back this long, to provoke client timeouts.
    Delay { ms: u64 },
    /// Replace the body with text that is not JSON, keeping status and content type.
    MalformedJson,
    /// Cut the body in the middle (a JSON array that ends abruptly), keeping status and headers.
    TruncatedPage,
    /// Replace the body with exactly this text, keeping status and headers: a document the
    /// simulator's JSON store cannot hold, e.g. one with a key twice (`{"id":"a","id":"b"}`).
    /// Arm it for as many requests as the test needs (`times`).
    RawBody { body: String },
}

/// A fault armed for the next `times` API requests whose path starts with `path_prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub times: u32,
    /// e.g. `/api/events`; `None` matches every `/api/...` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault for the next single API request, whatever its path.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            times: 1,
            path_prefix: None,
        }
    }

    /// Arms the fault for the next `times` matching requests instead of one.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Restricts the fault to requests whose path starts with `prefix`.
    pub fn on_path(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.times == 0 {
            return Err(Error::InvalidFault(
                "times must be at least 1 (use clear_faults to disarm)".to_owned(),
            ));
        }
        if let FaultKind::Status { status } = self.kind {
            if !(100..=599).contains(&status) {
                return Err(Error::InvalidFault(format!(
                    "{status} is not an HTTP status code"
                )));
            }
        }
        Ok(())
    }
}

/// Armed faults in the order they were injected; the first one matching a request fires.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    armed: Vec<Fault>,
}

impl Faults {
    pub(crate) fn arm(&mut self, fault: Fault) {
        self.armed.push(fault);
    }

    pub(crate) fn clear(&mut self) {
        self.armed.clear();
    }

    /// Consumes one use of the first fault matching `path`.
    pub(crate) fn take(&mut self, path: &str) -> Option<FaultKind> {
        let index = self.armed.iter().position(|fault| {
            fault
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
        })?;
        let fault = &mut self.armed[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.armed.remove(index);
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn faults_fire_in_order_for_matching_paths_until_used_up() {
        let mut faults = Faults::default();
        faults.arm(Fault::new(FaultKind::Status { status: 503 }).on_path("/api/events"));
        faults.arm(Fault::new(FaultKind::MalformedJson).times(2));
        assert_eq!(faults.take("/api/access/a"), Some(FaultKind::MalformedJson));
        assert_eq!(
            faults.take("/api/events"),
            Some(FaultKind::Status { status: 503 })
        );
        assert_eq!(faults.take("/api/events"), Some(FaultKind::MalformedJson));
        assert_eq!(faults.take("/api/events"), None);
    }

    #[test]
    fn the_json_form_is_flat_and_camel_case() {
        let fault: Fault = serde_json::from_value(json!({
            "kind": "tooManyRequests", "retryAfterSeconds": 3, "times": 2, "pathPrefix": "/api/access"
        }))
        .unwrap();
        assert_eq!(
            fault,
            Fault::new(FaultKind::TooManyRequests {
                retry_after_seconds: 3
            })
            .times(2)
            .on_path("/api/access")
        );
        let fault: Fault = serde_json::from_value(json!({"kind": "truncatedPage"})).unwrap();
        assert_eq!(fault, Fault::new(FaultKind::TruncatedPage));
        let fault: Fault =
            serde_json::from_value(json!({"kind": "rawBody", "body": "{\"a\":1,\"a\":2}"}))
                .unwrap();
        assert_eq!(
            fault,
            Fault::new(FaultKind::RawBody {
                body: r#"{"a":1,"a":2}"#.into()
            })
        );
    }

    #[test]
    fn invalid_faults_are_rejected() {
        assert!(
            Fault::new(FaultKind::Status { status: 42 })
                .validate()
                .is_err()
        );
        assert!(
            Fault::new(FaultKind::MalformedJson)
                .times(0)
                .validate()
                .is_err()
        );
    }
}
