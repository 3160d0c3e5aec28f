//! Gateway-managed groups (`groups = "managed"`), end to end: Entra's group lifecycle over a
//! real listener against `scimgate demo` with the test profile in
//! `tests/fixtures/profiles/managed/`, whose user script turns memberships into the demo app's
//! `role` (highest privilege wins) and deactivates and revokes the sessions of a user in no
//! mapped group. Every step checks the SCIM answer and the **legacy app's state** (roles,
//! status, session revocations, no teams ever created), plus the store's id map counts that
//! the status page shows.
//!
//! Runs on SQLite (both of Entra's PATCH dialects) and once on PostgreSQL
//! (`postgres://127.0.0.1:5432/test` or `SCIMGATE_TEST_PG`, in a fresh schema); when
//! PostgreSQL is unreachable that test prints `SKIP postgres: …` and passes.

mod common;

use common::pg::with_schema;
use common::{Legacy, Scim, enc};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::store::{GroupStore, IdMap, Store, SyncStatus};
use serde_json::{Value, json};
use std::path::PathBuf;

const MS_GROUP_URN: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dialect {
    /// `"op":"Add"`, member removal by value array.
    Legacy,
    /// `"op":"add"`, member removal by `members[value eq "…"]`.
    Compliant,
}

impl Dialect {
    fn op(self, op: &str) -> String {
        match self {
            Dialect::Legacy => {
                let mut c = op.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }
            Dialect::Compliant => op.to_lowercase(),
        }
    }

    /// Removal of one member the way this dialect sends it.
    fn remove(self, member: &str) -> Value {
        match self {
            Dialect::Legacy => {
                json!({"op": "Remove", "path": "members", "value": [{"value": member}]})
            }
            Dialect::Compliant => {
                json!({"op": "remove", "path": format!("members[value eq \"{member}\"]")})
            }
        }
    }

    fn other(self) -> Dialect {
        match self {
            Dialect::Legacy => Dialect::Compliant,
            Dialect::Compliant => Dialect::Legacy,
        }
    }
}

fn patch(ops: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn fixture_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/managed/scimgate.toml")
}

/// A running stack plus a second handle on its store, to read what the status page reads.
struct Env {
    stack: DemoStack,
    store: Store,
    scim: Scim,
    legacy: Legacy,
}

async fn start(store_url: &str) -> Env {
    let opts = DemoOptions {
        config: fixture_config(),
        store_url: Some(store_url.to_string()),
        ..DemoOptions::for_tests("managed")
    };
    let stack = DemoStack::start(opts).await.expect("start demo stack");
    let store = Store::open(store_url)
        .await
        .expect("open the gateway's store");
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let legacy = Legacy::new(&stack.legacy_url, &stack.legacy_key);
    Env {
        stack,
        store,
        scim,
        legacy,
    }
}

