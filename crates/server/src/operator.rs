//! Obeying operators while serving: every [`OPERATOR_POLL`] the server reads
//! the store's new operator actions (revoked sessions, removed users, kicks
//! made by the admin commands, possibly from another process or another
//! instance) and ends the live connections concerned.
//!
//! Polling a shared store is what lets every instance of a cluster obey the
//! same action without another channel between them; one indexed query a
//! second is cheap next to what a server does anyway. With a bus
//! (`--bus`), the admin commands also publish on its control subject, and
//! a nudge from there makes the watch read the store at once.

use std::sync::Arc;
use std::time::Duration;

use porter_store::SharedStore;
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::live::Live;
use crate::shutdown::Shutdown;

/// How often a server looks for new operator actions: an action reaches a
/// live connection within about this long (the contract is 2 seconds).
pub const OPERATOR_POLL: Duration = Duration::from_secs(1);

/// Actions read per poll at most; more wait for the next poll.
const ACTIONS_PER_POLL: u32 = 1000;

/// Where the watch starts: after the last action recorded so far, so that a
/// server that starts does not replay old actions. A store that cannot say
/// starts from the beginning (old actions concern no live connection yet).
pub(crate) async fn cursor_now(store: &SharedStore) -> i64 {
    match store.last_operator_action().await {
        Ok(last) => last,
        Err(err) => {
            warn!(cause = %err, "cannot read the last operator action; watching from the start");
            0
        }
    }
}

/// Polls `store` every `period` (and at once when `nudge` is notified)
/// from `cursor` and has `live` obey each new action, until the server
/// shuts down. A failed poll is logged and tried again at the next tick.
pub(crate) fn spawn_watch(
    store: SharedStore,
    live: Live,
    mut cursor: i64,
    period: Duration,
    nudge: Arc<Notify>,
    shutdown: &Shutdown,
) {
    let graceful = shutdown.graceful.clone();
    shutdown.tracker.spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                biased;
                () = graceful.cancelled() => break,
                _ = every.tick() => {}
                () = nudge.notified() => debug!("nudged to read operator actions"),
            }
            let actions = tokio::select! {
                biased;
                () = graceful.cancelled() => break,
                r = store.operator_actions_since(cursor, ACTIONS_PER_POLL) => r,
            };
            match actions {
                Ok(actions) => {
                    failing = false;
                    for action in &actions {
                        cursor = cursor.max(action.id);
                        let ended = live.obey(action);
                        info!(action = ?action.kind, user = %action.user, ended, "operator action");
                    }
                }
                // Once per outage, not once a second.
                Err(err) if !failing => {
                    failing = true;
                    warn!(cause = %err, "cannot read operator actions; retrying every poll");
                }
                Err(_) => {}
            }
        }
        debug!("operator watch stopped");
    });
}
