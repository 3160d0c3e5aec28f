//! Every capability trait against both backends: SQLite in a temp file, PostgreSQL in a fresh
//! schema of `postgres://127.0.0.1:5432/test` (override with `SCIMGATE_TEST_PG`). When
//! PostgreSQL cannot be reached the PostgreSQL variant prints `SKIP postgres: …` and passes.

use super::*;
use chrono::{Duration, Utc};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

const PG_URL: &str = "postgres://127.0.0.1:5432/test";

/// A store under test plus what a test needs to look underneath it.
#[derive(Clone)]
struct TestDb {
    store: Store,
    raw: Raw,
}

#[derive(Clone)]
enum Raw {
    SqliteFile(PathBuf),
    PgSchema(PgPool, String),
}

impl TestDb {
    /// Everything the database holds about keys and passwords, as bytes: the SQLite main file
    /// and WAL, or the PostgreSQL rows as text.
    async fn raw_secrets_area(&self) -> Vec<u8> {
        match &self.raw {
            Raw::SqliteFile(path) => {
                let mut bytes = std::fs::read(path).unwrap();
                let wal = PathBuf::from(format!("{}-wal", path.display()));
                if let Ok(mut w) = std::fs::read(wal) {
                    bytes.append(&mut w);
                }
                bytes
            }
            Raw::PgSchema(admin, schema) => {
                let sql = format!(
                    "SELECT COALESCE((SELECT string_agg(t::text, '|') FROM {schema}.api_keys t), '') \
                     || COALESCE((SELECT string_agg(t::text, '|') FROM {schema}.basic_credentials t), '')"
                );
                let (text,): (String,) = sqlx::query_as(&sql).fetch_one(admin).await.unwrap();
                text.into_bytes()
            }
        }
    }
}

fn temp_sqlite_path() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scimgate-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("scimgate.db")
}

async fn run_sqlite<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = temp_sqlite_path();
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let db = TestDb {
        store: store.clone(),
        raw: Raw::SqliteFile(path.clone()),
    };
    let outcome = tokio::spawn(check(db)).await;
    store.close().await;
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run_postgres<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = std::env::var("SCIMGATE_TEST_PG").unwrap_or_else(|_| PG_URL.to_string());
    let admin = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&url)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            println!("SKIP postgres: {e}");
            return;
        }
    };
    let schema = format!("scimgate_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let opts = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let opened = Store::open_postgres(opts, 4).await;
    let outcome = match opened {
        Ok(store) => {
            let db = TestDb {
                store: store.clone(),
                raw: Raw::PgSchema(admin.clone(), schema.clone()),
            };
            let outcome = tokio::spawn(check(db)).await;
            store.close().await;
            outcome.map_err(|e| e.into_panic())
        }
        Err(e) => Err(Box::new(format!("open failed: {e}")) as Box<dyn std::any::Any + Send>),
    };
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// One `#[tokio::test]` per backend for a check function.
macro_rules! both_backends {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run_sqlite(super::$check).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run_postgres(super::$check).await
            }
        }
    )*};
}

both_backends!(
    keys_work_until_revoked_or_expired,
    secrets_are_not_stored_in_clear,
    basic_credentials,
    audit_log,
    sync_status,
    id_map,
    groups,
    group_names_are_unique_ignoring_case_and_indexed,
    one_member_change_in_a_100k_group_touches_only_that_member,
    ping_answers_until_closed,
    plans_lifecycle,
    plans_are_claimed_once,
    tombstones,
    declared_credentials_follow_the_configuration,
    audit_batches_are_one_transaction,
);

