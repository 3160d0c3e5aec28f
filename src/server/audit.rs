//! The audit trail and sync status of SCIM traffic.
//!
//! A layer between authentication and the routes records, for every SCIM write (and every read
//! the gateway failed with a 5xx), who sent it, what it was, the SCIM status, the legacy calls
//! it caused and how long it took. The entry is written before the response leaves, so a
//! write the client saw acknowledged always has its entry, also after a crash. A store failure
//! is logged and never turns the client's answer into an error: the legacy app has already
//! applied the change. Every authenticated request also moves "last synced"; that write is
//! throttled to one per second per process, since on a busy sync it would otherwise double
//! the store traffic for a value read by humans.
//!
//! Entries are written by one writer task per auditor with group commit: the entries (and the
//! id mappings their requests made, see [`defer_id_mapping`]) that arrive while a batch
//! commits go together in the next transaction, and each request waits for its own batch's
//! commit. On a busy sync that is one transaction for many requests instead of two per create
//! (measured: the SQLite work was about a third of a POST's CPU). While other audited writes
//! are under way, a batch waits up to [`COMMIT_WAIT`] for them to join it.

use super::AppState;
use super::auth::Principal;
use super::stage::{self, Inner, run};
use crate::backend::CallLog;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{AuditContext, AuditEntry, AuditLog, IdMap, IdMapping, Store, SyncStatus};
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;
use chrono::Utc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most entries one transaction carries.
const MAX_BATCH: usize = 128;

/// Longest a batch waits for writes still under way to join it (group commit). A batch
/// waits only while other audited writes are running, so a lone write never waits.
/// Measured: on a create-heavy sync most of a create's SQLite work was writing the same few
/// pages (the audit table, its index, the id map's indexes) once per commit.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

tokio::task_local! {
    static DEFERRED_MAPS: DeferredMaps;
}

/// Id mappings recorded while serving an audited write, written with its audit entry.
#[derive(Debug, Clone, Default)]
struct DeferredMaps(Arc<Mutex<Vec<IdMapping>>>);

impl DeferredMaps {
    fn take(&self) -> Vec<IdMapping> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Hands an id mapping made by the current request to the audit layer, which commits it in
/// the same transaction as the request's audit entry, before the response leaves. `Err`
/// gives it back when the current task is not an audited write (the caller writes it
/// itself).
pub fn defer_id_mapping(m: IdMapping) -> Result<(), IdMapping> {
    let mut m = Some(m);
    let _ = DEFERRED_MAPS.try_with(|d| {
        if let Some(x) = m.take() {
            d.0.lock().unwrap_or_else(PoisonError::into_inner).push(x);
        }
    });
    match m {
        None => Ok(()),
        Some(m) => Err(m),
    }
}

/// What the writer did with one request's entry and mappings.
#[derive(Debug, Default)]
struct Written {
    audit: Option<String>,
    maps: Option<String>,
}

/// One request's entry and mappings, waiting for the writer.
struct Pending {
    entry: AuditEntry,
    maps: Vec<IdMapping>,
    done: oneshot::Sender<Written>,
}

/// Writes one request's entry and mappings on their own (outside a runtime, or to find the
/// faulty item of a failed batch).
async fn write_one(
    store: &Store,
    metrics: Option<&Metrics>,
    entry: &AuditEntry,
    maps: &[IdMapping],
) -> Written {
    let mut w = Written::default();
    let append = store.append(entry);
    if let Err(e) = Auditor::timed(metrics, StoreOp::AuditAppend, append).await {
        w.audit = Some(e.to_string());
    }
    for m in maps {
        if let Err(e) = store.put(m).await {
            w.maps = Some(e.to_string());
        }
    }
    w
}

/// The group-commit writer: takes what is queued (up to [`MAX_BATCH`]), commits it in one
/// transaction, answers each request; if the batch fails, writes its items one by one so only
/// the faulty one fails. Ends when every sender is gone.
async fn write_batches(
    store: Store,
    metrics: Option<Arc<Metrics>>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    underway: Arc<AtomicUsize>,
) {
    let mut batch: Vec<Pending> = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Writes under way join this batch if they reach it within COMMIT_WAIT.
        let until = tokio::time::Instant::now() + COMMIT_WAIT;
        while batch.len() < MAX_BATCH && underway.load(Ordering::Acquire) > 0 {
            let room = MAX_BATCH - batch.len();
            let more = rx.recv_many(&mut batch, room);
            if !matches!(tokio::time::timeout_at(until, more).await, Ok(n) if n > 0) {
                break;
            }
        }
        // The entries and mappings move out of their requests (no copies); each request
        // keeps the range of its mappings and its answer.
        let mut entries: Vec<AuditEntry> = Vec::with_capacity(batch.len());
        let mut maps: Vec<IdMapping> = Vec::new();
        let mut owners = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            entries.push(p.entry);
            let first = maps.len();
            maps.extend(p.maps);
            owners.push((first..maps.len(), p.done));
        }
        let write = store.append_batch(&entries, &maps);
        let result = Auditor::timed(metrics.as_deref(), StoreOp::AuditAppend, write).await;
        match result {
            Ok(()) => {
                for (_, done) in owners {
                    let _ = done.send(Written::default());
                }
            }
            Err(e) if entries.len() == 1 && maps.is_empty() => {
                for (_, done) in owners {
                    let _ = done.send(Written {
                        audit: Some(e.to_string()),
                        maps: None,
                    });
                }
            }
            Err(_) => {
                for ((range, done), entry) in owners.into_iter().zip(&entries) {
                    let own = maps.get(range).unwrap_or_default();
                    let w = write_one(&store, metrics.as_deref(), entry, own).await;
                    let _ = done.send(w);
                }
            }
        }
    }
}

