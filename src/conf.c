/*
 * conf.c: load, check and print the configuration described in conf.h.
 *
 * libconfig does the syntax and the @includes (relative to the directory of
 * the main file); everything else is checked here, setting by setting, and
 * every problem is collected as one "file:line: message" line, so a user fixes
 * a whole file in one round instead of one error per restart.  This module
 * never opens serial ports, resolves host names or reads the TLS and password
 * files: the bus, MQTT and main modules do that when they start, and checking
 * a config must not depend on the machine it is checked on.  A reader may ask
 * why errors are buffered and sorted rather than printed when found: sections
 * are checked in dependency order (profiles before the devices naming them),
 * and sorting by position in the main file gives the user the file's order.
 * libconfig 1.5 quirks met here: include paths are reported as written, so
 * they are joined to the include directory for messages; a name defined twice
 * in one group (two profiles called alike) is its syntax error; its messages
 * name neither that setting nor an include file it cannot open, so both are
 * read back from the reported line; an integer literal too big for 32 bits
 * without an L suffix wraps silently in its parser, where no check of ours
 * can see it; and a syntax error at a string token leaks that string inside
 * libconfig (fixed upstream in 2019), which leak checkers report on that
 * path only.
 */
#include "conf.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define NAME_RULE "1..63 characters of A-Z a-z 0-9 _ -"
#define POINT_NAME_RULE "1..63 characters of A-Z a-z 0-9 _"

struct err {
	char *msg;               /* "file:line: message", no newline */
	int anchor;              /* line in the main file that orders it */
	int seq;
};

/* Prefixes of the messages about one entity. */
struct ent {
	char who[200];           /* "device 'x'", put before ": message" */
	char where[200];         /* "device 'x'", after "unknown key 'k' in " */
};

struct ctx {
	const char *path;        /* the main file as given */
	char incdir[CONF_PATH_MAX];
	struct err *errs;
	int nstored;
	int nerr;                /* found; may exceed CONF_MAX_ERRORS */
	bool oom;
	struct conf *c;
	/* per index, the libconfig setting and its name when usable, else NULL */
	config_setting_t **bus_set, **dev_set, **prof_set;
	const char **bus_name, **dev_name, **prof_name;
	const char **bus_any, **prof_any; /* every name given, valid or not */
	bool *bus_ok_unit;       /* bus type known, so units can be checked */
	bool *dev_unit_ok;       /* unit valid for a known bus: enters the duplicate check */
	bool **point_ok;         /* per profile, per point: table/address/type valid */
	size_t npoint_ok;
};

/* ---- messages ---- */

/* strlcpy: copy what fits, always terminated. */
static void scopy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The path a user can open for a setting's source file. */
static void source_path(const struct ctx *x, const char *f, char *buf, size_t n)
{
	size_t dl = strlen(x->incdir);

	if (!f || strcmp(f, x->path) == 0 || f[0] == '/' || strcmp(x->incdir, ".") == 0)
		snprintf(buf, n, "%s", f ? f : x->path);
	else if (dl > 0 && x->incdir[dl - 1] == '/')
		snprintf(buf, n, "%s%s", x->incdir, f);
	else
		snprintf(buf, n, "%s/%s", x->incdir, f);
}

/* Line of the nearest enclosing setting written in the main file. */
static int anchor_line(const struct ctx *x, const config_setting_t *s)
{
	for (; s; s = config_setting_parent(s)) {
		const char *f = config_setting_source_file(s);

		if (!f || strcmp(f, x->path) == 0)
			return config_setting_source_line(s);
	}
	return 0;
}

static void add_err(struct ctx *x, char *msg, int anchor)
{
	struct err *e;

	for (char *p = msg; *p; p++)   /* a message is one line of plain text */
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	x->nerr++;
	if (x->nstored >= CONF_MAX_ERRORS) {
		free(msg);
		return;
	}
	if (!x->errs) {
		x->errs = calloc(CONF_MAX_ERRORS, sizeof(*x->errs));
		if (!x->errs) {
			x->oom = true;
			free(msg);
			return;
		}
	}
	e = &x->errs[x->nstored];
	e->msg = msg;
	e->anchor = anchor;
	e->seq = x->nstored++;
}

/* Report at setting 's' (NULL: the main file, no line), prefixed by 'who'. */
static void errv(struct ctx *x, const config_setting_t *s, const char *who, const char *fmt, va_list ap)
{
	char file[CONF_PATH_MAX * 2];
	char *body = NULL, *msg = NULL;
	int r;

	if (vasprintf(&body, fmt, ap) < 0) {
		x->oom = true;
		x->nerr++;
		return;
	}
	if (s) {
		source_path(x, config_setting_source_file(s), file, sizeof(file));
		r = asprintf(&msg, "%s:%d: %s%s%s", file, config_setting_source_line(s),
			who ? who : "", who ? ": " : "", body);
	} else {
		r = asprintf(&msg, "%s: %s%s%s", x->path, who ? who : "", who ? ": " : "", body);
	}
	free(body);
	if (r < 0) {
		x->oom = true;
		x->nerr++;
		return;
	}
	add_err(x, msg, s ? anchor_line(x, s) : 0);
}

__attribute__((format(printf, 4, 5)))
static void err(struct ctx *x, const config_setting_t *s, const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errv(x, s, who, fmt, ap);
	va_end(ap);
}

static int cmp_err(const void *a, const void *b)
{
	const struct err *ea = a, *eb = b;

	if (ea->anchor != eb->anchor)
		return ea->anchor < eb->anchor ? -1 : 1;
	return ea->seq < eb->seq ? -1 : ea->seq > eb->seq;
}

static void flush_errs(struct ctx *x, FILE *out)
{
	if (x->nstored > 0)
		qsort(x->errs, (size_t) x->nstored, sizeof(*x->errs), cmp_err);
	for (int i = 0; i < x->nstored; i++) {
		if (out)
			fprintf(out, "%s\n", x->errs[i].msg);
		free(x->errs[i].msg);
	}
	if (out && x->nerr > x->nstored)
		fprintf(out, "%s: too many errors (%d), only the first %d are shown\n",
			x->path, x->nerr, x->nstored);
	if (out && x->oom)
		fprintf(out, "%s: out of memory\n", x->path);
	free(x->errs);
	x->errs = NULL;
	x->nstored = 0;
}

/* "a string", "an integer", ... for "expected X for 'k', got Y". */
static const char *type_desc(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP: return "a group { ... }";
	case CONFIG_TYPE_INT: case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array [ ... ]";
	case CONFIG_TYPE_LIST: return "a list ( ... )";
	default: return "nothing";
	}
}

static void ent_set(struct ent *e, const char *kind, const char *name, int index)
{
	if (name) {
		snprintf(e->who, sizeof(e->who), "%s '%s'", kind, name);
	} else {
		snprintf(e->who, sizeof(e->who), "%s #%d", kind, index + 1);
	}
	scopy(e->where, sizeof(e->where), e->who);
}

/* ---- small checks ---- */

static bool name_ok(const char *s, bool dash)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char ch = s[n];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || (dash && ch == '-')))
			return false;
	}
	return n >= 1 && n < CONF_NAME_MAX;
}

/* Well-formed UTF-8 without control characters. */
static bool text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p) {
		unsigned c = *p;
		int more;
		unsigned cp, min;

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			more = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		p++;
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (*p & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* Is 'key' in the NULL-terminated list? */
static bool in_list(const char *key, const char *const *list)
{
	for (; list && *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/*
 * Report every key of group 'g' that is in neither 'allowed' nor 'more';
 * keys in 'other' get "key 'k' is not valid for <other_what>" instead.
 */
static void check_keys(struct ctx *x, config_setting_t *g, const struct ent *e,
	const char *const *allowed, const char *const *more,
	const char *const *other, const char *other_what)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned) i);
		const char *k = config_setting_name(s);

		if (!k || in_list(k, allowed) || in_list(k, more))
			continue;
		if (in_list(k, other))
			err(x, s, e->who, "key '%s' is not valid for %s", k, other_what);
		else
			err(x, s, NULL, "unknown key '%s' in %s", k, e->where);
	}
}

/* ---- typed getters: true when the key is present with the right type ---- */

static config_setting_t *member(struct ctx *x, config_setting_t *g, const struct ent *e,
	const char *key, bool req)
{
	config_setting_t *s = config_setting_get_member(g, key);

	if (!s && req)
		err(x, g, e->who, "missing required key '%s'", key);
	return s;
}

static bool get_int(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key,
	bool req, long long *v, config_setting_t **sp)
{
	config_setting_t *s = member(x, g, e, key, req);
	int t;

	*sp = s;
	if (!s)
		return false;
	t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		err(x, s, e->who, "expected an integer for '%s', got %s", key, type_desc(t));
		return false;
	}
	*v = config_setting_get_int64(s);
	return true;
}

