//! Soak: does `scimgate serve` stay flat under hours-like load while being attacked?
//!
//! The gateway runs as its own `scimgate serve` process (release when run by `cargo bench`),
//! default profile, SQLite file store, pinned to CPU 0 when `taskset` exists; the demo legacy
//! app and the load generator run in this process (CPU 1). For `BENCH_SOAK_SECS` (default
//! 600) it sends mixed Entra traffic at `BENCH_SOAK_RPS` (default 1000) requests/s:
//! 40 % GET /Users/{id}, 20 % filter `userName eq`, 10 % create (a filter query, then POST),
//! 20 % PATCH replace title, 10 % group PATCH adding and removing a member. In the background:
//! 200 slow clients that open a connection, send half a request line and wait (reconnecting
//! when closed), and wrong Basic passwords (a real user and unknown ones) at 20/s from
//! 127.0.0.2–127.0.0.9.
//!
//! Every 10 s it prints the gateway's RSS, open file descriptors, the SQLite WAL's size and
//! the requests served and failed; at the end, the baseline and final figures. Valid requests
//! must never fail; RSS should stay flat, the WAL within `[store] wal_max_bytes` (16 MiB here)
//! and the descriptors back at their baseline once the background stops.
//!
//! Run: `cargo bench --bench soak` (`BENCH_SOAK_SECS=60` for a short run;
//! `BENCH_SOAK_MIX=post` for creates only, the load that grows the SQLite WAL the most).

#[path = "../tests/common/mod.rs"]
mod common;

use common::Scim;
use common::process::{GatewayProcess, Scratch, rss_mb};
use scimgate::demo::{DemoApp, DemoConfig};
use scimgate::store::{BasicCredentials, Store};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKERS: usize = 32;
const SLOW_CLIENTS: usize = 200;
const BAD_PASSWORDS_PER_SEC: u64 = 20;
const WAL_MAX: u64 = 16 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn wal_mb(db: &Path) -> f64 {
    std::fs::metadata(format!("{}-wal", db.display())).map_or(0.0, |m| m.len() as f64 / 1048576.0)
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(soak());
}

