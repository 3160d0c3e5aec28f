//! The `scimgate` command line.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use scimgate::app::{DemoOptions, DemoStack};
use scimgate::config::{Config, LogFormat};
use scimgate::logging::LIFECYCLE;
use scimgate::store::{KeyId, KeyInfo, KeyStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the C library's malloc: a request allocates and frees many small
/// buffers (JSON values, headers, mapped records) across the runtime's threads, and glibc's
/// malloc took about 16 % of a GET's CPU (README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scimgate",
    version,
    about = "SCIM 2.0 gateway for legacy web applications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SCIM in front of the legacy API the config describes.
    Serve {
        /// Main configuration file.
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Run the gateway with the embedded demo legacy app; prints a token and a curl line.
    Demo {
        /// Bundled profile (config/profiles/<NAME>.toml, scripts/<NAME>/).
        #[arg(long, default_value = "default")]
        profile: String,
        /// SCIM listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Demo legacy app listener.
        #[arg(long, default_value = "127.0.0.1:8081")]
        legacy_listen: SocketAddr,
        /// Bearer token to accept (random if not given); for a pass-through Basic profile
        /// (smartfile) the app's KEY:PASSWORD; for a profile with `[scim_auth]`
        /// (enterprise-toolkit) the SCIM user's password.
        #[arg(long, env = "SCIMGATE_DEMO_TOKEN")]
        token: Option<String>,
        /// Admin listener (status page, API keys, /healthz, /readyz, /metrics).
        #[arg(long, default_value = "127.0.0.1:9100")]
        admin_listen: SocketAddr,
        /// Admin page password (random if not given; at least 12 characters).
        #[arg(long, env = "SCIMGATE_DEMO_ADMIN_PASSWORD")]
        admin_password: Option<String>,
        /// Main configuration file.
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and compile every script; reports all problems at once.
    Check {
        /// Check this profile instead of the configuration's `[profile] name`.
        #[arg(long)]
        profile: Option<String>,
        /// Main configuration file.
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Run a profile's script samples (`scripts/<profile>/tests/*.json`: a call and its
    /// expected result) and show a diff for each that fails.
    Test {
        /// Profile whose samples to run (default: the configuration's `[profile] name`).
        #[arg(long)]
        profile: Option<String>,
        /// Main configuration file.
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Run a mapping script on a sample file and print the result (a dry run for integrators).
    Map {
        /// Profile whose scripts to use.
        #[arg(long, default_value = "default")]
        profile: String,
        /// Resource type (User or Group).
        #[arg(long, default_value = "User")]
        resource: String,
        /// JSON input file.
        #[arg(long)]
        input: PathBuf,
        /// to-backend (SCIM → legacy) or from-backend (legacy → SCIM).
        #[arg(long, default_value = "to-backend")]
        direction: String,
        /// The operation scripts see in `ctx.op`: create, replace, patch, get or list
        /// (default: create for to-backend, get for from-backend).
        #[arg(long)]
        op: Option<String>,
        /// Lookup tables from a JSON file: `{"offices": {"key": "name", "records": […]}}`.
        #[arg(long, value_name = "FILE", conflicts_with = "live")]
        lookups: Option<PathBuf>,
        /// Lookup tables read from the running application (the profile's backend).
        #[arg(long)]
        live: bool,
        /// Main configuration file.
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Issue, list and revoke API keys (bearer tokens kept in the `[store]` database).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        /// Main configuration file (its `[store]`, or the default SQLite file).
        #[arg(long, global = true, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Probe a running gateway's readiness (`/readyz` on its admin listener); exit status 0
    /// when ready. For a container's HEALTHCHECK or a supervisor, with no curl needed.
    Health {
        /// The URL to probe (default: `/readyz` at the configuration's `[admin] listen`, a
        /// wildcard address probed on loopback).
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        /// Main configuration file (its `[admin] listen`, with the environment overlay).
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Manage HTTP Basic credentials (user name + password, argon2id-hashed in the `[store]`),
    /// for products that hand Entra a user name and password instead of a token.
    Basic {
        #[command(subcommand)]
        action: BasicAction,
        /// Main configuration file (its `[store]`, or the default SQLite file).
        #[arg(long, global = true, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// Show the audit log: SCIM writes (and failed reads), newest first.
    Audit {
        /// Only entries from this long ago onwards (24h, 7d, 30m) or since an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only this operation: create, replace, patch, delete, get, list, search.
        #[arg(long)]
        operation: Option<String>,
        /// Only this status class: 2, 4 or 5 (for 2xx, 4xx, 5xx).
        #[arg(long)]
        status: Option<u16>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Main configuration file (its `[store]`, or the default SQLite file).
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// List resources deleted over SCIM whose data the application keeps (404 over SCIM), or
    /// make one visible again (after the same person's account was reactivated in the app).
    Deleted {
        /// Resource type.
        #[arg(long = "type", default_value = "User")]
        resource_type: String,
        /// Remove this id's tombstone: the kept record answers over SCIM again.
        #[arg(long, value_name = "ID")]
        restore: Option<String>,
        /// Main configuration file (its `[store]`, or the default SQLite file).
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
    /// List operations that need several legacy calls and have not completed (pending:
    /// running or waiting for a retry; failed: out of attempts), or retry / abandon one.
    Plans {
        /// Only failed plans.
        #[arg(long)]
        failed: bool,
        /// Make this plan (its id) due at once, attempts counted afresh.
        #[arg(long, value_name = "ID", conflicts_with_all = ["abandon", "failed"])]
        retry: Option<String>,
        /// Stop this plan (its id) for good.
        #[arg(long, value_name = "ID", conflicts_with_all = ["retry", "failed"])]
        abandon: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Main configuration file (its `[store]`, or the default SQLite file).
        #[arg(long, default_value = "config/scimgate.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BasicAction {
    /// Set (or replace) a user's password; the password is read from standard input.
    Set {
        /// The user name Entra sends.
        #[arg(long)]
        username: String,
    },
    /// Remove a user's credentials.
    Remove {
        /// The user name.
        #[arg(long)]
        username: String,
    },
    /// Print the `[auth] basic_users` line for a user (the password, read from standard
    /// input, argon2id-hashed), to declare the credential in a configuration or a mounted
    /// secret instead of running `basic set` against the store. Opens no store.
    Hash {
        /// The user name Entra sends.
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Issue a key and print it once (only its hash is stored).
    Create {
        /// Who uses the key, e.g. "Entra Sync"; shown in lists and as the audit actor.
        #[arg(long)]
        name: String,
        /// Lifetime: 90d, 12h, 30m or never.
        #[arg(long, default_value = "never")]
        expires: String,
    },
    /// Make a key without storing it: prints the key (give it to Entra) and the `[auth]
    /// api_keys` line that declares it (its hash), for a configuration or a mounted secret.
    /// Opens no store.
    New {
        /// Who uses the key, e.g. "entra"; shown in lists and as the audit actor.
        #[arg(long)]
        name: String,
    },
    /// List every key (never the key itself).
    List,
    /// Revoke a key at once, by the id `token list` shows.
    Revoke {
        /// The key's public id.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scimgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problems) => {
            for p in problems {
                eprintln!("scimgate: {p}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs until Ctrl-C / SIGTERM; SIGHUP reloads the configuration (profile, scripts, auth).
async fn serve_until_stopped(gw: &scimgate::app::RunningGateway) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut hup), Ok(mut term)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        ) else {
            shutdown_signal().await;
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown_signal() => return,
                _ = term.recv() => {
                    tracing::info!(target: LIFECYCLE, "shutting down");
                    return;
                }
                // Reloads run in the reload task (which logs the outcome), so a stop signal
                // during a reload is still heard at once.
                _ = hup.recv() => {
                    let reload = gw.reload_handle();
                    tokio::spawn(async move {
                        reload.reload(scimgate::reload::Trigger::Signal).await;
                    });
                }
            }
        }
    }
    #[cfg(not(unix))]
    shutdown_signal().await;
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!(target: LIFECYCLE, "shutting down");
}

fn load(config: &std::path::Path) -> Result<Config, Vec<String>> {
    Config::load(config).map_err(|issues| issues.iter().map(|i| i.to_string()).collect())
}

/// Opens the store `config` names; every `scimgate token` command needs one.
async fn open_key_store(config: &std::path::Path) -> Result<scimgate::store::Store, Vec<String>> {
    let cfg = load(config)?;
    scimgate::app::open_store(&cfg.store)
        .await
        .map_err(|e| vec![e])
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

fn print_keys(keys: &[KeyInfo]) {
    println!(
        "{:<16}  {:<24}  {:<20}  {:<20}  {:<20}  REVOKED",
        "ID", "NAME", "CREATED", "EXPIRES", "LAST USED"
    );
    for k in keys {
        println!(
            "{:<16}  {:<24}  {:<20}  {:<20}  {:<20}  {}",
            k.id,
            k.name,
            when(Some(k.created)),
            when(k.expires),
            when(k.last_used),
            when(k.revoked)
        );
    }
}

/// Arguments of `scimgate audit`.
struct AuditArgs {
    since: Option<String>,
    operation: Option<String>,
    status: Option<u16>,
    limit: u32,
    json: bool,
}

/// `--since`: a lifetime back from now (`24h`) or an RFC 3339 time.
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    match scimgate::store::parse_lifetime(text) {
        Ok(Some(d)) => Ok(chrono::Utc::now() - d),
        _ => Err(format!(
            "--since {text}: expected a duration such as 24h, 7d, 30m or an RFC 3339 time"
        )),
    }
}

async fn audit(args: AuditArgs, config: &std::path::Path) -> Result<(), Vec<String>> {
    use scimgate::store::{AuditFilter, AuditLog};
    // Arguments are checked before the store is opened, so a typo never creates a database.
    let since = args
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(|e| vec![e])?;
    if let Some(c) = args.status
        && !(1..=5).contains(&c)
    {
        return Err(vec![format!(
            "--status {c}: expected 1 to 5 (a status class)"
        )]);
    }
    let filter = AuditFilter {
        since,
        until: None,
        operation: args.operation.map(|o| o.to_ascii_lowercase()),
        status_class: args.status,
        limit: args.limit.max(1),
    };
    let store = open_key_store(config).await?;
    let result = store.query(&filter).await;
    store.close().await;
    let entries = result.map_err(|e| vec![format!("store: {e}")])?;
    if args.json {
        for e in &entries {
            let line = serde_json::to_string(e).map_err(|e| vec![e.to_string()])?;
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:<24}  {:<16}  {:<8}  {:<6}  {:<24}  {:>6}  {:>7}  BACKEND CALLS",
        "TIME", "ACTOR", "OP", "TYPE", "ID", "STATUS", "MS"
    );
    for e in &entries {
        let calls: Vec<String> = e
            .backend_calls
            .iter()
            .map(|c| format!("{} {} {}", c.method, c.path, c.status))
            .collect();
        println!(
            "{:<24}  {:<16}  {:<8}  {:<6}  {:<24}  {:>6}  {:>7}  {}",
            e.time.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            e.actor,
            e.operation,
            e.resource_type,
            e.resource_id.as_deref().unwrap_or("-"),
            e.scim_status,
            e.duration_ms,
            calls.join(", ")
        );
    }
    Ok(())
}

async fn deleted(
    resource_type: &str,
    restore: Option<&str>,
    config: &std::path::Path,
) -> Result<(), Vec<String>> {
    use scimgate::store::TombstoneStore;
    let rt = if resource_type.eq_ignore_ascii_case("group") {
        "Group"
    } else {
        "User"
    };
    let store = open_key_store(config).await?;
    let result = async {
        if let Some(id) = restore {
            return match store.remove_tombstone(rt, id).await {
                Ok(true) => {
                    println!("{rt} {id}: visible over SCIM again");
                    Ok(())
                }
                Ok(false) => Err(format!("no deleted {rt} {id}")),
                Err(e) => Err(format!("store: {e}")),
            };
        }
        let list = store
            .tombstones(rt, 1000)
            .await
            .map_err(|e| format!("store: {e}"))?;
        println!(
            "{:<24}  {:<24}  {:<36}  DELETED",
            "ID", "NAME", "EXTERNAL ID"
        );
        for t in &list {
            let when = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t.deleted_ms)
                .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
                .unwrap_or_default();
            println!(
                "{:<24}  {:<24}  {:<36}  {when}",
                t.scim_id,
                t.name_key.as_deref().unwrap_or("-"),
                t.external_id.as_deref().unwrap_or("-")
            );
        }
        if list.is_empty() {
            println!("(none)");
        }
        Ok(())
    }
    .await;
    store.close().await;
    result.map_err(|e| vec![e])
}

async fn plans(
    failed: bool,
    retry: Option<String>,
    abandon: Option<String>,
    json: bool,
    config: &std::path::Path,
) -> Result<(), Vec<String>> {
    use scimgate::store::{PlanState, PlanStore, now_ms};
    let store = open_key_store(config).await?;
    let result = async {
        if let Some(id) = retry.as_deref().or(abandon.as_deref()) {
            let (changed, verb) = if retry.is_some() {
                (store.retry_plan_now(id).await, "due now")
            } else {
                (store.abandon_plan(id).await, "abandoned")
            };
            return match changed {
                Ok(true) => {
                    println!("plan {id}: {verb}");
                    Ok(())
                }
                Ok(false) => Err(format!("no pending or failed plan {id}")),
                Err(e) => Err(format!("store: {e}")),
            };
        }
        let states: &[PlanState] = if failed {
            &[PlanState::Failed]
        } else {
            &[PlanState::Pending, PlanState::Failed]
        };
        let plans = store
            .plans_in(states, 1000)
            .await
            .map_err(|e| format!("store: {e}"))?;
        if json {
            for p in &plans {
                println!("{}", serde_json::to_string(p).map_err(|e| e.to_string())?);
            }
            return Ok(());
        }
        let now = now_ms();
        println!(
            "{:<36}  {:<8}  {:<6}  {:<12}  {:<24}  {:<22}  {:>7}  {:>8}  {:<10}  LAST ERROR",
            "ID", "STATE", "TYPE", "RESOURCE", "NAME", "OPERATION", "STEP", "ATTEMPTS", "NEXT"
        );
        for p in &plans {
            let state = if p.running(now) {
                "running"
            } else {
                p.state.as_str()
            };
            let next = if p.state == PlanState::Pending && !p.running(now) {
                format!("in {}s", (p.next_at - now).max(0) / 1000)
            } else {
                "-".to_string()
            };
            println!(
                "{:<36}  {:<8}  {:<6}  {:<12}  {:<24}  {:<22}  {:>7}  {:>8}  {:<10}  {}",
                p.id,
                state,
                p.resource_type,
                p.resource_id,
                p.label.as_deref().unwrap_or("-"),
                p.kind,
                format!("{}/{}", (p.done + 1).min(p.step_count()), p.step_count()),
                p.attempts,
                next,
                p.last_error.as_deref().unwrap_or("-")
            );
        }
        if plans.is_empty() {
            println!("(none: every multi-step operation has completed)");
        }
        Ok(())
    }
    .await;
    store.close().await;
    result.map_err(|e| vec![e])
}

async fn basic(action: BasicAction, config: &std::path::Path) -> Result<(), Vec<String>> {
    use scimgate::store::BasicCredentials;
    // Read and check everything before the store is opened, so a mistake creates nothing.
    let password = match &action {
        BasicAction::Set { username } | BasicAction::Hash { username } => {
            if username.trim().is_empty() || username.contains(':') {
                return Err(vec![
                    "--username must be non-empty and contain no ':'".into(),
                ]);
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| vec![format!("reading the password from standard input: {e}")])?;
            let password = line.trim_end_matches(['\r', '\n']).to_string();
            if password.len() < 12 {
                return Err(vec!["the password must have at least 12 characters".into()]);
            }
            Some(password)
        }
        BasicAction::Remove { .. } => None,
    };
    if let (BasicAction::Hash { username }, Some(password)) = (&action, &password) {
        let line = scimgate::store::DeclaredUser::hash(username.trim(), password)
            .await
            .map_err(|e| vec![e.to_string()])?;
        println!("{line}");
        return Ok(());
    }
    let store = open_key_store(config).await?;
    let result = match (action, password) {
        (BasicAction::Set { username }, Some(password)) => {
            match store.set_password(username.trim(), &password).await {
                Ok(()) => {
                    println!(
                        "password for '{}' set (stored as an argon2id hash)",
                        username.trim()
                    );
                    Ok(())
                }
                Err(e) => Err(vec![format!("store: {e}")]),
            }
        }
        (BasicAction::Hash { .. }, _) => Ok(()),
        (BasicAction::Remove { username }, _) => match store.remove_user(&username).await {
            Ok(true) => {
                println!("credentials of '{username}' removed");
                Ok(())
            }
            Ok(false) => Err(vec![format!("no credentials for '{username}'")]),
            Err(e) => Err(vec![format!("store: {e}")]),
        },
        (BasicAction::Set { .. }, None) => Err(vec!["no password given".into()]),
    };
    store.close().await;
    result
}

async fn token(action: TokenAction, config: &std::path::Path) -> Result<(), Vec<String>> {
    // Arguments are checked before the store is opened, so a typo never creates a database.
    let lifetime = match &action {
        TokenAction::Create { name, expires } => {
            if name.trim().is_empty() {
                return Err(vec!["--name must not be empty".into()]);
            }
            scimgate::store::parse_lifetime(expires).map_err(|e| vec![e])?
        }
        TokenAction::New { name } => {
            let name = name.trim();
            if name.is_empty() || name.contains(['\n', ',']) {
                return Err(vec![
                    "--name must be non-empty, without ',' or a line break".into(),
                ]);
            }
            let (key, line) =
                scimgate::store::DeclaredKey::generate(name).map_err(|e| vec![e.to_string()])?;
            println!("{key}");
            println!("{line}");
            eprintln!(
                "first line: the key (Entra's Secret Token); second line: its [auth] api_keys \
                 entry (only the hash), e.g. in the file SCIMGATE_AUTH__API_KEYS_FILE names"
            );
            return Ok(());
        }
        _ => None,
    };
    let store = open_key_store(config).await?;
    let result = match action {
        TokenAction::Create { name, .. } => {
            let expires = lifetime.map(|d| chrono::Utc::now() + d);
            match store.create_key(name.trim(), expires).await {
                Ok((info, key)) => {
                    println!("{key}");
                    eprintln!(
                        "key {} ('{}', expires {}) created; copy it now, it will not be shown again",
                        info.id,
                        info.name,
                        when(info.expires)
                    );
                    Ok(())
                }
                Err(e) => Err(vec![format!("store: {e}")]),
            }
        }
        TokenAction::List => match store.list_keys().await {
            Ok(keys) => {
                print_keys(&keys);
                Ok(())
            }
            Err(e) => Err(vec![format!("store: {e}")]),
        },
        TokenAction::Revoke { id } => match store.revoke_key(&KeyId(id.clone())).await {
            Ok(true) => {
                println!("key {id} revoked");
                Ok(())
            }
            Ok(false) => Err(vec![format!("no key with id {id}")]),
            Err(e) => Err(vec![format!("store: {e}")]),
        },
        // Handled above, before the store opens.
        TokenAction::New { .. } => Ok(()),
    };
    store.close().await;
    result
}

/// `[admin] listen` as `scimgate serve` binds it (file and environment overlay); `Err` when
/// the admin listener is off or the section does not load.
fn admin_listen(config: &std::path::Path) -> Result<SocketAddr, Vec<String>> {
    let admin = scimgate::config::Config::load_admin(config)
        .map_err(|issues| issues.iter().map(|i| i.to_string()).collect::<Vec<_>>())?;
    if !admin.enabled {
        return Err(vec![
            "the admin listener is off ([admin] enabled = false): nothing to probe; give --url"
                .into(),
        ]);
    }
    Ok(admin.listen)
}

/// Prints one line on stdout, ignoring a closed or failing stdout (`println!` would panic).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

async fn run(cmd: Command) -> Result<(), Vec<String>> {
    match cmd {
        Command::Serve { config } => {
            let cfg = load(&config)?;
            let refused = scimgate::app::serve_problems(&cfg);
            if !refused.is_empty() {
                return Err(refused);
            }
            let _log = scimgate::logging::init(cfg.log.format, &cfg.log.level);
            let mut reloading = scimgate::app::Reloading::from_file(&config, &cfg);
            // A reload is refused for what would stop a start (e.g. a rotated secret file
            // holding a short token).
            let load_files = reloading.source.clone();
            reloading.source = std::sync::Arc::new(move || {
                let next = load_files()?;
                let refused = scimgate::app::serve_problems(&next);
                if refused.is_empty() {
                    Ok(next)
                } else {
                    Err(refused)
                }
            });
            let gw = scimgate::app::start_gateway_reloading(&cfg, reloading).await?;
            // The banner is a log event (stderr, the configured format), so a log collector
            // gets it and stdout stays empty.
            match gw.admin_url() {
                Some(admin) => tracing::info!(
                    target: LIFECYCLE,
                    scim_url = %gw.scim_url,
                    admin_url = %admin,
                    profile = %cfg.profile.name,
                    "scimgate serving SCIM at {} ; admin page, /healthz, /readyz and /metrics at {admin}",
                    gw.scim_url
                ),
                None => tracing::info!(
                    target: LIFECYCLE,
                    scim_url = %gw.scim_url,
                    profile = %cfg.profile.name,
                    "scimgate serving SCIM at {} ; admin listener off",
                    gw.scim_url
                ),
            }
            if cfg.auth.tokens.is_empty()
                && cfg.profile.scim_auth.username.is_none()
                && !matches!(
                    cfg.profile.backend.auth,
                    scimgate::config::BackendAuth::Passthrough { .. }
                )
            {
                tracing::warn!(
                    "no static tokens in [auth]: only API keys (`scimgate token create`) are accepted"
                );
            }
            serve_until_stopped(&gw).await;
            gw.shutdown().await;
            tracing::info!(target: LIFECYCLE, "stopped");
            Ok(())
        }
        Command::Demo {
            profile,
            listen,
            legacy_listen,
            token,
            admin_listen,
            admin_password,
            config,
        } => {
            let _log = scimgate::logging::init(LogFormat::Text, "info");
            let stack = DemoStack::start(DemoOptions {
                config,
                profile: profile.clone(),
                listen,
                legacy_listen,
                token,
                backend_timeout: None,
                store_url: None,
                admin_listen,
                admin_password,
                plans: None,
                request_timeout: None,
                adjust: None,
            })
            .await?;
            println!("scimgate demo (profile '{profile}')");
            println!("  SCIM base URL (Entra Tenant URL): {}", stack.scim_url);
            if let Some((user, password)) = &stack.basic {
                println!("  User Name:                        {user}");
                println!("  Password:                         {password}");
                println!(
                    "  (HTTP Basic with these; Entra's Secret Token is the Password, sent as a \
                     bearer token)"
                );
            } else {
                println!("  Secret Token:                     {}", stack.token);
            }
            if stack.legacy_auth.0 == "authorization" {
                println!(
                    "  demo legacy app:                  {}  (HTTP Basic {}; the token above is \
                     forwarded to it, the gateway stores nothing)",
                    stack.legacy_url, stack.legacy_key
                );
            } else {
                println!(
                    "  demo legacy app:                  {}  (X-Api-Key: {})",
                    stack.legacy_url, stack.legacy_key
                );
            }
            println!("  admin page (status, API keys):    {}", stack.admin_url);
            println!(
                "  admin password:                   {}",
                stack.admin_password
            );
            println!(
                "  probes and metrics:               {0}/healthz  {0}/readyz  {0}/metrics",
                stack.admin_url
            );
            println!();
            println!("Try it:");
            let credential = match &stack.basic {
                Some((user, password)) => format!("-u '{user}:{password}'"),
                None => format!("-H 'Authorization: Bearer {}'", stack.token),
            };
            println!(
                "  curl -s {credential} '{}/Users?filter=userName%20eq%20%22nobody%40example.com%22'",
                stack.scim_url
            );
            println!();
            println!("Ctrl-C stops both; SIGHUP or an edit of the profile or scripts reloads.");
            serve_until_stopped(&stack.gateway).await;
            stack.gateway.shutdown().await;
            Ok(())
        }
        Command::Health {
            url,
            timeout,
            config,
        } => {
            let url = match url {
                Some(u) => u,
                None => {
                    // Only the admin address is read (the environment, else the file, else
                    // the default): a probe must not fail because a secret file or a profile
                    // edit the running gateway refused does not load.
                    let mut addr = admin_listen(&config)?;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(match addr {
                            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                        });
                    }
                    format!("http://{addr}/readyz")
                }
            };
            let status = scimgate::app::probe(&url, std::time::Duration::from_secs(timeout))
                .await
                .map_err(|e| vec![format!("{url}: {e}")])?;
            if status == 200 {
                say(format_args!("{url}: ready"));
                Ok(())
            } else {
                Err(vec![format!("{url}: not ready (HTTP {status})")])
            }
        }
        Command::Check { profile, config } => {
            let loaded = match &profile {
                Some(p) => scimgate::app::load_with_profile(&config, p)
                    .map_err(|issues| issues.iter().map(|i| i.to_string()).collect()),
                None => load(&config),
            };
            let cfg = match loaded {
                Ok(cfg) => cfg,
                Err(mut problems) => {
                    // Report the scripts' problems too, so one run lists everything.
                    if let Some(dir) = scimgate::config::scripts_dir_hint(&config) {
                        problems.extend(scimgate::app::check_scripts(&dir));
                    }
                    return Err(problems);
                }
            };
            let mut problems = scimgate::app::check(&cfg);
            let samples = match scimgate::mapping::check_samples(&cfg.profile.scripts_dir) {
                Ok(n) => n,
                Err(failures) => {
                    problems.extend(failures);
                    0
                }
            };
            if problems.is_empty() {
                println!(
                    "{}: configuration and scripts of profile '{}' are valid; {samples} samples pass",
                    config.display(),
                    cfg.profile.name
                );
                // Not problems: these functions work, in rhai's interpreter (slower).
                let interpreted = scimgate::app::interpreted_functions(&cfg);
                if cfg.server.compile_scripts && !interpreted.is_empty() {
                    println!("runs in rhai's interpreter (not compiled):");
                    for line in interpreted {
                        println!("  {line}");
                    }
                }
                Ok(())
            } else {
                Err(problems)
            }
        }
        Command::Test { profile, config } => {
            let cfg = match &profile {
                Some(p) => scimgate::app::load_with_profile(&config, p).map_err(|issues| {
                    issues
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<String>>()
                })?,
                None => load(&config)?,
            };
            match scimgate::mapping::check_samples(&cfg.profile.scripts_dir) {
                Ok(n) => {
                    println!(
                        "profile '{}': {n} samples pass ({})",
                        cfg.profile.name,
                        cfg.profile.scripts_dir.join("tests").display()
                    );
                    Ok(())
                }
                Err(failures) => Err(failures),
            }
        }
        Command::Map {
            profile,
            resource,
            input,
            direction,
            op,
            lookups,
            live,
            config,
        } => {
            let source = match (&lookups, live) {
                (Some(f), _) => scimgate::app::LookupSource::File(f),
                (None, true) => scimgate::app::LookupSource::Live,
                (None, false) => scimgate::app::LookupSource::None,
            };
            let out = scimgate::app::map_sample(
                &config,
                &profile,
                &resource,
                &input,
                &direction,
                op.as_deref(),
                source,
            )
            .await?;
            println!("{out}");
            Ok(())
        }
        Command::Token { action, config } => token(action, &config).await,
        Command::Basic { action, config } => basic(action, &config).await,
        Command::Audit {
            since,
            operation,
            status,
            limit,
            json,
            config,
        } => {
            let args = AuditArgs {
                since,
                operation,
                status,
                limit,
                json,
            };
            audit(args, &config).await
        }
        Command::Deleted {
            resource_type,
            restore,
            config,
        } => deleted(&resource_type, restore.as_deref(), &config).await,
        Command::Plans {
            failed,
            retry,
            abandon,
            json,
            config,
        } => plans(failed, retry, abandon, json, &config).await,
    }
}
