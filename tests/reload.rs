//! Whole-configuration reload under traffic: an edit of the profile TOML takes effect without
//! a restart and without a failed request; a broken edit is refused (the running
//! configuration serves on, the refusal is counted); SIGHUP reloads and does not stop
//! `scimgate demo`.

mod common;

use common::Scim;
use common::admin::parse_metrics;
use common::process::{GatewayProcess, Scratch, write_config_with};
use scimgate::demo::{DemoApp, DemoConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LEGACY_KEY: &str = "reload-legacy-key";
const TOKEN: &str = "reload-token-0123456789abcdef0123456789";

/// Copies the default profile (TOML and scripts) into `dir`, where the test may edit it.
fn copy_default_profile(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("config/profiles")).unwrap();
    std::fs::copy(
        repo.join("config/profiles/default.toml"),
        dir.join("config/profiles/default.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("scripts/default")).unwrap();
    for f in ["user.rhai", "group.rhai"] {
        std::fs::copy(
            repo.join("scripts/default").join(f),
            dir.join("scripts/default").join(f),
        )
        .unwrap();
    }
}

fn user(name: &str, email_type: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
           "userName": name, "active": true,
           "emails": [{"value": name, "type": email_type, "primary": true}]})
}

async fn metric(admin: &str, name: &str) -> f64 {
    let text = common::Http::new()
        .raw("GET", &format!("{admin}/metrics"), &[], None)
        .await
        .text;
    parse_metrics(&text).get(name).copied().unwrap_or(0.0)
}

