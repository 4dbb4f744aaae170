/*
 * queue.h: the one place threads meet.  Bus workers push events (readings,
 * device and bus state changes); the core thread pops them.  Bounded FIFO of
 * pointers with a mutex inside; an eventfd wakes the core when the queue goes
 * from empty to non-empty, and again when it becomes half full.
 */
#ifndef AGRIGW_QUEUE_H
#define AGRIGW_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "decode.h"

enum event_kind {
	EV_READING,       /* a poll of a device that got at least one answer */
	EV_DEVICE_STATE,  /* device went offline or came back */
	EV_BUS_STATE,     /* bus (serial port, TCP connection) down or up */
};

struct event_value {
	double value;            /* scaled value (meaningful when state is VAL_OK) */
	uint64_t raw;            /* raw bits as read, for diagnostics */
	uint8_t state;           /* enum value_state */
};

/* Ownership: allocated by the producer with event_new(), freed by the consumer with free(). */
struct event {
	enum event_kind kind;
	int device;              /* index into conf->devices, or -1 */
	int bus;                 /* index into conf->buses */
	int64_t mono_ms;         /* CLOCK_MONOTONIC when the poll finished */
	int online;              /* EV_*_STATE: 1 up/online, 0 down/offline */
	char error[128];         /* EV_*_STATE when going down: the cause */
	unsigned failures;       /* EV_DEVICE_STATE: failed polls in a row before this change */
	/* per-device counters, cumulative since start (EV_READING and EV_DEVICE_STATE) */
	uint64_t polls, timeouts, exceptions, bad_frames;
	size_t nvalues;
	struct event_value values[]; /* one per profile point, in profile order */
};

struct event *event_new(enum event_kind kind, size_t nvalues);

struct queue;

/* Capacity in events; returns NULL on allocation or eventfd failure (errno set). */
struct queue *queue_new(size_t capacity);
void queue_free(struct queue *q);          /* frees remaining events too */

/* Any thread.  Returns 0, or -ENOBUFS when full (the event is not taken: caller frees and counts). */
int queue_push(struct queue *q, struct event *ev);

/* Core thread.  Returns the oldest event or NULL when empty. */
struct event *queue_pop(struct queue *q);

/* The fd to poll() for POLLIN; call queue_ack() before draining. */
int queue_fd(const struct queue *q);
void queue_ack(struct queue *q);

size_t queue_len(struct queue *q);
uint64_t queue_dropped(struct queue *q);

#endif
