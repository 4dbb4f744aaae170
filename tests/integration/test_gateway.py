"""agrigw against a real mosquitto and the Modbus simulator (TCP and RTU)."""
import json
import math
import os
import subprocess
import time

import pytest

from harness import (BUILD, REPO, Broker, Gateway, PtyPair, Sim, Subscriber, make_ca,
                     make_server_cert, make_workdir, rmtree, wait_for, write_conf)

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = open(os.path.join(HERE, "site.conf.in")).read()
PREFIX = "agrigw/itest/gw1"


class Site:
    """Broker, pty pair, one simulator per bus, the gateway and a subscriber."""

    def __init__(self, queue_max=5000, mqtt_extra="", broker_tls=None, sub_tls=None,
                 client_id=None, start_gateway=True, store=False, store_extra="", interval=0.5):
        self.dir = make_workdir()
        self.broker = Broker(self.dir, tls=broker_tls).start()
        self.pty = PtyPair(self.dir)
        # the simulators need the config for the registers; ports come after
        self.conf = os.path.join(self.dir, "site.conf")
        # without a store the gateway holds messages in memory only (issue of the core tests)
        store_conf = ('dir = "%s"; commit_interval = 0.5; %s' % (os.path.join(self.dir, "state"), store_extra)
                      if store else 'dir = "";')
        subst = dict(MQTT_PORT=self.broker.port, QUEUE_MAX=queue_max, MQTT_EXTRA=mqtt_extra,
                     PTY=self.pty.a, TCP_PORT=1, STORE=store_conf, INTERVAL=interval)
        write_conf(self.conf, TEMPLATE, **subst)
        self.tcp = Sim(self.dir, self.conf, "tcp0")
        self.rtu = Sim(self.dir, self.conf, "rtu0", rtu_pty=self.pty.b)
        subst["TCP_PORT"] = self.tcp.port
        write_conf(self.conf, TEMPLATE, **subst)
        self.sub = Subscriber(self.broker.port, client_id=client_id, clean=client_id is None,
                              tls=sub_tls)
        self.gw = Gateway(self.dir, self.conf) if start_gateway else None

    def close(self):
        rc = self.gw.stop() if self.gw else 0
        self.sub.stop()
        self.tcp.stop()
        self.rtu.stop()
        self.pty.stop()
        self.broker.stop()
        if os.environ.get("KEEP_TEST_DIRS"):
            print("kept", self.dir)
        else:
            rmtree(self.dir)
        return rc


@pytest.fixture
def site():
    s = Site()
    yield s
    rc = s.close()
    assert rc == 0, "agrigw exit status %r" % rc


def close_enough(got, want, decimals):
    if isinstance(want, bool) or isinstance(got, bool):
        return bool(got) == bool(want)
    if decimals is None:
        return math.isclose(got, want, rel_tol=2e-7, abs_tol=1e-9)
    return abs(got - want) <= 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(want))


def meta_points(sub, device):
    metas = [b for t, b, r in sub.select("meta", device)]
    assert metas, "no meta for " + device
    return {p["name"]: p for p in metas[-1]["points"]}


def check_device_values(s, sim, device):
    want = sim.values()[device]["points"]
    tele = wait_for(lambda: s.sub.telemetry(device)[-1:] if len(s.sub.telemetry(device)) >= 2 else None,
                    20, what="telemetry of " + device)[0]
    assert set(tele["values"]) == set(want), (tele, want)
    assert "bad" not in tele
    meta = meta_points(s.sub, device)
    for name, v in want.items():
        got = tele["values"][name]
        typ = meta[name]["type"]
        decimals = None if typ in ("f32", "f64") else 6
        assert close_enough(got, v, decimals), "%s.%s: got %r, want %r" % (device, name, got, v)


def test_every_point_arrives_decoded_over_tcp_and_rtu(site):
    for dev in ("mix1", "do1", "air1"):
        check_device_values(site, site.tcp, dev)
    for dev in ("rmix", "rsoil"):
        check_device_values(site, site.rtu, dev)
    # the pty refuses the RS-485 ioctl: a warning, and the bus works on
    assert "refuses RS-485 mode" in site.gw.logtext()


