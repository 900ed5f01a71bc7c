//! The room on NATS JetStream, for several instances of the server
//! (`porter serve --bus nats://...`), after Centrifugo's design: a broker
//! orders each channel's publications, keeps history with offsets, and
//! every instance delivers to its own members.
//!
//! - **Room lines** go to one JetStream stream (`{prefix}_room`, subject
//!   `{prefix}.room`, at most `--history` messages kept, file storage). A
//!   line counts as said only when JetStream acknowledges it; the stream's
//!   sequence is its `seq` on every instance. Each instance reads the
//!   stream in order with an ordered consumer and delivers every line to its
//!   members under one lock, with the same [`History`] mirror as the
//!   in-process bus, so joining and recovery (`since`) work exactly as
//!   there: no gap, no duplicate.
//! - **Events, private lines and presence** are not part of the room's
//!   order or history (they have no `seq`): core NATS subjects under
//!   `{prefix}.live.`. Each instance says who is in the room on it when that
//!   changes and every 2 seconds; `who` is the union of what the instances
//!   said in the last 6 seconds.
//! - **Operator actions** are recorded in the store; the admin commands
//!   also publish on `{prefix}.live.control`, which wakes every instance's
//!   operator watch at once.
//! - **A broker that is down** refuses new lines at once (`unavailable` to
//!   the sender); a line whose acknowledgement does not come is reported to
//!   its sender the same way, and nothing is retried behind anyone's back
//!   (each publication carries a message id, so JetStream drops a
//!   duplicate). The client reconnects by itself, and the ordered consumer
//!   resumes after the last sequence it delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use porter_store::UnixTime;
use porter_wire::{ErrorCode, EventKind, ServerMessage};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::bus::{Body, Bus, BusError, History, InstanceId, Line, MemberId, Origin};
use super::fanout::Fanout;
use crate::clock::Clock;

/// Where the room lives on NATS: `porter serve --bus URL --bus-prefix P`.
#[derive(Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// The NATS server, `nats://host:port` (credentials in it are never
    /// logged).
    pub url: String,
    /// Names the stream (`{prefix}_room`) and the subjects (`{prefix}.`):
    /// instances with the same prefix share a room. Letters, digits, `-`
    /// and `_`.
    pub prefix: String,
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// `url` without a password or token.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The default prefix.
pub const DEFAULT_BUS_PREFIX: &str = "porter";

/// The subject (under `{prefix}.live.`) on which the admin commands say
/// that an operator acted: every instance reads the store's action log at
/// once instead of at its next poll.
pub const CONTROL: &str = "control";

/// The control subject of the bus with `prefix`: what `porter kick` and the
/// other admin commands publish on.
pub fn control_subject(prefix: &str) -> String {
    format!("{prefix}.live.{CONTROL}")
}

/// How long a publication may wait for JetStream's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an instance says who is in the room on it.
const PRESENCE_EVERY: Duration = Duration::from_secs(2);
/// How long what an instance said of its members counts.
const PRESENCE_FOR: Duration = Duration::from_secs(6);
/// Lines waiting for the publisher; past it, senders are told
/// `unavailable` rather than kept waiting.
const OUTGOING_QUEUE: usize = 4096;
/// How long start-up waits to reach NATS and to read the room's history.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the bus could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusSetupError {
    #[error("the bus prefix {0:?} must be letters, digits, '-' and '_'")]
    Prefix(String),
    #[error("cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot set up the JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("the room's history was not read within {} s", START_TIMEOUT.as_secs())]
    CatchUp,
}

/// A room line, private line or event as it travels on NATS.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    instance: u64,
    member: Option<u64>,
    at: UnixTime,
    #[serde(flatten)]
    body: WireBody,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireBody {
    Say {
        from: String,
        text: String,
        by_member: bool,
    },
    Private {
        from: String,
        to: String,
        text: String,
    },
    Event {
        event: EventKind,
        user: String,
    },
}

impl Wire {
    fn of(line: &Line) -> Wire {
        let body = match &line.body {
            Body::Say {
                from,
                text,
                by_member,
            } => WireBody::Say {
                from: from.to_string(),
                text: text.to_string(),
                by_member: *by_member,
            },
            Body::Private { from, to, text } => WireBody::Private {
                from: from.to_string(),
                to: to.to_string(),
                text: text.to_string(),
            },
            Body::Event { kind, user } => WireBody::Event {
                event: *kind,
                user: user.to_string(),
            },
        };
        Wire {
            instance: line.origin.instance.0,
            member: line.origin.member.map(|m| m.0),
            at: line.at,
            body,
        }
    }

