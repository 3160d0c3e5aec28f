//! PATCH engine costs: a typical Entra user update, and group membership changes with and
//! without loading the group's member list.
//!
//! Run: `cargo bench --bench patch -- --warm-up-time 1 --measurement-time 3`

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use scimgate::scim::patch::{apply_patch, parse_patch, split_members};
use scimgate::scim::{SchemaContext, SchemaRegistry};
use serde_json::{Value, json};
use std::hint::black_box;

/// Entra's six-operation user update ("Requests to replace multiple attributes", without the
/// aadOptscim062020 flag), verbatim from Microsoft's documentation.
const ENTRA_SIX_OPS: &str =
    include_str!("../tests/fixtures/entra/known-issues-replace-multiple-legacy.json");
/// The user as Entra created it (POST /Users sample from the same documentation).
const ENTRA_USER: &str = include_str!("../tests/fixtures/entra/develop-create-user.json");

fn add_one_member() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members",
                        "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]
    })
}

fn group_of(n: usize) -> Value {
    let members: Vec<Value> = (0..n)
        .map(|i| json!({"value": format!("{i:08x}-5c52-4b1a-8a9e-0e5a0a0e4c0b"), "type": "User"}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "a99962b9f99d4c4fac67",
        "displayName": "All staff",
        "members": members,
    })
}

fn user_update(c: &mut Criterion) {
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "User").expect("User resource type");
    let body: Value = serde_json::from_str(ENTRA_SIX_OPS).expect("fixture JSON");
    let mut user: Value = serde_json::from_str(ENTRA_USER).expect("fixture JSON");
    user["id"] = json!("48af03ac28ad4fb88478");
    c.bench_function("user/entra_6_ops/parse+apply", |b| {
        b.iter_batched(
            || user.clone(),
            |mut u| {
                let req = parse_patch(black_box(&body), &ctx).expect("valid PATCH");
                apply_patch(&mut u, &req, &ctx).expect("applies");
                u
            },
            BatchSize::SmallInput,
        )
    });
}

fn group_membership(c: &mut Criterion) {
    let reg = SchemaRegistry::core();
    let ctx = SchemaContext::new(&reg, "Group").expect("Group resource type");
    let body = add_one_member();

    // The gateway's path: the group's members are never read, whatever their number. The
    // group is built only to show that its size is not an input.
    let mut split = c.benchmark_group("group/add_1_member/parse+split_members");
    for n in [10usize, 100_000] {
        let group = group_of(n);
        split.bench_with_input(BenchmarkId::from_parameter(n), &group, |b, _group| {
            b.iter(|| {
                let req = parse_patch(black_box(&body), &ctx).expect("valid PATCH");
                split_members(req, &ctx).expect("splits")
            })
        });
    }
    split.finish();

    // For contrast: applying the same PATCH to the full group JSON.
    let mut apply = c.benchmark_group("group/add_1_member/parse+apply_patch_full_group");
    apply.sample_size(20);
    for n in [10usize, 100_000] {
        let group = group_of(n);
        apply.bench_with_input(BenchmarkId::from_parameter(n), &group, |b, group| {
            b.iter_batched(
                || group.clone(),
                |mut g| {
                    let req = parse_patch(black_box(&body), &ctx).expect("valid PATCH");
                    apply_patch(&mut g, &req, &ctx).expect("applies");
                    g
                },
                BatchSize::LargeInput,
            )
        });
    }
    apply.finish();
}

criterion_group!(benches, user_update, group_membership);
criterion_main!(benches);
