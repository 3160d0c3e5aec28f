//! The request path's one error type and the one place it becomes an HTTP response.

use crate::scim::ScimError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Media type of every SCIM response (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// Everything that can stop a SCIM request, split by where it came from. Rendered as an
/// RFC 7644 §3.12 body by [`IntoResponse`]; internal causes are logged, never sent.
#[derive(Debug)]
pub enum AppError {
    /// The request itself is wrong, or the resource's state refuses it.
    Client(ScimError),
    /// The legacy API failed or answered something unusable.
    Backend(crate::backend::BackendError),
    /// A mapping script failed or rejected the resource.
    Mapping(crate::mapping::MappingError),
    /// The gateway's own store (gateway-managed groups, id map) failed or refused a write.
    Store(crate::store::StoreError),
    /// A bug or an impossible state inside the gateway.
    Internal(String),
}

impl From<ScimError> for AppError {
    fn from(e: ScimError) -> Self {
        AppError::Client(e)
    }
}

impl From<crate::backend::BackendError> for AppError {
    fn from(e: crate::backend::BackendError) -> Self {
        AppError::Backend(e)
    }
}

impl From<crate::mapping::MappingError> for AppError {
    fn from(e: crate::mapping::MappingError) -> Self {
        AppError::Mapping(e)
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::Store(e)
    }
}

impl AppError {
    /// The SCIM error sent for this failure, logging what must not be sent.
    pub fn to_scim(&self) -> ScimError {
        match self {
            AppError::Client(e) => e.clone(),
            AppError::Backend(e) => {
                let s = e.to_scim();
                // A legacy 4xx is the caller's answer (Entra reads deleted users, a userName
                // is taken): the request's own line shows its status. What the gateway or the
                // legacy app got wrong is a warning.
                if s.status >= 500 {
                    tracing::warn!(error = %e, status = s.status, "backend call failed");
                } else {
                    tracing::debug!(error = %e, status = s.status, "backend refused the call");
                }
                s
            }
            AppError::Mapping(e) => {
                // A script's deliberate rejection (`fail("invalidValue", …)`) is the
                // client's problem; anything else is a script bug, logged with file:line.
                if let Some(client) = e.client_scim_error() {
                    return client;
                }
                tracing::error!(error = %e, "mapping script failed");
                ScimError::internal(format!(
                    "mapping script '{}' failed; see the gateway log",
                    e.script
                ))
            }
            AppError::Store(e) => match e {
                // A uniqueness rule of the store (a group name taken) is the client's 409.
                crate::store::StoreError::Conflict(what) => ScimError::uniqueness(what.clone()),
                crate::store::StoreError::NotFound => {
                    ScimError::not_found("the resource does not exist (any more)")
                }
                // The database being unreachable or busy is transient: 503 with Retry-After
                // makes Entra retry instead of recording a permanent failure.
                other => {
                    tracing::error!(error = %other, "store operation failed");
                    ScimError::new(
                        503,
                        None,
                        "the gateway's store is unavailable; retry shortly",
                    )
                }
            },
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ScimError::internal("internal error; see the gateway log")
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let e = self.to_scim();
        let mut resp = scim_json(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &e.to_json(),
        );
        match (e.status, e.retry_after) {
            (_, Some(secs)) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            (503, None) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        // The audit layer reads why a request failed from here, not from the body.
        resp.extensions_mut().insert(e.clone());
        if e.status == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scimgate\""),
            );
        }
        resp
    }
}

/// A response with a JSON body and the SCIM media type.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    scim_body(status, crate::json::to_vec(body))
}

/// A SCIM response whose JSON body is already written.
pub fn scim_body(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    resp
}

/// Result alias for request handlers.
pub type AppResult<T> = Result<T, AppError>;
