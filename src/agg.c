/*
 * agg.c: windowed aggregates per (enabled device, point) for the uplink.
 *
 * Each point of each enabled device has a slot holding its open windows,
 * sorted by start.  Usually one is open; during the grace period after a
 * window ends the next one is open as well, so a slot keeps a small array
 * that grows on demand and is reused afterwards: once the first windows
 * have passed, adding a value allocates nothing.
 *
 * What "closed" means is one watermark for all slots: the highest window
 * boundary b with b + grace <= the latest time agg_close_due() was given.
 * Every window starting before b is closed, emitted or not, so a value
 * stamped before b is late whichever slot it is for, and a window never
 * opens twice under the same key (the store would keep the first copy and
 * the second would be lost anyway).  The price: when the wall clock steps
 * back, values are counted late until it has caught up with the watermark
 * again; the telemetry on MQTT still carries them.
 *
 * Windows are emitted in start order across slots, so the store (and the
 * platform) receive all points of one window before any of the next.
 *
 * Left to others: reading clocks, storing the items, deciding when to save
 * the state (agg_save() writes a JSON document of the open windows; the
 * numbers in it are printed with 17 significant digits so they read back
 * exactly).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agg.h"
#include "decode.h"
#include "util.h"

#define STATE_VERSION 1
#define SAVED_TIME_MAX (INT64_MAX / 4)   /* ms, some 73 million years either side of 1970 */

struct win {
	int64_t start;
	int64_t from;            /* polls are expected from here: start, or later in the start window */
	uint32_t count, bad;
	double min, max, sum, last;
	int64_t first_ts, last_ts;   /* of the good values; meaningful when count > 0 */
};

struct slot {
	char point[CONF_NAME_MAX];
	char unit[CONF_UNIT_MAX];
	int decimals;
	size_t dev;              /* index into agg->devs */
	struct win *w;           /* open windows, by start */
	size_t n, cap;
};

struct adev {
	char name[CONF_NAME_MAX];
	int64_t interval_ms;
	size_t first, npoints;   /* its slots */
};

struct agg {
	int64_t window_ms, grace_ms;
	int64_t start_wall;
	int64_t watermark;       /* every window starting before it is closed */
	int *devmap;             /* conf device index -> index into devs, -1 when disabled */
	size_t nconf;
	struct adev *devs;
	size_t ndevs;
	struct slot *slots;
	size_t nslots;
	struct jbuf item;        /* reused for every emitted window */
	struct agg_stats st;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && a < 0) ? q - 1 : q;
}

static int64_t align(const struct agg *a, int64_t t)
{
	return floor_div(t, a->window_ms) * a->window_ms;
}

void agg_free(struct agg *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nslots; i++)
		free(a->slots[i].w);
	free(a->slots);
	free(a->devs);
	free(a->devmap);
	jbuf_done(&a->item);
	free(a);
}

struct agg *agg_new(const struct conf *c, int64_t start_wall_ms)
{
	struct agg *a = calloc(1, sizeof(*a));
	size_t nslots = 0;
	int err = ENOMEM;

	if (!a)
		goto fail;
	a->window_ms = (int64_t) c->uplink.window_s * 1000;
	a->grace_ms = c->uplink.grace_ms > 0 ? c->uplink.grace_ms : 0;
	a->start_wall = start_wall_ms;
	a->watermark = INT64_MIN;
	if (a->window_ms <= 0) {
		err = EINVAL;
		goto fail;
	}
	for (size_t i = 0; i < c->ndevices; i++)
		if (c->devices[i].enabled)
			nslots += c->profiles[c->devices[i].profile].npoints;
	a->nconf = c->ndevices;
	a->devmap = calloc(c->ndevices ? c->ndevices : 1, sizeof(*a->devmap));
	a->devs = calloc(c->ndevices ? c->ndevices : 1, sizeof(*a->devs));
	a->slots = calloc(nslots ? nslots : 1, sizeof(*a->slots));
	if (!a->devmap || !a->devs || !a->slots)
		goto fail;
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_conf *d = &c->devices[i];
		const struct profile *p = &c->profiles[d->profile];
		struct adev *ad = &a->devs[a->ndevs];

