/*
 * bus.c: one worker thread per Modbus bus.
 *
 * The worker owns the bus' modbus_t and its devices' schedules.  It sleeps on
 * the monotonic clock until the next device is due, reads that device's
 * points with the requests planned by plan.c, decodes them (decode.c) and
 * pushes one event per poll onto the queue.  It never touches core state.
 *
 * RS-485 is half duplex and libmodbus blocks, so there is no point in more
 * than one outstanding request per bus; a thread per bus keeps the code
 * straight-line and lets one slow port not delay another.  A Modbus TCP
 * endpoint is a "bus" too: its devices are unit ids behind one connection.
 *
 * A device that stops answering costs its own timeout once per poll, and
 * after 'offline_after' failures only once per back-off period: the first
 * request that times out (after retries) ends that device's poll, so the
 * other devices on the bus keep their schedule.  A merged read that gets a
 * Modbus exception is split into per-point reads for good, so one point a
 * firmware refuses does not spoil its neighbours.
 *
 * A Modbus TCP connection on which SILENT_RECONNECT polls in a row got no
 * reply at all (only timeouts, from every device behind it) is closed and
 * opened again: a NAT or a 4G carrier that forgot the connection drops its
 * packets without a reset, and the kernel would hold on to it for a quarter
 * of an hour (net.ipv4.tcp_retries2).  One device answering proves the
 * connection alive, so a single dead sensor behind a working Modbus TCP
 * converter costs at most a reconnect per few back-off probes.
 *
 * RTU and TCP differ only in how the context is made and opened, a private
 * table of two function pointers (the way libmodbus hides its own backends).
 *
 * bus_poll_device_once() runs the same poll for `agrigw poll --once`: a bus
 * that is never started is opened, polls one device in the caller's thread
 * and is closed again, so the commissioning check and the daemon cannot
 * disagree about what a profile reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#include "backoff.h"
#include "bus.h"
#include "decode.h"
#include "log.h"
#include "mbio.h"
#include "plan.h"
#include "util.h"

#define LINK_RETRY_MIN_MS 1000
#define LINK_RETRY_MAX_MS 30000
#define SILENT_RECONNECT 3               /* silent polls before a TCP reconnect */

struct dev_state {
	int index;                       /* into conf->devices */
	const struct device_conf *dc;
	const struct profile *prof;
	/* its plan (plan.c) at its own size: a struct plan has room for
	 * CONF_MAX_POINTS requests, 1.8 KB a device, most of a big site's heap */
	struct plan_request *req;        /* owned; 'order' lives in the same block */
	size_t nreq;
	uint16_t *order;
	size_t npoints;
	int64_t due;                     /* monotonic ms */
	unsigned fails;                  /* failed polls in a row */
	bool offline;
	bool frame_trouble;              /* bad frames logged, waiting for a clean poll */
	uint64_t polls, timeouts, exceptions, bad_frames, missed;
	uint64_t frames_at_trouble;
};

struct backend {
	modbus_t *(*create)(const struct bus_conf *bc);
	int (*open)(struct bus *b);
};

struct bus {
	const struct conf *conf;
	const struct bus_conf *bc;
	int index;
	struct queue *q;
	const struct backend *be;
	modbus_t *ctx;
	bool link_up;                    /* port open / TCP connected */
	bool link_reported_down;
	unsigned link_fails;
	int64_t link_retry_at;
	char link_error[384];
	unsigned silent_polls;           /* TCP: polls in a row that heard nothing */
	bool silence_reported;           /* the reconnect logged, until a reply */
	struct dev_state *devs;
	size_t ndevs;
	uint64_t queue_refused;

	pthread_t thread;
	bool started;
	bool scheduled;                  /* devs[].due set: survives a stop and start */
	pthread_mutex_t lock;
	bool stop;                       /* under lock */
	int wake_fd;                     /* eventfd: bus_stop() wakes the sleeping worker */
};

enum outcome { RD_OK, RD_EXCEPTION, RD_NO_REPLY, RD_LINK };

