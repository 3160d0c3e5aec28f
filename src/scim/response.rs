//! A resource's response body, its `meta` and its version, written in one pass.
//!
//! The response path hashed the resource's JSON for its ETag (each member's text written
//! once for the hash), built `meta` as a map, applied the default projection, then wrote the
//! body: every member's text written twice and `meta` built only to be written and dropped.
//! For a response naming no `attributes` / `excludedAttributes` (what Entra asks for),
//! [`write_resource`] writes the body once, hashes each member's text where it lies in the
//! body, and patches `meta.version` in after the last member (the version has a fixed
//! length). Body and version are those of the path it replaces, which stays for responses
//! that name attributes (a test compares the two over generated resources).

use super::meta::Fnv64;
use super::path::AttrPath;
use super::resource::{HiddenByDefault, named, shown_in_default};
use super::schema::SchemaContext;
use crate::json::{write_str, write_value};
use serde_json::Value;

/// What a response carries beside its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The weak ETag of the whole resource (`meta.version`).
    pub etag: String,
    /// `meta.location`.
    pub location: String,
}

/// How much of a member a response naming no attributes shows.
enum Shown<D> {
    All,
    Nothing,
    /// An extension's object with some of its attributes left out.
    Part(D),
}

/// A JSON document a response is written from: a `serde_json::Value`, or a mapping's answer
/// read where the compiled mapping holds it (no `Value` built for it).
pub trait Doc<'d>: Copy + 'd {
    type Members: Iterator<Item = (&'d str, Self)>;
    /// An object's members in key order (byte order, as a serialised map has them); `None`
    /// for anything else.
    fn members(self) -> Option<Self::Members>;
    /// An object's member `key`.
    fn get(self, key: &str) -> Option<Self>;
    fn as_str(self) -> Option<&'d str>;
    fn as_i64(self) -> Option<i64>;
    /// Appends the value as compact JSON, as `crate::json::write_value` writes it.
    fn write(self, out: &mut Vec<u8>);
    /// The value as a `Value` (of a mapping's answer: what the call would have returned).
    fn to_json(self) -> Value;
    /// Whether it is an object with a member.
    fn is_filled_object(self) -> bool {
        self.members().is_some_and(|mut m| m.next().is_some())
    }
}

type ValueMembers<'d> =
    std::iter::Map<serde_json::map::Iter<'d>, fn((&'d String, &'d Value)) -> (&'d str, &'d Value)>;

impl<'d> Doc<'d> for &'d Value {
    type Members = ValueMembers<'d>;
    fn members(self) -> Option<ValueMembers<'d>> {
        let member: fn((&'d String, &'d Value)) -> (&'d str, &'d Value) = |(k, v)| (k, v);
        self.as_object().map(|o| o.iter().map(member))
    }
    fn get(self, key: &str) -> Option<Self> {
        Value::get(self, key)
    }
    fn as_str(self) -> Option<&'d str> {
        Value::as_str(self)
    }
    fn as_i64(self) -> Option<i64> {
        Value::as_i64(self)
    }
    fn write(self, out: &mut Vec<u8>) {
        write_value(out, self);
    }
    fn to_json(self) -> Value {
        self.clone()
    }
}

/// What the gateway sets on a resource beside `meta`, where the document has something else
/// (a mapping's answer before it is made a resource): `id` as text, and `schemas`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finish<'f> {
    pub id: Option<&'f str>,
    pub schemas: Option<&'f [&'f str]>,
}

/// Why a mapping's answer is not a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResource {
    NotObject,
    NoId,
}

/// A mapping's answer made a resource: `id` as text (a number written out; a missing or
/// empty one is refused), `schemas` the core schema and each extension the answer holds as
/// a non-empty object (under the schema's own spelling).
pub fn finish_value(ctx: &SchemaContext<'_>, r: &mut Value) -> Result<(), NotResource> {
    let Some(obj) = r.as_object_mut() else {
        return Err(NotResource::NotObject);
    };
    match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::Number(n)) => {
            let s = n.to_string();
            obj.insert("id".into(), Value::String(s));
        }
        _ => return Err(NotResource::NoId),
    }
    let schemas = schemas_of(ctx, |urn| {
        obj.get(urn).is_some_and(|v| v.is_filled_object())
    });
    obj.insert(
        "schemas".into(),
        Value::Array(schemas.into_iter().map(Value::from).collect()),
    );
    Ok(())
}

