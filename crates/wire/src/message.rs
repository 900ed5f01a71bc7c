//! The messages of protocol version 1, in both directions, as serde types.
//!
//! Every non-empty frame carries one JSON object whose string field `type`
//! names the message. The enums here are internally tagged on that field with
//! the exact names of the spec. Fields a receiver does not know are ignored,
//! and a `type` it does not know decodes to the `Unknown` variant, so that the
//! server can answer `unknown_type` (and a client can skip it) instead of
//! treating it as garbage.
//!
//! Tokens and answers (which may be passwords) are [`Secret`]s: their `Debug`
//! output is redacted, so a stray `?msg` in a log line leaks nothing.

use std::fmt;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::frame::{FrameCodec, HEADER_LEN};
pub use crate::mode::AuthMode;

mod client_decode;

/// The protocol version this crate speaks, sent in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The first frame on every connection.
    Welcome {
        /// Server name and version, for people.
        server: String,
        /// The protocol version, [`PROTOCOL_VERSION`].
        protocol: u32,
        /// How this server identifies its clients.
        auth: AuthMode,
        /// (1.1) For a person who reads this frame in a terminal (`telnet`
        /// or `nc` show it as text): what this is, and how to talk to it in
        /// plain lines instead. Programs ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// A question; the server waits for an `answer` with the same `id`.
    Ask {
        /// What is asked: `name`, `user`, `password`, `new_password`,
        /// `repeat_password`, or an id a client must handle generically.
        id: String,
        /// The prompt to show.
        text: String,
        /// Hide the typed answer.
        #[serde(default)]
        secret: bool,
    },
    /// A line of conversation or information.
    Say {
        /// The line.
        text: String,
        /// Who said it; `server` for the server itself.
        from: String,
        /// (1.1) The line's place in the chat room: grows by exactly 1 for
        /// each line the room accepts. Absent on echo replies, greetings and
        /// private lines.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// (1.1) When the room accepted the line, RFC 3339 in UTC.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// (1.1) The recipient, on a private line only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// (1.1) The line comes from the room's history, not live.
        #[serde(default, skip_serializing_if = "is_false")]
        replay: bool,
    },
    /// A session token to store, like a cookie, and present in the next `hello`.
    Session {
        /// The token itself.
        token: Secret,
        /// The user it logs in.
        user: String,
        /// When it stops working, RFC 3339 in UTC.
        expires_at: String,
    },
    /// The handshake is over; the conversation starts.
    Ready {
        /// The name the client is known by from now on.
        user: String,
    },
    /// Something the client sent or did was refused.
    Error {
        /// What programs branch on.
        code: ErrorCode,
        /// What people read.
        text: String,
    },
    /// The server closes the connection right after this frame.
    Bye {
        /// Why, for people.
        text: String,
    },
    /// (1.1) The names in the chat room now, sorted: the answer to `who`.
    Who {
        /// The names.
        users: Vec<String>,
    },
    /// (1.1) Someone entered or left the chat room.
    Event {
        /// What happened.
        kind: EventKind,
        /// Who it happened to.
        user: String,
        /// When, RFC 3339 in UTC.
        at: String,
    },
    /// (1.1) After the lines replayed for a `hello` with `since`, before any
    /// live line.
    Recovered {
        /// False when the room no longer held every line asked for.
        complete: bool,
        /// How many lines asked for are gone.
        missed: u64,
    },
    /// A `type` this version does not know. Decoded, never sent.
    #[serde(other)]
    Unknown,
}

/// What an [`ServerMessage::Event`] says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Someone entered the room.
    Joined,
    /// Someone left the room.
    Left,
    /// A kind this version does not know. Decoded, never sent.
    #[serde(other)]
    Unknown,
}

/// For `skip_serializing_if`.
fn is_false(value: &bool) -> bool {
    !*value
}

