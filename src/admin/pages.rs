//! Handlers of the admin listener: probes, metrics, login, and the status page.

use super::AdminState;
use super::session::{self, NewKey, SessionView};
use super::views::{self, AuditForm, FailureGroup, GatewayInfo};
use crate::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, StoreOp};
use crate::server::listen::Peer;
use crate::store::{
    AuditContext, AuditEntry, AuditFilter, AuditLog, KeyId, KeyStore, PlanState, PlanStore,
    SyncStatus,
};
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use maud::Markup;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Longest a readiness check may take per dependency; probes have short deadlines.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries on the overview.
const RECENT: u32 = 10;
/// Most audit entries the overview's 24-hour chart counts (a busier day is drawn from the
/// newest this many).
const CHART_SCAN: u32 = 100_000;
/// Pending and failed plans listed on the overview.
const PLANS_SHOWN: u32 = 100;
/// Entries on the audit page.
const AUDIT_LIMIT: u32 = 200;
/// Failures read per status class for the failing-operations view.
const FAILURE_SCAN: u32 = 1000;
/// Longest key name accepted.
const MAX_KEY_NAME: usize = 100;

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// An HTML page that is never cached (pages show keys and who did what).
fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A store failure on a page: logged with its cause, shown without it.
fn store_down(e: &dyn std::fmt::Display, csrf: Option<&str>) -> Response {
    tracing::error!(error = %e, "admin page: store unavailable");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        views::message(
            "Store unavailable",
            "The gateway's store did not answer; see the gateway log. Try again shortly.",
            csrf,
        ),
    )
}

/// `GET /healthz`: the process is up and serving (200, `ok`).
pub async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n".into())
}

/// `GET /readyz`: 200 when the store answers a trivial query and the legacy app answers a
/// GET of `backend.ready_path` (below 500, within 2 s); 503 otherwise, one line per
/// dependency saying which failed.
pub async fn readyz(State(s): State<AdminState>) -> Response {
    let inner = &s.inner;
    let store_check = async {
        let ping = inner.metrics.time_store(StoreOp::Ping, inner.store.ping());
        match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e}")),
            Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
        }
    };
    let backend = inner.live.load().backend.clone();
    let (store, backend) = tokio::join!(store_check, backend.ready(PROBE_TIMEOUT));
    let line = |what: &str, r: &Result<(), String>| match r {
        Ok(()) => format!("{what}: ok\n"),
        Err(e) => format!("{what}: FAILED: {e}\n"),
    };
    let store_name = format!("store ({})", inner.store.backend_name());
    let body = format!(
        "{}{}{}",
        if store.is_ok() && backend.is_ok() {
            "ready\n"
        } else {
            "not ready\n"
        },
        line(&store_name, &store),
        line("backend", &backend),
    );
    if store.is_ok() && backend.is_ok() {
        text(StatusCode::OK, body)
    } else {
        tracing::warn!(body = %body.trim_end(), "readiness check failed");
        text(StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// `GET /metrics`: every metric in the OpenMetrics text format, the managed counts read from
/// the store first (left at their last value when the store does not answer).
pub async fn metrics_text(State(s): State<AdminState>) -> Response {
    let inner = &s.inner;
    let status = inner
        .metrics
        .time_store(StoreOp::SyncStatus, inner.store.status());
    match tokio::time::timeout(PROBE_TIMEOUT, status).await {
        Ok(Ok(state)) => inner.metrics.set_sync_state(&state),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: sync status unavailable"),
        Err(_) => tracing::warn!("metrics: sync status timed out"),
    }
    match tokio::time::timeout(PROBE_TIMEOUT, inner.store.plan_counts()).await {
        Ok(Ok(counts)) => inner.metrics.set_plan_counts(counts),
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: plan counts unavailable"),
        Err(_) => tracing::warn!("metrics: plan counts timed out"),
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, METRICS_CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        inner.metrics.encode(),
    )
        .into_response()
}

/// A signed-in admin; extracting it is the page's access check.
///
/// Refuses with the "page is off" explanation (503) when no password is configured, with a
/// 403 when a state-changing request comes from another origin, and without a live session
/// with a redirect to `/login` (GET) or a 401 (anything else).
pub struct Admin(pub SessionView);

impl FromRequestParts<AdminState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AdminState) -> Result<Admin, Response> {
        if s.inner.password.is_none() {
            return Err(page(StatusCode::SERVICE_UNAVAILABLE, views::disabled()));
        }
        let safe = parts.method == Method::GET || parts.method == Method::HEAD;
        if !safe && !same_origin(&parts.headers) {
            return Err(forbidden_origin());
        }
        let session = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie(h, session::COOKIE))
            .and_then(|id| s.inner.sessions.get(id));
        match session {
            Some(v) => Ok(Admin(v)),
            None if safe => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let mut to = String::from("/login?next=");
                crate::backend::encode_into(&mut to, &next);
                Err(see_other(&to))
            }
            None => Err(page(
                StatusCode::UNAUTHORIZED,
                views::message(
                    "Signed out",
                    "Your session has ended. Sign in again and repeat the action.",
                    None,
                ),
            )),
        }
    }
}

