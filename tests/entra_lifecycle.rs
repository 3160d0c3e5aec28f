//! Microsoft Entra ID's documented provisioning lifecycle, replayed over real sockets against
//! `scimgate demo` (gateway + embedded legacy app), in both PATCH dialects Entra speaks
//! (with and without the `aadOptscim062020` feature flag). Every step checks the SCIM answer
//! and what reached the legacy app, read through the legacy app's own API.

mod common;

use common::enc;
use common::entra::{Dialect, clients, patch, test_connection};
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::json;

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("default"))
        .await
        .expect("start demo stack")
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

    // Test Connection: a random userName, no Accept header → 200 and an empty ListResponse.
    test_connection(&scim).await;
    let probe = format!("{}", uuid::Uuid::new_v4());

    // Create User (Microsoft's request body, with unique values).
    let user_name = format!("Test_User_{tag}_{}@contoso.com", &probe[..8]);
    let work_email = format!("Test_User_{tag}_{}@testuser.com", &probe[9..13]);
    let external_id = format!("0a21f0f2-8d2a-4f8e-bf98-{tag}{}", &probe[..11]);
    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": work_email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    });
    let r = scim.post("/Users", &create).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(r.json["userName"], user_name.as_str());
    assert_eq!(r.json["active"], true);
    assert_eq!(
        r.header("location"),
        Some(format!("{}/Users/{id}", scim.base).as_str())
    );
    assert_eq!(
        r.json["meta"]["location"],
        format!("{}/Users/{id}", scim.base)
    );
    assert!(r.header("etag").is_some_and(|e| e.starts_with("W/\"")));
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["username"], user_name.as_str());
    assert_eq!(rec["email"], work_email.as_str());
    assert_eq!(rec["first_name"], "givenName");
    assert_eq!(rec["last_name"], "familyName");
    assert_eq!(rec["status"], "active");
    assert_eq!(rec["external_id"], external_id.as_str());

    // Duplicate → 409 uniqueness, nothing created on the legacy side.
    let before = legacy.get("/api/v1/users?per_page=1").await["total"].clone();
    let r = scim.post("/Users", &create).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["scimType"], "uniqueness");
    assert_eq!(r.json["status"], "409");
    assert_eq!(
        legacy.get("/api/v1/users?per_page=1").await["total"],
        before
    );

    // Get User.
    let r = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["id"], id.as_str());
    assert_eq!(r.json["name"]["givenName"], "givenName");
    assert_eq!(r.json["emails"][0]["value"], work_email.as_str());

    // Get User by query: userName, externalId, work email.
    for filter in [
        format!("userName eq \"{user_name}\""),
        format!("userName eq \"{}\"", user_name.to_uppercase()),
        format!("externalId eq \"{external_id}\""),
        format!("emails[type eq \"work\"].value eq \"{work_email}\""),
        format!("emails[type eq \"work\" and value eq \"{work_email}\"]"),
    ] {
        let r = scim.get(&format!("/Users?filter={}", enc(&filter))).await;
        assert_eq!(r.status, 200, "{filter}: {}", r.text);
        assert_eq!(r.json["totalResults"], 1, "{filter}: {}", r.text);
        assert_eq!(r.json["Resources"][0]["id"], id.as_str(), "{filter}");
    }
    // externalId is caseExact: a different case finds nothing.
    let r = scim
        .get(&format!(
            "/Users?filter={}",
            enc(&format!("externalId eq \"{}\"", external_id.to_uppercase()))
        ))
        .await;
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);

    // Update User [Multi-valued properties].
    let new_email = format!("updated_{tag}_{}@microsoft.com", &probe[..6]);
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "emails[type eq \"work\"].value", "value": new_email}),
                json!({"op": d.op("replace"), "path": "name.familyName", "value": "updatedFamilyName"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["emails"][0]["value"], new_email.as_str());
    assert_eq!(r.json["name"]["familyName"], "updatedFamilyName");
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["email"], new_email.as_str());
    assert_eq!(rec["last_name"], "updatedFamilyName");

    // Update User [Single-valued properties].
    let new_user_name = format!("renamed_{tag}_{}@contoso.com", &probe[..6]);
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "userName", "value": new_user_name}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["userName"], new_user_name.as_str());
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["username"],
        new_user_name.as_str()
    );

    // Path-less replace with dotted and URN keys (Entra sends both).
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![json!({"op": d.op("replace"), "value": {
                "name.givenName": "Barbara",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
                "title": "Tour Guide"
            }})]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["name"]["givenName"], "Barbara");
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["first_name"], "Barbara");
    assert_eq!(rec["employee_number"], "701984");
    assert_eq!(rec["job_title"], "Tour Guide");

    // Disable User: the user stays and is returned with active=false.
    let disable_value = match d {
        Dialect::Legacy => json!("False"),
        Dialect::Compliant => json!(false),
    };
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "active", "value": disable_value}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["status"],
        "inactive"
    );
    let r = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["active"], false);

    // Enable again (path-less, as Entra does it).
    let enable_value = match d {
        Dialect::Legacy => json!({"active": "True"}),
        Dialect::Compliant => json!({"active": true}),
    };
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch(vec![json!({"op": d.op("replace"), "value": enable_value})]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], true);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["status"],
        "active"
    );

    // A second user for the group.
    let mut second = create.clone();
    second["userName"] = json!(format!("second_{tag}_{}@contoso.com", &probe[..6]));
    second["externalId"] = json!(format!("ext-second-{tag}-{}", &probe[..6]));
    second["emails"] = json!([{"primary": true, "type": "work", "value": format!("second_{tag}_{}@testuser.com", &probe[..6])}]);
    let r = scim.post("/Users", &second).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id2 = r.json["id"].as_str().expect("id").to_string();

    // Create Group (Microsoft's body, including its own schema URN).
    let group_name = format!("Group_{tag}_{}", &probe[..8]);
    let r = scim
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": format!("8aa1a0c0-{tag}-{}", &probe[..8]),
                "displayName": group_name,
                "meta": {"resourceType": "Group"}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().expect("gid").to_string();
    assert_eq!(r.json["displayName"], group_name.as_str());
    assert_eq!(
        legacy.get(&format!("/api/v1/teams/{gid}")).await["name"],
        group_name.as_str()
    );

    // Get Group by displayName without members.
    let r = scim
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc(&format!("displayName eq \"{group_name}\""))
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 1);
    assert!(r.json["Resources"][0].get("members").is_none());

    // Add two members in one PATCH.
    let r = scim
        .patch(
            &format!("/Groups/{gid}"),
            &patch(vec![json!({"op": d.op("add"), "path": "members",
                "value": [{"$ref": null, "value": id}, {"$ref": null, "value": id2}]})]),
        )
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let members = legacy.get(&format!("/api/v1/teams/{gid}/members")).await;
    assert_eq!(members["total"], 2, "{members}");
    let r = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(
        r.json["members"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text
    );

    // Rename the group (non-member attribute).
    let renamed = format!("{group_name}_renamed");
    let r = scim
        .patch(
            &format!("/Groups/{gid}"),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "displayName", "value": renamed}),
            ]),
        )
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/teams/{gid}")).await["name"],
        renamed.as_str()
    );

    // Remove one member: by value array (legacy dialect) or by filter (compliant).
    let remove = match d {
        Dialect::Legacy => json!({"op": "Remove", "path": "members", "value": [{"value": id}]}),
        Dialect::Compliant => {
            json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")})
        }
    };
    let r = scim
        .patch(&format!("/Groups/{gid}"), &patch(vec![remove.clone()]))
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let members = legacy.get(&format!("/api/v1/teams/{gid}/members")).await;
    assert_eq!(members["total"], 1, "{members}");
    assert_eq!(members["data"][0]["user_id"].to_string(), id2);
    // Removing it again is not an error (Entra retries).
    let r = scim
        .patch(&format!("/Groups/{gid}"), &patch(vec![remove]))
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);

    // excludedAttributes=members on GET by id.
    let r = scim
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json.get("members").is_none());
    assert_eq!(r.json["displayName"], renamed.as_str());

    // Deletes, then 404 from both sides.
    for path in [
        format!("/Groups/{gid}"),
        format!("/Users/{id}"),
        format!("/Users/{id2}"),
    ] {
        let r = scim.delete(&path).await;
        assert_eq!(r.status, 204, "{path}: {}", r.text);
        let r = scim.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(r.json["status"], "404");
    }
    let r = legacy
        .call("GET", &format!("/api/v1/users/{id}"), None)
        .await;
    assert_eq!(r.status, 404);
    let r = legacy
        .call("GET", &format!("/api/v1/teams/{gid}"), None)
        .await;
    assert_eq!(r.status, 404);
}