static bool get_num(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key,
	bool req, double *v, config_setting_t **sp)
{
	config_setting_t *s = member(x, g, e, key, req);
	int t;

	*sp = s;
	if (!s)
		return false;
	t = config_setting_type(s);
	if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
		*v = (double) config_setting_get_int64(s);
	} else if (t == CONFIG_TYPE_FLOAT) {
		*v = config_setting_get_float(s);
	} else {
		err(x, s, e->who, "expected a number for '%s', got %s", key, type_desc(t));
		return false;
	}
	if (!isfinite(*v)) {
		err(x, s, e->who, "%s must be a finite number", key);
		return false;
	}
	return true;
}

static bool get_str(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key,
	bool req, const char **v, config_setting_t **sp)
{
	config_setting_t *s = member(x, g, e, key, req);
	int t;

	*sp = s;
	if (!s)
		return false;
	t = config_setting_type(s);
	if (t != CONFIG_TYPE_STRING) {
		err(x, s, e->who, "expected a string for '%s', got %s", key, type_desc(t));
		return false;
	}
	*v = config_setting_get_string(s);
	return true;
}

/* Optional boolean; keeps *out when absent. */
static void bool_key(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key, bool *out)
{
	config_setting_t *s = config_setting_get_member(g, key);
	int t;

	if (!s)
		return;
	t = config_setting_type(s);
	if (t != CONFIG_TYPE_BOOL) {
		err(x, s, e->who, "expected a boolean (true or false) for '%s', got %s", key, type_desc(t));
		return;
	}
	*out = config_setting_get_bool(s) != 0;
}

/* Integer in lo..hi; keeps *out (the default) when absent or wrong. */
static bool int_key(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key,
	bool req, long long lo, long long hi, const char *suffix, int *out)
{
	config_setting_t *s;
	long long v;

	if (!get_int(x, g, e, key, req, &v, &s))
		return false;
	if (v < lo || v > hi) {
		if (hi == lo + 1)
			err(x, s, e->who, "%s must be %lld or %lld%s, got %lld", key, lo, hi, suffix ? suffix : "", v);
		else
			err(x, s, e->who, "%s must be %lld..%lld%s, got %lld", key, lo, hi, suffix ? suffix : "", v);
		return false;
	}
	*out = (int) v;
	return true;
}

/* Seconds in lo..hi, stored as milliseconds; keeps *out_ms when absent or wrong. */
static bool time_key(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key,
	bool req, double lo, double hi, int *out_ms)
{
	config_setting_t *s;
	double v;

	if (!get_num(x, g, e, key, req, &v, &s))
		return false;
	if (v < lo || v > hi) {
		err(x, s, e->who, "%s must be %g..%g s, got %g", key, lo, hi, v);
		return false;
	}
	*out_ms = (int) llround(v * 1000.0);
	return true;
}

/* Text that fits in 'size' bytes, valid UTF-8 without control characters. */
static bool str_key(struct ctx *x, config_setting_t *g, const struct ent *e, const char *key,
	bool req, bool nonempty, char *out, size_t size)
{
	config_setting_t *s;
	const char *v;
	size_t n;

	if (!get_str(x, g, e, key, req, &v, &s))
		return false;
	n = strlen(v);
	if (n >= size) {
		err(x, s, e->who, "%s must be at most %zu bytes, got %zu", key, size - 1, n);
		return false;
	}
	if (nonempty && n == 0) {
		err(x, s, e->who, "%s must not be empty", key);
		return false;
	}
	if (!text_ok(v)) {
		err(x, s, e->who, "%s must be UTF-8 text without control characters", key);
		return false;
	}
	memcpy(out, v, n + 1);
	return true;
}

/* A group (or list) in its parent, or NULL after an error. */
static config_setting_t *aggregate(struct ctx *x, config_setting_t *s, const char *who, int type)
{
	int t = config_setting_type(s);

	if (t == type)
		return s;
	if (config_setting_name(s))
		err(x, s, who, "expected %s for '%s', got %s", type_desc(type), config_setting_name(s), type_desc(t));
	else
		err(x, s, who, "expected %s, got %s", type_desc(type), type_desc(t));
	return NULL;
}

/* Where a setting is, as "file:line", for "(first defined at ...)". */
static void where_at(const struct ctx *x, const config_setting_t *s, char *buf, size_t n)
{
	char file[CONF_PATH_MAX * 2];

	source_path(x, config_setting_source_file(s), file, sizeof(file));
	snprintf(buf, n, "%s:%d", file, config_setting_source_line(s));
}

/*
 * Decimal places needed to print v exactly (0.1 -> 1, 0.25 -> 2, 10 -> 0),
 * at most 6.
 */
static int decimals_of(double v)
{
	char buf[64];

	for (int k = 0; k < 6; k++) {
		snprintf(buf, sizeof(buf), "%.*f", k, v);
		if (strtod(buf, NULL) == v)
			return k;
	}
	return 6;
}

/* ---- sections ---- */

static void check_gateway(struct ctx *x, config_setting_t *root)
{
	static const char *const keys[] = { "site", "id", NULL };
	struct ent e = { "gateway", "section 'gateway'" };
	config_setting_t *g = config_setting_get_member(root, "gateway");
	config_setting_t *s;
	const char *v;

	if (!g)
		return;
	if (!aggregate(x, g, NULL, CONFIG_TYPE_GROUP))
		return;
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	if (get_str(x, g, &e, "site", true, &v, &s)) {
		if (name_ok(v, true))
			scopy(x->c->site, sizeof(x->c->site), v);
		else
			err(x, s, e.who, "invalid site '%s': use " NAME_RULE, v);
	}
	if (get_str(x, g, &e, "id", true, &v, &s)) {
		if (name_ok(v, true))
			scopy(x->c->id, sizeof(x->c->id), v);
		else
			err(x, s, e.who, "invalid id '%s': use " NAME_RULE, v);
	}
}

static void check_mqtt(struct ctx *x, config_setting_t *root)
{
	static const char *const keys[] = {
		"host", "port", "ca_file", "cert_file", "key_file", "username", "password_file",
		"client_id", "keepalive", "qos", "topic_prefix", "queue_max", "max_inflight",
		"reconnect_min", "reconnect_max", "status_interval", NULL
	};
	struct ent e = { "mqtt", "section 'mqtt'" };
	struct mqtt_conf *m = &x->c->mqtt;
	config_setting_t *g = config_setting_get_member(root, "mqtt");
	config_setting_t *s;
	bool min_ok, max_ok;
	size_t n;

	snprintf(m->host, sizeof(m->host), "127.0.0.1");
	m->port = 1883;
	m->keepalive_s = 60;
	m->qos = 1;
	snprintf(m->topic_prefix, sizeof(m->topic_prefix), "agrigw");
	m->queue_max = 10000;
	m->max_inflight = 20;
	m->reconnect_min_ms = 1000;
	m->reconnect_max_ms = 60000;
	m->status_interval_s = 60;
	if (g && !aggregate(x, g, NULL, CONFIG_TYPE_GROUP))
		g = NULL;
	if (g) {
		m->line = config_setting_source_line(g);
		check_keys(x, g, &e, keys, NULL, NULL, NULL);
		if (str_key(x, g, &e, "host", false, true, m->host, sizeof(m->host)) && strpbrk(m->host, " \t"))
			err(x, config_setting_get_member(g, "host"), e.who, "host must not contain spaces");
		str_key(x, g, &e, "ca_file", false, false, m->ca_file, sizeof(m->ca_file));
		str_key(x, g, &e, "cert_file", false, false, m->cert_file, sizeof(m->cert_file));
		str_key(x, g, &e, "key_file", false, false, m->key_file, sizeof(m->key_file));
		if (m->ca_file[0])
			m->port = 8883;
		int_key(x, g, &e, "port", false, 1, 65535, NULL, &m->port);
		str_key(x, g, &e, "username", false, false, m->username, sizeof(m->username));
		str_key(x, g, &e, "password_file", false, false, m->password_file, sizeof(m->password_file));
		str_key(x, g, &e, "client_id", false, false, m->client_id, sizeof(m->client_id));
		int_key(x, g, &e, "keepalive", false, 5, 3600, " s", &m->keepalive_s);
		int_key(x, g, &e, "qos", false, 0, 2, NULL, &m->qos);
		if (str_key(x, g, &e, "topic_prefix", false, true, m->topic_prefix, sizeof(m->topic_prefix))) {
			s = config_setting_get_member(g, "topic_prefix");
			n = strlen(m->topic_prefix);
			if (strpbrk(m->topic_prefix, "+#"))
				err(x, s, e.who, "topic_prefix must not contain '+' or '#', got '%s'", m->topic_prefix);
			else if (m->topic_prefix[0] == '/' || m->topic_prefix[n - 1] == '/')
				err(x, s, e.who, "topic_prefix must not begin or end with '/', got '%s'", m->topic_prefix);
			else if (m->topic_prefix[0] == '$')
				/* brokers keep $ topics for themselves and drop (yet acknowledge) publishes there */
				err(x, s, e.who, "topic_prefix must not begin with '$', got '%s'", m->topic_prefix);
		}
		int_key(x, g, &e, "queue_max", false, 1, 1000000, NULL, &m->queue_max);
		int_key(x, g, &e, "max_inflight", false, 1, 1000, NULL, &m->max_inflight);
		min_ok = time_key(x, g, &e, "reconnect_min", false, 0.1, 3600, &m->reconnect_min_ms);
		max_ok = time_key(x, g, &e, "reconnect_max", false, 1, 86400, &m->reconnect_max_ms);
		if ((min_ok || max_ok) && m->reconnect_min_ms > m->reconnect_max_ms)
			err(x, config_setting_get_member(g, max_ok ? "reconnect_max" : "reconnect_min"), e.who,
				"reconnect_min %g s is greater than reconnect_max %g s",
				m->reconnect_min_ms / 1000.0, m->reconnect_max_ms / 1000.0);
		int_key(x, g, &e, "status_interval", false, 5, 86400, " s", &m->status_interval_s);
		if (m->cert_file[0] && !m->key_file[0])
			err(x, config_setting_get_member(g, "cert_file"), e.who, "cert_file requires key_file");
		if (m->key_file[0] && !m->cert_file[0])
			err(x, config_setting_get_member(g, "key_file"), e.who, "key_file requires cert_file");
		if (m->cert_file[0] && !m->ca_file[0])
			err(x, config_setting_get_member(g, "cert_file"), e.who, "cert_file requires ca_file");
		if (m->password_file[0] && !m->username[0])
			err(x, config_setting_get_member(g, "password_file"), e.who, "password_file requires username");
	}
	if (!m->client_id[0] && x->c->site[0] && x->c->id[0]) {
		n = strlen("agrigw--") + strlen(x->c->site) + strlen(x->c->id);
		if (n >= sizeof(m->client_id))
			err(x, g ? g : config_setting_get_member(root, "gateway"), g ? e.who : "gateway",
				"the default client id 'agrigw-%s-%s' is longer than %zu bytes; set mqtt.client_id",
				x->c->site, x->c->id, sizeof(m->client_id) - 1);
		else {
			char id[3 * CONF_NAME_MAX];

			snprintf(id, sizeof(id), "agrigw-%s-%s", x->c->site, x->c->id);
			scopy(m->client_id, sizeof(m->client_id), id);
		}
	}
}

