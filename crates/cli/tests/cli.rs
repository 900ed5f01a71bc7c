//! The real `porter` binary, end to end: `porter serve` on port 0 in its own
//! temporary folder, talked to with raw porter_wire sync clients and with
//! `porter connect`. Every wait is bounded, so a broken build fails here
//! instead of hanging.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::mpsc;
use std::thread;

use porter_wire::{ClientMessage, ErrorCode, ReadFrameExt, ServerMessage, WriteFrameExt};
use tempfile::TempDir;

use common::{
    HOSTILE_TEXTS, LIMIT, ServerProcess, connect_to, porter, serve_failing_at_start, welcomed,
};

/// A running `porter serve` in its own temporary folder, killed when
/// dropped.
struct ServerProc {
    process: ServerProcess,
    /// Its working folder, holding `porter.log`.
    dir: TempDir,
}

// The process's fields and methods (`addr`, `stdout`, `interrupt()`...)
// read as the server's own in the tests.
impl Deref for ServerProc {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl DerefMut for ServerProc {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

impl ServerProc {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("porter.log")).unwrap_or_default()
    }
}

/// Starts `porter serve` on 127.0.0.1, port 0 unless `args` say otherwise,
/// with stdin closed (no prompts, no console), in a fresh temporary folder.
/// Returns once the listening line is out.
fn start_server(args: &[&str]) -> ServerProc {
    let dir = tempfile::tempdir().unwrap();
    let mut command = porter(&["serve"]);
    if !args.contains(&"--host") {
        command.args(["--host", "127.0.0.1"]);
    }
    if !args.contains(&"--port") {
        command.args(["--port", "0"]);
    }
    // These tests are about serving and talking (issue 3): no auth unless
    // a test asks for it.
    if !args.contains(&"--auth") {
        command.args(["--auth", "none"]);
    }
    command.args(args).current_dir(dir.path());
    ServerProc {
        process: ServerProcess::spawn(command),
        dir,
    }
}

/// A raw client: a blocking socket speaking frames through porter_wire.
struct Client {
    stream: TcpStream,
    user: String,
}

impl Client {
    /// Connects and completes the handshake (auth none).
    fn ready(addr: SocketAddr) -> Client {
        let mut stream = welcomed(addr);
        stream
            .send_message(&ClientMessage::Hello {
                client: Some("test".into()),
                token: None,
                since: None,
            })
            .unwrap();
        match stream.recv_message::<ServerMessage>().unwrap() {
            Some(ServerMessage::Ready { user }) => Client { stream, user },
            other => panic!("expected ready, got {other:?}"),
        }
    }

    fn say(&mut self, text: &str) {
        self.stream
            .send_message(&ClientMessage::Say {
                text: text.into(),
                to: None,
            })
            .unwrap();
    }

    fn recv(&mut self) -> Option<ServerMessage> {
        self.stream.recv_message().unwrap()
    }

    /// The next `say`, as (from, text); join and leave events before it
    /// are passed over.
    fn heard(&mut self) -> (String, String) {
        loop {
            match self.recv() {
                Some(ServerMessage::Say { text, from, .. }) => return (from, text),
                Some(ServerMessage::Event { .. }) => {}
                other => panic!("expected say, got {other:?}"),
            }
        }
    }

    fn error_code(&mut self) -> ErrorCode {
        match self.recv() {
            Some(ServerMessage::Error { code, .. }) => code,
            other => panic!("expected error, got {other:?}"),
        }
    }

    /// Says `bye` and waits for the server to close.
    fn leave(mut self) {
        self.stream.send_message(&ClientMessage::Bye).unwrap();
        while let Ok(Some(_)) = self.stream.recv_message::<ServerMessage>() {}
    }
}

#[test]
fn a_client_can_reconnect_twenty_times() {
    let server = start_server(&["--service", "echo"]);
    for round in 0..20 {
        let mut client = Client::ready(server.addr);
        let text = format!("round {round}");
        client.say(&text);
        assert_eq!(client.heard(), ("server".to_owned(), text));
        client.leave();
    }
}