/// `[auth] api_keys` / `basic_users`: added when declared, withdrawn (keys) or removed (users)
/// when their line goes, a withdrawn key live again when its line comes back, an admin
/// revocation kept, CLI-made keys and users never touched, a second replica's apply harmless.
async fn declared_credentials_follow_the_configuration(db: TestDb) {
    let s = &db.store;
    let (key, line) = DeclaredKey::generate("entra-declared").unwrap();
    let declared = DeclaredKey::parse(&line).unwrap();
    let (cli, cli_key) = s.create_key("cli-made", None).await.unwrap();
    assert_eq!(
        s.ensure_keys(std::slice::from_ref(&declared))
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(
        s.ensure_keys(std::slice::from_ref(&declared))
            .await
            .unwrap(),
        (0, 0),
        "applied again (a second replica): nothing changes"
    );
    assert!(s.verify(&key).await.unwrap().is_some());
    // Its line removed: withdrawn; the CLI's key untouched.
    assert_eq!(s.ensure_keys(&[]).await.unwrap(), (0, 1));
    assert!(s.verify(&key).await.unwrap().is_none(), "withdrawn");
    assert!(
        s.verify(&cli_key).await.unwrap().is_some(),
        "{cli:?} untouched"
    );
    // Back again: live.
    s.ensure_keys(std::slice::from_ref(&declared))
        .await
        .unwrap();
    assert!(s.verify(&key).await.unwrap().is_some(), "live again");
    // Revoked on the admin page: stays revoked while declared.
    assert!(s.revoke_key(&declared.id).await.unwrap());
    s.ensure_keys(std::slice::from_ref(&declared))
        .await
        .unwrap();
    assert!(
        s.verify(&key).await.unwrap().is_none(),
        "a revocation stays"
    );
    // Same id, other secret.
    let mut other = declared.clone();
    other.hash = vec![0xab; 32];
    assert!(s.ensure_keys(&[other]).await.is_err());

    let line = DeclaredUser::hash("declared-user", "a-declared-password")
        .await
        .unwrap();
    let user = DeclaredUser::parse(&line).unwrap();
    s.set_password("cli-user", "a-cli-password-123")
        .await
        .unwrap();
    assert_eq!(
        s.ensure_basic_users(std::slice::from_ref(&user))
            .await
            .unwrap(),
        0
    );
    assert!(
        s.verify_password("declared-user", "a-declared-password")
            .await
            .unwrap()
    );
    assert_eq!(
        s.ensure_basic_users(&[]).await.unwrap(),
        1,
        "its line removed"
    );
    assert!(
        !s.verify_password("declared-user", "a-declared-password")
            .await
            .unwrap()
    );
    assert!(
        s.verify_password("cli-user", "a-cli-password-123")
            .await
            .unwrap(),
        "untouched"
    );
}

async fn ping_answers_until_closed(db: TestDb) {
    db.store
        .ping()
        .await
        .expect("an open store answers SELECT 1");
    // A clone shares the pool, so closing it is what a dead database looks like to the probe.
    let closed = db.store.clone();
    closed.close().await;
    assert!(
        closed.ping().await.is_err(),
        "a closed store fails the probe"
    );
}

async fn keys_work_until_revoked_or_expired(db: TestDb) {
    let s = &db.store;
    let (info, key) = s.create_key("entra-prod", None).await.unwrap();
    assert!(key.starts_with(&format!("sgk_{}_", info.id)));
    assert_eq!(info.last_used, None);

    let seen = s.verify(&key).await.unwrap().expect("fresh key verifies");
    assert_eq!(seen.name, "entra-prod");
    assert!(seen.last_used.is_some());
    assert_eq!(s.verify(&key).await.unwrap().unwrap().id, info.id);

    // Same public id, different secret; and a malformed key.
    let last = key.chars().last().unwrap();
    let forged = format!(
        "{}{}",
        &key[..key.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(s.verify(&forged).await.unwrap(), None);
    assert_eq!(s.verify("Bearer nonsense").await.unwrap(), None);

    let (other, other_key) = s.create_key("admin", None).await.unwrap();
    let listed = s.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    let entry = listed.iter().find(|k| k.id == info.id).unwrap();
    assert!(entry.last_used.is_some());
    assert_eq!(entry.revoked, None);

    assert!(s.revoke_key(&info.id).await.unwrap());
    assert_eq!(s.verify(&key).await.unwrap(), None);
    assert!(
        s.verify(&other_key).await.unwrap().is_some(),
        "other keys unaffected"
    );
    let listed = s.list_keys().await.unwrap();
    assert!(
        listed
            .iter()
            .find(|k| k.id == info.id)
            .unwrap()
            .revoked
            .is_some()
    );
    assert!(
        listed
            .iter()
            .find(|k| k.id == other.id)
            .unwrap()
            .revoked
            .is_none()
    );
    assert!(
        !s.revoke_key(&KeyId("0000000000000000".into()))
            .await
            .unwrap()
    );

    let (_, expired) = s
        .create_key("old", Some(Utc::now() - Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(s.verify(&expired).await.unwrap(), None);
    let (timed, later) = s
        .create_key("temp", Some(Utc::now() + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(
        s.verify(&later).await.unwrap().unwrap().expires,
        timed.expires
    );
}

async fn secrets_are_not_stored_in_clear(db: TestDb) {
    let s = &db.store;
    let (_, key) = s.create_key("entra", None).await.unwrap();
    let password = "correct horse battery staple";
    s.set_password("legacy-client", password).await.unwrap();
    let secret_part = key.rsplit('_').next().unwrap().to_string();

    let raw = db.raw_secrets_area().await;
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    // The dump does see the tables: the username and the key's hash are there.
    assert!(contains(b"legacy-client"));
    let hash = Sha256::digest(key.as_bytes());
    let hash_hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    assert!(contains(hash.as_slice()) || contains(hash_hex.as_bytes()));
    assert!(!contains(key.as_bytes()), "key stored in clear");
    assert!(
        !contains(secret_part.as_bytes()),
        "key secret stored in clear"
    );
    assert!(!contains(password.as_bytes()), "password stored in clear");
    assert!(contains(b"$argon2id$"));
}

async fn basic_credentials(db: TestDb) {
    let s = &db.store;
    s.set_password("alice", "first-pass").await.unwrap();
    assert!(s.verify_password("alice", "first-pass").await.unwrap());
    assert!(!s.verify_password("alice", "wrong").await.unwrap());
    assert!(!s.verify_password("bob", "first-pass").await.unwrap());

    s.set_password("alice", "second-pass").await.unwrap();
    assert!(!s.verify_password("alice", "first-pass").await.unwrap());
    assert!(s.verify_password("alice", "second-pass").await.unwrap());

    assert!(s.remove_user("alice").await.unwrap());
    assert!(!s.remove_user("alice").await.unwrap());
    assert!(!s.verify_password("alice", "second-pass").await.unwrap());
}

fn audit(time: DateTime<Utc>, op: &str, status: u16) -> AuditEntry {
    AuditEntry {
        time,
        actor: "entra-prod".into(),
        operation: op.into(),
        resource_type: "User".into(),
        resource_id: Some(format!("id-{op}-{status}")),
        scim_status: status,
        backend_calls: vec![BackendCall {
            method: "POST".into(),
            path: "/api/users?x=1".into(),
            status: 201,
            ms: 3,
        }],
        duration_ms: 12,
        context: Default::default(),
    }
}

async fn audit_log(db: TestDb) {
    let s = &db.store;
    let t0 = Utc::now() - Duration::hours(3);
    let at = |h: i64| t0 + Duration::hours(h) + Duration::nanoseconds(123_456_789);
    let entries = [
        audit(at(0), "create", 201),
        audit(at(1), "patch", 200),
        audit(at(2), "patch", 404),
        AuditEntry {
            resource_id: None,
            backend_calls: vec![],
            ..audit(at(3), "list", 502)
        },
    ];
    for e in &entries {
        s.append(e).await.unwrap();
    }

    let all = s.query(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].operation, "list", "newest first");
    assert_eq!(all[0].resource_id, None);
    let create = &all[3];
    assert_eq!(
        create.time,
        db_time(entries[0].time),
        "time round-trips to the µs"
    );
    assert_eq!(create.backend_calls, entries[0].backend_calls);
    assert_eq!(
        create,
        &AuditEntry {
            time: create.time,
            ..entries[0].clone()
        }
    );

    let since = |h: i64| AuditFilter {
        since: Some(t0 + Duration::hours(h)),
        ..AuditFilter::default()
    };
    assert_eq!(s.query(&since(1)).await.unwrap().len(), 3);
    let window = AuditFilter {
        until: Some(t0 + Duration::hours(2)),
        ..since(1)
    };
    let got = s.query(&window).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].scim_status, 200);

    let patches = AuditFilter {
        operation: Some("patch".into()),
        ..AuditFilter::default()
    };
    assert_eq!(s.query(&patches).await.unwrap().len(), 2);
    let client_errors = AuditFilter {
        status_class: Some(4),
        ..AuditFilter::default()
    };
    let got = s.query(&client_errors).await.unwrap();
    assert_eq!(got.iter().map(|e| e.scim_status).collect::<Vec<_>>(), [404]);
    let two = AuditFilter {
        limit: 2,
        ..AuditFilter::default()
    };
    let got = s.query(&two).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.scim_status).collect::<Vec<_>>(),
        [502, 404]
    );

    assert_eq!(s.prune(t0 + Duration::hours(2)).await.unwrap(), 2);
    let left = s.query(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.scim_status).collect::<Vec<_>>(),
        [502, 404]
    );
}

/// The group commit's batch: every entry and mapping in one multi-row statement each, all or
/// nothing, a later mapping of the same resource winning as it would written in turn.
async fn audit_batches_are_one_transaction(db: TestDb) {
    let s = &db.store;
    let t0 = Utc::now() - Duration::minutes(5);
    let mut entries: Vec<AuditEntry> = (0..40)
        .map(|i| audit(t0 + Duration::seconds(i), "create", 201))
        .collect();
    entries[7].context.detail = Some("it's \"quoted\" ünïcode".into());
    entries[8].context.client_address = Some("10.0.0.9".into());
    entries[9].resource_id = None;
    let maps = [
        user_map("u1", "l1", Some("e1")),
        user_map("u2", "l2", None),
        user_map("u1", "l1b", Some("e1b")),
    ];
    s.append_batch(&entries, &maps).await.unwrap();
    let all = s
        .query(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 40);
    for (got, want) in all.iter().rev().zip(&entries) {
        assert_eq!(
            got,
            &AuditEntry {
                time: db_time(want.time),
                ..want.clone()
            }
        );
    }
    let u1 = s
        .by_scim_id("User", &ScimId::from("u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            u1.legacy_id.as_str(),
            u1.external_id.as_ref().map(|e| e.as_str())
        ),
        ("l1b", Some("e1b"))
    );
    assert!(
        s.by_scim_id("User", &ScimId::from("u2"))
            .await
            .unwrap()
            .is_some()
    );

    // An externalId already mapped to another resource fails the batch: nothing of it stays.
    let late = audit(t0 + Duration::minutes(1), "patch", 200);
    let err = s
        .append_batch(
            std::slice::from_ref(&late),
            &[
                user_map("u3", "l3", None),
                user_map("u4", "l4", Some("e1b")),
            ],
        )
        .await;
    assert!(err.is_err());
    assert_eq!(
        s.query(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .len(),
        40
    );
    assert!(
        s.by_scim_id("User", &ScimId::from("u3"))
            .await
            .unwrap()
            .is_none()
    );
    // …and leaves no transaction open: the next batch commits.
    let next = audit(t0 + Duration::minutes(2), "delete", 204);
    s.append_batch(
        std::slice::from_ref(&next),
        &[user_map("u5", "l5", Some("e5"))],
    )
    .await
    .unwrap();
    let after = s
        .query(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 41);
    assert_eq!(after[0].operation, "delete");
    assert_eq!(
        s.by_external_id("User", &ExternalId::from("e5"))
            .await
            .unwrap()
            .map(|m| m.scim_id),
        Some(ScimId::from("u5"))
    );
}

/// On a SQLite file the audit writer and the id-map lookups have connections of their own:
/// they go on while every pooled connection is taken (and so never pay the pool's
/// hand-offs: a ping on every release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hot_path_runs_beside_the_pool() {
    let path = temp_sqlite_path();
    let opts =
        sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap();
    let store = Store::open_sqlite(opts, 2).await.unwrap();
    let Store::Sqlite(SqliteStore { pool, .. }) = &store else {
        unreachable!()
    };
    let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    let within = std::time::Duration::from_secs(5);
    let t0 = Utc::now();
    tokio::time::timeout(
        within,
        store.append_batch(
            &[audit(t0, "create", 201)],
            &[user_map("u1", "l1", Some("e1"))],
        ),
    )
    .await
    .expect("the audit batch waited for the pool")
    .unwrap();
    let found = legacy_of_within(&store, "e1", "the id-map lookup waited for the pool").await;
    assert_eq!(found, Some(LegacyId::from("l1")));
    drop(held);
    // What the lanes wrote, the pool reads.
    assert_eq!(store.query(&AuditFilter::default()).await.unwrap().len(), 1);
    store.close().await;
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// An in-memory database named like a file (`mode=memory`) has no lanes: a second
/// connection would open another, empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_in_memory_store_keeps_to_its_one_connection() {
    let dir = temp_sqlite_path();
    let store = Store::open(&format!("sqlite://{}?mode=memory", dir.display()))
        .await
        .unwrap();
    map_u1(&store).await;
    assert!(
        store
            .by_external_id("User", &ExternalId::from("e1"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.query(&AuditFilter::default()).await.unwrap().len(), 1);
    store.close().await;
    assert!(!dir.exists(), "an in-memory store wrote {}", dir.display());
    if let Some(d) = dir.parent() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// An audit batch whose caller is dropped half-way (here while `BEGIN IMMEDIATE` waits for
/// another writer) leaves no transaction open behind it: the other writers of the file go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_batch_leaves_no_transaction_open() {
    use sqlx::Connection;
    let path = temp_sqlite_path();
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).await.unwrap();
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let t0 = Utc::now();
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        store.append_batch(&[audit(t0, "create", 201)], &[]),
    )
    .await;
    assert!(cut.is_err(), "the batch did not wait for the other writer");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    // The dropped batch's BEGIN gets the lock once the other writer is done.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query("BEGIN IMMEDIATE; COMMIT")
        .execute(&mut other)
        .await
        .expect("the write lock is still held by the dropped batch");
    store
        .append_batch(&[audit(t0, "patch", 200)], &[])
        .await
        .unwrap();
    let ops: Vec<String> = store
        .query(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.operation)
        .collect();
    assert_eq!(ops, vec!["patch".to_string()]);
    other.close().await.unwrap();
    store.close().await;
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Commits one audited create that mapped User u1 to legacy l1 with externalId e1.
async fn map_u1(store: &Store) {
    store
        .append_batch(
            &[audit(Utc::now(), "create", 201)],
            &[user_map("u1", "l1", Some("e1"))],
        )
        .await
        .unwrap();
}

/// A SQLite file store and its lanes, for the inline-reader tests.
async fn file_store() -> (Store, PathBuf) {
    let path = temp_sqlite_path();
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (store, path)
}

fn lanes_of(store: &Store) -> &Lanes {
    let Store::Sqlite(sqlite) = store else {
        unreachable!()
    };
    sqlite.lanes().expect("a file store has lanes")
}

async fn remove_store(store: Store, path: PathBuf) {
    store.close().await;
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The id-map lookup of every create needs no connection thread: it answers while the read
/// lane and every pooled connection are taken (on the calling thread, no hand-off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_map_lookup_needs_no_connection_thread() {
    let (store, path) = file_store().await;
    map_u1(&store).await;
    let Store::Sqlite(SqliteStore { pool, .. }) = &store else {
        unreachable!()
    };
    let held_pool: Vec<_> = futures_held(pool).await;
    let held_lane = lanes_of(&store).read.lock().await.unwrap();
    let waited = "the lookup waited for a connection thread";
    let found = legacy_of_within(&store, "e1", waited).await;
    assert_eq!(found, Some(LegacyId::from("l1")));
    assert_eq!(legacy_of_within(&store, "nobody", waited).await, None);
    drop(held_lane);
    drop(held_pool);
    remove_store(store, path).await;
}

/// The tombstone reads every GET and list of a type that keeps deleted records makes need no
/// pooled connection either (a list asks only whether there are any, not how many).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstone_reads_need_no_pooled_connection() {
    let (store, path) = file_store().await;
    store
        .put_tombstone(&Tombstone {
            resource_type: "User".into(),
            scim_id: "u1".into(),
            name_key: Some("ann".into()),
            external_id: None,
            deleted_ms: 1,
        })
        .await
        .unwrap();
    let Store::Sqlite(SqliteStore { pool, .. }) = &store else {
        unreachable!()
    };
    let held = futures_held(pool).await;
    let within = std::time::Duration::from_secs(2);
    let gone = tokio::time::timeout(within, store.is_tombstoned("User", "u1"))
        .await
        .expect("the tombstone read waited for the pool")
        .unwrap();
    let here = tokio::time::timeout(within, store.is_tombstoned("User", "u2"))
        .await
        .expect("the tombstone read waited for the pool")
        .unwrap();
    let any = tokio::time::timeout(within, store.any_tombstoned("User"))
        .await
        .expect("the tombstone probe waited for the pool")
        .unwrap();
    let none = tokio::time::timeout(within, store.any_tombstoned("Group"))
        .await
        .expect("the tombstone probe waited for the pool")
        .unwrap();
    assert_eq!((gone, here, any, none), (true, false, true, false));
    drop(held);
    remove_store(store, path).await;
}

/// The legacy id mapped to `external` (a User), looked up within 2 s; `what` names the wait
/// a timeout would mean.
async fn legacy_of_within(store: &Store, external: &str, what: &str) -> Option<LegacyId> {
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        store.by_external_id("User", &ExternalId::from(external)),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}"))
    .unwrap()
    .map(|m| m.legacy_id)
}

