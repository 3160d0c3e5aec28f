//! Assembly: turns a loaded [`Config`] into a running gateway, and `scimgate demo` into a
//! gateway plus the embedded legacy app. The CLI and the integration tests both start the
//! product through here, so tests exercise exactly what ships.

use crate::admin::{AdminLive, AdminSettings, AdminState};
use crate::backend::{Backend, ListEndpoint};
use crate::config::{
    BackendAuth, Config, ConfigIssue, GroupsMode, MANAGED_GROUP_ATTRIBUTES, PassthroughScheme,
    Profile, ResourceConfig, Secret, StoreConfig,
};
use crate::demo::{DemoApp, DemoAuth, DemoConfig};
use crate::mapping::{Lookups, ScriptSet};
use crate::metrics::Metrics;
use crate::reload::{ReloadHandle, ReloadReport, Trigger};
use crate::scim::{AttrPath, SchemaRegistry};
use crate::server::audit::Auditor;
use crate::server::auth::Authenticator;
use crate::server::pipeline::{Binding, Gateway, GatewaySettings, MemberEndpoints};
use crate::server::{AppState, Limits, LiveRouter, router};
use crate::store::{AuditLog, BasicCredentials, PlanStore, Store};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Most backend records a filter evaluated in the gateway may scan.
const MAX_SCAN: usize = 10_000;
/// Largest SCIM page.
const MAX_RESULTS: usize = 200;

/// Builds the bindings of a profile's resources; every problem is reported, not just the first.
fn bindings(profile: &Profile) -> Result<Vec<Binding>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (rt, rc) in &profile.resources {
        if is_managed_group(profile, rt) {
            // Served from the store; the section only shapes the published schema.
            continue;
        }
        match binding(rt, rc) {
            Ok(b) => out.push(b),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn binding(rt: &str, rc: &ResourceConfig) -> Result<Binding, Vec<String>> {
    let ep = &rc.endpoints;
    let mut errors = Vec::new();
    let mut need = |name: &str, present: bool| {
        if !present {
            errors.push(format!("resources.{rt}.endpoints.{name} is required"));
        }
    };
    need("get", ep.get.is_some());
    need("list", ep.list.is_some());
    need("create", ep.create.is_some());
    need("replace", ep.replace.is_some());
    let members = match (&ep.members_add, &ep.members_remove, &ep.members_list) {
        (Some(add), Some(remove), Some(list)) => Some(MemberEndpoints {
            add: add.clone(),
            remove: remove.clone(),
            list: list.clone(),
            id_field: rc.member_id.clone().unwrap_or_else(|| "id".into()),
            display_field: rc.member_display.clone(),
        }),
        (None, None, None) => None,
        _ => {
            errors.push(format!(
                "resources.{rt}.endpoints: members_add, members_remove and members_list go together"
            ));
            None
        }
    };
    let mut pushdown = Vec::new();
    for (attr, param) in &rc.filters {
        match AttrPath::parse(attr) {
            Ok(p) => pushdown.push((p, param.clone())),
            Err(e) => errors.push(format!("resources.{rt}.filters: {}", e.detail)),
        }
    }
    // A unique attribute is checked with one `attr eq "value"` list query before each write:
    // it must be a top-level string attribute the application can filter on, or the check
    // would scan the whole table (or not be made at all).
    for attr in &rc.unique {
        if attr.contains(['.', ':', '[']) {
            errors.push(format!(
                "resources.{rt}.unique: '{attr}' must be a top-level attribute (e.g. externalId, userName)"
            ));
        } else if !rc.filters.keys().any(|f| f.eq_ignore_ascii_case(attr)) {
            errors.push(format!(
                "resources.{rt}.unique: '{attr}' needs a filter mapping in resources.{rt}.filters, \
                 so its uniqueness is checked by one query to the application"
            ));
        }
    }
    match (
        ep.get.clone(),
        ep.list.clone(),
        ep.create.clone(),
        ep.replace.clone(),
    ) {
        (Some(get), Some(list), Some(create), Some(replace)) if errors.is_empty() => Ok(Binding {
            resource_type: rt.to_string(),
            script: rc.script.clone(),
            get,
            list,
            create,
            replace,
            delete: ep.delete.clone(),
            pushdown,
            members,
            keep_unknown: rc.keep_unknown,
            unique: rc.unique.clone(),
        }),
        _ => Err(errors),
    }
}

/// Whether resource type `rt` of `profile` is a gateway-managed Group.
fn is_managed_group(profile: &Profile, rt: &str) -> bool {
    profile.groups == GroupsMode::Managed && rt == "Group"
}

/// The schemas a profile serves: the RFC core schemas plus the profile's custom attributes
/// and extensions, limited to the attributes the profile stores, with its required attributes
/// and canonical values. Gateway-managed groups publish what the store keeps
/// ([`MANAGED_GROUP_ATTRIBUTES`]) unless the profile narrows it.
pub fn registry(profile: &Profile) -> Result<SchemaRegistry, Vec<String>> {
    let mut reg = SchemaRegistry::core();
    let mut errors = Vec::new();
    let managed_defaults = (profile.groups == GroupsMode::Managed
        && profile
            .resources
            .get("Group")
            .is_none_or(|rc| rc.attributes.is_empty()))
    .then(|| {
        MANAGED_GROUP_ATTRIBUTES
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    });
    if let Some(attrs) = &managed_defaults
        && let Err(mut e) = reg.restrict("Group", attrs)
    {
        errors.append(&mut e);
    }
    for (rt, rc) in &profile.resources {
        for ext in &rc.extensions {
            let schema = crate::scim::Schema {
                id: ext.id.clone(),
                name: ext.name.clone(),
                description: ext.description.clone(),
                attributes: ext.attributes.clone(),
                open: ext.open,
            };
            if let Err(e) = reg.add_extension(rt, schema, ext.required) {
                errors.push(format!("resources.{rt}.extensions: {}", e.detail));
            }
        }
    }
    for (rt, rc) in &profile.resources {
        for attr in &rc.custom_attributes {
            if let Err(e) = reg.add_attribute(rt, attr.clone()) {
                errors.push(format!("resources.{rt}.custom_attributes: {}", e.detail));
            }
        }
    }
    for (rt, rc) in &profile.resources {
        // The profile's own attributes are always stored: it declared them for its app.
        let stored: Vec<String> = rc
            .attributes
            .iter()
            .cloned()
            .chain(rc.custom_attributes.iter().map(|a| a.name.clone()))
            .collect();
        if !rc.attributes.is_empty()
            && let Err(mut e) = reg.restrict(rt, &stored)
        {
            errors.append(&mut e);
        }
        for p in &rc.required {
            if !reg.tune(rt, p, |a| {
                a.required = true;
                a.supported = true;
            }) {
                errors.push(format!(
                    "resources.{rt}.required: '{p}' is not an attribute of {rt}"
                ));
            }
        }
        for p in &rc.unique {
            if !reg.tune(rt, p, |a| {
                a.uniqueness = crate::scim::schema::Uniqueness::Server
            }) {
                errors.push(format!(
                    "resources.{rt}.unique: '{p}' is not an attribute of {rt}"
                ));
            }
        }
        for (p, values) in &rc.canonical {
            if !reg.tune(rt, p, |a| a.canonical_values = values.clone()) {
                errors.push(format!(
                    "resources.{rt}.canonical: '{p}' is not an attribute of {rt}"
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(reg)
    } else {
        Err(errors
            .into_iter()
            .map(|e| format!("{}: {e}", profile.file.display()))
            .collect())
    }
}

/// A gateway serving on a socket, stopped by [`RunningGateway::shutdown`] or on drop.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The SCIM root URL clients use.
    pub scim_url: String,
    /// Where the admin listener (status page, probes, metrics) listens; `None` when
    /// `[admin] enabled = false`.
    pub admin_addr: Option<SocketAddr>,
    /// The metrics the gateway records (also served on the admin listener's `/metrics`).
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    admin_shutdown: Option<oneshot::Sender<()>>,
    admin_handle: Option<JoinHandle<std::io::Result<()>>>,
    refresher: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
    pruner: Option<JoinHandle<()>>,
    wal_bound: Option<JoinHandle<()>>,
    plan_worker: Option<JoinHandle<()>>,
    reload: ReloadHandle,
    reload_task: Option<JoinHandle<()>>,
    tls_task: Option<JoinHandle<()>>,
    limits: Arc<crate::server::Limits>,
    store: Store,
}

impl RunningGateway {
    /// `http://{admin_addr}`, the admin page's URL; `None` when the listener is off.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr.map(|a| format!("http://{a}"))
    }

    /// Stops the plan worker (its plans stay pending for the next start), stops accepting on
    /// both listeners, drains in-flight requests and waits for the server tasks and for
    /// writes that outlived their client's deadline (at most 30 s), then closes the store.
    pub async fn shutdown(mut self) {
        if let Some(w) = self.plan_worker.take() {
            w.abort();
        }
        for tx in [self.shutdown.take(), self.admin_shutdown.take()]
            .into_iter()
            .flatten()
        {
            let _ = tx.send(());
        }
        for h in [self.handle.take(), self.admin_handle.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.await;
        }
        if !self.limits.drained(Duration::from_secs(30)).await {
            tracing::warn!("shutting down with operations still running; their plans stay pending");
        }
        self.store.close().await;
    }

    /// Reloads the configuration the gateway was started from (its files, or `scimgate
    /// demo`'s settings): the profile (backend, endpoints, resources, lookups, groups,
    /// `[scim_auth]`), the scripts and `[auth]`, checked exactly as at startup, then swapped
    /// in at once (each request runs on one configuration). A refused reload keeps the running
    /// configuration; it is logged, counted in `scimgate_config_reloads_total{outcome}` and
    /// shown on the status page. Changed settings that cannot apply live (`[server]`,
    /// `[store]`, `[admin]`, `[plans]`, `[log]`) keep their running values and are named in
    /// the report as needing a restart. Runs on SIGHUP, on a file change and from the admin
    /// page; reloads run one at a time.
    pub async fn reload(&self) -> ReloadReport {
        self.reload.reload(Trigger::Call).await
    }

    /// Asks for reloads from elsewhere (a signal handler's task); see
    /// [`RunningGateway::reload`].
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reload.clone()
    }

    /// The gateway's store (API keys, Basic credentials, audit log), e.g. for `scimgate demo`
    /// to create the credential it prints.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Waits until the server stops (e.g. on Ctrl-C, via the shutdown future given to it),
    /// then for writes still running after their client's deadline (at most 30 s).
    pub async fn wait(mut self) -> std::io::Result<()> {
        let served = match self.handle.take() {
            Some(h) => h
                .await
                .map_err(|e| std::io::Error::other(format!("server task: {e}")))?,
            None => Ok(()),
        };
        // Writes that outlived their client's deadline finish before the process ends.
        if let Some(w) = self.plan_worker.take() {
            w.abort();
        }
        if !self.limits.drained(Duration::from_secs(30)).await {
            tracing::warn!("exiting with operations still running; their plans stay pending");
        }
        served
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        for tx in [self.shutdown.take(), self.admin_shutdown.take()]
            .into_iter()
            .flatten()
        {
            let _ = tx.send(());
        }
        let refresher = self
            .refresher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        for task in [
            refresher,
            self.pruner.take(),
            self.wal_bound.take(),
            self.plan_worker.take(),
            self.reload_task.take(),
            self.tls_task.take(),
        ]
        .into_iter()
        .flatten()
        {
            task.abort();
        }
    }
}

/// GETs `url` (plain HTTP, e.g. the admin listener's `/readyz`) and returns the answer's
/// status, within `within`. Used by `scimgate health`, a container's HEALTHCHECK, which must
/// not need curl in the image.
pub async fn probe(url: &str, within: Duration) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are probed".into());
    }
    let authority = uri.authority().ok_or("no host in the URL")?.clone();
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut head = [0u8; 64];
        let mut got = 0;
        while got < 12 {
            let n = conn
                .read(&mut head[got..])
                .await
                .map_err(|e| format!("cannot read: {e}"))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        // "HTTP/1.1 200 OK"
        std::str::from_utf8(&head[..got])
            .ok()
            .and_then(|h| h.strip_prefix("HTTP/1."))
            .and_then(|h| h.get(2..5))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| "not an HTTP answer".to_string())
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| format!("no answer within {} ms", within.as_millis()))?
}

