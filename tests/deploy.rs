//! What ops meet when they deploy `scimgate serve`: JSON logs one object per line on stderr
//! (the start banner one of them, stdout empty), secrets read from mounted files, and the
//! demo token or a short static token refused at start with a message that says the fix.

mod common;

use common::Scim;
use common::process::{GatewayProcess, Scratch, write_config};
use scimgate::demo::{DemoApp, DemoConfig};
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const LEGACY_KEY: &str = "deploy-legacy-key";

/// Runs `scimgate serve` to its end (it is expected to refuse to start) and returns its exit
/// success, stdout and stderr.
fn serve_refused(config: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimgate"));
    cmd.arg("serve").arg("--config").arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("`serve` started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_the_demo_token_and_short_static_tokens() {
    let scratch = Scratch::new("deploy-refuse");
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let config = write_config(
        &scratch.0,
        &store,
        "demo-scim-token-change-me",
        "default",
        "",
    );
    let env = [("SCIMGATE_BACKEND__BASE_URL", "http://127.0.0.1:9")];
    let (ok, stdout, stderr) = serve_refused(&config, &env);
    assert!(!ok, "refused: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("the demo token is refused"), "{stderr}");
    assert!(
        stderr.contains("SCIMGATE_AUTH__TOKENS"),
        "says the fix: {stderr}"
    );
    assert!(stderr.contains("scimgate token create"), "{stderr}");

    let config = write_config(&scratch.0, &store, "short-but-not-demo", "default", "");
    let (ok, _, stderr) = serve_refused(&config, &env);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("18 characters; `serve` needs at least 32"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short-but-not-demo"),
        "the token is not echoed: {stderr}"
    );
    // The environment overrides a file's token, and a long one starts.
    let long = "a-static-token-of-forty-characters-00000";
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let base = legacy.base_url();
    let gw = GatewayProcess::start(
        &config,
        &[
            ("SCIMGATE_AUTH__TOKENS", long),
            ("SCIMGATE_BACKEND__BASE_URL", &base),
            ("SCIMGATE_BACKEND__AUTH__VALUE", LEGACY_KEY),
        ],
    );
    let r = Scim::new(&gw.scim_url, long)
        .get("/Users?filter=userName%20eq%20%22nobody%22")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Every secret setting can come from a mounted file (`…_FILE`): here the SCIM tokens (two
/// lines: two tokens), the legacy app's API key and the admin password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_from_mounted_files() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let scratch = Scratch::new("deploy-secret-files");
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let config = write_config(
        &scratch.0,
        &store,
        "file-token-placeholder-is-replaced-by-env",
        "default",
        "",
    );
    let secrets = scratch.0.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let first = "first-token-from-a-mounted-secret-0001";
    let second = "second-token-from-a-mounted-secret-002";
    std::fs::write(secrets.join("tokens"), format!("{first}\n{second}\n")).unwrap();
    std::fs::write(secrets.join("legacy"), format!("{LEGACY_KEY}\n")).unwrap();
    std::fs::write(secrets.join("admin"), "admin-password-from-file\n").unwrap();
    let base = legacy.base_url();
    let file = |n: &str| secrets.join(n).display().to_string();
    let (tokens, legacy_file, admin) = (file("tokens"), file("legacy"), file("admin"));
    let gw = GatewayProcess::start(
        &config,
        &[
            ("SCIMGATE_AUTH__TOKENS_FILE", &tokens),
            ("SCIMGATE_BACKEND__BASE_URL", &base),
            ("SCIMGATE_BACKEND__AUTH__VALUE_FILE", &legacy_file),
            ("SCIMGATE_ADMIN__PASSWORD_FILE", &admin),
        ],
    );
    for token in [first, second] {
        let scim = Scim::new(&gw.scim_url, token);
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                          "userName": format!("{}@example.com", &token[..5]), "active": true});
        // A create reaches the legacy app: its key came from the file.
        let r = scim.post("/Users", &user).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = Scim::new(&gw.scim_url, "file-token-placeholder-is-replaced-by-env")
        .get("/Users")
        .await;
    assert_eq!(r.status, 401, "the file's token replaced the config's");
    // The admin password from its file opens the status page.
    let admin_url = gw.admin_url.clone().expect("admin listener");
    let mut admin = common::admin::AdminClient::new(&admin_url);
    let r = admin.login("admin-password-from-file").await;
    assert_eq!(
        r.status, 303,
        "admin login with the password from the file: {}",
        r.text
    );

    // `scimgate health` reads only the admin address (here from a file, through the same
    // overlay): an unreadable secret file of another setting does not fail the probe.
    let admin_addr = admin_url.trim_start_matches("http://").to_string();
    let listen_file = secrets.join("admin-listen");
    std::fs::write(&listen_file, format!("{admin_addr}\n")).unwrap();
    let health = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .args(["health", "--config"])
        .arg(&config)
        .env("SCIMGATE_ADMIN__LISTEN_FILE", &listen_file)
        .env("SCIMGATE_AUTH__TOKENS_FILE", "/nonexistent/scim-tokens")
        .env("SCIMGATE_BACKEND__BASE_URL", &base)
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert!(String::from_utf8_lossy(&health.stdout).contains("ready"));

    // A missing file is named, and nothing starts.
    let (ok, _, stderr) = serve_refused(
        &config,
        &[
            ("SCIMGATE_AUTH__TOKENS_FILE", "/nonexistent/scim-tokens"),
            ("SCIMGATE_BACKEND__BASE_URL", &base),
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("SCIMGATE_AUTH__TOKENS_FILE: cannot read /nonexistent/scim-tokens"),
        "{stderr}"
    );
}

/// `[log] format = "json"`: every stderr line is one JSON object, numbers are numbers, the
/// start banner is one of these events, and stdout stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_numbers_and_the_banner() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let scratch = Scratch::new("deploy-json-log");
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let token = "json-log-token-0123456789abcdef0123";
    let config = write_config(&scratch.0, &store, token, "default", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("SCIMGATE_LOG__FORMAT", "json")
        .env("SCIMGATE_LOG", "scimgate=debug,warn")
        .env("SCIMGATE_BACKEND__BASE_URL", legacy.base_url())
        .env("SCIMGATE_BACKEND__AUTH__VALUE", LEGACY_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut tx = Some(tx);
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(b) = common::process::Banner::parse(&line)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(b.scim_url);
            }
            lines.push(line);
        }
        lines
    });
    let url = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("the banner in time")
        .expect("the banner");
    let scim = Scim::new(&url, token);
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "json.log@example.com", "active": true});
    assert_eq!(scim.post("/Users", &user).await.status, 201);
    common::process::signal(child.id(), "TERM");
    let _ = child.wait();
    let lines = log.join().unwrap();
    assert_eq!(stdout.join().unwrap(), "", "stdout stays empty");

    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(events.iter().all(Value::is_object));
    let field = |e: &Value, k: &str| e["fields"][k].clone();
    let banner = events
        .iter()
        .find(|e| field(e, "scim_url") == json!(url))
        .expect("the banner event");
    assert_eq!(banner["level"], "INFO");
    let request = events
        .iter()
        .find(|e| field(e, "message") == "request" && field(e, "op") == "create")
        .unwrap_or_else(|| panic!("the request line: {lines:#?}"));
    assert_eq!(field(request, "status"), json!(201));
    assert!(field(request, "ms").is_number(), "{request}");
    assert!(field(request, "legacy_calls").is_u64(), "{request}");
    let call = events
        .iter()
        .find(|e| field(e, "message") == "backend call")
        .unwrap_or_else(|| panic!("a backend call line: {lines:#?}"));
    assert!(field(call, "elapsed_ms").is_u64(), "a number: {call}");
    assert!(
        events
            .iter()
            .any(|e| field(e, "message") == "stopped" || field(e, "message") == "shutting down"),
        "the stop is logged"
    );
}