#[test]
fn a_busy_port_moves_to_the_next_and_says_so() {
    let occupied = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port();
    let server = start_server(&["--port", &port.to_string(), "--service", "echo"]);
    assert_ne!(server.addr.port(), port);
    assert_eq!(
        server.listening,
        format!(
            "porter: listening on 127.0.0.1:{} ({port} was busy)",
            server.addr.port()
        )
    );
    // And it serves there.
    let mut client = Client::ready(server.addr);
    client.say("moved");
    assert_eq!(client.heard().1, "moved");
}

#[test]
fn the_listening_line_has_no_note_when_the_port_was_free() {
    let server = start_server(&[]);
    assert_eq!(
        server.listening,
        format!("porter: listening on {}", server.addr)
    );
}

#[test]
fn events_go_to_the_log_file_and_not_to_the_console() {
    let mut server = start_server(&["--service", "echo"]);
    let client = Client::ready(server.addr);
    let peer = client.stream.local_addr().unwrap();
    client.leave();
    server.interrupt();
    assert!(server.wait_exit().success());

    let log = server.log();
    let connected = log
        .lines()
        .any(|l| l.contains("connected") && l.contains(&peer.to_string()));
    let disconnected = log
        .lines()
        .any(|l| l.contains("disconnected") && l.contains(&peer.to_string()));
    assert!(
        connected && disconnected,
        "log lacks the client {peer}:\n{log}"
    );
    assert!(log.contains("INFO"), "{log}");

    let stderr = server.stderr.lock().unwrap().clone();
    let expected = format!(
        "porter: logging to {}\n",
        server.dir.path().join("porter.log").display()
    );
    assert_eq!(stderr, expected);
    let more_stdout: Vec<String> = server.stdout.try_iter().collect();
    assert!(more_stdout.is_empty(), "{more_stdout:?}");
}

#[test]
fn json_log_lines_are_json_objects() {
    let mut server = start_server(&["--service", "echo", "--log-format", "json"]);
    Client::ready(server.addr).leave();
    server.interrupt();
    assert!(server.wait_exit().success());
    let log = server.log();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\""),
            "{line}"
        );
    }
}

#[test]
fn a_thousand_messages_come_back_in_order() {
    let server = start_server(&["--service", "echo"]);
    let client = Client::ready(server.addr);
    let mut writer = client.stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        for i in 0..1000 {
            writer
                .send_message(&ClientMessage::Say {
                    text: format!("message {i}"),
                    to: None,
                })
                .unwrap();
        }
    });
    let mut client = client;
    for i in 0..1000 {
        assert_eq!(
            client.heard(),
            ("server".to_owned(), format!("message {i}"))
        );
    }
    sending.join().unwrap();
}

#[test]
fn piped_connect_prints_every_echo_reply_in_order() {
    let server = start_server(&["--service", "echo"]);
    let input: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    let expected: String = (0..1000).map(|i| format!("server: line {i}\n")).collect();
    connect_command(&server)
        .write_stdin(input)
        .assert()
        .success()
        .stdout(expected);
}

/// `porter connect` to `server`, with its cookie jar in the server's
/// folder so that the real home is never touched.
fn connect_command(server: &ServerProc) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::from_std(connect_to(server.addr.port()));
    command
        .env("XDG_STATE_HOME", server.dir.path().join("state"))
        .timeout(LIMIT);
    command
}

#[test]
fn printf_a_b_into_porter_connect_prints_two_replies() {
    let server = start_server(&["--service", "echo"]);
    connect_command(&server)
        .write_stdin("a\nb\n")
        .assert()
        .success()
        .stdout("server: a\nserver: b\n");
}

