//! Bad input gets a clear error and loses nothing: every way a SCIM request can go wrong,
//! replayed over real sockets against `scimgate demo` (gateway + embedded legacy app).
//!
//! Each case checks the exact status, the SCIM media type and the RFC 7644 §3.12 error body
//! (`schemas`, `status` as a string, `scimType` where the RFC defines one, a `detail` naming
//! the problem), and then, through the legacy app's own API and its `/__demo/state`
//! counters, that nothing reached or changed the legacy side.

mod common;

use bytes::Bytes;
use common::{Legacy, Resp, Scim, enc};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// `server.max_body_bytes` of config/scimgate.toml.
const MAX_BODY: usize = 1 << 20;
/// Backend timeout of the stack used for backend faults: short, so a `delay` fault trips it
/// quickly.
const BACKEND_TIMEOUT: Duration = Duration::from_millis(300);

// ---- harness ------------------------------------------------------------------------------

/// A running stack with a SCIM client and a client of the legacy app's own API.
struct Env {
    stack: DemoStack,
    scim: Scim,
    legacy: Legacy,
}

/// What the legacy app has seen and holds, from `GET /__demo/state`.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// Authenticated `/api/...` requests.
    requests: u64,
    /// Requests that changed something (any method but GET).
    writes: u64,
    users: u64,
    teams: u64,
}

impl Env {
    async fn start() -> Env {
        Env::with(DemoOptions::for_tests("default")).await
    }

    async fn with(opts: DemoOptions) -> Env {
        let stack = DemoStack::start(opts).await.expect("start demo stack");
        let scim = Scim::new(&stack.scim_url, &stack.token);
        let legacy = Legacy::new(&stack.legacy_url, &stack.legacy_key);
        Env {
            stack,
            scim,
            legacy,
        }
    }

    async fn seen(&self) -> Seen {
        let s = self.legacy.get("/__demo/state").await;
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("state.{k}: {s}"));
        let writes = s["by_route"]
            .as_object()
            .expect("by_route")
            .iter()
            .filter(|(route, _)| !route.starts_with("GET "))
            .map(|(_, c)| c.as_u64().expect("count"))
            .sum();
        Seen {
            requests: n("requests_total"),
            writes,
            users: n("users"),
            teams: n("teams"),
        }
    }

    /// Asserts that no authenticated request reached the legacy app since `before`.
    async fn assert_untouched(&self, before: &Seen, case: &str) {
        assert_eq!(
            &self.seen().await,
            before,
            "{case}: the legacy app saw a request"
        );
    }

    /// Asserts that nothing was written to the legacy app since `before` (reads may have
    /// happened, e.g. loading the resource a PATCH applies to).
    async fn assert_unwritten(&self, before: &Seen, case: &str) {
        let now = self.seen().await;
        assert_eq!(
            (now.writes, now.users, now.teams),
            (before.writes, before.users, before.teams),
            "{case}: the legacy app was written to"
        );
    }

    /// The legacy app's users, by its own API.
    async fn legacy_users(&self) -> Vec<Value> {
        let r = self.legacy.get("/api/v1/users?per_page=200").await;
        r["data"].as_array().expect("user list").clone()
    }

    async fn legacy_usernames(&self) -> Vec<String> {
        self.legacy_users()
            .await
            .iter()
            .map(|u| u["username"].as_str().expect("username").to_string())
            .collect()
    }

    /// Arms a fault in the legacy app (`mode: none` clears it).
    async fn fault(&self, spec: Value) {
        let r = self
            .legacy
            .call("POST", "/__demo/faults", Some(&spec))
            .await;
        assert_eq!(r.status, 200, "arming {spec}: {}", r.text);
    }

    /// Creates a user through the gateway; returns its SCIM id.
    async fn create_user(&self, user_name: &str) -> String {
        let r = self.scim.post("/Users", &user(user_name)).await;
        assert_eq!(r.status, 201, "create {user_name}: {}", r.text);
        r.json["id"].as_str().expect("id").to_string()
    }

    /// The SCIM representation of `id` and its ETag.
    async fn get_user(&self, id: &str) -> (Value, String) {
        let r = self.scim.get(&format!("/Users/{id}")).await;
        assert_eq!(r.status, 200, "GET user {id}: {}", r.text);
        let etag = r.header("etag").expect("ETag header").to_string();
        (r.json, etag)
    }

    async fn legacy_user(&self, id: &str) -> Value {
        self.legacy.get(&format!("/api/v1/users/{id}")).await
    }

    /// Sends `method path` with raw body bytes and extra headers, authenticated.
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut h = vec![
            ("authorization", self.scim.auth.as_str()),
            ("content-type", "application/scim+json"),
        ];
        h.extend_from_slice(headers);
        let url = format!("{}{path}", self.scim.base);
        self.scim
            .http
            .raw(method, &url, &h, Some(body.to_vec()))
            .await
    }
}

