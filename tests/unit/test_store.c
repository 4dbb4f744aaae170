/* test_store.c: the SQLite outbox and the spool in front of it. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "spool.h"
#include "store.h"

static char dir[] = "/tmp/agrigw-test-store-XXXXXX";

struct got {
	uint64_t seq[512];
	char payload[512][64];
	int n;
};

static void collect(void *arg, uint64_t seq, const char *topic, const char *payload, size_t len)
{
	struct got *g = arg;

	(void) topic;
	if (g->n < 512) {
		g->seq[g->n] = seq;
		snprintf(g->payload[g->n], sizeof(g->payload[0]), "%.*s", (int) len, payload);
		g->n++;
	}
}

static void add(struct store *s, uint64_t seq)
{
	char p[64];

	snprintf(p, sizeof(p), "{\"seq\":%llu}", (unsigned long long) seq);
	CHECK(store_tel_append(s, seq, "t/x/telemetry", p, strlen(p)) == 0);
}

static void test_telemetry(void)
{
	struct store *s = store_open(dir, 64 << 20);
	struct got g = { 0 };

	CHECK(s != NULL);
	CHECK(store_last_seq(s) == 0);
	for (uint64_t i = 1; i <= 10; i++)
		add(s, i);
	CHECK(store_dirty(s));
	CHECK(store_tel_buffered(s, 3));
	store_tel_ack(s, 3);              /* acknowledged before the commit: never written */
	CHECK(!store_tel_buffered(s, 3));
	CHECK(store_commit(s) == 9);
	CHECK(!store_dirty(s));
	CHECK(!store_tel_buffered(s, 4));
	store_tel_ack(s, 4);              /* committed: deleted at the next commit */
	CHECK(store_tel_load(s, 0, 100, collect, &g) == 8);
	CHECK(g.n == 8 && g.seq[0] == 1 && g.seq[1] == 2 && g.seq[2] == 5);
	CHECK_STR(g.payload[0], "{\"seq\":1}");
	CHECK(store_commit(s) == 0);
	store_close(s);

	/* reopened: the rows and the seq counter are there */
	s = store_open(dir, 64 << 20);
	CHECK(s && store_last_seq(s) == 10);
	g.n = 0;
	CHECK(store_tel_load(s, 5, 2, collect, &g) == 2);
	CHECK(g.seq[0] == 6 && g.seq[1] == 7);
	for (uint64_t i = 1; i <= 10; i++)
		store_tel_ack(s, i);
	store_close(s);
	s = store_open(dir, 64 << 20);
	g.n = 0;
	CHECK(store_tel_load(s, 0, 100, collect, &g) == 0);
	CHECK(store_last_seq(s) == 10);     /* kept in meta even with no rows */
	store_close(s);
}

static void test_batches(void)
{
	struct store *s = store_open(dir, 64 << 20);
	struct store_batch b, b2;
	char key[64], json[64], k1[80];

	store_set_salt(s, "site/gw");
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "dev/p/%d", i);
		snprintf(json, sizeof(json), "{\"i\":%d}", i);
		CHECK(store_win_append(s, key, json) == 0);
	}
	CHECK(store_win_append(s, "dev/p/0", "{\"dup\":1}") == 0);   /* same key: kept once */
	CHECK(store_batch_next(s, 3, 1 << 20, &b) == 1);
	CHECK(b.n == 3);
	CHECK_STR(b.items, "{\"i\":0},{\"i\":1},{\"i\":2}");
	strcpy(k1, b.key);
	store_batch_done(&b);
	store_close(s);

	/* after a restart the same batch, with the same key, comes back first */
	s = store_open(dir, 64 << 20);
	store_set_salt(s, "site/gw");
	CHECK(store_win_append(s, "dev/p/9", "{\"i\":9}") == 0);
	CHECK(store_batch_next(s, 10, 1 << 20, &b) == 1);
	CHECK(b.n == 3);
	CHECK_STR(b.key, k1);
	CHECK(store_batch_delete(s, b.id) == 3);
	store_batch_done(&b);
	/* byte limit: the first window always fits, then only what is under the limit */
	CHECK(store_batch_next(s, 10, 16, &b) == 1);
	CHECK(b.n == 2);
	CHECK(strcmp(b.key, k1) != 0);
	CHECK(store_batch_dead(s, b.id, 400, "{\"error\":\"bad\"}") == 0);
	store_batch_done(&b);
	CHECK(store_batch_next(s, 10, 1 << 20, &b2) == 1);
	CHECK(b2.n == 1);
	CHECK_STR(b2.items, "{\"i\":9}");
	CHECK(store_batch_delete(s, b2.id) == 1);
	store_batch_done(&b2);
	CHECK(store_batch_next(s, 10, 1 << 20, &b) == 0);
	struct store_stats st;
	store_get_stats(s, &st);
	CHECK(st.win_rows == 0 && st.dead_rows == 1);
	store_close(s);
}

static void test_cap(void)
{
	struct store *s = store_open(dir, 256 << 10);    /* 256 KiB */
	struct store_stats st;
	char p[1024];

	memset(p, 'x', sizeof(p));
	p[0] = '{';
	p[sizeof(p) - 1] = '}';
	for (uint64_t i = 100; i < 1100; i++) {
		CHECK(store_tel_append(s, i, "t", p, sizeof(p)) == 0 || 1);
		if (i % 100 == 0)
			store_commit(s);
	}
	store_commit(s);
	store_get_stats(s, &st);
	CHECK(st.dropped > 0);
	CHECK(st.bytes <= 256 << 10);
	struct got g = { 0 };
	CHECK(store_tel_load(s, 0, 1, collect, &g) == 1);
	CHECK(g.seq[0] > 100);               /* the oldest went first */
	for (uint64_t i = 100; i < 1100; i++)
		store_tel_ack(s, i);
	store_close(s);
}

