//! Operators obeyed live (issue 9): `porter sessions revoke`, `porter users
//! remove` and `porter kick`, run on the database of a running `porter
//! serve`, end the live connections concerned with `error{code: revoked}`
//! then `bye`, and leave the others alone. Every wait is bounded by the
//! raw client's read timeout; none is a sleep.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use porter_wire::{ClientMessage, ErrorCode, ServerMessage};

use common::{LIMIT, PASSWORD, Raw, ServerProcess as Server, porter, serve_in};

/// `porter serve --service chat ARGS` in `dir`.
fn start(dir: &Path, args: &[&str]) -> Server {
    serve_in(dir, "chat", args)
}

/// An admin command on the database in `dir`; its stdout, after checking
/// that it succeeded.
#[track_caller]
fn admin(dir: &Path, args: &[&str]) -> String {
    let output = assert_cmd::Command::from_std(porter(args))
        .arg("--db")
        .arg(dir.join("porter.db"))
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "porter {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Registers `user` and leaves the connection ready; returns it and the
/// session token.
fn register(addr: SocketAddr, user: &str) -> (Raw, String) {
    let mut raw = Raw::hello(addr, None);
    raw.answer_ask("user", user);
    raw.answer_ask("new_password", PASSWORD);
    raw.answer_ask("repeat_password", PASSWORD);
    let mut token = None;
    loop {
        match raw.recv() {
            Some(ServerMessage::Session { token: t, .. }) => token = Some(t.expose().to_owned()),
            Some(ServerMessage::Ready { .. }) => break,
            Some(_) => {}
            None => panic!("closed before ready"),
        }
    }
    (raw, token.expect("no session token"))
}

/// Reads until the operator's `error{revoked}` and the `bye` after it,
/// passing over chat traffic; returns the error's text.
#[track_caller]
fn expect_dismissed(raw: &mut Raw) -> String {
    let text = loop {
        match raw.recv() {
            Some(ServerMessage::Error {
                code: ErrorCode::Revoked,
                text,
            }) => break text,
            Some(ServerMessage::Say { .. } | ServerMessage::Event { .. }) => {}
            other => panic!("expected error{{revoked}}, got {other:?}"),
        }
    };
    assert!(
        matches!(raw.recv(), Some(ServerMessage::Bye { .. })),
        "no bye after the revoked error"
    );
    assert!(raw.recv().is_none(), "still open after bye");
    text
}

/// Proves a connection is still served: a `who` is answered.
#[track_caller]
fn still_served(raw: &mut Raw) {
    raw.send(&ClientMessage::Who);
    loop {
        match raw.recv() {
            Some(ServerMessage::Who { .. }) => return,
            Some(ServerMessage::Say { .. } | ServerMessage::Event { .. }) => {}
            other => panic!("expected who, got {other:?}"),
        }
    }
}

#[test]
fn revoking_a_users_sessions_ends_their_live_connections_and_no_one_elses() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let (mut dave, _) = register(server.addr, "dave");
    let (mut erin, _) = register(server.addr, "erin");
    let out = admin(dir.path(), &["sessions", "revoke", "dave"]);
    assert!(out.contains("1 session(s) revoked"), "{out}");
    let text = expect_dismissed(&mut dave);
    assert!(text.contains("revoked"), "{text}");
    still_served(&mut erin);
}

#[test]
fn removing_a_user_ends_their_live_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let (mut dave, _) = register(server.addr, "dave");
    admin(dir.path(), &["users", "remove", "dave"]);
    let text = expect_dismissed(&mut dave);
    assert!(text.contains("removed"), "{text}");
}

#[test]
fn a_kick_ends_the_connection_with_its_reason_and_the_session_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let (mut dave, token) = register(server.addr, "dave");
    let (mut erin, _) = register(server.addr, "erin");
    let out = admin(dir.path(), &["kick", "dave", "--reason", "flooding"]);
    assert!(out.contains("kicked dave"), "{out}");
    let text = expect_dismissed(&mut dave);
    assert!(text.contains("flooding"), "{text}");
    still_served(&mut erin);
    // Not revoked: the token still resumes.
    let mut back = Raw::hello(server.addr, Some(&token));
    assert_eq!(back.ready_user(), "dave");
}

#[test]
fn a_kick_reaches_a_chat_name_in_ip_mode() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--auth", "ip"]);
    let mut raw = Raw::hello(server.addr, None);
    raw.answer_ask("name", "mallory");
    raw.ready_user();
    admin(dir.path(), &["kick", "mallory"]);
    let text = expect_dismissed(&mut raw);
    assert!(text.contains("removed you from the room"), "{text}");
}

#[test]
fn a_kick_with_a_control_character_in_its_reason_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _server = start(dir.path(), &[]);
    let output = porter(&["kick", "dave", "--reason", "a\u{1b}[2Jb", "--db"])
        .arg(dir.path().join("porter.db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("control characters"), "{stderr}");
}
