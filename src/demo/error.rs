//! The demo app's own error shape: `{"error":{"code":"…","message":"…"}}`.
//!
//! Deliberately not SCIM: the gateway has to translate these, as it would for a real legacy app.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed demo API call: the HTTP status, a stable machine-readable `code` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoError {
    /// HTTP status sent with the error body.
    pub status: StatusCode,
    /// Stable code clients branch on (`not_found`, `duplicate_email`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

/// Result of a demo API operation.
pub type DemoResult<T> = Result<T, DemoError>;

impl DemoError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        DemoError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`: malformed JSON, bad query parameters or an unusable body.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`: the `X-Api-Key` header is missing or wrong.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid X-Api-Key header",
        )
    }

    /// 404 `not_found`: the addressed object (or route) does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `duplicate_email`: another user already has this email (compared ignoring case).
    pub fn duplicate_email(email: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "duplicate_email",
            format!("a user with email {email} already exists"),
        )
    }

    /// 409 `duplicate_username`: another user already has this user name (ignoring case).
    pub fn duplicate_username(username: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "duplicate_username",
            format!("a user with username {username} already exists"),
        )
    }

    /// 409 `duplicate_name`: another office already has this name (compared ignoring case).
    pub fn duplicate_name(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "duplicate_name",
            format!("an office named {name} already exists"),
        )
    }

    /// 422 `validation_failed`: the JSON is well-formed but its content is not acceptable.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }
}

impl IntoResponse for DemoError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_the_documented_shape() {
        let resp = DemoError::duplicate_email("a@b.c").into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "duplicate_email");
        assert!(v["error"]["message"].as_str().unwrap().contains("a@b.c"));
    }
}
