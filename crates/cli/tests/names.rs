//! Issue 9, "a chat room people can trust", end to end against the real
//! binary: names that cannot impersonate (`porter users add`, registration
//! over the protocol, `--auth ip` from two source addresses), stored names
//! shown distinguishably, log fields that cannot be forged, a database that
//! is private whatever the umask, admin commands that refuse a database that
//! does not exist, and `users add` stating the password policy at a terminal.
//! Every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use porter_wire::{ClientMessage, ErrorCode, Secret, ServerMessage, WriteFrameExt};
use rexpect::session::spawn_command;

use common::{LIMIT, PORTER, Raw, ServerProcess as Server, TIMEOUT_MS, connect_to, exit_code};

/// Argon2 flags that make a hash take microseconds.
const CHEAP: [&str; 4] = ["--argon2-memory-kib", "64", "--argon2-iterations", "1"];

/// A password that passes the policy.
const PASSWORD: &str = "correct horse battery";

/// The variables `porter` reads, removed for commands not built by
/// `common::porter`.
const PORTER_ENV: [&str; 6] = [
    "PORTER_HOST",
    "PORTER_PORT",
    "PORTER_AUTH",
    "PORTER_DB",
    "PORTER_USER",
    "PORTER_PASSWORD",
];

/// `porter serve --service echo` on 127.0.0.1, port 0, cheap Argon2, in
/// `dir`, with `args`.
fn serve_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = common::porter(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--service",
        "echo",
    ]);
    command.args(CHEAP).args(args).current_dir(dir);
    command
}

fn start(dir: &Path, args: &[&str]) -> Server {
    Server::spawn(serve_command(dir, args))
}

/// `porter args…` run by a shell that set the umask to 000 first: every
/// file the process creates would be world-writable unless it sees to it.
fn porter_with_open_umask(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 000 && exec \"$@\"", "sh", PORTER])
        .args(args)
        .current_dir(dir);
    for var in PORTER_ENV {
        command.env_remove(var);
    }
    command
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
        assert_eq!(self.code, Some(0), "{}\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    fn failed(self) -> Ran {
        assert_eq!(self.code, Some(1), "{}\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

fn run(command: Command) -> Ran {
    assert_cmd::Command::from_std(command)
        .write_stdin("")
        .timeout(LIMIT)
        .output()
        .unwrap()
        .into()
}

/// An admin command on the database in `dir`, with stdin not a terminal and
/// the password in the environment.
fn admin(dir: &Path, args: &[&str]) -> Ran {
    let mut command = common::porter(args);
    command
        .arg("--db")
        .arg(dir.join("porter.db"))
        .env("PORTER_PASSWORD", PASSWORD);
    run(command)
}

/// `porter users add NAME` with cheap Argon2.
fn add_user(dir: &Path, name: &str) -> Ran {
    admin(
        dir,
        &["users", "add", name, CHEAP[0], CHEAP[1], CHEAP[2], CHEAP[3]],
    )
}

/// Runs `work` on the store at `dir/porter.db` (created if missing), as an
/// older Porter or another tool might have written it.
fn with_store<F: Future<Output = ()>>(
    dir: &Path,
    work: impl FnOnce(porter_store::SharedStore) -> F,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = porter_store::open(dir.join("porter.db")).await.unwrap();
        work(store.clone()).await;
        store.close().await;
    });
}

