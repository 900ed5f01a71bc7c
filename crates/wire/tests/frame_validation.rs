//! The frame and text layers against PROTOCOL.md sections 1 and 2, through
//! both adapters: the sync extension traits and the tokio `Decoder`.
//!
//! Covers keep-alives, the maximum length on both sides of the boundary,
//! clean versus truncated ends of stream, headers refused before anything is
//! read or allocated, short reads, and UTF-8 checks that are never lossy.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read};

use bytes::{BufMut, BytesMut};
use porter_wire::{
    DEFAULT_MAX_FRAME_LEN, EncodedFrame, Error, FrameCodec, FramePart, HEADER_LEN, ReadFrameExt,
    WriteFrameExt,
};
use tokio_util::codec::{Decoder, Encoder};

/// Records the largest single allocation made by the current thread, so a
/// test can prove that a header announcing 4 GiB did not size a buffer.
/// Thread-local, because the test harness runs tests on parallel threads.
struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // try_with: allocations during thread teardown must not panic.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: defers every operation to the system allocator unchanged.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Runs `f` and returns its result with the largest allocation it made.
fn largest_allocation_in<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let value = f();
    (value, LARGEST.with(Cell::get))
}

/// A reader that holds `data` and counts every read asked of it once `data`
/// is exhausted: a reader that refuses a frame from its header alone never
/// asks.
struct HeaderOnly {
    data: Vec<u8>,
    pos: usize,
    reads_past_end: usize,
}

impl HeaderOnly {
    fn new(data: &[u8]) -> Self {
        HeaderOnly {
            data: data.to_vec(),
            pos: 0,
            reads_past_end: 0,
        }
    }
}

impl Read for HeaderOnly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.data.len() {
            self.reads_past_end += 1;
            return Ok(0);
        }
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that hands out one byte per call, and is interrupted before
/// every byte: the slowest legal reader there is.
struct OneByteAtATime<'a> {
    data: &'a [u8],
    interrupt_next: bool,
}

impl<'a> OneByteAtATime<'a> {
    fn new(data: &'a [u8]) -> Self {
        OneByteAtATime {
            data,
            interrupt_next: true,
        }
    }
}

