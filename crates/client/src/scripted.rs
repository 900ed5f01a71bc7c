//! The conversation when standard input is not a terminal: every input line
//! is one `say` (or one of the commands of [`crate::command`]: `/msg`,
//! `/me`, `/who`, `/quit`; `//` starts a line with `/`), and what the server
//! sends is printed as [`crate::view`] shows it, without the time:
//! `from: text` for a line, `--> ada joined` for an event. Porter's own
//! notes (refusals, the server's goodbye) go to the error stream as
//! `porter: …`, so the output holds only the conversation.
//!
//! # When to stop: the reply rule
//!
//! The client does not know the service (`welcome` does not say it), so it
//! cannot know how many replies to expect. After the end of input it keeps
//! reading until the first of:
//!
//! 1. as many `say` messages have arrived since `ready` as it sent, and as
//!    many `who` answers as it sent `/who`: in echo each `say` gets exactly
//!    one reply, so a piped echo session ends as soon as its last reply is
//!    printed, with no waiting at all;
//! 2. nothing has arrived for [`ScriptedOptions::quiet`] (chat, where no one
//!    owes us a reply, or a server that answers less than expected);
//! 3. [`ScriptedOptions::max_wait`] has passed since the end of input, so a
//!    busy chat room cannot keep a script running forever.
//!
//! Then it sends `bye` and returns. Reading and writing run side by side, so
//! a long input never stops the client from draining the server's replies.

use std::io::Write;
use std::time::Duration;

use porter_wire::{ClientMessage, ServerMessage};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::command::{Command, HELP};
use crate::connection::{Connection, MessageReader, MessageWriter};
use crate::error::{Error, Result};
use crate::view::{Flow, Shown, View};

/// How long the server may stay silent after the end of input before the
/// client stops waiting for replies (rule 2). Far above a local echo round
/// trip, short enough not to be noticed in chat.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(500);

/// The longest the client waits for replies after the end of input (rule 3).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// Tuning of the reply rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptedOptions {
    /// Rule 2: stop after this long without a message.
    pub quiet: Duration,
    /// Rule 3: stop after this long in any case.
    pub max_wait: Duration,
}

