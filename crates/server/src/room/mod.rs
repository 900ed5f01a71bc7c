//! The chat room: joining and leaving it, saying a line in it, a private
//! line to one participant, and who is in it.
//!
//! [`Room`] is a cloneable handle. What is said in it is checked to fit in a
//! frame, wrapped in a protocol-neutral [`Line`] and handed to the room's
//! [`Bus`], which gives room lines their `seq` and `at` and brings every
//! line to the [`Fanout`] of every instance in one order. With the default
//! [`LocalBus`] there is one instance and delivery happens at once; a bus
//! between processes plugs in the same way.
//!
//! - `bus`: the seam, the protocol-neutral [`Line`] and its origin, and the
//!   in-process bus with the room's history.
//! - `fanout`: this instance's members and the delivery to them and to the
//!   server's console.

pub(crate) mod bus;
pub(crate) mod fanout;

use std::sync::Arc;

use porter_wire::{EventKind, FrameCodec};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::bus::{Body, Bus, BusError, InstanceId, Line, LocalBus, MemberId, MemberIds, Origin};
use self::fanout::Fanout;
use crate::clock::Clock;
use crate::console::ConsoleLine;
use crate::names::SERVER_NAME;
use crate::outbox::Outbox;

/// How the room behaves, from the server's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomOptions {
    /// Tell everyone when someone joins or leaves (`event`).
    pub(crate) events: bool,
    /// Room lines a newcomer is sent on joining, marked as history.
    pub(crate) history: usize,
}

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
    /// This instance, for the origin of its lines.
    instance: InstanceId,
    /// Source of member ids.
    ids: MemberIds,
    options: RoomOptions,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("instance", &self.inner.instance)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Why a line was not said.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SayError {
    /// It does not fit in a frame once `from` and the room's fields are
    /// added; the sender should be told.
    #[error("line too long to pass on")]
    TooLong(#[source] porter_wire::Error),
    /// A private line to a name that is not in the room.
    #[error("no one called that is in the room")]
    UnknownUser,
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
        options: RoomOptions,
    ) -> Room {
        let instance = InstanceId::random();
        let fanout = Fanout::new(instance, codec, console);
        bus.attach(fanout.clone());
        Room {
            inner: Arc::new(Inner {
                bus,
                fanout,
                instance,
                ids: MemberIds::default(),
                options,
            }),
        }
    }

    /// The in-process room: one instance, on a [`LocalBus`] that stamps
    /// lines with `clock` and keeps `options.history` of them.
    pub(crate) fn local(
        clock: Clock,
        codec: FrameCodec,
        console: Option<mpsc::Sender<ConsoleLine>>,
        options: RoomOptions,
    ) -> Room {
        let bus = Arc::new(LocalBus::new(clock, options.history));
        Room::new(bus, codec, console, options)
    }

    /// Adds a ready participant, reached through `outbox`: it is sent the
    /// room's recent lines (marked as history), then every line from then
    /// on, with none missing or twice between the two.
    pub(crate) fn join(&self, name: &str, outbox: Outbox) -> Membership {
        let id = self.inner.ids.next();
        let name: Arc<str> = name.into();
        let fanout = &self.inner.fanout;
        let mut count = 0;
        self.inner
            .bus
            .join_with_recent(self.inner.options.history, &mut |recent| {
                for line in recent {
                    match fanout.frame(line, true) {
                        // A queue too small for the history closes the
                        // newcomer, as any full queue does.
                        Ok(frame) => {
                            let _ = outbox.send(frame);
                        }
                        Err(err) => warn!(cause = %err, "history line not replayed"),
                    }
                }
                count = fanout.add(id, &name, outbox.clone());
            });
        info!(user = %name, participants = count, "joined chat");
        if self.inner.options.events {
            self.event(EventKind::Joined, &name, Some(id));
        }
        Membership {
            room: self.clone(),
            id,
            name,
        }
    }

    fn leave(&self, id: MemberId) {
        let (left, count) = self.inner.fanout.remove(id);
        if let Some(name) = left {
            info!(user = %name, participants = count, "left chat");
            if self.inner.options.events {
                self.event(EventKind::Left, &name, None);
            }
        }
    }

    /// The names in the room, sorted.
    pub(crate) fn who(&self) -> Vec<String> {
        self.inner.bus.who()
    }

    fn origin(&self, member: Option<MemberId>) -> Origin {
        Origin {
            instance: self.inner.instance,
            member,
        }
    }

    /// Checks that `body` fits in a frame with any `seq` and `at`, then
    /// publishes it.
    fn publish(&self, member: Option<MemberId>, body: Body) -> Result<(), SayError> {
        let line = Line {
            origin: self.origin(member),
            body,
            seq: None,
            at: 0,
        };
        // The longest this line can be: `at` is always 20 characters, and
        // the bus gives a `seq` of at most this many digits.
        let longest = Line {
            seq: Some(u64::MAX),
            ..line.clone()
        };
        self.inner
            .fanout
            .frame(&longest, true)
            .map_err(SayError::TooLong)?;
        self.inner.bus.publish(line)?;
        Ok(())
    }

    /// A line typed at the server's console, for everyone.
    pub(crate) fn console_line(&self, text: &str) {
        let body = Body::Say {
            from: SERVER_NAME.into(),
            text: text.into(),
            by_member: false,
        };
        match self.publish(None, body) {
            Ok(()) => debug!("console line sent"),
            Err(err) => warn!(cause = %err, "console line not sent"),
        }
    }

    fn event(&self, kind: EventKind, user: &Arc<str>, except: Option<MemberId>) {
        let body = Body::Event {
            kind,
            user: user.clone(),
        };
        if let Err(err) = self.publish(except, body) {
            warn!(cause = %err, "event not sent");
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
        let body = Body::Say {
            from: self.name.clone(),
            text: text.into(),
            by_member: true,
        };
        self.room.publish(Some(self.id), body)
    }

    /// The names in the room, sorted.
    pub(crate) fn who(&self) -> Vec<String> {
        self.room.who()
    }

    /// This participant says `text` to `to` alone.
    ///
    /// # Errors
    /// [`SayError::UnknownUser`] when no one called `to` is in the room;
    /// otherwise as [`Membership::say`].
    pub(crate) fn say_to(&self, to: &str, text: &str) -> Result<(), SayError> {
        if !self.room.who().iter().any(|name| name == to) {
            return Err(SayError::UnknownUser);
        }
        let body = Body::Private {
            from: self.name.clone(),
            to: to.into(),
            text: text.into(),
        };
        self.room.publish(Some(self.id), body)
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
    use bytes::BytesMut;
    use porter_wire::ServerMessage;
    use std::net::SocketAddr;
    use tokio_util::sync::CancellationToken;

    const QUIET: RoomOptions = RoomOptions {
        events: false,
        history: 0,
    };

    fn room(options: RoomOptions) -> Room {
        Room::local(
            Clock::new(|| 1_700_000_000),
            FrameCodec::new(),
            None,
            options,
        )
    }

    /// A member's outbox of `queue` frames, and what it receives.
    fn member(port: u16, queue: usize) -> (Outbox, Inbox) {
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        outbox::channel(queue, Closer::child_of(&CancellationToken::new()), peer)
    }

    /// Everything queued for a member so far, decoded.
    fn received(inbox: &mut Inbox) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        while let Ok(frame) = inbox.try_recv() {
            let mut buf = BytesMut::from(frame.as_bytes());
            let payload = FrameCodec::new().decode(&mut buf).unwrap().unwrap();
            out.push(porter_wire::decode_message(&payload).unwrap());
        }
        out
    }

    /// A line said by the server (as from another instance).
    fn server_line(text: &str) -> Line {
        Line {
            origin: Origin {
                instance: InstanceId(0),
                member: None,
            },
            body: Body::Say {
                from: SERVER_NAME.into(),
                text: text.into(),
                by_member: false,
            },
            seq: Some(1),
            at: 0,
        }
    }

    #[tokio::test]
    async fn a_line_reaches_everyone_but_its_sender() {
        let room = room(QUIET);
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
        let room = room(QUIET);
        let (a, _a_in) = member(1, 8);
        let _ma = room.join("a", a);
        // Member 0 of another instance: the same member id as `a`.
        let mut line = server_line("from afar");
        line.origin.member = Some(MemberId(0));
        assert_eq!(room.inner.fanout.deliver(&line), 1);
    }

    #[tokio::test]
    async fn room_lines_carry_a_seq_that_grows_by_one_and_their_time() {
        let room = room(QUIET);
        let (a, _a_in) = member(1, 8);
        let (b, mut b_in) = member(2, 8);
        let ma = room.join("a", a);
        let _mb = room.join("b", b);
        ma.say("one").unwrap();
        room.console_line("two");
        ma.say("three").unwrap();
        let got = received(&mut b_in);
        let seqs: Vec<_> = got
            .iter()
            .map(|m| match m {
                ServerMessage::Say { seq, at, .. } => {
                    assert_eq!(at.as_deref(), Some("2023-11-14T22:13:20Z"));
                    *seq
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
    }

    #[tokio::test]
    async fn a_newcomer_gets_the_last_lines_as_history_then_live_ones() {
        let room = room(RoomOptions {
            events: false,
            history: 2,
        });
        let (a, _a_in) = member(1, 8);
        let ma = room.join("a", a);
        for text in ["1", "2", "3"] {
            ma.say(text).unwrap();
        }
        let (b, mut b_in) = member(2, 8);
        let _mb = room.join("b", b);
        ma.say("4").unwrap();
        let got: Vec<_> = received(&mut b_in)
            .into_iter()
            .map(|m| match m {
                ServerMessage::Say {
                    text, seq, replay, ..
                } => (text, seq, replay),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                ("2".into(), Some(2), true),
                ("3".into(), Some(3), true),
                ("4".into(), Some(4), false)
            ]
        );
    }

    #[tokio::test]
    async fn a_private_line_reaches_its_recipient_alone_and_an_absent_one_is_refused() {
        let room = room(QUIET);
        let (a, mut a_in) = member(1, 8);
        let (b, mut b_in) = member(2, 8);
        let (c, mut c_in) = member(3, 8);
        let ma = room.join("a", a);
        let _mb = room.join("b", b);
        let _mc = room.join("c", c);
        ma.say_to("b", "psst").unwrap();
        assert!(received(&mut a_in).is_empty());
        assert!(received(&mut c_in).is_empty());
        assert!(matches!(
            &received(&mut b_in)[..],
            [ServerMessage::Say { text, from, to: Some(to), seq: None, .. }]
                if text == "psst" && from == "a" && to == "b"
        ));
        assert!(matches!(
            ma.say_to("nobody", "psst"),
            Err(SayError::UnknownUser)
        ));
        // Private lines have no place in the room: the next line is seq 1.
        ma.say("public").unwrap();
        assert!(matches!(
            &received(&mut b_in)[..],
            [ServerMessage::Say { seq: Some(1), .. }]
        ));
    }

    #[tokio::test]
    async fn who_lists_the_names_sorted_and_events_tell_joins_and_leaves() {
        let room = room(RoomOptions {
            events: true,
            history: 0,
        });
        let (a, mut a_in) = member(1, 8);
        let (b, mut b_in) = member(2, 8);
        let ma = room.join("zed", a);
        let mb = room.join("amy", b);
        assert_eq!(room.who(), ["amy", "zed"]);
        assert!(received(&mut b_in).is_empty(), "amy saw her own join");
        drop(mb);
        let events: Vec<_> = received(&mut a_in)
            .into_iter()
            .map(|m| match m {
                ServerMessage::Event { kind, user, .. } => (kind, user),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            events,
            [
                (EventKind::Joined, "amy".into()),
                (EventKind::Left, "amy".into())
            ]
        );
        assert_eq!(room.who(), ["zed"]);
        drop(ma);
    }

    #[tokio::test]
    async fn a_member_with_a_full_queue_is_closed_and_others_still_served() {
        let room = room(QUIET);
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
        let room = Room::local(Clock::new(|| 0), FrameCodec::new(), Some(tx), QUIET);
        let (a, _a_in) = member(1, 8);
        let ma = room.join("a", a);
        ma.say("one").unwrap();
        ma.say("two").unwrap();
        assert_eq!(room.inner.fanout.console_dropped(), 1);
        let line = rx.recv().await.unwrap();
        assert_eq!((line.from.as_str(), line.text.as_str()), ("a", "one"));
    }
}
