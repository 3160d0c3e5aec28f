//! Attribute paths: `userName`, `name.givenName`, `urn:…:enterprise:2.0:User:manager.value`.
//!
//! Attribute names and schema URNs are case-insensitive (RFC 7643 §2.1), so comparisons here
//! ignore ASCII case; [`crate::scim::schema::SchemaRegistry::canonical_path`] rewrites a path to
//! the schema's own spelling.

use super::error::{ScimError, ScimResult};
use std::fmt;

/// A reference to an attribute, optionally schema-qualified, optionally with a sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// Schema URN when the path was written fully qualified (`urn:…:User:userName`).
    pub urn: Option<String>,
    /// The attribute name (`emails`, `userName`, `manager`).
    pub name: String,
    /// The sub-attribute (`givenName` in `name.givenName`).
    pub sub: Option<String>,
}

impl AttrPath {
    /// An unqualified path to a top-level attribute.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// An unqualified path to a sub-attribute (`name.givenName`).
    pub fn with_sub(name: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: Some(sub.into()),
        }
    }

    /// Parses `attrPath = [URI ":"] ATTRNAME *1subAttr` (RFC 7644 §3.10) without schema
    /// knowledge: a URN prefix is split at its last `:`. Use
    /// [`crate::scim::schema::SchemaRegistry::parse_path`] when the registry is at hand, which
    /// also handles a path that is a bare extension URN.
    pub fn parse(s: &str) -> ScimResult<AttrPath> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ScimError::invalid_path("empty attribute path"));
        }
        let (urn, rest) = if starts_with_urn(s) {
            match s.rfind(':') {
                Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
                None => (None, s),
            }
        } else {
            (None, s)
        };
        Self::parse_rest(urn, rest, s)
    }

    /// Parses the `ATTRNAME[.subAttr]` part that follows an already-split URN.
    pub(crate) fn parse_rest(urn: Option<String>, rest: &str, whole: &str) -> ScimResult<AttrPath> {
        let mut parts = rest.splitn(2, '.');
        let name = parts.next().unwrap_or_default();
        let sub = parts.next();
        if !is_attr_name(name) {
            return Err(ScimError::invalid_path(format!(
                "invalid attribute name in path '{whole}'"
            )));
        }
        if let Some(sub) = sub
            && !is_attr_name(sub)
        {
            return Err(ScimError::invalid_path(format!(
                "invalid sub-attribute in path '{whole}'"
            )));
        }
        Ok(AttrPath {
            urn,
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    /// True when `other` names the same attribute (names and URNs compared ignoring case; an
    /// unqualified side matches any URN).
    pub fn same_attr(&self, other: &AttrPath) -> bool {
        let urn_ok = match (&self.urn, &other.urn) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => true,
        };
        urn_ok && self.name.eq_ignore_ascii_case(&other.name)
    }

    /// The path without its sub-attribute.
    pub fn parent(&self) -> AttrPath {
        AttrPath {
            urn: self.urn.clone(),
            name: self.name.clone(),
            sub: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// True when `s` begins with `urn:` in any case.
pub fn starts_with_urn(s: &str) -> bool {
    s.len() > 4 && s.as_bytes()[..4].eq_ignore_ascii_case(b"urn:")
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA` (RFC 7643 §2.1),
/// plus `$ref`, which RFC 7643 itself uses as a sub-attribute name.
pub fn is_attr_name(s: &str) -> bool {
    if s == "$ref" {
        return true;
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_sub_and_urn_paths() {
        assert_eq!(
            AttrPath::parse("userName").unwrap(),
            AttrPath::new("userName")
        );
        assert_eq!(
            AttrPath::parse("name.givenName").unwrap(),
            AttrPath::with_sub("name", "givenName")
        );
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.name, "manager");
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "1abc", "a b", "name.", "name.given.x", "na$me", ".x"] {
            let e = AttrPath::parse(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert_eq!(
                e.scim_type,
                Some(crate::scim::error::ScimType::InvalidPath),
                "{bad}"
            );
        }
    }

    #[test]
    fn same_attr_ignores_case() {
        let a = AttrPath::parse("USERNAME").unwrap();
        assert!(a.same_attr(&AttrPath::new("userName")));
        assert!(!a.same_attr(&AttrPath::new("displayName")));
    }
}
