//! Interoperability with peers nobody here wrote (PROTOCOL.md section 1):
//! tokio-util's `LengthDelimitedCodec` with its default settings, in memory
//! and over loopback TCP in both directions, and a Python script that uses
//! only `socket` and `struct.pack("!I", n)`.

use std::io::{BufReader, BufWriter};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use porter_wire::{
    ClientMessage, DEFAULT_MAX_FRAME_LEN, FrameCodec, ReadFrameExt, ServerMessage, WriteFrameExt,
    decode_message,
};
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

/// Every wait in this file is bounded by this, so a broken peer fails the
/// test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(10);

fn sample_payloads() -> Vec<Vec<u8>> {
    vec![
        b"hello".to_vec(),
        Vec::new(),
        "héllo wörld — 日本語 🚀".as_bytes().to_vec(),
        vec![0x00, 0xFF, 0x7F, 0x80],
        vec![b'm'; DEFAULT_MAX_FRAME_LEN],
        Vec::new(),
    ]
}

// ---- in memory ------------------------------------------------------------

#[test]
fn sync_writer_and_length_delimited_codec_produce_identical_bytes() {
    let mut ours = Vec::new();
    let mut theirs = BytesMut::new();
    let mut ldc = LengthDelimitedCodec::new();
    for payload in sample_payloads() {
        ours.send_frame(&payload).unwrap();
        ldc.encode(Bytes::from(payload), &mut theirs).unwrap();
    }
    assert_eq!(ours, &theirs[..]);
}

