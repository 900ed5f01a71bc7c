//! The chat room: who is in it, and fan-out of each line to the others.
//!
//! [`Hub`] is a cloneable handle around an `Arc`, holding one outbox per
//! participant in a map behind a plain mutex. Nothing awaits while the lock
//! is held: sending is a `try_send` into each bounded queue, so a slow
//! participant is disconnected instead of slowing the room. Each line is
//! serialised and framed once and the same bytes are shared by every
//! receiver. Keeping fan-out behind this handle leaves room for a pub/sub
//! backend across servers later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use porter_wire::{EncodedFrame, FrameCodec};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::ConsoleLine;
use crate::connection::Outbox;

/// The name lines from the server itself (its console) carry.
pub(crate) const SERVER_NAME: &str = "server";

/// A handle to the chat room.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One entry per ready participant; the key is private to the hub so
    /// that a sender can be left out of its own fan-out.
    members: Mutex<HashMap<u64, Member>>,
    /// Source of member keys.
    next_id: AtomicU64,
    /// Frames are encoded with the connections' limits.
    codec: FrameCodec,
    /// Where client lines are shown at the server, if it has a console.
    console: Option<mpsc::Sender<ConsoleLine>>,
    /// Lines the console was too slow to take; it must never hold up the room.
    console_dropped: AtomicU64,
    /// Whether joins and leaves are announced to the others.
    announce: bool,
}

#[derive(Debug)]
struct Member {
    name: String,
    outbox: Outbox,
}

/// A participant's place in the room; leaving is dropping it.
#[derive(Debug)]
pub(crate) struct Membership {
    hub: Hub,
    id: u64,
    name: String,
}

impl Hub {
    pub(crate) fn new(
        codec: FrameCodec,
        console: Option<mpsc::Sender<ConsoleLine>>,
        announce: bool,
    ) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                members: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                codec,
                console,
                console_dropped: AtomicU64::new(0),
                announce,
            }),
        }
    }

    fn members(&self) -> MutexGuard<'_, HashMap<u64, Member>> {
        // A panic elsewhere while holding the lock cannot leave the map
        // half-updated (every update is one insert or remove), so carry on.
        self.inner
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a ready participant.
    pub(crate) fn join(&self, name: &str, outbox: Outbox) -> Membership {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let count = {
            let mut members = self.members();
            members.insert(
                id,
                Member {
                    name: name.to_owned(),
                    outbox,
                },
            );
            members.len()
        };
        info!(user = %name, participants = count, "joined chat");
        if self.inner.announce {
            self.announce(&format!("{name} joined"), Some(id));
        }
        Membership {
            hub: self.clone(),
            id,
            name: name.to_owned(),
        }
    }

    fn leave(&self, id: u64) {
        let (left, count) = {
            let mut members = self.members();
            (members.remove(&id), members.len())
        };
        if let Some(member) = left {
            info!(user = %member.name, participants = count, "left chat");
            if self.inner.announce {
                self.announce(&format!("{} left", member.name), None);
            }
        }
    }

    /// Sends `say{text, from}` to every participant but `except`, returning
    /// how many it was queued for.
    ///
    /// # Errors
    /// When the line does not fit in a frame once `from` is added.
    pub(crate) fn broadcast(
        &self,
        from: &str,
        text: &str,
        except: Option<u64>,
    ) -> Result<usize, porter_wire::Error> {
        // Encoded once; every receiver gets the same bytes.
        let frame = EncodedFrame::say(&self.inner.codec, text, from)?;
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
        Ok(delivered)
    }

    /// A line typed at the server's console, for everyone.
    pub(crate) fn console_line(&self, text: &str) {
        match self.broadcast(SERVER_NAME, text, None) {
            Ok(n) => debug!(receivers = n, "console line sent"),
            Err(err) => warn!(cause = %err, "console line not sent"),
        }
    }

    fn announce(&self, text: &str, except: Option<u64>) {
        if let Err(err) = self.broadcast(SERVER_NAME, text, except) {
            warn!(cause = %err, "announcement not sent");
        }
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

impl Membership {
    /// This participant says `text`: to the console and to everyone else.
    ///
    /// # Errors
    /// When the line does not fit in a frame once `from` is added.
    pub(crate) fn say(&self, text: &str) -> Result<usize, porter_wire::Error> {
        let delivered = self.hub.broadcast(&self.name, text, Some(self.id))?;
        self.hub.to_console(&self.name, text);
        Ok(delivered)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Closer, Connection};
    use std::net::SocketAddr;
    use tokio::io::DuplexStream;
    use tokio_util::sync::CancellationToken;

    fn member(port: u16, queue: usize) -> Connection<DuplexStream> {
        let (server, client) = tokio::io::duplex(1024);
        // Keep the client end alive for the test's duration.
        std::mem::forget(client);
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        Connection::new(
            server,
            peer,
            FrameCodec::new(),
            queue,
            Closer::child_of(&CancellationToken::new()),
        )
    }

    #[tokio::test]
    async fn a_line_reaches_everyone_but_its_sender() {
        let hub = Hub::new(FrameCodec::new(), None, false);
        let a = member(1, 8);
        let b = member(2, 8);
        let c = member(3, 8);
        let ma = hub.join("a", a.outbox().clone());
        let _mb = hub.join("b", b.outbox().clone());
        let _mc = hub.join("c", c.outbox().clone());
        assert_eq!(ma.say("hi").unwrap(), 2);
        drop(ma);
        assert_eq!(hub.broadcast("server", "x", None).unwrap(), 2);
    }

    #[tokio::test]
    async fn a_member_with_a_full_queue_is_closed_and_others_still_served() {
        let hub = Hub::new(FrameCodec::new(), None, false);
        let slow = member(1, 1);
        let fast = member(2, 100);
        let _ms = hub.join("slow", slow.outbox().clone());
        let _mf = hub.join("fast", fast.outbox().clone());
        for _ in 0..10 {
            hub.console_line("tick");
        }
        assert!(slow.closer().is_closed());
        assert!(!fast.closer().is_closed());
    }

    #[tokio::test]
    async fn a_slow_console_drops_lines_instead_of_blocking() {
        let (tx, mut rx) = mpsc::channel(1);
        let hub = Hub::new(FrameCodec::new(), Some(tx), false);
        let a = member(1, 8);
        let ma = hub.join("a", a.outbox().clone());
        ma.say("one").unwrap();
        ma.say("two").unwrap();
        assert_eq!(hub.console_dropped(), 1);
        let line = rx.recv().await.unwrap();
        assert_eq!((line.from.as_str(), line.text.as_str()), ("a", "one"));
    }
}
