"""A three-namespace network for agrigw's flaky-link and soak tests.

    [gw] gw0 10.201.1.2 ---- mid-gw 10.201.1.1 [mid] mid-srv 10.201.2.1 ---- srv0 10.201.2.2 [srv]

- gw:  agrigw and the Modbus simulators it reaches on its own loopback.
- mid: a router that masquerades gw's connections towards srv, like the 4G
       router of a farm.  Its NAT forgets connections idle for longer than
       NAT_IDLE_S (conntrack's established timeout) and then drops their
       packets silently: nf_conntrack_tcp_loose = 0 makes a packet of a
       forgotten connection "invalid", and a prerouting rule drops invalid
       packets, so neither end gets a reset.  flush_nat() forgets every
       connection at once (a router reboot, or a long idle).
- srv: the broker, the HTTPS platform sink, the persistent subscriber, a
       far Modbus TCP simulator.  Loss and the blackhole are nft rules on its
       veth (input and output), so its loopback (the subscriber's path to the
       broker) is never disturbed.

The addresses exist only inside these namespaces; nothing is routed to or
from the host's own network (gw's default route leads to mid, mid knows only
its two links, srv only its own link).  The namespaces, and with them the
veth pairs, are deleted by down().

Each test run names its namespaces agrigw-PID-{gw,mid,srv}, so parallel runs
do not meet.  Processes are put in a namespace with inside(NAME), which
switches the calling thread (setns(2)): subprocesses started and sockets
opened there belong to that namespace; threads started there stay in it.
"""
import contextlib
import ctypes
import json
import os
import re
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

