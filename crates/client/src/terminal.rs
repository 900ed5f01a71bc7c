//! Questions asked at the terminal: a plain answer read as a line, a secret
//! one read without echo, and either abandoned at once when the one who
//! asked stops waiting (the server closed while the prompt was up).
//!
//! # Why not `dialoguer::Password`
//!
//! A hidden prompt turns the terminal's echo off and reads a line. Two
//! things broke it:
//!
//! - **Ctrl-Z, then `fg`.** The terminal sends SIGTSTP and the process
//!   stops. The shell takes the terminal back and restores *its* settings,
//!   echo on; on `fg` it continues the job without restoring the job's
//!   settings (bash does not). Nothing turned echo off again, so the rest
//!   of the password was shown as it was typed.
//! - **Ctrl-C.** SIGINT killed the process with echo still off (unless a
//!   tokio handler caught it, and then the prompt did not end at all:
//!   dialoguer issue 352).
//!
//! So a secret is read with the terminal's signal keys off as well
//! (non-canonical mode, no `ISIG`), byte by byte, and the keys are handled
//! here: the interrupt key (Ctrl-C) restores the terminal, discarding what
//! was typed and not yet read, and reports [`io::ErrorKind::Interrupted`]; the suspend key (Ctrl-Z) restores the
//! terminal, stops the process as the terminal would have, and once
//! continued turns echo off again and asks anew; erase, kill-line and
//! word-erase edit the answer; end-of-file on an empty answer reports
//! [`io::ErrorKind::UnexpectedEof`]. The keys are the terminal's own
//! (`stty -a`), not hard-coded. No signal handler is installed, so nothing
//! changes for the rest of the program.
//!
//! A plain answer is read in the terminal's usual (canonical, echoing)
//! mode, which the kernel edits and Ctrl-C and Ctrl-Z already serve.
//!
//! # Abandoning a prompt
//!
//! The handshake's questions are read on a blocking thread that waits
//! (`poll`) on both the terminal and a pipe. Dropping the future of the
//! question restores the terminal at once, from the dropping thread
//! (discarding input not yet read: part of a password must not reach the
//! shell), ends the prompt's line, and closes the pipe, which wakes the
//! reader to leave without touching the terminal again. The handshake drops
//! it when the server speaks (or closes) while a question is open, so the
//! person sees why at once instead of after typing.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use porter_wire::Secret;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::termios::{
    LocalModes, OptionalActions, SpecialCodeIndex, Termios, tcgetattr, tcsetattr,
};

use crate::error::{Error, Result};

/// Reads a secret (a password) at the terminal on standard input, without
/// echo, after writing `prompt` as it is to standard error. Ctrl-Z suspends
/// and echo stays off after `fg`; Ctrl-C and Ctrl-D give the terminal back
/// as it was. Blocks until Enter.
///
/// This is what `porter connect` uses for `ask {secret: true}`, and what any
/// command asking for a password should use.
///
/// ```no_run
/// let password = porter_client::terminal::read_secret("New password for ada: ")?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// [`io::ErrorKind::Interrupted`] for Ctrl-C (or the quit key),
/// [`io::ErrorKind::UnexpectedEof`] for Ctrl-D on an empty answer or the end
/// of input, [`io::ErrorKind::InvalidData`] for an answer that is not UTF-8,
/// and the system's error when standard input is not a terminal (`ENOTTY`)
/// or cannot be read.
pub fn read_secret(prompt: &str) -> io::Result<Secret> {
    let state = Mutex::new(State::default());
    match read_answer(prompt, true, None, &state)? {
        Some(answer) => Ok(answer),
        // Only an abandonment ends a read without an answer, and nothing
        // can abandon this one.
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Asks `prompt` at the terminal (standard input and error), hiding the
/// answer when `secret`, on a blocking thread. Dropping the future abandons
/// the question: the terminal is restored before the drop returns.
///
/// # Errors
/// [`Error::Interrupted`] (Ctrl-C on a secret), [`Error::InputClosed`]
/// (Ctrl-D, end of input), [`Error::Input`].
pub(crate) async fn ask(prompt: String, secret: bool) -> Result<Secret> {
    let (wake_rx, wake_tx) = rustix::pipe::pipe().map_err(|e| Error::Input(e.into()))?;
    let state = Arc::new(Mutex::new(State::default()));
    let mut abandon = AbandonOnDrop {
        state: state.clone(),
        wake: Some(wake_tx),
    };
    let reading = tokio::task::spawn_blocking(move || {
        read_answer(&prompt, secret, Some(wake_rx.as_fd()), &state)
    });
    let outcome = reading.await;
    // Answered (or failed): nothing to abandon any more.
    abandon.wake = None;
    match outcome {
        Ok(Ok(Some(answer))) => Ok(answer),
        Ok(Ok(None)) => Err(Error::InputClosed),
        Ok(Err(e)) => Err(match e.kind() {
            io::ErrorKind::Interrupted => Error::Interrupted,
            io::ErrorKind::UnexpectedEof => Error::InputClosed,
            _ => Error::Input(e),
        }),
        Err(e) => Err(Error::Terminal(format!("the prompt failed: {e}"))),
    }
}

/// What the reader and an abandonment share. Every change to the terminal
/// happens under this lock, so an abandonment never races the reader.
#[derive(Default)]
struct State {
    /// The settings to restore while the reader's are in force.
    saved: Option<Termios>,
    /// The prompt is on screen, unanswered: its line is still open.
    prompt_open: bool,
    /// The question was abandoned: the reader must leave the terminal as
    /// it is.
    abandoned: bool,
}

/// Abandons the question when dropped, unless `wake` was taken.
struct AbandonOnDrop {
    state: Arc<Mutex<State>>,
    /// Closing it wakes the reader.
    wake: Option<OwnedFd>,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        let Some(wake) = self.wake.take() else {
            return;
        };
        let mut state = lock(&self.state);
        state.abandoned = true;
        // Flush: a password typed in part stays out of the next reader's
        // input.
        if let Some(saved) = state.saved.take() {
            let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Flush, &saved);
        }
        if std::mem::take(&mut state.prompt_open) {
            let _ = writeln!(io::stderr());
        }
        drop(state);
        drop(wake);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent whatever panicked while holding it.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads one answer; `Ok(None)` when abandoned through `wake`.
fn read_answer(
    prompt: &str,
    secret: bool,
    wake: Option<BorrowedFd<'_>>,
    state: &Mutex<State>,
) -> io::Result<Option<Secret>> {
    let tty = rustix::stdio::stdin();
    let answer = if secret {
        read_hidden(tty, prompt, wake, state)?
    } else {
        read_line(tty, prompt, wake, state)?
    };
    let Some(bytes) = answer else {
        return Ok(None);
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(Secret::new(text))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer is not valid UTF-8",
        )),
    }
}

