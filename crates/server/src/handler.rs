//! One connection's task, from accept to close: the upgrade (under the
//! handshake deadline), `welcome` and the look at the client's first bytes
//! that tells a framed client from a person in line mode (`crate::line`),
//! the handshake (under the same deadline), then the service loop, each
//! step `select!`ing on shutdown and on the connection's own close signal.
//! Whatever goes wrong is logged here and ends this connection only.
//!
//! [`Handler`] is the connection once upgraded, as mini-redis's `Handler`
//! is: what it reads and writes through, how others reach it, and what the
//! server shares. Each step returns its outcome; nothing is passed back
//! through out-parameters.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use porter_wire::{ClientMessage, EncodedFrame, ErrorCode, FrameCodec, ServerMessage};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::admission::{AddressSlot, Admitted};
use crate::auth::Auth;
use crate::close::{Closer, Reason};
use crate::config::Config;
use crate::connection::Connection;
use crate::handshake::{Authenticator, Entrant, Identity, handshake};
use crate::line::{self, Limits, Lines, Opening};
use crate::live::{Dismissal, Live, LiveEntry};
use crate::metrics::{self, Present, Traffic};
use crate::outbox::{self, Outbox};
use crate::peer::PeerInfo;
use crate::protocol::{Client, Served};
use crate::room::SayError;
use crate::room::bus::BusError;
use crate::service::Service;
use crate::shutdown::Shutdown;
use crate::upgrade::{Stream, Upgrade};
use crate::wake_flag::WakeFlag;

/// After the last frame went out: how long to wait for the client to close
/// before closing regardless. See [`crate::linger`].
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Messages served without waiting between two looks at the stop signals:
/// a client that keeps the connection busy still sees a shutdown (or its
/// own disconnection) within this many messages.
const STOP_CHECK_EVERY: u32 = 64;

/// What every connection shares, built once by [`crate::run`].
#[derive(Debug)]
pub(crate) struct Shared {
    /// The limits.
    pub(crate) config: Config,
    /// Frames out, and frames in after `ready`, are held to
    /// `config.max_frame_len`.
    pub(crate) codec: FrameCodec,
    /// Frames in before `ready` are held to this smaller limit.
    pub(crate) pre_login_max_frame_len: usize,
    /// The same first frame for everyone, encoded once.
    pub(crate) welcome: EncodedFrame,
    /// Echo, or the chat room.
    pub(crate) service: Service,
    /// The auth mode's handshake.
    pub(crate) auth: Auth,
    /// Shutdown signals and the task tracker.
    pub(crate) shutdown: Shutdown,
    /// The identified connections, for operators' actions to reach.
    pub(crate) live: Live,
    /// The metrics every connection updates, registered once.
    pub(crate) traffic: Traffic,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        service: Service,
        auth: Auth,
        shutdown: Shutdown,
    ) -> Result<Shared, porter_wire::Error> {
        let codec = FrameCodec::with_max_frame_len(config.max_frame_len);
        let pre_login_max_frame_len = config.effective_pre_login_max_frame_len();
        let welcome = |hint: Option<&str>| {
            EncodedFrame::message(
                &codec,
                &ServerMessage::Welcome {
                    server: config.server_name.clone(),
                    protocol: porter_wire::PROTOCOL_VERSION,
                    auth: auth.mode(),
                    hint: hint.map(str::to_owned),
                },
            )
        };
        // The hint is for people; under a frame limit too small for it,
        // programs still get their welcome.
        let welcome = welcome(Some(line::HINT)).or_else(|_| welcome(None))?;
        Ok(Shared {
            codec,
            pre_login_max_frame_len,
            welcome,
            service,
            auth,
            traffic: Traffic::register(config.service),
            config,
            shutdown,
            live: Live::default(),
        })
    }
}

