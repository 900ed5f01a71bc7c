//! The server from the outside: `run()` on a port-0 listener, spoken to in
//! raw bytes over loopback TCP (a 4-byte big-endian length, then JSON), so
//! that these tests check the wire contract and not our own codec.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use porter_server::{AuthMode, Config, Console, ConsoleLine, Error, ServiceKind, bind, run};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use common::{Client, WAIT};

/// A running server as the tests here take it apart: its address, the
/// sender that stops it, and what `run` returns.
type Server = (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<Result<(), Error>>,
);

async fn start_server(config: Config) -> Server {
    start(config, None).await
}

async fn start(config: Config, console: Option<Console>) -> Server {
    let common::Server { addr, stop, handle } =
        common::Server::start_with("127.0.0.1:0", config, console).await;
    (addr, stop, handle)
}

/// The tests of this file are about the wire and the services, so they run
/// with `auth: none` (tests/auth.rs covers `ip` and `password`).
fn echo() -> Config {
    Config {
        service: ServiceKind::Echo,
        auth: AuthMode::None,
        ..Config::default()
    }
}

/// A chat room without join and leave events or history, so that a client
/// receives exactly the lines of the others (the tests of those two come
/// last, with `chat_1_1()`).
fn chat() -> Config {
    Config {
        service: ServiceKind::Chat,
        auth: AuthMode::None,
        events: false,
        history: 0,
        ..Config::default()
    }
}

/// The chat room as `porter serve` runs it: events and history on.
fn chat_1_1() -> Config {
    Config {
        service: ServiceKind::Chat,
        auth: AuthMode::None,
        ..Config::default()
    }
}

fn say_from(frame: &Value) -> (&str, &str) {
    assert_eq!(frame["type"], "say", "{frame}");
    (
        frame["from"].as_str().unwrap(),
        frame["text"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn auth_none_dialogue_is_welcome_hello_ready_with_the_peer_address() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let mut client = Client::connect(addr).await;
    let local = client.stream.local_addr().unwrap();
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["protocol"], 1);
    assert_eq!(welcome["auth"], "none");
    assert!(welcome["server"].as_str().unwrap().starts_with("porter/"));
    client
        .send(&json!({"type": "hello", "client": "test/1"}))
        .await;
    let ready = client.recv().await;
    assert_eq!(ready, json!({"type": "ready", "user": local.to_string()}));
}

#[tokio::test]
async fn echo_answers_1000_lines_in_order() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let (client, _) = Client::join(addr).await;
    let Client { stream, buf } = client;
    let (read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut bytes = Vec::new();
        for i in 0..1000 {
            let payload = json!({"type": "say", "text": format!("line {i}")}).to_string();
            bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            bytes.extend_from_slice(payload.as_bytes());
        }
        write.write_all(&bytes).await.unwrap();
        write
    });
    let mut reader = Client {
        stream: read.reunite(writer.await.unwrap()).unwrap(),
        buf,
    };
    for i in 0..1000 {
        let frame = reader.recv().await;
        assert_eq!(say_from(&frame), ("server", format!("line {i}").as_str()));
    }
}

#[tokio::test]
async fn chat_delivers_each_line_to_every_other_participant_but_not_back() {
    let (addr, _stop, _server) = start_server(chat()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::join(addr).await);
    }
    for speaker in 0..3 {
        let text = format!("hello from {speaker}");
        clients[speaker].0.say(&text).await;
        for listener in (0..3).filter(|&l| l != speaker) {
            let frame = clients[listener].0.recv().await;
            let name = clients[speaker].1.clone();
            assert_eq!(say_from(&frame), (name.as_str(), text.as_str()));
        }
    }
    // Had a speaker received its own line, it would have come before the
    // next speaker's; prove nothing else is pending by a last round trip.
    clients[0].0.say("last").await;
    for (client, _) in &mut clients[1..] {
        let frame = client.recv().await;
        assert_eq!(say_from(&frame).1, "last");
    }
    clients[1].0.say("to zero").await;
    assert_eq!(say_from(&clients[0].0.recv().await).1, "to zero");
}

