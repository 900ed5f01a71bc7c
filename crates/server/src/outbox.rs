//! How others (the chat room) reach one client: a bounded queue of
//! pre-encoded, shared frames that the client's connection drains into its
//! write buffer whenever it waits.
//!
//! The outbox never waits: when the queue is full the client is not
//! reading, and it is disconnected rather than buffered without bound or
//! allowed to hold up whoever sends to it.

use std::net::SocketAddr;

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
pub(crate) type Inbox = mpsc::Receiver<EncodedFrame>;

/// The sending end of one client's queue, for others than the connection
/// itself (the chat room). Cheap to clone; never waits.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<EncodedFrame>,
    closer: Closer,
    peer: SocketAddr,
}

/// A queue of `capacity` frames (at least one) for the client at `peer`,
/// whose connection `closer` ends when the queue overflows.
pub(crate) fn channel(capacity: usize, closer: Closer, peer: SocketAddr) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Outbox { tx, closer, peer }, rx)
}

impl Outbox {
    /// Queues a frame. A full queue closes the connection: it is the one
    /// thing that keeps a client that does not read from costing memory or
    /// stalling whoever sends to it.
    pub(crate) fn send(&self, frame: EncodedFrame) -> Result<(), SendError> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.closer.is_closed() {
                    warn!(peer = %self.peer, capacity = self.tx.max_capacity(),
                        "outgoing queue full, disconnecting");
                    self.closer.close(Reason::QueueFull);
                }
                Err(SendError::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// The connection this outbox belongs to.
    #[cfg(test)]
    pub(crate) fn closer(&self) -> &Closer {
        &self.closer
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
}