impl ServerMessage {
    /// A plain `say{text, from}`: no room metadata (an echo reply, a
    /// greeting).
    pub fn say(text: impl Into<String>, from: impl Into<String>) -> ServerMessage {
        ServerMessage::Say {
            text: text.into(),
            from: from.into(),
            seq: None,
            at: None,
            to: None,
            replay: false,
        }
    }

    /// An `error{code, text}`.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> ServerMessage {
        ServerMessage::Error {
            code,
            text: text.into(),
        }
    }

    /// The message's `type` on the wire (`"unknown"` for
    /// [`ServerMessage::Unknown`]): for error texts and logs, which must
    /// never show the fields, since some carry a token.
    pub const fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Ask { .. } => "ask",
            ServerMessage::Say { .. } => "say",
            ServerMessage::Session { .. } => "session",
            ServerMessage::Ready { .. } => "ready",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Bye { .. } => "bye",
            ServerMessage::Who { .. } => "who",
            ServerMessage::Event { .. } => "event",
            ServerMessage::Recovered { .. } => "recovered",
            ServerMessage::Unknown => "unknown",
        }
    }
}

/// A message a client sends to the server.
///
/// `Deserialize` is written by hand (in `message/client_decode.rs`): it decodes
/// exactly what `#[serde(tag = "type")]` would, without buffering the whole
/// object first. Since the compact `say` takes a fast path
/// ([`decode_client_message`]), it serves the handshake's messages and the
/// other `say`s, 14-18% fewer instructions than the derive (figures there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// The first frame a client sends, after reading `welcome`.
    Hello {
        /// Client name and version, for the server's log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        /// A session token held for this server, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<Secret>,
        /// (1.1) The last room `seq` this client saw: the lines after it
        /// are replayed after `ready`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// The reply to the last `ask`.
    Answer {
        /// The `id` of that `ask`.
        id: String,
        /// The reply; it may be a password.
        text: Secret,
    },
    /// A line of conversation (only after `ready`).
    Say {
        /// The line.
        text: String,
        /// (1.1) The one participant the line is for: a private line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Revoke the current session; the server answers `bye` and closes.
    Logout,
    /// The client is leaving.
    Bye,
    /// (1.1) Who is in the chat room?
    Who,
    /// A `type` this version does not know. Decoded, never sent.
    #[serde(other)]
    Unknown,
}

impl ClientMessage {
    /// The message's `type` on the wire (`"unknown"` for
    /// [`ClientMessage::Unknown`]): for error texts and logs, which must
    /// never show the fields, since some carry a password.
    pub const fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Hello { .. } => "hello",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Say { .. } => "say",
            ClientMessage::Logout => "logout",
            ClientMessage::Bye => "bye",
            ClientMessage::Who => "who",
            ClientMessage::Unknown => "unknown",
        }
    }
}

/// The `code` of an `error` message (spec section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A header announced more than the maximum. The connection is closed.
    FrameTooLarge,
    /// Not UTF-8, not a JSON object, or no `type`. The connection stays open.
    InvalidMessage,
    /// A `type` the server does not know. The connection stays open.
    UnknownType,
    /// A valid message in the wrong state. The connection stays open.
    Unexpected,
    /// Wrong user or password. Open while attempts remain.
    BadCredentials,
    /// The token is unknown, expired or revoked. The connection stays open.
    SessionInvalid,
    /// A name or password refused by policy, or passwords that differ.
    InvalidAnswer,
    /// Too many failed attempts. The connection is closed.
    RateLimited,
    /// The handshake took too long. The connection is closed.
    Timeout,
    /// The server is at its connection limit. The connection is closed.
    Busy,
    /// (1.1) A private line to a name that is not in the room. The
    /// connection stays open.
    UnknownUser,
    /// (1.1) The room cannot take lines right now; the line reached no one.
    /// The connection stays open.
    Unavailable,
    /// (1.1) An operator revoked this session, removed this user or removed
    /// this participant from the room. The connection is closed.
    Revoked,
    /// A code this version does not know. Decoded, never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::Unexpected => "unexpected",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::SessionInvalid => "session_invalid",
            ErrorCode::InvalidAnswer => "invalid_answer",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Revoked => "revoked",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that must not be printed: a token or an answer that may be a