/// The token `config/scimgate.toml` once shipped with (and many copies of it still carry).
pub const DEMO_TOKEN: &str = "demo-scim-token-change-me";

/// The shortest static bearer token `scimgate serve` accepts: 32 characters (from a password
/// generator: at least 160 bits) cannot be guessed at any rate a gateway answers.
pub const MIN_STATIC_TOKEN_CHARS: usize = 32;

/// What stops `scimgate serve` before it starts: the demo token or a short static token (a
/// guessable credential on a listener Entra reaches). Each problem says how to fix it. Not
/// checked by `demo` and the tests, which make their own credentials.
pub fn serve_problems(cfg: &Config) -> Vec<String> {
    if matches!(cfg.profile.backend.auth, BackendAuth::Passthrough { .. }) {
        // The legacy app judges the caller's credential; static tokens are not used.
        return Vec::new();
    }
    let fix = "set SCIMGATE_AUTH__TOKENS (or SCIMGATE_AUTH__TOKENS_FILE) to a random value, \
               e.g. `openssl rand -hex 32`, or remove [auth] tokens and issue an API key with \
               `scimgate token create --name entra`";
    let mut problems = Vec::new();
    for (i, t) in cfg.auth.tokens.iter().enumerate() {
        let t = t.expose();
        if t == DEMO_TOKEN {
            problems.push(format!(
                "[auth] tokens #{}: the demo token is refused by `serve`; {fix}",
                i + 1
            ));
        } else if t.chars().count() < MIN_STATIC_TOKEN_CHARS {
            problems.push(format!(
                "[auth] tokens #{}: {} characters; `serve` needs at least \
                 {MIN_STATIC_TOKEN_CHARS}; {fix}",
                i + 1,
                t.chars().count()
            ));
        }
    }
    problems
}

/// Makes the configuration a reload applies: reads the files again (or rebuilds `scimgate
/// demo`'s settings). `Err` carries every problem, as at startup.
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, Vec<String>> + Send + Sync>;

/// How a started gateway reloads its configuration.
#[derive(Clone)]
pub struct Reloading {
    /// Where a reload's configuration comes from.
    pub source: ConfigSource,
    /// The files to watch for changes (reload when they change); `None` watches nothing
    /// (SIGHUP and the admin page still reload).
    pub watch: Option<crate::reload::Watch>,
}

