//! `porter bench` end to end: the real binary against a real `porter serve`
//! (echo and chat, auth none), and in `--raw` mode against a verbatim frame
//! echo (the baseline's behaviour) run inside the test. Only counts and
//! error totals are asserted, never timings.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Output, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use porter_wire::{ReadFrameExt, WriteFrameExt};

use common::{ServerProcess, porter};

/// Upper bound for every wait in this file: longer than the shared one, as
/// a bench run does real work on a machine that may be busy.
const LIMIT: Duration = Duration::from_secs(30);

/// A running `porter serve` (killed when dropped) and the folder holding
/// its log.
struct Server {
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl Server {
    fn addr(&self) -> SocketAddr {
        self.process.addr
    }
}

/// Starts `porter serve --service SERVICE --auth none` on 127.0.0.1 port 0
/// and waits for its listening line.
fn start_server(service: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("porter.log");
    let mut command = porter(&["serve", "--service", service, "--auth", "none"]);
    command
        .args(["--host", "127.0.0.1", "--port", "0", "--log-file"])
        .arg(&log)
        .current_dir(dir.path());
    Server {
        process: ServerProcess::spawn(command),
        _dir: dir,
    }
}

/// Runs `porter bench` against `addr`, killing it if it outlives `LIMIT`.
fn bench(addr: SocketAddr, args: &[&str]) -> Output {
    let mut child = porter(&[
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        &addr.port().to_string(),
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("porter bench {args:?} did not finish within {LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The JSON report, checked to be one object on one line.
fn json_report(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "porter bench failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.trim();
    assert!(
        line.starts_with('{') && line.ends_with('}') && !line.contains('\n'),
        "not one JSON object: {stdout}"
    );
    line.to_owned()
}

const NO_ERRORS: &str = r#""errors":{"connection":0,"protocol":0,"lost":0,"samples":[]}"#;

#[test]
fn echo_run_reports_every_message_and_no_error() {
    let server = start_server("echo");
    let output = bench(
        server.addr(),
        &[
            "--messages",
            "200",
            "--conns",
            "2",
            "--pipeline",
            "4",
            "--json",
        ],
    );
    let report = json_report(&output);
    assert!(report.contains(r#""messages":200,"#), "{report}");
    assert!(report.contains(r#""mode":"porter""#), "{report}");
    assert!(
        report.contains(r#""count":200,"#),
        "latencies recorded: {report}"
    );
    assert!(report.contains(NO_ERRORS), "{report}");
}

#[test]
fn chat_run_delivers_every_line_to_every_other_connection() {
    let server = start_server("chat");
    let output = bench(
        server.addr(),
        &[
            "--service",
            "chat",
            "--messages",
            "90",
            "--conns",
            "3",
            "--pipeline",
            "2",
            "--json",
        ],
    );
    let report = json_report(&output);
    assert!(report.contains(r#""messages":90,"#), "{report}");
    // Each line reaches the two other participants.
    assert!(report.contains(r#""deliveries":180,"#), "{report}");
    assert!(report.contains(NO_ERRORS), "{report}");
}

/// The baseline's behaviour, for `--raw`: every frame comes back verbatim.
fn start_verbatim_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(LIMIT));
                while let Ok(Some(frame)) = stream.recv_frame() {
                    if stream.send_frame(&frame).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn raw_run_talks_to_a_verbatim_echo_without_a_handshake() {
    let addr = start_verbatim_echo();
    let output = bench(
        addr,
        &[
            "--raw",
            "--messages",
            "100",
            "--conns",
            "2",
            "--pipeline",
            "3",
            "--json",
        ],
    );
    let report = json_report(&output);
    assert!(report.contains(r#""messages":100,"#), "{report}");
    assert!(report.contains(r#""mode":"raw""#), "{report}");
    assert!(report.contains(NO_ERRORS), "{report}");
}

/// The chat baseline's behaviour (`baseline_chat --participants N`), for
/// `--raw --service chat`: once `participants` are connected, every frame
/// goes verbatim to every other connection.
fn start_verbatim_chat(participants: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::<(usize, TcpStream)>::new()));
    let everyone = Arc::new(Barrier::new(participants));
    thread::spawn(move || {
        for (me, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { break };
            let Ok(writer) = stream.try_clone() else {
                continue;
            };
            peers.lock().unwrap().push((me, writer));
            let peers = peers.clone();
            let everyone = everyone.clone();
            thread::spawn(move || {
                everyone.wait();
                let _ = stream.set_read_timeout(Some(LIMIT));
                while let Ok(Some(frame)) = stream.recv_frame() {
                    for (other, writer) in peers.lock().unwrap().iter_mut() {
                        if *other != me {
                            let _ = writer.send_frame(&frame);
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Issue 15: the chat baseline is driven like the echo one, with the send
/// time travelling in the relayed frame.
#[test]
fn raw_chat_counts_each_frame_relayed_verbatim_to_the_others() {
    let addr = start_verbatim_chat(3);
    let output = bench(
        addr,
        &[
            "--raw",
            "--service",
            "chat",
            "--messages",
            "90",
            "--conns",
            "3",
            "--pipeline",
            "2",
            "--json",
        ],
    );
    let report = json_report(&output);
    assert!(report.contains(r#""mode":"raw""#), "{report}");
    assert!(report.contains(r#""messages":90,"#), "{report}");
    assert!(report.contains(r#""deliveries":180,"#), "{report}");
    assert!(
        report.contains(r#""count":180,"#),
        "latencies recorded: {report}"
    );
    assert!(report.contains(NO_ERRORS), "{report}");
}

/// Issue 15: with the server's pid, the report gives the CPU of both sides
/// and says which one was the limit; which one it is depends on the
/// machine, so only its presence is checked.
#[test]
fn with_the_server_pid_the_report_gives_both_cpus_and_a_verdict() {
    let server = start_server("echo");
    let pid = server.process.child.id().to_string();
    let args = ["--messages", "2000", "--conns", "2", "--pipeline", "4"];
    let output = bench(
        server.addr(),
        &[&args[..], &["--server-pid", &pid, "--json"]].concat(),
    );
    let report = json_report(&output);
    assert!(report.contains(r#""cpu":{"bench_percent":"#), "{report}");
    assert!(report.contains(r#""server_percent":"#), "{report}");
    assert!(
        [
            r#""bound":"bench""#,
            r#""bound":"server""#,
            r#""bound":"neither""#
        ]
        .iter()
        .any(|bound| report.contains(bound)),
        "{report}"
    );
    let output = bench(
        server.addr(),
        &[&args[..], &["--server-pid", &pid]].concat(),
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    let cpu = summary
        .lines()
        .find(|line| line.starts_with("cpu "))
        .unwrap_or_else(|| panic!("no cpu line: {summary}"));
    assert!(
        cpu.contains("server") && cpu.contains("of one core: "),
        "{cpu}"
    );
}

#[test]
fn a_refused_connection_is_an_error_not_a_silent_empty_run() {
    // A port nothing listens on: bound, then released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = bench(addr, &["--messages", "10", "--json"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no connection could be set up"), "{stderr}");
}

#[test]
fn invalid_options_are_refused_before_connecting() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let output = bench(addr, &["--conns", "4", "--messages", "3"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--messages"), "{stderr}");
}

#[test]
fn idle_holds_connections_and_says_when_they_are_ready() {
    let server = start_server("echo");
    let mut child = porter(&["bench", "--host", "127.0.0.1"])
        .args(["--port", &server.addr().port().to_string()])
        .args(["--idle", "20", "--hold", "0.2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("porter bench --idle did not finish");
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert_eq!(reader.join().unwrap().trim(), "idle: 20 connections ready");
    // The server is still fine after they left.
    let mut probe = TcpStream::connect(server.addr()).unwrap();
    probe.set_read_timeout(Some(LIMIT)).unwrap();
    assert!(probe.recv_frame().unwrap().is_some(), "no welcome");
}

/// Issue 9: `--service chat` against an echo server counted each line's
/// echo as a delivery and reported a chat run. It fails, and says why.
#[test]
fn chat_against_an_echo_server_fails_and_says_why() {
    let server = start_server("echo");
    let output = bench(
        server.addr(),
        &[
            "--service",
            "chat",
            "--messages",
            "90",
            "--conns",
            "2",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("echo server, not a chat room"), "{stderr}");
    assert!(stderr.contains("--service echo"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "no report for a run that is not one"
    );
}

/// A chat server replays its last lines to newcomers (protocol 1.1): a
/// second run on the same server must not count the first run's lines,
/// nor take them for its own.
#[test]
fn a_second_chat_run_on_the_same_server_counts_only_its_own_lines() {
    let server = start_server("chat");
    let args = [
        "--service",
        "chat",
        "--messages",
        "30",
        "--conns",
        "3",
        "--json",
    ];
    for _ in 0..2 {
        let report = json_report(&bench(server.addr(), &args));
        assert!(report.contains(r#""deliveries":60,"#), "{report}");
        assert!(report.contains(NO_ERRORS), "{report}");
    }
}
