//! The conversation at a terminal: a line editor (rustyline-async) with
//! history, and the server's lines printed above the line being typed.
//!
//! Questions during the handshake are asked *before* the line editor starts,
//! by [`TerminalAnswerer`]: rustyline-async cannot hide input, so a
//! `secret` answer is read with `dialoguer::Password` (echo off), and a plain
//! one with an ordinary line read, both on a blocking thread. That works
//! because the protocol only asks before `ready`; once the editor owns the
//! terminal (raw mode) nothing else reads it.

use std::io::{self, BufRead, Write};

use porter_wire::{ClientMessage, Secret, ServerMessage};
use rustyline_async::{Readline, ReadlineEvent, SharedWriter};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::answers::{Answerer, Ask, Notice, ScriptedAnswers};
use crate::connection::Connection;
use crate::error::{Ending, Error, Result, ServerError};
use crate::handshake::SessionInfo;

/// The command that ends the conversation.
pub const QUIT_COMMAND: &str = "/quit";

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
        let ask = ask.clone();
        // Both dialoguer and a std line read block: keep them off the
        // reactor so the connection is still served meanwhile.
        tokio::task::spawn_blocking(move || read_answer(&ask))
            .await
            .map_err(|e| Error::Terminal(format!("the prompt failed: {e}")))?
    }

    fn notice(&mut self, notice: &Notice) {
        match notice {
            Notice::Say { from, text } => println!("{from}: {text}"),
            Notice::Error(error) => eprintln!("porter: server error: {error}"),
        }
    }
}

fn read_answer(ask: &Ask) -> Result<Secret> {
    if ask.secret {
        let prompt = ask.text.trim_end().trim_end_matches(':');
        // Empty answers are the server's to judge, and this keeps Ctrl-D
        // from looping here (an empty read is all dialoguer sees of it).
        return dialoguer::Password::new()
            .with_prompt(prompt)
            .allow_empty_password(true)
            .interact()
            .map(Secret::new)
            .map_err(|e| Error::Input(io::Error::from(e)));
    }
    let mut stderr = io::stderr();
    let separator = if ask.text.ends_with(char::is_whitespace) {
        ""
    } else {
        " "
    };
    write!(stderr, "{}{separator}", ask.text)
        .and_then(|()| stderr.flush())
        .map_err(Error::Output)?;
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err(Error::InputClosed),
        Ok(_) => Ok(Secret::new(line.trim_end_matches(['\r', '\n']))),
        Err(e) => Err(Error::Input(e)),
    }
}

/// Runs the conversation at the terminal until `/quit`, Ctrl-D, Ctrl-C or
/// the end of the connection. Lines typed are sent as `say`; lines received
/// are printed above the prompt.
///
/// # Errors
/// [`Error::Terminal`] when the line editor cannot start (no terminal);
/// [`Error::Ended`] when the server closes without `bye`, or ends the
/// conversation right after an `error`; [`Error::Wire`].
pub async fn run<T>(mut conn: Connection<T>, info: &SessionInfo) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut editor, mut shown) = Readline::new(format!("{}> ", info.user))
        .map_err(|e| Error::Terminal(format!("cannot start the line editor: {e}")))?;
    show(
        &mut shown,
        &format!(
            "connected to {} as {} ({QUIT_COMMAND} or Ctrl-D to leave)",
            info.server, info.user
        ),
    );
    let outcome = converse(&mut conn, &mut editor, &mut shown).await;
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
) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut last_error: Option<ServerError> = None;
    loop {
        tokio::select! {
            // The editor first: polling it is what drains `shown` to the
            // screen, so its queue never fills while messages pour in.
            biased;
            event = editor.readline() => match event {
                Ok(ReadlineEvent::Line(line)) => {
                    if line.trim() == QUIT_COMMAND {
                        return say_bye(conn).await;
                    }
                    if line.is_empty() {
                        continue;
                    }
                    editor.add_history_entry(line.clone());
                    match conn.send(&ClientMessage::Say { text: line, to: None }).await {
                        Ok(()) => {}
                        Err(Error::Wire(porter_wire::Error::FrameTooLarge { len, max })) => {
                            show(shown, &format!("porter: not sent: {len} bytes is over the limit of {max}"));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(ReadlineEvent::Eof | ReadlineEvent::Interrupted) => return say_bye(conn).await,
                Err(e) => return Err(Error::Terminal(e.to_string())),
            },
            message = conn.recv() => match message? {
                Some(ServerMessage::Say { text, from, .. }) => {
                    last_error = None;
                    show(shown, &format!("{from}: {text}"));
                }
                Some(ServerMessage::Error { code, text }) => {
                    let error = ServerError { code, text };
                    show(shown, &format!("porter: server error: {error}"));
                    last_error = Some(error);
                }
                Some(ServerMessage::Bye { text }) => {
                    return match last_error {
                        Some(error) => Err(Error::Ended(Ending { bye: Some(text), error: Some(error) })),
                        None => {
                            show(shown, &format!("porter: the server said goodbye: {text}"));
                            Ok(())
                        }
                    };
                }
                Some(ServerMessage::Ask { id, .. }) => {
                    show(shown, &format!("porter: the server asked {id:?} after the handshake; ignored"));
                }
                Some(_) => {}
                None => return Err(Error::Ended(Ending { bye: None, error: last_error })),
            },
        }
    }
}

async fn say_bye<T>(conn: &mut Connection<T>) -> Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // The server may already be gone; leaving is what the user asked for.
    if let Err(e) = conn.send(&ClientMessage::Bye).await {
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
