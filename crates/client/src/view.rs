//! The conversation as a person sees it: how every message the server
//! sends after `ready` reads on screen, shared by the interactive and the
//! scripted conversation, and how the story ends (`bye`, an `error`, a
//! close).
//!
//! # How lines read
//!
//! ```text
//! 12:34 ada: hello                    a line of the room
//! 12:34 ada: first line               a text of several lines: each line
//!         | second line               after the first behind "  | "
//! 12:34 * ada waves                   an action (/me waves)
//! 12:35 [private] bob: psst           a line for this client alone
//! 12:30 [history] eve: earlier        a line replayed from the room's history
//! 12:35 -- end of history --          before the first live line, event
//!                                     or answer after replayed lines, or
//!                                     at `recovered`
//! 12:36 --> carl joined               someone entered the room
//! 12:37 <-- carl left                 someone left it
//! 12:38 in the room (2): ada, bob     the answer to /who
//! ```
//!
//! - Every text from the server (`text`, `from`, `user`, names, error and
//!   `bye` texts) goes through [`porter_wire::text`]: controls and
//!   bidirectional controls are shown as escapes (`\u{1b}`), never obeyed.
//! - The time is the line's `at` (when the room accepted it) in the local
//!   time zone (`TZ`, else the system's), or the time it was received when
//!   it has no `at`. A view without timestamps leaves it out, as the
//!   scripted conversation does.
//! - An action is a `say` whose text starts with `/me `
//!   ([`ACTION_PREFIX`]), the convention of IRC: it reaches everyone as a
//!   normal line, and Porter clients show it as `* NAME ACTION`. It always
//!   names its real sender, and never looks like a join or a leave.
//!
//! Porter's own messages (refusals, the server's goodbye) are notes,
//! shown apart from the conversation: `porter: refused: TEXT (CODE)`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use porter_wire::text::{printable, printable_lines};
use porter_wire::{EventKind, ServerMessage};

use crate::error::{Ending, Error, Result, ServerError};

pub use porter_wire::command::ACTION_PREFIX;
/// What starts each line of a multi-line text after the first (after the
/// time's width when there is one).
pub use porter_wire::text::CONTINUATION;

/// One thing to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shown {
    /// A line of the conversation (stdout in scripted mode).
    Line(String),
    /// A note from Porter itself, shown as `porter: NOTE` (stderr in
    /// scripted mode).
    Note(String),
}

/// Whether the conversation goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// The server said a plain `bye`: the conversation is over, and that
    /// is not an error.
    Bye,
}

/// The conversation's state as far as showing it goes.
#[derive(Debug)]
pub(crate) struct View {
    /// The local time zone, when lines carry their time.
    zone: Option<TimeZone>,
    /// Replayed lines were shown and their separator was not yet.
    replaying: bool,
    /// The last `error`, until a line shows it was not the end.
    last_error: Option<ServerError>,
    /// Whether `last_error` was shown when it arrived.
    error_shown: bool,
}

impl View {
    /// A view with a local time on each line, or none.
    pub(crate) fn new(timestamps: bool) -> View {
        View::in_zone(timestamps.then(TimeZone::system))
    }

    /// A view with times in `zone` (`None`: no times).
    pub(crate) fn in_zone(zone: Option<TimeZone>) -> View {
        View {
            zone,
            replaying: false,
            last_error: None,
            error_shown: false,
        }
    }