		a->devmap[i] = -1;
		if (!d->enabled)
			continue;
		if (d->interval_ms <= 0) {
			err = EINVAL;
			goto fail;
		}
		a->devmap[i] = (int) a->ndevs++;
		strlcpy_(ad->name, d->name, sizeof(ad->name));
		ad->interval_ms = d->interval_ms;
		ad->first = a->nslots;
		ad->npoints = p->npoints;
		for (size_t j = 0; j < p->npoints; j++) {
			struct slot *s = &a->slots[a->nslots++];

			strlcpy_(s->point, p->points[j].name, sizeof(s->point));
			strlcpy_(s->unit, p->points[j].unit, sizeof(s->unit));
			s->decimals = p->points[j].decimals;
			s->dev = a->ndevs - 1;
		}
	}
	return a;
fail:
	agg_free(a);
	errno = err;
	return NULL;
}

/* The open window of slot s starting at 'start', made when missing; NULL when out of memory. */
static struct win *window_at(struct agg *a, struct slot *s, int64_t start)
{
	size_t i = s->n;
	struct win *w;

	while (i > 0 && s->w[i - 1].start >= start) {
		if (s->w[i - 1].start == start)
			return &s->w[i - 1];
		i--;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 2;
		struct win *nw = realloc(s->w, cap * sizeof(*nw));

		if (!nw)
			return NULL;
		s->w = nw;
		s->cap = cap;
	}
	memmove(&s->w[i + 1], &s->w[i], (s->n - i) * sizeof(s->w[0]));
	s->n++;
	a->st.open++;
	w = &s->w[i];
	*w = (struct win) { .start = start, .from = start > a->start_wall ? start : a->start_wall };
	return w;
}

static void add_good(struct win *w, double v, int64_t ts)
{
	if (w->count == 0) {
		w->min = w->max = w->last = v;
		w->first_ts = w->last_ts = ts;
	} else {
		if (v < w->min)
			w->min = v;
		if (v > w->max)
			w->max = v;
		if (ts < w->first_ts)
			w->first_ts = ts;
		if (ts >= w->last_ts) {
			w->last_ts = ts;
			w->last = v;
		}
	}
	w->count++;
	w->sum += v;
}

int agg_add(struct agg *a, int device, const struct event *ev, int64_t ts_ms)
{
	const struct adev *d;
	int64_t start = align(a, ts_ms);
	size_t n;
	int r = 0;

	if (device < 0 || (size_t) device >= a->nconf)
		return -EINVAL;
	if (ev->kind != EV_READING || a->devmap[device] < 0)
		return 0;
	d = &a->devs[a->devmap[device]];
	n = ev->nvalues < d->npoints ? ev->nvalues : d->npoints;
	if (start < a->watermark) {
		a->st.late += n;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct win *w = window_at(a, &a->slots[d->first + i], start);

		if (!w) {
			a->st.dropped++;
			r = -ENOMEM;
			continue;
		}
		a->st.values++;
		if (ev->values[i].state == VAL_OK)
			add_good(w, ev->values[i].value, ts_ms);
		else
			w->bad++;
	}
	return r;
}

/* The item of window w of slot s, into a->item. */
static void format_item(struct agg *a, const struct slot *s, const struct win *w)
{
	const struct adev *d = &a->devs[s->dev];
	struct jbuf *j = &a->item;
	int64_t end = w->start + a->window_ms;
	int mean_decimals = s->decimals < 0 ? -1 : s->decimals + 2;

	jbuf_reset(j);
	jbuf_puts(j, "{\"device\":");
	jbuf_string(j, d->name);
	jbuf_puts(j, ",\"point\":");
	jbuf_string(j, s->point);
	jbuf_puts(j, ",\"unit\":");
	jbuf_string(j, s->unit);
	jbuf_printf(j, ",\"start\":%lld,\"end\":%lld,\"count\":%lu,\"expected\":%lld,\"bad\":%lu",
		    (long long) w->start, (long long) end, (unsigned long) w->count,
		    (long long) ((end - w->from) / d->interval_ms), (unsigned long) w->bad);
	if (w->count == 0) {
		jbuf_puts(j, ",\"min\":null,\"max\":null,\"mean\":null,\"last\":null,"
			  "\"first_ts\":null,\"last_ts\":null}");
		return;
	}
	jbuf_puts(j, ",\"min\":");
	jbuf_number(j, w->min, s->decimals);
	jbuf_puts(j, ",\"max\":");
	jbuf_number(j, w->max, s->decimals);
	jbuf_puts(j, ",\"mean\":");
	jbuf_number(j, w->sum / w->count, mean_decimals);
	jbuf_puts(j, ",\"last\":");
	jbuf_number(j, w->last, s->decimals);
	jbuf_printf(j, ",\"first_ts\":%lld,\"last_ts\":%lld}", (long long) w->first_ts, (long long) w->last_ts);
}

