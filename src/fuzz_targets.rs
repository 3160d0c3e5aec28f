//! Bodies of the coverage-guided fuzz targets: the parsers that read what Entra, an operator
//! or a profile author sends, and what runs on their output.
//!
//! Each function takes arbitrary bytes and must never panic, overflow the stack or hang,
//! whatever the bytes are. `fuzz/fuzz_targets/<name>.rs` hands libFuzzer's inputs to them
//! (`cargo +nightly fuzz run <name>`), and `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<name>/`) and the crash reproducers (`fuzz/regressions/<name>/`) on
//! stable Rust with `cargo test --test fuzz_corpus`. Besides "no panic", a few targets
//! assert invariants the code documents (filters print back to the same tree, a failed
//! PATCH leaves the resource unchanged); each function's documentation lists them.
//!
//! Everything here is pure: no I/O, no clock, no randomness, so an input behaves the same
//! under the fuzzer and in the replay test.

use crate::app;
use crate::backend::{BodyTemplate, PathTemplate, encode_into};
use crate::config::{
    AdminConfig, AuthConfig, BackendConfig, Config, GroupsMode, LogConfig, LookupConfig,
    PlansConfig, Profile, ResourceConfig, ScimAuthConfig, ServerConfig, StoreConfig,
};
use crate::scim::filter::{
    MAX_FILTER_LEN, evaluate, matches_element, parse_filter, parse_patch_path, validate_filter,
};
use crate::scim::patch::{apply_patch, parse_patch, retain_supported, split_members};
use crate::scim::resource::{NormalizeOptions, get_ci, normalize_resource, project};
use crate::scim::schema::{
    AttrType, AttributeDef, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, Schema, SchemaContext,
    SchemaRegistry, USER_SCHEMA,
};
use crate::scim::{AttrPath, ScimResult};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::LazyLock;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// An open extension (any key is a string attribute), as profiles register for Entra's
/// `…:extension:2.0:Metadata:{key}` mappings.
const METADATA: &str = "urn:ietf:params:scim:schemas:extension:2.0:Metadata";
/// A typed extension with one attribute of each type the core schemas lack at top level.
const TYPED_EXT: &str = "urn:example:scim:schemas:extension:fuzz:2.0:User";

/// The core schemas plus [`METADATA`] and [`TYPED_EXT`] on User, built once per process.
static REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(registry);

/// The user the filter and PATCH targets run against (Entra's sample user plus extensions).
static USER: LazyLock<Value> = LazyLock::new(user);

/// The group the filter and PATCH targets run against.
static GROUP: LazyLock<Value> = LazyLock::new(group);

/// Builds [`REGISTRY`].
///
/// The `expect`s cannot fail: `add_extension` only refuses an unknown resource type or a URN
/// already registered, and `User` is a core resource type while both URNs are constants
/// distinct from each other and from the core schemas' URNs.
fn registry() -> SchemaRegistry {
    let mut reg = SchemaRegistry::core();
    let ext = |id: &str, attributes: Vec<AttributeDef>, open: bool| Schema {
        id: id.into(),
        name: String::new(),
        description: String::new(),
        attributes,
        open,
    };
    reg.add_extension("User", ext(METADATA, Vec::new(), true), false)
        .expect("the Metadata URN is not registered yet and User exists");
    let typed = vec![
        AttributeDef::typed("level", AttrType::Integer),
        AttributeDef::typed("score", AttrType::Decimal),
        AttributeDef::typed("hiredAt", AttrType::DateTime),
        AttributeDef::typed("badge", AttrType::Binary),
        AttributeDef::typed("flags", AttrType::Boolean),
        AttributeDef::string("tags").multi(),
    ];
    reg.add_extension("User", ext(TYPED_EXT, typed, false), false)
        .expect("the fuzz extension URN is not registered yet and User exists");
    reg
}

fn user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, METADATA, TYPED_EXT],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081",
        "active": true,
        "displayName": "Barbara Jensen",
        "title": "",
        "userType": "Employee",
        "emails": [
            {"primary": true, "type": "work", "value": "Test_User_11bb6b3d@contoso.com"},
            {"type": "home", "value": "babs@example.org"}
        ],
        "phoneNumbers": [{"type": "work", "value": "+1 555 0100"}],
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Redmond",
                       "postalCode": "98052", "country": "US", "primary": true}],
        "roles": [{"value": "reader", "primary": false}],
        "name": {"formatted": "Ms. Barbara J Jensen", "familyName": "Jensen",
                 "givenName": "Barbara"},
        "meta": {"resourceType": "User", "created": "2024-05-13T04:42:34Z",
                 "lastModified": "2024-05-14T06:00:00+02:00", "version": "W/\"3\""},
        ENTERPRISE_USER_SCHEMA: {
            "employeeNumber": "701984", "department": "Sales",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        METADATA: {"costCenter": "4130", "Building": "B-12"},
        TYPED_EXT: {
            "level": 7, "score": 2.5, "hiredAt": "2021-02-03T04:05:06Z",
            "badge": "aGVsbG8=", "flags": false, "tags": ["a", "b"]
        }
    })
}

