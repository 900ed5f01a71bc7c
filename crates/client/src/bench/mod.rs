//! `porter bench`: load a Porter server (or the bare baseline) and measure
//! it, in the manner of redis-benchmark, structured like quinn's perf tool.
//!
//! - [`Plan`] and [`run`]: connections, requests in flight per connection,
//!   message size, a duration or a message count; the echo or chat service;
//!   `auth password` adds a login phase measured apart. The plan is plain
//!   data checked with typed errors ([`PlanError`]); the command line owns
//!   the flags, their defaults and the messages that name them.
//! - [`IdlePlan`] and [`run_idle`]: hold many connections past the
//!   handshake, for the memory measurement.
//! - `stats`: latency histograms (HDR), one per task, merged at the end.
//! - `report`: what a run found, for people and for `--json`.
//! - `conn`: opening connections, through the client's own handshake.
//! - `cpu`: CPU time from `/proc`, and which side was the limit.
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
//! write buffer, one write per batch. Replies are read in place off the
//! socket buffer (their headers checked by [`porter_wire::FrameCodec`],
//! the buffer advanced once per pass), and a reply counts as an echo when
//! its payload starts with `{"type":"say"` (what both the server's
//! serialisation and the baseline's verbatim echo produce); anything else
//! is decoded in full to say what it was, and counted as a protocol error.
//! Per message the client does a copy and a prefix comparison; replies
//! scheduled and read together share one histogram update. No allocation,
//! no lock, no JSON parse, and one reply timer per connection rather than
//! one per read: about 280 user-space instructions per echoed message at 50
//! connections and pipeline 16 (`scripts/callgrind-bench.sh`), against
//! about 670 for the baseline server and about 630 for Porter's
//! (`scripts/callgrind-echo.sh`).
//!
//! # Who was the limit
//! The measured phase reads the bench's own CPU time and, given the
//! server's pid, the server's (`cpu`): the report says whether the bench
//! was saturated while the server had room (the figures are then the
//! bench's), the server was, or neither.

mod chat;
mod conn;
pub mod cpu;
mod echo;
mod idle;
mod login;
mod plan;
mod progress;
pub mod report;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use porter_wire::{AuthMode, ServiceKind};

pub use idle::{IdlePlan, IdleReport, MAX_IDLE_CONNS, run_idle};
pub use plan::{
    Limit, MAX_CONNS, MAX_IN_FLIGHT_BYTES, MAX_PIPELINE, MIN_CHAT_SIZE, Plan, PlanError, Resumes,
};
pub use report::{Bound, CpuUse, ErrorSummary, LoginReport, Report, ServerCpu};
pub use stats::{LatencyHistogram, LatencySummary};

use conn::{Login, open_all};

/// How long a connection waits for its next reply (or a chat line for its
/// delivery) before counting what is in flight as lost.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections being opened (connect and handshake) at the same time, so a
/// large run does not overflow the server's accept backlog.
pub const OPEN_CONCURRENCY: usize = 256;

/// Why a run could not be carried out. Failures *during* a run are not
/// errors: they are counted in the [`Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The plan does not make a run that can work.
    #[error(transparent)]
    Plan(#[from] PlanError),

    /// `--service chat`, and the server sent participants their own lines
    /// back: it runs the echo service, whose replies are no deliveries.
    #[error(
        "the server sends each line back to its sender: it is an echo server, not a chat \
         room (measure it with --service echo)"
    )]
    NotChat,

    /// Not one connection could be set up, so nothing was measured.
    #[error("no connection could be set up ({failed} failed; first: {first})")]
    NoConnection {
        /// Connections that failed.
        failed: u64,
        /// The first failure, as text.
        first: String,
    },
}

impl BenchError {
    /// No connection could be set up: `errors` says why.
    pub(crate) fn no_connection(errors: &ErrorSummary) -> Self {
        BenchError::NoConnection {
            failed: errors.total(),
            first: errors.samples.first().cloned().unwrap_or_default(),
        }
    }
}

/// Runs a benchmark: the login phase with `auth password`, then the
/// measured phase, and returns what it found.
///
/// # Errors
/// [`BenchError::Plan`] before anything is sent,
/// [`BenchError::NoConnection`] when no connection could be set up, and
/// [`BenchError::NotChat`] when `--service chat` meets an echo server.
pub async fn run(plan: &Plan) -> Result<Report, BenchError> {
    plan.check()?;
    let (login_report, logins) = match plan.auth {
        AuthMode::None | AuthMode::Ip => (None, vec![Login::Anonymous; plan.conns]),
        AuthMode::Password => {
            let (report, tokens) = login::run(plan).await;
            let logins = tokens.into_iter().map(Login::Token).collect::<Vec<_>>();
            if logins.is_empty() {
                return Err(BenchError::no_connection(&report.errors));
            }
            (Some(report), logins)
        }
    };
    let (ready, mut errors) = open_all(plan.dial(), logins, plan.raw).await;
    if ready.is_empty() {
        return Err(BenchError::no_connection(&errors));
    }
    let counter = Arc::new(AtomicU64::new(0));
    let bar = plan
        .progress
        .then(|| progress::Progress::start(plan.limit, counter.clone()));
    let request = plan.request_frame()?;
    let frame_len = request.as_bytes().len() as f64;
    let cpu_before = cpu::CpuSample::now(plan.server_pid);
    let measured = match plan.service {
        ServiceKind::Echo => Ok(echo::run(plan, request, ready, counter).await),
        ServiceKind::Chat => chat::run(plan, ready, counter).await,
    };
    let cpu = cpu_before.until(&cpu::CpuSample::now(plan.server_pid));
    if let Some(bar) = bar {
        bar.finish().await;
    }
    let measured = measured?;
    errors.merge(measured.errors);
    let elapsed = measured.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(Report {
        target: plan.target(),
        mode: if plan.raw { "raw" } else { "porter" },
        transport: if plan.tls.is_some() { "tls" } else { "tcp" },
        service: plan.service.as_str(),
        auth: plan.auth.as_str(),
        conns: plan.conns,
        pipeline: plan.pipeline,
        size: plan.size,
        elapsed_secs: elapsed,
        messages: measured.messages,
        messages_per_sec: measured.messages as f64 / elapsed,
        megabytes_per_sec: measured.messages as f64 * frame_len / elapsed / 1e6,
        deliveries: measured.deliveries,
        deliveries_per_sec: measured.deliveries.map(|d| d as f64 / elapsed),
        latency: measured.histogram.summary(),
        errors,
        login: login_report,
        cpu,
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

    #[test]
    fn messages_are_shared_with_the_remainder_on_the_first_connections() {
        let shares: Vec<u64> = (0..3).map(|i| share(10, 3, i)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!((0..7).map(|i| share(200, 7, i)).sum::<u64>(), 200);
    }
}
