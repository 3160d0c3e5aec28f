//! Authentication of SCIM callers.
//!
//! A bearer credential is either a static token from config (compared in constant time) or an
//! API key (`sgk_…`) issued by `scimgate token create` and checked against the store; neither
//! is ever logged. Static tokens are checked first, so a store outage never locks them out. The check runs as a tower layer before any SCIM parsing, so an unauthenticated
//! caller learns nothing about the resources behind the gateway.
//!
//! A profile whose backend auth is `passthrough` holds no credential of its own: the edge
//! only checks that the caller's credential is well-formed, and the legacy app judges it on
//! every call the request makes (a refusal becomes the caller's 401). Nothing is cached, so
//! a revoked legacy credential stops working at once.
//!
//! Passwords (HTTP Basic, or a password sent as a bearer token) are argon2id-hashed in the
//! store, which is deliberately slow: ~50 ms of CPU per check. Entra sends every request of a
//! sync cycle with the same credential, so a successful check is remembered for
//! [`PASSWORD_CACHE_TTL`] under the SHA-256 of user name and password (never the password
//! itself); a changed or removed password therefore stops working within that time on each
//! running gateway. Failed checks are never cached.

use super::error::AppError;
use super::stage::{Inner, Pending, run};
use crate::backend::{CallerAuth, with_caller};
use crate::config::PassthroughScheme;
use crate::metrics::{Metrics, StoreOp};
use crate::scim::ScimError;
use crate::store::{BasicCredentials, KeyStore, Store};
pub use crate::throttle::PasswordLimits;
use crate::throttle::{CheckSlots, FailureThrottle, client_key, user_key};
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::response::IntoResponse;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a successful password check is remembered.
pub const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);

/// Most remembered password checks; beyond it expired ones are dropped, then all.
const PASSWORD_CACHE_MAX: usize = 1024;

/// Successful password checks by SHA-256 of `user \0 password`, with when they were made.
#[derive(Debug, Clone)]
struct PasswordCache {
    map: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
    ttl: Duration,
}

impl Default for PasswordCache {
    fn default() -> Self {
        PasswordCache::with_ttl(PASSWORD_CACHE_TTL)
    }
}

/// How long a credential that worked is exempt from the throttles: an attacker failing on
/// purpose for Entra's user name (or from a proxy's address Entra shares) must not lock
/// Entra's own (correct) credential out. Such a credential is still checked by argon2 each time it is not in the
/// 60 s cache, so a changed password still stops working.
const KNOWN_GOOD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl PasswordCache {
    fn with_ttl(ttl: Duration) -> Self {
        PasswordCache {
            map: Arc::default(),
            ttl,
        }
    }

    fn key(user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn fresh(&self, key: &[u8; 32]) -> bool {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let ttl = self.ttl;
        insert_bounded(
            &mut map,
            PASSWORD_CACHE_MAX,
            |at| at.elapsed() < ttl,
            key,
            Instant::now(),
        );
    }
}

/// Inserts into a cache of at most `max` entries: when full, the entries `fresh` rejects go
/// first, and if that frees nothing, all of them.
fn insert_bounded<V>(
    map: &mut HashMap<[u8; 32], V>,
    max: usize,
    fresh: impl Fn(&V) -> bool,
    key: [u8; 32],
    value: V,
) {
    if map.len() >= max {
        map.retain(|_, v| fresh(v));
        if map.len() >= max {
            map.clear();
        }
    }
    map.insert(key, value);
}

/// How long an API key that passed is accepted without a store lookup, unless configured.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most remembered API keys; beyond it expired ones are dropped, then all.
const KEY_CACHE_MAX: usize = 1024;

/// API keys that passed the store's check, by SHA-256 of the key, so a sync cycle's
/// requests cost no store round trip each (+58 µs per request measured). An entry is used
/// only while it is younger than the TTL, the key's own expiry has not passed, and no key was
/// revoked in this process since it was made ([`crate::store::key_revocations`]): a
/// revocation here takes effect on the next request, one elsewhere within the TTL.
#[derive(Debug, Clone)]
struct KeyCache {
    map: Arc<Mutex<HashMap<[u8; 32], CachedKey>>>,
    ttl: Duration,
}

#[derive(Debug, Clone)]
struct CachedKey {
    name: String,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    at: Instant,
    revocations: u64,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            map: Arc::default(),
            ttl: KEY_CACHE_TTL,
        }
    }
}

