//! The echo scenario: every connection keeps `pipeline` copies of one
//! pre-encoded `say` in flight, and measures each reply from the time its
//! request was scheduled.
//!
//! One task per connection does both directions: it writes a batch, then
//! reads until at least one reply is in, then refills the window with one
//! write. In-flight bytes are bounded (see [`super::MAX_IN_FLIGHT_BYTES`])
//! so the socket buffers absorb a batch while the task is not reading.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use porter_wire::{ClientMessage, EncodedFrame, FrameCodec, ServerMessage, decode_message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conn::{Ready, incoming_codec, next_frame};
use super::report::{Failure, FailureKind};
use super::{ErrorSummary, LatencyHistogram, Limit, Measured, Plan, REPLY_TIMEOUT};

/// How every echo reply starts: serde writes the tag first, and the
/// baseline returns our own request, which starts the same way.
const SAY_PREFIX: &[u8] = br#"{"type":"say""#;

/// Free room below which the read buffer grows before a read.
const MIN_READ_ROOM: usize = 4 * 1024;
/// How much it grows by.
const READ_CHUNK: usize = 64 * 1024;

/// What one connection is asked to do.
struct Orders {
    /// The request, header included.
    request: EncodedFrame,
    /// `bye`, sent at the end to a Porter server (not to the baseline).
    bye: Option<EncodedFrame>,
    pipeline: usize,
    quota: Option<u64>,
    deadline: Option<Instant>,
}

/// What one connection measured.
struct Outcome {
    histogram: LatencyHistogram,
    completed: u64,
    errors: ErrorSummary,
    finished: Instant,
}

/// Runs the echo scenario on connections that are past `ready`.
pub(super) async fn run<T>(
    plan: &Plan,
    request: EncodedFrame,
    ready: Vec<Ready<T>>,
    counter: Arc<AtomicU64>,
) -> Measured
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = FrameCodec::new();
    let bye = (!plan.raw)
        .then(|| EncodedFrame::message(&codec, &ClientMessage::Bye).ok())
        .flatten();
    let start = Instant::now();
    let deadline = match plan.limit {
        Limit::Duration(duration) => Some(start + duration),
        Limit::Messages(_) => None,
    };
    // Shared out among the connections that did open, so a run with failed
    // connections still sends what was asked.
    let opened = ready.len();
    let mut tasks = Vec::with_capacity(opened);
    for (index, conn) in ready.into_iter().enumerate() {
        let orders = Orders {
            request: request.clone(),
            bye: bye.clone(),
            pipeline: plan.pipeline,
            quota: match plan.limit {
                Limit::Messages(total) => Some(super::share(total, opened, index)),
                Limit::Duration(_) => None,
            },
            deadline,
        };
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            converse(conn, orders, start, &counter).await
        }));
    }
    let mut measured = Measured {
        messages: 0,
        deliveries: None,
        elapsed: std::time::Duration::ZERO,
        histogram: LatencyHistogram::new(),
        errors: ErrorSummary::default(),
    };
    let mut finished = start;
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                measured.messages += outcome.completed;
                measured.histogram.merge(&outcome.histogram);
                measured.errors.merge(outcome.errors);
                finished = finished.max(outcome.finished);
            }
            Err(err) => measured.errors.add(Failure::new(
                FailureKind::Connection,
                format!("a connection task failed: {err}"),
            )),
        }
    }
    measured.elapsed = finished - start;
    measured
}

