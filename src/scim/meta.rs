//! Resource `meta` (RFC 7643 §3.1) and versions as weak ETags (RFC 7644 §3.14).

use super::schema::ResourceType;
use serde_json::{Map, Value};

/// A weak ETag for `resource`: `W/"<16 hex digits>"`, an FNV-1a 64-bit hash of its JSON
/// without `meta`. Computed from content, so every replica of the gateway derives the same
/// version for the same legacy record without storing anything.
pub fn etag(resource: &Value) -> String {
    let mut h = Fnv64::default();
    // Each value's JSON text (the bytes of `to_string()`), written into one buffer.
    let mut text = Vec::with_capacity(256);
    match resource {
        Value::Object(map) => {
            // serde_json's Map is ordered by key (no preserve_order feature), so the
            // serialisation below is canonical.
            for (k, v) in map {
                if k == "meta" {
                    continue;
                }
                h.feed(k.as_bytes());
                h.feed(&[0]);
                text.clear();
                crate::json::write_value(&mut text, v);
                h.feed(&text);
                h.feed(&[1]);
            }
        }
        other => {
            crate::json::write_value(&mut text, other);
            h.feed(&text);
        }
    }
    format!("W/\"{:016x}\"", h.0)
}

/// FNV-1a, 64 bits: the hash behind every version the gateway has given out.
#[derive(Debug)]
pub(super) struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    pub(super) fn finish(&self) -> u64 {
        self.0
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Sets `meta` on a resource about to be returned: `resourceType`, `location`
/// (`{base_url}{endpoint}/{id}`), `created` / `lastModified` when the legacy app told us, and
/// `version` (the ETag of the content). Returns the ETag for the response header.
pub fn set_meta(
    resource: &mut Value,
    rt: &ResourceType,
    base_url: &str,
    created: Option<&str>,
    last_modified: Option<&str>,
) -> String {
    let version = etag(resource);
    let Some(obj) = resource.as_object_mut() else {
        return version;
    };
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut meta = Map::new();
    meta.insert("resourceType".into(), Value::String(rt.name.clone()));
    if let Some(c) = created {
        meta.insert("created".into(), Value::String(c.to_string()));
    }
    if let Some(m) = last_modified.or(created) {
        meta.insert("lastModified".into(), Value::String(m.to_string()));
    }
    meta.insert(
        "location".into(),
        Value::String(format!("{base_url}{}/{id}", rt.endpoint)),
    );
    meta.insert("version".into(), Value::String(version.clone()));
    obj.insert("meta".into(), Value::Object(meta));
    version
}

/// Whether an `If-Match` header value admits `current` (weak comparison, `*` matches any,
/// comma-separated lists allowed). A mismatch means 412 Precondition Failed.
pub fn if_match(header: &str, current: &str) -> bool {
    let strip = |t: &str| -> String {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_string()
    };
    let current = strip(current);
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || strip(t) == current)
}

/// Whether an `If-None-Match` header value matches `current`; a match on GET means
/// 304 Not Modified.
pub fn if_none_match(header: &str, current: &str) -> bool {
    if_match(header, current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::SchemaRegistry;
    use serde_json::json;

    /// The version clients hold from earlier releases stays what it was: FNV-1a 64 over each
    /// member but `meta` as key, 0, serde_json's text of the value, 1.
    #[test]
    fn etag_is_the_hash_of_serde_json_text() {
        fn reference(resource: &Value) -> String {
            let mut h = Fnv64::default();
            for (k, v) in resource.as_object().unwrap() {
                if k != "meta" {
                    h.feed(k.as_bytes());
                    h.feed(&[0]);
                    h.feed(&serde_json::to_vec(v).unwrap());
                    h.feed(&[1]);
                }
            }
            format!("W/\"{:016x}\"", h.0)
        }
        let user = json!({
            "id": "17", "userName": "a\"b\\c\u{1}é", "active": false, "n": 1.5, "big": u64::MAX,
            "emails": [{"value": "x@y.z", "primary": true}], "meta": {"created": "then"},
        });
        assert_eq!(etag(&user), reference(&user));
        assert_eq!(etag(&user), "W/\"5e343c2127efa559\"");
        assert_eq!(etag(&json!("text")), "W/\"86de640a4d961994\"");
    }

    #[test]
    fn etag_depends_on_content_not_meta() {
        let a = json!({"id": "1", "userName": "a", "meta": {"x": 1}});
        let b = json!({"userName": "a", "id": "1"});
        let c = json!({"id": "1", "userName": "b"});
        assert_eq!(etag(&a), etag(&b));
        assert_ne!(etag(&a), etag(&c));
        assert!(etag(&a).starts_with("W/\""));
    }

    #[test]
    fn meta_and_if_match() {
        let reg = SchemaRegistry::core();
        let rt = reg.resource_type("User").unwrap();
        let mut u = json!({"id": "42", "userName": "a"});
        let v = set_meta(
            &mut u,
            rt,
            "https://gw/scim/v2",
            Some("2026-01-01T00:00:00Z"),
            None,
        );
        assert_eq!(u["meta"]["location"], "https://gw/scim/v2/Users/42");
        assert_eq!(u["meta"]["resourceType"], "User");
        assert_eq!(u["meta"]["lastModified"], "2026-01-01T00:00:00Z");
        assert_eq!(u["meta"]["version"], v.as_str());
        assert!(if_match(&v, &v));
        assert!(if_match("*", &v));
        assert!(if_match(&format!("W/\"nope\", {v}"), &v));
        assert!(if_match(v.trim_start_matches("W/"), &v));
        assert!(!if_match("W/\"0000000000000000\"", &v));
    }
}
