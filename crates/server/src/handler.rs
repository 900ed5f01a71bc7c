//! One connection from accept to close: `welcome`, the handshake under its
//! timeout, then the service loop, each step `select!`ing on shutdown and on
//! the connection's own close signal. Whatever goes wrong is logged here and
//! ends this connection only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use porter_wire::{ClientMessage, EncodedFrame, ErrorCode, FrameCodec, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn};

use crate::auth::Auth;
use crate::config::Config;
use crate::connection::{Closer, Connection, Reason, SendError};
use crate::handshake::{Authenticator, refuse_out_of_turn};
use crate::handshake::{Dialog, Ended, Identity, error, handshake, next_message};
use crate::service::Service;
use crate::shutdown::Shutdown;

/// After the last frame went out: how long to wait for the client to close
/// before closing regardless. See [`crate::connection::linger`].
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Messages served without waiting between two looks at the stop signals:
/// a client that keeps the connection busy still sees a shutdown (or its
/// own disconnection) within this many messages.
const STOP_CHECK_EVERY: u32 = 64;

/// What every connection shares, built once by [`crate::run`].
#[derive(Debug)]
pub(crate) struct Shared {
    /// The limits.
    pub(crate) config: Config,
    /// Frames out, and frames in after `ready`, are held to
    /// `config.max_frame_len`.
    pub(crate) codec: FrameCodec,
    /// Frames in before `ready` are held to this smaller limit.
    pub(crate) pre_login_max_frame_len: usize,
    /// The same first frame for everyone, encoded once.
    pub(crate) welcome: EncodedFrame,
    /// Echo, or the chat hub.
    pub(crate) service: Service,
    /// The auth mode's handshake.
    pub(crate) auth: Auth,
    /// Shutdown signals and the task tracker.
    pub(crate) shutdown: Shutdown,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        service: Service,
        auth: Auth,
        shutdown: Shutdown,
    ) -> Result<Shared, porter_wire::Error> {
        let codec = FrameCodec::with_max_frame_len(config.max_frame_len);
        let pre_login_max_frame_len = config.effective_pre_login_max_frame_len();
        let welcome = EncodedFrame::message(
            &codec,
            &ServerMessage::Welcome {
                server: config.server_name.clone(),
                protocol: porter_wire::PROTOCOL_VERSION,
                auth: auth.mode(),
            },
        )?;
        Ok(Shared {
            config,
            codec,
            pre_login_max_frame_len,
            welcome,
            service,
            auth,
            shutdown,
        })
    }
}

/// Serves one accepted connection; `permit` is its slot under
/// `max_connections`, released when this returns.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let closer = Closer::child_of(&shared.shutdown.abort);
    let mut conn = Connection::new(
        stream,
        peer,
        shared.codec,
        shared.config.outgoing_queue,
        closer.clone(),
    );
    // Small until `ready`: a stranger cannot make us buffer much.
    conn.set_max_frame_len(shared.pre_login_max_frame_len);
    info!(peer = %peer, "connected");

    let mut user = None;
    let reason = converse(&mut conn, &shared, &mut user).await;
    let user = user.as_deref().unwrap_or("-");
    let protocol_errors = conn.protocol_errors();
    match reason {
        Reason::Protocol(_)
        | Reason::QueueFull
        | Reason::Timeout
        | Reason::Io(_)
        | Reason::ServerError => {
            warn!(peer = %peer, user = %user, reason = %reason, protocol_errors, "disconnected");
        }
        _ => info!(peer = %peer, user = %user, reason = %reason, protocol_errors, "disconnected"),
    }

    // What is owed goes out (the farewell frame last) unless the connection
    // was closed (hard stop, full queue, broken socket), or the client does
    // not read: then the grace period ends it.
    if closer.is_closed() {
        return;
    }
    let written = tokio::select! {
        biased;
        () = closer.closed() => false,
        r = tokio::time::timeout(shared.config.shutdown_grace, conn.finish()) => match r {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                debug!(peer = %peer, cause = %err, "final frames not written");
                false
            }
            Err(_) => {
                debug!(peer = %peer, "final frames not taken in time");
                false
            }
        },
    };
    if written {
        conn.linger(LINGER, closer.closed()).await;
    }
    drop(permit);
}

