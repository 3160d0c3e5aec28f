//! Path and body templates declared in a profile (`/api/v1/users/{id}`).
//!
//! Templates are parsed once when the profile loads, so a malformed template or an unknown
//! placeholder is a configuration error, never a request-time surprise. Values substituted
//! into a path are percent-encoded, because legacy ids and e-mail addresses may contain `/`,
//! `?`, `#` or spaces that would otherwise change the URL's meaning.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;

/// A failure to parse or render a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed (unbalanced braces, empty or invalid placeholder name).
    #[error("invalid template `{template}`: {reason}")]
    Syntax {
        /// The template as written in the profile.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Rendering needed a value the caller did not supply.
    #[error("template `{template}` needs a value for `{{{name}}}`")]
    Missing {
        /// The template as written in the profile.
        template: String,
        /// The placeholder without braces.
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// A parsed string template: literal text with `{name}` placeholders.
///
/// Built when the profile is loaded; [`PathTemplate::render`] runs per backend call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    parts: Vec<Part>,
}

impl PathTemplate {
    /// Parses `source`; fails on unbalanced braces or a placeholder that is not
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    pub fn parse(source: &str) -> Result<PathTemplate, TemplateError> {
        let syntax = |reason: &str| TemplateError::Syntax {
            template: source.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            let open = rest.find('{');
            let close = rest.find('}');
            match (open, close) {
                (None, None) => {
                    parts.push(Part::Literal(rest.to_string()));
                    break;
                }
                (Some(o), Some(c)) if o < c => {
                    if o > 0 {
                        parts.push(Part::Literal(rest[..o].to_string()));
                    }
                    let name = &rest[o + 1..c];
                    if !is_placeholder_name(name) {
                        return Err(syntax(&format!("invalid placeholder `{{{name}}}`")));
                    }
                    parts.push(Part::Var(name.to_string()));
                    rest = &rest[c + 1..];
                }
                (Some(_), None) => return Err(syntax("`{` without a closing `}`")),
                _ => return Err(syntax("`}` without an opening `{`")),
            }
        }
        Ok(PathTemplate {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written in the profile.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholder names in order of appearance (duplicates kept).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Whether the template contains `{name}`.
    pub fn has_placeholder(&self, name: &str) -> bool {
        self.placeholders().any(|p| p == name)
    }

    /// Renders the template for a URL path: each value is percent-encoded as one path segment.
    /// Fails when a placeholder has no value in `vars`.
    pub fn render(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        self.render_with(vars, encode_into)
    }

    /// Renders the template without encoding (for JSON body strings).
    pub fn render_raw(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        self.render_with(vars, |out, v| out.push_str(v))
    }

    fn render_with(
        &self,
        vars: &[(&str, &str)],
        put: impl Fn(&mut String, &str),
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(name) => {
                    let value = lookup(vars, name).ok_or_else(|| TemplateError::Missing {
                        template: self.source.clone(),
                        name: name.clone(),
                    })?;
                    put(&mut out, value);
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for PathTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathTemplate::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn lookup<'a>(vars: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn is_placeholder_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Appends `value` to `out`, percent-encoding every byte outside RFC 3986's unreserved set.
///
/// Used for path segments and query components alike: encoding more than strictly needed is
/// always safe, encoding less is not.
pub fn encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let bytes = value.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        // A run of unreserved bytes, copied whole: it starts and ends at character
        // boundaries (its bytes are ASCII; it stops at the first byte of the next character).
        let run = bytes[at..].iter().take_while(|&&b| unreserved(b)).count();
        out.push_str(&value[at..at + run]);
        at += run;
        while let Some(&b) = bytes.get(at).filter(|&&b| !unreserved(b)) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
            at += 1;
        }
    }
}

/// A JSON request body declared in the profile, with placeholders in its strings.
///
/// A string that is exactly one placeholder (`"{members}"`) is replaced by the JSON value
/// supplied for it, so a list of ids can become an array; placeholders inside longer strings
/// are interpolated as text.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyTemplate {
    value: Value,
    templates: Vec<PathTemplate>,
}

impl BodyTemplate {
    /// Parses every string in `value` as a template.
    pub fn new(value: Value) -> Result<BodyTemplate, TemplateError> {
        let mut templates = Vec::new();
        collect_templates(&value, &mut templates)?;
        Ok(BodyTemplate { value, templates })
    }

    /// The placeholder names used anywhere in the body.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().flat_map(|t| t.placeholders())
    }

    /// Whether the body uses `{name}` anywhere.
    pub fn has_placeholder(&self, name: &str) -> bool {
        self.placeholders().any(|p| p == name)
    }

    /// Builds the body: whole-string placeholders take the JSON value from `vars`, embedded
    /// ones its text (strings as-is, other values as compact JSON).
    pub fn render(&self, vars: &[(&str, Value)]) -> Result<Value, TemplateError> {
        render_value(&self.value, vars)
    }
}

impl<'de> Deserialize<'de> for BodyTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        BodyTemplate::new(v).map_err(serde::de::Error::custom)
    }
}

