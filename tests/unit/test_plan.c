/*
 * test_plan.c: merging of points into requests: gaps at and past max_gap,
 * the 125-register and device limits, tables, ordering, shared registers,
 * wide types at the boundaries and the 2000-bit limit of coil reads.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "plan.h"

static struct point pts[CONF_MAX_POINTS + 1];
static size_t npts;
static struct plan plan;

static void reset(void)
{
	memset(pts, 0, sizeof(pts));
	npts = 0;
}

static void add(enum table t, unsigned address, enum vtype type, int bit)
{
	struct point *p = &pts[npts++];

	memset(p, 0, sizeof(*p));
	p->table = t;
	p->address = (uint16_t) address;
	p->type = type;
	p->order = WO_ABCD;
	p->bit = bit;
	p->scale = 1;
	p->decimals = -1;
}

/*
 * The invariants every plan must keep: order is a permutation sorted by
 * (table, address); the requests' slices of order are consecutive and cover
 * every point once; every point lies inside its request, on its table; no
 * request is empty or above its limit.
 */
static int plan_consistent(int max_registers)
{
	int seen[CONF_MAX_POINTS] = { 0 };
	size_t i, next = 0;

	if (plan.npoints != npts)
		return 0;
	for (i = 0; i < npts; i++) {
		if (plan.order[i] >= npts || seen[plan.order[i]]++)
			return 0;
		if (i > 0) {
			const struct point *a = &pts[plan.order[i - 1]], *b = &pts[plan.order[i]];

			if (a->table > b->table || (a->table == b->table && a->address > b->address))
				return 0;
			/* ties keep the profile order */
			if (a->table == b->table && a->address == b->address && plan.order[i - 1] > plan.order[i])
				return 0;
		}
	}
	for (i = 0; i < plan.nreq; i++) {
		const struct plan_request *r = &plan.req[i];
		int limit = r->table == TABLE_COIL || r->table == TABLE_DISCRETE ? 2000 : max_registers;
		size_t j;

		if (r->first_point != next || r->npoints == 0 || r->count == 0 || r->count > limit || r->split)
			return 0;
		for (j = r->first_point; j < (size_t) r->first_point + r->npoints; j++) {
			const struct point *p = &pts[plan.order[j]];

			if (p->table != r->table || p->address < r->start ||
			    p->address + plan_point_width(p) > r->start + r->count)
				return 0;
		}
		next += r->npoints;
	}
	return next == npts;
}

/* build and check the invariants; returns plan_build()'s result */
static int build(int max_registers, int max_gap)
{
	int n = plan_build(pts, npts, max_registers, max_gap, &plan);
	int eff = max_registers < 1 ? 1 : max_registers > 125 ? 125 : max_registers;

	if (n >= 0)
		CHECK(plan_consistent(eff));
	return n;
}

static void test_width(void)
{
	struct point p;

	memset(&p, 0, sizeof(p));
	p.table = TABLE_HOLDING;
	p.type = VT_U16;
	CHECK(plan_point_width(&p) == 1);
	p.type = VT_F32;
	CHECK(plan_point_width(&p) == 2);
	p.table = TABLE_INPUT;
	p.type = VT_S64;
	CHECK(plan_point_width(&p) == 4);
	p.type = VT_BOOL;
	CHECK(plan_point_width(&p) == 1);
	p.table = TABLE_COIL;
	p.type = VT_F64;	/* the config forbids it, but a bit is a bit */
	CHECK(plan_point_width(&p) == 1);
	p.table = TABLE_DISCRETE;
	p.type = VT_BOOL;
	CHECK(plan_point_width(&p) == 1);
}

static void test_empty(void)
{
	reset();
	CHECK(build(125, 8) == 0);
	CHECK(plan.nreq == 0 && plan.npoints == 0);
	CHECK(plan_build(NULL, 1, 125, 8, &plan) == -EINVAL);
	CHECK(plan_build(pts, CONF_MAX_POINTS + 1, 125, 8, &plan) == -EINVAL);
}

static void test_adjacent(void)
{
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 1, VT_U16, -1);
	add(TABLE_HOLDING, 2, VT_U32, -1);
	add(TABLE_HOLDING, 4, VT_F64, -1);
	CHECK(build(125, 0) == 1);
	CHECK(plan.req[0].table == TABLE_HOLDING);
	CHECK(plan.req[0].start == 0 && plan.req[0].count == 8);
	CHECK(plan.req[0].first_point == 0 && plan.req[0].npoints == 4);
}

