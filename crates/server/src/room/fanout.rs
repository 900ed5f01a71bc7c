//! One instance's side of the room: who is in it here, and the delivery of
//! what the bus brings to the members it is for, and of members' lines to
//! the server's console.
//!
//! [`Fanout`] is a cloneable handle around an `Arc`, holding one outbox per
//! member in a map behind a plain mutex. Nothing awaits while the lock is
//! held: sending is a `try_send` into each bounded queue, so a slow member
//! is disconnected instead of slowing the room. Each line is framed once
//! per instance and the same bytes are shared by every receiver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use porter_wire::{EncodedFrame, FrameCodec, RoomSay, ServerMessage};
use tokio::sync::mpsc;
use tracing::warn;

use super::bus::{Body, InstanceId, Line, MemberId};
use crate::clock::rfc3339;
use crate::console::ConsoleLine;
use crate::outbox::Outbox;

/// The members of this instance, and where their lines are delivered.
#[derive(Debug, Clone)]
pub(crate) struct Fanout {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// This instance: a line's sender is left out only where it is a member.
    instance: InstanceId,
    /// One entry per ready member.
    members: Mutex<HashMap<MemberId, Member>>,
    /// Frames are encoded with the connections' limits.
    codec: FrameCodec,
    /// Where members' lines are shown at the server, if it has a console.
    console: Option<mpsc::Sender<ConsoleLine>>,
    /// Lines the console was too slow to take; it must never hold up the room.
    console_dropped: AtomicU64,
}

#[derive(Debug)]
struct Member {
    name: Arc<str>,
    outbox: Outbox,
}

impl Fanout {
    pub(crate) fn new(
        instance: InstanceId,
        codec: FrameCodec,
        console: Option<mpsc::Sender<ConsoleLine>>,
    ) -> Fanout {
        Fanout {
            inner: Arc::new(Inner {
                instance,
                members: Mutex::new(HashMap::new()),
                codec,
                console,
                console_dropped: AtomicU64::new(0),
            }),
        }
    }

    fn members(&self) -> MutexGuard<'_, HashMap<MemberId, Member>> {
        // A panic elsewhere while holding the lock cannot leave the map
        // half-updated (every update is one insert or remove), so carry on.
        self.inner
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance this fan-out delivers for.
    pub(crate) fn instance(&self) -> InstanceId {
        self.inner.instance
    }

    /// Sends `frame` to the member `id` alone, if it is still here.
    pub(crate) fn tell(&self, id: MemberId, frame: EncodedFrame) {
        if let Some(member) = self.members().get(&id) {
            let _ = member.outbox.send(frame);
        }
    }

    /// Adds a member; returns how many there are now.
    pub(crate) fn add(&self, id: MemberId, name: &Arc<str>, outbox: Outbox) -> usize {
        let mut members = self.members();
        members.insert(
            id,
            Member {
                name: name.clone(),
                outbox,
            },
        );
        members.len()
    }

    /// Removes a member; returns its name, if it was one, and how many are
    /// left.
    pub(crate) fn remove(&self, id: MemberId) -> (Option<Arc<str>>, usize) {
        let mut members = self.members();
        let left = members.remove(&id).map(|member| member.name);
        (left, members.len())
    }

    /// The members' names here, sorted, each once.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members()
            .values()
            .map(|member| member.name.to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// `message` as a frame, for one member.
    pub(crate) fn frame_message(
        &self,
        message: &ServerMessage,
    ) -> Result<EncodedFrame, porter_wire::Error> {
        EncodedFrame::message(&self.inner.codec, message)
    }

    /// `line` as the frame its receivers get; `replay` marks a room line
    /// from history.
    pub(crate) fn frame(
        &self,
        line: &Line,
        replay: bool,
    ) -> Result<EncodedFrame, porter_wire::Error> {
        let at = rfc3339(line.at);
        match &line.body {
            Body::Say { from, text, .. } => EncodedFrame::room_say(
                &self.inner.codec,
                &RoomSay {
                    text,
                    from,
                    seq: line.seq,
                    at: Some(&at),
                    to: None,
                    replay,
                },
            ),
            Body::Private { from, to, text } => EncodedFrame::room_say(
                &self.inner.codec,
                &RoomSay {
                    text,
                    from,
                    seq: None,
                    at: Some(&at),
                    to: Some(to),
                    replay: false,
                },
            ),
            Body::Event { kind, user } => EncodedFrame::message(
                &self.inner.codec,
                &ServerMessage::Event {
                    kind: *kind,
                    user: user.to_string(),
                    at,
                },
            ),
        }
    }

    /// Delivers `line` to the members here it is for (everyone, or the
    /// private line's recipient) but its sender, and a member's room line
    /// to the console; returns how many members it was queued for.
    pub(crate) fn deliver(&self, line: &Line) -> usize {
        let frame = match self.frame(line, false) {
            Ok(frame) => frame,
            Err(err) => {
                // The publishing instance checked that it fits with any
                // `seq`; a line from elsewhere with other limits may not.
                warn!(cause = %err, "line from the bus does not fit in a frame, dropped");
                return 0;
            }
        };
        let except = (line.origin.instance == self.inner.instance)
            .then_some(line.origin.member)
            .flatten();
        let only: Option<&str> = match &line.body {
            Body::Private { to, .. } => Some(to),
            _ => None,
        };
        let mut delivered = 0;
        for (id, member) in self.members().iter() {
            if Some(*id) == except || only.is_some_and(|to| to != &*member.name) {
                continue;
            }
            // A full queue disconnects that member (logged by the outbox);
            // the others are served regardless.
            if member.outbox.send(frame.clone()).is_ok() {
                delivered += 1;
            }
        }
        if let Body::Say {
            from,
            text,
            by_member: true,
        } = &line.body
        {
            self.to_console(from, text);
        }
        delivered
    }

    fn to_console(&self, from: &str, text: &str) {
        let Some(console) = &self.inner.console else {
            return;
        };
        let line = ConsoleLine {
            from: from.to_owned(),
            text: text.to_owned(),
        };
        if console.try_send(line).is_err() {
            let dropped = self.inner.console_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Once, then now and then, so a stuck console cannot flood the log.
            if dropped == 1 || dropped.is_multiple_of(1000) {
                warn!(dropped, "console not keeping up, chat lines dropped");
            }
        }
    }

    /// Lines the console could not take so far.
    #[cfg(test)]
    pub(crate) fn console_dropped(&self) -> u64 {
        self.inner.console_dropped.load(Ordering::Relaxed)
    }
}
