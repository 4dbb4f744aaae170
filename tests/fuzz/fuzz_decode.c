/*
 * fuzz_decode.c: the planner, the decoder and the telemetry payload over
 * profiles and register data made from the input.
 *
 * The input is a small profile (fuzz_points() in fuzz.h: table, type,
 * order, bit, address, scale, offset, min, max, decimals of each point),
 * max_registers and max_gap, then register data.  plan_build() must either
 * refuse (only for a point wider than max_registers) or return requests
 * that hold every point, within the Modbus limits.  Each request's reply
 * is a heap buffer of exactly its length, filled from the input, and every
 * point is decoded from it the way bus.c does, so reading one register too
 * many is an AddressSanitizer report.  The values then go through
 * payload_telemetry(), whose output jansson must parse back with the same
 * keys.  A direct decode_raw() with any type, order and bit (valid or not)
 * comes last.
 */
#include <math.h>

#include <jansson.h>

#include "decode.h"
#include "fuzz.h"
#include "payload.h"
#include "plan.h"
#include "queue.h"

#define MAX_REG_COUNT 125
#define MAX_BIT_COUNT 2000

static struct point pts[CONF_MAX_POINTS];
static struct plan plan;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	return 0;
}

static void check_plan(size_t n, int max_registers, int max_gap)
{
	bool seen[CONF_MAX_POINTS] = { false };
	size_t next = 0;
	int limit = max_registers < 1 ? 1 : max_registers > MAX_REG_COUNT ? MAX_REG_COUNT : max_registers;

	(void) max_gap;
	FUZZ_ASSERT(plan.npoints == n);
	FUZZ_ASSERT(plan.nreq <= n && plan.nreq <= PLAN_MAX_REQUESTS);
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(plan.order[i] < n && !seen[plan.order[i]]);
		seen[plan.order[i]] = true;
	}
	for (size_t r = 0; r < plan.nreq; r++) {
		const struct plan_request *rq = &plan.req[r];
		bool bits = rq->table == TABLE_COIL || rq->table == TABLE_DISCRETE;

		FUZZ_ASSERT(rq->count >= 1);
		FUZZ_ASSERT(rq->count <= (bits ? MAX_BIT_COUNT : limit));
		FUZZ_ASSERT((long) rq->start + rq->count <= 65536);
		FUZZ_ASSERT(rq->first_point == next && rq->npoints >= 1);
		FUZZ_ASSERT((size_t) rq->first_point + rq->npoints <= n);
		FUZZ_ASSERT(!rq->split);
		next += rq->npoints;
		for (size_t j = rq->first_point; j < (size_t) rq->first_point + rq->npoints; j++) {
			const struct point *p = &pts[plan.order[j]];

			FUZZ_ASSERT(p->table == rq->table);
			FUZZ_ASSERT(p->address >= rq->start);
			FUZZ_ASSERT(p->address + plan_point_width(p) <= rq->start + rq->count);
		}
	}
	FUZZ_ASSERT(next == n);
}

