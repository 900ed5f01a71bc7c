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

pub use porter_wire::AuthMode;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::field::display;
use tracing::{debug, info};

pub use crate::bind::{Bound, DEFAULT_PORT_TRIES, bind};
pub use crate::config::{
    Clock, Config, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_AUTH_ATTEMPTS,
    DEFAULT_MAX_CONCURRENT_HASHES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_OUTGOING_QUEUE, DEFAULT_PRE_LOGIN_MAX_FRAME_LEN, DEFAULT_SESSION_TTL,
    DEFAULT_SHUTDOWN_GRACE, MAX_SESSION_TTL, MIN_MAX_FRAME_LEN, ParseRegistrationError,
    ParseServiceError, Registration, ServiceKind, default_server_name,
};
pub use crate::error::{BindError, Error};

use crate::auth::Auth;
use crate::handler::Shared;
use crate::hub::Hub;
use crate::listener::Listener;
use crate::service::Service;
use crate::shutdown::Shutdown;

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
/// login) before serving.
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
