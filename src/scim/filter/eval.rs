//! Filter evaluation against resource JSON, and validation against the schemas.

use super::{CompValue, CompareOp, Filter};
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::path::AttrPath;
use crate::scim::resource::{container, get_ci};
use crate::scim::response::Doc;
use crate::scim::schema::{AttrType, AttributeDef, Resolved, SchemaContext};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// Runs `filter` against one resource (core attributes at the top level, extension attributes
/// under their URN key, keys matched ignoring case) while answering a list or search request.
///
/// True when the resource matches. A multi-valued attribute matches when any value does; a
/// complex attribute named without a sub-attribute (`emails co "x"`) compares its `value`;
/// `ne` is true when no value equals (so also when absent); `eq null` means "not present";
/// attributes the schemas do not define are absent. String comparison honours `caseExact`,
/// dateTime attributes compare as instants, numbers numerically, booleans only by `eq`/`ne`.
pub fn evaluate(filter: &Filter, resource: &Value, ctx: &SchemaContext) -> bool {
    match filter {
        Filter::Compare {
            path,
            op,
            value: CompValue::Null,
        } => null_compare(*op, is_present_at(resource, ctx, path)),
        Filter::Compare { path, op, value } => {
            let Some(r) = ctx.resolve(path) else {
                return *op == CompareOp::Ne;
            };
            let target = Target::of(&r, path);
            compare_any(*op, value, &target.spec, &mut |f| {
                any_value(resource, &r, path, target.sub, f)
            })
        }
        Filter::Present(path) => is_present_at(resource, ctx, path),
        Filter::And(l, r) => evaluate(l, resource, ctx) && evaluate(r, resource, ctx),
        Filter::Or(l, r) => evaluate(l, resource, ctx) || evaluate(r, resource, ctx),
        Filter::Not(inner) => !evaluate(inner, resource, ctx),
        Filter::ValuePath { attr, filter } => {
            let Some(r) = ctx.resolve(attr) else {
                return false;
            };
            let fallback;
            let def = match r.leaf() {
                Some(def) => def,
                None => {
                    // a key of an open extension: a plain string attribute
                    fallback = AttributeDef::string(&attr.name);
                    &fallback
                }
            };
            any_element(resource, &r, attr, &mut |e| matches_element(filter, e, def))
        }
    }
}

/// The names under which [`evaluate`] may read a resource's members for `filter`: each
/// path's attribute name and schema URN as written, and the attribute and extension schema
/// it resolves to. `evaluate` reads a resource only through its members under these names
/// (matched ignoring case, by [`container`] and [`get_ci`]).
pub fn read_names<'a>(filter: &'a Filter, ctx: &'a SchemaContext<'_>) -> Vec<&'a str> {
    fn walk<'a>(f: &'a Filter, ctx: &'a SchemaContext<'_>, out: &mut Vec<&'a str>) {
        let mut path = |p: &'a AttrPath| {
            out.push(&p.name);
            out.extend(p.urn.as_deref());
            if let Some(r) = ctx.resolve(p) {
                out.push(&r.schema.id);
                out.extend(r.attr.map(|a| a.name.as_str()));
            }
        };
        match f {
            Filter::Compare { path: p, .. } | Filter::Present(p) => path(p),
            // The inner filter reads inside the elements of `attr`'s member.
            Filter::ValuePath { attr, .. } => path(attr),
            Filter::And(l, r) | Filter::Or(l, r) => {
                walk(l, ctx, out);
                walk(r, ctx, out);
            }
            Filter::Not(inner) => walk(inner, ctx, out),
        }
    }
    let mut out = Vec::new();
    walk(filter, ctx, &mut out);
    out
}

/// What [`evaluate`] reads of a resource, as a `Value`: the members of `doc` under
/// `names` ([`read_names`], matched ignoring case), with `id` and `schemas` set as
/// `finish_value` sets them on the whole resource. For a filter whose names these are,
/// `evaluate` answers for the view as for `doc` finished with that `id` and `schemas`
/// (tests compare them): a list's filter is evaluated without the whole resource as a
/// `Value`, which the list's body is then written without.
pub fn view<'d, D: Doc<'d>>(doc: D, names: &[&str], id: &str, schemas: &[&str]) -> Value {
    let named = |k: &str| names.iter().any(|n| n.eq_ignore_ascii_case(k));
    let mut obj = serde_json::Map::new();
    for (k, v) in doc.members().into_iter().flatten() {
        if named(k) {
            obj.insert(k.to_string(), v.to_json());
        }
    }
    if named("id") {
        obj.insert("id".into(), Value::String(id.to_string()));
    }
    if named("schemas") {
        let schemas = schemas.iter().map(|s| Value::from(*s)).collect();
        obj.insert("schemas".into(), Value::Array(schemas));
    }
    Value::Object(obj)
}

