"""`make run`: the demo site on this machine, nothing to edit first.

Starts mosquitto on a free loopback port, the Modbus simulator playing the
two buses of config/demo.conf (a rice-fish pond and a greenhouse) on free
ports, and agrigw; then prints every telemetry message until Ctrl-C.
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import REPO, Broker, Gateway, Sim, Subscriber, make_workdir, rmtree  # noqa: E402


def main():
    d = make_workdir()
    procs = []
    try:
        broker = Broker(d, persistence=False).start()
        procs.append(broker)
        text = open(os.path.join(REPO, "config", "demo.conf")).read()
        conf = os.path.join(d, "demo.conf")
        with open(conf, "w") as f:
            f.write(text)
        pond = Sim(d, conf, "pond-tcp", extra=["--wander"])
        procs.append(pond)
        gh = Sim(d, conf, "greenhouse-tcp", extra=["--wander"])
        procs.append(gh)
        text = text.replace("port = 15020;", "port = %d;" % pond.port)
        text = text.replace("port = 15021;", "port = %d;" % gh.port)
        text = re.sub(r"port = 1883;", "port = %d;" % broker.port, text)
        text = text.replace('dir = "/var/lib/agrigw";', 'dir = "%s";' % os.path.join(d, "state"))
        with open(conf, "w") as f:
            f.write(text)
        print("demo: broker on 127.0.0.1:%d, simulated buses on ports %d and %d"
              % (broker.port, pond.port, gh.port))
        print("demo: watch it yourself with: mosquitto_sub -p %d -t 'agrigw/#' -v" % broker.port)
        print("demo: agrigw log: %s/agrigw.log; Ctrl-C stops" % d)
        sub = Subscriber(broker.port, topic="agrigw/#")
        gw = Gateway(d, conf)
        procs.append(gw)
        shown = 0
        while gw.alive():
            msgs = sub.select()
            for topic, body, retained in msgs[shown:]:
                print("%s %s" % (topic, body if isinstance(body, dict) else body), flush=True)
            shown = len(msgs)
            time.sleep(0.2)
        print("demo: agrigw exited with status %s; its log:" % gw.proc.returncode)
        print(gw.logtext())
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    finally:
        for p in reversed(procs):
            try:
                p.stop()
            except Exception:
                pass
        rmtree(d)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