/// A create that leaves `meta` out of its answer (`excludedAttributes=meta`) still says where
/// the resource is (the `Location` header was read from the answer's `meta`, so it went
/// missing), and a resource's version is the same whatever the answer shows of it.
#[tokio::test]
async fn a_create_that_excludes_meta_still_says_where_it_is() {
    let stack = start().await;
    let (scim, _legacy) = clients(&stack);
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": "ext-no-meta",
        "userName": "no-meta@contoso.com",
        "active": true,
    });
    let r = scim.post("/Users?excludedAttributes=meta", &user).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json.get("meta").is_none(), "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("{}/Users/{id}", scim.base).as_str())
    );
    let created_etag = r.header("etag").expect("etag").to_string();
    let full = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(full.header("etag"), Some(created_etag.as_str()));
    assert_eq!(full.json["meta"]["version"], created_etag.as_str());
    let some = scim.get(&format!("/Users/{id}?attributes=userName")).await;
    assert_eq!(some.header("etag"), Some(created_etag.as_str()));
    assert!(some.json.get("active").is_none(), "{}", some.text);
}

/// A GET answered whole is written straight from the mapping's answer; one naming attributes
/// takes the general path (the resource as a value, projected, then written). With an
/// `excludedAttributes` that leaves out nothing shown, the two are the same bytes and version,
/// for users of every shape the default profile maps, and so are list items.
#[tokio::test]
async fn a_get_is_the_same_whichever_path_writes_it() {
    same_whichever_path(&start().await).await;
}