impl KeyCache {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn get(&self, key: &[u8; 32]) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = map.get(key)?;
        let usable = hit.at.elapsed() < self.ttl
            && hit.revocations == crate::store::key_revocations()
            && hit.expires.is_none_or(|t| chrono::Utc::now() < t);
        usable.then(|| Principal {
            name: hit.name.clone(),
        })
    }

    fn remember(&self, key: [u8; 32], info: &crate::store::KeyInfo, revocations: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let ttl = self.ttl;
        let entry = CachedKey {
            name: info.name.clone(),
            expires: info.expires,
            at: Instant::now(),
            revocations,
        };
        insert_bounded(
            &mut map,
            KEY_CACHE_MAX,
            |k| k.at.elapsed() < ttl,
            key,
            entry,
        );
    }
}

/// Who made a request, as far as the gateway knows; attached to the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A name safe to log and audit ("token #1"), never the secret itself.
    pub name: String,
}

/// The per-client and per-user throttles and the check slots of one authenticator.
#[derive(Debug, Clone)]
struct PasswordGuard {
    by_client: Arc<FailureThrottle<IpAddr>>,
    by_user: Arc<FailureThrottle<[u8; 16]>>,
    slots: CheckSlots,
    /// Credentials that passed a check within [`KNOWN_GOOD_TTL`]: not held back by the
    /// throttles.
    known_good: PasswordCache,
}

impl PasswordGuard {
    fn new(limits: PasswordLimits) -> Self {
        PasswordGuard {
            by_client: Arc::new(FailureThrottle::new(limits.max_failures, limits.window)),
            by_user: Arc::new(FailureThrottle::new(limits.max_failures, limits.window)),
            slots: CheckSlots::new(limits.concurrent_checks, limits.queued_checks),
            known_good: PasswordCache::with_ttl(KNOWN_GOOD_TTL),
        }
    }
}

impl Default for PasswordGuard {
    fn default() -> Self {
        PasswordGuard::new(PasswordLimits::default())
    }
}

/// Verifies the `Authorization` header of SCIM requests.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Vec<Vec<u8>>,
    store: Option<Store>,
    pass_through: Option<PassthroughScheme>,
    /// The store's Basic user whose password is also accepted as a bearer token.
    password_user: Option<String>,
    metrics: Option<Arc<Metrics>>,
    passwords: PasswordCache,
    guard: PasswordGuard,
    keys: KeyCache,
}

impl Authenticator {
    /// An authenticator accepting any of `tokens` as `Authorization: Bearer <token>`.
    /// Empty tokens are ignored, so a blank config value never opens the gateway.
    pub fn new(tokens: &[String]) -> Self {
        Authenticator {
            tokens: tokens
                .iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(|t| t.as_bytes().to_vec())
                .collect(),
            store: None,
            pass_through: None,
            password_user: None,
            metrics: None,
            passwords: PasswordCache::default(),
            guard: PasswordGuard::default(),
            keys: KeyCache::default(),
        }
    }

    /// Uses `from`'s sign-in throttles, password-check slots and known-good credentials (a
    /// configuration reload that keeps the limits keeps what they counted).
    pub fn sharing_password_guard(mut self, from: &Authenticator) -> Self {
        self.guard = from.guard.clone();
        self
    }

    /// Sets what password checks may cost (the defaults otherwise); set once at startup.
    pub fn with_password_limits(mut self, limits: PasswordLimits) -> Self {
        self.guard = PasswordGuard::new(limits);
        self
    }

