//! The chat room: joining and leaving it, and saying a line in it.
//!
//! [`Room`] is a cloneable handle. A line said in it is framed once (to
//! know that it fits, and so that this instance's members share the bytes)
//! and handed to the room's [`Bus`], which brings it to the
//! [`Fanout`] of every instance in one order. With the
//! default [`LocalBus`](bus::LocalBus) there is one instance and delivery
//! happens at once; a bus between processes plugs in the same way.
//!
//! - `bus`: the seam, the protocol-neutral [`Line`] and its
//!   origin, and the in-process bus.
//! - `fanout`: this instance's members and the delivery to them and to the
//!   server's console.

pub(crate) mod bus;
pub(crate) mod fanout;

use std::sync::Arc;

use porter_wire::{EncodedFrame, FrameCodec};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::bus::{Bus, BusError, InstanceId, Line, LineKind, MemberId, MemberIds, Origin};
use self::fanout::Fanout;
use crate::console::ConsoleLine;
use crate::names::SERVER_NAME;
use crate::outbox::Outbox;

/// A handle to the chat room.
#[derive(Clone)]
pub(crate) struct Room {
    inner: Arc<Inner>,
}

struct Inner {
    /// Orders and carries lines to every instance.
    bus: Arc<dyn Bus>,
    /// This instance's members.
    fanout: Fanout,
    /// Lines are framed with the connections' limits.
    codec: FrameCodec,
    /// This instance, for the origin of its lines.
    instance: InstanceId,
    /// Source of member ids.
    ids: MemberIds,
    /// Whether joins and leaves are announced to the others.
    announce: bool,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("instance", &self.inner.instance)
            .field("announce", &self.inner.announce)
            .finish_non_exhaustive()
    }
}

/// Why a line was not said.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SayError {
    /// It does not fit in a frame once `from` is added; the sender should
    /// be told.
    #[error("line too long to pass on")]
    TooLong(#[source] porter_wire::Error),
    /// The bus did not take it.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A participant's place in the room; leaving is dropping it.
#[derive(Debug)]
pub(crate) struct Membership {
    room: Room,
    id: MemberId,
    name: Arc<str>,
}

impl Room {
    /// A room whose lines travel on `bus`, framed with `codec`; members'
    /// lines are shown on `console` too.
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        codec: FrameCodec,
        console: Option<mpsc::Sender<ConsoleLine>>,
        announce: bool,
    ) -> Room {
        let instance = InstanceId::random();
        let fanout = Fanout::new(instance, codec, console);
        bus.attach(fanout.clone());
        Room {
            inner: Arc::new(Inner {
                bus,
                fanout,
                codec,
                instance,
                ids: MemberIds::default(),
                announce,
            }),
        }
    }

    /// The in-process room: one instance, on a [`bus::LocalBus`].
    pub(crate) fn local(
        codec: FrameCodec,
        console: Option<mpsc::Sender<ConsoleLine>>,
        announce: bool,
    ) -> Room {
        Room::new(Arc::new(bus::LocalBus::default()), codec, console, announce)
    }

    /// Adds a ready participant, reached through `outbox`.
    pub(crate) fn join(&self, name: &str, outbox: Outbox) -> Membership {
        let id = self.inner.ids.next();
        let count = self.inner.fanout.add(id, name, outbox);
        info!(user = %name, participants = count, "joined chat");
        if self.inner.announce {
            self.announce(&format!("{name} joined"), Some(id));
        }
        Membership {
            room: self.clone(),
            id,
            name: name.into(),
        }
    }

    fn leave(&self, id: MemberId) {
        let (left, count) = self.inner.fanout.remove(id);
        if let Some(name) = left {
            info!(user = %name, participants = count, "left chat");
            if self.inner.announce {
                self.announce(&format!("{name} left"), None);
            }
        }
    }

    /// Frames `text` from `from` and publishes it.
    fn publish(
        &self,
        kind: LineKind,
        member: Option<MemberId>,
        from: &Arc<str>,
        text: &str,
    ) -> Result<(), SayError> {
        // Framed here, once: a line that does not fit is refused to its
        // sender before it reaches anyone.
        let frame = EncodedFrame::say(&self.inner.codec, text, from).map_err(SayError::TooLong)?;
        let line = Line {
            origin: Origin {
                instance: self.inner.instance,
                member,
            },
            kind,
            from: from.clone(),
            text: text.into(),
            frame: Some(frame),
        };
        self.inner.bus.publish(line)?;
        Ok(())
    }

    /// A line typed at the server's console, for everyone.
    pub(crate) fn console_line(&self, text: &str) {
        match self.publish(LineKind::Server, None, &SERVER_NAME.into(), text) {
            Ok(()) => debug!("console line sent"),
            Err(err) => warn!(cause = %err, "console line not sent"),
        }
    }

    fn announce(&self, text: &str, except: Option<MemberId>) {
        if let Err(err) = self.publish(LineKind::Server, except, &SERVER_NAME.into(), text) {
            warn!(cause = %err, "announcement not sent");
        }
    }
}

