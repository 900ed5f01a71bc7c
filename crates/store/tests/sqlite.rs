//! What only the SQLite backend can show, each test on its own database file in a `TempDir`:
//! migrations and settings at open, `open` reaching files by path and `sqlite:` URL, two
//! handles opening a fresh file at once, data surviving a reopen, that no token is stored in
//! clear, and that an acknowledged write survives the process being SIGKILLed.
//!
//! Everything a store promises whatever its backend is in the contract suite
//! (`porter_store::contract`), which `contract_sqlite.rs` runs against SQLite.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64ct::{Base64, Base64UrlUnpadded, Encoding as _};
use porter_store::{SqliteStore, Store, StoreErrorKind, TokenHash};
use sha2::{Digest as _, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use tempfile::TempDir;

/// Bound on anything a broken test could wait for forever.
const TIMEOUT: Duration = Duration::from_secs(30);

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("porter.db")
}

async fn open(path: &Path) -> SqliteStore {
    tokio::time::timeout(TIMEOUT, SqliteStore::open(path))
        .await
        .expect("open timed out")
        .expect("open failed")
}

/// A raw connection to the file, bypassing the store, to check what is really on disk.
async fn raw_connection(path: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn hash_of(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

#[tokio::test]
async fn migrations_apply_on_a_fresh_file_and_reopening_is_idempotent() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    assert!(!path.exists());

    let store = open(&path).await;
    assert!(path.exists(), "open creates the file");
    let latest = store.latest_schema_version();
    assert_eq!(store.schema_version().await.unwrap(), Some(latest));
    store.create_user("alice", "$h1", 1).await.unwrap();
    store.close().await;

    for _ in 0..2 {
        let store = open(&path).await;
        assert_eq!(store.schema_version().await.unwrap(), Some(latest));
        assert!(store.user("alice").await.unwrap().is_some(), "data kept");
        store.close().await;
    }

    let mut conn = raw_connection(&path).await;
    let versions: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let expected: Vec<(i64, bool)> = (1..=latest).map(|v| (v, true)).collect();
    assert_eq!(versions, expected, "each migration recorded once");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn two_handles_opening_a_fresh_file_at_once_both_succeed() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (a, b) = tokio::join!(SqliteStore::open(&path), SqliteStore::open(&path));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.create_user("alice", "$h", 1).await.unwrap();
    assert!(b.user("alice").await.unwrap().is_some());
}

#[tokio::test]
async fn database_is_in_wal_mode_with_foreign_keys_enforced() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;

    // journal_mode=WAL is persistent, so a fresh connection sees it.
    let mut conn = raw_connection(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    conn.close().await.unwrap();

    // Foreign keys are per connection: prove the store's connections enforce them.
    let err = store
        .create_session(&[7; 32], "ghost", 0, 100)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err:?}");
}

/// `porter_store::open` reaches the same SQLite file by plain path and by `sqlite://` and
/// `sqlite:` URL, and creates it on first use like `SqliteStore::open`.
#[tokio::test]
async fn open_reaches_one_file_by_path_and_by_sqlite_url() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let text = path.to_str().expect("temp paths are UTF-8 here");

    let by_url = porter_store::open(format!("sqlite://{text}"))
        .await
        .unwrap();
    assert!(path.exists(), "open creates the file");
    by_url.create_user("alice", "$h", 1).await.unwrap();
    assert_eq!(
        by_url.schema_version().await.unwrap(),
        Some(by_url.latest_schema_version())
    );
    by_url.close().await;

    for location in [text.to_owned(), format!("sqlite:{text}")] {
        let store = porter_store::open(&location).await.unwrap();
        assert!(store.user("alice").await.unwrap().is_some(), "{location}");
        store.close().await;
    }
    let by_path = porter_store::open(&path).await.unwrap();
    assert!(by_path.user("alice").await.unwrap().is_some());
}

#[tokio::test]
async fn open_in_memory_by_url_is_private_to_its_store() {
    let first = porter_store::open("sqlite::memory:").await.unwrap();
    first.create_user("alice", "$h", 1).await.unwrap();
    let second = porter_store::open("sqlite::memory:").await.unwrap();
    assert!(first.user("alice").await.unwrap().is_some());
    assert_eq!(second.user("alice").await.unwrap(), None);
}

