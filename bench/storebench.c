/*
 * storebench.c: the store's side of the benchmark (bench/bench.py), linked
 * against the daemon's own static library so it measures exactly the code
 * the daemon runs.
 *
 *   storebench tel DIR SECONDS COMMIT_MS [PAYLOAD_BYTES]
 *	appends telemetry-sized rows with store_tel_append() as fast as it
 *	can, calls store_commit() whenever COMMIT_MS have passed since the
 *	last one (0: after every append), and acknowledges each committed
 *	row right after its commit, as PUBACKs would, so the next commit
 *	deletes it: the steady state of the daemon, where every message is
 *	inserted once and deleted once.  A commit also comes early when
 *	100 000 rows wait (half the store's own buffer limit, past which it
 *	would start dropping rows), which only the 1 s interval reaches.
 *	Prints one JSON line: rows/s, commits/s and CPU microseconds per row.
 *
 *   storebench fill DIR COUNT
 *	puts COUNT closed windows (JSON shaped as docs/uplink.md says, about
 *	300 bytes each) into DIR/agrigw.db with store_win_append(),
 *	committing every 10000, for the backlog drain.  Prints one JSON line.
 *
 * Not a test: it asserts nothing about speed and exits non-zero only when
 * the store itself fails.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"
#include "store.h"

#define MAX_BYTES (1LL << 34)    /* no cap in the way */
#define ROWS_MAX 100000          /* commit early past this: half the store's BUF_MAX, where it drops rows */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* A telemetry payload of about 'bytes' bytes, shaped like the daemon's. */
static size_t make_payload(char *buf, size_t size, uint64_t seq, size_t bytes)
{
	int n = snprintf(buf, size, "{\"ts\":1795784195917,\"seq\":%" PRIu64 ",\"values\":{", seq);
	int k = 0;

	while ((size_t) n + 24 < bytes && (size_t) n + 32 < size)
		n += snprintf(buf + n, size - (size_t) n, "%s\"v%d\":%d.%02d", k ? "," : "", k, 100 + k, k);
	n += snprintf(buf + n, size - (size_t) n, "}}");
	return (size_t) n;
}

static int bench_tel(const char *dir, double seconds, int commit_ms, size_t bytes)
{
	struct store *s = store_open(dir, MAX_BYTES);
	char payload[4096];
	uint64_t seq, first_unacked, rows = 0, commits = 0;
	double t0, last_commit, end, c0;

	if (!s)
		return 1;
	seq = store_last_seq(s);
	first_unacked = seq + 1;
	t0 = last_commit = now_s();
	c0 = cpu_s();
	end = t0 + seconds;
	for (;;) {
		double t;
		size_t len;

		seq++;
		len = make_payload(payload, sizeof(payload), seq, bytes);
		if (store_tel_append(s, seq, "agrigw/bench/gw1/dev-0001/telemetry", payload, len) < 0) {
			fprintf(stderr, "storebench: append failed\n");
			store_close(s);
			return 1;
		}
		rows++;
		t = now_s();
		if (commit_ms == 0 || (t - last_commit) * 1000.0 >= commit_ms || seq - first_unacked + 1 >= ROWS_MAX) {
			if (store_commit(s) < 0) {
				fprintf(stderr, "storebench: commit failed\n");
				store_close(s);
				return 1;
			}
			commits++;
			last_commit = t;
			/* the broker acknowledges what was just published */
			for (; first_unacked <= seq; first_unacked++)
				store_tel_ack(s, first_unacked);
		}
		if (t >= end)
			break;
	}
	{
		double el = now_s() - t0, cpu = cpu_s() - c0;

		printf("{\"mode\":\"tel\",\"commit_ms\":%d,\"seconds\":%.3f,\"rows\":%" PRIu64 ",\"commits\":%" PRIu64
		       ",\"rows_per_s\":%.1f,\"commits_per_s\":%.2f,\"cpu_us_per_row\":%.3f,\"payload_bytes\":%zu}\n",
		       commit_ms, el, rows, commits, rows / el, commits / el, cpu * 1e6 / (double) rows, bytes);
	}
	store_close(s);
	return 0;
}

static int fill_windows(const char *dir, long count)
{
	struct store *s = store_open(dir, MAX_BYTES);
	const int64_t start0 = 1795784100000LL, win_ms = 300000;
	char key[128], json[512];
	double t0 = now_s();

	if (!s)
		return 1;
	store_set_salt(s, "bench/gw1");
	for (long i = 0; i < count; i++) {
		int dev = (int) (i % 200), pt = (int) ((i / 200) % 14);
		int64_t start = start0 + (i / 2800) * win_ms;

		snprintf(key, sizeof(key), "dev-%04d/v%d/%" PRId64, dev, pt, start);
		snprintf(json, sizeof(json),
			 "{\"device\":\"dev-%04d\",\"point\":\"v%d\",\"unit\":\"mg/L\",\"start\":%" PRId64
			 ",\"end\":%" PRId64 ",\"count\":300,\"expected\":300,\"bad\":0,\"min\":6.10,\"max\":6.90,"
			 "\"mean\":6.5233,\"last\":6.40,\"first_ts\":%" PRId64 ",\"last_ts\":%" PRId64 "}",
			 dev, pt, start, start + win_ms, start + 913, start + win_ms - 1087);
		if (store_win_append(s, key, json) < 0) {
			store_close(s);
			return 1;
		}
		if ((i + 1) % 10000 == 0 && store_commit(s) < 0) {
			store_close(s);
			return 1;
		}
	}
	if (store_commit(s) < 0) {
		store_close(s);
		return 1;
	}
	store_close(s);
	printf("{\"mode\":\"fill\",\"windows\":%ld,\"seconds\":%.3f}\n", count, now_s() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	log_init(LOG_NOTICE_, 0);
	if (argc >= 5 && strcmp(argv[1], "tel") == 0)
		return bench_tel(argv[2], atof(argv[3]), atoi(argv[4]), argc > 5 ? (size_t) atol(argv[5]) : 160);
	if (argc == 4 && strcmp(argv[1], "fill") == 0)
		return fill_windows(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: storebench tel DIR SECONDS COMMIT_MS [PAYLOAD_BYTES]\n"
			"       storebench fill DIR COUNT\n");
	return 2;
}
