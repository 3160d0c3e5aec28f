//! The enterprise-toolkit profile (seed document 002) under Entra's provisioning lifecycle,
//! in both PATCH dialects, against `scimgate demo --profile enterprise-toolkit` with the
//! product's SCIM user name and password (HTTP Basic). Every step checks what reached the
//! legacy app through its own API: the e-mail as the user name, userType exactly Premium or
//! Standard with the profile's default, roles as web access, folders resolved by GUID or
//! external id, metadata flattened to strings, deactivation keeping the data, and teams with
//! their members.

mod common;

use base64::Engine as _;
use common::entra::{
    Dialect, clients, create_user, legacy_user_count, patch, set_path, team_lifecycle,
    test_connection,
};
use common::{Legacy, Scim};
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::{Value, json};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const FOLDERS: &str = "urn:ietf:params:scim:schemas:extension:2.0:CustomExtensionName";
const METADATA: &str = "urn:ietf:params:scim:schemas:extension:2.0:Metadata";

async fn start() -> DemoStack {
    DemoStack::start(DemoOptions::for_tests("enterprise-toolkit"))
        .await
        .expect("start demo stack")
}

/// A SCIM client sending HTTP Basic `user:password`.
fn basic_client(stack: &DemoStack, user: &str, password: &str) -> Scim {
    let mut scim = Scim::new(&stack.scim_url, "unused");
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    scim.auth = format!("Basic {pair}");
    scim
}

/// The SCIM user name and password the demo created and printed, as a Basic client, plus a
/// client of the legacy app's own API.
fn product_clients(stack: &DemoStack) -> (Scim, Legacy) {
    let (user, password) = stack.basic.clone().expect("the demo creates a SCIM user");
    let (_, legacy) = clients(stack);
    (basic_client(stack, &user, &password), legacy)
}

/// (guid, external_id) of every folder of the app, read from the app itself.
async fn folders(legacy: &Legacy) -> Vec<(String, String)> {
    let r = legacy.get("/api/v1/folders").await;
    r["data"]
        .as_array()
        .expect("folders")
        .iter()
        .map(|f| {
            (
                f["guid"].as_str().expect("guid").to_string(),
                f["external_id"].as_str().expect("external_id").to_string(),
            )
        })
        .collect()
}

/// Entra's create body for an Enterprise Toolkit user: the e-mail as userName and work
/// e-mail, first and last name, and `extra` fields set over it.
fn toolkit_user(email: &str, external_id: &str, extra: &[(&str, Value)]) -> Value {
    let mut body = create_user(&[
        ("userName", json!(email)),
        ("externalId", json!(external_id)),
        (
            "emails",
            json!([{"primary": true, "type": "work", "value": email}]),
        ),
        ("name.givenName", json!("Adele")),
        ("name.familyName", json!("Vance")),
        ("displayName", json!("Adele Vance")),
    ]);
    for (k, v) in extra {
        if k.starts_with("urn:") {
            // An extension's URN holds dots ("2.0") that are no sub-attribute separators.
            body[*k] = v.clone();
        } else {
            set_path(&mut body, k, v.clone());
        }
    }
    body
}

fn detail(r: &common::Resp) -> &str {
    r.json["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_product_s_user_name_and_password_protect_the_endpoint() {
    let stack = start().await;
    let (user, password) = stack.basic.clone().expect("SCIM user");
    assert_eq!(user, "enterprise-toolkit");
    assert_eq!(
        stack.token, password,
        "Entra's Secret Token is the Password"
    );
    let (scim, legacy) = product_clients(&stack);
    test_connection(&scim).await;
    // Entra's custom SCIM app sends the Password as its Secret Token, i.e. a bearer token.
    let (bearer, _) = clients(&stack);
    test_connection(&bearer).await;

    let before = legacy_user_count(&legacy).await;
    let body = toolkit_user("intruder@contoso.com", "intruder", &[]);
    for wrong in [
        basic_client(&stack, &user, &format!("{password}x")),
        basic_client(&stack, "someone-else", &password),
        Scim::new(&stack.scim_url, "not-the-password"),
    ] {
        let r = wrong.post("/Users", &body).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(!r.text.contains(&password), "{}", r.text);
        assert_eq!(wrong.get("/Users").await.status, 401);
    }
    let r = scim
        .http
        .raw("GET", &format!("{}/Users", scim.base), &[], None)
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        legacy_user_count(&legacy).await,
        before,
        "nothing was created"
    );
}

