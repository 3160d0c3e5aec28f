//! The admin listener: health and readiness probes, Prometheus metrics, and the status page
//! with API-key management. It listens on its own address (`[admin] listen`, loopback by
//! default), apart from the SCIM port Entra reaches.
//!
//! ```text
//! /healthz  /readyz  /metrics                 no login (probes and scrapers)
//! /login  /logout                             the admin password, a session cookie
//! /  /audit  /failures  /keys  /keys/{id}/revoke   the status page (session required)
//! /static/admin.css  /static/admin.js         embedded, so the page needs no network
//! ```
//!
//! Every response carries a strict Content-Security-Policy (no inline script, nothing from
//! elsewhere); state-changing requests need the session's CSRF token and a same-origin
//! `Origin`/`Referer` when the browser sends one.

mod pages;
mod session;
mod views;

use crate::backend::Backend;
use crate::config::Secret;
use crate::metrics::Metrics;
use crate::reload::ReloadHandle;
use crate::store::Store;
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use session::Sessions;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What the admin listener serves from; cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    live: Arc<ArcSwap<AdminLive>>,
    metrics: Arc<Metrics>,
    /// SHA-256 of the admin password; `None` when none is configured (the page is off).
    password: Option<[u8; 32]>,
    sessions: Sessions,
    scim_url: String,
    reload: Option<ReloadHandle>,
}

/// What the admin listener shows and probes of the configuration that serves now; a reload
/// replaces it.
pub struct AdminLive {
    /// The legacy API client `/readyz` probes.
    pub backend: Backend,
    /// The profile name, shown on the page.
    pub profile: String,
    /// How many static bearer tokens `[auth] tokens` holds (shown, never their values).
    pub static_tokens: usize,
}

/// What the gateway tells the admin listener about itself.
pub struct AdminSettings {
    /// The admin credential; empty turns the page off.
    pub password: Secret,
    /// The SCIM base URL, shown on the page.
    pub scim_url: String,
    /// The serving configuration's part the admin listener uses, swapped by reloads.
    pub live: Arc<ArcSwap<AdminLive>>,
    /// Asks for a configuration reload (the page's button) and tells how the last ended.
    pub reload: Option<ReloadHandle>,
}

impl AdminState {
    /// Built once at gateway start from the gateway's own store and metrics (and the serving
    /// configuration's backend client, swapped by reloads), so the page shows exactly what
    /// the SCIM side records.
    pub fn new(store: Store, metrics: Arc<Metrics>, settings: AdminSettings) -> AdminState {
        let password = settings.password.expose();
        let password = (!password.is_empty()).then(|| digest(password));
        AdminState {
            inner: Arc::new(Inner {
                store,
                live: settings.live,
                metrics,
                password,
                sessions: Sessions::default(),
                scim_url: settings.scim_url,
                reload: settings.reload,
            }),
        }
    }

    /// Whether `given` is the admin password. Both sides are hashed first, so the comparison
    /// is constant-time and its duration says nothing about the password's length.
    fn password_matches(&self, given: &str) -> bool {
        self.inner
            .password
            .is_some_and(|p| bool::from(digest(given).ct_eq(&p)))
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The admin router (probes, metrics, the status page and its assets).
pub fn router(state: AdminState) -> Router {
    use pages::*;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/", get(overview))
        .route("/audit", get(audit))
        .route("/failures", get(failures))
        .route("/keys", get(keys).post(create_key))
        .route("/keys/{id}/revoke", get(revoke_confirm).post(revoke_key))
        .route("/plans/{id}/{action}", post(plan_action))
        .route("/reload", post(reload_config))
        .route("/static/admin.css", get(stylesheet))
        .route("/static/admin.js", get(script))
        .fallback(not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Adds the headers every admin response carries: no framing, no sniffing, no third-party
/// anything (the page loads only its own stylesheet and script).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    resp
}

/// Serves `app` on `listener` until `shutdown` resolves; the gateway runs it in its own task.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::server::listen::ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::server::listen::serve(
        listener,
        crate::server::LiveRouter::new(app),
        limits,
        None,
        shutdown,
    )
    .await
}
