//! Persistent state the gateway keeps for itself: API keys, basic-auth users, the id map,
//! gateway-managed groups, durable plans, the audit log and sync status.
//!
//! Each concern is a small capability trait ([`KeyStore`], [`BasicCredentials`], [`AuditLog`],
//! [`SyncStatus`], [`IdMap`], [`GroupStore`], [`PlanStore`]) so callers name only what they use. One type,
//! [`Store`], implements all of them for SQLite (a file under the data dir: zero setup, the
//! default) and PostgreSQL (several replicas sharing state). The two dialects have their own
//! migration folders and are migrated when the store opens. SQL is written once with `$n`
//! placeholders, which both drivers accept, and run against whichever pool is open.
//! `sqlite::memory:` gives an in-memory store for tests.

mod audit;
mod basic;
mod file;
mod groups;
mod idmap;
mod inline;
mod keys;
mod plans;
mod sync;
#[cfg(test)]
mod tests;
mod tombstones;

pub use audit::{AuditContext, AuditEntry, AuditFilter, AuditLog, BackendCall};
pub use basic::{BasicCredentials, DeclaredUser, calibrate_check_time, keep_check_buffers};
pub use groups::{Group, GroupStore};
pub use idmap::{IdMap, IdMapping};
pub use keys::{DeclaredKey, KeyId, KeyInfo, KeyStore, key_revocations, parse_lifetime};
pub use plans::{NewPlan, PlanCounts, PlanRecord, PlanState, PlanStore, now_ms};
pub use sync::{SyncState, SyncStatus};
pub use tombstones::{Tombstone, TombstoneStore};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported store URL scheme (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// The database refused or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed at open.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness rule was broken (e.g. a legacy id already mapped to another SCIM id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row the operation needs (a group, a key) does not exist.
    #[error("not found")]
    NotFound,
    /// Password hashing failed, or a stored value could not be decoded.
    #[error("{0}")]
    Internal(String),
}

/// Result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Turns a unique-constraint violation into [`StoreError::Conflict`] (a caller's mistake the
/// SCIM layer answers with 409) and leaves every other error as a database error.
pub(crate) fn conflict_or(err: sqlx::Error, what: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Database(err),
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text, as stored and as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// The `id` scimgate publishes for a resource over SCIM.
    ScimId
);
id_newtype!(
    /// The id the legacy application gave the record.
    LegacyId
);
id_newtype!(
    /// The client's (Entra's) `externalId` for a resource.
    ExternalId
);

/// The open database: one pool, either dialect. Cloning shares the pool.
#[derive(Debug, Clone)]
pub enum Store {
    /// A SQLite file (or `sqlite::memory:`), the single-instance default.
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by several gateway replicas.
    Postgres(PgPool),
}

/// A SQLite store: the pool, and for a file two connections of its own ([`Lane`]s) that
/// the hot path (the audit writer, id-map lookups) uses instead of the pool.
///
/// sqlx runs each SQLite connection on a worker thread of its own: every statement is a
/// hand-off to that thread and back, and a pooled connection is pinged (one more hand-off)
/// each time it goes back to the pool. On one core each hand-off is two context switches;
/// measured, the worker thread was a third of a create's CPU time. A lane keeps its
/// connection, so a statement is one hand-off, and the audit writer's whole batch
/// (`BEGIN`, its inserts, `COMMIT`) is one.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every other query.
    pub pool: SqlitePool,
    /// `None` in memory: another connection would open another, empty database.
    lanes: Option<std::sync::Arc<Lanes>>,
}

/// The hot path's own connections: one for the audit writer, one for id-map reads (a read
/// never waits behind a batch being written: WAL lets a reader run beside the writer), and
/// one for the hot path's point reads (id map, tombstones) on the caller's own thread, tried
/// before the read lane or the pool.
#[derive(Debug)]
pub(crate) struct Lanes {
    pub(crate) write: Lane,
    pub(crate) read: Lane,
    /// `None` when the store URL carries options the inline reader would not apply.
    pub(crate) inline: Option<inline::InlineReader>,
}

/// Which of the hot path's own connections a SQLite store gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LaneSet {
    /// None: every query on the pool (an in-memory database).
    None,
    /// The write and read lanes.
    Own,
    /// The lanes and the inline reader.
    OwnAndInline,
}

