//! Reading and writing attribute values inside a resource's JSON.
//!
//! A resource is a `serde_json::Value` object: core and common attributes at the top level,
//! extension attributes in an object under the extension's URN. Keys are matched ignoring
//! ASCII case everywhere (RFC 7643 §2.1), since Entra and other clients vary the spelling.

use super::error::{ScimError, ScimResult};
use super::path::AttrPath;
use super::schema::{AttrType, AttributeDef, Resolved, SchemaContext};
use serde_json::{Map, Value};

/// The value under `key` in `obj`, matching the key ignoring ASCII case (exact match first).
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The key of `obj` that equals `key` ignoring ASCII case, in the object's own spelling.
pub fn key_ci(obj: &Map<String, Value>, key: &str) -> Option<String> {
    if obj.contains_key(key) {
        return Some(key.to_string());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
}

/// Mutable access to the value under `key`, matching the key ignoring ASCII case.
pub fn get_ci_mut<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Value> {
    let k = key_ci(obj, key)?;
    obj.get_mut(&k)
}

/// Removes the value under `key` (ignoring case) and returns it.
pub fn remove_ci(obj: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let k = key_ci(obj, key)?;
    obj.remove(&k)
}

/// Inserts `value` under `key`, replacing any existing key that differs only in case.
pub fn insert_ci(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(k) = key_ci(obj, key) {
        if k != key {
            obj.remove(&k);
        }
    }
    obj.insert(key.to_string(), value);
}

/// The object that holds the resolved attribute: the resource itself for core and common
/// attributes, `resource[<extension urn>]` for extension attributes. `None` when the
/// extension object is absent or the resource is not an object.
pub fn container<'a>(resource: &'a Value, r: &Resolved<'_>) -> Option<&'a Map<String, Value>> {
    let obj = resource.as_object()?;
    if r.is_core {
        Some(obj)
    } else {
        get_ci(obj, &r.schema.id)?.as_object()
    }
}

/// Mutable variant of [`container`]; creates the extension object when `create` is set.
pub fn container_mut<'a>(
    resource: &'a mut Value,
    r: &Resolved<'_>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let obj = resource.as_object_mut()?;
    if r.is_core {
        return Some(obj);
    }
    if key_ci(obj, &r.schema.id).is_none() {
        if !create {
            return None;
        }
        obj.insert(r.schema.id.clone(), Value::Object(Map::new()));
    }
    get_ci_mut(obj, &r.schema.id)?.as_object_mut()
}

/// The raw value of the attribute `path` names (ignoring its sub-attribute): an array for a
/// multi-valued attribute, an object for a complex one. `None` when absent or unresolvable.
pub fn attr_value<'a>(
    resource: &'a Value,
    ctx: &SchemaContext<'_>,
    path: &AttrPath,
) -> Option<&'a Value> {
    let r = ctx.resolve(&path.parent())?;
    let name = r.attr.map(|a| a.name.as_str()).unwrap_or(&path.name);
    get_ci(container(resource, &r)?, name)
}

/// Every value at `path`: for a multi-valued attribute each element (or each element's
/// sub-attribute), for a complex attribute its sub-attribute. Nulls are skipped. Used by the
/// filter evaluator ("any value matches") and by projections.
pub fn leaf_values<'a>(
    resource: &'a Value,
    ctx: &SchemaContext<'_>,
    path: &AttrPath,
) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let Some(v) = attr_value(resource, ctx, path) else {
        return out;
    };
    let elems: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for e in elems {
        match &path.sub {
            Some(sub) => {
                if let Some(x) = e.as_object().and_then(|o| get_ci(o, sub)) {
                    push_non_null(&mut out, x);
                }
            }
            None => push_non_null(&mut out, e),
        }
    }
    out
}

fn push_non_null<'a>(out: &mut Vec<&'a Value>, v: &'a Value) {
    match v {
        Value::Null => {}
        Value::Array(items) => out.extend(items.iter().filter(|x| !x.is_null())),
        other => out.push(other),
    }
}

/// Checks and normalises a value written to attribute `def` (at `path`, for messages):
/// `"True"`/`"False"` become booleans (Entra), a bare string for a complex attribute with a
/// `value` sub-attribute becomes `{"value": …}` (Entra's manager), complex keys take the
/// schema's spelling, a single value for a multi-valued attribute becomes a one-element
/// array. Wrong types and unknown sub-attributes fail with `invalidValue`.
pub fn coerce_value(def: &AttributeDef, v: Value, path: &str) -> ScimResult<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if def.multi_valued {
        let items = match v {
            Value::Array(items) => items,
            other => vec![other],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if item.is_null() {
                continue;
            }
            out.push(coerce_single(def, item, path)?);
        }
        return Ok(Value::Array(out));
    }
    if v.is_array() {
        return Err(ScimError::invalid_value(format!(
            "attribute '{path}' is single-valued but an array was given"
        )));
    }
    coerce_single(def, v, path)
}