#[tokio::test]
async fn console_lines_go_to_everyone_and_client_lines_to_the_console() {
    let (input_tx, input) = mpsc::channel(8);
    let (output, mut output_rx) = mpsc::channel::<ConsoleLine>(8);
    let (addr, _stop, _server) = start(chat(), Some(Console { input, output })).await;
    let (mut a, a_name) = Client::join(addr).await;
    let (mut b, _) = Client::join(addr).await;
    a.say("to the room").await;
    assert_eq!(say_from(&b.recv().await), (a_name.as_str(), "to the room"));
    let line = timeout(WAIT, output_rx.recv()).await.unwrap().unwrap();
    assert_eq!((line.from, line.text), (a_name, "to the room".to_owned()));
    input_tx.send("from the console".into()).await.unwrap();
    assert_eq!(say_from(&a.recv().await), ("server", "from the console"));
    assert_eq!(say_from(&b.recv().await), ("server", "from the console"));
}

#[tokio::test]
async fn beyond_max_connections_a_client_gets_welcome_then_busy_and_is_closed() {
    let config = Config {
        max_connections: 1,
        ..echo()
    };
    let (addr, _stop, _server) = start_server(config).await;
    let (mut first, _) = Client::join(addr).await;

    let mut second = Client::connect(addr).await;
    // `welcome` is the first frame on every connection, even a refused one.
    assert_eq!(second.recv().await["type"], "welcome");
    second.expect_error("busy").await;
    second.expect_closed().await;

    // The first is still served, and once it leaves its slot is free again.
    first.say("still here").await;
    assert_eq!(say_from(&first.recv().await).1, "still here");
    first.send(&json!({"type": "bye"})).await;
    first.expect_closed().await;
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut third = Client::connect(addr).await;
        // Sent at once: a refused connection reads and drops it while it
        // lingers, a served one takes it after `welcome`.
        third.send(&json!({"type": "hello"})).await;
        assert_eq!(third.recv().await["type"], "welcome");
        let frame = third.recv().await;
        if frame["type"] == "ready" {
            break;
        }
        assert_eq!(frame["code"], "busy", "{frame}");
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        // The slot is released just after the close; try again shortly.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_client_that_stalls_in_the_handshake_gets_timeout_and_is_closed() {
    let config = Config {
        handshake_timeout: Duration::from_millis(100),
        ..echo()
    };
    let (addr, _stop, _server) = start_server(config).await;
    let mut client = Client::connect(addr).await;
    assert_eq!(client.recv().await["type"], "welcome");
    client.expect_error("timeout").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn an_oversized_header_gets_frame_too_large_and_a_close() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let (mut client, _) = Client::join(addr).await;
    client.send_raw(&65_537u32.to_be_bytes()).await;
    client.expect_error("frame_too_large").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn the_largest_frame_allowed_is_accepted() {
    let config = Config {
        max_frame_len: 1000,
        ..echo()
    };
    let (addr, _stop, _server) = start_server(config).await;
    let (mut client, _) = Client::join(addr).await;
    let mut payload = br#"{"type":"say","text":""#.to_vec();
    let room = 1000 - payload.len() - 2;
    payload.extend(std::iter::repeat_n(b'x', room));
    payload.extend_from_slice(b"\"}");
    assert_eq!(payload.len(), 1000);
    client.send_payload(&payload).await;
    // The echo would exceed the limit once `from` is added: refused, open.
    client.expect_error("invalid_message").await;
    client.say("short").await;
    assert_eq!(say_from(&client.recv().await).1, "short");
}

#[tokio::test]
async fn invalid_frames_get_invalid_message_and_the_connection_still_works() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let mut client = Client::connect(addr).await;
    assert_eq!(client.recv().await["type"], "welcome");
    let garbage: [&[u8]; 6] = [
        b"not json",
        b"\xff\xfe\xfd",
        b"[1, 2, 3]",
        br#"{"text": "no type"}"#,
        br#"{"type": "say"}"#,
        br#"{"type": 7}"#,
    ];
    for payload in garbage {
        client.send_payload(payload).await;
        client.expect_error("invalid_message").await;
    }
    client.send(&json!({"type": "hello"})).await;
    assert_eq!(client.recv().await["type"], "ready");
    for payload in garbage {
        client.send_payload(payload).await;
        client.expect_error("invalid_message").await;
    }
    client.say("after the garbage").await;
    assert_eq!(say_from(&client.recv().await).1, "after the garbage");
}

