#!/usr/bin/env python3
"""Registration flood against a running `porter serve --auth password`, and the
server's memory while it lasts and after (issue 10: hashing memory bounded).

Each worker registers new accounts in a loop (every registration is one Argon2
hash at the server's cost), so that the hashing pool is always busy. The
server must run with `--max-registrations-per-hour 0`, or its per-address
limit stops the flood at once. Meanwhile the server's resident memory is read
from /proc every 100 ms. It prints, in KiB: the RSS before, the peak during
the flood, the peak since start (VmHWM), and the RSS some seconds after.

Usage: scripts/login-flood.py --port PORT --pid PID [--workers 50]
       [--seconds 20] [--settle 5]

Only the standard library; only loopback.
"""

import argparse
import json
import socket
import struct
import threading
import time


def send(sock, message):
    data = json.dumps(message).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def recv(sock):
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack("!I", header)
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        if not chunk:
            return None
        payload += chunk
    return json.loads(payload) if payload else {}


def register(port, user):
    """One registration; True when it reached `ready`."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        send(sock, {"type": "hello"})
        while True:
            message = recv(sock)
            if message is None:
                return False
            kind = message.get("type")
            if kind == "ask":
                answer = user if message["id"] == "user" else "flood-password-123"
                send(sock, {"type": "answer", "id": message["id"], "text": answer})
            elif kind == "ready":
                send(sock, {"type": "bye"})
                return True
            elif kind in ("error", "bye") and message.get("code") != "session_invalid":
                return False


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()

    before = rss_kib(args.pid)
    stop = time.monotonic() + args.seconds
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def worker(index):
        n = 0
        while time.monotonic() < stop:
            n += 1
            ok = register(args.port, f"flood{index}x{n}x{int(time.time() * 1000) % 100000}")
            with lock:
                counts["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    for thread in threads:
        thread.start()
    peak = before
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_kib(args.pid))
        time.sleep(0.1)
    time.sleep(args.settle)
    after = rss_kib(args.pid)
    print(
        json.dumps(
            {
                "registrations": counts["ok"],
                "failed": counts["failed"],
                "rss_before_kib": before,
                "rss_peak_kib": peak,
                "hwm_kib": rss_kib(args.pid, "VmHWM"),
                "rss_after_kib": after,
            }
        )
    )


if __name__ == "__main__":
    main()
