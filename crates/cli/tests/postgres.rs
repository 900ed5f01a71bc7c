//! `porter` on PostgreSQL (issue 12): `porter serve --db postgres://...`, the admin commands
//! on the same database, two instances sharing it, and a server that loses PostgreSQL.
//!
//! The server is the one named by `PORTER_TEST_POSTGRES_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`); each test works in a schema of its own
//! (`porter_store::contract::postgres::TestSchema`), passed to `porter` in the URL's
//! `search_path` (`?options[search_path]=porter_test_...`), and dropped at the end. Without the
//! variable those tests pass without doing anything; the one that needs no server (an
//! unreachable database) always runs.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use porter_store::contract::postgres::{Link, TestSchema};
use porter_wire::{ClientMessage, ErrorCode, ServerMessage};

use common::{CHEAP, LIMIT, PASSWORD, Raw, ServerProcess as Server, porter, serve_in};

/// `porter ARGS --db URL` with nothing on stdin (the password, where one is asked, from
/// `PORTER_PASSWORD`); its output.
fn admin_output(url: &str, args: &[&str]) -> std::process::Output {
    assert_cmd::Command::from_std(porter(args))
        .args(["--db", url])
        .env("PORTER_PASSWORD", PASSWORD)
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap()
}

/// `porter ARGS --db URL`; its stdout, after checking that it succeeded.
#[track_caller]
fn admin(url: &str, args: &[&str]) -> String {
    let output = admin_output(url, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "porter {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `porter serve --service SERVICE --db URL ARGS` in `dir`.
fn serve(dir: &Path, service: &str, url: &str, args: &[&str]) -> Server {
    let mut all = vec!["--db", url];
    all.extend_from_slice(args);
    serve_in(dir, service, &all)
}

/// Registers `user` and leaves the connection ready.
fn register(addr: SocketAddr, user: &str) -> Raw {
    let mut raw = Raw::hello(addr, None);
    raw.answer_ask("user", user);
    raw.answer_ask("new_password", PASSWORD);
    raw.answer_ask("repeat_password", PASSWORD);
    raw.ready_user();
    raw
}

/// Reads until the operator's `error{revoked}` and the `bye` after it.
#[track_caller]
fn expect_dismissed(raw: &mut Raw) {
    loop {
        match raw.recv() {
            Some(ServerMessage::Error {
                code: ErrorCode::Revoked,
                ..
            }) => break,
            Some(ServerMessage::Say { .. } | ServerMessage::Event { .. }) => {}
            other => panic!("expected error{{revoked}}, got {other:?}"),
        }
    }
    assert!(matches!(raw.recv(), Some(ServerMessage::Bye { .. })));
}

/// Says `text` on an echo connection and reads it back.
#[track_caller]
fn echoes(raw: &mut Raw, text: &str) {
    raw.send(&ClientMessage::Say {
        text: text.into(),
        to: None,
    });
    match raw.recv() {
        Some(ServerMessage::Say { text: back, .. }) => assert_eq!(back, text),
        other => panic!("expected the echo of {text:?}, got {other:?}"),
    }
}

#[test]
fn every_admin_command_works_on_the_postgres_database_of_two_running_servers() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let url = schema.url();
    let dir = tempfile::tempdir().unwrap();

    // Before any server: no Porter tables, and the admin command creates none.
    let output = admin_output(&url, &["users", "list"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no Porter tables") && stderr.contains("porter serve"),
        "{stderr}"
    );

    // Two instances on one database: one with passwords, one knowing clients by address.
    let passwords = serve(dir.path(), "chat", &url, &[]);
    let by_address = serve(dir.path(), "chat", &url, &["--auth", "ip"]);

    let mut add = vec!["users", "add", "carol"];
    add.extend_from_slice(&CHEAP);
    assert!(admin(&url, &add).contains("added user carol"));
    let mut dave = register(passwords.addr, "dave");
    let users = admin(&url, &["users", "list"]);
    assert!(users.contains("carol") && users.contains("dave"), "{users}");
    let mut passwd = vec!["users", "passwd", "carol"];
    passwd.extend_from_slice(&CHEAP);
    assert!(admin(&url, &passwd).contains("password changed for carol"));

    let sessions = admin(&url, &["sessions", "list", "dave"]);
    assert_eq!(
        sessions.lines().count(),
        2,
        "a header and dave's: {sessions}"
    );
    let out = admin(&url, &["sessions", "revoke", "dave"]);
    assert!(out.contains("1 session(s) revoked"), "{out}");
    expect_dismissed(&mut dave);
    assert!(admin(&url, &["sessions", "purge"]).contains("1 session(s) purged"));

    let mut erin = register(passwords.addr, "erin");
    assert!(admin(&url, &["kick", "erin", "--reason", "testing"]).contains("kicked erin"));
    expect_dismissed(&mut erin);
    assert!(admin(&url, &["users", "remove", "carol"]).contains("removed user carol"));
    assert!(!admin(&url, &["users", "list"]).contains("carol"));

    let mut mallory = Raw::hello(by_address.addr, None);
    mallory.answer_ask("name", "mallory");
    mallory.ready_user();
    let names = admin(&url, &["names", "list"]);
    assert!(
        names.contains("127.0.0.1") && names.contains("mallory"),
        "{names}"
    );
    assert!(admin(&url, &["names", "forget", "127.0.0.1"]).contains("forgot the name"));
    assert!(!admin(&url, &["names", "list"]).contains("mallory"));
}

/// An admin command pointed at a PostgreSQL server that is not there fails within seconds,
/// says that the database cannot be reached, and never shows the URL's password.
#[test]
fn an_admin_command_on_an_unreachable_postgres_says_so_without_the_password() {
    let started = Instant::now();
    let output = admin_output(
        "postgres://porter:s3cret@127.0.0.1:1/porter",
        &["users", "list"],
    );
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    assert!(
        stderr.contains("postgres://porter:***@127.0.0.1:1/porter"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// Issue 12: an instance that loses PostgreSQL refuses new logins with a clear error within
/// seconds, keeps serving the clients already in, never exits, and takes logins again once
/// PostgreSQL is back.
#[test]
fn a_server_that_loses_postgres_refuses_logins_keeps_its_clients_and_recovers() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let mut link = Link::to(schema.server_addr()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), "echo", &schema.url_through(&link), &[]);
    let mut dave = register(server.addr, "dave");
    echoes(&mut dave, "before");

    link.cut();
    let started = Instant::now();
    let mut erin = Raw::hello(server.addr, None);
    erin.answer_ask("user", "erin");
    match erin.recv() {
        Some(ServerMessage::Bye { text }) => {
            assert!(text.contains("database cannot be reached"), "{text}")
        }
        other => panic!("expected bye, got {other:?}"),
    }
    assert!(erin.recv().is_none(), "closed after bye");
    let refused_after = started.elapsed();
    assert!(refused_after < Duration::from_secs(8), "{refused_after:?}");
    echoes(&mut dave, "during");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );

    link.restore().unwrap();
    let mut erin = register(server.addr, "erin");
    echoes(&mut erin, "after");
    echoes(&mut dave, "still");

    let stderr = server.stop_and_stderr();
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap_or_default();
    assert!(
        log.contains("the database cannot be reached"),
        "the log names the cause: {stderr}{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
