//! Username/password pairs for clients that can only send HTTP Basic auth.
//!
//! Passwords are chosen by people, so they get a slow, salted hash: argon2id with the crate's
//! defaults (19 MiB, 2 passes), stored as a PHC string that carries salt and parameters, so
//! parameters can be raised later without breaking stored hashes. Hashing runs on the blocking
//! pool because it takes tens of milliseconds of CPU.

use super::{Store, StoreError, StoreResult, db_time, with_pool};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use chrono::Utc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Stores and checks Basic-auth credentials.
pub trait BasicCredentials: Send + Sync {
    /// Sets (or replaces) the password of `username`. Runs when ops add a Basic-auth client.
    fn set_password(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Checks a Basic-auth pair on a request. `false` for an unknown user or a wrong password;
    /// both take about the same time, so the answer does not reveal which users exist, but
    /// only a known user's check runs argon2 (an unknown one waits instead).
    fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Removes `username`; `false` if there was no such user.
    fn remove_user(&self, username: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Whether any Basic user exists (the gateway then measures a check's time at start).
    fn has_basic_users(&self) -> impl Future<Output = StoreResult<bool>> + Send;
}

fn hash_password(password: &str) -> StoreResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Internal(format!("password hashing failed: {e}")))
}

/// Largest argon2 memory a stored hash may ask for (64 MiB, in 1 KiB blocks); a hash with
/// more never matches, so a tampered row cannot make checks allocate without bound.
const MAX_BLOCKS: usize = 64 * 1024;

/// Most argon2 passes a declared hash may ask for (the default is 2).
const MAX_PASSES: u32 = 10;

/// Memory buffers of finished checks, kept for the next ones. argon2 needs ~19 MiB per check;
/// allocated and freed per check on whatever thread ran it, glibc keeps such blocks in each
/// thread's arena, and the process grew by hundreds of MB under a flood of wrong passwords.
/// Reused buffers keep it at a few of them.
static BUFFERS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Buffers kept: as many as checks may run at once (`[auth] max_password_checks`, set at
/// start by [`keep_check_buffers`]; 2 by default).
static KEPT_BUFFERS: AtomicUsize = AtomicUsize::new(2);

/// Keeps `n` argon2 buffers for reuse: one per check that may run at once. Runs at start.
pub fn keep_check_buffers(n: usize) {
    KEPT_BUFFERS.store(n.max(1), Ordering::Relaxed);
}

/// Whether `password` matches the PHC string, computed in a reused memory buffer; a
/// malformed stored hash never matches.
fn check_password(phc: &str, password: &str) -> bool {
    let mut blocks = BUFFERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_default();
    let ok = check_password_in(phc, password, &mut blocks);
    let mut kept = BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.len() < KEPT_BUFFERS.load(Ordering::Relaxed) {
        kept.push(blocks);
    }
    ok
}

fn check_password_in(phc: &str, password: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let need = params.block_count();
    if need > MAX_BLOCKS {
        return false;
    }
    if blocks.len() < need {
        blocks.resize(need, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..need])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Seeds the unknown-user wait with one real check's time (of a throwaway hash), so the first
/// unknown-user answers already take as long as a check on this machine. Runs once, in the
/// background, when the gateway starts with a store.
pub async fn calibrate_check_time() {
    let Ok(Ok(phc)) = tokio::task::spawn_blocking(|| hash_password("calibration")).await else {
        return;
    };
    let started = Instant::now();
    if tokio::task::spawn_blocking(move || check_password(&phc, "calibration"))
        .await
        .is_ok()
    {
        record_check_time(started.elapsed());
    }
}

/// How long the last password checks took (µs, moving average), so a check for an unknown
/// user name can answer after the same time without running argon2: the answer does not
/// reveal which users exist, and unknown names cost no memory (argon2 takes ~19 MiB a run).
static CHECK_MICROS: AtomicU64 = AtomicU64::new(0);

/// The time an unknown user's check waits: the measured average, or 40 ms before any check.
fn typical_check_time() -> Duration {
    match CHECK_MICROS.load(Ordering::Relaxed) {
        0 => Duration::from_millis(40),
        us => Duration::from_micros(us),
    }
}

fn record_check_time(took: Duration) {
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
    let prev = CHECK_MICROS.load(Ordering::Relaxed);
    let next = if prev == 0 { us } else { (prev * 7 + us) / 8 };
    CHECK_MICROS.store(next, Ordering::Relaxed);
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("password task failed: {e}")))
}

/// A Basic credential declared in the configuration (`[auth] basic_users`):
/// `<username>:<argon2 PHC string>`, as `scimgate basic hash` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredUser {
    /// The user name.
    pub username: String,
    /// The argon2 hash of the password (PHC string).
    pub phc: String,
}