/// [`finish_value`] for an answer read where it lies: its `id` as text and its `schemas`,
/// for [`write_doc`]'s [`Finish`]. `None` where the answer takes `finish_value`'s path: not
/// an object, or an id that is neither a non-empty string nor an integer (a float's text
/// is serde_json's, an error is `finish_value`'s).
pub fn finish_doc<'d, 'c, D: Doc<'d>>(
    ctx: &'c SchemaContext<'_>,
    doc: D,
) -> Option<(std::borrow::Cow<'d, str>, Vec<&'c str>)> {
    // An object (whose members are not needed here).
    doc.members().map(drop)?;
    let given = doc.get("id")?;
    let id = match (given.as_str(), given.as_i64()) {
        (Some(s), _) if !s.is_empty() => std::borrow::Cow::Borrowed(s),
        (None, Some(i)) => std::borrow::Cow::Owned(i.to_string()),
        _ => return None,
    };
    let schemas = schemas_of(ctx, |urn| doc.get(urn).is_some_and(D::is_filled_object));
    Some((id, schemas))
}

/// The core schema and each extension `filled` says the resource holds.
fn schemas_of<'c>(ctx: &'c SchemaContext<'_>, filled: impl Fn(&str) -> bool) -> Vec<&'c str> {
    let mut schemas = vec![ctx.rt.schema.as_str()];
    for ext in &ctx.rt.extensions {
        if filled(&ext.schema) {
            schemas.push(&ext.schema);
        }
    }
    schemas
}

/// A member the gateway writes in place of the document's.
#[derive(Clone, Copy)]
enum Own<'f> {
    Id(&'f str),
    Meta,
    Schemas(&'f [&'f str]),
}

/// Appends the body of a response naming no attributes for `resource`: the resource with the
/// gateway's `meta` (`resourceType`, `location`, `created` / `lastModified` as the script
/// gave them in `meta`, `version`) and without what is not returned by default. The version
/// is [`super::meta::etag`] of the resource as given. `None`, with nothing written, for a
/// resource that is not an object (the caller takes the general path).
pub fn write_resource(
    out: &mut Vec<u8>,
    resource: &Value,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
    base_url: &str,
) -> Option<Written> {
    write_doc(out, resource, Finish::default(), ctx, hidden, base_url)
}

/// [`write_resource`] for any [`Doc`], with `finish`'s `id` and `schemas` in place of the
/// document's (hashed for the version as the members of the resource they make).
pub fn write_doc<'d, D: Doc<'d>>(
    out: &mut Vec<u8>,
    doc: D,
    finish: Finish<'_>,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
    base_url: &str,
) -> Option<Written> {
    let members = doc.members()?;
    let meta = doc.get("meta");
    let stamp = |k: &str| meta.and_then(|m| m.get(k)).and_then(D::as_str);
    let (created, modified) = (stamp("created"), stamp("lastModified"));
    let id = match finish.id {
        Some(id) => id,
        None => doc.get("id").and_then(D::as_str).unwrap_or_default(),
    };
    // Built by hand: `format!` costs more than the rest of the meta (callgrind).
    let mut location = String::with_capacity(base_url.len() + ctx.rt.endpoint.len() + id.len() + 1);
    location.push_str(base_url);
    location.push_str(&ctx.rt.endpoint);
    location.push('/');
    location.push_str(id);
    // The gateway's members, in key order.
    let own = [
        finish.id.map(|id| ("id", Own::Id(id))),
        Some(("meta", Own::Meta)),
        finish.schemas.map(|s| ("schemas", Own::Schemas(s))),
    ];
    let mut own = own.into_iter().flatten().peekable();
    let mut w = Writer {
        out,
        hash: Fnv64::default(),
        first: true,
        version_at: None,
    };
    // The text of what the body leaves out, for the hash (rare: most members are shown).
    let mut scratch = Vec::new();
    let mut path = AttrPath::new(String::new());
    w.out.push(b'{');
    for (key, value) in members {
        let mut replaced = false;
        while let Some((name, what)) = own.next_if(|(name, _)| *name <= key) {
            replaced |= name == key;
            w.own(name, what, &ctx.rt.name, created, modified, &location);
        }
        if replaced || key == "meta" {
            continue;
        }
        w.hash.feed(key.as_bytes());
        w.hash.feed(&[0]);
        match shown(key, value, ctx, hidden, &mut path) {
            Shown::All => {
                w.open(key);
                let start = w.out.len();
                value.write(w.out);
                w.hash.feed(w.out.get(start..).unwrap_or_default());
            }
            Shown::Nothing => {
                scratch.clear();
                value.write(&mut scratch);
                w.hash.feed(&scratch);
            }
            Shown::Part(ext) => {
                scratch.clear();
                value.write(&mut scratch);
                w.hash.feed(&scratch);
                w.open(key);
                write_part(w.out, key, ext, ctx, hidden, &mut path);
            }
        }
        w.hash.feed(&[1]);
    }
    for (name, what) in own {
        w.own(name, what, &ctx.rt.name, created, modified, &location);
    }
    w.out.push(b'}');
    let digits = hex16(w.hash.finish());
    if let Some(slot) = w
        .version_at
        .and_then(|at| w.out.get_mut(at..at + digits.len()))
    {
        slot.copy_from_slice(&digits);
    }
    let mut etag = String::with_capacity(20);
    etag.push_str("W/\"");
    etag.extend(digits.iter().map(|&d| char::from(d)));
    etag.push('"');
    Some(Written { etag, location })
}

