/*
 * wallclock.h: can the system clock be trusted, and what time was it when
 * the monotonic clock read t?  A board without a real-time clock boots with
 * the time of its last shutdown or 1970 until NTP syncs; readings taken
 * before that keep their monotonic time and boot id, and get their wall
 * time once the clock is known to be right.  Core thread only.
 */
#ifndef AGRIGW_WALLCLOCK_H
#define AGRIGW_WALLCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define WALLCLOCK_BOOT_MAX 40

enum wallclock_change {
	WALLCLOCK_SAME,
	WALLCLOCK_SYNCED,    /* trusted from now on (this boot) */
	WALLCLOCK_STEPPED,   /* wall minus monotonic jumped by more than 1 s */
};

struct wallclock {
	bool trusted;            /* synchronised at least once this boot (or trusted by config) */
	bool trust_system;       /* config: the clock is right without NTP telling the kernel so */
	int64_t offset_ms;       /* wall - monotonic, as last sampled */
	int64_t step_ms;         /* the last step's size, for the log */
	long maxerror_ms;        /* the kernel's estimate, as last sampled */
	char boot_id[WALLCLOCK_BOOT_MAX];
};

/*
 * Read the boot id and sample once.  'trust_system' skips the kernel's
 * synchronisation state.  'synced_boot' is the boot id that a store
 * remembers as synchronised (NULL or "" when none): a restart later in the
 * same boot trusts the clock even if the kernel's error estimate has grown.
 */
void wallclock_init(struct wallclock *w, bool trust_system, const char *synced_boot);

/* Sample the clocks (about once a second); reports what changed. */
enum wallclock_change wallclock_check(struct wallclock *w);

/* Wall time (ms since 1970) of a monotonic instant, with the offset as now. */
int64_t wallclock_at(const struct wallclock *w, int64_t mono_ms);

#endif
