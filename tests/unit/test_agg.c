/* test_agg.c: windowed aggregates; every item is parsed back with jansson. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "check.h"
#include "decode.h"

#define W 300000LL                 /* window, ms */
#define T0 1795784100000LL         /* a window boundary (a multiple of W) */
#define GRACE 10000LL

struct sink {
	size_t n;
	char *key[64];
	char *json[64];
};

static void collect(void *arg, const char *key, const char *json)
{
	struct sink *k = arg;

	if (k->n < 64) {
		k->key[k->n] = strdup(key);
		k->json[k->n] = strdup(json);
		k->n++;
	}
}

static void sink_clear(struct sink *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->key[i]);
		free(k->json[i]);
	}
	k->n = 0;
}

/* Item i parsed, or NULL (reported) when it is not JSON. */
static json_t *item(const struct sink *k, size_t i)
{
	json_error_t e;
	json_t *v;

	if (i >= k->n) {
		fprintf(stderr, "no item %zu (have %zu)\n", i, k->n);
		return NULL;
	}
	v = json_loads(k->json[i], 0, &e);
	if (!v)
		fprintf(stderr, "not JSON (%s): %s\n", e.text, k->json[i]);
	return v;
}

static double num(json_t *o, const char *name)
{
	return json_number_value(json_object_get(o, name));
}