/// "Last synced" is written at most this often per process.
const LAST_REQUEST_EVERY_MS: i64 = 1000;

/// Writes audit entries and sync status to the store.
#[derive(Debug)]
pub struct Auditor {
    store: Store,
    metrics: Option<Arc<Metrics>>,
    /// Unix milliseconds of the last "last synced" write this process started.
    last_written: AtomicI64,
    /// The group-commit writer's queue (`None` outside a tokio runtime: direct writes).
    writer: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
    /// Id mappings whose write failed (the writes themselves succeeded).
    id_map_failures: AtomicU64,
    /// Audited writes running whose entry is not queued yet (see [`COMMIT_WAIT`]).
    underway: Arc<AtomicUsize>,
}

/// One audited write under way, until its entry is queued (or it is dropped).
struct Underway(Arc<AtomicUsize>);

impl Underway {
    fn enter(count: &Arc<AtomicUsize>) -> Underway {
        count.fetch_add(1, Ordering::AcqRel);
        Underway(Arc::clone(count))
    }
}

impl Drop for Underway {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Auditor {
    /// An auditor writing to `store`; one per listener, made at start.
    pub fn new(store: Store) -> Self {
        Auditor {
            store,
            metrics: None,
            last_written: AtomicI64::new(0),
            writer: Mutex::new(None),
            id_map_failures: AtomicU64::new(0),
            underway: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Also times each audit write and "last synced" write in `metrics` (set at start).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Id mappings made by audited writes whose store write failed (counted with the
    /// pipeline's own in the metrics).
    pub fn id_map_failures(&self) -> u64 {
        self.id_map_failures.load(Ordering::Relaxed)
    }

    /// Writes one request's entry and the id mappings it made: through the group-commit
    /// writer (started on first use) when running in a tokio runtime, directly otherwise.
    async fn write(&self, entry: AuditEntry, maps: Vec<IdMapping>) -> Written {
        let queued = {
            let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if w.is_none() && tokio::runtime::Handle::try_current().is_ok() {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(write_batches(
                    self.store.clone(),
                    self.metrics.clone(),
                    rx,
                    self.underway.clone(),
                ));
                *w = Some(tx);
            }
            let (done, answer) = oneshot::channel();
            let pending = Pending { entry, maps, done };
            match w.as_ref() {
                Some(tx) => match tx.send(pending) {
                    Ok(()) => Ok(answer),
                    Err(mpsc::error::SendError(p)) => Err(p),
                },
                None => Err(pending),
            }
        };
        match queued {
            Ok(answer) => answer.await.unwrap_or_else(|_| Written {
                audit: Some("the audit writer stopped".into()),
                maps: None,
            }),
            Err(p) => write_one(&self.store, self.metrics.as_deref(), &p.entry, &p.maps).await,
        }
    }

    /// Awaits a store write, timing it when metrics are set.
    async fn timed<T, E>(
        metrics: Option<&Metrics>,
        op: StoreOp,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match metrics {
            Some(m) => m.time_store(op, fut).await,
            None => fut.await,
        }
    }

    /// The store written to (the admin page and `scimgate audit` read it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Notes that an authenticated request arrived now; at most one store write per second,
    /// done in the background so the request never waits for it.
    fn note_request(&self) {
        let now = Utc::now();
        let ms = now.timestamp_millis();
        let last = self.last_written.load(Ordering::Relaxed);
        if ms - last < LAST_REQUEST_EVERY_MS
            || self
                .last_written
                .compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let write = store.record_request(now);
            if let Err(e) = Self::timed(metrics.as_deref(), StoreOp::RecordRequest, write).await {
                tracing::warn!(error = %e, "could not record the time of the last request");
            }
        });
    }
}

/// What a request does, as the audit log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `create`, `replace`, `patch`, `delete`, `get`, `list` or `search`.
    pub name: &'static str,
    /// The endpoint segment (`Users`); the resource type is resolved from it.
    pub endpoint: String,
    /// The resource id named in the path, if any.
    pub id: Option<String>,
}

impl Operation {
    /// Whether the operation changes state (always audited).
    pub fn is_write(&self) -> bool {
        matches!(self.name, "create" | "replace" | "patch" | "delete")
    }
}

/// Reads the SCIM operation from a method and a path relative to the SCIM base path;
/// `None` for discovery endpoints and anything that is not a resource operation.
pub fn classify(method: &Method, path: &str) -> Option<Operation> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let endpoint = (*segments.first()?).to_string();
    const DISCOVERY: [&str; 6] = [
        "ServiceProviderConfig",
        "Schemas",
        "ResourceTypes",
        "Bulk",
        "Me",
        ".search",
    ];
    if endpoint.is_empty() || DISCOVERY.iter().any(|d| d.eq_ignore_ascii_case(&endpoint)) {
        return None;
    }
    let (name, id) = match (segments.get(1).copied(), segments.len()) {
        (None, 1) => match *method {
            Method::GET => ("list", None),
            Method::POST => ("create", None),
            _ => return None,
        },
        (Some(".search"), 2) if *method == Method::POST => ("search", None),
        (Some(id), 2) if !id.is_empty() => {
            let name = match *method {
                Method::GET => "get",
                Method::PUT => "replace",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => return None,
            };
            (name, Some(id.to_string()))
        }
        _ => return None,
    };
    Some(Operation { name, endpoint, id })
}

