//! `--auth ip` and `--auth password` end to end: the real `porter serve`
//! with its SQLite database in a temporary folder, talked to with
//! `porter connect` (answers from `--user` and `PORTER_PASSWORD`, the cookie
//! jar under a temporary `XDG_STATE_HOME`) and with raw porter_wire clients
//! where the exact dialogue matters. The admin commands run on the same
//! database while the server serves.
//!
//! Argon2 runs with a tiny cost here (64 KiB, one pass) so that the suite
//! stays fast; one test checks the default cost of `porter users add`.
//! Every wait is bounded.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread;

use porter_wire::{ErrorCode, ServerMessage};

use common::{
    LIMIT, PORTER, Raw, ServerProcess as Server, connect_to, porter, serve_failing_at_start,
};

/// Argon2 flags that make a hash take microseconds.
const CHEAP: [&str; 4] = ["--argon2-memory-kib", "64", "--argon2-iterations", "1"];

/// A password that passes the policy.
const PASSWORD: &str = "correct horse battery";

impl Server {
    /// Starts `porter serve --service echo` on 127.0.0.1, port 0, working in
    /// `dir` (so `porter.log` and `porter.db` are there), with cheap Argon2
    /// and `args`. Returns once the listening line is out.
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
}

/// What a finished command printed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    #[track_caller]
    fn ok(self) -> Ran {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn failed(self) -> Ran {
        assert_eq!(
            self.code,
            Some(1),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// `porter connect` to `server` with the cookie jar under `state`, extra
/// `args` and `env`, and `input` piped in.
fn connect(server: &Server, state: &Path, args: &[&str], env: &[(&str, &str)], input: &str) -> Ran {
    let mut command = assert_cmd::Command::from_std(connect_to(server.addr.port()));
    command
        .args(args)
        .env("XDG_STATE_HOME", state)
        .envs(env.iter().copied())
        .write_stdin(input)
        .timeout(LIMIT);
    command.output().unwrap().into()
}

/// An admin command (`users`, `sessions`, `names`) on the database in
/// `dir`, with stdin not a terminal.
fn admin(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    assert_cmd::Command::from_std(porter(args))
        .arg("--db")
        .arg(dir.join("porter.db"))
        .envs(env.iter().copied())
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap()
        .into()
}

/// An empty database in `dir`, as `porter serve` leaves it: the admin
/// commands refuse to create one.
fn fresh_database(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = porter_store::open(dir.join("porter.db")).await.unwrap();
        store.close().await;
    });
}

/// The cookie jar file under `state`.
fn jar_file(state: &Path) -> PathBuf {
    state.join("porter").join("tokens.json")
}

/// The token the jar under `state` holds for `server`.
fn jar_token(state: &Path, server: &Server) -> Option<String> {
    let text = std::fs::read_to_string(jar_file(state)).ok()?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    map.get(&format!("127.0.0.1:{}", server.port()))
        .map(|v| v.as_str().unwrap().to_owned())
}

impl Raw {
    /// Reads up to `ready`, returning the session token if one came.
    #[track_caller]
    fn until_ready(&mut self) -> Option<String> {
        let mut token = None;
        loop {
            match self.recv() {
                Some(ServerMessage::Session { token: t, .. }) => {
                    token = Some(t.expose().to_owned())
                }
                Some(ServerMessage::Say { .. }) => {}
                Some(ServerMessage::Ready { .. }) => return token,
                other => panic!("expected ready, got {other:?}"),
            }
        }
    }

    /// Answers every `ask` from `answers` (by id, each in turn), recording
    /// each server message as a line, until the server closes.
    fn transcript(&mut self, answers: &[(&str, &str)]) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(message) = self.recv() {
            lines.push(match &message {
                ServerMessage::Ask { id, text, secret } => format!("ask {id} {text:?} {secret}"),
                ServerMessage::Error { code, text } => format!("error {code} {text:?}"),
                ServerMessage::Bye { text } => format!("bye {text:?}"),
                other => format!("{other:?}"),
            });
            if let ServerMessage::Ask { id, .. } = message {
                let answer = answers
                    .iter()
                    .find(|(asked, _)| *asked == id)
                    .map_or("", |(_, a)| a);
                self.answer(&id, answer);
            }
        }
        lines
    }
}