/// password. Serialises as a plain JSON string; `Debug` shows `"***"`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a string.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Named so that every use stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Decodes one message from a frame payload.
///
/// # Errors
/// [`Error::InvalidUtf8`] when the payload is not UTF-8, and
/// [`Error::InvalidMessage`] when it is not a JSON object of the expected
/// shape. A known `type` with missing or mistyped fields is invalid; an
/// unknown `type` is not an error but the `Unknown` variant.
pub fn decode_message<M: DeserializeOwned>(payload: &[u8]) -> Result<M> {
    let text = std::str::from_utf8(payload)?;
    // serde's internally tagged enums also accept a JSON array whose first
    // element is the tag (`["bye"]` would be `Bye`); the protocol allows only
    // objects. JSON's own whitespace may precede the `{`.
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(Error::InvalidMessage(serde::de::Error::custom(
            "a message must be a JSON object",
        )));
    }
    Ok(serde_json::from_str(text)?)
}

/// Decodes a client message: [`decode_message`] for [`ClientMessage`], with
/// a shortcut for the one message a busy server sees most. A `say` in the
/// exact compact form every Porter client sends
/// (`{"type":"say","text":"..."}`, a text without quotes, backslashes or
/// control characters) is taken apart by position, with no JSON parser;
/// every other payload goes through [`decode_message`]. The result is the
/// same either way.
///
/// # Errors
/// As [`decode_message`].
pub fn decode_client_message(payload: &[u8]) -> Result<ClientMessage> {
    if let Some(text) = compact_say_text(payload) {
        return Ok(ClientMessage::Say {
            text: text.as_str().to_owned(),
            to: None,
        });
    }
    decode_message(payload)
}

/// A text that needs no JSON escaping (no quote, backslash or control
/// character), known so because it was read from a compact `say`: copied
/// into a reply as it is, without being scanned again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainText<'a>(&'a str);

impl<'a> PlainText<'a> {
    /// `text` as a plain text, if it has nothing JSON must escape. A
    /// `const fn`, so that a fixed name (the server's) is checked once, by
    /// the compiler.
    pub const fn new(text: &'a str) -> Option<PlainText<'a>> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x20 || b == b'"' || b == b'\\' {
                return None;
            }
            i += 1;
        }
        Some(PlainText(text))
    }

    /// The text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// The text of a `say` in its compact form (`{"type":"say","text":"..."}`
/// with nothing to unescape), if `payload` is exactly that: the common
/// case, which a reader can serve borrowing the text from the frame, with
/// no allocation. Anything else, a valid `say` included, is `None`: for
/// [`decode_client_message`] to judge.
pub fn compact_say_text(payload: &[u8]) -> Option<PlainText<'_>> {
    let body = payload
        .strip_prefix(COMPACT_SAY_START)?
        .strip_suffix(br#""}"#)?;
    // A quote would end the string early; a backslash is an escape, and a
    // control character is invalid JSON: all for the parser to judge.
    if let Some(text) = plain_ascii(body) {
        return Some(PlainText(text));
    }
    // Not all ASCII: UTF-8 is checked on its own, then the same three.
    let text = std::str::from_utf8(body).ok()?;
    (!needs_escape(text)).then_some(PlainText(text))
}

/// `bytes` as text when every byte is printable ASCII other than a quote
/// or a backslash (0x7f included, as serde_json leaves it): valid UTF-8
/// with nothing for JSON to escape, found in one pass.
///
/// Why one pass: `str::from_utf8` and then [`needs_escape`] were a quarter
/// of an echo server's instructions (callgrind, 64-byte texts: 164 and 145
/// per message). Here each 16-byte block is judged by a branch-free fold
/// the compiler turns into a few vector compares.
fn plain_ascii(bytes: &[u8]) -> Option<&str> {
    /// Whether a byte may not stand as it is: a control character or a
    /// non-ASCII byte (one unsigned compare: both wrap to 0x60 or more), a
    /// quote or a backslash.
    fn unplain(b: u8) -> bool {
        (b.wrapping_sub(0x20) >= 0x60) | (b == b'"') | (b == b'\\')
    }
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |found, &b| found | unplain(b)) {
            return None;
        }
    }
    if blocks.remainder().iter().any(|&b| unplain(b)) {
        return None;
    }
    // SAFETY: every byte is below 0x80 (`unplain` is true of the others), and
    // a string of ASCII bytes is valid UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

