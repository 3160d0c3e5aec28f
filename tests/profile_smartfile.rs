//! The smartfile profile (seed document 004) under Entra's provisioning lifecycle, in both
//! PATCH dialects, against `scimgate demo --profile smartfile`: the demo app requires HTTP
//! Basic `key:password`, Entra's Secret Token is that pair, and the gateway only forwards it.
//! Every step checks what reached the legacy app through its own API, including that a
//! wrong credential does nothing and that deactivation and DELETE remove the record.

mod common;

use common::entra::{Dialect, clients, create_user, legacy_user_count, patch, test_connection};
use common::{Legacy, Scim};
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::{Value, json};

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("smartfile"))
        .await
        .expect("start demo stack")
}

/// The demo app's request counters.
async fn legacy_state(legacy: &Legacy) -> Value {
    legacy.get("/__demo/state").await
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

#[tokio::test]
async fn the_token_is_forwarded_and_the_app_decides() {
    let stack = start().await;
    let (scim, legacy) = clients(&stack);
    let (key, password) = stack.token.split_once(':').expect("key:password");
    test_connection(&scim).await;
    let before = legacy_user_count(&legacy).await;
    let body = user("wrong.creds@contoso.com", "ext-wrong");

    // A wrong password or a wrong key reaches the app, which refuses: SCIM 401, not 502, and
    // nothing is created.
    for wrong in [
        format!("{key}:not-{password}"),
        format!("other-{key}:{password}"),
    ] {
        let bad = Scim::new(&stack.scim_url, &wrong);
        let refused_before = legacy_state(&legacy).await["unauthorized_total"].clone();
        for r in [
            bad.get("/Users?filter=userName%20eq%20%22x%22").await,
            bad.post("/Users", &body).await,
            bad.delete("/Users/1").await,
        ] {
            assert_eq!(r.status, 401, "{}", r.text);
            assert_eq!(r.json["status"], "401");
            assert!(!r.text.contains(password), "{}", r.text);
        }
        let refused = legacy_state(&legacy).await["unauthorized_total"].as_u64();
        assert_eq!(
            refused,
            refused_before.as_u64().map(|n| n + 3),
            "each call was judged by the app"
        );
    }
    assert_eq!(legacy_user_count(&legacy).await, before);

    // Malformed tokens never reach the app; the gateway's own static token is not a
    // SmartFile credential either.
    let refused_before = legacy_state(&legacy).await["unauthorized_total"].clone();
    for malformed in ["no-colon", ":no-key", "no-password:"] {
        let r = Scim::new(&stack.scim_url, malformed).get("/Users").await;
        assert_eq!(r.status, 401, "{malformed}: {}", r.text);
    }
    let r = scim
        .http
        .raw("GET", &format!("{}/Users", scim.base), &[], None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        legacy_state(&legacy).await["unauthorized_total"],
        refused_before
    );
    let r = Scim::new(&stack.scim_url, "demo-scim-token-change-me")
        .get("/Users")
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    // Nothing is cached: the right pair still works, a wrong one after it still fails.
    test_connection(&scim).await;
    let r = Scim::new(&stack.scim_url, &format!("{key}:x"))
        .get("/Users")
        .await;
    assert_eq!(r.status, 401);
    // The same pair sent as HTTP Basic by a client other than Entra is forwarded too.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(&stack.token);
    let r = scim
        .http
        .raw(
            "GET",
            &format!("{}/Users", scim.base),
            &[("authorization", &format!("Basic {basic}"))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn lifecycle_legacy_dialect() {
    let stack = start().await;
    lifecycle(&stack, Dialect::Legacy, "a").await;
}

#[tokio::test]
async fn lifecycle_compliant_dialect() {
    let stack = start().await;
    lifecycle(&stack, Dialect::Compliant, "b").await;
}

async fn lifecycle(stack: &DemoStack, d: Dialect, tag: &str) {
    let (scim, legacy) = clients(stack);
    test_connection(&scim).await;
    let probe = uuid::Uuid::new_v4().to_string();
    let name = format!("adele.{tag}.{}@contoso.com", &probe[..8]);
    let external_id = format!("ext-{tag}-{}", &probe[..8]);

    // A user cannot be created disabled: SmartFile has no disabled users.
    let before = legacy_user_count(&legacy).await;
    let mut inactive = user(&name, &external_id);
    inactive["active"] = d.boolean(false);
    let r = scim.post("/Users", &inactive).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert_eq!(legacy_user_count(&legacy).await, before);

    // Create.
    let r = scim.post("/Users", &user(&name, &external_id)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["username"], name.as_str());
    assert_eq!(rec["email"], name.as_str());
    assert_eq!(rec["first_name"], "givenName");
    assert_eq!(rec["display_name"], "Adele Vance");
    assert_eq!(rec["external_id"], external_id.as_str());
    assert_eq!(rec["status"], "active");

    // Entra's lookups.
    for filter in [
        format!("userName eq \"{name}\""),
        format!("externalId eq \"{external_id}\""),
    ] {
        let r = scim
            .get(&format!("/Users?filter={}", common::enc(&filter)))
            .await;
        assert_eq!(r.json["totalResults"], 1, "{filter}: {}", r.text);
    }

    // Update (Entra's "replace multiple attributes" shape for this dialect).
    let ops = match d {
        Dialect::Legacy => vec![
            json!({"op": "Replace", "path": "displayName", "value": "Adele V."}),
            json!({"op": "Replace", "path": "name.familyName", "value": "Vance"}),
        ],
        Dialect::Compliant => vec![json!({"op": "replace", "value": {
            "displayName": "Adele V.", "name.familyName": "Vance"
        }})],
    };
    let r = scim.patch(&format!("/Users/{id}"), &patch(ops)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["display_name"], "Adele V.");
    assert_eq!(rec["last_name"], "Vance");

    // Groups and members.
    let name2 = format!("megan.{tag}.{}@contoso.com", &probe[..8]);
    let r = scim
        .post("/Users", &user(&name2, &format!("{external_id}-2")))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id2 = r.json["id"].as_str().expect("id").to_string();
    let r = scim
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "externalId": format!("grp-{tag}-{}", &probe[..8]),
                "displayName": format!("Files {tag} {}", &probe[..8]),
                "members": [{"value": id}]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().expect("gid").to_string();
    let r = scim
        .patch(&format!("/Groups/{gid}"), &d.add_members(&[&id2]))
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/teams/{gid}/members")).await["total"],
        2
    );
    let r = scim
        .patch(&format!("/Groups/{gid}"), &d.remove_member(&id2))
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let members = legacy.get(&format!("/api/v1/teams/{gid}/members")).await;
    assert_eq!(members["total"], 1, "{members}");
    assert_eq!(members["data"][0]["user_id"].to_string(), id);

    // Deactivation (Entra's own body for this dialect) is a hard delete in SmartFile: the
    // answer is 204, never a resource that no longer exists.
    let r = scim.patch(&format!("/Users/{id}"), &d.disable_user()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let gone = legacy
        .call("GET", &format!("/api/v1/users/{id}"), None)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert_eq!(scim.get(&format!("/Users/{id}")).await.status, 404);
    assert_eq!(
        legacy.get(&format!("/api/v1/teams/{gid}/members")).await["total"],
        0
    );

    // DELETE removes the record; so does a group delete.
    let r = scim.delete(&format!("/Users/{id2}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let gone = legacy
        .call("GET", &format!("/api/v1/users/{id2}"), None)
        .await;
    assert_eq!(gone.status, 404);
    let r = scim.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let gone = legacy
        .call("GET", &format!("/api/v1/teams/{gid}"), None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(legacy_user_count(&legacy).await, before);
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
