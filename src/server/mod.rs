//! The SCIM listener: tower layers, routing and serving.
//!
//! Request flow (see `pipeline` for what happens to a SCIM operation):
//! ```text
//! listener ─▶ edge (request id, tracing span, metrics, load shedding, timeout)
//!          ─▶ auth (bearer token, constant time; 401 before any parsing)
//!          ─▶ audit (entry per write with its backend calls; "last synced")
//!          ─▶ routes (parse body/query into SCIM types) ─▶ pipeline ─▶ legacy API
//! ```
//! Edge, auth and audit are tower layers ([`stage::Stage`]) around the router, not
//! middleware inside it: see `stage` for why. Auth and audit act under the base path only
//! ([`Scoped`]): elsewhere the router answers 404 to anyone.

pub mod audit;
pub mod auth;
pub mod error;
pub mod forwarded;
pub mod listen;
pub mod pipeline;
pub mod routes;
pub mod stage;
pub mod tls;

use crate::logging::RequestLog;
use crate::metrics::{Metrics, classify};
use auth::Authenticator;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use error::AppError;
use pipeline::Gateway;
use stage::{Inner, Pending, Stage, run};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Limits applied at the edge of every SCIM request.
#[derive(Debug)]
pub struct Limits {
    /// Largest accepted request body (413 above it).
    pub max_body_bytes: usize,
    /// Time a client waits for its answer (504 after it). A write is not cut off there: it
    /// runs on, detached, up to `operation_timeout`.
    pub request_timeout: Duration,
    /// Time an operation may run in all, also after its client was answered 504.
    pub operation_timeout: Duration,
    /// Requests served at once; the next one is shed with 503 + Retry-After rather than
    /// queued, so a stalled legacy app cannot pile up unbounded work in the gateway. A write
    /// that outlived its client's deadline holds its permit until it ends.
    pub concurrency: Arc<Semaphore>,
    /// The number of permits `concurrency` was made with.
    pub max_concurrency: u32,
    /// Longest request URI (path and query) in bytes; 414 above it.
    pub max_uri_bytes: usize,
    /// Peers whose `X-Forwarded-*` headers are believed (see [`forwarded`]).
    pub trusted_proxies: Arc<[forwarded::Cidr]>,
    /// Whether a trusted proxy's `X-Forwarded-Proto`/`-Host` set the URLs the gateway hands
    /// out (no `public_url` configured).
    pub forwarded_origin: bool,
}

impl Limits {
    /// Limits with the given body size, timeout and concurrency; operations may run up to
    /// ten times the request timeout (see [`Limits::with_operation_timeout`]).
    pub fn new(max_body_bytes: usize, request_timeout: Duration, max_concurrency: usize) -> Self {
        Limits {
            max_body_bytes,
            request_timeout,
            operation_timeout: request_timeout.saturating_mul(10),
            concurrency: Arc::new(Semaphore::new(max_concurrency.max(1))),
            max_concurrency: u32::try_from(max_concurrency.max(1)).unwrap_or(u32::MAX),
            max_uri_bytes: 8 * 1024,
            trusted_proxies: Arc::from(Vec::new()),
            forwarded_origin: false,
        }
    }

    /// Believes `X-Forwarded-For` (and, with `origin`, `X-Forwarded-Proto`/`-Host`) from
    /// peers in `trusted`.
    pub fn with_trusted_proxies(mut self, trusted: Vec<forwarded::Cidr>, origin: bool) -> Self {
        self.trusted_proxies = Arc::from(trusted);
        self.forwarded_origin = origin;
        self
    }

    /// Sets the longest request URI accepted.
    pub fn with_max_uri_bytes(mut self, n: usize) -> Self {
        self.max_uri_bytes = n.max(1);
        self
    }

    /// Waits, at most `within`, until no operation is running (every permit is free): at
    /// shutdown, so writes detached from their clients finish before the store closes.
    /// `false` when some were still running.
    pub async fn drained(&self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.concurrency.acquire_many(self.max_concurrency)).await,
            Ok(Ok(_))
        )
    }

    /// Sets the bound on an operation's whole run (at least the request timeout).
    pub fn with_operation_timeout(mut self, t: Duration) -> Self {
        self.operation_timeout = t.max(self.request_timeout);
        self
    }
}

