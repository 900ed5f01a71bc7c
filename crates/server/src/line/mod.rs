//! Line mode (PROTOCOL.md section 6): a person with `telnet` or `nc` talks
//! to the same port as framed clients, in plain lines.
//!
//! Every connection gets `welcome` first, whose `hint` tells a person
//! reading it to press Enter. [`open`] sends it and reads the client's
//! first bytes: a framed client's first byte is always `0x00` (a frame
//! header, and frames are shorter than 16 MiB), so anything else is a
//! person, and the connection is served through [`Lines`] from then on.
//! That is the whole cost for framed clients: one look at one byte per
//! connection, and nothing per message (the handler is compiled once for
//! each kind of stream).
//!
//! - `stream`: [`Lines`], the client's stream made to look framed to the
//!   connection above it, so that the handshake, the services and every
//!   limit run unchanged.
//! - `input`: bytes cut into lines (`\r\n`, `\n`, `\r\0`), under the line
//!   limit.
//! - `telnet`: telnet's option negotiation taken out and refused; the
//!   password prompt hidden with `WILL ECHO` on telnet only.
//! - `dialogue`: lines as the messages of section 4, and messages as lines.
//!
//! It sits after the transport upgrade, so it works inside TLS
//! (`openssl s_client`, `ncat --ssl`) as it does in clear.

mod dialogue;
mod input;
mod stream;
mod telnet;

use std::io;

use bytes::BytesMut;
use porter_wire::EncodedFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(crate) use self::stream::{Limits, Lines};

/// The `hint` of `welcome`: what a person who sees the frame as text in a
/// terminal needs to know.
/// Short, since it is in every `welcome`; left out when it would not fit in
/// a frame.
pub(crate) const HINT: &str = "Porter: programs speak length-prefixed JSON frames here \
     (docs/PROTOCOL.md). A person with telnet or nc: press Enter to talk in plain lines.";

/// Bytes read to see how the client talks. A framed client's `hello`
/// usually fits, and is served from them without another read.
const FIRST_READ: usize = 512;

/// How a client talks, from its first bytes, which were read already and
/// belong to what follows.
#[derive(Debug)]
pub(crate) enum Opening {
    /// Frames (the first byte is `0x00`), or nothing yet: the client closed
    /// or the wait was cut short, and the framed handler says why.
    Framed(BytesMut),
    /// Anything else: a person, in line mode.
    Lines(BytesMut),
}

/// Sends `welcome` on `stream`.
///
/// # Errors
/// When the stream fails. The caller bounds it in time: it is not
/// cancel-safe (a welcome cut in the middle cannot be followed by frames).
pub(crate) async fn welcome<S: AsyncWrite + Unpin>(
    stream: &mut S,
    welcome: &EncodedFrame,
) -> io::Result<()> {
    stream.write_all(welcome.as_bytes()).await?;
    stream.flush().await
}

/// Reads the client's first bytes and tells how it talks. Cancel-safe:
/// cancelled, nothing was read.
///
/// # Errors
/// When the stream fails.
pub(crate) async fn open<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Opening> {
    let mut first = BytesMut::with_capacity(FIRST_READ);
    stream.read_buf(&mut first).await?;
    Ok(match first.first() {
        None | Some(0) => Opening::Framed(first),
        Some(_) => Opening::Lines(first),
    })
}
