#!/usr/bin/python3
"""agrigw soak and flaky-link run: hours of misbehaving devices, broker and
platform, over a link that loses packets, blackholes and forgets connections.

usage (as root: it makes network namespaces):
  soak.py [--seconds N] [--blackhole S] [--loss-seconds S] [--loss-percent P]
          [--flaky-only] [--seed N] [--report FILE] [--keep]

  make soak         SOAK_SECONDS (7200) with 5-minute blackholes
  make soak-ci      10 minutes with one 90 s blackhole (.ci/run)
  make flaky-link   the link scenarios alone, BLACKHOLE_SECONDS (300)

The lab (netlab.py): agrigw and the Modbus simulators of two TCP buses and
an RTU pty bus in namespace "gw"; the broker, the HTTPS platform sink, the
persistent subscriber and a far Modbus TCP endpoint in "srv"; between them a
router that masquerades and silently forgets connections idle for 120 s.

What happens (the timeline is printed at the start):
- on each simulated bus, one fault episode at a time on a random faulty
  device (f-*): silence, exception replies, bad CRC, garbage, wrong unit id,
  truncated replies, slow replies within the timeout, and on TCP resets of
  every connection (the simulator's "reset"); healthy devices (h-*) get none;
- per cycle: a blackhole of --blackhole s, 30 % loss each way, the router
  forgetting every connection, two broker restarts, the platform answering
  503, hanging, and 400 (dead letters) for a while.
  --flaky-only keeps the link scenarios and drops the rest.

Pass criteria, checked and printed at the end (also to --report):
- agrigw exits 0 on SIGTERM at the end (no crash);
- a silently dead broker connection (blackhole, forgotten NAT entry) is
  noticed within 1.5 x keepalive, and reconnects follow the jittered backoff;
- the far Modbus TCP device behind the router delivers again after the
  router forgot its connection (its last reading < 30 s old at the end);
- no telemetry lost: every seq from 1 to the last at the subscriber; every
  aggregate window the telemetry implies at the platform (or, for the 400
  phases, counted as a dead letter);
- per faulty device the error counters of its retained status match what the
  simulators injected: exceptions exactly; timeouts plus bad frames equal to
  silenced requests, truncated, corrupted and garbage replies (a garbage
  reply is a timeout or a bad frame depending on its bytes; libmodbus does
  not check the unit id of Modbus TCP replies, so "wrongunit" counts only on
  RTU) within a slack of 2 + 0.2 % of polls for timeouts the loaded machine
  makes itself; healthy devices count (nearly) none;
- healthy devices deliver within +-10 % of their schedule;
- memory (VmRSS) and open descriptors flat: sampled every 10 s, the last
  third's mean against the first third's after the first blackhole drained.
"""
import argparse
import os
import random
import re
import secrets
import signal
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (BUILD, REPO, Gateway, PtyPair, Sim, make_ca, make_server_cert,  # noqa: E402
                     make_workdir, rmtree, wait_for, write_conf)
import netlab  # noqa: E402
from peers import (ConnWatch, LogWatch, NetBroker, NetSim, NetSink, ProcSampler,  # noqa: E402
                   SeqSubscriber)

KEEPALIVE = 10
RECONNECT_MIN, RECONNECT_MAX = 0.5, 5.0
CONNECT_TIMEOUT = 15.0          # src/mqtt.c CONNECT_TIMEOUT_MS
WINDOW_MS, GRACE_MS = 10000, 2000
STATUS_INTERVAL = 5
SIM_BUSES = ("tcp0", "tcp1", "rtu0")
MEASURE_SLOP = 0.1              # s: the log is read every 50 ms, the nft rule takes ms to load
ATTEMPT_SLOP = 0.15             # s: the router's clock for an attempt, our log reading