impl Reloading {
    /// Reloads from `config` (and its environment overlay), watching its files every
    /// `[server] config_poll_ms`.
    pub fn from_file(config: &Path, cfg: &Config) -> Reloading {
        let path = config.to_path_buf();
        Reloading {
            source: Arc::new(move || {
                Config::load(&path).map_err(|issues| issues.iter().map(|i| i.to_string()).collect())
            }),
            watch: watch_files(config, cfg).map(|mut w| {
                let path = config.to_path_buf();
                w.relist = Some(Arc::new(move || {
                    let c = Config::load(&path).ok()?;
                    Some((
                        vec![path.clone(), c.profile.file],
                        vec![c.profile.scripts_dir],
                    ))
                }));
                w
            }),
        }
    }
}

/// The files `cfg` was read from (`config`, its profile, the profile's scripts), polled every
/// `[server] config_poll_ms`; `None` when that is 0.
pub fn watch_files(config: &Path, cfg: &Config) -> Option<crate::reload::Watch> {
    (cfg.server.config_poll_ms > 0).then(|| crate::reload::Watch {
        files: vec![config.to_path_buf(), cfg.profile.file.clone()],
        dirs: vec![cfg.profile.scripts_dir.clone()],
        every: Duration::from_millis(cfg.server.config_poll_ms.max(100)),
        relist: None,
    })
}

/// What every configuration of one gateway shares: made once at start, kept by reloads.
#[derive(Clone)]
struct Shared {
    addr: SocketAddr,
    store: Store,
    metrics: Arc<Metrics>,
    limits: Arc<Limits>,
    auditor: Arc<Auditor>,
}

/// What one configuration makes; a reload builds a new one and swaps it in whole.
struct Live {
    gateway: Arc<Gateway>,
    auth: Arc<Authenticator>,
    backend: Backend,
    lookups: Lookups,
    refresher: Option<JoinHandle<()>>,
}

/// The configuration serving now, as a reload builds on it.
struct Running {
    cfg: Config,
    auth: Arc<Authenticator>,
    lookups: Lookups,
}

/// Loads scripts, connects the backend, fills lookups once, binds `cfg.server.listen` (and
/// `cfg.admin.listen` unless the admin listener is off) and serves in background tasks.
/// Fails with every configuration problem found, or when an address cannot be bound. Its
/// reloads (SIGHUP, admin page) re-apply `cfg` as it is; see [`start_gateway_reloading`].
pub async fn start_gateway(cfg: &Config) -> Result<RunningGateway, Vec<String>> {
    let fixed = cfg.clone();
    start_gateway_reloading(
        cfg,
        Reloading {
            source: Arc::new(move || Ok(fixed.clone())),
            watch: None,
        },
    )
    .await
}

/// [`start_gateway`] whose reloads read their configuration from `reloading.source` and
/// that reloads by itself when `reloading.watch`'s files change.
pub async fn start_gateway_reloading(
    cfg: &Config,
    reloading: Reloading,
) -> Result<RunningGateway, Vec<String>> {
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|e| vec![format!("cannot listen on {}: {e}", cfg.server.listen)])?;
    let addr = listener
        .local_addr()
        .map_err(|e| vec![format!("listener address: {e}")])?;
    let admin_listener = if cfg.admin.enabled {
        Some(
            tokio::net::TcpListener::bind(cfg.admin.listen)
                .await
                .map_err(|e| {
                    vec![format!(
                        "cannot listen on {} (admin.listen): {e}",
                        cfg.admin.listen
                    )]
                })?,
        )
    } else {
        None
    };
    // A bad certificate stops the start before anything runs in the background.
    let (tls, tls_task) = match &cfg.server.tls {
        Some(t) => {
            let (live, task) = crate::server::tls::serve_files(
                t.cert.clone(),
                t.key.clone(),
                Duration::from_millis(t.reload_poll_ms),
            )
            .map_err(|e| vec![format!("[server.tls]: {e}")])?;
            (Some(live), Some(task))
        }
        None => (None, None),
    };
    let store = open_store(&cfg.store).await.map_err(|e| vec![e])?;
    apply_declared(cfg, &store).await?;
    let metrics = Arc::new(Metrics::new());
    let shared = Shared {
        addr,
        store: store.clone(),
        metrics: metrics.clone(),
        limits: Arc::new(
            Limits::new(
                cfg.server.max_body_bytes,
                cfg.server.request_timeout(),
                cfg.server.max_concurrency,
            )
            .with_operation_timeout(cfg.server.operation_timeout())
            .with_max_uri_bytes(cfg.server.max_uri_bytes)
            .with_trusted_proxies(
                cfg.server
                    .trusted_proxies
                    .iter()
                    .filter_map(|p| crate::server::forwarded::Cidr::parse(p))
                    .collect(),
                cfg.server.public_url.trim().is_empty(),
            ),
        ),
        auditor: Arc::new(Auditor::new(store.clone()).with_metrics(metrics.clone())),
    };
    let live = build_live(cfg, &shared, None).await?;
    let scim_url = live.gateway.base_url().to_string();
    let limits = shared.limits.clone();
    if let Store::Sqlite(_) = &store {
        // One process owns a SQLite store: whoever held a lease before this start is gone.
        match store.release_plan_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                plans = n,
                "plans left running by the previous process are resumed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not release the previous process's plans; they resume when their leases lapse")
            }
        }
    }
    let plan_gateway = Arc::new(arc_swap::ArcSwap::new(live.gateway.clone()));
    let plan_worker = spawn_plan_worker(plan_gateway.clone(), cfg.plans.poll());
    crate::store::keep_check_buffers(cfg.auth.max_password_checks);
    if store.has_basic_users().await.unwrap_or(false) || cfg.profile.scim_auth.username.is_some() {
        // The wait for unknown user names starts at one real check's time on this machine.
        tokio::spawn(crate::store::calibrate_check_time());
    }
    let app = LiveRouter::new(router(app_state(&shared, &live), &cfg.server.base_path));
    let admin_live = Arc::new(arc_swap::ArcSwap::from_pointee(admin_view(cfg, &live)));
    let refresher = Arc::new(std::sync::Mutex::new(live.refresher));
    let running = Arc::new(tokio::sync::Mutex::new(Running {
        cfg: cfg.clone(),
        auth: live.auth.clone(),
        lookups: live.lookups.clone(),
    }));
    let (reload, reload_task) = {
        let (shared, app, admin_live, refresher, plan_gateway) = (
            shared.clone(),
            app.clone(),
            admin_live.clone(),
            refresher.clone(),
            plan_gateway.clone(),
        );
        let source = reloading.source.clone();
        crate::reload::spawn(
            move |trigger| {
                let (shared, app, admin_live, refresher, plan_gateway, source, running) = (
                    shared.clone(),
                    app.clone(),
                    admin_live.clone(),
                    refresher.clone(),
                    plan_gateway.clone(),
                    source.clone(),
                    running.clone(),
                );
                Box::pin(async move {
                    let mut current = running.lock().await;
                    let outcome = match source() {
                        Ok(next) => {
                            let (next, restart) = keep_restart_settings(&current.cfg, next);
                            // Declared credentials are written only once the rest of the
                            // configuration built: a refused reload changes nothing.
                            let built = match build_live(&next, &shared, Some(&current)).await {
                                Ok(mut live) => match apply_declared(&next, &shared.store).await {
                                    Ok(()) => Ok(live),
                                    Err(problems) => {
                                        if let Some(t) = live.refresher.take() {
                                            t.abort();
                                        }
                                        Err(problems)
                                    }
                                },
                                Err(problems) => Err(problems),
                            };
                            match built {
                                Ok(mut live) => {
                                    app.swap(router(
                                        app_state(&shared, &live),
                                        &next.server.base_path,
                                    ));
                                    plan_gateway.store(live.gateway.clone());
                                    admin_live.store(Arc::new(admin_view(&next, &live)));
                                    let old = std::mem::replace(
                                        &mut *refresher
                                            .lock()
                                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                                        live.refresher.take(),
                                    );
                                    if let Some(old) = old {
                                        old.abort();
                                    }
                                    *current = Running {
                                        cfg: next,
                                        auth: live.auth.clone(),
                                        lookups: live.lookups.clone(),
                                    };
                                    Ok(restart)
                                }
                                Err(problems) => Err(problems),
                            }
                        }
                        Err(problems) => Err(problems),
                    };
                    shared.metrics.config_reload(outcome.is_ok());
                    ReloadReport {
                        at: chrono::Utc::now(),
                        trigger,
                        outcome,
                    }
                })
            },
            reloading.watch,
        )
    };
    let (tx, rx) = oneshot::channel::<()>();
    let conn_limits = cfg.server.conn_limits();
    let handle = tokio::spawn(crate::server::serve(
        listener,
        app,
        conn_limits,
        tls,
        async move {
            let _ = rx.await;
        },
    ));
    let (admin_addr, admin_shutdown, admin_handle) = match admin_listener {
        Some(l) => {
            let admin_addr = l
                .local_addr()
                .map_err(|e| vec![format!("admin listener address: {e}")])?;
            let admin = AdminState::new(
                store.clone(),
                metrics.clone(),
                AdminSettings {
                    password: cfg.admin.password.clone(),
                    scim_url: scim_url.clone(),
                    live: admin_live,
                    reload: Some(reload.clone()),
                },
            );
            let (atx, arx) = oneshot::channel::<()>();
            let h = tokio::spawn(crate::admin::serve(
                l,
                crate::admin::router(admin),
                conn_limits.admin(),
                async move {
                    let _ = arx.await;
                },
            ));
            if cfg.admin.password.expose().is_empty() {
                tracing::warn!(
                    admin = %admin_addr,
                    "no [admin] password: the status page is off; /healthz, /readyz and /metrics are served"
                );
            }
            (Some(admin_addr), Some(atx), Some(h))
        }
        None => (None, None, None),
    };
    Ok(RunningGateway {
        addr,
        scim_url,
        admin_addr,
        metrics,
        shutdown: Some(tx),
        handle: Some(handle),
        admin_shutdown,
        admin_handle,
        refresher,
        pruner: spawn_pruner(&store, cfg.store.audit_retention_days),
        wal_bound: spawn_wal_bound(&store, cfg.store.wal_max_bytes.max(1 << 20)),
        plan_worker: Some(plan_worker),
        reload,
        reload_task: Some(reload_task),
        tls_task,
        limits,
        store,
    })
}