/// Two clients read without pause until `stop`; every answer that is not 200 is counted.
fn traffic(
    scim: &Scim,
    stop: Arc<AtomicBool>,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tasks = (0..2)
        .map(|i| {
            let (scim, stop, done, failed) = (
                Scim::new(&scim.base, TOKEN),
                stop.clone(),
                done.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let path = if i == 0 {
                        "/Users?filter=userName%20eq%20%22nobody%40example.com%22".to_string()
                    } else {
                        "/Users?count=5".to_string()
                    };
                    match scim.try_call("GET", &path, None).await {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => {
                            eprintln!("failed during reload: {} {}", r.status, r.text);
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("failed during reload: {e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (done, failed, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_edits_reload_under_traffic_and_a_broken_edit_is_refused() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let scratch = Scratch::new("reload");
    copy_default_profile(&scratch.0);
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let config = write_config_with(&scratch.0, &store, TOKEN, "default", &scratch.0, "");
    let base = legacy.base_url();
    let gw = GatewayProcess::start(
        &config,
        &[
            ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
            ("SCIMGATE_BACKEND__AUTH__VALUE", LEGACY_KEY),
            ("SCIMGATE_SERVER__CONFIG_POLL_MS", "100"),
        ],
    );
    let admin = gw.admin_url.clone().unwrap();
    let scim = Scim::new(&gw.scim_url, TOKEN);

    // The profile stores `title`, so /Schemas lists it.
    let schema = "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User";
    let lists_title = |r: &common::Resp| {
        r.json["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "title")
    };
    let r = scim.get(schema).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(lists_title(&r), "{}", r.text);

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed, tasks) = traffic(&scim, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Edit the profile TOML: the app no longer stores titles.
    let profile = scratch.0.join("config/profiles/default.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    let edited = text.replace(
        r#""displayName", "title", "userType","#,
        r#""displayName", "userType","#,
    );
    assert_ne!(text, edited, "the attributes line is in the profile");
    std::fs::write(&profile, edited).unwrap();
    let started = Instant::now();
    loop {
        let r = scim.get(schema).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if !lists_title(&r) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the edit took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&admin, "scimgate_config_reloads_total{outcome=\"ok\"}").await,
        1.0
    );

    // A broken script is refused: the running configuration serves on.
    let script = scratch.0.join("scripts/default/user.rhai");
    let good = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, format!("{good}\nfn broken( {{\n")).unwrap();
    let started = Instant::now();
    while metric(&admin, "scimgate_config_reloads_total{outcome=\"refused\"}").await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refusal is counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = scim
        .post("/Users", &user("refused@example.com", "work"))
        .await;
    assert_eq!(
        r.status, 201,
        "the running configuration serves: {}",
        r.text
    );
    assert!(
        !lists_title(&scim.get(schema).await),
        "the edited profile serves on"
    );

    // Fixed again, and reloaded by SIGHUP as well.
    std::fs::write(&script, &good).unwrap();
    let started = Instant::now();
    while metric(&admin, "scimgate_config_reloads_total{outcome=\"ok\"}").await < 2.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the fix reloads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::process::signal(gw.pid(), "HUP");
    let started = Instant::now();
    while metric(&admin, "scimgate_config_reloads_total{outcome=\"ok\"}").await < 3.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP reloads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{done} requests during the reloads, {failed} failed");
    assert!(done > 50, "traffic ran: {done}");
    assert_eq!(
        failed, 0,
        "no request failed across three reloads and a refusal"
    );
}

/// SIGHUP reloads `scimgate demo` (it used to end it).
#[tokio::test]
async fn sighup_reloads_the_demo_instead_of_stopping_it() {
    let port = |_: u8| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (scim_port, legacy_port, admin_port) = (port(0), port(1), port(2));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--token", TOKEN])
        .args(["--listen", &format!("127.0.0.1:{scim_port}")])
        .args(["--legacy-listen", &format!("127.0.0.1:{legacy_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scim = Scim::new(&format!("http://127.0.0.1:{scim_port}/scim/v2"), TOKEN);
    let started = Instant::now();
    loop {
        if let Ok(r) = scim.try_call("GET", "/Users", None).await
            && r.status == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = format!("http://127.0.0.1:{admin_port}");
    common::process::signal(child.id(), "HUP");
    let started = Instant::now();
    while metric(&admin, "scimgate_config_reloads_total{outcome=\"ok\"}").await < 1.0 {
        assert!(child.try_wait().unwrap().is_none(), "SIGHUP ended the demo");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the reload is counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(
        scim.get("/Users").await.status,
        200,
        "the same token still works"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A reload while the application does not answer keeps the lookup tables it had (here the
/// offices users are matched against), instead of starting the new configuration empty.
#[tokio::test]
async fn a_reload_while_the_app_fails_keeps_the_lookup_tables() {
    use common::entra::{clients, create_user};
    use scimgate::app::{DemoOptions, DemoStack};
    let stack = DemoStack::start(DemoOptions::for_tests("smarter-drafter"))
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let (scim, legacy) = clients(&stack);
    let offices = legacy.get("/api/v1/offices").await;
    let office = offices["data"][0]["name"].as_str().unwrap().to_string();
    let r = legacy
        .call(
            "POST",
            "/__demo/faults",
            Some(&json!({"mode": "status", "status": 503, "count": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let report = stack.gateway.reload().await;
    assert!(report.outcome.is_ok(), "{report:?}");
    let user = create_user(&[
        ("userName", json!("lookup.kept@example.com")),
        ("externalId", json!("lookup-kept")),
        ("title", json!("Associate")),
        ("initials", json!("LK")),
        ("directPhoneNumber", json!("+61 2 5550 0101")),
        ("office", json!(office)),
        ("name.givenName", json!("Lu")),
        ("name.familyName", json!("Kept")),
    ]);
    let r = scim.post("/Users", &user).await;
    assert_eq!(
        r.status, 201,
        "the office still matches after the reload: {}",
        r.text
    );
}

/// The admin page's button reloads, and the page shows how the last reload ended: a refused
/// one with its problem, the running configuration kept.
#[tokio::test]
async fn the_admin_page_reloads_and_shows_a_refused_reload() {
    use common::admin::AdminClient;
    use scimgate::app::{DemoOptions, DemoStack};
    let scratch = Scratch::new("reload-admin");
    copy_default_profile(&scratch.0);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("config/scimgate.toml"),
        scratch.0.join("config/scimgate.toml"),
    )
    .unwrap();
    let stack = DemoStack::start(DemoOptions {
        config: scratch.0.join("config/scimgate.toml"),
        ..DemoOptions::for_tests("default")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let mut admin = AdminClient::new(&stack.admin_url);
    assert_eq!(admin.login(&stack.admin_password).await.status, 303);
    let page = admin.get("/").await;
    assert!(page.text.contains("as loaded at start"), "{}", page.text);

    let csrf = admin.csrf().await;
    let r = admin.post_form("/reload", &[("csrf", &csrf)], None).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let page = admin.get("/").await;
    assert!(page.text.contains("(admin page)"), "{}", page.text);
    assert!(!page.text.contains("reload refused"), "{}", page.text);

    // Without the CSRF token nothing happens.
    let r = admin
        .post_form("/reload", &[("csrf", "forged")], None)
        .await;
    assert_ne!(r.status, 303);

    let script = scratch.0.join("scripts/default/user.rhai");
    let good = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, format!("{good}\nfn broken( {{\n")).unwrap();
    let r = admin.post_form("/reload", &[("csrf", &csrf)], None).await;
    assert_eq!(r.status, 303);
    let page = admin.get("/").await;
    assert!(page.text.contains("reload refused"), "{}", page.text);
    assert!(
        page.text.contains("user.rhai"),
        "the problem names the file: {}",
        page.text
    );
    // The running configuration serves on.
    let scim = Scim::new(&stack.scim_url, &stack.token);
    assert_eq!(scim.get("/Users").await.status, 200);
}