impl FrameCodec {
    /// Appends one frame holding `message` as JSON to `dst`, serialising
    /// straight into the buffer (no intermediate `Vec`).
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when the JSON exceeds the maximum, and
    /// [`Error::InvalidMessage`] if serialisation fails; `dst` is left as it
    /// was in both cases.
    pub fn encode_message<M: Serialize + ?Sized>(
        &self,
        message: &M,
        dst: &mut BytesMut,
    ) -> Result<()> {
        // Room for a typical message up front, so serialising rarely has to
        // grow (and copy) the buffer byte by byte.
        dst.reserve(HEADER_LEN + MESSAGE_SIZE_HINT);
        self.encode_json(message, dst)
    }

    /// Appends one frame holding the server's `say{text, from}`, from
    /// borrowed strings: what [`ServerMessage::Say`] encodes to, byte for
    /// byte, without building one (and two `String`s) per line.
    ///
    /// # Errors
    /// As [`FrameCodec::encode_message`].
    pub fn encode_say(&self, text: &str, from: &str, dst: &mut BytesMut) -> Result<()> {
        if needs_escape(text) || needs_escape(from) {
            dst.reserve(HEADER_LEN + SAY_OVERHEAD + text.len() + from.len());
            return self.encode_json(&SayRef { text, from }, dst);
        }
        self.put_plain_say(text, from, dst)
    }

    /// [`FrameCodec::encode_say`] for a text and a sender known to need no
    /// escaping: nothing is looked at, only copied.
    ///
    /// # Errors
    /// As [`FrameCodec::encode_say`].
    pub fn encode_plain_say(
        &self,
        text: PlainText<'_>,
        from: PlainText<'_>,
        dst: &mut BytesMut,
    ) -> Result<()> {
        self.put_plain_say(text.0, from.0, dst)
    }

