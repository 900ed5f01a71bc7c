//! A PostgreSQL server for tests: a fresh schema per test on the server named by
//! [`URL_VAR`], and a [`Link`] to that server that a test can cut, to see what happens when
//! PostgreSQL goes away.
//!
//! Without [`URL_VAR`], [`TestSchema::create`] says once that the PostgreSQL tests are skipped
//! (naming the variable) and returns `None`, so a test returns early and passes: `cargo test`
//! keeps working on a machine without PostgreSQL.
//!
//! Each [`TestSchema`] is a schema named `porter_test_<random hex>`, created when the test
//! starts and dropped with everything in it (`DROP SCHEMA ... CASCADE`) when the value is
//! dropped, also when the test panics. The store reaches it through the URL's `search_path`
//! ([`TestSchema::url`]), so tests run in parallel on one database and leave nothing behind.
//!
//! Both are blocking (each runs its few statements on a thread and runtime of its own), so
//! that the binary's integration tests, which have no runtime, use them as the store's async
//! tests do.

use std::future::Future;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _};

use super::TestDatabase;
use crate::SharedStore;

/// The environment variable naming the PostgreSQL server the tests use, as a URL:
/// `postgres://postgres@127.0.0.1:5432/test`. Its user must be allowed to create schemas in
/// its database.
pub const URL_VAR: &str = "PORTER_TEST_POSTGRES_URL";

/// What a test binary prints (once) when [`URL_VAR`] is not set.
pub const SKIP_MESSAGE: &str = "skipping: set PORTER_TEST_POSTGRES_URL to run the PostgreSQL tests";

/// The server's URL from [`URL_VAR`]; `None`, after saying so once, when it is not set.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            super::skip(SKIP_MESSAGE);
            None
        }
    }
}

/// One test's own schema on the server of [`URL_VAR`]; dropped, with everything in it, when
/// this value is dropped.
#[derive(Debug)]
pub struct TestSchema {
    /// The server's URL, as given.
    server: String,
    /// `porter_test_` and 16 random hex digits: a valid identifier that needs no quoting.
    name: String,
}

impl TestSchema {
    /// Creates a fresh, empty schema; `None` when [`URL_VAR`] is not set (see
    /// [`server_url`]).
    ///
    /// # Panics
    /// If the server cannot be reached or refuses to create the schema: a test that was asked
    /// to run against PostgreSQL must not pass without it.
    pub fn create() -> Option<TestSchema> {
        let server = server_url()?;
        let schema = TestSchema {
            name: format!("porter_test_{:016x}", random_u64()),
            server,
        };
        let statement = format!("CREATE SCHEMA {}", schema.name);
        if let Err(err) = block_on(execute(&schema.server, statement)) {
            panic!("cannot create a test schema on {URL_VAR}'s server: {err}");
        }
        Some(schema)
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of this schema: the server's, with the schema as the connection's
    /// `search_path` (the `options` parameter of libpq's URLs, which sqlx reads).
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options[search_path]={}",
            self.server, self.name
        )
    }

    /// The URL of this schema through `link`: the same, but connecting to the link's port on
    /// loopback (the `host` and `port` parameters override the URL's own).
    pub fn url_through(&self, link: &Link) -> String {
        format!("{}&host=127.0.0.1&port={}", self.url(), link.port())
    }

    /// Where the server of [`URL_VAR`] listens, for a [`Link`] to it.
    ///
    /// # Panics
    /// If the URL does not parse or its host does not resolve.
    pub fn server_addr(&self) -> SocketAddr {
        let options = PgConnectOptions::from_str(&self.server)
            .unwrap_or_else(|err| panic!("{URL_VAR} is not a PostgreSQL URL: {err}"));
        (options.get_host(), options.get_port())
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("the host of {URL_VAR} does not resolve"))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(err) = block_on(execute(&self.server, statement)) {
            // Not a panic: this may run while a failed test unwinds.
            let _ = io::Write::write_all(
                &mut io::stderr(),
                format!("could not drop the test schema {}: {err}\n", self.name).as_bytes(),
            );
        }
    }
}

impl TestDatabase for TestSchema {
    async fn open(&self) -> SharedStore {
        crate::open(self.url())
            .await
            .unwrap_or_else(|err| panic!("cannot open the test schema {}: {err:?}", self.name))
    }
}

/// Runs one statement on a connection of its own to `server`.
async fn execute(server: &str, statement: String) -> Result<(), sqlx::Error> {
    let mut conn: PgConnection = PgConnectOptions::from_str(server)?.connect().await?;
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// Runs `work` to its end on a thread with a runtime of its own: callable from a test with
/// or without a runtime, and from `Drop`.
fn block_on<T: Send>(work: impl Future<Output = T> + Send) -> T {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for a test statement")
                    .block_on(work)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// 64 bits that differ between schemas of one process and between processes: std's
/// randomly keyed hasher over a counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A TCP relay on a loopback port to a target (the PostgreSQL server) that a test can
/// [`cut`](Link::cut) and [`restore`](Link::restore): what a process connected through it
/// sees when the database server goes away and comes back, without stopping the real one
/// (which other tests share).
///
/// Cut, the port refuses connections and every relayed connection is shut down, as when
/// PostgreSQL stops. Dropping the link cuts it.
pub struct Link {
    target: SocketAddr,
    port: u16,
    /// Set while the link is cut; the accepting thread checks it after each accept.
    cut: Arc<AtomicBool>,
    /// Both ends of every relayed connection, to shut them down when the link is cut.
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Option<JoinHandle<()>>,
}

impl Link {
    /// A link on a free loopback port to `target`, relaying.
    ///
    /// # Errors
    /// If no port can be bound.
    pub fn to(target: SocketAddr) -> io::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut link = Link {
            target,
            port: listener.local_addr()?.port(),
            cut: Arc::new(AtomicBool::new(false)),
            open: Arc::default(),
            accepting: None,
        };
        link.accept_on(listener);
        Ok(link)
    }

    /// The loopback port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting (new connections are refused) and shuts down every relayed
    /// connection. Returns once the port is closed.
    pub fn cut(&mut self) {
        let Some(accepting) = self.accepting.take() else {
            return;
        };
        self.cut.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = accepting.join();
        for stream in self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port and relays new connections.
    ///
    /// # Errors
    /// If the port cannot be bound again.
    pub fn restore(&mut self) -> io::Result<()> {
        if self.accepting.is_some() {
            return Ok(());
        }
        // std sets SO_REUSEADDR, so the relayed connections just shut down do not hold the
        // port.
        let listener = TcpListener::bind(("127.0.0.1", self.port))?;
        self.cut.store(false, Ordering::SeqCst);
        self.accept_on(listener);
        Ok(())
    }

    fn accept_on(&mut self, listener: TcpListener) {
        let (target, cut, open) = (self.target, self.cut.clone(), self.open.clone());
        self.accepting = Some(thread::spawn(move || {
            for client in listener.incoming() {
                if cut.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                relay(client, server, &open);
            }
        }));
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies bytes both ways between `a` and `b` on two threads, and records both streams in
/// `open` so that a cut can shut them down.
fn relay(a: TcpStream, b: TcpStream, open: &Mutex<Vec<TcpStream>>) {
    let (Ok(a_reader), Ok(b_reader)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    {
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in [&a, &b] {
            if let Ok(clone) = stream.try_clone() {
                open.push(clone);
            }
        }
    }
    for (mut from, mut to) in [(a_reader, b), (b_reader, a)] {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}