/// The connection's life until it must end; returns why. The farewell frame
/// (`error`, `bye`) is written into the connection's buffer before returning
/// when there is one.
async fn converse<S>(
    conn: &mut Connection<S>,
    shared: &Shared,
    user_out: &mut Option<String>,
) -> Reason
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = &shared.shutdown.graceful;
    let closer = conn.closer().clone();
    conn.write_frame(&shared.welcome);

    // Futures live inside these blocks so that `conn` is free again when a
    // branch is handled.
    let step = {
        let limit = shared.config.handshake_timeout;
        // Boxed: the handshake (with the auth modes' store calls) is large
        // and short-lived; the task that then serves the client for hours
        // should not carry its size.
        let hs = tokio::time::timeout(limit, Box::pin(handshake(conn, &shared.auth)));
        tokio::select! {
            biased;
            () = graceful.cancelled() => Step::Shutdown,
            () = closer.closed() => Step::Closed,
            r = hs => match r {
                Err(_) => Step::TimedOut,
                Ok(r) => Step::Identified(r),
            },
        }
    };
    let identity: Identity = match step {
        Step::Shutdown => return farewell(conn),
        Step::Closed => return closer.reason(),
        Step::TimedOut => {
            let limit = shared.config.handshake_timeout;
            warn!(peer = %conn.peer(), timeout_ms = limit.as_millis() as u64, "handshake timed out");
            let _ = conn.send(&error(ErrorCode::Timeout, "handshake took too long"));
            return Reason::Timeout;
        }
        Step::Identified(Err(reason)) => {
            info!(peer = %conn.peer(), reason = %reason, "handshake failed");
            return reason;
        }
        Step::Identified(Ok(identity)) => identity,
    };
    info!(peer = %conn.peer(), user = %identity.user, auth = %shared.auth.mode(), "handshake complete");
    *user_out = Some(identity.user.clone());
    conn.set_max_frame_len(shared.config.max_frame_len);

    let participant = shared.service.join(&identity.user, conn);
    // The stop signals, made once: a fresh `cancelled()` future per message
    // registered and dropped a waiter each time (about 6% of the profile).
    let stop = async {
        tokio::select! {
            biased;
            () = graceful.cancelled() => Next::Shutdown,
            () = closer.closed() => Next::Closed,
        }
    };
    tokio::pin!(stop);
    let mut served: u32 = 0;
    loop {
        // A message already read (the rest of a pipelined batch) is served
        // at once; only when the client must be waited for are the stop
        // signals waited on too. Polling their futures, and even reading
        // their flags, takes a lock, so a client that never lets the
        // connection wait has the flags read every STOP_CHECK_EVERY
        // messages.
        served = served.wrapping_add(1);
        let check = served.is_multiple_of(STOP_CHECK_EVERY);
        let step = if check && graceful.is_cancelled() {
            Next::Shutdown
        } else if check && closer.is_closed() {
            Next::Closed
        } else if let Some(m) = next_message(conn).now_or_never() {
            Next::Message(m)
        } else {
            tokio::select! {
                biased;
                next = &mut stop => next,
                m = next_message(conn) => Next::Message(m),
            }
        };
        let message = match step {
            Next::Shutdown => return farewell(conn),
            Next::Closed => return closer.reason(),
            Next::Message(Err(reason)) => return reason,
            Next::Message(Ok(message)) => message,
        };
        let outcome = match message {
            ClientMessage::Say { text } => match participant.say(conn, &text) {
                Ok(()) => Ok(()),
                Err(SendError::Encode(err)) => {
                    if conn.count_protocol_error() {
                        info!(peer = %conn.peer(), cause = %err, "line too long to pass on");
                    }
                    conn.send(&error(
                        ErrorCode::InvalidMessage,
                        "line too long to pass on",
                    ))
                }
                Err(SendError::QueueFull) => Err(Reason::QueueFull),
                Err(SendError::Closed) => Err(closer.reason()),
            },
            ClientMessage::Logout => match identity.session {
                Some(session) => return logout(conn, shared, &identity.user, &session).await,
                None => {
                    if conn.count_protocol_error() {
                        info!(peer = %conn.peer(), user = %identity.user, "logout without a session");
                    }
                    conn.send(&error(
                        ErrorCode::Unexpected,
                        "logout needs a session: this server has no passwords",
                    ))
                }
            },
            other => refuse_out_of_turn(conn, &other, "say or bye"),
        };
        if let Err(reason) = outcome {
            return reason;
        }
    }
}

