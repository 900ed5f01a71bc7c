//! The dialogues of PROTOCOL.md section 4 as plain lines: a person's line
//! as the message a framed client would have sent, and each message of the
//! server as the lines a person reads.
//!
//! ```text
//! User name: ada                      ask{user}; the line is its answer
//! Password:                           ask{password, secret}; hidden on telnet
//! server: Welcome back, ada!          a say from the server
//! -- you are ada: type to talk, /help lists the commands --    ready
//! bob: hello                          a line of the room
//! bob: first line                     a text of several lines: each line
//!   | second line                     after the first behind "  | "
//! * bob waves                         an action (/me waves)
//! [private] bob: psst                 a line for this person alone
//! [history] eve: earlier              a line from the room's history
//! --> carl joined                     someone entered the room
//! <-- carl left                       someone left it
//! in the room (2): ada, bob           the answer to /who
//! error: no one of that name is in the room    an error
//! bye: server shutting down           the server's goodbye
//! ```
//!
//! Every text from elsewhere (names, lines, prompts, error texts) goes
//! through [`porter_wire::text`], as in the terminal client: a control
//! character is shown escaped, never obeyed, and no line of a text can pass
//! for a line from someone else. Lines end with `\r\n`.
//!
//! A person's lines mean what they mean in `porter connect`
//! ([`porter_wire::command`]): while a question stands, the line is its
//! answer; otherwise it is said, or it is a command. Session tokens are not
//! shown (a person with nc has nowhere to keep one), and `/quit` ends the
//! session such a login opened rather than leave it valid and unused.

use bytes::{BufMut, BytesMut};
use porter_wire::command::{ACTION_PREFIX, Command, HELP};
use porter_wire::text::{CONTINUATION, printable, printable_lines};
use porter_wire::{ClientMessage, ErrorCode, EventKind, Secret, ServerMessage};

use super::telnet::Telnet;

/// What the server is told when a person opens line mode.
pub(crate) const CLIENT_NAME: &str = "line mode (telnet, nc)";

/// A question the server asked and the person has not answered.
#[derive(Debug, Clone)]
struct Question {
    id: String,
    text: String,
    secret: bool,
}

/// What a person's line becomes for the server.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A message, as a framed client would send it.
    Message(ClientMessage),
    /// A line that is not UTF-8, passed on as it is: the server answers it
    /// with `invalid_message`, as it answers such a frame.
    Invalid(BytesMut),
}

/// Where a line-mode conversation is.
#[derive(Debug, Default)]
pub(crate) struct Dialogue {
    /// The first line arrived and `hello` was sent.
    opened: bool,
    /// The question the next line answers.
    question: Option<Question>,
    /// `ready` went by: longer lines are allowed, and lines are said.
    ready: bool,
    /// A session was opened for this connection (its token never shown).
    session: bool,
}

impl Dialogue {
    /// Whether `hello` was sent.
    pub(crate) fn opened(&self) -> bool {
        self.opened
    }

    /// Whether the handshake is over.
    pub(crate) fn ready(&self) -> bool {
        self.ready
    }

    /// Opens the conversation: the `hello` to send, and a first line for the
    /// person.
    pub(crate) fn open(&mut self, out: &mut BytesMut) -> ClientMessage {
        self.opened = true;
        // On a line of its own, not after the `welcome` frame shown as text.
        out.put_slice(b"\r\n");
        write_line(
            out,
            "-- plain lines from here: answer the questions, then type to talk --",
        );
        ClientMessage::Hello {
            client: Some(CLIENT_NAME.to_owned()),
            token: None,
            since: None,
        }
    }

    /// What the person's `line` (without its ending) is for the server, if
    /// anything; what is answered here (`/help`, a mistyped command) is
    /// written to `out`.
    pub(crate) fn line(
        &mut self,
        line: BytesMut,
        telnet: &mut Telnet,
        out: &mut BytesMut,
    ) -> Option<Outgoing> {
        if let Some(question) = self.question.take() {
            if question.secret && telnet.show_input(out) {
                // The person's Enter was not echoed either.
                out.put_slice(b"\r\n");
            }
            return Some(match String::from_utf8(line.to_vec()) {
                Ok(text) => Outgoing::Message(ClientMessage::Answer {
                    id: question.id,
                    text: Secret::new(text),
                }),
                Err(_) => {
                    // The question stands: asked again after the error.
                    self.question = Some(question);
                    Outgoing::Invalid(line)
                }
            });
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return Some(Outgoing::Invalid(line));
        };
        if text.is_empty() {
            // An empty line says nothing (it opened line mode, or was a slip).
            return None;
        }
        let command = Command::parse(text);
        match command {
            Command::Quit if self.session => Some(Outgoing::Message(ClientMessage::Logout)),
            Command::Quit => {
                write_line(out, "bye");
                Some(Outgoing::Message(ClientMessage::Bye))
            }
            Command::Help => {
                for help in HELP {
                    write_line(out, help);
                }
                None
            }
            command => match command.message() {
                Some(message) => Some(Outgoing::Message(message)),
                None => {
                    if let Some(complaint) = command.complaint() {
                        write_line(out, &complaint);
                    }
                    None
                }
            },
        }
    }