/// Serves one accepted connection from `peer`: upgrades `stream` with
/// `upgrade`, sends `welcome`, then runs a [`Handler`] on it, on the
/// stream itself or, when the client's first byte says it is a person, on
/// [`Lines`] over it. `slots` are its slot under `max_connections`,
/// released when this returns, and what admission gave it (its handshake's
/// slot, released at `ready`, and its address's).
pub(crate) async fn serve<S, U>(
    stream: S,
    mut peer: PeerInfo,
    shared: Arc<Shared>,
    upgrade: Arc<U>,
    slots: (OwnedSemaphorePermit, Admitted),
) where
    S: Stream,
    U: Upgrade<S>,
{
    let closer = Closer::child_of(&shared.shutdown.abort);
    metrics::accepted();
    let _serving = Present::new(&shared.traffic.connections);
    let handshaking = Present::new(&shared.traffic.handshakes);
    // One deadline from accept to `ready`, the upgrade included.
    let accepted = Instant::now();
    let deadline = accepted + shared.config.handshake_timeout;
    if peer.logged {
        info!(peer = %peer, "connected");
    }
    let upgraded = tokio::select! {
        biased;
        () = shared.shutdown.graceful.cancelled() => Err(Reason::Shutdown),
        () = closer.closed() => Err(closer.reason()),
        r = tokio::time::timeout_at(deadline, upgrade.upgrade(stream, &mut peer)) => match r {
            Err(_) => Err(Reason::Timeout),
            Ok(Err(err)) => Err(Reason::Upgrade(err.to_string())),
            Ok(Ok(stream)) => Ok(stream),
        },
    };
    let mut stream = match upgraded {
        Ok(stream) => stream,
        Err(reason) => return dropped(&peer, &reason),
    };
    let welcomed = tokio::select! {
        biased;
        () = shared.shutdown.graceful.cancelled() => Err(Reason::Shutdown),
        () = closer.closed() => Err(closer.reason()),
        r = tokio::time::timeout_at(deadline, line::welcome(&mut stream, &shared.welcome)) => match r {
            Err(_) => Err(Reason::Timeout),
            Ok(Err(err)) => Err(Reason::from_io(&err)),
            Ok(Ok(())) => Ok(()),
        },
    };
    if let Err(reason) = welcomed {
        return dropped(&peer, &reason);
    }
    // Cut short (a client that never speaks, a shutdown), the client is
    // taken for a framed one: the handler sees why at once and says it in
    // the protocol, `error{timeout}` or `bye`, as it always did.
    let opening = tokio::select! {
        biased;
        () = shared.shutdown.graceful.cancelled() => Ok(Opening::Framed(BytesMut::new())),
        () = closer.closed() => Ok(Opening::Framed(BytesMut::new())),
        r = tokio::time::timeout_at(deadline, line::open(&mut stream)) => match r {
            Err(_) => Ok(Opening::Framed(BytesMut::new())),
            Ok(opening) => opening.map_err(|err| Reason::from_io(&err)),
        },
    };
    let (permit, admitted) = slots;
    match opening {
        Err(reason) => return dropped(&peer, &reason),
        Ok(Opening::Framed(first)) => {
            Handler::new(stream, first, peer, shared, closer, (admitted, handshaking))
                .run(accepted, deadline)
                .await;
        }
        Ok(Opening::Lines(first)) => {
            if peer.logged {
                info!(peer = %peer, "line mode");
            }
            let limits = Limits {
                pre_login: shared.pre_login_max_frame_len,
                max: shared.config.max_frame_len,
            };
            let lines = Lines::new(stream, &first, limits);
            // Boxed: every connection's task is as large as its largest
            // branch, and framed clients should not carry line mode's
            // buffers.
            Box::pin(
                Handler::new(
                    lines,
                    BytesMut::new(),
                    peer,
                    shared,
                    closer,
                    (admitted, handshaking),
                )
                .run(accepted, deadline),
            )
            .await;
        }
    }
    drop(permit);
}

