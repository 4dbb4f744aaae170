/* test_queue.c: the bounded FIFO between bus workers and the core. */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <stdlib.h>

#include "check.h"
#include "queue.h"

#define PER_THREAD 20000

struct producer {
	struct queue *q;
	int id;
};

static void *producer(void *arg)
{
	struct producer *pr = arg;
	struct queue *q = pr->q;

	for (int i = 0; i < PER_THREAD; i++) {
		struct event *ev = event_new(EV_READING, 1);
		ev->device = i;
		ev->bus = pr->id;
		while (queue_push(q, ev) < 0)
			;    /* full: the consumer catches up */
	}
	return NULL;
}

int main(void)
{
	struct queue *q = queue_new(4);
	struct event *ev;
	struct pollfd p;

	CHECK(q != NULL);
	CHECK(queue_pop(q) == NULL);
	p = (struct pollfd) { .fd = queue_fd(q), .events = POLLIN };
	CHECK(poll(&p, 1, 0) == 0);
	for (int i = 0; i < 4; i++) {
		ev = event_new(EV_READING, 2);
		ev->device = i;
		CHECK(queue_push(q, ev) == 0);
	}
	CHECK(poll(&p, 1, 0) == 1);         /* woken once it went non-empty */
	ev = event_new(EV_BUS_STATE, 0);
	CHECK(queue_push(q, ev) == -ENOBUFS);   /* full: refused, not blocked */
	free(ev);
	CHECK(queue_dropped(q) == 1);
	CHECK(queue_len(q) == 4);
	queue_ack(q);
	for (int i = 0; i < 4; i++) {
		ev = queue_pop(q);
		CHECK(ev && ev->device == i && ev->nvalues == 2);
		free(ev);
	}
	CHECK(queue_pop(q) == NULL);
	CHECK(poll(&p, 1, 0) == 0);
	queue_free(q);

	/* two producers, one consumer: everything arrives, each producer in order */
	q = queue_new(64);
	pthread_t t[2];
	int last[2] = { -1, -1 }, got = 0, order_ok = 1;
	struct producer prs[2] = { { q, 0 }, { q, 1 } };
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, producer, &prs[i]);
	while (got < 2 * PER_THREAD) {
		p = (struct pollfd) { .fd = queue_fd(q), .events = POLLIN };
		poll(&p, 1, 100);
		queue_ack(q);
		while ((ev = queue_pop(q))) {
			/* each producer's events arrive in the order it pushed them */
			if (ev->device != last[ev->bus] + 1)
				order_ok = 0;
			last[ev->bus] = ev->device;
			got++;
			free(ev);
		}
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(got == 2 * PER_THREAD);
	CHECK(order_ok);
	queue_free(q);
	return CHECK_DONE();
}
