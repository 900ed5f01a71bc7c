//! The step between `welcome` and `ready`: who is this client?
//!
//! The dialogue around it is fixed (S `welcome` · C `hello` · ... · S
//! `ready`); what happens in the middle belongs to an [`Authenticator`],
//! which talks through a [`Dialog`] and returns an [`Identity`]. [`NoAuth`]
//! lives here; the `ip` and `password` modes, each with a store behind it,
//! live in `crate::auth`.

use std::future::Future;

use porter_store::TokenHash;
use porter_wire::{AuthMode, ClientMessage, Secret, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use crate::close::Reason;
use crate::peer::PeerInfo;
use crate::protocol::Client;

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
    /// (1.1) The last room `seq` the client saw: what it missed is
    /// replayed after `ready`.
    pub(crate) since: Option<u64>,
}

/// A client the handshake let in: who it is, and the room `seq` it asked to
/// recover from.
#[derive(Debug)]
pub(crate) struct Entrant {
    /// Who the client is.
    pub(crate) identity: Identity,
    /// `since` from its `hello`.
    pub(crate) since: Option<u64>,
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
        peer: &PeerInfo,
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
        peer: &PeerInfo,
        _hello: Hello,
    ) -> Result<Identity, Ended> {
        Ok(Identity {
            user: peer.addr.to_string(),
            session: None,
        })
    }
}

/// Runs the handshake after `welcome` was queued: waits for `hello` and
/// lets `auth` identify the client. The caller sends `ready` once it admits
/// the identity (the per-user cap).
pub(crate) async fn handshake<S, A>(client: &mut Client<S>, auth: &A) -> Result<Entrant, Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Authenticator,
{
    let hello = loop {
        match client.next_message().await? {
            ClientMessage::Hello {
                client: name,
                token,
                since,
            } => {
                break Hello {
                    client: name,
                    token,
                    since,
                };
            }
            other => client.refuse_out_of_turn(&other, "hello")?,
        }
    };
    debug!(peer = %client.peer(), client = %hello.client.as_deref().unwrap_or("-"), "hello");
    let peer = client.peer().clone();
    let since = hello.since;
    let identity = auth.authenticate(client, &peer, hello).await?;
    Ok(Entrant { identity, since })
}

impl<S> Dialog for Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn send(&mut self, message: &ServerMessage) -> Result<(), Ended> {
        Client::send(self, message)
    }

    async fn ask(&mut self, id: &str, text: &str, secret: bool) -> Result<Secret, Ended> {
        self.send(&ServerMessage::Ask {
            id: id.to_owned(),
            text: text.to_owned(),
            secret,
        })?;
        loop {
            match self.next_message().await? {
                ClientMessage::Answer { id: got, text } if got == id => return Ok(text),
                other => self.refuse_out_of_turn(&other, "answer")?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::Closer;
    use crate::connection::Connection;
    use bytes::BytesMut;
    use porter_wire::{ErrorCode, FrameCodec};
    use std::net::SocketAddr;
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
            _peer: &PeerInfo,
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
        let (_outbox, inbox) = crate::outbox::channel(16, closer.clone(), peer);
        let conn = Connection::new(server, peer, FrameCodec::new(), inbox, 16, closer.clone());
        let mut conn = Client::new(conn, PeerInfo::new(peer), closer);
        let server = tokio::spawn(async move {
            let entrant = handshake(&mut conn, &AskName).await;
            if let Ok(entrant) = &entrant {
                conn.send(&ServerMessage::Ready {
                    user: entrant.identity.user.clone(),
                })
                .unwrap();
            }
            // `ready` is in the write buffer until the connection writes.
            conn.conn_mut().finish().await.unwrap();
            entrant
        });

        let mut buf = BytesMut::new();
        send(&mut client, r#"{"type":"hello","since":7}"#).await;
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
        let entrant = server.await.unwrap().unwrap();
        assert_eq!(entrant.identity.user, "ada");
        assert_eq!(entrant.since, Some(7));
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
        let peer = PeerInfo::new("[::1]:5000".parse().unwrap());
        let identity = NoAuth
            .authenticate(&mut Silent, &peer, Hello::default())
            .await
            .unwrap();
        assert_eq!(identity.user, "[::1]:5000");
        assert_eq!(NoAuth.mode(), AuthMode::None);
    }
}
