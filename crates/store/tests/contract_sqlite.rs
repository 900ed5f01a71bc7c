//! The store contract (`porter_store::contract`) against the SQLite backend.
//!
//! Each case gets its own database file in its own `TempDir`, opened through
//! `porter_store::open` as the server and the CLI open it. A file rather than `:memory:`, so
//! that the cases that open a second handle get a second set of connections on the same
//! database, as the admin CLI does next to a running server.

use std::path::PathBuf;
use std::time::Duration;

use porter_store::SharedStore;
use porter_store::contract::TestDatabase;
use tempfile::TempDir;

/// Bound on an open that a broken backend could make wait forever.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One case's database file; the folder goes when the case ends.
struct SqliteDatabase {
    path: PathBuf,
    _dir: TempDir,
}

impl TestDatabase for SqliteDatabase {
    async fn open(&self) -> SharedStore {
        tokio::time::timeout(TIMEOUT, porter_store::open(&self.path))
            .await
            .expect("open timed out")
            .expect("open failed")
    }
}

/// The factory: SQLite needs no server, so it never skips.
async fn sqlite_file() -> Option<SqliteDatabase> {
    let dir = TempDir::new().expect("a temporary folder");
    Some(SqliteDatabase {
        path: dir.path().join("porter.db"),
        _dir: dir,
    })
}

porter_store::store_contract_tests!(sqlite_file);
