/*
 * sim.h: internals shared by the Modbus device simulator's files.
 *
 *   model.c    register contents: initial values, encoding, drift, "set",
 *              the expected-values JSON file
 *   serve.c    requests in, replies out: MBAP and RTU framing, CRC, the
 *              libmodbus reply and the injected faults
 *   control.c  the one-line control commands and the statistics
 *   sim.c      command line, sockets, the poll loop, signals
 *
 * Single threaded: everything runs in the poll loop of sim.c.
 */
#ifndef AGRIGW_SIM_H
#define AGRIGW_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modbus.h>

#include "conf.h"

#define SIM_MAX_EXC 16           /* "exception" rules per unit */

struct sim_point {
	const struct point *p;
	double base;             /* decoded value the model aims at, before drift */
	double phase;            /* drift phase, radians */
	bool fixed;              /* set by control: does not drift */
	double expected;         /* decoded from the registers as they are now */
};

struct sim_exc_rule {
	uint16_t addr;
	uint8_t code;
};

struct sim_faults {
	bool silent;
	struct sim_exc_rule exc[SIM_MAX_EXC];
	int nexc;
	unsigned badcrc, garbage, wrongunit, truncate;
	unsigned delay_ms;
};

struct sim_stats {
	uint64_t requests, replies, exceptions, faults;
};

struct sim_dev {
	const struct device_conf *dc;
	const struct profile *prof;
	modbus_mapping_t *map;
	struct sim_point *pts;
	size_t npts;
	struct sim_faults f;
	struct sim_stats st;
};

struct sim_model {
	const struct conf *conf;
	struct sim_dev *devs;
	size_t ndevs;
	struct sim_dev *by_unit[256];
	uint64_t seed;
	uint64_t rng;            /* xorshift state for garbage bytes */
	const char *values_path; /* NULL: no file */
	bool wander;
	bool rtu;                /* serving RTU framing (unit 0 = broadcast) */
	uint64_t bad_frames;     /* undecodable input (RTU CRC errors, bad MBAP) */
	uint64_t ignored;        /* frames for units nobody simulates, broadcasts */
	unsigned clients;        /* TCP clients connected now */
	bool reset_pending;      /* "reset" asked for: sim.c cuts the TCP clients off */
	uint64_t resets;         /* TCP connections reset on command */
};

/* A growable byte buffer. */
struct dbuf {
	char *p;
	size_t len, cap;
};

int dbuf_add(struct dbuf *b, const void *data, size_t n);
int dbuf_printf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dbuf_consume(struct dbuf *b, size_t n);
void dbuf_free(struct dbuf *b);

/* model.c */
int model_init(struct sim_model *m, const struct conf *c, int bus, uint64_t seed,
	       bool wander, const char *values_path, FILE *err);
void model_free(struct sim_model *m);
struct sim_dev *model_find_dev(struct sim_model *m, const char *name_or_unit);
/* Re-decode a device's points from its registers; true if any changed. */
bool model_refresh(struct sim_dev *d);
/* Move drifting points to time t (seconds); true if any register changed. */
bool model_wander(struct sim_model *m, double t);
/* Set a point to a decoded value; 0 or -1 with a message in err. */
int model_set(struct sim_model *m, struct sim_dev *d, const char *point,
	      const char *value, char *err, size_t errlen);
const struct sim_point *model_find_point(const struct sim_dev *d, const char *point);
/* Write the --values file (atomically); 0 or -1 (reported on stderr). */
int model_write_values(const struct sim_model *m);
uint64_t model_rand(struct sim_model *m);

/* serve.c */
uint16_t sim_crc16(const uint8_t *p, size_t n);
/*
 * One complete request frame (RTU: with CRC; TCP: MBAP header and PDU).
 * Appends the reply, if any, to *reply and sets *delay_ms.  Returns true if
 * the model changed (a write) so the values file is due.
 */
bool serve_request(struct sim_model *m, modbus_t *ctx, int capture_fd[2],
		   const uint8_t *frame, size_t len, struct dbuf *reply, unsigned *delay_ms);
/*
 * Frame RTU bytes: consumes whole frames from buf and hands them to
 * serve_request via the callback.  'final' (the line has been quiet for the
 * inter-frame time) resynchronises over an incomplete or unknown frame.
 * Returns the number of bytes consumed.
 */
typedef void (*frame_fn)(void *arg, const uint8_t *frame, size_t len);
size_t rtu_frames(struct sim_model *m, const uint8_t *buf, size_t len, bool final,
		  frame_fn fn, void *arg);
/* Frame MBAP bytes; returns bytes consumed, or -1 if the stream is garbage. */
long tcp_frames(struct sim_model *m, const uint8_t *buf, size_t len, frame_fn fn, void *arg);

/* control.c: one command line (no newline) -> one reply line appended to out. */
void control_exec(struct sim_model *m, char *line, struct dbuf *out);
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool sim_quiet;

#endif