/// A valid user for the default profile.
fn user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name,
        "active": true,
        "displayName": "Fault Case",
        "emails": [{"value": format!("{user_name}@example.com"), "type": "work", "primary": true}],
    })
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

/// Asserts an RFC 7644 §3.12 error: exact status, SCIM media type, the error schema, `status`
/// as a string, `scimType` (or its absence), and a `detail` mentioning every `mentions`
/// (ignoring case).
#[track_caller]
fn assert_error(case: &str, r: &Resp, status: u16, scim_type: Option<&str>, mentions: &[&str]) {
    let body = &r.text;
    assert_eq!(r.status, status, "{case}: status; body: {body}");
    assert_eq!(
        r.header("content-type"),
        Some("application/scim+json"),
        "{case}: media type; body: {body}"
    );
    assert_eq!(r.json["schemas"], json!([ERROR_URN]), "{case}: {body}");
    assert_eq!(
        r.json["status"],
        json!(status.to_string()),
        "{case}: {body}"
    );
    match scim_type {
        Some(t) => assert_eq!(r.json["scimType"], json!(t), "{case}: {body}"),
        None => assert!(
            r.json.get("scimType").is_none(),
            "{case}: no scimType: {body}"
        ),
    }
    let detail = r.json["detail"].as_str().unwrap_or_default().to_lowercase();
    assert!(!detail.is_empty(), "{case}: a detail: {body}");
    for m in mentions {
        assert!(
            detail.contains(&m.to_lowercase()),
            "{case}: the detail should mention '{m}': {body}"
        );
    }
}

