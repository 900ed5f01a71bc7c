//! `auth: password`: users, Argon2id passwords and session tokens.
//!
//! The dialogue is PROTOCOL.md section 4: a valid token in `hello` skips the
//! password; otherwise the user name is asked, then the password of an
//! existing user, or a new password twice for a new one (when registration is
//! open). Success opens a session: a fresh token whose SHA-256 is stored
//! before the token is sent.
//!
//! What an attacker must not learn or get:
//! - Whether a name exists when registration is closed: an unknown user takes
//!   the existing-user path, verifying against a decoy hash so it costs the
//!   same time, with the same messages and texts.
//! - Unbounded guesses: [`Config::max_auth_attempts`] per connection, and
//!   failures throttled per address and per user ([`Throttle`]).
//! - Secrets in the log: passwords and tokens are never logged; sessions
//!   appear by their display id ([`porter_store::session_id`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use porter_store::{SharedStore, StoreErrorKind};
use porter_wire::{AuthMode, ErrorCode, ServerMessage};
use tokio::time::Instant;
use tracing::info;

use super::session::Sessions;
use super::{MAX_INVALID_ANSWERS, check_user_name, server_failed};
use crate::clock::Clock;
use crate::close::Reason;
use crate::config::{Config, Registration};
use crate::credentials::{PasswordHasher, check_password_policy};
use crate::error::Error;
use crate::handshake::{Authenticator, Dialog, Ended, Hello, Identity};
use crate::metrics::{self, Login, Throttled};
use crate::peer::PeerInfo;
use crate::throttle::Throttle;

/// The one text for a failed password, whether the password was wrong or the
/// user does not exist.
const BAD_CREDENTIALS_TEXT: &str = "wrong user name or password";

/// The text of `invalid_answer` for a new user name that looks like an
/// existing user's (`Bob` beside `bob`): names are unique on
/// `porter_store::name_key`. Only said while registration is open, when
/// taking the registration path already tells whether a name exists.
const NAME_TAKEN_TEXT: &str = "that name is taken";

/// The text of `rate_limited`.
const RATE_LIMITED_TEXT: &str = "too many failed attempts, try again later";

/// The `password` authenticator, shared by every connection of a server.
pub(crate) struct PasswordAuth {
    /// Users and sessions.
    store: SharedStore,
    /// "Now" for sessions.
    clock: Clock,
    /// Argon2id off the async threads, bounded; holds the decoy hash.
    hasher: PasswordHasher,
    /// Whether unknown users may register.
    registration: Registration,
    /// Accounts made per address, when limited
    /// (`Config::registrations_per_address`).
    registrations: Option<Throttle<IpAddr>>,
    /// Opens the session a login or registration earns, and closes it at
    /// `logout`.
    pub(super) sessions: Sessions,
    /// Password attempts per connection.
    max_attempts: u32,
    /// Failures by client address (IPv4-mapped addresses as IPv4).
    by_address: Throttle<IpAddr>,
    /// Failures by user name, existing or not (so that throttling, too,
    /// looks the same for both).
    by_user: Throttle<String>,
}

impl fmt::Debug for PasswordAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordAuth")
            .field("hasher", &self.hasher)
            .field("registration", &self.registration)
            .field("sessions", &self.sessions)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// What the server knows of the account a password is tried on.
enum Known {
    /// The user exists; this is their stored PHC hash.
    Hash(String),
    /// No such user (registration closed): verify against the decoy.
    Unknown,
}

