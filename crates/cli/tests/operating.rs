//! Operating Porter (issue 14), against the real binary: the config file
//! and where each value comes from (flag > environment > file > default),
//! `--print-config`, `porter config check`, metrics scraped over HTTP
//! after a scripted session, SIGHUP after the log file was moved, the log
//! on stderr and rotated, systemd's notifications and unit file, and the
//! completions and manual page.
//!
//! No wait is a sleep: each one waits for a line, a frame, a datagram, or
//! polls a file or a scrape against a deadline.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use porter_wire::{ClientMessage, ErrorCode, ServerMessage};
use tempfile::TempDir;

use common::{CHEAP, LIMIT, PASSWORD, PORTER, Raw, ServerProcess, porter};

/// Runs `porter args` in `dir` with `env`, no stdin; its output.
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = porter(args);
    command.current_dir(dir).envs(env.iter().copied());
    assert_cmd::Command::from_std(command)
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap()
}

/// `porter serve --print-config ARGS` in `dir` with `env`: its stdout, once
/// it succeeded.
#[track_caller]
fn print_config(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["serve", "--print-config"];
    all.extend_from_slice(args);
    let output = run_in(dir, &all, env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The line of `shown` (a `--print-config`) for `key`, its spaces
/// squeezed: `key = value # source`.
#[track_caller]
fn line_of(shown: &str, key: &str) -> String {
    let line = shown
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} ")))
        .unwrap_or_else(|| panic!("no {key} in {shown}"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Polls `check` until it returns `Some`, at most [`LIMIT`].
#[track_caller]
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (a name `kill` knows) to `pid`.
fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// One row of the precedence table: the flags, the environment, then the
/// expected max-connections, log-level and source.
type Row<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    &'a str,
    &'a str,
    &'a str,
);

#[test]
fn each_source_overrides_the_next_flag_then_environment_then_file_then_default() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("porter.toml"),
        "max-connections = 300\nlog-level = \"debug\"\n",
    )
    .unwrap();
    let file = ["--config", "porter.toml"];
    // The precedence table, for two options of two kinds (a number, a
    // string): what each source gives when those above it are silent.
    let rows: [Row; 4] = [
        (&[], &[], "1024", "\"info\"", "# default"),
        (&file, &[], "300", "\"debug\"", "# file porter.toml:"),
        (
            &file,
            &[
                ("PORTER_MAX_CONNECTIONS", "200"),
                ("PORTER_LOG_LEVEL", "warn"),
            ],
            "200",
            "\"warn\"",
            "# env PORTER_",
        ),
        (
            &[
                "--config",
                "porter.toml",
                "--max-connections",
                "100",
                "--log-level",
                "error",
            ],
            &[
                ("PORTER_MAX_CONNECTIONS", "200"),
                ("PORTER_LOG_LEVEL", "warn"),
            ],
            "100",
            "\"error\"",
            "# flag",
        ),
    ];
    for (args, env, connections, level, source) in rows {
        let shown = print_config(dir.path(), args, env);
        let line = line_of(&shown, "max-connections");
        assert!(
            line.starts_with(&format!("max-connections = {connections} {source}")),
            "{args:?} {env:?}: {line}"
        );
        let line = line_of(&shown, "log-level");
        assert!(
            line.starts_with(&format!("log-level = {level} {source}")),
            "{args:?} {env:?}: {line}"
        );
    }
}

#[test]
fn the_file_and_the_environment_change_what_the_server_does() {
    // Behaviour, not only what is printed: the file asks for passwords and
    // the chat; the environment says no passwords (env beats file); a
    // flag says echo (flag beats the file).
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("porter.toml"),
        "auth = \"password\"\nservice = \"chat\"\n",
    )
    .unwrap();
    let mut command = porter(&["serve", "--host", "127.0.0.1", "--port", "0"]);
    command
        .args(["--config", "porter.toml", "--service", "echo"])
        .env("PORTER_AUTH", "none")
        .current_dir(dir.path());
    let server = ServerProcess::spawn(command);
    let mut raw = Raw::hello(server.addr, None);
    raw.ready_user();
    raw.send(&ClientMessage::Say {
        text: "ping".into(),
        to: None,
    });
    assert_eq!(raw.recv(), Some(ServerMessage::say("ping", "server")));
    assert!(server.stop().success());
}