static modbus_t *rtu_create(const struct bus_conf *bc)
{
	return modbus_new_rtu(bc->device, bc->baud, bc->parity, bc->data_bits, bc->stop_bits);
}

static int rtu_open(struct bus *b)
{
	if (modbus_connect(b->ctx) < 0) {
		int e = errno;
		snprintf(b->link_error, sizeof(b->link_error), "open '%s': %s%s", b->bc->device, strerror(e),
			 e == EACCES ? " (is the user in group 'dialout'?)" : "");
		return -e;
	}
	/* Lock the port against a second opener (another agrigw, a technician's
	 * tool): TIOCEXCL makes their open() fail with EBUSY. */
	(void) ioctl(modbus_get_socket(b->ctx), TIOCEXCL);
	if (b->bc->rs485 && modbus_rtu_set_serial_mode(b->ctx, MODBUS_RTU_RS485) < 0)
		log_warn("bus '%s': '%s' refuses RS-485 mode (%s); working on without it",
			 b->bc->name, b->bc->device, modbus_strerror(errno));
	return 0;
}

static modbus_t *tcp_create(const struct bus_conf *bc)
{
	char port[8];

	snprintf(port, sizeof(port), "%d", bc->port);
	return modbus_new_tcp_pi(bc->host, port);
}

static int tcp_open(struct bus *b)
{
	int ms = b->bc->connect_timeout_ms;

	/* libmodbus uses the response timeout for connect() */
	modbus_set_response_timeout(b->ctx, (uint32_t) (ms / 1000), (uint32_t) (ms % 1000) * 1000);
	if (modbus_connect(b->ctx) < 0) {
		int e = errno;
		snprintf(b->link_error, sizeof(b->link_error), "connect %s:%d: %s", b->bc->host, b->bc->port,
			 modbus_strerror(e));
		return -e;
	}
	return 0;
}

static const struct backend rtu_backend = { rtu_create, rtu_open };
static const struct backend tcp_backend = { tcp_create, tcp_open };

struct bus *bus_new(const struct conf *c, int bus_index, struct queue *q)
{
	struct bus *b = calloc(1, sizeof(*b));
	struct plan plan;
	size_t n = 0;

	if (!b)
		return NULL;
	b->wake_fd = -1;
	b->conf = c;
	b->bc = &c->buses[bus_index];
	b->index = bus_index;
	b->q = q;
	b->be = b->bc->type == BUS_RTU ? &rtu_backend : &tcp_backend;
	pthread_mutex_init(&b->lock, NULL);
	b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->wake_fd < 0)
		goto fail;
	for (size_t i = 0; i < c->ndevices; i++)
		if (c->devices[i].bus == bus_index && c->devices[i].enabled)
			n++;
	b->devs = calloc(n ? n : 1, sizeof(*b->devs));
	if (!b->devs)
		goto fail;
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_conf *dc = &c->devices[i];
		struct dev_state *d;

		if (dc->bus != bus_index || !dc->enabled)
			continue;
		d = &b->devs[b->ndevs++];
		d->index = (int) i;
		d->dc = dc;
		d->prof = &c->profiles[dc->profile];
		if (plan_build(d->prof->points, d->prof->npoints, dc->max_registers, dc->max_gap, &plan) < 0) {
			/* conf.c rejects such profiles; this is a programmer mistake */
			log_err("device '%s': profile '%s' cannot be read with max_registers %d",
				dc->name, d->prof->name, dc->max_registers);
			goto fail;
		}
		d->req = malloc(plan.nreq * sizeof(*d->req) + plan.npoints * sizeof(*d->order) + 1);
		if (!d->req)
			goto fail;
		memcpy(d->req, plan.req, plan.nreq * sizeof(*d->req));
		d->nreq = plan.nreq;
		d->order = (uint16_t *) (d->req + plan.nreq);
		memcpy(d->order, plan.order, plan.npoints * sizeof(*d->order));
		d->npoints = plan.npoints;
	}
	return b;
