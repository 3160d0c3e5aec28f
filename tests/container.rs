//! The container image as the README runs it: build (the runtime stage, with this test's
//! binary), the README's `docker volume create` + `docker run` lines, the HEALTHCHECK reaching
//! `healthy`, Entra's Test Connection, an API key issued inside the container, a restart, and
//! the key still accepted (the store lives on the volume).
//!
//! Needs a Docker engine with BuildKit (Debian's `docker.io`). Where none runs the test prints
//! SKIP and passes, unless `SCIMGATE_REQUIRE_DOCKER=1` (set by `.ci/run`).
//! `SCIMGATE_DOCKER_BASE` names the runtime's base image (default `debian:bookworm-slim`).

mod common;

use common::Scim;
use scimgate::demo::{DemoApp, DemoConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const LEGACY_KEY: &str = "container-legacy-key";

fn required() -> bool {
    std::env::var("SCIMGATE_REQUIRE_DOCKER").is_ok_and(|v| v == "1")
}

/// Debian's client first: it builds with the engine's own BuildKit, where a newer client
/// wants the buildx plugin.
fn docker_bin() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new(docker_bin())
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + String::from_utf8_lossy(&o.stderr).as_ref()
}

fn skip_or_fail(reason: &str) {
    if required() {
        panic!("SCIMGATE_REQUIRE_DOCKER=1 but {reason}");
    }
    eprintln!("SKIP container test: {reason}");
}