/// An empty database in `dir`, as `porter serve` leaves it.
fn fresh_database(dir: &Path) {
    with_store(dir, |_| async {});
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn companion(dir: &Path, suffix: &str) -> PathBuf {
    dir.join(format!("porter.db{suffix}"))
}

impl Raw {
    /// The next message, which must be `error{invalid_answer}`: its text.
    #[track_caller]
    fn invalid_answer(&mut self) -> String {
        match self.recv() {
            Some(ServerMessage::Error {
                code: ErrorCode::InvalidAnswer,
                text,
            }) => text,
            other => panic!("expected invalid_answer, got {other:?}"),
        }
    }

    /// Reads up to `ready`, returning the user it names.
    #[track_caller]
    fn until_ready(&mut self) -> String {
        loop {
            match self.recv() {
                Some(ServerMessage::Ready { user }) => return user,
                Some(ServerMessage::Session { .. } | ServerMessage::Say { .. }) => {}
                other => panic!("expected ready, got {other:?}"),
            }
        }
    }
}

/// Names refused by the policy whatever the kind, with a word of the rule
/// each refusal must name.
const REFUSED: [(&str, &str); 12] = [
    ("bob\u{200b}", "invisible"),  // ZERO WIDTH SPACE
    ("b\u{2060}ob", "invisible"),  // WORD JOINER
    ("\u{feff}bob", "invisible"),  // BYTE ORDER MARK
    ("bob\u{e0041}", "invisible"), // TAG LATIN CAPITAL LETTER A
    ("ser\u{200b}ver", "invisible"),
    ("a\u{202e}gnp.exe", "bidirectional"), // RIGHT-TO-LEFT OVERRIDE
    ("a\u{2066}b", "bidirectional"),       // LEFT-TO-RIGHT ISOLATE
    ("a\u{2028}b", "separators"),          // LINE SEPARATOR
    ("a\u{2029}b", "separators"),          // PARAGRAPH SEPARATOR
    ("\u{455}erver", "reserved"),          // Cyrillic ѕ
    ("SERVER", "reserved"),
    ("a\u{1b}[2Jb", "control"),
];

#[test]
fn users_add_refuses_look_alikes_invisible_and_reordering_names() {
    let dir = tempfile::tempdir().unwrap();
    fresh_database(dir.path());
    add_user(dir.path(), "bob").ok();
    for look_alike in ["Bob", "BOB", "b\u{43e}b", "b\u{3bf}b"] {
        let taken = add_user(dir.path(), look_alike).failed();
        assert!(
            taken
                .stderr
                .contains("is taken: it looks like the existing user bob"),
            "{look_alike:?}: {}",
            taken.stderr
        );
    }
    for (name, rule) in REFUSED {
        let refused = add_user(dir.path(), name).failed();
        assert!(
            refused.stderr.contains(rule),
            "{name:?}: {}",
            refused.stderr
        );
        assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    }
    // NFD and NFC of é are one name, stored composed.
    add_user(dir.path(), "Rene\u{301}").ok();
    let again = add_user(dir.path(), "Ren\u{e9}").failed();
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let list = admin(dir.path(), &["users", "list"]).ok();
    let names: Vec<&str> = list
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["Ren\u{e9}", "bob"], "{}", list.stdout);
}

#[test]
fn registration_refuses_a_look_alike_as_taken_and_asks_the_name_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let mut first = Raw::hello(server.addr, None);
    first.answer_ask("user", "bob");
    first.answer_ask("new_password", PASSWORD);
    first.answer_ask("repeat_password", PASSWORD);
    assert_eq!(first.until_ready(), "bob");

    let mut raw = Raw::hello(server.addr, None);
    for look_alike in ["Bob", "b\u{43e}b", "BOB"] {
        raw.answer_ask("user", look_alike);
        assert_eq!(raw.invalid_answer(), "that name is taken", "{look_alike:?}");
    }
    raw.answer_ask("user", "b\u{200b}ob");
    assert!(raw.invalid_answer().contains("invisible"));
    raw.answer_ask("user", "\u{455}erver");
    assert!(raw.invalid_answer().contains("reserved"));
    drop(raw);

    // A name is looked up exactly: bob logs in as bob, and a new name
    // registers.
    let mut bob = Raw::hello(server.addr, None);
    bob.answer_ask("user", "bob");
    bob.answer_ask("password", PASSWORD);
    assert_eq!(bob.until_ready(), "bob");
    let mut rob = Raw::hello(server.addr, None);
    rob.answer_ask("user", "Rob");
    rob.answer_ask("new_password", PASSWORD);
    rob.answer_ask("repeat_password", PASSWORD);
    assert_eq!(rob.until_ready(), "Rob");
}

#[test]
fn ip_two_addresses_cannot_take_look_alike_names() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--auth", "ip"]);
    let connect = |bind: &str, user: &str| -> Ran {
        let mut command = connect_to(server.addr.port());
        command
            .args(["--bind-addr", bind, "--user", user])
            .env("XDG_STATE_HOME", state.path());
        run(command)
    };
    connect("127.0.0.2", "bob").ok();
    let taken = connect("127.0.0.3", "Bob").failed();
    assert!(taken.stderr.contains("invalid_answer"), "{}", taken.stderr);
    assert!(
        taken.stderr.contains("that name is taken"),
        "{}",
        taken.stderr
    );

    // From 127.0.0.1, over the raw protocol: asked again after each refusal.
    let mut raw = Raw::hello(server.addr, None);
    for look_alike in ["b\u{43e}b", "BOB", "bob"] {
        raw.answer_ask("name", look_alike);
        assert_eq!(raw.invalid_answer(), "that name is taken", "{look_alike:?}");
    }
    for (name, rule) in REFUSED {
        raw.answer_ask("name", name);
        assert!(raw.invalid_answer().contains(rule), "{name:?}");
        // Five refusals end the handshake; start again.
        raw = Raw::hello(server.addr, None);
    }
    raw.answer_ask("name", "Rene\u{301}  Descartes");
    assert_eq!(raw.until_ready(), "Ren\u{e9} Descartes");

    // The first address keeps its name; forgotten, the name is free.
    let list = admin(dir.path(), &["names", "list"]).ok();
    assert!(list.stdout.contains("127.0.0.2  bob "), "{}", list.stdout);
    admin(dir.path(), &["names", "forget", "127.0.0.2"]).ok();
    connect("127.0.0.3", "Bob").ok();
}

