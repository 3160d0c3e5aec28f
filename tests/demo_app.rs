//! The demo legacy app over real HTTP on loopback: every route, auth, validation, paging,
//! team membership at scale and fault injection.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scimgate::demo::{DemoApp, DemoAuth, DemoConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEY: &str = "demo-key-123";

struct Api {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

impl Api {
    fn new(app: &DemoApp) -> Self {
        Api {
            http: Client::builder(TokioExecutor::new()).build_http(),
            base: app.base_url(),
        }
    }

    async fn try_send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Bytes,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let resp = self
            .http
            .request(req.body(Full::new(body)).unwrap())
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn send(&self, method: Method, path: &str, key: Option<&str>, body: Bytes) -> Reply {
        self.try_send(method, path, key, body).await.unwrap()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
        self.send(method, path, Some(KEY), body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    async fn create_user(&self, email: &str) -> u64 {
        let r = self.post("/api/v1/users", json!({ "email": email })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.json()["id"].as_u64().unwrap()
    }

    async fn create_team(&self, name: &str) -> u64 {
        let r = self.post("/api/v1/teams", json!({ "name": name })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.json()["id"].as_u64().unwrap()
    }

    async fn state(&self) -> Value {
        let r = self.get("/__demo/state").await;
        assert_eq!(r.status, StatusCode::OK);
        r.json()
    }
}

async fn start() -> (DemoApp, Api) {
    let app = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(KEY))
        .await
        .unwrap();
    let api = Api::new(&app);
    (app, api)
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn every_route_needs_the_api_key() {
    let (_app, api) = start().await;
    let routes = [
        (Method::GET, "/api/v1/users"),
        (Method::POST, "/api/v1/users"),
        (Method::GET, "/api/v1/users/1"),
        (Method::PUT, "/api/v1/users/1"),
        (Method::DELETE, "/api/v1/users/1"),
        (Method::POST, "/api/v1/users/1/deactivate"),
        (Method::POST, "/api/v1/users/1/activate"),
        (Method::POST, "/api/v1/users/1/sessions/revoke"),
        (Method::GET, "/api/v1/teams"),
        (Method::GET, "/api/v1/teams/1/members"),
        (Method::DELETE, "/api/v1/teams/1/members/1"),
        (Method::GET, "/api/v1/offices"),
        (Method::GET, "/api/v1/folders"),
        (Method::POST, "/__demo/faults"),
        (Method::GET, "/__demo/state"),
        (Method::GET, "/nowhere"),
    ];
    for (method, path) in &routes {
        for key in [None, Some("wrong"), Some("demo-key-12")] {
            let r = api.send(method.clone(), path, key, Bytes::new()).await;
            assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    let state = api.state().await;
    assert_eq!(state["unauthorized_total"], routes.len() as u64 * 3);
    assert_eq!(
        state["requests_total"], 0,
        "unauthorized requests are not served"
    );
    // With the key, an unknown route is a 404 in the demo's error shape.
    assert_error(
        &api.get("/nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = api.call(Method::PATCH, "/api/v1/users", None).await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "bad_request");
}

#[tokio::test]
async fn basic_mode_wants_key_and_password_and_no_api_key() {
    use base64::Engine as _;
    let app = DemoApp::start(
        "127.0.0.1:0",
        DemoConfig {
            auth: DemoAuth::Basic {
                key: "product-key".into(),
                password: "pa:ss".into(),
            },
        },
    )
    .await
    .unwrap();
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let get = |header: Option<(&'static str, String)>| {
        let mut req = Request::builder().uri(format!("{}/api/v1/users", app.base_url()));
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let fut = http.request(req.body(Full::new(Bytes::new())).unwrap());
        async move { fut.await.unwrap() }
    };
    let basic = |pair: &str| {
        (
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
        )
    };
    let ok = get(Some(basic("product-key:pa:ss"))).await;
    assert_eq!(ok.status(), StatusCode::OK);
    for wrong in [
        None,
        Some(basic("product-key:pa")),
        Some(basic("other:pa:ss")),
        Some(("x-api-key", "product-key".to_string())),
        Some(("authorization", "Bearer product-key:pa:ss".to_string())),
    ] {
        let r = get(wrong.clone()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"demo\"")
        );
    }
    assert!(!format!("{:?}", DemoAuth::ApiKey("k1".into())).contains("k1"));
}

#[tokio::test]
async fn user_crud_round_trip() {
    let (_app, api) = start().await;
    let full = json!({
        "email": "Ada.Lovelace@Example.com",
        "first_name": "Ada", "last_name": "Lovelace", "display_name": "Ada Lovelace",
        "initials": "AL", "job_title": "Analyst", "phone": "+61 2 5550 0000",
        "direct_phone": "+61 2 5550 0001", "service_email": "ada.svc@example.com",
        "office_id": 3, "department": "Engines", "employee_number": "E-1",
        "user_type": "Premium", "role": "Admin", "external_id": "ext-ada",
        "metadata": { "cost_centre": "42", "badge": "A1" },
        "folders": ["client-files"]
    });
    let r = api.post("/api/v1/users", full.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let created = r.json();
    let id = created["id"].as_u64().unwrap();
    for (k, v) in full.as_object().unwrap() {
        assert_eq!(&created[k], v, "field {k}");
    }
    assert_eq!(created["status"], "active");
    assert_eq!(created["active_sessions"], 1);
    assert_eq!(created["sessions_revoked"], 0);
    assert_eq!(created["manager_id"], Value::Null);
    for ts in ["created_at", "updated_at"] {
        chrono::DateTime::parse_from_rfc3339(created[ts].as_str().unwrap()).unwrap();
    }
    let expected_keys = [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "display_name",
        "initials",
        "job_title",
        "phone",
        "direct_phone",
        "service_email",
        "office_id",
        "department",
        "employee_number",
        "manager_id",
        "user_type",
        "role",
        "status",
        "external_id",
        "metadata",
        "folders",
        "active_sessions",
        "sessions_revoked",
        "created_at",
        "updated_at",
    ];
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want = expected_keys.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want);

    let r = api.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), created);

    // A manager for the PUT.
    let boss = api.create_user("boss@example.com").await;
    // PUT replaces all writable fields: omitted ones become null / empty; status and role
    // are kept.
    api.post(&format!("/api/v1/users/{id}/deactivate"), json!({}))
        .await;
    let r = api
        .put(
            &format!("/api/v1/users/{id}"),
            json!({ "email": "ada@example.com", "first_name": "Augusta", "manager_id": boss }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let updated = r.json();
    assert_eq!(updated["email"], "ada@example.com");
    assert_eq!(updated["first_name"], "Augusta");
    assert_eq!(updated["manager_id"], boss);
    assert_eq!(updated["last_name"], Value::Null);
    assert_eq!(updated["office_id"], Value::Null);
    assert_eq!(updated["metadata"], json!({}));
    assert_eq!(updated["folders"], json!([]));
    assert_eq!(updated["status"], "inactive");
    assert_eq!(updated["role"], "Admin", "the role is kept when omitted");
    assert_eq!(updated["created_at"], created["created_at"]);
    // The role has its own call; null takes it away.
    let r = api
        .put(
            &format!("/api/v1/users/{id}/role"),
            json!({ "role": "Viewer" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["role"], "Viewer");
    assert_eq!(r.json()["first_name"], "Augusta");
    let r = api
        .put(&format!("/api/v1/users/{id}/role"), json!({ "role": null }))
        .await;
    assert_eq!(r.json()["role"], Value::Null);
    let r = api
        .put(&format!("/api/v1/users/{id}/role"), json!({ "rank": "x" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api
        .put("/api/v1/users/999999/role", json!({ "role": "Admin" }))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    api.put(
        &format!("/api/v1/users/{id}/role"),
        json!({ "role": "Admin" }),
    )
    .await;
    let r = api
        .put(
            &format!("/api/v1/users/{id}"),
            json!({ "email": "ada@example.com", "status": "active" }),
        )
        .await;
    assert_eq!(r.json()["status"], "active");
    // The old email is free again.
    api.create_user("ada.lovelace@example.com").await;

    // Deleting the manager clears manager_id on the report.
    let r = api.delete(&format!("/api/v1/users/{boss}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    assert_eq!(
        api.get(&format!("/api/v1/users/{id}")).await.json()["manager_id"],
        Value::Null
    );
    assert_error(
        &api.get(&format!("/api/v1/users/{boss}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.delete(&format!("/api/v1/users/{boss}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/api/v1/users/abc").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = api
        .put("/api/v1/users/999", json!({ "email": "x@example.com" }))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn duplicate_emails_conflict_ignoring_case() {
    let (_app, api) = start().await;
    let a = api.create_user("jo@example.com").await;
    let b = api.create_user("max@example.com").await;
    let r = api
        .post("/api/v1/users", json!({ "email": "JO@EXAMPLE.COM" }))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "duplicate_email");
    let r = api
        .put(
            &format!("/api/v1/users/{b}"),
            json!({ "email": "Jo@Example.com" }),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "duplicate_email");
    // A user may keep its own email in another spelling.
    let r = api
        .put(
            &format!("/api/v1/users/{a}"),
            json!({ "email": "JO@example.com" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.state().await["users"], 2);
}

#[tokio::test]
async fn concurrent_creates_of_one_email_yield_one_user() {
    let (_app, api) = start().await;
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            api.post("/api/v1/users", json!({ "email": email }))
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        15
    );
}

#[tokio::test]
async fn bodies_are_validated() {
    let (_app, api) = start().await;
    let cases = [
        (json!({}), "email"),
        (json!({ "email": "" }), "email"),
        (json!({ "email": "not-an-email" }), "email"),
        (
            json!({ "email": "a@example.com", "nickname": "x" }),
            "nickname",
        ),
        (json!({ "email": "a@example.com", "id": 7 }), "read-only"),
        (
            json!({ "email": "a@example.com", "active_sessions": 0 }),
            "read-only",
        ),
        (
            json!({ "email": "a@example.com", "office_id": 99 }),
            "office_id",
        ),
        (
            json!({ "email": "a@example.com", "office_id": "Sydney" }),
            "office_id",
        ),
        (
            json!({ "email": "a@example.com", "manager_id": 12345 }),
            "manager_id",
        ),
        (
            json!({ "email": "a@example.com", "status": "suspended" }),
            "suspended",
        ),
        (
            json!({ "email": "a@example.com", "metadata": { "k": 1 } }),
            "",
        ),
        (json!({ "email": "a@example.com", "metadata": ["k"] }), ""),
        (json!({ "email": "a@example.com", "folders": "hr" }), ""),
        (
            json!({ "email": "a@example.com", "folders": ["hr", " client-files"] }),
            "client-files",
        ),
        (json!(["a@example.com"]), "object"),
    ];
    for (body, needle) in cases {
        let r = api.post("/api/v1/users", body.clone()).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    for raw in ["{\"email\":", "email=a@b", "{\"email\":\"a@b.c\"}}"] {
        let r = api
            .send(Method::POST, "/api/v1/users", Some(KEY), Bytes::from(raw))
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = api
        .send(Method::POST, "/api/v1/users", Some(KEY), Bytes::new())
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    // Over 1 MiB is refused before parsing.
    let big = json!({ "email": "big@example.com", "department": "x".repeat(1 << 20) });
    let r = api.post("/api/v1/users", big).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "bad_request");
    assert_eq!(api.state().await["users"], 0, "nothing invalid was stored");

    // Folders are accepted by guid (any case) or external_id.
    let folders = api.get("/api/v1/folders").await.json();
    let guid = folders["data"][0]["guid"].as_str().unwrap().to_uppercase();
    let r = api
        .post(
            "/api/v1/users",
            json!({ "email": "f@example.com", "folders": [guid, "hr"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["folders"][1], "hr");

    // Team bodies.
    let r = api.post("/api/v1/teams", json!({ "name": "  " })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = api
        .post("/api/v1/teams", json!({ "name": "t", "members": [] }))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn user_lists_filter_and_page() {
    let (_app, api) = start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let r = api
            .post(
                "/api/v1/users",
                json!({ "email": format!("User{i}@Example.com"), "external_id": format!("ext-{}", i % 3) }),
            )
            .await;
        ids.push(r.json()["id"].as_u64().unwrap());
    }
    let r = api.get("/api/v1/users").await.json();
    assert_eq!(
        (
            r["total"].as_u64(),
            r["page"].as_u64(),
            r["per_page"].as_u64()
        ),
        (Some(7), Some(1), Some(50))
    );
    assert_eq!(r["data"].as_array().unwrap().len(), 7);

    let page = |p: u64| format!("/api/v1/users?per_page=3&page={p}");
    let mut seen = Vec::new();
    for p in 1..=3 {
        let r = api.get(&page(p)).await.json();
        assert_eq!(r["total"], 7);
        assert_eq!(r["page"], p);
        assert_eq!(r["per_page"], 3);
        seen.extend(
            r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_u64().unwrap()),
        );
    }
    assert_eq!(seen, ids, "pages cover every user once, in id order");
    let r = api.get(&page(4)).await.json();
    assert_eq!(r["data"], json!([]));
    assert_eq!(r["total"], 7);

    let r = api
        .get("/api/v1/users?email=user3%40EXAMPLE.com")
        .await
        .json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["data"][0]["id"], ids[3]);
    assert_eq!(r["data"][0]["email"], "User3@Example.com");
    let r = api.get("/api/v1/users?email=user3").await.json();
    assert_eq!(r["total"], 0);

    let r = api.get("/api/v1/users?external_id=ext-1").await.json();
    let got: Vec<u64> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1], ids[4]]);

    api.post(&format!("/api/v1/users/{}/deactivate", ids[4]), json!({}))
        .await;
    let r = api.get("/api/v1/users?status=inactive").await.json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["data"][0]["id"], ids[4]);
    let r = api
        .get("/api/v1/users?status=active&external_id=ext-1")
        .await
        .json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["data"][0]["id"], ids[1]);

    assert_eq!(
        api.get("/api/v1/users?per_page=5000").await.json()["per_page"],
        200
    );
    for bad in [
        "page=0",
        "page=x",
        "per_page=0",
        "per_page=-1",
        "status=deleted",
    ] {
        let r = api.get(&format!("/api/v1/users?{bad}")).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test]
async fn activation_and_session_revocation() {
    let (_app, api) = start().await;
    let id = api.create_user("s@example.com").await;
    let r = api
        .post(&format!("/api/v1/users/{id}/deactivate"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let u = r.json();
    assert_eq!(
        (u["status"].as_str(), u["active_sessions"].as_u64()),
        (Some("inactive"), Some(1))
    );
    let u = api
        .post(&format!("/api/v1/users/{id}/sessions/revoke"), json!({}))
        .await
        .json();
    assert_eq!(
        (
            u["active_sessions"].as_u64(),
            u["sessions_revoked"].as_u64()
        ),
        (Some(0), Some(1))
    );
    let u = api
        .post(&format!("/api/v1/users/{id}/sessions/revoke"), json!({}))
        .await
        .json();
    assert_eq!(u["sessions_revoked"], 2);
    let u = api
        .post(&format!("/api/v1/users/{id}/activate"), json!({}))
        .await
        .json();
    assert_eq!(u["status"], "active");
    // The actions need no body at all.
    let r = api
        .send(
            Method::POST,
            &format!("/api/v1/users/{id}/deactivate"),
            Some(KEY),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.json()["status"], "inactive");
    for action in ["deactivate", "activate", "sessions/revoke"] {
        let r = api
            .post(&format!("/api/v1/users/999/{action}"), json!({}))
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn teams_and_membership() {
    let (_app, api) = start().await;
    let r = api
        .post(
            "/api/v1/teams",
            json!({ "name": "Sales", "external_id": "grp-1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let team = r.json();
    let tid = team["id"].as_u64().unwrap();
    assert_eq!(team["member_count"], 0);
    let mut keys: Vec<String> = team.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "external_id",
            "id",
            "member_count",
            "name",
            "updated_at"
        ]
    );
    let other = api.create_team("Marketing").await;

    let users = [
        api.create_user("a@example.com").await,
        api.create_user("b@example.com").await,
        api.create_user("c@example.com").await,
    ];
    let members = format!("/api/v1/teams/{tid}/members");
    let r = api
        .post(&members, json!({ "user_ids": [users[2], users[0]] }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({ "team_id": tid, "added": 2, "member_count": 2 })
    );
    // Adding an existing member again is fine.
    let r = api
        .post(&members, json!({ "user_ids": [users[0], users[1]] }))
        .await;
    assert_eq!(
        r.json(),
        json!({ "team_id": tid, "added": 1, "member_count": 3 })
    );
    // An unknown user fails the whole call.
    let r = api
        .post(&members, json!({ "user_ids": [users[1], 4242] }))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4242")
    );
    let r = api.post(&members, json!({ "ids": [1] })).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = api
        .post("/api/v1/teams/77/members", json!({ "user_ids": [] }))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    let r = api.get(&format!("{members}?per_page=2")).await.json();
    assert_eq!(r["total"], 3);
    assert_eq!(
        r["data"],
        json!([{ "user_id": users[0], "email": "a@example.com" }, { "user_id": users[1], "email": "b@example.com" }])
    );
    let r = api
        .get(&format!("{members}?per_page=2&page=2"))
        .await
        .json();
    assert_eq!(
        r["data"],
        json!([{ "user_id": users[2], "email": "c@example.com" }])
    );
    assert_eq!(
        api.get(&format!("/api/v1/teams/{tid}")).await.json()["member_count"],
        3
    );
    assert_error(
        &api.get("/api/v1/teams/77/members").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Remove a member; removing a non-member is a 404.
    let r = api.delete(&format!("{members}/{}", users[1])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.delete(&format!("{members}/{}", users[1])).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .delete(&format!("/api/v1/teams/{other}/members/{}", users[0]))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // Deleting a user removes it from its teams.
    api.post(
        &format!("/api/v1/teams/{other}/members"),
        json!({ "user_ids": [users[0]] }),
    )
    .await;
    assert_eq!(
        api.delete(&format!("/api/v1/users/{}", users[0]))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = api.get(&members).await.json();
    assert_eq!(
        r["data"],
        json!([{ "user_id": users[2], "email": "c@example.com" }])
    );
    assert_eq!(
        api.get(&format!("/api/v1/teams/{other}")).await.json()["member_count"],
        0
    );

    // Lists and filters.
    let r = api.get("/api/v1/teams?name=sales").await.json();
    assert_eq!(
        (r["total"].as_u64(), r["data"][0]["id"].as_u64()),
        (Some(1), Some(tid))
    );
    let r = api.get("/api/v1/teams?external_id=grp-1").await.json();
    assert_eq!(r["total"], 1);
    let r = api.get("/api/v1/teams?per_page=1&page=2").await.json();
    assert_eq!(
        (r["total"].as_u64(), r["data"][0]["id"].as_u64()),
        (Some(2), Some(other))
    );

    // PUT replaces name and external_id; members stay.
    let r = api
        .put(
            &format!("/api/v1/teams/{tid}"),
            json!({ "name": "Sales EMEA" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.json();
    assert_eq!(
        (
            t["name"].as_str(),
            t["external_id"].is_null(),
            t["member_count"].as_u64()
        ),
        (Some("Sales EMEA"), true, Some(1))
    );
    assert_error(
        &api.put("/api/v1/teams/77", json!({ "name": "x" })).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Deleting a team leaves its users alone.
    assert_eq!(
        api.delete(&format!("/api/v1/teams/{tid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &api.get(&format!("/api/v1/teams/{tid}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        api.get(&format!("/api/v1/users/{}", users[2])).await.status,
        StatusCode::OK
    );
    assert_error(
        &api.delete(&format!("/api/v1/teams/{tid}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn a_team_with_100k_members() {
    const N: usize = 100_000;
    const BATCH: usize = 5_000;
    const REMOVED: usize = 2_000;
    let (app, api) = start().await;
    // Users are seeded in-process (100k HTTP round trips take ~50 s in a debug build); the
    // membership operations under test all go through the API.
    let ids: Vec<u64> = (0..N)
        .map(|i| {
            app.state
                .create_user(&json!({ "email": format!("bulk{i}@example.com") }))
                .unwrap()
        })
        .collect();
    assert_eq!(api.get("/api/v1/users?per_page=1").await.json()["total"], N);
    let tid = api.create_team("Everyone").await;
    let members = format!("/api/v1/teams/{tid}/members");
    for (i, chunk) in ids.chunks(BATCH).enumerate() {
        let r = api.post(&members, json!({ "user_ids": chunk })).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["member_count"], (i + 1) * BATCH);
    }
    let team = api.get(&format!("/api/v1/teams/{tid}")).await;
    assert!(
        team.body.len() < 512,
        "a team GET does not carry its members"
    );
    assert_eq!(team.json()["member_count"], N);

    // Remove every 50th member one by one (the first 2,000 such), then re-add a batch that
    // overlaps the removed ones.
    let step = N / REMOVED;
    for id in ids.iter().step_by(step) {
        let r = api.delete(&format!("{members}/{id}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let remaining = N - REMOVED;
    let r = api
        .get(&format!("{members}?per_page=200&page=1"))
        .await
        .json();
    assert_eq!(r["total"], remaining);
    assert_eq!(r["data"][0]["user_id"], ids[1], "ids[0] was removed");
    let last_page = remaining.div_ceil(200);
    let r = api
        .get(&format!("{members}?per_page=200&page={last_page}"))
        .await
        .json();
    assert_eq!(
        r["data"].as_array().unwrap().len(),
        remaining - (last_page - 1) * 200
    );
    assert_eq!(
        r["data"].as_array().unwrap().last().unwrap()["user_id"],
        ids[N - 1]
    );
    assert_eq!(
        r["data"].as_array().unwrap().last().unwrap()["email"],
        format!("bulk{}@example.com", N - 1)
    );
    let r = api
        .get(&format!("{members}?per_page=200&page={}", last_page + 1))
        .await
        .json();
    assert_eq!(r["data"], json!([]));
    let r = api
        .post(&members, json!({ "user_ids": &ids[..BATCH] }))
        .await
        .json();
    assert_eq!(r["added"], BATCH / step);
    assert_eq!(r["member_count"], remaining + BATCH / step);

    // Deleting a user drops it from the big team; deleting the team keeps all users.
    api.delete(&format!("/api/v1/users/{}", ids[1])).await;
    let count = api.get(&format!("/api/v1/teams/{tid}")).await.json()["member_count"].as_u64();
    assert_eq!(count, Some((remaining + BATCH / step - 1) as u64));
    assert_eq!(
        api.delete(&format!("/api/v1/teams/{tid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/api/v1/users?per_page=1").await.json()["total"],
        N - 1
    );
}

#[tokio::test]
async fn seeding_from_rust_validates_like_the_api() {
    let (app, api) = start().await;
    let id = app
        .state
        .create_user(&json!({ "email": "seed@example.com", "office_id": 2 }))
        .unwrap();
    let u = api.get(&format!("/api/v1/users/{id}")).await.json();
    assert_eq!(
        (u["office_id"].as_u64(), u["active_sessions"].as_u64()),
        (Some(2), Some(1))
    );
    let e = app
        .state
        .create_user(&json!({ "email": "SEED@example.com" }))
        .unwrap_err();
    assert_eq!(e.code, "duplicate_email");
    let e = app
        .state
        .create_user(&json!({ "email": "x@example.com", "id": 9 }))
        .unwrap_err();
    assert_eq!(e.code, "validation_failed");
}

#[tokio::test]
async fn offices_and_folders() {
    let (_app, api) = start().await;
    let r = api.get("/api/v1/offices").await.json();
    let names: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Sydney", "Melbourne", "London", "New York"]);
    assert_eq!(r["data"][0], json!({ "id": 1, "name": "Sydney" }));
    assert_eq!(r["total"], 4);
    let r = api.get("/api/v1/offices?name=new%20york").await.json();
    assert_eq!(r["data"], json!([{ "id": 4, "name": "New York" }]));

    let r = api
        .post("/api/v1/offices", json!({ "name": "Perth" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json(), json!({ "id": 5, "name": "Perth" }));
    assert_error(
        &api.post("/api/v1/offices", json!({ "name": "perth" }))
            .await,
        StatusCode::CONFLICT,
        "duplicate_name",
    );
    assert_error(
        &api.post("/api/v1/offices", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let r = api
        .post(
            "/api/v1/users",
            json!({ "email": "p@example.com", "office_id": 5 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = api.get("/api/v1/folders").await.json();
    assert_eq!(r["total"], 2);
    for f in r["data"].as_array().unwrap() {
        let guid = uuid::Uuid::parse_str(f["guid"].as_str().unwrap()).unwrap();
        assert_eq!(guid.get_version_num(), 4);
        assert!(f["external_id"].is_string() && f["name"].is_string() && f["id"].is_u64());
    }
    let r = api
        .post(
            "/api/v1/folders",
            json!({ "name": "Board", "external_id": "board" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let f = r.json();
    assert_eq!(
        (
            f["id"].as_u64(),
            f["name"].as_str(),
            f["external_id"].as_str()
        ),
        (Some(3), Some("Board"), Some("board"))
    );
    assert_error(
        &api.post("/api/v1/folders", json!({ "name": "x", "guid": "g" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let r = api
        .post(
            "/api/v1/users",
            json!({ "email": "b@example.com", "folders": ["board"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn status_faults_answer_then_run_out() {
    let (_app, api) = start().await;
    let r = api
        .post(
            "/__demo/faults",
            json!({ "mode": "status", "status": 503, "count": 2, "retry_after": 3 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["remaining"], 2);
    for _ in 0..2 {
        let r = api.get("/api/v1/offices").await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "fault_injected");
        assert_eq!(r.headers["retry-after"], "3");
    }
    assert_eq!(api.get("/api/v1/offices").await.status, StatusCode::OK);
    // A faulted write did not happen.
    api.post("/__demo/faults", json!({ "mode": "status", "status": 500 }))
        .await;
    let r = api
        .post("/api/v1/users", json!({ "email": "f@example.com" }))
        .await;
    assert_error(&r, StatusCode::INTERNAL_SERVER_ERROR, "fault_injected");
    let state = api.state().await;
    assert_eq!(state["users"], 0);
    assert_eq!(state["faults_injected"], 3);
    assert_eq!(state["requests_total"], 4);
    assert_eq!(state["by_route"]["GET /api/v1/offices"], 3);
    assert_eq!(state["by_route"]["POST /api/v1/users"], 1);
    assert_eq!(state["fault"]["mode"], "none");

    // mode none disarms.
    api.post("/__demo/faults", json!({ "mode": "status", "count": 5 }))
        .await;
    api.post("/__demo/faults", json!({ "mode": "none" })).await;
    assert_eq!(api.get("/api/v1/offices").await.status, StatusCode::OK);
    for bad in [
        json!({ "mode": "explode" }),
        json!({ "mode": "status", "status": 42 }),
        json!({ "mode": "status", "count": 0 }),
        json!({ "mode": "delay", "delay_ms": 600000 }),
    ] {
        let r = api.post("/__demo/faults", bad).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

#[tokio::test]
async fn garbage_delay_and_close_faults() {
    let (_app, api) = start().await;
    api.post("/__demo/faults", json!({ "mode": "garbage" }))
        .await;
    let r = api.get("/api/v1/users").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert_eq!(api.get("/api/v1/users").await.json()["total"], 0);

    api.post(
        "/__demo/faults",
        json!({ "mode": "delay", "delay_ms": 300, "count": 1 }),
    )
    .await;
    let started = Instant::now();
    let r = api.get("/api/v1/users").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.json()["total"], 0, "a delayed request is still served");

    // /__demo routes are never faulted, so the fault can be armed and inspected.
    api.post("/__demo/faults", json!({ "mode": "close", "count": 1 }))
        .await;
    assert_eq!(api.state().await["fault"]["remaining"], 1);
    let err = api
        .try_send(
            Method::POST,
            "/api/v1/users",
            Some(KEY),
            Bytes::from(r#"{"email":"c@example.com"}"#),
        )
        .await;
    assert!(err.is_err(), "the connection was closed without a response");
    let state = api.state().await;
    assert_eq!(state["users"], 0);
    assert_eq!(state["faults_injected"], 3);
    // The client reconnects and the app serves normally again.
    assert_eq!(api.get("/api/v1/users").await.status, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let (app, api) = start().await;
    assert_eq!(api.get("/api/v1/offices").await.status, StatusCode::OK);
    let addr = app.addr;
    app.shutdown().await;
    let fresh = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(format!("http://{addr}/api/v1/offices"))
        .header("x-api-key", KEY)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(fresh.request(req).await.is_err());
    // Dropping a started app stops it too.
    let (app, _api) = start().await;
    let addr = app.addr;
    drop(app);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