/// Shared state of the SCIM listener.
#[derive(Clone)]
pub struct AppState {
    /// The operation pipeline (schemas, mapping, backend).
    pub gateway: Arc<Gateway>,
    /// Caller authentication.
    pub auth: Arc<Authenticator>,
    /// Edge limits.
    pub limits: Arc<Limits>,
    /// Request, backend, script and store metrics, served by the admin listener.
    pub metrics: Arc<Metrics>,
    /// Audit log and sync status writer.
    pub auditor: Arc<audit::Auditor>,
}

/// What the edge layer needs: the limits it enforces, the metrics it records, and the SCIM
/// base path (to label requests by resource and operation rather than by raw path).
#[derive(Clone)]
pub struct EdgeState {
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    base_path: Arc<str>,
}

/// The SCIM service: edge, auth and audit around the router.
pub type ScimService =
    Stage<EdgeState, Stage<Scoped<Arc<Authenticator>>, Stage<Scoped<AppState>, Router>>>;

/// Builds the SCIM service under `base_path` (e.g. `/scim/v2`). The layers, outermost first:
/// - edge: every request, also one outside the base path, gets an id, a log line, its metrics
///   and the gateway's bounds;
/// - auth, inside the base path only: a path the gateway does not serve is a 404 to anyone,
///   a SCIM path a 401 to a caller without a credential (before any parsing);
/// - audit, inside auth: only authenticated callers reach the audit log and "last synced".
pub fn router(state: AppState, base_path: &str) -> ScimService {
    use routes::*;
    let base = base_path.trim_end_matches('/');
    let literal = route_literal(base);
    let at = |p: &str| format!("{literal}{p}");
    let routes = Router::new()
        .route(
            &at("/ServiceProviderConfig"),
            get(service_provider_config).fallback(method_not_allowed),
        )
        .route(&at("/Schemas"), get(schemas).fallback(method_not_allowed))
        .route(
            &at("/Schemas/{urn}"),
            get(schema).fallback(method_not_allowed),
        )
        .route(
            &at("/ResourceTypes"),
            get(resource_types).fallback(method_not_allowed),
        )
        .route(
            &at("/ResourceTypes/{name}"),
            get(resource_type_doc).fallback(method_not_allowed),
        )
        .route(&at("/Bulk"), any(not_implemented))
        .route(&at("/Me"), any(not_implemented))
        .route(&at("/.search"), any(not_implemented))
        .route(
            &at("/{endpoint}"),
            get(list).post(create).fallback(method_not_allowed),
        )
        .route(
            &at("/{endpoint}/.search"),
            axum::routing::post(search).fallback(method_not_allowed),
        )
        .route(
            &at("/{endpoint}/{id}"),
            get(get_one)
                .put(replace)
                .patch(patch)
                .delete(delete)
                .fallback(method_not_allowed),
        )
        .fallback(not_found)
        .with_state(state.clone());
    let base: Arc<str> = Arc::from(base);
    let audited = Stage::new(
        Scoped {
            inner: state.clone(),
            base: base.clone(),
        },
        routes,
        audit::record::<Router> as _,
    );
    let guarded = Stage::new(
        Scoped {
            inner: state.auth.clone(),
            base: base.clone(),
        },
        audited,
        auth::require_auth as _,
    );
    let edge_state = EdgeState {
        limits: state.limits.clone(),
        metrics: state.metrics.clone(),
        base_path: base.clone(),
    };
    Stage::new(edge_state, guarded, edge as _)
}

/// `base` as literal text in a route pattern: a `{` would start a parameter there while
/// [`Scoped`] compares the base as text, and the two must agree on every path (the
/// configuration refuses braces too).
fn route_literal(base: &str) -> String {
    base.replace('{', "{{").replace('}', "}}")
}

