/*
 * spool.c: telemetry on its way to the broker, in seq order.
 *
 * A ring of the newest messages in memory, contiguous in seq, backed by the
 * store: a message enters the store's buffer when it is added and leaves
 * the store when the broker acknowledges it.  The publish cursor (next_seq)
 * walks first through what only the disk still holds (older messages pushed
 * out of memory, or left from before a restart), then through the ring.
 *
 * Why publish only committed messages: a reading lost in a crash must not
 * leave a hole in the seq numbers a receiver saw, and a seq a receiver saw
 * must not be given to another reading after the restart.  Committing
 * first makes both true: after a crash the seq counter resumes from the last
 * commit, and everything up to it is either acknowledged or still on disk.
 * The price is at most one commit interval of latency, and commits happen at
 * once when the previous one is older than that interval, so a site that
 * polls every minute sees none.
 *
 * Messages that waited (the broker was away when they were taken, or they
 * come back from disk) carry "historical":true; live ones do not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "payload.h"
#include "spool.h"

#define DISK_CHUNK 64

enum { SP_UNSENT, SP_INFLIGHT, SP_ACKED };

struct entry {
	uint64_t seq;
	int state;
	bool historical;
	bool held;                /* taken before the clock was trusted: not yet publishable */
	int64_t mono;
	size_t len;
	char *payload;            /* into data, after the topic */
	char data[];
};

struct spool {
	struct store *store;
	size_t max;
	struct entry **ring;
	size_t head, len;
	uint64_t mem_first;       /* seq of the ring's head (or of the next add when empty) */
	uint64_t next_seq;        /* publish cursor */
	bool disk_pending;        /* rows older than mem_first may be on disk */
	struct entry **disk;      /* read-ahead from the store */
	size_t ndisk, disk_pos;
	size_t held;              /* ring entries not yet acknowledged */
	uint64_t first_held;      /* oldest seq waiting for the clock, 0 when none */
	uint64_t dropped;
	bool drop_reported;
	struct spool_msg out;
	char *outbuf;             /* payload with the historical flag */
	size_t outcap;
};

static struct entry *entry_new(uint64_t seq, const char *topic, const char *payload, size_t len, bool hist)
{
	size_t tl = strlen(topic);
	struct entry *e = malloc(sizeof(*e) + tl + 1 + len + 1);

	if (!e)
		return NULL;
	e->seq = seq;
	e->state = SP_UNSENT;
	e->historical = hist;
	e->held = false;
	e->mono = 0;
	e->len = len;
	memcpy(e->data, topic, tl + 1);
	e->payload = e->data + tl + 1;
	memcpy(e->payload, payload, len);
	e->payload[len] = '\0';
	return e;
}

struct spool *spool_new(struct store *store, size_t mem_max)
{
	struct spool *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return NULL;
	sp->store = store;
	sp->max = mem_max ? mem_max : 1;
	sp->ring = calloc(sp->max, sizeof(*sp->ring));
	sp->disk = calloc(DISK_CHUNK, sizeof(*sp->disk));
	if (!sp->ring || !sp->disk) {
		spool_free(sp);
		return NULL;
	}
	sp->mem_first = (store ? store_last_seq(store) : 0) + 1;
	sp->next_seq = store ? 1 : sp->mem_first;
	sp->disk_pending = store != NULL;
	return sp;
}

static void disk_clear(struct spool *sp)
{
	for (size_t i = 0; i < sp->ndisk; i++)
		free(sp->disk[i]);
	sp->ndisk = sp->disk_pos = 0;
}

void spool_free(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->ring)
		for (size_t i = 0; i < sp->len; i++)
			free(sp->ring[(sp->head + i) % sp->max]);
	if (sp->disk)
		disk_clear(sp);
	free(sp->ring);
	free(sp->disk);
	free(sp->outbuf);
	free(sp);
}

static struct entry *at(const struct spool *sp, size_t i)
{
	return sp->ring[(sp->head + i) % sp->max];
}

static void pop_head(struct spool *sp)
{
	free(sp->ring[sp->head]);
	sp->ring[sp->head] = NULL;
	sp->head = (sp->head + 1) % sp->max;
	sp->len--;
	sp->mem_first++;
}

