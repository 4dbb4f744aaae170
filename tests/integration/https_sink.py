#!/usr/bin/python3
"""A small HTTPS platform for agrigw's uplink tests (Python 3 stdlib only).

usage: https_sink.py --cert C --key K [--client-ca CA] [--port 0] --log FILE --control SOCK

Prints "READY PORT" once listening.  Every request is recorded as one JSON
line in FILE once it is answered: time of arrival, method, path,
Idempotency-Key, headers, the body (gunzipped when Content-Encoding is gzip,
parsed as JSON; "body_error" when that fails), the client certificate's
subject when there is one, and the answer given ("ok", the status, "close",
"hang" when the client gave up waiting, "broken: ..." when it left while
being answered).  Answers follow a mode that the control
socket (a UNIX stream socket; one command per line, one reply line each)
switches at run time:

  mode ok                  200 {"ok":true}
  mode NNN [RETRY_AFTER]   status NNN (400: a JSON error body; 503: Retry-After 1
                           unless given); RETRY_AFTER is sent verbatim (seconds or
                           an HTTP date)
  mode hang                read the request, never answer: until the mode changes
                           (then answer by the new one) or the client gives up
  mode close               read the request, close the connection without answering
  cert CERT KEY            serve this certificate from the next handshake on
  stats                    {"mode":..,"requests":N,"answers":{"ok":N,"503":N,..},"tls_errors":N,
                            "last_tls_error":..,"keys":N}

TLS handshakes run in the connection's own thread, so a client that stalls
or fails its handshake holds up nobody; failures are counted (tls_errors).
"""
import argparse
import gzip
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, logpath):
        self.cond = threading.Condition()
        self.mode = "ok"
        self.arg = None
        self.requests = 0
        self.answers = {}
        self.keys = set()
        self.tls_errors = 0
        self.last_tls_error = None
        self.log = open(logpath, "a", buffering=1)

    def get_mode(self):
        with self.cond:
            return self.mode, self.arg

    def set_mode(self, mode, arg):
        with self.cond:
            self.mode, self.arg = mode, arg
            self.cond.notify_all()

    def record(self, rec):
        with self.cond:
            self.requests += 1
            self.answers[rec["answer"]] = self.answers.get(rec["answer"], 0) + 1
            if rec.get("key"):
                self.keys.add(rec["key"])
            self.log.write(json.dumps(rec) + "\n")

    def tls_error(self, err):
        with self.cond:
            self.tls_errors += 1
            self.last_tls_error = err

    def stats(self):
        with self.cond:
            return {"mode": self.mode if self.arg is None else "%s %s" % (self.mode, self.arg),
                    "requests": self.requests, "answers": dict(self.answers),
                    "tls_errors": self.tls_errors, "last_tls_error": self.last_tls_error,
                    "keys": len(self.keys)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # answers leave at once (keep-alive, small writes)
    server_version = "https_sink/1"

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self.server.state.tls_error(str(e))
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, socket.timeout):
            pass

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        zipped = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        rec = {"time": time.time(), "method": "POST", "path": self.path,
               "key": self.headers.get("Idempotency-Key"),
               "headers": {k: v for k, v in self.headers.items()},
               "gzip": zipped, "length": len(raw), "body": None}
        try:
            rec["body"] = json.loads(gzip.decompress(raw) if zipped else raw)
        except (OSError, EOFError, ValueError) as e:
            rec["body_error"] = str(e)
        cert = self.connection.getpeercert()
        if cert:
            rec["client"] = dict(x[0] for x in cert.get("subject", ()))
        mode, arg = st.get_mode()
        try:
            rec["answer"] = self.answer(mode, arg, rec["key"])
        except OSError as e:            # the client went while we answered
            rec["answer"] = "broken: %s" % e
            self.close_connection = True
        st.record(rec)

    def answer(self, mode, arg, key):
        """Answer per mode; returns the answer given: "ok", "NNN", "close" or "hang"
        (the client gave up).  A hang ended by a mode change answers by the new mode."""
        if mode == "hang":
            mode, arg = self.hang()
            if mode is None:
                self.close_connection = True
                return "hang"
        if mode == "close":
            self.close_connection = True
            return "close"
        status = 200 if mode == "ok" else int(mode)
        headers = []
        if status == 200:
            body = {"ok": True, "batch": key}
        elif 400 <= status < 500 and status not in (408, 429):
            body = {"error": "rejected by https_sink", "status": status,
                    "detail": "mode %s: this batch is refused" % mode}
        else:
            body = {"error": "try later", "status": status}
        if arg is None and status == 503:
            arg = "1"
        if arg is not None:
            headers.append(("Retry-After", arg))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        return mode

    def hang(self):
        """Wait for another mode, or for the client to go; (None, None) when it went."""
        st = self.server.state
        fd = self.connection.fileno()
        while True:
            with st.cond:
                if st.mode != "hang":
                    return st.mode, st.arg
                st.cond.wait(0.1)
            r, _, _ = select.select([fd], [], [], 0)
            if r:           # a client waiting for an answer sends nothing: it closed
                return None, None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, state):
        self.ctx = ctx
        self.state = state
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(60)
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def control(path, state, ctx, ready):
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    ready.set()

    def command(line):
        words = line.split(None, 2)
        if not words:
            return "error empty command"
        if words[0] == "stats":
            return json.dumps(state.stats())
        if words[0] == "mode" and len(words) >= 2:
            mode = words[1]
            if mode in ("ok", "hang", "close") and len(words) == 2:
                state.set_mode(mode, None)
                return "ok mode " + mode
            if mode.isdigit() and 100 <= int(mode) <= 599:
                state.set_mode(mode, words[2] if len(words) == 3 else None)
                return "ok mode " + " ".join(words[1:])
        if words[0] == "cert" and len(words) == 3:
            try:
                ctx.load_cert_chain(words[1], words[2])
            except (OSError, ssl.SSLError) as e:
                return "error cert: %s" % e
            return "ok cert " + words[1]
        return "error unknown command: " + line

    def serve(conn):
        with conn, conn.makefile("rw") as f:
            for line in f:
                f.write(command(line.strip()) + "\n")
                f.flush()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--control", required=True)
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a.client_ca)
    state = State(a.log)
    httpd = Server((a.host, a.port), ctx, state)
    ready = threading.Event()
    threading.Thread(target=control, args=(a.control, state, ctx, ready), daemon=True).start()
    if not ready.wait(10):          # READY means both sockets listen
        return 1
    print("READY %d" % httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
