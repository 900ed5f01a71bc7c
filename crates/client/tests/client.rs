//! The client library through its public API, against tiny fake servers
//! written here with porter_wire: the handshake, questions answered through
//! the `Answerer` trait, the token hook, scripted mode and its reply rule,
//! and server errors turned into typed errors.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use porter_client::scripted::{self, ScriptedOptions};
use porter_client::{
    Answerer, Ask, ConnectOptions, Connection, Connector, Error, NoTokens, Notice, ScriptedAnswers,
    SessionInfo, TokenJar,
};
use porter_wire::{
    AuthMode, ClientMessage, EncodedFrame, ErrorCode, FrameCodec, Secret, ServerMessage,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Every wait in these tests is bounded by this, so a bug fails a test
/// instead of hanging it.
const LIMIT: Duration = Duration::from_secs(10);

/// The server side of one fake conversation.
struct Peer<S = TcpStream> {
    framed: Framed<S, FrameCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    async fn send(&mut self, message: ServerMessage) {
        let frame = EncodedFrame::message(&FrameCodec::new(), &message).unwrap();
        self.framed.send(frame).await.unwrap();
    }

    /// The next client message, `None` on a clean close.
    async fn recv(&mut self) -> Option<ClientMessage> {
        let frame = tokio::time::timeout(LIMIT, self.framed.next())
            .await
            .expect("client went silent")?
            .expect("client sent a broken frame");
        Some(porter_wire::decode_message(&frame).unwrap())
    }

    /// `welcome` then the expected `hello`.
    async fn greet(&mut self, auth: AuthMode) -> ClientMessage {
        self.send(ServerMessage::Welcome {
            server: "fake/1".into(),
            protocol: 1,
            auth,
            hint: None,
        })
        .await;
        let hello = self.recv().await.expect("no hello");
        assert!(matches!(hello, ClientMessage::Hello { .. }), "{hello:?}");
        hello
    }

    async fn ready(&mut self, user: &str) {
        self.send(ServerMessage::Ready { user: user.into() }).await;
    }

    async fn ask(&mut self, id: &str, text: &str, secret: bool) {
        self.send(ServerMessage::Ask {
            id: id.into(),
            text: text.into(),
            secret,
        })
        .await;
    }

    async fn error(&mut self, code: ErrorCode, text: &str) {
        self.send(ServerMessage::Error {
            code,
            text: text.into(),
        })
        .await;
    }

    async fn say_from(&mut self, from: &str, text: &str) {
        self.send(ServerMessage::say(text, from)).await;
    }

    async fn bye(&mut self, text: &str) {
        self.send(ServerMessage::Bye { text: text.into() }).await;
    }
}

/// Binds port 0, accepts one client and runs `script` on it.
async fn fake_server<F, Fut, R>(script: F) -> (SocketAddr, JoinHandle<R>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send,
    R: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(Peer {
            framed: Framed::new(stream, FrameCodec::new()),
        })
        .await
    });
    (addr, task)
}

async fn connect(addr: SocketAddr) -> Connection<TcpStream> {
    let options = ConnectOptions::new(addr.ip().to_string(), addr.port());
    Connection::new(porter_client::connect(&options).await.unwrap())
}

/// Connects to `addr` and runs the handshake (bounded) with `answerer` and
/// `jar`, expecting it to succeed. The connection is returned so that the
/// caller decides how long it stays open.
async fn handshake_ok(
    addr: SocketAddr,
    answerer: &mut impl Answerer,
    jar: &mut impl TokenJar,
) -> (Connection<TcpStream>, SessionInfo) {
    let (conn, result) = handshake(addr, answerer, jar).await;
    (conn, result.unwrap())
}

/// The same, expecting the handshake to fail.
async fn handshake_err(
    addr: SocketAddr,
    answerer: &mut impl Answerer,
    jar: &mut impl TokenJar,
) -> (Connection<TcpStream>, Error) {
    let (conn, result) = handshake(addr, answerer, jar).await;
    (conn, result.unwrap_err())
}

