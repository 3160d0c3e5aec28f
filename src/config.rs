//! Typed configuration: `scimgate.toml` (the gateway) plus `profiles/<name>.toml` (the legacy
//! API), overlaid by `SCIMGATE_*` environment variables.
//!
//! Loading reports every problem it can find in one pass, each with its file and line, so an
//! operator fixes a configuration in one round trip instead of one error per restart:
//! TOML syntax errors (all of them), unknown keys and type errors (the first per section),
//! then the semantic checks of [`Config::validate`] (all of them).
//!
//! Environment overlay: `SCIMGATE_SERVER__LISTEN=0.0.0.0:8080` sets `server.listen`; a double
//! underscore separates nesting levels and keys match ignoring case. Values are read as TOML
//! scalars (`8080`, `true`, `"quoted"`), anything else as a plain string; string lists
//! (`auth.tokens`) accept a comma-separated string. The sections `server`, `auth`, `log`,
//! `store`, `admin` and `profile` overlay `scimgate.toml`; `backend`, `resources` and `lookups` overlay the
//! profile, so backend credentials can come from the environment. Variables without a double
//! underscore (`SCIMGATE_CONFIG`) belong to the command line and are ignored here.
//!
//! Secrets from files: `SCIMGATE_AUTH__TOKENS_FILE=/run/secrets/tokens` sets `auth.tokens` to
//! the file's content (without its final line break; several lines make a list), for any key —
//! the way Kubernetes and Docker mount secrets. Setting both `X` and `X_FILE` is an error.

use crate::backend::{self, Endpoint, JsonPath, ListEndpoint, Paging, PathTemplate};
use crate::scim::{AttrPath, SchemaRegistry};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// Prefix of the environment variables that overlay the configuration files.
pub const ENV_PREFIX: &str = "SCIMGATE_";

/// Top-level sections of `scimgate.toml`; everything else belongs to the profile.
const MAIN_SECTIONS: [&str; 7] = [
    "server", "auth", "log", "store", "admin", "plans", "profile",
];
const PROFILE_SECTIONS: [&str; 5] = ["backend", "groups", "resources", "lookups", "scim_auth"];

/// One configuration problem, located as precisely as the source allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file the problem is in (for environment overrides: the file they overlay).
    pub file: PathBuf,
    /// 1-based line, when the problem has a position in the file.
    pub line: Option<usize>,
    /// What is wrong, naming the key (and the environment variable when one set it).
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A credential from the configuration; `Debug` never shows it, so configs can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The credential itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[server]`: the SCIM listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the SCIM listener binds.
    pub listen: SocketAddr,
    /// Path prefix of the SCIM endpoints (`/scim/v2`).
    pub base_path: String,
    /// Externally visible base URL for `meta.location`; empty means `http://{listen}`.
    pub public_url: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time limit for one SCIM request, backend calls included.
    pub request_timeout_ms: u64,
    /// Requests served at once; more are shed with 503.
    pub max_concurrency: usize,
    /// Time an operation may take to complete once it started, also after its client was
    /// answered 504 at `request_timeout_ms`: the operation runs on in its own task up to this
    /// bound (its plan, rollback and audit entry included); a plan cut off here stays pending.
    pub operation_timeout_ms: u64,
    /// Most values one multi-valued attribute may carry (`emails`, `phoneNumbers`, …); more
    /// is a 400 `invalidValue` naming the attribute. Group members are not counted.
    pub max_attribute_values: usize,
    /// Time a client has to send a request's line and headers, from its first byte (or from
    /// connecting); a connection that dribbles them slower is closed.
    pub header_read_timeout_ms: u64,
    /// Time a keep-alive connection may sit idle between requests before it is closed.
    pub idle_timeout_ms: u64,
    /// Connections open at once (lowered to fit the process's open-file limit). At the cap
    /// the longest-idle connection is closed to make room for a new one.
    pub max_connections: usize,
    /// Largest request line plus headers, in bytes; more is a 431.
    pub max_header_bytes: usize,
    /// Longest request URI (path and query), in bytes; more is a 414.
    pub max_uri_bytes: usize,
    /// Wall-clock time one mapping script call may run before it is stopped (a 500 naming
    /// the script), on top of rhai's operation limit.
    pub script_timeout_ms: u64,
    /// Run the scripts' functions compiled where they can be (the same results, several
    /// times faster; what cannot be compiled runs in rhai's interpreter as before). `false`
    /// runs every call in the interpreter.
    pub compile_scripts: bool,
    /// How often `serve` and `demo` look at the configuration's files (this file, the
    /// profile, its scripts) and reload when they changed, in milliseconds; 0 turns the
    /// watch off (SIGHUP and the admin page still reload).
    pub config_poll_ms: u64,
    /// `[server.tls]`: serve SCIM over HTTPS with this certificate; absent: plain HTTP (for
    /// a TLS-terminating proxy or ingress in front).
    pub tls: Option<TlsConfig>,
    /// Addresses or ranges (`10.0.0.0/8`) of the reverse proxies in front: from them, and
    /// only them, `X-Forwarded-For` gives the client's address (sign-in throttles, audit) and,
    /// without `public_url`, `X-Forwarded-Proto`/`-Host` the URLs in `meta.location`.
    #[serde(deserialize_with = "de_string_list")]
    pub trusted_proxies: Vec<String>,
}

/// `[server.tls]`: the SCIM listener's certificate. Both are PEM files; a path is taken as
/// given (relative to the working directory). Renewed files are picked up without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files are looked at for a renewal, in milliseconds.
    #[serde(default = "default_tls_poll_ms")]
    pub reload_poll_ms: u64,
}

fn default_tls_poll_ms() -> u64 {
    5_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_path: "/scim/v2".into(),
            public_url: String::new(),
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 30_000,
            max_concurrency: 512,
            operation_timeout_ms: 300_000,
            max_attribute_values: 1000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            script_timeout_ms: 1_000,
            compile_scripts: true,
            config_poll_ms: 2_000,
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The base URL resources are located under (`public_url` or `http://{listen}`, plus
    /// `base_path`), without a trailing slash; used for `meta.location` and `Location`.
    pub fn resource_base_url(&self) -> String {
        let origin = if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        };
        format!("{origin}{}", self.base_path)
    }

    /// The connection bounds of the SCIM listener (see [`crate::server::listen`]), the cap
    /// lowered to fit the open-file limit.
    pub fn conn_limits(&self) -> crate::server::listen::ConnLimits {
        let (max_connections, lowered) =
            crate::server::listen::connection_cap(self.max_connections);
        if lowered {
            tracing::warn!(
                wanted = self.max_connections,
                max_connections,
                "server.max_connections lowered to fit the open-file limit (ulimit -n)"
            );
        }
        crate::server::listen::ConnLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections,
            max_header_bytes: self.max_header_bytes.max(1024),
            scim_errors: true,
        }
    }

    /// The per-request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The limit on an operation's whole run (never shorter than the request's).
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_millis(self.operation_timeout_ms.max(self.request_timeout_ms))
    }
}

/// `[auth]`: how SCIM clients authenticate, and what sign-in attempts may cost.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Static bearer tokens accepted from clients (a list, or a comma-separated string).
    #[serde(deserialize_with = "de_secret_list")]
    pub tokens: Vec<Secret>,
    /// Password checks (argon2id, ~19 MiB each) run at once, for HTTP Basic and passwords
    /// sent as bearer tokens.
    pub max_password_checks: usize,
    /// Password checks that may wait for a slot; beyond them a request is answered 503.
    pub max_queued_password_checks: usize,
    /// Failed sign-ins per client address, and per user name, within
    /// `failed_login_window_s`, after which more attempts are answered 429 until the window
    /// ends (a credential that passed within a day is exempt). 0 turns the throttle off.
    /// The admin page's login has its own: 10 per client address and 100 in all per minute.
    pub max_failed_logins: u32,
    /// The window failed sign-ins are counted in, in seconds.
    pub failed_login_window_s: u64,
    /// How long an API key (`scimgate token create`) that passed is accepted without asking
    /// the store again, in milliseconds: a revocation in another process (the CLI, another
    /// replica) takes effect within this time; one on this gateway's admin page at once.
    /// 0 asks the store on every request.
    pub key_cache_ms: u64,
    /// API keys declared here (e.g. from a mounted secret: `SCIMGATE_AUTH__API_KEYS_FILE`),
    /// one `id:sha256hex:name` per entry as `scimgate token new` prints it (only the key's
    /// hash; the key itself goes to Entra). Added to the store at start and on reload if
    /// missing; a revocation on the admin page or by the CLI stays.
    #[serde(deserialize_with = "de_line_list")]
    pub api_keys: Vec<Secret>,
    /// HTTP Basic credentials declared here (`SCIMGATE_AUTH__BASIC_USERS_FILE`), one
    /// `username:$argon2id$…` per entry as `scimgate basic hash` prints it; set in the store
    /// at start and on reload.
    #[serde(deserialize_with = "de_line_list")]
    pub basic_users: Vec<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            tokens: Vec::new(),
            max_password_checks: 2,
            max_queued_password_checks: 16,
            max_failed_logins: 10,
            failed_login_window_s: 60,
            key_cache_ms: 5_000,
            api_keys: Vec::new(),
            basic_users: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// The password-check bounds these settings describe.
    pub fn password_limits(&self) -> crate::throttle::PasswordLimits {
        crate::throttle::PasswordLimits {
            concurrent_checks: self.max_password_checks.max(1),
            queued_checks: self.max_queued_password_checks,
            max_failures: self.max_failed_logins,
            window: Duration::from_secs(self.failed_login_window_s.max(1)),
        }
    }
}

/// `[store]`: the database the gateway keeps its own state in (API keys, gateway-managed
/// groups, id map, audit log, sync status). Defaults to a SQLite file under the deployment
/// root (`data/scimgate.db`), so a bare install needs no setup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` or `postgres://user:password@host/db`; a `Secret` because a
    /// PostgreSQL URL may carry a password. A relative SQLite path is resolved at load against
    /// the parent of the config file's directory (the deployment root, where `config/` and
    /// `scripts/` live), so `sqlite://data/scimgate.db` next to `config/scimgate.toml` means
    /// `<root>/data/scimgate.db` whatever the working directory.
    pub url: Secret,
    /// Days audit entries are kept; older ones are pruned hourly. 0 keeps them forever.
    pub audit_retention_days: u32,
    /// Largest size of a SQLite store's write-ahead log (`-wal` file), in bytes: above it the
    /// gateway checkpoints and empties the log (looked at every 5 s).
    pub wal_max_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: Secret::new("sqlite://data/scimgate.db".to_string()),
            audit_retention_days: 90,
            wal_max_bytes: 64 << 20,
        }
    }
}

impl StoreConfig {
    /// The SQLite file this store uses, `None` for PostgreSQL or an in-memory database; the
    /// gateway creates its parent directory before opening.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let (path, _) = split_sqlite_url(self.url.expose())?;
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }

    /// Rewrites a relative SQLite path to lie under `root`; other URLs are left as they are.
    fn resolve_against(&mut self, root: &Path) {
        let Some((path, query)) = split_sqlite_url(self.url.expose()) else {
            return;
        };
        if path.is_empty() || path.contains(":memory:") || Path::new(path).is_absolute() {
            return;
        }
        let file = root.join(path);
        self.url = Secret::new(format!("sqlite://{}{query}", file.display()));
    }
}

