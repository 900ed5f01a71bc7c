//! What a ready client is served: `echo` or `chat`.
//!
//! The connection loop hands every `say` to its [`Participant`] and knows
//! nothing of either service.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::{Connection, SendError};
use crate::hub::{Hub, Membership, SERVER_NAME};

/// The service of a running server.
#[derive(Debug, Clone)]
pub(crate) enum Service {
    /// Every `say` comes back from `server`.
    Echo,
    /// Every `say` goes to the other participants.
    Chat(Hub),
}

/// One ready client's side of the service.
#[derive(Debug)]
pub(crate) enum Participant {
    /// Replies are written on the client's own connection.
    Echo,
    /// A place in the room; dropping it leaves.
    Chat(Membership),
}

impl Service {
    /// Lets a ready client in under `user`; the hub reaches it through the
    /// connection's outbox.
    pub(crate) fn join<S>(&self, user: &str, conn: &Connection<S>) -> Participant
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self {
            Service::Echo => Participant::Echo,
            Service::Chat(hub) => Participant::Chat(hub.join(user, conn.outbox().clone())),
        }
    }
}

impl Participant {
    /// Serves one `say` from the client on `conn`. An echo is encoded
    /// straight into the connection's write buffer (no queue, no task
    /// hop) and goes out with the rest of the batch.
    ///
    /// # Errors
    /// [`SendError::Encode`] when the reply would not fit in a frame (the
    /// client should be told), other [`SendError`]s when the connection is
    /// ending.
    pub(crate) fn say<S>(&self, conn: &mut Connection<S>, text: &str) -> Result<(), SendError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self {
            Participant::Echo => conn.write_say(text, SERVER_NAME),
            Participant::Chat(membership) => {
                membership.say(text)?;
                Ok(())
            }
        }
    }
}