GW_ADDR = "10.201.1.2"
MID_GW_ADDR = "10.201.1.1"
MID_SRV_ADDR = "10.201.2.1"
SRV_ADDR = "10.201.2.2"
NAT_IDLE_S = 120


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def run(args, check=True, input=None):
    r = subprocess.run(args, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


class Netlab:
    def __init__(self, tag=None, nat_idle_s=NAT_IDLE_S):
        tag = tag or str(os.getpid())
        self.ns = {k: "agrigw-%s-%s" % (tag, k) for k in ("gw", "mid", "srv")}
        self.nat_idle_s = nat_idle_s
        self.made = []
        self.watch_port = None

    # -- set up and tear down ------------------------------------------------
    def ip(self, ns, *args, check=True):
        return run(["ip", "-n", self.ns[ns]] + list(args), check=check)

    def nft(self, ns, script):
        return run(["ip", "netns", "exec", self.ns[ns], "nft", "-f", "-"], input=script)

    def sysctl(self, ns, key, value):
        run(["ip", "netns", "exec", self.ns[ns], "sysctl", "-q", "-w", "%s=%s" % (key, value)])

    def up(self):
        try:
            return self._up()
        except BaseException:
            self.down()
            raise

    def _up(self):
        for k in ("gw", "mid", "srv"):
            run(["ip", "netns", "add", self.ns[k]])
            self.made.append(k)
            self.ip(k, "link", "set", "lo", "up")
        run(["ip", "link", "add", "gw0", "netns", self.ns["gw"], "type", "veth",
             "peer", "name", "mid-gw", "netns", self.ns["mid"]])
        run(["ip", "link", "add", "srv0", "netns", self.ns["srv"], "type", "veth",
             "peer", "name", "mid-srv", "netns", self.ns["mid"]])
        for ns, dev, addr in (("gw", "gw0", GW_ADDR), ("mid", "mid-gw", MID_GW_ADDR),
                              ("mid", "mid-srv", MID_SRV_ADDR), ("srv", "srv0", SRV_ADDR)):
            self.ip(ns, "addr", "add", addr + "/24", "dev", dev)
            self.ip(ns, "link", "set", dev, "up")
        self.ip("gw", "route", "add", "default", "via", MID_GW_ADDR)
        self.sysctl("mid", "net.ipv4.ip_forward", 1)
        self.sysctl("mid", "net.netfilter.nf_conntrack_tcp_loose", 0)
        self.sysctl("mid", "net.netfilter.nf_conntrack_tcp_timeout_established", self.nat_idle_s)
        self.nft("mid", """
table inet lab {
  set mqtt_syn { type ipv4_addr . inet_service; flags dynamic, timeout; timeout @SET_TIMEOUT@s; size 65535; }
  chain c_pre {
    type filter hook prerouting priority -150; policy accept;
    ct state invalid counter drop
  }
  chain c_fwd {
    type filter hook forward priority 0; policy accept;
  }
  chain c_post {
    type nat hook postrouting priority 100; policy accept;
    oifname "mid-srv" masquerade
  }
}
""".replace("@SET_TIMEOUT@", str(self.SET_TIMEOUT_S)))
        self.nft("srv", """
table inet lab {
  chain c_in { type filter hook input priority 0; policy accept; }
  chain c_out { type filter hook output priority 0; policy accept; }
}
""")
        return self

    def down(self):
        for k in reversed(self.made):
            run(["ip", "netns", "del", self.ns[k]], check=False)
        self.made = []

    # -- namespaces for processes ----------------------------------------------
    def enter(self, name):
        """Move the calling thread into namespace NAME for good."""
        fd = os.open("/var/run/netns/" + self.ns[name], os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def inside(self, name):
        """The calling thread in namespace NAME for the block, then back."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.enter(name)
            yield
        finally:
            _setns(back)
            os.close(back)

    # -- faults ----------------------------------------------------------------
    def clear(self):
        """No loss, no blackhole."""
        self.nft("srv", "flush chain inet lab c_in\nflush chain inet lab c_out\n")

    def loss(self, percent):
        """Every packet over srv's link dropped with this probability, each way."""
        self.clear()
        self.nft("srv", 'add rule inet lab c_in iifname "srv0" numgen random mod 100 < %d drop\n'
                        'add rule inet lab c_out oifname "srv0" numgen random mod 100 < %d drop\n'
                 % (percent, percent))

    def blackhole(self):
        """Everything over srv's link dropped: no reset, no ICMP, nothing."""
        self.clear()
        self.nft("srv", 'add rule inet lab c_in iifname "srv0" drop\n'
                        'add rule inet lab c_out oifname "srv0" drop\n')

    def flush_nat(self):
        """The router forgets every connection; their packets are dropped from now on."""
        run(["ip", "netns", "exec", self.ns["mid"], "conntrack", "-F"], check=False)

    def nat_entries(self):
        out = run(["ip", "netns", "exec", self.ns["mid"], "conntrack", "-L"], check=False)
        return [l for l in out.splitlines() if l.strip()]

    def invalid_dropped(self):
        """Packets the router dropped as belonging to no connection it knows."""
        out = run(["ip", "netns", "exec", self.ns["mid"], "nft", "-j", "list", "chain", "inet", "lab", "c_pre"])
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if rule:
                for e in rule["expr"]:
                    if "counter" in e:
                        return e["counter"]["packets"]
        return 0

    # -- connection attempts to the broker, seen by the router ------------------
    SET_TIMEOUT_S = 4 * 3600          # the mqtt_syn set's element timeout (up())

    def watch_connects(self, port):
        """Record every new TCP connection from gw to srv:PORT (source address and
        port).  'add' does not refresh an element's timeout when its SYN is sent
        again, so the time left tells when the attempt began."""
        self.watch_port = port
        self.nft("mid", 'add rule inet lab c_fwd ip daddr %s tcp dport %d tcp flags & (syn | ack) == syn '
                        'add @mqtt_syn { ip saddr . tcp sport }\n' % (SRV_ADDR, port))

    def connects(self):
        """{(address, port): time.time() of its first SYN} for the attempts of the last 4 h."""
        now = time.time()
        out = run(["ip", "netns", "exec", self.ns["mid"], "nft", "list", "set", "inet", "lab", "mqtt_syn"])
        got = {}
        for addr, port, left in re.findall(r"([\d.]+) \. (\d+) expires ((?:\d+(?:h|ms|m|s))+)", out):
            secs = sum(int(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u]
                       for n, u in re.findall(r"(\d+)(h|ms|m|s)", left))
            got[(addr, int(port))] = now - (self.SET_TIMEOUT_S - secs)
        return got
