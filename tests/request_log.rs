//! What a running `scimgate serve` writes to its log: one line per SCIM request at info
//! (method, path, request id, status, latency, resource and operation, the number of legacy
//! calls), on stderr, without terminal colour codes when stderr is not a terminal, and
//! nothing lost at a graceful stop (the writer thread is flushed).

mod common;

use common::Scim;
use common::process::{Banner, Scratch, write_config};
use scimgate::demo::{DemoApp, DemoConfig};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// `scimgate serve` on a SQLite store in `scratch`, calling `legacy`, logging at `level`
/// (stdout and stderr left to the caller).
fn serve(scratch: &Scratch, token: &str, legacy: &DemoApp, level: &str) -> Command {
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let config = write_config(&scratch.0, &store, token, "default", "");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimgate"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("SCIMGATE_LOG", level)
        .env("SCIMGATE_BACKEND__BASE_URL", legacy.base_url())
        .env("SCIMGATE_BACKEND__AUTH__VALUE", "log-legacy-key");
    cmd
}

/// `GET {url}{path}` with `x-request-id: id`.
async fn get_as(scim: &Scim, url: &str, path: &str, id: &str) -> common::Resp {
    scim.http
        .json(
            "GET",
            &format!("{url}{path}"),
            &[("authorization", &scim.auth), ("x-request-id", id)],
            None,
        )
        .await
}

#[tokio::test]
async fn one_plain_line_per_request_on_stderr() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("log-legacy-key"))
        .await
        .unwrap();
    let scratch = Scratch::new("request-log");
    let token = "log-test-token-0123456789abcdef0123";
    let mut child = serve(&scratch, token, &legacy, "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut s);
        s
    });
    // The banner is the start event on stderr; the rest of stderr is kept for the checks.
    // (A tokio channel: this runtime also serves the demo app the gateway calls at start.)
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let log = std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut s = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(b) = Banner::parse(&line)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(b.scim_url);
            }
            s.push_str(&line);
            s.push('\n');
        }
        s
    });
    let url = tokio::time::timeout(std::time::Duration::from_secs(60), rx)
        .await
        .expect("the banner in time")
        .expect("the banner");

    let scim = Scim::new(&url, token);
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "log.line@example.com", "active": true});
    let r = scim.post("/Users", &user).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let r = get_as(&scim, &url, &format!("/Users/{id}"), "log-line-get-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get_as(&scim, &url, "/Users/0", "log-line-404").await;
    assert_eq!(r.status, 404, "{}", r.text);
    // With the legacy app gone, the request fails: what is logged within it (the backend
    // failure) and its own line both carry the request.
    legacy.shutdown().await;
    let r = get_as(&scim, &url, &format!("/Users/{id}"), "log-line-down").await;
    assert!(r.status >= 500, "{} {}", r.status, r.text);

    // A graceful stop flushes the log writer.
    common::process::signal(child.id(), "TERM");
    let _ = child.wait();
    let log = log.join().unwrap();
    assert_eq!(
        stdout.join().unwrap(),
        "",
        "stdout stays empty: the banner is a log event"
    );

    assert!(
        !log.contains('\u{1b}'),
        "no colour codes off a terminal:\n{log}"
    );
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("log-line-get-1"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the request:\n{log}");
    for want in [
        " INFO ",
        "method=GET",
        "path=/scim/v2/Users/",
        "status=200",
        "ms=",
        "resource=User",
        "op=get",
        "legacy_calls=1",
    ] {
        assert!(lines[0].contains(want), "{want} in {}", lines[0]);
    }
    // The whole line: the request as its span showed it, then the fields in order.
    let (time, rest) = lines[0].split_at(27);
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{}",
        lines[0]
    );
    let head = format!(
        "  INFO scim{{id=log-line-get-1 method=GET path=/scim/v2/Users/{id}}}: scimgate::server: request status=200 ms="
    );
    let ms = rest
        .strip_prefix(&head)
        .and_then(|r| r.strip_suffix(" resource=User op=get legacy_calls=1"))
        .unwrap_or_else(|| panic!("{}", lines[0]));
    assert!(ms.parse::<f64>().is_ok_and(|m| m > 0.0), "{}", lines[0]);
    let down: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("log-line-down"))
        .collect();
    assert!(down.len() >= 2, "{log}");
    for l in &down {
        assert!(
            l.contains(&format!(
                "WARN scim{{id=log-line-down method=GET path=/scim/v2/Users/{id}}}: scimgate::"
            )),
            "{l}"
        );
    }
    assert!(
        down.iter().any(|l| l.contains("backend call failed")),
        "{log}"
    );
    assert!(down.iter().any(|l| l.contains("request failed")), "{log}");
    let missing: Vec<&str> = log.lines().filter(|l| l.contains("log-line-404")).collect();
    assert_eq!(missing.len(), 1, "{log}");
    assert!(missing[0].contains("status=404"), "{}", missing[0]);
    // The create was logged too, as one line of its own.
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("op=create") && l.contains("status=201"))
            .count(),
        1,
        "{log}"
    );
}

/// A supervisor that closes the gateway's stdout (or never reads it) must not stop it: the
/// start banner is written to a closed pipe, and the gateway serves on (it panicked there).
#[tokio::test]
async fn a_closed_stdout_does_not_stop_the_gateway() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("log-legacy-key"))
        .await
        .unwrap();
    let scratch = Scratch::new("closed-stdout");
    let token = "closed-stdout-token-0123456789ab";
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let config = write_config(&scratch.0, &store, token, "default", "");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("SCIMGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("SCIMGATE_BACKEND__BASE_URL", legacy.base_url())
        .env("SCIMGATE_BACKEND__AUTH__VALUE", "log-legacy-key")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let url = format!("http://127.0.0.1:{port}/scim/v2");
    let scim = Scim::new(&url, token);
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = scim.try_call("GET", "/ServiceProviderConfig", None).await
            && r.status == 200
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the gateway exited");
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Past the banner lines: still running and serving.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the gateway exited");
    let r = scim.get("/Users?filter=userName%20eq%20%22nobody%22").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let _ = child.kill();
    let _ = child.wait();
}

/// Where a filter turns the request's lines off (`warn`: no info line), the lines logged
/// within a request show no request either, as when the request had a span and the filter
/// turned that span off (the JSON log still does so): one rule for every format.
#[tokio::test]
async fn a_filter_that_turns_request_lines_off_leaves_the_request_off_other_lines() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key("log-legacy-key"))
        .await
        .unwrap();
    let scratch = Scratch::new("request-log-warn");
    let token = "log-warn-token-0123456789abcdef01234";
    let stderr_path = scratch.0.join("stderr.log");
    let mut child = serve(&scratch, token, &legacy, "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if let Some(b) = text.lines().find_map(Banner::parse) {
            break b.scim_url;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let scim = Scim::new(&url, token);
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "log.warn@example.com", "active": true});
    let r = scim.post("/Users", &user).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    legacy.shutdown().await;
    let r = scim.get(&format!("/Users/{id}")).await;
    assert!(r.status >= 500, "{} {}", r.status, r.text);
    common::process::signal(child.id(), "TERM");
    let _ = child.wait();
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        !log.contains(" INFO scim{"),
        "no request line at warn:\n{log}"
    );
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("backend call failed") || l.contains("request failed"))
        .collect();
    assert!(failed.len() >= 2, "{log}");
    for l in failed {
        assert!(
            !l.contains("scim{") && l.contains("  WARN scimgate::"),
            "as with the span turned off: {l}"
        );
    }
}
