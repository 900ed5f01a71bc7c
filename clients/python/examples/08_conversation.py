"""Lab task 8: a conversation of many messages.

Sends COUNT lines to `porter serve --service echo` and checks that every one
comes back, in order, while still sending (a client that only writes would
fill its buffers; the server disconnects clients that do not read).

    python 08_conversation.py [HOST] [PORT] [COUNT]
"""

import sys
import time

import porter_client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
WINDOW = 64  # lines in flight at most


def expect_echo(session: porter_client.Session, number: int) -> None:
    reply = session.recv(timeout=10)
    if not (isinstance(reply, porter_client.Say) and reply.text == f"line {number}"):
        sys.exit(f"expected line {number} back, got {reply}")


with porter_client.connect(host, port) as session:
    start = time.monotonic()
    received = 0
    for sent in range(count):
        session.say(f"line {sent}")
        if sent - received >= WINDOW:
            expect_echo(session, received)
            received += 1
    while received < count:
        expect_echo(session, received)
        received += 1
    elapsed = time.monotonic() - start
    print(f"{count} lines echoed in order in {elapsed:.2f} s")
