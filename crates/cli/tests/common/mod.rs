//! What the `porter` binary's test files share: running the binary with a
//! clean environment, a `porter serve` child read up to its listening line,
//! a raw porter_wire client, and the exit code of a pseudo-terminal session.
//! Every wait is bounded by [`LIMIT`], so a broken build fails instead of
//! hanging.

// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use porter_wire::{ClientMessage, ErrorCode, ReadFrameExt, Secret, ServerMessage, WriteFrameExt};
use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

pub const PORTER: &str = env!("CARGO_BIN_EXE_porter");

/// Upper bound for every wait, in milliseconds as rexpect takes it.
pub const TIMEOUT_MS: u64 = 20_000;

/// Upper bound for every wait.
pub const LIMIT: Duration = Duration::from_millis(TIMEOUT_MS);

/// What the variables `porter` reads start with: every option of `serve`
/// has one, and a developer's own settings must not leak into a test.
const PORTER_ENV_PREFIX: &str = "PORTER_";

/// An XDG config directory that does not exist, so that no developer's
/// `~/.config/porter/porter.toml` is read by a test.
const NO_CONFIG_HOME: &str = "/nonexistent/porter-tests-config";

/// Argon2 flags that make a hash take microseconds.
pub const CHEAP: [&str; 4] = ["--argon2-memory-kib", "64", "--argon2-iterations", "1"];

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery";

/// `porter serve --service SERVICE ARGS` on 127.0.0.1, port 0, working in
/// `dir` (so its log and database are there), with cheap Argon2; returns
/// once it listens.
pub fn serve_in(dir: &std::path::Path, service: &str, args: &[&str]) -> ServerProcess {
    let mut command = porter(&["serve", "--host", "127.0.0.1", "--port", "0"]);
    command
        .args(["--service", service])
        .args(CHEAP)
        .args(args)
        .current_dir(dir);
    ServerProcess::spawn(command)
}

/// `porter args…`, without any `PORTER_*` variable of the environment.
pub fn porter(args: &[&str]) -> Command {
    let mut command = Command::new(PORTER);
    command.args(args);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with(PORTER_ENV_PREFIX) {
            command.env_remove(var);
        }
    }
    command.env("XDG_CONFIG_HOME", NO_CONFIG_HOME);
    command
}

