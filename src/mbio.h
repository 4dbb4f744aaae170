/*
 * mbio.h: small libmodbus helpers shared by the bus worker and the field
 * tools: one read call for all four tables, and libmodbus' errno values
 * sorted into the kinds the callers treat differently.  Any thread.
 */
#ifndef AGRIGW_MBIO_H
#define AGRIGW_MBIO_H

#include <stdbool.h>
#include <stdint.h>

#include <modbus.h>

#include "conf.h"

/* Read 'count' registers, or bits stored one per uint16_t.  libmodbus'
 * convention: the count read, or -1 with errno set. */
int mbio_read(modbus_t *ctx, enum table t, int addr, int count, uint16_t *out);

/* The device answered with a Modbus exception (it is there). */
bool mbio_is_exception(int e);

/* A reply arrived but was unusable: CRC, length, unit id, garbage. */
bool mbio_is_bad_frame(int e);

#endif