/// Evaluate a value-path's inner filter against ONE element of a multi-valued complex
/// attribute (used by PATCH for `emails[type eq "work"]`, `members[value eq "id"]`).
///
/// `attr` is the definition of the multi-valued attribute; inner paths name its
/// sub-attributes. For a multi-valued attribute of simple values, `value` names the element
/// itself. Unknown sub-attributes are absent.
pub fn matches_element(filter: &Filter, element: &Value, attr: &AttributeDef) -> bool {
    match filter {
        Filter::Compare {
            path,
            op,
            value: CompValue::Null,
        } => null_compare(*op, is_present_in(element, attr, path)),
        Filter::Compare { path, op, value } => {
            let Some((v, spec)) = element_value(element, attr, path) else {
                return *op == CompareOp::Ne;
            };
            compare_any(*op, value, &spec, &mut |f| visit_leaf(v, f))
        }
        Filter::Present(path) => is_present_in(element, attr, path),
        Filter::And(l, r) => matches_element(l, element, attr) && matches_element(r, element, attr),
        Filter::Or(l, r) => matches_element(l, element, attr) || matches_element(r, element, attr),
        Filter::Not(inner) => !matches_element(inner, element, attr),
        // the grammar forbids nested value paths
        Filter::ValuePath { .. } => false,
    }
}

/// 400 invalidFilter for attributes the resource type does not define, and for ordering
/// operators (gt/ge/lt/le) on boolean, binary or complex attributes.
///
/// Runs after parsing a list or search request's filter, before any backend call, so a
/// typo in a filter is reported instead of silently matching nothing.
pub fn validate_filter(filter: &Filter, ctx: &SchemaContext) -> ScimResult<()> {
    match filter {
        Filter::Compare { path, op, .. } => {
            let r = resolve_or_reject(ctx, path)?;
            check_ordering(*op, r.attr_type(), &path.to_string())
        }
        Filter::Present(path) => resolve_or_reject(ctx, path).map(|_| ()),
        Filter::And(l, r) | Filter::Or(l, r) => {
            validate_filter(l, ctx)?;
            validate_filter(r, ctx)
        }
        Filter::Not(inner) => validate_filter(inner, ctx),
        Filter::ValuePath { attr, filter } => {
            let r = resolve_or_reject(ctx, attr)?;
            match r.leaf() {
                Some(def) => validate_element_filter(filter, def, attr),
                None => Ok(()),
            }
        }
    }
}

fn resolve_or_reject<'a>(ctx: &SchemaContext<'a>, path: &AttrPath) -> ScimResult<Resolved<'a>> {
    ctx.resolve(path).ok_or_else(|| {
        ScimError::invalid_filter(format!(
            "attribute '{path}' is not defined for resource type {}",
            ctx.rt.name
        ))
    })
}

fn check_ordering(op: CompareOp, ty: AttrType, path: &str) -> ScimResult<()> {
    if op.is_ordering() && matches!(ty, AttrType::Boolean | AttrType::Binary | AttrType::Complex) {
        return Err(ScimError::invalid_filter(format!(
            "operator '{op}' cannot order values of '{path}', whose type is {}",
            type_name(ty)
        )));
    }
    Ok(())
}

fn type_name(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Binary => "binary",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
    }
}

fn validate_element_filter(filter: &Filter, def: &AttributeDef, attr: &AttrPath) -> ScimResult<()> {
    match filter {
        Filter::Compare { path, op, .. } => {
            let sub = element_def(def, path).ok_or_else(|| unknown_sub(attr, path))?;
            check_ordering(*op, sub.attr_type, &format!("{attr}.{path}"))
        }
        Filter::Present(path) => element_def(def, path)
            .map(|_| ())
            .ok_or_else(|| unknown_sub(attr, path)),
        Filter::And(l, r) | Filter::Or(l, r) => {
            validate_element_filter(l, def, attr)?;
            validate_element_filter(r, def, attr)
        }
        Filter::Not(inner) => validate_element_filter(inner, def, attr),
        Filter::ValuePath { .. } => Err(ScimError::invalid_filter(format!(
            "value paths cannot be nested inside '{attr}[…]'"
        ))),
    }
}

