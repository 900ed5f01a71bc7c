//! The client's one error type.
//!
//! Following the standard guideline, a variant's message does not repeat its
//! cause: the cause is its `source()`, and the binary prints the whole chain
//! (`cannot connect to 127.0.0.1:9090: Connection refused`).
//!
//! Every way a conversation can fail is a variant a caller can match on: the
//! binary only prints the message and exits non-zero, but tests (and later the
//! benchmark and the cookie jar) branch on what happened. No variant ever
//! carries an answer or a token: those may be passwords.
//!
//! Texts that came from the server are shown through
//! [`porter_wire::text::printable`]: an error message is printed at a
//! terminal like any other line.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use porter_wire::ErrorCode;
use porter_wire::text::printable;

/// An `error` frame the server sent: what programs branch on, and what people
/// read.
///
/// Shown as `refused: TEXT (CODE)` when the server refused something on
/// purpose (every code but `unavailable` and codes this version does not
/// know), and as `server error: TEXT (CODE)` when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The code of the refusal.
    pub code: ErrorCode,
    /// The server's explanation.
    pub text: String,
}

impl ServerError {
    /// Whether the server refused on purpose (a policy, a limit, a wrong
    /// answer), rather than failed.
    pub fn is_refusal(&self) -> bool {
        !matches!(self.code, ErrorCode::Unavailable | ErrorCode::Unknown)
    }

    /// Whether the server closes the connection right after this error
    /// (PROTOCOL.md section 5): such an error is the end of the story, told
    /// once when the connection ends rather than also when it arrives.
    pub fn ends_connection(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::FrameTooLarge
                | ErrorCode::RateLimited
                | ErrorCode::Timeout
                | ErrorCode::Busy
                | ErrorCode::Revoked
        )
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.is_refusal() {
            "refused"
        } else {
            "server error"
        };
        write!(f, "{label}: {} ({})", printable(&self.text), self.code)
    }
}

/// How a conversation ended when the server ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The text of the server's `bye`, or `None` when it just closed.
    pub bye: Option<String>,
    /// The `error` the server sent right before ending, if any: `busy`,
    /// `timeout`, `frame_too_large`, `rate_limited`, `revoked`...
    pub error: Option<ServerError>,
    /// Whether `error` was already shown when it arrived (a refusal after
    /// which the conversation went on, such as a wrong password before the
    /// last attempt). The ending then leaves it out, so that nothing is
    /// printed twice.
    pub error_shown: bool,
}

impl Ending {
    /// The server closed the connection without `bye`, right after `error`
    /// if there was one (not yet shown).
    pub fn closed(error: Option<ServerError>) -> Self {
        Ending {
            bye: None,
            error,
            error_shown: false,
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = self.error.as_ref().filter(|_| !self.error_shown);
        match (error, &self.bye) {
            (Some(error), Some(bye)) if bye != &error.text => {
                write!(f, "{error}; {}", printable(bye))
            }
            (Some(error), _) => write!(f, "{error}"),
            (None, Some(bye)) => write!(f, "the server ended the conversation: {}", printable(bye)),
            (None, None) => {
                f.write_str("the server ended the conversation: the server closed the connection")
            }
        }
    }
}

/// What can go wrong between a client and a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host name could not be resolved.
    #[error("cannot resolve {host:?}")]
    Resolve {
        /// The name as given.
        host: String,
        /// Why the resolver failed.
        #[source]
        source: io::Error,
    },

    /// The host resolved to no address usable from the source address.
    #[error("{host:?} has no address to connect to{}", family_note(*.bind_addr))]
    NoAddress {
        /// The name as given.
        host: String,
        /// The source address that ruled addresses out, if one was given.
        bind_addr: Option<IpAddr>,
    },

    /// The source address could not be bound.
    #[error("cannot use {addr} as the source address")]
    Bind {
        /// The source address asked for.
        addr: IpAddr,
        /// Why binding failed.
        #[source]
        source: io::Error,
    },

    /// Every address of the server refused or failed.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The server did not accept within the connect timeout.
    #[error("cannot connect to {addr}: no answer within {} s", .timeout.as_secs_f32())]
    ConnectTimeout {
        /// The address tried.
        addr: SocketAddr,
        /// The timeout in force.
        timeout: Duration,
    },

    /// The TLS handshake failed: the chain did not verify against the CA
    /// file, the handshake signature was wrong (a certificate presented
    /// without its key), or the server does not speak TLS.
    #[error("TLS with {server} failed")]
    Tls {
        /// `host:port` of the server.
        server: String,
        /// What rustls said.
        #[source]
        source: io::Error,
    },

