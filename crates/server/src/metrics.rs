//! What the server counts, for an operator's graphs: the name, kind, labels
//! and meaning of every metric, in one place.
//!
//! The server records through the `metrics` facade only. Installing a
//! recorder (the Prometheus exporter of `porter serve --metrics`) is the
//! caller's business; with none installed, every call below does nothing
//! but a check.
//!
//! Cost on the hot path, which must stay unmeasurable:
//! - Events of a connection's life (accepted, refused, closed, logins,
//!   throttling, errors sent) go through the facade's macros with literal
//!   names and label values, which build their key in a `static`: no
//!   allocation, one lookup in the recorder's registry per event.
//! - Per-message counts (messages and bytes each way, lines served) are
//!   never recorded per message: a connection adds them up in plain fields
//!   (`Tally`) and hands them to handles registered once per server
//!   (`Traffic`) when it is about to wait for its client, that is once
//!   per batch of reads and writes, and when it ends.

use std::time::Duration;

use metrics::{
    Counter, Gauge, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use porter_wire::{ErrorCode, ServiceKind};

/// Counter: connections accepted and given a handler (not those refused).
pub const CONNECTIONS_ACCEPTED: &str = "porter_connections_accepted_total";
/// Counter: connections refused with `error{busy}`, by `limit`:
/// `connections` (--max-connections), `address` (--max-per-address),
/// `startups` (--max-startups) or `user` (--max-sessions-per-user).
pub const CONNECTIONS_REFUSED: &str = "porter_connections_refused_total";
/// Counter: connections that ended, by `reason` (`clean_bye`, `eof`,
/// `idle_timeout`, `queue_full`, ...; see `close::Reason::label`).
pub const CONNECTIONS_CLOSED: &str = "porter_connections_closed_total";
/// Counter: frames received from clients (keep-alives included).
pub const MESSAGES_RECEIVED: &str = "porter_messages_received_total";
/// Counter: frames sent to clients (replies, room lines, errors).
pub const MESSAGES_SENT: &str = "porter_messages_sent_total";
/// Counter: bytes read from clients.
pub const BYTES_RECEIVED: &str = "porter_bytes_received_total";
/// Counter: bytes written to clients.
pub const BYTES_SENT: &str = "porter_bytes_sent_total";
/// Counter: `--auth password` logins, by `outcome`: `ok`, `registered`,
/// `resumed` (a session token), `bad_password`, `unknown_user`,
/// `session_invalid`.
pub const LOGINS: &str = "porter_logins_total";
/// Counter: handshakes ended by throttling, by `what`: `login` (failed
/// passwords per address or user) or `registration` (new accounts per
/// address).
pub const THROTTLED: &str = "porter_throttled_total";
/// Counter: lines served (`say`), by `service`: `echo` or `chat`.
pub const LINES: &str = "porter_lines_total";
/// Counter: `error` frames sent to clients, by `code` (the protocol's
/// error codes, docs/PROTOCOL.md), busy refusals at accept excepted.
pub const PROTOCOL_ERRORS: &str = "porter_protocol_errors_total";
/// Gauge: connections being served (from accept to close).
pub const CONNECTIONS: &str = "porter_connections";
/// Gauge: clients past `ready`.
pub const PARTICIPANTS: &str = "porter_participants";
/// Gauge: connections between accept and `ready`.
pub const HANDSHAKES: &str = "porter_handshakes";
/// Histogram: seconds from accept to `ready`.
pub const HANDSHAKE_SECONDS: &str = "porter_handshake_duration_seconds";
/// Histogram: seconds one Argon2id hash or verification took on its thread
/// (not the wait for a hashing slot).
pub const ARGON2_SECONDS: &str = "porter_argon2_duration_seconds";

/// The suffix of every duration histogram, for an exporter to give them
/// [`DURATION_BUCKETS`].
pub const DURATION_SUFFIX: &str = "_duration_seconds";

/// Bucket bounds, in seconds, for the duration histograms: a handshake
/// without a password takes well under a millisecond, an Argon2 hash at
/// the default cost about 20 ms, a person typing a password seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Gives every metric its description and unit, for the exporter's
/// `# HELP` lines. Called once by `run`.
pub(crate) fn describe() {
    describe_counter!(
        CONNECTIONS_ACCEPTED,
        Unit::Count,
        "Connections accepted and served"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        Unit::Count,
        "Connections refused with busy, by limit"
    );
    describe_counter!(
        CONNECTIONS_CLOSED,
        Unit::Count,
        "Connections ended, by reason"
    );
    describe_counter!(
        MESSAGES_RECEIVED,
        Unit::Count,
        "Frames received from clients"
    );
    describe_counter!(MESSAGES_SENT, Unit::Count, "Frames sent to clients");
    describe_counter!(BYTES_RECEIVED, Unit::Bytes, "Bytes read from clients");
    describe_counter!(BYTES_SENT, Unit::Bytes, "Bytes written to clients");
    describe_counter!(LOGINS, Unit::Count, "Password-mode logins, by outcome");
    describe_counter!(THROTTLED, Unit::Count, "Handshakes ended by throttling");
    describe_counter!(LINES, Unit::Count, "Lines served, by service");
    describe_counter!(PROTOCOL_ERRORS, Unit::Count, "Error frames sent, by code");
    describe_gauge!(CONNECTIONS, Unit::Count, "Connections being served");
    describe_gauge!(PARTICIPANTS, Unit::Count, "Clients past ready");
    describe_gauge!(HANDSHAKES, Unit::Count, "Handshakes in progress");
    describe_histogram!(
        HANDSHAKE_SECONDS,
        Unit::Seconds,
        "Time from accept to ready"
    );
    describe_histogram!(
        ARGON2_SECONDS,
        Unit::Seconds,
        "Time of one Argon2id computation"
    );
}

/// The handles of the per-connection and per-message metrics, registered
/// once when the server starts (so a connection never looks them up), and
/// cloned into each connection.
#[derive(Debug, Clone)]
pub(crate) struct Traffic {
    messages_received: Counter,
    messages_sent: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    lines: Counter,
    pub(crate) connections: Gauge,
    pub(crate) participants: Gauge,
    pub(crate) handshakes: Gauge,
}

impl Traffic {
    /// The handles of a server running `service`.
    pub(crate) fn register(service: ServiceKind) -> Traffic {
        Traffic {
            messages_received: counter!(MESSAGES_RECEIVED),
            messages_sent: counter!(MESSAGES_SENT),
            bytes_received: counter!(BYTES_RECEIVED),
            bytes_sent: counter!(BYTES_SENT),
            lines: match service {
                ServiceKind::Echo => counter!(LINES, "service" => "echo"),
                ServiceKind::Chat => counter!(LINES, "service" => "chat"),
            },
            connections: gauge!(CONNECTIONS),
            participants: gauge!(PARTICIPANTS),
            handshakes: gauge!(HANDSHAKES),
        }
    }

    /// Handles that record nothing, for a connection not (yet) counted.
    pub(crate) fn none() -> Traffic {
        Traffic {
            messages_received: Counter::noop(),
            messages_sent: Counter::noop(),
            bytes_received: Counter::noop(),
            bytes_sent: Counter::noop(),
            lines: Counter::noop(),
            connections: Gauge::noop(),
            participants: Gauge::noop(),
            handshakes: Gauge::noop(),
        }
    }

    /// Adds what `tally` counted and clears it.
    pub(crate) fn report(&self, tally: &mut Tally) {
        if *tally == Tally::default() {
            return;
        }
        let Tally {
            messages_received,
            messages_sent,
            bytes_received,
            bytes_sent,
            lines,
        } = std::mem::take(tally);
        self.messages_received.increment(messages_received);
        self.messages_sent.increment(messages_sent);
        self.bytes_received.increment(bytes_received);
        self.bytes_sent.increment(bytes_sent);
        self.lines.increment(lines);
    }
}

/// One connection's counts since they were last reported: plain integers,
/// so that counting a message costs an addition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) messages_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) lines: u64,
}

