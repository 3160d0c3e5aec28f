//! Two `scimgate serve` processes sharing one PostgreSQL store, as replicas behind a load
//! balancer: a key created on one's admin page works on the other, a managed group's
//! membership changed through one is seen through the other, both report the same counts,
//! and a key revoked on one is refused by that one at once and by the other within its key
//! cache's lifetime (`[auth] key_cache_ms`, 1 s here).
//!
//! PostgreSQL: `postgres://127.0.0.1:5432/test` or `SCIMGATE_TEST_PG`, in a fresh schema; when
//! it is unreachable the test prints `SKIP postgres: …` and passes.

mod common;

use common::Scim;
use common::admin::{AdminClient, parse_metrics, shown_key};
use common::pg::with_schema;
use common::process::{GatewayProcess, Scratch, write_config_with};
use scimgate::demo::{DemoApp, DemoConfig};
use serde_json::{Value, json};
use std::path::Path;

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ADMIN_PASSWORD: &str = "replica-admin-password";

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": name,
        "active": true,
        "emails": [{"value": name, "type": "work", "primary": true}],
    })
}

/// `users_managed` and `groups_managed` from a process's `/metrics`.
async fn counts(admin_url: &str) -> (f64, f64) {
    let r = AdminClient::new(admin_url).get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = parse_metrics(&r.text);
    let find = |suffix: &str| {
        m.iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {suffix} in {}", r.text))
    };
    (find("users_managed"), find("groups_managed"))
}

async fn signed_in(admin_url: &str) -> AdminClient {
    let mut c = AdminClient::new(admin_url);
    let r = c.login(ADMIN_PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text);
    c
}

async fn member_ids(scim: &Scim, group: &str) -> Vec<String> {
    let r = scim.get(&format!("/Groups/{group}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut ids: Vec<String> = r.json["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_keys_groups_and_counts_through_postgresql() {
    with_schema("scimgate_replicas", |store_url| async move {
        replicas(&store_url).await;
    })
    .await;
}

async fn replicas(store_url: &str) {
    let scratch = Scratch::new("replicas");
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("legacy-key"))
        .await
        .unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profiles/managed");
    let config = write_config_with(
        &scratch.0,
        store_url,
        "static-token-0123456789abcdef01234567",
        "managed",
        &fixture,
        "",
    );
    let base = legacy.base_url();
    let env = [
        ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
        ("SCIMGATE_BACKEND__AUTH__VALUE", "legacy-key"),
        ("SCIMGATE_ADMIN__PASSWORD", ADMIN_PASSWORD),
        ("SCIMGATE_AUTH__KEY_CACHE_MS", "1000"),
    ];
    // Both start on an empty schema at once: migrations must serialise, not collide.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| GatewayProcess::start(&config, &env));
        let b = s.spawn(|| GatewayProcess::start(&config, &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (admin_a, admin_b) = (a.admin_url.clone().unwrap(), b.admin_url.clone().unwrap());

    // A key created on A's admin page…
    let page = signed_in(&admin_a).await;
    let csrf = page.csrf().await;
    let r = page
        .post_form(
            "/keys",
            &[("csrf", &csrf), ("name", "Entra Sync"), ("expires", "90d")],
            None,
        )
        .await;
    assert!(r.status < 400, "{}", r.text);
    let created = if r.status == 303 {
        page.get(r.header("location").unwrap()).await
    } else {
        r
    };
    let key = shown_key(&created.text).expect("the new key is shown once");
    // …works on B, and on A.
    let (on_a, on_b) = (Scim::new(&a.scim_url, &key), Scim::new(&b.scim_url, &key));
    let r = on_b.post("/Users", &user("ada@example.com")).await;
    assert_eq!(r.status, 201, "key from A accepted by B: {}", r.text);
    let ada = r.json["id"].as_str().unwrap().to_string();
    let r = on_a.post("/Users", &user("grace@example.com")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let grace = r.json["id"].as_str().unwrap().to_string();

    // A managed group created through A, members changed through both, seen through both.
    let r = on_a
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "engineering"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let group = r.json["id"].as_str().unwrap().to_string();
    let r = on_b
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "ENGINEERING"}),
        )
        .await;
    assert_eq!(
        r.status, 409,
        "the name is taken on the shared store: {}",
        r.text
    );
    let add = |id: &str| {
        json!({"schemas": [PATCH_URN], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": id}]}]})
    };
    let r = on_a.patch(&format!("/Groups/{group}"), &add(&ada)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = on_b.patch(&format!("/Groups/{group}"), &add(&grace)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let mut both = vec![ada.clone(), grace.clone()];
    both.sort();
    assert_eq!(member_ids(&on_a, &group).await, both);
    assert_eq!(member_ids(&on_b, &group).await, both);
    let remove = json!({"schemas": [PATCH_URN], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": ada}]}]});
    let r = on_b.patch(&format!("/Groups/{group}"), &remove).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(member_ids(&on_a, &group).await, vec![grace.clone()]);
    let r = on_a
        .get("/Groups?filter=displayName%20eq%20%22engineering%22&excludedAttributes=members")
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);

    // Both report the same counts, read from the shared store.
    let (ca, cb) = (counts(&admin_a).await, counts(&admin_b).await);
    assert_eq!(ca, (2.0, 1.0), "A: users, groups");
    assert_eq!(cb, ca, "B agrees with A");

    // A key revoked on B's page is refused by B at once and by A within its key cache's
    // lifetime (A verified the key within the last second: it is in A's cache).
    let r = on_a.get("/Users?filter=userName%20eq%20%22x%22").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let page_b = signed_in(&admin_b).await;
    let keys = page_b.get("/keys").await;
    assert_eq!(keys.status, 200);
    let id = key.split('_').nth(1).unwrap();
    assert!(keys.text.contains(id), "B lists the key made on A");
    let csrf = page_b.csrf().await;
    let r = page_b
        .post_form(&format!("/keys/{id}/revoke"), &[("csrf", &csrf)], None)
        .await;
    assert!(r.status < 400, "{}", r.text);
    let revoked = std::time::Instant::now();
    let r = on_b.get("/Users?filter=userName%20eq%20%22x%22").await;
    assert_eq!(
        r.status, 401,
        "revoked on B, refused by B at once: {}",
        r.text
    );
    loop {
        let r = on_a.get("/Users?filter=userName%20eq%20%22x%22").await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            revoked.elapsed() < std::time::Duration::from_millis(1500),
            "revoked on B, still accepted by A after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop((a, b));
}
