/*
 * tools.c: the field technician's subcommands.
 *
 * Commissioning a sensor means finding its unit id, baud and parity (scan),
 * finding which registers hold what in which word order (read: every type in
 * every order at every offset, so the sane value can be picked by eye),
 * sometimes changing a setting register (write, with --yes, read back), and
 * finally checking the finished configuration (poll --once).  poll --once
 * does not poll by itself: it calls bus_poll_device_once(), the daemon's own
 * request planning, retries and decoding, so what it prints is what the
 * daemon would publish.
 *
 * Everything runs in the main thread, one request at a time, each bounded by
 * its response timeout.  Tables and results go to stdout; progress, warnings
 * and errors to stderr, each error one line.  Exit status 1 for a failure,
 * 2 for a usage error, 130 for a scan stopped by Ctrl-C (after printing what
 * it found).
 *
 * A serial port is checked before libmodbus opens it and changes its
 * settings: the daemon holds its ports with TIOCEXCL, which makes anyone
 * else's open() fail with EBUSY, except root's, so the flag is also asked
 * for (TIOCGEXCL) and a held port is "busy" even for root.  Nobody changes
 * the baud rate under a running gateway.  The tools then hold the port the
 * same way while they use it.
 *
 * Left to others: schedules, back-off and publishing (bus.c, loop.c), the
 * decoding itself (decode.c), request planning (plan.c), the configuration
 * (conf.c).  Not here: ASCII framing, FC15/FC16 multi-register writes.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#include "bus.h"
#include "conf.h"
#include "decode.h"
#include "log.h"
#include "mbio.h"
#include "queue.h"
#include "tools.h"
#include "util.h"

#define SCAN_TIMEOUT_MS 200      /* per probe, unless --timeout */
#define SCAN_PROGRESS_MS 5000    /* a progress line this often when stderr is no terminal */
#define CELL_MAX 80              /* one table cell */
#define MAX_BAUDS 16

enum cmd { CMD_SCAN = 1, CMD_READ = 2, CMD_POLL = 4, CMD_WRITE = 8 };

static const char *const cmd_names[] = { "scan", "read", "poll", "write" };

static const int bauds_known[] = { 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600 };

struct opts {
	enum cmd cmd;
	const char *name;                /* of the command */
	const char *file, *bus, *port, *host, *device, *value;
	const char *units_text;          /* scan: as given, for messages */
	int bauds[MAX_BAUDS];
	size_t nbauds;
	char parities[3];
	size_t nparities;
	int stop_bits;                   /* 0: the bus' or 1 */
	int timeout_ms;                  /* 0: the default */
	bool rs485;
	bool units[256];                 /* scan */
	int unit;                        /* -1: not given */
	enum table table;
	long addr;                       /* -1: not given */
	int count;                       /* 0: not given */
	int type;                        /* enum vtype, -1: every type */
	int order;                       /* enum worder, -1: every order */
	double scale;
	bool once, yes;
	struct bus_conf bc;              /* the link to use, once resolved */
};

enum opt_id {
	O_PORT = 256, O_HOST, O_BUS, O_BAUD, O_PARITY, O_STOP_BITS, O_UNITS, O_TIMEOUT, O_UNIT,
	O_TABLE, O_ADDR, O_COUNT, O_TYPE, O_ORDER, O_SCALE, O_DEVICE, O_ONCE, O_VALUE, O_YES, O_RS485,
};

#define LINK_CMDS (CMD_SCAN | CMD_READ | CMD_WRITE)

static const struct option long_opts[] = {
	{ "file", required_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ "port", required_argument, NULL, O_PORT },
	{ "host", required_argument, NULL, O_HOST },
	{ "bus", required_argument, NULL, O_BUS },
	{ "baud", required_argument, NULL, O_BAUD },
	{ "parity", required_argument, NULL, O_PARITY },
	{ "stop-bits", required_argument, NULL, O_STOP_BITS },
	{ "units", required_argument, NULL, O_UNITS },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "unit", required_argument, NULL, O_UNIT },
	{ "table", required_argument, NULL, O_TABLE },
	{ "addr", required_argument, NULL, O_ADDR },
	{ "count", required_argument, NULL, O_COUNT },
	{ "type", required_argument, NULL, O_TYPE },
	{ "order", required_argument, NULL, O_ORDER },
	{ "scale", required_argument, NULL, O_SCALE },
	{ "device", required_argument, NULL, O_DEVICE },
	{ "once", no_argument, NULL, O_ONCE },
	{ "value", required_argument, NULL, O_VALUE },
	{ "yes", no_argument, NULL, O_YES },
	{ "rs485", no_argument, NULL, O_RS485 },
	{ NULL, 0, NULL, 0 }
};

/* Which commands take each long option, in long_opts order. */
static const unsigned opt_cmds[] = {
	CMD_SCAN | CMD_READ | CMD_POLL | CMD_WRITE, CMD_SCAN | CMD_READ | CMD_POLL | CMD_WRITE,
	LINK_CMDS, LINK_CMDS, LINK_CMDS, LINK_CMDS, LINK_CMDS, LINK_CMDS,
	CMD_SCAN, LINK_CMDS, CMD_READ | CMD_WRITE,
	CMD_READ | CMD_WRITE, CMD_READ | CMD_WRITE, CMD_READ, CMD_READ, CMD_READ, CMD_READ,
	CMD_POLL, CMD_POLL, CMD_WRITE, CMD_WRITE, LINK_CMDS,
};

_Static_assert(sizeof(opt_cmds) / sizeof(opt_cmds[0]) == sizeof(long_opts) / sizeof(long_opts[0]) - 1,
	       "one opt_cmds entry per long option");

