/*
 * plan.h: turn a profile's points into as few Modbus requests as possible.
 * Pure: no I/O, no logging.  Points on the same table are merged when they are
 * adjacent or the gap between them is at most 'max_gap' registers (bits for
 * coil/discrete tables), never above 'max_registers' per request (registers;
 * for bit tables the limit is 2000 bits, MODBUS_MAX_READ_BITS).
 */
#ifndef AGRIGW_PLAN_H
#define AGRIGW_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "conf.h"

#define PLAN_MAX_REQUESTS CONF_MAX_POINTS

struct plan_request {
	enum table table;
	uint16_t start;
	uint16_t count;          /* registers or bits */
	uint16_t first_point;    /* index into struct plan.order */
	uint16_t npoints;
	bool split;              /* set by the poller after an exception: read each point alone */
};

struct plan {
	struct plan_request req[PLAN_MAX_REQUESTS];
	size_t nreq;
	/* point indices (into the profile) sorted by table then address; each
	 * request covers order[first_point .. first_point+npoints-1] */
	uint16_t order[CONF_MAX_POINTS];
	size_t npoints;
};

/*
 * Build the plan for 'npoints' points.  'max_registers' is clamped to
 * 1..125.  Returns the number of requests (>= 0), or -EINVAL when a point
 * cannot be read at all (wider than max_registers).
 */
int plan_build(const struct point *points, size_t npoints, int max_registers, int max_gap, struct plan *ret_plan);

/* Registers (or bits) point 'p' occupies on the wire. */
int plan_point_width(const struct point *p);

#endif
