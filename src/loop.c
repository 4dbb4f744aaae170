/*
 * loop.c: the core thread and its poll() loop.
 *
 * Everything that is shared lives here and is touched by this thread only:
 * the sequence counter, each device's health, the broker connection.  Bus
 * workers hand their events over through the queue (queue.c); the loop
 * wakes on the queue's eventfd, on the broker socket, on a signalfd and on
 * timers, and never blocks anywhere else.
 *
 * Signals arrive through a signalfd rather than handlers setting flags: the
 * effect is the same (nothing runs in signal context), and the loop needs no
 * extra self-pipe.  They are blocked before any thread starts, so only this
 * thread ever receives them.
 *
 * Reload (SIGHUP) checks the new file in full first; with any error the
 * running configuration stays.  A valid one replaces the buses and devices;
 * changes to the gateway identity or the mqtt section only take effect at
 * restart (said in the log), since they change the client identity the
 * broker knows us by.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "agg.h"
#include "bus.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "payload.h"
#include "queue.h"
#include "spool.h"
#include "store.h"
#include "uplink.h"
#include "util.h"
#include "wallclock.h"

#define QUEUE_CAPACITY 4096
#define AGG_SAVE_MS 10000     /* open windows saved to the store this often (and at stop) */
#define DRAIN_MAX_MS 1000     /* queued events wait at most this long (see drain_due()) */
#define CLOCK_CHECK_MS 1000   /* the clock's synchronisation state sampled this often */

struct dev_health {
	struct device_health h;
	char error[128];
	char *topic_telemetry, *topic_status, *topic_meta;
};

struct core {
	struct conf *conf;
	const char *path;
	struct queue *q;
	struct bus **buses;
	size_t nbuses;
	struct mqtt *mqtt;
	struct store *store;
	struct spool *spool;
	struct agg *agg;          /* only with an uplink, and once the clock is trusted */
	struct wallclock clock;
	int64_t start_mono;
	int64_t next_clock_check;
	struct uplink *up;
	int64_t last_commit;
	int64_t last_drain;
	bool events_waiting;      /* the queue woke us and its events wait for drain_due() */
	int64_t next_agg_save;
	struct dev_health *dev;
	uint64_t seq;
	int64_t started_wall;
	int64_t next_status;
	int64_t next_summary;
	bool backlog;             /* telemetry was waiting for the broker */
	int64_t next_watchdog;
	uint64_t watchdog_us;
	char *status_topic;
	struct jbuf body, topic;
	int sfd;
};

static char *topic_dup(struct core *k, const char *device, const char *leaf)
{
	payload_topic(&k->topic, k->conf, device, leaf);
	return k->topic.failed ? NULL : strdup(k->topic.s);
}

static void devices_free(struct core *k)
{
	if (!k->dev)
		return;
	for (size_t i = 0; i < k->conf->ndevices; i++) {
		free(k->dev[i].topic_telemetry);
		free(k->dev[i].topic_status);
		free(k->dev[i].topic_meta);
	}
	free(k->dev);
	k->dev = NULL;
}

static int devices_init(struct core *k)
{
	k->dev = calloc(k->conf->ndevices ? k->conf->ndevices : 1, sizeof(*k->dev));
	if (!k->dev)
		return -ENOMEM;
	for (size_t i = 0; i < k->conf->ndevices; i++) {
		const char *name = k->conf->devices[i].name;
		struct dev_health *d = &k->dev[i];

		d->h.error = d->error;
		d->topic_telemetry = topic_dup(k, name, "telemetry");
		d->topic_status = topic_dup(k, name, "status");
		d->topic_meta = topic_dup(k, name, "meta");
		if (!d->topic_telemetry || !d->topic_status || !d->topic_meta)
			return -ENOMEM;
	}
	return 0;
}

static void buses_stop(struct core *k)
{
	for (size_t i = 0; i < k->nbuses; i++)
		bus_free(k->buses[i]);
	free(k->buses);
	k->buses = NULL;
	k->nbuses = 0;
}

