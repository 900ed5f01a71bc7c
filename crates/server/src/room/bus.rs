//! The room's bus: how a line said in the room reaches every instance of
//! the server that hosts it, in one order.
//!
//! A [`Line`] on the bus is protocol-neutral (who, what, and where it came
//! from), not a frame: another instance, or another transport, encodes it
//! its own way. Its [`Origin`] names the instance and the member that said
//! it, so that the sender is left out of the fan-out on its own instance
//! and only there.
//!
//! [`LocalBus`], the in-process bus, is the default: one instance, and a
//! line is delivered at once, on the publisher's thread, to the room's
//! [`Fanout`]. A bus between processes (a broker, later) implements the
//! same trait: it takes the line, and its own task delivers what the broker
//! orders to each instance's fan-out.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use porter_wire::EncodedFrame;

use super::fanout::Fanout;

/// Who said a line, across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    /// The server instance it was said on.
    pub(crate) instance: InstanceId,
    /// The member of that instance's room who said it, or whom it is
    /// about (a join announcement): left out of the fan-out. `None` when
    /// every member receives it.
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

/// What kind of line it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Said by a member: shown on the server's console too.
    Said,
    /// Said by the server (its console, an announcement).
    Server,
}

/// A line said in the room.
#[derive(Clone)]
pub(crate) struct Line {
    /// Where it came from; its member, if any, is left out of the fan-out.
    pub(crate) origin: Origin,
    /// Said by a member, or by the server.
    pub(crate) kind: LineKind,
    /// The name it is shown under.
    pub(crate) from: Arc<str>,
    /// What was said.
    pub(crate) text: Arc<str>,
    /// The line as a `say` frame, encoded once by the instance that said
    /// it (which had to encode it anyway, to know that it fits). A bus that
    /// carries lines between processes leaves it behind; the receiving
    /// instance encodes the line once for all its members.
    pub(crate) frame: Option<EncodedFrame>,
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Line")
            .field("origin", &self.origin)
            .field("kind", &self.kind)
            .field("from", &self.from)
            .field("text", &self.text)
            .finish_non_exhaustive()
    }
}

/// Why the bus did not take a line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    /// The bus is not connected to the room yet, or no longer.
    #[error("the room's bus is not attached")]
    Detached,
}

/// Carries the room's lines to every instance, in one order.
///
/// The contract: a line published is delivered at most once to the
/// [`Fanout`] of every instance attached (the publisher's included), and
/// every fan-out receives the lines in the same order. `publish` never
/// waits on a participant and never blocks the reactor: a bus that talks to
/// a broker queues the line for its own task.
pub(crate) trait Bus: Send + Sync + 'static {
    /// Connects this instance's fan-out; called once, when the room is made.
    fn attach(&self, fanout: Fanout);

    /// Takes a line for delivery.
    ///
    /// # Errors
    /// When the bus cannot take it now; the sender should be told.
    fn publish(&self, line: Line) -> Result<(), BusError>;
}

/// The in-process bus: one instance, delivery at once on the publisher's
/// thread. The order is the order in which publishers take the fan-out's
/// lock.
#[derive(Debug, Default)]
pub(crate) struct LocalBus {
    fanout: OnceLock<Fanout>,
}

impl Bus for LocalBus {
    fn attach(&self, fanout: Fanout) {
        let _ = self.fanout.set(fanout);
    }

    fn publish(&self, line: Line) -> Result<(), BusError> {
        let fanout = self.fanout.get().ok_or(BusError::Detached)?;
        fanout.deliver(&line);
        Ok(())
    }
}