/// Counts and logs a connection that ended before its handler started.
fn dropped(peer: &PeerInfo, reason: &Reason) {
    reason.count();
    if peer.logged {
        warn!(peer = %peer, user = "-", reason = %reason, protocol_errors = 0, "disconnected");
    }
}

/// One upgraded connection and what serving it needs.
pub(crate) struct Handler<S> {
    /// The connection as the protocol sees it: frames in and out, who the
    /// client is, its close switch and its protocol error count.
    client: Client<S>,
    /// How the room reaches this client; handed over when it joins.
    outbox: Outbox,
    /// The limits, the service, the auth mode and the shutdown signals.
    shared: Arc<Shared>,
    /// Its handshake's slot and its place in the handshakes gauge until
    /// `ready`, then `None`.
    startup: Option<(OwnedSemaphorePermit, Present)>,
    /// Its place in its address's count, for as long as it lives.
    _address: Option<AddressSlot>,
    /// Its place among the live connections once identified, and the
    /// signal an operator ends it with.
    live: Option<(LiveEntry, Dismissal)>,
}

/// How a connection's conversation ended.
struct Ending {
    /// Why, for the log.
    reason: Reason,
    /// Who the client was, once identified.
    user: Option<String>,
}

impl Ending {
    fn before_ready(reason: Reason) -> Ending {
        Ending { reason, user: None }
    }
}

impl<S: Stream> Handler<S> {
    /// A handler for `stream` from `peer`, whose bytes `read_ahead` were
    /// read from it already (after `welcome` was written), ended by
    /// `closer`, holding what admission gave it and its place among the
    /// handshakes.
    pub(crate) fn new(
        stream: S,
        read_ahead: BytesMut,
        peer: PeerInfo,
        shared: Arc<Shared>,
        closer: Closer,
        (admitted, handshaking): (Admitted, Present),
    ) -> Handler<S> {
        let queue = shared.config.outgoing_queue;
        let (outbox, inbox) = outbox::channel(queue, closer.clone(), peer.addr);
        let mut conn = Connection::new(
            stream,
            peer.addr,
            shared.codec,
            inbox,
            queue,
            closer.clone(),
        );
        conn.opened(shared.welcome.as_bytes().len(), read_ahead);
        // Small until `ready`: a stranger cannot make us buffer much.
        conn.set_max_frame_len(shared.pre_login_max_frame_len);
        conn.count_into(shared.traffic.clone());
        Handler {
            client: Client::new(conn, peer, closer),
            outbox,
            shared,
            startup: Some((admitted.startup, handshaking)),
            _address: admitted.address,
            live: None,
        }
    }

    /// Serves the client accepted at `accepted` until the conversation
    /// ends with a handshake finished by `deadline`, logs and counts why it
    /// ended, and writes what is owed.
    pub(crate) async fn run(mut self, accepted: Instant, deadline: Instant) {
        let ending = self.converse(accepted, deadline).await;
        let peer = self.client.peer().clone();
        let user = ending.user.as_deref().unwrap_or("-");
        let protocol_errors = self.client.protocol_errors();
        let reason = ending.reason;
        reason.count();
        match reason {
            // Past its address's churn rate: counted by the listener, not
            // logged here (a flood of connections cannot flood the log).
            _ if !peer.logged => {
                debug!(peer = %peer, user = %user, reason = %reason, protocol_errors, "disconnected");
            }
            Reason::Protocol(_)
            | Reason::QueueFull
            | Reason::Timeout
            | Reason::Idle
            | Reason::SlowFrame
            | Reason::Io(_)
            | Reason::Upgrade(_)
            | Reason::ServerError => {
                warn!(peer = %peer, user = %user, reason = %reason, protocol_errors, "disconnected");
            }
            _ => {
                info!(peer = %peer, user = %user, reason = %reason, protocol_errors, "disconnected")
            }
        }
        self.finish().await;
    }