/// Puts the API keys and Basic credentials `[auth]` declares into the store (start and each
/// reload). Entries were checked by validation; one that fails here (a declared key id that
/// exists with another secret, a store error) is returned as a problem.
async fn apply_declared(cfg: &Config, store: &Store) -> Result<(), Vec<String>> {
    let keys: Vec<_> = cfg
        .auth
        .api_keys
        .iter()
        .filter_map(|k| crate::store::DeclaredKey::parse(k.expose()))
        .collect();
    let users: Vec<_> = cfg
        .auth
        .basic_users
        .iter()
        .filter_map(|u| crate::store::DeclaredUser::parse(u.expose()))
        .collect();
    // Also with none declared: a line removed since the last start withdraws its key.
    let (added, revoked) = store
        .ensure_keys(&keys)
        .await
        .map_err(|e| vec![format!("[auth] api_keys: {e}")])?;
    if added + revoked > 0 {
        tracing::info!(added, withdrawn = revoked, "declared API keys applied");
    }
    let removed = store
        .ensure_basic_users(&users)
        .await
        .map_err(|e| vec![format!("[auth] basic_users: {e}")])?;
    if removed > 0 {
        tracing::info!(removed, "Basic users no longer declared removed");
    }
    Ok(())
}

/// `next` with the running values of the sections that cannot change while serving
/// (listeners, limits, store, admin, plans, log), and the names of those that differed.
fn keep_restart_settings(running: &Config, mut next: Config) -> (Config, Vec<String>) {
    let mut restart = Vec::new();
    macro_rules! keep {
        ($($section:ident),*) => {$(
            if next.$section != running.$section {
                restart.push(format!("[{}]", stringify!($section)));
                next.$section = running.$section.clone();
            }
        )*};
    }
    keep!(server, store, admin, plans, log);
    (next, restart)
}

fn admin_view(cfg: &Config, live: &Live) -> AdminLive {
    AdminLive {
        backend: live.backend.clone(),
        profile: cfg.profile.name.clone(),
        static_tokens: cfg.auth.tokens.len(),
    }
}

fn app_state(shared: &Shared, live: &Live) -> AppState {
    AppState {
        auditor: shared.auditor.clone(),
        gateway: live.gateway.clone(),
        auth: live.auth.clone(),
        limits: shared.limits.clone(),
        metrics: shared.metrics.clone(),
    }
}

/// Deletes audit entries older than `days` (none when 0); returns how many went. Runs at start
/// and then hourly on every replica (pruning is idempotent, so replicas need no coordination).
pub async fn prune_audit(store: &Store, days: u32) -> Result<u64, String> {
    if days == 0 {
        return Ok(0);
    }
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    store.prune(cutoff).await.map_err(|e| e.to_string())
}

fn spawn_pruner(store: &Store, days: u32) -> Option<JoinHandle<()>> {
    if days == 0 {
        return None;
    }
    let store = store.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match prune_audit(&store, days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, days, "audit entries past retention pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
            }
        }
    }))
}

/// Keeps a SQLite file store's write-ahead log within `limit` bytes (see `store::file`);
/// `None` for other stores.
fn spawn_wal_bound(store: &Store, limit: u64) -> Option<JoinHandle<()>> {
    let db = store.database_file()?;
    let store = store.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.bound_wal(&db, limit).await {
                Ok(None) => {}
                Ok(Some((before, after))) => {
                    tracing::debug!(before, after, "store write-ahead log checkpointed")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "checkpointing the store's write-ahead log failed")
                }
            }
        }
    }))
}

/// Plans the worker claims per turn; a full batch is followed at once by the next turn.
const PLAN_BATCH: u32 = 32;

/// The plan worker: every `poll`, claims the plans that are due (on every replica; each plan
/// is claimed by one) and resumes them. See `server::pipeline` ("Writes that complete").
fn spawn_plan_worker(gateway: Arc<arc_swap::ArcSwap<Gateway>>, poll: Duration) -> JoinHandle<()> {
    let worker = format!("worker/{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        loop {
            // The configuration serving now (a reload swaps it).
            let gateway = gateway.load_full();
            match gateway.resume_due_plans(&worker, PLAN_BATCH).await {
                Ok(n) if n >= PLAN_BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "plan worker: could not claim due plans"),
            }
            tokio::time::sleep(poll).await;
        }
    })
}

/// Opens (and migrates) the configured store, creating the SQLite file's directory first.
/// Runs at gateway start and for each `scimgate token` command; the error names the problem
/// without the URL, which may hold a password.
pub async fn open_store(sc: &StoreConfig) -> Result<Store, String> {
    if let Some(dir) = sc.sqlite_file().as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("store: cannot create {}: {e}", dir.display()))?;
    }
    Store::open(sc.url.expose())
        .await
        .map_err(|e| format!("store: {e}"))
}

