"""``python -m porter_client HOST [PORT]``: a minimal line client.

Lines typed are said to the room; ``/who``, ``/msg NAME TEXT``, ``/quit``
and ``/help`` are commands (``//text`` says ``/text``). What arrives is
printed with control characters neutralised (PROTOCOL.md §2), so no one in
the room can drive this terminal or forge a line from someone else.

The password comes from ``PORTER_PASSWORD`` or is asked without echo; any
other question the server asks is asked here. Over TLS without
``--fingerprint``, the server's fingerprint is shown and, at a terminal,
the person is asked whether to trust it (the way SSH does); elsewhere the
client refuses.

It waits on the socket and standard input with ``select``, in one thread:
POSIX only.
"""

from __future__ import annotations

import argparse
import getpass
import io
import os
import select
import ssl
import sys
from typing import Optional, TextIO

from porter_client.errors import FrameTooLarge, PorterError, UnverifiedServer
from porter_client.messages import (
    Ask,
    Bye,
    ErrorMessage,
    Event,
    Recovered,
    Say,
    ServerMessage,
    Who,
)
from porter_client.session import Session, __version__, connect
from porter_client.text import printable, printable_lines

DEFAULT_PORT = 9090

HELP = """commands:
  /who            who is in the room
  /msg NAME TEXT  a private line for NAME alone
  /quit           leave (so does Ctrl-D)
  /help           this list
  //TEXT          say "/TEXT"
anything else is said to the room"""


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the client; returns the exit status."""
    args = parse_args(argv)
    # Lines must reach a pipe as they come, not when a buffer fills.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    try:
        session = open_session(args)
    except KeyboardInterrupt:
        return 130
    except EOFError:
        # Ctrl-D at a question: the person chose to leave.
        print(file=sys.stderr)
        return 1
    except (PorterError, OSError) as err:
        print(f"porter_client: {err}", file=sys.stderr)
        return 1
    with session:
        for greeting in session.greetings:
            show(greeting, sys.stdout)
        try:
            return converse(session)
        except KeyboardInterrupt:
            return 130
        except (PorterError, OSError) as err:
            print(f"porter_client: {err}", file=sys.stderr)
            return 1


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m porter_client",
        description="Talk to a Porter server, one line at a time.",
        epilog="The password is read from PORTER_PASSWORD, or asked without echo.",
    )
    parser.add_argument("host", help="the server's address or name")
    parser.add_argument(
        "port", nargs="?", type=port_number, default=DEFAULT_PORT, help="default: %(default)s"
    )
    parser.add_argument("--user", help="user name (auth password) or chat name (auth ip)")
    parser.add_argument("--tls", action="store_true", help="speak TLS")
    parser.add_argument(
        "--fingerprint",
        metavar="SHA256:...",
        help="the server's certificate fingerprint (porter fingerprint); implies --tls",
    )
    parser.add_argument("--version", action="version", version=f"porter_client {__version__}")
    return parser.parse_args(argv)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def open_session(args: argparse.Namespace) -> Session:
    password = os.environ.get("PORTER_PASSWORD") or None

    def attempt(fingerprint: Optional[str]) -> Session:
        return connect(
            args.host,
            args.port,
            user=args.user,
            password=password,
            tls=args.tls,
            fingerprint=fingerprint,
            ask=ask_person,
        )

    try:
        return attempt(args.fingerprint)
    except UnverifiedServer as err:
        if not sys.stdin.isatty():
            raise
        # Trust on first use, as SSH does: show it, ask, and pin what was
        # shown for the real connection.
        print(f"The server's certificate fingerprint is {err.fingerprint}.", file=sys.stderr)
        print("Compare it with what its operator says (porter fingerprint).", file=sys.stderr)
        if input("Trust it and connect? [y/N] ").strip().lower() not in ("y", "yes"):
            raise
        print(f"Next time: --fingerprint {err.fingerprint}", file=sys.stderr)
        return attempt(err.fingerprint)


def ask_person(ask: Ask) -> str:
    """Asks a person what the server asks, hiding secrets."""
    if ask.error is not None:
        print(ask.error, file=sys.stderr)
    prompt = printable(ask.text) + " "
    if ask.secret:
        return getpass.getpass(prompt)
    return input(prompt)


def converse(session: Session) -> int:
    """Relays stdin to the session and the session to stdout until either
    ends; returns the exit status."""
    sock = session.socket
    stdin = sys.stdin.fileno()
    typed = b""
    while True:
        if session.has_buffered() or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            ready: list[object] = [sock]
        else:
            ready, _, _ = select.select([sock, stdin], [], [])
        if sock in ready:
            message = session.recv()
            if message is None:
                print("the server closed the connection", file=sys.stderr)
                return 0
            show(message, sys.stdout)
            if isinstance(message, Bye):
                return 0
        if stdin in ready:
            data = os.read(stdin, 4096)
            if not data:
                return 0
            typed += data
            while b"\n" in typed:
                raw, typed = typed.split(b"\n", 1)
                if not run_line(session, raw.rstrip(b"\r")):
                    return 0


def run_line(session: Session, raw: bytes) -> bool:
    """Acts on one typed line; ``False`` to leave."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        print("that line is not UTF-8; not sent", file=sys.stderr)
        return True
    if not line.strip():
        return True
    try:
        if line.startswith("//"):
            session.say(line[1:])
        elif line.startswith("/"):
            return run_command(session, line)
        else:
            session.say(line)
    except FrameTooLarge as err:
        print(f"that line is too long ({err}); not sent", file=sys.stderr)
    return True


def run_command(session: Session, line: str) -> bool:
    words = line.split(maxsplit=2)
    command = words[0]
    if command == "/quit":
        return False
    if command == "/who":
        users = session.who()
        shown = ", ".join(printable(user) for user in users)
        print(f"in the room ({len(users)}): {shown}")
    elif command == "/msg" and len(words) == 3:
        session.private(words[1], words[2])
    else:
        print(HELP)
    return True


def show(message: ServerMessage, out: TextIO) -> None:
    """Prints one message for a person, neutralised."""
    if isinstance(message, Say):
        tags = ("[history] " if message.replay else "") + ("[private] " if message.to else "")
        sender = printable(message.sender)
        print(f"{tags}{sender}: {printable_lines(message.text)}", file=out)
    elif isinstance(message, Event):
        arrow = "-->" if message.kind == "joined" else "<--"
        print(f"{arrow} {printable(message.user)} {printable(message.kind)}", file=out)
    elif isinstance(message, Who):
        shown = ", ".join(printable(user) for user in message.users)
        print(f"in the room ({len(message.users)}): {shown}", file=out)
    elif isinstance(message, ErrorMessage):
        print(message.exception(), file=sys.stderr)
    elif isinstance(message, Bye):
        print(f"the server ended the conversation: {printable(message.text)}", file=out)
    elif isinstance(message, Recovered) and not message.complete:
        print(f"({message.missed} earlier lines are no longer available)", file=out)


if __name__ == "__main__":
    sys.exit(main())
