//! Porter's wire format, and nothing else: no sockets are opened and no
//! servers are known here.
//!
//! Read it in three layers, top to bottom:
//!
//! 1. [`frame`]: a 4-byte big-endian length, then that many payload bytes.
//!    [`FrameCodec`] is the one implementation of the format over byte
//!    buffers, with its maximum length checked on the header alone.
//! 2. Texts: a frame whose payload is UTF-8, checked, never lossy.
//! 3. [`message`]: a text that is one JSON object tagged by `type`, as typed
//!    enums for both directions ([`ServerMessage`], [`ClientMessage`]).
//!
//! Two adapters put the layers on a stream:
//!
//! - [`ReadFrameExt`] and [`WriteFrameExt`] extend every blocking
//!   `Read`/`Write`, a `std::net::TcpStream` among them, with
//!   `send_frame`/`recv_frame`, `send_text`/`recv_text` and
//!   `send_message`/`recv_message`.
//! - With the `tokio` feature (on by default), [`FrameCodec`] is also a
//!   `tokio_util::codec::Decoder` and `Encoder` for `Framed` streams.
//!
//! Both speak exactly what tokio-util's `LengthDelimitedCodec` speaks with its
//! default settings, and what Python's `struct.pack("!I", n)` writes. Errors
//! are one typed [`Error`] enum whose variants callers match on.
//!
//! Beside the layers, [`text`] makes what arrives safe to show to a person:
//! [`text::printable`] and [`text::printable_lines`] escape whatever a
//! terminal would obey instead of display, and [`Fingerprint`] names a
//! server's TLS certificate the way section 1a of the protocol writes it.
//! [`command`] says what a line a person typed means (`/msg`, `/who`…),
//! for every program that reads one.

#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod codec;
pub mod command;
mod error;
mod ext;
mod fingerprint;
pub mod frame;
pub mod message;
mod mode;
pub mod text;

pub use error::{Error, FramePart, Result};
pub use ext::{ReadFrameExt, WriteFrameExt};
pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use frame::{DEFAULT_MAX_FRAME_LEN, EncodedFrame, FrameCodec, HEADER_LEN};
pub use message::{
    AuthMode, COMPACT_SAY_START, ClientMessage, ErrorCode, EventKind, PROTOCOL_VERSION, PlainText,
    RoomSay, Secret, ServerMessage, compact_say_text, decode_client_message, decode_message,
};
pub use mode::{ParseModeError, ServiceKind};