static void drop_first(struct agg *a, struct slot *s)
{
	memmove(&s->w[0], &s->w[1], (s->n - 1) * sizeof(s->w[0]));
	s->n--;
	a->st.open--;
}

int agg_close_due(struct agg *a, int64_t now_wall_ms, agg_emit_fn fn, void *arg)
{
	int64_t b = align(a, now_wall_ms - a->grace_ms);
	char key[2 * CONF_NAME_MAX + 24];
	int emitted = 0;

	if (b > a->watermark)
		a->watermark = b;
	for (;;) {
		int64_t oldest = INT64_MAX;

		for (size_t i = 0; i < a->nslots; i++)
			if (a->slots[i].n > 0 && a->slots[i].w[0].start < oldest)
				oldest = a->slots[i].w[0].start;
		if (oldest >= a->watermark)
			break;
		for (size_t i = 0; i < a->nslots; i++) {
			struct slot *s = &a->slots[i];

			if (s->n == 0 || s->w[0].start != oldest)
				continue;
			format_item(a, s, &s->w[0]);
			snprintf(key, sizeof(key), "%s/%s/%lld", a->devs[s->dev].name, s->point, (long long) oldest);
			if (a->item.failed) {
				a->st.dropped++;
			} else {
				fn(arg, key, a->item.s);
				a->st.closed++;
				emitted++;
			}
			drop_first(a, s);
		}
	}
	return emitted;
}

int64_t agg_next_due(const struct agg *a)
{
	int64_t oldest = INT64_MAX;

	for (size_t i = 0; i < a->nslots; i++)
		if (a->slots[i].n > 0 && a->slots[i].w[0].start < oldest)
			oldest = a->slots[i].w[0].start;
	return oldest == INT64_MAX ? INT64_MAX : oldest + a->window_ms + a->grace_ms;
}

/* Exactly, for agg_restore(); null for what JSON cannot hold. */
static void put_double(struct jbuf *j, double v)
{
	if (isfinite(v))
		jbuf_printf(j, "%.17g", v);
	else
		jbuf_puts(j, "null");
}

void agg_save(const struct agg *a, struct jbuf *out)
{
	bool first = true;

	jbuf_reset(out);
	jbuf_printf(out, "{\"version\":%d,\"window\":%lld,\"watermark\":", STATE_VERSION,
		    (long long) a->window_ms);
	if (a->watermark == INT64_MIN)
		jbuf_puts(out, "null");
	else
		jbuf_printf(out, "%lld", (long long) a->watermark);
	jbuf_puts(out, ",\"windows\":[");
	for (size_t i = 0; i < a->nslots; i++) {
		const struct slot *s = &a->slots[i];

		for (size_t k = 0; k < s->n; k++) {
			const struct win *w = &s->w[k];

			jbuf_puts(out, first ? "{\"device\":" : ",{\"device\":");
			first = false;
			jbuf_string(out, a->devs[s->dev].name);
			jbuf_puts(out, ",\"point\":");
			jbuf_string(out, s->point);
			jbuf_printf(out, ",\"start\":%lld,\"from\":%lld,\"count\":%lu,\"bad\":%lu",
				    (long long) w->start, (long long) w->from, (unsigned long) w->count,
				    (unsigned long) w->bad);
			if (w->count > 0) {
				jbuf_puts(out, ",\"min\":");
				put_double(out, w->min);
				jbuf_puts(out, ",\"max\":");
				put_double(out, w->max);
				jbuf_puts(out, ",\"sum\":");
				put_double(out, w->sum);
				jbuf_puts(out, ",\"last\":");
				put_double(out, w->last);
				jbuf_printf(out, ",\"first_ts\":%lld,\"last_ts\":%lld", (long long) w->first_ts,
					    (long long) w->last_ts);
			}
			jbuf_puts(out, "}");
		}
	}
	jbuf_puts(out, "]}");
}

static struct slot *find_slot(struct agg *a, const char *device, const char *point)
{
	for (size_t i = 0; i < a->ndevs; i++) {
		const struct adev *d = &a->devs[i];

		if (strcmp(d->name, device) != 0)
			continue;
		for (size_t k = 0; k < d->npoints; k++)
			if (strcmp(a->slots[d->first + k].point, point) == 0)
				return &a->slots[d->first + k];
		return NULL;
	}
	return NULL;
}

/* A number saved by put_double(): null stands for one JSON cannot hold. */
static bool saved_double(const json_t *v, double *ret)
{
	if (json_is_null(v)) {
		*ret = NAN;
		return true;
	}
	*ret = json_number_value(v);
	return json_is_number(v);
}