    /// The conversation until it must end. The farewell frame (`error`,
    /// `bye`) is written into the connection's buffer before returning when
    /// there is one.
    async fn converse(&mut self, accepted: Instant, deadline: Instant) -> Ending {
        let (identity, since) = match self.identify(accepted, deadline).await {
            Ok(admitted) => admitted,
            Err(reason) => return Ending::before_ready(reason),
        };
        let reason = self.serve_ready(&identity, since).await;
        Ending {
            reason,
            user: Some(identity.user),
        }
    }

    /// The handshake under `deadline` (`welcome` went out before), for a
    /// client accepted at `accepted`.
    async fn identify(
        &mut self,
        accepted: Instant,
        deadline: Instant,
    ) -> Result<(Identity, Option<u64>), Reason> {
        let shared = self.shared.clone();
        let graceful = &shared.shutdown.graceful;
        let closer = self.client.closer().clone();

        // Futures live inside this block so that `client` is free again
        // when a branch is handled.
        let step = {
            // Boxed: the handshake (with the auth modes' store calls) is
            // large and short-lived; the task that then serves the client
            // for hours should not carry its size.
            let hs = tokio::time::timeout_at(
                deadline,
                Box::pin(handshake(&mut self.client, &shared.auth)),
            );
            tokio::select! {
                biased;
                () = graceful.cancelled() => Step::Shutdown,
                () = closer.closed() => Step::Closed,
                r = hs => match r {
                    Err(_) => Step::TimedOut,
                    Ok(r) => Step::Identified(r),
                },
            }
        };
        let admitted = match step {
            Step::Shutdown => return Err(self.farewell()),
            Step::Closed => return Err(closer.reason()),
            Step::TimedOut => {
                let limit = shared.config.handshake_timeout;
                warn!(peer = %self.client.peer(), timeout_ms = limit.as_millis() as u64, "handshake timed out");
                let _ = self.client.send(&ServerMessage::error(
                    ErrorCode::Timeout,
                    "handshake took too long",
                ));
                return Err(Reason::Timeout);
            }
            Step::Identified(Err(reason)) => {
                info!(peer = %self.client.peer(), reason = %reason, "handshake failed");
                return Err(reason);
            }
            Step::Identified(Ok(admitted)) => admitted,
        };
        let Entrant { identity, since } = admitted;
        // Registered before `ready`, so that the per-user cap refuses before
        // anything is served, and an operator can reach it from the start.
        let cap = shared.config.max_sessions_per_user;
        let Some(live) =
            shared
                .live
                .register(&identity.user, identity.session, (cap > 0).then_some(cap))
        else {
            info!(peer = %self.client.peer(), user = %identity.user, limit = cap,
                "too many connections for one user, refusing");
            metrics::refused(metrics::Limit::User);
            let _ = self.client.send(&ServerMessage::error(
                ErrorCode::Busy,
                "too many connections for this user, try again later",
            ));
            return Err(Reason::Refused("too many connections for one user"));
        };
        self.live = Some(live);
        self.client.send(&ServerMessage::Ready {
            user: identity.user.clone(),
        })?;
        // The handshake's slot is free for the next stranger.
        self.startup = None;
        metrics::handshake_took(accepted.elapsed());
        if self.client.peer().logged {
            info!(peer = %self.client.peer(), user = %identity.user, auth = %shared.auth.mode(), "handshake complete");
        }
        self.client
            .conn_mut()
            .set_max_frame_len(shared.config.max_frame_len);
        Ok((identity, since))
    }

