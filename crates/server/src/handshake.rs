//! The step between `welcome` and `ready`: who is this client?
//!
//! The dialogue around it is fixed (S `welcome` · C `hello` · ... · S
//! `ready`); what happens in the middle belongs to an [`Authenticator`],
//! which talks through a [`Dialog`] and returns an [`Identity`]. [`NoAuth`]
//! lives here; the `ip` and `password` modes, each with a store behind it,
//! live in `crate::auth`.

use std::future::Future;
use std::net::SocketAddr;

use porter_store::TokenHash;
use porter_wire::{AuthMode, ClientMessage, ErrorCode, Secret, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

use crate::connection::{Connection, Incoming, ReadEnd, Reason};

/// Who a client turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The name it is known by after `ready`. Unique among connections with
    /// `auth: none`; with `ip`, two clients behind one address share it.
    pub(crate) user: String,
    /// The hash of the session token this client logged in with or was
    /// given (`password` mode), so that `logout` can revoke it. The hash, not
    /// the token: nothing kept in memory logs anyone in.
    pub(crate) session: Option<TokenHash>,
}

/// What the client said in `hello`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hello {
    /// Client name and version, for the log.
    pub(crate) client: Option<String>,
    /// A session token, for the `password` mode.
    pub(crate) token: Option<Secret>,
}

/// How a handshake ends when it does not produce an identity: the reason to
/// log as the connection closes. Whatever must be said to the client has
/// been queued already.
pub(crate) type Ended = Reason;

/// The conversation an [`Authenticator`] can have with a client.
pub(crate) trait Dialog: Send {
    /// Queues a message (a greeting `say`, an `error`, a `session`).
    fn send(&mut self, message: &ServerMessage) -> Result<(), Ended>;

    /// Sends `ask{id, text, secret}` and waits for the matching `answer`.
    /// Anything else in the meantime gets the protocol's error and the
    /// question stands.
    fn ask(
        &mut self,
        id: &str,
        text: &str,
        secret: bool,
    ) -> impl Future<Output = Result<Secret, Ended>> + Send;
}

/// One way of identifying clients (an auth mode).
pub(crate) trait Authenticator: Send + Sync + 'static {
    /// Announced in `welcome`.
    fn mode(&self) -> AuthMode;

    /// Everything between `hello` and `ready`.
    fn authenticate<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        hello: Hello,
    ) -> impl Future<Output = Result<Identity, Ended>> + Send;
}

/// `auth: none`: everyone is let in at once, known by their address, which
/// is unique per connection and tells participants apart in chat.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoAuth;

impl Authenticator for NoAuth {
    fn mode(&self) -> AuthMode {
        AuthMode::None
    }

    async fn authenticate<D: Dialog>(
        &self,
        _dialog: &mut D,
        peer: SocketAddr,
        _hello: Hello,
    ) -> Result<Identity, Ended> {
        Ok(Identity {
            user: peer.to_string(),
            session: None,
        })
    }
}

/// Runs the whole handshake after `welcome` was queued: waits for `hello`,
/// lets `auth` identify the client, and queues `ready`.
pub(crate) async fn handshake<S, A>(conn: &mut Connection<S>, auth: &A) -> Result<Identity, Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Authenticator,
{
    let hello = loop {
        match next_message(conn).await? {
            ClientMessage::Hello { client, token } => break Hello { client, token },
            other => refuse_out_of_turn(conn, &other, "hello")?,
        }
    };
    debug!(peer = %conn.peer(), client = %hello.client.as_deref().unwrap_or("-"), "hello");
    let peer = conn.peer();
    let identity = auth.authenticate(conn, peer, hello).await?;
    conn.send(&ServerMessage::Ready {
        user: identity.user.clone(),
    })?;
    Ok(identity)
}

/// The next message of the protocol, answering the frames that are not one
/// (`invalid_message`, `unknown_type`) and skipping keep-alives. A client
/// `bye` ends the connection cleanly.
pub(crate) async fn next_message<S>(conn: &mut Connection<S>) -> Result<ClientMessage, Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        match conn.read_message().await {
            Ok(Incoming::KeepAlive) => {}
            Ok(Incoming::Message(ClientMessage::Bye)) => return Err(Reason::CleanBye),
            Ok(Incoming::Message(ClientMessage::Unknown)) => {
                if conn.count_protocol_error() {
                    info!(peer = %conn.peer(), "unknown message type");
                }
                conn.send(&error(ErrorCode::UnknownType, "unknown message type"))?;
            }
            Ok(Incoming::Message(message)) => return Ok(message),
            Ok(Incoming::Invalid(err)) => {
                if conn.count_protocol_error() {
                    info!(peer = %conn.peer(), cause = %err, "invalid message");
                }
                conn.send(&error(ErrorCode::InvalidMessage, &err.to_string()))?;
            }
            Err(ReadEnd::TooLarge { len, max }) => {
                warn!(peer = %conn.peer(), len, max, "frame too large");
                let text = format!("frame of {len} bytes exceeds the maximum of {max}");
                // The stream cannot be resynchronised: answer, then close.
                let _ = conn.send(&error(ErrorCode::FrameTooLarge, &text));
                return Err(Reason::Protocol("frame too large"));
            }
            Err(ReadEnd::Closed(reason)) => return Err(reason),
        }
    }
}