    /// A server trusted by fingerprint presented another certificate. The
    /// connection was refused during the TLS handshake: nothing of the
    /// protocol was sent.
    #[error(
        "the server at {server} presented a certificate with fingerprint {presented}, not the trusted {expected}"
    )]
    CertificateChanged {
        /// `host:port` of the server.
        server: String,
        /// The fingerprint trusted.
        expected: porter_wire::Fingerprint,
        /// The fingerprint presented.
        presented: porter_wire::Fingerprint,
    },

    /// The CA file given to verify servers could not be used.
    #[error("cannot use the CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },

    /// The server ended the conversation with `bye`, or by closing, before
    /// the client was done; possibly right after an `error`.
    #[error("{0}")]
    Ended(Ending),

    /// The server sent something the protocol does not allow at this point,
    /// such as a first frame that is not `welcome`.
    #[error("protocol violation by the server: {0}")]
    Protocol(String),

    /// Framing or decoding failed: a truncated or oversized frame, invalid
    /// JSON, or a socket error.
    #[error("connection failed")]
    Wire(#[from] porter_wire::Error),

    /// The server refused a request and kept the connection open (for
    /// example `logout` on a server without sessions).
    #[error("{0}")]
    Refused(ServerError),

    /// The server asked a question that nobody could answer (no terminal and
    /// no scripted answer for this id).
    #[error(
        "cannot answer the server's question \"{}\" (\"{}\"): {reason}",
        printable(id),
        printable(text)
    )]
    NoAnswer {
        /// The id of the `ask`.
        id: String,
        /// The prompt the server sent.
        text: String,
        /// Why no answer could be given.
        reason: String,
    },

    /// The person at the terminal ended the input (Ctrl-D) while an answer
    /// was expected.
    #[error("no answer, giving up")]
    InputClosed,

    /// The person at the terminal pressed Ctrl-C while an answer was
    /// expected.
    #[error("interrupted")]
    Interrupted,

    /// Reading the local input (stdin, the terminal) failed.
    #[error("cannot read input")]
    Input(#[source] io::Error),

    /// Writing the local output (stdout, stderr) failed.
    #[error("cannot write output")]
    Output(#[source] io::Error),

    /// The line editor could not be set up or failed.
    #[error("terminal error: {0}")]
    Terminal(String),
}

fn family_note(bind_addr: Option<IpAddr>) -> String {
    match bind_addr {
        Some(IpAddr::V4(_)) => " over IPv4 (the source address is IPv4)".to_owned(),
        Some(IpAddr::V6(_)) => " over IPv6 (the source address is IPv6)".to_owned(),
        None => String::new(),
    }
}

impl Error {
    /// Whether the connection was lost rather than ended by the server on
    /// purpose: it could not be opened, broke, or closed without `bye` or
    /// `error`. Worth trying again; a refusal, a `bye` or a changed
    /// certificate is not.
    pub fn is_lost_connection(&self) -> bool {
        match self {
            Error::Resolve { .. }
            | Error::NoAddress { .. }
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Tls { .. } => true,
            Error::Wire(porter_wire::Error::Io(_) | porter_wire::Error::Truncated { .. }) => true,
            Error::Ended(ending) => ending.bye.is_none() && ending.error.is_none(),
            _ => false,
        }
    }

    /// The server's `error` behind this failure, if the server ended the
    /// conversation with one or refused a request.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Ended(ending) => ending.error.as_ref(),
            Error::Refused(error) => Some(error),
            _ => None,
        }
    }
}

/// Result alias for the client crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ending_shows_the_error_and_a_different_bye() {
        let ending = Ending {
            bye: Some("closing".into()),
            error: Some(ServerError {
                code: ErrorCode::Busy,
                text: "server is busy".into(),
            }),
            error_shown: false,
        };
        assert_eq!(
            ending.to_string(),
            "refused: server is busy (busy); closing"
        );
        assert_eq!(
            Ending::closed(None).to_string(),
            "the server ended the conversation: the server closed the connection"
        );
    }

    #[test]
    fn an_error_already_shown_is_not_told_again() {
        let ending = Ending {
            bye: Some("too many failed attempts".into()),
            error: Some(ServerError {
                code: ErrorCode::BadCredentials,
                text: "wrong user or password".into(),
            }),
            error_shown: true,
        };
        assert_eq!(
            ending.to_string(),
            "the server ended the conversation: too many failed attempts"
        );
    }

    #[test]
    fn refusals_and_failures_are_labelled_apart() {
        let refusal = ServerError {
            code: ErrorCode::UnknownUser,
            text: "no one called bob is here".into(),
        };
        assert_eq!(
            refusal.to_string(),
            "refused: no one called bob is here (unknown_user)"
        );
        let failure = ServerError {
            code: ErrorCode::Unavailable,
            text: "try again".into(),
        };
        assert_eq!(failure.to_string(), "server error: try again (unavailable)");
    }

    #[test]
    fn server_texts_in_errors_are_escaped() {
        let ending = Ending {
            bye: Some("bye\x1b[2J".into()),
            error: Some(ServerError {
                code: ErrorCode::Revoked,
                text: "gone\r\x07".into(),
            }),
            error_shown: false,
        };
        let shown = ending.to_string();
        assert!(!shown.contains(['\x1b', '\r', '\x07']), "{shown:?}");
        assert_eq!(shown, r"refused: gone\r\u{7} (revoked); bye\u{1b}[2J");
    }
}