/// Everything one configuration makes: the pipeline, authentication, the backend client
/// (shared with the admin listener's readiness probe) and the lookup refresher task. Runs at
/// start and for each reload; the checks are the same both times.
async fn build_live(
    cfg: &Config,
    shared: &Shared,
    running: Option<&Running>,
) -> Result<Live, Vec<String>> {
    let metrics = shared.metrics.clone();
    let store = shared.store.clone();
    let addr = shared.addr;
    let lookups = Lookups::new();
    // A reload starts from the running tables the new profile reads the same way from the
    // same application, so a backend that does not answer at the reload leaves the last good
    // copy, not nothing.
    if let Some(r) = running.filter(|r| r.cfg.profile.backend == cfg.profile.backend) {
        for (name, l) in &cfg.profile.lookups {
            if r.cfg.profile.lookups.get(name) == Some(l) {
                lookups.copy_table(&r.lookups, name);
            }
        }
    }
    let scripts = ScriptSet::load(&cfg.profile.scripts_dir, lookups.clone())
        .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?
        .with_metrics(metrics.clone())
        .with_time_budget(Duration::from_millis(cfg.server.script_timeout_ms))
        .with_compiled(cfg.server.compile_scripts);
    let problems = script_problems(cfg, &scripts);
    if !problems.is_empty() {
        return Err(problems);
    }
    // What `scimgate check` refuses is only warned about here: a script may have a call that
    // no request reaches, and the gateway should still start.
    for problem in crate::mapping::lint_scripts(&cfg.profile.scripts_dir) {
        tracing::warn!(%problem, "script check");
    }
    let backend = Backend::instrumented(&cfg.profile.backend, metrics.clone())
        .map_err(|e| vec![format!("backend: {e}")])?;
    let registry = Arc::new(registry(&cfg.profile)?);
    let bindings = bindings(&cfg.profile)?;
    let public = if cfg.server.public_url.trim().is_empty() {
        let scheme = if cfg.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    } else {
        cfg.server.public_url.trim_end_matches('/').to_string()
    };
    let base_url = format!("{public}{}", cfg.server.base_path.trim_end_matches('/'));
    let gateway = Gateway::new(
        registry,
        backend.clone(),
        Arc::new(scripts),
        bindings,
        GatewaySettings {
            base_url,
            profile: cfg.profile.name.clone(),
            max_results: MAX_RESULTS,
            max_payload: cfg.server.max_body_bytes,
            max_scan: MAX_SCAN,
            groups: cfg.profile.groups,
            unsupported: cfg
                .profile
                .resources
                .iter()
                .map(|(rt, rc)| (rt.clone(), rc.unsupported.clone()))
                .collect(),
            ignore_nested_groups: cfg
                .profile
                .resources
                .get("Group")
                .is_some_and(|rc| rc.ignore_nested_groups),
            plans: crate::server::pipeline::PlanSettings::from(&cfg.plans),
            max_values: cfg.server.max_attribute_values,
        },
        store.clone(),
    )
    .map_err(|e| vec![e])?
    .with_metrics(metrics.clone());
    let tables: Vec<(String, ListEndpoint, String, Duration)> = cfg
        .profile
        .lookups
        .iter()
        .map(|(name, l)| (name.clone(), l.endpoint.clone(), l.key.clone(), l.refresh))
        .collect();
    for (name, ep, key, _) in &tables {
        refresh_lookup(&backend, &lookups, name, ep, key).await;
    }
    let refresher_backend = backend.clone();
    let kept_lookups = lookups.clone();
    let refresher = (!tables.is_empty()).then(|| {
        let backend = refresher_backend;
        tokio::spawn(async move {
            let every = tables
                .iter()
                .map(|t| t.3)
                .min()
                .unwrap_or(Duration::from_secs(300))
                .max(Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                for (name, ep, key, _) in &tables {
                    refresh_lookup(&backend, &lookups, name, ep, key).await;
                }
            }
        })
    });
    let auth = match cfg.profile.backend.auth {
        // The legacy app judges the caller's own credential; the gateway keeps none.
        BackendAuth::Passthrough { scheme } => Authenticator::pass_through(scheme),
        _ => {
            let auth = Authenticator::new(
                &cfg.auth
                    .tokens
                    .iter()
                    .map(|t| t.expose().to_string())
                    .collect::<Vec<_>>(),
            )
            .with_store(store.clone())
            .with_password_limits(cfg.auth.password_limits())
            .with_key_cache_ttl(Duration::from_millis(cfg.auth.key_cache_ms));
            match &cfg.profile.scim_auth.username {
                Some(user) => auth.with_password_user(user),
                None => auth,
            }
        }
    }
    .with_metrics(metrics.clone());
    // Sign-in throttles and password-check slots outlive a reload that keeps their limits:
    // a reload must not wipe the failures counted against a client.
    let auth = match running {
        Some(r) if r.cfg.auth.password_limits() == cfg.auth.password_limits() => {
            auth.sharing_password_guard(&r.auth)
        }
        _ => auth,
    };
    Ok(Live {
        gateway: Arc::new(gateway),
        auth: Arc::new(auth),
        backend,
        lookups: kept_lookups,
        refresher,
    })
}

/// Replaces one lookup table from the backend; on failure the previous table stays (scripts
/// keep working from the last good copy) and the failure is logged.
async fn refresh_lookup(
    backend: &Backend,
    lookups: &Lookups,
    name: &str,
    ep: &ListEndpoint,
    key: &str,
) {
    match backend.fetch_all(ep).await {
        Ok(records) => {
            tracing::debug!(lookup = name, records = records.len(), "lookup refreshed");
            lookups.set(name, key, records);
        }
        Err(e) => {
            tracing::warn!(lookup = name, error = %e, "lookup refresh failed; keeping the previous table")
        }
    }
}

/// Options of `scimgate demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Main config file (its `[profile]` is replaced by `profile`).
    pub config: PathBuf,
    /// Bundled profile to run.
    pub profile: String,
    /// SCIM listener address.
    pub listen: SocketAddr,
    /// Legacy app listener address.
    pub legacy_listen: SocketAddr,
    /// Bearer token Entra (or curl) uses; random when `None`.
    pub token: Option<String>,
    /// Replaces the profile's `backend.timeout_ms`, so tests can reach a backend timeout
    /// quickly; the profile's value when `None`.
    pub backend_timeout: Option<Duration>,
    /// `[store] url` to use (e.g. a temp SQLite file shared with `scimgate token`); an
    /// in-memory database when `None`, since the demo legacy app keeps its records in memory
    /// too and a kept store would outlive them.
    pub store_url: Option<String>,
    /// Admin listener address (status page, probes, metrics).
    pub admin_listen: SocketAddr,
    /// Admin password for the status page; random when `None`.
    pub admin_password: Option<String>,
    /// Replaces `[plans]` (e.g. short backoffs for tests); the config file's when `None`.
    pub plans: Option<crate::config::PlansConfig>,
    /// Replaces `[server] request_timeout_ms` (the client's deadline); the file's when `None`.
    pub request_timeout: Option<Duration>,
    /// Adjusts the configuration last, before it is validated (tests set limits with it).
    pub adjust: Option<fn(&mut Config)>,
}

