//! The chat scenario: every connection sends, every line is delivered to
//! all the others, and each delivery is timed from the send time stamped in
//! the line.
//!
//! A line's text starts with a stamp, `SSSSSS NNNNNNNNNNNNNNNNNNNN `: the
//! sender's index (6 digits) and the send time in nanoseconds since the
//! run's shared start `Instant` (20 digits), then filler up to `--size`.
//! The request frame is encoded once per connection and the stamp digits
//! are patched in place for each line, so sending costs no serialisation.
//!
//! Flow control is closed-loop, as in echo: a sender keeps at most
//! `pipeline` lines that have not yet reached every other participant.
//! Receivers count deliveries per sender (one atomic per sender) and wake
//! the sender when one of its lines is complete.
//!
//! With `--raw` (the bare `baseline_chat`, no handshake) the same frames
//! are sent, and the baseline relays each one verbatim to every other
//! connection: a delivery is then our own `say` frame, whose text carries
//! the same stamp, so it is counted and timed the same way.
//!
//! A chat room never sends a participant its own line. A receiver that gets
//! one is talking to an echo server, whose replies would otherwise pass for
//! deliveries (with two connections, one each: the counts even add up). The
//! run stops there and fails with [`BenchError::NotChat`]. Events, and the
//! lines the room replays from its history to a newcomer (an earlier
//! run's), are skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use porter_wire::{ClientMessage, EncodedFrame, FrameCodec, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, watch};

use super::conn::{Ready, incoming_codec, next_frame};
use super::echo::describe;
use super::report::{Failure, FailureKind};
use super::{BenchError, ErrorSummary, LatencyHistogram, Limit, Measured, Plan, REPLY_TIMEOUT};

/// Digits of the sender index in the stamp.
const INDEX_DIGITS: usize = 6;
/// Digits of the send time (nanoseconds: 20 digits hold any `u64`).
const TIME_DIGITS: usize = 20;
/// Length of the stamp, separators included: the smallest `--size` in chat.
pub(crate) const STAMP_LEN: usize = INDEX_DIGITS + 1 + TIME_DIGITS + 1;

/// Where a line's text starts in a received `say`.
const TEXT_KEY: &[u8] = br#""text":""#;

/// How often the coordinator checks whether every line has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Free room below which the read buffer grows before a read.
const MIN_READ_ROOM: usize = 4 * 1024;
/// How much it grows by.
const READ_CHUNK: usize = 64 * 1024;

/// What the participants share.
struct Room {
    /// Deliveries of each sender's lines, all receivers together.
    delivered: Vec<AtomicU64>,
    /// Wakes a sender waiting for its window to open.
    wake: Vec<Notify>,
    /// Deliveries in all (also the progress counter).
    total: Arc<AtomicU64>,
    /// Receivers of each line: everyone but its sender.
    others: u64,
    start: Instant,
    /// A participant got its own line back: the server echoes, it is no
    /// chat room. Everyone stops.
    echoed: AtomicBool,
}

impl Room {
    /// Marks the run as talking to an echo server and wakes every sender.
    fn echoed(&self) {
        self.echoed.store(true, Ordering::Release);
        for wake in &self.wake {
            wake.notify_one();
        }
    }

    fn is_echo(&self) -> bool {
        self.echoed.load(Ordering::Acquire)
    }
}

