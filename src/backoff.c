/*
 * backoff.c: retry delays and poll schedules, all in int64_t milliseconds.
 *
 * backoff_delay() doubles a base delay per attempt up to a cap; the two
 * jitter variants spread it with a random number the caller supplies
 * ("equal jitter" keeps at least half the delay, "full jitter" may retry at
 * once).  sched_next() moves a periodic poll to its next due time, skipping
 * the intervals a slow bus has already lost instead of polling them all in a
 * burst, and keeps the original phase.  sched_first() spreads the devices of
 * one bus over the first second (or the interval, if shorter).
 *
 * Left to others: reading clocks, drawing random numbers, sleeping and
 * counting attempts; this file only does the arithmetic, so tests can drive
 * time by hand.  Negative delays, intervals and caps are treated as 0 (as 1
 * for the interval of sched_next(), which divides by it), and results that
 * would not fit an int64_t saturate.
 *
 * The design choice: the random number is mapped to [0, span] by a
 * multiply-and-shift, (span + 1) * rnd / 2^32, rather than rnd % (span + 1).
 * It needs no division, keeps both ends reachable (rnd 0 gives the low end,
 * UINT32_MAX the high end for any span below 2^32) and is uniform to within
 * one part in 2^32 / span.  The 96-bit product is done in two 64-bit halves
 * because 32-bit targets have no __int128.
 */
#include <limits.h>
#include <stddef.h>

#include "backoff.h"

static int64_t sat_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

/* hi - lo for hi >= lo, exact over the whole int64_t range and without
 * relying on unsigned wrap-around */
static uint64_t distance(int64_t hi, int64_t lo)
{
	if (lo >= 0 || hi < 0)
		return (uint64_t) (hi - lo);
	return (uint64_t) hi + (uint64_t) -(lo + 1) + 1;
}

int64_t backoff_delay(int64_t base_ms, int64_t cap_ms, unsigned attempt)
{
	if (base_ms < 0)
		base_ms = 0;
	if (cap_ms < 0)
		cap_ms = 0;
	if (base_ms == 0)
		return 0;
	/* base * 2^attempt > cap exactly when base > floor(cap / 2^attempt) */
	if (attempt >= 63 || base_ms > (cap_ms >> attempt))
		return cap_ms;
	return base_ms << attempt;
}

/* floor((span + 1) * rnd / 2^32) for 0 <= span <= INT64_MAX: in [0, span] */
static int64_t scale_rnd(int64_t span, uint32_t rnd)
{
	uint64_t n = (uint64_t) span + 1;
	uint64_t hi = n >> 32, lo = n & 0xffffffffu;

	return (int64_t) (hi * rnd + ((lo * rnd) >> 32));
}

int64_t backoff_jitter(int64_t base_ms, int64_t cap_ms, unsigned attempt, uint32_t rnd)
{
	int64_t d = backoff_delay(base_ms, cap_ms, attempt);
	int64_t half = d / 2;

	return half + scale_rnd(d - half, rnd);
}

int64_t backoff_full_jitter(int64_t base_ms, int64_t cap_ms, unsigned attempt, uint32_t rnd)
{
	return scale_rnd(backoff_delay(base_ms, cap_ms, attempt), rnd);
}

int64_t sched_next(int64_t due, int64_t interval_ms, int64_t now, unsigned *ret_missed)
{
	int64_t next, last;
	uint64_t late, q;

	if (interval_ms < 1)
		interval_ms = 1;
	next = sat_add(due, interval_ms);
	if (next > now) {
		if (ret_missed != NULL)
			*ret_missed = 0;
		return next;
	}
	late = distance(now, next);
	q = late / (uint64_t) interval_ms;
	/* the last time <= now in phase with due, then one interval on */
	last = now - (int64_t) (late % (uint64_t) interval_ms);
	if (ret_missed != NULL)
		*ret_missed = q >= UINT_MAX ? UINT_MAX : (unsigned) q + 1;
	return sat_add(last, interval_ms);
}

int64_t sched_first(int64_t start, int64_t interval_ms, unsigned k, unsigned n)
{
	int64_t spread = interval_ms < 1000 ? interval_ms : 1000;

	if (spread < 0)
		spread = 0;
	if (n < 1)
		n = 1;
	return sat_add(start, spread * (int64_t) k / (int64_t) n);
}
