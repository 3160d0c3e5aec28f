//! Plans outlive the process that started them, and replicas share them: `scimgate serve`
//! (real processes) killed with SIGKILL in the middle of a multi-step plan resumes it after a
//! restart on the same SQLite file; two replicas on one PostgreSQL store each resume a share
//! of the pending plans, and every plan is resumed by exactly one of them.

mod common;

use common::eventually;

use common::Scim;
use common::pg::with_schema;
use common::process::{GatewayProcess, Scratch, write_config};
use scimgate::demo::{DemoApp, DemoConfig};
use scimgate::store::{PlanState, PlanStore, Store};
use serde_json::{Value, json};
use std::time::Duration;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const REVOKE: &str = "POST /api/v1/users/{id}/sessions/revoke";
const DEACTIVATE: &str = "POST /api/v1/users/{id}/deactivate";

/// Quick retries, so the tests need not wait for production backoffs.
const PLANS: &str = "[plans]\nbackoff_initial_ms = 100\nbackoff_max_ms = 300\npoll_ms = 50\n";

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": name,
        "active": true,
        "emails": [{"value": name, "type": "work", "primary": true}],
    })
}

async fn legacy_state(legacy: &DemoApp) -> Value {
    common::Legacy::new(&legacy.base_url(), "legacy-key")
        .get("/__demo/state")
        .await
}

async fn route_count(legacy: &DemoApp, route: &str) -> u64 {
    legacy_state(legacy).await["by_route"][route]
        .as_u64()
        .unwrap_or(0)
}

async fn record(legacy: &DemoApp, id: &str) -> Value {
    common::Legacy::new(&legacy.base_url(), "legacy-key")
        .get(&format!("/api/v1/users/{id}"))
        .await
}

async fn arm(legacy: &DemoApp, spec: Value) {
    let r = common::Legacy::new(&legacy.base_url(), "legacy-key")
        .call("POST", "/__demo/faults", Some(&spec))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// draftt's DELETE is a three-step plan (deactivate, revoke sessions, default role). The
/// gateway is killed while the second step hangs; after a restart the plan resumes from the
/// step after the last one marked done and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_cut_by_kill_9_completes_after_restart() {
    let scratch = Scratch::new("plan-kill9");
    let url = format!("sqlite://{}", scratch.0.join("data/state.db").display());
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("legacy-key"))
        .await
        .unwrap();
    let config = write_config(
        &scratch.0,
        &url,
        "static-token-0123456789abcdef01234567",
        "draftt",
        PLANS,
    );
    let base = legacy.base_url();
    let env = [
        ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
        ("SCIMGATE_BACKEND__AUTH__VALUE", "legacy-key"),
    ];
    let mut gw = GatewayProcess::start(&config, &env);
    let scim = Scim::new(&gw.scim_url, "static-token-0123456789abcdef01234567");
    let r = scim.post("/Users", &user("kill9@example.com")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(record(&legacy, &id).await["active_sessions"], 1);

    arm(
        &legacy,
        json!({"mode": "delay", "delay_ms": 60_000, "route": REVOKE}),
    )
    .await;
    let del = {
        let scim = scim.clone();
        let id = id.clone();
        tokio::spawn(async move { scim.try_call("DELETE", &format!("/Users/{id}"), None).await })
    };
    eventually(Duration::from_secs(10), "revoke in flight", || async {
        route_count(&legacy, REVOKE).await == 1
    })
    .await;
    assert_eq!(route_count(&legacy, DEACTIVATE).await, 1);
    gw.kill_9();
    assert!(del.await.unwrap().is_err(), "the client saw no answer");
    arm(&legacy, json!({"mode": "none"})).await;
    // Before the restart, the store holds the plan pending after step 1.
    let store = Store::open(&url).await.unwrap();
    let p = store
        .slot_plan("User", &id, "delete")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.state, p.done, p.step_count()),
        (PlanState::Pending, 1, 3)
    );
    store.close().await;
    // `scimgate plans` shows it to the operator (still leased to the dead process).
    let listed = plans_cli(&config, &[]);
    assert!(
        listed.contains(&p.id) && listed.contains("on_delete") && listed.contains("2/3"),
        "{listed}"
    );
    let json_line = plans_cli(&config, &["--json"]);
    let parsed: Value = serde_json::from_str(json_line.trim()).unwrap();
    assert_eq!(parsed["resource_id"], id.as_str());
    assert_eq!(parsed["label"], "kill9@example.com");

    let _gw = GatewayProcess::start(&config, &env);
    eventually(
        Duration::from_secs(10),
        "plan completed after restart",
        || async {
            let r = record(&legacy, &id).await;
            r["status"] == "inactive" && r["active_sessions"] == 0 && r["role"] == "Viewer"
        },
    )
    .await;
    assert_eq!(
        route_count(&legacy, DEACTIVATE).await,
        1,
        "the step marked done is not run again"
    );
    let store = Store::open(&url).await.unwrap();
    eventually(Duration::from_secs(5), "plan recorded done", || async {
        store
            .slot_plan("User", &id, "delete")
            .await
            .unwrap()
            .is_some_and(|p| p.state == PlanState::Done)
    })
    .await;
    store.close().await;
    assert!(plans_cli(&config, &[]).contains("(none"));
}

