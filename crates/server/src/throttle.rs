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

use tokio::sync::Notify;
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

impl ThrottlePolicy {
    /// New accounts per address: 3 an hour, then none for the rest of it.
    /// Each costs a hash and a row; a person makes one.
    pub const REGISTRATIONS: ThrottlePolicy = ThrottlePolicy {
        allowed_failures: 3,
        window: Duration::from_secs(3600),
        penalty: Duration::from_secs(3600),
        max_penalty: Duration::from_secs(3600),
    };

    /// [`ThrottlePolicy::REGISTRATIONS`] with another count per hour.
    pub const fn registrations_per_hour(count: u32) -> ThrottlePolicy {
        ThrottlePolicy {
            allowed_failures: count,
            ..ThrottlePolicy::REGISTRATIONS
        }
    }
}

/// Keys tracked at most, per table.
pub const MAX_TRACKED_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
    /// Attempts reserved and still being verified.
    pending: u32,
}

impl Entry {
    fn default_at(now: Instant) -> Entry {
        Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
            pending: 0,
        }
    }
}

/// Failure counts for one kind of key (addresses or user names).
#[derive(Debug)]
pub struct Throttle<K> {
    policy: ThrottlePolicy,
    capacity: usize,
    entries: Mutex<HashMap<K, Entry>>,
    /// Woken when an attempt ends, for the reservations waiting on it.
    ended: Notify,
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
            ended: Notify::new(),
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
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.count_failure(&mut entries, key, now)
    }

    /// [`Throttle::record_failure`] with the table already locked.
    fn count_failure(&self, entries: &mut HashMap<K, Entry>, key: &K, now: Instant) -> bool {
        let policy = self.policy;
        if !entries.contains_key(key) && entries.len() >= self.capacity {
            entries.retain(|_, e| !expired(e, &policy, now));
            if entries.len() >= self.capacity {
                return false;
            }
        }
        let entry = entries.entry(key.clone()).or_insert(Entry::default_at(now));
        if expired(entry, &policy, now) {
            *entry = Entry {
                pending: entry.pending,
                ..Entry::default_at(now)
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

    /// Reserves one attempt for `key`, right before it is verified: it is
    /// granted only while the failures counted plus the attempts being
    /// verified stay below the allowance, so however many attempts race, no
    /// more are verified in a window than could fail without the key being
    /// refused, and none while it is refused. When the allowance is taken by
    /// attempts still being verified, this waits for them to end. `Err(wait)`
    /// while `key` is refused, with how long it still is.
    ///
    /// The attempt ends in [`Attempt::fail`] or [`Attempt::succeed`]; an
    /// attempt dropped without either (the client left, or the handshake
    /// timed out, during the verification) counts as a failure, so leaving
    /// cannot be used to guess for free.
    pub async fn reserve(&self, key: &K) -> Result<Attempt<'_, K>, Duration> {
        loop {
            // Registered before looking, so that an attempt ending between
            // the look and the wait still wakes this one.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.try_reserve(key, Instant::now()) {
                Reservation::Granted(attempt) => return Ok(attempt),
                Reservation::Refused(wait) => return Err(wait),
                Reservation::Busy => ended.await,
            }
        }
    }

    /// One try of [`Throttle::reserve`] at `now`.
    fn try_reserve(&self, key: &K, now: Instant) -> Reservation<'_, K> {
        let policy = self.policy;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = entries.get(key).and_then(|e| e.blocked_until)
            && until > now
        {
            return Reservation::Refused(until - now);
        }
        if !entries.contains_key(key) && entries.len() >= self.capacity {
            entries.retain(|_, e| !expired(e, &policy, now));
            if entries.len() >= self.capacity {
                // Not tracked, as `record_failure` does for a full table.
                return Reservation::Granted(Attempt::new(self, key, false));
            }
        }
        let entry = entries.entry(key.clone()).or_insert(Entry::default_at(now));
        if expired(entry, &policy, now) {
            *entry = Entry {
                pending: entry.pending,
                ..Entry::default_at(now)
            };
        }
        // Busy only while attempts are in flight (each will end and wake
        // the waiters). With none in flight and the penalty over, one
        // attempt is granted even past the allowance: if it fails, the key
        // is refused again, for twice as long.
        if entry.pending > 0
            && entry.failures.saturating_add(entry.pending) >= policy.allowed_failures
        {
            return Reservation::Busy;
        }
        entry.pending += 1;
        Reservation::Granted(Attempt::new(self, key, true))
    }

    /// Reserves an attempt on `first` for `first_key` and on `second` for
    /// `second_key`, without holding one while waiting for the other: a
    /// wait that is cancelled (the handshake timed out) then costs neither
    /// key a failure. `Err(wait)` when either key is refused.
    pub async fn reserve_both<'a, K2: Eq + Hash + Clone>(
        first: &'a Throttle<K>,
        first_key: &K,
        second: &'a Throttle<K2>,
        second_key: &K2,
    ) -> Result<(Attempt<'a, K>, Attempt<'a, K2>), Duration> {
        loop {
            let held = first.reserve(first_key).await?;
            let ended = second.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match second.try_reserve(second_key, Instant::now()) {
                Reservation::Granted(other) => return Ok((held, other)),
                Reservation::Refused(wait) => {
                    // Not verified: the first key's attempt did not happen.
                    held.succeed();
                    return Err(wait);
                }
                Reservation::Busy => {
                    held.succeed();
                    ended.await;
                }
            }
        }
    }

    /// One attempt of `key` is no longer being verified, and counts as a
    /// failure when it `failed` (in the same step, so that no reservation
    /// slips in between); whoever waits for the allowance looks again.
    /// Returns whether `key` is now refused.
    fn end(&self, key: &K, failed: bool) -> bool {
        let refused = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get_mut(key) {
                entry.pending = entry.pending.saturating_sub(1);
            }
            failed && self.count_failure(&mut entries, key, Instant::now())
        };
        self.ended.notify_waiters();
        refused
    }

    /// Forgets `key`'s failures (a user who logged in).
    pub fn record_success(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Attempts still being verified stay counted as such.
        match entries.get_mut(key) {
            Some(entry) if entry.pending > 0 => {
                entry.failures = 0;
                entry.blocked_until = None;
            }
            _ => {
                entries.remove(key);
            }
        }
    }
}

