use super::*;
use crate::scim::error::ScimType;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, SchemaRegistry, USER_SCHEMA};
use proptest::prelude::*;
use serde_json::json;

/// A request body from `tests/fixtures/entra/`, verbatim from Microsoft's documentation.
macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!(
            "../../../tests/fixtures/entra/",
            $name,
            ".json"
        )))
        .unwrap()
    };
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

/// The user Entra created with its POST /Users sample, as stored.
fn user() -> Value {
    let mut u = fixture!("develop-create-user");
    u["id"] = json!("48af03ac28ad4fb88478");
    u
}

fn group(members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": "927fa2c08dcb4a7fae9e",
        "displayName": "displayName",
        "members": members,
    })
}

fn patch_as(reg: &SchemaRegistry, rt: &str, resource: &Value, body: &Value) -> ScimResult<Value> {
    let ctx = SchemaContext::new(reg, rt).unwrap();
    let req = parse_patch(body, &ctx)?;
    let mut r = resource.clone();
    apply_patch(&mut r, &req, &ctx)?;
    Ok(r)
}

fn patch_user(resource: &Value, body: &Value) -> ScimResult<Value> {
    patch_as(&SchemaRegistry::core(), "User", resource, body)
}

fn patch_group(resource: &Value, body: &Value) -> ScimResult<Value> {
    patch_as(&SchemaRegistry::core(), "Group", resource, body)
}

fn parse_user(body: &Value) -> ScimResult<PatchRequest> {
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "User").unwrap();
    parse_patch(body, &ctx)
}

fn split(body: &Value) -> ScimResult<(PatchRequest, MemberDelta)> {
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "Group").unwrap();
    split_members(parse_patch(body, &ctx)?, &ctx)
}

#[track_caller]
fn assert_scim_err<T: fmt::Debug>(r: ScimResult<T>, t: ScimType) -> ScimError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.status, 400, "{e}");
    assert_eq!(e.scim_type, Some(t), "{e}");
    e
}

fn paths(req: &PatchRequest) -> Vec<String> {
    req.ops
        .iter()
        .map(|o| o.path.as_ref().map(|p| p.to_string()).unwrap_or_default())
        .collect()
}