#[test]
fn three_chat_clients_see_each_others_lines_and_not_their_own() {
    let server = start_server(&["--service", "chat"]);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::ready(server.addr)).collect();
    let users: Vec<String> = clients.iter().map(|c| c.user.clone()).collect();
    let mut heard: Vec<Vec<(String, String)>> = vec![Vec::new(); 3];
    for speaker in 0..3 {
        let line = format!("hello from {speaker}");
        clients[speaker].say(&line);
        for (listener, client) in clients.iter_mut().enumerate() {
            if listener != speaker {
                heard[listener].push(client.heard());
            }
        }
    }
    // Had anyone received their own line, it would have come first (each
    // speaker speaks only once the previous line reached everyone).
    for (listener, lines) in heard.iter().enumerate() {
        let expected: Vec<(String, String)> = (0..3)
            .filter(|&s| s != listener)
            .map(|s| (users[s].clone(), format!("hello from {s}")))
            .collect();
        assert_eq!(lines, &expected, "client {listener}");
    }
}

#[test]
fn sigint_says_bye_to_connected_clients_and_exits_zero() {
    let mut server = start_server(&["--service", "chat"]);
    let mut client = Client::ready(server.addr);
    server.interrupt();
    match client.recv() {
        Some(ServerMessage::Bye { .. }) => {}
        other => panic!("expected bye, got {other:?}"),
    }
    assert_eq!(client.recv(), None);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_client_killed_mid_frame_leaves_the_server_serving_others() {
    let server = start_server(&["--service", "echo"]);
    let mut steady = Client::ready(server.addr);
    {
        let mut broken = Client::ready(server.addr);
        // A header announcing 100 bytes, then only 50 of them.
        broken.stream.write_all(&100u32.to_be_bytes()).unwrap();
        broken.stream.write_all(&[b'x'; 50]).unwrap();
    }
    steady.say("still here");
    assert_eq!(steady.heard().1, "still here");
    let mut newcomer = Client::ready(server.addr);
    newcomer.say("me too");
    assert_eq!(newcomer.heard().1, "me too");
}

#[test]
fn an_oversized_header_gets_frame_too_large_and_is_closed() {
    let server = start_server(&["--service", "echo", "--max-frame-len", "1024"]);
    let mut client = Client::ready(server.addr);
    client.stream.write_all(&2048u32.to_be_bytes()).unwrap();
    assert_eq!(client.error_code(), ErrorCode::FrameTooLarge);
    loop {
        match client.stream.recv_message::<ServerMessage>() {
            Ok(Some(ServerMessage::Bye { .. })) => continue,
            Ok(None) | Err(_) => break,
            Ok(Some(other)) => panic!("expected the close, got {other:?}"),
        }
    }
}

#[test]
fn invalid_json_gets_invalid_message_and_the_connection_stays_open() {
    let server = start_server(&["--service", "echo"]);
    let mut client = Client::ready(server.addr);
    client.stream.send_frame(b"{not json").unwrap();
    assert_eq!(client.error_code(), ErrorCode::InvalidMessage);
    client.say("after");
    assert_eq!(client.heard().1, "after");
}

/// Every bad frame is answered, but a client sending garbage in a loop
/// cannot fill the disk with the server's log: the first few are logged,
/// the rest counted, and the count is logged when the client leaves.
#[test]
fn a_flood_of_invalid_messages_is_answered_every_time_but_logged_a_few_times() {
    let mut server = start_server(&["--service", "echo"]);
    let mut client = Client::ready(server.addr);
    let peer = client.stream.local_addr().unwrap().to_string();
    for _ in 0..200 {
        client.stream.send_frame(b"{not json").unwrap();
        assert_eq!(client.error_code(), ErrorCode::InvalidMessage);
    }
    client.say("still served");
    assert_eq!(client.heard().1, "still served");
    client.leave();
    server.interrupt();
    assert!(server.wait_exit().success());

    let log = server.log();
    let logged = log
        .lines()
        .filter(|l| l.contains("invalid message") && l.contains(&peer))
        .count();
    assert!((1..=10).contains(&logged), "{logged} lines:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("counted, not logged") && l.contains(&peer)),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("disconnected")
            && l.contains(&peer)
            && l.contains("protocol_errors=200")),
        "{log}"
    );
}

