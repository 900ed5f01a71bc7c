//! The conversation at a terminal: a line editor (rustyline-async) with
//! history, and the server's lines printed above the line being typed, as
//! [`crate::view`] shows them (a local time on each, unless
//! [`Options::timestamps`] is off). Lines typed are read as
//! [`crate::command`] says: a line for the room, or a slash command.
//!
//! Questions during the handshake are asked *before* the line editor starts,
//! by [`TerminalAnswerer`] through [`crate::terminal`]: a `secret` answer
//! without echo (Ctrl-Z and `fg` keep it hidden), a plain one as a line,
//! both on a blocking thread while the handshake keeps reading the
//! connection. That works because the protocol only asks before `ready`;
//! once the editor owns the terminal (raw mode) nothing else reads it.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use porter_wire::text::printable;
use porter_wire::{Secret, ServerMessage};
use rustyline_async::{Readline, ReadlineEvent, SharedWriter};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::answers::{Answerer, Ask, Notice, ScriptedAnswers};
pub use crate::command::QUIT_COMMAND;
use crate::command::{Command, HELP};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::handshake::SessionInfo;
use crate::view::{Flow, Shown, View};

/// How the conversation is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// A local time (`HH:MM`) at the start of each line received.
    pub timestamps: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { timestamps: true }
    }
}

/// Answers the server's questions at the terminal, hiding secret answers.
///
/// Answers given in advance (`--user`, `PORTER_PASSWORD`) are used first,
/// once each; when the server refuses one and asks again, the terminal is
/// asked.
#[derive(Debug, Default)]
pub struct TerminalAnswerer {
    preset: ScriptedAnswers,
}

impl TerminalAnswerer {
    /// Asks the terminal only what `preset` cannot answer.
    pub fn with_preset(preset: ScriptedAnswers) -> Self {
        TerminalAnswerer { preset }
    }
}

impl Answerer for TerminalAnswerer {
    async fn answer(&mut self, ask: &Ask) -> Result<Secret> {
        if let Some(answer) = self.preset.take(ask) {
            return Ok(answer);
        }
        let text = printable(&ask.text);
        let separator = if text.ends_with(char::is_whitespace) {
            ""
        } else {
            " "
        };
        // Dropped (the server spoke first), this abandons the prompt.
        crate::terminal::ask(format!("{text}{separator}"), ask.secret).await
    }

    fn notice(&mut self, notice: &Notice) {
        match notice {
            Notice::Say { from, text } => println!("{}: {}", printable(from), printable(text)),
            Notice::Error(error) => eprintln!("porter: {error}"),
        }
    }
}

/// Opens the conversation again after the connection was lost: a new
/// connection and a handshake whose `hello` carries `since` (the last room
/// line seen), so that the server replays what was missed. It must not ask
/// at the terminal (the line editor owns it): answers given in advance and
/// the session token are all it has.
pub trait Reconnect {
    /// The stream of the new connection.
    type Stream: AsyncRead + AsyncWrite + Unpin;

    /// Opens it.
    ///
    /// # Errors
    /// Whatever kept it from opening; see [`Error::is_lost_connection`]
    /// for which errors are worth another try.
    fn reconnect(
        &mut self,
        since: Option<u64>,
    ) -> impl Future<Output = Result<(Connection<Self::Stream>, SessionInfo)>>;
}

/// No reconnection: a lost connection ends the conversation.
#[derive(Debug)]
pub struct NoReconnect<T>(std::marker::PhantomData<T>);

impl<T: AsyncRead + AsyncWrite + Unpin> Reconnect for NoReconnect<T> {
    type Stream = T;

    async fn reconnect(&mut self, _since: Option<u64>) -> Result<(Connection<T>, SessionInfo)> {
        Err(Error::Protocol("reconnection is off".into()))
    }
}