fn member_ids(resource: &Value) -> Vec<String> {
    resource["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn m(id: &str) -> Member {
    Member {
        value: id.into(),
        display: None,
        kind: None,
    }
}

// ---- Microsoft's samples: users --------------------------------------------------------

#[test]
fn ms_disable_user_in_both_dialects() {
    for b in [
        fixture!("known-issues-disable-user-legacy"),
        fixture!("known-issues-disable-user-flag"),
        fixture!("develop-disable-user"),
    ] {
        let req = parse_user(&b).unwrap();
        assert_eq!(req.ops.len(), 1);
        assert_eq!(req.ops[0].op, PatchOpKind::Replace);
        assert_eq!(req.ops[0].value, Some(json!(false)));
        let u = patch_user(&user(), &b).unwrap();
        assert_eq!(u["active"], json!(false));
    }
    // the two dialects normalise to the same request
    assert_eq!(
        parse_user(&fixture!("known-issues-disable-user-legacy")).unwrap(),
        parse_user(&fixture!("known-issues-disable-user-flag")).unwrap()
    );
}

#[test]
fn ms_add_single_value_in_both_dialects() {
    let legacy = fixture!("known-issues-add-attribute-legacy");
    let flag = fixture!("known-issues-add-attribute-flag");
    assert_eq!(parse_user(&legacy).unwrap(), parse_user(&flag).unwrap());
    for b in [legacy, flag] {
        assert_eq!(patch_user(&user(), &b).unwrap()["nickName"], "Babs");
    }
}

#[test]
fn ms_replace_multiple_attributes_legacy() {
    let b = fixture!("known-issues-replace-multiple-legacy");
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(u["displayName"], "Pvlo");
    assert_eq!(
        u["emails"],
        json!([{"primary": true, "type": "work", "value": "TestBcwqnm@test.microsoft.com"}])
    );
    assert_eq!(u["name"]["givenName"], "Gtfd");
    assert_eq!(u["name"]["familyName"], "Pkqf");
    assert_eq!(u["name"]["formatted"], "givenName familyName");
    assert_eq!(u["externalId"], "Eqpj");
    assert_eq!(u[ENTERPRISE_USER_SCHEMA], json!({"employeeNumber": "Eqpj"}));
    let schemas = u["schemas"].as_array().unwrap();
    assert_eq!(
        schemas
            .iter()
            .filter(|s| *s == ENTERPRISE_USER_SCHEMA)
            .count(),
        1
    );
}

#[test]
fn ms_replace_multiple_attributes_flag_pathless_dotted_and_urn_keys() {
    let b = fixture!("known-issues-replace-multiple-flag");
    let req = parse_user(&b).unwrap();
    let mut p = paths(&req);
    p.sort();
    assert_eq!(
        p,
        vec![
            "displayName".to_string(),
            "emails[type eq \"work\"].value".into(),
            "name.familyName".into(),
            "name.givenName".into(),
            format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber"),
        ]
    );
    assert!(req.ops.iter().all(|o| o.op == PatchOpKind::Replace));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(u["displayName"], "Bjfe");
    assert_eq!(u["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    assert_eq!(u["name"]["givenName"], "Kkom");
    assert_eq!(u["name"]["familyName"], "Unua");
    assert_eq!(u[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "Aklq");
}

#[test]
fn ms_update_user_multi_and_single_valued() {
    let u = patch_user(&user(), &fixture!("develop-update-user-multi-valued")).unwrap();
    assert_eq!(
        u["emails"],
        json!([{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}])
    );
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(u["name"]["givenName"], "givenName");
    let u = patch_user(&user(), &fixture!("develop-update-user-single-valued")).unwrap();
    assert_eq!(
        u["userName"],
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    );
}

#[test]
fn ms_manager_sent_as_one_element_array() {
    let mut core_only = user();
    core_only["schemas"] = json!([USER_SCHEMA]);
    let b = fixture!("develop-update-manager");
    let req = parse_user(&b).unwrap();
    assert_eq!(
        paths(&req),
        vec![format!("{ENTERPRISE_USER_SCHEMA}:manager")]
    );
    let u = patch_user(&core_only, &b).unwrap();
    assert_eq!(
        u[ENTERPRISE_USER_SCHEMA]["manager"],
        json!({
            "$ref": "http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
            "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
        })
    );
    assert_eq!(u["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
}

#[test]
fn bare_string_manager_and_extension_object_keys() {
    let b = body(json!([
        {"op": "Replace", "path": format!("{ENTERPRISE_USER_SCHEMA}:manager"), "value": "m-1"}
    ]));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(
        u[ENTERPRISE_USER_SCHEMA]["manager"],
        json!({"value": "m-1"})
    );
    let b = body(json!([{"op": "add", "value": {
        ENTERPRISE_USER_SCHEMA: {"manager": "m-2", "Department": "Sales"}
    }}]));
    let req = parse_user(&b).unwrap();
    let mut p = paths(&req);
    p.sort();
    assert_eq!(
        p,
        vec![
            format!("{ENTERPRISE_USER_SCHEMA}:department"),
            format!("{ENTERPRISE_USER_SCHEMA}:manager"),
        ]
    );
    let u = patch_user(&u, &b).unwrap();
    assert_eq!(
        u[ENTERPRISE_USER_SCHEMA],
        json!({"manager": {"value": "m-2"}, "department": "Sales"})
    );
}

#[test]
fn pathless_value_ignores_echoed_keys_and_takes_every_key_form() {
    let b = body(json!([{"op": "Replace", "value": {
        "schemas": ["x"],
        "id": "other-id",
        "meta": {"resourceType": "User"},
        "urn:ietf:params:scim:schemas:core:2.0:User:userName": "qualified",
        "name.middleName": "Q",
        "emails[type eq \"home\"].value": "home@example.com",
        "active": "True",
        "title": "Boss"
    }}]));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(u["id"], "48af03ac28ad4fb88478");
    assert_eq!(u["meta"], json!({"resourceType": "User"}));
    assert_eq!(u["userName"], "qualified");
    assert_eq!(u["name"]["middleName"], "Q");
    assert_eq!(u["name"]["givenName"], "givenName");
    assert_eq!(u["active"], json!(true));
    assert_eq!(u["title"], "Boss");
    let emails = u["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(
        emails[1],
        json!({"type": "home", "value": "home@example.com"})
    );
}

#[test]
fn op_names_in_any_case() {
    let b = body(json!([
        {"op": "Replace", "path": "title", "value": "a"},
        {"op": "ADD", "path": "nickName", "value": "b"},
        {"op": "remove", "path": "locale"},
        {"op": " rEpLaCe ", "path": "title", "value": "c"}
    ]));
    let kinds: Vec<_> = parse_user(&b).unwrap().ops.iter().map(|o| o.op).collect();
    use PatchOpKind::*;
    assert_eq!(kinds, vec![Replace, Add, Remove, Replace]);
}

// ---- Microsoft's samples: groups -------------------------------------------------------

#[test]
fn ms_group_rename() {
    let g = patch_group(&group(&["a"]), &fixture!("develop-update-group-name")).unwrap();
    assert_eq!(
        g["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    assert_eq!(member_ids(&g), vec!["a"]);
}

#[test]
fn ms_group_add_members_drops_null_ref() {
    let g = patch_group(&group(&["a"]), &fixture!("develop-add-members")).unwrap();
    assert_eq!(
        g["members"],
        json!([{"value": "a"}, {"value": "f648f8d5ea4e4cd38e9c"}])
    );
    // adding the same member again changes nothing
    let again = patch_group(&g, &fixture!("develop-add-members")).unwrap();
    assert_eq!(again, g);
}

#[test]
fn group_add_two_members_in_one_op() {
    let b = body(json!([{"op": "Add", "path": "members", "value": [
        {"$ref": null, "value": "m1", "display": "One"},
        {"$ref": null, "value": "m2", "type": "User"}
    ]}]));
    let g = patch_group(&group(&["a", "m1"]), &b).unwrap();
    assert_eq!(
        g["members"],
        json!([
            {"value": "a"},
            {"value": "m1", "display": "One"},
            {"value": "m2", "type": "User"}
        ])
    );
}

#[test]
fn ms_group_remove_member_in_both_dialects() {
    let id = "7f4bc1a3-285e-48ae-8202-5accb43efb0e";
    let g = patch_group(
        &group(&["a", id, "b"]),
        &fixture!("known-issues-remove-member-flag"),
    )
    .unwrap();
    assert_eq!(member_ids(&g), vec!["a", "b"]);
    let g = patch_group(
        &group(&["a", "u1091", "b"]),
        &fixture!("known-issues-remove-member-legacy"),
    )
    .unwrap();
    assert_eq!(member_ids(&g), vec!["a", "b"]);
    let g = patch_group(
        &group(&["f648f8d5ea4e4cd38e9c"]),
        &fixture!("develop-remove-members"),
    )
    .unwrap();
    assert!(g.get("members").is_none(), "an emptied array disappears");
    // the legacy value-array form becomes the flag's filter form
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "Group").unwrap();
    let req = parse_patch(&fixture!("known-issues-remove-member-legacy"), &ctx).unwrap();
    assert_eq!(paths(&req), vec!["members[value eq \"u1091\"]"]);
    assert_eq!(req.ops[0].value, None);
}

#[test]
fn group_replace_members() {
    let b = body(json!([{"op": "Replace", "path": "members", "value": [
        {"value": "x"}, {"value": "y"}
    ]}]));
    let g = patch_group(&group(&["a", "b"]), &b).unwrap();
    assert_eq!(member_ids(&g), vec!["x", "y"]);
    let b = body(json!([{"op": "replace", "path": "members", "value": []}]));
    let g = patch_group(&group(&["a"]), &b).unwrap();
    assert!(g.get("members").is_none());
}

// ---- RFC 7644 §3.5.2 semantics ---------------------------------------------------------

#[test]
fn filtered_replace_without_match_adds_seeded_element() {
    let mut u = user();
    u["emails"] = json!([{"type": "home", "value": "h@example.com"}]);
    let b = body(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "w@example.com"},
        {"op": "replace", "path": "addresses[type eq \"work\" and primary eq true]",
         "value": {"locality": "Oslo"}}
    ]));
    let u = patch_user(&u, &b).unwrap();
    assert_eq!(
        u["emails"],
        json!([
            {"type": "home", "value": "h@example.com"},
            {"type": "work", "value": "w@example.com"}
        ])
    );
    assert_eq!(
        u["addresses"],
        json!([{"type": "work", "primary": true, "locality": "Oslo"}])
    );
}

#[test]
fn filtered_write_that_cannot_describe_a_new_element_is_no_target() {
    let b = body(json!([
        {"op": "replace", "path": "emails[type ne \"work\"].value", "value": "x@example.com"}
    ]));
    assert_scim_err(patch_user(&user(), &b), ScimType::NoTarget);
}

#[test]
fn filtered_writes_touch_only_matching_elements() {
    let mut u = user();
    u["emails"] = json!([
        {"type": "work", "value": "w@example.com", "primary": true},
        {"type": "home", "value": "h@example.com"}
    ]);
    let b = body(json!([
        {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h2@example.com"},
        {"op": "replace", "path": "emails[type eq \"home\"]",
         "value": {"type": "home", "value": "h3@example.com", "display": "Home"}}
    ]));
    let out = patch_user(&u, &b).unwrap();
    assert_eq!(out["emails"][0], u["emails"][0]);
    assert_eq!(
        out["emails"][1],
        json!({"type": "home", "value": "h3@example.com", "display": "Home"})
    );
    let b = body(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]));
    let out = patch_user(&u, &b).unwrap();
    assert_eq!(out["emails"], json!([u["emails"][0]]));
    let b = body(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
    let out = patch_user(&u, &b).unwrap();
    assert_eq!(
        out["emails"][0],
        json!({"type": "work", "value": "w@example.com"})
    );
}

#[test]
fn add_to_multi_valued_appends_and_merges_by_value() {
    let b = body(json!([{"op": "add", "path": "emails", "value": [
        {"value": "TEST_USER_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com", "display": "Me"},
        {"value": "second@example.com", "type": "other"},
        {"value": "second@example.com", "type": "home"}
    ]}]));
    let u = patch_user(&user(), &b).unwrap();
    let emails = u["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert_eq!(emails[0]["display"], "Me");
    assert_eq!(emails[0]["primary"], true);
    assert_eq!(
        emails[1],
        json!({"value": "second@example.com", "type": "home"})
    );
    // a single element is accepted for a multi-valued attribute
    let b = body(json!([{"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555"}}]));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(u["phoneNumbers"], json!([{"value": "+1 555"}]));
}

#[test]
fn many_added_elements_deduplicate_through_the_index() {
    let mut g = group(&[]);
    g["members"] = json!(
        (0..20)
            .map(|i| json!({"value": format!("m{i}")}))
            .collect::<Vec<_>>()
    );
    let value: Vec<Value> = (10..30)
        .map(|i| json!({"value": format!("M{i}")}))
        .collect();
    let b = body(json!([{"op": "add", "path": "members", "value": value}]));
    let out = patch_group(&g, &b).unwrap();
    assert_eq!(member_ids(&out).len(), 30);
    assert_eq!(member_ids(&out)[..20], member_ids(&g)[..]);
}

#[test]
fn add_and_replace_on_complex_merge_sub_attributes() {
    let b = body(json!([{"op": "add", "path": "name", "value": {"middleName": "Q"}}]));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(u["name"]["middleName"], "Q");
    assert_eq!(u["name"]["givenName"], "givenName");
    let b = body(json!([{"op": "replace", "path": "name", "value": {"givenName": "G"}}]));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(u["name"]["givenName"], "G");
    assert_eq!(u["name"]["familyName"], "familyName");
}

#[test]
fn replace_multi_valued_without_filter_replaces_the_array() {
    let b = body(json!([{"op": "replace", "path": "emails", "value": [
        {"value": "only@example.com", "type": "home"}
    ]}]));
    let u = patch_user(&user(), &b).unwrap();
    assert_eq!(
        u["emails"],
        json!([{"value": "only@example.com", "type": "home"}])
    );
}

#[test]
fn primary_true_moves_to_the_element_just_written() {
    let b = body(json!([{"op": "add", "path": "emails", "value": [
        {"value": "h@example.com", "type": "home", "primary": true}
    ]}]));
    let u = patch_user(&user(), &b).unwrap();
    assert!(u["emails"][0].get("primary").is_none());
    assert_eq!(u["emails"][1]["primary"], true);
    let b = body(json!([
        {"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "True"}
    ]));
    let u = patch_user(&u, &b).unwrap();
    assert_eq!(u["emails"][0]["primary"], true);
    assert!(u["emails"][1].get("primary").is_none());
}

#[test]
fn remove_matching_nothing_succeeds_unchanged() {
    let u = user();
    let b = body(json!([
        {"op": "remove", "path": "emails[type eq \"pager\"]"},
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "name.middleName"},
        {"op": "remove", "path": format!("{ENTERPRISE_USER_SCHEMA}:manager")},
        {"op": "Remove", "path": "emails", "value": [{"value": "nobody@example.com"}]}
    ]));
    assert_eq!(patch_user(&u, &b).unwrap(), u);
    let g = group(&["a"]);
    assert_eq!(
        patch_group(&g, &fixture!("known-issues-remove-member-legacy")).unwrap(),
        g
    );
}

#[test]
fn null_value_clears_and_null_add_to_multi_valued_is_nothing() {
    let mut u = user();
    u["title"] = json!("Boss");
    let b = body(json!([
        {"op": "replace", "path": "title", "value": null},
        {"op": "add", "path": "emails", "value": null},
        {"op": "replace", "path": "name.formatted", "value": null}
    ]));
    let out = patch_user(&u, &b).unwrap();
    assert!(out.get("title").is_none());
    assert_eq!(out["emails"], u["emails"]);
    assert!(out["name"].get("formatted").is_none());
}

#[test]
fn keys_are_written_in_canonical_spelling() {
    let u = json!({
        "schemas": [USER_SCHEMA],
        "USERNAME": "old",
        "Name": {"GIVENNAME": "g"},
        "Emails": [{"TYPE": "work", "VALUE": "w@example.com"}]
    });
    let b = body(json!([
        {"op": "replace", "path": "username", "value": "new"},
        {"op": "replace", "path": "NAME.FAMILYNAME", "value": "f"},
        {"op": "replace", "path": "EMAILS[type eq \"work\"].display", "value": "W"}
    ]));
    let out = patch_user(&u, &b).unwrap();
    assert_eq!(
        out,
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "new",
            "name": {"GIVENNAME": "g", "familyName": "f"},
            "emails": [{"TYPE": "work", "VALUE": "w@example.com", "display": "W"}]
        })
    );
    let req = parse_user(&body(json!([
        {"op": "add", "path": "EMPLOYEENUMBER", "value": "7"}
    ])))
    .unwrap();
    assert_eq!(
        paths(&req),
        vec![format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber")]
    );
}

#[test]
fn emptied_extension_disappears_with_its_urn() {
    let mut u = user();
    u[ENTERPRISE_USER_SCHEMA] = json!({"employeeNumber": "1"});
    let b = body(json!([{"op": "remove", "path": "employeeNumber"}]));
    let out = patch_user(&u, &b).unwrap();
    assert!(out.get(ENTERPRISE_USER_SCHEMA).is_none());
    assert_eq!(out["schemas"], json!([USER_SCHEMA]));
    // an add that leaves the extension empty does not create it
    let mut core_only = user();
    core_only["schemas"] = json!([USER_SCHEMA]);
    let b = body(json!([{"op": "add", "value": {ENTERPRISE_USER_SCHEMA: {}}}]));
    assert_eq!(patch_user(&core_only, &b).unwrap(), core_only);
}

#[test]
fn open_extension_keys_keep_the_type_sent_as_in_a_post() {
    let urn = "urn:ietf:params:scim:schemas:extension:2.0:Metadata";
    let mut reg = SchemaRegistry::core();
    reg.add_extension(
        "User",
        Schema {
            id: urn.into(),
            name: "Metadata".into(),
            description: String::new(),
            attributes: Vec::new(),
            open: true,
        },
        false,
    )
    .unwrap();
    // Entra sends what the integrator typed the attribute as: a number, a boolean, text.
    let b = body(json!([
        {"op": "Replace", "path": format!("{urn}:level"), "value": 5},
        {"op": "Replace", "value": {format!("{urn}:vip"): true}},
        {"op": "add", "path": format!("{urn}:team"), "value": "Blue"}
    ]));
    let u = patch_as(&reg, "User", &user(), &b).unwrap();
    assert_eq!(u[urn], json!({"level": 5, "vip": true, "team": "Blue"}));
    let b = body(json!([{"op": "remove", "path": format!("{urn}:level")}]));
    let u = patch_as(&reg, "User", &u, &b).unwrap();
    assert_eq!(u[urn], json!({"vip": true, "team": "Blue"}));
}

#[test]
fn simple_multi_valued_attributes() {
    let mut reg = SchemaRegistry::core();
    reg.add_extension(
        "User",
        Schema {
            id: "urn:example:scim:schemas:extension:folders:2.0:User".into(),
            name: "Folders".into(),
            description: String::new(),
            attributes: vec![AttributeDef::string("folders").multi()],
            open: false,
        },
        false,
    )
    .unwrap();
    let urn = "urn:example:scim:schemas:extension:folders:2.0:User";
    let b = body(json!([{"op": "add", "path": "folders", "value": ["a", "b", "A"]}]));
    let u = patch_as(&reg, "User", &user(), &b).unwrap();
    assert_eq!(u[urn]["folders"], json!(["a", "b"]));
    let b = body(json!([{"op": "remove", "path": "folders", "value": ["B"]}]));
    let u = patch_as(&reg, "User", &u, &b).unwrap();
    assert_eq!(u[urn]["folders"], json!(["a"]));
    let b = body(json!([{"op": "replace", "path": "folders[value eq \"a\"]", "value": "c"}]));
    let u = patch_as(&reg, "User", &u, &b).unwrap();
    assert_eq!(u[urn]["folders"], json!(["c"]));
}

/// Cases proptest once shrank to, kept as plain tests.
#[test]
fn edge_cases_found_by_proptest() {
    // a replace listing a member twice keeps one
    let b = body(json!([{"op": "replace", "path": "members",
                         "value": [{"value": "b"}, {"value": "b"}]}]));
    assert_eq!(
        member_ids(&patch_group(&group(&[]), &b).unwrap()),
        vec!["b"]
    );
    // a null extension is an absent one
    let u = json!({"schemas": [USER_SCHEMA], ENTERPRISE_USER_SCHEMA: null});
    let b = body(json!([{"op": "add", "path": "manager", "value": "m"}]));
    let out = patch_user(&u, &b).unwrap();
    assert_eq!(
        out[ENTERPRISE_USER_SCHEMA],
        json!({"manager": {"value": "m"}})
    );
    assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
    // `[null]` for a single value is null: it clears
    let b = body(json!([{"op": "add", "path": "title", "value": [null]}]));
    let req = parse_user(&b).unwrap();
    assert_eq!(req.ops[0].op, PatchOpKind::Remove);
    // a stored resource that is not an object is the gateway's fault, not the client's
    let mut not_object = Value::Null;
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "User").unwrap();
    let req = parse_user(&body(json!([{"op": "remove", "path": "title"}]))).unwrap();
    assert_eq!(
        apply_patch(&mut not_object, &req, &ctx).unwrap_err().status,
        500
    );
    assert_eq!(not_object, Value::Null);
}

// ---- errors ----------------------------------------------------------------------------

#[test]
fn malformed_bodies_are_invalid_syntax() {
    let bad = [
        json!([]),
        json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
               "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
        json!({"schemas": [PATCH_OP_SCHEMA]}),
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}),
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": {"op": "add"}}),
        body(json!(["add"])),
        body(json!([{"path": "title", "value": "x"}])),
        body(json!([{"op": 1, "path": "title", "value": "x"}])),
        body(json!([{"op": "merge", "path": "title", "value": "x"}])),
    ];
    for b in bad {
        let e = assert_scim_err(parse_user(&b), ScimType::InvalidSyntax);
        assert!(!e.detail.is_empty());
    }
    let e = assert_scim_err(
        parse_user(&body(json!([{"op": "merge", "path": "title"}]))),
        ScimType::InvalidSyntax,
    );
    assert!(
        e.detail.contains("Operations[0]") && e.detail.contains("merge"),
        "{e}"
    );
    // `operations` in any case, schema URN in any case
    let b = json!({"SCHEMAS": [PATCH_OP_SCHEMA.to_uppercase()],
                   "operations": [{"op": "add", "path": "title", "value": "x"}]});
    assert_eq!(parse_user(&b).unwrap().ops.len(), 1);
}