async fn handshake(
    addr: SocketAddr,
    answerer: &mut impl Answerer,
    jar: &mut impl TokenJar,
) -> (Connection<TcpStream>, porter_client::Result<SessionInfo>) {
    let mut conn = connect(addr).await;
    let result = bounded(porter_client::handshake(&mut conn, answerer, jar)).await;
    (conn, result)
}

/// A connection past `ready`, with nothing to answer and no token.
async fn joined(addr: SocketAddr) -> Connection<TcpStream> {
    handshake_ok(addr, &mut ScriptedAnswers::new(), &mut NoTokens)
        .await
        .0
}

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("timed out")
}

/// Answers from a table and remembers what it was asked and shown.
#[derive(Default)]
struct Recorder {
    asked: Vec<Ask>,
    notices: Vec<Notice>,
}

impl Answerer for Recorder {
    async fn answer(&mut self, ask: &Ask) -> porter_client::Result<Secret> {
        self.asked.push(ask.clone());
        Ok(Secret::new(format!("answer-to-{}", ask.id)))
    }

    fn notice(&mut self, notice: &Notice) {
        self.notices.push(notice.clone());
    }
}

#[derive(Default)]
struct Jar {
    token: Option<Secret>,
    stored_for: Option<String>,
    forgotten: bool,
}

impl TokenJar for Jar {
    fn token(&self) -> Option<Secret> {
        self.token.clone()
    }
    fn store(&mut self, token: Secret, user: &str, _expires_at: &str) {
        self.token = Some(token);
        self.stored_for = Some(user.to_owned());
    }
    fn forget(&mut self) {
        self.token = None;
        self.forgotten = true;
    }
}

#[tokio::test]
async fn handshake_without_auth_sends_hello_with_client_name_and_returns_the_user() {
    let (addr, server) = fake_server(|mut peer| async move {
        let hello = peer.greet(AuthMode::None).await;
        peer.ready("guest-1").await;
        hello
    })
    .await;
    let (_conn, info) = handshake_ok(addr, &mut ScriptedAnswers::new(), &mut NoTokens).await;
    assert_eq!(
        info,
        SessionInfo {
            server: "fake/1".into(),
            auth: AuthMode::None,
            user: "guest-1".into()
        }
    );
    let hello = server.await.unwrap();
    assert_eq!(
        hello,
        ClientMessage::Hello {
            client: Some(porter_client::CLIENT_NAME.to_owned()),
            token: None,
            since: None
        }
    );
    assert!(porter_client::CLIENT_NAME.starts_with("porter/"));
}

#[tokio::test]
async fn asks_are_answered_through_the_answerer_and_notices_shown() {
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Password).await;
        peer.ask("user", "User:", false).await;
        let user = peer.recv().await;
        peer.ask("password", "Password:", true).await;
        let password = peer.recv().await;
        peer.error(ErrorCode::BadCredentials, "wrong, try again")
            .await;
        peer.say_from("server", "Welcome, ada!").await;
        peer.ready("ada").await;
        (user, password)
    })
    .await;
    let mut recorder = Recorder::default();
    let (_conn, info) = handshake_ok(addr, &mut recorder, &mut NoTokens).await;
    assert_eq!(info.user, "ada");
    let ids: Vec<(&str, bool)> = recorder
        .asked
        .iter()
        .map(|a| (a.id.as_str(), a.secret))
        .collect();
    assert_eq!(ids, [("user", false), ("password", true)]);
    assert_eq!(recorder.notices.len(), 2);
    assert!(
        matches!(&recorder.notices[0], Notice::Error(e) if e.code == ErrorCode::BadCredentials)
    );
    assert!(matches!(&recorder.notices[1], Notice::Say { text, .. } if text == "Welcome, ada!"));
    let (user, password) = server.await.unwrap();
    assert_eq!(
        user,
        Some(ClientMessage::Answer {
            id: "user".into(),
            text: Secret::new("answer-to-user")
        })
    );
    assert_eq!(
        password,
        Some(ClientMessage::Answer {
            id: "password".into(),
            text: Secret::new("answer-to-password")
        })
    );
}

