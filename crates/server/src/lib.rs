//! Porter's server: the listener, the per-connection handler, the handshake,
//! the services (echo, and the chat room), limits and shutdown.
//!
//! The entry points are [`bind`] (with port hunting) and [`run`], which
//! serves a listener until a shutdown future completes. Tests bind port 0
//! and pass a oneshot; the `porter` binary passes Ctrl-C.
//!
//! Map of the crate, in the order a connection walks it (each module uses
//! only those below it; none uses this root); `docs/ARCHITECTURE.md` has
//! the whole picture:
//!
//! - `listener`: the accept loop over any [`Accept`], the connection cap,
//!   accept backoff, the `busy` refusal.
//! - `upgrade`: what an accepted stream becomes before `welcome`, in the
//!   connection's own task: itself, or a TLS stream.
//! - `line`: after `welcome`, a client whose first byte is not `0x00` is a
//!   person with telnet or nc, served in plain lines through a stream that
//!   looks framed to everything below.
//! - [`tls`]: the server's certificate and key, generated or loaded, and
//!   their fingerprint (public: `porter fingerprint` reads it too).
//! - `handler`: one connection's task, from the upgrade to close.
//! - `protocol`: frames as messages, answers to bad ones, out-of-turn
//!   refusals: the handshake and the service loop read through it.
//! - `connection`: the buffered, framed stream and its batched writes.
//! - `outbox`, `close`, `linger`, `peer`: how others reach a client, why and
//!   how a connection ends, the last second, and who the client is.
//! - `handshake`: `hello` to `ready`, and the authenticator abstraction.
//! - [`auth`]: the `ip` and `password` modes, and sessions, over a
//!   `porter_store::Store` (public: the name policy and the RFC 3339 dates,
//!   which the admin CLI applies too).
//! - [`credentials`], [`throttle`]: Argon2id hashing off the async threads,
//!   session tokens, and failed-login throttling (public: the admin CLI
//!   hashes passwords with [`credentials::PasswordHasher`] too).
//! - `service`, `room`: echo, and the chat room on its bus.
//! - `names`, `console`: the reserved server name and the name policy; the
//!   server's console.
//! - `live`, `operator`: the identified connections, and the watch that
//!   ends those an operator revoked, removed or kicked.
//! - `shutdown`, `purge`: graceful then hard stop; dead sessions deleted.
//! - [`metrics`]: the name and meaning of everything the server counts
//!   (through the `metrics` facade; the caller installs a recorder).
//! - `config`, `error`, `bind`: the public surface.
//!
//! The server only emits `tracing` events; installing a subscriber is the
//! caller's business.

#![deny(missing_docs)]

mod admission;
pub mod auth;
mod bind;
mod churn;
mod clock;
mod close;
mod config;
mod connection;
mod console;
pub mod credentials;
mod error;
mod handler;
mod handshake;
mod line;
mod linger;
mod listener;
mod live;
pub mod metrics;
mod names;
mod operator;
mod outbox;
mod peer;
mod protocol;
mod purge;
mod room;
mod service;
mod shutdown;
#[cfg(test)]
mod test_support;
pub mod throttle;
pub mod tls;
mod upgrade;
mod wake_flag;

use std::future::Future;
use std::sync::Arc;

pub use porter_wire::{AuthMode, ServiceKind};
use tokio::sync::mpsc;
use tracing::debug;
use tracing::field::display;
use tracing::info;

pub use crate::bind::{Bound, DEFAULT_PORT_TRIES, bind};
pub use crate::clock::Clock;
pub use crate::config::{
    Config, DEFAULT_FRAME_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HISTORY,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LOGGED_CONNECTIONS_PER_MINUTE, DEFAULT_MAX_AUTH_ATTEMPTS,
    DEFAULT_MAX_CONCURRENT_HASHES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_PER_ADDRESS, DEFAULT_MAX_SESSIONS_PER_USER, DEFAULT_MAX_STARTUPS,
    DEFAULT_OUTGOING_QUEUE, DEFAULT_PRE_LOGIN_MAX_FRAME_LEN, DEFAULT_SEND_BUFFER,
    DEFAULT_SESSION_TTL, DEFAULT_SHUTDOWN_GRACE, MAX_MAX_FRAME_LEN, MAX_SESSION_TTL,
    MIN_MAX_FRAME_LEN, ParseRegistrationError, Registration, default_server_name,
};
pub use crate::console::{Console, ConsoleLine};
pub use crate::error::{BindError, Error};
pub use crate::listener::Accept;
pub use crate::names::SERVER_NAME;
pub use crate::operator::OPERATOR_POLL;
pub use crate::purge::SESSION_PURGE_INTERVAL;
pub use crate::room::jetstream::{BusConfig, DEFAULT_BUS_PREFIX, control_subject, redact_url};
pub use crate::upgrade::Stream;

