//! API keys from the store as SCIM bearer tokens: a live key is accepted over a real socket,
//! a revoked or expired one gets a SCIM 401, and `scimgate token create / list / revoke` (run as
//! a real process) manage keys without ever storing or listing the key itself.

mod common;

use common::Scim;
use common::process::{Scratch, demo_on_sqlite};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::store::{KeyStore, Store};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TEST_CONNECTION: &str = "/Users?filter=userName%20eq%20%22nobody%40example.com%22";

/// Every byte of the SQLite database and its journal files, for secret-leak checks.
fn database_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(b) = std::fs::read(PathBuf::from(p)) {
            all.extend(b);
        }
    }
    assert!(!all.is_empty(), "no database at {}", db.display());
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_scim_401(r: &common::Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    assert_eq!(
        r.json["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{what}: {}",
        r.text
    );
    assert_eq!(r.json["status"], "401", "{what}: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_keys_authenticate_scim_calls_until_revoked_or_expired() {
    let scratch = Scratch::new("gateway");
    // A directory that does not exist yet: the gateway creates it.
    let db = scratch.0.join("state/keys.db");
    let url = format!("sqlite://{}", db.display());
    let stack = DemoStack::start(DemoOptions {
        store_url: Some(url.clone()),
        ..DemoOptions::for_tests("default")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(db.exists(), "the gateway opened {}", db.display());

    // Keys are issued through a second connection, as `scimgate token create` would while
    // the gateway runs.
    let admin = Store::open(&url).await.unwrap();
    let (info, key) = admin.create_key("Entra Sync", None).await.unwrap();
    let (_, expired) = admin
        .create_key(
            "stale",
            Some(chrono::Utc::now() - chrono::Duration::minutes(5)),
        )
        .await
        .unwrap();

    let entra = Scim::new(&stack.scim_url, &key);
    let r = entra.get(TEST_CONNECTION).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 0);
    let r = Scim::new(&stack.scim_url, &stack.token)
        .get(TEST_CONNECTION)
        .await;
    assert_eq!(r.status, 200, "the static token still works: {}", r.text);

    let used = admin.list_keys().await.unwrap();
    let used = used.iter().find(|k| k.id == info.id).unwrap();
    assert!(used.last_used.is_some(), "the use was recorded");

    assert_scim_401(
        &Scim::new(&stack.scim_url, &expired)
            .get(TEST_CONNECTION)
            .await,
        "expired key",
    );
    let wrong_secret = format!("{}{}", &key[..key.len() - 64], "0".repeat(64));
    assert_scim_401(
        &Scim::new(&stack.scim_url, &wrong_secret)
            .get(TEST_CONNECTION)
            .await,
        "right id, wrong secret",
    );

    assert!(admin.revoke_key(&info.id).await.unwrap());
    let r = entra.get(TEST_CONNECTION).await;
    assert_scim_401(&r, "revoked key");
    assert!(!r.text.contains(&key));

    admin.close().await;
    stack.gateway.shutdown().await;
    let bytes = database_bytes(&db);
    assert!(contains(&bytes, "Entra Sync"), "the check reads the file");
    assert!(!contains(&bytes, &key), "the key itself is never stored");
    assert!(!contains(&bytes, &key[key.len() - 64..]));
}

// ---- the CLI --------------------------------------------------------------------------------

fn scimgate(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("token")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `<dir>/config/scimgate.toml` using this crate's profiles and a store at the relative path
/// `data/keys.db`, which resolves to `<dir>/data/keys.db`.
fn config_with_store(dir: &Path) -> PathBuf {
    let repo = env!("CARGO_MANIFEST_DIR");
    let file = dir.join("config/scimgate.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!(
            "[auth]\ntokens = []\n[store]\nurl = \"sqlite://data/keys.db\"\n\
             [profile]\nname = \"default\"\ndir = '{repo}'\n"
        ),
    )
    .unwrap();
    file
}

#[test]
fn token_cli_creates_lists_and_revokes_without_revealing_keys() {
    let scratch = Scratch::new("cli");
    let config = config_with_store(&scratch.0);
    let db = scratch.0.join("data/keys.db");

    let out = scimgate(
        &config,
        &["create", "--name", "Entra Sync", "--expires", "90d"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let key = stdout.trim().to_string();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the key on stdout: {stdout}"
    );
    assert!(key.starts_with("sgk_"), "{stdout}");
    assert!(stderr.contains("will not be shown again"), "{stderr}");
    let id = key.split('_').nth(1).unwrap().to_string();
    let secret = key.split('_').nth(2).unwrap().to_string();

    let out = scimgate(&config, &["create", "--name", "forever"]);
    assert!(out.status.success(), "{:?}", text(&out));

    let out = scimgate(&config, &["list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ID "), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "header and two keys: {stdout}");
    let row = stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("Entra Sync"), "{row}");
    let expires = (chrono::Utc::now() + chrono::Duration::days(90))
        .format("%Y-%m-%d")
        .to_string();
    assert!(row.contains(&expires), "expires in 90 days: {row}");
    assert!(row.trim_end().ends_with('-'), "not revoked: {row}");
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));

    let out = scimgate(&config, &["revoke", &id]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, _) = text(&scimgate(&config, &["list"]));
    let row = stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(!row.trim_end().ends_with('-'), "revoked: {row}");
    assert!(!stdout.contains(&secret));

    let out = scimgate(&config, &["revoke", "0000000000000000"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no key with id"), "{:?}", text(&out));

    let bytes = database_bytes(&db);
    assert!(contains(&bytes, "Entra Sync"), "the check reads the file");
    assert!(!contains(&bytes, &key) && !contains(&bytes, &secret));

    // A store URL the gateway cannot use: the commands refuse to run and say why.
    let bad = scratch.0.join("config/bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("sqlite://data/keys.db", "mysql://u:hunter2@h/db"),
    )
    .unwrap();
    let out = scimgate(&bad, &["list"]);
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(stderr.contains("store.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_from_the_cli_opens_the_gateway() {
    let scratch = Scratch::new("cli-gateway");
    let config = config_with_store(&scratch.0);
    let out = scimgate(&config, &["create", "--name", "Entra Sync"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let key = text(&out).0.trim().to_string();
    // The gateway opens the store the CLI wrote to.
    let db = scratch.0.join("data/keys.db");
    let stack = DemoStack::start(DemoOptions {
        config,
        store_url: Some(format!("sqlite://{}", db.display())),
        ..DemoOptions::for_tests("default")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let r = Scim::new(&stack.scim_url, &key).get(TEST_CONNECTION).await;
    assert_eq!(r.status, 200, "{}", r.text);
    stack.gateway.shutdown().await;
}

/// Basic credentials (user name + password, argon2id in the store) authenticate SCIM calls for
/// products that hand Entra a user name and password; wrong, unknown or malformed ones get a
/// SCIM 401, and the database never holds the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_from_the_store_authenticate_scim_calls() {
    use base64::Engine as _;
    use scimgate::store::BasicCredentials;
    let scratch = Scratch::new("basic");
    let db = scratch.0.join("basic.db");
    let (stack, store) = demo_on_sqlite(&scratch, "basic.db").await;
    let password = "correct horse battery staple";
    store.set_password("entra-sync", password).await.unwrap();

    let http = common::Http::new();
    let url_tc = format!("{}{TEST_CONNECTION}", stack.scim_url);
    let basic = |user: &str, pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    };
    let r = http
        .raw(
            "GET",
            &url_tc,
            &[("authorization", &basic("entra-sync", password))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 0);
    for (what, header) in [
        ("wrong password", basic("entra-sync", "not the password")),
        ("unknown user", basic("someone", password)),
        ("not base64", "Basic !!!".to_string()),
        (
            "no colon",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("entra-sync")
            ),
        ),
    ] {
        let r = http
            .raw("GET", &url_tc, &[("authorization", &header)], None)
            .await;
        assert_scim_401(&r, what);
        assert!(!r.text.contains(password), "{what}");
    }
    store.close().await;
    assert!(
        !contains(&database_bytes(&db), password),
        "password stored in clear"
    );
    assert!(contains(&database_bytes(&db), "$argon2id$"));

    // The static token keeps working beside Basic.
    let r = Scim::new(&stack.scim_url, &stack.token)
        .get(TEST_CONNECTION)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `scimgate basic set` reads the password from standard input and stores only its hash;
/// `basic remove` deletes it; bad input changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_cli_sets_and_removes_credentials() {
    use scimgate::store::BasicCredentials;
    use std::io::Write;
    use std::process::Stdio;
    let scratch = Scratch::new("basic-cli");
    let config = config_with_store(&scratch.0);
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scimgate"))
            .arg("basic")
            .args(args)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let db = scratch.0.join("data/keys.db");
    // Too short: refused before any database exists.
    let out = run(&["set", "--username", "entra"], "short\n");
    assert!(!out.status.success());
    assert!(!db.exists());
    let password = "a long enough password";
    let out = run(&["set", "--username", "entra"], &format!("{password}\n"));
    assert!(out.status.success(), "{:?}", text(&out));
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert!(store.verify_password("entra", password).await.unwrap());
    assert!(
        !store
            .verify_password("entra", "a long enough passwor")
            .await
            .unwrap()
    );
    store.close().await;
    assert!(!contains(&database_bytes(&db), password));
    let out = run(&["remove", "--username", "entra"], "");
    assert!(out.status.success(), "{:?}", text(&out));
    let out = run(&["remove", "--username", "entra"], "");
    assert!(!out.status.success(), "removing twice is an error");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert!(!store.verify_password("entra", password).await.unwrap());
    store.close().await;
}