fn forbidden_origin() -> Response {
    page(
        StatusCode::FORBIDDEN,
        views::message(
            "Refused",
            "This request came from another site and was refused.",
            None,
        ),
    )
}

/// Whether a state-changing request comes from this listener's own pages: its `Origin` (or,
/// failing that, its `Referer`) names the host the request was sent to. Requests with
/// neither header (non-browser clients) pass here and still need the session's CSRF token.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let matches = |url: &str| {
        ["http://", "https://"].iter().any(|scheme| {
            url.strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix(host))
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
        })
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(matches);
    }
    if let Some(referer) = headers.get(header::REFERER) {
        return referer.to_str().is_ok_and(matches);
    }
    true
}

/// A `next` target that stays on this listener: a path of printable ASCII without spaces or
/// backslashes, never `//host` or a URL. Browsers drop tabs and newlines from a URL and
/// read `\` as `/`, so `/\t/evil.example` or `/\evil.example` would leave the site.
fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n
        }
        _ => "/",
    }
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: the sign-in form (or the "page is off" explanation).
pub async fn login_form(State(s): State<AdminState>, Query(q): Query<LoginQuery>) -> Response {
    if s.inner.password.is_none() {
        return page(StatusCode::SERVICE_UNAVAILABLE, views::disabled());
    }
    page(
        StatusCode::OK,
        views::login(None, local_target(q.next.as_deref())),
    )
}

/// Form of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    password: String,
    next: Option<String>,
}

/// `POST /login`: a correct password starts a session (cookie) and redirects to `next`; a
/// wrong one answers 401 with the form again; after 10 failures in a minute, 429.
pub async fn login(
    State(s): State<AdminState>,
    Peer(client): Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if s.inner.password.is_none() {
        return page(StatusCode::SERVICE_UNAVAILABLE, views::disabled());
    }
    if !same_origin(&headers) {
        return forbidden_origin();
    }
    let next = local_target(f.next.as_deref());
    let sessions = &s.inner.sessions;
    // Without the peer's address (a router served without connection info) every client
    // shares one bucket.
    let client = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if sessions.throttled(client) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            views::login(Some("Too many failed attempts; wait a minute."), next),
        );
    }
    if !s.password_matches(&f.password) {
        sessions.record_failure(client);
        tracing::warn!("admin login refused: wrong password");
        return page(
            StatusCode::UNAUTHORIZED,
            views::login(Some("Wrong password."), next),
        );
    }
    let Some(v) = sessions.create() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session id\n".into(),
        );
    };
    tracing::info!("admin signed in");
    let mut r = see_other(next);
    if let Ok(c) = HeaderValue::from_str(&session::set_cookie(&v.id)) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// A form that only carries the CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn bad_csrf(admin: &SessionView) -> Response {
    page(
        StatusCode::FORBIDDEN,
        views::message(
            "Form expired",
            "The form did not carry this session's token. Reload the page and try again.",
            Some(&admin.csrf),
        ),
    )
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !admin.csrf_matches(&f.csrf) {
        return bad_csrf(&admin);
    }
    s.inner.sessions.remove(&admin.id);
    let mut r = see_other("/login");
    if let Ok(c) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// `GET /`: last synced, managed counts, errors and rejections of the last 24 h, recent
