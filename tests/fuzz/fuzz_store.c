/*
 * fuzz_store.c: reading the outbox back from a damaged or doctored SQLite
 * database: store_open(), the spool's replay (store_tel_load()), the saved
 * state, batches (store_batch_next(), _delete(), _dead()) and a commit.
 *
 * Input: a mode byte, then
 *   mode bit 0 clear ("rows"): a fresh database is made with store_open(),
 *     then changed with plain SQL as the input says: rows inserted into
 *     tel, win, batch and meta, columns overwritten, with values of every
 *     SQLite type (NULL, integer, real, text and blobs with any bytes), and
 *     tables re-created without their NOT NULL constraints, as a database
 *     file written by something else could have them, and triggers that
 *     make writes fail the way a full disk does;
 *   mode bit 0 set ("file"): the rest is the database file itself (with
 *     bit 1, a two-byte length splits it into the file and its -wal).
 * Then the store is opened as the daemon opens it and read back the ways
 * the daemon reads it.  It must not crash, must open (a damaged file is
 * moved aside as agrigw.db.corrupt-*, and then a fresh one is made), and
 * every message and batch it hands out must be usable.
 */
#include <dirent.h>

#include <sqlite3.h>

#include "fuzz.h"
#include "log.h"
#include "spool.h"
#include "store.h"

#define MAX_OPS 48

static char dir[4096], db[4200];
static volatile unsigned sink;

static void clean_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4400];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		(void) unlink(p);
	}
	if (d)
		closedir(d);
}

static void cleanup(void)
{
	clean_dir();
	(void) rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	log_init(0, 1);                  /* quiet: moving files aside is expected here */
	fuzz_scratch_dir(dir, sizeof(dir), "fuzz-store");
	snprintf(db, sizeof(db), "%s/agrigw.db", dir);
	atexit(cleanup);
	return 0;
}

/* Bind a value of any type from the input. */
static void bind_value(sqlite3_stmt *st, int i, struct fuzz_in *in)
{
	uint8_t type = fuzz_u8(in), len;

	switch (type % 6) {
	case 0:
		sqlite3_bind_null(st, i);
		break;
	case 1:
		sqlite3_bind_int64(st, i, (sqlite3_int64) fuzz_u64(in));
		break;
	case 2: {
		uint64_t bits = fuzz_u64(in);
		double d;

		memcpy(&d, &bits, sizeof(d));
		sqlite3_bind_double(st, i, d);
		break;
	}
	case 3:
	case 4:
		len = fuzz_u8(in);
		if (len > in->n)
			len = (uint8_t) in->n;
		if (type % 6 == 3)
			sqlite3_bind_text(st, i, (const char *) in->p, len, SQLITE_TRANSIENT);
		else
			sqlite3_bind_blob(st, i, in->p, len, SQLITE_TRANSIENT);
		in->p += len;
		in->n -= len;
		break;
	default:
		/* a plausible small number: seqs, batch ids */
		sqlite3_bind_int64(st, i, (sqlite3_int64) (int8_t) fuzz_u8(in));
		break;
	}
}

static void run_sql(sqlite3 *h, const char *sql, int nparams, struct fuzz_in *in)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return;
	for (int i = 1; i <= nparams; i++)
		bind_value(st, i, in);
	(void) sqlite3_step(st);
	sqlite3_finalize(st);
}

/* A fresh database, then rows and columns as the input says. */
static void make_rows(struct fuzz_in *in)
{
	static const char *const sql[] = {
		"INSERT OR REPLACE INTO tel(seq, topic, payload) VALUES(?,?,?)",
		"INSERT OR REPLACE INTO win(key, body, batch) VALUES(?,?,?)",
		"INSERT OR REPLACE INTO batch(id, key) VALUES(?,?)",
		"INSERT OR REPLACE INTO meta(k, v) VALUES('seq',?)",
		"INSERT OR REPLACE INTO meta(k, v) VALUES('agg',?)",
		"UPDATE tel SET payload = ? WHERE seq = (SELECT MIN(seq) FROM tel)",
		"UPDATE tel SET topic = ?",
		"UPDATE win SET body = ?",
		"UPDATE win SET key = ?, batch = ?",
		"DROP TABLE tel; CREATE TABLE tel(seq INTEGER PRIMARY KEY, topic, payload)",
		"DROP TABLE win; CREATE TABLE win(id INTEGER PRIMARY KEY AUTOINCREMENT, key, body, batch)",
		"DROP TABLE batch; CREATE TABLE batch(id INTEGER PRIMARY KEY AUTOINCREMENT, key)",
		"INSERT INTO dead(batch_key, status, answer, items, at) VALUES(?,?,?,?,?)",
		/* writes that fail, as on a full disk or a failing card */
		"CREATE TRIGGER IF NOT EXISTS f1 BEFORE DELETE ON batch BEGIN SELECT RAISE(ABORT, 'refused'); END",
		"CREATE TRIGGER IF NOT EXISTS f2 BEFORE INSERT ON tel BEGIN SELECT RAISE(ABORT, 'full'); END",
		"CREATE TRIGGER IF NOT EXISTS f3 BEFORE DELETE ON win BEGIN SELECT RAISE(ABORT, 'refused'); END",
		"CREATE TRIGGER IF NOT EXISTS f4 BEFORE INSERT ON batch BEGIN SELECT RAISE(ABORT, 'full'); END",
	};
	static const int nparams[] = { 3, 3, 2, 1, 1, 1, 1, 1, 2, 0, 0, 0, 5, 0, 0, 0, 0 };
	struct store *s = store_open(dir, 64 << 20);
	sqlite3 *h;
	int ops = fuzz_u8(in) % MAX_OPS;

	_Static_assert(sizeof(nparams) / sizeof(nparams[0]) == sizeof(sql) / sizeof(sql[0]), "one count per statement");

	FUZZ_ASSERT(s != NULL);
	store_close(s);
	FUZZ_ASSERT(sqlite3_open(db, &h) == SQLITE_OK);
	for (int k = 0; k < ops && in->n > 0; k++) {
		unsigned op = fuzz_u8(in) % (sizeof(sql) / sizeof(sql[0]));

		if (nparams[op] == 0)
			(void) sqlite3_exec(h, sql[op], NULL, NULL, NULL);
		else
			run_sql(h, sql[op], nparams[op], in);
	}
	sqlite3_close(h);
}

