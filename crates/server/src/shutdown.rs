//! Stopping the server in two steps.
//!
//! 1. `graceful` fires when the caller's shutdown future completes: the
//!    accept loop stops, and every connection (mid-handshake or not) queues
//!    `bye` and lets its writer drain.
//! 2. `abort` fires if that takes longer than the grace period: every writer
//!    and reader stops at once, so `run` returns within a bound even when
//!    clients do not read.
//!
//! The tracker knows every task the server spawned, so `run` can wait for
//! them all.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long the tasks get to end after the hard stop. They only have to
/// notice a cancelled token, so this is a safety net, not a wait.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// The shutdown signals and the tasks they govern.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shutdown {
    /// Say `bye` and finish writing.
    pub(crate) graceful: CancellationToken,
    /// Stop now; the parent of every connection's closer.
    pub(crate) abort: CancellationToken,
    /// Every connection and writer task.
    pub(crate) tracker: TaskTracker,
}

impl Shutdown {
    /// Fires `graceful`, waits up to `grace` for every task, then fires
    /// `abort` and waits a little more.
    pub(crate) async fn finish(&self, grace: Duration) {
        info!(tasks = self.tracker.len(), "shutdown started");
        self.graceful.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                tasks = self.tracker.len(),
                grace_ms = grace.as_millis() as u64,
                "grace period over, closing the remaining connections"
            );
            self.abort.cancel();
            if tokio::time::timeout(ABORT_WAIT, self.tracker.wait())
                .await
                .is_err()
            {
                warn!(
                    tasks = self.tracker.len(),
                    "tasks still running after the hard stop"
                );
            }
        }
        // Anything spawned from here on (nothing should be) stops at once.
        self.abort.cancel();
        info!("shutdown complete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_graceful_is_stopped_by_abort() {
        let shutdown = Shutdown::default();
        let abort = shutdown.abort.clone();
        let task = shutdown
            .tracker
            .spawn(async move { abort.cancelled().await });
        shutdown.finish(Duration::from_secs(5)).await;
        assert!(task.is_finished());
        assert!(shutdown.graceful.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_on_graceful_needs_no_abort() {
        let shutdown = Shutdown::default();
        let graceful = shutdown.graceful.clone();
        let abort = shutdown.abort.clone();
        let saw_abort = shutdown.tracker.spawn(async move {
            graceful.cancelled().await;
            abort.is_cancelled()
        });
        shutdown.finish(Duration::from_secs(5)).await;
        assert!(!saw_abort.await.unwrap());
    }
}
