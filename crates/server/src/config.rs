//! What a server can be told: the service it runs, how clients are
//! identified, and every limit, each a named default that a flag can change.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use porter_store::SharedStore;
use porter_wire::{AuthMode, ServiceKind};

use crate::clock::Clock;
use crate::credentials::{self, HashCost};
use crate::room::jetstream::BusConfig;
use crate::throttle::ThrottlePolicy;
use crate::tls::TlsIdentity;

/// Connections served at once. Beyond it a newcomer gets `welcome` then
/// `error{busy}` and is closed, so a flood cannot exhaust file descriptors
/// or memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Time from accept to `ready`. A client that stalls in the handshake holds a
/// connection slot; this bounds how long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest frame payload accepted (the protocol's server default).
pub const DEFAULT_MAX_FRAME_LEN: usize = porter_wire::DEFAULT_MAX_FRAME_LEN;

/// Smallest `max_frame_len` accepted: below it not even our own `welcome`
/// would fit reliably.
pub const MIN_MAX_FRAME_LEN: usize = 256;

/// Largest `max_frame_len` (and `pre_login_max_frame_len`) accepted: below
/// 16 MiB, so that the first byte of every frame a client sends is `0x00`
/// (PROTOCOL.md section 1). That byte is how a person with telnet or nc is
/// told from a framed client on the same port (line mode, docs/PROTOCOL.md
/// section 9).
pub const MAX_MAX_FRAME_LEN: usize = (1 << 24) - 1;

/// Handshakes in progress at once, as sshd's `MaxStartups`: beyond half of
/// it newcomers are dropped at random, more often as it fills. Strangers
/// who never finish logging in cannot take every slot.
pub const DEFAULT_MAX_STARTUPS: usize = 256;

/// Connections from one address at once: one machine cannot hold the
/// server. Generous, for people behind one NAT; 0 turns it off.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 128;

/// Live connections of one user at once: one account cannot hold every
/// slot by resuming its token over and over. 0 turns it off.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 32;

/// Bytes the system may buffer on the way out to one client (`SO_SNDBUF`;
/// Linux doubles it for its bookkeeping). Without a bound the kernel grows
/// it to megabytes for a client that does not read, long before the
/// outgoing queue notices; 64 KiB keeps a busy client fed. 0 leaves the
/// system's autotuning.
pub const DEFAULT_SEND_BUFFER: usize = 64 * 1024;

/// Connections per address per minute whose comings and goings are logged
/// one by one; past it they are counted and summarised, so a connection
/// flood cannot grow the log without bound. 0 logs every one.
pub const DEFAULT_LOGGED_CONNECTIONS_PER_MINUTE: u32 = 30;

/// How long a ready client may send nothing (not even a keep-alive) before
/// it is closed: generous for people, and the end of a squatter that logs
/// in and holds its slot idle. Zero turns it off.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How long a frame may take to arrive once its first byte has: a client
/// that dribbles a frame a byte at a time holds its slot this long at most.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames waiting to be written to one client. A client that does not read
/// fills it and is disconnected, so memory per client stays bounded and a
/// slow reader never holds up the others.
pub const DEFAULT_OUTGOING_QUEUE: usize = 1024;

/// How long shutdown waits for `bye` (and whatever was queued before it) to
/// reach the clients before it closes everything regardless.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Largest frame payload accepted before `ready`. Until a client has logged
/// in it has no business sending more than a name or a password, so, as
/// Redis does before `AUTH`, a stranger cannot make the server buffer much.
pub const DEFAULT_PRE_LOGIN_MAX_FRAME_LEN: usize = 4096;

/// How long a session token logs its user in without a password.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Longest session lifetime accepted: ten years. Beyond it the expiry date
/// stops meaning anything and could overflow the calendar arithmetic.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

/// Password attempts per connection, as sshd's `MaxAuthTries`: after them
/// the server says `bye` and closes.
pub const DEFAULT_MAX_AUTH_ATTEMPTS: u32 = 3;

/// Hashes (Argon2id) running at once; see
/// [`credentials::DEFAULT_MAX_CONCURRENT_HASHES`].
pub const DEFAULT_MAX_CONCURRENT_HASHES: usize = credentials::DEFAULT_MAX_CONCURRENT_HASHES;

/// Room lines a newcomer to the chat is sent on joining: enough to pick up
/// the thread of a conversation, few enough to read at a glance.
pub const DEFAULT_HISTORY: usize = 20;

/// The server name sent in `welcome`.
pub fn default_server_name() -> String {
    format!("porter/{}", env!("CARGO_PKG_VERSION"))
}

