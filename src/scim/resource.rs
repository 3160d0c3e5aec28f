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
    if let Some(k) = key_ci(obj, key)
        && k != key
    {
        obj.remove(&k);
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
            Value::String(ref s) => match s.chars().find(|c| forbidden_control(*c)) {
                // NUL and other control characters end strings early in C-based legacy
                // stacks, split log lines and hide text in admin pages: never a valid value.
                Some(c) => Err(ScimError::invalid_value(format!(
                    "attribute '{path}' contains the control character U+{:04X}",
                    u32::from(c)
                ))),
                None => Ok(v),
            },
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
                    if !sub.supported {
                        continue;
                    }
                    let sv = coerce_value(sub, sv, &format!("{path}.{}", sub.name))?;
                    // Entra sends `"$ref": null` in member values; null means "no value".
                    if !sv.is_null() {
                        out.insert(sub.name.clone(), sv);
                    }
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

/// Control characters refused in string values: every one but tab, line feed and carriage
/// return (which a postal address's `formatted` may hold).
fn forbidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
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
        for bad in ["a\u{0}b", "x\u{1b}[31m", "del\u{7f}", "c1\u{85}"] {
            let e = coerce_value(user_name, json!(bad), "userName").unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(crate::scim::ScimType::InvalidValue),
                "{bad:?}"
            );
            assert!(e.detail.contains("control character"), "{}", e.detail);
        }
        let formatted = json!("100 Universal City Plaza\nHollywood, CA\t91608");
        assert!(coerce_value(user_name, formatted, "userName").is_ok());
        assert!(coerce_value(user_name, json!(["a"]), "userName").is_err());
    }
}

/// How [`normalize_resource`] treats a body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Keep keys that no schema defines instead of rejecting them with `invalidValue`
    /// (for profiles whose legacy app stores arbitrary extra fields).
    pub keep_unknown: bool,
}

/// Validates and normalises a POST or PUT body for resource type `ctx.rt` before mapping.
///
/// Runs once per create/replace, before any script sees the resource. The result has keys
/// in the schema's spelling, values coerced to their types (`"False"` → `false`), readOnly
/// attributes (`id`, `meta`, `groups`) dropped as RFC 7644 §3.3 requires, extension
/// attributes under their URN, and `schemas` listing the core schema plus each extension
/// present. Fails with `invalidSyntax` when the body is not an object or `schemas` lacks the
/// core schema, and with `invalidValue` for unknown attributes, unknown schemas, wrong types
/// or a missing required attribute (the detail names it).
pub fn normalize_resource(
    body: Value,
    ctx: &SchemaContext<'_>,
    opts: NormalizeOptions,
) -> ScimResult<Value> {
    let Value::Object(input) = body else {
        return Err(ScimError::invalid_syntax(format!(
            "the {} body must be a JSON object",
            ctx.rt.name
        )));
    };
    let core = ctx
        .registry
        .schema(&ctx.rt.schema)
        .ok_or_else(|| ScimError::internal("resource type without core schema"))?;
    let mut out = Map::new();
    let mut extensions: Vec<String> = Vec::new();
    let mut declared: Option<Vec<String>> = None;
    for (key, value) in input {
        if key.eq_ignore_ascii_case("schemas") {
            declared = Some(declared_schemas(value, ctx)?);
            continue;
        }
        if let Some((urn, rest)) = ctx.registry.match_urn(&key) {
            if !ctx.has_schema(urn) {
                return Err(ScimError::invalid_value(format!(
                    "schema '{urn}' is not defined for {}",
                    ctx.rt.name
                )));
            }
            let urn = urn.to_string();
            if rest.is_empty() {
                let Value::Object(attrs) = value else {
                    return Err(ScimError::invalid_value(format!(
                        "extension '{urn}' must be a JSON object"
                    )));
                };
                for (k, v) in attrs {
                    // Bookkeeping keys copied along with an extension object carry nothing.
                    if ["schemas", "id", "meta"]
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(&k))
                    {
                        continue;
                    }
                    put_attribute(&mut out, ctx, &urn, &k, v, opts, &mut extensions)?;
                }
            } else {
                let rest = rest.to_string();
                put_attribute(&mut out, ctx, &urn, &rest, value, opts, &mut extensions)?;
            }
            continue;
        }
        let core_urn = core.id.clone();
        put_attribute(&mut out, ctx, &core_urn, &key, value, opts, &mut extensions)?;
    }
    if let Some(declared) = declared
        && !declared
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&ctx.rt.schema))
    {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must contain '{}'",
            ctx.rt.schema
        )));
    }
    check_required(&out, ctx)?;
    let mut schemas = vec![Value::String(ctx.rt.schema.clone())];
    schemas.extend(extensions.into_iter().map(Value::String));
    out.insert("schemas".into(), Value::Array(schemas));
    Ok(Value::Object(out))
}

