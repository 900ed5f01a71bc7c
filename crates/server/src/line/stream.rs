//! [`Lines`]: a line-mode client's stream, made to look framed.
//!
//! The connection reads frames from it and writes frames to it, exactly as
//! it does on a framed client's stream; underneath, the person's lines are
//! made into frames as the connection reads (one line per frame, `hello`
//! first), and the frames the connection writes are shown as lines. The
//! handshake, the services, the room and every limit run unchanged above
//! it, and the framed path does not know it exists.
//!
//! A line is made into a frame only when the connection asks for the next
//! one, which it does after it has written its answers to the previous
//! one: so the question a line answers has always gone by (typed-ahead
//! lines wait in the buffer), and the line limit is the one in force
//! (the pre-login limit until `ready`, then the frame limit). A line over
//! it becomes a header the connection refuses at once (`frame_too_large`:
//! shown as "line too long"), and the connection ends, as a framed one does.
//!
//! Memory per client stays bounded: the input holds at most one line (the
//! limit) and one read; text for the person, as the frames it comes from;
//! and what this writes on its own (answers to `/help`, telnet refusals)
//! stops reading from the client once [`OWED_LIMIT`] bytes wait, until the
//! client reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use porter_wire::{FrameCodec, HEADER_LEN, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::dialogue::{Dialogue, Outgoing};
use super::input::{Input, TooLong};
use super::telnet::Telnet;

/// Bytes asked of the client's stream per read. People type short lines;
/// a paste of a long one takes a few reads.
const READ_CHUNK: usize = 1024;

/// Text owed to the person past which nothing more is read from it until it
/// reads: a client that sends `/help` without reading cannot grow this.
pub(crate) const OWED_LIMIT: usize = 64 * 1024;

/// The line limits: the frame limits of the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Until `ready`.
    pub(crate) pre_login: usize,
    /// After `ready`.
    pub(crate) max: usize,
}

/// A line-mode client's stream; see the module docs.
pub(crate) struct Lines<S> {
    /// The client's stream (TCP, or TLS over it).
    inner: S,
    /// Data bytes not yet cut into lines.
    input: Input,
    /// Telnet negotiation, taken out of the input.
    telnet: Telnet,
    /// Where the conversation is: the question standing, `ready` or not.
    dialogue: Dialogue,
    /// A first line with something in it, said after `hello`.
    held: Option<BytesMut>,
    /// Frames made from lines, not yet read by the connection.
    frames: BytesMut,
    /// Frame bytes the connection wrote, not yet a whole frame.
    written: BytesMut,
    /// Text for the person, not yet written.
    owed: BytesMut,
    /// The client closed its side.
    eof: bool,
    /// No more lines: a line was too long, or the connection shut its side
    /// down. Reads pass through untouched (the connection only drains what
    /// is left before it closes).
    spent: bool,
    limits: Limits,
}

impl<S> Lines<S> {
    /// Line mode on `inner`, whose first bytes `first` were read already.
    pub(crate) fn new(inner: S, first: &[u8], limits: Limits) -> Lines<S> {
        let mut lines = Lines {
            inner,
            input: Input::default(),
            telnet: Telnet::new(),
            dialogue: Dialogue::default(),
            held: None,
            frames: BytesMut::new(),
            written: BytesMut::new(),
            owed: BytesMut::new(),
            eof: false,
            spent: false,
            limits,
        };
        lines
            .telnet
            .feed(first, lines.input.buffer(), &mut lines.owed);
        lines
    }

    /// The line limit in force.
    fn limit(&self) -> usize {
        if self.dialogue.ready() {
            self.limits.max
        } else {
            self.limits.pre_login
        }
    }

    /// Makes the next frame for the connection from the lines received, if
    /// a line is whole; `false` when more must be read first.
    fn next_frame(&mut self) -> bool {
        loop {
            // Lines answered here (`/help`) wait until the person has read
            // what it is owed.
            if self.owed.len() > OWED_LIMIT {
                return false;
            }
            let line = match self.held.take() {
                Some(line) => line,
                None => match self.input.next_line(self.limit(), self.eof) {
                    None => return false,
                    Some(Err(TooLong)) => return self.too_long(),
                    Some(Ok(line)) => line,
                },
            };
            if !self.dialogue.opened() {
                // The first line opens line mode; if it holds more than the
                // Enter asked for, it is said once the server is ready for it.
                let hello = self.dialogue.open(&mut self.owed);
                if !line.is_empty() {
                    self.held = Some(line);
                }
                return self.frame(Outgoing::Message(hello));
            }
            let outgoing = self.dialogue.line(line, &mut self.telnet, &mut self.owed);
            if let Some(outgoing) = outgoing {
                return self.frame(outgoing);
            }
        }
    }