/// The body being written and the version's hash.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    hash: Fnv64,
    first: bool,
    /// Where `meta.version`'s digits go.
    version_at: Option<usize>,
}

impl Writer<'_> {
    /// `,"key":` (no comma before the first member).
    fn open(&mut self, key: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        write_str(self.out, key);
        self.out.push(b':');
    }

    /// One of the gateway's members; `id` and `schemas` count in the version, `meta` not.
    fn own(
        &mut self,
        name: &str,
        what: Own<'_>,
        resource_type: &str,
        created: Option<&str>,
        modified: Option<&str>,
        location: &str,
    ) {
        self.open(name);
        let start = self.out.len();
        match what {
            Own::Meta => {
                self.version_at = Some(write_meta(
                    self.out,
                    resource_type,
                    created,
                    modified.or(created),
                    location,
                ));
                return;
            }
            Own::Id(id) => write_str(self.out, id),
            Own::Schemas(schemas) => {
                self.out.push(b'[');
                for (i, s) in schemas.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    write_str(self.out, s);
                }
                self.out.push(b']');
            }
        }
        self.hash.feed(name.as_bytes());
        self.hash.feed(&[0]);
        self.hash.feed(self.out.get(start..).unwrap_or_default());
        self.hash.feed(&[1]);
    }
}