    /// The service loop of an identified client; returns why it ended.
    /// `since` is the room `seq` the client asked to recover from.
    async fn serve_ready(&mut self, identity: &Identity, since: Option<u64>) -> Reason {
        let shared = self.shared.clone();
        let graceful = &shared.shutdown.graceful;
        let closer = self.client.closer().clone();
        // Registered at `ready`: nothing said in the room can come from a
        // connection an operator cannot reach.
        let Some((_, dismissal)) = &self.live else {
            return Reason::ServerError;
        };
        let dismissal = dismissal.clone();
        let participant = shared.service.join(&identity.user, &self.outbox, since);
        let _participating = Present::new(&shared.traffic.participants);
        // The stop signals, made once: a fresh `cancelled()` future per
        // message registered and dropped a waiter each time (about 6% of the
        // profile).
        let stop = async {
            tokio::select! {
                biased;
                () = graceful.cancelled() => Next::Shutdown,
                () = closer.closed() => Next::Closed,
                () = dismissal.dismissed() => Next::Dismissed,
            }
        };
        tokio::pin!(stop);
        // Idleness and slow frames are looked at when this fires, which is
        // rarely: the clock is read once per read, not per message.
        let limits = Deadlines::of(&shared.config);
        let timer = tokio::time::sleep_until(limits.next(self.client.conn_mut(), Instant::now()));
        tokio::pin!(timer);
        // The stop signals and the timer are polled only once they woke
        // the task (see `wake_flag`).
        let rare = WakeFlag::new();
        let mut served: u32 = 0;
        loop {
            // The client's next message is looked at first: one already read
            // (the rest of a pipelined batch), or one that woke the task, is
            // served without touching the stop signals or the timer. Those
            // are polled only after they woke the task. A client that never
            // lets the connection wait has the stop flags read every
            // STOP_CHECK_EVERY messages instead.
            served = served.wrapping_add(1);
            let check = served.is_multiple_of(STOP_CHECK_EVERY);
            let step = if check && graceful.is_cancelled() {
                Next::Shutdown
            } else if check && closer.is_closed() {
                Next::Closed
            } else if check && dismissal.is_dismissed() {
                Next::Dismissed
            } else {
                tokio::select! {
                    biased;
                    m = self.client.next_served() => Next::Message(m),
                    next = std::future::poll_fn(|cx| rare.poll(cx, |cx| {
                        match stop.as_mut().poll(cx) {
                            Poll::Ready(next) => Poll::Ready(next),
                            Poll::Pending => timer.as_mut().poll(cx).map(|()| Next::Timer),
                        }
                    })) => next,
                }
            };
            let message = match step {
                Next::Shutdown => return self.farewell(),
                Next::Closed => return closer.reason(),
                Next::Dismissed => return self.dismissed(&dismissal),
                Next::Timer => {
                    let now = Instant::now();
                    if let Some(overdue) = limits.overdue(self.client.conn_mut(), now) {
                        return self.overdue(overdue);
                    }
                    timer
                        .as_mut()
                        .reset(limits.next(self.client.conn_mut(), now));
                    // Polled again, to be woken at the new deadline.
                    rare.raise();
                    continue;
                }
                Next::Message(Err(reason)) => return reason,
                // The common case, served with the text borrowed from its
                // frame: no allocation, no copy but into the replies.
                Next::Message(Ok(Served::Say(frame))) => match self
                    .client
                    .serve_compact_say(&frame, |text, replies| participant.say_plain(replies, text))
                {
                    Some(said) => {
                        if let Err(reason) = self.said(said) {
                            return reason;
                        }
                        continue;
                    }
                    None => match self.client.understand_frame(frame) {
                        Ok(Some(message)) => message,
                        Ok(None) => continue,
                        Err(reason) => return reason,
                    },
                },
                Next::Message(Ok(Served::Message(message))) => message,
            };
            let outcome = match message {
                ClientMessage::Say { text, to: None } => {
                    let said = participant.say(&mut self.client.conn_mut().replies(), &text);
                    self.said(said)
                }
                ClientMessage::Say { text, to: Some(to) } => match participant.say_to(&to, &text) {
                    Some(Ok(())) => {
                        self.client.conn_mut().count_line();
                        Ok(())
                    }
                    Some(Err(refused)) => self.refused(refused),
                    None => self.client.refuse_out_of_turn(
                        &ClientMessage::Say { text, to: Some(to) },
                        "a say without `to`: this server has no chat room",
                    ),
                },
                ClientMessage::Who => match participant.who() {
                    Some(users) => self.client.send(&ServerMessage::Who { users }),
                    None => self.client.refuse_out_of_turn(
                        &ClientMessage::Who,
                        "say or bye: this server has no chat room",
                    ),
                },
                ClientMessage::Logout => match &identity.session {
                    Some(session) => {
                        let peer = self.client.peer().clone();
                        return shared
                            .auth
                            .logout(&mut self.client, &peer, &identity.user, session)
                            .await;
                    }
                    None => {
                        if self.client.count_protocol_error() {
                            info!(peer = %self.client.peer(), user = %identity.user, "logout without a session");
                        }
                        self.client.send(&ServerMessage::error(
                            ErrorCode::Unexpected,
                            "logout needs a session: this server has no passwords",
                        ))
                    }
                },
                other => self.client.refuse_out_of_turn(&other, "say or bye"),
            };
            if let Err(reason) = outcome {
                return reason;
            }
        }
    }