/// Registers `user` with `password` through the raw dialogue; returns the
/// session token.
fn register(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut raw = Raw::hello(addr, None);
    raw.answer_ask("user", user);
    raw.answer_ask("new_password", password);
    raw.answer_ask("repeat_password", password);
    raw.until_ready().expect("no session token")
}

/// Logs `user` in with `password` through the raw dialogue; returns the
/// session token.
fn log_in(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut raw = Raw::hello(addr, None);
    raw.answer_ask("user", user);
    raw.answer_ask("password", password);
    raw.until_ready().expect("no session token")
}

#[test]
fn ip_an_unknown_address_is_asked_its_name_and_known_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--auth", "ip"]);
    let first = connect(&server, state.path(), &["--user", " Ada "], &[], "hi\n").ok();
    assert_eq!(first.stdout, "server: hi\n");
    assert!(
        first.stderr.contains("porter: Hello, Ada!"),
        "{}",
        first.stderr
    );
    assert!(server.stop().success());

    // Same database, new process: the name is known, nothing is asked
    // (without --user an ask would fail).
    let server = Server::start(dir.path(), &["--auth", "ip"]);
    let again = connect(&server, state.path(), &[], &[], "back\n").ok();
    assert_eq!(again.stdout, "server: back\n");
    assert!(
        again.stderr.contains("porter: Hello, Ada!"),
        "{}",
        again.stderr
    );
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap();
    assert!(
        log.contains(&format!("db={}", dir.path().join("porter.db").display())),
        "{log}"
    );
}

