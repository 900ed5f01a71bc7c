//! Issue 11: TLS with trust on first use, against the real binary.
//!
//! - `porter serve --tls`: the certificate made once (key 0600) and reused,
//!   its fingerprint printed, logged and equal to `porter fingerprint`'s;
//!   a client that never finishes TLS is cut at the handshake deadline.
//! - Secure by default: password login in clear beyond loopback refused.
//! - `porter connect --tls`: scripted refusal of an unknown server,
//!   `--fingerprint`, `--trust-on-first-use`; at a terminal (PTY) the first
//!   contact, accept, a silent second contact, a changed key refused,
//!   forget, and contact again.
//! - A server presenting the pinned certificate without its key is refused.
//! - `--ca-file` with the host name checked.
//! - The bytes on the wire of a password login over TLS hold no password.
//! - A Python peer with only the standard library computes the same
//!   fingerprint and logs in.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;

use common::{
    LIMIT, PASSWORD, Relay, ServerProcess, TIMEOUT_MS, at_usual_terminal, exit_code, porter,
    serve_in,
};
use rexpect::session::spawn_command;

/// `porter connect` to 127.0.0.1:`port` with a state directory of its own.
fn connect(port: u16, state: &Path, args: &[&str]) -> Command {
    connect_host("127.0.0.1", port, state, args)
}

/// `porter connect` to `host`:`port` with a state directory of its own.
fn connect_host(host: &str, port: u16, state: &Path, args: &[&str]) -> Command {
    let mut command = porter(&["connect", "--host", host, "--port", &port.to_string()]);
    command.args(args).env("XDG_STATE_HOME", state);
    command
}

