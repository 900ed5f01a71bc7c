//! The baseline `porter bench` compares Porter with: a bare tokio echo
//! server on tokio-util's `LengthDelimitedCodec`, speaking the same frames
//! (4-byte big-endian length, 64 KiB maximum) with no JSON, no handshake and
//! no logging. Every frame comes back verbatim; replies are fed as they are
//! decoded and flushed once per batch (when no whole frame is left in the
//! read buffer). This is the ceiling for this wire format on this runtime.
//!
//! With `--tls` it is the TLS baseline: the same echo inside a bare
//! tokio-rustls server (ring provider, a self-signed certificate made in
//! memory at start, TLS 1.3 by default), which `porter serve --tls` is
//! compared with.
//!
//! ```text
//! cargo run --release -p porter-server --example baseline_echo -- --port 0
//! porter bench --raw --port PORT --conns 50 --pipeline 16
//! cargo run --release -p porter-server --example baseline_echo -- --port 0 --tls
//! porter bench --raw --port PORT --conns 50 --pipeline 16 --fingerprint SHA256:...
//! ```
//!
//! It prints `baseline: fingerprint SHA256:...` with `--tls`, then
//! `baseline: listening on ADDR` once bound, and runs until killed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame accepted: Porter's default maximum.
const MAX_FRAME_LEN: usize = 64 * 1024;

fn main() -> std::io::Result<()> {
    let (addr, tls) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("baseline_echo: {message}");
            eprintln!("usage: baseline_echo [--port PORT] [--host IP] [--tls]");
            std::process::exit(2);
        }
    };
    let acceptor = tls.then(tls_acceptor).transpose()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr, acceptor))
}

/// `--port N` (0: any free port; default 0), `--host IP` (default
/// 127.0.0.1: the baseline is for loopback benchmarks) and `--tls`.
fn parse_args(args: impl Iterator<Item = String>) -> Result<(SocketAddr, bool), String> {
    let mut addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut tls = false;
    let mut args = args;
    while let Some(arg) = args.next() {
        if arg == "--tls" {
            tls = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => addr.set_port(value.parse().map_err(|_| format!("bad port {value:?}"))?),
            "--host" => addr.set_ip(value.parse().map_err(|_| format!("bad host {value:?}"))?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok((addr, tls))
}

/// A bare rustls server configuration: ring, a self-signed certificate
/// made now, rustls's defaults for everything else.
fn tls_acceptor() -> std::io::Result<TlsAcceptor> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(std::io::Error::other)?;
    let fingerprint = porter_wire::Fingerprint::of_der(made.cert.der());
    println!("baseline: fingerprint {fingerprint}");
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der())
        .map_err(std::io::Error::other)?;
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .map_err(std::io::Error::other)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve(addr: SocketAddr, tls: Option<TlsAcceptor>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("baseline: listening on {}", listener.local_addr()?);
    loop {
        // A failed accept (out of descriptors) must not stop the baseline.
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // The same latency setting as the Porter server and client.
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                tokio::spawn(echo(stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        echo(stream).await;
                    }
                });
            }
        }
    }
}

async fn echo(stream: impl AsyncRead + AsyncWrite + Unpin) {
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