/// `n` as sixteen lower-case hex digits (`{:016x}`).
fn hex16(n: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, d) in out.iter_mut().enumerate() {
        *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// The gateway's `meta` object, its keys in order, with sixteen zeros for the version's
/// digits; returns where they are.
fn write_meta(
    out: &mut Vec<u8>,
    resource_type: &str,
    created: Option<&str>,
    last_modified: Option<&str>,
    location: &str,
) -> usize {
    out.push(b'{');
    if let Some(c) = created {
        out.extend_from_slice(b"\"created\":");
        write_str(out, c);
        out.push(b',');
    }
    if let Some(m) = last_modified {
        out.extend_from_slice(b"\"lastModified\":");
        write_str(out, m);
        out.push(b',');
    }
    out.extend_from_slice(b"\"location\":");
    write_str(out, location);
    out.extend_from_slice(b",\"resourceType\":");
    write_str(out, resource_type);
    out.extend_from_slice(b",\"version\":\"W/\\\"");
    let at = out.len();
    out.extend_from_slice(b"0000000000000000");
    out.extend_from_slice(b"\\\"\"}");
    at
}

/// What of a top-level member a response naming no attributes shows, as
/// [`super::resource::project_owned_with`] decides it: `schemas` always; an extension's
/// object without what it hides (nothing when nothing is left or it is not an object);
/// anything else by its attribute.
fn shown<'d, D: Doc<'d>>(
    key: &str,
    value: D,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
    path: &mut AttrPath,
) -> Shown<D> {
    if key == "schemas" {
        return Shown::All;
    }
    if let Some((urn, "")) = ctx.registry.match_urn(key) {
        let Some(members) = value.members() else {
            return Shown::Nothing;
        };
        path.urn = Some(urn.to_string());
        let (mut all, mut kept) = (0, 0);
        for (k, _) in members {
            all += 1;
            kept += usize::from(shown_in_default(named(path, k), ctx, hidden));
        }
        path.urn = None;
        return match kept {
            0 => Shown::Nothing,
            n if n == all => Shown::All,
            _ => Shown::Part(value),
        };
    }
    if shown_in_default(named(path, key), ctx, hidden) {
        Shown::All
    } else {
        Shown::Nothing
    }
}

/// An extension's object with only what a response naming no attributes shows.
fn write_part<'d, D: Doc<'d>>(
    out: &mut Vec<u8>,
    urn_key: &str,
    ext: D,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
    path: &mut AttrPath,
) {
    let urn = ctx
        .registry
        .match_urn(urn_key)
        .map(|(urn, _)| urn.to_string());
    let mut first = true;
    out.push(b'{');
    path.urn = urn;
    for (k, v) in ext.members().into_iter().flatten() {
        if shown_in_default(named(path, k), ctx, hidden) {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            v.write(out);
        }
    }
    path.urn = None;
    out.push(b'}');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scim::meta::set_meta;
    use crate::scim::resource::project_owned_with;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, SchemaRegistry, USER_SCHEMA};
    use proptest::prelude::*;
    use serde_json::Map;
    use serde_json::json;

    pub(crate) const BASE: &str = "https://gw.example/scim/v2";

    /// The path this one replaces: the version of the resource as given, `meta` set on it,
    /// the default projection, the body written.
    fn general(
        resource: &Value,
        ctx: &SchemaContext<'_>,
        hidden: Option<&HiddenByDefault>,
        base: &str,
    ) -> (Vec<u8>, Written) {
        let mut r = resource.clone();
        let stamp = |k: &str| {
            resource
                .get("meta")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
        };
        let etag = set_meta(
            &mut r,
            ctx.rt,
            base,
            stamp("created"),
            stamp("lastModified"),
        );
        let location = r
            .pointer("/meta/location")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let shown = project_owned_with(r, ctx, hidden, &[], &[]);
        (crate::json::to_vec(&shown), Written { etag, location })
    }

    /// The core registry and one whose profile hides more (in the core schema and in an
    /// extension).
    fn registries() -> Vec<SchemaRegistry> {
        vec![
            SchemaRegistry::core(),
            crate::scim::resource::write_tests::tuned(),
        ]
    }

    /// A base URL that JSON escapes (as a forwarded base may be).
    const ODD_BASE: &str = "https://gw.example/é\"\\/scim";

    /// `resource` written by `write_resource`, and by `write_doc` with an `id` and `schemas`
    /// of its own, as the general path writes it (and the resource those make).
    fn check(resource: &Value) {
        let schemas = [USER_SCHEMA, "urn:x:\"é"];
        let mut finished = resource.clone();
        if let Some(obj) = finished.as_object_mut() {
            obj.insert("id".into(), Value::from("f\"1é"));
            obj.insert("schemas".into(), json!(schemas));
        }
        for registry in registries() {
            for rt in ["User", "Group"] {
                let ctx = SchemaContext::new(&registry, rt).unwrap();
                let hidden = HiddenByDefault::of(&ctx);
                for (h, base) in [
                    (None, BASE),
                    (Some(&hidden), BASE),
                    (Some(&hidden), ODD_BASE),
                ] {
                    let mut out = b"[".to_vec();
                    let written = write_resource(&mut out, resource, &ctx, h, base).unwrap();
                    let (body, want) = general(resource, &ctx, h, base);
                    assert_eq!(
                        String::from_utf8_lossy(&out[1..]),
                        String::from_utf8_lossy(&body),
                        "{rt} {resource}"
                    );
                    assert_eq!(written, want, "{rt} {resource}");
                    let mut out = b"[".to_vec();
                    let finish = Finish {
                        id: Some("f\"1é"),
                        schemas: Some(&schemas),
                    };
                    let written = write_doc(&mut out, resource, finish, &ctx, h, base).unwrap();
                    let (body, want) = general(&finished, &ctx, h, base);
                    assert_eq!(
                        String::from_utf8_lossy(&out[1..]),
                        String::from_utf8_lossy(&body),
                        "{rt} {resource} finished"
                    );
                    assert_eq!(written, want, "{rt} {resource} finished");
                }
            }
        }
    }

    /// A mapping's answer written straight from where it lies (its id and schemas as
    /// [`finish_doc`] gives them) is the resource [`finish_value`] makes of it, written by the
    /// general path; where `finish_doc` declines, the answer goes that path itself. Also
    /// called from the mapping's tests on compiled answers.
    pub(crate) fn finished_alike<'d, D: Doc<'d>>(doc: D, json: &Value) {
        for registry in registries() {
            for rt in ["User", "Group"] {
                let ctx = SchemaContext::new(&registry, rt).unwrap();
                let hidden = HiddenByDefault::of(&ctx);
                let mut resource = json.clone();
                let made = finish_value(&ctx, &mut resource);
                let Some((id, schemas)) = finish_doc(&ctx, doc) else {
                    continue;
                };
                assert_eq!(made, Ok(()), "{json}");
                let finish = Finish {
                    id: Some(&id),
                    schemas: Some(&schemas),
                };
                let mut out = Vec::new();
                let written = write_doc(&mut out, doc, finish, &ctx, Some(&hidden), BASE).unwrap();
                let (body, want) = general(&resource, &ctx, Some(&hidden), BASE);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&body),
                    "{rt} {json}"
                );
                assert_eq!(written, want, "{rt} {json}");
            }
        }
    }

    #[test]
    fn an_answer_is_finished_as_the_general_path_finishes_it() {
        let ent = ENTERPRISE_USER_SCHEMA;
        let mut declined = 0;
        for id in [
            json!("17"),
            json!(""),
            json!(-5),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(5.0),
            json!(true),
            json!(null),
            json!([1]),
            json!({"value": "1"}),
        ] {
            for extra in [
                json!({}),
                json!({"schemas": ["urn:other"]}),
                json!({ent: {}}),
                json!({ent: "x"}),
                json!({ent: {"department": "d"}, "schemas": []}),
                json!({ent.to_lowercase(): {"department": "d"}}),
            ] {
                let mut answer = extra.clone();
                answer["id"] = id.clone();
                finished_alike(&answer, &answer);
                let reg = SchemaRegistry::core();
                let ctx = SchemaContext::new(&reg, "User").unwrap();
                declined += usize::from(finish_doc(&ctx, &answer).is_none());
            }
            // And without an id at all, or not an object.
            let reg = SchemaRegistry::core();
            let ctx = SchemaContext::new(&reg, "User").unwrap();
            assert!(finish_doc(&ctx, &json!({"userName": "a"})).is_none());
            assert!(finish_doc(&ctx, &json!([{"id": "1"}])).is_none());
            assert_eq!(
                finish_value(&ctx, &mut json!({"userName": "a"})),
                Err(NotResource::NoId)
            );
            assert_eq!(
                finish_value(&ctx, &mut json!([1])),
                Err(NotResource::NotObject)
            );
        }
        // "", u64::MAX, 5.0, true, null, [1] and an object as ids take the general path.
        assert_eq!(declined, 7 * 6);
    }

    /// Resources written one after another into a list's body each keep their own version
    /// (patched in at its place in the shared buffer).
    #[test]
    fn a_list_of_resources_holds_each_as_the_general_path_writes_it() {
        let registry = SchemaRegistry::core();
        let ctx = SchemaContext::new(&registry, "User").unwrap();
        let users = [
            json!({"id": "1", "userName": "a", "meta": {"created": "then"}}),
            json!({"id": "2", "userName": "b", "zzz": [1, 2]}),
            json!({"id": "3", ENTERPRISE_USER_SCHEMA: {"department": "d"}}),
        ];
        let mut list = crate::scim::list::ListBody::default();
        let mut etags = Vec::new();
        for u in &users {
            etags.push(
                write_resource(list.item(), u, &ctx, None, BASE)
                    .unwrap()
                    .etag,
            );
        }
        let body: Value = serde_json::from_slice(&list.finish(3, 1)).unwrap();
        for (i, u) in users.iter().enumerate() {
            let (alone, want) = general(u, &ctx, None, BASE);
            let alone: Value = serde_json::from_slice(&alone).unwrap();
            assert_eq!(body["Resources"][i], alone);
            assert_eq!(etags[i], want.etag);
            assert_eq!(body["Resources"][i]["meta"]["version"], want.etag);
        }
        assert_eq!(body["totalResults"], 3);
    }

    #[test]
    fn sixteen_hex_digits() {
        for n in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 63] {
            assert_eq!(hex16(n).as_slice(), format!("{n:016x}").as_bytes());
        }
    }

    #[test]
    fn a_user_is_written_as_the_general_path_writes_it() {
        check(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "id": "17", "userName": "a\"b\\c\u{1}é", "active": false, "title": "t",
            "nickName": "n", "password": "p", "PassWord": "q",
            "emails": [{"value": "x@y.z", "type": "work", "primary": true}],
            "meta": {"created": "2026-01-01T00:00:00Z", "lastModified": "2026-02-01T00:00:00Z"},
            ENTERPRISE_USER_SCHEMA: {"department": "d", "costCenter": "c"},
        }));
        // No meta from the script, nothing after `meta` in key order, only a creation time.
        check(&json!({"id": "1", "active": true}));
        check(&json!({"id": "1", "meta": {"created": "then"}}));
        // An extension left out whole: not an object, or all of it hidden.
        check(&json!({"id": "2", ENTERPRISE_USER_SCHEMA: "x"}));
        check(&json!({"id": "3", ENTERPRISE_USER_SCHEMA: {"costCenter": "c"}}));
        // The resource's version is pinned (clients hold it): meta's own content is not in it.
        let reg = SchemaRegistry::core();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let mut out = Vec::new();
        let user = json!({
            "id": "17", "userName": "a\"b\\c\u{1}é", "active": false, "n": 1.5, "big": u64::MAX,
            "emails": [{"value": "x@y.z", "primary": true}], "meta": {"created": "then"},
        });
        let w = write_resource(&mut out, &user, &ctx, None, BASE).unwrap();
        assert_eq!(w.etag, "W/\"5e343c2127efa559\"");
        assert_eq!(w.location, format!("{BASE}/Users/17"));
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(body["meta"]["version"], w.etag);
        assert_eq!(body["meta"]["lastModified"], "then");
        // Not an object: the general path's, and nothing written.
        assert!(write_resource(&mut out, &json!([1]), &ctx, None, BASE).is_none());
        assert_eq!(out.len(), serde_json::to_vec(&body).unwrap().len());
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-z\"\\\\é\u{1} ]{0,6}".prop_map(Value::from),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Zé\"\\\\]{1,4}|meta", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Keys a resource may hold: attributes shown and hidden in either registry, in other
    /// cases, `meta` and keys next to it in order, extensions under either spelling, and keys
    /// no schema knows (with characters JSON escapes).
    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "id",
            "schemas",
            "userName",
            "title",
            "TITLE",
            "nickName",
            "password",
            "PassWord",
            "emails",
            "displayName",
            "members",
            "meta",
            "Meta",
            "me",
            "meta0",
            "metA",
            "zzz",
            "a\"b",
            "\u{1}",
            "é",
            "metaé",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user",
            "urn:ietf:params:scim:schemas:core:2.0:User",
        ])
        .prop_map(str::to_string)
    }

    fn member_value(key: &str) -> BoxedStrategy<Value> {
        if key.starts_with("urn:") {
            let sub = prop::sample::select(vec![
                "department",
                "costCenter",
                "COSTCENTER",
                "employeeNumber",
                "manager",
                "other",
            ]);
            prop_oneof![
                3 => prop::collection::btree_map(sub.prop_map(str::to_string), any_value(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                1 => any_value(),
            ]
            .boxed()
        } else if key == "meta" {
            let stamp = || {
                prop::option::of(prop_oneof![
                    3 => "[0-9T:\"-]{0,8}".prop_map(Value::from),
                    1 => any_value(),
                ])
            };
            prop_oneof![
                4 => (stamp(), stamp(), any_value()).prop_map(|(c, m, other)| {
                    let mut meta = Map::new();
                    if let Some(c) = c {
                        meta.insert("created".into(), c);
                    }
                    if let Some(m) = m {
                        meta.insert("lastModified".into(), m);
                    }
                    meta.insert("version".into(), other);
                    Value::Object(meta)
                }),
                1 => any_value(),
            ]
            .boxed()
        } else if key == "id" {
            prop_oneof![
                "[0-9a-z/\"]{1,6}".prop_map(Value::from),
                any::<u32>().prop_map(Value::from)
            ]
            .boxed()
        } else {
            any_value().boxed()
        }
    }

    fn resource() -> impl Strategy<Value = Value> {
        prop::collection::vec(key(), 0..10).prop_flat_map(|keys| {
            let values: Vec<_> = keys.iter().map(|k| member_value(k)).collect();
            (Just(keys), values)
                .prop_map(|(keys, values)| Value::Object(keys.into_iter().zip(values).collect()))
        })
    }

    proptest! {
        #[test]
        fn any_resource_is_written_as_the_general_path_writes_it(r in resource()) {
            check(&r);
            finished_alike(&r, &r);
        }
    }
}