static long long integer(json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

static struct point pts[2];
static struct profile prof = { .name = "s-rjy-01", .points = pts, .npoints = 2 };
static struct device_conf devs[3];
static struct conf conf;

static void make_conf(void)
{
	pts[0] = (struct point) { .name = "do", .unit = "mg/L", .scale = 0.01, .bit = -1, .decimals = 2 };
	pts[1] = (struct point) { .name = "water_temp", .unit = "°C", .scale = 0.1, .bit = -1, .decimals = 1 };
	devs[0] = (struct device_conf) { .name = "pond1-do", .profile = 0, .interval_ms = 10000, .enabled = true };
	devs[1] = (struct device_conf) { .name = "pond2-do", .profile = 0, .interval_ms = 10000, .enabled = false };
	devs[2] = (struct device_conf) { .name = "pond3-do", .profile = 0, .interval_ms = 7000, .enabled = true };
	strcpy(conf.site, "yujiang-paddy-03");
	strcpy(conf.id, "gw01");
	conf.uplink.window_s = (int) (W / 1000);
	conf.uplink.grace_ms = (int) GRACE;
	conf.devices = devs;
	conf.ndevices = 3;
	conf.profiles = &prof;
	conf.nprofiles = 1;
}

/* One poll: do and water_temp, each good (state 0) or bad. */
static void poll1(struct agg *a, int dev, int64_t ts, double v_do, int st_do, double v_t, int st_t)
{
	struct event *ev = event_new(EV_READING, 2);

	ev->device = dev;
	ev->values[0].value = v_do;
	ev->values[0].state = (uint8_t) st_do;
	ev->values[1].value = v_t;
	ev->values[1].state = (uint8_t) st_t;
	CHECK(agg_add(a, dev, ev, ts) == 0);
	free(ev);
}

static void test_full_window(void)
{
	struct agg *a = agg_new(&conf, T0 - 3600000);
	struct sink k = { 0 };
	static const double vals[] = { 6.1, 6.9, 6.4, 6.6 };
	json_t *v;

	CHECK(a != NULL);
	CHECK(agg_next_due(a) == INT64_MAX);
	/* the first reading exactly at the window start, the last just before its end */
	poll1(a, 0, T0, vals[0], VAL_OK, 24.3, VAL_OK);
	poll1(a, 0, T0 + 100000, vals[1], VAL_OK, 24.4, VAL_OK);
	poll1(a, 0, T0 + 200000, vals[2], VAL_OK, 0, VAL_NO_REPLY);
	poll1(a, 0, T0 + 250000, NAN, VAL_NAN, 0, VAL_NO_REPLY);
	poll1(a, 0, T0 + W - 1, vals[3], VAL_OK, 0, VAL_RANGE);
	/* exactly at the end: the next window */
	poll1(a, 0, T0 + W, 7.0, VAL_OK, 25.0, VAL_OK);
	CHECK(agg_next_due(a) == T0 + W + GRACE);

	/* grace: not before end + grace, then exactly then */
	CHECK(agg_close_due(a, T0 + W + GRACE - 1, collect, &k) == 0);
	CHECK(k.n == 0);
	CHECK(agg_close_due(a, T0 + W + GRACE, collect, &k) == 2);
	CHECK(k.n == 2);
	CHECK_STR(k.key[0], "pond1-do/do/1795784100000");
	CHECK_STR(k.key[1], "pond1-do/water_temp/1795784100000");
	CHECK_STR(k.json[0], "{\"device\":\"pond1-do\",\"point\":\"do\",\"unit\":\"mg/L\",\"start\":1795784100000,"
		  "\"end\":1795784400000,\"count\":4,\"expected\":30,\"bad\":1,\"min\":6.10,\"max\":6.90,"
		  "\"mean\":6.5000,\"last\":6.60,\"first_ts\":1795784100000,\"last_ts\":1795784399999}");
	v = item(&k, 0);
	if (v) {
		CHECK_STR(json_string_value(json_object_get(v, "device")), "pond1-do");
		CHECK(integer(v, "start") == T0 && integer(v, "end") == T0 + W);
		CHECK(integer(v, "count") == 4 && integer(v, "bad") == 1 && integer(v, "expected") == 30);
		CHECK_NEAR(num(v, "min"), 6.1, 1e-12);
		CHECK_NEAR(num(v, "max"), 6.9, 1e-12);
		CHECK_NEAR(num(v, "mean"), (6.1 + 6.9 + 6.4 + 6.6) / 4, 1e-12);
		CHECK_NEAR(num(v, "last"), 6.6, 1e-12);
		CHECK(integer(v, "first_ts") == T0 && integer(v, "last_ts") == T0 + W - 1);
		json_decref(v);
	}
	v = item(&k, 1);
	if (v) {
		CHECK_STR(json_string_value(json_object_get(v, "unit")), "°C");
		CHECK(integer(v, "count") == 2 && integer(v, "bad") == 3);
		CHECK_NEAR(num(v, "mean"), 24.35, 1e-12);
		json_decref(v);
	}
	/* the reading at the end went to the next window, still open */
	CHECK(agg_next_due(a) == T0 + 2 * W + GRACE);
	sink_clear(&k);
	CHECK(agg_close_due(a, T0 + 2 * W + GRACE, collect, &k) == 2);
	v = item(&k, 0);
	if (v) {
		CHECK(integer(v, "start") == T0 + W && integer(v, "count") == 1);
		CHECK(integer(v, "first_ts") == T0 + W && integer(v, "last_ts") == T0 + W);
		json_decref(v);
	}
	sink_clear(&k);
	agg_free(a);
}

static void test_alignment_and_start_window(void)
{
	/* started 123.456 s into a window: polls expected for the rest of it only */
	struct agg *a = agg_new(&conf, T0 + 123456);
	struct sink k = { 0 };
	json_t *v;

	poll1(a, 0, T0 + 130000, 5.0, VAL_OK, 20.0, VAL_OK);
	poll1(a, 2, T0 + 131000, 5.5, VAL_OK, 21.0, VAL_OK);
	poll1(a, 0, T0 + W + 5000, 5.2, VAL_OK, 20.1, VAL_OK);
	poll1(a, 2, T0 + W + 6000, 5.7, VAL_OK, 21.1, VAL_OK);
	CHECK(agg_close_due(a, T0 + 2 * W + GRACE, collect, &k) == 8);
	/* oldest window first, across devices and points */
	for (size_t i = 0; i < k.n; i++) {
		v = item(&k, i);
		if (!v)
			continue;
		CHECK(integer(v, "start") == (i < 4 ? T0 : T0 + W));
		CHECK(integer(v, "start") % W == 0);
		CHECK(integer(v, "end") - integer(v, "start") == W);
		if (i == 0)    /* (300000 - 123456) / 10000 */
			CHECK(integer(v, "expected") == 17);
		if (i == 2)    /* pond3-do polls every 7 s: (300000 - 123456) / 7000 */
			CHECK(integer(v, "expected") == 25);
		if (i == 4)
			CHECK(integer(v, "expected") == 30);
		if (i == 6)    /* 300000 / 7000 */
			CHECK(integer(v, "expected") == 42);
		json_decref(v);
	}
	CHECK_STR(k.key[2], "pond3-do/do/1795784100000");
	CHECK_STR(k.key[7], "pond3-do/water_temp/1795784400000");
	sink_clear(&k);
	agg_free(a);

	/* windows are aligned on the epoch, before 1970 too */
	a = agg_new(&conf, -W);
	poll1(a, 0, -1, 1.0, VAL_OK, 1.0, VAL_OK);
	CHECK(agg_next_due(a) == GRACE);
	CHECK(agg_close_due(a, GRACE, collect, &k) == 2);
	CHECK_STR(k.key[0], "pond1-do/do/-300000");
	sink_clear(&k);
	agg_free(a);
}

static void test_bad_and_empty(void)
{
	struct agg *a = agg_new(&conf, T0);
	struct sink k = { 0 };
	struct agg_stats st;
	json_t *v;

	/* pond1-do: only bad readings; pond3-do: nothing at all */
	poll1(a, 0, T0 + 1000, 0, VAL_NO_REPLY, 0, VAL_EXCEPTION);
	poll1(a, 0, T0 + 11000, 0, VAL_RANGE, 0, VAL_NO_REPLY);
	CHECK(agg_close_due(a, T0 + W + GRACE, collect, &k) == 2);
	CHECK_STR(k.json[0], "{\"device\":\"pond1-do\",\"point\":\"do\",\"unit\":\"mg/L\",\"start\":1795784100000,"
		  "\"end\":1795784400000,\"count\":0,\"expected\":30,\"bad\":2,\"min\":null,\"max\":null,"
		  "\"mean\":null,\"last\":null,\"first_ts\":null,\"last_ts\":null}");
	v = item(&k, 1);
	if (v) {
		CHECK(json_is_null(json_object_get(v, "mean")));
		CHECK(integer(v, "count") == 0 && integer(v, "bad") == 2);
		json_decref(v);
	}
	sink_clear(&k);
	/* an empty window is never emitted */
	CHECK(agg_close_due(a, T0 + 10 * W, collect, &k) == 0);
	agg_get_stats(a, &st);
	CHECK(st.values == 4 && st.closed == 2 && st.open == 0 && st.late == 0);

	/* disabled devices and other events are ignored; unknown devices refused */
	struct event *ev = event_new(EV_READING, 2);
	CHECK(agg_add(a, 1, ev, T0 + 10 * W) == 0);
	CHECK(agg_add(a, 3, ev, T0 + 10 * W) == -EINVAL);
	CHECK(agg_add(a, -1, ev, T0 + 10 * W) == -EINVAL);
	ev->kind = EV_DEVICE_STATE;
	CHECK(agg_add(a, 0, ev, T0 + 10 * W) == 0);
	CHECK(agg_next_due(a) == INT64_MAX);
	/* an event with fewer values than the profile: only those */
	ev->kind = EV_READING;
	ev->nvalues = 1;
	CHECK(agg_add(a, 0, ev, T0 + 10 * W) == 0);
	CHECK(agg_close_due(a, T0 + 12 * W, collect, &k) == 1);
	CHECK_STR(k.key[0], "pond1-do/do/1795787100000");
	free(ev);
	sink_clear(&k);
	agg_free(a);
}

static void test_late(void)
{
	struct agg *a = agg_new(&conf, T0);
	struct sink k = { 0 };
	struct agg_stats st;

	poll1(a, 0, T0 + 1000, 6.0, VAL_OK, 20.0, VAL_OK);
	/* within the grace period a reading still joins the window that ended */
	poll1(a, 0, T0 + W - 1, 6.2, VAL_OK, 20.2, VAL_OK);
	CHECK(agg_close_due(a, T0 + W + GRACE - 1, collect, &k) == 0);
	poll1(a, 0, T0 + 2000, 6.4, VAL_OK, 20.4, VAL_OK);
	CHECK(agg_close_due(a, T0 + W + GRACE, collect, &k) == 2);
	CHECK(strstr(k.json[0], "\"count\":3") != NULL);
	/* after it closed: late, dropped, the window never reopens */
	poll1(a, 0, T0 + 3000, 9.9, VAL_OK, 29.9, VAL_OK);
	poll1(a, 2, T0 + W - 1, 9.9, VAL_OK, 29.9, VAL_OK);
	agg_get_stats(a, &st);
	CHECK(st.late == 4 && st.open == 0);
	CHECK(agg_next_due(a) == INT64_MAX);
	sink_clear(&k);
	CHECK(agg_close_due(a, T0 + 5 * W, collect, &k) == 0);
	/* a clock stepping back does not move the watermark back */
	CHECK(agg_close_due(a, T0, collect, &k) == 0);
	poll1(a, 0, T0 + 4 * W - 1, 9.9, VAL_OK, 29.9, VAL_OK);
	agg_get_stats(a, &st);
	CHECK(st.late == 6);
	agg_free(a);
}

/* Drive a and b through the same readings, restarting b in the middle. */
static void test_save_restore(void)
{
	struct agg *a = agg_new(&conf, T0 + 50000), *b = agg_new(&conf, T0 + 50000), *b2;
	struct sink ka = { 0 }, kb = { 0 };
	struct jbuf state = { 0 };
	struct agg_stats st;
	int64_t ts = T0 + 50000;

	/* awkward values that only survive a restore when printed exactly */
	for (int i = 0; i < 20; i++, ts += 10000) {
		double d = 6.0 + i * 0.1 + 1.0 / 3.0;

		poll1(a, 0, ts, d, i % 7 ? VAL_OK : VAL_NAN, 20.0 + i, VAL_OK);
		poll1(b, 0, ts, d, i % 7 ? VAL_OK : VAL_NAN, 20.0 + i, VAL_OK);
		poll1(a, 2, ts + 5, -d, VAL_OK, 0, VAL_NO_REPLY);
		poll1(b, 2, ts + 5, -d, VAL_OK, 0, VAL_NO_REPLY);
	}
	/* one window closed before the save, the next one open */
	CHECK(agg_close_due(a, T0 + W + GRACE, collect, &ka) == 4);
	CHECK(agg_close_due(b, T0 + W + GRACE, collect, &kb) == 4);
	poll1(a, 0, T0 + W + GRACE + 1, 1.0, VAL_OK, 2.0, VAL_OK);
	poll1(b, 0, T0 + W + GRACE + 1, 1.0, VAL_OK, 2.0, VAL_OK);
	agg_save(b, &state);
	CHECK(!state.failed);
	agg_free(b);

	/* the restart: started later, a reading of the closed window arrives late */
	b2 = agg_new(&conf, T0 + W + 60000);
	CHECK(agg_restore(b2, state.s) == 2);
	poll1(b2, 0, T0 + W - 5, 1.0, VAL_OK, 1.0, VAL_OK);
	agg_get_stats(b2, &st);
	CHECK(st.late == 2 && st.open == 2);
	for (ts = T0 + W + 70000; ts < T0 + W + 200000; ts += 10000) {
		poll1(a, 0, ts, ts / 1e12, VAL_OK, 3.0, VAL_OK);
		poll1(b2, 0, ts, ts / 1e12, VAL_OK, 3.0, VAL_OK);
	}
	CHECK(agg_close_due(a, T0 + 3 * W, collect, &ka) == 2);
	CHECK(agg_close_due(b2, T0 + 3 * W, collect, &kb) == 2);
	CHECK(ka.n == 6 && kb.n == 6);
	for (size_t i = 0; i < ka.n && i < kb.n; i++) {
		CHECK_STR(kb.key[i], ka.key[i]);
		CHECK_STR(kb.json[i], ka.json[i]);
	}
	/* the expected count of a restored window counts from the first start */
	json_t *v = item(&kb, 4);
	if (v) {
		CHECK(integer(v, "start") == T0 + W && integer(v, "expected") == 30);
		json_decref(v);
	}
	sink_clear(&ka);
	sink_clear(&kb);
	agg_free(a);
	agg_free(b2);

	/* unknown devices and points are skipped; a changed window skips everything */
	b2 = agg_new(&conf, T0);
	CHECK(agg_restore(b2, "{\"version\":1,\"window\":300000,\"watermark\":null,\"windows\":["
		      "{\"device\":\"gone\",\"point\":\"do\",\"start\":1795784100000,\"from\":1795784100000,\"count\":0,\"bad\":1},"
		      "{\"device\":\"pond1-do\",\"point\":\"ph\",\"start\":1795784100000,\"from\":1795784100000,\"count\":0,\"bad\":1},"
		      "{\"device\":\"pond2-do\",\"point\":\"do\",\"start\":1795784100000,\"from\":1795784100000,\"count\":0,\"bad\":1},"
		      "{\"device\":\"pond1-do\",\"point\":\"do\",\"start\":1795784100000,\"from\":1795784100000,\"count\":0,\"bad\":3}"
		      "]}") == 1);
	CHECK(agg_restore(b2, "{\"version\":1,\"window\":60000,\"watermark\":1795784100000,\"windows\":["
		      "{\"device\":\"pond1-do\",\"point\":\"do\",\"start\":1795784160000,\"from\":1795784100000,\"count\":0,\"bad\":1}"
		      "]}") == 0);
	CHECK(agg_restore(b2, "{\"version\":2}") == -EINVAL);
	CHECK(agg_restore(b2, "not json") == -EINVAL);
	CHECK(agg_restore(b2, "{\"version\":1,\"window\":300000,\"watermark\":null,\"windows\":["
		      "{\"device\":\"pond1-do\",\"point\":\"do\",\"start\":1795784100000,\"from\":1795784100000,\"count\":2,\"bad\":0}"
		      "]}") == -EINVAL);
	CHECK(agg_close_due(b2, T0 + W + GRACE, collect, &kb) == 1);
	CHECK(kb.n == 1 && strstr(kb.json[0], "\"count\":0,\"expected\":30,\"bad\":3") != NULL);
	sink_clear(&kb);
	agg_free(b2);
	jbuf_done(&state);
}

int main(void)
{
	make_conf();
	test_full_window();
	test_alignment_and_start_window();
	test_bad_and_empty();
	test_late();
	test_save_restore();

	struct conf bad = conf;
	bad.uplink.window_s = 0;
	errno = 0;
	CHECK(agg_new(&bad, T0) == NULL && errno == EINVAL);
	agg_free(NULL);
	return CHECK_DONE();
}
