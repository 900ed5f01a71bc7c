//! The names of the modes a server runs in: how it identifies clients
//! ([`AuthMode`], announced in `welcome`) and what it serves after `ready`
//! ([`ServiceKind`]).
//!
//! They are defined once, here, because everyone spells them the same way:
//! the wire, the server's configuration, the command line (`--auth`,
//! `--service`, which parse them with [`FromStr`]), the benchmark and the
//! logs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a server identifies clients, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Everyone is let in at once.
    None,
    /// Clients are known by IP address and asked for a name once.
    Ip,
    /// Users log in with a password or a session token.
    Password,
}

impl AuthMode {
    /// Every mode, in the order the command line lists them.
    pub const ALL: [AuthMode; 3] = [AuthMode::None, AuthMode::Ip, AuthMode::Password];

    /// The name used on the wire and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Ip => "ip",
            AuthMode::Password => "password",
        }
    }
}

/// What a server does with the lines of a ready client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServiceKind {
    /// Every `say` comes back from `server`, in order.
    Echo,
    /// Every `say` goes to every other participant.
    #[default]
    Chat,
}

impl ServiceKind {
    /// Every service, in the order the command line lists them.
    pub const ALL: [ServiceKind; 2] = [ServiceKind::Echo, ServiceKind::Chat];

    /// The name used on the command line, in reports and in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Chat => "chat",
        }
    }
}

/// A mode name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {got:?}: expected one of {}", expected.join(", "))]
pub struct ParseModeError {
    /// What was being parsed: `auth mode` or `service`.
    pub what: &'static str,
    /// The text given.
    pub got: String,
    /// The names accepted.
    pub expected: Vec<&'static str>,
}

/// Parses `s` as one of `all` by name, ignoring ASCII case and surrounding
/// spaces.
fn parse_named<T: Copy>(
    s: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
    what: &'static str,
) -> Result<T, ParseModeError> {
    let wanted = s.trim();
    all.iter()
        .copied()
        .find(|mode| name(*mode).eq_ignore_ascii_case(wanted))
        .ok_or_else(|| ParseModeError {
            what,
            got: s.to_owned(),
            expected: all.iter().map(|mode| name(*mode)).collect(),
        })
}

impl FromStr for AuthMode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &AuthMode::ALL, AuthMode::as_str, "auth mode")
    }
}

impl FromStr for ServiceKind {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named(s, &ServiceKind::ALL, ServiceKind::as_str, "service")
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_parses_back_from_its_own_name_in_any_case() {
        for mode in AuthMode::ALL {
            assert_eq!(mode.as_str().parse::<AuthMode>(), Ok(mode));
            assert_eq!(mode.as_str().to_uppercase().parse::<AuthMode>(), Ok(mode));
        }
        for service in ServiceKind::ALL {
            assert_eq!(service.to_string().parse::<ServiceKind>(), Ok(service));
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_names_accepted() {
        let err = "ekko".parse::<ServiceKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown service "ekko": expected one of echo, chat"#
        );
        let err = "token".parse::<AuthMode>().unwrap_err();
        assert!(err.to_string().contains("none, ip, password"), "{err}");
    }

    #[test]
    fn the_auth_mode_is_spelled_on_the_wire_as_on_the_command_line() {
        for mode in AuthMode::ALL {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
        }
    }
}
