/*
 * agg.h: windowed aggregates of every point of every enabled device, for
 * the uplink.  Windows are aligned to multiples of uplink.window_s of wall
 * clock time (epoch ms): [start, start + window).  A window closes once its
 * end + uplink.grace has passed and becomes an item (its JSON object, the
 * contract in docs/uplink.md, and its key "DEVICE/POINT/START_MS").
 *
 * Pure: no I/O, no logging, no clock reads.  Core thread only.  The object
 * copies the names, units and intervals it needs, so the conf may go away
 * after agg_new(); on a reload the caller saves, frees, makes a new one and
 * restores.
 */
#ifndef AGRIGW_AGG_H
#define AGRIGW_AGG_H

#include <stdint.h>

#include "conf.h"
#include "payload.h"
#include "queue.h"

struct agg;

struct agg_stats {
	uint64_t values;           /* values taken into an open window (good and bad) */
	uint64_t late;             /* values dropped: their window had already closed */
	uint64_t dropped;          /* values or windows lost to a failed allocation */
	uint64_t closed;           /* windows handed to the emit function */
	uint64_t open;             /* windows open now */
};

/*
 * 'start_wall_ms' is when the gateway started: the window it falls in
 * expects polls only for the part after it.  Returns NULL with errno set
 * (EINVAL when uplink.window_s or a device interval is not positive,
 * ENOMEM).  The caller owns the result (agg_free()).
 */
struct agg *agg_new(const struct conf *c, int64_t start_wall_ms);
void agg_free(struct agg *a);

/*
 * Take the values of one EV_READING event of device 'device' (index into
 * conf->devices) stamped 'ts_ms' (wall clock).  A value whose window has
 * already closed is counted as late and dropped (a closed window never
 * reopens).  Other event kinds and disabled devices are ignored.  Returns 0,
 * -EINVAL for a device index out of range, or -ENOMEM (values counted as
 * dropped).
 */
int agg_add(struct agg *a, int device, const struct event *ev, int64_t ts_ms);

/* Called once per closed window; 'key' and 'json' are valid during the call only. */
typedef void (*agg_emit_fn)(void *arg, const char *key, const char *json);

/*
 * Close every window whose end + grace <= now_wall_ms and that saw at least
 * one value (good or bad), oldest start first, calling fn for each.
 * Returns the number of windows emitted.
 */
int agg_close_due(struct agg *a, int64_t now_wall_ms, agg_emit_fn fn, void *arg);

/* Wall time at which the next open window is due to close, INT64_MAX when none is open. */
int64_t agg_next_due(const struct agg *a);

/*
 * The open windows as one JSON document (replaces the contents of 'out';
 * out->failed is set when memory ran out), for agg_restore() after a
 * restart or reload.
 */
void agg_save(const struct agg *a, struct jbuf *out);

/*
 * Merge windows saved by agg_save() into 'a' (normally right after
 * agg_new()).  Entries for devices or points no longer configured, and all
 * windows when the window length changed, are skipped; windows that have
 * closed since are closed by the next agg_close_due().  Returns the number
 * of windows restored, -EINVAL when 'json' is not such a document, or -ENOMEM
 * (windows merged before an error stay).
 */
int agg_restore(struct agg *a, const char *json);

void agg_get_stats(const struct agg *a, struct agg_stats *ret);

#endif