/// One SQLite connection outside the pool, opened on first use and used by one caller at a
/// time; after an error that is not the database's answer (the connection's thread gone),
/// it is closed and the next use opens another.
#[derive(Debug)]
pub(crate) struct Lane {
    opts: SqliteConnectOptions,
    conn: tokio::sync::Mutex<Option<sqlx::SqliteConnection>>,
    /// Set by [`Store::close`]: the lane opens no connection again.
    closed: std::sync::atomic::AtomicBool,
}

impl Lane {
    fn new(opts: SqliteConnectOptions) -> Lane {
        Lane {
            opts,
            conn: tokio::sync::Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits for the lane, opening its connection if it has none.
    pub(crate) async fn lock(&self) -> StoreResult<LaneGuard<'_>> {
        let mut guard = self.conn.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Database(sqlx::Error::PoolClosed));
        }
        if guard.is_none() {
            *guard = Some(sqlx::ConnectOptions::connect(&self.opts).await?);
        }
        Ok(LaneGuard(guard))
    }

    /// Closes the lane's connection (after what it is running) for good.
    async fn close(&self) {
        let mut guard = self.conn.lock().await;
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(conn) = guard.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

fn lane_closed() -> StoreError {
    StoreError::Internal("the store connection is closed".into())
}

/// A lane held by one caller.
pub(crate) struct LaneGuard<'a>(tokio::sync::MutexGuard<'a, Option<sqlx::SqliteConnection>>);

impl LaneGuard<'_> {
    /// The lane's connection.
    pub(crate) fn conn(&mut self) -> StoreResult<&mut sqlx::SqliteConnection> {
        self.0.as_mut().ok_or_else(lane_closed)
    }

    /// Takes the connection out of the lane for a statement list that opens a transaction:
    /// if the caller is dropped before [`LaneGuard::restore`], so is the connection, and
    /// SQLite rolls back what it began (a connection left inside a transaction would hold
    /// the write lock for every other writer).
    pub(crate) fn take(&mut self) -> StoreResult<sqlx::SqliteConnection> {
        self.0.take().ok_or_else(lane_closed)
    }

    /// Puts back the connection [`LaneGuard::take`] took.
    pub(crate) fn restore(&mut self, conn: sqlx::SqliteConnection) {
        *self.0 = Some(conn);
    }

    /// Passes `r` on; closes the connection when the error is not the database's answer to
    /// the statement (a constraint, a syntax error, also an I/O error SQLite reports) but a
    /// sign the connection may be broken (its thread gone).
    pub(crate) fn check<T>(&mut self, r: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(e) = &r
            && !matches!(
                e,
                sqlx::Error::Database(_)
                    | sqlx::Error::RowNotFound
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::Decode(_)
            )
        {
            self.0.take();
        }
        r
    }
}

impl SqliteStore {
    /// The lanes of a file store (`None` in memory).
    pub(crate) fn lanes(&self) -> Option<&Lanes> {
        self.lanes.as_deref()
    }
}

impl Store {
    /// A point read of a hot path run on this thread ([`inline::InlineReader`]); `None` when
    /// it cannot be (not a SQLite file, or the reader cannot answer now): the caller then runs
    /// the query as usual.
    pub(crate) fn try_inline<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        match self {
            Store::Sqlite(sqlite) => sqlite.lanes()?.inline.as_ref()?.try_read(read),
            Store::Postgres(_) => None,
        }
    }
}

/// Runs the same expression against whichever pool the store holds; the SQL is shared, the
/// driver types differ, so the body is expanded once per dialect.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(sqlite) => {
                let $pool = &sqlite.pool;
                $body
            }
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// [`with_pool!`] for the hot path: on a SQLite file store the body runs on the named
/// [`Lane`] (`$conn` is its connection), elsewhere on the pool. The body gives a
/// `Result<_, sqlx::Error>`; so does the whole.
macro_rules! with_lane {
    ($store:expr, $lane:ident, $conn:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite(sqlite) => match sqlite.lanes() {
                Some(lanes) => {
                    let mut guard = lanes.$lane.lock().await?;
                    let $conn = guard.conn()?;
                    let result = $body;
                    guard.check(result)
                }
                None => {
                    let $conn = &sqlite.pool;
                    $body
                }
            },
            $crate::store::Store::Postgres($conn) => $body,
        }
    };
}
pub(crate) use with_lane;

