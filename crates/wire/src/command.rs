//! What a typed line means: a line for the room, or one of the slash
//! commands. Porter's interactive and scripted clients read lines the same
//! way, and so does the server's line mode (telnet, nc): defined here, the
//! lowest place both know, so that a command means one thing everywhere.
//!
//! | typed | sent |
//! |---|---|
//! | `hello` | `say {text: "hello"}` |
//! | `/msg bob psst` | `say {text: "psst", to: "bob"}` |
//! | `/me waves` | `say {text: "/me waves"}`, shown as `* ada waves` |
//! | `/who` | `who` |
//! | `//etc` | `say {text: "/etc"}`: a doubled slash sends a line starting with `/` |
//! | `/help`, `/quit` | nothing: the client lists the commands, or leaves |
//!
//! An unknown command is sent nowhere: a mistyped `/mgs bob …` must not
//! reach the whole room.

use crate::ClientMessage;

/// The text of a `say` that is an action: `/me waves` is sent as is, and
/// shown as `* ada waves`, the convention of IRC.
pub const ACTION_PREFIX: &str = "/me ";

/// The command that ends the conversation.
pub const QUIT_COMMAND: &str = "/quit";

/// The commands, one per line, for `/help`.
pub const HELP: &[&str] = &[
    "/msg NAME TEXT   a private line to NAME alone",
    "/me ACTION       an action, shown to everyone as \"* YOU ACTION\"",
    "/who             who is in the room",
    "/help            this list",
    "/quit            leave (Ctrl-D too)",
    "//TEXT           a line that starts with \"/\"",
];

/// What a line typed means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A line for the room.
    Say(&'a str),
    /// A private line (`/msg NAME TEXT`).
    Msg {
        /// The recipient.
        to: &'a str,
        /// The line.
        text: &'a str,
    },
    /// An action (`/me ACTION`).
    Me(&'a str),
    /// `/who`.
    Who,
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// A command this client does not know (the word, slash included).
    Unknown(&'a str),
    /// A known command used wrongly: how to use it.
    Usage(&'static str),
}

impl<'a> Command<'a> {
    /// Reads one typed line (without its line ending).
    pub fn parse(line: &'a str) -> Command<'a> {
        if line.starts_with("//") {
            // The doubled slash stands for one.
            return Command::Say(&line[1..]);
        }
        if !line.starts_with('/') {
            return Command::Say(line);
        }
        let (word, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(word, rest)| (word, rest.trim_start()));
        match word {
            "/msg" => match rest.split_once(char::is_whitespace) {
                Some((to, text)) if !text.trim().is_empty() => Command::Msg {
                    to,
                    text: text.trim_start(),
                },
                _ => Command::Usage("/msg NAME TEXT"),
            },
            "/me" if rest.trim().is_empty() => Command::Usage("/me ACTION"),
            "/me" => Command::Me(rest),
            "/who" => Command::Who,
            "/help" => Command::Help,
            QUIT_COMMAND => Command::Quit,
            _ => Command::Unknown(word),
        }
    }

    /// The message to send for this command, if it sends one.
    pub fn message(&self) -> Option<ClientMessage> {
        match *self {
            Command::Say(text) => Some(ClientMessage::Say {
                text: text.to_owned(),
                to: None,
            }),
            Command::Msg { to, text } => Some(ClientMessage::Say {
                text: text.to_owned(),
                to: Some(to.to_owned()),
            }),
            Command::Me(action) => Some(ClientMessage::Say {
                text: format!("{ACTION_PREFIX}{action}"),
                to: None,
            }),
            Command::Who => Some(ClientMessage::Who),
            Command::Help | Command::Quit | Command::Unknown(_) | Command::Usage(_) => None,
        }
    }

    /// What to tell the person instead of sending, for a line that sends
    /// nothing and does not end the conversation.
    pub fn complaint(&self) -> Option<String> {
        match self {
            Command::Unknown(word) => Some(format!(
                "unknown command {}; not sent (/help lists the commands; \
                 start with // to send a line that begins with /)",
                crate::text::printable(word)
            )),
            Command::Usage(usage) => Some(format!("usage: {usage}; not sent")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_and_doubled_slashes_are_said() {
        assert_eq!(Command::parse("hello"), Command::Say("hello"));
        assert_eq!(Command::parse(""), Command::Say(""));
        assert_eq!(Command::parse("//etc/hosts"), Command::Say("/etc/hosts"));
        assert_eq!(Command::parse(" /who"), Command::Say(" /who"));
    }

    #[test]
    fn msg_takes_a_name_and_the_rest_of_the_line() {
        assert_eq!(
            Command::parse("/msg bob  hi there "),
            Command::Msg {
                to: "bob",
                text: "hi there "
            }
        );
        assert_eq!(Command::parse("/msg bob"), Command::Usage("/msg NAME TEXT"));
        assert_eq!(Command::parse("/msg"), Command::Usage("/msg NAME TEXT"));
        assert_eq!(
            Command::parse("/msg bob hi").message(),
            Some(ClientMessage::Say {
                text: "hi".into(),
                to: Some("bob".into())
            })
        );
    }

    #[test]
    fn me_is_sent_as_a_normal_say_with_the_action_prefix() {
        assert_eq!(
            Command::parse("/me waves").message(),
            Some(ClientMessage::Say {
                text: "/me waves".into(),
                to: None
            })
        );
        assert_eq!(Command::parse("/me"), Command::Usage("/me ACTION"));
    }

    #[test]
    fn the_other_commands_and_unknown_ones() {
        assert_eq!(Command::parse("/who"), Command::Who);
        assert_eq!(Command::parse("/who").message(), Some(ClientMessage::Who));
        assert_eq!(Command::parse("/help"), Command::Help);
        assert_eq!(Command::parse("/quit"), Command::Quit);
        let typo = Command::parse("/mgs bob hi");
        assert_eq!(typo, Command::Unknown("/mgs"));
        assert_eq!(typo.message(), None);
        assert!(typo.complaint().unwrap().contains("/mgs"));
    }
}
