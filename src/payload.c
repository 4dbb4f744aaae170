/*
 * payload.c: the JSON that leaves the gateway on MQTT.
 *
 * Payloads are written with a small emitter instead of building a jansson
 * tree per message: the telemetry path runs for every poll of every device,
 * and an emitter that appends to one reused buffer costs no allocation per
 * message.  It only writes JSON; everything the gateway parses goes through
 * jansson, and the unit tests parse every payload back with it.
 *
 * Numbers are printed with the point's resolution (decimals, derived from
 * its scale) so 621 * 0.01 goes out as 6.21, not 6.2100000000000002.
 * They are formatted here with integer arithmetic rather than by printf,
 * whose exact multi-precision conversion was half of the daemon's
 * instructions under load (bench/): the value is scaled by a power of ten,
 * rounded to an integer and its digits written.  That equals what "%.*f"
 * and "%.7g" print except when the scaled value lies within rounding error
 * of a half, where the exact binary value decides; those few go to printf,
 * so the output is byte for byte what printf gives.
 */
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "payload.h"

static bool reserve(struct jbuf *j, size_t extra)
{
	size_t want = j->len + extra + 1;
	char *n;

	if (j->failed)
		return false;
	if (want <= j->cap)
		return true;
	size_t cap = j->cap ? j->cap : 256;
	while (cap < want)
		cap *= 2;
	n = realloc(j->s, cap);
	if (!n) {
		j->failed = true;
		return false;
	}
	j->s = n;
	j->cap = cap;
	return true;
}

void jbuf_reset(struct jbuf *j)
{
	j->len = 0;
	j->failed = false;
	if (j->s)
		j->s[0] = '\0';
}

void jbuf_done(struct jbuf *j)
{
	free(j->s);
	memset(j, 0, sizeof(*j));
}

void jbuf_put(struct jbuf *j, const char *s, size_t n)
{
	if (!reserve(j, n))
		return;
	memcpy(j->s + j->len, s, n);
	j->len += n;
	j->s[j->len] = '\0';
}

/* jbuf_put() with its common case inline, for the per-reading code below. */
static inline void put(struct jbuf *j, const char *s, size_t n)
{
	if (j->len + n < j->cap && !j->failed) {
		memcpy(j->s + j->len, s, n);
		j->len += n;
		j->s[j->len] = '\0';
	} else {
		jbuf_put(j, s, n);
	}
}

void jbuf_puts(struct jbuf *j, const char *s)
{
	put(j, s, strlen(s));
}

void jbuf_printf(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!reserve(j, 64))
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->s + j->len, j->cap - j->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		j->failed = true;
		return;
	}
	if ((size_t) n >= j->cap - j->len) {
		if (!reserve(j, (size_t) n))
			return;
		va_start(ap, fmt);
		vsnprintf(j->s + j->len, j->cap - j->len, fmt, ap);
		va_end(ap);
	}
	j->len += (size_t) n;
}

void jbuf_string(struct jbuf *j, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	put(j, "\"", 1);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
		const unsigned char *run = p;

		while (*p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			put(j, (const char *) run, (size_t) (p - run));
		if (!*p)
			break;
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char) *p };
			put(j, e, 2);
		} else {
			char e[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
			put(j, e, 6);
		}
	}
	put(j, "\"", 1);
}

/* Powers of ten up to 10^22 are exact doubles. */
static const double pow10_exact[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
};

/*
 * Round |x| (the value scaled by 10^d) to the nearest integer, as printf
 * rounds the exact value.  The scaling was one multiplication, so x is off
 * the exact product by at most half an ulp; when x lies that close (with a
 * wide margin) to a half, or is too big for exact integer arithmetic, the
 * answer is false and printf decides.
 */
static bool round_scaled(double x, uint64_t *ret)
{
	double a = fabs(x), f;

	if (!(a < 1e15))
		return false;
	f = a - floor(a);                      /* exact below 2^52 */
	if (fabs(f - 0.5) <= 1e-9 + a * 1e-15)
		return false;
	*ret = (uint64_t) floor(a + 0.5);      /* exact: a + 0.5 is representable below 2^52 */
	return true;
}

/* n with a decimal point 'd' digits from the right ("0.05" for 5, 2), ending
 * at 'end'; returns where it starts (at most 24 bytes before 'end'). */
static char *fmt_fixed(char *end, bool neg, uint64_t n, int d)
{
	char *p = end;
	int k = 0;

	do {
		*--p = (char) ('0' + n % 10);
		n /= 10;
		if (++k == d)
			*--p = '.';
	} while (n || k < d);
	if (k == d)
		*--p = '0';                    /* "0.xx" */
	if (neg)
		*--p = '-';
	return p;
}

/* A whole number, as "%lld" or "%llu" print it. */
static void put_int(struct jbuf *j, bool neg, uint64_t n)
{
	char buf[24], *p = fmt_fixed(buf + sizeof(buf), neg, n, 0);

	put(j, p, (size_t) (buf + sizeof(buf) - p));
}

