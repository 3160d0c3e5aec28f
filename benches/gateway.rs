//! What the gateway costs on the wire: the same operation sent through scimgate (SCIM, bearer
//! token, mapping scripts, one legacy call) and straight to the demo legacy app's own API, in
//! one process and one run, so both sides see the same machine state.
//!
//! Cases: GET one user; a `userName eq` filter, which the default profile pushes down to the
//! legacy `?username=`; POST a new user (Entra's create body, unique userName and e-mail per
//! request). Each side runs twice, alternately (direct, gateway, direct, gateway), each run
//! after a warm-up; the summary is the mean of both runs. Besides req/s and latency it gives
//! the process's CPU time per request: on a shared machine req/s moves with whatever else
//! runs, CPU per request much less, and the gateway's own cost is the difference of the sides.
//!
//! Run: `cargo bench --bench gateway` (env `BENCH_CONCURRENCY`, default 32 client tasks;
//! `BENCH_SECONDS`, default 5 s per run). A run with any failed request exits non-zero.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scimgate::app::{DemoOptions, DemoStack};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;
type Req = Request<Full<Bytes>>;

/// Users seeded before the load; GET and filter requests cycle through them. More than one
/// legacy page (200), so a filter evaluated in the gateway would show as extra legacy calls.
const SEEDED_USERS: usize = 1000;
const WARM_UP: Duration = Duration::from_secs(1);
/// Runs per side. The sides alternate so slow drift (store growth, other work on the
/// machine) hits both alike.
const RUNS: usize = 2;

fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(settings))
}

struct Settings {
    concurrency: usize,
    duration: Duration,
}

impl Settings {
    fn from_env() -> Result<Settings, BoxError> {
        let concurrency =
            match std::env::var("BENCH_CONCURRENCY") {
                Ok(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("BENCH_CONCURRENCY={v:?}: expected a positive integer")
                })?,
                Err(_) => 32,
            };
        let seconds = match std::env::var("BENCH_SECONDS") {
            Ok(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| format!("BENCH_SECONDS={v:?}: expected a positive number"))?,
            Err(_) => 5.0,
        };
        Ok(Settings {
            concurrency,
            duration: Duration::from_secs_f64(seconds),
        })
    }
}

async fn bench(settings: Settings) -> Result<(), BoxError> {
    // The gateway's store is a SQLite file, as in production (the audit entry of each write
    // goes there); the file lives in a temp dir removed at the end.
    let dir = std::env::temp_dir().join(format!("scimgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let stack = DemoStack::start(DemoOptions {
        store_url: Some(format!("sqlite://{}", dir.join("bench.db").display())),
        ..DemoOptions::for_tests("default")
    })
    .await
    .map_err(|e| e.join("; "))?;
    let result = run(&stack, settings).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(stack: &DemoStack, settings: Settings) -> Result<(), BoxError> {
    let users = seed_users(stack)?;
    let ep = Arc::new(Endpoints::of(stack));
    let mut connector = HttpConnector::new();
    // As the gateway's own backend client does; Nagle would add delay to both sides.
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.concurrency)
        .build(connector);
    // Shared by every request of the bench, so created users never collide.
    let seq = Arc::new(AtomicU64::new(0));

    println!(
        "scimgate gateway bench: {} client tasks, {} s per run after a {} s warm-up, \
         {RUNS} runs per side alternating direct/gateway, tokio multi-thread runtime \
         ({} workers)",
        settings.concurrency,
        settings.duration.as_secs_f64(),
        WARM_UP.as_secs_f64(),
        tokio::runtime::Handle::current().metrics().num_workers(),
    );
    println!(
        "NOTE: the gateway, the demo legacy app and this load generator share ONE process \
         and its cores;\n      a gateway request also pays for the legacy call it makes.\n"
    );
    print_memory("before load", &client, &ep).await;

    let cases = [
        get_case(&ep, &users),
        filter_case(&ep, &users),
        create_case(&ep),
    ];
    let mut results = Vec::new();
    let mut failed = 0;
    for case in &cases {
        preflight(&client, &ep, case, &seq).await?;
        let (mut direct, mut gateway) = (Vec::new(), Vec::new());
        for run in 1..=RUNS {
            for (target, out) in [(&case.direct, &mut direct), (&case.gateway, &mut gateway)] {
                let stats = measure(&client, target, &seq, &settings).await;
                print_run(case.name, target.side, run, &stats);
                failed += stats.errors.values().sum::<u64>();
                out.push(stats);
            }
        }
        results.push((case.name, direct, gateway));
        print_memory(&format!("after {}", case.name), &client, &ep).await;
    }
    print_summary(&results);
    if failed > 0 {
        let bar = "!".repeat(80);
        println!(
            "\n{bar}\n!!! BENCH INVALID: {failed} requests failed (see above); \
             these figures measure errors, not the gateway\n{bar}"
        );
        return Err(format!("{failed} requests failed").into());
    }
    println!("\nall responses were 2xx (no errors)");
    Ok(())
}