/// One connection's loop. Never returns an error: whatever breaks is
/// counted, and what was in flight is counted as lost.
async fn converse<T>(conn: Ready<T>, orders: Orders, start: Instant, counter: &AtomicU64) -> Outcome
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Ready {
        mut io,
        read_buf: mut rbuf,
        ..
    } = conn;
    let codec = incoming_codec();
    let request = orders.request.as_bytes();
    let mut wbuf = BytesMut::with_capacity(request.len() * orders.pipeline);
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(orders.pipeline);
    let mut histogram = LatencyHistogram::new();
    let mut errors = ErrorSummary::default();
    let mut completed = 0u64;
    let mut sent = 0u64;
    let mut finished = start;
    // The first batch is scheduled at the start; later ones when the
    // replies that freed their slots were read.
    let mut now = start;
    let stall = tokio::time::sleep(REPLY_TIMEOUT);
    tokio::pin!(stall);
    let broken = loop {
        while in_flight.len() < orders.pipeline
            && super::may_send(orders.quota, orders.deadline, sent, now)
        {
            wbuf.extend_from_slice(request);
            in_flight.push_back(now);
            sent += 1;
        }
        if !wbuf.is_empty() {
            if let Err(err) = io.write_all(&wbuf).await {
                break Some(Failure::new(
                    FailureKind::Connection,
                    format!("write failed: {err}"),
                ));
            }
            wbuf.clear();
        }
        if in_flight.is_empty() {
            break None;
        }
        // Read until at least one reply is in.
        let mut replies = 0u64;
        let mut read_at = Instant::now();
        let failure = loop {
            // Frames are read in place and the buffer advanced once per
            // pass. Replies scheduled together and read together have the
            // same latency, so each run of them is one histogram update.
            let mut at = 0;
            let mut run: Option<(Instant, u64)> = None;
            let decoded = loop {
                let (payload, used) = match next_frame(&codec, &rbuf[at..]) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break Ok(()),
                    Err(err) => break Err(err),
                };
                at += used;
                if payload.is_empty() {
                    continue;
                }
                // Every request is answered by exactly one frame, so a
                // wrong frame still frees its request's slot.
                let Some(scheduled) = in_flight.pop_front() else {
                    errors.add(Failure::new(
                        FailureKind::Protocol,
                        format!("unsolicited frame: {}", describe(payload)),
                    ));
                    continue;
                };
                replies += 1;
                if payload.starts_with(SAY_PREFIX) || is_say(payload) {
                    completed += 1;
                    run = match run {
                        Some((at, n)) if at == scheduled => Some((at, n + 1)),
                        Some((at, n)) => {
                            histogram.record_n(read_at - at, n);
                            Some((scheduled, 1))
                        }
                        None => Some((scheduled, 1)),
                    };
                } else {
                    errors.add(Failure::new(
                        FailureKind::Protocol,
                        format!("expected an echo, got {}", describe(payload)),
                    ));
                }
            };
            if let Some((at, n)) = run {
                histogram.record_n(read_at - at, n);
            }
            rbuf.advance(at);
            if let Err(err) = decoded {
                return fail(
                    Failure::wire(&err),
                    in_flight.len(),
                    errors,
                    histogram,
                    completed,
                    finished,
                );
            }
            if replies > 0 {
                break None;
            }
            if rbuf.capacity() - rbuf.len() < MIN_READ_ROOM {
                rbuf.reserve(READ_CHUNK);
            }
            // One timer per connection, re-armed only when it fires before
            // its time: a timeout per read (arming and clearing a timer
            // entry each time) was 8% of the bench's instructions per
            // message at pipeline 1 (callgrind). No read for
            // REPLY_TIMEOUT since the wait began or the last read is a
            // loss, as before.
            let read = tokio::select! {
                biased;
                read = io.read_buf(&mut rbuf) => Ok(read),
                () = &mut stall => Err(()),
            };
            if read.is_err() {
                // Due REPLY_TIMEOUT after the wait began or the last read;
                // compared with the timer's own deadline, so no clock is
                // read here.
                let due = tokio::time::Instant::from_std(read_at + REPLY_TIMEOUT);
                if stall.deadline() < due {
                    stall.as_mut().reset(due);
                    continue;
                }
            }
            match read {
                Ok(Ok(0)) => {
                    break Some(Failure::new(
                        FailureKind::Connection,
                        "the server closed the connection with requests in flight",
                    ));
                }
                Ok(Ok(_)) => read_at = Instant::now(),
                Ok(Err(err)) => {
                    break Some(Failure::new(
                        FailureKind::Connection,
                        format!("read failed: {err}"),
                    ));
                }
                Err(_) => {
                    break Some(Failure::new(
                        FailureKind::Lost,
                        format!("no reply within {} s", REPLY_TIMEOUT.as_secs()),
                    ));
                }
            }
        };
        if let Some(failure) = failure {
            break Some(failure);
        }
        finished = read_at;
        counter.fetch_add(replies, Ordering::Relaxed);
        now = read_at;
    };
    if let Some(failure) = broken {
        return fail(
            failure,
            in_flight.len(),
            errors,
            histogram,
            completed,
            finished,
        );
    }
    if let Some(bye) = &orders.bye {
        // The conversation is over; how the server takes the goodbye is not
        // part of the measurement.
        let _ = io.write_all(bye.as_bytes()).await;
    }
    let _ = io.shutdown().await;
    Outcome {
        histogram,
        completed,
        errors,
        finished,
    }
}