#[test]
fn ip_two_source_addresses_are_two_names_and_names_can_be_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--auth", "ip"]);
    for (addr, name) in [("127.0.0.2", "two"), ("127.0.0.3", "three")] {
        connect(
            &server,
            state.path(),
            &["--bind-addr", addr, "--user", name],
            &[],
            "",
        )
        .ok();
    }
    for (addr, name) in [("127.0.0.2", "two"), ("127.0.0.3", "three")] {
        let known = connect(&server, state.path(), &["--bind-addr", addr], &[], "x\n").ok();
        assert!(
            known.stderr.contains(&format!("porter: Hello, {name}!")),
            "{addr}: {}",
            known.stderr
        );
    }

    let list = admin(dir.path(), &["names", "list"], &[]).ok();
    let two = list.stdout.lines().find(|l| l.starts_with("127.0.0.2 "));
    let three = list.stdout.lines().find(|l| l.starts_with("127.0.0.3 "));
    assert!(two.is_some_and(|l| l.contains(" two ")), "{}", list.stdout);
    assert!(
        three.is_some_and(|l| l.contains(" three ")),
        "{}",
        list.stdout
    );

    admin(dir.path(), &["names", "forget", "127.0.0.2"], &[]).ok();
    // Asked again, and nobody to answer.
    let asked = connect(
        &server,
        state.path(),
        &["--bind-addr", "127.0.0.2"],
        &[],
        "",
    )
    .failed();
    assert!(asked.stderr.contains("\"name\""), "{}", asked.stderr);
    assert!(asked.stderr.contains("--user"), "{}", asked.stderr);
    let unknown = admin(dir.path(), &["names", "forget", "127.0.0.2"], &[]).failed();
    assert!(
        unknown
            .stderr
            .contains("no name is remembered for 127.0.0.2"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn ip_a_name_refused_by_policy_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--auth", "ip"]);
    let mut raw = Raw::hello(server.addr, None);
    raw.answer_ask("name", "   ");
    assert_eq!(raw.expect_error(), ErrorCode::InvalidAnswer);
    raw.answer_ask("name", &"x".repeat(33));
    assert_eq!(raw.expect_error(), ErrorCode::InvalidAnswer);
    raw.answer_ask("name", "Bob");
    match raw.recv() {
        Some(ServerMessage::Say { text, .. }) => assert_eq!(text, "Hello, Bob!"),
        other => panic!("expected the greeting, got {other:?}"),
    }
    raw.until_ready();

    // porter connect does not send a refused answer twice: it stops with
    // the server's reason and a clear error.
    let state = tempfile::tempdir().unwrap();
    let refused = connect(
        &server,
        state.path(),
        &["--bind-addr", "127.0.0.2", "--user", "a\u{7}b"],
        &[],
        "",
    )
    .failed();
    assert!(
        refused.stderr.contains("invalid_answer"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("refused the answer"),
        "{}",
        refused.stderr
    );
}

#[test]
fn password_register_log_in_resume_logout_then_the_token_is_refused_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let with_password = [("PORTER_PASSWORD", PASSWORD)];

    // Register (the default auth is password): the token lands in the jar.
    let registered = connect(
        &server,
        state.path(),
        &["--user", "ada"],
        &with_password,
        "one\n",
    )
    .ok();
    assert_eq!(registered.stdout, "server: one\n");
    assert!(
        registered.stderr.contains("porter: Welcome, ada!"),
        "{}",
        registered.stderr
    );
    let token = jar_token(state.path(), &server).expect("no token in the jar");
    assert_eq!(token.len(), 43);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&jar_file(state.path())), 0o600);
        assert_eq!(mode(jar_file(state.path()).parent().unwrap()), 0o700);
    }

    // Log in with the password from a fresh jar.
    let other_state = tempfile::tempdir().unwrap();
    let logged_in = connect(
        &server,
        other_state.path(),
        &["--user", "ada"],
        &with_password,
        "two\n",
    )
    .ok();
    assert_eq!(logged_in.stdout, "server: two\n");
    assert!(
        logged_in.stderr.contains("Welcome back, ada!"),
        "{}",
        logged_in.stderr
    );
    // Keep a copy of the first jar to present the token after the logout.
    let stale_state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(stale_state.path().join("porter")).unwrap();
    std::fs::copy(jar_file(state.path()), jar_file(stale_state.path())).unwrap();

    // Resume: no user, no password given, so nothing may be asked.
    let resumed = connect(&server, state.path(), &[], &[], "three\n").ok();
    assert_eq!(resumed.stdout, "server: three\n");
    assert!(
        resumed.stderr.contains("Welcome back, ada!"),
        "{}",
        resumed.stderr
    );

    // Logout revokes the session and empties the jar.
    let logout = connect(&server, state.path(), &["--logout"], &[], "").ok();
    assert!(
        logout.stderr.contains("porter: logged out of 127.0.0.1:"),
        "{}",
        logout.stderr
    );
    assert_eq!(jar_token(state.path(), &server), None);
    let again = connect(&server, state.path(), &["--logout"], &[], "").ok();
    assert!(
        again.stderr.contains("nothing to log out"),
        "{}",
        again.stderr
    );

    // The revoked token is refused, on the wire...
    let mut raw = Raw::hello(server.addr, Some(&token));
    assert_eq!(raw.expect_error(), ErrorCode::SessionInvalid);
    raw.expect_ask("user");
    drop(raw);
    // ...and by porter connect, which falls back to the password and keeps
    // the new token instead.
    let stale = connect(
        &server,
        stale_state.path(),
        &["--user", "ada"],
        &with_password,
        "four\n",
    )
    .ok();
    assert!(stale.stderr.contains("session_invalid"), "{}", stale.stderr);
    assert_eq!(stale.stdout, "server: four\n");
    let fresh = jar_token(stale_state.path(), &server).expect("no new token");
    assert_ne!(fresh, token);

    // Neither the password nor any token is in the database or the log.
    assert!(server.stop().success());
    let mut stored = Vec::new();
    for file in ["porter.db", "porter.db-wal", "porter.log"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            stored.extend(bytes);
        }
    }
    assert!(stored.len() > 1000, "nothing stored?");
    for secret in [PASSWORD, token.as_str(), fresh.as_str()] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret is stored in clear"
        );
    }
}