static void write_file(struct fuzz_in *in, bool with_wal)
{
	size_t n = in->n;
	char wal[4300];

	if (with_wal) {
		n = fuzz_u16(in);
		if (n > in->n)
			n = in->n;
	}
	fuzz_write_file(db, in->p, n);
	in->p += n;
	in->n -= n;
	if (with_wal) {
		snprintf(wal, sizeof(wal), "%s-wal", db);
		fuzz_write_file(wal, in->p, in->n);
		in->p += in->n;
		in->n = 0;
	}
}

static bool moved_aside(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, "agrigw.db.corrupt-", 18) == 0)
			found = true;
	if (d)
		closedir(d);
	return found;
}

static void read_back(uint8_t knobs)
{
	struct store *s = store_open(dir, (int64_t) 1 << (20 + knobs % 4));
	struct store_stats st;
	struct spool *sp;
	const struct spool_msg *m;
	char *state;
	uint64_t last;
	int r;

	FUZZ_ASSERT(s != NULL);
	store_get_stats(s, &st);
	FUZZ_ASSERT(st.corrupt_moved == 0 || moved_aside());
	store_set_salt(s, "site/gw");
	state = store_state_get(s, "agg");
	free(state);
	last = store_last_seq(s);

	/* the spool replays what the broker has not acknowledged */
	sp = spool_new(s, 1 + knobs % 5);
	FUZZ_ASSERT(sp != NULL);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 40 && (m = spool_next(sp)); i++) {
			FUZZ_ASSERT(m->topic != NULL && m->payload != NULL && m->payload[m->len] == '\0');
			for (size_t j = 0; j < m->len; j++)   /* every byte readable (ASan) */
				sink += (unsigned char) m->payload[j];
			sink += (unsigned) strlen(m->topic);
			if (i % 2 == 0)
				spool_ack(sp, m->seq);
		}
		if (k == 0) {
			FUZZ_ASSERT(spool_add(sp, last + 1, "agrigw/s/g/d/telemetry", "{\"seq\":1}", 9, false) == 0);
			(void) store_commit(s);
		}
		spool_rewind(sp);
	}

	/* the uplink's batches */
	(void) store_win_append(s, "d/p/1795784100000", "{\"device\":\"d\"}");
	for (int k = 0; k < 6; k++) {
		struct store_batch b;

		r = store_batch_next(s, 1 + (size_t) (knobs >> 2) % 8, (size_t) 64 << (knobs >> 5), &b);
		FUZZ_ASSERT(r <= 1);
		if (r != 1)
			break;
		FUZZ_ASSERT(b.n >= 1 && b.items != NULL && b.items[b.items_len] == '\0');
		FUZZ_ASSERT(strlen(b.key) < sizeof(b.key));
		if (k % 2)
			(void) store_batch_dead(s, b.id, 400, "refused");
		else
			(void) store_batch_delete(s, b.id);
		store_batch_done(&b);
	}
	(void) store_state_set(s, "agg", "{}");
	(void) store_commit(s);
	store_get_stats(s, &st);
	spool_free(sp);
	store_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t mode = fuzz_u8(&in), knobs = fuzz_u8(&in);

	clean_dir();
	if (mode & 1)
		write_file(&in, mode & 2);
	else
		make_rows(&in);
	read_back(knobs);
	/* opened again: what the first run left must be usable too */
	read_back((uint8_t) (knobs + 1));
	return 0;
}
