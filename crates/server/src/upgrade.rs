//! The first step of every connection, inside its own task and under the
//! handshake deadline, before `welcome`: what the accepted stream becomes.
//!
//! Two steps exist: the identity ([`Plain`]) and a TLS handshake ([`Tls`],
//! `porter serve --tls`). Line mode is not chosen here but after `welcome`
//! (`crate::line`), from the first byte the client sends, so that it runs
//! inside TLS as well. Because it runs in the
//! connection's task, a client that stalls here (opens TCP and never
//! finishes TLS, say) costs one slot until the deadline and never holds up
//! the accept loop.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::peer::PeerInfo;
use crate::tls::TlsIdentity;

/// A stream a connection can be served on.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Turns an accepted stream into the one the protocol is spoken on.
pub(crate) trait Upgrade<S: Stream>: Send + Sync + 'static {
    /// What the stream becomes.
    type Output: Stream;

    /// Upgrades `stream` from the client `peer`, adding to `peer` what it
    /// learns. Runs under the handshake deadline; a stream it refuses is
    /// closed without a word (there is no framed protocol to say it in yet).
    fn upgrade(
        &self,
        stream: S,
        peer: &mut PeerInfo,
    ) -> impl Future<Output = io::Result<Self::Output>> + Send;
}

/// No upgrade: the protocol is spoken on the accepted stream as it is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Plain;

impl<S: Stream> Upgrade<S> for Plain {
    type Output = S;

    async fn upgrade(&self, stream: S, _peer: &mut PeerInfo) -> io::Result<S> {
        Ok(stream)
    }
}

/// A TLS handshake with the server's identity: the protocol is spoken
/// inside TLS, unchanged.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
}

impl Tls {
    pub(crate) fn new(identity: &TlsIdentity) -> Tls {
        Tls {
            acceptor: TlsAcceptor::from(identity.server_config()),
        }
    }
}

impl<S: Stream> Upgrade<S> for Tls {
    type Output = TlsStream<S>;

    async fn upgrade(&self, stream: S, _peer: &mut PeerInfo) -> io::Result<TlsStream<S>> {
        self.acceptor.accept(stream).await
    }
}