/// `scimgate demo --profile enterprise-toolkit` as a process: it prints what the product's
/// connector page shows (SCIM URL, User Name, Password), and that pair opens the endpoint.
#[tokio::test]
async fn scimgate_demo_prints_the_scim_url_user_name_and_password() {
    use std::io::{BufRead, BufReader};
    /// Kills the demo however the test ends.
    struct Demo(std::process::Child);
    impl Drop for Demo {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut demo = Demo(
        std::process::Command::new(env!("CARGO_BIN_EXE_scimgate"))
            .args([
                "demo",
                "--profile",
                "enterprise-toolkit",
                "--listen",
                "127.0.0.1:0",
                "--legacy-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn scimgate demo"),
    );
    let stdout = demo.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut printed = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("Ctrl-C");
            printed.push(line);
            if done {
                let _ = tx.send(printed);
                return;
            }
        }
    });
    let printed = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the demo printed its connection details");
    let field = |label: &str| {
        printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label} in {printed:#?}"))
    };
    let (url, user, password) = (
        field("SCIM base URL (Entra Tenant URL):"),
        field("User Name:"),
        field("Password:"),
    );
    assert_eq!(user, "enterprise-toolkit");
    assert!(
        printed
            .iter()
            .any(|l| l.contains(&format!("-u '{user}:{password}'"))),
        "{printed:#?}"
    );
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut scim = Scim::new(&url, &password);
    test_connection(&scim).await;
    scim.auth = format!("Basic {pair}");
    test_connection(&scim).await;
    scim.auth = format!("Bearer {password}x");
    assert_eq!(scim.get("/Users").await.status, 401);
}

#[tokio::test]
async fn schemas_publish_the_rules() {
    let stack = start().await;
    let (scim, _) = product_clients(&stack);
    let r = scim.get(&format!("/Schemas/{CORE_USER}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let attrs = r.json["attributes"].as_array().expect("attributes").clone();
    let attr = |name: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not published: {attrs:?}"))
            .clone()
    };
    assert_eq!(
        attr("userType")["canonicalValues"],
        json!(["Premium", "Standard"])
    );
    for required in ["userName", "name", "emails"] {
        assert_eq!(attr(required)["required"], true, "{required}");
    }
    let sub = |a: &Value, name: &str| {
        a["subAttributes"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name))
            .unwrap_or_else(|| panic!("{name}: {a}"))
            .clone()
    };
    for name in ["givenName", "familyName"] {
        assert_eq!(sub(&attr("name"), name)["required"], true, "name.{name}");
    }
    assert_eq!(
        sub(&attr("roles"), "value")["canonicalValues"],
        json!(["ReadOnly", "User", "Admin", "EnterpriseAdmin"])
    );
    assert!(!attrs.iter().any(|a| a["name"] == "title"), "{attrs:?}");
    let folders = scim.get(&format!("/Schemas/{FOLDERS}")).await;
    assert_eq!(folders.status, 200, "{}", folders.text);
    assert_eq!(folders.json["attributes"][0]["name"], "folders");
    assert_eq!(folders.json["attributes"][0]["multiValued"], true);
    let metadata = scim.get(&format!("/Schemas/{METADATA}")).await;
    assert_eq!(metadata.status, 200, "{}", metadata.text);
    let rt = scim.get("/ResourceTypes/User").await;
    let exts: Vec<&str> = rt.json["schemaExtensions"]
        .as_array()
        .expect("extensions")
        .iter()
        .filter_map(|e| e["schema"].as_str())
        .collect();
    assert!(
        exts.contains(&FOLDERS) && exts.contains(&METADATA),
        "{exts:?}"
    );
}

