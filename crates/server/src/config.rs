//! What a server can be told: the service it runs, how clients are
//! identified, and every limit, each a named default that a flag can change.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use porter_wire::AuthMode;

/// Connections served at once. Beyond it a newcomer gets `error{busy}` and is
/// closed, so a flood cannot exhaust file descriptors or memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Time from accept to `ready`. A client that stalls in the handshake holds a
/// connection slot; this bounds how long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest frame payload accepted (the protocol's server default).
pub const DEFAULT_MAX_FRAME_LEN: usize = porter_wire::DEFAULT_MAX_FRAME_LEN;

/// Smallest `max_frame_len` accepted: below it not even our own `welcome`
/// would fit reliably.
pub const MIN_MAX_FRAME_LEN: usize = 256;

/// Frames waiting to be written to one client. A client that does not read
/// fills it and is disconnected, so memory per client stays bounded and a
/// slow reader never holds up the others.
pub const DEFAULT_OUTGOING_QUEUE: usize = 1024;

/// How long shutdown waits for `bye` (and whatever was queued before it) to
/// reach the clients before it closes everything regardless.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The server name sent in `welcome`.
pub fn default_server_name() -> String {
    format!("porter/{}", env!("CARGO_PKG_VERSION"))
}

/// Which service runs after `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceKind {
    /// Every `say` comes back from `server`, in order.
    Echo,
    /// Every `say` goes to every other participant.
    #[default]
    Chat,
}

impl ServiceKind {
    /// The name used on the command line and in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Chat => "chat",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service name that is neither `echo` nor `chat`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service {0:?}: expected \"echo\" or \"chat\"")]
pub struct ParseServiceError(pub String);

impl FromStr for ServiceKind {
    type Err = ParseServiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "echo" => Ok(ServiceKind::Echo),
            "chat" => Ok(ServiceKind::Chat),
            _ => Err(ParseServiceError(s.to_owned())),
        }
    }
}

/// Everything [`crate::run`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service after `ready`.
    pub service: ServiceKind,
    /// How clients are identified. Only [`AuthMode::None`] is served for now.
    pub auth: AuthMode,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// Largest frame payload accepted and sent; see [`DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: usize,
    /// See [`DEFAULT_OUTGOING_QUEUE`].
    pub outgoing_queue: usize,
    /// See [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// Sent in `welcome`.
    pub server_name: String,
    /// Chat only: tell the others, as `say` from `server`, when someone
    /// joins or leaves. Off by default so that a client sees exactly the
    /// lines of the other participants.
    pub announce: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service: ServiceKind::default(),
            auth: AuthMode::None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            outgoing_queue: DEFAULT_OUTGOING_QUEUE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            server_name: default_server_name(),
            announce: false,
        }
    }
}

impl Config {
    /// Checks the limits that would make a server unusable or panic.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] naming the field, and
    /// [`crate::Error::AuthUnsupported`] for an auth mode not served yet.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let invalid = |field: &'static str, reason: String| {
            Err(crate::Error::InvalidConfig { field, reason })
        };
        if self.auth != AuthMode::None {
            return Err(crate::Error::AuthUnsupported(self.auth));
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
        if self.outgoing_queue == 0 {
            return invalid("outgoing_queue", "must be at least 1".into());
        }
        if self.max_frame_len < MIN_MAX_FRAME_LEN {
            return invalid(
                "max_frame_len",
                format!("must be at least {MIN_MAX_FRAME_LEN} bytes"),
            );
        }
        if self.handshake_timeout.is_zero() {
            return invalid("handshake_timeout", "must be longer than zero".into());
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
    fn default_config_is_valid_and_names_the_version() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.service, ServiceKind::Chat);
        assert!(config.server_name.starts_with("porter/"));
    }

    #[test]
    fn auth_modes_not_served_yet_are_refused() {
        let config = Config {
            auth: AuthMode::Password,
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(crate::Error::AuthUnsupported(AuthMode::Password))
        ));
    }

    #[test]
    fn zero_queue_is_refused_rather_than_panicking() {
        let config = Config {
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
}