    fn into_line(self, seq: Option<u64>) -> Line {
        let body = match self.body {
            WireBody::Say {
                from,
                text,
                by_member,
            } => Body::Say {
                from: from.into(),
                text: text.into(),
                by_member,
            },
            WireBody::Private { from, to, text } => Body::Private {
                from: from.into(),
                to: to.into(),
                text: text.into(),
            },
            WireBody::Event { event, user } => Body::Event {
                kind: event,
                user: user.into(),
            },
        };
        Line {
            origin: Origin {
                instance: InstanceId(self.instance),
                member: self.member.map(MemberId),
            },
            body,
            seq,
            at: self.at,
        }
    }
}

/// What an instance says of its members.
#[derive(Debug, Serialize, Deserialize)]
struct Presence {
    instance: u64,
    names: Vec<String>,
}

/// The room's bus on NATS JetStream.
pub(crate) struct JetStreamBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream_name: String,
    room_subject: String,
    live_prefix: String,
    clock: Clock,
    keep: usize,
    fanout: OnceLock<Fanout>,
    history: Mutex<History>,
    outgoing: mpsc::Sender<Line>,
    outgoing_rx: Mutex<Option<mpsc::Receiver<Line>>>,
    presence: Mutex<HashMap<u64, (Vec<String>, Instant)>>,
    /// The stream's last sequence at start; `true` once delivered.
    caught_up: watch::Sender<bool>,
    start_seq: u64,
    published: AtomicU64,
    shutdown: CancellationToken,
    /// Notified when the control subject says an operator acted.
    nudge: Arc<Notify>,
}

impl JetStreamBus {
    /// Connects to NATS and sets up the room's stream (keeping `keep`
    /// lines); the bus starts delivering once attached.
    pub(crate) async fn connect(
        config: &BusConfig,
        clock: Clock,
        keep: usize,
        shutdown: CancellationToken,
        nudge: Arc<Notify>,
    ) -> Result<JetStreamBus, BusSetupError> {
        let prefix = &config.prefix;
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BusSetupError::Prefix(prefix.clone()));
        }
        let url = redact_url(&config.url);
        let connect_error = |reason: String| BusSetupError::Connect {
            url: url.clone(),
            reason,
        };
        let options = async_nats::ConnectOptions::new()
            .name("porter serve")
            .connection_timeout(START_TIMEOUT)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => info!("room bus connected"),
                    async_nats::Event::Disconnected => warn!("room bus disconnected, reconnecting"),
                    other => debug!(event = %other, "room bus event"),
                }
            });
        let client = tokio::time::timeout(
            START_TIMEOUT,
            async_nats::connect_with_options(config.url.as_str(), options),
        )
        .await
        .map_err(|_| connect_error("no answer".into()))?
        .map_err(|err| connect_error(err.to_string()))?;
        let js = jetstream::new(client.clone());
        let stream_name = format!("{prefix}_room");
        let room_subject = format!("{prefix}.room");
        let stream_error = |reason: String| BusSetupError::Stream {
            stream: stream_name.clone(),
            reason,
        };
        let wanted = stream::Config {
            name: stream_name.clone(),
            subjects: vec![room_subject.clone()],
            // JetStream takes 0 as "no limit"; one line is the least kept.
            max_messages: i64::try_from(keep.max(1)).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|err| stream_error(err.to_string()))?;
        let info = stream
            .info()
            .await
            .map_err(|err| stream_error(err.to_string()))?;
        if info.config.max_messages != wanted.max_messages
            && let Err(err) = js.update_stream(wanted).await
        {
            warn!(cause = %err, "cannot change how many lines the room's stream keeps");
        }
        let start_seq = info.state.last_sequence;
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (caught_up, _) = watch::channel(start_seq == 0);
        info!(url = %url, stream = %stream_name, last_seq = start_seq, "room bus ready");
        Ok(JetStreamBus {
            inner: Arc::new(Inner {
                client,
                js,
                stream_name,
                room_subject,
                live_prefix: format!("{prefix}.live"),
                clock,
                keep,
                fanout: OnceLock::new(),
                history: Mutex::new(History::default()),
                outgoing,
                outgoing_rx: Mutex::new(Some(outgoing_rx)),
                presence: Mutex::new(HashMap::new()),
                caught_up,
                start_seq,
                published: AtomicU64::new(0),
                shutdown,
                nudge,
            }),
        })
    }

    /// Waits until the lines the stream held at start are delivered here,
    /// so that the first joiners see the whole history.
    pub(crate) async fn caught_up(&self) -> Result<(), BusSetupError> {
        let mut rx = self.inner.caught_up.subscribe();
        tokio::time::timeout(START_TIMEOUT, rx.wait_for(|done| *done))
            .await
            .map_err(|_| BusSetupError::CatchUp)?
            .map_err(|_| BusSetupError::CatchUp)?;
        Ok(())
    }
}