fn unknown_sub(attr: &AttrPath, path: &AttrPath) -> ScimError {
    ScimError::invalid_filter(format!("'{path}' is not a sub-attribute of '{attr}'"))
}

/// The definition a path inside `attr[…]` refers to: a sub-attribute, or for a multi-valued
/// attribute of simple values, the attribute itself under the name `value`.
fn element_def<'d>(attr: &'d AttributeDef, path: &AttrPath) -> Option<&'d AttributeDef> {
    if path.urn.is_some() || path.sub.is_some() {
        return None;
    }
    if attr.attr_type != AttrType::Complex {
        return path.name.eq_ignore_ascii_case("value").then_some(attr);
    }
    attr.sub(&path.name)
}

/// What string comparison needs to know about an attribute.
struct CompareSpec {
    attr_type: AttrType,
    case_exact: bool,
}

impl CompareSpec {
    fn of(def: Option<&AttributeDef>) -> Self {
        CompareSpec {
            attr_type: def.map_or(AttrType::String, |d| d.attr_type),
            case_exact: def.is_some_and(|d| d.case_exact),
        }
    }
}

/// Where the compared values live and how to compare them: a complex attribute named
/// without a sub-attribute is compared through its `value` sub-attribute.
struct Target<'a> {
    sub: Option<&'a str>,
    spec: CompareSpec,
}

impl<'a> Target<'a> {
    fn of(r: &Resolved<'a>, path: &'a AttrPath) -> Self {
        if let Some(sub) = r.sub {
            return Target {
                sub: Some(sub.name.as_str()),
                spec: CompareSpec::of(Some(sub)),
            };
        }
        if let Some(value) = r
            .attr
            .filter(|a| a.attr_type == AttrType::Complex)
            .and_then(|a| a.sub("value"))
        {
            return Target {
                sub: Some(value.name.as_str()),
                spec: CompareSpec::of(Some(value)),
            };
        }
        Target {
            sub: path.sub.as_deref(),
            spec: CompareSpec::of(r.leaf()),
        }
    }
}

/// The value of `path` inside one element of `attr`, with how to compare it.
fn element_value<'v>(
    element: &'v Value,
    attr: &AttributeDef,
    path: &AttrPath,
) -> Option<(&'v Value, CompareSpec)> {
    let def = element_def(attr, path)?;
    let v = match element {
        Value::Object(obj) => get_ci(obj, &def.name)?,
        simple if attr.attr_type != AttrType::Complex => simple,
        _ => return None,
    };
    Some((v, CompareSpec::of(Some(def))))
}

/// A test applied to attribute values until one passes.
type ValuePred<'p> = dyn FnMut(&Value) -> bool + 'p;

/// `eq null` means "not present", `ne null` means "present"; nothing orders against null.
fn null_compare(op: CompareOp, present: bool) -> bool {
    match op {
        CompareOp::Eq => !present,
        CompareOp::Ne => present,
        _ => false,
    }
}

/// `pr` on a resource: unlike comparisons, a complex attribute counts as present when any
/// of its sub-attributes has a value (RFC 7644 §3.4.2.2), not only `value`.
fn is_present_at(resource: &Value, ctx: &SchemaContext, path: &AttrPath) -> bool {
    ctx.resolve(path).is_some_and(|r| {
        let sub = r.sub.map_or(path.sub.as_deref(), |s| Some(s.name.as_str()));
        any_value(resource, &r, path, sub, &mut is_present)
    })
}

/// `pr` inside a value filter, for one element.
fn is_present_in(element: &Value, attr: &AttributeDef, path: &AttrPath) -> bool {
    element_value(element, attr, path).is_some_and(|(v, _)| visit_leaf(v, &mut is_present))
}

/// Applies a non-null `op value` given a way to ask "does any value satisfy f?".
fn compare_any(
    op: CompareOp,
    value: &CompValue,
    spec: &CompareSpec,
    any: &mut dyn FnMut(&mut ValuePred) -> bool,
) -> bool {
    match op {
        CompareOp::Ne => !any(&mut |v| compare_one(CompareOp::Eq, v, value, spec)),
        _ => any(&mut |v| compare_one(op, v, value, spec)),
    }
}

