"""Lab task 1: the server keeps listening after a client leaves.

The client side of it: talk, leave, come back, and talk again. Run against
`porter serve --service echo --auth none`:

    python 01_reconnect.py [HOST] [PORT]
"""

import sys

import porter_client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090

for visit in (1, 2, 3):
    with porter_client.connect(host, port) as session:
        session.say(f"visit {visit}")
        print(f"visit {visit}: the server answered {session.recv(timeout=10)}")
    # Leaving the `with` says `bye`; the server goes on serving the next one.