static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: agrigw scan  LINK [--baud B,B,..] [--parity P,P,..] [--units LIST] [--timeout S]\n"
		"       agrigw read  LINK --unit N [--table T] --addr A [--count C] [--type T]\n"
		"                         [--order all|ABCD|CDAB|BADC|DCBA] [--scale X]\n"
		"       agrigw write LINK --unit N [--table holding|coil] --addr A --value V [--yes]\n"
		"       agrigw poll --once -f FILE [--device NAME]\n"
		"LINK is --port DEV (Modbus RTU) or --host HOST[:PORT] (Modbus TCP) or -f FILE --bus NAME,\n"
		"with --baud B, --parity N|E|O, --stop-bits 1|2, --rs485 (kernel RS-485 mode, for HATs)\n"
		"and --timeout S to override.\n"
		"  --units    unit ids to probe, e.g. 1-247 (the default) or 1,2,10-20\n"
		"  --timeout  seconds per request (scan: 0.2 per probe; else the bus' response timeout)\n"
		"  --table    holding (default), input, coil or discrete\n"
		"  --addr     0-based wire address, decimal or hex (0x0100)\n"
		"  --count    registers or bits to read (default: 2, or the width of --type)\n"
		"  --type     u16 s16 u32 s32 u64 s64 f32 f64: decode only as this type\n"
		"  --yes      write: really write (without it, only say what would be written)\n");
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One error line, "agrigw: ...", and exit status 1. */
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("agrigw: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* A usage error: one line, exit status 2. */
static int bad_usage(const struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad_usage(const struct opts *o, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "agrigw %s: ", o->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (agrigw %s -h for help)\n", o->name);
	return 2;
}

/* ---- parsing ------------------------------------------------------------ */

/* Decimal, or hex with 0x; no octal surprises from a leading 0. */
static int parse_long(const char *s, long lo, long hi, long *ret)
{
	int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;
	char *end;

	errno = 0;
	*ret = strtol(s, &end, base);
	return (errno || end == s || *end || *ret < lo || *ret > hi) ? -EINVAL : 0;
}

static int parse_seconds(const char *s, int *ret_ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0.01 && v <= 60.0))
		return -EINVAL;
	*ret_ms = (int) lround(v * 1000.0);
	return 0;
}

static int parse_bauds(struct opts *o, const char *s)
{
	char buf[256], *save = NULL, *tok;

	if (strlcpy_(buf, s, sizeof(buf)) >= sizeof(buf))
		return -EINVAL;
	o->nbauds = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long b;
		size_t k;

		if (o->nbauds == MAX_BAUDS || parse_long(tok, 1, 921600, &b) < 0)
			return -EINVAL;
		for (k = 0; k < sizeof(bauds_known) / sizeof(bauds_known[0]); k++)
			if (bauds_known[k] == b)
				break;
		if (k == sizeof(bauds_known) / sizeof(bauds_known[0]))
			return -EINVAL;
		o->bauds[o->nbauds++] = (int) b;
	}
	return o->nbauds ? 0 : -EINVAL;
}

static int parse_parities(struct opts *o, const char *s)
{
	char buf[64], *save = NULL, *tok;

	if (strlcpy_(buf, s, sizeof(buf)) >= sizeof(buf))
		return -EINVAL;
	o->nparities = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char p = (char) toupper((unsigned char) tok[0]);

		if (tok[1] || (p != 'N' && p != 'E' && p != 'O') || o->nparities == sizeof(o->parities) ||
		    memchr(o->parities, p, o->nparities))
			return -EINVAL;
		o->parities[o->nparities++] = p;
	}
	return o->nparities ? 0 : -EINVAL;
}

/* "1-247", "5", "1,2,10-20" into o->units. */
static int parse_units(struct opts *o, const char *s)
{
	char buf[1024], *save = NULL, *tok;
	bool any = false;

	if (strlcpy_(buf, s, sizeof(buf)) >= sizeof(buf))
		return -EINVAL;
	memset(o->units, 0, sizeof(o->units));
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		long lo, hi;

		if (dash)
			*dash = '\0';
		if (parse_long(tok, 0, 255, &lo) < 0 || parse_long(dash ? dash + 1 : tok, 0, 255, &hi) < 0 || hi < lo)
			return -EINVAL;
		for (long u = lo; u <= hi; u++)
			o->units[u] = true;
		any = true;
	}
	o->units_text = s;
	return any ? 0 : -EINVAL;
}

/* "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT" into bc->host and bc->port. */
static int parse_host(struct bus_conf *bc, const char *s)
{
	const char *colon, *h = s;
	size_t hlen;
	long port = 502;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || (close[1] && close[1] != ':'))
			return -EINVAL;
		h = s + 1;
		hlen = (size_t) (close - h);
		colon = close[1] ? close + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL;        /* a bare IPv6 address */
		hlen = colon ? (size_t) (colon - s) : strlen(s);
	}
	if (hlen == 0 || hlen >= sizeof(bc->host) || (colon && parse_long(colon + 1, 1, 65535, &port) < 0))
		return -EINVAL;
	memcpy(bc->host, h, hlen);
	bc->host[hlen] = '\0';
	bc->port = (int) port;
	return 0;
}

static int parse_name(const char *s, const char *(*name)(int), int n)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(s, name(i)) == 0)
			return i;
	return -1;
}

static const char *table_name(int i)
{
	return conf_table_name((enum table) i);
}

static const char *type_name(int i)
{
	return conf_vtype_name((enum vtype) i);
}

static const char *order_name(int i)
{
	return conf_worder_name((enum worder) i);
}

/* ---- output ------------------------------------------------------------- */

/* Columns of text, aligned when printed; cells are copied. */
struct grid {
	size_t ncols, nrows, cap;
	const char *const *heads;
	unsigned right;                  /* bit i set: column i aligned right */
	char (*cells)[CELL_MAX];
};

/* Add a row of t->ncols strings. */
static int grid_add(struct grid *t, ...)
{
	va_list ap;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 32;
		void *p = realloc(t->cells, cap * t->ncols * sizeof(*t->cells));

		if (!p)
			return -ENOMEM;
		t->cells = p;
		t->cap = cap;
	}
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++)
		strlcpy_(t->cells[t->nrows * t->ncols + i], va_arg(ap, const char *), CELL_MAX);
	va_end(ap);
	t->nrows++;
	return 0;
}

/* Characters on screen, counting UTF-8 sequences ("°C") as one. */
static size_t text_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xc0) != 0x80)
			n++;
	return n;
}

static void put_cell(FILE *f, const char *s, size_t width, bool right, bool last)
{
	size_t pad = width - text_width(s);

	if (right)
		fprintf(f, "%*s", (int) pad, "");
	fputs(s, f);
	if (!right && !last)
		fprintf(f, "%*s", (int) pad, "");
	fputs(last ? "\n" : "  ", f);
}

static void grid_print(const struct grid *t, FILE *f)
{
	size_t w[8] = { 0 };

	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = text_width(t->heads[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t n = text_width(t->cells[r * t->ncols + c]);

			if (n > w[c])
				w[c] = n;
		}
	}
	for (size_t c = 0; c < t->ncols; c++)
		put_cell(f, t->heads[c], w[c], t->right & (1u << c), c + 1 == t->ncols);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++)
			put_cell(f, t->cells[r * t->ncols + c], w[c], t->right & (1u << c), c + 1 == t->ncols);
}

