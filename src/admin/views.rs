//! The status page's HTML, server-rendered with maud (which escapes every interpolated value).
//! One function per page; they take plain data and return markup, so they never touch the
//! store or the request.

use super::session::NewKey;
use crate::store::{AuditEntry, KeyInfo, PlanRecord, PlanState, SyncState};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

/// The navigation entries; the current one is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`
    Overview,
    /// `/audit`
    Audit,
    /// `/failures`
    Failures,
    /// `/keys`
    Keys,
    /// Pages outside the navigation (login, messages).
    None,
}

/// Facts about the running gateway shown on the overview.
pub struct GatewayInfo<'a> {
    /// SCIM base URL Entra is given.
    pub scim_url: &'a str,
    /// Profile name.
    pub profile: &'a str,
    /// `sqlite` or `postgres`.
    pub store: &'a str,
    /// Whether the page offers a configuration reload.
    pub reloadable: bool,
    /// How the last configuration reload ended; `None` when none ran since start.
    pub last_reload: Option<&'a crate::reload::ReloadReport>,
}

/// The audit page's filters, as the form shows them again.
#[derive(Debug, Clone, Default)]
pub struct AuditForm {
    /// Operation, or empty for any.
    pub operation: String,
    /// `2xx`, `4xx`, `5xx` or empty for any.
    pub status: String,
    /// A preset range (`1h`, `24h`, … or `all`).
    pub range: String,
    /// Start of a custom range (`YYYY-MM-DDTHH:MM`, UTC), or empty.
    pub from: String,
    /// End of a custom range, or empty.
    pub to: String,
}

/// Preset time ranges of the audit and failure views: (value, label).
pub const RANGES: [(&str, &str); 6] = [
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
    ("all", "all time"),
];

/// Operations offered by the audit filter (the SCIM writes the gateway audits, then reads).
pub const OPERATIONS: [&str; 7] = [
    "create", "replace", "patch", "delete", "get", "list", "search",
];

/// Key lifetimes offered by the create form: (value for `parse_lifetime`, label).
pub const LIFETIMES: [(&str, &str); 5] = [
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("180d", "180 days"),
    ("365d", "1 year"),
    ("never", "never"),
];

/// One row of the failing-operations view: failures sharing operation, resource type and
/// status.
pub struct FailureGroup {
    /// SCIM operation.
    pub operation: String,
    /// Resource type.
    pub resource_type: String,
    /// The status answered.
    pub status: u16,
    /// How many requests failed this way in the range.
    pub count: usize,
    /// The most recent one.
    pub last: AuditEntry,
}

fn layout(title: &str, nav: Nav, csrf: Option<&str>, body: Markup) -> Markup {
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(nav == target).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · scimgate admin" }
                link rel="stylesheet" href="/static/admin.css";
                script src="/static/admin.js" defer {}
            }
            body {
                header.top {
                    span.brand { "scimgate" small { "admin" } }
                    @if let Some(token) = csrf {
                        nav {
                            (item(Nav::Overview, "/", "Overview"))
                            (item(Nav::Audit, "/audit", "Audit log"))
                            (item(Nav::Failures, "/failures", "Failing operations"))
                            (item(Nav::Keys, "/keys", "API keys"))
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(token);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                footer { "scimgate " (env!("CARGO_PKG_VERSION")) }
            }
        }
    }
}

/// "3 min ago"-style text for `t` seen from `now`.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    match secs {
        i64::MIN..=-1 => "in the future".into(),
        0..=9 => "just now".into(),
        10..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// "in 40 s"-style text for a time ahead of `now` (a plan's next attempt); "now" when due.
pub fn ahead(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    match secs {
        i64::MIN..=0 => "now".into(),
        1..=59 => format!("in {secs} s"),
        60..=3599 => format!("in {} min", secs / 60),
        3600..=86_399 => format!("in {} h", secs / 3600),
        _ => format!("in {} d", secs / 86_400),
    }
}

fn absolute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time as relative text with the absolute time beside it (and machine-readable).
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339()) title=(absolute(t)) { (ago(t, now)) }
    }
}

fn when_opt(t: Option<DateTime<Utc>>, now: DateTime<Utc>, none: &str) -> Markup {
    match t {
        Some(t) => when(t, now),
        None => html! { span.muted { (none) } },
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        400..=499 => "warn",
        _ => "bad",
    }
}

fn status_badge(status: u16) -> Markup {
    html! { span class={ "badge " (status_class(status)) } { (status) } }
}