/// The same with the scripts in rhai's interpreter: the answer is then rhai's JSON.
#[tokio::test]
async fn a_get_is_the_same_whichever_path_writes_it_interpreted() {
    let mut options = DemoOptions::for_tests("default");
    options.adjust = Some(|cfg| cfg.server.compile_scripts = false);
    let stack = DemoStack::start(options).await.expect("start demo stack");
    same_whichever_path(&stack).await;
}

async fn same_whichever_path(stack: &DemoStack) {
    let (scim, _legacy) = clients(stack);
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let bodies = [
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
               "userName": "plain@contoso.com", "active": true}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent],
               "externalId": "e-\"q\\é", "userName": "full@contoso.com", "active": false,
               "displayName": "Zoë \"Z\" \\ Ünïcode", "title": "Lead", "userType": "Member",
               "name": {"givenName": "Zoë", "familyName": "Q"},
               "emails": [{"type": "work", "value": "full@contoso.com", "primary": true}],
               "phoneNumbers": [{"type": "work", "value": "+1 555 0100"}],
               ent: {"employeeNumber": "42", "department": "R&D"}}),
    ];
    let mut ids = Vec::new();
    for b in &bodies {
        let r = scim.post("/Users", b).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json["id"].as_str().expect("id").to_string());
    }
    // A create's answer is the resource as a GET then gives it, written straight from the
    // mapping's answer or (naming attributes) by the general path.
    for (i, query) in ["", "?excludedAttributes=password"].iter().enumerate() {
        let mut body = bodies[1].clone();
        body["userName"] = json!(format!("again{i}@contoso.com"));
        body["externalId"] = json!(format!("again-{i}"));
        body["emails"][0]["value"] = body["userName"].clone();
        let created = scim.post(&format!("/Users{query}"), &body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.json["id"].as_str().expect("id");
        let read = scim.get(&format!("/Users/{id}")).await;
        assert_eq!(created.text, read.text);
        assert_eq!(created.header("etag"), read.header("etag"));
        assert_eq!(
            created.header("location"),
            read.json["meta"]["location"].as_str()
        );
    }
    for id in &ids {
        let whole = scim.get(&format!("/Users/{id}")).await;
        let general = scim
            .get(&format!("/Users/{id}?excludedAttributes=password"))
            .await;
        assert_eq!(whole.status, 200, "{}", whole.text);
        assert_eq!(whole.text, general.text);
        assert_eq!(whole.header("etag"), general.header("etag"));
        assert_eq!(
            whole.json["meta"]["version"],
            whole.header("etag").unwrap_or("")
        );
        let filter = enc(&format!("id eq \"{id}\""));
        let listed = scim.get(&format!("/Users?filter={filter}")).await;
        assert_eq!(listed.json["Resources"][0], whole.json, "{}", listed.text);
    }
    let full = scim.get(&format!("/Users/{}", ids[1])).await;
    assert_eq!(full.json[ent]["department"], "R&D", "{}", full.text);
    assert_eq!(full.json["displayName"], "Zoë \"Z\" \\ Ünïcode");
    // A list is the same whether its resources are written straight from the mapping's
    // answers (its filter evaluated on what it reads of them) or, naming attributes, by the
    // general path: filtered here or by the app, paged here or by the app, matching or not.
    let filters = [
        "userName eq \"full@contoso.com\"".to_string(),
        "userName eq \"FULL@contoso.com\"".to_string(),
        "userName eq \"nobody@contoso.com\"".to_string(),
        "displayName co \"z\"".to_string(),
        format!("{ent}:department eq \"R&D\""),
        format!("{ent}:department pr or title eq \"Lead\""),
        "active eq false".to_string(),
        "not (active eq false)".to_string(),
        format!("id eq \"{}\"", ids[0]),
        "emails[type eq \"work\" and value co \"full\"]".to_string(),
        "meta.resourceType eq \"User\"".to_string(),
    ];
    let mut queries: Vec<String> = filters
        .iter()
        .map(|f| format!("filter={}", enc(f)))
        .collect();
    let userish = enc("userName co \"contoso\"");
    queries.extend([
        format!("filter={userish}&startIndex=2&count=2"),
        format!("filter={userish}&startIndex=9&count=2"),
        format!("filter={userish}&count=0"),
        "startIndex=1&count=3".to_string(),
        "startIndex=2".to_string(),
    ]);
    let mut matched = 0;
    for q in &queries {
        let fast = scim.get(&format!("/Users?{q}")).await;
        let general = scim
            .get(&format!("/Users?{q}&excludedAttributes=password"))
            .await;
        assert_eq!(fast.status, 200, "{q}: {}", fast.text);
        assert_eq!(fast.text, general.text, "{q}");
        matched += fast.json["Resources"].as_array().map_or(0, Vec::len);
    }
    assert!(matched > 10, "the queries match resources: {matched}");
}