fail:
	bus_free(b);
	return NULL;
}

static bool stopping(struct bus *b)
{
	bool s;

	pthread_mutex_lock(&b->lock);
	s = b->stop;
	pthread_mutex_unlock(&b->lock);
	return s;
}

/*
 * Sleep until monotonic time 'until' or until asked to stop.  Returns true
 * when stopping.  poll() on an eventfd rather than a timed wait on a
 * condition variable: glibc leaves the mutex of a timed-out condvar wait
 * marked contended, so its unlock cost one more system call (futex wake) for
 * every poll of every device (bench/).
 */
static bool sleep_until(struct bus *b, int64_t until)
{
	for (;;) {
		struct pollfd p = { .fd = b->wake_fd, .events = POLLIN };
		int64_t now = mono_ms();

		if (stopping(b))
			return true;
		if (now >= until)
			return false;
		(void) poll(&p, 1, until - now < INT32_MAX ? (int) (until - now) : INT32_MAX);
	}
}

static void push(struct bus *b, struct event *ev)
{
	if (!ev) {
		b->queue_refused++;
		return;
	}
	ev->bus = b->index;
	if (queue_push(b->q, ev) < 0) {
		free(ev);
		if (b->queue_refused++ == 0)
			log_err("bus '%s': core queue full, reading dropped (counted)", b->bc->name);
	}
}

static void push_bus_state(struct bus *b, int up)
{
	struct event *ev = event_new(EV_BUS_STATE, 0);

	if (ev) {
		ev->online = up;
		ev->mono_ms = mono_ms();
		strlcpy_(ev->error, up ? "" : b->link_error, sizeof(ev->error));
	}
	push(b, ev);
}

static void link_close(struct bus *b)
{
	if (b->link_up) {
		/* the exclusive flag outlives our descriptor on a pty whose
		 * other end stays open: clear it for whoever opens next */
		if (b->bc->type == BUS_RTU)
			(void) ioctl(modbus_get_socket(b->ctx), TIOCNXCL);
		modbus_close(b->ctx);
	}
	b->link_up = false;
}

/* Make sure the link is open; false when it is down (and its retry time not reached). */
static bool link_ensure(struct bus *b, int64_t now)
{
	int r;

	if (b->link_up) {
		/* a serial port stays ours: another root process (a technician's
		 * tool) may have cleared the exclusive flag when it closed the port */
		if (b->bc->type == BUS_RTU)
			(void) ioctl(modbus_get_socket(b->ctx), TIOCEXCL);
		return true;
	}
	if (now < b->link_retry_at)
		return false;
	r = b->be->open(b);
	if (r < 0) {
		int64_t d = backoff_jitter(LINK_RETRY_MIN_MS, LINK_RETRY_MAX_MS, b->link_fails++, rand32());

		b->link_retry_at = now + d;
		if (!b->link_reported_down) {
			log_warn("bus '%s': %s, retrying every %d s at most", b->bc->name, b->link_error,
				 LINK_RETRY_MAX_MS / 1000);
			b->link_reported_down = true;
			push_bus_state(b, 0);
		}
		return false;
	}
	b->link_up = true;
	b->link_fails = 0;
	if (b->link_reported_down) {
		log_notice("bus '%s': link back up", b->bc->name);
		b->link_reported_down = false;
		push_bus_state(b, 1);
	}
	return true;
}

/*
 * One request with the device's retries.  Timeouts and bad frames are
 * retried; an exception is an answer and is not.  A broken TCP connection
 * or a vanished serial port ends the poll (RD_LINK).
 */