def say(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --- the site --------------------------------------------------------------

class Device:
    def __init__(self, name, bus, unit, profile, interval):
        self.name, self.bus, self.unit, self.profile = name, bus, int(unit), profile
        self.interval = float(interval)
        self.faulty = name.startswith("f-")
        self.healthy = name.startswith("h-")
        self.points = profile_points(profile)


def profile_points(profile):
    """(name, address) of every point of a profile in config/profiles/."""
    with open(os.path.join(REPO, "config", "profiles", profile + ".conf")) as f:
        text = f.read()
    return [(m.group(1), int(m.group(2), 0)) for m in
            re.finditer(r'name = "(\w+)"; table = "\w+"; address = (0x[0-9a-fA-F]+|\d+)', text)]


def site_devices(template):
    rx = r'name = "([\w-]+)";\s+bus = "(\w+)";\s+unit = (\d+);\s+profile = "([\w-]+)";\s+interval = ([\d.]+);'
    return [Device(*m.groups()) for m in re.finditer(rx, template)]


# --- fault injection on one simulated bus ------------------------------------

ONE_SHOT = ("badcrc", "garbage", "wrongunit", "truncate")
KINDS_RTU = ("silence", "exception", "delay") + ONE_SHOT
KINDS_TCP = KINDS_RTU + ("reset",)
EXCEPTION_CODES = (1, 2, 3, 4, 6, 11)


class FaultDriver(threading.Thread):
    """One fault episode at a time on a random faulty device of one bus; what the
    simulator applied is read from its counters around each episode."""

    def __init__(self, bus, sim, devices, rng, stop, gap=(2.0, 10.0), dur=(3.0, 20.0)):
        super().__init__(daemon=True, name="faults-" + bus)
        self.bus, self.sim, self.rng, self.stop_ev = bus, sim, rng, stop
        self.devs = [d for d in devices if d.bus == bus and d.faulty]
        self.kinds = KINDS_RTU if bus.startswith("rtu") else KINDS_TCP
        self.gap, self.dur = gap, dur
        self.inj = {d.name: {k: 0 for k in ("silenced", "exceptions", "badcrc", "garbage", "wrongunit",
                                            "truncate", "delayed", "episodes")} for d in self.devs}
        self.resets = 0
        self.episodes = []               # (t, device, kind, param, applied)
        self.error = None

    def unit(self, d):
        return self.sim.stats()["units"][str(d.unit)]

    def wait(self, s):
        self.stop_ev.wait(s)

    def run(self):
        try:
            while not self.stop_ev.is_set():
                self.wait(self.rng.uniform(*self.gap))
                if self.stop_ev.is_set():
                    break
                self.episode(self.rng.choice(self.devs), self.rng.choice(self.kinds))
        except Exception as e:        # reported at the end, fails the run
            self.error = "%s: %s" % (type(e).__name__, e)
            traceback.print_exc()

    def episode(self, d, kind):
        t = time.time()
        if kind == "reset":
            n = self.rng.randint(1, 3)
            r0 = self.sim.stats()["resets"]
            for _ in range(n):
                self.sim.cmd("reset")
                self.wait(1.0)
            applied = self.sim.stats()["resets"] - r0
            self.resets += applied
            self.episodes.append((t, self.bus, kind, n, applied))
            return
        u0 = self.unit(d)
        dur = self.rng.uniform(*self.dur)
        param = None
        try:
            if kind == "silence":
                self.sim.cmd("silence %d on" % d.unit)
                self.wait(dur)
            elif kind == "exception":
                name, addr = self.rng.choice(d.points)
                param = "%s/%d" % (name, self.rng.choice(EXCEPTION_CODES))
                self.sim.cmd("exception %d %d %s" % (d.unit, addr, param.split("/")[1]))
                self.wait(dur)
            elif kind == "delay":
                param = self.rng.randint(50, 200)       # ms, within the 0.4 s timeout
                self.sim.cmd("delay %d %d" % (d.unit, param))
                self.wait(dur)
            else:
                param = self.rng.randint(1, 5)
                self.sim.cmd("%s %d %d" % (kind, d.unit, param))
                end = time.time() + 15
                while time.time() < end and not self.stop_ev.is_set() and \
                        self.unit(d)["faults"] - u0["faults"] < param:
                    self.wait(0.2)
        finally:
            self.sim.cmd("clear %d" % d.unit)
        u1 = self.unit(d)
        faults = u1["faults"] - u0["faults"]
        inj = self.inj[d.name]
        inj["episodes"] += 1
        inj["exceptions"] += u1["exceptions"] - u0["exceptions"]
        if kind == "silence":
            inj["silenced"] += faults
        elif kind == "delay":
            inj["delayed"] += faults
        elif kind in ONE_SHOT:
            inj[kind] += faults
        self.episodes.append((t, d.name, kind, param, faults))


# --- the run -------------------------------------------------------------------

class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.results = []               # (check, measured, limit, ok)
        self.notes = []
        self.phases = []                # (name, t0, t1, details)
        self.lab = netlab.Netlab()
        self.t_start = None

    # -- bookkeeping ------------------------------------------------------------
    def check(self, name, ok, measured, limit):
        self.results.append((name, str(measured), str(limit), bool(ok)))
        say("%s %s: %s (limit %s)" % ("PASS" if ok else "FAIL", name, measured, limit))

    def rel(self, t):
        return t - self.t_start

    def sleep_until(self, t):
        while time.time() < t:
            time.sleep(min(1.0, max(0.0, t - time.time())))
            if self.gw.proc.poll() is not None:
                raise RuntimeError("agrigw exited with status %s during the run" % self.gw.proc.returncode)

    # -- set-up -------------------------------------------------------------------
    def setup(self):
        self.dir = make_workdir()
        say("work directory", self.dir)
        self.lab.up()
        self.lab.enter("srv")           # broker, sink, subscriber and far simulator live there
        ca_key, ca_crt = make_ca(self.dir, "soak")
        key, crt = make_server_cert(self.dir, ca_key, ca_crt, name="platform", cn=netlab.SRV_ADDR,
                                    san="IP:" + netlab.SRV_ADDR)
        self.broker = NetBroker(self.dir).start()
        self.sink = NetSink(self.dir, crt, key, netlab.SRV_ADDR)
        token = os.path.join(self.dir, "platform-token")
        with open(token, "w") as f:
            f.write("tok-" + secrets.token_hex(16) + "\n")
        state = os.path.join(self.dir, "state")
        os.mkdir(state)
        self.pty = PtyPair(self.dir)
        with open(os.path.join(HERE, "soak-site.conf.in")) as f:
            template = f.read()
        self.devices = site_devices(template)
        self.conf = os.path.join(self.dir, "site.conf")
        subst = dict(SRV_ADDR=netlab.SRV_ADDR, MQTT_PORT=self.broker.port, KEEPALIVE=KEEPALIVE,
                     STATE_DIR=state, URL=self.sink.url, CA_FILE=ca_crt, TOKEN_FILE=token,
                     TCP0_PORT=1, TCP1_PORT=1, FAR_PORT=1, PTY=self.pty.a)
        write_conf(self.conf, template, **subst)
        self.far = NetSim(self.dir, self.conf, "far0", netlab.SRV_ADDR)
        with self.lab.inside("gw"):
            self.sims = {"tcp0": Sim(self.dir, self.conf, "tcp0"), "tcp1": Sim(self.dir, self.conf, "tcp1"),
                         "rtu0": Sim(self.dir, self.conf, "rtu0", rtu_pty=self.pty.b)}
        subst.update(TCP0_PORT=self.sims["tcp0"].port, TCP1_PORT=self.sims["tcp1"].port, FAR_PORT=self.far.port)
        write_conf(self.conf, template, **subst)
        self.sub = SeqSubscriber(self.broker.port, "soak-subscriber")
        self.lab.watch_connects(self.broker.port)
        self.conns = ConnWatch(self.lab)
        with self.lab.inside("gw"):
            self.gw = Gateway(self.dir, self.conf)
        self.t_start = time.time()
        self.log = LogWatch(self.gw.logpath)
        self.mem = ProcSampler(self.gw.proc.pid, 10.0)
        names = [d.name for d in self.devices if not d.name.startswith("x-")]
        wait_for(lambda: {dev for _, dev, *_ in self.sub.snapshot()[0]} >= set(names), 60,
                 what="first telemetry of every device")
        say("agrigw pid %d running, every device answering" % self.gw.proc.pid)

    def teardown(self, keep):
        for o in ("mem", "log", "conns"):
            if hasattr(self, o):
                getattr(self, o).stop()
        if hasattr(self, "gw") and self.gw.proc.poll() is None:
            self.gw.stop()
        for o in ("sub",):
            if hasattr(self, o):
                self.sub.stop()
        for s in list(getattr(self, "sims", {}).values()) + ([self.far] if hasattr(self, "far") else []):
            s.stop()
        for o in ("pty", "sink", "broker"):
            if hasattr(self, o):
                getattr(self, o).stop()
        self.lab.down()
        if hasattr(self, "dir"):
            if keep:
                say("kept", self.dir)
            else:
                rmtree(self.dir)

    # -- the timeline -------------------------------------------------------------
    def timeline(self):
        """(offset s, what, argument) for the whole run."""
        a = self.a
        ev = []
        B, L = a.blackhole, a.loss_seconds
        cycle = B + L + 240             # the events below take B + L + 220 s
        t = 30
        while True:
            c = [(t, "blackhole", B)]
            u = t + B + 25
            if not a.flaky_only:
                c.append((u, "sink", ("503", 20)))
            u += 35
            c.append((u, "loss", L))
            u += L + 10
            if not a.flaky_only:
                c.append((u, "broker-restart", None))
            u += 30
            c.append((u, "nat-flush", None))
            u += 30
            if not a.flaky_only:
                c += [(u, "sink", ("hang", 25)), (u + 40, "broker-restart", None), (u + 70, "sink", ("400", 4))]
            u += 90
            if ev and u > a.seconds - 60:
                break
            ev += c
            t += cycle
            if a.flaky_only:
                break
        return ev, max(a.seconds, ev[-1][0] + 90)

    def run_timeline(self, events, end):
        for off, what, arg in events:
            self.sleep_until(self.t_start + off)
            say("t=%4.0f s  %s %s" % (off, what, arg if arg is not None else ""))
            if what == "blackhole":
                self.blackhole(arg)
            elif what == "loss":
                self.loss(arg)
            elif what == "nat-flush":
                self.nat_flush()
            elif what == "broker-restart":
                t0 = time.time()
                self.broker.stop()
                time.sleep(1.0)
                self.broker.start()
                self.phases.append(("broker restart", t0, time.time(), {}))
            elif what == "sink":
                mode, dur = arg
                t0 = time.time()
                self.sink.mode(mode)
                self.sleep_until(t0 + dur)
                self.sink.mode("ok")
                self.phases.append(("platform " + mode, t0, time.time(), {}))
        self.sleep_until(self.t_start + end)

    def lost_lines(self, t0, t1=None):
        return [(t, l) for t, l in self.log.find(r"mqtt: connection to \S+ lost", t0) if t1 is None or t <= t1]

    def back_line(self, t0):
        got = self.log.find(r"mqtt: connected to \S+ after", t0)
        return got[0] if got else None

    def blackhole(self, dur):
        self.lab.blackhole()
        t0 = time.time()
        self.sleep_until(t0 + dur)
        self.lab.clear()
        t1 = time.time()
        back = wait_for(lambda: self.back_line(t1), 60, what="reconnect after the blackhole")
        lost = self.lost_lines(t0, t1)
        det = lost[0][0] - t0 if lost else None
        attempts = self.conns.between(t0, back[0])
        self.phases.append(("blackhole %d s" % dur, t0, t1, dict(
            detect=det, detect_line=lost[0][1] if lost else "", back=back[0] - t1,
            attempts=attempts, lost_lines=len(lost))))

    def loss(self, dur):
        self.lab.loss(self.a.loss_percent)
        t0 = time.time()
        self.sleep_until(t0 + dur)
        self.lab.clear()
        t1 = time.time()
        tele = self.sub.snapshot()[0]
        got = len({s for s, _, ts, *_ in tele if t0 * 1000 <= ts <= t1 * 1000})
        self.phases.append(("loss %d %% %d s" % (self.a.loss_percent, dur), t0, t1, dict(
            reconnects=len(self.lost_lines(t0, t1)), taken=got)))

    def nat_flush(self):
        dropped0 = self.lab.invalid_dropped()
        self.lab.flush_nat()
        t0 = time.time()
        lost = wait_for(lambda: self.lost_lines(t0), 3 * KEEPALIVE, what="dead connection noticed")
        back = wait_for(lambda: self.back_line(t0), 60, what="reconnect after the NAT forgot")
        self.phases.append(("NAT forgets", t0, back[0], dict(
            detect=lost[0][0] - t0, detect_line=lost[0][1], back=back[0] - lost[0][0],
            dropped=self.lab.invalid_dropped() - dropped0)))

    # -- the end ------------------------------------------------------------------
    def gateway_status(self):
        return self.sub.snapshot()[1].get("", {})

    def drain(self):
        """Everything taken until now delivered: to the subscriber every seq up to
        the one a fresh gateway status names, to the platform every closed window."""
        n0 = self.sub.status_count.get("", 0)
        wait_for(lambda: self.sub.status_count.get("", 0) >= n0 + 1, 4 * STATUS_INTERVAL, step=0.5,
                 what="a fresh gateway status")
        last = self.gateway_status()["seq"]

        def have_all():
            seqs = {s for s, *_ in self.sub.snapshot()[0]}
            return all(s in seqs for s in range(1, last + 1))
        wait_for(have_all, 240, step=1.0, what="telemetry up to seq %d at the subscriber" % last)
        n1 = self.sub.status_count.get("", 0)
        wait_for(lambda: self.sub.status_count.get("", 0) > n1 and self.gateway_status().get("backlog") == 0
                 and self.gateway_status().get("uplink") == "ok", 240, step=0.5,
                 what="the platform backlog to drain")
        return last

    def fresh_statuses(self):
        """Every device's status, republished twice from now on (so it carries the final counters)."""
        names = [d.name for d in self.devices]
        n0 = dict(self.sub.status_count)
        wait_for(lambda: all(self.sub.status_count.get(k, 0) >= n0.get(k, 0) + 2 for k in names),
                 4 * STATUS_INTERVAL + 10, step=0.5, what="fresh device statuses")
        with self.sub.lock:
            return dict(self.sub.status)

    # -- checks -------------------------------------------------------------------
    def check_link(self):
        limit = 1.5 * KEEPALIVE
        dets = [(n, p["detect"], p["detect_line"]) for n, t0, t1, p in self.phases
                if "detect" in p]
        for n, d, line in dets:
            heard = re.search(r"nothing heard from the broker for ([\d.]+) s", line or "")
            self.check("%s: dead connection noticed" % n, d is not None and d <= limit + MEASURE_SLOP,
                       "%.2f s = %.2f x keepalive%s" % (d, d / KEEPALIVE, " (agrigw: silent %s s)" % heard.group(1)
                                                       if heard else "") if d is not None else "never",
                       "1.5 x keepalive = %.1f s" % limit)
        # reconnect attempts during each blackhole, timed by the router from their first SYN: the
        # first at the jittered reconnect_min after the loss was noticed, then each one an
        # unanswered attempt's life plus the next jittered delay later (src/mqtt.c schedule_retry(),
        # backoff_jitter(): a delay d = min(reconnect_min x 2^n, reconnect_max) becomes d/2..d).
        # An attempt lives CONNECT_TIMEOUT, or one keepalive when that is shorter: libmosquitto's
        # keepalive check also closes a socket still connecting, on its whole-second clock (+-1 s).
        life_lo = min(CONNECT_TIMEOUT, KEEPALIVE - 1.0)
        life_hi = min(CONNECT_TIMEOUT, KEEPALIVE + 1.0)
        for n, t0, t1, p in self.phases:
            if not n.startswith("blackhole"):
                continue
            at, bad = p["attempts"], []
            if not at or p["detect"] is None:
                self.check("%s: reconnect attempts" % n, False, "%d attempts" % len(at), ">= 2")
                continue
            steps = [(at[0] - (t0 + p["detect"]), 0.0, 0.0, RECONNECT_MIN)]
            steps += [(b - a, life_lo, life_hi, min(RECONNECT_MIN * 2 ** (i + 1), RECONNECT_MAX))
                      for i, (a, b) in enumerate(zip(at, at[1:]))]
            for gap, l0, l1, d in steps:
                if not l0 + d / 2 - ATTEMPT_SLOP <= gap <= l1 + d + ATTEMPT_SLOP:
                    bad.append("%.2f not in %.2f..%.2f" % (gap, l0 + d / 2, l1 + d))
            self.check("%s: reconnect attempts" % n, len(at) >= 2 and not bad,
                       "%d attempts, first %.2f s after the loss was noticed, then %s s apart; "
                       "back %.1f s after the link%s" % (
                           len(at), steps[0][0], "/".join("%.1f" % g for g, *_ in steps[1:]) or "-", p["back"],
                           "; " + ", ".join(bad) if bad else ""),
                       "attempt life %.0f..%.0f s + d/2..d, d = %.1f s doubling to %.0f s" % (
                           life_lo, life_hi, RECONNECT_MIN, RECONNECT_MAX))
        delays = [float(x) for t, l in self.log.find(r"mqtt: .*(reconnecting|retrying) in [\d.]+ s")
                  for x in re.findall(r"(?:reconnecting|retrying) in ([\d.]+) s", l)]
        # printed to 0.1 s, the first delay (0.25..0.5 s) has about three values: "not all
        # equal" is asked of 8 or more (all equal by chance: 3 x (1/3)^8, 0.05 %)
        ok = all(RECONNECT_MIN / 2 - 0.05 <= d <= RECONNECT_MAX + 0.05 for d in delays) and \
            (len(delays) < 8 or len(set(delays)) > 1)
        self.check("first reconnect delays jittered", ok,
                   "%d outages: %s s" % (len(delays), " ".join("%.1f" % d for d in delays[:16])),
                   "%.2f..%.1f s, not all equal when 8 or more" % (RECONNECT_MIN / 2, RECONNECT_MAX))

    def check_seq(self, drained_seq):
        tele = self.sub.snapshot()[0]
        seqs = {s for s, *_ in tele}
        last = max(seqs)
        if last < drained_seq:
            self.notes.append("the subscriber's last seq %d is below the drained one %d" % (last, drained_seq))
        missing = [s for s in range(1, last + 1) if s not in seqs]
        dup = len(tele) - len(seqs)
        g = self.final_status
        self.check("telemetry at the subscriber", not missing and last >= drained_seq and g.get("dropped", 0) == 0 and
                   g.get("store_dropped", 0) == 0,
                   "seq 1..%d, %d missing%s, %d repeats (at-least-once), dropped %s/%s" %
                   (last, len(missing), " e.g. %s" % missing[:5] if missing else "", dup,
                    g.get("dropped"), g.get("store_dropped")), "0 missing, 0 dropped")
        return tele

    def check_windows(self, tele, end_ms):
        """Every window the telemetry implies is at the platform, or a dead letter."""
        byname = {d.name: d for d in self.devices}
        by_seq = {}
        for s, dev, ts, *_ in tele:
            by_seq[s] = (dev, ts)
        want = set()
        for dev, ts in by_seq.values():
            start = ts // WINDOW_MS * WINDOW_MS
            if start + WINDOW_MS + GRACE_MS + 3000 < end_ms:
                for p, _ in byname[dev].points:
                    want.add((dev, p, start))
        reqs = self.sink.requests()
        ok_w, dead_w, dead_keys, ok_keys = set(), set(), set(), set()
        for r in reqs:
            if not r.get("body"):
                continue
            ws = {(w["device"], w["point"], w["start"]) for w in r["body"]["windows"]}
            if r["answer"] == "ok":
                ok_w |= ws
                ok_keys.add(r["key"])
            elif r["answer"] == "400":
                dead_w |= ws
                dead_keys.add(r["key"])
        missing = want - ok_w - dead_w
        g = self.final_status
        dl = g.get("dead_letters", 0)
        self.check("windows at the platform", not missing and dl == len(dead_keys - ok_keys),
                   "%d windows expected, %d accepted, %d in %d dead letters (agrigw: %s), %d missing%s" %
                   (len(want), len(want & ok_w), len(want & dead_w - ok_w), len(dead_keys), dl, len(missing),
                    " e.g. %s" % sorted(missing)[:3] if missing else ""),
                   "0 missing")

    def check_devices(self, statuses, tele, t_a, t_b, drivers):
        inj = {}
        for drv in drivers:
            inj.update(drv.inj)
        rows = []
        all_ok = True
        counts = {}
        for s, dev, ts, *_ in tele:
            if t_a * 1000 <= ts < t_b * 1000:
                counts.setdefault(dev, set()).add(s)
        for d in self.devices:
            st = statuses.get(d.name, {})
            polls, to, bf, ex = (st.get(k, 0) for k in ("polls", "timeouts", "bad_frames", "exceptions"))
            slack = 2 + int(0.002 * polls)
            n = len(counts.get(d.name, ()))
            want = (t_b - t_a) / d.interval
            row = dict(device=d.name, bus=d.bus, polls=polls, timeouts=to, bad_frames=bf, exceptions=ex,
                       tele=n, expected=want)
            if d.faulty and d.name in inj:
                i = inj[d.name]
                wu = i["wrongunit"] if d.bus.startswith("rtu") else 0
                to_lo = i["silenced"] + i["truncate"]
                bf_lo = i["badcrc"] + wu
                total = to_lo + bf_lo + i["garbage"]
                ok = (ex == i["exceptions"] and total <= to + bf <= total + slack and
                      to_lo <= to <= to_lo + i["garbage"] + slack and bf_lo <= bf <= bf_lo + i["garbage"] + slack)
                row.update(inj=i, ok=ok, want="exc %d, to+bf %d (to >= %d, bf >= %d)" % (
                    i["exceptions"], total, to_lo, bf_lo))
            elif d.healthy or (d.faulty and not inj):    # --flaky-only: nobody gets faults
                ratio = n / want if want else 0
                ok = 0.9 <= ratio <= 1.1 and ex == 0 and to + bf <= slack
                row.update(ok=ok, want="%.0f readings +-10 %%, no errors" % want, ratio=ratio)
            else:
                row.update(ok=None, want="(far, behind the NAT: not checked)")
            if row["ok"] is False:
                all_ok = False
            rows.append(row)
        self.device_rows = rows
        for r in rows:
            if r["ok"] is not None:
                self.check("device %s" % r["device"], r["ok"],
                           "polls %d, timeouts %d, bad frames %d, exceptions %d, readings %d%s" %
                           (r["polls"], r["timeouts"], r["bad_frames"], r["exceptions"], r["tele"],
                            (" (%.1f %%)" % (100 * r["ratio"])) if "ratio" in r else ""), r["want"])
        return all_ok

    def check_far(self, tele):
        """The far Modbus TCP device sits behind the NAT: after the NAT forgot its
        connection, agrigw must open a new one."""
        last = max((ts for s, dev, ts, *_ in tele if dev == "x-far"), default=0)
        age = time.time() - last / 1000
        ok = age < 30
        self.check("far device behind the NAT answers again", ok, "%.0f s since its last reading" % age,
                   "< 30 s")

    def check_memory(self, t_base):
        s = [x for x in self.mem.samples if x[0] >= t_base]
        if len(s) < 6:
            self.check("memory and descriptors flat", False, "%d samples after warm-up" % len(s), ">= 6")
            return
        k = len(s) // 3
        first, last = s[:k], s[-k:]
        rss0 = sum(x[1] for x in first) / k
        rss1 = sum(x[1] for x in last) / k
        fd0 = sum(x[2] for x in first) / k
        fd1 = sum(x[2] for x in last) / k
        anon0 = sum(x[3] for x in first) / k
        anon1 = sum(x[3] for x in last) / k
        rss_lim = max(1024, 0.05 * rss0)
        self.check("VmRSS flat", rss1 - rss0 <= rss_lim,
                   "%.0f -> %.0f kB (%+.0f kB; %d samples, max %d; RssAnon %.0f -> %.0f kB)" % (
                       rss0, rss1, rss1 - rss0, len(s), max(x[1] for x in s), anon0, anon1),
                   "+%.0f kB" % rss_lim)
        self.check("open descriptors flat", fd1 - fd0 <= 1.0,
                   "%.1f -> %.1f (min %d, max %d)" % (fd0, fd1, min(x[2] for x in s), max(x[2] for x in s)),
                   "+1")

    # -- everything ------------------------------------------------------------
    def run(self):
        a = self.a
        events, end = self.timeline()
        say("timeline (%d s; blackhole %d s, %d %% loss for %d s, keepalive %d s%s):" % (
            end, a.blackhole, a.loss_percent, a.loss_seconds, KEEPALIVE, ", link only" if a.flaky_only else ""))
        for off, what, arg in events:
            say("  t=%4d s  %s %s" % (off, what, arg if arg is not None else ""))
        self.setup()
        stop = threading.Event()
        drivers = []
        if not a.flaky_only:
            for i, bus in enumerate(SIM_BUSES):
                drv = FaultDriver(bus, self.sims[bus], self.devices, random.Random(self.rng.random()), stop)
                drv.start()
                drivers.append(drv)
        t_a = time.time() + 5
        self.run_timeline(events, end - 45)
        stop.set()
        for drv in drivers:
            drv.join(60)
        for s in self.sims.values():
            s.cmd("clear all")
        self.lab.clear()
        self.sink.mode("ok")
        t_b = time.time()
        say("faults over; waiting for the backlog to drain")
        drained_seq = self.drain()
        statuses = self.fresh_statuses()
        tele = self.sub.snapshot()[0]
        end_ms = time.time() * 1000
        # everything measured while it runs: now stop it
        self.final_status = self.gateway_status()
        self.mem.stop()
        rc = self.gw.stop()
        self.log.stop()
        self.check("agrigw exit status on SIGTERM", rc == 0, rc, 0)
        for drv in drivers:
            if drv.error:
                self.check("fault driver %s" % drv.bus, False, drv.error, "no error")
        self.check_link()
        time.sleep(2)                   # what the broker took on the way out reaches the subscriber
        tele = self.check_seq(drained_seq)
        self.check_windows(tele, end_ms)
        self.check_devices(statuses, tele, t_a, t_b, drivers)
        self.check_far(tele)
        base = self.t_start + (events[0][0] + a.blackhole + 30 if events and events[0][1] == "blackhole" else 60)
        self.check_memory(base)
        self.report(events, end, drivers)
        return all(ok for _, _, _, ok in self.results)

    def report(self, events, end, drivers):
        out = []
        w = out.append
        a = self.a
        w("agrigw soak report: %s, %d s (%s), seed %s" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), time.time() - self.t_start,
            "flaky link only" if a.flaky_only else "faults + flaky link", a.seed))
        w("keepalive %d s, blackhole %d s, loss %d %% for %d s, NAT idle timeout %d s" % (
            KEEPALIVE, a.blackhole, a.loss_percent, a.loss_seconds, self.lab.nat_idle_s))
        w("")
        w("%-46s %-6s %s" % ("check", "result", "measured (limit)"))
        w("-" * 110)
        for name, meas, lim, ok in self.results:
            w("%-46s %-6s %s (%s)" % (name, "PASS" if ok else "FAIL", meas, lim))
        w("")
        w("link phases:")
        for n, t0, t1, p in self.phases:
            extra = ", ".join("%s %s" % (k, ("%.2f" % v) if isinstance(v, float) else
                                         (len(v) if isinstance(v, list) else v))
                              for k, v in p.items() if k != "detect_line")
            w("  t=%5.0f..%5.0f s  %-22s %s" % (self.rel(t0), self.rel(t1), n, extra))
        if getattr(self, "device_rows", None):
            w("")
            w("%-7s %-5s %6s | %8s %8s %8s | %5s %5s %5s %5s %5s %5s %5s | %s" % (
                "device", "bus", "polls", "timeouts", "badfrm", "except", "sil", "trunc", "crc", "garb",
                "wunit", "exc", "delay", "readings"))
            for r in self.device_rows:
                i = r.get("inj")
                w("%-7s %-5s %6d | %8d %8d %8d | %s | %d/%.0f %s" % (
                    r["device"], r["bus"], r["polls"], r["timeouts"], r["bad_frames"], r["exceptions"],
                    " ".join("%5d" % i[k] for k in ("silenced", "truncate", "badcrc", "garbage", "wrongunit",
                                                      "exceptions", "delayed")) if i else " " * 41,
                    r["tele"], r["expected"], "" if r["ok"] is None else ("ok" if r["ok"] else "FAIL")))
            w("  (left: agrigw's counters from the retained device status; right: injected, counted by the"
              " simulators)")
        if drivers:
            w("  TCP connection resets: %s" % ", ".join("%s %d" % (d.bus, d.resets) for d in drivers
                                                          if d.bus.startswith("tcp")))
            kinds = {}
            for drv in drivers:
                for e in drv.episodes:
                    kinds[e[2]] = kinds.get(e[2], 0) + 1
            w("  fault episodes: %s" % ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
        if self.mem.samples:
            s = self.mem.samples
            w("")
            w("VmRSS kB / RssAnon kB / open fds, every minute: %s" % " ".join(
                "%d/%d/%d" % (x[1], x[3], x[2]) for x in s[::6]))
        for n in self.notes:
            w("note: " + n)
        passed = sum(1 for r in self.results if r[3])
        failed = len(self.results) - passed
        w("")
        w("%d passed, %d failed" % (passed, failed))
        text = "\n".join(out) + "\n"
        print("\n" + text, flush=True)
        if a.report:
            os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
            with open(a.report, "w") as f:
                f.write(text)
            say("report written to", a.report)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=None,
                    help="length of the run (default SOAK_SECONDS or 7200; --flaky-only: what its phases need)")
    ap.add_argument("--blackhole", type=int, default=int(os.environ.get("BLACKHOLE_SECONDS", 300)))
    ap.add_argument("--loss-seconds", type=int, default=None)
    ap.add_argument("--loss-percent", type=int, default=30)
    ap.add_argument("--flaky-only", action="store_true")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", 0)) or None)
    ap.add_argument("--report", default=os.path.join(BUILD, "soak-report.txt"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if a.seconds is None:
        a.seconds = 0 if a.flaky_only else int(os.environ.get("SOAK_SECONDS", 7200))
    if a.seed is None:
        a.seed = random.randrange(1, 1 << 30)
    if a.loss_seconds is None:
        a.loss_seconds = 120 if a.blackhole >= 300 else 60
    if os.geteuid() != 0:
        print("soak.py: needs root (network namespaces, nft)", file=sys.stderr)
        return 2
    # SIGTERM (make's, CI's timeout) ends the run like Ctrl-C: the lab is taken down
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    s = Soak(a)
    ok = False
    try:
        ok = s.run()
    except Exception:
        traceback.print_exc()
        print("0 passed, 1 failed")
    finally:
        s.teardown(keep=a.keep or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
