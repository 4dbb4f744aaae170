"""agrigw's HTTPS uplink against https_sink.py: windows, outages, refusals, TLS.

The site (uplink-site.conf.in) polls two simulated devices every 0.5 s and
closes 10 s windows with 1 s of grace; the sink records every request.
"""
import math
import os
import secrets
import time

import pytest

from harness import (Broker, Gateway, HttpsSink, Sim, Subscriber, make_ca, make_server_cert,
                     make_workdir, rmtree, wait_for, write_conf)

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = open(os.path.join(HERE, "uplink-site.conf.in")).read()
WINDOW_MS = 10000
GRACE_MS = 1000
POINTS = [("do1", "water_temp"), ("do1", "do"), ("air1", "air_temp"), ("air1", "humidity")]
PHASE_S = 40          # each of the three kinds of outage: the platform is down 2 minutes


@pytest.fixture(scope="module")
def pki():
    """A CA the gateway trusts with a good server certificate and one for another
    name, and a certificate from a CA it does not trust: (key, cert) each."""
    d = make_workdir()
    good_key, good_ca = make_ca(d, "good")
    other_key, other_ca = make_ca(d, "other")
    certs = {
        "good": make_server_cert(d, good_key, good_ca),
        "other-ca": make_server_cert(d, other_key, other_ca, name="other-ca-server"),
        "other-name": make_server_cert(d, good_key, good_ca, name="other-name",
                                       cn="platform.other.example", san="DNS:platform.other.example"),
    }
    yield dict(cafile=good_ca, certs=certs)
    rmtree(d)


class Site:
    """Broker, simulator, HTTPS sink, the gateway (debug log) and a subscriber."""

    def __init__(self, pki, cert="good", sink_mode="ok", trust_system=True, start=True):
        self.dir = make_workdir()
        self.certs = pki["certs"]
        self.broker = Broker(self.dir).start()
        key, crt = self.certs[cert]
        self.sink = HttpsSink(self.dir, crt, key)
        if sink_mode != "ok":
            self.sink.mode(sink_mode)
        self.token = "tok-" + secrets.token_hex(16)
        token_file = os.path.join(self.dir, "platform-token")
        with open(token_file, "w") as f:
            f.write(self.token + "\n")
        state = os.path.join(self.dir, "state")
        os.mkdir(state)
        self.conf = os.path.join(self.dir, "site.conf")
        subst = dict(MQTT_PORT=self.broker.port, TCP_PORT=1, STATE_DIR=state, URL=self.sink.url,
                     CA_FILE=pki["cafile"], TOKEN_FILE=token_file, UPLINK_EXTRA="")
        write_conf(self.conf, TEMPLATE, **subst)
        self.tcp = Sim(self.dir, self.conf, "tcp0", extra=("--wander",))
        subst["TCP_PORT"] = self.tcp.port
        write_conf(self.conf, TEMPLATE, **subst)
        if not trust_system:
            with open(self.conf) as f:
                text = f.read().replace("trust_system = true;", "trust_system = false;")
            with open(self.conf, "w") as f:
                f.write(text)
        self.sub = Subscriber(self.broker.port)
        self.gw = Gateway(self.dir, self.conf, args=("-d", "-v")) if start else None

    def restart_sink(self, cert="good"):
        key, crt = self.certs[cert]
        self.sink = HttpsSink(self.dir, crt, key, port=self.sink.port)

    def close(self):
        rc = self.gw.stop()
        self.sub.stop()
        self.sink.stop()
        self.tcp.stop()
        self.broker.stop()
        if os.environ.get("KEEP_TEST_DIRS"):
            print("kept", self.dir)
        else:
            rmtree(self.dir)
        return rc


def ident(w):
    return (w["device"], w["point"], w["start"])


def closed_by(now_ms):
    """Start of the newest window that has closed (end + grace passed) by now_ms."""
    return (int(now_ms) - GRACE_MS) // WINDOW_MS * WINDOW_MS - WINDOW_MS


def all_arrived(site, first, last):
    got = {ident(w) for k, w in site.sink.windows()}
    return all((d, p, t) in got for d, p in POINTS for t in range(first, last + 1, WINDOW_MS))