    /// Counts a line the client said to everyone, or answers its refusal.
    /// The refusal is out of line: an echo or a room line that goes through
    /// costs nothing more than the say itself.
    fn said(&mut self, said: Result<(), SayError>) -> Result<(), Reason> {
        match said {
            Ok(()) => {
                self.client.conn_mut().count_line();
                Ok(())
            }
            Err(refused) => self.refused(refused),
        }
    }

    /// Answers a line the client said that was refused: the protocol's
    /// error, or the end of the connection.
    #[cold]
    fn refused(&mut self, refused: SayError) -> Result<(), Reason> {
        match refused {
            SayError::TooLong(err) => {
                if self.client.count_protocol_error() {
                    info!(peer = %self.client.peer(), cause = %err, "line too long to pass on");
                }
                self.client.send(&ServerMessage::error(
                    ErrorCode::InvalidMessage,
                    "line too long to pass on",
                ))
            }
            SayError::UnknownUser => self.client.send(&ServerMessage::error(
                ErrorCode::UnknownUser,
                "no one of that name is in the room",
            )),
            SayError::Bus(BusError::Unavailable) => self.client.send(&ServerMessage::error(
                ErrorCode::Unavailable,
                "the room is unavailable right now; your line reached no one",
            )),
            SayError::Bus(err) => {
                warn!(peer = %self.client.peer(), cause = %err, "line not passed on");
                Err(Reason::ServerError)
            }
        }
    }

    /// Tells a client an operator ended its connection (`error{revoked}`,
    /// then `bye`).
    fn dismissed(&mut self, dismissal: &Dismissal) -> Reason {
        let Some(why) = dismissal.why() else {
            return Reason::ServerError;
        };
        let _ = self
            .client
            .send(&ServerMessage::error(ErrorCode::Revoked, why.text.clone()));
        let _ = self.client.send(&ServerMessage::Bye {
            text: "disconnected by an operator".into(),
        });
        Reason::Operator(why.reason)
    }

    /// Tells a client it was too slow (`error{timeout}`) and ends it.
    fn overdue(&mut self, overdue: Overdue) -> Reason {
        let (text, reason) = match overdue {
            Overdue::Idle => ("idle for too long", Reason::Idle),
            Overdue::Frame => ("a frame took too long to arrive", Reason::SlowFrame),
        };
        warn!(peer = %self.client.peer(), reason = %reason, "closing a slow client");
        let _ = self
            .client
            .send(&ServerMessage::error(ErrorCode::Timeout, text));
        reason
    }

    /// Queues `bye` for a server shutdown.
    fn farewell(&mut self) -> Reason {
        let _ = self.client.send(&ServerMessage::Bye {
            text: "server shutting down".into(),
        });
        Reason::Shutdown
    }

