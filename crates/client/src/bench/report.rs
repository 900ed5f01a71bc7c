//! What a run found: errors as they are counted during the run, and the
//! report printed at the end, for people ([`std::fmt::Display`]) or for
//! machines (`--json`, through serde).

use std::fmt;

use serde::Serialize;

use super::stats::LatencySummary;

/// Error texts kept as examples; the rest are only counted.
pub const MAX_ERROR_SAMPLES: usize = 5;

/// What kind of thing went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Connecting failed, the server closed or reset, a socket error.
    Connection,
    /// The server sent something else than what the protocol promises.
    Protocol,
    /// A request got no reply (or a chat line no delivery) in time.
    Lost,
}

/// One failure, with a text safe to print (never a password or a token).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    /// Classifies a wire error: the stream broke, or the bytes were wrong.
    pub(crate) fn wire(err: &porter_wire::Error) -> Self {
        let kind = match err {
            porter_wire::Error::Io(_) | porter_wire::Error::Truncated { .. } => {
                FailureKind::Connection
            }
            _ => FailureKind::Protocol,
        };
        Failure::new(kind, err.to_string())
    }
}

/// Errors of a run: every one counted, the first few kept as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    /// Connections that could not be opened or broke: refused, reset, closed
    /// by the server, a handshake that failed to finish.
    pub connection: u64,
    /// Frames that were not what the protocol promises: not a `say`, not
    /// JSON, an `error` from the server, a delivery whose text was not ours.
    pub protocol: u64,
    /// Requests that never got their reply, or chat lines some participant
    /// never received, by the end of the run.
    pub lost: u64,
    /// The first few error texts, for a person to read.
    pub samples: Vec<String>,
}

impl ErrorSummary {
    /// All errors, of every kind.
    pub fn total(&self) -> u64 {
        self.connection + self.protocol + self.lost
    }

    /// Counts one failure.
    pub(crate) fn add(&mut self, failure: Failure) {
        self.add_n(failure, 1);
    }

    /// Counts `n` failures of the same kind and cause (lost requests of one
    /// connection).
    pub(crate) fn add_n(&mut self, failure: Failure, n: u64) {
        if n == 0 {
            return;
        }
        match failure.kind {
            FailureKind::Connection => self.connection += n,
            FailureKind::Protocol => self.protocol += n,
            FailureKind::Lost => self.lost += n,
        }
        if self.samples.len() < MAX_ERROR_SAMPLES {
            self.samples.push(failure.detail);
        }
    }

    /// Adds another task's errors.
    pub(crate) fn merge(&mut self, other: ErrorSummary) {
        self.connection += other.connection;
        self.protocol += other.protocol;
        self.lost += other.lost;
        let room = MAX_ERROR_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }
}

/// The password phase of `--auth password`: measured apart from the
/// conversation, because Argon2 bounds it by design.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoginReport {
    /// Bench users, one per connection.
    pub users: u64,
    /// Users registered (new password, hashed once).
    pub registrations: u64,
    /// Registrations per second, all users at once.
    pub registrations_per_sec: f64,
    /// Password logins (one Argon2 verification each).
    pub logins: u64,
    /// Password logins per second.
    pub logins_per_sec: f64,
    /// Token resumes (a hash of the token and a store lookup each).
    pub resumes: u64,
    /// Token resumes per second.
    pub resumes_per_sec: f64,
    /// The server's CPU time per login and per resume, when its process id
    /// was given.
    pub server_cpu: Option<ServerCpu>,
    /// Errors of this phase.
    pub errors: ErrorSummary,
}

/// Server CPU time (user + system, from `/proc/PID/stat`) per operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerCpu {
    /// Milliseconds per password login.
    pub ms_per_login: f64,
    /// Milliseconds per token resume.
    pub ms_per_resume: f64,
}

impl ServerCpu {
    /// How many times more CPU a login costs than a resume (the target is
    /// at least 100); `None` when resumes cost too little to measure.
    pub fn login_to_resume_ratio(&self) -> Option<f64> {
        (self.ms_per_resume > 0.0).then(|| self.ms_per_login / self.ms_per_resume)
    }
}

/// CPU each side used during the measured phase, as a share of one core
/// (user + system time over wall time; above 100 on several cores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuUse {
    /// The bench itself (`/proc/self/stat`).
    pub bench_percent: f64,
    /// The server, when its process id was given (`--server-pid`).
    pub server_percent: Option<f64>,
    /// Which side was the limit, when both are known.
    pub bound: Option<Bound>,
}

/// Which side limited a run (see [`super::cpu::bound`] for the marks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The bench was saturated and the server had room: the figures are
    /// the bench's, and a ratio of two servers means nothing.
    Bench,
    /// The server was saturated: the run measured it.
    Server,
    /// Neither was saturated (the machine was busy with other work, or the
    /// load is latency-bound, as with one connection).
    Neither,
}

