/*
 * fuzz_modbus_reply.c: what the poller does with whatever a Modbus device
 * answers.  bus_poll_device_once() polls one device with the worker's own
 * code (libmodbus client, retries, splitting after an exception, decoding)
 * against a fake device that answers each request with the next chunk of
 * the input.
 *
 * Input: a mode byte (bit 0: RTU on a pty pair, else Modbus TCP to a
 * loopback listener), the unit id, retries, max_registers, max_gap, a
 * profile (fuzz_points() in fuzz.h), then the replies, one chunk per
 * request: a length byte, a flags byte and that many bytes.  The flags let
 * the fuzzer get past the checks that are not ours: 0x01 copy the request's
 * unit id, 0x02 its function code, 0x04 set the byte count to fit the
 * chunk, 0x08 fix the MBAP header (TCP) or append a good CRC (RTU), 0x10
 * answer with a well-formed reply of the right size made from the chunk's
 * bytes, 0x20 (TCP) close the connection after it.  When the chunks run
 * out the fake device closes the connection (TCP) or answers with a frame
 * whose CRC is wrong (RTU), so no input waits for a timeout at its end.
 *
 * Invariants: the poll opens its bus, every value it reports has a known
 * state, a good value is finite and inside the point's range, and a poll
 * that got no answer reports every point as not read.
 *
 * The listener and the fake device's thread are made once per process.
 * The daemon's libmodbus contexts keep libmodbus' 0.5 s byte timeout, which
 * would make every truncated reply cost half a second; this file wraps
 * modbus_new_tcp_pi() and modbus_new_rtu() (the executable's definitions
 * come first) to shorten it to the response timeout: 5 ms when fuzzing,
 * 50 ms when replaying a corpus ($AGRIGW_FUZZ_TIMEOUT_MS overrides), where
 * a loaded machine must not turn answers into timeouts.  With
 * $AGRIGW_FUZZ_VERBOSE set, each poll's outcome is printed.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>

#include <modbus.h>

#include "bus.h"
#include "decode.h"
#include "fuzz.h"
#include "log.h"
#include "plan.h"
#include "queue.h"
#include "util.h"

#ifdef FUZZ_REPLAY
#define DEFAULT_TIMEOUT_MS 50
#else
#define DEFAULT_TIMEOUT_MS 5
#endif
#define MAX_POINTS 32

static int timeout_ms = DEFAULT_TIMEOUT_MS;
static bool verbose;                 /* $AGRIGW_FUZZ_VERBOSE: each poll's outcome on stderr */
static int listen_fd = -1, port;
static int client_done_fd = -1;      /* eventfd: the poll is over */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* The job of the fake device, under 'lock'. */
static struct {
	uint64_t gen, done;
	const uint8_t *data;
	size_t size;
	bool rtu;
	int fd;                           /* RTU: the pty master */
} job;

/* ---- shorter byte timeouts for the daemon's contexts ---- */

modbus_t *modbus_new_tcp_pi(const char *node, const char *service)
{
	static modbus_t *(*real)(const char *, const char *);
	modbus_t *ctx;

	if (!real)
		*(void **) &real = dlsym(RTLD_NEXT, "modbus_new_tcp_pi");
	FUZZ_ASSERT(real != NULL);
	ctx = real(node, service);
	if (ctx)
		modbus_set_byte_timeout(ctx, 0, (uint32_t) timeout_ms * 1000);
	return ctx;
}

modbus_t *modbus_new_rtu(const char *device, int baud, char parity, int data_bit, int stop_bit)
{
	static modbus_t *(*real)(const char *, int, char, int, int);
	modbus_t *ctx;

	if (!real)
		*(void **) &real = dlsym(RTLD_NEXT, "modbus_new_rtu");
	FUZZ_ASSERT(real != NULL);
	ctx = real(device, baud, parity, data_bit, stop_bit);
	if (ctx)
		modbus_set_byte_timeout(ctx, 0, (uint32_t) timeout_ms * 1000);
	return ctx;
}

/* ---- the fake device ---- */

static uint16_t crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xffff;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (uint16_t) ((crc >> 1) ^ 0xa001) : (uint16_t) (crc >> 1);
	}
	return crc;
}

/*
 * The reply to request 'req' from the next chunk; returns its length, or
 * -1 when the chunks have run out.  *close_after is set for flag 0x20.
 */