/// Calls `f` on the values of the attribute `path` names (its `sub` of each element when
/// `sub` is set; arrays flattened, nulls skipped) until it returns true.
fn any_value(
    resource: &Value,
    r: &Resolved<'_>,
    path: &AttrPath,
    sub: Option<&str>,
    f: &mut dyn FnMut(&Value) -> bool,
) -> bool {
    any_element(resource, r, path, &mut |e| match sub {
        Some(s) => e
            .as_object()
            .and_then(|o| get_ci(o, s))
            .is_some_and(|x| visit_leaf(x, f)),
        None => visit_leaf(e, f),
    })
}

/// Calls `f` on each element of the attribute `path` names (the value itself when it is
/// not an array) until it returns true.
fn any_element(
    resource: &Value,
    r: &Resolved<'_>,
    path: &AttrPath,
    f: &mut dyn FnMut(&Value) -> bool,
) -> bool {
    let Some(obj) = container(resource, r) else {
        return false;
    };
    let name = r.attr.map_or(path.name.as_str(), |a| a.name.as_str());
    match get_ci(obj, name) {
        Some(Value::Array(items)) => items.iter().any(|e| !e.is_null() && f(e)),
        Some(Value::Null) | None => false,
        Some(v) => f(v),
    }
}

fn visit_leaf(v: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match v {
        Value::Null => false,
        Value::Array(items) => items.iter().any(|x| !x.is_null() && f(x)),
        other => f(other),
    }
}

/// `pr` semantics: null and empty strings, arrays and objects are not values.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(map) => map.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Compares one attribute value with the operand (`op` is never `ne` here).
fn compare_one(op: CompareOp, v: &Value, operand: &CompValue, spec: &CompareSpec) -> bool {
    match (v, operand) {
        (Value::String(s), CompValue::Str(t)) => compare_strings(op, s, t, spec),
        (Value::Number(a), CompValue::Num(b)) => order_matches(op, compare_numbers(a, b)),
        (Value::String(s), CompValue::Num(b)) if is_numeric(spec.attr_type) => s
            .trim()
            .parse::<serde_json::Number>()
            .is_ok_and(|a| order_matches(op, compare_numbers(&a, b))),
        (Value::Bool(a), CompValue::Bool(b)) => op == CompareOp::Eq && a == b,
        // booleans that arrived as "True"/"False" strings (Entra), either way round
        (Value::Bool(a), CompValue::Str(t)) | (Value::String(t), CompValue::Bool(a)) => {
            op == CompareOp::Eq && parse_bool(t) == Some(*a)
        }
        _ => false,
    }
}

fn is_numeric(ty: AttrType) -> bool {
    matches!(ty, AttrType::Integer | AttrType::Decimal)
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn compare_strings(op: CompareOp, s: &str, t: &str, spec: &CompareSpec) -> bool {
    if spec.attr_type == AttrType::DateTime
        && !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
        && let (Ok(a), Ok(b)) = (
            chrono::DateTime::parse_from_rfc3339(s),
            chrono::DateTime::parse_from_rfc3339(t),
        )
    {
        return order_matches(op, Some(a.cmp(&b)));
    }
    if !spec.case_exact && op == CompareOp::Eq && s.is_ascii() && t.is_ascii() {
        return s.eq_ignore_ascii_case(t);
    }
    let (s, t) = if spec.case_exact {
        (Cow::Borrowed(s), Cow::Borrowed(t))
    } else {
        (fold(s), fold(t))
    };
    match op {
        CompareOp::Co => s.contains(t.as_ref()),
        CompareOp::Sw => s.starts_with(t.as_ref()),
        CompareOp::Ew => s.ends_with(t.as_ref()),
        _ => order_matches(op, Some(s.cmp(&t))),
    }
}

/// Lower-cases for case-insensitive comparison, without allocating when nothing changes.
fn fold(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    fn as_int(n: &serde_json::Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Whether an ordering satisfies `op` (`None`, i.e. incomparable, satisfies nothing).
fn order_matches(op: CompareOp, ord: Option<Ordering>) -> bool {
    let Some(ord) = ord else {
        return false;
    };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}