/// A URL whose backend this build lacks is refused, naming its scheme and nothing else of it
/// (it may carry a password). PostgreSQL URLs are opened: see tests/postgres.rs.
#[tokio::test]
async fn open_refuses_unknown_schemes_naming_only_the_scheme() {
    let err = porter_store::open("mysql://porter:s3cret@localhost/porter")
        .await
        .err()
        .expect("no MySQL");
    assert_eq!(err.kind(), StoreErrorKind::UnsupportedBackend, "{err:?}");
    assert!(err.to_string().contains("\"mysql\""), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

#[tokio::test]
async fn names_survive_reopening_the_file() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let six: IpAddr = "fe80::1".parse().unwrap();
    {
        let store = open(&path).await;
        store
            .remember_name(v4(10, 0, 0, 1), "alice", 1)
            .await
            .unwrap();
        store.remember_name(six, "bob", 2).await.unwrap();
        // Dropped without close(): acknowledged writes must already be on disk.
    }
    let store = open(&path).await;
    assert_eq!(
        store
            .name_for_addr(v4(10, 0, 0, 1))
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        store.name_for_addr(six).await.unwrap().as_deref(),
        Some("bob")
    );
}

/// The token a client holds must not be recoverable from the database file: only its SHA-256
/// is stored, and neither the raw bytes nor any base64 form appear in the file, its WAL or
/// its shared-memory index.
#[tokio::test]
async fn database_files_never_contain_the_token_in_clear() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let token: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let forms = [
        token.clone(),
        Base64UrlUnpadded::encode_string(&token).into_bytes(),
        Base64::encode_string(&token).into_bytes(),
    ];
    let hash = hash_of(&token);

    let store = open(&path).await;
    store.create_user("alice", "$h", 0).await.unwrap();
    store.create_session(&hash, "alice", 0, 100).await.unwrap();
    assert!(store.resume_session(&hash, 1).await.unwrap().is_some());

    let mut seen_hash = false;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for form in &forms {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                "token found in clear"
            );
        }
        seen_hash |= bytes.windows(32).any(|w| w == hash);
    }
    assert!(
        seen_hash,
        "the hash itself was stored (the grep looked at the right files)"
    );
}

/// Environment variable that turns `child_acknowledges_a_write_then_waits_to_be_killed`
/// into the child half of the SIGKILL test. Without it, that test does nothing.
const CHILD_DB_ENV: &str = "PORTER_STORE_TEST_CHILD_DB";
const CHILD_ACK: &str = "PORTER-STORE-CHILD-ACKNOWLEDGED";

/// An acknowledged write survives the writing process being SIGKILLed: this test runs the
/// test binary again as a child that writes, says so on stdout, and then is killed with no
/// chance to close anything.
#[test]
fn acknowledged_write_survives_the_process_being_killed() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_acknowledges_a_write_then_waits_to_be_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(CHILD_ACK) {
                let _ = tx.send(());
                break;
            }
        }
    });
    let acked = rx.recv_timeout(TIMEOUT);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    acked.expect("child never acknowledged its write");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = open(&path).await;
        assert!(store.user("survivor").await.unwrap().is_some());
        assert_eq!(
            store
                .name_for_addr(v4(198, 51, 100, 1))
                .await
                .unwrap()
                .as_deref(),
            Some("survivor")
        );
    });
}

/// The child half of `acknowledged_write_survives_the_process_being_killed` (ignored, and a
/// no-op unless that test runs it).
#[tokio::test]
#[ignore = "run as a child process by acknowledged_write_survives_the_process_being_killed"]
async fn child_acknowledges_a_write_then_waits_to_be_killed() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let store = open(Path::new(&path)).await;
    store.create_user("survivor", "$h", 1).await.unwrap();
    store
        .remember_name(v4(198, 51, 100, 1), "survivor", 1)
        .await
        .unwrap();
    println!("{CHILD_ACK}");
    // Keep the store open (nothing closed, nothing checkpointed) until killed; give up
    // eventually so an orphaned child cannot linger.
    tokio::time::sleep(TIMEOUT).await;
    drop(store);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `path` with `suffix` appended: SQLite's `-wal` and `-shm` files.
fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The database holds password hashes: it and its WAL and shared-memory files are readable by
/// their owner only.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_wal_files_are_private() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store.create_user("alice", "$h", 1).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    for suffix in ["-wal", "-shm"] {
        let file = companion(&path, suffix);
        assert!(file.exists(), "{suffix} exists while the store is open");
        assert_eq!(mode(&file), 0o600, "{suffix}");
    }
    store.close().await;
}

/// A database left readable by others (by an older Porter, or a copy) is made private at open.
#[cfg(unix)]
#[tokio::test]
async fn looser_permissions_are_tightened_at_open() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    open(&path).await.close().await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    let wal = companion(&path, "-wal");
    std::fs::write(&wal, b"").unwrap();
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o666)).unwrap();

    let store = open(&path).await;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&wal), 0o600);
    store.create_user("alice", "$h", 1).await.unwrap();
    assert_eq!(mode(&companion(&path, "-shm")), 0o600);
    store.close().await;
}

/// The admin commands open only a database that exists: a missing file is refused with its
/// absolute path, and nothing is created.
#[tokio::test]
async fn open_existing_refuses_a_missing_file_and_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let err = match porter_store::open_existing(&path).await {
        Ok(_) => panic!("opened a missing database"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), StoreErrorKind::NoDatabase, "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no database found: {}", path.display())
    );
    assert!(!path.exists());
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
    ] {
        let err = porter_store::open_existing(&url).await.err().unwrap();
        assert_eq!(err.kind(), StoreErrorKind::NoDatabase, "{url}");
    }
    assert!(!path.exists());

    open(&path).await.close().await;
    let store = porter_store::open_existing(&path).await.unwrap();
    store.create_user("alice", "$h", 1).await.unwrap();
    store.close().await;
}
