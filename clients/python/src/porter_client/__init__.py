"""Talk to a Porter server from Python, with the standard library alone.

Two layers, usable apart:

- :class:`PorterSocket`, a :class:`socket.socket` with ``send_frame`` /
  ``recv_frame``, ``send_text`` / ``recv_text`` and ``send_message`` /
  ``recv_message``: Porter's framing (a 4-byte big-endian length, then the
  payload) and nothing else;
- :func:`connect`, which runs the whole handshake for any auth mode (over
  TLS with the server's certificate pinned, if asked) and returns a
  :class:`Session` with ``say``, ``private``, ``who``, iteration over what
  arrives, ``logout`` and ``close``.

A password-protected chat over TLS::

    import porter_client

    with porter_client.connect("chat.example", 9090, user="ada", password="...",
                               fingerprint="SHA256:...") as chat:
        chat.say("hello, all")
        for message in chat:
            print(message)

The wire contract is docs/PROTOCOL.md in the Porter repository.
"""

from porter_client.errors import (
    ConnectionEnded,
    FingerprintMismatch,
    FrameError,
    FrameTooLarge,
    InvalidMessage,
    InvalidUtf8,
    PorterError,
    ProtocolViolation,
    ServerError,
    TlsError,
    TruncatedFrame,
    UnansweredAsk,
    UnverifiedServer,
)
from porter_client.framing import DEFAULT_MAX_FRAME_LEN, PorterSocket, PorterSSLSocket
from porter_client.messages import (
    Ask,
    Bye,
    ErrorMessage,
    Event,
    Ready,
    Recovered,
    Say,
    ServerMessage,
    SessionToken,
    Welcome,
    Who,
    parse_server_message,
)
from porter_client.session import CLIENT_NAME, Session, __version__, connect
from porter_client.text import printable, printable_lines
from porter_client.tls import fingerprint_of

__all__ = [
    "CLIENT_NAME",
    "DEFAULT_MAX_FRAME_LEN",
    "Ask",
    "Bye",
    "ConnectionEnded",
    "ErrorMessage",
    "Event",
    "FingerprintMismatch",
    "FrameError",
    "FrameTooLarge",
    "InvalidMessage",
    "InvalidUtf8",
    "PorterError",
    "PorterSSLSocket",
    "PorterSocket",
    "ProtocolViolation",
    "Ready",
    "Recovered",
    "Say",
    "ServerError",
    "ServerMessage",
    "Session",
    "SessionToken",
    "TlsError",
    "TruncatedFrame",
    "UnansweredAsk",
    "UnverifiedServer",
    "Welcome",
    "Who",
    "__version__",
    "connect",
    "fingerprint_of",
    "parse_server_message",
    "printable",
    "printable_lines",
]
