//! Authentication: the auth modes a server can run, behind one `Auth` value
//! chosen at start-up from [`crate::Config::auth`]: `none` (in the handshake
//! module), `ip` and `password` (in this module's private submodules), and
//! the sessions the password mode opens and a client's `logout` closes
//! (`session`). Also what the two stored modes share: the answer to a
//! failing server, and RFC 3339 dates.
//!
//! Public, so that the admin commands apply the server's rules rather than
//! copies of them: the name policy ([`check_user_name`], [`check_chat_name`],
//! [`MAX_NAME_CHARS`] and [`NameError`], and [`printable`] for showing names
//! stored before it, re-exported from the `names` module) and [`rfc3339`]. The modes themselves are internal.
//!
//! No SQL here: every read and write goes through the [`porter_store::Store`]
//! trait, so another backend changes nothing in this module.

pub(crate) mod ip;
pub(crate) mod password;
pub(crate) mod session;

use std::net::SocketAddr;

use porter_store::TokenHash;
use porter_wire::{AuthMode, ServerMessage};
use tracing::error;

use crate::close::Reason;
use crate::config::Config;
use crate::error::Error;
use crate::handshake::{Authenticator, Dialog, Ended, Hello, Identity, NoAuth};
use crate::peer::PeerInfo;

pub use crate::clock::rfc3339;
pub use crate::names::{
    MAX_NAME_CHARS, NameError, check_chat_name, check_user_name, is_hidden, printable,
};

pub(crate) use ip::IpAuth;
pub(crate) use password::PasswordAuth;

/// Answers refused by policy (a name, a new password) before the server
/// gives up on a connection. A person gets it right long before; a script
/// looping on bad answers would otherwise hold its slot until the timeout.
pub(crate) const MAX_INVALID_ANSWERS: u32 = 5;

/// What a client is told when the store fails. It says nothing about why:
/// the cause is in the server's log.
pub(crate) const SERVER_ERROR_TEXT: &str = "server error, try again later";

/// What a client is told when the store cannot be reached (PostgreSQL
/// down): logins wait for it, connected clients are not concerned.
pub(crate) const DATABASE_UNAVAILABLE_TEXT: &str =
    "the server's database cannot be reached, so logins are refused for now; try again later";

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
    /// [`Error::InvalidConfig`] when the mode lacks its store or the
    /// hash cost is refused.
    pub(crate) async fn build(config: &Config) -> Result<Auth, Error> {
        let store = || {
            config.store.clone().ok_or_else(|| Error::InvalidConfig {
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

impl Auth {
    /// Ends the session a client logged in with (`logout`): revokes it, then
    /// says `bye`. Only the `password` mode hands out sessions, so only
    /// there can a client have one.
    pub(crate) async fn logout<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: &PeerInfo,
        user: &str,
        session: &TokenHash,
    ) -> Reason {
        match self {
            Auth::Password(auth) => auth.sessions.logout(dialog, peer.addr, user, session).await,
            Auth::None(_) | Auth::Ip(_) => Reason::ServerError,
        }
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
        peer: &PeerInfo,
        hello: Hello,
    ) -> Result<Identity, Ended> {
        match self {
            Auth::None(auth) => auth.authenticate(dialog, peer, hello).await,
            Auth::Ip(auth) => auth.authenticate(dialog, peer, hello).await,
            Auth::Password(auth) => auth.authenticate(dialog, peer, hello).await,
        }
    }
}

/// Logs a failure of the server's own (the store, hashing, randomness),
/// tells the client to come back later (`bye`) and ends the handshake. The
/// server goes on serving the others.
///
/// The errors given here carry no bound values and no secret (the store's
/// messages name the operation, never its arguments).
pub(crate) fn server_failed<D: Dialog>(
    dialog: &mut D,
    peer: SocketAddr,
    operation: &'static str,
    err: &(dyn std::error::Error + 'static),
) -> Ended {
    error!(peer = %peer, operation, cause = %err, "server failed during authentication");
    // A database that cannot be reached is worth saying: the person learns
    // it is not their password, and that waiting is the cure.
    let unreachable = err
        .downcast_ref::<porter_store::StoreError>()
        .is_some_and(|err| err.kind() == porter_store::StoreErrorKind::Unavailable);
    let text = if unreachable {
        DATABASE_UNAVAILABLE_TEXT
    } else {
        SERVER_ERROR_TEXT
    };
    let _ = dialog.send(&ServerMessage::Bye { text: text.into() });
    Reason::ServerError
}