static enum outcome read_with_retries(struct bus *b, struct dev_state *d, enum table t, int addr, int count,
				      uint16_t *out, int *ret_errno)
{
	for (int attempt = 0; attempt <= d->dc->retries; attempt++) {
		int rc, e;

		if (attempt > 0 || b->bc->pause_ms > 0) {
			/* the bus' silence between requests (and before a retry) */
			if (b->bc->pause_ms > 0 && sleep_until(b, mono_ms() + b->bc->pause_ms))
				return RD_NO_REPLY;
		}
		rc = mbio_read(b->ctx, t, addr, count, out);
		if (rc == count)
			return RD_OK;
		e = rc < 0 ? errno : EMBMDATA;
		*ret_errno = e;
		if (mbio_is_exception(e)) {
			d->exceptions++;
			return RD_EXCEPTION;
		}
		if (e == ETIMEDOUT) {
			d->timeouts++;
		} else if (mbio_is_bad_frame(e)) {
			d->bad_frames++;
		} else {
			/* ECONNRESET, EPIPE, EBADF, EIO, ...: the link itself */
			snprintf(b->link_error, sizeof(b->link_error), "%s", modbus_strerror(e));
			link_close(b);
			b->link_retry_at = 0;
			return RD_LINK;
		}
		/* drop late or partial bytes so they do not poison the next reply */
		modbus_flush(b->ctx);
	}
	return RD_NO_REPLY;
}

static void decode_points(const struct dev_state *d, const struct plan_request *r, const uint16_t *regs,
			  size_t first, size_t n, struct event *ev)
{
	for (size_t j = first; j < first + n; j++) {
		int pi = d->order[j];
		const struct point *p = &d->prof->points[pi];
		const uint16_t *src = regs + (p->address - r->start);
		struct event_value *v = &ev->values[pi];

		v->state = (uint8_t) decode_point(p, src, &v->value);
		v->raw = decode_bits(src, p->type, p->order);
	}
}

static void mark_points(const struct dev_state *d, size_t first, size_t n, enum value_state s, struct event *ev)
{
	for (size_t j = first; j < first + n; j++)
		ev->values[d->order[j]].state = (uint8_t) s;
}

/* Poll one device once.  Returns true when it answered at all. */
static bool poll_device(struct bus *b, struct dev_state *d, struct event *ev, int *ret_errno)
{
	uint16_t regs[MODBUS_MAX_READ_BITS];
	int tmo = d->dc->timeout_ms ? d->dc->timeout_ms : b->bc->response_timeout_ms;
	bool answered = false;

	modbus_set_slave(b->ctx, d->dc->unit);
	modbus_set_response_timeout(b->ctx, (uint32_t) (tmo / 1000), (uint32_t) (tmo % 1000) * 1000);
	mark_points(d, 0, d->npoints, VAL_NO_REPLY, ev);

	for (size_t i = 0; i < d->nreq; i++) {
		struct plan_request *r = &d->req[i];
		enum outcome o;

		if (!r->split) {
			o = read_with_retries(b, d, r->table, r->start, r->count, regs, ret_errno);
			if (o == RD_OK) {
				decode_points(d, r, regs, r->first_point, r->npoints, ev);
				answered = true;
				continue;
			}
			if (o == RD_LINK || o == RD_NO_REPLY)
				return answered;     /* silent device: pay its timeout once */
			answered = true;
			if (r->npoints == 1) {
				mark_points(d, r->first_point, 1, VAL_EXCEPTION, ev);
				continue;
			}
			log_notice("device '%s': %s read of %u registers at %u refused (%s); reading its %u points one by one from now on",
				   d->dc->name, conf_table_name(r->table), r->count, r->start,
				   modbus_strerror(*ret_errno), r->npoints);
			r->split = true;
		}
		/* split: each point on its own */
		for (size_t j = r->first_point; j < (size_t) r->first_point + r->npoints; j++) {
			const struct point *p = &d->prof->points[d->order[j]];
			struct plan_request one = { .table = p->table, .start = p->address };

			one.count = (uint16_t) plan_point_width(p);
			o = read_with_retries(b, d, p->table, p->address, one.count, regs, ret_errno);
			if (o == RD_OK) {
				decode_points(d, &one, regs, j, 1, ev);
				answered = true;
			} else if (o == RD_EXCEPTION) {
				mark_points(d, j, 1, VAL_EXCEPTION, ev);
				answered = true;
			} else {
				return answered;
			}
		}
	}
	return answered;
}