static void grid_free(struct grid *t)
{
	free(t->cells);
	t->cells = NULL;
}

/* "/dev/ttyUSB0 at 9600 8N1" or "192.0.2.10:502". */
static void link_name(const struct bus_conf *bc, char *buf, size_t size)
{
	if (bc->type == BUS_RTU)
		snprintf(buf, size, "%s at %d %d%c%d", bc->device, bc->baud, bc->data_bits, bc->parity, bc->stop_bits);
	else
		snprintf(buf, size, strchr(bc->host, ':') ? "[%s]:%d" : "%s:%d", bc->host, bc->port);
}

/* ---- the link ----------------------------------------------------------- */

/* The one-line reasons a serial port cannot be used. */
static int port_error(const char *path, int e)
{
	switch (e) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return fail("%s: no such port", path);
	case EACCES:
	case EPERM:
		return fail("%s: permission denied (add the user to group 'dialout': usermod -aG dialout USER, "
			    "then log in again)", path);
	case EBUSY:
		return fail("%s: port busy: is the agrigw service running? (systemctl stop agrigw)", path);
	case ENOTTY:
		return fail("%s: not a serial port", path);
	default:
		return fail("%s: %s", path, strerror(e));
	}
}

/*
 * Can the port be opened, and does nobody hold it?  Opened without touching
 * its settings (O_NONBLOCK: no wait for carrier) and closed again.  0 or
 * negative errno, reported.
 */
static int port_check(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC), excl = 0, e = 0;

	if (fd < 0)
		e = errno;
	else if (!isatty(fd))
		e = ENOTTY;
	else if (ioctl(fd, TIOCGEXCL, &excl) == 0 && excl)
		e = EBUSY;
	if (fd >= 0)
		close(fd);
	if (e)
		port_error(path, e);
	return -e;
}

static void set_timeout(modbus_t *ctx, int ms)
{
	modbus_set_response_timeout(ctx, (uint32_t) (ms / 1000), (uint32_t) (ms % 1000) * 1000);
}

/* Open the link bc describes, exclusively for a serial port; NULL (reported) on failure. */
static modbus_t *link_open(const struct bus_conf *bc)
{
	char name[CONF_PATH_MAX + 32];
	modbus_t *ctx;

	if (bc->type == BUS_RTU) {
		if (port_check(bc->device) < 0)
			return NULL;
		ctx = modbus_new_rtu(bc->device, bc->baud, bc->parity, bc->data_bits, bc->stop_bits);
	} else {
		char port[8];

		snprintf(port, sizeof(port), "%d", bc->port);
		ctx = modbus_new_tcp_pi(bc->host, port);
	}
	if (!ctx) {
		fail("cannot create a Modbus context: %s", strerror(errno));
		return NULL;
	}
	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
	if (bc->type == BUS_TCP)
		set_timeout(ctx, bc->connect_timeout_ms);   /* libmodbus' connect() timeout */
	if (modbus_connect(ctx) < 0) {
		int e = errno;

		if (bc->type == BUS_RTU) {
			port_error(bc->device, e);
		} else {
			link_name(bc, name, sizeof(name));
			fail("%s: cannot connect: %s", name, modbus_strerror(e));
		}
		modbus_free(ctx);
		return NULL;
	}
	if (bc->type == BUS_RTU) {
		(void) ioctl(modbus_get_socket(ctx), TIOCEXCL);
		if (bc->rs485 && modbus_rtu_set_serial_mode(ctx, MODBUS_RTU_RS485) < 0)
			log_warn("%s refuses RS-485 mode (%s); working on without it", bc->device,
				 modbus_strerror(errno));
	}
	set_timeout(ctx, bc->response_timeout_ms);
	return ctx;
}

/* Give up the exclusive hold first: on a pty (whose other end stays open)
 * the flag would outlive the close and lock the next opener out. */
static void link_close(const struct bus_conf *bc, modbus_t *ctx)
{
	if (bc->type == BUS_RTU)
		(void) ioctl(modbus_get_socket(ctx), TIOCNXCL);
	modbus_close(ctx);
	modbus_free(ctx);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* As the daemon does: one more try after a timeout or a bad frame.  0 or the errno. */
static int read_retry(const struct bus_conf *bc, modbus_t *ctx, enum table t, int addr, int count, uint16_t *out)
{
	int e = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		int rc;

		if (attempt > 0 && bc->pause_ms > 0)
			sleep_ms(bc->pause_ms);
		rc = mbio_read(ctx, t, addr, count, out);
		if (rc == count)
			return 0;
		e = rc < 0 ? errno : EMBMDATA;
		if (e != ETIMEDOUT && !mbio_is_bad_frame(e))
			break;
		modbus_flush(ctx);
	}
	return e;
}

/* The one-line report of a request that got no good answer. */
static int request_error(const struct bus_conf *bc, int unit, const char *what, int e)
{
	char name[CONF_PATH_MAX + 32];

	link_name(bc, name, sizeof(name));
	if (e == ETIMEDOUT)
		return fail("unit %d on %s: no response (wrong unit id, baud, parity or wiring? try agrigw scan)",
			    unit, name);
	if (mbio_is_exception(e))
		return fail("unit %d on %s refused %s: %s (exception %d)", unit, name, what, modbus_strerror(e),
			    e - MODBUS_ENOBASE);
	return fail("unit %d on %s: %s: %s", unit, name, what, modbus_strerror(e));
}

/* ---- options ------------------------------------------------------------ */