/// A GET as the declared Basic user of the test below.
async fn basic_get(url: &str) -> common::Resp {
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("entra-basic:a-basic-password-1234")
    );
    common::Http::new()
        .raw("GET", url, &[("authorization", basic.as_str())], None)
        .await
}

/// API keys and Basic credentials declared from mounted secrets, so a deployment needs no
/// `exec` into the container: `scimgate token new` / `basic hash` print the entries (opening
/// no store), `serve` adds them at start, and a restart with the same entries is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_keys_and_basic_users_work_without_the_cli_store_commands() {
    let legacy = DemoApp::start("127.0.0.1:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let scratch = Scratch::new("deploy-declared");
    let store = format!("sqlite://{}", scratch.0.join("store.db").display());
    let config = write_config(
        &scratch.0,
        &store,
        "declared-static-token-0123456789abcdef",
        "default",
        "",
    );
    let bin = env!("CARGO_BIN_EXE_scimgate");
    let out = Command::new(bin)
        .args(["token", "new", "--name", "entra-declared"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let (key, declared) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(key.starts_with("sgk_"), "{stdout}");
    assert!(
        !declared.contains(key) && declared.ends_with(":entra-declared"),
        "{declared}"
    );
    assert!(
        !scratch.0.join("store.db").exists(),
        "`token new` opens no store"
    );

    let mut hash = Command::new(bin)
        .args(["basic", "hash", "--username", "entra-basic"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = hash.stdin.take().unwrap();
        stdin.write_all(b"a-basic-password-1234\n").unwrap();
    }
    let out = hash.wait_with_output().unwrap();
    assert!(out.status.success());
    let basic_line = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        basic_line.starts_with("entra-basic:$argon2id$"),
        "{basic_line}"
    );

    let secrets = scratch.0.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("api-keys"), format!("{declared}\n")).unwrap();
    std::fs::write(secrets.join("basic-users"), format!("{basic_line}\n")).unwrap();
    let keys_file = secrets.join("api-keys").display().to_string();
    let users_file = secrets.join("basic-users").display().to_string();
    let base = legacy.base_url();
    let env = [
        ("SCIMGATE_AUTH__API_KEYS_FILE", keys_file.as_str()),
        ("SCIMGATE_AUTH__BASIC_USERS_FILE", users_file.as_str()),
        ("SCIMGATE_BACKEND__BASE_URL", base.as_str()),
        ("SCIMGATE_BACKEND__AUTH__VALUE", LEGACY_KEY),
    ];
    let probe = "/Users?filter=userName%20eq%20%22nobody%22";
    for round in 0..2 {
        // The second start finds the entries in the store already.
        let gw = GatewayProcess::start(&config, &env);
        let r = Scim::new(&gw.scim_url, key).get(probe).await;
        assert_eq!(r.status, 200, "round {round}: the declared key: {}", r.text);
        let r = basic_get(&format!("{}{probe}", gw.scim_url)).await;
        assert_eq!(
            r.status, 200,
            "round {round}: the declared Basic user: {}",
            r.text
        );
    }
    let list = Command::new(bin)
        .args(["token", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.matches("entra-declared").count(), 1, "{list}");

    // Lines removed from the secret: the key is withdrawn and the user removed at the next
    // start; back again, both work.
    std::fs::write(secrets.join("api-keys"), "").unwrap();
    std::fs::write(secrets.join("basic-users"), "").unwrap();
    {
        let gw = GatewayProcess::start(&config, &env);
        let r = Scim::new(&gw.scim_url, key).get(probe).await;
        assert_eq!(r.status, 401, "a key whose line was removed: {}", r.text);
        let r = basic_get(&format!("{}{probe}", gw.scim_url)).await;
        assert_eq!(r.status, 401, "a user whose line was removed");
    }
    std::fs::write(secrets.join("api-keys"), format!("{declared}\n")).unwrap();
    {
        let gw = GatewayProcess::start(&config, &env);
        let r = Scim::new(&gw.scim_url, key).get(probe).await;
        assert_eq!(r.status, 200, "the line is back: {}", r.text);
    }

    // The same id with another secret is refused at start; a malformed entry too.
    let (id, _) = declared.split_once(':').unwrap();
    std::fs::write(
        secrets.join("api-keys"),
        format!("{id}:{}:entra-declared\n", "ab".repeat(32)),
    )
    .unwrap();
    let (ok, _, stderr) = serve_refused(&config, &env);
    assert!(!ok);
    assert!(
        stderr.contains("exists in the store with another secret"),
        "{stderr}"
    );
    std::fs::write(secrets.join("api-keys"), "not-a-declaration\n").unwrap();
    let (ok, _, stderr) = serve_refused(&config, &env);
    assert!(!ok);
    assert!(
        stderr.contains("entry #1 is not `id:sha256hex:name`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-declaration"),
        "entries are not echoed: {stderr}"
    );
}
