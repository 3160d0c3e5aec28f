//! The gateway's Prometheus metrics, served as text on the admin listener's `/metrics`.
//!
//! One [`Metrics`] per running gateway (not a process-wide global, so two gateways in one
//! process — the tests — count separately), shared by `Arc` with the places that observe:
//! the SCIM edge layer (requests), the authenticator (store latency of key checks), the
//! backend client (legacy calls) and the script set (script errors).
//!
//! Every label value is a closed enum or a status code, never a raw path or id, so the number
//! of series is bounded whatever callers send; recording is a map lookup on a read lock plus
//! an atomic add (counters) or a short mutex (histograms), with no allocation once a series
//! exists.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Declares a closed set of label values: a `Copy` enum whose variants encode as the given
/// strings, so recording a label never formats or allocates.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The label value as exposed.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum!(
    /// The SCIM resource a request addressed, as a bounded label.
    ResourceLabel {
        /// `/Users…`
        User => "User",
        /// `/Groups…`
        Group => "Group",
        /// `/ServiceProviderConfig`, `/Schemas…`, `/ResourceTypes…`
        Discovery => "discovery",
        /// Anything else (unknown endpoints, `/Bulk`, `/Me`, paths outside the SCIM root).
        Other => "other",
    }
);

label_enum!(
    /// What a SCIM request asked for, as a bounded label.
    OperationLabel {
        /// `GET /Users/{id}`
        Get => "get",
        /// `GET /Users`
        List => "list",
        /// `POST /Users/.search` (or `/.search`)
        Search => "search",
        /// `POST /Users`
        Create => "create",
        /// `PUT /Users/{id}`
        Replace => "replace",
        /// `PATCH /Users/{id}`
        Patch => "patch",
        /// `DELETE /Users/{id}`
        Delete => "delete",
        /// `GET` of a discovery document
        Discovery => "discovery",
        /// Any other method or shape.
        Other => "other",
    }
);

/// Resource and operation of a SCIM request path, worked out without allocating.
///
/// `path` is the request path, `base` the SCIM base path (`/scim/v2`, or empty). Runs at the
/// edge of every SCIM request.
pub fn classify(method: &http::Method, path: &str, base: &str) -> (ResourceLabel, OperationLabel) {
    let Some(rest) = path.strip_prefix(base) else {
        return (ResourceLabel::Other, OperationLabel::Other);
    };
    let rest = rest.trim_start_matches('/').trim_end_matches('/');
    let mut parts = rest.splitn(3, '/');
    let endpoint = parts.next().unwrap_or("");
    let second = parts.next();
    let third = parts.next();
    let resource = match endpoint {
        "Users" => ResourceLabel::User,
        "Groups" => ResourceLabel::Group,
        "ServiceProviderConfig" | "Schemas" | "ResourceTypes" => {
            let op = if *method == http::Method::GET {
                OperationLabel::Discovery
            } else {
                OperationLabel::Other
            };
            return (ResourceLabel::Discovery, op);
        }
        ".search" if *method == http::Method::POST && second.is_none() => {
            return (ResourceLabel::Other, OperationLabel::Search);
        }
        _ => return (ResourceLabel::Other, OperationLabel::Other),
    };
    use http::Method as M;
    let op = match (second, third) {
        (None, None) if *method == M::GET => OperationLabel::List,
        (None, None) if *method == M::POST => OperationLabel::Create,
        (Some(".search"), None) if *method == M::POST => OperationLabel::Search,
        (Some(_), None) if *method == M::GET => OperationLabel::Get,
        (Some(_), None) if *method == M::PUT => OperationLabel::Replace,
        (Some(_), None) if *method == M::PATCH => OperationLabel::Patch,
        (Some(_), None) if *method == M::DELETE => OperationLabel::Delete,
        _ => OperationLabel::Other,
    };
    (resource, op)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    resource: ResourceLabel,
    operation: OperationLabel,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    resource: ResourceLabel,
    operation: OperationLabel,
}

label_enum!(
    /// How a call to the legacy API ended: its status class, or why no status came.
    BackendOutcome {
        /// A 1xx answer (unexpected; counted, not hidden).
        Informational => "1xx",
        /// 2xx.
        Success => "2xx",
        /// 3xx.
        Redirect => "3xx",
        /// 4xx.
        ClientError => "4xx",
        /// 5xx.
        ServerError => "5xx",
        /// No connection could be made.
        Connect => "connect",
        /// The call did not finish within `backend.timeout_ms`.
        Timeout => "timeout",
        /// The connection failed mid-exchange.
        Transport => "transport",
        /// The answer was not JSON or was too large.
        InvalidBody => "invalid_body",
        /// A paging loop went wrong (no progress, too many pages).
        Paging => "paging",
        /// The request could not be built (a gateway or script bug).
        Request => "request",
    }
);