/// [`coerce_value`] for one element of a multi-valued attribute (or a single value).
pub fn coerce_single(def: &AttributeDef, v: Value, path: &str) -> ScimResult<Value> {
    let wrong = |want: &str, got: &Value| {
        ScimError::invalid_value(format!(
            "attribute '{path}' must be {want}, got {}",
            json_kind(got)
        ))
    };
    match def.attr_type {
        AttrType::String | AttrType::Reference | AttrType::Binary => match v {
            Value::String(_) => Ok(v),
            other => Err(wrong("a string", &other)),
        },
        AttrType::Boolean => match v {
            Value::Bool(_) => Ok(v),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            other => Err(wrong("a boolean", &other)),
        },
        AttrType::Integer => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| wrong("an integer", &v)),
            _ => Err(wrong("an integer", &v)),
        },
        AttrType::Decimal => match &v {
            Value::Number(_) => Ok(v),
            _ => Err(wrong("a number", &v)),
        },
        AttrType::DateTime => match &v {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(v),
            Value::String(s) => Err(ScimError::invalid_value(format!(
                "attribute '{path}' must be an RFC 3339 dateTime, got '{s}'"
            ))),
            _ => Err(wrong("a dateTime string", &v)),
        },
        AttrType::Complex => match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, sv) in map {
                    let Some(sub) = def.sub(&k) else {
                        return Err(ScimError::invalid_value(format!(
                            "unknown sub-attribute '{k}' of '{path}'"
                        )));
                    };
                    let sv = coerce_value(sub, sv, &format!("{path}.{}", sub.name))?;
                    out.insert(sub.name.clone(), sv);
                }
                Ok(Value::Object(out))
            }
            Value::String(s) if def.sub("value").is_some() => {
                let mut out = Map::new();
                out.insert("value".into(), Value::String(s));
                Ok(Value::Object(out))
            }
            other => Err(wrong("an object", &other)),
        },
    }
}

/// A short name of a JSON value's kind for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::SchemaRegistry;
    use serde_json::json;

    #[test]
    fn leaf_values_reads_core_multi_and_extension() {
        let reg = SchemaRegistry::core();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let u = json!({
            "UserName": "bjensen",
            "emails": [{"value": "a@x", "type": "work"}, {"value": "b@y", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"employeeNumber": "42"}
        });
        assert_eq!(
            leaf_values(&u, &ctx, &AttrPath::new("userName")),
            vec![&json!("bjensen")]
        );
        assert_eq!(
            leaf_values(&u, &ctx, &AttrPath::with_sub("emails", "value")),
            vec![&json!("a@x"), &json!("b@y")]
        );
        assert_eq!(
            leaf_values(&u, &ctx, &AttrPath::new("employeeNumber")),
            vec![&json!("42")]
        );
        assert!(leaf_values(&u, &ctx, &AttrPath::new("title")).is_empty());
    }

    #[test]
    fn coerce_handles_entra_quirks_and_rejects_wrong_types() {
        let reg = SchemaRegistry::core();
        let user = reg.schema(crate::scim::schema::USER_SCHEMA).unwrap();
        let active = user.attribute("active").unwrap();
        assert_eq!(
            coerce_value(active, json!("False"), "active").unwrap(),
            json!(false)
        );
        assert_eq!(
            coerce_value(active, json!("TRUE"), "active").unwrap(),
            json!(true)
        );
        let e = coerce_value(active, json!("maybe"), "active").unwrap_err();
        assert_eq!(e.scim_type, Some(crate::scim::ScimType::InvalidValue));
        let ent = reg
            .schema(crate::scim::schema::ENTERPRISE_USER_SCHEMA)
            .unwrap();
        let manager = ent.attribute("manager").unwrap();
        assert_eq!(
            coerce_value(manager, json!("m-1"), "manager").unwrap(),
            json!({"value": "m-1"})
        );
        let emails = user.attribute("emails").unwrap();
        assert_eq!(
            coerce_value(emails, json!({"VALUE": "a@x", "primary": "True"}), "emails").unwrap(),
            json!([{"value": "a@x", "primary": true}])
        );
        assert!(coerce_value(emails, json!([{"bogus": 1}]), "emails").is_err());
        let user_name = user.attribute("userName").unwrap();
        assert!(coerce_value(user_name, json!(12), "userName").is_err());
        assert!(coerce_value(user_name, json!(["a"]), "userName").is_err());
    }
}
