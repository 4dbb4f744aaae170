/*
 * model.c: what the simulated devices' registers hold.
 *
 * Every point of every simulated device gets a deterministic value derived
 * from a hash of (device name, point name, seed): inside its min..max (20 to
 * 80 % of the range) when it has both, else a small positive number.  The
 * value is rounded to what the register can carry (integer types: whole raw
 * steps, raw = round((value - offset) / scale); floats: the point's decimals,
 * or 3) and encoded with the point's type and word order, the exact inverse
 * of decode.h.  What a correct decoder then reads is found by decoding the
 * registers again here (independently of src/decode.c, which is what the
 * tests check), so overlapping points and client writes come out right, and
 * is what the --values file lists.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "sim.h"

#define WANDER_PERIOD_S 600.0
#define WANDER_AMPLITUDE 0.05

/* ---- growable buffer --------------------------------------------------- */

int dbuf_add(struct dbuf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t) n < sizeof(small))
		return dbuf_add(b, small, (size_t) n);
	{
		char *big = malloc((size_t) n + 1);
		int rc;

		if (big == NULL)
			return -1;
		va_start(ap, fmt);
		vsnprintf(big, (size_t) n + 1, fmt, ap);
		va_end(ap);
		rc = dbuf_add(b, big, (size_t) n);
		free(big);
		return rc;
	}
}

void dbuf_consume(struct dbuf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p)
		b->p[b->len] = '\0';
}

void dbuf_free(struct dbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- hashing and randomness -------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t point_hash(const char *dev, const char *pt, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *s;

	for (s = (const unsigned char *) dev; *s; s++)
		h = (h ^ *s) * 0x100000001b3ULL;
	h = (h ^ 0xff) * 0x100000001b3ULL;
	for (s = (const unsigned char *) pt; *s; s++)
		h = (h ^ *s) * 0x100000001b3ULL;
	return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ULL));
}

