//! The softdrive profile (seed document 003) under Entra's provisioning lifecycle, in both
//! PATCH dialects, against `scimgate demo --profile softdrive`: groups are the app's teams
//! with direct members only (a nested group sent as a member is left out and the request
//! succeeds), deactivation and DELETE delete the user, deleting a group deletes its users,
//! group owners are refused with a 400 that changes nothing, and userType is not synced.
//! Every step checks the **legacy app's state** through its own API.

mod common;

use common::Legacy;
use common::entra::{Dialect, clients, create_user, legacy_user_count, patch, test_connection};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::store::SyncStatus;
use serde_json::{Value, json};

const MS_GROUP_URN: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("softdrive"))
        .await
        .expect("start demo stack")
}

fn user(user_name: &str, external_id: &str) -> Value {
    create_user(&[
        ("userName", json!(user_name)),
        ("externalId", json!(external_id)),
        ("displayName", json!("Adele Vance")),
        ("userType", json!("Contractor")),
        (
            "emails",
            json!([{"primary": true, "type": "work", "value": user_name}]),
        ),
    ])
}

/// Entra's POST /Groups, with `members` if any.
fn group(name: &str, members: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", MS_GROUP_URN],
        "externalId": uuid::Uuid::new_v4().to_string(),
        "displayName": name,
        "members": members,
        "meta": {"resourceType": "Group"}
    })
}

