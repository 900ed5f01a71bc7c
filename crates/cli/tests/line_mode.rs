//! Line mode (issue 13, PROTOCOL.md section 6) against the real binary: a
//! person with `nc` (netcat-openbsd) registers and talks with a user of
//! `porter connect`, and raw sockets play telnet and nc byte for byte:
//! negotiation stripped and refused, the password prompt hidden on telnet
//! only, every line ending, and every limit of a framed connection (line
//! length, handshake deadline, attempts, idle time, slow readers). Line
//! mode inside TLS is driven with `openssl s_client`.
//!
//! The tests that need `nc` or `openssl` say so and pass when it is missing;
//! CI installs both (`netcat-openbsd`, `openssl`). Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    CHEAP, HOSTILE_TEXTS, LIMIT, PASSWORD, Raw, ServerProcess, assert_nothing_hostile_obeyed,
    connect_to, porter, serve_in,
};
use porter_wire::{ClientMessage, EventKind, ServerMessage};

/// Telnet's bytes (RFC 854, 857, 858, 1073, 1091).
const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const TTYPE: u8 = 24;
const NAWS: u8 = 31;

/// Everything a reader thread has taken from a stream so far, and whether
/// the stream ended.
#[derive(Clone, Default)]
struct Transcript {
    seen: Arc<Mutex<(Vec<u8>, bool)>>,
}

