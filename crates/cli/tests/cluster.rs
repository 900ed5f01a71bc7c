//! Issue 12: the chat room on NATS JetStream, shared by several `porter
//! serve` instances, against a real NATS server.
//!
//! Needs `PORTER_TEST_NATS_URL` (for example `nats://127.0.0.1:4222`, a
//! server with JetStream); without it every test here says so and passes.
//! Each test uses its own stream and subject prefix and deletes its stream
//! at the end.

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::{LIMIT, Raw, Relay, ServerProcess, porter};
use porter_wire::{ClientMessage, ErrorCode, EventKind, ServerMessage};

const NATS_ENV: &str = "PORTER_TEST_NATS_URL";

/// The NATS URL, or `None` (and a message) when the tests are to be
/// skipped.
fn nats_url() -> Option<String> {
    match std::env::var(NATS_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping: set {NATS_ENV} (e.g. nats://127.0.0.1:4222) to run the NATS cluster tests"
            );
            None
        }
    }
}

/// A stream and subject prefix of this test's own; its stream is deleted
/// when dropped.
struct Prefix {
    name: String,
    url: String,
}

impl Prefix {
    fn new(url: &str, test: &str) -> Prefix {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Prefix {
            name: format!("t_{test}_{}_{nanos}", std::process::id()),
            url: url.to_owned(),
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let stream = format!("{}_room", self.name);
        let url = self.url.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            if let Ok(client) = async_nats::connect(url).await {
                let js = async_nats::jetstream::new(client);
                let _ = js.delete_stream(stream).await;
            }
        });
    }
}

/// `porter serve --service chat` on the bus `url` with `prefix`, with
/// `--auth none` unless `extra` says otherwise.
fn instance(dir: &std::path::Path, url: &str, prefix: &str, extra: &[&str]) -> ServerProcess {
    let mut command = porter(&["serve", "--host", "127.0.0.1", "--port", "0"]);
    command
        .args(["--service", "chat", "--bus", url, "--bus-prefix", prefix])
        .args(extra)
        .current_dir(dir);
    if !extra.contains(&"--auth") {
        command.args(["--auth", "none"]);
    }
    ServerProcess::spawn(command)
}

/// A ready participant; its name.
fn participant(addr: SocketAddr, since: Option<u64>) -> (Raw, String) {
    let mut raw = Raw::open(addr);
    raw.send(&ClientMessage::Hello {
        client: Some("test".into()),
        token: None,
        since,
    });
    let user = raw.ready_user();
    (raw, user)
}

fn say(raw: &mut Raw, text: &str) {
    raw.send(&ClientMessage::Say {
        text: text.into(),
        to: None,
    });
}

/// The next `say` (skipping events and the like): (text, from, seq, replay).
fn next_say(raw: &mut Raw) -> (String, String, Option<u64>, bool) {
    loop {
        match raw.recv() {
            Some(ServerMessage::Say {
                text,
                from,
                seq,
                replay,
                ..
            }) => return (text, from, seq, replay),
            Some(_) => {}
            None => panic!("closed while waiting for a line"),
        }
    }
}

