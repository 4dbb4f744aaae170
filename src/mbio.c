/*
 * mbio.c: the one place that knows how libmodbus reads each table and how
 * it reports the ways a reply can go wrong (its errno values above
 * MODBUS_ENOBASE).  Kept out of bus.c so the field tools read exactly as
 * the daemon does.
 */
#include <errno.h>

#include "mbio.h"

int mbio_read(modbus_t *ctx, enum table t, int addr, int count, uint16_t *out)
{
	uint8_t bits[MODBUS_MAX_READ_BITS];
	int rc;

	switch (t) {
	case TABLE_HOLDING:
		return modbus_read_registers(ctx, addr, count, out);
	case TABLE_INPUT:
		return modbus_read_input_registers(ctx, addr, count, out);
	case TABLE_COIL:
	case TABLE_DISCRETE:
		if (count > MODBUS_MAX_READ_BITS) {
			errno = EINVAL;
			return -1;
		}
		rc = t == TABLE_COIL ? modbus_read_bits(ctx, addr, count, bits) : modbus_read_input_bits(ctx, addr, count, bits);
		for (int i = 0; i < rc; i++)
			out[i] = bits[i];
		return rc;
	}
	errno = EINVAL;
	return -1;
}

bool mbio_is_exception(int e)
{
	return e >= EMBXILFUN && e <= EMBXGTAR;
}

bool mbio_is_bad_frame(int e)
{
	return e >= EMBBADCRC && e <= EMBBADSLAVE;
}