#[test]
fn length_delimited_codec_reads_what_send_frame_writes() {
    let mut wire = Vec::new();
    for payload in sample_payloads() {
        wire.send_frame(&payload).unwrap();
    }
    let mut ldc = LengthDelimitedCodec::new();
    let mut buf = BytesMut::from(&wire[..]);
    for payload in sample_payloads() {
        assert_eq!(ldc.decode(&mut buf).unwrap().unwrap(), &payload[..]);
    }
    assert_eq!(ldc.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn recv_frame_and_frame_codec_read_what_length_delimited_codec_writes() {
    let mut ldc = LengthDelimitedCodec::new();
    let mut wire = BytesMut::new();
    for payload in sample_payloads() {
        ldc.encode(Bytes::from(payload), &mut wire).unwrap();
    }

    let mut reader = &wire[..];
    for payload in sample_payloads() {
        assert_eq!(reader.recv_frame().unwrap(), Some(payload));
    }
    assert_eq!(reader.recv_frame().unwrap(), None);

    let mut codec = FrameCodec::new();
    let mut buf = wire.clone();
    for payload in sample_payloads() {
        assert_eq!(
            Decoder::decode(&mut codec, &mut buf).unwrap().unwrap(),
            &payload[..]
        );
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn messages_written_by_length_delimited_codec_decode() {
    let mut ldc = LengthDelimitedCodec::new();
    let mut wire = BytesMut::new();
    let json = r#"{"type":"ask","id":"password","text":"Password:","secret":true}"#;
    ldc.encode(Bytes::from_static(json.as_bytes()), &mut wire)
        .unwrap();
    let message: ServerMessage = (&wire[..]).recv_message().unwrap().unwrap();
    assert_eq!(
        message,
        ServerMessage::Ask {
            id: "password".into(),
            text: "Password:".into(),
            secret: true,
        }
    );
}

// ---- over loopback TCP ----------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sync_socket_talks_to_length_delimited_codec_over_tcp() {
    runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        // The sync side: sends every sample, then reads back the replies.
        let client = thread::spawn(move || {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = BufWriter::new(stream);
            for payload in sample_payloads() {
                writer.send_frame(&payload).unwrap();
            }
            writer.send_text("bye").unwrap();
            let mut replies = Vec::new();
            while let Some(reply) = reader.recv_frame().unwrap() {
                replies.push(reply);
            }
            replies
        });

        // The tokio side: LengthDelimitedCodec, default settings, answering
        // each frame with its length as text.
        let serve = async {
            let (socket, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(socket, LengthDelimitedCodec::new());
            let mut received = Vec::new();
            while let Some(frame) = framed.next().await {
                let frame = frame.unwrap();
                if &frame[..] == b"bye" {
                    break;
                }
                framed
                    .send(Bytes::from(format!("got {}", frame.len())))
                    .await
                    .unwrap();
                received.push(frame.to_vec());
            }
            received
        };
        let received = tokio::time::timeout(TIMEOUT, serve)
            .await
            .expect("tokio side timed out");
        assert_eq!(received, sample_payloads());

        let replies = client.join().expect("sync side panicked");
        let expected: Vec<Vec<u8>> = sample_payloads()
            .iter()
            .map(|p| format!("got {}", p.len()).into_bytes())
            .collect();
        assert_eq!(replies, expected);
    });
}

#[test]
fn frame_codec_talks_to_length_delimited_codec_over_tcp() {
    runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        // Porter's codec as the client, sending messages.
        let client = async {
            let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut framed = Framed::new(socket, FrameCodec::new());
            framed
                .send(&ClientMessage::Say {
                    text: "ünïcödé".into(),
                    to: None,
                })
                .await
                .unwrap();
            framed.send(Bytes::new()).await.unwrap();
            framed.send(&ClientMessage::Bye).await.unwrap();
            let mut replies = Vec::new();
            while let Some(frame) = framed.next().await {
                replies.push(decode_message::<ServerMessage>(&frame.unwrap()).unwrap());
            }
            replies
        };

        // tokio-util's codec as the server: it sees only bytes, and answers
        // with JSON written by hand.
        let server = async {
            let (socket, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(socket, LengthDelimitedCodec::new());
            let mut seen = Vec::new();
            while let Some(frame) = framed.next().await {
                let frame = frame.unwrap();
                seen.push(frame.to_vec());
                if &frame[..] == br#"{"type":"bye"}"# {
                    break;
                }
            }
            let reply = r#"{"type":"say","text":"ünïcödé","from":"server"}"#;
            framed
                .send(Bytes::from_static(reply.as_bytes()))
                .await
                .unwrap();
            framed
                .send(Bytes::from_static(br#"{"type":"bye","text":"later"}"#))
                .await
                .unwrap();
            seen
        };

        let (replies, seen) = tokio::time::timeout(TIMEOUT, async { tokio::join!(client, server) })
            .await
            .expect("timed out");
        assert_eq!(
            seen,
            vec![
                r#"{"type":"say","text":"ünïcödé"}"#.as_bytes().to_vec(),
                Vec::new(),
                br#"{"type":"bye"}"#.to_vec(),
            ]
        );
        assert_eq!(
            replies,
            vec![
                ServerMessage::say("ünïcödé", "server"),
                ServerMessage::Bye {
                    text: "later".into()
                },
            ]
        );
    });
}

// ---- Python ---------------------------------------------------------------

/// Kills the child on drop, so a failed assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_struct_peer_exchanges_texts_over_tcp() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer.py");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let child = match Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping: python3 not found");
            return;
        }
        Err(e) => panic!("cannot start python3: {e}"),
    };
    let mut child = KillOnDrop(child);

    // accept() has no timeout of its own: wait for it on another thread.
    let (accepted, accept) = mpsc::channel();
    thread::spawn(move || {
        let _ = accepted.send(listener.accept());
    });
    let (stream, _) = accept
        .recv_timeout(TIMEOUT)
        .expect("python3 peer did not connect")
        .unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;

    let texts = ["hello", "héllo wörld", "日本語", "🚀 rocket", "a"];
    let expected_replies = ["olleh", "dlröw olléh", "語本日", "tekcor 🚀", "a"];
    writer.send_frame(b"").unwrap();
    for (text, expected) in texts.iter().zip(expected_replies) {
        writer.send_text(text).unwrap();
        assert_eq!(reader.recv_text().unwrap().as_deref(), Some(expected));
    }
    writer.send_text("bye").unwrap();

    assert_eq!(
        reader.recv_text().unwrap().as_deref(),
        Some("from python: grüße 👋")
    );
    assert_eq!(reader.recv_frame().unwrap().as_deref(), Some(&b""[..]));
    let big = reader.recv_frame().unwrap().unwrap();
    assert_eq!(big.len(), DEFAULT_MAX_FRAME_LEN);
    assert!(big.iter().all(|&b| b == b'z'));
    assert_eq!(
        reader.recv_text().unwrap().as_deref(),
        Some("done: 5 texts, 1 keep-alives")
    );
    // Python closed after its last frame: a clean end, not a truncation.
    assert_eq!(reader.recv_frame().unwrap(), None);

    // Bounded wait for the exit status.
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "python3 peer did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(status.success(), "python3 peer failed: {status}\n{stderr}");
}
