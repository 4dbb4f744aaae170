/*
 * test_backoff.c: doubling and cap, saturation for huge attempts, jitter
 * bounds over many random numbers, schedule skipping and phase, first-poll
 * spread.
 */
#include <limits.h>
#include <stdint.h>

#include "backoff.h"
#include "check.h"

/* xorshift32: a fixed sequence of "random" numbers for the jitter loops */
static uint32_t rng_state = 2463534242u;

static uint32_t rng(void)
{
	uint32_t x = rng_state;

	x ^= (uint32_t) ((uint64_t) x << 13);
	x ^= x >> 17;
	x ^= (uint32_t) ((uint64_t) x << 5);
	return rng_state = x;
}

static void test_delay(void)
{
	CHECK(backoff_delay(1000, 300000, 0) == 1000);
	CHECK(backoff_delay(1000, 300000, 1) == 2000);
	CHECK(backoff_delay(1000, 300000, 2) == 4000);
	CHECK(backoff_delay(1000, 300000, 8) == 256000);
	CHECK(backoff_delay(1000, 300000, 9) == 300000);
	CHECK(backoff_delay(1000, 300000, 10) == 300000);
	CHECK(backoff_delay(1000, 256000, 8) == 256000);	/* exactly the cap */
	CHECK(backoff_delay(1000, 255999, 8) == 255999);
	CHECK(backoff_delay(1, INT64_MAX, 62) == INT64_C(1) << 62);
	CHECK(backoff_delay(1, INT64_MAX, 63) == INT64_MAX);
	CHECK(backoff_delay(3, INT64_MAX, 61) == INT64_C(3) << 61);
	CHECK(backoff_delay(3, INT64_MAX, 62) == INT64_MAX);
	CHECK(backoff_delay(1000, 300000, 64) == 300000);
	CHECK(backoff_delay(1000, 300000, 1000) == 300000);
	CHECK(backoff_delay(1000, 300000, UINT_MAX) == 300000);
	CHECK(backoff_delay(INT64_MAX, INT64_MAX, UINT_MAX) == INT64_MAX);
	CHECK(backoff_delay(0, 300000, UINT_MAX) == 0);
	CHECK(backoff_delay(5000, 1000, 0) == 1000);	/* never above the cap */
	CHECK(backoff_delay(-5, 1000, 3) == 0);
	CHECK(backoff_delay(5, -1, 3) == 0);

	/* monotonic in attempt */
	{
		unsigned a;
		int ok = 1;

		for (a = 0; a < 200; a++)
			if (backoff_delay(7, 1000000, a + 1) < backoff_delay(7, 1000000, a))
				ok = 0;
		CHECK(ok);
	}
}

static void test_jitter(void)
{
	static const unsigned attempts[] = { 0, 1, 3, 9, 63, 64, UINT_MAX };
	size_t i;
	int j, ok_eq = 1, ok_full = 1;

	/* the ends */
	CHECK(backoff_jitter(1000, 300000, 0, 0) == 500);
	CHECK(backoff_jitter(1000, 300000, 0, UINT32_MAX) == 1000);
	CHECK(backoff_full_jitter(1000, 300000, 0, 0) == 0);
	CHECK(backoff_full_jitter(1000, 300000, 0, UINT32_MAX) == 1000);
	CHECK(backoff_jitter(1000, 300000, 20, UINT32_MAX) == 300000);
	CHECK(backoff_jitter(1000, 300000, 20, 0) == 150000);
	CHECK(backoff_full_jitter(1000, 300000, 20, UINT32_MAX) == 300000);
	CHECK(backoff_jitter(1000, 300000, 0, UINT32_MAX / 2 + 1) == 750);
	CHECK(backoff_full_jitter(1000, 300000, 0, UINT32_MAX / 2 + 1) == 500);
	CHECK(backoff_jitter(1, 100, 0, UINT32_MAX) == 1);
	CHECK(backoff_jitter(0, 100, 5, 12345) == 0);
	CHECK(backoff_full_jitter(0, 100, 5, UINT32_MAX) == 0);
	/* huge delays: no overflow in the mapping */
	CHECK(backoff_jitter(1, INT64_MAX, UINT_MAX, UINT32_MAX) >= INT64_MAX - (INT64_C(1) << 31));
	CHECK(backoff_jitter(1, INT64_MAX, UINT_MAX, 0) == INT64_MAX / 2);
	CHECK(backoff_full_jitter(1, INT64_MAX, UINT_MAX, UINT32_MAX) > INT64_MAX / 2);
	CHECK(backoff_full_jitter(1, INT64_MAX, UINT_MAX, 0) == 0);

	/* bounds over many random numbers */
	for (i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		int64_t d = backoff_delay(250, 60000, attempts[i]);

		for (j = 0; j < 20000; j++) {
			uint32_t r = rng();
			int64_t e = backoff_jitter(250, 60000, attempts[i], r);
			int64_t f = backoff_full_jitter(250, 60000, attempts[i], r);

			if (e < d / 2 || e > d)
				ok_eq = 0;
			if (f < 0 || f > d)
				ok_full = 0;
		}
	}
	CHECK(ok_eq);
	CHECK(ok_full);

	/* every value of a small range is reached, none outside */
	{
		int hits_full[11] = { 0 }, hits_eq[11] = { 0 }, all = 1, outside = 0;

		for (j = 0; j < 100000; j++) {
			uint32_t r = rng();
			int64_t f = backoff_full_jitter(10, 1000, 0, r);
			int64_t e = backoff_jitter(10, 1000, 0, r);

			if (f < 0 || f > 10 || e < 5 || e > 10)
				outside = 1;
			else {
				hits_full[f]++;
				hits_eq[e]++;
			}
		}
		for (j = 0; j <= 10; j++)
			if (hits_full[j] < 7000 || (j >= 5 && hits_eq[j] < 14000))
				all = 0;
		CHECK(!outside);
		CHECK(all);
	}
}

