/*
 * store.c: the durable outbox, one SQLite database in WAL mode.
 *
 * Tables: tel (telemetry messages waiting for PUBACK, by seq), win (closed
 * aggregate windows waiting for the platform, by insertion order, with the
 * batch they were put in), batch (formed batches and their keys), dead
 * (batches the platform refused), meta (the seq counter, saved state).
 *
 * Writes are buffered in memory and written by store_commit() in one
 * transaction with synchronous=FULL: a commit that returned is on the SD
 * card, and the caller decides how often that happens (store.commit_interval),
 * which is the most a power cut can lose.  An acknowledgement of a message
 * still in the buffer simply drops it, so nothing that the broker took in
 * time ever reaches the disk twice.
 *
 * When the database outgrows store.max_bytes the oldest telemetry goes
 * first, then the oldest windows: raw readings are replaceable by their
 * aggregates, which are a hundred times smaller and are what the platform
 * keeps.  Every dropped row is counted; the log says so once per episode.
 *
 * A failed commit (disk full, I/O error) keeps the buffer and is retried
 * at the next commit; the log says so on the first failure and on recovery.
 * A file that is not a database or fails the quick check at start is moved
 * aside with the time in its name, and a fresh one is made.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "payload.h"
#include "store.h"
#include "util.h"

#define BUF_MAX 200000           /* buffered rows kept while commits fail */

struct tel_row {
	uint64_t seq;
	bool acked;
	bool held;               /* taken before the clock was trusted */
	const char *boot;        /* boot id of a held row (borrowed from the caller) */
	int64_t mono;            /* its monotonic time */
	char *topic;
	char *payload;
	size_t len;
};

struct win_row {
	char *key;
	char *json;
};

struct store {
	sqlite3 *db;
	char path[CONF_PATH_MAX + 16];
	int64_t max_bytes;
	uint64_t seq;                /* highest seq appended */
	uint64_t seq_saved;          /* seq in meta as of the last commit */
	struct tel_row *tel;         /* buffered appends, increasing seq */
	size_t ntel, tel_cap;
	uint64_t *del;               /* acknowledged seqs to delete (sorted as appended) */
	size_t ndel, del_cap;
	struct win_row *win;
	size_t nwin, win_cap;
	char *state_name, *state_text; /* buffered store_state_set() */
	bool failing;                /* last commit failed */
	bool full_reported;
	struct store_stats st;
	char salt[2 * CONF_NAME_MAX + 2];  /* "site/id": makes batch keys unique per gateway */
	sqlite3_stmt *ins_tel, *del_tel, *ins_win, *set_meta;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);"
	"CREATE TABLE IF NOT EXISTS tel(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,"
	" held INTEGER NOT NULL DEFAULT 0, boot TEXT, mono INTEGER);"
	"CREATE TABLE IF NOT EXISTS win(id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,"
	" body TEXT NOT NULL, batch INTEGER);"
	"CREATE INDEX IF NOT EXISTS win_batch ON win(batch);"
	"CREATE TABLE IF NOT EXISTS batch(id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS dead(id INTEGER PRIMARY KEY AUTOINCREMENT, batch_key TEXT, status INTEGER,"
	" answer TEXT, items TEXT, at INTEGER);";

