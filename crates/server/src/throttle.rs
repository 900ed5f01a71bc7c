//! Throttling of failed logins, per address and per user.
//!
//! In the spirit of sshd's `PerSourcePenalties`: failures are counted per key
//! within a window; once a key reaches its allowance it is refused
//! (`rate_limited`) for a penalty that doubles with each further failure, up
//! to a cap. A success clears a user's count but not an address's, so an
//! attacker cannot launder an address by logging in to an account of their
//! own between guesses.
//!
//! State is in memory and bounded: when the table is full, entries whose
//! window has passed are dropped, and if none has, the new key is simply not
//! tracked rather than letting a spray of addresses grow the table without
//! bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How failures are counted and punished for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed within `window` before the key is refused.
    pub allowed_failures: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The first refusal lasts this long; each further failure doubles it.
    pub penalty: Duration,
    /// The longest a refusal lasts.
    pub max_penalty: Duration,
}

impl ThrottlePolicy {
    /// Per address: 10 failures in 10 minutes (three connections' worth at
    /// sshd's usual attempts), then 30 s, doubling up to 10 minutes.
    pub const PER_ADDRESS: ThrottlePolicy = ThrottlePolicy {
        allowed_failures: 10,
        window: Duration::from_secs(600),
        penalty: Duration::from_secs(30),
        max_penalty: Duration::from_secs(600),
    };

    /// Per user: 5 failures in 10 minutes from anywhere, then 30 s, doubling
    /// up to 10 minutes. Lower than per address, since a distributed guesser
    /// targets one account from many addresses.
    pub const PER_USER: ThrottlePolicy = ThrottlePolicy {
        allowed_failures: 5,
        window: Duration::from_secs(600),
        penalty: Duration::from_secs(30),
        max_penalty: Duration::from_secs(600),
    };
}

/// Keys tracked at most, per table.
pub const MAX_TRACKED_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// Failure counts for one kind of key (addresses or user names).
#[derive(Debug)]
pub struct Throttle<K> {
    policy: ThrottlePolicy,
    capacity: usize,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// An empty table with the given policy.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self::with_capacity(policy, MAX_TRACKED_KEYS)
    }

    /// An empty table tracking at most `capacity` keys.
    pub fn with_capacity(policy: ThrottlePolicy, capacity: usize) -> Self {
        Throttle {
            policy,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `key` is refused, with how long it still is.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key).and_then(|e| e.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure for `key`; returns `true` when `key` is now refused.
    pub fn record_failure(&self, key: &K, now: Instant) -> bool {
        let policy = self.policy;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(key) && entries.len() >= self.capacity {
            entries.retain(|_, e| !expired(e, &policy, now));
            if entries.len() >= self.capacity {
                return false;
            }
        }
        let entry = entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if expired(entry, &policy, now) {
            *entry = Entry {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= policy.allowed_failures {
            let excess = entry.failures - policy.allowed_failures;
            let penalty = policy
                .penalty
                .saturating_mul(1u32.checked_shl(excess).unwrap_or(u32::MAX))
                .min(policy.max_penalty);
            entry.blocked_until = Some(now + penalty);
            true
        } else {
            false
        }
    }

    /// Forgets `key`'s failures (a user who logged in).
    pub fn record_success(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(key);
    }
}

fn expired(entry: &Entry, policy: &ThrottlePolicy, now: Instant) -> bool {
    let blocked = entry.blocked_until.is_some_and(|until| until > now);
    !blocked && now.duration_since(entry.last_failure) >= policy.window
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ThrottlePolicy = ThrottlePolicy {
        allowed_failures: 3,
        window: Duration::from_secs(60),
        penalty: Duration::from_secs(10),
        max_penalty: Duration::from_secs(35),
    };

    #[test]
    fn refuses_after_the_allowed_failures_and_doubles_the_penalty() {
        let throttle = Throttle::new(POLICY);
        let t0 = Instant::now();
        assert!(!throttle.record_failure(&"ada", t0));
        assert!(!throttle.record_failure(&"ada", t0));
        assert!(throttle.check(&"ada", t0).is_ok());
        assert!(throttle.record_failure(&"ada", t0));
        assert_eq!(throttle.check(&"ada", t0), Err(Duration::from_secs(10)));
        assert!(throttle.check(&"bob", t0).is_ok(), "keys are independent");
        let t1 = t0 + Duration::from_secs(10);
        assert!(throttle.check(&"ada", t1).is_ok(), "the penalty ends");
        assert!(throttle.record_failure(&"ada", t1));
        assert_eq!(throttle.check(&"ada", t1), Err(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        throttle.record_failure(&"ada", t2);
        assert_eq!(
            throttle.check(&"ada", t2),
            Err(Duration::from_secs(35)),
            "capped"
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let throttle = Throttle::new(POLICY);
        let t0 = Instant::now();
        throttle.record_failure(&1, t0);
        throttle.record_failure(&1, t0);
        let later = t0 + POLICY.window;
        assert!(!throttle.record_failure(&1, later));
        assert!(throttle.check(&1, later).is_ok());
    }

    #[test]
    fn success_clears_the_count() {
        let throttle = Throttle::new(POLICY);
        let t0 = Instant::now();
        throttle.record_failure(&"ada", t0);
        throttle.record_failure(&"ada", t0);
        throttle.record_success(&"ada");
        assert!(!throttle.record_failure(&"ada", t0));
    }

    #[test]
    fn a_full_table_stops_tracking_new_keys_instead_of_growing() {
        let throttle = Throttle::with_capacity(POLICY, 2);
        let t0 = Instant::now();
        throttle.record_failure(&1, t0);
        throttle.record_failure(&2, t0);
        for _ in 0..5 {
            assert!(!throttle.record_failure(&3, t0));
        }
        assert_eq!(throttle.entries.lock().unwrap().len(), 2);
        // Once old entries expire there is room again.
        let later = t0 + POLICY.window;
        throttle.record_failure(&3, later);
        assert_eq!(throttle.entries.lock().unwrap().len(), 1);
    }
}