fn declared_schemas(value: Value, ctx: &SchemaContext<'_>) -> ScimResult<Vec<String>> {
    let Value::Array(items) = value else {
        return Err(ScimError::invalid_syntax(
            "'schemas' must be an array of URNs",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(ScimError::invalid_syntax(
                "'schemas' must be an array of URNs",
            ));
        };
        // Entra lists schemas of its own in `schemas` (e.g. Microsoft's ADSCIM Group URN on
        // group creation) without sending attributes for them: a URN we do not serve is
        // harmless there, and attributes under an unknown URN are rejected where they appear.
        if ctx.has_schema(&s) {
            out.push(s);
        } else {
            tracing::debug!(schema = %s, "ignoring unserved schema URN listed in 'schemas'");
        }
    }
    Ok(out)
}

/// Puts one attribute (`key` may be dotted: `name.givenName`) of schema `urn` into `out`.
fn put_attribute(
    out: &mut Map<String, Value>,
    ctx: &SchemaContext<'_>,
    urn: &str,
    key: &str,
    value: Value,
    opts: NormalizeOptions,
    extensions: &mut Vec<String>,
) -> ScimResult<()> {
    let mut path = AttrPath::parse_rest(Some(urn.to_string()), key, key)
        .map_err(|e| ScimError::invalid_value(e.detail))?;
    let Some(r) = ctx.resolve(&path) else {
        if opts.keep_unknown {
            out.insert(key.to_string(), value);
            return Ok(());
        }
        return Err(ScimError::invalid_value(format!(
            "unknown attribute '{key}' for {}",
            ctx.rt.name
        )));
    };
    // Read-only attributes are the server's to set; a client copy is ignored (RFC 7644 §3.3).
    if r.attr
        .is_some_and(|a| a.mutability == super::schema::Mutability::ReadOnly)
        || r.sub
            .is_some_and(|a| a.mutability == super::schema::Mutability::ReadOnly)
    {
        return Ok(());
    }
    let target: &mut Map<String, Value> = if r.is_core {
        out
    } else {
        let id = r.schema.id.clone();
        if !extensions.iter().any(|e| e == &id) {
            extensions.push(id.clone());
        }
        match out
            .entry(id)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            Some(m) => m,
            None => return Err(ScimError::internal("extension container is not an object")),
        }
    };
    if r.attr.is_some_and(|a| !a.supported) || r.sub.is_some_and(|s| !s.supported) {
        // A SCIM attribute the legacy app does not store: accepted and dropped, so Entra's
        // default attribute mappings do not fail provisioning.
        tracing::debug!(attribute = %key, "dropping unsupported attribute");
        return Ok(());
    }
    let Some(attr) = r.attr else {
        // A key of an open schema: any scalar or structure is kept as sent.
        insert_ci(target, &path.name, value);
        return Ok(());
    };
    path.name = attr.name.clone();
    match r.sub {
        None => {
            let v = coerce_value(attr, value, &attr.name)?;
            if !v.is_null() {
                insert_ci(target, &attr.name, v);
            }
        }
        Some(sub) => {
            let v = coerce_value(sub, value, &format!("{}.{}", attr.name, sub.name))?;
            if v.is_null() {
                return Ok(());
            }
            let parent = target
                .entry(attr.name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match parent.as_object_mut() {
                Some(m) => {
                    m.insert(sub.name.clone(), v);
                }
                None => {
                    return Err(ScimError::invalid_value(format!(
                        "'{}.{}' given but '{}' is not an object",
                        attr.name, sub.name, attr.name
                    )));
                }
            }
        }
    }
    Ok(())
}

fn check_required(out: &Map<String, Value>, ctx: &SchemaContext<'_>) -> ScimResult<()> {
    for urn in ctx.rt.schema_urns() {
        let Some(schema) = ctx.registry.schema(urn) else {
            continue;
        };
        let is_core = urn.eq_ignore_ascii_case(&ctx.rt.schema);
        let container = if is_core {
            Some(out)
        } else {
            out.get(&schema.id).and_then(Value::as_object)
        };
        for attr in &schema.attributes {
            let value = container.and_then(|c| c.get(&attr.name));
            if attr.required && attr.supported && !is_present(value) {
                return Err(ScimError::invalid_value(format!(
                    "required attribute '{}' is missing",
                    qualified(is_core, &schema.id, &attr.name)
                )));
            }
            for sub in attr
                .sub_attributes
                .iter()
                .filter(|s| s.required && s.supported && attr.supported)
            {
                let elems: Vec<&Value> = match value {
                    Some(Value::Array(items)) => items.iter().collect(),
                    Some(v) => vec![v],
                    None if attr.required || sub.required => vec![&Value::Null],
                    None => vec![],
                };
                for e in elems {
                    if !is_present(e.as_object().and_then(|o| o.get(&sub.name))) {
                        return Err(ScimError::invalid_value(format!(
                            "required attribute '{}' is missing",
                            qualified(is_core, &schema.id, &format!("{}.{}", attr.name, sub.name))
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn qualified(is_core: bool, urn: &str, name: &str) -> String {
    if is_core {
        name.to_string()
    } else {
        format!("{urn}:{name}")
    }
}

/// True when `v` holds a value: not absent, not null, not an empty string, array or object.
pub fn is_present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Applies `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) and the schema's
/// `returned` rules to a resource about to be sent.
///
/// Runs last, on every resource a response carries. `returned: never` attributes are always
/// dropped, `returned: always` ones (and `id`, `schemas`) always kept. With a non-empty
/// `attributes` list only those (and the always-returned) remain; `returned: request`
/// attributes appear only when listed. `excluded` removes what it names otherwise.
pub fn project(
    resource: &Value,
    ctx: &SchemaContext<'_>,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    project_owned(resource.clone(), ctx, attributes, excluded)
}

/// The attributes of one resource type that a response naming no attributes leaves out
/// (`returned: never` or `request`, or write-only), as the keys a resource holds them under:
/// unqualified at the top level, and qualified by their schema. Worked out once per resource
/// type (a gateway's schemas do not change while it serves), so a response checks its keys
/// against this short list instead of resolving each one in the schemas.
#[derive(Debug, Clone)]
pub struct HiddenByDefault(Vec<AttrPath>);

impl HiddenByDefault {
    /// The list for `ctx`'s resource type.
    pub fn of(ctx: &SchemaContext<'_>) -> Self {
        let mut hidden = Vec::new();
        let common = super::schema::common_attributes().iter().map(|a| (None, a));
        let own = ctx.rt.schema_urns().flat_map(|urn| {
            ctx.registry
                .schema(urn)
                .into_iter()
                .flat_map(move |s| s.attributes.iter().map(move |a| (Some(urn), a)))
        });
        for (urn, attr) in common.chain(own) {
            // Asked both ways, as `shown_by_default` answers for a key of either form.
            let urns = [None, urn.or(Some(ctx.rt.schema.as_str()))];
            for urn in urns {
                let path = AttrPath {
                    urn: urn.map(str::to_string),
                    name: attr.name.clone(),
                    sub: None,
                };
                if !shown_by_default(&path, ctx) && !hidden.contains(&path) {
                    hidden.push(path);
                }
            }
        }
        HiddenByDefault(hidden)
    }

    /// Whether `path` (a top-level key, or an extension's key with its URN) is left out.
    fn hides(&self, path: &AttrPath) -> bool {
        self.0.iter().any(|h| {
            h.name.eq_ignore_ascii_case(&path.name)
                && match (&h.urn, &path.urn) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                }
        })
    }
}

/// [`project`] on a resource the caller gives up: what is kept is moved, not copied (the
/// response path, where the resource is built for this one answer).
pub fn project_owned(
    resource: Value,
    ctx: &SchemaContext<'_>,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    project_owned_with(resource, ctx, None, attributes, excluded)
}

/// [`project_owned`] with the resource type's [`HiddenByDefault`] worked out before.
pub fn project_owned_with(
    resource: Value,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    let shown = |path: &AttrPath| shown_in_default(path, ctx, hidden);
    let Value::Object(mut obj) = resource else {
        return resource;
    };
    if attributes.is_empty() && excluded.is_empty() {
        // The common case (no `attributes` / `excludedAttributes`): what is never returned
        // by default leaves the object in place; nothing is copied or rebuilt. One path is
        // reused for every key asked about.
        let mut path = AttrPath::new(String::new());
        obj.retain(|key, value| {
            if key == "schemas" {
                return true;
            }
            if let Some((urn, "")) = ctx.registry.match_urn(key) {
                let Value::Object(ext) = value else {
                    return false;
                };
                path.urn = Some(urn.to_string());
                ext.retain(|k, _| shown(named(&mut path, k)));
                path.urn = None;
                return !ext.is_empty();
            }
            shown(named(&mut path, key))
        });
        return Value::Object(obj);
    }
    let mut out = Map::new();
    for (key, value) in obj {
        if key == "schemas" {
            out.insert(key, value);
            continue;
        }
        if let Some((urn, "")) = ctx.registry.match_urn(&key) {
            let urn = urn.to_string();
            if let Value::Object(ext) = value {
                let mut kept = Map::new();
                for (k, v) in ext {
                    let path = AttrPath {
                        urn: Some(urn.clone()),
                        name: k.clone(),
                        sub: None,
                    };
                    if let Some(v) = project_attr(&path, v, ctx, attributes, excluded) {
                        kept.insert(k, v);
                    }
                }
                if !kept.is_empty() {
                    out.insert(key, Value::Object(kept));
                }
            }
            continue;
        }
        let path = AttrPath::new(key.clone());
        if let Some(v) = project_attr(&path, value, ctx, attributes, excluded) {
            out.insert(key, v);
        }
    }
    Value::Object(out)
}

/// Whether a response naming no attributes shows `path`: by `hidden` when the caller worked
/// it out, else by the schemas.
pub(super) fn shown_in_default(
    path: &AttrPath,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
) -> bool {
    match hidden {
        Some(h) => !h.hides(path),
        None => shown_by_default(path, ctx),
    }
}

/// `path`, renamed `name` (its buffer reused).
pub(super) fn named<'p>(path: &'p mut AttrPath, name: &str) -> &'p AttrPath {
    path.name.clear();
    path.name.push_str(name);
    path
}

/// Whether the attribute at `path` is in a response that names no attributes (what
/// [`project_attr`] keeps when both lists are empty): not `returned: never` or `request`,
/// not write-only.
fn shown_by_default(path: &AttrPath, ctx: &SchemaContext<'_>) -> bool {
    use super::schema::{Mutability, Returned};
    let Some(def) = ctx.resolve(path).and_then(|r| r.attr) else {
        return true;
    };
    !matches!(def.returned, Returned::Never | Returned::Request)
        && (def.returned == Returned::Always || def.mutability != Mutability::WriteOnly)
}

fn project_attr(
    path: &AttrPath,
    value: Value,
    ctx: &SchemaContext<'_>,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Option<Value> {
    use super::schema::Returned;
    let resolved = ctx.resolve(path);
    let def = resolved.and_then(|r| r.attr);
    let returned = def.map(|a| a.returned).unwrap_or(Returned::Default);
    match returned {
        Returned::Never => return None,
        Returned::Always => return Some(value),
        _ => {}
    }
    if def.is_some_and(|a| a.mutability == super::schema::Mutability::WriteOnly) {
        return None;
    }
    let mentions = |list: &[AttrPath]| -> Vec<Option<String>> {
        list.iter()
            .filter(|p| names_attr(p, path, ctx))
            .map(|p| p.sub.clone())
            .collect()
    };
    if !attributes.is_empty() {
        let wanted = mentions(attributes);
        if wanted.is_empty() {
            return None;
        }
        if wanted.iter().any(Option::is_none) {
            return Some(value);
        }
        let subs: Vec<String> = wanted.into_iter().flatten().collect();
        return Some(filter_subs(&value, &subs, true));
    }
    if returned == Returned::Request {
        return None;
    }
    if excluded.is_empty() {
        return Some(value);
    }
    let dropped = mentions(excluded);
    if dropped.iter().any(Option::is_none) {
        return None;
    }
    let subs: Vec<String> = dropped.into_iter().flatten().collect();
    if subs.is_empty() {
        Some(value)
    } else {
        Some(filter_subs(&value, &subs, false))
    }
}

/// Whether list entry `p` (from `attributes` / `excludedAttributes`) names `path`. An entry
/// `AttrPath { urn, name: "*" }` stands for a whole schema (a bare extension URN in the list);
/// a qualified entry must name the schema the attribute lives in.
fn names_attr(p: &AttrPath, path: &AttrPath, ctx: &SchemaContext<'_>) -> bool {
    let attr_urn = path.urn.as_deref().unwrap_or(ctx.rt.schema.as_str());
    if p.name == "*" {
        return p
            .urn
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(attr_urn));
    }
    if !p.name.eq_ignore_ascii_case(&path.name) {
        return false;
    }
    match &p.urn {
        None => true,
        Some(u) => u.eq_ignore_ascii_case(attr_urn),
    }
}

/// Keeps (`keep`) or drops (`!keep`) the named sub-attributes of a complex value or of each
/// element of a multi-valued one.
fn filter_subs(value: &Value, subs: &[String], keep: bool) -> Value {
    let filter_obj = |o: &Map<String, Value>| -> Value {
        Value::Object(
            o.iter()
                .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)) == keep)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    match value {
        Value::Object(o) => filter_obj(o),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| match i {
                    Value::Object(o) => filter_obj(o),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
pub(crate) mod write_tests {
    use super::*;
    use crate::scim::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, SchemaRegistry, USER_SCHEMA};
    use serde_json::json;

    fn reg() -> SchemaRegistry {
        SchemaRegistry::core()
    }

    /// The list worked out once answers as resolving each key in the schemas does: every
    /// attribute name of the type's schemas (in other cases too), unknown names and both
    /// forms of URN, on the core registry and on one whose profile hid more.
    /// The core registry with more hidden than the core schemas hide: `title` returned on
    /// request, `nickName` write-only, the enterprise `costCenter` never returned.
    pub(crate) fn tuned() -> SchemaRegistry {
        use crate::scim::schema::{Mutability, Returned};
        let mut tuned = reg();
        assert!(tuned.tune("User", "title", |a| a.returned = Returned::Request));
        assert!(tuned.tune("User", "nickName", |a| a.mutability = Mutability::WriteOnly));
        assert!(tuned.tune(
            "User",
            &format!("{ENTERPRISE_USER_SCHEMA}:costCenter"),
            |a| a.returned = Returned::Never
        ));
        tuned
    }

    #[test]
    fn hidden_by_default_answers_as_the_schemas_do() {
        let tuned = tuned();
        let mut checked = 0;
        let mut hidden_seen = 0;
        for registry in [reg(), tuned] {
            for rt in ["User", "Group"] {
                let ctx = SchemaContext::new(&registry, rt).unwrap();
                let hidden = HiddenByDefault::of(&ctx);
                let mut names: Vec<String> = ["id", "externalId", "meta", "nope", "schemas"]
                    .map(String::from)
                    .to_vec();
                for s in registry.schemas() {
                    for a in &s.attributes {
                        names.push(a.name.clone());
                        names.push(a.name.to_ascii_uppercase());
                    }
                }
                let mut urns: Vec<Option<String>> = vec![None];
                for s in registry.schemas() {
                    urns.push(Some(s.id.clone()));
                    urns.push(Some(s.id.to_ascii_lowercase()));
                }
                for urn in &urns {
                    for name in &names {
                        let path = AttrPath {
                            urn: urn.clone(),
                            name: name.clone(),
                            sub: None,
                        };
                        let want = !shown_by_default(&path, &ctx);
                        assert_eq!(hidden.hides(&path), want, "{rt} {path:?}");
                        checked += 1;
                        hidden_seen += usize::from(want);
                    }
                }
            }
        }
        assert!(checked > 500, "{checked}");
        // password (never), and in the tuned registry title, nickName and costCenter.
        assert!(hidden_seen >= 8, "{hidden_seen}");
        // And the projection gives the same response with and without the list.
        let registry = reg();
        let ctx = SchemaContext::new(&registry, "User").unwrap();
        let user = json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "password": "p",
            "PassWord": "q", "title": "t",
            ENTERPRISE_USER_SCHEMA: {"department": "d", "costCenter": "c"}});
        let hidden = HiddenByDefault::of(&ctx);
        assert_eq!(
            project_owned_with(user.clone(), &ctx, Some(&hidden), &[], &[]),
            project_owned(user, &ctx, &[], &[])
        );
    }

    /// The user body from Microsoft's "Develop and plan provisioning for a SCIM endpoint".
    fn entra_create_user() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []
        })
    }

    #[test]
    fn normalizes_entra_create_body() {
        let reg = reg();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let out =
            normalize_resource(entra_create_user(), &ctx, NormalizeOptions::default()).unwrap();
        assert_eq!(
            out["userName"],
            "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
        );
        assert!(out.get("meta").is_none(), "readOnly meta must be dropped");
        assert_eq!(out["schemas"], json!([USER_SCHEMA]));
        assert_eq!(out["emails"][0]["primary"], true);
    }

    #[test]
    fn canonical_spelling_extension_and_bool_strings() {
        let reg = reg();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let body = json!({
            "SCHEMAS": [USER_SCHEMA.to_uppercase()],
            "USERNAME": "bjensen",
            "Active": "False",
            "name.givenName": "Barbara",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"EmployeeNumber": "701984", "manager": "m-9"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Tour Operations",
            "id": "client-chosen", "groups": [{"value": "g"}]
        });
        let out = normalize_resource(body, &ctx, NormalizeOptions::default()).unwrap();
        assert_eq!(out["userName"], "bjensen");
        assert_eq!(out["active"], false);
        assert_eq!(out["name"]["givenName"], "Barbara");
        assert!(out.get("id").is_none() && out.get("groups").is_none());
        let ext = &out[ENTERPRISE_USER_SCHEMA];
        assert_eq!(ext["employeeNumber"], "701984");
        assert_eq!(ext["department"], "Tour Operations");
        assert_eq!(ext["manager"], json!({"value": "m-9"}));
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn rejects_unknown_missing_and_bad_schemas() {
        let reg = reg();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let opts = NormalizeOptions::default();
        let e =
            normalize_resource(json!({"userName": "a", "shoeSize": 9}), &ctx, opts).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
        assert!(e.detail.contains("shoeSize"));
        let kept = normalize_resource(
            json!({"userName": "a", "shoeSize": 9}),
            &ctx,
            NormalizeOptions { keep_unknown: true },
        )
        .unwrap();
        assert_eq!(kept["shoeSize"], 9);
        let e = normalize_resource(json!({"displayName": "x"}), &ctx, opts).unwrap_err();
        assert!(e.detail.contains("userName"), "{}", e.detail);
        let e = normalize_resource(
            json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "userName": "a"}),
            &ctx,
            opts,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        let e = normalize_resource(
            json!({"userName": "a", "urn:example:unknown:2.0:Thing": {"x": 1}}),
            &ctx,
            opts,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = normalize_resource(
            json!({"schemas": [ENTERPRISE_USER_SCHEMA], "userName": "a"}),
            &ctx,
            opts,
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        let e = normalize_resource(json!([1]), &ctx, opts).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        let e = normalize_resource(
            json!({"userName": "a", "name": {"givenName": 5}}),
            &ctx,
            opts,
        )
        .unwrap_err();
        assert!(e.detail.contains("name.givenName"), "{}", e.detail);
    }

    #[test]
    fn required_sub_attribute_checked() {
        let mut reg = reg();
        let user = reg.schema_mut(USER_SCHEMA).unwrap();
        for a in &mut user.attributes {
            if a.name == "name" {
                for s in &mut a.sub_attributes {
                    if s.name == "givenName" {
                        s.required = true;
                    }
                }
            }
        }
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let e = normalize_resource(json!({"userName": "a"}), &ctx, NormalizeOptions::default())
            .unwrap_err();
        assert!(e.detail.contains("name.givenName"), "{}", e.detail);
        assert!(
            normalize_resource(
                json!({"userName": "a", "name": {"givenName": "B"}}),
                &ctx,
                NormalizeOptions::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn entra_group_create_with_microsoft_schema_and_null_ref() {
        let reg = reg();
        let ctx = SchemaContext::new(&reg, "Group").unwrap();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "members": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}],
            "meta": {"resourceType": "Group"}
        });
        let out = normalize_resource(body, &ctx, NormalizeOptions::default()).unwrap();
        assert_eq!(out["schemas"], json!([crate::scim::schema::GROUP_SCHEMA]));
        assert_eq!(out["members"], json!([{"value": "f648f8d5ea4e4cd38e9c"}]));
        assert_eq!(out["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    }

    #[test]
    fn projection_rules() {
        let reg = reg();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let u = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "1", "userName": "b", "password": "secret",
            "name": {"givenName": "B", "familyName": "J"},
            "emails": [{"value": "a@x", "type": "work"}],
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "7", "department": "D"},
            "meta": {"resourceType": "User"}
        });
        let all = project(&u, &ctx, &[], &[]);
        assert!(all.get("password").is_none());
        assert_eq!(all["name"]["familyName"], "J");
        let only = project(
            &u,
            &ctx,
            &[
                AttrPath::new("userName"),
                AttrPath::with_sub("name", "givenName"),
            ],
            &[],
        );
        assert_eq!(
            only,
            json!({"schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA], "id": "1", "userName": "b", "name": {"givenName": "B"}})
        );
        let ext = project(
            &u,
            &ctx,
            &[reg
                .parse_path(&format!("{ENTERPRISE_USER_SCHEMA}:department"))
                .unwrap()],
            &[],
        );
        assert_eq!(ext[ENTERPRISE_USER_SCHEMA], json!({"department": "D"}));
        let whole = project(
            &u,
            &ctx,
            &[AttrPath {
                urn: Some(ENTERPRISE_USER_SCHEMA.into()),
                name: "*".into(),
                sub: None,
            }],
            &[],
        );
        assert_eq!(whole[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "7");
        let ex = project(
            &u,
            &ctx,
            &[],
            &[
                AttrPath::new("emails"),
                AttrPath::new("id"),
                AttrPath::with_sub("name", "familyName"),
            ],
        );
        assert!(ex.get("emails").is_none());
        assert_eq!(ex["id"], "1", "id is returned always");
        assert_eq!(ex["name"], json!({"givenName": "B"}));
        let gctx = SchemaContext::new(&reg, "Group").unwrap();
        let g = json!({"id": "g", "displayName": "G", "members": [{"value": "1"}]});
        assert!(
            project(&g, &gctx, &[], &[AttrPath::new("members")])
                .get("members")
                .is_none()
        );
    }

    /// A response that names no attributes is projected in place; it keeps exactly what the
    /// general projection keeps (here forced by excluding an attribute no resource has):
    /// never-returned and write-only attributes go, also inside an extension, and an
    /// extension left empty goes with them.
    #[test]
    fn projection_without_lists_keeps_what_the_general_one_keeps() {
        let reg = reg();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let absent = [AttrPath::new("noSuchAttribute")];
        let cases = [
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
                "id": "1", "userName": "b", "password": "secret", "active": false,
                "name": {"givenName": "B"}, "unknownThing": 3,
                "groups": [{"value": "g1"}],
                ENTERPRISE_USER_SCHEMA: {"employeeNumber": "7", "manager": {"value": "2"}},
                "meta": {"resourceType": "User"}
            }),
            json!({"id": "2", "password": "p", ENTERPRISE_USER_SCHEMA: {}}),
            json!({"id": "3", ENTERPRISE_USER_SCHEMA: "not an object"}),
            json!(["not", "an", "object"]),
        ];
        for u in cases {
            let fast = project(&u, &ctx, &[], &[]);
            let general = project(&u, &ctx, &[], &absent);
            assert_eq!(fast, general, "{u}");
        }
        let fast = project(&json!({"id": "1", "password": "x"}), &ctx, &[], &[]);
        assert_eq!(fast, json!({"id": "1"}));
    }
}
