//! The dialogue with a server up to `ready`, and `logout` at the end of a
//! resumed session (PROTOCOL.md section 4).
//!
//! [`handshake`] reads `welcome`, sends `hello`, and answers every `ask`
//! through an [`Answerer`] until `ready`. Whatever is asked, the answer
//! comes from the answerer: a terminal prompt, scripted answers (flags,
//! environment) or a test. Session tokens go through a [`TokenJar`].
//! [`logout`] ends a resumed session: `logout`, then the server's `bye`.

use porter_wire::{AuthMode, ClientMessage, ErrorCode, PROTOCOL_VERSION, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::answers::{Answerer, Ask, Notice};
use crate::connection::Connection;
use crate::error::{Ending, Error, Result, ServerError};
use crate::tokens::TokenJar;

/// The `client` field of our `hello`.
pub const CLIENT_NAME: &str = concat!("porter/", env!("CARGO_PKG_VERSION"));

/// What the handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The server's name and version, from `welcome`.
    pub server: String,
    /// How the server identifies clients.
    pub auth: AuthMode,
    /// The name this client is known by, from `ready`.
    pub user: String,
}

/// Runs the client side of the handshake: reads `welcome`, sends `hello`
/// (with the jar's token), then answers every `ask` through `answerer` and
/// shows every `say` and `error` until `ready`.
///
/// # Errors
/// [`Error::Ended`] when the server says `bye` or closes first (carrying its
/// text and the `error` that came right before, such as `busy` or
/// `timeout`), [`Error::Protocol`] when the first frame is not `welcome`,
/// the answerer's errors, and [`Error::Wire`].
pub async fn handshake<T, A, J>(
    conn: &mut Connection<T>,
    answerer: &mut A,
    jar: &mut J,
) -> Result<SessionInfo>
where
    T: AsyncRead + AsyncWrite + Unpin,
    A: Answerer,
    J: TokenJar,
{
    handshake_since(conn, answerer, jar, None).await
}

/// [`handshake`] for a client that saw the chat room up to the line `since`
/// (1.1): sent in `hello`, so that the server replays what was missed after
/// `ready`, then says `recovered`.
///
/// # Errors
/// As [`handshake`].
pub async fn handshake_since<T, A, J>(
    conn: &mut Connection<T>,
    answerer: &mut A,
    jar: &mut J,
    since: Option<u64>,
) -> Result<SessionInfo>
where
    T: AsyncRead + AsyncWrite + Unpin,
    A: Answerer,
    J: TokenJar,
{
    let mut welcome: Option<(String, AuthMode)> = None;
    let mut errors = Errors::default();
    // The question being answered. While it is open the connection is
    // still read: a server that gives up (`timeout`), says `bye` or closes
    // ends the question at once, rather than after the person has typed an
    // answer no one will read.
    let mut open_ask: Option<Ask> = None;
    loop {
        let received = match open_ask.take() {
            None => conn.recv().await?,
            Some(ask) => {
                let answered = {
                    let answering = answerer.answer(&ask);
                    tokio::select! {
                        // What the server already said comes first.
                        biased;
                        message = conn.recv() => Err(message),
                        answer = answering => Ok(answer),
                    }
                };
                match answered {
                    Ok(answer) => {
                        conn.send(&ClientMessage::Answer {
                            id: ask.id,
                            text: answer?,
                        })
                        .await?;
                        continue;
                    }
                    // The answerer's future is gone: the prompt was
                    // abandoned. Unless the server is ending things, the
                    // question is asked again once the message is shown.
                    Err(message) => {
                        let message = message?;
                        if message.as_ref().is_some_and(|m| !ends_question(m)) {
                            open_ask = Some(ask);
                        }
                        message
                    }
                }
            }
        };
        let Some(message) = received else {
            return Err(Error::Ended(errors.ending(None)));
        };
        match message {
            // A server at its limit may refuse with `error` before any
            // `welcome`; that, and `bye`, are fine at any point.
            ServerMessage::Error { code, text } => {
                if code == ErrorCode::SessionInvalid {
                    jar.forget();
                }
                let error = ServerError { code, text };
                if errors.note(&error) {
                    answerer.notice(&Notice::Error(error));
                }
            }
            ServerMessage::Bye { text } => {
                return Err(Error::Ended(errors.ending(Some(text))));
            }
            ServerMessage::Welcome {
                server,
                protocol,
                auth,
                ..
            } if welcome.is_none() => {
                if protocol != PROTOCOL_VERSION {
                    tracing::warn!(
                        server = %server,
                        protocol,
                        ours = PROTOCOL_VERSION,
                        "server speaks another protocol version"
                    );
                }
                let hello = ClientMessage::Hello {
                    client: Some(CLIENT_NAME.to_owned()),
                    token: jar.token(),
                    since,
                };
                if let Err(err) = conn.send(&hello).await {
                    // A server at its limit sends `welcome`, `error{busy}`
                    // and closes: our `hello` may hit the closed socket.
                    // What it said before closing explains more than
                    // "broken pipe".
                    return Err(explain_send_failure(conn, answerer, errors, err).await);
                }
                welcome = Some((server, auth));
            }
            ServerMessage::Unknown => {
                tracing::debug!("skipping a message of unknown type");
            }
            other if welcome.is_none() => {
                return Err(Error::Protocol(format!(
                    "expected welcome first, got {}",
                    other.type_name()
                )));
            }
            ServerMessage::Welcome { .. } => {
                tracing::debug!("ignoring a second welcome");
            }
            ServerMessage::Ask { id, text, secret } => {
                open_ask = Some(Ask { id, text, secret });
            }
            ServerMessage::Say { text, from, .. } => {
                answerer.notice(&Notice::Say { from, text });
            }
            ServerMessage::Session {
                token,
                user,
                expires_at,
            } => jar.store(token, &user, &expires_at),
            ServerMessage::Ready { user } => {
                let Some((server, auth)) = welcome else {
                    // Unreachable: the guard above catches it.
                    return Err(Error::Protocol("ready before welcome".to_owned()));
                };
                return Ok(SessionInfo { server, auth, user });
            }
            // `ServerMessage` is non-exhaustive: newer messages are skipped.
            _ => tracing::debug!("skipping an unexpected message in the handshake"),
        }
    }
}