impl Transcript {
    /// Reads `from` on a thread until it ends.
    fn of(mut from: impl Read + Send + 'static) -> Transcript {
        let transcript = Transcript::default();
        let seen = transcript.seen.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = from.read(&mut buf).unwrap_or(0);
                let mut seen = seen.lock().unwrap();
                if n == 0 {
                    seen.1 = true;
                    return;
                }
                seen.0.extend_from_slice(&buf[..n]);
            }
        });
        transcript
    }

    fn bytes(&self) -> Vec<u8> {
        self.seen.lock().unwrap().0.clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn ended(&self) -> bool {
        self.seen.lock().unwrap().1
    }

    /// Waits until `needle` has been received after byte `from`; returns
    /// where it ends.
    #[track_caller]
    fn wait_for_after(&self, from: usize, needle: &[u8]) -> usize {
        let deadline = Instant::now() + LIMIT;
        loop {
            let bytes = self.bytes();
            if let Some(at) = bytes
                .get(from..)
                .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
            {
                return from + at + needle.len();
            }
            assert!(
                !self.ended() && Instant::now() < deadline,
                "never got {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                self.text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `needle` has been received; returns where it ends.
    #[track_caller]
    fn wait_for(&self, needle: &str) -> usize {
        self.wait_for_after(0, needle.as_bytes())
    }

    /// Waits until the stream ends.
    #[track_caller]
    fn wait_end(&self) {
        let deadline = Instant::now() + LIMIT;
        while !self.ended() {
            assert!(Instant::now() < deadline, "still open: {:?}", self.text());
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A person at a raw socket: what it types, and what it was shown.
struct Person {
    stream: TcpStream,
    shown: Transcript,
}

impl Person {
    /// Connects; nothing is typed yet.
    fn connect(addr: SocketAddr) -> Person {
        let stream = TcpStream::connect(addr).unwrap();
        let shown = Transcript::of(stream.try_clone().unwrap());
        Person { stream, shown }
    }

    /// Connects and presses Enter once `welcome` has arrived, as the hint
    /// says.
    fn enter(addr: SocketAddr) -> Person {
        let mut person = Person::connect(addr);
        person.shown.wait_for("press Enter");
        person.shown.wait_for("}");
        person.type_bytes(b"\r\n");
        person.shown.wait_for("-- plain lines from here");
        person
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn type_line(&mut self, line: &str) {
        self.type_bytes(format!("{line}\r\n").as_bytes());
    }
}

/// `porter users add NAME` on the database in `dir`, with [`PASSWORD`].
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
    assert!(output.status.success(), "{output:?}");
}

/// Stops `server` (running in `dir`) and returns its log file.
fn stopped_log(server: ServerProcess, dir: &Path) -> String {
    assert!(server.stop().success());
    std::fs::read_to_string(dir.join("porter.log")).unwrap()
}

/// Whether `program` can be run here; says so when it cannot.
fn available(program: &str, package: &str) -> bool {
    let found = Command::new(program)
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("skipped: `{program}` is not installed (package {package})");
    }
    found
}

/// A child process killed when dropped, so a failing test leaves none.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_person_with_nc_registers_talks_with_porter_connect_and_leaves_with_quit() {
    if !available("nc", "netcat-openbsd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--history", "0"]);
    let mut nc = Killed(
        Command::new("nc")
            .args(["127.0.0.1", &server.port()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let shown = Transcript::of(nc.0.stdout.take().unwrap());
    let mut typed = nc.0.stdin.take().unwrap();
    let mut type_line = |line: &str| typed.write_all(format!("{line}\n").as_bytes()).unwrap();

    shown.wait_for("press Enter to talk in plain lines");
    type_line("");
    shown.wait_for("User name: ");
    type_line("ada");
    shown.wait_for("New password (8 to 128 characters): ");
    type_line(PASSWORD);
    shown.wait_for("Repeat the password: ");
    type_line(PASSWORD);
    shown.wait_for("server: Welcome, ada!\r\n");
    shown.wait_for("-- you are ada: type to talk, /help lists the commands --\r\n");

    // Bob, with porter connect: registers, says a line, and stays while
    // input is open.
    let mut bob = Killed(
        connect_to(server.addr.port())
            .args(["--user", "bob"])
            .env("PORTER_PASSWORD", PASSWORD)
            .env("XDG_STATE_HOME", state.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let bob_shown = Transcript::of(bob.0.stdout.take().unwrap());
    let mut bob_typed = bob.0.stdin.take().unwrap();
    shown.wait_for("--> bob joined\r\n");
    bob_typed.write_all(b"hi from bob\n").unwrap();
    shown.wait_for("bob: hi from bob\r\n");

    type_line("hello bob");
    bob_shown.wait_for("ada: hello bob\n");
    type_line("/who");
    shown.wait_for("in the room (2): ada, bob\r\n");
    type_line("/msg bob just for you");
    bob_shown.wait_for("[private] ada: just for you\n");

    // Bob's input ends: he leaves once the room is quiet.
    drop(bob_typed);
    shown.wait_for("<-- bob left\r\n");
    assert!(bob.0.wait().unwrap().success());

    type_line("/quit");
    shown.wait_for("bye: logged out\r\n");
    // nc leaves once its input ends too, as at a terminal after Ctrl-D.
    drop(typed);
    shown.wait_end();
    assert!(
        !shown.bytes().contains(&IAC),
        "nc must never receive a telnet negotiation byte"
    );
    assert!(
        !shown.text().contains(PASSWORD),
        "the server never echoes a password"
    );
    drop(nc);
    let log = stopped_log(server, dir.path());
    assert!(log.contains(r#"user=ada reason="logged out""#), "{log}");
    assert!(log.contains("line mode"), "{log}");
}

#[test]
fn telnet_negotiation_is_stripped_and_refused_and_the_password_prompt_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &[]);
    let mut telnet = Person::connect(server.addr);
    telnet.shown.wait_for("press Enter");
    // What telnet opens with: it will send its window size and terminal
    // type, and asks the server to suppress go-ahead; then the person's
    // Enter.
    telnet.type_bytes(&[IAC, WILL, NAWS, IAC, WILL, TTYPE, IAC, DO, SGA]);
    telnet.shown.wait_for_after(0, &[IAC, DONT, NAWS]);
    telnet.shown.wait_for_after(0, &[IAC, DONT, TTYPE]);
    telnet.shown.wait_for_after(0, &[IAC, WONT, SGA]);
    // A subnegotiation split across writes, inside the person's line.
    telnet.type_bytes(b"\r\n");
    let at = telnet.shown.wait_for("User name: ");
    telnet.type_bytes(&[b'a', IAC, SB, NAWS, 0, 80]);
    thread::sleep(Duration::from_millis(50));
    telnet.type_bytes(&[0, 24, IAC, SE, b'd', b'a', b'\r', b'\n']);
    // The password prompts are hidden: WILL ECHO before, WONT ECHO after.
    let at = telnet.shown.wait_for_after(at, &[IAC, WILL, ECHO]);
    let at = telnet
        .shown
        .wait_for_after(at, b"New password (8 to 128 characters): ");
    telnet.type_bytes(&[IAC, DO, ECHO]);
    // Telnet's bare CR: CR NUL.
    telnet.type_bytes(format!("{PASSWORD}\r\0").as_bytes());
    let at = telnet
        .shown
        .wait_for_after(at, &[IAC, WONT, ECHO, b'\r', b'\n']);
    let at = telnet.shown.wait_for_after(at, &[IAC, WILL, ECHO]);
    let at = telnet.shown.wait_for_after(at, b"Repeat the password: ");
    telnet.type_line(PASSWORD);
    let at = telnet.shown.wait_for_after(at, &[IAC, WONT, ECHO]);
    telnet
        .shown
        .wait_for_after(at, b"-- you are ada: type to talk");
    // DO ECHO was an acceptance, not refused: the only WONT ECHOs are the
    // two after the passwords.
    let shown = telnet.shown.bytes();
    let wont_echo = shown.windows(3).filter(|w| *w == [IAC, WONT, ECHO]).count();
    assert_eq!(wont_echo, 2, "{shown:?}");
    assert!(!telnet.shown.text().contains(PASSWORD));
    let log = stopped_log(server, dir.path());
    assert!(log.contains("line mode"), "{log}");
}

#[test]
fn lines_may_end_with_crlf_bare_lf_or_cr_nul_and_are_answered_with_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "echo", &["--auth", "none"]);
    let mut person = Person::enter(server.addr);
    person.shown.wait_for("-- you are 127.0.0.1:");
    person.type_bytes(b"one\r\ntwo\nthree\r\0four\r");
    person.type_bytes(b"\nfive\n");
    person.shown.wait_for(
        "server: one\r\nserver: two\r\nserver: three\r\nserver: four\r\nserver: five\r\n",
    );
    // Ctrl-D at nc: the rest is the last line, and the connection ends.
    person.type_bytes(b"six");
    person.stream.shutdown(Shutdown::Write).unwrap();
    person.shown.wait_for("server: six\r\n");
    person.shown.wait_end();
}

#[test]
fn a_line_over_the_limit_gets_a_clear_error_and_closes_that_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(
        dir.path(),
        "echo",
        &["--auth", "none", "--max-frame-len", "1024"],
    );
    let mut framed = Raw::hello(server.addr, None);
    framed.ready_user();

    let mut person = Person::enter(server.addr);
    person.shown.wait_for("-- you are");
    person.type_line(&"x".repeat(900));
    person
        .shown
        .wait_for(&format!("server: {}\r\n", "x".repeat(900)));
    // Longer than a frame may be, and never ended: refused at once.
    person.type_bytes(&[b'y'; 2000]);
    person
        .shown
        .wait_for("error: line too long (the limit is 1024 bytes here)\r\n");
    person.shown.wait_end();

    // The others are still served, framed or not.
    framed.send(&ClientMessage::Say {
        text: "still here".into(),
        to: None,
    });
    assert_eq!(
        framed.recv(),
        Some(ServerMessage::say("still here", "server"))
    );
    let mut next = Person::enter(server.addr);
    next.shown.wait_for("-- you are");
    next.type_line("/quit");
    next.shown.wait_for("bye\r\n");
    next.shown.wait_end();
}

#[test]
fn a_line_over_the_pre_login_limit_is_refused_at_the_first_question() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--pre-login-max-frame-len", "256"]);
    let mut person = Person::enter(server.addr);
    person.shown.wait_for("User name: ");
    person.type_line(&"n".repeat(300));
    person
        .shown
        .wait_for("error: line too long (the limit is 256 bytes here)\r\n");
    person.shown.wait_end();
}

#[test]
fn a_person_who_never_types_is_closed_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--handshake-timeout", "1"]);
    // Presses Enter, then nothing at the prompt.
    let started = Instant::now();
    let person = Person::enter(server.addr);
    person.shown.wait_for("User name: ");
    person.shown.wait_for("error: handshake took too long\r\n");
    person.shown.wait_end();
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Never even presses Enter: taken for a framed client, told in a frame.
    let silent = Person::connect(server.addr);
    silent.shown.wait_for(r#""code":"timeout""#);
    silent.shown.wait_end();
}

#[test]
fn wrong_passwords_in_line_mode_count_as_in_frames_and_end_with_bye() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--max-auth-attempts", "2"]);
    add_user(dir.path(), "ada");
    let mut person = Person::enter(server.addr);
    person.shown.wait_for("User name: ");
    person.type_line("ada");
    let at = person.shown.wait_for("Password: ");
    person.type_line("not the password");
    let at = person
        .shown
        .wait_for_after(at, b"error: wrong user name or password\r\nPassword: ");
    person.type_line("still not it");
    person.shown.wait_for_after(at, b"bye: ");
    person.shown.wait_end();
    assert!(!person.shown.text().contains("not the password"));
}

#[test]
fn a_person_who_stops_typing_after_login_is_closed_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(
        dir.path(),
        "echo",
        &["--auth", "none", "--idle-timeout", "1"],
    );
    let person = Person::enter(server.addr);
    person.shown.wait_for("-- you are");
    person.shown.wait_for("error: idle for too long\r\n");
    person.shown.wait_end();
}

#[test]
fn hostile_control_characters_in_a_chat_line_are_neutralised_for_a_line_mode_reader() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--auth", "none", "--history", "0"]);
    let reader = Person::enter(server.addr);
    reader.shown.wait_for("-- you are");
    let mut sender = Raw::hello(server.addr, None);
    let sender_name = sender.ready_user();
    for (text, _) in HOSTILE_TEXTS {
        sender.send(&ClientMessage::Say {
            text: text.into(),
            to: None,
        });
    }
    sender.send(&ClientMessage::Say {
        text: "done".into(),
        to: None,
    });
    reader.shown.wait_for(&format!("{sender_name}: done\r\n"));
    let shown = reader.shown.text();
    assert_nothing_hostile_obeyed(&shown);
    assert!(shown.contains(r"\u{1b}[2J\u{1b}[H"), "{shown}");
    assert!(shown.contains(r"AAAA\rforged"), "{shown}");
    assert!(shown.contains("line1\r\n  | bob: fake line"), "{shown}");
    assert!(shown.contains(r"a\u{202e}gnp.exe"), "{shown}");
}

#[test]
fn a_line_mode_reader_that_never_reads_is_cut_and_the_room_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(
        dir.path(),
        "chat",
        &["--auth", "none", "--history", "0", "--queue-len", "64"],
    );
    let sleeper = Person::enter(server.addr);
    sleeper.shown.wait_for("-- you are");
    // From here on, the sleeper's socket is not read.
    let sleeper_port = sleeper.stream.local_addr().unwrap().port();
    let mut talker = Raw::hello(server.addr, None);
    talker.ready_user();
    // About 3 MB, paced, for a sleeper whose queue holds 64 lines and whose
    // socket buffers a few hundred kilobytes: cut long before the end.
    let line = "x".repeat(1000);
    for _ in 0..30 {
        for _ in 0..100 {
            talker.send(&ClientMessage::Say {
                text: line.clone(),
                to: None,
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
    // The room tells the talker the sleeper left: it was cut.
    loop {
        match talker.recv() {
            Some(ServerMessage::Event { kind, user, .. })
                if kind == EventKind::Left && user.ends_with(&format!(":{sleeper_port}")) =>
            {
                break;
            }
            Some(_) => {}
            None => panic!("the sleeper was not cut within 3,000 lines"),
        }
    }
    talker.send(&ClientMessage::Who);
    loop {
        match talker.recv() {
            Some(ServerMessage::Who { users }) => {
                assert_eq!(users.len(), 1, "{users:?}");
                break;
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    drop(sleeper);
}

#[test]
fn line_mode_works_inside_tls() {
    if !available("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "echo", &["--auth", "none", "--tls"]);
    let mut client = Killed(
        Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &server.addr.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let shown = Transcript::of(client.0.stdout.take().unwrap());
    let mut typed = client.0.stdin.take().unwrap();
    shown.wait_for("press Enter");
    typed.write_all(b"\n").unwrap();
    shown.wait_for("-- you are");
    typed.write_all(b"over tls\n").unwrap();
    shown.wait_for("server: over tls\r\n");
    typed.write_all(b"/quit\n").unwrap();
    shown.wait_for("bye\r\n");
    drop(typed);
    drop(client);
}
