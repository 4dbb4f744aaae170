/*
 * bus.h: one Modbus bus (a serial port, or one Modbus TCP endpoint) and the
 * worker thread that polls its devices on their schedules.  The worker owns
 * its modbus_t; it reads the (immutable) struct conf and talks to the rest of
 * the gateway only by pushing events onto the queue.
 */
#ifndef AGRIGW_BUS_H
#define AGRIGW_BUS_H

#include "conf.h"
#include "queue.h"

struct bus;

/* 'c' and 'q' must outlive the bus.  Returns NULL on allocation failure. */
struct bus *bus_new(const struct conf *c, int bus_index, struct queue *q);

/* Start the worker thread.  0 or negative errno.  Main thread. */
int bus_start(struct bus *b);

/* Ask the worker to stop and join it (waits for an ongoing request to end). */
void bus_stop(struct bus *b);

/* Stops if needed, closes the port, frees.  NULL is a no-op. */
void bus_free(struct bus *b);

#endif
