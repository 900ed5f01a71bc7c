//! The [`Store`](crate::Store) contract as one test suite that runs against any backend.
//!
//! The crate docs and each trait method state what a store promises; the [`cases`] here check
//! those promises through the public trait only, so every backend is held to the same rules
//! by the same assertions. Only what cannot be said without a backend's internals (SQLite's
//! WAL mode, what its files contain, surviving SIGKILL) stays in that backend's own tests.
//!
//! Enabled by the cargo feature `contract` (off by default: it pulls in a test runtime and
//! SHA-256 that no production build needs).
//!
//! # Running the suite against a backend
//!
//! A backend's test file gives [`store_contract_tests!`](crate::store_contract_tests) a
//! *factory*: an async function (or closure) returning `Option<D>`, where `D` is a
//! [`TestDatabase`]: one fresh, empty database per case, on which the case opens one or more
//! handles. The macro expands to one `#[test]` per case, named after it, each on its own
//! multi-threaded runtime with its own database, so cases run in parallel and in isolation.
//!
//! The SQLite backend does it in `crates/store/tests/contract_sqlite.rs` (a temporary file per
//! case, so that a second handle really is a second set of connections), with this in
//! `Cargo.toml` so that a plain `cargo test` enables the feature:
//!
//! ```toml
//! [dev-dependencies]
//! porter-store = { workspace = true, features = ["contract"] }
//! ```
//!
//! # The PostgreSQL backend
//!
//! `crates/store/tests/contract_postgres.rs` runs the same cases against the PostgreSQL server
//! named by the environment variable [`postgres::URL_VAR`]
//! (`PORTER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test`), each case in a schema
//! of its own ([`postgres::TestSchema`], dropped when the case ends, even by a panic). Without
//! the variable, every case passes without doing anything, and the test binary says so once
//! ([`postgres::SKIP_MESSAGE`]): `cargo test` still works on a machine without PostgreSQL.
//!
//! ```ignore
//! async fn postgres_schema() -> Option<porter_store::contract::postgres::TestSchema> {
//!     porter_store::contract::postgres::TestSchema::create()
//! }
//!
//! porter_store::store_contract_tests!(postgres_schema);
//! ```
//!
//! The same module has what PostgreSQL's own tests use (here and in the `porter` binary's
//! tests): a [`postgres::Link`] to the server that a test can cut, to see what a store (or a
//! running server) does when PostgreSQL goes away.
//!
//! # Adding a case
//!
//! Write it in [`cases`] as `pub async fn name<D: TestDatabase>(db: &D)` and add its name to
//! the list in [`store_contract_tests!`](crate::store_contract_tests); a unit test fails if a
//! case is missing from the list, so it cannot be written and then never run.

use std::future::Future;
use std::io::Write as _;
use std::sync::Once;

use crate::SharedStore;

pub mod cases;
pub mod postgres;

/// One fresh, empty database for one contract case.
///
/// The suite calls its factory once per case, then [`open`](Self::open) once or more: some
/// cases open a second handle, as the admin CLI does next to a running server, or close a
/// handle and open the database again to check that acknowledged writes were kept. Clean-up
/// (deleting a file, dropping a schema) belongs in the implementor's `Drop`.
pub trait TestDatabase {
    /// Opens a new handle on this case's database.
    ///
    /// Panics if it cannot: a case has nothing to check without a store, and the panic
    /// fails that case with the reason.
    ///
    /// The future need not be `Send` (the case awaits it in place): SQLite's opener is not
    /// provably `Send`, because sqlx's migrator trips rustc's "`Acquire` is not general
    /// enough" on `Send` checks.
    fn open(&self) -> impl Future<Output = SharedStore>;
}

/// Says that the calling backend's suite is skipped, and why, on the terminal.
///
/// For a factory about to return `None` (see the [module docs](self)). Written to the
/// process's standard error directly, because the test harness captures `eprintln!` of
/// passing tests; and once per test binary, not once per case.
pub fn skip(reason: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(std::io::stderr(), "{reason}");
    });
}

/// The runtime each case runs on; used by [`store_contract_tests!`](crate::store_contract_tests).
///
/// Multi-threaded with two workers, so that the concurrency cases really run their tasks in
/// parallel; the suite builds it so that a backend's test crate needs no tokio features.
#[doc(hidden)]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the store contract case")
}

/// Expands to one `#[test]` per contract case, each running the case from
/// [`contract::cases`](crate::contract::cases) against a fresh database from `$factory`.
///
/// `$factory` is an async function (or closure) taking nothing and returning
/// `Option<impl TestDatabase>`; `None` skips the case (see
/// [`contract::skip`](crate::contract::skip)). Invoke it once, at the top level of a test
/// file:
///
/// ```ignore
/// porter_store::store_contract_tests!(sqlite_database);
/// ```
#[macro_export]
macro_rules! store_contract_tests {
    (@cases ($factory:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::contract::runtime().block_on(async {
                    if let ::std::option::Option::Some(db) = ($factory)().await {
                        $crate::contract::cases::$case(&db).await;
                    }
                });
            }
        )*
    };
    ($factory:expr $(,)?) => {
        $crate::store_contract_tests!(@cases ($factory)
            // Every public function of `contract::cases`, one per line (a unit test checks).
            a_fresh_store_is_at_the_latest_schema_version
            names_are_remembered_updated_listed_and_forgotten
            ipv4_mapped_ipv6_address_is_the_same_machine_as_ipv4
            users_are_created_once_updated_and_listed_by_name
            removing_a_user_removes_their_sessions
            session_for_unknown_user_is_not_found
            reused_token_hash_is_session_exists
            session_resumes_until_it_expires_and_bumps_last_seen
            revoked_session_no_longer_resumes
            sessions_are_revoked_by_user_by_id_and_all_at_once
            purge_deletes_expired_and_revoked_sessions_and_keeps_live_ones
            hundred_concurrent_registrations_are_all_stored
            two_handles_writing_at_once_lose_nothing
            look_alike_user_names_are_refused_as_user_exists
            look_alike_names_from_two_addresses_are_name_taken
            operators_revocations_removals_and_kicks_are_recorded_in_order
            two_handles_registering_look_alikes_at_once_have_one_winner
            a_poll_racing_concurrent_operator_actions_misses_none
        );
    };
}

#[cfg(test)]
mod tests {
    /// The names of the `pub async fn`s in `cases.rs`, in order.
    fn case_functions() -> Vec<String> {
        include_str!("contract/cases.rs")
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("pub async fn "))
            .map(|rest| {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// The case names listed in the macro, in order.
    fn listed_cases() -> Vec<String> {
        let source = include_str!("contract.rs");
        let marker = "one per line (a unit test checks).";
        let start = source.find(marker).expect("the list's marker comment") + marker.len();
        source[start..]
            .lines()
            .map(str::trim)
            .skip_while(|line| line.is_empty())
            .take_while(|line| *line != ");")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_macro_runs_every_case() {
        let functions = case_functions();
        assert!(functions.len() >= 10, "found the cases: {functions:?}");
        assert_eq!(listed_cases(), functions);
    }
}