impl Inner {
    fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn presence(&self) -> MutexGuard<'_, HashMap<u64, (Vec<String>, Instant)>> {
        self.presence.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits a second before trying NATS again; `false` when the server
    /// shuts down meanwhile.
    async fn pause(&self) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(Duration::from_secs(1)) => true,
        }
    }

    fn subject(&self, kind: &str) -> String {
        format!("{}.{kind}", self.live_prefix)
    }

    /// Tells the member that said `line` that it reached no one.
    fn tell_unavailable(&self, line: &Line) {
        let (Some(fanout), Some(member)) = (self.fanout.get(), line.origin.member) else {
            return;
        };
        if line.origin.instance != fanout.instance() {
            return;
        }
        let error = ServerMessage::error(
            ErrorCode::Unavailable,
            "the room is unavailable right now; your line reached no one",
        );
        if let Ok(frame) = fanout.frame_message(&error) {
            fanout.tell(member, frame);
        }
    }

    /// Says who is in the room on this instance.
    async fn announce(&self) {
        let Some(fanout) = self.fanout.get() else {
            return;
        };
        let presence = Presence {
            instance: fanout.instance().0,
            names: fanout.names(),
        };
        let payload = serde_json::to_vec(&presence).unwrap_or_default();
        if let Err(err) = self
            .client
            .publish(self.subject("presence"), payload.into())
            .await
        {
            debug!(cause = %err, "presence not published");
        }
    }
}

impl Bus for JetStreamBus {
    fn attach(&self, fanout: Fanout) {
        if self.inner.fanout.set(fanout).is_err() {
            return;
        }
        let rx = self
            .inner
            .outgoing_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(rx) = rx {
            tokio::spawn(publish_loop(self.inner.clone(), rx));
        }
        tokio::spawn(consume_loop(self.inner.clone()));
        tokio::spawn(live_loop(self.inner.clone()));
        tokio::spawn(presence_loop(self.inner.clone()));
    }

    fn publish(&self, mut line: Line) -> Result<(), BusError> {
        if self.inner.fanout.get().is_none() {
            return Err(BusError::Detached);
        }
        if self.inner.client.connection_state() != State::Connected {
            return Err(BusError::Unavailable);
        }
        line.at = self.inner.clock.now();
        self.inner
            .outgoing
            .try_send(line)
            .map_err(|_| BusError::Unavailable)
    }

    fn join_with_history(&self, join: &mut dyn FnMut(&[Line], u64)) {
        let mut history = self.inner.history();
        let (held, last) = history.held();
        join(held, last);
    }

