/*
 * bus.h: one Modbus bus (a serial port, or one Modbus TCP endpoint) and the
 * worker thread that polls its devices on their schedules.  The worker owns
 * its modbus_t; it reads the (immutable) struct conf and talks to the rest of
 * the gateway only by pushing events onto the queue.  bus_poll_device_once()
 * runs the worker's poll of one device synchronously, for the field tools.
 */
#ifndef AGRIGW_BUS_H
#define AGRIGW_BUS_H

#include <stdbool.h>

#include "conf.h"
#include "queue.h"

struct bus;

/* 'c' and 'q' must outlive the bus.  Returns NULL on allocation failure. */
struct bus *bus_new(const struct conf *c, int bus_index, struct queue *q);

/* Start the worker thread.  0 or negative errno.  Main thread. */
int bus_start(struct bus *b);

/* Ask the worker to stop and join it (waits for an ongoing request to end). */
void bus_stop(struct bus *b);

/*
 * Reload: when bus 'bus_index' of the new configuration 'c' is the same bus
 * with the same devices polled the same way, the stopped bus takes 'c' (its
 * port stays open and its schedules run on) and true is returned; else
 * false and nothing changes.  Main thread, with the worker stopped.
 */
bool bus_rebind(struct bus *b, const struct conf *c, int bus_index);

/* Stops if needed, closes the port, frees.  NULL is a no-op. */
void bus_free(struct bus *b);

/*
 * Poll enabled device 'device' once, synchronously, with the worker's code:
 * open its bus (exclusively, as the worker does), read and decode its points
 * as planned, close.  For `agrigw poll --once`; any thread, no queue.
 * Returns 1 when the device answered (at least one request), 0 when it did
 * not ('err' says why: "no response" or the Modbus error), or a negative
 * errno when the bus could not be opened or the device is not enabled ('err'
 * says why).  When the return is >= 0, *ret_ev is the reading (points not
 * read are VAL_NO_REPLY) and the caller frees it; else *ret_ev is NULL.
 */
int bus_poll_device_once(const struct conf *c, int device, struct event **ret_ev, char *err, size_t errlen);

#endif