/*
 * A window saved by agg_save(), checked.  Its times must lie far enough
 * inside the int64 range that end, end + grace and end - from (closing,
 * agg_next_due()) cannot overflow: a damaged file must not make them.
 */
static int parse_saved(json_t *v, struct win *ret)
{
	json_t *start = json_object_get(v, "start"), *from = json_object_get(v, "from");
	json_t *count = json_object_get(v, "count"), *bad = json_object_get(v, "bad");
	struct win w;

	if (!json_is_integer(start) || !json_is_integer(from) || !json_is_integer(count) || !json_is_integer(bad))
		return -EINVAL;
	w = (struct win) { .start = json_integer_value(start), .from = json_integer_value(from) };
	if (w.start < -SAVED_TIME_MAX || w.start > SAVED_TIME_MAX || w.from < -SAVED_TIME_MAX || w.from > SAVED_TIME_MAX)
		return -EINVAL;
	if (json_integer_value(count) < 0 || json_integer_value(count) > UINT32_MAX ||
	    json_integer_value(bad) < 0 || json_integer_value(bad) > UINT32_MAX)
		return -EINVAL;
	w.count = (uint32_t) json_integer_value(count);
	w.bad = (uint32_t) json_integer_value(bad);
	if (w.count + (uint64_t) w.bad == 0)
		return -EINVAL;
	if (w.count > 0) {
		json_t *min = json_object_get(v, "min"), *max = json_object_get(v, "max");
		json_t *sum = json_object_get(v, "sum"), *last = json_object_get(v, "last");
		json_t *first_ts = json_object_get(v, "first_ts"), *last_ts = json_object_get(v, "last_ts");

		if (!saved_double(min, &w.min) || !saved_double(max, &w.max) || !saved_double(sum, &w.sum) ||
		    !saved_double(last, &w.last) || !json_is_integer(first_ts) || !json_is_integer(last_ts))
			return -EINVAL;
		w.first_ts = json_integer_value(first_ts);
		w.last_ts = json_integer_value(last_ts);
	}
	*ret = w;
	return 0;
}

/* Fold the saved window s into w (new, or holding values of its own). */
static void merge(struct win *w, const struct win *s)
{
	if (s->from < w->from)
		w->from = s->from;
	if (s->count > 0 && w->count == 0) {
		w->min = s->min;
		w->max = s->max;
		w->last = s->last;
		w->first_ts = s->first_ts;
		w->last_ts = s->last_ts;
	} else if (s->count > 0) {
		w->min = fmin(w->min, s->min);
		w->max = fmax(w->max, s->max);
		if (s->first_ts < w->first_ts)
			w->first_ts = s->first_ts;
		if (s->last_ts > w->last_ts) {
			w->last_ts = s->last_ts;
			w->last = s->last;
		}
	}
	w->sum += s->sum;
	w->count += s->count;
	w->bad += s->bad;
}

int agg_restore(struct agg *a, const char *json)
{
	json_t *root = json_loads(json, 0, NULL), *wins, *mark, *v;
	size_t i;
	int restored = 0, r = -EINVAL;

	if (!root || json_integer_value(json_object_get(root, "version")) != STATE_VERSION)
		goto out;
	wins = json_object_get(root, "windows");
	mark = json_object_get(root, "watermark");
	if (!json_is_array(wins) || !(json_is_integer(mark) || json_is_null(mark)))
		goto out;
	if (json_is_integer(mark) && json_integer_value(mark) > a->watermark)
		a->watermark = json_integer_value(mark);
	r = 0;
	if (json_integer_value(json_object_get(root, "window")) != a->window_ms)
		goto out;
	json_array_foreach(wins, i, v) {
		const char *device = json_string_value(json_object_get(v, "device"));
		const char *point = json_string_value(json_object_get(v, "point"));
		struct slot *s;
		struct win saved, *w;

		r = device && point ? parse_saved(v, &saved) : -EINVAL;
		if (r < 0)
			goto out;
		s = find_slot(a, device, point);
		if (!s || saved.start < a->watermark || align(a, saved.start) != saved.start)
			continue;
		w = window_at(a, s, saved.start);
		if (!w) {
			r = -ENOMEM;
			goto out;
		}
		merge(w, &saved);
		restored++;
	}
	r = restored;
out:
	json_decref(root);
	return r;
}

void agg_get_stats(const struct agg *a, struct agg_stats *ret)
{
	*ret = a->st;
}
