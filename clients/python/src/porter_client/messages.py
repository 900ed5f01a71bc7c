"""The messages a server sends (PROTOCOL.md section 3), as typed values.

:func:`parse_server_message` turns a decoded JSON object into one of the
frozen dataclasses below, checking the fields of the types it knows the way
the Rust crate does: a known ``type`` with a missing or mistyped field is an
:class:`~porter_client.errors.InvalidMessage`, an unknown ``type`` is
``None`` (clients skip it), and unknown fields are ignored but kept in
``raw``.

The field ``from`` of a ``say`` is ``sender`` here, ``from`` being a Python
keyword.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar, Union

from porter_client.errors import CLOSING_CODES, InvalidMessage, ServerError

_T = TypeVar("_T")


@dataclass(frozen=True)
class Welcome:
    """The first frame on every connection."""

    server: str
    protocol: int
    #: ``"none"``, ``"ip"`` or ``"password"``.
    auth: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Ask:
    """A question; the server waits for an ``answer`` with the same ``id``.

    ``error`` is set by :func:`porter_client.connect` when the server refused
    the previous answer right before asking again (a wrong password).
    """

    id: str
    text: str
    secret: bool = False
    error: Optional[ServerError] = field(default=None, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Say:
    """A line of conversation or information. In the chat room (1.1), a room
    line has ``seq`` and ``at``, a private line ``to`` and ``at``, and a line
    from history ``replay=True``."""

    text: str
    #: The wire's ``from``: who said it, ``"server"`` for the server itself.
    sender: str
    seq: Optional[int] = None
    at: Optional[str] = None
    to: Optional[str] = None
    replay: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class SessionToken:
    """A session token, to store like a cookie and present next time."""

    token: str = field(repr=False)
    user: str
    expires_at: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Ready:
    """The handshake is over; ``user`` is the name this client is known by."""

    user: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ErrorMessage:
    """An ``error``: something this client sent or did was refused."""

    code: str
    text: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ends_connection(self) -> bool:
        """Whether the server closes the connection right after it."""
        return self.code in CLOSING_CODES

    def exception(self) -> ServerError:
        """The same, as an exception to raise."""
        return ServerError(self.code, self.text)


@dataclass(frozen=True)
class Bye:
    """The server closes the connection right after this frame."""

    text: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Who:
    """(1.1) The names in the chat room now, sorted."""

    users: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Event:
    """(1.1) Someone entered (``kind == "joined"``) or left (``"left"``)."""

    kind: str
    user: str
    at: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Recovered:
    """(1.1) After the lines replayed for a ``hello`` with ``since``."""

    complete: bool
    missed: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


#: Any message a server sends.
ServerMessage = Union[
    Welcome, Ask, Say, SessionToken, Ready, ErrorMessage, Bye, Who, Event, Recovered
]


class _Fields:
    """Typed access to the fields of one message, naming what is wrong."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.type: str = obj["type"]

    def _get(self, name: str, check: Callable[[Any], bool], what: str, default: Any) -> Any:
        value = self.obj.get(name, default)
        if value is _REQUIRED:
            raise InvalidMessage(f"invalid message: `{self.type}` without `{name}`")
        if value is not default and not check(value):
            raise InvalidMessage(f"invalid message: `{name}` of `{self.type}` is not {what}")
        return value

    def text(self, name: str) -> str:
        return self._get(name, _is_str, "a string", _REQUIRED)  # type: ignore[no-any-return]

    def opt_text(self, name: str) -> Optional[str]:
        return self._get(name, _is_str, "a string", None)  # type: ignore[no-any-return]

    def number(self, name: str) -> int:
        return self._get(name, _is_uint, "a non-negative integer", _REQUIRED)  # type: ignore[no-any-return]

    def opt_number(self, name: str) -> Optional[int]:
        return self._get(name, _is_uint, "a non-negative integer", None)  # type: ignore[no-any-return]

    def flag(self, name: str, default: Optional[bool] = None) -> bool:
        fallback: Any = _REQUIRED if default is None else default
        return self._get(name, _is_bool, "a boolean", fallback)  # type: ignore[no-any-return]

    def texts(self, name: str) -> tuple[str, ...]:
        value = self._get(name, _is_str_list, "an array of strings", _REQUIRED)
        return tuple(value)


_REQUIRED: Any = object()


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_uint(value: Any) -> bool:
    # bool is an int in Python, not in JSON.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_server_message(obj: dict[str, Any]) -> Optional[ServerMessage]:
    """The typed message for a decoded JSON object, or ``None`` when its
    ``type`` is one this version does not know (clients skip those).

    Raises :class:`~porter_client.errors.InvalidMessage` when a known type
    lacks a field or has one of the wrong type.
    """
    f = _Fields(obj)
    kind = f.type
    if kind == "say":
        return Say(
            text=f.text("text"),
            sender=f.text("from"),
            seq=f.opt_number("seq"),
            at=f.opt_text("at"),
            to=f.opt_text("to"),
            replay=f.flag("replay", default=False),
            raw=obj,
        )
    if kind == "ask":
        return Ask(id=f.text("id"), text=f.text("text"), secret=f.flag("secret", False), raw=obj)
    if kind == "error":
        return ErrorMessage(code=f.text("code"), text=f.text("text"), raw=obj)
    if kind == "bye":
        return Bye(text=f.text("text"), raw=obj)
    if kind == "ready":
        return Ready(user=f.text("user"), raw=obj)
    if kind == "who":
        return Who(users=f.texts("users"), raw=obj)
    if kind == "event":
        return Event(kind=f.text("kind"), user=f.text("user"), at=f.text("at"), raw=obj)
    if kind == "session":
        return SessionToken(
            token=f.text("token"), user=f.text("user"), expires_at=f.text("expires_at"), raw=obj
        )
    if kind == "welcome":
        return Welcome(
            server=f.text("server"), protocol=f.number("protocol"), auth=f.text("auth"), raw=obj
        )
    if kind == "recovered":
        return Recovered(complete=f.flag("complete"), missed=f.number("missed"), raw=obj)
    return None