impl DemoOptions {
    /// Ephemeral ports on 127.0.0.1, a random token, `config/scimgate.toml` of this crate.
    pub fn for_tests(profile: &str) -> Self {
        DemoOptions {
            config: Path::new(env!("CARGO_MANIFEST_DIR")).join("config/scimgate.toml"),
            profile: profile.to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            legacy_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            backend_timeout: None,
            store_url: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_password: None,
            plans: None,
            request_timeout: None,
            adjust: None,
        }
    }
}

/// The gateway and the embedded legacy app, wired to each other.
pub struct DemoStack {
    /// SCIM root URL (`http://127.0.0.1:PORT/scim/v2`).
    pub scim_url: String,
    /// Bearer token accepted by the gateway (for a profile with `[scim_auth]`, the Basic
    /// user's password, which Entra sends as its Secret Token).
    pub token: String,
    /// For a profile with `[scim_auth]`: the SCIM user name and password (HTTP Basic) created
    /// in the demo's store.
    pub basic: Option<(String, String)>,
    /// The legacy app's base URL.
    pub legacy_url: String,
    /// The legacy app's own credential: its `X-Api-Key`, or for a pass-through Basic profile
    /// the `key:password` pair (which is also the SCIM token).
    pub legacy_key: String,
    /// The header that authenticates to the legacy app directly: (`x-api-key`, key) or
    /// (`authorization`, `Basic …`).
    pub legacy_auth: (String, String),
    /// The admin page's URL (`http://127.0.0.1:PORT`).
    pub admin_url: String,
    /// The admin password the page accepts.
    pub admin_password: String,
    /// The legacy app (its state can be inspected in tests).
    pub legacy: DemoApp,
    /// The gateway.
    pub gateway: RunningGateway,
}

impl DemoStack {
    /// Starts the legacy app, points the profile's backend at it and starts the gateway.
    pub async fn start(opts: DemoOptions) -> Result<DemoStack, Vec<String>> {
        let mut cfg = load_with_profile(&opts.config, &opts.profile).map_err(|issues| {
            issues
                .iter()
                .map(ConfigIssue::to_string)
                .collect::<Vec<_>>()
        })?;
        let basic_pass_through = matches!(
            cfg.profile.backend.auth,
            BackendAuth::Passthrough {
                scheme: PassthroughScheme::Basic
            }
        );
        let scim_user = cfg.profile.scim_auth.username.clone();
        let (demo_auth, legacy_key, token) = if basic_pass_through {
            // The SCIM token is the app's own `key:password` (SmartFile's Product Key and
            // Product Password), which the gateway forwards as HTTP Basic.
            let (key, password) = match &opts.token {
                Some(t) => match t.split_once(':') {
                    Some((k, p)) if !k.is_empty() && !p.is_empty() => {
                        (k.to_string(), p.to_string())
                    }
                    _ => {
                        return Err(vec![format!(
                            "profile '{}' forwards the token to the app as HTTP Basic: \
                             --token must be KEY:PASSWORD",
                            opts.profile
                        )]);
                    }
                },
                None => (random_secret("key"), random_secret("password")),
            };
            let pair = format!("{key}:{password}");
            (DemoAuth::Basic { key, password }, pair.clone(), pair)
        } else {
            let key = random_secret("legacy");
            let prefix = if scim_user.is_some() {
                "password"
            } else {
                "scim"
            };
            let token = opts.token.clone().unwrap_or_else(|| random_secret(prefix));
            (DemoAuth::ApiKey(key.clone()), key, token)
        };
        let legacy_auth = match &demo_auth {
            DemoAuth::ApiKey(k) => ("x-api-key".to_string(), k.clone()),
            DemoAuth::Basic { .. } => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&legacy_key);
                ("authorization".to_string(), format!("Basic {encoded}"))
            }
        };
        let legacy = DemoApp::start(
            &opts.legacy_listen.to_string(),
            DemoConfig { auth: demo_auth },
        )
        .await
        .map_err(|e| {
            vec![format!(
                "cannot start the demo legacy app on {}: {e}",
                opts.legacy_listen
            )]
        })?;
        cfg.profile.backend.base_url = legacy.base_url();
        if !basic_pass_through {
            cfg.profile.backend.auth = BackendAuth::Header {
                name: "X-Api-Key".into(),
                value: Secret::new(legacy_key.clone()),
            };
            // With [scim_auth] the token is the user's password, checked against the store
            // like Entra's Secret Token would be, not a static token.
            cfg.auth.tokens = if scim_user.is_some() {
                Vec::new()
            } else {
                vec![Secret::new(token.clone())]
            };
        }
        cfg.server.listen = opts.listen;
        cfg.store.url = Secret::new(
            opts.store_url
                .clone()
                .unwrap_or_else(|| "sqlite::memory:".to_string()),
        );
        if let Some(p) = &opts.plans {
            cfg.plans = p.clone();
        }
        if let Some(t) = opts.request_timeout {
            cfg.server.request_timeout_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        }
        if let Some(t) = opts.backend_timeout {
            cfg.profile.backend.timeout_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        }
        let admin_password = opts
            .admin_password
            .clone()
            .unwrap_or_else(random_admin_password);
        cfg.admin.enabled = true;
        cfg.admin.listen = opts.admin_listen;
        cfg.admin.password = Secret::new(admin_password.clone());
        if let Some(adjust) = opts.adjust {
            adjust(&mut cfg);
        }
        let problems: Vec<String> = cfg.validate().iter().map(ConfigIssue::to_string).collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        // A reload reads the files again and applies the demo's own settings on top, as
        // here: the embedded app's URL and key, the token, listeners and store.
        let source: ConfigSource = {
            let (initial, path, profile, adjust, backend_timeout) = (
                cfg.clone(),
                opts.config.clone(),
                opts.profile.clone(),
                opts.adjust,
                opts.backend_timeout.is_some(),
            );
            Arc::new(move || {
                let mut next = load_with_profile(&path, &profile).map_err(|issues| {
                    issues
                        .iter()
                        .map(ConfigIssue::to_string)
                        .collect::<Vec<_>>()
                })?;
                next.profile.backend.base_url = initial.profile.backend.base_url.clone();
                if !basic_pass_through {
                    next.profile.backend.auth = initial.profile.backend.auth.clone();
                    next.auth.tokens = initial.auth.tokens.clone();
                }
                if backend_timeout {
                    next.profile.backend.timeout_ms = initial.profile.backend.timeout_ms;
                }
                next.server = initial.server.clone();
                next.store = initial.store.clone();
                next.admin = initial.admin.clone();
                next.plans = initial.plans.clone();
                if let Some(adjust) = adjust {
                    adjust(&mut next);
                }
                let problems: Vec<String> =
                    next.validate().iter().map(ConfigIssue::to_string).collect();
                if problems.is_empty() {
                    Ok(next)
                } else {
                    Err(problems)
                }
            })
        };
        let watch = watch_files(&opts.config, &cfg);
        let gateway = start_gateway_reloading(&cfg, Reloading { source, watch }).await?;
        let basic = match scim_user {
            Some(user) => {
                gateway
                    .store()
                    .set_password(&user, &token)
                    .await
                    .map_err(|e| vec![format!("store: cannot create the SCIM user: {e}")])?;
                Some((user, token.clone()))
            }
            None => None,
        };
        Ok(DemoStack {
            scim_url: gateway.scim_url.clone(),
            admin_url: gateway.admin_url().unwrap_or_default(),
            admin_password,
            token,
            basic,
            legacy_url: legacy.base_url(),
            legacy_key,
            legacy_auth,
            legacy,
            gateway,
        })
    }
}