static int add(struct spool *sp, uint64_t seq, const char *topic, const char *payload, size_t len, bool historical,
	       const char *boot, int64_t mono)
{
	struct entry *e;

	if (sp->len == 0)
		sp->mem_first = seq;
	if (sp->store && store_tel_append_held(sp->store, seq, topic, payload, len, boot, mono) < 0)
		log_err("spool: cannot buffer seq %llu for the store: out of memory", (unsigned long long) seq);
	if (sp->len == sp->max) {
		struct entry *old = at(sp, 0);

		if (sp->store && store_healthy(sp->store)) {
			/* it lives on in the store: read back from there when its turn comes */
			if (store_tel_buffered(sp->store, old->seq))
				(void) store_commit(sp->store);
			if (old->state != SP_ACKED)
				sp->disk_pending = true;
		} else {
			/* nowhere else to keep it */
			if (old->state != SP_ACKED) {
				sp->dropped++;
				if (!sp->drop_reported)
					log_err("spool: %zu messages held in memory and no working store; dropping the oldest (counted)",
						sp->max);
				sp->drop_reported = true;
			}
			if (sp->next_seq <= old->seq)
				sp->next_seq = old->seq + 1;
		}
		if (old->state != SP_ACKED)
			sp->held--;
		pop_head(sp);
	}
	e = entry_new(seq, topic, payload, len, historical);
	if (!e)
		return -ENOMEM;
	e->held = boot != NULL;
	e->mono = mono;
	if (boot && !sp->first_held)
		sp->first_held = seq;
	sp->ring[(sp->head + sp->len) % sp->max] = e;
	sp->len++;
	sp->held++;
	return 0;
}

int spool_add(struct spool *sp, uint64_t seq, const char *topic, const char *payload, size_t len, bool historical)
{
	return add(sp, seq, topic, payload, len, historical, NULL, 0);
}

int spool_add_held(struct spool *sp, uint64_t seq, const char *topic, const char *payload, size_t len,
		   const char *boot, int64_t mono)
{
	return add(sp, seq, topic, payload, len, true, boot, mono);
}

struct release {
	struct spool *sp;
	spool_release_fn fn;
	void *arg;
};

/* A held row of the store: final payload, and to the caller unless the ring has it too. */
static void release_row(void *arg, uint64_t seq, const char *topic, const char *payload, size_t len,
			bool corrected, int64_t ts, struct jbuf *out)
{
	struct release *r = arg;
	struct spool *sp = r->sp;

	(void) payload_retime(out, payload, len, corrected, ts);
	if (sp->len == 0 || seq < sp->mem_first)
		r->fn(r->arg, topic, out->s, out->len, corrected, ts);
}

int spool_release(struct spool *sp, const char *boot, int64_t offset_ms, spool_release_fn fn, void *arg)
{
	struct release r = { sp, fn, arg };
	struct jbuf out = { 0 };
	int n = 0;

	if (sp->store && store_tel_release(sp->store, boot, offset_ms, release_row, &r) < 0)
		return -EIO;
	if (sp->store) {
		/* held rows pushed out of memory are on disk: the cursor goes back to them
		 * (and to rows of an earlier boot, which are older than anything here) */
		sp->next_seq = 1;
		sp->disk_pending = true;
	} else if (sp->first_held && sp->next_seq > sp->first_held) {
		sp->next_seq = sp->first_held;
	}
	sp->first_held = 0;
	for (size_t i = 0; i < sp->len; i++) {
		struct entry *e = at(sp, i), *ne;
		int64_t ts = e->mono + offset_ms;

		if (!e->held)
			continue;
		(void) payload_retime(&out, e->payload, e->len, true, ts);
		ne = out.failed ? NULL : entry_new(e->seq, e->data, out.s, out.len, true);
		if (ne) {
			ne->state = e->state;
			sp->ring[(sp->head + i) % sp->max] = ne;
			free(e);
			e = ne;
		}
		e->held = false;
		fn(arg, e->data, e->payload, e->len, true, ts);
		n++;
	}
	jbuf_done(&out);
	return n;
}

