//! Username/password pairs for clients that can only send HTTP Basic auth.
//!
//! Passwords are chosen by people, so they get a slow, salted hash: argon2id with the crate's
//! defaults (19 MiB, 2 passes), stored as a PHC string that carries salt and parameters, so
//! parameters can be raised later without breaking stored hashes. Hashing runs on the blocking
//! pool because it takes tens of milliseconds of CPU.

use super::{Store, StoreError, StoreResult, db_time, with_pool};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::Utc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
}

fn hash_password(password: &str) -> StoreResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the PHC string; a malformed stored hash never matches.
fn check_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
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
