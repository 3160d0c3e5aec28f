//! Filter parse and evaluation cost on the requests Entra actually sends.
//!
//! Run: `cargo bench --bench filter -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use scimgate::scim::filter::{evaluate, parse_filter};
use scimgate::scim::{SchemaContext, SchemaRegistry};
use serde_json::{Value, json};
use std::hint::black_box;

const ENTRA_FILTER: &str = r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#;
const COMPLEX_FILTER: &str = r#"(emails[type eq "work" and value co "@contoso.com"] or userName sw "test_user") and active eq true and not (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Finance")"#;

/// A user as Entra provisions it (Test Connection / first sync payload).
fn entra_user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081",
        "active": true,
        "displayName": "Test User",
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "emails": [
            {"primary": true, "type": "work", "value": "Test_User_11bb6b3d@contoso.com"},
            {"type": "home", "value": "test.user@example.org"}
        ],
        "phoneNumbers": [{"type": "work", "value": "+1 425 555 0100"}],
        "addresses": [{"type": "work", "locality": "Redmond", "country": "US", "primary": true}],
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "meta": {"resourceType": "User", "created": "2024-05-13T04:42:34Z",
                 "lastModified": "2024-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Sales",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    })
}

fn bench(c: &mut Criterion) {
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "User").expect("User resource type");
    let user = entra_user();
    let parsed = parse_filter(ENTRA_FILTER, Some(&reg)).expect("filter parses");
    let complex = parse_filter(COMPLEX_FILTER, Some(&reg)).expect("filter parses");
    assert!(evaluate(&parsed, &user, &ctx));
    assert!(evaluate(&complex, &user, &ctx));

    c.bench_function("entra userName eq: parse+evaluate", |b| {
        b.iter(|| {
            let f = parse_filter(black_box(ENTRA_FILTER), Some(&reg)).expect("parses");
            evaluate(&f, black_box(&user), &ctx)
        })
    });
    c.bench_function("entra userName eq: parse", |b| {
        b.iter(|| parse_filter(black_box(ENTRA_FILTER), Some(&reg)))
    });
    c.bench_function("entra userName eq: evaluate", |b| {
        b.iter(|| evaluate(black_box(&parsed), black_box(&user), &ctx))
    });
    c.bench_function("complex value path or/and: parse+evaluate", |b| {
        b.iter(|| {
            let f = parse_filter(black_box(COMPLEX_FILTER), Some(&reg)).expect("parses");
            evaluate(&f, black_box(&user), &ctx)
        })
    });
    c.bench_function("complex value path or/and: evaluate", |b| {
        b.iter(|| evaluate(black_box(&complex), black_box(&user), &ctx))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
