/*
 * fuzz.h: what the fuzz targets share.  A reader that hands out the input's
 * bytes as small numbers (zeros once it runs dry, so every input is a
 * complete case), the profile builder of fuzz_decode and fuzz_modbus_reply,
 * the invariant check that aborts with a message, and a scratch directory.
 *
 * The targets are built two ways: with clang and libFuzzer
 * (-fsanitize=fuzzer,address,undefined, `make fuzz`), and with the normal
 * compiler against replay.c's main(), which runs each target once over its
 * seed corpus (`make check-fuzz-corpus`, part of `make check`).
 */
#ifndef AGRIGW_FUZZ_H
#define AGRIGW_FUZZ_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of ours does not hold: say which and abort (a crash to libFuzzer). */
#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t hi = fuzz_u8(in);

	return (uint16_t) (hi << 8 | fuzz_u8(in));
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | fuzz_u8(in);
	return v;
}

/* A double: mostly small "datasheet" numbers, sometimes any 64-bit pattern
 * (NaN, infinity, subnormals, huge). */
static inline double fuzz_double(struct fuzz_in *in)
{
	static const double table[] = { 0, 1, -1, 0.1, 0.01, 0.001, 10, 100, 1000, -40, 0.5, 1e-6,
					1e15, -1e15, 65535, -32768, 4294967295.0, 1e300 };
	uint8_t sel = fuzz_u8(in);
	uint64_t bits;
	double d;

	if (sel < 0xe0)
		return table[sel % (sizeof(table) / sizeof(table[0]))];
	bits = fuzz_u64(in);
	memcpy(&d, &bits, sizeof(d));
	return d;
}

/*
 * Up to 'max' points as conf.c would accept them (coil and discrete points
 * are bool, bit only on register bools, bools are not scaled and have no
 * range, nothing runs past 65535), except
 * that overlaps and repeated names are allowed: the planner and decoder
 * must cope with them anyway.  Addresses cluster below 64 unless the
 * input asks for the whole range, so merging happens.  Returns the count.
 */
static inline size_t fuzz_points(struct fuzz_in *in, struct point *pts, size_t max)
{
	size_t n = fuzz_u8(in) % (max + 1);

	for (size_t i = 0; i < n; i++) {
		struct point *p = &pts[i];
		uint8_t a = fuzz_u8(in), b = fuzz_u8(in), addr_hi = fuzz_u8(in), addr_lo = fuzz_u8(in);
		long addr;
		int width;

		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "p%zu", i);
		p->table = (enum table) (a & 3);
		p->type = (enum vtype) ((a >> 2) % 9);
		p->order = (enum worder) ((a >> 6) & 3);
		p->bit = -1;
		if (p->table == TABLE_COIL || p->table == TABLE_DISCRETE)
			p->type = VT_BOOL;
		else if (p->type == VT_BOOL && (b & 0x10))
			p->bit = b & 15;
		if (p->type == VT_BOOL)
			p->order = WO_ABCD;
		width = conf_vtype_width(p->type);
		addr = b & 0x80 ? (addr_hi << 8 | addr_lo) : addr_lo & 63;
		if (addr + width - 1 > 65535)
			addr = 65536 - width;
		p->address = (uint16_t) addr;
		p->scale = 1;
		p->decimals = -1;
		/* conf.c takes finite numbers only, and no zero scale */
		if (p->type != VT_BOOL && (b & 0x20)) {
			p->scale = fuzz_double(in);
			p->offset = fuzz_double(in);
			p->decimals = (int) (fuzz_u8(in) % 12) - 1;
			if (!isfinite(p->scale) || p->scale == 0)
				p->scale = 1;
			if (!isfinite(p->offset))
				p->offset = 0;
		}
		if (p->type != VT_BOOL && (b & 0x40)) {
			p->min = fuzz_double(in);
			p->max = fuzz_double(in);
			p->has_min = isfinite(p->min);
			p->has_max = isfinite(p->max);
		}
		p->line = (int) i + 1;
	}
	return n;
}

/* A fresh directory for scratch files, on tmpfs when there is one; exits on failure. */
static inline void fuzz_scratch_dir(char *buf, size_t size, const char *what)
{
	const char *base = getenv("TMPDIR");

	if (!base || !base[0])
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(buf, size, "%s/agrigw-%s-XXXXXX", base, what);
	if (!mkdtemp(buf)) {
		fprintf(stderr, "%s: mkdtemp %s: %s\n", what, buf, strerror(errno));
		exit(2);
	}
}

/* Write a whole file; exits on failure (the fuzzer's disk, not our bug). */
static inline void fuzz_write_file(const char *path, const void *data, size_t size)
{
	FILE *f = fopen(path, "wb");

	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
		fprintf(stderr, "write %s: %s\n", path, strerror(errno));
		exit(2);
	}
}

#endif
