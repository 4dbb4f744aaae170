"""Real peers for agrigw's integration tests and demo.

A mosquitto broker on a free loopback port, the Modbus simulator (agrigw-sim)
over TCP or over RTU through a socat pty pair, agrigw itself, an MQTT
subscriber, an HTTPS platform (https_sink.py) and a throwaway CA made with
openssl.  Every wait polls for a condition up to a deadline; nothing checks
durations.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("AGRIGW_BUILD", os.path.join(REPO, "build")))
VALGRIND = os.environ.get("VALGRIND", "")


def free_port():
    """A port that was free a moment ago (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=20.0, step=0.05, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """mosquitto on a free loopback port; restartable on the same port."""

    def __init__(self, workdir, tls=None, persistence=True):
        self.dir = workdir
        self.tls = tls          # dict(cafile, certfile, keyfile) or None
        self.persistence = persistence
        self.port = None
        self.proc = None

    def start(self):
        for _ in range(20):
            port = self.port or free_port()
            conf = os.path.join(self.dir, "mosquitto.conf")
            lines = ["listener %d 127.0.0.1" % port, "allow_anonymous true",
                     "max_queued_messages 100000", "log_dest stdout"]
            if self.persistence:
                lines += ["persistence true", "persistence_location %s/" % self.dir,
                          "autosave_interval 0"]
            if self.tls:
                lines += ["cafile " + self.tls["cafile"], "certfile " + self.tls["certfile"],
                          "keyfile " + self.tls["keyfile"]]
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
            if self.port:          # a restart on the same port: wait for it to be released
                time.sleep(0.5)
        raise RuntimeError("mosquitto did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Sim:
    """agrigw-sim serving one bus of a site config (TCP, or RTU on a pty)."""

    def __init__(self, workdir, conf, bus, rtu_pty=None, extra=(), tcp_port=0):
        self.dir = workdir
        self.values_file = os.path.join(workdir, "values-%s.json" % bus)
        self.control = os.path.join(workdir, "sim-%s.sock" % bus)
        args = [os.path.join(BUILD, "agrigw-sim"), "-f", conf, "--bus", bus,
                "--values", self.values_file, "--control", self.control, "--quiet"]
        args += ["--rtu", rtu_pty] if rtu_pty else ["--tcp", "127.0.0.1:%d" % tcp_port]
        args += list(extra)
        self.log = open(os.path.join(workdir, "sim-%s.log" % bus), "ab")
        for attempt in range(20):
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
            line = self._readline(15)
            if line.startswith("READY") or not tcp_port:
                break
            self.proc.wait()
            time.sleep(0.5)     # a fixed port may still be held by the one before
        m = re.match(r"READY (tcp|rtu) (\S+)", line or "")
        if not m:
            self.stop()
            raise RuntimeError("simulator did not start: %r" % line)
        self.port = int(m.group(2)) if m.group(1) == "tcp" else None

    def _readline(self, timeout):
        end = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < end and not buf.endswith(b"\n"):
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                c = os.read(fd, 1)
                if not c:
                    break
                buf += c
        return buf.decode(errors="replace").strip()

    def cmd(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.control)
            s.sendall((line + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = data.decode().strip()
        if reply.startswith("error"):
            raise RuntimeError("sim %r: %s" % (line, reply))
        return reply

    def stats(self):
        return json.loads(self.cmd("stats"))

    def values(self):
        with open(self.values_file) as f:
            return json.load(f)["devices"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class PtyPair:
    """socat pty pair: the gateway opens one end, the simulator the other."""

    def __init__(self, workdir, name="rtu"):
        self.a = os.path.join(workdir, name + "-gw")
        self.b = os.path.join(workdir, name + "-sim")
        self.proc = subprocess.Popen(
            ["socat", "pty,raw,echo=0,link=" + self.a, "pty,raw,echo=0,link=" + self.b],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.a) and os.path.exists(self.b), 10, what="socat ptys")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class Gateway:
    """The agrigw daemon under test, its log in a file."""

    def __init__(self, workdir, conf, args=("-d",), env=None):
        self.logpath = os.path.join(workdir, "agrigw.log")
        self.log = open(self.logpath, "ab")
        cmd = [os.path.join(BUILD, "agrigw"), "-f", conf] + list(args)
        if VALGRIND:
            cmd = VALGRIND.split() + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, **env) if env else None)

    def logtext(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(60 if VALGRIND else 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self.log.close()
        return rc


class Subscriber:
    """Collects every message under a topic filter, in arrival order."""

    def __init__(self, port, topic="agrigw/#", client_id=None, clean=True, tls=None):
        self.msgs = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.c = mqtt.Client(client_id=client_id or "", clean_session=clean)
        if tls:
            self.c.tls_set(ca_certs=tls)
        self.c.reconnect_delay_set(min_delay=1, max_delay=1)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc: (c.subscribe(topic, qos=1), self.connected.set())
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        wait_for(self.connected.is_set, 10, what="subscriber connect")

    def _on_message(self, c, u, m):
        try:
            body = json.loads(m.payload.decode())
        except ValueError:
            body = {"_raw": m.payload}
        with self.lock:
            self.msgs.append((m.topic, body, m.retain))

    def select(self, suffix=None, device=None):
        with self.lock:
            out = list(self.msgs)
        if device:
            out = [x for x in out if x[0].split("/")[-2] == device]
        if suffix:
            out = [x for x in out if x[0].endswith("/" + suffix)]
        return out

    def telemetry(self, device=None):
        return [b for t, b, r in self.select("telemetry", device)]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


class HttpsSink:
    """https_sink.py on a free loopback port: records every request, answers per mode."""

    def __init__(self, workdir, certfile, keyfile, client_ca=None, name="sink", port=0):
        self.dir = workdir
        self.logpath = os.path.join(workdir, name + "-requests.jsonl")
        self.control = os.path.join(workdir, name + ".sock")
        args = ["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "https_sink.py"),
                "--cert", certfile, "--key", keyfile, "--port", str(port),
                "--log", self.logpath, "--control", self.control]
        if client_ca:
            args += ["--client-ca", client_ca]
        self.errlog = open(os.path.join(workdir, name + ".log"), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.errlog)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode().strip() if r else ""
        m = re.match(r"READY (\d+)$", line)
        if not m:
            self.stop()
            raise RuntimeError("https sink did not start: %r" % line)
        self.port = int(m.group(1))
        self.url = "https://127.0.0.1:%d/ingest" % self.port

    def cmd(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.control)
            s.sendall((line + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = data.decode().strip()
        if reply.startswith("error"):
            raise RuntimeError("sink %r: %s" % (line, reply))
        return reply

    def mode(self, mode):
        return self.cmd("mode " + mode)

    def stats(self):
        return json.loads(self.cmd("stats"))

    def requests(self):
        """Every request so far, oldest first (dicts, see https_sink.py)."""
        try:
            with open(self.logpath) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def windows(self, answered="ok"):
        """(key, window) for every window in requests answered with 'answered'."""
        return [(r["key"], w) for r in self.requests() if r["answer"] == answered and r["body"]
                for w in r["body"]["windows"]]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.errlog.close()


def make_ca(d, name, cn_server=None):
    key = os.path.join(d, name + "-ca.key")
    crt = os.path.join(d, name + "-ca.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=agrigw test CA " + name, "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


def make_server_cert(d, ca_key, ca_crt, name="server", cn="localhost",
                     san="IP:127.0.0.1,DNS:localhost"):
    """A certificate for 'san' signed by the CA; files NAME.key and NAME.crt in d."""
    key = os.path.join(d, name + ".key")
    csr = os.path.join(d, name + ".csr")
    crt = os.path.join(d, name + ".crt")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


def write_conf(path, text, **subst):
    for k, v in subst.items():
        text = text.replace("@%s@" % k, str(v))
    with open(path, "w") as f:
        f.write(text)
    return path


def make_workdir():
    d = tempfile.mkdtemp(prefix="agrigw-test-")
    # mosquitto started as root drops to its own user: let it read and write here
    os.chmod(d, 0o777)
    os.symlink(os.path.join(REPO, "config", "profiles"), os.path.join(d, "profiles"))
    return d


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)