/// The sign-in form; `error` explains a refused attempt.
pub fn login(error: Option<&str>, next: &str) -> Markup {
    layout(
        "Sign in",
        Nav::None,
        None,
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                p.muted { "Enter the admin password ([admin] password in scimgate.toml)." }
                @if let Some(e) = error {
                    p.error role="alert" { (e) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="password" { "Admin password" }
                    input #password type="password" name="password" autocomplete="current-password" required autofocus;
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// Shown instead of every page while no admin password is configured.
pub fn disabled() -> Markup {
    layout(
        "Admin page off",
        Nav::None,
        None,
        html! {
            section.card.narrow {
                h1 { "The admin page is off" }
                p { "No admin password is configured, so the status page and key management are disabled." }
                p { "To turn them on, set a password of at least 12 characters and restart scimgate:" }
                pre { "[admin]\npassword = \"…\"" }
                p { "or the environment variable " code { "SCIMGATE_ADMIN__PASSWORD" } "." }
                p.muted {
                    "The probes and metrics work without it: "
                    a href="/healthz" { "/healthz" } ", "
                    a href="/readyz" { "/readyz" } ", "
                    a href="/metrics" { "/metrics" } "."
                }
            }
        },
    )
}

/// A short page with a title and an explanation (errors, refusals).
pub fn message(title: &str, text: &str, csrf: Option<&str>) -> Markup {
    layout(
        title,
        Nav::None,
        csrf,
        html! {
            section.card.narrow {
                h1 { (title) }
                p { (text) }
                p { a href="/" { "Back to the overview" } }
            }
        },
    )
}

fn backend_calls(entry: &AuditEntry) -> Markup {
    html! {
        @if entry.backend_calls.is_empty() {
            span.muted { "none" }
        } @else {
            ul.calls {
                @for c in &entry.backend_calls {
                    li {
                        code { (c.method) " " (c.path) }
                        " → "
                        @if c.status == 0 { span class="badge bad" { "no answer" } } @else { (status_badge(c.status)) }
                        " " span.muted { (c.ms) " ms" }
                    }
                }
            }
        }
    }
}

fn audit_table(entries: &[AuditEntry], now: DateTime<Utc>, empty: &str) -> Markup {
    html! {
        @if entries.is_empty() {
            p.muted.empty { (empty) }
        } @else {
            table.audit {
                thead { tr {
                    th { "Time" } th { "Caller" } th { "Operation" } th { "Resource" }
                    th { "Status" } th { "Legacy calls" } th.num { "ms" }
                } }
                tbody {
                    @for e in entries {
                        tr class={ "row-" (status_class(e.scim_status)) } {
                            td { (when(e.time, now)) }
                            td {
                                (e.actor)
                                @if let Some(a) = &e.context.client_address { br; span.muted { "from " (a) } }
                            }
                            td { code { (e.operation) } }
                            td {
                                (e.resource_type)
                                @if let Some(id) = &e.resource_id { " " code.id { (id) } }
                                @if let Some(label) = &e.context.label { br; span.label { (label) } }
                            }
                            td {
                                (status_badge(e.scim_status))
                                @if let Some(c) = e.context.client_status {
                                    " " span.muted title="the client's deadline passed; the operation went on to this outcome" { "(client saw " (c) ")" }
                                }
                                @if let Some(d) = &e.context.detail {
                                    br;
                                    span.detail {
                                        @if let Some(t) = &e.context.scim_type { code { (t) } ": " }
                                        (d)
                                    }
                                }
                                @if let Some(r) = &e.context.request_id { br; span.muted { "request " code { (r) } } }
                            }
                            td { (backend_calls(e)) }
                            td.num { (e.duration_ms) }
                        }
                    }
                }
            }
        }
    }
}

/// The overview: sync health at a glance and the latest audit entries.
pub fn overview(
    csrf: &str,
    state: &SyncState,
    recent: &[AuditEntry],
    hours: &[HourBucket; 24],
    plans: &[PlanRecord],
    info: &GatewayInfo<'_>,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        "Overview",
        Nav::Overview,
        Some(csrf),
        html! {
            h1 { "Provisioning status" }
            section.cards {
                div.card.stat #last-synced {
                    h2 { "Last synced" }
                    @match state.last_request {
                        Some(t) => {
                            p.big { (ago(t, now)) }
                            p.muted { time datetime=(t.to_rfc3339()) { (absolute(t)) } }
                        }
                        None => {
                            p.big { "never" }
                            p.muted { "no SCIM request has arrived yet" }
                        }
                    }
                }
                div.card.stat #users-managed {
                    h2 { "Users managed" }
                    p.big.count { (state.users_managed) }
                    p.muted { "provisioned through SCIM" }
                }
                div.card.stat #groups-managed {
                    h2 { "Groups managed" }
                    p.big.count { (state.groups_managed) }
                    p.muted { "provisioned through SCIM" }
                }
                div class=(if state.errors_24h > 0 { "card stat alert" } else { "card stat" }) id="errors-24h" {
                    h2 { "Errors, 24 h" }
                    p.big.count { (state.errors_24h) }
                    p.muted { "answered 5xx (gateway or legacy app failing)" }
                }
                div class=(if state.rejected_24h > 0 { "card stat warning" } else { "card stat" }) id="rejected-24h" {
                    h2 { "Rejected, 24 h" }
                    p.big.count { (state.rejected_24h) }
                    p.muted { "answered 4xx (invalid, conflicting, unknown)" }
                }
            }
            (activity_chart(hours))
            (plans_card(csrf, plans, now))
            section.card {
                h2 { "Recent activity" }
                (audit_table(recent, now, "No SCIM writes recorded yet."))
                p { a href="/audit" { "Whole audit log" } " · " a href="/failures" { "Failing operations" } }
            }
            section.card {
                h2 { "Gateway" }
                dl.facts {
                    dt { "SCIM base URL" } dd { code { (info.scim_url) } }
                    dt { "Profile" } dd { (info.profile) }
                    dt { "Store" } dd { (info.store) }
                    dt { "Configuration" } dd {
                        @match info.last_reload {
                            None => { "as loaded at start" }
                            Some(r) => @match &r.outcome {
                                Ok(restart) => {
                                    "reloaded " (ago(r.at, now)) " (" (r.trigger.as_str()) ")"
                                    @for s in restart {
                                        br; span.warn { "needs a restart: " (s) }
                                    }
                                }
                                Err(problems) => {
                                    strong.bad { "reload refused " (ago(r.at, now)) " (" (r.trigger.as_str()) "); the running configuration stays:" }
                                    ul { @for p in problems { li { code { (p) } } } }
                                }
                            }
                        }
                    }
                }
                @if info.reloadable {
                    form method="post" action="/reload" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Reload configuration" }
                    }
                }
            }
        },
    )
}

