//! `auth: ip` and `auth: password` from the outside: `run()` on a port-0
//! listener with a SQLite store in a temporary directory, spoken to in raw
//! bytes over loopback (PROTOCOL.md section 4). Hashes use tiny Argon2
//! parameters so the suite stays fast; the defaults are tested in the
//! credentials module for their values.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use porter_server::credentials::HashCost;
use porter_server::throttle::ThrottlePolicy;
use porter_server::{AuthMode, Clock, Config, Error, Registration, ServiceKind, run};
use porter_store::{SharedStore, SqliteStore};
use serde_json::json;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::timeout;

use common::{Client, Server, WAIT};

const PASSWORD: &str = "correct horse battery";

/// Argon2id at 64 KiB and one pass: milliseconds, not a quarter second.
const CHEAP: HashCost = HashCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// A database file in a temporary directory, opened as many times as asked.
struct Db {
    _dir: TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("porter.db");
        Db { _dir: dir, path }
    }

    async fn open(&self) -> SharedStore {
        SqliteStore::open(&self.path).await.unwrap().shared()
    }

    /// The database file and its WAL and shared-memory companions.
    fn bytes_on_disk(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            if let Ok(bytes) = std::fs::read(Path::new(&name)) {
                all.extend(bytes);
            }
        }
        all
    }
}

fn ip_config(store: SharedStore) -> Config {
    Config {
        service: ServiceKind::Echo,
        auth: AuthMode::Ip,
        store: Some(store),
        ..Config::default()
    }
}

fn password_config(store: SharedStore) -> Config {
    Config {
        service: ServiceKind::Echo,
        auth: AuthMode::Password,
        store: Some(store),
        hash_cost: CHEAP,
        ..Config::default()
    }
}

/// A throttle that allows `allowed_failures` and then refuses for ten
/// minutes: longer than any test.
fn strict(allowed_failures: u32) -> ThrottlePolicy {
    let ten_minutes = Duration::from_secs(600);
    ThrottlePolicy {
        allowed_failures,
        window: ten_minutes,
        penalty: ten_minutes,
        max_penalty: ten_minutes,
    }
}

/// A clock moved by hand.
fn manual_clock(start: i64) -> (Clock, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start));
    let read = now.clone();
    (Clock::new(move || read.load(Ordering::SeqCst)), now)
}

/// Registers `user` through the dialogue and returns the session token.
async fn register(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut client = Client::hello(addr, "password", None).await;
    assert!(!client.expect_ask("user").await);
    client.answer("user", user).await;
    assert!(client.expect_ask("new_password").await, "secret");
    client.answer("new_password", password).await;
    assert!(client.expect_ask("repeat_password").await, "secret");
    client.answer("repeat_password", password).await;
    let (token, _) = client.expect_session(user).await;
    client.expect_say(&format!("Welcome, {user}!")).await;
    client.expect_ready(user).await;
    client.send(&json!({"type": "bye"})).await;
    client.expect_closed().await;
    token
}

/// Logs `user` in with a password and returns the client, ready, and the
/// new token.
async fn log_in(addr: SocketAddr, user: &str, password: &str) -> (Client, String) {
    let mut client = Client::hello(addr, "password", None).await;
    client.answer_ask("user", user).await;
    assert!(client.expect_ask("password").await, "secret");
    client.answer("password", password).await;
    let (token, _) = client.expect_session(user).await;
    client.expect_say(&format!("Welcome back, {user}!")).await;
    client.expect_ready(user).await;
    (client, token)
}

// ---------------------------------------------------------------- auth: ip

#[tokio::test]
async fn ip_unknown_address_is_asked_its_name_and_greeted_by_it_after_a_restart() {
    let db = Db::new();
    let server = Server::start(ip_config(db.open().await)).await;
    let mut client = Client::hello(server.addr, "ip", None).await;
    assert!(!client.expect_ask("name").await);
    client.answer("name", "  Ada Lovelace ").await;
    client.expect_say("Hello, Ada Lovelace!").await;
    client.expect_ready("Ada Lovelace").await;
    client.echo("hi").await;
    drop(client);
    server.stop().await;

    // A new process would open the file afresh: so do we.
    let server = Server::start(ip_config(db.open().await)).await;
    let mut client = Client::hello(server.addr, "ip", None).await;
    client.expect_say("Hello, Ada Lovelace!").await;
    client.expect_ready("Ada Lovelace").await;
    server.stop().await;
}

