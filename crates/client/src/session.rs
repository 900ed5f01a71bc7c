//! The conversation with a server, up to `ready`: connecting, the framed
//! connection, and the handshake.
//!
//! - [`connect`] opens the TCP connection (optionally from a chosen source
//!   address) under a timeout.
//! - [`Connection`] frames any `AsyncRead + AsyncWrite` stream, so TLS can be
//!   slipped in later without touching anything above it. It splits into a
//!   [`MessageReader`] and a [`MessageWriter`] so that a client keeps reading
//!   while it writes (a server whose outgoing queue fills disconnects a
//!   client that does not read).
//! - [`handshake`] reads `welcome`, sends `hello`, and answers every `ask`
//!   through an [`Answerer`] until `ready`. Whatever is asked, the answer
//!   comes from the answerer: a terminal prompt, scripted answers (flags,
//!   environment) or a test.
//! - Session tokens go through a [`TokenJar`]: the cookie jar
//!   ([`crate::jar::JarTokens`]) or [`NoTokens`], which holds nothing.
//! - [`logout`] ends a resumed session: `logout`, then the server's `bye`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use porter_wire::{
    AuthMode, ClientMessage, EncodedFrame, ErrorCode, FrameCodec, PROTOCOL_VERSION, Secret,
    ServerMessage, decode_message,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::Framed;

use crate::error::{Ending, Error, Result, ServerError};

/// How long to wait for the server to accept a connection, per address
/// tried. Long enough for a slow network, short enough that a firewall that
/// drops packets does not leave the user staring at nothing.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest frame the client accepts from a server. Larger than the server's
/// own default maximum (64 KiB) on purpose: a chat line that was just under
/// the server's limit comes back with a `from` field and JSON around it.
pub const DEFAULT_MAX_INCOMING_FRAME_LEN: usize = 1024 * 1024;

/// Largest frame the client sends: the server's default maximum, so a line
/// the server would refuse (and close the connection for) is refused here
/// instead, and the conversation goes on.
pub const DEFAULT_MAX_OUTGOING_FRAME_LEN: usize = porter_wire::DEFAULT_MAX_FRAME_LEN;

/// The `client` field of our `hello`.
pub const CLIENT_NAME: &str = concat!("porter/", env!("CARGO_PKG_VERSION"));

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or IP address of the server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The local (source) address to connect from; `None` lets the system
    /// choose.
    pub bind_addr: Option<IpAddr>,
    /// How long to wait for each address to accept.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    /// Options for `host:port` with the defaults for everything else.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            bind_addr: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Opens a TCP connection to the server, trying each address the host
/// resolves to (only those of the source address's family when one is
/// given) until one accepts.
///
/// # Errors
/// [`Error::Resolve`], [`Error::NoAddress`], [`Error::Bind`], and for the
/// last address tried [`Error::Connect`] or [`Error::ConnectTimeout`].
pub async fn connect(options: &ConnectOptions) -> Result<TcpStream> {
    let resolved = tokio::net::lookup_host((options.host.as_str(), options.port))
        .await
        .map_err(|source| Error::Resolve {
            host: options.host.clone(),
            source,
        })?;
    let addrs: Vec<SocketAddr> = resolved
        .filter(|addr| match options.bind_addr {
            Some(local) => local.is_ipv4() == addr.is_ipv4(),
            None => true,
        })
        .collect();
    let mut last_error = None;
    for addr in addrs {
        match connect_one(addr, options).await {
            Ok(stream) => return Ok(stream),
            // A source address we cannot bind will not work for the next
            // address either.
            Err(err @ Error::Bind { .. }) => return Err(err),
            Err(err) => {
                tracing::debug!(%addr, error = %err, "connect failed");
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| Error::NoAddress {
        host: options.host.clone(),
        bind_addr: options.bind_addr,
    }))
}

async fn connect_one(addr: SocketAddr, options: &ConnectOptions) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|source| Error::Connect { addr, source })?;
    if let Some(local) = options.bind_addr {
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(|source| Error::Bind {
                addr: local,
                source,
            })?;
    }
    let stream = match tokio::time::timeout(options.connect_timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(Error::Connect { addr, source }),
        Err(_) => {
            return Err(Error::ConnectTimeout {
                addr,
                timeout: options.connect_timeout,
            });
        }
    };
    // Conversation lines are small and latency matters more than packing;
    // writers batch their flushes themselves.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %err, "cannot set TCP_NODELAY");
    }
    Ok(stream)
}

