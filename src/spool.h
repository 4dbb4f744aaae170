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
