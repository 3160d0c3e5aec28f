//! The pooled HTTP client that calls the legacy API.
//!
//! One [`Backend`] per profile, cloned freely (an `Arc` inside) so every request shares the
//! connection pool. Each call gets the configured credentials (or the caller's, in
//! pass-through mode), a connect timeout, and a timeout over the whole exchange including
//! reading the body.

use super::error::BackendError;
use super::pool::{Pool, PoolError};
use super::template::encode_into;
use crate::config::{BackendAuth, BackendConfig, PassthroughScheme};
use crate::metrics::{BackendOutcome, Metrics};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderName, HeaderValue, Method, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Responses larger than this are refused: the legacy app is trusted for content, not for
/// size, and the gateway buffers whole bodies to run JSONPath over them.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How long an idle pooled connection is kept; below common server keep-alive limits so the
/// gateway rarely reuses a connection the server is about to close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Legacy error bodies are echoed into SCIM details only up to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Credentials supplied for one call, overriding the profile's configured backend auth
/// (pass-through mode forwards the SCIM caller's own credentials this way).
#[derive(Clone)]
pub struct CallerAuth {
    name: HeaderName,
    value: HeaderValue,
}

tokio::task_local! {
    /// The SCIM caller's credential for the request this task serves (pass-through auth).
    static CALLER: CallerAuth;
}

/// Runs `fut` (the rest of one SCIM request) with `caller` as the credential that a
/// pass-through backend sends on each of its calls. A task-local, like the audit call log,
/// keeps the pipeline's signatures free of auth plumbing; calls made outside such a scope
/// (lookup refreshes) carry no credential.
pub async fn with_caller<F: Future>(caller: CallerAuth, fut: F) -> F::Output {
    CALLER.scope(caller, fut).await
}

impl CallerAuth {
    /// The credential to forward for a SCIM caller's `Authorization` header value, as
    /// `scheme` says; `None` when the header is not well-formed for it (the edge answers 401
    /// without calling the backend). `as-is` forwards any `Bearer` or `Basic` header with a
    /// non-empty credential unchanged. `basic` takes a bearer token `user:password` (both
    /// parts non-empty) and sends `Basic base64(user:password)`; a caller already sending
    /// `Basic` is forwarded unchanged.
    pub fn from_caller(authorization: &str, scheme: PassthroughScheme) -> Option<CallerAuth> {
        let (kind, credential) = authorization.trim().split_once(' ')?;
        let credential = credential.trim();
        if credential.is_empty() {
            return None;
        }
        let is_bearer = kind.eq_ignore_ascii_case("bearer");
        let is_basic = kind.eq_ignore_ascii_case("basic");
        let value = match scheme {
            PassthroughScheme::AsIs if is_bearer || is_basic => authorization.trim().to_string(),
            PassthroughScheme::Basic if is_basic => format!("Basic {credential}"),
            PassthroughScheme::Basic if is_bearer => {
                let (user, password) = credential.split_once(':')?;
                if user.is_empty() || password.is_empty() {
                    return None;
                }
                format!("Basic {}", base64(credential.as_bytes()))
            }
            _ => return None,
        };
        HeaderValue::from_str(&value)
            .ok()
            .map(CallerAuth::authorization)
    }

    /// Forward an `Authorization` header value as received from the caller.
    pub fn authorization(value: HeaderValue) -> CallerAuth {
        CallerAuth::header(AUTHORIZATION, value)
    }

    /// Send `value` under an arbitrary header (e.g. an API-key header).
    pub fn header(name: HeaderName, mut value: HeaderValue) -> CallerAuth {
        value.set_sensitive(true);
        CallerAuth { name, value }
    }
}

impl fmt::Debug for CallerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerAuth({}: <redacted>)", self.name)
    }
}

/// One call to the legacy API, built by an endpoint or a mapping plan.
#[derive(Debug, Clone)]
pub struct BackendRequest {
    /// HTTP method.
    pub method: Method,
    /// Path below the base URL, already rendered and percent-encoded (starts with `/`).
    pub path: String,
    /// Query parameters, encoded by the client.
    pub query: Vec<(String, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Per-call credentials that replace the configured backend auth.
    pub auth: Option<CallerAuth>,
}

impl BackendRequest {
    /// A request without query, body or per-call auth.
    pub fn new(method: Method, path: impl Into<String>) -> BackendRequest {
        BackendRequest {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            auth: None,
        }
    }
}

/// A 2xx answer from the legacy API.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendResponse<B = Value> {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The parsed JSON body; `Value::Null` when the body was empty. ([`Backend::call_reading`]:
    /// what its reader made of the body.)
    pub body: B,
    /// Time from sending the request to having the whole body.
    pub elapsed: Duration,
}