static void check_store(struct ctx *x, config_setting_t *root)
{
	static const char *const keys[] = { "dir", "max_bytes", "commit_interval", NULL };
	struct ent e = { "store", "section 'store'" };
	struct store_conf *st = &x->c->store;
	config_setting_t *g = config_setting_get_member(root, "store");
	config_setting_t *s;
	long long v;

	snprintf(st->dir, sizeof(st->dir), "/var/lib/agrigw");
	st->max_bytes = 256LL << 20;
	st->commit_interval_ms = 1000;
	if (g && !aggregate(x, g, NULL, CONFIG_TYPE_GROUP))
		return;
	if (!g)
		return;
	st->line = config_setting_source_line(g);
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	/* "" runs without a store: readings are held in memory only */
	str_key(x, g, &e, "dir", false, false, st->dir, sizeof(st->dir));
	if (get_int(x, g, &e, "max_bytes", false, &v, &s)) {
		if (v < (64LL << 10) || v > (1LL << 40))
			err(x, s, e.who, "max_bytes must be 65536..1099511627776 (64 KiB..1 TiB), got %lld", v);
		else
			st->max_bytes = v;
	}
	time_key(x, g, &e, "commit_interval", false, 0, 60, &st->commit_interval_ms);
}

static void check_uplink(struct ctx *x, config_setting_t *root)
{
	static const char *const keys[] = {
		"url", "window", "grace", "token_file", "ca_file", "cert_file", "key_file", "gzip",
		"allow_insecure", "batch_max_items", "batch_max_bytes", "backoff_base", "backoff_max",
		"connect_timeout", "timeout", "low_speed_limit", "low_speed_time", NULL
	};
	struct ent e = { "uplink", "section 'uplink'" };
	struct uplink_conf *u = &x->c->uplink;
	config_setting_t *g = config_setting_get_member(root, "uplink");
	config_setting_t *s;

	u->window_s = 300;
	u->grace_ms = 10000;
	u->gzip = true;
	u->batch_max_items = 500;
	u->batch_max_bytes = 512 << 10;
	u->backoff_base_ms = 2000;
	u->backoff_max_ms = 600000;
	u->connect_timeout_ms = 15000;
	u->timeout_ms = 60000;
	u->low_speed_limit = 10;
	u->low_speed_time_s = 30;
	if (g && !aggregate(x, g, NULL, CONFIG_TYPE_GROUP))
		return;
	if (!g)
		return;
	u->line = config_setting_source_line(g);
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	bool_key(x, g, &e, "allow_insecure", &u->allow_insecure);
	if (str_key(x, g, &e, "url", false, false, u->url, sizeof(u->url)) && u->url[0]) {
		s = config_setting_get_member(g, "url");
		if (strncasecmp(u->url, "https://", 8) == 0 && u->url[8])
			;
		else if (strncasecmp(u->url, "http://", 7) == 0 && u->url[7]) {
			if (!u->allow_insecure)
				err(x, s, e.who, "url '%s' is plain http: refused unless allow_insecure = true", u->url);
		} else {
			err(x, s, e.who, "url must start with https://, got '%s'", u->url);
		}
		if (strpbrk(u->url, " \t"))
			err(x, s, e.who, "url must not contain spaces");
	}
	if (int_key(x, g, &e, "window", false, 10, 86400, " s", &u->window_s) && 86400 % u->window_s != 0)
		err(x, config_setting_get_member(g, "window"), e.who,
		    "window must divide a day (86400 s) so windows align, got %d", u->window_s);
	time_key(x, g, &e, "grace", false, 0, 3600, &u->grace_ms);
	str_key(x, g, &e, "token_file", false, false, u->token_file, sizeof(u->token_file));
	str_key(x, g, &e, "ca_file", false, false, u->ca_file, sizeof(u->ca_file));
	str_key(x, g, &e, "cert_file", false, false, u->cert_file, sizeof(u->cert_file));
	str_key(x, g, &e, "key_file", false, false, u->key_file, sizeof(u->key_file));
	if (u->cert_file[0] && !u->key_file[0])
		err(x, config_setting_get_member(g, "cert_file"), e.who, "cert_file requires key_file");
	if (u->key_file[0] && !u->cert_file[0])
		err(x, config_setting_get_member(g, "key_file"), e.who, "key_file requires cert_file");
	bool_key(x, g, &e, "gzip", &u->gzip);
	int_key(x, g, &e, "batch_max_items", false, 1, 10000, NULL, &u->batch_max_items);
	int_key(x, g, &e, "batch_max_bytes", false, 4096, 16 << 20, NULL, &u->batch_max_bytes);
	{
		bool b_ok = time_key(x, g, &e, "backoff_base", false, 0.1, 3600, &u->backoff_base_ms);
		bool m_ok = time_key(x, g, &e, "backoff_max", false, 1, 86400, &u->backoff_max_ms);

		if ((b_ok || m_ok) && u->backoff_base_ms > u->backoff_max_ms)
			err(x, config_setting_get_member(g, m_ok ? "backoff_max" : "backoff_base"), e.who,
			    "backoff_base %g s is greater than backoff_max %g s",
			    u->backoff_base_ms / 1000.0, u->backoff_max_ms / 1000.0);
	}
	time_key(x, g, &e, "connect_timeout", false, 1, 300, &u->connect_timeout_ms);
	time_key(x, g, &e, "timeout", false, 1, 3600, &u->timeout_ms);
	int_key(x, g, &e, "low_speed_limit", false, 1, 1 << 20, " bytes/s", &u->low_speed_limit);
	int_key(x, g, &e, "low_speed_time", false, 1, 3600, " s", &u->low_speed_time_s);
}

static void check_log(struct ctx *x, config_setting_t *root)
{
	static const char *const keys[] = { "summary_interval", NULL };
	struct ent e = { "log", "section 'log'" };
	struct log_conf *l = &x->c->log;
	config_setting_t *g = config_setting_get_member(root, "log");

	l->summary_interval_s = 600;
	if (g && !aggregate(x, g, NULL, CONFIG_TYPE_GROUP))
		return;
	if (!g)
		return;
	l->line = config_setting_source_line(g);
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	int_key(x, g, &e, "summary_interval", false, 0, 86400, " s", &l->summary_interval_s);
}