/// A request body hyper sends with `Transfer-Encoding: chunked`, since its size is unknown.
struct Chunked(VecDeque<Bytes>);

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// POSTs `body` in 64 KiB chunks without a Content-Length.
async fn post_chunked(env: &Env, path: &str, body: Vec<u8>) -> Resp {
    let client = Client::builder(TokioExecutor::new()).build_http::<Chunked>();
    let chunks = Bytes::from(body)
        .chunks(64 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let req = http::Request::post(format!("{}{path}", env.scim.base))
        .header("authorization", &env.scim.auth)
        .header("content-type", "application/scim+json")
        .body(Chunked(chunks))
        .expect("request");
    assert!(req.headers().get("content-length").is_none());
    let resp = client.request(req).await.expect("send chunked request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).to_string(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

// ---- authentication -----------------------------------------------------------------------

#[tokio::test]
async fn bad_credentials_are_401_and_reach_nothing() {
    let env = Env::start().await;
    let before = env.seen().await;
    let token = env.stack.token.clone();
    let prefix = format!("Bearer {}", &token[..token.len() - 1]);
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("no header", None, "missing authorization"),
        ("wrong token", Some("Bearer not-the-token"), "bearer token"),
        (
            "Basic",
            Some("Basic c2NpbTpzZWNyZXQ="),
            "invalid user name or password",
        ),
        ("token prefix", Some(prefix.as_str()), "bearer token"),
        ("scheme only", Some("Bearer"), "malformed authorization"),
    ];
    let body = serde_json::to_vec(&user("intruder")).expect("json");
    for (case, auth, mention) in cases {
        for (method, path) in [
            ("GET", "/Users"),
            ("POST", "/Users"),
            ("DELETE", "/Users/1"),
            ("GET", "/ServiceProviderConfig"),
        ] {
            let mut headers = vec![("content-type", "application/scim+json")];
            if let Some(a) = auth {
                headers.push(("authorization", a));
            }
            let url = format!("{}{path}", env.scim.base);
            let r = env
                .scim
                .http
                .raw(method, &url, &headers, Some(body.clone()))
                .await;
            assert_error(
                &format!("{case} {method} {path}"),
                &r,
                401,
                None,
                &[mention],
            );
            let challenge = r.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{case} {method} {path}: WWW-Authenticate {challenge:?}"
            );
            assert!(
                !r.text.contains(&token[..8]),
                "{case}: the token leaked: {}",
                r.text
            );
        }
    }
    env.assert_untouched(&before, "401s").await;
    assert!(env.legacy_users().await.is_empty());
}

// ---- request bodies -----------------------------------------------------------------------

#[tokio::test]
async fn malformed_bodies_are_400_or_413_and_reach_nothing() {
    let env = Env::start().await;
    let id = env.create_user("body.target").await;
    let (resource, _) = env.get_user(&id).await;
    let record = env.legacy_user(&id).await;
    let before = env.seen().await;
    let one = format!("/Users/{id}");

    let targets = [
        ("POST", "/Users"),
        ("PUT", one.as_str()),
        ("PATCH", one.as_str()),
    ];
    let malformed: [(&[u8], &[&str]); 5] = [
        (br#"{"userName": "x","#, &["not valid JSON", "line 1"]),
        (br#"{"userName" "x"}"#, &["not valid JSON", "column"]),
        (b"", &["empty"]),
        (b" \r\n ", &["empty"]),
        (br#"[{"userName": "x"}]"#, &["JSON object"]),
    ];
    for (method, path) in targets {
        for (body, mentions) in malformed {
            let r = env.send(method, path, &[], body).await;
            let case = format!("{method} {path} {}", String::from_utf8_lossy(body));
            assert_error(&case, &r, 400, Some("invalidSyntax"), mentions);
        }
    }

    // Larger than max_body_bytes: announced by Content-Length, and chunked without one.
    let mut big = user("big.body");
    big["displayName"] = json!("x".repeat(MAX_BODY));
    let big = serde_json::to_vec(&big).expect("json");
    let limit = MAX_BODY.to_string();
    for (method, path) in targets {
        let r = env.send(method, path, &[], &big).await;
        assert_error(&format!("{method} {path}"), &r, 413, None, &[&limit]);
    }
    let r = post_chunked(&env, "/Users", big.clone()).await;
    assert_error("chunked", &r, 413, None, &[&limit]);
    // One byte over the limit is refused; the limit itself is not (it then fails as a user).
    let r = post_chunked(&env, "/Users", vec![b' '; MAX_BODY + 1]).await;
    assert_error("chunked, limit + 1", &r, 413, None, &[&limit]);
    let r = post_chunked(&env, "/Users", vec![b' '; MAX_BODY]).await;
    assert_error("chunked, limit", &r, 400, Some("invalidSyntax"), &["empty"]);

    env.assert_untouched(&before, "malformed bodies").await;
    assert_eq!(env.get_user(&id).await.0, resource);
    assert_eq!(env.legacy_user(&id).await, record);
    assert_eq!(env.legacy_usernames().await, ["body.target"]);
}

// ---- resource validation ------------------------------------------------------------------

#[tokio::test]
async fn invalid_users_are_400_and_create_nothing() {
    let env = Env::start().await;
    let before = env.seen().await;
    let with = |k: &str, v: Value| {
        let mut u = user("invalid.user");
        u[k] = v;
        u
    };
    let mut no_user_name = user("x");
    no_user_name
        .as_object_mut()
        .expect("object")
        .remove("userName");
    let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
        (
            "unknown attribute",
            with("favoriteColor", json!("blue")),
            "invalidValue",
            vec!["favoriteColor"],
        ),
        (
            "active not a boolean",
            with("active", json!("maybe")),
            "invalidValue",
            vec!["active"],
        ),
        (
            "userName not a string",
            with("userName", json!(5)),
            "invalidValue",
            vec!["userName"],
        ),
        (
            "userName missing",
            no_user_name,
            "invalidValue",
            vec!["userName"],
        ),
        (
            "schemas without the core URN",
            with(
                "schemas",
                json!(["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]),
            ),
            "invalidSyntax",
            vec![USER_URN],
        ),
    ];
    for (case, body, scim_type, mentions) in &cases {
        let r = env.scim.post("/Users", body).await;
        assert_error(case, &r, 400, Some(scim_type), mentions);
        // The same body as a replacement of a user that does not exist fails the same way,
        // before the legacy app is asked for the user.
        let r = env.scim.put("/Users/1", body).await;
        assert_error(case, &r, 400, Some(scim_type), mentions);
    }
    env.assert_untouched(&before, "invalid users").await;
    assert!(env.legacy_users().await.is_empty());
}

// ---- list parameters ----------------------------------------------------------------------

#[tokio::test]
async fn bad_list_parameters_are_400_and_reach_nothing() {
    let env = Env::start().await;
    let before = env.seen().await;
    for (filter, mentions) in [
        ("userName eq", vec!["offset 11"]),
        ("(userName eq \"a\"", vec!["offset 16"]),
        (
            "userName zz \"a\"",
            vec!["offset 9", "expected an operator"],
        ),
        ("favoriteColor eq \"blue\"", vec!["favoriteColor"]),
        ("userName eq \"a\" and", vec!["offset 19"]),
        ("emails[type eq \"work\"", vec!["offset"]),
    ] {
        let r = env
            .scim
            .get(&format!("/Users?filter={}", enc(filter)))
            .await;
        assert_error(filter, &r, 400, Some("invalidFilter"), &mentions);
        let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter});
        let r = env.scim.post("/Users/.search", &search).await;
        assert_error(filter, &r, 400, Some("invalidFilter"), &mentions);
    }
    for (query, mentions) in [
        ("count=abc", vec!["count", "abc"]),
        ("startIndex=x", vec!["startIndex"]),
        ("sortOrder=sideways", vec!["sortOrder", "sideways"]),
        ("sortBy=favoriteColor", vec!["favoriteColor"]),
        ("attributes=no..such", vec!["no..such"]),
    ] {
        let r = env.scim.get(&format!("/Users?{query}")).await;
        assert_error(query, &r, 400, Some("invalidValue"), &mentions);
    }
    env.assert_untouched(&before, "bad list parameters").await;
}

// ---- PATCH ----------------------------------------------------------------------------------

#[tokio::test]
async fn patch_errors_leave_the_user_unchanged() {
    let env = Env::start().await;
    let id = env.create_user("patch.target").await;
    let (resource, etag) = env.get_user(&id).await;
    let record = env.legacy_user(&id).await;
    let before = env.seen().await;
    let path = format!("/Users/{id}");

    let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
        (
            "no schemas",
            json!({"Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}),
            "invalidSyntax",
            vec!["schemas"],
        ),
        (
            "wrong schema",
            json!({"schemas": [USER_URN], "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}),
            "invalidSyntax",
            vec![PATCH_URN],
        ),
        (
            "no Operations",
            json!({"schemas": [PATCH_URN]}),
            "invalidSyntax",
            vec!["Operations"],
        ),
        (
            "unknown op",
            patch(json!([{"op": "frobnicate", "path": "displayName", "value": "X"}])),
            "invalidSyntax",
            vec!["frobnicate"],
        ),
        (
            "unknown attribute in path",
            patch(json!([{"op": "replace", "path": "favoriteColor", "value": "blue"}])),
            "invalidPath",
            vec!["favoriteColor"],
        ),
        (
            "malformed path",
            patch(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}])),
            "invalidPath",
            vec!["offset"],
        ),
        (
            "remove without path",
            patch(json!([{"op": "remove"}])),
            "noTarget",
            vec!["path"],
        ),
        (
            "readOnly id",
            patch(json!([{"op": "replace", "path": "id", "value": "42"}])),
            "mutability",
            vec!["'id'", "readOnly"],
        ),
        (
            "wrong type",
            patch(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
            "invalidValue",
            vec!["active"],
        ),
        (
            // A valid first operation must not be applied when a later one fails.
            "valid op then a failing one",
            patch(json!([
                {"op": "replace", "path": "displayName", "value": "Half Done"},
                {"op": "replace", "path": "id", "value": "42"}
            ])),
            "mutability",
            vec!["'id'", "readOnly"],
        ),
    ];
    for (case, body, scim_type, mentions) in &cases {
        let r = env.scim.patch(&path, body).await;
        assert_error(case, &r, 400, Some(scim_type), mentions);
        env.assert_unwritten(&before, case).await;
    }
    let (after, after_etag) = env.get_user(&id).await;
    assert_eq!(after, resource);
    assert_eq!(after_etag, etag);
    assert_eq!(env.legacy_user(&id).await, record);
}

// ---- preconditions --------------------------------------------------------------------------

#[tokio::test]
async fn if_match_mismatch_is_412_and_changes_nothing() {
    let env = Env::start().await;
    let id = env.create_user("etag.target").await;
    let (resource, etag) = env.get_user(&id).await;
    let record = env.legacy_user(&id).await;
    let before = env.seen().await;
    let path = format!("/Users/{id}");
    let mut replacement = user("etag.target");
    replacement["displayName"] = json!("Replaced");
    let put = serde_json::to_vec(&replacement).expect("json");
    let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "Patched"}]));
    let patch_body = serde_json::to_vec(&rename).expect("json");

    for stale in [r#"W/"not-the-version""#, r#""strong-but-wrong""#] {
        let h = [("if-match", stale)];
        let r = env.send("PUT", &path, &h, &put).await;
        assert_error(stale, &r, 412, None, &["If-Match"]);
        let r = env.send("PATCH", &path, &h, &patch_body).await;
        assert_error(stale, &r, 412, None, &["If-Match"]);
        let r = env.send("DELETE", &path, &h, b"").await;
        assert_error(stale, &r, 412, None, &["If-Match"]);
    }
    env.assert_unwritten(&before, "412s").await;
    assert_eq!(env.get_user(&id).await, (resource, etag.clone()));
    assert_eq!(env.legacy_user(&id).await, record);

    // The current ETag admits each write; the one it replaces no longer does.
    let r = env.send("PUT", &path, &[("if-match", &etag)], &put).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["displayName"], "Replaced");
    let etag2 = r.header("etag").expect("ETag").to_string();
    assert_ne!(etag2, etag);
    assert_eq!(env.get_user(&id).await.1, etag2);
    let r = env
        .send("PATCH", &path, &[("if-match", &etag)], &patch_body)
        .await;
    assert_error("PATCH with the replaced ETag", &r, 412, None, &["If-Match"]);
    let r = env
        .send("PATCH", &path, &[("if-match", &etag2)], &patch_body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["displayName"], "Patched");
    assert_eq!(env.legacy_user(&id).await["display_name"], "Patched");
    let etag3 = r.header("etag").expect("ETag").to_string();
    let r = env
        .send("DELETE", &path, &[("if-match", &etag2)], b"")
        .await;
    assert_error(
        "DELETE with the replaced ETag",
        &r,
        412,
        None,
        &["If-Match"],
    );
    assert_eq!(env.legacy_usernames().await, ["etag.target"]);
    let r = env
        .send("DELETE", &path, &[("if-match", &etag3)], b"")
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(env.legacy_users().await.is_empty());
    // `*` admits any current version, but there is none now.
    let r = env.send("DELETE", &path, &[("if-match", "*")], b"").await;
    assert_error("DELETE after delete", &r, 404, None, &[&id]);
}