/// audit entries.
pub async fn overview(State(s): State<AdminState>, Admin(admin): Admin) -> Response {
    let inner = &s.inner;
    let m = &inner.metrics;
    let filter = AuditFilter {
        limit: RECENT,
        ..AuditFilter::default()
    };
    let now = Utc::now();
    let (state, recent, plans, activity) = tokio::join!(
        m.time_store(StoreOp::SyncStatus, inner.store.status()),
        m.time_store(StoreOp::AuditQuery, inner.store.query(&filter)),
        inner
            .store
            .plans_in(&[PlanState::Pending, PlanState::Failed], PLANS_SHOWN),
        m.time_store(
            StoreOp::AuditQuery,
            inner
                .store
                .activity_since(now - ChronoDuration::hours(24), CHART_SCAN)
        ),
    );
    let (state, recent) = match (state, recent) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => return store_down(&e, Some(&admin.csrf)),
    };
    let plans = match plans {
        Ok(p) => p,
        Err(e) => return store_down(&e, Some(&admin.csrf)),
    };
    let hours = match activity {
        Ok(a) => views::hourly(&a, now),
        Err(e) => return store_down(&e, Some(&admin.csrf)),
    };
    let live = inner.live.load();
    let last_reload = inner.reload.as_ref().and_then(|r| r.last());
    let info = GatewayInfo {
        scim_url: &inner.scim_url,
        profile: &live.profile,
        store: inner.store.backend_name(),
        reloadable: inner.reload.is_some(),
        last_reload: last_reload.as_ref(),
    };
    page(
        StatusCode::OK,
        views::overview(&admin.csrf, &state, &recent, &hours, &plans, &info, now),
    )
}

/// Query of `GET /audit` (every field optional; empty means "any").
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    operation: Option<String>,
    status: Option<String>,
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn non_empty(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A preset range as a duration back from now; `None` for `all` or anything unknown.
fn range_start(range: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let d = match range {
        "15m" => ChronoDuration::minutes(15),
        "1h" => ChronoDuration::hours(1),
        "24h" => ChronoDuration::hours(24),
        "7d" => ChronoDuration::days(7),
        "30d" => ChronoDuration::days(30),
        _ => return None,
    };
    Some(now - d)
}

/// A `datetime-local` value (`2025-01-31T13:45`, seconds optional) read as UTC.
fn parse_local(v: &str) -> Option<DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
        .map(|t| t.and_utc())
}

/// The filter a query asks for, and the form values to show again.
fn audit_filter(q: &AuditQuery, now: DateTime<Utc>) -> (AuditFilter, AuditForm) {
    let status_class = match non_empty(q.status.as_ref()) {
        Some("2xx") => Some(2),
        Some("4xx") => Some(4),
        Some("5xx") => Some(5),
        _ => None,
    };
    let range = non_empty(q.range.as_ref())
        .filter(|r| views::RANGES.iter().any(|(v, _)| v == r))
        .unwrap_or("all");
    let from = non_empty(q.from.as_ref()).and_then(parse_local);
    let to = non_empty(q.to.as_ref()).and_then(parse_local);
    let operation = non_empty(q.operation.as_ref())
        .filter(|o| o.len() <= 40)
        .map(str::to_string);
    let filter = AuditFilter {
        since: from.or_else(|| range_start(range, now)),
        until: to,
        operation: operation.clone(),
        status_class,
        limit: AUDIT_LIMIT,
    };
    let form = AuditForm {
        operation: operation.unwrap_or_default(),
        status: status_class.map(|c| format!("{c}xx")).unwrap_or_default(),
        range: range.to_string(),
        from: from
            .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default(),
        to: to
            .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default(),
    };
    (filter, form)
}

/// `GET /audit`: the audit log, filtered by operation, status class and time range.
pub async fn audit(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Query(q): Query<AuditQuery>,
) -> Response {
    let now = Utc::now();
    let (filter, form) = audit_filter(&q, now);
    let inner = &s.inner;
    match inner
        .metrics
        .time_store(StoreOp::AuditQuery, inner.store.query(&filter))
        .await
    {
        Ok(entries) => page(
            StatusCode::OK,
            views::audit(&admin.csrf, &form, &entries, now),
        ),
        Err(e) => store_down(&e, Some(&admin.csrf)),
    }
}

