//! How others (the chat room) reach one client: a bounded queue of
//! pre-encoded, shared frames that the client's connection drains into its
//! write buffer whenever it waits.
//!
//! The outbox never waits: when the queue is full the client is not
//! reading, and it is disconnected rather than buffered without bound or
//! allowed to hold up whoever sends to it.
//!
//! The queue is tokio's unbounded channel with the bound kept beside it in
//! an atomic count. The bounded channel kept it in a semaphore whose every
//! released permit takes a lock: that release was the largest single cost
//! of a chat room's delivery (12% of the server's instructions, callgrind,
//! 100 participants all sending).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use porter_wire::EncodedFrame;
use tokio::sync::mpsc;
use tracing::warn;

use crate::close::{Closer, Reason};

/// Why a frame could not be queued or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The client is not reading; it has been told to close.
    #[error("outgoing queue full")]
    QueueFull,
    /// The connection is gone; it is ending anyway.
    #[error("connection closing")]
    Closed,
    /// The message does not fit in a frame.
    #[error(transparent)]
    Encode(#[from] porter_wire::Error),
}

/// The receiving end of a client's queue, drained by its connection.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<EncodedFrame>,
    /// Frames sent and not yet received.
    queued: Arc<AtomicUsize>,
}

/// The sending end of one client's queue, for others than the connection
/// itself (the chat room). Cheap to clone; never waits.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<EncodedFrame>,
    /// Frames sent and not yet received, shared with the inbox.
    queued: Arc<AtomicUsize>,
    /// The most that may be queued.
    capacity: usize,
    closer: Closer,
    peer: SocketAddr,
}

/// A queue of `capacity` frames (at least one) for the client at `peer`,
/// whose connection `closer` ends when the queue overflows.
pub(crate) fn channel(capacity: usize, closer: Closer, peer: SocketAddr) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox {
        tx,
        queued: queued.clone(),
        capacity: capacity.max(1),
        closer,
        peer,
    };
    (outbox, Inbox { rx, queued })
}

impl Outbox {
    /// Queues a frame. A full queue closes the connection: it is the one
    /// thing that keeps a client that does not read from costing memory or
    /// stalling whoever sends to it.
    pub(crate) fn send(&self, frame: EncodedFrame) -> Result<(), SendError> {
        // A place is taken first and given back if there was none, so that
        // senders racing for the last place cannot both have it.
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            if !self.closer.is_closed() {
                warn!(peer = %self.peer, capacity = self.capacity,
                    "outgoing queue full, disconnecting");
                self.closer.close(Reason::QueueFull);
            }
            return Err(SendError::QueueFull);
        }
        self.tx.send(frame).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            SendError::Closed
        })
    }

    /// The connection this outbox belongs to.
    #[cfg(test)]
    pub(crate) fn closer(&self) -> &Closer {
        &self.closer
    }
}

impl Inbox {
    /// The next frame, or the task registered to be woken for one; `None`
    /// once closed and empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<EncodedFrame>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(_)) = polled {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        polled
    }

    /// The next frame if one is queued.
    pub(crate) fn try_recv(&mut self) -> Result<EncodedFrame, mpsc::error::TryRecvError> {
        let frame = self.rx.try_recv()?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Ok(frame)
    }

    /// Takes no more frames; those queued can still be received.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porter_wire::{ErrorCode, FrameCodec, ServerMessage};
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn full_queue_closes_the_connection_with_a_reason() {
        let closer = Closer::child_of(&CancellationToken::new());
        // Nothing drains the queue of two.
        let (outbox, _inbox) = channel(2, closer, SocketAddr::from(([127, 0, 0, 1], 9)));
        let msg = ServerMessage::Error {
            code: ErrorCode::Busy,
            text: String::new(),
        };
        let frame = EncodedFrame::message(&FrameCodec::new(), &msg).unwrap();
        outbox.send(frame.clone()).unwrap();
        outbox.send(frame.clone()).unwrap();
        assert!(matches!(outbox.send(frame), Err(SendError::QueueFull)));
        assert!(outbox.closer().is_closed());
        assert_eq!(outbox.closer().reason(), Reason::QueueFull);
    }

    #[tokio::test]
    async fn a_frame_the_connection_took_frees_its_place() {
        let closer = Closer::child_of(&CancellationToken::new());
        let (outbox, mut inbox) = channel(2, closer, SocketAddr::from(([127, 0, 0, 1], 9)));
        let frame = EncodedFrame::say(&FrameCodec::new(), "hi", "ann").unwrap();
        outbox.send(frame.clone()).unwrap();
        outbox.send(frame.clone()).unwrap();
        assert_eq!(inbox.try_recv().unwrap(), frame);
        outbox.send(frame.clone()).unwrap();
        assert!(!outbox.closer().is_closed());
        assert!(matches!(
            outbox.send(frame.clone()),
            Err(SendError::QueueFull)
        ));
        // A closed inbox refuses without taking a place; what was queued
        // can still be taken.
        inbox.close();
        assert!(matches!(
            outbox.send(frame.clone()),
            Err(SendError::QueueFull)
        ));
        assert_eq!(inbox.try_recv().unwrap(), frame);
        assert_eq!(inbox.try_recv().unwrap(), frame);
        assert!(matches!(outbox.send(frame), Err(SendError::Closed)));
    }
}
