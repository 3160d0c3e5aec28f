//! Helper functions scripts call. They are Rust, not rhai, because they run on every request
//! and a loop over keys costs ~11 µs in script against well under 1 µs here (DESIGN.md).
//!
//! Helpers that read an attribute accept `()` as well, so a script can pass an absent
//! attribute straight through (`lower(user.userName)`) instead of guarding every call.

use super::convert::{dynamic_to_json, json_ref_to_dynamic, json_to_dynamic};
use super::error::{Rejection, parse_scim_type};
use super::lookups::Lookups;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

type RhaiResult = Result<Dynamic, Box<EvalAltResult>>;

/// Registers every helper on `engine`. Runs once per worker thread, when its engine is built.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_fn("lookup", lookup)
        .register_fn("split", split)
        .register_fn("split", split_array)
        .register_fn("split", |_: (), _: &str| Array::new())
        .register_fn("flatten_extension", flatten_extension)
        .register_fn("flatten_extension", |_: (), _: &str| Map::new())
        .register_fn("lower", |s: &str| s.to_lowercase())
        .register_fn("lower", |_: ()| ())
        .register_fn("upper", |s: &str| s.to_uppercase())
        .register_fn("upper", |_: ()| ())
        .register_fn("trim", |s: &str| s.trim().to_string())
        .register_fn("trim", |_: ()| ())
        .register_fn("get_ci", get_ci)
        .register_fn("get_ci", |_: (), _: &str| ())
        .register_fn("now", now)
        .register_fn("parse_date", parse_date)
        .register_fn("parse_date", |_: ()| ())
        .register_fn("format_date", format_date)
        .register_fn("to_json", |m: &mut Map| {
            to_json(Dynamic::from_map(m.clone()))
        })
        .register_fn("to_json", to_json)
        .register_fn("from_json", from_json)
        .register_fn("fail", fail)
        .register_fn("present", |v: Dynamic| present(&v))
        .register_fn("set_if", set_if);
}

/// `present(v)`: whether `v` holds a value: neither `()` nor the empty string (`0` and
/// `false` are values). The test every mapping makes before copying an attribute.
fn present(v: &Dynamic) -> bool {
    if v.is_unit() {
        return false;
    }
    !v.read_lock::<rhai::ImmutableString>()
        .is_some_and(|s| s.is_empty())
}

/// `map.set_if(key, value)`: sets `map[key] = value` only when [`present`], so a mapped
/// resource omits what the source did not have. Rust because scripts call it for nearly
/// every attribute: as a script function it cost ~2.8 µs a call, most of a user's mapping.
fn set_if(map: &mut Map, key: &str, value: Dynamic) {
    if present(&value) {
        map.insert(key.into(), value);
    }
}

/// `lookup(table, key)`: the cached backend record, or `()` when absent. The [`Lookups`]
/// arrive as the call's tag (see [`super::ScriptSet::call`]), so one engine per thread can
/// serve every profile.
fn lookup(ctx: NativeCallContext, table: &str, key: Dynamic) -> RhaiResult {
    if key.is_unit() {
        return Ok(Dynamic::UNIT);
    }
    let key = key.to_string();
    let lookups = ctx
        .tag()
        .and_then(|t| t.read_lock::<Lookups>())
        .ok_or("lookup: no lookup tables are available in this call")?;
    Ok(lookups
        .with_record(table, &key, json_ref_to_dynamic)
        .unwrap_or(Dynamic::UNIT))
}

/// `split(s, sep)`: the trimmed, non-empty parts of `s`. An empty separator keeps `s` whole.
fn split(s: &str, sep: &str) -> Array {
    split_parts(s, sep)
        .map(|p| Dynamic::from(p.to_string()))
        .collect()
}

/// The parts [`split`] returns, for it and for compiled scripts.
pub(crate) fn split_parts<'s>(s: &'s str, sep: &'s str) -> impl Iterator<Item = &'s str> {
    let parts: Box<dyn Iterator<Item = &'s str>> = if sep.is_empty() {
        Box::new(std::iter::once(s))
    } else {
        Box::new(s.split(sep))
    };
    parts.map(str::trim).filter(|p| !p.is_empty())
}

/// `split(array, sep)`: splits each string element and concatenates the parts, for a
/// multi-valued attribute whose values are themselves comma-separated lists (Entra's
/// `Split([attr], ",")` mapping arrives either way). Non-string elements are skipped.
fn split_array(items: Array, sep: &str) -> Array {
    items
        .into_iter()
        .filter_map(|item| item.into_immutable_string().ok())
        .flat_map(|s| split(&s, sep))
        .collect()
}

/// `flatten_extension(resource, urn)`: every attribute of the extension object under `urn`
/// (URN matched ignoring case) as a string — text as is, numbers and booleans in their usual
/// spelling, arrays and objects JSON-encoded. Null attributes are left out; an absent or
/// non-object extension gives an empty map.
pub(crate) fn flatten_extension(resource: &mut Map, urn: &str) -> Map {
    let ext = resource.get(urn).or_else(|| {
        resource
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(urn))
            .map(|(_, v)| v)
    });
    let Some(Ok(ext)) = ext.map(|e| e.as_map_ref()) else {
        return Map::new();
    };
    ext.iter()
        .filter(|(_, v)| !v.is_unit())
        .map(|(k, v)| (k.clone(), Dynamic::from(scalar_string(v))))
        .collect()
}

