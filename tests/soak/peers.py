"""Peers and observers for the soak and flaky-link runs (tests/soak/soak.py).

The broker and the HTTPS sink of tests/integration/harness.py listen on
127.0.0.1 only; here they also listen on the server namespace's veth address,
so the gateway reaches them over the lab's link (netlab.py) while the
subscriber keeps its loopback path.  The subscriber keeps one small record
per telemetry message (a soak sees hundreds of thousands).  LogWatch stamps
every gateway log line with the time it appeared (the daemon's own stamps
have whole seconds), ProcSampler samples the daemon's memory and open files.
"""
import json
import os
import re
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import (BUILD, Broker, HttpsSink, Sim, Subscriber, free_port, port_open,  # noqa: E402
                     wait_for)


class NetBroker(Broker):
    """mosquitto listening on every address of its network namespace."""

    def start(self):
        for _ in range(20):
            port = self.port or free_port()
            conf = os.path.join(self.dir, "mosquitto.conf")
            lines = ["listener %d" % port, "allow_anonymous true",
                     "max_queued_messages 1000000",
                     "log_dest stdout", "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                     "persistence true", "persistence_location %s/" % self.dir,
                     "autosave_interval 0"]
            with open(conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            log = open(os.path.join(self.dir, "mosquitto.log"), "ab")
            self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=log, stderr=log)
            log.close()
            try:
                wait_for(lambda: self.proc.poll() is not None or port_open(port), 10, what="mosquitto")
            except AssertionError:
                pass
            if self.proc.poll() is None and port_open(port):
                self.port = port
                return self
            self.stop()
            if self.port:
                time.sleep(0.5)
        raise RuntimeError("mosquitto did not start")


class NetSink(HttpsSink):
    """https_sink.py on HOST (harness.HttpsSink's process, another address)."""

    def __init__(self, workdir, certfile, keyfile, host, name="sink", port=0):
        self.dir = workdir
        self.logpath = os.path.join(workdir, name + "-requests.jsonl")
        self.control = os.path.join(workdir, name + ".sock")
        here = os.path.dirname(os.path.abspath(__file__))
        args = ["/usr/bin/python3", os.path.join(here, "..", "integration", "https_sink.py"),
                "--cert", certfile, "--key", keyfile, "--host", host, "--port", str(port),
                "--log", self.logpath, "--control", self.control]
        self.errlog = open(os.path.join(workdir, name + ".log"), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.errlog)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode().strip() if r else ""
        m = re.match(r"READY (\d+)$", line)
        if not m:
            self.stop()
            raise RuntimeError("https sink did not start: %r" % line)
        self.port = int(m.group(1))
        self.url = "https://%s:%d/ingest" % (host, self.port)


class SeqSubscriber(Subscriber):
    """A persistent QoS 1 subscriber that keeps, per telemetry message, only
    (seq, device, ts, historical), and the last retained status per topic."""

    def __init__(self, port, client_id):
        self.tele = []                # (seq, device, ts, historical, arrival)
        self.status = {}              # device name or "" (the gateway) -> last status body
        self.status_count = {}
        super().__init__(port, client_id=client_id, clean=False)

    def _on_message(self, c, u, m):
        parts = m.topic.split("/")
        try:
            body = json.loads(m.payload.decode())
        except ValueError:
            return
        with self.lock:
            if parts[-1] == "telemetry":
                self.tele.append((body["seq"], parts[-2], body["ts"], bool(body.get("historical")),
                                  time.time()))
            elif parts[-1] == "status":
                key = parts[-2] if len(parts) == 5 else ""
                self.status[key] = body
                self.status_count[key] = self.status_count.get(key, 0) + 1

    def snapshot(self):
        with self.lock:
            return list(self.tele), dict(self.status)


class LogWatch:
    """Follows the gateway's log file; every line with the time it appeared."""

    def __init__(self, path, step=0.05):
        self.path = path
        self.lines = []               # (time.time(), line)
        self.lock = threading.Lock()
        self.step = step
        self.stopped = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not os.path.exists(self.path) and not self.stopped.is_set():
            time.sleep(self.step)
        buf = b""
        with open(self.path, "rb") as f:
            while not self.stopped.is_set():
                chunk = f.read()
                if chunk:
                    now = time.time()
                    buf += chunk
                    *done, buf = buf.split(b"\n")
                    with self.lock:
                        self.lines.extend((now, l.decode(errors="replace")) for l in done)
                else:
                    time.sleep(self.step)

    def find(self, pattern, since=0.0):
        """(time, line) of every line matching the regular expression after 'since'."""
        rx = re.compile(pattern)
        with self.lock:
            return [(t, l) for t, l in self.lines if t >= since and rx.search(l)]

    def stop(self):
        self.stopped.set()
        self.t.join(2)


class ProcSampler:
    """VmRSS and RssAnon (kB) and the number of open descriptors of a process
    every 'every' s.  RssAnon is the heap and stacks; VmRSS also counts the
    pages of the libraries' code as they are first used."""

    def __init__(self, pid, every=10.0):
        self.pid = pid
        self.every = every
        self.samples = []             # (time.time(), rss_kb, fds, anon_kb)
        self.stopped = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
            rss, anon = int(st["VmRSS"].split()[0]), int(st["RssAnon"].split()[0])
            fds = len(os.listdir("/proc/%d/fd" % self.pid))
        except (OSError, KeyError, ValueError):
            return None
        return (time.time(), rss, fds, anon)

    def _run(self):
        while not self.stopped.is_set():
            s = self.sample()
            if s:
                self.samples.append(s)
            self.stopped.wait(self.every)

    def stop(self):
        self.stopped.set()
        self.t.join(2)


class NetSim(Sim):
    """agrigw-sim serving a TCP bus on HOST (harness.Sim listens on 127.0.0.1 only)."""

    def __init__(self, workdir, conf, bus, host):
        self.dir = workdir
        self.values_file = os.path.join(workdir, "values-%s.json" % bus)
        self.control = os.path.join(workdir, "sim-%s.sock" % bus)
        args = [os.path.join(BUILD, "agrigw-sim"), "-f", conf, "--bus", bus,
                "--values", self.values_file, "--control", self.control, "--quiet",
                "--tcp", "%s:0" % host]
        self.log = open(os.path.join(workdir, "sim-%s.log" % bus), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        line = self._readline(15)
        m = re.match(r"READY tcp (\d+)", line or "")
        if not m:
            self.stop()
            raise RuntimeError("simulator did not start: %r" % line)
        self.port = int(m.group(1))


class ConnWatch:
    """Polls the lab router's record of connection attempts to the broker
    (netlab.Netlab.connects()): when each attempt sent its first SYN."""

    def __init__(self, lab, every=2.0):
        self.lab = lab
        self.every = every
        self.first_seen = {}
        self.stopped = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                for k, t in self.lab.connects().items():
                    self.first_seen.setdefault(k, t)
            except (RuntimeError, ValueError, OSError):
                pass
            self.stopped.wait(self.every)

    def between(self, t0, t1):
        return sorted(t for t in list(self.first_seen.values()) if t0 <= t <= t1)

    def stop(self):
        self.stopped.set()
        self.t.join(5)
