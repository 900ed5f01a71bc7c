//! Opening bench connections: connect, the client's own [`crate::handshake`]
//! with fixed answers, then the stream taken back with
//! [`crate::Connection::into_parts`] for the fast path, which reads the raw
//! stream (bytes the server sent right after `ready`, such as a chat line
//! from a participant that started early, come along in the read buffer).
//!
//! What is the bench's own here: connections are opened
//! [`OPEN_CONCURRENCY`] at a time, a handshake is bounded by
//! [`HANDSHAKE_TIMEOUT`], any `error` from the server is fatal, and every
//! failure becomes a counted [`Failure`] of a kind instead of an error.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use porter_wire::text::printable;
use porter_wire::{ErrorCode, FrameCodec, HEADER_LEN, Secret};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use super::OPEN_CONCURRENCY;
use super::report::{ErrorSummary, Failure, FailureKind};
use crate::answers::{Answerer, Ask, Notice};
use crate::connect::{ConnectOptions, Connector};
use crate::connection::{Connection, ConnectionParts, DEFAULT_MAX_INCOMING_FRAME_LEN};
use crate::error::{Ending, Error, Result, ServerError};
use crate::tls::{TlsConnector, Trust};
use crate::tokens::TokenJar;

/// A bench connection's stream: TCP, or TLS over TCP (`--tls`).
pub(crate) type BenchStream = Either<TcpStream, TlsStream<TcpStream>>;

/// Where bench connections go: the server, and the TLS trust when they
/// speak TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dial<'a> {
    pub(crate) connect: &'a ConnectOptions,
    pub(crate) tls: Option<&'a Trust>,
}

impl Dial<'_> {
    /// Opens one stream.
    async fn open(&self) -> crate::Result<BenchStream> {
        match self.tls {
            None => Ok(Either::Left(crate::connect(self.connect).await?)),
            Some(trust) => {
                let tls = TlsConnector::new(self.connect.clone(), trust.clone());
                Ok(Either::Right(tls.connect().await?))
            }
        }
    }
}

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

/// The first whole frame at the front of `buf`, read in place: its payload
/// (borrowed) and the bytes it takes, header included; `None` until a whole
/// frame is in. The caller advances its buffer once per batch of frames.
///
/// The bench's receive loops used [`FrameCodec::decode`], which splits a
/// `BytesMut` off per frame: `split_to`, `advance` and the drop of the
/// split-off handle were 16% of the bench's user-space instructions per
/// echoed message (callgrind, `scripts/callgrind-bench.sh`).
///
/// # Errors
/// [`porter_wire::Error::FrameTooLarge`] as soon as a header announces more
/// than the codec's maximum.
pub(crate) fn next_frame<'a>(
    codec: &FrameCodec,
    buf: &'a [u8],
) -> Result<Option<(&'a [u8], usize)>, porter_wire::Error> {
    Ok(codec
        .whole_frame_len(buf)?
        .map(|len| (&buf[HEADER_LEN..HEADER_LEN + len], HEADER_LEN + len)))
}

/// Opens one connection per login, [`OPEN_CONCURRENCY`] at a time: connect,
/// then the handshake unless `raw`.
pub(crate) async fn open_all(
    dial: Dial<'_>,
    logins: Vec<Login>,
    raw: bool,
) -> (Vec<Ready<BenchStream>>, ErrorSummary) {
    gather(
        logins,
        |login| async move { open_one(dial, &login, raw).await },
    )
    .await
}

/// Runs `attempt` on every item, [`OPEN_CONCURRENCY`] at a time; returns
/// what succeeded, and the failures counted.
pub(crate) async fn gather<I, F, R>(
    items: I,
    attempt: impl FnMut(I::Item) -> F,
) -> (Vec<R>, ErrorSummary)
where
    I: IntoIterator,
    F: Future<Output = Result<R, Failure>>,
{
    let mut attempts = futures_util::stream::iter(items)
        .map(attempt)
        .buffer_unordered(OPEN_CONCURRENCY);
    let mut done = Vec::new();
    let mut errors = ErrorSummary::default();
    while let Some(outcome) = attempts.next().await {
        match outcome {
            Ok(value) => done.push(value),
            Err(failure) => errors.add(failure),
        }
    }
    (done, errors)
}

