//! Porter's client: the session with a server, and the two ways of holding
//! a conversation with it.
//!
//! - [`session`]: connecting (with a timeout and an optional source
//!   address), the framed [`Connection`] over any async stream, and the
//!   [`handshake`] up to `ready`, whose questions are answered through the
//!   [`Answerer`] trait and whose session tokens go to a [`TokenJar`].
//! - [`jar`]: the cookie jar, one session token per server in a private
//!   file under the XDG state directory, and its [`TokenJar`] adapter.
//! - [`scripted`]: standard input is not a terminal; each line is a `say`,
//!   each reply a printed line, and a documented rule decides when the
//!   replies are all in.
//! - [`interactive`]: a terminal with a line editor and history; the
//!   server's lines appear above the line being typed.
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

pub mod bench;
mod error;
pub mod interactive;
pub mod jar;
pub mod scripted;
pub mod session;

pub use error::{Ending, Error, Result, ServerError};
pub use session::{
    Answerer, Ask, CLIENT_NAME, ConnectOptions, Connection, MessageReader, MessageWriter, NoTokens,
    Notice, ScriptedAnswers, SessionInfo, TokenJar, connect, handshake, logout,
};