impl PasswordAuth {
    /// Builds the authenticator; computing the decoy hash takes as long as
    /// one login, so it runs on a blocking thread.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for `hash_cost` when Argon2 refuses it.
    pub(crate) async fn build(store: SharedStore, config: &Config) -> Result<PasswordAuth, Error> {
        let cost = config.hash_cost;
        let concurrent = config.max_concurrent_hashes;
        let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cost, concurrent))
            .await
            .map_err(|err| Error::InvalidConfig {
                field: "hash_cost",
                reason: format!("computing the decoy hash failed: {err}"),
            })?
            .map_err(|err| Error::InvalidConfig {
                field: "hash_cost",
                reason: err.to_string(),
            })?;
        Ok(PasswordAuth {
            sessions: Sessions::new(store.clone(), config.clock.clone(), config.session_ttl),
            store,
            clock: config.clock.clone(),
            hasher,
            registration: config.registration,
            max_attempts: config.max_auth_attempts,
            by_address: Throttle::new(config.throttle_per_address),
            by_user: Throttle::new(config.throttle_per_user),
            registrations: config.registrations_per_address.map(Throttle::new),
        })
    }
}

impl Authenticator for PasswordAuth {
    fn mode(&self) -> AuthMode {
        AuthMode::Password
    }

    async fn authenticate<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: &PeerInfo,
        hello: Hello,
    ) -> Result<Identity, Ended> {
        let addr = peer.ip();
        let peer = peer.addr;
        if let Some(token) = hello.token {
            // A valid token is accepted even from a throttled address: it is
            // not a guess.
            if let Some(identity) = self.sessions.resume(dialog, peer, &token).await? {
                return Ok(identity);
            }
            // An invalid one counts like a failed password, and from a
            // refused address ends the connection at once.
            let now = Instant::now();
            if self.by_address.record_failure(&addr, now)
                || self.by_address.check(&addr, now).is_err()
            {
                return Err(rate_limited(dialog, peer, None));
            }
        }
        self.check_throttles(dialog, peer, addr, None)?;
        let name = self.ask_user(dialog, peer).await?;
        match self.store.user(&name).await {
            Ok(Some(user)) => {
                self.log_in(dialog, peer, addr, &name, Known::Hash(user.password_hash))
                    .await
            }
            Ok(None) if self.registration == Registration::Closed => {
                self.log_in(dialog, peer, addr, &name, Known::Unknown).await
            }
            Ok(None) => self.register(dialog, peer, addr, &name).await,
            Err(err) => Err(server_failed(dialog, peer, "user", &err)),
        }
    }
}

impl PasswordAuth {
    /// Asks for a user name until one passes the policy (and, while
    /// registration is open, is not a look-alike of another user's), a
    /// bounded number of times.
    async fn ask_user<D: Dialog>(&self, dialog: &mut D, peer: SocketAddr) -> Result<String, Ended> {
        for _ in 0..MAX_INVALID_ANSWERS {
            let answer = dialog.ask("user", "User name:", false).await?;
            let why = match check_user_name(answer.expose()) {
                Ok(name) if self.registration == Registration::Closed => return Ok(name),
                Ok(name) => match self.store.look_alike_user(&name).await {
                    Ok(None) => return Ok(name),
                    Ok(Some(_)) => NAME_TAKEN_TEXT.to_owned(),
                    Err(err) => return Err(server_failed(dialog, peer, "look_alike_user", &err)),
                },
                Err(why) => why.to_string(),
            };
            info!(peer = %peer, reason = %why, "user name refused");
            dialog.send(&ServerMessage::error(ErrorCode::InvalidAnswer, why))?;
        }
        Err(too_many_invalid_answers(dialog, peer, None))
    }

