/*
 * fuzz_json.c: the JSON the gateway reads back, the aggregator's saved
 * state (agg_restore(); the core keeps it in the store and restores it at
 * start), on arbitrary text.
 *
 * The configuration is fixed: two enabled devices ('d1' with points 'a'
 * and 'b', 'd2' with 't') and a disabled one, five-minute windows, ten
 * seconds of grace, a start time in 2026.  After agg_restore():
 *   - agg_save() writes JSON that jansson parses, and restoring it into a
 *     fresh aggregator gives the same windows (the same saved text);
 *   - a few readings are added at times taken from the input's last bytes,
 *     bounded to a realistic wall clock (the core passes wall_ms());
 *   - agg_next_due() and agg_close_due() run, and every emitted window is
 *     JSON with the key "device/point/start".
 * The whole input is the document; jansson stops at its end, so trailing
 * bytes are ignored there and still steer the times.  The same text also
 * goes to uplink_retry_after_ms(), the other thing the gateway parses from
 * a peer (the platform's Retry-After header): -1 or a delay, never less.
 */
#include <inttypes.h>

#include <jansson.h>

#include "agg.h"
#include "fuzz.h"
#include "queue.h"
#include "uplink.h"

#define START_MS 1795784100000LL     /* 2026-11-27, on a window boundary */
#define YEAR_MS (366LL * 86400 * 1000)

static struct point pts1[2], pts2[1];
static struct profile profs[2];
static struct bus_conf bus;
static struct device_conf devs[3];
static struct conf conf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	strcpy(pts1[0].name, "a");
	strcpy(pts1[0].unit, "mg/L");
	pts1[0].decimals = 2;
	strcpy(pts1[1].name, "b");
	pts1[1].decimals = -1;
	strcpy(pts2[0].name, "t");
	strcpy(pts2[0].unit, "\xc2\xb0" "C");
	pts2[0].decimals = 0;
	strcpy(profs[0].name, "p1");
	profs[0].points = pts1;
	profs[0].npoints = 2;
	strcpy(profs[1].name, "p2");
	profs[1].points = pts2;
	profs[1].npoints = 1;
	strcpy(bus.name, "b0");
	strcpy(devs[0].name, "d1");
	devs[0].profile = 0;
	devs[0].interval_ms = 60000;
	devs[0].enabled = true;
	strcpy(devs[1].name, "off");
	devs[1].profile = 0;
	devs[1].interval_ms = 1000;
	strcpy(devs[2].name, "d2");
	devs[2].profile = 1;
	devs[2].interval_ms = 7000;
	devs[2].enabled = true;
	strcpy(conf.site, "s");
	strcpy(conf.id, "g");
	conf.buses = &bus;
	conf.nbuses = 1;
	conf.devices = devs;
	conf.ndevices = 3;
	conf.profiles = profs;
	conf.nprofiles = 2;
	conf.uplink.window_s = 300;
	conf.uplink.grace_ms = 10000;
	return 0;
}

static void emitted(void *arg, const char *key, const char *json)
{
	json_error_t err;
	json_t *root = json_loads(json, 0, &err);
	char want[160];
	int *n = arg;

	if (!root)
		fprintf(stderr, "window %s: %s: %s\n", key, err.text, json);
	FUZZ_ASSERT(root != NULL);
	snprintf(want, sizeof(want), "%s/%s/%" PRId64, json_string_value(json_object_get(root, "device")),
		 json_string_value(json_object_get(root, "point")),
		 (int64_t) json_integer_value(json_object_get(root, "start")));
	FUZZ_ASSERT(strcmp(key, want) == 0);
	json_decref(root);
	(*n)++;
}

/* A wall-clock time within a year either side of the start, from the input. */
static int64_t some_time(struct fuzz_in *in)
{
	uint64_t v = fuzz_u64(in);

	return START_MS - YEAR_MS + (int64_t) (v % (2 * (uint64_t) YEAR_MS));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data + (size > 40 ? size - 40 : 0), size > 40 ? 40 : size };
	struct agg *a, *b;
	struct agg_stats st;
	struct jbuf s1 = { 0 }, s2 = { 0 };
	struct event *ev;
	char *text = malloc(size + 1);
	int r, n = 0;

	FUZZ_ASSERT(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	a = agg_new(&conf, START_MS);
	FUZZ_ASSERT(a != NULL);
	FUZZ_ASSERT(uplink_retry_after_ms(text, (time_t) (START_MS / 1000)) >= -1);
	r = agg_restore(a, text);
	FUZZ_ASSERT(r >= 0 || r == -EINVAL);
	(void) agg_next_due(a);

	/* what is saved restores to the same */
	agg_save(a, &s1);
	FUZZ_ASSERT(!s1.failed);
	{
		json_t *root = json_loads(s1.s, 0, NULL);

		if (!root)
			fprintf(stderr, "agg_save: not JSON: %s\n", s1.s);
		FUZZ_ASSERT(root != NULL);
		json_decref(root);
	}
	b = agg_new(&conf, START_MS);
	FUZZ_ASSERT(b != NULL);
	agg_get_stats(a, &st);
	r = agg_restore(b, s1.s);
	if (r != (int) st.open)
		fprintf(stderr, "saved %" PRIu64 " windows, restored %d from %s\n", st.open, r, s1.s);
	FUZZ_ASSERT(r == (int) st.open);
	agg_save(b, &s2);
	if (strcmp(s1.s, s2.s) != 0)
		fprintf(stderr, "saved differently:\n%s\n%s\n", s1.s, s2.s);
	FUZZ_ASSERT(strcmp(s1.s, s2.s) == 0);
	agg_free(b);

	/* readings, then closing */
	ev = event_new(EV_READING, 2);
	FUZZ_ASSERT(ev != NULL);
	ev->values[0].value = 7.25;
	ev->values[1].state = VAL_RANGE;
	for (int k = 0; k < 3; k++) {
		int dev = fuzz_u8(&in) % 4 - 1;  /* -1..2: out of range, disabled, both kinds */

		r = agg_add(a, dev, ev, some_time(&in));
		FUZZ_ASSERT(r == 0 || (r == -EINVAL && dev < 0));
	}
	(void) agg_next_due(a);
	(void) agg_close_due(a, some_time(&in), emitted, &n);
	(void) agg_next_due(a);
	(void) agg_close_due(a, START_MS + 2 * YEAR_MS, emitted, &n);
	(void) agg_next_due(a);
	agg_get_stats(a, &st);
	FUZZ_ASSERT(st.closed == (uint64_t) n);

	free(ev);
	jbuf_done(&s1);
	jbuf_done(&s2);
	agg_free(a);
	free(text);
	return 0;
}