/// One attempt granted by [`Throttle::reserve`]; dropped unfinished, it
/// fails.
#[derive(Debug)]
#[must_use = "an attempt holds part of the allowance until it fails or succeeds"]
pub struct Attempt<'a, K: Eq + Hash + Clone> {
    throttle: &'a Throttle<K>,
    key: K,
    /// False when the table was full and the key is not tracked.
    tracked: bool,
}

impl<'a, K: Eq + Hash + Clone> Attempt<'a, K> {
    fn new(throttle: &'a Throttle<K>, key: &K, tracked: bool) -> Self {
        Attempt {
            throttle,
            key: key.clone(),
            tracked,
        }
    }

    /// The attempt failed: counts it; returns `true` when the key is now
    /// refused.
    pub fn fail(mut self) -> bool {
        self.finish(false)
    }

    /// The attempt succeeded: it is not counted.
    pub fn succeed(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, succeeded: bool) -> bool {
        if !std::mem::take(&mut self.tracked) {
            return false;
        }
        self.throttle.end(&self.key, !succeeded)
    }
}

impl<K: Eq + Hash + Clone> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// What [`Throttle::try_reserve`] found.
enum Reservation<'a, K: Eq + Hash + Clone> {
    Granted(Attempt<'a, K>),
    Refused(Duration),
    /// The allowance is taken by attempts still being verified.
    Busy,
}

