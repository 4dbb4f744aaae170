/*
 * store.h: the durable outbox (SQLite, WAL) in the state directory.
 *
 * It holds what the broker or the platform has not acknowledged yet:
 * telemetry messages (until PUBACK) and closed aggregate windows (until the
 * platform answers 2xx), plus dead letters (windows the platform refused
 * with a 4xx) and a few counters (the last telemetry seq).  Writes are
 * buffered in memory and committed together by store_commit(), which the
 * core calls every store.commit_interval: a power cut loses at most that
 * much; a kill -9 loses nothing already committed.
 *
 * Core thread only.  Every function returns 0 (or a count) or a negative
 * errno; failures are logged here once per state change, counted, and the
 * caller goes on (polling never stops because the disk is full).
 */
#ifndef AGRIGW_STORE_H
#define AGRIGW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct store;

struct store_stats {
	uint64_t tel_rows;         /* telemetry rows on disk (committed, not acknowledged) */
	uint64_t win_rows;         /* windows waiting for the platform */
	uint64_t dead_rows;        /* dead letters kept */
	uint64_t bytes;            /* database size */
	uint64_t dropped;          /* rows dropped because store.max_bytes was reached */
	uint64_t write_errors;     /* failed commits (disk full, I/O errors) */
	uint64_t commits;
	uint64_t corrupt_moved;    /* corrupt databases moved aside at start */
};

/*
 * Open (or create) DIR/agrigw.db.  A file that fails the integrity check or
 * is not a database is renamed to agrigw.db.corrupt-YYYYmmddTHHMMSS, logged,
 * and a fresh database is made.  NULL only when no database can be made at all.
 */
struct store *store_open(const char *dir, int64_t max_bytes);
void store_close(struct store *s);   /* commits what is buffered first */

/* The gateway's name ("site/id"), mixed into every batch key. */
void store_set_salt(struct store *s, const char *salt);

/* The last telemetry seq ever stored or acknowledged (0 for a new database). */
uint64_t store_last_seq(struct store *s);
/* Remember the seq counter (committed with the next store_commit()). */
void store_set_seq(struct store *s, uint64_t seq);

/* Saved state (the open aggregate windows): written with the next commit;
 * store_state_get() returns a malloc'd copy or NULL. */
int store_state_set(struct store *s, const char *name, const char *text);
char *store_state_get(struct store *s, const char *name);

/* ---- telemetry ---- */

/* Buffer a telemetry message for the next commit. */
int store_tel_append(struct store *s, uint64_t seq, const char *topic, const char *payload, size_t len);

/*
 * A message taken while the clock was not trusted: not handed out by
 * store_tel_load() until store_tel_release().  'boot' (this boot's id) must
 * stay valid until the next commit.
 */
int store_tel_append_held(struct store *s, uint64_t seq, const char *topic, const char *payload, size_t len,
			  const char *boot, int64_t mono);

/*
 * The clock is trusted now: every held row, oldest first, is passed to fn
 * with 'corrected' true when it was taken in boot 'boot' (then 'ts' is its
 * monotonic time plus offset_ms) and false for rows of an earlier boot; fn
 * writes the payload to keep into 'out'.  Commits first and at the end.
 * Returns the number of rows released or -EIO.
 */
struct jbuf;
typedef void (*store_release_fn)(void *arg, uint64_t seq, const char *topic, const char *payload, size_t len,
				 bool corrected, int64_t ts, struct jbuf *out);
int store_tel_release(struct store *s, const char *boot, int64_t offset_ms, store_release_fn fn, void *arg);

/* Acknowledged: drop it from the buffer, or delete the row at the next commit. */
void store_tel_ack(struct store *s, uint64_t seq);

/* Is this seq still only in the memory buffer (not yet committed)? */
bool store_tel_buffered(struct store *s, uint64_t seq);

/*
 * Committed telemetry with seq > after, in seq order, at most 'max' rows;
 * calls fn for each.  Returns the number delivered or negative errno.
 */
typedef void (*store_tel_fn)(void *arg, uint64_t seq, const char *topic, const char *payload, size_t len);
int store_tel_load(struct store *s, uint64_t after, size_t max, store_tel_fn fn, void *arg);

/* ---- aggregate windows ---- */

/*
 * Buffer a closed window: 'key' is its unique, deterministic name
 * (device/point/start); 'json' the JSON object the uplink sends for it.
 * A window already stored under the same key is kept as is.
 */
int store_win_append(struct store *s, const char *key, const char *json);

struct store_batch {
	uint64_t id;               /* batch number, stable across restarts */
	char key[80];              /* Idempotency-Key: deterministic from the windows in it */
	size_t n;                  /* windows in it */
	char *items;               /* "json,json,..." (owned; free with store_batch_done()) */
	size_t items_len;
};

/*
 * The oldest batch waiting: a batch once formed keeps its windows (and its
 * key) until it is deleted or dead-lettered, also across restarts.  A new
 * batch takes at most max_items windows and max_bytes bytes of JSON.
 * Returns 1 with *ret filled, 0 when nothing waits, or negative errno.
 * Commits first so the batch is formed from durable rows.
 */
int store_batch_next(struct store *s, size_t max_items, size_t max_bytes, struct store_batch *ret);
void store_batch_done(struct store_batch *b);

/* The platform accepted the batch: delete its windows (committed at once). */
int store_batch_delete(struct store *s, uint64_t id);

/* The platform refused it (4xx): keep it as a dead letter with the status and
 * the first bytes of the answer (committed at once). */
int store_batch_dead(struct store *s, uint64_t id, long status, const char *answer);

/* ---- all ---- */

/* Write the buffered changes in one transaction; enforce max_bytes.
 * Returns the number of telemetry rows written, or -EIO (logged once). */
int store_commit(struct store *s);

/* Something is buffered and waits for store_commit(). */
bool store_dirty(const struct store *s);

/* The last commit succeeded (or none failed yet). */
bool store_healthy(const struct store *s);

/* Counters; 'bytes' costs three queries, so not for every loop pass. */
void store_get_stats(struct store *s, struct store_stats *ret);

/* Telemetry rows on disk, cheaply (a counter). */
uint64_t store_tel_rows(const struct store *s);

#endif
