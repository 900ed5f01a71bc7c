//! Credentials: password hashing with Argon2id and session tokens.
//!
//! Hashing is deliberately slow, so it never runs on the async threads: each
//! hash or verification goes to `spawn_blocking`, behind a semaphore that
//! bounds how many run at once. A flood of logins then queues here instead of
//! starving the connections that are already chatting.
//!
//! Each running hash works in one of a pool of memory buffers (19 MiB each at
//! the default cost), at most one per permit, reused from hash to hash while
//! hashes keep coming and freed when the last one ends. Letting the argon2
//! crate allocate per hash left the memory to glibc's allocator, which after
//! the first large free raises its mmap threshold and keeps later buffers in
//! arenas: a login flood took the server to 482-658 MiB that it never gave
//! back, for a pool of two hashes. (`porter serve` also fixes glibc's
//! threshold, so that the freed buffers go back to the system.) The PHC strings are written and
//! read here, in the format the argon2 crate uses, so stored hashes from
//! either stay valid.
//!
//! Session tokens are 256 bits from the OS CSPRNG, handed out as URL-safe
//! base64. Only their SHA-256 is ever stored, so the database holds nothing
//! that logs anyone in.

use std::sync::{Arc, OnceLock};

use std::sync::{Mutex, PoisonError};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64ct::{Base64Unpadded, Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Shortest password accepted at registration, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters. Argon2 itself has no cap, and an
/// unbounded password is free CPU for an attacker; 128 leaves room for
/// passphrases and managers.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Bytes of randomness in a session token: 256 bits.
pub const TOKEN_BYTES: usize = 32;
/// Hashes running at once by default: one per core on the small machines
/// Porter targets, so logins never take every blocking thread.
pub const DEFAULT_MAX_CONCURRENT_HASHES: usize = 2;

/// Argon2id cost parameters. The default is OWASP's minimum: 19 MiB of
/// memory, 2 passes, 1 lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

/// Why a credential operation failed. Never carries the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The cost parameters are out of Argon2's range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed inside Argon2 (not a wrong password).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The stored hash is not a PHC string Argon2 can read.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// The blocking task that hashed was cancelled or panicked.
    #[error("password hashing task failed")]
    Task,
    /// The OS random generator failed.
    #[error("the system random generator failed: {0}")]
    Random(String),
}

/// Why a new password is refused; the text is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// Longer than [`MAX_PASSWORD_CHARS`].
    #[error("a password may have at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
}

/// Checks a new password against the policy.
///
/// # Errors
/// [`PasswordPolicyError`] saying which bound it broke.
pub fn check_password_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(PasswordPolicyError::TooShort)
    } else if chars > MAX_PASSWORD_CHARS {
        Err(PasswordPolicyError::TooLong)
    } else {
        Ok(())
    }
}

/// Hashes and verifies passwords off the async threads, a bounded number at
/// a time. Cheap to clone: a handle around an `Arc`.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// Bounds concurrent hashes so that logins cannot starve the reactor's
    /// blocking pool or every core.
    permits: Semaphore,
    /// A hash of a random password with the current cost, verified against
    /// when the user does not exist, so that an unknown user costs exactly
    /// what a wrong password costs. Set by [`PasswordHasher::new`] before
    /// the hasher is handed out; a hasher made
    /// [`without_decoy`](PasswordHasher::without_decoy) (admin commands,
    /// which never verify unknown users) computes it on first use instead.
    decoy: OnceLock<String>,
    /// Memory for the hashes running now, kept for the next ones while any
    /// runs: at most one buffer per permit, each as large as the cost asks.
    buffers: Mutex<Vec<Vec<Block>>>,
    /// Hashes running now; when the last one ends the buffers are freed, so
    /// that a server goes back to its base after a flood.
    running: std::sync::atomic::AtomicUsize,
}

impl Inner {
    /// A buffer of `blocks` blocks: a kept one when the size matches (the
    /// current cost), else a new one that is kept afterwards only if it is
    /// of the current size.
    fn with_buffer<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        use std::sync::atomic::Ordering;
        self.running.fetch_add(1, Ordering::SeqCst);
        let kept = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let buffer = match kept {
            Some(buffer) if buffer.len() == blocks => buffer,
            _ => vec![Block::new(); blocks],
        };
        // Returned (zeroed) or freed by the guard, even if `work` panics.
        let mut lent = Lent {
            inner: self,
            buffer,
        };
        work(&mut lent.buffer)
    }
}