/// Asks `who` until `names` are all in the answer (presence crosses
/// instances within a moment), at most [`LIMIT`].
fn wait_for_names(raw: &mut Raw, names: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        raw.send(&ClientMessage::Who);
        let users = loop {
            match raw.recv() {
                Some(ServerMessage::Who { users }) => break users,
                Some(_) => {}
                None => panic!("closed"),
            }
        };
        if names.iter().all(|name| users.iter().any(|u| u == name)) {
            return users;
        }
        assert!(
            Instant::now() < deadline,
            "{names:?} never all in {users:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_instances_share_one_room_in_one_order_with_presence_and_private_lines() {
    let Some(url) = nats_url() else { return };
    let prefix = Prefix::new(&url, "share");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = instance(d1.path(), &url, &prefix.name, &[]);
    let two = instance(d2.path(), &url, &prefix.name, &[]);
    let (mut ada, ada_name) = participant(one.addr, None);
    let (mut bob, bob_name) = participant(two.addr, None);

    // Presence is cluster-wide: each instance lists both.
    let seen = wait_for_names(&mut ada, &[&ada_name, &bob_name]);
    assert_eq!(seen.len(), 2, "{seen:?}");
    wait_for_names(&mut bob, &[&ada_name, &bob_name]);

    say(&mut ada, "from one");
    let (text, from, seq, replay) = next_say(&mut bob);
    assert_eq!(
        (text.as_str(), from.as_str(), replay),
        ("from one", ada_name.as_str(), false)
    );
    say(&mut bob, "from two");
    let (text, _, seq2, _) = next_say(&mut ada);
    assert_eq!(text, "from two");
    assert_eq!(
        seq2,
        seq.map(|s| s + 1),
        "seq grows by one across instances"
    );

    // A private line reaches its recipient on the other instance.
    ada.send(&ClientMessage::Say {
        text: "psst".into(),
        to: Some(bob_name.clone()),
    });
    loop {
        match bob.recv() {
            Some(ServerMessage::Say { text, to, seq, .. }) if text == "psst" => {
                assert_eq!((to.as_deref(), seq), (Some(bob_name.as_str()), None));
                break;
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    // To no one in the cluster: refused.
    ada.send(&ClientMessage::Say {
        text: "psst".into(),
        to: Some("nobody".into()),
    });
    loop {
        match ada.recv() {
            Some(ServerMessage::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::UnknownUser);
                break;
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }

    // An event crosses too: bob leaves, ada on the other instance is told.
    drop(bob);
    loop {
        match ada.recv() {
            Some(ServerMessage::Event { kind, user, .. }) if user == bob_name => {
                if kind == EventKind::Left {
                    break;
                }
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
}

#[test]
fn history_lives_in_the_stream_and_recovery_works_across_instances_and_restarts() {
    let Some(url) = nats_url() else { return };
    let prefix = Prefix::new(&url, "history");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = instance(d1.path(), &url, &prefix.name, &["--history", "3"]);
    let (mut ada, ada_name) = participant(one.addr, None);
    let (mut watcher, _) = participant(one.addr, None);
    for n in 1..=5 {
        say(&mut ada, &n.to_string());
    }
    // A line is delivered only from the stream: once the watcher has the
    // fifth, all five are stored. The second instance starts after, and
    // reads them from the stream at start.
    while next_say(&mut watcher).0 != "5" {}
    let two = instance(d2.path(), &url, &prefix.name, &["--history", "3"]);
    let (mut probe, _) = participant(two.addr, None);
    let mut history = Vec::new();
    while history.len() < 3 {
        let (text, _, seq, replay) = next_say(&mut probe);
        assert!(replay, "{text} was not history");
        history.push((text, seq));
    }
    assert_eq!(
        history,
        [
            ("3".to_owned(), Some(3)),
            ("4".to_owned(), Some(4)),
            ("5".to_owned(), Some(5))
        ]
    );

    // Back on instance two having seen up to 4: 5 is replayed, complete.
    let (mut back, _) = participant(two.addr, Some(4));
    assert_eq!(
        next_say(&mut back),
        ("5".into(), ada_name.clone(), Some(5), true)
    );
    match back.recv() {
        Some(ServerMessage::Recovered { complete, missed }) => {
            assert_eq!((complete, missed), (true, 0))
        }
        other => panic!("expected recovered, got {other:?}"),
    }
    // Having seen up to 1: 2 is gone from the stream (it keeps 3).
    let (mut late, _) = participant(two.addr, Some(1));
    for expected in 3..=5 {
        assert_eq!(next_say(&mut late).2, Some(expected));
    }
    match late.recv() {
        Some(ServerMessage::Recovered { complete, missed }) => {
            assert_eq!((complete, missed), (false, 1))
        }
        other => panic!("expected recovered, got {other:?}"),
    }
    say(&mut ada, "live");
    let (text, _, seq, replay) = next_say(&mut late);
    assert_eq!((text.as_str(), seq, replay), ("live", Some(6), false));
}

#[test]
fn a_bus_that_is_down_refuses_lines_with_unavailable_and_loses_or_repeats_nothing_once_back() {
    let Some(url) = nats_url() else { return };
    let prefix = Prefix::new(&url, "outage");
    let target: SocketAddr = url
        .trim_start_matches("nats://")
        .rsplit('@')
        .next()
        .unwrap()
        .parse()
        .expect("PORTER_TEST_NATS_URL as nats://IP:PORT");
    let outage = Relay::to(target);
    let through = format!("nats://127.0.0.1:{}", outage.port);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flaky = instance(d1.path(), &through, &prefix.name, &[]);
    let steady = instance(d2.path(), &url, &prefix.name, &[]);
    let (mut ada, ada_name) = participant(flaky.addr, None);
    let (mut bob, _) = participant(steady.addr, None);
    wait_for_names(&mut bob, &[&ada_name]);
    say(&mut ada, "before");
    assert_eq!(next_say(&mut bob).0, "before");

    outage.take_down();
    // Lines said while the bus is down are refused with `unavailable`, and
    // the connection stays open. A line taken just before the instance saw
    // the outage may still go through once the bus is back: each line is
    // either refused or delivered once, never both, never twice.
    let deadline = Instant::now() + LIMIT;
    let mut during = 0;
    let mut refused = 0;
    while refused == 0 {
        during += 1;
        say(&mut ada, &format!("during {during}"));
        ada.send(&ClientMessage::Who);
        loop {
            match ada.recv() {
                Some(ServerMessage::Error { code, .. }) => {
                    assert_eq!(code, ErrorCode::Unavailable);
                    refused += 1;
                }
                Some(ServerMessage::Who { .. }) => break,
                Some(_) => {}
                None => panic!("the server closed the sender's connection"),
            }
        }
        assert!(Instant::now() < deadline, "never refused");
    }
    outage.bring_back();
    // Back: the instance reconnects by itself; the first line through
    // reaches bob.
    let deadline = Instant::now() + LIMIT;
    let mut n = 0;
    let mut got = Vec::new();
    'back: loop {
        n += 1;
        say(&mut ada, &format!("after {n}"));
        bob.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        while let Ok(Some(message)) =
            porter_wire::ReadFrameExt::recv_message::<ServerMessage>(&mut bob.stream)
        {
            if let ServerMessage::Say { text, seq, .. } = message {
                let after = text.starts_with("after");
                got.push((text, seq));
                if after {
                    break 'back;
                }
            }
        }
        assert!(Instant::now() < deadline, "the bus never came back");
    }
    bob.stream.set_read_timeout(Some(LIMIT)).unwrap();
    say(&mut ada, "last");
    loop {
        let (text, _, seq, _) = next_say(&mut bob);
        got.push((text.clone(), seq));
        if text == "last" {
            break;
        }
    }
    // Every publication is over once "last" is through (they go out in
    // order): count the refusals that came after the outage too.
    ada.send(&ClientMessage::Who);
    loop {
        match ada.recv() {
            Some(ServerMessage::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::Unavailable);
                refused += 1;
            }
            Some(ServerMessage::Who { .. }) => break,
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    // Said since the outage: `during` lines, `n` probes, and "last". None
    // is lost without its sender being told. (A line whose acknowledgement
    // timed out is told `unavailable` and may still arrive: NATS cannot
    // say which, so the count may exceed, never fall short.)
    let said = during + n + 1;
    assert!(
        got.len() + refused >= said,
        "a line was lost without a word: {got:?}, {refused} refused of {said}"
    );
    let seqs: Vec<u64> = got.iter().map(|(_, seq)| seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    let mut texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    texts.sort_unstable();
    texts.dedup();
    assert_eq!(texts.len(), got.len(), "a line came twice: {got:?}");
    drop((flaky, steady));
}

#[test]
fn a_kick_on_the_shared_database_and_bus_ends_the_connection_on_another_instance() {
    let Some(url) = nats_url() else { return };
    let prefix = Prefix::new(&url, "kick");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let db = db.to_str().unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut args = vec!["--auth", "password", "--db", db];
    args.extend_from_slice(&common::CHEAP);
    let _one = instance(d1.path(), &url, &prefix.name, &args);
    let two = instance(d2.path(), &url, &prefix.name, &args);

    let mut ada = Raw::hello(two.addr, None);
    ada.answer_ask("user", "ada");
    ada.answer_ask("new_password", common::PASSWORD);
    ada.answer_ask("repeat_password", common::PASSWORD);
    ada.ready_user();

    let kicked = porter(&[
        "kick",
        "ada",
        "--reason",
        "testing",
        "--db",
        db,
        "--bus",
        &url,
        "--bus-prefix",
        &prefix.name,
    ])
    .output()
    .unwrap();
    assert!(kicked.status.success(), "{kicked:?}");
    assert!(
        !String::from_utf8_lossy(&kicked.stderr).contains("warning"),
        "{kicked:?}"
    );
    loop {
        match ada.recv() {
            Some(ServerMessage::Error { code, text }) => {
                assert_eq!(code, ErrorCode::Revoked);
                assert!(text.contains("testing"), "{text}");
                break;
            }
            Some(_) => {}
            None => panic!("closed without revoked"),
        }
    }
    assert!(matches!(ada.recv(), Some(ServerMessage::Bye { .. })));
}