def telemetry(sub, device):
    """The device's telemetry, one message per seq, in ts order."""
    by_seq = {b["seq"]: b for b in sub.telemetry(device)}
    return sorted(by_seq.values(), key=lambda b: b["ts"])


def check_window(w, tele):
    """Recompute the window from the telemetry the broker carried."""
    pt = w["point"]
    msgs = [b for b in tele if w["start"] <= b["ts"] < w["end"]]
    good = [(b["ts"], b["values"][pt]) for b in msgs if pt in b["values"]]
    bad = [b for b in msgs if pt in b.get("bad", [])]
    assert w["end"] - w["start"] == WINDOW_MS and w["start"] % WINDOW_MS == 0, w
    assert (w["count"], w["bad"]) == (len(good), len(bad)), (w, good, len(bad))
    assert w["count"] + w["bad"] <= w["expected"] + 1 and w["expected"] <= WINDOW_MS // 500, w
    if not good:
        assert w["min"] is None and w["mean"] is None and w["last"] is None, w
        return
    values = [v for t, v in good]
    assert w["min"] == min(values) and w["max"] == max(values), (w, values)
    assert w["last"] == good[-1][1] and (w["first_ts"], w["last_ts"]) == (good[0][0], good[-1][0]), w
    assert math.isclose(w["mean"], sum(values) / len(values), rel_tol=1e-9, abs_tol=1e-3), (w, values)


def test_windows_arrive_once_and_match_telemetry(pki):
    s = Site(pki)
    try:
        # a while out of range: counted bad, left out of min, max and mean
        wait_for(lambda: len(s.sub.telemetry("do1")) >= 4, 20, what="telemetry")
        s.tcp.cmd("set do1 do 25")
        wait_for(lambda: "do" in s.sub.telemetry("do1")[-1].get("bad", []), 10, what="do bad")
        s.tcp.cmd("set do1 do 7.5")
        wait_for(lambda: len({w["start"] for k, w in s.sink.windows()}) >= 3, 60, what="three windows")

        wins = [w for k, w in s.sink.windows()]
        ids = [ident(w) for w in wins]
        assert len(ids) == len(set(ids)), "a window arrived twice"
        starts = sorted({w["start"] for w in wins})
        assert starts == list(range(starts[0], starts[-1] + 1, WINDOW_MS))
        # the window the gateway started in may miss a device; every later one has all
        assert all((d, p, t) in ids for d, p in POINTS for t in starts[1:])
        tele = {d: telemetry(s.sub, d) for d in ("do1", "air1")}
        for w in wins:
            check_window(w, tele[w["device"]])
        assert any(w["bad"] > 0 for w in wins if w["point"] == "do")
        assert any(w["expected"] == 20 for w in wins)

        for r in s.sink.requests():
            h = r["headers"]
            assert h["Content-Type"] == "application/json"
            assert h["Content-Encoding"] == "gzip" and r["gzip"] and r["body"] is not None, r
            assert h["Authorization"] == "Bearer " + s.token
            assert r["key"] == r["body"]["batch"] and r["key"]
            assert (r["body"]["gateway"], r["body"]["site"]) == ("gw1", "itest")
        assert s.token not in s.gw.logtext()
    finally:
        assert s.close() == 0


@pytest.mark.long
def test_platform_down_refused_503_hang_then_everything_arrives(pki):
    s = Site(pki)
    try:
        wait_for(lambda: s.sink.windows(), 40, what="first window")
        first = min(w["start"] for k, w in s.sink.windows()) + WINDOW_MS
        s.sink.stop()                          # connection refused
        time.sleep(PHASE_S)
        s.restart_sink()
        s.sink.mode("503 2")                   # with Retry-After
        time.sleep(PHASE_S)
        s.sink.mode("hang")                    # the gateway's timeout is 3 s
        time.sleep(PHASE_S)
        s.sink.mode("ok")
        last = closed_by(time.time() * 1000)
        wait_for(lambda: all_arrived(s, first, last), 60, what="every window after the outage")

        # a window sent more than once always went under the same Idempotency-Key,
        # and one key always named the same windows
        reqs = s.sink.requests()
        keys_of, body_of = {}, {}
        for r in reqs:
            if r["body"] is None:
                continue
            body_of.setdefault(r["key"], r["body"])
            assert r["body"] == body_of[r["key"]], "key %s with two bodies" % r["key"]
            for w in r["body"]["windows"]:
                keys_of.setdefault(ident(w), set()).add(r["key"])
        assert all(len(k) == 1 for k in keys_of.values()), [w for w, k in keys_of.items() if len(k) > 1]
        assert {r["answer"] for r in reqs} >= {"ok", "503", "hang"}

        # one line for the outage, one for the recovery
        wait_for(lambda: "reachable again" in s.gw.logtext(), 10, what="recovery logged")
        log = s.gw.logtext().splitlines()
        assert len([l for l in log if "warning: uplink:" in l and "retrying in" in l]) == 1, log
    finally:
        assert s.close() == 0