#[test]
fn print_config_shows_every_option_with_its_source_and_no_password() {
    let dir = TempDir::new().unwrap();
    let shown = print_config(
        dir.path(),
        &["--port", "7000"],
        &[("PORTER_DB", "postgres://ada:hunter2@db.example/porter")],
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(
        line_of(&shown, "db"),
        "db = \"postgres://ada:***@db.example/porter\" # env PORTER_DB"
    );
    assert_eq!(line_of(&shown, "port"), "port = 7000 # flag");
    assert_eq!(line_of(&shown, "host"), "# host # not set");
    // Every option of `serve --help` is there (the switch that prints
    // excepted), and what is printed reads back as a config file.
    let help = run_in(dir.path(), &["serve", "--help"], &[]);
    let help = String::from_utf8(help.stdout).unwrap();
    let mut options = 0;
    for word in help.split_whitespace() {
        let Some(long) = word.strip_prefix("--") else {
            continue;
        };
        let long = long.trim_end_matches([',', '.']);
        if ["help", "print-config", "config"].contains(&long)
            || !long.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            || long.is_empty()
        {
            continue;
        }
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&format!("{long} = "))
                    || l.starts_with(&format!("# {long} "))),
            "--{long} is not printed: {shown}"
        );
        options += 1;
    }
    assert!(options >= 30, "{options}");
    let without_db: String = shown
        .lines()
        .filter(|l| !l.starts_with("db "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("printed.toml"), without_db).unwrap();
    let check = run_in(dir.path(), &["config", "check", "printed.toml"], &[]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_config_file_is_found_in_the_xdg_config_directory() {
    let dir = TempDir::new().unwrap();
    let config_home = dir.path().join("config");
    std::fs::create_dir_all(config_home.join("porter")).unwrap();
    std::fs::write(config_home.join("porter/porter.toml"), "history = 5\n").unwrap();
    let home = config_home.to_str().unwrap();
    let shown = print_config(dir.path(), &[], &[("XDG_CONFIG_HOME", home)]);
    let line = line_of(&shown, "history");
    assert!(line.starts_with("history = 5 # file "), "{line}");
    assert!(line.ends_with("porter/porter.toml:1"), "{line}");
    let path = run_in(
        dir.path(),
        &["config", "path"],
        &[("XDG_CONFIG_HOME", home)],
    );
    assert_eq!(
        String::from_utf8(path.stdout).unwrap().trim(),
        config_home.join("porter/porter.toml").display().to_string()
    );
}

#[test]
fn unknown_keys_and_bad_values_are_errors_naming_the_file_the_line_and_the_key() {
    let dir = TempDir::new().unwrap();
    let cases = [
        (
            "history = 5\nmax_connections = 3\n",
            "bad.toml:2: unknown key `max_connections` (did you mean `max-connections`?)",
        ),
        (
            "\n\nmax-connections = \"many\"\n",
            "bad.toml:3: key `max-connections`: invalid value 'many'",
        ),
        (
            "service = \"telnet\"\n",
            "bad.toml:1: key `service`: invalid value 'telnet'",
        ),
        (
            "max-startups = 0\n",
            "bad.toml:1: key `max-startups`: must be at least 1",
        ),
        ("history = [\n", "bad.toml:1:"),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        let check = run_in(dir.path(), &["config", "check", "bad.toml"], &[]);
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "{text}");
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        if !text.starts_with("max-startups") {
            // `serve` refuses it too, before listening.
            let serve = run_in(
                dir.path(),
                &["serve", "--config", "bad.toml", "--port", "0"],
                &[],
            );
            let stderr = String::from_utf8_lossy(&serve.stderr);
            assert!(!serve.status.success(), "{text}");
            assert!(stderr.contains(expected), "{text:?}: {stderr}");
            assert!(!String::from_utf8_lossy(&serve.stdout).contains("listening"));
        }
    }
    let good = "service = \"echo\"\nmax-connections = 10\nmax-startups = 4\n";
    std::fs::write(dir.path().join("good.toml"), good).unwrap();
    let check = run_in(dir.path(), &["config", "check", "good.toml"], &[]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("max-startups = 4"));
}

/// A port free on 127.0.0.1 a moment ago: the exporter binds its own
/// address and cannot say which port 0 gave it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs /metrics from `addr`; the body, or `None` while nothing answers.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(LIMIT)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The value of the sample `name` (with its labels, as the exposition
/// writes them) in a scrape.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn metrics_are_scraped_over_http_after_a_scripted_session() {
    let dir = TempDir::new().unwrap();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics_flag = metrics.to_string();
    let mut command = porter(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--service",
        "chat",
    ]);
    command
        .args(CHEAP)
        .args(["--metrics", &metrics_flag])
        .current_dir(dir.path())
        .env("PORTER_PASSWORD", PASSWORD);
    let server = ServerProcess::spawn(command);

    // A scripted session: register with `porter connect` and say two
    // lines from piped input, ...
    let session = assert_cmd::Command::from_std(common::connect_to(server.addr.port()))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("PORTER_USER", "ada")
        .env("PORTER_PASSWORD", PASSWORD)
        .write_stdin("hello\nworld\n")
        .timeout(LIMIT)
        .output()
        .unwrap();
    assert!(
        session.status.success(),
        "{}",
        String::from_utf8_lossy(&session.stderr)
    );
    // ... a wrong password, a frame that is not a message, and a clean bye.
    let mut raw = Raw::hello(server.addr, None);
    raw.answer_ask("user", "ada");
    raw.answer_ask("password", "not the password at all");
    assert_eq!(raw.expect_error(), ErrorCode::BadCredentials);
    raw.answer_ask("password", PASSWORD);
    raw.ready_user();
    raw.send_raw(&[0, 0, 0, 2, b'{', b'}']);
    // The room's history (the two lines said) comes first.
    let code = loop {
        match raw.recv() {
            Some(ServerMessage::Say { .. }) => {}
            Some(ServerMessage::Error { code, .. }) => break code,
            other => panic!("expected the history then an error, got {other:?}"),
        }
    };
    assert_eq!(code, ErrorCode::InvalidMessage);
    raw.send(&ClientMessage::Bye);
    // The rest of the history may come after the error (it travels through
    // the room's queue, the error straight to the socket); then the close.
    loop {
        match raw.recv() {
            Some(ServerMessage::Say { replay: true, .. }) => {}
            other => {
                assert_eq!(other, None);
                break;
            }
        }
    }

    let expected = [
        ("porter_connections_accepted_total", 2.0),
        ("porter_connections_closed_total{reason=\"clean_bye\"}", 2.0),
        ("porter_logins_total{outcome=\"registered\"}", 1.0),
        ("porter_logins_total{outcome=\"bad_password\"}", 1.0),
        ("porter_logins_total{outcome=\"ok\"}", 1.0),
        ("porter_lines_total{service=\"chat\"}", 2.0),
        (
            "porter_protocol_errors_total{code=\"invalid_message\"}",
            1.0,
        ),
        (
            "porter_protocol_errors_total{code=\"bad_credentials\"}",
            1.0,
        ),
        ("porter_connections", 0.0),
        ("porter_participants", 0.0),
        ("porter_handshakes", 0.0),
        ("porter_handshake_duration_seconds_count", 2.0),
    ];
    // The counts of a connection are reported as it ends, just after the
    // client saw its end: poll until they are all there.
    let body = eventually("the session's metrics", || {
        let body = scrape(metrics)?;
        expected
            .iter()
            .all(|(name, value)| sample(&body, name) == Some(*value))
            .then_some(body)
    });
    // Registration and two logins hashed or verified at least three times.
    assert!(
        sample(&body, "porter_argon2_duration_seconds_count").unwrap() >= 3.0,
        "{body}"
    );
    // Frames each way: welcome, asks, ready, ...; at least what was said.
    assert!(
        sample(&body, "porter_messages_received_total").unwrap() >= 10.0,
        "{body}"
    );
    assert!(
        sample(&body, "porter_messages_sent_total").unwrap() >= 10.0,
        "{body}"
    );
    assert!(
        sample(&body, "porter_bytes_received_total").unwrap() > 100.0,
        "{body}"
    );
    assert!(
        sample(&body, "porter_bytes_sent_total").unwrap() > 100.0,
        "{body}"
    );
    assert!(
        body.contains("# HELP porter_connections_accepted_total"),
        "{body}"
    );
    assert!(server.stop().success());
}