#[tokio::test]
async fn scripted_answers_answer_by_id_and_refuse_unknown_ids() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Ip).await;
        peer.ask("name", "Name?", false).await;
        let answer = peer.recv().await;
        peer.ask("colour", "Favourite colour?", false).await;
        // Keep the connection open until the client gives up.
        let _ = peer.recv().await;
        answer
    })
    .await;
    let mut answers = ScriptedAnswers::new().with("name", "ada");
    let (_conn, err) = handshake_err(addr, &mut answers, &mut NoTokens).await;
    assert!(
        matches!(&err, Error::NoAnswer { id, .. } if id == "colour"),
        "{err:?}"
    );
}

#[tokio::test]
async fn tokens_are_presented_stored_and_forgotten_through_the_jar() {
    let (addr, server) = fake_server(|mut peer| async move {
        let hello = peer.greet(AuthMode::Password).await;
        peer.error(ErrorCode::SessionInvalid, "session expired")
            .await;
        peer.send(ServerMessage::Session {
            token: Secret::new("new-token"),
            user: "ada".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        })
        .await;
        peer.ready("ada").await;
        hello
    })
    .await;
    let mut jar = Jar {
        token: Some(Secret::new("old-token")),
        ..Jar::default()
    };
    let (_conn, _) = handshake_ok(addr, &mut Recorder::default(), &mut jar).await;
    let hello = server.await.unwrap();
    assert!(
        matches!(hello, ClientMessage::Hello { token: Some(t), .. } if t.expose() == "old-token")
    );
    assert!(jar.forgotten);
    assert_eq!(jar.token.as_ref().map(Secret::expose), Some("new-token"));
    assert_eq!(jar.stored_for.as_deref(), Some("ada"));
}

#[tokio::test]
async fn busy_error_then_close_is_a_typed_error_with_the_servers_text() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.error(ErrorCode::Busy, "the server is full").await;
        // Dropping the peer closes the connection.
    })
    .await;
    let (_conn, err) = handshake_err(addr, &mut Recorder::default(), &mut NoTokens).await;
    let server_error = err.server_error().expect("no server error carried");
    assert_eq!(server_error.code, ErrorCode::Busy);
    assert!(err.to_string().contains("the server is full"), "{err}");
}

#[tokio::test]
async fn timeout_error_and_bye_during_handshake_end_with_both_texts() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Ip).await;
        peer.error(ErrorCode::Timeout, "too slow").await;
        peer.bye("goodbye").await;
    })
    .await;
    let (_conn, err) = handshake_err(addr, &mut Recorder::default(), &mut NoTokens).await;
    match &err {
        Error::Ended(ending) => {
            assert_eq!(ending.bye.as_deref(), Some("goodbye"));
            assert_eq!(
                ending.error.as_ref().map(|e| e.code),
                Some(ErrorCode::Timeout)
            );
        }
        other => panic!("expected Ended, got {other:?}"),
    }
}

#[tokio::test]
async fn a_first_frame_other_than_welcome_is_a_protocol_violation() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.ready("nobody").await;
        let _ = peer.recv().await;
    })
    .await;
    let (_conn, err) = handshake_err(addr, &mut Recorder::default(), &mut NoTokens).await;
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_connect_error() {
    // Bind then drop: the port is very likely free and closed right after.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let options = ConnectOptions::new("127.0.0.1", addr.port());
    let err = bounded(porter_client::connect(&options)).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cannot connect to 127.0.0.1"),
        "{err}"
    );
}