async fn soak() {
    let secs = env_u64("BENCH_SOAK_SECS", 600);
    let rps = env_u64("BENCH_SOAK_RPS", 1000);
    let scratch = Scratch::new("soak");
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("legacy-key"))
        .await
        .expect("demo app");
    let db = scratch.0.join("soak.db");
    let store_url = format!("sqlite://{}", db.display());
    {
        let store = Store::open(&store_url).await.expect("store");
        store
            .set_password("entra", "the-right-password-123")
            .await
            .expect("basic user");
        store.close().await;
    }
    let config = scratch.0.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_ms = 5000\n\
             [auth]\ntokens = [\"soak-token-0123456789abcdef0123456789\"]\n\
             [store]\nurl = \"{store_url}\"\nwal_max_bytes = {WAL_MAX}\n[log]\nlevel = \"error\"\n\
             [admin]\nenabled = false\n\
             [profile]\nname = \"default\"\ndir = '{}'\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let gw = GatewayProcess::start_pinned(
        Path::new(env!("CARGO_BIN_EXE_scimgate")),
        0,
        &config,
        &[
            ("SCIMGATE_BACKEND__BASE_URL", legacy.base_url().as_str()),
            ("SCIMGATE_BACKEND__AUTH__VALUE", "legacy-key"),
        ],
    );
    let pid = gw.pid();
    let scim = Scim::new(&gw.scim_url, "soak-token-0123456789abcdef0123456789");
    let addr: SocketAddr = gw
        .scim_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("address");

    // Seed: 200 users and 10 groups.
    let mut ids = Vec::new();
    for i in 0..200 {
        let r = scim.post("/Users", &user(&format!("seed{i}"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json["id"].as_str().unwrap().to_string());
    }
    let mut groups = Vec::new();
    for g in 0..10 {
        let r = scim
            .post(
                "/Groups",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("soak-{g}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        groups.push(r.json["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base_rss = rss_mb(pid);
    let base_fds = fds(pid);
    println!(
        "soak: {secs} s at {rps} req/s; baseline RSS {base_rss:.1} MB, {base_fds} fds, WAL {:.1} MB",
        wal_mb(&db)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let ids = Arc::new(ids);
    let groups = Arc::new(groups);
    let mut tasks = Vec::new();
    let per_worker = Duration::from_secs_f64(WORKERS as f64 / rps as f64);
    let posts_only = std::env::var("BENCH_SOAK_MIX").is_ok_and(|m| m == "post");
    for w in 0..WORKERS {
        let (scim, stop, counts, ids, groups) = (
            scim.clone(),
            stop.clone(),
            counts.clone(),
            ids.clone(),
            groups.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_worker);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = w as u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let id = &ids[(n as usize * 7) % ids.len()];
                // BENCH_SOAK_MIX=post: creates only (each after its filter query), the load
                // that grew the WAL without bound before it was checkpointed.
                let kind = if posts_only { 6 } else { n % 10 };
                let ok = match kind {
                    0..=3 => scim.get(&format!("/Users/{id}")).await.status == 200,
                    4 | 5 => {
                        let f = common::enc(&format!("userName eq \"seed{}\"", n % 200));
                        let r = scim.get(&format!("/Users?filter={f}")).await;
                        r.status == 200 && r.json["totalResults"] == 1
                    }
                    6 => {
                        let name = format!("soak-{w}-{n}");
                        let f = common::enc(&format!("userName eq \"{name}\""));
                        let q = scim.get(&format!("/Users?filter={f}")).await;
                        q.status == 200 && scim.post("/Users", &user(&name)).await.status == 201
                    }
                    7 | 8 => {
                        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "Replace", "path": "title", "value": format!("t{n}")}]});
                        scim.patch(&format!("/Users/{id}"), &body).await.status == 200
                    }
                    _ => {
                        let g = &groups[(n as usize) % groups.len()];
                        let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
                        let rm = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": id}]}]});
                        let a = scim.patch(&format!("/Groups/{g}"), &add).await.status;
                        let r = scim.patch(&format!("/Groups/{g}"), &rm).await.status;
                        matches!(a, 200 | 204) && matches!(r, 200 | 204)
                    }
                };
                if ok {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Slow clients: half a request line, then silence; reconnect when the gateway closes.
    let mut background = Vec::new();
    for _ in 0..SLOW_CLIENTS {
        let stop = stop.clone();
        background.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let _ = s.write_all(b"GET /scim/v2/Users HTTP/1.1\r\n").await;
                let mut buf = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
            }
        }));
    }
    // Wrong passwords: the real user and unknown ones, from 8 addresses.
    let bad = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_millis(1000 / BAD_PASSWORDS_PER_SEC));
            let mut n: u64 = 0;
            let mut refused = [0u64; 600];
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let user = if n.is_multiple_of(2) {
                    "entra".to_string()
                } else {
                    format!("ghost{n}")
                };
                let from = [127, 0, 0, 2 + (n % 8) as u8];
                let status = bad_login(from, addr, &user, &format!("wrong{n}")).await;
                refused[usize::from(status) % 600] += 1;
            }
            (refused[401], refused[429], refused[503])
        })
    };

    let started = Instant::now();
    let mut max_rss = base_rss;
    let mut max_wal: f64 = 0.0;
    let mut last_ok = 0;
    println!("   s   req/s  failed   RSS MB  fds  WAL MB");
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ok = counts.ok.load(Ordering::Relaxed);
        let failed = counts.failed.load(Ordering::Relaxed);
        let (rss, f, wal) = (rss_mb(pid), fds(pid), wal_mb(&db));
        max_rss = max_rss.max(rss);
        max_wal = max_wal.max(wal);
        println!(
            "{:4} {:7.0} {:7} {:8.1} {:4} {:7.1}",
            started.elapsed().as_secs(),
            (ok - last_ok) as f64 / 10.0,
            failed,
            rss,
            f,
            wal
        );
        last_ok = ok;
    }
    let load_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let (b401, b429, b503) = bad.await.unwrap_or_default();
    for t in background {
        t.abort();
    }
    // The load generator's pooled connections go too (its clients are dropped), the
    // gateway's header timeout closes what the slow clients left half-open, and its own
    // pooled connections to the legacy app close after their 50 s idle timeout (the pool
    // looks every 50 s, so up to ~100 s).
    drop(scim);
    let stopped = Instant::now();
    while fds(pid) > base_fds + 2 && stopped.elapsed() < Duration::from_secs(130) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settled = stopped.elapsed().as_secs();
    // What the remaining descriptors are: inbound SCIM connections, or the gateway's own
    // pooled connections to the legacy app.
    let legacy_port = legacy
        .base_url()
        .rsplit(':')
        .next()
        .unwrap_or("")
        .to_string();
    if let Ok(out) = Command::new("ss").args(["-tanpH"]).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .collect();
        let to_legacy = mine
            .iter()
            .filter(|l| {
                l.split_whitespace()
                    .nth(4)
                    .is_some_and(|p| p.ends_with(&format!(":{legacy_port}")))
            })
            .count();
        println!(
            "gateway sockets now: {} in all, {to_legacy} to the legacy app (its pool), {} other",
            mine.len(),
            mine.len() - to_legacy
        );
    }
    let ok = counts.ok.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let elapsed = load_secs;
    println!(
        "soak done: {ok} valid operations ({:.0}/s), {failed} failed; RSS {base_rss:.1} → {:.1} MB (max {max_rss:.1}); fds {base_fds} → {} {settled} s after the load stopped; WAL max {max_wal:.1} MB (bound {} MB); wrong passwords answered 401 ×{b401}, 429 ×{b429}, 503 ×{b503}",
        ok as f64 / elapsed,
        rss_mb(pid),
        fds(pid),
        WAL_MAX >> 20,
    );
    drop(gw);
    legacy.shutdown().await;
}

fn user(name: &str) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
           "active": true, "displayName": name,
           "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}]})
}

async fn bad_login(from: [u8; 4], to: SocketAddr, user: &str, password: &str) -> u16 {
    use base64::Engine as _;
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
        return 0;
    };
    if sock.bind(SocketAddr::from((from, 0))).is_err() {
        return 0;
    }
    let Ok(mut s) = sock.connect(to).await else {
        return 0;
    };
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let req = format!(
        "GET /scim/v2/Users?count=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Basic {cred}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