def test_topics_payloads_and_retained_state(site):
    wait_for(lambda: len(site.sub.telemetry("do1")) >= 3, 20, what="telemetry")
    status = [b for t, b, r in site.sub.select() if t == PREFIX + "/status"]
    assert status and status[0]["online"] is True
    dstat = [b for t, b, r in site.sub.select("status", "do1")]
    assert dstat and dstat[-1]["online"] is True
    meta = meta_points(site.sub, "do1")
    assert meta["do"]["unit"] == "mg/L" and meta["water_temp"]["type"] == "s16"
    tele = site.sub.telemetry()
    seqs = [b["seq"] for b in tele]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    now_ms = time.time() * 1000
    for b in tele:
        assert abs(b["ts"] - now_ms) < 120000
        assert "historical" not in b
    # retained: a late subscriber gets gateway status, meta and device status at once
    late = Subscriber(site.broker.port)
    wait_for(lambda: late.select("meta", "rsoil") and late.select("status", "rsoil"), 10,
             what="retained messages")
    assert all(r for t, b, r in late.select("meta"))
    late.stop()


def test_requests_are_merged(site):
    wait_for(lambda: len(site.sub.telemetry("mix1")) >= 2, 20, what="telemetry")
    before = site.tcp.stats()["units"]["1"]["requests"]
    n0 = len(site.sub.telemetry("mix1"))
    wait_for(lambda: len(site.sub.telemetry("mix1")) >= n0 + 6, 20, what="more polls")
    polls = len(site.sub.telemetry("mix1")) - n0
    requests = site.tcp.stats()["units"]["1"]["requests"] - before
    # holding 0..31, holding 41, input, coil, discrete: 5 per poll (one poll may be mid-way)
    assert 5 * (polls - 1) <= requests <= 5 * (polls + 1), (requests, polls)


def test_exception_splits_merged_read_and_flags_point(site):
    wait_for(lambda: len(site.sub.telemetry("mix1")) >= 2, 20, what="telemetry")
    site.tcp.cmd("exception 1 4 2")     # register 4 (s32_cdab) is refused
    def flagged():
        t = site.sub.telemetry("mix1")
        return t and t[-1].get("bad") == ["s32_cdab"] and t[-1]
    tele = wait_for(flagged, 20, what="s32_cdab flagged bad")
    assert "u16" in tele["values"] and "f64_cdab" in tele["values"]
    assert "one by one" in site.gw.logtext()
    site.tcp.cmd("clear 1")
    # split reads stay split, and the point comes back once the device answers it
    wait_for(lambda: "bad" not in site.sub.telemetry("mix1")[-1], 20, what="point back")


def test_silent_device_goes_offline_others_keep_schedule(site):
    wait_for(lambda: len(site.sub.telemetry("do1")) >= 2, 20, what="telemetry")
    site.tcp.cmd("silence 55 on")
    wait_for(lambda: [b for t, b, r in site.sub.select("status", "do1") if b["online"] is False], 20,
             what="do1 offline")
    n_air = len(site.sub.telemetry("air1"))
    n_rmix = len(site.sub.telemetry("rmix"))
    n_do = len(site.sub.telemetry("do1"))
    time.sleep(5)
    # 0.5 s interval: about 10 polls in 5 s; the silent device costs only its own timeout
    assert len(site.sub.telemetry("air1")) - n_air >= 7
    assert len(site.sub.telemetry("rmix")) - n_rmix >= 7
    assert len(site.sub.telemetry("do1")) == n_do
    off = [b for t, b, r in site.sub.select("status", "do1") if b["online"] is False][-1]
    assert off["error"] == "no response"
    assert "offline after 2 failed polls" in site.gw.logtext()
    site.tcp.cmd("silence 55 off")
    wait_for(lambda: site.sub.select("status", "do1")[-1][1]["online"] is True, 20, what="do1 back")
    wait_for(lambda: len(site.sub.telemetry("do1")) > n_do, 20, what="do1 telemetry again")
    assert "responding again" in site.gw.logtext()