#[test]
fn say_before_ready_gets_unexpected() {
    let server = start_server(&["--service", "echo"]);
    let mut stream = welcomed(server.addr);
    stream
        .send_message(&ClientMessage::Say {
            text: "too early".into(),
            to: None,
        })
        .unwrap();
    match stream.recv_message::<ServerMessage>().unwrap() {
        Some(ServerMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::Unexpected),
        other => panic!("expected error, got {other:?}"),
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("no VmRSS")
}

#[test]
fn a_client_that_never_reads_is_disconnected_and_memory_stays_bounded() {
    let server = start_server(&["--service", "echo", "--queue-len", "64"]);
    let client = Client::ready(server.addr);
    let text = "x".repeat(32 * 1024);
    let (done_tx, done_rx) = mpsc::channel();
    let mut writer = client.stream.try_clone().unwrap();
    thread::spawn(move || {
        // At most 8,000 × 32 KiB = 250 MiB offered; the server must give
        // up on us long before.
        for sent in 0..8_000u32 {
            let say = ClientMessage::Say {
                text: text.clone(),
                to: None,
            };
            if writer.send_message(&say).is_err() {
                let _ = done_tx.send(Some(sent));
                return;
            }
        }
        let _ = done_tx.send(None);
    });
    let outcome = done_rx
        .recv_timeout(LIMIT)
        .expect("writer neither failed nor finished");
    assert!(
        outcome.is_some(),
        "the server never disconnected a client that does not read"
    );
    let rss_kib = vm_rss_kib(server.pid());
    assert!(rss_kib < 100 * 1024, "server RSS {rss_kib} KiB");
    // The server still serves others.
    let mut other = Client::ready(server.addr);
    other.say("fine");
    assert_eq!(other.heard().1, "fine");
}

#[test]
fn connecting_to_a_closed_port_fails_with_a_clear_message() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = tempfile::tempdir().unwrap();
    let output = assert_cmd::Command::from_std(connect_to(port))
        .env("XDG_STATE_HOME", state.path())
        .write_stdin("hello\n")
        .timeout(LIMIT)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("porter: cannot connect to 127.0.0.1:{port}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_log_file_in_a_missing_folder_fails_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve_failing_at_start(
        dir.path(),
        &["--auth", "none", "--log-file", "no/such/folder/porter.log"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("porter: cannot open the log file "),
        "{stderr}"
    );
    assert!(stderr.contains("no/such/folder/porter.log"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing may listen");
}

/// A full disk is found at start, not after the server went quiet: `/dev/full`
/// accepts the open and fails every write with ENOSPC.
#[cfg(target_os = "linux")]
#[test]
fn a_log_file_on_a_full_disk_fails_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve_failing_at_start(dir.path(), &["--auth", "none", "--log-file", "/dev/full"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("porter: cannot write the log file /dev/full"),
        "{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing may listen");
}

/// Issue 9: `--max-connections 0` printed "listening on …", then
/// "invalid configuration: max_connections must be at least 1", which named
/// a field nobody typed.
#[test]
fn an_impossible_limit_is_refused_by_its_flag_before_listening() {
    let cases = [
        (
            &["--max-connections", "0"][..],
            "--max-connections must be at least 1",
        ),
        (
            &["--handshake-timeout", "0"][..],
            "--handshake-timeout must be longer than zero",
        ),
        (&["--queue-len", "0"][..], "--queue-len must be at least 1"),
        (
            &["--max-frame-len", "3"][..],
            "--max-frame-len must be at least",
        ),
    ];
    for (args, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec!["--auth", "password"];
        all.extend_from_slice(args);
        let output = serve_failing_at_start(dir.path(), &all);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("porter: {expected}")),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("invalid configuration"), "{stderr}");
        assert!(output.stdout.is_empty(), "nothing may listen: {args:?}");
        assert!(
            !dir.path().join("porter.db").exists(),
            "no database is created for a server that cannot start"
        );
    }
}

#[test]
fn a_server_busy_error_makes_porter_connect_exit_non_zero() {
    let server = start_server(&["--service", "echo", "--max-connections", "1"]);
    let _occupant = Client::ready(server.addr);
    let output = connect_command(&server)
        .write_stdin("hello\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A refusal, said once (it used to come as a "server error" and again
    // as the ending).
    assert_eq!(
        stderr,
        "porter: refused: server at its connection limit, try again later (busy)\n"
    );
}

/// Issue 9, scripted: what a participant says reaches a piped `porter
/// connect` escaped, the only control character on its output being the
/// newline; `/who` works from a pipe too. The client is in the room once the
/// other participant sees it join (protocol 1.1 events).
#[test]
fn piped_connect_prints_hostile_lines_escaped_and_answers_who() {
    let server = start_server(&["--service", "chat"]);
    let mut peer = Client::ready(server.addr);
    let mut child = connect_command_std(&server)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = loop {
        match peer.recv() {
            Some(ServerMessage::Event { user, .. }) => break user,
            Some(_) => {}
            None => panic!("closed"),
        }
    };
    for (raw, _) in HOSTILE_TEXTS {
        peer.say(raw);
    }
    peer.say("the end");
    let printed = common::lines_of(child.stdout.take().unwrap());
    let mut stdout = String::new();
    while !stdout.ends_with("the end\n") {
        let line = printed.recv_timeout(LIMIT).expect("the peer's lines");
        stdout.push_str(&line);
        stdout.push('\n');
    }
    // Then ask who is here, and end the input.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "/who").unwrap();
    drop(stdin);
    let output = wait_with_output_bounded(child);
    assert!(output.status.success(), "{output:?}");
    while let Ok(line) = printed.recv_timeout(LIMIT) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let who = &peer.user;
    for (raw, escaped) in HOSTILE_TEXTS {
        if raw.contains('\n') {
            assert!(
                stdout.contains(&format!("{who}: line1\n  | bob: fake line\n")),
                "{stdout:?}"
            );
        } else {
            assert!(
                stdout.contains(&format!("{who}: {escaped}\n")),
                "{stdout:?}"
            );
        }
    }
    for c in stdout.chars() {
        assert!(
            c == '\n' || !porter_wire::text::is_escaped(c),
            "{c:?} in {stdout:?}"
        );
    }
    let mut names = [who.clone(), client];
    names.sort();
    assert!(
        stdout.contains(&format!("in the room (2): {}, {}\n", names[0], names[1])),
        "{stdout:?}"
    );
}

/// The same command as [`connect_command`], as a `std` command to spawn.
fn connect_command_std(server: &ServerProc) -> std::process::Command {
    let mut command = connect_to(server.addr.port());
    command.env("XDG_STATE_HOME", server.dir.path().join("state"));
    command
}

/// Waits for `child` at most [`LIMIT`], killing it after.
fn wait_with_output_bounded(mut child: std::process::Child) -> std::process::Output {
    let deadline = std::time::Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("porter connect did not finish within {LIMIT:?}");
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Issue 9: the cookie jar kept `localhost` and `127.0.0.1` apart, so a
/// session opened through one asked for the password again through the
/// other.
#[test]
fn a_session_opened_through_localhost_resumes_through_127_0_0_1() {
    let server = start_server(&[
        "--service",
        "echo",
        "--auth",
        "password",
        "--argon2-memory-kib",
        "64",
        "--argon2-iterations",
        "1",
    ]);
    let port = server.addr.port().to_string();
    let state = server.dir.path().join("state");
    let run = |host: &str, password: Option<&str>| {
        let mut command = assert_cmd::Command::from_std(porter(&[
            "connect", "--host", host, "--port", &port, "--user", "ada",
        ]));
        command
            .env("XDG_STATE_HOME", &state)
            .write_stdin("hi\n")
            .timeout(LIMIT);
        if let Some(password) = password {
            command.env("PORTER_PASSWORD", password);
        }
        command.output().unwrap()
    };
    let registered = run("localhost", Some("correct horse battery"));
    assert!(registered.status.success(), "{registered:?}");
    // No password this time: only the token can log in.
    let resumed = run("127.0.0.1", None);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("Welcome back, ada"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&resumed.stdout), "server: hi\n");
}