#[tokio::test]
async fn ip_two_addresses_get_two_names_and_one_address_shares_its_name() {
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start(ip_config(store.clone())).await;
    let two: IpAddr = "127.0.0.2".parse().unwrap();
    let three: IpAddr = "127.0.0.3".parse().unwrap();
    for (source, name) in [(two, "ada"), (three, "bob")] {
        let mut client = Client::connect_from(server.addr, source).await;
        client.expect_welcome("ip").await;
        client.send_hello(None).await;
        client.answer_ask("name", name).await;
        client.expect_say(&format!("Hello, {name}!")).await;
        client.expect_ready(name).await;
    }
    for (source, name) in [(three, "bob"), (two, "ada"), (two, "ada")] {
        let mut client = Client::connect_from(server.addr, source).await;
        client.expect_welcome("ip").await;
        client.send_hello(None).await;
        client.expect_say(&format!("Hello, {name}!")).await;
        client.expect_ready(name).await;
    }
    let names = store.list_names().await.unwrap();
    let pairs: Vec<_> = names.iter().map(|r| (r.addr, r.name.as_str())).collect();
    assert_eq!(pairs, vec![(two, "ada"), (three, "bob")]);
}

#[tokio::test]
async fn ip_a_name_refused_by_policy_is_asked_again() {
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start(ip_config(store.clone())).await;
    let mut client = Client::hello(server.addr, "ip", None).await;
    for bad in ["   ", &"x".repeat(33), "tab\there", "server"] {
        client.answer_ask("name", bad).await;
        client.expect_error("invalid_answer").await;
    }
    // Out of turn: the question stands.
    client.send(&json!({"type": "say", "text": "hi"})).await;
    client.expect_ask("name").await;
    client.expect_error("unexpected").await;
    client.answer("name", &"é".repeat(32)).await;
    client
        .expect_say(&format!("Hello, {}!", "é".repeat(32)))
        .await;
    client.expect_ready(&"é".repeat(32)).await;
    assert_eq!(store.list_names().await.unwrap().len(), 1);
}

#[tokio::test]
async fn ip_endless_invalid_names_end_in_bye() {
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start(ip_config(store.clone())).await;
    let mut client = Client::hello(server.addr, "ip", None).await;
    loop {
        let frame = client.recv().await;
        match frame["type"].as_str().unwrap() {
            "ask" => client.answer("name", "").await,
            "error" => assert_eq!(frame["code"], "invalid_answer"),
            "bye" => break,
            other => panic!("unexpected {other}: {frame}"),
        }
    }
    client.expect_closed().await;
    assert!(store.list_names().await.unwrap().is_empty());
}

#[tokio::test]
async fn ip_works_over_ipv6() {
    let Ok(probe) = TcpListener::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    drop(probe);
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start_on("[::1]:0", ip_config(store.clone())).await;
    let mut client = Client::hello(server.addr, "ip", None).await;
    client.answer_ask("name", "six").await;
    client.expect_say("Hello, six!").await;
    client.expect_ready("six").await;
    let names = store.list_names().await.unwrap();
    assert_eq!(names[0].addr, "::1".parse::<IpAddr>().unwrap());
    let mut again = Client::hello(server.addr, "ip", None).await;
    again.expect_say("Hello, six!").await;
    again.expect_ready("six").await;
}

#[tokio::test]
async fn ip_logout_without_a_session_is_unexpected_and_stays_open() {
    let db = Db::new();
    let server = Server::start(ip_config(db.open().await)).await;
    let mut client = Client::hello(server.addr, "ip", None).await;
    client.answer_ask("name", "ada").await;
    client.expect_say("Hello, ada!").await;
    client.expect_ready("ada").await;
    client.send(&json!({"type": "logout"})).await;
    client.expect_error("unexpected").await;
    client.echo("still here").await;
}

