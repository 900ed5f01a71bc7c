"""A conversation with a Porter server: :func:`connect` and :class:`Session`.

:func:`connect` opens the connection (TLS if asked, checked before anything
is sent), runs the handshake of PROTOCOL.md section 4 for whichever auth
mode the server announces, and returns a :class:`Session` once the server
says ``ready``.

The handshake is driven by the server: it asks, by ``id``, what it needs.
Every ``ask`` is answered generically: the ids this package knows are
answered from ``user`` and ``password``::

    name, user                              -> user
    password, new_password, repeat_password -> password

and any other id (or a known one with no value given) goes to the ``ask``
callback if there is one, else raises :class:`UnansweredAsk`. When the
server refuses an answer (a wrong password, a name that is taken) and asks
again, a given value is not sent a second time: the refusal is raised as a
:class:`ServerError` with its ``code``, or handed to the ``ask`` callback as
``Ask.error`` so that a person can try again.
"""

from __future__ import annotations

import collections
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Callable, Optional

from porter_client.errors import (
    ConnectionEnded,
    PorterError,
    ProtocolViolation,
    ServerError,
    UnansweredAsk,
)
from porter_client.framing import DEFAULT_MAX_FRAME_LEN, PorterSocket
from porter_client.messages import (
    Ask,
    Bye,
    ErrorMessage,
    Ready,
    Say,
    ServerMessage,
    SessionToken,
    Welcome,
    Who,
    parse_server_message,
)
from porter_client.tls import check_trust_options, establish

__version__ = "0.1.0"

#: The ``client`` field of our ``hello``.
CLIENT_NAME = f"porter-client-python/{__version__}"

#: Largest frame accepted from a server: more than the server's own maximum
#: (64 KiB) on purpose, as the Rust client does, since a chat line just under
#: the server's limit comes back with ``from`` and JSON around it.
DEFAULT_MAX_INCOMING_FRAME_LEN = 1024 * 1024

#: Largest frame sent: the server's default maximum, so that a line the
#: server would refuse (closing the connection) is refused here instead.
DEFAULT_MAX_OUTGOING_FRAME_LEN = DEFAULT_MAX_FRAME_LEN

#: Seconds allowed for connecting and for each wait of the handshake; the
#: server's own handshake limit is 30 s.
DEFAULT_TIMEOUT = 30.0

#: Ask ids answered with the user name, and with the password.
_USER_IDS = frozenset({"name", "user"})
_PASSWORD_IDS = frozenset({"password", "new_password", "repeat_password"})

#: Answers an ``ask`` the given values do not cover (see the module docs).
AskCallback = Callable[[Ask], str]