// ---- routing --------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_and_methods_are_scim_errors() {
    let env = Env::start().await;
    let before = env.seen().await;
    for path in [
        "/Nope",
        "/Users/1/extra/deeper",
        "/Schemas/urn:nope",
        "/ResourceTypes/Nope",
    ] {
        let r = env.scim.get(path).await;
        assert_error(path, &r, 404, None, &[]);
    }
    let r = env.scim.get("/Nope").await;
    assert_error("/Nope", &r, 404, None, &["Nope"]);
    // Outside the SCIM base path too.
    let root = env.scim.base.trim_end_matches("/scim/v2").to_string();
    let r = env
        .scim
        .http
        .raw("GET", &format!("{root}/elsewhere"), &[], None)
        .await;
    assert_error("outside the base path", &r, 404, None, &["elsewhere"]);
    // A sibling of the base path is outside it too; under it, a caller without a credential
    // is refused before the route is looked at.
    let r = env
        .scim
        .http
        .raw("GET", &format!("{root}/scim/v2x/Users"), &[], None)
        .await;
    assert_error("a sibling of the base path", &r, 404, None, &["v2x"]);
    for path in ["/Nope", "/Users", ""] {
        let r = env
            .scim
            .http
            .raw("GET", &format!("{}{path}", env.scim.base), &[], None)
            .await;
        assert_error(&format!("{path} without a token"), &r, 401, None, &[]);
    }
    env.assert_untouched(&before, "unknown routes").await;

    for (method, path) in [
        ("POST", "/Schemas"),
        ("DELETE", "/Schemas"),
        ("PUT", "/ResourceTypes"),
        ("DELETE", "/ServiceProviderConfig"),
        ("PATCH", "/ServiceProviderConfig"),
        ("PUT", "/Users"),
        ("DELETE", "/Users"),
        ("POST", "/Users/1"),
        ("GET", "/Users/.search"),
    ] {
        let r = env.scim.call(method, path, Some(&json!({}))).await;
        assert_error(&format!("{method} {path}"), &r, 405, None, &[method]);
    }
    for (method, path) in [("POST", "/Bulk"), ("GET", "/Me"), ("POST", "/.search")] {
        let r = env.scim.call(method, path, Some(&json!({}))).await;
        assert_error(&format!("{method} {path}"), &r, 501, None, &["not support"]);
    }
    env.assert_untouched(&before, "wrong methods").await;

    // A resource the legacy app does not have.
    for path in ["/Users/999999", "/Groups/999999", "/Users/not-a-number"] {
        let r = env.scim.get(path).await;
        assert_error(path, &r, 404, None, &[]);
        let r = env.scim.delete(path).await;
        assert_error(path, &r, 404, None, &[]);
        let r = env
            .scim
            .patch(
                path,
                &patch(json!([{"op": "replace", "path": "displayName", "value": "X"}])),
            )
            .await;
        assert_error(path, &r, 404, None, &[]);
    }
    let r = env.scim.get("/Users/999999").await;
    assert_error("/Users/999999", &r, 404, None, &["999999"]);
    let now = env.seen().await;
    assert_eq!((now.users, now.teams), (before.users, before.teams));
}