/// A random admin password for `scimgate demo`: 20 lowercase hex characters (80 bits), short
/// enough to type from the terminal into the login form.
fn random_admin_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..20].to_string()
}

/// A random 256-bit secret as hex, prefixed for recognisability in logs of *other* tools.
pub fn random_secret(prefix: &str) -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{a}{b}")
}

/// What the profile needs from its compiled scripts: `to_backend` / `from_backend` for every
/// backend-bound resource, and a members list endpoint for `on_group_delete`. Startup,
/// `scimgate check` and every reload refuse the same scripts for the same reasons.
pub fn script_problems(cfg: &Config, scripts: &ScriptSet) -> Vec<String> {
    let mut problems = Vec::new();
    for (rt, rc) in &cfg.profile.resources {
        if is_managed_group(&cfg.profile, rt) {
            continue;
        }
        for f in ["to_backend", "from_backend"] {
            if !scripts.has_fn(&rc.script, f, 2) {
                problems.push(format!(
                    "{}: no function {f}(resource, ctx) in script '{}' (used by {rt})",
                    cfg.profile
                        .scripts_dir
                        .join(format!("{}.rhai", rc.script))
                        .display(),
                    rc.script
                ));
            }
        }
    }
    if let Some(group) = cfg.profile.resources.get("Group")
        && !is_managed_group(&cfg.profile, "Group")
    {
        let hook = crate::server::pipeline::GROUP_DELETE_HOOK;
        if scripts.has_fn(&group.script, hook, 3) && group.endpoints.members_list.is_none() {
            problems.push(format!(
                "{}: resources.Group: {hook} needs the members_list endpoint to read the members",
                cfg.profile.file.display()
            ));
        }
    }
    problems
}

/// `scimgate check`: every configuration and script problem, each with its file (and line
/// where known). Empty means the gateway would start with this configuration.
pub fn check(cfg: &Config) -> Vec<String> {
    let mut problems: Vec<String> = cfg.validate().iter().map(ConfigIssue::to_string).collect();
    match ScriptSet::load(&cfg.profile.scripts_dir, Lookups::new()) {
        Ok(scripts) => {
            problems.extend(script_problems(cfg, &scripts));
            // Calls to functions nothing defines, hooks with the wrong parameters.
            problems.extend(crate::mapping::lint_scripts(&cfg.profile.scripts_dir));
        }
        Err(errs) => problems.extend(
            errs.iter()
                .map(|e| format!("{}/{e}", cfg.profile.scripts_dir.display())),
        ),
    }
    if let Err(errs) = bindings(&cfg.profile) {
        problems.extend(
            errs.into_iter()
                .map(|e| format!("{}: {e}", cfg.profile.file.display())),
        );
    }
    // Attributes, custom attributes, required and canonical entries, as the gateway builds them.
    if let Err(errs) = registry(&cfg.profile) {
        problems.extend(errs);
    }
    if matches!(cfg.profile.backend.auth, BackendAuth::Passthrough { .. })
        && !cfg.profile.lookups.is_empty()
    {
        problems.push(format!(
            "{}: lookups need the gateway's own backend credential, and backend.auth \
             passthrough has none (they would never load)",
            cfg.profile.file.display()
        ));
    }
    problems
}

/// The functions of the profile's scripts that run in rhai's interpreter rather than
/// compiled, one line each with the reason (`user.rhai: role_of/1: …`). `scimgate check`
/// shows them; they work, only slower.
pub fn interpreted_functions(cfg: &Config) -> Vec<String> {
    let Ok(scripts) = ScriptSet::load(&cfg.profile.scripts_dir, Lookups::new()) else {
        return Vec::new();
    };
    scripts
        .script_names()
        .into_iter()
        .flat_map(|name| {
            scripts
                .interpreted(&name)
                .into_iter()
                .map(move |f| format!("{name}.rhai: {f}"))
        })
        .collect()
}

/// Compiles every script in `dir`; one line per problem, with file:line.
pub fn check_scripts(dir: &Path) -> Vec<String> {
    match ScriptSet::load(dir, Lookups::new()) {
        Ok(_) => Vec::new(),
        Err(errs) => errs
            .iter()
            .map(|e| format!("{}/{e}", dir.display()))
            .collect(),
    }
}

/// `scimgate map`: runs `to_backend` (after the same normalisation the gateway applies) or
/// `from_backend` of profile `profile` on the JSON in `input`, with `ctx.op` = `op` (create
/// for to-backend, get for from-backend, by default); returns pretty JSON or the problems
/// (script errors with file:line). `input` may also be one of the profile's sample files
/// (`{"script", "function", "args": [resource, ctx], "lookups"?, …}`): its resource, its
/// `ctx` (unless `op` is given) and its lookup tables are used.
pub async fn map_sample(
    config: &Path,
    profile: &str,
    resource: &str,
    input: &Path,
    direction: &str,
    op: Option<&str>,
    source: LookupSource<'_>,
) -> Result<String, Vec<String>> {
    let cfg = load_with_profile(config, profile).map_err(|issues| {
        issues
            .iter()
            .map(ConfigIssue::to_string)
            .collect::<Vec<_>>()
    })?;
    let rc = cfg
        .profile
        .resources
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(resource))
        .map(|(_, v)| v)
        .ok_or_else(|| vec![format!("profile '{profile}' has no resource '{resource}'")])?;
    let text =
        std::fs::read_to_string(input).map_err(|e| vec![format!("{}: {e}", input.display())])?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| vec![format!("{}: not JSON: {e}", input.display())])?;
    let lookups = Lookups::new();
    match source {
        LookupSource::None => {}
        LookupSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![format!("{}: {e}", path.display())])?;
            let tables: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| vec![format!("{}: not JSON: {e}", path.display())])?;
            load_lookup_tables(&lookups, &tables);
        }
        LookupSource::Live => {
            let backend =
                Backend::new(&cfg.profile.backend).map_err(|e| vec![format!("backend: {e}")])?;
            for (name, l) in &cfg.profile.lookups {
                let records = backend
                    .fetch_all(&l.endpoint)
                    .await
                    .map_err(|e| vec![format!("lookup '{name}' from the application: {e}")])?;
                lookups.set(name, &l.key, records);
            }
        }
    }
    let mut sample_ctx = None;
    // A sample file: its first argument is the resource, its second the ctx.
    if let Some(args) = value
        .get("args")
        .and_then(serde_json::Value::as_array)
        .filter(|_| value.get("script").is_some())
    {
        sample_ctx = args.get(1).cloned();
        if let Some(tables) = value.get("lookups") {
            load_lookup_tables(&lookups, tables);
        }
        value = args.first().cloned().unwrap_or(serde_json::Value::Null);
    }
    let scripts = ScriptSet::load(&cfg.profile.scripts_dir, lookups)
        .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let default_op = if direction == "from-backend" {
        "get"
    } else {
        "create"
    };
    const OPS: [&str; 5] = ["create", "replace", "patch", "get", "list"];
    if let Some(o) = op
        && !OPS.contains(&o)
    {
        return Err(vec![format!(
            "--op must be one of {}, not '{o}'",
            OPS.join(", ")
        )]);
    }
    let ctx = match (op, sample_ctx) {
        (None, Some(c)) if c.is_object() => c,
        (op, _) => serde_json::json!({
            "op": op.unwrap_or(default_op),
            "resource_type": resource,
            "id": null,
            "profile": profile,
        }),
    };
    let out = match direction {
        "to-backend" => {
            let registry = registry(&cfg.profile)?;
            let sctx = crate::scim::SchemaContext::new(&registry, resource)
                .ok_or_else(|| vec![format!("unknown resource type '{resource}'")])?;
            let normalized = crate::scim::resource::normalize_resource(
                value,
                &sctx,
                crate::scim::resource::NormalizeOptions::default(),
            )
            .map_err(|e| vec![format!("{}: {}", input.display(), e)])?;
            scripts.call(&rc.script, "to_backend", vec![normalized, ctx])
        }
        "from-backend" => scripts.call(&rc.script, "from_backend", vec![value, ctx]),
        other => {
            return Err(vec![format!(
                "--direction must be to-backend or from-backend, not '{other}'"
            )]);
        }
    }
    .map_err(|e| vec![format!("{}/{e}", cfg.profile.scripts_dir.display())])?;
    serde_json::to_string_pretty(&out).map_err(|e| vec![e.to_string()])
}