/// A stage's state with the SCIM base path: auth and audit act on requests under it only; a
/// request elsewhere goes past them to the router's 404.
#[derive(Clone)]
pub struct Scoped<T> {
    /// The stage's own state.
    pub inner: T,
    /// The base path, without a trailing `/` (empty: everything is SCIM).
    pub base: Arc<str>,
}

impl<T> Scoped<T> {
    /// The part of `path` after the base path (`/Users/7`, or empty for the base itself);
    /// `None` when `path` is not under it.
    pub fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(&*self.base)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

#[cfg(test)]
mod scoped_tests {
    use super::*;

    #[test]
    fn only_paths_under_the_base_are_in_scope() {
        let s = Scoped {
            inner: (),
            base: Arc::from("/scim/v2"),
        };
        assert_eq!(s.rest("/scim/v2"), Some(""));
        assert_eq!(s.rest("/scim/v2/"), Some("/"));
        assert_eq!(s.rest("/scim/v2/Users/7"), Some("/Users/7"));
        for outside in [
            "/scim/v2x/Users",
            "/scim/v",
            "/",
            "",
            "//scim/v2/Users",
            "/SCIM/v2/Users",
            "/scim%2Fv2/Users",
        ] {
            assert_eq!(s.rest(outside), None, "{outside}");
        }
        let everything = Scoped {
            inner: (),
            base: Arc::from(""),
        };
        assert_eq!(everything.rest("/Users"), Some("/Users"));
        assert_eq!(everything.rest("/"), Some("/"));
    }

