//! JSON ↔ rhai value conversion at the script boundary.
//!
//! Hand-written instead of going through serde: this runs for every argument and result of
//! every script call, and a direct walk over the two trees avoids serde's intermediate
//! visitors. Integers stay integers (rhai `INT` is i64); `()` and JSON `null` map to each other.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

/// Converts a JSON value into the rhai value a script sees: objects become maps, arrays become
/// arrays, `null` becomes `()`. Integers that do not fit in i64 (large u64) become floats.
pub(crate) fn json_to_dynamic(value: Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s),
        Value::Array(items) => {
            Dynamic::from_array(items.into_iter().map(json_to_dynamic).collect::<Array>())
        }
        Value::Object(obj) => {
            let mut map = Map::new();
            for (k, v) in obj {
                map.insert(k.into(), json_to_dynamic(v));
            }
            Dynamic::from_map(map)
        }
    }
}

/// [`json_to_dynamic`] for a borrowed value (lookup records stay cached as JSON).
pub(crate) fn json_ref_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => {
            Dynamic::from_array(items.iter().map(json_ref_to_dynamic).collect::<Array>())
        }
        Value::Object(obj) => {
            let mut map = Map::new();
            for (k, v) in obj {
                map.insert(k.as_str().into(), json_ref_to_dynamic(v));
            }
            Dynamic::from_map(map)
        }
    }
}

/// Converts a script's value back into JSON. `()` becomes `null`, characters become strings,
/// blobs become arrays of byte values, non-finite floats become `null` (JSON has no NaN).
/// Fails, naming the rhai type, for values JSON cannot carry (timestamps, function pointers,
/// custom types).
pub(crate) fn dynamic_to_json(value: Dynamic) -> Result<Value, String> {
    let value = value.flatten();
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if value.is_string() {
        return value
            .into_immutable_string()
            // The string itself when no other value shares it, a copy otherwise.
            .map(|s| Value::String(s.into_owned()))
            .map_err(|t| format!("cannot convert {t} to JSON"));
    }
    if value.is_array() {
        let items = value
            .into_array()
            .map_err(|t| format!("cannot convert {t} to JSON"))?;
        return items
            .into_iter()
            .map(dynamic_to_json)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if value.is_blob() {
        let bytes = value
            .try_cast::<rhai::Blob>()
            .ok_or_else(|| "cannot convert blob to JSON".to_string())?;
        return Ok(Value::Array(bytes.into_iter().map(Value::from).collect()));
    }
    if value.is_map() {
        let map = value
            .try_cast::<Map>()
            .ok_or_else(|| "cannot convert map to JSON".to_string())?;
        let mut obj = serde_json::Map::with_capacity(map.len());
        for (k, v) in map {
            obj.insert(k.to_string(), dynamic_to_json(v)?);
        }
        return Ok(Value::Object(obj));
    }
    Err(format!(
        "a value of type '{}' cannot be converted to JSON",
        value.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_types() {
        let v = json!({
            "s": "x", "i": -3, "f": 1.5, "b": true, "n": null,
            "a": [1, "two", {"three": 3}], "o": {"k": [null]}
        });
        let back = dynamic_to_json(json_to_dynamic(v.clone())).unwrap();
        assert_eq!(back, v);
        let back = dynamic_to_json(json_ref_to_dynamic(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn integers_stay_integers_and_huge_ones_become_floats() {
        assert!(json_to_dynamic(json!(42)).is_int());
        assert!(json_to_dynamic(json!(u64::MAX)).is_float());
    }

    #[test]
    fn special_values() {
        assert_eq!(dynamic_to_json(Dynamic::from('c')).unwrap(), json!("c"));
        assert_eq!(
            dynamic_to_json(Dynamic::from_float(f64::NAN)).unwrap(),
            Value::Null
        );
        assert_eq!(
            dynamic_to_json(Dynamic::from_blob(vec![1u8, 255])).unwrap(),
            json!([1, 255])
        );
        #[derive(Clone)]
        struct Opaque;
        let err = dynamic_to_json(Dynamic::from(Opaque)).unwrap_err();
        assert!(err.contains("cannot be converted"), "{err}");
    }
}