/// A fake echo server: handshake, then one `say` from `server` per `say`,
/// until `bye`. Returns what it received, in order, and whether `bye` came.
/// With `hold_until: Some(n)` it answers nothing until `n` says have arrived,
/// so the replies come well after the client's end of input.
async fn echo_peer(mut peer: Peer, hold_until: Option<usize>) -> (Vec<String>, bool) {
    peer.greet(AuthMode::None).await;
    peer.ready("guest").await;
    let mut said = Vec::new();
    let mut got_bye = false;
    while let Some(message) = peer.recv().await {
        match message {
            ClientMessage::Say { text, .. } => {
                said.push(text.clone());
                match hold_until {
                    None => peer.say_from("server", &text).await,
                    Some(n) if said.len() == n => {
                        for text in &said {
                            peer.say_from("server", text).await;
                        }
                    }
                    Some(_) => {}
                }
            }
            ClientMessage::Bye => {
                got_bye = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (said, got_bye)
}

/// Joins `addr`, then runs scripted mode on the lines of `input`: its
/// result, and what it printed on stdout and stderr.
async fn scripted_session(
    addr: SocketAddr,
    input: &[u8],
    options: ScriptedOptions,
) -> (porter_client::Result<scripted::Summary>, String, String) {
    scripted_session_reading(addr, input, options).await
}

/// The same with any input, such as one that never ends.
async fn scripted_session_reading(
    addr: SocketAddr,
    input: impl AsyncRead + Unpin,
    options: ScriptedOptions,
) -> (porter_client::Result<scripted::Summary>, String, String) {
    let conn = joined(addr).await;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let result = bounded(scripted::run(conn, input, &mut out, &mut err, options)).await;
    (
        result,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test]
async fn scripted_echo_prints_each_reply_as_from_and_text_then_says_bye() {
    let (addr, server) = fake_server(|peer| echo_peer(peer, None)).await;
    let (result, out, err) = scripted_session(addr, b"a\nb\n", ScriptedOptions::default()).await;
    let summary = result.unwrap();
    assert_eq!(out, "server: a\nserver: b\n");
    assert_eq!(err, "");
    assert_eq!((summary.sent, summary.received), (2, 2));
    let (said, got_bye) = server.await.unwrap();
    assert_eq!(said, ["a", "b"]);
    assert!(got_bye);
}

#[tokio::test]
async fn scripted_mode_ends_as_soon_as_every_say_has_its_reply() {
    // A quiet period far longer than the test's patience: only the
    // "every say answered" rule can end this session in time.
    let options = ScriptedOptions {
        quiet: Duration::from_secs(30),
        max_wait: Duration::from_secs(60),
    };
    let lines: String = (0..500).map(|i| format!("line {i}\n")).collect();
    let (addr, server) = fake_server(|peer| echo_peer(peer, Some(500))).await;
    let started = Instant::now();
    let (result, out, _) = scripted_session(addr, lines.as_bytes(), options).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(result.unwrap().received, 500);
    let expected: String = (0..500).map(|i| format!("server: line {i}\n")).collect();
    assert_eq!(out, expected);
    assert!(server.await.unwrap().1, "no bye");
}

#[tokio::test]
async fn scripted_mode_stops_after_a_quiet_period_when_no_reply_comes() {
    // Like chat alone in the room: nothing ever comes back.
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("guest").await;
        let mut said = Vec::new();
        while let Some(message) = peer.recv().await {
            match message {
                ClientMessage::Say { text, .. } => said.push(text),
                ClientMessage::Bye => return (said, true),
                other => panic!("unexpected {other:?}"),
            }
        }
        (said, false)
    })
    .await;
    let options = ScriptedOptions {
        quiet: Duration::from_millis(200),
        max_wait: Duration::from_secs(60),
    };
    let (result, out, _) = scripted_session(addr, b"hello\nanyone?\n", options).await;
    let summary = result.unwrap();
    assert_eq!((summary.sent, summary.received), (2, 0));
    assert_eq!(out, "");
    assert_eq!(
        server.await.unwrap(),
        (vec!["hello".into(), "anyone?".into()], true)
    );
}

#[tokio::test]
async fn scripted_mode_stops_at_max_wait_even_if_the_server_never_falls_quiet() {
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("guest").await;
        // Frames of a type the client does not know, forever: they keep the
        // quiet period from expiring but are no reply, so only rule 3 can
        // end the session.
        let tick = EncodedFrame::new(&FrameCodec::new(), br#"{"type":"tick"}"#).unwrap();
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = ticker.tick() => peer.framed.send(tick.clone()).await.unwrap(),
                message = peer.recv() => match message {
                    Some(ClientMessage::Bye) => return true,
                    None => return false,
                    Some(_) => {}
                }
            }
        }
    })
    .await;
    let options = ScriptedOptions {
        quiet: Duration::from_secs(30),
        max_wait: Duration::from_millis(300),
    };
    let started = Instant::now();
    let (result, out, _) = scripted_session(addr, b"ping\n", options).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(result.unwrap().received, 0);
    assert_eq!(out, "");
    assert!(server.await.unwrap(), "no bye");
}

