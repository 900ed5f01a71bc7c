//! The connections past `ready`, by user and session, so that what an
//! operator does reaches them at once: a revoked session, a removed user or
//! a kick ends every live connection concerned, on every instance (each
//! polls the shared store; see `operator`).
//!
//! A handler registers its client when it is identified and holds the
//! [`LiveEntry`] guard until it ends; the [`Dismissal`] it gets back is one
//! more stop signal of its service loop, which then says why (`error
//! {code: revoked}`, then `bye`) and closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use porter_store::{OperatorAction, OperatorActionKind, TokenHash};
use tokio_util::sync::CancellationToken;

/// Every live connection, by a key of its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    user: String,
    session: Option<TokenHash>,
    dismissal: Dismissal,
}

/// Why an operator ended a connection, for the client and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dismissed {
    /// What the client is told in `error{code: revoked}`.
    pub(crate) text: String,
    /// For the log.
    pub(crate) reason: &'static str,
}

/// The signal that an operator ended this connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dismissal {
    token: CancellationToken,
    why: Arc<OnceLock<Dismissed>>,
}

impl Dismissal {
    fn dismiss(&self, why: Dismissed) {
        let _ = self.why.set(why);
        self.token.cancel();
    }

    /// Completes when an operator ends the connection.
    pub(crate) async fn dismissed(&self) {
        self.token.cancelled().await;
    }

    pub(crate) fn is_dismissed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why, once dismissed.
    pub(crate) fn why(&self) -> Option<&Dismissed> {
        self.why.get()
    }
}

/// A registered connection; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct LiveEntry {
    live: Live,
    key: u64,
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        self.live.entries().remove(&self.key);
    }
}

impl Live {
    fn entries(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Every update is one insert or remove: a poisoned map is whole.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection of `user`, logged in with `session` if any;
    /// `None` when `user` already has `cap` live connections.
    pub(crate) fn register(
        &self,
        user: &str,
        session: Option<TokenHash>,
        cap: Option<usize>,
    ) -> Option<(LiveEntry, Dismissal)> {
        let key = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let dismissal = Dismissal::default();
        let mut entries = self.entries();
        // A scan: the registry is as large as the connection cap, and this
        // runs once per login.
        if let Some(cap) = cap
            && entries.values().filter(|e| e.user == user).count() >= cap
        {
            return None;
        }
        entries.insert(
            key,
            Entry {
                user: user.to_owned(),
                session,
                dismissal: dismissal.clone(),
            },
        );
        Some((
            LiveEntry {
                live: self.clone(),
                key,
            },
            dismissal,
        ))
    }

    /// Ends the connections `action` concerns; returns how many.
    pub(crate) fn obey(&self, action: &OperatorAction) -> usize {
        let why = match action.kind {
            OperatorActionKind::Revoked => Dismissed {
                text: "your session was revoked by an operator".into(),
                reason: "session revoked",
            },
            OperatorActionKind::Removed => Dismissed {
                text: "your account was removed by an operator".into(),
                reason: "user removed",
            },
            OperatorActionKind::Kicked => Dismissed {
                text: match &action.reason {
                    Some(reason) => format!("an operator removed you from the room: {reason}"),
                    None => "an operator removed you from the room".into(),
                },
                reason: "kicked",
            },
            _ => return 0,
        };
        let mut ended = 0;
        for entry in self.entries().values() {
            let concerned = match action.kind {
                OperatorActionKind::Revoked => {
                    entry.session.is_some() && entry.session == action.session
                }
                _ => entry.user == action.user,
            };
            if concerned && !entry.dismissal.is_dismissed() {
                entry.dismissal.dismiss(why.clone());
                ended += 1;
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(kind: OperatorActionKind, user: &str, session: Option<TokenHash>) -> OperatorAction {
        OperatorAction {
            id: 1,
            kind,
            user: user.into(),
            session,
            reason: Some("spam".into()),
            at: 0,
        }
    }

    #[test]
    fn an_action_ends_the_connections_it_concerns_and_no_other() {
        let live = Live::default();
        let (_a1, a1) = live.register("ada", Some([1; 32]), None).unwrap();
        let (_a2, a2) = live.register("ada", Some([2; 32]), None).unwrap();
        let (_b, b) = live.register("bob", None, None).unwrap();

        assert_eq!(
            live.obey(&action(OperatorActionKind::Revoked, "ada", Some([1; 32]))),
            1
        );
        assert!(a1.is_dismissed() && !a2.is_dismissed() && !b.is_dismissed());
        assert_eq!(a1.why().unwrap().reason, "session revoked");

        assert_eq!(
            live.obey(&action(OperatorActionKind::Kicked, "bob", None)),
            1
        );
        assert_eq!(
            b.why().unwrap().text,
            "an operator removed you from the room: spam"
        );
        assert_eq!(
            live.obey(&action(OperatorActionKind::Removed, "ada", None)),
            1
        );
        assert!(a2.is_dismissed());
    }

    #[test]
    fn a_connection_that_ended_is_no_longer_concerned() {
        let live = Live::default();
        let (entry, _dismissal) = live.register("ada", None, None).unwrap();
        drop(entry);
        assert_eq!(
            live.obey(&action(OperatorActionKind::Kicked, "ada", None)),
            0
        );
    }
}
