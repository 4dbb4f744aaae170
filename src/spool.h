/*
 * spool.h: the telemetry outbox between the core and the broker.
 *
 * Every telemetry message gets a seq and is added here; the broker side
 * takes them in seq order with spool_next() and acknowledges them with
 * spool_ack().  A message is handed out only once the store has committed
 * it (or when there is no working store), so a seq the broker may have seen
 * is never reused after a crash.  Recent messages stay in memory (up to
 * 'mem_max'); older ones are read back from the store when their turn comes.
 * Core thread only.
 */
#ifndef AGRIGW_SPOOL_H
#define AGRIGW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct spool;

struct spool_msg {
	uint64_t seq;
	const char *topic;
	const char *payload;     /* with "historical":true added when it is one */
	size_t len;
};

/* 'store' may be NULL: memory only, the oldest dropped when full. */
struct spool *spool_new(struct store *store, size_t mem_max);
void spool_free(struct spool *sp);

/* A new message (seq must be the previous one + 1).  0 or -ENOMEM. */
int spool_add(struct spool *sp, uint64_t seq, const char *topic, const char *payload, size_t len, bool historical);

/*
 * A message taken before the clock was trusted (boot id 'boot', monotonic
 * time 'mono'): nothing from it on is handed out until spool_release().
 * 'boot' must outlive the spool.
 */
int spool_add_held(struct spool *sp, uint64_t seq, const char *topic, const char *payload, size_t len,
		   const char *boot, int64_t mono);

/*
 * The clock is trusted: every held message gets its final payload (ts
 * corrected to mono + offset_ms for this boot's, flagged "unsynced" for an
 * earlier boot's; see payload_retime()) and is released, oldest first, and
 * fn sees each once with its final payload (to aggregate it).  Returns the
 * number released or -EIO.
 */
typedef void (*spool_release_fn)(void *arg, const char *topic, const char *payload, size_t len, bool corrected,
				 int64_t ts);
int spool_release(struct spool *sp, const char *boot, int64_t offset_ms, spool_release_fn fn, void *arg);

/* The next message to publish, or NULL when none is ready.  Valid until the next spool call. */
const struct spool_msg *spool_next(struct spool *sp);

/* The broker acknowledged seq. */
void spool_ack(struct spool *sp, uint64_t seq);

/* The connection broke: everything not acknowledged goes out again, oldest first. */
void spool_rewind(struct spool *sp);

/* Messages held in memory / dropped because memory was full and there was no store. */
size_t spool_held(const struct spool *sp);
uint64_t spool_dropped(const struct spool *sp);

#endif
