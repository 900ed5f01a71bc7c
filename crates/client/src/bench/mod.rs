//! `porter bench`: load a Porter server (or the bare baseline) and measure
//! it, in the manner of redis-benchmark, structured like quinn's perf tool.
//!
//! - [`BenchOptions`] and [`run`]: connections, requests in flight per
//!   connection, message size, a duration or a message count; the echo or
//!   chat service; `--auth password` adds a login phase measured apart.
//! - [`IdleOptions`] and [`run_idle`]: hold many connections past the
//!   handshake, for the memory measurement.
//! - `stats`: latency histograms (HDR), one per task, merged at the end.
//! - `report`: what a run found, for people and for `--json`.
//! - `conn`: opening connections, through the client's own handshake.
//! - `echo`, `chat`, `login`, `idle`: the scenarios.
//!
//! # How latency is measured
//! Each connection keeps `pipeline` requests in flight. When replies free a
//! slot, the time they were read is the *scheduled* send time of the next
//! request, and latency is measured from it, not from the moment the write
//! actually happened: a client that is slow to send cannot hide the time
//! (coordinated omission). With one connection and a pipeline of one, each
//! request waits for the previous reply: a pure round-trip measurement.
//!
//! # The fast path
//! The request frame is encoded once per connection and copied into a
//! write buffer, one write per batch. Replies are framed by
//! [`porter_wire::FrameCodec`] straight off the socket buffer, and a reply
//! counts as an echo when its payload starts with `{"type":"say"` (what
//! both the server's serialisation and the baseline's verbatim echo
//! produce); anything else is decoded in full to say what it was, and
//! counted as a protocol error. Per message the client does a copy, a
//! prefix comparison and a histogram increment: no allocation, no lock,
//! no JSON parse.

mod chat;
mod conn;
mod echo;
mod idle;
mod login;
mod progress;
pub mod report;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use porter_wire::{AuthMode, ClientMessage, EncodedFrame, FrameCodec, Secret, ServiceKind};

pub use idle::{IdleOptions, IdleReport, run_idle};
pub use report::{ErrorSummary, LoginReport, Report, ServerCpu};
pub use stats::{LatencyHistogram, LatencySummary};

use crate::connect::ConnectOptions;
use conn::{Login, open_all};

/// Most connections one run may open (and the chat stamp's width).
pub const MAX_CONNS: usize = 99_999;

/// Most requests in flight per connection. Below the server's default
/// outgoing queue (1,024 frames): a connection reads its replies only
/// between batches, and a server whose queue for it fills up rightly
/// disconnects it as a client that does not read.
pub const MAX_PIPELINE: usize = 512;

/// Most request bytes in flight per connection: what loopback socket
/// buffers absorb while a connection writes a batch before reading.
pub const MAX_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

/// Text size when none is given, as redis-benchmark's default payload order.
pub const DEFAULT_SIZE: usize = 64;

/// How long a connection waits for its next reply (or a chat line for its
/// delivery) before counting what is in flight as lost.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections being opened (connect and handshake) at the same time, so a
/// large run does not overflow the server's accept backlog.
pub const OPEN_CONCURRENCY: usize = 256;

/// The password of bench users when none is given. Bench users are throwaway
/// accounts on a test server; a fixed password keeps runs repeatable.
pub const DEFAULT_BENCH_PASSWORD: &str = "porter-bench-password";

/// Token resumes per user in the login phase when not given: enough server
/// work to measure its CPU time with clock-tick resolution.
pub const DEFAULT_RESUMES_PER_USER: u64 = 20;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests stop being sent after this long; those in flight finish.
    Duration(Duration),
    /// This many messages in all, shared among the connections.
    Messages(u64),
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where the server is.
    pub connect: ConnectOptions,
    /// Connections.
    pub conns: usize,
    /// Requests in flight per connection (chat: lines not yet delivered to
    /// everyone, per connection).
    pub pipeline: usize,
    /// Bytes of text per message.
    pub size: usize,
    /// When to stop.
    pub limit: Limit,
    /// The service the server runs (it does not say; the bench must know).
    pub service: ServiceKind,
    /// How connections log in.
    pub auth: AuthMode,
    /// Password of the bench users (`--auth password`).
    pub password: Secret,
    /// Token resumes in the login phase; `None` for
    /// [`DEFAULT_RESUMES_PER_USER`] per user.
    pub resumes: Option<u64>,
    /// The server's process id, to report its CPU time per login and per
    /// resume (Linux `/proc`; same machine only).
    pub server_pid: Option<u32>,
    /// No handshake and no JSON replies expected beyond a verbatim echo: for
    /// the bare baseline server.
    pub raw: bool,
    /// Show a progress bar on the terminal.
    pub progress: bool,
}

