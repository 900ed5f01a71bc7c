//! The contract cases: each is a test of one promise of [`Store`](crate::Store), written
//! against the trait only. They used to be the SQLite backend's own tests and keep their
//! assertions.
//!
//! Each case gets a fresh, empty database ([`TestDatabase`]) and panics on a broken promise;
//! [`store_contract_tests!`](crate::store_contract_tests) turns them into `#[test]`s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::TestDatabase;
use crate::{SESSION_ID_BYTES, SharedStore, StoreError, StoreErrorKind, TokenHash, session_id};

/// Bound on anything a broken backend could make a case wait for forever.
const TIMEOUT: Duration = Duration::from_secs(30);

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// A realistic token hash: the SHA-256 of `token`, as the server computes it.
fn hash_of(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

/// Opening a store brings its schema to the latest version this build knows.
pub async fn a_fresh_store_is_at_the_latest_schema_version<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    let latest = store.latest_schema_version();
    assert!(latest >= 1, "a backend has at least its first schema");
    assert_eq!(store.schema_version().await.unwrap(), Some(latest));
}

/// Names by address: an upsert that keeps `first_seen` and never moves `last_seen` back,
/// listed, looked up and forgotten
/// ([`Store::remember_name`](crate::Store::remember_name) and its neighbours).
pub async fn names_are_remembered_updated_listed_and_forgotten<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    let home = v4(192, 0, 2, 10);
    let six: IpAddr = "2001:db8::42".parse().unwrap();

    assert_eq!(store.name_for_addr(home).await.unwrap(), None);
    store.remember_name(home, "alice", 100).await.unwrap();
    store.remember_name(six, "bob", 200).await.unwrap();
    assert_eq!(
        store.name_for_addr(home).await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(
        store.name_for_addr(six).await.unwrap().as_deref(),
        Some("bob")
    );
    assert_eq!(
        store
            .name_for_addr(IpAddr::V6(Ipv6Addr::LOCALHOST))
            .await
            .unwrap(),
        None
    );

    // Renaming keeps first_seen and moves last_seen, never backwards.
    store.remember_name(home, "alicia", 300).await.unwrap();
    store.remember_name(home, "alicia", 250).await.unwrap();
    let names = store.list_names().await.unwrap();
    assert_eq!(names.len(), 2);
    let rec = names.iter().find(|n| n.addr == home).unwrap();
    assert_eq!(
        (rec.name.as_str(), rec.first_seen, rec.last_seen),
        ("alicia", 100, 300)
    );

    assert!(store.forget_name(six).await.unwrap());
    assert!(!store.forget_name(six).await.unwrap(), "already forgotten");
    assert_eq!(store.name_for_addr(six).await.unwrap(), None);
    assert_eq!(
        store.name_for_addr(home).await.unwrap().as_deref(),
        Some("alicia")
    );
}

/// An IPv4-mapped IPv6 address is stored, found, listed and forgotten as its IPv4 form.
pub async fn ipv4_mapped_ipv6_address_is_the_same_machine_as_ipv4<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    let plain = Ipv4Addr::new(203, 0, 113, 5);
    let mapped = IpAddr::V6(plain.to_ipv6_mapped());

    store.remember_name(mapped, "carol", 1).await.unwrap();
    assert_eq!(
        store
            .name_for_addr(IpAddr::V4(plain))
            .await
            .unwrap()
            .as_deref(),
        Some("carol")
    );
    let names = store.list_names().await.unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].addr, IpAddr::V4(plain), "stored in IPv4 form");
    assert!(store.forget_name(mapped).await.unwrap());
}

/// A name is created once ([`StoreErrorKind::UserExists`] after), lookups are exact
/// (case-sensitive), `set_password` moves `updated_at` only, and users are listed by name.
pub async fn users_are_created_once_updated_and_listed_by_name<D: TestDatabase>(db: &D) {
    let store = db.open().await;

    store
        .create_user("alice", "$argon2id$one", 10)
        .await
        .unwrap();
    let err = store
        .create_user("alice", "$argon2id$two", 11)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::UserExists, "{err:?}");
    store
        .create_user("Bob", "$argon2id$three", 12)
        .await
        .unwrap();

    let alice = store.user("alice").await.unwrap().unwrap();
    assert_eq!(
        alice.password_hash, "$argon2id$one",
        "duplicate did not overwrite"
    );
    assert_eq!((alice.created_at, alice.updated_at), (10, 10));
    assert_eq!(store.user("ALICE").await.unwrap(), None);

    assert!(
        store
            .set_password("alice", "$argon2id$new", 20)
            .await
            .unwrap()
    );
    let alice = store.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.password_hash, "$argon2id$new");
    assert_eq!((alice.created_at, alice.updated_at), (10, 20));
    assert!(!store.set_password("nobody", "$x", 20).await.unwrap());

    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["Bob", "alice"]);
}