/// Query of `GET /failures`.
#[derive(Debug, Default, Deserialize)]
pub struct FailuresQuery {
    range: Option<String>,
}

/// Failed entries grouped by (operation, resource type, status): server errors first, then
/// the most frequent; each group keeps its most recent entry.
fn group_failures(entries: &[AuditEntry]) -> Vec<FailureGroup> {
    let mut groups: HashMap<(&str, &str, u16), FailureGroup> = HashMap::new();
    // Entries come newest first, so the first one seen per group is its latest.
    for e in entries {
        groups
            .entry((&e.operation, &e.resource_type, e.scim_status))
            .and_modify(|g| g.count += 1)
            .or_insert_with(|| FailureGroup {
                operation: e.operation.clone(),
                resource_type: e.resource_type.clone(),
                status: e.scim_status,
                count: 1,
                last: e.clone(),
            });
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    out.sort_by(|a, b| {
        (b.status >= 500)
            .cmp(&(a.status >= 500))
            .then(b.count.cmp(&a.count))
            .then(b.last.time.cmp(&a.last.time))
    });
    out
}

/// `GET /failures`: what failed in the range (default 24 h), grouped, then the latest
/// failures themselves.
pub async fn failures(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Query(q): Query<FailuresQuery>,
) -> Response {
    let now = Utc::now();
    let range = non_empty(q.range.as_ref())
        .filter(|r| views::RANGES.iter().any(|(v, _)| v == r))
        .unwrap_or("24h");
    let since = range_start(range, now);
    let inner = &s.inner;
    let m = &inner.metrics;
    let class = |c: u16| AuditFilter {
        since,
        status_class: Some(c),
        limit: FAILURE_SCAN,
        ..AuditFilter::default()
    };
    let (errors, rejected) = (class(5), class(4));
    let (errors, rejected) = tokio::join!(
        m.time_store(StoreOp::AuditQuery, inner.store.query(&errors)),
        m.time_store(StoreOp::AuditQuery, inner.store.query(&rejected)),
    );
    let mut all = match (errors, rejected) {
        (Ok(mut a), Ok(b)) => {
            a.extend(b);
            a
        }
        (Err(e), _) | (_, Err(e)) => return store_down(&e, Some(&admin.csrf)),
    };
    all.sort_by_key(|e| std::cmp::Reverse(e.time));
    let groups = group_failures(&all);
    all.truncate(50);
    page(
        StatusCode::OK,
        views::failures(&admin.csrf, range, &groups, &all, now),
    )
}

async fn keys_page(
    s: &AdminState,
    admin: &SessionView,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let inner = &s.inner;
    let created = inner.sessions.take_flash(&admin.id);
    match inner
        .metrics
        .time_store(StoreOp::Keys, inner.store.list_keys())
        .await
    {
        Ok(keys) => page(
            status,
            views::keys(
                &admin.csrf,
                &keys,
                inner.live.load().static_tokens,
                created.as_ref(),
                error,
                Utc::now(),
            ),
        ),
        Err(e) => store_down(&e, Some(&admin.csrf)),
    }
}

/// `GET /keys`: the key list and create form; right after a create, the new key in a
/// dialog, once.
pub async fn keys(State(s): State<AdminState>, Admin(admin): Admin) -> Response {
    keys_page(&s, &admin, StatusCode::OK, None).await
}

/// Form of `POST /keys`.
#[derive(Debug, Deserialize)]
pub struct CreateKeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires: String,
}