static void take_disk(void *arg, uint64_t seq, const char *topic, const char *payload, size_t len)
{
	struct spool *sp = arg;
	struct entry *e;

	if (seq >= sp->mem_first && sp->len > 0)
		return;          /* memory has it */
	if (sp->ndisk >= DISK_CHUNK)
		return;
	e = entry_new(seq, topic, payload, len, true);
	if (e)
		sp->disk[sp->ndisk++] = e;
}

static const struct spool_msg *emit(struct spool *sp, const struct entry *e)
{
	sp->out.seq = e->seq;
	sp->out.topic = e->data;
	sp->out.payload = e->payload;
	sp->out.len = e->len;
	if (e->historical && e->len > 0 && e->payload[e->len - 1] == '}') {
		static const char flag[] = ",\"historical\":true}";
		size_t need = e->len - 1 + sizeof(flag);

		if (need > sp->outcap) {
			char *b = realloc(sp->outbuf, need);
			if (!b)
				return &sp->out;    /* sent without the flag rather than not at all */
			sp->outbuf = b;
			sp->outcap = need;
		}
		memcpy(sp->outbuf, e->payload, e->len - 1);
		memcpy(sp->outbuf + e->len - 1, flag, sizeof(flag));
		sp->out.payload = sp->outbuf;
		sp->out.len = need - 1;
	}
	return &sp->out;
}

const struct spool_msg *spool_next(struct spool *sp)
{
	/* first what only the disk holds */
	while (sp->disk_pending) {
		if (sp->disk_pos < sp->ndisk) {
			struct entry *e = sp->disk[sp->disk_pos++];

			if (e->seq < sp->next_seq)
				continue;
			sp->next_seq = e->seq + 1;
			return emit(sp, e);
		}
		disk_clear(sp);
		if (store_tel_load(sp->store, sp->next_seq - 1, DISK_CHUNK, take_disk, sp) < 0 || sp->ndisk == 0) {
			sp->disk_pending = false;
			if (sp->next_seq < sp->mem_first)
				sp->next_seq = sp->mem_first;
		}
	}
	/* then the ring */
	if (sp->next_seq < sp->mem_first)
		sp->next_seq = sp->mem_first;
	while (sp->next_seq - sp->mem_first < sp->len) {
		struct entry *e = at(sp, (size_t) (sp->next_seq - sp->mem_first));

		if (e->state != SP_UNSENT) {
			sp->next_seq++;
			continue;
		}
		if (e->held)
			return NULL;      /* waits for the clock, and so does all that follows */
		/* not before the store has it: see the comment at the top */
		if (sp->store && store_healthy(sp->store) && store_tel_buffered(sp->store, e->seq))
			return NULL;
		e->state = SP_INFLIGHT;
		sp->next_seq++;
		return emit(sp, e);
	}
	return NULL;
}

void spool_ack(struct spool *sp, uint64_t seq)
{
	if (sp->store)
		store_tel_ack(sp->store, seq);
	if (seq >= sp->mem_first && seq - sp->mem_first < sp->len) {
		struct entry *e = at(sp, (size_t) (seq - sp->mem_first));

		if (e->state != SP_ACKED) {
			e->state = SP_ACKED;
			sp->held--;
		}
	}
	while (sp->len && at(sp, 0)->state == SP_ACKED)
		pop_head(sp);
	if (sp->len == 0) {
		if (sp->next_seq > sp->mem_first)
			sp->mem_first = sp->next_seq;
		sp->drop_reported = false;
	}
}

void spool_rewind(struct spool *sp)
{
	for (size_t i = 0; i < sp->len; i++)
		if (at(sp, i)->state == SP_INFLIGHT)
			at(sp, i)->state = SP_UNSENT;
	disk_clear(sp);
	if (sp->store) {
		sp->next_seq = 1;
		sp->disk_pending = true;
	} else {
		sp->next_seq = sp->mem_first;
	}
}

size_t spool_held(const struct spool *sp)
{
	return sp->held;
}

uint64_t spool_dropped(const struct spool *sp)
{
	return sp->dropped;
}
