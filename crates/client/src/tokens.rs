//! Where session tokens are kept between connections: the [`TokenJar`]
//! hook the handshake calls, and [`NoTokens`], which keeps nothing. The
//! cookie jar ([`crate::jar::JarTokens`]) is the other implementation.

use porter_wire::Secret;

/// Where session tokens are kept between connections: the cookie jar's hook.
///
/// The handshake presents [`token`](Self::token) in `hello`, hands a received
/// `session` to [`store`](Self::store), and calls [`forget`](Self::forget)
/// when the server answers `session_invalid`.
pub trait TokenJar: Send {
    /// The token to present to this server, if one is held.
    fn token(&self) -> Option<Secret>;
    /// Keeps a token the server handed out for `user`, valid until
    /// `expires_at` (RFC 3339).
    fn store(&mut self, token: Secret, user: &str, expires_at: &str);
    /// Drops the held token: the server no longer accepts it.
    fn forget(&mut self);
}

/// A [`TokenJar`] that holds nothing: every connection starts afresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTokens;

impl TokenJar for NoTokens {
    fn token(&self) -> Option<Secret> {
        None
    }
    fn store(&mut self, _token: Secret, _user: &str, _expires_at: &str) {}
    fn forget(&mut self) {}
}
