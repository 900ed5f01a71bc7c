"""Lab task 5: identification by IP address.

Against `porter serve --auth ip`: the first time, the server asks this
address's name (given here as NAME); after that it greets the address by
name without asking, even across server restarts.

    python 05_identify_by_ip.py [HOST] [PORT] [NAME]
"""

import sys

import porter_client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090
name = sys.argv[3] if len(sys.argv) > 3 else None

try:
    with porter_client.connect(host, port, user=name) as session:
        for greeting in session.greetings:
            print(f"server: {porter_client.printable(greeting.text)}")
        print(f"known as {porter_client.printable(session.user)}")
except porter_client.UnansweredAsk as err:
    sys.exit(f"this address is new to the server, which asks: {err.text!r}; give a NAME")