/// Runs `command` with `input` on stdin; (exit success, stdout, stderr).
fn run(command: Command, input: &str) -> (bool, String, String) {
    let output = assert_cmd::Command::from_std(command)
        .write_stdin(input.to_owned())
        .timeout(LIMIT)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The fingerprint `porter fingerprint` prints for the data directory `dir`.
fn fingerprint_in(dir: &Path) -> String {
    let output = porter(&["fingerprint"]).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An echo server over TLS without accounts, in `dir`.
fn tls_echo(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--auth", "none", "--tls"];
    args.extend_from_slice(extra);
    serve_in(dir, "echo", &args)
}

#[test]
fn the_certificate_is_made_once_with_a_private_key_and_its_fingerprint_printed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_echo(dir.path(), &[]);
    let printed = server.preamble.join("\n");
    assert!(printed.contains("(generated)"), "{printed}");
    let fingerprint = fingerprint_in(dir.path());
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert!(printed.contains(&fingerprint), "{printed}");
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("porter.log")).unwrap();
    assert!(log.contains(&fingerprint), "{log}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("tls-key.pem")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    let again = tls_echo(dir.path(), &[]);
    let printed = again.preamble.join("\n");
    assert!(
        printed.contains("(loaded)") && printed.contains(&fingerprint),
        "{printed}"
    );
    assert_eq!(fingerprint_in(dir.path()), fingerprint);
}

#[test]
fn porter_fingerprint_without_a_certificate_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = porter(&["fingerprint"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("porter serve --tls"), "{err}");
}

#[test]
fn password_login_in_clear_beyond_loopback_is_refused_with_both_ways_out() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        assert_cmd::Command::from_std(porter(&["serve", "--host", "0.0.0.0", "--port", "0"]))
            .current_dir(dir.path())
            .write_stdin("")
            .timeout(LIMIT)
            .output()
            .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("--tls") && err.contains("--insecure-plaintext"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!out.contains("listening"), "{out}");

    // Deliberately: it serves, with a notice. So do the other modes.
    for args in [
        &["--insecure-plaintext"][..],
        &["--auth", "none"][..],
        &["--auth", "ip"][..],
    ] {
        let mut command = porter(&["serve", "--host", "0.0.0.0", "--port", "0"]);
        command.args(args).current_dir(dir.path());
        let server = ServerProcess::spawn(command);
        let err = server.stop_and_stderr();
        assert!(
            err.contains("notice: serving in clear text"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn scripted_clients_trust_only_a_fingerprint_given_or_first_use_declared() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = tls_echo(dir.path(), &[]);
    let port = server.addr.port();
    let fingerprint = fingerprint_in(dir.path());

    let (ok, out, err) = run(connect(port, &state, &["--tls"]), "hi\n");
    assert!(!ok);
    assert!(
        err.contains("not a known server") && err.contains(&fingerprint),
        "{err}"
    );
    assert!(!out.contains("hi"), "{out}");

    let wrong = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let (ok, _, err) = run(connect(port, &state, &["--fingerprint", wrong]), "hi\n");
    assert!(!ok);
    assert!(
        err.contains(&fingerprint) && err.contains("nothing was sent"),
        "{err}"
    );

    let (ok, out, err) = run(
        connect(port, &state, &["--fingerprint", &fingerprint]),
        "hi\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("hi"), "{out}");
    // Remembered: a plain --tls now connects without anything given.
    let (ok, out, err) = run(connect(port, &state, &["--tls"]), "again\n");
    assert!(ok, "{err}");
    assert!(out.contains("again"), "{out}");

    let listed = porter(&["known-servers", "list"])
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("127.0.0.1:{port}  {fingerprint}  first seen ")),
        "{listed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = std::fs::metadata(state.join("porter/known_servers")).unwrap();
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
    }

    // localhost and ::1 are the same server as 127.0.0.1 here.
    let by_name = connect_host("localhost", port, &state, &["--tls"]);
    let (ok, _, err) = run(by_name, "x\n");
    assert!(ok, "{err}");

    let fresh = dir.path().join("fresh");
    let (ok, out, err) = run(connect(port, &fresh, &["--trust-on-first-use"]), "tofu\n");
    assert!(ok, "{err}");
    assert!(out.contains("tofu"), "{out}");
    assert!(
        err.contains("trusting") && err.contains(&fingerprint),
        "{err}"
    );
}

/// Stops `server`, replaces its certificate, and serves again on its port.
fn restart_with_a_new_key(server: ServerProcess, dir: &Path) -> ServerProcess {
    let port = server.port();
    assert!(server.stop().success());
    std::fs::remove_file(dir.join("tls-cert.pem")).unwrap();
    std::fs::remove_file(dir.join("tls-key.pem")).unwrap();
    let mut command = porter(&[
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--port-tries",
        "1",
    ]);
    command
        .args(["--service", "echo", "--auth", "none", "--tls"])
        .current_dir(dir);
    ServerProcess::spawn(command)
}

#[test]
fn at_a_terminal_first_contact_asks_then_pins_and_a_changed_key_is_refused_until_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = tls_echo(dir.path(), &[]);
    let port = server.addr.port();
    let first = fingerprint_in(dir.path());
    let at_terminal = || {
        let command = at_usual_terminal(&connect(port, &state, &["--tls"]), false);
        spawn_command(command, Some(TIMEOUT_MS)).unwrap()
    };

    // First contact: host, fingerprint, where it is kept; "no" by default.
    let mut p = at_terminal();
    p.exp_string(&format!("127.0.0.1:{port} is not known yet"))
        .unwrap();
    p.exp_string(&first).unwrap();
    p.exp_string(&state.join("porter/known_servers").display().to_string())
        .unwrap();
    p.exp_string("Trust this server? [y/N]").unwrap();
    p.send_line("").unwrap();
    p.exp_string("server not trusted; nothing was sent")
        .unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(1));

    // Accept.
    let mut p = at_terminal();
    p.exp_string("Trust this server? [y/N]").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("connected to porter/").unwrap();
    p.exp_string("> ").unwrap();
    p.send("first contact\r").unwrap();
    p.flush().unwrap();
    p.exp_string("server: first contact").unwrap();
    p.send("/quit\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();

    // Second contact: silent.
    let mut p = at_terminal();
    let before = p.exp_string("connected to porter/").unwrap();
    assert!(!before.contains("Trust this server"), "{before}");
    p.send("/quit\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();

    // A changed key: refused before anything is sent, loudly.
    let server = restart_with_a_new_key(server, dir.path());
    let second = fingerprint_in(dir.path());
    assert_ne!(first, second);
    let mut p = at_terminal();
    let shown = p.exp_eof().unwrap();
    for expected in [
        "HAS CHANGED",
        first.as_str(),
        second.as_str(),
        "first seen 20",
        "Nothing was sent",
        &format!("porter known-servers forget 127.0.0.1:{port}"),
    ] {
        assert!(shown.contains(expected), "{expected:?} not in {shown}");
    }
    assert!(!shown.contains("Trust this server"), "{shown}");
    assert_eq!(exit_code(&p), Some(1));

    // Forget, and contact again: asked again, with the new fingerprint.
    let forgot = porter(&["known-servers", "forget", &format!("localhost:{port}")])
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert!(forgot.status.success(), "{forgot:?}");
    let mut p = at_terminal();
    p.exp_string(&second).unwrap();
    p.exp_string("Trust this server? [y/N]").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("connected to porter/").unwrap();
    p.send("/quit\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
    drop(server);
}

#[test]
fn a_client_that_never_finishes_tls_is_cut_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_echo(dir.path(), &["--handshake-timeout", "1"]);
    let mut silent = TcpStream::connect(server.addr).unwrap();
    silent.set_read_timeout(Some(LIMIT)).unwrap();
    // Meanwhile others are served.
    let state = dir.path().join("state");
    let (ok, out, err) = run(
        connect(server.addr.port(), &state, &["--trust-on-first-use"]),
        "served\n",
    );
    assert!(ok && out.contains("served"), "{out} {err}");
    // The server closes the silent one (EOF), having sent it nothing.
    let mut got = Vec::new();
    silent.read_to_end(&mut got).unwrap();
    assert!(got.is_empty(), "{got:?}");
}

/// A TLS server in a thread that presents `cert` and signs with `key` (a
/// PKCS#8 DER), accepting one connection; tells whether its handshake
/// completed, after sending `welcome` and `bye` frames when it did.
fn handcrafted_server(cert: Vec<u8>, key: Vec<u8>) -> (SocketAddr, thread::JoinHandle<bool>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;

    #[derive(Debug)]
    struct Always(Arc<CertifiedKey>);
    impl ResolvesServerCert for Always {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        .unwrap();
    // Deliberately not `keys_match`: this server may lie.
    let certified = Arc::new(CertifiedKey::new(vec![CertificateDer::from(cert)], signing));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(certified)));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(LIMIT)).unwrap();
        let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        while tls.is_handshaking() {
            if tls.complete_io(&mut tcp).is_err() {
                return false;
            }
        }
        let mut stream = rustls::StreamOwned::new(tls, tcp);
        let frame = |json: &str| {
            let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(json.as_bytes());
            bytes
        };
        let welcome = r#"{"type":"welcome","server":"liar/1","protocol":1,"auth":"none"}"#;
        let _ = stream.write_all(&frame(welcome));
        let _ = stream.write_all(&frame(r#"{"type":"bye","text":"goodbye"}"#));
        let _ = stream.flush();
        true
    });
    (addr, handle)
}

