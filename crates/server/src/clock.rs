//! Time as the server reads and writes it: one [`Clock`] for "now" (sessions,
//! names, the room's lines), and RFC 3339 for dates on the wire and in the
//! admin commands.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use porter_store::UnixTime;

/// Where the server reads "now" for sessions and names, as Unix seconds.
///
/// The store never reads a clock itself; the server passes it this one's
/// time. Tests inject a clock they move by hand, so expiry is tested without
/// sleeping. The default is the system clock.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> UnixTime + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
                UnixTime::try_from(d.as_secs()).unwrap_or(UnixTime::MAX)
            })
        }))
    }

    /// A clock that asks `now` for the time.
    pub fn new(now: impl Fn() -> UnixTime + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// The current time.
    pub fn now(&self) -> UnixTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-02T08:00:00Z`): how the server
/// writes `expires_at`, and how the admin commands show dates. A time
/// outside the calendar's range (years -9999 to 9999; the server's own
/// dates never are, since the session lifetime is capped) is shown as its
/// number of seconds.
pub fn rfc3339(time: UnixTime) -> String {
    jiff::Timestamp::from_second(time).map_or_else(|_| time.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
