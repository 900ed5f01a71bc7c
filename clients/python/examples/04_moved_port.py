"""Lab task 4: the server moved to a free port because its port was busy.

`porter serve` tries the next ports and prints, say,
`porter: listening on 0.0.0.0:9091 (9090 was busy)`. A client that was not
told can look for it: it tries PORT and the 19 after it (the server's
--port-tries), and takes the first that greets it with a Porter `welcome`.

    python 04_moved_port.py [HOST] [PORT]
"""

import socket
import sys
from typing import Optional

import porter_client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
first = int(sys.argv[2]) if len(sys.argv) > 2 else 9090
PORT_TRIES, PROBE_SECONDS = 20, 1.0


def is_porter(port: int) -> bool:
    """Whether a Porter server answers on `port`: its first frame is `welcome`."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS) as raw:
            sock = porter_client.PorterSocket.from_socket(raw)
            with sock:
                message: Optional[dict[str, object]] = sock.recv_message()
                return message is not None and message["type"] == "welcome"
    except (OSError, porter_client.PorterError):
        return False  # closed, silent, or something else speaking there


for port in range(first, first + PORT_TRIES):
    if is_porter(port):
        with porter_client.connect(host, port) as session:
            print(f"found the server on port {port} (asked for {first}), ready as {session.user}")
        break
else:
    sys.exit(f"no Porter server on ports {first} to {first + PORT_TRIES - 1}")
