"""Frames, texts and messages on a socket: the lab's task 7, as a subclass.

::

    +----------------------------+---------------------+
    | length: u32, big-endian    | payload: length     |
    | (4 bytes, network order)   | bytes               |
    +----------------------------+---------------------+

:class:`PorterSocket` is a :class:`socket.socket` with ``send_frame`` /
``recv_frame``, ``send_text`` / ``recv_text`` and ``send_message`` /
``recv_message``, with the semantics of the Rust crate ``porter-wire``:

- a frame of length 0 is a keep-alive: ``recv_frame`` returns ``b""``,
  ``recv_text`` returns ``""``, ``recv_message`` skips it;
- the receive methods return ``None`` when the peer closed the stream
  cleanly between two frames, and raise :class:`TruncatedFrame` when it
  closed inside one;
- a header announcing more than ``max_frame_len`` raises
  :class:`FrameTooLarge` as soon as its 4 bytes are in, before any payload
  byte is read and before any buffer is sized from it;
- a text that is not UTF-8 raises :class:`InvalidUtf8`; nothing is ever
  decoded lossily;
- a message is one JSON object with a string ``type``; anything else raises
  :class:`InvalidMessage`.

Reads take exactly the bytes of the frame being read, never more, so the
socket can go on being used with plain ``recv`` afterwards. A timeout
(``settimeout``) in the middle of a frame is safe: the bytes already read
are kept, and the next call goes on where the last one stopped.

:class:`PorterSSLSocket` is the same over TLS; :func:`porter_client.connect`
makes one with ``ssl.SSLContext.sslsocket_class``.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
from typing import Any, Optional

from porter_client.errors import FrameTooLarge, InvalidMessage, InvalidUtf8, TruncatedFrame

#: Size of the length header in bytes.
HEADER_LEN = 4

#: Default maximum payload length, in both directions: 64 KiB, the server's
#: default (``porter serve --max-frame-len``) and ``porter_wire``'s.
DEFAULT_MAX_FRAME_LEN = 65_536

#: The largest maximum a 4-byte header can express.
MAX_FRAME_LEN_LIMIT = 0xFFFF_FFFF

#: Bytes asked of the socket at once while a payload arrives: the buffer
#: grows with what arrives, never with what a header claims.
_READ_CHUNK = 64 * 1024

_HEADER = struct.Struct("!I")


class PorterSocket(socket.socket):
    """A socket that speaks Porter frames. Use it as any socket::

        with PorterSocket() as sock:
            sock.connect(("127.0.0.1", 9090))
            welcome = sock.recv_message()
            sock.send_message({"type": "hello"})

    ``max_frame_len`` is the largest payload accepted; ``max_send_len`` the
    largest sent (by default the same), so that a frame the peer would refuse
    is refused here, before anything is written.
    """

    #: Largest payload :meth:`recv_frame` accepts.
    max_frame_len: int = DEFAULT_MAX_FRAME_LEN
    #: Largest payload :meth:`send_frame` sends; ``None``: ``max_frame_len``.
    max_send_len: Optional[int] = None

    def __init__(
        self,
        family: int = -1,
        type: int = -1,
        proto: int = -1,
        fileno: Optional[int] = None,
        *,
        max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
        max_send_len: Optional[int] = None,
    ) -> None:
        super().__init__(family, type, proto, fileno)
        self.set_limits(max_frame_len, max_send_len)

    @classmethod
    def from_socket(
        cls,
        sock: socket.socket,
        *,
        max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
        max_send_len: Optional[int] = None,
    ) -> PorterSocket:
        """Takes over a connected plain socket (from ``socket.create_connection``
        or ``accept``), keeping its timeout. ``sock`` is detached and must not
        be used afterwards."""
        timeout = sock.gettimeout()
        new = cls(
            sock.family,
            sock.type,
            sock.proto,
            fileno=sock.detach(),
            max_frame_len=max_frame_len,
            max_send_len=max_send_len,
        )
        # A socket made from a file descriptor takes the default timeout, and
        # the descriptor may still be non-blocking from create_connection:
        # settimeout puts both in agreement.
        new.settimeout(timeout)
        return new

    def set_limits(self, max_frame_len: int, max_send_len: Optional[int] = None) -> None:
        """Sets the largest payload received and sent (``None``: the same)."""
        for name, value in (("max_frame_len", max_frame_len), ("max_send_len", max_send_len)):
            if value is not None and not 0 <= value <= MAX_FRAME_LEN_LIMIT:
                raise ValueError(f"{name} must be between 0 and {MAX_FRAME_LEN_LIMIT}")
        self.max_frame_len = max_frame_len
        self.max_send_len = max_send_len

    # --- receiving ----------------------------------------------------------

    def recv_frame(self) -> Optional[bytes]:
        """Receives one frame's payload; ``b""`` is a keep-alive.

        Returns ``None`` when the peer closed cleanly between two frames.

        Raises :class:`FrameTooLarge` (nothing past the header is read),
        :class:`TruncatedFrame`, and ``OSError`` (``TimeoutError`` included:
        the frame can be received by calling again).
        """
        pending = self._pending()
        if len(pending) < HEADER_LEN and not self._fill(pending, HEADER_LEN):
            if not pending:
                return None
            raise TruncatedFrame("header", len(pending), HEADER_LEN)
        (length,) = _HEADER.unpack_from(pending)
        if length > self.max_frame_len:
            raise FrameTooLarge(length, self.max_frame_len)
        if not self._fill(pending, HEADER_LEN + length):
            raise TruncatedFrame("payload", len(pending) - HEADER_LEN, length)
        payload = bytes(pending[HEADER_LEN:])
        pending.clear()
        return payload

    def recv_text(self) -> Optional[str]:
        """Receives one frame as UTF-8 text; ``""`` is a keep-alive.

        Raises as :meth:`recv_frame`, plus :class:`InvalidUtf8`.
        """
        payload = self.recv_frame()
        if payload is None:
            return None
        return decode_text(payload)

    def recv_message(self) -> Optional[dict[str, Any]]:
        """Receives the next message (a JSON object with a string ``type``),
        skipping keep-alives.

        Raises as :meth:`recv_text`, plus :class:`InvalidMessage`.
        """
        while True:
            payload = self.recv_frame()
            if payload is None:
                return None
            if payload:
                return decode_message(payload)

    # --- sending ------------------------------------------------------------

    def send_frame(self, payload: bytes) -> None:
        """Sends one frame, header and payload in one ``sendall``. An empty
        payload is a keep-alive.

        Raises :class:`FrameTooLarge` (nothing is sent) and ``OSError``.
        """
        limit = self.max_frame_len if self.max_send_len is None else self.max_send_len
        if len(payload) > limit:
            raise FrameTooLarge(len(payload), limit)
        self.sendall(_HEADER.pack(len(payload)) + payload)

    def send_text(self, text: str) -> None:
        """Sends ``text`` as one UTF-8 frame. Raises as :meth:`send_frame`."""
        self.send_frame(text.encode("utf-8"))

    def send_message(self, message: dict[str, Any]) -> None:
        """Sends ``message`` as one compact JSON frame.

        Raises :class:`InvalidMessage` when it has no string ``type`` or is
        not JSON (NaN included), and as :meth:`send_frame`.
        """
        self.send_frame(encode_message(message))

    # --- internals ----------------------------------------------------------

    def _pending(self) -> bytearray:
        """The bytes of the frame being read: kept across a timeout."""
        # Set lazily: an SSL socket is made without calling __init__.
        try:
            return self._porter_pending
        except AttributeError:
            self._porter_pending = bytearray()
            return self._porter_pending

    def _fill(self, buf: bytearray, size: int) -> bool:
        """Reads until ``buf`` holds ``size`` bytes; ``False`` if the stream
        ends first. Never reads past ``size``."""
        while len(buf) < size:
            chunk = self.recv(min(size - len(buf), _READ_CHUNK))
            if not chunk:
                return False
            buf += chunk
        return True

    _porter_pending: bytearray


class PorterSSLSocket(PorterSocket, ssl.SSLSocket):
    """A :class:`PorterSocket` over TLS. Made by an ``ssl.SSLContext`` whose
    ``sslsocket_class`` is this class, never directly; set the limits with
    :meth:`set_limits` after wrapping."""


def decode_text(payload: bytes) -> str:
    """``payload`` as UTF-8; raises :class:`InvalidUtf8`, never replaces."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidUtf8(err) from None


def decode_message(payload: bytes) -> dict[str, Any]:
    """Decodes one message: a JSON object (RFC 8259) with a string ``type``.

    Raises :class:`InvalidUtf8` and :class:`InvalidMessage`.
    """
    text = decode_text(payload)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as err:  # json.JSONDecodeError is a ValueError
        raise InvalidMessage(f"invalid message: {err}") from None
    if not isinstance(value, dict):
        raise InvalidMessage("invalid message: a message must be a JSON object")
    if not isinstance(value.get("type"), str):
        raise InvalidMessage("invalid message: no string field `type`")
    return value


def encode_message(message: dict[str, Any]) -> bytes:
    """``message`` as compact UTF-8 JSON. Raises :class:`InvalidMessage`."""
    if not isinstance(message.get("type"), str):
        raise InvalidMessage("invalid message: no string field `type`")
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        # A lone surrogate ("\ud800") cannot be UTF-8: UnicodeEncodeError.
        return text.encode("utf-8")
    except (TypeError, ValueError) as err:
        raise InvalidMessage(f"invalid message: {err}") from None


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; RFC 8259 (and the server) do not.
    raise ValueError(f"{name} is not JSON")
