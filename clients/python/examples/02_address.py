"""Lab task 2: the host and port come from the user.

From the arguments, else PORTER_HOST / PORTER_PORT, else a prompt with
defaults that asks again on bad input; Ctrl-D leaves cleanly.

    python 02_address.py [HOST [PORT]]
"""

import os
import sys
from typing import Optional

import porter_client

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 9090


def valid_port(text: str) -> Optional[int]:
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else None


def ask(question: str, default: str) -> str:
    return input(f"{question} [{default}]: ").strip() or default


def main() -> int:
    args = sys.argv[1:]
    try:
        host = args[0] if args else os.environ.get("PORTER_HOST") or ask("Host", DEFAULT_HOST)
        given = args[1] if len(args) > 1 else os.environ.get("PORTER_PORT")
        port = valid_port(given) if given else None
        if given and port is None:
            print(f"{given!r} is not a port (1-65535)", file=sys.stderr)
        while port is None:
            answer = ask("Port", str(DEFAULT_PORT))
            port = valid_port(answer)
            if port is None:
                print(f"{answer!r} is not a port (1-65535); try again")
    except EOFError:
        print("\nbye")
        return 0
    with porter_client.connect(host, port) as session:
        print(f"connected to {host}:{port} ({session.server}) as {session.user}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