/// [`Store::remove_user`](crate::Store::remove_user) takes the user's sessions with it, and
/// a new user with the old name inherits nothing.
pub async fn removing_a_user_removes_their_sessions<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    store.create_user("alice", "$h", 0).await.unwrap();
    store.create_user("bob", "$h", 0).await.unwrap();
    store
        .create_session(&[1; 32], "alice", 0, 100)
        .await
        .unwrap();
    store
        .create_session(&[2; 32], "alice", 0, 100)
        .await
        .unwrap();
    store.create_session(&[3; 32], "bob", 0, 100).await.unwrap();

    assert!(store.remove_user("alice").await.unwrap());
    assert!(
        !store.remove_user("alice").await.unwrap(),
        "already removed"
    );
    assert_eq!(store.user("alice").await.unwrap(), None);
    assert_eq!(store.resume_session(&[1; 32], 1).await.unwrap(), None);
    assert!(store.list_sessions(Some("alice")).await.unwrap().is_empty());
    let left = store.list_sessions(None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].user, "bob");

    // A new user with the old name does not inherit anything.
    store.create_user("alice", "$h2", 5).await.unwrap();
    assert_eq!(store.resume_session(&[2; 32], 6).await.unwrap(), None);
}

/// [`Store::create_session`](crate::Store::create_session) for a user that does not exist is
/// [`StoreErrorKind::NotFound`].
pub async fn session_for_unknown_user_is_not_found<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    let err = store
        .create_session(&[1; 32], "nobody", 0, 10)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err:?}");
}

/// A token hash stored twice is [`StoreErrorKind::SessionExists`]: a token was reused.
pub async fn reused_token_hash_is_session_exists<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    store.create_user("alice", "$hash", 0).await.unwrap();
    store
        .create_session(&[1; 32], "alice", 0, 10)
        .await
        .unwrap();
    let err = store
        .create_session(&[1; 32], "alice", 0, 10)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::SessionExists, "{err:?}");
}

/// A session resumes while `now < expires_at`, each resume bumps `last_seen`, failed ones
/// do not.
pub async fn session_resumes_until_it_expires_and_bumps_last_seen<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    store.create_user("alice", "$h", 0).await.unwrap();
    let hash = hash_of(b"token-1");
    store
        .create_session(&hash, "alice", 100, 110)
        .await
        .unwrap();

    let live = store.resume_session(&hash, 105).await.unwrap().unwrap();
    assert_eq!(live.user, "alice");
    assert_eq!(
        (live.created_at, live.expires_at, live.last_seen),
        (100, 110, 105)
    );
    let live = store.resume_session(&hash, 109).await.unwrap().unwrap();
    assert_eq!(live.last_seen, 109);

    assert_eq!(
        store.resume_session(&hash, 110).await.unwrap(),
        None,
        "expired at now == expires_at"
    );
    assert_eq!(store.resume_session(&hash, 1000).await.unwrap(), None);
    assert_eq!(
        store.resume_session(&hash_of(b"other"), 105).await.unwrap(),
        None
    );

    let listed = store.list_sessions(Some("alice")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].last_seen, 109,
        "failed resumes do not bump last_seen"
    );
    assert!(!listed[0].is_active(110));
}

/// A revoked session does not resume, and revoking it again changes nothing.
pub async fn revoked_session_no_longer_resumes<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    store.create_user("alice", "$h", 0).await.unwrap();
    let hash = hash_of(b"token-1");
    store.create_session(&hash, "alice", 0, 100).await.unwrap();

    assert!(store.revoke_session(&hash, 10).await.unwrap());
    assert!(
        !store.revoke_session(&hash, 11).await.unwrap(),
        "already revoked"
    );
    assert_eq!(store.resume_session(&hash, 12).await.unwrap(), None);
    let listed = store.list_sessions(None).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(10), "first revocation time kept");
}