/* "%.*f" for 0 <= decimals <= 15 (with jbuf_number's -0 rule); false: use printf. */
static bool fixed_fast(struct jbuf *j, double v, int decimals)
{
	char buf[40], *p;
	uint64_t n;

	if (decimals > 15 || !round_scaled(v * pow10_exact[decimals], &n))
		return false;
	/* what rounds to zero prints as zero, without a sign */
	p = fmt_fixed(buf + sizeof(buf), v < 0 && n != 0, n, decimals);
	put(j, p, (size_t) (buf + sizeof(buf) - p));
	return true;
}

/* "%.7g" for values whose decimal exponent is -4..6 (printf's fixed-point
 * range for 7 significant digits); false: use printf. */
static bool g7_fast(struct jbuf *j, double v)
{
	double a = fabs(v), a4 = a * 1e4;
	char buf[40], *p, *end = buf + sizeof(buf);
	uint64_t n;
	int e, d;

	if (v == 0.0) {
		put(j, "0", 1);
		return true;
	}
	if (!(a >= 1e-4 && a < 1e7))
		return false;
	/* the exponent estimated from a, checked below on the rounded digits */
	for (e = 6; e > -4 && a4 < pow10_exact[e + 4]; e--)
		;
	d = 6 - e;
	if (!round_scaled(a * pow10_exact[d], &n) || n < 1000000 || n >= 10000000)
		return false;              /* estimate off by one at a power of ten: printf decides */
	p = fmt_fixed(end, v < 0, n, d);
	/* %g drops trailing zeros of the fraction, and then a bare point */
	if (d > 0) {
		while (end[-1] == '0')
			end--;
		if (end[-1] == '.')
			end--;
	}
	put(j, p, (size_t) (end - p));
	return true;
}

void jbuf_number(struct jbuf *j, double v, int decimals)
{
	if (isfinite(v) && (decimals < 0 ? g7_fast(j, v) : fixed_fast(j, v, decimals)))
		return;
	if (!isfinite(v)) {
		jbuf_puts(j, "null");    /* never reached for good values: decode flags them */
		return;
	}
	/* "-0.0" reads oddly on a dashboard: anything that prints as zero is zero */
	if (decimals < 0) {
		if (v == 0.0)
			v = 0.0;
		jbuf_printf(j, "%.7g", v);
	} else if (decimals == 0 && fabs(v) >= 9223372036854775808.0) {
		/* as digits this whole number would not fit the 64-bit integers of
		 * many JSON parsers (jansson refuses it); as 1.2e+19 it is a real */
		jbuf_printf(j, "%.17g", v);
	} else {
		if (fabs(v) < 0.5 * pow(10.0, -decimals))
			v = 0.0;
		jbuf_printf(j, "%.*f", decimals, v);
	}
}

void payload_topic(struct jbuf *j, const struct conf *c, const char *device, const char *leaf)
{
	jbuf_reset(j);
	jbuf_puts(j, c->mqtt.topic_prefix);
	jbuf_puts(j, "/");
	jbuf_puts(j, c->site);
	jbuf_puts(j, "/");
	jbuf_puts(j, c->id);
	if (device) {
		jbuf_puts(j, "/");
		jbuf_puts(j, device);
	}
	jbuf_puts(j, "/");
	jbuf_puts(j, leaf);
}

void payload_telemetry(struct jbuf *j, const struct profile *p, const struct event *ev,
		       int64_t ts_ms, uint64_t seq, bool historical)
{
	bool first = true, anybad = false;

	jbuf_reset(j);
	put(j, "{\"ts\":", 6);
	put_int(j, ts_ms < 0, ts_ms < 0 ? -(uint64_t) ts_ms : (uint64_t) ts_ms);
	put(j, ",\"seq\":", 7);
	put_int(j, false, seq);
	put(j, ",\"values\":{", 11);
	for (size_t i = 0; i < p->npoints && i < ev->nvalues; i++) {
		if (ev->values[i].state != 0) {
			anybad = true;
			continue;
		}
		if (!first)
			put(j, ",", 1);
		first = false;
		jbuf_string(j, p->points[i].name);
		put(j, ":", 1);
		jbuf_number(j, ev->values[i].value, p->points[i].decimals);
	}
	put(j, "}", 1);
	if (anybad) {
		first = true;
		put(j, ",\"bad\":[", 8);
		for (size_t i = 0; i < p->npoints && i < ev->nvalues; i++) {
			if (ev->values[i].state == 0)
				continue;
			if (!first)
				put(j, ",", 1);
			first = false;
			jbuf_string(j, p->points[i].name);
		}
		put(j, "]", 1);
	}
	if (historical)
		put(j, ",\"historical\":true", 18);
	put(j, "}", 1);
}