static void fill_counters(const struct dev_state *d, struct event *ev)
{
	ev->polls = d->polls;
	ev->timeouts = d->timeouts;
	ev->exceptions = d->exceptions;
	ev->bad_frames = d->bad_frames;
}

static void describe_error(int e, char *buf, size_t size)
{
	if (e == ETIMEDOUT)
		snprintf(buf, size, "no response");
	else
		snprintf(buf, size, "%s", modbus_strerror(e));
}

/*
 * TCP: 'heard' is false after a poll that only timed out on an open
 * connection.  After SILENT_RECONNECT of those in a row the connection is
 * dropped and the next poll opens a new one.
 */
static void check_silence(struct bus *b, bool heard)
{
	if (heard || !b->link_up) {
		if (heard && b->silence_reported && b->link_up)
			log_notice("bus '%s': replies again on the new connection", b->bc->name);
		if (heard)
			b->silence_reported = false;
		b->silent_polls = 0;
		return;
	}
	if (++b->silent_polls < SILENT_RECONNECT)
		return;
	if (!b->silence_reported)
		log_warn("bus '%s': no reply on the TCP connection to %s:%d for %u polls; reconnecting "
			 "(a NAT or carrier may have dropped it)", b->bc->name, b->bc->host, b->bc->port, b->silent_polls);
	else
		log_debug("bus '%s': still no reply; reconnecting", b->bc->name);
	b->silence_reported = true;
	b->silent_polls = 0;
	link_close(b);
	b->link_retry_at = 0;
}

static void run_device(struct bus *b, struct dev_state *d, int64_t now)
{
	struct event *ev = event_new(EV_READING, d->prof->npoints);
	int err = ETIMEDOUT;
	bool answered = false;
	uint64_t frames_before = d->bad_frames;

	if (!ev) {
		b->queue_refused++;
		d->due = sched_next(d->due, d->dc->interval_ms, now, NULL);
		return;
	}
	d->polls++;
	if (link_ensure(b, now))
		answered = poll_device(b, d, ev, &err);
	else
		err = 0;
	ev->device = d->index;
	ev->mono_ms = mono_ms();
	if (b->bc->type == BUS_TCP)
		check_silence(b, answered || (err && err != ETIMEDOUT));

	/* garbage on the wire: say so once, then only count, until a clean poll */
	if (d->bad_frames > frames_before && !d->frame_trouble) {
		log_warn("device '%s': unparsable reply (%s); further ones are only counted",
			 d->dc->name, modbus_strerror(err));
		d->frame_trouble = true;
		d->frames_at_trouble = frames_before;
	} else if (d->frame_trouble && answered && d->bad_frames == frames_before) {
		log_notice("device '%s': replies clean again after %llu bad frames", d->dc->name,
			   (unsigned long long) (d->bad_frames - d->frames_at_trouble));
		d->frame_trouble = false;
	}

	if (answered) {
		if (d->offline) {
			struct event *st = event_new(EV_DEVICE_STATE, 0);

			log_notice("device '%s': responding again after %u failed polls", d->dc->name, d->fails);
			if (st) {
				st->device = d->index;
				st->online = 1;
				st->failures = d->fails;
				st->mono_ms = ev->mono_ms;
				fill_counters(d, st);
			}
			push(b, st);
			d->offline = false;
			d->due = now;    /* back on its own schedule from here */
		}
		d->fails = 0;
		fill_counters(d, ev);
		push(b, ev);
		unsigned missed = 0;
		d->due = sched_next(d->due, d->dc->interval_ms, mono_ms(), &missed);
		d->missed += missed;
		return;
	}

	free(ev);
	d->fails++;
	if (!d->offline && d->fails >= (unsigned) d->dc->offline_after) {
		struct event *st = event_new(EV_DEVICE_STATE, 0);
		char why[400];

		if (err)
			describe_error(err, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "bus down: %s", b->link_error);
		log_warn("device '%s' (unit %d on bus '%s'): %s, offline after %u failed polls; probing with back-off up to %d s",
			 d->dc->name, d->dc->unit, b->bc->name, why, d->fails, d->dc->backoff_max_ms / 1000);
		if (st) {
			st->device = d->index;
			st->online = 0;
			st->failures = d->fails;
			st->mono_ms = mono_ms();
			strlcpy_(st->error, why, sizeof(st->error));
			fill_counters(d, st);
		}
		push(b, st);
		d->offline = true;
	}
	if (d->offline) {
		/* capped exponential back-off: the bus pays this device's timeout rarely */
		unsigned k = d->fails - (unsigned) d->dc->offline_after;
		d->due = mono_ms() + backoff_delay(d->dc->interval_ms, d->dc->backoff_max_ms, k);
	} else {
		d->due = sched_next(d->due, d->dc->interval_ms, mono_ms(), NULL);
	}
}