/// `sqlite://path?opts` (or `sqlite:path?opts`) as the path and the `?opts` part; `None` when
/// the URL is not SQLite.
fn split_sqlite_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(match rest.find('?') {
        Some(q) => rest.split_at(q),
        None => (rest, ""),
    })
}

/// `[admin]`: the admin listener (status page, API-key web UI, `/healthz`, `/readyz`,
/// `/metrics`), separate from the SCIM port so it can stay on loopback.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Whether the gateway starts the admin listener at all.
    pub enabled: bool,
    /// Address the admin listener binds; loopback by default, because the status page shows
    /// who provisions what.
    pub listen: SocketAddr,
    /// The admin credential for the status page and key management. Empty: the page answers
    /// with an explanation and only `/healthz`, `/readyz` and `/metrics` work.
    pub password: Secret,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            password: Secret::new(String::new()),
        }
    }
}

/// Shortest admin password accepted; the page manages the keys that write to the legacy app.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 12;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[plans]`: how operations that need several legacy calls are retried when a call fails
/// (see the README's "Writes that complete").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlansConfig {
    /// Attempts before a plan is marked failed (the request's own first one included).
    pub max_attempts: u32,
    /// Wait before the second attempt, in ms; doubled each time, with jitter.
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts, in ms (a legacy `Retry-After` may ask for more).
    pub backoff_max_ms: u64,
    /// How long a runner may hold a plan without progress before another replica takes it
    /// over, in ms.
    pub lease_ms: u64,
    /// How often the worker looks for due plans, in ms.
    pub poll_ms: u64,
}

impl Default for PlansConfig {
    fn default() -> Self {
        PlansConfig {
            max_attempts: 10,
            backoff_initial_ms: 2_000,
            backoff_max_ms: 600_000,
            lease_ms: 120_000,
            poll_ms: 1_000,
        }
    }
}

impl PlansConfig {
    /// How often the worker polls.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }
}

/// `[log]`: logging output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` filter directive (`info`, `scimgate=debug,info`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[profile]` as written: which profile to load and from where.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProfileRef {
    name: String,
    dir: PathBuf,
}

impl Default for ProfileRef {
    fn default() -> Self {
        ProfileRef {
            name: "default".into(),
            dir: PathBuf::from(".."),
        }
    }
}

/// How the gateway authenticates to the legacy API (`backend.auth`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendAuth {
    /// No credentials.
    #[default]
    None,
    /// A fixed header, e.g. `X-Api-Key`.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// `Authorization: Basic …`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// The gateway holds no credential: the SCIM caller's own credential goes to the legacy
    /// API on every call, and the legacy app decides. The SCIM edge then accepts any
    /// well-formed credential instead of checking `[auth] tokens` and the store's keys, and a
    /// legacy 401/403 becomes a SCIM 401.
    Passthrough {
        /// How the caller's credential is sent on.
        #[serde(default)]
        scheme: PassthroughScheme,
    },
}

/// How a pass-through credential reaches the legacy API (`backend.auth.scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassthroughScheme {
    /// The caller's `Authorization` header, unchanged.
    #[default]
    AsIs,
    /// The caller's bearer token is `user:password` (e.g. SmartFile's
    /// `ProductKey:ProductPassword`) and is sent as HTTP Basic.
    Basic,
}

/// `[backend]`: where the legacy API is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Absolute http(s) URL the endpoint paths are appended to.
    pub base_url: String,
    /// Credentials sent to the legacy API.
    #[serde(default)]
    pub auth: BackendAuth,
    /// Time limit for one backend call, body included.
    #[serde(default = "default_backend_timeout_ms")]
    pub timeout_ms: u64,
    /// Time limit for establishing a connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Idle pooled connections kept per backend host.
    #[serde(default = "default_pool_idle")]
    pub pool_max_idle_per_host: usize,
    /// Path the readiness probe (`/readyz`) sends a GET to, with the gateway's credential;
    /// the legacy app is ready when it answers below 500 within the probe's 2 s (a 401/403
    /// means the gateway's credential is refused: not ready). Pick a cheap page, e.g. a
    /// health endpoint; `/` by default.
    #[serde(default = "default_ready_path")]
    pub ready_path: String,
}

fn default_ready_path() -> String {
    "/".to_string()
}

impl BackendConfig {
    /// A configuration with default timeouts and pool size, no auth.
    pub fn new(base_url: impl Into<String>) -> BackendConfig {
        BackendConfig {
            base_url: base_url.into(),
            auth: BackendAuth::None,
            timeout_ms: default_backend_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            pool_max_idle_per_host: default_pool_idle(),
            ready_path: default_ready_path(),
        }
    }

    /// The whole-call time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The connect time limit.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

fn default_backend_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_pool_idle() -> usize {
    64
}

/// The legacy calls behind one SCIM resource type (`[resources.User.endpoints]`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// Read one (`{id}`).
    pub get: Option<Endpoint>,
    /// List and search.
    pub list: Option<ListEndpoint>,
    /// Create; `id` says where the response carries the new legacy id.
    pub create: Option<Endpoint>,
    /// Full replace (`{id}`).
    pub replace: Option<Endpoint>,
    /// Partial update (`{id}`), when the legacy API has one.
    pub update: Option<Endpoint>,
    /// Delete (`{id}`).
    pub delete: Option<Endpoint>,
    /// Add members to a group (`{id}`; `{member}` or `{members}` in path or body).
    pub members_add: Option<Endpoint>,
    /// Remove a member from a group (`{id}`, `{member}`).
    pub members_remove: Option<Endpoint>,
    /// List a group's members (`{id}`).
    pub members_list: Option<ListEndpoint>,
    /// Further named calls scripts may plan (e.g. `deactivate`, `revoke_sessions`).
    #[serde(default)]
    pub actions: BTreeMap<String, Endpoint>,
}

/// Where a profile's SCIM groups live: the top-level profile key `groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupsMode {
    /// `groups = "backend"` (the default): groups are the legacy app's own, reached through
    /// `[resources.Group]`'s endpoints and script.
    #[default]
    Backend,
    /// `groups = "managed"`: the app has no groups; the gateway keeps groups and memberships
    /// in its store and tells the User script's `on_membership_change` hook about changes.
    Managed,
}

/// The attributes a gateway-managed group can hold (what the store keeps), published when
/// `[resources.Group] attributes` does not narrow them.
pub const MANAGED_GROUP_ATTRIBUTES: [&str; 5] = [
    "displayName",
    "externalId",
    "members.value",
    "members.$ref",
    "members.type",
];

/// `[resources.<Type>]`: how one SCIM resource type maps onto the legacy API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Mapping script name: `scripts/<profile>/<script>.rhai`. Required, except for the
    /// Group of a profile with `groups = "managed"`, which has none.
    #[serde(default)]
    pub script: String,
    /// The legacy calls.
    #[serde(default)]
    pub endpoints: Endpoints,
    /// SCIM attribute → query parameter: `attr eq "x"` filters pushed down to the list call.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// The SCIM attributes the legacy app stores (`userName`, `name.givenName`,
    /// `urn:…:enterprise:2.0:User:department`); only these are published in `/Schemas`, and
    /// values of other known attributes are accepted and dropped. Empty: every attribute.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Attributes the app requires (400 `invalidValue` naming the attribute when missing).
    #[serde(default)]
    pub required: Vec<String>,
    /// Canonical values to publish for an attribute, e.g. `"emails.type" = ["work"]`.
    #[serde(default)]
    pub canonical: BTreeMap<String, Vec<String>>,
    /// Attributes unique within the application (e.g. smarter-drafter's `externalId`): a
    /// create, or a replace or patch that changes one, whose value another resource holds is
    /// a 409 `uniqueness` with nothing written; `/Schemas` publishes `uniqueness: server`.
    /// Checked with one list query (pushed down when the profile maps a filter for it).
    #[serde(default)]
    pub unique: Vec<String>,
    /// Field of a member record (from `members_list`) holding the member's id.
    #[serde(default)]
    pub member_id: Option<String>,
    /// Field of a member record holding a display value, if any.
    #[serde(default)]
    pub member_display: Option<String>,
    /// Keep attributes no schema defines (passed to the script as sent) instead of
    /// rejecting them with 400 `invalidValue`.
    #[serde(default)]
    pub keep_unknown: bool,
    /// Attributes the profile adds to the resource type's core schema, addressed without a
    /// URN (`initials`, as Entra sends an attribute the integrator named without one) and
    /// published in `/Schemas`; same shape as extension attributes.
    #[serde(default)]
    pub custom_attributes: Vec<crate::scim::AttributeDef>,
    /// Extension schemas this resource type carries besides the RFC ones, e.g. a
    /// `…:2.0:Metadata` extension with free keys (`open = true`).
    #[serde(default)]
    pub extensions: Vec<ExtensionConfig>,
    /// Attributes the application refuses (e.g. a Group's `owners`): a create, replace or
    /// patch carrying one, at the top level, under any extension or as a PATCH path, is a
    /// 400 `invalidValue` naming it, before anything is written.
    #[serde(default)]
    pub unsupported: Vec<String>,
    /// Group only: a member that is itself a group (its `type` is `Group`, its `$ref` names
    /// a Group, or its value is no user's id but a group's) is left out and logged instead of
    /// being forwarded, for applications that sync direct members only.
    #[serde(default)]
    pub ignore_nested_groups: bool,
}

/// `[[resources.<Type>.extensions]]`: an extension schema declared by a profile, with
/// attribute definitions in the shape `/Schemas` publishes (`name`, `type`, `multiValued`,
/// `required`, `caseExact`, `canonicalValues`, `subAttributes`, …).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionConfig {
    /// The schema URN.
    pub id: String,
    /// Short name for `/Schemas`.
    #[serde(default)]
    pub name: String,
    /// Description for `/Schemas`.
    #[serde(default)]
    pub description: String,
    /// Resources must carry it.
    #[serde(default)]
    pub required: bool,
    /// Any key is accepted as an attribute (keys chosen by the identity provider's admin).
    #[serde(default)]
    pub open: bool,
    /// Declared attributes.
    #[serde(default)]
    pub attributes: Vec<crate::scim::AttributeDef>,
}

/// `[lookups.<name>]`: a backend list cached by the gateway for scripts' `lookup()`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RawLookup")]
pub struct LookupConfig {
    /// The list call (always GET).
    pub endpoint: ListEndpoint,
    /// The item field entries are looked up by.
    pub key: String,
    /// How often the cache is refreshed.
    pub refresh: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    path: PathTemplate,
    #[serde(default)]
    query: BTreeMap<String, String>,
    items: JsonPath,
    #[serde(default)]
    total: Option<JsonPath>,
    #[serde(default)]
    paging: Paging,
    key: String,
    #[serde(default = "default_refresh_secs")]
    refresh_secs: u64,
}

fn default_refresh_secs() -> u64 {
    300
}