/// A framed connection to a server over any byte stream (TCP now, TLS later).
#[derive(Debug)]
pub struct Connection<T> {
    framed: Framed<T, FrameCodec>,
    /// Checks outgoing messages against the server's limit before they are
    /// sent; the framed codec itself checks incoming frames.
    outgoing: FrameCodec,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// Frames `io` with the default limits.
    pub fn new(io: T) -> Self {
        Connection::with_limits(
            io,
            DEFAULT_MAX_INCOMING_FRAME_LEN,
            DEFAULT_MAX_OUTGOING_FRAME_LEN,
        )
    }

    /// Frames `io`, accepting frames up to `max_incoming` bytes and sending
    /// up to `max_outgoing`.
    pub fn with_limits(io: T, max_incoming: usize, max_outgoing: usize) -> Self {
        Connection {
            framed: Framed::new(io, FrameCodec::with_max_frame_len(max_incoming)),
            outgoing: FrameCodec::with_max_frame_len(max_outgoing),
        }
    }

    /// Receives the next message, skipping keep-alives. `Ok(None)` means the
    /// server closed the connection cleanly between frames.
    ///
    /// # Errors
    /// [`Error::Wire`]: a truncated or oversized frame, a payload that is not
    /// a message, or a socket error.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        recv_from(&mut self.framed).await
    }

    /// Sends one message and flushes it.
    ///
    /// # Errors
    /// [`Error::Wire`]; `FrameTooLarge` (nothing sent) when the message is
    /// longer than the outgoing limit.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        let frame = EncodedFrame::message(&self.outgoing, message)?;
        self.framed.send(frame).await?;
        Ok(())
    }

    /// Splits the connection so that reading and writing can go on at the
    /// same time.
    pub fn split(self) -> (MessageReader<T>, MessageWriter<T>) {
        let (sink, stream) = self.framed.split();
        (
            MessageReader { stream },
            MessageWriter {
                sink,
                outgoing: self.outgoing,
            },
        )
    }
}

async fn recv_from<S>(stream: &mut S) -> Result<Option<ServerMessage>>
where
    S: futures_util::Stream<Item = Result<bytes::BytesMut, porter_wire::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            None => return Ok(None),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(payload)) if payload.is_empty() => continue,
            Some(Ok(payload)) => return Ok(Some(decode_message(&payload)?)),
        }
    }
}

/// The receiving half of a split [`Connection`].
#[derive(Debug)]
pub struct MessageReader<T> {
    stream: SplitStream<Framed<T, FrameCodec>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> MessageReader<T> {
    /// As [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>> {
        recv_from(&mut self.stream).await
    }
}

/// The sending half of a split [`Connection`].
#[derive(Debug)]
pub struct MessageWriter<T> {
    sink: SplitSink<Framed<T, FrameCodec>, EncodedFrame>,
    outgoing: FrameCodec,
}

impl<T: AsyncRead + AsyncWrite + Unpin> MessageWriter<T> {
    /// Queues one message without flushing, so that a batch goes out in as
    /// few writes as possible; call [`flush`](Self::flush) after the batch.
    ///
    /// # Errors
    /// As [`Connection::send`]; on `FrameTooLarge` nothing is queued.
    pub async fn feed(&mut self, message: &ClientMessage) -> Result<()> {
        let frame = EncodedFrame::message(&self.outgoing, message)?;
        self.sink.feed(frame).await?;
        Ok(())
    }

    /// Writes out everything queued.
    ///
    /// # Errors
    /// [`Error::Wire`] on a socket error.
    pub async fn flush(&mut self) -> Result<()> {
        self.sink.flush().await?;
        Ok(())
    }