/// Whether `--auth password` lets unknown users register themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// An unknown user name is offered an account (asked a new password).
    #[default]
    Open,
    /// Only existing users log in. An unknown name takes exactly the path of
    /// a wrong password, so no one learns which names exist.
    Closed,
}

impl Registration {
    /// Both modes, in the order the command line lists them.
    pub const ALL: [Registration; 2] = [Registration::Open, Registration::Closed];

    /// The name used on the command line and in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Closed => "closed",
        }
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registration mode that is neither `open` nor `closed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown registration mode {0:?}: expected \"open\" or \"closed\"")]
pub struct ParseRegistrationError(pub String);

impl FromStr for Registration {
    type Err = ParseRegistrationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Registration::Open),
            "closed" => Ok(Registration::Closed),
            _ => Err(ParseRegistrationError(s.to_owned())),
        }
    }
}

/// Everything [`crate::run`] needs besides the listener.
#[derive(Clone)]
pub struct Config {
    /// The service after `ready`.
    pub service: ServiceKind,
    /// How clients are identified; [`AuthMode::Password`] by default.
    pub auth: AuthMode,
    /// Names by address, users and sessions. Required for
    /// [`AuthMode::Ip`] and [`AuthMode::Password`].
    pub store: Option<SharedStore>,
    /// Whether unknown users may register (`password` mode).
    pub registration: Registration,
    /// Lifetime of a new session; see [`DEFAULT_SESSION_TTL`]. Zero gives
    /// sessions that are expired at once (useful in tests only).
    pub session_ttl: Duration,
    /// See [`DEFAULT_MAX_AUTH_ATTEMPTS`].
    pub max_auth_attempts: u32,
    /// See [`DEFAULT_PRE_LOGIN_MAX_FRAME_LEN`]. When larger than
    /// `max_frame_len`, `max_frame_len` applies.
    pub pre_login_max_frame_len: usize,
    /// Argon2id cost of new password hashes; OWASP's minimum by default.
    pub hash_cost: HashCost,
    /// See [`DEFAULT_MAX_CONCURRENT_HASHES`].
    pub max_concurrent_hashes: usize,
    /// Failed logins counted per client address;
    /// [`ThrottlePolicy::PER_ADDRESS`] by default.
    pub throttle_per_address: ThrottlePolicy,
    /// Failed logins counted per user name; [`ThrottlePolicy::PER_USER`] by
    /// default.
    pub throttle_per_user: ThrottlePolicy,
    /// New accounts per client address (`password` mode, open
    /// registration); [`ThrottlePolicy::REGISTRATIONS`] by default, `None`
    /// for no limit.
    pub registrations_per_address: Option<ThrottlePolicy>,
    /// "Now" for sessions and names; the system clock by default.
    pub clock: Clock,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_MAX_STARTUPS`]; at most `max_connections` applies.
    pub max_startups: usize,
    /// See [`DEFAULT_MAX_PER_ADDRESS`]; zero for no cap.
    pub max_per_address: usize,
    /// See [`DEFAULT_MAX_SESSIONS_PER_USER`]; zero for no cap.
    pub max_sessions_per_user: usize,
    /// See [`DEFAULT_SEND_BUFFER`]; zero for the system's default.
    pub send_buffer: usize,
    /// See [`DEFAULT_LOGGED_CONNECTIONS_PER_MINUTE`]; zero for every one.
    pub logged_connections_per_minute: u32,
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`]; zero for none.
    pub idle_timeout: Duration,
    /// See [`DEFAULT_FRAME_TIMEOUT`].
    pub frame_timeout: Duration,
    /// Largest frame payload accepted and sent; see [`DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: usize,
    /// See [`DEFAULT_OUTGOING_QUEUE`].
    pub outgoing_queue: usize,
    /// See [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// Sent in `welcome`.
    pub server_name: String,
    /// Chat only: tell the others when someone joins or leaves (the 1.1
    /// `event` message). On by default.
    pub events: bool,
    /// Chat only: room lines a newcomer is sent on joining, marked as
    /// history; see [`DEFAULT_HISTORY`]. At most `outgoing_queue`.
    pub history: usize,
    /// Serve over TLS with this identity; `None` (the default) for clear
    /// text. The TLS handshake runs in each connection's task, under
    /// `handshake_timeout`.
    pub tls: Option<TlsIdentity>,
    /// Chat only: the room on NATS JetStream, shared by every instance
    /// with the same bus; `None` (the default) for the in-process room.
    pub bus: Option<BusConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service: ServiceKind::default(),
            auth: AuthMode::Password,
            store: None,
            registration: Registration::default(),
            session_ttl: DEFAULT_SESSION_TTL,
            max_auth_attempts: DEFAULT_MAX_AUTH_ATTEMPTS,
            pre_login_max_frame_len: DEFAULT_PRE_LOGIN_MAX_FRAME_LEN,
            hash_cost: HashCost::default(),
            max_concurrent_hashes: DEFAULT_MAX_CONCURRENT_HASHES,
            throttle_per_address: ThrottlePolicy::PER_ADDRESS,
            throttle_per_user: ThrottlePolicy::PER_USER,
            registrations_per_address: Some(ThrottlePolicy::REGISTRATIONS),
            clock: Clock::system(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_startups: DEFAULT_MAX_STARTUPS,
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            send_buffer: DEFAULT_SEND_BUFFER,
            logged_connections_per_minute: DEFAULT_LOGGED_CONNECTIONS_PER_MINUTE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            outgoing_queue: DEFAULT_OUTGOING_QUEUE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            server_name: default_server_name(),
            events: true,
            history: DEFAULT_HISTORY,
            tls: None,
            bus: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("service", &self.service)
            .field("auth", &self.auth)
            .field("store", &self.store.as_ref().map(|_| "<store>"))
            .field("registration", &self.registration)
            .field("session_ttl", &self.session_ttl)
            .field("max_auth_attempts", &self.max_auth_attempts)
            .field("pre_login_max_frame_len", &self.pre_login_max_frame_len)
            .field("hash_cost", &self.hash_cost)
            .field("max_concurrent_hashes", &self.max_concurrent_hashes)
            .field("throttle_per_address", &self.throttle_per_address)
            .field("throttle_per_user", &self.throttle_per_user)
            .field("registrations_per_address", &self.registrations_per_address)
            .field("clock", &self.clock)
            .field("max_connections", &self.max_connections)
            .field("max_startups", &self.max_startups)
            .field("max_per_address", &self.max_per_address)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("send_buffer", &self.send_buffer)
            .field(
                "logged_connections_per_minute",
                &self.logged_connections_per_minute,
            )
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("frame_timeout", &self.frame_timeout)
            .field("max_frame_len", &self.max_frame_len)
            .field("outgoing_queue", &self.outgoing_queue)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("server_name", &self.server_name)
            .field("events", &self.events)
            .field("history", &self.history)
            .field("tls", &self.tls)
            .field("bus", &self.bus)
            .finish()
    }
}

