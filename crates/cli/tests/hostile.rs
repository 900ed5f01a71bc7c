//! Hostile clients against the real `porter serve` (issue 10): what an
//! attacker can do with many connections must stay within the limits.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use porter_wire::{ErrorCode, ServerMessage};

use common::{LIMIT, Raw, ServerProcess as Server, porter};

/// Argon2 flags that make a hash take microseconds.
const CHEAP: [&str; 4] = ["--argon2-memory-kib", "64", "--argon2-iterations", "1"];

/// A password that passes the policy.
const PASSWORD: &str = "correct horse battery";

fn start(dir: &Path, args: &[&str]) -> Server {
    let mut command = porter(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--service",
        "echo",
    ]);
    command.args(CHEAP).args(args).current_dir(dir);
    Server::spawn(command)
}

fn add_user(dir: &Path, name: &str) {
    let output = assert_cmd::Command::from_std(porter(&["users", "add", name]))
        .args(CHEAP)
        .arg("--db")
        .arg(dir.join("porter.db"))
        .env("PORTER_PASSWORD", PASSWORD)
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn parked_guesses_are_verified_at_most_up_to_the_allowance_and_none_logs_in_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    // Started first: it creates the database the user goes into.
    let server = start(dir.path(), &[]);
    add_user(dir.path(), "victim");
    const PARKED: usize = 30;
    // Every connection waits at the password prompt, then all guess at once.
    let mut parked: Vec<Raw> = (0..PARKED)
        .map(|_| {
            let mut raw = Raw::hello(server.addr, None);
            raw.answer_ask("user", "victim");
            raw.expect_ask("password");
            raw
        })
        .collect();
    let go = Arc::new(Barrier::new(PARKED));
    let outcomes: Vec<ErrorCode> = thread::scope(|scope| {
        let handles: Vec<_> = parked
            .iter_mut()
            .map(|raw| {
                let go = go.clone();
                scope.spawn(move || {
                    go.wait();
                    raw.answer("password", "a wrong guess, surely");
                    raw.expect_error()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong = outcomes
        .iter()
        .filter(|c| **c == ErrorCode::BadCredentials)
        .count();
    let limited = outcomes
        .iter()
        .filter(|c| **c == ErrorCode::RateLimited)
        .count();
    assert_eq!(wrong + limited, PARKED, "{outcomes:?}");
    // The per-user allowance is 5: four wrong answers, the fifth locks.
    assert!(
        wrong <= 4,
        "{wrong} guesses were verified and answered: {outcomes:?}"
    );

    // Locked: the right password does not log in.
    let mut owner = Raw::hello(server.addr, None);
    owner.answer_ask("user", "victim");
    match owner.recv() {
        // Refused before the prompt, or right after the answer.
        Some(ServerMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::RateLimited),
        Some(ServerMessage::Ask { id, .. }) if id == "password" => {
            owner.answer("password", PASSWORD);
            assert_eq!(owner.expect_error(), ErrorCode::RateLimited);
        }
        other => panic!("expected the password prompt or a refusal, got {other:?}"),
    }

    server.stop();
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap();
    let verified = log.matches("bad password").count();
    assert!(verified <= 5, "{verified} wrong guesses were verified");
    assert!(verified >= 1, "no guess was verified at all");
    assert!(
        !log.contains("login ok"),
        "someone logged in while locked:\n{log}"
    );
    // Whatever arrives after a refusal is the close.
    for mut raw in parked {
        while let Some(message) = raw.recv() {
            assert!(
                matches!(
                    message,
                    ServerMessage::Error { .. }
                        | ServerMessage::Ask { .. }
                        | ServerMessage::Bye { .. }
                ),
                "{message:?}"
            );
        }
    }
}
