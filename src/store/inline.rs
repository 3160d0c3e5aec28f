//! Point reads of a SQLite file store run on the calling thread, without a hand-off.
//!
//! sqlx runs every SQLite connection on a thread of its own: a query is sent to that thread,
//! which wakes, runs it and wakes the caller again. For the id-map lookup every create makes
//! (is this externalId known?), those two wake-ups cost more than the lookup: on one core
//! the sqlx threads and the futex wake-ups were about a quarter of a create's CPU time.
//!
//! [`InlineReader`] keeps one plain SQLite connection (rusqlite, on the same SQLite library
//! sqlx links) and runs such a lookup where it is asked for. It does not wait for locks:
//! - the connection is taken with `try_lock`; if another thread is using it, the caller is
//!   told to take the read lane instead;
//! - its busy timeout is zero: in WAL mode a reader does not wait for writers, and in the rare
//!   case SQLite answers `SQLITE_BUSY` (another connection recovering the WAL index), the
//!   caller is told to take the read lane, which waits as any other query does;
//! - any other error also sends the caller to the read lane, whose answer (or error) is the
//!   one that counts; the connection is then dropped and opened again on the next use (an
//!   open that fails is not tried again for [`REOPEN_AFTER`]).
//!
//! What it does not avoid: a page missing from the OS page cache is read from disk on the
//! calling thread, and SQLite retries the start of a WAL read by itself for a moment while
//! another connection restarts the WAL. The tables read here are small and hot, and only
//! point reads (an index probe) run here.
//!
//! `PRAGMA query_only` makes the connection refuse any write, so nothing written here can
//! bypass the audit writer.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

/// How long after a failed open the reader stays out of the way (callers take the read lane).
pub(crate) const REOPEN_AFTER: Duration = Duration::from_secs(5);

/// One read-only SQLite connection for point reads on the calling thread.
#[derive(Debug)]
pub(crate) struct InlineReader {
    path: PathBuf,
    conn: Mutex<Slot>,
    /// Set by [`InlineReader::close`]: no connection is opened again.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Slot {
    conn: Option<Connection>,
    /// When the last open failed.
    failed_at: Option<Instant>,
}

impl InlineReader {
    pub(crate) fn new(path: PathBuf) -> InlineReader {
        InlineReader {
            path,
            conn: Mutex::new(Slot::default()),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `read` on the connection; `None` when it cannot run here and now (connection in
    /// use, closed, not openable, busy, or any error): the caller then asks the read lane.
    pub(crate) fn try_read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let mut slot = match self.conn.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return None,
            // A read that panicked left nothing half-done (reads only): go on.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Under the lock: a read that started as `close` ran must not open a connection
        // after it (one left open would keep the pool's last connection from removing the WAL).
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        if slot.conn.is_none() {
            if slot.failed_at.is_some_and(|t| t.elapsed() < REOPEN_AFTER) {
                return None;
            }
            match self.open() {
                Ok(c) => {
                    slot.conn = Some(c);
                    slot.failed_at = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.path.display(), "cannot open the store for reads on the request thread; the read lane answers");
                    slot.failed_at = Some(Instant::now());
                    return None;
                }
            }
        }
        let conn = slot.conn.as_ref()?;
        match read(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                if !is_busy(&e) {
                    tracing::debug!(error = %e, "inline store read failed; the read lane answers");
                    // Open afresh next time: the error may be the connection's own.
                    slot.conn = None;
                }
                None
            }
        }
    }

    /// Holds the connection as a concurrent reader would (tests: the caller must then take
    /// the read lane).
    #[cfg(test)]
    pub(crate) fn hold(&self) -> impl Drop + '_ {
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
        let mut slot = match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        slot.conn = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scimgate-inline-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("store.db")
    }

    fn one(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("SELECT 1", (), |r| r.get(0))
    }

    /// A file that cannot be opened sends callers to the read lane without a retry on every
    /// call; it is opened again once [`REOPEN_AFTER`] has passed. The reader never creates
    /// the file.
    #[test]
    fn a_failed_open_is_not_retried_at_once() {
        let path = scratch();
        let reader = InlineReader::new(path.clone());
        assert_eq!(reader.try_read(one), None);
        assert!(!path.exists(), "the reader created the database file");
        Connection::open(&path).unwrap();
        assert_eq!(reader.try_read(one), None, "retried at once");
        reader.conn.lock().unwrap().failed_at = Some(Instant::now() - REOPEN_AFTER);
        assert_eq!(reader.try_read(one), Some(1));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// The connection cannot write and does not wait for locks.
    #[test]
    fn the_connection_is_read_only_unwaiting_and_small() {
        let path = scratch();
        Connection::open(&path).unwrap();
        let reader = InlineReader::new(path.clone());
        let setting = |name: &'static str| {
            reader.try_read(|c| c.pragma_query_value(None, name, |r| r.get::<_, i64>(0)))
        };
        assert_eq!(setting("query_only"), Some(1));
        assert_eq!(setting("busy_timeout"), Some(0));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Once closed, the reader opens nothing again (a connection left open would keep the
    /// pool's last connection from checkpointing and removing the WAL).
    #[test]
    fn a_closed_reader_opens_nothing() {
        let path = scratch();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "journal_mode", "wal")
            .unwrap();
        let reader = InlineReader::new(path.clone());
        assert_eq!(reader.try_read(one), Some(1));
        reader.close();
        assert!(reader.conn.lock().unwrap().conn.is_none());
        assert_eq!(reader.try_read(one), None);
        assert!(reader.conn.lock().unwrap().conn.is_none());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
