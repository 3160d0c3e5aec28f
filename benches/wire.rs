//! What the gateway costs, measured as a user runs it: `scimgate serve` (release), the demo
//! legacy app and a bare hyper pass-through (`wire/passthrough.rs`) as separate processes,
//! wrk as the load generator. The gateway and the pass-through are pinned to CPU 0, the
//! legacy app and wrk to CPU 1 (`taskset`), so what the gateway costs is what CPU 0 does.
//!
//! Parts (env `WIRE_PARTS`, default `throughput,latency,sync`):
//! - **throughput**: `WIRE_ROUNDS` (3) rounds of `WIRE_SECONDS` (5) per case with wrk
//!   (16 connections, one thread): the pass-through and the gateway on the same legacy call
//!   (GET one user, the `userName eq` filter the default profile pushes down to
//!   `?username=`), then the gateway's POST /Users (Entra's body) and PATCH (replace title).
//!   The cases compared on one call (pass-through, gateway, baseline) run back to back, in
//!   reverse order every other round; the medians are printed: req/s, p50/p99, CPU µs per
//!   request of the process under load and of the legacy app, and gateway ÷ pass-through.
//!   With `WIRE_BASELINE_BIN=<an older scimgate>` the older build runs every gateway case
//!   too, in the same rounds (an A/B in one run); `WIRE_BASELINE_ENV="K=V,…"` gives that
//!   baseline its own settings (alone, it runs this build with them: e.g.
//!   `SCIMGATE_SERVER__COMPILE_SCRIPTS=false` for the scripts in rhai's interpreter).
//!   `WIRE_CASES="POST,PATCH"` runs only the cases whose names contain one of the words (and
//!   the pass-through cases they are compared with); each gateway's pid is printed, so a
//!   profiler can be attached to it during a long run (`WIRE_SECONDS=60`).
//! - **latency**: an open-loop 1,000 GET/s for `WIRE_LATENCY_SECONDS` (10) straight to the
//!   legacy app, through the pass-through and through the gateway; p50/p99 from each send,
//!   and what each adds to the direct call.
//! - **sync**: Entra's initial sync replayed into a fresh legacy app: 10,000 users (a
//!   `userName eq` query, then POST) and 100 groups (query, POST, then PATCH adding 1,000
//!   members in batches of 100), 16 requests at a time; wall time, then the legacy app's
//!   state is checked (every user, every membership).
//!
//! Run: `benches/wire.sh` (installs wrk, builds, runs this), or `cargo bench --bench wire`
//! with wrk on the PATH. Any failed request makes it exit non-zero.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "wire/passthrough.rs"]
mod passthrough;

use common::Http;
use common::process::{GatewayProcess, Scratch, cpu_of, has_taskset, pinned, rss_mb};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "wire-bench-token-0123456789abcdef";
const LEGACY_KEY: &str = "wire-legacy-key";
const SEEDED: usize = 1000;
const CONNECTIONS: u32 = 16;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match std::env::var("WIRE_ROLE").as_deref() {
        // The same binary, started again as one of the measured processes.
        Ok("legacy") => rt.block_on(role_legacy()),
        Ok("passthrough") => rt.block_on(role_passthrough()),
        _ => {
            let ok = rt.block_on(orchestrate());
            if !ok {
                std::process::exit(1);
            }
        }
    }
}

async fn role_legacy() {
    let app = scimgate::demo::DemoApp::start(
        "127.0.0.1:0",
        scimgate::demo::DemoConfig::with_api_key(LEGACY_KEY),
    )
    .await
    .expect("demo app");
    println!("listening at {}", app.base_url());
    std::future::pending::<()>().await;
}

async fn role_passthrough() {
    let upstream = std::env::var("WIRE_UPSTREAM").expect("WIRE_UPSTREAM");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "listening at http://{}",
        listener.local_addr().expect("address")
    );
    passthrough::serve(listener, upstream).await;
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A process of this binary in another role; killed when dropped.
struct Role {
    child: Child,
    url: String,
}

