//! Porter's client: the session with a server, and the two ways of holding
//! a conversation with it.
//!
//! - `connect`: opening the stream to a server through a [`Connector`], the
//!   transport seam; [`ConnectOptions`] is the TCP one (a timeout per
//!   address, an optional source address).
//! - `connection`: the framed [`Connection`] over any async stream, its
//!   [`MessageReader`] and [`MessageWriter`] halves, and
//!   [`Connection::into_parts`] for going on with the raw stream.
//! - `handshake`: the dialogue up to `ready` ([`handshake`]) and [`logout`].
//! - `answers`: where the answers to the server's questions come from
//!   (the [`Answerer`] trait, [`ScriptedAnswers`]).
//! - `tokens`: where session tokens are kept (the [`TokenJar`] trait,
//!   [`NoTokens`]).
//! - [`jar`]: the cookie jar, one session token per server in a private
//!   file under the XDG state directory, and its [`TokenJar`] adapter.
//! - [`scripted`]: standard input is not a terminal; each line is a `say`,
//!   each reply a printed line, and a documented rule decides when the
//!   replies are all in.
//! - [`interactive`]: a terminal with a line editor and history; the
//!   server's lines appear above the line being typed.
//! - [`command`] (from `porter_wire`, where the server's line mode reads
//!   typed lines too): what a typed line means in both (`/msg`, `/me`,
//!   `/who`, `/help`, `/quit`); [`view`]: how what the server sends reads on screen
//!   in both, escaped through [`porter_wire::text`].
//! - [`terminal`]: questions at the terminal, a secret one without echo
//!   that stays hidden across Ctrl-Z and `fg` ([`terminal::read_secret`]).
//! - [`bench`](mod@bench): `porter bench`, load and latency measurement, run from a
//!   plain [`bench::Plan`] that the command line builds from its flags.
//!
//! Errors are one typed [`Error`]; the binary prints them and exits non-zero.
//!
//! ```no_run
//! # async fn demo() -> Result<(), porter_client::Error> {
//! use porter_client::{Connection, ConnectOptions, NoTokens, ScriptedAnswers};
//! let stream = porter_client::connect(&ConnectOptions::new("localhost", 9090)).await?;
//! let mut conn = Connection::new(stream);
//! let info = porter_client::handshake(&mut conn, &mut ScriptedAnswers::new(), &mut NoTokens).await?;
//! println!("known as {}", info.user);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod answers;
pub mod bench;
mod connect;
mod connection;
mod error;
mod handshake;
pub mod interactive;
pub mod jar;
pub mod known_servers;
pub mod scripted;
mod state;
pub mod terminal;
pub mod tls;
mod tokens;
pub mod view;

/// What a typed line means; it lives in `porter_wire`, where the server's
/// line mode reads lines too.
pub use porter_wire::command;

pub use answers::{Answerer, Ask, Notice, ScriptedAnswers};
pub use connect::{ConnectOptions, Connector, DEFAULT_CONNECT_TIMEOUT, connect};
pub use connection::{
    Connection, ConnectionParts, DEFAULT_MAX_INCOMING_FRAME_LEN, DEFAULT_MAX_OUTGOING_FRAME_LEN,
    MessageReader, MessageWriter,
};
pub use error::{Ending, Error, Result, ServerError};
pub use handshake::{CLIENT_NAME, SessionInfo, handshake, handshake_since, logout};
pub use tokens::{NoTokens, TokenJar};
