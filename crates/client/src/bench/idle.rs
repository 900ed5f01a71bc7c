//! `porter bench --idle N`: open N connections, finish their handshakes,
//! and hold them, so that the server's memory per connection can be
//! measured from outside (the script reads its RSS before and after).

use std::future::Future;

use super::conn::{self, Login};
use super::{BenchError, ErrorSummary, MAX_CONNS, PlanError};
use crate::connect::ConnectOptions;
use crate::tls::Trust;

/// Most connections `--idle` holds: what one client's port range allows on
/// one address pair, with room to spare.
pub const MAX_IDLE_CONNS: usize = 50_000;

/// What to hold.
#[derive(Debug, Clone)]
pub struct IdlePlan {
    /// Where the server is.
    pub connect: ConnectOptions,
    /// Connections to hold.
    pub conns: usize,
    /// No handshake (the bare baseline).
    pub raw: bool,
    /// Over TLS, trusting the server so.
    pub tls: Option<Trust>,
}

impl IdlePlan {
    /// Checks that the count is in range.
    ///
    /// # Errors
    /// [`PlanError::IdleConns`].
    pub fn check(&self) -> Result<(), PlanError> {
        // The larger of the two: a run may open MAX_CONNS, so holding as
        // many is allowed too.
        let max = MAX_IDLE_CONNS.max(MAX_CONNS);
        if self.conns == 0 || self.conns > max {
            return Err(PlanError::IdleConns { max });
        }
        Ok(())
    }
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
/// [`BenchError::Plan`] for a count out of range, and
/// [`BenchError::NoConnection`] when no connection could be opened.
pub async fn run_idle<S: Future>(
    plan: &IdlePlan,
    on_ready: impl FnOnce(&IdleReport),
    stop: S,
) -> Result<IdleReport, BenchError> {
    plan.check()?;
    let logins = vec![Login::Anonymous; plan.conns];
    let dial = conn::Dial {
        connect: &plan.connect,
        tls: plan.tls.as_ref(),
    };
    let (held, errors) = conn::open_all(dial, logins, plan.raw).await;
    let report = IdleReport {
        ready: held.len(),
        errors,
    };
    if held.is_empty() {
        return Err(BenchError::no_connection(&report.errors));
    }
    on_ready(&report);
    stop.await;
    drop(held);
    Ok(report)
}