#[tokio::test]
async fn a_failing_store_gets_the_client_a_bye_and_the_server_keeps_serving() {
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start(ip_config(store.clone())).await;
    store.close().await;
    for _ in 0..2 {
        let mut client = Client::hello(server.addr, "ip", None).await;
        assert_eq!(client.expect_bye().await, "server error, try again later");
        client.expect_closed().await;
    }
    server.stop().await;
}

// ---------------------------------------------------------- auth: password

#[tokio::test]
async fn password_register_log_in_resume_log_out_then_the_token_is_refused() {
    let db = Db::new();
    let store = db.open().await;
    let (clock, _now) = manual_clock(1_700_000_000);
    let config = Config {
        clock,
        ..password_config(store.clone())
    };
    let server = Server::start(config).await;

    // Registration: the account is stored before the session is handed out.
    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", "ada").await;
    client.answer_ask("new_password", PASSWORD).await;
    client.answer_ask("repeat_password", PASSWORD).await;
    let (first_token, expires_at) = client.expect_session("ada").await;
    // 1_700_000_000 + 7 days.
    assert_eq!(expires_at, "2023-11-21T22:13:20Z");
    client.expect_say("Welcome, ada!").await;
    client.expect_ready("ada").await;
    assert!(store.user("ada").await.unwrap().is_some());
    drop(client);

    // Log in with the password: a new session.
    let (client, token) = log_in(server.addr, "ada", PASSWORD).await;
    assert_ne!(token, first_token);
    drop(client);

    // Resume with the token: no password asked.
    let mut client = Client::hello(server.addr, "password", Some(&token)).await;
    client.expect_say("Welcome back, ada!").await;
    client.expect_ready("ada").await;
    client.echo("hello").await;
    client.send(&json!({"type": "logout"})).await;
    assert_eq!(client.expect_bye().await, "logged out");
    client.expect_closed().await;

    // The revoked token falls back to the login dialogue.
    let mut client = Client::hello(server.addr, "password", Some(&token)).await;
    client.expect_error("session_invalid").await;
    client.expect_ask("user").await;
    // The first session was not touched by that logout.
    let mut other = Client::hello(server.addr, "password", Some(&first_token)).await;
    other.expect_say("Welcome back, ada!").await;
    other.expect_ready("ada").await;
    server.stop().await;
}

#[tokio::test]
async fn password_an_unknown_token_is_refused_without_ending_the_connection() {
    let db = Db::new();
    let server = Server::start(password_config(db.open().await)).await;
    let mut client = Client::hello(server.addr, "password", Some("not-a-token")).await;
    client.expect_error("session_invalid").await;
    client.answer_ask("user", "ada").await;
    client.expect_ask("new_password").await;
}

#[tokio::test]
async fn password_an_expired_token_is_refused() {
    let db = Db::new();
    let (clock, now) = manual_clock(1_000_000);
    let config = Config {
        clock,
        session_ttl: Duration::from_secs(60),
        ..password_config(db.open().await)
    };
    let server = Server::start(config).await;
    let token = register(server.addr, "ada", PASSWORD).await;

    now.store(1_000_059, Ordering::SeqCst);
    let mut client = Client::hello(server.addr, "password", Some(&token)).await;
    client.expect_say("Welcome back, ada!").await;
    client.expect_ready("ada").await;

    now.store(1_000_060, Ordering::SeqCst);
    let mut client = Client::hello(server.addr, "password", Some(&token)).await;
    client.expect_error("session_invalid").await;
    client.expect_ask("user").await;
}

#[tokio::test]
async fn password_wrong_three_times_then_bye() {
    let db = Db::new();
    let server = Server::start(password_config(db.open().await)).await;
    register(server.addr, "ada", PASSWORD).await;
    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", "ada").await;
    for _ in 0..3 {
        client.answer_ask("password", "not the password").await;
        client.expect_error("bad_credentials").await;
    }
    client.expect_bye().await;
    client.expect_closed().await;
    // The next connection gets its three attempts, and the right password works.
    let (mut client, _) = log_in(server.addr, "ada", PASSWORD).await;
    client.echo("in").await;
}

