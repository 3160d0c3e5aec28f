//! The audit log: one entry per SCIM request, with the legacy calls it caused.

use super::{Store, StoreError, StoreResult, db_time, with_pool};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;

const INSERT_ENTRY: &str = "INSERT INTO audit_log (time, actor, operation, resource_type, \
     resource_id, scim_status, backend_calls, duration_ms, request_id, scim_type, detail, label, \
     client_status, client_address) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

fn calls_json(e: &AuditEntry) -> StoreResult<String> {
    serde_json::to_string(&e.backend_calls)
        .map_err(|err| StoreError::Internal(format!("audit encoding: {err}")))
}

/// Binds an entry's columns to [`INSERT_ENTRY`], for either dialect.
fn bind_entry<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    e: &'q AuditEntry,
    calls: String,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i32>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let c = &e.context;
    q.bind(db_time(e.time))
        .bind(e.actor.as_str())
        .bind(e.operation.as_str())
        .bind(e.resource_type.as_str())
        .bind(e.resource_id.as_ref())
        .bind(i32::from(e.scim_status))
        .bind(calls)
        .bind(i64::try_from(e.duration_ms).unwrap_or(i64::MAX))
        .bind(c.request_id.as_ref())
        .bind(c.scim_type.as_ref())
        .bind(c.detail.as_ref())
        .bind(c.label.as_ref())
        .bind(c.client_status.map(i32::from))
        .bind(c.client_address.as_ref())
}

/// The columns of [`INSERT_ENTRY`], for the batch insert.
const ENTRY_COLUMNS: &str = "INSERT INTO audit_log (time, actor, operation, resource_type, \
     resource_id, scim_status, backend_calls, duration_ms, request_id, scim_type, detail, label, \
     client_status, client_address) ";