    /// Sets how long an API key that passed is accepted without asking the store again
    /// (`[auth] key_cache_ms`; zero asks every time). Set once at startup.
    pub fn with_key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.keys = KeyCache {
            map: Arc::default(),
            ttl,
        };
        self
    }

    /// Records the latency of every store lookup (API key, Basic password) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Awaits a store check, timing it when metrics are set.
    async fn timed<T, E>(
        &self,
        op: StoreOp,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        match &self.metrics {
            Some(m) => m.time_store(op, fut).await,
            None => fut.await,
        }
    }

    /// An authenticator for a pass-through profile: any credential well-formed for `scheme`
    /// is accepted here and forwarded to the legacy app, which decides; static tokens and
    /// store keys are not consulted (the gateway keeps no credential for such a profile).
    pub fn pass_through(scheme: PassthroughScheme) -> Self {
        Authenticator {
            tokens: Vec::new(),
            store: None,
            pass_through: Some(scheme),
            password_user: None,
            metrics: None,
            passwords: PasswordCache::default(),
            guard: PasswordGuard::default(),
            keys: KeyCache::default(),
        }
    }

    /// In pass-through mode, the caller's credential as it is forwarded to the legacy app
    /// (`Some(Err)`: a 401 for a missing or malformed one, before any backend call); `None`
    /// when this authenticator checks credentials itself.
    pub fn forwarded(
        &self,
        authorization: Option<&str>,
    ) -> Option<Result<(Principal, CallerAuth), ScimError>> {
        let scheme = self.pass_through?;
        let Some(value) = authorization else {
            return Some(Err(ScimError::unauthorized("missing Authorization header")));
        };
        Some(match CallerAuth::from_caller(value, scheme) {
            Some(caller) => Ok((
                Principal {
                    name: "pass-through".to_string(),
                },
                caller,
            )),
            None => Err(ScimError::unauthorized(match scheme {
                PassthroughScheme::Basic => {
                    "malformed credentials: expected Bearer <key>:<password>"
                }
                PassthroughScheme::AsIs => "malformed Authorization header",
            })),
        })
    }

    /// Also accepts the API keys `store` verifies (live, unexpired, unrevoked). Set once at
    /// startup when `[store]` is configured.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Also accepts the password of the store's Basic user `username` as a bearer token (a
    /// profile's `[scim_auth] username`): a product that hands out a user name and password
    /// is configured in Entra with that password as the "Secret Token", which Entra sends as
    /// `Bearer <password>`. Set once at startup; needs [`Authenticator::with_store`].
    pub fn with_password_user(mut self, username: &str) -> Self {
        self.password_user = Some(username.to_string());
        self
    }

    /// Checks an `Authorization` header value against the static tokens only (no I/O). `Err`
    /// is a 401 whose detail says what was wrong without echoing anything the caller sent.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Principal, ScimError> {
        let token = bearer(authorization)?;
        self.static_token(token)
            .ok_or_else(|| ScimError::unauthorized("invalid bearer token"))
    }

    /// Checks an `Authorization` header value on every SCIM request: a bearer token is
    /// checked against the static tokens, then the store's API keys, then (with
    /// [`Authenticator::with_password_user`]) as that user's password; HTTP Basic credentials
    /// (user name and password, for products that hand Entra those) against the store's
    /// argon2id hashes. `client` is the caller's address, which password attempts are
    /// throttled by. `Err` is a 401 for a bad credential (expired and revoked keys
    /// included), a 429 for a throttled client or user name, or a 503 when the store cannot
    /// be read or too many password checks are running.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Principal, ScimError> {
        let (scheme, credential) = split_scheme(authorization)?;
        if scheme.eq_ignore_ascii_case("basic") {
            return self.basic(credential, client).await;
        }
        let token = bearer(authorization)?;
        if let Some(p) = self.static_token(token) {
            return Ok(p);
        }
        let Some(store) = &self.store else {
            return Err(ScimError::unauthorized("invalid bearer token"));
        };
        let cache_key = KeyCache::key(token);
        if let Some(p) = self.keys.get(&cache_key) {
            return Ok(p);
        }
        // Read before the lookup: a revocation landing during it makes the entry stale.
        let revocations = crate::store::key_revocations();
        match self.timed(StoreOp::VerifyKey, store.verify(token)).await {
            Ok(Some(key)) => {
                self.keys.remember(cache_key, &key, revocations);
                return Ok(Principal { name: key.name });
            }
            Ok(None) => {}
            Err(e) => return Err(store_unavailable(&e)),
        }
        if let Some(user) = &self.password_user {
            return match self.check_password(store, user, token, client).await? {
                true => Ok(Principal { name: user.clone() }),
                false => Err(ScimError::unauthorized("invalid bearer token or password")),
            };
        }
        Err(ScimError::unauthorized(
            "invalid, expired or revoked bearer token",
        ))
    }

    /// HTTP Basic (RFC 7617) against the store's user names and password hashes.
    async fn basic(
        &self,
        credential: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, ScimError> {
        let Some(store) = &self.store else {
            return Err(ScimError::unauthorized(
                "unsupported authorization scheme; use Bearer",
            ));
        };
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ScimError::unauthorized("malformed Basic credentials"))?;
        let Some((user, password)) = decoded.split_once(':') else {
            return Err(ScimError::unauthorized("malformed Basic credentials"));
        };
        match self.check_password(store, user, password, client).await? {
            true => Ok(Principal {
                name: user.to_string(),
            }),
            false => Err(ScimError::unauthorized("invalid user name or password")),
        }
    }

    /// A password check: remembered successes first; then, unless the client or the user
    /// name is throttled (429) or every check slot and queue place is taken (503), the
    /// store's argon2id hash. A failure counts against the client and the user name.
    async fn check_password(
        &self,
        store: &Store,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<bool, ScimError> {
        let key = PasswordCache::key(user, password);
        if self.passwords.fresh(&key) {
            return Ok(true);
        }
        let g = &self.guard;
        let client = client.map(client_key);
        let user_key = user_key(user);
        // A credential that passed within a day is never held back (it is still checked):
        // failures others provoke, for its user name or from its address (a proxy shared
        // with an attacker), must not lock the real client out.
        let blocked = if g.known_good.fresh(&key) {
            None
        } else {
            client
                .and_then(|c| g.by_client.blocked(&c))
                .or_else(|| g.by_user.blocked(&user_key))
        };
        if let Some(wait) = blocked {
            return Err(throttled(wait));
        }
        let Ok(_slot) = g.slots.acquire().await else {
            tracing::warn!("password check refused: every check slot and queue place is taken");
            return Err(ScimError::new(
                503,
                None,
                "too many sign-in attempts are being checked; retry shortly",
            ));
        };
        let ok = self
            .timed(
                StoreOp::VerifyPassword,
                store.verify_password(user, password),
            )
            .await
            .map_err(|e| store_unavailable(&e))?;
        if ok {
            self.passwords.remember(key);
            g.known_good.remember(key);
            g.by_user.succeeded(&user_key);
            if let Some(c) = client {
                g.by_client.succeeded(&c);
            }
        } else {
            g.by_user.failed(user_key);
            if let Some(c) = client {
                g.by_client.failed(c);
            }
        }
        Ok(ok)
    }

    /// The principal of a matching static token, compared in constant time.
    fn static_token(&self, token: &str) -> Option<Principal> {
        // Compare against every token so the time taken does not reveal which one matched.
        let mut matched: Option<usize> = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if bool::from(t.as_slice().ct_eq(token.as_bytes())) {
                matched = Some(i);
            }
        }
        matched.map(|i| Principal {
            name: format!("token #{}", i + 1),
        })
    }
}

