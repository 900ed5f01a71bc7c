//! What the server knows of a client before it says anything: where it
//! connects from, and later what the transport upgrade learnt (TLS facts).
//!
//! Authenticators receive a [`PeerInfo`] rather than a bare address, so
//! that a new fact about the transport reaches them without a change of
//! signature.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A connected client, as the transport knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerInfo {
    /// The address and port the client connects from.
    pub(crate) addr: SocketAddr,
    /// Whether this connection's comings and goings are logged one by one;
    /// false past the churn rate of its address (see `churn`).
    pub(crate) logged: bool,
}

impl PeerInfo {
    /// A client at `addr`.
    pub(crate) fn new(addr: SocketAddr) -> PeerInfo {
        PeerInfo { addr, logged: true }
    }

    /// The address the client is known by: an IPv4-mapped IPv6 address is
    /// the IPv4 address it maps, so one client is one key however it
    /// reached a dual-stack socket (names, throttles).
    pub(crate) fn ip(&self) -> IpAddr {
        self.addr.ip().to_canonical()
    }
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4() {
        let mapped = PeerInfo::new("[::ffff:127.0.0.2]:9".parse().unwrap());
        assert_eq!(mapped.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        let v6 = PeerInfo::new("[::1]:9".parse().unwrap());
        assert_eq!(v6.ip(), "::1".parse::<IpAddr>().unwrap());
    }
}
