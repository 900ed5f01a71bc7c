//! Telnet's option negotiation (RFC 854, RFC 855), taken out of a line-mode
//! client's bytes and refused.
//!
//! A telnet client may interleave commands with what the person types: `IAC
//! WILL|WONT|DO|DONT OPTION` (three bytes), subnegotiations `IAC SB ... IAC
//! SE` of any length, two-byte commands such as `IAC NOP` or `IAC IP`, and
//! `IAC IAC` for a literal 255. Left in, they would reach the room as text
//! (and `IAC SB` would make a user name nobody can type). [`Telnet::feed`]
//! keeps only the data bytes, in a state machine that survives a sequence
//! split across reads, and holds nothing but its state: a subnegotiation is
//! skipped, not buffered, however long it is.
//!
//! Every option the client offers (`WILL`) or asks for (`DO`) is refused
//! (`DONT`, `WONT`), so the client stays in the plain network virtual
//! terminal where lines end with `CR LF`. Withdrawals (`WONT`, `DONT`) are
//! not answered: answering them is how two peers loop forever (RFC 1143).
//!
//! The one option the server offers itself is `ECHO`, around a password
//! prompt, and only to a client that showed it speaks telnet by sending
//! `IAC` first: `IAC WILL ECHO` makes telnet stop echoing what the person
//! types (the server echoes nothing, so the password is not shown), and
//! `IAC WONT ECHO` gives the echo back. A client that never sent `IAC` (nc)
//! never receives a negotiation byte.

use bytes::{BufMut, BytesMut};

/// Interpret As Command: starts every telnet command.
pub(crate) const IAC: u8 = 255;
/// The sender refuses to perform, or stops performing, an option.
pub(crate) const WONT: u8 = 252;
/// The sender wants to perform an option.
pub(crate) const WILL: u8 = 251;
/// The sender wants the other side to perform an option.
pub(crate) const DO: u8 = 253;
/// The sender wants the other side to stop performing an option.
pub(crate) const DONT: u8 = 254;
/// Subnegotiation begins.
pub(crate) const SB: u8 = 250;
/// Subnegotiation ends.
pub(crate) const SE: u8 = 240;
/// The ECHO option (RFC 857): the side that performs it echoes the input.
pub(crate) const ECHO: u8 = 1;