impl Store {
    /// Writes several requests' audit entries and the id mappings they made in one
    /// transaction (group commit: the gateway's audit writer collects what arrives while the
    /// previous batch commits). All or nothing: on an error nothing of the batch is kept,
    /// and the caller writes the items one by one to find the one at fault.
    ///
    /// The entries go in one multi-row statement and the mappings in another: each statement
    /// is a round trip to the database (for SQLite, a hand-off to its worker thread and back),
    /// and one per item was about a third of a create's CPU time. On a SQLite file the whole
    /// transaction is one statement list on the writer's own connection (one hand-off).
    pub async fn append_batch(
        &self,
        entries: &[AuditEntry],
        maps: &[super::IdMapping],
    ) -> StoreResult<()> {
        let calls = entries
            .iter()
            .map(calls_json)
            .collect::<StoreResult<Vec<_>>>()?;
        // A later mapping of the same resource replaces an earlier one, as it would written
        // one after the other (one statement may not upsert a row twice).
        let mut latest: Vec<&super::IdMapping> = Vec::with_capacity(maps.len());
        for m in maps {
            latest.retain(|k| !(k.resource_type == m.resource_type && k.scim_id == m.scim_id));
            latest.push(m);
        }
        // The rows of both statements, pushed onto a query builder of either dialect.
        macro_rules! push_rows {
            ($q:expr, entries) => {
                $q.push(ENTRY_COLUMNS);
                $q.push_values(entries.iter().zip(&calls), |mut row, (e, calls)| {
                    let c = &e.context;
                    row.push_bind(db_time(e.time))
                        .push_bind(e.actor.as_str())
                        .push_bind(e.operation.as_str())
                        .push_bind(e.resource_type.as_str())
                        .push_bind(e.resource_id.as_ref())
                        .push_bind(i32::from(e.scim_status))
                        .push_bind(calls.as_str())
                        .push_bind(i64::try_from(e.duration_ms).unwrap_or(i64::MAX))
                        .push_bind(c.request_id.as_ref())
                        .push_bind(c.scim_type.as_ref())
                        .push_bind(c.detail.as_ref())
                        .push_bind(c.label.as_ref())
                        .push_bind(c.client_status.map(i32::from))
                        .push_bind(c.client_address.as_ref());
                });
            };
            ($q:expr, maps) => {
                $q.push(super::idmap::MAPPING_COLUMNS);
                $q.push_values(latest.iter(), |mut row, m| {
                    row.push_bind(m.resource_type.as_str())
                        .push_bind(m.scim_id.as_str())
                        .push_bind(m.legacy_id.as_str())
                        .push_bind(m.external_id.as_ref().map(super::ExternalId::as_str));
                });
                $q.push(super::idmap::ON_MAPPING_CONFLICT);
            };
        }
        if let Store::Sqlite(sqlite) = self
            && let Some(lanes) = sqlite.lanes()
        {
            // The whole transaction is one statement list, so one hand-off to the
            // connection's thread: `BEGIN IMMEDIATE` takes the write lock up front.
            let mut q = QueryBuilder::<sqlx::Sqlite>::new("BEGIN IMMEDIATE; ");
            if !entries.is_empty() {
                push_rows!(q, entries);
                q.push("; ");
            }
            if !latest.is_empty() {
                push_rows!(q, maps);
                q.push("; ");
            }
            q.push("COMMIT");
            let mut lane = lanes.write.lock().await?;
            let mut conn = lane.take()?;
            let written = q.build().execute(&mut conn).await;
            if written.is_err() {
                // A statement failed: what it began is undone (an error when nothing is
                // open is of no interest).
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            }
            lane.restore(conn);
            lane.check(written)?;
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if !entries.is_empty() {
                let mut q = QueryBuilder::new("");
                push_rows!(q, entries);
                q.build().execute(&mut *tx).await?;
            }
            if !latest.is_empty() {
                let mut q = QueryBuilder::new("");
                push_rows!(q, maps);
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// One call the gateway made to the legacy API while serving a SCIM request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendCall {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path (and query) on the legacy API.
    pub path: String,
    /// HTTP status the legacy API answered; 0 when no answer came (timeout, refused).
    pub status: u16,
    /// How long the call took, in milliseconds.
    #[serde(default)]
    pub ms: u64,
}

/// One SCIM request as ops see it afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request arrived (kept to the microsecond).
    pub time: DateTime<Utc>,
    /// Who sent it: the API key's name, or the Basic-auth user.
    pub actor: String,
    /// SCIM operation, e.g. `create`, `patch`, `list`.
    pub operation: String,
    /// `User`, `Group`, …
    pub resource_type: String,
    /// SCIM id of the resource, when the request named or created one.
    pub resource_id: Option<String>,
    /// HTTP status scimgate answered.
    pub scim_status: u16,
    /// Legacy API calls made, in order.
    pub backend_calls: Vec<BackendCall>,
    /// Time spent serving the request.
    pub duration_ms: u64,
    /// Why it failed and what it was about.
    #[serde(flatten)]
    pub context: AuditContext,
}

/// What an operator needs to understand an entry beyond its status: the SCIM error, the
/// request id, the resource's name, and the status the client saw when it differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditContext {
    /// The request's `X-Request-Id` (the client's, or the gateway's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The SCIM error's `scimType`, when the request failed with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// The SCIM error's `detail`, when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The resource's userName or displayName, when the request named or loaded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The status the client was answered when it differs from the operation's outcome
    /// (504: the client's deadline passed while the operation went on to complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_status: Option<u16>,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
}

/// Which entries [`AuditLog::query`] returns; the default returns the newest 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries strictly before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only this operation (exact match).
    pub operation: Option<String>,
    /// Only this status class: 2 for 2xx, 4 for 4xx, 5 for 5xx.
    pub status_class: Option<u16>,
    /// At most this many entries, newest first.
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            since: None,
            until: None,
            operation: None,
            status_class: None,
            limit: 100,
        }
    }
}