/// `POST /keys`: issues a key named `name` expiring after `expires` (`90d`, …, `never`),
/// keeps it in the session for the next page and redirects there (so a reload cannot create
/// a second key, and the key never appears in a URL). A bad name or lifetime answers 400 with
/// the form and the reason.
pub async fn create_key(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Form(f): Form<CreateKeyForm>,
) -> Response {
    if !admin.csrf_matches(&f.csrf) {
        return bad_csrf(&admin);
    }
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME || name.chars().any(char::is_control)
    {
        let msg = format!("The name must be 1 to {MAX_KEY_NAME} printable characters.");
        return keys_page(&s, &admin, StatusCode::BAD_REQUEST, Some(&msg)).await;
    }
    let lifetime = match crate::store::parse_lifetime(&f.expires) {
        Ok(l) => l,
        Err(e) => return keys_page(&s, &admin, StatusCode::BAD_REQUEST, Some(&e)).await,
    };
    let inner = &s.inner;
    let expires = lifetime.map(|d| Utc::now() + d);
    match inner
        .metrics
        .time_store(StoreOp::Keys, inner.store.create_key(name, expires))
        .await
    {
        Ok((info, key)) => {
            tracing::info!(key_id = %info.id, name = %info.name, "API key created on the admin page");
            inner.sessions.set_flash(&admin.id, NewKey { info, key });
            see_other("/keys")
        }
        Err(e) => store_down(&e, Some(&admin.csrf)),
    }
}