/// The credential of a `Bearer` header, or the 401 saying what is wrong with the header.
/// The scheme and credential of an `Authorization` header value.
fn split_scheme(authorization: Option<&str>) -> Result<(&str, &str), ScimError> {
    let Some(value) = authorization else {
        return Err(ScimError::unauthorized("missing Authorization header"));
    };
    value
        .trim()
        .split_once(' ')
        .ok_or_else(|| ScimError::unauthorized("malformed Authorization header"))
}

/// A 429 for a throttled client or user name, telling it when to come back.
fn throttled(wait: Duration) -> ScimError {
    let secs = wait.as_secs().max(1);
    ScimError::new(
        429,
        None,
        format!("too many failed sign-in attempts; retry in {secs} s"),
    )
    .with_retry_after(secs)
}

/// A store failure while checking credentials: logged, and answered 503 (with Retry-After)
/// so Entra retries rather than giving up.
fn store_unavailable(e: &dyn std::fmt::Display) -> ScimError {
    tracing::error!(error = %e, "credential check failed: store unavailable");
    ScimError::new(503, None, "credentials cannot be checked right now")
}

fn bearer(authorization: Option<&str>) -> Result<&str, ScimError> {
    let (scheme, token) = split_scheme(authorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ScimError::unauthorized(
            "unsupported authorization scheme; use Bearer",
        ));
    }
    Ok(token.trim())
}