impl BackendOutcome {
    /// The outcome class of an HTTP status.
    pub fn of_status(status: u16) -> BackendOutcome {
        match status {
            100..=199 => BackendOutcome::Informational,
            200..=299 => BackendOutcome::Success,
            300..=399 => BackendOutcome::Redirect,
            400..=499 => BackendOutcome::ClientError,
            _ => BackendOutcome::ServerError,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    outcome: BackendOutcome,
}

label_enum!(
    /// Why a mapping script call failed.
    ScriptErrorKind {
        /// A bug: runtime error, exceeded limit, missing function, result of the wrong shape.
        Error => "error",
        /// The script refused the input on purpose with `fail(…)` (a 400/409 to the client).
        Rejected => "rejected",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ScriptLabels {
    kind: ScriptErrorKind,
}

label_enum!(
    /// A timed store operation.
    StoreOp {
        /// API-key check on a SCIM request.
        VerifyKey => "verify_key",
        /// HTTP Basic password check on a SCIM request.
        VerifyPassword => "verify_password",
        /// Writing one audit entry.
        AuditAppend => "audit_append",
        /// Reading the audit log (admin page).
        AuditQuery => "audit_query",
        /// Reading the sync status (admin page, `/metrics`).
        SyncStatus => "sync_status",
        /// Recording the time of the last SCIM request.
        RecordRequest => "record_request",
        /// Key management from the admin page (create, list, revoke).
        Keys => "keys",
        /// The readiness probe's trivial query.
        Ping => "ping",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    operation: StoreOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreErrorLabels {
    operation: StoreOp,
}

/// Latency buckets in seconds, 1 ms to 10 s: SCIM calls that answer from the gateway take
/// well under a millisecond, a slow legacy call several seconds.
fn latency_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// Store latency buckets, 100 µs to 5 s (an in-memory SQLite read takes tens of µs).
fn store_buckets() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
    ])
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the gateway records, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    backend_calls: Family<BackendLabels, Counter>,
    backend_seconds: Histogram,
    script_errors: Family<ScriptLabels, Counter>,
    store_seconds: HistogramFamily<StoreLabels>,
    store_errors: Family<StoreErrorLabels, Counter>,
    users_managed: Gauge,
    groups_managed: Gauge,
    last_request: Gauge<f64, AtomicU64>,
    plans_pending: Gauge,
    plans_failed: Gauge,
    plan_steps: Family<PlanStepLabels, Counter>,
    script_reloads: Family<ReloadLabels, Counter>,
    config_reloads: Family<ReloadLabels, Counter>,
}

label_enum!(
    /// How a reload of the mapping scripts ended.
    ReloadOutcome {
        /// The new scripts are running.
        Ok => "ok",
        /// They failed to compile or to pass startup's checks; the old ones keep running.
        Refused => "refused",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    outcome: ReloadOutcome,
}

label_enum!(
    /// How one step of a durable plan ended.
    PlanStepOutcome {
        /// The legacy app accepted it.
        Ok => "ok",
        /// A `missing_ok` step whose record was already gone (404).
        Missing => "missing",
        /// It failed; the plan stays pending (or fails for good once its attempts are spent).
        Failed => "failed",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PlanStepLabels {
    outcome: PlanStepOutcome,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `scimgate_` prefix; runs once per gateway start.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scimgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "scim_requests",
            "SCIM requests answered, by resource type, operation and HTTP status",
            requests.clone(),
        );
        let request_seconds: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_buckets);
        registry.register_with_unit(
            "scim_request_duration",
            "Time from receiving a SCIM request to its response, legacy calls included",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let backend_calls = Family::<BackendLabels, Counter>::default();
        registry.register(
            "backend_requests",
            "Calls to the legacy API, by outcome (status class or failure kind)",
            backend_calls.clone(),
        );
        let backend_seconds = latency_buckets();
        registry.register_with_unit(
            "backend_request_duration",
            "Time of one call to the legacy API (both attempts of a retried GET), body included",
            Unit::Seconds,
            backend_seconds.clone(),
        );
        let script_errors = Family::<ScriptLabels, Counter>::default();
        registry.register(
            "script_errors",
            "Failed mapping script calls: error = a bug in the script, rejected = fail(...)",
            script_errors.clone(),
        );
        let store_seconds: HistogramFamily<StoreLabels> =
            Family::new_with_constructor(store_buckets);
        registry.register_with_unit(
            "store_operation_duration",
            "Time of store operations (key checks, audit writes, status reads)",
            Unit::Seconds,
            store_seconds.clone(),
        );
        let store_errors = Family::<StoreErrorLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Store operations that failed",
            store_errors.clone(),
        );
        let users_managed = Gauge::default();
        registry.register(
            "users_managed",
            "Users managed through SCIM, as the store counts them (read at scrape time)",
            users_managed.clone(),
        );
        let groups_managed = Gauge::default();
        registry.register(
            "groups_managed",
            "Groups managed through SCIM, as the store counts them (read at scrape time)",
            groups_managed.clone(),
        );
        let last_request = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_scim_request_timestamp_seconds",
            "Unix time of the last SCIM request the store recorded; 0 if none",
            last_request.clone(),
        );
        let plans_pending = Gauge::default();
        registry.register(
            "plans_pending",
            "Durable plans not yet complete (running or waiting for a retry), read at scrape time",
            plans_pending.clone(),
        );
        let plans_failed = Gauge::default();
        registry.register(
            "plans_failed",
            "Durable plans whose retries are spent, waiting for an operator, read at scrape time",
            plans_failed.clone(),
        );
        let plan_steps = Family::<PlanStepLabels, Counter>::default();
        registry.register(
            "plan_steps",
            "Steps of durable plans run, by outcome (ok, missing, failed)",
            plan_steps.clone(),
        );
        let script_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "script_reloads",
            "Reloads of the mapping scripts (SIGHUP), by outcome (ok, refused)",
            script_reloads.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Reloads of the configuration (profile, scripts, auth; on SIGHUP, a file change or \
             the admin page), by outcome (ok, refused)",
            config_reloads.clone(),
        );
        registry.register(
            "build",
            "The running scimgate version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            backend_calls,
            backend_seconds,
            script_errors,
            store_seconds,
            store_errors,
            users_managed,
            groups_managed,
            last_request,
            plans_pending,
            plans_failed,
            plan_steps,
            script_reloads,
            config_reloads,
        }
    }

    /// Counts one reload of the whole configuration (scripts included, which are also
    /// counted in `script_reloads`).
    pub fn config_reload(&self, ok: bool) {
        let outcome = if ok {
            ReloadOutcome::Ok
        } else {
            ReloadOutcome::Refused
        };
        self.config_reloads
            .get_or_create(&ReloadLabels { outcome })
            .inc();
        self.script_reload(ok);
    }

    /// Counts one reload of the mapping scripts; runs after each SIGHUP.
    pub fn script_reload(&self, ok: bool) {
        let outcome = if ok {
            ReloadOutcome::Ok
        } else {
            ReloadOutcome::Refused
        };
        self.script_reloads
            .get_or_create(&ReloadLabels { outcome })
            .inc();
    }

    /// Counts one step of a durable plan; runs in the plan runner after each step.
    pub fn plan_step(&self, outcome: PlanStepOutcome) {
        self.plan_steps
            .get_or_create(&PlanStepLabels { outcome })
            .inc();
    }

    /// Sets the plan gauges from the store's counts; runs at scrape time.
    pub fn set_plan_counts(&self, counts: crate::store::PlanCounts) {
        self.plans_pending
            .set(i64::try_from(counts.pending).unwrap_or(i64::MAX));
        self.plans_failed
            .set(i64::try_from(counts.failed).unwrap_or(i64::MAX));
    }

    /// Records one answered SCIM request; runs in the edge layer after the response is built.
    pub fn observe_request(
        &self,
        resource: ResourceLabel,
        operation: OperationLabel,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                resource,
                operation,
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                resource,
                operation,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one call to the legacy API; runs in the backend client when the call ends.
    pub fn observe_backend(&self, outcome: BackendOutcome, elapsed: Duration) {
        self.backend_calls
            .get_or_create(&BackendLabels { outcome })
            .inc();
        self.backend_seconds.observe(elapsed.as_secs_f64());
    }

    /// Counts a failed script call; runs in the script set.
    pub fn script_error(&self, kind: ScriptErrorKind) {
        self.script_errors
            .get_or_create(&ScriptLabels { kind })
            .inc();
    }

    /// Records how long a store operation took and whether it failed.
    pub fn observe_store(&self, operation: StoreOp, elapsed: Duration, ok: bool) {
        self.store_seconds
            .get_or_create(&StoreLabels { operation })
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.store_errors
                .get_or_create(&StoreErrorLabels { operation })
                .inc();
        }
    }

    /// Times `fut`, a store operation, and records it under `operation`.
    pub async fn time_store<T, E>(
        &self,
        operation: StoreOp,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = std::time::Instant::now();
        let result = fut.await;
        self.observe_store(operation, started.elapsed(), result.is_ok());
        result
    }

    /// Sets the gauges read from the store's sync status; runs at scrape time.
    pub fn set_sync_state(&self, state: &crate::store::SyncState) {
        self.users_managed
            .set(i64::try_from(state.users_managed).unwrap_or(i64::MAX));
        self.groups_managed
            .set(i64::try_from(state.groups_managed).unwrap_or(i64::MAX));
        let last = state
            .last_request
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
        self.last_request.set(last);
    }

    /// The OpenMetrics text exposition of every metric (which Prometheus scrapes as text);
    /// runs on each `GET /metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn paths_classify_into_bounded_labels() {
        use OperationLabel as O;
        use ResourceLabel as R;
        let base = "/scim/v2";
        let cases = [
            (Method::GET, "/scim/v2/Users", R::User, O::List),
            (Method::POST, "/scim/v2/Users", R::User, O::Create),
            (Method::GET, "/scim/v2/Users/42", R::User, O::Get),
            (Method::PUT, "/scim/v2/Users/42", R::User, O::Replace),
            (Method::PATCH, "/scim/v2/Groups/7", R::Group, O::Patch),
            (Method::DELETE, "/scim/v2/Groups/7", R::Group, O::Delete),
            (Method::POST, "/scim/v2/Users/.search", R::User, O::Search),
            (Method::POST, "/scim/v2/.search", R::Other, O::Search),
            (
                Method::GET,
                "/scim/v2/Schemas/urn:x",
                R::Discovery,
                O::Discovery,
            ),
            (
                Method::GET,
                "/scim/v2/ServiceProviderConfig",
                R::Discovery,
                O::Discovery,
            ),
            (
                Method::POST,
                "/scim/v2/ResourceTypes",
                R::Discovery,
                O::Other,
            ),
            (Method::GET, "/scim/v2/Users/1/2", R::User, O::Other),
            (Method::HEAD, "/scim/v2/Users", R::User, O::Other),
            (Method::GET, "/scim/v2/Widgets/1", R::Other, O::Other),
            (Method::GET, "/elsewhere", R::Other, O::Other),
        ];
        for (m, p, r, o) in cases {
            assert_eq!(classify(&m, p, base), (r, o), "{m} {p}");
        }
        assert_eq!(classify(&Method::GET, "/Users/1", ""), (R::User, O::Get));
    }

    #[test]
    fn encoding_names_every_family_with_labels() {
        let m = Metrics::new();
        m.observe_request(
            ResourceLabel::User,
            OperationLabel::Create,
            201,
            Duration::from_millis(3),
        );
        m.observe_backend(BackendOutcome::of_status(503), Duration::from_millis(2));
        m.observe_backend(BackendOutcome::Connect, Duration::from_millis(1));
        m.script_error(ScriptErrorKind::Rejected);
        m.observe_store(StoreOp::VerifyKey, Duration::from_micros(50), false);
        let text = m.encode();
        for line in [
            r#"scimgate_scim_requests_total{resource="User",operation="create",status="201"} 1"#,
            r#"scimgate_scim_request_duration_seconds_count{resource="User",operation="create"} 1"#,
            r#"scimgate_backend_requests_total{outcome="5xx"} 1"#,
            r#"scimgate_backend_requests_total{outcome="connect"} 1"#,
            "scimgate_backend_request_duration_seconds_count 2",
            r#"scimgate_script_errors_total{kind="rejected"} 1"#,
            r#"scimgate_store_operation_duration_seconds_count{operation="verify_key"} 1"#,
            r#"scimgate_store_errors_total{operation="verify_key"} 1"#,
            "scimgate_users_managed 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
