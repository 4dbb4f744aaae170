"""A broker that goes silent without closing the connection.

SIGSTOP on mosquitto: the kernel keeps its TCP connections up and even
acknowledges what the gateway sends, but no MQTT packet comes back, as on a
link that went dark.  agrigw must give the connection up within 1.5 x
keepalive (src/mqtt.c; libmosquitto's own check alone takes nearly twice the
keepalive), reconnect once the broker answers again, and lose nothing.  The
network scenarios (blackhole, 30 % loss, a NAT that forgets connections) need
network namespaces and minutes: tests/soak/ (make flaky-link, soak-ci).
"""
import os
import re
import signal
import time

from harness import VALGRIND, wait_for
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