/// How many legacy calls a SCIM request made (in its response's extensions, for the edge's
/// request log line).
#[derive(Debug, Clone, Copy)]
pub struct LegacyCalls(pub usize);

/// The audit stage (inside authentication): records the audit entry of each SCIM write and
/// each failed read, and notes the request for "last synced".
pub fn record<S: Inner>(state: super::Scoped<AppState>, req: Request, inner: S) -> stage::Pending {
    Box::pin(record_one(state, req, inner))
}

async fn record_one<S: Inner>(
    scoped: super::Scoped<AppState>,
    mut req: Request,
    inner: S,
) -> Response {
    let Some(rest) = scoped.rest(req.uri().path()) else {
        return run(inner, req).await;
    };
    let op = classify(req.method(), rest);
    let state = scoped.inner;
    let auditor = Arc::clone(&state.auditor);
    auditor.note_request();
    let Some(op) = op else {
        return run(inner, req).await;
    };
    // Taken as they are (no copies, no formatting): most reads write no entry. Only this
    // layer reads the principal.
    let actor = req.extensions_mut().remove::<Principal>();
    let request_id = req
        .extensions()
        .get::<super::RequestId>()
        .map(|r| Arc::clone(&r.0));
    let deadline = req.extensions().get::<super::ClientDeadline>().cloned();
    // The peer, or the client a trusted proxy forwarded (the edge put it here).
    let client_address = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let time = Utc::now();
    let started = Instant::now();
    let calls = CallLog::default();
    // The operation's own bound lives here, inside the audit, so an operation cut off still
    // gets its entry: a write may run on after its client's deadline (the edge answered 504),
    // a read ends at the client's deadline.
    let bound = if op.is_write() {
        state.limits.operation_timeout
    } else {
        state.limits.request_timeout
    };
    let maps = DeferredMaps::default();
    let underway = op.is_write().then(|| Underway::enter(&auditor.underway));
    let run = DEFERRED_MAPS.scope(maps.clone(), calls.scope(run(inner, req)));
    let resp = match tokio::time::timeout(bound, run).await {
        Ok(r) => r,
        Err(_) => {
            if op.is_write() {
                tracing::error!(
                    ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                    "operation cut off at the operation timeout; its plan (if any) stays pending"
                );
            }
            super::timeout_response(bound, false)
        }
    };
    let mut resp = resp;
    resp.extensions_mut().insert(LegacyCalls(calls.len()));
    let status = resp.status().as_u16();
    let made = maps.take();
    if !op.is_write() && status < 500 && made.is_empty() {
        return resp;
    }
    let resource_type =
        super::routes::resource_type(&state, &op.endpoint).unwrap_or_else(|_| op.endpoint.clone());
    let resource_id = op.id.clone().or_else(|| created_id(&resp));
    let error = resp.extensions().get::<crate::scim::ScimError>();
    let entry = AuditEntry {
        time,
        actor: actor.map_or_else(|| "unknown".to_string(), |p| p.name),
        operation: op.name.to_string(),
        resource_type,
        resource_id,
        scim_status: status,
        backend_calls: calls.take(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        context: AuditContext {
            request_id: request_id.map(|r| r.to_string()),
            scim_type: error
                .and_then(|e| e.scim_type)
                .map(|t| t.as_str().to_string()),
            detail: error.map(|e| e.detail.clone()),
            label: calls.label(),
            client_status: deadline
                .filter(|d| d.passed() && status != 504)
                .map(|_| 504),
            client_address: client_address.map(|ip| ip.to_string()),
        },
    };
    drop(underway);
    // What the error line names; the entry itself goes to the writer.
    let (resource_type, resource_id) = (entry.resource_type.clone(), entry.resource_id.clone());
    let written = auditor.write(entry, made.clone()).await;
    if let Some(e) = written.audit {
        tracing::error!(
            error = %e,
            operation = %op.name,
            resource_type = %resource_type,
            resource_id = ?resource_id,
            status,
            "could not write the audit entry"
        );
    }
    if let Some(e) = written.maps {
        auditor.id_map_failures.fetch_add(1, Ordering::Relaxed);
        for m in &made {
            tracing::error!(
                resource_type = %m.resource_type, scim_id = %m.scim_id.as_str(),
                legacy_id = %m.legacy_id.as_str(), error = %e,
                "id map: recording a created resource failed; the write itself succeeded"
            );
        }
    }
    resp
}

/// The id at the end of a create response's `Location`.
fn created_id(resp: &Response) -> Option<String> {
    let loc = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    let id = loc.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuditFilter, ExternalId, LegacyId, ScimId};

    fn entry(n: usize) -> AuditEntry {
        AuditEntry {
            time: Utc::now(),
            actor: "test".into(),
            operation: "create".into(),
            resource_type: "User".into(),
            resource_id: Some(n.to_string()),
            scim_status: 201,
            backend_calls: Vec::new(),
            duration_ms: 1,
            context: AuditContext::default(),
        }
    }

    fn mapping(scim: usize, external: &str) -> IdMapping {
        IdMapping {
            resource_type: "User".into(),
            scim_id: ScimId::from(scim.to_string().as_str()),
            legacy_id: LegacyId::from(scim.to_string().as_str()),
            external_id: Some(ExternalId::from(external)),
        }
    }

    /// Concurrent writes share transactions (group commit) and each gets its own answer:
    /// every entry and mapping lands, and a mapping that breaks a uniqueness rule fails
    /// alone (its entry is still written; the rest of its batch is not lost).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_writes_everything_and_isolates_a_bad_mapping() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let auditor = Arc::new(Auditor::new(store.clone()));
        let mut tasks = Vec::new();
        for n in 0..60 {
            let auditor = auditor.clone();
            // Request 59 claims request 0's externalId.
            let external = if n == 59 {
                "ext-0".to_string()
            } else {
                format!("ext-{n}")
            };
            tasks.push(tokio::spawn(async move {
                if n == 59 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                auditor.write(entry(n), vec![mapping(n, &external)]).await
            }));
        }
        let mut failed_maps = Vec::new();
        for (n, t) in tasks.into_iter().enumerate() {
            let w = t.await.unwrap();
            assert!(w.audit.is_none(), "entry {n}: {:?}", w.audit);
            if w.maps.is_some() {
                failed_maps.push(n);
            }
        }
        assert_eq!(failed_maps, vec![59]);
        let all = store
            .query(&AuditFilter {
                limit: 1000,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 60);
        for n in 0..59 {
            let m = store
                .by_scim_id("User", &ScimId::from(n.to_string().as_str()))
                .await
                .unwrap();
            assert!(m.is_some(), "mapping {n}");
        }
        assert!(
            store
                .by_scim_id("User", &ScimId::from("59"))
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Batches `auditor` committed so far (its metrics count each batch's write).
    fn batches(metrics: &Metrics) -> u64 {
        metrics
            .encode()
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"scimgate_store_operation_duration_seconds_count{operation="audit_append"} "#,
                )
            })
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Writes that are under way when a batch starts join it if they arrive within
    /// COMMIT_WAIT (group commit across requests that do not arrive together); a lone write
    /// is committed at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_waits_briefly_for_writes_under_way() {
        let dir = std::env::temp_dir().join(format!("scimgate-gc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.join("s.db").display()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let auditor = Arc::new(Auditor::new(store.clone()).with_metrics(metrics.clone()));

        // A lone write: one batch.
        assert!(auditor.write(entry(0), Vec::new()).await.audit.is_none());
        assert_eq!(batches(&metrics), 1);

        // Eight writes under way that finish 50 µs apart: one batch.
        let mut tasks = Vec::new();
        for n in 1..=8u64 {
            let auditor = auditor.clone();
            let underway = Underway::enter(&auditor.underway);
            tasks.push(tokio::spawn(async move {
                let until = Instant::now() + std::time::Duration::from_micros(50 * n);
                while Instant::now() < until {
                    tokio::task::yield_now().await;
                }
                drop(underway);
                auditor.write(entry(n as usize), Vec::new()).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().audit.is_none());
        }
        // One batch; two or three when a busy machine delays tasks past COMMIT_WAIT (three
        // seen once, with the test binaries of `cargo test` running side by side on two
        // cores). Committed as they come, the eight took five to eight.
        let eight = batches(&metrics) - 1;
        assert!(eight <= 3, "the eight writes took {eight} batches");
        assert_eq!(
            store
                .query(&AuditFilter {
                    limit: 100,
                    ..AuditFilter::default()
                })
                .await
                .unwrap()
                .len(),
            9
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Operation name, endpoint, id.
    type Want = Option<(&'static str, &'static str, Option<&'static str>)>;

    #[test]
    fn classifies_scim_operations() {
        let cases: [(Method, &str, Want); 13] = [
            (Method::POST, "/Users", Some(("create", "Users", None))),
            (Method::GET, "/Users", Some(("list", "Users", None))),
            (
                Method::POST,
                "/Groups/.search",
                Some(("search", "Groups", None)),
            ),
            (Method::GET, "/Users/42", Some(("get", "Users", Some("42")))),
            (
                Method::PUT,
                "/Users/42",
                Some(("replace", "Users", Some("42"))),
            ),
            (
                Method::PATCH,
                "/Groups/7/",
                Some(("patch", "Groups", Some("7"))),
            ),
            (
                Method::DELETE,
                "/Users/a%20b",
                Some(("delete", "Users", Some("a%20b"))),
            ),
            (Method::GET, "/Schemas", None),
            (Method::GET, "/ServiceProviderConfig", None),
            (Method::GET, "/ResourceTypes/User", None),
            (Method::POST, "/.search", None),
            (Method::DELETE, "/Users", None),
            (Method::GET, "/Users/1/extra", None),
        ];
        for (m, path, want) in cases {
            let got = classify(&m, path);
            let want = want.map(|(name, endpoint, id)| Operation {
                name,
                endpoint: endpoint.to_string(),
                id: id.map(str::to_string),
            });
            assert_eq!(got, want, "{m} {path}");
        }
        assert!(classify(&Method::PATCH, "/Users/1").unwrap().is_write());
        assert!(
            !classify(&Method::POST, "/Users/.search")
                .unwrap()
                .is_write()
        );
    }
}