def test_400_is_a_dead_letter_never_retried(pki):
    s = Site(pki, sink_mode="400")
    try:
        # three refused batches: the gateway moved on twice and had time to retry the first
        wait_for(lambda: len(s.sink.requests()) >= 3, 60, what="three refused batches")
        s.sink.mode("ok")
        refused = [r["key"] for r in s.sink.requests() if r["answer"] == "400"]
        wait_for(lambda: s.sink.windows(), 40, what="windows accepted")
        keys = [r["key"] for r in s.sink.requests()]
        for k in refused:
            assert keys.count(k) == 1, "refused batch %s sent again" % k
        lines = [l for l in s.gw.logtext().splitlines() if "HTTP 400" in l]
        assert lines and "warning:" in lines[0] and "dead letter" in lines[0], lines
        assert "rejected by https_sink" in lines[0]      # the start of the answer
    finally:
        assert s.close() == 0


@pytest.mark.parametrize("cert,cause", [
    ("other-ca", "unable to get local issuer certificate"),
    ("other-name", "no alternative certificate subject name"),
])
def test_tls_refused_then_fixed(pki, cert, cause):
    s = Site(pki, cert=cert)
    try:
        # retried (debug lines with -v), logged once as a warning, nothing sent
        wait_for(lambda: s.gw.logtext().count(cause) >= 3, 40, what="TLS failures")
        lines = [l for l in s.gw.logtext().splitlines() if cause in l]
        assert len([l for l in lines if "warning:" in l]) == 1, lines
        assert s.sink.requests() == []
        fixed_ms = time.time() * 1000
        key, crt = s.certs["good"]
        s.sink.cmd("cert %s %s" % (crt, key))
        wait_for(lambda: s.sink.windows(), 40, what="windows after the fix")
        # the window that closed during the failure was kept and sent
        assert min(w["end"] for k, w in s.sink.windows()) <= fixed_ms
        wait_for(lambda: "reachable again" in s.gw.logtext(), 10, what="recovery logged")
    finally:
        assert s.close() == 0


def test_kill9_loop_no_window_and_no_seq_missing(pki):
    import random
    import signal
    s = Site(pki, start=False)
    rnd = random.Random(11)
    started = time.time() * 1000
    try:
        # 20 hard kills, during polls, commits and uploads
        for i in range(20):
            s.gw = Gateway(s.dir, s.conf, args=("-d",))
            time.sleep(rnd.uniform(0.5, 4.0))
            s.gw.proc.send_signal(signal.SIGKILL)
            s.gw.proc.wait()
            s.gw.log.close()
        s.gw = Gateway(s.dir, s.conf, args=("-d",))
        final = time.time() * 1000
        first = (int(started) // WINDOW_MS + 1) * WINDOW_MS
        last = closed_by(final + 3000)
        wait_for(lambda: all_arrived(s, first, last), 60, what="every window after the kills")
        ids = [ident(w) for k, w in s.sink.windows()]
        keys = {}
        for k, w in s.sink.windows():
            keys.setdefault(ident(w), set()).add(k)
        assert all(len(v) == 1 for v in keys.values()), "a window under two keys"
        wait_for(lambda: [b for b in s.sub.telemetry() if b["ts"] > final + 2000], 30, what="live telemetry")
        seqs = sorted({b["seq"] for b in s.sub.telemetry()})
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), "a telemetry seq is missing"
        assert len(ids) >= len(POINTS) * 4
    finally:
        assert s.close() == 0