/// Seeds the legacy app in-process (no HTTP); returns (legacy id, username) per user.
fn seed_users(stack: &DemoStack) -> Result<Vec<(u64, String)>, BoxError> {
    (0..SEEDED_USERS)
        .map(|i| {
            let name = format!("bench_user_{i}");
            let id = stack
                .legacy
                .state
                .create_user(&json!({
                    "username": name,
                    "email": format!("{name}@example.com"),
                    "first_name": "Bench",
                    "last_name": format!("User {i}"),
                    "external_id": format!("bench-ext-{i}"),
                }))
                .map_err(|e| format!("seeding {name}: {e:?}"))?;
            Ok((id, name))
        })
        .collect()
}

/// Addresses and credentials of the demo stack, owned so request builders can run on any
/// worker task.
struct Endpoints {
    scim_url: String,
    bearer: String,
    legacy_url: String,
    legacy_key: String,
}

impl Endpoints {
    fn of(stack: &DemoStack) -> Endpoints {
        Endpoints {
            scim_url: stack.scim_url.clone(),
            bearer: format!("Bearer {}", stack.token),
            legacy_url: stack.legacy_url.clone(),
            legacy_key: stack.legacy_key.clone(),
        }
    }

    /// A request to the gateway: `path` is under the SCIM root.
    fn scim(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Req, BoxError> {
        let b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.scim_url))
            .header("authorization", &self.bearer);
        with_body(b, "application/scim+json", body)
    }

    /// A request straight to the legacy app's own API.
    fn legacy(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Req, BoxError> {
        let b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.legacy_url))
            .header("x-api-key", &self.legacy_key);
        with_body(b, "application/json", body)
    }
}

fn with_body(
    b: http::request::Builder,
    content_type: &str,
    body: Option<&Value>,
) -> Result<Req, BoxError> {
    Ok(match body {
        Some(v) => b
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(serde_json::to_vec(v)?)))?,
        None => b.body(Full::new(Bytes::new()))?,
    })
}

/// Builds the n-th request of one side (n is unique across the whole bench).
type MakeRequest = Box<dyn Fn(u64) -> Result<Req, BoxError> + Send + Sync>;

/// One side of a comparison.
struct Target {
    side: &'static str,
    make: MakeRequest,
    /// What a correct answer looks like; checked on the first response only, so the load
    /// cannot be measuring a cheap error page.
    looks_right: fn(&Value) -> bool,
}

/// The same operation, direct and through the gateway.
struct Case {
    name: &'static str,
    direct: Arc<Target>,
    gateway: Arc<Target>,
}

fn get_case(ep: &Arc<Endpoints>, users: &[(u64, String)]) -> Case {
    let ids: Arc<[u64]> = users.iter().map(|(id, _)| *id).collect();
    let (ep_d, ids_d) = (ep.clone(), ids.clone());
    let (ep_g, ids_g) = (ep.clone(), ids);
    Case {
        name: "GET user by id",
        direct: Arc::new(Target {
            side: "direct",
            make: Box::new(move |n| {
                let id = ids_d[n as usize % ids_d.len()];
                ep_d.legacy("GET", &format!("/api/v1/users/{id}"), None)
            }),
            looks_right: |v| v["username"].is_string(),
        }),
        gateway: Arc::new(Target {
            side: "gateway",
            make: Box::new(move |n| {
                let id = ids_g[n as usize % ids_g.len()];
                ep_g.scim("GET", &format!("/Users/{id}"), None)
            }),
            looks_right: |v| v["userName"].is_string(),
        }),
    }
}

fn filter_case(ep: &Arc<Endpoints>, users: &[(u64, String)]) -> Case {
    let names: Arc<[String]> = users.iter().map(|(_, name)| name.clone()).collect();
    let (ep_d, names_d) = (ep.clone(), names.clone());
    let (ep_g, names_g) = (ep.clone(), names);
    Case {
        name: "filter userName eq",
        direct: Arc::new(Target {
            side: "direct",
            make: Box::new(move |n| {
                let name = &names_d[n as usize % names_d.len()];
                ep_d.legacy("GET", &format!("/api/v1/users?username={name}"), None)
            }),
            looks_right: |v| v["total"] == 1,
        }),
        gateway: Arc::new(Target {
            side: "gateway",
            make: Box::new(move |n| {
                // Seeded names need no escaping beyond the filter's space and quotes.
                let name = &names_g[n as usize % names_g.len()];
                let filter = format!("userName%20eq%20%22{name}%22");
                ep_g.scim("GET", &format!("/Users?filter={filter}"), None)
            }),
            looks_right: |v| v["totalResults"] == 1,
        }),
    }
}