/// Whether `message`, arriving while a question is open, makes the question
/// moot: the server ends the connection, asks something else, or is done
/// asking.
fn ends_question(message: &ServerMessage) -> bool {
    match message {
        ServerMessage::Error { code, text } => ServerError {
            code: *code,
            text: text.clone(),
        }
        .ends_connection(),
        ServerMessage::Bye { .. } | ServerMessage::Ask { .. } | ServerMessage::Ready { .. } => true,
        _ => false,
    }
}

/// The errors of a handshake: each refusal the server goes on after is shown
/// when it arrives, and one it closes after is kept for the ending, so that
/// each is told exactly once.
#[derive(Debug, Default)]
struct Errors {
    last: Option<ServerError>,
    last_shown: bool,
}

impl Errors {
    /// Keeps `error` as the last one; `true` when it is to be shown now.
    fn note(&mut self, error: &ServerError) -> bool {
        self.last_shown = !error.ends_connection();
        self.last = Some(error.clone());
        self.last_shown
    }

    /// How the handshake ended, with `bye`'s text if there was one.
    fn ending(self, bye: Option<String>) -> Ending {
        Ending {
            bye,
            error: self.last,
            error_shown: self.last_shown,
        }
    }
}

/// After a failed send: reads what the server sent before it closed (an
/// `error`, a `bye`) and returns that ending, or `err` when it said nothing.
async fn explain_send_failure<T, A>(
    conn: &mut Connection<T>,
    answerer: &mut A,
    mut errors: Errors,
    err: Error,
) -> Error
where
    T: AsyncRead + AsyncWrite + Unpin,
    A: Answerer,
{
    let mut bye = None;
    while let Ok(Some(message)) = conn.recv().await {
        match message {
            ServerMessage::Error { code, text } => {
                let error = ServerError { code, text };
                if errors.note(&error) {
                    answerer.notice(&Notice::Error(error));
                }
            }
            ServerMessage::Bye { text } => {
                bye = Some(text);
                break;
            }
            _ => {}
        }
    }
    if errors.last.is_none() && bye.is_none() {
        return err;
    }
    Error::Ended(errors.ending(bye))
}

/// Ends a session established by [`handshake`]: sends `logout` and waits for
/// the server's `bye`, which it sends once the session is revoked. Returns
/// the text of that `bye`. Lines said in the meantime are skipped.
///
/// # Errors
/// [`Error::Refused`] when the server refuses (a server without sessions
/// answers `unexpected`); [`Error::Ended`] when it closes without `bye` or
/// says `bye` right after an `error`; [`Error::Wire`].
pub async fn logout<T>(conn: &mut Connection<T>) -> Result<String>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    conn.send(&ClientMessage::Logout).await?;
    let mut last_error = None;
    loop {
        match conn.recv().await? {
            Some(ServerMessage::Bye { text }) if last_error.is_none() => return Ok(text),
            Some(ServerMessage::Bye { text }) => {
                return Err(Error::Ended(Ending {
                    bye: Some(text),
                    error: last_error,
                    error_shown: false,
                }));
            }
            Some(ServerMessage::Error { code, text }) => {
                let error = ServerError { code, text };
                // A refusal of the logout itself: the session stays. Say
                // goodbye and report it.
                if error.code == ErrorCode::Unexpected {
                    let _ = conn.send(&ClientMessage::Bye).await;
                    return Err(Error::Refused(error));
                }
                last_error = Some(error);
            }
            Some(_) => {}
            None => return Err(Error::Ended(Ending::closed(last_error))),
        }
    }
}
