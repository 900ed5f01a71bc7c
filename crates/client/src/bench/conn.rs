//! Opening bench connections: TCP connect, and a handshake that keeps the
//! bytes it read ahead.
//!
//! The bench does not use [`crate::handshake`] because a [`crate::Connection`]
//! cannot give back its framed read buffer, and the fast path below reads the
//! raw stream: bytes the server sent right after `ready` (a chat line from a
//! participant that started early) would be lost and the stream would lose
//! its frame boundaries. This handshake is the same dialogue (PROTOCOL.md
//! section 4) reduced to what a bench user needs: fixed answers, a token
//! kept, any `error` fatal.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use porter_wire::{ClientMessage, ErrorCode, FrameCodec, Secret, ServerMessage, decode_message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::report::{Failure, FailureKind};
use crate::connect::ConnectOptions;
use crate::connection::DEFAULT_MAX_INCOMING_FRAME_LEN;
use crate::handshake::CLIENT_NAME;

/// How long one handshake may take. Above the server's own default (30 s):
/// during the login phase a bench user may queue behind many Argon2 hashes,
/// and the server, not the bench, should be the one to give up.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Who a bench connection logs in as.
#[derive(Debug, Clone)]
pub(crate) enum Login {
    /// `auth: none` (or `ip`, answering `name` with the user).
    Anonymous,
    /// A user name and password: registers the user when the server asks for
    /// a new password, logs in otherwise.
    Password {
        /// The user name (also the answer to `name`).
        user: String,
        /// The password, for `password`, `new_password` and `repeat_password`.
        password: Secret,
    },
    /// A session token presented in `hello`; `session_invalid` is a failure.
    Token(Secret),
}

/// A connection past `ready`.
pub(crate) struct Ready<T> {
    /// The stream.
    pub io: T,
    /// Bytes read after the `ready` frame, to be decoded before reading more.
    pub read_buf: BytesMut,
    /// The session token the server handed out, if any.
    pub token: Option<Secret>,
}

/// The codec bench connections read with: the client's incoming limit.
pub(crate) fn incoming_codec() -> FrameCodec {
    FrameCodec::with_max_frame_len(DEFAULT_MAX_INCOMING_FRAME_LEN)
}

/// Connects to the server.
pub(crate) async fn open(options: &ConnectOptions) -> Result<TcpStream, Failure> {
    crate::connect(options)
        .await
        .map_err(|err| Failure::new(FailureKind::Connection, error_chain(&err)))
}

/// Runs the client side of the handshake up to `ready`, bounded by
/// [`HANDSHAKE_TIMEOUT`].
pub(crate) async fn handshake<T>(io: T, login: &Login) -> Result<Ready<T>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, dialogue(io, login)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            FailureKind::Connection,
            format!("handshake not over after {} s", HANDSHAKE_TIMEOUT.as_secs()),
        )),
    }
}

async fn dialogue<T>(io: T, login: &Login) -> Result<Ready<T>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(io, incoming_codec());
    let mut token = None;
    loop {
        let payload = match framed.next().await {
            None => {
                return Err(Failure::new(
                    FailureKind::Connection,
                    "the server closed the connection during the handshake",
                ));
            }
            Some(Err(err)) => return Err(Failure::wire(&err)),
            Some(Ok(payload)) if payload.is_empty() => continue,
            Some(Ok(payload)) => payload,
        };
        let message: ServerMessage = decode_message(&payload).map_err(|err| Failure::wire(&err))?;
        let reply = match message {
            ServerMessage::Welcome { .. } => Some(ClientMessage::Hello {
                client: Some(CLIENT_NAME.to_owned()),
                token: match login {
                    Login::Token(token) => Some(token.clone()),
                    _ => None,
                },
            }),
            ServerMessage::Ask { id, .. } => Some(ClientMessage::Answer {
                text: answer(login, &id)?,
                id,
            }),
            ServerMessage::Session { token: issued, .. } => {
                token = Some(issued);
                None
            }
            ServerMessage::Ready { .. } => {
                let FramedParts { io, read_buf, .. } = framed.into_parts();
                return Ok(Ready {
                    io,
                    read_buf,
                    token,
                });
            }
            // Anything refused is fatal for a bench user: the answers are
            // fixed, so asking again would only repeat the refusal.
            ServerMessage::Error { code, text } => {
                return Err(Failure::new(
                    if code == ErrorCode::Busy {
                        FailureKind::Connection
                    } else {
                        FailureKind::Protocol
                    },
                    format!("handshake refused: {text} ({code})"),
                ));
            }
            ServerMessage::Bye { text } => {
                return Err(Failure::new(
                    FailureKind::Connection,
                    format!("the server said bye during the handshake: {text}"),
                ));
            }
            // Greetings and unknown messages need no reply.
            _ => None,
        };
        if let Some(reply) = reply {
            framed
                .send(&reply)
                .await
                .map_err(|err| Failure::wire(&err))?;
        }
    }
}

/// The fixed answer to `ask {id}`. Never put the answer in an error: it may
/// be the password.
fn answer(login: &Login, id: &str) -> Result<Secret, Failure> {
    match (login, id) {
        (Login::Password { user, .. }, "user" | "name") => Ok(Secret::new(user.clone())),
        (Login::Password { password, .. }, "password" | "new_password" | "repeat_password") => {
            Ok(password.clone())
        }
        (Login::Anonymous, "name") => Ok(Secret::new("bench")),
        _ => Err(Failure::new(
            FailureKind::Protocol,
            format!("the server asked {id:?}, which this bench mode cannot answer"),
        )),
    }
}

/// An error and its causes on one line, as the binary prints them.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
