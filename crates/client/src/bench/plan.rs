//! What a run is asked to do ([`Plan`]), and whether it can work
//! ([`Plan::check`], with a typed [`PlanError`]).
//!
//! The plan is plain data. Where its values come from (flags, their
//! defaults, messages that name them) is the command line's business:
//! `porter bench` builds a plan from its flags and words each
//! [`PlanError`] in terms of the flag that caused it.

use std::time::Duration;

use porter_wire::{AuthMode, ClientMessage, EncodedFrame, FrameCodec, Secret, ServiceKind};

use super::chat;
use crate::connect::ConnectOptions;
use crate::tls::Trust;

/// Most connections one run may open (and the chat stamp's width).
pub const MAX_CONNS: usize = 99_999;

/// Most requests in flight per connection. Below the server's default
/// outgoing queue (1,024 frames): a connection reads its replies only
/// between batches, and a server whose queue for it fills up rightly
/// disconnects it as a client that does not read.
pub const MAX_PIPELINE: usize = 512;

/// Most request bytes in flight per connection: what loopback socket
/// buffers absorb while a connection writes a batch before reading.
pub const MAX_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

/// Smallest message in chat: the stamp that carries the sender and the send
/// time in the text.
pub const MIN_CHAT_SIZE: usize = chat::STAMP_LEN;

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests stop being sent after this long; those in flight finish.
    Duration(Duration),
    /// This many messages in all, shared among the connections.
    Messages(u64),
}

/// How many token resumes the login phase of `auth password` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumes {
    /// This many rounds: every user that logged in resumes once per round.
    PerUser(u64),
    /// At least this many in all, in rounds over the users that logged in.
    Total(u64),
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the server is.
    pub connect: ConnectOptions,
    /// Over TLS, trusting the server so; `None` for TCP.
    pub tls: Option<Trust>,
    /// Connections.
    pub conns: usize,
    /// Requests in flight per connection (chat: lines not yet delivered to
    /// everyone, per connection).
    pub pipeline: usize,
    /// Bytes of text per message.
    pub size: usize,
    /// When to stop.
    pub limit: Limit,
    /// The service the server runs (it does not say; the bench must know).
    pub service: ServiceKind,
    /// How connections log in.
    pub auth: AuthMode,
    /// Password of the bench users (`auth password`).
    pub password: Secret,
    /// Token resumes in the login phase.
    pub resumes: Resumes,
    /// The server's process id, to report its CPU time per login and per
    /// resume (Linux `/proc`; same machine only).
    pub server_pid: Option<u32>,
    /// No handshake and no JSON replies expected beyond a verbatim echo: for
    /// the bare baseline server.
    pub raw: bool,
    /// Show a progress bar on the terminal.
    pub progress: bool,
}

impl Plan {
    /// Where its connections go.
    pub(crate) fn dial(&self) -> super::conn::Dial<'_> {
        super::conn::Dial {
            connect: &self.connect,
            tls: self.tls.as_ref(),
        }
    }

    /// Checks that the plan makes a run that can work, before anything is
    /// sent.
    ///
    /// # Errors
    /// The first [`PlanError`] found.
    pub fn check(&self) -> Result<(), PlanError> {
        if self.conns == 0 || self.conns > MAX_CONNS {
            return Err(PlanError::Conns { max: MAX_CONNS });
        }
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return Err(PlanError::Pipeline { max: MAX_PIPELINE });
        }
        match self.limit {
            Limit::Duration(duration) if duration.is_zero() => {
                return Err(PlanError::ZeroDuration);
            }
            Limit::Messages(messages) if messages < self.conns as u64 => {
                return Err(PlanError::FewerMessagesThanConns {
                    messages,
                    conns: self.conns,
                });
            }
            _ => {}
        }
        let frame = self.request_frame()?;
        if frame.as_bytes().len() * self.pipeline > MAX_IN_FLIGHT_BYTES {
            return Err(PlanError::TooMuchInFlight {
                max: MAX_IN_FLIGHT_BYTES,
            });
        }
        if self.auth == AuthMode::Ip {
            return Err(PlanError::IpAuth);
        }
        if self.raw && self.auth != AuthMode::None {
            return Err(PlanError::RawWithAuth);
        }
        if self.service == ServiceKind::Chat {
            if self.conns < 2 {
                return Err(PlanError::ChatNeedsTwo);
            }
            if self.size < MIN_CHAT_SIZE {
                return Err(PlanError::ChatTooSmall { min: MIN_CHAT_SIZE });
            }
        }
        if matches!(self.resumes, Resumes::PerUser(0) | Resumes::Total(0)) {
            return Err(PlanError::ZeroResumes);
        }
        Ok(())
    }

    /// The echo request: a `say` of `size` bytes of text, framed.
    pub(crate) fn request_frame(&self) -> Result<EncodedFrame, PlanError> {
        let say = ClientMessage::Say {
            text: "x".repeat(self.size),
            to: None,
        };
        EncodedFrame::message(&FrameCodec::new(), &say).map_err(|source| {
            PlanError::MessageTooLarge {
                size: self.size,
                source,
            }
        })
    }

    /// `host:port`, for the report.
    pub(crate) fn target(&self) -> String {
        format!("{}:{}", self.connect.host, self.connect.port)
    }
}

