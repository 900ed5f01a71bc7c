//! Porter's server: the listener, the per-connection handler, the handshake,
//! the services (echo, and the chat hub), limits and shutdown.
//!
//! The entry points are [`bind`] (with port hunting) and [`run`], which
//! serves a listener until a shutdown future completes. Tests bind port 0
//! and pass a oneshot; the `porter` binary passes Ctrl-C.
//!
//! Map of the crate, following tokio's mini-redis:
//!
//! - `listener`: accept loop, connection cap, accept backoff.
//! - `handler`: one connection from `welcome` to close.
//! - `connection`: framed reading, the bounded outgoing queue and its writer.
//! - `handshake`: `hello` to `ready`, and the authenticator abstraction.
//! - [`auth`]: the `ip` and `password` modes, over a `porter_store::Store`
//!   (public: the name policy and the RFC 3339 dates, which the admin CLI
//!   applies too).
//! - [`credentials`], [`throttle`]: Argon2id hashing off the async threads,
//!   session tokens, and failed-login throttling (public: the admin CLI
//!   hashes passwords with [`credentials::PasswordHasher`] too).
//! - `service`, `hub`: echo, and the chat room.
//! - `shutdown`: graceful then hard stop.
//! - session purge (here): dead sessions are deleted at start and every
//!   [`SESSION_PURGE_INTERVAL`].
//! - `config`, `error`, `bind`: the public surface.
//!
//! The server only emits `tracing` events; installing a subscriber is the
//! caller's business.

#![deny(missing_docs)]

pub mod auth;
mod bind;
mod config;
mod connection;
pub mod credentials;
mod error;
mod handler;
mod handshake;
mod hub;
mod listener;
mod service;
mod shutdown;
pub mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use porter_store::Store;
pub use porter_wire::{AuthMode, ServiceKind};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::field::display;
use tracing::{debug, info, warn};

pub use crate::bind::{Bound, DEFAULT_PORT_TRIES, bind};
pub use crate::config::{
    Clock, Config, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_AUTH_ATTEMPTS,
    DEFAULT_MAX_CONCURRENT_HASHES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_OUTGOING_QUEUE, DEFAULT_PRE_LOGIN_MAX_FRAME_LEN, DEFAULT_SESSION_TTL,
    DEFAULT_SHUTDOWN_GRACE, MAX_SESSION_TTL, MIN_MAX_FRAME_LEN, ParseRegistrationError,
    Registration, default_server_name,
};
pub use crate::error::{BindError, Error};

use crate::auth::Auth;
use crate::handler::Shared;
use crate::hub::Hub;
use crate::listener::Listener;
use crate::service::Service;
use crate::shutdown::Shutdown;

/// How often a running server deletes expired and revoked sessions from its
/// store (it also does so once at start). Dead sessions are already refused
/// at login, so this only keeps the table and `porter sessions list` from
/// growing forever: hourly is plenty for that, and each purge is a single
/// `DELETE` that scans the table while holding the write lock.
pub const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The server's own console, for the chat service.
#[derive(Debug)]
pub struct Console {
    /// Lines typed at the server: sent to every client as from `server`.
    /// The server stops reading when this closes, and keeps serving.
    pub input: mpsc::Receiver<String>,
    /// Chat lines for the console to print. The server never waits on it:
    /// when it is full, lines are dropped and counted in the log.
    pub output: mpsc::Sender<ConsoleLine>,
}

/// A chat line for the server's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Who said it (the participant's name).
    pub from: String,
    /// What was said.
    pub text: String,
}