class Session:
    """A conversation after ``ready``. Made by :func:`connect`.

    Iterating over a session yields every message the server sends
    (:class:`~porter_client.messages.Say`, ``Event``, ``Who``, ``Error``
    messages that leave the connection open, ``Bye``...) until it closes;
    messages of types this version does not know are skipped. Use it as a
    context manager to leave politely (``bye``) whatever happens.

    Not thread-safe: one thread talks to a session at a time.
    """

    def __init__(
        self,
        sock: PorterSocket,
        *,
        welcome: Welcome,
        user: str,
        token: Optional[str],
        expires_at: Optional[str],
        resumed: bool,
        greetings: list[Say],
        fingerprint: Optional[str],
    ) -> None:
        self._sock = sock
        #: Messages received while waiting for something else (``who``).
        self._inbox: collections.deque[ServerMessage] = collections.deque()
        self._closed = False
        #: The server's name and version, from ``welcome``.
        self.server = welcome.server
        #: How the server identifies clients: ``none``, ``ip`` or ``password``.
        self.auth = welcome.auth
        #: The name this client is known by, from ``ready``.
        self.user = user
        #: The session token to present next time (``connect(token=...)``),
        #: or ``None`` without one. Keep it like a password.
        self.token = token
        #: When ``token`` stops working (RFC 3339), if the server said.
        self.expires_at = expires_at
        #: Whether the given token was accepted (no password was needed).
        self.resumed = resumed
        #: The server's ``say`` lines of the handshake ("Welcome back, ada!").
        self.greetings = greetings
        #: The fingerprint of the server's certificate, over TLS.
        self.fingerprint = fingerprint

    def __repr__(self) -> str:
        return f"<Session user={self.user!r} server={self.server!r} closed={self._closed}>"

    @property
    def socket(self) -> PorterSocket:
        """The framed socket underneath, for what this class does not offer."""
        return self._sock

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`logout`) has run."""
        return self._closed

    # --- sending ------------------------------------------------------------

    def say(self, text: str) -> None:
        """Sends a line: to the room (``chat``) or to be echoed (``echo``)."""
        self._send({"type": "say", "text": text})

    def private(self, to: str, text: str) -> None:
        """Sends a line to the participant called ``to`` alone (chat, 1.1).

        When no one of that name is in the room, an ``error`` with code
        ``unknown_user`` arrives later among the incoming messages.
        """
        self._send({"type": "say", "text": text, "to": to})

    def keep_alive(self) -> None:
        """Sends a keep-alive frame, which resets the server's idle timer."""
        self._sock.send_frame(b"")

    def who(self, timeout: Optional[float] = None) -> list[str]:
        """Asks who is in the chat room and waits for the answer.

        Messages arriving meanwhile are kept, in order, for iteration.

        Raises :class:`ServerError` (``unexpected`` on an echo server) and
        :class:`ConnectionEnded`.
        """
        self._send({"type": "who"})
        last_error: Optional[ServerError] = None
        while True:
            message = self._read(timeout)
            if message is None:
                raise ConnectionEnded(None, last_error)
            if isinstance(message, Who):
                return list(message.users)
            if isinstance(message, ErrorMessage):
                if message.code in ("unexpected", "unknown_type"):
                    raise message.exception()
                last_error = message.exception()
            if isinstance(message, Bye):
                self._inbox.append(message)
                raise ConnectionEnded(message.text, last_error)
            self._inbox.append(message)

    def logout(self, timeout: Optional[float] = None) -> Optional[str]:
        """Revokes the session's token and ends the conversation.

        Returns the text of the server's ``bye``. Messages that arrive before
        it stay readable by iteration.

        Raises :class:`ServerError` (``unexpected``: there is no session to
        revoke, as with ``auth: none`` or ``ip``; the conversation goes on).
        """
        self._send({"type": "logout"})
        while True:
            message = self._read(timeout)
            if message is None:
                self._close_socket()
                return None
            if isinstance(message, Bye):
                self._close_socket()
                self.token = None
                return message.text
            if isinstance(message, ErrorMessage) and message.code == "unexpected":
                raise message.exception()
            self._inbox.append(message)

    def close(self) -> None:
        """Leaves: sends ``bye`` (if the connection still works) and closes.
        Idempotent."""
        if self._closed:
            return
        # If the server is already gone, there is no one to tell.
        with contextlib.suppress(OSError):
            self._sock.send_message({"type": "bye"})
        self._close_socket()

    # --- receiving ----------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Optional[ServerMessage]:
        """The next message, or ``None`` once the server has closed.

        ``timeout`` in seconds (``None``: wait as long as it takes) raises
        ``socket.timeout`` when it passes; a frame half-received then is
        kept, and the next call goes on with it.

        Raises :class:`~porter_client.errors.FrameError` and
        :class:`~porter_client.errors.InvalidMessage`.
        """
        if self._inbox:
            return self._inbox.popleft()
        return self._read(timeout)

    def has_buffered(self) -> bool:
        """Whether :meth:`recv` has a message at hand without reading the
        socket (one kept while :meth:`who` waited). A caller that waits on
        the socket with ``select`` checks this first."""
        return bool(self._inbox)

    def __iter__(self) -> Iterator[ServerMessage]:
        while True:
            message = self.recv()
            if message is None:
                return
            yield message

    # --- context manager ----------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # --- internals ----------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._closed:
            raise OSError("the session is closed")
        self._sock.send_message(message)

    def _read(self, timeout: Optional[float]) -> Optional[ServerMessage]:
        if self._closed:
            return None
        self._sock.settimeout(timeout)
        while True:
            obj = self._sock.recv_message()
            if obj is None:
                return None
            message = parse_server_message(obj)
            if message is not None:
                return message

    def _close_socket(self) -> None:
        self._closed = True
        self._sock.close()


