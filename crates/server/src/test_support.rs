//! What the unit tests of several modules share: a peer address, and
//! reading back the frames a connection wrote.

use std::net::SocketAddr;

use bytes::BytesMut;
use porter_wire::{FrameCodec, ServerMessage};

/// The address test clients come from.
pub(crate) fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

/// Every message in `bytes`, which must hold whole frames only.
pub(crate) fn says(bytes: &[u8]) -> Vec<ServerMessage> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = FrameCodec::new().decode(&mut buf).unwrap() {
        out.push(porter_wire::decode_message(&frame).unwrap());
    }
    assert!(buf.is_empty(), "a partial frame was left");
    out
}

/// A line from `server`.
pub(crate) fn say(text: &str) -> ServerMessage {
    ServerMessage::say(text, "server")
}
