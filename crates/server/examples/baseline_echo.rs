//! The baseline `porter bench` compares Porter with: a bare tokio echo
//! server on tokio-util's `LengthDelimitedCodec`, speaking the same frames
//! (4-byte big-endian length, 64 KiB maximum) with no JSON, no handshake and
//! no logging. Every frame comes back verbatim; replies are fed as they are
//! decoded and flushed once per batch (when no whole frame is left in the
//! read buffer). This is the ceiling for this wire format on this runtime.
//!
//! ```text
//! cargo run --release -p porter-server --example baseline_echo -- --port 0
//! porter bench --raw --port PORT --conns 50 --pipeline 16
//! ```
//!
//! It prints `baseline: listening on ADDR` once bound, and runs until killed.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame accepted: Porter's default maximum.
const MAX_FRAME_LEN: usize = 64 * 1024;

fn main() -> std::io::Result<()> {
    let port = match parse_port(std::env::args().skip(1)) {
        Ok(port) => port,
        Err(message) => {
            eprintln!("baseline_echo: {message}");
            eprintln!("usage: baseline_echo [--port PORT] [--host IP]");
            std::process::exit(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(port))
}

/// `--port N` (0: any free port; default 0) and `--host IP` (default
/// 127.0.0.1: the baseline is for loopback benchmarks).
fn parse_port(args: impl Iterator<Item = String>) -> Result<SocketAddr, String> {
    let mut addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut args = args;
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => addr.set_port(value.parse().map_err(|_| format!("bad port {value:?}"))?),
            "--host" => addr.set_ip(value.parse().map_err(|_| format!("bad host {value:?}"))?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(addr)
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("baseline: listening on {}", listener.local_addr()?);
    loop {
        // A failed accept (out of descriptors) must not stop the baseline.
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(echo(stream));
    }
}

async fn echo(stream: TcpStream) {
    // The same latency setting as the Porter server and client.
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_LEN)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    while let Some(Ok(frame)) = framed.next().await {
        if framed.feed(frame.freeze()).await.is_err() {
            return;
        }
        // Drain every whole frame already buffered before one flush: the
        // batch a pipelining client sent comes back in one write.
        loop {
            match futures_util::FutureExt::now_or_never(framed.next()) {
                Some(Some(Ok(frame))) => {
                    if framed.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                }
                Some(_) => {
                    let _ = SinkExt::<Bytes>::flush(&mut framed).await;
                    return;
                }
                None => break,
            }
        }
        if SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
            return;
        }
    }
}