fn create_case(ep: &Arc<Endpoints>) -> Case {
    let (ep_d, ep_g) = (ep.clone(), ep.clone());
    Case {
        name: "POST new user",
        direct: Arc::new(Target {
            side: "direct",
            make: Box::new(move |n| {
                // What the default profile's to_backend makes of the gateway side's body.
                let body = json!({
                    "username": format!("Test_User_{n}@contoso.com"),
                    "email": format!("Test_User_{n}@testuser.com"),
                    "first_name": "givenName",
                    "last_name": "familyName",
                    "status": "active",
                    "external_id": format!("0a21f0f2-8d2a-4f8e-bf98-{n:012}"),
                });
                ep_d.legacy("POST", "/api/v1/users", Some(&body))
            }),
            looks_right: |v| v["id"].is_u64(),
        }),
        gateway: Arc::new(Target {
            side: "gateway",
            make: Box::new(move |n| {
                // Microsoft's documented Entra create request, with unique values.
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "externalId": format!("0a21f0f2-8d2a-4f8e-bf98-{n:012}"),
                    "userName": format!("Test_User_{n}@contoso.com"),
                    "active": true,
                    "emails": [{"primary": true, "type": "work",
                                "value": format!("Test_User_{n}@testuser.com")}],
                    "meta": {"resourceType": "User"},
                    "name": {"formatted": "givenName familyName", "familyName": "familyName",
                             "givenName": "givenName"},
                    "roles": []
                });
                ep_g.scim("POST", "/Users", Some(&body))
            }),
            looks_right: |v| v["id"].is_string(),
        }),
    }
}

/// Sends one request of each side and checks that it succeeds, looks right, and costs the
/// legacy app exactly one call (so the gateway side is one SCIM hop plus the direct call,
/// and the filter really was pushed down).
async fn preflight(
    client: &HttpClient,
    ep: &Endpoints,
    case: &Case,
    seq: &AtomicU64,
) -> Result<(), BoxError> {
    for target in [&case.direct, &case.gateway] {
        let before = legacy_state(client, ep).await?["requests_total"].as_u64();
        let req = (target.make)(seq.fetch_add(1, Ordering::Relaxed))?;
        let (status, body) = send(client, req).await?;
        let after = legacy_state(client, ep).await?["requests_total"].as_u64();
        let what = format!("{} / {}", case.name, target.side);
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() || !(target.looks_right)(&json) {
            let text = String::from_utf8_lossy(&body);
            return Err(format!("{what}: unexpected first response {status}: {text}").into());
        }
        let calls = after.zip(before).map(|(a, b)| a - b);
        if calls != Some(1) {
            return Err(
                format!("{what}: expected 1 legacy call per request, saw {calls:?}").into(),
            );
        }
    }
    Ok(())
}

/// The demo app's counters (`/__demo/state` is not itself counted).
async fn legacy_state(client: &HttpClient, ep: &Endpoints) -> Result<Value, BoxError> {
    let (status, body) = send(client, ep.legacy("GET", "/__demo/state", None)?).await?;
    if !status.is_success() {
        return Err(format!("/__demo/state answered {status}").into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Sends and reads the whole body (which also returns the connection to the pool).
async fn send(client: &HttpClient, req: Req) -> Result<(StatusCode, Bytes), BoxError> {
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// What one load run observed.
#[derive(Default)]
struct Tally {
    /// Latency of each 2xx response.
    latencies: Vec<Duration>,
    /// "HTTP 409 Conflict", "transport: …" → count.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }
}

struct RunStats {
    ok: usize,
    per_sec: f64,
    /// CPU time of the whole process during the measured run (not the warm-up).
    cpu: Duration,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    errors: BTreeMap<String, u64>,
}

/// A warm-up, then a measured run of `settings.duration`. Warm-up errors count as errors too.
async fn measure(
    client: &HttpClient,
    target: &Arc<Target>,
    seq: &Arc<AtomicU64>,
    settings: &Settings,
) -> RunStats {
    let warm = load(client, target, seq, settings.concurrency, WARM_UP).await;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tally = load(client, target, seq, settings.concurrency, settings.duration).await;
    // Requests in flight at the deadline finish and count; the elapsed time includes them.
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    tally.latencies.sort_unstable();
    let mut errors = tally.errors;
    for (k, n) in warm.errors {
        *errors.entry(format!("warm-up: {k}")).or_default() += n;
    }
    RunStats {
        ok: tally.latencies.len(),
        per_sec: tally.latencies.len() as f64 / elapsed.as_secs_f64(),
        cpu,
        elapsed,
        p50: percentile(&tally.latencies, 0.50),
        p99: percentile(&tally.latencies, 0.99),
        errors,
    }
}

/// `concurrency` tasks, each sending one request after another until `duration` is over.
async fn load(
    client: &HttpClient,
    target: &Arc<Target>,
    seq: &Arc<AtomicU64>,
    concurrency: usize,
    duration: Duration,
) -> Tally {
    let until = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (client, target, seq) = (client.clone(), target.clone(), seq.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < until {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let outcome = match (target.make)(n) {
                    Ok(req) => send(&client, req).await.map(|(status, _)| status),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(s) if s.is_success() => tally.latencies.push(started.elapsed()),
                    Ok(s) => *tally.errors.entry(format!("HTTP {s}")).or_default() += 1,
                    Err(e) => *tally.errors.entry(format!("transport: {e}")).or_default() += 1,
                }
            }
            tally
        });
    }
    let mut all = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(t) => all.merge(t),
            Err(e) => *all.errors.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    all
}

/// Nearest-rank percentile of sorted samples (zero when there are none).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// User + system CPU time of this process (all threads, living or exited) so far; zero where
/// /proc is unavailable.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name; utime and stime are fields 14, 15.
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    // In USER_HZ, which is 100 on the Linux targets this runs on (x86-64, aarch64).
    Duration::from_millis(ticks * 10)
}

impl RunStats {
    /// Process CPU per successful request: load generator + demo app (+ gateway), so the
    /// gateway's own share is the difference between the sides. Unlike req/s it barely
    /// depends on how much of the machine other processes take.
    fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ok.max(1) as f64
    }

    /// Cores this process kept busy on average.
    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.elapsed.as_secs_f64()
    }
}