fn group() -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": "927fa2c08dcb4a7fae9e",
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Sales Reps",
        "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Barbara Jensen",
             "type": "User"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"},
            {"value": "5fdeaf2c", "type": "Group", "$ref": "../Groups/5fdeaf2c"}
        ],
        "meta": {"resourceType": "Group", "created": "2024-05-13T04:42:34Z"}
    })
}

/// The User and Group contexts of [`REGISTRY`] with the resource each runs against.
fn contexts() -> Vec<(SchemaContext<'static>, &'static Value)> {
    let reg: &'static SchemaRegistry = &REGISTRY;
    [("User", &*USER), ("Group", &*GROUP)]
        .into_iter()
        .filter_map(|(rt, res)| SchemaContext::new(reg, rt).map(|ctx| (ctx, res)))
        .collect()
}

/// Asserts that `value` prints as text that parses back to an equal value.
///
/// The printed text may legitimately be refused by the parser's limits when the input was
/// already close to them (a client's `emails[type eq "w"].value eq "x"` prints longer, as
/// `emails[type eq "w" and value eq "x"]`), so an error naming the length or nesting limit
/// is accepted; any other error, or a different tree, is a bug.
fn assert_reparses<T: PartialEq + fmt::Debug + fmt::Display>(
    value: &T,
    what: &str,
    parse: impl Fn(&str) -> ScimResult<T>,
) {
    let text = value.to_string();
    match parse(&text) {
        Ok(again) => assert_eq!(
            &again, value,
            "{what} printed as `{text}` parses differently"
        ),
        Err(e) => assert!(
            text.len() > MAX_FILTER_LEN || e.detail.contains("nesting is deeper"),
            "{what} printed as `{text}` does not parse again: {}",
            e.detail
        ),
    }
}

/// Fuzz target `filter`: the SCIM filter language (`?filter=`, `/.search`) and the PATCH
/// `path` grammar, on UTF-8 input (a query string reaches the parser decoded, so other bytes
/// cannot arrive; they are skipped).
///
/// With and without a schema registry, the input is parsed by
/// [`parse_filter`] and [`parse_patch_path`]. A parsed filter is validated and evaluated
/// against a fixed User and a fixed Group ([`validate_filter`], [`evaluate`]); a parsed path's
/// value filter is run by [`matches_element`] against each element of the attribute it names,
/// as the PATCH engine does. Invariant checked: a parsed filter or path prints (`Display`) as
/// text that parses back to the same tree (see [`assert_reparses`] for the limits allowed).
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reg: &SchemaRegistry = &REGISTRY;
    let contexts = contexts();
    for registry in [Some(reg), None] {
        if let Ok(f) = parse_filter(text, registry) {
            assert_reparses(&f, "filter", |t| parse_filter(t, registry));
            let _ = f.simple_eq();
            let _ = f.conjuncts();
            for (ctx, resource) in &contexts {
                let _ = validate_filter(&f, ctx);
                let _ = evaluate(&f, resource, ctx);
            }
        }
        if let Ok(p) = parse_patch_path(text, registry) {
            assert_reparses(&p, "PATCH path", |t| parse_patch_path(t, registry));
            let Some(inner) = &p.filter else {
                continue;
            };
            for (ctx, resource) in &contexts {
                let Some(def) = ctx.resolve(&p.attr).and_then(|r| r.leaf().cloned()) else {
                    continue;
                };
                let Some(obj) = resource.as_object() else {
                    continue;
                };
                let container = match &p.attr.urn {
                    Some(urn) if !urn.eq_ignore_ascii_case(&ctx.rt.schema) => {
                        get_ci(obj, urn).and_then(Value::as_object)
                    }
                    _ => Some(obj),
                };
                let elements = container
                    .and_then(|c| get_ci(c, &p.attr.name))
                    .and_then(Value::as_array);
                for e in elements.into_iter().flatten() {
                    let _ = matches_element(inner, e, &def);
                }
            }
        }
    }
}