#[test]
fn admin_lists_show_legacy_names_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // Names a Porter before the policy accepted; the store keeps whatever
    // it is given.
    with_store(dir.path(), |store| async move {
        store.create_user("bob\u{200b}", "$h", 1).await.unwrap();
        store.create_user("a\\u{200b}", "$h", 1).await.unwrap();
        let addr = "192.0.2.7".parse().unwrap();
        store.remember_name(addr, "eve\u{202e}xe", 1).await.unwrap();
    });
    let users = admin(dir.path(), &["users", "list"]).ok();
    let names: Vec<&str> = users
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["a\\\\u{200b}", "bob\\u{200b}"], "{}", users.stdout);
    let addresses = admin(dir.path(), &["names", "list"]).ok();
    assert!(
        addresses.stdout.contains("192.0.2.7  eve\\u{202e}xe "),
        "{}",
        addresses.stdout
    );
    assert!(!addresses.stdout.contains('\u{202e}'));
}

/// A `key=value` or `key="escaped value"` field list, as the text log
/// writes it after the message: `(key, value)` pairs, values unescaped.
fn fields(text: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = text.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].to_owned();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some('u') => {
                            let hex: String = chars
                                .by_ref()
                                .map(|(_, c)| c)
                                .skip(1)
                                .take_while(|c| *c != '}')
                                .collect();
                            out.push(
                                char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap(),
                            );
                        }
                        Some(other) => out.push(other),
                        None => panic!("a dangling escape in {text:?}"),
                    },
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_owned();
            rest = &rest[end..];
        }
        fields.push((key, value));
        rest = rest.trim_start();
    }
    fields
}

/// What a client chose, logged by the server: a chat name made to look like
/// more fields, and a `hello` client string with quotes, a newline, a NUL
/// and escapes that are not escapes.
const FORGED_NAME: &str = "x participants=9 user=root";
const FORGED_CLIENT: &str = "a\"b\nINFO forged=1 c\u{0}d \\u0041 \\\"e";

/// Connects from 127.0.0.1 with [`FORGED_CLIENT`] and takes [`FORGED_NAME`].
fn forge(server: &Server) {
    let mut raw = Raw::open(server.addr);
    raw.stream
        .send_message(&ClientMessage::Hello {
            client: Some(FORGED_CLIENT.into()),
            token: None::<Secret>,
            since: None,
        })
        .unwrap();
    raw.answer_ask("name", FORGED_NAME);
    assert_eq!(raw.until_ready(), FORGED_NAME);
}

#[test]
fn text_log_fields_cannot_be_forged_by_a_name_or_a_client_string() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--auth", "ip", "--log-level", "debug"]);
    forge(&server);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap();
    for line in log.lines() {
        assert!(
            line.starts_with("20"),
            "a line without its timestamp: {line:?}"
        );
    }
    let after = |message: &str| -> Vec<(String, String)> {
        let line = log
            .lines()
            .find(|l| l.contains(&format!(": {message} ")))
            .unwrap_or_else(|| panic!("no {message:?} line in\n{log}"));
        fields(&line[line.find(message).unwrap() + message.len()..])
    };
    let identified = after("identified");
    let users: Vec<&str> = identified
        .iter()
        .filter(|(k, _)| k == "user")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(users, [FORGED_NAME], "{identified:?}");
    assert!(!identified.iter().any(|(k, _)| k == "participants"));
    let hello = after("hello");
    let clients: Vec<&str> = hello
        .iter()
        .filter(|(k, _)| k == "client")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(clients, [FORGED_CLIENT], "{hello:?}");
    assert!(!hello.iter().any(|(k, _)| k == "forged"), "{hello:?}");
}