/// The authentication stage: rejects the request with a SCIM 401 unless it carries a valid
/// credential (in pass-through mode: a well-formed one, which then travels with the
/// request's backend calls).
pub fn require_auth<S: Inner>(
    auth: super::Scoped<Arc<Authenticator>>,
    mut req: Request,
    inner: S,
) -> Pending {
    Box::pin(async move {
        if auth.rest(req.uri().path()).is_none() {
            return run(inner, req).await;
        }
        let auth = auth.inner;
        let header_value = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(forwarded) = auth.forwarded(header_value) {
            return match forwarded {
                Ok((p, caller)) => {
                    req.extensions_mut().insert(p);
                    with_caller(caller, run(inner, req)).await
                }
                Err(e) => AppError::Client(e).into_response(),
            };
        }
        let client = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        match auth.authenticate(header_value, client).await {
            Ok(p) => {
                req.extensions_mut().insert(p);
                run(inner, req).await
            }
            Err(e) => AppError::Client(e).into_response(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_bearer_tokens() {
        let a = Authenticator::new(&["s3cret".into(), "".into(), "other".into()]);
        assert_eq!(a.verify(Some("Bearer s3cret")).unwrap().name, "token #1");
        assert_eq!(a.verify(Some("bearer   other")).unwrap().name, "token #2");
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
        ] {
            let e = a.verify(bad).unwrap_err();
            assert_eq!(e.status, 401, "{bad:?}");
            assert!(!e.detail.contains("s3cret"));
        }
        assert!(
            Authenticator::new(&["".into()])
                .verify(Some("Bearer "))
                .is_err()
        );
    }

    #[test]
    fn pass_through_checks_form_only_and_others_forward_nothing() {
        let a = Authenticator::pass_through(PassthroughScheme::Basic);
        let (p, _) = a.forwarded(Some("Bearer key:pw")).unwrap().unwrap();
        assert_eq!(p.name, "pass-through");
        for bad in [
            None,
            Some("Bearer key"),
            Some("Bearer :pw"),
            Some("Digest a:b"),
        ] {
            let e = a.forwarded(bad).unwrap().unwrap_err();
            assert_eq!(e.status, 401, "{bad:?}");
            assert!(!e.detail.contains("pw"), "{}", e.detail);
        }
        assert!(
            Authenticator::new(&["t".into()])
                .forwarded(Some("Bearer key:pw"))
                .is_none()
        );
    }

    #[tokio::test]
    async fn successful_password_checks_are_remembered_and_failures_are_not() {
        use base64::Engine as _;
        let store = Store::open("sqlite::memory:").await.unwrap();
        store
            .set_password("entra", "correct horse battery")
            .await
            .unwrap();
        let basic = |pw: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("entra:{pw}"))
            )
        };
        let a = Authenticator::new(&[]).with_store(store.clone());
        let good = basic("correct horse battery");
        assert_eq!(
            a.authenticate(Some(&good), None).await.unwrap().name,
            "entra"
        );
        // Wrong passwords fail every time (no negative caching, no confusion with the
        // remembered one).
        for _ in 0..2 {
            let e = a
                .authenticate(Some(&basic("wrong horse")), None)
                .await
                .unwrap_err();
            assert_eq!(e.status, 401);
        }
        // The user is removed: the remembered success still answers (within the TTL),
        // which proves the second check did not reach the store...
        assert!(store.remove_user("entra").await.unwrap());
        assert_eq!(
            a.authenticate(Some(&good), None).await.unwrap().name,
            "entra"
        );
        // ...while a gateway that never checked it asks the store and refuses.
        let fresh = Authenticator::new(&[]).with_store(store.clone());
        assert_eq!(
            fresh
                .authenticate(Some(&good), None)
                .await
                .unwrap_err()
                .status,
            401
        );
        // A clone (the router's copy) shares what was remembered.
        assert!(a.clone().authenticate(Some(&good), None).await.is_ok());
    }

    #[tokio::test]
    async fn a_password_user_s_password_is_a_bearer_token_and_basic_still_works() {
        use base64::Engine as _;
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.set_password("scim-user", "pa55word").await.unwrap();
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        let plain = Authenticator::new(&[]).with_store(store.clone());
        assert_eq!(
            plain
                .authenticate(Some(&basic("scim-user:pa55word")), None)
                .await
                .unwrap()
                .name,
            "scim-user"
        );
        assert_eq!(
            plain
                .authenticate(Some("Bearer pa55word"), None)
                .await
                .unwrap_err()
                .status,
            401,
            "without [scim_auth] a password is no bearer token"
        );
        let a = plain.with_password_user("scim-user");
        assert_eq!(
            a.authenticate(Some("Bearer pa55word"), None)
                .await
                .unwrap()
                .name,
            "scim-user"
        );
        let (_, key) = store.create_key("Entra Sync", None).await.unwrap();
        assert_eq!(
            a.authenticate(Some(&format!("Bearer {key}")), None)
                .await
                .unwrap()
                .name,
            "Entra Sync",
            "API keys keep working"
        );
        for bad in [
            "Bearer pa55wor".to_string(),
            "Bearer scim-user:pa55word".to_string(),
            basic("scim-user:wrong"),
            basic("other:pa55word"),
        ] {
            let e = a.authenticate(Some(&bad), None).await.unwrap_err();
            assert_eq!(e.status, 401, "{bad}");
            assert!(!e.detail.contains("pa55"), "{}", e.detail);
        }
    }

    /// A key that passed is not looked up again within the cache's TTL (the store could
    /// even refuse it by then: a revocation by another process), then is; a revocation
    /// through this process's store ends it at once.
    #[tokio::test]
    async fn verified_keys_are_cached_briefly_and_revocation_here_ends_them_at_once() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let ttl = Duration::from_millis(400);
        let a = Authenticator::new(&[])
            .with_store(store.clone())
            .with_key_cache_ttl(ttl);
        let (_, key) = store.create_key("Entra Sync", None).await.unwrap();
        let header = format!("Bearer {key}");
        assert_eq!(
            a.authenticate(Some(&header), None).await.unwrap().name,
            "Entra Sync"
        );
        // Revoked behind this process's back (as `scimgate token revoke` or another replica
        // does): still accepted from the cache, without a store round trip…
        let Store::Sqlite(sqlite) = &store else {
            unreachable!()
        };
        sqlx::query("UPDATE api_keys SET revoked_at = $1")
            .bind(chrono::Utc::now())
            .execute(&sqlite.pool)
            .await
            .unwrap();
        let t = Instant::now();
        assert!(a.authenticate(Some(&header), None).await.is_ok());
        // …until the TTL passes.
        tokio::time::sleep(ttl.saturating_sub(t.elapsed()) + Duration::from_millis(50)).await;
        assert_eq!(
            a.authenticate(Some(&header), None)
                .await
                .unwrap_err()
                .status,
            401
        );

        // A revocation through the store in this process (the admin page) is seen at once.
        let (info2, key2) = store.create_key("Second", None).await.unwrap();
        let header2 = format!("Bearer {key2}");
        assert!(a.authenticate(Some(&header2), None).await.is_ok());
        assert!(store.revoke_key(&info2.id).await.unwrap());
        assert_eq!(
            a.authenticate(Some(&header2), None)
                .await
                .unwrap_err()
                .status,
            401
        );
        // TTL zero: every request asks the store.
        let (_, key3) = store.create_key("Third", None).await.unwrap();
        let header3 = format!("Bearer {key3}");
        let none = Authenticator::new(&[])
            .with_store(store.clone())
            .with_key_cache_ttl(Duration::ZERO);
        assert!(none.authenticate(Some(&header3), None).await.is_ok());
        sqlx::query("UPDATE api_keys SET revoked_at = $1")
            .bind(chrono::Utc::now())
            .execute(&sqlite.pool)
            .await
            .unwrap();
        assert_eq!(
            none.authenticate(Some(&header3), None)
                .await
                .unwrap_err()
                .status,
            401
        );
    }

    #[tokio::test]
    async fn store_keys_authenticate_until_revoked_or_expired() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let a = Authenticator::new(&["s3cret".into()]).with_store(store.clone());
        let (info, key) = store.create_key("Entra Sync", None).await.unwrap();
        let header = format!("Bearer {key}");
        assert_eq!(
            a.authenticate(Some(&header), None).await.unwrap().name,
            "Entra Sync"
        );
        assert_eq!(
            a.authenticate(Some("Bearer s3cret"), None)
                .await
                .unwrap()
                .name,
            "token #1"
        );
        assert_eq!(
            a.verify(Some(&header)).unwrap_err().status,
            401,
            "verify knows static tokens only"
        );
        let (_, old) = store
            .create_key(
                "old",
                Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
            )
            .await
            .unwrap();
        // The last character changed (to one it is not), so the forgery is never the key.
        let last = if key.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &key[..key.len() - 1]);
        for bad in [
            format!("Bearer {old}"),
            format!("Bearer {forged}"),
            "Bearer sgk_x".into(),
        ] {
            let e = a.authenticate(Some(&bad), None).await.unwrap_err();
            assert_eq!(e.status, 401, "{bad}");
        }
        assert!(store.revoke_key(&info.id).await.unwrap());
        let e = a.authenticate(Some(&header), None).await.unwrap_err();
        assert_eq!(e.status, 401);
        assert!(!e.detail.contains(&key));
        let no_store = Authenticator::new(&["s3cret".into()]);
        assert_eq!(
            no_store
                .authenticate(Some(&header), None)
                .await
                .unwrap_err()
                .status,
            401
        );
    }
}
