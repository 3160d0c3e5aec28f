//! Restart loses nothing: `scimgate serve` (a real process on a SQLite file) is killed with
//! SIGKILL in the middle of a write load, restarted on the same file, and everything a client
//! saw acknowledged before the kill is still there: API keys, audit entries, the id map and
//! gateway-managed groups with their memberships.

mod common;

use common::Scim;
use common::process::{GatewayProcess, Scratch, write_config_with};
use scimgate::demo::{DemoApp, DemoConfig};
use scimgate::store::{AuditFilter, AuditLog, GroupStore, IdMap, KeyStore, ScimId, Store};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const WORKERS: usize = 8;

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": name,
        "active": true,
        "emails": [{"value": name, "type": "work", "primary": true}],
    })
}

/// What the load saw acknowledged before the kill.
#[derive(Default)]
struct Acked {
    created: Vec<String>,
    patched: Vec<String>,
    /// (group, member) pairs.
    joined: Vec<(String, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let scratch = Scratch::new("kill9");
    let db = scratch.0.join("data/state.db");
    let url = format!("sqlite://{}", db.display());
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("legacy-key"))
        .await
        .unwrap();
    // The profile whose groups the gateway keeps in its store (tests/fixtures/profiles/managed).
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/managed");
    let config = write_config_with(
        &scratch.0,
        &url,
        "static-token-0123456789abcdef01234567",
        "managed",
        &fixture,
        "",
    );
    let base = legacy.base_url();
    let env = [
        ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
        ("SCIMGATE_BACKEND__AUTH__VALUE", "legacy-key"),
    ];

    // A key issued before the first start.
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let store = Store::open(&url).await.unwrap();
    let (_, key) = store.create_key("Entra Sync", None).await.unwrap();
    store.close().await;

    let mut gateway = GatewayProcess::start(&config, &env);
    let scim = Scim::new(&gateway.scim_url, &key);
    let mut groups = Vec::new();
    for name in ["engineering", "stakeholders"] {
        let r = scim
            .post(
                "/Groups",
                &json!({"schemas": [GROUP_URN], "displayName": name}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        groups.push(r.json["id"].as_str().unwrap().to_string());
    }
    let groups = Arc::new(groups);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (scim, acked, stop) = (scim.clone(), acked.clone(), stop.clone());
        let groups = groups.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("w{w}-{n}@example.com");
                let Ok(r) = scim.try_call("POST", "/Users", Some(&user(&name))).await else {
                    break;
                };
                if r.status != 201 {
                    break;
                }
                let id = r.json["id"].as_str().unwrap().to_string();
                acked.lock().await.created.push(id.clone());
                let patch = json!({"schemas": [PATCH_URN], "Operations": [
                    {"op": "Replace", "path": "displayName", "value": format!("User {n}")}]});
                let Ok(r) = scim
                    .try_call("PATCH", &format!("/Users/{id}"), Some(&patch))
                    .await
                else {
                    break;
                };
                if r.status != 200 {
                    break;
                }
                acked.lock().await.patched.push(id.clone());
                let group = &groups[n % groups.len()];
                let join = json!({"schemas": [PATCH_URN], "Operations": [
                    {"op": "Add", "path": "members", "value": [{"value": id}]}]});
                let Ok(r) = scim
                    .try_call("PATCH", &format!("/Groups/{group}"), Some(&join))
                    .await
                else {
                    break;
                };
                if r.status != 204 {
                    break;
                }
                acked.lock().await.joined.push((group.clone(), id));
            }
        }));
    }
    // Kill while the workers are mid-request: after enough acknowledged writes, without
    // stopping them first.
    for _ in 0..200 {
        if acked.lock().await.created.len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    gateway.kill_9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("workers stop once the gateway is gone")
            .unwrap();
    }
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner();
    assert!(
        acked.created.len() >= 150,
        "{} creates",
        acked.created.len()
    );

    // Restart on the same file.
    let gateway = GatewayProcess::start(&config, &env);
    let scim = Scim::new(&gateway.scim_url, &key);
    let r = scim
        .get("/Users?filter=userName%20eq%20%22w0-1%40example.com%22")
        .await;
    assert_eq!(r.status, 200, "the key still authenticates: {}", r.text);
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);

    let store = Store::open(&url).await.unwrap();
    let entries = store
        .query(&AuditFilter {
            limit: 100_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let audited = |op: &str| -> HashSet<String> {
        entries
            .iter()
            .filter(|e| e.operation == op && e.scim_status < 300 && e.actor == "Entra Sync")
            .filter_map(|e| e.resource_id.clone())
            .collect()
    };
    let (creates, patches) = (audited("create"), audited("patch"));
    for id in &acked.created {
        assert!(creates.contains(id), "acknowledged create {id} not audited");
        assert!(
            store
                .by_scim_id("User", &ScimId(id.clone()))
                .await
                .unwrap()
                .is_some(),
            "acknowledged create {id} not in the id map"
        );
    }
    for id in &acked.patched {
        assert!(patches.contains(id), "acknowledged patch {id} not audited");
    }
    for (group, member) in &acked.joined {
        let of = store.groups_of(&ScimId(member.clone())).await.unwrap();
        assert!(
            of.iter().any(|g| g.id.as_str() == group),
            "acknowledged membership of {member} in {group} lost"
        );
    }
    for group in groups.iter() {
        let r = scim
            .get(&format!("/Groups/{group}?excludedAttributes=members"))
            .await;
        assert_eq!(r.status, 200, "group {group} survived: {}", r.text);
    }
    assert_eq!(
        store.list_keys().await.unwrap().len(),
        1,
        "the key survived, once"
    );
    println!(
        "kill -9 after {} acknowledged creates, {} patches, {} memberships; {} audit entries after restart",
        acked.created.len(),
        acked.patched.len(),
        acked.joined.len(),
        entries.len()
    );
    store.close().await;
}
