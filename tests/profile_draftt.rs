//! The draftt profile (seed document 001) under Entra's provisioning lifecycle, in both PATCH
//! dialects, against `scimgate demo --profile draftt`: groups live in the gateway, and the
//! user script turns memberships into Draftt's roles (highest privilege wins) and
//! deprovisions a user removed from all mapped groups or deactivated (Inactive, sessions
//! revoked at once, data kept). Every step checks the **legacy app's state**: role, status,
//! the session counters, and that no delete ever reached it.

mod common;

use common::Legacy;
use common::entra::{Dialect, clients, create_user, legacy_user_count, patch, test_connection};
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::{Value, json};

const MS_GROUP_URN: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("draftt"))
        .await
        .expect("start demo stack")
}

fn user(user_name: &str, external_id: &str) -> Value {
    create_user(&[
        ("userName", json!(user_name)),
        ("externalId", json!(external_id)),
        ("displayName", json!("Adele Vance")),
        (
            "emails",
            json!([{"primary": true, "type": "work", "value": user_name}]),
        ),
    ])
}

/// Entra's POST /Groups: no members (they follow as PATCH adds).
fn group(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", MS_GROUP_URN],
        "externalId": uuid::Uuid::new_v4().to_string(),
        "displayName": name,
        "meta": {"resourceType": "Group"}
    })
}

/// The demo app's record of user `id`.
async fn record(legacy: &Legacy, id: &str) -> Value {
    legacy.get(&format!("/api/v1/users/{id}")).await
}

/// (role, status, active sessions, sessions revoked) of user `id` in the demo app.
async fn access(legacy: &Legacy, id: &str) -> (Value, String, u64, u64) {
    let r = record(legacy, id).await;
    (
        r["role"].clone(),
        r["status"].as_str().unwrap_or_default().to_string(),
        r["active_sessions"].as_u64().unwrap_or(99),
        r["sessions_revoked"].as_u64().unwrap_or(99),
    )
}