impl From<RawLookup> for LookupConfig {
    fn from(r: RawLookup) -> Self {
        LookupConfig {
            endpoint: ListEndpoint {
                method: http::Method::GET,
                path: r.path,
                query: r.query,
                items: r.items,
                total: r.total,
                paging: r.paging,
            },
            key: r.key,
            refresh: Duration::from_secs(r.refresh_secs),
        }
    }
}

/// `[scim_auth]` of a profile: for a product that hands its SCIM callers a user name and
/// password (HTTP Basic) rather than a token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScimAuthConfig {
    /// The SCIM user name the product hands out; its password lives in the store
    /// (`scimgate basic set`). HTTP Basic with it authenticates, and so does a bearer token
    /// equal to its password, because Entra's custom SCIM app sends the product's Password as
    /// its "Secret Token". `scimgate demo` creates this user with a random password.
    pub username: Option<String>,
}

/// A loaded profile: the legacy API description and where its scripts are.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile name (`default`).
    pub name: String,
    /// The profile file that was loaded.
    pub file: PathBuf,
    /// Directory of the profile's mapping scripts.
    pub scripts_dir: PathBuf,
    /// The legacy API.
    pub backend: BackendConfig,
    /// Whether groups are the legacy app's (`backend`) or kept by the gateway (`managed`).
    pub groups: GroupsMode,
    /// SCIM resource type name (`User`, `Group`) → its mapping.
    pub resources: BTreeMap<String, ResourceConfig>,
    /// Cached lookups by name.
    pub lookups: BTreeMap<String, LookupConfig>,
    /// How SCIM callers authenticate when the product hands out a user name and password.
    pub scim_auth: ScimAuthConfig,
}

/// The whole configuration, loaded and checked at startup (and on reload).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `scimgate.toml` that was loaded.
    pub file: PathBuf,
    /// SCIM listener.
    pub server: ServerConfig,
    /// Client authentication.
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// The gateway's database (`[store]`, or the default SQLite file).
    pub store: StoreConfig,
    /// The admin listener.
    pub admin: AdminConfig,
    /// Retries of multi-call operations.
    pub plans: PlansConfig,
    /// The selected profile.
    pub profile: Profile,
    origins: HashMap<String, Origin>,
}

/// Where a key's value came from, for locating semantic issues.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    file: PathBuf,
    line: Option<usize>,
    env: Option<String>,
}

impl Config {
    /// Loads `path`, its profile and the process's `SCIMGATE_*` variables, then validates.
    /// `Err` carries every issue found; `Ok` means the configuration is usable.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigIssue>> {
        Self::load_with_env(path, std::env::vars())
    }

    /// `[admin]` alone, from `path` and the `SCIMGATE_ADMIN__*` variables (their `_FILE`
    /// forms too), through the same overlay as [`Config::load`]: for `scimgate health`, which
    /// must not fail on a secret file or profile that does not load.
    pub fn load_admin(path: &Path) -> Result<AdminConfig, Vec<ConfigIssue>> {
        let mut elsewhere = Vec::new();
        let (main_env, _) = split_env(path, std::env::vars(), &mut elsewhere);
        let env: Vec<EnvValue> = main_env
            .into_iter()
            .filter(|e| e.keys.first().is_some_and(|k| k == "admin"))
            .collect();
        // Problems of other variables are not this section's.
        let mut issues: Vec<ConfigIssue> = elsewhere
            .into_iter()
            .filter(|i| i.message.contains("SCIMGATE_ADMIN__"))
            .collect();
        let src = Source::read(path, &env).map_err(|e| vec![e])?;
        let mut origins = HashMap::new();
        let mut main = Sections::parse(&src, &env, &mut origins, &mut issues);
        match main.take::<AdminConfig>("admin", &mut issues) {
            Some(admin) if issues.is_empty() => Ok(admin.unwrap_or_default()),
            _ => Err(issues),
        }
    }

    /// [`Config::load`] with an explicit environment (variables not starting with
    /// `SCIMGATE_` are ignored).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let (main_env, profile_env) = split_env(path, env, &mut issues);
        let mut origins = HashMap::new();

        let main_src = match Source::read(path, &main_env) {
            Ok(s) => s,
            Err(e) => {
                issues.push(e);
                return Err(issues);
            }
        };
        let mut main = Sections::parse(&main_src, &main_env, &mut origins, &mut issues);
        let server = main.take::<ServerConfig>("server", &mut issues);
        let auth = main.take::<AuthConfig>("auth", &mut issues);
        let log = main.take::<LogConfig>("log", &mut issues);
        let store = main.take::<StoreConfig>("store", &mut issues);
        let admin = main.take::<AdminConfig>("admin", &mut issues);
        let plans = main.take::<PlansConfig>("plans", &mut issues);
        let pref = main.take::<ProfileRef>("profile", &mut issues);
        main.reject_rest(&MAIN_SECTIONS, &mut issues);

        let pref = pref.map(Option::unwrap_or_default);
        let profile = match pref {
            Some(p) if is_identifier(&p.name) => {
                load_profile(path, &p, &profile_env, &mut origins, &mut issues)
            }
            Some(p) => {
                issues.push(main_src.issue_at(
                    &origins,
                    "profile.name",
                    format!(
                        "`{}` must be a plain name (letters, digits, `_`, `-`)",
                        p.name
                    ),
                ));
                None
            }
            None => None,
        };

        match (server, auth, log, store, admin, plans, profile) {
            (
                Some(server),
                Some(auth),
                Some(log),
                Some(store),
                Some(admin),
                Some(plans),
                Some(profile),
            ) if issues.is_empty() => {
                let mut store = store.unwrap_or_default();
                store.resolve_against(&deployment_root(path));
                let cfg = Config {
                    file: path.to_path_buf(),
                    server: server.unwrap_or_default(),
                    auth: auth.unwrap_or_default(),
                    log: log.unwrap_or_default(),
                    store,
                    admin: admin.unwrap_or_default(),
                    plans: plans.unwrap_or_default(),
                    profile,
                    origins,
                };
                let problems = cfg.validate();
                if problems.is_empty() {
                    Ok(cfg)
                } else {
                    Err(problems)
                }
            }
            _ => Err(issues),
        }
    }

    /// A configuration assembled in code (tests, embedded demo); issues found by
    /// [`Config::validate`] then carry no line numbers.
    pub fn from_parts(
        file: PathBuf,
        server: ServerConfig,
        auth: AuthConfig,
        log: LogConfig,
        profile: Profile,
    ) -> Config {
        Config {
            file,
            server,
            auth,
            log,
            store: StoreConfig::default(),
            admin: AdminConfig::default(),
            plans: PlansConfig::default(),
            profile,
            origins: HashMap::new(),
        }
    }

    /// Checks the meaning of the loaded values (addresses, URLs, limits, placeholders of each
    /// endpoint kind, filter attribute paths, resource names) and returns every problem;
    /// empty means valid. [`Config::load`] runs it; call it again after editing a `Config`.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut v = Validator {
            cfg: self,
            issues: Vec::new(),
        };
        v.server();
        v.declared_credentials();
        v.auth();
        v.store();
        v.admin();
        v.log();
        v.backend();
        v.scim_auth();
        v.groups();
        for (name, r) in &self.profile.resources {
            if self.profile.groups == GroupsMode::Managed && name == "Group" {
                v.managed_group(r);
            } else {
                v.resource(name, r);
            }
            v.resource_rules(name, r);
        }
        for (name, l) in &self.profile.lookups {
            v.lookup(name, l);
        }
        v.issues
    }

    /// The issue for `key` (dotted, e.g. `server.listen`), located by where its value came
    /// from: file and line, or the environment variable that set it.
    fn issue(&self, key: &str, message: impl fmt::Display) -> ConfigIssue {
        let in_profile = PROFILE_SECTIONS
            .iter()
            .any(|s| key.split('.').next() == Some(*s));
        let fallback = if in_profile {
            &self.profile.file
        } else {
            &self.file
        };
        locate(&self.origins, fallback, key, message)
    }
}