/// Where `scimgate map` takes the profile's lookup tables from (besides a sample file's own).
#[derive(Debug, Clone, Copy)]
pub enum LookupSource<'a> {
    /// No tables: `lookup(…)` finds nothing.
    None,
    /// A JSON file `{"offices": {"key": "name", "records": […]}, …}` (a sample's shape).
    File(&'a Path),
    /// The running application, through the profile's backend and lookup endpoints.
    Live,
}

/// Fills `lookups` from `{"name": {"key": "…", "records": […]}, …}`.
fn load_lookup_tables(lookups: &Lookups, tables: &serde_json::Value) {
    for (name, t) in tables.as_object().into_iter().flatten() {
        let key = t
            .get("key")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("id");
        let records = t
            .get("records")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        lookups.set(name, key, records);
    }
}

/// Loads `config` with its `[profile].name` replaced by `profile` (as `SCIMGATE_PROFILE__NAME`
/// would), so `scimgate demo --profile X` and `scimgate map` run any bundled profile.
pub fn load_with_profile(config: &Path, profile: &str) -> Result<Config, Vec<ConfigIssue>> {
    let env = std::env::vars()
        .filter(|(k, _)| k != "SCIMGATE_PROFILE__NAME")
        .chain([("SCIMGATE_PROFILE__NAME".to_string(), profile.to_string())]);
    Config::load_with_env(config, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;
    use crate::scim::SchemaContext;
    use crate::scim::resource::{NormalizeOptions, normalize_resource};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn profile(resource_toml: &str) -> Profile {
        let rc: ResourceConfig = toml::from_str(resource_toml).unwrap();
        Profile {
            name: "t".into(),
            file: PathBuf::from("t.toml"),
            scripts_dir: PathBuf::from("scripts/t"),
            backend: BackendConfig::new("http://127.0.0.1:1"),
            groups: GroupsMode::Backend,
            resources: BTreeMap::from([("User".to_string(), rc)]),
            lookups: BTreeMap::new(),
            scim_auth: Default::default(),
        }
    }

    const METADATA: &str = "urn:ietf:params:scim:schemas:extension:2.0:Metadata";
    const FOLDERS: &str = "urn:ietf:params:scim:schemas:extension:2.0:CustomExtensionName";

    #[test]
    fn profile_extensions_restrictions_and_required() {
        let p = profile(&format!(
            r#"
            script = "user"
            attributes = ["userName", "userType", "active", "{FOLDERS}:folders"]
            required = ["title"]
            canonical = {{ "userType" = ["Premium", "Standard"] }}
            [[extensions]]
            id = "{METADATA}"
            name = "Metadata"
            open = true
            [[extensions]]
            id = "{FOLDERS}"
            name = "Folders"
            attributes = [{{ name = "folders", type = "string", multiValued = true }}]
            "#
        ));
        let reg = registry(&p).unwrap();
        let ctx = SchemaContext::new(&reg, "User").unwrap();
        let user = normalize_resource(
            json!({
                "userName": "a", "title": "T", "nickName": "dropped",
                format!("{METADATA}:costCenter"): "CC-1",
                FOLDERS: {"folders": ["f1", "f2"]}
            }),
            &ctx,
            NormalizeOptions::default(),
        )
        .unwrap();
        assert_eq!(user[METADATA]["costCenter"], "CC-1");
        assert_eq!(user[FOLDERS]["folders"], json!(["f1", "f2"]));
        assert!(
            user.get("nickName").is_none(),
            "unsupported attributes are dropped"
        );
        let e = normalize_resource(json!({"userName": "a"}), &ctx, NormalizeOptions::default())
            .unwrap_err();
        assert!(e.detail.contains("title"), "{}", e.detail);
        let docs = reg.schemas_document("http://x");
        let ids: Vec<&str> = docs["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&METADATA) && ids.contains(&FOLDERS));
        let core = &docs["Resources"][0]["attributes"];
        let names: Vec<&str> = core
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["userName", "title", "userType", "active"]);
        let user_type = core
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "userType")
            .unwrap();
        assert_eq!(user_type["canonicalValues"], json!(["Premium", "Standard"]));
    }

    #[test]
    fn managed_groups_publish_what_the_store_keeps() {
        let mut p = profile("script = \"user\"");
        p.groups = GroupsMode::Managed;
        let reg = registry(&p).unwrap();
        let docs = reg.schemas_document("http://x");
        let group = docs["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == crate::scim::schema::GROUP_SCHEMA)
            .unwrap();
        let attrs = group["attributes"].as_array().unwrap();
        let names: Vec<&str> = attrs.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["displayName", "members"]);
        let subs: Vec<&str> = attrs[1]["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert!(!subs.contains(&"display"), "{subs:?}");
        assert!(
            subs.contains(&"value") && subs.contains(&"$ref"),
            "{subs:?}"
        );
        // A Group section without endpoints builds no binding (the store serves groups).
        let group: ResourceConfig = toml::from_str("attributes = [\"displayName\"]").unwrap();
        p.resources.insert("Group".into(), group);
        let errors = bindings(&p).unwrap_err();
        assert!(
            errors.iter().all(|e| e.contains("resources.User")),
            "{errors:?}"
        );
    }

    #[test]
    fn unique_attributes_must_be_top_level_and_filterable() {
        let p = profile(
            r#"
            script = "user"
            unique = ["externalId", "userName", "name.familyName"]
            [filters]
            externalId = "external_id"
            "#,
        );
        let errors = bindings(&p).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("'userName' needs a filter mapping")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("'name.familyName' must be a top-level attribute")),
            "{errors:?}"
        );
        assert!(
            !errors.iter().any(|e| e.contains("'externalId'")),
            "{errors:?}"
        );
        let reg = registry(&p).unwrap();
        let doc = reg.schemas_document("http://x");
        assert!(
            doc.to_string().contains("\"uniqueness\":\"server\""),
            "{doc}"
        );
    }

    #[test]
    fn profile_errors_are_all_reported() {
        let p = profile(
            r#"
            script = "user"
            attributes = ["userName", "shoeSize"]
            required = ["nope"]
            [[extensions]]
            id = "not-a-urn"
            "#,
        );
        let errs = registry(&p).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("shoeSize")));
        assert!(errs.iter().any(|e| e.contains("nope")));
        assert!(errs.iter().any(|e| e.contains("not-a-urn")));
    }
}
