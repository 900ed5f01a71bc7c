//! One client's byte stream, framed and buffered, served by one task.
//!
//! - [`Connection`] reads frames through [`FrameCodec`] (the maximum length
//!   is checked on the header, before anything is allocated for it), then
//!   messages. `Ok(None)` is a clean close between frames; a close inside a
//!   frame is an error with a name.
//! - What the connection answers itself (handshake, echo, errors) is encoded
//!   straight into its write buffer, and the buffer is written out once per
//!   batch: when no whole frame is left to read, just before waiting for
//!   more, as the baseline echo server does. A pipelined burst of requests
//!   gets its replies in one `write`, with no queue hop to another task.
//! - [`Outbox`] is how others (the chat hub) reach the client: a bounded
//!   queue of pre-encoded, shared frames that the connection drains into its
//!   write buffer whenever it waits. The outbox never waits: when the queue
//!   is full the client is not reading, and it is disconnected rather than
//!   buffered without bound or allowed to hold up the hub.
//!
//! A client that sends without reading fills the socket. While a write
//! waits, the connection goes on reading; when more messages wait
//! unanswered than the outgoing queue holds, the client is disconnected,
//! as it is when the hub fills its queue.
//!
//! Memory: an idle connection holds a read buffer of [`INITIAL_READ`]
//! bytes and a write buffer only as large as what it last wrote; both grow
//! with traffic. Everything is generic over `S: AsyncRead + AsyncWrite`, not
//! `TcpStream`, so TLS can wrap the socket later without touching this file.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use porter_wire::{ClientMessage, EncodedFrame, FrameCodec, ServerMessage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Queued frames (from the hub) taken into the write buffer before one
/// write. Bounds the write buffer while a chat room is busy.
const WRITE_BATCH: usize = 64;

/// Bytes the read buffer starts with. An idle connection costs this much:
/// the handshake's frames fit, and a busy one grows it (see [`MAX_READ`]).
pub(crate) const INITIAL_READ: usize = 512;

/// The largest read asked of the socket at once. Reads that fill what was
/// asked double the next one up to this, so a pipelining client is read in
/// few calls.
const MAX_READ: usize = 64 * 1024;

/// A write buffer that grew beyond this for one burst is given back once
/// written, so one large reply does not cost a connection forever.
const KEEP_WRITE_BUFFER: usize = 64 * 1024;

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

/// Why a frame could not be queued or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The client is not reading; it has been told to close.
    #[error("outgoing queue full")]
    QueueFull,
    /// The connection is gone; it is ending anyway.
    #[error("connection closing")]
    Closed,
    /// The message does not fit in a frame.
    #[error(transparent)]
    Encode(#[from] porter_wire::Error),
}

/// The sending end of one client's queue, for others than the connection
/// itself (the chat hub). Cheap to clone; never waits.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<EncodedFrame>,
    closer: Closer,
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

/// A client connection: its socket, both buffers and its queue.
pub(crate) struct Connection<S> {
    /// The socket (or, later, a TLS stream over it).
    stream: S,
    /// Bytes read and not yet decoded; decoded frames are split off it.
    read_buf: BytesMut,
    /// How much to ask of the next read; grows while reads come back full.
    read_hint: usize,
    /// Frames for the client, written out once per batch.
    write_buf: BytesMut,
    /// Frames in: small before `ready`, `max_frame_len` after.
    decoder: FrameCodec,
    /// Frames out are held to the server's `max_frame_len`.
    encoder: FrameCodec,
    /// Frames from others (the hub), drained into `write_buf`.
    queue: mpsc::Receiver<EncodedFrame>,
    /// Messages that may wait unanswered while the client does not read
    /// (the outgoing queue's length, for replies).
    backlog: usize,
    /// The sending end of `queue`, handed to the hub.
    outbox: Outbox,
    closer: Closer,
    peer: SocketAddr,
    /// Protocol errors this client caused (invalid, unknown or unexpected
    /// messages). Only the first few are logged one by one.
    protocol_errors: u32,
}