impl Store {
    /// Opens `sqlite://path` (the file is created if missing, readable by its owner only),
    /// `sqlite::memory:`, or
    /// `postgres://…`, then applies any migrations not yet applied. Runs once at startup;
    /// an error means the gateway cannot keep state and should not start.
    pub async fn open(url: &str) -> StoreResult<Store> {
        if url.starts_with("sqlite:") {
            // `mode=memory` may come with a file name: still no second connection.
            let opts = SqliteConnectOptions::from_str(url)?;
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if !in_memory && let Some(db) = file::database_file(opts.get_filename()) {
                file::prepare_private_file(&db).map_err(|e| {
                    StoreError::Internal(format!("cannot create {}: {e}", db.display()))
                })?;
            }
            // One connection for an in-memory database: each connection would get its own.
            let max = if in_memory { 1 } else { 4 };
            // URL options (`vfs=`, `immutable=`, `mode=ro`) the inline reader would not apply:
            // such a store keeps every read on sqlx's connections.
            let lanes = match (in_memory, url.contains('?')) {
                (true, _) => LaneSet::None,
                (false, true) => LaneSet::Own,
                (false, false) => LaneSet::OwnAndInline,
            };
            Self::open_sqlite_with(opts, max, lanes).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::open_postgres(PgConnectOptions::from_str(url)?, 8).await
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    /// Opens a SQLite database with explicit options and migrates it. WAL journal and a busy
    /// timeout are set here so readers never block the writer; `synchronous = NORMAL` (the
    /// setting SQLite recommends with WAL) keeps every committed transaction across a crash or
    /// kill of the process and syncs to disk at checkpoints instead of on every commit, so an
    /// audited write costs no fsync (only a power loss can drop the latest commits).
    pub async fn open_sqlite(
        opts: SqliteConnectOptions,
        max_connections: u32,
    ) -> StoreResult<Store> {
        Self::open_sqlite_with(opts, max_connections, LaneSet::OwnAndInline).await
    }

    /// [`Store::open_sqlite`] with the hot path's connections `lanes` asks for (an in-memory
    /// database, whatever its name, keeps every query on the pool).
    async fn open_sqlite_with(
        opts: SqliteConnectOptions,
        max_connections: u32,
        lanes: LaneSet,
    ) -> StoreResult<Store> {
        let opts = opts
            .create_if_missing(true)
            // Each reset of the WAL also shrinks the file to this size.
            .pragma("journal_size_limit", (16u64 << 20).to_string())
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // No liveness ping before each use: on SQLite it is a round trip to the connection's
        // worker thread per query (5 % of a POST's CPU); a broken connection fails its query
        // (503) and is dropped instead.
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        // Only for a file: what is not a plain path may be an in-memory database.
        let file = file::database_file(pool.connect_options().get_filename());
        let lanes = match file {
            Some(path) if lanes != LaneSet::None => {
                let opts = SqliteConnectOptions::clone(&pool.connect_options());
                Some(std::sync::Arc::new(Lanes {
                    write: Lane::new(opts.clone()),
                    read: Lane::new(opts),
                    inline: (lanes == LaneSet::OwnAndInline)
                        .then(|| inline::InlineReader::new(path)),
                }))
            }
            _ => None,
        };
        Ok(Store::Sqlite(SqliteStore { pool, lanes }))
    }

    /// Opens a PostgreSQL database with explicit options (e.g. a `search_path` set through
    /// [`PgConnectOptions::options`]) and migrates it; migrations take an advisory lock, so
    /// replicas starting together migrate once.
    pub async fn open_postgres(opts: PgConnectOptions, max_connections: u32) -> StoreResult<Store> {
        // No ping before each use (a network round trip per query); see `open_sqlite`.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Store::Postgres(pool))
    }

    /// Closes every connection; for SQLite this also checkpoints the WAL into the main file
    /// (the last connection to close does it, so the lanes close first). Runs at shutdown;
    /// the store takes no queries afterwards.
    pub async fn close(&self) {
        if let Store::Sqlite(sqlite) = self
            && let Some(lanes) = sqlite.lanes()
        {
            if let Some(inline) = &lanes.inline {
                inline.close();
            }
            lanes.write.close().await;
            lanes.read.close().await;
        }
        with_pool!(self, pool => pool.close().await)
    }

    /// Runs a trivial query (`SELECT 1`); the readiness probe calls it so a gateway whose
    /// database is gone is taken out of rotation. `Ok` means the store answers queries.
    pub async fn ping(&self) -> StoreResult<()> {
        let one: i32 =
            with_pool!(self, pool => sqlx::query_scalar("SELECT 1").fetch_one(pool).await)?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::Internal(format!("SELECT 1 answered {one}")))
        }
    }

    /// `"sqlite"` or `"postgres"`, for the status page and logs.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

/// Times are kept to the microsecond: PostgreSQL stores no finer, and both backends must give
/// back the value they were given.
pub(crate) fn db_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}
