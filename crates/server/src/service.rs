//! What a ready client is served: `echo` or `chat`.
//!
//! The connection loop hands every `say` to its [`Participant`] and knows
//! nothing of either service.

use porter_wire::PlainText;

use crate::connection::Replies;
use crate::names::SERVER_NAME;
use crate::outbox::Outbox;
use crate::room::{Membership, Room, SayError};

/// [`SERVER_NAME`] as the sender of echoes, checked once (by the
/// compiler) to need no escaping, so an echo only copies it.
const SERVER: PlainText<'static> = match PlainText::new(SERVER_NAME) {
    Some(name) => name,
    None => panic!("the server's name must need no JSON escaping"),
};

/// The service of a running server.
#[derive(Debug, Clone)]
pub(crate) enum Service {
    /// Every `say` comes back from `server`.
    Echo,
    /// Every `say` goes to the other participants.
    Chat(Room),
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
    /// Lets a ready client in under `user`; the room reaches it through
    /// `outbox`, first with what it missed after the room line `since`.
    pub(crate) fn join(&self, user: &str, outbox: &Outbox, since: Option<u64>) -> Participant {
        match self {
            Service::Echo => Participant::Echo,
            Service::Chat(room) => Participant::Chat(room.join(user, outbox.clone(), since)),
        }
    }
}

impl Participant {
    /// The names in the chat room, sorted; `None` on a service with no room.
    pub(crate) fn who(&self) -> Option<Vec<String>> {
        match self {
            Participant::Echo => None,
            Participant::Chat(membership) => Some(membership.who()),
        }
    }

    /// Serves one private line from the client: to `to` alone. `None` on a
    /// service with no room.
    pub(crate) fn say_to(&self, to: &str, text: &str) -> Option<Result<(), SayError>> {
        match self {
            Participant::Echo => None,
            Participant::Chat(membership) => Some(membership.say_to(to, text)),
        }
    }

    /// [`Participant::say`] for a text known to need no escaping: an echo
    /// copies it into the reply without looking at it again.
    ///
    /// # Errors
    /// As [`Participant::say`].
    pub(crate) fn say_plain(
        &self,
        replies: &mut Replies<'_>,
        text: PlainText<'_>,
    ) -> Result<(), SayError> {
        match self {
            Participant::Echo => replies
                .write_plain_say(text, SERVER)
                .map_err(SayError::TooLong),
            Participant::Chat(membership) => membership.say(text.as_str()),
        }
    }

    /// Serves one `say` from the client. An echo is encoded straight into
    /// the connection's `replies` (no queue, no task hop) and goes out with
    /// the rest of the batch.
    ///
    /// # Errors
    /// [`SayError::TooLong`] when the reply or the line would not fit in a
    /// frame (the client should be told); [`SayError::Bus`] when the room
    /// could not take the line.
    pub(crate) fn say(&self, replies: &mut Replies<'_>, text: &str) -> Result<(), SayError> {
        match self {
            Participant::Echo => replies
                .write_say(text, SERVER_NAME)
                .map_err(SayError::TooLong),
            Participant::Chat(membership) => membership.say(text),
        }
    }
}
