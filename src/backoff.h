/*
 * backoff.h: back-off and schedule arithmetic.  Pure: no I/O, no clock reads
 * (callers pass 'now' and a random number), so tests can drive time.
 */
#ifndef AGRIGW_BACKOFF_H
#define AGRIGW_BACKOFF_H

#include <stdint.h>

/* Capped exponential delay: base_ms * 2^attempt, at most cap_ms.  attempt 0 gives base_ms. */
int64_t backoff_delay(int64_t base_ms, int64_t cap_ms, unsigned attempt);

/* "Equal jitter": uniform in [d/2, d] for d = backoff_delay(); 'rnd' is any 32-bit random number. */
int64_t backoff_jitter(int64_t base_ms, int64_t cap_ms, unsigned attempt, uint32_t rnd);

/* "Full jitter": uniform in [0, d]. */
int64_t backoff_full_jitter(int64_t base_ms, int64_t cap_ms, unsigned attempt, uint32_t rnd);

/*
 * Next due time of a periodic task after it ran at 'due' and it is now 'now':
 * due + interval, skipping whole missed intervals so that a late poll never
 * causes a burst; keeps the phase.  *ret_missed gets the number skipped (may be NULL).
 */
int64_t sched_next(int64_t due, int64_t interval_ms, int64_t now, unsigned *ret_missed);

/* Phase of the first poll of device k of n on one bus: spread over min(interval, 1 s). */
int64_t sched_first(int64_t start, int64_t interval_ms, unsigned k, unsigned n);

#endif
