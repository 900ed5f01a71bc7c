//! What the server's test files share: `run()` on a port-0 listener, and a
//! client speaking raw frames over loopback (a 4-byte big-endian length,
//! then JSON), so that the tests check the wire contract and not our own
//! codec. Every wait is bounded by [`WAIT`].

// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use porter_server::{Config, Console, Error, run};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Bound on every wait: a broken server fails a test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running server and how to stop it.
pub struct Server {
    pub addr: SocketAddr,
    /// Completes the shutdown future given to `run`.
    pub stop: oneshot::Sender<()>,
    /// What `run` returns.
    pub handle: JoinHandle<Result<(), Error>>,
}

impl Server {
    /// `run` on 127.0.0.1, port 0.
    pub async fn start(config: Config) -> Server {
        Server::start_on("127.0.0.1:0", config).await
    }

    /// `run` on `bind` (an address with port 0).
    pub async fn start_on(bind: &str, config: Config) -> Server {
        Server::start_with(bind, config, None).await
    }

    /// `run` on `bind`, with the server's console.
    pub async fn start_with(bind: &str, config: Config, console: Option<Console>) -> Server {
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(listener, config, console, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, handle }
    }

    /// Shuts the server down and waits for `run` to return `Ok`.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        timeout(WAIT, self.handle)
            .await
            .expect("run did not return")
            .unwrap()
            .unwrap();
    }
}

/// A client speaking raw frames.
pub struct Client {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Connects from a chosen source address (127.0.0.2, 127.0.0.3, ...).
    pub async fn connect_from(addr: SocketAddr, source: IpAddr) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let stream = timeout(WAIT, socket.connect(addr)).await.unwrap().unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Connects and goes through welcome · hello · ready (auth none);
    /// returns the user.
    pub async fn join(addr: SocketAddr) -> (Client, String) {
        let mut client = Client::connect(addr).await;
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client.send(&json!({"type": "hello"})).await;
        let ready = client.recv().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        let user = ready["user"].as_str().unwrap().to_owned();
        (client, user)
    }

    /// Connects, reads `welcome` (checking the auth mode) and says `hello`.
    pub async fn hello(addr: SocketAddr, auth: &str, token: Option<&str>) -> Client {
        let mut client = Client::connect(addr).await;
        client.expect_welcome(auth).await;
        client.send_hello(token).await;
        client
    }

    pub async fn expect_welcome(&mut self, auth: &str) {
        let welcome = self.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["auth"], auth, "{welcome}");
        assert_eq!(welcome["protocol"], 1, "{welcome}");
    }

    pub async fn send_hello(&mut self, token: Option<&str>) {
        match token {
            Some(token) => {
                self.send(&json!({"type": "hello", "client": "test", "token": token}))
                    .await
            }
            None => self.send(&json!({"type": "hello", "client": "test"})).await,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .unwrap()
            .unwrap();
    }

    pub async fn send_payload(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.send_raw(&frame).await;
    }

    pub async fn send(&mut self, message: &Value) {
        self.send_payload(message.to_string().as_bytes()).await;
    }

    pub async fn say(&mut self, text: &str) {
        self.send(&json!({"type": "say", "text": text})).await;
    }

    pub async fn answer(&mut self, id: &str, text: &str) {
        self.send(&json!({"type": "answer", "id": id, "text": text}))
            .await;
    }

    /// The next frame, or `None` when the server closed (cleanly or not).
    pub async fn try_recv(&mut self) -> Option<Value> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    let payload = self.buf.split_to(len);
                    return Some(serde_json::from_slice(&payload).unwrap());
                }
            }
            let read = timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("timed out waiting for a frame");
            match read {
                Ok(0) | Err(_) => {
                    assert!(self.buf.len() < 4, "closed inside a frame");
                    return None;
                }
                Ok(_) => {}
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        self.try_recv().await.expect("server closed the connection")
    }

    /// Expects `ask{id}` and returns its `secret` flag.
    pub async fn expect_ask(&mut self, id: &str) -> bool {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "ask", "{frame}");
        assert_eq!(frame["id"], id, "{frame}");
        assert!(frame["text"].is_string(), "{frame}");
        frame["secret"].as_bool().unwrap_or(false)
    }

    /// Expects `ask{id}` and answers it with `text`.
    pub async fn answer_ask(&mut self, id: &str, text: &str) {
        self.expect_ask(id).await;
        self.answer(id, text).await;
    }

    /// Expects `error{code}` with a text, and returns it.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], code, "{frame}");
        assert!(frame["text"].is_string(), "{frame}");
        frame
    }

    /// Expects `text` said by the server.
    pub async fn expect_say(&mut self, text: &str) {
        let frame = self.recv().await;
        assert_eq!(
            frame,
            json!({"type": "say", "from": "server", "text": text})
        );
    }

    pub async fn expect_ready(&mut self, user: &str) {
        let frame = self.recv().await;
        assert_eq!(frame, json!({"type": "ready", "user": user}));
    }

    /// Expects `bye` and returns its text.
    pub async fn expect_bye(&mut self) -> String {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "bye", "{frame}");
        frame["text"].as_str().unwrap().to_owned()
    }

    /// Expects `session` for `user` and returns its token and expiry.
    pub async fn expect_session(&mut self, user: &str) -> (String, String) {
        let frame = self.recv().await;
        assert_eq!(frame["type"], "session", "{frame}");
        assert_eq!(frame["user"], user, "{frame}");
        let token = frame["token"].as_str().unwrap().to_owned();
        assert_eq!(token.len(), 43, "256 bits in unpadded base64: {token}");
        assert!(
            token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "URL-safe: {token}"
        );
        (token, frame["expires_at"].as_str().unwrap().to_owned())
    }

    pub async fn expect_closed(&mut self) {
        if let Some(frame) = self.try_recv().await {
            panic!("expected the connection to close, got {frame}");
        }
    }

    /// Every frame until the server closes.
    pub async fn frames_until_closed(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.try_recv().await {
            frames.push(frame);
        }
        frames
    }

    /// Says `text` and expects it back from the server (echo).
    pub async fn echo(&mut self, text: &str) {
        self.say(text).await;
        self.expect_say(text).await;
    }
}