/// `porter connect` to 127.0.0.1:`port`, with a clean environment.
pub fn connect_to(port: u16) -> Command {
    porter(&[
        "connect",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
}

/// Runs a `porter serve` on 127.0.0.1, port 0, in `dir` with `args` and
/// nothing on stdin, for a start-up that must fail: its output once it has
/// exited (killed after [`LIMIT`] should it serve instead).
pub fn serve_failing_at_start(dir: &Path, args: &[&str]) -> Output {
    assert_cmd::Command::from_std(porter(&["serve", "--host", "127.0.0.1", "--port", "0"]))
        .args(args)
        .current_dir(dir)
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap()
}

/// A running `porter serve`, killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The whole listening line, as printed.
    pub listening: String,
    /// Lines printed on stdout before the listening line (the TLS
    /// certificate's, say).
    pub preamble: Vec<String>,
    /// Lines printed on stdout after the listening line.
    pub stdout: Receiver<String>,
    /// Everything printed on stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// The thread filling `stderr`, done once the server has exited.
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Spawns `command` (a `porter serve`) with stdin closed (no prompts,
    /// no console) and returns once its listening line is out.
    pub fn spawn(mut command: Command) -> ServerProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let stderr_reader = thread::spawn(move || {
            let mut buf = [0; 1024];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut preamble = Vec::new();
        let listening = loop {
            let Ok(line) = stdout.recv_timeout(LIMIT) else {
                let _ = child.kill();
                panic!("no listening line; stderr: {}", stderr.lock().unwrap());
            };
            if line.starts_with("porter: listening on ") {
                break line;
            }
            preamble.push(line);
        };
        let addr = listening
            .strip_prefix("porter: listening on ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected listening line {listening:?}"));
        ServerProcess {
            child,
            addr,
            listening,
            preamble,
            stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// SIGINT: the graceful stop.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit, at most [`LIMIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGINT, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.interrupt();
        self.wait_exit()
    }

    /// SIGINT, waits for a successful exit, and returns all the server
    /// printed on stderr.
    pub fn stop_and_stderr(mut self) -> String {
        let reader = self.stderr_reader.take();
        let stderr = self.stderr.clone();
        assert!(self.stop().success());
        if let Some(reader) = reader {
            reader.join().unwrap();
        }
        stderr.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown at all, as a crash.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.wait_exit();
    }
}

/// The lines read from `pipe` by a thread, as they come.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Connects (reads time out after [`LIMIT`]) and reads `welcome`, without
/// saying `hello`.
pub fn welcomed(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    match stream.recv_message::<ServerMessage>().unwrap() {
        Some(ServerMessage::Welcome { .. }) => stream,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// A raw client speaking frames through porter_wire's sync helpers.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    /// Connects and reads `welcome`.
    pub fn open(addr: SocketAddr) -> Raw {
        Raw {
            stream: welcomed(addr),
        }
    }

    /// Connects, reads `welcome`, says `hello` with `token`.
    pub fn hello(addr: SocketAddr, token: Option<&str>) -> Raw {
        let mut raw = Raw::open(addr);
        raw.say_hello(token);
        raw
    }

    /// A raw client on `socket`, already connected (from a chosen source
    /// address, with chosen buffers): reads `welcome`, says `hello`.
    pub fn hello_on(socket: socket2::Socket) -> Raw {
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut raw = Raw { stream };
        match raw.recv() {
            Some(ServerMessage::Welcome { .. }) => {}
            other => panic!("expected welcome, got {other:?}"),
        }
        raw.say_hello(None);
        raw
    }

    fn say_hello(&mut self, token: Option<&str>) {
        self.send(&ClientMessage::Hello {
            client: Some("test".into()),
            token: token.map(Secret::new),
            since: None,
        });
    }

    /// Reads up to `ready`, passing over greetings and the like; returns
    /// the name the client is known by.
    #[track_caller]
    pub fn ready_user(&mut self) -> String {
        loop {
            match self.recv() {
                Some(ServerMessage::Ready { user }) => return user,
                Some(_) => {}
                None => panic!("closed before ready"),
            }
        }
    }

    pub fn send(&mut self, message: &ClientMessage) {
        self.stream.send_message(message).unwrap();
    }

    /// Writes `bytes` as they are: a part of a frame, or garbage.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    /// The next message; `None` when the server closed (or reset).
    pub fn recv(&mut self) -> Option<ServerMessage> {
        self.stream.recv_message().unwrap_or(None)
    }

    pub fn answer(&mut self, id: &str, text: &str) {
        self.send(&ClientMessage::Answer {
            id: id.into(),
            text: Secret::new(text),
        });
    }

    #[track_caller]
    pub fn expect_ask(&mut self, id: &str) {
        match self.recv() {
            Some(ServerMessage::Ask { id: asked, .. }) if asked == id => {}
            other => panic!("expected ask {id:?}, got {other:?}"),
        }
    }

    /// Expects `ask{id}` and answers it with `text`.
    #[track_caller]
    pub fn answer_ask(&mut self, id: &str, text: &str) {
        self.expect_ask(id);
        self.answer(id, text);
    }

    #[track_caller]
    pub fn expect_error(&mut self) -> ErrorCode {
        match self.recv() {
            Some(ServerMessage::Error { code, .. }) => code,
            other => panic!("expected error, got {other:?}"),
        }
    }
}

/// How a pseudo-terminal session's process ended: its exit code, or `None`
/// when a signal ended it.
pub fn exit_code(session: &PtySession) -> Option<i32> {
    match session.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

/// Issue 9: texts a peer may send to take over a reader's terminal, each
/// with how a one-line field shows it (`porter_wire::text::printable`). The
/// fourth is a line that tries to pass for another sender's: in a chat line
/// its second line is shown behind `  | ` instead.
pub const HOSTILE_TEXTS: [(&str, &str); 6] = [
    ("\x1b[2J\x1b[H", r"\u{1b}[2J\u{1b}[H"),
    ("\x1b]0;TITLE\x07", r"\u{1b}]0;TITLE\u{7}"),
    ("AAAA\rforged", r"AAAA\rforged"),
    ("line1\nbob: fake line", r"line1\nbob: fake line"),
    ("\x1b[41m", r"\u{1b}[41m"),
    ("a\u{202e}gnp.exe", r"a\u{202e}gnp.exe"),
];

/// Asserts that none of [`HOSTILE_TEXTS`] reached `shown` (what a terminal
/// received) in a form a terminal would obey: no screen clear, no title, no
/// bell, no colour, no carriage return inside a line, no bidirectional
/// override, and no line that starts as the fake one.
#[track_caller]
pub fn assert_nothing_hostile_obeyed(shown: &str) {
    for raw in [
        "\x1b[2J",
        "\x1b[H",
        "\x1b]0;",
        "\x07",
        "\x1b[41m",
        "\u{202e}",
        "AAAA\rforged",
    ] {
        assert!(
            !shown.contains(raw),
            "{raw:?} reached the terminal: {shown:?}"
        );
    }
    for (at, _) in shown.match_indices("bob: fake line") {
        let before = &shown[..at];
        assert!(
            before.ends_with("| ") || before.ends_with(r"line1\n"),
            "a line passes for bob's: {shown:?}"
        );
    }
}

/// `command` run the way a terminal runs it: rexpect turns the terminal's
/// echo off before it starts a program, which would hide a password however
/// badly it were read; this puts the terminal back to its usual settings
/// (`stty sane`) first. With `show_modes`, the terminal's settings are
/// printed (`stty -a`) once the program has exited, and the exit status is
/// the program's.
pub fn at_usual_terminal(command: &Command, show_modes: bool) -> Command {
    let script = if show_modes {
        r#"stty sane; "$0" "$@"; status=$?; echo; echo "modes after:"; stty -a; exit $status"#
    } else {
        r#"stty sane; exec "$0" "$@""#
    };
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(script)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        shell.current_dir(dir);
    }
    shell
}

/// Asserts that `stty -a` output (after "modes after:") shows a terminal
/// back to normal: echo on, line editing on, signal keys on.
#[track_caller]
pub fn assert_terminal_restored(output: &str) {
    let modes = output
        .rsplit_once("modes after:")
        .map(|(_, modes)| modes)
        .unwrap_or_else(|| panic!("no stty output in {output:?}"));
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["echo", "icanon", "isig"] {
        assert!(
            words.contains(&mode) && !words.contains(&format!("-{mode}").as_str()),
            "{mode} is not on after the program: {modes}"
        );
    }
}

/// A TCP relay on a loopback port to `target`, for the network's part in a
/// test: it keeps every byte it relays (both ways), and can cut every
/// connection (as a network failure would: no `bye`) or be taken down
/// (new connections closed at once) and brought back.
pub struct Relay {
    pub port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    pub fn to(target: SocketAddr) -> Relay {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            seen: Arc::default(),
            open: Arc::default(),
            down: Arc::default(),
        };
        let (seen, open, down) = (relay.seen.clone(), relay.open.clone(), relay.down.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut open = open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(upstream.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let seen = seen.clone();
                    thread::spawn(move || {
                        let mut buf = [0; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            seen.lock().unwrap().extend_from_slice(&buf[..n]);
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        relay
    }

    /// Every byte relayed so far, both ways.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }

    /// Cuts every connection through the relay.
    pub fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Cuts every connection, and closes new ones at once until
    /// [`Relay::bring_back`].
    pub fn take_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }

    pub fn bring_back(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
