//! Classification of legacy API failures and their SCIM rendering.
//!
//! A failure of the legacy app must never look like success to Entra: every variant maps to
//! a 4xx the client can act on (not found, uniqueness, invalid value) or to 502/503/504.

use crate::scim::ScimError;
use std::time::Duration;

/// Why a backend call did not produce a usable 2xx response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No connection could be made (refused, DNS failure, connect timeout, TLS handshake).
    #[error("cannot connect to backend {backend}: {message}")]
    Connect {
        /// The backend's base URL.
        backend: String,
        /// The transport's reason.
        message: String,
    },
    /// The whole call (connect, send, receive) took longer than the configured timeout.
    #[error("backend {backend} did not answer within {} ms", .after.as_millis())]
    Timeout {
        /// The backend's base URL.
        backend: String,
        /// The configured timeout that expired.
        after: Duration,
    },
    /// The backend answered with a non-2xx status.
    #[error("backend answered {status}: {message}")]
    Status {
        /// The backend's HTTP status.
        status: u16,
        /// The legacy app's own error message when it gave one, else a short excerpt of the
        /// body (possibly empty).
        message: String,
        /// The legacy app's `Retry-After`, in seconds, when it sent one (plan retries wait at
        /// least that long).
        retry_after: Option<u64>,
    },
    /// The legacy app refused (401/403) a credential the SCIM caller supplied (pass-through
    /// auth): the caller's problem, not the gateway's, so it becomes a SCIM 401.
    #[error("backend refused the caller's credentials ({status})")]
    CallerRejected {
        /// The backend's HTTP status (401 or 403).
        status: u16,
    },
    /// A 2xx answer whose body is not JSON (or is too large to accept).
    #[error("backend answered {status} with an unusable body: {message}")]
    InvalidBody {
        /// The backend's HTTP status.
        status: u16,
        /// What was wrong with the body.
        message: String,
    },
    /// The connection failed after it was established (reset, truncated response).
    #[error("backend {backend} connection failed: {message}")]
    Transport {
        /// The backend's base URL.
        backend: String,
        /// The transport's reason.
        message: String,
    },
    /// A list response did not have the shape the profile declares, or paging did not end
    /// within the declared bounds.
    #[error("backend list {path}: {message}")]
    Paging {
        /// The list path that was called.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The gateway could not build the request (bad path template values, invalid header).
    #[error("cannot build backend request: {0}")]
    Request(String),
    /// The request's path has a `.` or `..` segment (plain or percent-encoded), which a
    /// path-normalising legacy stack would resolve to another resource: refused before it is
    /// sent. It comes from a value the client sent (a member id) placed in a path.
    #[error("refused backend path {path}: it has a dot segment")]
    DotSegment {
        /// The path as it would have been sent.
        path: String,
    },
    /// A 2xx (or a status the endpoint must not give) whose content the operation cannot use:
    /// a create answer without an id, a body that is not a record, a 404 from a create
    /// endpoint. The legacy app is broken or the profile names the wrong endpoint.
    #[error("backend {endpoint}: {message}")]
    BadAnswer {
        /// Method and path of the call, e.g. `POST /api/v1/users`.
        endpoint: String,
        /// What was wrong with the answer.
        message: String,
    },
}