#[test]
fn bad_paths_are_invalid_path() {
    for (path, needle) in [
        ("bogus", "bogus"),
        ("name.bogus", "name.bogus"),
        ("emails[type eq \"work\"", "emails"),
        ("userName[value eq \"x\"]", "userName"),
        ("emails[tpye eq \"work\"].value", "tpye"),
        ("emails[type eq \"work\"].bogus", "bogus"),
        ("urn:example:unknown:2.0:User:x", "x"),
    ] {
        let b = body(json!([
            {"op": "add", "path": "title", "value": "ok"},
            {"op": "replace", "path": path, "value": "x"}
        ]));
        let e = assert_scim_err(parse_user(&b), ScimType::InvalidPath);
        assert!(e.detail.contains("Operations[1]"), "{e}");
        assert!(e.detail.contains(needle), "{path}: {e}");
    }
    let b = body(json!([{"op": "add", "path": 7, "value": "x"}]));
    assert_scim_err(parse_user(&b), ScimType::InvalidPath);
    let b = body(json!([{"op": "add", "value": {"bogus": 1}}]));
    assert_scim_err(parse_user(&b), ScimType::InvalidPath);
}

#[test]
fn read_only_targets_are_mutability_errors() {
    for path in [
        "id",
        "meta",
        "meta.created",
        "groups",
        "manager.displayName",
    ] {
        let b = body(json!([{"op": "replace", "path": path, "value": "x"}]));
        let e = assert_scim_err(parse_user(&b), ScimType::Mutability);
        assert!(e.detail.contains("readOnly"), "{e}");
        let b = body(json!([{"op": "remove", "path": path}]));
        assert_scim_err(parse_user(&b), ScimType::Mutability);
    }
    let b = body(json!([{"op": "add", "value": {"groups": [{"value": "g"}]}}]));
    assert_scim_err(parse_user(&b), ScimType::Mutability);
}

