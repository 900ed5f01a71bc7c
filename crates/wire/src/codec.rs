//! The tokio side of the frame format: [`FrameCodec`] as a
//! `tokio_util::codec::Decoder` and `Encoder`.
//!
//! It is the same type, with the same checks, as the sync helpers use, so a
//! `Framed<TcpStream, FrameCodec>` speaks exactly what `send_frame` writes and
//! what tokio-util's `LengthDelimitedCodec` speaks with its defaults. Unlike
//! that codec, it never reserves buffer space for an announced length: a peer
//! that sends bare headers costs no memory.
//!
//! Three kinds of items can be encoded: a payload (`&[u8]` or `Bytes`) to
//! frame, a message to serialise, and an [`EncodedFrame`] that already holds
//! its header (encode once, send to many).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::Error;
use crate::frame::{EncodedFrame, FrameCodec};
use crate::message::{ClientMessage, ServerMessage};

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        FrameCodec::decode(self, src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
        match FrameCodec::decode(self, src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameCodec::truncated(src)),
        }
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        FrameCodec::encode(self, payload, dst)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        FrameCodec::encode(self, &payload, dst)
    }
}

impl Encoder<EncodedFrame> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, frame: EncodedFrame, dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(frame.as_bytes());
        Ok(())
    }
}

impl Encoder<&ServerMessage> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, message: &ServerMessage, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_message(message, dst)
    }
}

impl Encoder<&ClientMessage> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, message: &ClientMessage, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_message(message, dst)
    }
}
