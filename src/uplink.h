/*
 * uplink.h: the HTTPS uplink to the platform (contract: docs/uplink.md).
 * It POSTs the store's batches of closed windows one at a time, deletes a
 * batch on 2xx, dead-letters it on other 4xx and retries everything else
 * with back-off.  libcurl's multi interface, driven from the core thread's
 * poll() loop: no threads inside, every function core thread only.
 *
 * Per pass of the loop: uplink_tick() (timers, starting the next batch),
 * then uplink_pollfds() into the poll set, poll(), then uplink_io() with
 * what poll() returned for those entries.  After store_win_append() call
 * uplink_kick() so the new windows go out without waiting.
 */
#ifndef AGRIGW_UPLINK_H
#define AGRIGW_UPLINK_H

#include <poll.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"
#include "store.h"

#define UPLINK_MAX_FDS 4           /* sockets one transfer may want watched */
#define UPLINK_ANSWER_MAX 200      /* bytes of a refusal kept and logged */

struct uplink;

struct uplink_stats {
	uint64_t windows_sent;     /* windows in batches the platform accepted */
	uint64_t batches_ok;       /* 2xx answers */
	uint64_t retries;          /* attempts that failed and will be retried */
	uint64_t dead_letters;     /* batches refused with a 4xx */
	uint64_t backlog;          /* windows waiting in the store */
	long last_status;          /* HTTP status of the last answer, 0 when none or no answer */
	const char *state;         /* "ok", "retrying" or "down" (static string) */
};

/*
 * Checks the URL (https://, or http:// with uplink.allow_insecure, warned)
 * and reads the token ($CREDENTIALS_DIRECTORY/platform-token when that is
 * set and exists, else uplink.token_file; none when neither).  Returns NULL
 * and logs the cause on any failure.  The settings are copied; 's' must
 * outlive the object.  Not to be called when uplink.url is empty.
 */
struct uplink *uplink_new(const struct conf *c, struct store *s);
void uplink_free(struct uplink *u);     /* abandons a transfer in flight; the batch stays in the store */

/* New windows are in the store: look for a batch at the next uplink_tick(). */
void uplink_kick(struct uplink *u);

/* Fill at most 'max' entries with the sockets to watch; returns how many. */
int uplink_pollfds(struct uplink *u, struct pollfd *pfd, int max);

/* Hand over what poll() returned for the entries uplink_pollfds() filled. */
void uplink_io(struct uplink *u, const struct pollfd *pfd, int n);

/* Run libcurl's timers, finish and start transfers.  Returns ms until it
 * wants to be called again (0..60000). */
int64_t uplink_tick(struct uplink *u, int64_t now_mono_ms);

void uplink_get_stats(const struct uplink *u, struct uplink_stats *ret);

/* No batch is started while the clock is not trusted (TLS certificates and
 * window times both need it); said once in the log. */
void uplink_set_clock_ok(struct uplink *u, bool ok);

/* ---- pure parts, exposed for the unit tests ---- */

enum uplink_verdict { UPLINK_ACK, UPLINK_RETRY, UPLINK_DEAD };

/* What to do with an HTTP answer: 2xx ACK; 408, 429, 1xx, 3xx, 5xx RETRY; other 4xx DEAD. */
enum uplink_verdict uplink_verdict(long status);

/*
 * A Retry-After value: delta seconds ("120"; negative is taken as 0) or an
 * HTTP date (via curl_getdate(); in the past is 0), relative to now_wall_s.
 * Returns the delay in ms (saturating), or -1 when it is neither.
 */
int64_t uplink_retry_after_ms(const char *value, time_t now_wall_s);

/*
 * The delay before retry 'attempt' (0 for the first): full jitter over
 * base_ms * 2^attempt capped at max_ms, but never less than a Retry-After
 * (retry_after_ms >= 0), itself capped at max_ms.
 */
int64_t uplink_retry_delay(int64_t base_ms, int64_t max_ms, unsigned attempt, uint32_t rnd,
			   int64_t retry_after_ms);

#endif