/// The README's `docker volume create` + `docker run` lines (the block after the
/// `docker-run` marker), with this test's volume, name, ports and image.
fn readme_run_lines(volume: &str, name: &str, scim_port: u16, admin_port: u16) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let marker = readme
        .find("<!-- docker-run:")
        .expect("the README marks its docker run lines");
    let block = &readme[marker..];
    let start = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + block[start..].find("```").expect("the block's end");
    let lines = &block[start..end];
    assert!(
        lines.contains("docker volume create scimgate-data"),
        "{lines}"
    );
    assert!(lines.contains("--name scimgate "), "{lines}");
    assert!(
        lines.contains("-p 8080:8080 -p 127.0.0.1:9100:9100"),
        "{lines}"
    );
    assert!(lines.trim_end().ends_with("  scimgate"), "{lines}");
    let lines = lines
        .replace("scimgate-data", volume)
        .replace("--name scimgate ", &format!("--name {name} "))
        .replace(
            "-p 8080:8080 -p 127.0.0.1:9100:9100",
            &format!("-p 127.0.0.1:{scim_port}:8080 -p 127.0.0.1:{admin_port}:9100"),
        );
    let trimmed = lines.trim_end();
    format!(
        "{}scimgate:container-test\n",
        &trimmed[..trimmed.len() - "scimgate".len()]
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health(name: &str) -> String {
    let o = docker(&["inspect", "-f", "{{.State.Health.Status}}", name]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

async fn wait_healthy(name: &str) {
    let started = Instant::now();
    loop {
        let h = health(name);
        if h == "healthy" {
            return;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let logs = text(&docker(&["logs", name]));
            panic!("{name} not healthy after 90 s (last: {h:?}); logs:\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Removes the container and volume when the test ends, whatever its outcome.
struct Cleanup(String, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
        let _ = docker(&["volume", "rm", "-f", &self.1]);
    }
}

#[tokio::test]
async fn the_readme_container_starts_healthy_serves_entra_and_keeps_its_keys() {
    let info = Command::new(docker_bin())
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match &info {
        Ok(o) if o.status.success() => {}
        Ok(o) => return skip_or_fail(&format!("no Docker engine answers: {}", text(o).trim())),
        Err(e) => return skip_or_fail(&format!("no docker command: {e}")),
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = Path::new(env!("CARGO_BIN_EXE_scimgate"));
    let Ok(relative) = binary.strip_prefix(repo) else {
        return skip_or_fail(&format!(
            "the test binary {} is outside the build context {}",
            binary.display(),
            repo.display()
        ));
    };
    let base =
        std::env::var("SCIMGATE_DOCKER_BASE").unwrap_or_else(|_| "debian:bookworm-slim".into());
    let build = docker(&[
        "build",
        "--build-arg",
        "BINARY=host",
        "--build-arg",
        &format!("HOST_BINARY={}", relative.display()),
        "--build-arg",
        &format!("RUNTIME_BASE={base}"),
        "-t",
        "scimgate:container-test",
        repo.to_str().unwrap(),
    ]);
    if !build.status.success() {
        return skip_or_fail(&format!("the image did not build:\n{}", text(&build)));
    }

    // The application, on the host, reached from the container over Docker's bridge.
    let legacy = DemoApp::start("0.0.0.0:0", DemoConfig::with_api_key(LEGACY_KEY))
        .await
        .unwrap();
    let legacy_port = legacy.base_url().rsplit(':').next().unwrap().to_string();
    // The bridge's gateway (the host's side): stated, or the subnet's first address, as
    // Docker assigns it.
    let ipam = text(&docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}} {{.Subnet}}{{end}}",
    ]));
    let gateway_ip = match ipam.split_whitespace().collect::<Vec<_>>()[..] {
        [gw, _] => gw.to_string(),
        [subnet] => {
            let net: std::net::Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
            std::net::Ipv4Addr::from(u32::from(net) + 1).to_string()
        }
        _ => String::new(),
    };
    assert!(!gateway_ip.is_empty(), "the bridge's gateway address");

    let id = uuid::Uuid::new_v4().simple().to_string();
    let (name, volume) = (format!("scimgate-test-{id}"), format!("scimgate-data-{id}"));
    let _cleanup = Cleanup(name.clone(), volume.clone());
    let (scim_port, admin_port) = (free_port(), free_port());
    let token = format!("container-token-{id}");
    let run = Command::new("sh")
        .arg("-ec")
        .arg(readme_run_lines(&volume, &name, scim_port, admin_port))
        .env("PATH", path_with_docker())
        .env("DOCKER_BUILDKIT", "1")
        .env("SCIM_TOKEN", &token)
        .env("LEGACY_URL", format!("http://{gateway_ip}:{legacy_port}"))
        .env("LEGACY_KEY", LEGACY_KEY)
        .output()
        .unwrap();
    assert!(run.status.success(), "the README's lines: {}", text(&run));

    wait_healthy(&name).await;
    let scim = Scim::new(&format!("http://127.0.0.1:{scim_port}/scim/v2"), &token);
    // Entra's Test Connection: a filter on a random userName, 200 with an empty list.
    let probe = format!(
        "/Users?filter=userName%20eq%20%22{}%22",
        uuid::Uuid::new_v4()
    );
    let r = scim.get(&probe).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);

    // The process is not root, and the store is on the volume.
    let whoami = docker(&["exec", &name, "id", "-u"]);
    assert_eq!(text(&whoami).trim(), "10001");
    let created = docker(&[
        "exec", &name, "scimgate", "token", "create", "--name", "entra",
    ]);
    assert!(created.status.success(), "{}", text(&created));
    let key = String::from_utf8_lossy(&created.stdout)
        .lines()
        .find(|l| l.starts_with("sgk_"))
        .expect("the key on stdout")
        .to_string();
    assert_eq!(Scim::new(&scim.base, &key).get(&probe).await.status, 200);

    let restarted = docker(&["restart", &name]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    let started = Instant::now();
    let r = loop {
        if let Ok(r) = Scim::new(&scim.base, &key)
            .try_call("GET", &probe, None)
            .await
        {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "back after restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 200, "the key survived the restart: {}", r.text);
    wait_healthy(&name).await;
    let logs = text(&docker(&["logs", &name]));
    assert!(logs.contains("scimgate serving SCIM at"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "no colour codes in docker logs");
}

/// `PATH` with Debian's docker client first, so the README's `docker` is the one that builds.
fn path_with_docker() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    match docker_bin().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => format!("{}:{path}", dir.display()),
        _ => path,
    }
}