/// A buffer lent to one hash: on drop it is zeroed, and kept for the next
/// hash while others run, or freed with the pool when it was the last.
struct Lent<'a> {
    inner: &'a Inner,
    buffer: Vec<Block>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        // No secret stays behind, kept or freed.
        self.buffer.fill(Block::new());
        let inner = self.inner;
        let mut buffers = inner.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last hash running: nothing is kept between floods (the
            // binary makes the allocator give large frees back).
            buffers.clear();
        } else if self.buffer.len() == inner.params.block_count() {
            buffers.push(std::mem::take(&mut self.buffer));
        }
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with the given cost and at most `max_concurrent` hashes at a
    /// time (at least one). It computes one decoy hash, so it takes as long
    /// as one login to create: what a server wants, since every unknown user
    /// then costs exactly one verification.
    ///
    /// # Errors
    /// [`CredentialError::Params`] when the cost is out of range; the
    /// errors of hashing the decoy.
    pub fn new(cost: HashCost, max_concurrent: usize) -> Result<Self, CredentialError> {
        let hasher = Self::without_decoy(cost, max_concurrent)?;
        let decoy = decoy_hash(&hasher.inner)?;
        // Nobody else holds the hasher yet, so the cell is still empty.
        let _ = hasher.inner.decoy.set(decoy);
        Ok(hasher)
    }

    /// A hasher like [`new`](Self::new) that skips the decoy hash, so it is
    /// ready at once: for tools that only hash and verify known passwords
    /// (`porter users add`, `passwd`). [`verify_decoy`](Self::verify_decoy)
    /// still works, but its first call also computes the decoy, costing one
    /// hash more; a server should use `new`.
    ///
    /// # Errors
    /// [`CredentialError::Params`] when the cost is out of range.
    pub fn without_decoy(cost: HashCost, max_concurrent: usize) -> Result<Self, CredentialError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| CredentialError::Params(e.to_string()))?;
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(max_concurrent.max(1)),
                decoy: OnceLock::new(),
                buffers: Mutex::new(Vec::new()),
                running: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Hashes `password` with a fresh salt into a PHC string.
    ///
    /// # Errors
    /// [`CredentialError::Hash`] or [`CredentialError::Task`].
    pub async fn hash(&self, password: &str) -> Result<String, CredentialError> {
        let password = password.to_owned();
        self.run(move |inner| hash_blocking(inner, password.as_bytes()))
            .await
    }

    /// Whether `password` matches the PHC string `stored`. The parameters
    /// come from the stored string, so old hashes keep working after the
    /// cost is raised.
    ///
    /// # Errors
    /// [`CredentialError::MalformedHash`] or [`CredentialError::Task`]; a wrong
    /// password is `Ok(false)`.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool, CredentialError> {
        let password = password.to_owned();
        let stored = stored.to_owned();
        self.run(move |inner| verify_blocking(inner, password.as_bytes(), &stored))
            .await
    }

    /// Spends the time of a verification and returns `false`: the path for a
    /// user that does not exist.
    ///
    /// # Errors
    /// [`CredentialError::Task`].
    pub async fn verify_decoy(&self, password: &str) -> Result<bool, CredentialError> {
        let password = password.to_owned();
        self.run(move |inner| {
            let decoy = match inner.decoy.get() {
                Some(decoy) => decoy,
                None => {
                    // Two first calls at once may both hash; one decoy wins.
                    let decoy = decoy_hash(inner)?;
                    inner.decoy.get_or_init(|| decoy)
                }
            };
            verify_blocking(inner, password.as_bytes(), decoy).map(|_| false)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, CredentialError> + Send + 'static,
    ) -> Result<T, CredentialError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| CredentialError::Task)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            lower_this_threads_priority();
            let start = std::time::Instant::now();
            let result = work(&inner);
            crate::metrics::argon2_took(start.elapsed());
            result
        })
        .await
        .map_err(|_| CredentialError::Task)?
    }
}

