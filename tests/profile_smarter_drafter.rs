//! The smarter-drafter profile (seed document 000) under Entra's provisioning lifecycle, in
//! both PATCH dialects, against `scimgate demo --profile smarter-drafter`. Every step checks
//! what reached the legacy app through its own API: userName as the Direct email, title as
//! the Position, the required attributes, the custom attributes published in /Schemas, the
//! office matched to an existing office ignoring case, and group memberships.

mod common;

use common::entra::{
    Dialect, clients, create_user, legacy_user_count, patch, set_path, team_lifecycle,
    test_connection,
};
use common::{Legacy, enc};
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::{Value, json};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("smarter-drafter"))
        .await
        .expect("start demo stack")
}

/// The demo app's id for office `name`, read from the app itself.
async fn office_id(legacy: &Legacy, name: &str) -> Value {
    let r = legacy
        .get(&format!("/api/v1/offices?name={}", enc(name)))
        .await;
    assert_eq!(r["total"], 1, "{r}");
    r["data"][0]["id"].clone()
}

/// Entra's create body with every Smarter Drafter attribute, as an integrator maps them.
fn full_user(email: &str, external_id: &str, office: &str) -> Value {
    create_user(&[
        ("userName", json!(email)),
        ("externalId", json!(external_id)),
        ("title", json!("Senior Associate")),
        ("initials", json!("AV")),
        ("directPhoneNumber", json!("+61 2 5550 0100")),
        ("serviceEmail", json!(format!("service.{email}"))),
        ("office", json!(office)),
        ("name.givenName", json!("Adele")),
        ("name.familyName", json!("Vance")),
    ])
}