/* The payload must be JSON with one key per good point and one "bad" entry per bad one. */
static void check_payload(const struct profile *prof, const struct event *ev)
{
	struct jbuf j = { 0 };
	json_error_t err;
	json_t *root, *values, *bad;
	size_t good = 0, nbad = 0;

	payload_telemetry(&j, prof, ev, 1795784195917LL, 42, true);
	FUZZ_ASSERT(!j.failed);
	root = json_loads(j.s, 0, &err);
	if (!root)
		fprintf(stderr, "payload: %s: %s\n", err.text, j.s);
	FUZZ_ASSERT(root != NULL);
	for (size_t i = 0; i < ev->nvalues; i++) {
		if (ev->values[i].state == VAL_OK)
			good++;
		else
			nbad++;
	}
	values = json_object_get(root, "values");
	bad = json_object_get(root, "bad");
	FUZZ_ASSERT(json_is_object(values));
	FUZZ_ASSERT(json_object_size(values) == good);
	FUZZ_ASSERT(nbad == 0 ? bad == NULL : json_array_size(bad) == nbad);
	FUZZ_ASSERT(json_is_true(json_object_get(root, "historical")));
	json_decref(root);
	jbuf_done(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct profile prof = { .name = "fuzz", .points = pts };
	struct event *ev;
	int max_registers, max_gap, r;
	size_t n;

	max_registers = (int) (int8_t) fuzz_u8(&in);     /* negative and > 125 are clamped */
	max_gap = (int) (int8_t) fuzz_u8(&in);
	n = fuzz_points(&in, pts, CONF_MAX_POINTS);
	prof.npoints = n;

	r = plan_build(pts, n, max_registers, max_gap, &plan);
	if (r < 0) {
		/* only a point that no request can hold is refused */
		bool too_wide = false;
		int limit = max_registers < 1 ? 1 : max_registers;

		for (size_t i = 0; i < n; i++)
			if (pts[i].table != TABLE_COIL && pts[i].table != TABLE_DISCRETE &&
			    plan_point_width(&pts[i]) > limit)
				too_wide = true;
		FUZZ_ASSERT(r == -EINVAL && too_wide);
		return 0;
	}
	FUZZ_ASSERT((size_t) r == plan.nreq);
	check_plan(n, max_registers, max_gap);

	ev = event_new(EV_READING, n);
	FUZZ_ASSERT(ev != NULL);
	for (size_t i = 0; i < n; i++)
		ev->values[i].state = VAL_NO_REPLY;
	for (size_t ri = 0; ri < plan.nreq; ri++) {
		const struct plan_request *rq = &plan.req[ri];
		uint16_t *regs = malloc(rq->count * sizeof(*regs));
		bool bits = rq->table == TABLE_COIL || rq->table == TABLE_DISCRETE;

		FUZZ_ASSERT(regs != NULL);
		for (size_t k = 0; k < rq->count; k++)
			regs[k] = bits ? fuzz_u8(&in) & 1 : fuzz_u16(&in);
		for (size_t j = rq->first_point; j < (size_t) rq->first_point + rq->npoints; j++) {
			int pi = plan.order[j];
			const struct point *p = &pts[pi];
			const uint16_t *src = regs + (p->address - rq->start);
			struct event_value *v = &ev->values[pi];
			enum value_state s = decode_point(p, src, &v->value);

			FUZZ_ASSERT(s == VAL_OK || s == VAL_NAN || s == VAL_RANGE);
			if (s == VAL_OK) {
				FUZZ_ASSERT(isfinite(v->value));
				FUZZ_ASSERT(!p->has_min || v->value >= p->min);
				FUZZ_ASSERT(!p->has_max || v->value <= p->max);
			}
			if (p->type == VT_BOOL)
				FUZZ_ASSERT(s == VAL_OK && (v->value == 0 || v->value == 1));
			v->state = (uint8_t) s;
			v->raw = decode_bits(src, p->type, p->order);
		}
		free(regs);
	}
	check_payload(&prof, ev);
	free(ev);

	/* decode_raw() with whatever type, order and bit, on four registers */
	{
		uint16_t regs[4] = { fuzz_u16(&in), fuzz_u16(&in), fuzz_u16(&in), fuzz_u16(&in) };
		int type = (int8_t) fuzz_u8(&in), order = (int8_t) fuzz_u8(&in), bit = (int8_t) fuzz_u8(&in);
		double raw;

		r = decode_raw(regs, (enum vtype) type, (enum worder) order, bit, &raw);
		FUZZ_ASSERT(r == 0 || r == -EINVAL);
		if (type >= 0 && type <= VT_BOOL && order >= 0 && order <= WO_DCBA && !(type == VT_BOOL && bit > 15))
			FUZZ_ASSERT(r == 0);
		(void) decode_bits(regs, (enum vtype) type, (enum worder) order);
	}
	return 0;
}
