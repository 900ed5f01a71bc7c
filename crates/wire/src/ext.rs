//! Frame, text and message helpers for every blocking socket: lab task 7.
//!
//! Like byteorder's `ReadBytesExt`, these are extension traits with blanket
//! impls, so a `std::net::TcpStream` (or any `Read`/`Write`) gains the methods
//! once the traits are in scope:
//!
//! ```no_run
//! use porter_wire::{ReadFrameExt, WriteFrameExt};
//! # fn main() -> Result<(), porter_wire::Error> {
//! let mut stream = std::net::TcpStream::connect("127.0.0.1:9090")?;
//! stream.send_text("hello")?;
//! while let Some(reply) = stream.recv_text()? {
//!     println!("{reply}");
//! }
//! # Ok(()) }
//! ```
//!
//! All length checks are [`FrameCodec`]'s; nothing here knows the format
//! beyond calling it.

use std::io::{self, Read, Write};

use bytes::BytesMut;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, FramePart, Result};
use crate::frame::{FrameCodec, HEADER_LEN};
use crate::message::decode_message;

/// How much payload buffer to commit before bytes arrive. The buffer then
/// grows with what is read, never with what a header claims.
const INITIAL_PAYLOAD_CAPACITY: usize = 8 * 1024;

/// Receiving frames, texts and messages from any [`Read`].
///
/// Every method returns `Ok(None)` when the peer closed the stream cleanly
/// between two frames, and [`Error::Truncated`] when it closed inside one.
/// The plain methods enforce the default maximum (64 KiB); the `_with`
/// variants take a [`FrameCodec`] with another.
pub trait ReadFrameExt: Read {
    /// Receives one frame's payload. A keep-alive is an empty payload.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] (nothing past the header is read),
    /// [`Error::Truncated`] and [`Error::Io`].
    fn recv_frame_with(&mut self, codec: &FrameCodec) -> Result<Option<Vec<u8>>> {
        let mut header = [0; HEADER_LEN];
        let got = read_until_full_or_eof(self, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(Error::Truncated {
                part: FramePart::Header,
                got,
                expected: HEADER_LEN,
            });
        }
        let len = codec.check_header(header)?;
        let mut payload = Vec::with_capacity(len.min(INITIAL_PAYLOAD_CAPACITY));
        let got = Read::take(&mut *self, len as u64).read_to_end(&mut payload)?;
        if got < len {
            return Err(Error::Truncated {
                part: FramePart::Payload,
                got,
                expected: len,
            });
        }
        Ok(Some(payload))
    }

    /// [`recv_frame_with`](Self::recv_frame_with) the default maximum.
    ///
    /// # Errors
    /// As `recv_frame_with`.
    fn recv_frame(&mut self) -> Result<Option<Vec<u8>>> {
        self.recv_frame_with(&FrameCodec::new())
    }

    /// Receives one frame and checks that it is UTF-8. A keep-alive is `""`.
    ///
    /// # Errors
    /// As `recv_frame_with`, plus [`Error::InvalidUtf8`]; never lossy.
    fn recv_text_with(&mut self, codec: &FrameCodec) -> Result<Option<String>> {
        match self.recv_frame_with(codec)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| Error::InvalidUtf8(e.utf8_error())),
        }
    }

    /// [`recv_text_with`](Self::recv_text_with) the default maximum.
    ///
    /// # Errors
    /// As `recv_text_with`.
    fn recv_text(&mut self) -> Result<Option<String>> {
        self.recv_text_with(&FrameCodec::new())
    }

    /// Receives the next message, skipping keep-alives.
    ///
    /// # Errors
    /// As `recv_text_with`, plus [`Error::InvalidMessage`].
    fn recv_message_with<M: DeserializeOwned>(&mut self, codec: &FrameCodec) -> Result<Option<M>> {
        loop {
            match self.recv_frame_with(codec)? {
                None => return Ok(None),
                Some(payload) if payload.is_empty() => continue,
                Some(payload) => return decode_message(&payload).map(Some),
            }
        }
    }

    /// [`recv_message_with`](Self::recv_message_with) the default maximum.
    ///
    /// # Errors
    /// As `recv_message_with`.
    fn recv_message<M: DeserializeOwned>(&mut self) -> Result<Option<M>> {
        self.recv_message_with(&FrameCodec::new())
    }
}

impl<R: Read + ?Sized> ReadFrameExt for R {}

/// Sending frames, texts and messages on any [`Write`].
///
/// Each call writes the header and payload with a single `write_all`, so a
/// frame never goes out as two small TCP segments, and then flushes, so a
/// `BufWriter` behaves like a socket.
pub trait WriteFrameExt: Write {
    /// Sends one frame. An empty payload is a keep-alive.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] (nothing is written) and [`Error::Io`].
    fn send_frame_with(&mut self, codec: &FrameCodec, payload: &[u8]) -> Result<()> {
        let mut frame = BytesMut::new();
        codec.encode(payload, &mut frame)?;
        write_and_flush(self, &frame)
    }

    /// [`send_frame_with`](Self::send_frame_with) the default maximum.
    ///
    /// # Errors
    /// As `send_frame_with`.
    fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.send_frame_with(&FrameCodec::new(), payload)
    }

    /// Sends a string as a UTF-8 text frame.
    ///
    /// # Errors
    /// As `send_frame_with`.
    fn send_text(&mut self, text: &str) -> Result<()> {
        self.send_frame(text.as_bytes())
    }

    /// Sends a message as one JSON frame.
    ///
    /// # Errors
    /// As `send_frame_with`, plus [`Error::InvalidMessage`] if it cannot be
    /// serialised.
    fn send_message_with<M: Serialize + ?Sized>(
        &mut self,
        codec: &FrameCodec,
        message: &M,
    ) -> Result<()> {
        let mut frame = BytesMut::new();
        codec.encode_message(message, &mut frame)?;
        write_and_flush(self, &frame)
    }

    /// [`send_message_with`](Self::send_message_with) the default maximum.
    ///
    /// # Errors
    /// As `send_message_with`.
    fn send_message<M: Serialize + ?Sized>(&mut self, message: &M) -> Result<()> {
        self.send_message_with(&FrameCodec::new(), message)
    }
}

impl<W: Write + ?Sized> WriteFrameExt for W {}

fn write_and_flush<W: Write + ?Sized>(writer: &mut W, bytes: &[u8]) -> Result<()> {
    writer.write_all(bytes)?;
    writer.flush()?;
    Ok(())
}

/// Fills `buf` unless the stream ends first; returns how many bytes arrived.
/// Unlike `read_exact`, it tells a clean end (0 bytes) from a partial one.
fn read_until_full_or_eof<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