/// Sessions listed oldest first with display ids, and revoked by user, by display id (in any
/// case of hex) and all at once; only live sessions count as revoked.
pub async fn sessions_are_revoked_by_user_by_id_and_all_at_once<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    for user in ["alice", "bob"] {
        store.create_user(user, "$h", 0).await.unwrap();
    }
    let a1 = hash_of(b"a1");
    let a2 = hash_of(b"a2");
    let a_old = hash_of(b"a-expired");
    let b1 = hash_of(b"b1");
    let b2 = hash_of(b"b2");
    store.create_session(&a1, "alice", 1, 100).await.unwrap();
    store.create_session(&a2, "alice", 2, 100).await.unwrap();
    store.create_session(&a_old, "alice", 0, 5).await.unwrap();
    store.create_session(&b1, "bob", 3, 100).await.unwrap();
    store.create_session(&b2, "bob", 4, 100).await.unwrap();

    let alice = store.list_sessions(Some("alice")).await.unwrap();
    let ids: Vec<&str> = alice.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [session_id(&a_old), session_id(&a1), session_id(&a2)],
        "oldest first"
    );
    assert!(alice.iter().all(|s| s.id.len() == SESSION_ID_BYTES * 2));
    assert_eq!(store.list_sessions(None).await.unwrap().len(), 5);
    assert!(store.list_sessions(Some("carol")).await.unwrap().is_empty());

    // Only live sessions count: the expired one is not "revoked" again.
    assert_eq!(store.revoke_user_sessions("alice", 10).await.unwrap(), 2);
    assert_eq!(store.revoke_user_sessions("alice", 11).await.unwrap(), 0);
    assert_eq!(store.revoke_user_sessions("carol", 11).await.unwrap(), 0);
    assert_eq!(store.resume_session(&a1, 12).await.unwrap(), None);
    assert!(
        store.resume_session(&b1, 12).await.unwrap().is_some(),
        "bob untouched"
    );

    assert_eq!(
        store
            .revoke_session_by_id(&session_id(&b1).to_uppercase(), 13)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .revoke_session_by_id(&session_id(&b1), 13)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.revoke_session_by_id("not-an-id", 13).await.unwrap(),
        0
    );
    assert_eq!(store.resume_session(&b1, 14).await.unwrap(), None);
    assert!(store.resume_session(&b2, 14).await.unwrap().is_some());

    assert_eq!(store.revoke_all_sessions(20).await.unwrap(), 1);
    assert!(
        store
            .list_sessions(None)
            .await
            .unwrap()
            .iter()
            .all(|s| !s.is_active(20))
    );
}

/// [`Store::purge_sessions`](crate::Store::purge_sessions) deletes expired (at
/// `expires_at <= now`) and revoked sessions, keeps live ones, and the deletion is visible
/// from another handle.
pub async fn purge_deletes_expired_and_revoked_sessions_and_keeps_live_ones<D: TestDatabase>(
    db: &D,
) {
    let store = db.open().await;
    for user in ["alice", "bob"] {
        store.create_user(user, "$h", 0).await.unwrap();
    }
    let live = hash_of(b"live");
    let live_bob = hash_of(b"live-bob");
    let expires_now = hash_of(b"expires-at-50");
    let expired = hash_of(b"expired-long-ago");
    let revoked = hash_of(b"revoked-but-unexpired");
    store.create_session(&live, "alice", 1, 51).await.unwrap();
    store
        .create_session(&live_bob, "bob", 2, 1000)
        .await
        .unwrap();
    store
        .create_session(&expires_now, "alice", 3, 50)
        .await
        .unwrap();
    store.create_session(&expired, "bob", 4, 10).await.unwrap();
    store
        .create_session(&revoked, "alice", 5, 1000)
        .await
        .unwrap();
    assert!(store.revoke_session(&revoked, 20).await.unwrap());

    // At 50: "expired at or before now" includes expires_at == now, as resume_session sees it.
    assert_eq!(store.purge_sessions(50).await.unwrap(), 3);
    let left: Vec<String> = store
        .list_sessions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [session_id(&live), session_id(&live_bob)]);
    assert!(store.resume_session(&live, 50).await.unwrap().is_some());
    assert_eq!(
        store.purge_sessions(50).await.unwrap(),
        0,
        "nothing left to purge"
    );

    // Durable: another handle on the database sees the deletion.
    let other = db.open().await;
    assert_eq!(other.list_sessions(None).await.unwrap().len(), 2);
    assert_eq!(
        other.purge_sessions(51).await.unwrap(),
        1,
        "alice's expires at 51"
    );
    assert_eq!(
        store.list_sessions(None).await.unwrap()[0].id,
        session_id(&live_bob)
    );
}

