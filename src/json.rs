//! JSON text into a `serde_json::Value`, each object built in one go.
//!
//! `serde_json::from_slice::<Value>` inserts an object's members one by one into its
//! `BTreeMap`, each insert searching the tree (a legacy user record of two dozen members:
//! 11k of the 26k instructions its parse took, callgrind). Here an object's members are
//! gathered in a vector and the map is built from it at once (`Map: FromIterator`, which
//! sorts them and builds the tree bottom-up): 9k instead of 11k for that record. The
//! result is the same value: for a member given twice the last one wins, as with
//! serde_json; the parser, its errors and its depth limit are serde_json's own. One
//! difference: with serde_json's `raw_value` feature on (a dependency turns it on),
//! `from_slice::<Value>` reads an object whose only member is named
//! `$serde_json::private::RawValue` as the JSON text in that member's string; here it stays
//! the object the text says it is.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `bytes` as one JSON value (whitespace around it allowed).
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Built>(bytes).map(|b| b.0)
}

/// A value parsed by [`from_slice`].
struct Built(Value);

impl<'de> Deserialize<'de> for Built {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Build).map(Built)
    }
}

struct Build;

impl<'de> Visitor<'de> for Build {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(Build)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Built(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((k, Built(v))) = map.next_entry::<String, Built>()? {
            members.push((k, v));
        }
        Ok(Value::Object(
            members.into_iter().collect::<Map<String, Value>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(text: &str) {
        let theirs = serde_json::from_str::<Value>(text);
        let ours = from_slice(text.as_bytes());
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            _ => panic!("{text}: ours {ours:?}, serde_json {theirs:?}"),
        }
    }

    #[test]
    fn parses_as_serde_json_does() {
        for text in [
            r#"{"id":7,"username":"a@b.c","email":null,"status":"active","n":-3,"f":1.5e3,"big":18446744073709551615,"t":true,"nested":{"z":1,"a":[1,{"b":2}]},"metadata":{}}"#,
            r#"{"k":1,"k":2,"a":0,"k":3}"#,
            r#"  [1, "two", null, false, {"x": []}]  "#,
            r#""\u00e9\n\"""#,
            "1e400",
            "-0",
            "{}",
            "[]",
            "",
            "{",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "[1,]",
            "nul",
            r#"{"a":1} x"#,
            "\"\\ud800\"",
            "1.7976931348623157e308",
            "-9223372036854775808",
            "18446744073709551616",
        ] {
            same(text);
        }
        // serde_json's private raw-value token is an ordinary member here.
        let raw = r#"{"$serde_json::private::RawValue":"[1,2]"}"#;
        assert_eq!(
            from_slice(raw.as_bytes()).unwrap(),
            serde_json::json!({"$serde_json::private::RawValue": "[1,2]"})
        );
        // serde_json's depth limit holds.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        same(&deep);
        assert!(from_slice(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_slice(ok.as_bytes()).is_ok());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
            any::<u64>().prop_map(|i| Value::Number(i.into())),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(("[a-e]{0,3}", inner), 0..10)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_document_parses_to_the_same_value(v in json(), dup in "[a-e]{1,2}") {
            let text = v.to_string();
            same(&text);
            // A member given twice in an object's text: the last one wins.
            let twice = format!("{{\"{dup}\":1,{}\"{dup}\":2}}", match &v {
                Value::Object(m) if !m.is_empty() => {
                    let t = v.to_string();
                    format!("{},", &t[1..t.len() - 1])
                }
                _ => String::new(),
            });
            same(&twice);
        }
    }
}