    /// The last writes: what is owed goes out (the farewell frame last)
    /// unless the connection was closed (hard stop, full queue, broken
    /// socket), or the client does not read: then the grace period ends it.
    async fn finish(mut self) {
        let closer = self.client.closer().clone();
        if closer.is_closed() {
            return;
        }
        let peer = self.client.peer().clone();
        let conn = self.client.conn_mut();
        let written = tokio::select! {
            biased;
            () = closer.closed() => false,
            r = tokio::time::timeout(self.shared.config.shutdown_grace, conn.finish()) => match r {
                Ok(Ok(())) => true,
                Ok(Err(err)) => {
                    debug!(peer = %peer, cause = %err, "final frames not written");
                    false
                }
                Err(_) => {
                    debug!(peer = %peer, "final frames not taken in time");
                    false
                }
            },
        };
        if written {
            conn.linger(LINGER, closer.closed()).await;
        }
    }
}

/// The time limits of a ready client.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// Without a byte from the client for this long, it is closed; `None`
    /// never.
    idle: Option<Duration>,
    /// A frame whose first byte arrived this long ago and is still not
    /// whole closes the client.
    frame: Duration,
}

/// Which limit a client overran.
#[derive(Debug, Clone, Copy)]
enum Overdue {
    Idle,
    Frame,
}

impl Deadlines {
    fn of(config: &Config) -> Deadlines {
        Deadlines {
            idle: (!config.idle_timeout.is_zero()).then_some(config.idle_timeout),
            frame: config.frame_timeout,
        }
    }

    /// Which limit `conn` overran at `now`, if any.
    fn overdue<S: Stream>(&self, conn: &Connection<S>, now: Instant) -> Option<Overdue> {
        if self
            .idle
            .is_some_and(|idle| now.saturating_duration_since(conn.last_read()) >= idle)
        {
            return Some(Overdue::Idle);
        }
        conn.partial_since()
            .filter(|since| now.saturating_duration_since(*since) >= self.frame)
            .map(|_| Overdue::Frame)
    }

    /// When to look again: at the next deadline, and at least every half
    /// frame limit, since a frame may start arriving meanwhile.
    fn next<S: Stream>(&self, conn: &Connection<S>, now: Instant) -> Instant {
        let mut next = now + self.frame / 2;
        if let Some(idle) = self.idle {
            next = next.min(conn.last_read() + idle);
        }
        if let Some(since) = conn.partial_since() {
            next = next.min(since + self.frame);
        }
        next
    }
}

enum Step {
    Shutdown,
    Closed,
    TimedOut,
    Identified(Result<Entrant, Reason>),
}