#[test]
fn a_server_with_the_pinned_certificate_but_not_its_key_is_refused() {
    let real = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let cert = real.cert.der().to_vec();
    let pinned = porter_wire::Fingerprint::of_der(&cert).to_string();
    let dir = tempfile::tempdir().unwrap();

    // Control: with its own key the same server passes TLS.
    let (addr, server) = handcrafted_server(cert.clone(), real.signing_key.serialize_der());
    let (_, _, err) = run(
        connect(
            addr.port(),
            &dir.path().join("a"),
            &["--fingerprint", &pinned],
        ),
        "",
    );
    assert!(
        server.join().unwrap(),
        "the honest server's handshake failed: {err}"
    );
    assert!(!err.contains("TLS with"), "{err}");

    // The pinned certificate, signed for by another key: refused.
    // (The client probes first; the probe is the handshake refused.)
    let (addr, server) = handcrafted_server(cert, other.serialize_der());
    let (ok, out, err) = run(
        connect(
            addr.port(),
            &dir.path().join("b"),
            &["--fingerprint", &pinned],
        ),
        "",
    );
    assert!(!ok);
    assert!(
        !server.join().unwrap(),
        "the lying server completed its handshake"
    );
    assert!(
        err.contains("TLS with") && err.to_lowercase().contains("signature"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn with_a_ca_file_the_chain_and_the_host_name_are_verified() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca = write("ca.pem", ca_cert.pem());
    let cert = write("leaf.pem", leaf.pem());
    let key = write("leaf-key.pem", leaf_key.serialize_pem());
    let server = serve_in(
        dir.path(),
        "echo",
        &["--auth", "none", "--tls-cert", &cert, "--tls-key", &key],
    );
    let port = server.addr.port();
    let state = dir.path().join("state");

    let by_name = connect_host("localhost", port, &state, &["--ca-file", &ca]);
    let (ok, out, err) = run(by_name, "verified\n");
    assert!(ok, "{err}");
    assert!(out.contains("verified"), "{out}");

    // 127.0.0.1 is not a name in the certificate.
    let (ok, _, err) = run(connect(port, &state, &["--ca-file", &ca]), "x\n");
    assert!(!ok);
    assert!(err.contains("TLS with"), "{err}");
    // A file without the CA (the leaf itself) verifies nothing.
    let by_name = connect_host("localhost", port, &state, &["--ca-file", &cert]);
    let (ok, _, err) = run(by_name, "x\n");
    assert!(!ok, "{err}");
    assert!(err.contains("TLS with"), "{err}");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_password_login_over_tls_shows_no_password_on_the_wire() {
    for tls in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let args: &[&str] = if tls { &["--tls"] } else { &[] };
        let server = serve_in(dir.path(), "chat", args);
        let relay = Relay::to(server.addr);
        let state = dir.path().join("state");
        let trust: &[&str] = if tls { &["--trust-on-first-use"] } else { &[] };
        let mut command = connect(relay.port, &state, trust);
        command
            .args(["--user", "ada"])
            .env("PORTER_PASSWORD", PASSWORD);
        let (ok, _, err) = run(command, "a secret plan\n");
        assert!(ok, "{err}");
        let seen = relay.seen();
        assert_eq!(contains(&seen, "\"ada\""), !tls, "tls={tls}");
        // The control run in clear shows the test can see a password.
        assert_eq!(contains(&seen, PASSWORD), !tls, "tls={tls}");
        assert_eq!(contains(&seen, "a secret plan"), !tls, "tls={tls}");
        assert_eq!(contains(&seen, "\"session\""), !tls, "tls={tls}");
    }
}

#[test]
fn a_python_peer_with_only_the_standard_library_pins_the_fingerprint_and_logs_in() {
    let python = match Command::new("python3").arg("--version").output() {
        Ok(output) if output.status.success() => "python3",
        _ => {
            eprintln!("skipping: python3 not found");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), "chat", &["--tls"]);
    let fingerprint = fingerprint_in(dir.path());
    let output = assert_cmd::Command::new(python)
        .arg("-c")
        .arg(PYTHON_PEER)
        .args([&server.port(), &fingerprint, PASSWORD])
        .timeout(LIMIT)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains(&format!("fingerprint {fingerprint}")), "{out}");
    assert!(out.contains("ready as ada"), "{out}");
    assert!(out.contains("in the room: ada"), "{out}");
}

/// The Python peer: TLS without verification, the fingerprint from the
/// DER as PROTOCOL.md section 1a says, checked before anything is sent,
/// then registration with a password and the room's `who`.
const PYTHON_PEER: &str = r#"
import base64, hashlib, json, socket, ssl, struct, sys
port, expected, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20))
der = sock.getpeercert(binary_form=True)
fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
print("fingerprint", fingerprint, flush=True)
if fingerprint != expected:
    sys.exit("fingerprint mismatch")