/// 100 tasks creating users and 100 remembering names, all at once on one store; all of it
/// is there when the database is opened again after `close`.
pub async fn hundred_concurrent_registrations_are_all_stored<D: TestDatabase>(db: &D) {
    let store: SharedStore = db.open().await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u8 {
        let users = store.clone();
        tasks.spawn(async move { users.create_user(&format!("user{i}"), "$h", 1).await });
        let store = store.clone();
        tasks.spawn(async move {
            store
                .remember_name(v4(10, 1, 0, i), &format!("n{i}"), 1)
                .await
        });
    }
    tokio::time::timeout(TIMEOUT, async {
        while let Some(done) = tasks.join_next().await {
            done.expect("task panicked").expect("write failed");
        }
    })
    .await
    .expect("writes timed out");
    store.close().await;

    let store = db.open().await;
    assert_eq!(store.list_users().await.unwrap().len(), 100);
    assert_eq!(store.list_names().await.unwrap().len(), 100);
    for i in 0..100u8 {
        assert_eq!(
            store.name_for_addr(v4(10, 1, 0, i)).await.unwrap(),
            Some(format!("n{i}"))
        );
    }
}

/// The server and the admin CLI each have their own handle (their own connections) on the
/// same database; writes from both at once are all kept (with SQLite, thanks to WAL and the
/// busy timeout).
pub async fn two_handles_writing_at_once_lose_nothing<D: TestDatabase>(db: &D) {
    let server = db.open().await;
    let admin = db.open().await;

    let write_many = |store: SharedStore, prefix: &'static str| async move {
        for i in 0..50u8 {
            store.create_user(&format!("{prefix}{i}"), "$h", 1).await?;
            store
                .remember_name(v4(10, 2, prefix.len() as u8, i), &format!("{prefix}{i}"), 1)
                .await?;
        }
        Ok::<_, StoreError>(())
    };
    let (a, b) = tokio::time::timeout(TIMEOUT, async {
        tokio::join!(
            write_many(server.clone(), "srv"),
            write_many(admin.clone(), "admin")
        )
    })
    .await
    .expect("writes timed out");
    a.unwrap();
    b.unwrap();

    assert_eq!(server.list_users().await.unwrap().len(), 100);
    assert_eq!(admin.list_names().await.unwrap().len(), 100);
}

/// Look-alikes of a user name cannot be created ([`StoreErrorKind::UserExists`]), whatever
/// makes them look alike: case, another script's letter, an invisible character, another
/// Unicode form of the same letter. Lookups stay exact, [`Store::look_alike_user`] names the
/// holder, and removing it frees the name.
///
/// [`Store::look_alike_user`]: crate::Store::look_alike_user
pub async fn look_alike_user_names_are_refused_as_user_exists<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    store.create_user("bob", "$h", 1).await.unwrap();
    store.create_user("Ren\u{e9}", "$h", 1).await.unwrap();
    let look_alikes = [
        ("Bob", "bob"),
        ("BOB", "bob"),
        ("b\u{43e}b", "bob"),         // Cyrillic о
        ("b\u{200b}ob", "bob"),       // zero-width space
        ("Rene\u{301}", "Ren\u{e9}"), // NFD of é
        ("REN\u{c9}", "Ren\u{e9}"),
    ];
    for (name, holder) in look_alikes {
        let err = store.create_user(name, "$h", 2).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::UserExists, "{name:?}: {err:?}");
        assert_eq!(
            store.user(name).await.unwrap(),
            None,
            "{name:?} is looked up exactly"
        );
        assert_eq!(
            store.look_alike_user(name).await.unwrap().as_deref(),
            Some(holder),
            "{name:?}"
        );
    }
    assert_eq!(store.look_alike_user("bob").await.unwrap(), None, "itself");
    assert_eq!(store.look_alike_user("rob").await.unwrap(), None, "free");
    assert_eq!(store.list_users().await.unwrap().len(), 2);

    assert!(store.remove_user("bob").await.unwrap());
    store.create_user("Bob", "$h", 3).await.unwrap();
    assert_eq!(
        store.look_alike_user("bob").await.unwrap().as_deref(),
        Some("Bob")
    );
}

