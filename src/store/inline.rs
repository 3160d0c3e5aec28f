//! Point reads of a SQLite file store run on the calling thread, without a hand-off.
//!
//! sqlx runs every SQLite connection on a thread of its own: a query is sent to that thread,
//! which wakes, runs it and wakes the caller again. For the id-map lookup every create makes
//! (is this externalId known?), those two wake-ups cost more than the lookup: on one core
//! the sqlx threads and the futex wake-ups were about a quarter of a create's CPU time.
//!
//! [`InlineReader`] keeps one plain SQLite connection (rusqlite, on the same SQLite library
//! sqlx links) and runs such a lookup where it is asked for. It never makes the caller wait:
//! - the connection is taken with `try_lock`; if another thread is using it, the caller is
//!   told to take the read lane instead;
//! - its busy timeout is zero: in WAL mode a reader does not wait for writers, and in the rare
//!   case SQLite answers `SQLITE_BUSY` (another connection recovering the WAL index), the
//!   caller is told to take the read lane, which waits as any other query does;
//! - any other error also sends the caller to the read lane, whose answer (or error) is the
//!   one that counts; the connection is then dropped and opened again on the next use.
//!
//! `PRAGMA query_only` makes the connection refuse any write, so nothing written here can
//! bypass the audit writer.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

/// One read-only SQLite connection for point reads on the calling thread.
#[derive(Debug)]
pub(crate) struct InlineReader {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
    /// Set by [`InlineReader::close`]: no connection is opened again.
    closed: AtomicBool,
}

impl InlineReader {
    pub(crate) fn new(path: PathBuf) -> InlineReader {
        InlineReader {
            path,
            conn: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `read` on the connection; `None` when it cannot run here and now (connection in
    /// use, closed, not openable, busy, or any error): the caller then asks the read lane.
    pub(crate) fn try_read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut guard = match self.conn.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return None,
            // A read that panicked left nothing half-done (reads only): go on.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if guard.is_none() {
            *guard = Some(self.open().ok()?);
        }
        let conn = guard.as_ref()?;
        match read(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                if !is_busy(&e) {
                    tracing::debug!(error = %e, "inline store read failed; the read lane answers");
                    // Open afresh next time: the error may be the connection's own.
                    *guard = None;
                }
                None
            }
        }
    }

    /// Holds the connection as a concurrent reader would (tests: the caller must then take
    /// the read lane).
    #[cfg(test)]
    pub(crate) fn hold(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Closes the connection for good (before the pool, so the pool's last connection still
    /// checkpoints the WAL).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.take();
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// `SELECT …` of at most one row, with a prepared statement kept by the connection.
pub(crate) fn optional_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    conn.prepare_cached(sql)?.query_row(params, row).optional()
}