    fn who(&self) -> Vec<String> {
        let mut names = self
            .inner
            .fanout
            .get()
            .map(Fanout::names)
            .unwrap_or_default();
        let now = Instant::now();
        for (seen, at) in self.inner.presence().values() {
            if now.duration_since(*at) < PRESENCE_FOR {
                names.extend(seen.iter().cloned());
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Publishes what this instance's members say, in order: room lines to the
/// stream (acknowledged), the rest to core NATS.
async fn publish_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<Line>) {
    loop {
        let line = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            line = rx.recv() => match line {
                Some(line) => line,
                None => return,
            },
        };
        // A line queued while the connection was up but taken out after it
        // went down is refused now, rather than buffered by the client and
        // perhaps delivered after its sender was told it was not.
        if inner.client.connection_state() != State::Connected {
            inner.tell_unavailable(&line);
            continue;
        }
        let payload = Bytes::from(serde_json::to_vec(&Wire::of(&line)).unwrap_or_default());
        let result = match &line.body {
            Body::Say { .. } => {
                let n = inner.published.fetch_add(1, Ordering::Relaxed);
                let id = format!("{}-{n}", line.origin.instance.0);
                let publish = PublishMessage::build().payload(payload).message_id(id);
                let acked = async {
                    let ack = inner
                        .js
                        .send_publish(inner.room_subject.clone(), publish)
                        .await
                        .map_err(|err| err.to_string())?;
                    ack.await.map_err(|err| err.to_string())
                };
                match tokio::time::timeout(ACK_TIMEOUT, acked).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(err),
                    Err(_) => Err("no acknowledgement".to_owned()),
                }
            }
            Body::Private { .. } => inner
                .client
                .publish(inner.subject("private"), payload)
                .await
                .map_err(|err| err.to_string()),
            Body::Event { .. } => {
                let sent = inner
                    .client
                    .publish(inner.subject("event"), payload)
                    .await
                    .map_err(|err| err.to_string());
                // Who is here changed: say so now, not at the next beat.
                inner.announce().await;
                sent
            }
        };
        if let Err(cause) = result {
            warn!(cause = %cause, "a line could not be published on the room's bus");
            inner.tell_unavailable(&line);
        }
    }
}

/// Reads the room's stream in order and delivers every line here; resumes
/// after the last sequence delivered when the consumer has to be made
/// again.
async fn consume_loop(inner: Arc<Inner>) {
    let Some(fanout) = inner.fanout.get().cloned() else {
        return;
    };
    loop {
        let next = inner.history().seq + 1;
        let policy = if next == 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: next,
            }
        };
        let consumer = async {
            let stream = inner
                .js
                .get_stream(&inner.stream_name)
                .await
                .map_err(|err| err.to_string())?;
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subject: inner.room_subject.clone(),
                    deliver_policy: policy,
                    ..Default::default()
                })
                .await
                .map_err(|err| err.to_string())?;
            consumer.messages().await.map_err(|err| err.to_string())
        };
        let mut messages = match consumer.await {
            Ok(messages) => messages,
            Err(cause) => {
                warn!(cause = %cause, "cannot read the room's stream, trying again");
                if inner.pause().await {
                    continue;
                }
                return;
            }
        };
        loop {
            let message = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                message = messages.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    debug!(cause = %err, "room stream read interrupted");
                    continue;
                }
                None => break,
            };
            let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
                continue;
            };
            let mut history = inner.history();
            if seq <= history.seq {
                // Already delivered (a consumer made again overlaps).
                continue;
            }
            match serde_json::from_slice::<Wire>(&message.payload) {
                Ok(wire) => history.deliver(&fanout, wire.into_line(Some(seq)), inner.keep),
                Err(err) => {
                    warn!(seq, cause = %err, "a room line on the bus is not understood, skipped");
                    history.seq = seq;
                }
            }
            if seq >= inner.start_seq {
                inner.caught_up.send_replace(true);
            }
        }
    }
}

/// Events, private lines and presence from every instance.
async fn live_loop(inner: Arc<Inner>) {
    let Some(fanout) = inner.fanout.get().cloned() else {
        return;
    };
    let own = fanout.instance().0;
    loop {
        let mut subscription = match inner
            .client
            .subscribe(format!("{}.>", inner.live_prefix))
            .await
        {
            Ok(subscription) => subscription,
            Err(err) => {
                warn!(cause = %err, "cannot subscribe to the room's events, trying again");
                if inner.pause().await {
                    continue;
                }
                return;
            }
        };
        loop {
            let message = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                message = subscription.next() => message,
            };
            let Some(message) = message else { break };
            if message.subject.as_str() == inner.subject(CONTROL) {
                inner.nudge.notify_one();
                continue;
            }
            if message.subject.as_str() == inner.subject("presence") {
                if let Ok(presence) = serde_json::from_slice::<Presence>(&message.payload)
                    && presence.instance != own
                {
                    inner
                        .presence()
                        .insert(presence.instance, (presence.names, Instant::now()));
                }
                continue;
            }
            match serde_json::from_slice::<Wire>(&message.payload) {
                Ok(wire) => {
                    fanout.deliver(&wire.into_line(None));
                }
                Err(err) => debug!(cause = %err, "a live message on the bus is not understood"),
            }
        }
    }
}

/// Says who is here every [`PRESENCE_EVERY`].
async fn presence_loop(inner: Arc<Inner>) {
    loop {
        inner.announce().await;
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = tokio::time::sleep(PRESENCE_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cross_the_wire_whole() {
        let line = Line {
            origin: Origin {
                instance: InstanceId(7),
                member: Some(MemberId(3)),
            },
            body: Body::Private {
                from: "ada".into(),
                to: "bob".into(),
                text: "psst".into(),
            },
            seq: None,
            at: 1_700_000_000,
        };
        let bytes = serde_json::to_vec(&Wire::of(&line)).unwrap();
        let back = serde_json::from_slice::<Wire>(&bytes)
            .unwrap()
            .into_line(None);
        assert_eq!(back, line);
    }

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            redact_url("nats://user:pw@host:4222"),
            "nats://***@host:4222"
        );
        assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
    }
}
