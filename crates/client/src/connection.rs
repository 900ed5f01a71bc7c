//! The framed connection to a server: messages in and out over any byte
//! stream, with the client's frame limits.
//!
//! [`Connection`] frames any `AsyncRead + AsyncWrite` stream, so TLS can be
//! slipped in later without touching anything above it. It splits into a
//! [`MessageReader`] and a [`MessageWriter`] so that a client keeps reading
//! while it writes (a server whose outgoing queue fills disconnects a client
//! that does not read).

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use porter_wire::{ClientMessage, EncodedFrame, FrameCodec, ServerMessage, decode_message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::error::Result;

/// Largest frame the client accepts from a server. Larger than the server's
/// own default maximum (64 KiB) on purpose: a chat line that was just under
/// the server's limit comes back with a `from` field and JSON around it.
pub const DEFAULT_MAX_INCOMING_FRAME_LEN: usize = 1024 * 1024;

/// Largest frame the client sends: the server's default maximum, so a line
/// the server would refuse (and close the connection for) is refused here
/// instead, and the conversation goes on.
pub const DEFAULT_MAX_OUTGOING_FRAME_LEN: usize = porter_wire::DEFAULT_MAX_FRAME_LEN;

/// A framed connection to a server over any byte stream (TCP now, TLS later).
#[derive(Debug)]
pub struct Connection<T> {
    framed: Framed<T, FrameCodec>,
    /// Checks outgoing messages against the server's limit before they are
    /// sent; the framed codec itself checks incoming frames.
    outgoing: FrameCodec,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// Frames `io` with the default limits.
    pub fn new(io: T) -> Self {
        Connection::with_limits(
            io,
            DEFAULT_MAX_INCOMING_FRAME_LEN,
            DEFAULT_MAX_OUTGOING_FRAME_LEN,
        )
    }

    /// Frames `io`, accepting frames up to `max_incoming` bytes and sending
    /// up to `max_outgoing`.
    pub fn with_limits(io: T, max_incoming: usize, max_outgoing: usize) -> Self {
        Connection {
            framed: Framed::new(io, FrameCodec::with_max_frame_len(max_incoming)),
            outgoing: FrameCodec::with_max_frame_len(max_outgoing),
        }
    }

    /// Receives the next message, skipping keep-alives. `Ok(None)` means the
    /// server closed the connection cleanly between frames.
    ///
    /// # Errors
    /// [`Error::Wire`](crate::Error::Wire): a truncated or oversized frame, a payload that is not
    /// a message, or a socket error.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        recv_from(&mut self.framed).await
    }

    /// Sends one message and flushes it.
    ///
    /// # Errors
    /// [`Error::Wire`](crate::Error::Wire); `FrameTooLarge` (nothing sent) when the message is
    /// longer than the outgoing limit.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        let frame = EncodedFrame::message(&self.outgoing, message)?;
        self.framed.send(frame).await?;
        Ok(())
    }

    /// Takes the connection apart: the stream, and the bytes already read
    /// from it but not yet decoded, as tokio-util's `Framed::into_parts`
    /// does. A caller that goes on with the raw stream after the handshake
    /// (the bench's fast path) decodes those bytes first, so a frame the
    /// server sent right after `ready` is neither lost nor cut in two.
    ///
    /// Nothing is left unwritten: every send flushes before it returns.
    pub fn into_parts(self) -> ConnectionParts<T> {
        let parts = self.framed.into_parts();
        ConnectionParts {
            io: parts.io,
            read_buf: parts.read_buf,
        }
    }

    /// Splits the connection so that reading and writing can go on at the
    /// same time.
    pub fn split(self) -> (MessageReader<T>, MessageWriter<T>) {
        let (sink, stream) = self.framed.split();
        (
            MessageReader { stream },
            MessageWriter {
                sink,
                outgoing: self.outgoing,
            },
        )
    }
}

/// A [`Connection`] taken apart by [`Connection::into_parts`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectionParts<T> {
    /// The stream.
    pub io: T,
    /// Bytes read from `io` and not yet decoded: the start of whatever
    /// followed the last message received, to be decoded before anything
    /// read from `io` afterwards.
    pub read_buf: BytesMut,
}

async fn recv_from<S>(stream: &mut S) -> Result<Option<ServerMessage>>
where
    S: futures_util::Stream<Item = Result<BytesMut, porter_wire::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            None => return Ok(None),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(payload)) if payload.is_empty() => continue,
            Some(Ok(payload)) => return Ok(Some(decode_message(&payload)?)),
        }
    }
}

/// The receiving half of a split [`Connection`].
#[derive(Debug)]
pub struct MessageReader<T> {
    stream: SplitStream<Framed<T, FrameCodec>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> MessageReader<T> {
    /// As [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        recv_from(&mut self.stream).await
    }
}

/// The sending half of a split [`Connection`].
#[derive(Debug)]
pub struct MessageWriter<T> {
    sink: SplitSink<Framed<T, FrameCodec>, EncodedFrame>,
    outgoing: FrameCodec,
}

impl<T: AsyncRead + AsyncWrite + Unpin> MessageWriter<T> {
    /// Queues one message without flushing, so that a batch goes out in as
    /// few writes as possible; call [`flush`](Self::flush) after the batch.
    ///
    /// # Errors
    /// As [`Connection::send`]; on `FrameTooLarge` nothing is queued.
    pub async fn feed(&mut self, message: &ClientMessage) -> Result<()> {
        let frame = EncodedFrame::message(&self.outgoing, message)?;
        self.sink.feed(frame).await?;
        Ok(())
    }

    /// Writes out everything queued.
    ///
    /// # Errors
    /// [`Error::Wire`](crate::Error::Wire) on a socket error.
    pub async fn flush(&mut self) -> Result<()> {
        self.sink.flush().await?;
        Ok(())
    }

    /// Sends one message and flushes.
    ///
    /// # Errors
    /// As [`feed`](Self::feed) and [`flush`](Self::flush).
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Flushes and closes the sending direction.
    ///
    /// # Errors
    /// [`Error::Wire`](crate::Error::Wire) on a socket error.
    pub async fn close(&mut self) -> Result<()> {
        self.sink.close().await?;
        Ok(())
    }
}