/// Where the scripts of the profile `path` names live, read leniently (only `[profile]`), so
/// `scimgate check` can still compile them when the rest of the configuration is broken.
/// `None` when even that cannot be read.
pub fn scripts_dir_hint(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    let profile = doc.get("profile").and_then(toml::Value::as_table);
    let field = |k: &str, default: &str| {
        profile
            .and_then(|p| p.get(k))
            .and_then(toml::Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let (name, dir) = (field("name", "default"), field("dir", "."));
    if !is_identifier(&name) {
        return None;
    }
    let base = path.parent().unwrap_or_else(|| Path::new(".")).join(dir);
    Some(
        std::fs::canonicalize(&base)
            .unwrap_or(base)
            .join("scripts")
            .join(name),
    )
}

/// Where relative paths of `scimgate.toml` (the SQLite file) are anchored: the parent of the
/// config file's directory, resolved when it exists.
fn deployment_root(main_path: &Path) -> PathBuf {
    let root = main_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

fn load_profile(
    main_path: &Path,
    pref: &ProfileRef,
    env: &[EnvValue],
    origins: &mut HashMap<String, Origin>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Profile> {
    let base = main_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(&pref.dir);
    // Resolve `..` so that issues and logs show a clean path; keep the lexical path if the
    // directory does not exist (the read below then reports it).
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let file = base
        .join("config")
        .join("profiles")
        .join(format!("{}.toml", pref.name));
    let src = match Source::read(&file, env) {
        Ok(s) => s,
        Err(e) => {
            issues.push(e);
            return None;
        }
    };
    let mut sections = Sections::parse(&src, env, origins, issues);
    let backend = sections.take::<BackendConfig>("backend", issues);
    let groups = sections.take::<GroupsMode>("groups", issues);
    let resources = sections.take_map::<ResourceConfig>("resources", issues);
    let lookups = sections.take_map::<LookupConfig>("lookups", issues);
    let scim_auth = sections.take::<ScimAuthConfig>("scim_auth", issues);
    sections.reject_rest(&PROFILE_SECTIONS, issues);
    let backend = match backend? {
        Some(b) => b,
        None => {
            issues.push(src.issue(None, "missing required section [backend]".into()));
            return None;
        }
    };
    Some(Profile {
        name: pref.name.clone(),
        scripts_dir: base.join("scripts").join(&pref.name),
        file,
        backend,
        groups: groups?.unwrap_or_default(),
        resources: resources?,
        lookups: lookups?,
        scim_auth: scim_auth?.unwrap_or_default(),
    })
}

/// One `SCIMGATE_A__B=value` variable, split into its key path.
#[derive(Debug, Clone)]
struct EnvValue {
    var: String,
    keys: Vec<String>,
    value: String,
    /// Read from a `…_FILE`: always a string, never parsed as a TOML scalar.
    from_file: bool,
}

fn split_env(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    issues: &mut Vec<ConfigIssue>,
) -> (Vec<EnvValue>, Vec<EnvValue>) {
    let mut main = Vec::new();
    let mut profile = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    let names: std::collections::HashSet<String> = vars.iter().map(|(k, _)| k.clone()).collect();
    for (var, value) in vars {
        let mut keys: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if keys.iter().any(String::is_empty) {
            issues.push(env_issue(path, &var, "empty key segment"));
            continue;
        }
        // `…_FILE=/run/secrets/x`: the value is that file's content (a mounted secret).
        let from_file = keys.last().is_some_and(|k| k.ends_with("_file"));
        let value = match keys.last_mut().and_then(|k| {
            let stem = k.strip_suffix("_file")?.to_string();
            Some(std::mem::replace(k, stem))
        }) {
            None => value,
            Some(_) if keys.last().is_some_and(String::is_empty) => {
                issues.push(env_issue(path, &var, "empty key segment"));
                continue;
            }
            Some(_) => {
                let plain = &var[..var.len() - "_FILE".len()];
                if names.contains(plain) {
                    let msg = format!("{plain} is set too; set one of them");
                    issues.push(env_issue(path, &var, &msg));
                    continue;
                }
                match read_secret_file(Path::new(&value)) {
                    Ok(v) => v,
                    Err(e) => {
                        let msg = format!("cannot read {value}: {e}");
                        issues.push(env_issue(path, &var, &msg));
                        continue;
                    }
                }
            }
        };
        let section = keys[0].clone();
        let ev = EnvValue {
            var,
            keys,
            value,
            from_file,
        };
        if MAIN_SECTIONS.contains(&section.as_str()) {
            main.push(ev);
        } else if PROFILE_SECTIONS.contains(&section.as_str()) {
            profile.push(ev);
        } else {
            let msg = format!("unknown section `{section}`");
            issues.push(env_issue(path, &ev.var, &msg));
        }
    }
    (main, profile)
}

/// A secret file's content without its final line break (what `echo` or an editor leaves);
/// a file of several lines is a list, one item per line.
fn read_secret_file(file: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(file)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn env_issue(path: &Path, var: &str, message: &str) -> ConfigIssue {
    ConfigIssue {
        file: path.to_path_buf(),
        line: None,
        message: format!("environment variable {var}: {message}"),
    }
}

/// A file's text with the environment values appended after it, so that every parsed value,
/// from the file or the environment, has a span in one string and errors can be traced back
/// to a line or to the variable that set the value.
struct Source {
    path: PathBuf,
    text: String,
    file_len: usize,
    env_spans: Vec<(Range<usize>, String)>,
}

impl Source {
    fn read(path: &Path, env: &[EnvValue]) -> Result<Source, ConfigIssue> {
        let mut text = std::fs::read_to_string(path).map_err(|e| ConfigIssue {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        let file_len = text.len();
        let mut env_spans = Vec::with_capacity(env.len());
        for ev in env {
            text.push('\n');
            let start = text.len();
            text.push_str(&ev.value);
            env_spans.push((start..text.len(), ev.var.clone()));
        }
        Ok(Source {
            path: path.to_path_buf(),
            text,
            file_len,
            env_spans,
        })
    }

    fn origin(&self, offset: usize) -> Origin {
        if offset < self.file_len || self.env_spans.is_empty() {
            let end = offset.min(self.file_len);
            let line = self.text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Origin {
                file: self.path.clone(),
                line: Some(line),
                env: None,
            };
        }
        let env = self
            .env_spans
            .iter()
            .find(|(r, _)| r.contains(&offset) || r.end == offset)
            .map(|(_, v)| v.clone());
        Origin {
            file: self.path.clone(),
            line: None,
            env,
        }
    }

    fn issue(&self, span: Option<Range<usize>>, message: String) -> ConfigIssue {
        match span {
            Some(s) => {
                let o = self.origin(s.start);
                let message = match o.env {
                    Some(var) => format!("environment variable {var}: {message}"),
                    None => message,
                };
                ConfigIssue {
                    file: o.file,
                    line: o.line,
                    message,
                }
            }
            None => ConfigIssue {
                file: self.path.clone(),
                line: None,
                message,
            },
        }
    }

    fn issue_at(
        &self,
        origins: &HashMap<String, Origin>,
        key: &str,
        message: String,
    ) -> ConfigIssue {
        locate(origins, &self.path, key, message)
    }
}

fn locate(
    origins: &HashMap<String, Origin>,
    fallback: &Path,
    key: &str,
    message: impl fmt::Display,
) -> ConfigIssue {
    // A key left at its default has no origin; its nearest written ancestor is the best hint.
    let mut k = key;
    let origin = loop {
        if let Some(o) = origins.get(k) {
            break Some(o);
        }
        match k.rfind('.') {
            Some(i) => k = &k[..i],
            None => break None,
        }
    };
    match origin {
        Some(Origin {
            file,
            line,
            env: Some(var),
        }) => ConfigIssue {
            file: file.clone(),
            line: *line,
            message: format!("{key} (set by {var}): {message}"),
        },
        Some(o) => ConfigIssue {
            file: o.file.clone(),
            line: o.line,
            message: format!("{key}: {message}"),
        },
        None => ConfigIssue {
            file: fallback.to_path_buf(),
            line: None,
            message: format!("{key}: {message}"),
        },
    }
}

/// The parsed top-level tables of one file, taken out one section at a time so that an error
/// in one section does not hide the errors in the others.
struct Sections<'s> {
    src: &'s Source,
    root: DeTable<'s>,
    keys: Vec<KeySpan>,
}

/// A dotted key with the spans of its name and its value, to name the key an error is in.
struct KeySpan {
    key: String,
    name: Range<usize>,
    value: Range<usize>,
}

impl<'s> Sections<'s> {
    fn parse(
        src: &'s Source,
        env: &[EnvValue],
        origins: &mut HashMap<String, Origin>,
        issues: &mut Vec<ConfigIssue>,
    ) -> Sections<'s> {
        let (root, errors) = DeTable::parse_recoverable(&src.text[..src.file_len]);
        let mut root = root.into_inner();
        let syntax_ok = errors.is_empty();
        for e in errors {
            issues.push(src.issue(e.span(), e.message().to_string()));
        }
        if !syntax_ok {
            // Recovered tables may be partial; type errors in them would only add noise.
            root = DeTable::new();
        }
        for (ev, (span, _)) in env.iter().zip(&src.env_spans) {
            let raw = &src.text[span.clone()];
            if let Err(msg) = overlay(&mut root, &ev.keys, raw, ev.from_file, span) {
                issues.push(env_issue(&src.path, &ev.var, &msg));
            }
        }
        let mut keys = Vec::new();
        record_keys(&root, "", &mut keys);
        for k in &keys {
            origins.insert(k.key.clone(), src.origin(k.name.start));
        }
        Sections { src, root, keys }
    }

    /// Deserializes section `key`: `Some(None)` when absent, `None` after reporting an error.
    fn take<T: DeserializeOwned>(
        &mut self,
        key: &str,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Option<T>> {
        let Some(value) = self.root.remove(key) else {
            return Some(None);
        };
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                issues.push(self.de_issue(&e, key));
                None
            }
        }
    }

    /// Deserializes every entry of the table `key` separately; `None` if any failed.
    fn take_map<T: DeserializeOwned>(
        &mut self,
        key: &str,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<BTreeMap<String, T>> {
        let Some(value) = self.root.remove(key) else {
            return Some(BTreeMap::new());
        };
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            let msg = format!("`{key}` must be a table");
            issues.push(self.src.issue(Some(span), msg));
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, v) in table {
            match T::deserialize(ValueDeserializer::from(v)) {
                Ok(t) => {
                    out.insert(name.into_inner().into_owned(), t);
                }
                Err(e) => {
                    issues.push(self.de_issue(&e, &format!("{key}.{}", name.get_ref())));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A deserialization error, prefixed with the innermost key whose name or value holds
    /// the error's span (`section` when none does).
    fn de_issue(&self, e: &toml::de::Error, section: &str) -> ConfigIssue {
        let key = e.span().and_then(|span| {
            self.keys
                .iter()
                .filter(|k| {
                    k.name.contains(&span.start)
                        || (k.value.start <= span.start && span.end <= k.value.end)
                })
                .min_by_key(|k| (k.value.len().min(k.name.len()), usize::MAX - k.key.len()))
        });
        let key = key.map_or(section, |k| k.key.as_str());
        self.src.issue(e.span(), format!("{key}: {}", e.message()))
    }

    /// Reports every top-level key that is not a known section.
    fn reject_rest(self, known: &[&str], issues: &mut Vec<ConfigIssue>) {
        for (k, _) in self.root {
            let msg = format!(
                "unknown section `{}`, expected one of: {}",
                k.get_ref(),
                known.join(", ")
            );
            issues.push(self.src.issue(Some(k.span()), msg));
        }
    }
}

/// An environment value as a TOML scalar when it is one, else as a plain string.
fn env_scalar(raw: &str) -> DeValue<'_> {
    match DeValue::parse(raw).map(Spanned::into_inner) {
        Ok(
            v
            @ (DeValue::String(_) | DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_)),
        ) => v,
        _ => DeValue::String(Cow::Borrowed(raw)),
    }
}

/// Sets `keys` in `table` to the environment value `raw`, creating tables on the way;
/// existing keys match ignoring ASCII case (variable names are upper case, keys are not).
/// A value replacing a string stays a string, so `SCIMGATE_BACKEND__AUTH__VALUE=12345` does
/// not turn an API key into a number.
fn overlay<'s>(
    table: &mut DeTable<'s>,
    keys: &[String],
    raw: &'s str,
    text: bool,
    span: &Range<usize>,
) -> Result<(), String> {
    let Some((first, rest)) = keys.split_first() else {
        return Ok(());
    };
    let existing = table
        .keys()
        .find(|k| k.get_ref().eq_ignore_ascii_case(first))
        .map(|k| k.get_ref().to_string());
    let key = existing.clone().unwrap_or_else(|| first.clone());
    if rest.is_empty() {
        let was_string = matches!(
            table.remove(key.as_str()).map(Spanned::into_inner),
            Some(DeValue::String(_))
        );
        let value = if was_string || text {
            DeValue::String(Cow::Borrowed(raw))
        } else {
            env_scalar(raw)
        };
        table.insert(
            Spanned::new(span.clone(), Cow::Owned(key)),
            Spanned::new(span.clone(), value),
        );
        return Ok(());
    }
    if existing.is_none() {
        table.insert(
            Spanned::new(span.clone(), Cow::Owned(key.clone())),
            Spanned::new(span.clone(), DeValue::Table(DeTable::new())),
        );
    }
    match table.get_mut(key.as_str()).map(Spanned::get_mut) {
        Some(DeValue::Table(t)) => overlay(t, rest, raw, text, span),
        _ => Err(format!("`{key}` is not a table")),
    }
}

fn record_keys(table: &DeTable<'_>, prefix: &str, out: &mut Vec<KeySpan>) {
    for (k, v) in table.iter() {
        let key = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        if let DeValue::Table(t) = v.get_ref() {
            record_keys(t, &key, out);
        }
        out.push(KeySpan {
            key,
            name: k.span(),
            value: v.span(),
        });
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A list of strings, or one string with an item per line (argon2 hashes hold commas).
fn de_line_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    d.deserialize_any(SecretList { commas: false })
}

/// A list of strings, or one comma-separated string (from the environment).
fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(de_secret_list(d)?.into_iter().map(|s| s.0).collect())
}

fn de_secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    d.deserialize_any(SecretList { commas: true })
}

/// A list of secrets: a TOML list, or one string with an item per line (a mounted secret
/// file) or, with `commas` and no line break, comma-separated (an environment variable).
struct SecretList {
    commas: bool,
}

impl<'de> Visitor<'de> for SecretList {
    type Value = Vec<Secret>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings or a string with one entry per line")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        let sep = if self.commas && !s.contains('\n') {
            ','
        } else {
            '\n'
        };
        Ok(s.split(sep)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .collect())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(vec![Secret(n.to_string())])
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(vec![Secret(n.to_string())])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element::<Secret>()? {
            out.push(s);
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts a string, or an integer (a numeric credential set from the environment
    /// without quotes), as its decimal text.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl Visitor<'_> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Secret, E> {
                Ok(Secret::new(s))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Secret, E> {
                Ok(Secret(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Secret, E> {
                Ok(Secret(n.to_string()))
            }
        }
        d.deserialize_any(SecretVisitor)
    }
}

/// Placeholders each endpoint kind may use in its path and its body.
struct Allowed {
    path: &'static [&'static str],
    body: &'static [&'static str],
    required: &'static [&'static str],
}

const BY_ID: Allowed = Allowed {
    path: &["id"],
    body: &["id"],
    required: &["id"],
};
const COLLECTION: Allowed = Allowed {
    path: &[],
    body: &[],
    required: &[],
};
const MEMBERS: Allowed = Allowed {
    path: &["id", "member"],
    body: &["id", "member", "members"],
    required: &["id"],
};
const ACTION: Allowed = Allowed {
    path: &["id", "member"],
    body: &["id", "member", "members"],
    required: &[],
};

struct Validator<'c> {
    cfg: &'c Config,
    issues: Vec<ConfigIssue>,
}

impl Validator<'_> {
    fn push(&mut self, key: &str, message: impl fmt::Display) {
        self.issues.push(self.cfg.issue(key, message));
    }

    fn declared_credentials(&mut self) {
        let a = &self.cfg.auth;
        let bad_keys: Vec<usize> = (1..=a.api_keys.len())
            .filter(|i| crate::store::DeclaredKey::parse(a.api_keys[i - 1].expose()).is_none())
            .collect();
        let bad_users: Vec<usize> = (1..=a.basic_users.len())
            .filter(|i| crate::store::DeclaredUser::parse(a.basic_users[i - 1].expose()).is_none())
            .collect();
        for i in bad_keys {
            self.push(
                "auth.api_keys",
                format!("entry #{i} is not `id:sha256hex:name` (`scimgate token new` prints one)"),
            );
        }
        for i in bad_users {
            self.push(
                "auth.basic_users",
                format!("entry #{i} is not `username:$argon2…` (`scimgate basic hash` prints one)"),
            );
        }
    }

    fn server(&mut self) {
        let s = &self.cfg.server;
        if !s.base_path.starts_with('/') || s.base_path.ends_with('/') {
            self.push(
                "server.base_path",
                format!("`{}` must start with `/` and not end with `/`", s.base_path),
            );
        }
        if let Some(c) = s
            .base_path
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@".contains(*c)))
        {
            self.push(
                "server.base_path",
                format!(
                    "`{}` holds `{c}`: a base path is made of letters, digits and `/-._~!$&'()*+,;=:@`",
                    s.base_path
                ),
            );
        }
        if !s.public_url.is_empty() && !is_http_url(&s.public_url) {
            self.push(
                "server.public_url",
                format!("`{}` must be an absolute http(s) URL", s.public_url),
            );
        }
        if s.max_header_bytes < 1024 {
            self.push("server.max_header_bytes", "must be at least 1024");
        }
        for p in &s.trusted_proxies {
            if crate::server::forwarded::Cidr::parse(p).is_none() {
                self.push(
                    "server.trusted_proxies",
                    format!("`{p}` is not an address or range (e.g. `10.0.0.0/8`)"),
                );
            }
        }
        for (key, zero) in [
            ("server.max_body_bytes", s.max_body_bytes == 0),
            ("server.request_timeout_ms", s.request_timeout_ms == 0),
            ("server.max_concurrency", s.max_concurrency == 0),
            ("server.max_attribute_values", s.max_attribute_values == 0),
            (
                "server.header_read_timeout_ms",
                s.header_read_timeout_ms == 0,
            ),
            ("server.idle_timeout_ms", s.idle_timeout_ms == 0),
            ("server.max_connections", s.max_connections == 0),
            ("server.max_uri_bytes", s.max_uri_bytes == 0),
            ("server.script_timeout_ms", s.script_timeout_ms == 0),
            (
                "auth.max_password_checks",
                self.cfg.auth.max_password_checks == 0,
            ),
            (
                "auth.failed_login_window_s",
                self.cfg.auth.failed_login_window_s == 0,
            ),
            ("plans.max_attempts", self.cfg.plans.max_attempts == 0),
        ] {
            if zero {
                self.push(key, "must be greater than 0");
            }
        }
    }

    fn auth(&mut self) {
        // With no static token, keys issued by `scimgate token create` (or Basic credentials)
        // from the store authenticate.
        let tokens = &self.cfg.auth.tokens;
        for (i, t) in tokens.iter().enumerate() {
            let v = t.expose();
            if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.push(
                    "auth.tokens",
                    format!("token #{} is empty or contains whitespace", i + 1),
                );
            }
        }
    }

    fn store(&mut self) {
        let store = &self.cfg.store;
        let url = store.url.expose();
        let known = ["sqlite:", "postgres:", "postgresql:"];
        if !known.iter().any(|k| url.starts_with(k)) {
            // The URL is not echoed: it may hold a password.
            self.push(
                "store.url",
                "must start with sqlite:// or postgres:// (or postgresql://)",
            );
        } else if split_sqlite_url(url).is_some_and(|(path, _)| path.is_empty()) {
            self.push("store.url", "names no SQLite file");
        }
    }

    fn admin(&mut self) {
        let admin = &self.cfg.admin;
        let password = admin.password.expose();
        // Empty is allowed (the page is then off); a short one would guard key management
        // with something guessable. The value is never echoed.
        if !password.is_empty() && password.chars().count() < MIN_ADMIN_PASSWORD_CHARS {
            self.push(
                "admin.password",
                format!("must have at least {MIN_ADMIN_PASSWORD_CHARS} characters (or be empty to turn the page off)"),
            );
        }
        if admin.enabled && admin.listen == self.cfg.server.listen && admin.listen.port() != 0 {
            self.push(
                "admin.listen",
                format!(
                    "{} is also server.listen; the admin listener needs its own port",
                    admin.listen
                ),
            );
        }
    }

    fn log(&mut self) {
        let level = &self.cfg.log.level;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
            self.push("log.level", format!("`{level}` is not a valid filter: {e}"));
        }
    }

    fn scim_auth(&mut self) {
        let Some(user) = &self.cfg.profile.scim_auth.username else {
            return;
        };
        // RFC 7617: the user name of a Basic credential cannot contain a colon.
        if user.trim().is_empty() || user.contains(':') || user.chars().any(char::is_control) {
            self.push(
                "scim_auth.username",
                format!("`{user}` must be non-empty, without `:` or control characters"),
            );
        }
        if matches!(
            self.cfg.profile.backend.auth,
            BackendAuth::Passthrough { .. }
        ) {
            self.push(
                "scim_auth.username",
                "a pass-through profile forwards the caller's credential and checks none itself",
            );
        }
    }

    fn backend(&mut self) {
        let b = &self.cfg.profile.backend;
        if let Err(e) = backend::check_base_url(&b.base_url) {
            self.push("backend.base_url", e);
        }
        if let Err(e) = backend::check_auth(&b.auth) {
            self.push("backend.auth", e);
        }
        for (key, zero) in [
            ("backend.timeout_ms", b.timeout_ms == 0),
            (
                "backend.ready_path",
                !b.ready_path.starts_with('/') || b.ready_path.contains(['?', '#']),
            ),
            ("backend.connect_timeout_ms", b.connect_timeout_ms == 0),
        ] {
            if zero {
                self.push(key, "must be greater than 0");
            }
        }
    }

    fn groups(&mut self) {
        let p = &self.cfg.profile;
        if p.groups == GroupsMode::Managed && !p.resources.contains_key("User") {
            self.push(
                "groups",
                "`managed` groups need [resources.User]: members are verified with its `get` \
                 endpoint and its script's on_membership_change hook is called",
            );
        }
    }

    /// `[resources.Group]` of a profile with `groups = "managed"`: only what shapes the
    /// published schema is meaningful; anything that would be ignored is an error, so an
    /// integrator never believes an endpoint or script is in use when it is not.
    fn managed_group(&mut self, r: &ResourceConfig) {
        let base = "resources.Group";
        let why =
            "is ignored with groups = \"managed\" (the gateway's store keeps groups); remove it";
        let e = &r.endpoints;
        let endpoints = [
            ("get", e.get.is_some()),
            ("list", e.list.is_some()),
            ("create", e.create.is_some()),
            ("replace", e.replace.is_some()),
            ("update", e.update.is_some()),
            ("delete", e.delete.is_some()),
            ("members_add", e.members_add.is_some()),
            ("members_remove", e.members_remove.is_some()),
            ("members_list", e.members_list.is_some()),
            ("actions", !e.actions.is_empty()),
        ];
        for (kind, set) in endpoints {
            if set {
                self.push(&format!("{base}.endpoints.{kind}"), why);
            }
        }
        let others = [
            ("script", !r.script.is_empty()),
            ("filters", !r.filters.is_empty()),
            ("member_id", r.member_id.is_some()),
            ("member_display", r.member_display.is_some()),
            ("keep_unknown", r.keep_unknown),
            ("custom_attributes", !r.custom_attributes.is_empty()),
            ("extensions", !r.extensions.is_empty()),
        ];
        for (key, set) in others {
            if set {
                self.push(&format!("{base}.{key}"), why);
            }
        }
        for a in &r.attributes {
            let kept = a.eq_ignore_ascii_case("members")
                || MANAGED_GROUP_ATTRIBUTES
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(a));
            if !kept {
                self.push(
                    &format!("{base}.attributes"),
                    format!(
                        "`{a}` cannot be kept by gateway-managed groups, which store only \
                         displayName, externalId and members (value, $ref, type)"
                    ),
                );
            }
        }
    }

    /// `unsupported` and `ignore_nested_groups`, which mean the same for backend and
    /// gateway-managed resources.
    fn resource_rules(&mut self, name: &str, r: &ResourceConfig) {
        let base = format!("resources.{name}");
        for a in &r.unsupported {
            // RFC 7643 §2.1 ATTRNAME: matched in any schema, so no URN and no sub-attribute.
            let plain = a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !plain {
                self.push(
                    &format!("{base}.unsupported"),
                    format!("`{a}` must be a plain attribute name (e.g. `owners`)"),
                );
            }
        }
        if r.ignore_nested_groups && name != "Group" {
            self.push(
                &format!("{base}.ignore_nested_groups"),
                "only Group resources have members that can be groups",
            );
        }
    }

    fn resource(&mut self, name: &str, r: &ResourceConfig) {
        let base = format!("resources.{name}");
        if r.script.is_empty() {
            self.push(&format!("{base}.script"), "is required");
        }
        let registry = SchemaRegistry::core();
        if !registry.resource_types().iter().any(|t| t.name == name) {
            let known: Vec<&str> = registry
                .resource_types()
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            self.push(
                &base,
                format!(
                    "unknown SCIM resource type `{name}`, expected one of: {}",
                    known.join(", ")
                ),
            );
        }
        if !r.script.is_empty() && !is_identifier(&r.script) {
            self.push(
                &format!("{base}.script"),
                format!("`{}` must be a plain script name", r.script),
            );
        }
        let e = &r.endpoints;
        let ep = format!("{base}.endpoints");
        let singles = [
            ("get", &e.get, &BY_ID),
            ("create", &e.create, &COLLECTION),
            ("replace", &e.replace, &BY_ID),
            ("update", &e.update, &BY_ID),
            ("delete", &e.delete, &BY_ID),
            ("members_add", &e.members_add, &MEMBERS),
            ("members_remove", &e.members_remove, &MEMBERS),
        ];
        for (kind, endpoint, allowed) in singles {
            if let Some(endpoint) = endpoint {
                self.endpoint(&format!("{ep}.{kind}"), endpoint, allowed);
            }
        }
        if let Some(m) = &e.members_remove {
            let names_member = m.path.has_placeholder("member")
                || m.body
                    .as_ref()
                    .is_some_and(|b| b.has_placeholder("member") || b.has_placeholder("members"));
            if !names_member {
                self.push(
                    &format!("{ep}.members_remove"),
                    "must name the member with `{member}` (path or body) or `{members}` (body)",
                );
            }
        }
        for (action, endpoint) in &e.actions {
            self.endpoint(&format!("{ep}.actions.{action}"), endpoint, &ACTION);
        }
        if let Some(l) = &e.list {
            self.template(&format!("{ep}.list.path"), &l.path, &[], &[]);
        }
        if let Some(l) = &e.members_list {
            self.template(
                &format!("{ep}.members_list.path"),
                &l.path,
                &["id"],
                &["id"],
            );
        }
        for (attr, param) in &r.filters {
            let key = format!("{base}.filters");
            if let Err(err) = AttrPath::parse(attr) {
                self.push(
                    &key,
                    format!("`{attr}` is not a SCIM attribute path: {}", err.detail),
                );
            }
            if param.is_empty() {
                self.push(&key, format!("`{attr}` maps to an empty query parameter"));
            }
        }
        if !r.filters.is_empty() && e.list.is_none() {
            self.push(&format!("{base}.filters"), "filters need a `list` endpoint");
        }
    }

    fn endpoint(&mut self, key: &str, e: &Endpoint, allowed: &Allowed) {
        self.template(
            &format!("{key}.path"),
            &e.path,
            allowed.path,
            allowed.required,
        );
        if let Some(body) = &e.body {
            for p in body.placeholders() {
                if !allowed.body.contains(&p) {
                    self.push(&format!("{key}.body"), unknown_placeholder(p, allowed.body));
                }
            }
        }
    }

    fn template(&mut self, key: &str, t: &PathTemplate, allowed: &[&str], required: &[&str]) {
        if !t.as_str().starts_with('/') {
            self.push(key, format!("`{t}` must start with `/`"));
        }
        for p in t.placeholders() {
            if !allowed.contains(&p) {
                self.push(key, unknown_placeholder(p, allowed));
            }
        }
        for r in required {
            if !t.has_placeholder(r) {
                self.push(key, format!("`{t}` must contain `{{{r}}}`"));
            }
        }
    }

    fn lookup(&mut self, name: &str, l: &LookupConfig) {
        let base = format!("lookups.{name}");
        if !is_identifier(name) {
            self.push(&base, format!("lookup name `{name}` must be a plain name"));
        }
        self.template(&format!("{base}.path"), &l.endpoint.path, &[], &[]);
        if l.key.is_empty() {
            self.push(
                &format!("{base}.key"),
                "must name the item field to look up by",
            );
        }
        if l.refresh.is_zero() {
            self.push(&format!("{base}.refresh_secs"), "must be greater than 0");
        }
    }
}