static void *worker(void *arg)
{
	struct bus *b = arg;
	int64_t start = mono_ms();

	/* a bus kept across a reload keeps its schedules */
	if (!b->scheduled)
		for (size_t i = 0; i < b->ndevs; i++)
			b->devs[i].due = sched_first(start, b->devs[i].dc->interval_ms, (unsigned) i, (unsigned) b->ndevs);
	b->scheduled = true;
	while (b->ndevs > 0) {
		struct dev_state *next = &b->devs[0];
		int64_t now;

		for (size_t i = 1; i < b->ndevs; i++)
			if (b->devs[i].due < next->due)
				next = &b->devs[i];
		if (sleep_until(b, next->due))
			break;
		now = mono_ms();
		run_device(b, next, now);
		if (stopping(b))
			break;
	}
	return NULL;
}

int bus_start(struct bus *b)
{
	int r;

	if (!b->ctx) {
		b->ctx = b->be->create(b->bc);
		if (!b->ctx) {
			int e = errno ? errno : ENOMEM;
			log_err("bus '%s': cannot create Modbus context: %s", b->bc->name, strerror(e));
			return -e;
		}
		modbus_set_error_recovery(b->ctx, MODBUS_ERROR_RECOVERY_NONE);
	}
	b->stop = false;
	r = pthread_create(&b->thread, NULL, worker, b);
	if (r) {
		log_err("bus '%s': cannot start worker: %s", b->bc->name, strerror(r));
		return -r;
	}
	b->started = true;
	return 0;
}

void bus_stop(struct bus *b)
{
	uint64_t v = 1;

	if (!b || !b->started)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_mutex_unlock(&b->lock);
	(void) !write(b->wake_fd, &v, sizeof(v));
	pthread_join(b->thread, NULL);
	(void) !read(b->wake_fd, &v, sizeof(v));    /* cleared for the next bus_start() */
	b->started = false;
}

static bool same_point(const struct point *a, const struct point *b)
{
	return strcmp(a->name, b->name) == 0 && a->table == b->table && a->address == b->address &&
	       a->type == b->type && a->order == b->order && a->bit == b->bit && a->scale == b->scale &&
	       a->offset == b->offset && strcmp(a->unit, b->unit) == 0 && a->has_min == b->has_min &&
	       a->has_max == b->has_max && (!a->has_min || a->min == b->min) && (!a->has_max || a->max == b->max) &&
	       a->decimals == b->decimals;
}

static bool same_device(const struct conf *ca, const struct device_conf *a, const struct conf *cb,
			const struct device_conf *b)
{
	const struct profile *pa = &ca->profiles[a->profile], *pb = &cb->profiles[b->profile];

	if (strcmp(a->name, b->name) != 0 || a->unit != b->unit || a->interval_ms != b->interval_ms ||
	    a->timeout_ms != b->timeout_ms || a->retries != b->retries || a->max_registers != b->max_registers ||
	    a->max_gap != b->max_gap || a->offline_after != b->offline_after ||
	    a->backoff_max_ms != b->backoff_max_ms || a->enabled != b->enabled || pa->npoints != pb->npoints)
		return false;
	for (size_t i = 0; i < pa->npoints; i++)
		if (!same_point(&pa->points[i], &pb->points[i]))
			return false;
	return true;
}

