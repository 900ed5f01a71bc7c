//! The accept loop: one task per connection, a semaphore capping how many
//! are served, and backoff when accepting itself fails (out of file
//! descriptors, say). It never stops for a connection's sake; only shutdown
//! ends it.
//!
//! It accepts from anything that yields streams ([`Accept`]; a
//! `TcpListener` is one), and hands each to its own task with the
//! connection's [`Upgrade`] step, which runs there, not here.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use porter_wire::{EncodedFrame, ErrorCode, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::admission::{self, Admission, Refusal};
use crate::churn::ChurnLog;
use crate::handler::{self, Shared};
use crate::linger::linger;
use crate::metrics::{self, Limit};
use crate::peer::PeerInfo;
use crate::upgrade::{Stream, Upgrade};

/// Where connections come from: a listening socket, or anything else that
/// yields byte streams and the address of their other end.
pub trait Accept: Send + 'static {
    /// The streams it yields.
    type Stream: Stream;

    /// The next connection. An error may concern that connection only (it
    /// went away before it was taken) or the listener (out of file
    /// descriptors); the accept loop tells them apart by kind.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The address it listens on, for the log.
    ///
    /// # Errors
    /// When the address cannot be read.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Bounds what the system buffers for `stream` on its way out to
    /// `send_buffer` bytes, where the stream has such a buffer. The default
    /// does nothing.
    fn bound_send_buffer(_stream: &Self::Stream, _send_buffer: usize) {}
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Chat lines are small and interactive: do not let Nagle hold them.
        if let Err(err) = stream.set_nodelay(true) {
            debug!(peer = %peer, cause = %err, "cannot set TCP_NODELAY");
        }
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }

    fn bound_send_buffer(stream: &TcpStream, send_buffer: usize) {
        // Fixing SO_SNDBUF turns off the kernel's autotuning, which lets a
        // client that never reads pin megabytes before the outgoing queue,
        // which disconnects it, even starts to fill.
        if let Err(err) = socket2::SockRef::from(stream).set_send_buffer_size(send_buffer) {
            debug!(cause = %err, "cannot set SO_SNDBUF");
        }
    }
}

/// First pause after a failed accept; doubled on each failure in a row.
const INITIAL_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Longest pause between failed accepts: long enough to let file
/// descriptors free up, short enough not to look dead.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Time given to a refused client to take `welcome` and its `busy` error. Refusals are
/// cheap but unlimited in number, so each must be short-lived.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a refused client may keep its socket open after `busy`.
const BUSY_LINGER: Duration = Duration::from_millis(200);

/// The accept loop's state.
pub(crate) struct Listener<L, U> {
    /// Where connections come from.
    pub(crate) listener: L,
    /// What each connection's stream becomes, in the connection's task.
    upgrade: Arc<U>,
    /// One permit per connection served; none left means `busy`.
    pub(crate) limit: Arc<Semaphore>,
    /// Handed to every connection.
    pub(crate) shared: Arc<Shared>,
    /// Who else may take a slot: handshakes in progress, and per address.
    admission: Admission,
    /// How many connections per address are logged one by one.
    churn: ChurnLog,
    /// The refusals, encoded once: `welcome` (the first frame on every
    /// connection, so a client always knows whom it reached) then
    /// `error{busy}` saying which limit.
    busy: Refusals,
}

/// The three `busy` refusals, as bytes ready to write.
struct Refusals {
    full: Bytes,
    address: Bytes,
    startups: Bytes,
}

impl Refusals {
    fn new(shared: &Shared) -> Result<Refusals, porter_wire::Error> {
        let encode = |text: &str| -> Result<Bytes, porter_wire::Error> {
            let refusal =
                EncodedFrame::message(&shared.codec, &ServerMessage::error(ErrorCode::Busy, text))?;
            let mut busy = BytesMut::from(shared.welcome.as_bytes());
            busy.extend_from_slice(refusal.as_bytes());
            Ok(busy.freeze())
        };
        Ok(Refusals {
            full: encode("server at its connection limit, try again later")?,
            address: encode("too many connections from your address, try again later")?,
            startups: encode("too many connections logging in, try again later")?,
        })
    }
}

