"""A broker that goes silent without closing the connection.

SIGSTOP on mosquitto: the kernel keeps its TCP connections up and even
acknowledges what the gateway sends, but no MQTT packet comes back, as on a
link that went dark.  agrigw must give the connection up within 1.5 x
keepalive (src/mqtt.c; libmosquitto's own check alone takes nearly twice the
keepalive), reconnect once the broker answers again, and lose nothing.

A Modbus TCP connection that a NAT forgot (a relay that swallows every byte
of the old connection): the bus must drop it and open a new one.  The
network scenarios (blackhole, 30 % loss, a NAT that forgets connections)
need network namespaces and minutes: tests/soak/ (make flaky-link, soak-ci).
"""
import os
import re
import signal
import socket
import threading
import time

from harness import VALGRIND, Gateway, wait_for
from test_gateway import Site

KEEPALIVE = 10          # tests/integration/site.conf.in
SLOP = 2.0 if VALGRIND else 0.3


def lost_lines(site):
    return [l for l in site.gw.logtext().splitlines() if re.search(r"mqtt: connection to \S+ lost", l)]


def test_silent_broker_is_given_up_within_one_and_a_half_keepalives():
    s = Site(store=True, client_id="flaky-link-subscriber")
    try:
        wait_for(lambda: len(s.sub.telemetry()) >= 10, 30, what="telemetry")
        t0 = time.monotonic()
        os.kill(s.broker.proc.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: lost_lines(s), 3 * KEEPALIVE, step=0.02, what="the silent connection given up")
            took = time.monotonic() - t0
        finally:
            os.kill(s.broker.proc.pid, signal.SIGCONT)
        line = lost_lines(s)[0]
        assert "nothing heard from the broker for" in line, line
        assert KEEPALIVE <= took <= 1.5 * KEEPALIVE + SLOP, (took, line)

        wait_for(lambda: re.search(r"mqtt: connected to \S+ after", s.gw.logtext()), 60, what="reconnect")

        def complete():
            status = [b for t, b, r in s.sub.select() if t.endswith("/gw1/status") and b.get("online")]
            seqs = {b["seq"] for b in s.sub.telemetry()}
            return status and seqs and all(n in seqs for n in range(1, status[-1]["seq"] + 1))
        # every seq the gateway had given out after the reconnect reaches the subscriber
        wait_for(complete, 60, step=0.5, what="every seq at the subscriber")
        seqs = sorted({b["seq"] for b in s.sub.telemetry()})
        assert seqs == list(range(1, seqs[-1] + 1))
    finally:
        assert s.close() == 0


class ForgetfulNat:
    """A TCP relay to the Modbus TCP simulator that can forget its connections
    the way a NAT or a 4G carrier does: forget() makes every open connection a
    black hole (bytes in either direction vanish, no reset, the sockets stay
    open) while new connections are relayed as before."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []              # [client, upstream, forgotten]
        self.accepted = 0
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            pair = [c, u, False]
            with self.lock:
                self.pairs.append(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair, 0, 1), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, 1, 0), daemon=True).start()

    def _pump(self, pair, src, dst):
        while True:
            try:
                data = pair[src].recv(4096)
            except OSError:
                data = b""
            if not data:
                for s in pair[:2]:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if not pair[2]:
                try:
                    pair[dst].sendall(data)
                except OSError:
                    pass

    def forget(self):
        with self.lock:
            for p in self.pairs:
                p[2] = True

    def stop(self):
        self.stopped = True
        self.lsock.close()
        with self.lock:
            for p in self.pairs:
                for s in p[:2]:
                    s.close()


def test_tcp_connection_a_nat_forgot_is_reopened():
    s = Site(start_gateway=False)
    nat = ForgetfulNat(s.tcp.port)
    try:
        with open(s.conf) as f:
            text = f.read()
        text = text.replace("port = %d;" % s.tcp.port, "port = %d;" % nat.port, 1)
        with open(s.conf, "w") as f:
            f.write(text)
        s.gw = Gateway(s.dir, s.conf, args=("-d", "-v"))
        wait_for(lambda: len(s.sub.telemetry("mix1")) >= 4, 30, what="telemetry through the relay")
        assert nat.accepted == 1
        nat.forget()
        t0 = time.time() * 1000
        wait_for(lambda: "no reply on the TCP connection" in s.gw.logtext(), 30, what="the silence noticed")
        # a new connection, and readings taken on it
        wait_for(lambda: [b for b in s.sub.telemetry("mix1") if b["ts"] > t0 + 500], 30,
                 what="readings on a new connection")
        assert nat.accepted == 2
        log = s.gw.logtext()
        assert log.count("no reply on the TCP connection") == 1, log
        assert "replies again on the new connection" in log
        # the RTU bus never noticed: it goes on delivering, its device never offline
        wait_for(lambda: len([b for b in s.sub.telemetry("rmix") if b["ts"] > t0]) >= 4, 20,
                 what="RTU readings meanwhile")
        assert "device 'rmix' (unit" not in s.gw.logtext()     # never offline
    finally:
        nat.stop()
        assert s.close() == 0