def test_garbage_and_bad_crc_are_counted_not_fatal(site):
    wait_for(lambda: len(site.sub.telemetry("air1")) >= 2 and len(site.sub.telemetry("rmix")) >= 2, 20,
             what="telemetry")
    site.tcp.cmd("garbage 3 4")
    site.tcp.cmd("truncate 3 2")
    site.rtu.cmd("badcrc 7 4")
    site.rtu.cmd("garbage 7 3")
    site.rtu.cmd("wrongunit 7 2")
    def counted(dev):
        st = [b for t, b, r in site.sub.select("status", dev)]
        return st and st[-1]["bad_frames"] + st[-1]["timeouts"] >= 4
    wait_for(lambda: counted("air1") and counted("rmix"), 30, what="bad frames counted")
    assert site.gw.alive()
    assert "unparsable reply" in site.gw.logtext()
    n = len(site.sub.telemetry("rmix"))
    wait_for(lambda: len(site.sub.telemetry("rmix")) >= n + 3, 20, what="rmix telemetry after garbage")
    check_device_values(site, site.rtu, "rmix")
    check_device_values(site, site.tcp, "air1")


def test_broker_outage_readings_queued_and_delivered_in_order():
    s = Site(client_id="itest-sub")
    try:
        wait_for(lambda: len(s.sub.telemetry()) >= 10, 20, what="telemetry")
        s.broker.stop()
        time.sleep(30)
        s.broker.start()                      # same port, same persistent sessions
        wait_for(lambda: "after" in s.gw.logtext() and "held messages" in s.gw.logtext(), 30,
                 what="reconnect")
        def caught_up():
            t = s.sub.telemetry()
            return len(t) > 60 and t[-1]["ts"] > time.time() * 1000 - 3000
        wait_for(caught_up, 60, what="held readings delivered")
        seqs = [b["seq"] for b in s.sub.telemetry()]
        assert set(range(min(seqs), max(seqs) + 1)) <= set(seqs), "a seq is missing"
        # in order: no seq arrives after a larger one, except repeats (at-least-once)
        seen = set()
        last = 0
        for q in seqs:
            assert q > last or q in seen, (q, last)
            seen.add(q)
            last = max(last, q)
        # about 30 s x 5 devices x 2 polls/s were held in memory
        assert len(set(seqs)) >= 250
        assert "lost" in s.gw.logtext()
    finally:
        assert s.close() == 0


def test_outbox_full_drops_oldest_and_counts():
    s = Site(queue_max=40)
    try:
        wait_for(lambda: len(s.sub.telemetry()) >= 5, 20, what="telemetry")
        s.sub.stop()
        s.broker.stop()
        wait_for(lambda: "dropping the oldest" in s.gw.logtext(), 30, what="memory full")
        s.broker.start()
        s.sub = Subscriber(s.broker.port)
        def dropped():
            st = [b for t, b, r in s.sub.select() if t == PREFIX + "/status" and b.get("online")]
            return st and st[-1]["dropped"] > 0 and st[-1]
        wait_for(dropped, 30, what="dropped counted in status")
        assert s.gw.alive()
    finally:
        assert s.close() == 0


@pytest.fixture
def pki():
    """A throwaway CA and server certificate, and an unrelated CA."""
    d = make_workdir()
    good_key, good_ca = make_ca(d, "good")
    _, other_ca = make_ca(d, "other")
    key, crt = make_server_cert(d, good_key, good_ca)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)   # read by mosquitto's own user
    yield dict(cafile=good_ca, certfile=crt, keyfile=key, other_ca=other_ca)
    rmtree(d)


def test_tls_with_verified_broker(pki):
    s = Site(broker_tls=pki, sub_tls=pki["cafile"], mqtt_extra='ca_file = "%s";' % pki["cafile"])
    try:
        wait_for(lambda: len(s.sub.telemetry("do1")) >= 2, 30, what="telemetry over TLS")
        assert "(TLS)" in s.gw.logtext()
    finally:
        assert s.close() == 0


def test_tls_wrong_ca_refused_with_clear_log(pki):
    s = Site(broker_tls=pki, sub_tls=pki["cafile"], mqtt_extra='ca_file = "%s";' % pki["other_ca"])
    try:
        wait_for(lambda: "certificate verify failed" in s.gw.logtext(), 30, what="TLS error logged")
        time.sleep(2)
        assert s.sub.telemetry() == []
        assert not [1 for t, b, r in s.sub.select() if t == PREFIX + "/status"]
        # one line for the outage, not one per attempt
        assert s.gw.logtext().count("certificate verify failed") == 1
        assert s.gw.alive()
    finally:
        assert s.close() == 0


def test_graceful_stop_says_offline(site):
    wait_for(lambda: len(site.sub.telemetry()) >= 3, 20, what="telemetry")
    assert site.gw.stop() == 0
    wait_for(lambda: [1 for t, b, r in site.sub.select() if t == PREFIX + "/status" and b == {"online": False}],
             10, what="offline status")
    site.gw = None