static int make_reply(struct fuzz_in *in, bool rtu, const uint8_t *req, size_t reqlen, uint8_t *out,
		      bool *close_after)
{
	size_t o = rtu ? 0 : 6;          /* offset of the unit id */
	size_t len, n = 0;
	uint8_t flags;

	if (in->n == 0)
		return -1;
	len = fuzz_u8(in);
	flags = fuzz_u8(in);
	if (len > in->n)
		len = in->n;
	*close_after = !rtu && (flags & 0x20);
	if ((flags & 0x10) && reqlen >= o + 6) {
		unsigned fc = req[o + 1], count = (unsigned) req[o + 4] << 8 | req[o + 5];
		unsigned bytes = fc == 1 || fc == 2 ? (count + 7) / 8 : 2 * count;

		if (bytes > 250)
			bytes = 250;
		if (!rtu) {
			memcpy(out, req, 4);
			out[4] = (uint8_t) ((bytes + 3) >> 8);
			out[5] = (uint8_t) (bytes + 3);
		}
		out[o] = req[o];
		out[o + 1] = (uint8_t) fc;
		out[o + 2] = (uint8_t) bytes;
		n = o + 3;
		for (unsigned i = 0; i < bytes; i++)
			out[n++] = i < len ? in->p[i] : 0;
		in->p += len;
		in->n -= len;
	} else {
		memcpy(out, in->p, len);
		in->p += len;
		in->n -= len;
		n = len;
		if ((flags & 0x01) && n > o && reqlen > o)
			out[o] = req[o];
		if ((flags & 0x02) && n > o + 1 && reqlen > o + 1)
			out[o + 1] = req[o + 1];
		if ((flags & 0x04) && n > o + 2)
			out[o + 2] = (uint8_t) (n - (o + 3));
		if ((flags & 0x08) && !rtu && n >= 6 && reqlen >= 4) {
			memcpy(out, req, 2);
			out[2] = out[3] = 0;
			out[4] = (uint8_t) ((n - 6) >> 8);
			out[5] = (uint8_t) (n - 6);
		}
		if (!(flags & 0x08) || !rtu)
			return (int) n;
	}
	if (rtu) {
		uint16_t crc = crc16(out, n);

		out[n++] = (uint8_t) crc;
		out[n++] = (uint8_t) (crc >> 8);
	}
	return (int) n;
}

/* Wait for fd to be readable or the poll to be over; true when readable. */
static bool wait_readable(int fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = client_done_fd, .events = POLLIN } };

	for (;;) {
		int r = poll(p, 2, 10000);

		FUZZ_ASSERT(r > 0 || (r < 0 && errno == EINTR));
		if (r < 0)
			continue;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			return true;
		if (p[1].revents & POLLIN)
			return false;
	}
}

/* Answer requests on fd until the client is gone or done. */
static void serve(int fd, bool rtu, struct fuzz_in *in)
{
	uint8_t req[300], out[600];
	size_t want = rtu ? 8 : 12;      /* every request is a read: fixed size */

	for (;;) {
		size_t got = 0;
		bool close_after = false;
		int n;

		while (got < want) {
			ssize_t r;

			if (!wait_readable(fd))
				return;
			r = read(fd, req + got, sizeof(req) - got);
			if (r <= 0)
				return;          /* closed (TCP) */
			got += (size_t) r;
		}
		n = make_reply(in, rtu, req, got, out, &close_after);
		if (n < 0) {
			if (!rtu) {
				(void) shutdown(fd, SHUT_WR);
				continue;        /* until the client closes */
			}
			/* an exception frame with a wrong CRC: a bad frame at once */
			uint16_t crc;

			out[0] = req[0];
			out[1] = (uint8_t) (req[1] | 0x80);
			out[2] = 4;
			crc = (uint16_t) ~crc16(out, 3);
			out[3] = (uint8_t) crc;
			out[4] = (uint8_t) (crc >> 8);
			n = 5;
		}
		if (n > 0 && (rtu ? write(fd, out, (size_t) n) : send(fd, out, (size_t) n, MSG_NOSIGNAL)) < 0)
			return;
		if (close_after)
			(void) shutdown(fd, SHUT_WR);
	}
}