impl Bound {
    /// The verdict line of the report.
    pub fn verdict(self) -> &'static str {
        match self {
            Bound::Bench => "bench-bound: the ratio is not meaningful",
            Bound::Server => "server-bound",
            Bound::Neither => "neither saturated",
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `host:port` as given.
    pub target: String,
    /// `porter` (handshake, JSON messages) or `raw` (the bare baseline).
    pub mode: &'static str,
    /// `tcp`, or `tls` (over TCP).
    pub transport: &'static str,
    /// `echo` or `chat`.
    pub service: &'static str,
    /// `none` or `password`.
    pub auth: &'static str,
    /// Connections.
    pub conns: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Bytes of text per message.
    pub size: usize,
    /// Length of the measured phase, in seconds.
    pub elapsed_secs: f64,
    /// Messages completed: echo replies received, or chat lines sent.
    pub messages: u64,
    /// Messages per second.
    pub messages_per_sec: f64,
    /// Megabytes (10^6 bytes) of request frames per second, headers
    /// included, in one direction.
    pub megabytes_per_sec: f64,
    /// Chat only: lines received by the other participants.
    pub deliveries: Option<u64>,
    /// Chat only: deliveries per second.
    pub deliveries_per_sec: Option<f64>,
    /// Echo: reply time minus scheduled send time. Chat: receive time minus
    /// the send time stamped in the line.
    pub latency: LatencySummary,
    /// Errors of the measured phase.
    pub errors: ErrorSummary,
    /// The password phase, with `--auth password`.
    pub login: Option<LoginReport>,
    /// CPU of the bench (and of the server with `--server-pid`) during the
    /// measured phase, and which one was the limit; `None` where
    /// `/proc/self/stat` cannot be read.
    pub cpu: Option<CpuUse>,
}

impl Report {
    /// The report as one line of JSON, for `--json`.
    pub fn to_json(&self) -> String {
        // Plain numbers, strings and options: serialisation cannot fail, but
        // say so in JSON rather than panic if it ever does.
        serde_json::to_string(self)
            .unwrap_or_else(|err| format!("{{\"error\":\"cannot serialise the report: {err}\"}}"))
    }

    /// Errors of the whole run, login phase included.
    pub fn total_errors(&self) -> u64 {
        self.errors.total() + self.login.as_ref().map_or(0, |login| login.errors.total())
    }
}

fn write_errors(f: &mut fmt::Formatter<'_>, label: &str, errors: &ErrorSummary) -> fmt::Result {
    writeln!(
        f,
        "{label:<13}{} (connection {}, protocol {}, lost {})",
        errors.total(),
        errors.connection,
        errors.protocol,
        errors.lost
    )?;
    for sample in &errors.samples {
        writeln!(f, "{:<13}  {sample}", "")?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "porter bench: {} {} on {}{} (auth {}), {} conns, pipeline {}, {} B messages",
            self.mode,
            self.service,
            self.target,
            if self.transport == "tls" {
                " over TLS"
            } else {
                ""
            },
            self.auth,
            self.conns,
            self.pipeline,
            self.size
        )?;
        if let Some(login) = &self.login {
            writeln!(
                f,
                "{:<13}{} users: {:.1} registrations/s, {:.1} logins/s, {} resumes at {:.1}/s",
                "login phase",
                login.users,
                login.registrations_per_sec,
                login.logins_per_sec,
                login.resumes,
                login.resumes_per_sec
            )?;
            if let Some(cpu) = &login.server_cpu {
                writeln!(
                    f,
                    "{:<13}{:.3} ms per login, {:.4} ms per resume (ratio {})",
                    "server cpu",
                    cpu.ms_per_login,
                    cpu.ms_per_resume,
                    cpu.login_to_resume_ratio()
                        .map_or_else(|| "not measurable".to_owned(), |r| format!("{r:.0}"))
                )?;
            }
            write_errors(f, "login errors", &login.errors)?;
        }
        writeln!(
            f,
            "{:<13}{} in {:.2} s: {:.0} msg/s, {:.2} MB/s",
            "messages",
            self.messages,
            self.elapsed_secs,
            self.messages_per_sec,
            self.megabytes_per_sec
        )?;
        if let (Some(deliveries), Some(rate)) = (self.deliveries, self.deliveries_per_sec) {
            writeln!(f, "{:<13}{deliveries}: {rate:.0}/s", "deliveries")?;
        }
        let l = &self.latency;
        writeln!(
            f,
            "{:<13}p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
            "latency", l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
        )?;
        if let Some(cpu) = &self.cpu {
            match (cpu.server_percent, cpu.bound) {
                (Some(server), Some(bound)) => writeln!(
                    f,
                    "{:<13}bench {:.0}%, server {server:.0}% of one core: {}",
                    "cpu",
                    cpu.bench_percent,
                    bound.verdict()
                )?,
                _ => writeln!(
                    f,
                    "{:<13}bench {:.0}% of one core (--server-pid PID adds the server's)",
                    "cpu", cpu.bench_percent
                )?,
            }
        }
        write_errors(f, "errors", &self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_all_counted_but_only_a_few_kept_as_text() {
        let mut errors = ErrorSummary::default();
        for i in 0..10 {
            errors.add(Failure::new(
                FailureKind::Connection,
                format!("refused {i}"),
            ));
        }
        errors.add_n(Failure::new(FailureKind::Lost, "no reply"), 7);
        let mut other = ErrorSummary::default();
        other.add(Failure::new(FailureKind::Protocol, "not a say"));
        errors.merge(other);
        assert_eq!(errors.connection, 10);
        assert_eq!(errors.lost, 7);
        assert_eq!(errors.protocol, 1);
        assert_eq!(errors.total(), 18);
        assert_eq!(errors.samples.len(), MAX_ERROR_SAMPLES);
        assert_eq!(errors.samples[0], "refused 0");
    }

    #[test]
    fn counting_zero_failures_changes_nothing() {
        let mut errors = ErrorSummary::default();
        errors.add_n(Failure::new(FailureKind::Lost, "no reply"), 0);
        assert_eq!(errors, ErrorSummary::default());
    }
}
