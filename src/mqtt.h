/*
 * mqtt.h: the broker connection and the outbox of messages not yet
 * acknowledged.  Driven from the core thread only: the core polls
 * mqtt_fd()/mqtt_events(), calls mqtt_io() with what poll() returned and
 * mqtt_tick() on every pass.  No threads inside.
 */
#ifndef AGRIGW_MQTT_H
#define AGRIGW_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct mqtt;

/* Called from mqtt_tick() right after the broker accepted the connection,
 * so the core can publish retained state (gateway status, device meta/status). */
typedef void (*mqtt_connect_cb)(void *arg);

struct mqtt_stats {
	uint64_t acked;        /* publishes confirmed (PUBACK, or sent for QoS 0) */
	uint64_t dropped;      /* oldest messages dropped because the outbox was full */
	size_t queued;         /* messages in the outbox (unsent plus in flight) */
	uint64_t connects;     /* successful connections */
	bool connected;
};

/*
 * Reads the password file (if any).  Returns NULL and logs the cause when
 * that fails or memory runs out.  'c' must outlive the object.
 */
struct mqtt *mqtt_new(const struct conf *c, mqtt_connect_cb cb, void *arg);
void mqtt_free(struct mqtt *m);

/*
 * Queue a message; it goes out in order, as soon as the broker is there and
 * the in-flight window allows, and leaves the outbox on PUBACK.  When the
 * outbox is full the oldest unsent message is dropped (counted, logged once
 * per episode).  Returns 0 or -ENOMEM.
 */
int mqtt_enqueue(struct mqtt *m, const char *topic, const char *payload, size_t len, bool retain);

/* Publish now if connected, outside the outbox (retained state that is
 * republished on every connect anyway).  Returns 0 or -ENOTCONN. */
int mqtt_publish_direct(struct mqtt *m, const char *topic, const char *payload, size_t len, bool retain);

int mqtt_fd(struct mqtt *m);          /* -1 when there is no socket */
short mqtt_events(struct mqtt *m);     /* POLLIN, plus POLLOUT when output is pending */
void mqtt_io(struct mqtt *m, short revents);
/* Timers: keepalive, reconnect, outbox pump.  Returns ms until it wants to run again. */
int64_t mqtt_tick(struct mqtt *m, int64_t now);

/* Graceful end: publish 'last' retained (the offline status) and disconnect,
 * waiting at most 'wait_ms' for the outbox to drain. */
void mqtt_shutdown(struct mqtt *m, const char *status_topic, const char *last, int wait_ms);

void mqtt_get_stats(const struct mqtt *m, struct mqtt_stats *ret);

/* After a reload whose mqtt and gateway settings are unchanged: point at the new conf. */
void mqtt_rebind(struct mqtt *m, const struct conf *c);

#endif
