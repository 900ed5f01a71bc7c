//! The server's own console, for the chat service: lines typed at the
//! server go to everyone as from `server`, and participants' lines come
//! back to be printed. The caller (the `porter` binary) owns the terminal;
//! the server only holds the two channels.

use tokio::sync::mpsc;

/// The server's own console, for the chat service.
#[derive(Debug)]
pub struct Console {
    /// Lines typed at the server: sent to every client as from `server`.
    /// The server stops reading when this closes, and keeps serving.
    pub input: mpsc::Receiver<String>,
    /// Chat lines for the console to print. The server never waits on it:
    /// when it is full, lines are dropped and counted in the log.
    pub output: mpsc::Sender<ConsoleLine>,
}

/// A chat line for the server's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    /// Who said it (the participant's name).
    pub from: String,
    /// What was said.
    pub text: String,
}
