//! Where the answers to the server's questions come from during the
//! handshake, and where its greetings and refusals are shown: the
//! [`Answerer`] trait, and [`ScriptedAnswers`], a fixed table of answers.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::Write;

use porter_wire::Secret;
use porter_wire::text::printable;

use crate::error::{Error, Result, ServerError};

/// A question from the server (`ask`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// What is asked (`name`, `user`, `password`, ... or an id this client
    /// does not know, handled the same way).
    pub id: String,
    /// The prompt to show.
    pub text: String,
    /// Whether the typed answer must be hidden.
    pub secret: bool,
}

/// Something the server said during the handshake, to be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A `say`: a greeting or information.
    Say {
        /// Who said it.
        from: String,
        /// What was said.
        text: String,
    },
    /// An `error`: a refused answer, an invalid session... The handshake
    /// goes on unless the server ends it.
    Error(ServerError),
}

/// Where the answers to the server's questions come from, and where its
/// handshake messages are shown: a terminal, scripted answers, a test.
pub trait Answerer: Send {
    /// Answers one `ask`. The answer may be a password: it is a [`Secret`]
    /// and must never be logged.
    ///
    /// # Errors
    /// [`Error::NoAnswer`] when this answerer cannot answer the question,
    /// [`Error::InputClosed`] when the user gave up, [`Error::Input`].
    fn answer(&mut self, ask: &Ask) -> impl Future<Output = Result<Secret>> + Send;

    /// Shows a `say` or `error` received during the handshake.
    fn notice(&mut self, notice: &Notice);
}

/// Answers by `ask` id from a fixed table, for when there is no terminal
/// (scripted use: `--user`, `PORTER_PASSWORD`), or to spare the terminal
/// questions already answered on the command line.
///
/// Each answer is given once. When the server asks the same id again it
/// refused the answer (a name or password refused by policy, a wrong
/// password): repeating it could only fail again, and would spend login
/// attempts and feed the server's throttling, so the second ask fails with
/// [`Error::NoAnswer`] instead.
///
/// Handshake messages go to stderr (`porter: Welcome back, ada!`), so that
/// stdout carries only the conversation after `ready`.
#[derive(Debug, Default, Clone)]
pub struct ScriptedAnswers {
    answers: HashMap<String, Secret>,
    /// Why an id cannot be answered, when the caller knows better than the
    /// generic reason (which flag or variable would answer it).
    hints: HashMap<String, String>,
    /// Ids already answered: asked again means refused.
    given: HashSet<String>,
}

impl ScriptedAnswers {
    /// No answers: any `ask` fails with [`Error::NoAnswer`].
    pub fn new() -> Self {
        ScriptedAnswers::default()
    }

    /// Adds the answer to give when the server asks `id`.
    pub fn with(mut self, id: impl Into<String>, answer: impl Into<Secret>) -> Self {
        self.answers.insert(id.into(), answer.into());
        self
    }

    /// Sets the reason given in [`Error::NoAnswer`] when the server asks
    /// `id` and no answer is held, for example "set PORTER_PASSWORD".
    pub fn with_hint(mut self, id: impl Into<String>, hint: impl Into<String>) -> Self {
        self.hints.insert(id.into(), hint.into());
        self
    }

    /// Whether an answer is held for `id` (given or not yet).
    pub fn has(&self, id: &str) -> bool {
        self.answers.contains_key(id)
    }

    /// The answer for `ask`, the first time it is asked; `None` when none is
    /// held or it was given already (and so refused).
    pub fn take(&mut self, ask: &Ask) -> Option<Secret> {
        let answer = self.answers.get(&ask.id)?;
        self.given.insert(ask.id.clone()).then(|| answer.clone())
    }

    fn no_answer(&self, ask: &Ask) -> Error {
        let reason = if self.given.contains(&ask.id) {
            "the server refused the answer given in advance".to_owned()
        } else {
            self.hints.get(&ask.id).cloned().unwrap_or_else(|| {
                "no terminal to ask on and no answer given in advance".to_owned()
            })
        };
        Error::NoAnswer {
            id: ask.id.clone(),
            text: ask.text.clone(),
            reason,
        }
    }
}

impl Answerer for ScriptedAnswers {
    async fn answer(&mut self, ask: &Ask) -> Result<Secret> {
        self.take(ask).ok_or_else(|| self.no_answer(ask))
    }

    fn notice(&mut self, notice: &Notice) {
        // Output errors are not the handshake's business; a closed stderr
        // has nowhere to be reported anyway.
        let _ = writeln!(std::io::stderr(), "porter: {}", notice.line());
    }
}

impl Notice {
    /// The notice as one line for people: a greeting from the server as its
    /// text, anyone else's line as `from: text`, an error as
    /// `refused: text (code)`. What the server sent is escaped
    /// ([`porter_wire::text::printable`]).
    pub fn line(&self) -> String {
        match self {
            Notice::Say { from, text } if from == SERVER_FROM => printable(text).into_owned(),
            Notice::Say { from, text } => format!("{}: {}", printable(from), printable(text)),
            Notice::Error(error) => error.to_string(),
        }
    }
}

/// The `from` of the server's own lines.
const SERVER_FROM: &str = "server";
