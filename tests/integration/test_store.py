"""The durable store: broker outages, kill -9, a full store, a damaged file."""
import glob
import os
import random
import signal
import time

from harness import Gateway, Subscriber, wait_for
from test_gateway import PREFIX, Site


def seqs_of(sub):
    return [b["seq"] for b in sub.telemetry()]


def assert_contiguous(seqs, first=1):
    have = set(seqs)
    missing = [q for q in range(first, max(seqs) + 1) if q not in have]
    assert not missing, "missing seq: %s" % missing[:20]


def test_broker_down_two_minutes_replayed_in_order_flagged_historical():
    s = Site(client_id="store-sub", store=True)
    try:
        wait_for(lambda: len(s.sub.telemetry()) >= 10, 20, what="telemetry")
        s.broker.stop()
        down_at = time.time() * 1000
        time.sleep(120)
        up_at = time.time() * 1000
        s.broker.start()
        # live again: readings taken after the reconnect are not historical
        wait_for(lambda: [b for b in s.sub.telemetry() if b["ts"] > up_at and "historical" not in b], 120,
                 what="live telemetry after the outage")
        tele = s.sub.telemetry()
        seqs = [b["seq"] for b in tele]
        assert_contiguous(seqs)
        seen, last = set(), 0
        for q in seqs:                     # in order; a repeat only of what came before
            assert q > last or q in seen, (q, last)
            seen.add(q)
            last = max(last, q)
        during = [b for b in tele if down_at + 1500 < b["ts"] < up_at - 1500]
        # 5 devices polled every 0.5 s for ~2 minutes
        assert len(during) > 800
        assert all(b.get("historical") is True for b in during)
    finally:
        assert s.close() == 0


def test_kill9_loop_loses_no_seq():
    s = Site(client_id="kill-sub", store=True, start_gateway=False)
    rnd = random.Random(7)
    try:
        for i in range(20):
            gw = Gateway(s.dir, s.conf)
            time.sleep(rnd.uniform(0.4, 2.5))
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait()
            gw.log.close()
        s.gw = Gateway(s.dir, s.conf)
        wait_for(lambda: len(s.sub.telemetry()) > 50, 30, what="telemetry")
        def caught_up():
            t = s.sub.telemetry()
            return t and t[-1]["ts"] > time.time() * 1000 - 2000
        wait_for(caught_up, 60, what="replay after the last restart")
        time.sleep(2)
        assert_contiguous(seqs_of(s.sub))
    finally:
        assert s.close() == 0


def test_store_cap_drops_oldest_and_runs_on():
    s = Site(store=True, store_extra="max_bytes = 131072;", interval=0.1)
    try:
        wait_for(lambda: len(s.sub.telemetry()) >= 5, 20, what="telemetry")
        s.broker.stop()
        wait_for(lambda: "store: full" in s.gw.logtext(), 90, what="store full")
        s.broker.start()
        def counted():
            st = [b for t, b, r in s.sub.select() if t == PREFIX + "/status" and b.get("online")]
            return st and st[-1].get("store_dropped", 0) > 0
        wait_for(counted, 30, what="store_dropped in status")
        assert s.gw.alive()
        db = os.path.join(s.dir, "state", "agrigw.db")
        assert os.path.getsize(db) < 4 * 131072
    finally:
        assert s.close() == 0


def test_damaged_store_is_moved_aside():
    for damage in ("random", "truncated"):
        s = Site(store=True, start_gateway=False)
        try:
            state = os.path.join(s.dir, "state")
            db = os.path.join(state, "agrigw.db")
            if damage == "random":
                os.makedirs(state, exist_ok=True)
                with open(db, "wb") as f:
                    f.write(os.urandom(64 * 1024))
            else:
                # a real database with rows, cut in half
                s.gw = Gateway(s.dir, s.conf)
                wait_for(lambda: len(s.sub.telemetry()) >= 5, 20, what="telemetry")
                s.broker.stop()
                time.sleep(3)
                s.gw.stop()
                s.broker.start()
                size = os.path.getsize(db)
                with open(db, "r+b") as f:
                    f.truncate(size // 2)
                for side in (db + "-wal", db + "-shm"):
                    if os.path.exists(side):
                        os.unlink(side)
            s.gw = Gateway(s.dir, s.conf)
            n = len(s.sub.telemetry())
            wait_for(lambda: len(s.sub.telemetry()) >= n + 5, 30, what="telemetry after damage")
            assert s.gw.alive()
            if damage == "random":
                assert glob.glob(db + ".corrupt-*"), os.listdir(state)
                assert "moved aside" in s.gw.logtext()
        finally:
            assert s.close() == 0
