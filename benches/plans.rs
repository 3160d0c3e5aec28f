//! What durable plans cost, and how fast pending work drains once the legacy app recovers.
//!
//! The gateway runs as its own `scimgate serve` process (this build's binary, release when run
//! by `cargo bench`) on a SQLite file with the draftt profile, pinned to CPU 0 when `taskset`
//! exists; the demo legacy app and the load generator run in this process, on CPU 1. Gateway
//! CPU per request comes from the kernel's accounting of that process (`/proc/PID/stat`).
//!
//! 1. Per-request cost, in alternating rounds (medians of 3):
//!    - a read: GET /Users/{id};
//!    - single-call write: PATCH displayName (one legacy write, never a plan);
//!    - multi-step write: PATCH active=false, whose `on_deactivate` revokes the sessions (a
//!      plan: recorded before its first call, marked done after its last), then active=true
//!      to set up the next round. Figures are per pair.
//!
//!    With `BENCH_BASELINE_BIN=/path/to/an/older/scimgate` the same rounds run against that
//!    binary too, alternating, and the ratios new/baseline are printed: what the plan record
//!    adds to the multi-step write, and (should be nothing) to the single-call one.
//! 2. Recovery: 1,000 deactivations whose session revoke answers 503 leave 1,000 pending
//!    plans; then the legacy app recovers, and the time until the store holds no pending plan
//!    is measured (it includes waiting for each plan's next attempt, at most
//!    `backoff_max_ms` = 1 s here).
//!
//! Run: `cargo bench --bench plans` (`BENCH_REQUESTS`, default 2000 per round).

#[path = "../tests/common/mod.rs"]
mod common;

use common::Scim;
use common::process::{GatewayProcess, Scratch};
use scimgate::demo::{DemoApp, DemoConfig};
use scimgate::store::{PlanStore, Store};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const REVOKE: &str = "POST /api/v1/users/{id}/sessions/revoke";
const CONCURRENCY: usize = 4;
const ROUNDS: usize = 3;
const RECOVERY_PLANS: usize = 1000;

fn write_config(dir: &Path, db: &str, plans: bool) -> PathBuf {
    let repo = env!("CARGO_MANIFEST_DIR");
    let plans = if plans {
        "[plans]\nbackoff_initial_ms = 500\nbackoff_max_ms = 1000\npoll_ms = 100\nmax_attempts = 20\n"
    } else {
        ""
    };
    let file = dir.join(format!("config-{db}.toml"));
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\ntokens = [\"bench-token-0123456789abcdef0123456789\"]\n\
             [store]\nurl = \"sqlite://{}\"\n[log]\nlevel = \"error\"\n\
             [admin]\nenabled = false\n\
             [profile]\nname = \"draftt\"\ndir = '{repo}'\n{plans}",
            dir.join(format!("{db}.db")).display()
        ),
    )
    .unwrap();
    file
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