    /// Puts `outgoing` into the frames for the connection, held to the line
    /// limit.
    fn frame(&mut self, outgoing: Outgoing) -> bool {
        let codec = FrameCodec::with_max_frame_len(self.limit());
        let made = match &outgoing {
            Outgoing::Message(message) => codec.encode_message(message, &mut self.frames),
            Outgoing::Invalid(bytes) => codec.encode(bytes, &mut self.frames),
        };
        match made {
            Ok(()) => true,
            // Escaping made it longer than a frame may be.
            Err(_) => self.too_long(),
        }
    }

    /// A line over the limit: a header the connection refuses before
    /// anything else, as it refuses a framed client's. Above any limit a
    /// server can have, whatever limit the connection holds to by then.
    fn too_long(&mut self) -> bool {
        self.frames.put_slice(&u32::MAX.to_be_bytes());
        self.spent = true;
        true
    }
}

impl<S: AsyncWrite + Unpin> Lines<S> {
    /// Writes what is owed to the person. `Pending` until all of it is out.
    fn poll_owed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.owed.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while !self.owed.is_empty() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.owed)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.owed.advance(n),
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        // A no-op on TCP; TLS sends its records here.
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Lines<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // What this owes the person goes out whenever the connection
            // waits for the client, as the connection's own writes do.
            if let Poll::Ready(Err(err)) = this.poll_owed(cx) {
                return Poll::Ready(Err(err));
            }
            if !this.frames.is_empty() {
                let n = buf.remaining().min(this.frames.len());
                buf.put_slice(&this.frames[..n]);
                this.frames.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.spent {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.owed.len() > OWED_LIMIT {
                // `poll_owed` is waiting for the client to read (it would
                // have written everything otherwise), and wakes this task
                // when it does.
                return Poll::Pending;
            }
            if this.next_frame() {
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.telnet
                    .feed(read.filled(), this.input.buffer(), &mut this.owed);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Lines<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Nothing more is taken while the client is not reading what it is
        // owed: the connection's own backlog rules then apply.
        ready!(this.poll_owed(cx))?;
        this.written.extend_from_slice(buf);
        while let Some(frame) = whole_frame(&mut this.written) {
            // The server's own frames: always a message, decoded only to be
            // shown. Keep-alives and anything else show nothing.
            if let Ok(message) = porter_wire::decode_message::<ServerMessage>(&frame) {
                let limit = this.limit();
                this.dialogue
                    .show(message, limit, &mut this.telnet, &mut this.owed);
            }
        }
        if let Poll::Ready(Err(err)) = this.poll_owed(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_owed(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.spent = true;
        ready!(this.poll_owed(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The payload of the first whole frame in `buf`, taken off it.
fn whole_frame(buf: &mut BytesMut) -> Option<BytesMut> {
    let header = buf.first_chunk::<HEADER_LEN>()?;
    let len = u32::from_be_bytes(*header) as usize;
    if buf.len() < HEADER_LEN.checked_add(len)? {
        return None;
    }
    buf.advance(HEADER_LEN);
    Some(buf.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use porter_wire::{ClientMessage, ErrorCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const LIMITS: Limits = Limits {
        pre_login: 64,
        max: 256,
    };

    /// Reads one frame from `lines` as the connection would.
    async fn next_message(lines: &mut Lines<DuplexStream>) -> Option<ClientMessage> {
        let mut buf = BytesMut::new();
        loop {
            if let Some(frame) = FrameCodec::new().decode(&mut buf).unwrap() {
                return Some(porter_wire::decode_client_message(&frame).unwrap());
            }
            if lines.read_buf(&mut buf).await.unwrap() == 0 {
                return None;
            }
        }
    }

    async fn send(lines: &mut Lines<DuplexStream>, message: &ServerMessage) {
        let mut frame = BytesMut::new();
        FrameCodec::new()
            .encode_message(message, &mut frame)
            .unwrap();
        lines.write_all(&frame).await.unwrap();
        lines.flush().await.unwrap();
    }

    /// What the person has been shown so far (at least `at_least` bytes).
    async fn shown(person: &mut DuplexStream, at_least: usize) -> String {
        let mut got = Vec::new();
        while got.len() < at_least {
            let mut buf = [0u8; 256];
            let n = person.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn the_first_line_opens_with_hello_and_typed_ahead_lines_wait_for_their_question() {
        let (server, mut person) = tokio::io::duplex(4096);
        // The sniffed first byte, then lines typed ahead of every question.
        let mut lines = Lines::new(server, b"\r", LIMITS);
        person.write_all(b"\nada\nhi there\n").await.unwrap();
        assert!(matches!(
            next_message(&mut lines).await,
            Some(ClientMessage::Hello { .. })
        ));
        send(
            &mut lines,
            &ServerMessage::Ask {
                id: "name".into(),
                text: "Name?".into(),
                secret: false,
            },
        )
        .await;
        match next_message(&mut lines).await {
            Some(ClientMessage::Answer { id, text }) => {
                assert_eq!((id.as_str(), text.expose()), ("name", "ada"));
            }
            other => panic!("{other:?}"),
        }
        send(&mut lines, &ServerMessage::Ready { user: "ada".into() }).await;
        assert_eq!(
            next_message(&mut lines).await,
            Some(ClientMessage::Say {
                text: "hi there".into(),
                to: None
            })
        );
        let text = shown(&mut person, 1).await;
        assert!(text.contains("Name? "), "{text}");
        drop(person);
        assert_eq!(next_message(&mut lines).await, None);
    }

    #[tokio::test]
    async fn a_first_line_with_words_is_said_after_hello() {
        let (server, mut person) = tokio::io::duplex(4096);
        let mut lines = Lines::new(server, b"h", LIMITS);
        person.write_all(b"ello\n").await.unwrap();
        assert!(matches!(
            next_message(&mut lines).await,
            Some(ClientMessage::Hello { .. })
        ));
        send(&mut lines, &ServerMessage::Ready { user: "x".into() }).await;
        assert_eq!(
            next_message(&mut lines).await,
            Some(ClientMessage::Say {
                text: "hello".into(),
                to: None
            })
        );
    }

    #[tokio::test]
    async fn a_line_over_the_limit_in_force_becomes_a_header_no_server_accepts() {
        let (server, mut person) = tokio::io::duplex(4096);
        let mut lines = Lines::new(server, b"\n", LIMITS);
        assert!(matches!(
            next_message(&mut lines).await,
            Some(ClientMessage::Hello { .. })
        ));
        send(&mut lines, &ServerMessage::Ready { user: "x".into() }).await;
        // Longer than the pre-login limit, within the limit after ready.
        let line = "x".repeat(100);
        person
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        assert!(matches!(
            next_message(&mut lines).await,
            Some(ClientMessage::Say { text, .. }) if text == line
        ));
        // Past the limit, and never ended: refused without waiting.
        person.write_all(&[b'y'; 300]).await.unwrap();
        let mut header = [0u8; HEADER_LEN];
        lines.read_exact(&mut header).await.unwrap();
        assert_eq!(u32::from_be_bytes(header), u32::MAX);
        send(
            &mut lines,
            &ServerMessage::error(ErrorCode::FrameTooLarge, "frame of 4294967295 bytes"),
        )
        .await;
        let text = shown(&mut person, 1).await;
        assert!(
            text.contains("line too long (the limit is 256 bytes here)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_person_who_asks_for_help_without_reading_stops_being_read() {
        let (server, person) = tokio::io::duplex(1024);
        let mut lines = Lines::new(server, b"\n", LIMITS);
        assert!(matches!(
            next_message(&mut lines).await,
            Some(ClientMessage::Hello { .. })
        ));
        send(&mut lines, &ServerMessage::Ready { user: "x".into() }).await;
        // Far more help than the pipe and OWED_LIMIT hold, never read; the
        // line after it is not made into a frame meanwhile.
        let (mut person_reads, mut person_types) = tokio::io::split(person);
        let flood = tokio::spawn(async move {
            for _ in 0..1000 {
                person_types.write_all(b"/help\n").await.unwrap();
            }
            person_types.write_all(b"after\n").await.unwrap();
            person_types
        });
        let read = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            next_message(&mut lines),
        )
        .await;
        assert!(
            read.is_err(),
            "read on while owing {} bytes",
            lines.owed.len()
        );
        assert!(
            lines.owed.len() <= OWED_LIMIT + 1024,
            "{}",
            lines.owed.len()
        );
        // Once the person reads, the rest is answered and `after` is said.
        let reading = tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            while person_reads.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        assert_eq!(
            next_message(&mut lines).await,
            Some(ClientMessage::Say {
                text: "after".into(),
                to: None
            })
        );
        let person_types = flood.await.unwrap();
        drop((lines, person_types));
        reading.await.unwrap();
    }

    #[tokio::test]
    async fn telnet_negotiation_is_refused_at_once_and_never_reaches_the_server() {
        let (server, mut person) = tokio::io::duplex(4096);
        // Telnet opens with its offers before the person types anything.
        let mut lines = Lines::new(server, &[255, 251, 31], LIMITS);
        person
            .write_all(&[255, 250, 24, 0, b'x', 255, 240, b'\r', b'\n'])
            .await
            .unwrap();
        assert!(matches!(
            next_message(&mut lines).await,
            Some(ClientMessage::Hello { .. })
        ));
        let mut refusal = [0u8; 3];
        person.read_exact(&mut refusal).await.unwrap();
        assert_eq!(refusal, [255, 254, 31]);
    }
}
