"""The shipped configuration: every sensor profile decodes a simulated device of
its model, and every example site passes `agrigw -n`."""
import glob
import os
import re
import subprocess

import pytest

from harness import BUILD, REPO, Broker, Gateway, Sim, Subscriber, make_workdir, rmtree, wait_for, write_conf

PROFILES = sorted(glob.glob(os.path.join(REPO, "config", "profiles", "*.conf")))
SITES = sorted(glob.glob(os.path.join(REPO, "config", "sites", "*.conf"))) + [
    os.path.join(REPO, "config", "agrigw.conf"), os.path.join(REPO, "config", "demo.conf")]


def profile_name(path):
    """The profile's name: the first top-level group of its file."""
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*([A-Za-z0-9_-]+)\s*[=:]\s*\{", line)
            if m:
                return m.group(1)
    raise AssertionError("no profile in " + path)


def test_there_are_enough_profiles():
    assert len(PROFILES) >= 12


@pytest.mark.parametrize("path", SITES, ids=os.path.basename)
def test_example_site_passes_check(path):
    r = subprocess.run([os.path.join(BUILD, "agrigw"), "-n", "-f", path], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "configuration OK", r.stderr


def test_every_profile_decodes_its_simulated_device():
    d = make_workdir()
    broker = sim = sub = gw = None
    try:
        names = [profile_name(p) for p in PROFILES]
        devices = ",\n".join('  { name = "dev-%s"; bus = "tcp0"; unit = %d; profile = "%s"; interval = 0.5; }'
                             % (n, i + 1, n) for i, n in enumerate(names))
        includes = "\n".join('  @include "profiles/%s"' % os.path.basename(p) for p in PROFILES)
        text = ('gateway = { site = "profiles"; id = "gw1"; };\n'
                'clock = { trust_system = true; };\n'
                'mqtt = { host = "127.0.0.1"; port = @MQTT_PORT@; };\n'
                'store = { dir = ""; };\n'
                'buses = ( { name = "tcp0"; type = "tcp"; host = "127.0.0.1"; port = @TCP_PORT@; } );\n'
                'devices = (\n%s\n);\nprofiles = {\n%s\n};\n') % (devices, includes)
        broker = Broker(d).start()
        conf = os.path.join(d, "site.conf")
        write_conf(conf, text, MQTT_PORT=broker.port, TCP_PORT=1)
        sim = Sim(d, conf, "tcp0")
        write_conf(conf, text, MQTT_PORT=broker.port, TCP_PORT=sim.port)
        sub = Subscriber(broker.port)
        gw = Gateway(d, conf)
        want = sim.values()
        for n in names:
            dev = "dev-" + n
            tele = wait_for(lambda: sub.telemetry(dev), 30, what="telemetry of " + dev)[-1]
            meta = {p["name"]: p for p in [b for t, b, r in sub.select("meta", dev)][-1]["points"]}
            assert "bad" not in tele, (dev, tele)
            assert set(tele["values"]) == set(want[dev]["points"]), (dev, tele)
            for point, v in want[dev]["points"].items():
                got = tele["values"][point]
                if meta[point]["type"] in ("f32", "f64"):
                    assert abs(got - v) <= 1e-6 * max(1.0, abs(v)), (dev, point, got, v)
                else:
                    assert abs(got - v) < 1e-6, (dev, point, got, v)
        assert gw.stop() == 0
        gw = None
    finally:
        for p in (gw, sub, sim, broker):
            if p:
                p.stop()
        rmtree(d)
