"""A TLS server made of the standard library and the throwaway certificate
in tests/data: it needs no ``porter serve --tls``, and it records every byte
it receives after the TLS handshake, so that a test can check that a
refused server was sent nothing."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from pathlib import Path

from conftest import LIMIT

from porter_client import fingerprint_of

DATA = Path(__file__).resolve().parent / "data"
CERT = DATA / "test-cert.pem"
WELCOME = b'{"type":"welcome","server":"fake/0","protocol":1,"auth":"none"}'
READY = b'{"type":"ready","user":"fake"}'


def cert_fingerprint() -> str:
    """The fingerprint of tests/data/test-cert.pem."""
    return fingerprint_of(ssl.PEM_cert_to_DER_cert(CERT.read_text()))


class FakeTlsServer:
    """Accepts one TLS client, sends ``welcome``, answers a ``hello`` with
    ``ready``, and records everything it received until the client leaves."""

    def __init__(self) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(CERT, DATA / "test-key.pem")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(LIMIT)
        self.port: int = self.listener.getsockname()[1]
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.listener:
            conn, _ = self.listener.accept()
            conn.settimeout(LIMIT)
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except OSError:  # ssl.SSLError included: the client refused
                conn.close()
                return
            with tls:
                try:
                    tls.sendall(struct.pack("!I", len(WELCOME)) + WELCOME)
                    while True:
                        chunk = tls.recv(4096)
                        if not chunk:
                            return
                        self.received += chunk
                        if b'"hello"' in chunk:
                            tls.sendall(struct.pack("!I", len(READY)) + READY)
                except OSError:
                    return

    def finish(self) -> bytes:
        """What the server received, once the client has gone."""
        self.thread.join(LIMIT)
        assert not self.thread.is_alive()
        return bytes(self.received)