fn collect_templates(v: &Value, out: &mut Vec<PathTemplate>) -> Result<(), TemplateError> {
    match v {
        Value::String(s) => out.push(PathTemplate::parse(s)?),
        Value::Array(a) => {
            for x in a {
                collect_templates(x, out)?;
            }
        }
        Value::Object(m) => {
            for x in m.values() {
                collect_templates(x, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn render_value(v: &Value, vars: &[(&str, Value)]) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => render_string(s, vars)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_value(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), render_value(x, vars)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

fn render_string(s: &str, vars: &[(&str, Value)]) -> Result<Value, TemplateError> {
    let t = PathTemplate::parse(s)?;
    if let [Part::Var(name)] = t.parts.as_slice() {
        return vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| TemplateError::Missing {
                template: s.to_string(),
                name: name.clone(),
            });
    }
    let texts: Vec<(&str, String)> = vars
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (*k, text)
        })
        .collect();
    let refs: Vec<(&str, &str)> = texts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(Value::String(t.render_raw(&refs)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// Encoding in runs writes what encoding byte by byte writes, for any text.
        #[test]
        fn encoding_in_runs_is_encoding_byte_by_byte(s in "\\PC*|[a-z~ %é/-]*") {
            let mut ours = String::new();
            encode_into(&mut ours, &s);
            let mut byte_by_byte = String::new();
            for &b in s.as_bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    byte_by_byte.push(char::from(b));
                } else {
                    byte_by_byte.push_str(&format!("%{b:02X}"));
                }
            }
            proptest::prop_assert_eq!(ours, byte_by_byte);
        }
    }

    #[test]
    fn renders_with_percent_encoding() {
        let t = PathTemplate::parse("/api/v1/users/{id}/x").unwrap();
        assert_eq!(
            t.render(&[("id", "a/b c?d#é")]).unwrap(),
            "/api/v1/users/a%2Fb%20c%3Fd%23%C3%A9/x"
        );
        assert_eq!(
            t.render(&[("id", "Ab-9._~")]).unwrap(),
            "/api/v1/users/Ab-9._~/x"
        );
        assert_eq!(t.placeholders().collect::<Vec<_>>(), ["id"]);
    }

    #[test]
    fn missing_value_is_an_error() {
        let t = PathTemplate::parse("/t/{id}/members/{member}").unwrap();
        let e = t.render(&[("id", "1")]).unwrap_err();
        assert_eq!(
            e,
            TemplateError::Missing {
                template: "/t/{id}/members/{member}".into(),
                name: "member".into()
            }
        );
    }

    #[test]
    fn rejects_malformed_templates() {
        for bad in [
            "/u/{id",
            "/u/id}",
            "/u/{}",
            "/u/{1x}",
            "/u/{a-b}",
            "/u/{{id}}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad} should fail");
        }
        let plain = PathTemplate::parse("/api/v1/users").unwrap();
        assert_eq!(plain.render(&[]).unwrap(), "/api/v1/users");
    }

    #[test]
    fn body_whole_placeholder_takes_json_value() {
        let b = BodyTemplate::new(json!({"user_ids": "{members}", "note": "team {id}", "n": 3}))
            .unwrap();
        assert!(b.has_placeholder("members") && b.has_placeholder("id"));
        let out = b
            .render(&[("members", json!(["u1", "u2"])), ("id", json!(7))])
            .unwrap();
        assert_eq!(
            out,
            json!({"user_ids": ["u1", "u2"], "note": "team 7", "n": 3})
        );
        assert!(b.render(&[("id", json!(7))]).is_err());
        assert!(BodyTemplate::new(json!({"a": ["{bad"]})).is_err());
    }
}
