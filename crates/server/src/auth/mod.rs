//! Authentication: the auth modes a server can run, behind one `Auth` value
//! chosen at start-up from [`crate::Config::auth`]: `none` (in the handshake
//! module), `ip` and `password` (in this module's private submodules). Also
//! what the two stored modes share: the name policy, the answer to a failing
//! store, and RFC 3339 dates.
//!
//! Public, so that the admin commands apply the server's rules rather than
//! copies of them: [`check_user_name`] (and [`check_chat_name`], with
//! [`MAX_NAME_CHARS`] and [`NameError`]) and [`rfc3339`]. The modes
//! themselves are internal.
//!
//! No SQL here: every read and write goes through the [`porter_store::Store`]
//! trait, so another backend changes nothing in this module.

pub(crate) mod ip;
pub(crate) mod password;

use std::net::{IpAddr, SocketAddr};

use porter_store::{StoreError, UnixTime};
use porter_wire::{AuthMode, ServerMessage};
use tracing::error;

use crate::config::Config;
use crate::connection::Reason;
use crate::handshake::{Authenticator, Dialog, Ended, Hello, Identity, NoAuth};
use crate::hub::SERVER_NAME;

pub(crate) use ip::IpAuth;
pub(crate) use password::PasswordAuth;

/// Longest name (chat name or user name), in characters after trimming.
pub const MAX_NAME_CHARS: usize = 32;

/// Answers refused by policy (a name, a new password) before the server
/// gives up on a connection. A person gets it right long before; a script
/// looping on bad answers would otherwise hold its slot until the timeout.
pub(crate) const MAX_INVALID_ANSWERS: u32 = 5;

/// What a client is told when the store fails. It says nothing about why:
/// the cause is in the server's log.
pub(crate) const SERVER_ERROR_TEXT: &str = "server error, try again later";

/// The auth mode of a running server.
#[derive(Debug)]
pub(crate) enum Auth {
    /// Everyone is let in.
    None(NoAuth),
    /// Known by address, asked a name once.
    Ip(IpAuth),
    /// Users, passwords and sessions.
    Password(Box<PasswordAuth>),
}

impl Auth {
    /// The auth mode `config` asks for, ready to serve. For `password` this
    /// computes the decoy hash, on a blocking thread.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] when the mode lacks its store or the
    /// hash cost is refused.
    pub(crate) async fn build(config: &Config) -> Result<Auth, crate::Error> {
        let store = || {
            config
                .store
                .clone()
                .ok_or_else(|| crate::Error::InvalidConfig {
                    field: "store",
                    reason: format!("is required for auth {}", config.auth),
                })
        };
        Ok(match config.auth {
            AuthMode::None => Auth::None(NoAuth),
            AuthMode::Ip => Auth::Ip(IpAuth::new(store()?, config.clock.clone())),
            AuthMode::Password => {
                Auth::Password(Box::new(PasswordAuth::build(store()?, config).await?))
            }
        })
    }
}

impl Authenticator for Auth {
    fn mode(&self) -> AuthMode {
        match self {
            Auth::None(auth) => auth.mode(),
            Auth::Ip(auth) => auth.mode(),
            Auth::Password(auth) => auth.mode(),
        }
    }

    async fn authenticate<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        hello: Hello,
    ) -> Result<Identity, Ended> {
        match self {
            Auth::None(auth) => auth.authenticate(dialog, peer, hello).await,
            Auth::Ip(auth) => auth.authenticate(dialog, peer, hello).await,
            Auth::Password(auth) => auth.authenticate(dialog, peer, hello).await,
        }
    }
}

/// Which names a policy accepts besides the common rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    /// A chat name given from an address: spaces inside are fine.
    Chat,
    /// A user name: also typed on command lines (`porter users remove`), so
    /// no whitespace at all.
    User,
}

