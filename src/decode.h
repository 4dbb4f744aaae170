/*
 * decode.h: raw Modbus registers and bits to scaled values.  Pure: no I/O,
 * no logging, no allocation; safe from any thread.
 */
#ifndef AGRIGW_DECODE_H
#define AGRIGW_DECODE_H

#include <stdint.h>
#include "conf.h"

enum value_state {
	VAL_OK = 0,
	VAL_NAN,         /* NaN or infinity after decoding or scaling */
	VAL_RANGE,       /* outside the point's valid min/max */
	VAL_EXCEPTION,   /* the device answered this point's read with an exception */
	VAL_NO_REPLY,    /* the read of this point failed (timeout, bad frame) */
};

/*
 * Decode the raw registers of one value.  'regs' holds conf_vtype_width(type)
 * registers as read from the wire (register order), for bool on a register
 * table one register tested at 'bit'.  Writes the unscaled number to
 * *ret_raw (integer types exactly as far as a double can hold them).
 * Returns 0, or -EINVAL for a type/order combination that does not exist.
 */
int decode_raw(const uint16_t *regs, enum vtype type, enum worder order, int bit, double *ret_raw);

/* Integer view of the same registers (u64 bits as read after reordering),
 * used to show raw values to technicians. */
uint64_t decode_bits(const uint16_t *regs, enum vtype type, enum worder order);

/* Apply scale, offset and the valid range; returns VAL_OK, VAL_NAN or VAL_RANGE
 * and writes the scaled value to *ret_value (always, even when bad). */
enum value_state decode_scale(const struct point *p, double raw, double *ret_value);

/* Both steps for a point on a register table; 'regs' starts at the point's address. */
enum value_state decode_point(const struct point *p, const uint16_t *regs, double *ret_value);

const char *decode_state_name(enum value_state s);

#endif
