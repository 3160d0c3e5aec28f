//! What Microsoft Entra ID sends, for the lifecycle tests of every profile: its two PATCH
//! dialects, its request bodies (the fixtures in `tests/fixtures/entra/`, verbatim from
//! Microsoft's documentation) and its Test Connection probe.

use super::{Legacy, Scim, enc};
use scimgate::app::DemoStack;
use serde_json::{Value, json};
use std::path::Path;

/// The two PATCH dialects Entra speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dialect {
    /// Entra's default today: `"op":"Replace"`, `"value":"False"`, member removal by value array.
    Legacy,
    /// With `aadOptscim062020`: lower-case ops, real booleans, removal by value filter.
    Compliant,
}

impl Dialect {
    /// An op name as this dialect spells it (`Replace` / `replace`).
    pub fn op(self, op: &str) -> String {
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

    /// A boolean value as this dialect sends it (`"False"` / `false`).
    pub fn boolean(self, b: bool) -> Value {
        match (self, b) {
            (Dialect::Legacy, true) => json!("True"),
            (Dialect::Legacy, false) => json!("False"),
            (Dialect::Compliant, b) => json!(b),
        }
    }

    fn fixture_suffix(self) -> &'static str {
        match self {
            Dialect::Legacy => "legacy",
            Dialect::Compliant => "flag",
        }
    }

    /// Entra's "disable user" PATCH body in this dialect (fixture `known-issues-disable-user-*`).
    pub fn disable_user(self) -> Value {
        fixture(&format!(
            "known-issues-disable-user-{}",
            self.fixture_suffix()
        ))
    }

    /// Entra's "remove member" PATCH body in this dialect for member `id` (fixture
    /// `known-issues-remove-member-*`: a value array, or a `members[value eq …]` filter).
    pub fn remove_member(self, id: &str) -> Value {
        let mut body = fixture(&format!(
            "known-issues-remove-member-{}",
            self.fixture_suffix()
        ));
        let op = &mut body["Operations"][0];
        match self {
            Dialect::Legacy => op["value"] = json!([{ "value": id }]),
            Dialect::Compliant => op["path"] = json!(format!("members[value eq \"{id}\"]")),
        }
        body
    }

    /// Entra's "add members" PATCH body (fixture `develop-add-members`) for `ids`.
    pub fn add_members(self, ids: &[&str]) -> Value {
        let mut body = fixture("develop-add-members");
        let op = &mut body["Operations"][0];
        op["op"] = json!(self.op("add"));
        op["value"] = ids
            .iter()
            .map(|id| json!({"$ref": null, "value": id}))
            .collect();
        body
    }
}

/// Both dialects, for tests that run the lifecycle twice.
pub const DIALECTS: [Dialect; 2] = [Dialect::Legacy, Dialect::Compliant];