/// Runs `per_client` operations of `kind` on each of `CONCURRENCY` clients (one user each).
/// Returns the wall time.
async fn drive(scim: &Scim, ids: &[String], per_client: usize, kind: Kind) -> Duration {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in ids.iter().take(CONCURRENCY) {
        let scim = scim.clone();
        let path = format!("/Users/{id}");
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                if let Kind::Get = kind {
                    let r = scim.get(&path).await;
                    assert_eq!(r.status, 200, "{}", r.text);
                    continue;
                }
                let bodies = match kind {
                    Kind::Get => Vec::new(),
                    Kind::Single => vec![patch(json!([
                        {"op": "replace", "path": "displayName", "value": format!("Name {i}")}
                    ]))],
                    Kind::Multi => vec![
                        patch(json!([{"op": "replace", "path": "active", "value": false}])),
                        patch(json!([{"op": "replace", "path": "active", "value": true}])),
                    ],
                };
                for b in bodies {
                    let r = scim.patch(&path, &b).await;
                    assert_eq!(r.status, 200, "{}", r.text);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// GET /Users/{id}: a read (no write, no plan).
    Get,
    Single,
    Multi,
}

struct Figures {
    /// Gateway CPU per operation (per pair for Multi).
    cpu_us: f64,
    /// Operations (pairs) per second.
    rate: f64,
}

/// `scimgate serve` (`bin`) on CPU 0 against the demo app at `legacy`.
fn start(bin: &Path, config: &Path, legacy: &str) -> GatewayProcess {
    GatewayProcess::start_pinned(
        bin,
        0,
        config,
        &[
            ("SCIMGATE_BACKEND__BASE_URL", legacy),
            ("SCIMGATE_BACKEND__AUTH__VALUE", "legacy-key"),
        ],
    )
}

async fn round(gw: &GatewayProcess, scim: &Scim, ids: &[String], n: usize, kind: Kind) -> Figures {
    let per_client = n / CONCURRENCY;
    let cpu0 = gw.cpu();
    let wall = drive(scim, ids, per_client, kind).await;
    let cpu = gw.cpu() - cpu0;
    let ops = (per_client * CONCURRENCY) as f64;
    Figures {
        cpu_us: cpu.as_secs_f64() * 1e6 / ops,
        rate: ops / wall.as_secs_f64(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn users(scim: &Scim, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}{i}@bench.example");
        let r = scim
            .post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": name, "active": true,
                        "emails": [{"value": name, "type": "work", "primary": true}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json["id"].as_str().unwrap().to_string());
    }
    ids
}

async fn per_request(legacy: &DemoApp, scratch: &Scratch, requests: usize) {
    let this = PathBuf::from(env!("CARGO_BIN_EXE_scimgate"));
    let baseline = std::env::var("BENCH_BASELINE_BIN").ok().map(PathBuf::from);
    let mut bins = vec![("new", this, true)];
    if let Some(b) = baseline {
        bins.push(("baseline", b, false));
    }
    let mut gws = Vec::new();
    for (name, bin, plans) in &bins {
        let config = write_config(&scratch.0, name, *plans);
        let gw = start(bin, &config, &legacy.base_url());
        let scim = Scim::new(&gw.scim_url, "bench-token-0123456789abcdef0123456789");
        let ids = users(&scim, &format!("{name}-"), CONCURRENCY).await;
        // Warm-up: connections, caches, the SQLite file.
        round(&gw, &scim, &ids, 200, Kind::Single).await;
        round(&gw, &scim, &ids, 100, Kind::Multi).await;
        gws.push((*name, gw, scim, ids));
    }
    for kind in [Kind::Get, Kind::Single, Kind::Multi] {
        let n = match kind {
            Kind::Get | Kind::Single => requests,
            Kind::Multi => requests / 2,
        };
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); gws.len()];
        let mut rate: Vec<Vec<f64>> = vec![Vec::new(); gws.len()];
        for _ in 0..ROUNDS {
            for (i, (_, gw, scim, ids)) in gws.iter().enumerate() {
                let f = round(gw, scim, ids, n, kind).await;
                cpu[i].push(f.cpu_us);
                rate[i].push(f.rate);
            }
        }
        let unit = match kind {
            Kind::Get => "GET /Users/{id} (a read)",
            Kind::Single => "PATCH displayName (one legacy write, no plan)",
            Kind::Multi => "PATCH active=false + active=true (deactivation plan of 1 step)",
        };
        println!("\n{unit}, {n} per round, {CONCURRENCY} clients, median of {ROUNDS} rounds:");
        for (i, (name, ..)) in gws.iter().enumerate() {
            println!(
                "  {name:<9} gateway CPU {:>7.1} µs/op   {:>7.0} ops/s",
                median(cpu[i].clone()),
                median(rate[i].clone())
            );
        }
        if gws.len() == 2 {
            println!(
                "  new/baseline: CPU ×{:.2}, throughput ×{:.2}",
                median(cpu[0].clone()) / median(cpu[1].clone()),
                median(rate[0].clone()) / median(rate[1].clone())
            );
        }
    }
    // The single-call writes recorded no plan; the multi-step ones one per user (its slot).
    let store = Store::open(&format!("sqlite://{}", scratch.0.join("new.db").display()))
        .await
        .unwrap();
    let c = store.plan_counts().await.unwrap();
    let rows = store
        .plans_in(&[scimgate::store::PlanState::Done], 1000)
        .await
        .unwrap()
        .len();
    println!(
        "  plan rows kept after all rounds: {rows} done (one per user and slot), {} pending",
        c.pending
    );
    store.close().await;
}

async fn recovery(legacy: &DemoApp, scratch: &Scratch) {
    let legacy_api = common::Legacy::new(&legacy.base_url(), "legacy-key");
    let config = write_config(&scratch.0, "recovery", true);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_scimgate"));
    let gw = start(&bin, &config, &legacy.base_url());
    let scim = Scim::new(&gw.scim_url, "bench-token-0123456789abcdef0123456789");
    let ids = users(&scim, "rec-", RECOVERY_PLANS).await;
    let r = legacy_api
        .call(
            "POST",
            "/__demo/faults",
            Some(&json!({"mode": "status", "status": 503, "route": REVOKE, "count": 1_000_000})),
        )
        .await;
    assert_eq!(r.status, 200);
    let disable = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    let mut tasks = Vec::new();
    for chunk in ids.chunks(RECOVERY_PLANS / 8) {
        let (scim, chunk, body) = (scim.clone(), chunk.to_vec(), disable.clone());
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                let r = scim.patch(&format!("/Users/{id}"), &body).await;
                assert_eq!(r.status, 503, "{}", r.text);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = Store::open(&format!(
        "sqlite://{}",
        scratch.0.join("recovery.db").display()
    ))
    .await
    .unwrap();
    assert_eq!(
        store.plan_counts().await.unwrap().pending,
        RECOVERY_PLANS as u64
    );
    // Let the worker fail a few more attempts, as it would during an outage.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = gw.cpu();
    let recovered = Instant::now();
    let r = legacy_api
        .call("POST", "/__demo/faults", Some(&json!({"mode": "none"})))
        .await;
    assert_eq!(r.status, 200);
    let mut first_done = None;
    loop {
        let pending = store.plan_counts().await.unwrap().pending;
        if first_done.is_none() && pending < RECOVERY_PLANS as u64 {
            first_done = Some(recovered.elapsed());
        }
        if pending == 0 {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(120),
            "{pending} still pending"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = recovered.elapsed();
    let cpu = gw.cpu() - cpu0;
    let first = first_done.unwrap_or(all);
    println!(
        "\nRecovery: {RECOVERY_PLANS} pending deactivation plans; the legacy app recovers at t=0:\n  \
         first plan done at {:.0} ms (waiting for its next attempt), all done at {:.0} ms;\n  \
         drain after the first: {:.0} plans/s; gateway CPU {:.0} µs per plan",
        first.as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        RECOVERY_PLANS as f64 / (all - first).as_secs_f64().max(1e-3),
        cpu.as_secs_f64() * 1e6 / RECOVERY_PLANS as f64,
    );
    let revokes = legacy_api.get("/__demo/state").await["by_route"][REVOKE].clone();
    println!("  session revoke calls in all (failed ones included): {revokes}");
    store.close().await;
}

fn main() {
    // `cargo bench` passes harness flags; this bench takes none.
    // The load generator and demo app on CPU 1 (a no-op where taskset is missing).
    let _ = Command::new("taskset")
        .args(["-a", "-cp", "1", &std::process::id().to_string()])
        .output();
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("legacy-key"))
            .await
            .unwrap();
        let scratch = Scratch::new("bench-plans");
        per_request(&legacy, &scratch, requests).await;
        recovery(&legacy, &scratch).await;
    });
}