/// Counts `failure`, and every request still in flight as lost.
fn fail(
    failure: Failure,
    in_flight: usize,
    mut errors: ErrorSummary,
    histogram: LatencyHistogram,
    completed: u64,
    finished: Instant,
) -> Outcome {
    let lost = in_flight as u64;
    let kind = failure.kind;
    errors.add(failure);
    // A timeout already counted one of them.
    let already = u64::from(kind == FailureKind::Lost);
    errors.add_n(
        Failure::new(FailureKind::Lost, format!("{lost} requests in flight lost")),
        lost.saturating_sub(already),
    );
    Outcome {
        histogram,
        completed,
        errors,
        finished,
    }
}

/// The slow path: a reply that does not start like a `say` may still be
/// one (a server that orders its fields differently).
fn is_say(payload: &[u8]) -> bool {
    matches!(
        decode_message::<ServerMessage>(payload),
        Ok(ServerMessage::Say { .. })
    )
}

/// What a wrong frame was, for the error text: its type, or the server's
/// error. Never its whole payload.
pub(super) fn describe(payload: &[u8]) -> String {
    match decode_message::<ServerMessage>(payload) {
        Ok(ServerMessage::Error { code, text }) => {
            format!("an error: {} ({code})", porter_wire::text::printable(&text))
        }
        Ok(message) => format!("a {}", message.type_name()),
        Err(err) => format!("an invalid frame ({err})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_echo_and_the_verbatim_echo_both_pass_the_prefix_check() {
        let codec = FrameCodec::new();
        let request = EncodedFrame::message(
            &codec,
            &ClientMessage::Say {
                text: "hi".into(),
                to: None,
            },
        )
        .unwrap();
        assert!(request.payload().starts_with(SAY_PREFIX));
        let reply = EncodedFrame::message(&codec, &ServerMessage::say("hi", "server")).unwrap();
        assert!(reply.payload().starts_with(SAY_PREFIX));
    }

    /// The per-connection timer re-arms itself while replies keep coming
    /// and reports the requests in flight as lost once none has come for
    /// REPLY_TIMEOUT (the paused clock jumps ahead when all tasks wait).
    #[tokio::test(start_paused = true)]
    async fn a_server_that_stops_answering_loses_what_is_in_flight() {
        let (client, _silent_server) = tokio::io::duplex(64 * 1024);
        let request = EncodedFrame::message(
            &FrameCodec::new(),
            &ClientMessage::Say {
                text: "hi".into(),
                to: None,
            },
        )
        .unwrap();
        let orders = Orders {
            request,
            bye: None,
            pipeline: 3,
            quota: Some(3),
            deadline: None,
        };
        let ready = Ready {
            io: client,
            read_buf: BytesMut::new(),
            token: None,
        };
        let outcome = converse(ready, orders, Instant::now(), &AtomicU64::new(0)).await;
        assert_eq!(outcome.completed, 0);
        assert_eq!(outcome.errors.lost, 3, "{:?}", outcome.errors);
        assert!(
            outcome.errors.samples[0].contains("no reply within 10 s"),
            "{:?}",
            outcome.errors
        );
    }

    #[test]
    fn a_say_with_other_field_order_is_still_an_echo_and_an_error_is_not() {
        assert!(is_say(br#"{"from":"server","text":"hi","type":"say"}"#));
        assert!(!is_say(br#"{"type":"error","code":"busy","text":"busy"}"#));
        assert!(describe(br#"{"type":"error","code":"busy","text":"full"}"#).contains("busy"));
    }
}
