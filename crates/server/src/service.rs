//! What a ready client is served: `echo` or `chat`.
//!
//! The connection loop hands every `say` to its [`Participant`] and knows
//! nothing of either service.

use porter_wire::ServerMessage;

use crate::connection::{Outbox, SendError};
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
    /// Replies go to this outbox.
    Echo(Outbox),
    /// A place in the room; dropping it leaves.
    Chat(Membership),
}

impl Service {
    /// Lets a ready client in under `user`.
    pub(crate) fn join(&self, user: &str, outbox: &Outbox) -> Participant {
        match self {
            Service::Echo => Participant::Echo(outbox.clone()),
            Service::Chat(hub) => Participant::Chat(hub.join(user, outbox.clone())),
        }
    }
}

impl Participant {
    /// Serves one `say`.
    ///
    /// # Errors
    /// [`SendError::Encode`] when the reply would not fit in a frame (the
    /// client should be told), other [`SendError`]s when the connection is
    /// ending.
    pub(crate) fn say(&self, text: String) -> Result<(), SendError> {
        match self {
            Participant::Echo(outbox) => outbox.send_message(&ServerMessage::Say {
                text,
                from: SERVER_NAME.to_owned(),
            }),
            Participant::Chat(membership) => {
                membership.say(&text)?;
                Ok(())
            }
        }
    }
}