/// The user ids of team `gid` in the demo app, sorted.
async fn team_members(legacy: &Legacy, gid: &str) -> Vec<String> {
    let r = legacy
        .get(&format!("/api/v1/teams/{gid}/members?per_page=200"))
        .await;
    let mut ids: Vec<String> = r["data"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["user_id"].to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// (users, groups) managed by SCIM, as the status page counts them from the id map.
async fn managed(stack: &DemoStack) -> (u64, u64) {
    let s = stack.gateway.store().status().await.expect("status");
    (s.users_managed, s.groups_managed)
}

/// Arms the demo app's fault injection.
async fn arm(legacy: &Legacy, spec: Value) {
    let r = legacy.call("POST", "/__demo/faults", Some(&spec)).await;
    assert_eq!(r.status, 200, "arming {spec}: {}", r.text);
}

async fn exists(legacy: &Legacy, path: &str) -> bool {
    let r = legacy.call("GET", path, None).await;
    assert!(r.status == 200 || r.status == 404, "{path}: {}", r.text);
    r.status == 200
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
    let before = legacy_user_count(&legacy).await;

    // A user cannot be created disabled: Softdrive keeps no disabled users.
    let mut inactive = user(&mk("nobody"), "ext-nobody");
    inactive["active"] = d.boolean(false);
    let r = scim.post("/Users", &inactive).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert_eq!(legacy_user_count(&legacy).await, before);

    // Users, with a userType Softdrive does not sync.
    let mut ids = Vec::new();
    for (i, n) in ["adele", "bianca", "carl", "dana", "erin"]
        .iter()
        .enumerate()
    {
        let r = scim
            .post("/Users", &user(&mk(n), &format!("ext-{tag}-{i}")))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert!(r.json.get("userType").is_none(), "{}", r.text);
        ids.push(r.json["id"].as_str().expect("id").to_string());
    }
    let [a, b, c, dd, e] = [&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]].map(String::as_str);
    let rec = legacy.get(&format!("/api/v1/users/{a}")).await;
    assert_eq!(rec["username"], mk("adele").as_str());
    assert_eq!(rec["user_type"], Value::Null);
    // A user type change is not synced either (handled manually in Softdrive): the request
    // succeeds and nothing reaches the app.
    let updated_at = rec["updated_at"].clone();
    let r = scim
        .patch(
            &format!("/Users/{a}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "userType", "value": "Member"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = legacy.get(&format!("/api/v1/users/{a}")).await;
    assert_eq!(rec["user_type"], Value::Null);
    assert_eq!(rec["updated_at"], updated_at);

    // Groups. "Design Leads" (with erin) is nested in "Design" on Entra's side.
    let mut gid = std::collections::HashMap::new();
    for (name, members) in [
        ("Design", json!([])),
        ("Design Leads", json!([{"value": e}])),
        ("Sales", json!([])),
    ] {
        let r = scim.post("/Groups", &group(name, members)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        gid.insert(name, r.json["id"].as_str().expect("gid").to_string());
    }
    let (design, leads, sales) = (
        gid["Design"].as_str(),
        gid["Design Leads"].as_str(),
        gid["Sales"].as_str(),
    );
    assert_eq!(team_members(&legacy, leads).await, sorted(&[e]));

    // Only direct members: Entra sends the nested group's id as a member value without a
    // type; it is left out, the users are added, and the request succeeds.
    let r = scim
        .patch(&format!("/Groups/{design}"), &d.add_members(&[a, leads, b]))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(team_members(&legacy, design).await, sorted(&[a, b]));
    // The same with an explicit type, on create and on PUT.
    let r = scim
        .post(
            "/Groups",
            &group(
                "Operations",
                json!([{"value": c}, {"value": sales, "type": "Group"}]),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ops = r.json["id"].as_str().expect("gid").to_string();
    let listed: Vec<&str> = r.json["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(listed, [c], "{}", r.text);
    assert_eq!(team_members(&legacy, &ops).await, sorted(&[c]));
    let mut put = group("Sales", json!([{"value": dd}, {"value": design}]));
    put["id"] = json!(sales);
    let r = scim.put(&format!("/Groups/{sales}"), &put).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(team_members(&legacy, sales).await, sorted(&[dd]));

    // Group owners are not supported: a 400 naming the attribute, and nothing changed —
    // neither a group created nor the members a PATCH also asked for.
    let teams = legacy.get("/__demo/state").await["teams"].clone();
    let owners = json!([{"value": a}]);
    let mut with_owners = group("Owned", json!([{"value": c}]));
    with_owners["owners"] = owners.clone();
    let mut ext_owners = group("Owned", json!([]));
    ext_owners["urn:ietf:params:scim:schemas:extension:softdrive:2.0:Group"] =
        json!({"owners": owners});
    for body in [with_owners, ext_owners] {
        let r = scim.post("/Groups", &body).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.json["scimType"], "invalidValue");
        assert!(
            r.json["detail"]
                .as_str()
                .unwrap_or("")
                .contains("'owners' is not supported"),
            "{}",
            r.text
        );
    }
    assert_eq!(legacy.get("/__demo/state").await["teams"], teams);
    for ops_body in [
        vec![
            json!({"op": d.op("add"), "path": "members", "value": [{"value": c}]}),
            json!({"op": d.op("add"), "path": "owners", "value": [{"value": a}]}),
        ],
        vec![json!({"op": d.op("add"), "value": {"owners": [{"value": a}]}})],
        vec![
            json!({"op": d.op("replace"), "path": "urn:ietf:params:scim:schemas:extension:softdrive:2.0:Group:owners", "value": [{"value": a}]}),
        ],
    ] {
        let r = scim
            .patch(&format!("/Groups/{design}"), &patch(ops_body))
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.json["detail"]
                .as_str()
                .unwrap_or("")
                .contains("'owners' is not supported"),
            "{}",
            r.text
        );
    }
    let mut put = group("Design renamed", json!([{"value": c}]));
    put["owners"] = json!([{"value": a}]);
    let r = scim.put(&format!("/Groups/{design}"), &put).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(team_members(&legacy, design).await, sorted(&[a, b]));
    assert_eq!(
        legacy.get(&format!("/api/v1/teams/{design}")).await["name"],
        "Design"
    );

    // Removal from a group is only that.
    let r = scim
        .patch(&format!("/Groups/{sales}"), &d.remove_member(dd))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(team_members(&legacy, sales).await.is_empty());
    assert!(exists(&legacy, &format!("/api/v1/users/{dd}")).await);

    // Deactivation (Entra's soft delete or removal from scope, its own body for this
    // dialect) deletes the user in Softdrive, and with it its memberships.
    // The answer is 204, never the resource that no longer exists.
    let r = scim.patch(&format!("/Users/{b}"), &d.disable_user()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    assert!(!exists(&legacy, &format!("/api/v1/users/{b}")).await);
    assert_eq!(scim.get(&format!("/Users/{b}")).await.status, 404);
    assert_eq!(team_members(&legacy, design).await, sorted(&[a]));
    // The status page no longer counts the deleted user as managed by SCIM.
    assert_eq!(managed(stack).await, (4, 4));

    // Permanent delete.
    let r = scim.delete(&format!("/Users/{dd}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!exists(&legacy, &format!("/api/v1/users/{dd}")).await);

    // Deleting a group deletes its users, then the group. Users not in it (carl in
    // Operations, erin in the nested Design Leads, whose members were never Design's) are
    // untouched.
    let r = scim.delete(&format!("/Groups/{design}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!exists(&legacy, &format!("/api/v1/teams/{design}")).await);
    assert!(!exists(&legacy, &format!("/api/v1/users/{a}")).await);
    for (u, team) in [(c, ops.as_str()), (e, leads)] {
        assert!(exists(&legacy, &format!("/api/v1/users/{u}")).await);
        assert_eq!(team_members(&legacy, team).await, sorted(&[u]));
    }
    assert_eq!(legacy_user_count(&legacy).await, before + 2);

    // A group delete whose user deletes fail part-way (the app answers 503 to the first)
    // fails and leaves the group, with what was not deleted yet; Entra's retry finishes it.
    let r = scim
        .patch(&format!("/Groups/{ops}"), &d.add_members(&[e]))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    arm(
        &legacy,
        json!({"mode": "status", "status": 503, "count": 1,
                        "route": "DELETE /api/v1/users/{id}"}),
    )
    .await;
    let r = scim.delete(&format!("/Groups/{ops}")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(exists(&legacy, &format!("/api/v1/teams/{ops}")).await);
    assert_eq!(team_members(&legacy, &ops).await, sorted(&[c, e]));
    let r = scim.delete(&format!("/Groups/{ops}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    for u in [c, e] {
        assert!(!exists(&legacy, &format!("/api/v1/users/{u}")).await);
    }
    assert!(!exists(&legacy, &format!("/api/v1/teams/{ops}")).await);
    assert_eq!(legacy_user_count(&legacy).await, before);
    // Users deleted by deactivation or with their group are no longer counted either.
    assert_eq!(managed(stack).await, (0, 2));

    // A user the app no longer has (answered 404, as when deleted meanwhile) does not stop a
    // group delete: the plan's steps are missing_ok.
    let r = scim
        .post("/Users", &user(&mk("fay"), &format!("ext-{tag}-f")))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let f = r.json["id"].as_str().expect("id").to_string();
    let r = scim
        .post("/Groups", &group("Temps", json!([{"value": f}])))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let temps = r.json["id"].as_str().expect("gid").to_string();
    arm(
        &legacy,
        json!({"mode": "status", "status": 404, "count": 1,
                        "route": "DELETE /api/v1/users/{id}"}),
    )
    .await;
    let r = scim.delete(&format!("/Groups/{temps}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!exists(&legacy, &format!("/api/v1/teams/{temps}")).await);
}

/// A plain group delete of a backend-groups profile without on_group_delete stays one call:
/// no member list is read.
#[tokio::test]
async fn profiles_without_the_hook_read_no_members_on_delete() {
    let stack = DemoStack::start(DemoOptions::for_tests("default"))
        .await
        .expect("start demo stack");
    let (scim, legacy) = clients(&stack);
    let r = scim.post("/Users", &user("x@contoso.com", "ext-x")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let uid = r.json["id"].as_str().expect("id").to_string();
    let r = scim
        .post("/Groups", &group("Plain", json!([{"value": uid}])))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().expect("gid").to_string();
    let r = scim.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let state = legacy.get("/__demo/state").await;
    assert_eq!(
        state["by_route"]["GET /api/v1/teams/{id}/members"],
        Value::Null,
        "{state}"
    );
    assert_eq!(state["by_route"]["DELETE /api/v1/teams/{id}"], 1);
    assert!(exists(&legacy, &format!("/api/v1/users/{uid}")).await);
}

/// Entra's DELETE, then GET, a second DELETE, PATCH, filter and re-POST: the app deleted
/// the user, so everything is 404 and a re-POST creates it again.
#[tokio::test]
async fn delete_then_get_filter_and_repost() {
    let stack = start().await;
    let (scim, _) = clients(&stack);
    let body = user("replay@contoso.com", "ext-replay");
    common::entra::delete_replay(&scim, &body, 201).await;
    stack.gateway.shutdown().await;
}