static int parse_opts(struct opts *o, int argc, char **argv)
{
	int opt, idx;
	long v;

	while ((idx = -1, opt = getopt_long(argc, argv, "f:h", long_opts, &idx)) != -1) {
		if (idx >= 0 && !(opt_cmds[idx] & o->cmd))
			return bad_usage(o, "--%s does not apply", long_opts[idx].name);
		switch (opt) {
		case 'f':
			o->file = optarg;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case O_PORT:
			o->port = optarg;
			break;
		case O_HOST:
			o->host = optarg;
			break;
		case O_BUS:
			o->bus = optarg;
			break;
		case O_BAUD:
			if (parse_bauds(o, optarg) < 0 || (o->cmd != CMD_SCAN && o->nbauds > 1))
				return bad_usage(o, "--baud wants %s of 1200 2400 4800 9600 19200 38400 57600 115200 "
						 "230400 460800 921600, not '%s'", o->cmd == CMD_SCAN ? "a list" : "one",
						 optarg);
			break;
		case O_PARITY:
			if (parse_parities(o, optarg) < 0 || (o->cmd != CMD_SCAN && o->nparities > 1))
				return bad_usage(o, "--parity wants %s of N, E, O, not '%s'",
						 o->cmd == CMD_SCAN ? "a list" : "one", optarg);
			break;
		case O_STOP_BITS:
			if (parse_long(optarg, 1, 2, &v) < 0)
				return bad_usage(o, "--stop-bits wants 1 or 2, not '%s'", optarg);
			o->stop_bits = (int) v;
			break;
		case O_UNITS:
			if (parse_units(o, optarg) < 0)
				return bad_usage(o, "--units wants ids 0..255 like 1-247 or 1,2,10-20, not '%s'", optarg);
			break;
		case O_TIMEOUT:
			if (parse_seconds(optarg, &o->timeout_ms) < 0)
				return bad_usage(o, "--timeout wants seconds 0.01..60, not '%s'", optarg);
			break;
		case O_UNIT:
			if (parse_long(optarg, 0, 255, &v) < 0)
				return bad_usage(o, "--unit wants 0..255, not '%s'", optarg);
			o->unit = (int) v;
			break;
		case O_TABLE:
			if ((v = parse_name(optarg, table_name, TABLE_DISCRETE + 1)) < 0)
				return bad_usage(o, "--table wants holding, input, coil or discrete, not '%s'", optarg);
			o->table = (enum table) v;
			break;
		case O_ADDR:
			if (parse_long(optarg, 0, 65535, &o->addr) < 0)
				return bad_usage(o, "--addr wants 0..65535 or 0x0000..0xFFFF, not '%s'", optarg);
			break;
		case O_COUNT:
			if (parse_long(optarg, 1, MODBUS_MAX_READ_BITS, &v) < 0)
				return bad_usage(o, "--count wants 1..125 registers or 1..2000 bits, not '%s'", optarg);
			o->count = (int) v;
			break;
		case O_TYPE:
			if ((v = parse_name(optarg, type_name, VT_F64 + 1)) < 0)
				return bad_usage(o, "--type wants u16 s16 u32 s32 u64 s64 f32 or f64, not '%s'", optarg);
			o->type = (int) v;
			break;
		case O_ORDER:
			if (strcasecmp(optarg, "all") == 0)
				o->order = -1;
			else if ((o->order = parse_name(optarg, order_name, WO_DCBA + 1)) < 0)
				return bad_usage(o, "--order wants all, ABCD, CDAB, BADC or DCBA, not '%s'", optarg);
			break;
		case O_SCALE: {
			char *end;

			errno = 0;
			o->scale = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(o->scale) || o->scale == 0.0)
				return bad_usage(o, "--scale wants a non-zero number, not '%s'", optarg);
			break;
		}
		case O_DEVICE:
			o->device = optarg;
			break;
		case O_ONCE:
			o->once = true;
			break;
		case O_VALUE:
			o->value = optarg;
			break;
		case O_YES:
			o->yes = true;
			break;
		case O_RS485:
			o->rs485 = true;
			break;
		default:
			return bad_usage(o, "unknown option");
		}
	}
	if (optind < argc)
		return bad_usage(o, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/*
 * The link for scan, read and write: a bus of the configuration file, or
 * --port / --host with the daemon's defaults, then the overrides.
 */
static int resolve_link(struct opts *o)
{
	struct bus_conf *bc = &o->bc;
	int ways = (o->port != NULL) + (o->host != NULL) + (o->file != NULL || o->bus != NULL);

	if (ways != 1)
		return bad_usage(o, "say where: --port DEV, --host HOST[:PORT] or -f FILE --bus NAME");
	if (o->file || o->bus) {
		struct conf *c = NULL;
		size_t i, n;
		int r;

		if (!o->file || !o->bus)
			return bad_usage(o, "-f FILE and --bus NAME go together");
		r = conf_load(o->file, &c, stderr);
		if (r != 0)
			return r > 0 ? fail("%s: %d error%s", o->file, r, r == 1 ? "" : "s") : 1;
		n = c->nbuses;
		for (i = 0; i < n; i++)
			if (strcmp(c->buses[i].name, o->bus) == 0)
				break;
		if (i < n)
			*bc = c->buses[i];
		conf_free(c);
		if (i == n)
			return fail("%s: no bus '%s'", o->file, o->bus);
	} else if (o->port) {
		bc->type = BUS_RTU;
		if (strlcpy_(bc->device, o->port, sizeof(bc->device)) >= sizeof(bc->device))
			return bad_usage(o, "--port: path too long");
		bc->baud = 9600;
		bc->parity = 'N';
		bc->data_bits = 8;
		bc->stop_bits = 1;
		bc->response_timeout_ms = 500;
		bc->pause_ms = 20;
	} else {
		bc->type = BUS_TCP;
		if (parse_host(bc, o->host) < 0)
			return bad_usage(o, "--host wants HOST, HOST:PORT or [IPV6]:PORT, not '%s'", o->host);
		bc->connect_timeout_ms = 3000;
		bc->response_timeout_ms = 1000;
	}
	if (bc->type == BUS_TCP && (o->nbauds || o->nparities || o->stop_bits || o->rs485))
		return bad_usage(o, "--baud, --parity, --stop-bits and --rs485 are for serial ports");
	if (o->rs485)
		bc->rs485 = true;
	if (o->nbauds)
		bc->baud = o->bauds[0];
	else
		o->bauds[o->nbauds++] = bc->baud;
	if (o->nparities)
		bc->parity = o->parities[0];
	else
		o->parities[o->nparities++] = bc->parity;
	if (o->stop_bits)
		bc->stop_bits = o->stop_bits;
	if (o->timeout_ms)
		bc->response_timeout_ms = o->timeout_ms;
	return 0;
}

/* A unit id the link can address: 1..247 on RTU (0 is broadcast), 0..255 on TCP. */
static bool unit_ok(const struct bus_conf *bc, int unit)
{
	return bc->type == BUS_TCP ? unit >= 0 && unit <= 255 : unit >= 1 && unit <= 247;
}

/* ---- scan --------------------------------------------------------------- */

enum answer { ANS_NONE, ANS_DATA, ANS_EXCEPTION, ANS_GARBLED, ANS_LINK };

struct hit {
	int unit, baud;
	char parity;
	enum answer ans;
	int err;                         /* the exception or the bad frame */
	size_t seq;                      /* probe order, for a stable sort */
};

struct scan {
	struct hit *hits;
	size_t nhits, probes, total, answered;
	int64_t started, last_line;
	bool tty;
};

static void on_interrupt(int sig)
{
	(void) sig;
	interrupted = 1;
}

/*
 * One FC03 read of holding register 0.  Any well-formed reply counts, an
 * exception too: someone is there (a device without holding registers says
 * "illegal function" or "illegal data address").  A Modbus TCP gateway's
 * own "no path" and "target failed to respond" exceptions mean nobody.  A
 * bad frame is tried once more (a late reply to the previous probe) before
 * it counts as garbled.
 */
static enum answer probe(modbus_t *ctx, int unit, int *ret_err)
{
	uint16_t reg;
	int e = 0;

	modbus_set_slave(ctx, unit);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (modbus_read_registers(ctx, 0, 1, &reg) == 1)
			return ANS_DATA;
		e = errno;
		*ret_err = e;
		if (e == EMBXGPATH || e == EMBXGTAR || e == ETIMEDOUT)
			return ANS_NONE;
		if (mbio_is_exception(e))
			return ANS_EXCEPTION;
		if (!mbio_is_bad_frame(e) && e != EMBMDATA)
			return ANS_LINK;
		modbus_flush(ctx);
	}
	return ANS_GARBLED;
}