/// Why a plan cannot make a run that works.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// No connection, or more than [`MAX_CONNS`].
    #[error("the number of connections must be 1 to {max}")]
    Conns {
        /// The most allowed.
        max: usize,
    },

    /// No request in flight, or more than [`MAX_PIPELINE`].
    #[error("the requests in flight per connection must be 1 to {max}")]
    Pipeline {
        /// The most allowed.
        max: usize,
    },

    /// A run of no time at all.
    #[error("the duration must be more than zero")]
    ZeroDuration,

    /// Fewer messages than connections: some would send nothing.
    #[error("{messages} messages for {conns} connections: every connection must send")]
    FewerMessagesThanConns {
        /// Messages asked for.
        messages: u64,
        /// Connections asked for.
        conns: usize,
    },

    /// A message the server would refuse: its frame is over the limit.
    #[error("messages of {size} bytes make frames the server refuses")]
    MessageTooLarge {
        /// The text size asked for.
        size: usize,
        /// Why the frame cannot be made.
        #[source]
        source: porter_wire::Error,
    },

    /// More than [`MAX_IN_FLIGHT_BYTES`] of requests in flight per
    /// connection.
    #[error("too many bytes in flight: at most {max} per connection")]
    TooMuchInFlight {
        /// The most allowed.
        max: usize,
    },

    /// `auth ip`, which cannot be benchmarked from one address.
    #[error("auth ip is not benchmarked: bench connections come from one address")]
    IpAuth,

    /// A raw run (the bare baseline) with authentication.
    #[error("a raw run talks to the bare baseline, which has no authentication")]
    RawWithAuth,

    /// Chat with fewer than two participants.
    #[error("chat needs at least 2 connections")]
    ChatNeedsTwo,

    /// Chat messages too short for the stamp.
    #[error("chat needs messages of at least {min} bytes (the send time travels in the text)")]
    ChatTooSmall {
        /// The smallest size, [`MIN_CHAT_SIZE`].
        min: usize,
    },

    /// A login phase without resumes.
    #[error("the login phase must resume at least once")]
    ZeroResumes,

    /// No idle connection, or more than the most allowed.
    #[error("the number of idle connections must be 1 to {max}")]
    IdleConns {
        /// The most allowed.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_that_cannot_work_is_a_typed_error() {
        let plan = Plan {
            connect: ConnectOptions::new("127.0.0.1", 9),
            tls: None,
            conns: 1,
            pipeline: 1,
            size: 64,
            limit: Limit::Messages(10),
            service: ServiceKind::Echo,
            auth: AuthMode::None,
            password: Secret::new("pw"),
            resumes: Resumes::PerUser(1),
            server_pid: None,
            raw: false,
            progress: false,
        };
        plan.check().unwrap();
        let chat = Plan {
            service: ServiceKind::Chat,
            ..plan.clone()
        };
        assert!(matches!(chat.check(), Err(PlanError::ChatNeedsTwo)));
        let huge = Plan {
            size: 70_000,
            ..plan
        };
        assert!(matches!(
            huge.check(),
            Err(PlanError::MessageTooLarge { size: 70_000, .. })
        ));
    }
}
