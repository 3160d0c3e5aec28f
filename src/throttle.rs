//! Bounds on what unauthenticated callers can make the gateway spend on sign-in attempts.
//!
//! A password check is argon2id: about 19 MiB and tens of milliseconds of CPU each, by design.
//! Anyone who can reach a listener can ask for one, so three bounds apply before a check runs:
//! [`FailureThrottle`] refuses further attempts from a client address (or for a user name)
//! that failed too often within a window, [`CheckSlots`] caps how many checks run at once
//! (and how many may wait), and an unknown user name costs no check at all (the store answers
//! after the time a check takes, without the memory). The SCIM listener's Basic / password
//! auth and the admin page's login both use them.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most keys one throttle remembers. Beyond it, keys whose window ended are dropped first,
/// then the oldest half, so memory stays bounded however many addresses an attacker uses.
const MAX_KEYS: usize = 10_000;

/// Failed attempts per key (client address, user name) within a fixed window.
#[derive(Debug)]
pub struct FailureThrottle<K> {
    limit: u32,
    window: Duration,
    keys: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash + Clone> FailureThrottle<K> {
    /// A throttle that refuses a key after `limit` failures within `window` (0 disables it).
    pub fn new(limit: u32, window: Duration) -> Self {
        FailureThrottle {
            limit,
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Before an attempt: `Some(wait)` when `key` failed `limit` times in its current window
    /// (the attempt is refused without being checked), `None` when it may proceed.
    pub fn blocked(&self, key: &K) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, n) = keys.get(key)?;
        let age = start.elapsed();
        (age < self.window && *n >= self.limit).then(|| self.window - age)
    }

    /// After a failed attempt: counts it against `key`.
    pub fn failed(&self, key: K) {
        if self.limit == 0 {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_KEYS && !keys.contains_key(&key) {
            let window = self.window;
            keys.retain(|_, (start, _)| start.elapsed() < window);
            if keys.len() >= MAX_KEYS {
                let mut starts: Vec<Instant> = keys.values().map(|(s, _)| *s).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                keys.retain(|_, (start, _)| *start > cut);
            }
        }
        let now = Instant::now();
        let entry = keys.entry(key).or_insert((now, 0));
        if entry.0.elapsed() >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// After a successful attempt: forgets `key`'s failures.
    pub fn succeeded(&self, key: &K) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Keys remembered now (for tests and the memory bound).
    pub fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a password check may cost unauthenticated callers (`[auth]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordLimits {
    /// argon2 checks run at once (each takes ~19 MiB).
    pub concurrent_checks: usize,
    /// Checks that may wait for a slot; beyond them a check is refused with 503.
    pub queued_checks: usize,
    /// Failed attempts per client address, and per user name, within `window`, after which
    /// further attempts are refused with 429 until the window ends (0: no throttling).
    pub max_failures: u32,
    /// The failure-counting window.
    pub window: Duration,
}

impl Default for PasswordLimits {
    fn default() -> Self {
        PasswordLimits {
            concurrent_checks: 2,
            queued_checks: 16,
            max_failures: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// The key a client address is throttled under: an IPv4 address as it is, an IPv6 address
/// by its /64 (one host usually holds a whole /64, so single addresses would be free to
/// rotate).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

/// The key a user name is throttled under: a digest, so a 16 KB user name costs 16 bytes.
pub fn user_key(user: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(user.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// Why a password check did not get a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Slots for password checks: at most `running` at once, at most `waiting` queued for a
/// slot; a check beyond both is refused at once (the caller answers 503 + Retry-After), so
/// a flood of sign-in attempts costs bounded memory whatever its size.
#[derive(Debug, Clone)]
pub struct CheckSlots {
    running: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// A held slot; the check it allows runs while this lives.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl CheckSlots {
    /// `running` concurrent checks (at least 1), with up to `waiting` more queued.
    pub fn new(running: usize, waiting: usize) -> Self {
        CheckSlots {
            running: Arc::new(Semaphore::new(running.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: waiting,
        }
    }

    /// Takes a slot, waiting in the bounded queue when all are busy; `Err(Busy)` when the
    /// queue is full too.
    pub async fn acquire(&self) -> Result<Slot, Busy> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(Slot(p));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = self.running.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map(Slot).map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_the_limit_and_forgets_on_success() {
        let t = FailureThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.blocked(&"1.2.3.4").is_none());
            t.failed("1.2.3.4");
        }
        let wait = t.blocked(&"1.2.3.4").expect("blocked after 3 failures");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(
            t.blocked(&"5.6.7.8").is_none(),
            "other keys are not affected"
        );
        t.succeeded(&"1.2.3.4");
        assert!(t.blocked(&"1.2.3.4").is_none());
    }

    #[test]
    fn throttle_window_ends() {
        let t = FailureThrottle::new(1, Duration::from_millis(30));
        t.failed(1u32);
        assert!(t.blocked(&1).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(t.blocked(&1).is_none());
        t.failed(1);
        assert!(t.blocked(&1).is_some(), "a new window counts again");
    }

    #[test]
    fn throttle_memory_is_bounded() {
        let t = FailureThrottle::new(5, Duration::from_secs(60));
        for k in 0..(MAX_KEYS as u32 * 3) {
            t.failed(k);
        }
        assert!(t.len() <= MAX_KEYS, "{}", t.len());
        assert!(t.blocked(&0).is_none());
        assert!(FailureThrottle::<u32>::new(0, Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
        assert_eq!(user_key("x".repeat(16_000).as_str()).len(), 16);
    }

    #[tokio::test]
    async fn slots_queue_a_few_and_refuse_the_rest() {
        let slots = CheckSlots::new(1, 1);
        let held = slots.acquire().await.unwrap();
        let s2 = slots.clone();
        let waiter = tokio::spawn(async move { s2.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.acquire().await.unwrap_err(), Busy, "queue full");
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert!(slots.acquire().await.is_ok(), "slots come back");
    }
}