impl BackendError {
    /// Whether the legacy app said the record does not exist (404 or 410).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            BackendError::Status {
                status: 404 | 410,
                ..
            }
        )
    }

    /// How long the legacy app asked callers to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Status {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }

    /// The SCIM error sent to the client for this failure; never a 2xx.
    ///
    /// Legacy validation messages (400/409/422) are passed on because they tell the
    /// administrator what to fix; 5xx and credential failures are summarised, since their
    /// bodies may hold internal details.
    pub fn to_scim(&self) -> ScimError {
        match self {
            BackendError::Connect { backend, .. } => {
                ScimError::new(503, None, format!("backend {backend} is unreachable"))
            }
            BackendError::Timeout { backend, after } => ScimError::new(
                504,
                None,
                format!(
                    "backend {backend} did not answer within {} ms",
                    after.as_millis()
                ),
            ),
            BackendError::Status {
                status, message, ..
            } => status_to_scim(*status, message),
            BackendError::CallerRejected { .. } => {
                ScimError::unauthorized("the application rejected these credentials")
            }
            BackendError::InvalidBody { status, .. } => ScimError::new(
                502,
                None,
                format!("backend answered {status} with a body that is not valid JSON"),
            ),
            BackendError::Transport { backend, .. } => {
                ScimError::new(502, None, format!("connection to backend {backend} failed"))
            }
            BackendError::Paging { path, message } => {
                ScimError::new(502, None, format!("backend list {path}: {message}"))
            }
            BackendError::Request(_) => {
                ScimError::internal("the gateway could not build the backend request")
            }
            BackendError::DotSegment { .. } => ScimError::invalid_value(
                "an id in the request is `.` or `..`, which is never a valid id",
            ),
            BackendError::BadAnswer { endpoint, message } => ScimError::new(
                502,
                None,
                format!("the application's answer to {endpoint} is unusable: {message}"),
            ),
        }
    }
}

fn status_to_scim(status: u16, message: &str) -> ScimError {
    let or = |fallback: &str| {
        if message.is_empty() {
            fallback.to_string()
        } else {
            message.to_string()
        }
    };
    match status {
        404 | 410 => ScimError::not_found(or("resource not found in the backend")),
        409 => ScimError::uniqueness(or("the backend reports a conflicting value")),
        400 | 422 => ScimError::invalid_value(or("the backend rejected the values")),
        401 | 403 => ScimError::new(502, None, "backend rejected the gateway's credentials"),
        429 => ScimError::new(503, None, "backend is rate limiting the gateway"),
        // The legacy app says it is briefly unavailable: so is the gateway, and Entra should
        // retry later (the response carries Retry-After) rather than treat it as broken.
        503 => ScimError::new(503, None, "backend is temporarily unavailable (HTTP 503)"),
        s => ScimError::new(502, None, format!("backend answered HTTP {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ScimType;

    fn status(s: u16, m: &str) -> ScimError {
        BackendError::Status {
            status: s,
            message: m.into(),
            retry_after: None,
        }
        .to_scim()
    }

    #[test]
    fn classification() {
        let e = BackendError::Connect {
            backend: "http://legacy:8081".into(),
            message: "refused".into(),
        }
        .to_scim();
        assert_eq!(e.status, 503);
        assert!(e.detail.contains("http://legacy:8081"));
        let e = BackendError::Timeout {
            backend: "b".into(),
            after: Duration::from_millis(250),
        }
        .to_scim();
        assert_eq!((e.status, e.detail.contains("250 ms")), (504, true));
        let e = status(500, "stack trace with secrets");
        assert_eq!(e.status, 502);
        assert!(e.detail.contains("500") && !e.detail.contains("secrets"));
        assert_eq!(status(404, "").status, 404);
        let e = status(409, "email already exists");
        assert_eq!(
            (e.status, e.scim_type, e.detail.as_str()),
            (409, Some(ScimType::Uniqueness), "email already exists")
        );
        for s in [400, 422] {
            let e = status(s, "bad office");
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
            assert_eq!(e.detail, "bad office");
        }
        for s in [401, 403] {
            let e = status(s, "");
            assert_eq!(e.status, 502);
            assert_eq!(e.detail, "backend rejected the gateway's credentials");
        }
        let e = BackendError::InvalidBody {
            status: 200,
            message: "x".into(),
        }
        .to_scim();
        assert_eq!(e.status, 502);
        for code in [301, 405, 418, 501, 503] {
            let s = status(code, "").status;
            assert!(!(200..300).contains(&s) && s >= 500, "{code} → {s}");
        }
        assert_eq!(status(503, "").status, 503);
        assert_eq!(status(500, "").status, 502);
    }
}