/// Two addresses cannot hold look-alike names ([`StoreErrorKind::NameTaken`]); an address
/// may rename itself to a look-alike of its own name, keep its name on every visit, and its
/// name is free again once it is forgotten.
pub async fn look_alike_names_from_two_addresses_are_name_taken<D: TestDatabase>(db: &D) {
    let store = db.open().await;
    let one = v4(192, 0, 2, 1);
    let two = v4(192, 0, 2, 2);
    store.remember_name(one, "bob", 1).await.unwrap();
    for name in ["bob", "Bob", "b\u{43e}b", "b\u{2060}ob"] {
        let err = store.remember_name(two, name, 2).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::NameTaken, "{name:?}: {err:?}");
    }
    assert_eq!(
        store.name_for_addr(two).await.unwrap(),
        None,
        "nothing stored"
    );

    store.remember_name(one, "Bob", 3).await.unwrap();
    store.remember_name(one, "Bob", 4).await.unwrap();
    assert_eq!(
        store.name_for_addr(one).await.unwrap().as_deref(),
        Some("Bob")
    );
    store.remember_name(two, "rob", 5).await.unwrap();
    let err = store.remember_name(two, "BOB", 6).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NameTaken, "{err:?}");
    assert_eq!(
        store.name_for_addr(two).await.unwrap().as_deref(),
        Some("rob"),
        "a refused rename keeps the old name"
    );

    assert!(store.forget_name(one).await.unwrap());
    store.remember_name(two, "bob", 7).await.unwrap();
    // A user and an address are judged apart: the two tables are two namespaces.
    store.create_user("bob", "$h", 8).await.unwrap();
}

/// Operator actions ([`Store::operator_actions_since`](crate::Store::operator_actions_since)):
/// a revoked session, a removed user and a kick are each recorded once, in order, from the
/// cursor a server takes at start; a revocation that changes nothing records nothing.
pub async fn operators_revocations_removals_and_kicks_are_recorded_in_order<D: TestDatabase>(
    db: &D,
) {
    use crate::OperatorActionKind::{Kicked, Removed, Revoked};
    let store = db.open().await;
    store.create_user("alice", "$h", 0).await.unwrap();
    store.create_user("bob", "$h", 0).await.unwrap();
    let (a1, a2, b1) = (hash_of(b"a1"), hash_of(b"a2"), hash_of(b"b1"));
    for (hash, user) in [(&a1, "alice"), (&a2, "alice"), (&b1, "bob")] {
        store.create_session(hash, user, 0, 1000).await.unwrap();
    }
    let start = store.last_operator_action().await.unwrap();

    assert!(store.revoke_session(&a1, 10).await.unwrap());
    assert!(!store.revoke_session(&a1, 11).await.unwrap());
    store.kick("bob", Some("spam"), 12).await.unwrap();
    assert!(store.remove_user("bob").await.unwrap());
    assert_eq!(store.revoke_all_sessions(13).await.unwrap(), 1);

    let actions = store.operator_actions_since(start, 100).await.unwrap();
    let seen: Vec<_> = actions
        .iter()
        .map(|a| (a.kind, a.user.as_str(), a.session, a.reason.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Revoked, "alice", Some(a1), None),
            (Kicked, "bob", None, Some("spam")),
            (Removed, "bob", None, None),
            (Revoked, "alice", Some(a2), None),
        ]
    );
    assert!(actions.windows(2).all(|w| w[0].id < w[1].id), "{actions:?}");
    assert_eq!(actions[0].at, 10);
    assert_eq!(actions[1].at, 12);
    assert_eq!(store.last_operator_action().await.unwrap(), actions[3].id);
    let after_first = store
        .operator_actions_since(actions[0].id, 2)
        .await
        .unwrap();
    assert_eq!(after_first, actions[1..3]);

    // Purged by age; the cursor of a running server stays valid.
    assert_eq!(store.purge_operator_actions(12).await.unwrap(), 1);
    assert_eq!(
        store.operator_actions_since(start, 100).await.unwrap(),
        actions[1..]
    );
}