uint64_t model_rand(struct sim_model *m)
{
	uint64_t x = m->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	m->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* ---- encoding ----------------------------------------------------------- */

static uint16_t swap16(uint16_t r)
{
	return (uint16_t) ((r >> 8) | (r << 8));
}

static bool is_bit_table(enum table t)
{
	return t == TABLE_COIL || t == TABLE_DISCRETE;
}

static bool is_float(enum vtype t)
{
	return t == VT_F32 || t == VT_F64;
}

static int point_width(const struct point *p)
{
	return is_bit_table(p->table) ? 1 : conf_vtype_width(p->type);
}

static uint16_t *point_regs(const struct sim_dev *d, const struct point *p)
{
	switch (p->table) {
	case TABLE_HOLDING:
		return d->map->tab_registers + p->address;
	case TABLE_INPUT:
		return d->map->tab_input_registers + p->address;
	default:
		return NULL;
	}
}

static uint8_t *point_bits(const struct sim_dev *d, const struct point *p)
{
	switch (p->table) {
	case TABLE_COIL:
		return d->map->tab_bits + p->address;
	case TABLE_DISCRETE:
		return d->map->tab_input_bits + p->address;
	default:
		return NULL;
	}
}

/* Integer types: the raw values the type holds. */
static void int_limits(enum vtype t, double *lo, double *hi)
{
	switch (t) {
	case VT_U16: *lo = 0; *hi = 65535.0; break;
	case VT_S16: *lo = -32768.0; *hi = 32767.0; break;
	case VT_U32: *lo = 0; *hi = 4294967295.0; break;
	case VT_S32: *lo = -2147483648.0; *hi = 2147483647.0; break;
	/* the largest doubles below 2^64 and 2^63 */
	case VT_U64: *lo = 0; *hi = 18446744073709549568.0; break;
	case VT_S64: *lo = -9223372036854775808.0; *hi = 9223372036854774784.0; break;
	default: *lo = 0; *hi = 1.0; break;
	}
}

/* The value's bits, most significant word first, for a raw number already
 * valid for the type (integral and in range for integers). */
static uint64_t raw_bits(enum vtype t, double raw)
{
	uint64_t bits = 0;
	uint32_t u32;
	float f;

	switch (t) {
	case VT_U16: case VT_U32: case VT_U64:
		bits = (uint64_t) raw;
		break;
	case VT_S16: case VT_S32: case VT_S64:
		bits = (uint64_t) (int64_t) raw;
		break;
	case VT_F32:
		f = (float) raw;
		memcpy(&u32, &f, sizeof(u32));
		bits = u32;
		break;
	case VT_F64:
		memcpy(&bits, &raw, sizeof(bits));
		break;
	case VT_BOOL:
		bits = raw != 0;
		break;
	}
	return bits;
}

/* Store a raw number into the point's registers or bit. */
static void encode_raw(struct sim_dev *d, const struct point *p, double raw)
{
	bool byteswap = p->order == WO_BADC || p->order == WO_DCBA;
	bool reverse = p->order == WO_CDAB || p->order == WO_DCBA;
	uint16_t *regs;
	uint16_t w[4];
	int n, i;

	if (is_bit_table(p->table)) {
		*point_bits(d, p) = raw != 0;
		return;
	}
	regs = point_regs(d, p);
	if (p->type == VT_BOOL) {
		uint16_t l = byteswap ? swap16(regs[0]) : regs[0];

		if (p->bit < 0)
			l = raw != 0;
		else if (raw != 0)
			l = (uint16_t) (l | (1u << p->bit));
		else
			l = (uint16_t) (l & ~(1u << p->bit));
		regs[0] = byteswap ? swap16(l) : l;
		return;
	}
	n = conf_vtype_width(p->type);
	{
		uint64_t bits = raw_bits(p->type, raw);

		for (i = 0; i < n; i++)
			w[i] = (uint16_t) (bits >> (16 * (n - 1 - i)));
	}
	for (i = 0; i < n; i++) {
		uint16_t r = w[reverse ? n - 1 - i : i];

		regs[i] = byteswap ? swap16(r) : r;
	}
}

/* The raw number a correct decoder reads from the point's registers. */
static double decode_raw_sim(const struct sim_dev *d, const struct point *p)
{
	bool byteswap = p->order == WO_BADC || p->order == WO_DCBA;
	bool reverse = p->order == WO_CDAB || p->order == WO_DCBA;
	const uint16_t *regs;
	uint64_t bits = 0;
	int n, i;

	if (is_bit_table(p->table))
		return *point_bits(d, p) != 0;
	regs = point_regs(d, p);
	n = conf_vtype_width(p->type);
	for (i = 0; i < n; i++) {
		uint16_t r = regs[reverse ? n - 1 - i : i];

		bits = (bits << 16) | (byteswap ? swap16(r) : r);
	}
	switch (p->type) {
	case VT_U16: case VT_U32: case VT_U64:
		return (double) bits;
	case VT_S16: {
		int16_t v;
		uint16_t u = (uint16_t) bits;

		memcpy(&v, &u, sizeof(v));
		return v;
	}
	case VT_S32: {
		int32_t v;
		uint32_t u = (uint32_t) bits;

		memcpy(&v, &u, sizeof(v));
		return v;
	}
	case VT_S64: {
		int64_t v;

		memcpy(&v, &bits, sizeof(v));
		return (double) v;
	}
	case VT_F32: {
		float v;
		uint32_t u = (uint32_t) bits;

		memcpy(&v, &u, sizeof(v));
		return v;
	}
	case VT_F64: {
		double v;

		memcpy(&v, &bits, sizeof(v));
		return v;
	}
	case VT_BOOL:
		if (p->bit < 0)
			return bits != 0;
		return (double) ((bits >> p->bit) & 1u);
	}
	return NAN;
}

static double scaled(const struct point *p, double raw)
{
	return raw * p->scale + p->offset;
}

/*
 * The raw number for a decoded value.  Integer types round to whole steps;
 * with 'clamp' a value the type cannot hold is clamped, without it it is an
 * error (-ERANGE; -EDOM for NaN/infinity on an integer type).
 */
static int value_to_raw(const struct point *p, double v, bool clamp, double *ret)
{
	double raw = (v - p->offset) / p->scale;
	double lo, hi;

	if (is_bit_table(p->table) || p->type == VT_BOOL) {
		if (isnan(raw))
			return -EDOM;
		*ret = round(raw) != 0;
		return 0;
	}
	if (p->type == VT_F64) {
		*ret = raw;
		return 0;
	}
	if (p->type == VT_F32) {
		if (isfinite(raw) && fabs(raw) > FLT_MAX) {
			if (!clamp)
				return -ERANGE;
			raw = raw < 0 ? -FLT_MAX : FLT_MAX;
		}
		*ret = raw;
		return 0;
	}
	if (!isfinite(raw)) {
		if (!clamp || isnan(raw))
			return -EDOM;
	}
	raw = round(raw);
	int_limits(p->type, &lo, &hi);
	if (raw < lo || raw > hi) {
		if (!clamp)
			return -ERANGE;
		raw = raw < lo ? lo : hi;
	}
	*ret = raw;
	return 0;
}

/* Put a model value (clamped, rounded, kept inside min..max where one raw
 * step allows) into the registers. */
static void put_model_value(struct sim_dev *d, const struct point *p, double v)
{
	double raw, lo, hi;

	if (is_float(p->type) && !is_bit_table(p->table)) {
		double k = pow(10.0, p->decimals >= 0 && p->decimals <= 9 ? p->decimals : 3);

		v = round(v * k) / k;
	}
	if (value_to_raw(p, v, true, &raw) < 0)
		raw = 0;
	if (!is_float(p->type) && p->type != VT_BOOL && !is_bit_table(p->table)) {
		int_limits(p->type, &lo, &hi);
		if (p->has_min && scaled(p, raw) < p->min) {
			double r2 = raw + (p->scale > 0 ? 1 : -1);

			if (r2 >= lo && r2 <= hi)
				raw = r2;
		}
		if (p->has_max && scaled(p, raw) > p->max) {
			double r2 = raw - (p->scale > 0 ? 1 : -1);

			if (r2 >= lo && r2 <= hi)
				raw = r2;
		}
	}
	encode_raw(d, p, raw);
}

/* ---- the model ----------------------------------------------------------- */

static double initial_value(const struct sim_model *m, const struct sim_dev *d,
			    const struct point *p, double *phase)
{
	uint64_t h = point_hash(d->dc->name, p->name, m->seed);
	double f = 0.2 + 0.6 * ((double) (h >> 11) * 0x1.0p-53);
	double small = 1.0 + (double) ((h >> 20) % 990) / 10.0;

	*phase = (double) ((h >> 40) & 0xffff) / 65536.0 * 2.0 * M_PI;
	if (p->type == VT_BOOL || is_bit_table(p->table))
		return scaled(p, (double) ((h >> 7) & 1u));
	if (p->has_min && p->has_max)
		return p->min + (p->max - p->min) * f;
	if (p->has_min)
		return p->min + small;
	if (p->has_max)
		return p->max - small;
	return small;
}

bool model_refresh(struct sim_dev *d)
{
	bool changed = false;
	size_t i;

	for (i = 0; i < d->npts; i++) {
		struct sim_point *sp = &d->pts[i];
		double v = scaled(sp->p, decode_raw_sim(d, sp->p));

		if (!(v == sp->expected || (isnan(v) && isnan(sp->expected))))
			changed = true;
		sp->expected = v;
	}
	return changed;
}

static int mapping_size(const struct profile *prof, enum table t)
{
	int n = 0;
	size_t i;

	for (i = 0; i < prof->npoints; i++) {
		const struct point *p = &prof->points[i];
		int end = p->address + point_width(p);

		if (p->table == t && end > n)
			n = end;
	}
	return n;
}

int model_init(struct sim_model *m, const struct conf *c, int bus, uint64_t seed,
	       bool wander, const char *values_path, FILE *err)
{
	size_t i, j, n = 0;

	memset(m, 0, sizeof(*m));
	m->conf = c;
	m->seed = seed;
	m->rng = mix64(seed ^ 0x5eed5eed5eedULL) | 1;
	m->wander = wander;
	m->values_path = values_path;

	for (i = 0; i < c->ndevices; i++)
		if (c->devices[i].bus == bus && c->devices[i].enabled)
			n++;
	m->devs = calloc(n ? n : 1, sizeof(*m->devs));
	if (m->devs == NULL)
		return -1;

	for (i = 0; i < c->ndevices; i++) {
		const struct device_conf *dc = &c->devices[i];
		struct sim_dev *d;

		if (dc->bus != bus || !dc->enabled)
			continue;
		if (dc->unit < 0 || dc->unit > 255 || (size_t) dc->profile >= c->nprofiles) {
			fprintf(err, "agrigw-sim: device %s: unit %d or profile unusable, skipped\n",
				dc->name, dc->unit);
			continue;
		}
		if (m->by_unit[dc->unit]) {
			fprintf(err, "agrigw-sim: device %s: unit %d already simulated as %s, skipped\n",
				dc->name, dc->unit, m->by_unit[dc->unit]->dc->name);
			continue;
		}
		d = &m->devs[m->ndevs];
		d->dc = dc;
		d->prof = &c->profiles[dc->profile];
		d->map = modbus_mapping_new_start_address(
			0, (unsigned) mapping_size(d->prof, TABLE_COIL),
			0, (unsigned) mapping_size(d->prof, TABLE_DISCRETE),
			0, (unsigned) mapping_size(d->prof, TABLE_HOLDING),
			0, (unsigned) mapping_size(d->prof, TABLE_INPUT));
		if (d->map == NULL)
			return -1;
		d->npts = d->prof->npoints;
		d->pts = calloc(d->npts ? d->npts : 1, sizeof(*d->pts));
		if (d->pts == NULL) {
			modbus_mapping_free(d->map);
			d->map = NULL;
			return -1;
		}
		m->ndevs++;
		m->by_unit[dc->unit] = d;
		for (j = 0; j < d->npts; j++) {
			struct sim_point *sp = &d->pts[j];

			sp->p = &d->prof->points[j];
			sp->base = initial_value(m, d, sp->p, &sp->phase);
			put_model_value(d, sp->p, sp->base);
		}
		model_refresh(d);
	}
	if (wander)
		model_wander(m, 0.0);
	return 0;
}

void model_free(struct sim_model *m)
{
	size_t i;

	for (i = 0; i < m->ndevs; i++) {
		modbus_mapping_free(m->devs[i].map);
		free(m->devs[i].pts);
	}
	free(m->devs);
	m->devs = NULL;
	m->ndevs = 0;
}

struct sim_dev *model_find_dev(struct sim_model *m, const char *name_or_unit)
{
	char *end;
	long u;
	size_t i;

	for (i = 0; i < m->ndevs; i++)
		if (strcmp(m->devs[i].dc->name, name_or_unit) == 0)
			return &m->devs[i];
	errno = 0;
	u = strtol(name_or_unit, &end, 10);
	if (errno == 0 && end != name_or_unit && *end == '\0' && u >= 0 && u <= 255)
		return m->by_unit[u];
	return NULL;
}

const struct sim_point *model_find_point(const struct sim_dev *d, const char *point)
{
	size_t i;

	for (i = 0; i < d->npts; i++)
		if (strcmp(d->pts[i].p->name, point) == 0)
			return &d->pts[i];
	return NULL;
}

bool model_wander(struct sim_model *m, double t)
{
	bool changed = false;
	size_t i, j;

	for (i = 0; i < m->ndevs; i++) {
		struct sim_dev *d = &m->devs[i];

		for (j = 0; j < d->npts; j++) {
			struct sim_point *sp = &d->pts[j];
			const struct point *p = sp->p;
			double amp, v;

			if (sp->fixed || p->type == VT_BOOL || is_bit_table(p->table))
				continue;
			if (p->has_min && p->has_max)
				amp = WANDER_AMPLITUDE * (p->max - p->min);
			else
				amp = WANDER_AMPLITUDE * fabs(sp->base);
			v = sp->base + amp * sin(2.0 * M_PI * t / WANDER_PERIOD_S + sp->phase);
			if (p->has_min && v < p->min)
				v = p->min;
			if (p->has_max && v > p->max)
				v = p->max;
			put_model_value(d, p, v);
		}
		if (model_refresh(d))
			changed = true;
	}
	return changed;
}

static int parse_value(const char *s, double *v)
{
	char *end;

	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "on") == 0) {
		*v = 1;
		return 0;
	}
	if (strcasecmp(s, "false") == 0 || strcasecmp(s, "off") == 0) {
		*v = 0;
		return 0;
	}
	errno = 0;
	*v = strtod(s, &end);
	if (end == s || *end != '\0' || errno == ERANGE)
		return -1;
	return 0;
}