static bool same_bus(const struct bus_conf *a, const struct bus_conf *b)
{
	return strcmp(a->name, b->name) == 0 && a->type == b->type && strcmp(a->device, b->device) == 0 &&
	       a->baud == b->baud && a->parity == b->parity && a->data_bits == b->data_bits &&
	       a->stop_bits == b->stop_bits && a->rs485 == b->rs485 && strcmp(a->host, b->host) == 0 &&
	       a->port == b->port && a->connect_timeout_ms == b->connect_timeout_ms &&
	       a->response_timeout_ms == b->response_timeout_ms && a->pause_ms == b->pause_ms;
}

bool bus_rebind(struct bus *b, const struct conf *c, int bus_index)
{
	const struct bus_conf *nb = &c->buses[bus_index];
	size_t k = 0;

	if (b->started || !same_bus(b->bc, nb))
		return false;
	/* the same enabled devices, in the same order, polled the same way */
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_conf *dc = &c->devices[i];

		if (dc->bus != bus_index || !dc->enabled)
			continue;
		if (k >= b->ndevs || !same_device(b->conf, b->devs[k].dc, c, dc))
			return false;
		k++;
	}
	if (k != b->ndevs)
		return false;
	k = 0;
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_conf *dc = &c->devices[i];

		if (dc->bus != bus_index || !dc->enabled)
			continue;
		b->devs[k].index = (int) i;
		b->devs[k].dc = dc;
		b->devs[k].prof = &c->profiles[dc->profile];
		k++;
	}
	b->conf = c;
	b->bc = nb;
	b->index = bus_index;
	return true;
}

void bus_free(struct bus *b)
{
	if (!b)
		return;
	bus_stop(b);
	if (b->ctx) {
		link_close(b);
		modbus_free(b->ctx);
	}
	if (b->wake_fd >= 0)
		close(b->wake_fd);
	pthread_mutex_destroy(&b->lock);
	for (size_t i = 0; b->devs && i < b->ndevs; i++)
		free(b->devs[i].req);
	free(b->devs);
	free(b);
}

int bus_poll_device_once(const struct conf *c, int device, struct event **ret_ev, char *err, size_t errlen)
{
	const struct device_conf *dc = &c->devices[device];
	struct dev_state *d = NULL;
	struct event *ev;
	struct bus *b;
	int e = ETIMEDOUT, r;

	*ret_ev = NULL;
	if (!dc->enabled) {
		snprintf(err, errlen, "device '%s' is not enabled", dc->name);
		return -EINVAL;
	}
	/* a bus that is never started; its queue is never used */
	b = bus_new(c, dc->bus, NULL);
	ev = event_new(EV_READING, c->profiles[dc->profile].npoints);
	if (!b || !ev) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->ndevs; i++)
		if (b->devs[i].index == device)
			d = &b->devs[i];
	b->ctx = b->be->create(b->bc);
	if (!b->ctx) {
		r = errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "cannot create Modbus context: %s", strerror(-r));
		goto out;
	}
	modbus_set_error_recovery(b->ctx, MODBUS_ERROR_RECOVERY_NONE);
	r = b->be->open(b);
	if (r < 0) {
		snprintf(err, errlen, "%s", b->link_error);
		goto out;
	}
	b->link_up = true;
	d->polls++;
	r = poll_device(b, d, ev, &e);
	if (!r)
		describe_error(e, err, errlen);
	ev->device = device;
	ev->bus = dc->bus;
	ev->mono_ms = mono_ms();
	fill_counters(d, ev);
	*ret_ev = ev;
	ev = NULL;
	/* let go of the port as found: a pty keeps TIOCEXCL after the close */
	if (b->link_up && b->bc->type == BUS_RTU)
		(void) ioctl(modbus_get_socket(b->ctx), TIOCNXCL);
out:
	free(ev);
	bus_free(b);
	return r;
}