/// Connects, then runs the handshake as `login` unless `raw`.
pub(crate) async fn open_one(
    dial: Dial<'_>,
    login: &Login,
    raw: bool,
) -> Result<Ready<BenchStream>, Failure> {
    let stream = dial
        .open()
        .await
        .map_err(|err| Failure::new(FailureKind::Connection, error_chain(&err)))?;
    if raw {
        return Ok(Ready {
            io: stream,
            read_buf: BytesMut::new(),
            token: None,
        });
    }
    handshake(stream, login).await
}

/// Runs the client's handshake up to `ready`, bounded by
/// [`HANDSHAKE_TIMEOUT`], and takes the connection apart.
async fn handshake<T>(io: T, login: &Login) -> Result<Ready<T>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Connection::new(io);
    let mut answers = FixedAnswers {
        login,
        refusal: None,
    };
    let mut jar = CaughtToken {
        presented: match login {
            Login::Token(token) => Some(token.clone()),
            _ => None,
        },
        caught: None,
    };
    let outcome = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        crate::handshake(&mut conn, &mut answers, &mut jar),
    )
    .await;
    // Anything refused is fatal for a bench user: the answers are fixed, so
    // asking again would only repeat the refusal.
    if let Some(refusal) = answers.refusal {
        return Err(refused(&refusal));
    }
    match outcome {
        Ok(Ok(_)) => {
            let ConnectionParts { io, read_buf, .. } = conn.into_parts();
            Ok(Ready {
                io,
                read_buf,
                token: jar.caught,
            })
        }
        Ok(Err(err)) => Err(failure(err)),
        Err(_) => Err(Failure::new(
            FailureKind::Connection,
            format!("handshake not over after {} s", HANDSHAKE_TIMEOUT.as_secs()),
        )),
    }
}

/// The bench user's answers, fixed by its [`Login`]. Greetings are not
/// shown; the first `error` is kept, and fails every later answer.
struct FixedAnswers<'a> {
    login: &'a Login,
    /// The first `error` the server sent.
    refusal: Option<ServerError>,
}

impl Answerer for FixedAnswers<'_> {
    /// Never puts the answer in an error: it may be the password.
    async fn answer(&mut self, ask: &Ask) -> Result<Secret> {
        let cannot = |reason: &str| Error::NoAnswer {
            id: ask.id.clone(),
            text: ask.text.clone(),
            reason: reason.to_owned(),
        };
        if self.refusal.is_some() {
            return Err(cannot("the server refused an earlier answer"));
        }
        match (self.login, ask.id.as_str()) {
            (Login::Password { user, .. }, "user" | "name") => Ok(Secret::new(user.clone())),
            (Login::Password { password, .. }, "password" | "new_password" | "repeat_password") => {
                Ok(password.clone())
            }
            (Login::Anonymous, "name") => Ok(Secret::new("bench")),
            _ => Err(cannot("this bench mode has no answer to it")),
        }
    }

    fn notice(&mut self, notice: &Notice) {
        if let Notice::Error(error) = notice
            && self.refusal.is_none()
        {
            self.refusal = Some(error.clone());
        }
    }
}

/// Presents the login's token, if any, and catches the one the server hands
/// out. `session_invalid` comes with an `error`, which is fatal anyway, so
/// there is nothing to forget.
struct CaughtToken {
    presented: Option<Secret>,
    caught: Option<Secret>,
}

impl TokenJar for CaughtToken {
    fn token(&self) -> Option<Secret> {
        self.presented.clone()
    }
    fn store(&mut self, token: Secret, _user: &str, _expires_at: &str) {
        self.caught = Some(token);
    }
    fn forget(&mut self) {}
}

/// A refusal from the server during the handshake: a full server is a
/// connection failure, anything else a protocol one.
fn refused(error: &ServerError) -> Failure {
    let kind = if error.code == ErrorCode::Busy {
        FailureKind::Connection
    } else {
        FailureKind::Protocol
    };
    // "handshake refused: TEXT (CODE)", the server's text escaped.
    Failure::new(kind, format!("handshake {error}"))
}