#[test]
fn without_metrics_nothing_listens_for_them() {
    let dir = TempDir::new().unwrap();
    let server = common::serve_in(dir.path(), "echo", &["--auth", "none"]);
    let stderr = server.stop_and_stderr();
    assert!(!stderr.contains("metrics"), "{stderr}");
}

/// Whether the file at `path` holds `text`.
fn holds(path: &Path, text: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|log| log.contains(text))
}

#[test]
fn sighup_after_the_log_file_was_moved_writes_on_in_a_new_file_and_applies_the_log_level() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("porter.toml");
    std::fs::write(&config, "log-level = \"info\"\n").unwrap();
    let server = common::serve_in(
        dir.path(),
        "echo",
        &["--auth", "none", "--config", "porter.toml"],
    );
    let log = dir.path().join("porter.log");
    let moved = dir.path().join("porter.log.1");
    assert!(holds(&log, "porter serve starting"));
    std::fs::rename(&log, &moved).unwrap();

    // What can change while serving, the log level, is applied; what
    // cannot, a limit, is said to wait for the next start.
    std::fs::write(&config, "log-level = \"debug\"\nhistory = 3\n").unwrap();
    kill("HUP", server.pid());
    eventually("the reopened log", || {
        holds(&log, "log reopened").then_some(())
    });
    eventually("the new level", || {
        holds(&log, "log level changed").then_some(())
    });
    eventually("the pending option", || {
        holds(&log, "take effect at the next start").then_some(())
    });
    let mut raw = Raw::hello(server.addr, None);
    raw.ready_user();
    raw.send(&ClientMessage::Bye);
    assert_eq!(raw.recv(), None);
    eventually("the client in the new file", || {
        holds(&log, "handshake complete").then_some(())
    });
    let old = std::fs::read_to_string(&moved).unwrap();
    assert!(!old.contains("handshake complete"), "{old}");
    // The SIGHUP line itself may land on either side of the reopen (the
    // log is written by a background thread); it is in one of them.
    assert!(old.contains("SIGHUP") || holds(&log, "SIGHUP"), "{old}");

    // A broken file at the next SIGHUP is refused; the server serves on.
    std::fs::write(&config, "log-level = \"debug\"\nnonsense = 1\n").unwrap();
    kill("HUP", server.pid());
    eventually("the refusal", || {
        holds(&log, "configuration not reloaded").then_some(())
    });
    let mut raw = Raw::hello(server.addr, None);
    raw.ready_user();
    assert!(server.stop().success());
}