impl Role {
    fn start(role: &str, cpu: u32, env: &[(&str, &str)]) -> Role {
        let exe = std::env::current_exe().expect("current exe");
        let mut cmd = pinned(cpu, &exe);
        cmd.env("WIRE_ROLE", role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn role");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("role line");
        let url = line
            .trim()
            .strip_prefix("listening at ")
            .unwrap_or_else(|| panic!("{role} did not start: {line:?}"))
            .to_string();
        Role { child, url }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(
    bin: &Path,
    scratch: &Scratch,
    name: &str,
    legacy: &str,
    extra_env: &[(String, String)],
) -> GatewayProcess {
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("scimgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\ntokens = [\"{TOKEN}\"]\n\
             [store]\nurl = \"sqlite://{}\"\n[log]\nlevel = \"info\"\n\
             [admin]\nenabled = false\n\
             [profile]\nname = \"default\"\ndir = '{}'\n",
            dir.join("store.db").display(),
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .expect("config");
    let mut env = vec![
        ("SCIMGATE_BACKEND__BASE_URL", legacy),
        ("SCIMGATE_BACKEND__AUTH__VALUE", LEGACY_KEY),
    ];
    env.extend(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    GatewayProcess::start_pinned(bin, 0, &config, &env)
}

/// `WIRE_BASELINE_ENV="K=V,K2=V2"`: settings of the baseline gateway only (e.g.
/// `SCIMGATE_SERVER__COMPILE_SCRIPTS=false` to measure the same build with the scripts in
/// rhai's interpreter).
fn baseline_env() -> Vec<(String, String)> {
    std::env::var("WIRE_BASELINE_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The host root of a URL (`http://127.0.0.1:1234/scim/v2` → `http://127.0.0.1:1234`).
fn root(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    format!("http://{}", rest.split('/').next().unwrap_or(rest))
}

fn entra_user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": format!("ext-{name}"),
        "userName": format!("{name}@example.com"),
        "active": true,
        "displayName": format!("User {name}"),
        "title": "Engineer",
        "emails": [{"primary": true, "type": "work", "value": format!("{name}@example.com")}],
        "name": {"formatted": format!("User {name}"), "familyName": "User", "givenName": name},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "employeeNumber": "42"}
    })
}

/// One load target: who receives the load (its pid for CPU) and the wrk script to send.
struct Case {
    name: String,
    url: String,
    pid: u32,
    script: PathBuf,
    /// Which pass-through case (name) this gateway case is compared with.
    versus: Option<String>,
}

/// The cases measured side by side, as groups of indices into `cases` in their first order:
/// a pass-through case with the gateway cases compared with it, and each gateway case with
/// the same case of the baseline build.
fn case_groups(cases: &[Case]) -> Vec<Vec<usize>> {
    let key = |c: &Case| -> String {
        match &c.versus {
            Some(v) => v.clone(),
            None => c
                .name
                .split_once(' ')
                .map_or(c.name.as_str(), |(label, rest)| {
                    if label == "pass-through" {
                        c.name.as_str()
                    } else {
                        rest
                    }
                })
                .to_string(),
        }
    };
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let k = key(c);
        match groups.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, g)) => g.push(i),
            None => groups.push((k, vec![i])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[derive(Default, Clone)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    legacy_cpu_us: f64,
    failed: u64,
}

fn wrk_duration(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(v) = t.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn run_wrk(case: &Case, legacy_pid: u32, seconds: u32) -> Run {
    let cpu0 = cpu_of(case.pid);
    let legacy0 = cpu_of(legacy_pid);
    let out = pinned(1, Path::new("wrk"))
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&case.script)
        .arg(&case.url)
        .output()
        .expect("wrk (benches/wire.sh installs it)");
    let cpu = cpu_of(case.pid) - cpu0;
    let legacy = cpu_of(legacy_pid) - legacy0;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = Run::default();
    let mut requests = 0.0;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => r.p50_ms = wrk_duration(v).unwrap_or(0.0),
            ["99%", v] => r.p99_ms = wrk_duration(v).unwrap_or(0.0),
            [n, "requests", "in", ..] => requests = n.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.failed += n.parse().unwrap_or(1),
            ["Socket", "errors:", ..] => {
                // connect 0, read 0, write 0, timeout 0
                let n: u64 = w
                    .iter()
                    .filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
                r.failed += n;
            }
            _ => {}
        }
    }
    if !out.status.success() || requests == 0.0 {
        eprintln!(
            "wrk failed on {}: {}\n{}",
            case.name,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        r.failed += 1;
    }
    if requests > 0.0 {
        r.cpu_us = cpu.as_secs_f64() * 1e6 / requests;
        r.legacy_cpu_us = legacy.as_secs_f64() * 1e6 / requests;
    }
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

fn lua_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("{{{}}}", quoted.join(","))
}

/// A wrk script cycling through `paths` with `headers`; `body` (Lua expression over the
/// counter `n`) for writes.
fn write_script(
    dir: &Path,
    name: &str,
    method: &str,
    paths: &[String],
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> PathBuf {
    let h: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("[{k:?}] = {v:?}"))
        .collect();
    let lua = format!(
        "local paths = {}\nlocal headers = {{{}}}\nlocal n = 0\n\
         request = function()\n  n = n + 1\n  local path = paths[(n % #paths) + 1]\n  \
         return wrk.format({method:?}, path, headers, {})\nend\n",
        lua_list(paths),
        h.join(", "),
        body.unwrap_or("nil")
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua).expect("lua");
    path
}

async fn orchestrate() -> bool {
    let parts = std::env::var("WIRE_PARTS").unwrap_or_else(|_| "throughput,latency,sync".into());
    let mut ok = true;
    if Command::new("wrk").arg("--version").output().is_err() && parts.contains("throughput") {
        eprintln!("wire: wrk is not installed (benches/wire.sh installs it)");
        return false;
    }
    if !has_taskset() {
        println!("wire: taskset not found; processes are not pinned (figures are noisier)");
    }
    if parts.contains("throughput") || parts.contains("latency") {
        ok &= throughput_and_latency(&parts).await;
    }
    if parts.contains("sync") {
        ok &= initial_sync().await;
    }
    ok
}

async fn throughput_and_latency(parts: &str) -> bool {
    let rounds = env_num("WIRE_ROUNDS", 3.0).max(1.0) as usize;
    let seconds = env_num("WIRE_SECONDS", 5.0).max(1.0) as u32;
    let scratch = Scratch::new("wire");
    let legacy = Role::start("legacy", 1, &[]);
    let legacy_root = root(&legacy.url);
    let upstream = legacy_root.trim_start_matches("http://").to_string();
    let pass = Role::start("passthrough", 0, &[("WIRE_UPSTREAM", upstream.as_str())]);
    let mut gateways = vec![(
        "gateway".to_string(),
        gateway(
            Path::new(env!("CARGO_BIN_EXE_scimgate")),
            &scratch,
            "gw",
            &legacy_root,
            &[],
        ),
    )];
    let baseline_bin = std::env::var("WIRE_BASELINE_BIN").ok();
    if baseline_bin.is_some() || std::env::var("WIRE_BASELINE_ENV").is_ok() {
        let bin = baseline_bin.unwrap_or_else(|| env!("CARGO_BIN_EXE_scimgate").to_string());
        gateways.push((
            "baseline".to_string(),
            gateway(
                Path::new(&bin),
                &scratch,
                "base",
                &legacy_root,
                &baseline_env(),
            ),
        ));
    }

    // Seed users through the first gateway; every gateway reads the same legacy records.
    let http = Http::new();
    let auth = format!("Bearer {TOKEN}");
    let scim_base = gateways[0].1.scim_url.clone();
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for i in 0..SEEDED {
        let name = format!("seed{i}");
        let r = http
            .json(
                "POST",
                &format!("{scim_base}/Users"),
                &[("authorization", &auth)],
                Some(&entra_user(&name)),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json["id"].as_str().expect("id").to_string());
        names.push(format!("{name}@example.com"));
    }
    let scim_path = |gw: &GatewayProcess| {
        let u = &gw.scim_url;
        u[root(u).len()..].to_string()
    };
    let enc = |s: &str| common::enc(s);
    let dir = &scratch.0;
    let legacy_pid = legacy.child.id();
    let mut cases = Vec::new();
    let pass_get: Vec<String> = ids.iter().map(|id| format!("/api/v1/users/{id}")).collect();
    let pass_filter: Vec<String> = names
        .iter()
        .map(|n| format!("/api/v1/users?username={}", enc(n)))
        .collect();
    let key_header = [("X-Api-Key", LEGACY_KEY)];
    cases.push(Case {
        name: "pass-through GET user".into(),
        url: pass.url.clone(),
        pid: pass.child.id(),
        script: write_script(dir, "pass_get", "GET", &pass_get, &key_header, None),
        versus: None,
    });
    cases.push(Case {
        name: "pass-through ?username=".into(),
        url: pass.url.clone(),
        pid: pass.child.id(),
        script: write_script(dir, "pass_filter", "GET", &pass_filter, &key_header, None),
        versus: None,
    });
    let scim_headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/scim+json"),
    ];
    for (round_tag, (label, gw)) in gateways.iter().enumerate() {
        let base = scim_path(gw);
        let url = root(&gw.scim_url);
        let pid = gw.pid();
        let get: Vec<String> = ids.iter().map(|id| format!("{base}/Users/{id}")).collect();
        let filter: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    "{base}/Users?filter={}",
                    enc(&format!("userName eq \"{n}\""))
                )
            })
            .collect();
        cases.push(Case {
            name: format!("{label} GET /Users/{{id}}"),
            url: url.clone(),
            pid,
            script: write_script(
                dir,
                &format!("{label}_get"),
                "GET",
                &get,
                &scim_headers,
                None,
            ),
            versus: Some("pass-through GET user".into()),
        });
        cases.push(Case {
            name: format!("{label} filter userName eq"),
            url: url.clone(),
            pid,
            script: write_script(
                dir,
                &format!("{label}_filter"),
                "GET",
                &filter,
                &scim_headers,
                None,
            ),
            versus: Some("pass-through ?username=".into()),
        });
        // Unique names per request: a per-script tag, wrk's counter and the clock.
        let post_body = format!(
            "string.format('{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\
             \"externalId\":\"e%d-%d\",\"userName\":\"w{round_tag}-%d-%d@example.com\",\"active\":true,\
             \"displayName\":\"W %d\",\"title\":\"Engineer\",\"emails\":[{{\"primary\":true,\"type\":\"work\",\
             \"value\":\"w{round_tag}-%d-%d@example.com\"}}],\"name\":{{\"familyName\":\"W\",\"givenName\":\"G\"}}}}', \
             os.time(), n, os.time(), n, n, os.time(), n)"
        );
        cases.push(Case {
            name: format!("{label} POST /Users"),
            url: url.clone(),
            pid,
            script: write_script(
                dir,
                &format!("{label}_post"),
                "POST",
                &[format!("{base}/Users")],
                &scim_headers,
                Some(&post_body),
            ),
            versus: None,
        });
        let patch_body = "string.format('{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\
             \"Operations\":[{\"op\":\"Replace\",\"path\":\"title\",\"value\":\"T%d\"}]}', n)";
        cases.push(Case {
            name: format!("{label} PATCH title"),
            url,
            pid,
            script: write_script(
                dir,
                &format!("{label}_patch"),
                "PATCH",
                &get,
                &scim_headers,
                Some(patch_body),
            ),
            versus: None,
        });
    }

    if let Ok(only) = std::env::var("WIRE_CASES") {
        let words: Vec<&str> = only
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        let wanted = |name: &str| words.iter().any(|w| name.contains(w));
        let keep: Vec<bool> = cases
            .iter()
            .map(|c| {
                wanted(&c.name)
                    || cases
                        .iter()
                        .any(|o| wanted(&o.name) && o.versus.as_deref() == Some(c.name.as_str()))
            })
            .collect();
        let mut k = keep.into_iter();
        cases.retain(|_| k.next().unwrap_or(false));
    }
    for (label, gw) in &gateways {
        println!("{label}: pid {}", gw.pid());
    }

    let mut ok = true;
    if parts.contains("throughput") {
        // Warm-up: one short run per case (pools, caches, thread-local engines).
        for c in &cases {
            let r = run_wrk(c, legacy_pid, 1);
            ok &= r.failed == 0;
        }
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); cases.len()];
        let groups = case_groups(&cases);
        for round in 0..rounds {
            // The builds compared on one case run back to back, first one then the other
            // first (this VM's speed drifts over tens of seconds: a build whose cases all ran
            // in one half of the round could win or lose by that alone).
            let order = groups.iter().flat_map(|g| {
                let mut g = g.clone();
                if round % 2 == 1 {
                    g.reverse();
                }
                g
            });
            for i in order {
                let c = &cases[i];
                let r = run_wrk(c, legacy_pid, seconds);
                println!(
                    "round {} {:<34} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:>6.1} µs CPU/req (legacy {:>5.1}){}",
                    round + 1,
                    c.name,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.cpu_us,
                    r.legacy_cpu_us,
                    if r.failed > 0 {
                        format!("  {} FAILED", r.failed)
                    } else {
                        String::new()
                    }
                );
                ok &= r.failed == 0;
                runs[i].push(r);
            }
        }
        println!(
            "\nmedians of {rounds} rounds × {seconds} s, wrk -t1 -c{CONNECTIONS} on CPU 1 (with the legacy app); measured process on CPU 0"
        );
        println!(
            "{:<34} {:>9} {:>8} {:>8} {:>12} {:>12} {:>16}",
            "case", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "legacy µs", "÷ pass-through"
        );
        let med: Vec<Run> = runs
            .iter()
            .map(|rs| Run {
                rps: median(rs.iter().map(|r| r.rps).collect()),
                p50_ms: median(rs.iter().map(|r| r.p50_ms).collect()),
                p99_ms: median(rs.iter().map(|r| r.p99_ms).collect()),
                cpu_us: median(rs.iter().map(|r| r.cpu_us).collect()),
                legacy_cpu_us: median(rs.iter().map(|r| r.legacy_cpu_us).collect()),
                failed: rs.iter().map(|r| r.failed).sum(),
            })
            .collect();
        for (c, m) in cases.iter().zip(&med) {
            let ratio = c
                .versus
                .as_ref()
                .and_then(|v| cases.iter().position(|x| &x.name == v))
                .map(|j| format!("{:.2}×", m.rps / med[j].rps.max(1e-9)))
                .unwrap_or_default();
            println!(
                "{:<34} {:>9.0} {:>8.2} {:>8.2} {:>12.1} {:>12.1} {:>16}",
                c.name, m.rps, m.p50_ms, m.p99_ms, m.cpu_us, m.legacy_cpu_us, ratio
            );
        }
        if gateways.len() > 1 {
            println!("\ngateway ÷ baseline (req/s; CPU µs per request):");
            for (c, m) in cases.iter().zip(&med) {
                let Some(rest) = c.name.strip_prefix("gateway ") else {
                    continue;
                };
                if let Some(j) = cases
                    .iter()
                    .position(|x| x.name == format!("baseline {rest}"))
                {
                    println!(
                        "  {rest:<28} {:.2}× req/s, {:.1} vs {:.1} µs",
                        m.rps / med[j].rps.max(1e-9),
                        m.cpu_us,
                        med[j].cpu_us
                    );
                }
            }
        }
        for (label, gw) in &gateways {
            println!("{label} RSS after the load: {:.1} MB", rss_mb(gw.pid()));
        }
    }

    if parts.contains("latency") {
        let secs = env_num("WIRE_LATENCY_SECONDS", 10.0).max(1.0);
        println!("\nopen loop, 1,000 GET/s for {secs} s (sent from CPU 1):");
        let direct = open_loop(&legacy_root, &pass_get, &[("x-api-key", LEGACY_KEY)], secs).await;
        let through = open_loop(&pass.url, &pass_get, &[("x-api-key", LEGACY_KEY)], secs).await;
        println!(
            "  {:<24} p50 {:>6.3} ms  p99 {:>6.3} ms  failed {}",
            "legacy app directly", direct.0, direct.1, direct.2
        );
        println!(
            "  {:<24} p50 {:>6.3} ms  p99 {:>6.3} ms  failed {}  adds p50 {:+.3} ms, p99 {:+.3} ms",
            "pass-through",
            through.0,
            through.1,
            through.2,
            through.0 - direct.0,
            through.1 - direct.1
        );
        ok &= direct.2 == 0 && through.2 == 0;
        for (label, gw) in &gateways {
            let base = scim_path(gw);
            let get: Vec<String> = ids.iter().map(|id| format!("{base}/Users/{id}")).collect();
            let l = open_loop(&root(&gw.scim_url), &get, &[("authorization", &auth)], secs).await;
            println!(
                "  {:<24} p50 {:>6.3} ms  p99 {:>6.3} ms  failed {}  adds p50 {:+.3} ms, p99 {:+.3} ms",
                label,
                l.0,
                l.1,
                l.2,
                l.0 - direct.0,
                l.1 - direct.1
            );
            ok &= l.2 == 0;
        }
    }
    ok
}

