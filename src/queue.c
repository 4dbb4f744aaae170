/*
 * queue.c: the hand-off from bus workers to the core thread.
 *
 * A bounded ring of event pointers under one mutex; the eventfd is written
 * only when the ring goes from empty to non-empty, so a busy core is not
 * woken once per event, and again when it fills to half its capacity, so a
 * core that lets events gather (loop.c takes them right before its group
 * commit) is woken before the ring overflows.  A full ring refuses the event rather than blocking
 * the worker: a worker must keep its bus schedule, and a core that cannot
 * drain 4096 events is stuck anyway (the watchdog restarts it).  Refusals
 * are counted here and logged by the caller.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "queue.h"

struct queue {
	pthread_mutex_t lock;
	struct event **ring;
	size_t cap, head, len;
	uint64_t dropped;
	int efd;
};

struct event *event_new(enum event_kind kind, size_t nvalues)
{
	struct event *ev = calloc(1, sizeof(*ev) + nvalues * sizeof(ev->values[0]));

	if (!ev)
		return NULL;
	ev->kind = kind;
	ev->device = -1;
	ev->nvalues = nvalues;
	return ev;
}

struct queue *queue_new(size_t capacity)
{
	struct queue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->efd = -1;
	q->cap = capacity ? capacity : 1;
	q->ring = calloc(q->cap, sizeof(*q->ring));
	if (!q->ring)
		goto fail;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		goto fail;
	pthread_mutex_init(&q->lock, NULL);
	return q;
fail:
	free(q->ring);
	free(q);
	return NULL;
}

void queue_free(struct queue *q)
{
	struct event *ev;

	if (!q)
		return;
	while ((ev = queue_pop(q)))
		free(ev);
	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}

int queue_push(struct queue *q, struct event *ev)
{
	int wake;

	pthread_mutex_lock(&q->lock);
	if (q->len == q->cap) {
		q->dropped++;
		pthread_mutex_unlock(&q->lock);
		return -ENOBUFS;
	}
	q->ring[(q->head + q->len) % q->cap] = ev;
	q->len++;
	wake = q->len == 1 || q->len == (q->cap + 1) / 2;
	pthread_mutex_unlock(&q->lock);
	if (wake) {
		uint64_t one = 1;
		(void) !write(q->efd, &one, sizeof(one));
	}
	return 0;
}

struct event *queue_pop(struct queue *q)
{
	struct event *ev = NULL;

	pthread_mutex_lock(&q->lock);
	if (q->len) {
		ev = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	pthread_mutex_unlock(&q->lock);
	return ev;
}

int queue_fd(const struct queue *q)
{
	return q->efd;
}

void queue_ack(struct queue *q)
{
	uint64_t v;

	(void) !read(q->efd, &v, sizeof(v));
}

size_t queue_len(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->len;
	pthread_mutex_unlock(&q->lock);
	return n;
}

uint64_t queue_dropped(struct queue *q)
{
	uint64_t n;

	pthread_mutex_lock(&q->lock);
	n = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return n;
}
