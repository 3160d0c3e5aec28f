//! Cost of the mapping layer per call, with hand-written Rust as the baseline in the same run.
//!
//! - `to_backend/script`: the default profile's `user.rhai` `to_backend` on a typical Entra
//!   user through `ScriptSet::call`, compiled (the default).
//! - `to_backend/interpreted`: the same call with `compile_scripts = false` (rhai's
//!   interpreter), the baseline for the compiled form in the same run.
//! - `to_backend/rust`: the same mapping written by hand in Rust.
//! - `from_backend/script` and `/interpreted`: the legacy record → SCIM user mapping.
//! - `flatten_extension/helper`: a script calling the Rust helper on a 20-key extension.
//! - `flatten_extension/script_loop`: the same flattening written as a rhai loop.

use criterion::{Criterion, criterion_group, criterion_main};
use scimgate::mapping::{Lookups, ScriptSet};
use scimgate::scim::resource::get_ci;
use serde_json::{Map, Value, json};
use std::hint::black_box;
use std::path::{Path, PathBuf};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const METADATA: &str = "urn:ietf:params:scim:schemas:extension:2.0:Metadata";

fn entra_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "6d3f0a8e-2b7c-4e55-9a61-0f7b3c2e9d14",
        "userName": "AdeleV@contoso.com",
        "active": true,
        "displayName": "Adele Vance",
        "title": "Retail Manager",
        "userType": "Member",
        "name": {"formatted": "Adele Vance", "givenName": "Adele", "familyName": "Vance"},
        "emails": [{"primary": true, "type": "work", "value": "AdeleV@contoso.com"}],
        "phoneNumbers": [
            {"type": "mobile", "value": "+1 425 555 0109"},
            {"type": "work", "value": "+1 425 555 0100"}
        ],
        "addresses": [{"type": "work", "locality": "Bellevue", "country": "US"}],
        ENTERPRISE: {"employeeNumber": "E-1042", "department": "Retail", "manager": {"value": "17"}}
    })
}

fn ctx() -> Value {
    json!({"op": "create", "base_url": "https://gateway.example/scim/v2", "profile": "default"})
}

/// `user.rhai`'s `to_backend` for op "create", by hand.
fn to_backend_rust(user: &Value, ctx: &Value) -> Value {
    let empty = Map::new();
    let u = user.as_object().unwrap_or(&empty);
    let ent = get_ci(u, ENTERPRISE).and_then(Value::as_object);
    let field = |o: Option<&Map<String, Value>>, k: &str| {
        o.and_then(|o| o.get(k)).cloned().unwrap_or(Value::Null)
    };
    let name = u.get("name").and_then(Value::as_object);
    let phone = u
        .get("phoneNumbers")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter().find(|p| {
                p.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("work"))
            })
        })
        .and_then(|p| p.get("value"))
        .cloned()
        .unwrap_or(Value::Null);
    let username = u
        .get("userName")
        .and_then(Value::as_str)
        .map(|n| Value::String(n.trim().to_string()))
        .unwrap_or(Value::Null);
    // The work e-mail, else the primary, else the first (as scripts/default/user.rhai).
    let emails: &[Value] = u
        .get("emails")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let is_work = |e: &&Value| {
        e.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("work"))
    };
    let is_primary = |e: &&Value| e.get("primary") == Some(&Value::Bool(true));
    let email = emails
        .iter()
        .find(is_work)
        .or_else(|| emails.iter().find(is_primary))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(|v| Value::String(v.trim().to_string()))
        .unwrap_or(Value::Null);
    let manager = ent
        .and_then(|e| e.get("manager"))
        .and_then(|m| m.get("value"))
        .and_then(Value::as_str)
        .map(|s| {
            let s = s.trim();
            s.parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(s.to_string()))
        })
        .unwrap_or(Value::Null);
    let active = u.get("active") != Some(&Value::Bool(false));
    let mut rec = Map::new();
    rec.insert("username".into(), username);
    rec.insert("email".into(), email);
    rec.insert("first_name".into(), field(name, "givenName"));
    rec.insert("last_name".into(), field(name, "familyName"));
    rec.insert("display_name".into(), field(Some(u), "displayName"));
    rec.insert("job_title".into(), field(Some(u), "title"));
    rec.insert("phone".into(), phone);
    rec.insert(
        "status".into(),
        Value::from(if active { "active" } else { "inactive" }),
    );
    rec.insert("external_id".into(), field(Some(u), "externalId"));
    rec.insert("user_type".into(), field(Some(u), "userType"));
    rec.insert("employee_number".into(), field(ent, "employeeNumber"));
    rec.insert("department".into(), field(ent, "department"));
    rec.insert("manager_id".into(), manager);
    if ctx.get("op").and_then(Value::as_str) == Some("create") {
        rec.retain(|_, v| !v.is_null());
    }
    Value::Object(rec)
}

