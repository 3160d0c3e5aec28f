//! `scimgate serve` as a real child process, for tests that kill it or run two of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A fresh scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("scimgate-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `<dir>/config/scimgate.toml` listening on ephemeral ports (SCIM and admin), with `store_url`, the
/// static token `token` and this crate's profile `profile`; `extra` is appended verbatim.
pub fn write_config(
    dir: &Path,
    store_url: &str,
    token: &str,
    profile: &str,
    extra: &str,
) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    write_config_with(dir, store_url, token, profile, repo, extra)
}

/// Like [`write_config`], with the profile loaded from `profile_dir` (its `config/profiles/`
/// and `scripts/`), e.g. a test fixture.
pub fn write_config_with(
    dir: &Path,
    store_url: &str,
    token: &str,
    profile: &str,
    profile_dir: &Path,
    extra: &str,
) -> PathBuf {
    let repo = profile_dir.display();
    let file = dir.join("config/scimgate.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\ntokens = [\"{token}\"]\n\
             [store]\nurl = \"{store_url}\"\n[log]\nlevel = \"warn\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [profile]\nname = \"{profile}\"\ndir = '{repo}'\n{extra}"
        ),
    )
    .unwrap();
    file
}

/// Sends signal `sig` (`TERM`, `HUP`) to process `pid` with the shell's own `kill` (no procps
/// needed on a bare machine); panics when it cannot be sent.
pub fn signal(pid: u32, sig: &str) {
    let sent = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {pid}"))
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{sig} {pid}");
}

/// Whether `taskset` (util-linux) is there to pin processes to a CPU.
pub fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A command running `program` pinned to CPU `cpu` when `taskset` exists (as it is
/// otherwise): benchmarks keep the measured process and the load generator apart.
pub fn pinned(cpu: u32, program: &Path) -> Command {
    if has_taskset() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpu.to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// User + system CPU time process `pid` has used so far (`/proc/PID/stat`).
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident memory of process `pid` in MB (`VmRSS`), 0 when it cannot be read.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The start event of `scimgate serve` (a log line on stderr, text or JSON): where SCIM and
/// the admin listener serve.
pub struct Banner {
    pub scim_url: String,
    pub admin_url: Option<String>,
}

impl Banner {
    /// `Some` for the start event's line.
    pub fn parse(line: &str) -> Option<Banner> {
        fn url_after(line: &str, prefix: &str) -> Option<String> {
            let rest = &line[line.find(prefix)? + prefix.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
                .unwrap_or(rest.len());
            Some(rest[..end].to_string())
        }
        Some(Banner {
            scim_url: url_after(line, "scimgate serving SCIM at ")?,
            admin_url: url_after(line, "/readyz and /metrics at "),
        })
    }
}

/// A running `scimgate serve`; killed (SIGKILL) when dropped.
pub struct GatewayProcess {
    pub child: Child,
    /// The SCIM base URL it printed.
    pub scim_url: String,
    /// The admin listener's URL it printed (`None` when the admin listener is off).
    pub admin_url: Option<String>,
}

impl GatewayProcess {
    /// Starts `scimgate serve --config config` with extra environment variables and waits (at
    /// most 60 s) for the line announcing the SCIM URL.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> GatewayProcess {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_scimgate")), config, env)
    }

    /// As [`GatewayProcess::start`], with the binary `bin` (e.g. an older build to compare
    /// with), pinned to CPU `cpu` when `taskset` exists: benchmarks run the gateway on a core
    /// of its own, apart from the load generator.
    pub fn start_pinned(
        bin: &Path,
        cpu: u32,
        config: &Path,
        env: &[(&str, &str)],
    ) -> GatewayProcess {
        Self::spawn(pinned(cpu, bin), config, env)
    }

    fn spawn(mut cmd: Command, config: &Path, env: &[(&str, &str)]) -> GatewayProcess {
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn scimgate serve");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Builds before the banner became a log event printed it on stdout; benchmarks start
        // such builds as their baseline.
        let old_style = tx.clone();
        std::thread::spawn(move || {
            let mut tx = Some(old_style);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(banner) = Banner::parse(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(banner);
                }
            }
        });
        // The log goes on to this process's stderr, as it would with the stream inherited.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                if let Some(banner) = Banner::parse(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(banner);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => GatewayProcess {
                child,
                scim_url: b.scim_url,
                admin_url: b.admin_url,
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("scimgate serve did not start (exit: {status:?})");
            }
        }
    }

    /// The process id (taskset execs the gateway, so it is the gateway's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time the process has used so far (`/proc/PID/stat`).
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }

    /// SIGKILL: no shutdown hook, no flush, no checkpoint.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scimgate demo` (default profile) whose store is the SQLite file `<scratch>/<file>`, plus
/// a second handle on that store for the test to read and seed.
pub async fn demo_on_sqlite(
    scratch: &Scratch,
    file: &str,
) -> (scimgate::app::DemoStack, scimgate::store::Store) {
    let url = format!("sqlite://{}", scratch.0.join(file).display());
    let stack = scimgate::app::DemoStack::start(scimgate::app::DemoOptions {
        store_url: Some(url.clone()),
        ..scimgate::app::DemoOptions::for_tests("default")
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let store = scimgate::store::Store::open(&url).await.unwrap();
    (stack, store)
}