static void test_gap(void)
{
	/* end of the first point is 1; a point at 9 leaves a gap of 8 */
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 9, VT_U16, -1);
	CHECK(build(125, 8) == 1);
	CHECK(plan.req[0].start == 0 && plan.req[0].count == 10);

	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 10, VT_U16, -1);
	CHECK(build(125, 8) == 2);
	CHECK(plan.req[0].start == 0 && plan.req[0].count == 1);
	CHECK(plan.req[1].start == 10 && plan.req[1].count == 1);
	CHECK(plan.req[1].first_point == 1 && plan.req[1].npoints == 1);

	/* the gap is measured from the end of a wide point */
	reset();
	add(TABLE_INPUT, 100, VT_F32, -1);	/* 100..101 */
	add(TABLE_INPUT, 110, VT_U16, -1);	/* gap 8 */
	add(TABLE_INPUT, 120, VT_U16, -1);	/* gap 9 */
	CHECK(build(125, 8) == 2);
	CHECK(plan.req[0].start == 100 && plan.req[0].count == 11 && plan.req[0].npoints == 2);
	CHECK(plan.req[1].start == 120 && plan.req[1].count == 1);

	/* max_gap 0: only touching points merge */
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 1, VT_U16, -1);
	add(TABLE_HOLDING, 3, VT_U16, -1);
	CHECK(build(125, 0) == 2);
	CHECK(plan.req[0].count == 2 && plan.req[1].start == 3);

	/* a negative max_gap is taken as 0 */
	CHECK(build(125, -5) == 2);
}

static void test_limits(void)
{
	/* 0 and 124 with u16: 125 registers, one request */
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 124, VT_U16, -1);
	CHECK(build(125, 124) == 1);
	CHECK(plan.req[0].count == 125);

	/* 0 and 125: 126 registers, two requests */
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 125, VT_U16, -1);
	CHECK(build(125, 1000) == 2);

	/* max_registers above 125 is clamped */
	CHECK(build(500, 1000) == 2);
	CHECK(plan.req[0].count == 1 && plan.req[1].count == 1);

	/* 64-bit at the end of the window: 121..124 fits, 122..125 does not */
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 121, VT_U64, -1);
	CHECK(build(125, 124) == 1);
	CHECK(plan.req[0].count == 125);
	pts[1].address = 122;
	CHECK(build(125, 124) == 2);
	CHECK(plan.req[1].start == 122 && plan.req[1].count == 4);

	/* device limit of 10 registers */
	reset();
	add(TABLE_INPUT, 0, VT_U16, -1);
	add(TABLE_INPUT, 9, VT_U16, -1);
	CHECK(build(10, 8) == 1);
	CHECK(plan.req[0].count == 10);
	pts[1].address = 10;
	CHECK(build(10, 124) == 2);
	/* 32-bit across the device limit */
	reset();
	add(TABLE_INPUT, 0, VT_U16, -1);
	add(TABLE_INPUT, 8, VT_U32, -1);	/* 8..9 */
	CHECK(build(10, 124) == 1);
	pts[1].address = 9;			/* 9..10 */
	CHECK(build(10, 124) == 2);
	CHECK(plan.req[1].start == 9 && plan.req[1].count == 2);

	/* a run of adjacent points split every 10 registers */
	reset();
	{
		unsigned a;

		for (a = 0; a < 25; a++)
			add(TABLE_HOLDING, a, VT_U16, -1);
	}
	CHECK(build(10, 0) == 3);
	CHECK(plan.req[0].count == 10 && plan.req[1].count == 10 && plan.req[2].count == 5);
	CHECK(plan.req[2].start == 20 && plan.req[2].first_point == 20 && plan.req[2].npoints == 5);

	/* a point wider than max_registers cannot be read */
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 10, VT_F64, -1);
	CHECK(build(3, 8) == -EINVAL);
	CHECK(plan.nreq == 0);
	CHECK(build(4, 8) == 2);
	/* max_registers 0 is clamped to 1: a u32 cannot be read, a u16 can */
	reset();
	add(TABLE_HOLDING, 0, VT_U32, -1);
	CHECK(build(0, 8) == -EINVAL);
	reset();
	add(TABLE_HOLDING, 0, VT_U16, -1);
	add(TABLE_HOLDING, 1, VT_U16, -1);
	CHECK(build(0, 8) == 2);

	/* a point running past register 65535 */
	reset();
	add(TABLE_HOLDING, 65535, VT_U32, -1);
	CHECK(build(125, 8) == -EINVAL);
	reset();
	add(TABLE_HOLDING, 65534, VT_U32, -1);
	add(TABLE_HOLDING, 65535, VT_U16, -1);
	CHECK(build(125, 8) == 1);
	CHECK(plan.req[0].start == 65534 && plan.req[0].count == 2);
}

static void test_tables(void)
{
	reset();
	add(TABLE_INPUT, 0, VT_U16, -1);	/* 0 */
	add(TABLE_HOLDING, 0, VT_U16, -1);	/* 1 */
	add(TABLE_INPUT, 1, VT_U16, -1);	/* 2 */
	add(TABLE_HOLDING, 1, VT_U16, -1);	/* 3 */
	add(TABLE_COIL, 0, VT_BOOL, -1);	/* 4 */
	add(TABLE_DISCRETE, 1, VT_BOOL, -1);	/* 5 */
	CHECK(build(125, 8) == 4);
	CHECK(plan.req[0].table == TABLE_HOLDING && plan.req[0].npoints == 2 && plan.req[0].count == 2);
	CHECK(plan.req[1].table == TABLE_INPUT && plan.req[1].npoints == 2 && plan.req[1].count == 2);
	CHECK(plan.req[2].table == TABLE_COIL && plan.req[2].count == 1);
	CHECK(plan.req[3].table == TABLE_DISCRETE && plan.req[3].start == 1);
	CHECK(plan.order[0] == 1 && plan.order[1] == 3);
	CHECK(plan.order[2] == 0 && plan.order[3] == 2);
	CHECK(plan.order[4] == 4 && plan.order[5] == 5);

	/* an unknown table */
	reset();
	add((enum table) 9, 0, VT_U16, -1);
	CHECK(build(125, 8) == -EINVAL);
}

