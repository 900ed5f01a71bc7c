//! The frame format and its one pure codec. No I/O happens here.
//!
//! ```text
//! +----------------------------+---------------------+
//! | length: u32, big-endian    | payload: length     |
//! | (4 bytes, network order)   | bytes               |
//! +----------------------------+---------------------+
//! ```
//!
//! A zero-length frame is a keep-alive. The maximum payload length is checked
//! on the header alone, before any buffer is sized from it, so a peer that
//! announces 4 GiB costs nothing but the four bytes it sent.
//!
//! This is the default format of tokio-util's `LengthDelimitedCodec` and of
//! Python's `struct.pack("!I", n)`. The sync extension traits
//! ([`crate::ReadFrameExt`], [`crate::WriteFrameExt`]) and the tokio codec are
//! thin adapters over [`FrameCodec`], so both share these checks.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::error::{Error, Result};

/// Size of the length header in bytes.
pub const HEADER_LEN: usize = 4;

/// Default maximum payload length: 64 KiB, the server's default.
pub const DEFAULT_MAX_FRAME_LEN: usize = 65_536;

/// The largest maximum that can be configured: what a `u32` header can say.
pub const MAX_FRAME_LEN_LIMIT: usize = u32::MAX as usize;

/// Encodes and decodes length-prefixed frames over byte buffers.
///
/// Cheap to copy; it holds only the maximum payload length. With the `tokio`
/// feature the same type is a `tokio_util::codec::Decoder` and `Encoder`, so
/// the sync and async sides cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new()
    }
}