// ---- backend faults -------------------------------------------------------------------------

/// A stack whose backend calls time out after [`BACKEND_TIMEOUT`].
async fn impatient() -> Env {
    Env::with(DemoOptions {
        backend_timeout: Some(BACKEND_TIMEOUT),
        ..DemoOptions::for_tests("default")
    })
    .await
}

/// Creates `user_name` while `fault` is armed: the gateway must answer `status` with a detail
/// mentioning `mentions`, leave no user behind, and a retry after the fault must succeed.
async fn create_through_fault(env: &Env, fault: Value, status: u16, mentions: &[&str]) {
    let user_name = format!("fault.{}", fault["mode"].as_str().unwrap_or("x"));
    let user_name = match fault.get("status") {
        Some(s) => format!("{user_name}.{s}"),
        None => user_name,
    };
    let before = env.legacy_usernames().await;
    env.fault(fault.clone()).await;
    let r = env.scim.post("/Users", &user(&user_name)).await;
    assert!(!(200..300).contains(&r.status), "{fault}: {}", r.text);
    assert_error(&fault.to_string(), &r, status, None, mentions);
    if status == 503 {
        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    }
    // The legacy app's own error body (it may hold internals) is not passed on for 5xx.
    assert!(!r.text.contains("injected"), "{fault}: {}", r.text);
    env.fault(json!({"mode": "none"})).await;
    assert_eq!(
        env.legacy_usernames().await,
        before,
        "{fault}: a failed create left a user behind"
    );
    let r = env.scim.post("/Users", &user(&user_name)).await;
    assert_eq!(r.status, 201, "{fault}: retry: {}", r.text);
    let users = env.legacy_usernames().await;
    assert_eq!(
        users.iter().filter(|u| **u == user_name).count(),
        1,
        "{fault}: {users:?}"
    );
}

