//! The admin listener over real sockets: probes, Prometheus metrics, login, the status page
//! and API-key management through its HTML forms, and an end-to-end run in headless
//! Chromium (skipped with a printed reason when the browser is not installed, unless
//! `SCIMGATE_REQUIRE_CHROMIUM=1`, as in CI).

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use common::admin::{AdminClient, parse_metrics, shown_key};
use common::webdriver::Browser;
use common::{Http, Scim, enc};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::store::{AuditEntry, AuditLog, BackendCall, KeyStore, SyncStatus};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const TEST_CONNECTION: &str = "/Users?filter=userName%20eq%20%22nobody%40example.com%22";

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("default"))
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"))
}

fn entra_user(tag: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": format!("ext-{tag}"),
        "userName": format!("{tag}@contoso.com"),
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": format!("{tag}@testuser.com")}],
        "name": {"familyName": "Admin", "givenName": "Test"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics() {
    let stack = start().await;
    let http = Http::new();
    let admin = &stack.admin_url;

    let r = http
        .raw("GET", &format!("{admin}/healthz"), &[], None)
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, "ok\n"));
    let r = http.raw("GET", &format!("{admin}/readyz"), &[], None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.starts_with("ready\n"), "{}", r.text);
    assert!(r.text.contains("backend: ok"), "{}", r.text);

    let scim = Scim::new(&stack.scim_url, &stack.token);
    assert_eq!(scim.get(TEST_CONNECTION).await.status, 200);
    let created = scim.post("/Users", &entra_user("metrics_probe")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_string();
    assert_eq!(scim.get(&format!("/Users/{id}")).await.status, 200);
    assert_eq!(scim.get("/Users/999999999").await.status, 404);
    assert_eq!(
        Scim::new(&stack.scim_url, "wrong")
            .get(TEST_CONNECTION)
            .await
            .status,
        401
    );
    let (_, key) = stack
        .gateway
        .store()
        .create_key("metrics", None)
        .await
        .unwrap();
    assert_eq!(
        Scim::new(&stack.scim_url, &key)
            .get(TEST_CONNECTION)
            .await
            .status,
        200
    );

    let r = http
        .raw("GET", &format!("{admin}/metrics"), &[], None)
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    let m = parse_metrics(&r.text);
    let get = |series: &str| m.get(series).copied();
    let req = |op: &str, status: u16| {
        get(&format!(
            r#"scimgate_scim_requests_total{{resource="User",operation="{op}",status="{status}"}}"#
        ))
    };
    assert_eq!(req("list", 200), Some(2.0), "{}", r.text);
    assert_eq!(req("create", 201), Some(1.0));
    assert_eq!(req("get", 200), Some(1.0));
    assert_eq!(req("get", 404), Some(1.0));
    assert_eq!(req("list", 401), Some(1.0), "refused calls are counted too");
    assert!(
        !r.text.contains(&format!("=\"{id}\"")) && !r.text.contains(&format!("/{id}")),
        "ids never become label values (bounded cardinality)"
    );
    assert_eq!(
        get(r#"scimgate_scim_request_duration_seconds_count{resource="User",operation="create"}"#),
        Some(1.0)
    );
    let backend_ok = get(r#"scimgate_backend_requests_total{outcome="2xx"}"#).unwrap_or(0.0);
    assert!(
        backend_ok >= 4.0,
        "lists, create, get reached the app: {backend_ok}"
    );
    assert_eq!(
        get(r#"scimgate_backend_requests_total{outcome="4xx"}"#),
        Some(1.0),
        "the unknown id answered 404 by the legacy app"
    );
    assert!(get("scimgate_backend_request_duration_seconds_count").unwrap_or(0.0) >= 5.0);
    assert!(
        get(r#"scimgate_store_operation_duration_seconds_count{operation="ping"}"#).is_some(),
        "the readiness probe's store query is timed"
    );
    assert_eq!(
        get(r#"scimgate_store_operation_duration_seconds_count{operation="audit_append"}"#),
        Some(1.0),
        "the one write (the create) was audited, and timed"
    );
    assert_eq!(
        get(r#"scimgate_store_operation_duration_seconds_count{operation="verify_key"}"#),
        Some(2.0),
        "both store key checks (the wrong token and the key) are timed"
    );
    assert!(get("scimgate_users_managed").is_some());
    assert!(get(r#"scimgate_build_info{version="0.1.0"}"#).is_some());

    // The legacy app goes away: not ready, and the reason says which dependency failed.
    let DemoStack {
        legacy,
        gateway,
        admin_url,
        ..
    } = stack;
    legacy.shutdown().await;
    let r = http
        .raw("GET", &format!("{admin_url}/readyz"), &[], None)
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.starts_with("not ready\n"), "{}", r.text);
    assert!(r.text.contains("store (sqlite): ok"), "{}", r.text);
    assert!(r.text.contains("backend: FAILED"), "{}", r.text);
    let r = http
        .raw("GET", &format!("{admin_url}/healthz"), &[], None)
        .await;
    assert_eq!(r.status, 200, "the process is still up");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_needs_a_login() {
    let stack = start().await;
    let mut c = AdminClient::new(&stack.admin_url);

    for path in ["/", "/audit?status=5xx", "/failures", "/keys"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 303, "{path}: {}", r.text);
        let to = r.header("location").unwrap_or_default();
        assert_eq!(to, format!("/login?next={}", enc(path)), "{path}");
    }
    let r = c
        .post_form(
            "/keys",
            &[("csrf", "x"), ("name", "n"), ("expires", "90d")],
            None,
        )
        .await;
    assert_eq!(r.status, 401, "a POST without a session is refused");
    let r = c.get("/login").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains(r#"type="password""#));

    let r = c.login("not the password").await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("Wrong password"));
    assert!(r.header("set-cookie").is_none());
    assert!(c.cookie.is_none());
    let r = c
        .post_form(
            "/login",
            &[("password", &stack.admin_password)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(r.status, 403, "a login posted from another site is refused");

    let r = c.login(&stack.admin_password).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let r = c.get("/").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Provisioning status"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|p| p.contains("script-src 'self'")),
        "no inline script may run"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // State-changing requests need the session's token and a same-origin Origin.
    let csrf = c.csrf().await;
    let r = c
        .post_form(
            "/keys",
            &[("csrf", "forged"), ("name", "x"), ("expires", "90d")],
            None,
        )
        .await;
    assert_eq!(r.status, 403, "wrong CSRF token");
    let r = c
        .post_form(
            "/keys",
            &[("csrf", &csrf), ("name", "x"), ("expires", "90d")],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(r.status, 403, "cross-site POST");
    assert!(
        !c.get("/keys")
            .await
            .text
            .contains("<td class=\"name\">x</td>"),
        "neither refused POST created a key"
    );

    let r = c.post_form("/logout", &[("csrf", &csrf)], None).await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("set-cookie")
            .is_some_and(|s| s.contains("Max-Age=0"))
    );
    let r = c.get("/").await;
    assert_eq!(r.status, 303, "the old cookie no longer works after logout");
    stack.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_managed_through_the_forms() {
    let stack = start().await;
    let mut c = AdminClient::new(&stack.admin_url);
    assert_eq!(c.login(&stack.admin_password).await.status, 303);
    let csrf = c.csrf().await;

    let r = c
        .post_form(
            "/keys",
            &[("csrf", &csrf), ("name", " "), ("expires", "90d")],
            None,
        )
        .await;
    assert_eq!(r.status, 400, "an empty name");
    assert!(r.text.contains("The name must be"), "{}", r.text);
    let r = c
        .post_form(
            "/keys",
            &[("csrf", &csrf), ("name", "x"), ("expires", "5w")],
            None,
        )
        .await;
    assert_eq!(r.status, 400, "an unknown lifetime");

    let r = c
        .post_form(
            "/keys",
            &[
                ("csrf", &csrf),
                ("name", "Entra <Sync>"),
                ("expires", "30d"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/keys"));
    let page = c.get("/keys").await;
    let key = shown_key(&page.text).expect("the new key is shown");
    assert!(key.starts_with("sgk_"), "{key}");
    assert!(
        page.text.contains("Entra &lt;Sync&gt;"),
        "the name is escaped"
    );
    let again = c.get("/keys").await;
    assert!(shown_key(&again.text).is_none(), "the key is shown once");
    assert!(!again.text.contains(&key), "the list never shows the key");
    let id = key.split('_').nth(1).unwrap().to_string();
    assert!(again.text.contains(&id), "the list shows the public id");
    assert!(again.text.contains("active"));

    let entra = Scim::new(&stack.scim_url, &key);
    assert_eq!(entra.get(TEST_CONNECTION).await.status, 200);
    let r = entra.post("/Users", &entra_user("form_key")).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let r = c.get(&format!("/keys/{id}/revoke")).await;
    assert_eq!(r.status, 200, "the confirmation page");
    assert!(r.text.contains("Revoke"), "{}", r.text);
    let r = c
        .post_form(&format!("/keys/{id}/revoke"), &[("csrf", "nope")], None)
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(entra.get(TEST_CONNECTION).await.status, 200, "still live");
    let r = c
        .post_form(&format!("/keys/{id}/revoke"), &[("csrf", &csrf)], None)
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = entra.get(TEST_CONNECTION).await;
    assert_eq!(r.status, 401, "revoked: {}", r.text);
    assert_eq!(r.json["status"], "401");
    let list = c.get("/keys").await;
    assert!(list.text.contains("revoked"), "{}", list.text);
    let r = c
        .post_form("/keys/0123456789abcdef/revoke", &[("csrf", &csrf)], None)
        .await;
    assert_eq!(r.status, 404, "an unknown key");
    stack.gateway.shutdown().await;
}

fn entry(minutes_ago: i64, op: &str, status: u16, calls: Vec<BackendCall>) -> AuditEntry {
    AuditEntry {
        time: Utc::now() - ChronoDuration::minutes(minutes_ago),
        actor: "Entra Sync".into(),
        operation: op.into(),
        resource_type: "User".into(),
        resource_id: Some(format!("id-{op}-{status}")),
        scim_status: status,
        backend_calls: calls,
        duration_ms: 12,
        context: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_audit_and_failures_show_what_the_store_recorded() {
    let stack = start().await;
    let store = stack.gateway.store();
    let call = |method: &str, path: &str, status: u16| BackendCall {
        method: method.into(),
        path: path.into(),
        status,
        ms: 3,
    };
    for e in [
        entry(300, "create", 201, vec![call("POST", "/api/v1/users", 201)]),
        entry(5, "patch", 502, vec![call("PATCH", "/api/v1/users/7", 0)]),
        entry(4, "create", 409, vec![call("POST", "/api/v1/users", 409)]),
        entry(3, "create", 409, vec![]),
        entry(
            2,
            "delete",
            404,
            vec![call("DELETE", "/api/v1/users/9", 404)],
        ),
    ] {
        store.append(&e).await.unwrap();
    }
    store
        .record_request(Utc::now() - ChronoDuration::minutes(2))
        .await
        .unwrap();

    let mut c = AdminClient::new(&stack.admin_url);
    assert_eq!(c.login(&stack.admin_password).await.status, 303);
    let home = c.get("/").await.text;
    let card = |id: &str| {
        let start = home
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("{id}"));
        home[start..]
            .split("</div>")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        card("last-synced").contains("2 min ago"),
        "{}",
        card("last-synced")
    );
    assert!(card("errors-24h").contains(">1<"), "{}", card("errors-24h"));
    assert!(
        card("rejected-24h").contains(">3<"),
        "{}",
        card("rejected-24h")
    );
    assert!(
        card("users-managed").contains(">0<"),
        "{}",
        card("users-managed")
    );
    assert!(
        home.contains("/api/v1/users/7"),
        "recent entries list the legacy calls"
    );

    let only = |html: &str, present: &[&str], absent: &[&str]| {
        for p in present {
            assert!(html.contains(p), "missing {p}");
        }
        for a in absent {
            assert!(!html.contains(a), "unexpected {a}");
        }
    };
    let r = c.get("/audit?status=5xx").await;
    assert_eq!(r.status, 200);
    only(
        &r.text,
        &["id-patch-502", "no answer"],
        &["id-create-409", "id-create-201"],
    );
    let r = c.get("/audit?operation=create&status=4xx").await;
    only(
        &r.text,
        &["id-create-409"],
        &["id-patch-502", "id-delete-404", "id-create-201"],
    );
    let r = c.get("/audit?range=1h").await;
    only(
        &r.text,
        &["id-patch-502", "id-delete-404"],
        &["id-create-201"],
    );
    let until = (Utc::now() - ChronoDuration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let r = c.get(&format!("/audit?to={}", enc(&until))).await;
    only(&r.text, &["id-create-201"], &["id-patch-502"]);

    let r = c.get("/failures").await;
    assert_eq!(r.status, 200);
    let table = r.text.split("Latest failures").next().unwrap_or_default();
    let patch = table.find("patch").expect("502 group");
    let create = table.find(">create<").expect("409 group");
    assert!(patch < create, "server errors are listed first");
    assert!(
        table.contains(r#"<td class="num">2</td>"#),
        "the two 409s are one group"
    );
    assert!(
        !table.contains("id-create-201"),
        "successes are not failures"
    );
    stack.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_password_only_probes_and_metrics_answer() {
    let stack = DemoStack::start(DemoOptions {
        admin_password: Some(String::new()),
        ..DemoOptions::for_tests("default")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let mut c = AdminClient::new(&stack.admin_url);
    for path in ["/", "/login", "/keys"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 503, "{path}");
        assert!(r.text.contains("The admin page is off"), "{}", r.text);
        assert!(r.text.contains("SCIMGATE_ADMIN__PASSWORD"));
    }
    assert_eq!(
        c.login("").await.status,
        503,
        "an empty password never signs in"
    );
    assert!(c.cookie.is_none());
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(c.get(path).await.status, 200, "{path}");
    }
    stack.gateway.shutdown().await;
}

/// Chromium through chromedriver: sign in, create a key in the page and read it from the
/// dialog, provision a user with it, see the call and the counts on the page, revoke the key
/// in the page and see the next SCIM call refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_in_headless_chromium() {
    let browser = match Browser::launch().await {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => panic!("{e}"),
    };
    let stack = start().await;
    let outcome = tokio::time::timeout(Duration::from_secs(120), browser_flow(&browser, &stack))
        .await
        .unwrap_or_else(|_| Err("the browser flow took longer than 120 s".into()));
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    if let Err(e) = &outcome {
        let _ = browser
            .screenshot(&artifacts.join("admin-e2e-failure.png"))
            .await;
        panic!("{e}");
    }
    drop(browser);
    stack.gateway.shutdown().await;
}

async fn browser_flow(b: &Browser, stack: &DemoStack) -> Result<(), String> {
    let admin = &stack.admin_url;
    let wait = Duration::from_secs(10);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };

    b.goto(&format!("{admin}/")).await?;
    b.wait_for("#password", wait).await?;
    let url = b.url().await?;
    check(
        url.contains("/login"),
        format!("not redirected to the login: {url}"),
    )?;
    let pw = b.find("#password").await?;
    b.type_text(&pw, &stack.admin_password).await?;
    b.click(&b.find("form[action='/login'] button[type=submit]").await?)
        .await?;
    b.wait_for("#users-managed", wait).await?;
    let users_before: u64 = b
        .text_of("#users-managed .count")
        .await?
        .trim()
        .parse()
        .map_err(|e| format!("users count: {e}"))?;

    // Create a key in the page; it is shown once, in a dialog.
    b.goto(&format!("{admin}/keys")).await?;
    b.type_text(&b.wait_for("#key-name", wait).await?, "Browser Sync")
        .await?;
    b.click(&b.find("#key-expires option[value='30d']").await?)
        .await?;
    b.click(&b.find("#create-key-submit").await?).await?;
    let shown = b.wait_for("#new-key-value", wait).await?;
    let key = b.text(&shown).await?.trim().to_string();
    check(key.starts_with("sgk_"), format!("dialog shows {key:?}"))?;
    let modal = b
        .execute("return document.querySelector('#new-key-dialog').matches(':modal')")
        .await?;
    check(
        modal == Value::Bool(true),
        format!("the key dialog is modal: {modal}"),
    )?;
    b.screenshot(&artifacts.join("admin-e2e-new-key.png"))
        .await?;
    b.click(&b.find("#new-key-done").await?).await?;

    // Provision a user with the key, as Entra would.
    let entra = Scim::new(&stack.scim_url, &key);
    let r = entra.post("/Users", &entra_user("browser_e2e")).await;
    check(
        r.status == 201,
        format!("SCIM create with the new key: {} {}", r.status, r.text),
    )?;
    let user_id = r.json["id"].as_str().unwrap_or_default().to_string();

    // The page shows the call (who, what, status) and the new count.
    b.goto(&format!("{admin}/")).await?;
    b.wait_for("table.audit", wait).await?;
    let activity = b.text_of("table.audit tbody tr").await?;
    for part in ["Browser Sync", "create", "201", &user_id] {
        check(
            activity.contains(part),
            format!("latest audit row {activity:?} lacks {part}"),
        )?;
    }
    let users_after: u64 = b
        .text_of("#users-managed .count")
        .await?
        .trim()
        .parse()
        .map_err(|e| format!("users count: {e}"))?;
    check(
        users_after == users_before + 1,
        format!("users managed {users_before} → {users_after}"),
    )?;
    let synced = b.text_of("#last-synced .big").await?;
    check(
        synced.contains("just now") || synced.contains("s ago"),
        format!("last synced: {synced}"),
    )?;
    b.screenshot(&artifacts.join("admin-e2e-overview.png"))
        .await?;

    // A create whose member the app refuses, and whose rollback delete then fails: the
    // rollback is a pending plan on the overview; "Retry now" (once the app recovers) runs it.
    let legacy = common::Legacy::with_header(
        &stack.legacy_url,
        &stack.legacy_auth.0,
        &stack.legacy_auth.1,
    );
    let arm = |spec: Value| {
        let legacy = legacy.clone();
        async move {
            legacy
                .call("POST", "/__demo/faults", Some(&spec))
                .await
                .status
        }
    };
    let fault = json!({"mode": "status", "status": 503, "count": 100,
                       "route": "DELETE /api/v1/teams/{id}"});
    check(arm(fault).await == 200, "arming the fault".into())?;
    let r = entra
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Browser Orphan", "members": [{"value": "424242"}]}),
        )
        .await;
    check(
        r.status == 400,
        format!("group create: {} {}", r.status, r.text),
    )?;
    b.goto(&format!("{admin}/")).await?;
    let row = b.wait_for("#plans tr[data-plan]", wait).await?;
    let text = b.text(&row).await?;
    for part in [
        "Group",
        "Browser Orphan",
        "create rollback",
        "1 of 1",
        "503",
    ] {
        check(
            text.contains(part),
            format!("plan row {text:?} lacks {part}"),
        )?;
    }
    b.screenshot(&artifacts.join("admin-e2e-plans.png")).await?;
    check(
        arm(json!({"mode": "none"})).await == 200,
        "clearing the fault".into(),
    )?;
    b.click(
        &b.find("#plans tr[data-plan] form[action$='/retry'] button")
            .await?,
    )
    .await?;
    let until = std::time::Instant::now() + wait;
    loop {
        b.goto(&format!("{admin}/")).await?;
        let card = b.text_of("#plans").await.unwrap_or_default();
        if card.contains("Every multi-step operation has completed") {
            break;
        }
        if std::time::Instant::now() > until {
            return Err(format!("plans after Retry now: {card:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let teams = legacy.get("/api/v1/teams?name=Browser%20Orphan").await;
    check(teams["total"] == 0, format!("orphan team left: {teams}"))?;

    // Revoke the key in the page (its confirmation dialog), then SCIM refuses it.
    let id = key.split('_').nth(1).unwrap_or_default().to_string();
    b.goto(&format!("{admin}/keys")).await?;
    b.click(
        &b.wait_for(&format!("a[data-dialog='revoke-{id}']"), wait)
            .await?,
    )
    .await?;
    b.click(
        &b.wait_for(&format!("#revoke-{id} button.confirm-revoke"), wait)
            .await?,
    )
    .await?;
    let state_css = format!("tr[data-key-id='{id}'] td.state");
    let until = std::time::Instant::now() + wait;
    loop {
        let state = b.text_of(&state_css).await.unwrap_or_default();
        if state.contains("revoked") {
            break;
        }
        if std::time::Instant::now() > until {
            return Err(format!("key state after revoking: {state:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = entra
        .post("/Users", &entra_user("browser_e2e_after_revoke"))
        .await;
    check(
        r.status == 401,
        format!("SCIM with the revoked key: {} {}", r.status, r.text),
    )?;
    b.screenshot(&artifacts.join("admin-e2e-keys.png")).await?;
    Ok(())
}

/// The keys page shows the static tokens in use (how many, and the names the audit log gives
/// their callers), never their values.
#[tokio::test]
async fn static_tokens_are_listed_without_their_values() {
    let stack = start().await;
    let mut c = AdminClient::new(&stack.admin_url);
    assert_eq!(c.login(&stack.admin_password).await.status, 303);
    let r = c.get("/keys").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("1 static bearer token in use"),
        "{}",
        r.text
    );
    assert!(r.text.contains("token #1"), "{}", r.text);
    assert!(
        !r.text.contains(&stack.token),
        "the token's value is never shown"
    );
    stack.gateway.shutdown().await;
}
