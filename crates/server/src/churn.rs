//! Connection churn in the log, bounded: each address gets its connections
//! logged one by one up to a rate, and past it a summary line per window.
//!
//! Every connection writes a few lines (connected, handshake complete,
//! disconnected): a flood of connections from one address would otherwise
//! grow the log at that rate without bound, and bury what matters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// The window the rate is counted over.
const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at most; past it, new addresses are logged in full
/// (a spray of addresses is bounded by the connection caps instead).
const MAX_TRACKED: usize = 10_000;

/// Counts connections per address per window.
#[derive(Debug)]
pub(crate) struct ChurnLog {
    /// Connections logged one by one per address per window; 0 for all.
    per_window: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    seen: u32,
}

impl ChurnLog {
    pub(crate) fn new(per_window: u32) -> ChurnLog {
        ChurnLog {
            per_window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a new connection from `ip` at `now` is logged one by one.
    /// When a window in which some were not closes, says how many.
    pub(crate) fn logged(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_window == 0 {
            return true;
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(&ip) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.saturating_duration_since(w.start) < WINDOW);
            if windows.len() >= MAX_TRACKED {
                return true;
            }
        }
        let window = windows.entry(ip).or_insert(Window {
            start: now,
            seen: 0,
        });
        if now.saturating_duration_since(window.start) >= WINDOW {
            if window.seen > self.per_window {
                let quiet = window.seen - self.per_window;
                warn!(addr = %ip, connections = quiet, window_secs = WINDOW.as_secs(),
                    "more connections from this address were not logged one by one");
            }
            *window = Window {
                start: now,
                seen: 0,
            };
        }
        window.seen = window.seen.saturating_add(1);
        if window.seen == self.per_window + 1 {
            warn!(addr = %ip, logged = self.per_window, window_secs = WINDOW.as_secs(),
                "many connections from this address: the rest of this minute's are counted, not logged");
        }
        window.seen <= self.per_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_rate_connections_are_counted_and_the_next_window_logs_again() {
        let churn = ChurnLog::new(3);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let t0 = Instant::now();
        let logged: Vec<bool> = (0..5).map(|_| churn.logged(ip, t0)).collect();
        assert_eq!(logged, [true, true, true, false, false]);
        assert!(
            churn.logged(IpAddr::from([127, 0, 0, 2]), t0),
            "per address"
        );
        assert!(churn.logged(ip, t0 + WINDOW), "a new window");
    }

    #[test]
    fn zero_logs_every_connection() {
        let churn = ChurnLog::new(0);
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!((0..100).all(|_| churn.logged(ip, Instant::now())));
    }
}