def connect(
    host: str,
    port: int,
    *,
    user: Optional[str] = None,
    password: Optional[str] = None,
    token: Optional[str] = None,
    tls: bool = False,
    fingerprint: Optional[str] = None,
    cafile: Optional[str] = None,
    trust_on_first_use: bool = False,
    since: Optional[int] = None,
    ask: Optional[AskCallback] = None,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    max_frame_len: int = DEFAULT_MAX_INCOMING_FRAME_LEN,
    client: str = CLIENT_NAME,
) -> Session:
    """Connects to a Porter server and runs the handshake up to ``ready``.

    - ``user`` answers the ``name`` (``auth: ip``) and ``user`` questions,
      ``password`` the ``password`` ones (also when registering, asked
      twice); ``auth: none`` needs neither.
    - ``token`` (from a previous ``Session.token``) resumes a session: no
      password is asked. An invalid one is not fatal: the handshake goes on
      with ``user`` and ``password`` when given.
    - ``tls=True`` speaks TLS; the server must then be trusted in exactly
      one way: ``fingerprint="SHA256:..."`` (pinned, checked before anything
      is sent), ``cafile=`` (certificate authority and host name), or an
      explicit ``trust_on_first_use=True`` (see :mod:`porter_client.tls`).
      ``fingerprint`` or ``cafile`` alone imply ``tls=True``.
    - ``since`` (1.1) is the last room ``seq`` seen: the lines after it are
      replayed after ``ready``, followed by a ``Recovered`` message.
    - ``ask`` answers what ``user`` and ``password`` do not (and, with the
      error, what the server refused).
    - ``timeout`` bounds connecting and each wait of the handshake; the
      session then waits without limit unless ``recv`` is given one.

    Raises :class:`ServerError` (``bad_credentials``, ``invalid_answer``...),
    :class:`ConnectionEnded` (``busy``, ``rate_limited``, ``timeout``...),
    :class:`UnansweredAsk`, the :class:`~porter_client.errors.TlsError`\\ s,
    the frame errors, and ``OSError`` for the network.
    """
    use_tls = tls or fingerprint is not None or cafile is not None
    if use_tls:
        # Before connecting: a mistake in the options costs no connection.
        check_trust_options(fingerprint, cafile, trust_on_first_use)
    raw = socket.create_connection((host, port), timeout=timeout)
    sock: PorterSocket
    server_fingerprint: Optional[str] = None
    if use_tls:
        sock, server_fingerprint = establish(
            raw,
            host,
            fingerprint=fingerprint,
            cafile=cafile,
            trust_on_first_use=trust_on_first_use,
        )
        sock.set_limits(max_frame_len, DEFAULT_MAX_OUTGOING_FRAME_LEN)
    else:
        sock = PorterSocket.from_socket(
            raw, max_frame_len=max_frame_len, max_send_len=DEFAULT_MAX_OUTGOING_FRAME_LEN
        )
    handshake = _Handshake(sock, user=user, password=password, token=token, ask=ask)
    try:
        session = handshake.run(client=client, since=since, fingerprint=server_fingerprint)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return session