fn unknown_placeholder(p: &str, allowed: &[&str]) -> String {
    if allowed.is_empty() {
        format!("unknown placeholder `{{{p}}}`: this endpoint takes none")
    } else {
        let list: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
        format!(
            "unknown placeholder `{{{p}}}`, expected one of: {}",
            list.join(", ")
        )
    }
}

fn is_http_url(s: &str) -> bool {
    s.parse::<http::Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http") | Some("https")) && u.authority().is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A scratch layout `<tmp>/config/scimgate.toml` + `<tmp>/config/profiles/<name>.toml`.
    struct Layout {
        root: PathBuf,
    }

    impl Layout {
        fn new(main: &str, profile: &str) -> Layout {
            let root = std::env::temp_dir().join(format!("scimgate-cfg-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(root.join("config/profiles")).unwrap();
            std::fs::write(root.join("config/scimgate.toml"), main).unwrap();
            std::fs::write(root.join("config/profiles/default.toml"), profile).unwrap();
            Layout { root }
        }
        fn main(&self) -> PathBuf {
            self.root.join("config/scimgate.toml")
        }
        fn profile(&self) -> PathBuf {
            self.root.join("config/profiles/default.toml")
        }
    }

    impl Drop for Layout {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    const MAIN: &str = "[server]\nlisten = \"127.0.0.1:9000\"\n[auth]\ntokens = [\"t1\"]\n";
    const PROFILE: &str = r#"[backend]
base_url = "http://127.0.0.1:8081"
auth = { kind = "bearer", token = "s3cret" }

[resources.User]
script = "user"

[resources.User.endpoints]
get = { method = "GET", path = "/users/{id}" }
list = { path = "/users", items = "$.data[*]", total = "$.total", paging = { style = "offset" } }
"#;

    fn repo_config() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/scimgate.toml")
    }

    #[test]
    fn bundled_sample_files_load_and_validate() {
        let cfg =
            Config::load_with_env(&repo_config(), no_env()).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(cfg.server.base_path, "/scim/v2");
        assert!(
            cfg.auth.tokens.is_empty(),
            "the shipped configuration carries no token"
        );
        assert_eq!(cfg.profile.name, "default");
        assert!(cfg.profile.file.ends_with("config/profiles/default.toml"));
        assert!(cfg.profile.scripts_dir.ends_with("scripts/default"));
        let b = &cfg.profile.backend;
        assert_eq!(b.base_url, "http://127.0.0.1:8081");
        assert!(matches!(&b.auth, BackendAuth::Header { name, .. } if name == "X-Api-Key"));
        let user = &cfg.profile.resources["User"];
        assert_eq!(user.filters["userName"], "username");
        let list = user.endpoints.list.as_ref().unwrap();
        assert_eq!(list.items.as_str(), "$.data[*]");
        assert!(matches!(
            list.paging.style,
            backend::PagingStyle::Page { .. }
        ));
        let group = &cfg.profile.resources["Group"];
        assert!(group.endpoints.members_remove.is_some());
        assert!(cfg.profile.lookups.contains_key("offices"));
        // Secrets never show in Debug output.
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("demo-legacy-key"), "{dbg}");
        for t in &cfg.auth.tokens {
            assert!(!dbg.contains(t.expose()));
        }
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let l = Layout::new(
            "[server]\nlisten = \"127.0.0.1:9000\"\nlisten_port = 1\n[auth]\ntokens = [\"t\"]\n",
            PROFILE,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert_eq!(issues[0].file, l.main());
        assert_eq!(issues[0].line, Some(3));
        assert!(issues[0].message.contains("listen_port"), "{}", issues[0]);
    }

    #[test]
    fn errors_in_several_sections_and_files_are_reported_together() {
        let profile = PROFILE.replace("script = \"user\"", "script = \"user\"\nscirpt = 1")
            + "\n[lookups.offices]\npath = \"/offices\"\nitems = \"$.data[\"\nkey = \"name\"\n";
        let l = Layout::new(
            "[server]\nmax_body_bytes = \"big\"\n[log]\nformat = \"xml\"\n[oops]\n",
            &profile,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        let at = |file: &Path, line: usize, needle: &str| {
            issues
                .iter()
                .any(|i| i.file == file && i.line == Some(line) && i.message.contains(needle))
        };
        assert!(
            at(&l.main(), 2, "server.max_body_bytes: invalid type"),
            "{issues:#?}"
        );
        assert!(
            at(&l.main(), 4, "log.format: unknown variant `xml`"),
            "{issues:#?}"
        );
        assert!(at(&l.main(), 5, "oops"), "{issues:#?}");
        assert!(
            at(&l.profile(), 7, "resources.User.scirpt: unknown field"),
            "{issues:#?}"
        );
        assert!(
            at(
                &l.profile(),
                15,
                "lookups.offices.items: invalid JSONPath `$.data[`"
            ),
            "{issues:#?}"
        );
        assert_eq!(issues.len(), 5, "{issues:#?}");
    }

    #[test]
    fn syntax_errors_carry_lines() {
        let l = Layout::new("[server\nlisten = 1\n", PROFILE);
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert!(!issues.is_empty());
        assert!(
            issues
                .iter()
                .all(|i| i.file == l.main() && i.line == Some(1)),
            "{issues:#?}"
        );
    }

    #[test]
    fn env_overlay_sets_nested_values_and_lists() {
        let l = Layout::new(MAIN, PROFILE);
        let cfg = Config::load_with_env(
            &l.main(),
            env(&[
                ("SCIMGATE_SERVER__LISTEN", "0.0.0.0:8080"),
                ("SCIMGATE_SERVER__MAX_CONCURRENCY", "7"),
                ("SCIMGATE_SERVER__MAX_ATTRIBUTE_VALUES", "50"),
                ("SCIMGATE_PLANS__MAX_ATTEMPTS", "3"),
                ("SCIMGATE_PLANS__BACKOFF_INITIAL_MS", "250"),
                ("SCIMGATE_AUTH__TOKENS", "a, b"),
                ("SCIMGATE_LOG__FORMAT", "json"),
                (
                    "SCIMGATE_BACKEND__BASE_URL",
                    "https://legacy.example:8443/app",
                ),
                ("SCIMGATE_BACKEND__AUTH__TOKEN", "from-env"),
                ("SCIMGATE_RESOURCES__USER__SCRIPT", "people"),
                (
                    "SCIMGATE_RESOURCES__USER__ENDPOINTS__GET__PATH",
                    "/people/{id}",
                ),
                ("SCIMGATE_CONFIG", "ignored: no double underscore"),
                ("OTHER__VAR", "ignored"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(cfg.server.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(cfg.server.max_concurrency, 7);
        assert_eq!(cfg.server.max_attribute_values, 50);
        assert_eq!(
            cfg.plans,
            PlansConfig {
                max_attempts: 3,
                backoff_initial_ms: 250,
                ..PlansConfig::default()
            }
        );
        let tokens: Vec<&str> = cfg.auth.tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["a", "b"]);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(
            cfg.profile.backend.base_url,
            "https://legacy.example:8443/app"
        );
        assert_eq!(
            cfg.profile.backend.auth,
            BackendAuth::Bearer {
                token: Secret::new("from-env")
            }
        );
        let user = &cfg.profile.resources["User"];
        assert_eq!(user.script, "people");
        let get = user.endpoints.get.as_ref().unwrap();
        assert_eq!(
            (get.method.as_str(), get.path.as_str()),
            ("GET", "/people/{id}")
        );
        // Numbers stay text where the file has a string, and count as a single token.
        let cfg = Config::load_with_env(
            &l.main(),
            env(&[
                ("SCIMGATE_BACKEND__AUTH__TOKEN", "12345"),
                ("SCIMGATE_AUTH__TOKENS", "987654"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(
            cfg.profile.backend.auth,
            BackendAuth::Bearer {
                token: Secret::new("12345")
            }
        );
        assert_eq!(cfg.auth.tokens, [Secret::new("987654")]);
    }

    /// `X_FILE` reads a mounted secret: the final line break dropped, one list item per line;
    /// an unreadable file and `X` with `X_FILE` are reported by variable name.
    #[test]
    fn secrets_come_from_files_named_by_file_variables() {
        let l = Layout::new(MAIN, PROFILE);
        let dir = l.main().parent().unwrap().to_path_buf();
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, "first-token-from-a-file\nsecond,with-comma\n").unwrap();
        let backend = dir.join("backend");
        std::fs::write(&backend, "bearer-from-file\n").unwrap();
        let admin = dir.join("admin");
        std::fs::write(&admin, "\"admin-password-from-file\"").unwrap();
        let cfg = Config::load_with_env(
            &l.main(),
            env(&[
                ("SCIMGATE_AUTH__TOKENS_FILE", tokens.to_str().unwrap()),
                (
                    "SCIMGATE_BACKEND__AUTH__TOKEN_FILE",
                    backend.to_str().unwrap(),
                ),
                ("SCIMGATE_ADMIN__PASSWORD_FILE", admin.to_str().unwrap()),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e:#?}"));
        let got: Vec<&str> = cfg.auth.tokens.iter().map(Secret::expose).collect();
        assert_eq!(got, ["first-token-from-a-file", "second,with-comma"]);
        assert_eq!(
            cfg.profile.backend.auth,
            BackendAuth::Bearer {
                token: Secret::new("bearer-from-file")
            }
        );
        // The file's content as it is: quotes are not TOML syntax here.
        assert_eq!(cfg.admin.password.expose(), "\"admin-password-from-file\"");

        // A one-line file is taken as it is, not as TOML (quotes stay, `+1` is not a number).
        let quoted = dir.join("quoted");
        std::fs::write(&quoted, "\"quoted-token\"\n").unwrap();
        let cfg = Config::load_with_env(
            &l.main(),
            env(&[("SCIMGATE_AUTH__TOKENS_FILE", quoted.to_str().unwrap())]),
        )
        .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(cfg.auth.tokens, [Secret::new("\"quoted-token\"")]);

        let missing = dir.join("no-such-secret");
        let errs = Config::load_with_env(
            &l.main(),
            env(&[
                ("SCIMGATE_AUTH__TOKENS_FILE", missing.to_str().unwrap()),
                ("SCIMGATE_ADMIN__PASSWORD_FILE", admin.to_str().unwrap()),
                ("SCIMGATE_ADMIN__PASSWORD", "both-set-password"),
            ]),
        )
        .unwrap_err();
        let text = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains("SCIMGATE_AUTH__TOKENS_FILE: cannot read"),
            "{text}"
        );
        assert!(
            text.contains("SCIMGATE_ADMIN__PASSWORD_FILE: SCIMGATE_ADMIN__PASSWORD is set too"),
            "{text}"
        );
        assert!(
            !text.contains("admin-password-from-file"),
            "no secret in errors: {text}"
        );
    }

    #[test]
    fn scim_auth_names_the_basic_user_and_is_checked() {
        let l = Layout::new(MAIN, PROFILE);
        let cfg = Config::load_with_env(&l.main(), no_env()).unwrap();
        assert_eq!(cfg.profile.scim_auth.username, None, "optional");
        let with = format!("{PROFILE}\n[scim_auth]\nusername = \"entra\"\n");
        std::fs::write(l.profile(), &with).unwrap();
        let cfg = Config::load_with_env(&l.main(), no_env()).unwrap();
        assert_eq!(cfg.profile.scim_auth.username.as_deref(), Some("entra"));
        let cfg =
            Config::load_with_env(&l.main(), env(&[("SCIMGATE_SCIM_AUTH__USERNAME", "other")]))
                .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(cfg.profile.scim_auth.username.as_deref(), Some("other"));
        // A Basic user name cannot hold a colon, and a pass-through profile checks nothing.
        let bad = format!("{PROFILE}\n[scim_auth]\nusername = \"a:b\"\n").replace(
            r#"auth = { kind = "bearer", token = "s3cret" }"#,
            r#"auth = { kind = "passthrough" }"#,
        );
        std::fs::write(l.profile(), &bad).unwrap();
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:#?}");
        assert!(
            text.iter()
                .all(|t| t.contains("scim_auth.username") && t.contains("default.toml")),
            "{text:#?}"
        );
        std::fs::write(
            l.profile(),
            format!("{PROFILE}\n[scim_auth]\nuser = \"x\"\n"),
        )
        .unwrap();
        assert!(
            Config::load_with_env(&l.main(), no_env()).is_err(),
            "unknown key"
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        let l = Layout::new(MAIN, PROFILE);
        let issues = Config::load_with_env(
            &l.main(),
            env(&[
                ("SCIMGATE_SERVER__LISTEN", "not an address"),
                ("SCIMGATE_SERVER__BASE_PATH", "scim"),
                ("SCIMGATE_NOPE__X", "1"),
            ]),
        )
        .unwrap_err();
        assert!(
            issues
                .iter()
                .any(|i| i.message.contains("SCIMGATE_SERVER__LISTEN") && i.line.is_none()),
            "{issues:#?}"
        );
        assert!(
            issues
                .iter()
                .any(|i| i.message.contains("SCIMGATE_NOPE__X")),
            "{issues:#?}"
        );
        // base_path is only checked by validate(), which runs once parsing succeeded.
        let issues =
            Config::load_with_env(&l.main(), env(&[("SCIMGATE_SERVER__BASE_PATH", "scim")]))
                .unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert!(
            issues[0]
                .message
                .contains("server.base_path (set by SCIMGATE_SERVER__BASE_PATH)")
        );
        // Braces would be route syntax; spaces, `?`, `#` and `%` no plain path text.
        for bad in [
            "/scim/{t}",
            "/scim/v2}",
            "/scim v2",
            "/scim?v=2",
            "/scim#2",
            "/scim%2F",
        ] {
            let issues =
                Config::load_with_env(&l.main(), env(&[("SCIMGATE_SERVER__BASE_PATH", bad)]))
                    .unwrap_err();
            assert_eq!(issues.len(), 1, "{bad}: {issues:#?}");
            assert!(
                issues[0].message.contains("a base path is made of"),
                "{bad}: {issues:#?}"
            );
        }
        for good in ["/scim/v2", "/api/scim-v2.0", "/t/acme_1/scim"] {
            assert!(
                Config::load_with_env(&l.main(), env(&[("SCIMGATE_SERVER__BASE_PATH", good)]))
                    .is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn validate_collects_every_semantic_problem() {
        let profile = r#"[backend]
base_url = "ftp://legacy"
timeout_ms = 0

[resources.Users]
script = "../evil"

[resources.User]
script = "user"
filters = { "userName" = "email", "bad attr!" = "x" }

[resources.User.endpoints]
get = { method = "GET", path = "/users/{uid}" }
create = { method = "POST", path = "/users/{id}" }

[resources.Group]
script = "group"

[resources.Group.endpoints]
members_remove = { method = "DELETE", path = "/teams/{id}/members" }

[lookups.offices]
path = "/offices"
items = "$.data[*]"
key = ""
refresh_secs = 0
"#;
        let l = Layout::new(
            "[server]\nbase_path = \"/scim/\"\n[auth]\ntokens = [\"a b\"]\n[log]\nlevel = \"[[[\"\n",
            profile,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        let has = |needle: &str, line: Option<usize>| {
            issues
                .iter()
                .any(|i| i.message.contains(needle) && (line.is_none() || i.line == line))
        };
        assert!(has("server.base_path", Some(2)), "{issues:#?}");
        assert!(has("auth.tokens", Some(4)), "{issues:#?}");
        assert!(has("log.level", Some(6)), "{issues:#?}");
        assert!(has("backend.base_url", Some(2)), "{issues:#?}");
        assert!(has("backend.timeout_ms", Some(3)), "{issues:#?}");
        assert!(
            has("unknown SCIM resource type `Users`", Some(5)),
            "{issues:#?}"
        );
        assert!(has("resources.Users.script", Some(6)), "{issues:#?}");
        assert!(has("`bad attr!`", None), "{issues:#?}");
        assert!(has("filters need a `list` endpoint", None), "{issues:#?}");
        assert!(has("unknown placeholder `{uid}`", Some(13)), "{issues:#?}");
        assert!(has("get.path", Some(13)), "{issues:#?}");
        assert!(has("must contain `{id}`", Some(13)), "{issues:#?}");
        assert!(has("create.path", Some(14)), "{issues:#?}");
        assert!(has("members_remove", Some(20)), "{issues:#?}");
        assert!(has("lookups.offices.key", Some(25)), "{issues:#?}");
        assert!(has("lookups.offices.refresh_secs", Some(26)), "{issues:#?}");
        assert_eq!(issues.len(), 15, "{issues:#?}");
    }

    #[test]
    fn missing_profile_and_bad_profile_name_are_reported() {
        let l = Layout::new(
            "[auth]\ntokens=[\"t\"]\n[profile]\nname = \"other\"\n",
            PROFILE,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert!(
            issues[0].file.ends_with("profiles/other.toml"),
            "{issues:#?}"
        );
        let l = Layout::new("[profile]\nname = \"../x\"\n", PROFILE);
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].line, Some(2), "{issues:#?}");
    }

    #[test]
    fn auth_kinds_parse_and_reject_stray_fields() {
        let parse = |s: &str| {
            toml::from_str::<BackendConfig>(&format!("base_url = \"http://h\"\nauth = {s}"))
        };
        assert_eq!(
            parse("{ kind = \"passthrough\" }").unwrap().auth,
            BackendAuth::Passthrough {
                scheme: PassthroughScheme::AsIs
            }
        );
        assert_eq!(
            parse("{ kind = \"passthrough\", scheme = \"basic\" }")
                .unwrap()
                .auth,
            BackendAuth::Passthrough {
                scheme: PassthroughScheme::Basic
            }
        );
        assert!(parse("{ kind = \"passthrough\", scheme = \"digest\" }").is_err());
        assert!(matches!(
            parse("{ kind = \"basic\", username = \"u\", password = \"p\" }")
                .unwrap()
                .auth,
            BackendAuth::Basic { .. }
        ));
        assert!(parse("{ kind = \"bearer\", token = \"t\", extra = 1 }").is_err());
        assert!(parse("{ kind = \"kerberos\" }").is_err());
        let cfg = parse("{ kind = \"header\", name = \"X-Key\", value = \"v\" }").unwrap();
        assert_eq!(cfg.timeout(), Duration::from_secs(10));
        assert_eq!(cfg.connect_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn configs_built_in_code_validate_without_lines() {
        let loaded = Config::load_with_env(&repo_config(), no_env()).unwrap();
        let mut server = loaded.server.clone();
        server.max_concurrency = 0;
        let built = Config::from_parts(
            PathBuf::from("inline"),
            server,
            AuthConfig {
                tokens: vec![Secret::new("has space".to_string())],
                ..AuthConfig::default()
            },
            loaded.log.clone(),
            loaded.profile.clone(),
        );
        let issues = built.validate();
        assert_eq!(issues.len(), 2, "{issues:#?}");
        assert!(
            issues
                .iter()
                .all(|i| i.line.is_none() && i.file == Path::new("inline"))
        );
        assert!(issues[0].message.starts_with("server.max_concurrency"));
        assert!(issues[1].message.starts_with("auth.tokens"));
    }

    #[test]
    fn store_defaults_to_sqlite_and_relative_sqlite_paths_sit_under_the_deployment_root() {
        let l = Layout::new(MAIN, PROFILE);
        let root = std::fs::canonicalize(&l.root).unwrap();
        let default = Config::load_with_env(&l.main(), no_env()).unwrap().store;
        assert_eq!(
            default.sqlite_file(),
            Some(root.join("data/scimgate.db")),
            "no [store] means the SQLite file under the deployment root"
        );
        assert_eq!(default.audit_retention_days, 90);
        let cases = [
            (
                "sqlite://data/g.db",
                format!("sqlite://{}", root.join("data/g.db").display()),
            ),
            (
                "sqlite:data/g.db?mode=rwc",
                format!("sqlite://{}?mode=rwc", root.join("data/g.db").display()),
            ),
            ("sqlite:///abs/g.db", "sqlite:///abs/g.db".to_string()),
            ("sqlite::memory:", "sqlite::memory:".to_string()),
            ("postgres://u:p@h/db", "postgres://u:p@h/db".to_string()),
        ];
        for (given, want) in cases {
            let cfg = Config::load_with_env(
                &l.main(),
                env(&[
                    ("SCIMGATE_STORE__URL", given),
                    ("SCIMGATE_AUTH__TOKENS", ""),
                ]),
            )
            .unwrap_or_else(|e| panic!("{given}: {e:#?}"));
            let store = cfg.store;
            assert_eq!(store.url.expose(), want, "{given}");
            assert!(
                !format!("{store:?}").contains("u:p"),
                "the URL stays redacted"
            );
        }
        let file = Layout::new(
            &format!("{MAIN}[store]\nurl = \"sqlite://data/x.db\"\n"),
            PROFILE,
        );
        let store = Config::load_with_env(&file.main(), no_env()).unwrap().store;
        let root = std::fs::canonicalize(&file.root).unwrap();
        assert_eq!(store.sqlite_file(), Some(root.join("data/x.db")));
    }

    #[test]
    fn store_problems_are_reported_and_tokens_may_be_empty() {
        let l = Layout::new(
            "[auth]\ntokens = []\n[store]\nurl = \"mysql://u:hunter2@h/db\"\nextra = 1\n",
            PROFILE,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert!(
            issues.iter().any(|i| i.message.contains("extra")),
            "{issues:#?}"
        );
        let l = Layout::new(
            "[auth]\ntokens = []\n[store]\nurl = \"mysql://u:hunter2@h/db\"\n",
            PROFILE,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert!(issues[0].message.starts_with("store.url"), "{issues:#?}");
        assert_eq!(issues[0].line, Some(4));
        assert!(!issues[0].message.contains("hunter2"));
        // Keys and Basic credentials from the store authenticate without a static token.
        let l = Layout::new("[auth]\ntokens = []\n", PROFILE);
        let cfg = Config::load_with_env(&l.main(), no_env()).unwrap();
        assert!(cfg.auth.tokens.is_empty());
    }

    #[test]
    fn admin_section_defaults_overlay_and_problems() {
        let l = Layout::new(MAIN, PROFILE);
        let admin = Config::load_with_env(&l.main(), no_env()).unwrap().admin;
        assert!(admin.enabled);
        assert_eq!(admin.listen, SocketAddr::from(([127, 0, 0, 1], 9100)));
        assert_eq!(admin.password.expose(), "", "no password: the page is off");
        let cfg = Config::load_with_env(
            &l.main(),
            env(&[
                ("SCIMGATE_ADMIN__PASSWORD", "correct horse battery"),
                ("SCIMGATE_ADMIN__LISTEN", "127.0.0.1:0"),
                ("SCIMGATE_ADMIN__ENABLED", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.admin.password.expose(), "correct horse battery");
        assert_eq!(cfg.admin.listen.port(), 0);
        assert!(!cfg.admin.enabled);
        assert!(
            !format!("{cfg:?}").contains("horse"),
            "the password stays redacted"
        );

        let l = Layout::new(
            &format!(
                "{MAIN}[admin]\nlisten = \"127.0.0.1:9000\"\npassword = \"short\"\nport = 1\n"
            ),
            PROFILE,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert!(
            issues.iter().any(|i| i.message.contains("port")),
            "unknown keys are refused: {issues:#?}"
        );
        let l = Layout::new(
            &format!("{MAIN}[admin]\nlisten = \"127.0.0.1:9000\"\npassword = \"short\"\n"),
            PROFILE,
        );
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 2, "{issues:#?}");
        let lines: Vec<_> = issues.iter().map(|i| (i.line, &i.message)).collect();
        assert!(
            issues
                .iter()
                .any(|i| i.message.starts_with("admin.password") && i.line == Some(7)),
            "{lines:?}"
        );
        assert!(
            issues
                .iter()
                .any(|i| i.message.starts_with("admin.listen") && i.line == Some(6)),
            "{lines:?}"
        );
        assert!(issues.iter().all(|i| !i.message.contains("short")));
    }

    #[test]
    fn unsupported_attributes_and_nested_groups_are_checked() {
        // Both keys mean the same for gateway-managed groups.
        let ok = format!(
            "groups = \"managed\"\n{PROFILE}\n[resources.Group]\nunsupported = [\"owners\"]\nignore_nested_groups = true\n"
        );
        let l = Layout::new(MAIN, &ok);
        let cfg = Config::load_with_env(&l.main(), no_env()).unwrap_or_else(|e| panic!("{e:#?}"));
        let group = &cfg.profile.resources["Group"];
        assert_eq!(group.unsupported, ["owners"]);
        assert!(group.ignore_nested_groups);
        let bad = PROFILE.replace(
            "script = \"user\"",
            "script = \"user\"\nunsupported = [\"owners.value\", \"urn:x:owners\", \"ok\"]\nignore_nested_groups = true",
        );
        let l = Layout::new(MAIN, &bad);
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        let msgs: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(issues.len(), 3, "{msgs:#?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("`owners.value` must be a plain attribute name"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("`urn:x:owners` must be a plain"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("resources.User.ignore_nested_groups: only Group resources"))
        );
    }

    #[test]
    fn managed_groups_accept_a_bare_group_section_and_reject_what_would_be_ignored() {
        let ok = format!(
            "groups = \"managed\"\n{PROFILE}\n[resources.Group]\nattributes = [\"displayName\", \"members\"]\n"
        );
        let l = Layout::new(MAIN, &ok);
        let cfg = Config::load_with_env(&l.main(), no_env()).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(cfg.profile.groups, GroupsMode::Managed);
        assert!(cfg.profile.resources["Group"].script.is_empty());
        // Without a Group section at all, managed groups are still served.
        let l = Layout::new(MAIN, &format!("groups = \"managed\"\n{PROFILE}"));
        assert!(Config::load_with_env(&l.main(), no_env()).is_ok());
        // The default stays `backend`.
        let l = Layout::new(MAIN, PROFILE);
        let cfg = Config::load_with_env(&l.main(), no_env()).unwrap();
        assert_eq!(cfg.profile.groups, GroupsMode::Backend);

        let ignored = format!(
            "groups = \"managed\"\n{PROFILE}
[resources.Group]
script = \"group\"
attributes = [\"displayName\", \"members.display\", \"externalId\"]
member_id = \"user_id\"

[resources.Group.endpoints]
get = {{ method = \"GET\", path = \"/teams/{{id}}\" }}
members_remove = {{ method = \"DELETE\", path = \"/teams/{{id}}/members/{{member}}\" }}
"
        );
        let l = Layout::new(MAIN, &ignored);
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        let at = |needle: &str, line: usize| {
            issues.iter().any(|i| {
                i.file == l.profile() && i.line == Some(line) && i.message.contains(needle)
            })
        };
        assert!(
            at(
                "resources.Group.script: is ignored with groups = \"managed\"",
                14
            ),
            "{issues:#?}"
        );
        assert!(at("`members.display` cannot be kept", 15), "{issues:#?}");
        assert!(
            at("resources.Group.member_id: is ignored", 16),
            "{issues:#?}"
        );
        assert!(
            at("resources.Group.endpoints.get: is ignored", 19),
            "{issues:#?}"
        );
        assert!(
            at("resources.Group.endpoints.members_remove: is ignored", 20),
            "{issues:#?}"
        );
        assert_eq!(issues.len(), 5, "{issues:#?}");

        // Managed groups need users to be members; a backend resource needs its script; an
        // unknown mode names its line.
        let no_users = "groups = \"managed\"\n[backend]\nbase_url = \"http://127.0.0.1:8081\"\n[resources.Group]\n";
        let l = Layout::new(MAIN, no_users);
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert!(
            issues[0]
                .message
                .starts_with("groups: `managed` groups need [resources.User]"),
            "{issues:#?}"
        );
        assert_eq!(issues[0].line, Some(1));
        let l = Layout::new(MAIN, &PROFILE.replace("script = \"user\"\n", ""));
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:#?}");
        assert_eq!(issues[0].message, "resources.User.script: is required");
        assert_eq!(issues[0].line, Some(5));
        let l = Layout::new(MAIN, &format!("groups = \"gateway\"\n{PROFILE}"));
        let issues = Config::load_with_env(&l.main(), no_env()).unwrap_err();
        assert!(
            issues
                .iter()
                .any(|i| i.line == Some(1) && i.message.contains("unknown variant `gateway`")),
            "{issues:#?}"
        );
    }

    #[test]
    fn resource_base_url_prefers_public_url() {
        let mut s = ServerConfig::default();
        assert_eq!(s.resource_base_url(), "http://127.0.0.1:8080/scim/v2");
        s.public_url = "https://scim.example.com/".into();
        assert_eq!(s.resource_base_url(), "https://scim.example.com/scim/v2");
    }
}