static void *device_thread(void *arg)
{
	uint64_t served = 0;

	(void) arg;
	for (;;) {
		struct fuzz_in in;
		uint64_t gen, v;
		bool rtu;
		int fd;

		pthread_mutex_lock(&lock);
		while (job.gen == served)
			pthread_cond_wait(&cond, &lock);
		gen = job.gen;
		in.p = job.data;
		in.n = job.size;
		rtu = job.rtu;
		fd = job.fd;
		pthread_mutex_unlock(&lock);

		if (rtu) {
			serve(fd, true, &in);
		} else if (wait_readable(listen_fd)) {
			fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
			FUZZ_ASSERT(fd >= 0);
			serve(fd, false, &in);
			close(fd);
		}
		/* the poll is over (wait for it when the client closed first) */
		while (read(client_done_fd, &v, sizeof(v)) != sizeof(v))
			;
		served = gen;
		pthread_mutex_lock(&lock);
		job.done = gen;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	const char *t = getenv("AGRIGW_FUZZ_TIMEOUT_MS");
	pthread_t th;

	(void) argc;
	(void) argv;
	if (t && atoi(t) > 0)
		timeout_ms = atoi(t);
	verbose = getenv("AGRIGW_FUZZ_VERBOSE") != NULL;
	log_init(0, 1);                  /* quiet: the fuzzer's output is its own */
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	client_done_fd = eventfd(0, EFD_CLOEXEC);
	if (listen_fd < 0 || client_done_fd < 0 || bind(listen_fd, (struct sockaddr *) &a, sizeof(a)) < 0 ||
	    listen(listen_fd, 8) < 0 || getsockname(listen_fd, (struct sockaddr *) &a, &alen) < 0) {
		perror("fuzz_modbus_reply: listener");
		exit(2);
	}
	port = ntohs(a.sin_port);
	if (pthread_create(&th, NULL, device_thread, NULL) != 0) {
		perror("fuzz_modbus_reply: thread");
		exit(2);
	}
	pthread_detach(th);
	return 0;
}

static void check_event(const struct event *ev, const struct point *pts, size_t n, int answered)
{
	FUZZ_ASSERT(ev->kind == EV_READING && ev->nvalues == n && ev->device == 0 && ev->bus == 0);
	FUZZ_ASSERT(ev->polls == 1);
	for (size_t i = 0; i < n; i++) {
		const struct event_value *v = &ev->values[i];

		FUZZ_ASSERT(v->state <= VAL_NO_REPLY);
		if (!answered)
			FUZZ_ASSERT(v->state == VAL_NO_REPLY);
		if (v->state == VAL_OK) {
			FUZZ_ASSERT(isfinite(v->value));
			FUZZ_ASSERT(!pts[i].has_min || v->value >= pts[i].min);
			FUZZ_ASSERT(!pts[i].has_max || v->value <= pts[i].max);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct point pts[MAX_POINTS];
	static struct plan plan;
	struct fuzz_in in = { data, size };
	struct bus_conf bc = { .name = "fz" };
	struct device_conf dc = { .name = "dev", .enabled = true };
	struct profile prof = { .name = "prof", .points = pts };
	struct conf c = { .site = "s", .id = "g", .buses = &bc, .nbuses = 1, .devices = &dc, .ndevices = 1,
			  .profiles = &prof, .nprofiles = 1 };
	struct event *ev = NULL;
	char err[256] = "", slave[128];
	int master = -1, slave_fd = -1, r;
	uint8_t mode, unit;
	uint64_t gen, one = 1;

	mode = fuzz_u8(&in);
	unit = fuzz_u8(&in);
	dc.retries = fuzz_u8(&in) % 3;
	dc.max_registers = 1 + fuzz_u8(&in) % 125;
	dc.max_gap = fuzz_u8(&in) % 125;
	prof.npoints = fuzz_points(&in, pts, MAX_POINTS);
	if (plan_build(pts, prof.npoints, dc.max_registers, dc.max_gap, &plan) < 0)
		return 0;                /* conf.c refuses such a device */
	dc.interval_ms = 1000;
	dc.offline_after = 3;
	dc.backoff_max_ms = 1000;
	bc.response_timeout_ms = timeout_ms;
	bc.connect_timeout_ms = 1000;
	if (mode & 1) {
		struct termios tio;

		if (openpty(&master, &slave_fd, slave, NULL, NULL) < 0) {
			perror("openpty");
			exit(2);
		}
		(void) tcgetattr(slave_fd, &tio);
		cfmakeraw(&tio);
		(void) tcsetattr(slave_fd, TCSANOW, &tio);
		bc.type = BUS_RTU;
		strlcpy_(bc.device, slave, sizeof(bc.device));
		bc.baud = 19200;
		bc.parity = 'N';
		bc.data_bits = 8;
		bc.stop_bits = 1;
		dc.unit = 1 + unit % 247;
	} else {
		bc.type = BUS_TCP;
		strlcpy_(bc.host, "127.0.0.1", sizeof(bc.host));
		bc.port = port;
		dc.unit = unit;
	}

	pthread_mutex_lock(&lock);
	job.data = in.p;
	job.size = in.n;
	job.rtu = mode & 1;
	job.fd = master;
	gen = ++job.gen;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);

	r = bus_poll_device_once(&c, 0, &ev, err, sizeof(err));

	FUZZ_ASSERT(write(client_done_fd, &one, sizeof(one)) == sizeof(one));
	pthread_mutex_lock(&lock);
	while (job.done != gen) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		FUZZ_ASSERT(pthread_cond_timedwait(&cond, &lock, &ts) == 0 || job.done == gen);
	}
	pthread_mutex_unlock(&lock);

	if (r < 0)
		fprintf(stderr, "poll: %s\n", err);
	FUZZ_ASSERT(r == 0 || r == 1);
	FUZZ_ASSERT(ev != NULL);
	check_event(ev, pts, prof.npoints, r);
	if (verbose) {
		fprintf(stderr, "%s unit %d: %s%s", mode & 1 ? "rtu" : "tcp", dc.unit, r ? "answered" : "no answer: ", err);
		for (size_t i = 0; i < prof.npoints; i++)
			fprintf(stderr, " %s", decode_state_name((enum value_state) ev->values[i].state));
		fprintf(stderr, "\n");
	}
	free(ev);
	if (master >= 0) {
		close(slave_fd);
		close(master);
	}
	return 0;
}