class _Handshake:
    """The client side of PROTOCOL.md section 4, from ``welcome`` to
    ``ready``."""

    def __init__(
        self,
        sock: PorterSocket,
        *,
        user: Optional[str],
        password: Optional[str],
        token: Optional[str],
        ask: Optional[AskCallback],
    ) -> None:
        self.sock = sock
        self.user = user
        self.password = password
        self.token = token
        self.ask = ask
        #: The last error, told in the ending if the server closes after it.
        self.last_error: Optional[ServerError] = None
        #: A refusal of our last answer, for the next question.
        self.refused: Optional[ServerError] = None
        #: The refusal of our token, when one was given and refused.
        self.token_error: Optional[ServerError] = None

    def run(self, *, client: str, since: Optional[int], fingerprint: Optional[str]) -> Session:
        welcome: Optional[Welcome] = None
        greetings: list[Say] = []
        token: Optional[str] = None
        expires_at: Optional[str] = None
        while True:
            obj = self.sock.recv_message()
            if obj is None:
                raise ConnectionEnded(None, self.last_error)
            message = parse_server_message(obj)
            if message is None:
                continue  # A type this version does not know.
            # A server at its limit may refuse with `error` at any point, and
            # `bye` ends things at any point.
            if isinstance(message, ErrorMessage):
                self.note_error(message.exception())
                continue
            if isinstance(message, Bye):
                raise ConnectionEnded(message.text, self.last_error)
            if welcome is None:
                if not isinstance(message, Welcome):
                    raise ProtocolViolation(f"expected welcome first, got {obj['type']}")
                welcome = message
                hello: dict[str, Any] = {"type": "hello", "client": client}
                if self.token is not None:
                    hello["token"] = self.token
                if since is not None:
                    hello["since"] = since
                self.send(hello)
            elif isinstance(message, Ask):
                self.send({"type": "answer", "id": message.id, "text": self.answer(message)})
                self.refused = None
            elif isinstance(message, Say):
                greetings.append(message)
            elif isinstance(message, SessionToken):
                token, expires_at = message.token, message.expires_at
            elif isinstance(message, Ready):
                resumed = self.token is not None and token is None
                return Session(
                    self.sock,
                    welcome=welcome,
                    user=message.user,
                    token=self.token if resumed else token,
                    expires_at=expires_at,
                    resumed=resumed,
                    greetings=greetings,
                    fingerprint=fingerprint,
                )
            # Anything else (a second welcome, a who) is skipped.

    def note_error(self, error: ServerError) -> None:
        self.last_error = error
        if error.code == "session_invalid":
            # Not fatal: the server goes on to ask for user and password.
            self.token_error = error
            self.token = None
        elif not error.ends_connection:
            self.refused = error

    def answer(self, ask: Ask) -> str:
        given: Optional[str] = None
        if ask.id in _USER_IDS:
            given = self.user
        elif ask.id in _PASSWORD_IDS:
            given = self.password
        if given is not None and self.refused is None:
            return given
        if self.ask is not None:
            return self.ask(
                Ask(id=ask.id, text=ask.text, secret=ask.secret, error=self.refused, raw=ask.raw)
            )
        self.leave()
        if self.refused is not None:
            raise self.refused
        if self.token_error is not None:
            # The token was the only way in we had: say why it failed.
            raise self.token_error
        raise UnansweredAsk(ask.id, ask.text)

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.sock.send_message(message)
        except OSError as err:
            # A server at its limit sends `welcome`, `error{busy}` and closes:
            # our `hello` may hit the closed socket. What it said before
            # closing explains more than "broken pipe".
            ending = self.explain_send_failure()
            if ending is None:
                raise
            raise ending from err

    def explain_send_failure(self) -> Optional[ConnectionEnded]:
        bye: Optional[str] = None
        try:
            while True:
                obj = self.sock.recv_message()
                if obj is None:
                    break
                message = parse_server_message(obj)
                if isinstance(message, ErrorMessage):
                    self.last_error = message.exception()
                elif isinstance(message, Bye):
                    bye = message.text
                    break
        except (OSError, PorterError):
            pass
        if bye is None and self.last_error is None:
            return None
        return ConnectionEnded(bye, self.last_error)

    def leave(self) -> None:
        """Tells the server we are leaving, before giving up."""
        with contextlib.suppress(OSError):
            self.sock.send_message({"type": "bye"})