#[test]
fn missing_values_and_wrong_types_are_invalid_value() {
    for b in [
        body(json!([{"op": "add", "path": "title"}])),
        body(json!([{"op": "Replace", "path": "title"}])),
        body(json!([{"op": "add"}])),
        body(json!([{"op": "replace", "value": "just a string"}])),
        body(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
        body(json!([{"op": "replace", "path": "userName", "value": 12}])),
        body(json!([{"op": "add", "path": "emails", "value": [{"value": "a", "bogus": 1}]}])),
        body(json!([{"op": "add", "path": "name", "value": ["a", "b"]}])),
        body(json!([{"op": "add", "value": {ENTERPRISE_USER_SCHEMA: "x"}}])),
        body(json!([{"op": "remove", "path": "emails", "value": [{"type": "work"}]}])),
        body(json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": [1, 2]}])),
    ] {
        assert_scim_err(parse_user(&b), ScimType::InvalidValue);
    }
}

#[test]
fn remove_without_path_is_no_target() {
    let b = body(json!([{"op": "Remove"}]));
    assert_scim_err(parse_user(&b), ScimType::NoTarget);
    let b = body(json!([{"op": "remove", "path": "", "value": {"title": "x"}}]));
    assert_scim_err(parse_user(&b), ScimType::NoTarget);
}

#[test]
fn required_attributes_cannot_be_removed() {
    for b in [
        body(json!([{"op": "remove", "path": "userName"}])),
        body(json!([{"op": "replace", "path": "userName", "value": null}])),
    ] {
        assert_scim_err(patch_user(&user(), &b), ScimType::Mutability);
    }
    let b = body(json!([{"op": "remove", "path": "displayName"}]));
    assert_scim_err(patch_group(&group(&[]), &b), ScimType::Mutability);
}

#[test]
fn immutable_values_once_set_cannot_change() {
    let mut reg = SchemaRegistry::core();
    let urn = "urn:example:scim:schemas:extension:badge:2.0:User";
    reg.add_extension(
        "User",
        Schema {
            id: urn.into(),
            name: "Badge".into(),
            description: String::new(),
            attributes: vec![AttributeDef::string("badge").mutability(Mutability::Immutable)],
            open: false,
        },
        false,
    )
    .unwrap();
    let set = |v: &str| body(json!([{"op": "add", "path": "badge", "value": v}]));
    let u = patch_as(&reg, "User", &user(), &set("B-1")).unwrap();
    assert_eq!(u[urn]["badge"], "B-1");
    assert_eq!(u["schemas"].as_array().unwrap().last().unwrap(), urn);
    assert_eq!(patch_as(&reg, "User", &u, &set("B-1")).unwrap(), u);
    assert_scim_err(
        patch_as(&reg, "User", &u, &set("B-2")),
        ScimType::Mutability,
    );
    let rm = body(json!([{"op": "remove", "path": "badge"}]));
    assert_scim_err(patch_as(&reg, "User", &u, &rm), ScimType::Mutability);
    // a member's id is immutable; its display is not
    let g = group(&["a"]);
    let b = body(json!([{"op": "replace", "path": "members[value eq \"a\"].value", "value": "b"}]));
    assert_scim_err(patch_group(&g, &b), ScimType::Mutability);
    let b = body(
        json!([{"op": "replace", "path": "members[value eq \"a\"]", "value": {"value": "b"}}]),
    );
    assert_scim_err(patch_group(&g, &b), ScimType::Mutability);
    let b = body(
        json!([{"op": "replace", "path": "members[value eq \"a\"]", "value": {"display": "A"}}]),
    );
    let out = patch_group(&g, &b).unwrap();
    assert_eq!(out["members"], json!([{"value": "a", "display": "A"}]));
    let b = body(json!([{"op": "remove", "path": "members[value eq \"a\"].value"}]));
    assert_scim_err(patch_group(&g, &b), ScimType::Mutability);
}

#[test]
fn failed_patch_leaves_resource_unchanged() {
    let u = user();
    let b = body(json!([
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "add", "path": "emails", "value": [{"value": "x@example.com"}]},
        {"op": "remove", "path": "userName"}
    ]));
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "User").unwrap();
    let req = parse_patch(&b, &ctx).unwrap();
    let mut r = u.clone();
    let e = apply_patch(&mut r, &req, &ctx).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
    assert!(e.detail.starts_with("Operations[2]"), "{e}");
    assert_eq!(r, u);
    let g = group(&["a"]);
    let b = body(json!([
        {"op": "add", "path": "members", "value": [{"value": "b"}]},
        {"op": "replace", "path": "members[value eq \"a\"].value", "value": "c"}
    ]));
    let ctx = SchemaContext::new(&reg, "Group").unwrap();
    let req = parse_patch(&b, &ctx).unwrap();
    let mut r = g.clone();
    assert!(apply_patch(&mut r, &req, &ctx).is_err());
    assert_eq!(r, g);
}