/// Whether `id` looks like a key's public id (so nothing else reaches the store or a page).
fn plausible_key_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /keys/{id}/revoke`: asks for confirmation (the page the revoke button opens when
/// scripts are off).
pub async fn revoke_confirm(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Response {
    if !plausible_key_id(&id) {
        return not_found().await;
    }
    let inner = &s.inner;
    match inner
        .metrics
        .time_store(StoreOp::Keys, inner.store.list_keys())
        .await
    {
        Ok(keys) => match keys.iter().find(|k| k.id.0 == id) {
            Some(k) if k.revoked.is_none() => {
                page(StatusCode::OK, views::revoke_confirm(&admin.csrf, k))
            }
            Some(_) => see_other("/keys"),
            None => not_found().await,
        },
        Err(e) => store_down(&e, Some(&admin.csrf)),
    }
}

/// `POST /keys/{id}/revoke`: revokes the key at once (SCIM calls with it get 401 from the
/// next request on) and returns to the list.
pub async fn revoke_key(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !admin.csrf_matches(&f.csrf) {
        return bad_csrf(&admin);
    }
    if !plausible_key_id(&id) {
        return not_found().await;
    }
    let inner = &s.inner;
    match inner
        .metrics
        .time_store(StoreOp::Keys, inner.store.revoke_key(&KeyId(id.clone())))
        .await
    {
        Ok(true) => {
            tracing::info!(key_id = %id, "API key revoked on the admin page");
            see_other("/keys")
        }
        Ok(false) => not_found().await,
        Err(e) => store_down(&e, Some(&admin.csrf)),
    }
}

/// What an operator may do to a pending or failed plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// Due at once, attempts counted afresh.
    Retry,
    /// Stopped for good.
    Abandon,
}

/// `POST /reload`: reloads the configuration (profile, scripts, auth) as SIGHUP does, then
/// shows the overview with the outcome (a refused reload keeps the running configuration).
pub async fn reload_config(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !admin.csrf_matches(&f.csrf) {
        return bad_csrf(&admin);
    }
    match &s.inner.reload {
        Some(r) => {
            r.reload(crate::reload::Trigger::Admin).await;
            see_other("/")
        }
        None => not_found().await,
    }
}

/// `POST /plans/{id}/{retry|abandon}`: an operator's "retry now" or "abandon" of a pending or
/// failed plan (CSRF-checked); audited as `plan retry` / `plan abandon` by `admin`.
pub async fn plan_action(
    State(s): State<AdminState>,
    Admin(admin): Admin,
    Path((id, action)): Path<(String, PlanAction)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !admin.csrf_matches(&f.csrf) {
        return bad_csrf(&admin);
    }
    if uuid::Uuid::parse_str(&id).is_err() {
        return not_found().await;
    }
    let store = &s.inner.store;
    let plan = match store.plan(&id).await {
        Ok(Some(p)) => p,
        Ok(None) => return not_found().await,
        Err(e) => return store_down(&e, Some(&admin.csrf)),
    };
    let started = std::time::Instant::now();
    let (done, operation) = match action {
        PlanAction::Retry => (store.retry_plan_now(&id).await, "plan retry"),
        PlanAction::Abandon => (store.abandon_plan(&id).await, "plan abandon"),
    };
    let changed = match done {
        Ok(c) => c,
        Err(e) => return store_down(&e, Some(&admin.csrf)),
    };
    let entry = AuditEntry {
        time: Utc::now(),
        actor: "admin".to_string(),
        operation: operation.to_string(),
        resource_type: plan.resource_type.clone(),
        resource_id: Some(plan.resource_id.clone()),
        scim_status: if changed { 200 } else { 409 },
        backend_calls: Vec::new(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
        context: AuditContext {
            detail: Some(format!(
                "plan {id} ({}), {} of {} steps done",
                plan.kind,
                plan.done,
                plan.step_count()
            )),
            label: plan.label.clone(),
            ..AuditContext::default()
        },
    };
    if let Err(e) = store.append(&entry).await {
        tracing::error!(error = %e, plan = %id, "could not audit an admin plan action");
    }
    tracing::info!(plan = %id, operation, changed, "plan action on the admin page");
    see_other("/#plans")
}

/// `GET /static/admin.css`.
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("admin.css"))
}

/// `GET /static/admin.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("admin.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Anything else: 404.
pub async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        views::message("Not found", "There is no such page.", None),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let host = ("host", "127.0.0.1:9100");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9100")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:9100/keys")
        ])));
        assert!(
            same_origin(&headers(&[host])),
            "no browser headers: CSRF token decides"
        );
        for bad in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", "http://127.0.0.1:91000"),
            ("referer", "http://127.0.0.1:9100.evil.example/"),
        ] {
            assert!(!same_origin(&headers(&[host, bad])), "{bad:?}");
        }
        assert!(!same_origin(&headers(&[("origin", "http://x")])), "no Host");
    }

    #[test]
    fn login_redirects_stay_local() {
        assert_eq!(local_target(Some("/audit?status=5xx")), "/audit?status=5xx");
        for bad in [
            None,
            Some("//evil.example/"),
            Some("https://evil.example"),
            Some("/\\evil"),
        ] {
            assert_eq!(local_target(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn audit_queries_become_filters() {
        let now = Utc::now();
        let q = AuditQuery {
            operation: Some(" create ".into()),
            status: Some("5xx".into()),
            range: Some("1h".into()),
            from: None,
            to: Some("2030-01-02T03:04".into()),
        };
        let (f, form) = audit_filter(&q, now);
        assert_eq!(f.operation.as_deref(), Some("create"));
        assert_eq!(f.status_class, Some(5));
        assert_eq!(f.since, Some(now - ChronoDuration::hours(1)));
        assert_eq!(
            f.until.map(|t| t.to_rfc3339()),
            Some("2030-01-02T03:04:00+00:00".into())
        );
        assert_eq!(form.status, "5xx");
        assert_eq!(form.range, "1h");
        let (f, form) = audit_filter(&AuditQuery::default(), now);
        assert_eq!(
            f,
            AuditFilter {
                limit: AUDIT_LIMIT,
                ..AuditFilter::default()
            }
        );
        assert_eq!(form.range, "all");
        let junk = AuditQuery {
            status: Some("9xx".into()),
            range: Some("forever".into()),
            from: Some("yesterday".into()),
            ..AuditQuery::default()
        };
        let (f, _) = audit_filter(&junk, now);
        assert_eq!((f.status_class, f.since), (None, None));
    }

    #[test]
    fn failures_group_by_operation_and_status() {
        let t0 = Utc::now();
        let e = |op: &str, status: u16, mins: i64| AuditEntry {
            time: t0 - ChronoDuration::minutes(mins),
            actor: "k".into(),
            operation: op.into(),
            resource_type: "User".into(),
            resource_id: None,
            scim_status: status,
            backend_calls: vec![],
            duration_ms: 1,
            context: Default::default(),
        };
        let entries = vec![
            e("create", 409, 1),
            e("patch", 502, 2),
            e("create", 409, 3),
            e("create", 409, 4),
            e("delete", 404, 5),
        ];
        let g = group_failures(&entries);
        let summary: Vec<(&str, u16, usize)> = g
            .iter()
            .map(|g| (g.operation.as_str(), g.status, g.count))
            .collect();
        assert_eq!(
            summary,
            vec![("patch", 502, 1), ("create", 409, 3), ("delete", 404, 1)]
        );
        assert_eq!(g[1].last.time, t0 - ChronoDuration::minutes(1));
    }
}
