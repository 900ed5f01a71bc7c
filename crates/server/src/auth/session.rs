//! Sessions: what a login or a registration opens (a fresh token, stored
//! only as its SHA-256 before the client sees it), what a `hello` with a
//! token resumes, and what a client's `logout` closes. One module, so that
//! the whole life of a session reads in one place.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use porter_store::{SharedStore, TokenHash, UnixTime, session_id};
use porter_wire::{ErrorCode, Secret, ServerMessage};
use tracing::info;

use super::{SERVER_ERROR_TEXT, server_failed};
use crate::clock::Clock;
use crate::clock::rfc3339;
use crate::close::Reason;
use crate::credentials::{new_token, token_hash};
use crate::handshake::{Dialog, Ended, Identity};
use crate::metrics::{self, Login};
use crate::names::SERVER_NAME;

/// Opens, resumes and closes sessions in a store.
#[derive(Clone)]
pub(crate) struct Sessions {
    /// Where sessions are kept.
    store: SharedStore,
    /// "Now" for expiry.
    clock: Clock,
    /// Lifetime of new sessions, in seconds.
    ttl: UnixTime,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions in `store` that last `ttl` from `clock`'s now.
    pub(crate) fn new(store: SharedStore, clock: Clock, ttl: Duration) -> Sessions {
        Sessions {
            store,
            clock,
            ttl: UnixTime::try_from(ttl.as_secs()).unwrap_or(UnixTime::MAX),
        }
    }

    /// The token path: `Some` identity for a live session; `None` after
    /// telling the client `session_invalid`, so that it logs in instead.
    pub(crate) async fn resume<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        token: &Secret,
    ) -> Result<Option<Identity>, Ended> {
        let hash = token_hash(token.expose());
        let session = session_id(&hash);
        match self.store.resume_session(&hash, self.clock.now()).await {
            Ok(Some(record)) => {
                info!(peer = %peer, user = %record.user, session = %session, result = "resumed",
                    "authentication");
                metrics::login(Login::Resumed);
                dialog.send(&greeting("Welcome back", &record.user))?;
                Ok(Some(Identity {
                    user: record.user,
                    session: Some(hash),
                }))
            }
            Ok(None) => {
                info!(peer = %peer, session = %session, result = "session invalid",
                    "authentication");
                metrics::login(Login::SessionInvalid);
                dialog.send(&ServerMessage::error(
                    ErrorCode::SessionInvalid,
                    "session unknown, expired or revoked: please log in",
                ))?;
                Ok(None)
            }
            Err(err) => Err(server_failed(dialog, peer, "resume_session", &err)),
        }
    }

    /// Creates and stores a session, then sends `session` and the greeting.
    /// The token leaves the server only after its hash was committed.
    pub(crate) async fn open<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        name: &str,
        result: &'static str,
        greeting_word: &str,
    ) -> Result<Identity, Ended> {
        let (token, hash): (String, TokenHash) = match new_token() {
            Ok(pair) => pair,
            Err(err) => return Err(server_failed(dialog, peer, "new_token", &err)),
        };
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.ttl);
        if let Err(err) = self
            .store
            .create_session(&hash, name, now, expires_at)
            .await
        {
            return Err(server_failed(dialog, peer, "create_session", &err));
        }
        let expires_at = rfc3339(expires_at);
        info!(peer = %peer, user = %name, session = %session_id(&hash), expires_at = %expires_at,
            result, "authentication");
        dialog.send(&ServerMessage::Session {
            token: Secret::new(token),
            user: name.to_owned(),
            expires_at,
        })?;
        dialog.send(&greeting(greeting_word, name))?;
        Ok(Identity {
            user: name.to_owned(),
            session: Some(hash),
        })
    }

    /// Revokes the session the client logged in with, then says `bye`. Only
    /// after the revocation is committed: the client takes `bye` as "done".
    pub(crate) async fn logout<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        user: &str,
        session: &TokenHash,
    ) -> Reason {
        let id = session_id(session);
        match self.store.revoke_session(session, self.clock.now()).await {
            Ok(revoked) => {
                info!(peer = %peer, user = %user, session = %id, revoked, result = "logout",
                    "authentication");
                let _ = dialog.send(&ServerMessage::Bye {
                    text: "logged out".into(),
                });
                Reason::Logout
            }
            Err(err) => {
                tracing::error!(peer = %peer, user = %user, session = %id, cause = %err,
                    operation = "revoke_session", "store failed");
                let _ = dialog.send(&ServerMessage::Bye {
                    text: SERVER_ERROR_TEXT.into(),
                });
                Reason::ServerError
            }
        }
    }
}

/// A greeting from the server.
pub(crate) fn greeting(word: &str, name: &str) -> ServerMessage {
    ServerMessage::say(format!("{word}, {name}!"), SERVER_NAME)
}
