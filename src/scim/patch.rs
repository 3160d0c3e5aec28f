//! The PATCH engine (RFC 7644 §3.5.2), with Microsoft Entra ID's dialects normalised at the
//! edge.
//!
//! A PATCH body is parsed once by [`parse_patch`] into a canonical [`PatchRequest`]: op names
//! lower-cased into [`PatchOpKind`], every operation carrying a resolved path in the schema's
//! own spelling, values coerced to the attribute's type. Entra's variations all collapse
//! there: `"Replace"`/`"Add"`, `"value": "False"`, path-less values whose keys are dotted
//! (`name.givenName`), schema-qualified or a whole extension object, a manager sent as a bare
//! string or a one-element array, and members removed by a value array (rewritten to one
//! `members[value eq "…"]` remove per listed member).
//!
//! [`apply_patch`] applies a request to a full resource, atomically. [`split_members`] takes
//! the member operations out of a Group PATCH as a [`MemberDelta`], so a large group is
//! changed without loading its member list.

use super::error::{ScimError, ScimResult};
use super::filter::{CompValue, CompareOp, Filter, PatchPath, matches_element, parse_patch_path};
use super::path::AttrPath;
use super::resource::{coerce_single, coerce_value, container_mut, get_ci, get_ci_mut, insert_ci};
use super::resource::{json_kind, key_ci, remove_ci};
use super::schema::{
    AttrType, AttributeDef, Mutability, PATCH_OP_SCHEMA, Resolved, Schema, SchemaContext,
};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The three PATCH operations of RFC 7644 §3.5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOpKind {
    /// Adds values: appends to multi-valued attributes, merges complex ones, sets simple ones.
    Add,
    /// Removes the targeted attribute, elements or sub-attributes.
    Remove,
    /// Replaces the targeted values (a filtered replace that matches nothing adds).
    Replace,
}