/// A handshake that failed, by kind.
fn failure(err: Error) -> Failure {
    match err {
        Error::Ended(Ending {
            error: Some(error), ..
        }) => refused(&error),
        Error::Ended(Ending {
            bye: Some(text), ..
        }) => Failure::new(
            FailureKind::Connection,
            format!(
                "the server said bye during the handshake: {}",
                printable(&text)
            ),
        ),
        Error::Ended(Ending { bye: None, .. }) => Failure::new(
            FailureKind::Connection,
            "the server closed the connection during the handshake",
        ),
        Error::Wire(err) => Failure::wire(&err),
        Error::NoAnswer { id, .. } => Failure::new(
            FailureKind::Protocol,
            format!(
                "the server asked \"{}\", which this bench mode cannot answer",
                printable(&id)
            ),
        ),
        Error::Protocol(_) => Failure::new(FailureKind::Protocol, error_chain(&err)),
        err => Failure::new(FailureKind::Connection, error_chain(&err)),
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

#[cfg(test)]
mod tests {
    use futures_util::SinkExt;
    use porter_wire::{AuthMode, ClientMessage, EncodedFrame, ServerMessage, decode_message};
    use tokio::io::DuplexStream;
    use tokio_util::codec::Framed;

    use super::*;

    /// Runs the bench handshake as `login` against a server that sends
    /// `welcome` and then each message of `script`, reading after each one
    /// what the client says to it (if anything, within 200 ms). Returns the
    /// outcome and what the client said.
    async fn bench_handshake(
        login: Login,
        script: Vec<ServerMessage>,
    ) -> (Result<Ready<DuplexStream>, Failure>, Vec<ClientMessage>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let peer = tokio::spawn(async move {
            let mut framed = Framed::new(server, incoming_codec());
            let codec = FrameCodec::new();
            let mut received = Vec::new();
            let welcome = ServerMessage::Welcome {
                server: "fake/1".into(),
                protocol: porter_wire::PROTOCOL_VERSION,
                auth: AuthMode::Password,
                hint: None,
            };
            for message in std::iter::once(welcome).chain(script) {
                let frame = EncodedFrame::message(&codec, &message).unwrap();
                framed.send(frame).await.unwrap();
                // Read what the client says to it, if it says anything soon.
                let next = tokio::time::timeout(Duration::from_millis(200), framed.next()).await;
                if let Ok(Some(Ok(payload))) = next {
                    received.push(decode_message(&payload).unwrap());
                }
            }
            received
        });
        let result = handshake(client, &login).await;
        (result, peer.await.unwrap())
    }

    fn password_login() -> Login {
        Login::Password {
            user: "bench-1".into(),
            password: Secret::new("pw"),
        }
    }

    #[tokio::test]
    async fn a_password_login_answers_from_the_login_and_catches_the_token() {
        let ask = |id: &str| ServerMessage::Ask {
            id: id.into(),
            text: format!("{id}:"),
            secret: id != "user",
        };
        let (result, received) = bench_handshake(
            password_login(),
            vec![
                ask("user"),
                ask("password"),
                ServerMessage::Session {
                    token: Secret::new("tok"),
                    user: "bench-1".into(),
                    expires_at: "2100-01-01T00:00:00Z".into(),
                },
                ServerMessage::Ready {
                    user: "bench-1".into(),
                },
            ],
        )
        .await;
        let ready = result.unwrap_or_else(|f| panic!("{}", f.detail));
        assert_eq!(ready.token, Some(Secret::new("tok")));
        assert_eq!(
            received[1..],
            [
                ClientMessage::Answer {
                    id: "user".into(),
                    text: Secret::new("bench-1")
                },
                ClientMessage::Answer {
                    id: "password".into(),
                    text: Secret::new("pw")
                },
            ]
        );
    }

    #[tokio::test]
    async fn any_error_is_fatal_and_only_a_busy_server_is_a_connection_failure() {
        let error = |code| ServerMessage::Error {
            code,
            text: "no".into(),
        };
        let ready = ServerMessage::Ready {
            user: "bench-1".into(),
        };
        let (result, _) = bench_handshake(
            password_login(),
            vec![error(ErrorCode::BadCredentials), ready.clone()],
        )
        .await;
        let failure = result
            .err()
            .expect("an error is fatal even when ready follows");
        assert_eq!(failure.kind, FailureKind::Protocol);
        assert!(
            failure.detail.starts_with("handshake refused: no"),
            "{}",
            failure.detail
        );
        let (result, _) = bench_handshake(Login::Anonymous, vec![error(ErrorCode::Busy)]).await;
        assert_eq!(result.err().unwrap().kind, FailureKind::Connection);
    }

    #[tokio::test]
    async fn a_question_the_login_cannot_answer_is_a_protocol_failure() {
        let (result, _) = bench_handshake(
            Login::Anonymous,
            vec![ServerMessage::Ask {
                id: "password".into(),
                text: "Password:".into(),
                secret: true,
            }],
        )
        .await;
        let failure = result.err().unwrap();
        assert_eq!(failure.kind, FailureKind::Protocol);
        assert!(
            failure.detail.contains("\"password\""),
            "{}",
            failure.detail
        );
    }
}
