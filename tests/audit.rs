//! The audit trail and sync status over real sockets: every SCIM write (and a read the gateway
//! failed) leaves one entry with the caller, the operation, the SCIM status and the legacy
//! calls it caused; successful reads leave none; "last synced" moves; `scimgate audit` (run as
//! a real process against the same SQLite file) prints the entries and filters them.

mod common;

use common::process::{Scratch, demo_on_sqlite, write_config};
use common::{Legacy, Scim};
use scimgate::app::prune_audit;
use scimgate::store::{AuditEntry, AuditFilter, AuditLog, KeyStore, Store, SyncStatus};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": name,
        "active": true,
        "emails": [{"value": name, "type": "work", "primary": true}],
    })
}

/// All entries, oldest first.
async fn entries(store: &Store) -> Vec<AuditEntry> {
    let mut all = store
        .query(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    all.reverse();
    all
}

fn calls(e: &AuditEntry) -> Vec<String> {
    e.backend_calls
        .iter()
        .map(|c| format!("{} {} {}", c.method, c.path, c.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_writes_and_failed_reads_are_audited_with_their_backend_calls() {
    let scratch = Scratch::new("trail");
    let db = scratch.0.join("audit.db");
    let url = format!("sqlite://{}", db.display());
    let (stack, store) = demo_on_sqlite(&scratch, "audit.db").await;
    let (_, key) = store.create_key("Entra Sync", None).await.unwrap();
    let entra = Scim::new(&stack.scim_url, &key);
    let static_token = Scim::new(&stack.scim_url, &stack.token);
    let legacy = Legacy::new(&stack.legacy_url, &stack.legacy_key);
    let before = chrono::Utc::now();

    // Reads that succeed (Test Connection, discovery, a get) leave no entry.
    let r = entra
        .get("/Users?filter=userName%20eq%20%22nobody%40example.com%22")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(entra.get("/Schemas").await.status, 200);

    let r = entra.post("/Users", &user("ada@example.com")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(entra.get(&format!("/Users/{id}")).await.status, 200);
    let r = static_token
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH_URN], "Operations": [
                {"op": "Replace", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A rejected write: the app refuses the duplicate userName.
    let r = entra.post("/Users", &user("ADA@example.com")).await;
    assert_eq!(r.status, 409, "{}", r.text);
    // A read the gateway fails because the legacy app does: audited as a failure.
    let r = legacy
        .call(
            "POST",
            "/__demo/faults",
            Some(&json!({"mode": "status", "status": 500, "count": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = entra.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    let r = entra.delete(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Unauthenticated traffic never reaches the log.
    let r = Scim::new(&stack.scim_url, "wrong").delete("/Users/1").await;
    assert_eq!(r.status, 401);

    let all = entries(&store).await;
    let summary: Vec<(String, &str, &str, u16, Option<&str>)> = all
        .iter()
        .map(|e| {
            (
                e.actor.clone(),
                e.operation.as_str(),
                e.resource_type.as_str(),
                e.scim_status,
                e.resource_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "Entra Sync".into(),
                "create",
                "User",
                201,
                Some(id.as_str())
            ),
            ("token #1".into(), "patch", "User", 200, Some(id.as_str())),
            ("Entra Sync".into(), "create", "User", 409, None),
            ("Entra Sync".into(), "get", "User", 502, Some(id.as_str())),
            (
                "Entra Sync".into(),
                "delete",
                "User",
                204,
                Some(id.as_str())
            ),
        ],
        "{all:#?}"
    );
    assert_eq!(calls(&all[0]), ["POST /api/v1/users 201"]);
    assert_eq!(
        calls(&all[1]),
        [
            format!("GET /api/v1/users/{id} 200"),
            format!("PUT /api/v1/users/{id} 200"),
        ],
        "the deactivation's legacy calls, in order: {all:#?}"
    );
    assert_eq!(calls(&all[2]), ["POST /api/v1/users 409"], "{all:#?}");
    assert_eq!(calls(&all[3]), [format!("GET /api/v1/users/{id} 500")]);
    assert!(
        calls(&all[4]).contains(&format!("DELETE /api/v1/users/{id} 204")),
        "{all:#?}"
    );
    for e in &all {
        assert!(e.time >= before - chrono::Duration::seconds(1), "{e:?}");
        assert!(e.duration_ms < 10_000, "{e:?}");
    }

    // "Last synced" moved (written in the background, at most once a second).
    let mut last = None;
    for _ in 0..50 {
        last = store.status().await.unwrap().last_request;
        if last.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = last.expect("last_request recorded");
    assert!(last >= before - chrono::Duration::seconds(1), "{last}");
    let status = store.status().await.unwrap();
    assert_eq!(status.errors_24h, 1, "{status:?}");
    assert_eq!(status.rejected_24h, 1, "{status:?}");

    // The same entries from the command line.
    let config = write_config(&scratch.0, &url, "unused-token", "default", "");
    let out = audit_cli(&config, &[]);
    assert_eq!(out.lines().count(), 6, "header and five entries: {out}");
    assert!(out.lines().next().unwrap().starts_with("TIME"), "{out}");
    let newest = out.lines().nth(1).unwrap();
    assert!(newest.contains("delete") && newest.contains(&id), "{out}");
    let out = audit_cli(&config, &["--status", "5"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains(&format!("GET /api/v1/users/{id} 500")),
        "{out}"
    );
    let out = audit_cli(&config, &["--operation", "create", "--json"]);
    let parsed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 2, "{out}");
    assert!(parsed.iter().all(|e| e["operation"] == "create"), "{out}");
    let out = audit_cli(&config, &["--since", "1h", "--limit", "1"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = audit_cli(&config, &["--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
    let bad = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .args(["audit", "--since", "yesterday", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));

    // Retention: entries older than the period go, newer stay.
    assert_eq!(prune_audit(&store, 0).await.unwrap(), 0, "0 keeps all");
    assert_eq!(prune_audit(&store, 1).await.unwrap(), 0);
    store
        .append(&AuditEntry {
            time: chrono::Utc::now() - chrono::Duration::days(3),
            ..all[0].clone()
        })
        .await
        .unwrap();
    assert_eq!(prune_audit(&store, 2).await.unwrap(), 1);
    assert_eq!(entries(&store).await.len(), 5);

    store.close().await;
    stack.gateway.shutdown().await;
}

fn audit_cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