impl Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt_next && !self.data.is_empty() {
            self.interrupt_next = false;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupt_next = true;
        match (self.data.split_first(), buf.first_mut()) {
            (Some((&byte, rest)), Some(slot)) => {
                *slot = byte;
                self.data = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for payload in payloads {
        wire.send_frame(payload).unwrap();
    }
    wire
}

fn assert_truncated(err: Error, part: FramePart, got: usize, expected: usize) {
    match err {
        Error::Truncated {
            part: p,
            got: g,
            expected: e,
        } => assert_eq!((p, g, e), (part, got, expected)),
        other => panic!("expected Truncated {part} {got}/{expected}, got {other:?}"),
    }
}

// ---- encoding -------------------------------------------------------------

#[test]
fn send_frame_writes_big_endian_length_then_payload() {
    let mut wire = Vec::new();
    wire.send_frame(b"hello").unwrap();
    assert_eq!(wire, b"\x00\x00\x00\x05hello");
    let mut wire = Vec::new();
    wire.send_frame(&[0xAB; 0x0102]).unwrap();
    assert_eq!(&wire[..HEADER_LEN], &[0, 0, 1, 2]);
    assert_eq!(wire.len(), HEADER_LEN + 0x0102);
}

#[test]
fn keep_alive_is_a_bare_zero_header() {
    let mut wire = Vec::new();
    wire.send_frame(b"").unwrap();
    assert_eq!(wire, [0, 0, 0, 0]);
    let mut buf = BytesMut::new();
    Encoder::<&[u8]>::encode(&mut FrameCodec::new(), b"", &mut buf).unwrap();
    assert_eq!(&buf[..], [0, 0, 0, 0]);
}

#[test]
fn send_over_the_maximum_is_refused_and_writes_nothing() {
    let codec = FrameCodec::with_max_frame_len(8);
    let mut wire = Vec::new();
    match wire.send_frame_with(&codec, &[1; 9]) {
        Err(Error::FrameTooLarge { len: 9, max: 8 }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(wire.is_empty());
    match wire.send_frame(&vec![0; DEFAULT_MAX_FRAME_LEN + 1]) {
        Err(Error::FrameTooLarge { len, max }) => {
            assert_eq!(len, DEFAULT_MAX_FRAME_LEN as u64 + 1);
            assert_eq!(max, DEFAULT_MAX_FRAME_LEN);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(wire.is_empty());
    assert!(EncodedFrame::new(&codec, &[1; 9]).is_err());
}

#[test]
fn encoded_frame_holds_header_and_payload() {
    let frame = EncodedFrame::new(&FrameCodec::new(), b"shared").unwrap();
    assert_eq!(frame.as_bytes(), b"\x00\x00\x00\x06shared");
    assert_eq!(frame.payload(), b"shared");
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::new();
    Encoder::encode(&mut codec, frame.clone(), &mut buf).unwrap();
    Encoder::encode(&mut codec, frame, &mut buf).unwrap();
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"shared");
    assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"shared");
    assert!(buf.is_empty());
}

// ---- round trips ----------------------------------------------------------

#[test]
fn frames_round_trip_including_keep_alive_and_max_length() {
    let max = vec![0x5A; DEFAULT_MAX_FRAME_LEN];
    let payloads: [&[u8]; 5] = [b"first", b"", &max, b"\x00\xff binary \x00", b""];
    let wire = frames(&payloads);

    let mut reader = &wire[..];
    for payload in payloads {
        assert_eq!(reader.recv_frame().unwrap().as_deref(), Some(payload));
    }
    assert_eq!(reader.recv_frame().unwrap(), None);

    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(&wire[..]);
    for payload in payloads {
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], payload);
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn max_length_is_per_codec_and_inclusive() {
    let codec = FrameCodec::with_max_frame_len(3);
    let mut wire = Vec::new();
    wire.send_frame_with(&codec, b"abc").unwrap();
    assert_eq!(
        (&wire[..]).recv_frame_with(&codec).unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    let tighter = FrameCodec::with_max_frame_len(2);
    match (&wire[..]).recv_frame_with(&tighter) {
        Err(Error::FrameTooLarge { len: 3, max: 2 }) => {}
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    // A zero maximum still allows keep-alives.
    let zero = FrameCodec::with_max_frame_len(0);
    let mut wire = Vec::new();
    wire.send_frame_with(&zero, b"").unwrap();
    assert_eq!(
        (&wire[..]).recv_frame_with(&zero).unwrap().as_deref(),
        Some(&b""[..])
    );
}

#[test]
fn texts_round_trip_including_multi_byte_utf8() {
    let texts = [
        "plain",
        "",
        "héllo wörld",
        "日本語のテキスト",
        "🚀🦀 emoji",
        "a\u{0}b",
    ];
    let mut wire = Vec::new();
    for text in texts {
        wire.send_text(text).unwrap();
    }
    // The header counts bytes, not characters.
    let mut reader = &wire[..];
    for text in texts {
        let frame = reader.recv_frame().unwrap().unwrap();
        assert_eq!(frame, text.as_bytes());
    }
    let mut reader = &wire[..];
    for text in texts {
        assert_eq!(reader.recv_text().unwrap().as_deref(), Some(text));
    }
    assert_eq!(reader.recv_text().unwrap(), None);
}

#[test]
fn read_one_byte_at_a_time_with_interruptions() {
    let payloads: [&[u8]; 4] = [b"one", b"", "twø".as_bytes(), &[7; 300]];
    let wire = frames(&payloads);
    let mut reader = OneByteAtATime::new(&wire);
    for payload in payloads {
        assert_eq!(reader.recv_frame().unwrap().as_deref(), Some(payload));
    }
    assert_eq!(reader.recv_frame().unwrap(), None);

    let mut reader = OneByteAtATime::new(&wire);
    assert_eq!(reader.recv_text().unwrap().as_deref(), Some("one"));
    assert_eq!(reader.recv_text().unwrap().as_deref(), Some(""));
    assert_eq!(reader.recv_text().unwrap().as_deref(), Some("twø"));
}

#[test]
fn decoder_fed_one_byte_at_a_time() {
    let payloads: [&[u8]; 4] = [b"one", b"", "twø".as_bytes(), &[7; 300]];
    let wire = frames(&payloads);
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &byte in &wire {
        buf.put_u8(byte);
        while let Some(frame) = Decoder::decode(&mut codec, &mut buf).unwrap() {
            got.push(frame.to_vec());
        }
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    assert_eq!(got, payloads.map(<[u8]>::to_vec));
}

// ---- ends of stream -------------------------------------------------------

#[test]
fn read_clean_eof_between_frames_is_none() {
    assert_eq!((&b""[..]).recv_frame().unwrap(), None);
    assert_eq!((&b""[..]).recv_text().unwrap(), None);
    let wire = frames(&[b"only"]);
    let mut reader = &wire[..];
    assert!(reader.recv_frame().unwrap().is_some());
    assert_eq!(reader.recv_frame().unwrap(), None);
    // And it stays closed.
    assert_eq!(reader.recv_frame().unwrap(), None);
}

#[test]
fn read_incomplete_head_is_truncated_header() {
    for got in 1..HEADER_LEN {
        let wire = [0u8, 0, 0, 5];
        let err = (&wire[..got]).recv_frame().unwrap_err();
        assert_truncated(err, FramePart::Header, got, HEADER_LEN);
    }
    // After a good frame, too.
    let mut wire = frames(&[b"ok"]);
    wire.extend_from_slice(&[0, 0]);
    let mut reader = &wire[..];
    assert!(reader.recv_frame().unwrap().is_some());
    assert_truncated(
        reader.recv_frame().unwrap_err(),
        FramePart::Header,
        2,
        HEADER_LEN,
    );
}

#[test]
fn read_incomplete_payload_is_truncated_payload() {
    let wire = frames(&[b"hello"]);
    for cut in HEADER_LEN..wire.len() {
        let err = (&wire[..cut]).recv_frame().unwrap_err();
        assert_truncated(err, FramePart::Payload, cut - HEADER_LEN, 5);
    }
    let err = (&wire[..HEADER_LEN + 2]).recv_text().unwrap_err();
    assert_truncated(err, FramePart::Payload, 2, 5);
}

#[test]
fn truncated_frame_is_an_unexpected_eof_io_error() {
    let err: io::Error = (&b"\x00\x00"[..]).recv_frame().unwrap_err().into();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let err: io::Error = (&b"\xff\xff\xff\xff"[..]).recv_frame().unwrap_err().into();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn decode_eof_tells_clean_end_from_truncation() {
    let mut codec = FrameCodec::new();
    assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);

    for got in 1..HEADER_LEN {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5][..got]);
        assert_eq!(Decoder::decode(&mut codec, &mut buf).unwrap(), None);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert_truncated(err, FramePart::Header, got, HEADER_LEN);
    }

    let wire = frames(&[b"hello"]);
    for cut in HEADER_LEN..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert_truncated(err, FramePart::Payload, cut - HEADER_LEN, 5);
    }

    // A whole frame left in the buffer at EOF is still delivered.
    let mut buf = BytesMut::from(&frames(&[b"last", b""])[..]);
    assert_eq!(&codec.decode_eof(&mut buf).unwrap().unwrap()[..], b"last");
    assert_eq!(&codec.decode_eof(&mut buf).unwrap().unwrap()[..], b"");
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn decode_waits_without_consuming_a_partial_frame() {
    let mut codec = FrameCodec::new();
    let wire = frames(&[b"hello"]);
    for cut in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..cut]);
        assert_eq!(Decoder::decode(&mut codec, &mut buf).unwrap(), None);
        assert_eq!(&buf[..], &wire[..cut]);
    }
}

// ---- oversized headers ----------------------------------------------------

#[test]
fn allocation_probe_sees_a_large_buffer() {
    // Without this, the "no allocation" tests below could pass vacuously.
    let ((), largest) = largest_allocation_in(|| {
        let buf: Vec<u8> = Vec::with_capacity(1 << 20);
        std::hint::black_box(buf);
    });
    assert!(largest >= 1 << 20, "probe saw only {largest} bytes");
}

#[test]
fn read_max_frame_len_refuses_u32_max_header_from_the_header_alone() {
    let codec = FrameCodec::with_max_frame_len(16);
    let mut reader = HeaderOnly::new(&u32::MAX.to_be_bytes());
    let (result, largest) = largest_allocation_in(|| reader.recv_frame_with(&codec));
    match result {
        Err(Error::FrameTooLarge { len, max }) => {
            assert_eq!(len, u64::from(u32::MAX));
            assert_eq!(max, 16);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(reader.pos, HEADER_LEN);
    assert_eq!(reader.reads_past_end, 0, "read past the refused header");
    assert!(
        largest < 1024,
        "allocated {largest} bytes for a refused frame"
    );
}

#[test]
fn read_refuses_header_one_over_the_default_maximum() {
    let header = (DEFAULT_MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    let mut reader = HeaderOnly::new(&header);
    match reader.recv_text() {
        Err(Error::FrameTooLarge { len, max }) => {
            assert_eq!(len, DEFAULT_MAX_FRAME_LEN as u64 + 1);
            assert_eq!(max, DEFAULT_MAX_FRAME_LEN);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(reader.reads_past_end, 0);
}

#[test]
fn read_does_not_size_a_buffer_from_an_allowed_header() {
    // A 64 MiB frame is allowed, but only its header arrives: the buffer must
    // follow the bytes that came, not the length that was announced.
    let max = 64 << 20;
    let codec = FrameCodec::with_max_frame_len(max);
    let mut reader = HeaderOnly::new(&(max as u32).to_be_bytes());
    let (result, largest) = largest_allocation_in(|| reader.recv_frame_with(&codec));
    assert_truncated(result.unwrap_err(), FramePart::Payload, 0, max);
    assert!(
        largest <= 64 * 1024,
        "allocated {largest} bytes before any payload arrived"
    );
}

#[test]
fn decoder_refuses_u32_max_header_without_touching_the_buffer() {
    let mut codec = FrameCodec::with_max_frame_len(16);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u32(u32::MAX);
    let capacity = buf.capacity();
    let (result, largest) = largest_allocation_in(|| Decoder::decode(&mut codec, &mut buf));
    match result {
        Err(Error::FrameTooLarge { len, max }) => {
            assert_eq!(len, u64::from(u32::MAX));
            assert_eq!(max, 16);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(&buf[..], u32::MAX.to_be_bytes());
    assert!(
        largest < 1024,
        "allocated {largest} bytes for a refused frame"
    );
    // decode_eof refuses it the same way rather than calling it truncated.
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(Error::FrameTooLarge { max: 16, .. })
    ));
}

#[test]
fn decoder_does_not_reserve_for_an_allowed_header() {
    let mut codec = FrameCodec::with_max_frame_len(usize::MAX);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u32(u32::MAX);
    let capacity = buf.capacity();
    assert_eq!(Decoder::decode(&mut codec, &mut buf).unwrap(), None);
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.len(), HEADER_LEN);
}

// ---- UTF-8 ----------------------------------------------------------------

#[test]
fn invalid_utf8_text_is_an_error_never_lossy() {
    let bad: [&[u8]; 5] = [
        b"caf\xe9",              // Latin-1, not UTF-8
        b"\xc3",                 // a character cut in half
        b"\xc0\xaf",             // an overlong encoding of '/'
        b"\xed\xa0\x80",         // a UTF-16 surrogate
        b"ok then \xff\xfe end", // bytes that never occur in UTF-8
    ];
    for payload in bad {
        let wire = frames(&[payload, b"next"]);
        let mut reader = &wire[..];
        match reader.recv_text() {
            Err(Error::InvalidUtf8(_)) => {}
            other => panic!("{payload:?}: expected InvalidUtf8, got {other:?}"),
        }
        // The frame was consumed whole: the stream stays in step.
        assert_eq!(reader.recv_text().unwrap().as_deref(), Some("next"));
    }
}