#[tokio::test]
async fn password_registration_asks_again_on_policy_or_mismatch() {
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start(password_config(store.clone())).await;
    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", "two words").await;
    client.expect_error("invalid_answer").await;
    client.answer_ask("user", "ada").await;
    // Too short.
    client.answer_ask("new_password", "short").await;
    client.expect_error("invalid_answer").await;
    // Too long.
    client.answer_ask("new_password", &"x".repeat(129)).await;
    client.expect_error("invalid_answer").await;
    // Mismatch.
    client.answer_ask("new_password", PASSWORD).await;
    client.answer_ask("repeat_password", "something else").await;
    client.expect_error("invalid_answer").await;
    assert!(store.user("ada").await.unwrap().is_none());
    client.answer_ask("new_password", PASSWORD).await;
    client.answer_ask("repeat_password", PASSWORD).await;
    client.expect_session("ada").await;
    client.expect_say("Welcome, ada!").await;
    client.expect_ready("ada").await;
}

#[tokio::test]
async fn password_throttling_per_user_kicks_in_across_connections() {
    let db = Db::new();
    let config = Config {
        throttle_per_user: strict(2),
        ..password_config(db.open().await)
    };
    let server = Server::start(config).await;
    register(server.addr, "ada", PASSWORD).await;

    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", "ada").await;
    client.answer_ask("password", "wrong one").await;
    client.expect_error("bad_credentials").await;
    client.answer_ask("password", "wrong two").await;
    client.expect_error("rate_limited").await;
    client.expect_closed().await;

    // Even the right password is not tried now: refused before the ask.
    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", "ada").await;
    client.expect_error("rate_limited").await;
    client.expect_closed().await;

    // Another user from the same address is not affected.
    register(server.addr, "bob", PASSWORD).await;
}

#[tokio::test]
async fn password_throttling_per_address_refuses_right_after_hello() {
    let db = Db::new();
    let config = Config {
        throttle_per_address: strict(3),
        ..password_config(db.open().await)
    };
    let server = Server::start(config).await;
    register(server.addr, "ada", PASSWORD).await;
    let bob = register(server.addr, "bob", PASSWORD).await;
    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", "ada").await;
    for _ in 0..2 {
        client.answer_ask("password", "wrong").await;
        client.expect_error("bad_credentials").await;
    }
    client.answer_ask("password", "wrong").await;
    client.expect_error("rate_limited").await;
    client.expect_closed().await;

    let mut client = Client::hello(server.addr, "password", None).await;
    client.expect_error("rate_limited").await;
    client.expect_closed().await;

    // A valid token still works from there: it is not a guess.
    let mut client = Client::hello(server.addr, "password", Some(&bob)).await;
    client.expect_say("Welcome back, bob!").await;
    client.expect_ready("bob").await;
}

#[tokio::test]
async fn password_closed_registration_hides_unknown_users() {
    let db = Db::new();
    let store = db.open().await;
    let open = Server::start(password_config(store.clone())).await;
    register(open.addr, "ada", PASSWORD).await;
    open.stop().await;

    let config = Config {
        registration: Registration::Closed,
        ..password_config(store.clone())
    };
    let server = Server::start(config).await;

    let mut transcripts = Vec::new();
    for user in ["ada", "nobody"] {
        let mut client = Client::hello(server.addr, "password", None).await;
        let mut frames = vec![client.recv().await];
        client.answer("user", user).await;
        for _ in 0..3 {
            frames.push(client.recv().await);
            client.answer("password", "not the password").await;
            frames.push(client.recv().await);
        }
        frames.extend(client.frames_until_closed().await);
        transcripts.push(frames);
    }
    assert_eq!(
        transcripts[0], transcripts[1],
        "a wrong password and an unknown user must look the same"
    );
    let kinds: Vec<_> = transcripts[0]
        .iter()
        .map(|f| {
            f.get("id")
                .or_else(|| f.get("code"))
                .unwrap_or(&f["type"])
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "user",
            "password",
            "bad_credentials",
            "password",
            "bad_credentials",
            "password",
            "bad_credentials",
            "bye"
        ]
    );
    assert!(store.user("nobody").await.unwrap().is_none());
    // Existing users still log in.
    log_in(server.addr, "ada", PASSWORD).await;
}

