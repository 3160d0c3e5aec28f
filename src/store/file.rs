//! The SQLite store as a file on disk: who may read it, and how large its write-ahead log
//! may grow.
//!
//! The file holds API-key hashes, Basic password hashes and the audit log, so it is created
//! readable by its owner only (0600; SQLite gives the `-wal` and `-shm` files the same mode),
//! and an existing file readable by others is tightened at startup.
//!
//! SQLite checkpoints its WAL every 1,000 pages, but it can only start the log over when no
//! reader still needs its old pages; under steady load some reader always does, and the log
//! grows without end (254 MB against a 43 MB database was seen). The gateway therefore looks
//! at the log's size every few seconds and, above `[store] wal_max_bytes`, runs a `TRUNCATE`
//! checkpoint (which waits for the readers of the moment, then empties the file), and sets
//! `journal_size_limit` so every reset also shrinks the file.

use super::{SqliteStore, Store, StoreResult};
use std::path::{Path, PathBuf};

/// The database file of a `sqlite://` store; `None` in memory.
pub fn database_file(filename: &Path) -> Option<PathBuf> {
    let s = filename.to_string_lossy();
    // sqlx names an in-memory database `file:sqlx-in-memory-N` (a URI filename); no plain
    // path starts with `file:`.
    if s.is_empty() || s == ":memory:" || s.starts_with("file:") {
        None
    } else {
        Some(filename.to_path_buf())
    }
}

/// Creates `path` (and its directory) readable by its owner only, or tightens an existing
/// file to 0600; runs before SQLite opens it. Errors are I/O errors with the path.
pub fn prepare_private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    for file in ["", "-wal", "-shm"].map(|s| format!("{}{s}", path.display())) {
                        if std::fs::metadata(&file).is_err() {
                            continue;
                        }
                        // A file this process does not own (a volume's group ownership)
                        // cannot be changed: said, not fatal.
                        match std::fs::set_permissions(
                            &file,
                            std::fs::Permissions::from_mode(0o600),
                        ) {
                            Ok(()) => tracing::warn!(
                                %file,
                                mode = format!("{mode:o}"),
                                "the store file was readable by others; tightened to 0600"
                            ),
                            Err(e) => tracing::warn!(
                                %file,
                                mode = format!("{mode:o}"),
                                error = %e,
                                "the store file is readable by others and cannot be tightened"
                            ),
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
            }
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The size of `db`'s write-ahead log in bytes (0 when there is none).
pub fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len())
}

impl Store {
    /// The database file of a SQLite file store; `None` in memory or on PostgreSQL.
    pub fn database_file(&self) -> Option<PathBuf> {
        match self {
            Store::Sqlite(s) => database_file(s.pool.connect_options().get_filename()),
            Store::Postgres(_) => None,
        }
    }

    /// For a SQLite file store whose WAL is larger than `limit` bytes: a `TRUNCATE`
    /// checkpoint, which copies the log into the database and empties it. Returns the log's
    /// size before and after, or `None` when nothing was needed (small log, other store).
    /// Runs every few seconds from the gateway's checkpoint task.
    pub async fn bound_wal(&self, db: &Path, limit: u64) -> StoreResult<Option<(u64, u64)>> {
        let Store::Sqlite(SqliteStore { pool, .. }) = self else {
            return Ok(None);
        };
        let before = wal_size(db);
        if before <= limit {
            return Ok(None);
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
        Ok(Some((before, wal_size(db))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scimgate-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        dir.join("data/scimgate.db")
    }

    /// Closing the store closes every connection, the hot path's own ones too, so the last
    /// one checkpoints the write-ahead log into the database file and removes it; a closed
    /// store takes no more writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_checkpoints_what_the_hot_path_wrote() {
        let db = scratch("close");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let entry = crate::store::AuditEntry {
            time: chrono::Utc::now(),
            actor: "test".into(),
            operation: "create".into(),
            resource_type: "User".into(),
            resource_id: Some("1".into()),
            scim_status: 201,
            backend_calls: Vec::new(),
            duration_ms: 1,
            context: crate::store::AuditContext::default(),
        };
        store
            .append_batch(std::slice::from_ref(&entry), &[])
            .await
            .unwrap();
        assert!(wal_size(&db) > 0);
        // The inline reader's connection is open too (an id-map lookup opens it).
        let none = crate::store::IdMap::by_external_id(&store, "User", &"e1".into())
            .await
            .unwrap();
        assert!(none.is_none());
        store.close().await;
        assert_eq!(wal_size(&db), 0, "the WAL outlived the close");
        assert!(store.append_batch(&[entry], &[]).await.is_err());
        let reopened = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let all = crate::store::AuditLog::query(&reopened, &crate::store::AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        reopened.close().await;
        let _ = std::fs::remove_dir_all(db.parent().unwrap().parent().unwrap());
    }

    #[tokio::test]
    async fn an_in_memory_store_touches_no_file() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(store.database_file(), None);
        store.close().await;
        assert!(database_file(Path::new("file:sqlx-in-memory-3")).is_none());
        assert!(database_file(Path::new("data/scimgate.db")).is_some());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_is_private_and_a_loose_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let db = scratch("mode");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600, "created 0600");
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        store.close().await;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        assert_eq!(mode(&db), 0o600, "tightened at open");
        store.close().await;
    }

    #[tokio::test]
    async fn a_long_reader_cannot_make_the_wal_grow_past_the_bound() {
        let db = scratch("wal");
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display())).unwrap();
        let store = Store::open_sqlite(opts, 4).await.unwrap();
        let Store::Sqlite(SqliteStore { pool, .. }) = &store else {
            unreachable!()
        };
        sqlx::query("CREATE TABLE filler (x BLOB)")
            .execute(pool)
            .await
            .unwrap();
        // A reader that keeps a snapshot open, as a steady stream of requests does.
        let mut reader = pool.begin().await.unwrap();
        sqlx::query("SELECT count(*) FROM filler")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        for _ in 0..400 {
            sqlx::query("INSERT INTO filler VALUES (zeroblob(8192))")
                .execute(pool)
                .await
                .unwrap();
        }
        let grown = wal_size(&db);
        assert!(
            grown > 2 << 20,
            "the WAL grew past 2 MB behind the reader: {grown}"
        );
        drop(reader);
        let (before, after) = store.bound_wal(&db, 1 << 20).await.unwrap().unwrap();
        assert_eq!(before, grown);
        assert!(after <= 1 << 20, "{after}");
        assert_eq!(store.bound_wal(&db, 1 << 20).await.unwrap(), None);
        store.close().await;
    }
}