    /// Writes `message` for the person to `out`. `limit` is the line limit
    /// in force, for the error that says a line was over it.
    pub(crate) fn show(
        &mut self,
        message: ServerMessage,
        limit: usize,
        telnet: &mut Telnet,
        out: &mut BytesMut,
    ) {
        match message {
            ServerMessage::Ask { id, text, secret } => {
                let question = Question { id, text, secret };
                prompt(&question, telnet, out);
                self.question = Some(question);
            }
            ServerMessage::Say {
                text,
                from,
                to,
                replay,
                ..
            } => {
                let mut shown = String::new();
                if replay {
                    shown.push_str("[history] ");
                }
                if to.is_some() {
                    shown.push_str("[private] ");
                }
                let from = printable(&from);
                match text.strip_prefix(ACTION_PREFIX) {
                    Some(action) => shown.push_str(&format!(
                        "* {from} {}",
                        printable_lines(action, CONTINUATION)
                    )),
                    None => {
                        shown.push_str(&format!("{from}: {}", printable_lines(&text, CONTINUATION)))
                    }
                }
                write_line(out, &shown);
            }
            ServerMessage::Session { .. } => self.session = true,
            ServerMessage::Ready { user } => {
                self.ready = true;
                self.question = None;
                write_line(
                    out,
                    &format!(
                        "-- you are {}: type to talk, /help lists the commands --",
                        printable(&user)
                    ),
                );
            }
            ServerMessage::Error { code, text } => {
                let text = match code {
                    ErrorCode::FrameTooLarge => {
                        format!("line too long (the limit is {limit} bytes here)")
                    }
                    _ => printable(&text).into_owned(),
                };
                write_line(out, &format!("error: {text}"));
                if let Some(question) = &self.question {
                    prompt(question, telnet, out);
                }
            }
            ServerMessage::Bye { text } => write_line(out, &format!("bye: {}", printable(&text))),
            ServerMessage::Who { users } => {
                let names = if users.is_empty() {
                    ": nobody".to_owned()
                } else {
                    let names: Vec<_> = users.iter().map(|u| printable(u)).collect();
                    format!(" ({}): {}", users.len(), names.join(", "))
                };
                write_line(out, &format!("in the room{names}"));
            }
            ServerMessage::Event { kind, user, .. } => match kind {
                EventKind::Joined => write_line(out, &format!("--> {} joined", printable(&user))),
                EventKind::Left => write_line(out, &format!("<-- {} left", printable(&user))),
                _ => {}
            },
            // `welcome` went out before line mode; replays by `since` are
            // never asked for; nothing else is for a person.
            _ => {}
        }
    }
}

/// Shows `question` as a prompt, the person's line to follow on the same
/// line; a secret one is hidden on telnet.
fn prompt(question: &Question, telnet: &mut Telnet, out: &mut BytesMut) {
    if question.secret {
        telnet.hide_input(out);
    }
    out.put_slice(printable(&question.text).as_bytes());
    out.put_u8(b' ');
}