#[tokio::test]
async fn password_frames_over_4_kib_are_refused_before_ready_and_fine_after() {
    let db = Db::new();
    let server = Server::start(password_config(db.open().await)).await;
    let mut client = Client::hello(server.addr, "password", None).await;
    client.expect_ask("user").await;
    client.send_raw(&4097u32.to_be_bytes()).await;
    client.expect_error("frame_too_large").await;
    client.expect_closed().await;

    let mut client = Client::hello(server.addr, "password", None).await;
    client.answer_ask("user", &"x".repeat(4000)).await;
    client.expect_error("invalid_answer").await;

    register(server.addr, "ada", PASSWORD).await;
    let (mut client, _) = log_in(server.addr, "ada", PASSWORD).await;
    client.echo(&"y".repeat(10 * 1024)).await;
}

#[tokio::test]
async fn password_100_concurrent_registrations_are_all_stored_and_log_in() {
    let db = Db::new();
    let store = db.open().await;
    // A hundred accounts from one address: not what this test is about.
    let config = Config {
        registrations_per_address: None,
        ..password_config(store.clone())
    };
    let server = Server::start(config).await;
    let addr = server.addr;
    let registrations: Vec<_> = (0..100)
        .map(|i| tokio::spawn(async move { register(addr, &format!("user{i}"), PASSWORD).await }))
        .collect();
    for registration in registrations {
        timeout(WAIT, registration).await.unwrap().unwrap();
    }
    // A second handle on the file, like the admin CLI's, sees them all.
    let other = db.open().await;
    assert_eq!(other.list_users().await.unwrap().len(), 100);
    let logins: Vec<_> = (0..100)
        .map(|i| tokio::spawn(async move { log_in(addr, &format!("user{i}"), PASSWORD).await }))
        .collect();
    for login in logins {
        timeout(WAIT, login).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn password_the_database_never_holds_a_password_or_token_in_clear() {
    let db = Db::new();
    let store = db.open().await;
    let server = Server::start(password_config(store.clone())).await;
    let secret_password = "unmistakable-p4ssword-xyzzy";
    let first = register(server.addr, "ada", secret_password).await;
    let (client, second) = log_in(server.addr, "ada", secret_password).await;
    drop(client);
    server.stop().await;
    store.close().await;
    let bytes = db.bytes_on_disk();
    assert!(!bytes.is_empty());
    for secret in [secret_password, &first, &second] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "found a secret in the database files"
        );
    }
    let hash = db.open().await.user("ada").await.unwrap().unwrap();
    assert!(hash.password_hash.starts_with("$argon2id$"));
}

#[tokio::test]
async fn run_refuses_a_hash_cost_argon2_cannot_use() {
    let db = Db::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        hash_cost: HashCost {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        },
        ..password_config(db.open().await)
    };
    let result = run(listener, config, None, std::future::pending()).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidConfig {
                field: "hash_cost",
                ..
            })
        ),
        "{result:?}"
    );
}

/// The log as text, captured from the current thread (the tests' runtime is
/// single-threaded, so the server's tasks log here too).
///
/// One global subscriber writes each event to the capture of the thread
/// that emitted it, if any. A per-test `set_default` subscriber is flaky
/// when tests run in parallel: while it is the only one registered, tracing
/// caches a callsite first hit on another (uncaptured) thread as disabled
/// for everyone, and a capture then misses whole events.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    /// Where this thread's log goes while a test captures it.
    static CAPTURING: std::cell::RefCell<Option<Capture>> = const { std::cell::RefCell::new(None) };
}

/// Stops capturing this thread's log when dropped.
struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURING.with(|capturing| capturing.borrow_mut().take());
    }
}

/// The global subscriber's writer: the current thread's capture, or nowhere.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURING.with(|capturing| {
            if let Some(capture) = capturing.borrow().as_ref() {
                capture.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Captures the log of this thread at DEBUG, as plain text, until the
    /// guard is dropped.
    fn install() -> (Capture, CaptureGuard) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(|| ThreadCapture)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
        });
        let capture = Capture::default();
        CAPTURING.with(|capturing| *capturing.borrow_mut() = Some(capture.clone()));
        (capture, CaptureGuard)
    }

    /// What was logged so far.
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

// ---------------------------------------------------------- session purge