enum Step {
    Shutdown,
    Closed,
    TimedOut,
    Identified(Result<Identity, Ended>),
}

enum Next {
    Shutdown,
    Closed,
    Message(Result<ClientMessage, Ended>),
}

/// Revokes the session the client logged in with, then says `bye`. Only
/// after the revocation is committed: the client takes `bye` as "done".
async fn logout<S>(
    conn: &mut Connection<S>,
    shared: &Shared,
    user: &str,
    session: &porter_store::TokenHash,
) -> Reason
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = porter_store::session_id(session);
    let Some(store) = shared.config.store.as_ref() else {
        // A session exists only in modes with a store.
        return Reason::ServerError;
    };
    match store
        .revoke_session(session, shared.config.clock.now())
        .await
    {
        Ok(revoked) => {
            info!(peer = %conn.peer(), user = %user, session = %id, revoked, result = "logout",
                "authentication");
            let _ = conn.send(&ServerMessage::Bye {
                text: "logged out".into(),
            });
            Reason::Logout
        }
        Err(err) => {
            tracing::error!(peer = %conn.peer(), user = %user, session = %id, cause = %err,
                operation = "revoke_session", "store failed");
            let _ = conn.send(&ServerMessage::Bye {
                text: crate::auth::SERVER_ERROR_TEXT.into(),
            });
            Reason::ServerError
        }
    }
}

/// Queues `bye` for a server shutdown.
fn farewell<S>(conn: &mut Connection<S>) -> Reason
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = conn.send(&ServerMessage::Bye {
        text: "server shutting down".into(),
    });
    Reason::Shutdown
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Semaphore;

    fn shared(config: Config) -> Arc<Shared> {
        Arc::new(
            Shared::new(
                config,
                Service::Echo,
                Auth::None(crate::handshake::NoAuth),
                Shutdown::default(),
            )
            .unwrap(),
        )
    }

    async fn frames_until_close(client: &mut tokio::io::DuplexStream) -> Vec<ServerMessage> {
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut out = Vec::new();
        while let Some(frame) = FrameCodec::new().decode(&mut buf).unwrap() {
            out.push(porter_wire::decode_message(&frame).unwrap());
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_gets_a_timeout_error_after_the_handshake_limit() {
        let config = Config {
            handshake_timeout: Duration::from_secs(30),
            ..Config::default()
        };
        let shared = shared(config);
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let (server, mut client) = tokio::io::duplex(4096);
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let start = tokio::time::Instant::now();
        let serving = tokio::spawn(serve(server, peer, shared, permit));
        let frames = frames_until_close(&mut client).await;
        assert!(start.elapsed() >= Duration::from_secs(30));
        assert!(matches!(frames[0], ServerMessage::Welcome { .. }));
        assert!(matches!(
            frames[1],
            ServerMessage::Error {
                code: ErrorCode::Timeout,
                ..
            }
        ));
        assert_eq!(frames.len(), 2);
        drop(client);
        serving.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_client_is_not_timed_out() {
        let shared = shared(Config::default());
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let (server, mut client) = tokio::io::duplex(4096);
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let serving = tokio::spawn(serve(server, peer, shared, permit));
        let hello = br#"{"type":"hello"}"#;
        client
            .write_all(&(hello.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(hello).await.unwrap();
        // Well past the handshake limit, then leave politely.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let bye = br#"{"type":"bye"}"#;
        client
            .write_all(&(bye.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(bye).await.unwrap();
        let frames = frames_until_close(&mut client).await;
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(
            frames[1],
            ServerMessage::Ready {
                user: "127.0.0.1:9".into()
            }
        );
        drop(client);
        serving.await.unwrap();
    }
}
