//! The server's typed errors: what [`crate::run`] and [`crate::bind`] can
//! fail with. Per-connection trouble is not here: it is logged inside the
//! connection's task and never reaches a caller.

use std::io;
use std::net::SocketAddr;

/// Why [`crate::run`] refused to serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value would make the server unusable (or an auth
    /// mode lacks its store: `field` is then `"store"`).
    #[error("invalid configuration: {field} {reason}")]
    InvalidConfig {
        /// The [`crate::Config`] field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The room's bus (NATS JetStream) could not be set up.
    #[error("the room's bus: {0}")]
    Bus(String),
}

/// Why [`crate::bind`] found no address to listen on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The host name could not be resolved.
    #[error("cannot resolve host {host:?}: {source}")]
    Resolve {
        /// The host as given.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },

    /// The host resolved, but to no address at all.
    #[error("host {host:?} resolved to no address")]
    NoAddress {
        /// The host as given.
        host: String,
    },

    /// Binding failed for a reason other than the port being in use
    /// (permission denied, address not on this machine, ...). No other port
    /// was tried, since another port would fail the same way.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was tried.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Every port tried was in use.
    #[error("cannot listen on {host}: ports {first} to {last} are all in use")]
    AllInUse {
        /// The host as given.
        host: String,
        /// The first port tried (the one requested).
        first: u16,
        /// The last port tried.
        last: u16,
    },
}

impl BindError {
    /// The operating system's error kind, when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            BindError::Resolve { source, .. } | BindError::Bind { source, .. } => {
                Some(source.kind())
            }
            BindError::AllInUse { .. } => Some(io::ErrorKind::AddrInUse),
            BindError::NoAddress { .. } => None,
        }
    }
}
