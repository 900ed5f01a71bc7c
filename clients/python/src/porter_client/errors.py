"""Every way talking to a Porter server can fail, as one exception family.

Programs branch on the exception's type or on ``code``; ``str(error)`` is
for people. ``code`` is the protocol's error code (PROTOCOL.md section 5)
when there is one: the code the server sent, or the code the server would
send for the same fault (``frame_too_large``, ``invalid_message``). It is
``None`` for faults the protocol has no code for (a truncated frame, a
certificate that does not match).

No exception here ever carries an answer, a password or a token.
"""

from __future__ import annotations

from typing import Optional

from porter_client.text import printable

#: Error codes after which the server closes the connection (section 5).
CLOSING_CODES = frozenset({"frame_too_large", "rate_limited", "timeout", "busy", "revoked"})


class PorterError(Exception):
    """Base class of every error this package raises on purpose."""

    #: The protocol's error code, when the fault has one.
    code: Optional[str] = None


# --- Frames and messages: the wire layer -----------------------------------


class FrameError(PorterError):
    """A frame could not be read or written; the stream is unusable after it."""


class FrameTooLarge(FrameError):
    """A header announced (or a caller tried to send) more than the maximum.

    Raised on the header alone: no payload byte was read, and no buffer was
    sized from ``length``.
    """

    code = "frame_too_large"

    def __init__(self, length: int, maximum: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the maximum of {maximum} bytes")
        #: The length that was announced or requested.
        self.length = length
        #: The maximum payload length in force.
        self.maximum = maximum


class TruncatedFrame(FrameError):
    """The peer closed the stream inside a frame's header or payload."""

    def __init__(self, part: str, got: int, expected: int) -> None:
        super().__init__(
            f"truncated frame: stream ended inside the {part} after {got} of {expected} bytes"
        )
        #: ``"header"`` or ``"payload"``.
        self.part = part
        #: Bytes of that part that did arrive.
        self.got = got
        #: Bytes that part should have had.
        self.expected = expected


class InvalidMessage(PorterError):
    """A frame is not a message of the protocol: not JSON, not an object,
    no string ``type``, or a known type with missing or mistyped fields.

    Unlike the frame errors, the stream is still in step after it: the whole
    frame was read.
    """

    code = "invalid_message"


class InvalidUtf8(InvalidMessage):
    """A text frame's payload is not valid UTF-8. It is never decoded lossily."""

    def __init__(self, reason: UnicodeDecodeError) -> None:
        super().__init__(
            f"frame payload is not valid UTF-8: {reason.reason} at byte {reason.start}"
        )
        #: Offset of the first invalid byte.
        self.position = reason.start


# --- The server's refusals and endings -------------------------------------


class ServerError(PorterError):
    """An ``error`` message: the server refused something the client did."""

    def __init__(self, code: str, text: str) -> None:
        label = "server error" if code == "unavailable" else "refused"
        super().__init__(f"{label}: {printable(text)} ({printable(code)})")
        self.code: str = code
        #: The server's explanation, for people (unescaped: neutralise it with
        #: :func:`porter_client.printable` before showing it).
        self.text = text

    @property
    def ends_connection(self) -> bool:
        """Whether the server closes the connection right after this error."""
        return self.code in CLOSING_CODES


class ConnectionEnded(PorterError):
    """The server said ``bye`` or closed the connection while we waited.

    ``error`` is the ``error`` it sent right before (``busy``, ``timeout``,
    ``rate_limited``, ``revoked``...), and ``code`` is that error's code.
    """

    def __init__(self, bye: Optional[str], error: Optional[ServerError]) -> None:
        if error is not None and bye is not None and bye != error.text:
            message = f"{error}; {printable(bye)}"
        elif error is not None:
            message = str(error)
        elif bye is not None:
            message = f"the server ended the conversation: {printable(bye)}"
        else:
            message = "the server closed the connection"
        super().__init__(message)
        #: The text of the server's ``bye``, or ``None`` when it just closed.
        self.bye = bye
        #: The last error before the end, if any.
        self.error = error
        self.code = error.code if error is not None else None


class ProtocolViolation(PorterError):
    """The server broke the dialogue (no ``welcome`` first, for example)."""


class UnansweredAsk(PorterError):
    """The server asked something this client has no answer for.

    For example ``ask {id: "password"}`` when no ``password`` was given to
    :func:`porter_client.connect`. ``id`` and ``text`` say what was asked.
    """

    def __init__(self, ask_id: str, text: str) -> None:
        super().__init__(
            f"the server asked {printable(text)!r} (id {printable(ask_id)!r}) "
            "and no answer was given for it"
        )
        self.id = ask_id
        self.text = text


# --- Transport security -----------------------------------------------------


class TlsError(PorterError):
    """The server could not be trusted; nothing was sent to it."""


class FingerprintMismatch(TlsError):
    """The server's certificate is not the one pinned. Nothing was sent to it.

    Either the server got a new certificate, or someone is in between: ask
    the server's operator (``porter fingerprint``) before trusting ``got``.
    """

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(
            "the server's certificate fingerprint does not match: "
            f"expected {expected}, got {got}; nothing was sent. If the server's "
            "certificate changed on purpose, its operator can confirm the new one "
            "with `porter fingerprint`"
        )
        self.expected = expected
        self.got = got


class UnverifiedServer(TlsError):
    """TLS without a fingerprint to pin, a CA file, or an explicit
    ``trust_on_first_use=True``. Nothing was sent to the server.

    ``fingerprint`` is the certificate's fingerprint, to show to a person who
    can compare it with what the server's operator says, and pass as
    ``fingerprint=`` next time.
    """

    def __init__(self, fingerprint: str) -> None:
        super().__init__(
            f"the server's certificate is not verified; its fingerprint is {fingerprint}. "
            "Check it with the server's operator (`porter fingerprint`) and pass it as "
            "fingerprint=..., or pass trust_on_first_use=True to accept it unchecked"
        )
        self.fingerprint = fingerprint