/// Runs the chat scenario on connections that are past `ready`.
///
/// # Errors
/// [`BenchError::NotChat`] when the server sends a participant its own
/// line: it is an echo server.
pub(super) async fn run<T>(
    plan: &Plan,
    ready: Vec<Ready<T>>,
    counter: Arc<AtomicU64>,
) -> Result<Measured, BenchError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let n = ready.len();
    let mut errors = ErrorSummary::default();
    if n < 2 {
        errors.add(Failure::new(
            FailureKind::Connection,
            "chat needs two participants, and fewer connections opened",
        ));
        return Ok(Measured {
            messages: 0,
            deliveries: Some(0),
            elapsed: Duration::ZERO,
            histogram: LatencyHistogram::new(),
            errors,
        });
    }
    let start = Instant::now();
    let room = Arc::new(Room {
        delivered: (0..n).map(|_| AtomicU64::new(0)).collect(),
        wake: (0..n).map(|_| Notify::new()).collect(),
        total: counter,
        others: n as u64 - 1,
        start,
        echoed: AtomicBool::new(false),
    });
    let deadline = match plan.limit {
        Limit::Duration(duration) => Some(start + duration),
        Limit::Messages(_) => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for (index, conn) in ready.into_iter().enumerate() {
        let (reader, writer) = tokio::io::split(conn.io);
        let template = stamped_frame(index, plan.size);
        let quota = match plan.limit {
            Limit::Messages(total) => Some(super::share(total, n, index)),
            Limit::Duration(_) => None,
        };
        let pipeline = plan.pipeline as u64;
        let room_s = room.clone();
        senders.push(tokio::spawn(async move {
            send(writer, template, index, pipeline, quota, deadline, &room_s).await
        }));
        let room_r = room.clone();
        let stop = stop_rx.clone();
        let read_buf = conn.read_buf;
        receivers.push(tokio::spawn(async move {
            receive(reader, read_buf, index, stop, &room_r).await
        }));
    }
    let mut sent = 0u64;
    for sender in senders {
        match sender.await {
            Ok((lines, failure)) => {
                sent += lines;
                if let Some(failure) = failure {
                    errors.add(failure);
                }
            }
            Err(err) => errors.add(Failure::new(
                FailureKind::Connection,
                format!("a sender task failed: {err}"),
            )),
        }
    }
    // Every line sent is owed to every other participant.
    let expected = sent * room.others;
    let drain_until = Instant::now() + REPLY_TIMEOUT;
    while room.total.load(Ordering::Relaxed) < expected
        && Instant::now() < drain_until
        && !room.is_echo()
    {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let _ = stop_tx.send(true);
    let mut histogram = LatencyHistogram::new();
    let mut finished = start;
    for receiver in receivers {
        match receiver.await {
            Ok(outcome) => {
                histogram.merge(&outcome.histogram);
                errors.merge(outcome.errors);
                finished = finished.max(outcome.last);
            }
            Err(err) => errors.add(Failure::new(
                FailureKind::Connection,
                format!("a receiver task failed: {err}"),
            )),
        }
    }
    if room.is_echo() {
        return Err(BenchError::NotChat);
    }
    let delivered = room.total.load(Ordering::Relaxed);
    errors.add_n(
        Failure::new(
            FailureKind::Lost,
            format!("{} deliveries missing", expected.saturating_sub(delivered)),
        ),
        expected.saturating_sub(delivered),
    );
    Ok(Measured {
        messages: sent,
        deliveries: Some(delivered),
        elapsed: finished - start,
        histogram,
        errors,
    })
}

/// The `say` frame of sender `index`, with a zero time to patch.
fn stamped_frame(index: usize, size: usize) -> (BytesMut, usize) {
    let mut text = format!("{index:0INDEX_DIGITS$} {:0TIME_DIGITS$} ", 0);
    text.extend(std::iter::repeat_n('x', size.saturating_sub(STAMP_LEN)));
    // The size was validated with the same frame; the text is plain ASCII.
    let frame = EncodedFrame::message(&FrameCodec::new(), &ClientMessage::Say { text, to: None })
        .map(|frame| BytesMut::from(frame.as_bytes()))
        .unwrap_or_default();
    let time_at = find(&frame[HEADER_LEN.min(frame.len())..], TEXT_KEY)
        .map_or(0, |at| HEADER_LEN + at + TEXT_KEY.len() + INDEX_DIGITS + 1);
    (frame, time_at)
}

/// Writes `value` as exactly `out.len()` decimal digits.
fn put_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Reads decimal digits; `None` if any byte is not one.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit()
            .then(|| acc.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends lines while the window allows, until the quota or deadline.
/// Returns the lines sent and what stopped it early, if anything.
async fn send<W: AsyncWrite>(
    writer: WriteHalf<W>,
    (mut frame, time_at): (BytesMut, usize),
    index: usize,
    pipeline: u64,
    quota: Option<u64>,
    deadline: Option<Instant>,
    room: &Room,
) -> (u64, Option<Failure>) {
    let mut writer = writer;
    let mut wbuf = BytesMut::with_capacity(frame.len() * pipeline as usize);
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        if !super::may_send(quota, deadline, sent, now) || room.is_echo() {
            break;
        }
        let complete = room.delivered[index].load(Ordering::Acquire) / room.others;
        let window = pipeline.saturating_sub(sent - complete.min(sent));
        if window == 0 {
            // A permit left by a delivery since the check wakes us at once.
            let wait = tokio::time::timeout(REPLY_TIMEOUT, room.wake[index].notified());
            if wait.await.is_err() {
                let failure = Failure::new(
                    FailureKind::Lost,
                    format!(
                        "sender {index}: lines undelivered for {} s",
                        REPLY_TIMEOUT.as_secs()
                    ),
                );
                let _ = writer.shutdown().await;
                return (sent, Some(failure));
            }
            continue;
        }
        let batch = quota.map_or(window, |quota| window.min(quota - sent));
        let nanos = u64::try_from((now - room.start).as_nanos()).unwrap_or(u64::MAX);
        put_digits(&mut frame[time_at..time_at + TIME_DIGITS], nanos);
        for _ in 0..batch {
            wbuf.extend_from_slice(&frame);
        }
        sent += batch;
        if let Err(err) = writer.write_all(&wbuf).await {
            return (
                sent,
                Some(Failure::new(
                    FailureKind::Connection,
                    format!("write failed: {err}"),
                )),
            );
        }
        wbuf.clear();
    }
    (sent, None)
}

struct Received {
    histogram: LatencyHistogram,
    errors: ErrorSummary,
    /// When the last delivery arrived.
    last: Instant,
}

/// Reads the deliveries to participant `me` until told to stop, or until
/// it gets its own line back.
async fn receive<R: AsyncRead>(
    reader: ReadHalf<R>,
    mut rbuf: BytesMut,
    me: usize,
    mut stop: watch::Receiver<bool>,
    room: &Room,
) -> Received {
    let mut reader = reader;
    let codec = incoming_codec();
    let mut histogram = LatencyHistogram::new();
    let mut errors = ErrorSummary::default();
    let mut last = room.start;
    let mut read_at = Instant::now();
    loop {
        let mut lines = 0u64;
        // Frames are read in place, the buffer advanced once per pass.
        let mut at = 0;
        loop {
            let payload = match next_frame(&codec, &rbuf[at..]) {
                Ok(Some((payload, used))) => {
                    at += used;
                    payload
                }
                Ok(None) => break,
                Err(err) => {
                    errors.add(Failure::wire(&err));
                    return Received {
                        histogram,
                        errors,
                        last,
                    };
                }
            };
            if payload.is_empty() || is_not_live(payload) {
                continue;
            }
            match stamp(payload) {
                Some((sender, _)) if sender == me => {
                    room.echoed();
                    return Received {
                        histogram,
                        errors,
                        last,
                    };
                }
                Some((sender, nanos)) if sender < room.delivered.len() => {
                    let sent_at = room.start + Duration::from_nanos(nanos);
                    histogram.record(read_at.saturating_duration_since(sent_at));
                    let done = room.delivered[sender].fetch_add(1, Ordering::AcqRel) + 1;
                    if done.is_multiple_of(room.others) {
                        room.wake[sender].notify_one();
                    }
                    lines += 1;
                }
                _ => errors.add(Failure::new(
                    FailureKind::Protocol,
                    format!("expected a bench line, got {}", describe(payload)),
                )),
            }
        }
        rbuf.advance(at);
        if lines > 0 {
            room.total.fetch_add(lines, Ordering::Relaxed);
            last = read_at;
        }
        if rbuf.capacity() - rbuf.len() < MIN_READ_ROOM {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = reader.read_buf(&mut rbuf) => match read {
                Ok(0) => {
                    if !*stop.borrow() {
                        errors.add(Failure::new(
                            FailureKind::Connection,
                            "the server closed the connection during the run",
                        ));
                    }
                    break;
                }
                Ok(_) => read_at = Instant::now(),
                Err(err) => {
                    errors.add(Failure::new(FailureKind::Connection, format!("read failed: {err}")));
                    break;
                }
            },
        }
    }
    Received {
        histogram,
        errors,
        last,
    }
}

/// A frame the room sends besides the live lines: a join or leave event,
/// or a line replayed from history (a bench line of an earlier run, whose
/// stamp would count as a delivery with a meaningless latency, or be taken
/// for the receiver's own line). The server writes `replay` as a say's last
/// field.
fn is_not_live(payload: &[u8]) -> bool {
    payload.starts_with(br#"{"type":"event""#) || payload.ends_with(br#","replay":true}"#)
}

/// The sender index and send time of a delivered line: `None` when the
/// payload is not a `say` carrying a bench stamp.
fn stamp(payload: &[u8]) -> Option<(usize, u64)> {
    if !payload.starts_with(br#"{"type":"say""#) {
        return None;
    }
    let at = find(payload, TEXT_KEY)? + TEXT_KEY.len();
    let stamp = payload.get(at..at + STAMP_LEN)?;
    let sender = parse_digits(&stamp[..INDEX_DIGITS])?;
    let nanos = parse_digits(&stamp[INDEX_DIGITS + 1..INDEX_DIGITS + 1 + TIME_DIGITS])?;
    Some((usize::try_from(sender).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use porter_wire::ServerMessage;

    use super::*;

    #[test]
    fn a_patched_stamp_survives_the_server_relaying_the_line() {
        let (mut frame, time_at) = stamped_frame(42, 64);
        assert_eq!(
            frame.len() - HEADER_LEN,
            64 + r#"{"type":"say","text":""}"#.len()
        );
        put_digits(&mut frame[time_at..time_at + TIME_DIGITS], 123_456_789);
        let sent: ClientMessage = porter_wire::decode_message(&frame[HEADER_LEN..]).unwrap();
        let ClientMessage::Say { text, .. } = sent else {
            panic!("not a say: {sent:?}")
        };
        assert_eq!(text.len(), 64);
        let relayed = EncodedFrame::message(
            &FrameCodec::new(),
            &ServerMessage::Say {
                text,
                from: "guest-1".into(),
                seq: None,
                at: None,
                to: None,
                replay: false,
            },
        )
        .unwrap();
        assert_eq!(stamp(relayed.payload()), Some((42, 123_456_789)));
    }

    #[test]
    fn a_line_from_history_is_recognised_by_its_encoding() {
        let replayed = EncodedFrame::message(
            &FrameCodec::new(),
            &ServerMessage::Say {
                text: "000001 00000000000000000001 x".into(),
                from: "guest-1".into(),
                seq: Some(3),
                at: Some("2030-01-01T00:00:00Z".into()),
                to: None,
                replay: true,
            },
        )
        .unwrap();
        assert!(is_not_live(replayed.payload()));
        let live = EncodedFrame::message(
            &FrameCodec::new(),
            &ServerMessage::say("000001 00000000000000000001 x", "guest-1"),
        )
        .unwrap();
        assert!(!is_not_live(live.payload()));
    }

    #[test]
    fn a_line_without_a_stamp_is_not_a_delivery() {
        assert_eq!(
            stamp(br#"{"type":"say","text":"hello","from":"server"}"#),
            None
        );
        assert_eq!(
            stamp(br#"{"type":"bye","text":"000000 00000000000000000001 "}"#),
            None
        );
    }
}
