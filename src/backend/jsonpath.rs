//! JSONPath expressions declared in a profile (`items = "$.data[*]"`, `total = "$.total"`).
//!
//! Each expression is compiled once when the profile loads and the compiled query is kept:
//! re-parsing per response cost ~65% more per query in the design measurements, and a bad
//! expression must fail the configuration check rather than a live request.

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::fmt;

/// A compiled JSONPath query together with its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
    query: JpQuery,
    /// For `$.name.name[*]` (the shape of nearly every `items` expression): the member names
    /// that lead to the array, so [`JsonPath::take`] can move its elements out.
    array_at: Option<Vec<String>>,
    /// For `$.name.name` (the shape of nearly every `total` expression): the member names
    /// that lead to the value.
    member_at: Option<Vec<String>>,
}

impl JsonPath {
    /// Compiles `source`; the error message quotes the expression and the parser's reason.
    pub fn parse(source: &str) -> Result<JsonPath, String> {
        parse_json_path(source)
            .map(|query| JsonPath {
                source: source.to_string(),
                query,
                array_at: source.strip_suffix("[*]").and_then(member_names),
                member_at: member_names(source),
            })
            .map_err(|e| format!("invalid JSONPath `{source}`: {}", one_line(&e.to_string())))
    }

    /// The expression as written in the profile.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every value the query selects in `doc`, in document order; empty when nothing matches.
    pub fn select<'a>(&self, doc: &'a Value) -> Vec<&'a Value> {
        // The only failure js_path_process reports is a query whose result is a computed
        // value rather than a node; for a node query that means "nothing selected".
        js_path_process(&self.query, doc)
            .map(|refs| refs.into_iter().map(|r| r.val()).collect())
            .unwrap_or_default()
    }

    /// [`JsonPath::select`] taking the values out of `doc`: where the query is
    /// `$.name…[*]` and leads to an array, its elements are moved rather than copied (a page
    /// of legacy records was cloned whole before); otherwise the selection is copied.
    pub fn take(&self, mut doc: Value) -> Vec<Value> {
        if let Some(names) = &self.array_at
            && let Some(Value::Array(items)) = member_mut(&mut doc, names)
        {
            return std::mem::take(items);
        }
        self.select(&doc).into_iter().cloned().collect()
    }

    /// For `$.name…[*]`: the member names that lead to the array whose elements it selects.
    pub fn array_at(&self) -> Option<&[String]> {
        self.array_at.as_deref()
    }

    /// For `$.name…`: the member names that lead to the one value it selects.
    pub fn member_at(&self) -> Option<&[String]> {
        self.member_at.as_deref()
    }

    /// The first value the query selects, if any.
    pub fn first<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.select(doc).into_iter().next()
    }
}

/// The value the member names lead to from `doc`, if each is there.
fn member_mut<'v>(doc: &'v mut Value, names: &[String]) -> Option<&'v mut Value> {
    let mut at = doc;
    for name in names {
        at = at.as_object_mut()?.get_mut(name.as_str())?;
    }
    Some(at)
}

/// The member names of a query `$` `.name`… (names of letters, digits and `_`), or `None`
/// for any other query.
fn member_names(source: &str) -> Option<Vec<String>> {
    let mut rest = source.strip_prefix('$')?;
    let mut names = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('.')?;
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        names.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    Some(names)
}

/// The parser reports errors as a multi-line source excerpt; configuration issues are one
/// line each, so keep only the position and the expectation.
fn one_line(msg: &str) -> String {
    let column = msg
        .lines()
        .find_map(|l| l.split_once("--> ").map(|(_, pos)| pos))
        .and_then(|pos| pos.split(':').nth(1));
    let expected = msg.lines().find_map(|l| l.trim().strip_prefix("= "));
    match (column, expected) {
        (Some(c), Some(e)) => format!("at column {c}: {e}"),
        _ => msg.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JsonPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Reads a non-negative count from a JSON number or numeric string (legacy APIs send both).
pub fn as_count(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `take` gives what `select` selects, moved where the query is `$.name…[*]` on an array.
    #[test]
    fn take_gives_what_select_selects() {
        let docs = [
            json!({"data": [{"id": 1}, {"id": 2}], "total": 2}),
            json!({"data": {"a": 1, "b": [2]}}),
            json!({"data": null}),
            json!({"other": []}),
            json!({"result": {"users": [{"id": "u"}, 3, null]}}),
            json!([{"id": 1}, {"id": 2}]),
            json!([]),
            json!("text"),
        ];
        let queries = [
            ("$.data[*]", true),
            ("$[*]", true),
            ("$.result.users[*]", true),
            ("$.data", false),
            ("$..id", false),
            ("$.data[0]", false),
            ("$['data'][*]", false),
            ("$.data[*].id", false),
        ];
        for (q, simple) in queries {
            let path = JsonPath::parse(q).unwrap();
            assert_eq!(path.array_at.is_some(), simple, "{q}");
            for doc in &docs {
                let selected: Vec<Value> = path.select(doc).into_iter().cloned().collect();
                assert_eq!(path.take(doc.clone()), selected, "{q} on {doc}");
            }
        }
    }

    #[test]
    fn selects_items_and_total() {
        let doc = json!({"data": [{"id": 1}, {"id": 2}], "total": 42});
        let items = JsonPath::parse("$.data[*]").unwrap();
        assert_eq!(
            items.select(&doc),
            vec![&json!({"id": 1}), &json!({"id": 2})]
        );
        let total = JsonPath::parse("$.total").unwrap();
        assert_eq!(total.first(&doc).and_then(as_count), Some(42));
        assert!(JsonPath::parse("$.missing").unwrap().first(&doc).is_none());
        assert_eq!(as_count(&json!("17")), Some(17));
        assert_eq!(as_count(&json!(-1)), None);
    }

    #[test]
    fn bad_expression_names_itself() {
        let e = JsonPath::parse("$.data[").unwrap_err();
        assert_eq!(
            e,
            "invalid JSONPath `$.data[`: at column 8: expected selector"
        );
        assert!(JsonPath::parse("data").is_err());
    }
}
