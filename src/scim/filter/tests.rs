//! Unit tests of the filter parser, printer and evaluator.

use super::*;
use crate::scim::ScimType;
use crate::scim::schema::{
    AttrType, AttributeDef, ENTERPRISE_USER_SCHEMA, SchemaContext, SchemaRegistry, USER_SCHEMA,
};
use serde_json::{Value, json};

const METADATA: &str = "urn:ietf:params:scim:schemas:extension:2.0:Metadata";
const TEST_EXT: &str = "urn:example:scim:schemas:extension:test:2.0:User";

/// Core schemas plus an open Metadata extension and a typed test extension, as a profile
/// would register them.
fn registry() -> SchemaRegistry {
    use crate::scim::schema::Schema;
    let mut reg = SchemaRegistry::core();
    let ext = |id: &str, attributes: Vec<AttributeDef>, open: bool| Schema {
        id: id.into(),
        name: String::new(),
        description: String::new(),
        attributes,
        open,
    };
    reg.add_extension("User", ext(METADATA, vec![], true), false)
        .unwrap();
    let typed = vec![
        AttributeDef::typed("level", AttrType::Integer),
        AttributeDef::typed("score", AttrType::Decimal),
        AttributeDef::typed("hiredAt", AttrType::DateTime),
        AttributeDef::typed("badge", AttrType::Binary),
        AttributeDef::typed("flags", AttrType::Boolean),
        AttributeDef::string("tags").multi(),
    ];
    reg.add_extension("User", ext(TEST_EXT, typed, false), false)
        .unwrap();
    reg
}

/// A user as Entra creates it, plus extension data.
fn user() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081",
        "active": true,
        "displayName": "Barbara Jensen",
        "title": "",
        "emails": [
            {"primary": true, "type": "work", "value": "Test_User_11bb6b3d@contoso.com"},
            {"type": "home", "value": "babs@example.org"}
        ],
        "name": {"formatted": "Ms. Barbara J Jensen", "familyName": "Jensen", "givenName": "Barbara"},
        "meta": {"resourceType": "User", "created": "2024-05-13T04:42:34Z",
                 "lastModified": "2024-05-14T06:00:00+02:00"},
        ENTERPRISE_USER_SCHEMA: {
            "employeeNumber": "701984", "department": "Sales",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        METADATA: {"costCenter": "CC-1"},
        TEST_EXT: {
            "level": 5, "score": 2.5, "hiredAt": "2020-01-01T00:00:00Z", "badge": "AAEC",
            "flags": "True", "tags": ["alpha", "Beta"]
        }
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g-1",
        "displayName": "Group1",
        "members": [{"value": "u-1", "display": "One"}, {"value": "u-2"}]
    })
}