#[tokio::test]
async fn user_type_must_be_exactly_premium_or_standard_and_defaults_when_absent() {
    let stack = start().await;
    let (scim, legacy) = product_clients(&stack);
    let before = legacy_user_count(&legacy).await;
    for (i, bad) in ["premium", "Gold", "STANDARD", "Standard Plus"]
        .into_iter()
        .enumerate()
    {
        let body = toolkit_user(
            &format!("bad{i}@contoso.com"),
            &format!("bad{i}"),
            &[("userType", json!(bad))],
        );
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(r.json["scimType"], "invalidValue", "{bad}");
        assert!(detail(&r).contains(&format!("'{bad}'")), "{}", r.text);
    }
    assert_eq!(legacy_user_count(&legacy).await, before, "nothing created");

    // No userType, null and empty all get the profile's default; both valid values are kept.
    for (i, (sent, stored)) in [
        (Value::Null, "Standard"),
        (json!(""), "Standard"),
        (json!("Premium"), "Premium"),
        (json!(" Standard "), "Standard"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = toolkit_user(&format!("ok{i}@contoso.com"), &format!("ok{i}"), &[]);
        if !sent.is_null() {
            set_path(&mut body, "userType", sent.clone());
        }
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 201, "{sent}: {}", r.text);
        assert_eq!(r.json["userType"], stored, "{sent}");
        let id = r.json["id"].as_str().expect("id");
        let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
        assert_eq!(rec["user_type"], stored, "{sent}");
    }
    // An explicit null in a POST is "unassigned" as well.
    let mut body = toolkit_user("null@contoso.com", "null", &[]);
    body["userType"] = Value::Null;
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["userType"], "Standard");
}