/// The niceness of a thread that hashes: the lowest, so that the reactor's
/// threads (nice 0) take a contended core first and hashing uses what is
/// left. On 2 cores, with 2 hashes running, a registration flood took the
/// echo p99 of 20 logged-in clients from 0.37 ms to 3.6 ms at nice 0 and
/// to 2.4 ms at nice 10; at 19 it stayed at 1.04 times the quiet p99 while
/// the flood still made 676 accounts in 14 s (docs/PERFORMANCE.md).
const HASHING_NICENESS: i32 = 19;

/// Lowers the priority of the current thread, once: tokio's blocking pool
/// runs nothing else in the server, and its threads are reused, so the
/// setting stays with the thread. Failing (a system that refuses) only
/// leaves the priority as it was.
fn lower_this_threads_priority() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if LOWERED.get() {
        return;
    }
    LOWERED.set(true);
    // On Linux, a thread id names the thread alone.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICENESS);
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Bytes of salt in a new hash: 128 bits, as the argon2 crate uses.
const SALT_BYTES: usize = 16;

/// Bytes of hash output, as the argon2 crate writes by default.
const OUTPUT_BYTES: usize = 32;

/// `password` hashed with a fresh salt, as a PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$SALT$HASH`, unpadded standard base64).
fn hash_blocking(inner: &Inner, password: &[u8]) -> Result<String, CredentialError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| CredentialError::Random(e.to_string()))?;
    let params = &inner.params;
    let mut out = [0u8; OUTPUT_BYTES];
    inner
        .with_buffer(params.block_count(), |memory| {
            argon2(params).hash_password_into_with_memory(password, &salt, &mut out, memory)
        })
        .map_err(|e| CredentialError::Hash(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Base64Unpadded::encode_string(&salt),
        Base64Unpadded::encode_string(&out),
    ))
}

/// The hash of a random password nobody knows, for [`Inner::decoy`].
fn decoy_hash(inner: &Inner) -> Result<String, CredentialError> {
    let decoy_password = new_token()?.0;
    hash_blocking(inner, decoy_password.as_bytes())
}

