//! Encode and decode throughput of porter's `FrameCodec` (as a tokio
//! `Encoder`/`Decoder`) next to tokio-util's `LengthDelimitedCodec` with the
//! same maximum, in the same groups, so the ratio can be read off one run.
//!
//! Each iteration works on a buffer of many frames (about 1 MiB of payload),
//! as a busy connection would. Throughput counts payload bytes.
//!
//! Run: `cargo bench -p porter-wire --bench codec`. The times are for
//! comparison on one machine, never a pass/fail criterion.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use porter_wire::{DEFAULT_MAX_FRAME_LEN, FrameCodec};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Payload sizes: a chat line, and a frame at the default maximum.
const SIZES: [usize; 2] = [64, 64 * 1024];

/// Payload bytes per iteration, split into frames of the size under test.
const BYTES_PER_ITERATION: usize = 1 << 20;

fn tokio_util_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(DEFAULT_MAX_FRAME_LEN)
        .new_codec()
}

fn frames_per_iteration(size: usize) -> usize {
    BYTES_PER_ITERATION / size
}

/// The same buffer of frames for both decoders (the formats are identical).
fn encoded(size: usize) -> BytesMut {
    let payload = vec![0xA5; size];
    let codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for _ in 0..frames_per_iteration(size) {
        codec.encode(&payload, &mut buf).unwrap();
    }
    buf
}

fn encode<C: Encoder<Bytes>>(codec: &mut C, payload: &Bytes, count: usize, dst: &mut BytesMut)
where
    C::Error: std::fmt::Debug,
{
    dst.clear();
    for _ in 0..count {
        codec.encode(payload.clone(), dst).unwrap();
    }
    black_box(&*dst);
}

fn decode<C: Decoder>(codec: &mut C, src: &mut BytesMut) -> usize
where
    C::Error: std::fmt::Debug,
{
    let mut count = 0;
    while let Some(frame) = codec.decode(src).unwrap() {
        black_box(frame);
        count += 1;
    }
    count
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in SIZES {
        let count = frames_per_iteration(size);
        let payload = Bytes::from(vec![0xA5; size]);
        let mut dst = BytesMut::with_capacity(count * (size + 4));
        group.throughput(Throughput::Bytes((count * size) as u64));

        let mut porter = FrameCodec::new();
        group.bench_with_input(BenchmarkId::new("porter", size), &payload, |b, p| {
            b.iter(|| encode(&mut porter, p, count, &mut dst))
        });
        let mut tokio_util = tokio_util_codec();
        group.bench_with_input(BenchmarkId::new("tokio-util", size), &payload, |b, p| {
            b.iter(|| encode(&mut tokio_util, p, count, &mut dst))
        });
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for size in SIZES {
        let count = frames_per_iteration(size);
        let wire = encoded(size);
        group.throughput(Throughput::Bytes((count * size) as u64));

        let mut porter = FrameCodec::new();
        group.bench_with_input(BenchmarkId::new("porter", size), &wire, |b, wire| {
            b.iter_batched_ref(
                || wire.clone(),
                |src| assert_eq!(decode(&mut porter, src), count),
                BatchSize::LargeInput,
            )
        });
        let mut tokio_util = tokio_util_codec();
        group.bench_with_input(BenchmarkId::new("tokio-util", size), &wire, |b, wire| {
            b.iter_batched_ref(
                || wire.clone(),
                |src| assert_eq!(decode(&mut tokio_util, src), count),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // Short on purpose: the machine is shared and the point is a ratio.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_encode, bench_decode
}
criterion_main!(benches);