impl Membership {
    /// This participant says `text`: to everyone else, and to the console.
    ///
    /// # Errors
    /// [`SayError::TooLong`] when the line does not fit in a frame once
    /// `from` is added; [`SayError::Bus`] when the bus did not take it.
    pub(crate) fn say(&self, text: &str) -> Result<(), SayError> {
        self.room
            .publish(LineKind::Said, Some(self.id), &self.name, text)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.room.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::Closer;
    use crate::outbox::{self, Inbox};
    use std::net::SocketAddr;
    use tokio_util::sync::CancellationToken;

    /// A member's outbox of `queue` frames, and what it receives.
    fn member(port: u16, queue: usize) -> (Outbox, Inbox) {
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        outbox::channel(queue, Closer::child_of(&CancellationToken::new()), peer)
    }

    /// A line said by the server, not framed yet (as from another instance).
    fn server_line(text: &str) -> Line {
        Line {
            origin: Origin {
                instance: InstanceId(0),
                member: None,
            },
            kind: LineKind::Server,
            from: SERVER_NAME.into(),
            text: text.into(),
            frame: None,
        }
    }

    #[tokio::test]
    async fn a_line_reaches_everyone_but_its_sender() {
        let room = Room::local(FrameCodec::new(), None, false);
        let (a, mut a_in) = member(1, 8);
        let (b, mut b_in) = member(2, 8);
        let (c, mut c_in) = member(3, 8);
        let ma = room.join("a", a);
        let _mb = room.join("b", b);
        let _mc = room.join("c", c);
        ma.say("hi").unwrap();
        assert!(a_in.try_recv().is_err(), "the sender got its own line");
        assert!(b_in.try_recv().is_ok());
        assert!(c_in.try_recv().is_ok());
        drop(ma);
        assert_eq!(room.inner.fanout.deliver(&server_line("x")), 2);
    }

    #[tokio::test]
    async fn a_line_from_another_instance_reaches_every_member_here() {
        let room = Room::local(FrameCodec::new(), None, false);
        let (a, _a_in) = member(1, 8);
        let _ma = room.join("a", a);
        // Member 0 of another instance: the same member id as `a`.
        let mut line = server_line("from afar");
        line.origin.member = Some(MemberId(0));
        assert_eq!(room.inner.fanout.deliver(&line), 1);
    }

    #[tokio::test]
    async fn a_member_with_a_full_queue_is_closed_and_others_still_served() {
        let room = Room::local(FrameCodec::new(), None, false);
        let (slow, _slow_in) = member(1, 1);
        let (fast, _fast_in) = member(2, 100);
        let slow_closer = slow.closer().clone();
        let fast_closer = fast.closer().clone();
        let _ms = room.join("slow", slow);
        let _mf = room.join("fast", fast);
        for _ in 0..10 {
            room.console_line("tick");
        }
        assert!(slow_closer.is_closed());
        assert!(!fast_closer.is_closed());
    }

    #[tokio::test]
    async fn a_slow_console_drops_lines_instead_of_blocking() {
        let (tx, mut rx) = mpsc::channel(1);
        let room = Room::local(FrameCodec::new(), Some(tx), false);
        let (a, _a_in) = member(1, 8);
        let ma = room.join("a", a);
        ma.say("one").unwrap();
        ma.say("two").unwrap();
        assert_eq!(room.inner.fanout.console_dropped(), 1);
        let line = rx.recv().await.unwrap();
        assert_eq!((line.from.as_str(), line.text.as_str()), ("a", "one"));
    }
}