/// Fuzz target `patch`: a PATCH body (RFC 7644 §3.5.2, with Entra's dialects) as the
/// gateway handles it. Input that is not JSON is skipped (the route answers 400 before the
/// engine runs).
///
/// For the User and the Group resource type: [`parse_patch`], then [`apply_patch`] on the
/// fixed resource, [`retain_supported`] and applying its result, and for groups
/// [`split_members`]. Invariant checked: `apply_patch` is atomic, so when it fails the
/// resource is unchanged.
pub fn patch(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for (ctx, resource) in contexts() {
        let Ok(req) = parse_patch(&body, &ctx) else {
            continue;
        };
        let mut patched = resource.clone();
        if apply_patch(&mut patched, &req, &ctx).is_err() {
            assert_eq!(&patched, resource, "a failed PATCH changed the resource");
        }
        let kept = retain_supported(req.clone(), &ctx);
        let mut patched = resource.clone();
        let _ = apply_patch(&mut patched, &kept, &ctx);
        if ctx.rt.name == "Group" {
            let _ = split_members(req, &ctx);
        }
    }
}

/// Fuzz target `normalize`: a POST or PUT body as it reaches the pipeline (JSON already
/// parsed; other input is skipped). Entra's dialect (`"True"`/`"False"`, a bare-string
/// manager, key case, URN-qualified keys) is handled inside [`normalize_resource`], which the
/// create and replace paths call first; what the route adds before it (the `unsupported`
/// attribute check of `server::pipeline`) is private to the server and not run here.
///
/// For User and Group, with and without `keep_unknown`: [`normalize_resource`], then
/// [`project`] of its result with no lists, with an `attributes` list and with an
/// `excludedAttributes` list. Invariant checked: a normalised resource is an object whose
/// `schemas` starts with the resource type's core schema.
pub fn normalize(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let wanted = [
        AttrPath::new("userName"),
        AttrPath::with_sub("name", "givenName"),
        AttrPath::with_sub("emails", "value"),
        AttrPath::new("members"),
        AttrPath {
            urn: Some(ENTERPRISE_USER_SCHEMA.into()),
            name: "manager".into(),
            sub: None,
        },
    ];
    for (ctx, _) in contexts() {
        for keep_unknown in [false, true] {
            let opts = NormalizeOptions { keep_unknown };
            let Ok(resource) = normalize_resource(body.clone(), &ctx, opts) else {
                continue;
            };
            let first = resource
                .get("schemas")
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(Value::as_str);
            assert_eq!(
                first,
                Some(ctx.rt.schema.as_str()),
                "normalised {} without its core schema first: {resource}",
                ctx.rt.name
            );
            let _ = project(&resource, &ctx, &[], &[]);
            let _ = project(&resource, &ctx, &wanted, &[]);
            let _ = project(&resource, &ctx, &[], &wanted);
        }
    }
}

/// Fuzz target `path_template`: the path and body templates of a profile's endpoints.
///
/// The input's first line (UTF-8; other input is skipped) is parsed by
/// [`PathTemplate::parse`]; the following lines are the values substituted, assigned to the
/// template's placeholders in turn. A parsed template is rendered by [`PathTemplate::render`]
/// and [`PathTemplate::render_raw`] with every placeholder supplied, and with one left out.
/// When the whole input is JSON it is also read by [`BodyTemplate::new`] and rendered with
/// every placeholder supplied, alternately as a string and as an array.
///
/// Invariants checked: a template keeps its source text; rendering succeeds when every
/// placeholder has a value and fails when one is missing; [`encode_into`] emits only
/// unreserved characters and `%XX` escapes, so a value can never add a `/`, `?` or `#`.
pub fn path_template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let source = lines.next().unwrap_or_default();
    let values: Vec<&str> = lines.collect();
    let value_at = |i: usize| values.get(i % values.len().max(1)).copied().unwrap_or("");
    for v in &values {
        let mut encoded = String::new();
        encode_into(&mut encoded, v);
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "`{v}` encoded as `{encoded}`"
        );
    }
    if let Ok(t) = PathTemplate::parse(source) {
        assert_eq!(t.as_str(), source);
        let mut names: Vec<&str> = t.placeholders().collect();
        names.sort_unstable();
        names.dedup();
        let vars: Vec<(&str, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, value_at(i)))
            .collect();
        let rendered = t.render(&vars);
        assert!(rendered.is_ok(), "{rendered:?} with every placeholder set");
        let raw = t.render_raw(&vars);
        assert!(raw.is_ok(), "{raw:?} with every placeholder set");
        if let Some((_, fewer)) = vars.split_first() {
            assert!(
                t.render(fewer).is_err(),
                "rendered with a placeholder missing"
            );
            assert!(
                t.render_raw(fewer).is_err(),
                "rendered with a placeholder missing"
            );
        }
    }
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Ok(body) = BodyTemplate::new(json) {
        let mut names: Vec<&str> = body.placeholders().collect();
        names.sort_unstable();
        names.dedup();
        let vars: Vec<(&str, Value)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v = if i % 2 == 0 {
                    Value::String(value_at(i).to_string())
                } else {
                    json!([value_at(i), value_at(i + 1)])
                };
                (*n, v)
            })
            .collect();
        let rendered = body.render(&vars);
        assert!(rendered.is_ok(), "{rendered:?} with every placeholder set");
    }
}

