//! The chat baseline `porter bench --service chat --raw` compares Porter's
//! chat room with: a bare tokio fan-out on tokio-util's
//! `LengthDelimitedCodec`, speaking the same frames (4-byte big-endian
//! length, 64 KiB maximum) with no JSON, no handshake, no names, no history
//! and no logging. Every frame a connection sends goes out verbatim to every
//! *other* connection, through one `tokio::sync::broadcast` channel; each
//! connection `select!`s between its socket and the channel, as tokio's
//! `chat.rs` example does, and writes what the channel holds in one flush.
//! This is the ceiling for fan-out with this wire format on this runtime.
//!
//! ```text
//! cargo run --release -p porter-server --example baseline_chat -- --port 0
//! porter bench --raw --service chat --port PORT --conns 100 --size 64
//! ```
//!
//! With `--participants N`, a connection starts reading only once N are
//! connected at the same time. Porter sends `ready` after a client has
//! joined its room, so the bench starts sending when every participant can
//! receive; a raw connection has no such step, and without this the first
//! lines would go out before the last participants were accepted, never
//! to reach them. It does not change the steady state that is measured.
//!
//! It prints `baseline: listening on ADDR` once bound, and runs until
//! killed. A receiver that falls more than [`CHANNEL_CAPACITY`] frames
//! behind loses the oldest ones (the bench counts them as lost): the bench
//! keeps far fewer in flight (`--conns` x `--pipeline` lines).

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame accepted: Porter's default maximum.
const MAX_FRAME_LEN: usize = 64 * 1024;

/// Frames the channel holds for its slowest receiver: above what a bench
/// run keeps in flight (100 participants x a pipeline of 16 = 1,600), and
/// the same as Porter's default outgoing queue per connection (1,024)
/// rounded up to a power of two.
const CHANNEL_CAPACITY: usize = 4096;

/// A frame on its way out, and who sent it (never sent back to them).
type Line = (u64, Bytes);

fn main() -> std::io::Result<()> {
    let (addr, participants) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("baseline_chat: {message}");
            eprintln!("usage: baseline_chat [--port PORT] [--host IP] [--participants N]");
            std::process::exit(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr, participants))
}

/// `--port N` (0: any free port; default 0), `--host IP` (default
/// 127.0.0.1: the baseline is for loopback benchmarks) and
/// `--participants N` (default 0: no waiting).
fn parse_args(args: impl Iterator<Item = String>) -> Result<(SocketAddr, usize), String> {
    let mut addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut participants = 0;
    let mut args = args;
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => addr.set_port(value.parse().map_err(|_| format!("bad port {value:?}"))?),
            "--host" => addr.set_ip(value.parse().map_err(|_| format!("bad host {value:?}"))?),
            "--participants" => {
                participants = value
                    .parse()
                    .map_err(|_| format!("bad participants {value:?}"))?;
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok((addr, participants))
}

async fn serve(addr: SocketAddr, participants: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("baseline: listening on {}", listener.local_addr()?);
    let (room, _) = broadcast::channel::<Line>(CHANNEL_CAPACITY);
    // Connections open now, for --participants.
    let (present, _) = watch::channel(0usize);
    let mut next_id = 0u64;
    loop {
        // A failed accept (out of descriptors) must not stop the baseline.
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // The same latency setting as the Porter server and client.
        let _ = stream.set_nodelay(true);
        next_id += 1;
        // Subscribed before anyone may send to it.
        let inbox = room.subscribe();
        let room = room.clone();
        let present = present.clone();
        present.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            let _ = present.subscribe().wait_for(|&n| n >= participants).await;
            participant(stream, next_id, room, inbox).await;
            present.send_modify(|n| *n -= 1);
        });
    }
}

/// One connection: frames from the socket go to the room, frames from the
/// room (except its own) go to the socket, fed as they come and flushed
/// once the channel is drained.
async fn participant(
    stream: TcpStream,
    me: u64,
    room: broadcast::Sender<Line>,
    mut inbox: broadcast::Receiver<Line>,
) {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    loop {
        tokio::select! {
            frame = framed.next() => match frame {
                Some(Ok(frame)) => {
                    let _ = room.send((me, frame.freeze()));
                    // Every whole frame already buffered goes out at once.
                    while let Some(Some(Ok(frame))) = framed.next().now_or_never() {
                        let _ = room.send((me, frame.freeze()));
                    }
                }
                _ => return,
            },
            line = inbox.recv() => {
                let mut next = match line {
                    Ok(line) => Ok(line),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                while let Ok((from, frame)) = next {
                    if from != me && framed.feed(frame).await.is_err() {
                        return;
                    }
                    next = inbox.try_recv();
                }
                if matches!(next, Err(TryRecvError::Closed))
                    || SinkExt::<Bytes>::flush(&mut framed).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