    /// Most lines need no escaping: then the JSON is the two strings
    /// between fixed pieces, copied, without serde_json's escaping loop (a
    /// table lookup per byte; about 7% of the echo server). The header and
    /// the fixed start go in as one 26-byte piece.
    fn put_plain_say(&self, text: &str, from: &str, dst: &mut BytesMut) -> Result<()> {
        let len = SAY_OVERHEAD + text.len() + from.len();
        let mut head = [0; HEADER_LEN + COMPACT_SAY_START.len()];
        head[..HEADER_LEN].copy_from_slice(&self.header_for(len)?);
        head[HEADER_LEN..].copy_from_slice(COMPACT_SAY_START);
        dst.reserve(HEADER_LEN + len);
        dst.put_slice(&head);
        dst.put_slice(text.as_bytes());
        dst.put_slice(br#"","from":""#);
        dst.put_slice(from.as_bytes());
        dst.put_slice(br#""}"#);
        Ok(())
    }

    /// Appends one frame holding a chat room's line: what
    /// [`ServerMessage::Say`] with the same fields encodes to.
    ///
    /// # Errors
    /// As [`FrameCodec::encode_message`].
    pub fn encode_room_say(&self, say: &RoomSay<'_>, dst: &mut BytesMut) -> Result<()> {
        let extra = say.at.map_or(0, str::len) + say.to.map_or(0, str::len);
        dst.reserve(HEADER_LEN + SAY_OVERHEAD + 64 + say.text.len() + say.from.len() + extra);
        let plain = [Some(say.text), Some(say.from), say.at, say.to]
            .into_iter()
            .flatten()
            .all(|field| !needs_escape(field));
        if plain {
            return self.framed(dst, |dst| {
                put_plain_room_say(say, dst);
                Ok(())
            });
        }
        self.encode_json(say, dst)
    }

    fn encode_json<M: Serialize + ?Sized>(&self, message: &M, dst: &mut BytesMut) -> Result<()> {
        self.framed(dst, |dst| {
            serde_json::to_writer(dst.writer(), message).map_err(Error::from)
        })
    }

    /// Appends one frame whose payload `write` appends, its length not
    /// known before: the header is filled in after, and on any error
    /// (`write`'s, or a payload over the maximum) `dst` is left as it was.
    fn framed(
        &self,
        dst: &mut BytesMut,
        write: impl FnOnce(&mut BytesMut) -> Result<()>,
    ) -> Result<()> {
        let start = dst.len();
        dst.put_slice(&[0; HEADER_LEN]);
        let header = write(dst).and_then(|()| self.header_for(dst.len() - start - HEADER_LEN));
        match header {
            Ok(header) => {
                dst[start..start + HEADER_LEN].copy_from_slice(&header);
                Ok(())
            }
            Err(err) => {
                dst.truncate(start);
                Err(err)
            }
        }
    }
}

/// The payload of [`FrameCodec::encode_room_say`] when no string needs
/// escaping: the JSON serde writes for `say`, copied piece by piece, as
/// [`FrameCodec::encode_plain_say`] does (serde_json's escaping loop was 5%
/// of a chat server's instructions).
fn put_plain_room_say(say: &RoomSay<'_>, dst: &mut BytesMut) {
    dst.put_slice(COMPACT_SAY_START);
    dst.put_slice(say.text.as_bytes());
    dst.put_slice(br#"","from":""#);
    dst.put_slice(say.from.as_bytes());
    dst.put_slice(b"\"");
    if let Some(seq) = say.seq {
        dst.put_slice(br#","seq":"#);
        put_decimal(seq, dst);
    }
    if let Some(at) = say.at {
        dst.put_slice(br#","at":""#);
        dst.put_slice(at.as_bytes());
        dst.put_slice(b"\"");
    }
    if let Some(to) = say.to {
        dst.put_slice(br#","to":""#);
        dst.put_slice(to.as_bytes());
        dst.put_slice(b"\"");
    }
    if say.replay {
        dst.put_slice(br#","replay":true"#);
    }
    dst.put_slice(b"}");
}

/// Bytes reserved before serialising a message whose size is not known:
/// most messages (everything but long lines) fit.
const MESSAGE_SIZE_HINT: usize = 128;

/// `{"type":"say","text":"","from":""}`: the bytes of a server `say` besides
/// its two strings.
const SAY_OVERHEAD: usize = 34;

/// How a `say` in its compact form starts, the client's and the server's
/// alike: a reader can pick out the frames worth [`compact_say_text`] by it.
pub const COMPACT_SAY_START: &[u8; 22] = br#"{"type":"say","text":""#;

/// Appends `n` in decimal, as serde_json writes an integer.
fn put_decimal(n: u64, dst: &mut BytesMut) {
    let mut digits = [0; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    dst.put_slice(&digits[at..]);
}

/// Whether JSON needs `text` escaped: a quote, a backslash or a control
/// character (what serde_json escapes; it leaves everything else as it
/// is). Written without an early exit so that it runs over whole words.
fn needs_escape(text: &str) -> bool {
    text.as_bytes().chunks(16).any(|chunk| {
        chunk.iter().fold(false, |found, &b| {
            found | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    })
}

/// The server's `say`, borrowed. Serialises exactly as
/// [`ServerMessage::Say`]: same tag, same fields, same order.
#[derive(Serialize)]
#[serde(tag = "type", rename = "say")]
struct SayRef<'a> {
    text: &'a str,
    from: &'a str,
}

/// A chat room's line, borrowed: the `say` of a room with its 1.1 fields.
/// Serialises exactly as the [`ServerMessage::Say`] with the same values.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename = "say")]
pub struct RoomSay<'a> {
    /// The line.
    pub text: &'a str,
    /// Who said it.
    pub from: &'a str,
    /// Its place in the room; `None` on a private line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When the room accepted it, RFC 3339 in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<&'a str>,
    /// The recipient, on a private line only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// From history rather than live.
    #[serde(skip_serializing_if = "is_false")]
    pub replay: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_text_from_a_compact_say_encodes_as_any_text() {
        let codec = FrameCodec::new();
        let payload = br#"{"type":"say","text":"hello there"}"#;
        let text = compact_say_text(payload).unwrap();
        assert_eq!(text.as_str(), "hello there");
        for from in ["server", "a\"b", "tab\there"] {
            let (mut plain, mut any) = (BytesMut::new(), BytesMut::new());
            let Some(from_plain) = PlainText::new(from) else {
                assert!(needs_escape(from), "{from:?}");
                continue;
            };
            codec
                .encode_plain_say(text, from_plain, &mut plain)
                .unwrap();
            codec.encode_say("hello there", from, &mut any).unwrap();
            assert_eq!(plain, any, "{from:?}");
        }
        // Nothing that needs escaping is ever a plain text.
        assert!(compact_say_text(br#"{"type":"say","text":"a\"b"}"#).is_none());
        assert!(compact_say_text(b"{\"type\":\"say\",\"text\":\"a\tb\"}").is_none());
    }

    /// What `compact_say_text` must agree with: UTF-8, and nothing JSON
    /// escapes.
    fn plain_by_definition(bytes: &[u8]) -> Option<&str> {
        std::str::from_utf8(bytes)
            .ok()
            .filter(|text| !needs_escape(text))
    }

    #[test]
    fn the_one_pass_check_agrees_with_utf8_and_escaping_on_every_byte_in_every_place() {
        // Every byte value, at every offset of a 40-byte text (the start,
        // inside the 16-byte blocks, their edges, and the remainder).
        for b in 0..=u8::MAX {
            for at in 0..40 {
                let mut body = vec![b'x'; 40];
                body[at] = b;
                assert_eq!(
                    plain_ascii(&body).is_some(),
                    b.is_ascii() && plain_by_definition(&body).is_some(),
                    "{b:#x} at {at}"
                );
                let mut payload = br#"{"type":"say","text":""#.to_vec();
                payload.extend_from_slice(&body);
                payload.extend_from_slice(br#""}"#);
                assert_eq!(
                    compact_say_text(&payload).map(|t| t.as_str()),
                    plain_by_definition(&body),
                    "{b:#x} at {at}"
                );
                if let Ok(text) = std::str::from_utf8(&body) {
                    assert_eq!(
                        PlainText::new(text).is_some(),
                        !needs_escape(text),
                        "{b:#x} at {at}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn compact_say_text_is_utf8_with_nothing_to_escape(body in proptest::collection::vec(proptest::prop_oneof![
            0x20u8..0x7f, proptest::strategy::Just(b'"'), proptest::strategy::Just(b'\\'),
            0u8..0x20, 0x80u8..=0xff], 0..80), text in "\\PC{0,40}") {
            for body in [&body[..], text.as_bytes()] {
                let mut payload = br#"{"type":"say","text":""#.to_vec();
                payload.extend_from_slice(body);
                payload.extend_from_slice(br#""}"#);
                proptest::prop_assert_eq!(compact_say_text(&payload).map(|t| t.as_str()), plain_by_definition(body));
            }
        }
    }

    #[test]
    fn a_room_say_is_byte_for_byte_what_serde_makes_of_it() {
        let codec = FrameCodec::new();
        let texts = [
            "hi",
            "",
            "quote \" and \u{e9}",
            "esc \u{1b}[31m",
            "caf\u{e9}",
            "back\\slash",
        ];
        let seqs = [None, Some(0), Some(7), Some(10), Some(u64::MAX)];
        for text in texts {
            for from in ["ann", "b\"ob"] {
                for seq in seqs {
                    for at in [None, Some("2026-12-07T17:00:00.123Z"), Some("tab\t")] {
                        for to in [None, Some("cy"), Some("new\nline")] {
                            for replay in [false, true] {
                                let say = RoomSay {
                                    text,
                                    from,
                                    seq,
                                    at,
                                    to,
                                    replay,
                                };
                                let mut fast = BytesMut::new();
                                codec.encode_room_say(&say, &mut fast).unwrap();
                                let mut serde = BytesMut::new();
                                codec.encode_json(&say, &mut serde).unwrap();
                                assert_eq!(fast, serde, "{say:?}");
                            }
                        }
                    }
                }
            }
        }
        // Too large for the codec: refused, and nothing is left behind.
        let small = FrameCodec::with_max_frame_len(16);
        let mut buf = BytesMut::from(&b"kept"[..]);
        let say = RoomSay {
            text: "a text longer than sixteen bytes",
            from: "ann",
            seq: Some(1),
            at: None,
            to: None,
            replay: false,
        };
        assert!(small.encode_room_say(&say, &mut buf).is_err());
        assert_eq!(&buf[..], b"kept");
    }

    #[test]
    fn encode_say_is_byte_for_byte_the_say_message() {
        let codec = FrameCodec::new();
        for (text, from) in [
            ("hi", "server"),
            ("quote \" and \u{e9}\n", "ann"),
            ("", ""),
            ("back\\slash", "server"),
            ("tab\tand \u{7f} del", "server"),
            ("\u{1f}", "\u{0}"),
            (
                "caf\u{e9} \u{1f600} plain and long enough to span chunks of sixteen",
                "b\"ob",
            ),
            ("sixteen bytes!!!", "server"),
            ("sixteen bytes!!\"", "server"),
        ] {
            let mut borrowed = BytesMut::new();
            codec.encode_say(text, from, &mut borrowed).unwrap();
            let mut owned = BytesMut::new();
            let message = ServerMessage::say(text, from);
            codec.encode_message(&message, &mut owned).unwrap();
            assert_eq!(borrowed, owned);
        }
        // Every ASCII character, and a few beyond, inside a longer text.
        let chars = (0u8..0x80)
            .map(char::from)
            .chain(['\u{80}', '\u{2028}', '\u{fffd}']);
        for c in chars {
            let text = format!("0123456789abcdef{c}xyz");
            let mut borrowed = BytesMut::new();
            codec.encode_say(&text, "server", &mut borrowed).unwrap();
            let mut owned = BytesMut::new();
            let message = ServerMessage::say(text.clone(), "server");
            codec.encode_message(&message, &mut owned).unwrap();
            assert_eq!(borrowed, owned, "{c:?}");
        }
        let mut empty = BytesMut::new();
        codec.encode_say("", "", &mut empty).unwrap();
        assert_eq!(empty.len(), HEADER_LEN + SAY_OVERHEAD);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let msg = ClientMessage::Answer {
            id: "password".into(),
            text: Secret::new("hunter22"),
        };
        let shown = format!("{msg:?}");
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn encode_message_too_large_leaves_buffer_untouched() {
        let codec = FrameCodec::with_max_frame_len(10);
        let mut buf = BytesMut::from(&b"xy"[..]);
        let msg = ClientMessage::Say {
            text: "far too long for ten bytes".into(),
            to: None,
        };
        assert!(matches!(
            codec.encode_message(&msg, &mut buf),
            Err(Error::FrameTooLarge { max: 10, .. })
        ));
        assert_eq!(&buf[..], b"xy");
    }

    #[test]
    fn error_code_names_match_serde() {
        for code in [
            ErrorCode::FrameTooLarge,
            ErrorCode::InvalidMessage,
            ErrorCode::UnknownType,
            ErrorCode::Unexpected,
            ErrorCode::BadCredentials,
            ErrorCode::SessionInvalid,
            ErrorCode::InvalidAnswer,
            ErrorCode::RateLimited,
            ErrorCode::Timeout,
            ErrorCode::Busy,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