/// Where the parser is in a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Plain data.
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC` and one of `WILL`, `WONT`, `DO`, `DONT`: the option is next.
    Verb(u8),
    /// Inside `IAC SB ...`: skipped.
    Sub,
    /// After `IAC` inside a subnegotiation.
    SubIac,
}

/// One client's telnet state: the parser's place, whether the client speaks
/// telnet, and whether the server is performing `ECHO` (hiding the input).
#[derive(Debug)]
pub(crate) struct Telnet {
    state: State,
    /// The client sent `IAC` at least once: it is a telnet client.
    seen: bool,
    /// The server said `WILL ECHO` and has not withdrawn it.
    echoing: bool,
}

impl Telnet {
    pub(crate) fn new() -> Telnet {
        Telnet {
            state: State::Data,
            seen: false,
            echoing: false,
        }
    }

    /// Whether the client has shown that it speaks telnet.
    #[cfg(test)]
    pub(crate) fn seen(&self) -> bool {
        self.seen
    }

    /// Appends the data bytes of `input` to `data` and the answers to its
    /// negotiation to `replies`.
    pub(crate) fn feed(&mut self, input: &[u8], data: &mut BytesMut, replies: &mut BytesMut) {
        // Most reads hold no command at all: copy them whole.
        if self.state == State::Data && !input.contains(&IAC) {
            data.extend_from_slice(input);
            return;
        }
        for &byte in input {
            self.state = match (self.state, byte) {
                (State::Data, IAC) => {
                    self.seen = true;
                    State::Iac
                }
                (State::Data, byte) => {
                    data.put_u8(byte);
                    State::Data
                }
                (State::Iac, IAC) => {
                    data.put_u8(IAC);
                    State::Data
                }
                (State::Iac, WILL | WONT | DO | DONT) => State::Verb(byte),
                (State::Iac, SB) => State::Sub,
                // NOP, GA, AYT, IP, EC, EL, a stray SE...: nothing to keep.
                (State::Iac, _) => State::Data,
                (State::Verb(verb), option) => {
                    self.answer(verb, option, replies);
                    State::Data
                }
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, IAC) => State::Sub,
                // A subnegotiation never closed: the command after its IAC
                // ends it, so that a malformed one cannot swallow every
                // line after it.
                (State::SubIac, WILL | WONT | DO | DONT) => State::Verb(byte),
                (State::SubIac, _) => State::Data,
            };
        }
    }

    /// Refuses what the client offers or asks for; see the module docs.
    fn answer(&mut self, verb: u8, option: u8, replies: &mut BytesMut) {
        match (verb, option) {
            // The client agrees to the echo the server offered.
            (DO, ECHO) if self.echoing => {}
            (DO, _) => replies.put_slice(&[IAC, WONT, option]),
            (WILL, _) => replies.put_slice(&[IAC, DONT, option]),
            // The client refuses the echo: acknowledge, and stop.
            (DONT, ECHO) if self.echoing => {
                self.echoing = false;
                replies.put_slice(&[IAC, WONT, ECHO]);
            }
            // A withdrawal of what was never agreed: nothing to say.
            _ => {}
        }
    }

    /// Before a password prompt: asks a telnet client not to show what the
    /// person types. Writes nothing for a client that never sent `IAC`.
    pub(crate) fn hide_input(&mut self, out: &mut BytesMut) {
        if self.seen && !self.echoing {
            self.echoing = true;
            out.put_slice(&[IAC, WILL, ECHO]);
        }
    }

    /// After the password: gives the client its echo back. `true` when it
    /// had been hidden (the person's Enter was not shown either, so the
    /// caller moves to a new line).
    pub(crate) fn show_input(&mut self, out: &mut BytesMut) -> bool {
        if !self.echoing {
            return false;
        }
        self.echoing = false;
        out.put_slice(&[IAC, WONT, ECHO]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after the other; returns the data and the replies.
    fn feed(telnet: &mut Telnet, chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut replies) = (BytesMut::new(), BytesMut::new());
        for chunk in chunks {
            telnet.feed(chunk, &mut data, &mut replies);
        }
        (data.to_vec(), replies.to_vec())
    }

    #[test]
    fn plain_bytes_pass_and_the_client_is_not_taken_for_telnet() {
        let mut telnet = Telnet::new();
        let (data, replies) = feed(&mut telnet, &[b"hello\r\n"]);
        assert_eq!(data, b"hello\r\n");
        assert!(replies.is_empty());
        assert!(!telnet.seen());
    }

    #[test]
    fn offers_and_requests_are_refused_and_removed_from_the_data() {
        let mut telnet = Telnet::new();
        // WILL NAWS, DO SUPPRESS-GO-AHEAD, WILL TERMINAL-TYPE.
        let (data, replies) = feed(
            &mut telnet,
            &[&[IAC, WILL, 31, b'h', IAC, DO, 3, b'i', IAC, WILL, 24, b'\n']],
        );
        assert_eq!(data, b"hi\n");
        assert_eq!(replies, [IAC, DONT, 31, IAC, WONT, 3, IAC, DONT, 24]);
        assert!(telnet.seen());
    }

    #[test]
    fn withdrawals_are_not_answered() {
        let mut telnet = Telnet::new();
        let (data, replies) = feed(&mut telnet, &[&[IAC, WONT, 31, IAC, DONT, 1, b'x']]);
        assert_eq!(data, b"x");
        assert!(replies.is_empty());
    }

    #[test]
    fn a_subnegotiation_is_skipped_whole_even_with_an_escaped_iac_inside() {
        let mut telnet = Telnet::new();
        // IAC SB NAWS 0 80 0 255(escaped) IAC SE
        let (data, replies) = feed(
            &mut telnet,
            &[&[b'a', IAC, SB, 31, 0, 80, 0, IAC, IAC, IAC, SE, b'b']],
        );
        assert_eq!(data, b"ab");
        assert!(replies.is_empty());
    }

    #[test]
    fn sequences_split_across_reads_at_every_byte_are_still_recognised() {
        let input: &[u8] = &[
            b'a', IAC, WILL, 24, b'b', IAC, SB, 24, 0, b'x', b't', IAC, SE, b'c', IAC, IAC, b'd',
            IAC, 241, b'e',
        ];
        let (whole_data, whole_replies) = feed(&mut Telnet::new(), &[input]);
        assert_eq!(whole_data, [b'a', b'b', b'c', IAC, b'd', b'e']);
        assert_eq!(whole_replies, [IAC, DONT, 24]);
        for split in 1..input.len() {
            let (first, second) = input.split_at(split);
            assert_eq!(
                feed(&mut Telnet::new(), &[first, second]),
                (whole_data.clone(), whole_replies.clone()),
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            feed(&mut Telnet::new(), &bytes),
            (whole_data, whole_replies)
        );
    }

    #[test]
    fn an_unclosed_subnegotiation_ends_at_the_next_command() {
        let mut telnet = Telnet::new();
        let (data, replies) = feed(&mut telnet, &[&[IAC, SB, 24, b'x', IAC, DO, 5, b'y']]);
        assert_eq!(data, b"y");
        assert_eq!(replies, [IAC, WONT, 5]);
    }

    #[test]
    fn echo_is_offered_only_to_telnet_and_its_acceptance_is_not_refused() {
        let mut nc = Telnet::new();
        let mut out = BytesMut::new();
        nc.hide_input(&mut out);
        assert!(out.is_empty(), "nc must never see a negotiation byte");
        assert!(!nc.show_input(&mut out));
        assert!(out.is_empty());

        let mut telnet = Telnet::new();
        feed(&mut telnet, &[&[IAC, 241]]);
        telnet.hide_input(&mut out);
        assert_eq!(&out[..], [IAC, WILL, ECHO]);
        // The client agrees: no answer, or the two would loop.
        let (_, replies) = feed(&mut telnet, &[&[IAC, DO, ECHO]]);
        assert!(replies.is_empty());
        out.clear();
        assert!(telnet.show_input(&mut out));
        assert_eq!(&out[..], [IAC, WONT, ECHO]);
        // Asked for echo when none is offered: refused.
        let (_, replies) = feed(&mut telnet, &[&[IAC, DO, ECHO]]);
        assert_eq!(replies, [IAC, WONT, ECHO]);
    }

    #[test]
    fn a_client_that_refuses_the_echo_is_acknowledged_once() {
        let mut telnet = Telnet::new();
        feed(&mut telnet, &[&[IAC, 241]]);
        let mut out = BytesMut::new();
        telnet.hide_input(&mut out);
        let (_, replies) = feed(&mut telnet, &[&[IAC, DONT, ECHO, IAC, DONT, ECHO]]);
        assert_eq!(replies, [IAC, WONT, ECHO]);
        out.clear();
        assert!(!telnet.show_input(&mut out));
    }
}
