//! The room's bus: how what is said in the room reaches every instance of
//! the server that hosts it, in one order.
//!
//! A [`Line`] on the bus is protocol-neutral (who, what, to whom, and where
//! it came from), not a frame: another instance, or another transport,
//! encodes it its own way. Its [`Origin`] names the instance and the member
//! that said it, so that the sender is left out of the fan-out on its own
//! instance and only there.
//!
//! The bus also gives room lines their place: each accepted room line gets
//! the next `seq` (1, 2, 3, ...) and its `at`, and the bus keeps the last
//! ones as the room's history, for newcomers.
//!
//! [`LocalBus`], the in-process bus, is the default: one instance, and a
//! line is delivered at once, on the publisher's thread, to the room's
//! [`Fanout`]. The bus between processes, `jetstream::JetStreamBus`
//! (`--bus nats://...`), implements the same trait: it takes the line, and
//! its own task delivers what the broker orders to each instance's fan-out.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use porter_store::UnixTime;
use porter_wire::EventKind;

use super::fanout::Fanout;
use crate::clock::Clock;

/// Who said a line, across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    /// The server instance it was said on.
    pub(crate) instance: InstanceId,
    /// The member of that instance's room who said it, or whom it is
    /// about (a join): left out of the fan-out. `None` when every member
    /// receives it.
    pub(crate) member: Option<MemberId>,
}

/// A server instance, unique among the instances sharing a bus: random at
/// start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct InstanceId(pub(crate) u64);

impl InstanceId {
    /// A fresh random id. Randomness failing is not worth failing the
    /// server for: the id only needs to differ from the other instances',
    /// and the clock is a fair second source.
    pub(crate) fn random() -> InstanceId {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes = (nanos as u64).to_le_bytes();
        }
        InstanceId(u64::from_le_bytes(bytes))
    }
}

/// A member of one instance's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MemberId(pub(crate) u64);

/// Hands out member ids, unique within one instance.
#[derive(Debug, Default)]
pub(crate) struct MemberIds(AtomicU64);

impl MemberIds {
    pub(crate) fn next(&self) -> MemberId {
        MemberId(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// What was said, or what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A line of the room, for everyone: it gets a `seq` and goes into the
    /// history.
    Say {
        /// The name it is shown under.
        from: Arc<str>,
        /// What was said.
        text: Arc<str>,
        /// Said by a member (shown on the server's console too), not by the
        /// server itself.
        by_member: bool,
    },
    /// A private line, for the members called `to` alone: no `seq`, no
    /// history.
    Private {
        /// Who said it.
        from: Arc<str>,
        /// Who it is for.
        to: Arc<str>,
        /// What was said.
        text: Arc<str>,
    },
    /// Someone entered or left.
    Event {
        /// What happened.
        kind: EventKind,
        /// To whom.
        user: Arc<str>,
    },
}

/// What travels on the bus.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Where it came from; its member, if any, is left out of the fan-out.
    pub(crate) origin: Origin,
    /// What it says.
    pub(crate) body: Body,
    /// Its place among the room's lines, given by the bus to [`Body::Say`]
    /// only.
    pub(crate) seq: Option<u64>,
    /// When the bus took it, Unix seconds.
    pub(crate) at: UnixTime,
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text is the participants' business, not the log's.
        f.debug_struct("Line")
            .field("origin", &self.origin)
            .field("seq", &self.seq)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Why the bus did not take a line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    /// The bus is not connected to the room yet, or no longer.
    #[error("the room's bus is not attached")]
    Detached,
    /// The broker cannot be reached now: the line reached no one, and the
    /// sender is told `unavailable`. The bus reconnects by itself.
    #[error("the room's broker is unavailable")]
    Unavailable,
}

/// Carries the room's lines to every instance, in one order, and keeps the
/// room's recent lines.
///
/// The contract:
/// - a line published is delivered at most once to the [`Fanout`] of every
///   instance attached (the publisher's included), and every fan-out
///   receives the lines in the same order;
/// - each [`Body::Say`] gets the next `seq`, one more than the last, and
///   every instance sees the same `seq` for it; every line gets its `at`;
/// - `publish` never waits on a participant and never blocks the reactor: a
///   bus that talks to a broker queues the line for its own task.
pub(crate) trait Bus: Send + Sync + 'static {
    /// Connects this instance's fan-out; called once, when the room is made.
    fn attach(&self, fanout: Fanout);