    /// The existing-user path (also taken by unknown users when registration
    /// is closed): the password is asked up to `max_attempts` times.
    async fn log_in<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        addr: IpAddr,
        name: &str,
        known: Known,
    ) -> Result<Identity, Ended> {
        self.check_throttles(dialog, peer, addr, Some(name))?;
        let user = name.to_owned();
        for attempt in 1..=self.max_attempts {
            let password = dialog.ask("password", "Password:", true).await?;
            // Reserved right before the verification, so that attempts
            // parked at the prompt cannot all be verified at once, nor one
            // succeed while the address or the user is refused.
            let Ok((by_address, by_user)) =
                Throttle::reserve_both(&self.by_address, &addr, &self.by_user, &user).await
            else {
                return Err(rate_limited(dialog, peer, Some(name)));
            };
            let verified = match &known {
                Known::Hash(hash) => self.hasher.verify(password.expose(), hash).await,
                Known::Unknown => self.hasher.verify_decoy(password.expose()).await,
            };
            drop(password);
            match verified {
                Ok(true) => {
                    // A user's count is cleared by success, an address's
                    // only loses this attempt: an attacker could otherwise
                    // launder an address by logging in to an account of
                    // their own.
                    by_address.succeed();
                    by_user.succeed();
                    self.by_user.record_success(&user);
                    metrics::login(Login::Ok);
                    return self
                        .sessions
                        .open(dialog, peer, name, "login ok", "Welcome back")
                        .await;
                }
                Ok(false) => {}
                Err(err) => {
                    // Not the client's failure.
                    by_address.succeed();
                    by_user.succeed();
                    return Err(server_failed(dialog, peer, "verify", &err));
                }
            }
            let (result, outcome) = match known {
                Known::Hash(_) => ("bad password", Login::BadPassword),
                // For the log and the operator's graphs only: the client is
                // told exactly what a wrong password gets.
                Known::Unknown => ("unknown user", Login::UnknownUser),
            };
            metrics::login(outcome);
            info!(peer = %peer, user = %name, attempt, result, "authentication");
            // Both are counted, whichever refuses first.
            let address_refused = by_address.fail();
            let user_refused = by_user.fail();
            if address_refused || user_refused {
                return Err(rate_limited(dialog, peer, Some(name)));
            }
            dialog.send(&ServerMessage::error(
                ErrorCode::BadCredentials,
                BAD_CREDENTIALS_TEXT,
            ))?;
        }
        info!(peer = %peer, user = %name, result = "too many attempts", "authentication");
        dialog.send(&ServerMessage::Bye {
            text: "too many failed attempts".into(),
        })?;
        Err(Reason::Refused("too many failed attempts"))
    }

    /// The new-user path: a password asked twice, checked, hashed, stored.
    async fn register<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        addr: IpAddr,
        name: &str,
    ) -> Result<Identity, Ended> {
        for _ in 0..MAX_INVALID_ANSWERS {
            let first = dialog
                .ask("new_password", "New password (8 to 128 characters):", true)
                .await?;
            if let Err(why) = check_password_policy(first.expose()) {
                info!(peer = %peer, user = %name, reason = %why, "new password refused");
                dialog.send(&ServerMessage::error(
                    ErrorCode::InvalidAnswer,
                    why.to_string(),
                ))?;
                continue;
            }
            let second = dialog
                .ask("repeat_password", "Repeat the password:", true)
                .await?;
            if first.expose() != second.expose() {
                info!(peer = %peer, user = %name, reason = "passwords differ",
                    "new password refused");
                dialog.send(&ServerMessage::error(
                    ErrorCode::InvalidAnswer,
                    "the passwords differ",
                ))?;
                continue;
            }
            drop(second);
            // Counted before the hash is spent, so that registrations parked
            // at the prompt cannot all go through at once.
            let registration = match &self.registrations {
                None => None,
                Some(throttle) => match throttle.reserve(&addr).await {
                    Ok(attempt) => Some(attempt),
                    Err(_) => {
                        info!(peer = %peer, user = %name, result = "too many registrations",
                            "authentication");
                        metrics::throttled(Throttled::Registration);
                        let _ = dialog.send(&ServerMessage::error(
                            ErrorCode::RateLimited,
                            "too many new accounts from your address, try again later",
                        ));
                        return Err(Reason::Refused("too many registrations"));
                    }
                },
            };
            let hash = match self.hasher.hash(first.expose()).await {
                Ok(hash) => hash,
                Err(err) => {
                    // No account made: not counted.
                    if let Some(registration) = registration {
                        registration.succeed();
                    }
                    return Err(server_failed(dialog, peer, "hash", &err));
                }
            };
            drop(first);
            return match self.store.create_user(name, &hash, self.clock.now()).await {
                Ok(()) => {
                    // An account made: it counts against the address (the
                    // throttle calls a counted attempt a failure).
                    if let Some(registration) = registration {
                        registration.fail();
                    }
                    metrics::login(Login::Registered);
                    self.sessions
                        .open(dialog, peer, name, "registered", "Welcome")
                        .await
                }
                Err(err) if err.kind() == StoreErrorKind::UserExists => {
                    // No account made here: not counted, and not held
                    // through the login that follows.
                    if let Some(registration) = registration {
                        registration.succeed();
                    }
                    // Someone registered the name between our lookup and our
                    // write: it is an existing user now, whose password is
                    // asked like anyone's.
                    info!(peer = %peer, user = %name, "registration lost a race, asking the password");
                    match self.store.user(name).await {
                        Ok(Some(user)) => {
                            self.log_in(dialog, peer, addr, name, Known::Hash(user.password_hash))
                                .await
                        }
                        // A look-alike was registered meanwhile (or the name
                        // was, and was removed again): not to be had now.
                        Ok(None) => Err(name_taken(dialog, peer, name)),
                        Err(err) => Err(server_failed(dialog, peer, "user", &err)),
                    }
                }
                Err(err) => Err(server_failed(dialog, peer, "create_user", &err)),
            };
        }
        Err(too_many_invalid_answers(dialog, peer, Some(name)))
    }

    /// `rate_limited` and the end of the handshake if the address (or the
    /// user, once known) is being throttled.
    fn check_throttles<D: Dialog>(
        &self,
        dialog: &mut D,
        peer: SocketAddr,
        addr: IpAddr,
        name: Option<&str>,
    ) -> Result<(), Ended> {
        let now = Instant::now();
        let address_refused = self.by_address.check(&addr, now).is_err();
        let user_refused = name.is_some_and(|n| self.by_user.check(&n.to_owned(), now).is_err());
        if address_refused || user_refused {
            return Err(rate_limited(dialog, peer, name));
        }
        Ok(())
    }
}