impl Default for ScriptedOptions {
    fn default() -> Self {
        ScriptedOptions {
            quiet: DEFAULT_QUIET,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// What a finished scripted conversation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// `say` messages sent (lines too long to send, and commands that send
    /// no `say`, are not counted).
    pub sent: u64,
    /// `say` messages received after `ready`.
    pub received: u64,
    /// Whether the server ended the conversation (with a plain `bye`) before
    /// the client did.
    pub ended_by_server: bool,
}

/// What the writer sent, told to the reader at the end of input: the
/// replies rule 1 waits for.
#[derive(Debug, Clone, Copy, Default)]
struct Owed {
    /// `say` messages sent.
    says: u64,
    /// `who` messages sent.
    whos: u64,
}

/// Why the reader stopped, told to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The reply rule is satisfied: say `bye`.
    Finish,
    /// The server is gone or ended the conversation: nothing more to send.
    ServerGone,
}

/// Runs a scripted conversation on an established session (after `ready`):
/// sends each line of `input` as a `say` (or runs it as a command), prints
/// what the server says to `out` and Porter's notes to `err`, and stops by
/// the reply rule described in the module docs.
///
/// # Errors
/// [`Error::Ended`] when the server ends the conversation right after an
/// `error`, or closes without `bye` ([`crate::Ending`] without a `bye` text);
/// [`Error::Input`] and [`Error::Output`] for local I/O; [`Error::Wire`].
pub async fn run<T, I, O, E>(
    conn: Connection<T>,
    input: I,
    out: &mut O,
    err: &mut E,
    options: ScriptedOptions,
) -> Result<Summary>
where
    T: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + Unpin,
    O: Write,
    E: Write,
{
    let (reader, writer) = conn.split();
    let (eof_tx, eof_rx) = oneshot::channel::<Owed>();
    let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
    let writing = write_lines(writer, input, eof_tx, stop_rx);
    let reading = read_replies(reader, out, &mut *err, eof_rx, stop_tx, options);
    let (written, read) = tokio::join!(writing, reading);
    // The reader's view wins: if the server ended things, that is the story,
    // whatever the writer hit on the dead socket afterwards.
    let mut summary = read?;
    for line in written.warnings {
        writeln!(err, "porter: {line}").map_err(Error::Output)?;
    }
    if let Some(write_error) = written.error
        && !summary.ended_by_server
    {
        return Err(write_error);
    }
    summary.sent = written.sent;
    Ok(summary)
}

/// What the writing half did. Its warnings are printed by the caller once
/// both halves are done, so the two never share the `err` writer.
struct Written {
    sent: u64,
    warnings: Vec<String>,
    error: Option<Error>,
}

async fn write_lines<T, I>(
    mut writer: MessageWriter<T>,
    input: I,
    eof_tx: oneshot::Sender<Owed>,
    mut stop_rx: oneshot::Receiver<Stop>,
) -> Written
where
    T: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + Unpin,
{
    let mut lines = BufReader::new(input).lines();
    let mut sent = 0u64;
    let mut whos = 0u64;
    let mut line_no = 0u64;
    let mut warnings = Vec::new();
    let mut stop = None;
    let error = loop {
        let line = tokio::select! {
            // Once the reader stops (server gone), input no longer matters.
            received = &mut stop_rx => {
                stop = Some(received.unwrap_or(Stop::ServerGone));
                break None;
            }
            line = lines.next_line() => line,
        };
        match line {
            Ok(Some(line)) => {
                line_no += 1;
                let command = Command::parse(&line);
                let message = match command {
                    // As if the input ended here.
                    Command::Quit => match writer.flush().await {
                        Ok(()) => break None,
                        Err(e) => break Some(e),
                    },
                    Command::Help => {
                        warnings.extend(HELP.iter().map(|line| (*line).to_owned()));
                        continue;
                    }
                    ref command => match command.message() {
                        Some(message) => message,
                        None => {
                            if let Some(complaint) = command.complaint() {
                                warnings.push(format!("line {line_no}: {complaint}"));
                            }
                            continue;
                        }
                    },
                };
                match writer.feed(&message).await {
                    Ok(()) => match message {
                        ClientMessage::Say { .. } => sent += 1,
                        ClientMessage::Who => whos += 1,
                        _ => {}
                    },
                    Err(Error::Wire(porter_wire::Error::FrameTooLarge { len, max })) => {
                        warnings.push(format!(
                            "line {line_no} not sent: {len} bytes is over the limit of {max}"
                        ));
                        continue;
                    }
                    Err(other) => break Some(other),
                }
                // Flush per batch, not per line: only when no further whole
                // line is already buffered.
                if !lines.get_ref().buffer().contains(&b'\n')
                    && let Err(e) = writer.flush().await
                {
                    break Some(e);
                }
            }
            Ok(None) => match writer.flush().await {
                Ok(()) => break None,
                Err(e) => break Some(e),
            },
            Err(e) => break Some(Error::Input(e)),
        }
    };
    // Tell the reader how many replies to expect. It may already be gone.
    let _ = eof_tx.send(Owed { says: sent, whos });
    let stop = match stop {
        Some(stop) => stop,
        None => stop_rx.await.unwrap_or(Stop::ServerGone),
    };
    let mut error = error;
    if stop == Stop::Finish && error.is_none() {
        if let Err(e) = writer.send(&ClientMessage::Bye).await {
            error = Some(e);
        }
        let _ = writer.close().await;
    }
    Written {
        sent,
        warnings,
        error,
    }
}

async fn read_replies<T, O, E>(
    mut reader: MessageReader<T>,
    out: &mut O,
    err: &mut E,
    mut eof_rx: oneshot::Receiver<Owed>,
    stop_tx: oneshot::Sender<Stop>,
    options: ScriptedOptions,
) -> Result<Summary>
where
    T: AsyncRead + AsyncWrite + Unpin,
    O: Write,
    E: Write,
{
    let mut summary = Summary::default();
    // Set when the input has ended: how many replies to expect.
    let mut expected: Option<Owed> = None;
    let mut who_answers = 0u64;
    // Whether `eof_rx` may still be polled (a finished oneshot must not be).
    let mut waiting_for_eof = true;
    let quiet = tokio::time::sleep(options.quiet);
    tokio::pin!(quiet);
    let mut deadline = Instant::now();
    let mut view = View::new(false);
    let mut shown = Vec::new();

    let outcome: Result<Stop> = loop {
        if expected.is_some_and(|owed| summary.received >= owed.says && who_answers >= owed.whos) {
            break Ok(Stop::Finish);
        }
        tokio::select! {
            sent = &mut eof_rx, if waiting_for_eof => {
                waiting_for_eof = false;
                // A writer that died without a count has failed: it reports
                // that itself; stop waiting for replies then.
                let now = Instant::now();
                expected = Some(sent.unwrap_or_default());
                quiet.as_mut().reset(now + options.quiet);
                deadline = now + options.max_wait;
            }
            () = &mut quiet, if expected.is_some() => break Ok(Stop::Finish),
            () = tokio::time::sleep_until(deadline), if expected.is_some() => break Ok(Stop::Finish),
            message = reader.recv() => {
                if expected.is_some() {
                    quiet.as_mut().reset(Instant::now() + options.quiet);
                }
                let message = match message {
                    Ok(message) => message,
                    Err(e) => break Err(e),
                };
                match message {
                    Some(ServerMessage::Say { .. }) => summary.received += 1,
                    Some(ServerMessage::Who { .. }) => who_answers += 1,
                    _ => {}
                }
                let flow = view.receive(message, jiff::Timestamp::now(), &mut shown);
                // Notes are printed at once: they explain what comes next.
                let written = shown.drain(..).try_for_each(|shown| match shown {
                    Shown::Line(line) => writeln!(out, "{line}"),
                    Shown::Note(note) => writeln!(err, "porter: {note}"),
                });
                if let Err(e) = written {
                    break Err(Error::Output(e));
                }
                match flow {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Bye) => {
                        summary.ended_by_server = true;
                        break Ok(Stop::ServerGone);
                    }
                    Err(e) => break Err(e),
                }
            }
        }
    };
    let _ = out.flush();
    let stop = match &outcome {
        Ok(stop) => *stop,
        Err(_) => Stop::ServerGone,
    };
    let _ = stop_tx.send(stop);
    outcome.map(|_| summary)
}