#[tokio::test(flavor = "current_thread")]
async fn a_starting_server_purges_expired_and_revoked_sessions_before_accepting() {
    let (capture, _guard) = Capture::install();
    let db = Db::new();
    let store = db.open().await;
    store.create_user("ada", "$h", 0).await.unwrap();
    let now = 1_000_000;
    store
        .create_session(&[1; 32], "ada", 0, now + 60)
        .await
        .unwrap();
    store.create_session(&[2; 32], "ada", 0, now).await.unwrap();
    store
        .create_session(&[3; 32], "ada", 0, now + 60)
        .await
        .unwrap();
    assert!(store.revoke_session(&[3; 32], 10).await.unwrap());
    let (clock, _now) = manual_clock(now);
    let server = Server::start(Config {
        clock,
        ..password_config(store.clone())
    })
    .await;

    // The purge at start runs before the first accept: a welcome means it is done.
    let mut client = Client::connect(server.addr).await;
    client.expect_welcome("password").await;
    let left = store.list_sessions(None).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].is_active(now), "{left:?}");
    assert!(
        capture.text().contains("sessions purged count=2"),
        "{}",
        capture.text()
    );
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_purge_at_start_is_a_warning_and_the_server_serves() {
    let (capture, _guard) = Capture::install();
    let db = Db::new();
    let store = db.open().await;
    store.close().await;
    let server = Server::start(ip_config(store)).await;

    let mut client = Client::connect(server.addr).await;
    client.expect_welcome("ip").await;
    let log = capture.text();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("session purge failed")),
        "{log}"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn password_the_log_records_every_outcome_and_no_secret() {
    let (capture, _guard) = Capture::install();

    let db = Db::new();
    let server = Server::start(password_config(db.open().await)).await;
    let secret_password = "unmistakable-p4ssword-xyzzy";
    register(server.addr, "ada", secret_password).await;
    let (client, token) = log_in(server.addr, "ada", secret_password).await;
    drop(client);
    let mut client = Client::hello(server.addr, "password", Some(&token)).await;
    client.expect_say("Welcome back, ada!").await;
    client.expect_ready("ada").await;
    client.send(&json!({"type": "logout"})).await;
    client.expect_bye().await;
    client.expect_closed().await;
    let mut client = Client::hello(server.addr, "password", Some(&token)).await;
    client.expect_error("session_invalid").await;
    client.answer_ask("user", "ada").await;
    client.answer_ask("password", "wrong-password-qwerty").await;
    client.expect_error("bad_credentials").await;
    drop(client);
    server.stop().await;

    let log = capture.text();
    for outcome in [
        "result=\"registered\"",
        "result=\"login ok\"",
        "result=\"resumed\"",
        "result=\"logout\"",
        "result=\"session invalid\"",
        "result=\"bad password\"",
    ] {
        assert!(log.contains(outcome), "no {outcome} in:\n{log}");
    }
    assert!(log.contains("user=ada"), "{log}");
    assert!(log.contains("peer=127.0.0.1:"), "{log}");
    for secret in [secret_password, "wrong-password-qwerty", &token] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    assert!(!log.contains("$argon2"), "a hash reached the log");
}

#[tokio::test(flavor = "current_thread")]
async fn the_log_shows_addresses_and_names_as_they_are_not_debug_quoted() {
    let (capture, _guard) = Capture::install();

    let db = Db::new();
    let config = Config {
        service: ServiceKind::Chat,
        ..ip_config(db.open().await)
    };
    let server = Server::start(config).await;
    let addr = server.addr;
    let mut client = Client::hello(addr, "ip", None).await;
    client.answer_ask("name", "ada").await;
    client.expect_say("Hello, ada!").await;
    client.expect_ready("ada").await;
    client.send(&json!({"type": "bye"})).await;
    client.expect_closed().await;
    server.stop().await;

    let log = capture.text();
    assert!(log.contains(&format!("listening addr={addr} ")), "{log}");
    assert!(
        log.contains(&format!("stopped accepting addr={addr}")),
        "{log}"
    );
    assert!(log.contains("joined chat user=ada "), "{log}");
    assert!(log.contains("user=ada reason="), "{log}");
    assert!(log.contains("client=test"), "{log}");
    assert!(!log.contains("Some("), "an Option in the log:\n{log}");
    assert!(!log.contains("user=\""), "a quoted name in the log:\n{log}");
}
