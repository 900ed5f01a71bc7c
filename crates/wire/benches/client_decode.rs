//! What the server pays to decode a client message, with `ClientMessage`'s
//! hand-written `Deserialize` (`src/message/client_decode.rs`) next to the
//! serde derive it replaced (`Derived` below, the same attributes), in the
//! same run.
//!
//! For each payload three functions are timed:
//! - `server`: `decode_client_message`, what the server calls: the compact
//!   `say` fast path, else the full decoder (the hand-written one);
//! - `hand-written`: `decode_message::<ClientMessage>`, the full decoder;
//! - `derived`: `decode_message::<Derived>`, the derive.
//!
//! The payloads: the compact `say` every Porter client sends (the fast path
//! takes it; the full decoders are timed on it for comparison only), two
//! `say`s that miss the fast path (an escaped quote, fields in another
//! order), `hello` with a token, and `answer`.
//!
//! Run: `cargo bench -p porter-wire --bench client_decode`. The times are
//! for comparison on one machine, never a pass/fail criterion.
//!
//! With an argument `count DECODER PAYLOAD N` (`DECODER` one of `server`,
//! `hand-written`, `derived`; `PAYLOAD` a name below) the binary only
//! decodes that payload N times, so that callgrind can count instructions
//! on a noisy machine. Run it with N and 2N and divide the difference by N
//! (the binary is the one `cargo bench ... --no-run` names):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/client_decode-HASH count derived hello-token 10000
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use porter_wire::{ClientMessage, Secret, decode_client_message, decode_message};
use serde::Deserialize;

/// The derive, as it was before the hand-written decoder (as in
/// `tests/client_decode.rs`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(dead_code, reason = "the fields are decoded, never read")]
enum Derived {
    Hello {
        #[serde(default)]
        client: Option<String>,
        #[serde(default)]
        token: Option<Secret>,
    },
    Answer {
        id: String,
        text: Secret,
    },
    Say {
        text: String,
    },
    Logout,
    Bye,
    #[serde(other)]
    Unknown,
}

/// The payloads, by name.
const PAYLOADS: [(&str, &str); 5] = [
    (
        "say-compact",
        r#"{"type":"say","text":"a chat line of about sixty-four bytes, as porter bench sends"}"#,
    ),
    (
        "say-escaped",
        r#"{"type":"say","text":"a chat line with a \"quoted\" word, which the fast path leaves"}"#,
    ),
    (
        "say-reordered",
        r#"{"text":"a chat line of about sixty-four bytes, as porter bench sends","type":"say"}"#,
    ),
    (
        "hello-token",
        r#"{"type":"hello","client":"porter/0.1.0","token":"Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"}"#,
    ),
    (
        "answer",
        r#"{"type":"answer","id":"password","text":"correct horse battery staple"}"#,
    ),
];

/// The decoders, by name.
const DECODERS: [&str; 3] = ["server", "hand-written", "derived"];

/// The decoder called `name`.
fn decoder(name: &str) -> fn(&[u8]) {
    match name {
        "server" => |p| {
            black_box(decode_client_message(black_box(p)).unwrap());
        },
        "hand-written" => |p| {
            black_box(decode_message::<ClientMessage>(black_box(p)).unwrap());
        },
        "derived" => |p| {
            black_box(decode_message::<Derived>(black_box(p)).unwrap());
        },
        other => panic!("no decoder {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_decode");
    group.throughput(Throughput::Elements(1));
    for (name, payload) in PAYLOADS {
        for decoder_name in DECODERS {
            let decode = decoder(decoder_name);
            group.bench_with_input(BenchmarkId::new(decoder_name, name), payload, |b, p| {
                b.iter(|| decode(p.as_bytes()))
            });
        }
    }
    group.finish();
}

/// `count DECODER PAYLOAD N`: decodes one payload N times, for callgrind.
fn count(args: &[String]) {
    let [decoder_name, name, n] = args else {
        panic!("usage: count DECODER PAYLOAD N");
    };
    let payload = PAYLOADS
        .iter()
        .find(|(known, _)| known == name)
        .unwrap_or_else(|| panic!("no payload {name:?}"))
        .1;
    let n: u64 = n.parse().expect("N must be a number");
    let decode = decoder(decoder_name);
    for _ in 0..n {
        decode(payload.as_bytes());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("count") {
        return count(&args[1..]);
    }
    // Short on purpose: the machine is shared and the point is a ratio.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