enum Next {
    Shutdown,
    Closed,
    Dismissed,
    /// Time to look at idleness and slow frames.
    Timer,
    Message(Result<Served, Reason>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::NoAuth;
    use crate::upgrade::Plain;
    use bytes::BytesMut;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Semaphore;

    fn shared(config: Config) -> Arc<Shared> {
        Arc::new(
            Shared::new(
                config,
                Service::Echo,
                Auth::None(NoAuth),
                Shutdown::default(),
            )
            .unwrap(),
        )
    }

    async fn frames_until_close(client: &mut tokio::io::DuplexStream) -> Vec<ServerMessage> {
        let mut bytes = Vec::new();
        client.read_to_end(&mut bytes).await.unwrap();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut out = Vec::new();
        while let Some(frame) = FrameCodec::new().decode(&mut buf).unwrap() {
            out.push(porter_wire::decode_message(&frame).unwrap());
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_gets_a_timeout_error_after_the_handshake_limit() {
        let config = Config {
            handshake_timeout: Duration::from_secs(30),
            ..Config::default()
        };
        let shared = shared(config);
        let permit = slots();
        let (server, mut client) = tokio::io::duplex(4096);
        let peer = PeerInfo::new(SocketAddr::from(([127, 0, 0, 1], 9)));
        let start = tokio::time::Instant::now();
        let serving = tokio::spawn(serve(server, peer, shared, Arc::new(Plain), permit));
        let frames = frames_until_close(&mut client).await;
        assert!(start.elapsed() >= Duration::from_secs(30));
        assert!(matches!(frames[0], ServerMessage::Welcome { .. }));
        assert!(matches!(
            frames[1],
            ServerMessage::Error {
                code: ErrorCode::Timeout,
                ..
            }
        ));
        assert_eq!(frames.len(), 2);
        drop(client);
        serving.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_client_is_not_timed_out() {
        let shared = shared(Config::default());
        let permit = slots();
        let (server, mut client) = tokio::io::duplex(4096);
        let peer = PeerInfo::new(SocketAddr::from(([127, 0, 0, 1], 9)));
        let serving = tokio::spawn(serve(server, peer, shared, Arc::new(Plain), permit));
        let hello = br#"{"type":"hello"}"#;
        client
            .write_all(&(hello.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(hello).await.unwrap();
        // Well past the handshake limit, then leave politely.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let bye = br#"{"type":"bye"}"#;
        client
            .write_all(&(bye.len() as u32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(bye).await.unwrap();
        let frames = frames_until_close(&mut client).await;
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(
            frames[1],
            ServerMessage::Ready {
                user: "127.0.0.1:9".into()
            }
        );
        drop(client);
        serving.await.unwrap();
    }

    /// A connection slot and what admission gives, for one connection.
    fn slots() -> (OwnedSemaphorePermit, Admitted) {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let admitted = crate::admission::Admission::new(1, 1, None)
            .admit(std::net::IpAddr::from([127, 0, 0, 1]), || 0)
            .unwrap();
        (permit, admitted)
    }

    /// A frame with its header.
    fn frame(json: &str) -> Vec<u8> {
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes
    }

    /// A ready client on a paused clock: serves it with `config`, says
    /// hello, and returns once `ready` has arrived.
    async fn ready_client(
        config: Config,
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
        let shared = shared(config);
        let permit = slots();
        let (server, mut client) = tokio::io::duplex(4096);
        let peer = PeerInfo::new(SocketAddr::from(([127, 0, 0, 1], 9)));
        let serving = tokio::spawn(serve(server, peer, shared, Arc::new(Plain), permit));
        client
            .write_all(&frame(r#"{"type":"hello"}"#))
            .await
            .unwrap();
        (client, serving)
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_client_that_sends_nothing_is_closed_after_the_idle_timeout() {
        let config = Config {
            idle_timeout: Duration::from_secs(600),
            ..Config::default()
        };
        let start = tokio::time::Instant::now();
        let (mut client, serving) = ready_client(config).await;
        // A keep-alive half-way through postpones it.
        tokio::time::sleep(Duration::from_secs(400)).await;
        client.write_all(&0u32.to_be_bytes()).await.unwrap();
        let frames = frames_until_close(&mut client).await;
        assert!(
            start.elapsed() >= Duration::from_secs(1000),
            "{:?}",
            start.elapsed()
        );
        assert!(
            matches!(
                frames.last(),
                Some(ServerMessage::Error {
                    code: ErrorCode::Timeout,
                    text,
                }) if text.contains("idle")
            ),
            "{frames:?}"
        );
        drop(client);
        serving.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_dribbled_a_byte_at_a_time_is_cut_at_the_frame_timeout() {
        let config = Config {
            frame_timeout: Duration::from_secs(30),
            ..Config::default()
        };
        let (mut client, serving) = ready_client(config).await;
        let start = tokio::time::Instant::now();
        let say = frame(r#"{"type":"say","text":"slowly"}"#);
        let mut cut = false;
        for byte in say {
            if client.write_all(&[byte]).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let frames = frames_until_close(&mut client).await;
        let elapsed = start.elapsed();
        assert!(cut || elapsed < Duration::from_secs(60), "{elapsed:?}");
        assert!(elapsed >= Duration::from_secs(30), "{elapsed:?}");
        assert!(
            matches!(
                frames.last(),
                Some(ServerMessage::Error {
                    code: ErrorCode::Timeout,
                    text,
                }) if text.contains("frame")
            ),
            "{frames:?}"
        );
        drop(client);
        serving.await.unwrap();
    }
}