static void check_clock(struct ctx *x, config_setting_t *root)
{
	static const char *const keys[] = { "trust_system", NULL };
	struct ent e = { "clock", "section 'clock'" };
	config_setting_t *g = config_setting_get_member(root, "clock");

	if (!g || !aggregate(x, g, NULL, CONFIG_TYPE_GROUP))
		return;
	x->c->clock.line = config_setting_source_line(g);
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	bool_key(x, g, &e, "trust_system", &x->c->clock.trust_system);
}

static const int bauds[] = { 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600 };

static void check_parity(struct ctx *x, config_setting_t *g, const struct ent *e, struct bus_conf *b)
{
	static const char *const names[][2] = { { "N", "none" }, { "E", "even" }, { "O", "odd" } };
	config_setting_t *s;
	const char *v;

	if (!get_str(x, g, e, "parity", false, &v, &s))
		return;
	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(v, names[i][0]) == 0 || strcasecmp(v, names[i][1]) == 0) {
			b->parity = names[i][0][0];
			return;
		}
	}
	err(x, s, e->who, "parity must be 'N', 'E' or 'O' (or 'none', 'even', 'odd'), got '%s'", v);
}

static void check_bus(struct ctx *x, config_setting_t *list, int i)
{
	static const char *const common[] = { "name", "type", "response_timeout", "pause", NULL };
	static const char *const rtu[] = { "device", "baud", "parity", "data_bits", "stop_bits", "rs485", NULL };
	static const char *const tcp[] = { "host", "port", "connect_timeout", NULL };
	struct bus_conf *b = &x->c->buses[i];
	config_setting_t *g = config_setting_get_elem(list, (unsigned) i);
	config_setting_t *s;
	struct ent e;
	const char *v;
	char at[CONF_PATH_MAX * 2 + 16];
	int type = -1;
	long long baud;

	ent_set(&e, "bus", NULL, i);
	b->line = config_setting_source_line(g);
	if (!aggregate(x, g, e.who, CONFIG_TYPE_GROUP))
		return;
	if (get_str(x, g, &e, "name", true, &v, &s)) {
		x->bus_any[i] = v;
		if (!name_ok(v, true)) {
			err(x, s, NULL, "invalid bus name '%s': use " NAME_RULE, v);
		} else {
			ent_set(&e, "bus", v, i);
			scopy(b->name, sizeof(b->name), v);
			for (int j = 0; j < i; j++) {
				if (x->bus_name[j] && strcmp(x->bus_name[j], v) == 0) {
					where_at(x, x->bus_set[j], at, sizeof(at));
					err(x, s, NULL, "duplicate bus '%s' (first defined at %s)", v, at);
					break;
				}
			}
			x->bus_name[i] = v;
			x->bus_set[i] = g;
		}
	}
	if (get_str(x, g, &e, "type", true, &v, &s)) {
		if (strcasecmp(v, "rtu") == 0)
			type = BUS_RTU;
		else if (strcasecmp(v, "tcp") == 0)
			type = BUS_TCP;
		else
			err(x, s, e.who, "type must be 'rtu' or 'tcp', got '%s'", v);
	}
	x->bus_ok_unit[i] = type >= 0;
	if (type == BUS_RTU) {
		b->type = BUS_RTU;
		b->baud = 9600;
		b->parity = 'N';
		b->data_bits = 8;
		b->stop_bits = 1;
		b->response_timeout_ms = 500;
		b->pause_ms = 20;
		check_keys(x, g, &e, common, rtu, tcp, "an rtu bus");
		if (str_key(x, g, &e, "device", true, true, b->device, sizeof(b->device))) {
			for (int j = 0; j < i; j++) {
				if (x->c->buses[j].type == BUS_RTU && x->bus_ok_unit[j] &&
				    strcmp(x->c->buses[j].device, b->device) == 0) {
					where_at(x, config_setting_get_elem(list, (unsigned) j), at, sizeof(at));
					err(x, config_setting_get_member(g, "device"), e.who,
						"device '%s' is already used by bus '%s' (%s)", b->device,
						x->c->buses[j].name, at);
					break;
				}
			}
		}
		if (get_int(x, g, &e, "baud", false, &baud, &s)) {
			size_t k;

			for (k = 0; k < sizeof(bauds) / sizeof(bauds[0]); k++)
				if (bauds[k] == baud)
					break;
			if (k < sizeof(bauds) / sizeof(bauds[0]))
				b->baud = (int) baud;
			else
				err(x, s, e.who, "baud must be one of 1200 2400 4800 9600 19200 38400 57600 "
					"115200 230400 460800 921600, got %lld", baud);
		}
		check_parity(x, g, &e, b);
		int_key(x, g, &e, "data_bits", false, 7, 8, NULL, &b->data_bits);
		int_key(x, g, &e, "stop_bits", false, 1, 2, NULL, &b->stop_bits);
		bool_key(x, g, &e, "rs485", &b->rs485);
	} else if (type == BUS_TCP) {
		b->type = BUS_TCP;
		b->port = 502;
		b->connect_timeout_ms = 3000;
		b->response_timeout_ms = 1000;
		b->pause_ms = 0;
		check_keys(x, g, &e, common, tcp, rtu, "a tcp bus");
		if (str_key(x, g, &e, "host", true, true, b->host, sizeof(b->host)) && strpbrk(b->host, " \t"))
			err(x, config_setting_get_member(g, "host"), e.who, "host must not contain spaces");
		int_key(x, g, &e, "port", false, 1, 65535, NULL, &b->port);
		time_key(x, g, &e, "connect_timeout", false, 0.01, 60, &b->connect_timeout_ms);
	} else {
		static const char *const any[] = {
			"device", "baud", "parity", "data_bits", "stop_bits", "rs485", "host", "port",
			"connect_timeout", NULL
		};

		check_keys(x, g, &e, common, any, NULL, NULL);
	}
	time_key(x, g, &e, "response_timeout", false, 0.01, 60, &b->response_timeout_ms);
	time_key(x, g, &e, "pause", false, 0, 10, &b->pause_ms);
}

static void check_buses(struct ctx *x, config_setting_t *root)
{
	config_setting_t *list = config_setting_get_member(root, "buses");
	int n;

	if (!list)
		return;
	if (!aggregate(x, list, NULL, CONFIG_TYPE_LIST))
		return;
	n = config_setting_length(list);
	if (n == 0)
		err(x, list, NULL, "at least one bus is required");
	if (n > CONF_MAX_BUSES)
		err(x, list, NULL, "too many buses: %d (at most %d)", n, CONF_MAX_BUSES);
	if (n == 0)
		return;
	x->c->buses = calloc((size_t) n, sizeof(*x->c->buses));
	x->bus_set = calloc((size_t) n, sizeof(*x->bus_set));
	x->bus_name = calloc((size_t) n, sizeof(*x->bus_name));
	x->bus_ok_unit = calloc((size_t) n, sizeof(*x->bus_ok_unit));
	x->bus_any = calloc((size_t) n, sizeof(*x->bus_any));
	if (!x->c->buses || !x->bus_set || !x->bus_name || !x->bus_ok_unit || !x->bus_any) {
		x->oom = true;
		return;
	}
	x->c->nbuses = (size_t) n;
	for (int i = 0; i < n; i++)
		check_bus(x, list, i);
}

/* Keys that mean nothing for a bool point. */
static const char *const not_for_bool[] = { "order", "scale", "offset", "min", "max", "decimals", NULL };

