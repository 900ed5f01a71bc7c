//! What only the PostgreSQL backend has to show, beyond the contract: a server that goes away
//! and comes back, several instances opening one database, and what the admin commands'
//! `open_existing` makes of a database without Porter's tables.
//!
//! Against the server named by `PORTER_TEST_POSTGRES_URL`, each test in a schema of its own;
//! without the variable each test passes without doing anything (the binary says so once).

use std::time::{Duration, Instant};

use porter_store::contract::postgres::{Link, TestSchema};
use porter_store::postgres::DEFAULT_ACQUIRE_TIMEOUT;
use porter_store::{SharedStore, StoreErrorKind};

/// Bound on anything a broken backend could make a test wait for forever.
const TIMEOUT: Duration = Duration::from_secs(30);

async fn open(url: &str) -> SharedStore {
    tokio::time::timeout(TIMEOUT, porter_store::open(url))
        .await
        .expect("open timed out")
        .expect("open failed")
}

/// While PostgreSQL cannot be reached, every call fails within the acquire timeout with
/// `Unavailable` (what the server turns into "try again later"); once it is back, the same
/// store works again without being reopened.
#[tokio::test]
async fn a_store_whose_postgres_goes_away_is_unavailable_then_reconnects() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let mut link = Link::to(schema.server_addr()).unwrap();
    let store = open(&schema.url_through(&link)).await;
    store.create_user("alice", "$h", 1).await.unwrap();

    link.cut();
    for _ in 0..2 {
        let started = Instant::now();
        let err = store.user("alice").await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
        assert!(
            started.elapsed() < DEFAULT_ACQUIRE_TIMEOUT + Duration::from_secs(2),
            "failed only after {:?}",
            started.elapsed()
        );
    }
    let err = store.create_user("bob", "$h", 2).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    assert_eq!(err.to_string(), "the database cannot be reached");

    link.restore().unwrap();
    assert!(store.user("alice").await.unwrap().is_some());
    store.create_user("bob", "$h", 3).await.unwrap();
    assert_eq!(store.list_users().await.unwrap().len(), 2);
}

/// Opening fails fast, with `Unavailable`, when nobody answers.
#[tokio::test]
async fn opening_a_postgres_that_is_down_is_unavailable() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let mut link = Link::to(schema.server_addr()).unwrap();
    link.cut();
    let started = Instant::now();
    let err = match porter_store::open(schema.url_through(&link)).await {
        Ok(_) => panic!("opened a database through a cut link"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    assert!(started.elapsed() < DEFAULT_ACQUIRE_TIMEOUT + Duration::from_secs(2));
}

/// Two instances starting at once on a fresh database both open it: one applies the
/// migrations, the other waits for it (sqlx's advisory lock) and finds them applied.
#[tokio::test]
async fn two_instances_opening_a_fresh_database_at_once_both_succeed() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let url = schema.url();
    let (a, b) = tokio::join!(open(&url), open(&url));
    for store in [a, b] {
        assert_eq!(
            store.schema_version().await.unwrap(),
            Some(store.latest_schema_version())
        );
    }
}

/// The admin commands open with `open_existing`: a database without Porter's tables is "no
/// database" (named without its password), and is left without them.
#[tokio::test]
async fn open_existing_refuses_a_database_without_porter_tables_and_creates_none() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let url = schema.url();
    let err = match porter_store::open_existing(&url).await {
        Ok(_) => panic!("an empty schema counted as Porter's database"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), StoreErrorKind::NoDatabase, "{err:?}");
    assert!(err.to_string().contains(schema.name()), "{err}");
    // Still nothing there: the server's open creates the tables, and then the admin's works.
    let err = porter_store::open_existing(&url).await.err().unwrap();
    assert_eq!(err.kind(), StoreErrorKind::NoDatabase, "{err:?}");
    open(&url)
        .await
        .create_user("alice", "$h", 1)
        .await
        .unwrap();
    let admin = porter_store::open_existing(&url).await.unwrap();
    assert_eq!(admin.list_users().await.unwrap().len(), 1);
}

/// A `search_path` naming a schema that does not exist is refused at open with a message
/// that says so, rather than with the first CREATE TABLE's.
#[tokio::test]
async fn a_search_path_without_an_existing_schema_is_refused_with_a_clear_message() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let missing = schema
        .url()
        .replace(schema.name(), "porter_test_missing_schema");
    let err = match porter_store::open(&missing).await {
        Ok(_) => panic!("opened a schema that does not exist"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), StoreErrorKind::Database, "{err:?}");
    assert!(
        err.to_string().contains("no schema of the search_path"),
        "{err}"
    );
}

/// Operator actions that overlap (revoking everyone's sessions, one user's, removing users,
/// kicking from two instances) from three instances at once all succeed: every statement that
/// records actions queues for the actions' lock before it locks anything else, so none waits
/// for what another holds while holding what that one waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_operator_actions_from_three_instances_never_deadlock() {
    /// Users, each with a few sessions, per round.
    const USERS: usize = 12;
    const ROUNDS: i64 = 24;
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let url = schema.url();
    let stores = [open(&url).await, open(&url).await, open(&url).await];
    for round in 0..ROUNDS {
        let now = round * 10;
        for user in 0..USERS {
            let name = format!("u{round}-{user}");
            stores[0].create_user(&name, "$h", now).await.unwrap();
            for session in 0..3u8 {
                let mut hash = [session; 32];
                hash[1..9].copy_from_slice(&now.to_be_bytes());
                hash[9] = user as u8;
                stores[0]
                    .create_session(&hash, &name, now, now + 1000)
                    .await
                    .unwrap();
            }
        }
        let all = stores[0].clone();
        let each = stores[1].clone();
        let remove = stores[2].clone();
        let [kick_a, kick_b] = [stores[0].clone(), stores[1].clone()];
        let (a, b, c, d, e) = tokio::time::timeout(TIMEOUT, async move {
            tokio::join!(
                tokio::spawn(async move { all.revoke_all_sessions(now + 1).await.map(drop) }),
                tokio::spawn(async move {
                    for user in 0..USERS {
                        kick_a
                            .kick(&format!("u{round}-{user}"), None, now + 1)
                            .await?;
                    }
                    Ok(())
                }),
                tokio::spawn(async move {
                    for user in 0..USERS {
                        kick_b
                            .kick(&format!("u{round}-{user}"), None, now + 1)
                            .await?;
                    }
                    Ok(())
                }),
                tokio::spawn(async move {
                    for user in (0..USERS).rev() {
                        each.revoke_user_sessions(&format!("u{round}-{user}"), now + 1)
                            .await?;
                    }
                    Ok(())
                }),
                tokio::spawn(async move {
                    for user in (0..USERS).step_by(3) {
                        remove.remove_user(&format!("u{round}-{user}")).await?;
                    }
                    Ok(())
                }),
            )
        })
        .await
        .expect("the revocations timed out");
        for result in [a, b, c, d, e] {
            result.unwrap().unwrap();
        }
    }
}
