"""Lab task 6: authentication, with the session token kept like a cookie.

The first run logs in (or registers) with the password from PORTER_PASSWORD
and stores the token in TOKEN_FILE (mode 0600). Later runs present the
token and need no password, until it expires or `--logout` revokes it.

    PORTER_PASSWORD=... python 06_password_and_token.py HOST PORT USER TOKEN_FILE [--logout]
"""

import os
import sys
from pathlib import Path

import porter_client

host, port, user, token_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
token = token_file.read_text().strip() if token_file.exists() else None

session = porter_client.connect(
    host, port, user=user, password=os.environ.get("PORTER_PASSWORD"), token=token
)
with session:
    print("resumed with the stored token" if session.resumed else "logged in with the password")
    if "--logout" in sys.argv:
        session.logout()
        token_file.unlink(missing_ok=True)
        print("logged out; the token is revoked")
    elif session.token is not None:
        # Written 0600 from the start: a token is as good as the password.
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(session.token)