    /// A base with braces routes exactly the paths `Scoped` sees under it, never a path it
    /// would leave unauthenticated.
    #[tokio::test]
    async fn a_base_with_braces_is_literal_in_the_routes() {
        use tower::ServiceExt;
        let base = "/scim/{t}";
        let app: Router = Router::new()
            .route(
                &format!("{}/{{endpoint}}", route_literal(base)),
                get(|| async { "hit" }),
            )
            .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
        let s = Scoped {
            inner: (),
            base: Arc::from(base),
        };
        // Every path the route answers is one `Scoped` puts under the base, and so one auth
        // and audit see; the others are 404s.
        for (path, hit) in [
            ("/scim/{t}/Users", true),
            ("/scim/acme/Users", false),
            ("/scim/%7Bt%7D/Users", false),
        ] {
            let req = Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let status = app.clone().oneshot(req).await.unwrap().status();
            assert_eq!(status == axum::http::StatusCode::OK, hit, "{path}");
            assert_eq!(s.rest(path).is_some(), hit, "{path}");
        }
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// Longest client-chosen request id the gateway echoes and logs.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Whether a client's `X-Request-Id` is echoed and logged as it is: 1 to
/// [`MAX_REQUEST_ID_CHARS`] characters of letters, digits and `-_.:/+=@`. Anything else is
/// replaced by an id of the gateway's, so a client cannot flood the log or inject into it.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

/// How much longer than the operation timeout the edge lets a request task run before it
/// stops it (the audit layer's own bound fires first).
const BACKSTOP_MARGIN: Duration = Duration::from_secs(5);

/// The outermost layer: gives each request an id and a tracing span (method, path, status,
/// latency), counts it in the metrics (by resource, operation and status), sheds load when
/// `max_concurrency` requests are in flight, and bounds the time a request may take. The
/// token is never part of what is logged.
fn edge<S: Inner>(edge: EdgeState, req: Request, inner: S) -> Pending {
    Box::pin(edge_one(edge, req, inner))
}

async fn edge_one<S: Inner>(edge: EdgeState, mut req: Request, inner: S) -> Response {
    let limits = &edge.limits;
    // Behind a trusted proxy: the client's address for throttles and the audit log, and the
    // URL the client used for meta.location.
    let mut request_base: Option<Arc<str>> = None;
    if let Some(peer) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .filter(|ip| forwarded::is_trusted(&limits.trusted_proxies, *ip))
    {
        let headers = req.headers();
        // Every line, also one with bytes that are not ASCII: dropping such a line would drop
        // the hop the proxy appended to it, and the client would hide behind the proxy.
        let lines: Vec<String> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let client = forwarded::client_address(
            &limits.trusted_proxies,
            peer,
            lines.iter().map(String::as_str),
        );
        if limits.forwarded_origin {
            // The last line: what the nearest proxy wrote.
            let header = |n: &str| {
                headers
                    .get_all(n)
                    .iter()
                    .next_back()
                    .and_then(|v| v.to_str().ok())
            };
            request_base =
                forwarded::origin(header("x-forwarded-proto"), header("x-forwarded-host"))
                    .map(|o| Arc::from(format!("{o}{}", edge.base_path)));
        }
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(
                client, 0,
            )));
    }
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:x}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)));
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_bytes {
        let mut r = AppError::Client(crate::scim::ScimError::new(
            414,
            None,
            format!(
                "the request URI has {uri_len} bytes; at most {} are accepted",
                limits.max_uri_bytes
            ),
        ))
        .into_response();
        set_request_id(&mut r, &id);
        return r;
    }
    // The request's place in the log: a task-local the plain-text log reads, or a span for
    // the other formats (see `RequestLog`). The task-local shows where the span would have
    // been let through: the same callsite level and target (this module's).
    let spanless = RequestLog::spanless();
    let shown = spanless && tracing::enabled!(tracing::Level::INFO);
    let log = Arc::new(RequestLog {
        id,
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        shown,
    });
    let (resource, operation) = classify(&log.method, &log.path, &edge.base_path);
    let span = if spanless {
        tracing::Span::none()
    } else {
        tracing::info_span!("scim", id = %log.id, method = %log.method, path = %log.path)
    };
    // An event of the edge's own, logged as one of the request's.
    let within = |event: &dyn Fn()| {
        if spanless {
            log.in_scope(event)
        } else {
            span.in_scope(event)
        }
    };
    let started = Instant::now();
    let Ok(permit) = limits.concurrency.clone().try_acquire_owned() else {
        within(&|| tracing::warn!("shedding load: too many requests in flight"));
        let mut r = AppError::Client(crate::scim::ScimError::new(
            503,
            None,
            "the gateway is at its concurrency limit; retry shortly",
        ))
        .into_response();
        set_request_id(&mut r, &log.id);
        edge.metrics
            .observe_request(resource, operation, r.status().as_u16(), started.elapsed());
        return r;
    };
    // The client's deadline (or its disconnecting) ends the wait, never the work: the
    // operation is polled here, and if the deadline passes or this future is dropped first,
    // what remains of it moves to a task of its own ([`Detached`]) and runs to completion,
    // holding its concurrency permit. The audit layer bounds it by the operation timeout (a
    // read by the request timeout), so a cut-off operation still gets its audit entry; the
    // bound here is only a backstop for what the audit layer does not see. The normal path
    // spawns nothing.
    let is_write = !matches!(log.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let late = ClientDeadline::default();
    req.extensions_mut().insert(late.clone());
    req.extensions_mut()
        .insert(RequestId(Arc::from(log.id.as_str())));
    let op_timeout = limits.operation_timeout + BACKSTOP_MARGIN;
    let op = log.scope(tracing::Instrument::instrument(
        async move {
            let _permit = permit;
            let run = forwarded::with_request_base(request_base, run(inner, req));
            match tokio::time::timeout(op_timeout, run).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::error!(
                        ms = op_timeout.as_millis() as u64,
                        "operation cut off at the operation timeout; its plan (if any) stays pending"
                    );
                    timeout_response(op_timeout, false)
                }
            }
        },
        span.clone(),
    ));
    let mut op = Detached(Some(Box::pin(op)));
    let answered = match op.0.as_mut() {
        Some(fut) => tokio::time::timeout(limits.request_timeout, fut).await,
        None => Ok(AppError::Internal("request future missing".into()).into_response()),
    };
    let mut resp = match answered {
        Ok(r) => {
            op.0 = None;
            r
        }
        Err(_) => {
            late.mark();
            if is_write {
                within(&|| tracing::warn!("client deadline passed; the operation continues"));
            }
            drop(op);
            timeout_response(limits.request_timeout, is_write)
        }
    };
    let status = resp.status();
    let elapsed = started.elapsed();
    edge.metrics
        .observe_request(resource, operation, status.as_u16(), elapsed);
    // The request's one line at info: method, path and id come from the span, the route as
    // resource and operation; legacy calls are logged one by one only at debug.
    // Whole microseconds: `ms=0.848`, not `ms=0.8476389999999999`.
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let ms = micros as f64 / 1000.0;
    let legacy_calls = resp
        .extensions()
        .get::<audit::LegacyCalls>()
        .map_or(0, |c| c.0);
    let (resource, op) = (resource.as_str(), operation.as_str());
    if status.is_server_error() {
        within(
            &|| tracing::warn!(status = status.as_u16(), ms, resource = %resource, op = %op, legacy_calls, "request failed"),
        );
    } else if !spanless {
        tracing::info!(parent: &span, status = status.as_u16(), ms, resource = %resource, op = %op, legacy_calls, "request");
    } else if log.shown {
        log.line(
            module_path!(),
            status.as_u16(),
            micros,
            resource,
            op,
            legacy_calls as u64,
        );
    }
    set_request_id(&mut resp, &log.id);
    resp
}

