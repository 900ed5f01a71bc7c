//! `porter connect` at a terminal (a pseudo-terminal driven by rexpect),
//! against a fake server written with porter_wire's sync helpers: questions
//! are prompted (secret ones without echo), typed lines become `say`,
//! received lines are printed, `/quit` says `bye`, and a lost connection is
//! reported. Every expectation has a timeout.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use porter_wire::{AuthMode, ClientMessage, ReadFrameExt, Secret, ServerMessage, WriteFrameExt};
use rexpect::session::{PtySession, spawn_command};

use common::{
    HOSTILE_TEXTS, TIMEOUT_MS, assert_nothing_hostile_obeyed, connect_to, exit_code, porter,
    welcomed,
};

/// The session, and its working folder (which must outlive the child's
/// start: the child changes into it after the fork).
fn connect_at_terminal(port: u16) -> (PtySession, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = connect_to(port);
    command
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"));
    (spawn_command(command, Some(TIMEOUT_MS)).unwrap(), dir)
}

fn recv(stream: &mut TcpStream) -> Option<ClientMessage> {
    stream.recv_message().unwrap()
}

fn send(stream: &mut TcpStream, message: ServerMessage) {
    stream.send_message(&message).unwrap();
}

/// Accepts one client and greets it; returns the stream after `hello`.
fn accept_and_greet(listener: &TcpListener, auth: AuthMode) -> TcpStream {
    let (mut stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(TIMEOUT_MS)))
        .unwrap();
    send(
        &mut stream,
        ServerMessage::Welcome {
            server: "fake/1".into(),
            protocol: 1,
            auth,
        },
    );
    assert!(matches!(
        recv(&mut stream),
        Some(ClientMessage::Hello { .. })
    ));
    stream
}

#[test]
fn questions_are_prompted_secrets_hidden_and_lines_go_both_ways() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let mut stream = accept_and_greet(&listener, AuthMode::Password);
        send(
            &mut stream,
            ServerMessage::Ask {
                id: "user".into(),
                text: "User:".into(),
                secret: false,
            },
        );
        let user = recv(&mut stream);
        send(
            &mut stream,
            ServerMessage::Ask {
                id: "password".into(),
                text: "Password:".into(),
                secret: true,
            },
        );
        let password = recv(&mut stream);
        send(&mut stream, ServerMessage::Ready { user: "ada".into() });
        let said = recv(&mut stream);
        send(&mut stream, ServerMessage::say("hi ada", "bob"));
        let last = recv(&mut stream);
        (user, password, said, last)
    });

    let (mut p, _dir) = connect_at_terminal(port);
    p.exp_string("User:").unwrap();
    p.send_line("ada").unwrap();
    p.exp_string("Password").unwrap();
    p.send_line("hunter22").unwrap();
    let shown = p.exp_string("ada> ").unwrap();
    assert!(
        !shown.contains("hunter22"),
        "the password was echoed: {shown}"
    );
    // The line editor runs the terminal raw: Enter is a carriage return.
    p.send("hello bob\r").unwrap();
    p.flush().unwrap();
    p.exp_string("bob: hi ada").unwrap();
    p.send("/quit\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));

    let (user, password, said, last) = server.join().unwrap();
    assert_eq!(
        user,
        Some(ClientMessage::Answer {
            id: "user".into(),
            text: Secret::new("ada")
        })
    );
    assert_eq!(
        password,
        Some(ClientMessage::Answer {
            id: "password".into(),
            text: Secret::new("hunter22")
        })
    );
    assert_eq!(
        said,
        Some(ClientMessage::Say {
            text: "hello bob".into(),
            to: None
        })
    );
    assert_eq!(last, Some(ClientMessage::Bye));
}

#[test]
fn a_lost_connection_is_reported_plainly_and_exits_non_zero() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut stream = accept_and_greet(&listener, AuthMode::None);
        send(
            &mut stream,
            ServerMessage::Ready {
                user: "guest".into(),
            },
        );
        // Hold the connection until the test has seen the prompt, then drop.
        let _ = ready_rx.recv_timeout(Duration::from_millis(TIMEOUT_MS));
    });
    let (mut p, _dir) = connect_at_terminal(port);
    p.exp_string("guest> ").unwrap();
    ready_tx.send(()).unwrap();
    server.join().unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains(
            "porter: the server ended the conversation: the server closed the connection"
        ),
        "{rest}"
    );
    assert!(!rest.contains("panicked"), "{rest}");
    assert_eq!(exit_code(&p), Some(1));
}

