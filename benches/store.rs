//! Store costs on SQLite (a temp file, WAL): adding and removing one member of a group of
//! 10 vs 100,000 members (should not differ: the change touches only that member's row),
//! and verifying an API key (the per-request auth cost).
//!
//! Run: `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scimgate::store::{GroupStore, KeyStore, ScimId, Store};
use std::hint::black_box;

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

criterion_group!(benches, membership, verify_key);
criterion_main!(benches);