#[test]
fn password_three_wrong_passwords_end_with_bye() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    register(server.addr, "ada", PASSWORD);

    let mut raw = Raw::hello(server.addr, None);
    raw.answer_ask("user", "ada");
    for _ in 0..3 {
        raw.answer_ask("password", "wrong password");
        assert_eq!(raw.expect_error(), ErrorCode::BadCredentials);
    }
    let rest: Vec<ServerMessage> = std::iter::from_fn(|| raw.recv()).collect();
    assert!(
        matches!(rest.as_slice(), [ServerMessage::Bye { .. }]),
        "{rest:?}"
    );

    // porter connect tries the given password once and exits non-zero.
    let state = tempfile::tempdir().unwrap();
    let failed = connect(
        &server,
        state.path(),
        &["--user", "ada"],
        &[("PORTER_PASSWORD", "wrong password")],
        "",
    )
    .failed();
    assert!(
        failed.stderr.contains("bad_credentials"),
        "{}",
        failed.stderr
    );
    assert!(
        !failed.stderr.contains("wrong password"),
        "{}",
        failed.stderr
    );
}

#[test]
fn password_repeated_failures_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    register(server.addr, "ada", PASSWORD);
    // The per-user allowance is 5 failures: 3 on a first connection...
    let mut first = Raw::hello(server.addr, None);
    let lines = first.transcript(&[("user", "ada"), ("password", "wrong password")]);
    assert!(
        lines.last().is_some_and(|l| l.starts_with("bye")),
        "{lines:?}"
    );
    // ...and the 5th gets rate_limited, then the connection closes.
    let mut second = Raw::hello(server.addr, None);
    let lines = second.transcript(&[("user", "ada"), ("password", "wrong password")]);
    let limited = format!("error {}", ErrorCode::RateLimited);
    assert!(
        lines.last().is_some_and(|l| l.starts_with(&limited)),
        "{lines:?}"
    );
    // Even the right password is refused for now.
    let mut third = Raw::hello(server.addr, None);
    let lines = third.transcript(&[("user", "ada"), ("password", PASSWORD)]);
    assert!(lines.iter().any(|l| l.starts_with(&limited)), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("Ready")), "{lines:?}");
}

#[test]
fn password_closed_registration_answers_an_unknown_user_like_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    fresh_database(dir.path());
    admin(
        dir.path(),
        &[
            "users", "add", "ada", CHEAP[0], CHEAP[1], CHEAP[2], CHEAP[3],
        ],
        &[("PORTER_PASSWORD", PASSWORD)],
    )
    .ok();
    let server = Server::start(dir.path(), &["--registration", "closed"]);
    let mut known = Raw::hello(server.addr, None);
    let wrong = known.transcript(&[("user", "ada"), ("password", "not the password")]);
    let mut unknown = Raw::hello(server.addr, None);
    let nobody = unknown.transcript(&[("user", "nobody"), ("password", "not the password")]);
    assert_eq!(wrong, nobody);
    assert!(
        wrong.iter().any(|l| l.starts_with("ask password")),
        "{wrong:?}"
    );
    assert!(
        wrong.last().is_some_and(|l| l.starts_with("bye")),
        "{wrong:?}"
    );
    // And the existing user still logs in.
    log_in(server.addr, "ada", PASSWORD);
}

#[test]
fn password_an_expired_token_is_refused_and_dropped_from_the_jar() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // A lifetime of zero: every token has expired by the time it is used.
    let server = Server::start(dir.path(), &["--session-ttl", "0s"]);
    connect(
        &server,
        state.path(),
        &["--user", "ada"],
        &[("PORTER_PASSWORD", PASSWORD)],
        "",
    )
    .ok();
    assert!(jar_token(state.path(), &server).is_some());
    let expired = connect(&server, state.path(), &[], &[], "").failed();
    assert!(
        expired.stderr.contains("session_invalid"),
        "{}",
        expired.stderr
    );
    assert_eq!(jar_token(state.path(), &server), None);
}

#[test]
fn durability_a_hundred_registrations_at_once_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // A hundred accounts from one address: the per-address limit on
    // registrations (tests/hostile.rs) is not what this test is about.
    let server = Server::start(dir.path(), &["--max-registrations-per-hour", "0"]);
    let addr = server.addr;
    let workers: Vec<_> = (0..100)
        .map(|i| thread::spawn(move || register(addr, &format!("user{i}"), PASSWORD)))
        .collect();
    for worker in workers {
        worker.join().expect("a registration failed");
    }
    // Every `ready` is in: no shutdown, no checkpoint.
    server.crash();

    let server = Server::start(dir.path(), &[]);
    for i in 0..100 {
        log_in(server.addr, &format!("user{i}"), PASSWORD);
    }
    let list = admin(dir.path(), &["users", "list"], &[]).ok();
    assert_eq!(list.stdout.lines().count(), 101, "{}", list.stdout);
}