#[test]
fn log_file_dash_writes_the_log_to_stderr() {
    let dir = TempDir::new().unwrap();
    let server = common::serve_in(dir.path(), "echo", &["--auth", "none", "--log-file", "-"]);
    let mut raw = Raw::hello(server.addr, None);
    raw.ready_user();
    let stderr = server.stop_and_stderr();
    assert!(stderr.contains("porter: logging to stderr"), "{stderr}");
    assert!(stderr.contains("porter serve starting"), "{stderr}");
    assert!(stderr.contains("handshake complete"), "{stderr}");
    assert!(!dir.path().join("porter.log").exists());
}

#[test]
fn log_rotate_daily_writes_a_file_named_by_the_date() {
    let dir = TempDir::new().unwrap();
    let server = common::serve_in(
        dir.path(),
        "echo",
        &["--auth", "none", "--log-rotate", "daily", "--log-keep", "3"],
    );
    let stderr = server.stop_and_stderr();
    assert!(stderr.contains("porter.log.*"), "{stderr}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("porter.log."))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // porter.log.YYYY-MM-DD
    let date = names[0].trim_start_matches("porter.log.");
    assert_eq!(date.len(), 10, "{names:?}");
    assert!(holds(&dir.path().join(&names[0]), "porter serve starting"));
}

#[test]
fn systemd_is_told_ready_after_bind_reloading_around_sighup_and_stopping() {
    let dir = TempDir::new().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    let mut command = porter(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--auth",
        "none",
    ]);
    command
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &socket_path);
    let mut server = ServerProcess::spawn(command);
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("no notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1\n");
    kill("HUP", server.pid());
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1\n");
    server.interrupt();
    assert_eq!(next(), "STOPPING=1\n");
    assert!(server.wait_exit().success());
}

