//! Opening the byte stream to a server: the transport seam.
//!
//! A [`Connector`] opens one stream to a server; everything above it (the
//! [`crate::Connection`], the handshake, the scripted and interactive
//! conversations, the bench) works on whatever stream it yields. TCP is the
//! first connector: [`ConnectOptions`] resolves the host and tries each of
//! its addresses under a timeout, optionally from a chosen source address.
//!
//! The TLS connector, [`crate::tls::TlsConnector`], holds a
//! [`ConnectOptions`] and how the server is trusted: it opens the TCP stream
//! with them, runs the TLS handshake over it, and yields the TLS stream as
//! its [`Connector::Stream`]. Its failures are [`Error`] variants too, so
//! callers still match one error type.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use crate::error::{Error, Result};

/// How long to wait for the server to accept a connection, per address
/// tried. Long enough for a slow network, short enough that a firewall that
/// drops packets does not leave the user staring at nothing.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A way of opening a byte stream to a server.
pub trait Connector: Send + Sync {
    /// The stream a connection yields: what [`crate::Connection`] frames.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send;

    /// Opens one stream to the server.
    ///
    /// # Errors
    /// Whatever kept the stream from opening; for TCP, see
    /// [`ConnectOptions`'s implementation](ConnectOptions#impl-Connector-for-ConnectOptions).
    fn connect(&self) -> impl Future<Output = Result<Self::Stream>> + Send;
}

/// Opens a stream to the server with `connector`: [`ConnectOptions`] for
/// TCP.
///
/// # Errors
/// The connector's (see [`Connector::connect`]).
pub async fn connect<C: Connector>(connector: &C) -> Result<C::Stream> {
    connector.connect().await
}

/// Where and how to connect over TCP: the TCP [`Connector`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or IP address of the server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The local (source) address to connect from; `None` lets the system
    /// choose.
    pub bind_addr: Option<IpAddr>,
    /// How long to wait for each address to accept.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    /// Options for `host:port` with the defaults for everything else.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            bind_addr: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Connects over TCP, trying each address the host resolves to (only those
/// of the source address's family when one is given) until one accepts,
/// each under [`ConnectOptions::connect_timeout`].
///
/// # Errors
/// [`Error::Resolve`], [`Error::NoAddress`], [`Error::Bind`], and for the
/// last address tried [`Error::Connect`] or [`Error::ConnectTimeout`].
impl Connector for ConnectOptions {
    type Stream = TcpStream;

    fn connect(&self) -> impl Future<Output = Result<TcpStream>> + Send {
        connect_tcp(self)
    }
}

/// The TCP connector's work (see its `impl Connector`).
async fn connect_tcp(options: &ConnectOptions) -> Result<TcpStream> {
    let resolved = tokio::net::lookup_host((options.host.as_str(), options.port))
        .await
        .map_err(|source| Error::Resolve {
            host: options.host.clone(),
            source,
        })?;
    let addrs: Vec<SocketAddr> = resolved
        .filter(|addr| match options.bind_addr {
            Some(local) => local.is_ipv4() == addr.is_ipv4(),
            None => true,
        })
        .collect();
    let mut last_error = None;
    for addr in addrs {
        match connect_one(addr, options).await {
            Ok(stream) => return Ok(stream),
            // A source address we cannot bind will not work for the next
            // address either.
            Err(err @ Error::Bind { .. }) => return Err(err),
            Err(err) => {
                tracing::debug!(%addr, error = %err, "connect failed");
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| Error::NoAddress {
        host: options.host.clone(),
        bind_addr: options.bind_addr,
    }))
}

async fn connect_one(addr: SocketAddr, options: &ConnectOptions) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|source| Error::Connect { addr, source })?;
    if let Some(local) = options.bind_addr {
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(|source| Error::Bind {
                addr: local,
                source,
            })?;
    }
    let stream = match tokio::time::timeout(options.connect_timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(Error::Connect { addr, source }),
        Err(_) => {
            return Err(Error::ConnectTimeout {
                addr,
                timeout: options.connect_timeout,
            });
        }
    };
    // Conversation lines are small and latency matters more than packing;
    // writers batch their flushes themselves.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %err, "cannot set TCP_NODELAY");
    }
    Ok(stream)
}
