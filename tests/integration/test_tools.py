"""The field tools (agrigw scan, read, poll --once, write) against the simulator,
over Modbus TCP and over RTU through a socat pty pair."""
import fcntl
import math
import os
import re
import shutil
import signal
import subprocess
import termios
import time

import pytest

from harness import BUILD, Gateway, PtyPair, Sim, make_workdir, rmtree, wait_for, write_conf

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = open(os.path.join(HERE, "tools-site.conf.in")).read()
AGRIGW = os.path.join(BUILD, "agrigw")
BUSY = "port busy: is the agrigw service running? (systemctl stop agrigw)"


class Site:
    """A pty pair and one simulator per bus of tools-site.conf."""

    def __init__(self):
        self.dir = make_workdir()
        self.pty = PtyPair(self.dir)
        self.conf = os.path.join(self.dir, "site.conf")
        # the simulators need the config for the registers; the TCP port comes after
        write_conf(self.conf, TEMPLATE, PTY=self.pty.a, TCP_PORT=1)
        self.tcp = Sim(self.dir, self.conf, "tcp0")
        self.rtu = Sim(self.dir, self.conf, "rtu0", rtu_pty=self.pty.b)
        write_conf(self.conf, TEMPLATE, PTY=self.pty.a, TCP_PORT=self.tcp.port)
        self.host = "127.0.0.1:%d" % self.tcp.port

    def close(self):
        self.tcp.stop()
        self.rtu.stop()
        self.pty.stop()
        rmtree(self.dir)


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


def run(*args, timeout=120):
    return subprocess.run([AGRIGW] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def scan_rows(out):
    """Rows of the scan summary: (unit, baud or None, parity or None, answer)."""
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)\s+(\d+)\s+([NEO])\s+(data|exception.*|garbled.*)$", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
            continue
        m = re.match(r"^\s*(\d+)\s+(data|exception.*|garbled.*)$", line)
        if m:
            rows.append((int(m.group(1)), None, None, m.group(2)))
    return rows


def decoded(out):
    """The decoded table of `agrigw read`: {(address, type): {order: text}}."""
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if l.split()[:2] == ["at", "type"])
    orders = lines[head].split()[2:]
    table = {}
    for line in lines[head + 1:]:
        f = line.split()
        table[(int(f[0], 16), f[1])] = dict(zip(orders, f[2:]))
    return table


