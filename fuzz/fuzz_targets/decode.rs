//! Fuzzes every decoding path of porter-wire with arbitrary bytes.
//!
//! Input layout: byte 0 is the maximum payload length (0..=255, small so that
//! both "too large" and "fits" are common), byte 1 picks how the stream is cut
//! into reads (1..=16 bytes, or everything at once), the rest is the stream.
//!
//! The pure `FrameCodec::decode` loop is the reference. The tokio `Decoder`
//! fed in chunks and the sync `recv_frame_with` over a chunky reader must see
//! exactly the same frames and the same ending; `recv_message_with` must agree
//! with `decode_message` on each frame. Invariants checked on the way: no
//! payload exceeds the maximum, a decoded frame re-encodes to the very bytes
//! it came from, a refused header leaves the buffer untouched, and a message
//! only ever decodes from a JSON object and survives an encode/decode round
//! trip.

#![no_main]

use std::io::{self, Read};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use porter_wire::{
    ClientMessage, Error, FrameCodec, FramePart, HEADER_LEN, ReadFrameExt, ServerMessage,
    decode_client_message, decode_message,
};
use tokio_util::codec::Decoder;

/// How a stream of frames ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Clean,
    TooLarge {
        len: u64,
    },
    Truncated {
        part: FramePart,
        got: usize,
        expected: usize,
    },
}

fn end_of(err: Error, max: usize) -> End {
    match err {
        Error::FrameTooLarge { len, max: m } => {
            assert_eq!(m, max, "error names another maximum");
            assert!(
                len > max as u64,
                "refused a frame that fits: {len} <= {max}"
            );
            End::TooLarge { len }
        }
        Error::Truncated {
            part,
            got,
            expected,
        } => {
            assert!(got < expected, "truncated after all bytes arrived");
            End::Truncated {
                part,
                got,
                expected,
            }
        }
        other => panic!("frame decoding failed with {other:?}"),
    }
}

/// A reader that hands out at most `chunk` bytes per call.
struct Chunky<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The reference: the pure codec over the whole stream at once.
fn reference(codec: &FrameCodec, stream: &[u8]) -> (Vec<BytesMut>, End) {
    let max = codec.max_frame_len();
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    let mut consumed = 0;
    loop {
        let before = buf.clone();
        match codec.decode(&mut buf) {
            Ok(Some(payload)) => {
                assert!(payload.len() <= max, "{} > {max}", payload.len());
                let mut again = BytesMut::new();
                codec.encode(&payload, &mut again).expect("re-encode");
                let used = HEADER_LEN + payload.len();
                assert_eq!(&again[..], &stream[consumed..consumed + used]);
                assert_eq!(buf.len(), before.len() - used);
                consumed += used;
                frames.push(payload);
            }
            Ok(None) => {
                assert_eq!(buf, before, "decode consumed bytes without a frame");
                let end = match Decoder::decode_eof(&mut codec.clone(), &mut buf) {
                    Ok(None) => {
                        assert!(buf.is_empty());
                        End::Clean
                    }
                    Ok(Some(_)) => panic!("decode_eof found a frame that decode did not"),
                    Err(err) => end_of(err, max),
                };
                return (frames, end);
            }
            Err(err) => {
                assert_eq!(buf, before, "a refused header must stay in the buffer");
                return (frames, end_of(err, max));
            }
        }
    }
}

/// The tokio decoder fed `chunk` bytes at a time, then told about EOF.
fn chunked_decoder(codec: &FrameCodec, stream: &[u8], chunk: usize) -> (Vec<BytesMut>, End) {
    let max = codec.max_frame_len();
    let mut codec = *codec;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match Decoder::decode(&mut codec, &mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => return (frames, end_of(err, max)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, End::Clean),
            Err(err) => return (frames, end_of(err, max)),
        }
    }
}

/// The sync extension trait over a reader that returns short reads.
fn sync_frames(codec: &FrameCodec, stream: &[u8], chunk: usize) -> (Vec<BytesMut>, End) {
    let mut reader = Chunky {
        data: stream,
        chunk,
    };
    let mut frames = Vec::new();
    loop {
        match reader.recv_frame_with(codec) {
            Ok(Some(frame)) => frames.push(BytesMut::from(&frame[..])),
            Ok(None) => return (frames, End::Clean),
            Err(err) => return (frames, end_of(err, codec.max_frame_len())),
        }
    }
}

