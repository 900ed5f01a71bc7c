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

use std::io::Write;

use jiff::Timestamp;
use porter_wire::Secret;
use porter_wire::text::printable;
use rustyline_async::{Readline, ReadlineEvent, SharedWriter};
use tokio::io::{AsyncRead, AsyncWrite};

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

/// Runs the conversation at the terminal until `/quit`, Ctrl-D, Ctrl-C or
/// the end of the connection. Lines typed are sent as `say` (or are
/// commands); what the server sends is printed above the prompt.
///
/// # Errors
/// [`Error::Terminal`] when the line editor cannot start (no terminal);
/// [`Error::Ended`] when the server closes without `bye`, or ends the
/// conversation right after an `error`; [`Error::Wire`].
pub async fn run<T>(mut conn: Connection<T>, info: &SessionInfo, options: Options) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
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
    let outcome = converse(&mut conn, &mut editor, &mut shown, view).await;
    // Print whatever is still queued and give the terminal back (raw mode
    // ends when the editor is dropped) before the caller prints an error.
    let _ = editor.flush();
    drop(editor);
    outcome
}

async fn converse<T>(
    conn: &mut Connection<T>,
    editor: &mut Readline,
    shown: &mut SharedWriter,
    mut view: View,
) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut lines = Vec::new();
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
                    match Command::parse(&line) {
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
                                    Err(e) => return Err(e),
                                }
                            } else if let Some(complaint) = command.complaint() {
                                show(shown, &format!("porter: {complaint}"));
                            }
                        }
                    }
                }
                Ok(ReadlineEvent::Eof | ReadlineEvent::Interrupted) => return say_bye(conn).await,
                Err(e) => return Err(Error::Terminal(e.to_string())),
            },
            message = conn.recv() => {
                let flow = view.receive(message?, Timestamp::now(), &mut lines);
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