use crate::auth::Auth;
use crate::handler::Shared;
use crate::listener::Listener;
use crate::room::{Room, RoomOptions};
use crate::service::Service;
use crate::shutdown::Shutdown;
use crate::upgrade::{Plain, Tls, Upgrade};

/// Serves `listener` until `shutdown` completes, then stops accepting, sends
/// every client `bye`, waits at most `config.shutdown_grace` for those
/// writes, and returns.
///
/// `listener` is a `tokio::net::TcpListener`, or anything else that
/// [accepts](Accept) byte streams.
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
pub async fn run<L: Accept>(
    listener: L,
    config: Config,
    console: Option<Console>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    metrics::describe();
    let auth = Auth::build(&config).await?;
    let shutdown_state = Shutdown::default();
    let codec = porter_wire::FrameCodec::with_max_frame_len(config.max_frame_len);

    let (console_input, console_output) = match console {
        Some(Console { input, output }) => (Some(input), Some(output)),
        None => (None, None),
    };
    // Wakes the operator watch when the bus says an admin command acted.
    let nudge = Arc::new(tokio::sync::Notify::new());
    let options = RoomOptions {
        events: config.events,
        history: config.history,
    };
    let service = match (config.service, &config.bus) {
        (ServiceKind::Echo, _) => Service::Echo,
        (ServiceKind::Chat, None) => Service::Chat(Room::local(
            config.clock.clone(),
            codec,
            console_output,
            options,
        )),
        (ServiceKind::Chat, Some(bus)) => Service::Chat(
            Room::jetstream(
                bus,
                config.clock.clone(),
                codec,
                console_output,
                options,
                shutdown_state.graceful.clone(),
                nudge.clone(),
            )
            .await
            .map_err(|err| Error::Bus(err.to_string()))?,
        ),
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
    match shared.config.tls.as_ref().map(Tls::new) {
        Some(tls) => accept(listener, tls, shared, nudge, &shutdown_state, shutdown).await?,
        None => accept(listener, Plain, shared, nudge, &shutdown_state, shutdown).await?,
    }
    shutdown_state.finish(grace).await;
    Ok(())
}

/// Accepts from `listener`, upgrading each stream with `upgrade`, until
/// `shutdown` completes; starts the store's watches first (the operator
/// watch woken early by `nudge`).
async fn accept<L, U>(
    listener: L,
    upgrade: U,
    shared: Arc<Shared>,
    nudge: Arc<tokio::sync::Notify>,
    shutdown_state: &Shutdown,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error>
where
    L: Accept,
    U: Upgrade<L::Stream>,
{
    let listener =
        Listener::new(listener, upgrade, shared.clone()).map_err(|err| Error::InvalidConfig {
            field: "max_frame_len",
            reason: format!("too small for the busy error: {err}"),
        })?;

    // Before accepting, so a client that got its welcome knows the purge ran,
    // and so that no operator action after the first welcome is missed.
    if let Some(store) = &shared.config.store {
        let cursor = operator::cursor_now(store).await;
        operator::spawn_watch(
            store.clone(),
            shared.live.clone(),
            cursor,
            OPERATOR_POLL,
            nudge,
            shutdown_state,
        );
        purge::purge_sessions(store.as_ref(), &shared.config.clock).await;
        purge::spawn_session_purge(
            store.clone(),
            shared.config.clock.clone(),
            SESSION_PURGE_INTERVAL,
            shutdown_state,
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
        tls_fingerprint = shared.config.tls.as_ref().map(|tls| display(tls.fingerprint())),
        "listening"
    );
    // Dropping the listener when the loop returns is what stops accepting.
    listener.run(shutdown).await;
    info!(addr, "stopped accepting");
    Ok(())
}

/// Forwards console lines to the room until the console closes or the
/// server shuts down. With echo there is no room: lines are read and
/// dropped so the console's sender never fills up.
fn spawn_console(mut input: mpsc::Receiver<String>, service: &Service, shutdown: &Shutdown) {
    let room = match service {
        Service::Chat(room) => Some(room.clone()),
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
            match (line, &room) {
                (None, _) => {
                    debug!("console input closed");
                    break;
                }
                (Some(line), Some(room)) => room.console_line(&line),
                (Some(_), None) => debug!("console line ignored: echo service has no room"),
            }
        }
    });
}