#[tokio::test]
async fn scripted_error_followed_by_bye_is_a_typed_error() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("guest").await;
        let _ = peer.recv().await;
        peer.error(ErrorCode::FrameTooLarge, "frame too large")
            .await;
        peer.bye("closing").await;
    })
    .await;
    let (result, _out, err) = scripted_session(addr, b"hi\n", ScriptedOptions::default()).await;
    let error = result.unwrap_err();
    assert_eq!(
        error.server_error().map(|e| e.code),
        Some(ErrorCode::FrameTooLarge)
    );
    // Told once: by the error the conversation ends with, not also as a
    // note when it arrived.
    assert_eq!(
        error.to_string(),
        "refused: frame too large (frame_too_large); closing"
    );
    assert!(!err.contains("frame too large"), "{err}");
}

#[tokio::test]
async fn scripted_plain_bye_from_the_server_ends_without_error() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("guest").await;
        peer.bye("server shutting down").await;
        // Wait for the client to go, so the close is not a reset.
        let _ = peer.recv().await;
    })
    .await;
    // An input that never ends: the server's bye must end the session.
    let (client_end, _keep) = tokio::io::duplex(64);
    let (result, _out, err) =
        scripted_session_reading(addr, client_end, ScriptedOptions::default()).await;
    let summary = result.unwrap();
    assert!(summary.ended_by_server);
    assert!(err.contains("server shutting down"));
}

#[tokio::test]
async fn scripted_close_without_bye_is_reported_as_the_end_of_the_conversation() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("guest").await;
    })
    .await;
    let (client_end, _keep) = tokio::io::duplex(64);
    let (result, _, _) =
        scripted_session_reading(addr, client_end, ScriptedOptions::default()).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Ended(e) if e.bye.is_none() && e.error.is_none()),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_scripted_answer_the_server_refuses_is_not_sent_again() {
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Password).await;
        let ask = ServerMessage::Ask {
            id: "password".into(),
            text: "Password:".into(),
            secret: true,
        };
        peer.send(ask.clone()).await;
        let first = peer.recv().await;
        peer.error(ErrorCode::BadCredentials, "wrong user name or password")
            .await;
        peer.send(ask).await;
        // The client gives up instead of answering again: it closes.
        let next = peer.recv().await;
        (first, next)
    })
    .await;
    let mut answers = ScriptedAnswers::new().with("password", "hunter22");
    let (conn, err) = handshake_err(addr, &mut answers, &mut NoTokens).await;
    drop(conn);
    assert!(
        matches!(&err, Error::NoAnswer { id, reason, .. } if id == "password" && reason.contains("refused")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("hunter22"), "{err}");
    let (first, next) = server.await.unwrap();
    assert_eq!(
        first,
        Some(ClientMessage::Answer {
            id: "password".into(),
            text: Secret::new("hunter22")
        })
    );
    assert_eq!(next, None);
}