    /// Shows `message` (`None`: the server closed the connection), received
    /// at `now`, by pushing onto `shown`.
    ///
    /// # Errors
    /// [`Error::Ended`] when the server closed without `bye`, or said `bye`
    /// right after an `error`.
    pub(crate) fn receive(
        &mut self,
        message: Option<ServerMessage>,
        now: Timestamp,
        shown: &mut Vec<Shown>,
    ) -> Result<Flow> {
        let Some(message) = message else {
            return Err(self.ending(None));
        };
        match message {
            ServerMessage::Say {
                text,
                from,
                at,
                to,
                replay,
                ..
            } => {
                // A line after an error: that error was not the end. Show it
                // now if it was held back as the likely last word.
                if let Some(error) = self.last_error.take()
                    && !self.error_shown
                {
                    shown.push(Shown::Note(error.to_string()));
                }
                if !replay {
                    self.end_history(now, shown);
                }
                self.replaying |= replay;
                let mut tags = String::new();
                if replay {
                    tags.push_str("[history] ");
                }
                if to.is_some() {
                    tags.push_str("[private] ");
                }
                let line = self.said(at.as_deref(), now, &tags, &from, &text);
                shown.push(Shown::Line(line));
            }
            ServerMessage::Event { kind, user, at } => {
                self.end_history(now, shown);
                let what = match kind {
                    EventKind::Joined => format!("--> {} joined", printable(&user)),
                    EventKind::Left => format!("<-- {} left", printable(&user)),
                    _ => {
                        tracing::debug!("skipping an event of unknown kind");
                        return Ok(Flow::Continue);
                    }
                };
                shown.push(Shown::Line(format!("{}{what}", self.stamp(Some(&at), now))));
            }
            ServerMessage::Who { mut users } => {
                self.end_history(now, shown);
                users.sort();
                let names = if users.is_empty() {
                    ": nobody".to_owned()
                } else {
                    let names: Vec<_> = users.iter().map(|u| printable(u)).collect();
                    format!(" ({}): {}", users.len(), names.join(", "))
                };
                shown.push(Shown::Line(format!(
                    "{}in the room{names}",
                    self.stamp(None, now)
                )));
            }
            ServerMessage::Recovered { complete, missed } => {
                if !complete {
                    shown.push(Shown::Line(format!(
                        "{}-- end of history: {missed} earlier lines are no longer kept --",
                        self.stamp(None, now)
                    )));
                    self.replaying = false;
                } else {
                    self.end_history(now, shown);
                }
            }
            ServerMessage::Error { code, text } => {
                let error = ServerError { code, text };
                // An error the server closes after is told once, as the
                // ending; one it goes on after is told now.
                self.error_shown = !error.ends_connection();
                if self.error_shown {
                    shown.push(Shown::Note(error.to_string()));
                }
                self.last_error = Some(error);
            }
            ServerMessage::Bye { text } => {
                if self.last_error.is_some() {
                    return Err(self.ending(Some(text)));
                }
                shown.push(Shown::Note(format!(
                    "the server said goodbye: {}",
                    printable(&text)
                )));
                return Ok(Flow::Bye);
            }
            ServerMessage::Ask { id, .. } => {
                shown.push(Shown::Note(format!(
                    "the server asked \"{}\" after the handshake; not answered",
                    printable(&id)
                )));
            }
            other => tracing::debug!(message = other.type_name(), "ignored after ready"),
        }
        Ok(Flow::Continue)
    }

    /// The error the conversation ends with.
    fn ending(&mut self, bye: Option<String>) -> Error {
        Error::Ended(Ending {
            bye,
            error: self.last_error.take(),
            error_shown: self.error_shown,
        })
    }

    /// The separator after replayed lines, if some were shown.
    fn end_history(&mut self, now: Timestamp, shown: &mut Vec<Shown>) {
        if std::mem::take(&mut self.replaying) {
            shown.push(Shown::Line(format!(
                "{}-- end of history --",
                self.stamp(None, now)
            )));
        }
    }

    /// A `say`: `TIME TAGS FROM: TEXT`, or `TIME TAGS * FROM ACTION`.
    fn said(&self, at: Option<&str>, now: Timestamp, tags: &str, from: &str, text: &str) -> String {
        let stamp = self.stamp(at, now);
        let indent = format!("{:width$}{CONTINUATION}", "", width = stamp.len());
        let from = printable(from);
        match text.strip_prefix(ACTION_PREFIX) {
            Some(action) => format!("{stamp}{tags}* {from} {}", printable_lines(action, &indent)),
            None => format!("{stamp}{tags}{from}: {}", printable_lines(text, &indent)),
        }
    }