fn bench_to_backend(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/default");
    let set = ScriptSet::load(&dir, Lookups::new()).expect("default scripts compile");
    let (user, ctx) = (entra_user(), ctx());
    let by_script = set
        .call("user", "to_backend", vec![user.clone(), ctx.clone()])
        .expect("script runs");
    assert_eq!(
        by_script,
        to_backend_rust(&user, &ctx),
        "baseline must match"
    );

    let interpreted = ScriptSet::load(&dir, Lookups::new())
        .expect("default scripts compile")
        .with_compiled(false);
    assert_eq!(
        interpreted
            .call("user", "to_backend", vec![user.clone(), ctx.clone()])
            .expect("runs"),
        by_script
    );
    let mut g = c.benchmark_group("to_backend");
    g.bench_function("script", |b| {
        b.iter(|| {
            set.call(
                "user",
                "to_backend",
                vec![black_box(&user).clone(), ctx.clone()],
            )
        })
    });
    g.bench_function("interpreted", |b| {
        b.iter(|| {
            interpreted.call(
                "user",
                "to_backend",
                vec![black_box(&user).clone(), ctx.clone()],
            )
        })
    });
    g.bench_function("rust", |b| {
        b.iter(|| {
            let (u, c) = (black_box(&user).clone(), ctx.clone());
            to_backend_rust(&u, &c)
        })
    });
    g.finish();
}

/// A legacy record as the demo app returns it for a fully set user.
fn legacy_record() -> Value {
    json!({
        "id": 1042, "username": "AdeleV@contoso.com", "email": "AdeleV@contoso.com",
        "first_name": "Adele", "last_name": "Vance", "display_name": "Adele Vance",
        "job_title": "Retail Manager", "phone": "+1 425 555 0100", "status": "active",
        "external_id": "6d3f0a8e-2b7c-4e55-9a61-0f7b3c2e9d14", "user_type": "Member",
        "employee_number": "E-1042", "department": "Retail", "manager_id": 17,
        "office_id": null, "role": "member",
        "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-12-01T08:30:00Z"
    })
}

/// The default profile's `from_backend` (legacy record → SCIM user), the mapping of every
/// GET and list item.
fn bench_from_backend(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/default");
    let set = ScriptSet::load(&dir, Lookups::new()).expect("default scripts compile");
    let rec = legacy_record();
    let ctx =
        json!({"op": "get", "base_url": "https://gateway.example/scim/v2", "profile": "default"});
    let user = set
        .call("user", "from_backend", vec![rec.clone(), ctx.clone()])
        .expect("script runs");
    assert_eq!(user["userName"], "AdeleV@contoso.com");
    assert_eq!(user[ENTERPRISE]["manager"]["value"], "17");
    let interpreted = ScriptSet::load(&dir, Lookups::new())
        .expect("default scripts compile")
        .with_compiled(false);
    assert_eq!(
        interpreted
            .call("user", "from_backend", vec![rec.clone(), ctx.clone()])
            .expect("runs"),
        user
    );
    let mut g = c.benchmark_group("from_backend");
    g.bench_function("script", |b| {
        b.iter(|| {
            set.call(
                "user",
                "from_backend",
                vec![black_box(&rec).clone(), ctx.clone()],
            )
        })
    });
    g.bench_function("interpreted", |b| {
        b.iter(|| {
            interpreted.call(
                "user",
                "from_backend",
                vec![black_box(&rec).clone(), ctx.clone()],
            )
        })
    });
    g.finish();
}

/// A scratch profile holding the two flattening variants.
struct TempProfile(PathBuf);

impl Drop for TempProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench_flatten(c: &mut Criterion) {
    let dir =
        TempProfile(std::env::temp_dir().join(format!("scimgate-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let src = format!(
        r#"
fn helper(user) {{ flatten_extension(user, "{METADATA}") }}
fn script_loop(user) {{
    let ext = user["{METADATA}"];
    let out = #{{}};
    for k in ext.keys() {{
        let v = ext[k];
        if v != () {{ out[k] = v.to_string(); }}
    }}
    out
}}
"#
    );
    std::fs::write(dir.0.join("flat.rhai"), src).expect("write script");
    let set = ScriptSet::load(&dir.0, Lookups::new()).expect("bench script compiles");

    let mut ext = Map::new();
    for i in 0..20 {
        let v = match i % 3 {
            0 => json!(format!("value {i}")),
            1 => json!(i),
            _ => json!(i % 2 == 0),
        };
        ext.insert(format!("key{i:02}"), v);
    }
    let user = json!({"userName": "a@b.c", METADATA: ext});
    let a = set
        .call("flat", "helper", vec![user.clone()])
        .expect("helper");
    let b = set
        .call("flat", "script_loop", vec![user.clone()])
        .expect("loop");
    assert_eq!(a, b, "both variants flatten alike");
    assert_eq!(a.as_object().map(Map::len), Some(20));

    let mut g = c.benchmark_group("flatten_extension_20_keys");
    g.bench_function("helper", |b| {
        b.iter(|| set.call("flat", "helper", vec![black_box(&user).clone()]))
    });
    g.bench_function("script_loop", |b| {
        b.iter(|| set.call("flat", "script_loop", vec![black_box(&user).clone()]))
    });
    g.finish();
}

criterion_group!(benches, bench_to_backend, bench_from_backend, bench_flatten);
criterion_main!(benches);