    /// Sends one message and flushes.
    ///
    /// # Errors
    /// As [`feed`](Self::feed) and [`flush`](Self::flush).
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Flushes and closes the sending direction.
    ///
    /// # Errors
    /// [`Error::Wire`] on a socket error.
    pub async fn close(&mut self) -> Result<()> {
        self.sink.close().await?;
        Ok(())
    }
}

/// A question from the server (`ask`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// What is asked (`name`, `user`, `password`, ... or an id this client
    /// does not know, handled the same way).
    pub id: String,
    /// The prompt to show.
    pub text: String,
    /// Whether the typed answer must be hidden.
    pub secret: bool,
}

/// Something the server said during the handshake, to be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A `say`: a greeting or information.
    Say {
        /// Who said it.
        from: String,
        /// What was said.
        text: String,
    },
    /// An `error`: a refused answer, an invalid session... The handshake
    /// goes on unless the server ends it.
    Error(ServerError),
}

/// Where the answers to the server's questions come from, and where its
/// handshake messages are shown: a terminal, scripted answers, a test.
pub trait Answerer: Send {
    /// Answers one `ask`. The answer may be a password: it is a [`Secret`]
    /// and must never be logged.
    ///
    /// # Errors
    /// [`Error::NoAnswer`] when this answerer cannot answer the question,
    /// [`Error::InputClosed`] when the user gave up, [`Error::Input`].
    fn answer(&mut self, ask: &Ask) -> impl Future<Output = Result<Secret>> + Send;

    /// Shows a `say` or `error` received during the handshake.
    fn notice(&mut self, notice: &Notice);
}

/// Where session tokens are kept between connections: the cookie jar's hook.
///
/// The handshake presents [`token`](Self::token) in `hello`, hands a received
/// `session` to [`store`](Self::store), and calls [`forget`](Self::forget)
/// when the server answers `session_invalid`.
pub trait TokenJar: Send {
    /// The token to present to this server, if one is held.
    fn token(&self) -> Option<Secret>;
    /// Keeps a token the server handed out for `user`, valid until
    /// `expires_at` (RFC 3339).
    fn store(&mut self, token: Secret, user: &str, expires_at: &str);
    /// Drops the held token: the server no longer accepts it.
    fn forget(&mut self);
}

/// A [`TokenJar`] that holds nothing: every connection starts afresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTokens;

impl TokenJar for NoTokens {
    fn token(&self) -> Option<Secret> {
        None
    }
    fn store(&mut self, _token: Secret, _user: &str, _expires_at: &str) {}
    fn forget(&mut self) {}
}

/// Answers by `ask` id from a fixed table, for when there is no terminal
/// (scripted use: `--user`, `PORTER_PASSWORD`), or to spare the terminal
/// questions already answered on the command line.
///
/// Each answer is given once. When the server asks the same id again it
/// refused the answer (a name or password refused by policy, a wrong
/// password): repeating it could only fail again, and would spend login
/// attempts and feed the server's throttling, so the second ask fails with
/// [`Error::NoAnswer`] instead.
///
/// Handshake messages go to stderr (`porter: Welcome back, ada!`), so that
/// stdout carries only the conversation after `ready`.
#[derive(Debug, Default)]
pub struct ScriptedAnswers {
    answers: HashMap<String, Secret>,
    /// Why an id cannot be answered, when the caller knows better than the
    /// generic reason (which flag or variable would answer it).
    hints: HashMap<String, String>,
    /// Ids already answered: asked again means refused.
    given: HashSet<String>,
}

impl ScriptedAnswers {
    /// No answers: any `ask` fails with [`Error::NoAnswer`].
    pub fn new() -> Self {
        ScriptedAnswers::default()
    }

    /// Adds the answer to give when the server asks `id`.
    pub fn with(mut self, id: impl Into<String>, answer: impl Into<Secret>) -> Self {
        self.answers.insert(id.into(), answer.into());
        self
    }

    /// Sets the reason given in [`Error::NoAnswer`] when the server asks
    /// `id` and no answer is held, for example "set PORTER_PASSWORD".
    pub fn with_hint(mut self, id: impl Into<String>, hint: impl Into<String>) -> Self {
        self.hints.insert(id.into(), hint.into());
        self
    }