/// How often the demo app was asked to delete a user.
async fn user_deletes(legacy: &Legacy) -> u64 {
    legacy.get("/__demo/state").await["by_route"]["DELETE /api/v1/users/{id}"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn lifecycle_legacy_dialect() {
    let stack = start().await;
    lifecycle(&stack, Dialect::Legacy).await;
}

#[tokio::test]
async fn lifecycle_compliant_dialect() {
    let stack = start().await;
    lifecycle(&stack, Dialect::Compliant).await;
}

async fn lifecycle(stack: &DemoStack, d: Dialect) {
    let (scim, legacy) = clients(stack);
    test_connection(&scim).await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mk = |n: &str| format!("{n}.{tag}@contoso.com");
    let users_before = legacy_user_count(&legacy).await;

    // Provisioning: every new user gets the Default Role (Viewer), active, one session.
    let mut ids = Vec::new();
    for (i, n) in ["adele", "megan", "lynne"].iter().enumerate() {
        let r = scim
            .post("/Users", &user(&mk(n), &format!("ext-{tag}-{i}")))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json["id"].as_str().expect("id").to_string());
    }
    let (adele, megan, lynne) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());
    for id in &ids {
        assert_eq!(
            access(&legacy, id).await,
            (json!("Viewer"), "active".into(), 1, 0)
        );
    }
    assert_eq!(record(&legacy, adele).await["email"], mk("adele").as_str());

    // Entra creates the groups, then adds members. A user in draftt-admins and
    // draftt-engineering (and an unmapped group) receives the highest role: Admin.
    let mut gid = std::collections::HashMap::new();
    for name in [
        "draftt-admins",
        "draftt-engineering",
        "draftt-stakeholders",
        "All Staff",
    ] {
        let r = scim.post("/Groups", &group(name)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        gid.insert(name, r.json["id"].as_str().expect("gid").to_string());
    }
    let add = |g: &str, who: &[&str]| {
        let (scim, body, path) = (scim.clone(), d.add_members(who), format!("/Groups/{g}"));
        async move {
            let r = scim.patch(&path, &body).await;
            assert_eq!(r.status, 204, "{}", r.text);
        }
    };
    let remove = |g: &str, who: &str| {
        let (scim, body, path) = (scim.clone(), d.remove_member(who), format!("/Groups/{g}"));
        async move {
            let r = scim.patch(&path, &body).await;
            assert_eq!(r.status, 204, "{}", r.text);
        }
    };
    add(&gid["draftt-engineering"], &[adele]).await;
    assert_eq!(access(&legacy, adele).await.0, "Developer");
    // A group nested in draftt-admins, as Entra sends it (its id, no type), is left out: the
    // request succeeds and only the user joins.
    add(&gid["draftt-admins"], &[gid["All Staff"].as_str(), adele]).await;
    let r = scim.get(&format!("/Groups/{}", gid["draftt-admins"])).await;
    let members: Vec<&str> = r.json["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(members, [adele], "{}", r.text);
    add(&gid["All Staff"], &[adele, megan]).await;
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Admin"), "active".into(), 1, 0)
    );
    // An unmapped group grants nothing: megan keeps the default role.
    assert_eq!(access(&legacy, megan).await.0, "Viewer");

    // Losing the higher group: Admin → Developer, still active, no revocation.
    remove(&gid["draftt-admins"], adele).await;
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Developer"), "active".into(), 1, 0)
    );

    // megan was never in a mapped group: leaving an unmapped one is not "removed from all
    // mapped groups", so nothing happens to her.
    remove(&gid["All Staff"], megan).await;
    assert_eq!(
        access(&legacy, megan).await,
        (json!("Viewer"), "active".into(), 1, 0)
    );

    // Removed from all mapped groups (All Staff remains): Inactive, sessions revoked at once,
    // the record kept with its profile; SCIM shows the account inactive.
    remove(&gid["draftt-engineering"], adele).await;
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Viewer"), "inactive".into(), 0, 1)
    );
    assert_eq!(
        record(&legacy, adele).await["username"],
        mk("adele").as_str()
    );
    let r = scim.get(&format!("/Users/{adele}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);

    // Joining a mapped group again restores a role; the account itself is re-enabled by the
    // identity provider (Entra sends active=true when the user is back in scope).
    add(&gid["draftt-stakeholders"], &[adele]).await;
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Viewer"), "inactive".into(), 0, 1)
    );
    let enable = patch(vec![
        json!({"op": d.op("replace"), "path": "active", "value": d.boolean(true)}),
    ]);
    let r = scim.patch(&format!("/Users/{adele}"), &enable).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true);
    add(&gid["draftt-engineering"], &[adele]).await;
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Developer"), "active".into(), 0, 1)
    );

    // Profile changes are synced and leave role and status alone.
    let ops = match d {
        Dialect::Legacy => vec![
            json!({"op": "Replace", "path": "name.familyName", "value": "Vance-Smith"}),
            json!({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": mk("adele.vs")}),
        ],
        Dialect::Compliant => vec![json!({"op": "replace", "value": {
            "name.familyName": "Vance-Smith",
            "emails[type eq \"work\"].value": mk("adele.vs"),
        }})],
    };
    let r = scim.patch(&format!("/Users/{adele}"), &patch(ops)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = record(&legacy, adele).await;
    assert_eq!(rec["last_name"], "Vance-Smith");
    assert_eq!(rec["email"], mk("adele.vs").as_str());
    assert_eq!(
        (rec["role"].clone(), rec["status"].clone()),
        (json!("Developer"), json!("active"))
    );

    // A group rename recomputes its members: draftt-engineering renamed away leaves adele
    // with draftt-stakeholders only (Viewer)…
    let rename = |g: &str, to: &str| {
        let mut body = common::entra::fixture("develop-update-group-name");
        body["Operations"][0]["op"] = json!(d.op("replace"));
        body["Operations"][0]["value"] = json!(to);
        let (scim, path) = (scim.clone(), format!("/Groups/{g}"));
        async move {
            let r = scim.patch(&path, &body).await;
            assert_eq!(r.status, 204, "{}", r.text);
        }
    };
    rename(&gid["draftt-engineering"], "Former Engineering").await;
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Viewer"), "active".into(), 0, 1)
    );
    // … and a group renamed to a mapped name (in any case) grants its role.
    rename(&gid["draftt-engineering"], "DRAFTT-Engineering").await;
    assert_eq!(access(&legacy, adele).await.0, "Developer");
    rename(&gid["draftt-engineering"], "Former Engineering").await;
    assert_eq!(access(&legacy, adele).await.0, "Viewer");

    // A group delete recomputes its members: deleting draftt-stakeholders removes adele from
    // her last mapped group (Former Engineering and All Staff are unmapped).
    let r = scim
        .delete(&format!("/Groups/{}", gid["draftt-stakeholders"]))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        access(&legacy, adele).await,
        (json!("Viewer"), "inactive".into(), 0, 2)
    );

    // Deactivation in the IdP (Entra's own body for this dialect): Inactive, sessions
    // revoked at once; the role stays for a later reactivation.
    add(&gid["draftt-admins"], &[lynne]).await;
    assert_eq!(access(&legacy, lynne).await.0, "Admin");
    let r = scim
        .patch(&format!("/Users/{lynne}"), &d.disable_user())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    assert_eq!(
        access(&legacy, lynne).await,
        (json!("Admin"), "inactive".into(), 0, 1)
    );

    // DELETE: no delete reaches Draftt. The account is Inactive with its sessions revoked
    // and its data kept; it left its groups.
    let r = scim.delete(&format!("/Users/{megan}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = scim.delete(&format!("/Users/{lynne}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        access(&legacy, megan).await,
        (json!("Viewer"), "inactive".into(), 0, 1)
    );
    assert_eq!(
        access(&legacy, lynne).await,
        (json!("Viewer"), "inactive".into(), 0, 2)
    );
    assert_eq!(record(&legacy, lynne).await["email"], mk("lynne").as_str());
    let r = scim
        .get(&format!(
            "/Groups/{}?attributes=members",
            gid["draftt-admins"]
        ))
        .await;
    assert!(
        r.json["members"].as_array().is_none_or(|m| m.is_empty()),
        "{}",
        r.text
    );
    assert_eq!(user_deletes(&legacy).await, 0);
    assert_eq!(legacy_user_count(&legacy).await, users_before + 3);
    // Draftt has no teams: groups never reached the app.
    assert_eq!(legacy.get("/__demo/state").await["teams"], 0);
}

/// RFC 7644 §3.6 with Draftt's "data is kept": after DELETE the account stays in Draftt,
/// inactive, but for SCIM it is gone: 404 to every operation, left out of filters and lists,
/// a second DELETE is 404, the managed count drops, and a new POST with its userName or
/// externalId is a 409 saying the account was deleted and is kept (never matched or handed
/// to someone else).
#[tokio::test]
async fn deleted_means_gone_for_scim_while_draftt_keeps_the_account() {
    let stack = start().await;
    let (scim, legacy) = clients(&stack);
    let body = user("kept@example.com", "ext-kept");
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let other = scim
        .post("/Users", &user("other@example.com", "ext-other"))
        .await;
    assert_eq!(other.status, 201, "{}", other.text);
    let listed = |r: &common::Resp| r.json["totalResults"].as_u64().unwrap();
    assert_eq!(listed(&scim.get("/Users").await), 2);

    let r = scim.delete(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Draftt keeps the account, inactive.
    let kept = record(&legacy, &id).await;
    assert_eq!(kept["status"], "inactive");
    assert_eq!(user_deletes(&legacy).await, 0);

    let path = format!("/Users/{id}");
    assert_eq!(scim.get(&path).await.status, 404);
    assert_eq!(scim.delete(&path).await.status, 404, "a second DELETE");
    let r = scim
        .patch(
            &path,
            &patch(vec![
                json!({"op": "replace", "path": "displayName", "value": "x"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(scim.put(&path, &body).await.status, 404);
    let r = scim
        .get("/Users?filter=userName%20eq%20%22kept%40example.com%22")
        .await;
    assert_eq!((r.status, listed(&r)), (200, 0), "{}", r.text);
    let r = scim.get("/Users").await;
    assert_eq!(listed(&r), 1, "{}", r.text);
    assert!(!r.text.contains("kept@example.com"), "{}", r.text);

    // A new person with the same userName, or the same externalId: refused, nothing written.
    let before = legacy_user_count(&legacy).await;
    for again in [
        user("kept@example.com", "ext-new-person"),
        user("someone-else@example.com", "ext-kept"),
    ] {
        let r = scim.post("/Users", &again).await;
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(r.json["scimType"], "uniqueness");
        let detail = r.json["detail"].as_str().unwrap();
        assert!(
            detail.contains("deleted") && detail.contains(&id),
            "{detail}"
        );
    }
    assert_eq!(legacy_user_count(&legacy).await, before);
    // The status page's count follows (the id map forgot the deleted user).
    let m = common::admin::AdminClient::new(&stack.admin_url)
        .get("/metrics")
        .await;
    let users = common::admin::parse_metrics(&m.text)
        .iter()
        .find(|(k, _)| k.ends_with("users_managed"))
        .map(|(_, v)| *v);
    assert_eq!(users, Some(1.0), "{}", m.text);
    // A managed group cannot take the deleted user as a member.
    let r = scim.post("/Groups", &group("draftt-admins")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().unwrap().to_string();
    let r = scim
        .patch(
            &format!("/Groups/{gid}"),
            &Dialect::Compliant.add_members(&[&id]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    stack.gateway.shutdown().await;
}

/// Entra's DELETE, then GET, a second DELETE, PATCH, filter and re-POST: Draftt keeps the
/// account, the gateway makes it gone for SCIM, and the re-POST is a 409 (the kept account is
/// not handed out again).
#[tokio::test]
async fn delete_then_get_filter_and_repost() {
    let stack = start().await;
    let (scim, _) = clients(&stack);
    let body = user("replay@example.com", "ext-replay");
    common::entra::delete_replay(&scim, &body, 409).await;
    stack.gateway.shutdown().await;
}

/// An operator who has reactivated the same person's kept account in Draftt makes it visible
/// over SCIM again with `scimgate deleted --restore ID` (listed by `scimgate deleted`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restores_a_deleted_account() {
    let scratch = common::process::Scratch::new("draftt-restore");
    let url = format!("sqlite://{}", scratch.0.join("state.db").display());
    let stack = DemoStack::start(DemoOptions {
        store_url: Some(url.clone()),
        ..DemoOptions::for_tests("draftt")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let (scim, _) = clients(&stack);
    let r = scim
        .post("/Users", &user("back@example.com", "ext-back"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(scim.delete(&format!("/Users/{id}")).await.status, 204);
    assert_eq!(scim.get(&format!("/Users/{id}")).await.status, 404);

    let config = common::process::write_config(&scratch.0, &url, "t", "draftt", "");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimgate"))
            .arg("deleted")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + String::from_utf8_lossy(&out.stderr).as_ref(),
        )
    };
    let (ok, listed) = cli(&[]);
    assert!(
        ok && listed.contains(&id) && listed.contains("back@example.com"),
        "{listed}"
    );
    let (ok, said) = cli(&["--restore", &id]);
    assert!(ok, "{said}");
    let r = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 200, "visible again: {}", r.text);
    let (ok, said) = cli(&["--restore", &id]);
    assert!(!ok && said.contains("no deleted User"), "{said}");
    stack.gateway.shutdown().await;
}
