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
#include "spool.h"

struct mqtt;

/* Called from mqtt_tick() right after the broker accepted the connection,
 * so the core can publish retained state (gateway status, device meta/status). */
typedef void (*mqtt_connect_cb)(void *arg);

struct mqtt_stats {
	uint64_t acked;        /* publishes confirmed (PUBACK, or sent for QoS 0) */
	uint64_t dropped;      /* telemetry dropped: memory full and no working store */
	size_t queued;         /* telemetry held in memory, not yet acknowledged */
	uint64_t connects;     /* successful connections */
	bool connected;
};

/*
 * Reads the password file (if any).  Returns NULL and logs the cause when
 * that fails or memory runs out.  'c' and 'sp' must outlive the object;
 * telemetry is taken from 'sp'.
 */
struct mqtt *mqtt_new(const struct conf *c, struct spool *sp, mqtt_connect_cb cb, void *arg);
void mqtt_free(struct mqtt *m);

/* Publish what the spool has ready, as far as the in-flight window allows.
 * Call after adding to the spool and after a store commit. */
void mqtt_pump(struct mqtt *m);

bool mqtt_connected(const struct mqtt *m);

/* With TLS, no connection is tried while the clock is not trusted
 * (certificates cannot be checked against a wrong date); said once. */
void mqtt_set_clock_ok(struct mqtt *m, bool ok);

/* The broker is known to be away: a connection broke or an attempt failed,
 * and none has succeeded since (the first attempt at start does not count). */
bool mqtt_away(const struct mqtt *m);

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
