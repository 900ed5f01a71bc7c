//! The one error type of the wire crate.
//!
//! Every way a frame, a text or a message can fail is a distinct variant, so a
//! caller can `match` on what went wrong: a server answers `frame_too_large`
//! and closes, answers `invalid_message` and keeps going, or simply logs an
//! I/O error and drops the peer.

use std::io;

/// What went wrong while reading or writing frames, texts or messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A header announced (or a caller tried to send) more payload than the
    /// maximum allows. Raised before any buffer is sized from `len`.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length that was announced or requested.
        len: u64,
        /// The maximum payload length in force.
        max: usize,
    },

    /// The peer closed the stream inside a frame: after `got` of the
    /// `expected` bytes of its header or payload.
    #[error("truncated frame: stream ended inside the {part} after {got} of {expected} bytes")]
    Truncated {
        /// Whether the stream ended inside the header or the payload.
        part: FramePart,
        /// Bytes of that part that did arrive.
        got: usize,
        /// Bytes that part should have had.
        expected: usize,
    },

    /// A text frame's payload is not valid UTF-8. Never decoded lossily.
    #[error("frame payload is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::str::Utf8Error),

    /// A frame is valid UTF-8 but not a message of the protocol: not JSON, not
    /// an object, no `type`, or a field of the wrong shape.
    #[error("invalid message: {0}")]
    InvalidMessage(#[from] serde_json::Error),

    /// The underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// The two parts of a frame, named in [`Error::Truncated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePart {
    /// The 4-byte length header.
    Header,
    /// The payload that follows it.
    Payload,
}

impl std::fmt::Display for FramePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FramePart::Header => "header",
            FramePart::Payload => "payload",
        })
    }
}

/// Result alias for the wire crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for io::Error {
    /// Lets the codec live inside `tokio_util::codec::Framed`, whose errors
    /// must convert from `io::Error`, and lets callers use `?` in I/O code.
    fn from(err: Error) -> io::Error {
        match err {
            Error::Io(e) => e,
            Error::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, err),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