static int buses_start(struct core *k)
{
	k->buses = calloc(k->conf->nbuses ? k->conf->nbuses : 1, sizeof(*k->buses));
	if (!k->buses)
		return -ENOMEM;
	for (size_t i = 0; i < k->conf->nbuses; i++) {
		int r;

		k->buses[i] = bus_new(k->conf, (int) i, k->q);
		if (!k->buses[i])
			return -ENOMEM;
		k->nbuses++;
		r = bus_start(k->buses[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static unsigned devices_online(const struct core *k, unsigned *ret_total)
{
	unsigned on = 0, total = 0;

	for (size_t i = 0; i < k->conf->ndevices; i++) {
		if (!k->conf->devices[i].enabled)
			continue;
		total++;
		on += k->dev[i].h.known && k->dev[i].h.online;
	}
	*ret_total = total;
	return on;
}

static void publish_gateway_status(struct core *k)
{
	if (!k->mqtt)
		return;
	struct gateway_health g = { .online = true, .version = AGRIGW_VERSION, .started_ms = k->started_wall };
	struct mqtt_stats st;

	mqtt_get_stats(k->mqtt, &st);
	g.devices_online = devices_online(k, &g.devices);
	g.published = st.acked;
	g.queued = st.queued;
	g.dropped = st.dropped + queue_dropped(k->q);
	g.seq = k->seq;
	if (k->store) {
		struct store_stats ss;

		store_get_stats(k->store, &ss);
		g.stored = ss.tel_rows;
		g.store_dropped = ss.dropped;
		g.store_errors = ss.write_errors;
		g.has_store = true;
	}
	if (k->up) {
		struct uplink_stats us;

		uplink_get_stats(k->up, &us);
		g.has_uplink = true;
		g.uplink_state = us.state;
		g.windows_sent = us.windows_sent;
		g.uplink_retries = us.retries;
		g.dead_letters = us.dead_letters;
		g.backlog = us.backlog;
	}
	payload_gateway_status(&k->body, &g);
	(void) mqtt_publish_direct(k->mqtt, k->status_topic, k->body.s, k->body.len, true);
}

/* Retained and republished on every connect, so sent only when connected. */
static void publish_device_status(struct core *k, size_t i)
{
	struct dev_health *d = &k->dev[i];

	if (!k->mqtt)
		return;
	payload_device_status(&k->body, &d->h);
	(void) mqtt_publish_direct(k->mqtt, d->topic_status, k->body.s, k->body.len, true);
}

/* The broker (re)accepted us: state it should hold as retained. */
static void on_connect(void *arg)
{
	struct core *k = arg;

	publish_gateway_status(k);
	for (size_t i = 0; i < k->conf->ndevices; i++) {
		if (!k->conf->devices[i].enabled)
			continue;
		payload_meta(&k->body, k->conf, &k->conf->devices[i]);
		(void) mqtt_publish_direct(k->mqtt, k->dev[i].topic_meta, k->body.s, k->body.len, true);
		if (k->dev[i].h.known)
			publish_device_status(k, i);
	}
}

static void copy_counters(struct device_health *h, const struct event *ev)
{
	h->polls = ev->polls;
	h->timeouts = ev->timeouts;
	h->exceptions = ev->exceptions;
	h->bad_frames = ev->bad_frames;
}

static void handle_event(struct core *k, struct event *ev)
{
	struct dev_health *d;
	int64_t ts;
	int r;

	if (ev->device < 0 || (size_t) ev->device >= k->conf->ndevices)
		return;        /* bus events: the worker logged them; devices carry the state */
	d = &k->dev[ev->device];
	copy_counters(&d->h, ev);
	ts = wallclock_at(&k->clock, ev->mono_ms);
	if (ev->kind == EV_DEVICE_STATE) {
		d->h.known = true;
		d->h.online = ev->online;
		d->h.since_ms = ts;
		strlcpy_(d->error, ev->online ? "" : ev->error, sizeof(d->error));
		publish_device_status(k, (size_t) ev->device);
		return;
	}
	if (!d->h.known) {
		d->h.known = true;
		d->h.online = true;
		d->h.since_ms = ts;
		publish_device_status(k, (size_t) ev->device);
	}
	payload_telemetry(&k->body, &k->conf->profiles[k->conf->devices[ev->device].profile], ev, ts, k->seq + 1,
			  false);
	if (k->body.failed)
		r = -ENOMEM;
	else if (!k->clock.trusted)
		/* its time is known only relative to this boot: held until the clock is right */
		r = spool_add_held(k->spool, k->seq + 1, d->topic_telemetry, k->body.s, k->body.len, k->clock.boot_id,
				   ev->mono_ms);
	else
		/* taken while the broker is away: it will arrive late, and says so */
		r = spool_add(k->spool, k->seq + 1, d->topic_telemetry, k->body.s, k->body.len,
			      k->mqtt && mqtt_away(k->mqtt));
	if (r == 0 && k->agg)
		(void) agg_add(k->agg, ev->device, ev, ts);
	if (r < 0) {
		log_err("device '%s': telemetry dropped: out of memory", k->conf->devices[ev->device].name);
		return;
	}
	k->seq++;
}

/*
 * Group commit: at once when the last commit is older than the interval
 * (a quiet site pays no latency), else when the interval is up.  Returns
 * the ms until the next commit is due, or a large number when idle.
 */
static int64_t maybe_commit(struct core *k, int64_t now)
{
	int64_t due;

	if (!k->store || !store_dirty(k->store))
		return INT32_MAX;
	due = k->last_commit + k->conf->store.commit_interval_ms;
	if (now < due)
		return due - now;
	(void) store_commit(k->store);
	k->last_commit = now;
	mqtt_pump(k->mqtt);
	return INT32_MAX;
}

static void emit_window(void *arg, const char *key, const char *json)
{
	struct core *k = arg;

	if (store_win_append(k->store, key, json) < 0)
		log_err("window '%s' dropped: out of memory", key);
}

static void save_agg(struct core *k)
{
	struct jbuf j = { 0 };

	agg_save(k->agg, &j);
	if (!j.failed && j.s)
		(void) store_state_set(k->store, "agg", j.s);
	jbuf_done(&j);
}

/* Close the windows that are due, hand them to the store and the uplink.
 * Returns ms until the next window closes (wall clock). */
static void drain(struct core *k);

static int64_t aggregate(struct core *k, int64_t now)
{
	int64_t w = wall_ms(), due;

	/* readings still in the queue belong in the windows about to close */
	if (k->events_waiting && agg_next_due(k->agg) <= w)
		drain(k);
	if (agg_close_due(k->agg, w, emit_window, k) > 0) {
		save_agg(k);                /* closed windows and the state that no longer has them: one commit */
		(void) store_commit(k->store);
		k->last_commit = now;
		k->next_agg_save = now + AGG_SAVE_MS;
		uplink_kick(k->up);
	} else if (now >= k->next_agg_save) {
		save_agg(k);                /* committed with the next telemetry commit */
		k->next_agg_save = now + AGG_SAVE_MS;
	}
	due = agg_next_due(k->agg);
	return due == INT64_MAX ? INT32_MAX : due - w;
}

/* Aggregates need a trusted clock: windows are wall-clock periods. */
static int setup_agg(struct core *k)
{
	char *saved;

	k->agg = agg_new(k->conf, wallclock_at(&k->clock, k->start_mono));
	if (!k->agg)
		return -ENOMEM;
	saved = store_state_get(k->store, "agg");
	if (saved && agg_restore(k->agg, saved) < 0)
		log_warn("store: saved aggregate state unreadable; windows open at the last stop start afresh");
	free(saved);
	k->next_agg_save = mono_ms() + AGG_SAVE_MS;
	return 0;
}

/* A held reading got its final time: aggregate it now (readings of an earlier boot cannot be placed). */
static void on_release(void *arg, const char *topic, const char *payload, size_t len, bool corrected, int64_t ts)
{
	struct core *k = arg;
	struct event *ev;

	if (!corrected || !k->agg)
		return;
	for (size_t i = 0; i < k->conf->ndevices; i++) {
		const struct profile *p = &k->conf->profiles[k->conf->devices[i].profile];

		if (!k->conf->devices[i].enabled || strcmp(k->dev[i].topic_telemetry, topic) != 0)
			continue;
		ev = event_new(EV_READING, p->npoints);
		if (ev && payload_parse_values(p, payload, len, ev) == 0)
			(void) agg_add(k->agg, (int) i, ev, ts);
		free(ev);
		return;
	}
}

/* The clock is trusted (now, or since start): give held readings their times. */
static void clock_trusted(struct core *k)
{
	int n;

	if (k->store)
		(void) store_state_set(k->store, "synced_boot", k->clock.boot_id);
	if (k->up && !k->agg && setup_agg(k) < 0)
		log_err("out of memory: aggregates are not computed");
	n = spool_release(k->spool, k->clock.boot_id, k->clock.offset_ms, on_release, k);
	if (n > 0)
		log_notice("clock: %d readings taken before it was synchronised are released%s", n,
			   " (this boot's with corrected times, an earlier boot's flagged \"unsynced\")");
	mqtt_set_clock_ok(k->mqtt, true);
	if (k->up)
		uplink_set_clock_ok(k->up, true);
	mqtt_pump(k->mqtt);
}

static void check_clock(struct core *k, int64_t now)
{
	if (now < k->next_clock_check)
		return;
	k->next_clock_check = now + CLOCK_CHECK_MS;
	switch (wallclock_check(&k->clock)) {
	case WALLCLOCK_SYNCED:
		log_notice("clock: synchronised (estimated error %ld ms)", k->clock.maxerror_ms);
		clock_trusted(k);
		break;
	case WALLCLOCK_STEPPED:
		/* schedules are monotonic: no poll and no window moves with it */
		log_notice("clock: stepped by %+.3f s", k->clock.step_ms / 1000.0);
		break;
	case WALLCLOCK_SAME:
		break;
	}
}

static int setup_uplink(struct core *k)
{
	if (!k->conf->uplink.url[0])
		return 0;
	if (!k->store) {
		log_err("uplink: needs the store; aggregates are not sent");
		return 0;
	}
	k->up = uplink_new(k->conf, k->store);
	if (!k->up)
		return -EINVAL;
	uplink_set_clock_ok(k->up, k->clock.trusted);
	return k->clock.trusted ? setup_agg(k) : 0;
}

static void drain(struct core *k)
{
	struct event *ev;

	queue_ack(k->q);
	while ((ev = queue_pop(k->q))) {
		handle_event(k, ev);
		free(ev);
	}
	k->events_waiting = false;
	k->last_drain = mono_ms();
}

/*
 * When the workers' events are next taken.  Telemetry is published only
 * after the group commit that follows its taking (spool.c), so taking it
 * earlier than right before that commit gains nothing, while taking each
 * event as it comes costs a wake-up of this thread, and an eventfd write by
 * the worker, per poll of every device: most of what a busy core did (see
 * bench/).  So once the last commit is recent, events gather in the queue
 * (it wakes us again when half full) until the next commit is due, at most
 * DRAIN_MAX_MS: device state changes are published up to that much later,
 * and windows about to close take them first (aggregate()).  A quiet site
 * (last commit older than the interval), no store, a failing store or
 * commit_interval 0: at once, as before.  Time stamps come from the
 * workers' monotonic stamps, so waiting does not move them.
 */
static int64_t drain_due(const struct core *k)
{
	int64_t t;

	if (!k->store || !store_healthy(k->store) || k->conf->store.commit_interval_ms == 0)
		return 0;
	t = k->last_commit + k->conf->store.commit_interval_ms;
	return t < k->last_drain + DRAIN_MAX_MS ? t : k->last_drain + DRAIN_MAX_MS;
}

/* Take the queued events, commit if due, publish what is committed. */
static void take_events(struct core *k)
{
	drain(k);
	(void) maybe_commit(k, mono_ms());
	mqtt_pump(k->mqtt);
}

static bool same_identity(const struct conf *a, const struct conf *b)
{
	return strcmp(a->site, b->site) == 0 && strcmp(a->id, b->id) == 0 &&
	       memcmp(&a->mqtt, &b->mqtt, sizeof(a->mqtt) - sizeof(a->mqtt.line)) == 0;
}

/*
 * The new configuration's buses: a bus whose port and devices did not
 * change is kept (port open, schedules running on), the others are made
 * anew; old buses left over are closed.  All workers are stopped here.
 */
static int rebuild_buses(struct core *k, const struct conf *nc, unsigned *ret_kept)
{
	struct bus **nb = calloc(nc->nbuses ? nc->nbuses : 1, sizeof(*nb));
	unsigned kept = 0;

	if (!nb)
		return -ENOMEM;
	for (size_t j = 0; j < nc->nbuses; j++) {
		for (size_t i = 0; i < k->nbuses && !nb[j]; i++) {
			if (k->buses[i] && bus_rebind(k->buses[i], nc, (int) j)) {
				nb[j] = k->buses[i];
				k->buses[i] = NULL;
				kept++;
			}
		}
		if (!nb[j])
			nb[j] = bus_new(nc, (int) j, k->q);
		if (!nb[j]) {
			for (size_t i = 0; i < j; i++)
				bus_free(nb[i]);
			free(nb);
			return -ENOMEM;
		}
	}
	buses_stop(k);             /* the ones not kept */
	k->buses = nb;
	k->nbuses = nc->nbuses;
	*ret_kept = kept;
	return 0;
}

/*
 * SIGHUP.  The new file is checked in full first: with any error the
 * running configuration stays.  Otherwise only what changed restarts: a
 * bus (port or devices), the broker connection (mqtt or gateway identity),
 * the uplink.  The store's settings and the clock's take effect at restart.
 */
static int reload(struct core *k)
{
	struct conf *nc = NULL;
	char *errs = NULL;
	size_t errlen = 0;
	FILE *f = open_memstream(&errs, &errlen);
	bool new_mqtt, new_uplink;
	unsigned kept = 0;
	int r;

	log_notice("reload: reading '%s'", k->path);
	r = conf_load(k->path, &nc, f ? f : stderr);
	if (f)
		fclose(f);
	if (r != 0) {
		for (char *line = errs ? strtok(errs, "\n") : NULL; line; line = strtok(NULL, "\n"))
			log_err("reload: %s", line);
		log_err("reload: %s; the running configuration stays",
			r > 0 ? "configuration has errors" : "cannot read the configuration");
		free(errs);
		return 0;
	}
	free(errs);
	if (strcmp(nc->store.dir, k->conf->store.dir) != 0 || nc->store.max_bytes != k->conf->store.max_bytes ||
	    nc->store.commit_interval_ms != k->conf->store.commit_interval_ms ||
	    nc->clock.trust_system != k->conf->clock.trust_system)
		log_warn("reload: store and clock settings take effect at the next restart");
	nc->store = k->conf->store;
	nc->clock = k->conf->clock;
	new_mqtt = !same_identity(k->conf, nc);
	new_uplink = new_mqtt || memcmp(&nc->uplink, &k->conf->uplink, sizeof(nc->uplink) - sizeof(nc->uplink.line)) != 0;

	/* the queued events refer to the old device list: stop the workers, take what they sent */
	for (size_t i = 0; i < k->nbuses; i++)
		bus_stop(k->buses[i]);
	drain(k);
	if (k->agg) {
		save_agg(k);                /* restored below for the devices and points that remain */
		(void) store_commit(k->store);
	}
	agg_free(k->agg);
	k->agg = NULL;
	if (new_uplink) {
		uplink_free(k->up);
		k->up = NULL;
	}
	if (rebuild_buses(k, nc, &kept) < 0) {
		conf_free(nc);
		goto fatal;
	}
	if (new_mqtt) {
		struct jbuf off = { 0 };

		log_notice("reload: broker settings or gateway identity changed: reconnecting");
		payload_gateway_offline(&off);
		mqtt_shutdown(k->mqtt, k->status_topic, off.s ? off.s : "{\"online\":false}", 3000);
		jbuf_done(&off);
		mqtt_free(k->mqtt);
		k->mqtt = NULL;
	}
	devices_free(k);
	conf_free(k->conf);
	k->conf = nc;
	if (new_mqtt) {
		free(k->status_topic);
		payload_topic(&k->topic, nc, NULL, "status");
		k->status_topic = k->topic.failed ? NULL : strdup(k->topic.s);
		spool_rewind(k->spool);
		k->mqtt = mqtt_new(nc, k->spool, on_connect, k);
		if (!k->mqtt || !k->status_topic)
			goto fatal;
		mqtt_set_clock_ok(k->mqtt, k->clock.trusted);
	} else {
		mqtt_rebind(k->mqtt, nc);
	}
	if (devices_init(k) < 0)
		goto fatal;
	if (k->up) {
		if (k->clock.trusted && setup_agg(k) < 0)
			goto fatal;
	} else if (setup_uplink(k) < 0) {
		goto fatal;
	}
	for (size_t i = 0; i < k->nbuses; i++)
		if (bus_start(k->buses[i]) < 0)
			goto fatal;
	on_connect(k);    /* new meta for the new devices (no-op when offline) */
	log_notice("reload: %zu buses (%u kept running), %zu devices", k->nbuses, kept, k->conf->ndevices);
	return 0;
fatal:
	log_err("reload: cannot start the new configuration; stopping");
	return -1;
}

/* The periodic summary line: what an operator wants from the counters. */
static void log_summary(struct core *k)
{
	struct mqtt_stats st;
	unsigned total, on = devices_online(k, &total);
	char store[96] = "", up[128] = "";

	mqtt_get_stats(k->mqtt, &st);
	if (k->store) {
		struct store_stats ss;

		store_get_stats(k->store, &ss);
		snprintf(store, sizeof(store), ", %llu stored, %llu dropped by the store cap",
			 (unsigned long long) ss.tel_rows, (unsigned long long) ss.dropped);
	}
	if (k->up) {
		struct uplink_stats us;

		uplink_get_stats(k->up, &us);
		snprintf(up, sizeof(up), "; platform %s: %llu windows sent, %llu waiting, %llu dead letters",
			 us.state, (unsigned long long) us.windows_sent, (unsigned long long) us.backlog,
			 (unsigned long long) us.dead_letters);
	}
	log_info("summary: %u/%u devices answering; broker %s: %llu published, %zu held%s, %llu dropped%s",
		 on, total, st.connected ? "connected" : "away", (unsigned long long) st.acked, st.queued, store,
		 (unsigned long long) (st.dropped + queue_dropped(k->q)), up);
}

/* Say when held telemetry starts to pile up and when it has all gone out. */
static void watch_backlog(struct core *k)
{
	struct mqtt_stats st;
	uint64_t waiting;

	mqtt_get_stats(k->mqtt, &st);
	waiting = st.queued;
	if (k->store && store_tel_rows(k->store) > waiting)
		waiting = store_tel_rows(k->store);
	if (!k->backlog && mqtt_away(k->mqtt) && waiting > 0) {
		log_notice("telemetry backlog growing while the broker is away (%llu waiting)", (unsigned long long) waiting);
		k->backlog = true;
	} else if (k->backlog && st.connected && waiting == 0) {
		log_notice("telemetry backlog drained");
		k->backlog = false;
	}
}

static void notify_status(struct core *k)
{
	struct mqtt_stats st;
	unsigned total, on = devices_online(k, &total);

	mqtt_get_stats(k->mqtt, &st);
	sd_notifyf(0, "STATUS=%u/%u devices answering, broker %s, %zu queued", on, total,
		   st.connected ? "connected" : "away", st.queued);
}

static sigset_t handled_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	return set;
}

int loop_block_signals(void)
{
	sigset_t set = handled_signals();

	signal(SIGPIPE, SIG_IGN);
	/* before any thread exists, so every thread inherits it; a SIGTERM that
	 * comes while the configuration is read waits for the loop's signalfd */
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int setup_signals(void)
{
	sigset_t set = handled_signals();

	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int loop_run(struct conf *c, const char *path)
{
	struct core k = { .conf = c, .path = path, .sfd = -1 };
	int status = 1;
	bool running = true;

	k.started_wall = wall_ms();
	k.start_mono = mono_ms();
	k.sfd = setup_signals();
	if (k.sfd < 0) {
		log_err("cannot set up signals: %s", strerror(errno));
		goto out;
	}
	k.q = queue_new(QUEUE_CAPACITY);
	if (!k.q) {
		log_err("cannot create the event queue: %s", strerror(errno));
		goto out;
	}
	payload_topic(&k.topic, c, NULL, "status");
	k.status_topic = k.topic.failed ? NULL : strdup(k.topic.s);
	if (!k.status_topic || devices_init(&k) < 0) {
		log_err("out of memory");
		goto out;
	}
	if (c->store.dir[0]) {
		char salt[2 * CONF_NAME_MAX + 2];

		k.store = store_open(c->store.dir, c->store.max_bytes);
		if (k.store) {
			snprintf(salt, sizeof(salt), "%s/%s", c->site, c->id);
			store_set_salt(k.store, salt);
			k.seq = store_last_seq(k.store);
		} else {
			log_err("running without a store: readings are held in memory only (at most %d)", c->mqtt.queue_max);
		}
	}
	{
		char *synced_boot = k.store ? store_state_get(k.store, "synced_boot") : NULL;

		wallclock_init(&k.clock, c->clock.trust_system, synced_boot);
		free(synced_boot);
		if (!k.clock.trusted)
			log_warn("clock: not synchronised (no NTP sync reported by the kernel); readings are held with "
				 "their monotonic time until it is%s", c->clock.trust_system ? "" :
				 "; set clock.trust_system = true if this board keeps time without NTP");
	}
	k.spool = spool_new(k.store, (size_t) c->mqtt.queue_max);
	if (!k.spool) {
		log_err("out of memory");
		goto out;
	}
	k.mqtt = mqtt_new(c, k.spool, on_connect, &k);
	if (!k.mqtt)
		goto out;
	mqtt_set_clock_ok(k.mqtt, k.clock.trusted);
	if (setup_uplink(&k) < 0)
		goto out;
	if (k.clock.trusted)
		clock_trusted(&k);    /* readings an earlier run held, if any */
	if (buses_start(&k) < 0)
		goto out;
	/* first broker attempt before READY, so "ready" means "trying to deliver" */
	mqtt_tick(k.mqtt, mono_ms());
	log_notice("agrigw %s started: site '%s', gateway '%s', %zu buses, %zu devices, broker %s:%d%s",
		   AGRIGW_VERSION, c->site, c->id, c->nbuses, c->ndevices, c->mqtt.host, c->mqtt.port,
		   c->mqtt.ca_file[0] ? " (TLS)" : "");
	sd_notify(0, "READY=1");
	if (sd_watchdog_enabled(0, &k.watchdog_us) <= 0)
		k.watchdog_us = 0;
	k.next_status = mono_ms() + (int64_t) k.conf->mqtt.status_interval_s * 1000;
	k.next_summary = k.conf->log.summary_interval_s ? mono_ms() + (int64_t) k.conf->log.summary_interval_s * 1000
							: INT64_MAX;

	while (running) {
		struct pollfd pfd[3 + UPLINK_MAX_FDS];
		int64_t now = mono_ms(), timeout;
		int nup = 0;

		check_clock(&k, now);
		if (k.events_waiting && now >= drain_due(&k))
			take_events(&k);
		timeout = mqtt_tick(k.mqtt, now);
		if (k.agg) {
			int64_t t = aggregate(&k, now);
			if (t < timeout)
				timeout = t;
		}
		if (k.up) {
			int64_t t = uplink_tick(k.up, now);
			if (t < timeout)
				timeout = t;
		}
		if (now >= k.next_status) {
			publish_gateway_status(&k);
			/* refresh the devices' counters too (retained, so a dashboard sees them at once) */
			for (size_t i = 0; i < k.conf->ndevices; i++)
				if (k.dev[i].h.known)
					publish_device_status(&k, i);
			notify_status(&k);
			k.next_status = now + (int64_t) k.conf->mqtt.status_interval_s * 1000;
		}
		if (k.watchdog_us && now >= k.next_watchdog) {
			sd_notify(0, "WATCHDOG=1");
			k.next_watchdog = now + (int64_t) (k.watchdog_us / 2000);
		}
		if (now >= k.next_summary) {
			log_summary(&k);
			k.next_summary = k.conf->log.summary_interval_s ? now + (int64_t) k.conf->log.summary_interval_s * 1000
								: INT64_MAX;
		}
		if (k.next_status - now < timeout)
			timeout = k.next_status - now;
		if (k.next_summary - now < timeout)
			timeout = k.next_summary - now;
		if (!k.clock.trusted && k.next_clock_check - now < timeout)
			timeout = k.next_clock_check - now;
		{
			int64_t t = maybe_commit(&k, now);
			if (t < timeout)
				timeout = t;
			if (k.events_waiting && drain_due(&k) - now < timeout)
				timeout = drain_due(&k) - now;
		}
		if (k.watchdog_us && k.next_watchdog - now < timeout)
			timeout = k.next_watchdog - now;
		if (timeout < 0)
			timeout = 0;

		pfd[0] = (struct pollfd) { .fd = queue_fd(k.q), .events = POLLIN };
		pfd[1] = (struct pollfd) { .fd = k.sfd, .events = POLLIN };
		/* fd -1 when there is no broker socket: poll() skips it */
		pfd[2] = (struct pollfd) { .fd = mqtt_fd(k.mqtt), .events = mqtt_events(k.mqtt) };
		if (k.up)
			nup = uplink_pollfds(k.up, pfd + 3, UPLINK_MAX_FDS);
		if (poll(pfd, (nfds_t) (3 + nup), (int) timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(k.sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					sd_notify(0, "RELOADING=1");
					if (reload(&k) < 0) {
						running = false;
						break;
					}
					sd_notify(0, "READY=1");
				} else {
					log_notice("signal %u: stopping", si.ssi_signo);
					running = false;
				}
			}
			if (!running)
				break;
		}
		if (pfd[0].revents & POLLIN) {
			/* at once when due or the queue is half full, else at drain_due() */
			if (mono_ms() >= drain_due(&k) || queue_len(k.q) >= QUEUE_CAPACITY / 2) {
				take_events(&k);
			} else {
				queue_ack(k.q);
				k.events_waiting = true;
			}
		}
		if (pfd[2].fd >= 0 && pfd[2].revents)
			mqtt_io(k.mqtt, pfd[2].revents);
		watch_backlog(&k);
		if (nup)
			uplink_io(k.up, pfd + 3, nup);
	}
	status = 0;
	sd_notify(0, "STOPPING=1");
out:
	/* shutdown mirrors start-up: workers first, then what they queued, then the broker */
	buses_stop(&k);
	if (k.q && k.dev && k.spool)
		drain(&k);
	if (k.agg)
		save_agg(&k);
	if (k.store)
		(void) store_commit(k.store);
	if (k.mqtt) {
		struct jbuf off = { 0 };

		payload_gateway_offline(&off);
		mqtt_shutdown(k.mqtt, k.status_topic, off.s ? off.s : "{\"online\":false}", 3000);
		jbuf_done(&off);
		struct mqtt_stats st;
		mqtt_get_stats(k.mqtt, &st);
		if (st.queued)
			log_warn("stopping with %zu messages not acknowledged by the broker", st.queued);
	}
	mqtt_free(k.mqtt);
	uplink_free(k.up);
	agg_free(k.agg);
	spool_free(k.spool);
	store_close(k.store);
	devices_free(&k);
	free(k.status_topic);
	queue_free(k.q);
	jbuf_done(&k.body);
	jbuf_done(&k.topic);
	if (k.sfd >= 0)
		close(k.sfd);
	conf_free(k.conf);
	log_info("stopped");
	return status;
}
