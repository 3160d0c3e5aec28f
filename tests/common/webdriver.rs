//! A small W3C WebDriver client for end-to-end tests in headless Chromium: chromedriver is
//! started on a free loopback port and driven with plain JSON over HTTP. Every command has a
//! deadline; dropping the [`Browser`] ends the session and kills chromedriver's whole
//! process group (Chromium included), also when the test panicked.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Deadline of one WebDriver command (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long chromedriver may take to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// The W3C key under which an element reference arrives.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Set (to `1`) where a missing browser must fail the test instead of skipping it (CI).
pub const REQUIRE_ENV: &str = "SCIMGATE_REQUIRE_CHROMIUM";

/// A browser element, as the driver names it.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A running chromedriver with one headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
    http: Client<HttpConnector, Full<Bytes>>,
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// What to do when the browser is not installed: `Err` (fail) under CI, else print SKIP.
pub fn unavailable(reason: &str) -> Result<(), String> {
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        Err(format!(
            "{reason}, and {REQUIRE_ENV}=1 requires the browser (install: apt-get install -y chromium chromium-driver)"
        ))
    } else {
        println!(
            "SKIP: {reason} (install: apt-get install -y chromium chromium-driver; set {REQUIRE_ENV}=1 to make this a failure)"
        );
        Ok(())
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. `Ok(None)` when chromium or
    /// chromedriver is not installed and the environment does not require them (the caller
    /// returns; a SKIP line has been printed); `Err` when they are required or fail to start.
    pub async fn launch() -> Result<Option<Browser>, String> {
        let chromium = find_on_path(&["chromium", "chromium-browser", "google-chrome"]);
        let driver = find_on_path(&["chromedriver"]);
        let (chromium, driver) = match (chromium, driver) {
            (Some(c), Some(d)) => (c, d),
            (c, d) => {
                let missing: Vec<&str> = [("chromium", c.is_none()), ("chromedriver", d.is_none())]
                    .into_iter()
                    .filter_map(|(n, m)| m.then_some(n))
                    .collect();
                unavailable(&format!("{} not found on PATH", missing.join(" and ")))?;
                return Ok(None);
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for chromedriver: {e}"))?
            .port();
        let mut cmd = Command::new(&driver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so Drop can end chromedriver and every Chromium process
        // it started with one signal.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", driver.display()))?;
        let profile = std::env::temp_dir().join(format!(
            "scimgate-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut browser = Browser {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        browser.wait_ready().await?;
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--no-first-run".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", browser.profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.to_string_lossy(), "args": args},
            "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 10_000},
        }}});
        let created = browser.request("POST", "/session", Some(caps)).await?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {created}"))?
            .to_string();
        Ok(Some(browser))
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let until = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(v) = self.request("GET", "/status", None).await
                && v["ready"] == true
            {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "chromedriver did not get ready within {} s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One WebDriver call; `Ok` is the response's `value`, `Err` the driver's error or a
    /// transport failure or timeout.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within {COMMAND_TIMEOUT:?}"))??;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{method} {path}: {status}: not JSON ({e})"))?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    async fn session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.request(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    /// The current page's URL.
    pub async fn url(&self) -> Result<String, String> {
        let v = self.session_call("GET", "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching `css`, now (`Err` when there is none).
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        let v = self
            .session_call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|id| Element(id.to_string()))
            .ok_or_else(|| format!("{css}: no element reference in {v}"))
    }

    /// The first element matching `css`, waiting up to `within` for it to appear.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Result<Element, String> {
        let until = Instant::now() + within;
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if Instant::now() > until => {
                    return Err(format!("{css} did not appear within {within:?}: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Clicks an element (and waits for a navigation it starts).
    pub async fn click(&self, el: &Element) -> Result<(), String> {
        self.session_call("POST", &format!("/element/{}/click", el.0), Some(json!({})))
            .await
            .map(|_| ())
    }

    /// Types `text` into an element.
    pub async fn type_text(&self, el: &Element, text: &str) -> Result<(), String> {
        self.session_call(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .await
        .map(|_| ())
    }

    /// An element's rendered text.
    pub async fn text(&self, el: &Element) -> Result<String, String> {
        let v = self
            .session_call("GET", &format!("/element/{}/text", el.0), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text_of(&self, css: &str) -> Result<String, String> {
        let el = self.find(css).await?;
        self.text(&el).await
    }

    /// Runs `script` in the page and returns its result.
    pub async fn execute(&self, script: &str) -> Result<Value, String> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG of the viewport to `path` (directories created).
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        use base64::Engine as _;
        let v = self.session_call("GET", "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot is not base64: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Ends the session over a plain blocking socket (Drop cannot await), with short
    /// timeouts; errors are ignored because the process group is killed next anyway.
    fn delete_session_blocking(&self) {
        use std::io::{Read, Write};
        if self.session.is_empty() {
            return;
        }
        let Some(addr) = self.base.strip_prefix("http://") else {
            return;
        };
        let Ok(sock) = addr.parse::<std::net::SocketAddr>() else {
            return;
        };
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session
        );
        if s.write_all(req.as_bytes()).is_ok() {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.delete_session_blocking();
        // chromedriver leads its own process group; signal that group (Chromium included),
        // then reap the leader. bash's builtin kill is used on purpose: procps-ng 4.0.2's
        // /usr/bin/kill (Debian 12) misreads `-KILL -<pgid>` and signals every process.
        let pgid = self.driver.id();
        if pgid > 1 {
            let _ = Command::new("bash")
                .args(["-c", &format!("kill -s KILL -- -{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
