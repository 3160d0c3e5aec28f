//! Store costs on SQLite (a temp file, WAL): adding and removing one member of a group of
//! 10 vs 100,000 members (should not differ: the change touches only that member's row),
//! and verifying an API key (the per-request auth cost).
//!
//! `gateway_patch_add_1_remove_1` measures the same through the whole gateway: one SCIM
//! `PATCH /Groups/{id}` that adds one member and removes another, over a real listener, on a
//! gateway-managed group (`groups = "managed"`, the profile in
//! `tests/fixtures/profiles/managed/`) of 10 vs 100,000 members. Each request verifies the
//! added member with the legacy app, writes both memberships and runs both users'
//! `on_membership_change` hooks and plans (legacy calls included). After criterion's figures
//! it prints the mean of each size and their ratio, from the same run.
//!
//! Run: `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::store::{GroupStore, KeyStore, ScimId, Store};
use serde_json::json;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn sqlite_store(rt: &tokio::runtime::Runtime, name: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("scimgate-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    (rt.block_on(Store::open(&url)).unwrap(), dir)
}

fn membership(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("add_then_remove_one_member");
    for size in [10usize, 100_000] {
        let (store, dir) = sqlite_store(&rt, &format!("members-{size}"));
        let group = rt.block_on(async {
            let group = store.create_group("bench", None).await.unwrap();
            let members: Vec<ScimId> = (0..size).map(|i| ScimId(format!("u{i:06}"))).collect();
            store.add_members(&group.id, &members).await.unwrap();
            group.id
        });
        let one = [ScimId::from("u-newcomer")];
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    black_box(store.add_members(&group, &one).await.unwrap());
                    black_box(store.remove_members(&group, &one).await.unwrap());
                })
            })
        });
        rt.block_on(store.close());
        let _ = std::fs::remove_dir_all(dir);
    }
    g.finish();
}

fn verify_key(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, dir) = sqlite_store(&rt, "keys");
    let (_, key) = rt.block_on(store.create_key("bench", None)).unwrap();
    c.bench_function("verify_api_key", |b| {
        b.iter(|| rt.block_on(async { black_box(store.verify(&key).await.unwrap()) }))
    });
    rt.block_on(store.close());
    let _ = std::fs::remove_dir_all(dir);
}

/// One gateway with a managed group of `size` members, ready for the PATCH bench.
struct ManagedGroup {
    stack: DemoStack,
    scim: common::Scim,
    group: String,
    /// Two users of the legacy app; each request adds one and removes the other, in turn.
    users: [String; 2],
    dir: PathBuf,
}

async fn managed_group(size: usize) -> ManagedGroup {
    let dir = std::env::temp_dir().join(format!("scimgate-bench-gw-{size}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("gateway.db").display());
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/profiles/managed/scimgate.toml");
    let stack = DemoStack::start(DemoOptions {
        config,
        store_url: Some(url.clone()),
        ..DemoOptions::for_tests("managed")
    })
    .await
    .unwrap();
    let scim = common::Scim::new(&stack.scim_url, &stack.token);
    let users = ["a", "b"].map(|n| {
        stack
            .legacy
            .state
            .create_user(
                &json!({"username": format!("bench-{n}"), "email": format!("{n}@bench.example")}),
            )
            .unwrap()
            .to_string()
    });
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "app-engineering",
                    "members": [{"value": users[1]}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let group = r.json["id"].as_str().unwrap().to_string();
    // The rest of the members straight into the store: they need not be legacy users, since
    // a request only ever touches the members it names.
    let store = Store::open(&url).await.unwrap();
    let others: Vec<ScimId> = (1..size).map(|i| ScimId(format!("seed-{i:06}"))).collect();
    store
        .add_members(&ScimId(group.clone()), &others)
        .await
        .unwrap();
    store.close().await;
    ManagedGroup {
        stack,
        scim,
        group,
        users,
        dir,
    }
}

/// Sends `iters` PATCHes (add one user, remove the other, alternating) and returns the time.
async fn patch_add_remove(g: &ManagedGroup, iters: u64, turn: &mut usize) -> Duration {
    let path = format!("/Groups/{}", g.group);
    let started = Instant::now();
    for _ in 0..iters {
        let (add, remove) = (&g.users[*turn % 2], &g.users[(*turn + 1) % 2]);
        *turn += 1;
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": add}]},
            {"op": "remove", "path": format!("members[value eq \"{remove}\"]")}
        ]});
        let r = g.scim.patch(&path, &body).await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    started.elapsed()
}

fn gateway_membership(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes = [10usize, 100_000];
    let groups: Vec<ManagedGroup> = sizes
        .iter()
        .map(|n| rt.block_on(managed_group(*n)))
        .collect();
    let mut totals = vec![(Duration::ZERO, 0u64); sizes.len()];
    let mut g = c.benchmark_group("gateway_patch_add_1_remove_1");
    for (i, size) in sizes.iter().enumerate() {
        let mut turn = 0;
        g.bench_with_input(BenchmarkId::from_parameter(size), size, |b, _| {
            b.iter_custom(|iters| {
                let spent = rt.block_on(patch_add_remove(&groups[i], iters, &mut turn));
                totals[i].0 += spent;
                totals[i].1 += iters;
                spent
            })
        });
    }
    g.finish();
    let mean = |(t, n): (Duration, u64)| t.as_secs_f64() * 1e6 / n.max(1) as f64;
    let (small, large) = (mean(totals[0]), mean(totals[1]));
    println!(
        "gateway PATCH add 1 + remove 1 on a managed group (mean over every request of this \
         run, warm-up included): {} members {small:.0} µs, {} members {large:.0} µs, \
         ratio {:.2}",
        sizes[0],
        sizes[1],
        large / small
    );
    for group in groups {
        let dir = group.dir.clone();
        rt.block_on(group.stack.gateway.shutdown());
        let _ = std::fs::remove_dir_all(dir);
    }
}

criterion_group!(benches, membership, verify_key, gateway_membership);
criterion_main!(benches);