/// Records and reads the audit log.
pub trait AuditLog: Send + Sync {
    /// Records one request; runs after each SCIM response is sent.
    fn append(&self, entry: &AuditEntry) -> impl Future<Output = StoreResult<()>> + Send;

    /// Entries matching `filter`, newest first; for the admin page and `scimgate audit`.
    fn query(
        &self,
        filter: &AuditFilter,
    ) -> impl Future<Output = StoreResult<Vec<AuditEntry>>> + Send;

    /// The time and status of every entry since `since` (at most `limit`, newest first): what
    /// the status page's 24-hour chart counts per hour, without reading the entries' calls.
    fn activity_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<(DateTime<Utc>, u16)>>> + Send;

    /// Deletes entries older than `older_than` (retention); returns how many went.
    fn prune(&self, older_than: DateTime<Utc>) -> impl Future<Output = StoreResult<u64>> + Send;
}

type AuditRow = (
    DateTime<Utc>,
    String,
    String,
    String,
    Option<String>,
    i32,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
);

fn entry(row: AuditRow) -> StoreResult<AuditEntry> {
    let (
        time,
        actor,
        operation,
        resource_type,
        resource_id,
        status,
        calls,
        duration,
        request_id,
        scim_type,
        detail,
        label,
        client_status,
        client_address,
    ) = row;
    Ok(AuditEntry {
        time,
        actor,
        operation,
        resource_type,
        resource_id,
        scim_status: u16::try_from(status).unwrap_or(0),
        backend_calls: serde_json::from_str(&calls)
            .map_err(|e| StoreError::Internal(format!("bad audit backend_calls: {e}")))?,
        duration_ms: u64::try_from(duration).unwrap_or(0),
        context: AuditContext {
            request_id,
            scim_type,
            detail,
            label,
            client_status: client_status.and_then(|s| u16::try_from(s).ok()),
            client_address,
        },
    })
}

/// Adds the filter's conditions to a query that already ends in `WHERE 1 = 1`.
macro_rules! push_filter {
    ($qb:ident, $f:expr) => {
        if let Some(since) = $f.since {
            $qb.push(" AND time >= ").push_bind(db_time(since));
        }
        if let Some(until) = $f.until {
            $qb.push(" AND time < ").push_bind(db_time(until));
        }
        if let Some(op) = &$f.operation {
            $qb.push(" AND operation = ").push_bind(op.clone());
        }
        if let Some(class) = $f.status_class {
            let low = i32::from(class) * 100;
            $qb.push(" AND scim_status >= ").push_bind(low);
            $qb.push(" AND scim_status < ").push_bind(low + 100);
        }
    };
}

impl AuditLog for Store {
    async fn append(&self, e: &AuditEntry) -> StoreResult<()> {
        let calls = calls_json(e)?;
        with_pool!(self, pool => bind_entry(sqlx::query(INSERT_ENTRY), e, calls)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    async fn query(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => {
            let mut qb = QueryBuilder::new(
                "SELECT time, actor, operation, resource_type, resource_id, scim_status, \
                 backend_calls, duration_ms, request_id, scim_type, detail, label, \
                 client_status, client_address FROM audit_log WHERE 1 = 1",
            );
            push_filter!(qb, filter);
            qb.push(" ORDER BY time DESC, id DESC LIMIT ")
                .push_bind(i64::from(filter.limit));
            qb.build_query_as().fetch_all(pool).await
        })?;
        rows.into_iter().map(entry).collect()
    }

    async fn activity_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<(DateTime<Utc>, u16)>> {
        let sql = "SELECT time, scim_status FROM audit_log WHERE time >= $1 \
                   ORDER BY time DESC LIMIT $2";
        let rows: Vec<(DateTime<Utc>, i32)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(db_time(since))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(t, s)| (t, u16::try_from(s).unwrap_or(0)))
            .collect())
    }

    async fn prune(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let sql = "DELETE FROM audit_log WHERE time < $1";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(db_time(older_than))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n)
    }
}