/// Entra assigns users without an app role the default-access role `msiam_access`: the user
/// is provisioned with app-only access (the vendor's rule for users without a role), and
/// with a real role beside it, that role wins.
#[tokio::test]
async fn default_access_role_gives_app_only_access() {
    let stack = start().await;
    let (scim, legacy) = product_clients(&stack);
    for (i, (roles, want)) in [
        (
            json!([{"primary": true, "value": "msiam_access"}]),
            Value::Null,
        ),
        (
            json!([{"value": "msiam_access"}, {"primary": true, "value": "Admin"}]),
            json!("Admin"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let body = toolkit_user(
            &format!("role{i}@contoso.com"),
            &format!("role{i}"),
            &[("roles", roles.clone())],
        );
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 201, "{roles}: {}", r.text);
        let id = r.json["id"].as_str().expect("id");
        let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
        assert_eq!(rec["role"], want, "{roles}");
    }
    stack.gateway.shutdown().await;
}

#[tokio::test]
async fn required_attributes_and_the_e_mail_as_user_name() {
    let stack = start().await;
    let (scim, legacy) = product_clients(&stack);
    let before = legacy_user_count(&legacy).await;
    for missing in ["name.givenName", "name.familyName", "emails", "userName"] {
        let mut body = toolkit_user("req@contoso.com", "req", &[]);
        set_path(&mut body, missing, Value::Null);
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 400, "{missing}: {}", r.text);
        assert_eq!(r.json["scimType"], "invalidValue", "{missing}");
        assert!(
            detail(&r).contains(&format!("'{missing}")),
            "{missing}: {}",
            r.text
        );
    }
    // userName must be the e-mail, since the e-mail is the app's user name.
    let body = toolkit_user("adele@contoso.com", "a", &[("userName", json!("adele"))]);
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(detail(&r).contains("adele@contoso.com"), "{}", r.text);
    assert_eq!(legacy_user_count(&legacy).await, before);

    let r = scim
        .post("/Users", &toolkit_user("Adele@Contoso.com", "a", &[]))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rec = legacy
        .get(&format!(
            "/api/v1/users/{}",
            r.json["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(rec["username"], "Adele@Contoso.com");
    assert_eq!(rec["email"], "Adele@Contoso.com");
    // The e-mail is unique per user, ignoring case.
    let r = scim
        .post("/Users", &toolkit_user("adele@contoso.COM", "b", &[]))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["scimType"], "uniqueness");
    assert_eq!(legacy_user_count(&legacy).await, before + 1);
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
    let (scim, legacy) = product_clients(stack);
    test_connection(&scim).await;
    let probe = uuid::Uuid::new_v4().to_string();
    let email = format!("adele.{tag}.{}@contoso.com", &probe[..8]);
    let external_id = format!("ext-{tag}-{}", &probe[..8]);
    let folders = folders(&legacy).await;
    let (client_files, hr) = (&folders[0], &folders[1]);
    let user_path = |id: &str| format!("/Users/{id}");

    // An unknown folder: 400 naming it, and nothing reaches the app.
    let before = legacy_user_count(&legacy).await;
    let body = toolkit_user(
        &email,
        &external_id,
        &[(FOLDERS, json!({"folders": ["hr", "Folder 9"]}))],
    );
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert!(detail(&r).contains("'Folder 9'"), "{}", r.text);
    assert_eq!(legacy_user_count(&legacy).await, before);

    // Create: no userType (the default applies), an app role, folders as one comma-separated
    // string with spaces (one by GUID in upper case, one by external id), metadata of
    // several types.
    let body = toolkit_user(
        &email,
        &external_id,
        &[
            ("schemas", json!([CORE_USER, FOLDERS, METADATA])),
            (
                "roles",
                json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]),
            ),
            (
                FOLDERS,
                json!({"folders": format!("  {} , {} ", client_files.0.to_uppercase(), hr.1)}),
            ),
            (
                METADATA,
                json!({"costCenter": "CC-1001", "level": 5, "vip": true, "ratio": 2.5}),
            ),
        ],
    );
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(r.json["userType"], "Standard");
    assert_eq!(
        r.json["roles"],
        json!([{"value": "Admin", "primary": true}])
    );
    assert_eq!(
        r.json[FOLDERS]["folders"],
        json!([client_files.0, hr.0]),
        "{}",
        r.text
    );
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["username"], email.as_str());
    assert_eq!(rec["email"], email.as_str());
    assert_eq!(rec["first_name"], "Adele");
    assert_eq!(rec["last_name"], "Vance");
    assert_eq!(rec["user_type"], "Standard", "the profile's default");
    assert_eq!(rec["role"], "Admin", "web access with the Admin role");
    assert_eq!(rec["folders"], json!([client_files.0, hr.0]));
    assert_eq!(
        rec["metadata"],
        json!({"costCenter": "CC-1001", "level": "5", "vip": "true", "ratio": "2.5"}),
        "values stored as strings"
    );
    assert_eq!(rec["status"], "active");
    assert_eq!(rec["external_id"], external_id.as_str());

    // Entra finds the user by userName (any case) and externalId.
    for filter in [
        format!("userName eq \"{email}\""),
        format!("userName eq \"{}\"", email.to_uppercase()),
        format!("externalId eq \"{external_id}\""),
    ] {
        let r = scim
            .get(&format!("/Users?filter={}", common::enc(&filter)))
            .await;
        assert_eq!(r.json["totalResults"], 1, "{filter}: {}", r.text);
        assert_eq!(r.json["Resources"][0]["id"], id.as_str());
    }

    // Metadata: one key by path (a number, stored as text), one path-less (a boolean), and
    // the other keys stay as they were.
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("replace"), "path": format!("{METADATA}:level"), "value": 6}),
                json!({"op": d.op("add"), "value": {format!("{METADATA}:remote"): false}}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(
        rec["metadata"],
        json!({"costCenter": "CC-1001", "level": "6", "vip": "true", "ratio": "2.5", "remote": "false"})
    );
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("remove"), "path": format!("{METADATA}:ratio")}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(
        rec["metadata"],
        json!({"costCenter": "CC-1001", "level": "6", "vip": "true", "remote": "false"})
    );
    assert_eq!(rec["folders"], json!([client_files.0, hr.0]), "untouched");
    assert_eq!(rec["role"], "Admin", "untouched");

    // Folders by PATCH: Split()'s array with spaces, by external id; an unknown one is a 400
    // and the folders stay.
    let folders_path = format!("{FOLDERS}:folders");
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("replace"), "path": folders_path, "value": [" client-files "]}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["folders"],
        json!([client_files.0])
    );
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("replace"), "path": folders_path, "value": "hr, nope"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(detail(&r).contains("'nope'"), "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["folders"],
        json!([client_files.0])
    );

    // userType: Premium is taken; a wrong case or another value is a 400 naming it, and the
    // stored type stays.
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "userType", "value": "Premium"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["user_type"],
        "Premium"
    );
    for bad in ["premium", "Gold"] {
        let r = scim
            .patch(
                &user_path(&id),
                &patch(vec![
                    json!({"op": d.op("replace"), "value": {"userType": bad}}),
                ]),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(detail(&r).contains(&format!("'{bad}'")), "{}", r.text);
    }
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["user_type"],
        "Premium"
    );

    // Roles: Entra's SingleAppRoleAssignment path changes the role; an unknown role means
    // app-only access;
    // removing the role leaves app-only access (the app's role is null).
    let role_path = "roles[primary eq \"True\"].value";
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("add"), "path": role_path, "value": "ReadOnly"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["role"],
        "ReadOnly"
    );
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("replace"), "path": role_path, "value": "Owner"}),
            ]),
        )
        .await;
    // A role the product does not have (Entra's default-access msiam_access, or any other)
    // is ignored: app-only access, as for a user without a role; the user is not refused.
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["role"],
        Value::Null,
        "an unknown role gives app-only access"
    );
    let remove_role = match d {
        Dialect::Legacy => {
            json!({"op": "Remove", "path": "roles", "value": [{"value": "ReadOnly"}]})
        }
        Dialect::Compliant => json!({"op": "remove", "path": role_path}),
    };
    let r = scim.patch(&user_path(&id), &patch(vec![remove_role])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json.get("roles").is_none(), "{}", r.text);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["role"], Value::Null, "app-only access");
    // Back to web access, the way Entra's AppRoleAssignmentsComplex PATCH sends it.
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![json!({"op": d.op("add"), "path": "roles", "value": [
                {"value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"EnterpriseAdmin\",\"displayName\":\"EnterpriseAdmin\"}"}
            ]})]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["role"],
        "EnterpriseAdmin"
    );

    // Deactivation (Entra's own body for this dialect) deactivates the user and keeps its
    // data; reactivation restores access.
    let r = scim.patch(&user_path(&id), &d.disable_user()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    let rec = legacy.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(rec["status"], "inactive");
    assert_eq!(rec["role"], "EnterpriseAdmin");
    assert_eq!(rec["user_type"], "Premium");
    assert_eq!(rec["folders"], json!([client_files.0]));
    assert_eq!(rec["metadata"]["costCenter"], "CC-1001");
    let r = scim
        .patch(
            &user_path(&id),
            &patch(vec![
                json!({"op": d.op("replace"), "path": "active", "value": d.boolean(true)}),
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        legacy.get(&format!("/api/v1/users/{id}")).await["status"],
        "active"
    );

    // Groups: "Sales and Marketing" with its members, as the vendor's example.
    let email2 = format!("megan.{tag}.{}@contoso.com", &probe[..8]);
    let r = scim
        .post(
            "/Users",
            &toolkit_user(&email2, &format!("{external_id}-2"), &[]),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id2 = r.json["id"].as_str().expect("id").to_string();
    let group = format!("Sales and Marketing {tag} {}", &probe[..8]);
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
    let (scim, _) = product_clients(&stack);
    let body = toolkit_user("replay@contoso.com", "ext-replay", &[]);
    common::entra::delete_replay(&scim, &body, 201).await;
    stack.gateway.shutdown().await;
}