/// Serves `listener` until `shutdown` completes, then stops accepting, sends
/// every client `bye`, waits at most `config.shutdown_grace` for those
/// writes, and returns.
///
/// Errors of single connections are logged and never end the server, and so
/// are store failures: the client concerned is told to try again later.
/// With `auth: password`, start-up computes one decoy hash (as long as one
/// login) before serving. With a store, start-up also deletes its expired
/// and revoked sessions (by `config.clock`) before accepting, and repeats
/// that every [`SESSION_PURGE_INTERVAL`]; a failed purge is logged and the
/// server serves on.
///
/// # Errors
/// Only before serving starts: [`Error::InvalidConfig`] for limits that
/// would make the server unusable, or for the `ip` and `password` modes
/// without a store (`field` is `"store"`).
pub async fn run(
    listener: TcpListener,
    config: Config,
    console: Option<Console>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let auth = Auth::build(&config).await?;
    let shutdown_state = Shutdown::default();
    let codec = porter_wire::FrameCodec::with_max_frame_len(config.max_frame_len);

    let (console_input, console_output) = match console {
        Some(Console { input, output }) => (Some(input), Some(output)),
        None => (None, None),
    };
    let service = match config.service {
        ServiceKind::Echo => Service::Echo,
        ServiceKind::Chat => Service::Chat(Hub::new(codec, console_output, config.announce)),
    };
    if let Some(input) = console_input {
        spawn_console(input, &service, &shutdown_state);
    }

    let grace = config.shutdown_grace;
    let shared = Arc::new(
        Shared::new(config, service, auth, shutdown_state.clone()).map_err(|err| {
            Error::InvalidConfig {
                field: "server_name",
                reason: format!("does not fit in a welcome frame: {err}"),
            }
        })?,
    );
    let listener = Listener::new(listener, shared.clone()).map_err(|err| Error::InvalidConfig {
        field: "max_frame_len",
        reason: format!("too small for the busy error: {err}"),
    })?;

    // Before accepting, so a client that got its welcome knows the purge ran.
    if let Some(store) = &shared.config.store {
        purge_sessions(store.as_ref(), &shared.config.clock).await;
        spawn_session_purge(
            store.clone(),
            shared.config.clock.clone(),
            SESSION_PURGE_INTERVAL,
            &shutdown_state,
        );
    }

    // Logged as the address itself; a listener that cannot say its address
    // (it never happens on a bound socket) logs the events without it.
    let addr = listener.listener.local_addr().ok().map(display);
    info!(
        addr,
        service = %shared.config.service,
        auth = %shared.config.auth,
        registration = %shared.config.registration,
        max_connections = shared.config.max_connections,
        "listening"
    );
    // Dropping the listener when the loop returns is what stops accepting.
    listener.run(shutdown).await;
    info!(addr, "stopped accepting");
    shutdown_state.finish(grace).await;
    Ok(())
}

/// Deletes the store's dead sessions as of `clock`'s now, and logs the
/// outcome. Never fails: a store that cannot purge now may next time, and
/// live sessions do not depend on it.
async fn purge_sessions(store: &dyn Store, clock: &Clock) {
    match store.purge_sessions(clock.now()).await {
        Ok(0) => debug!("no sessions to purge"),
        Ok(count) => info!(count, "sessions purged"),
        Err(err) => warn!(cause = %err, "session purge failed"),
    }
}

/// Purges the store's dead sessions every `period` (the first time one
/// `period` from now: `run` has just purged) until the server shuts down.
///
/// A graceful stop ends the wait between purges but lets a purge in flight
/// finish (it is one short statement, and a half-awaited store call is not
/// worth the doubt); the hard stop ends it at once.
fn spawn_session_purge(
    store: porter_store::SharedStore,
    clock: Clock,
    period: Duration,
    shutdown: &Shutdown,
) {
    let graceful = shutdown.graceful.clone();
    let abort = shutdown.abort.clone();
    shutdown.tracker.spawn(async move {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // A purge that ran late (a store held busy) is not followed by a
        // burst of catch-up purges.
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = graceful.cancelled() => break,
                _ = every.tick() => {}
            }
            tokio::select! {
                biased;
                () = abort.cancelled() => break,
                () = purge_sessions(store.as_ref(), &clock) => {}
            }
        }
        debug!("session purge stopped");
    });
}