#[test]
fn hand_built_requests_are_normalised_when_applied() {
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "User").unwrap();
    let req = PatchRequest {
        ops: vec![PatchOp {
            op: PatchOpKind::Replace,
            path: None,
            value: Some(json!({"active": "False", "name.givenName": "H"})),
        }],
    };
    let mut u = user();
    apply_patch(&mut u, &req, &ctx).unwrap();
    assert_eq!(u["active"], false);
    assert_eq!(u["name"]["givenName"], "H");
    let req = PatchRequest {
        ops: vec![PatchOp {
            op: PatchOpKind::Remove,
            path: None,
            value: None,
        }],
    };
    assert_scim_err(apply_patch(&mut u, &req, &ctx), ScimType::NoTarget);
}

// ---- split_members ---------------------------------------------------------------------

#[test]
fn split_ms_member_forms() {
    let (rest, d) = split(&fixture!("develop-add-members")).unwrap();
    assert!(rest.ops.is_empty());
    assert_eq!(
        d,
        MemberDelta {
            reset: None,
            add: vec![m("f648f8d5ea4e4cd38e9c")],
            remove: vec![],
        }
    );
    let (_, d) = split(&fixture!("develop-remove-members")).unwrap();
    assert_eq!(d.remove, vec!["f648f8d5ea4e4cd38e9c"]);
    assert!(d.add.is_empty() && d.reset.is_none());
    let (_, d) = split(&fixture!("known-issues-remove-member-legacy")).unwrap();
    assert_eq!(d.remove, vec!["u1091"]);
    let (_, d) = split(&fixture!("known-issues-remove-member-flag")).unwrap();
    assert_eq!(d.remove, vec!["7f4bc1a3-285e-48ae-8202-5accb43efb0e"]);
    let (rest, d) = split(&fixture!("develop-update-group-name")).unwrap();
    assert!(d.is_empty());
    assert_eq!(paths(&rest), vec!["displayName"]);
}