/// Whether `program` runs here.
fn present(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/porter.service"
    ))
    .unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=porter",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=",
    ] {
        assert!(unit.contains(needed), "{needed} missing");
    }
    if !present("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // The unit as installed, with this build's binary where the README
    // installs it (verify checks that ExecStart's program exists).
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("porter.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/porter", PORTER)).unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// `porter args`: its stdout, once it succeeded.
#[track_caller]
fn generated(args: &[&str]) -> Vec<u8> {
    let output = run_in(Path::new("."), args, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.stdout.is_empty());
    output.stdout
}

/// `shell -n` on `script`: whether it parses.
fn parses(shell: &str, script: &[u8]) -> Output {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("completion");
    std::fs::write(&path, script).unwrap();
    Command::new(shell).arg("-n").arg(&path).output().unwrap()
}

#[test]
fn completions_are_generated_and_parse_in_their_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let script = generated(&["completions", shell]);
        let text = String::from_utf8_lossy(&script);
        assert!(
            text.contains("serve") && text.contains("max-connections"),
            "{shell}"
        );
        if !present(shell) {
            eprintln!("skipped: {shell} is not installed, its completion is not parsed");
            continue;
        }
        let checked = parses(shell, &script);
        assert!(
            checked.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

#[test]
fn the_manual_page_lists_the_subcommands_and_parses() {
    let page = generated(&["man"]);
    let text = String::from_utf8_lossy(&page);
    assert!(
        text.starts_with(".ie") || text.contains(".TH porter"),
        "{text}"
    );
    for subcommand in [
        "serve",
        "connect",
        "users",
        "sessions",
        "bench",
        "config",
        "completions",
        "man",
    ] {
        assert!(text.contains(subcommand), "{subcommand} missing");
    }
    let dir = TempDir::new().unwrap();
    let pages = run_in(dir.path(), &["man", "--dir", "pages"], &[]);
    assert!(pages.status.success());
    assert!(holds(
        &dir.path().join("pages/porter-serve.1"),
        "max\\-connections"
    ));
    if !present("groff") {
        eprintln!("skipped: groff is not installed, the page is not rendered");
        return;
    }
    let path = dir.path().join("porter.1");
    std::fs::write(&path, &page).unwrap();
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        rendered.status.success() && rendered.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
}