    /// Whether an answer is held for `id` (given or not yet).
    pub fn has(&self, id: &str) -> bool {
        self.answers.contains_key(id)
    }

    /// The answer for `ask`, the first time it is asked; `None` when none is
    /// held or it was given already (and so refused).
    pub fn take(&mut self, ask: &Ask) -> Option<Secret> {
        let answer = self.answers.get(&ask.id)?;
        self.given.insert(ask.id.clone()).then(|| answer.clone())
    }

    fn no_answer(&self, ask: &Ask) -> Error {
        let reason = if self.given.contains(&ask.id) {
            "the server refused the answer given in advance".to_owned()
        } else {
            self.hints.get(&ask.id).cloned().unwrap_or_else(|| {
                "no terminal to ask on and no answer given in advance".to_owned()
            })
        };
        Error::NoAnswer {
            id: ask.id.clone(),
            text: ask.text.clone(),
            reason,
        }
    }
}

impl Answerer for ScriptedAnswers {
    async fn answer(&mut self, ask: &Ask) -> Result<Secret> {
        self.take(ask).ok_or_else(|| self.no_answer(ask))
    }

    fn notice(&mut self, notice: &Notice) {
        // Output errors are not the handshake's business; a closed stderr
        // has nowhere to be reported anyway.
        let _ = writeln!(std::io::stderr(), "porter: {}", notice.line());
    }
}

impl Notice {
    /// The notice as one line for people: a greeting from the server as its
    /// text, anyone else's line as `from: text`, an error with its code.
    pub fn line(&self) -> String {
        match self {
            Notice::Say { from, text } if from == SERVER_FROM => text.clone(),
            Notice::Say { from, text } => format!("{from}: {text}"),
            Notice::Error(error) => format!("server error: {error}"),
        }
    }
}

/// The `from` of the server's own lines.
const SERVER_FROM: &str = "server";

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
    let mut welcome: Option<(String, AuthMode)> = None;
    let mut last_error: Option<ServerError> = None;
    loop {
        let Some(message) = conn.recv().await? else {
            return Err(Error::Ended(Ending {
                bye: None,
                error: last_error,
            }));
        };
        match message {
            // A server at its limit may refuse with `error` before any
            // `welcome`; that, and `bye`, are fine at any point.
            ServerMessage::Error { code, text } => {
                if code == ErrorCode::SessionInvalid {
                    jar.forget();
                }
                let error = ServerError { code, text };
                answerer.notice(&Notice::Error(error.clone()));
                last_error = Some(error);
            }
            ServerMessage::Bye { text } => {
                return Err(Error::Ended(Ending {
                    bye: Some(text),
                    error: last_error,
                }));
            }
            ServerMessage::Welcome {
                server,
                protocol,
                auth,
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
                };
                if let Err(err) = conn.send(&hello).await {
                    // A server at its limit sends `welcome`, `error{busy}`
                    // and closes: our `hello` may hit the closed socket.
                    // What it said before closing explains more than
                    // "broken pipe".
                    return Err(explain_send_failure(conn, answerer, last_error, err).await);
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
                let ask = Ask { id, text, secret };
                let answer = answerer.answer(&ask).await?;
                conn.send(&ClientMessage::Answer {
                    id: ask.id,
                    text: answer,
                })
                .await?;
            }
            ServerMessage::Say { text, from } => {
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

/// After a failed send: reads what the server sent before it closed (an
/// `error`, a `bye`) and returns that ending, or `err` when it said nothing.
async fn explain_send_failure<T, A>(
    conn: &mut Connection<T>,
    answerer: &mut A,
    mut last_error: Option<ServerError>,
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
                answerer.notice(&Notice::Error(error.clone()));
                last_error = Some(error);
            }
            ServerMessage::Bye { text } => {
                bye = Some(text);
                break;
            }
            _ => {}
        }
    }
    if last_error.is_none() && bye.is_none() {
        return err;
    }
    Error::Ended(Ending {
        bye,
        error: last_error,
    })
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
            None => {
                return Err(Error::Ended(Ending {
                    bye: None,
                    error: last_error,
                }));
            }
        }
    }
}