/// A gauge raised while this lives: a connection, a handshake, a
/// participant.
#[derive(Debug)]
pub(crate) struct Present(Gauge);

impl Present {
    pub(crate) fn new(gauge: &Gauge) -> Present {
        gauge.increment(1.0);
        Present(gauge.clone())
    }
}

impl Drop for Present {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Records how long a handshake took.
pub(crate) fn handshake_took(elapsed: Duration) {
    histogram!(HANDSHAKE_SECONDS).record(elapsed);
}

/// Records how long one Argon2id computation took.
pub(crate) fn argon2_took(elapsed: Duration) {
    histogram!(ARGON2_SECONDS).record(elapsed);
}

/// Counts an accepted connection.
pub(crate) fn accepted() {
    counter!(CONNECTIONS_ACCEPTED).increment(1);
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Connections,
    Address,
    Startups,
    User,
}

/// Counts a `busy` refusal.
pub(crate) fn refused(limit: Limit) {
    // One literal per label value: the key is built once, in a static.
    match limit {
        Limit::Connections => counter!(CONNECTIONS_REFUSED, "limit" => "connections"),
        Limit::Address => counter!(CONNECTIONS_REFUSED, "limit" => "address"),
        Limit::Startups => counter!(CONNECTIONS_REFUSED, "limit" => "startups"),
        Limit::User => counter!(CONNECTIONS_REFUSED, "limit" => "user"),
    }
    .increment(1);
}

/// How a password-mode login ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Login {
    Ok,
    Registered,
    Resumed,
    BadPassword,
    UnknownUser,
    SessionInvalid,
}