int model_set(struct sim_model *m, struct sim_dev *d, const char *point,
	      const char *value, char *err, size_t errlen)
{
	struct sim_point *sp = NULL;
	double v, raw;
	size_t i;
	int rc;

	(void) m;
	for (i = 0; i < d->npts; i++)
		if (strcmp(d->pts[i].p->name, point) == 0)
			sp = &d->pts[i];
	if (sp == NULL) {
		snprintf(err, errlen, "no point %s on %s", point, d->dc->name);
		return -1;
	}
	if (parse_value(value, &v) < 0) {
		snprintf(err, errlen, "bad value %s", value);
		return -1;
	}
	rc = value_to_raw(sp->p, v, false, &raw);
	if (rc == -EDOM) {
		snprintf(err, errlen, "%s is %s: no NaN or infinity", point, conf_vtype_name(sp->p->type));
		return -1;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s does not fit %s with scale %g offset %g", value,
			 conf_vtype_name(sp->p->type), sp->p->scale, sp->p->offset);
		return -1;
	}
	sp->fixed = true;
	sp->base = v;
	encode_raw(d, sp->p, raw);
	model_refresh(d);
	return 0;
}

/* ---- the --values file --------------------------------------------------- */

static json_t *json_number(double v)
{
	if (!isfinite(v))
		return json_null();
	if (v == trunc(v) && fabs(v) < 9007199254740992.0)
		return json_integer((json_int_t) v);
	return json_real(v);
}