/// Protocol errors logged one by one per connection. A client that sends
/// garbage in a loop is answered every time, but must not be able to fill
/// the server's disk with log lines; the rest are counted, and the count is
/// logged when it leaves.
const LOGGED_PROTOCOL_ERRORS: u32 = 10;

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// A connection over `stream` whose queue holds `queue` frames; frames
    /// in and out are held to `codec`'s maximum until
    /// [`Connection::set_max_frame_len`].
    pub(crate) fn new(
        stream: S,
        peer: SocketAddr,
        codec: FrameCodec,
        queue: usize,
        closer: Closer,
    ) -> Connection<S> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let outbox = Outbox {
            tx,
            closer: closer.clone(),
            peer,
        };
        Connection {
            stream,
            read_buf: BytesMut::new(),
            read_hint: INITIAL_READ,
            write_buf: BytesMut::new(),
            decoder: codec,
            encoder: codec,
            queue: rx,
            backlog: queue.max(1),
            outbox,
            closer,
            peer,
            protocol_errors: 0,
        }
    }

    /// Counts a protocol error; `true` while it should still be logged on
    /// its own line. The first one past the limit says that the rest will
    /// only be counted.
    pub(crate) fn count_protocol_error(&mut self) -> bool {
        self.protocol_errors = self.protocol_errors.saturating_add(1);
        if self.protocol_errors == LOGGED_PROTOCOL_ERRORS + 1 {
            warn!(peer = %self.peer, logged = LOGGED_PROTOCOL_ERRORS,
                "more protocol errors from this client are counted, not logged");
        }
        self.protocol_errors <= LOGGED_PROTOCOL_ERRORS
    }

    /// Protocol errors this client caused so far.
    pub(crate) fn protocol_errors(&self) -> u32 {
        self.protocol_errors
    }

    /// The next frame's payload; `Ok(None)` when the client closed cleanly
    /// between frames. Before it waits for the client, it writes out what
    /// is owed: that is the one flush per batch. Cancel-safe: no byte read
    /// or owed is lost if it is dropped.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<BytesMut>, porter_wire::Error> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(Some(frame));
            }
            self.flush().await?;
            if !self.fill().await? {
                // The client closed: cleanly between frames, or inside one.
                return Decoder::decode_eof(&mut self.decoder, &mut self.read_buf);
            }
        }
    }

    /// Reads more into the read buffer, taking queued frames into the write
    /// buffer (and writing them) while it waits. `false` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        loop {
            self.read_buf.reserve(self.read_hint);
            let asked = self.read_buf.capacity() - self.read_buf.len();
            let taken = tokio::select! {
                biased;
                r = self.stream.read_buf(&mut self.read_buf) => {
                    let n = r?;
                    if n == asked {
                        self.read_hint = (self.read_hint * 2).min(MAX_READ);
                    }
                    return Ok(n > 0);
                }
                frame = self.queue.recv() => frame,
            };
            // The connection holds a sender itself, so the queue is never
            // closed while it lives; `None` cannot happen.
            if let Some(frame) = taken {
                self.write_buf.extend_from_slice(frame.as_bytes());
                for _ in 1..WRITE_BATCH {
                    match self.queue.try_recv() {
                        Ok(frame) => self.write_buf.extend_from_slice(frame.as_bytes()),
                        Err(_) => break,
                    }
                }
            }
            self.flush().await?;
        }
    }

    /// Writes the whole write buffer. Cancel-safe: what was written is
    /// taken off the buffer after each write.
    ///
    /// While the socket will not take more, it keeps reading what the
    /// client sends: a client that sends without reading would otherwise
    /// hold this connection forever (each side waiting for the other to
    /// read). When more than `backlog` messages wait unanswered, the client
    /// is not reading: it is disconnected with [`Reason::QueueFull`], as a
    /// full outbox would.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let mut client_open = true;
        while !self.write_buf.is_empty() {
            let progress = std::future::poll_fn(|cx| {
                let stream = &mut self.stream;
                if let Poll::Ready(r) = Pin::new(&mut *stream).poll_write(cx, &self.write_buf) {
                    return Poll::Ready(r.map(Progress::Wrote));
                }
                if client_open {
                    self.read_buf.reserve(self.read_hint);
                    let read = poll_read_buf(Pin::new(stream), cx, &mut self.read_buf);
                    if let Poll::Ready(r) = read {
                        return Poll::Ready(r.map(Progress::Read));
                    }
                }
                Poll::Pending
            })
            .await?;
            match progress {
                Progress::Wrote(0) => return Err(io::ErrorKind::WriteZero.into()),
                Progress::Wrote(n) => self.write_buf.advance(n),
                // The client closed its side; what it is owed still goes.
                Progress::Read(0) => client_open = false,
                Progress::Read(_) => {
                    if waiting_messages(&self.read_buf, self.backlog) >= self.backlog {
                        warn!(peer = %self.peer, backlog = self.backlog,
                            "client sends but does not read, disconnecting");
                        self.closer.close(Reason::QueueFull);
                        return Err(io::Error::other("client does not read"));
                    }
                }
            }
        }
        // A no-op on TCP; a TLS stream writes its records here.
        self.stream.flush().await?;
        if self.write_buf.capacity() > KEEP_WRITE_BUFFER {
            self.write_buf = BytesMut::new();
        }
        Ok(())
    }

    /// The next message. `Err` is the reason the connection must end.
    pub(crate) async fn read_message(&mut self) -> Result<Incoming, ReadEnd> {
        match self.read_frame().await {
            Ok(None) => Err(ReadEnd::Closed(Reason::Eof)),
            Ok(Some(payload)) if payload.is_empty() => Ok(Incoming::KeepAlive),
            Ok(Some(payload)) => Ok(match porter_wire::decode_client_message(&payload) {
                Ok(message) => Incoming::Message(message),
                Err(err) => Incoming::Invalid(err),
            }),
            Err(porter_wire::Error::FrameTooLarge { len, max }) => {
                Err(ReadEnd::TooLarge { len, max })
            }
            Err(porter_wire::Error::Truncated { .. }) => Err(ReadEnd::Closed(Reason::MidFrame)),
            // A flush that gave up on a client that does not read closed
            // the connection with its reason first.
            Err(porter_wire::Error::Io(_)) if self.closer.is_closed() => {
                Err(ReadEnd::Closed(self.closer.reason()))
            }
            Err(porter_wire::Error::Io(err)) => Err(ReadEnd::Closed(Reason::from_io(&err))),
            Err(other) => Err(ReadEnd::Closed(Reason::Io(other.to_string()))),
        }
    }

    /// Encodes `message` into the write buffer; it goes out with the batch.
    ///
    /// # Errors
    /// When it does not fit in a frame; nothing is queued then.
    pub(crate) fn write_message(&mut self, message: &ServerMessage) -> Result<(), SendError> {
        self.encoder.encode_message(message, &mut self.write_buf)?;
        Ok(())
    }

    /// Encodes the server's `say{text, from}` into the write buffer.
    ///
    /// # Errors
    /// When it does not fit in a frame; nothing is queued then.
    pub(crate) fn write_say(&mut self, text: &str, from: &str) -> Result<(), SendError> {
        self.encoder.encode_say(text, from, &mut self.write_buf)?;
        Ok(())
    }

    /// Puts an encoded frame into the write buffer.
    pub(crate) fn write_frame(&mut self, frame: &EncodedFrame) {
        self.write_buf.extend_from_slice(frame.as_bytes());
    }

    /// Changes the largest frame accepted from now on: small before
    /// `ready`, the normal maximum after. Frames already decoded are not
    /// affected; a header still in the buffer is checked against the new one.
    pub(crate) fn set_max_frame_len(&mut self, max: usize) {
        self.decoder = FrameCodec::with_max_frame_len(max);
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

    /// The last writes: what is owed goes out (the farewell frame last;
    /// frames the hub queued after it are dropped, since the client takes
    /// `bye` or an error as the end) and the write side is shut down. Not
    /// bounded in time by itself: the caller puts it under the grace period.
    pub(crate) async fn finish(&mut self) -> io::Result<()> {
        self.queue.close();
        self.flush().await?;
        self.stream.shutdown().await
    }

    /// After [`Connection::finish`]: [`linger`] on the read side. Boxed, so
    /// that its scratch buffer is allocated for the last second only and is
    /// not part of every connection's task.
    pub(crate) async fn linger(&mut self, limit: Duration, stop: impl Future<Output = ()> + Send) {
        Box::pin(linger(&mut self.stream, limit, stop)).await;
    }
}

