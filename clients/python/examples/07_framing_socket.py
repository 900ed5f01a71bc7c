"""Lab task 7: the length-header helpers, as an extension of the socket class.

`PorterSocket` is a `socket.socket` with send_frame/recv_frame,
send_text/recv_text and send_message/recv_message. Here it runs the
`auth: none` dialogue by hand against `porter serve --auth none
--service echo`: welcome, hello, ready, then say and its echo.

    python 07_framing_socket.py [HOST] [PORT]
"""

import sys

from porter_client import PorterSocket

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9090

with PorterSocket() as sock:  # a socket.socket: connect, settimeout... all work
    sock.settimeout(10)
    sock.connect((host, port))
    print("server:", sock.recv_message())  # {"type": "welcome", ...}
    sock.send_message({"type": "hello", "client": "07_framing_socket.py"})
    while (message := sock.recv_message()) is not None and message["type"] != "ready":
        print("server:", message)
    print("server:", message)
    sock.send_message({"type": "say", "text": "framed by hand"})
    print("server:", sock.recv_message())
    sock.send_frame(b"")  # a keep-alive: the server ignores it
    sock.send_message({"type": "bye"})
    print("closed cleanly:", sock.recv_message() is None)