#[tokio::test]
async fn an_unknown_type_gets_unknown_type_and_stays_open() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let (mut client, _) = Client::join(addr).await;
    client.send(&json!({"type": "dance", "speed": 3})).await;
    client.expect_error("unknown_type").await;
    client.say("still open").await;
    assert_eq!(say_from(&client.recv().await).1, "still open");
}

#[tokio::test]
async fn messages_out_of_turn_get_unexpected_and_stay_open() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let mut client = Client::connect(addr).await;
    assert_eq!(client.recv().await["type"], "welcome");
    client.say("too early").await;
    client.expect_error("unexpected").await;
    client
        .send(&json!({"type": "answer", "id": "name", "text": "x"}))
        .await;
    client.expect_error("unexpected").await;
    client.send(&json!({"type": "hello"})).await;
    assert_eq!(client.recv().await["type"], "ready");
    client.send(&json!({"type": "hello"})).await;
    client.expect_error("unexpected").await;
    client.send(&json!({"type": "logout"})).await;
    client.expect_error("unexpected").await;
    client.say("in turn").await;
    assert_eq!(say_from(&client.recv().await).1, "in turn");
}

#[tokio::test]
async fn keep_alives_are_ignored_and_bye_closes_without_error() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let (mut client, _) = Client::join(addr).await;
    client.send_raw(&[0, 0, 0, 0, 0, 0, 0, 0]).await;
    client.say("after keep-alives").await;
    assert_eq!(say_from(&client.recv().await).1, "after keep-alives");
    client.send(&json!({"type": "bye"})).await;
    client.expect_closed().await;
}

#[tokio::test]
async fn clients_leaving_mid_frame_or_by_reset_do_not_disturb_others() {
    let (addr, _stop, _server) = start_server(chat()).await;
    let (mut a, a_name) = Client::join(addr).await;
    let (mut b, _) = Client::join(addr).await;

    let (mut mid_frame, _) = Client::join(addr).await;
    mid_frame.send_raw(b"\x00\x00\x00\x40{\"type\":").await;
    drop(mid_frame);

    let (reset, _) = Client::join(addr).await;
    reset.stream.set_zero_linger().unwrap();
    drop(reset);

    let mut never_ready = Client::connect(addr).await;
    never_ready.send_raw(b"\x00\x00").await;
    drop(never_ready);

    for i in 0..3 {
        let text = format!("line {i}");
        a.say(&text).await;
        assert_eq!(say_from(&b.recv().await), (a_name.as_str(), text.as_str()));
    }
}

/// Connects with a tiny receive buffer, so that a client that does not read
/// fills up quickly.
async fn join_with_small_buffer(addr: SocketAddr) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = timeout(WAIT, socket.connect(addr)).await.unwrap().unwrap();
    let mut client = Client {
        stream,
        buf: BytesMut::new(),
    };
    assert_eq!(client.recv().await["type"], "welcome");
    client.send(&json!({"type": "hello"})).await;
    assert_eq!(client.recv().await["type"], "ready");
    client
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_and_others_keep_being_served() {
    const LINES: usize = 400;
    let config = Config {
        // Roomy enough for a reading client's bursts (the speaker's frames
        // arrive faster than one writer wake-up), small against LINES.
        outgoing_queue: 64,
        ..chat()
    };
    let (addr, _stop, _server) = start_server(config).await;
    let mut stuck = join_with_small_buffer(addr).await;
    let (mut speaker, speaker_name) = Client::join(addr).await;
    let (mut reader, _) = Client::join(addr).await;

    let text = "x".repeat(32 * 1024);
    let expected = text.clone();
    // The speaker stays at most AHEAD lines ahead of the reader, so the
    // reader's queue cannot fill however the tasks are scheduled; the stuck
    // client's does.
    const AHEAD: usize = 16;
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(AHEAD));
    let credit = window.clone();
    let reading = tokio::spawn(async move {
        for _ in 0..LINES {
            let frame = reader.recv().await;
            let (from, got) = say_from(&frame);
            assert_eq!((from, got.len()), (speaker_name.as_str(), expected.len()));
            credit.add_permits(1);
        }
    });
    for _ in 0..LINES {
        timeout(WAIT, window.acquire())
            .await
            .unwrap()
            .unwrap()
            .forget();
        speaker.say(&text).await;
    }
    timeout(WAIT, reading).await.unwrap().unwrap();

    // The stuck client now reads what the kernel held for it, then the end:
    // far fewer lines than were said.
    // It was cut off wherever its writer was, possibly inside a frame.
    let mut bytes = stuck.buf.to_vec();
    let _ = timeout(WAIT, stuck.stream.read_to_end(&mut bytes))
        .await
        .expect("the stuck client was never disconnected");
    let mut received = 0;
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if rest.len() < 4 + len {
            break;
        }
        received += 1;
        rest = &rest[4 + len..];
    }
    eprintln!("stuck client received {received} of {LINES}");
    assert!(received < LINES, "received {received} of {LINES}");

    // The speaker is still served.
    speaker.send(&json!({"type": "dance"})).await;
    speaker.expect_error("unknown_type").await;
}

