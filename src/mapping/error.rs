//! Errors from loading and running mapping scripts.

use crate::scim::{ScimError, ScimType};
use rhai::{Dynamic, EvalAltResult, ParseError, Position};
use std::fmt;

/// A script failure, located as precisely as rhai allows.
///
/// Two kinds reach the gateway: a script's deliberate rejection of the input through
/// `fail(kind, message)` ([`client_error`](Self::client_error) holds the `scimType`,
/// [`message`](Self::message) the detail; the client gets a 400, or 409 for `uniqueness`),
/// and everything else — compile errors, runtime errors,
/// exceeded limits, results of the wrong shape — which are bugs in the script and become a
/// 500 whose details are only logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// File name of the script, e.g. `user.rhai`.
    pub script: String,
    /// The script function that failed (the innermost one when functions call each other);
    /// empty for errors that belong to no function, such as compile errors.
    pub function: String,
    /// 1-based line in the script, when known.
    pub line: Option<usize>,
    /// What went wrong, without the location (that is in the other fields). For a
    /// rejection, the script's message, which is sent to the client as `detail`.
    pub message: String,
    /// The `scimType` when the script rejected the input with `fail`; `None` for bugs.
    pub client_error: Option<ScimType>,
}

impl MappingError {
    /// An error at a known place; `line` 0 or absent means "unknown".
    pub(crate) fn new(
        script: impl Into<String>,
        function: impl Into<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        MappingError {
            script: script.into(),
            function: function.into(),
            line: line.filter(|l| *l > 0),
            message: message.into(),
            client_error: None,
        }
    }

    /// A compile error of `script`, at the parser's position.
    pub(crate) fn from_parse(script: &str, err: &ParseError) -> Self {
        MappingError::new(script, "", err.1.line(), err.0.to_string())
    }

    /// A runtime error of `function` in `script`. Nested calls are unwrapped so the line and
    /// function name point at the statement that failed, not at the outermost call site.
    pub(crate) fn from_eval(script: &str, function: &str, err: EvalAltResult) -> Self {
        let mut function = function.to_string();
        let mut err = err;
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = err {
            function = name;
            err = *inner;
        }
        let pos = err.take_position();
        if let Some(rejection) = rejection_of(&err) {
            let mut e = MappingError::new(script, function, pos.line(), rejection.message);
            e.client_error = Some(rejection.scim_type);
            return e;
        }
        MappingError::new(script, function, pos.line(), err.to_string())
    }

    /// The SCIM error the client should see for a deliberate rejection (`uniqueness` → 409,
    /// any other kind → 400, the script's message as detail), `None` for script bugs, which
    /// the gateway reports as a 500 without exposing the script's internals.
    pub fn client_scim_error(&self) -> Option<ScimError> {
        let kind = self.client_error?;
        let status = if kind == ScimType::Uniqueness {
            409
        } else {
            400
        };
        Some(ScimError::new(status, Some(kind), self.message.clone()))
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.script)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.function.is_empty() {
            write!(f, ": {}", self.function)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for MappingError {}

/// Every `scimType` keyword a script may pass to `fail`.
const SCIM_TYPES: [ScimType; 10] = [
    ScimType::InvalidFilter,
    ScimType::TooMany,
    ScimType::Uniqueness,
    ScimType::Mutability,
    ScimType::InvalidSyntax,
    ScimType::InvalidPath,
    ScimType::NoTarget,
    ScimType::InvalidValue,
    ScimType::InvalidVers,
    ScimType::Sensitive,
];

/// Parses a `scimType` keyword ignoring case.
pub(crate) fn parse_scim_type(kind: &str) -> Option<ScimType> {
    SCIM_TYPES
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(kind.trim()))
}

/// The value `fail(kind, message)` throws; recognised again in [`MappingError::from_eval`].
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub(crate) scim_type: ScimType,
    pub(crate) message: String,
}

impl Rejection {
    /// The error `fail` raises inside the script. The position is filled in by rhai with
    /// the call site.
    pub(crate) fn into_error(self) -> Box<EvalAltResult> {
        Box::new(EvalAltResult::ErrorRuntime(
            Dynamic::from(self),
            Position::NONE,
        ))
    }
}

fn rejection_of(err: &EvalAltResult) -> Option<Rejection> {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => value.read_lock::<Rejection>().map(|r| r.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_location_parts_that_are_known() {
        let e = MappingError::new("user.rhai", "to_backend", Some(12), "boom");
        assert_eq!(e.to_string(), "user.rhai:12: to_backend: boom");
        let e = MappingError::new("user.rhai", "", Some(3), "bad token");
        assert_eq!(e.to_string(), "user.rhai:3: bad token");
        let e = MappingError::new("user.rhai", "f", Some(0), "x");
        assert_eq!(e.to_string(), "user.rhai: f: x");
    }

    #[test]
    fn scim_types_parse_ignoring_case() {
        assert_eq!(parse_scim_type("Uniqueness"), Some(ScimType::Uniqueness));
        assert_eq!(
            parse_scim_type(" invalidvalue "),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(parse_scim_type("nope"), None);
    }

    #[test]
    fn client_scim_error_only_for_rejections() {
        let mut e = MappingError::new("user.rhai", "to_backend", Some(1), "taken");
        assert!(e.client_scim_error().is_none());
        e.client_error = Some(ScimType::Uniqueness);
        let s = e.client_scim_error().unwrap();
        assert_eq!((s.status, s.scim_type), (409, Some(ScimType::Uniqueness)));
        assert_eq!(s.detail, "taken");
        e.client_error = Some(ScimType::InvalidValue);
        assert_eq!(e.client_scim_error().unwrap().status, 400);
    }
}
