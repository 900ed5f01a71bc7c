"""What the tests share: the real ``porter`` binary, run as ``porter serve``
on 127.0.0.1 with port 0 in a temporary directory, read up to its listening
line.

The binary is ``$PORTER_BIN``, else ``<repo>/target/debug/porter``. A missing
binary fails the tests that need it (never skips them): a CI that forgot to
build it must not pass.

Every wait is bounded by :data:`LIMIT`; nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest

#: Upper bound of every wait, in seconds.
LIMIT = 20.0

#: The repository root: tests/ is clients/python/tests.
REPO = Path(__file__).resolve().parents[3]

#: Argon2 settings that make a hash take microseconds.
CHEAP = ["--argon2-memory-kib", "64", "--argon2-iterations", "1"]

#: A password that passes the server's policy (8 to 128 characters).
PASSWORD = "correct horse battery"

#: The variables porter reads: a developer's own settings must not leak in.
PORTER_ENV = (
    "PORTER_HOST",
    "PORTER_PORT",
    "PORTER_AUTH",
    "PORTER_DB",
    "PORTER_USER",
    "PORTER_PASSWORD",
)

_LISTENING = re.compile(r"^porter: listening on (\S+):(\d+)")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def porter_bin() -> Path:
    """The ``porter`` binary under test; fails the test when it is missing."""
    configured = os.environ.get("PORTER_BIN")
    path = Path(configured) if configured else REPO / "target" / "debug" / "porter"
    if not (path.is_file() and os.access(path, os.X_OK)):
        how = "PORTER_BIN" if configured else "the default location (set PORTER_BIN to override)"
        pytest.fail(
            f"no porter binary at {path}, from {how}: build it first with `cargo build -p porter`",
            pytrace=False,
        )
    return path


def clean_env() -> dict[str, str]:
    """The environment without any ``PORTER_*`` variable porter reads."""
    return {k: v for k, v in os.environ.items() if k not in PORTER_ENV}


class Server:
    """A running ``porter serve``, stopped at the end of the test."""

    def __init__(self, directory: Path, args: list[str]) -> None:
        self.dir = directory
        self.args = args
        # Port 0 (the system chooses) unless the test chooses.
        port = [] if "--port" in args else ["--port", "0"]
        self.process = subprocess.Popen(
            [str(porter_bin()), "serve", "--host", "127.0.0.1", *port, *CHEAP, *args],
            cwd=directory,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        #: Every line the server printed on stdout, as it arrives.
        self.stdout: queue.Queue[Optional[str]] = queue.Queue()
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_pump.start()
        self.port = self._await_listening()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.put(line.rstrip("\n"))
        self.stdout.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def next_line(self, timeout: float = LIMIT) -> Optional[str]:
        """The server's next stdout line; ``None`` once it has exited."""
        try:
            line = self.stdout.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"porter serve printed nothing for {timeout} s; stderr: {self.stderr()}")
        if line is not None:
            self.stdout_lines.append(line)
        return line

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def _await_listening(self) -> int:
        while True:
            line = self.next_line()
            if line is None:
                self.process.wait(timeout=LIMIT)
                self._stderr_pump.join(LIMIT)  # all of stderr, for the message
                pytest.fail(
                    f"porter serve {' '.join(self.args)} exited with "
                    f"{self.process.returncode} before listening; stderr: {self.stderr()}"
                )
            match = _LISTENING.match(line)
            if match:
                #: The whole listening line, as printed.
                self.listening = line
                return int(match.group(2))

    def printed_fingerprint(self) -> str:
        """The ``SHA256:...`` fingerprint the server printed on stdout, read
        up to it if it has not come yet."""
        for line in self.stdout_lines:
            match = _FINGERPRINT.search(line)
            if match:
                return match.group(0)
        while True:
            more = self.next_line()
            if more is None:
                pytest.fail("porter serve printed no SHA256: fingerprint")
            match = _FINGERPRINT.search(more)
            if match:
                return match.group(0)

    def fingerprint(self) -> str:
        """What ``porter fingerprint`` says for this server's data directory."""
        done = subprocess.run(
            [str(porter_bin()), "fingerprint", "--data-dir", str(self.dir)],
            cwd=self.dir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        match = _FINGERPRINT.search(done.stdout)
        assert match, f"no fingerprint in {done.stdout!r}"
        return match.group(0)

    def stop(self) -> None:
        """SIGTERM (the graceful stop), then SIGKILL if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=LIMIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=LIMIT)


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """``start_server(*args)`` runs ``porter serve ARGS`` in a fresh directory
    (its log, database and certificate go there) and returns once it
    listens."""
    servers: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(tmp_path_factory.mktemp("porter"), list(args))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
