//! The id map the status page counts from ("users/groups managed by SCIM"), kept by the
//! gateway for resources the legacy app stores: every SCIM create adds a mapping, an
//! externalId change updates it, a delete removes it, and a store refusal after the legacy
//! app accepted a write never turns that write into an error. Runs the default profile over a
//! real listener with the store in a SQLite file the test reads too.

mod common;

use common::Scim;
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::store::{IdMap, IdMapping, Store, SyncStatus};
use serde_json::{Value, json};

fn patch(ops: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn user(name: &str, external_id: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@contoso.com"),
        "externalId": external_id,
        "active": true,
        "emails": [{"type": "work", "value": format!("{name}@contoso.com")}]
    })
}

async fn counts(store: &Store) -> (u64, u64) {
    let s = store.status().await.unwrap();
    (s.users_managed, s.groups_managed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_follow_creates_external_id_changes_and_deletes() {
    let dir = std::env::temp_dir().join(format!("scimgate-idmap-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("gateway.db").display());
    let stack = DemoStack::start(DemoOptions {
        store_url: Some(url.clone()),
        ..DemoOptions::for_tests("default")
    })
    .await
    .expect("start demo stack");
    let store = Store::open(&url).await.unwrap();
    let scim = Scim::new(&stack.scim_url, &stack.token);
    assert_eq!(counts(&store).await, (0, 0));

    let r = scim.post("/Users", &user("ada", "ext-ada")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ada = r.json["id"].as_str().unwrap().to_string();
    let r = scim.post("/Users", &user("bea", "ext-bea")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let bea = r.json["id"].as_str().unwrap().to_string();
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Team", "externalId": "ext-team"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let team = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(counts(&store).await, (2, 1));
    // For records the legacy app keeps, the SCIM id is the legacy id.
    assert_eq!(
        store
            .by_scim_id("User", &ada.as_str().into())
            .await
            .unwrap(),
        Some(IdMapping {
            resource_type: "User".into(),
            scim_id: ada.as_str().into(),
            legacy_id: ada.as_str().into(),
            external_id: Some("ext-ada".into()),
        })
    );
    assert_eq!(
        store
            .by_external_id("Group", &"ext-team".into())
            .await
            .unwrap()
            .map(|m| m.scim_id.0),
        Some(team.clone())
    );

    // A failed create adds nothing.
    let r = scim.post("/Users", &user("ada", "ext-other")).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(counts(&store).await, (2, 1));

    // externalId changes through PATCH and PUT follow.
    let r = scim
        .patch(
            &format!("/Users/{ada}"),
            &patch(vec![
                json!({"op": "Replace", "path": "externalId", "value": "ext-ada-2"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mapped = |ext: &'static str| {
        let store = store.clone();
        async move {
            store
                .by_external_id("User", &ext.into())
                .await
                .unwrap()
                .map(|m| m.scim_id.0)
        }
    };
    assert_eq!(mapped("ext-ada").await, None);
    assert_eq!(mapped("ext-ada-2").await, Some(ada.clone()));
    let r = scim
        .put(&format!("/Users/{bea}"), &user("bea", "ext-bea-2"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(mapped("ext-bea-2").await, Some(bea.clone()));
    assert_eq!(counts(&store).await, (2, 1));

    // Deletes forget.
    for path in [format!("/Users/{bea}"), format!("/Groups/{team}")] {
        let r = scim.delete(&path).await;
        assert_eq!(r.status, 204, "{path}: {}", r.text);
    }
    assert_eq!(counts(&store).await, (1, 0));

    // A mapping whose record the application no longer has is stale: a create with its
    // externalId forgets it and maps the new record (a live one would be a 409).
    store
        .put(&IdMapping {
            resource_type: "User".into(),
            scim_id: "stale".into(),
            legacy_id: "stale".into(),
            external_id: Some("ext-cy".into()),
        })
        .await
        .unwrap();
    let r = scim.post("/Users", &user("cy", "ext-cy")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cy = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(mapped("ext-cy").await, Some(cy.clone()));
    assert_eq!(
        store.by_scim_id("User", &"stale".into()).await.unwrap(),
        None
    );
    // A live holder of the externalId: 409 uniqueness naming it, nothing created.
    let r = scim.post("/Users", &user("cy-again", "ext-cy")).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["scimType"], "uniqueness");
    assert!(
        r.json["detail"].as_str().unwrap().contains(&cy),
        "{}",
        r.text
    );
    assert_eq!(counts(&store).await, (2, 0));

    store.close().await;
    stack.gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
