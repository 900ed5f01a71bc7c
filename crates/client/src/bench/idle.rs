//! `porter bench --idle N`: open N connections, finish their handshakes,
//! and hold them, so that the server's memory per connection can be
//! measured from outside (the script reads its RSS before and after).

use std::future::Future;

use super::conn::{self, Login};
use super::{BenchError, ErrorSummary, MAX_CONNS};
use crate::connect::ConnectOptions;

/// Most connections `--idle` holds: what one client's port range allows on
/// one address pair, with room to spare.
pub const MAX_IDLE_CONNS: usize = 50_000;

/// What to hold.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Where the server is.
    pub connect: ConnectOptions,
    /// Connections to hold.
    pub conns: usize,
    /// No handshake (the bare baseline).
    pub raw: bool,
}

/// How many connections are held, and what failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IdleReport {
    /// Connections past `ready` (or connected, with `raw`).
    pub ready: usize,
    /// Connections that failed.
    pub errors: ErrorSummary,
}

impl IdleReport {
    /// The report as one line of JSON, for `--json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|err| format!("{{\"error\":\"cannot serialise the report: {err}\"}}"))
    }
}

/// Opens the connections, calls `on_ready` once they are all up (or have
/// failed), then holds them until `stop` completes, and closes them.
///
/// # Errors
/// [`BenchError::InvalidOption`] for a count out of range, and
/// [`BenchError::NoConnection`] when no connection could be opened.
pub async fn run_idle<S: Future>(
    options: &IdleOptions,
    on_ready: impl FnOnce(&IdleReport),
    stop: S,
) -> Result<IdleReport, BenchError> {
    let max = MAX_IDLE_CONNS.max(MAX_CONNS);
    if options.conns == 0 || options.conns > max {
        return Err(BenchError::InvalidOption(format!(
            "--idle must be 1 to {max}"
        )));
    }
    let logins = vec![Login::Anonymous; options.conns];
    let (held, errors) = conn::open_all(&options.connect, logins, options.raw).await;
    let report = IdleReport {
        ready: held.len(),
        errors,
    };
    if held.is_empty() {
        return Err(BenchError::NoConnection {
            failed: report.errors.total(),
            first: report.errors.samples.first().cloned().unwrap_or_default(),
        });
    }
    on_ready(&report);
    stop.await;
    drop(held);
    Ok(report)
}