/// Forwards console lines to the room until the console closes or the
/// server shuts down. With echo there is no room: lines are read and
/// dropped so the console's sender never fills up.
fn spawn_console(mut input: mpsc::Receiver<String>, service: &Service, shutdown: &Shutdown) {
    let hub = match service {
        Service::Chat(hub) => Some(hub.clone()),
        Service::Echo => None,
    };
    let graceful = shutdown.graceful.clone();
    shutdown.tracker.spawn(async move {
        loop {
            let line = tokio::select! {
                biased;
                () = graceful.cancelled() => break,
                line = input.recv() => line,
            };
            match (line, &hub) {
                (None, _) => {
                    debug!("console input closed");
                    break;
                }
                (Some(line), Some(hub)) => hub.console_line(&line),
                (Some(_), None) => debug!("console line ignored: echo service has no room"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use porter_store::{SharedStore, SqliteStore};
    use tokio::sync::mpsc::UnboundedReceiver;
    use tokio::time::timeout;

    /// Bound on every wait, so a broken purge task fails the test.
    const WAIT: Duration = Duration::from_secs(20);

    /// A store holding alice's sessions: one live until 1000, one expired
    /// at 100 and one revoked.
    async fn store_with_dead_sessions() -> SharedStore {
        let store = SqliteStore::open_in_memory().await.unwrap();
        store.create_user("alice", "$h", 0).await.unwrap();
        store
            .create_session(&[1; 32], "alice", 0, 1000)
            .await
            .unwrap();
        store
            .create_session(&[2; 32], "alice", 0, 100)
            .await
            .unwrap();
        store
            .create_session(&[3; 32], "alice", 0, 1000)
            .await
            .unwrap();
        assert!(store.revoke_session(&[3; 32], 10).await.unwrap());
        store.shared()
    }

    /// A clock fixed at `now` that reports every reading: each purge reads
    /// it once, just before its `DELETE`.
    fn reporting_clock(now: i64) -> (Clock, UnboundedReceiver<()>) {
        let (read, reads) = mpsc::unbounded_channel();
        let clock = Clock::new(move || {
            let _ = read.send(());
            now
        });
        (clock, reads)
    }

    /// Ends the task gracefully and waits for it.
    async fn stop(shutdown: &Shutdown) {
        shutdown.graceful.cancel();
        shutdown.tracker.close();
        timeout(WAIT, shutdown.tracker.wait())
            .await
            .expect("the purge task did not stop on graceful shutdown");
    }

    #[tokio::test]
    async fn the_periodic_purge_deletes_dead_sessions_and_keeps_live_ones() {
        let store = store_with_dead_sessions().await;
        let (clock, mut reads) = reporting_clock(500);
        let shutdown = Shutdown::default();
        spawn_session_purge(store.clone(), clock, Duration::from_millis(10), &shutdown);

        timeout(WAIT, reads.recv())
            .await
            .expect("no purge within the wait")
            .unwrap();
        // A purge that has read the clock is finished before the task ends.
        stop(&shutdown).await;
        let left = store.list_sessions(None).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].is_active(500), "{left:?}");
    }

    #[tokio::test]
    async fn the_periodic_purge_waits_a_period_first_and_stops_on_shutdown() {
        let store = store_with_dead_sessions().await;
        let (clock, mut reads) = reporting_clock(500);
        let shutdown = Shutdown::default();
        // Paused only now: the store's own threads must not race a paused
        // clock while it is set up.
        tokio::time::pause();
        spawn_session_purge(store.clone(), clock, SESSION_PURGE_INTERVAL, &shutdown);
        // The task runs on this thread: let it start its timer, then act on
        // the time that passed.
        tokio::task::yield_now().await;
        tokio::time::advance(SESSION_PURGE_INTERVAL / 2).await;
        tokio::task::yield_now().await;
        tokio::time::resume();
        stop(&shutdown).await;
        assert!(reads.try_recv().is_err(), "purged before the first period");
        assert_eq!(store.list_sessions(None).await.unwrap().len(), 3);
    }
}
