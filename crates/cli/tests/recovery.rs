//! Issue 12: history and recovery in the in-process room, against the real
//! binary. A `hello` with `since` gets the lines it missed (replayed), then
//! `recovered`, then live lines; `porter connect` at a terminal reconnects
//! by itself after a lost connection and resumes from the last line it
//! showed.

mod common;

use std::net::SocketAddr;

use common::{Raw, Relay, TIMEOUT_MS, at_usual_terminal, porter, serve_in};
use porter_wire::{ClientMessage, ServerMessage};
use rexpect::session::spawn_command;

/// A participant in the room, its `hello` carrying `since`.
fn participant(addr: SocketAddr, since: Option<u64>) -> Raw {
    let mut raw = Raw::open(addr);
    raw.send(&ClientMessage::Hello {
        client: Some("test".into()),
        token: None,
        since,
    });
    raw.ready_user();
    raw
}

fn say(raw: &mut Raw, text: &str) {
    raw.send(&ClientMessage::Say {
        text: text.into(),
        to: None,
    });
}

/// The room lines (text, seq, replay) and `recovered` a participant
/// receives until the line `until` arrives live.
fn until_live(raw: &mut Raw, until: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        match raw.recv() {
            Some(ServerMessage::Say {
                text, seq, replay, ..
            }) => {
                let done = text == until && !replay;
                got.push(format!("{text} {} {replay}", seq.unwrap_or(0)));
                if done {
                    return got;
                }
            }
            Some(ServerMessage::Recovered { complete, missed }) => {
                got.push(format!("recovered {complete} {missed}"));
            }
            Some(_) => {}
            None => panic!("closed; got {got:?}"),
        }
    }
}

#[test]
fn a_hello_with_since_gets_the_missed_lines_then_recovered_then_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--auth", "none", "--history", "4"]);
    let mut speaker = participant(server.addr, None);
    for n in 1..=6 {
        say(&mut speaker, &n.to_string());
    }
    // A `who` answered means the six lines before it were taken.
    speaker.send(&ClientMessage::Who);
    while !matches!(speaker.recv(), Some(ServerMessage::Who { .. })) {}

    // Saw up to 3: 4, 5, 6 are held; nothing is missing.
    let mut back = participant(server.addr, Some(3));
    say(&mut speaker, "7");
    assert_eq!(
        until_live(&mut back, "7"),
        [
            "4 4 true",
            "5 5 true",
            "6 6 true",
            "recovered true 0",
            "7 7 false"
        ]
    );

    // Saw up to 1: 2 is gone (the room holds 4: 4 to 7).
    let mut late = participant(server.addr, Some(1));
    say(&mut speaker, "8");
    assert_eq!(
        until_live(&mut late, "8"),
        [
            "4 4 true",
            "5 5 true",
            "6 6 true",
            "7 7 true",
            "recovered false 2",
            "8 8 false"
        ]
    );

    // A newcomer without since: the last lines as history, no recovered.
    let mut new = participant(server.addr, None);
    say(&mut speaker, "9");
    assert_eq!(
        until_live(&mut new, "9"),
        ["5 5 true", "6 6 true", "7 7 true", "8 8 true", "9 9 false"]
    );
}

#[test]
fn porter_connect_reconnects_after_a_lost_connection_and_shows_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--auth", "none"]);
    let relay = Relay::to(server.addr);
    let mut speaker = participant(server.addr, None);
    let mut command = porter(&[
        "connect",
        "--host",
        "127.0.0.1",
        "--port",
        &relay.port.to_string(),
        "--no-timestamps",
    ]);
    command
        .current_dir(dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"));
    let mut p = spawn_command(at_usual_terminal(&command, false), Some(TIMEOUT_MS)).unwrap();
    p.exp_string("connected to porter/").unwrap();
    // The terminal's participant is in the room once its join is told.
    while !matches!(speaker.recv(), Some(ServerMessage::Event { .. })) {}
    say(&mut speaker, "before the cut");
    p.exp_string("before the cut").unwrap();

    relay.cut();
    p.exp_string("connection lost").unwrap();
    // Said while the terminal's client is away.
    say(&mut speaker, "while away one");
    say(&mut speaker, "while away two");
    p.exp_string("reconnected to porter/").unwrap();
    p.exp_string("catching up after line 1").unwrap();
    let replayed = p.exp_string("while away two").unwrap();
    assert!(replayed.contains("while away one"), "{replayed}");
    assert!(
        !replayed.contains("before the cut"),
        "shown twice: {replayed}"
    );
    say(&mut speaker, "live again");
    p.exp_string("live again").unwrap();
    p.send("/quit\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
}