#[tokio::test]
async fn shutdown_sends_bye_to_everyone_and_run_returns() {
    let (addr, stop, server) = start_server(chat()).await;
    let (mut ready, _) = Client::join(addr).await;
    let mut handshaking = Client::connect(addr).await;
    assert_eq!(handshaking.recv().await["type"], "welcome");

    stop.send(()).unwrap();
    for client in [&mut ready, &mut handshaking] {
        let bye = client.recv().await;
        assert_eq!(bye["type"], "bye", "{bye}");
        assert!(bye["text"].is_string());
        client.expect_closed().await;
    }
    timeout(WAIT, server).await.unwrap().unwrap().unwrap();
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_returns_within_the_grace_period_when_a_client_does_not_read() {
    let config = Config {
        outgoing_queue: 100_000,
        shutdown_grace: Duration::from_millis(200),
        ..chat()
    };
    let (addr, stop, server) = start_server(config).await;
    let _stuck = join_with_small_buffer(addr).await;
    let (mut speaker, _) = Client::join(addr).await;
    let text = "y".repeat(16 * 1024);
    for _ in 0..100 {
        speaker.say(&text).await;
    }
    // Make sure the server took every line before stopping it.
    speaker.send(&json!({"type": "dance"})).await;
    speaker.expect_error("unknown_type").await;
    stop.send(()).unwrap();
    timeout(Duration::from_secs(5), server)
        .await
        .expect("run did not return")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn run_refuses_ip_and_password_without_a_store() {
    for auth in [AuthMode::Ip, AuthMode::Password] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Config {
            auth,
            store: None,
            ..Config::default()
        };
        let result = run(listener, config, None, std::future::pending()).await;
        assert!(
            matches!(result, Err(Error::InvalidConfig { field: "store", .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn bind_moves_to_the_next_free_port_and_says_so() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let bound = bind("127.0.0.1", port, 20).await.unwrap();
    assert!(bound.moved());
    assert_eq!(bound.requested_port, port);
    assert!(bound.local_addr.port() > port);
    assert_eq!(bound.local_addr, bound.listener.local_addr().unwrap());
}

#[tokio::test]
async fn bind_gives_up_when_every_port_tried_is_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = bind("127.0.0.1", port, 1).await.unwrap_err();
    assert!(
        matches!(err, porter_server::BindError::AllInUse { first, last, .. }
        if first == port && last == port)
    );
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test]
async fn bind_port_zero_lets_the_system_choose_and_is_not_a_move() {
    let bound = bind("127.0.0.1", 0, 20).await.unwrap();
    assert_ne!(bound.local_addr.port(), 0);
    assert!(!bound.moved());
    let ipv6 = bind("::1", 0, 20).await;
    if let Ok(bound) = ipv6 {
        assert!(bound.local_addr.is_ipv6());
    }
}

#[tokio::test]
async fn bind_reports_other_errors_at_once_without_hunting() {
    // TEST-NET-1 is on no machine: binding fails with "address not
    // available". Only a bind is attempted; no traffic goes there.
    let err = bind("192.0.2.1", 40_000, 20).await.unwrap_err();
    match &err {
        porter_server::BindError::Bind { addr, source } => {
            assert_eq!(addr.port(), 40_000, "no other port may be tried");
            assert_eq!(source.kind(), std::io::ErrorKind::AddrNotAvailable);
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    assert!(err.to_string().contains("192.0.2.1:40000"), "{err}");
}

#[tokio::test]
async fn bind_reports_a_host_that_does_not_resolve() {
    let err = bind("no-such-host.invalid", 0, 20).await.unwrap_err();
    assert!(
        matches!(err, porter_server::BindError::Resolve { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
}

#[tokio::test]
async fn joins_and_leaves_are_told_to_the_others_as_events() {
    let (addr, _stop, _server) = start_server(chat_1_1()).await;
    let (mut a, _) = Client::join(addr).await;
    let (mut b, b_name) = Client::join(addr).await;
    let joined = a.recv().await;
    assert_eq!(joined["type"], "event", "{joined}");
    assert_eq!(joined["kind"], "joined", "{joined}");
    assert_eq!(joined["user"], b_name.as_str(), "{joined}");
    assert!(joined["at"].as_str().unwrap().ends_with('Z'), "{joined}");
    b.send(&json!({"type": "bye"})).await;
    b.expect_closed().await;
    let left = a.recv().await;
    assert_eq!(
        (&left["kind"], &left["user"]),
        (&json!("left"), &json!(b_name))
    );
}

#[tokio::test]
async fn room_lines_carry_seq_and_at_and_a_newcomer_gets_the_history_marked() {
    let config = Config {
        history: 2,
        events: false,
        ..chat_1_1()
    };
    let (addr, _stop, _server) = start_server(config).await;
    let (mut a, a_name) = Client::join(addr).await;
    for text in ["one", "two", "three"] {
        a.say(text).await;
    }
    // A round trip: the lines are in the room before the newcomer joins.
    a.send(&json!({"type": "who"})).await;
    assert_eq!(a.recv().await["type"], "who");
    let (mut b, _) = Client::join(addr).await;
    for (text, seq) in [("two", 2), ("three", 3)] {
        let line = b.recv().await;
        assert_eq!(say_from(&line), (a_name.as_str(), text));
        assert_eq!(line["seq"], seq, "{line}");
        assert_eq!(line["replay"], true, "{line}");
    }
    a.say("four").await;
    let live = b.recv().await;
    assert_eq!(say_from(&live).1, "four");
    assert_eq!(live["seq"], 4, "{live}");
    assert!(live.get("replay").is_none(), "{live}");
    assert!(live["at"].as_str().unwrap().ends_with('Z'), "{live}");
}

#[tokio::test]
async fn who_lists_the_room_and_a_private_line_reaches_its_recipient_alone() {
    let (addr, _stop, _server) = start_server(chat()).await;
    let (mut a, a_name) = Client::join(addr).await;
    let (mut b, b_name) = Client::join(addr).await;
    let (mut c, c_name) = Client::join(addr).await;
    a.send(&json!({"type": "who"})).await;
    let who = a.recv().await;
    let mut names = vec![a_name.clone(), b_name.clone(), c_name.clone()];
    names.sort();
    assert_eq!(who, json!({"type": "who", "users": names}));

    a.send(&json!({"type": "say", "text": "psst", "to": b_name}))
        .await;
    let private = b.recv().await;
    assert_eq!(say_from(&private), (a_name.as_str(), "psst"));
    assert_eq!(private["to"], b_name.as_str(), "{private}");
    assert!(private.get("seq").is_none(), "{private}");

    a.send(&json!({"type": "say", "text": "psst", "to": "nobody"}))
        .await;
    let refused = a.recv().await;
    assert_eq!(refused["code"], "unknown_user", "{refused}");

    // c saw neither: its next line is the next public one.
    a.say("public").await;
    assert_eq!(say_from(&c.recv().await).1, "public");
    assert_eq!(say_from(&b.recv().await).1, "public");
}

#[tokio::test]
async fn who_on_an_echo_server_is_refused_and_the_connection_stays() {
    let (addr, _stop, _server) = start_server(echo()).await;
    let (mut a, _) = Client::join(addr).await;
    a.send(&json!({"type": "who"})).await;
    assert_eq!(a.recv().await["code"], "unexpected");
    a.say("still here").await;
    assert_eq!(say_from(&a.recv().await), ("server", "still here"));
}