/// What one step of a blocked flush achieved.
enum Progress {
    /// Bytes written.
    Wrote(usize),
    /// Bytes read from the client meanwhile (0: it closed its side).
    Read(usize),
}

/// The messages (non-empty frames, the last possibly partial) at the front
/// of `buf`, counted up to `limit`.
fn waiting_messages(buf: &[u8], limit: usize) -> usize {
    let mut count = 0;
    let mut rest = buf;
    while count < limit {
        let Some(header) = rest.first_chunk::<4>() else {
            break;
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > 0 {
            count += 1;
        }
        match rest.get(4 + len..) {
            Some(next) => rest = next,
            None => break,
        }
    }
    count
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

    fn says(bytes: &[u8]) -> Vec<ServerMessage> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(frame) = FrameCodec::new().decode(&mut buf).unwrap() {
            out.push(porter_wire::decode_message(&frame).unwrap());
        }
        assert!(buf.is_empty(), "a partial frame was left");
        out
    }

    fn say(text: &str) -> ServerMessage {
        ServerMessage::Say {
            text: text.into(),
            from: "server".into(),
        }
    }

    #[tokio::test]
    async fn written_messages_go_out_in_order_when_finished() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let closer = Closer::child_of(&CancellationToken::new());
        let mut conn = Connection::new(server, peer(), FrameCodec::new(), 8, closer);
        conn.write_message(&say("0")).unwrap();
        for i in 1..5 {
            conn.write_say(&i.to_string(), "server").unwrap();
        }
        let finishing = tokio::spawn(async move {
            conn.finish().await.unwrap();
            conn.linger(Duration::from_secs(5), std::future::pending())
                .await;
        });
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let expected: Vec<_> = (0..5).map(|i| say(&i.to_string())).collect();
        assert_eq!(says(&bytes), expected);
        drop(client);
        finishing.await.unwrap();
    }

    #[tokio::test]
    async fn queued_frames_are_written_while_waiting_for_the_client() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let closer = Closer::child_of(&CancellationToken::new());
        let mut conn = Connection::new(server, peer(), FrameCodec::new(), 8, closer);
        let outbox = conn.outbox().clone();
        let reading = tokio::spawn(async move { conn.read_message().await.map(|_| ()) });
        for text in ["a", "b"] {
            let frame = EncodedFrame::say(&FrameCodec::new(), text, "ann").unwrap();
            outbox.send(frame).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while says(&got).len() < 2 {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("queued frames were not written")
                .unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            says(&got),
            vec![
                ServerMessage::Say {
                    text: "a".into(),
                    from: "ann".into()
                },
                ServerMessage::Say {
                    text: "b".into(),
                    from: "ann".into()
                },
            ]
        );
        drop(client);
        assert!(matches!(
            reading.await.unwrap(),
            Err(ReadEnd::Closed(Reason::Eof))
        ));
    }

    #[tokio::test]
    async fn replies_to_a_pipelined_batch_go_out_before_the_next_wait() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let closer = Closer::child_of(&CancellationToken::new());
        let mut conn = Connection::new(server, peer(), FrameCodec::new(), 8, closer);
        let mut batch = BytesMut::new();
        for i in 0..3 {
            let payload = format!(r#"{{"type":"say","text":"{i}"}}"#);
            FrameCodec::new()
                .encode(payload.as_bytes(), &mut batch)
                .unwrap();
        }
        client.write_all(&batch).await.unwrap();
        let serving = tokio::spawn(async move {
            // Echo until the client leaves.
            while let Ok(Incoming::Message(ClientMessage::Say { text })) = conn.read_message().await
            {
                conn.write_say(&text, "server").unwrap();
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while says(&got).len() < 3 {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("replies were not written")
                .unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(says(&got), vec![say("0"), say("1"), say("2")]);
        drop(client);
        serving.await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_sends_but_never_reads_is_disconnected() {
        // A pipe too small for the replies, and a backlog of 4 messages.
        let (server, client) = tokio::io::duplex(256);
        let closer = Closer::child_of(&CancellationToken::new());
        let mut conn = Connection::new(server, peer(), FrameCodec::new(), 4, closer.clone());
        let (_client_read, mut client_write) = tokio::io::split(client);
        let sending = tokio::spawn(async move {
            let payload = format!(r#"{{"type":"say","text":"{}"}}"#, "x".repeat(100));
            let mut frame = BytesMut::new();
            FrameCodec::new()
                .encode(payload.as_bytes(), &mut frame)
                .unwrap();
            // Far more than the pipe and the backlog hold; fails once the
            // server gives up.
            for _ in 0..1000 {
                if client_write.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match conn.read_message().await {
                    Ok(Incoming::Message(ClientMessage::Say { text })) => {
                        conn.write_say(&text, "server").unwrap();
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(end) => return end,
                }
            }
        })
        .await
        .expect("the connection waited forever on a client that does not read");
        assert!(matches!(end, ReadEnd::Closed(Reason::QueueFull)), "{end:?}");
        assert_eq!(closer.reason(), Reason::QueueFull);
        drop(conn);
        sending.await.unwrap();
    }

    #[tokio::test]
    async fn full_queue_closes_the_connection_with_a_reason() {
        let (server, _client) = tokio::io::duplex(64);
        let closer = Closer::child_of(&CancellationToken::new());
        // Nothing drains the queue of two.
        let conn = Connection::new(server, peer(), FrameCodec::new(), 2, closer);
        let msg = ServerMessage::Error {
            code: ErrorCode::Busy,
            text: String::new(),
        };
        let frame = EncodedFrame::message(&FrameCodec::new(), &msg).unwrap();
        conn.outbox().send(frame.clone()).unwrap();
        conn.outbox().send(frame.clone()).unwrap();
        assert!(matches!(
            conn.outbox().send(frame),
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
        let mut conn = Connection::new(server, peer(), codec, 2, closer);
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
        let mut conn = Connection::new(server, peer(), codec, 2, closer);
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
        let mut conn = Connection::new(server, peer(), FrameCodec::new(), 2, closer);
        client.write_all(b"\x00\x00\x00\x10{\"ty").await.unwrap();
        drop(client);
        match conn.read_message().await {
            Err(ReadEnd::Closed(reason)) => assert_eq!(reason, Reason::MidFrame),
            other => panic!("expected a mid-frame close, got {other:?}"),
        }
    }
}
