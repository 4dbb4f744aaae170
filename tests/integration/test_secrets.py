"""Secrets stay out of logs and out of `agrigw -nv`.

A mosquitto that requires a password (password_file made with
mosquitto_passwd at test time), the MQTT password and the platform token in
files with distinctive values, agrigw with debug logging polling the
simulator and posting windows to https_sink.py.  Neither secret may appear
in the daemon's log or in `agrigw -nv` output; the broker and the sink must
have seen them (so the test is not passing because nothing was sent).  A
wrong password must give one clear log line: connection refused, not
authorised.
"""
import os
import re
import secrets
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

from harness import (BUILD, Broker, Gateway, HttpsSink, Sim, free_port, make_ca, make_server_cert,
                     make_workdir, port_open, rmtree, wait_for, write_conf)

TEMPLATE = """# test_secrets.py: MQTT with a password, the uplink with a token
gateway = { site = "itest"; id = "gw1"; };
clock = { trust_system = true; };
mqtt = {
  host = "127.0.0.1";
  port = @MQTT_PORT@;
  username = "agrigw";
  password_file = "@PASSWORD_FILE@";
  reconnect_min = 0.2;
  reconnect_max = 1.0;
};
store = { dir = "@STATE_DIR@"; commit_interval = 0.5; };
uplink = {
  url = "@URL@";
  window = 10;
  grace = 1;
  ca_file = "@CA_FILE@";
  token_file = "@TOKEN_FILE@";
  backoff_base = 0.2;
  backoff_max = 2;
};
buses = ( { name = "tcp0"; type = "tcp"; host = "127.0.0.1"; port = @TCP_PORT@; response_timeout = 0.3; } );
devices = ( { name = "do1"; bus = "tcp0"; unit = 55; profile = "s-rjy-01"; interval = 0.5; } );
profiles = {
  @include "profiles/s-rjy-01.conf"
};
"""


class PasswordBroker(Broker):
    """mosquitto that admits only the users in a password file it reads."""

    def __init__(self, workdir, users):
        super().__init__(workdir, persistence=False)
        self.pwfile = os.path.join(workdir, "mosquitto.passwd")
        for i, (user, password) in enumerate(users.items()):
            subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) +
                           [self.pwfile, user, password], check=True, capture_output=True)
        # mosquitto started as root reads it as its own user
        os.chmod(self.pwfile, 0o644)

    def start(self):
        for _ in range(20):
            port = self.port or free_port()
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
                        "log_dest stdout\n" % (port, self.pwfile))
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
        raise RuntimeError("mosquitto did not start")


class Reader:
    """A subscriber with its own account: telemetry proves agrigw got in."""

    def __init__(self, port, password):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id="")
        self.c.username_pw_set("reader", password)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("agrigw/#", qos=1) if rc == 0 else None
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append(m.topic)

    def telemetry(self):
        with self.lock:
            return [t for t in self.msgs if t.endswith("/telemetry")]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def site():
    d = make_workdir()
    s = type("SecretSite", (), {})()
    s.dir = d
    s.password = "Pw" + secrets.token_hex(16)
    s.token = "Tk" + secrets.token_hex(16)
    reader_pw = secrets.token_hex(8)
    s.broker = PasswordBroker(d, {"agrigw": s.password, "reader": reader_pw}).start()
    ca_key, ca = make_ca(d, "secrets")
    key, crt = make_server_cert(d, ca_key, ca)
    s.sink = HttpsSink(d, crt, key)
    s.password_file = os.path.join(d, "mqtt-password")
    s.token_file = os.path.join(d, "platform-token")
    for path, value in ((s.password_file, s.password), (s.token_file, s.token)):
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
    state = os.path.join(d, "state")
    os.mkdir(state)
    s.conf = os.path.join(d, "site.conf")
    subst = dict(MQTT_PORT=s.broker.port, PASSWORD_FILE=s.password_file, STATE_DIR=state,
                 URL=s.sink.url, CA_FILE=ca, TOKEN_FILE=s.token_file, TCP_PORT=1)
    write_conf(s.conf, TEMPLATE, **subst)
    s.sim = Sim(d, s.conf, "tcp0")
    subst["TCP_PORT"] = s.sim.port
    write_conf(s.conf, TEMPLATE, **subst)
    s.reader = Reader(s.broker.port, reader_pw)
    yield s
    s.reader.stop()
    s.sim.stop()
    s.sink.stop()
    s.broker.stop()
    if os.environ.get("KEEP_TEST_DIRS"):
        print("kept", d)
    else:
        rmtree(d)


def leaks(text, secret):
    """Where the secret, or any 10 characters of it in a row, appears in text
    (the secrets are random hex: a piece of one is no file name or hash)."""
    pieces = {secret[i:i + 10] for i in range(len(secret) - 9)}
    return [p for p in pieces if p in text]


def test_check_output_names_the_files_not_the_secrets(site):
    r = subprocess.run([os.path.join(BUILD, "agrigw"), "-n", "-v", "-f", site.conf],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "configuration OK" in r.stdout, out
    assert site.password_file in out and site.token_file in out
    assert not leaks(out, site.password) and not leaks(out, site.token), out


def test_secrets_used_but_never_logged(site):
    gw = Gateway(site.dir, site.conf, args=("-d", "-v"))
    try:
        # the broker let agrigw in (the password was sent) ...
        wait_for(lambda: len(site.reader.telemetry()) >= 3, 30, what="telemetry through the broker")
        # ... and the platform got the token
        bearer = "Bearer " + site.token
        wait_for(lambda: any(r["headers"].get("Authorization") == bearer for r in site.sink.requests()),
                 40, what="a POST with the token")
    finally:
        rc = gw.stop()
    log = gw.logtext()
    assert rc == 0, "agrigw exit status %r\n%s" % (rc, log[-3000:])
    assert "mqtt: connected to" in log and "debug" in log, log[-3000:]
    assert not leaks(log, site.password), "the MQTT password is in the log"
    assert not leaks(log, site.token), "the platform token is in the log"


def test_wrong_password_is_refused_with_a_clear_log_line(site):
    wrong = "Wr" + secrets.token_hex(16)
    with open(site.password_file, "w") as f:
        f.write(wrong + "\n")
    gw = Gateway(site.dir, site.conf, args=("-d", "-v"))
    pattern = re.compile(r"mqtt: cannot connect to 127\.0\.0\.1:%d \(connection refused: not authori[sz]ed"
                         % site.broker.port, re.I)
    try:
        wait_for(lambda: pattern.search(gw.logtext()), 30, what="the refusal in the log")
    finally:
        rc = gw.stop()
    log = gw.logtext()
    assert rc == 0, "agrigw exit status %r\n%s" % (rc, log[-3000:])
    # said once per outage, not once per attempt, with where to look
    assert len(pattern.findall(log)) == 1, log[-3000:]
    assert "check mqtt.username and mqtt.password_file)" in log, log[-3000:]
    assert not leaks(log, wrong) and not leaks(log, site.password) and not leaks(log, site.token)
    assert not site.reader.telemetry()