fn temp_sqlite_url() -> (String, PathBuf) {
    let dir = std::env::temp_dir().join(format!("scimgate-managed-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    (
        format!("sqlite://{}", dir.join("gateway.db").display()),
        dir,
    )
}

async fn on_sqlite(d: Dialect) {
    let (url, dir) = temp_sqlite_url();
    let env = start(&url).await;
    lifecycle(&env, d).await;
    env.store.close().await;
    env.stack.gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_lifecycle_legacy_dialect_sqlite() {
    on_sqlite(Dialect::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_lifecycle_compliant_dialect_sqlite() {
    on_sqlite(Dialect::Compliant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_lifecycle_postgres() {
    with_schema("scimgate_managed", |store_url| async move {
        let env = start(&store_url).await;
        assert_eq!(env.store.backend_name(), "postgres");
        lifecycle(&env, Dialect::Legacy).await;
        env.store.close().await;
        env.stack.gateway.shutdown().await;
    })
    .await;
}

/// The demo app's view of a user: (role, status, active sessions, revocations).
async fn legacy_user(legacy: &Legacy, id: &str) -> (Value, String, u64, u64) {
    let u = legacy.get(&format!("/api/v1/users/{id}")).await;
    (
        u["role"].clone(),
        u["status"].as_str().unwrap_or_default().to_string(),
        u["active_sessions"].as_u64().unwrap_or(99),
        u["sessions_revoked"].as_u64().unwrap_or(99),
    )
}

async fn role(legacy: &Legacy, id: &str) -> Value {
    legacy_user(legacy, id).await.0
}

/// (users, groups) managed by SCIM, as the status page counts them.
async fn counts(store: &Store) -> (u64, u64) {
    let s = store.status().await.unwrap();
    (s.users_managed, s.groups_managed)
}

async fn create_user(scim: &Scim, name: &str) -> String {
    let r = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": format!("ext-{name}"),
                "userName": format!("{name}@contoso.com"),
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": format!("{name}@contoso.com")}],
                "meta": {"resourceType": "User"},
                "name": {"familyName": "Test", "givenName": name},
                "roles": []
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().expect("user id").to_string()
}

async fn create_group(scim: &Scim, name: &str, external_id: &str) -> String {
    let r = scim
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", MS_GROUP_URN],
                "externalId": external_id,
                "displayName": name,
                "meta": {"resourceType": "Group"}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("group id").to_string();
    assert_eq!(r.json["displayName"], name);
    assert_eq!(r.json["externalId"], external_id);
    assert_eq!(r.json["meta"]["resourceType"], "Group");
    assert!(r.json["meta"]["created"].is_string(), "{}", r.text);
    assert!(r.json["meta"]["lastModified"].is_string(), "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("{}/Groups/{id}", scim.base).as_str())
    );
    assert!(r.header("etag").is_some_and(|e| e.starts_with("W/\"")));
    id
}

/// The member ids of a group, read over SCIM.
async fn member_ids(scim: &Scim, gid: &str) -> Vec<String> {
    let r = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut ids: Vec<String> = r.json["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

async fn list(scim: &Scim, query: &str) -> Value {
    let r = scim.get(&format!("/Groups?{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.json
}

fn names(list: &Value) -> Vec<&str> {
    list["Resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| g["displayName"].as_str()).collect())
        .unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn lifecycle(env: &Env, d: Dialect) {
    let (scim, legacy, store) = (&env.scim, &env.legacy, &env.store);

    // Users come from the legacy app; each is recorded in the id map.
    let alice = create_user(scim, "alice").await;
    let bob = create_user(scim, "bob").await;
    let carol = create_user(scim, "carol").await;
    assert_eq!(counts(store).await, (3, 0));
    assert_eq!(
        legacy_user(legacy, &alice).await,
        (Value::Null, "active".into(), 1, 0)
    );

    // Create Group, Microsoft's body with its own schema URN. The group lives in the gateway:
    // the legacy app gets no team.
    let eng = create_group(scim, "app-engineering", "ext-eng").await;
    let adm = create_group(scim, "app-admins", "ext-adm").await;
    assert_eq!(counts(store).await, (3, 2));
    assert_eq!(legacy.get("/api/v1/teams").await["total"], 0);
    let mapped = store
        .by_external_id("Group", &"ext-eng".into())
        .await
        .unwrap()
        .expect("the group is in the id map");
    assert_eq!(mapped.scim_id.as_str(), eng);

    // Entra matches groups by displayName: a second group with the same name in another case
    // is a 409 and creates nothing.
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "APP-Engineering"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["scimType"], "uniqueness");
    assert_eq!(counts(store).await, (3, 2));
    // displayName is required.
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": " "}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");

    // Get Group by displayName without members (Entra's query), any case.
    for name in ["app-engineering", "APP-ENGINEERING"] {
        let l = list(
            scim,
            &format!(
                "excludedAttributes=members&filter={}",
                enc(&format!("displayName eq \"{name}\""))
            ),
        )
        .await;
        assert_eq!(l["totalResults"], 1, "{l}");
        assert_eq!(l["Resources"][0]["id"], eng.as_str());
        assert!(l["Resources"][0].get("members").is_none(), "{l}");
    }

    // Add two members in one operation: both become Developers in the legacy app.
    let r = scim
        .patch(
            &format!("/Groups/{eng}"),
            &patch(vec![json!({"op": d.op("add"), "path": "members",
                "value": [{"$ref": null, "value": alice}, {"$ref": null, "value": bob}]})]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &alice).await, "Developer");
    assert_eq!(role(legacy, &bob).await, "Developer");
    assert_eq!(role(legacy, &carol).await, Value::Null);
    let g = scim.get(&format!("/Groups/{eng}")).await;
    assert_eq!(
        g.json["members"].as_array().map(Vec::len),
        Some(2),
        "{}",
        g.text
    );
    let m = &g.json["members"][0];
    assert_eq!(m["type"], "User");
    assert!(
        m["$ref"]
            .as_str()
            .is_some_and(|r| r == format!("{}/Users/{}", scim.base, m["value"].as_str().unwrap())),
        "{m}"
    );

    // A user in two mapped groups gets the higher role.
    let r = scim
        .patch(
            &format!("/Groups/{adm}"),
            &patch(vec![
                json!({"op": d.op("add"), "path": "members", "value": [{"value": alice}]}),
            ]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &alice).await, "Admin");

    // A member the legacy app does not know → 400 naming it, and nothing changes (carol, named
    // in the same operation, is not added).
    let calls_before = legacy.get("/__demo/state").await["by_route"].clone();
    let r = scim
        .patch(
            &format!("/Groups/{adm}"),
            &patch(vec![json!({"op": d.op("add"), "path": "members",
                "value": [{"value": carol}, {"value": "999999"}]})]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("999999"),
        "{}",
        r.text
    );
    assert_eq!(member_ids(scim, &adm).await, vec![alice.clone()]);
    assert_eq!(role(legacy, &carol).await, Value::Null);
    let calls_after = legacy.get("/__demo/state").await["by_route"].clone();
    assert_eq!(
        calls_before.get("PUT /api/v1/users/{id}/role"),
        calls_after.get("PUT /api/v1/users/{id}/role"),
        "no role was touched"
    );
    // Members are users: a nested group is refused the same way.
    let r = scim
        .patch(
            &format!("/Groups/{adm}"),
            &patch(vec![json!({"op": d.op("add"), "path": "members",
                "value": [{"value": eng, "type": "Group"}]})]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(member_ids(scim, &adm).await, vec![alice.clone()]);

    // ETags: a stale If-Match is refused; the current one is accepted.
    let current = scim.get(&format!("/Groups/{adm}")).await;
    let etag = current.header("etag").expect("etag").to_string();
    let rename_adm = patch(vec![
        json!({"op": d.op("replace"), "path": "externalId", "value": "ext-adm-2"}),
    ]);
    let r = scim
        .http
        .json(
            "PATCH",
            &format!("{}/Groups/{adm}", scim.base),
            &[
                ("authorization", &scim.auth),
                ("if-match", "W/\"0000000000000000\""),
            ],
            Some(&rename_adm),
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.text);
    let r = scim
        .http
        .json(
            "PATCH",
            &format!("{}/Groups/{adm}", scim.base),
            &[("authorization", &scim.auth), ("if-match", &etag)],
            Some(&rename_adm),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The id map follows the externalId.
    assert!(
        store
            .by_external_id("Group", &"ext-adm".into())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .by_external_id("Group", &"ext-adm-2".into())
            .await
            .unwrap()
            .map(|m| m.scim_id.0),
        Some(adm.clone())
    );

    // Rename: every member's hook runs with the new name (engineering → stakeholders: bob
    // becomes a Viewer, alice stays Admin through app-admins).
    let r = scim
        .patch(
            &format!("/Groups/{eng}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "displayName", "value": "app-stakeholders"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &bob).await, "Viewer");
    assert_eq!(role(legacy, &alice).await, "Admin");
    let stk = eng;
    let l = list(
        scim,
        &format!("filter={}", enc("displayName eq \"app-engineering\"")),
    )
    .await;
    assert_eq!(l["totalResults"], 0, "{l}");
    // Renaming onto another group's name is a 409 and changes nothing.
    let r = scim
        .patch(
            &format!("/Groups/{stk}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "displayName", "value": "App-Admins"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        scim.get(&format!("/Groups/{stk}?attributes=displayName"))
            .await
            .json["displayName"],
        "app-stakeholders"
    );

    // Queries over managed groups.
    let all = list(scim, "sortBy=displayName").await;
    assert_eq!(names(&all), ["app-admins", "app-stakeholders"]);
    let desc = list(
        scim,
        "sortBy=displayName&sortOrder=descending&excludedAttributes=members",
    )
    .await;
    assert_eq!(names(&desc), ["app-stakeholders", "app-admins"]);
    let paged = list(scim, "sortBy=displayName&startIndex=2&count=1").await;
    assert_eq!(
        (paged["totalResults"].as_u64(), names(&paged)),
        (Some(2), vec!["app-stakeholders"])
    );
    let unsorted = list(scim, "startIndex=1&count=1").await;
    assert_eq!(unsorted["totalResults"], 2);
    assert_eq!(unsorted["itemsPerPage"], 1);
    for (filter, want) in [
        (
            "displayName co \"stake\"".to_string(),
            vec!["app-stakeholders"],
        ),
        (
            "displayName sw \"APP-\"".to_string(),
            vec!["app-admins", "app-stakeholders"],
        ),
        (
            "externalId eq \"ext-eng\"".to_string(),
            vec!["app-stakeholders"],
        ),
        (format!("id eq \"{adm}\""), vec!["app-admins"]),
        (
            format!("members[value eq \"{bob}\"]"),
            vec!["app-stakeholders"],
        ),
        (
            format!("members.value eq \"{alice}\""),
            vec!["app-admins", "app-stakeholders"],
        ),
        (
            format!("displayName eq \"app-admins\" and members.value eq \"{bob}\""),
            vec![],
        ),
    ] {
        let l = list(scim, &format!("sortBy=displayName&filter={}", enc(&filter))).await;
        assert_eq!(names(&l), want, "{filter}: {l}");
    }
    let r = scim
        .get(&format!("/Groups?filter={}", enc("displayName eq")))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidFilter");
    let r = scim
        .get("/Groups/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(r.status, 404, "{}", r.text);

    // PUT: the whole member list (carol in, alice stays).
    let r = scim
        .put(
            &format!("/Groups/{adm}"),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "app-admins", "externalId": "ext-adm-2",
                    "members": [{"value": alice}, {"value": carol}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["members"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text
    );
    assert_eq!(role(legacy, &carol).await, "Admin");
    assert_eq!(
        member_ids(scim, &adm).await,
        sorted(vec![alice.clone(), carol.clone()])
    );

    // Remove members: by value array (legacy dialect) or by filter (compliant), both forms
    // in each run. Alice keeps app-stakeholders: Viewer.
    let r = scim
        .patch(&format!("/Groups/{adm}"), &patch(vec![d.remove(&alice)]))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &alice).await, "Viewer");
    assert_eq!(member_ids(scim, &adm).await, vec![carol.clone()]);
    // Bob leaves his last mapped group: deactivated, sessions revoked, data kept.
    let r = scim
        .patch(
            &format!("/Groups/{stk}"),
            &patch(vec![d.other().remove(&bob)]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (bob_role, bob_status, bob_sessions, bob_revoked) = legacy_user(legacy, &bob).await;
    assert_eq!(
        (bob_status.as_str(), bob_sessions, bob_revoked),
        ("inactive", 0, 1)
    );
    assert_eq!(bob_role, "Viewer", "data is kept");
    assert_eq!(legacy_user(legacy, &alice).await.1, "active");

    // A failing hook fails the request; the membership change stays and the retry of the
    // same request brings the legacy app up to date. The armed fault answers the next legacy
    // call, the hook's read of alice.
    let r = legacy
        .call(
            "POST",
            "/__demo/faults",
            Some(&json!({"mode": "status", "status": 503, "count": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let leave = patch(vec![d.remove(&alice)]);
    let r = scim.patch(&format!("/Groups/{stk}"), &leave).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(member_ids(scim, &stk).await.is_empty());
    assert_eq!(
        legacy_user(legacy, &alice).await.1,
        "active",
        "the plan did not run"
    );
    let r = scim.patch(&format!("/Groups/{stk}"), &leave).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(legacy_user(legacy, &alice).await.1, "inactive");
    assert_eq!(legacy_user(legacy, &alice).await.3, 1);
    // A rename whose hooks fail is written back, so the retry renames (and tells) again.
    let r = scim
        .patch(
            &format!("/Groups/{adm}"),
            &patch(vec![
                json!({"op": d.op("add"), "path": "members", "value": [{"value": bob}]}),
            ]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &bob).await, "Admin");
    legacy
        .call(
            "POST",
            "/__demo/faults",
            Some(&json!({"mode": "status", "status": 503, "count": 1})),
        )
        .await;
    let demote = patch(vec![
        json!({"op": d.op("replace"), "path": "displayName", "value": "app-engineering"}),
    ]);
    let r = scim.patch(&format!("/Groups/{adm}"), &demote).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        scim.get(&format!("/Groups/{adm}")).await.json["displayName"],
        "app-admins"
    );
    let r = scim.patch(&format!("/Groups/{adm}"), &demote).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &bob).await, "Developer");
    assert_eq!(role(legacy, &carol).await, "Developer");
    let dev = adm;

    // Delete Group: its members are told first (carol, bob: in no mapped group any more).
    let r = scim.delete(&format!("/Groups/{dev}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(scim.get(&format!("/Groups/{dev}")).await.status, 404);
    for id in [&bob, &carol] {
        assert_eq!(legacy_user(legacy, id).await.1, "inactive", "{id}");
    }
    assert_eq!(counts(store).await, (3, 1));

    // Deleting a user through SCIM drops their memberships.
    let r = scim
        .patch(
            &format!("/Groups/{stk}"),
            &patch(vec![
                json!({"op": d.op("add"), "path": "members", "value": [{"value": carol}]}),
            ]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(role(legacy, &carol).await, "Viewer");
    let r = scim.delete(&format!("/Users/{carol}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(
        store
            .groups_of(&carol.as_str().into())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(member_ids(scim, &stk).await.is_empty());
    assert_eq!(counts(store).await, (2, 1));

    let r = scim.delete(&format!("/Groups/{stk}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(counts(store).await, (2, 0));
    assert_eq!(list(scim, "").await["totalResults"], 0);
    // Nothing of this reached the legacy app as teams.
    assert_eq!(legacy.get("/api/v1/teams").await["total"], 0);
}

/// A group of 20,000 members (more than the 10,000 a gateway-side filter may read): a
/// membership change costs the same legacy calls as in a small group and never reads the
/// member list; Entra's lookups stay answerable; an unindexed member filter is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_group_is_never_read_for_a_membership_change() {
    let (url, dir) = temp_sqlite_url();
    let env = start(&url).await;
    let (scim, legacy, store) = (&env.scim, &env.legacy, &env.store);
    let ada = create_user(scim, "ada").await;
    let gid = create_group(scim, "app-engineering", "ext-big").await;
    let seeded: Vec<scimgate::store::ScimId> = (0..20_000)
        .map(|i| scimgate::store::ScimId(format!("seed-{i:06}")))
        .collect();
    store
        .add_members(&gid.as_str().into(), &seeded)
        .await
        .unwrap();

    let requests = |s: Value| s["requests_total"].as_u64().unwrap_or_default();
    let before = requests(legacy.get("/__demo/state").await);
    let r = scim
        .patch(
            &format!("/Groups/{gid}"),
            &patch(vec![
                json!({"op": "add", "path": "members", "value": [{"value": ada}]}),
            ]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Two legacy calls (is ada a user? then the hook's plan: her role), whatever the size.
    let after = requests(legacy.get("/__demo/state").await);
    assert_eq!(after - before, 2);
    assert_eq!(role(legacy, &ada).await, "Developer");

    for filter in [
        format!("members.value eq \"{ada}\""),
        format!("members[value eq \"{ada}\"] and displayName eq \"app-engineering\""),
        "displayName eq \"app-engineering\"".to_string(),
    ] {
        let l = list(
            scim,
            &format!("excludedAttributes=members&filter={}", enc(&filter)),
        )
        .await;
        assert_eq!(l["totalResults"], 1, "{filter}: {l}");
        assert!(l["Resources"][0].get("members").is_none());
    }
    let r = scim
        .get(&format!(
            "/Groups?filter={}",
            enc("members.value sw \"seed-0\"")
        ))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "tooMany");
    let r = scim
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("members").is_none());

    let r = scim
        .patch(
            &format!("/Groups/{gid}"),
            &patch(vec![Dialect::Legacy.remove(&ada)]),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(legacy_user(legacy, &ada).await.1, "inactive");
    // The whole list, paged out of the store.
    let r = scim.get(&format!("/Groups/{gid}?attributes=members")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["members"].as_array().map(Vec::len), Some(20_000));

    env.store.close().await;
    env.stack.gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
