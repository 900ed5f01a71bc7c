//! One client's byte stream, framed and buffered, in two halves.
//!
//! - [`Connection`] reads: frames through [`FrameCodec`] (the maximum length
//!   is checked on the header, before anything is allocated for it), then
//!   messages. `Ok(None)` is a clean close between frames; a close inside a
//!   frame is an error with a name.
//! - [`Writer`] writes: it drains a bounded queue of pre-encoded frames,
//!   writing a whole batch and flushing once per batch, so a burst of chat
//!   lines costs one syscall rather than one per line.
//! - [`Outbox`] is the sending end of that queue. It never waits: when the
//!   queue is full the client is not reading, and it is disconnected rather
//!   than buffered without bound or allowed to hold up the hub.
//!
//! Everything is generic over `S: AsyncRead + AsyncWrite`, not `TcpStream`,
//! so TLS can wrap the socket later without touching this file.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use porter_wire::{ClientMessage, EncodedFrame, FrameCodec, ServerMessage};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf,
};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Frames written before one flush, at most. Bounds the time one busy peer
/// holds its writer before it looks at its close signal again.
const WRITE_BATCH: usize = 64;

/// Size of the write buffer: a batch of small chat frames fits in it, so a
/// batch goes out in one write.
const WRITE_BUFFER: usize = 16 * 1024;

/// Bytes read per call while lingering before close (discarded).
const LINGER_CHUNK: usize = 4 * 1024;

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
    /// The handshake took too long.
    Timeout,
    /// The server is shutting down.
    Shutdown,
    /// The client logged out (its session was revoked).
    Logout,
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
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Logout => f.write_str("logged out"),
            Reason::Refused(why) => write!(f, "refused: {why}"),
            Reason::ServerError => f.write_str("server error"),
        }
    }
}

impl Reason {
    fn from_io(err: &io::Error) -> Reason {
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

/// Why a frame could not be queued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The client is not reading; it has been told to close.
    #[error("outgoing queue full")]
    QueueFull,
    /// The writer is gone; the connection is ending anyway.
    #[error("connection closing")]
    Closed,
    /// The message does not fit in a frame.
    #[error(transparent)]
    Encode(#[from] porter_wire::Error),
}

/// The sending end of one client's outgoing queue. Cheap to clone; never
/// waits.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<EncodedFrame>,
    closer: Closer,
    codec: FrameCodec,
    peer: SocketAddr,
}

impl Outbox {
    /// Queues a frame. A full queue closes the connection: it is the one
    /// thing that keeps a client that does not read from costing memory or
    /// stalling whoever sends to it.
    pub(crate) fn send(&self, frame: EncodedFrame) -> Result<(), SendError> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.closer.is_closed() {
                    warn!(peer = %self.peer, capacity = self.tx.max_capacity(),
                        "outgoing queue full, disconnecting");
                    self.closer.close(Reason::QueueFull);
                }
                Err(SendError::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Encodes and queues one message.
    pub(crate) fn send_message(&self, message: &ServerMessage) -> Result<(), SendError> {
        self.send(EncodedFrame::message(&self.codec, message)?)
    }
}

/// What came out of one frame.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// An empty frame: ignored by the protocol.
    KeepAlive,
    /// A message of the protocol (possibly `ClientMessage::Unknown`).
    Message(ClientMessage),
    /// A frame that is not a message: not UTF-8, not a JSON object, no
    /// `type`, or bad fields. The connection stays usable.
    Invalid(porter_wire::Error),
}

/// The reading half of a client connection, plus its outbox.
pub(crate) struct Connection<S> {
    frames: FramedRead<ReadHalf<S>, FrameCodec>,
    outbox: Outbox,
    closer: Closer,
    peer: SocketAddr,
}

/// The writing half: owns the socket's write side and drains the queue.
pub(crate) struct Writer<S> {
    half: WriteHalf<S>,
    rx: mpsc::Receiver<EncodedFrame>,
    closer: Closer,
    peer: SocketAddr,
}

/// How a [`Writer`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// Every queued frame was written and the write side shut down.
    Drained,
    /// It was told to stop (queue full, hard stop) with frames maybe unsent.
    Closed,
    /// The socket failed; the connection has been told to close.
    Failed,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Splits `stream` into a reading [`Connection`] and a [`Writer`] to be
    /// spawned, joined by a queue of `queue` frames.
    pub(crate) fn new(
        stream: S,
        peer: SocketAddr,
        codec: FrameCodec,
        queue: usize,
        closer: Closer,
    ) -> (Connection<S>, Writer<S>) {
        let (read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let outbox = Outbox {
            tx,
            closer: closer.clone(),
            codec,
            peer,
        };
        let conn = Connection {
            frames: FramedRead::new(read, codec),
            outbox,
            closer: closer.clone(),
            peer,
        };
        let writer = Writer {
            half: write,
            rx,
            closer,
            peer,
        };
        (conn, writer)
    }

    /// The next frame's payload; `Ok(None)` when the client closed cleanly
    /// between frames. Cancel-safe: no bytes are lost if it is dropped.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<BytesMut>, porter_wire::Error> {
        self.frames.next().await.transpose()
    }