void payload_meta(struct jbuf *j, const struct conf *c, const struct device_conf *d)
{
	const struct profile *p = &c->profiles[d->profile];

	jbuf_reset(j);
	jbuf_puts(j, "{\"profile\":");
	jbuf_string(j, p->name);
	if (p->description[0]) {
		jbuf_puts(j, ",\"description\":");
		jbuf_string(j, p->description);
	}
	jbuf_puts(j, ",\"bus\":");
	jbuf_string(j, c->buses[d->bus].name);
	jbuf_printf(j, ",\"unit\":%d,\"interval_s\":%g,\"points\":[", d->unit, d->interval_ms / 1000.0);
	for (size_t i = 0; i < p->npoints; i++) {
		const struct point *pt = &p->points[i];

		if (i)
			jbuf_puts(j, ",");
		jbuf_puts(j, "{\"name\":");
		jbuf_string(j, pt->name);
		jbuf_puts(j, ",\"unit\":");
		jbuf_string(j, pt->unit);
		jbuf_puts(j, ",\"table\":");
		jbuf_string(j, conf_table_name(pt->table));
		jbuf_printf(j, ",\"address\":%u,\"type\":", pt->address);
		jbuf_string(j, conf_vtype_name(pt->type));
		if (pt->has_min) {
			jbuf_puts(j, ",\"min\":");
			jbuf_number(j, pt->min, -1);
		}
		if (pt->has_max) {
			jbuf_puts(j, ",\"max\":");
			jbuf_number(j, pt->max, -1);
		}
		jbuf_puts(j, "}");
	}
	jbuf_puts(j, "]}");
}

void payload_device_status(struct jbuf *j, const struct device_health *h)
{
	jbuf_reset(j);
	jbuf_printf(j, "{\"online\":%s,\"since\":%lld,\"error\":", h->online ? "true" : "false",
		    (long long) h->since_ms);
	jbuf_string(j, h->error ? h->error : "");
	jbuf_printf(j, ",\"polls\":%llu,\"timeouts\":%llu,\"exceptions\":%llu,\"bad_frames\":%llu}",
		    (unsigned long long) h->polls, (unsigned long long) h->timeouts,
		    (unsigned long long) h->exceptions, (unsigned long long) h->bad_frames);
}

void payload_gateway_status(struct jbuf *j, const struct gateway_health *g)
{
	jbuf_reset(j);
	jbuf_printf(j, "{\"online\":%s,\"version\":", g->online ? "true" : "false");
	jbuf_string(j, g->version);
	jbuf_printf(j, ",\"started\":%lld,\"devices\":%u,\"devices_online\":%u,\"published\":%llu,"
		    "\"queued\":%llu,\"dropped\":%llu,\"seq\":%llu",
		    (long long) g->started_ms, g->devices, g->devices_online,
		    (unsigned long long) g->published, (unsigned long long) g->queued,
		    (unsigned long long) g->dropped, (unsigned long long) g->seq);
	if (g->has_store)
		jbuf_printf(j, ",\"stored\":%llu,\"store_dropped\":%llu,\"store_errors\":%llu",
			    (unsigned long long) g->stored, (unsigned long long) g->store_dropped,
			    (unsigned long long) g->store_errors);
	if (g->has_uplink) {
		jbuf_puts(j, ",\"uplink\":");
		jbuf_string(j, g->uplink_state ? g->uplink_state : "");
		jbuf_printf(j, ",\"windows_sent\":%llu,\"uplink_retries\":%llu,\"dead_letters\":%llu,\"backlog\":%llu",
			    (unsigned long long) g->windows_sent, (unsigned long long) g->uplink_retries,
			    (unsigned long long) g->dead_letters, (unsigned long long) g->backlog);
	}
	jbuf_puts(j, "}");
}

int payload_retime(struct jbuf *j, const char *in, size_t len, bool corrected, int64_t ts)
{
	static const char head[] = "{\"ts\":";
	size_t i = sizeof(head) - 1;

	jbuf_reset(j);
	if (len < i + 2 || memcmp(in, head, i) != 0 || in[len - 1] != '}') {
		put(j, in, len);
		return -EINVAL;
	}
	if (in[i] == '-')
		i++;
	while (i < len && in[i] >= '0' && in[i] <= '9')
		i++;
	if (corrected) {
		jbuf_printf(j, "{\"ts\":%lld", (long long) ts);
		put(j, in + i, len - i - 1);
		jbuf_puts(j, ",\"clock\":\"corrected\"}");
	} else {
		put(j, in, len - 1);
		jbuf_puts(j, ",\"clock\":\"unsynced\"}");
	}
	return 0;
}

int payload_parse_values(const struct profile *p, const char *json, size_t len, struct event *ev)
{
	json_error_t e;
	json_t *root = json_loadb(json, len, 0, &e), *values;

	if (!root)
		return -EINVAL;
	values = json_object_get(root, "values");
	if (!json_is_object(values)) {
		json_decref(root);
		return -EINVAL;
	}
	for (size_t i = 0; i < p->npoints && i < ev->nvalues; i++) {
		json_t *v = json_object_get(values, p->points[i].name);

		if (json_is_number(v)) {
			ev->values[i].value = json_number_value(v);
			ev->values[i].state = VAL_OK;
		} else {
			ev->values[i].state = VAL_NO_REPLY;
		}
	}
	json_decref(root);
	return 0;
}

void payload_gateway_offline(struct jbuf *j)
{
	jbuf_reset(j);
	jbuf_puts(j, "{\"online\":false}");
}
