//! Why a connection ends, and the one switch that ends it from anywhere.
//!
//! Every stage of a connection (transport, handshake, service, the room
//! that finds its queue full, the server's hard stop) ends it the same way:
//! with a [`Reason`] for the log, given through the connection's [`Closer`]
//! or returned up the handler's loop.

use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};

use metrics::counter;
use tokio_util::sync::CancellationToken;

use crate::metrics::CONNECTIONS_CLOSED;

/// Why a connection ended, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The client sent `bye`.
    CleanBye,
    /// The client closed between frames without `bye`.
    Eof,
    /// The client closed inside a frame.
    MidFrame,
    /// The connection was reset or broke.
    Reset,
    /// Another I/O failure.
    Io(String),
    /// The client broke the protocol in a way that closes the connection.
    Protocol(&'static str),
    /// The client did not read and its outgoing queue filled up.
    QueueFull,
    /// The handshake (the upgrade included) took too long.
    Timeout,
    /// A ready client sent nothing for longer than the idle timeout.
    Idle,
    /// A frame took longer than the frame timeout to arrive whole.
    SlowFrame,
    /// The transport upgrade (a TLS handshake, say) failed.
    Upgrade(String),
    /// The server is shutting down.
    Shutdown,
    /// The client logged out (its session was revoked).
    Logout,
    /// An operator ended the connection (a revoked session, a removed user,
    /// a kick).
    Operator(&'static str),
    /// The handshake ended without an identity: too many wrong passwords or
    /// invalid answers, or throttled.
    Refused(&'static str),
    /// The server could not do its part (the store failed); the client was
    /// told to try again later.
    ServerError,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::CleanBye => f.write_str("clean bye"),
            Reason::Eof => f.write_str("eof"),
            Reason::MidFrame => f.write_str("mid-frame close"),
            Reason::Reset => f.write_str("reset"),
            Reason::Io(cause) => write!(f, "i/o error: {cause}"),
            Reason::Protocol(what) => write!(f, "protocol error: {what}"),
            Reason::QueueFull => f.write_str("outgoing queue full"),
            Reason::Timeout => f.write_str("handshake timeout"),
            Reason::Upgrade(cause) => write!(f, "upgrade failed: {cause}"),
            Reason::Idle => f.write_str("idle timeout"),
            Reason::SlowFrame => f.write_str("frame timeout"),
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Logout => f.write_str("logged out"),
            Reason::Operator(why) => write!(f, "ended by an operator: {why}"),
            Reason::Refused(why) => write!(f, "refused: {why}"),
            Reason::ServerError => f.write_str("server error"),
        }
    }
}

impl Reason {
    /// Counts this ending in [`CONNECTIONS_CLOSED`], by a label of its kind
    /// (causes and details stay in the log). One literal per label: each
    /// key is built once, in a static.
    pub(crate) fn count(&self) {
        match self {
            Reason::CleanBye => counter!(CONNECTIONS_CLOSED, "reason" => "clean_bye"),
            Reason::Eof => counter!(CONNECTIONS_CLOSED, "reason" => "eof"),
            Reason::MidFrame => counter!(CONNECTIONS_CLOSED, "reason" => "mid_frame"),
            Reason::Reset => counter!(CONNECTIONS_CLOSED, "reason" => "reset"),
            Reason::Io(_) => counter!(CONNECTIONS_CLOSED, "reason" => "io_error"),
            Reason::Protocol(_) => counter!(CONNECTIONS_CLOSED, "reason" => "protocol_error"),
            Reason::QueueFull => counter!(CONNECTIONS_CLOSED, "reason" => "queue_full"),
            Reason::Timeout => counter!(CONNECTIONS_CLOSED, "reason" => "handshake_timeout"),
            Reason::Idle => counter!(CONNECTIONS_CLOSED, "reason" => "idle_timeout"),
            Reason::SlowFrame => counter!(CONNECTIONS_CLOSED, "reason" => "frame_timeout"),
            Reason::Upgrade(_) => counter!(CONNECTIONS_CLOSED, "reason" => "upgrade_failed"),
            Reason::Shutdown => counter!(CONNECTIONS_CLOSED, "reason" => "shutdown"),
            Reason::Logout => counter!(CONNECTIONS_CLOSED, "reason" => "logout"),
            Reason::Operator(_) => counter!(CONNECTIONS_CLOSED, "reason" => "operator"),
            Reason::Refused(_) => counter!(CONNECTIONS_CLOSED, "reason" => "refused"),
            Reason::ServerError => counter!(CONNECTIONS_CLOSED, "reason" => "server_error"),
        }
        .increment(1);
    }

    pub(crate) fn from_io(err: &io::Error) -> Reason {
        match err.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Reason::Reset,
            io::ErrorKind::UnexpectedEof => Reason::MidFrame,
            _ => Reason::Io(err.to_string()),
        }
    }
}

/// Ends one connection from anywhere (the hub, its writer, shutdown) and
/// remembers the first reason given.
#[derive(Debug, Clone)]
pub(crate) struct Closer {
    token: CancellationToken,
    reason: Arc<OnceLock<Reason>>,
}

impl Closer {
    /// A closer that also fires when `parent` (the server's hard stop) does.
    pub(crate) fn child_of(parent: &CancellationToken) -> Closer {
        Closer {
            token: parent.child_token(),
            reason: Arc::new(OnceLock::new()),
        }
    }

    /// Asks the connection to end now. The first reason wins.
    pub(crate) fn close(&self, reason: Reason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    pub(crate) async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// Why it was closed; a close without a reason is the server's hard stop.
    pub(crate) fn reason(&self) -> Reason {
        self.reason.get().cloned().unwrap_or(Reason::Shutdown)
    }
}