fn print_run(case: &str, side: &str, run: usize, s: &RunStats) {
    let errors: u64 = s.errors.values().sum();
    println!(
        "{case:<20} {side:<8} run {run}: {:>7.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  \
         cpu {:>5.0} us/req on {:.2} cores  ({} ok, {errors} errors)",
        s.per_sec,
        ms(s.p50),
        ms(s.p99),
        s.cpu_us_per_request(),
        s.cores(),
        s.ok,
    );
    for (what, n) in &s.errors {
        println!("    ERROR x{n}: {what}");
    }
}

/// One side of a case over all its runs.
struct Mean {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    /// Errors of all runs together.
    errors: u64,
}

fn mean(runs: &[RunStats]) -> Mean {
    let n = runs.len().max(1) as f64;
    let avg = |f: fn(&RunStats) -> f64| runs.iter().map(f).sum::<f64>() / n;
    Mean {
        per_sec: avg(|s| s.per_sec),
        p50_ms: avg(|s| ms(s.p50)),
        p99_ms: avg(|s| ms(s.p99)),
        cpu_us: avg(RunStats::cpu_us_per_request),
        errors: runs.iter().flat_map(|s| s.errors.values()).sum(),
    }
}

fn print_summary(results: &[(&str, Vec<RunStats>, Vec<RunStats>)]) {
    println!("\nsummary: mean of {RUNS} runs per side (cpu = whole process CPU per request)");
    println!(
        "{:<20} {:<15} {:>9} {:>9} {:>9} {:>11} {:>7}",
        "case", "side", "req/s", "p50 ms", "p99 ms", "cpu us/req", "errors"
    );
    for (name, direct, gateway) in results {
        for (label, side, runs) in [(*name, "direct", direct), ("", "gateway", gateway)] {
            let m = mean(runs);
            println!(
                "{label:<20} {side:<15} {:>9.0} {:>9.3} {:>9.3} {:>11.1} {:>7}",
                m.per_sec, m.p50_ms, m.p99_ms, m.cpu_us, m.errors
            );
        }
        let (d, g) = (mean(direct), mean(gateway));
        println!(
            "{:<20} {:<15} {:>8.2}x {:>8.2}x {:>8.2}x {:>10.2}x",
            "",
            "gateway/direct",
            g.per_sec / d.per_sec,
            g.p50_ms / d.p50_ms,
            g.p99_ms / d.p99_ms,
            g.cpu_us / d.cpu_us,
        );
        println!(
            "{:<20} {:<15} {:>41.1}",
            "",
            "gateway - direct",
            g.cpu_us - d.cpu_us
        );
    }
}

/// VmRSS and VmHWM of this process, plus how many users the legacy store holds (the create
/// case adds every user it posts, which the RSS includes).
async fn print_memory(when: &str, client: &HttpClient, ep: &Endpoints) {
    let field = |status: &str, key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "n/a".into())
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let users = match legacy_state(client, ep).await {
        Ok(s) => s["users"].to_string(),
        Err(e) => format!("? ({e})"),
    };
    println!(
        "memory {when:<28} (whole process: gateway + demo app + load generator): \
         VmRSS {:>10}  VmHWM {:>10}  legacy users {users}",
        field(&status, "VmRSS:"),
        field(&status, "VmHWM:"),
    );
}