impl Config {
    /// The frame limit before `ready`: the smaller of the two limits.
    pub fn effective_pre_login_max_frame_len(&self) -> usize {
        self.pre_login_max_frame_len.min(self.max_frame_len)
    }

    /// Checks the limits that would make a server unusable or panic, and
    /// that the auth mode has what it needs.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming the field (`store` when the
    /// `ip` or `password` mode has no store).
    pub fn validate(&self) -> Result<(), crate::Error> {
        let invalid = |field: &'static str, reason: String| {
            Err(crate::Error::InvalidConfig { field, reason })
        };
        if self.auth != AuthMode::None && self.store.is_none() {
            return invalid("store", format!("is required for auth {}", self.auth));
        }
        if self.pre_login_max_frame_len < MIN_MAX_FRAME_LEN {
            return invalid(
                "pre_login_max_frame_len",
                format!("must be at least {MIN_MAX_FRAME_LEN} bytes"),
            );
        }
        if self.max_auth_attempts == 0 {
            return invalid("max_auth_attempts", "must be at least 1".into());
        }
        if self.max_concurrent_hashes == 0 {
            return invalid("max_concurrent_hashes", "must be at least 1".into());
        }
        if self.session_ttl > MAX_SESSION_TTL {
            return invalid(
                "session_ttl",
                format!(
                    "must be at most {} days",
                    MAX_SESSION_TTL.as_secs() / 86_400
                ),
            );
        }
        let HashCost {
            memory_kib,
            iterations,
            parallelism,
        } = self.hash_cost;
        if let Err(err) = argon2::Params::new(memory_kib, iterations, parallelism, None) {
            return invalid("hash_cost", format!("is out of Argon2's range: {err}"));
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1".into());
        }
        if self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return invalid(
                "max_connections",
                format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
            );
        }
        if self.max_startups == 0 {
            return invalid("max_startups", "must be at least 1".into());
        }
        if self.outgoing_queue == 0 {
            return invalid("outgoing_queue", "must be at least 1".into());
        }
        if self.history > self.outgoing_queue {
            return invalid(
                "history",
                format!(
                    "must be at most the outgoing queue ({} frames): a newcomer receives it at once",
                    self.outgoing_queue
                ),
            );
        }
        if self.max_frame_len < MIN_MAX_FRAME_LEN {
            return invalid(
                "max_frame_len",
                format!("must be at least {MIN_MAX_FRAME_LEN} bytes"),
            );
        }
        for (field, len) in [
            ("max_frame_len", self.max_frame_len),
            ("pre_login_max_frame_len", self.pre_login_max_frame_len),
        ] {
            if len > MAX_MAX_FRAME_LEN {
                return invalid(
                    field,
                    format!(
                        "must be below 16 MiB ({MAX_MAX_FRAME_LEN} bytes at most): \
                         a framed client's first byte must be 0x00"
                    ),
                );
            }
        }
        if self.handshake_timeout.is_zero() {
            return invalid("handshake_timeout", "must be longer than zero".into());
        }
        if self.frame_timeout.is_zero() {
            return invalid("frame_timeout", "must be longer than zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_kind_parses_both_names_and_refuses_others() {
        assert_eq!("echo".parse::<ServiceKind>(), Ok(ServiceKind::Echo));
        assert_eq!("Chat".parse::<ServiceKind>(), Ok(ServiceKind::Chat));
        let err = "ekko".parse::<ServiceKind>().unwrap_err();
        assert!(err.to_string().contains("ekko"), "{err}");
        assert!(err.to_string().contains("echo"), "{err}");
        assert_eq!(ServiceKind::Echo.to_string(), "echo");
    }

    #[test]
    fn default_config_asks_for_passwords_and_names_the_version() {
        let config = Config::default();
        assert_eq!(config.service, ServiceKind::Chat);
        assert_eq!(config.auth, AuthMode::Password);
        assert_eq!(config.registration, Registration::Open);
        assert_eq!(config.session_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(config.max_auth_attempts, 3);
        assert_eq!(config.pre_login_max_frame_len, 4096);
        assert!(config.server_name.starts_with("porter/"));
        Config {
            auth: AuthMode::None,
            ..config
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn ip_and_password_modes_need_a_store() {
        for auth in [AuthMode::Ip, AuthMode::Password] {
            let config = Config {
                auth,
                ..Config::default()
            };
            assert!(matches!(
                config.validate(),
                Err(crate::Error::InvalidConfig { field: "store", .. })
            ));
        }
    }

    #[test]
    fn registration_parses_both_names_and_refuses_others() {
        assert_eq!("open".parse::<Registration>(), Ok(Registration::Open));
        assert_eq!(" Closed".parse::<Registration>(), Ok(Registration::Closed));
        assert!("shut".parse::<Registration>().is_err());
        assert_eq!(Registration::Closed.to_string(), "closed");
    }

    #[test]
    fn hash_cost_out_of_argon2_range_is_refused() {
        let config = Config {
            auth: AuthMode::None,
            hash_cost: HashCost {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1,
            },
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(crate::Error::InvalidConfig {
                field: "hash_cost",
                ..
            })
        ));
    }

    #[test]
    fn debug_does_not_try_to_print_the_store() {
        let shown = format!("{:?}", Config::default());
        assert!(shown.contains("store: None"), "{shown}");
        assert!(shown.contains("auth: Password"), "{shown}");
    }

    #[test]
    fn zero_queue_is_refused_rather_than_panicking() {
        let config = Config {
            auth: AuthMode::None,
            outgoing_queue: 0,
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(crate::Error::InvalidConfig {
                field: "outgoing_queue",
                ..
            })
        ));
    }

    #[test]
    fn a_frame_limit_of_16_mib_or_more_is_refused_so_line_mode_can_tell_clients_apart() {
        let at_ceiling = Config {
            auth: AuthMode::None,
            max_frame_len: MAX_MAX_FRAME_LEN,
            ..Config::default()
        };
        at_ceiling.validate().unwrap();
        for (field, config) in [
            (
                "max_frame_len",
                Config {
                    max_frame_len: MAX_MAX_FRAME_LEN + 1,
                    ..at_ceiling.clone()
                },
            ),
            (
                "pre_login_max_frame_len",
                Config {
                    pre_login_max_frame_len: 1 << 24,
                    ..at_ceiling.clone()
                },
            ),
        ] {
            assert!(matches!(
                config.validate(),
                Err(crate::Error::InvalidConfig { field: got, .. }) if got == field
            ));
        }
    }
}