/// A stored PHC string taken apart.
struct Stored {
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// Reads `$argon2id$v=19$m=M,t=T,p=P$SALT$HASH`; anything else is
/// malformed (Porter only ever stored Argon2id, version 19).
fn parse_stored(stored: &str) -> Result<Stored, CredentialError> {
    let malformed = |_| CredentialError::MalformedHash;
    let mut parts = stored.split('$');
    let (Some(""), Some("argon2id"), Some("v=19"), Some(costs), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(CredentialError::MalformedHash);
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for cost in costs.split(',') {
        let (key, value) = cost.split_once('=').ok_or(CredentialError::MalformedHash)?;
        let value: u32 = value.parse().map_err(malformed)?;
        match key {
            "m" if m.is_none() => m = Some(value),
            "t" if t.is_none() => t = Some(value),
            "p" if p.is_none() => p = Some(value),
            _ => return Err(CredentialError::MalformedHash),
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(CredentialError::MalformedHash);
    };
    let hash = Base64Unpadded::decode_vec(hash).map_err(|_| CredentialError::MalformedHash)?;
    let params =
        Params::new(m, t, p, Some(hash.len())).map_err(|_| CredentialError::MalformedHash)?;
    Ok(Stored {
        params,
        salt: Base64Unpadded::decode_vec(salt).map_err(|_| CredentialError::MalformedHash)?,
        hash,
    })
}

fn verify_blocking(inner: &Inner, password: &[u8], stored: &str) -> Result<bool, CredentialError> {
    let stored = parse_stored(stored)?;
    let mut out = vec![0u8; stored.hash.len()];
    inner
        .with_buffer(stored.params.block_count(), |memory| {
            argon2(&stored.params).hash_password_into_with_memory(
                password,
                &stored.salt,
                &mut out,
                memory,
            )
        })
        .map_err(|_| CredentialError::MalformedHash)?;
    // Every byte compared, whatever the first difference.
    let difference = out
        .iter()
        .zip(&stored.hash)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(difference == 0)
}

/// A new session token and the SHA-256 under which it is stored.
///
/// # Errors
/// [`CredentialError::Random`] if the OS generator fails.
pub fn new_token() -> Result<(String, [u8; 32]), CredentialError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| CredentialError::Random(e.to_string()))?;
    let token = Base64UrlUnpadded::encode_string(&bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The SHA-256 of a token as presented by a client: the only form stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters keep the unit tests fast; the defaults are tested
    /// for their values, not their time.
    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            HashCost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_are_those_of_the_argon2_crate_in_both_directions() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = cheap();
        let params = hasher.inner.params.clone();
        // Stored by an earlier Porter, through the crate: still verifies.
        let theirs = argon2(&params)
            .hash_password(b"hunter2-hunter2")
            .unwrap()
            .to_string();
        assert!(hasher.verify("hunter2-hunter2", &theirs).await.unwrap());
        assert!(!hasher.verify("hunter3-hunter3", &theirs).await.unwrap());
        // Stored now: the crate reads and verifies it too.
        let ours = hasher.hash("hunter2-hunter2").await.unwrap();
        argon2(&params)
            .verify_password(b"hunter2-hunter2", ours.as_str())
            .unwrap();
        assert!(
            argon2(&params)
                .verify_password(b"hunter3-hunter3", ours.as_str())
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_memory_of_hashes_is_freed_when_no_hash_runs() {
        let hasher = cheap();
        let hashes: Vec<_> = (0..16)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("password-{i}")).await })
            })
            .collect();
        for hash in hashes {
            hash.await.unwrap().unwrap();
        }
        let kept = hasher.inner.buffers.lock().unwrap();
        assert!(kept.len() <= 2, "{} buffers kept for 2 permits", kept.len());
        assert!(
            kept.iter()
                .all(|b| b.len() == hasher.inner.params.block_count())
        );
    }

    #[test]
    fn default_cost_is_at_least_owasp_minimum() {
        let cost = HashCost::default();
        assert!(cost.memory_kib >= 19 * 1024);
        assert!(cost.iterations >= 2);
        assert_eq!(cost.parallelism, 1);
    }

    #[tokio::test]
    async fn hash_is_a_salted_argon2id_phc_string_that_verifies() {
        let hasher = cheap();
        let a = hasher.hash("correct horse").await.unwrap();
        let b = hasher.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(hasher.verify("correct horse", &a).await.unwrap());
        assert!(!hasher.verify("wrong horse", &a).await.unwrap());
    }

    #[tokio::test]
    async fn malformed_hash_is_an_error_not_a_match() {
        let hasher = cheap();
        assert!(matches!(
            hasher.verify("x", "not a phc string").await,
            Err(CredentialError::MalformedHash)
        ));
    }

    #[tokio::test]
    async fn decoy_never_matches() {
        let hasher = cheap();
        assert!(!hasher.verify_decoy("anything at all").await.unwrap());
    }

    #[tokio::test]
    async fn a_hasher_without_decoy_hashes_and_computes_the_decoy_on_first_use() {
        let cost = HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        assert!(cheap().inner.decoy.get().is_some(), "new computes it");
        let hasher = PasswordHasher::without_decoy(cost, 1).unwrap();
        assert!(hasher.inner.decoy.get().is_none(), "without_decoy does not");
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hasher.verify("correct horse", &hash).await.unwrap());
        assert!(!hasher.verify_decoy("correct horse").await.unwrap());
        assert!(hasher.inner.decoy.get().is_some());
    }

    #[test]
    fn a_cost_out_of_range_is_refused_without_a_decoy_too() {
        let cost = HashCost {
            memory_kib: 1,
            iterations: 0,
            parallelism: 0,
        };
        assert!(matches!(
            PasswordHasher::without_decoy(cost, 1),
            Err(CredentialError::Params(_))
        ));
    }

    #[test]
    fn policy_bounds_are_in_characters_not_bytes() {
        assert_eq!(
            check_password_policy("1234567"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(check_password_policy("12345678"), Ok(()));
        assert_eq!(check_password_policy("éééééééé"), Ok(()));
        assert_eq!(check_password_policy(&"x".repeat(128)), Ok(()));
        assert_eq!(
            check_password_policy(&"x".repeat(129)),
            Err(PasswordPolicyError::TooLong)
        );
    }

    #[test]
    fn tokens_are_256_bit_url_safe_and_distinct() {
        let (a, hash_a) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes in unpadded base64");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(hash_a, token_hash(&a));
        assert_ne!(hash_a, token_hash(&b));
    }
}
