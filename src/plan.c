/*
 * plan.c: a profile's points to Modbus read requests.
 *
 * The points are put in (table, address) order, ties in profile order, and
 * walked once: a point joins the open request when it is on the same table,
 * the registers between the end of the request and the point's start number
 * at most max_gap (overlapping and duplicate points, such as bools on
 * different bits of one register, have no gap and share the request), and
 * the request stays within max_registers (clamped to 1..125).  On coil and
 * discrete tables the unit is a bit, the limit a fixed 2000 bits
 * (MODBUS_MAX_READ_BITS) and max_gap counts bits.  Each request names its
 * points as a slice of plan.order, so the poller finds every point's
 * registers at address - start within the reply.
 *
 * Left to others: sending the requests, splitting a request after an
 * exception (the poller sets plan_request.split), decoding (decode.h) and
 * checking that profiles make sense (conf.c).  A point that cannot be read
 * at all, because it is wider than max_registers or runs past address 65535,
 * makes the whole plan fail with -EINVAL rather than being left out quietly.
 *
 * The design choice: the merge is greedy, in address order.  That is not
 * always the fewest requests conceivable, but it is predictable: a
 * technician can work out from the profile which reads go on the wire, and
 * reading a few unused registers in a gap is cheaper than another round trip
 * on a 9600-baud bus.  With at most CONF_MAX_POINTS points the sort is an
 * insertion sort: stable, no allocation, no qsort() comparator state.
 */
#include <errno.h>
#include <string.h>

#include "plan.h"

#define PLAN_MAX_REG_COUNT 125   /* MODBUS_MAX_READ_REGISTERS */
#define PLAN_MAX_BIT_COUNT 2000  /* MODBUS_MAX_READ_BITS */
#define PLAN_ADDR_SPACE 65536L

static int is_bit_table(enum table t)
{
	return t == TABLE_COIL || t == TABLE_DISCRETE;
}

static int valid_table(enum table t)
{
	return (unsigned) t <= (unsigned) TABLE_DISCRETE;
}

int plan_point_width(const struct point *p)
{
	if (is_bit_table(p->table))
		return 1;
	return conf_vtype_width(p->type);
}

/* a before b in the plan: by table, then address */
static int point_before(const struct point *a, const struct point *b)
{
	if (a->table != b->table)
		return a->table < b->table;
	return a->address < b->address;
}

static void sort_order(const struct point *points, uint16_t *order, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		order[i] = (uint16_t) i;
	for (i = 1; i < n; i++) {
		uint16_t cur = order[i];

		for (j = i; j > 0 && point_before(&points[cur], &points[order[j - 1]]); j--)
			order[j] = order[j - 1];
		order[j] = cur;
	}
}

int plan_build(const struct point *points, size_t npoints, int max_registers, int max_gap, struct plan *ret_plan)
{
	struct plan_request *rq = NULL;
	long end = 0;            /* one past the last register (bit) of *rq */
	size_t i;

	if (ret_plan == NULL)
		return -EINVAL;
	ret_plan->nreq = 0;
	ret_plan->npoints = 0;
	if (npoints > CONF_MAX_POINTS || (points == NULL && npoints > 0))
		return -EINVAL;
	if (max_registers < 1)
		max_registers = 1;
	if (max_registers > PLAN_MAX_REG_COUNT)
		max_registers = PLAN_MAX_REG_COUNT;
	if (max_gap < 0)
		max_gap = 0;

	for (i = 0; i < npoints; i++) {
		const struct point *p = &points[i];

		if (!valid_table(p->table) || p->address + (long) plan_point_width(p) > PLAN_ADDR_SPACE)
			return -EINVAL;
		if (!is_bit_table(p->table) && plan_point_width(p) > max_registers)
			return -EINVAL;
	}

	sort_order(points, ret_plan->order, npoints);

	for (i = 0; i < npoints; i++) {
		const struct point *p = &points[ret_plan->order[i]];
		long limit = is_bit_table(p->table) ? PLAN_MAX_BIT_COUNT : max_registers;
		long pend = p->address + (long) plan_point_width(p);

		if (rq != NULL && rq->table == p->table &&
		    p->address - end <= max_gap &&
		    (pend > end ? pend : end) - rq->start <= limit) {
			if (pend > end)
				end = pend;
			rq->count = (uint16_t) (end - rq->start);
			rq->npoints++;
			continue;
		}
		rq = &ret_plan->req[ret_plan->nreq++];
		memset(rq, 0, sizeof(*rq));
		rq->table = p->table;
		rq->start = p->address;
		end = pend;
		rq->count = (uint16_t) (end - rq->start);
		rq->first_point = (uint16_t) i;
		rq->npoints = 1;
	}
	ret_plan->npoints = npoints;
	return (int) ret_plan->nreq;
}