/// An operation not finished when its client stopped waiting: dropping this moves what
/// remains of it into a task of its own, so it completes (a timed-out or disconnected client
/// never cancels a write half-way).
struct Detached<F: Future<Output = Response> + Send + 'static>(Option<std::pin::Pin<Box<F>>>);

impl<F: Future<Output = Response> + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        if let Some(rest) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(rest);
        }
    }
}

/// The request's id (the client's `X-Request-Id`, or one the gateway made), in the request's
/// extensions for the audit entry.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Set (in the request's extensions) once the client was answered 504 while its operation
/// runs on; the audit entry then records that the client saw a timeout.
#[derive(Debug, Clone, Default)]
pub struct ClientDeadline(Arc<std::sync::atomic::AtomicBool>);

impl ClientDeadline {
    fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the client was answered 504 before the operation finished.
    pub fn passed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The 504 a client gets; for a write whose operation goes on, the detail says so.
pub(crate) fn timeout_response(after: Duration, continues: bool) -> Response {
    let mut detail = format!(
        "the request did not complete within {} ms",
        after.as_millis()
    );
    if continues {
        detail.push_str(
            "; the operation goes on in the gateway and completes (see the audit log); \
             retrying the request is safe",
        );
    }
    AppError::Client(crate::scim::ScimError::new(504, None, detail)).into_response()
}

fn set_request_id(resp: &mut Response, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
}

/// The service requests are answered by. A configuration reload swaps in a new one; each
/// request runs start to end on the one it began with (one configuration per request), and
/// open keep-alive connections take the new one from their next request.
pub struct LiveRouter<S = ScimService>(Arc<arc_swap::ArcSwap<S>>);

impl<S> Clone for LiveRouter<S> {
    fn clone(&self) -> Self {
        LiveRouter(Arc::clone(&self.0))
    }
}

impl<S: Clone> LiveRouter<S> {
    /// Serves `router` until [`LiveRouter::swap`].
    pub fn new(router: S) -> LiveRouter<S> {
        LiveRouter(Arc::new(arc_swap::ArcSwap::from_pointee(router)))
    }

    /// The service a request that starts now runs on.
    pub fn current(&self) -> S {
        S::clone(&self.0.load())
    }

    /// Makes `router` answer every request that starts from now on.
    pub fn swap(&self, router: S) {
        self.0.store(Arc::new(router));
    }
}

/// Serves `app` on `listener` with bounded connections (over TLS when `tls` is given) until
/// `shutdown` resolves, then drains in-flight requests.
pub async fn serve<S: Inner>(
    listener: tokio::net::TcpListener,
    app: LiveRouter<S>,
    limits: listen::ConnLimits,
    tls: Option<tls::LiveTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app, limits, tls, shutdown).await
}