/// Answers a valid message that does not belong here with `unexpected`.
pub(crate) fn refuse_out_of_turn<S>(
    conn: &mut Connection<S>,
    message: &ClientMessage,
    expected: &str,
) -> Result<(), Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let got = message.type_name();
    if conn.count_protocol_error() {
        info!(peer = %conn.peer(), got, expected, "unexpected message");
    }
    conn.send(&error(
        ErrorCode::Unexpected,
        &format!("unexpected {got}: expected {expected}"),
    ))
}

/// An `error` message.
pub(crate) fn error(code: ErrorCode, text: &str) -> ServerMessage {
    ServerMessage::Error {
        code,
        text: text.to_owned(),
    }
}

impl<S> Dialog for Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn send(&mut self, message: &ServerMessage) -> Result<(), Ended> {
        match self.write_message(message) {
            Ok(()) => Ok(()),
            Err(crate::connection::SendError::QueueFull) => Err(Reason::QueueFull),
            Err(crate::connection::SendError::Closed) => Err(self.closer().reason()),
            Err(crate::connection::SendError::Encode(err)) => {
                Err(Reason::Io(format!("cannot encode a reply: {err}")))
            }
        }
    }

    async fn ask(&mut self, id: &str, text: &str, secret: bool) -> Result<Secret, Ended> {
        self.send(&ServerMessage::Ask {
            id: id.to_owned(),
            text: text.to_owned(),
            secret,
        })?;
        loop {
            match next_message(self).await? {
                ClientMessage::Answer { id: got, text } if got == id => return Ok(text),
                other => refuse_out_of_turn(self, &other, "answer")?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Closer;
    use bytes::BytesMut;
    use porter_wire::FrameCodec;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_util::sync::CancellationToken;

    /// Asks for a name, as the `ip` mode will: proves the abstraction carries
    /// a question and its answer.
    struct AskName;

    impl Authenticator for AskName {
        fn mode(&self) -> AuthMode {
            AuthMode::Ip
        }

        async fn authenticate<D: Dialog>(
            &self,
            dialog: &mut D,
            _peer: SocketAddr,
            _hello: Hello,
        ) -> Result<Identity, Ended> {
            let name = dialog.ask("name", "Your name?", false).await?;
            Ok(Identity {
                user: name.into_inner(),
                session: None,
            })
        }
    }

    async fn send(client: &mut DuplexStream, json: &str) {
        client
            .write_all(&(json.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(json.as_bytes()).await.unwrap();
    }

    async fn recv(client: &mut DuplexStream, buf: &mut BytesMut) -> ServerMessage {
        loop {
            if let Some(frame) = FrameCodec::new().decode(buf).unwrap() {
                return porter_wire::decode_message(&frame).unwrap();
            }
            assert_ne!(client.read_buf(buf).await.unwrap(), 0, "closed early");
        }
    }

    #[tokio::test]
    async fn an_authenticator_can_ask_and_out_of_turn_messages_are_refused() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let closer = Closer::child_of(&CancellationToken::new());
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut conn = Connection::new(server, peer, FrameCodec::new(), 16, closer);
        let server = tokio::spawn(async move {
            let identity = handshake(&mut conn, &AskName).await;
            // `ready` is in the write buffer until the connection writes.
            conn.finish().await.unwrap();
            identity
        });

        let mut buf = BytesMut::new();
        send(&mut client, r#"{"type":"hello"}"#).await;
        assert!(matches!(
            recv(&mut client, &mut buf).await,
            ServerMessage::Ask { id, .. } if id == "name"
        ));
        send(&mut client, r#"{"type":"say","text":"hi"}"#).await;
        assert!(matches!(
            recv(&mut client, &mut buf).await,
            ServerMessage::Error {
                code: ErrorCode::Unexpected,
                ..
            }
        ));
        send(&mut client, r#"{"type":"answer","id":"name","text":"ada"}"#).await;
        assert_eq!(
            recv(&mut client, &mut buf).await,
            ServerMessage::Ready { user: "ada".into() }
        );
        let identity = server.await.unwrap().unwrap();
        assert_eq!(identity.user, "ada");
    }

    #[tokio::test]
    async fn no_auth_names_the_client_by_its_address() {
        struct Silent;
        impl Dialog for Silent {
            fn send(&mut self, _: &ServerMessage) -> Result<(), Ended> {
                Ok(())
            }
            async fn ask(&mut self, _: &str, _: &str, _: bool) -> Result<Secret, Ended> {
                Err(Reason::Eof)
            }
        }
        let peer: SocketAddr = "[::1]:5000".parse().unwrap();
        let identity = NoAuth
            .authenticate(&mut Silent, peer, Hello::default())
            .await
            .unwrap();
        assert_eq!(identity.user, "[::1]:5000");
        assert_eq!(NoAuth.mode(), AuthMode::None);
    }
}