impl<L, U> Listener<L, U>
where
    L: Accept,
    U: Upgrade<L::Stream>,
{
    pub(crate) fn new(
        listener: L,
        upgrade: U,
        shared: Arc<Shared>,
    ) -> Result<Listener<L, U>, porter_wire::Error> {
        let config = &shared.config;
        let admission = Admission::new(
            config.max_startups,
            config.max_connections,
            (config.max_per_address > 0).then_some(config.max_per_address),
        );
        Ok(Listener {
            listener,
            upgrade: Arc::new(upgrade),
            limit: Arc::new(Semaphore::new(config.max_connections)),
            admission,
            churn: ChurnLog::new(config.logged_connections_per_minute),
            busy: Refusals::new(&shared)?,
            shared,
        })
    }

    /// Accepts until `shutdown` completes.
    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = INITIAL_ACCEPT_BACKOFF;
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => return,
                r = self.listener.accept() => r,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = INITIAL_ACCEPT_BACKOFF;
                    self.dispatch(stream, peer);
                }
                Err(err) if is_per_connection(&err) => {
                    debug!(cause = %err, "accept failed for one connection");
                }
                Err(err) => {
                    warn!(cause = %err, backoff_ms = backoff.as_millis() as u64,
                        "accept failed, backing off");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }

    fn dispatch(&self, stream: L::Stream, peer: SocketAddr) {
        let logged = self
            .churn
            .logged(peer.ip().to_canonical(), tokio::time::Instant::now());
        let Ok(permit) = self.limit.clone().try_acquire_owned() else {
            if logged {
                warn!(peer = %peer, limit = self.shared.config.max_connections,
                    "connection limit reached, refusing");
            }
            metrics::refused(Limit::Connections);
            return self.refuse(stream, peer, &self.busy.full);
        };
        if self.shared.config.send_buffer > 0 {
            L::bound_send_buffer(&stream, self.shared.config.send_buffer);
        }
        let peer = PeerInfo {
            logged,
            ..PeerInfo::new(peer)
        };
        match self.admission.admit(peer.ip(), admission::chance) {
            Ok(admitted) => {
                self.shared.shutdown.tracker.spawn(handler::serve(
                    stream,
                    peer,
                    self.shared.clone(),
                    self.upgrade.clone(),
                    (permit, admitted),
                ));
            }
            Err(Refusal::Address) => {
                debug!(peer = %peer, limit = self.shared.config.max_per_address,
                    "too many connections from one address, refusing");
                metrics::refused(Limit::Address);
                self.refuse(stream, peer.addr, &self.busy.address);
            }
            Err(Refusal::Startups) => {
                debug!(peer = %peer, limit = self.shared.config.max_startups,
                    "too many handshakes in progress, refusing");
                metrics::refused(Limit::Startups);
                self.refuse(stream, peer.addr, &self.busy.startups);
            }
        }
    }

    /// Sends `busy` on its own task and closes.
    fn refuse(&self, stream: L::Stream, peer: SocketAddr, busy: &Bytes) {
        let abort = self.shared.shutdown.abort.clone();
        self.shared
            .shutdown
            .tracker
            .spawn(refuse_busy(stream, peer, busy.clone(), abort));
    }
}

/// Errors of `accept` that concern one connection only (it went away before
/// we took it); anything else may repeat at once and deserves a pause.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Sends `welcome` and `error{busy}` and closes, without a handshake.
async fn refuse_busy<S: Stream>(
    mut stream: S,
    peer: SocketAddr,
    busy: Bytes,
    abort: tokio_util::sync::CancellationToken,
) {
    let sent = tokio::time::timeout(BUSY_WRITE_TIMEOUT, async {
        stream.write_all(&busy).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
    match sent {
        Ok(Ok(())) => linger(&mut stream, BUSY_LINGER, abort.cancelled()).await,
        Ok(Err(err)) => debug!(peer = %peer, cause = %err, "busy refusal not delivered"),
        Err(_) => debug!(peer = %peer, "busy refusal timed out"),
    }
    debug!(peer = %peer, reason = "busy", "disconnected");
}