impl BenchOptions {
    /// One connection, one request in flight, 64-byte messages, 1,000
    /// messages, echo, no authentication.
    pub fn new(connect: ConnectOptions) -> Self {
        BenchOptions {
            connect,
            conns: 1,
            pipeline: 1,
            size: DEFAULT_SIZE,
            limit: Limit::Messages(1_000),
            service: ServiceKind::Echo,
            auth: AuthMode::None,
            password: Secret::new(DEFAULT_BENCH_PASSWORD),
            resumes: None,
            server_pid: None,
            raw: false,
            progress: false,
        }
    }

    /// Checks that the options make a run that can work.
    ///
    /// # Errors
    /// [`BenchError::InvalidOption`] naming the option and why.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |text: String| Err(BenchError::InvalidOption(text));
        if self.conns == 0 || self.conns > MAX_CONNS {
            return invalid(format!("--conns must be 1 to {MAX_CONNS}"));
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return invalid(format!("--pipeline must be 1 to {MAX_PIPELINE}"));
        }
        match self.limit {
            Limit::Duration(duration) if duration.is_zero() => {
                return invalid("--duration must be more than zero".into());
            }
            Limit::Messages(messages) if messages < self.conns as u64 => {
                return invalid(format!(
                    "--messages ({messages}) must be at least --conns ({}): every connection sends",
                    self.conns
                ));
            }
            _ => {}
        }
        let frame = self.request_frame()?;
        if frame.as_bytes().len() * self.pipeline > MAX_IN_FLIGHT_BYTES {
            return invalid(format!(
                "--pipeline x --size is too large: at most {MAX_IN_FLIGHT_BYTES} bytes in flight per connection"
            ));
        }
        if self.auth == AuthMode::Ip {
            return invalid(
                "--auth ip is not benchmarked: bench connections come from one address".into(),
            );
        }
        if self.raw && self.auth != AuthMode::None {
            return invalid("--raw talks to the bare baseline: it takes no --auth".into());
        }
        if self.raw && self.service != ServiceKind::Echo {
            return invalid("--raw talks to the bare baseline: it only echoes".into());
        }
        if self.service == ServiceKind::Chat {
            if self.conns < 2 {
                return invalid("--service chat needs at least 2 connections".into());
            }
            if self.size < chat::STAMP_LEN {
                return invalid(format!(
                    "--service chat needs --size of at least {} (the send time travels in the text)",
                    chat::STAMP_LEN
                ));
            }
        }
        if self.resumes == Some(0) {
            return invalid("--resumes must be more than zero".into());
        }
        Ok(())
    }

    /// The echo request: a `say` of `size` bytes of text, framed.
    fn request_frame(&self) -> Result<EncodedFrame, BenchError> {
        let say = ClientMessage::Say {
            text: "x".repeat(self.size),
        };
        EncodedFrame::message(&FrameCodec::new(), &say).map_err(|err| {
            BenchError::InvalidOption(format!(
                "--size {} makes frames the server refuses: {err}",
                self.size
            ))
        })
    }

    fn target(&self) -> String {
        format!("{}:{}", self.connect.host, self.connect.port)
    }
}

/// Why a run could not be carried out. Failures *during* a run are not
/// errors: they are counted in the [`Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The options do not make a run that can work.
    #[error("{0}")]
    InvalidOption(String),

    /// Not one connection could be set up, so nothing was measured.
    #[error("no connection could be set up ({failed} failed; first: {first})")]
    NoConnection {
        /// Connections that failed.
        failed: u64,
        /// The first failure, as text.
        first: String,
    },
}

/// Runs a benchmark: the login phase with `--auth password`, then the
/// measured phase, and returns what it found.
///
/// # Errors
/// [`BenchError::InvalidOption`] before anything is sent, and
/// [`BenchError::NoConnection`] when no connection could be set up.
pub async fn run(options: &BenchOptions) -> Result<Report, BenchError> {
    options.validate()?;
    let (login_report, logins) = match options.auth {
        AuthMode::None | AuthMode::Ip => (None, vec![Login::Anonymous; options.conns]),
        AuthMode::Password => {
            let (report, tokens) = login::run(options).await;
            let logins = tokens.into_iter().map(Login::Token).collect::<Vec<_>>();
            if logins.is_empty() {
                return Err(BenchError::NoConnection {
                    failed: report.errors.total(),
                    first: report.errors.samples.first().cloned().unwrap_or_default(),
                });
            }
            (Some(report), logins)
        }
    };
    let (ready, mut errors) = open_all(&options.connect, logins, options.raw).await;
    if ready.is_empty() {
        return Err(BenchError::NoConnection {
            failed: errors.total(),
            first: errors.samples.first().cloned().unwrap_or_default(),
        });
    }
    let counter = Arc::new(AtomicU64::new(0));
    let bar = options
        .progress
        .then(|| progress::Progress::start(options.limit, counter.clone()));
    let request = options.request_frame()?;
    let frame_len = request.as_bytes().len() as f64;
    let measured = match options.service {
        ServiceKind::Echo => echo::run(options, request, ready, counter).await,
        ServiceKind::Chat => chat::run(options, ready, counter).await,
    };
    if let Some(bar) = bar {
        bar.finish().await;
    }
    errors.merge(measured.errors);
    let elapsed = measured.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(Report {
        target: options.target(),
        mode: if options.raw { "raw" } else { "porter" },
        service: options.service.as_str(),
        auth: options.auth.as_str(),
        conns: options.conns,
        pipeline: options.pipeline,
        size: options.size,
        elapsed_secs: elapsed,
        messages: measured.messages,
        messages_per_sec: measured.messages as f64 / elapsed,
        megabytes_per_sec: measured.messages as f64 * frame_len / elapsed / 1e6,
        deliveries: measured.deliveries,
        deliveries_per_sec: measured.deliveries.map(|d| d as f64 / elapsed),
        latency: measured.histogram.summary(),
        errors,
        login: login_report,
    })
}