/// Writes `text` (from [`printable`] or [`printable_lines`]: its only
/// control characters are the newlines `printable_lines` keeps) as lines
/// ending with `\r\n`.
fn write_line(out: &mut BytesMut, text: &str) {
    for (i, part) in text.split('\n').enumerate() {
        if i > 0 {
            out.put_slice(b"\r\n");
        }
        out.put_slice(part.as_bytes());
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::telnet::{ECHO, IAC, WILL, WONT};

    fn shown(dialogue: &mut Dialogue, telnet: &mut Telnet, message: ServerMessage) -> String {
        let mut out = BytesMut::new();
        dialogue.show(message, 4096, telnet, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn said(dialogue: &mut Dialogue, text: &str) -> (Option<Outgoing>, String) {
        let mut out = BytesMut::new();
        let outgoing = dialogue.line(BytesMut::from(text), &mut Telnet::new(), &mut out);
        (outgoing, String::from_utf8_lossy(&out).into_owned())
    }

    fn ask(id: &str, text: &str, secret: bool) -> ServerMessage {
        ServerMessage::Ask {
            id: id.into(),
            text: text.into(),
            secret,
        }
    }

    #[test]
    fn a_question_is_a_prompt_and_the_next_line_its_answer() {
        let mut dialogue = Dialogue::default();
        let mut telnet = Telnet::new();
        assert_eq!(
            shown(&mut dialogue, &mut telnet, ask("user", "User name:", false)),
            "User name: "
        );
        match said(&mut dialogue, "ada") {
            (Some(Outgoing::Message(ClientMessage::Answer { id, text })), _) => {
                assert_eq!((id.as_str(), text.expose()), ("user", "ada"));
            }
            other => panic!("{other:?}"),
        }
        // Answered: the next line is said.
        assert!(matches!(
            said(&mut dialogue, "hi"),
            (Some(Outgoing::Message(ClientMessage::Say { .. })), _)
        ));
    }

    #[test]
    fn a_secret_question_hides_the_input_of_telnet_only() {
        let mut dialogue = Dialogue::default();
        let mut nc = Telnet::new();
        let prompt = shown(&mut dialogue, &mut nc, ask("password", "Password:", true));
        assert_eq!(prompt, "Password: ");

        let mut telnet = Telnet::new();
        telnet.feed(&[IAC, 241], &mut BytesMut::new(), &mut BytesMut::new());
        let mut out = BytesMut::new();
        dialogue.show(
            ask("password", "Password:", true),
            4096,
            &mut telnet,
            &mut out,
        );
        assert_eq!(&out[..3], [IAC, WILL, ECHO]);
        out.clear();
        dialogue.line(BytesMut::from("secret"), &mut telnet, &mut out);
        assert_eq!(&out[..], [IAC, WONT, ECHO, b'\r', b'\n']);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_passed_on_and_the_question_stands() {
        let mut dialogue = Dialogue::default();
        let mut telnet = Telnet::new();
        shown(&mut dialogue, &mut telnet, ask("name", "Name?", false));
        let mut out = BytesMut::new();
        let outgoing = dialogue.line(BytesMut::from(&b"\xff\xfe"[..]), &mut telnet, &mut out);
        assert!(matches!(outgoing, Some(Outgoing::Invalid(_))));
        let error = ServerMessage::error(ErrorCode::InvalidMessage, "invalid UTF-8");
        assert_eq!(
            shown(&mut dialogue, &mut telnet, error),
            "error: invalid UTF-8\r\nName? "
        );
    }

    #[test]
    fn commands_mean_what_they_mean_in_porter_connect() {
        let mut dialogue = Dialogue::default();
        assert!(matches!(
            said(&mut dialogue, "/who"),
            (Some(Outgoing::Message(ClientMessage::Who)), _)
        ));
        match said(&mut dialogue, "/msg bob psst") {
            (Some(Outgoing::Message(ClientMessage::Say { text, to })), _) => {
                assert_eq!((text.as_str(), to.as_deref()), ("psst", Some("bob")));
            }
            other => panic!("{other:?}"),
        }
        let (outgoing, help) = said(&mut dialogue, "/help");
        assert!(outgoing.is_none());
        assert!(
            help.contains("/msg NAME TEXT") && help.ends_with("\r\n"),
            "{help}"
        );
        let (outgoing, complaint) = said(&mut dialogue, "/mgs bob hi");
        assert!(outgoing.is_none(), "a mistyped command reaches no one");
        assert!(complaint.contains("/mgs"), "{complaint}");
        assert!(said(&mut dialogue, "").0.is_none());
        assert!(matches!(
            said(&mut dialogue, "/quit"),
            (Some(Outgoing::Message(ClientMessage::Bye)), _)
        ));
        let mut telnet = Telnet::new();
        let session = ServerMessage::Session {
            token: Secret::new("t"),
            user: "ada".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            shown(&mut dialogue, &mut telnet, session),
            "",
            "no token shown"
        );
        assert!(matches!(
            said(&mut dialogue, "/quit"),
            (Some(Outgoing::Message(ClientMessage::Logout)), _)
        ));
    }

    #[test]
    fn chat_lines_are_from_colon_text_with_controls_escaped() {
        let mut dialogue = Dialogue::default();
        let mut telnet = Telnet::new();
        let mut say = |text: &str, from: &str| {
            shown(&mut dialogue, &mut telnet, ServerMessage::say(text, from))
        };
        assert_eq!(say("hello", "bob"), "bob: hello\r\n");
        assert_eq!(say("/me waves", "bob"), "* bob waves\r\n");
        assert_eq!(
            say("\x1b[2Jline1\nada: fake\rx", "b\u{202e}ob"),
            "b\\u{202e}ob: \\u{1b}[2Jline1\r\n  | ada: fake\\rx\r\n"
        );
    }

    #[test]
    fn the_rest_of_the_server_reads_as_lines() {
        let mut dialogue = Dialogue::default();
        let mut telnet = Telnet::new();
        let mut show = |message| shown(&mut dialogue, &mut telnet, message);
        assert_eq!(
            show(ServerMessage::Who {
                users: vec!["ada".into(), "bob".into()]
            }),
            "in the room (2): ada, bob\r\n"
        );
        assert_eq!(
            show(ServerMessage::Event {
                kind: EventKind::Joined,
                user: "carl".into(),
                at: String::new()
            }),
            "--> carl joined\r\n"
        );
        assert_eq!(
            show(ServerMessage::Bye {
                text: "server shutting down".into()
            }),
            "bye: server shutting down\r\n"
        );
        assert_eq!(
            show(ServerMessage::error(
                ErrorCode::FrameTooLarge,
                "frame of 9 bytes"
            )),
            "error: line too long (the limit is 4096 bytes here)\r\n"
        );
        assert!(show(ServerMessage::Ready { user: "ada".into() }).contains("you are ada"));
        assert!(dialogue.ready());
    }
}