static void scan_progress(struct scan *s, const struct bus_conf *bc, int unit, int setting_start)
{
	char line[CONF_PATH_MAX + 128], where[CONF_PATH_MAX + 32];
	int64_t now = mono_ms();

	if (!s->tty && !setting_start && now - s->last_line < SCAN_PROGRESS_MS)
		return;
	s->last_line = now;
	link_name(bc, where, sizeof(where));
	snprintf(line, sizeof(line), "scan %s: unit %d, probe %zu of %zu, %zu answered", where, unit,
		 s->probes + 1, s->total, s->answered);
	if (s->tty)
		fprintf(stderr, "\r%s\033[K", line);
	else
		fprintf(stderr, "%s\n", line);
}

static void answer_text(const struct hit *h, char *buf, size_t size)
{
	switch (h->ans) {
	case ANS_DATA:
		snprintf(buf, size, "data");
		break;
	case ANS_EXCEPTION:
		snprintf(buf, size, "exception %d (%s)", h->err - MODBUS_ENOBASE, modbus_strerror(h->err));
		break;
	default:
		snprintf(buf, size, "garbled (%s)", modbus_strerror(h->err));
		break;
	}
}

/* Say so at once: a scan of several settings takes minutes. */
static void scan_found(const struct scan *s, const struct bus_conf *bc, const struct hit *h)
{
	char where[CONF_PATH_MAX + 32], ans[CELL_MAX];

	link_name(bc, where, sizeof(where));
	answer_text(h, ans, sizeof(ans));
	fprintf(stderr, "%sunit %d answered on %s: %s\n", s->tty ? "\r\033[K" : "", h->unit, where, ans);
}