/// First pause before reconnecting; doubled after each failed try.
pub const FIRST_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Longest pause between tries.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// Runs the conversation at the terminal until `/quit`, Ctrl-D, Ctrl-C or
/// the end of the connection. Lines typed are sent as `say` (or are
/// commands); what the server sends is printed above the prompt.
///
/// # Errors
/// [`Error::Terminal`] when the line editor cannot start (no terminal);
/// [`Error::Ended`] when the server closes without `bye`, or ends the
/// conversation right after an `error`; [`Error::Wire`].
pub async fn run<T>(conn: Connection<T>, info: &SessionInfo, options: Options) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    run_reconnecting(conn, info, options, None::<NoReconnect<T>>).await
}

/// [`run`], and when the connection is lost (it breaks, or closes without
/// `bye`), says so and reconnects with `reconnect`, after 1 s, then 2, 4,
/// ... up to 30 s between tries, until it succeeds, fails for good (a
/// refusal), or the person leaves. The new `hello` carries the `seq` of
/// the last room line shown, so nothing is missed or shown twice.
///
/// # Errors
/// As [`run`]; and the error of a reconnection that cannot succeed.
pub async fn run_reconnecting<T, R>(
    conn: Connection<T>,
    info: &SessionInfo,
    options: Options,
    reconnect: Option<R>,
) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    R: Reconnect<Stream = T>,
{
    let (mut editor, mut shown) = Readline::new(format!("{}> ", printable(&info.user)))
        .map_err(|e| Error::Terminal(format!("cannot start the line editor: {e}")))?;
    show(
        &mut shown,
        &format!(
            "connected to {} as {} (/help lists the commands; {QUIT_COMMAND} or Ctrl-D to leave)",
            printable(&info.server),
            printable(&info.user)
        ),
    );
    let view = View::new(options.timestamps);
    let outcome = converse(conn, &mut editor, &mut shown, view, reconnect).await;
    // Print whatever is still queued and give the terminal back (raw mode
    // ends when the editor is dropped) before the caller prints an error.
    let _ = editor.flush();
    drop(editor);
    outcome
}

/// The link to the server: up, or down until the next try.
enum Link<T> {
    Up(Connection<T>),
    Down { retry_at: Instant, delay: Duration },
}