#[test]
fn admin_commands_manage_users_and_sessions_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--registration", "closed"]);
    let add = |name: &str| {
        admin(
            dir.path(),
            &["users", "add", name, CHEAP[0], CHEAP[1], CHEAP[2], CHEAP[3]],
            &[("PORTER_PASSWORD", PASSWORD)],
        )
    };
    add("bob").ok();
    let exists = add("bob").failed();
    assert!(
        exists.stderr.contains("already exists"),
        "{}",
        exists.stderr
    );
    let list = admin(dir.path(), &["users", "list"], &[]).ok();
    assert!(
        list.stdout.lines().any(|l| l.starts_with("bob ")),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains("argon2"), "{}", list.stdout);

    // Bob logs in with the password set by the admin.
    connect(
        &server,
        state.path(),
        &["--user", "bob"],
        &[("PORTER_PASSWORD", PASSWORD)],
        "",
    )
    .ok();
    let token = jar_token(state.path(), &server).unwrap();
    let sessions = admin(dir.path(), &["sessions", "list", "bob"], &[]).ok();
    let row = sessions.stdout.lines().nth(1).expect("no session listed");
    assert!(row.contains(" bob ") && row.ends_with("active"), "{row}");
    assert!(!sessions.stdout.contains(&token), "{}", sessions.stdout);

    // A new password revokes the sessions.
    let passwd = admin(
        dir.path(),
        &[
            "users", "passwd", "bob", CHEAP[0], CHEAP[1], CHEAP[2], CHEAP[3],
        ],
        &[("PORTER_PASSWORD", "a brand new password")],
    )
    .ok();
    assert!(
        passwd.stdout.contains("1 session(s) revoked"),
        "{}",
        passwd.stdout
    );
    let refused = connect(&server, state.path(), &[], &[], "").failed();
    assert!(
        refused.stderr.contains("session_invalid"),
        "{}",
        refused.stderr
    );
    let sessions = admin(dir.path(), &["sessions", "list"], &[]).ok();
    assert!(
        sessions.stdout.lines().nth(1).unwrap().ends_with("revoked"),
        "{}",
        sessions.stdout
    );

    // Revoking by user and all at once.
    let new_password = [("PORTER_PASSWORD", "a brand new password")];
    connect(&server, state.path(), &["--user", "bob"], &new_password, "").ok();
    let revoked = admin(dir.path(), &["sessions", "revoke", "bob"], &[]).ok();
    assert_eq!(revoked.stdout, "1 session(s) revoked\n");
    connect(&server, state.path(), &["--user", "bob"], &new_password, "").ok();
    let revoked = admin(dir.path(), &["sessions", "revoke", "--all"], &[]).ok();
    assert_eq!(revoked.stdout, "1 session(s) revoked\n");
    let missing = admin(dir.path(), &["sessions", "revoke"], &[]);
    assert_eq!(missing.code, Some(2), "clap requires USER, --all or --id");

    // Removing the user kills their sessions.
    connect(&server, state.path(), &["--user", "bob"], &new_password, "").ok();
    admin(dir.path(), &["users", "remove", "bob"], &[]).ok();
    let gone = connect(&server, state.path(), &[], &[], "").failed();
    assert!(gone.stderr.contains("session_invalid"), "{}", gone.stderr);
    let again = admin(dir.path(), &["users", "remove", "bob"], &[]).failed();
    assert!(
        again.stderr.contains("no such user: \"bob\""),
        "{}",
        again.stderr
    );
    let passwd = admin(dir.path(), &["users", "passwd", "bob"], &[]).failed();
    assert!(passwd.stderr.contains("no such user"), "{}", passwd.stderr);
}