fn scalar_string(v: &Dynamic) -> String {
    if v.is_string() || v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        return v.to_string();
    }
    match dynamic_to_json(v.clone()) {
        Ok(json) => json.to_string(),
        Err(_) => v.to_string(),
    }
}

/// `get_ci(map, key)`: the value under `key` ignoring ASCII case (exact spelling first), or
/// `()` when absent.
fn get_ci(map: &mut Map, key: &str) -> Dynamic {
    map.get(key)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .cloned()
        .unwrap_or(Dynamic::UNIT)
}

/// `now()`: the current time as RFC 3339 UTC with second precision, e.g.
/// `2024-05-01T09:30:00Z`.
fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `parse_date(s)`: unix seconds, or `()` when `s` is no date. Accepts RFC 3339, and — as
/// legacy apps store them — `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS` (both read as UTC)
/// and `YYYY-MM-DD` (midnight UTC).
pub(crate) fn parse_date(s: &str) -> Dynamic {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Dynamic::from_int(t.timestamp());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Dynamic::from_int(t.and_utc().timestamp());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(Dynamic::UNIT, |t| {
            Dynamic::from_int(t.and_utc().timestamp())
        })
}

/// `format_date(secs)`: RFC 3339 UTC for unix seconds, `()` when out of range.
fn format_date(secs: i64) -> Dynamic {
    DateTime::from_timestamp(secs, 0).map_or(Dynamic::UNIT, |t| {
        Dynamic::from(t.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

/// `to_json(v)`: compact JSON text of any JSON-representable value.
fn to_json(v: Dynamic) -> Result<String, Box<EvalAltResult>> {
    dynamic_to_json(v)
        .map(|j| j.to_string())
        .map_err(|e| format!("to_json: {e}").into())
}

/// `from_json(s)`: the value JSON text describes; invalid text is a runtime error (catch it
/// with `try` when the data may be malformed).
fn from_json(s: &str) -> RhaiResult {
    serde_json::from_str(s)
        .map(json_to_dynamic)
        .map_err(|e| format!("from_json: {e}").into())
}

/// `fail(kind, message)`: rejects the request. `kind` is a `scimType` keyword
/// (`invalidValue`, `uniqueness`, …); the gateway answers 400 (409 for `uniqueness`) with
/// `message` as the detail. An unknown kind is itself a script bug.
fn fail(kind: &str, message: Dynamic) -> RhaiResult {
    let Some(scim_type) = parse_scim_type(kind) else {
        return Err(format!(
            "fail: unknown scimType '{kind}' (use e.g. invalidValue, uniqueness, mutability)"
        )
        .into());
    };
    Err(Rejection {
        scim_type,
        message: message.to_string(),
    }
    .into_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &Array) -> Vec<String> {
        a.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn split_trims_and_drops_empty_parts() {
        assert_eq!(strings(&split(" a, b ,,c ,", ",")), ["a", "b", "c"]);
        assert_eq!(strings(&split("  whole  ", "")), ["whole"]);
        assert!(split("  ", ",").is_empty());
        let arr: Array = vec!["x, y".into(), Dynamic::from_int(3), "z".into()];
        assert_eq!(strings(&split_array(arr, ",")), ["x", "y", "z"]);
    }

    #[test]
    fn parse_and_format_dates() {
        assert_eq!(
            parse_date("2024-01-02T03:04:05Z").as_int().unwrap(),
            1704164645
        );
        assert_eq!(
            parse_date("2024-01-02T05:04:05+02:00").as_int().unwrap(),
            1704164645
        );
        assert_eq!(
            parse_date("2024-01-02 03:04:05").as_int().unwrap(),
            1704164645
        );
        assert_eq!(parse_date("2024-01-02").as_int().unwrap(), 1704153600);
        assert!(parse_date("yesterday").is_unit());
        assert!(parse_date("2024-02-30").is_unit());
        assert_eq!(format_date(1704164645).to_string(), "2024-01-02T03:04:05Z");
        assert!(format_date(i64::MAX).is_unit());
        assert!(DateTime::parse_from_rfc3339(&now()).is_ok());
    }

    #[test]
    fn flatten_extension_stringifies_values() {
        let mut ext = Map::new();
        ext.insert("s".into(), "text".into());
        ext.insert("i".into(), Dynamic::from_int(7));
        ext.insert("b".into(), Dynamic::from_bool(true));
        ext.insert("f".into(), Dynamic::from_float(2.5));
        ext.insert("n".into(), Dynamic::UNIT);
        ext.insert(
            "a".into(),
            Dynamic::from_array(vec!["x".into(), Dynamic::from_int(1)]),
        );
        let mut res = Map::new();
        res.insert("URN:Example:Ext".into(), Dynamic::from_map(ext));
        let flat = flatten_extension(&mut res, "urn:example:ext");
        let got: Vec<(String, String)> = flat
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), r#"["x",1]"#.to_string()),
                ("b".into(), "true".into()),
                ("f".into(), "2.5".into()),
                ("i".into(), "7".into()),
                ("s".into(), "text".into()),
            ]
        );
        assert!(flatten_extension(&mut res, "urn:other").is_empty());
    }
}
