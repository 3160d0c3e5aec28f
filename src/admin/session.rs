//! Admin sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie, the session itself
//! in memory (a restart logs everyone out, which is what an admin of one gateway expects).
//!
//! Each session carries its own CSRF token, sent back in every state-changing form, and a
//! one-shot slot for a freshly created API key, so the key is shown once after the
//! post/redirect/get round trip and never travels in a URL.

use crate::store::KeyInfo;
use crate::throttle::FailureThrottle;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE: &str = "scimgate_admin";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login whatever happens.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at once; the least recently used goes first beyond it, so repeated logins
/// cannot grow memory without bound.
const MAX_SESSIONS: usize = 256;
/// Failed logins tolerated from one client address per [`FAILURE_WINDOW`] before its
/// further attempts are refused.
const MAX_FAILURES: u32 = 10;
/// Failed logins from all addresses together per [`FAILURE_WINDOW`] before every further
/// attempt is refused: bounds guessing spread over many addresses.
const MAX_FAILURES_ALL: u32 = 100;
/// The window failed logins are counted over.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A key created in this session, waiting to be shown once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// What the store recorded.
    pub info: KeyInfo,
    /// The key itself; dropped from memory once shown.
    pub key: String,
}

#[derive(Debug)]
struct Session {
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<NewKey>,
}

/// What a request learns about its live session.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The session id (the cookie's value).
    pub id: String,
    /// The token state-changing forms must send back.
    pub csrf: String,
}

impl SessionView {
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// All live sessions, plus the recent failed logins per client address (one client's
/// failures never lock out another).
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    failures: FailureThrottle<IpAddr>,
    all_failures: FailureThrottle<()>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            failures: FailureThrottle::new(MAX_FAILURES, FAILURE_WINDOW),
            all_failures: FailureThrottle::new(MAX_FAILURES_ALL, FAILURE_WINDOW),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` random bytes as lowercase hex; `None` when the OS has no randomness to give.
pub fn random_token(n: usize) -> Option<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().fold(String::with_capacity(n * 2), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    }))
}

impl Sessions {
    /// Starts a session after a successful login; `None` only without OS randomness.
    pub fn create(&self) -> Option<SessionView> {
        let id = random_token(32)?;
        let csrf = random_token(32)?;
        let now = Instant::now();
        let mut map = lock(&self.map);
        map.retain(|_, s| live(s, now));
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                flash: None,
            },
        );
        Some(SessionView { id, csrf })
    }

    /// The live session `id` names, extending its idle time; `None` for unknown or expired.
    pub fn get(&self, id: &str) -> Option<SessionView> {
        let now = Instant::now();
        let mut map = lock(&self.map);
        let s = map.get_mut(id)?;
        if !live(s, now) {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(SessionView {
            id: id.to_string(),
            csrf: s.csrf.clone(),
        })
    }

    /// Ends a session (logout).
    pub fn remove(&self, id: &str) {
        lock(&self.map).remove(id);
    }

    /// Keeps a new key for the next page of this session.
    pub fn set_flash(&self, id: &str, key: NewKey) {
        if let Some(s) = lock(&self.map).get_mut(id) {
            s.flash = Some(key);
        }
    }

    /// Takes the new key waiting for this session, if any; it is gone afterwards.
    pub fn take_flash(&self, id: &str) -> Option<NewKey> {
        lock(&self.map).get_mut(id).and_then(|s| s.flash.take())
    }

    /// Whether logins from `client` are refused for now because of too many recent failures
    /// from that address (its /64 for IPv6), or from all addresses together.
    /// from that address, or from all addresses together.
    pub fn throttled(&self, client: IpAddr) -> bool {
        let client = crate::throttle::client_key(client);
        self.failures.blocked(&client).is_some() || self.all_failures.blocked(&()).is_some()
    }

    /// Notes a failed login from `client`.
    pub fn record_failure(&self, client: IpAddr) {
        self.failures.failed(crate::throttle::client_key(client));
        self.all_failures.failed(());
    }

    /// Live sessions.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let now = Instant::now();
        lock(&self.map).values().filter(|s| live(s, now)).count()
    }

    /// Whether no session is live.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.created) < ABSOLUTE
}

/// The value of cookie `name` in a `Cookie` header, if present.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

/// The `Set-Cookie` value that installs session `id`.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        ABSOLUTE.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_live_until_removed_and_carry_a_one_shot_key() {
        let s = Sessions::default();
        let v = s.create().unwrap();
        assert_eq!(v.id.len(), 64);
        assert_ne!(v.id, v.csrf);
        let again = s.get(&v.id).unwrap();
        assert!(again.csrf_matches(&v.csrf));
        assert!(!again.csrf_matches(""));
        assert!(!again.csrf_matches(&v.id));
        assert!(s.get("nope").is_none());
        let info = KeyInfo {
            id: crate::store::KeyId("k".into()),
            name: "n".into(),
            created: chrono::Utc::now(),
            expires: None,
            last_used: None,
            revoked: None,
        };
        s.set_flash(
            &v.id,
            NewKey {
                info,
                key: "sgk_x".into(),
            },
        );
        assert_eq!(s.take_flash(&v.id).unwrap().key, "sgk_x");
        assert!(s.take_flash(&v.id).is_none(), "shown once");
        s.remove(&v.id);
        assert!(s.get(&v.id).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn session_count_is_bounded() {
        let s = Sessions::default();
        let first = s.create().unwrap();
        for _ in 0..MAX_SESSIONS + 5 {
            s.create().unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            s.get(&first.id).is_none(),
            "the least recently used went first"
        );
    }

    #[test]
    fn failed_logins_throttle() {
        let s = Sessions::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..MAX_FAILURES - 1 {
            s.record_failure(a);
        }
        assert!(!s.throttled(a));
        s.record_failure(a);
        assert!(s.throttled(a));
        assert!(!s.throttled(b), "another client can still sign in");
    }

    #[test]
    fn cookies_parse_and_are_strict() {
        let h = "a=1; scimgate_admin=abc ; b=2";
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie("scimgate_admin2=x", COOKIE), None);
        let c = set_cookie("abc");
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