fn expired(entry: &Entry, policy: &ThrottlePolicy, now: Instant) -> bool {
    let blocked = entry.blocked_until.is_some_and(|until| until > now);
    !blocked && entry.pending == 0 && now.duration_since(entry.last_failure) >= policy.window
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

    #[tokio::test]
    async fn racing_attempts_verify_at_most_the_allowance_and_none_while_refused() {
        let throttle = std::sync::Arc::new(Throttle::new(POLICY));
        // Sixty attempts parked at once, all wrong.
        let verified = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..60 {
            let (throttle, verified) = (throttle.clone(), verified.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(attempt) = throttle.reserve(&"ada").await else {
                    return;
                };
                verified.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                attempt.fail();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            verified.load(std::sync::atomic::Ordering::SeqCst),
            POLICY.allowed_failures
        );
        // Refused now, right password or not.
        assert!(throttle.reserve(&"ada").await.is_err());
    }

    #[tokio::test]
    async fn successful_attempts_are_not_counted_and_waiters_go_on() {
        let throttle = Throttle::new(POLICY);
        let held: Vec<Attempt<&str>> = vec![
            throttle.reserve(&"ada").await.unwrap(),
            throttle.reserve(&"ada").await.unwrap(),
            throttle.reserve(&"ada").await.unwrap(),
        ];
        assert!(matches!(
            throttle.try_reserve(&"ada", Instant::now()),
            Reservation::Busy
        ));
        for attempt in held {
            attempt.succeed();
        }
        let again = throttle.reserve(&"ada").await.unwrap();
        assert!(!again.fail(), "one failure is allowed");
        assert!(throttle.check(&"ada", Instant::now()).is_ok());
    }

    #[tokio::test]
    async fn after_the_penalty_one_attempt_is_granted_and_its_failure_refuses_for_longer() {
        let throttle = Throttle::new(POLICY);
        for _ in 0..POLICY.allowed_failures {
            throttle.reserve(&"ada").await.unwrap().fail();
        }
        assert!(throttle.reserve(&"ada").await.is_err());
        tokio::time::pause();
        tokio::time::advance(POLICY.penalty).await;
        // Granted at once, not left waiting for an attempt that never ends.
        let again = tokio::time::timeout(Duration::from_secs(1), throttle.reserve(&"ada"))
            .await
            .expect("a reservation waited with nothing in flight")
            .unwrap();
        assert!(again.fail(), "its failure refuses again");
        assert_eq!(
            throttle.check(&"ada", Instant::now()),
            Err(POLICY.penalty * 2)
        );
    }

    #[tokio::test]
    async fn a_success_keeps_the_attempts_still_in_flight_counted() {
        let throttle = Throttle::new(POLICY);
        let in_flight = throttle.reserve(&"ada").await.unwrap();
        let mine = throttle.reserve(&"ada").await.unwrap();
        mine.succeed();
        throttle.record_success(&"ada");
        // One in flight: two more may start, not three.
        let _a = throttle.reserve(&"ada").await.unwrap();
        let _b = throttle.reserve(&"ada").await.unwrap();
        assert!(matches!(
            throttle.try_reserve(&"ada", Instant::now()),
            Reservation::Busy
        ));
        drop(in_flight);
    }

    #[tokio::test]
    async fn waiting_for_the_second_key_holds_nothing_of_the_first() {
        let addresses = Throttle::new(POLICY);
        let users = Throttle::new(POLICY);
        let held: Vec<_> = (0..3)
            .map(|_| users.try_reserve(&"ada", Instant::now()))
            .collect();
        // The user's allowance is in flight: the pair waits, and a cancelled
        // wait costs the address nothing.
        use futures_util::FutureExt;
        let waited = Throttle::reserve_both(&addresses, &1, &users, &"ada").now_or_never();
        assert!(waited.is_none(), "granted past the allowance");
        for _ in 0..POLICY.allowed_failures - 1 {
            assert!(!addresses.reserve(&1).await.unwrap().fail());
        }
        drop(held);
    }

    #[tokio::test]
    async fn an_attempt_dropped_unfinished_counts_as_a_failure() {
        let throttle = Throttle::new(POLICY);
        for _ in 0..POLICY.allowed_failures {
            drop(throttle.reserve(&"ada").await.unwrap());
        }
        assert!(throttle.reserve(&"ada").await.is_err());
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