/// A store URL with options (`vfs=`, `mode=`, …) gets no inline reader, which would open
/// the file without them; its lookups run on the read lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_url_with_options_keeps_reads_on_sqlx() {
    let path = temp_sqlite_path();
    let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    assert!(lanes_of(&store).inline.is_none());
    map_u1(&store).await;
    let found = legacy_of_within(&store, "e1", "the lookup did not answer").await;
    assert_eq!(found, Some(LegacyId::from("l1")));
    remove_store(store, path).await;
}

async fn futures_held(pool: &sqlx::SqlitePool) -> Vec<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
    let mut held = Vec::new();
    while let Ok(Ok(c)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), pool.acquire()).await
    {
        held.push(c);
    }
    assert!(!held.is_empty());
    held
}

/// The inline reader sees what is committed, never what a writer has under way, and does
/// not wait for that writer; a prepared statement it keeps holds no old snapshot: a commit
/// made after one lookup is seen by the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_read_sees_each_commit_and_never_waits_for_a_writer() {
    use sqlx::Connection;
    let (store, path) = file_store().await;
    let map = |ext: &str| ExternalId::from(ext);
    map_u1(&store).await;
    assert!(
        store
            .by_external_id("User", &map("e1"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .by_external_id("User", &map("e2"))
            .await
            .unwrap()
            .is_none()
    );
    let mut writer = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "BEGIN IMMEDIATE; INSERT INTO id_map (resource_type, scim_id, legacy_id, external_id) \
         VALUES ('User', 'u2', 'l2', 'e2')",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    // Answered on this thread with the writer's lock held: no wait, no uncommitted row.
    let inline = |ext: &str| {
        let sql = "SELECT legacy_id FROM id_map WHERE resource_type = $1 AND external_id = $2";
        lanes_of(&store).inline.as_ref().unwrap().try_read(|c| {
            super::inline::optional_row(c, sql, ("User", ext), |r| r.get::<_, String>(0))
        })
    };
    assert_eq!(inline("e2"), Some(None));
    assert_eq!(inline("e1"), Some(Some("l1".to_string())));
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    assert_eq!(inline("e2"), Some(Some("l2".to_string())));
    let found = store.by_external_id("User", &map("e2")).await.unwrap();
    assert_eq!(found.map(|m| m.legacy_id), Some(LegacyId::from("l2")));
    writer.close().await.unwrap();
    remove_store(store, path).await;
}

/// The inline connection cannot write (nothing may bypass the audit writer), and while it
/// is in use elsewhere a lookup takes the read lane instead of waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Held across the lookup on purpose: a reader using the connection meanwhile.
#[allow(clippy::await_holding_lock)]
async fn the_inline_reader_writes_nothing_and_steps_aside_when_busy() {
    let (store, path) = file_store().await;
    map_u1(&store).await;
    let inline = lanes_of(&store).inline.as_ref().unwrap();
    let wrote = inline.try_read(|c| {
        c.execute(
            "INSERT INTO id_map (resource_type, scim_id, legacy_id) VALUES ('User', 'u9', 'l9')",
            (),
        )
    });
    assert_eq!(wrote, None, "the inline connection wrote");
    assert!(
        store
            .by_scim_id("User", &ScimId::from("u9"))
            .await
            .unwrap()
            .is_none()
    );
    let held = inline.hold();
    assert!(inline.try_read(|_| Ok(())).is_none());
    let found = legacy_of_within(&store, "e1", "the lookup waited for the inline connection").await;
    assert_eq!(found, Some(LegacyId::from("l1")));
    drop(held);
    remove_store(store, path).await;
}

fn user_map(scim: &str, legacy: &str, external: Option<&str>) -> IdMapping {
    IdMapping {
        resource_type: "User".into(),
        scim_id: scim.into(),
        legacy_id: legacy.into(),
        external_id: external.map(ExternalId::from),
    }
}

async fn sync_status(db: TestDb) {
    let s = &db.store;
    let empty = s.status().await.unwrap();
    assert_eq!(
        empty,
        SyncState {
            last_request: None,
            users_managed: 0,
            groups_managed: 0,
            errors_24h: 0,
            rejected_24h: 0,
        }
    );

    let now = Utc::now();
    s.record_request(now - Duration::seconds(10)).await.unwrap();
    s.record_request(now).await.unwrap();
    s.record_request(now - Duration::seconds(5)).await.unwrap();
    assert_eq!(s.status().await.unwrap().last_request, Some(db_time(now)));

    s.put(&user_map("u1", "1", None)).await.unwrap();
    s.put(&user_map("u2", "2", None)).await.unwrap();
    s.put(&IdMapping {
        resource_type: "Group".into(),
        ..user_map("g1", "10", None)
    })
    .await
    .unwrap();
    s.create_group("Sales", None).await.unwrap();
    for (age, status) in [(1, 500), (2, 503), (3, 404), (4, 200), (25 * 60, 500)] {
        s.append(&audit(now - Duration::minutes(age), "patch", status))
            .await
            .unwrap();
    }
    let st = s.status().await.unwrap();
    assert_eq!(st.users_managed, 2);
    assert_eq!(st.groups_managed, 2);
    // A managed group the gateway also put in the id map is counted once.
    let mapped = s.create_group("Mapped", None).await.unwrap();
    s.put(&IdMapping {
        resource_type: "Group".into(),
        ..user_map(mapped.id.as_str(), mapped.id.as_str(), None)
    })
    .await
    .unwrap();
    assert_eq!(s.status().await.unwrap().groups_managed, 3);
    assert_eq!(st.errors_24h, 2, "the 25-hour-old failure is not counted");
    assert_eq!(st.rejected_24h, 1);
}

async fn id_map(db: TestDb) {
    let s = &db.store;
    let alice = user_map("scim-a", "101", Some("ext-a"));
    s.put(&alice).await.unwrap();
    s.put(&user_map("scim-b", "102", None)).await.unwrap();

    assert_eq!(
        s.by_scim_id("User", &"scim-a".into()).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.by_legacy_id("User", &"101".into()).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.by_external_id("User", &"ext-a".into()).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.by_scim_id("Group", &"scim-a".into()).await.unwrap(), None);
    assert_eq!(
        s.by_external_id("User", &"nope".into()).await.unwrap(),
        None
    );

    // Re-put replaces the externalId.
    let renamed = user_map("scim-a", "101", Some("ext-a2"));
    s.put(&renamed).await.unwrap();
    assert_eq!(
        s.by_external_id("User", &"ext-a".into()).await.unwrap(),
        None
    );
    assert_eq!(
        s.by_legacy_id("User", &"101".into()).await.unwrap(),
        Some(renamed)
    );

    // A legacy id or externalId belongs to one SCIM id per type.
    let clash = s.put(&user_map("scim-c", "101", None)).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let clash = s.put(&user_map("scim-c", "103", Some("ext-a2"))).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let group = IdMapping {
        resource_type: "Group".into(),
        ..user_map("scim-c", "101", Some("ext-a2"))
    };
    s.put(&group).await.unwrap();

    assert!(s.remove("User", &"scim-a".into()).await.unwrap());
    assert!(!s.remove("User", &"scim-a".into()).await.unwrap());
    assert_eq!(s.by_legacy_id("User", &"101".into()).await.unwrap(), None);
    assert_eq!(
        s.by_legacy_id("Group", &"101".into()).await.unwrap(),
        Some(group)
    );
}

fn ids(names: &[&str]) -> Vec<ScimId> {
    names.iter().map(|n| ScimId::from(*n)).collect()
}

/// The ids of the groups `member` is in, as `groups_of` orders them.
async fn group_ids_of(s: &Store, member: &str) -> Vec<ScimId> {
    s.groups_of(&member.into())
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect()
}

async fn groups(db: TestDb) {
    let s = &db.store;
    let ext = ExternalId::from("entra-sales");
    let sales = s.create_group("Sales", Some(&ext)).await.unwrap();
    let ops = s.create_group("Ops", None).await.unwrap();
    assert_eq!(s.get_group(&sales.id).await.unwrap(), Some(sales.clone()));
    assert_eq!(s.list_groups(0, 10).await.unwrap().len(), 2);
    assert_eq!(s.list_groups(1, 10).await.unwrap().len(), 1);

    assert_eq!(
        s.add_members(&sales.id, &ids(&["u3", "u1", "u2", "u1"]))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.add_members(&sales.id, &ids(&["u1", "u4"])).await.unwrap(),
        1
    );
    assert_eq!(s.add_members(&ops.id, &ids(&["u1"])).await.unwrap(), 1);
    assert_eq!(
        s.members(&sales.id, 0, 10).await.unwrap(),
        ids(&["u1", "u2", "u3", "u4"])
    );
    assert_eq!(
        s.members(&sales.id, 1, 2).await.unwrap(),
        ids(&["u2", "u3"])
    );
    let mut of_u1 = vec![sales.id.clone(), ops.id.clone()];
    of_u1.sort();
    assert_eq!(group_ids_of(s, "u1").await, of_u1);
    let named: Vec<String> = s
        .groups_of(&"u1".into())
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.display_name)
        .collect();
    assert_eq!(named.len(), 2);
    assert!(named.contains(&"Sales".to_string()) && named.contains(&"Ops".to_string()));

    assert_eq!(
        s.remove_members(&sales.id, &ids(&["u1", "nobody"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(group_ids_of(s, "u1").await, vec![ops.id.clone()]);
    let after = s.get_group(&sales.id).await.unwrap().unwrap();
    assert!(after.modified >= sales.modified);
    assert_eq!(after.created, sales.created);

    let renamed = s.update_group(&sales.id, "Sales EMEA", None).await.unwrap();
    assert_eq!(renamed.display_name, "Sales EMEA");
    assert_eq!(renamed.external_id, None);

    let ghost = ScimId::from("no-such-group");
    assert!(matches!(
        s.add_members(&ghost, &ids(&["u1"])).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.remove_members(&ghost, &ids(&["u1"])).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_group(&ghost, "x", None).await,
        Err(StoreError::NotFound)
    ));

    assert!(s.delete_group(&sales.id).await.unwrap());
    assert!(!s.delete_group(&sales.id).await.unwrap());
    assert_eq!(s.get_group(&sales.id).await.unwrap(), None);
    assert_eq!(s.members(&sales.id, 0, 10).await.unwrap(), vec![]);
    assert_eq!(group_ids_of(s, "u2").await, vec![]);
    assert_eq!(group_ids_of(s, "u1").await, vec![ops.id.clone()]);

    // A deleted user leaves every group at once.
    s.add_members(&ops.id, &ids(&["u9"])).await.unwrap();
    let before = s.get_group(&ops.id).await.unwrap().unwrap();
    assert_eq!(s.drop_member(&"u1".into()).await.unwrap(), 1);
    assert_eq!(s.drop_member(&"u1".into()).await.unwrap(), 0);
    assert_eq!(group_ids_of(s, "u1").await, vec![]);
    assert_eq!(s.members(&ops.id, 0, 10).await.unwrap(), ids(&["u9"]));
    assert!(s.get_group(&ops.id).await.unwrap().unwrap().modified >= before.modified);
}

async fn group_names_are_unique_ignoring_case_and_indexed(db: TestDb) {
    let s = &db.store;
    let ext = ExternalId::from("entra-obj-1");
    let admins = s.create_group("App Admins", Some(&ext)).await.unwrap();
    let clash = s.create_group("app ADMINS", None).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    let other = s.create_group("Ärzte", None).await.unwrap();
    // Unicode case folding, the same as the SCIM filter evaluator's.
    let clash = s.create_group("äRZTE", None).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(s.count_groups().await.unwrap(), 2);

    assert_eq!(
        s.group_by_display_name("APP admins").await.unwrap(),
        Some(admins.clone())
    );
    assert_eq!(s.group_by_display_name("nobody").await.unwrap(), None);
    assert_eq!(
        s.groups_by_external_id(&ext).await.unwrap(),
        vec![admins.clone()]
    );
    assert_eq!(
        s.groups_by_external_id(&"ENTRA-OBJ-1".into())
            .await
            .unwrap(),
        vec![],
        "externalId is compared exactly"
    );

    // Renaming onto another group's name is a conflict and changes nothing; renaming to a
    // different case of the group's own name is fine.
    let clash = s.update_group(&other.id, "app admins", None).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(
        s.get_group(&other.id).await.unwrap().unwrap().display_name,
        "Ärzte"
    );
    let renamed = s
        .update_group(&admins.id, "APP ADMINS", Some(&ext))
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "APP ADMINS");
    assert_eq!(
        s.group_by_display_name("app admins")
            .await
            .unwrap()
            .map(|g| g.id),
        Some(admins.id.clone())
    );
    // The freed name can be taken again.
    s.delete_group(&admins.id).await.unwrap();
    s.create_group("App Admins", None).await.unwrap();

    // The lookups are index reads, not scans.
    if let Store::Sqlite(SqliteStore { pool, .. }) = s {
        for (sql, arg) in [
            ("SELECT id FROM groups WHERE display_key = $1", "x"),
            ("SELECT id FROM groups WHERE external_id = $1", "x"),
        ] {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind(arg)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let plan: Vec<String> = rows.into_iter().map(|r| r.3).collect();
            assert!(
                plan.iter()
                    .any(|p| p.contains("USING INDEX") || p.contains("USING COVERING INDEX")),
                "{sql}: {plan:?}"
            );
        }
    }
}

/// The query plan of a membership statement as text, with its parameters bound.
async fn plan(store: &Store, sql: &str, group: &str, member: &str) -> String {
    match store {
        Store::Sqlite(SqliteStore { pool, .. }) => {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind(group)
                    .bind(member)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
        }
        Store::Postgres(pool) => {
            sqlx::query("ANALYZE group_members")
                .execute(pool)
                .await
                .unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
                .bind(group)
                .bind(member)
                .fetch_all(pool)
                .await
                .unwrap();
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
        }
    }
}

async fn one_member_change_in_a_100k_group_touches_only_that_member(db: TestDb) {
    let s = &db.store;
    let big = s.create_group("Everyone", None).await.unwrap();
    let everyone: Vec<ScimId> = (0..100_000)
        .map(|i| ScimId(format!("user-{i:06}")))
        .collect();
    assert_eq!(s.add_members(&big.id, &everyone).await.unwrap(), 100_000);

    let newcomer = ids(&["user-new"]);
    assert_eq!(s.add_members(&big.id, &newcomer).await.unwrap(), 1);
    assert_eq!(s.members(&big.id, 100_000, 10).await.unwrap(), newcomer);
    assert_eq!(
        s.remove_members(&big.id, &ids(&["user-050000"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(group_ids_of(s, "user-050000").await, vec![]);
    assert_eq!(group_ids_of(s, "user-050001").await, vec![big.id.clone()]);
    assert_eq!(s.members(&big.id, 99_999, 10).await.unwrap().len(), 1);

    // What makes those calls O(1): the statements they run (one UPDATE of the group, one
    // INSERT or DELETE for the member) are keyed lookups, never a scan of the membership.
    let gid = big.id.as_str();
    let delete = plan(s, &super::groups::delete_members_sql(1), gid, "user-1").await;
    match s {
        Store::Sqlite(_) => {
            assert!(delete.contains("USING PRIMARY KEY"), "{delete}");
            assert!(!delete.contains("SCAN"), "{delete}");
            // SQLite binds loosely, so the timestamp parameter can be any text here.
            let touch = plan(s, super::groups::TOUCH_GROUP_SQL, gid, "now").await;
            assert!(
                touch.contains("USING INDEX") && !touch.contains("SCAN"),
                "{touch}"
            );
        }
        Store::Postgres(_) => {
            assert!(
                delete.contains("Index") && !delete.contains("Seq Scan"),
                "{delete}"
            );
        }
    }
    let insert = super::groups::insert_members_sql(1);
    assert_eq!(
        insert.matches('$').count(),
        2,
        "one row per member: {insert}"
    );
}

#[tokio::test]
async fn reopening_the_sqlite_file_keeps_everything() {
    let path = temp_sqlite_path();
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).await.unwrap();
    let (key_info, key) = store.create_key("entra", None).await.unwrap();
    store.set_password("legacy", "pw-123456").await.unwrap();
    let entry = audit(Utc::now(), "create", 201);
    store.append(&entry).await.unwrap();
    let now = Utc::now();
    store.record_request(now).await.unwrap();
    store.put(&user_map("u1", "1", Some("e1"))).await.unwrap();
    let g = store.create_group("Sales", None).await.unwrap();
    store.add_members(&g.id, &ids(&["u1", "u2"])).await.unwrap();
    store.close().await;

    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.verify(&key).await.unwrap().unwrap().id, key_info.id);
    assert!(store.verify_password("legacy", "pw-123456").await.unwrap());
    let got = store.query(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        got,
        vec![AuditEntry {
            time: db_time(entry.time),
            ..entry
        }]
    );
    let st = store.status().await.unwrap();
    assert_eq!(st.last_request, Some(db_time(now)));
    assert_eq!((st.users_managed, st.groups_managed), (1, 1));
    assert!(
        store
            .by_external_id("User", &"e1".into())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.members(&g.id, 0, 10).await.unwrap(),
        ids(&["u1", "u2"])
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn memory_store_and_bad_urls() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    store.put(&user_map("u", "1", None)).await.unwrap();
    assert!(
        store
            .by_scim_id("User", &"u".into())
            .await
            .unwrap()
            .is_some()
    );
    let err = Store::open("mysql://root:hunter2@db/x").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn new_plan(id: &str, rid: &str, slot: &str, steps: usize) -> NewPlan {
    NewPlan {
        id: id.into(),
        resource_type: "User".into(),
        resource_id: rid.into(),
        slot: slot.into(),
        kind: "on_deactivate".into(),
        label: Some("adele@example.com".into()),
        steps: serde_json::Value::Array(
            (0..steps)
                .map(|i| serde_json::json!({"method": "POST", "path": format!("/s/{i}")}))
                .collect(),
        ),
        needs_caller: false,
    }
}

async fn plans_lifecycle(db: TestDb) {
    let s = &db.store;
    let now = now_ms();
    s.begin_plan(&new_plan("p1", "7", "active", 2), "me", now + 60_000)
        .await
        .unwrap();
    let p = s.slot_plan("User", "7", "active").await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.done, p.step_count()),
        (PlanState::Pending, 0, 2)
    );
    assert!(p.running(now), "a fresh plan is leased to its runner");
    assert_eq!(p.label.as_deref(), Some("adele@example.com"));
    // Nobody else can move it, and the worker cannot claim a leased plan.
    assert!(!s.plan_progress("p1", "other", 1, now).await.unwrap());
    assert!(
        s.claim_due_plans("w", now, now + 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.plan_progress("p1", "me", 1, now + 60_000).await.unwrap());
    // A failed attempt: pending again, lease released, due later.
    assert!(
        s.plan_attempt_failed("p1", "me", 1, "503 on step 2", Some(now + 5_000))
            .await
            .unwrap()
    );
    let p = s.plan("p1").await.unwrap().unwrap();
    assert_eq!((p.state, p.done, p.attempts), (PlanState::Pending, 1, 1));
    assert_eq!(p.last_error.as_deref(), Some("503 on step 2"));
    assert!(!p.running(now));
    assert_eq!(
        s.plan_counts().await.unwrap(),
        PlanCounts {
            pending: 1,
            failed: 0
        }
    );
    // Not due yet; due later.
    assert!(
        s.claim_due_plans("w", now, now + 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = s
        .claim_due_plans("w", now + 5_000, now + 65_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("w"));
    // The first runner lost it.
    assert!(!s.plan_complete("p1", "me", 2).await.unwrap());
    assert!(s.plan_complete("p1", "w", 2).await.unwrap());
    let p = s.slot_plan("User", "7", "active").await.unwrap().unwrap();
    assert_eq!((p.state, p.done), (PlanState::Done, 2));
    assert_eq!(s.plan_counts().await.unwrap(), PlanCounts::default());

    // A new plan replaces its slot; a delete replaces every slot of the resource.
    s.begin_plan(&new_plan("p2", "7", "membership", 1), "me", now + 60_000)
        .await
        .unwrap();
    s.begin_plan(&new_plan("p3", "7", "active", 1), "me", now + 60_000)
        .await
        .unwrap();
    assert!(
        s.plan("p1").await.unwrap().is_none(),
        "replaced in its slot"
    );
    assert!(s.plan("p2").await.unwrap().is_some(), "other slots stay");
    s.begin_plan(&new_plan("p4", "7", "delete", 1), "me", now + 60_000)
        .await
        .unwrap();
    assert!(s.plan("p2").await.unwrap().is_none());
    assert!(s.plan("p3").await.unwrap().is_none());
    // The replaced runner's writes affect nothing.
    assert!(!s.plan_progress("p3", "me", 1, now).await.unwrap());

    // Spent attempts → failed; the operator retries or abandons.
    assert!(
        s.plan_attempt_failed("p4", "me", 0, "gone", None)
            .await
            .unwrap()
    );
    assert_eq!(
        s.plan_counts().await.unwrap(),
        PlanCounts {
            pending: 0,
            failed: 1
        }
    );
    let failed = s.plans_in(&[PlanState::Failed], 10).await.unwrap();
    assert_eq!(
        failed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p4"]
    );
    assert!(s.retry_plan_now("p4").await.unwrap());
    let p = s.plan("p4").await.unwrap().unwrap();
    assert_eq!((p.state, p.attempts), (PlanState::Pending, 0));
    assert!(s.abandon_plan("p4").await.unwrap());
    assert!(!s.abandon_plan("p4").await.unwrap(), "only waiting plans");
    assert!(!s.retry_plan_now("p4").await.unwrap());
    assert_eq!(
        s.plan("p4").await.unwrap().unwrap().state,
        PlanState::Abandoned
    );

    // A plan that needs the caller's credential is never claimed by the worker.
    let mut p5 = new_plan("p5", "8", "active", 1);
    p5.needs_caller = true;
    s.begin_plan(&p5, "me", now - 1).await.unwrap();
    assert!(
        s.claim_due_plans("w", now + 10, now + 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Releasing leases (a SQLite store's process restarting) frees running plans.
    s.begin_plan(&new_plan("p6", "9", "active", 1), "dead", now + 3_600_000)
        .await
        .unwrap();
    assert!(s.release_plan_leases().await.unwrap() >= 1);
    let claimed = s
        .claim_due_plans("w", now_ms() + 10, now + 1000, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p6"]
    );

    // Concurrent replacements of one slot (two replicas' requests) leave exactly one plan.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let p = new_plan(&format!("race{i}"), "race", "active", 1);
            s.begin_plan(&p, &format!("r{i}"), now_ms() + 60_000)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let racing: Vec<_> = s
        .plans_in(&[PlanState::Pending], 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.resource_id == "race")
        .collect();
    assert_eq!(racing.len(), 1, "{racing:?}");
    let winner = &racing[0];
    // Only the winner's runner can move it.
    let owner = winner.lease_owner.clone().unwrap();
    assert!(s.plan_complete(&winner.id, &owner, 1).await.unwrap());
}

/// Several claimers racing over the same due plans: each plan is claimed exactly once.
async fn plans_are_claimed_once(db: TestDb) {
    let s = &db.store;
    let now = now_ms();
    for i in 0..40 {
        let p = new_plan(&format!("c{i}"), &i.to_string(), "active", 1);
        s.begin_plan(&p, "gone", now - 1).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_due_plans(&format!("w{w}"), now_ms(), now_ms() + 60_000, 3)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|p| p.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40), "every plan claimed exactly once");
}

async fn tombstones(db: TestDb) {
    let s = &db.store;
    let t = |id: &str, name: &str, ext: Option<&str>| Tombstone {
        resource_type: "User".into(),
        scim_id: id.into(),
        name_key: Some(name.into()),
        external_id: ext.map(str::to_string),
        deleted_ms: now_ms(),
    };
    assert!(!s.is_tombstoned("User", "1").await.unwrap());
    s.put_tombstone(&t("1", "ada@example.com", Some("ext-1")))
        .await
        .unwrap();
    s.put_tombstone(&t("2", "bea@example.com", None))
        .await
        .unwrap();
    // Again: replaced, not duplicated.
    s.put_tombstone(&t("2", "bea@example.com", None))
        .await
        .unwrap();
    assert!(s.is_tombstoned("User", "1").await.unwrap());
    assert!(!s.is_tombstoned("Group", "1").await.unwrap());
    assert_eq!(s.tombstone_count("User").await.unwrap(), 2);
    assert!(s.any_tombstoned("User").await.unwrap());
    assert!(!s.any_tombstoned("Group").await.unwrap());
    let among = s
        .tombstoned_among("User", &["1".into(), "3".into(), "2".into()])
        .await
        .unwrap();
    assert_eq!(among.len(), 2);
    assert!(among.contains("1") && among.contains("2"));
    let by_name = s
        .tombstone_matching("User", Some("bea@example.com"), None)
        .await
        .unwrap();
    assert_eq!(by_name.map(|t| t.scim_id), Some("2".to_string()));
    let by_ext = s
        .tombstone_matching("User", Some("new@example.com"), Some("ext-1"))
        .await
        .unwrap();
    assert_eq!(by_ext.map(|t| t.scim_id), Some("1".to_string()));
    assert!(
        s.tombstone_matching("User", Some("new@example.com"), Some("ext-9"))
            .await
            .unwrap()
            .is_none()
    );
    let listed = s.tombstones("User", 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(s.remove_tombstone("User", "1").await.unwrap());
    assert!(!s.remove_tombstone("User", "1").await.unwrap());
    assert!(!s.is_tombstoned("User", "1").await.unwrap());
    assert_eq!(s.tombstone_count("User").await.unwrap(), 1);
    assert!(s.remove_tombstone("User", "2").await.unwrap());
    assert!(!s.any_tombstoned("User").await.unwrap());
}
