//! The protocol as the server reads it: one client's frames as messages,
//! what is answered when a frame is not a message, and the refusal of a
//! message that is out of turn. The handshake and the service loop both
//! read through here, so both answer bad input alike.
//!
//! A client that sends garbage in a loop is answered every time, but must
//! not be able to fill the server's disk with log lines: only the first
//! [`LOGGED_PROTOCOL_ERRORS`] are logged one by one; the rest are counted,
//! and the count is logged when it leaves.

use porter_wire::{ClientMessage, ErrorCode, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use crate::close::{Closer, Reason};
use crate::connection::{Connection, Frame, Replies};
use crate::peer::PeerInfo;

/// Protocol errors logged one by one per connection; see the module docs.
const LOGGED_PROTOCOL_ERRORS: u32 = 10;

/// What a ready client sent, for the service loop.
#[derive(Debug)]
pub(crate) enum Served {
    /// A frame that starts as a compact `say` does.
    Say(SayFrame),
    /// Any other message.
    Message(ClientMessage),
}

/// A frame that starts as a compact `say`, still in the read buffer: its
/// text is served from there, with no allocation or copy, when it is one
/// ([`Client::serve_compact_say`]).
#[derive(Debug)]
pub(crate) struct SayFrame(Frame);

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

/// One client as the protocol sees it: its connection, who it is, the
/// switch that ends it, and the protocol errors it caused.
pub(crate) struct Client<S> {
    conn: Connection<S>,
    peer: PeerInfo,
    closer: Closer,
    /// Protocol errors this client caused (invalid, unknown or unexpected
    /// messages). Only the first few are logged one by one.
    protocol_errors: u32,
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// The client at `peer` on `conn`, ended by `closer`.
    pub(crate) fn new(conn: Connection<S>, peer: PeerInfo, closer: Closer) -> Client<S> {
        Client {
            conn,
            peer,
            closer,
            protocol_errors: 0,
        }
    }

    /// The transport, for writing replies and for the last writes.
    pub(crate) fn conn_mut(&mut self) -> &mut Connection<S> {
        &mut self.conn
    }

    /// Who the client is.
    pub(crate) fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The switch that ends this connection.
    pub(crate) fn closer(&self) -> &Closer {
        &self.closer
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

    /// Queues `message` in the write buffer; it goes out with the batch.
    /// `Err` is the reason the connection must end (a reply that cannot be
    /// encoded is the server's fault, and ends it).
    pub(crate) fn send(&mut self, message: &ServerMessage) -> Result<(), Reason> {
        if let ServerMessage::Error { code, .. } = message {
            crate::metrics::error_sent(*code);
        }
        self.conn
            .write_message(message)
            .map_err(|err| Reason::Io(format!("cannot encode a reply: {err}")))
    }

    /// The next message. `Err` is the reason the connection must end.
    pub(crate) async fn read_message(&mut self) -> Result<Incoming, ReadEnd> {
        let frame = self.conn.read_frame().await;
        self.incoming(frame)
    }

    /// What a frame read (or the failure to read one) is to the protocol.
    fn incoming(
        &self,
        frame: Result<Option<Frame>, porter_wire::Error>,
    ) -> Result<Incoming, ReadEnd> {
        match frame {
            Ok(None) => Err(ReadEnd::Closed(Reason::Eof)),
            Ok(Some(frame)) => {
                let payload = self.conn.payload(frame);
                if payload.is_empty() {
                    return Ok(Incoming::KeepAlive);
                }
                Ok(match porter_wire::decode_client_message(payload) {
                    Ok(message) => Incoming::Message(message),
                    Err(err) => Incoming::Invalid(err),
                })
            }
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

    /// The next message of the protocol, answering the frames that are not
    /// one (`invalid_message`, `unknown_type`) and skipping keep-alives. A
    /// client `bye` ends the connection cleanly.
    pub(crate) async fn next_message(&mut self) -> Result<ClientMessage, Reason> {
        loop {
            let incoming = self.read_message().await;
            if let Some(message) = self.understand(incoming)? {
                return Ok(message);
            }
        }
    }

    /// As [`Client::next_message`], but a compact `say` (the common case
    /// of a ready client) comes as its frame, [`Served::Say`], so that its
    /// text can be served borrowed from it, with no allocation.
    pub(crate) async fn next_served(&mut self) -> Result<Served, Reason> {
        loop {
            let incoming = match self.conn.read_frame().await {
                // Only the start is looked at here: the text is checked
                // once, where it is served (`Client::serve_compact_say`).
                Ok(Some(frame))
                    if self
                        .conn
                        .payload(frame)
                        .starts_with(porter_wire::COMPACT_SAY_START) =>
                {
                    return Ok(Served::Say(SayFrame(frame)));
                }
                other => self.incoming(other),
            };
            if let Some(message) = self.understand(incoming)? {
                return Ok(Served::Message(message));
            }
        }
    }

    /// Serves a compact `say` with `serve`, its text borrowed from the read
    /// buffer and replies written beside it; `None` (and `serve` not
    /// called) when the frame is not one after all, for
    /// [`Client::understand_frame`].
    pub(crate) fn serve_compact_say<T>(
        &mut self,
        frame: &SayFrame,
        serve: impl FnOnce(porter_wire::PlainText<'_>, &mut Replies<'_>) -> T,
    ) -> Option<T> {
        let (payload, mut replies) = self.conn.payload_and_replies(frame.0);
        let text = porter_wire::compact_say_text(payload)?;
        Some(serve(text, &mut replies))
    }

    /// A [`SayFrame`] that is not a compact `say` after all, understood as
    /// any other frame: see [`Client::understand`].
    pub(crate) fn understand_frame(
        &mut self,
        frame: SayFrame,
    ) -> Result<Option<ClientMessage>, Reason> {
        let incoming = self.incoming(Ok(Some(frame.0)));
        self.understand(incoming)
    }

    /// What an incoming frame means to the protocol: a message to serve,
    /// or `None` when it was answered here (an invalid or unknown message)
    /// or skipped (a keep-alive). A client `bye` ends the connection
    /// cleanly.
    fn understand(
        &mut self,
        incoming: Result<Incoming, ReadEnd>,
    ) -> Result<Option<ClientMessage>, Reason> {
        match incoming {
            Ok(Incoming::KeepAlive) => Ok(None),
            Ok(Incoming::Message(ClientMessage::Bye)) => Err(Reason::CleanBye),
            Ok(Incoming::Message(ClientMessage::Unknown)) => {
                if self.count_protocol_error() {
                    info!(peer = %self.peer, "unknown message type");
                }
                self.send(&ServerMessage::error(
                    ErrorCode::UnknownType,
                    "unknown message type",
                ))?;
                Ok(None)
            }
            Ok(Incoming::Message(message)) => Ok(Some(message)),
            Ok(Incoming::Invalid(err)) => {
                if self.count_protocol_error() {
                    info!(peer = %self.peer, cause = %err, "invalid message");
                }
                self.send(&ServerMessage::error(
                    ErrorCode::InvalidMessage,
                    err.to_string(),
                ))?;
                Ok(None)
            }
            Err(ReadEnd::TooLarge { len, max }) => {
                warn!(peer = %self.peer, len, max, "frame too large");
                let text = format!("frame of {len} bytes exceeds the maximum of {max}");
                // The stream cannot be resynchronised: answer, then close.
                let _ = self.send(&ServerMessage::error(ErrorCode::FrameTooLarge, text));
                Err(Reason::Protocol("frame too large"))
            }
            Err(ReadEnd::Closed(reason)) => Err(reason),
        }
    }

    /// Answers a valid message that does not belong here with `unexpected`.
    pub(crate) fn refuse_out_of_turn(
        &mut self,
        message: &ClientMessage,
        expected: &str,
    ) -> Result<(), Reason> {
        let got = message.type_name();
        if self.count_protocol_error() {
            info!(peer = %self.peer, got, expected, "unexpected message");
        }
        self.send(&ServerMessage::error(
            ErrorCode::Unexpected,
            format!("unexpected {got}: expected {expected}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{peer, say, says};
    use std::time::Duration;

    use bytes::BytesMut;
    use porter_wire::{EncodedFrame, FrameCodec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::sync::CancellationToken;

    use crate::outbox::{self, Outbox};

    /// A client on `stream` whose queue holds `queue` frames, and its outbox.
    fn client_on(
        stream: DuplexStream,
        codec: FrameCodec,
        queue: usize,
    ) -> (Client<DuplexStream>, Outbox) {
        let closer = Closer::child_of(&CancellationToken::new());
        let (outbox, inbox) = outbox::channel(queue, closer.clone(), peer());
        let conn = Connection::new(stream, peer(), codec, inbox, queue, closer.clone());
        (Client::new(conn, PeerInfo::new(peer()), closer), outbox)
    }

    #[tokio::test]
    async fn queued_frames_are_written_while_waiting_for_the_client() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let (mut conn, outbox) = client_on(server, FrameCodec::new(), 8);
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
                ServerMessage::say("a", "ann"),
                ServerMessage::say("b", "ann"),
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
        let (mut conn, _outbox) = client_on(server, FrameCodec::new(), 8);
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
            while let Ok(Incoming::Message(ClientMessage::Say { text, .. })) =
                conn.read_message().await
            {
                conn.conn_mut()
                    .replies()
                    .write_say(&text, "server")
                    .unwrap();
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
        let (mut conn, outbox) = client_on(server, FrameCodec::new(), 4);
        let closer = outbox.closer().clone();
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
                    Ok(Incoming::Message(ClientMessage::Say { text, .. })) => {
                        conn.conn_mut()
                            .replies()
                            .write_say(&text, "server")
                            .unwrap();
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
    async fn oversized_header_is_reported_before_any_payload() {
        let (server, mut client) = tokio::io::duplex(64);
        let codec = FrameCodec::with_max_frame_len(300);
        let (mut conn, _outbox) = client_on(server, codec, 2);
        client.write_all(&1_000_000u32.to_be_bytes()).await.unwrap();
        match conn.read_message().await {
            Err(ReadEnd::TooLarge { len, max }) => assert_eq!((len, max), (1_000_000, 300)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_frame_limit_can_be_raised_after_the_handshake() {
        let (server, mut client) = tokio::io::duplex(4096);
        let codec = FrameCodec::with_max_frame_len(300);
        let (mut conn, _outbox) = client_on(server, codec, 2);
        conn.conn_mut().set_max_frame_len(1000);
        let payload = format!(r#"{{"type":"say","text":"{}"}}"#, "x".repeat(500));
        client
            .write_all(&(payload.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(payload.as_bytes()).await.unwrap();
        assert!(matches!(
            conn.read_message().await,
            Ok(Incoming::Message(ClientMessage::Say { text, .. })) if text.len() == 500
        ));
        conn.conn_mut().set_max_frame_len(300);
        client.write_all(&400u32.to_be_bytes()).await.unwrap();
        assert!(matches!(
            conn.read_message().await,
            Err(ReadEnd::TooLarge { len: 400, max: 300 })
        ));
    }

    #[tokio::test]
    async fn close_inside_a_frame_is_a_mid_frame_close() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut conn, _outbox) = client_on(server, FrameCodec::new(), 2);
        client.write_all(b"\x00\x00\x00\x10{\"ty").await.unwrap();
        drop(client);
        match conn.read_message().await {
            Err(ReadEnd::Closed(reason)) => assert_eq!(reason, Reason::MidFrame),
            other => panic!("expected a mid-frame close, got {other:?}"),
        }
    }
}