static void test_corrupt(void)
{
	char path[256];
	int fd;
	struct store *s;
	struct store_stats st;

	snprintf(path, sizeof(path), "%s/agrigw.db", dir);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "this is not a database, just some random bytes of garbage......", 64) == 64);
	for (int i = 0; i < 100; i++)
		CHECK(write(fd, "0123456789abcdef0123456789abcdef0123456789abcdef", 48) == 48 || 1);
	close(fd);
	s = store_open(dir, 1 << 20);
	CHECK(s != NULL);
	store_get_stats(s, &st);
	CHECK(st.corrupt_moved == 1);
	add(s, 1);
	CHECK(store_commit(s) == 1);
	store_tel_ack(s, 1);
	store_close(s);
}

static struct spool_msg take(struct spool *sp, char *buf)
{
	const struct spool_msg *m = spool_next(sp);
	struct spool_msg r = { 0 };

	if (m) {
		r = *m;
		memcpy(buf, m->payload, m->len + 1);
		r.payload = buf;
	}
	return r;
}

static void test_spool_memory(void)
{
	struct spool *sp = spool_new(NULL, 4);
	char buf[128];
	struct spool_msg m;

	for (uint64_t i = 1; i <= 6; i++)
		CHECK(spool_add(sp, i, "t", "{\"v\":1}", 7, i == 6) == 0);
	CHECK(spool_dropped(sp) == 2);       /* 1 and 2 fell out */
	m = take(sp, buf);
	CHECK(m.seq == 3);
	m = take(sp, buf);
	CHECK(m.seq == 4);
	spool_rewind(sp);                    /* 3 and 4 were in flight: again */
	m = take(sp, buf);
	CHECK(m.seq == 3);
	spool_ack(sp, 3);
	m = take(sp, buf);
	CHECK(m.seq == 4);
	m = take(sp, buf);
	CHECK(m.seq == 5 && strcmp(buf, "{\"v\":1}") == 0);
	m = take(sp, buf);
	CHECK(m.seq == 6);
	CHECK_STR(buf, "{\"v\":1,\"historical\":true}");
	CHECK(take(sp, buf).seq == 0);
	spool_ack(sp, 4);
	spool_ack(sp, 5);
	spool_ack(sp, 6);
	CHECK(spool_held(sp) == 0);
	spool_free(sp);
}

static void test_spool_store(void)
{
	struct store *s = store_open(dir, 64 << 20);
	struct spool *sp;
	char buf[128];
	uint64_t base = store_last_seq(s);

	sp = spool_new(s, 3);
	CHECK(spool_add(sp, base + 1, "t", "{\"a\":1}", 7, false) == 0);
	/* not committed yet: not handed out */
	CHECK(take(sp, buf).seq == 0);
	store_commit(s);
	CHECK(take(sp, buf).seq == base + 1);
	CHECK_STR(buf, "{\"a\":1}");
	spool_ack(sp, base + 1);
	/* broker away: 8 messages, memory holds 3, the rest come back from disk in order */
	for (uint64_t i = 2; i <= 9; i++)
		CHECK(spool_add(sp, base + i, "t", "{\"a\":2}", 7, true) == 0);
	store_commit(s);
	for (uint64_t i = 2; i <= 9; i++) {
		struct spool_msg m = take(sp, buf);
		CHECK(m.seq == base + i);
		CHECK_STR(buf, "{\"a\":2,\"historical\":true}");
		if (i == 5) {
			spool_rewind(sp);           /* connection lost after 2..5 went out unacknowledged */
			for (uint64_t j = 2; j <= 5; j++)
				CHECK(take(sp, buf).seq == base + j);
		}
	}
	CHECK(take(sp, buf).seq == 0);
	for (uint64_t i = 2; i <= 9; i++)
		spool_ack(sp, base + i);
	spool_free(sp);
	store_close(s);

	/* a restart: nothing left, seq continues */
	s = store_open(dir, 64 << 20);
	CHECK(store_last_seq(s) == base + 9);
	sp = spool_new(s, 3);
	CHECK(take(sp, buf).seq == 0);
	/* unacknowledged rows survive a restart and come back flagged */
	CHECK(spool_add(sp, base + 10, "t", "{\"b\":1}", 7, false) == 0);
	store_commit(s);
	spool_free(sp);
	store_close(s);
	s = store_open(dir, 64 << 20);
	sp = spool_new(s, 3);
	CHECK(take(sp, buf).seq == base + 10);
	CHECK_STR(buf, "{\"b\":1,\"historical\":true}");
	spool_ack(sp, base + 10);
	spool_free(sp);
	store_close(s);
}

int main(void)
{
	char cmd[300];

	log_init(0, 0);   /* quiet: the corrupt-file and cap tests log errors on purpose */
	if (!mkdtemp(dir))
		return 1;
	test_telemetry();
	test_batches();
	test_cap();
	test_corrupt();
	test_spool_memory();
	test_spool_store();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void) !system(cmd);
	return CHECK_DONE();
}
