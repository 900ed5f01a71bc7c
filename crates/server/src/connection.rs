//! One client's byte stream, framed and buffered: the transport every
//! stage of a connection reads and writes through.
//!
//! - [`Connection::read_frame`] reads frames through [`FrameCodec`] (the
//!   maximum length is checked on the header, before anything is allocated
//!   for it) and leaves each where it lies in the read buffer: a [`Frame`]
//!   says where, good until the next read, and the frames of a batch are
//!   dropped from the buffer together. `Ok(None)` is a clean close between
//!   frames; a close inside a frame is an error with a name.
//! - What the connection answers itself (handshake, echo, errors) is encoded
//!   straight into its write buffer, and the buffer is written out once per
//!   batch: when no whole frame is left to read, just before waiting for
//!   more, as the baseline echo server does. A pipelined burst of requests
//!   gets its replies in one `write`, with no queue hop to another task.
//! - Frames from others (the chat room) arrive through the client's
//!   [`Inbox`] and are drained into the write buffer
//!   whenever the connection waits.
//!
//! A client that sends without reading fills the socket. While a write
//! waits, the connection goes on reading; when more messages wait
//! unanswered than the outgoing queue holds, the client is disconnected,
//! as it is when the room fills its queue.
//!
//! Memory: an idle connection holds a read buffer of [`INITIAL_READ`]
//! bytes and a write buffer only as large as what it last wrote; both grow
//! with traffic. Everything is generic over `S: AsyncRead + AsyncWrite`, so
//! the stream may be what an upgrade (TLS) made of the socket.
//!
//! What the frames mean is the `protocol` module's business, not this one's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, BytesMut};
use porter_wire::{FrameCodec, HEADER_LEN, ServerMessage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::io::poll_read_buf;
use tracing::warn;

use crate::close::{Closer, Reason};
use crate::metrics::{Tally, Traffic};
use crate::outbox::Inbox;
use crate::wake_flag::WakeFlag;

/// Queued frames (from the room) taken into the write buffer before one
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

/// A client connection: its stream, both buffers and its inbox.
pub(crate) struct Connection<S> {
    /// The socket (or, later, a TLS stream over it).
    stream: S,
    /// Bytes read: the frames already handed out (the first `taken`
    /// bytes), then what is not yet decoded.
    read_buf: BytesMut,
    /// How many bytes at the front of `read_buf` are frames already handed
    /// out, dropped before the buffer is read into again.
    taken: usize,
    /// How much to ask of the next read; grows while reads come back full.
    read_hint: usize,
    /// Frames for the client, written out once per batch.
    write_buf: BytesMut,
    /// Frames in: small before `ready`, `max_frame_len` after.
    decoder: FrameCodec,
    /// Frames out are held to the server's `max_frame_len`.
    encoder: FrameCodec,
    /// Frames from others (the room), drained into `write_buf`.
    queue: Inbox,
    /// Up when `queue` must be polled.
    queue_woken: WakeFlag,
    /// Messages that may wait unanswered while the client does not read
    /// (the outgoing queue's length, for replies).
    backlog: usize,
    /// Ends the connection when the client does not read.
    closer: Closer,
    /// For the log.
    peer: SocketAddr,
    /// When bytes last arrived from the client: idleness is measured from it.
    last_read: Instant,
    /// When the first byte of a frame not yet complete arrived, if one is in
    /// the read buffer: a frame must not take forever to arrive.
    partial_since: Option<Instant>,
    /// Messages, bytes and lines since the last report to `traffic`: plain
    /// additions per message, reported once per batch (before waiting) and
    /// at the end.
    tally: Tally,
    /// Where the tally is reported.
    traffic: Traffic,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// A connection over `stream` that drains `queue` (of `backlog`
    /// frames) while it waits; frames in and out are held to `codec`'s
    /// maximum until [`Connection::set_max_frame_len`].
    pub(crate) fn new(
        stream: S,
        peer: SocketAddr,
        codec: FrameCodec,
        queue: Inbox,
        backlog: usize,
        closer: Closer,
    ) -> Connection<S> {
        Connection {
            stream,
            read_buf: BytesMut::new(),
            taken: 0,
            read_hint: INITIAL_READ,
            write_buf: BytesMut::new(),
            decoder: codec,
            encoder: codec,
            queue,
            queue_woken: WakeFlag::new(),
            backlog: backlog.max(1),
            closer,
            peer,
            last_read: Instant::now(),
            partial_since: None,
            tally: Tally::default(),
            traffic: Traffic::none(),
        }
    }

    /// Reports this connection's traffic to `traffic` from now on.
    pub(crate) fn count_into(&mut self, traffic: Traffic) {
        self.traffic = traffic;
    }

    /// Counts a line served to this client's service.
    pub(crate) fn count_line(&mut self) {
        self.tally.lines += 1;
    }

    /// When bytes last arrived from the client.
    pub(crate) fn last_read(&self) -> Instant {
        self.last_read
    }

    /// Since when a frame has been arriving, if one is incomplete.
    pub(crate) fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }

    /// The next frame; `Ok(None)` when the client closed cleanly between
    /// frames. The frame stays where it lies in the read buffer (its
    /// payload is [`Connection::payload`]) until the next call: no frame is
    /// split off or copied, and the frames of a batch are dropped from the
    /// buffer together, just before it is read into again. Before it waits
    /// for the client, it writes out what is owed: that is the one flush per
    /// batch. Cancel-safe: no byte read or owed is lost if it is dropped.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Frame>, porter_wire::Error> {
        let mut open = true;
        loop {
            if let Some(len) = self.decoder.whole_frame_len(&self.read_buf[self.taken..])? {
                let frame = Frame {
                    start: self.taken + HEADER_LEN,
                    len,
                };
                self.taken = frame.start + len;
                self.partial_since = None;
                self.tally.messages_received += 1;
                return Ok(Some(frame));
            }
            self.drop_taken();
            if !open {
                // The client closed: cleanly between frames, or inside one.
                if self.read_buf.is_empty() {
                    return Ok(None);
                }
                return Err(FrameCodec::truncated(&self.read_buf));
            }
            if !self.read_buf.is_empty() && self.partial_since.is_none() {
                self.partial_since = Some(Instant::now());
            }
            self.flush().await?;
            open = self.fill().await?;
        }
    }

    /// The payload of `frame`, the last one [`Connection::read_frame`]
    /// returned.
    pub(crate) fn payload(&self, frame: Frame) -> &[u8] {
        debug_assert!(
            frame.start + frame.len <= self.taken,
            "a frame from before the last read"
        );
        &self.read_buf[frame.start..frame.start + frame.len]
    }

    /// The payload of `frame` and, apart from it, where replies are
    /// written: a reply can be made from the payload without copying it
    /// out first.
    pub(crate) fn payload_and_replies(&mut self, frame: Frame) -> (&[u8], Replies<'_>) {
        debug_assert!(
            frame.start + frame.len <= self.taken,
            "a frame from before the last read"
        );
        let replies = Replies {
            encoder: &self.encoder,
            write_buf: &mut self.write_buf,
            tally: &mut self.tally,
        };
        (
            &self.read_buf[frame.start..frame.start + frame.len],
            replies,
        )
    }

    /// Drops the frames already handed out from the front of the read
    /// buffer, once per batch.
    fn drop_taken(&mut self) {
        self.read_buf.advance(self.taken);
        self.taken = 0;
    }

    /// Reads more into the read buffer, taking queued frames into the write
    /// buffer (and writing them) while it waits. `false` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        loop {
            // About to wait: the batch is over, its counts go out.
            self.traffic.report(&mut self.tally);
            self.read_buf.reserve(self.read_hint);
            let asked = self.read_buf.capacity() - self.read_buf.len();
            let taken = tokio::select! {
                biased;
                r = self.stream.read_buf(&mut self.read_buf) => {
                    let n = r?;
                    self.tally.bytes_received += n as u64;
                    self.last_read = Instant::now();
                    if n == asked {
                        self.read_hint = (self.read_hint * 2).min(MAX_READ);
                    }
                    return Ok(n > 0);
                }
                // Polled only after the queue woke the task: an echo
                // server's queue is almost always empty.
                frame = std::future::poll_fn(|cx| {
                    self.queue_woken.poll(cx, |cx| self.queue.poll_recv(cx))
                }) => frame,
            };
            // The connection holds a sender itself, so the queue is never
            // closed while it lives; `None` cannot happen.
            if let Some(frame) = taken {
                self.write_buf.extend_from_slice(frame.as_bytes());
                self.tally.messages_sent += 1;
                for _ in 1..WRITE_BATCH {
                    match self.queue.try_recv() {
                        Ok(frame) => {
                            self.write_buf.extend_from_slice(frame.as_bytes());
                            self.tally.messages_sent += 1;
                        }
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
                Progress::Wrote(n) => {
                    self.tally.bytes_sent += n as u64;
                    self.write_buf.advance(n);
                }
                // The client closed its side; what it is owed still goes.
                Progress::Read(0) => client_open = false,
                Progress::Read(n) => {
                    self.tally.bytes_received += n as u64;
                    let unread = &self.read_buf[self.taken..];
                    if waiting_messages(unread, self.backlog) >= self.backlog {
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

    /// Encodes `message` into the write buffer; it goes out with the batch.
    ///
    /// # Errors
    /// When it does not fit in a frame; nothing is queued then.
    pub(crate) fn write_message(&mut self, message: &ServerMessage) -> porter_wire::Result<()> {
        self.replies().write_message(message)
    }

    /// Where replies are written: the write buffer, whose frames go out
    /// with the batch.
    pub(crate) fn replies(&mut self) -> Replies<'_> {
        Replies {
            encoder: &self.encoder,
            write_buf: &mut self.write_buf,
            tally: &mut self.tally,
        }
    }

    /// What happened on the stream before this connection existed, as its
    /// own: `welcome` (of `welcome_len` bytes) went out, and `bytes` (the
    /// look at the first bytes that tells framed from line mode) were read;
    /// they are the start of what it reads.
    pub(crate) fn opened(&mut self, welcome_len: usize, bytes: BytesMut) {
        debug_assert!(self.read_buf.is_empty() && self.taken == 0);
        self.tally.messages_sent += 1;
        self.tally.bytes_sent += welcome_len as u64;
        self.tally.bytes_received += bytes.len() as u64;
        self.read_buf = bytes;
    }

    /// Changes the largest frame accepted from now on: small before
    /// `ready`, the normal maximum after. Frames already decoded are not
    /// affected; a header still in the buffer is checked against the new one.
    pub(crate) fn set_max_frame_len(&mut self, max: usize) {
        self.decoder = FrameCodec::with_max_frame_len(max);
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

    /// After [`Connection::finish`]: [`linger`](crate::linger::linger) on the read side. Boxed, so
    /// that its scratch buffer is allocated for the last second only and is
    /// not part of every connection's task.
    pub(crate) async fn linger(&mut self, limit: Duration, stop: impl Future<Output = ()> + Send) {
        Box::pin(crate::linger::linger(&mut self.stream, limit, stop)).await;
    }
}

impl<S> Drop for Connection<S> {
    /// The last counts (the final writes, a batch cut short) are not lost.
    fn drop(&mut self) {
        self.traffic.report(&mut self.tally);
    }
}

/// A frame read in place: where its payload lies in the connection's read
/// buffer. Good until the next [`Connection::read_frame`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    start: usize,
    len: usize,
}

/// Where a connection's replies are written, borrowed apart from its read
/// buffer (see [`Connection::payload_and_replies`]).
pub(crate) struct Replies<'a> {
    encoder: &'a FrameCodec,
    write_buf: &'a mut BytesMut,
    tally: &'a mut Tally,
}

impl Replies<'_> {
    /// Encodes `message`; it goes out with the batch.
    ///
    /// # Errors
    /// When it does not fit in a frame; nothing is queued then.
    pub(crate) fn write_message(&mut self, message: &ServerMessage) -> porter_wire::Result<()> {
        self.encoder.encode_message(message, self.write_buf)?;
        self.tally.messages_sent += 1;
        Ok(())
    }

    /// Encodes the server's `say{text, from}`; it goes out with the batch.
    ///
    /// # Errors
    /// When it does not fit in a frame; nothing is queued then.
    pub(crate) fn write_say(&mut self, text: &str, from: &str) -> porter_wire::Result<()> {
        self.encoder.encode_say(text, from, self.write_buf)?;
        self.tally.messages_sent += 1;
        Ok(())
    }

    /// Encodes the server's `say{text, from}`, from a text and a sender
    /// known to need no escaping: they are only copied. It goes out with the
    /// batch.
    ///
    /// # Errors
    /// When it does not fit in a frame; nothing is queued then.
    pub(crate) fn write_plain_say(
        &mut self,
        text: porter_wire::PlainText<'_>,
        from: porter_wire::PlainText<'_>,
    ) -> porter_wire::Result<()> {
        self.encoder.encode_plain_say(text, from, self.write_buf)?;
        self.tally.messages_sent += 1;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{peer, say, says};
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn written_messages_go_out_in_order_when_finished() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let closer = Closer::child_of(&CancellationToken::new());
        let (_outbox, inbox) = crate::outbox::channel(8, closer.clone(), peer());
        let mut conn = Connection::new(server, peer(), FrameCodec::new(), inbox, 8, closer);
        conn.write_message(&say("0")).unwrap();
        for i in 1..5 {
            conn.replies().write_say(&i.to_string(), "server").unwrap();
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
}