static void check_point(struct ctx *x, struct profile *p, config_setting_t *list, int i, bool *ok)
{
	static const char *const keys[] = {
		"name", "table", "address", "type", "order", "bit", "scale", "offset", "unit",
		"min", "max", "decimals", NULL
	};
	static const char *const bool_keys[] = { "name", "table", "address", "type", "bit", "unit", NULL };
	static const char *const tables[] = { "holding", "input", "coil", "discrete", NULL };
	static const char *const vtypes[] = { "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "bool", NULL };
	static const char *const orders[] = { "ABCD", "CDAB", "BADC", "DCBA", NULL };
	struct point *pt = &p->points[i];
	config_setting_t *g = config_setting_get_elem(list, (unsigned) i);
	config_setting_t *s, *smin, *smax;
	struct ent e;
	const char *v;
	char at[CONF_PATH_MAX * 2 + 16];
	bool t_ok = false, y_ok = false, a_ok = false, is_bool;
	long long addr = 0, bit;
	double d;

	snprintf(e.who, sizeof(e.who), "profile '%s': point #%d", p->name, i + 1);
	snprintf(e.where, sizeof(e.where), "point #%d of profile '%s'", i + 1, p->name);
	pt->line = config_setting_source_line(g);
	pt->order = WO_ABCD;
	pt->bit = -1;
	pt->scale = 1.0;
	*ok = false;
	if (!aggregate(x, g, e.who, CONFIG_TYPE_GROUP))
		return;
	if (get_str(x, g, &e, "name", true, &v, &s)) {
		if (!name_ok(v, false)) {
			err(x, s, e.who, "invalid point name '%s': use " POINT_NAME_RULE, v);
		} else {
			snprintf(e.who, sizeof(e.who), "profile '%s': point '%s'", p->name, v);
			snprintf(e.where, sizeof(e.where), "point '%s' of profile '%s'", v, p->name);
			scopy(pt->name, sizeof(pt->name), v);
			for (int j = 0; j < i; j++) {
				if (strcmp(p->points[j].name, v) == 0) {
					where_at(x, config_setting_get_elem(list, (unsigned) j), at, sizeof(at));
					err(x, s, NULL, "profile '%s': duplicate point '%s' (first defined at %s)",
						p->name, v, at);
					break;
				}
			}
		}
	}
	if (get_str(x, g, &e, "table", true, &v, &s)) {
		for (int k = 0; tables[k]; k++)
			if (strcmp(v, tables[k]) == 0) {
				pt->table = (enum table) k;
				t_ok = true;
			}
		if (!t_ok)
			err(x, s, e.who, "table must be 'holding', 'input', 'coil' or 'discrete', got '%s'", v);
	}
	if (get_str(x, g, &e, "type", true, &v, &s)) {
		for (int k = 0; vtypes[k]; k++)
			if (strcmp(v, vtypes[k]) == 0) {
				pt->type = (enum vtype) k;
				y_ok = true;
			}
		if (!y_ok)
			err(x, s, e.who, "type must be one of u16 s16 u32 s32 u64 s64 f32 f64 bool, got '%s'", v);
	}
	if (t_ok && y_ok && (pt->table == TABLE_COIL || pt->table == TABLE_DISCRETE) && pt->type != VT_BOOL) {
		err(x, s, e.who, "a %s point must have type 'bool', got '%s'", conf_table_name(pt->table),
			conf_vtype_name(pt->type));
		y_ok = false;
	}
	if (get_int(x, g, &e, "address", true, &addr, &s)) {
		if (addr < 0 || addr > 65535)
			err(x, s, e.who, "address must be 0..65535, got %lld", addr);
		else if (y_ok && addr + conf_vtype_width(pt->type) - 1 > 65535)
			err(x, s, e.who, "a %s at address %lld runs past register 65535",
				conf_vtype_name(pt->type), addr);
		else
			a_ok = true;
		if (a_ok)
			pt->address = (uint16_t) addr;
	}
	is_bool = y_ok && pt->type == VT_BOOL;
	if (is_bool)
		check_keys(x, g, &e, bool_keys, NULL, not_for_bool, "a bool point");
	else
		check_keys(x, g, &e, keys, NULL, NULL, NULL);
	if (!is_bool && get_str(x, g, &e, "order", false, &v, &s)) {
		bool found = false;

		for (int k = 0; orders[k]; k++)
			if (strcmp(v, orders[k]) == 0) {
				pt->order = (enum worder) k;
				found = true;
			}
		if (!found)
			err(x, s, e.who, "order must be 'ABCD', 'CDAB', 'BADC' or 'DCBA', got '%s'", v);
	}
	if (get_int(x, g, &e, "bit", false, &bit, &s)) {
		if (t_ok && y_ok && (pt->type != VT_BOOL || pt->table == TABLE_COIL || pt->table == TABLE_DISCRETE))
			err(x, s, e.who, "bit is only valid for a bool point on a holding or input register");
		else if (bit < 0 || bit > 15)
			err(x, s, e.who, "bit must be 0..15, got %lld", bit);
		else
			pt->bit = (int) bit;
	}
	str_key(x, g, &e, "unit", false, false, pt->unit, sizeof(pt->unit));
	if (is_bool) {
		*ok = t_ok && y_ok && a_ok;
		return;
	}
	if (get_num(x, g, &e, "scale", false, &d, &s)) {
		if (d == 0)
			err(x, s, e.who, "scale must not be 0");
		else
			pt->scale = d;
	}
	if (get_num(x, g, &e, "offset", false, &d, &s))
		pt->offset = d;
	if (get_num(x, g, &e, "min", false, &pt->min, &smin))
		pt->has_min = true;
	if (get_num(x, g, &e, "max", false, &pt->max, &smax))
		pt->has_max = true;
	if (pt->has_min && pt->has_max && pt->min > pt->max)
		err(x, smax, e.who, "min %g is greater than max %g", pt->min, pt->max);
	if (int_key(x, g, &e, "decimals", false, 0, 10, NULL, &pt->decimals)) {
		/* given */
	} else if (y_ok && (pt->type == VT_F32 || pt->type == VT_F64)) {
		pt->decimals = -1;
	} else {
		int ds = decimals_of(pt->scale), dof = decimals_of(pt->offset);

		pt->decimals = ds > dof ? ds : dof;
	}
	*ok = t_ok && y_ok && a_ok;
}

/* Two points overlap unless they are bools on different bits of one register. */
static void check_overlaps(struct ctx *x, struct profile *p, config_setting_t *list, const bool *ok)
{
	char at[CONF_PATH_MAX * 2 + 16];

	for (size_t j = 1; j < p->npoints; j++) {
		const struct point *b = &p->points[j];
		int b_end = b->address + conf_vtype_width(b->type) - 1;

		if (!ok[j])
			continue;
		for (size_t i = 0; i < j; i++) {
			const struct point *a = &p->points[i];
			int a_end = a->address + conf_vtype_width(a->type) - 1;

			if (!ok[i] || a->table != b->table || a_end < b->address || b_end < a->address)
				continue;
			if (a->type == VT_BOOL && b->type == VT_BOOL && a->bit >= 0 && b->bit >= 0 &&
			    a->bit != b->bit)
				continue;
			where_at(x, config_setting_get_elem(list, (unsigned) i), at, sizeof(at));
			err(x, config_setting_get_elem(list, (unsigned) j), NULL,
				"profile '%s': point '%s' overlaps point '%s' (defined at %s)",
				p->name, b->name[0] ? b->name : "?", a->name[0] ? a->name : "?", at);
			break;
		}
	}
}

static void check_profile(struct ctx *x, config_setting_t *grp, int i)
{
	static const char *const keys[] = { "description", "points", NULL };
	struct profile *p = &x->c->profiles[i];
	config_setting_t *g = config_setting_get_elem(grp, (unsigned) i);
	config_setting_t *list;
	const char *name = config_setting_name(g);
	struct ent e;
	char file[CONF_PATH_MAX * 2];
	bool *ok;
	int n;

	p->line = config_setting_source_line(g);
	source_path(x, config_setting_source_file(g), file, sizeof(file));
	scopy(p->file, sizeof(p->file), file);
	x->prof_any[i] = name;
	if (!name_ok(name, true)) {
		err(x, g, NULL, "invalid profile name '%s': use " NAME_RULE, name);
		return;
	}
	scopy(p->name, sizeof(p->name), name);
	x->prof_name[i] = name;
	x->prof_set[i] = g;
	ent_set(&e, "profile", name, i);
	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		err(x, g, e.who, "expected a group { ... }, got %s", type_desc(config_setting_type(g)));
		return;
	}
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	str_key(x, g, &e, "description", false, false, p->description, sizeof(p->description));
	list = member(x, g, &e, "points", true);
	if (!list || !aggregate(x, list, e.who, CONFIG_TYPE_LIST))
		return;
	n = config_setting_length(list);
	if (n == 0) {
		err(x, list, e.who, "at least one point is required");
		return;
	}
	if (n > CONF_MAX_POINTS)
		err(x, list, e.who, "too many points: %d (at most %d)", n, CONF_MAX_POINTS);
	p->points = calloc((size_t) n, sizeof(*p->points));
	ok = calloc((size_t) n, sizeof(*ok));
	x->point_ok[i] = ok;
	if (!p->points || !ok) {
		x->oom = true;
		return;
	}
	p->npoints = (size_t) n;
	for (int j = 0; j < n; j++)
		check_point(x, p, list, j, &ok[j]);
	check_overlaps(x, p, list, ok);
}

