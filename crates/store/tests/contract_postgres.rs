//! The store contract (`porter_store::contract`) against the PostgreSQL backend.
//!
//! The server is the one named by `PORTER_TEST_POSTGRES_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`); each case works in a schema of its own,
//! dropped when the case ends, so cases run in parallel and leave nothing behind. Without the
//! variable every case passes without doing anything, and the binary says so once.

use porter_store::contract::postgres::TestSchema;

/// The factory: a fresh schema per case, or `None` (skip) without a server.
async fn postgres_schema() -> Option<TestSchema> {
    TestSchema::create()
}

porter_store::store_contract_tests!(postgres_schema);