static int64_t count_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Open and check; any failure means "not usable": the caller moves it aside. */
static int try_open(struct store *s, char *why, size_t whylen)
{
	sqlite3_stmt *st = NULL;
	int r;

	/* core thread only: no mutex around every call (SQLITE_OPEN_NOMUTEX) */
	r = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 2000);
	r = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
	if (r != SQLITE_OK)
		goto fail;
	r = sqlite3_step(st);
	if (r != SQLITE_ROW)
		goto fail;
	if (strcmp((const char *) sqlite3_column_text(st, 0), "ok") != 0) {
		snprintf(why, whylen, "quick_check: %s", sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		return -EBADMSG;
	}
	sqlite3_finalize(st);
	st = NULL;
	r = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
	if (r != SQLITE_OK)
		goto fail;
	return 0;
fail:
	snprintf(why, whylen, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
	sqlite3_finalize(st);
	return r == SQLITE_CANTOPEN || r == SQLITE_PERM || r == SQLITE_READONLY ? -EACCES : -EBADMSG;
}

static void move_aside(struct store *s)
{
	char stamp[32], dst[sizeof(s->path) + 48], side[sizeof(s->path) + 8];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(dst, sizeof(dst), "%s.corrupt-%s", s->path, stamp);
	if (rename(s->path, dst) < 0)
		log_err("store: cannot move '%s' aside: %s", s->path, strerror(errno));
	else
		log_err("store: '%s' is damaged; moved aside to '%s', starting a fresh one", s->path, dst);
	/* the WAL and shared-memory files belong to the damaged database */
	snprintf(side, sizeof(side), "%s-wal", s->path);
	(void) unlink(side);
	snprintf(side, sizeof(side), "%s-shm", s->path);
	(void) unlink(side);
	s->st.corrupt_moved++;
}

/* Databases made before the clock columns existed get them (held rows: none). */
static int migrate(struct store *s)
{
	if (count_rows(s->db, "SELECT COUNT(*) FROM pragma_table_info('tel') WHERE name = 'held'") != 0)
		return 0;
	if (sqlite3_exec(s->db,
			 "ALTER TABLE tel ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
			 "ALTER TABLE tel ADD COLUMN boot TEXT;"
			 "ALTER TABLE tel ADD COLUMN mono INTEGER;", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	log_notice("store: '%s' updated to the current layout", s->path);
	return 0;
}

static int prepare(struct store *s)
{
	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO tel(seq, topic, payload, held, boot, mono) VALUES(?,?,?,?,?,?)", -1, &s->ins_tel, NULL) ||
	    sqlite3_prepare_v2(s->db, "DELETE FROM tel WHERE seq BETWEEN ? AND ?", -1, &s->del_tel, NULL) ||
	    sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO win(key, body) VALUES(?,?)", -1, &s->ins_win, NULL) ||
	    sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(k, v) VALUES(?,?)", -1, &s->set_meta, NULL))
		return -EIO;
	return 0;
}

static void finalize(struct store *s)
{
	sqlite3_finalize(s->ins_tel);
	sqlite3_finalize(s->del_tel);
	sqlite3_finalize(s->ins_win);
	sqlite3_finalize(s->set_meta);
	s->ins_tel = s->del_tel = s->ins_win = s->set_meta = NULL;
}

struct store *store_open(const char *dir, int64_t max_bytes)
{
	struct store *s = calloc(1, sizeof(*s));
	char why[256] = "";
	int r;

	if (!s)
		return NULL;
	s->max_bytes = max_bytes;
	snprintf(s->path, sizeof(s->path), "%s/agrigw.db", dir);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_err("store: cannot create '%s': %s", dir, strerror(errno));
		goto fail;
	}
	r = try_open(s, why, sizeof(why));
	if (r == 0 && (migrate(s) < 0 || prepare(s) < 0)) {
		/* a database, but not one of ours (or of a version we cannot read) */
		snprintf(why, sizeof(why), "unexpected tables: %s", sqlite3_errmsg(s->db));
		finalize(s);
		r = -EBADMSG;
	}
	if (r == -EBADMSG) {
		sqlite3_close(s->db);
		s->db = NULL;
		log_err("store: '%s' fails its check (%s)", s->path, why);
		move_aside(s);
		r = try_open(s, why, sizeof(why));
		if (r == 0 && prepare(s) < 0) {
			snprintf(why, sizeof(why), "%s", sqlite3_errmsg(s->db));
			r = -EIO;
		}
	}
	if (r < 0) {
		log_err("store: cannot open '%s': %s", s->path, why);
		goto fail;
	}
	{
		int64_t a = count_rows(s->db, "SELECT COALESCE(MAX(seq), 0) FROM tel");
		int64_t b = count_rows(s->db, "SELECT COALESCE((SELECT v FROM meta WHERE k = 'seq'), 0)");
		s->seq = (uint64_t) (a > b ? a : b);
		s->seq_saved = s->seq;
	}
	s->st.tel_rows = (uint64_t) count_rows(s->db, "SELECT COUNT(*) FROM tel");
	s->st.win_rows = (uint64_t) count_rows(s->db, "SELECT COUNT(*) FROM win");
	s->st.dead_rows = (uint64_t) count_rows(s->db, "SELECT COUNT(*) FROM dead");
	if (s->st.tel_rows || s->st.win_rows)
		log_notice("store: '%s': %" PRIu64 " messages and %" PRIu64 " windows waiting from before",
			   s->path, s->st.tel_rows, s->st.win_rows);
	return s;
fail:
	finalize(s);
	sqlite3_close(s->db);
	free(s);
	return NULL;
}

static void free_buffers(struct store *s)
{
	for (size_t i = 0; i < s->ntel; i++) {
		free(s->tel[i].topic);
		free(s->tel[i].payload);
	}
	for (size_t i = 0; i < s->nwin; i++) {
		free(s->win[i].key);
		free(s->win[i].json);
	}
	free(s->tel);
	free(s->del);
	free(s->win);
	free(s->state_name);
	free(s->state_text);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	(void) store_commit(s);
	finalize(s);
	sqlite3_close(s->db);
	free_buffers(s);
	free(s);
}

int store_state_set(struct store *s, const char *name, const char *text)
{
	char *n = strdup(name), *t = strdup(text);

	if (!n || !t) {
		free(n);
		free(t);
		return -ENOMEM;
	}
	free(s->state_name);
	free(s->state_text);
	s->state_name = n;
	s->state_text = t;
	return 0;
}

char *store_state_get(struct store *s, const char *name)
{
	sqlite3_stmt *st;
	char *text = NULL;

	if (sqlite3_prepare_v2(s->db, "SELECT v FROM meta WHERE k = ?", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
		text = strdup((const char *) sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return text;
}

void store_set_salt(struct store *s, const char *salt)
{
	strlcpy_(s->salt, salt, sizeof(s->salt));
}

uint64_t store_last_seq(struct store *s)
{
	return s->seq;
}

void store_set_seq(struct store *s, uint64_t seq)
{
	if (seq > s->seq)
		s->seq = seq;
}

static bool grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *q;
	size_t c;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 64;
	q = realloc(*p, c * size);
	if (!q)
		return false;
	*p = q;
	*cap = c;
	return true;
}

int store_tel_append(struct store *s, uint64_t seq, const char *topic, const char *payload, size_t len)
{
	return store_tel_append_held(s, seq, topic, payload, len, NULL, 0);
}

int store_tel_append_held(struct store *s, uint64_t seq, const char *topic, const char *payload, size_t len,
			  const char *boot, int64_t mono)
{
	struct tel_row *t;

	if (s->ntel >= BUF_MAX) {
		/* commits keep failing: the oldest buffered message goes */
		free(s->tel[0].topic);
		free(s->tel[0].payload);
		memmove(s->tel, s->tel + 1, (s->ntel - 1) * sizeof(*s->tel));
		s->ntel--;
		s->st.dropped++;
	}
	if (!grow((void **) &s->tel, &s->tel_cap, s->ntel, sizeof(*s->tel)))
		return -ENOMEM;
	t = &s->tel[s->ntel];
	t->seq = seq;
	t->acked = false;
	t->held = boot != NULL;
	t->boot = boot;
	t->mono = mono;
	t->len = len;
	t->topic = strdup(topic);
	t->payload = malloc(len + 1);
	if (!t->topic || !t->payload) {
		free(t->topic);
		free(t->payload);
		return -ENOMEM;
	}
	memcpy(t->payload, payload, len);
	t->payload[len] = '\0';
	s->ntel++;
	if (seq > s->seq)
		s->seq = seq;
	return 0;
}

static struct tel_row *find_buffered(struct store *s, uint64_t seq)
{
	size_t lo = 0, hi = s->ntel;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->tel[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->ntel && s->tel[lo].seq == seq ? &s->tel[lo] : NULL;
}

bool store_tel_buffered(struct store *s, uint64_t seq)
{
	struct tel_row *t = find_buffered(s, seq);

	return t && !t->acked;
}

void store_tel_ack(struct store *s, uint64_t seq)
{
	struct tel_row *t = find_buffered(s, seq);

	if (t) {
		t->acked = true;
		return;
	}
	if (!grow((void **) &s->del, &s->del_cap, s->ndel, sizeof(*s->del)))
		return;    /* the row stays and is sent again after a restart: a duplicate, not a loss */
	s->del[s->ndel++] = seq;
}

static bool pending_delete(const struct store *s, uint64_t seq)
{
	for (size_t i = 0; i < s->ndel; i++)
		if (s->del[i] == seq)
			return true;
	return false;
}

int store_tel_load(struct store *s, uint64_t after, size_t max, store_tel_fn fn, void *arg)
{
	sqlite3_stmt *st;
	int n = 0, r;

	r = sqlite3_prepare_v2(s->db, "SELECT seq, topic, payload FROM tel WHERE seq > ? AND held = 0 ORDER BY seq LIMIT ?", -1, &st, NULL);
	if (r != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, (sqlite3_int64) after);
	sqlite3_bind_int64(st, 2, (sqlite3_int64) (max + s->ndel));
	while ((r = sqlite3_step(st)) == SQLITE_ROW && (size_t) n < max) {
		uint64_t seq = (uint64_t) sqlite3_column_int64(st, 0);
		const char *topic = (const char *) sqlite3_column_text(st, 1);
		const char *payload = (const char *) sqlite3_column_blob(st, 2);

		/* a row without a topic (a file written by something else) cannot
		 * be published: skip it; an empty payload comes back as NULL */
		if (pending_delete(s, seq) || !topic)
			continue;
		fn(arg, seq, topic, payload ? payload : "", (size_t) sqlite3_column_bytes(st, 2));
		n++;
	}
	sqlite3_finalize(st);
	return r == SQLITE_ROW || r == SQLITE_DONE ? n : -EIO;
}

int store_tel_release(struct store *s, const char *boot, int64_t offset_ms, store_release_fn fn, void *arg)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	struct jbuf out = { 0 };
	int n = 0, r;

	if (store_commit(s) < 0)
		return -EIO;
	if (sqlite3_prepare_v2(s->db, "SELECT seq, topic, payload, boot, mono FROM tel WHERE held = 1 ORDER BY seq",
			       -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "UPDATE tel SET payload = ?, held = 0, boot = NULL, mono = NULL WHERE seq = ?",
			       -1, &upd, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	while ((r = sqlite3_step(sel)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t) sqlite3_column_int64(sel, 0);
		const char *topic = (const char *) sqlite3_column_text(sel, 1);
		const char *payload = (const char *) sqlite3_column_blob(sel, 2);
		const char *rboot = (const char *) sqlite3_column_text(sel, 3);
		bool same = rboot && strcmp(rboot, boot) == 0;
		int64_t ts = sqlite3_column_int64(sel, 4) + offset_ms;

		if (!topic || !payload)
			continue;
		jbuf_reset(&out);
		fn(arg, seq, topic, payload, (size_t) sqlite3_column_bytes(sel, 2), same, ts, &out);
		if (out.failed || !out.s)
			goto rollback;
		sqlite3_reset(upd);
		sqlite3_bind_blob(upd, 1, out.s, (int) out.len, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, (sqlite3_int64) seq);
		if (sqlite3_step(upd) != SQLITE_DONE)
			goto rollback;
		n++;
	}
	if (r != SQLITE_DONE || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	jbuf_done(&out);
	return n;
rollback:
	(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
fail:
	log_err("store: cannot release the readings held for the clock: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	jbuf_done(&out);
	return -EIO;
}

int store_win_append(struct store *s, const char *key, const char *json)
{
	struct win_row *w;

	if (!grow((void **) &s->win, &s->win_cap, s->nwin, sizeof(*s->win)))
		return -ENOMEM;
	w = &s->win[s->nwin];
	w->key = strdup(key);
	w->json = strdup(json);
	if (!w->key || !w->json) {
		free(w->key);
		free(w->json);
		return -ENOMEM;
	}
	s->nwin++;
	return 0;
}

static int64_t used_bytes(struct store *s)
{
	int64_t pages = count_rows(s->db, "PRAGMA page_count");
	int64_t freep = count_rows(s->db, "PRAGMA freelist_count");
	int64_t size = count_rows(s->db, "PRAGMA page_size");

	return (pages - freep) * size;
}

/* Inside the commit's transaction: drop the oldest rows until under the cap. */
static int enforce_cap(struct store *s)
{
	int64_t used = used_bytes(s);
	uint64_t dropped = 0;

	while (used > s->max_bytes) {
		/* a twentieth of the rows at a time: close to the cap, not far below it */
		uint64_t chunk = (s->st.tel_rows ? s->st.tel_rows : s->st.win_rows) / 20 + 1;
		char sql[160];
		int ch;

		snprintf(sql, sizeof(sql), "DELETE FROM tel WHERE seq IN (SELECT seq FROM tel ORDER BY seq LIMIT %" PRIu64 ")", chunk);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			return -EIO;
		ch = sqlite3_changes(s->db);
		if (ch == 0) {
			snprintf(sql, sizeof(sql), "DELETE FROM win WHERE id IN (SELECT id FROM win ORDER BY id LIMIT %" PRIu64 ")", chunk);
			if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
				return -EIO;
			ch = sqlite3_changes(s->db);
			s->st.win_rows -= (uint64_t) ch < s->st.win_rows ? (uint64_t) ch : s->st.win_rows;
			if (ch == 0)
				break;
		} else {
			s->st.tel_rows -= (uint64_t) ch < s->st.tel_rows ? (uint64_t) ch : s->st.tel_rows;
		}
		dropped += (uint64_t) ch;
		used = used_bytes(s);
	}
	if (dropped) {
		s->st.dropped += dropped;
		if (!s->full_reported)
			log_err("store: full (max_bytes %" PRId64 "), dropping the oldest entries; %" PRIu64 " dropped so far",
				s->max_bytes, s->st.dropped);
		s->full_reported = true;
	} else if (s->full_reported && used < s->max_bytes * 9 / 10) {
		log_notice("store: below its cap again; %" PRIu64 " entries were dropped", s->st.dropped);
		s->full_reported = false;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static int exec_meta(struct store *s, const char *k, sqlite3_int64 v)
{
	sqlite3_reset(s->set_meta);
	sqlite3_bind_text(s->set_meta, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->set_meta, 2, v);
	return sqlite3_step(s->set_meta) == SQLITE_DONE ? 0 : -EIO;
}

int store_commit(struct store *s)
{
	uint64_t ins = 0, del = 0, wins = 0;
	int r;

	if (!store_dirty(s))
		return 0;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < s->ntel; i++) {
		struct tel_row *t = &s->tel[i];

		if (t->acked)
			continue;
		sqlite3_reset(s->ins_tel);
		sqlite3_bind_int64(s->ins_tel, 1, (sqlite3_int64) t->seq);
		sqlite3_bind_text(s->ins_tel, 2, t->topic, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s->ins_tel, 3, t->payload, (int) t->len, SQLITE_STATIC);
		sqlite3_bind_int(s->ins_tel, 4, t->held);
		if (t->held) {
			sqlite3_bind_text(s->ins_tel, 5, t->boot, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s->ins_tel, 6, t->mono);
		} else {
			sqlite3_bind_null(s->ins_tel, 5);
			sqlite3_bind_null(s->ins_tel, 6);
		}
		if (sqlite3_step(s->ins_tel) != SQLITE_DONE)
			goto rollback;
		ins++;
	}
	/* acknowledgements come nearly in seq order: one statement per run of
	 * consecutive seqs rather than one per row (a third of the commit's cost) */
	if (s->ndel > 1)
		qsort(s->del, s->ndel, sizeof(*s->del), cmp_u64);   /* del is NULL until the first ack */
	for (size_t i = 0, j; i < s->ndel; i = j) {
		for (j = i + 1; j < s->ndel && s->del[j] <= s->del[j - 1] + 1; j++)
			;
		sqlite3_reset(s->del_tel);
		sqlite3_bind_int64(s->del_tel, 1, (sqlite3_int64) s->del[i]);
		sqlite3_bind_int64(s->del_tel, 2, (sqlite3_int64) s->del[j - 1]);
		if (sqlite3_step(s->del_tel) != SQLITE_DONE)
			goto rollback;
		del += (uint64_t) sqlite3_changes(s->db);
	}
	for (size_t i = 0; i < s->nwin; i++) {
		sqlite3_reset(s->ins_win);
		sqlite3_bind_text(s->ins_win, 1, s->win[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins_win, 2, s->win[i].json, -1, SQLITE_STATIC);
		if (sqlite3_step(s->ins_win) != SQLITE_DONE)
			goto rollback;
		wins += (uint64_t) sqlite3_changes(s->db);
	}
	if (s->seq != s->seq_saved && exec_meta(s, "seq", (sqlite3_int64) s->seq) < 0)
		goto rollback;
	if (s->state_name) {
		sqlite3_reset(s->set_meta);
		sqlite3_bind_text(s->set_meta, 1, s->state_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->set_meta, 2, s->state_text, -1, SQLITE_STATIC);
		if (sqlite3_step(s->set_meta) != SQLITE_DONE)
			goto rollback;
	}
	s->st.tel_rows += ins;
	s->st.tel_rows -= del < s->st.tel_rows ? del : s->st.tel_rows;
	s->st.win_rows += wins;
	if (enforce_cap(s) < 0)
		goto rollback;
	r = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (r != SQLITE_OK)
		goto rollback;
	for (size_t i = 0; i < s->ntel; i++) {
		free(s->tel[i].topic);
		free(s->tel[i].payload);
	}
	for (size_t i = 0; i < s->nwin; i++) {
		free(s->win[i].key);
		free(s->win[i].json);
	}
	s->ntel = s->ndel = s->nwin = 0;
	s->seq_saved = s->seq;
	free(s->state_name);
	free(s->state_text);
	s->state_name = s->state_text = NULL;
	s->st.commits++;
	if (s->failing) {
		log_notice("store: writing again");
		s->failing = false;
	}
	return (int) ins;
rollback:
	(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	/* recount: the counters moved inside the rolled-back transaction */
	s->st.tel_rows = (uint64_t) count_rows(s->db, "SELECT COUNT(*) FROM tel");
	s->st.win_rows = (uint64_t) count_rows(s->db, "SELECT COUNT(*) FROM win");
fail:
	s->st.write_errors++;
	if (!s->failing)
		log_err("store: commit to '%s' failed: %s; keeping %zu messages in memory and retrying",
			s->path, sqlite3_errmsg(s->db), s->ntel);
	s->failing = true;
	return -EIO;
}

static int load_batch(struct store *s, uint64_t id, struct store_batch *b)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int r;

	if (sqlite3_prepare_v2(s->db, "SELECT body FROM win WHERE batch = ? ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *body = sqlite3_column_text(st, 0);
		size_t n = (size_t) sqlite3_column_bytes(st, 0);
		size_t need = b->items_len + n + 2;

		if (!body || n == 0)
			continue;   /* nothing to send (NULL in a file written by something else) */
		if (need > cap) {
			char *q;
			cap = need * 2;
			q = realloc(b->items, cap);
			if (!q) {
				sqlite3_finalize(st);
				return -ENOMEM;
			}
			b->items = q;
		}
		if (b->n)
			b->items[b->items_len++] = ',';
		memcpy(b->items + b->items_len, body, n);
		b->items_len += n;
		b->items[b->items_len] = '\0';
		b->n++;
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : -EIO;
}

int store_batch_next(struct store *s, size_t max_items, size_t max_bytes, struct store_batch *ret)
{
	sqlite3_stmt *st = NULL;
	uint64_t id = 0, last = 0;
	size_t n = 0, bytes = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (store_commit(s) < 0 && s->nwin)
		return -EIO;
	/* a batch formed earlier (maybe before a restart) goes first, unchanged */
	if (sqlite3_prepare_v2(s->db, "SELECT id, key FROM batch ORDER BY id LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *k = sqlite3_column_text(st, 1);

		id = (uint64_t) sqlite3_column_int64(st, 0);
		strlcpy_(ret->key, k ? (const char *) k : "", sizeof(ret->key));
	}
	sqlite3_finalize(st);
	if (!id) {
		/* the key: two 64-bit FNV-1a hashes (different bases) of the
		 * gateway's name and the window keys, and the count */
		uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x6c62272e07bb0142ULL;

		for (const unsigned char *p = (const unsigned char *) s->salt; *p; p++) {
			h1 = (h1 ^ *p) * 0x100000001b3ULL;
			h2 = (h2 ^ *p) * 0x100000001b3ULL;
		}

		if (sqlite3_prepare_v2(s->db, "SELECT id, key, length(body) FROM win WHERE batch IS NULL ORDER BY id LIMIT ?",
				       -1, &st, NULL) != SQLITE_OK)
			return -EIO;
		sqlite3_bind_int64(st, 1, (sqlite3_int64) max_items);
		while (sqlite3_step(st) == SQLITE_ROW) {
			size_t len = (size_t) sqlite3_column_int64(st, 2);
			const unsigned char *k = sqlite3_column_text(st, 1);

			if (n > 0 && bytes + len + 1 > max_bytes)
				break;
			last = (uint64_t) sqlite3_column_int64(st, 0);
			bytes += len + 1;
			n++;
			for (const unsigned char *p = k; p && *p; p++) {
				h1 = (h1 ^ *p) * 0x100000001b3ULL;
				h2 = (h2 ^ *p) * 0x100000001b3ULL;
			}
			h1 = (h1 ^ '\n') * 0x100000001b3ULL;
			h2 = (h2 ^ '\n') * 0x100000001b3ULL;
		}
		sqlite3_finalize(st);
		if (n == 0)
			return 0;
		snprintf(ret->key, sizeof(ret->key), "%016" PRIx64 "%016" PRIx64 "-%zu", h1, h2, n);
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			return -EIO;
		if (sqlite3_prepare_v2(s->db, "INSERT INTO batch(key) VALUES(?)", -1, &st, NULL) != SQLITE_OK)
			goto rollback;
		sqlite3_bind_text(st, 1, ret->key, -1, SQLITE_STATIC);
		r = sqlite3_step(st);
		sqlite3_finalize(st);
		if (r != SQLITE_DONE)
			goto rollback;
		id = (uint64_t) sqlite3_last_insert_rowid(s->db);
		if (sqlite3_prepare_v2(s->db, "UPDATE win SET batch = ? WHERE batch IS NULL AND id <= ?", -1, &st, NULL) != SQLITE_OK)
			goto rollback;
		sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64) last);
		r = sqlite3_step(st);
		sqlite3_finalize(st);
		if (r != SQLITE_DONE || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			goto rollback;
	}
	ret->id = id;
	r = load_batch(s, id, ret);
	if (r < 0) {
		store_batch_done(ret);
		return r;
	}
	if (ret->n == 0) {
		/* its windows were dropped by the size cap: forget the empty batch
		 * (when that fails, as on a full disk, trying again would recurse
		 * on the same batch for ever) */
		r = store_batch_delete(s, id);
		if (r < 0)
			return r;
		return store_batch_next(s, max_items, max_bytes, ret);
	}
	return 1;
rollback:
	(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -EIO;
}

void store_batch_done(struct store_batch *b)
{
	free(b->items);
	memset(b, 0, sizeof(*b));
}

static int run_batch_sql(struct store *s, const char *sql, uint64_t id)
{
	sqlite3_stmt *st;
	int r;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? sqlite3_changes(s->db) : -EIO;
}

int store_batch_delete(struct store *s, uint64_t id)
{
	int n;

	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	n = run_batch_sql(s, "DELETE FROM win WHERE batch = ?", id);
	if (n < 0 || run_batch_sql(s, "DELETE FROM batch WHERE id = ?", id) < 0 ||
	    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -EIO;
	}
	s->st.win_rows -= (uint64_t) n < s->st.win_rows ? (uint64_t) n : s->st.win_rows;
	return n;
}

int store_batch_dead(struct store *s, uint64_t id, long status, const char *answer)
{
	struct store_batch b = { 0 };
	sqlite3_stmt *st;
	int r;

	if (load_batch(s, id, &b) < 0)
		return -EIO;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO dead(batch_key, status, answer, items, at) "
			       "VALUES((SELECT key FROM batch WHERE id = ?), ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
	sqlite3_bind_int64(st, 2, status);
	sqlite3_bind_text(st, 3, answer ? answer : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, b.items ? b.items : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, wall_ms());
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		goto rollback;
	if (sqlite3_exec(s->db, "DELETE FROM dead WHERE id <= (SELECT MAX(id) FROM dead) - 1000", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	r = run_batch_sql(s, "DELETE FROM win WHERE batch = ?", id);
	if (r < 0 || run_batch_sql(s, "DELETE FROM batch WHERE id = ?", id) < 0)
		goto rollback;
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	s->st.win_rows -= (uint64_t) r < s->st.win_rows ? (uint64_t) r : s->st.win_rows;
	s->st.dead_rows = (uint64_t) count_rows(s->db, "SELECT COUNT(*) FROM dead");
	store_batch_done(&b);
	return 0;
rollback:
	(void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
fail:
	store_batch_done(&b);
	return -EIO;
}

bool store_dirty(const struct store *s)
{
	return s->ntel || s->ndel || s->nwin || s->seq != s->seq_saved || s->state_name;
}

bool store_healthy(const struct store *s)
{
	return !s->failing;
}

uint64_t store_tel_rows(const struct store *s)
{
	return s->st.tel_rows;
}

void store_get_stats(struct store *s, struct store_stats *ret)
{
	*ret = s->st;
	ret->bytes = (uint64_t) used_bytes(s);
}