static void check_profiles(struct ctx *x, config_setting_t *root)
{
	config_setting_t *grp = config_setting_get_member(root, "profiles");
	int n;

	if (!grp)
		return;
	if (!aggregate(x, grp, NULL, CONFIG_TYPE_GROUP))
		return;
	n = config_setting_length(grp);
	if (n == 0)
		err(x, grp, NULL, "at least one profile is required");
	if (n > CONF_MAX_PROFILES)
		err(x, grp, NULL, "too many profiles: %d (at most %d)", n, CONF_MAX_PROFILES);
	if (n == 0)
		return;
	x->c->profiles = calloc((size_t) n, sizeof(*x->c->profiles));
	x->prof_set = calloc((size_t) n, sizeof(*x->prof_set));
	x->prof_name = calloc((size_t) n, sizeof(*x->prof_name));
	x->point_ok = calloc((size_t) n, sizeof(*x->point_ok));
	x->prof_any = calloc((size_t) n, sizeof(*x->prof_any));
	if (!x->c->profiles || !x->prof_set || !x->prof_name || !x->point_ok || !x->prof_any) {
		x->oom = true;
		return;
	}
	x->c->nprofiles = (size_t) n;
	x->npoint_ok = (size_t) n;
	for (int i = 0; i < n; i++)
		check_profile(x, grp, i);
}

/* Index of 'name' among the usable names, or -1. */
static int find_name(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; names && i < n; i++)
		if (names[i] && strcmp(names[i], name) == 0)
			return (int) i;
	return -1;
}

/* A device's max_registers must hold its widest register point. */
static void check_widths(struct ctx *x, config_setting_t *g, const struct ent *e, const struct device_conf *d)
{
	const struct profile *p = &x->c->profiles[d->profile];
	const bool *ok = x->point_ok[d->profile];

	for (size_t k = 0; ok && k < p->npoints; k++) {
		const struct point *pt = &p->points[k];
		int w = conf_vtype_width(pt->type);

		if (!ok[k] || pt->table == TABLE_COIL || pt->table == TABLE_DISCRETE || w <= d->max_registers)
			continue;
		err(x, config_setting_get_member(g, "max_registers"), e->who,
			"max_registers %d is less than the %d registers of point '%s' in profile '%s'",
			d->max_registers, w, pt->name, p->name);
		return;
	}
}

static void check_device(struct ctx *x, config_setting_t *list, int i)
{
	static const char *const keys[] = {
		"name", "bus", "unit", "profile", "interval", "timeout", "retries", "max_registers",
		"max_gap", "offline_after", "backoff_max", "enabled", NULL
	};
	struct device_conf *d = &x->c->devices[i];
	config_setting_t *g = config_setting_get_elem(list, (unsigned) i);
	config_setting_t *s, *s_unit = NULL;
	struct ent e;
	const char *v;
	char at[CONF_PATH_MAX * 2 + 16];
	bool unit_ok = false, interval_ok, backoff_set;
	long long unit = 0;
	double sec;

	ent_set(&e, "device", NULL, i);
	d->line = config_setting_source_line(g);
	d->bus = -1;
	d->profile = -1;
	d->retries = 1;
	d->max_registers = 125;
	d->max_gap = 8;
	d->offline_after = 3;
	d->backoff_max_ms = 300000;
	d->enabled = true;
	if (!aggregate(x, g, e.who, CONFIG_TYPE_GROUP))
		return;
	if (get_str(x, g, &e, "name", true, &v, &s)) {
		if (!name_ok(v, true)) {
			err(x, s, NULL, "invalid device name '%s': use " NAME_RULE
				" (it is an MQTT topic level)", v);
		} else {
			ent_set(&e, "device", v, i);
			scopy(d->name, sizeof(d->name), v);
			for (int j = 0; j < i; j++) {
				if (x->dev_name[j] && strcmp(x->dev_name[j], v) == 0) {
					where_at(x, x->dev_set[j], at, sizeof(at));
					err(x, s, NULL, "duplicate device '%s' (first defined at %s)", v, at);
					break;
				}
			}
			x->dev_name[i] = v;
			x->dev_set[i] = g;
		}
	}
	check_keys(x, g, &e, keys, NULL, NULL, NULL);
	if (get_str(x, g, &e, "bus", true, &v, &s)) {
		d->bus = find_name(x->bus_name, x->c->nbuses, v);
		if (d->bus < 0 && find_name(x->bus_any, x->c->nbuses, v) < 0)
			err(x, s, e.who, "unknown bus '%s'", v);
	}
	if (get_int(x, g, &e, "unit", true, &unit, &s_unit)) {
		if (d->bus >= 0 && x->bus_ok_unit[d->bus] && x->c->buses[d->bus].type == BUS_RTU) {
			if (unit < 1 || unit > 247)
				err(x, s_unit, e.who, "unit must be 1..247 on an rtu bus, got %lld", unit);
			else
				unit_ok = true;
		} else if (unit < 0 || unit > 255) {
			err(x, s_unit, e.who, "unit must be 0..255, got %lld", unit);
		} else {
			unit_ok = d->bus >= 0 && x->bus_ok_unit[d->bus];
		}
		if (unit >= 0 && unit <= 255)
			d->unit = (int) unit;
	}
	if (get_str(x, g, &e, "profile", true, &v, &s)) {
		d->profile = find_name(x->prof_name, x->c->nprofiles, v);
		if (d->profile < 0 && find_name(x->prof_any, x->c->nprofiles, v) < 0)
			err(x, s, e.who, "unknown profile '%s'", v);
	}
	interval_ok = time_key(x, g, &e, "interval", true, 0.1, 86400, &d->interval_ms);
	if (get_num(x, g, &e, "timeout", false, &sec, &s)) {
		if (sec != 0 && (sec < 0.01 || sec > 60))
			err(x, s, e.who, "timeout must be 0 (the bus' response_timeout) or 0.01..60 s, got %g", sec);
		else
			d->timeout_ms = (int) llround(sec * 1000.0);
	}
	int_key(x, g, &e, "retries", false, 0, 10, NULL, &d->retries);
	if (int_key(x, g, &e, "max_registers", false, 1, 125, NULL, &d->max_registers) && d->profile >= 0)
		check_widths(x, g, &e, d);
	int_key(x, g, &e, "max_gap", false, 0, 124, NULL, &d->max_gap);
	int_key(x, g, &e, "offline_after", false, 1, 100, NULL, &d->offline_after);
	backoff_set = time_key(x, g, &e, "backoff_max", false, 1, 86400, &d->backoff_max_ms);
	if (interval_ok && d->backoff_max_ms < d->interval_ms) {
		if (backoff_set)
			err(x, config_setting_get_member(g, "backoff_max"), e.who,
				"backoff_max %g s is less than interval %g s",
				d->backoff_max_ms / 1000.0, d->interval_ms / 1000.0);
		else
			d->backoff_max_ms = d->interval_ms;   /* default: max(300 s, interval) */
	}
	bool_key(x, g, &e, "enabled", &d->enabled);
	x->dev_unit_ok[i] = unit_ok;
	if (!d->enabled || !unit_ok)
		return;
	for (int j = 0; j < i; j++) {
		const struct device_conf *o = &x->c->devices[j];

		if (x->dev_unit_ok[j] && o->enabled && o->bus == d->bus && o->unit == d->unit && x->dev_set[j]) {
			where_at(x, x->dev_set[j], at, sizeof(at));
			err(x, s_unit, e.who, "unit %d on bus '%s' is already used by device '%s' (%s)",
				d->unit, x->c->buses[d->bus].name, o->name, at);
			break;
		}
	}
}

static void check_devices(struct ctx *x, config_setting_t *root)
{
	config_setting_t *list = config_setting_get_member(root, "devices");
	int n;

	if (!list)
		return;
	if (!aggregate(x, list, NULL, CONFIG_TYPE_LIST))
		return;
	n = config_setting_length(list);
	if (n == 0)
		err(x, list, NULL, "at least one device is required");
	if (n > CONF_MAX_DEVICES)
		err(x, list, NULL, "too many devices: %d (at most %d)", n, CONF_MAX_DEVICES);
	if (n == 0)
		return;
	x->c->devices = calloc((size_t) n, sizeof(*x->c->devices));
	x->dev_set = calloc((size_t) n, sizeof(*x->dev_set));
	x->dev_name = calloc((size_t) n, sizeof(*x->dev_name));
	x->dev_unit_ok = calloc((size_t) n, sizeof(*x->dev_unit_ok));
	if (!x->c->devices || !x->dev_set || !x->dev_name || !x->dev_unit_ok) {
		x->oom = true;
		return;
	}
	x->c->ndevices = (size_t) n;
	for (int i = 0; i < n; i++)
		check_device(x, list, i);
}

static void check_root(struct ctx *x, config_setting_t *root)
{
	static const char *const sections[] = { "gateway", "mqtt", "store", "uplink", "log", "clock", "buses",
						"devices", "profiles", NULL };
	static const char *const optional[] = { "mqtt", "store", "uplink", "log", "clock", NULL };
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned) i);

		if (!in_list(config_setting_name(s), sections))
			err(x, s, NULL, "unknown section '%s'", config_setting_name(s));
	}
	for (int i = 0; sections[i]; i++)
		if (!in_list(sections[i], optional) && !config_setting_get_member(root, sections[i]))
			err(x, NULL, NULL, "missing required section '%s'", sections[i]);
	check_gateway(x, root);
	check_mqtt(x, root);
	check_store(x, root);
	check_uplink(x, root);
	check_log(x, root);
	check_clock(x, root);
	check_buses(x, root);
	check_profiles(x, root);
	check_devices(x, root);
}