#[test]
fn sessions_purge_deletes_expired_and_revoked_sessions_and_keeps_live_ones() {
    use porter_store::{SqliteStore, Store as _};

    let dir = tempfile::tempdir().unwrap();
    // Sessions with chosen times go in through the store: the server would
    // only make live ones.
    let far = 4_000_000_000; // 2096
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&dir.path().join("porter.db"))
            .await
            .unwrap();
        store.create_user("ada", "$h", 0).await.unwrap();
        store.create_session(&[1; 32], "ada", 0, far).await.unwrap();
        store.create_session(&[2; 32], "ada", 0, 1).await.unwrap();
        store.create_session(&[3; 32], "ada", 0, far).await.unwrap();
        assert!(store.revoke_session(&[3; 32], 0).await.unwrap());
        store.close().await;
    });
    let before = admin(dir.path(), &["sessions", "list"], &[]).ok();
    assert_eq!(before.stdout.lines().count(), 4, "{}", before.stdout);

    let purged = admin(dir.path(), &["sessions", "purge"], &[]).ok();
    assert_eq!(purged.stdout, "2 session(s) purged\n");
    let after = admin(dir.path(), &["sessions", "list"], &[]).ok();
    let rows: Vec<&str> = after.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", after.stdout);
    assert!(
        rows[0].starts_with("0101010101010101 ") && rows[0].ends_with("active"),
        "{}",
        after.stdout
    );
    let again = admin(dir.path(), &["sessions", "purge"], &[]).ok();
    assert_eq!(again.stdout, "0 session(s) purged\n");
}

#[test]
fn users_add_without_a_terminal_or_password_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    fresh_database(dir.path());
    let no_password = admin(dir.path(), &["users", "add", "ada"], &[]).failed();
    assert!(
        no_password.stderr.contains("set PORTER_PASSWORD"),
        "{}",
        no_password.stderr
    );
    let short = admin(
        dir.path(),
        &["users", "add", "ada"],
        &[("PORTER_PASSWORD", "short")],
    )
    .failed();
    assert!(
        short.stderr.contains("at least 8 characters"),
        "{}",
        short.stderr
    );
    let bad_name = admin(
        dir.path(),
        &["users", "add", "ada lovelace"],
        &[("PORTER_PASSWORD", PASSWORD)],
    )
    .failed();
    assert!(bad_name.stderr.contains("spaces"), "{}", bad_name.stderr);
}

#[test]
fn users_add_hashes_with_the_default_cost() {
    let dir = tempfile::tempdir().unwrap();
    fresh_database(dir.path());
    admin(
        dir.path(),
        &["users", "add", "ada"],
        &[("PORTER_PASSWORD", PASSWORD)],
    )
    .ok();
    let mut stored = std::fs::read(dir.path().join("porter.db")).unwrap();
    stored.extend(std::fs::read(dir.path().join("porter.db-wal")).unwrap_or_default());
    let phc = b"$argon2id$v=19$m=19456,t=2,p=1$";
    assert!(
        stored.windows(phc.len()).any(|w| w == phc),
        "no default-cost PHC string"
    );
}

#[test]
fn a_database_that_cannot_be_opened_stops_serve_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve_failing_at_start(
        dir.path(),
        &["--auth", "ip", "--db", "no/such/folder/porter.db"],
    );
    let ran = Ran::from(output).failed();
    assert!(
        ran.stderr.contains("porter: cannot open the database "),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("no/such/folder/porter.db"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "nothing may listen: {}", ran.stdout);
}

#[test]
fn serve_prints_nothing_new_on_the_console_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    register(server.addr, "ada", PASSWORD);
    let stderr = server.stop_and_stderr();
    assert_eq!(
        stderr,
        format!(
            "porter: logging to {}\n",
            dir.path().join("porter.log").display()
        )
    );
}

#[test]
fn the_password_in_the_environment_is_never_shown_in_help() {
    let output = assert_cmd::Command::new(PORTER)
        .args(["connect", "--help"])
        .env("PORTER_PASSWORD", "sekrit-value")
        .timeout(LIMIT)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("PORTER_PASSWORD"), "{help}");
    assert!(!help.contains("sekrit-value"), "{help}");
}