/// One hour of the overview's chart: audited requests by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourBucket {
    /// Answered 2xx/3xx.
    pub ok: u32,
    /// Answered 4xx.
    pub rejected: u32,
    /// Answered 5xx.
    pub errors: u32,
}

/// The last 24 hours of audited requests (every write, and every read that failed with a
/// 5xx), hour by hour, oldest first; the last bucket is the hour ending `now`.
pub fn hourly(activity: &[(DateTime<Utc>, u16)], now: DateTime<Utc>) -> [HourBucket; 24] {
    let mut out = [HourBucket::default(); 24];
    for (t, status) in activity {
        let age = (now - *t).num_minutes();
        if !(0..24 * 60).contains(&age) {
            continue;
        }
        let i = 23 - usize::try_from(age / 60).unwrap_or(0).min(23);
        let b = &mut out[i];
        match status {
            500.. => b.errors += 1,
            400..=499 => b.rejected += 1,
            _ => b.ok += 1,
        }
    }
    out
}

/// The 24-hour chart: one stacked bar per hour (ok, rejected, errors), inline SVG styled by
/// the page's stylesheet (no script, nothing loaded from elsewhere), with the counts as text
/// for screen readers and hover titles.
fn activity_chart(hours: &[HourBucket; 24]) -> Markup {
    const W: u32 = 24 * 14;
    const H: u32 = 80;
    let max = hours
        .iter()
        .map(|b| b.ok + b.rejected + b.errors)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |n: u32| (u64::from(n) * u64::from(H) / u64::from(max)) as u32;
    let (total, errors, rejected) = hours.iter().fold((0, 0, 0), |(t, e, r), b| {
        (
            t + b.ok + b.rejected + b.errors,
            e + b.errors,
            r + b.rejected,
        )
    });
    html! {
        section.card #activity {
            h2 { "Requests, last 24 h" }
            p.muted {
                (total) " audited requests (every write, and reads that failed): "
                (errors) " errors (5xx), " (rejected) " rejected (4xx). One bar per hour, the newest on the right."
            }
            svg.chart viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) role="img"
                aria-label={ (total) " requests in the last 24 hours, " (errors) " errors" } {
                @for (i, b) in hours.iter().enumerate() {
                    @let x = u32::try_from(i).unwrap_or(0) * 14 + 1;
                    @let (ok_h, rej_h, err_h) = (scale(b.ok), scale(b.rejected), scale(b.errors));
                    g {
                        title { (23 - i) " h ago: " (b.ok) " ok, " (b.rejected) " rejected, " (b.errors) " errors" }
                        rect.ok x=(x) y=(H - ok_h) width="12" height=(ok_h) {}
                        rect.rejected x=(x) y=(H - ok_h - rej_h) width="12" height=(rej_h) {}
                        rect.error x=(x) y=(H - ok_h - rej_h - err_h) width="12" height=(err_h) {}
                    }
                }
            }
        }
    }
}

