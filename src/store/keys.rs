//! API keys for Entra's bearer token and for admin clients.
//!
//! A key reads `sgk_<public id>_<secret>`: 8 random bytes of public id and 32 random bytes of
//! secret, both lowercase hex. The public id finds the row; only the SHA-256 of the whole key
//! is stored, and it is compared in constant time. 256 random bits cannot be guessed, so a
//! slow password hash would add latency to every request and no safety.

use super::{Store, StoreError, StoreResult, db_time, with_pool};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;

const PREFIX: &str = "sgk_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
/// `last_used` is written at most this often per key, so verifying is a read on most requests.
const LAST_USED_GRANULARITY: Duration = Duration::seconds(60);

/// The public part of a key: shown in lists and logs, useless without the secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the store knows about a key; never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Public id, the `<public id>` part of the key.
    pub id: KeyId,
    /// Name given at creation (e.g. "entra-prod"); recorded as the audit actor.
    pub name: String,
    /// When the key was issued.
    pub created: DateTime<Utc>,
    /// When the key stops working; `None` for never.
    pub expires: Option<DateTime<Utc>>,
    /// Last successful verification, to within a minute; `None` if never used.
    pub last_used: Option<DateTime<Utc>>,
    /// When the key was revoked; `None` while it is live.
    pub revoked: Option<DateTime<Utc>>,
}

impl KeyInfo {
    /// Whether the key is accepted at `now`: not revoked and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked.is_none() && self.expires.is_none_or(|e| now < e)
    }
}

/// Issues, checks, lists and revokes API keys.
pub trait KeyStore: Send + Sync {
    /// Issues a key named `name`, valid until `expires` (or forever). Runs when ops create a
    /// key (CLI or admin UI); the returned string is the full key, shown once and never
    /// recoverable.
    fn create_key(
        &self,
        name: &str,
        expires: Option<DateTime<Utc>>,
    ) -> impl Future<Output = StoreResult<(KeyInfo, String)>> + Send;

    /// Checks a presented key on every authenticated request. `Some` only for a well-formed,
    /// known, unrevoked, unexpired key; records the use (at most once a minute per key).
    fn verify(&self, key: &str) -> impl Future<Output = StoreResult<Option<KeyInfo>>> + Send;

    /// All keys, newest first, revoked ones included, for the admin page.
    fn list_keys(&self) -> impl Future<Output = StoreResult<Vec<KeyInfo>>> + Send;

    /// Revokes a key at once. `false` when no key has that id; revoking twice keeps the first
    /// revocation time.
    fn revoke_key(&self, id: &KeyId) -> impl Future<Output = StoreResult<bool>> + Send;
}

type KeyRow = (
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const KEY_COLUMNS: &str = "id, name, created_at, expires_at, last_used_at, revoked_at";

fn key_info(row: KeyRow) -> KeyInfo {
    let (id, name, created, expires, last_used, revoked) = row;
    KeyInfo {
        id: KeyId(id),
        name,
        created,
        expires,
        last_used,
        revoked,
    }
}

fn random_hex(n: usize) -> StoreResult<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| StoreError::Internal(format!("no randomness for key: {e}")))?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The public id of a well-formed key; `None` for anything else, so garbage never reaches SQL.
fn parse_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let is_hex = |s: &str, n: usize| s.len() == n * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex(id, ID_BYTES) && is_hex(secret, SECRET_BYTES)).then_some(id)
}

fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl KeyStore for Store {
    async fn create_key(
        &self,
        name: &str,
        expires: Option<DateTime<Utc>>,
    ) -> StoreResult<(KeyInfo, String)> {
        let id = random_hex(ID_BYTES)?;
        let key = format!("{PREFIX}{id}_{}", random_hex(SECRET_BYTES)?);
        let info = KeyInfo {
            id: KeyId(id),
            name: name.to_string(),
            created: db_time(Utc::now()),
            expires: expires.map(db_time),
            last_used: None,
            revoked: None,
        };
        let sql = "INSERT INTO api_keys (id, name, secret_hash, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(&info.id.0)
            .bind(&info.name)
            .bind(key_hash(&key))
            .bind(info.created)
            .bind(info.expires)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok((info, key))
    }

    async fn verify(&self, key: &str) -> StoreResult<Option<KeyInfo>> {
        let Some(id) = parse_key(key) else {
            return Ok(None);
        };
        let sql = format!("SELECT {KEY_COLUMNS}, secret_hash FROM api_keys WHERE id = $1");
        type Row = (
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Vec<u8>,
        );
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        let Some((id, name, created, expires, last_used, revoked, stored)) = row else {
            return Ok(None);
        };
        if !bool::from(key_hash(key).as_slice().ct_eq(stored.as_slice())) {
            return Ok(None);
        }
        let mut info = key_info((id, name, created, expires, last_used, revoked));
        let now = db_time(Utc::now());
        if !info.is_active(now) {
            return Ok(None);
        }
        if info
            .last_used
            .is_none_or(|t| now - t >= LAST_USED_GRANULARITY)
        {
            let sql = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";
            with_pool!(self, pool => sqlx::query(sql)
                .bind(&info.id.0)
                .bind(now)
                .execute(pool)
                .await
            .map(|_| ()))?;
            info.last_used = Some(now);
        }
        Ok(Some(info))
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyInfo>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id");
        let rows: Vec<KeyRow> =
            with_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(key_info).collect())
    }

    async fn revoke_key(&self, id: &KeyId) -> StoreResult<bool> {
        // Counted before and after: a verification cached while the UPDATE runs is stale too.
        KEY_REVOCATIONS.fetch_add(1, Ordering::AcqRel);
        let sql = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
        let done = with_pool!(self, pool => sqlx::query(sql)
            .bind(&id.0)
            .bind(db_time(Utc::now()))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        KEY_REVOCATIONS.fetch_add(1, Ordering::AcqRel);
        Ok(done > 0)
    }
}

/// An API key declared in the configuration (`[auth] api_keys`, e.g. from a mounted
/// secret): `<public id>:<SHA-256 of the whole key, hex>:<name>`. Only the hash is declared,
/// so the secret that holds it cannot be used as a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKey {
    /// The key's public id (16 hex digits).
    pub id: KeyId,
    /// SHA-256 of the whole key.
    pub hash: Vec<u8>,
    /// The name shown in lists and the audit log.
    pub name: String,
}