def poll_rows(out):
    """Rows of `agrigw poll --once`: {(device, point): (raw, value, status)}."""
    rows = {}
    for line in out.splitlines()[1:]:
        m = re.match(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(?:\S+\s+)?(ok|range|nan|exception|no reply)$", line)
        if m:
            rows[(m.group(1), m.group(2))] = (m.group(3), m.group(4), m.group(5))
    return rows


def one_line_error(r):
    lines = [l for l in r.stderr.splitlines() if l.startswith("agrigw: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


# ---- scan -------------------------------------------------------------------

def test_scan_tcp_finds_exactly_the_simulated_units(site):
    r = run("scan", "--host", site.host, "--units", "1-60")
    assert r.returncode == 0, r.stderr
    rows = scan_rows(r.stdout)
    assert sorted(u for u, _, _, _ in rows) == [1, 12, 55], r.stdout
    assert all(a == "data" for _, _, _, a in rows)
    assert "3 answered, 60 probes" in r.stdout
    # not a terminal: occasional progress lines, not \r rewrites
    assert "scan 127.0.0.1:" in r.stderr and "\r" not in r.stderr


def test_scan_rtu_at_two_bauds_counts_exceptions(site):
    r = run("scan", "--port", site.pty.a, "--baud", "9600,19200", "--parity", "E", "--units", "1-45",
            "--timeout", "0.1")
    assert r.returncode == 0, r.stderr
    rows = scan_rows(r.stdout)
    # the pty does not enforce the baud rate: every unit answers at both
    assert sorted((u, b) for u, b, _, _ in rows) == [(1, 9600), (1, 19200), (3, 9600), (3, 19200),
                                                      (42, 9600), (42, 19200)], r.stdout
    assert all(p == "E" for _, _, p, _ in rows)
    # xy-md02 has no holding registers: the FC03 probe gets an exception, and that counts
    assert all(a.startswith("exception 2") for u, _, _, a in rows if u == 3), r.stdout
    assert all(a == "data" for u, _, _, a in rows if u != 3), r.stdout
    assert "90 probes" in r.stdout


def test_scan_with_a_configured_bus_and_nothing_answering(site):
    r = run("scan", "-f", site.conf, "--bus", "rtu0", "--units", "100-103,200", "--timeout", "0.05")
    assert r.returncode == 1
    assert "nothing answered on %s" % site.pty.a in one_line_error(r)


def test_scan_ctrl_c_stops_and_prints_what_was_found(site):
    # unit 1 answers at once, then units 2..11 cost 1 s each: Ctrl-C lands among them
    p = subprocess.Popen([AGRIGW, "scan", "--host", site.host, "--units", "1-20", "--timeout", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 130, err
    assert "interrupted" in out
    assert [u for u, _, _, _ in scan_rows(out)] == [1], out


# ---- read -------------------------------------------------------------------

def test_read_shows_u32_lux_in_abcd(site):
    lux = site.tcp.values()["lux1"]["points"]["lux"]
    r = run("read", "--host", site.host, "--unit", 1, "--addr", "0x0007", "--count", 2)
    assert r.returncode == 0, r.stderr
    assert "0x0007 (7)" in r.stdout and "0x0008 (8)" in r.stdout
    hi, lo = lux >> 16, lux & 0xffff
    assert re.search(r"0x0007 \(7\)\s+0x%04X\s+%d\b" % (hi, hi), r.stdout), r.stdout
    assert re.search(r"0x0008 \(8\)\s+0x%04X\s+%d\b" % (lo, lo), r.stdout), r.stdout
    t = decoded(r.stdout)
    assert int(t[(7, "u32")]["ABCD"]) == lux
    assert int(t[(7, "u32")]["CDAB"]) == (lo << 16 | hi)
    assert set(t[(7, "u32")]) == {"ABCD", "CDAB", "BADC", "DCBA"}
    assert (7, "f64") not in t and (8, "u32") not in t     # only where the type fits


def test_read_shows_f32_cdab_and_filters_type_and_order(site):
    want = site.tcp.values()["nh4"]["points"]
    r = run("read", "-f", site.conf, "--bus", "tcp0", "--unit", 12, "--addr", 1, "--count", 4)
    assert r.returncode == 0, r.stderr
    t = decoded(r.stdout)
    assert math.isclose(float(t[(1, "f32")]["CDAB"]), want["nh4"], rel_tol=1e-6)
    assert math.isclose(float(t[(3, "f32")]["CDAB"]), want["water_temp"], rel_tol=1e-6)
    assert (1, "f64") in t and (1, "u64") in t
    r = run("read", "-f", site.conf, "--bus", "tcp0", "--unit", 12, "--addr", 1, "--type", "f32",
            "--order", "CDAB")
    assert r.returncode == 0, r.stderr
    t = decoded(r.stdout)
    assert list(t) == [(1, "f32")] and list(t[(1, "f32")]) == ["CDAB"]
    assert math.isclose(float(t[(1, "f32")]["CDAB"]), want["nh4"], rel_tol=1e-6)


def test_read_over_rtu_with_scale(site):
    want = site.rtu.values()["soil"]["points"]
    r = run("read", "-f", site.conf, "--bus", "rtu0", "--unit", 1, "--addr", 0, "--count", 7,
            "--type", "u16", "--scale", "0.1")
    assert r.returncode == 0, r.stderr
    assert "at 19200 8E1" in r.stdout
    t = decoded(r.stdout)
    assert math.isclose(float(t[(0, "u16")]["ABCD"]), want["soil_moisture"], abs_tol=1e-6)
    assert math.isclose(float(t[(3, "u16")]["ABCD"]), want["ph"], abs_tol=1e-6)
    assert len(t) == 7


def test_read_refused_and_unanswered(site):
    r = run("read", "--port", site.pty.a, "--unit", 3, "--addr", 0)
    assert r.returncode == 1
    assert "refused" in one_line_error(r) and "Illegal data address" in r.stderr
    r = run("read", "--port", site.pty.a, "--unit", 9, "--addr", 0, "--timeout", "0.1")
    assert r.returncode == 1
    assert "no response" in one_line_error(r)


# ---- poll --once ----------------------------------------------------------------

def test_poll_once_prints_every_point_ok(site):
    r = run("poll", "--once", "-f", site.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = poll_rows(r.stdout)
    want = {}
    for sim in (site.tcp, site.rtu):
        for dev, v in sim.values().items():
            for point, value in v["points"].items():
                want[(dev, point)] = value
    assert set(rows) == set(want), r.stdout         # the disabled device is not polled
    for key, (raw, value, status) in rows.items():
        assert status == "ok", (key, r.stdout)
        assert raw.startswith("0x")
        assert math.isclose(float(value), want[key], rel_tol=1e-4, abs_tol=0.006), (key, value, want[key])
    assert "6 devices polled, 6 answered, 0 failed" in r.stdout


def test_poll_once_fails_when_a_device_is_silent(site):
    site.tcp.cmd("silence 55 on")
    site.rtu.cmd("exception 1 2 2")       # soil's ec refused: a point, not a device, fails
    r = run("poll", "--once", "-f", site.conf)
    assert r.returncode == 1, r.stdout
    rows = poll_rows(r.stdout)
    assert rows[("do1", "do")][2] == "no reply" and rows[("do1", "water_temp")][2] == "no reply"
    assert rows[("soil", "ec")][2] == "exception"
    assert rows[("soil", "ph")][2] == "ok" and rows[("lux1", "lux")][2] == "ok"
    assert "device 'do1' (unit 55 on bus 'tcp0'): no response" in one_line_error(r)
    # one device alone
    r = run("poll", "--once", "-f", site.conf, "--device", "lux1")
    assert r.returncode == 0 and list(poll_rows(r.stdout)) == [("lux1", "lux")]


# ---- write ------------------------------------------------------------------------

def test_write_needs_yes_then_writes_and_reads_back(site):
    before = site.tcp.values()["do1"]["points"]["do"]
    assert before != 7.35
    args = ["write", "--host", site.host, "--unit", 55, "--addr", "0x0101", "--value", 735]
    r = run(*args)
    assert r.returncode == 1
    assert "would write 735 (0x02DF) to holding register 0x0101" in r.stdout
    assert "--yes" in one_line_error(r)
    assert site.tcp.values()["do1"]["points"]["do"] == before
    r = run(*args, "--yes")
    assert r.returncode == 0, r.stderr
    assert "read back: 735 (0x02DF)" in r.stdout
    assert math.isclose(site.tcp.values()["do1"]["points"]["do"], 7.35)
    # over RTU, a negative value as s16
    r = run("write", "-f", site.conf, "--bus", "rtu0", "--unit", 42, "--addr", 1, "--value", -512, "--yes")
    assert r.returncode == 0, r.stderr
    assert "read back: 65024 (0xFE00)" in r.stdout
    assert math.isclose(site.rtu.values()["co2"]["points"]["air_temp"], -5.12)


def test_write_refused_by_the_device(site):
    r = run("write", "--port", site.pty.a, "--unit", 3, "--table", "coil", "--addr", 0, "--value", "on",
            "--yes")
    assert r.returncode == 1
    assert "refused the write of coil 0x0000" in one_line_error(r)


# ---- errors ----------------------------------------------------------------------

def test_missing_port(site):
    path = os.path.join(site.dir, "ttyUSB9")
    for args in (["read", "--port", path, "--unit", 1, "--addr", 0], ["scan", "--port", path]):
        r = run(*args)
        assert r.returncode == 1
        assert one_line_error(r) == "agrigw: %s: no such port" % path
        assert r.stdout == ""


def test_busy_port_held_with_tiocexcl(site):
    fd = os.open(site.pty.a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, termios.TIOCEXCL)
        for args in (["read", "--port", site.pty.a, "--unit", 1, "--addr", 0],
                     ["scan", "-f", site.conf, "--bus", "rtu0"],
                     ["write", "--port", site.pty.a, "--unit", 1, "--addr", 0, "--value", 1, "--yes"]):
            r = run(*args)
            assert r.returncode == 1
            assert one_line_error(r) == "agrigw: %s: %s" % (site.pty.a, BUSY)
        r = run("poll", "--once", "-f", site.conf)
        assert r.returncode == 1
        assert "agrigw: %s: %s" % (site.pty.a, BUSY) in r.stderr.splitlines()
        assert poll_rows(r.stdout)[("lux1", "lux")][2] == "ok"
        assert poll_rows(r.stdout)[("soil", "ph")][2] == "no reply"
    finally:
        fcntl.ioctl(fd, termios.TIOCNXCL)
        os.close(fd)
    # let go: the tools work again, and leave the port as they found it
    assert run("read", "--port", site.pty.a, "--unit", 1, "--addr", 0).returncode == 0
    assert run("read", "--port", site.pty.a, "--unit", 1, "--addr", 0).returncode == 0


def test_busy_port_held_by_the_daemon(site):
    gw = Gateway(site.dir, site.conf)
    try:
        def busy():
            r = run("read", "--port", site.pty.a, "--unit", 1, "--addr", 0)
            return r.returncode == 1 and BUSY in r.stderr and r
        try:
            r = wait_for(busy, 20, step=0.2, what="the daemon to hold the port")
        except AssertionError:
            last = run("read", "--port", site.pty.a, "--unit", 1, "--addr", 0)
            raise AssertionError("the daemon does not hold the port; tool: %r; daemon log:\n%s"
                                 % (last.stderr, gw.logtext()))
        assert one_line_error(r) == "agrigw: %s: %s" % (site.pty.a, BUSY)
        assert site.rtu.stats()["bad_frames"] == 0
    finally:
        gw.stop()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to run the tool as another user")
def test_permission_denied_hints_at_dialout(site):
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", AGRIGW, "read",
                        "--port", site.pty.a, "--unit", "1", "--addr", "0"], capture_output=True, text=True)
    assert r.returncode == 1
    line = one_line_error(r)
    assert line.startswith("agrigw: %s: permission denied" % site.pty.a) and "group 'dialout'" in line


def test_tcp_refused_and_usage_errors(site):
    r = run("read", "--host", "127.0.0.1:1", "--unit", 1, "--addr", 0)
    assert r.returncode == 1 and "cannot connect" in one_line_error(r)
    assert run("scan", "--host", site.host, "--unit", 1).returncode == 2          # --unit is read/write's
    assert run("read", "--unit", 1, "--addr", 0).returncode == 2                  # where?
    assert run("scan", "--host", site.host, "--baud", 9600).returncode == 2       # no baud on TCP
    assert run("read", "--port", site.pty.a, "--unit", 1, "--addr", "0x10000").returncode == 2
    assert run("poll", "-f", site.conf).returncode == 2                           # --once
    r = run("-h")
    assert r.returncode == 0 and all(c in r.stdout for c in ("scan", "read", "poll", "write"))
    r = run("read", "-h")
    assert r.returncode == 0 and "--order" in r.stdout
