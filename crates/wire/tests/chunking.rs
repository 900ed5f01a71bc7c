//! Property tests: arbitrary sequences of payloads, texts and messages, cut
//! into arbitrary reads, come out whole and in order through the sync
//! extension traits and through the tokio `Decoder`; a stream cut anywhere
//! ends cleanly on a frame boundary and as the right truncation elsewhere.

use std::io::{self, Read};

use bytes::BytesMut;
use porter_wire::{
    ClientMessage, Error, FrameCodec, FramePart, HEADER_LEN, ReadFrameExt, ServerMessage,
    WriteFrameExt, decode_message,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// The maximum used here: small, so that max-length frames are common.
const MAX: usize = 300;

/// A reader that returns reads of the given sizes, cycling through them.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    next: usize,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], sizes: &'a [usize]) -> Self {
        Chunked {
            data,
            sizes,
            next: 0,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Feeds `wire` to the decoder in pieces of the given sizes, collecting
/// frames as they complete, then signals EOF.
fn decode_in_chunks(wire: &[u8], sizes: &[usize]) -> Result<Vec<BytesMut>, Error> {
    let mut codec = FrameCodec::with_max_frame_len(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = Decoder::decode(&mut codec, &mut buf)? {
            out.push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf)? {
        out.push(frame);
    }
    Ok(out)
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let payload = prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(vec![0xEE; MAX]),
        6 => prop::collection::vec(any::<u8>(), 0..=MAX),
    ];
    prop::collection::vec(payload, 0..12)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=64, 1..16)
}

fn encode_all(payloads: &[Vec<u8>]) -> Vec<u8> {
    let codec = FrameCodec::with_max_frame_len(MAX);
    let mut wire = Vec::new();
    for payload in payloads {
        wire.send_frame_with(&codec, payload).unwrap();
    }
    wire
}

proptest! {
    #[test]
    fn sync_reader_reassembles_frames_from_any_chunking(
        payloads in payloads(),
        sizes in chunk_sizes(),
    ) {
        let codec = FrameCodec::with_max_frame_len(MAX);
        let wire = encode_all(&payloads);
        let mut reader = Chunked::new(&wire, &sizes);
        for payload in &payloads {
            let frame = reader.recv_frame_with(&codec).unwrap();
            prop_assert_eq!(frame.as_ref(), Some(payload));
        }
        prop_assert_eq!(reader.recv_frame_with(&codec).unwrap(), None);
    }

    #[test]
    fn decoder_reassembles_frames_from_any_chunking(
        payloads in payloads(),
        sizes in chunk_sizes(),
    ) {
        // Encoded by the tokio Encoder this time, so both encoders are covered.
        let mut codec = FrameCodec::with_max_frame_len(MAX);
        let mut wire = BytesMut::new();
        for payload in &payloads {
            Encoder::<&[u8]>::encode(&mut codec, payload, &mut wire).unwrap();
        }
        prop_assert_eq!(&wire[..], &encode_all(&payloads)[..]);
        let frames = decode_in_chunks(&wire, &sizes).unwrap();
        let frames: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(frames, payloads);
    }

    #[test]
    fn texts_survive_any_chunking(
        texts in prop::collection::vec(any::<String>(), 0..8),
        sizes in chunk_sizes(),
    ) {
        let mut wire = Vec::new();
        for text in &texts {
            wire.send_text(text).unwrap();
        }
        let mut reader = Chunked::new(&wire, &sizes);
        for text in &texts {
            let got = reader.recv_text().unwrap();
            prop_assert_eq!(got.as_ref(), Some(text));
        }
        prop_assert_eq!(reader.recv_text().unwrap(), None);
    }

    #[test]
    fn messages_survive_any_chunking(
        lines in prop::collection::vec(any::<String>(), 0..8),
        sizes in chunk_sizes(),
    ) {
        let mut codec = FrameCodec::new();
        let mut wire = BytesMut::new();
        let sent: Vec<ServerMessage> = lines
            .iter()
            .map(|text| ServerMessage::say(text.clone(), "server"))
            .collect();
        for message in &sent {
            Encoder::encode(&mut codec, message, &mut wire).unwrap();
            // A keep-alive between messages is skipped by recv_message.
            Encoder::<&[u8]>::encode(&mut codec, b"", &mut wire).unwrap();
        }

        let mut reader = Chunked::new(&wire, &sizes);
        for message in &sent {
            let got = reader.recv_message::<ServerMessage>().unwrap();
            prop_assert_eq!(got.as_ref(), Some(message));
        }
        prop_assert_eq!(reader.recv_message::<ServerMessage>().unwrap(), None);

        let mut decoded = Vec::new();
        for frame in decode_in_chunks(&wire, &sizes).unwrap() {
            if !frame.is_empty() {
                decoded.push(decode_message::<ServerMessage>(&frame).unwrap());
            }
        }
        prop_assert_eq!(decoded, sent);
    }

    #[test]
    fn client_messages_survive_the_sync_writer_and_the_decoder(
        lines in prop::collection::vec(any::<String>(), 0..8),
        sizes in chunk_sizes(),
    ) {
        let sent: Vec<ClientMessage> = lines
            .iter()
            .map(|text| ClientMessage::Say { text: text.clone(), to: None })
            .chain([ClientMessage::Logout, ClientMessage::Bye])
            .collect();
        let mut wire = Vec::new();
        for message in &sent {
            wire.send_message(message).unwrap();
        }
        let mut decoded = Vec::new();
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*size).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(frame) = Decoder::decode(&mut codec, &mut buf).unwrap() {
                decoded.push(decode_message::<ClientMessage>(&frame).unwrap());
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, sent);
    }

    #[test]
    fn a_stream_cut_anywhere_ends_cleanly_or_as_the_right_truncation(
        payloads in payloads(),
        sizes in chunk_sizes(),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode_all(&payloads);
        let cut = cut.index(wire.len() + 1);
        let stream = &wire[..cut];

        // Where the cut falls: how many frames are whole, and what is left.
        let mut whole = 0;
        let mut start = 0;
        for payload in &payloads {
            let end = start + HEADER_LEN + payload.len();
            if end > cut {
                break;
            }
            whole += 1;
            start = end;
        }
        let left = cut - start;
        let expected_end = if left == 0 {
            None
        } else if left < HEADER_LEN {
            Some((FramePart::Header, left, HEADER_LEN))
        } else {
            Some((FramePart::Payload, left - HEADER_LEN, payloads[whole].len()))
        };

        let truncation = |err: Error| match err {
            Error::Truncated { part, got, expected } => (part, got, expected),
            other => panic!("expected Truncated, got {other:?}"),
        };

        let codec = FrameCodec::with_max_frame_len(MAX);
        let mut reader = Chunked::new(stream, &sizes);
        for payload in &payloads[..whole] {
            let frame = reader.recv_frame_with(&codec).unwrap();
            prop_assert_eq!(frame.as_ref(), Some(payload));
        }
        match reader.recv_frame_with(&codec) {
            Ok(None) => prop_assert_eq!(expected_end, None),
            Ok(Some(frame)) => panic!("an extra frame of {} bytes", frame.len()),
            Err(err) => prop_assert_eq!(Some(truncation(err)), expected_end),
        }

        match decode_in_chunks(stream, &sizes) {
            Ok(frames) => {
                prop_assert_eq!(expected_end, None);
                prop_assert_eq!(frames.len(), whole);
            }
            Err(err) => prop_assert_eq!(Some(truncation(err)), expected_end),
        }
    }
}