def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("closed")
        data += chunk
    return data

def recv():
    (length,) = struct.unpack("!I", recv_exact(4))
    return json.loads(recv_exact(length).decode("utf-8"))

def send(message):
    payload = json.dumps(message).encode("utf-8")
    sock.sendall(struct.pack("!I", len(payload)) + payload)

assert recv()["type"] == "welcome"
send({"type": "hello", "client": "python-ssl/1"})
answers = {"user": "ada", "new_password": password, "repeat_password": password, "password": password}
while True:
    message = recv()
    if message["type"] == "ask":
        send({"type": "answer", "id": message["id"], "text": answers[message["id"]]})
    elif message["type"] == "ready":
        print("ready as", message["user"], flush=True)
        break
    elif message["type"] == "error":
        sys.exit("refused: " + message["code"])
send({"type": "who"})
while True:
    message = recv()
    if message["type"] == "who":
        print("in the room:", ", ".join(message["users"]), flush=True)
        break
send({"type": "bye"})
"#;

#[test]
fn porter_bench_measures_a_tls_server_trusted_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_echo(dir.path(), &[]);
    let fingerprint = fingerprint_in(dir.path());
    let bench = |state: &str, args: &[&str]| {
        let mut command = porter(&["bench", "--host", "127.0.0.1", "--port", &server.port()]);
        command
            .args([
                "--conns",
                "4",
                "--pipeline",
                "4",
                "--messages",
                "400",
                "--json",
            ])
            .args(args)
            .env("XDG_STATE_HOME", dir.path().join(state));
        run(command, "")
    };
    let (ok, out, err) = bench("a", &["--fingerprint", &fingerprint]);
    assert!(ok, "{err}");
    assert!(out.contains(r#""transport":"tls""#), "{out}");
    assert!(out.contains(r#""messages":400"#), "{out}");
    // Without a way to trust it, the bench refuses before measuring.
    let (ok, out, err) = bench("b", &["--tls"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("not a known server"), "{err}");
}

#[test]
fn data_dir_holds_the_certificate_and_the_database_and_porter_fingerprint_reads_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let server = serve_in(dir.path(), "echo", &["--tls", "--data-dir", data_arg]);
    let printed = server.preamble.join("\n");
    drop(server);
    for file in ["tls-cert.pem", "tls-key.pem", "porter.db"] {
        assert!(data.join(file).exists(), "{file} not in --data-dir");
        assert!(!dir.path().join(file).exists(), "{file} beside the log");
    }
    let output = porter(&["fingerprint", "--data-dir", data_arg])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let fingerprint = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains(fingerprint.trim()),
        "{printed} / {fingerprint}"
    );
}