/*
 * libconfig says only "cannot open include file"; name the file by reading
 * the @include on the reported line.
 */
static void include_error(struct ctx *x, const char *file, int line, FILE *errs)
{
	char buf[1024], name[CONF_PATH_MAX] = "", full[CONF_PATH_MAX * 2];
	FILE *f = fopen(file, "r");
	int ln = 1;

	while (f && ln <= line && fgets(buf, sizeof(buf), f)) {
		char *p, *q;

		if (ln == line && (p = strstr(buf, "@include")) && (p = strchr(p, '"')) &&
		    (q = strchr(p + 1, '"'))) {
			*q = '\0';
			scopy(name, sizeof(name), p + 1);
			break;
		}
		if (strchr(buf, '\n'))
			ln++;
	}
	if (f)
		fclose(f);
	if (!name[0]) {
		fprintf(errs, "%s:%d: cannot open include file\n", file, line);
		return;
	}
	if (name[0] == '/') {
		/* libconfig 1.5 puts the include directory in front of any path */
		fprintf(errs, "%s:%d: cannot open include file '%s': write it relative to the "
			"directory of the main file\n", file, line, name);
		return;
	}
	source_path(x, name, full, sizeof(full));
	f = fopen(full, "r");
	if (f) {
		fclose(f);
		fprintf(errs, "%s:%d: cannot open include file '%s'\n", file, line, full);
	} else {
		fprintf(errs, "%s:%d: cannot open include file '%s': %s\n", file, line, full, strerror(errno));
	}
}

/*
 * libconfig says only "duplicate setting name".  When the reported line
 * begins with "NAME =" (or "NAME :") and NAME begins another line of the
 * file too, that is the name defined twice: give it.
 */
static void duplicate_error(const char *file, int line, FILE *errs)
{
	char buf[1024], name[CONF_PATH_MAX] = "";
	FILE *f = fopen(file, "r");
	int ln = 1, count = 0;

	for (int pass = 0; f && pass < 2; pass++) {
		rewind(f);
		ln = 1;
		while (fgets(buf, sizeof(buf), f)) {
			char *p = buf + strspn(buf, " \t");
			size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-*");
			char *q = p + n + strspn(p + n, " \t");

			if (n > 0 && n < sizeof(name) && (*q == '=' || *q == ':')) {
				if (pass == 0 && ln == line)
					snprintf(name, sizeof(name), "%.*s", (int) n, p);
				else if (pass == 1 && strlen(name) == n && strncmp(p, name, n) == 0)
					count++;
			}
			if (strchr(buf, '\n'))
				ln++;
		}
		if (!name[0])
			break;
	}
	if (f)
		fclose(f);
	if (count >= 2)
		fprintf(errs, "%s:%d: duplicate setting name '%s'\n", file, line, name);
	else
		fprintf(errs, "%s:%d: duplicate setting name\n", file, line);
}

/*
 * libconfig 1.5 exits the process ("input in flex scanner failed") when an
 * @include names a directory, or anything else it cannot read as a stream,
 * and it cuts an include name at a NUL byte ("profiles/\0x" is the
 * directory again).  Look for those before it parses: every
 * '@include "name"' line of the file and of the files it includes, named
 * as libconfig will open it (the include directory, '/', the name, even
 * when the name is absolute), and refuse NUL bytes, which have no place in
 * a text file.  Returns 1 after reporting a problem, 0, or -1 when the
 * includes nest too deeply (libconfig reports that; stopping there keeps a
 * file that includes itself many times from costing an exponential walk).
 */