impl DeclaredKey {
    /// Parses one `[auth] api_keys` entry; `None` when it is not `id:sha256hex:name`.
    pub fn parse(line: &str) -> Option<DeclaredKey> {
        let mut parts = line.trim().splitn(3, ':');
        let (id, hash, name) = (parts.next()?, parts.next()?, parts.next()?.trim());
        let is_hex =
            |s: &str, n: usize| s.len() == n * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hex(id, ID_BYTES) || !is_hex(hash, 32) || name.is_empty() {
            return None;
        }
        let hash = (0..32)
            .map(|i| u8::from_str_radix(&hash[i * 2..i * 2 + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(DeclaredKey {
            id: KeyId(id.to_ascii_lowercase()),
            hash,
            name: name.to_string(),
        })
    }

    /// A new random key and the `[auth] api_keys` line that declares it (`scimgate token
    /// new`); nothing is stored.
    pub fn generate(name: &str) -> StoreResult<(String, String)> {
        let id = random_hex(ID_BYTES)?;
        let key = format!("{PREFIX}{id}_{}", random_hex(SECRET_BYTES)?);
        let line = format!("{id}:{}:{name}", hex(&key_hash(&key)));
        Ok((key, line))
    }
}

impl Store {
    /// Makes the store's declared keys what `keys` declares (runs at start and after each
    /// reload, also with none declared): a missing one is added; a declared key no longer
    /// listed is withdrawn (refused like a revoked one) and is live again if its line comes
    /// back; a revocation on the admin page or by the CLI stays; a declared id that exists
    /// with another secret is an error naming the id. Keys made with the CLI or the admin
    /// page and never declared are not touched. Returns (added, withdrawn).
    pub async fn ensure_keys(&self, keys: &[DeclaredKey]) -> StoreResult<(usize, usize)> {
        let mut added = 0;
        for k in keys {
            let sql = "INSERT INTO api_keys (id, name, secret_hash, created_at, expires_at, \
                       declared) VALUES ($1, $2, $3, $4, NULL, 1) ON CONFLICT (id) DO NOTHING";
            let n = with_pool!(self, pool => sqlx::query(sql)
                .bind(&k.id.0)
                .bind(&k.name)
                .bind(&k.hash)
                .bind(db_time(Utc::now()))
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
            if n > 0 {
                added += 1;
                continue;
            }
            let sql = "SELECT secret_hash FROM api_keys WHERE id = $1";
            let stored: Option<(Vec<u8>,)> = with_pool!(self, pool => sqlx::query_as(sql)
                .bind(&k.id.0)
                .fetch_optional(pool)
                .await)?;
            if stored.is_some_and(|(h,)| h != k.hash) {
                return Err(StoreError::Internal(format!(
                    "declared API key {} exists in the store with another secret",
                    k.id
                )));
            }
            // The same key made earlier with the CLI: from now on the configuration owns it.
            // One withdrawn by removing its line (declared = 2) is live again; one revoked on
            // the admin page or by the CLI stays revoked.
            let sql = "UPDATE api_keys SET declared = 1, revoked_at = CASE WHEN declared = 2 \
                       THEN NULL ELSE revoked_at END WHERE id = $1 AND declared <> 1";
            with_pool!(self, pool => sqlx::query(sql)
                .bind(&k.id.0)
                .execute(pool)
                .await
                .map(|_| ()))?;
        }
        let sql = "SELECT id FROM api_keys WHERE declared = 1";
        let declared: Vec<(String,)> =
            with_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await)?;
        let mut withdrawn = 0;
        for (id,) in declared {
            if keys.iter().any(|k| k.id.0 == id) {
                continue;
            }
            // Counted before and after, as in `revoke_key`: caches drop what they verified.
            KEY_REVOCATIONS.fetch_add(1, Ordering::AcqRel);
            let sql = "UPDATE api_keys SET declared = 2, revoked_at = COALESCE(revoked_at, $2) \
                       WHERE id = $1";
            with_pool!(self, pool => sqlx::query(sql)
                .bind(&id)
                .bind(db_time(Utc::now()))
                .execute(pool)
                .await
                .map(|_| ()))?;
            KEY_REVOCATIONS.fetch_add(1, Ordering::AcqRel);
            withdrawn += 1;
        }
        Ok((added, withdrawn))
    }
}

/// Key revocations made by this process (any store), for caches of verified keys: an entry
/// made before the count last changed is not used again.
static KEY_REVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// How many key revocations this process has made (admin page, CLI); runs on every cached API
/// key check.
pub fn key_revocations() -> u64 {
    KEY_REVOCATIONS.load(Ordering::Acquire)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn only_well_formed_keys_parse() {
        let good = format!("sgk_{}_{}", "a1".repeat(8), "0f".repeat(32));
        assert_eq!(parse_key(&good), Some("a1a1a1a1a1a1a1a1"));
        assert_eq!(parse_key(&good[1..]), None);
        assert_eq!(parse_key(&good[..good.len() - 1]), None);
        assert_eq!(parse_key(&good.replace("0f", "zz")), None);
        assert_eq!(parse_key("sgk__"), None);
        assert_eq!(parse_key(""), None);
    }

    #[test]
    fn generated_parts_are_hex_of_the_right_length() {
        let a = random_hex(SECRET_BYTES).unwrap();
        let b = random_hex(SECRET_BYTES).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

/// Parses a key lifetime for `scimgate token create --expires`: `90d`, `12h`, `30m` or
/// `never` (`None`). `Err` says what is accepted.
pub fn parse_lifetime(text: &str) -> Result<Option<chrono::Duration>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let bad = || format!("--expires `{text}`: expected e.g. 90d, 12h, 30m or never");
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let d = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => None,
    };
    match d {
        Some(d) if n > 0 => Ok(Some(d)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod lifetime_tests {
    use super::parse_lifetime;

    #[test]
    fn lifetimes_parse() {
        assert_eq!(parse_lifetime("never"), Ok(None));
        assert_eq!(parse_lifetime("90d"), Ok(Some(chrono::Duration::days(90))));
        assert_eq!(parse_lifetime("12h"), Ok(Some(chrono::Duration::hours(12))));
        assert_eq!(
            parse_lifetime("30m"),
            Ok(Some(chrono::Duration::minutes(30)))
        );
        for bad in ["", "d", "0d", "-1d", "5w", "1.5h", "99999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