    /// `HH:MM ` in local time, from `at` when it parses, else from `now`;
    /// empty without timestamps.
    fn stamp(&self, at: Option<&str>, now: Timestamp) -> String {
        let Some(zone) = &self.zone else {
            return String::new();
        };
        let when = at
            .and_then(|at| at.parse::<Timestamp>().ok())
            .unwrap_or(now);
        let local = zone.to_datetime(when);
        format!("{:02}:{:02} ", local.hour(), local.minute())
    }
}

#[cfg(test)]
mod tests {
    use porter_wire::ErrorCode;

    use super::*;

    fn now() -> Timestamp {
        "2030-01-02T03:04:05Z".parse().unwrap()
    }

    /// Times at UTC+2.
    fn view() -> View {
        View::in_zone(Some(TimeZone::fixed(jiff::tz::offset(2))))
    }

    fn lines(view: &mut View, messages: Vec<ServerMessage>) -> Vec<Shown> {
        let mut shown = Vec::new();
        for message in messages {
            view.receive(Some(message), now(), &mut shown).unwrap();
        }
        shown
    }

    fn line(s: &str) -> Shown {
        Shown::Line(s.to_owned())
    }

    fn say(text: &str, from: &str, at: Option<&str>) -> ServerMessage {
        ServerMessage::Say {
            text: text.into(),
            from: from.into(),
            seq: None,
            at: at.map(Into::into),
            to: None,
            replay: false,
        }
    }

    #[test]
    fn a_line_shows_its_own_time_in_the_local_zone_else_the_time_received() {
        let shown = lines(
            &mut view(),
            vec![
                say("hi", "ada", Some("2030-01-02T22:59:00Z")),
                say("ho", "bob", None),
                say("hu", "eve", Some("not a time")),
            ],
        );
        assert_eq!(
            shown,
            [
                line("00:59 ada: hi"),
                line("05:04 bob: ho"),
                line("05:04 eve: hu")
            ]
        );
    }

    #[test]
    fn without_timestamps_a_line_is_from_and_text() {
        let shown = lines(&mut View::new(false), vec![say("hi", "ada", None)]);
        assert_eq!(shown, [line("ada: hi")]);
    }

    #[test]
    fn remote_text_never_reaches_the_terminal_raw() {
        let shown = lines(
            &mut View::new(false),
            vec![
                say("\x1b[2J\x1b[H", "ada", None),
                say("\x1b]0;TITLE\x07", "ada", None),
                say("AAAA\rforged", "ada", None),
                say("line1\nbob: fake line", "ada", None),
                say("hi", "\x1b[41m", None),
                say("a\u{202e}gnp.exe", "ada", None),
            ],
        );
        assert_eq!(
            shown,
            [
                line(r"ada: \u{1b}[2J\u{1b}[H"),
                line(r"ada: \u{1b}]0;TITLE\u{7}"),
                line(r"ada: AAAA\rforged"),
                line("ada: line1\n  | bob: fake line"),
                line(r"\u{1b}[41m: hi"),
                line(r"ada: a\u{202e}gnp.exe"),
            ]
        );
    }

    #[test]
    fn continuation_lines_are_indented_past_the_time() {
        let shown = lines(&mut view(), vec![say("one\ntwo", "ada", None)]);
        assert_eq!(shown, [line("05:04 ada: one\n        | two")]);
    }

    #[test]
    fn actions_private_lines_and_history_are_marked() {
        let mut private = say("psst", "bob", None);
        if let ServerMessage::Say { to, .. } = &mut private {
            *to = Some("ada".into());
        }
        let mut old = say("earlier", "eve", None);
        if let ServerMessage::Say { replay, .. } = &mut old {
            *replay = true;
        }
        let shown = lines(
            &mut View::new(false),
            vec![old.clone(), old, say("/me waves", "ada", None), private],
        );
        assert_eq!(
            shown,
            [
                line("[history] eve: earlier"),
                line("[history] eve: earlier"),
                line("-- end of history --"),
                line("* ada waves"),
                line("[private] bob: psst"),
            ]
        );
    }