    /// The next message. `Err` is the reason the connection must end.
    pub(crate) async fn read_message(&mut self) -> Result<Incoming, ReadEnd> {
        match self.read_frame().await {
            Ok(None) => Err(ReadEnd::Closed(Reason::Eof)),
            Ok(Some(payload)) if payload.is_empty() => Ok(Incoming::KeepAlive),
            Ok(Some(payload)) => Ok(match porter_wire::decode_message(&payload) {
                Ok(message) => Incoming::Message(message),
                Err(err) => Incoming::Invalid(err),
            }),
            Err(porter_wire::Error::FrameTooLarge { len, max }) => {
                Err(ReadEnd::TooLarge { len, max })
            }
            Err(porter_wire::Error::Truncated { .. }) => Err(ReadEnd::Closed(Reason::MidFrame)),
            Err(porter_wire::Error::Io(err)) => Err(ReadEnd::Closed(Reason::from_io(&err))),
            Err(other) => Err(ReadEnd::Closed(Reason::Io(other.to_string()))),
        }
    }

    /// Changes the largest frame accepted from now on: small before
    /// `ready`, the normal maximum after. Frames already decoded are not
    /// affected; a header still in the buffer is checked against the new one.
    pub(crate) fn set_max_frame_len(&mut self, max: usize) {
        *self.frames.decoder_mut() = FrameCodec::with_max_frame_len(max);
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub(crate) fn closer(&self) -> &Closer {
        &self.closer
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Drops this side's sender, so that the writer stops once it has
    /// written what is queued (other senders, such as the hub's, must be
    /// gone too), and returns the read half for [`linger`].
    pub(crate) fn finish(self) -> ReadHalf<S> {
        self.frames.into_inner()
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// A header announced more than the maximum: answer and close.
    TooLarge {
        /// Announced length.
        len: u64,
        /// Maximum in force.
        max: usize,
    },
    /// The stream ended or broke.
    Closed(Reason),
}

impl<S> Writer<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Writes queued frames until every sender is gone (then flushes and
    /// shuts the write side down) or the connection is closed.
    pub(crate) async fn run(self) -> WriterEnd {
        let Writer {
            half,
            mut rx,
            closer,
            peer,
        } = self;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, half);
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        loop {
            let received = tokio::select! {
                biased;
                () = closer.closed() => return WriterEnd::Closed,
                n = rx.recv_many(&mut batch, WRITE_BATCH) => n,
            };
            let result = tokio::select! {
                biased;
                () = closer.closed() => return WriterEnd::Closed,
                r = async {
                    if received == 0 {
                        // Every sender is gone: say we are done writing.
                        return out.shutdown().await;
                    }
                    for frame in batch.drain(..) {
                        out.write_all(frame.as_bytes()).await?;
                    }
                    // Once per batch, not per frame.
                    out.flush().await
                } => r,
            };
            match result {
                Ok(()) if received == 0 => return WriterEnd::Drained,
                Ok(()) => {}
                Err(err) => {
                    debug!(peer = %peer, cause = %err, "write failed");
                    closer.close(Reason::from_io(&err));
                    return WriterEnd::Failed;
                }
            }
        }
    }
}

/// After the last frame went out, reads and discards what the client still
/// sends until it closes, `limit` passes, or `stop` completes. Closing a socket
/// with unread input makes the kernel send a reset, which can destroy the
/// farewell frame (`error`, `bye`) before the client reads it.
pub(crate) async fn linger<R: AsyncRead + Unpin>(
    mut read: R,
    limit: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut scratch = [0u8; LINGER_CHUNK];
    let drain = async {
        while let Ok(n) = read.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = stop => {}
        () = tokio::time::sleep(limit) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porter_wire::ErrorCode;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[tokio::test]
    async fn writer_delivers_queued_frames_in_order_then_closes() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let closer = Closer::child_of(&CancellationToken::new());
        let (conn, writer) = Connection::new(server, peer(), FrameCodec::new(), 8, closer);
        let writing = tokio::spawn(writer.run());
        for i in 0..5 {
            conn.outbox()
                .send_message(&ServerMessage::Say {
                    text: i.to_string(),
                    from: "server".into(),
                })
                .unwrap();
        }
        let _read = conn.finish();
        assert_eq!(writing.await.unwrap(), WriterEnd::Drained);
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let codec = FrameCodec::new();
        for i in 0..5 {
            let frame = codec.decode(&mut buf).unwrap().unwrap();
            let msg: ServerMessage = porter_wire::decode_message(&frame).unwrap();
            assert_eq!(
                msg,
                ServerMessage::Say {
                    text: i.to_string(),
                    from: "server".into()
                }
            );
        }
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn full_queue_closes_the_connection_with_a_reason() {
        let (server, _client) = tokio::io::duplex(64);
        let closer = Closer::child_of(&CancellationToken::new());
        // No writer runs, so nothing drains the queue of two.
        let (conn, _writer) = Connection::new(server, peer(), FrameCodec::new(), 2, closer);
        let msg = ServerMessage::Error {
            code: ErrorCode::Busy,
            text: String::new(),
        };
        conn.outbox().send_message(&msg).unwrap();
        conn.outbox().send_message(&msg).unwrap();
        assert!(matches!(
            conn.outbox().send_message(&msg),
            Err(SendError::QueueFull)
        ));
        assert!(conn.closer().is_closed());
        assert_eq!(conn.closer().reason(), Reason::QueueFull);
    }

    #[tokio::test]
    async fn oversized_header_is_reported_before_any_payload() {
        let (server, mut client) = tokio::io::duplex(64);
        let closer = Closer::child_of(&CancellationToken::new());
        let codec = FrameCodec::with_max_frame_len(300);
        let (mut conn, _writer) = Connection::new(server, peer(), codec, 2, closer);
        client.write_all(&1_000_000u32.to_be_bytes()).await.unwrap();
        match conn.read_message().await {
            Err(ReadEnd::TooLarge { len, max }) => assert_eq!((len, max), (1_000_000, 300)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_frame_limit_can_be_raised_after_the_handshake() {
        let (server, mut client) = tokio::io::duplex(4096);
        let closer = Closer::child_of(&CancellationToken::new());
        let codec = FrameCodec::with_max_frame_len(300);
        let (mut conn, _writer) = Connection::new(server, peer(), codec, 2, closer);
        conn.set_max_frame_len(1000);
        let payload = format!(r#"{{"type":"say","text":"{}"}}"#, "x".repeat(500));
        client
            .write_all(&(payload.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(payload.as_bytes()).await.unwrap();
        assert!(matches!(
            conn.read_message().await,
            Ok(Incoming::Message(ClientMessage::Say { text })) if text.len() == 500
        ));
        conn.set_max_frame_len(300);
        client.write_all(&400u32.to_be_bytes()).await.unwrap();
        assert!(matches!(
            conn.read_message().await,
            Err(ReadEnd::TooLarge { len: 400, max: 300 })
        ));
    }

    #[tokio::test]
    async fn close_inside_a_frame_is_a_mid_frame_close() {
        let (server, mut client) = tokio::io::duplex(64);
        let closer = Closer::child_of(&CancellationToken::new());
        let (mut conn, _writer) = Connection::new(server, peer(), FrameCodec::new(), 2, closer);
        client.write_all(b"\x00\x00\x00\x10{\"ty").await.unwrap();
        drop(client);
        match conn.read_message().await {
            Err(ReadEnd::Closed(reason)) => assert_eq!(reason, Reason::MidFrame),
            other => panic!("expected a mid-frame close, got {other:?}"),
        }
    }
}