/// A message decoded from `payload` must come from a JSON object and survive
/// an encode/decode round trip.
fn check_message<M>(payload: &[u8], unknown: &M) -> Result<M, String>
where
    M: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match decode_message::<M>(payload) {
        Ok(message) => {
            let first = payload
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            assert_eq!(first, Some(&b'{'), "decoded {message:?} from a non-object");
            if &message != unknown {
                let wide = FrameCodec::with_max_frame_len(usize::MAX);
                let mut buf = BytesMut::new();
                wide.encode_message(&message, &mut buf).expect("re-encode");
                let again: M = decode_message(&buf[HEADER_LEN..]).expect("re-decode");
                assert_eq!(again, message);
            }
            Ok(message)
        }
        Err(Error::InvalidUtf8(_)) => {
            assert!(std::str::from_utf8(payload).is_err());
            Err("utf8".into())
        }
        Err(Error::InvalidMessage(_)) => Err("message".into()),
        Err(other) => panic!("decode_message failed with {other:?}"),
    }
}

/// `recv_message_with` must agree with `decode_message` on each non-empty frame.
fn sync_messages<M>(codec: &FrameCodec, stream: &[u8], frames: &[BytesMut], end: &End, unknown: &M)
where
    M: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut reader = io::Cursor::new(stream);
    for frame in frames.iter().filter(|f| !f.is_empty()) {
        let expected = check_message(frame, unknown);
        let got = match reader.recv_message_with::<M>(codec) {
            Ok(Some(message)) => Ok(message),
            Ok(None) => panic!("recv_message ended early"),
            Err(Error::InvalidUtf8(_)) => Err("utf8".to_string()),
            Err(Error::InvalidMessage(_)) => Err("message".to_string()),
            Err(other) => panic!("recv_message failed with {other:?}"),
        };
        assert_eq!(got, expected);
    }
    let tail = match reader.recv_message_with::<M>(codec) {
        Ok(None) => End::Clean,
        Ok(Some(message)) => panic!("recv_message found an extra message {message:?}"),
        Err(err) => end_of(err, codec.max_frame_len()),
    };
    assert_eq!(&tail, end);
}

fuzz_target!(|data: &[u8]| {
    let [max, chunk, stream @ ..] = data else {
        return;
    };
    let codec = FrameCodec::with_max_frame_len(usize::from(*max));
    let chunk = match chunk % 17 {
        0 => stream.len().max(1),
        n => usize::from(n),
    };

    let (frames, end) = reference(&codec, stream);
    assert_eq!(
        chunked_decoder(&codec, stream, chunk),
        (frames.clone(), end.clone())
    );
    assert_eq!(
        sync_frames(&codec, stream, chunk),
        (frames.clone(), end.clone())
    );
    sync_messages(&codec, stream, &frames, &end, &ServerMessage::Unknown);
    sync_messages(&codec, stream, &frames, &end, &ClientMessage::Unknown);

    // The whole input as one payload, as a server would see a frame that fits.
    let _ = check_message(stream, &ServerMessage::Unknown);
    let general = check_message(stream, &ClientMessage::Unknown);
    fast_paths_agree(stream, general);
});

/// The server's fast paths must be invisible: `decode_client_message` decodes
/// exactly what `decode_message` does, and `encode_say` writes exactly what
/// serde writes for `ServerMessage::Say`.
fn fast_paths_agree(payload: &[u8], general: Result<ClientMessage, String>) {
    let fast = match decode_client_message(payload) {
        Ok(message) => Ok(message),
        Err(Error::InvalidUtf8(_)) => Err("utf8".to_string()),
        Err(Error::InvalidMessage(_)) => Err("message".to_string()),
        Err(other) => panic!("decode_client_message failed with {other:?}"),
    };
    assert_eq!(fast, general, "decode_client_message disagrees");

    if let Ok(text) = std::str::from_utf8(payload) {
        let mid = text
            .char_indices()
            .map(|(i, _)| i)
            .nth(text.chars().count() / 2)
            .unwrap_or(text.len());
        let (text, from) = text.split_at(mid);
        let wide = FrameCodec::with_max_frame_len(usize::MAX);
        let mut fast = BytesMut::new();
        let mut general = BytesMut::new();
        wide.encode_say(text, from, &mut fast).expect("encode_say");
        let say = ServerMessage::say(text, from);
        wide.encode_message(&say, &mut general)
            .expect("encode_message");
        assert_eq!(fast, general, "encode_say disagrees with serde");
    }
}