/// Multi-call operations not yet complete: running or waiting for a retry (pending), or out
/// of attempts (failed), with "retry now" and "abandon".
fn plans_card(csrf: &str, plans: &[PlanRecord], now: DateTime<Utc>) -> Markup {
    let now_ms = now.timestamp_millis();
    let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(now);
    html! {
        section.card #plans {
            h2 { "Pending and failed operations" }
            @if plans.is_empty() {
                p.muted.empty { "Every multi-step operation has completed." }
            } @else {
                table.plans {
                    thead { tr {
                        th { "Resource" } th { "Operation" } th { "State" } th.num { "Step" }
                        th.num { "Attempts" } th { "Last error" } th { "Next retry" } th { "" }
                    } }
                    tbody {
                        @for p in plans {
                            tr class={ "plan-" (p.state.as_str()) } data-plan=(p.id) {
                                td {
                                    (p.resource_type) " " code.id { (p.resource_id) }
                                    @if let Some(l) = &p.label { br; span.label { (l) } }
                                }
                                td { code { (p.kind) } }
                                td {
                                    @if p.running(now_ms) { span class="badge warn" { "running" } }
                                    @else if p.state == PlanState::Failed { span class="badge bad" { "failed" } }
                                    @else { span class="badge warn" { "pending" } }
                                }
                                td.num { ((p.done + 1).min(p.step_count())) " of " (p.step_count()) }
                                td.num { (p.attempts) }
                                td { @if let Some(e) = &p.last_error { span.detail { (e) } } }
                                td {
                                    @if p.state == PlanState::Pending && !p.running(now_ms) {
                                        time datetime=(at(p.next_at).to_rfc3339()) title=(absolute(at(p.next_at))) {
                                            (ahead(at(p.next_at), now))
                                        }
                                    } @else if p.needs_caller {
                                        span.muted { "on the client's retry" }
                                    } @else { span.muted { "—" } }
                                }
                                td.actions {
                                    // Calls that need the client's own credential can only be
                                    // made within its retry: the worker cannot run them.
                                    @if !p.needs_caller {
                                        form.inline method="post" action={ "/plans/" (p.id) "/retry" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button type="submit" { "Retry now" }
                                        }
                                    }
                                    form.inline method="post" action={ "/plans/" (p.id) "/abandon" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.danger type="submit" { "Abandon" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The audit log with its filter form.
pub fn audit(csrf: &str, form: &AuditForm, entries: &[AuditEntry], now: DateTime<Utc>) -> Markup {
    let mut ops: Vec<&str> = OPERATIONS.to_vec();
    if !form.operation.is_empty() && !ops.contains(&form.operation.as_str()) {
        ops.push(&form.operation);
    }
    layout(
        "Audit log",
        Nav::Audit,
        Some(csrf),
        html! {
            h1 { "Audit log" }
            form.filters.card method="get" action="/audit" {
                label { "Operation"
                    select name="operation" {
                        option value="" { "any" }
                        @for op in &ops {
                            option value=(op) selected[*op == form.operation] { (op) }
                        }
                    }
                }
                label { "Status"
                    select name="status" {
                        option value="" { "any" }
                        @for (v, l) in [("2xx", "2xx success"), ("4xx", "4xx rejected"), ("5xx", "5xx error")] {
                            option value=(v) selected[v == form.status] { (l) }
                        }
                    }
                }
                label { "Range"
                    select name="range" {
                        @for (v, l) in RANGES {
                            option value=(v) selected[v == form.range] { (l) }
                        }
                    }
                }
                label { "From (UTC)" input type="datetime-local" name="from" value=(form.from); }
                label { "To (UTC)" input type="datetime-local" name="to" value=(form.to); }
                button.primary type="submit" { "Filter" }
                a.button href="/audit" { "Reset" }
            }
            section.card {
                p.muted { (entries.len()) " entries, newest first (at most 200)" }
                (audit_table(entries, now, "No entries match these filters."))
            }
        },
    )
}

/// Failures in a range, grouped by what failed, then the latest ones.
pub fn failures(
    csrf: &str,
    range: &str,
    groups: &[FailureGroup],
    recent: &[AuditEntry],
    now: DateTime<Utc>,
) -> Markup {
    layout(
        "Failing operations",
        Nav::Failures,
        Some(csrf),
        html! {
            h1 { "Failing operations" }
            form.filters.card method="get" action="/failures" {
                label { "Range"
                    select name="range" {
                        @for (v, l) in RANGES {
                            option value=(v) selected[v == range] { (l) }
                        }
                    }
                }
                button.primary type="submit" { "Show" }
            }
            section.card {
                h2 { "By operation and status" }
                @if groups.is_empty() {
                    p.muted.empty { "No failed SCIM requests in this range." }
                } @else {
                    table.failures {
                        thead { tr {
                            th { "Operation" } th { "Resource" } th { "Status" } th.num { "Count" }
                            th { "Last seen" } th { "Last caller" } th { "Last legacy calls" }
                        } }
                        tbody {
                            @for g in groups {
                                tr class={ "row-" (status_class(g.status)) } {
                                    td { code { (g.operation) } }
                                    td { (g.resource_type) }
                                    td { (status_badge(g.status)) }
                                    td.num { (g.count) }
                                    td { (when(g.last.time, now)) }
                                    td { (g.last.actor) }
                                    td { (backend_calls(&g.last)) }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Latest failures" }
                (audit_table(recent, now, "Nothing failed."))
            }
        },
    )
}

fn key_state(k: &KeyInfo, now: DateTime<Utc>) -> Markup {
    html! {
        @if let Some(r) = k.revoked {
            span class="badge bad" { "revoked" } " " (when(r, now))
        } @else if k.expires.is_some_and(|e| e <= now) {
            span class="badge warn" { "expired" }
        } @else {
            span class="badge ok" { "active" }
        }
    }
}

/// The API keys: create form, the just-created key (once), the list with revoke buttons.
pub fn keys(
    csrf: &str,
    keys: &[KeyInfo],
    static_tokens: usize,
    created: Option<&NewKey>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        "API keys",
        Nav::Keys,
        Some(csrf),
        html! {
            h1 { "API keys" }
            p.muted { "Bearer tokens for the SCIM endpoint (Entra's Secret Token). Only a hash is stored: a key is shown once, when it is created." }
            @if let Some(new) = created {
                dialog #new-key-dialog.modal open data-modal {
                    h2 { "Key created: " (new.info.name) }
                    p { strong { "Copy it now." } " It is shown only this once and cannot be recovered; if it is lost, revoke it and create another." }
                    div.secret {
                        code #new-key-value { (new.key) }
                        button type="button" data-copy="new-key-value" { "Copy" }
                    }
                    p.muted {
                        "In Entra: Provisioning → Admin Credentials → Secret Token. Expires: "
                        @match new.info.expires { Some(e) => (absolute(e)), None => "never" }
                    }
                    form method="dialog" { button.primary #new-key-done type="submit" data-close { "Done" } }
                }
            }
            section.card {
                h2 { "Create a key" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form.inline #create-key method="post" action="/keys" {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Name"
                        input #key-name type="text" name="name" required maxlength="100" placeholder="Entra Sync";
                    }
                    label { "Expires after"
                        select #key-expires name="expires" {
                            @for (v, l) in LIFETIMES {
                                option value=(v) selected[v == "90d"] { (l) }
                            }
                        }
                    }
                    button.primary #create-key-submit type="submit" { "Create key" }
                }
            }
            section.card #static-tokens {
                h2 { "Static tokens" }
                @if static_tokens == 0 {
                    p.muted.empty { "None: only the keys below (and Basic credentials, if the profile uses them) are accepted." }
                } @else {
                    p {
                        (static_tokens) " static bearer token" @if static_tokens != 1 { "s" } " in use, from "
                        code { "[auth] tokens" } " or " code { "SCIMGATE_AUTH__TOKENS" }
                        ": the audit log names their callers "
                        @for i in 1..=static_tokens {
                            code { "token #" (i) } @if i < static_tokens { ", " }
                        }
                        ". Their values are never shown; to retire one, remove it from the configuration and restart."
                    }
                }
            }
            section.card {
                h2 { "Keys" }
                @if keys.is_empty() {
                    p.muted.empty { "No keys yet." }
                } @else {
                    table.keys {
                        thead { tr {
                            th { "Name" } th { "Id" } th { "Created" } th { "Expires" }
                            th { "Last used" } th { "State" } th {}
                        } }
                        tbody {
                            @for k in keys {
                                tr data-key-id=(k.id.0) {
                                    td.name { (k.name) }
                                    td { code { (k.id.0) } }
                                    td { (when(k.created, now)) }
                                    td { @match k.expires { Some(e) => span title=(absolute(e)) { (e.format("%Y-%m-%d")) }, None => span.muted { "never" } } }
                                    td { (when_opt(k.last_used, now, "never")) }
                                    td.state { (key_state(k, now)) }
                                    td {
                                        @if k.revoked.is_none() {
                                            a.button.danger href={ "/keys/" (k.id.0) "/revoke" } data-dialog={ "revoke-" (k.id.0) } { "Revoke…" }
                                            dialog.modal id={ "revoke-" (k.id.0) } {
                                                (revoke_form(csrf, k))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn revoke_form(csrf: &str, k: &KeyInfo) -> Markup {
    html! {
        h2 { "Revoke “" (k.name) "”?" }
        p { "SCIM calls with this key are refused (401) from now on. This cannot be undone." }
        form method="post" action={ "/keys/" (k.id.0) "/revoke" } {
            input type="hidden" name="csrf" value=(csrf);
            button.danger.confirm-revoke type="submit" { "Revoke key" }
            " "
            a.button href="/keys" data-close { "Cancel" }
        }
    }
}

/// The confirmation page for revoking a key (what the revoke button leads to without
/// JavaScript).
pub fn revoke_confirm(csrf: &str, key: &KeyInfo) -> Markup {
    layout(
        "Revoke key",
        Nav::Keys,
        Some(csrf),
        html! { section.card.narrow { (revoke_form(csrf, key)) } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - Duration::seconds(42), now), "42 s ago");
        assert_eq!(ago(now - Duration::minutes(3), now), "3 min ago");
        assert_eq!(ago(now - Duration::hours(5), now), "5 h ago");
        assert_eq!(ago(now - Duration::days(2), now), "2 d ago");
        assert_eq!(ago(now + Duration::minutes(1), now), "in the future");
        assert_eq!(ahead(now + Duration::seconds(40), now), "in 40 s");
        assert_eq!(ahead(now + Duration::minutes(3), now), "in 3 min");
        assert_eq!(ahead(now - Duration::seconds(1), now), "now");
    }

    #[test]
    fn the_chart_counts_each_hour_by_outcome() {
        let now = Utc::now();
        let at = |m: i64| now - Duration::minutes(m);
        let activity = [
            (at(1), 201),
            (at(2), 200),
            (at(30), 400),
            (at(61), 503),
            (at(23 * 60 + 59), 204),
            (at(24 * 60 + 1), 500),
            (now + Duration::minutes(1), 500),
        ];
        let h = hourly(&activity, now);
        assert_eq!(
            h[23],
            HourBucket {
                ok: 2,
                rejected: 1,
                errors: 0
            }
        );
        assert_eq!(
            h[22],
            HourBucket {
                ok: 0,
                rejected: 0,
                errors: 1
            }
        );
        assert_eq!(
            h[0],
            HourBucket {
                ok: 1,
                rejected: 0,
                errors: 0
            }
        );
        let counted: u32 = h.iter().map(|b| b.ok + b.rejected + b.errors).sum();
        assert_eq!(
            counted, 5,
            "older than a day and future entries are left out"
        );
        let svg = activity_chart(&h).into_string();
        assert_eq!(svg.matches("<rect").count(), 72);
        assert!(svg.contains("5 audited requests"), "{svg}");
    }

    #[test]
    fn interpolated_values_are_escaped() {
        let entry = AuditEntry {
            time: Utc::now(),
            actor: "<script>alert(1)</script>".into(),
            operation: "create".into(),
            resource_type: "User".into(),
            resource_id: Some("\"><img src=x>".into()),
            scim_status: 201,
            backend_calls: vec![],
            duration_ms: 3,
            context: Default::default(),
        };
        let page = audit("t", &AuditForm::default(), &[entry], Utc::now()).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("\"><img"));
    }
}