static int check_includes(struct ctx *x, const char *file, int depth, FILE *errs)
{
	char *buf = NULL, full[CONF_PATH_MAX * 2];
	size_t cap = 0;
	ssize_t len;
	FILE *f;
	int ln = 0, bad = 0;

	if (depth > 10)
		return -1;
	if (!(f = fopen(file, "r")))
		return 0;   /* libconfig reports these */
	while (!bad && (len = getline(&buf, &cap, f)) >= 0) {
		char *p = buf + strspn(buf, " \t"), *q;
		struct stat st;

		ln++;
		if (memchr(buf, '\0', (size_t) len)) {
			if (errs)
				fprintf(errs, "%s:%d: NUL byte: not a text file\n", file, ln);
			bad = 1;
			break;
		}
		if (strncmp(p, "@include", 8) != 0 || !(p = strchr(p + 8, '"')) || !(q = strchr(p + 1, '"')))
			continue;
		*q = '\0';
		p++;
		if (p[0] == '/')
			snprintf(full, sizeof(full), "%s/%s", x->incdir, p);
		else
			source_path(x, p, full, sizeof(full));
		if (stat(full, &st) < 0)
			continue;   /* libconfig reports it */
		if (S_ISREG(st.st_mode)) {
			bad = check_includes(x, full, depth + 1, errs);
			continue;
		}
		if (errs && p[0] == '/')
			fprintf(errs, "%s:%d: cannot open include file '%s': write it relative to the "
				"directory of the main file\n", file, ln, p);
		else if (errs)
			fprintf(errs, "%s:%d: cannot open include file '%s': %s\n", file, ln, full,
				S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
		bad = 1;
	}
	free(buf);
	fclose(f);
	return bad;
}

static void free_ctx(struct ctx *x)
{
	for (size_t i = 0; x->point_ok && i < x->npoint_ok; i++)
		free(x->point_ok[i]);
	free(x->point_ok);
	free(x->bus_set);
	free(x->bus_name);
	free(x->bus_ok_unit);
	free(x->bus_any);
	free(x->prof_any);
	free(x->dev_set);
	free(x->dev_name);
	free(x->dev_unit_ok);
	free(x->prof_set);
	free(x->prof_name);
	for (int i = 0; i < x->nstored; i++)
		free(x->errs[i].msg);
	free(x->errs);
}

int conf_load(const char *path, struct conf **ret_conf, FILE *errs)
{
	struct ctx x = { .path = path };
	config_t cfg;
	struct stat st;
	const char *slash;
	FILE *f;
	int rc;

	if (ret_conf)
		*ret_conf = NULL;
	f = fopen(path, "r");
	if (!f || fstat(fileno(f), &st) < 0 || S_ISDIR(st.st_mode)) {
		rc = !f ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : -errno;
		if (f)
			fclose(f);
		if (errs)
			fprintf(errs, "%s: cannot read: %s\n", path, strerror(-rc));
		return rc;
	}
	fclose(f);
	if (strlen(path) >= CONF_PATH_MAX) {
		if (errs)
			fprintf(errs, "%s: cannot read: %s\n", path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	slash = strrchr(path, '/');
	if (!slash)
		snprintf(x.incdir, sizeof(x.incdir), ".");
	else if (slash == path)
		snprintf(x.incdir, sizeof(x.incdir), "/");
	else
		snprintf(x.incdir, sizeof(x.incdir), "%.*s", (int) (slash - path), path);

	if (check_includes(&x, path, 0, errs) > 0)
		return 1;
	config_init(&cfg);
	config_set_include_dir(&cfg, x.incdir);
	errno = 0;
	if (!config_read_file(&cfg, path)) {
		char file[CONF_PATH_MAX * 2];
		const char *text = config_error_text(&cfg);

		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO) {
			rc = errno ? -errno : -EIO;
			if (errs)
				fprintf(errs, "%s: cannot read: %s\n", path, strerror(-rc));
			goto out;
		}
		source_path(&x, config_error_file(&cfg), file, sizeof(file));
		if (errs && text && strcmp(text, "cannot open include file") == 0)
			include_error(&x, file, config_error_line(&cfg), errs);
		else if (errs && text && strcmp(text, "duplicate setting name") == 0)
			duplicate_error(file, config_error_line(&cfg), errs);
		else if (errs)
			fprintf(errs, "%s:%d: %s\n", file, config_error_line(&cfg), text ? text : "syntax error");
		rc = 1;
		goto out;
	}
	x.c = calloc(1, sizeof(*x.c));
	if (!x.c) {
		x.oom = true;
	} else {
		scopy(x.c->file, sizeof(x.c->file), path);
		check_root(&x, config_root_setting(&cfg));
	}
	rc = x.nerr;
	if (x.oom)
		rc = -ENOMEM;
	flush_errs(&x, errs);
	if (rc == 0 && ret_conf) {
		*ret_conf = x.c;
		x.c = NULL;
	}
out:
	free_ctx(&x);
	conf_free(x.c);
	config_destroy(&cfg);
	return rc;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->profiles && i < c->nprofiles; i++)
		free(c->profiles[i].points);
	free(c->profiles);
	free(c->buses);
	free(c->devices);
	free(c);
}

/* ---- printing ---- */

static void print_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char) *s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\x%02x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* Shortest text that reads back as v, always a libconfig float ("60.0", "0.02"). */
static void print_float(FILE *out, double v)
{
	char buf[512];
	double a = fabs(v);
	bool plain = a == 0 || (a >= 1e-4 && a < 1e15);
	int prec = 0;

	for (; plain && prec <= 20; prec++) {
		snprintf(buf, sizeof(buf), "%.*f", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	if (!plain || prec > 20) {
		for (prec = 1; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
	fputs(buf, out);
	if (!strpbrk(buf, ".eEni"))
		fputs(".0", out);
}

static void print_secs(FILE *out, const char *indent, const char *key, int ms)
{
	fprintf(out, "%s%s = ", indent, key);
	print_float(out, ms / 1000.0);
	fputs(";\n", out);
}

static void print_skey(FILE *out, const char *indent, const char *key, const char *v)
{
	fprintf(out, "%s%s = ", indent, key);
	print_str(out, v);
	fputs(";\n", out);
}

static void print_point(FILE *out, const struct point *p)
{
	fputs("\t\t\t{ name = ", out);
	print_str(out, p->name);
	fprintf(out, "; table = \"%s\"; address = %u; type = \"%s\";", conf_table_name(p->table),
		(unsigned) p->address, conf_vtype_name(p->type));
	if (p->bit >= 0)
		fprintf(out, " bit = %d;", p->bit);
	if (p->type != VT_BOOL) {
		fprintf(out, " order = \"%s\"; scale = ", conf_worder_name(p->order));
		print_float(out, p->scale);
		fputs("; offset = ", out);
		print_float(out, p->offset);
		fputc(';', out);
	}
	fputs(" unit = ", out);
	print_str(out, p->unit);
	fputc(';', out);
	if (p->type != VT_BOOL) {
		if (p->has_min) {
			fputs(" min = ", out);
			print_float(out, p->min);
			fputc(';', out);
		}
		if (p->has_max) {
			fputs(" max = ", out);
			print_float(out, p->max);
			fputc(';', out);
		}
		if (p->decimals >= 0)
			fprintf(out, " decimals = %d;", p->decimals);
	}
	fputs(" }", out);
}

void conf_print(const struct conf *c, FILE *out)
{
	const struct mqtt_conf *m;

	if (!c || !out)
		return;
	m = &c->mqtt;
	fputs("gateway = {\n", out);
	print_skey(out, "\t", "site", c->site);
	print_skey(out, "\t", "id", c->id);
	fputs("};\nmqtt = {\n", out);
	print_skey(out, "\t", "host", m->host);
	fprintf(out, "\tport = %d;\n", m->port);
	print_skey(out, "\t", "ca_file", m->ca_file);
	print_skey(out, "\t", "cert_file", m->cert_file);
	print_skey(out, "\t", "key_file", m->key_file);
	print_skey(out, "\t", "username", m->username);
	print_skey(out, "\t", "password_file", m->password_file);
	print_skey(out, "\t", "client_id", m->client_id);
	fprintf(out, "\tkeepalive = %d;\n\tqos = %d;\n", m->keepalive_s, m->qos);
	print_skey(out, "\t", "topic_prefix", m->topic_prefix);
	fprintf(out, "\tqueue_max = %d;\n\tmax_inflight = %d;\n", m->queue_max, m->max_inflight);
	print_secs(out, "\t", "reconnect_min", m->reconnect_min_ms);
	print_secs(out, "\t", "reconnect_max", m->reconnect_max_ms);
	fprintf(out, "\tstatus_interval = %d;\n};\n", m->status_interval_s);

	fputs("store = {\n", out);
	print_skey(out, "\t", "dir", c->store.dir);
	fprintf(out, "\tmax_bytes = %lldL;\n", (long long) c->store.max_bytes);
	print_secs(out, "\t", "commit_interval", c->store.commit_interval_ms);
	fputs("};\nuplink = {\n", out);
	{
		const struct uplink_conf *u = &c->uplink;

		print_skey(out, "\t", "url", u->url);
		fprintf(out, "\twindow = %d;\n", u->window_s);
		print_secs(out, "\t", "grace", u->grace_ms);
		print_skey(out, "\t", "token_file", u->token_file);
		print_skey(out, "\t", "ca_file", u->ca_file);
		print_skey(out, "\t", "cert_file", u->cert_file);
		print_skey(out, "\t", "key_file", u->key_file);
		fprintf(out, "\tgzip = %s;\n\tallow_insecure = %s;\n", u->gzip ? "true" : "false",
			u->allow_insecure ? "true" : "false");
		fprintf(out, "\tbatch_max_items = %d;\n\tbatch_max_bytes = %d;\n", u->batch_max_items, u->batch_max_bytes);
		print_secs(out, "\t", "backoff_base", u->backoff_base_ms);
		print_secs(out, "\t", "backoff_max", u->backoff_max_ms);
		print_secs(out, "\t", "connect_timeout", u->connect_timeout_ms);
		print_secs(out, "\t", "timeout", u->timeout_ms);
		fprintf(out, "\tlow_speed_limit = %d;\n\tlow_speed_time = %d;\n", u->low_speed_limit, u->low_speed_time_s);
	}
	fprintf(out, "};\nlog = {\n\tsummary_interval = %d;\n};\n", c->log.summary_interval_s);
	fprintf(out, "clock = {\n\ttrust_system = %s;\n};\n", c->clock.trust_system ? "true" : "false");

	fputs("buses = (\n", out);
	for (size_t i = 0; i < c->nbuses; i++) {
		const struct bus_conf *b = &c->buses[i];

		fputs("\t{\n", out);
		print_skey(out, "\t\t", "name", b->name);
		if (b->type == BUS_RTU) {
			fputs("\t\ttype = \"rtu\";\n", out);
			print_skey(out, "\t\t", "device", b->device);
			fprintf(out, "\t\tbaud = %d;\n\t\tparity = \"%c\";\n\t\tdata_bits = %d;\n"
				"\t\tstop_bits = %d;\n\t\trs485 = %s;\n", b->baud, b->parity, b->data_bits,
				b->stop_bits, b->rs485 ? "true" : "false");
		} else {
			fputs("\t\ttype = \"tcp\";\n", out);
			print_skey(out, "\t\t", "host", b->host);
			fprintf(out, "\t\tport = %d;\n", b->port);
			print_secs(out, "\t\t", "connect_timeout", b->connect_timeout_ms);
		}
		print_secs(out, "\t\t", "response_timeout", b->response_timeout_ms);
		print_secs(out, "\t\t", "pause", b->pause_ms);
		fputs(i + 1 < c->nbuses ? "\t},\n" : "\t}\n", out);
	}
	fputs(");\ndevices = (\n", out);
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_conf *d = &c->devices[i];

		fputs("\t{\n", out);
		print_skey(out, "\t\t", "name", d->name);
		if (d->bus >= 0 && (size_t) d->bus < c->nbuses)
			print_skey(out, "\t\t", "bus", c->buses[d->bus].name);
		fprintf(out, "\t\tunit = %d;\n", d->unit);
		if (d->profile >= 0 && (size_t) d->profile < c->nprofiles)
			print_skey(out, "\t\t", "profile", c->profiles[d->profile].name);
		print_secs(out, "\t\t", "interval", d->interval_ms);
		print_secs(out, "\t\t", "timeout", d->timeout_ms);
		fprintf(out, "\t\tretries = %d;\n\t\tmax_registers = %d;\n\t\tmax_gap = %d;\n"
			"\t\toffline_after = %d;\n", d->retries, d->max_registers, d->max_gap, d->offline_after);
		print_secs(out, "\t\t", "backoff_max", d->backoff_max_ms);
		fprintf(out, "\t\tenabled = %s;\n", d->enabled ? "true" : "false");
		fputs(i + 1 < c->ndevices ? "\t},\n" : "\t}\n", out);
	}
	fputs(");\nprofiles = {\n", out);
	for (size_t i = 0; i < c->nprofiles; i++) {
		const struct profile *p = &c->profiles[i];

		fprintf(out, "\t%s = {\n", p->name);
		print_skey(out, "\t\t", "description", p->description);
		fputs("\t\tpoints = (\n", out);
		for (size_t k = 0; k < p->npoints; k++) {
			print_point(out, &p->points[k]);
			fputs(k + 1 < p->npoints ? ",\n" : "\n", out);
		}
		fputs("\t\t);\n\t};\n", out);
	}
	fputs("};\n", out);
}