impl DeclaredUser {
    /// Parses one `[auth] basic_users` entry; `None` unless it is `username:$argon2…` with a
    /// hash that parses.
    pub fn parse(line: &str) -> Option<DeclaredUser> {
        let (username, phc) = line.trim().split_once(':')?;
        let parsed = PasswordHash::new(phc).ok()?;
        // Only hashes a check can use: within the memory bound, and not so many passes that
        // each sign-in attempt for this name costs seconds.
        let params = Params::try_from(&parsed).ok()?;
        (!username.is_empty()
            && !username.contains(char::is_whitespace)
            && Algorithm::try_from(parsed.algorithm).is_ok()
            && parsed.hash.is_some()
            && params.block_count() <= MAX_BLOCKS
            && params.t_cost() <= MAX_PASSES)
            .then(|| DeclaredUser {
                username: username.to_string(),
                phc: phc.to_string(),
            })
    }

    /// The `[auth] basic_users` line for `username` with `password` (`scimgate basic hash`).
    pub async fn hash(username: &str, password: &str) -> StoreResult<String> {
        let password = password.to_string();
        let phc = blocking(move || hash_password(&password)).await??;
        Ok(format!("{username}:{phc}"))
    }
}

impl Store {
    /// Makes the store's declared Basic users what `users` declares (runs at start and after
    /// each reload, also with none declared): each one's hash is set, and a declared user no
    /// longer listed is removed. Users made with `scimgate basic set` are not touched.
    /// Returns how many were removed.
    pub async fn ensure_basic_users(&self, users: &[DeclaredUser]) -> StoreResult<usize> {
        for u in users {
            let sql = "INSERT INTO basic_credentials (username, phc, updated_at, declared) \
                       VALUES ($1, $2, $3, 1) ON CONFLICT (username) DO UPDATE SET \
                       phc = excluded.phc, updated_at = excluded.updated_at, declared = 1";
            with_pool!(self, pool => sqlx::query(sql)
                .bind(&u.username)
                .bind(&u.phc)
                .bind(db_time(Utc::now()))
                .execute(pool)
                .await
                .map(|_| ()))?;
        }
        let sql = "SELECT username FROM basic_credentials WHERE declared = 1";
        let declared: Vec<(String,)> =
            with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?;
        let mut removed = 0;
        for (name,) in declared {
            if !users.iter().any(|u| u.username == name) && self.remove_user(&name).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl BasicCredentials for Store {
    async fn set_password(&self, username: &str, password: &str) -> StoreResult<()> {
        let password = password.to_string();
        let phc = blocking(move || hash_password(&password)).await??;
        let sql = "INSERT INTO basic_credentials (username, phc, updated_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (username) DO UPDATE SET phc = excluded.phc, \
                   updated_at = excluded.updated_at";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(username)
            .bind(&phc)
            .bind(db_time(Utc::now()))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    async fn verify_password(&self, username: &str, password: &str) -> StoreResult<bool> {
        let sql = "SELECT phc FROM basic_credentials WHERE username = $1";
        let row: Option<(String,)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(username)
            .fetch_optional(pool)
            .await)?;
        let Some((phc,)) = row else {
            tokio::time::sleep(typical_check_time()).await;
            return Ok(false);
        };
        let password = password.to_string();
        let started = Instant::now();
        let matches = blocking(move || check_password(&phc, &password)).await?;
        record_check_time(started.elapsed());
        Ok(matches)
    }

    async fn has_basic_users(&self) -> StoreResult<bool> {
        let sql = "SELECT username FROM basic_credentials LIMIT 1";
        let row: Option<(String,)> =
            with_pool!(self, pool => sqlx::query_as(sql).fetch_optional(pool).await)?;
        Ok(row.is_some())
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM basic_credentials WHERE username = $1";
        let n = with_pool!(self, pool => sqlx::query(sql)
            .bind(username)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Declared lines are taken only with a hash a check can use and a plain user name.
    #[test]
    fn declared_users_need_a_usable_hash_and_name() {
        let phc = hash_password("correct horse battery").unwrap();
        let ok = DeclaredUser::parse(&format!("entra:{phc}")).unwrap();
        assert_eq!(ok.username, "entra");
        assert!(check_password(&ok.phc, "correct horse battery"));
        assert_eq!(DeclaredUser::parse(&format!("en tra:{phc}")), None);
        assert_eq!(DeclaredUser::parse(&format!(":{phc}")), None);
        assert_eq!(DeclaredUser::parse("entra:not-a-hash"), None);
        let slow = phc.replace("t=2", "t=1000");
        assert_ne!(slow, phc);
        assert_eq!(
            DeclaredUser::parse(&format!("entra:{slow}")),
            None,
            "t_cost bound"
        );
        let huge = phc.replace("m=19456", "m=4194304");
        assert_ne!(huge, phc);
        assert_eq!(
            DeclaredUser::parse(&format!("entra:{huge}")),
            None,
            "memory bound"
        );
    }

    #[test]
    fn reused_buffers_check_like_the_crate_does() {
        let phc = hash_password("correct horse").unwrap();
        for _ in 0..3 {
            assert!(check_password(&phc, "correct horse"));
            assert!(!check_password(&phc, "correct horsE"));
        }
        assert!(BUFFERS.lock().unwrap().len() <= KEPT_BUFFERS.load(Ordering::Relaxed));
        // The crate's own verifier agrees.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // Malformed or greedy hashes never match.
        assert!(!check_password("not a hash", "x"));
        let greedy = phc.replace("m=19456", "m=4000000");
        assert!(!check_password(&greedy, "correct horse"));
    }
}