#[tokio::test]
async fn a_hint_explains_a_missing_scripted_answer() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Password).await;
        peer.ask("user", "User name:", false).await;
        let _ = peer.recv().await;
    })
    .await;
    let mut answers = ScriptedAnswers::new().with_hint("user", "give --user NAME");
    let (_conn, err) = handshake_err(addr, &mut answers, &mut NoTokens).await;
    assert!(err.to_string().contains("give --user NAME"), "{err}");
}

#[tokio::test]
async fn logout_sends_logout_and_returns_the_servers_bye() {
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Password).await;
        peer.ready("ada").await;
        let logout = peer.recv().await;
        peer.say_from("bob", "a late line").await;
        peer.bye("logged out").await;
        logout
    })
    .await;
    let mut conn = joined(addr).await;
    let bye = bounded(porter_client::logout(&mut conn)).await.unwrap();
    assert_eq!(bye, "logged out");
    assert_eq!(server.await.unwrap(), Some(ClientMessage::Logout));
}

#[tokio::test]
async fn logout_refused_by_a_server_without_sessions_is_a_refusal() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("guest").await;
        let _ = peer.recv().await;
        peer.error(ErrorCode::Unexpected, "logout needs a session")
            .await;
        let _ = peer.recv().await;
    })
    .await;
    let mut conn = joined(addr).await;
    let err = bounded(porter_client::logout(&mut conn)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Refused(e) if e.code == ErrorCode::Unexpected),
        "{err:?}"
    );
}

/// A connector over an in-memory pipe, handing out its one client end.
struct PipeConnector(std::sync::Mutex<Option<DuplexStream>>);

impl Connector for PipeConnector {
    type Stream = DuplexStream;

    async fn connect(&self) -> porter_client::Result<DuplexStream> {
        Ok(self.0.lock().unwrap().take().expect("connected twice"))
    }
}

/// The handshake needs only a byte stream from its connector: what lets a
/// TLS connector slip in under it.
#[tokio::test]
async fn a_connector_other_than_tcp_carries_the_handshake() {
    let (client, server) = tokio::io::duplex(4096);
    let connector = PipeConnector(std::sync::Mutex::new(Some(client)));
    let server = tokio::spawn(async move {
        let mut peer = Peer {
            framed: Framed::new(server, FrameCodec::new()),
        };
        peer.greet(AuthMode::None).await;
        peer.ready("guest-1").await;
    });
    let mut conn = Connection::new(porter_client::connect(&connector).await.unwrap());
    let info = bounded(porter_client::handshake(
        &mut conn,
        &mut ScriptedAnswers::new(),
        &mut NoTokens,
    ))
    .await
    .unwrap();
    assert_eq!(info.user, "guest-1");
    server.await.unwrap();
}

/// What the server sends right after `ready` (here in the same write) is
/// not lost when the connection is taken apart: it is in the read buffer,
/// or still in the stream, and decodes whole.
#[tokio::test]
async fn into_parts_keeps_the_bytes_read_after_ready() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        let codec = FrameCodec::new();
        for message in [
            ServerMessage::Ready {
                user: "guest".into(),
            },
            ServerMessage::say("early", "ann"),
        ] {
            let frame = EncodedFrame::message(&codec, &message).unwrap();
            peer.framed.feed(frame).await.unwrap();
        }
        SinkExt::<EncodedFrame>::flush(&mut peer.framed)
            .await
            .unwrap();
        let _ = peer.recv().await;
    })
    .await;
    let conn = joined(addr).await;
    let parts = conn.into_parts();
    let (mut io, mut rest) = (parts.io, parts.read_buf);
    let codec = FrameCodec::new();
    let payload = bounded(async {
        loop {
            if let Some(payload) = codec.decode(&mut rest).unwrap() {
                break payload;
            }
            assert_ne!(io.read_buf(&mut rest).await.unwrap(), 0, "closed early");
        }
    })
    .await;
    let say: ServerMessage = porter_wire::decode_message(&payload).unwrap();
    assert_eq!(say, ServerMessage::say("early", "ann"));
}