/// A PatchOp body with `ops`.
pub fn patch(ops: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// A request body from `tests/fixtures/entra/<name>.json`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/entra")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Entra's POST /Users body (fixture `develop-create-user`) with `fields` set over it
/// (`Value::Null` removes a field; `name.givenName` style keys set a sub-attribute).
pub fn create_user(fields: &[(&str, Value)]) -> Value {
    let mut body = fixture("develop-create-user");
    for (k, v) in fields {
        set_path(&mut body, k, v.clone());
    }
    body
}

/// Sets (or with `Value::Null` removes) `key`, one level of `a.b` nesting allowed.
pub fn set_path(body: &mut Value, key: &str, v: Value) {
    let (obj, leaf) = match key.split_once('.') {
        Some((parent, leaf)) => (&mut body[parent], leaf),
        None => (body, key),
    };
    let Some(map) = obj.as_object_mut() else {
        panic!("{key}: parent is not an object");
    };
    if v.is_null() {
        map.remove(leaf);
    } else {
        map.insert(leaf.to_string(), v);
    }
}

/// A SCIM client with the stack's token and a client of its legacy app's own API.
pub fn clients(stack: &DemoStack) -> (Scim, Legacy) {
    (
        Scim::new(&stack.scim_url, &stack.token),
        Legacy::with_header(
            &stack.legacy_url,
            &stack.legacy_auth.0,
            &stack.legacy_auth.1,
        ),
    )
}

/// Entra's Test Connection: `GET /Users?filter=userName eq "<random guid>"` without an
/// Accept header must answer 200 with an empty ListResponse.
pub async fn test_connection(scim: &Scim) {
    let probe = uuid::Uuid::new_v4().to_string();
    let url = format!(
        "{}/Users?filter={}",
        scim.base,
        enc(&format!("userName eq \"{probe}\""))
    );
    let r = scim
        .http
        .raw("GET", &url, &[("authorization", &scim.auth)], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);
    assert_eq!(r.json["Resources"], json!([]));
    assert_eq!(
        r.json["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
}

/// Entra's delete and what it does next: POST `user` → 201; DELETE → 204; then, as RFC 7644
/// §3.6 requires whatever the app keeps, GET → 404, a second DELETE → 404, a PATCH → 404 and
/// `filter userName eq` → no result; finally a re-POST of the same body answers `repost`
/// (201 where the app really deleted the user; a profile that keeps deleted accounts
/// answers 409). Returns the deleted id.
pub async fn delete_replay(scim: &Scim, user: &Value, repost: u16) -> String {
    let r = scim.post("/Users", user).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    let path = format!("/Users/{id}");
    let r = scim.delete(&path).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(scim.get(&path).await.status, 404, "GET after DELETE");
    assert_eq!(scim.delete(&path).await.status, 404, "a second DELETE");
    let r = scim
        .patch(
            &path,
            &patch(vec![
                json!({"op": "replace", "path": "displayName", "value": "x"}),
            ]),
        )
        .await;
    assert_eq!(r.status, 404, "PATCH after DELETE: {}", r.text);
    let name = user["userName"].as_str().expect("userName");
    let r = scim
        .get(&format!(
            "/Users?filter={}",
            enc(&format!("userName eq \"{name}\""))
        ))
        .await;
    assert_eq!(
        (r.status, r.json["totalResults"].clone()),
        (200, json!(0)),
        "{}",
        r.text
    );
    let r = scim.post("/Users", user).await;
    assert_eq!(r.status, repost, "re-POST after DELETE: {}", r.text);
    id
}

/// How many users the legacy app holds.
pub async fn legacy_user_count(legacy: &Legacy) -> u64 {
    legacy.get("/api/v1/users?per_page=1").await["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("legacy user list without total"))
}

/// Entra's group steps against a profile whose groups are the app's teams: create the group
/// (Microsoft's schema URN), add both users in one operation, remove the first in the
/// dialect's form, then delete the group and both users; the app's teams and members are
/// checked after each step.
pub async fn team_lifecycle(
    scim: &Scim,
    legacy: &Legacy,
    d: Dialect,
    group: &str,
    external_id: &str,
    (id, id2): (&str, &str),
) {
    let r = scim
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": external_id,
                "displayName": group,
                "meta": {"resourceType": "Group"}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.json["id"].as_str().expect("gid").to_string();
    let r = scim
        .patch(&format!("/Groups/{gid}"), &d.add_members(&[id, id2]))
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let team = legacy.get(&format!("/api/v1/teams/{gid}")).await;
    assert_eq!(team["name"], group);
    let members = legacy.get(&format!("/api/v1/teams/{gid}/members")).await;
    assert_eq!(members["total"], 2, "{members}");
    let r = scim
        .patch(&format!("/Groups/{gid}"), &d.remove_member(id))
        .await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let members = legacy.get(&format!("/api/v1/teams/{gid}/members")).await;
    assert_eq!(members["total"], 1, "{members}");
    assert_eq!(members["data"][0]["user_id"].to_string(), id2);

    // Deletes reach the app.
    for path in [
        format!("/Groups/{gid}"),
        format!("/Users/{id}"),
        format!("/Users/{id2}"),
    ] {
        let r = scim.delete(&path).await;
        assert_eq!(r.status, 204, "{path}: {}", r.text);
    }
    assert_eq!(
        legacy
            .call("GET", &format!("/api/v1/users/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        legacy
            .call("GET", &format!("/api/v1/teams/{gid}"), None)
            .await
            .status,
        404
    );
}
