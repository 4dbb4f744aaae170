"""A board without a real-time clock: readings taken before NTP syncs.

The gateway runs with its wall clock three hours behind and not synchronised
(AGRIGW_TEST_CLOCK, see src/wallclock.c); then the clock "syncs".  The
readings of that time must reach the broker and the platform with their true
times (to within a second), flagged, none missing, none doubled, no burst.
"""
import os
import time

from harness import VALGRIND, Gateway, wait_for
from test_uplink import POINTS, WINDOW_MS, Site, ident, pki, telemetry  # noqa: F401 (pki: fixture)

BEHIND_MS = 3 * 3600 * 1000
# Under valgrind (make check-valgrind) the daemon runs some twenty times
# slower: a poll may slip past its 0.5 s slot.  The checks of that run are
# about memory; these bounds keep "none missing, no burst" meaningful there.
GAP_MAX = 1200 if VALGRIND else 650
WINDOW_MIN = 14 if VALGRIND else 18
HELD_MIN = 30 if VALGRIND else 40


class ClockSite(Site):
    def __init__(self, pki, boot="boot-a"):
        self.clock_file = None
        super().__init__(pki, trust_system=False, start=False)
        self.clock_file = os.path.join(self.dir, "clock")
        self.set_clock(-BEHIND_MS, False)
        self.boot = boot
        self.start_gw()

    def set_clock(self, offset, synced):
        with open(self.clock_file + ".tmp", "w") as f:
            f.write("%d %d\n" % (offset, 1 if synced else 0))
        os.rename(self.clock_file + ".tmp", self.clock_file)

    def start_gw(self):
        self.gw = Gateway(self.dir, self.conf, args=("-d", "-v"),
                          env={"AGRIGW_TEST_CLOCK": self.clock_file, "AGRIGW_TEST_BOOT_ID": self.boot})


def test_readings_before_sync_get_true_times(pki):
    started = time.time() * 1000
    s = ClockSite(pki)
    try:
        time.sleep(25)
        # held: nothing published, nothing sent, and it said so once
        assert s.sub.telemetry() == []
        assert s.sink.requests() == []
        log = s.gw.logtext()
        assert log.count("clock: not synchronised") == 1
        assert log.count("uplink: waiting for the clock") == 1
        synced_at = time.time() * 1000
        s.set_clock(0, True)
        wait_for(lambda: "clock: synchronised" in s.gw.logtext(), 10, what="sync noticed")
        wait_for(lambda: [b for b in s.sub.telemetry() if "clock" not in b and b["ts"] > synced_at], 30,
                 what="live telemetry after the sync")
        for dev in ("do1", "air1"):
            tele = telemetry(s.sub, dev)
            held = [b for b in tele if b.get("clock") == "corrected"]
            live = [b for b in tele if "clock" not in b]
            assert all(b.get("historical") is True for b in held)
            # 0.5 s polls for ~25 s before the sync: all there, true times, no burst
            assert HELD_MIN <= len(held) <= 56, len(held)
            assert abs(held[0]["ts"] - started) < 3000, (held[0]["ts"], started)
            assert abs(held[-1]["ts"] - synced_at) < 2000, (held[-1]["ts"], synced_at)
            gaps = [b["ts"] - a["ts"] for a, b in zip(held, held[1:])]
            assert all(350 <= g <= GAP_MAX for g in gaps), gaps
            assert live[0]["ts"] - held[-1]["ts"] < 1500
            seqs = [b["seq"] for b in tele]
            assert sorted(seqs) == seqs
        allseq = sorted({b["seq"] for b in s.sub.telemetry()})
        assert allseq == list(range(allseq[0], allseq[-1] + 1))
        # the platform gets the windows of that time at their true place, each once
        first = (int(started) // WINDOW_MS + 1) * WINDOW_MS
        last = (int(synced_at) // WINDOW_MS - 1) * WINDOW_MS
        def arrived():
            got = {ident(w) for k, w in s.sink.windows()}
            return all((d, p, t) in got for d, p in POINTS for t in range(first, last + 1, WINDOW_MS))
        wait_for(arrived, 60, what="the windows of the unsynchronised time")
        ids = [ident(w) for k, w in s.sink.windows()]
        assert len(ids) == len(set(ids))
        assert min(w["start"] for k, w in s.sink.windows()) >= first - WINDOW_MS
        for k, w in s.sink.windows():
            if first <= w["start"] <= last:
                assert w["count"] + w["bad"] >= WINDOW_MIN, w
    finally:
        assert s.close() == 0


def test_restart_before_sync_same_boot_corrected_other_boot_flagged(pki):
    s = ClockSite(pki, boot="boot-a")
    try:
        time.sleep(6)
        assert s.gw.stop() == 0
        # the same boot: its readings can still be placed once the clock syncs
        s.start_gw()
        time.sleep(6)
        assert s.gw.stop() == 0
        # a new boot (a power cut): the first boot's readings cannot be placed
        s.boot = "boot-b"
        s.start_gw()
        time.sleep(4)
        synced_at = time.time() * 1000
        s.set_clock(0, True)
        wait_for(lambda: [b for b in s.sub.telemetry() if "clock" not in b and b["ts"] > synced_at], 30,
                 what="live telemetry after the sync")
        tele = s.sub.telemetry()
        unsynced = [b for b in tele if b.get("clock") == "unsynced"]
        corrected = [b for b in tele if b.get("clock") == "corrected"]
        assert len(unsynced) >= 30 and len(corrected) >= 10, (len(unsynced), len(corrected))
        # boot a's readings keep their (wrong) times, flagged; boot b's are right
        assert all(b["ts"] < synced_at - BEHIND_MS + 60000 for b in unsynced)
        assert all(abs(b["ts"] - synced_at) < 10000 for b in corrected)
        seqs = sorted({b["seq"] for b in tele})
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        assert max(b["seq"] for b in unsynced) < min(b["seq"] for b in corrected)
    finally:
        assert s.close() == 0