impl PatchOpKind {
    /// The kind named by an `op` member, ignoring case (Entra sends `Add`, `Replace`,
    /// `Remove`); `None` for anything else.
    pub fn parse(s: &str) -> Option<PatchOpKind> {
        [PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The RFC spelling: `add`, `remove` or `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }
}

impl fmt::Display for PatchOpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One PATCH operation.
///
/// As produced by [`parse_patch`] it is canonical: `path` is always set and spelled as the
/// schema spells it (extension attributes carry their URN), `value` is coerced to the
/// target's type and set exactly for add and replace. Hand-built operations may be looser
/// (no path and an object value, a remove with a value array): [`apply_patch`] and
/// [`split_members`] normalise them the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// What to do.
    pub op: PatchOpKind,
    /// Where: attribute, optional value filter, optional sub-attribute.
    pub path: Option<PatchPath>,
    /// The value to add or replace with.
    pub value: Option<Value>,
}

/// A parsed PATCH body: operations applied in order, all or none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PatchRequest {
    /// The operations, in request order.
    pub ops: Vec<PatchOp>,
}

/// One group member as a membership change names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's SCIM id (`value`).
    pub value: String,
    /// The `display` name, when the request carried one.
    pub display: Option<String>,
    /// The member `type` (`User` or `Group`), when the request carried one.
    pub kind: Option<String>,
}

/// The net membership change of a Group PATCH, in request order.
///
/// If `reset` is `Some`, the member list becomes exactly that list (and `add`/`remove` are
/// empty); otherwise the members in `add` are added (an existing member is kept, its display
/// updated) and the ids in `remove` removed, where removing a non-member is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberDelta {
    /// The complete new member list, when the request replaced or cleared the members.
    pub reset: Option<Vec<Member>>,
    /// Members to add.
    pub add: Vec<Member>,
    /// Member ids to remove.
    pub remove: Vec<String>,
}

impl MemberDelta {
    /// True when the request changes no membership.
    pub fn is_empty(&self) -> bool {
        self.reset.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Parses and normalises a PATCH body once, at the protocol edge, before any backend call.
///
/// The body must be an object whose `schemas` holds the PatchOp URN and whose `Operations`
/// (any case) is a non-empty array, else 400 `invalidSyntax`. Each operation is resolved
/// against `ctx`: unknown attributes give `invalidPath`, readOnly targets `mutability`,
/// missing or ill-typed values `invalidValue`, a remove without path `noTarget`. The detail
/// names the failing operation (`Operations[2]: …`). On success every operation has a
/// canonical path and a coerced value (see [`PatchOp`]).
pub fn parse_patch(body: &Value, ctx: &SchemaContext) -> ScimResult<PatchRequest> {
    let obj = body.as_object().ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "a PATCH body must be a JSON object, got {}",
            json_kind(body)
        ))
    })?;
    let has_schema = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .any(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body must list \"{PATCH_OP_SCHEMA}\" in 'schemas'"
        )));
    }
    let raw_ops = match get_ci(obj, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        Some(Value::Array(_)) => {
            return Err(ScimError::invalid_syntax(
                "'Operations' must hold at least one operation",
            ));
        }
        Some(other) => {
            return Err(ScimError::invalid_syntax(format!(
                "'Operations' must be an array, got {}",
                json_kind(other)
            )));
        }
        None => {
            return Err(ScimError::invalid_syntax(
                "a PATCH body needs an 'Operations' array",
            ));
        }
    };
    let mut ops = Vec::with_capacity(raw_ops.len());
    for (i, raw) in raw_ops.iter().enumerate() {
        let mut prepared = Vec::new();
        parse_raw_op(raw, ctx, &mut prepared).map_err(at_op(i))?;
        ops.extend(prepared.into_iter().map(Prepared::into_op));
    }
    Ok(PatchRequest { ops })
}

/// Applies `req` in order to a full resource (core attributes at the top level, extensions
/// under their URN key), as a PATCH on a resource the gateway holds in full (users, small
/// groups).
///
/// Atomic: on error `resource` is unchanged. Removing something absent succeeds. An
/// extension object created by an add gets its URN listed in `schemas`; one emptied by a
/// remove disappears with its URN. Immutable values that are already set cannot change and
/// required ones cannot be removed (400 `mutability`).
pub fn apply_patch(
    resource: &mut Value,
    req: &PatchRequest,
    ctx: &SchemaContext,
) -> ScimResult<()> {
    if !resource.is_object() {
        return Err(ScimError::internal(
            "the resource to patch is not an object",
        ));
    }
    let mut work = resource.clone();
    for (i, op) in req.ops.iter().enumerate() {
        let mut prepared = Vec::new();
        prepare_op(
            op.op,
            op.path.as_ref(),
            op.value.clone(),
            ctx,
            &mut prepared,
        )
        .map_err(at_op(i))?;
        for p in &prepared {
            apply_prepared(&mut work, p, ctx).map_err(at_op(i))?;
        }
    }
    *resource = work;
    Ok(())
}

/// Splits the member operations out of a Group PATCH, before the backend is called, so the
/// gateway never loads the group's member list: cost O(operations + members named in the
/// request), independent of the group's size.
///
/// Returns the other operations (to apply to the group without its members) and the net
/// [`MemberDelta`]. Member operations must name members by id: add/replace of whole
/// members, `members[value eq "id"]` (optionally `or`-joined) to remove or update one,
/// replace or remove of `members` as a whole (a reset). Other member filters fail with
/// 400 `invalidFilter`, sub-attribute removals and unfiltered sub-attribute writes with
/// `invalidPath`, since they could only be served by loading every member.
pub fn split_members(
    req: PatchRequest,
    ctx: &SchemaContext,
) -> ScimResult<(PatchRequest, MemberDelta)> {
    let mut rest = Vec::new();
    let mut acc = MemberAcc::default();
    for (i, op) in req.ops.into_iter().enumerate() {
        let PatchOp { op, path, value } = op;
        let mut prepared = Vec::new();
        prepare_op(op, path.as_ref(), value, ctx, &mut prepared).map_err(at_op(i))?;
        for p in prepared {
            if p.target.is_members() {
                acc.apply(p).map_err(at_op(i))?;
            } else {
                rest.push(p.into_op());
            }
        }
    }
    Ok((PatchRequest { ops: rest }, acc.finish()))
}

/// Drops the operations that target attributes the profile does not store (see
/// [`crate::scim::schema::AttributeDef::supported`]): Entra sends its default mappings whatever
/// the application keeps, and such an operation must neither fail nor pretend to store.
/// Runs after [`parse_patch`], whose paths are canonical.
pub fn retain_supported(req: PatchRequest, ctx: &SchemaContext) -> PatchRequest {
    let ops = req
        .ops
        .into_iter()
        .filter(|op| {
            let Some(path) = &op.path else {
                return true;
            };
            let Some(r) = ctx.resolve(&path.attr) else {
                return true;
            };
            let attr_ok = r.attr.is_none_or(|a| a.supported) && r.sub.is_none_or(|s| s.supported);
            let sub_ok = match (&path.sub, r.attr) {
                (Some(name), Some(a)) => a.sub(name).is_none_or(|s| s.supported),
                _ => true,
            };
            if !(attr_ok && sub_ok) {
                tracing::debug!(path = %path, "dropping PATCH operation on an unsupported attribute");
            }
            attr_ok && sub_ok
        })
        .collect();
    PatchRequest { ops }
}

/// Prefixes an error's detail with the index of the operation that caused it.
fn at_op(i: usize) -> impl Fn(ScimError) -> ScimError {
    move |mut e| {
        e.detail = format!("Operations[{i}]: {}", e.detail);
        e
    }
}

// ---------------------------------------------------------------------------------------
// Normalisation: raw JSON operation → resolved, coerced operations.
// ---------------------------------------------------------------------------------------

/// An operation resolved against the schema, ready to apply or to split.
struct Prepared<'s> {
    kind: PatchOpKind,
    target: Target<'s>,
    /// Coerced value; `None` for removes.
    value: Option<Value>,
}

impl Prepared<'_> {
    fn into_op(self) -> PatchOp {
        PatchOp {
            op: self.kind,
            path: Some(self.target.path()),
            value: self.value,
        }
    }
}

/// Where an operation lands: an attribute of a schema, optionally a value filter over its
/// elements and a sub-attribute.
struct Target<'s> {
    schema: &'s Schema,
    is_core: bool,
    /// The attribute; an open extension's key gets a synthesised string definition.
    attr: Cow<'s, AttributeDef>,
    /// Canonical name of the targeted sub-attribute (`givenName`, or `value` after a filter).
    sub: Option<String>,
    filter: Option<Filter>,
}

impl Target<'_> {
    fn sub_def(&self) -> Option<&AttributeDef> {
        self.sub.as_deref().and_then(|s| self.attr.sub(s))
    }

    /// A key of an open extension (no declared definition): its value is kept as sent.
    fn is_open_key(&self) -> bool {
        self.schema.open && self.schema.attribute(&self.attr.name).is_none()
    }

    /// The whole multi-valued attribute, no filter and no sub-attribute.
    fn is_whole_multi(&self) -> bool {
        self.attr.multi_valued && self.filter.is_none() && self.sub.is_none()
    }

    fn is_members(&self) -> bool {
        self.is_core && self.attr.multi_valued && self.attr.name == "members"
    }

    /// The canonical path: extension attributes carry their URN.
    fn path(&self) -> PatchPath {
        let urn = (!self.is_core).then(|| self.schema.id.clone());
        let (attr_sub, sub) = match self.filter {
            Some(_) => (None, self.sub.clone()),
            None => (self.sub.clone(), None),
        };
        PatchPath {
            attr: AttrPath {
                urn,
                name: self.attr.name.clone(),
                sub: attr_sub,
            },
            filter: self.filter.clone(),
            sub,
        }
    }

    fn text(&self) -> String {
        self.path().to_string()
    }

    fn resolved(&self) -> Resolved<'_> {
        Resolved {
            schema: self.schema,
            is_core: self.is_core,
            attr: None,
            sub: None,
        }
    }
}

/// One element of `Operations`: checks its shape and op, parses its path.
fn parse_raw_op<'s>(
    raw: &Value,
    ctx: &SchemaContext<'s>,
    out: &mut Vec<Prepared<'s>>,
) -> ScimResult<()> {
    let obj = raw.as_object().ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "an operation must be an object, got {}",
            json_kind(raw)
        ))
    })?;
    let kind = match get_ci(obj, "op") {
        Some(Value::String(s)) => PatchOpKind::parse(s).ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "unknown op '{s}' (expected add, remove or replace)"
            ))
        })?,
        Some(other) => {
            return Err(ScimError::invalid_syntax(format!(
                "'op' must be a string, got {}",
                json_kind(other)
            )));
        }
        None => return Err(ScimError::invalid_syntax("an operation needs an 'op'")),
    };
    if let Some(Value::String(s)) = get_ci(obj, "path")
        && let Some((urn, "")) = ctx.registry.match_urn(s.trim())
        && ctx.has_schema(urn)
    {
        return prepare_schema_op(kind, urn, get_ci(obj, "value").cloned(), ctx, out);
    }
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path_text(s, ctx)?),
        Some(other) => {
            return Err(ScimError::invalid_path(format!(
                "'path' must be a string, got {}",
                json_kind(other)
            )));
        }
    };
    let value = get_ci(obj, "value").cloned();
    prepare_op(kind, path.as_ref(), value, ctx, out)
}

/// An operation whose path is a whole extension schema (`urn:…:enterprise:2.0:User`): add
/// merges the object's attributes, replace first clears the schema's attributes, remove
/// clears them all. Expressed as per-attribute operations, like every other form.
fn prepare_schema_op<'s>(
    kind: PatchOpKind,
    urn: &str,
    value: Option<Value>,
    ctx: &SchemaContext<'s>,
    out: &mut Vec<Prepared<'s>>,
) -> ScimResult<()> {
    let schema = ctx
        .registry
        .schema(urn)
        .ok_or_else(|| ScimError::invalid_path(format!("path '{urn}' names no schema")))?;
    if matches!(kind, PatchOpKind::Remove | PatchOpKind::Replace) {
        for a in &schema.attributes {
            if a.mutability == Mutability::ReadOnly {
                continue;
            }
            let path = PatchPath {
                attr: AttrPath {
                    urn: Some(schema.id.clone()),
                    name: a.name.clone(),
                    sub: None,
                },
                filter: None,
                sub: None,
            };
            prepare_op(PatchOpKind::Remove, Some(&path), None, ctx, out)?;
        }
    }
    if kind == PatchOpKind::Remove {
        return Ok(());
    }
    let value = match value {
        // Clients copy the extension object from a resource, bookkeeping keys included.
        Some(Value::Object(mut m)) => {
            for k in ["schemas", "id", "meta"] {
                remove_ci(&mut m, k);
            }
            Value::Object(m)
        }
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "the value for path '{urn}' must be an object, got {}",
                json_kind(&other)
            )));
        }
        None => {
            return Err(ScimError::invalid_value(format!(
                "{} of '{urn}' needs a value",
                kind.as_str()
            )));
        }
    };
    let mut wrapped = Map::new();
    wrapped.insert(schema.id.clone(), value);
    prepare_op(
        PatchOpKind::Add,
        None,
        Some(Value::Object(wrapped)),
        ctx,
        out,
    )
}

/// [`parse_patch_path`], with the path quoted in the error so the client sees which one.
fn parse_path_text(s: &str, ctx: &SchemaContext) -> ScimResult<PatchPath> {
    parse_patch_path(s, Some(ctx.registry)).map_err(|mut e| {
        e.detail = format!("path '{s}': {}", e.detail);
        e
    })
}

/// Resolves one operation into zero or more prepared ones: a path-less add/replace becomes
/// one operation per key of its value, a remove with a value array one per listed element.
fn prepare_op<'s>(
    kind: PatchOpKind,
    path: Option<&PatchPath>,
    value: Option<Value>,
    ctx: &SchemaContext<'s>,
    out: &mut Vec<Prepared<'s>>,
) -> ScimResult<()> {
    let Some(path) = path else {
        if kind == PatchOpKind::Remove {
            return Err(ScimError::no_target("a remove operation needs a 'path'"));
        }
        return match value {
            Some(Value::Object(map)) => expand_object(kind, map, None, ctx, out),
            Some(other) => Err(ScimError::invalid_value(format!(
                "an {kind} without 'path' needs an object value, got {}",
                json_kind(&other)
            ))),
            None => Err(ScimError::invalid_value(format!(
                "an {kind} operation needs a 'value'"
            ))),
        };
    };
    let target = resolve_target(path, ctx)?;
    check_writable(&target)?;
    match kind {
        PatchOpKind::Remove => match value {
            Some(v) if !v.is_null() && target.is_whole_multi() => remove_listed(target, v, out),
            // a value on any other remove carries no meaning; RFC 7644 §3.5.2.2 has none
            _ => {
                out.push(Prepared {
                    kind,
                    target,
                    value: None,
                });
                Ok(())
            }
        },
        PatchOpKind::Add | PatchOpKind::Replace => {
            let v = value.ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "an {kind} of '{}' needs a 'value'",
                    target.text()
                ))
            })?;
            // `[null]` for a single value is null too, so test again after coercion
            let v = if v.is_null() {
                v
            } else {
                prepare_value(&target, v)?
            };
            if v.is_null() {
                // null is "unassigned" (RFC 7643 §2.5): adding no values changes nothing,
                // setting a value to null clears it
                if !(kind == PatchOpKind::Add && target.is_whole_multi()) {
                    out.push(Prepared {
                        kind: PatchOpKind::Remove,
                        target,
                        value: None,
                    });
                }
                return Ok(());
            }
            out.push(Prepared {
                kind,
                target,
                value: Some(v),
            });
            Ok(())
        }
    }
}

/// A path-less value: each key is a path (`displayName`, `name.givenName`,
/// `emails[type eq "work"].value`, `urn:…:User:employeeNumber`) or an extension URN whose
/// object value holds that extension's attributes. `schemas`, `id` and `meta` are ignored,
/// since clients echo them from a GET.
fn expand_object<'s>(
    kind: PatchOpKind,
    map: Map<String, Value>,
    urn: Option<&str>,
    ctx: &SchemaContext<'s>,
    out: &mut Vec<Prepared<'s>>,
) -> ScimResult<()> {
    for (key, v) in map {
        let key = match urn {
            Some(urn) => format!("{urn}:{key}"),
            None => {
                if ["schemas", "id", "meta"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&key))
                {
                    continue;
                }
                if let Some((schema_urn, "")) = ctx.registry.match_urn(&key) {
                    match v {
                        Value::Object(inner) => {
                            expand_object(kind, inner, Some(schema_urn), ctx, out)?
                        }
                        Value::Null => {}
                        other => {
                            return Err(ScimError::invalid_value(format!(
                                "'{schema_urn}' must be an object, got {}",
                                json_kind(&other)
                            )));
                        }
                    }
                    continue;
                }
                key
            }
        };
        let path = parse_path_text(&key, ctx)?;
        prepare_op(kind, Some(&path), Some(v), ctx, out)?;
    }
    Ok(())
}

/// Resolves a parsed path: attribute and sub-attribute must exist, a filter needs a
/// multi-valued attribute and may only test that attribute's sub-attributes.
fn resolve_target<'s>(path: &PatchPath, ctx: &SchemaContext<'s>) -> ScimResult<Target<'s>> {
    let unknown = || ScimError::invalid_path(format!("unknown attribute in path '{path}'"));
    let r = ctx.resolve(&path.attr).ok_or_else(unknown)?;
    let attr = match r.attr {
        Some(a) => Cow::Borrowed(a),
        None => Cow::Owned(AttributeDef::string(&path.attr.name)),
    };
    let sub = match (&path.attr.sub, &path.sub) {
        (Some(_), Some(_)) => return Err(unknown()),
        (Some(_), None) => Some(r.sub.ok_or_else(unknown)?.name.clone()),
        (None, Some(s)) => Some(attr.sub(s).ok_or_else(unknown)?.name.clone()),
        (None, None) => None,
    };
    if let Some(f) = &path.filter {
        if !attr.multi_valued {
            return Err(ScimError::invalid_path(format!(
                "'{}' is single-valued and cannot take a value filter: '{path}'",
                attr.name
            )));
        }
        check_filter_paths(f, &attr, path)?;
    }
    Ok(Target {
        schema: r.schema,
        is_core: r.is_core,
        attr,
        sub,
        filter: path.filter.clone(),
    })
}

/// Filter paths inside `attr[…]` are relative to one element: a sub-attribute of a complex
/// attribute, or `value` for a multi-valued attribute of simple values.
fn check_filter_paths(f: &Filter, attr: &AttributeDef, whole: &PatchPath) -> ScimResult<()> {
    let check = |p: &AttrPath| {
        let known = p.urn.is_none()
            && p.sub.is_none()
            && if attr.attr_type == AttrType::Complex {
                attr.sub(&p.name).is_some()
            } else {
                p.name.eq_ignore_ascii_case("value")
            };
        if known {
            Ok(())
        } else {
            Err(ScimError::invalid_path(format!(
                "'{p}' is not a sub-attribute of '{}' in path '{whole}'",
                attr.name
            )))
        }
    };
    match f {
        Filter::Compare { path, .. } | Filter::Present(path) => check(path),
        Filter::And(l, r) | Filter::Or(l, r) => {
            check_filter_paths(l, attr, whole)?;
            check_filter_paths(r, attr, whole)
        }
        Filter::Not(inner) => check_filter_paths(inner, attr, whole),
        Filter::ValuePath { .. } => Err(ScimError::invalid_path(format!(
            "value filters cannot be nested: '{whole}'"
        ))),
    }
}

/// RFC 7644 §3.5.2: readOnly attributes cannot be modified by any operation.
fn check_writable(t: &Target) -> ScimResult<()> {
    let read_only = t.attr.mutability == Mutability::ReadOnly
        || t.sub_def()
            .is_some_and(|s| s.mutability == Mutability::ReadOnly);
    if read_only {
        return Err(ScimError::mutability(format!("'{}' is readOnly", t.text())));
    }
    Ok(())
}

/// Coerces an add/replace value to the shape the target holds: a sub-attribute value, one
/// element (filtered target), or the whole attribute.
fn prepare_value(t: &Target, v: Value) -> ScimResult<Value> {
    if t.is_open_key() {
        // As in a POST body: the identity provider's admin chose the key and its type, and
        // the profile's script decides what to make of the value.
        return Ok(v);
    }
    let text = t.text();
    let v = match (t.sub_def(), &t.filter) {
        (Some(sub), _) => coerce(sub, v, &text)?,
        (None, Some(_)) => {
            let v = match v {
                Value::Array(mut items) if items.len() == 1 => items.remove(0),
                Value::Array(_) => {
                    return Err(ScimError::invalid_value(format!(
                        "'{text}' selects elements: give one element, not an array"
                    )));
                }
                other => other,
            };
            coerce_single(&t.attr, v, &text)?
        }
        (None, None) => coerce(&t.attr, v, &text)?,
    };
    Ok(match t.sub_def() {
        Some(sub) => clean(sub, v),
        None => clean(&t.attr, v),
    })
}

/// [`coerce_value`] after unwrapping a one-element array sent for a single-valued
/// attribute (Entra sends its manager as `[{"value": …}]`).
fn coerce(def: &AttributeDef, v: Value, path: &str) -> ScimResult<Value> {
    let v = match v {
        Value::Array(mut items) if !def.multi_valued && items.len() == 1 => items.remove(0),
        other => other,
    };
    coerce_value(def, v, path)
}

/// Drops null sub-attributes (`"$ref": null` from Entra) and readOnly sub-attributes (which
/// a client may echo but never sets), and elements left empty.
fn clean(def: &AttributeDef, v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|x| clean(def, x))
                .filter(|x| !is_unassigned(x))
                .collect(),
        ),
        Value::Object(map) if def.attr_type == AttrType::Complex => Value::Object(
            map.into_iter()
                .filter(|(k, x)| {
                    !x.is_null()
                        && def
                            .sub(k)
                            .is_none_or(|s| s.mutability != Mutability::ReadOnly)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Null, an empty array and an empty object are "unassigned" (RFC 7643 §2.5).
fn is_unassigned(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `remove` of a whole multi-valued attribute with a value: removes the listed elements,
/// each matched by its `value` (Entra's member removal without the aadOptscim062020 flag),
/// rewritten as `attr[value eq "…"]`.
fn remove_listed<'s>(target: Target<'s>, v: Value, out: &mut Vec<Prepared<'s>>) -> ScimResult<()> {
    let text = target.text();
    let items = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    let complex = target.attr.attr_type == AttrType::Complex;
    let value_def = if complex {
        target.attr.sub("value")
    } else {
        Some(&*target.attr)
    };
    for item in items {
        let key = match (&item, complex) {
            (Value::Object(o), true) => get_ci(o, "value").cloned(),
            (Value::Object(_) | Value::Array(_), _) => None,
            (scalar, _) => Some(scalar.clone()),
        };
        let key = match (key, value_def) {
            (Some(k), Some(def)) if !k.is_null() => coerce_single(def, k, &text).ok(),
            _ => None,
        };
        let Some(comp) = key.as_ref().and_then(comp_value) else {
            return Err(ScimError::invalid_value(format!(
                "a remove of '{text}' with a value lists the elements to remove by 'value'"
            )));
        };
        out.push(Prepared {
            kind: PatchOpKind::Remove,
            target: Target {
                schema: target.schema,
                is_core: target.is_core,
                attr: target.attr.clone(),
                sub: None,
                filter: Some(Filter::Compare {
                    path: AttrPath::new("value"),
                    op: CompareOp::Eq,
                    value: comp,
                }),
            },
            value: None,
        });
    }
    Ok(())
}

fn comp_value(v: &Value) -> Option<CompValue> {
    match v {
        Value::String(s) => Some(CompValue::Str(s.clone())),
        Value::Number(n) => Some(CompValue::Num(n.clone())),
        Value::Bool(b) => Some(CompValue::Bool(*b)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Application to a full resource.
// ---------------------------------------------------------------------------------------

fn apply_prepared(res: &mut Value, p: &Prepared, ctx: &SchemaContext) -> ScimResult<()> {
    let t = &p.target;
    let creating = p.kind != PatchOpKind::Remove;
    let resolved = t.resolved();
    if let Some(obj) = res.as_object_mut().filter(|_| !t.is_core) {
        // a null extension is an absent one (RFC 7643 §2.5)
        if key_ci(obj, &t.schema.id).is_some_and(|k| obj.get(&k).is_some_and(Value::is_null)) {
            remove_ci(obj, &t.schema.id);
        }
    }
    let Some(container) = container_mut(res, &resolved, creating) else {
        if creating {
            return Err(ScimError::internal(format!(
                "'{}' in the resource is not an object",
                t.schema.id
            )));
        }
        // the extension holds nothing, so there is nothing to remove
        return Ok(());
    };
    let name = t.attr.name.as_str();
    let current = remove_ci(container, name);
    let before = (t.attr.mutability == Mutability::Immutable)
        .then(|| current.clone())
        .flatten();
    let text = t.text();
    let new = if t.attr.multi_valued {
        apply_multi(t, p.kind, p.value.as_ref(), current, &text)?
    } else {
        apply_single(t, p.kind, p.value.as_ref(), current, &text)?
    };
    if let Some(before) = before.filter(|b| !is_unassigned(b))
        && new.as_ref() != Some(&before)
    {
        return Err(ScimError::mutability(format!(
            "'{}' is immutable and already set",
            t.attr.name
        )));
    }
    if let Some(v) = new.filter(|v| !is_unassigned(v)) {
        container.insert(name.to_string(), v);
    }
    if !t.is_core {
        sync_extension(res, t.schema, ctx);
    }
    Ok(())
}

/// Keeps `schemas` in step with the extension objects: an extension with attributes is
/// listed, an empty one is dropped with its URN.
fn sync_extension(res: &mut Value, schema: &Schema, ctx: &SchemaContext) {
    let Some(obj) = res.as_object_mut() else {
        return;
    };
    let Some(key) = key_ci(obj, &schema.id) else {
        return;
    };
    let empty = match obj.get(&key) {
        Some(Value::Object(m)) => m.is_empty(),
        _ => return,
    };
    let urn = schema.id.as_str();
    if empty {
        obj.remove(&key);
        if let Some(Value::Array(list)) = get_ci_mut(obj, "schemas") {
            list.retain(|u| !u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)));
        }
        return;
    }
    match get_ci_mut(obj, "schemas") {
        Some(Value::Array(list)) => {
            if !list
                .iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)))
            {
                list.push(Value::String(urn.to_string()));
            }
        }
        Some(_) => {}
        None => {
            obj.insert(
                "schemas".into(),
                Value::Array(vec![
                    Value::String(ctx.rt.schema.clone()),
                    Value::String(urn.to_string()),
                ]),
            );
        }
    }
}

/// The value of a required or immutable attribute cannot be removed (RFC 7644 §3.5.2.2).
fn check_unassign(def: &AttributeDef, text: &str) -> ScimResult<()> {
    if def.required {
        return Err(ScimError::mutability(format!(
            "'{text}' is required and cannot be removed"
        )));
    }
    if def.mutability == Mutability::Immutable {
        return Err(ScimError::mutability(format!(
            "'{text}' is immutable and cannot be removed"
        )));
    }
    Ok(())
}

fn need_value<'v>(
    value: Option<&'v Value>,
    kind: PatchOpKind,
    text: &str,
) -> ScimResult<&'v Value> {
    value.ok_or_else(|| ScimError::invalid_value(format!("an {kind} of '{text}' needs a 'value'")))
}

/// A single-valued attribute: set, merge (complex), or remove it or one sub-attribute.
fn apply_single(
    t: &Target,
    kind: PatchOpKind,
    value: Option<&Value>,
    current: Option<Value>,
    text: &str,
) -> ScimResult<Option<Value>> {
    let complex = t.attr.attr_type == AttrType::Complex;
    match (kind, &t.sub) {
        (PatchOpKind::Remove, None) => {
            if current.as_ref().is_some_and(|c| !is_unassigned(c)) {
                check_unassign(&t.attr, text)?;
            }
            Ok(None)
        }
        (PatchOpKind::Remove, Some(sub)) => {
            let Some(Value::Object(mut m)) = current else {
                return Ok(current);
            };
            if remove_ci(&mut m, sub).is_some_and(|old| !is_unassigned(&old)) {
                if let Some(def) = t.sub_def() {
                    check_unassign(def, text)?;
                }
                if m.is_empty() {
                    check_unassign(&t.attr, text)?;
                }
            }
            Ok(Some(Value::Object(m)))
        }
        (_, None) if complex => {
            let Value::Object(new) = need_value(value, kind, text)? else {
                return Err(ScimError::invalid_value(format!(
                    "'{text}' must be an object"
                )));
            };
            // RFC 7644 §3.5.2.1/3: sub-attributes given replace, the others stay
            let mut m = into_object(current);
            for (k, v) in new {
                set_sub(&t.attr, &mut m, k, v.clone())?;
            }
            Ok(Some(Value::Object(m)))
        }
        (_, None) => Ok(Some(need_value(value, kind, text)?.clone())),
        (_, Some(sub)) => {
            let mut m = into_object(current);
            set_sub(&t.attr, &mut m, sub, need_value(value, kind, text)?.clone())?;
            Ok(Some(Value::Object(m)))
        }
    }
}

/// The object in `v`, or a fresh one when absent or not an object.
fn into_object(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Sets sub-attribute `key` of a complex value, in the schema's spelling; an immutable
/// sub-attribute already set to something else is refused.
fn set_sub(def: &AttributeDef, m: &mut Map<String, Value>, key: &str, v: Value) -> ScimResult<()> {
    let sub = def.sub(key);
    if let Some(sub) = sub.filter(|s| s.mutability == Mutability::Immutable)
        && let Some(old) = get_ci(m, key).filter(|o| !o.is_null())
        && !values_equal(Some(sub), old, &v)
    {
        return Err(ScimError::mutability(format!(
            "'{}.{}' is immutable and already set",
            def.name, sub.name
        )));
    }
    insert_ci(m, sub.map_or(key, |s| s.name.as_str()), v);
    Ok(())
}

/// Equality as the attribute compares: strings ignore case unless `caseExact`.
fn values_equal(def: Option<&AttributeDef>, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !def.is_some_and(|d| d.case_exact) => {
            x.eq_ignore_ascii_case(y)
        }
        _ => a == b,
    }
}

/// A multi-valued attribute: append/merge, replace all, or act on the elements a filter
/// selects (all elements when only a sub-attribute is named).
fn apply_multi(
    t: &Target,
    kind: PatchOpKind,
    value: Option<&Value>,
    current: Option<Value>,
    text: &str,
) -> ScimResult<Option<Value>> {
    let mut items = match current {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => vec![other],
    };
    let had = !items.is_empty();
    let written = match (kind, t.filter.is_some() || t.sub.is_some()) {
        (PatchOpKind::Remove, false) => {
            if had {
                check_unassign(&t.attr, text)?;
            }
            return Ok(None);
        }
        (PatchOpKind::Add, false) => {
            let new = match need_value(value, kind, text)? {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            add_elements(&t.attr, &mut items, new)?
        }
        (PatchOpKind::Replace, false) => {
            let new = match need_value(value, kind, text)? {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            // built like an add onto nothing, so repeated values collapse
            items = Vec::with_capacity(new.len());
            add_elements(&t.attr, &mut items, new)?
        }
        (_, true) => apply_selected(t, kind, value, &mut items, text)?,
    };
    normalise_primary(&t.attr, &mut items, &written);
    if items.is_empty() {
        if had {
            check_unassign(&t.attr, text)?;
        }
        return Ok(None);
    }
    Ok(Some(Value::Array(items)))
}

/// Appends elements, merging one whose `value` equals an existing element's into it, so a
/// repeated add never duplicates. Returns the indices written.
fn add_elements(
    attr: &AttributeDef,
    items: &mut Vec<Value>,
    new: Vec<Value>,
) -> ScimResult<Vec<usize>> {
    let key = ElementKey::of(attr);
    // a few new elements: scan; many: one pass to index the existing ones
    let mut index: Option<HashMap<String, usize>> = (new.len() > 4).then(|| {
        let mut m = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(k) = key.hash_key(item) {
                m.entry(k).or_insert(i);
            }
        }
        m
    });
    let mut written = Vec::with_capacity(new.len());
    for n in new {
        if is_unassigned(&n) {
            continue;
        }
        let hashed = index.as_ref().and(key.hash_key(&n));
        let found = match (&index, &hashed) {
            (Some(index), Some(k)) => index.get(k).copied(),
            _ => items.iter().position(|x| key.same(x, &n)),
        };
        match found {
            Some(i) => {
                if let (Value::Object(src), Some(Value::Object(dst))) = (n, items.get_mut(i)) {
                    // `value` matched already; the stored spelling stays
                    for (k, v) in src.into_iter().filter(|(k, _)| k != "value") {
                        set_sub(attr, dst, &k, v)?;
                    }
                }
                written.push(i);
            }
            None => {
                if let (Some(index), Some(k)) = (index.as_mut(), hashed) {
                    index.insert(k, items.len());
                }
                written.push(items.len());
                items.push(n);
            }
        }
    }
    Ok(written)
}

/// How elements of a multi-valued attribute are identified when adding: by their `value`
/// sub-attribute (complex) or themselves (simple), compared as the schema says; an element
/// without a `value` only equals an identical one.
struct ElementKey<'a> {
    complex: bool,
    def: Option<&'a AttributeDef>,
}

impl<'a> ElementKey<'a> {
    fn of(attr: &'a AttributeDef) -> Self {
        let complex = attr.attr_type == AttrType::Complex;
        ElementKey {
            complex,
            def: if complex {
                attr.sub("value")
            } else {
                Some(attr)
            },
        }
    }

    fn key<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        let k = if self.complex {
            v.as_object().and_then(|o| get_ci(o, "value"))?
        } else {
            v
        };
        (!k.is_null()).then_some(k)
    }

    fn same(&self, a: &Value, b: &Value) -> bool {
        match (self.key(a), self.key(b)) {
            (Some(x), Some(y)) => values_equal(self.def, x, y),
            _ => a == b,
        }
    }

    /// A string that equal keys share (the hashing form of [`ElementKey::same`]).
    fn hash_key(&self, v: &Value) -> Option<String> {
        match self.key(v)? {
            Value::String(s) if self.def.is_some_and(|d| d.case_exact) => Some(format!("s{s}")),
            Value::String(s) => Some(format!("s{}", s.to_ascii_lowercase())),
            Value::Number(n) => Some(format!("n{n}")),
            Value::Bool(b) => Some(format!("b{b}")),
            _ => None,
        }
    }
}

/// Add, replace or remove on the elements a filter selects (every element when the path
/// names only a sub-attribute). A write that selects nothing adds a new element seeded from
/// the filter's `eq` clauses (Entra's `emails[type eq "work"].value` on a user without a
/// work email). Returns the indices written.
fn apply_selected(
    t: &Target,
    kind: PatchOpKind,
    value: Option<&Value>,
    items: &mut Vec<Value>,
    text: &str,
) -> ScimResult<Vec<usize>> {
    let selected: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            t.filter
                .as_ref()
                .is_none_or(|f| matches_element(f, e, &t.attr))
        })
        .map(|(i, _)| i)
        .collect();
    if kind == PatchOpKind::Remove {
        remove_selected(t, items, &selected, text)?;
        return Ok(Vec::new());
    }
    let v = need_value(value, kind, text)?;
    if selected.is_empty() {
        let element = new_element(t, v.clone(), text)?;
        items.push(element);
        return Ok(vec![items.len() - 1]);
    }
    for &i in &selected {
        let Some(elem) = items.get_mut(i) else {
            continue;
        };
        match (&t.sub, elem) {
            (Some(sub), Value::Object(m)) => set_sub(&t.attr, m, sub, v.clone())?,
            (Some(sub), other) => {
                let mut m = Map::new();
                set_sub(&t.attr, &mut m, sub, v.clone())?;
                *other = Value::Object(m);
            }
            (None, elem) => write_element(&t.attr, kind, elem, v.clone())?,
        }
    }
    Ok(selected)
}

/// Removes the selected elements, or the sub-attribute of each; elements left empty go.
fn remove_selected(
    t: &Target,
    items: &mut Vec<Value>,
    selected: &[usize],
    text: &str,
) -> ScimResult<()> {
    if selected.is_empty() {
        return Ok(());
    }
    if let Some(sub) = &t.sub {
        for &i in selected {
            if let Some(Value::Object(m)) = items.get_mut(i)
                && remove_ci(m, sub).is_some_and(|old| !is_unassigned(&old))
                && let Some(def) = t.sub_def()
            {
                check_unassign(def, text)?;
            }
        }
    }
    let mut idx = 0;
    items.retain(|item| {
        let hit = selected.binary_search(&idx).is_ok();
        idx += 1;
        !(hit && (t.sub.is_none() || is_unassigned(item)))
    });
    Ok(())
}

/// Writes a whole element selected by a filter: add merges into it, replace swaps it for
/// the new one while immutable sub-attributes (a member's `value`) keep their values.
fn write_element(
    attr: &AttributeDef,
    kind: PatchOpKind,
    elem: &mut Value,
    v: Value,
) -> ScimResult<()> {
    let (Value::Object(old), Value::Object(new)) = (&mut *elem, &v) else {
        *elem = v;
        return Ok(());
    };
    let mut base = match kind {
        PatchOpKind::Add => old.clone(),
        _ => {
            let mut kept = Map::new();
            for sub in attr
                .sub_attributes
                .iter()
                .filter(|s| s.mutability == Mutability::Immutable)
            {
                if let Some(x) = get_ci(old, &sub.name) {
                    kept.insert(sub.name.clone(), x.clone());
                }
            }
            kept
        }
    };
    for (k, x) in new {
        set_sub(attr, &mut base, k, x.clone())?;
    }
    *elem = Value::Object(base);
    Ok(())
}

/// The element a filtered write adds when nothing matched: the filter's `eq` clauses (all
/// of them must be `sub eq value`, else 400 noTarget) plus the written value.
fn new_element(t: &Target, v: Value, text: &str) -> ScimResult<Value> {
    if t.attr.attr_type != AttrType::Complex {
        return Ok(v);
    }
    let mut m = Map::new();
    if let Some(f) = &t.filter {
        for clause in f.conjuncts() {
            let seed = match clause {
                Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value,
                } => t
                    .attr
                    .sub(&path.name)
                    .zip(comp_to_json(value))
                    .and_then(|(def, x)| Some((def, coerce_value(def, x, text).ok()?))),
                _ => None,
            };
            let Some((def, x)) = seed else {
                return Err(ScimError::no_target(format!(
                    "no value matches '{text}' and its filter cannot describe a new one"
                )));
            };
            m.insert(def.name.clone(), x);
        }
    }
    match (&t.sub, v) {
        (Some(sub), v) => set_sub(&t.attr, &mut m, sub, v)?,
        (None, Value::Object(new)) => {
            for (k, x) in new {
                insert_ci(&mut m, &k, x);
            }
        }
        (None, other) => {
            return Err(ScimError::invalid_value(format!(
                "'{text}' needs an object, got {}",
                json_kind(&other)
            )));
        }
    }
    Ok(Value::Object(m))
}

fn comp_to_json(v: &CompValue) -> Option<Value> {
    match v {
        CompValue::Str(s) => Some(Value::String(s.clone())),
        CompValue::Num(n) => Some(Value::Number(n.clone())),
        CompValue::Bool(b) => Some(Value::Bool(*b)),
        CompValue::Null => None,
    }
}

/// RFC 7643 §2.4: `primary: true` appears at most once. The element this operation marked
/// primary last keeps it; the flag is removed from the others.
fn normalise_primary(attr: &AttributeDef, items: &mut [Value], written: &[usize]) {
    if !attr
        .sub("primary")
        .is_some_and(|p| p.attr_type == AttrType::Boolean)
    {
        return;
    }
    let is_primary = |v: &Value| {
        v.as_object()
            .and_then(|o| get_ci(o, "primary"))
            .is_some_and(|p| p == &Value::Bool(true))
    };
    let Some(keep) = written
        .iter()
        .rev()
        .copied()
        .find(|&i| items.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, item) in items.iter_mut().enumerate() {
        if i != keep
            && is_primary(item)
            && let Value::Object(m) = item
        {
            remove_ci(m, "primary");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Member delta.
// ---------------------------------------------------------------------------------------

/// The net effect of member operations so far, keyed by member id.
#[derive(Default)]
struct MemberAcc {
    reset: bool,
    /// id → (order of last change, the member if added / `None` if removed).
    entries: HashMap<String, (usize, Option<Member>)>,
    seq: usize,
}

impl MemberAcc {
    fn apply(&mut self, p: Prepared) -> ScimResult<()> {
        let text = p.target.text();
        let t = &p.target;
        match (p.kind, &t.filter, &t.sub) {
            (PatchOpKind::Add, None, None) => {
                for m in members_of(p.value.as_ref(), &text)? {
                    self.add(m);
                }
            }
            (PatchOpKind::Replace, None, None) => {
                let members = members_of(p.value.as_ref(), &text)?;
                self.clear();
                for m in members {
                    self.add(m);
                }
            }
            (PatchOpKind::Remove, None, None) => self.clear(),
            (PatchOpKind::Remove, Some(f), None) => {
                for id in filter_ids(f)? {
                    self.remove(id);
                }
            }
            (_, Some(f), sub) if p.kind != PatchOpKind::Remove => {
                let ids = filter_ids(f)?;
                let [id] = ids.as_slice() else {
                    return Err(ScimError::invalid_filter(format!(
                        "'{text}' must select exactly one member to write"
                    )));
                };
                let member = member_update(id, sub.as_deref(), p.value.as_ref(), &text)?;
                self.add(member);
            }
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "'{text}' cannot be applied without loading every member; name members \
                     by id (members[value eq \"…\"]) and write whole members"
                )));
            }
        }
        Ok(())
    }

    fn next(&mut self) -> usize {
        self.seq += 1;
        self.seq
    }

    fn clear(&mut self) {
        self.reset = true;
        self.entries.clear();
    }

    fn add(&mut self, m: Member) {
        let seq = self.next();
        match self.entries.get_mut(&m.value) {
            Some((_, Some(existing))) => {
                if m.display.is_some() {
                    existing.display = m.display;
                }
                if m.kind.is_some() {
                    existing.kind = m.kind;
                }
            }
            _ => {
                self.entries.insert(m.value.clone(), (seq, Some(m)));
            }
        }
    }

    fn remove(&mut self, id: String) {
        if self.reset {
            self.entries.remove(&id);
        } else {
            let seq = self.next();
            self.entries.insert(id, (seq, None));
        }
    }

    fn finish(self) -> MemberDelta {
        let mut entries: Vec<(usize, String, Option<Member>)> = self
            .entries
            .into_iter()
            .map(|(id, (seq, m))| (seq, id, m))
            .collect();
        entries.sort_unstable_by_key(|e| e.0);
        let mut delta = MemberDelta::default();
        for (_, id, m) in entries {
            match m {
                Some(m) => delta.add.push(m),
                None => delta.remove.push(id),
            }
        }
        if self.reset {
            delta.reset = Some(std::mem::take(&mut delta.add));
        }
        delta
    }
}

/// The members of an add/replace value (coerced to an array of objects by parsing).
fn members_of(value: Option<&Value>, text: &str) -> ScimResult<Vec<Member>> {
    let items = match value {
        Some(Value::Array(items)) => items.as_slice(),
        Some(other) => std::slice::from_ref(other),
        None => &[],
    };
    items
        .iter()
        .map(|item| {
            let o = item.as_object();
            let field = |k: &str| {
                o.and_then(|o| get_ci(o, k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            Ok(Member {
                value: field("value").ok_or_else(|| {
                    ScimError::invalid_value(format!("each member in '{text}' needs a 'value'"))
                })?,
                display: field("display"),
                kind: field("type"),
            })
        })
        .collect()
}

/// A write to one member named by a filter: the whole member or its `display`/`type`
/// (`$ref` follows from the id). A member's id cannot change (`value` is immutable).
fn member_update(
    id: &str,
    sub: Option<&str>,
    value: Option<&Value>,
    text: &str,
) -> ScimResult<Member> {
    let as_string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let field = |k: &str| as_string(value.and_then(Value::as_object).and_then(|o| get_ci(o, k)));
    let (given_id, display, kind) = match sub {
        None => (field("value"), field("display"), field("type")),
        Some("display") => (None, as_string(value), None),
        Some("type") => (None, None, as_string(value)),
        Some("value") => (as_string(value), None, None),
        Some(_) => (None, None, None),
    };
    if given_id.is_some_and(|g| !g.eq_ignore_ascii_case(id)) {
        return Err(ScimError::mutability(format!(
            "'{text}': a member's value is immutable"
        )));
    }
    Ok(Member {
        value: id.to_string(),
        display,
        kind,
    })
}

/// The ids a member filter selects: `value eq "id"`, possibly joined by `or`.
fn filter_ids(f: &Filter) -> ScimResult<Vec<String>> {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::Str(id),
        } if path.urn.is_none()
            && path.sub.is_none()
            && path.name.eq_ignore_ascii_case("value") =>
        {
            Ok(vec![id.clone()])
        }
        Filter::Or(l, r) => {
            let mut ids = filter_ids(l)?;
            ids.extend(filter_ids(r)?);
            Ok(ids)
        }
        _ => Err(ScimError::invalid_filter(format!(
            "member filters must select members by id (value eq \"…\", optionally joined \
             by or), got '{f}'"
        ))),
    }
}

#[cfg(test)]
mod tests;