#[test]
fn json_log_lines_stay_json_whatever_a_client_sends() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            "--auth",
            "ip",
            "--log-level",
            "debug",
            "--log-format",
            "json",
        ],
    );
    forge(&server);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let field = |message: &str, name: &str| -> String {
        events
            .iter()
            .find(|e| e["fields"]["message"] == message)
            .and_then(|e| e["fields"][name].as_str())
            .unwrap_or_else(|| panic!("no {message}.{name} in\n{log}"))
            .to_owned()
    };
    assert_eq!(field("identified", "user"), FORGED_NAME);
    assert_eq!(field("hello", "client"), FORGED_CLIENT);
}

#[cfg(unix)]
#[test]
fn the_database_is_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn({
        let mut command = porter_with_open_umask(
            dir.path(),
            &[
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--auth",
                "ip",
            ],
        );
        command.args(["--service", "echo"]);
        command
    });
    let mut raw = Raw::hello(server.addr, None);
    raw.answer_ask("name", "ada");
    raw.until_ready();
    // While the server runs, the WAL and shared-memory files exist too.
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(
            mode(&companion(dir.path(), suffix)),
            0o600,
            "porter.db{suffix}"
        );
    }
    assert!(server.stop().success());
}

#[cfg(unix)]
#[test]
fn looser_permissions_are_tightened_and_said_so() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    fresh_database(dir.path());
    let db = dir.path().join("porter.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = porter_with_open_umask(dir.path(), &["users", "add", "ada"]);
    command.args(CHEAP).env("PORTER_PASSWORD", PASSWORD);
    let added = run(command).ok();
    assert!(
        added
            .stderr
            .contains("tightened the permissions of a database file"),
        "{}",
        added.stderr
    );
    assert!(
        added.stderr.contains("was=0644 now=0600"),
        "{}",
        added.stderr
    );
    assert_eq!(mode(&db), 0o600);

    // The server says so in its log.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let server = start(dir.path(), &[]);
    assert!(server.stop().success());
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap();
    assert!(log.contains("tightened the permissions"), "{log}");
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn admin_commands_refuse_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("porter.db");
    for args in [
        &["users", "list"][..],
        &["users", "add", "ada"],
        &["users", "remove", "ada"],
        &["users", "passwd", "ada"],
        &["sessions", "list"],
        &["sessions", "revoke", "--all"],
        &["sessions", "purge"],
        &["names", "list"],
        &["names", "forget", "127.0.0.1"],
    ] {
        // Run in the folder, with the default --db.
        let mut command = common::porter(args);
        command
            .current_dir(dir.path())
            .env("PORTER_PASSWORD", PASSWORD);
        let refused = run(command).failed();
        assert_eq!(
            refused.stderr.lines().count(),
            1,
            "{args:?}: {}",
            refused.stderr
        );
        for needed in [
            expected.display().to_string().as_str(),
            "porter serve",
            "--db PATH",
            "PORTER_DB",
        ] {
            assert!(
                refused.stderr.contains(needed),
                "{args:?}: {}",
                refused.stderr
            );
        }
        assert!(!expected.exists(), "{args:?} created the database");
    }
    // `porter serve` still creates it.
    assert!(start(dir.path(), &[]).stop().success());
    assert!(expected.exists());
    admin(dir.path(), &["users", "list"]).ok();
}

#[test]
fn users_add_states_the_policy_and_checks_the_first_entry_before_the_repeat() {
    let dir = tempfile::tempdir().unwrap();
    fresh_database(dir.path());
    let mut command = common::porter(&["users", "add", "ada"]);
    command.args(CHEAP).current_dir(dir.path());
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("A password needs 8 to 128 characters.")
        .unwrap();
    p.exp_string("New password for ada").unwrap();
    p.send_line("short").unwrap();
    // Refused at once: no repeat is asked for a password that cannot pass.
    let before = p
        .exp_string("a password needs at least 8 characters; try again.")
        .unwrap();
    assert!(!before.contains("Repeat"), "{before}");
    p.exp_string("New password for ada").unwrap();
    p.send_line("hunter2-hunter2").unwrap();
    p.exp_string("Repeat the password").unwrap();
    p.send_line("hunter2-hunter3").unwrap();
    p.exp_string("The passwords differ; try again.").unwrap();
    p.exp_string("New password for ada").unwrap();
    p.send_line("hunter2-hunter2").unwrap();
    p.exp_string("Repeat the password").unwrap();
    p.send_line("hunter2-hunter2").unwrap();
    let shown = p.exp_string("added user ada").unwrap();
    assert!(
        !shown.contains("hunter2"),
        "the password was echoed: {shown}"
    );
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));
}