#[test]
fn split_add_two_members_replace_and_clear() {
    let b = body(json!([
        {"op": "Replace", "path": "displayName", "value": "Sales"},
        {"op": "Add", "path": "members", "value": [
            {"value": "m1", "display": "One"}, {"value": "m2", "type": "User"}
        ]}
    ]));
    let (rest, d) = split(&b).unwrap();
    assert_eq!(paths(&rest), vec!["displayName"]);
    assert_eq!(rest.ops[0].value, Some(json!("Sales")));
    assert_eq!(
        d.add,
        vec![
            Member {
                value: "m1".into(),
                display: Some("One".into()),
                kind: None
            },
            Member {
                value: "m2".into(),
                display: None,
                kind: Some("User".into())
            },
        ]
    );
    let b = body(json!([{"op": "replace", "path": "members", "value": [{"value": "x"}]}]));
    let (_, d) = split(&b).unwrap();
    assert_eq!(d.reset, Some(vec![m("x")]));
    assert!(d.add.is_empty() && d.remove.is_empty());
    let b = body(json!([{"op": "remove", "path": "members"}]));
    assert_eq!(split(&b).unwrap().1.reset, Some(vec![]));
    let b = body(json!([{"op": "add", "value": {"members": [{"value": "p"}]}}]));
    assert_eq!(split(&b).unwrap().1.add, vec![m("p")]);
}

