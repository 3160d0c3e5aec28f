//! What an unauthenticated (or hostile) client can make the gateway spend, and how every
//! refusal looks: sign-in attempts (argon2 slots, per-client and per-user throttles),
//! slow and silent connections, oversized and malformed requests answered by the HTTP layer,
//! request ids, echoed input, dot-segment ids, and the admin page's login.
//!
//! Clients here speak raw HTTP/1.1 over their own sockets, some from other loopback
//! addresses (127.0.0.2, …), so the gateway sees distinct client addresses.

mod common;

use common::{Legacy, Scim, enc};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::config::Config;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A raw response: status, lower-cased headers, body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts this is a SCIM error with `status` (RFC 7644 §3.12).
    fn assert_scim_error(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/scim+json"),
            "{}",
            self.body
        );
        let v = self.json();
        assert_eq!(
            v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.body
        );
        assert_eq!(v["status"], status.to_string(), "{}", self.body);
    }
}

async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// Sends `request` (a whole HTTP/1.1 message) from `from` and reads the answer until close.
async fn raw_from(from: [u8; 4], to: SocketAddr, request: &[u8]) -> Raw {
    let mut s = connect_from(from, to).await;
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("answer within 20 s")
        .unwrap();
    parse(&buf)
}

fn parse(buf: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(path: &str, auth: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

async fn stack(profile: &str, adjust: Option<fn(&mut Config)>) -> DemoStack {
    DemoStack::start(DemoOptions {
        adjust,
        ..DemoOptions::for_tests(profile)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"))
}

/// Wrong passwords for the known Basic user, 60 at once from one address: argon2 runs in
/// at most 2 slots with 16 waiting, the rest are refused at once with 503 + Retry-After;
/// after 10 failures the address is answered 429 without a check, while another address
/// still signs in; the user name is throttled too once it failed 10 times.
#[tokio::test]
async fn password_checks_are_bounded_and_throttled() {
    let stack = stack("enterprise-toolkit", None).await;
    let (user, password) = stack.basic.clone().expect("a Basic user");
    let to = addr_of(&stack.scim_url);
    let path = "/scim/v2/Users?count=1";

    let mut tasks = Vec::new();
    for i in 0..60 {
        let req = get(path, &basic(&user, &format!("wrong-{i}")));
        tasks.push(tokio::spawn(async move {
            raw_from([127, 0, 0, 2], to, &req).await
        }));
    }
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let r = t.await.unwrap();
        r.assert_scim_error(r.status);
        if r.status == 503 || r.status == 429 {
            assert!(r.header("retry-after").is_some(), "{}", r.body);
        }
        *by_status.entry(r.status).or_default() += 1;
    }
    let checked = by_status.get(&401).copied().unwrap_or(0);
    // 2 running + 16 queued at a time; a request arriving after a check ended may take its
    // place until the address has failed 10 times, so at most 18 + 10 are checked.
    assert!((1..=28).contains(&checked), "bounded checks: {by_status:?}");
    assert!(
        by_status.get(&503).copied().unwrap_or(0) + by_status.get(&429).copied().unwrap_or(0) >= 32,
        "{by_status:?}"
    );

    // The address is throttled now (it failed at least 10 times, or the flood was refused
    // before; make sure with a few more).
    for i in 0..10 {
        raw_from(
            [127, 0, 0, 2],
            to,
            &get(path, &basic(&user, &format!("w{i}"))),
        )
        .await;
    }
    let r = raw_from([127, 0, 0, 2], to, &get(path, &basic(&user, &password))).await;
    r.assert_scim_error(429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    // Another address with the right password: the user name failed 10+ times, so it is
    // throttled too (no argon2 run), until a remembered success or the window's end.
    let r = raw_from([127, 0, 0, 3], to, &get(path, &basic(&user, &password))).await;
    r.assert_scim_error(429);

    // An unknown user name from a fresh address costs no argon2 run but the same answer.
    let started = Instant::now();
    let r = raw_from([127, 0, 0, 4], to, &get(path, &basic("nobody", "x"))).await;
    r.assert_scim_error(401);
    assert!(started.elapsed() >= Duration::from_millis(5));
}

/// A fresh gateway: the right password works from an address that never failed, the throttle
/// is per address, and the unknown-user answer takes about as long as a real check.
#[tokio::test]
async fn throttling_is_per_client_and_unknown_users_cost_no_check() {
    let stack = stack("enterprise-toolkit", None).await;
    let (user, password) = stack.basic.clone().expect("a Basic user");
    let to = addr_of(&stack.scim_url);
    let path = "/scim/v2/Users?count=1";
    // 12 failures for unknown names from 127.0.0.5: no argon2, but counted per address.
    for i in 0..12 {
        let r = raw_from(
            [127, 0, 0, 5],
            to,
            &get(path, &basic(&format!("ghost{i}"), "x")),
        )
        .await;
        assert!(r.status == 401 || r.status == 429, "{}", r.body);
    }
    let r = raw_from([127, 0, 0, 5], to, &get(path, &basic(&user, &password))).await;
    r.assert_scim_error(429);
    // Another address is not affected.
    let r = raw_from([127, 0, 0, 6], to, &get(path, &basic(&user, &password))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // An attacker now fails for that user name from other addresses until it is throttled;
    // the credential that worked still does (from anywhere), wrong ones get 429.
    for i in 0..12 {
        let from = [127, 0, 1, 10 + i as u8];
        raw_from(from, to, &get(path, &basic(&user, &format!("guess{i}")))).await;
    }
    let r = raw_from([127, 0, 1, 40], to, &get(path, &basic(&user, "guess-more"))).await;
    r.assert_scim_error(429);
    let r = raw_from([127, 0, 1, 41], to, &get(path, &basic(&user, &password))).await;
    assert_eq!(
        r.status, 200,
        "the real client is not locked out: {}",
        r.body
    );
}

/// Slow and silent clients: 60 connections that send only a request line, with a cap of
/// 32 connections and a 400 ms header timeout. Real requests keep being served (the
/// longest-idle connections make room), the dribblers are closed, and /healthz answers.
#[tokio::test]
async fn slow_clients_cannot_hold_the_listener() {
    fn tight(cfg: &mut Config) {
        cfg.server.max_connections = 32;
        cfg.server.header_read_timeout_ms = 400;
        cfg.server.idle_timeout_ms = 2_000;
    }
    let stack = stack("default", Some(tight)).await;
    let to = addr_of(&stack.scim_url);
    let mut slow = Vec::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(to).await.unwrap();
        s.write_all(b"GET /scim/v2/Users HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let auth = format!("Bearer {}", stack.token);
    let started = Instant::now();
    for _ in 0..5 {
        let r = raw_from([127, 0, 0, 1], to, &get("/scim/v2/Users?count=1", &auth)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "served while the cap was reached: {:?}",
        started.elapsed()
    );
    let admin = addr_of(&stack.admin_url);
    let r = raw_from(
        [127, 0, 0, 1],
        admin,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Every dribbling connection is closed by the server within the header timeout (or was
    // evicted earlier).
    tokio::time::sleep(Duration::from_millis(800)).await;
    for mut s in slow {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("closed by the server, not left open")
            .unwrap_or(0);
        assert_eq!(n, 0, "no answer for an incomplete request, just a close");
    }
}

/// An idle keep-alive connection is closed after the idle timeout.
#[tokio::test]
async fn idle_connections_are_closed() {
    fn idle(cfg: &mut Config) {
        cfg.server.idle_timeout_ms = 300;
    }
    let stack = stack("default", Some(idle)).await;
    let to = addr_of(&stack.scim_url);
    let mut s = TcpStream::connect(to).await.unwrap();
    let req = format!(
        "GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\r\n",
        stack.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("closed after the idle timeout")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

/// Errors from the HTTP layer are SCIM errors too: a malformed request line (400), headers
/// over the limit (431), a URI over the limit (414), and an id that is not UTF-8 (404).
#[tokio::test]
async fn http_layer_errors_are_scim_errors() {
    let stack = stack("default", None).await;
    let to = addr_of(&stack.scim_url);
    let auth = format!("Bearer {}", stack.token);

    let r = raw_from([127, 0, 0, 1], to, b"GARBAGE\r\n\r\n").await;
    r.assert_scim_error(400);

    let big = "x".repeat(20_000);
    let req = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nX-Big: {big}\r\n\r\n"
    );
    let r = raw_from([127, 0, 0, 1], to, req.as_bytes()).await;
    r.assert_scim_error(431);

    let long = format!("/scim/v2/Users?filter={}", "a".repeat(10_000));
    let r = raw_from([127, 0, 0, 1], to, &get(&long, &auth)).await;
    r.assert_scim_error(414);
    let longer = format!("/scim/v2/Users?filter={}", "a".repeat(70_000));
    let r = raw_from([127, 0, 0, 1], to, &get(&longer, &auth)).await;
    assert!(r.status == 414 || r.status == 431, "{}", r.status);
    r.assert_scim_error(r.status);

    let r = raw_from([127, 0, 0, 1], to, &get("/scim/v2/Users/%ff", &auth)).await;
    r.assert_scim_error(404);
    let r = raw_from([127, 0, 0, 1], to, &get("/scim/v2/%ff", &auth)).await;
    r.assert_scim_error(404);
}

/// A client's request id is echoed only when it is short and plain; error details quote at
/// most 1 KB of what the client sent.
#[tokio::test]
async fn request_ids_and_echoed_input_are_bounded() {
    let stack = stack("default", None).await;
    let to = addr_of(&stack.scim_url);
    let auth = format!("Bearer {}", stack.token);
    let with_id = |id: &str| {
        format!(
            "GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
        )
    };
    let r = raw_from([127, 0, 0, 1], to, with_id("abc-123_x.y").as_bytes()).await;
    assert_eq!(r.header("x-request-id"), Some("abc-123_x.y"));
    for bad in ["a".repeat(300), "evil\u{1b}[31m".to_string(), "a b".into()] {
        let r = raw_from([127, 0, 0, 1], to, with_id(&bad).as_bytes()).await;
        if r.status == 400 {
            // The HTTP parser refuses control characters in a header: a SCIM 400 then.
            r.assert_scim_error(400);
            continue;
        }
        let echoed = r.header("x-request-id").unwrap();
        assert_ne!(echoed, bad.trim());
        assert!(echoed.len() <= 128 && !echoed.contains(' '), "{echoed}");
    }
    // On a 401 too.
    let req = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: gw\r\nX-Request-Id: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(5000)
    );
    let r = raw_from([127, 0, 0, 1], to, req.as_bytes()).await;
    assert_eq!(r.status, 401);
    assert!(r.header("x-request-id").unwrap().len() <= 128);

    // A 100 KB filter in a .search body: the detail quotes a bounded excerpt.
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let filter = format!("userName eq \"{}\" and (", "z".repeat(100_000));
    let r = scim
        .post("/Users/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter}))
        .await;
    assert_eq!(r.status, 400, "{}", &r.text[..200.min(r.text.len())]);
    assert!(r.text.len() < 2_000, "{} bytes", r.text.len());
}

/// Ids `.` and `..` (plain or encoded) never reach a legacy path: 404 for a resource, 400
/// for a member, and the legacy app sees no call for them.
#[tokio::test]
async fn dot_segment_ids_never_reach_the_legacy_app() {
    let stack = stack("default", None).await;
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let legacy = Legacy::new(&stack.legacy_url, &stack.legacy_key);
    let before = legacy.get("/__demo/state").await["requests_total"].clone();
    for id in ["%2e%2e", "%2E", "..", "%2e"] {
        for method in ["GET", "DELETE", "PATCH", "PUT"] {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []});
            let r = scim
                .call(method, &format!("/Users/{id}"), Some(&body))
                .await;
            assert_eq!(r.status, 404, "{method} /Users/{id}: {}", r.text);
            assert_eq!(
                r.json["schemas"][0],
                "urn:ietf:params:scim:api:messages:2.0:Error"
            );
        }
    }
    let after = legacy.get("/__demo/state").await["requests_total"].clone();
    assert_eq!(before, after, "no legacy call for dot ids");

    // A member `..` in a group PATCH: refused, and the team is untouched.
    let g = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "dots"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let gid = g.json["id"].as_str().unwrap().to_string();
    for value in ["..", "."] {
        for op in ["add", "remove"] {
            let r = scim
                .patch(
                    &format!("/Groups/{gid}"),
                    &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": op, "path": "members", "value": [{"value": value}]}]}),
                )
                .await;
            assert_eq!(r.status, 400, "{op} {value}: {}", r.text);
        }
    }
    let state = legacy.get("/__demo/state").await;
    assert_eq!(state["teams"], 1, "the team still exists: {state}");
    let routes = state["by_route"].as_object().unwrap();
    assert!(
        !routes
            .keys()
            .any(|k| k.contains("/..") || k.ends_with("/.")),
        "{routes:?}"
    );
    let _ = enc;
    let _: Option<IpAddr> = None;
}

/// The admin login: `next` only leads to a path on this listener, and failed logins lock
/// out only the address they came from.
#[tokio::test]
async fn admin_login_is_throttled_per_client_and_next_stays_local() {
    let stack = stack("default", None).await;
    let admin = addr_of(&stack.admin_url);
    let origin = stack.admin_url.clone();
    let login = |password: &str, next: &str| {
        let body = format!("password={}&next={}", enc(password), next);
        format!(
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len(),
            host = admin,
        )
    };
    for next in [
        "%2F%09%2Fevil.example%2Fx",
        "%2F%5Cevil.example",
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example",
    ] {
        let r = raw_from(
            [127, 0, 0, 1],
            admin,
            login(&stack.admin_password, next).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("/"), "next={next}");
    }
    let r = raw_from(
        [127, 0, 0, 1],
        admin,
        login(&stack.admin_password, "%2Faudit%3Fpage%3D2").as_bytes(),
    )
    .await;
    assert_eq!(r.header("location"), Some("/audit?page=2"));

    for _ in 0..10 {
        let r = raw_from(
            [127, 0, 0, 7],
            admin,
            login("wrong-password-x", "%2F").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = raw_from(
        [127, 0, 0, 7],
        admin,
        login(&stack.admin_password, "%2F").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 429, "this address is throttled");
    let r = raw_from(
        [127, 0, 0, 8],
        admin,
        login(&stack.admin_password, "%2F").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303, "another address signs in: {}", r.body);
}

fn broken_profile() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/profiles/broken/scimgate.toml")
}

/// Two runaway scripts at once (an array grown towards its size limit) on a two-worker
/// runtime: each is stopped by a 3 s budget with a 500, and meanwhile other SCIM requests
/// and /healthz are answered promptly (run inline on the workers, they stalled for the
/// whole budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_scripts_are_stopped_and_do_not_stall_others() {
    fn budget(cfg: &mut Config) {
        cfg.server.script_timeout_ms = 3_000;
    }
    let stack = DemoStack::start(DemoOptions {
        adjust: Some(budget),
        config: broken_profile(),
        ..DemoOptions::for_tests("broken")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let spin = |n: u32| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
               "userName": format!("spin{n}"), "title": "spin", "active": true})
    };
    let started = Instant::now();
    let runaways: Vec<_> = (0..2)
        .map(|n| {
            let scim = scim.clone();
            let body = spin(n);
            tokio::spawn(async move { scim.post("/Users", &body).await })
        })
        .collect();
    // The probes run on a thread and runtime of their own: the gateway's runtime is the one
    // under test, and a probe sharing it could not tell a stalled worker from its own wait.
    let admin = addr_of(&stack.admin_url);
    let scim_addr = addr_of(&stack.scim_url);
    let token = stack.token.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let prober = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let mut worst = Duration::ZERO;
            let mut probes = 0;
            while !stop2.load(std::sync::atomic::Ordering::Acquire) {
                let t = Instant::now();
                let auth = format!("Bearer {token}");
                let r = raw_from(
                    [127, 0, 0, 1],
                    scim_addr,
                    &get("/scim/v2/ServiceProviderConfig", &auth),
                )
                .await;
                assert_eq!(r.status, 200);
                let h = raw_from(
                    [127, 0, 0, 1],
                    admin,
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                )
                .await;
                assert_eq!(h.status, 200);
                worst = worst.max(t.elapsed());
                probes += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (worst, probes)
        })
    });
    for t in runaways {
        let r = t.await.unwrap();
        assert_eq!(r.status, 500, "{}", r.text);
        assert!(r.text.contains("see the gateway log"), "{}", r.text);
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (worst, probes) = prober.join().unwrap();
    assert!(
        took < Duration::from_secs(8),
        "stopped within the budget: {took:?}"
    );
    assert!(
        took > Duration::from_millis(2500),
        "the scripts did run away: {took:?}"
    );
    assert!(probes >= 5, "{probes} probes");
    assert!(
        worst < Duration::from_millis(1200),
        "other requests waited {worst:?} while scripts ran away"
    );
}

/// A reload (SIGHUP) is checked exactly as startup is: scripts without `to_backend` are
/// refused, the running ones stay (creates still work), and the refusal is counted.
#[tokio::test]
async fn a_reload_that_startup_would_refuse_keeps_the_running_scripts() {
    // A private copy of the broken profile, so its scripts can be edited.
    let root = std::env::temp_dir().join(format!("scimgate-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let src = broken_profile().parent().unwrap().to_path_buf();
    copy_dir(&src, &root);
    let stack = DemoStack::start(DemoOptions {
        config: root.join("scimgate.toml"),
        ..DemoOptions::for_tests("broken")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let user_rhai = std::fs::read_dir(root.join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path().join("user.rhai"))
        .find(|p| p.exists())
        .unwrap();
    let good = std::fs::read_to_string(&user_rhai).unwrap();
    let without = good.replace("fn to_backend(user, ctx)", "fn to_backend_gone(user, ctx)");
    std::fs::write(&user_rhai, &without).unwrap();
    let errs = stack.gateway.reload().await.outcome.unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("no function to_backend")),
        "{errs:?}"
    );
    let check = scimgate::app::check(
        &scimgate::app::load_with_profile(&root.join("scimgate.toml"), "broken").unwrap(),
    );
    assert!(
        check.iter().any(|e| e.contains("no function to_backend")),
        "{check:?}"
    );
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "after.reload", "active": true});
    let r = scim.post("/Users", &body).await;
    assert_eq!(r.status, 201, "the running scripts stayed: {}", r.text);
    let metrics = reqwest_metrics(&stack.admin_url).await;
    assert!(
        metrics.contains("scimgate_script_reloads_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );
    std::fs::write(&user_rhai, &good).unwrap();
    stack.gateway.reload().await.outcome.unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

async fn reqwest_metrics(admin_url: &str) -> String {
    let r = raw_from(
        [127, 0, 0, 1],
        addr_of(admin_url),
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    r.body
}

/// `/readyz` asks the legacy app over HTTP: a listening app that hangs is not ready.
#[tokio::test]
async fn readiness_needs_an_answer_not_just_a_socket() {
    let stack = stack("default", None).await;
    let admin = addr_of(&stack.admin_url);
    let legacy = Legacy::new(&stack.legacy_url, &stack.legacy_key);
    let probe = b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let r = raw_from([127, 0, 0, 1], admin, probe).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let arm = legacy
        .call(
            "POST",
            "/__demo/faults",
            Some(&json!({"mode": "delay", "delay_ms": 5000, "count": 100})),
        )
        .await;
    assert_eq!(arm.status, 200, "{}", arm.text);
    let started = Instant::now();
    let r = raw_from([127, 0, 0, 1], admin, probe).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("no answer within"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A NUL (or any control character but tab, CR, LF) in a string attribute is a 400 that
/// names the attribute, for POST and PATCH alike; nothing reaches the legacy app.
#[tokio::test]
async fn control_characters_are_refused_in_strings() {
    let stack = stack("default", None).await;
    let scim = Scim::new(&stack.scim_url, &stack.token);
    let r = scim
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "nul\u{0}user", "active": true}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
    assert!(
        r.json["detail"].as_str().unwrap().contains("userName"),
        "{}",
        r.text
    );
    let ok = scim
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "ctl.user", "active": true}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let id = ok.json["id"].as_str().unwrap();
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": "bell\u{7}"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["scimType"], "invalidValue");
}