async fn converse<T, R>(
    conn: Connection<T>,
    editor: &mut Readline,
    shown: &mut SharedWriter,
    mut view: View,
    mut reconnect: Option<R>,
) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
    R: Reconnect<Stream = T>,
{
    let mut link = Link::Up(conn);
    let mut lines = Vec::new();
    // The `seq` of the last room line shown: where a reconnection resumes.
    let mut last_seq: Option<u64> = None;
    loop {
        tokio::select! {
            // The editor first: polling it is what drains `shown` to the
            // screen, so its queue never fills while messages pour in.
            biased;
            event = editor.readline() => match event {
                Ok(ReadlineEvent::Line(line)) => {
                    if line.is_empty() {
                        continue;
                    }
                    editor.add_history_entry(line.clone());
                    let command = Command::parse(&line);
                    let Link::Up(conn) = &mut link else {
                        match command {
                            Command::Quit => return Ok(()),
                            Command::Help => HELP.iter().for_each(|help| show(shown, help)),
                            _ => show(shown, "porter: not connected, not sent (reconnecting)"),
                        }
                        continue;
                    };
                    match command {
                        Command::Quit => return say_bye(conn).await,
                        Command::Help => {
                            for help in HELP {
                                show(shown, help);
                            }
                        }
                        command => {
                            if let Some(message) = command.message() {
                                match conn.send(&message).await {
                                    Ok(()) => {}
                                    Err(Error::Wire(porter_wire::Error::FrameTooLarge { len, max })) => {
                                        show(shown, &format!("porter: not sent: {len} bytes is over the limit of {max}"));
                                    }
                                    Err(e) if e.is_lost_connection() && reconnect.is_some() => {
                                        link = lost(shown, &e, FIRST_RECONNECT_DELAY);
                                    }
                                    Err(e) => return Err(e),
                                }
                            } else if let Some(complaint) = command.complaint() {
                                show(shown, &format!("porter: {complaint}"));
                            }
                        }
                    }
                }
                Ok(ReadlineEvent::Eof | ReadlineEvent::Interrupted) => {
                    return match &mut link {
                        Link::Up(conn) => say_bye(conn).await,
                        Link::Down { .. } => Ok(()),
                    };
                }
                Err(e) => return Err(Error::Terminal(e.to_string())),
            },
            event = link_event(&mut link) => {
                let LinkEvent::Received(message) = event else {
                    let Link::Down { delay, .. } = link else { continue };
                    let Some(reconnect) = reconnect.as_mut() else { continue };
                    match reconnect.reconnect(last_seq).await {
                        Ok((conn, info)) => {
                            show(shown, &format!(
                                "porter: reconnected to {} as {}{}",
                                printable(&info.server),
                                printable(&info.user),
                                last_seq.map_or_else(String::new, |seq| format!(", catching up after line {seq}")),
                            ));
                            link = Link::Up(conn);
                        }
                        Err(e) if e.is_lost_connection() => {
                            let next = (delay * 2).min(MAX_RECONNECT_DELAY);
                            show(shown, &format!("porter: reconnecting failed ({e}); next try in {} s", next.as_secs()));
                            link = Link::Down { retry_at: Instant::now() + next, delay: next };
                        }
                        Err(e) => return Err(e),
                    }
                    continue;
                };
                let message = match message {
                    Ok(Some(message)) => Some(message),
                    Ok(None) if reconnect.is_some() => {
                        link = lost(shown, &Error::Ended(crate::error::Ending::closed(None)), FIRST_RECONNECT_DELAY);
                        continue;
                    }
                    Ok(None) => None,
                    Err(e) if e.is_lost_connection() && reconnect.is_some() => {
                        link = lost(shown, &e, FIRST_RECONNECT_DELAY);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if let Some(ServerMessage::Say { seq: Some(seq), .. }) = &message {
                    last_seq = Some(*seq);
                }
                let flow = view.receive(message, Timestamp::now(), &mut lines);
                for line in lines.drain(..) {
                    match line {
                        Shown::Line(line) => show(shown, &line),
                        Shown::Note(note) => show(shown, &format!("porter: {note}")),
                    }
                }
                match flow? {
                    Flow::Continue => {}
                    Flow::Bye => return Ok(()),
                }
            }
        }
    }
}

/// Says that the connection was lost and when the next try is.
fn lost<T>(shown: &mut SharedWriter, why: &Error, delay: Duration) -> Link<T> {
    show(
        shown,
        &format!(
            "porter: connection lost ({why}); reconnecting in {} s ({QUIT_COMMAND} or Ctrl-D to leave)",
            delay.as_secs()
        ),
    );
    Link::Down {
        retry_at: Instant::now() + delay,
        delay,
    }
}

/// What happened on the link.
enum LinkEvent {
    /// It is up, and this came (or the connection ended).
    Received(Result<Option<ServerMessage>>),
    /// It is down, and the next try is due.
    Retry,
}

/// The next message while the link is up; the time of the next try while
/// it is down.
async fn link_event<T>(link: &mut Link<T>) -> LinkEvent
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match link {
        Link::Up(conn) => LinkEvent::Received(conn.recv().await),
        Link::Down { retry_at, .. } => {
            tokio::time::sleep_until(*retry_at).await;
            LinkEvent::Retry
        }
    }
}

async fn say_bye<T>(conn: &mut Connection<T>) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // The server may already be gone; leaving is what the user asked for.
    if let Err(e) = conn.send(&porter_wire::ClientMessage::Bye).await {
        tracing::debug!(error = %e, "bye not delivered");
    }
    Ok(())
}

/// Prints one line above the prompt. The editor drains the queue on every
/// poll (see `biased` above), so a full queue means the terminal is gone;
/// the line is dropped then rather than blocking the conversation.
fn show(shown: &mut SharedWriter, line: &str) {
    let _ = writeln!(shown, "{line}");
}