fn parse(s: &str) -> Filter {
    let reg = registry();
    match parse_filter(s, Some(&reg)) {
        Ok(f) => f,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn eval_on(rt: &str, s: &str, resource: &Value) -> bool {
    let reg = registry();
    let ctx = SchemaContext::new(&reg, rt).unwrap();
    evaluate(&parse(s), resource, &ctx)
}

fn eval(s: &str) -> bool {
    eval_on("User", s, &user())
}

fn err(s: &str) -> String {
    let reg = registry();
    let e = parse_filter(s, Some(&reg)).unwrap_err();
    assert_eq!(e.status, 400, "{s}");
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{s}");
    e.detail
}

fn present(name: &str) -> Filter {
    Filter::Present(AttrPath::new(name))
}

fn and(l: Filter, r: Filter) -> Filter {
    Filter::And(Box::new(l), Box::new(r))
}

fn or(l: Filter, r: Filter) -> Filter {
    Filter::Or(Box::new(l), Box::new(r))
}

fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
    Filter::Compare { path, op, value }
}

fn eq_str(name: &str, v: &str) -> Filter {
    cmp(AttrPath::new(name), CompareOp::Eq, CompValue::Str(v.into()))
}

// ---- parsing ---------------------------------------------------------------------------

#[test]
fn parses_entra_filters() {
    assert_eq!(
        parse(r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#),
        eq_str("userName", "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081")
    );
    assert_eq!(
        parse(r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#),
        eq_str("externalId", "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
    );
    assert_eq!(
        parse(r#"displayName eq "Group1""#),
        eq_str("displayName", "Group1")
    );
    assert_eq!(
        parse(r#"emails[type eq "work"].value eq "x@contoso.com""#),
        Filter::ValuePath {
            attr: AttrPath::new("emails"),
            filter: Box::new(and(
                eq_str("type", "work"),
                eq_str("value", "x@contoso.com")
            )),
        }
    );
    assert_eq!(
        parse(r#"id eq "g-1" and members eq "u-2""#),
        and(eq_str("id", "g-1"), eq_str("members", "u-2"))
    );
}

#[test]
fn keywords_and_operators_ignore_case() {
    let f = parse(r#"userName EQ "x" AND title Pr OR NOT (active Eq TRUE)"#);
    assert_eq!(
        f,
        or(
            and(eq_str("userName", "x"), present("title")),
            Filter::Not(Box::new(cmp(
                AttrPath::new("active"),
                CompareOp::Eq,
                CompValue::Bool(true)
            )))
        )
    );
    for (word, op) in [
        ("eq", CompareOp::Eq),
        ("NE", CompareOp::Ne),
        ("Co", CompareOp::Co),
        ("sW", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("GT", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lT", CompareOp::Lt),
        ("Le", CompareOp::Le),
    ] {
        assert_eq!(
            parse(&format!("title {word} null")),
            cmp(AttrPath::new("title"), op, CompValue::Null)
        );
    }
    assert_eq!(
        parse("active eq False"),
        cmp(
            AttrPath::new("active"),
            CompareOp::Eq,
            CompValue::Bool(false)
        )
    );
    assert_eq!(
        parse("title eq NULL"),
        cmp(AttrPath::new("title"), CompareOp::Eq, CompValue::Null)
    );
}

#[test]
fn precedence_is_not_and_or_left_associative() {
    let (a, b, c) = (present("a"), present("b"), present("c"));
    assert_eq!(
        parse("a pr or b pr and c pr"),
        or(a.clone(), and(b.clone(), c.clone()))
    );
    assert_eq!(
        parse("a pr and b pr or c pr"),
        or(and(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("a pr or b pr or c pr"),
        or(or(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("a pr and b pr and c pr"),
        and(and(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("(a pr or b pr) and c pr"),
        and(or(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        parse("not (a pr or b pr) and c pr"),
        and(Filter::Not(Box::new(or(a.clone(), b.clone()))), c.clone())
    );
    assert_eq!(parse("not(a pr)"), Filter::Not(Box::new(a.clone())));
    assert_eq!(parse("((( a pr )))"), a);
    // an attribute may be called `not`, `and` or `or`
    assert_eq!(parse("not pr"), present("not"));
    assert_eq!(
        parse("and pr and or pr"),
        and(present("and"), present("or"))
    );
}

#[test]
fn parses_value_paths() {
    assert_eq!(
        parse(r#"emails[type eq "work" and value co "@contoso.com"]"#),
        Filter::ValuePath {
            attr: AttrPath::new("emails"),
            filter: Box::new(and(
                eq_str("type", "work"),
                cmp(
                    AttrPath::new("value"),
                    CompareOp::Co,
                    CompValue::Str("@contoso.com".into())
                )
            )),
        }
    );
    assert_eq!(
        parse(r#"emails[not (type eq "work")]"#),
        Filter::ValuePath {
            attr: AttrPath::new("emails"),
            filter: Box::new(Filter::Not(Box::new(eq_str("type", "work")))),
        }
    );
    assert_eq!(
        parse(r#"emails[type eq "work"].value pr and userName pr"#),
        and(
            Filter::ValuePath {
                attr: AttrPath::new("emails"),
                filter: Box::new(and(eq_str("type", "work"), present("value"))),
            },
            present("userName")
        )
    );
    let f = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"]"#);
    let Filter::ValuePath { attr, .. } = f else {
        panic!("not a value path")
    };
    assert_eq!(attr.urn.as_deref(), Some(USER_SCHEMA));
}

#[test]
fn parses_schema_qualified_paths() {
    let f =
        parse(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m""#);
    let path = AttrPath {
        urn: Some(ENTERPRISE_USER_SCHEMA.into()),
        name: "manager".into(),
        sub: Some("value".into()),
    };
    assert_eq!(
        f,
        cmp(path.clone(), CompareOp::Eq, CompValue::Str("m".into()))
    );
    // the same without a registry: split at the last colon
    assert_eq!(
        parse_filter(&f.to_string(), None).unwrap(),
        cmp(path, CompareOp::Eq, CompValue::Str("m".into()))
    );
    let f = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#);
    assert_eq!(
        f,
        cmp(
            AttrPath {
                urn: Some(USER_SCHEMA.into()),
                name: "userName".into(),
                sub: None
            },
            CompareOp::Eq,
            CompValue::Str("x".into())
        )
    );
    // an open extension; the URN is written in another case and comes back canonical
    let f = parse(r#"URN:ietf:params:scim:schemas:extension:2.0:metadata:costCenter eq "CC-1""#);
    assert_eq!(
        f,
        cmp(
            AttrPath {
                urn: Some(METADATA.into()),
                name: "costCenter".into(),
                sub: None
            },
            CompareOp::Eq,
            CompValue::Str("CC-1".into())
        )
    );
    let d = err(&format!("{ENTERPRISE_USER_SCHEMA} pr"));
    assert!(
        d.starts_with("at offset 0: expected an attribute path"),
        "{d}"
    );
}

#[test]
fn parses_json_strings_with_every_escape() {
    let f = parse(r#"title eq "q\" b\\ s\/ \b\f\n\r\t \u00e9\u00C9 \ud83d\ude00 日本""#);
    assert_eq!(f, eq_str("title", "q\" b\\ s/ \u{8}\u{c}\n\r\t éÉ 😀 日本"));
    assert_eq!(parse(r#"title eq """#), eq_str("title", ""));
    let d = err(r#"userName eq "a\qb""#);
    assert!(d.starts_with("at offset 14: invalid escape"), "{d}");
    let d = err(r#"userName eq "\ud83d""#);
    assert!(
        d.starts_with("at offset 19: expected a '\\u' low surrogate"),
        "{d}"
    );
    let d = err(r#"userName eq "\ud83d\u0041""#);
    assert!(
        d.starts_with("at offset 19: expected a low surrogate"),
        "{d}"
    );
    let d = err(r#"userName eq "\ude00""#);
    assert!(d.starts_with("at offset 13: unpaired low surrogate"), "{d}");
    let d = err(r#"userName eq "\u12g4""#);
    assert!(
        d.starts_with("at offset 15: expected four hex digits"),
        "{d}"
    );
    let d = err(r#"userName eq "\u12"#);
    assert!(
        d.starts_with("at offset 15: expected four hex digits"),
        "{d}"
    );
    let d = err("userName eq \"a\tb\"");
    assert!(d.starts_with("at offset 14: control characters"), "{d}");
    let d = err(r#"userName eq "abc"#);
    assert!(
        d.starts_with("at offset 16: expected '\"' to close the string opened at offset 12"),
        "{d}"
    );
}

#[test]
fn parses_json_numbers() {
    let num = |s: &str| match parse(&format!("level eq {s}")) {
        Filter::Compare {
            value: CompValue::Num(n),
            ..
        } => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(num("0").as_u64(), Some(0));
    assert_eq!(num("42").as_u64(), Some(42));
    assert_eq!(num("-17").as_i64(), Some(-17));
    assert_eq!(num("1.5").as_f64(), Some(1.5));
    assert_eq!(num("-2.5e3").as_f64(), Some(-2500.0));
    assert_eq!(num("1E+2").as_f64(), Some(100.0));
    assert_eq!(num("25e-1").as_f64(), Some(2.5));
    assert_eq!(num("18446744073709551615").as_u64(), Some(u64::MAX));
    for (bad, at) in [
        ("01", 10),
        ("1.", 11),
        ("-", 10),
        ("-x", 10),
        ("1e", 11),
        ("1e+", 12),
        ("1.5.2", 12),
        ("12ab", 11),
    ] {
        let d = err(&format!("level eq {bad}"));
        assert!(d.starts_with(&format!("at offset {at}: ")), "{bad}: {d}");
    }
    let d = err("level eq 1e400");
    assert!(d.contains("out of range"), "{d}");
}

#[test]
fn errors_name_offset_and_expectation() {
    let cases = [
        (
            "userName eq",
            "at offset 11: expected a comparison value after 'eq'",
        ),
        (
            "userName eq )",
            "at offset 12: expected a comparison value after 'eq'",
        ),
        (
            "userName eq bjensen",
            "at offset 12: expected a comparison value after 'eq'",
        ),
        (
            r#"userName eq "x" and"#,
            "at offset 19: expected an attribute path",
        ),
        (r#"userName xx "a""#, "at offset 9: expected an operator"),
        ("userName", "at offset 8: expected an operator"),
        (
            "(userName pr",
            "at offset 12: expected ')' to close the '(' at offset 0",
        ),
        (
            "userName pr)",
            "at offset 11: expected 'and', 'or' or the end",
        ),
        (
            "userName pr userName pr",
            "at offset 12: expected 'and', 'or' or the end",
        ),
        (
            r#"emails[type eq "work""#,
            "at offset 21: expected ']' to close the '[' at offset 6",
        ),
        (
            r#"emails[type[value pr]]"#,
            "at offset 11: value paths cannot be nested",
        ),
        (
            r#"emails[urn:a:b pr]"#,
            "at offset 7: expected a sub-attribute name",
        ),
        (
            r#"emails[type.x pr]"#,
            "at offset 7: expected a sub-attribute name",
        ),
        ("emails[]", "at offset 7: expected a sub-attribute name"),
        (
            "name.givenName[value pr]",
            "at offset 0: a value filter '[…]' must follow",
        ),
        (
            r#"emails[type eq "w"]."#,
            "at offset 20: expected a sub-attribute name after '].'",
        ),
        (
            r#"emails[type eq "w"].value"#,
            "at offset 25: expected an operator",
        ),
        ("", "at offset 0: expected an attribute path"),
        ("   ", "at offset 3: expected an attribute path"),
        (
            "1abc pr",
            "at offset 0: expected an attribute path, '1abc' is not one",
        ),
        ("name.given.x pr", "at offset 0: expected an attribute path"),
        ("not (", "at offset 5: expected an attribute path"),
        (
            "é eq \"x\"",
            "at offset 0: expected an attribute path, 'not' or '(', found 'é'",
        ),
        (
            "userName eq \"x\" é",
            "at offset 16: expected 'and', 'or' or the end",
        ),
        (
            "userName eq é",
            "at offset 12: expected a comparison value after 'eq', found 'é'",
        ),
        ("userNameé eq \"x\"", "at offset 8: expected an operator"),
    ];
    for (input, want) in cases {
        let d = err(input);
        assert!(d.starts_with(want), "{input:?}: got {d:?}, want {want:?}");
    }
}

#[test]
fn enforces_length_and_depth_limits() {
    let long = format!(r#"userName eq "{}""#, "x".repeat(MAX_FILTER_LEN));
    let d = err(&long);
    assert!(d.contains("the limit is 8192"), "{d}");
    let ok = format!("{}a pr{}", "(".repeat(50), ")".repeat(50));
    assert_eq!(parse(&ok), present("a"));
    let deep = format!("{}a pr{}", "(".repeat(51), ")".repeat(51));
    let d = err(&deep);
    assert!(
        d.starts_with("at offset 50: nesting is deeper than 50"),
        "{d}"
    );
    let nots = format!("{}a pr{}", "not (".repeat(51), ")".repeat(51));
    assert!(err(&nots).contains("nesting is deeper than 50"));
    // a flat chain as long as the limit allows is fine to parse, print, evaluate and drop
    let chain = vec!["a pr"; MAX_FILTER_LEN / 8].join(" or ");
    assert!(chain.len() <= MAX_FILTER_LEN);
    let f = parse(&chain);
    assert_eq!(f.to_string(), chain);
    assert!(!eval(&chain));
    assert_eq!(f.conjuncts().len(), 1);
}

#[test]
fn prints_canonical_text() {
    let cases = [
        (r#"USERNAME EQ "x""#, r#"USERNAME eq "x""#),
        ("a pr OR b pr AND c pr", "a pr or b pr and c pr"),
        ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
        ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
        ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
        ("not(a pr)", "not (a pr)"),
        (
            r#"emails[type eq "work"].value eq "x""#,
            r#"emails[type eq "work" and value eq "x"]"#,
        ),
        (
            r#"emails[type eq "work" or type eq "home"].value eq "x""#,
            r#"emails[(type eq "work" or type eq "home") and value eq "x"]"#,
        ),
        ("level ge -1.5E3", "level ge -1500.0"),
        ("flags eq TRUE", "flags eq true"),
        (r#"title eq "a\u0001\"\/""#, r#"title eq "a\u0001\"/""#),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.VALUE pr",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.VALUE pr",
        ),
    ];
    for (input, want) in cases {
        let f = parse(input);
        assert_eq!(f.to_string(), want, "{input}");
        assert_eq!(parse(want), f, "{want}");
    }
    assert_eq!(CompareOp::Ge.to_string(), "ge");
    assert_eq!(CompValue::Str("a\"b".into()).to_string(), r#""a\"b""#);
    assert_eq!(CompValue::Null.to_string(), "null");
}

#[test]
fn simple_eq_and_conjuncts() {
    let f = parse(r#"userName eq "bjensen""#);
    assert_eq!(f.simple_eq(), Some((&AttrPath::new("userName"), "bjensen")));
    assert_eq!(parse(r#"userName ne "b""#).simple_eq(), None);
    assert_eq!(parse("level eq 1").simple_eq(), None);
    assert_eq!(parse(r#"userName eq "b" and a pr"#).simple_eq(), None);
    let f = parse(r#"id eq "g" and members eq "u" and (a pr or b pr)"#);
    let parts = f.conjuncts();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], &eq_str("id", "g"));
    assert_eq!(parts[1], &eq_str("members", "u"));
    assert_eq!(parts[2], &or(present("a"), present("b")));
    let single = parse("a pr");
    assert_eq!(single.conjuncts(), vec![&single]);
}

// ---- evaluation ------------------------------------------------------------------------

#[test]
fn evaluates_entra_filters() {
    assert!(eval(
        r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#
    ));
    assert!(eval(
        r#"userName eq "test_user_DFEEF4C5-5681-4387-b016-bdf221e82081""#
    ));
    assert!(!eval(
        r#"userName eq "Test_User_00000000-5681-4387-b016-bdf221e82081""#
    ));
    assert!(eval(
        r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#
    ));
    assert!(eval(
        r#"emails[type eq "work"].value eq "test_user_11bb6b3d@contoso.com""#
    ));
    assert!(!eval(
        r#"emails[type eq "home"].value eq "Test_User_11bb6b3d@contoso.com""#
    ));
    assert!(eval_on("Group", r#"displayName eq "Group1""#, &group()));
    assert!(eval_on("Group", r#"displayName eq "group1""#, &group()));
    assert!(!eval_on("Group", r#"displayName eq "Group2""#, &group()));
    assert!(eval_on(
        "Group",
        r#"id eq "g-1" and members eq "u-2""#,
        &group()
    ));
    assert!(!eval_on(
        "Group",
        r#"id eq "g-1" and members eq "u-3""#,
        &group()
    ));
    assert!(eval_on("Group", r#"members[value eq "u-1"]"#, &group()));
}

#[test]
fn case_exact_attributes_compare_exactly() {
    assert!(!eval(
        r#"externalId eq "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF""#
    ));
    assert!(eval(
        r#"externalId ne "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF""#
    ));
    assert!(eval(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
    assert!(!eval(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
    assert!(!eval(r#"id sw "2819C223""#));
    assert!(eval(r#"id sw "2819c223""#));
    assert!(eval(r#"userName sw "TEST_USER""#));
    assert!(eval(r#"meta.resourceType eq "User""#));
    assert!(!eval(r#"meta.resourceType eq "user""#));
    // case-insensitive beyond ASCII too
    let u = json!({"displayName": "ÉLODIE Ünal"});
    assert!(eval_on("User", r#"displayName eq "élodie ünal""#, &u));
    assert!(eval_on("User", r#"displayName co "DIE ü""#, &u));
}

#[test]
fn string_operators() {
    let t = |s: &str| eval(s);
    assert!(t(r#"displayName eq "barbara jensen""#));
    assert!(!t(r#"displayName ne "BARBARA JENSEN""#));
    assert!(t(r#"displayName ne "Babs""#));
    assert!(t(r#"displayName co "RA JEN""#));
    assert!(!t(r#"displayName co "xyz""#));
    assert!(t(r#"displayName sw "barb""#));
    assert!(!t(r#"displayName sw "jensen""#));
    assert!(t(r#"displayName ew "JENSEN""#));
    assert!(!t(r#"displayName ew "barb""#));
    assert!(t(r#"displayName gt "Barbara""#));
    assert!(!t(r#"displayName gt "barbara jensen""#));
    assert!(t(r#"displayName ge "barbara jensen""#));
    assert!(t(r#"displayName lt "c""#));
    assert!(!t(r#"displayName lt "BARBARA JENSEN""#));
    assert!(t(r#"displayName le "BARBARA JENSEN""#));
    assert!(!t(r#"displayName le "a""#));
    assert!(t(r#"name.givenName eq "barbara""#));
    assert!(t(r#"name.familyName co "ens""#));
}

#[test]
fn number_operators() {
    assert!(eval("level eq 5"));
    assert!(eval("level eq 5.0"));
    assert!(eval("level ne 4"));
    assert!(!eval("level ne 5"));
    assert!(eval("level gt 4.5"));
    assert!(!eval("level gt 5"));
    assert!(eval("level ge 5"));
    assert!(eval("level lt 6"));
    assert!(!eval("level lt -6"));
    assert!(eval("level le 5e0"));
    assert!(!eval("level co 5"));
    assert!(eval("score eq 2.5"));
    assert!(eval("score gt 2"));
    assert!(!eval("score lt 25e-1"));
    assert!(!eval(r#"level eq "5x""#));
    // numbers stored as strings by a legacy API still compare numerically
    let u = json!({TEST_EXT: {"level": "12"}});
    assert!(eval_on("User", "level gt 9", &u));
    assert!(!eval_on("User", "level lt 9", &u));
    // large integers keep their precision
    let u = json!({TEST_EXT: {"level": 9007199254740993_i64}});
    assert!(eval_on("User", "level gt 9007199254740992", &u));
}

#[test]
fn boolean_operators() {
    assert!(eval("active eq true"));
    assert!(!eval("active eq false"));
    assert!(eval("active ne false"));
    assert!(!eval("active ne true"));
    assert!(!eval("active gt false"));
    assert!(!eval("active co true"));
    // Entra sends "True"/"False" strings; stored that way they still compare as booleans
    assert!(eval("flags eq true"));
    assert!(!eval("flags eq false"));
    assert!(eval(r#"active eq "True""#));
}

#[test]
fn date_time_operators_compare_instants() {
    // lastModified is 2024-05-14T04:00:00Z written with a +02:00 offset
    assert!(eval(r#"meta.lastModified eq "2024-05-14T04:00:00Z""#));
    assert!(!eval(r#"meta.lastModified ne "2024-05-14T04:00:00Z""#));
    assert!(eval(r#"meta.lastModified gt "2024-05-14T03:59:59Z""#));
    assert!(!eval(r#"meta.lastModified gt "2024-05-14T04:00:00Z""#));
    assert!(eval(r#"meta.lastModified ge "2024-05-14T04:00:00.000Z""#));
    assert!(!eval(r#"meta.lastModified lt "2024-05-14T05:00:00+01:00""#));
    assert!(eval(r#"meta.lastModified le "2024-05-14T05:00:00+01:00""#));
    assert!(eval(r#"meta.created lt "2024-05-14T00:00:00Z""#));
    assert!(eval(r#"hiredAt lt "2021-01-01T00:00:00Z""#));
    // string operators still work on the text
    assert!(eval(r#"meta.created sw "2024-05""#));
    // an operand that is not a date falls back to text comparison
    assert!(eval(r#"meta.created gt "2024""#));
}

#[test]
fn presence_null_and_absent_attributes() {
    assert!(eval("userName pr"));
    assert!(!eval("title pr"), "empty string is not a value");
    assert!(!eval("nickName pr"));
    assert!(eval("emails pr"));
    assert!(eval("name pr"));
    assert!(eval("name.givenName pr"));
    assert!(!eval("name.middleName pr"));
    assert!(eval("nickName eq null"));
    assert!(eval("title eq null"));
    assert!(!eval("userName eq null"));
    assert!(eval("userName ne null"));
    assert!(!eval("userName gt null"));
    assert!(eval(r#"nickName ne "x""#), "ne is true when absent");
    assert!(!eval(r#"nickName eq "x""#));
    assert!(!eval(r#"nickName co "x""#));
    // attributes no schema defines are absent
    assert!(!eval(r#"bogus eq "x""#));
    assert!(eval(r#"bogus ne "x""#));
    assert!(!eval("bogus pr"));
    assert!(!eval(r#"name.bogus eq "x""#));
    assert!(!eval("bogus[value pr]"));
    let empty = json!({"emails": [], "name": {"givenName": ""}, "nickName": null});
    assert!(!eval_on("User", "emails pr", &empty));
    assert!(!eval_on("User", "name pr", &empty));
    assert!(!eval_on("User", "nickName pr", &empty));
    assert!(!eval_on("User", r#"emails co "x""#, &empty));
    assert!(eval_on("User", "emails eq null", &empty));
    assert!(!eval_on("User", "userName pr", &json!("not an object")));
}

#[test]
fn multi_valued_and_complex_attributes() {
    assert!(
        eval(r#"emails co "example.org""#),
        "any value matches, via emails.value"
    );
    assert!(eval(r#"emails.type eq "home""#));
    assert!(eval(r#"emails.value ew "@CONTOSO.COM""#));
    assert!(
        !eval(r#"emails eq "work""#),
        "emails compares value, not type"
    );
    assert!(!eval(r#"emails ne "babs@example.org""#));
    assert!(eval(r#"emails ne "nobody@example.org""#));
    assert!(eval(
        r#"emails[type eq "work" and value co "@contoso.com"]"#
    ));
    assert!(!eval(
        r#"emails[type eq "home" and value co "@contoso.com"]"#
    ));
    assert!(eval(r#"emails[type eq "home" or primary eq true]"#));
    assert!(eval(r#"emails[not (type eq "work")]"#));
    assert!(eval(r#"emails[primary pr]"#));
    assert!(eval(r#"emails[type eq "home"].value sw "BABS""#));
    assert!(!eval(r#"emails[type eq "home"].primary eq true"#));
    assert!(eval(r#"tags eq "beta""#));
    assert!(eval(r#"tags[value eq "alpha"]"#));
    assert!(!eval(r#"tags[value eq "gamma"]"#));
}

#[test]
fn extension_attributes() {
    assert!(eval(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales""#
    ));
    assert!(eval(r#"employeeNumber eq "701984""#));
    assert!(eval(r#"manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#));
    assert!(eval(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value sw "26118915""#
    ));
    assert!(eval(
        r#"urn:ietf:params:scim:schemas:extension:2.0:Metadata:costCenter eq "cc-1""#
    ));
    assert!(!eval(
        r#"urn:ietf:params:scim:schemas:extension:2.0:Metadata:other pr"#
    ));
    assert!(eval(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "test""#
    ));
    // the extension key may be spelled in any case
    let u = json!({"URN:IETF:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "Ops"}});
    assert!(eval_on("User", r#"department eq "ops""#, &u));
    // an extension attribute on a resource type without that extension is absent
    assert!(!eval_on("Group", r#"department eq "ops""#, &u));
}

#[test]
fn keys_match_ignoring_case_and_logic_combines() {
    let u = json!({"USERNAME": "bjensen", "Emails": [{"TYPE": "work", "Value": "b@x"}]});
    assert!(eval_on("User", r#"username eq "BJENSEN""#, &u));
    assert!(eval_on(
        "User",
        r#"emails[type eq "work"].value eq "b@x""#,
        &u
    ));
    assert!(eval(r#"userName sw "test" and not (displayName eq "x")"#));
    assert!(eval(
        r#"userName eq "x" or displayName eq "barbara jensen""#
    ));
    assert!(!eval(
        r#"userName eq "x" or displayName eq "x" and active eq true"#
    ));
    assert!(eval(
        r#"(userName eq "x" or displayName sw "barb") and active eq true"#
    ));
    assert!(!eval(r#"not (active eq true)"#));
}

#[test]
fn matches_one_element() {
    let reg = registry();
    let emails = reg
        .schema(USER_SCHEMA)
        .unwrap()
        .attribute("emails")
        .unwrap();
    let inner = |s: &str| match parse(&format!("emails[{s}]")) {
        Filter::ValuePath { filter, .. } => *filter,
        other => panic!("{other:?}"),
    };
    let work = json!({"type": "Work", "value": "a@x", "primary": true});
    assert!(matches_element(&inner(r#"type eq "work""#), &work, emails));
    assert!(!matches_element(&inner(r#"type eq "home""#), &work, emails));
    assert!(matches_element(
        &inner(r#"type eq "work" and primary eq true"#),
        &work,
        emails
    ));
    assert!(matches_element(&inner("display eq null"), &work, emails));
    assert!(matches_element(&inner(r#"display ne "x""#), &work, emails));
    assert!(matches_element(&inner("value pr"), &work, emails));
    assert!(!matches_element(&inner(r#"bogus eq "x""#), &work, emails));
    let members = reg
        .schema(crate::scim::schema::GROUP_SCHEMA)
        .unwrap()
        .attribute("members")
        .unwrap();
    assert!(matches_element(
        &inner(r#"value eq "2819c223""#),
        &json!({"value": "2819c223"}),
        members
    ));
    // a multi-valued attribute of simple values: `value` is the element itself
    let tags = AttributeDef::string("tags").multi().case_exact();
    assert!(matches_element(
        &inner(r#"value eq "a""#),
        &json!("a"),
        &tags
    ));
    assert!(!matches_element(
        &inner(r#"value eq "A""#),
        &json!("a"),
        &tags
    ));
    assert!(!matches_element(
        &inner(r#"type eq "a""#),
        &json!("a"),
        &tags
    ));
}

#[test]
fn validation_rejects_unknown_attributes_and_bad_ordering() {
    let reg = registry();
    let user = SchemaContext::new(&reg, "User").unwrap();
    let group = SchemaContext::new(&reg, "Group").unwrap();
    let ok = |ctx: &SchemaContext, s: &str| validate_filter(&parse(s), ctx);
    for s in [
        r#"userName eq "x""#,
        r#"emails[type eq "work"].value eq "x""#,
        r#"meta.lastModified gt "2024-01-01T00:00:00Z""#,
        "level lt 3",
        r#"urn:ietf:params:scim:schemas:extension:2.0:Metadata:anything eq "x""#,
        r#"emails co "x""#,
        "active eq true",
        r#"tags[value eq "x"]"#,
        r#"not (manager.value pr) or employeeNumber sw "1""#,
    ] {
        assert_eq!(ok(&user, s), Ok(()), "{s}");
    }
    assert_eq!(ok(&group, r#"id eq "g" and members eq "u""#), Ok(()));
    for (ctx, s, want) in [
        (
            &user,
            r#"bogus eq "x""#,
            "attribute 'bogus' is not defined for resource type User",
        ),
        (&user, "name.bogus pr", "'name.bogus' is not defined"),
        (
            &group,
            r#"userName eq "x""#,
            "not defined for resource type Group",
        ),
        (
            &user,
            "active gt true",
            "operator 'gt' cannot order values of 'active'",
        ),
        (&user, r#"emails lt "x""#, "type is complex"),
        (&user, r#"badge ge "AA""#, "type is binary"),
        (&user, "flags le false", "type is boolean"),
        (
            &user,
            r#"emails[bogus eq "x"]"#,
            "'bogus' is not a sub-attribute of 'emails'",
        ),
        (
            &user,
            "emails[primary gt true]",
            "cannot order values of 'emails.primary'",
        ),
        (&user, r#"a pr and nope eq "x""#, "'a' is not defined"),
    ] {
        let e = ok(ctx, s).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{s}");
        assert!(e.detail.contains(want), "{s}: {}", e.detail);
    }
}

// ---- PATCH paths -----------------------------------------------------------------------

#[test]
fn parses_patch_paths() {
    let reg = registry();
    let pp = |s: &str| parse_patch_path(s, Some(&reg)).unwrap();
    assert_eq!(
        pp("name.givenName"),
        PatchPath {
            attr: AttrPath::with_sub("name", "givenName"),
            filter: None,
            sub: None
        }
    );
    assert_eq!(
        pp(r#"emails[type eq "work"].value"#),
        PatchPath {
            attr: AttrPath::new("emails"),
            filter: Some(eq_str("type", "work")),
            sub: Some("value".into())
        }
    );
    assert_eq!(
        pp(r#"members[value eq "2819c223"]"#),
        PatchPath {
            attr: AttrPath::new("members"),
            filter: Some(eq_str("value", "2819c223")),
            sub: None
        }
    );
    let p = pp("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager");
    assert_eq!(p.attr.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
    assert_eq!(p.attr.name, "manager");
    let p = pp("urn:ietf:params:scim:schemas:extension:2.0:Metadata:costCenter");
    assert_eq!(p.attr.urn.as_deref(), Some(METADATA));
    assert_eq!(p.attr.name, "costCenter");
    assert_eq!(pp("  active ").attr, AttrPath::new("active"));
    for s in [
        "name.givenName",
        r#"emails[type eq "work" and primary eq true].value"#,
        r#"members[value eq "2819c223"]"#,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    ] {
        assert_eq!(pp(s).to_string(), s);
    }
}

#[test]
fn patch_path_errors_are_invalid_path() {
    let reg = registry();
    for (s, want) in [
        ("", "at offset 0: expected an attribute path"),
        ("emails[", "at offset 7: expected a sub-attribute name"),
        (
            r#"emails[type eq "work"]x"#,
            "at offset 22: expected '.subAttribute'",
        ),
        (
            r#"emails[type eq "work"].value eq "x""#,
            "at offset 29: expected '.subAttribute'",
        ),
        ("name.givenName[value pr]", "at offset 0: a value filter"),
        (
            "emails[type eq]",
            "at offset 14: expected a comparison value",
        ),
        ("display name", "at offset 8: expected '[' or the end"),
        ("1x", "at offset 0: expected an attribute path"),
        (ENTERPRISE_USER_SCHEMA, "names a schema, not an attribute"),
    ] {
        let e = parse_patch_path(s, Some(&reg)).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{s}");
        assert!(e.detail.contains(want), "{s}: {}", e.detail);
    }
    let long = "a".repeat(MAX_FILTER_LEN + 1);
    assert_eq!(
        parse_patch_path(&long, None).unwrap_err().scim_type,
        Some(ScimType::InvalidPath)
    );
}

// ---- properties ------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}"
    }

    fn attr_path() -> impl Strategy<Value = AttrPath> {
        let urn = prop_oneof![
            3 => Just(None),
            1 => Just(Some(USER_SCHEMA.to_string())),
            1 => Just(Some(ENTERPRISE_USER_SCHEMA.to_string())),
            1 => Just(Some(METADATA.to_string())),
        ];
        (urn, name(), proptest::option::of(name())).prop_map(|(urn, name, sub)| AttrPath {
            urn,
            name,
            sub,
        })
    }

    fn number() -> impl Strategy<Value = serde_json::Number> {
        prop_oneof![
            any::<i64>().prop_map(serde_json::Number::from),
            any::<u64>().prop_map(serde_json::Number::from),
            any::<f64>().prop_filter_map("finite", serde_json::Number::from_f64),
        ]
    }

    fn comp_value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            3 => any::<String>().prop_map(CompValue::Str),
            1 => number().prop_map(CompValue::Num),
            1 => any::<bool>().prop_map(CompValue::Bool),
            1 => Just(CompValue::Null),
        ]
    }

    fn op() -> impl Strategy<Value = CompareOp> {
        proptest::sample::select(CompareOp::ALL.to_vec())
    }

    fn tree(leaf: BoxedStrategy<Filter>, depth: u32) -> impl Strategy<Value = Filter> {
        leaf.prop_recursive(depth, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| and(l, r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| or(l, r)),
                inner.prop_map(|x| Filter::Not(Box::new(x))),
            ]
        })
    }

    fn element_filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            (name(), op(), comp_value()).prop_map(|(n, op, value)| cmp(
                AttrPath::new(n),
                op,
                value
            )),
            name().prop_map(|n| Filter::Present(AttrPath::new(n))),
        ];
        tree(leaf.boxed(), 2)
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let value_path = (attr_path(), element_filter()).prop_map(|(mut attr, f)| {
            attr.sub = None;
            Filter::ValuePath {
                attr,
                filter: Box::new(f),
            }
        });
        let leaf = prop_oneof![
            3 => (attr_path(), op(), comp_value()).prop_map(|(p, op, v)| cmp(p, op, v)),
            1 => attr_path().prop_map(Filter::Present),
            1 => value_path,
        ];
        tree(leaf.boxed(), 4)
    }

    /// Names of real attributes (in other cases too), extension URNs and made-up names.
    fn known_name() -> impl Strategy<Value = String> {
        let names = [
            "userName",
            "USERNAME",
            "username",
            "id",
            "ID",
            "Id",
            "schemas",
            "Schemas",
            "emails",
            "EMAILS",
            "name",
            "displayName",
            "title",
            "active",
            "meta",
            "externalId",
            "department",
            "employeeNumber",
            "manager",
            "level",
            "tags",
            "value",
            "type",
        ];
        prop_oneof![
            4 => proptest::sample::select(names.to_vec()).prop_map(str::to_string),
            1 => name(),
        ]
    }

    fn known_path() -> impl Strategy<Value = AttrPath> {
        let urn = prop_oneof![
            3 => Just(None),
            1 => Just(Some(USER_SCHEMA.to_string())),
            1 => Just(Some(ENTERPRISE_USER_SCHEMA.to_string())),
            1 => Just(Some(ENTERPRISE_USER_SCHEMA.to_uppercase())),
            1 => Just(Some(METADATA.to_string())),
            1 => Just(Some(TEST_EXT.to_string())),
        ];
        let sub = proptest::option::of(prop_oneof![
            Just("value".to_string()),
            Just("givenName".to_string()),
            Just("familyName".to_string()),
            known_name(),
        ]);
        (urn, known_name(), sub).prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
    }

    fn known_filter() -> impl Strategy<Value = Filter> {
        let operand = prop_oneof![
            3 => proptest::sample::select(vec![
                "Barbara Jensen", "barbara jensen", "Sales", "701984", "true", "True",
                "2819c223-7f76-453a-919d-413861904646", "x", "",
                USER_SCHEMA, ENTERPRISE_USER_SCHEMA,
            ])
            .prop_map(|s| CompValue::Str(s.to_string())),
            1 => comp_value(),
        ];
        let value_path = (known_path(), element_filter()).prop_map(|(mut attr, f)| {
            attr.sub = None;
            Filter::ValuePath {
                attr,
                filter: Box::new(f),
            }
        });
        let leaf = prop_oneof![
            4 => (known_path(), op(), operand).prop_map(|(p, op, v)| cmp(p, op, v)),
            1 => known_path().prop_map(Filter::Present),
            1 => value_path,
        ];
        tree(leaf.boxed(), 3)
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            proptest::sample::select(vec!["Sales", "barbara jensen", "", "701984", "True"])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::vec((known_name(), inner), 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Entra's user with members added or replaced under known names (in any case, so a
    /// key may be there twice ignoring case), extension URNs and made-up names, and an id
    /// that is text or an integer.
    fn resource() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            3 => known_name(),
            1 => proptest::sample::select(vec![
                ENTERPRISE_USER_SCHEMA.to_string(),
                ENTERPRISE_USER_SCHEMA.to_uppercase(),
                METADATA.to_string(),
                TEST_EXT.to_string(),
            ]),
        ];
        let id = prop_oneof![
            Just(json!("2819c223-7f76-453a-919d-413861904646")),
            any::<i64>().prop_map(Value::from),
        ];
        (proptest::collection::vec((key, json_value()), 0..6), id).prop_map(|(extra, id)| {
            let mut r = user();
            for (k, v) in extra {
                r[k.as_str()] = v;
            }
            r["id"] = id;
            r
        })
    }

    proptest! {
        #[test]
        fn printed_filters_parse_back(f in filter()) {
            let text = f.to_string();
            prop_assert_eq!(&parse_filter(&text, None).unwrap(), &f, "{}", text);
            let reg = registry();
            prop_assert_eq!(&parse_filter(&text, Some(&reg)).unwrap(), &f, "{}", text);
        }

        /// What a filter reads of a resource ([`view`] of its [`read_names`]) decides as the
        /// whole resource, finished, does: a list's filter may be evaluated on the view.
        #[test]
        fn a_filter_decides_on_its_view_as_on_the_whole_resource(
            f in prop_oneof![known_filter(), filter()],
            r in resource(),
        ) {
            let reg = registry();
            let ctx = SchemaContext::new(&reg, "User").unwrap();
            let (id, schemas) = crate::scim::response::finish_doc(&ctx, &r).unwrap();
            let mut whole = r.clone();
            crate::scim::response::finish_value(&ctx, &mut whole).unwrap();
            let names = read_names(&f, &ctx);
            let seen = view(&r, &names, &id, &schemas);
            prop_assert_eq!(
                evaluate(&f, &seen, &ctx),
                evaluate(&f, &whole, &ctx),
                "{} on {} (view {})", f, whole, seen
            );
        }

        #[test]
        fn printed_patch_paths_parse_back(
            attr in attr_path(),
            filter in proptest::option::of(element_filter()),
            sub in proptest::option::of(name()),
        ) {
            let mut path = PatchPath { attr, filter, sub };
            if path.filter.is_some() {
                path.attr.sub = None;
            } else {
                path.sub = None;
            }
            let text = path.to_string();
            prop_assert_eq!(&parse_patch_path(&text, None).unwrap(), &path, "{}", text);
        }

        #[test]
        fn parse_never_panics_on_any_string(s in any::<String>()) {
            let reg = registry();
            let _ = parse_filter(&s, Some(&reg));
            let _ = parse_filter(&s, None);
            let _ = parse_patch_path(&s, Some(&reg));
            let _ = parse_patch_path(&s, None);
        }

        #[test]
        fn parse_never_panics_on_filter_like_strings(
            s in r#"([a-z]{1,6}|urn:[a-z:.0-9]{0,20}|[ ()\[\]."\\]|eq|and|or|not|pr|-?[0-9.eE+]{1,4}|\\u[0-9a-fA-F]{0,4}|é|日|😀){0,24}"#
        ) {
            let reg = registry();
            let ctx = SchemaContext::new(&reg, "User").unwrap();
            if let Ok(f) = parse_filter(&s, Some(&reg)) {
                // whatever parses also prints, re-parses and evaluates
                prop_assert_eq!(&parse_filter(&f.to_string(), Some(&reg)).unwrap(), &f);
                let _ = evaluate(&f, &user(), &ctx);
                let _ = validate_filter(&f, &ctx);
            }
            if let Ok(p) = parse_patch_path(&s, Some(&reg)) {
                prop_assert_eq!(&parse_patch_path(&p.to_string(), Some(&reg)).unwrap(), &p);
            }
        }
    }
}