/// What a scenario measured.
pub(crate) struct Measured {
    /// Echo replies, or chat lines sent.
    messages: u64,
    /// Chat lines received.
    deliveries: Option<u64>,
    /// From the start to the last reply or delivery.
    elapsed: Duration,
    histogram: LatencyHistogram,
    errors: ErrorSummary,
}

/// How `messages` are shared among `conns` connections: the first ones take
/// one more when it does not divide.
pub(crate) fn share(messages: u64, conns: usize, index: usize) -> u64 {
    let conns = conns as u64;
    messages / conns + u64::from((index as u64) < messages % conns)
}

/// Whether a connection that sent `sent` messages may send another at `now`.
pub(crate) fn may_send(
    quota: Option<u64>,
    deadline: Option<Instant>,
    sent: u64,
    now: Instant,
) -> bool {
    quota.is_none_or(|quota| sent < quota) && deadline.is_none_or(|deadline| now < deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BenchOptions {
        BenchOptions::new(ConnectOptions::new("127.0.0.1", 9))
    }

    fn refused(options: &BenchOptions) -> String {
        match options.validate() {
            Err(BenchError::InvalidOption(text)) => text,
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        options().validate().unwrap();
    }

    #[test]
    fn zero_connections_or_an_empty_pipeline_are_refused() {
        let o = BenchOptions {
            conns: 0,
            ..options()
        };
        assert!(refused(&o).contains("--conns"));
        let o = BenchOptions {
            pipeline: 0,
            ..options()
        };
        assert!(refused(&o).contains("--pipeline"));
        let o = BenchOptions {
            pipeline: MAX_PIPELINE + 1,
            ..options()
        };
        assert!(refused(&o).contains("--pipeline"));
    }

    #[test]
    fn fewer_messages_than_connections_are_refused() {
        let o = BenchOptions {
            conns: 10,
            limit: Limit::Messages(9),
            ..options()
        };
        assert!(refused(&o).contains("--messages"));
        let o = BenchOptions {
            limit: Limit::Duration(Duration::ZERO),
            ..options()
        };
        assert!(refused(&o).contains("--duration"));
    }

    #[test]
    fn a_message_the_server_would_refuse_is_refused_before_connecting() {
        let o = BenchOptions {
            size: 70_000,
            ..options()
        };
        assert!(refused(&o).contains("--size"));
        let o = BenchOptions {
            size: 60_000,
            pipeline: 100,
            ..options()
        };
        assert!(refused(&o).contains("in flight"));
    }

    #[test]
    fn raw_mode_takes_neither_auth_nor_chat() {
        let o = BenchOptions {
            raw: true,
            auth: AuthMode::Password,
            ..options()
        };
        assert!(refused(&o).contains("--raw"));
        let o = BenchOptions {
            raw: true,
            service: ServiceKind::Chat,
            conns: 2,
            ..options()
        };
        assert!(refused(&o).contains("--raw"));
    }

    #[test]
    fn chat_needs_two_participants_and_room_for_the_stamp() {
        let o = BenchOptions {
            service: ServiceKind::Chat,
            ..options()
        };
        assert!(refused(&o).contains("2 connections"));
        let o = BenchOptions {
            service: ServiceKind::Chat,
            conns: 2,
            size: chat::STAMP_LEN - 1,
            ..options()
        };
        assert!(refused(&o).contains("--size"));
    }

    #[test]
    fn messages_are_shared_with_the_remainder_on_the_first_connections() {
        let shares: Vec<u64> = (0..3).map(|i| share(10, 3, i)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!((0..7).map(|i| share(200, 7, i)).sum::<u64>(), 200);
    }
}
