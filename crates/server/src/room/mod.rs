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
//! - [`jetstream`]: the bus between instances, on NATS JetStream.

pub(crate) mod bus;
pub(crate) mod fanout;
pub(crate) mod jetstream;

use std::sync::Arc;

use porter_wire::{EventKind, FrameCodec, ServerMessage};
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

/// What a joining member is sent from the room's history.
#[derive(Debug, PartialEq)]
struct CatchUp<'a> {
    /// The lines to replay, oldest first.
    lines: &'a [Line],
    /// `recovered`, when the member asked to recover (`since`).
    recovered: Option<ServerMessage>,
}

impl<'a> CatchUp<'a> {
    /// From `held` (the room lines the bus holds, oldest first) and `last`
    /// (the last `seq` given): for a newcomer, the last `newcomer` lines;
    /// for a member that saw up to `since`, every held line after it, and
    /// whether any between are gone.
    ///
    /// A `since` beyond `last` means the room's numbering started again (an
    /// in-process room after a restart): every line of this room is new to
    /// the member, and those no longer held count as missed; what was said
    /// before the restart is unknown, so the recovery is never complete.
    fn of(held: &'a [Line], last: u64, since: Option<u64>, newcomer: usize) -> CatchUp<'a> {
        let Some(since) = since else {
            let start = held.len().saturating_sub(newcomer);
            return CatchUp {
                lines: &held[start..],
                recovered: None,
            };
        };
        let restarted = since > last;
        let since = if restarted { 0 } else { since };
        let start = held.partition_point(|line| line.seq.unwrap_or(0) <= since);
        let lines = &held[start..];
        // The first seq wanted, and the first one still held.
        let wanted = since + 1;
        let first_held = lines.first().and_then(|line| line.seq).unwrap_or(last + 1);
        let missed = first_held.saturating_sub(wanted);
        CatchUp {
            lines,
            recovered: Some(ServerMessage::Recovered {
                complete: missed == 0 && !restarted,
                missed,
            }),
        }
    }
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

    /// The room shared by every instance on the NATS JetStream bus
    /// `config`, keeping `options.history` lines in the stream; ready once
    /// the lines the stream held are read. `nudge` is notified when the
    /// bus's control subject says an operator acted.
    ///
    /// # Errors
    /// NATS unreachable, a stream that cannot be set up, or history not
    /// read in time.
    pub(crate) async fn jetstream(
        config: &jetstream::BusConfig,
        clock: Clock,
        codec: FrameCodec,
        console: Option<mpsc::Sender<ConsoleLine>>,
        options: RoomOptions,
        shutdown: tokio_util::sync::CancellationToken,
        nudge: Arc<tokio::sync::Notify>,
    ) -> Result<Room, jetstream::BusSetupError> {
        let bus = Arc::new(
            jetstream::JetStreamBus::connect(config, clock, options.history, shutdown, nudge)
                .await?,
        );
        let room = Room::new(bus.clone(), codec, console, options);
        bus.caught_up().await?;
        Ok(room)
    }

    /// Adds a ready participant, reached through `outbox`. A newcomer
    /// (`since` is `None`) is sent the room's recent lines, marked as
    /// history; a client that saw the room up to `since` is sent the lines
    /// after it that the room still holds, then `recovered`. Then every
    /// line from then on, with none missing or twice between the two.
    pub(crate) fn join(&self, name: &str, outbox: Outbox, since: Option<u64>) -> Membership {
        let id = self.inner.ids.next();
        let name: Arc<str> = name.into();
        let fanout = &self.inner.fanout;
        let mut count = 0;
        let mut recovery = None;
        self.inner.bus.join_with_history(&mut |held, last| {
            let catch_up = CatchUp::of(held, last, since, self.inner.options.history);
            for line in catch_up.lines {
                match fanout.frame(line, true) {
                    // A queue too small for the history closes the
                    // newcomer, as any full queue does.
                    Ok(frame) => {
                        let _ = outbox.send(frame);
                    }
                    Err(err) => warn!(cause = %err, "history line not replayed"),
                }
            }
            if let Some(recovered) = &catch_up.recovered {
                match fanout.frame_message(recovered) {
                    Ok(frame) => {
                        let _ = outbox.send(frame);
                    }
                    Err(err) => warn!(cause = %err, "recovered not sent"),
                }
            }
            recovery = catch_up.recovered;
            count = fanout.add(id, &name, outbox.clone());
        });
        match (since, recovery) {
            (Some(since), Some(ServerMessage::Recovered { complete, missed })) => {
                info!(user = %name, participants = count, since, complete, missed, "joined chat");
            }
            _ => info!(user = %name, participants = count, "joined chat"),
        }
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
        let ma = room.join("a", a, None);
        let _mb = room.join("b", b, None);
        let _mc = room.join("c", c, None);
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
        let _ma = room.join("a", a, None);
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
        let ma = room.join("a", a, None);
        let _mb = room.join("b", b, None);
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
        let ma = room.join("a", a, None);
        for text in ["1", "2", "3"] {
            ma.say(text).unwrap();
        }
        let (b, mut b_in) = member(2, 8);
        let _mb = room.join("b", b, None);
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
        let ma = room.join("a", a, None);
        let _mb = room.join("b", b, None);
        let _mc = room.join("c", c, None);
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
        let ma = room.join("zed", a, None);
        let mb = room.join("amy", b, None);
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
        let _ms = room.join("slow", slow, None);
        let _mf = room.join("fast", fast, None);
        for _ in 0..10 {
            room.console_line("tick");
        }
        assert!(slow_closer.is_closed());
        assert!(!fast_closer.is_closed());
    }

    /// (text, seq, replay) of the `say`s, and `recovered` as ("recovered
    /// COMPLETE MISSED", None, false).
    fn lines(got: Vec<ServerMessage>) -> Vec<(String, Option<u64>, bool)> {
        got.into_iter()
            .map(|m| match m {
                ServerMessage::Say {
                    text, seq, replay, ..
                } => (text, seq, replay),
                ServerMessage::Recovered { complete, missed } => {
                    (format!("recovered {complete} {missed}"), None, false)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_member_back_with_since_gets_what_it_missed_then_recovered_then_live() {
        let room = room(RoomOptions {
            events: false,
            history: 3,
        });
        let (a, _a_in) = member(1, 16);
        let ma = room.join("a", a, None);
        for text in ["1", "2", "3", "4"] {
            ma.say(text).unwrap();
        }
        // Saw up to 2: 3 and 4 are held.
        let (b, mut b_in) = member(2, 16);
        let _mb = room.join("b", b, Some(2));
        ma.say("5").unwrap();
        assert_eq!(
            lines(received(&mut b_in)),
            [
                ("3".into(), Some(3), true),
                ("4".into(), Some(4), true),
                ("recovered true 0".into(), None, false),
                ("5".into(), Some(5), false),
            ]
        );
        // Saw up to 0 with 3 held of 5: 1 and 2 are gone.
        let (c, mut c_in) = member(3, 16);
        let _mc = room.join("c", c, Some(0));
        assert_eq!(
            lines(received(&mut c_in)),
            [
                ("3".into(), Some(3), true),
                ("4".into(), Some(4), true),
                ("5".into(), Some(5), true),
                ("recovered false 2".into(), None, false),
            ]
        );
        // Up to date: nothing replayed, complete.
        let (d, mut d_in) = member(4, 16);
        let _md = room.join("d", d, Some(5));
        assert_eq!(
            lines(received(&mut d_in)),
            [("recovered true 0".into(), None, false)]
        );
    }

    #[test]
    fn catching_up_without_history_or_after_a_restart_counts_what_is_gone() {
        let held: Vec<Line> = (5..=7)
            .map(|seq| Line {
                seq: Some(seq),
                ..server_line("x")
            })
            .collect();
        let recovered = |held: &[Line], last, since| CatchUp::of(held, last, since, 0).recovered;
        let gone = |complete, missed| Some(ServerMessage::Recovered { complete, missed });
        // Nothing held: everything after `since` is gone.
        assert_eq!(recovered(&[], 7, Some(3)), gone(false, 4));
        assert_eq!(recovered(&held, 7, Some(4)), gone(true, 0));
        assert_eq!(recovered(&held, 7, Some(2)), gone(false, 2));
        // A numbering that started again (the client saw 40 of a room now
        // at 7): all of this room is new; 1 to 4 are gone, and what came
        // before the restart is unknown.
        let catch_up = CatchUp::of(&held, 7, Some(40), 0);
        assert_eq!(catch_up.lines.len(), 3);
        assert_eq!(catch_up.recovered, gone(false, 4));
        // A newcomer gets the last lines and no `recovered`.
        let newcomer = CatchUp::of(&held, 7, None, 2);
        assert_eq!((newcomer.lines.len(), newcomer.recovered), (2, None));
    }

    #[tokio::test]
    async fn a_slow_console_drops_lines_instead_of_blocking() {
        let (tx, mut rx) = mpsc::channel(1);
        let room = Room::local(Clock::new(|| 0), FrameCodec::new(), Some(tx), QUIET);
        let (a, _a_in) = member(1, 8);
        let ma = room.join("a", a, None);
        ma.say("one").unwrap();
        ma.say("two").unwrap();
        assert_eq!(room.inner.fanout.console_dropped(), 1);
        let line = rx.recv().await.unwrap();
        assert_eq!((line.from.as_str(), line.text.as_str()), ("a", "one"));
    }
}