/// Why a name is refused. The text is safe to send to the client: it names
/// the rule, not the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty after trimming, or longer than [`MAX_NAME_CHARS`] characters.
    #[error("a name needs 1 to {MAX_NAME_CHARS} characters")]
    Length,
    /// A control character (a newline, a bell) anywhere in the name.
    #[error("a name may not contain control characters")]
    ControlCharacter,
    /// Whitespace inside a user name.
    #[error("a user name may not contain spaces")]
    Whitespace,
    /// `server` in any case, which would let a client speak as the server
    /// in chat.
    #[error("the name {SERVER_NAME:?} is reserved")]
    Reserved,
}

/// Checks a user name (`auth password`, `porter users add`) and returns it
/// trimmed: the rules of [`check_chat_name`], and no whitespace at all,
/// since user names are also typed on command lines.
///
/// # Errors
/// [`NameError`] naming the rule the name breaks.
pub fn check_user_name(raw: &str) -> Result<&str, NameError> {
    check_name(raw, NameKind::User)
}

/// Checks a chat name (`auth ip`) and returns it trimmed: 1 to
/// [`MAX_NAME_CHARS`] characters after trimming, no control characters, and
/// not `server` in any case. Spaces inside are fine.
///
/// # Errors
/// [`NameError`] naming the rule the name breaks.
pub fn check_chat_name(raw: &str) -> Result<&str, NameError> {
    check_name(raw, NameKind::Chat)
}

/// Checks a name given in an `answer` and returns it trimmed: the common
/// rules, and for [`NameKind::User`] no whitespace.
fn check_name(raw: &str, kind: NameKind) -> Result<&str, NameError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(NameError::Length);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if kind == NameKind::User && name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name.eq_ignore_ascii_case(SERVER_NAME) {
        return Err(NameError::Reserved);
    }
    Ok(name)
}

/// The address a client is known by: an IPv4-mapped IPv6 address is the
/// IPv4 address it maps (the store does the same), so one client is one key
/// however it reached a dual-stack socket.
pub(crate) fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// Logs a store failure, tells the client to come back later (`bye`) and
/// ends the handshake. The server goes on serving the others.
pub(crate) fn store_failed<D: Dialog>(
    dialog: &mut D,
    peer: SocketAddr,
    operation: &'static str,
    err: &StoreError,
) -> Ended {
    // StoreError's messages carry no bound values, so no secret.
    error!(peer = %peer, operation, cause = %err, "store failed");
    let _ = dialog.send(&ServerMessage::Bye {
        text: SERVER_ERROR_TEXT.into(),
    });
    Reason::ServerError
}

/// The same for a failure that is not the store's (hashing, randomness).
pub(crate) fn internal_failure<D: Dialog>(
    dialog: &mut D,
    peer: SocketAddr,
    operation: &'static str,
    err: &dyn std::error::Error,
) -> Ended {
    error!(peer = %peer, operation, cause = %err, "authentication failed on the server");
    let _ = dialog.send(&ServerMessage::Bye {
        text: SERVER_ERROR_TEXT.into(),
    });
    Reason::ServerError
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-02T08:00:00Z`): how the server
/// writes `expires_at`, and how the admin commands show dates. Years before
/// 0 or after 9999 cannot occur for the server's own dates: the session
/// lifetime is capped.
pub fn rfc3339(time: UnixTime) -> String {
    let days = time.div_euclid(86_400);
    let secs = time.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`, exact for every day of the range we use).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(check_name("  ada  ", NameKind::Chat), Ok("ada"));
        assert_eq!(
            check_name("Ada Lovelace", NameKind::Chat),
            Ok("Ada Lovelace")
        );
        assert!(check_name("Ada Lovelace", NameKind::User).is_err());
        assert!(check_name("   ", NameKind::Chat).is_err());
        assert!(check_name("", NameKind::User).is_err());
        let longest = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(check_name(&longest, NameKind::User), Ok(longest.as_str()));
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS + 1), NameKind::User).is_err());
        assert!(check_name("a\u{7}b", NameKind::Chat).is_err());
        assert!(check_name("a\nb", NameKind::Chat).is_err());
    }

    #[test]
    fn nobody_may_be_called_server() {
        assert!(check_name("server", NameKind::Chat).is_err());
        assert!(check_name(" SERVER ", NameKind::User).is_err());
        assert!(check_name("servers", NameKind::User).is_ok());
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4() {
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }
}
