/*
 * wallclock.c: the clock's synchronisation state and its steps.
 *
 * The kernel knows whether an NTP client (systemd-timesyncd, chrony, ntpd)
 * has disciplined the clock: ntp_adjtime() clears STA_UNSYNC once one has.
 * We trust the clock from the first time we see it synchronised in this boot
 * and keep trusting it when NTP goes quiet later (the kernel sets STA_UNSYNC
 * again after some nine hours without an update, when its error bound passes
 * 16 s, but a clock that was right drifts by seconds, not years).  Steps are
 * seen as jumps of wall minus monotonic time.
 *
 * Tests replace the clock: AGRIGW_TEST_CLOCK names a file holding
 * "OFFSET_MS SYNCED" (for example "-10800000 0": three hours behind and not
 * synchronised), read at every check; util.c's wall_ms() adds the offset;
 * with it, AGRIGW_TEST_BOOT_ID may stand in for the boot id.  Without
 * AGRIGW_TEST_CLOCK neither has any effect.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <unistd.h>

#include "util.h"
#include "wallclock.h"

#define STEP_MS 1000

static void read_boot_id(char *buf, size_t size)
{
	const char *test = getenv("AGRIGW_TEST_CLOCK") ? getenv("AGRIGW_TEST_BOOT_ID") : NULL;
	FILE *f;

	if (test) {
		snprintf(buf, size, "%s", test);
		return;
	}
	f = fopen("/proc/sys/kernel/random/boot_id", "r");
	snprintf(buf, size, "unknown");
	if (f) {
		if (fgets(buf, (int) size, f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
}

/* The kernel's word, or the test file's. */
static bool kernel_synced(long *ret_maxerror_ms)
{
	const char *test = getenv("AGRIGW_TEST_CLOCK");
	struct timex tx = { 0 };

	if (test) {
		FILE *f = fopen(test, "r");
		long long off = 0;
		int synced = 0;

		if (f) {
			if (fscanf(f, "%lld %d", &off, &synced) != 2)
				off = 0, synced = 0;
			fclose(f);
		}
		wall_set_test_offset((int64_t) off);
		*ret_maxerror_ms = synced ? 0 : 16000;
		return synced != 0;
	}
	if (ntp_adjtime(&tx) < 0) {
		*ret_maxerror_ms = -1;
		return false;
	}
	*ret_maxerror_ms = tx.maxerror / 1000;
	return !(tx.status & STA_UNSYNC);
}

void wallclock_init(struct wallclock *w, bool trust_system, const char *synced_boot)
{
	memset(w, 0, sizeof(*w));
	w->trust_system = trust_system;
	read_boot_id(w->boot_id, sizeof(w->boot_id));
	w->trusted = trust_system || kernel_synced(&w->maxerror_ms) ||
		     (synced_boot && strcmp(synced_boot, w->boot_id) == 0);
	w->offset_ms = wall_ms() - mono_ms();
}

enum wallclock_change wallclock_check(struct wallclock *w)
{
	bool synced = kernel_synced(&w->maxerror_ms);
	int64_t offset = wall_ms() - mono_ms();
	int64_t step = offset - w->offset_ms;

	w->offset_ms = offset;
	if (!w->trusted && (synced || w->trust_system)) {
		w->trusted = true;
		return WALLCLOCK_SYNCED;
	}
	if (step > STEP_MS || step < -STEP_MS) {
		w->step_ms = step;
		return WALLCLOCK_STEPPED;
	}
	return WALLCLOCK_SAME;
}

int64_t wallclock_at(const struct wallclock *w, int64_t mono)
{
	return mono + w->offset_ms;
}
