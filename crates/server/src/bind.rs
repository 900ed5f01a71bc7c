//! Finding a port to listen on: resolve the host, bind, and when the port is
//! taken, try the next ones (lab task 4). Only "address in use" moves on to
//! another port; any other failure would repeat on every port, so it is
//! reported at once.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::error::BindError;

/// Ports tried in total by default: the requested one and the 19 after it.
pub const DEFAULT_PORT_TRIES: u16 = 20;

/// A listener, and where it ended up compared with what was asked.
#[derive(Debug)]
pub struct Bound {
    /// The bound listener, ready for [`crate::run`].
    pub listener: TcpListener,
    /// The address actually bound (with the port the system chose for 0).
    pub local_addr: SocketAddr,
    /// The port that was asked for.
    pub requested_port: u16,
}

impl Bound {
    /// Whether the listener is on another port than requested because that
    /// one was in use. Never true for port 0.
    pub fn moved(&self) -> bool {
        self.requested_port != 0 && self.local_addr.port() != self.requested_port
    }
}

/// Resolves `host` (an IPv4 or IPv6 literal, or a name) and binds `port`.
///
/// When every address of `host` reports the port in use, the next port is
/// tried, up to `tries` ports in total (at least one), never past 65535.
/// Port 0 lets the system choose and never hunts.
///
/// # Errors
/// [`BindError::Resolve`] / [`BindError::NoAddress`] when the host does not
/// resolve, [`BindError::Bind`] for any failure other than "in use" (no other
/// port is tried then), and [`BindError::AllInUse`] when every port tried was
/// taken.
pub async fn bind(host: &str, port: u16, tries: u16) -> Result<Bound, BindError> {
    let addrs = resolve(host).await?;
    let ports = candidate_ports(port, tries);
    let (first, last) = (*ports.start(), *ports.end());
    for candidate in ports {
        match bind_any(&addrs, candidate).await {
            Ok(listener) => {
                let local_addr = listener.local_addr().map_err(|source| BindError::Bind {
                    addr: SocketAddr::new(addrs[0].ip(), candidate),
                    source,
                })?;
                if port != 0 && local_addr.port() != port {
                    info!(requested = port, bound = %local_addr, "requested port in use, moved");
                }
                return Ok(Bound {
                    listener,
                    local_addr,
                    requested_port: port,
                });
            }
            Err(Attempt::InUse) => {
                debug!(host = %host, port = candidate, "port in use, trying the next")
            }
            Err(Attempt::Failed(err)) => return Err(err),
        }
    }
    Err(BindError::AllInUse {
        host: host.to_owned(),
        first,
        last,
    })
}

/// The ports to try: `port` and the ones after it, `tries` in all (at least
/// one), stopping at 65535. Port 0 is tried alone.
fn candidate_ports(port: u16, tries: u16) -> std::ops::RangeInclusive<u16> {
    if port == 0 {
        return 0..=0;
    }
    let last = port.saturating_add(tries.max(1) - 1);
    port..=last
}

async fn resolve(host: &str) -> Result<Vec<SocketAddr>, BindError> {
    // A bracketed IPv6 literal, as people write it in URLs, is accepted too.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, 0))
        .await
        .map_err(|source| BindError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(BindError::NoAddress {
            host: host.to_owned(),
        });
    }
    Ok(addrs)
}

enum Attempt {
    InUse,
    Failed(BindError),
}

/// Binds the first of `addrs` that accepts `port`. "In use" everywhere means
/// try another port; otherwise the first other failure is the answer (a name
/// such as `localhost` may resolve to an IPv6 address that is unavailable
/// and an IPv4 one that works, so one failure alone is not final).
async fn bind_any(addrs: &[SocketAddr], port: u16) -> Result<TcpListener, Attempt> {
    let mut in_use = false;
    let mut failure = None;
    for ip in addrs {
        let addr = SocketAddr::new(ip.ip(), port);
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => in_use = true,
            Err(source) => {
                debug!(%addr, cause = %source, "bind failed");
                failure.get_or_insert(BindError::Bind { addr, source });
            }
        }
    }
    match (in_use, failure) {
        (true, _) => Err(Attempt::InUse),
        (false, Some(err)) => Err(Attempt::Failed(err)),
        // `addrs` is never empty, so some attempt failed one way or the other.
        (false, None) => Err(Attempt::InUse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_ports_never_pass_65535() {
        assert_eq!(candidate_ports(65534, 20), 65534..=65535);
        assert_eq!(candidate_ports(65535, 20), 65535..=65535);
    }

    #[test]
    fn candidate_ports_count_the_requested_one() {
        assert_eq!(candidate_ports(4000, 20), 4000..=4019);
        assert_eq!(candidate_ports(4000, 1), 4000..=4000);
        assert_eq!(candidate_ports(4000, 0), 4000..=4000);
    }

    #[test]
    fn port_zero_is_tried_alone() {
        assert_eq!(candidate_ports(0, 20), 0..=0);
    }
}
