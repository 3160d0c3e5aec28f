//! SCIM protocol errors (RFC 7644 §3.12).
//!
//! Every failure the protocol layer can detect becomes a [`ScimError`]; the server renders it
//! with [`ScimError::to_json`] in exactly one place. `status` is sent as a string and
//! `scimType` only for the 400/409/413 cases where RFC 7644 defines one.

use serde_json::{Value, json};
use std::fmt;

/// The error schema URN carried by every error body.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` keywords of RFC 7644 §3.12, table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid or the attribute/operator is unsupported.
    InvalidFilter,
    /// The filter yields more results than the server is willing to process.
    TooMany,
    /// One or more attribute values are already in use or reserved.
    Uniqueness,
    /// The modification is incompatible with the attribute's mutability.
    Mutability,
    /// The request body structure was invalid or did not conform to the schema.
    InvalidSyntax,
    /// The `path` attribute was invalid or malformed.
    InvalidPath,
    /// The `path` did not yield an attribute or value that could be operated on.
    NoTarget,
    /// A required value was missing or the value is not compatible with the attribute type.
    InvalidValue,
    /// The protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the URI.
    Sensitive,
}

impl ScimType {
    /// The keyword as it appears in the `scimType` member.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error response: HTTP status, optional `scimType` and a human-readable detail.
///
/// The detail is sent to the client, so it must never carry secrets or internal state;
/// internal causes are logged by the caller instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// HTTP status code (400, 401, 404, 409, 412, 413, 500, 501, 502, 503, 504 …).
    pub status: u16,
    /// `scimType` keyword, when RFC 7644 defines one for this failure.
    pub scim_type: Option<ScimType>,
    /// Human-readable explanation sent as `detail`.
    pub detail: String,
    /// Seconds the client should wait before retrying (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

/// Longest `detail` sent, in bytes: details may quote what the client sent (a filter, a
/// value), and a 100 KB input must not come back (or reach the log) in full.
pub const MAX_DETAIL_BYTES: usize = 1024;

impl ScimError {
    /// A new error with any status and optional `scimType`.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            retry_after: None,
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// The same error telling the client to retry after `secs` seconds (`Retry-After`).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 400 with a `scimType`: the client's request is wrong in the way the keyword says.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }

    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidPath, detail)
    }

    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::NoTarget, detail)
    }

    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::Mutability, detail)
    }

    /// 401: missing, wrong, expired or revoked credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, None, detail)
    }

    /// 404: the resource or endpoint does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    /// 405: the endpoint exists but not for this method.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(405, None, detail)
    }

    /// 409 `uniqueness`: a unique attribute value is already taken.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), detail)
    }

    /// 412: `If-Match` did not match the current version.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, None, detail)
    }

    /// 413: the body is larger than the server accepts.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(413, None, detail)
    }

    /// 500: a failure inside the gateway; the detail must stay generic.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, None, detail)
    }

    /// 501: the operation is not implemented by this service provider.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, None, detail)
    }

    /// The RFC 7644 §3.12 JSON body.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": truncate_detail(&self.detail),
        });
        if let (Some(t), Some(map)) = (self.scim_type, body.as_object_mut()) {
            map.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }
}

/// `detail` cut to [`MAX_DETAIL_BYTES`] (on a character boundary), saying how much was cut.
pub fn truncate_detail(detail: &str) -> std::borrow::Cow<'_, str> {
    if detail.len() <= MAX_DETAIL_BYTES {
        return std::borrow::Cow::Borrowed(detail);
    }
    let mut end = MAX_DETAIL_BYTES;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… ({} more bytes)",
        &detail[..end],
        detail.len() - end
    ))
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scim_type {
            Some(t) => write!(
                f,
                "{} {}: {}",
                self.status,
                t,
                truncate_detail(&self.detail)
            ),
            None => write!(f, "{}: {}", self.status, truncate_detail(&self.detail)),
        }
    }
}

impl std::error::Error for ScimError {}

/// Result alias for the protocol layer.
pub type ScimResult<T> = Result<T, ScimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_string_status_and_scim_type() {
        let e = ScimError::invalid_filter("unexpected token at 7");
        let j = e.to_json();
        assert_eq!(j["schemas"][0], ERROR_SCHEMA);
        assert_eq!(j["status"], "400");
        assert_eq!(j["scimType"], "invalidFilter");
        assert_eq!(j["detail"], "unexpected token at 7");
    }

    #[test]
    fn body_without_scim_type_omits_member() {
        let j = ScimError::not_found("User 42 not found").to_json();
        assert_eq!(j["status"], "404");
        assert!(j.get("scimType").is_none());
        let j = ScimError::precondition_failed("version mismatch").to_json();
        assert_eq!(j["status"], "412");
        let j = ScimError::uniqueness("userName taken").to_json();
        assert_eq!(j["status"], "409");
        assert_eq!(j["scimType"], "uniqueness");
    }
}