/// Two handles (two server instances on one database) registering look-alike names at the same
/// moment, many times over: each time exactly one wins, and the other gets the name's policy
/// error, [`StoreErrorKind::UserExists`] for users and [`StoreErrorKind::NameTaken`] for names
/// given from two addresses. The name stored is the winner's.
pub async fn two_handles_registering_look_alikes_at_once_have_one_winner<D: TestDatabase>(db: &D) {
    /// Enough rounds for the two writes to really meet in most of them.
    const ROUNDS: u8 = 40;
    let stores = [db.open().await, db.open().await];
    for round in 0..ROUNDS {
        // The same name in even rounds, look-alikes (by case) in odd ones.
        let names = [
            format!("racer{round}"),
            if round % 2 == 0 {
                format!("racer{round}")
            } else {
                format!("RACER{round}")
            },
        ];
        let users = race(&stores, |i, store| {
            let name = names[i].clone();
            async move { store.create_user(&name, "$h", 1).await }
        })
        .await;
        let winner = one_winner(&users, StoreErrorKind::UserExists, round);
        let stored = stores[0].user(&names[winner]).await.unwrap();
        assert!(
            stored.is_some(),
            "round {round}: the winner's name is stored"
        );
        let count = stores[1].list_users().await.unwrap().len();
        assert_eq!(count, usize::from(round) + 1, "round {round}");

        let addrs = [v4(10, 3, round, 1), v4(10, 3, round, 2)];
        let given = race(&stores, |i, store| {
            let name = names[i].clone();
            async move { store.remember_name(addrs[i], &name, 1).await }
        })
        .await;
        let winner = one_winner(&given, StoreErrorKind::NameTaken, round);
        assert_eq!(
            stores[1].name_for_addr(addrs[winner]).await.unwrap(),
            Some(names[winner].clone()),
            "round {round}"
        );
        assert_eq!(
            stores[0].name_for_addr(addrs[1 - winner]).await.unwrap(),
            None,
            "round {round}: the loser's address has no name"
        );
    }
}

/// Runs `write(i, stores[i])` for both `i` on two tasks released together by a barrier, and
/// returns both results in order.
async fn race<F, Fut>(stores: &[SharedStore; 2], write: F) -> [crate::Result<()>; 2]
where
    F: Fn(usize, SharedStore) -> Fut,
    Fut: std::future::Future<Output = crate::Result<()>> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(2));
    let [first, second] = [0, 1].map(|i| {
        let (write, start) = (write(i, stores[i].clone()), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            write.await
        })
    });
    let (first, second) = tokio::time::timeout(TIMEOUT, async { tokio::join!(first, second) })
        .await
        .expect("the racing writes timed out");
    [
        first.expect("a racing write panicked"),
        second.expect("a racing write panicked"),
    ]
}

/// The index of the one write of `results` that succeeded; the other must have failed with
/// `loser`.
#[track_caller]
fn one_winner(results: &[crate::Result<()>; 2], loser: StoreErrorKind, round: u8) -> usize {
    match results {
        [Ok(()), Err(err)] | [Err(err), Ok(())] => {
            assert_eq!(err.kind(), loser, "round {round}: {err:?}");
            usize::from(results[0].is_err())
        }
        _ => panic!("round {round}: not exactly one winner: {results:?}"),
    }
}

/// A server polling operator actions while two other handles record them (revocations and
/// kicks, at once) sees every one of them exactly once: no action becomes visible below the
/// cursor of a poll that has already passed it.
pub async fn a_poll_racing_concurrent_operator_actions_misses_none<D: TestDatabase>(db: &D) {
    /// Actions per writer.
    const EACH: usize = 60;
    let poller = db.open().await;
    let revoker = db.open().await;
    let kicker = db.open().await;
    for i in 0..EACH {
        revoker
            .create_user(&format!("u{i}"), "$h", 0)
            .await
            .unwrap();
        revoker
            .create_session(
                &hash_of(format!("s{i}").as_bytes()),
                &format!("u{i}"),
                0,
                100,
            )
            .await
            .unwrap();
    }
    let mut cursor = poller.last_operator_action().await.unwrap();

    let revoking = tokio::spawn(async move {
        for i in 0..EACH {
            let hash = hash_of(format!("s{i}").as_bytes());
            assert!(revoker.revoke_session(&hash, 10).await.unwrap());
        }
    });
    let kicking = tokio::spawn(async move {
        for i in 0..EACH {
            kicker.kick(&format!("k{i}"), None, 10).await.unwrap();
        }
    });
    let mut seen = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        loop {
            // Whether the writers were done *before* this poll: then it is the last one.
            let done = revoking.is_finished() && kicking.is_finished();
            // Small pages, so that the cursor moves often.
            loop {
                let page = poller.operator_actions_since(cursor, 7).await.unwrap();
                let Some(last) = page.last() else { break };
                cursor = last.id;
                seen.extend(page.into_iter().map(|action| action.user));
            }
            if done {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the writers timed out");
    revoking.await.expect("the revocations failed");
    kicking.await.expect("the kicks failed");

    seen.sort();
    let mut expected: Vec<String> = (0..EACH)
        .flat_map(|i| [format!("u{i}"), format!("k{i}")])
        .collect();
    expected.sort();
    assert_eq!(seen, expected, "every action once");
}
