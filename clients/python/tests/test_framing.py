"""PorterSocket's framing against a fake peer that sends exactly the bytes a
test wants: whole frames, half frames, oversized headers, bad payloads."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from porter_client import (
    FrameTooLarge,
    InvalidMessage,
    InvalidUtf8,
    PorterSocket,
    TruncatedFrame,
    connect,
)

LIMIT = 20.0


@pytest.fixture
def pair() -> Iterator[tuple[PorterSocket, socket.socket]]:
    """A PorterSocket (the client under test, max 4096) and the raw other end."""
    ours, theirs = socket.socketpair()
    client = PorterSocket.from_socket(ours, max_frame_len=4096)
    client.settimeout(LIMIT)
    theirs.settimeout(LIMIT)
    yield client, theirs
    client.close()
    theirs.close()


def frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def test_frames_texts_and_messages_round_trip(pair: tuple[PorterSocket, socket.socket]) -> None:
    client, peer = pair
    other = PorterSocket.from_socket(peer.dup())
    client.send_frame(b"\x00\xffbytes")
    client.send_text("grüße 👋")
    client.send_message({"type": "say", "text": "hi"})
    assert other.recv_frame() == b"\x00\xffbytes"
    assert other.recv_text() == "grüße 👋"
    assert other.recv_message() == {"type": "say", "text": "hi"}
    other.close()


def test_the_wire_format_is_struct_pack_big_endian(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, peer = pair
    client.send_message({"type": "say", "text": "é"})
    expected = '{"type":"say","text":"é"}'.encode()
    assert peer.recv(100) == struct.pack("!I", len(expected)) + expected


def test_a_keep_alive_is_an_empty_frame_and_recv_message_skips_it(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, peer = pair
    peer.sendall(frame(b"") + frame(b"") + frame(b'{"type":"x"}'))
    assert client.recv_frame() == b""
    assert client.recv_text() == ""
    peer.sendall(frame(b"") + frame(b'{"type":"y"}'))
    assert client.recv_message() == {"type": "x"}
    assert client.recv_message() == {"type": "y"}


def test_a_clean_close_between_frames_is_none(pair: tuple[PorterSocket, socket.socket]) -> None:
    client, peer = pair
    peer.sendall(frame(b"last"))
    peer.shutdown(socket.SHUT_WR)
    assert client.recv_frame() == b"last"
    assert client.recv_frame() is None
    assert client.recv_text() is None
    assert client.recv_message() is None


def test_a_close_inside_the_header_is_a_truncated_frame(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, peer = pair
    peer.sendall(b"\x00\x00")
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(TruncatedFrame) as caught:
        client.recv_frame()
    assert (caught.value.part, caught.value.got, caught.value.expected) == ("header", 2, 4)


def test_a_close_inside_the_payload_is_a_truncated_frame(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, peer = pair
    peer.sendall(struct.pack("!I", 10) + b"half")
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(TruncatedFrame) as caught:
        client.recv_message()
    assert (caught.value.part, caught.value.got, caught.value.expected) == ("payload", 4, 10)
    assert "truncated frame" in str(caught.value)


def test_an_oversized_header_is_refused_before_any_payload_byte_is_read(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, peer = pair
    # 4 GiB announced; a few payload bytes follow, and no more ever will: a
    # reader that tried to read (or allocate) the payload would block here.
    peer.sendall(struct.pack("!I", 0xFFFF_FFFF) + b"abc")
    with pytest.raises(FrameTooLarge) as caught:
        client.recv_frame()
    assert (caught.value.length, caught.value.maximum) == (0xFFFF_FFFF, 4096)
    assert caught.value.code == "frame_too_large"
    # The payload bytes are still in the socket: none was read.
    assert client.recv(3) == b"abc"


def test_the_maximum_itself_is_accepted(pair: tuple[PorterSocket, socket.socket]) -> None:
    client, peer = pair
    peer.sendall(frame(b"m" * 4096) + struct.pack("!I", 4097))
    assert client.recv_frame() == b"m" * 4096
    with pytest.raises(FrameTooLarge):
        client.recv_frame()


def test_sending_over_the_maximum_sends_nothing(pair: tuple[PorterSocket, socket.socket]) -> None:
    client, peer = pair
    client.set_limits(4096, max_send_len=10)
    with pytest.raises(FrameTooLarge) as caught:
        client.send_text("eleven char")
    assert (caught.value.length, caught.value.maximum) == (11, 10)
    client.send_text("ten chars!")
    assert peer.recv(100) == frame(b"ten chars!")


def test_invalid_utf8_is_an_error_never_replaced_and_the_stream_stays_in_step(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, peer = pair
    peer.sendall(frame(b"ok \xff\xfe") + frame(b"next"))
    with pytest.raises(InvalidUtf8) as caught:
        client.recv_text()
    assert caught.value.position == 3
    assert caught.value.code == "invalid_message"
    assert client.recv_text() == "next"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'["bye"]',
        b'"a string"',
        b"{}",
        b'{"type": 3}',
        b'{"type": "say", "n": NaN}',
        b"\xc3\x28",
    ],
)
def test_a_frame_that_is_not_a_message_is_invalid(
    pair: tuple[PorterSocket, socket.socket], payload: bytes
) -> None:
    client, peer = pair
    peer.sendall(frame(payload) + frame(b'{"type":"after"}'))
    with pytest.raises(InvalidMessage):
        client.recv_message()
    assert client.recv_message() == {"type": "after"}


def test_sending_a_message_without_a_string_type_is_refused(
    pair: tuple[PorterSocket, socket.socket],
) -> None:
    client, _ = pair
    with pytest.raises(InvalidMessage):
        client.send_message({"text": "no type"})
    with pytest.raises(InvalidMessage):
        client.send_message({"type": "say", "n": float("nan")})


def test_a_timeout_inside_a_frame_loses_nothing(pair: tuple[PorterSocket, socket.socket]) -> None:
    client, peer = pair
    client.settimeout(0.05)
    peer.sendall(struct.pack("!I", 6) + b"hal")
    with pytest.raises(socket.timeout):
        client.recv_frame()
    peer.sendall(b"ves")
    client.settimeout(LIMIT)
    assert client.recv_frame() == b"halves"


def test_porter_socket_is_a_socket_that_connects_like_one() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with PorterSocket() as sock:
            assert isinstance(sock, socket.socket)
            sock.settimeout(LIMIT)
            sock.connect(("127.0.0.1", port))
            conn, _ = listener.accept()
            with conn:
                conn.sendall(frame(b'{"type":"welcome"}'))
                assert sock.recv_message() == {"type": "welcome"}


# --- through connect(): a fake server on a real TCP port -------------------

WELCOME = b'{"type":"welcome","server":"fake/0","protocol":1,"auth":"none"}'


def fake_server(then: bytes) -> tuple[int, threading.Thread]:
    """A server that sends ``welcome``, reads the ``hello``, sends ``then``
    and closes; returns its port and its thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(LIMIT)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(LIMIT)
                conn.sendall(frame(WELCOME))
                peer = PorterSocket.from_socket(conn.dup())
                assert peer.recv_message() is not None  # the hello
                peer.close()
                conn.sendall(then)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_connect_reports_a_server_that_closes_inside_a_frame() -> None:
    port, thread = fake_server(struct.pack("!I", 50) + b'{"type":"rea')
    with pytest.raises(TruncatedFrame) as caught:
        connect("127.0.0.1", port, timeout=LIMIT)
    assert (caught.value.part, caught.value.got, caught.value.expected) == ("payload", 12, 50)
    thread.join(LIMIT)


def test_connect_refuses_an_oversized_header_without_reading_on() -> None:
    # No payload follows the header: reading it would wait for the timeout.
    port, thread = fake_server(struct.pack("!I", 0x7FFF_FFFF))
    with pytest.raises(FrameTooLarge) as caught:
        connect("127.0.0.1", port, timeout=LIMIT, max_frame_len=1024)
    assert caught.value.maximum == 1024
    thread.join(LIMIT)
