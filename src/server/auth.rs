//! Authentication of SCIM callers.
//!
//! Static bearer tokens from config for now; the token is compared in constant time and never
//! logged. The check runs as a tower layer before any SCIM parsing, so an unauthenticated
//! caller learns nothing about the resources behind the gateway.

use super::error::AppError;
use crate::scim::ScimError;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who made a request, as far as the gateway knows; attached to the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A name safe to log and audit ("token #1"), never the secret itself.
    pub name: String,
}

/// Verifies the `Authorization` header of SCIM requests.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Vec<Vec<u8>>,
}

impl Authenticator {
    /// An authenticator accepting any of `tokens` as `Authorization: Bearer <token>`.
    /// Empty tokens are ignored, so a blank config value never opens the gateway.
    pub fn new(tokens: &[String]) -> Self {
        Authenticator {
            tokens: tokens
                .iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(|t| t.as_bytes().to_vec())
                .collect(),
        }
    }

    /// Checks an `Authorization` header value. Runs once per request. `Err` is a 401 whose
    /// detail says what was wrong without echoing anything the caller sent.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, ScimError> {
        let Some(value) = authorization else {
            return Err(ScimError::unauthorized("missing Authorization header"));
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return Err(ScimError::unauthorized("malformed Authorization header"));
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ScimError::unauthorized(
                "unsupported authorization scheme; use Bearer",
            ));
        }
        let token = token.trim().as_bytes();
        // Compare against every token so the time taken does not reveal which one matched.
        let mut matched: Option<usize> = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if bool::from(t.as_slice().ct_eq(token)) {
                matched = Some(i);
            }
        }
        match matched {
            Some(i) => Ok(Principal {
                name: format!("token #{}", i + 1),
            }),
            None => Err(ScimError::unauthorized("invalid bearer token")),
        }
    }
}

/// Tower middleware: rejects the request with a SCIM 401 unless it carries a valid credential.
pub async fn require_auth(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let header_value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.verify(header_value) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => AppError::Client(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_bearer_tokens() {
        let a = Authenticator::new(&["s3cret".into(), "".into(), "other".into()]);
        assert_eq!(a.verify(Some("Bearer s3cret")).unwrap().name, "token #1");
        assert_eq!(a.verify(Some("bearer   other")).unwrap().name, "token #2");
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
        ] {
            let e = a.verify(bad).unwrap_err();
            assert_eq!(e.status, 401, "{bad:?}");
            assert!(!e.detail.contains("s3cret"));
        }
        assert!(
            Authenticator::new(&["".into()])
                .verify(Some("Bearer "))
                .is_err()
        );
    }
}