/// Issue 9, scripted: the slash commands are read from the input (`/msg`,
/// `/me`, `/who`, `//` for a leading slash, `/quit` ending the input), a
/// mistyped command is sent nowhere, and what the 1.1 room sends is printed
/// as a person reads it: the `who` answer, a join, a private line, a
/// refusal as one note.
#[tokio::test]
async fn scripted_commands_are_sent_and_the_room_is_shown() {
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("ada").await;
        let mut heard = Vec::new();
        while let Some(message) = peer.recv().await {
            match &message {
                ClientMessage::Who => {
                    peer.send(ServerMessage::Event {
                        kind: porter_wire::EventKind::Joined,
                        user: "carl".into(),
                        at: "2030-01-02T10:00:00Z".into(),
                    })
                    .await;
                    peer.send(ServerMessage::Say {
                        text: "psst".into(),
                        from: "bob".into(),
                        seq: None,
                        at: None,
                        to: Some("ada".into()),
                        replay: false,
                    })
                    .await;
                    peer.error(ErrorCode::UnknownUser, "no one called zed is here")
                        .await;
                    peer.send(ServerMessage::Who {
                        users: vec!["carl".into(), "ada".into()],
                    })
                    .await;
                }
                ClientMessage::Bye => break,
                _ => {}
            }
            heard.push(message);
        }
        heard
    })
    .await;
    let options = ScriptedOptions::default();
    let input = b"/msg zed hi\n/me waves\n/mgs oops\n//etc\n/who\n/quit\nnever sent\n";
    let (result, out, err) = scripted_session(addr, input, options).await;
    let summary = result.unwrap();
    assert_eq!(summary.sent, 3);
    assert_eq!(
        out,
        "--> carl joined\n[private] bob: psst\nin the room (2): ada, carl\n"
    );
    assert_eq!(
        err,
        "porter: refused: no one called zed is here (unknown_user)\n\
         porter: line 3: unknown command /mgs; not sent (/help lists the commands; \
         start with // to send a line that begins with /)\n"
    );
    let heard = server.await.unwrap();
    assert_eq!(
        heard,
        [
            ClientMessage::Say {
                text: "hi".into(),
                to: Some("zed".into())
            },
            ClientMessage::Say {
                text: "/me waves".into(),
                to: None
            },
            ClientMessage::Say {
                text: "/etc".into(),
                to: None
            },
            ClientMessage::Who,
        ]
    );
}

/// Rule 1 of the reply rule counts `/who` too: an echo-like server that
/// answers every `say` and `who` at once ends a piped session without the
/// quiet period.
#[tokio::test]
async fn scripted_mode_waits_for_the_who_answer_and_no_longer() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::None).await;
        peer.ready("ada").await;
        while let Some(message) = peer.recv().await {
            match message {
                ClientMessage::Who => {
                    peer.send(ServerMessage::Who {
                        users: vec!["ada".into()],
                    })
                    .await;
                }
                ClientMessage::Say { text, .. } => peer.say_from("server", &text).await,
                _ => break,
            }
        }
    })
    .await;
    // Only rule 1 can end this in time.
    let options = ScriptedOptions {
        quiet: Duration::from_secs(30),
        max_wait: Duration::from_secs(60),
    };
    let (result, out, _) = scripted_session(addr, b"hi\n/who\n", options).await;
    result.unwrap();
    assert_eq!(out, "server: hi\nin the room (1): ada\n");
}

