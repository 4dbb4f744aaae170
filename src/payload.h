/*
 * payload.h: MQTT topics and JSON payloads (the contract in README.md,
 * "MQTT topics and payloads").  Pure: no I/O, no logging.  Every function
 * writes into a caller's struct jbuf, which grows as needed.
 */
#ifndef AGRIGW_PAYLOAD_H
#define AGRIGW_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "queue.h"

struct jbuf {
	char *s;          /* NUL-terminated; owned, free with jbuf_done() */
	size_t len, cap;
	bool failed;      /* an allocation failed; contents are incomplete */
};

void jbuf_reset(struct jbuf *j);
void jbuf_done(struct jbuf *j);
void jbuf_puts(struct jbuf *j, const char *s);
void jbuf_put(struct jbuf *j, const char *s, size_t n);
void jbuf_printf(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jbuf_string(struct jbuf *j, const char *s);      /* a JSON string literal, escaped */
void jbuf_number(struct jbuf *j, double v, int decimals); /* decimals < 0: shortest %.7g */

/* "{prefix}/{site}/{gateway}" plus "/{device}" (when device not NULL) plus "/{leaf}". */
void payload_topic(struct jbuf *j, const struct conf *c, const char *device, const char *leaf);

/* Telemetry of one poll: {"ts":..,"seq":..,"values":{..},"bad":[..]} (+ "historical":true). */
void payload_telemetry(struct jbuf *j, const struct profile *p, const struct event *ev,
		       int64_t ts_ms, uint64_t seq, bool historical);

/* Retained device description: profile, bus, unit, interval and every point. */
void payload_meta(struct jbuf *j, const struct conf *c, const struct device_conf *d);

struct device_health {
	bool online;
	bool known;              /* polled at least once since start */
	int64_t since_ms;        /* wall clock of the last change */
	const char *error;       /* last error, "" when none */
	uint64_t polls, timeouts, exceptions, bad_frames;
};
void payload_device_status(struct jbuf *j, const struct device_health *h);

struct gateway_health {
	bool online;
	const char *version;
	int64_t started_ms;
	unsigned devices, devices_online;
	uint64_t published, queued, dropped, seq;
	bool has_store;
	uint64_t stored, store_dropped, store_errors;
	bool has_uplink;
	const char *uplink_state;
	uint64_t windows_sent, uplink_retries, dead_letters, backlog;
};
void payload_gateway_status(struct jbuf *j, const struct gateway_health *g);

/*
 * A telemetry payload taken before the clock was trusted, made final:
 * with 'corrected' its "ts" becomes 'ts' and "clock":"corrected" is added,
 * else "clock":"unsynced" is added and "ts" stays.  Returns 0, or -EINVAL
 * when 'in' is not a payload of payload_telemetry() (copied unchanged).
 */
int payload_retime(struct jbuf *j, const char *in, size_t len, bool corrected, int64_t ts);

/*
 * The values of a telemetry payload back into an event of profile 'p'
 * (points by name; absent or listed under "bad" ones get VAL_NO_REPLY).
 * Parsed with jansson.  Returns 0 or -EINVAL.
 */
int payload_parse_values(const struct profile *p, const char *json, size_t len, struct event *ev);

/* The last will: {"online":false}. */
void payload_gateway_offline(struct jbuf *j);

#endif