/// Takes section `key` out of `root` and deserializes it as the loader does: `Some(None)`
/// when absent, `None` when it does not deserialize (after formatting the error, as the
/// loader does to report it).
fn take<T: DeserializeOwned>(root: &mut DeTable<'_>, key: &str) -> Option<Option<T>> {
    let Some(value) = root.remove(key) else {
        return Some(None);
    };
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(t) => Some(Some(t)),
        Err(e) => {
            let _ = (e.to_string(), e.span());
            None
        }
    }
}

/// Takes table `key` out of `root` and deserializes each entry separately, as the loader
/// does for `[resources.*]` and `[lookups.*]`; `None` when one does not deserialize.
fn take_map<T: DeserializeOwned>(root: &mut DeTable<'_>, key: &str) -> Option<BTreeMap<String, T>> {
    let Some(value) = root.remove(key) else {
        return Some(BTreeMap::new());
    };
    let DeValue::Table(table) = value.into_inner() else {
        return None;
    };
    let mut out = BTreeMap::new();
    for (name, v) in table {
        match T::deserialize(ValueDeserializer::from(v)) {
            Ok(t) => {
                out.insert(name.into_inner().into_owned(), t);
            }
            Err(e) => {
                let _ = (e.to_string(), e.span());
                return None;
            }
        }
    }
    Some(out)
}

/// Fuzz target `config`: the configuration files' TOML, on UTF-8 input (the loader reads
/// files as UTF-8 text).
///
/// `Config::load` only reads from a path, and the parsing it does (`Sections`, private to
/// `config.rs`) has no entry that takes a string, so this target repeats the loader's pure
/// steps on one document that may hold the sections of both files (`scimgate.toml`'s
/// `[server]`, `[auth]`, `[log]`, `[store]`, `[admin]`, `[plans]`, and a profile's
/// `[backend]`, `groups`, `[resources.*]`, `[lookups.*]`, `[scim_auth]`): recoverable TOML
/// parsing, deserializing each section into the public section types with the same
/// deserializer, then [`Config::from_parts`], [`Config::validate`] (every semantic check) and
/// [`app::registry`] (the schemas the profile would serve). The `[profile]` section and the
/// environment overlay are not covered (their code is private to `config.rs`).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in &errors {
            let _ = (e.message(), e.span());
        }
        return;
    }
    let mut root = root.into_inner();
    let (Some(server), Some(auth), Some(log), Some(store), Some(admin), Some(plans)) = (
        take::<ServerConfig>(&mut root, "server"),
        take::<AuthConfig>(&mut root, "auth"),
        take::<LogConfig>(&mut root, "log"),
        take::<StoreConfig>(&mut root, "store"),
        take::<AdminConfig>(&mut root, "admin"),
        take::<PlansConfig>(&mut root, "plans"),
    ) else {
        return;
    };
    let (Some(backend), Some(groups), Some(resources), Some(lookups), Some(scim_auth)) = (
        take::<BackendConfig>(&mut root, "backend"),
        take::<GroupsMode>(&mut root, "groups"),
        take_map::<ResourceConfig>(&mut root, "resources"),
        take_map::<LookupConfig>(&mut root, "lookups"),
        take::<ScimAuthConfig>(&mut root, "scim_auth"),
    ) else {
        return;
    };
    let Some(backend) = backend else {
        return;
    };
    let profile = Profile {
        name: "fuzz".into(),
        file: PathBuf::from("config/profiles/fuzz.toml"),
        scripts_dir: PathBuf::from("scripts/fuzz"),
        backend,
        groups: groups.unwrap_or_default(),
        resources,
        lookups,
        scim_auth: scim_auth.unwrap_or_default(),
    };
    let mut cfg = Config::from_parts(
        PathBuf::from("config/scimgate.toml"),
        server.unwrap_or_default(),
        auth.unwrap_or_default(),
        log.unwrap_or_default(),
        profile,
    );
    cfg.store = store.unwrap_or_default();
    cfg.admin = admin.unwrap_or_default();
    cfg.plans = plans.unwrap_or_default();
    for issue in cfg.validate() {
        let _ = issue.to_string();
    }
    let _ = app::registry(&cfg.profile);
}