    /// Takes a line for delivery; `seq` and `at` are the bus's to set.
    ///
    /// # Errors
    /// When the bus cannot take it now; the sender should be told.
    fn publish(&self, line: Line) -> Result<(), BusError>;

    /// Runs `join` with the room lines the bus holds (oldest first) and the
    /// last `seq` it gave, at an instant when no line is being delivered:
    /// whatever `join` adds to the fan-out then receives every later line
    /// and none of these twice (Centrifugo's recipe, in one step: the
    /// history read and the subscription cannot interleave).
    fn join_with_history(&self, join: &mut dyn FnMut(&[Line], u64));

    /// The names in the room, on every instance, sorted.
    fn who(&self) -> Vec<String>;
}

/// The in-process bus: one instance, delivery at once on the publisher's
/// thread, under one lock that also orders the lines.
#[derive(Debug)]
pub(crate) struct LocalBus {
    fanout: OnceLock<Fanout>,
    /// "Now" for `at`.
    clock: Clock,
    /// How many room lines the history keeps.
    keep: usize,
    state: Mutex<History>,
}

/// The room lines an instance holds, and the last `seq` it delivered:
/// what [`Bus::join_with_history`] hands a joiner.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// The last `seq` delivered.
    pub(crate) seq: u64,
    /// The last `keep` room lines.
    lines: VecDeque<Line>,
}

impl History {
    /// Delivers `line` to `fanout` and, when it is a room line, keeps it
    /// (at most `keep`). Called under the lock that orders deliveries.
    pub(crate) fn deliver(&mut self, fanout: &Fanout, line: Line, keep: usize) {
        fanout.deliver(&line);
        if let Some(seq) = line.seq {
            self.seq = seq;
            if keep > 0 {
                if self.lines.len() == keep {
                    self.lines.pop_front();
                }
                self.lines.push_back(line);
            }
        }
    }

    /// The held lines, oldest first, and the last `seq`.
    pub(crate) fn held(&mut self) -> (&[Line], u64) {
        let seq = self.seq;
        (self.lines.make_contiguous(), seq)
    }
}

impl LocalBus {
    /// A bus stamping lines with `clock` and keeping the last `keep` room
    /// lines.
    pub(crate) fn new(clock: Clock, keep: usize) -> LocalBus {
        LocalBus {
            fanout: OnceLock::new(),
            clock,
            keep,
            state: Mutex::new(History::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, History> {
        // Every update below leaves the state whole between statements.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Bus for LocalBus {
    fn attach(&self, fanout: Fanout) {
        let _ = self.fanout.set(fanout);
    }

    fn publish(&self, mut line: Line) -> Result<(), BusError> {
        let fanout = self.fanout.get().ok_or(BusError::Detached)?;
        let mut state = self.state();
        line.at = self.clock.now();
        if matches!(line.body, Body::Say { .. }) {
            line.seq = Some(state.seq + 1);
        }
        // Delivered under the lock: the order of `seq` is the order every
        // member sees.
        state.deliver(fanout, line, self.keep);
        Ok(())
    }

    fn join_with_history(&self, join: &mut dyn FnMut(&[Line], u64)) {
        let mut state = self.state();
        let (held, last) = state.held();
        join(held, last);
    }

    fn who(&self) -> Vec<String> {
        self.fanout.get().map(Fanout::names).unwrap_or_default()
    }
}