impl FrameCodec {
    /// A codec with the default maximum payload length (64 KiB).
    pub const fn new() -> Self {
        FrameCodec {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A codec that refuses payloads longer than `max` bytes. A `max` above
    /// what a `u32` header can express is clamped to `u32::MAX`.
    pub const fn with_max_frame_len(max: usize) -> Self {
        let max = if max > MAX_FRAME_LEN_LIMIT {
            MAX_FRAME_LEN_LIMIT
        } else {
            max
        };
        FrameCodec { max_frame_len: max }
    }

    /// The maximum payload length this codec accepts and produces.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Validates a received header and returns the payload length it announces.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when the length exceeds the maximum.
    pub fn check_header(&self, header: [u8; HEADER_LEN]) -> Result<usize> {
        let len = u32::from_be_bytes(header);
        self.check_len(u64::from(len))
    }

    /// Builds the header for a payload of `len` bytes.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when `len` exceeds the maximum, so that no one
    /// sends what the other side is bound to refuse.
    pub fn header_for(&self, len: usize) -> Result<[u8; HEADER_LEN]> {
        let len = self.check_len(len as u64)?;
        // check_len bounds len by max_frame_len, which is at most u32::MAX.
        Ok((len as u32).to_be_bytes())
    }

    fn check_len(&self, len: u64) -> Result<usize> {
        if len > self.max_frame_len as u64 {
            return Err(Error::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(len as usize)
    }

    /// Appends one frame holding `payload` to `dst`.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`]; `dst` is left untouched then.
    pub fn encode(&self, payload: &[u8], dst: &mut BytesMut) -> Result<()> {
        let header = self.header_for(payload.len())?;
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_slice(&header);
        dst.put_slice(payload);
        Ok(())
    }

    /// Takes one whole frame's payload off the front of `src`, if it holds one.
    ///
    /// Returns `Ok(None)` when more bytes are needed. It never reserves room
    /// for the announced payload: the buffer grows only with the bytes that
    /// actually arrive, so a peer sending bare headers cannot make us
    /// allocate. A keep-alive comes back as an empty payload.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] as soon as the header is complete; the header
    /// is left in `src`, since the stream cannot be resynchronised anyway.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<BytesMut>> {
        let Some(len) = self.whole_frame_len(src)? else {
            return Ok(None);
        };
        src.advance(HEADER_LEN);
        Ok(Some(src.split_to(len)))
    }

    /// The payload length of the frame at the front of `src`, once all of it
    /// has arrived: what [`FrameCodec::decode`] would take off, for a
    /// reader that serves frames where they lie in its buffer (the payload
    /// is `src[HEADER_LEN..HEADER_LEN + len]`) and drops them later, many
    /// at once, instead of splitting each one off.
    ///
    /// # Errors
    /// As [`FrameCodec::decode`].
    #[inline]
    pub fn whole_frame_len(&self, src: &[u8]) -> Result<Option<usize>> {
        let Some(header) = src.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = self.check_header(*header)?;
        Ok((src.len() >= HEADER_LEN + len).then_some(len))
    }

    /// The error for a stream that ended with `rest` still undecoded (not
    /// empty, and not a whole frame): a partial header or a partial payload.
    pub fn truncated(rest: &[u8]) -> Error {
        use crate::error::FramePart;
        match rest.first_chunk::<HEADER_LEN>() {
            None => Error::Truncated {
                part: FramePart::Header,
                got: rest.len(),
                expected: HEADER_LEN,
            },
            Some(header) => Error::Truncated {
                part: FramePart::Payload,
                got: rest.len() - HEADER_LEN,
                expected: u32::from_be_bytes(*header) as usize,
            },
        }
    }
}

/// A whole frame, header included, ready to be written as it is.
///
/// Cloning is a reference-count increment, so a message fanned out to many
/// receivers is serialised and framed once and shared by all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame(Bytes);

impl EncodedFrame {
    /// Frames `payload`.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`].
    pub fn new(codec: &FrameCodec, payload: &[u8]) -> Result<Self> {
        let mut buf = BytesMut::new();
        codec.encode(payload, &mut buf)?;
        Ok(EncodedFrame(buf.freeze()))
    }

    /// Serialises `message` as JSON and frames it.
    ///
    /// # Errors
    /// As [`FrameCodec::encode_message`].
    pub fn message<M: Serialize + ?Sized>(codec: &FrameCodec, message: &M) -> Result<Self> {
        let mut buf = BytesMut::new();
        codec.encode_message(message, &mut buf)?;
        Ok(EncodedFrame(buf.freeze()))
    }

    /// The server's `say{text, from}`, framed: what [`EncodedFrame::message`]
    /// makes of a `ServerMessage::Say`, from borrowed strings.
    ///
    /// # Errors
    /// As [`FrameCodec::encode_message`].
    pub fn say(codec: &FrameCodec, text: &str, from: &str) -> Result<Self> {
        let mut buf = BytesMut::new();
        codec.encode_say(text, from, &mut buf)?;
        Ok(EncodedFrame(buf.freeze()))
    }

    /// A chat room's line, framed: what [`EncodedFrame::message`] makes of
    /// the `ServerMessage::Say` with the same fields.
    ///
    /// # Errors
    /// As [`FrameCodec::encode_message`].
    pub fn room_say(codec: &FrameCodec, say: &crate::message::RoomSay<'_>) -> Result<Self> {
        let mut buf = BytesMut::new();
        codec.encode_room_say(say, &mut buf)?;
        Ok(EncodedFrame(buf.freeze()))
    }

    /// The frame's bytes: header, then payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The frame's payload, without the header.
    pub fn payload(&self) -> &[u8] {
        &self.0[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_writes_big_endian_length_then_payload() {
        let mut buf = BytesMut::new();
        FrameCodec::new().encode(b"hi", &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x00\x00\x00\x02hi");
    }

    #[test]
    fn decode_waits_for_the_whole_frame() {
        let codec = FrameCodec::new();
        let mut buf = BytesMut::from(&b"\x00\x00"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"\x00\x03ab");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"c\x00\x00\x00\x00");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"abc");
        // The keep-alive that followed is an empty payload.
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn decode_refuses_oversized_header_without_reserving() {
        let codec = FrameCodec::with_max_frame_len(16);
        let mut buf = BytesMut::with_capacity(HEADER_LEN);
        buf.put_slice(&u32::MAX.to_be_bytes());
        let capacity_before = buf.capacity();
        match codec.decode(&mut buf) {
            Err(Error::FrameTooLarge { len, max }) => {
                assert_eq!(len, u64::from(u32::MAX));
                assert_eq!(max, 16);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), capacity_before);
    }

    #[test]
    fn max_length_payload_is_accepted_and_one_more_is_not() {
        let codec = FrameCodec::with_max_frame_len(8);
        let mut buf = BytesMut::new();
        codec.encode(&[7; 8], &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 8);
        assert!(matches!(
            codec.encode(&[7; 9], &mut buf),
            Err(Error::FrameTooLarge { len: 9, max: 8 })
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn max_is_clamped_to_what_a_header_can_hold() {
        let codec = FrameCodec::with_max_frame_len(usize::MAX);
        assert_eq!(codec.max_frame_len(), u32::MAX as usize);
    }
}
