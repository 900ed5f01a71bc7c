//! One instance's side of the room: who is in it here, and the delivery of
//! each line that the bus brings to every member but its sender, and to the
//! server's console.
//!
//! [`Fanout`] is a cloneable handle around an `Arc`, holding one outbox per
//! member in a map behind a plain mutex. Nothing awaits while the lock is
//! held: sending is a `try_send` into each bounded queue, so a slow member
//! is disconnected instead of slowing the room. Each line is framed once
//! and the same bytes are shared by every receiver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use porter_wire::{EncodedFrame, FrameCodec};
use tokio::sync::mpsc;
use tracing::warn;

use super::bus::{InstanceId, Line, LineKind, MemberId};
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
    name: String,
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

    /// Adds a member; returns how many there are now.
    pub(crate) fn add(&self, id: MemberId, name: &str, outbox: Outbox) -> usize {
        let mut members = self.members();
        members.insert(
            id,
            Member {
                name: name.to_owned(),
                outbox,
            },
        );
        members.len()
    }

    /// Removes a member; returns its name, if it was one, and how many are
    /// left.
    pub(crate) fn remove(&self, id: MemberId) -> (Option<String>, usize) {
        let mut members = self.members();
        let left = members.remove(&id).map(|member| member.name);
        (left, members.len())
    }

    /// Delivers `line` to every member here but its sender, and a member's
    /// line to the console; returns how many members it was queued for.
    pub(crate) fn deliver(&self, line: &Line) -> usize {
        let encoded;
        let frame = match &line.frame {
            Some(frame) => frame,
            None => match EncodedFrame::say(&self.inner.codec, &line.text, &line.from) {
                Ok(frame) => {
                    encoded = frame;
                    &encoded
                }
                Err(err) => {
                    warn!(cause = %err, from = %line.from, "line from the bus does not fit in a frame, dropped");
                    return 0;
                }
            },
        };
        let except = (line.origin.instance == self.inner.instance)
            .then_some(line.origin.member)
            .flatten();
        let mut delivered = 0;
        for (id, member) in self.members().iter() {
            if Some(*id) == except {
                continue;
            }
            // A full queue disconnects that member (logged by the outbox);
            // the others are served regardless.
            if member.outbox.send(frame.clone()).is_ok() {
                delivered += 1;
            }
        }
        if line.kind == LineKind::Said {
            self.to_console(&line.from, &line.text);
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