/// Why a [`Backend`] could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendInitError {
    /// `base_url` is not an absolute http(s) URL without query.
    #[error("`{0}` is not an absolute http:// or https:// URL without query")]
    BaseUrl(String),
    /// A configured auth header name or value is not valid in HTTP.
    #[error("{0}")]
    Auth(String),
    /// The TLS configuration could not be built.
    #[error("backend TLS setup: {0}")]
    Tls(String),
}

enum AuthMode {
    None,
    Fixed(HeaderName, HeaderValue),
    Passthrough,
}

struct Inner {
    pool: Pool,
    /// The base URL without a trailing slash, as configured (errors and logs name it).
    base: String,
    /// The base URL's path (no trailing slash), which every call's path follows.
    prefix: String,
    /// The `Host` header of every call: the base URL's host, and its port unless the
    /// scheme's default.
    host: HeaderValue,
    auth: AuthMode,
    timeout: Duration,
    connect_timeout: Duration,
    metrics: Option<Arc<Metrics>>,
    ready_path: String,
}

/// The legacy API client for one profile; cheap to clone.
#[derive(Clone)]
pub struct Backend {
    inner: Arc<Inner>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Builds the client (TLS with the webpki roots and the ring provider, pool, timeouts,
    /// auth header) at startup or reload; fails on an unusable base URL or auth setting.
    pub fn new(cfg: &BackendConfig) -> Result<Backend, BackendInitError> {
        Self::build_client(cfg, None)
    }

    /// [`Backend::new`], also recording every call's latency and outcome in `metrics`; the
    /// gateway builds its backend this way.
    pub fn instrumented(
        cfg: &BackendConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Backend, BackendInitError> {
        Self::build_client(cfg, Some(metrics))
    }

    fn build_client(
        cfg: &BackendConfig,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Backend, BackendInitError> {
        let base = normalise_base(&cfg.base_url)?;
        let (origin, prefix, host) = split_base(&base)?;
        let auth = auth_mode(&cfg.auth)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout()));
        let provider = rustls::crypto::ring::default_provider();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| BackendInitError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let pool = Pool::new(https, origin, cfg.pool_max_idle_per_host, POOL_IDLE_TIMEOUT);
        Ok(Backend {
            inner: Arc::new(Inner {
                pool,
                base,
                prefix,
                host,
                auth,
                timeout: cfg.timeout(),
                connect_timeout: cfg.connect_timeout(),
                ready_path: cfg.ready_path.clone(),
                metrics,
            }),
        })
    }

    /// Whether calls carry the SCIM caller's own credential (pass-through auth): work left
    /// for later (a pending plan) can then only be done within a caller's request.
    pub fn passes_caller_credentials(&self) -> bool {
        matches!(self.inner.auth, AuthMode::Passthrough)
    }

    /// The base URL calls are made against (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Makes one call: 2xx → `Ok` with the parsed body, anything else → `Err`. A GET whose
    /// connection could not be established is tried once more (nothing reached the server,
    /// so repeating it is safe). The timeout covers both attempts and the body.
    pub async fn call(&self, req: BackendRequest) -> Result<BackendResponse, BackendError> {
        self.call_reading(req, &|bytes: Bytes| parse_body(&bytes))
            .await
    }

    /// [`Backend::call`] with the caller's reader of a 2xx body in place of the JSON parse:
    /// `read` gets the bytes and gives what the caller wants of them (a compiled mapping
    /// reads a record straight from its text, building no `Value`), or `Err` with what is
    /// wrong when the body is not JSON (`"not JSON: …"`, as `call` says it), which is then
    /// the same [`BackendError::InvalidBody`], counted and logged as `call` counts it.
    /// `read` runs once, on the 2xx answer, after the call's time is taken (the backend
    /// metrics and call log time the legacy app, not the reader).
    pub async fn call_reading<B, R>(
        &self,
        req: BackendRequest,
        read: &R,
    ) -> Result<BackendResponse<B>, BackendError>
    where
        R: Fn(Bytes) -> Result<B, String> + Sync,
    {
        if has_dot_segment(&req.path) {
            tracing::warn!(path = %req.path, "backend call refused: the path has a dot segment");
            return Err(BackendError::DotSegment { path: req.path });
        }
        // A debug span: at info a request logs one line (the edge's), and formatting a span's
        // fields costs on every call; failures below name the call themselves.
        let span = tracing::debug_span!(
            "backend_call",
            method = %req.method,
            path = %req.path,
        );
        let started = Instant::now();
        async {
            let raw = match tokio::time::timeout(self.inner.timeout, self.attempts(&req)).await {
                Ok(r) => r,
                Err(_) => Err(BackendError::Timeout {
                    backend: self.inner.base.clone(),
                    after: self.inner.timeout,
                }),
            };
            // The call's time is the legacy app's: the reader (a JSON parse, or a mapping
            // reading the record) runs after it is taken.
            let elapsed = started.elapsed();
            let result = raw.and_then(|r| {
                let status = r.status;
                match read(r.body) {
                    Ok(body) => Ok(BackendResponse {
                        status,
                        body,
                        elapsed: r.elapsed,
                    }),
                    Err(message) => Err(BackendError::InvalidBody { status, message }),
                }
            });
            if let Some(m) = &self.inner.metrics {
                m.observe_backend(outcome(&result), elapsed);
            }
            // u64, not u128: a u128 field is logged as a string in the JSON format.
            let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            super::record::record(crate::store::BackendCall {
                method: req.method.to_string(),
                path: req.path.clone(),
                status: match &result {
                    Ok(r) => r.status,
                    Err(
                        BackendError::Status { status, .. }
                        | BackendError::CallerRejected { status }
                        | BackendError::InvalidBody { status, .. },
                    ) => *status,
                    Err(_) => 0,
                },
                ms: elapsed_ms,
            });
            match &result {
                Ok(r) => {
                    // The request's own line counts the calls; each one is debug detail.
                    tracing::debug!(status = r.status, elapsed_ms, "backend call");
                }
                Err(BackendError::Status {
                    status, message, ..
                }) if *status < 500 => {
                    tracing::debug!(method = %req.method, path = %req.path, status, elapsed_ms, legacy_message = %message, "backend call refused");
                }
                Err(BackendError::Status {
                    status, message, ..
                }) => {
                    tracing::warn!(method = %req.method, path = %req.path, status, elapsed_ms, legacy_message = %message, "backend call failed");
                }
                Err(e) => tracing::warn!(method = %req.method, path = %req.path, elapsed_ms, error = %e, "backend call failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Whether the legacy app answers: a GET of `backend.ready_path` with the gateway's
    /// credential, answered below 500 within `limit` (a listening socket whose app hangs is
    /// not ready). A 401/403 is not ready (the gateway's credential is refused) unless the
    /// profile passes the caller's credential through, when the probe has none to send.
    /// The readiness probe asks; the call is not counted in the backend metrics. `Err` says
    /// what failed, without credentials.
    pub async fn ready(&self, limit: Duration) -> Result<(), String> {
        let req = BackendRequest {
            method: Method::GET,
            path: self.inner.ready_path.clone(),
            query: Vec::new(),
            body: None,
            auth: None,
        };
        let target = format!("GET {}{}", self.inner.base, self.inner.ready_path);
        let passthrough = matches!(self.inner.auth, AuthMode::Passthrough);
        match tokio::time::timeout(limit, self.send(&req, None)).await {
            Err(_) => Err(format!(
                "{target}: no answer within {} ms",
                limit.as_millis()
            )),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(BackendError::Status { status, .. })) if status < 500 => {
                if matches!(status, 401 | 403) && !passthrough {
                    Err(format!(
                        "{target}: the gateway's credential is refused ({status})"
                    ))
                } else {
                    Ok(())
                }
            }
            Ok(Err(BackendError::CallerRejected { .. })) if passthrough => Ok(()),
            Ok(Err(BackendError::InvalidBody { status, .. })) if status < 500 => Ok(()),
            Ok(Err(e)) => Err(format!("{target}: {e}")),
        }
    }

    /// Whether a TCP connection to the base URL's host and port can be opened within the
    /// connect timeout (capped at `limit`). `Err` says which address failed and why, without
    /// credentials.
    pub async fn reachable(&self, limit: Duration) -> Result<(), String> {
        let uri: Uri = self
            .inner
            .base
            .parse()
            .map_err(|e| format!("backend base URL: {e}"))?;
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let target = format!("{host}:{port}");
        let within = self.inner.connect_timeout.min(limit);
        match tokio::time::timeout(within, tokio::net::TcpStream::connect((host, port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("backend {target} unreachable: {e}")),
            Err(_) => Err(format!(
                "backend {target} unreachable: no connection within {} ms",
                within.as_millis()
            )),
        }
    }

    /// The call, tried twice where that is safe; the 2xx body as it came.
    async fn attempts(&self, req: &BackendRequest) -> Result<BackendResponse<Bytes>, BackendError> {
        let body = req
            .body
            .as_ref()
            .map(|v| Bytes::from(crate::json::to_vec(v)));
        let first = self.send(req, body.clone()).await;
        match first {
            Err(BackendError::Connect { .. }) if req.method == Method::GET => {
                tracing::debug!("connect failed, retrying once");
                self.send(req, body).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        req: &BackendRequest,
        body: Option<Bytes>,
    ) -> Result<BackendResponse<Bytes>, BackendError> {
        // Whose credential goes out: the call's own, or in pass-through mode the SCIM
        // caller's; the legacy app refusing one of those is the caller's 401, not a 502.
        let caller = req.auth.clone().or_else(|| match self.inner.auth {
            AuthMode::Passthrough => CALLER.try_with(CallerAuth::clone).ok(),
            _ => None,
        });
        let request = self.build(req, caller.as_ref(), body.as_deref())?;
        let started = Instant::now();
        let answer = self
            .inner
            .pool
            .send(&request, req.method == Method::HEAD, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.classify(e))?;
        let status = answer.status;
        if caller.is_some() && matches!(status, 401 | 403) {
            return Err(BackendError::CallerRejected { status });
        }
        if !(200..300).contains(&status) {
            return Err(BackendError::Status {
                status,
                message: legacy_message(&answer.body),
                retry_after: answer.retry_after,
            });
        }
        Ok(BackendResponse {
            status,
            body: answer.body,
            elapsed: started.elapsed(),
        })
    }

    /// The whole HTTP/1.1 request as it goes out: the request line in origin form, `Host`,
    /// `Accept`, `User-Agent`, the credential, and with a body its `Content-Type` and
    /// `Content-Length` (also `Content-Length: 0` for a POST, PUT or PATCH without one).
    fn build(
        &self,
        req: &BackendRequest,
        caller: Option<&CallerAuth>,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, BackendError> {
        let uri = self.uri(&req.path, &req.query)?;
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let credential = match (caller, &self.inner.auth) {
            (Some(caller), _) => Some((&caller.name, &caller.value)),
            (None, AuthMode::Fixed(name, value)) => Some((name, value)),
            (None, AuthMode::Passthrough) => {
                tracing::debug!("pass-through auth without caller credentials");
                None
            }
            (None, AuthMode::None) => None,
        };
        let mut out = Vec::with_capacity(256 + target.len() + body.map_or(0, <[u8]>::len));
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut field = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        // The base URL's, unless the credential header is named `Host`.
        if credential.is_none_or(|(name, _)| *name != HOST) {
            field(b"host", self.inner.host.as_bytes());
        }
        field(b"accept", b"application/json");
        field(
            b"user-agent",
            concat!("scimgate/", env!("CARGO_PKG_VERSION")).as_bytes(),
        );
        if let Some((name, value)) = credential {
            field(name.as_str().as_bytes(), value.as_bytes());
        }
        match body {
            Some(body) => {
                field(b"content-type", b"application/json");
                field(b"content-length", body.len().to_string().as_bytes());
            }
            None if matches!(req.method, Method::POST | Method::PUT | Method::PATCH) => {
                field(b"content-length", b"0");
            }
            None => {}
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = body {
            out.extend_from_slice(body);
        }
        Ok(out)
    }

    fn uri(&self, path: &str, query: &[(String, String)]) -> Result<Uri, BackendError> {
        // Origin-form (`/base/path?query`): the connection is to the base URL's origin.
        let mut s = String::with_capacity(self.inner.prefix.len() + path.len() + 64);
        s.push_str(&self.inner.prefix);
        if !path.starts_with('/') {
            s.push('/');
        }
        s.push_str(path);
        let mut sep = if path.contains('?') { '&' } else { '?' };
        for (k, v) in query {
            s.push(sep);
            encode_into(&mut s, k);
            s.push('=');
            encode_into(&mut s, v);
            sep = '&';
        }
        s.parse::<Uri>()
            .map_err(|e| BackendError::Request(format!("invalid backend URI for {path}: {e}")))
    }

    fn classify(&self, e: PoolError) -> BackendError {
        let backend = self.inner.base.clone();
        match e {
            PoolError::Connect(e) => BackendError::Connect {
                backend,
                message: error_chain(e.as_ref()),
            },
            PoolError::Transport(message) => BackendError::Transport { backend, message },
            PoolError::TooLarge { status } => BackendError::InvalidBody {
                status,
                message: format!("larger than {MAX_RESPONSE_BYTES} bytes"),
            },
        }
    }
}

/// The metrics label of a finished call.
fn outcome<B>(result: &Result<BackendResponse<B>, BackendError>) -> BackendOutcome {
    match result {
        Ok(r) => BackendOutcome::of_status(r.status),
        Err(BackendError::Status { status, .. } | BackendError::CallerRejected { status, .. }) => {
            BackendOutcome::of_status(*status)
        }
        Err(BackendError::Connect { .. }) => BackendOutcome::Connect,
        Err(BackendError::Timeout { .. }) => BackendOutcome::Timeout,
        Err(BackendError::Transport { .. }) => BackendOutcome::Transport,
        Err(BackendError::InvalidBody { .. } | BackendError::BadAnswer { .. }) => {
            BackendOutcome::InvalidBody
        }
        Err(BackendError::Paging { .. }) => BackendOutcome::Paging,
        Err(BackendError::Request(_) | BackendError::DotSegment { .. }) => BackendOutcome::Request,
    }
}

/// Checks a base URL the way [`Backend::new`] will; configuration validation runs it so a
/// bad URL is reported with the other configuration problems.
pub fn check_base_url(raw: &str) -> Result<(), BackendInitError> {
    normalise_base(raw).map(|_| ())
}

/// Checks that configured credentials can be sent as HTTP headers, as [`Backend::new`] will.
pub fn check_auth(auth: &BackendAuth) -> Result<(), BackendInitError> {
    auth_mode(auth).map(|_| ())
}

fn normalise_base(raw: &str) -> Result<String, BackendInitError> {
    let bad = || BackendInitError::BaseUrl(raw.to_string());
    let uri: Uri = raw.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() {
        return Err(bad());
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// A normalised base URL's origin (`scheme://authority`, where connections go), its path
/// (what every call's path follows, no trailing slash) and the `Host` header its calls send
/// (the host, with the port unless it is the scheme's default).
pub(super) fn split_base(base: &str) -> Result<(Uri, String, HeaderValue), BackendInitError> {
    let bad = || BackendInitError::BaseUrl(base.to_string());
    let uri: Uri = base.parse().map_err(|_| bad())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad());
    };
    let origin: Uri = format!("{scheme}://{authority}")
        .parse()
        .map_err(|_| bad())?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_string(),
    };
    let host = HeaderValue::from_str(&host).map_err(|_| bad())?;
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok((origin, prefix, host))
}

fn auth_mode(auth: &BackendAuth) -> Result<AuthMode, BackendInitError> {
    let value = |s: &str| {
        let mut v = HeaderValue::from_str(s)
            .map_err(|_| BackendInitError::Auth("credential is not a valid header value".into()))?;
        v.set_sensitive(true);
        Ok::<_, BackendInitError>(v)
    };
    Ok(match auth {
        BackendAuth::None => AuthMode::None,
        BackendAuth::Passthrough { .. } => AuthMode::Passthrough,
        BackendAuth::Header { name, value: v } => {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BackendInitError::Auth(format!("invalid header name `{name}`")))?;
            // The request's framing and connection are the gateway's to write.
            const FRAMING: [&str; 7] = [
                "content-length",
                "transfer-encoding",
                "connection",
                "te",
                "upgrade",
                "keep-alive",
                "trailer",
            ];
            if FRAMING.contains(&name.as_str()) {
                return Err(BackendInitError::Auth(format!(
                    "`{name}` frames the request; a credential cannot be sent in it"
                )));
            }
            AuthMode::Fixed(name, value(v.expose())?)
        }
        BackendAuth::Bearer { token } => {
            AuthMode::Fixed(AUTHORIZATION, value(&format!("Bearer {}", token.expose()))?)
        }
        BackendAuth::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose());
            AuthMode::Fixed(
                AUTHORIZATION,
                value(&format!("Basic {}", base64(raw.as_bytes())))?,
            )
        }
    })
}

/// Standard base64 with padding (RFC 4648 §4), for HTTP Basic credentials.
fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    crate::json::from_slice(bytes).map_err(not_json)
}

/// What an answer that is not JSON is said to be (`BackendError::InvalidBody`'s message).
pub(crate) fn not_json(e: serde_json::Error) -> String {
    format!("not JSON: {e}")
}

/// The legacy app's own error message: `{"error":{"message"}}` (the demo app and many
/// others), `{"message"}`, `{"error":"…"}`, `{"detail"}`, `{"errors":[{"message"}]}`, or a
/// short plain-text body.
fn legacy_message(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => json_message(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(bytes).trim().to_string(),
    };
    text.chars().take(MAX_MESSAGE_CHARS).collect()
}

fn json_message(v: &Value) -> Option<String> {
    let candidates = [
        v.pointer("/error/message"),
        v.pointer("/message"),
        v.pointer("/error_description"),
        v.pointer("/detail"),
        v.pointer("/error"),
        v.pointer("/errors/0/message"),
        v.pointer("/errors/0"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|m| m.as_str().map(str::to_string))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in cases {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn legacy_messages_are_found_in_common_shapes() {
        let m = |s: &str| legacy_message(s.as_bytes());
        assert_eq!(
            m(r#"{"error":{"code":"conflict","message":"email taken"}}"#),
            "email taken"
        );
        assert_eq!(m(r#"{"message":"bad"}"#), "bad");
        assert_eq!(m(r#"{"error":"nope"}"#), "nope");
        assert_eq!(m(r#"{"errors":[{"message":"first"}]}"#), "first");
        assert_eq!(m("plain text\n"), "plain text");
        assert_eq!(m(r#"{"unrelated":1}"#), "");
        assert_eq!(m(&"x".repeat(1000)).len(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn base_url_must_be_absolute_http() {
        assert_eq!(normalise_base("http://h:1/api/").unwrap(), "http://h:1/api");
        for bad in ["h:1", "/api", "ftp://h", "http://h/?q=1", ""] {
            assert!(normalise_base(bad).is_err(), "{bad}");
        }
    }
}

/// Whether `path` has a `.` or `..` segment, also percent-encoded (`%2e`, `%2E`): a legacy
/// stack that normalises paths would turn `/teams/6/members/..` into `/teams/6`.
/// Encoded slashes and backslashes count as separators too (`..%2Fadmin`), since some stacks
/// decode them before resolving the path.
pub fn has_dot_segment(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or("");
    // Nearly every path has neither a dot nor an escape: nothing to decode.
    if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
        return false;
    }
    let decoded = path
        .replace("%2e", ".")
        .replace("%2E", ".")
        .replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%5c", "/")
        .replace("%5C", "/")
        .replace('\\', "/");
    decoded.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod dot_segment_tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_are_found_plain_and_encoded() {
        for bad in [
            "/api/v1/users/..",
            "/api/v1/users/.",
            "/api/v1/teams/6/members/../x",
            "/api/v1/users/%2e%2e",
            "/api/v1/users/%2E.",
            "/api/v1/users/%2e?x=1",
            "/api/v1/teams/6/members/..%2Fadmin",
            "/api/v1/teams/6/members/..%5Cx",
            "/api/v1/teams/6/members/%2E%2E%2f",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for good in [
            "/api/v1/users/42",
            "/api/v1/users/a.b",
            "/api/v1/users/...",
            "/api/v1/users/x?q=..",
            "/api/v1/users/%2e%2e%2e",
        ] {
            assert!(!has_dot_segment(good), "{good}");
        }
    }
}
