//! Dead sessions (and old operator actions) are deleted from the store at
//! start and every [`SESSION_PURGE_INTERVAL`]: they are already refused at
//! login, so this only keeps the tables and `porter sessions list` from
//! growing forever.

use std::time::Duration;

use porter_store::Store;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::shutdown::Shutdown;

/// How often a running server deletes expired and revoked sessions from its
/// store (it also does so once at start). Dead sessions are already refused
/// at login, so this only keeps the table and `porter sessions list` from
/// growing forever: hourly is plenty for that, and each purge is a single
/// `DELETE` that scans the table while holding the write lock.
pub const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Deletes the store's dead sessions as of `clock`'s now, and logs the
/// outcome. Never fails: a store that cannot purge now may next time, and
/// live sessions do not depend on it.
pub(crate) async fn purge_sessions(store: &dyn Store, clock: &Clock) {
    let now = clock.now();
    match store.purge_sessions(now).await {
        Ok(0) => debug!("no sessions to purge"),
        Ok(count) => info!(count, "sessions purged"),
        Err(err) => warn!(cause = %err, "session purge failed"),
    }
    // Every instance polls every second: an hour-old action was obeyed long
    // ago (or concerned no one).
    match store
        .purge_operator_actions(now.saturating_sub(OPERATOR_ACTIONS_KEPT))
        .await
    {
        Ok(0) => {}
        Ok(count) => debug!(count, "operator actions purged"),
        Err(err) => warn!(cause = %err, "operator action purge failed"),
    }
}

/// How long operator actions are kept, in seconds.
const OPERATOR_ACTIONS_KEPT: i64 = 60 * 60;

/// Purges the store's dead sessions every `period` (the first time one
/// `period` from now: `run` has just purged) until the server shuts down.
///
/// A graceful stop ends the wait between purges but lets a purge in flight
/// finish (it is one short statement, and a half-awaited store call is not
/// worth the doubt); the hard stop ends it at once.
pub(crate) fn spawn_session_purge(
    store: porter_store::SharedStore,
    clock: Clock,
    period: Duration,
    shutdown: &Shutdown,
) {
    let graceful = shutdown.graceful.clone();
    let abort = shutdown.abort.clone();
    shutdown.tracker.spawn(async move {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // A purge that ran late (a store held busy) is not followed by a
        // burst of catch-up purges.
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = graceful.cancelled() => break,
                _ = every.tick() => {}
            }
            tokio::select! {
                biased;
                () = abort.cancelled() => break,
                () = purge_sessions(store.as_ref(), &clock) => {}
            }
        }
        debug!("session purge stopped");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    use porter_store::{SharedStore, SqliteStore};
    use tokio::sync::mpsc::{self, UnboundedReceiver};
    use tokio::time::timeout;

    /// Bound on every wait, so a broken purge task fails the test.
    const WAIT: Duration = Duration::from_secs(20);

    /// A store holding alice's sessions: one live until 1000, one expired
    /// at 100 and one revoked.
    async fn store_with_dead_sessions() -> SharedStore {
        let store = SqliteStore::open_in_memory().await.unwrap();
        store.create_user("alice", "$h", 0).await.unwrap();
        store
            .create_session(&[1; 32], "alice", 0, 1000)
            .await
            .unwrap();
        store
            .create_session(&[2; 32], "alice", 0, 100)
            .await
            .unwrap();
        store
            .create_session(&[3; 32], "alice", 0, 1000)
            .await
            .unwrap();
        assert!(store.revoke_session(&[3; 32], 10).await.unwrap());
        store.shared()
    }

    /// A clock fixed at `now` that reports every reading: each purge reads
    /// it once, just before its `DELETE`.
    fn reporting_clock(now: i64) -> (Clock, UnboundedReceiver<()>) {
        let (read, reads) = mpsc::unbounded_channel();
        let clock = Clock::new(move || {
            let _ = read.send(());
            now
        });
        (clock, reads)
    }

    /// Ends the task gracefully and waits for it.
    async fn stop(shutdown: &Shutdown) {
        shutdown.graceful.cancel();
        shutdown.tracker.close();
        timeout(WAIT, shutdown.tracker.wait())
            .await
            .expect("the purge task did not stop on graceful shutdown");
    }

    #[tokio::test]
    async fn the_periodic_purge_deletes_dead_sessions_and_keeps_live_ones() {
        let store = store_with_dead_sessions().await;
        let (clock, mut reads) = reporting_clock(500);
        let shutdown = Shutdown::default();
        spawn_session_purge(store.clone(), clock, Duration::from_millis(10), &shutdown);

        timeout(WAIT, reads.recv())
            .await
            .expect("no purge within the wait")
            .unwrap();
        // A purge that has read the clock is finished before the task ends.
        stop(&shutdown).await;
        let left = store.list_sessions(None).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].is_active(500), "{left:?}");
    }

    #[tokio::test]
    async fn the_periodic_purge_waits_a_period_first_and_stops_on_shutdown() {
        let store = store_with_dead_sessions().await;
        let (clock, mut reads) = reporting_clock(500);
        let shutdown = Shutdown::default();
        // Paused only now: the store's own threads must not race a paused
        // clock while it is set up.
        tokio::time::pause();
        spawn_session_purge(store.clone(), clock, SESSION_PURGE_INTERVAL, &shutdown);
        // The task runs on this thread: let it start its timer, then act on
        // the time that passed.
        tokio::task::yield_now().await;
        tokio::time::advance(SESSION_PURGE_INTERVAL / 2).await;
        tokio::task::yield_now().await;
        tokio::time::resume();
        stop(&shutdown).await;
        assert!(reads.try_recv().is_err(), "purged before the first period");
        assert_eq!(store.list_sessions(None).await.unwrap().len(), 3);
    }
}