/// `scimgate plans --config <config> <args>`'s standard output (it must succeed).
fn plans_cli(config: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("plans")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_resume_each_pending_plan_exactly_once() {
    with_schema("scimgate_plans", |store_url| async move {
        replicas(&store_url).await;
    })
    .await;
}

/// Twenty draftt deactivations fail at their session revoke through replica A; both replicas'
/// workers race for the pending plans. Every user's sessions are revoked exactly once more.
async fn replicas(store_url: &str) {
    const USERS: usize = 20;
    let scratch = Scratch::new("plan-replicas");
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("legacy-key"))
        .await
        .unwrap();
    // The plans are due 1–2 s after failing, when both replicas are polling.
    let plans = "[plans]\nbackoff_initial_ms = 2000\nbackoff_max_ms = 2000\npoll_ms = 20\n";
    let config = write_config(
        &scratch.0,
        store_url,
        "static-token-0123456789abcdef01234567",
        "draftt",
        plans,
    );
    let base = legacy.base_url();
    let env = [
        ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
        ("SCIMGATE_BACKEND__AUTH__VALUE", "legacy-key"),
    ];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| GatewayProcess::start(&config, &env));
        let b = s.spawn(|| GatewayProcess::start(&config, &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let scim = Scim::new(&a.scim_url, "static-token-0123456789abcdef01234567");
    let mut ids = Vec::new();
    for i in 0..USERS {
        let r = scim
            .post("/Users", &user(&format!("r{i}@example.com")))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json["id"].as_str().unwrap().to_string());
    }
    arm(
        &legacy,
        json!({"mode": "status", "status": 503, "route": REVOKE, "count": USERS}),
    )
    .await;
    let disable = json!({"schemas": [PATCH_URN], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"}
    ]});
    for id in &ids {
        let r = scim.patch(&format!("/Users/{id}"), &disable).await;
        assert_eq!(r.status, 503, "{}", r.text);
    }
    assert_eq!(route_count(&legacy, REVOKE).await, USERS as u64);
    let store = Store::open(store_url).await.unwrap();
    assert_eq!(store.plan_counts().await.unwrap().pending, USERS as u64);
    eventually(Duration::from_secs(20), "every plan done", || async {
        store.plan_counts().await.unwrap().pending == 0
    })
    .await;
    // Settle: a double claim would show as a third revoke call.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        route_count(&legacy, REVOKE).await,
        2 * USERS as u64,
        "each plan resumed exactly once"
    );
    for id in &ids {
        let r = record(&legacy, id).await;
        assert_eq!(
            (
                r["active_sessions"].as_u64(),
                r["sessions_revoked"].as_u64()
            ),
            (Some(0), Some(1)),
            "{r}"
        );
    }
    store.close().await;
    drop((a, b));
}