/// Counts a login outcome.
pub(crate) fn login(outcome: Login) {
    match outcome {
        Login::Ok => counter!(LOGINS, "outcome" => "ok"),
        Login::Registered => counter!(LOGINS, "outcome" => "registered"),
        Login::Resumed => counter!(LOGINS, "outcome" => "resumed"),
        Login::BadPassword => counter!(LOGINS, "outcome" => "bad_password"),
        Login::UnknownUser => counter!(LOGINS, "outcome" => "unknown_user"),
        Login::SessionInvalid => counter!(LOGINS, "outcome" => "session_invalid"),
    }
    .increment(1);
}

/// What throttling refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Throttled {
    Login,
    Registration,
}

/// Counts a handshake ended by throttling.
pub(crate) fn throttled(what: Throttled) {
    match what {
        Throttled::Login => counter!(THROTTLED, "what" => "login"),
        Throttled::Registration => counter!(THROTTLED, "what" => "registration"),
    }
    .increment(1);
}

/// Counts an `error` frame sent with `code`.
pub(crate) fn error_sent(code: ErrorCode) {
    match code {
        ErrorCode::FrameTooLarge => counter!(PROTOCOL_ERRORS, "code" => "frame_too_large"),
        ErrorCode::InvalidMessage => counter!(PROTOCOL_ERRORS, "code" => "invalid_message"),
        ErrorCode::UnknownType => counter!(PROTOCOL_ERRORS, "code" => "unknown_type"),
        ErrorCode::Unexpected => counter!(PROTOCOL_ERRORS, "code" => "unexpected"),
        ErrorCode::BadCredentials => counter!(PROTOCOL_ERRORS, "code" => "bad_credentials"),
        ErrorCode::SessionInvalid => counter!(PROTOCOL_ERRORS, "code" => "session_invalid"),
        ErrorCode::InvalidAnswer => counter!(PROTOCOL_ERRORS, "code" => "invalid_answer"),
        ErrorCode::RateLimited => counter!(PROTOCOL_ERRORS, "code" => "rate_limited"),
        ErrorCode::Timeout => counter!(PROTOCOL_ERRORS, "code" => "timeout"),
        ErrorCode::Busy => counter!(PROTOCOL_ERRORS, "code" => "busy"),
        ErrorCode::UnknownUser => counter!(PROTOCOL_ERRORS, "code" => "unknown_user"),
        ErrorCode::Unavailable => counter!(PROTOCOL_ERRORS, "code" => "unavailable"),
        ErrorCode::Revoked => counter!(PROTOCOL_ERRORS, "code" => "revoked"),
        // Never sent; a code added to the wire crate later lands here
        // until it has its own label.
        _ => counter!(PROTOCOL_ERRORS, "code" => "other"),
    }
    .increment(1);
}