int model_write_values(const struct sim_model *m)
{
	json_t *root, *devices;
	char *tmp;
	size_t i, j, n;
	int rc = -1;

	if (m->values_path == NULL)
		return 0;
	root = json_object();
	devices = json_object();
	if (root == NULL || devices == NULL) {
		json_decref(root);
		json_decref(devices);
		return -1;
	}
	json_object_set_new(root, "devices", devices);
	for (i = 0; i < m->ndevs; i++) {
		const struct sim_dev *d = &m->devs[i];
		json_t *dev = json_object(), *pts = json_object();

		json_object_set_new(dev, "unit", json_integer(d->dc->unit));
		for (j = 0; j < d->npts; j++)
			json_object_set_new(pts, d->pts[j].p->name, json_number(d->pts[j].expected));
		json_object_set_new(dev, "points", pts);
		json_object_set_new(devices, d->dc->name, dev);
	}
	n = strlen(m->values_path) + 32;
	tmp = malloc(n);
	if (tmp != NULL) {
		snprintf(tmp, n, "%s.tmp%ld", m->values_path, (long) getpid());
		if (json_dump_file(root, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) < 0)
			fprintf(stderr, "agrigw-sim: cannot write %s\n", tmp);
		else if (rename(tmp, m->values_path) < 0)
			fprintf(stderr, "agrigw-sim: rename %s: %s\n", tmp, strerror(errno));
		else
			rc = 0;
		if (rc < 0)
			unlink(tmp);
		free(tmp);
	}
	json_decref(root);
	return rc;
}