static int hit_cmp(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	if (x->unit != y->unit)
		return x->unit < y->unit ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int scan_report(struct scan *s, const struct bus_conf *bc, double secs)
{
	const char *rtu_heads[] = { "unit", "baud", "parity", "answer" };
	const char *tcp_heads[] = { "unit", "answer" };
	bool rtu = bc->type == BUS_RTU;
	struct grid t = { .ncols = rtu ? 4 : 2, .heads = rtu ? rtu_heads : tcp_heads, .right = rtu ? 3 : 1 };
	size_t garbled = s->nhits - s->answered;
	int r = 0;

	if (s->nhits > 1)
		qsort(s->hits, s->nhits, sizeof(*s->hits), hit_cmp);
	for (size_t i = 0; i < s->nhits && r == 0; i++) {
		const struct hit *h = &s->hits[i];
		char unit[8], baud[12], parity[2] = { h->parity, '\0' }, ans[CELL_MAX];

		snprintf(unit, sizeof(unit), "%d", h->unit);
		snprintf(baud, sizeof(baud), "%d", h->baud);
		answer_text(h, ans, sizeof(ans));
		r = rtu ? grid_add(&t, unit, baud, parity, ans) : grid_add(&t, unit, ans);
	}
	if (s->nhits)
		grid_print(&t, stdout);
	grid_free(&t);
	printf("%zu answered, %zu probes in %.1f s%s\n", s->answered, s->probes, secs,
	       interrupted ? ", interrupted" : "");
	if (garbled)
		printf("%zu garbled: a reply that failed its check (wrong baud or parity, noise, or two devices "
		       "with one unit id)\n", garbled);
	return r;
}

static int cmd_scan(struct opts *o)
{
	struct bus_conf bc = o->bc;
	struct scan s = { .tty = isatty(STDERR_FILENO) };
	struct sigaction sa = { .sa_handler = on_interrupt };
	modbus_t *ctx = NULL;
	size_t nunits = 0, nsettings;
	int status = 0;

	if (!o->units_text)
		parse_units(o, "1-247");
	for (int u = 0; u < 256; u++) {
		if (o->units[u] && !unit_ok(&bc, u))
			return bad_usage(o, "unit %d cannot be addressed on %s (1..247 on RTU, 0..255 on TCP)", u,
					 bc.type == BUS_RTU ? "a serial port" : "Modbus TCP");
		nunits += o->units[u];
	}
	if (bc.type == BUS_TCP)
		o->nbauds = o->nparities = 1;
	nsettings = o->nbauds * o->nparities;
	if (!o->timeout_ms)
		bc.response_timeout_ms = SCAN_TIMEOUT_MS;
	s.total = nunits * nsettings;
	s.hits = calloc(s.total, sizeof(*s.hits));
	if (!s.hits)
		return fail("%s", strerror(ENOMEM));

	/* Ctrl-C ends the scan after the probe in flight, which is bounded */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	s.started = mono_ms();

	for (size_t k = 0; k < nsettings && !interrupted && status == 0; k++) {
		bc.baud = o->bauds[k / o->nparities];
		bc.parity = o->parities[k % o->nparities];
		if (!(ctx = link_open(&bc))) {
			status = 1;
			break;
		}
		/* a reply slower than the probe timeout must not wait for more bytes either */
		modbus_set_byte_timeout(ctx, 0, (uint32_t) bc.response_timeout_ms * 1000);
		for (int u = 0, first = 1; u < 256 && !interrupted; u++) {
			struct hit *h = &s.hits[s.nhits];
			enum answer a;

			if (!o->units[u])
				continue;
			scan_progress(&s, &bc, u, first);
			first = 0;
			a = probe(ctx, u, &h->err);
			s.probes++;
			if (a == ANS_LINK) {
				char name[CONF_PATH_MAX + 32];

				link_name(&bc, name, sizeof(name));
				status = fail("%s: %s", name, modbus_strerror(h->err));
				break;
			}
			if (a == ANS_NONE)
				continue;
			h->unit = u;
			h->baud = bc.baud;
			h->parity = bc.parity;
			h->ans = a;
			h->seq = s.nhits++;
			if (a != ANS_GARBLED)
				s.answered++;
			scan_found(&s, &bc, h);
			/* the bus' silence after a reply, before the next request */
			if (bc.pause_ms > 0)
				sleep_ms(bc.pause_ms);
		}
		link_close(&bc, ctx);
	}
	if (s.tty)
		fputs("\r\033[K", stderr);
	if ((s.probes > 0 || interrupted) && scan_report(&s, &bc, (double) (mono_ms() - s.started) / 1000.0) < 0)
		status = fail("%s", strerror(ENOMEM));
	free(s.hits);
	if (interrupted)
		return 130;
	if (status == 0 && s.answered == 0) {
		char name[CONF_PATH_MAX + 32];

		if (bc.type == BUS_RTU)
			snprintf(name, sizeof(name), "%s", bc.device);
		else
			link_name(&bc, name, sizeof(name));
		status = fail("nothing answered on %s (units %s, %zu setting%s; check wiring, A/B, power, baud and "
			      "parity)", name, o->units_text, nsettings, nsettings == 1 ? "" : "s");
	}
	return status;
}

/* ---- read --------------------------------------------------------------- */

/* One decoded value as text: integers exact, floats to their precision. */
static void format_value(const uint16_t *regs, enum vtype t, enum worder ord, double scale, char *buf, size_t size)
{
	uint64_t bits = decode_bits(regs, t, ord);
	double raw = 0.0;
	int64_t s64;

	(void) decode_raw(regs, t, ord, -1, &raw);
	if (scale != 1.0) {
		snprintf(buf, size, "%.*g", t == VT_F32 ? 7 : 12, raw * scale);
		return;
	}
	switch (t) {
	case VT_U16:
	case VT_U32:
	case VT_U64:
		snprintf(buf, size, "%" PRIu64, bits);
		break;
	case VT_S64:
		memcpy(&s64, &bits, sizeof(s64));
		snprintf(buf, size, "%" PRId64, s64);
		break;
	case VT_F32:
		snprintf(buf, size, "%.7g", raw);
		break;
	case VT_F64:
		snprintf(buf, size, "%.15g", raw);
		break;
	default:
		snprintf(buf, size, "%.0f", raw);
		break;
	}
}

static int print_registers(const uint16_t *regs, int addr, int count, enum table tab)
{
	const char *heads[] = { "addr", "hex", "dec" };
	const char *bit_heads[] = { "addr", "value" };
	bool bits = tab == TABLE_COIL || tab == TABLE_DISCRETE;
	struct grid t = { .ncols = bits ? 2 : 3, .heads = bits ? bit_heads : heads, .right = bits ? 2 : 6 };

	for (int i = 0; i < count; i++) {
		char a[24], h[8], d[8];

		snprintf(a, sizeof(a), "0x%04X (%d)", addr + i, addr + i);
		snprintf(h, sizeof(h), "0x%04X", regs[i]);
		snprintf(d, sizeof(d), "%u", regs[i]);
		if (bits ? grid_add(&t, a, d) : grid_add(&t, a, h, d)) {
			grid_free(&t);
			return fail("%s", strerror(ENOMEM));
		}
	}
	grid_print(&t, stdout);
	grid_free(&t);
	return 0;
}

/* Every type (or --type) in every order (or --order) at every offset where it fits. */
static int print_decoded(const struct opts *o, const uint16_t *regs)
{
	const char *heads[6] = { "at", "type" };
	struct grid t = { .heads = heads, .right = 0 };
	int norders = o->order < 0 ? WO_DCBA + 1 : 1;

	t.ncols = 2 + (size_t) norders;
	for (int k = 0; k < norders; k++) {
		heads[2 + k] = conf_worder_name((enum worder) (o->order < 0 ? k : o->order));
		t.right |= 1u << (2 + k);
	}
	for (int i = 0; i < o->count; i++) {
		for (int ty = VT_U16; ty <= VT_F64; ty++) {
			char at[8], cell[4][CELL_MAX];
			int r;

			if ((o->type >= 0 && ty != o->type) || i + conf_vtype_width((enum vtype) ty) > o->count)
				continue;
			snprintf(at, sizeof(at), "0x%04lX", (unsigned long) o->addr + (unsigned long) i);
			for (int k = 0; k < norders; k++)
				format_value(regs + i, (enum vtype) ty, (enum worder) (o->order < 0 ? k : o->order),
					     o->scale, cell[k], CELL_MAX);
			if (norders == 1)
				r = grid_add(&t, at, conf_vtype_name((enum vtype) ty), cell[0]);
			else
				r = grid_add(&t, at, conf_vtype_name((enum vtype) ty), cell[0], cell[1], cell[2], cell[3]);
			if (r < 0) {
				grid_free(&t);
				return fail("%s", strerror(ENOMEM));
			}
		}
	}
	if (o->scale != 1.0)
		printf("\ndecoded, times %g:\n", o->scale);
	else
		putchar('\n');
	grid_print(&t, stdout);
	grid_free(&t);
	return 0;
}

static int cmd_read(struct opts *o)
{
	uint16_t regs[MODBUS_MAX_READ_BITS];
	bool bits = o->table == TABLE_COIL || o->table == TABLE_DISCRETE;
	char what[96], name[CONF_PATH_MAX + 32];
	modbus_t *ctx;
	int e;

	if (o->unit < 0 || o->addr < 0)
		return bad_usage(o, "--unit and --addr are required");
	if (!unit_ok(&o->bc, o->unit))
		return bad_usage(o, "unit %d cannot be addressed here (1..247 on RTU, 0..255 on TCP)", o->unit);
	if (bits && (o->type >= 0 || o->order >= 0 || o->scale != 1.0))
		return bad_usage(o, "--type, --order and --scale are for register tables");
	if (!o->count)
		o->count = bits ? 1 : o->type >= 0 ? conf_vtype_width((enum vtype) o->type) : 2;
	if (!bits && o->count > MODBUS_MAX_READ_REGISTERS)
		return bad_usage(o, "--count: at most %d registers per request", MODBUS_MAX_READ_REGISTERS);
	if (o->addr + o->count > 65536)
		return bad_usage(o, "--addr + --count runs past 65535");
	if (o->type >= 0 && conf_vtype_width((enum vtype) o->type) > o->count)
		return bad_usage(o, "type %s needs %d registers, --count is %d", conf_vtype_name((enum vtype) o->type),
				 conf_vtype_width((enum vtype) o->type), o->count);

	if (!(ctx = link_open(&o->bc)))
		return 1;
	modbus_set_slave(ctx, o->unit);
	snprintf(what, sizeof(what), "the read of %d %s %s at 0x%04lX", o->count, conf_table_name(o->table),
		 bits ? "bits" : "registers", o->addr);
	e = read_retry(&o->bc, ctx, o->table, (int) o->addr, o->count, regs);
	link_close(&o->bc, ctx);
	if (e)
		return request_error(&o->bc, o->unit, what, e);
	link_name(&o->bc, name, sizeof(name));
	printf("unit %d on %s, %s %s 0x%04lX..0x%04lX\n", o->unit, name, conf_table_name(o->table),
	       bits ? "bits" : "registers", o->addr, o->addr + o->count - 1);
	if (print_registers(regs, (int) o->addr, o->count, o->table))
		return 1;
	return bits ? 0 : print_decoded(o, regs);
}

/* ---- write -------------------------------------------------------------- */

static int parse_value(const struct opts *o, uint16_t *ret)
{
	long v;

	if (o->table == TABLE_COIL) {
		static const char *const on[] = { "1", "on", "true" }, *const off[] = { "0", "off", "false" };

		for (size_t i = 0; i < 3; i++) {
			if (strcasecmp(o->value, on[i]) == 0 || strcasecmp(o->value, off[i]) == 0) {
				*ret = strcasecmp(o->value, on[i]) == 0;
				return 0;
			}
		}
		return -EINVAL;
	}
	if (o->value[0] == '-') {
		if (parse_long(o->value + 1, 0, 32768, &v) < 0)
			return -EINVAL;
		*ret = (uint16_t) (65536 - v);   /* s16, two's complement */
		return 0;
	}
	if (parse_long(o->value, 0, 65535, &v) < 0)
		return -EINVAL;
	*ret = (uint16_t) v;
	return 0;
}

static void value_text(enum table t, uint16_t v, char *buf, size_t size)
{
	if (t == TABLE_COIL)
		snprintf(buf, size, "%s", v ? "1 (on)" : "0 (off)");
	else
		snprintf(buf, size, "%u (0x%04X)", v, v);
}

static int cmd_write(struct opts *o)
{
	const char *what = o->table == TABLE_COIL ? "coil" : "holding register";
	char name[CONF_PATH_MAX + 32], vt[24], req[96];
	uint16_t v, before, after;
	modbus_t *ctx;
	int e, rc;

	if (o->unit < 0 || o->addr < 0 || !o->value)
		return bad_usage(o, "--unit, --addr and --value are required");
	if (o->table != TABLE_HOLDING && o->table != TABLE_COIL)
		return bad_usage(o, "--table: only holding (FC06) or coil (FC05) can be written");
	if (!unit_ok(&o->bc, o->unit))
		return bad_usage(o, "unit %d cannot be addressed here (1..247 on RTU, 0..255 on TCP)", o->unit);
	if (parse_value(o, &v) < 0)
		return bad_usage(o, "--value wants %s, not '%s'",
				 o->table == TABLE_COIL ? "0, 1, on or off" : "-32768..65535 or 0x0000..0xFFFF", o->value);
	link_name(&o->bc, name, sizeof(name));
	value_text(o->table, v, vt, sizeof(vt));
	printf("%s %s to %s 0x%04lX (%ld) of unit %d on %s with FC%02d\n", o->yes ? "writing" : "would write", vt,
	       what, o->addr, o->addr, o->unit, name, o->table == TABLE_COIL ? 5 : 6);
	if (!o->yes)
		return fail("nothing written: add --yes to write");

	if (!(ctx = link_open(&o->bc)))
		return 1;
	modbus_set_slave(ctx, o->unit);
	e = read_retry(&o->bc, ctx, o->table, (int) o->addr, 1, &before);
	if (e == 0) {
		value_text(o->table, before, vt, sizeof(vt));
		printf("before:    %s\n", vt);
	} else {
		printf("before:    not readable (%s)\n", e == ETIMEDOUT ? "no response" : modbus_strerror(e));
	}
	if (o->bc.pause_ms > 0)
		sleep_ms(o->bc.pause_ms);
	rc = o->table == TABLE_COIL ? modbus_write_bit(ctx, (int) o->addr, v) :
				      modbus_write_register(ctx, (int) o->addr, v);
	if (rc != 1) {
		e = errno;
		link_close(&o->bc, ctx);
		snprintf(req, sizeof(req), "the write of %s 0x%04lX", what, o->addr);
		return request_error(&o->bc, o->unit, req, e);
	}
	if (o->bc.pause_ms > 0)
		sleep_ms(o->bc.pause_ms);
	e = read_retry(&o->bc, ctx, o->table, (int) o->addr, 1, &after);
	link_close(&o->bc, ctx);
	if (e)
		return fail("unit %d acknowledged the write, but reading it back failed: %s (a new unit id or "
			    "baud rate may apply at once)", o->unit, e == ETIMEDOUT ? "no response" : modbus_strerror(e));
	value_text(o->table, after, vt, sizeof(vt));
	printf("read back: %s\n", vt);
	if (after != v)
		return fail("unit %d acknowledged the write but reads back %s: it refused the value, or applies it "
			    "later (after a power cycle?)", o->unit, vt);
	return 0;
}

/* ---- poll --once -------------------------------------------------------- */

struct polled {
	int device;
	int r;                           /* bus_poll_device_once(), or -EIO: bus unusable */
	struct event *ev;
	char err[416];
};

/* A bus' state during poll --once: 0 not tried, 1 usable, -1 not (why in err). */
struct bus_try {
	int state;
	char err[416];
};

static const char *status_text(enum value_state s)
{
	return s == VAL_NO_REPLY ? "no reply" : decode_state_name(s);
}

static void point_cells(const struct point *p, const struct event_value *v, char *raw, char *val, size_t size)
{
	int digits = p->table == TABLE_COIL || p->table == TABLE_DISCRETE ? 1 : 4 * conf_vtype_width(p->type);

	if (v->state == VAL_NO_REPLY || v->state == VAL_EXCEPTION) {
		snprintf(raw, size, "-");
		snprintf(val, size, "-");
		return;
	}
	snprintf(raw, size, "0x%0*" PRIX64, digits, v->raw);
	if (p->decimals < 0 || !isfinite(v->value))
		snprintf(val, size, "%.7g", v->value);
	else
		snprintf(val, size, "%.*f", p->decimals, v->value);
}

static int poll_report(const struct conf *c, const struct polled *pd, size_t n)
{
	const char *heads[] = { "device", "point", "raw", "value", "unit", "status" };
	struct grid t = { .ncols = 6, .heads = heads, .right = 8 };
	size_t failed = 0;

	for (size_t i = 0; i < n; i++) {
		const struct device_conf *dc = &c->devices[pd[i].device];
		const struct profile *prof = &c->profiles[dc->profile];

		for (size_t k = 0; k < prof->npoints; k++) {
			const struct point *p = &prof->points[k];
			struct event_value none = { .state = VAL_NO_REPLY };
			const struct event_value *v = pd[i].ev ? &pd[i].ev->values[k] : &none;
			char raw[CELL_MAX], val[CELL_MAX];

			point_cells(p, v, raw, val, CELL_MAX);
			if (grid_add(&t, dc->name, p->name, raw, val, p->unit, status_text((enum value_state) v->state)) < 0) {
				grid_free(&t);
				return fail("%s", strerror(ENOMEM));
			}
		}
	}
	grid_print(&t, stdout);
	grid_free(&t);
	for (size_t i = 0; i < n; i++) {
		const struct device_conf *dc = &c->devices[pd[i].device];

		if (pd[i].r > 0)
			continue;
		failed++;
		fail("device '%s' (unit %d on bus '%s'): %s", dc->name, dc->unit, c->buses[dc->bus].name, pd[i].err);
	}
	printf("%zu device%s polled, %zu answered, %zu failed\n", n, n == 1 ? "" : "s", n - failed, failed);
	return failed ? 1 : 0;
}

static int cmd_poll(struct opts *o)
{
	struct conf *c = NULL;
	struct polled *pd;
	struct bus_try *bt;
	int status, r;
	size_t n = 0;

	if (!o->once)
		return bad_usage(o, "only --once: the daemon is what polls continuously");
	if (!o->file)
		return bad_usage(o, "-f FILE is required");
	r = conf_load(o->file, &c, stderr);
	if (r != 0)
		return r > 0 ? fail("%s: %d error%s", o->file, r, r == 1 ? "" : "s") : 1;
	pd = calloc(c->ndevices ? c->ndevices : 1, sizeof(*pd));
	bt = calloc(c->nbuses ? c->nbuses : 1, sizeof(*bt));
	if (!pd || !bt) {
		status = fail("%s", strerror(ENOMEM));
		goto out;
	}
	for (size_t i = 0; i < c->ndevices; i++) {
		const struct device_conf *dc = &c->devices[i];
		const struct bus_conf *bc = &c->buses[dc->bus];
		struct bus_try *b = &bt[dc->bus];
		struct polled *p = &pd[n];

		if ((o->device && strcmp(dc->name, o->device) != 0) || (!o->device && !dc->enabled))
			continue;
		if (!dc->enabled) {
			status = fail("%s: device '%s' is not enabled (enabled = false)", o->file, dc->name);
			goto out;
		}
		p->device = (int) i;
		n++;
		/* a serial port once per bus: missing, forbidden or held by the daemon */
		if (bc->type == BUS_RTU && b->state == 0 && port_check(bc->device) < 0) {
			b->state = -1;
			snprintf(b->err, sizeof(b->err), "bus down: '%s' cannot be used", bc->device);
		}
		if (b->state < 0) {
			p->r = -EIO;
			strlcpy_(p->err, b->err, sizeof(p->err));
			continue;
		}
		p->r = bus_poll_device_once(c, (int) i, &p->ev, p->err, sizeof(p->err));
		if (p->r < 0) {
			/* the other devices on this bus would fail the same way, each after a timeout */
			b->state = -1;
			snprintf(b->err, sizeof(b->err), "bus down: %.400s", p->err);
			strlcpy_(p->err, b->err, sizeof(p->err));
		} else {
			b->state = 1;
		}
	}
	if (n == 0) {
		status = o->device ? fail("%s: no device '%s'", o->file, o->device) :
				     fail("%s: no enabled devices", o->file);
		goto out;
	}
	status = poll_report(c, pd, n);
out:
	if (pd)
		for (size_t i = 0; i < n; i++)
			free(pd[i].ev);
	free(pd);
	free(bt);
	conf_free(c);
	return status;
}

/* ---- entry -------------------------------------------------------------- */

bool tools_command(const char *name)
{
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(name, cmd_names[i]) == 0)
			return true;
	return false;
}

int tools_main(int argc, char **argv)
{
	struct opts o = { .unit = -1, .addr = -1, .type = -1, .order = -1, .scale = 1.0, .table = TABLE_HOLDING };
	int r;

	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (strcmp(argv[0], cmd_names[i]) == 0)
			o.cmd = (enum cmd) (1u << i);
	o.name = argv[0];
	/* bus.c's notices (a merged read refused, RS-485 mode refused) in words */
	log_init(LOG_NOTICE_, 0);
	r = parse_opts(&o, argc, argv);
	if (r)
		return r < 0 ? 0 : r;
	if (o.cmd == CMD_POLL)
		return cmd_poll(&o);
	r = resolve_link(&o);
	if (r)
		return r;
	switch (o.cmd) {
	case CMD_SCAN:
		return cmd_scan(&o);
	case CMD_READ:
		return cmd_read(&o);
	default:
		return cmd_write(&o);
	}
}