static void test_sched_next(void)
{
	unsigned missed = 99;

	/* on time, early, exactly at the next due */
	CHECK(sched_next(10000, 1000, 10000, &missed) == 11000);
	CHECK(missed == 0);
	CHECK(sched_next(10000, 1000, 10999, &missed) == 11000);
	CHECK(missed == 0);
	CHECK(sched_next(10000, 1000, 9000, &missed) == 11000);
	CHECK(missed == 0);
	CHECK(sched_next(10000, 1000, 11000, &missed) == 12000);
	CHECK(missed == 1);

	/* late by half an interval: still the next slot */
	CHECK(sched_next(10000, 1000, 10500, &missed) == 11000);
	CHECK(missed == 0);

	/* late by 10.3 intervals: ten slots skipped, phase kept */
	CHECK(sched_next(10000, 1000, 20300, &missed) == 21000);
	CHECK(missed == 10);
	CHECK(sched_next(123, 1000, 123 + 10300, &missed) == 123 + 11000);
	CHECK(missed == 10);
	{
		int64_t n = sched_next(7, 333, 7 + 333 * 10 + 100, &missed);

		CHECK(n > 7 + 333 * 10 + 100);
		CHECK((n - 7) % 333 == 0);
		CHECK(n - (7 + 333 * 10 + 100) <= 333);
		CHECK(missed == 10);
	}

	/* any lateness: next > now, at most one interval ahead, in phase */
	{
		int64_t now;
		int ok = 1;

		for (now = 5000; now < 50000; now += 37) {
			int64_t n = sched_next(5000, 750, now, &missed);
			int64_t slots = (n - 5000) / 750;

			if (n <= now || n - now > 750 || (n - 5000) % 750 != 0 || missed != (unsigned) (slots - 1))
				ok = 0;
		}
		CHECK(ok);
	}

	/* NULL missed, zero interval, negative times, extremes */
	CHECK(sched_next(0, 100, 1050, NULL) == 1100);
	CHECK(sched_next(-1000, 300, -100, &missed) == 200);
	CHECK(missed == 3);	/* -700, -400 and -100 (due exactly now) */
	CHECK(sched_next(10, 0, 10, &missed) == 11);
	CHECK(sched_next(INT64_MAX - 10, 100, INT64_MAX - 10, &missed) == INT64_MAX);
	CHECK(sched_next(INT64_MIN, 1, INT64_MAX, &missed) == INT64_MAX);
	CHECK(missed == UINT_MAX);
}

static void test_sched_first(void)
{
	CHECK(sched_first(5000, 10000, 0, 1) == 5000);
	CHECK(sched_first(5000, 10000, 0, 4) == 5000);
	CHECK(sched_first(5000, 10000, 1, 4) == 5250);
	CHECK(sched_first(5000, 10000, 2, 4) == 5500);
	CHECK(sched_first(5000, 10000, 3, 4) == 5750);
	/* interval below one second: spread over the interval */
	CHECK(sched_first(0, 200, 1, 4) == 50);
	CHECK(sched_first(0, 200, 3, 4) == 150);
	CHECK(sched_first(0, 1000, 2, 3) == 666);
	CHECK(sched_first(100, 1000, 0, 0) == 100);	/* n 0 taken as 1 */
	{
		unsigned k;
		int ok = 1;

		for (k = 1; k < 1000; k++)
			if (sched_first(0, 60000, k, 1000) <= sched_first(0, 60000, k - 1, 1000) ||
			    sched_first(0, 60000, k, 1000) >= 1000)
				ok = 0;
		CHECK(ok);
	}
}

int main(void)
{
	test_delay();
	test_jitter();
	test_sched_next();
	test_sched_first();
	return CHECK_DONE();
}
