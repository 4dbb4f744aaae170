/*
 * decode.c: raw Modbus registers to numbers, and numbers to scaled values.
 *
 * The caller hands over the registers r0..r(n-1) of one value in wire order;
 * each register travelled as two big-endian bytes and libmodbus has already
 * made it a host uint16_t.  Naming the bytes of the value A (most
 * significant), B, C, D, a point's word order means:
 *
 *   ABCD  big endian: r0 is the most significant word, bytes as they are.
 *         32 bit: r0<<16 | r1.  64 bit: r0<<48 | r1<<32 | r2<<16 | r3.
 *   CDAB  word swapped: the words in reverse order (least significant word
 *         first), bytes as they are.  32 bit: r1<<16 | r0.
 *         64 bit: r3<<48 | r2<<32 | r1<<16 | r0.
 *   BADC  byte swapped: the two bytes of every register exchanged, the
 *         words in order (ABCD after swapping each register).
 *   DCBA  little endian: bytes exchanged in every register and the words
 *         reversed (CDAB after swapping each register).
 *
 * A 16-bit value has one word, so only the byte swap matters: ABCD and CDAB
 * take the register as it is, BADC and DCBA exchange its two bytes.  A bool
 * on a register table is bit 'bit' (0 = least significant) of the register
 * after that byte swap, or the whole register being nonzero when bit < 0.
 * On coil and discrete tables the caller puts the bit (0 or 1) in regs[0]
 * and decode_point() reads it as 0/1 whatever the type and order say.
 *
 * Left to others: reading the wire and finding each point's registers in a
 * request (the poller, with plan.h), rounding to 'decimals' and publishing.
 * Which type/order combinations a profile may use is checked by the config;
 * here every valid enum pair works and anything else is -EINVAL.
 *
 * The design choice: every type goes through one uint64_t assembled by word
 * and byte order, and is then reinterpreted.  Signed types and floats are
 * reinterpreted by memcpy() into the exact-width type (which C requires to
 * be two's complement without padding) rather than by casts or unions, so
 * there is no implementation-defined conversion and nothing for
 * -fsanitize=undefined to object to; shifts are done on uint64_t only.  The
 * result is a double because scaling, range checks and the JSON output all
 * want one: u64/s64 values above 2^53 lose precision, decode_bits() keeps
 * the exact pattern for diagnostics.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "decode.h"

_Static_assert(sizeof(float) == sizeof(uint32_t), "float must be 32 bits");
_Static_assert(sizeof(double) == sizeof(uint64_t), "double must be 64 bits");

static int valid_type(enum vtype type)
{
	return (unsigned) type <= (unsigned) VT_BOOL;
}

static int valid_order(enum worder order)
{
	return (unsigned) order <= (unsigned) WO_DCBA;
}

static uint64_t swap16(uint16_t r)
{
	return (uint64_t) (uint16_t) ((r >> 8) | ((r & 0xffu) << 8));
}

/* The 'width' registers as one unsigned integer, most significant word
 * first.  Type and order must have been checked. */
static uint64_t assemble(const uint16_t *regs, int width, enum worder order)
{
	int byteswap = order == WO_BADC || order == WO_DCBA;
	int reverse = order == WO_CDAB || order == WO_DCBA;
	uint64_t v = 0;
	int i;

	for (i = 0; i < width; i++) {
		uint16_t r = regs[reverse ? width - 1 - i : i];

		v = (v << 16) | (byteswap ? swap16(r) : (uint64_t) r);
	}
	return v;
}

uint64_t decode_bits(const uint16_t *regs, enum vtype type, enum worder order)
{
	if (regs == NULL || !valid_type(type) || !valid_order(order))
		return 0;
	return assemble(regs, conf_vtype_width(type), order);
}

int decode_raw(const uint16_t *regs, enum vtype type, enum worder order, int bit, double *ret_raw)
{
	uint64_t bits;
	int16_t s16;
	int32_t s32;
	int64_t s64;
	uint16_t u16;
	uint32_t u32;
	float f;
	double d;

	if (regs == NULL || ret_raw == NULL || !valid_type(type) || !valid_order(order))
		return -EINVAL;
	if (type == VT_BOOL && bit > 15)
		return -EINVAL;
	bits = assemble(regs, conf_vtype_width(type), order);

	switch (type) {
	case VT_U16:
	case VT_U32:
	case VT_U64:
		*ret_raw = (double) bits;
		break;
	case VT_S16:
		u16 = (uint16_t) bits;
		memcpy(&s16, &u16, sizeof(s16));
		*ret_raw = s16;
		break;
	case VT_S32:
		u32 = (uint32_t) bits;
		memcpy(&s32, &u32, sizeof(s32));
		*ret_raw = s32;
		break;
	case VT_S64:
		memcpy(&s64, &bits, sizeof(s64));
		*ret_raw = (double) s64;
		break;
	case VT_F32:
		u32 = (uint32_t) bits;
		memcpy(&f, &u32, sizeof(f));
		*ret_raw = f;
		break;
	case VT_F64:
		memcpy(&d, &bits, sizeof(d));
		*ret_raw = d;
		break;
	case VT_BOOL:
		if (bit < 0)
			*ret_raw = bits != 0;
		else
			*ret_raw = (double) ((bits >> bit) & 1u);
		break;
	}
	return 0;
}

enum value_state decode_scale(const struct point *p, double raw, double *ret_value)
{
	double v = raw * p->scale + p->offset;

	*ret_value = v;
	if (!isfinite(raw) || !isfinite(v))
		return VAL_NAN;
	if ((p->has_min && v < p->min) || (p->has_max && v > p->max))
		return VAL_RANGE;
	return VAL_OK;
}

/*
 * A point whose type/order cannot be decoded (only a config that skipped its
 * checks can produce one) comes out as VAL_NAN with a NaN value: the
 * value_state set has no better word for "no number".
 */
enum value_state decode_point(const struct point *p, const uint16_t *regs, double *ret_value)
{
	double raw;

	if (p == NULL || regs == NULL) {
		*ret_value = NAN;
		return VAL_NAN;
	}
	if (p->table == TABLE_COIL || p->table == TABLE_DISCRETE)
		raw = regs[0] != 0;
	else if (decode_raw(regs, p->type, p->order, p->bit, &raw) < 0) {
		*ret_value = NAN;
		return VAL_NAN;
	}
	return decode_scale(p, raw, ret_value);
}

const char *decode_state_name(enum value_state s)
{
	static const char *const names[] = { "ok", "nan", "range", "exception", "no_reply" };

	return (unsigned) s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}