/// Issue 9: while a question is open the connection is still read. A
/// server that gives up (`error{timeout}`, then closes) ends the question at
/// once: the answerer's future is dropped (the terminal's prompt is
/// abandoned that way), and the handshake ends with the server's reason,
/// not shown twice.
#[tokio::test]
async fn an_open_question_gives_way_when_the_server_gives_up() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    /// Never answers, like a person who walked away; says when it starts.
    struct Absent {
        started: Option<tokio::sync::oneshot::Sender<()>>,
        abandoned: Arc<AtomicBool>,
        notices: Vec<Notice>,
    }
    impl Answerer for Absent {
        async fn answer(&mut self, _ask: &Ask) -> porter_client::Result<Secret> {
            let _guard = SetOnDrop(self.abandoned.clone());
            if let Some(started) = self.started.take() {
                let _ = started.send(());
            }
            std::future::pending().await
        }
        fn notice(&mut self, notice: &Notice) {
            self.notices.push(notice.clone());
        }
    }

    let (started, asking) = tokio::sync::oneshot::channel();
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Password).await;
        peer.ask("user", "User:", false).await;
        // Once the question is being answered.
        asking.await.unwrap();
        peer.error(ErrorCode::Timeout, "handshake took too long")
            .await;
    })
    .await;
    let abandoned = Arc::new(AtomicBool::new(false));
    let mut absent = Absent {
        started: Some(started),
        abandoned: abandoned.clone(),
        notices: Vec::new(),
    };
    let (_conn, err) = handshake_err(addr, &mut absent, &mut NoTokens).await;
    assert!(
        abandoned.load(Ordering::SeqCst),
        "the question was not dropped"
    );
    assert_eq!(err.server_error().map(|e| e.code), Some(ErrorCode::Timeout));
    assert_eq!(
        err.to_string(),
        "refused: handshake took too long (timeout)"
    );
    // Told once, by the ending.
    assert!(absent.notices.is_empty(), "{:?}", absent.notices);
}

/// A line said while a question is open is shown, and the question is asked
/// again: the server still waits for its answer.
#[tokio::test]
async fn a_line_said_during_a_question_is_shown_and_the_question_asked_again() {
    let (addr, server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Ip).await;
        peer.ask("name", "Name:", false).await;
        peer.say_from("server", "still waiting for your name").await;
        let answer = peer.recv().await;
        peer.ready("ada").await;
        answer
    })
    .await;
    let mut recorder = Recorder::default();
    let (_conn, info) = handshake_ok(addr, &mut recorder, &mut NoTokens).await;
    assert_eq!(info.user, "ada");
    assert_eq!(
        server.await.unwrap(),
        Some(ClientMessage::Answer {
            id: "name".into(),
            text: Secret::new("answer-to-name")
        })
    );
    assert_eq!(
        recorder.notices,
        [Notice::Say {
            from: "server".into(),
            text: "still waiting for your name".into()
        }]
    );
}

/// Issue 9: a refusal the handshake went on after is shown when it arrives
/// and not told again when the server then ends the handshake: the last
/// wrong password, then `bye`.
#[tokio::test]
async fn a_refusal_shown_during_the_handshake_is_not_repeated_by_its_ending() {
    let (addr, _server) = fake_server(|mut peer| async move {
        peer.greet(AuthMode::Password).await;
        peer.error(ErrorCode::BadCredentials, "wrong user or password")
            .await;
        peer.bye("too many failed attempts").await;
    })
    .await;
    let mut recorder = Recorder::default();
    let (_conn, err) = handshake_err(addr, &mut recorder, &mut NoTokens).await;
    assert_eq!(
        recorder.notices,
        [Notice::Error(porter_client::ServerError {
            code: ErrorCode::BadCredentials,
            text: "wrong user or password".into()
        })]
    );
    assert_eq!(
        recorder.notices[0].line(),
        "refused: wrong user or password (bad_credentials)"
    );
    assert_eq!(
        err.to_string(),
        "the server ended the conversation: too many failed attempts"
    );
    // Programs still see what the server said last.
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ErrorCode::BadCredentials)
    );
}