#[tokio::test]
async fn backend_faults_are_5xx_and_lose_nothing() {
    let env = impatient().await;
    let backend = env.stack.legacy_url.clone();

    create_through_fault(
        &env,
        json!({"mode": "status", "status": 500}),
        502,
        &["backend answered HTTP 500"],
    )
    .await;
    // A legacy 503 stays a 503 (with Retry-After) so Entra retries; its body is withheld.
    create_through_fault(
        &env,
        json!({"mode": "status", "status": 503, "retry_after": 7}),
        503,
        &["temporarily unavailable (HTTP 503)"],
    )
    .await;
    // A rate-limited gateway is temporarily unavailable to its own client.
    create_through_fault(
        &env,
        json!({"mode": "status", "status": 429}),
        503,
        &["rate limiting"],
    )
    .await;
    // Credentials the legacy app refuses are the gateway's problem, not the client's.
    create_through_fault(
        &env,
        json!({"mode": "status", "status": 401}),
        502,
        &["credentials"],
    )
    .await;
    create_through_fault(&env, json!({"mode": "garbage"}), 502, &["not valid JSON"]).await;
    create_through_fault(&env, json!({"mode": "close"}), 502, &[&backend]).await;
    create_through_fault(
        &env,
        json!({"mode": "delay", "delay_ms": 1000}),
        504,
        &[&backend, "300 ms"],
    )
    .await;
    // The timed-out create was abandoned, not completed late behind the gateway's back.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let late = env.legacy_usernames().await;
    assert_eq!(
        late.iter().filter(|u| *u == "fault.delay").count(),
        1,
        "the timed-out create completed late: {late:?}"
    );

    // Reads and writes of an existing user fail the same way and change nothing.
    let id = env.create_user("fault.existing").await;
    let (resource, _) = env.get_user(&id).await;
    let record = env.legacy_user(&id).await;
    let path = format!("/Users/{id}");
    let rename = patch(json!([{"op": "replace", "path": "displayName", "value": "Faulted"}]));
    for (fault, status) in [
        (json!({"mode": "status", "status": 500}), 502),
        (json!({"mode": "garbage"}), 502),
        // A 2xx that starts as a record and is cut off: GET and the reads behind PATCH and
        // PUT map a record straight from its text; the cut is found all the same.
        (json!({"mode": "truncated"}), 502),
        (json!({"mode": "delay", "delay_ms": 1000}), 504),
    ] {
        for method in ["GET", "PATCH", "PUT", "DELETE", "LIST"] {
            env.fault(fault.clone()).await;
            let r = match method {
                "GET" => env.scim.get(&path).await,
                "PATCH" => env.scim.patch(&path, &rename).await,
                "PUT" => env.scim.put(&path, &user("fault.renamed")).await,
                "DELETE" => env.scim.delete(&path).await,
                _ => env.scim.get("/Users?count=5").await,
            };
            assert!(
                !(200..300).contains(&r.status),
                "{fault} {method}: {}",
                r.text
            );
            assert_error(&format!("{fault} {method}"), &r, status, None, &[]);
            env.fault(json!({"mode": "none"})).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(env.get_user(&id).await.0, resource);
    assert_eq!(env.legacy_user(&id).await, record);
}

#[tokio::test]
async fn a_stopped_legacy_app_is_503() {
    let env = impatient().await;
    let id = env.create_user("before.stop").await;
    let Env {
        stack,
        scim,
        legacy: _,
    } = env;
    let DemoStack {
        legacy: app,
        legacy_url,
        gateway: _gateway,
        ..
    } = stack;
    app.shutdown().await;
    let path = format!("/Users/{id}");
    for r in [
        scim.post("/Users", &user("after.stop")).await,
        scim.get(&path).await,
        scim.get("/Users").await,
        scim.patch(
            &path,
            &patch(json!([{"op": "replace", "path": "displayName", "value": "X"}])),
        )
        .await,
        scim.delete(&path).await,
    ] {
        assert_error("stopped", &r, 503, None, &[&legacy_url, "unreachable"]);
        assert!(
            r.header("retry-after").is_some(),
            "Retry-After: {:?}",
            r.headers
        );
    }
    // The gateway itself still answers what needs no backend.
    let r = scim.get("/ServiceProviderConfig").await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// ---- legacy validation ----------------------------------------------------------------------

#[tokio::test]
async fn legacy_rejections_keep_their_message() {
    let env = Env::start().await;
    let alice = env.create_user("alice").await;

    // The legacy app owns uniqueness; its 409 is a SCIM uniqueness conflict.
    let r = env.scim.post("/Users", &user("alice")).await;
    assert_error("duplicate", &r, 409, Some("uniqueness"), &["alice"]);
    let r = env.scim.post("/Users", &user("ALICE")).await;
    assert_error(
        "duplicate, other case",
        &r,
        409,
        Some("uniqueness"),
        &["alice"],
    );
    assert_eq!(env.legacy_usernames().await, ["alice"]);
    let bob = env.create_user("bob").await;
    let bob_record = env.legacy_user(&bob).await;
    let r = env
        .scim
        .patch(
            &format!("/Users/{bob}"),
            &patch(json!([{"op": "replace", "path": "userName", "value": "alice"}])),
        )
        .await;
    assert_error(
        "rename onto a taken userName",
        &r,
        409,
        Some("uniqueness"),
        &["alice"],
    );
    assert_eq!(env.legacy_user(&bob).await, bob_record);

    // Its 422 (an unknown member) is an invalid value, carrying its message.
    let r = env
        .scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Team A", "members": [{"value": alice}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let team = r.json["id"].as_str().expect("id").to_string();
    let members_before = env
        .legacy
        .get(&format!("/api/v1/teams/{team}/members"))
        .await;
    let before = env.seen().await;
    let r = env
        .scim
        .patch(
            &format!("/Groups/{team}"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": bob}, {"value": "999999"}]}])),
        )
        .await;
    assert_error(
        "unknown member",
        &r,
        400,
        Some("invalidValue"),
        &["unknown user ids", "999999"],
    );
    assert_eq!(
        env.legacy
            .get(&format!("/api/v1/teams/{team}/members"))
            .await,
        members_before,
        "a rejected member add changed the team"
    );
    assert_eq!(env.seen().await.teams, before.teams);

    // A rename in the same request is not applied either: the request fails as a whole.
    // (Its data, that is: undoing a write bumps the record's updated_at.)
    let team_data = |t: Value| {
        (
            t["name"].clone(),
            t["external_id"].clone(),
            t["member_count"].clone(),
        )
    };
    let team_record = team_data(env.legacy.get(&format!("/api/v1/teams/{team}")).await);
    let r = env
        .scim
        .patch(
            &format!("/Groups/{team}"),
            &patch(json!([
                {"op": "replace", "path": "displayName", "value": "Renamed"},
                {"op": "add", "path": "members", "value": [{"value": "999999"}]}
            ])),
        )
        .await;
    assert_error(
        "rename + unknown member",
        &r,
        400,
        Some("invalidValue"),
        &["999999"],
    );
    let r = env
        .scim
        .put(
            &format!("/Groups/{team}"),
            &json!({"schemas": [GROUP_URN], "displayName": "Renamed", "members": [{"value": "999999"}]}),
        )
        .await;
    assert_error(
        "PUT with an unknown member",
        &r,
        400,
        Some("invalidValue"),
        &["999999"],
    );
    assert_eq!(
        team_data(env.legacy.get(&format!("/api/v1/teams/{team}")).await),
        team_record,
        "a rejected group update was half applied"
    );
    assert_eq!(
        env.legacy
            .get(&format!("/api/v1/teams/{team}/members"))
            .await,
        members_before
    );

    // A group created with an unknown member is not left half-created.
    let r = env
        .scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Team B", "members": [{"value": "999999"}]}),
        )
        .await;
    assert_error(
        "group create with an unknown member",
        &r,
        400,
        Some("invalidValue"),
        &["999999"],
    );
    let teams = env.legacy.get("/api/v1/teams").await;
    let names: Vec<&str> = teams["data"]
        .as_array()
        .expect("teams")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Team A"],
        "a failed group create left a team behind"
    );
}

// ---- mapping scripts ------------------------------------------------------------------------

#[tokio::test]
async fn a_script_bug_is_a_generic_500_and_writes_nothing() {
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/broken/scimgate.toml");
    let env = Env::with(DemoOptions {
        config,
        ..DemoOptions::for_tests("broken")
    })
    .await;
    let before = env.seen().await;
    let mut boom = user("script.boom");
    boom.as_object_mut().expect("object").remove("emails");
    boom.as_object_mut().expect("object").remove("displayName");
    boom["title"] = json!("boom");
    let r = env.scim.post("/Users", &boom).await;
    assert_error("script bug", &r, 500, None, &["see the gateway log"]);
    // The script's file is named; what failed inside it is only logged.
    for internal in [
        "internal_secret_helper_xyzzy",
        "to_backend",
        "function",
        "line",
        "user.rhai:",
    ] {
        assert!(
            !r.text.to_lowercase().contains(internal),
            "leaked '{internal}': {}",
            r.text
        );
    }
    env.assert_untouched(&before, "script bug").await;
    assert!(env.legacy_users().await.is_empty());

    // A bug met after the legacy app created the record: the record is deleted again.
    boom["title"] = json!("late boom");
    let r = env.scim.post("/Users", &boom).await;
    assert_error("late script bug", &r, 500, None, &["see the gateway log"]);
    assert!(
        !r.text.contains("internal_secret_helper_xyzzy"),
        "{}",
        r.text
    );
    let seen = env.seen().await;
    assert_eq!(seen.users, 0, "a create that failed left its record behind");
    assert!(env.legacy_users().await.is_empty());

    // The same profile maps other users fine.
    boom["title"] = json!("fine");
    let r = env.scim.post("/Users", &boom).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(env.legacy_usernames().await, ["script.boom"]);
}

// ---- load shedding --------------------------------------------------------------------------

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/one_at_a_time.toml");
    let env = Env::with(DemoOptions {
        config,
        ..DemoOptions::for_tests("default")
    })
    .await;
    env.fault(json!({"mode": "delay", "delay_ms": 600})).await;
    let before = env.seen().await;
    let slow = {
        let scim = env.scim.clone();
        tokio::spawn(async move { scim.get("/Users").await })
    };
    // Wait until the slow request holds the only slot (it has reached the legacy app).
    for _ in 0..100 {
        if env.seen().await.requests > before.requests {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = env.scim.post("/Users", &user("shed")).await;
    assert_error("shed", &r, 503, None, &["concurrency limit"]);
    assert!(r.header("retry-after").is_some());
    let r = slow.await.expect("slow request");
    assert_eq!(r.status, 200, "{}", r.text);
    let now = env.seen().await;
    assert_eq!(
        now.requests,
        before.requests + 1,
        "the shed request reached the app"
    );
    assert!(env.legacy_users().await.is_empty());
}
