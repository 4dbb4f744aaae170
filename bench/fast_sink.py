#!/usr/bin/python3
"""The integration tests' HTTPS platform (tests/integration/https_sink.py) with
TCP_NODELAY on every accepted connection, for the benchmark's backlog drain.

Same command line, log and control socket as https_sink.py; nothing else
differs.  Why: https_sink.py answers with two writes, the status line and
headers, then the body.  With Nagle's algorithm on, the body waits until the
client has acknowledged the headers, and the client's kernel delays that
acknowledgement (up to 40 ms on Linux) because it has nothing to send back.
So every request took at least 40 ms whatever agrigw did: 200 batches of 500
windows took 12 s, about 8000 windows/s, with agrigw busy for 1.8 s of them
and the sink's Python for well under a second.  A platform behind a real web
server writes its answer at once; the benchmark should measure agrigw, not
this stall.
"""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

import https_sink  # noqa: E402


class Server(https_sink.Server):
    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(60)
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


if __name__ == "__main__":
    https_sink.Server = Server
    sys.exit(https_sink.main())
