"""Each script of examples/ (the lab's eight tasks) runs against the real
server, so that the examples cannot rot."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

from conftest import LIMIT, PASSWORD, StartServer, clean_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(
    script: str,
    *args: object,
    stdin: str = "",
    env: Optional[dict[str, str]] = None,
    cwd: Optional[Path] = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean_env(), **(env or {})},
        cwd=cwd,
        timeout=LIMIT,
        check=False,
    )
    return done


def test_every_lab_task_has_an_example() -> None:
    numbers = sorted(path.name[:2] for path in EXAMPLES.glob("0*.py"))
    assert numbers == ["01", "02", "03", "04", "05", "06", "07", "08"]


def test_01_comes_back_after_leaving(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    done = run("01_reconnect.py", "127.0.0.1", server.port)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("the server answered Say(text='visit") == 3


def test_02_takes_the_address_from_arguments_environment_or_prompt(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "none")
    by_args = run("02_address.py", "127.0.0.1", server.port)
    assert by_args.returncode == 0, by_args.stderr
    assert f"connected to 127.0.0.1:{server.port}" in by_args.stdout
    by_env = run("02_address.py", env={"PORTER_HOST": "127.0.0.1", "PORTER_PORT": str(server.port)})
    assert by_env.returncode == 0, by_env.stderr
    # The default host, then a bad port asked again.
    by_prompt = run("02_address.py", stdin=f"\nnot-a-port\n70000\n{server.port}\n")
    assert by_prompt.returncode == 0, by_prompt.stderr
    assert "'not-a-port' is not a port" in by_prompt.stdout
    assert "'70000' is not a port" in by_prompt.stdout
    assert f"connected to 127.0.0.1:{server.port}" in by_prompt.stdout
    assert run("02_address.py", stdin="").stdout.strip().endswith("bye")


def test_03_logs_to_a_file(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    log = tmp_path / "client.log"
    done = run("03_log_to_file.py", "127.0.0.1", server.port, log)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    assert "ready as" in text
    assert "sent 'second'" in text
    assert "left" in text


def test_04_finds_a_server_that_moved_off_a_busy_port(start_server: StartServer) -> None:
    # Someone else holds the port, silent: the server moves on, and so does
    # the client's search.
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        busy = squatter.getsockname()[1]
        server = start_server("--auth", "none", "--port", str(busy))
        assert server.port != busy
        assert f"({busy} was busy)" in server.listening
        done = run("04_moved_port.py", "127.0.0.1", busy)
    assert done.returncode == 0, done.stderr
    assert f"found the server on port {server.port} (asked for {busy})" in done.stdout


def test_05_is_asked_its_name_once_then_greeted_by_it(start_server: StartServer) -> None:
    server = start_server("--auth", "ip")
    unknown = run("05_identify_by_ip.py", "127.0.0.1", server.port)
    assert unknown.returncode != 0
    assert "give a NAME" in unknown.stderr
    first = run("05_identify_by_ip.py", "127.0.0.1", server.port, "ada")
    assert first.returncode == 0, first.stderr
    again = run("05_identify_by_ip.py", "127.0.0.1", server.port)
    assert again.returncode == 0, again.stderr
    assert "known as ada" in again.stdout


def test_06_logs_in_keeps_the_token_and_logs_out(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--auth", "password")
    jar = tmp_path / "token"
    args = ("127.0.0.1", server.port, "ada", jar)
    first = run("06_password_and_token.py", *args, env={"PORTER_PASSWORD": PASSWORD})
    assert first.returncode == 0, first.stderr
    assert "logged in with the password" in first.stdout
    assert jar.stat().st_mode & 0o777 == 0o600
    # No password now: the token alone.
    again = run("06_password_and_token.py", *args)
    assert again.returncode == 0, again.stderr
    assert "resumed with the stored token" in again.stdout
    out = run("06_password_and_token.py", *args, "--logout")
    assert out.returncode == 0, out.stderr
    assert not jar.exists()


def test_07_runs_the_dialogue_with_the_socket_helpers(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    done = run("07_framing_socket.py", "127.0.0.1", server.port)
    assert done.returncode == 0, done.stderr
    assert "'text': 'framed by hand'" in done.stdout
    assert "closed cleanly: True" in done.stdout


def test_08_holds_a_conversation_of_many_messages(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    done = run("08_conversation.py", "127.0.0.1", server.port, 2000)
    assert done.returncode == 0, done.stderr
    assert "2000 lines echoed in order" in done.stdout