#[tokio::test]
async fn schemas_publish_the_documented_attributes_with_their_required_flags() {
    let stack = start().await;
    let (scim, _) = clients(&stack);
    let r = scim.get(&format!("/Schemas/{CORE_USER}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let attrs = r.json["attributes"].as_array().expect("attributes");
    let flag = |name: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not published: {attrs:?}"))["required"]
            .clone()
    };
    for required in [
        "userName",
        "active",
        "title",
        "initials",
        "directPhoneNumber",
    ] {
        assert_eq!(flag(required), true, "{required}");
    }
    for optional in ["serviceEmail", "office"] {
        assert_eq!(flag(optional), false, "{optional}");
    }
    let name = attrs.iter().find(|a| a["name"] == "name").expect("name");
    for sub in ["givenName", "familyName"] {
        let s = name["subAttributes"]
            .as_array()
            .and_then(|subs| subs.iter().find(|s| s["name"] == sub))
            .unwrap_or_else(|| panic!("name.{sub}"));
        assert_eq!(s["required"], true, "name.{sub}");
    }
    // Only what Smarter Drafter stores is published.
    assert!(!attrs.iter().any(|a| a["name"] == "emails"), "{attrs:?}");
    // externalId, a common attribute (RFC 7643 §3.1), is listed in the schema because the
    // profile requires it.
    assert_eq!(flag("externalId"), true);
    let ext = attrs.iter().find(|a| a["name"] == "externalId").unwrap();
    assert_eq!(
        ext["uniqueness"], "server",
        "the vendor: a unique identifier"
    );
    let all = scim.get("/Schemas").await;
    assert!(
        all.json["Resources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["id"] == CORE_USER)),
        "{}",
        all.text
    );
}

/// externalId is "Unique identifier for the user": a second user with the same externalId is
/// a 409 uniqueness and nothing reaches the app, also when a PATCH or PUT would take one.
#[tokio::test]
async fn external_id_is_unique() {
    let stack = start().await;
    let (scim, legacy) = clients(&stack);
    let r = scim
        .post(
            "/Users",
            &full_user("first@contoso.com", "emp-001", "Sydney"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.json["id"].as_str().unwrap().to_string();
    let before = legacy_user_count(&legacy).await;
    let second = full_user("second@contoso.com", "emp-001", "Sydney");
    let r = scim.post("/Users", &second).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["scimType"], "uniqueness");
    assert!(
        r.json["detail"].as_str().unwrap().contains(&first),
        "{}",
        r.text
    );
    assert_eq!(legacy_user_count(&legacy).await, before, "nothing written");
    let r = scim
        .get(&format!(
            "/Users?filter={}",
            enc("externalId eq \"emp-001\"")
        ))
        .await;
    assert_eq!(r.json["totalResults"], 1, "{}", r.text);
    // Another user may not take it by PATCH or PUT; keeping one's own is fine.
    let r = scim
        .post(
            "/Users",
            &full_user("second@contoso.com", "emp-002", "Sydney"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let path = format!("/Users/{}", r.json["id"].as_str().unwrap());
    for d in [Dialect::Legacy, Dialect::Compliant] {
        let r = scim
            .patch(
                &path,
                &patch(vec![
                    json!({"op": d.op("replace"), "path": "externalId", "value": "emp-001"}),
                ]),
            )
            .await;
        assert_eq!(r.status, 409, "{}", r.text);
    }
    let r = scim
        .put(&path, &full_user("second@contoso.com", "emp-001", "Sydney"))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = scim
        .put(
            &path,
            &full_user("second@contoso.com", "emp-002", "Melbourne"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = legacy
        .get(&format!("/api/v1/users/{}", r.json["id"].as_str().unwrap()))
        .await;
    assert_eq!(rec["external_id"], "emp-002");
    stack.gateway.shutdown().await;
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

#[tokio::test]
async fn every_missing_required_attribute_is_a_400_naming_it_and_nothing_is_created() {
    let stack = start().await;
    let (scim, legacy) = clients(&stack);
    let before = legacy_user_count(&legacy).await;
    for (i, attr) in [
        "userName",
        "active",
        "title",
        "name.givenName",
        "name.familyName",
        "externalId",
        "initials",
        "directPhoneNumber",
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = full_user(
            &format!("req{i}@contoso.com"),
            &format!("ext-req-{i}"),
            "London",
        );
        set_path(&mut body, attr, Value::Null);
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 400, "{attr}: {}", r.text);
        assert_eq!(r.json["scimType"], "invalidValue", "{attr}");
        assert!(
            r.json["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("'{attr}'"))),
            "{attr}: {}",
            r.text
        );
        // A PUT must carry them too.
        let r = scim.put("/Users/1", &body).await;
        assert_eq!(r.status, 400, "PUT without {attr}: {}", r.text);
    }
    // Optional ones may be left out.
    let mut body = full_user("optional@contoso.com", "ext-opt", "London");
    set_path(&mut body, "serviceEmail", Value::Null);
    set_path(&mut body, "office", Value::Null);
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rec = legacy
        .get(&format!(
            "/api/v1/users/{}",
            r.json["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        (rec["office_id"].clone(), rec["service_email"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(legacy_user_count(&legacy).await, before + 1);
}

async fn lifecycle(stack: &DemoStack, d: Dialect, tag: &str) {
    let (scim, legacy) = clients(stack);
    test_connection(&scim).await;
    let probe = uuid::Uuid::new_v4().to_string();
    let email = format!("adele.{tag}.{}@contoso.com", &probe[..8]);
    let external_id = format!("ext-{tag}-{}", &probe[..8]);

    // Unknown office: 400 naming it, and nothing reaches the app.
    let before = legacy_user_count(&legacy).await;
    let r = scim
        .post("/Users", &full_user(&email, &external_id, "Perth"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|s| s.contains("Perth")),
        "{}",
        r.text
    );
    assert_eq!(legacy_user_count(&legacy).await, before);

    // Create with a mixed-case office: stored as Sydney's id, answered in Sydney's spelling.
    let r = scim
        .post("/Users", &full_user(&email, &external_id, "sYdNeY"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(r.json["userName"], email.as_str());
    assert_eq!(r.json["office"], "Sydney");
    assert_eq!(r.json["initials"], "AV");
    assert_eq!(r.json["directPhoneNumber"], "+61 2 5550 0100");
    assert!(
        r.json.get("emails").is_none(),
        "emails are not stored: {}",
        r.text
    );
    let sydney = office_id(&legacy, "Sydney").await;
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["email"], email.as_str(), "userName is the Direct email");
    assert_eq!(rec["username"], email.as_str());
    assert_eq!(
        rec["job_title"], "Senior Associate",
        "title is the Position"
    );
    assert_eq!(rec["first_name"], "Adele");
    assert_eq!(rec["last_name"], "Vance");
    assert_eq!(rec["initials"], "AV");
    assert_eq!(rec["direct_phone"], "+61 2 5550 0100");
    assert_eq!(rec["service_email"], format!("service.{email}").as_str());
    assert_eq!(rec["office_id"], sydney);
    assert_eq!(rec["status"], "active");
    assert_eq!(rec["external_id"], external_id.as_str());
    assert_eq!(legacy_user_count(&legacy).await, before + 1);

    // Entra finds the user by userName (any case) and by externalId.
    for filter in [
        format!("userName eq \"{email}\""),
        format!("userName eq \"{}\"", email.to_uppercase()),
        format!("externalId eq \"{external_id}\""),
    ] {
        let r = scim.get(&format!("/Users?filter={}", enc(&filter))).await;
        assert_eq!(r.json["totalResults"], 1, "{filter}: {}", r.text);
        assert_eq!(r.json["Resources"][0]["id"], id.as_str());
    }

    // PATCH: Position and office by path, custom attributes path-less (as Entra sends them).
    let melbourne = office_id(&legacy, "Melbourne").await;
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "title", "value": "Partner"}),
                json!({"op": d.op("replace"), "path": "office", "value": "  MELBOURNE "}),
                json!({"op": d.op("replace"), "value": {
                    "initials": "AMV",
                    "directPhoneNumber": "+61 3 5550 0199",
                    "name.familyName": "Vance-Smith"
                }}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["office"], "Melbourne");
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["job_title"], "Partner");
    assert_eq!(rec["office_id"], melbourne);
    assert_eq!(rec["initials"], "AMV");
    assert_eq!(rec["direct_phone"], "+61 3 5550 0199");
    assert_eq!(rec["last_name"], "Vance-Smith");

    // An unknown office by PATCH: 400, and the record keeps its office.
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "office", "value": "Atlantis"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|s| s.contains("Atlantis"))
    );
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["office_id"],
        melbourne
    );

    // The optional office and service e-mail can be removed again.
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("remove"), "path": "office"}),
                json!({"op": d.op("remove"), "path": "serviceEmail"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("office").is_none(), "{}", r.text);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(
        (rec["office_id"].clone(), rec["service_email"].clone()),
        (Value::Null, Value::Null)
    );

    // Disable (Entra's own body for this dialect): inactive users cannot log in, so the
    // account is inactive and its open sessions are revoked; then enable.
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["active_sessions"],
        1
    );
    let r = scim.patch(&format!("/Users/{id}"), &d.disable_user()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(
        (
            &rec["status"],
            &rec["active_sessions"],
            &rec["sessions_revoked"]
        ),
        (&json!("inactive"), &json!(0), &json!(1)),
        "{rec}"
    );
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("replace"), "value": {"active": d.boolean(true)}}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["status"],
        "active"
    );

    // Groups: memberships are synced to the app's teams.
    let email2 = format!("megan.{tag}.{}@contoso.com", &probe[..8]);
    let r = scim
        .post(
            "/Users",
            &full_user(&email2, &format!("{external_id}-2"), "london"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id2 = r.json["id"].as_str().expect("id").to_string();
    let group = format!("Drafting {tag} {}", &probe[..8]);
    team_lifecycle(
        &scim,
        &legacy,
        d,
        &group,
        &format!("grp-{tag}-{}", &probe[..8]),
        (&id, &id2),
    )
    .await;
}

/// Entra's DELETE, then GET, a second DELETE, PATCH, filter and re-POST: the app deleted
/// the user, so everything is 404 and a re-POST creates it again.
#[tokio::test]
async fn delete_then_get_filter_and_repost() {
    let stack = start().await;
    let (scim, _) = clients(&stack);
    let body = full_user("replay@contoso.com", "ext-replay", "Sydney");
    common::entra::delete_replay(&scim, &body, 201).await;
    stack.gateway.shutdown().await;
}