def test_bad_config_refuses_to_start(tmp_path):
    agrigw = os.path.join(BUILD, "agrigw")
    r = subprocess.run([agrigw, "-f", str(tmp_path / "missing.conf")], capture_output=True, text=True)
    assert r.returncode == 1 and "missing.conf" in r.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text('gateway = { site = "x"; id = "y"; colour = "red"; };\n'
                   'devices = ( { name = "d"; bus = "nope"; unit = 300; profile = "p"; interval = 0; } );\n')
    r = subprocess.run([agrigw, "-f", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.startswith(str(bad) + ":")]
    assert any(":1:" in l and "colour" in l for l in lines), r.stderr
    assert len([l for l in lines if ":2:" in l]) >= 3, r.stderr
    ok = subprocess.run([agrigw, "-n", "-f", os.path.join(REPO, "config", "demo.conf")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "configuration OK"


def test_tcp_endpoint_restart_reconnects(site):
    wait_for(lambda: len(site.sub.telemetry("air1")) >= 2, 20, what="telemetry")
    port = site.tcp.port
    site.tcp.stop()
    wait_for(lambda: [b for t, b, r in site.sub.select("status", "air1") if b["online"] is False], 20,
             what="air1 offline")
    off = [b for t, b, r in site.sub.select("status", "air1") if b["online"] is False][-1]
    assert off["error"].startswith("bus down") or off["error"] == "no response", off
    n = len(site.sub.telemetry("air1"))
    site.tcp = Sim(site.dir, site.conf, "tcp0", tcp_port=port)
    wait_for(lambda: len(site.sub.telemetry("air1")) > n, 40, what="telemetry after reconnect")
    wait_for(lambda: site.sub.select("status", "air1")[-1][1]["online"] is True, 20, what="air1 online")
    assert "link back up" in site.gw.logtext() or "responding again" in site.gw.logtext()


def test_sighup_reload_keeps_unchanged_buses_and_refuses_broken_config(site):
    import signal as sig
    wait_for(lambda: len(site.sub.telemetry("rmix")) >= 2 and len(site.sub.telemetry("do1")) >= 2, 20,
             what="telemetry")
    with open(site.conf) as f:
        good = f.read()
    # a broken file: every error logged as file:line, the old configuration runs on
    with open(site.conf, "w") as f:
        f.write(good.replace("interval = 0.5; offline_after = 2; backoff_max = 2; },\n  { name = \"air1\"",
                             "interval = 0; offline_after = 2; backoff_max = 2; },\n  { name = \"air1\"")
                .replace('parity = "E";', 'parity = "X";'))
    site.gw.proc.send_signal(sig.SIGHUP)
    wait_for(lambda: "the running configuration stays" in site.gw.logtext(), 10, what="reload refused")
    log = site.gw.logtext()
    assert "reload: %s:" % site.conf in log and "interval must be" in log and "parity" in log
    n = len(site.sub.telemetry("do1"))
    wait_for(lambda: len(site.sub.telemetry("do1")) >= n + 3, 10, what="telemetry after the refused reload")
    # a valid change to the TCP bus only: the RTU bus and its port stay as they are;
    # a device that was not there before starts publishing
    changed = good.replace("response_timeout = 0.3; },\n  { name = \"rtu0\"",
                           "response_timeout = 0.4; },\n  { name = \"rtu0\"")
    changed = changed.replace('  { name = "rmix";', '  { name = "do2";  bus = "tcp0"; unit = 56; profile = "s-rjy-01"; '
                              'interval = 0.5; enabled = false; },\n  { name = "rmix";')
    assert changed != good
    with open(site.conf, "w") as f:
        f.write(changed)
    site.gw.proc.send_signal(sig.SIGHUP)
    wait_for(lambda: "(1 kept running)" in site.gw.logtext(), 10, what="reload applied")
    assert "refuses RS-485 mode" in site.gw.logtext() and site.gw.logtext().count("refuses RS-485 mode") == 1
    n = len(site.sub.telemetry("rmix"))
    wait_for(lambda: len(site.sub.telemetry("rmix")) >= n + 3 and len(site.sub.telemetry("mix1")) > 0, 10,
             what="telemetry after the reload")
    assert site.gw.alive()
