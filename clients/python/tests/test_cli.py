"""``python -m porter_client``, the line client, driven through its standard
input and output."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from typing import Optional

import pytest
from conftest import LIMIT, PASSWORD, StartServer, clean_env
from fake_tls import FakeTlsServer, cert_fingerprint

from porter_client import Event, Say, Session, connect
from porter_client.messages import ServerMessage


class LineClient:
    """``python -m porter_client ARGS`` with pipes, its output read by lines."""

    def __init__(self, *args: str, password: Optional[str] = None) -> None:
        env = clean_env()
        if password is not None:
            env["PORTER_PASSWORD"] = password
        self.process = subprocess.Popen(
            [sys.executable, "-m", "porter_client", *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, wanted: str) -> list[str]:
        """Reads lines up to one containing ``wanted``; returns them all."""
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=LIMIT)
            except queue.Empty:
                pytest.fail(f"no line with {wanted!r} after {seen}")
            if line is None:
                pytest.fail(f"the client exited before {wanted!r}; printed {seen}")
            seen.append(line)
            if wanted in line:
                return seen

    def finish(self) -> tuple[int, str]:
        """Exit status and stderr, once it has exited (stdin closed)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = self.process.wait(timeout=LIMIT)
        assert self.process.stderr is not None
        return status, self.process.stderr.read()


def next_of(session: Session, kind: type[object]) -> ServerMessage:
    while True:
        message = session.recv(timeout=LIMIT)
        assert message is not None
        if isinstance(message, kind):
            return message


def test_the_line_client_chats_runs_commands_and_neutralises_what_it_shows(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password", "--max-registrations-per-hour", "0")
    with connect("127.0.0.1", server.port, user="bob", password=PASSWORD, timeout=LIMIT) as bob:
        ada = LineClient("127.0.0.1", str(server.port), "--user", "ada", password=PASSWORD)
        ada.expect("Welcome, ada!")
        joined = next_of(bob, Event)
        assert isinstance(joined, Event)
        assert joined.user == "ada"

        bob.say("\x1b[2Jhi ada\nada: forged")
        printed = ada.expect("hi ada")
        assert printed[-1] == r"bob: \u{1b}[2Jhi ada"
        assert ada.expect("forged")[-1] == "  | ada: forged"

        ada.type("hello bob")
        line = next_of(bob, Say)
        assert isinstance(line, Say)
        assert (line.text, line.sender) == ("hello bob", "ada")

        ada.type("/who")
        assert ada.expect("in the room")[-1] == "in the room (2): ada, bob"

        ada.type("/msg bob psst")
        private = next_of(bob, Say)
        assert isinstance(private, Say)
        assert (private.text, private.to) == ("psst", "bob")

        ada.type("//slash")
        slash = next_of(bob, Say)
        assert isinstance(slash, Say)
        assert slash.text == "/slash"

        ada.type("/quit")
        status, _ = ada.finish()
        assert status == 0
        left = next_of(bob, Event)
        assert isinstance(left, Event)
        assert (left.kind, left.user) == ("left", "ada")


def test_the_line_client_reports_a_wrong_password_and_exits_non_zero(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password", "--max-auth-attempts", "1")
    connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT).close()
    client = LineClient("127.0.0.1", str(server.port), "--user", "ada", password="wrong horse")
    status, stderr = client.finish()
    assert status == 1
    assert "bad_credentials" in stderr
    assert "wrong horse" not in stderr


def test_the_line_client_pins_a_fingerprint() -> None:
    server = FakeTlsServer()
    client = LineClient("127.0.0.1", str(server.port), "--fingerprint", cert_fingerprint())
    client.type("/quit")
    status, stderr = client.finish()
    assert status == 0, stderr
    assert b'"hello"' in server.finish()


def test_the_line_client_refuses_tls_without_a_fingerprint_when_no_one_can_be_asked() -> None:
    server = FakeTlsServer()
    client = LineClient("127.0.0.1", str(server.port), "--tls")
    status, stderr = client.finish()
    assert status == 1
    assert cert_fingerprint() in stderr
    assert server.finish() == b""


def test_the_line_client_speaks_tls_to_porter_serve(start_server: StartServer) -> None:
    server = start_server("--tls", "--auth", "none", "--service", "echo")
    client = LineClient("127.0.0.1", str(server.port), "--fingerprint", server.fingerprint())
    client.type("over tls")
    assert client.expect("over tls")[-1] == "server: over tls"
    status, stderr = client.finish()
    assert status == 0, stderr
