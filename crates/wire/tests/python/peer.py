#!/usr/bin/env python3
"""A Porter frame peer written with nothing but `socket` and `struct`.

Used by crates/wire/tests/interop.rs to show that the frame format is what
PROTOCOL.md says it is: a 4-byte big-endian length (`struct.pack("!I", n)`)
followed by that many payload bytes, with no help from the Rust code.

Usage: peer.py PORT

Connects to 127.0.0.1:PORT, then:
- for every text frame, sends the text back reversed (by code point);
- counts keep-alive frames (length 0) and otherwise ignores them;
- on the text "bye", sends its own frames: a greeting, a keep-alive, a
  65,536-byte frame of "z" and "done: T texts, K keep-alives", then closes.
Any protocol violation (truncated frame, frame over the maximum, invalid
UTF-8) ends the script with a message on stderr and exit status 1.
"""

import socket
import struct
import sys

MAX_FRAME_LEN = 65536
TIMEOUT_SECONDS = 10


def recv_exact(sock, n):
    """Returns n bytes, or None if the stream ended cleanly before the first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                sys.exit(f"peer.py: truncated frame: {len(buf)} of {n} bytes")
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock):
    header = recv_exact(sock, 4)
    if header is None:
        return None
    (length,) = struct.unpack("!I", header)
    if length > MAX_FRAME_LEN:
        sys.exit(f"peer.py: frame of {length} bytes is over the maximum")
    if length == 0:
        return b""
    payload = recv_exact(sock, length)
    if payload is None:
        sys.exit(f"peer.py: truncated frame: 0 of {length} bytes")
    return payload


def send_frame(sock, payload):
    sock.sendall(struct.pack("!I", len(payload)) + payload)


def main():
    port = int(sys.argv[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS)
    texts = 0
    keep_alives = 0
    while True:
        payload = recv_frame(sock)
        if payload is None:
            sys.exit("peer.py: stream closed before bye")
        if payload == b"":
            keep_alives += 1
            continue
        text = payload.decode("utf-8")  # strict: invalid UTF-8 raises
        if text == "bye":
            break
        texts += 1
        send_frame(sock, text[::-1].encode("utf-8"))
    send_frame(sock, "from python: grüße 👋".encode("utf-8"))
    send_frame(sock, b"")
    send_frame(sock, b"z" * MAX_FRAME_LEN)
    send_frame(sock, f"done: {texts} texts, {keep_alives} keep-alives".encode("utf-8"))
    sock.shutdown(socket.SHUT_WR)
    sock.close()


if __name__ == "__main__":
    main()