    #[test]
    fn an_event_after_history_closes_it_first() {
        let mut old = say("earlier", "eve", None);
        if let ServerMessage::Say { replay, .. } = &mut old {
            *replay = true;
        }
        let shown = lines(
            &mut View::new(false),
            vec![
                old,
                ServerMessage::Event {
                    kind: EventKind::Joined,
                    user: "carl".into(),
                    at: "2030-01-02T10:00:00Z".into(),
                },
            ],
        );
        assert_eq!(
            shown,
            [
                line("[history] eve: earlier"),
                line("-- end of history --"),
                line("--> carl joined"),
            ]
        );
    }

    #[test]
    fn recovered_closes_the_history_and_says_what_is_missing() {
        let mut old = say("earlier", "eve", None);
        if let ServerMessage::Say { replay, .. } = &mut old {
            *replay = true;
        }
        let shown = lines(
            &mut View::new(false),
            vec![
                ServerMessage::Recovered {
                    complete: true,
                    missed: 0,
                },
                old,
                ServerMessage::Recovered {
                    complete: true,
                    missed: 0,
                },
                say("live", "ada", None),
                ServerMessage::Recovered {
                    complete: false,
                    missed: 3,
                },
            ],
        );
        assert_eq!(
            shown,
            [
                line("[history] eve: earlier"),
                line("-- end of history --"),
                line("ada: live"),
                line("-- end of history: 3 earlier lines are no longer kept --"),
            ]
        );
    }

    #[test]
    fn events_and_who_read_as_such_never_as_a_line_from_someone() {
        let shown = lines(
            &mut view(),
            vec![
                ServerMessage::Event {
                    kind: EventKind::Joined,
                    user: "carl".into(),
                    at: "2030-01-02T10:00:00Z".into(),
                },
                ServerMessage::Event {
                    kind: EventKind::Left,
                    user: "carl\x1b[2J".into(),
                    at: "2030-01-02T10:01:00Z".into(),
                },
                ServerMessage::Who {
                    users: vec!["bob".into(), "ada".into()],
                },
                ServerMessage::Who { users: vec![] },
            ],
        );
        assert_eq!(
            shown,
            [
                line("12:00 --> carl joined"),
                line(r"12:01 <-- carl\u{1b}[2J left"),
                line("05:04 in the room (2): ada, bob"),
                line("05:04 in the room: nobody"),
            ]
        );
    }

    #[test]
    fn a_refusal_is_one_note_and_the_conversation_goes_on() {
        let mut view = View::new(false);
        let shown = lines(
            &mut view,
            vec![ServerMessage::error(
                ErrorCode::UnknownUser,
                "no one called bob",
            )],
        );
        assert_eq!(
            shown,
            [Shown::Note(
                "refused: no one called bob (unknown_user)".into()
            )]
        );
        // Then the connection closes: the refusal is not told again.
        let err = view.receive(None, now(), &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server ended the conversation: the server closed the connection"
        );
        assert_eq!(
            err.server_error().map(|e| e.code),
            Some(ErrorCode::UnknownUser)
        );
    }

    #[test]
    fn revoked_then_bye_is_one_ending_and_nothing_before_it() {
        let mut view = View::new(false);
        let mut shown = Vec::new();
        view.receive(
            Some(ServerMessage::error(
                ErrorCode::Revoked,
                "your session was revoked",
            )),
            now(),
            &mut shown,
        )
        .unwrap();
        let err = view
            .receive(
                Some(ServerMessage::Bye {
                    text: "goodbye".into(),
                }),
                now(),
                &mut shown,
            )
            .unwrap_err();
        assert!(shown.is_empty(), "{shown:?}");
        assert_eq!(
            err.to_string(),
            "refused: your session was revoked (revoked); goodbye"
        );
    }

    #[test]
    fn a_plain_bye_is_a_note_and_the_end() {
        let mut shown = Vec::new();
        let flow = View::new(false)
            .receive(
                Some(ServerMessage::Bye {
                    text: "shutting down".into(),
                }),
                now(),
                &mut shown,
            )
            .unwrap();
        assert_eq!(flow, Flow::Bye);
        assert_eq!(
            shown,
            [Shown::Note("the server said goodbye: shutting down".into())]
        );
    }
}