static void test_unsorted(void)
{
	reset();
	add(TABLE_HOLDING, 20, VT_U16, -1);	/* 0 */
	add(TABLE_HOLDING, 5, VT_U32, -1);	/* 1 */
	add(TABLE_HOLDING, 10, VT_U16, -1);	/* 2 */
	add(TABLE_HOLDING, 200, VT_U16, -1);	/* 3 */
	CHECK(build(125, 10) == 2);
	CHECK(plan.order[0] == 1 && plan.order[1] == 2 && plan.order[2] == 0 && plan.order[3] == 3);
	CHECK(plan.req[0].start == 5 && plan.req[0].count == 16 && plan.req[0].npoints == 3);
	CHECK(plan.req[1].start == 200 && plan.req[1].first_point == 3);
}

static void test_shared(void)
{
	/* bools on bits of one register, and the register itself */
	reset();
	add(TABLE_HOLDING, 100, VT_BOOL, 3);	/* 0 */
	add(TABLE_HOLDING, 100, VT_BOOL, 0);	/* 1 */
	add(TABLE_HOLDING, 50, VT_U16, -1);	/* 2 */
	add(TABLE_HOLDING, 100, VT_U16, -1);	/* 3 */
	add(TABLE_HOLDING, 100, VT_BOOL, 15);	/* 4 */
	CHECK(build(125, 0) == 2);
	CHECK(plan.req[1].start == 100 && plan.req[1].count == 1 && plan.req[1].npoints == 4);
	/* ties in profile order */
	CHECK(plan.order[1] == 0 && plan.order[2] == 1 && plan.order[3] == 3 && plan.order[4] == 4);

	/* overlapping: a u16 inside a f32, a u32 inside a u64 */
	reset();
	add(TABLE_INPUT, 10, VT_F32, -1);
	add(TABLE_INPUT, 11, VT_U16, -1);
	add(TABLE_INPUT, 20, VT_U64, -1);
	add(TABLE_INPUT, 21, VT_U32, -1);
	CHECK(build(125, 0) == 2);
	CHECK(plan.req[0].count == 2 && plan.req[0].npoints == 2);
	CHECK(plan.req[1].count == 4 && plan.req[1].npoints == 2);

	/* an overlapping point that does not extend the request passes the limit check */
	reset();
	add(TABLE_HOLDING, 0, VT_F64, -1);
	add(TABLE_HOLDING, 3, VT_U16, -1);
	CHECK(build(4, 0) == 1);
	CHECK(plan.req[0].count == 4);
}

static void test_coils(void)
{
	/* 2000 bits in one read, max_gap counted in bits */
	reset();
	add(TABLE_COIL, 0, VT_BOOL, -1);
	add(TABLE_COIL, 1999, VT_BOOL, -1);
	CHECK(build(10, 2000) == 1);
	CHECK(plan.req[0].count == 2000);
	pts[1].address = 2000;
	CHECK(build(10, 2000) == 2);

	reset();
	add(TABLE_DISCRETE, 0, VT_BOOL, -1);
	add(TABLE_DISCRETE, 9, VT_BOOL, -1);
	CHECK(build(125, 8) == 1);
	CHECK(plan.req[0].count == 10);
	pts[1].address = 10;
	CHECK(build(125, 8) == 2);

	/* max_registers does not limit bit reads */
	reset();
	{
		unsigned a;

		for (a = 0; a < 128; a++)
			add(TABLE_COIL, a * 15, VT_BOOL, -1);
	}
	CHECK(build(1, 14) == 1);
	CHECK(plan.req[0].count == 127 * 15 + 1 && plan.req[0].npoints == 128);
	CHECK(build(1, 13) == 128);
	CHECK(plan.req[127].first_point == 127 && plan.req[127].start == 127 * 15);
}

static void test_full_profile(void)
{
	unsigned a;

	/* CONF_MAX_POINTS points, every one alone: PLAN_MAX_REQUESTS requests */
	reset();
	for (a = 0; a < CONF_MAX_POINTS; a++)
		add(a % 2 ? TABLE_INPUT : TABLE_HOLDING, 1000 - a * 5, a % 3 ? VT_U32 : VT_F64, -1);
	CHECK(build(125, 0) == CONF_MAX_POINTS);
	CHECK(build(125, 9) > 0);
	CHECK(build(7, 4) > 0);
}

int main(void)
{
	test_width();
	test_empty();
	test_adjacent();
	test_gap();
	test_limits();
	test_tables();
	test_unsorted();
	test_shared();
	test_coils();
	test_full_profile();
	return CHECK_DONE();
}
