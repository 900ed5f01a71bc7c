"""Lab task 3: the client's events go to a log file.

Connecting, every line sent and received, and the end, with timestamps, in
porter-client.log (or LOGFILE). Passwords and tokens are never logged.

    python 03_log_to_file.py [HOST] [PORT] [LOGFILE]
"""

import logging
import sys

import porter_client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090
logfile = sys.argv[3] if len(sys.argv) > 3 else "porter-client.log"

logging.basicConfig(
    filename=logfile, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
)
log = logging.getLogger("porter-client")

log.info("connecting to %s:%d", host, port)
try:
    with porter_client.connect(host, port) as session:
        log.info("ready as %r on %s (auth %s)", session.user, session.server, session.auth)
        for text in ("first", "second"):
            session.say(text)
            log.info("sent %r", text)
            log.info("received %r", session.recv(timeout=10))
    log.info("left")
except porter_client.PorterError as err:
    # `code` is what a program branches on; the text is for people.
    log.error("failed (%s): %s", err.code, err)
    sys.exit(1)