/// Tells the client it is throttled and ends the handshake.
fn rate_limited<D: Dialog>(dialog: &mut D, peer: SocketAddr, name: Option<&str>) -> Ended {
    info!(peer = %peer, user = %name.unwrap_or("-"), result = "rate limited", "authentication");
    metrics::throttled(Throttled::Login);
    let _ = dialog.send(&ServerMessage::error(
        ErrorCode::RateLimited,
        RATE_LIMITED_TEXT,
    ));
    Reason::Refused("rate limited")
}

/// Refuses a registration whose name turned out taken by a look-alike after
/// its password was asked, and ends the handshake.
fn name_taken<D: Dialog>(dialog: &mut D, peer: SocketAddr, name: &str) -> Ended {
    info!(peer = %peer, user = %name, result = "name taken", "authentication");
    let _ = dialog.send(&ServerMessage::error(
        ErrorCode::InvalidAnswer,
        NAME_TAKEN_TEXT,
    ));
    let _ = dialog.send(&ServerMessage::Bye {
        text: NAME_TAKEN_TEXT.into(),
    });
    Reason::Refused("name taken")
}

/// Says `bye` to a client that keeps giving answers the policy refuses.
fn too_many_invalid_answers<D: Dialog>(
    dialog: &mut D,
    peer: SocketAddr,
    name: Option<&str>,
) -> Ended {
    info!(peer = %peer, user = %name.unwrap_or("-"), result = "too many invalid answers",
        "authentication");
    let _ = dialog.send(&ServerMessage::Bye {
        text: "too many invalid answers".into(),
    });
    Reason::Refused("too many invalid answers")
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use porter_store::SqliteStore;

    use super::*;
    use crate::auth::session::greeting;
    use crate::credentials::HashCost;
    use porter_wire::Secret;

    /// A client whose answers are written in advance. It can register a
    /// competing account just before it answers `repeat_password`, as a
    /// concurrent connection would.
    struct Scripted {
        store: SharedStore,
        answers: VecDeque<&'static str>,
        asked: Vec<String>,
        sent: Vec<ServerMessage>,
        racer: Option<String>,
    }

    impl Dialog for Scripted {
        fn send(&mut self, message: &ServerMessage) -> Result<(), Ended> {
            self.sent.push(message.clone());
            Ok(())
        }

        async fn ask(&mut self, id: &str, _text: &str, _secret: bool) -> Result<Secret, Ended> {
            self.asked.push(id.to_owned());
            if id == "repeat_password"
                && let Some(hash) = self.racer.take()
            {
                self.store.create_user("ada", &hash, 0).await.unwrap();
            }
            self.answers
                .pop_front()
                .map(Secret::from)
                .ok_or(Reason::Eof)
        }
    }

    async fn setup() -> (SharedStore, PasswordAuth) {
        let store = SqliteStore::open_in_memory().await.unwrap().shared();
        let config = Config {
            auth: AuthMode::Password,
            store: Some(store.clone()),
            hash_cost: HashCost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Config::default()
        };
        let auth = PasswordAuth::build(store.clone(), &config).await.unwrap();
        (store, auth)
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[tokio::test]
    async fn a_registration_that_loses_the_race_for_its_name_asks_the_password() {
        let (store, auth) = setup().await;
        let racer = auth.hasher.hash("racer's password").await.unwrap();
        let mut dialog = Scripted {
            store: store.clone(),
            answers: ["ada", "my password", "my password", "racer's password"].into(),
            asked: Vec::new(),
            sent: Vec::new(),
            racer: Some(racer),
        };
        let identity = auth
            .authenticate(&mut dialog, &PeerInfo::new(peer()), Hello::default())
            .await
            .unwrap();
        assert_eq!(
            dialog.asked,
            ["user", "new_password", "repeat_password", "password"]
        );
        assert_eq!(identity.user, "ada");
        assert!(identity.session.is_some());
        assert!(matches!(&dialog.sent[0], ServerMessage::Session { user, .. } if user == "ada"));
        assert_eq!(dialog.sent[1], greeting("Welcome back", "ada"));
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    }

    /// Issue 9: `Bob` cannot register beside `bob`; the name is asked again.
    #[tokio::test]
    async fn a_look_alike_of_an_existing_user_is_refused_as_taken_and_asked_again() {
        let (store, auth) = setup().await;
        store.create_user("bob", "$h", 0).await.unwrap();
        let mut dialog = Scripted {
            store: store.clone(),
            answers: ["Bob", "b\u{43e}b", "rob", "my password", "my password"].into(),
            asked: Vec::new(),
            sent: Vec::new(),
            racer: None,
        };
        let identity = auth
            .authenticate(&mut dialog, &PeerInfo::new(peer()), Hello::default())
            .await
            .unwrap();
        assert_eq!(identity.user, "rob");
        assert_eq!(
            dialog.asked,
            ["user", "user", "user", "new_password", "repeat_password"]
        );
        let taken = ServerMessage::error(ErrorCode::InvalidAnswer, NAME_TAKEN_TEXT);
        assert_eq!(dialog.sent[..2], [taken.clone(), taken]);
        assert_eq!(store.list_users().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_failing_store_ends_the_handshake_with_a_server_error_bye() {
        let (store, auth) = setup().await;
        store.close().await;
        let mut dialog = Scripted {
            store,
            answers: ["ada"].into(),
            asked: Vec::new(),
            sent: Vec::new(),
            racer: None,
        };
        let ended = auth
            .authenticate(&mut dialog, &PeerInfo::new(peer()), Hello::default())
            .await
            .unwrap_err();
        assert_eq!(ended, Reason::ServerError);
        assert_eq!(
            dialog.sent,
            [ServerMessage::Bye {
                text: "server error, try again later".into()
            }]
        );
    }
}