#[test]
fn split_follows_request_order() {
    let b = body(json!([
        {"op": "add", "path": "members", "value": [{"value": "a"}]},
        {"op": "remove", "path": "members[value eq \"a\"]"},
        {"op": "remove", "path": "members[value eq \"b\"]"},
        {"op": "add", "path": "members", "value": [{"value": "b"}]}
    ]));
    let (_, d) = split(&b).unwrap();
    assert_eq!(d.add, vec![m("b")]);
    assert_eq!(d.remove, vec!["a"]);
    let b = body(json!([
        {"op": "add", "path": "members", "value": [{"value": "z"}]},
        {"op": "replace", "path": "members", "value": [{"value": "x"}]},
        {"op": "add", "path": "members", "value": [{"value": "y"}]},
        {"op": "remove", "path": "members[value eq \"x\" or value eq \"q\"]"}
    ]));
    let (_, d) = split(&b).unwrap();
    assert_eq!(d.reset, Some(vec![m("y")]));
    assert!(d.add.is_empty() && d.remove.is_empty());
}

#[test]
fn split_member_updates_by_filter() {
    let b = body(json!([
        {"op": "replace", "path": "members[value eq \"a\"].display", "value": "Alice"},
        {"op": "add", "path": "members[value eq \"b\"]", "value": {"type": "Group"}}
    ]));
    let (_, d) = split(&b).unwrap();
    assert_eq!(
        d.add,
        vec![
            Member {
                value: "a".into(),
                display: Some("Alice".into()),
                kind: None
            },
            Member {
                value: "b".into(),
                display: None,
                kind: Some("Group".into())
            },
        ]
    );
}

#[test]
fn split_rejects_what_needs_the_whole_member_list() {
    for (b, t) in [
        (
            body(json!([{"op": "remove", "path": "members[type eq \"Group\"]"}])),
            ScimType::InvalidFilter,
        ),
        (
            body(
                json!([{"op": "replace", "path": "members[value eq \"a\" or value eq \"b\"]",
                         "value": {"display": "x"}}]),
            ),
            ScimType::InvalidFilter,
        ),
        (
            body(json!([{"op": "replace", "path": "members.display", "value": "x"}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "remove", "path": "members[value eq \"a\"].display"}])),
            ScimType::InvalidPath,
        ),
        (
            body(json!([{"op": "replace", "path": "members[value eq \"a\"]",
                         "value": {"value": "b"}}])),
            ScimType::Mutability,
        ),
        (
            body(json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}])),
            ScimType::InvalidValue,
        ),
    ] {
        assert_scim_err(split(&b), t);
    }
}

#[test]
fn split_cost_follows_the_request() {
    // 5,000 members named in one request: each appears once in the delta, in order
    let value: Vec<Value> = (0..5000)
        .map(|i| json!({"value": format!("u{i}")}))
        .collect();
    let b = body(json!([
        {"op": "add", "path": "members", "value": value},
        {"op": "add", "path": "members", "value": [{"value": "u7", "display": "Seven"}]}
    ]));
    let (_, d) = split(&b).unwrap();
    assert_eq!(d.add.len(), 5000);
    assert_eq!(d.add[0].value, "u0");
    assert_eq!(d.add[4999].value, "u4999");
    assert_eq!(d.add[7].display.as_deref(), Some("Seven"));
}

/// The member list a delta produces from `current`.
fn apply_delta(current: &[String], d: &MemberDelta) -> Vec<String> {
    if let Some(reset) = &d.reset {
        return reset.iter().map(|m| m.value.clone()).collect();
    }
    let mut out: Vec<String> = current
        .iter()
        .filter(|id| !d.remove.contains(id))
        .cloned()
        .collect();
    for m in &d.add {
        if !out.contains(&m.value) {
            out.push(m.value.clone());
        }
    }
    out
}

/// A canonical request written back out as a PATCH body.
fn to_body(req: &PatchRequest) -> Value {
    let ops: Vec<Value> = req
        .ops
        .iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("op".into(), json!(o.op.as_str()));
            if let Some(p) = &o.path {
                m.insert("path".into(), json!(p.to_string()));
            }
            if let Some(v) = &o.value {
                m.insert("value".into(), v.clone());
            }
            Value::Object(m)
        })
        .collect();
    body(Value::Array(ops))
}