/// Shows the prompt, unless the question was abandoned already.
fn show_prompt(prompt: &str, state: &Mutex<State>) -> io::Result<bool> {
    let mut state = lock(state);
    if state.abandoned {
        return Ok(false);
    }
    let mut stderr = io::stderr();
    stderr.write_all(prompt.as_bytes())?;
    stderr.flush()?;
    state.prompt_open = true;
    Ok(true)
}

/// Ends the prompt's line (the terminal did not echo the Enter).
fn close_prompt(state: &Mutex<State>) {
    if std::mem::take(&mut lock(state).prompt_open) {
        let _ = writeln!(io::stderr());
    }
}

/// A line in the terminal's own mode: the kernel echoes and edits it.
fn read_line(
    tty: BorrowedFd<'_>,
    prompt: &str,
    wake: Option<BorrowedFd<'_>>,
    state: &Mutex<State>,
) -> io::Result<Option<Vec<u8>>> {
    if !show_prompt(prompt, state)? {
        return Ok(None);
    }
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if !wait_readable(tty, wake)? {
            return Ok(None);
        }
        // In canonical mode a read returns at most one line, so nothing
        // typed ahead for a later question is taken here.
        let n = read_retrying(tty, &mut buf)?;
        if n == 0 {
            lock(state).prompt_open = false;
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.extend_from_slice(&buf[..n]);
        if line.ends_with(b"\n") {
            lock(state).prompt_open = false;
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

/// A line read without echo, the special keys handled here (module docs).
fn read_hidden(
    tty: BorrowedFd<'_>,
    prompt: &str,
    wake: Option<BorrowedFd<'_>>,
    state: &Mutex<State>,
) -> io::Result<Option<Vec<u8>>> {
    let saved = tcgetattr(tty)?;
    let keys = Keys::of(&saved);
    let mut quiet = saved.clone();
    quiet.local_modes -= LocalModes::ECHO
        | LocalModes::ECHONL
        | LocalModes::ICANON
        | LocalModes::ISIG
        | LocalModes::IEXTEN;
    quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
    quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
    // `Flush` when the answer is given up: what was typed and not yet read
    // is part of a password, and must not reach whoever reads next (the
    // shell).
    let restore_with = |when: OptionalActions| {
        let mut state = lock(state);
        if let Some(saved) = state.saved.take() {
            let _ = tcsetattr(tty, when, &saved);
        }
    };
    let restore = || restore_with(OptionalActions::Now);
    let give_up = || restore_with(OptionalActions::Flush);
    'ask: loop {
        {
            let mut state = lock(state);
            if state.abandoned {
                return Ok(None);
            }
            // Quiet first, then the prompt: whatever is typed once the
            // prompt shows is not echoed.
            tcsetattr(tty, OptionalActions::Now, &quiet)?;
            state.saved = Some(saved.clone());
        }
        if !show_prompt(prompt, state)? {
            return Ok(None);
        }
        let mut answer: Vec<u8> = Vec::new();
        loop {
            match wait_readable(tty, wake) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    restore();
                    close_prompt(state);
                    return Err(e);
                }
            }
            let mut byte = [0u8; 1];
            // One byte at a time: what follows the Enter belongs to
            // whoever reads next.
            let n = match read_retrying(tty, &mut byte) {
                Ok(n) => n,
                Err(e) => {
                    restore();
                    close_prompt(state);
                    return Err(e);
                }
            };
            let key = byte[0];
            if n == 0 || (keys.eof(key) && answer.is_empty()) {
                restore();
                close_prompt(state);
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match key {
                b'\r' | b'\n' => {
                    restore();
                    close_prompt(state);
                    return Ok(Some(answer));
                }
                _ if keys.interrupt(key) => {
                    give_up();
                    close_prompt(state);
                    return Err(io::ErrorKind::Interrupted.into());
                }
                _ if keys.suspend(key) => {
                    restore();
                    close_prompt(state);
                    suspend();
                    // Continued (or never stopped, in an orphaned process
                    // group): echo off again, and ask anew.
                    continue 'ask;
                }
                _ if keys.erase(key) => pop_char(&mut answer),
                _ if keys.kill(key) => answer.clear(),
                _ if keys.word_erase(key) => {
                    while answer.last().is_some_and(u8::is_ascii_whitespace) {
                        answer.pop();
                    }
                    while answer.last().is_some_and(|b| !b.is_ascii_whitespace()) {
                        pop_char(&mut answer);
                    }
                }
                // Other controls (and Ctrl-D in a non-empty answer) are
                // not part of a password.
                0..0x20 => {}
                _ => answer.push(key),
            }
        }
    }
}

/// The terminal's special keys, as `stty -a` lists them.
struct Keys {
    interrupt: u8,
    quit: u8,
    suspend: u8,
    eof: u8,
    erase: u8,
    kill: u8,
    word_erase: u8,
}

impl Keys {
    fn of(termios: &Termios) -> Keys {
        let key = |index| termios.special_codes[index];
        Keys {
            interrupt: key(SpecialCodeIndex::VINTR),
            quit: key(SpecialCodeIndex::VQUIT),
            suspend: key(SpecialCodeIndex::VSUSP),
            eof: key(SpecialCodeIndex::VEOF),
            erase: key(SpecialCodeIndex::VERASE),
            kill: key(SpecialCodeIndex::VKILL),
            word_erase: key(SpecialCodeIndex::VWERASE),
        }
    }

    /// `key` is `special`, and that key is not disabled (0).
    fn is(special: u8, key: u8) -> bool {
        special != 0 && key == special
    }

    fn interrupt(&self, key: u8) -> bool {
        Keys::is(self.interrupt, key) || Keys::is(self.quit, key)
    }

    fn suspend(&self, key: u8) -> bool {
        Keys::is(self.suspend, key)
    }

    fn eof(&self, key: u8) -> bool {
        Keys::is(self.eof, key)
    }

    /// The erase key, and Backspace and DEL whatever it is set to.
    fn erase(&self, key: u8) -> bool {
        Keys::is(self.erase, key) || key == 0x7f || key == 0x08
    }

    fn kill(&self, key: u8) -> bool {
        Keys::is(self.kill, key)
    }

    fn word_erase(&self, key: u8) -> bool {
        Keys::is(self.word_erase, key)
    }
}

/// Removes the last character (all its UTF-8 bytes).
fn pop_char(answer: &mut Vec<u8>) {
    while let Some(byte) = answer.pop() {
        if byte & 0b1100_0000 != 0b1000_0000 {
            break;
        }
    }
}

/// Stops the process, as the terminal's suspend key would have, and
/// returns once it is continued (`fg`).
///
/// The signal is raised on this thread: sent to the process, it may be
/// taken by another thread, and this one would run on (turning echo off
/// and prompting again) before the stop, which the shell then undoes. In an
/// orphaned process group the system discards it and this returns at once.
/// (In a pipeline, the job's other commands are not stopped by it; a
/// password prompt is not usually piped.)
fn suspend() {
    if let Err(err) = signal_hook::low_level::raise(signal_hook::consts::SIGTSTP) {
        tracing::debug!(error = %err, "cannot suspend");
    }
}

/// Waits until `tty` can be read (`true`) or `wake` is closed (`false`).
fn wait_readable(tty: BorrowedFd<'_>, wake: Option<BorrowedFd<'_>>) -> io::Result<bool> {
    loop {
        let mut fds = vec![PollFd::from_borrowed_fd(tty, PollFlags::IN)];
        if let Some(wake) = wake {
            fds.push(PollFd::from_borrowed_fd(wake, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        if fds.get(1).is_some_and(|w| !w.revents().is_empty()) {
            return Ok(false);
        }
        if !fds[0].revents().is_empty() {
            return Ok(true);
        }
    }
}

fn read_retrying(tty: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(tty, &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasing_removes_a_whole_character() {
        let mut answer = "pé".as_bytes().to_vec();
        pop_char(&mut answer);
        assert_eq!(answer, b"p");
        let mut emoji = "a😀".as_bytes().to_vec();
        pop_char(&mut emoji);
        assert_eq!(emoji, b"a");
        let mut empty = Vec::new();
        pop_char(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_disabled_key_matches_nothing() {
        assert!(!Keys::is(0, 0));
        assert!(Keys::is(3, 3));
    }
}