#[test]
fn the_chat_servers_console_prints_lines_and_speaks_to_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = porter(&[
        "serve",
        "--service",
        "chat",
        "--host",
        "127.0.0.1",
        "--auth",
        "none",
    ]);
    command.current_dir(dir.path()).env("PORTER_PORT", "0");
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    let (_, listening) = p
        .exp_regex(r"porter: listening on 127\.0\.0\.1:\d+\r?\n")
        .unwrap();
    // Up to the end of the line, or the port could be cut short.
    let port: u16 = listening
        .trim_end()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let mut stream = welcomed(SocketAddr::from(([127, 0, 0, 1], port)));
    stream
        .send_message(&ClientMessage::Hello {
            client: None,
            token: None,
            since: None,
        })
        .unwrap();
    let Some(ServerMessage::Ready { user }) = stream.recv_message().unwrap() else {
        panic!("no ready");
    };
    stream
        .send_message(&ClientMessage::Say {
            text: "hello console".into(),
            to: None,
        })
        .unwrap();
    p.exp_string(&format!("{user}: hello console")).unwrap();

    // The console is a line editor in raw mode: Enter is a carriage return.
    p.send("hello room\r").unwrap();
    p.flush().unwrap();
    assert_eq!(
        stream.recv_message::<ServerMessage>().unwrap(),
        Some(ServerMessage::say("hello room", "server"))
    );
    p.process_mut()
        .signal(rexpect::process::Signal::SIGINT)
        .unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));
}

/// `porter serve --auth none --service SERVICE` at a terminal, and its
/// port once the listening line is out.
fn serve_at_terminal(service: &str) -> (PtySession, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = porter(&[
        "serve",
        "--service",
        service,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--auth",
        "none",
    ]);
    command.current_dir(dir.path());
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    let (_, listening) = p
        .exp_regex(r"porter: listening on 127\.0\.0\.1:\d+\r?\n")
        .unwrap();
    let port = listening
        .trim_end()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (p, port, dir)
}

/// A raw participant past `ready` (auth none), and its name.
fn raw_participant(port: u16) -> (TcpStream, String) {
    let mut stream = welcomed(SocketAddr::from(([127, 0, 0, 1], port)));
    stream
        .send_message(&ClientMessage::Hello {
            client: None,
            token: None,
            since: None,
        })
        .unwrap();
    match stream.recv_message::<ServerMessage>().unwrap() {
        Some(ServerMessage::Ready { user }) => (stream, user),
        other => panic!("expected ready, got {other:?}"),
    }
}

/// Issue 9: a participant's line reached the server's terminal as it was.
#[test]
fn the_chat_console_shows_hostile_lines_escaped() {
    let (mut p, port, _dir) = serve_at_terminal("chat");
    let (mut stream, user) = raw_participant(port);
    for (raw, _) in HOSTILE_TEXTS {
        stream
            .send_message(&ClientMessage::Say {
                text: raw.into(),
                to: None,
            })
            .unwrap();
    }
    stream
        .send_message(&ClientMessage::Say {
            text: "the end".into(),
            to: None,
        })
        .unwrap();
    let shown = p.exp_string(&format!("{user}: the end")).unwrap();
    for (raw, escaped) in HOSTILE_TEXTS {
        if raw.contains('\n') {
            assert!(shown.contains("line1"), "{shown:?}");
            assert!(shown.contains("  | bob: fake line"), "{shown:?}");
        } else {
            assert!(shown.contains(&format!("{user}: {escaped}")), "{shown:?}");
        }
    }
    assert_nothing_hostile_obeyed(&shown);
    p.process_mut()
        .signal(rexpect::process::Signal::SIGINT)
        .unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));
}

/// Issue 9: at an echo server, lines typed at the console vanished without
/// a word. Ctrl-C, a key for the console's line editor, still stops the
/// server.
#[test]
fn an_echo_servers_console_says_once_that_it_has_no_room_and_ctrl_c_stops_it() {
    let (mut p, _port, _dir) = serve_at_terminal("echo");
    p.exp_string("server> ").unwrap();
    p.send("hello\r").unwrap();
    p.flush().unwrap();
    p.exp_string("no room").unwrap();
    p.send("anyone?\r").unwrap();
    p.flush().unwrap();
    p.send_control('c').unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(!rest.contains("no room"), "said twice: {rest:?}");
    assert_eq!(exit_code(&p), Some(0));
}

#[test]
fn users_add_at_a_terminal_asks_the_password_twice_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = porter(&["users", "add", "ada", "--argon2-memory-kib", "64"]);
    command
        .args(["--argon2-iterations", "1"])
        .current_dir(dir.path());
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("New password for ada").unwrap();
    p.send_line("hunter2-hunter2").unwrap();
    p.exp_string("Repeat the password").unwrap();
    p.send_line("hunter2-hunter2").unwrap();
    let shown = p.exp_string("added user ada").unwrap();
    assert!(
        !shown.contains("hunter2"),
        "the password was echoed: {shown}"
    );
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));
    assert!(dir.path().join("porter.db").exists());
}