// ---- properties ------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        prop_oneof![
            "[a-zA-Z. \\[\\]\"=:_$-]{0,12}",
            Just("True".to_string()),
            Just("value".to_string()),
            Just("members".to_string()),
            Just("emails".to_string()),
            Just(ENTERPRISE_USER_SCHEMA.to_string()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,8}",
                    Just("value".to_string()),
                    Just("type".to_string()),
                    Just("primary".to_string()),
                    Just("name.givenName".to_string()),
                    Just(ENTERPRISE_USER_SCHEMA.to_string()),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_path() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("userName".to_string()),
        Just("active".to_string()),
        Just("name".to_string()),
        Just("name.givenName".to_string()),
        Just("emails".to_string()),
        Just("emails[type eq \"work\"]".to_string()),
        Just("emails[type eq \"work\"].value".to_string()),
        Just("emails[primary eq true].primary".to_string()),
        Just("emails.value".to_string()),
        Just("addresses[type eq \"work\" and locality pr]".to_string()),
        Just("members".to_string()),
        Just("members[value eq \"a\"]".to_string()),
        Just("members[value eq \"a\"].display".to_string()),
        Just(format!("{ENTERPRISE_USER_SCHEMA}:manager")),
        Just("manager.value".to_string()),
        Just("employeeNumber".to_string()),
        "[a-zA-Z.\\[\\] \"]{0,10}",
    ])
}

fn arb_op() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("add"),
            Just("Add"),
            Just("REPLACE"),
            Just("remove"),
            Just("Remove"),
            Just("move")
        ],
        arb_path(),
        prop::option::of(arb_json()),
    )
        .prop_map(|(op, path, value)| {
            let mut o = Map::new();
            o.insert("op".into(), json!(op));
            if let Some(p) = path {
                o.insert("path".into(), json!(p));
            }
            if let Some(v) = value {
                o.insert("value".into(), v);
            }
            Value::Object(o)
        })
}

fn arb_resource() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(user()),
        Just(group(&["a", "b"])),
        arb_json().prop_map(|v| match v {
            Value::Object(mut m) => {
                m.insert("schemas".into(), json!([USER_SCHEMA]));
                Value::Object(m)
            }
            other => other,
        }),
    ]
}

fn arb_member_op() -> impl Strategy<Value = Value> {
    let id = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")];
    let ids = prop::collection::vec(id.clone(), 0..3)
        .prop_map(|ids| Value::Array(ids.into_iter().map(|i| json!({"value": i})).collect()));
    prop_oneof![
        ids.clone()
            .prop_map(|v| json!({"op": "Add", "path": "members", "value": v})),
        ids.clone()
            .prop_map(|v| json!({"op": "Remove", "path": "members", "value": v})),
        ids.prop_map(|v| json!({"op": "replace", "path": "members", "value": v})),
        id.clone()
            .prop_map(|i| json!({"op": "remove", "path": format!("members[value eq \"{i}\"]")})),
        id.prop_map(|i| json!({"op": "replace",
                               "path": format!("members[value eq \"{i}\"].display"),
                               "value": "D"})),
        Just(json!({"op": "remove", "path": "members"})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_json_never_panics(b in arb_json(), r in arb_resource()) {
        let reg = SchemaRegistry::core();
        for rt in ["User", "Group"] {
            let ctx = SchemaContext::new(&reg, rt).unwrap();
            if let Ok(req) = parse_patch(&b, &ctx) {
                let mut res = r.clone();
                if apply_patch(&mut res, &req, &ctx).is_err() {
                    prop_assert_eq!(&res, &r);
                }
                let _ = split_members(req, &ctx);
            }
        }
    }

    #[test]
    fn arbitrary_operations_never_panic_and_fail_atomically(
        ops in prop::collection::vec(arb_op(), 1..5),
        r in arb_resource(),
    ) {
        let reg = SchemaRegistry::core();
        let b = body(Value::Array(ops));
        for rt in ["User", "Group"] {
            let ctx = SchemaContext::new(&reg, rt).unwrap();
            if let Ok(req) = parse_patch(&b, &ctx) {
                let mut res = r.clone();
                match apply_patch(&mut res, &req, &ctx) {
                    Ok(()) if !req.ops.is_empty() => {
                        // the canonical form, written out as a body, parses to itself
                        let reparsed = parse_patch(&to_body(&req), &ctx);
                        prop_assert_eq!(reparsed.as_ref(), Ok(&req));
                    }
                    Ok(()) => {}
                    Err(e) => {
                        // a resource that is not an object (or holds an extension that is
                        // not) is the gateway's own fault
                        if e.status == 500 {
                            prop_assert!(e.detail.contains("not an object"), "{}", e);
                        } else {
                            prop_assert_eq!(e.status, 400);
                        }
                        prop_assert_eq!(&res, &r);
                    }
                }
                let _ = split_members(req, &ctx);
            }
        }
    }

    #[test]
    fn member_delta_agrees_with_apply(
        start in prop::collection::btree_set(prop_oneof![Just("a"), Just("b"), Just("c")], 0..3),
        ops in prop::collection::vec(arb_member_op(), 1..6),
    ) {
        let start: Vec<&str> = start.into_iter().collect();
        let g = group(&start);
        let b = body(Value::Array(ops));
        let applied = patch_group(&g, &b).unwrap();
        let (_, d) = split(&b).unwrap();
        let mut from_delta = apply_delta(&member_ids(&g), &d);
        let mut from_apply = member_ids(&applied);
        from_delta.sort();
        from_apply.sort();
        prop_assert_eq!(from_delta, from_apply);
    }
}
