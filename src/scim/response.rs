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
use serde_json::{Map, Value};

/// What a response carries beside its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The weak ETag of the whole resource (`meta.version`).
    pub etag: String,
    /// `meta.location`.
    pub location: String,
}

/// How much of a member a response naming no attributes shows.
enum Shown<'v> {
    All,
    Nothing,
    /// An extension object with some of its attributes left out.
    Part(&'v Map<String, Value>),
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
    let Value::Object(obj) = resource else {
        return None;
    };
    let stamp = |k: &str| {
        obj.get("meta")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
    };
    let (created, modified) = (stamp("created"), stamp("lastModified"));
    let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
    // Built by hand: `format!` costs more than the rest of the meta (callgrind).
    let mut location = String::with_capacity(base_url.len() + ctx.rt.endpoint.len() + id.len() + 1);
    location.push_str(base_url);
    location.push_str(&ctx.rt.endpoint);
    location.push('/');
    location.push_str(id);
    let mut hash = Fnv64::default();
    // The text of what the body leaves out, for the hash (rare: most members are shown).
    let mut scratch = Vec::new();
    let mut path = AttrPath::new(String::new());
    let mut first = true;
    let mut version_at = None;
    out.push(b'{');
    // Members come in key order, so `meta` goes before the first key after it.
    for (key, value) in obj {
        if version_at.is_none() && key.as_str() >= "meta" {
            open_member(out, &mut first, "meta");
            version_at = Some(write_meta(
                out,
                &ctx.rt.name,
                created,
                modified.or(created),
                &location,
            ));
        }
        if key == "meta" {
            continue;
        }
        hash.feed(key.as_bytes());
        hash.feed(&[0]);
        match shown(key, value, ctx, hidden, &mut path) {
            Shown::All => {
                open_member(out, &mut first, key);
                let start = out.len();
                write_value(out, value);
                hash.feed(out.get(start..).unwrap_or_default());
            }
            Shown::Nothing => {
                scratch.clear();
                write_value(&mut scratch, value);
                hash.feed(&scratch);
            }
            Shown::Part(ext) => {
                scratch.clear();
                write_value(&mut scratch, value);
                hash.feed(&scratch);
                open_member(out, &mut first, key);
                write_part(out, key, ext, ctx, hidden, &mut path);
            }
        }
        hash.feed(&[1]);
    }
    if version_at.is_none() {
        open_member(out, &mut first, "meta");
        version_at = Some(write_meta(
            out,
            &ctx.rt.name,
            created,
            modified.or(created),
            &location,
        ));
    }
    out.push(b'}');
    let digits = hex16(hash.finish());
    if let Some(slot) = version_at.and_then(|at| out.get_mut(at..at + digits.len())) {
        slot.copy_from_slice(&digits);
    }
    let mut etag = String::with_capacity(20);
    etag.push_str("W/\"");
    etag.extend(digits.iter().map(|&d| char::from(d)));
    etag.push('"');
    Some(Written { etag, location })
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

/// `,"key":` (no comma before the first member).
fn open_member(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_str(out, key);
    out.push(b':');
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
fn shown<'v>(
    key: &str,
    value: &'v Value,
    ctx: &SchemaContext<'_>,
    hidden: Option<&HiddenByDefault>,
    path: &mut AttrPath,
) -> Shown<'v> {
    if key == "schemas" {
        return Shown::All;
    }
    if let Some((urn, "")) = ctx.registry.match_urn(key) {
        let Value::Object(ext) = value else {
            return Shown::Nothing;
        };
        path.urn = Some(urn.to_string());
        let kept = ext
            .keys()
            .filter(|k| shown_in_default(named(path, k), ctx, hidden))
            .count();
        path.urn = None;
        return match kept {
            0 => Shown::Nothing,
            n if n == ext.len() => Shown::All,
            _ => Shown::Part(ext),
        };
    }
    if shown_in_default(named(path, key), ctx, hidden) {
        Shown::All
    } else {
        Shown::Nothing
    }
}

/// An extension's object with only what a response naming no attributes shows.
fn write_part(
    out: &mut Vec<u8>,
    urn_key: &str,
    ext: &Map<String, Value>,
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
    for (k, v) in ext {
        if shown_in_default(named(path, k), ctx, hidden) {
            open_member(out, &mut first, k);
            write_value(out, v);
        }
    }
    path.urn = None;
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::meta::set_meta;
    use crate::scim::resource::project_owned_with;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, Mutability, Returned, SchemaRegistry};
    use proptest::prelude::*;
    use serde_json::json;

    const BASE: &str = "https://gw.example/scim/v2";

    /// The path this one replaces: the version of the resource as given, `meta` set on it,
    /// the default projection, the body written.
    fn general(
        resource: &Value,
        ctx: &SchemaContext<'_>,
        hidden: Option<&HiddenByDefault>,
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
            BASE,
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
    /// extension), as `hidden_by_default_answers_as_the_schemas_do` tunes it.
    fn registries() -> Vec<SchemaRegistry> {
        let mut tuned = SchemaRegistry::core();
        assert!(tuned.tune("User", "title", |a| a.returned = Returned::Request));
        assert!(tuned.tune("User", "nickName", |a| a.mutability = Mutability::WriteOnly));
        assert!(tuned.tune(
            "User",
            &format!("{ENTERPRISE_USER_SCHEMA}:costCenter"),
            |a| a.returned = Returned::Never
        ));
        vec![SchemaRegistry::core(), tuned]
    }

    fn check(resource: &Value) {
        for registry in registries() {
            for rt in ["User", "Group"] {
                let ctx = SchemaContext::new(&registry, rt).unwrap();
                let hidden = HiddenByDefault::of(&ctx);
                for h in [None, Some(&hidden)] {
                    let mut out = b"[".to_vec();
                    let written = write_resource(&mut out, resource, &ctx, h, BASE).unwrap();
                    let (body, want) = general(resource, &ctx, h);
                    assert_eq!(
                        String::from_utf8_lossy(&out[1..]),
                        String::from_utf8_lossy(&body),
                        "{rt} {resource}"
                    );
                    assert_eq!(written, want, "{rt} {resource}");
                }
            }
        }
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
            "[a-z\"\\\\é\u{1} ]{0,6}".prop_map(Value::from),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Z]{1,4}", inner, 0..3)
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
            let stamp = prop::option::of("[0-9T:\"-]{0,8}");
            (stamp.clone(), stamp, any_value())
                .prop_map(|(c, m, other)| {
                    let mut meta = Map::new();
                    if let Some(c) = c {
                        meta.insert("created".into(), Value::from(c));
                    }
                    if let Some(m) = m {
                        meta.insert("lastModified".into(), Value::from(m));
                    }
                    meta.insert("version".into(), other);
                    Value::Object(meta)
                })
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
        }
    }
}