/// 1,000 requests a second, each sent at its scheduled time whatever the others do (no
/// coordinated omission); latency counts from the send. (p50 ms, p99 ms, failed).
async fn open_loop(
    root: &str,
    paths: &[String],
    headers: &[(&str, &str)],
    secs: f64,
) -> (f64, f64, u64) {
    let http = Http::new();
    let headers: Arc<Vec<(String, String)>> = Arc::new(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    // Warm the pool.
    for p in paths.iter().take(32) {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let _ = http.try_raw("GET", &format!("{root}{p}"), &h, None).await;
    }
    let total = (secs * 1000.0) as usize;
    let failed = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = start + Duration::from_micros(i as u64 * 1000);
        let url = format!("{root}{}", paths[i % paths.len()]);
        let (http, headers, failed) = (http.clone(), headers.clone(), failed.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            // Timed from the send: tokio's timer fires up to a millisecond late, which would
            // be measured as latency of every target alike. Each request is its own task, so a
            // slow answer still never delays the next send.
            let sent = Instant::now();
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match http.try_raw("GET", &url, &h, None).await {
                Ok(r) if r.status == 200 => {}
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            sent.elapsed()
        });
    }
    let mut lat = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        if let Ok(d) = r {
            lat.push(d.as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (pick(0.5), pick(0.99), failed.load(Ordering::Relaxed))
}

/// Entra's initial sync of 10,000 users and 100 groups of 1,000 members into a fresh legacy
/// app, 16 requests at a time; checks the legacy app's final state.
async fn initial_sync() -> bool {
    const USERS: usize = 10_000;
    const GROUPS: usize = 100;
    const MEMBERS: usize = 1_000;
    const BATCH: usize = 100;
    const PARALLEL: usize = 16;
    let scratch = Scratch::new("wire-sync");
    let legacy = Role::start("legacy", 1, &[]);
    let legacy_root = root(&legacy.url);
    let gw = gateway(
        Path::new(env!("CARGO_BIN_EXE_scimgate")),
        &scratch,
        "sync",
        &legacy_root,
        &[],
    );
    let scim = common::Scim::new(&gw.scim_url, TOKEN);
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu0 = gw.cpu();

    // Users: a filter query (Entra's match), then the create.
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let (scim, next, failed) = (scim.clone(), next.clone(), failed.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= USERS {
                    break;
                }
                let name = format!("sync{i}");
                let f = common::enc(&format!("userName eq \"{name}@example.com\""));
                let q = scim
                    .try_call("GET", &format!("/Users?filter={f}"), None)
                    .await;
                let found = q
                    .as_ref()
                    .is_ok_and(|r| r.status == 200 && r.json["totalResults"] == 0);
                let c = scim
                    .try_call("POST", "/Users", Some(&entra_user(&name)))
                    .await;
                match c {
                    Ok(r) if found && r.status == 201 => {
                        ids.push((i, r.json["id"].as_str().unwrap_or("").to_string()));
                    }
                    other => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("sync user {i} failed: {:?}", other.map(|r| r.text));
                        }
                    }
                }
            }
            ids
        });
    }
    let mut user_ids = vec![String::new(); USERS];
    while let Some(r) = tasks.join_next().await {
        for (i, id) in r.unwrap_or_default() {
            user_ids[i] = id;
        }
    }
    let users_done = started.elapsed();

    // Groups: query, create, then members in PATCHes of BATCH.
    let user_ids = Arc::new(user_ids);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let (scim, next, failed, user_ids) =
            (scim.clone(), next.clone(), failed.clone(), user_ids.clone());
        tasks.spawn(async move {
            let mut groups = Vec::new();
            loop {
                let g = next.fetch_add(1, Ordering::Relaxed) as usize;
                if g >= GROUPS {
                    break;
                }
                let name = format!("sync-group-{g}");
                let f = common::enc(&format!("displayName eq \"{name}\""));
                let q = scim
                    .try_call("GET", &format!("/Groups?filter={f}"), None)
                    .await;
                let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                  "displayName": name, "externalId": format!("g-{g}")});
                let c = scim.try_call("POST", "/Groups", Some(&body)).await;
                let id = match (q, c) {
                    (Ok(q), Ok(c)) if q.status == 200 && c.status == 201 => {
                        c.json["id"].as_str().unwrap_or("").to_string()
                    }
                    (_, other) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("sync group {g} failed: {:?}", other.map(|r| r.text));
                        continue;
                    }
                };
                for b in 0..MEMBERS / BATCH {
                    let members: Vec<Value> = (0..BATCH)
                        .map(|k| {
                            let u = (g * 97 + b * BATCH + k) % USERS;
                            json!({"value": user_ids[u]})
                        })
                        .collect();
                    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Add", "path": "members", "value": members}]});
                    match scim
                        .try_call("PATCH", &format!("/Groups/{id}"), Some(&patch))
                        .await
                    {
                        Ok(r) if r.status == 200 || r.status == 204 => {}
                        other => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!(
                                    "sync group {g} members failed: {:?}",
                                    other.map(|r| r.text)
                                );
                            }
                        }
                    }
                }
                groups.push(id);
            }
            groups
        });
    }
    let mut group_ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        group_ids.extend(r.unwrap_or_default());
    }
    let took = started.elapsed();
    let cpu = gw.cpu() - cpu0;
    let failed = failed.load(Ordering::Relaxed);
    let requests = USERS * 2 + GROUPS * (2 + MEMBERS / BATCH);
    println!(
        "\ninitial sync: {USERS} users + {GROUPS} groups × {MEMBERS} members ({requests} requests, {PARALLEL} at a time): \
         {:.1} s (users {:.1} s, groups {:.1} s), gateway CPU {:.1} s ({:.0} µs/request), {failed} failed, RSS {:.1} MB",
        took.as_secs_f64(),
        users_done.as_secs_f64(),
        (took - users_done).as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / requests as f64,
        rss_mb(gw.pid())
    );

    // The legacy app's own view.
    let http = Http::new();
    let key = [("x-api-key", LEGACY_KEY)];
    let r = http
        .json(
            "GET",
            &format!("{legacy_root}/api/v1/users?per_page=1"),
            &key,
            None,
        )
        .await;
    let users = r.json["total"].as_u64().unwrap_or(0);
    let mut short = 0;
    for id in &group_ids {
        let r = http
            .json(
                "GET",
                &format!("{legacy_root}/api/v1/teams/{id}/members?per_page=1"),
                &key,
                None,
            )
            .await;
        if r.json["total"].as_u64() != Some(MEMBERS as u64) {
            short += 1;
            if short <= 3 {
                eprintln!("team {id}: {} members, expected {MEMBERS}", r.json["total"]);
            }
        }
    }
    let state_ok = users == USERS as u64 && group_ids.len() == GROUPS && short == 0;
    println!(
        "legacy app after the sync: {users} users, {} teams, {} with exactly {MEMBERS} members: {}",
        group_ids.len(),
        group_ids.len() - short,
        if state_ok { "as sent" } else { "NOT as sent" }
    );
    failed == 0 && state_ok
}
