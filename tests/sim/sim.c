/*
 * agrigw-sim: Modbus devices for the demo, the integration tests and the
 * benchmark.  Simulates every enabled device of one bus of an agrigw site
 * config over Modbus TCP or Modbus RTU (on a pty), with faults injected on
 * command.  See tests/sim/README.md.
 *
 * One thread, one ppoll() loop.  SIGINT/SIGTERM are blocked except inside
 * ppoll(), so a signal ends the loop without racing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define MAX_CONNS 256            /* TCP clients + control clients */
#define IN_MAX 1024
#define OUT_MAX (1024 * 1024)    /* a peer that reads nothing is dropped */
#define QUEUE_MAX 256            /* delayed replies waiting per peer */
#define WANDER_TICK_MS 1000
#define RTU_RETRY_MS 1000
#define RTU_MIN_GAP_MS 50        /* the inter-frame time on a pty */

enum conn_kind { C_TCP, C_RTU, C_CTL, C_STDIN };

struct pending {
	struct pending *next;
	int64_t due;
	size_t len;
	uint8_t data[];
};

struct conn {
	enum conn_kind kind;
	int fd;
	uint8_t in[IN_MAX];
	size_t inlen;
	int64_t last_rx;
	struct dbuf out;
	struct pending *qh, *qt;
	size_t qn;
	bool dead;
	bool overlong;               /* control: discarding a too long line */
};

struct app {
	struct sim_model m;
	struct conf *conf;
	modbus_t *ctx;
	int capfd[2];
	int listen_fd;
	int ctl_fd;
	const char *ctl_path;
	struct conn *conns[MAX_CONNS];
	size_t nconns;
	struct conn *rtu;            /* RTU mode: the pty */
	bool rtu_up;
	int64_t rtu_retry_at;
	int ift_ms;
	bool values_dirty;
	int64_t t0, next_wander;
	struct dbuf scratch;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- peers --------------------------------------------------------------- */

static struct conn *conn_new(struct app *a, enum conn_kind kind, int fd)
{
	struct conn *c;

	if (a->nconns >= MAX_CONNS)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->kind = kind;
	c->fd = fd;
	a->conns[a->nconns++] = c;
	return c;
}

static void conn_clear_queue(struct conn *c)
{
	struct pending *p, *n;

	for (p = c->qh; p; p = n) {
		n = p->next;
		free(p);
	}
	c->qh = c->qt = NULL;
	c->qn = 0;
}

static void conn_free(struct conn *c)
{
	conn_clear_queue(c);
	dbuf_free(&c->out);
	free(c);
}

/* Queue reply bytes for a peer, after delay_ms. */
static void conn_send(struct conn *c, const void *data, size_t len, unsigned delay_ms, int64_t now)
{
	struct pending *p;

	if (delay_ms == 0 && c->qh == NULL) {
		if (c->out.len + len <= OUT_MAX)
			dbuf_add(&c->out, data, len);
		else if (c->kind == C_TCP)
			c->dead = true;
		return;
	}
	if (c->qn >= QUEUE_MAX)
		return;
	p = malloc(sizeof(*p) + len);
	if (p == NULL)
		return;
	p->next = NULL;
	p->due = now + delay_ms;
	p->len = len;
	memcpy(p->data, data, len);
	if (c->qt)
		c->qt->next = p;
	else
		c->qh = p;
	c->qt = p;
	c->qn++;
}

/* Delayed replies that are due go to the output, in order. */
static void conn_release(struct conn *c, int64_t now)
{
	while (c->qh && c->qh->due <= now) {
		struct pending *p = c->qh;

		c->qh = p->next;
		if (c->qh == NULL)
			c->qt = NULL;
		c->qn--;
		if (c->out.len + p->len <= OUT_MAX)
			dbuf_add(&c->out, p->data, p->len);
		free(p);
	}
}

static void rtu_down(struct app *a, const char *why)
{
	fprintf(stderr, "agrigw-sim: %s: %s; reopening\n", why, strerror(errno));
	modbus_close(a->ctx);
	a->rtu_up = false;
	a->rtu->fd = -1;
	a->rtu->inlen = 0;
	a->rtu->out.len = 0;
	conn_clear_queue(a->rtu);
	a->rtu_retry_at = now_ms() + RTU_RETRY_MS;
}

static void conn_write(struct app *a, struct conn *c)
{
	while (c->out.len > 0) {
		ssize_t n;

		if (c->kind == C_TCP)
			n = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		else if (c->kind == C_CTL)
			n = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		else if (c->kind == C_STDIN)
			n = write(STDOUT_FILENO, c->out.p, c->out.len);
		else
			n = write(c->fd, c->out.p, c->out.len);
		if (n > 0) {
			dbuf_consume(&c->out, (size_t) n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (c->kind == C_RTU)
			rtu_down(a, "pty write");
		else if (c->kind == C_STDIN)
			c->out.len = 0;
		else
			c->dead = true;
		return;
	}
}

/* ---- requests --------------------------------------------------------------- */

struct frame_arg {
	struct app *a;
	struct conn *c;
	int64_t now;
};

static void on_frame(void *arg, const uint8_t *frame, size_t len)
{
	struct frame_arg *fa = arg;
	struct app *a = fa->a;
	unsigned delay;

	if (serve_request(&a->m, a->ctx, a->capfd, frame, len, &a->scratch, &delay))
		a->values_dirty = true;
	if (a->scratch.len > 0)
		conn_send(fa->c, a->scratch.p, a->scratch.len, delay, fa->now);
}

static void tcp_read(struct app *a, struct conn *c, int64_t now)
{
	struct frame_arg fa = { a, c, now };
	ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, MSG_DONTWAIT);
	long used;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		c->dead = true;
		return;
	}
	c->inlen += (size_t) n;
	used = tcp_frames(&a->m, c->in, c->inlen, on_frame, &fa);
	if (used < 0) {
		sim_log("client fd %d sent garbage, closing", c->fd);
		c->dead = true;
		return;
	}
	memmove(c->in, c->in + used, c->inlen - (size_t) used);
	c->inlen -= (size_t) used;
}

static void rtu_frame_input(struct app *a, bool final, int64_t now)
{
	struct conn *c = a->rtu;
	struct frame_arg fa = { a, c, now };
	size_t used = rtu_frames(&a->m, c->in, c->inlen, final, on_frame, &fa);

	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
}

/* A tty with VMIN = VTIME = 0 (libmodbus' settings) reads 0 bytes when it
 * has none, so 0 is no end of file here; a hang-up is POLLHUP with nothing
 * to read, or EIO. */
static void rtu_read(struct app *a, int64_t now, bool hup)
{
	struct conn *c = a->rtu;
	bool got = false;

	for (;;) {
		ssize_t n;

		if (c->inlen == sizeof(c->in))
			rtu_frame_input(a, true, now);   /* a full buffer of noise */
		n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (n > 0) {
			c->inlen += (size_t) n;
			c->last_rx = now;
			got = true;
			rtu_frame_input(a, false, now);
			if (!a->rtu_up)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
			if (hup && !got) {
				errno = EPIPE;
				rtu_down(a, "pty hung up");
			}
			return;
		}
		rtu_down(a, "pty read");
		return;
	}
}

static int rtu_open(struct app *a)
{
	if (modbus_connect(a->ctx) < 0)
		return -1;
	a->rtu->fd = modbus_get_socket(a->ctx);
	a->rtu->inlen = 0;
	a->rtu_up = true;
	return 0;
}

/* ---- control ---------------------------------------------------------------- */

/* "reset": every TCP client is cut off with a reset (RST, no FIN), as by a
 * device or Modbus gateway that reboots.  Replies already made are written
 * first; delayed ones are dropped with the connection. */
static void reset_clients(struct app *a)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	size_t i;

	a->m.reset_pending = false;
	for (i = 0; i < a->nconns; i++) {
		struct conn *c = a->conns[i];

		if (c->kind != C_TCP || c->dead)
			continue;
		conn_write(a, c);
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		c->dead = true;              /* closed by reap(): the reset goes out */
		a->m.resets++;
	}
}

static void ctl_read(struct app *a, struct conn *c)
{
	ssize_t n;
	char *nl;

	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->kind == C_STDIN) {
			sim_log("end of input on stdin, exiting");
			stop_signal = -1;
		}
		c->dead = true;
		return;
	}
	c->inlen += (size_t) n;
	c->in[c->inlen] = '\0';
	while ((nl = memchr(c->in, '\n', c->inlen)) != NULL) {
		size_t linelen = (size_t) (nl - (char *) c->in);

		*nl = '\0';
		if (linelen > 0 && c->in[linelen - 1] == '\r')
			c->in[linelen - 1] = '\0';
		if (c->overlong) {
			c->overlong = false;
			dbuf_printf(&c->out, "error line too long\n");
		} else {
			if (c->in[0] != '\0' && strcmp((char *) c->in, "stats") != 0)
				sim_log("control: %s", (char *) c->in);
			control_exec(&a->m, (char *) c->in, &c->out);
			if (a->m.reset_pending)
				reset_clients(a);
		}
		memmove(c->in, nl + 1, c->inlen - linelen - 1);
		c->inlen -= linelen + 1;
	}
	if (c->inlen >= sizeof(c->in) - 1) {
		c->overlong = true;  /* answered once, at its newline */
		c->inlen = 0;
	}
	if (c->out.len > OUT_MAX && c->kind == C_CTL)
		c->dead = true;      /* a client that sends but never reads */
	conn_write(a, c);
}

static int ctl_listen(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "agrigw-sim: control path too long: %s\n", path);
		return -1;
	}
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "agrigw-sim: control socket %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the loop ------------------------------------------------------------------ */

static void accept_clients(struct app *a, enum conn_kind kind, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0)
			return;
		if (conn_new(a, kind, fd) == NULL) {
			sim_log("too many connections, refusing one");
			close(fd);
			continue;
		}
		if (kind == C_TCP) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			a->m.clients++;
			sim_log("client connected (fd %d, %u now)", fd, a->m.clients);
		}
	}
}

static void reap(struct app *a)
{
	size_t i = 0;

	while (i < a->nconns) {
		struct conn *c = a->conns[i];

		if (!c->dead) {
			i++;
			continue;
		}
		if (c->kind == C_TCP) {
			a->m.clients--;
			sim_log("client fd %d gone (%u left)", c->fd, a->m.clients);
		}
		if (c->kind != C_STDIN && c->kind != C_RTU)
			close(c->fd);
		conn_free(c);
		a->conns[i] = a->conns[--a->nconns];
	}
}

static int64_t next_deadline(struct app *a, int64_t now)
{
	int64_t t = now + 1000;
	size_t i;

	for (i = 0; i < a->nconns; i++) {
		struct conn *c = a->conns[i];

		if (c->qh && c->qh->due < t)
			t = c->qh->due;
	}
	if (a->rtu) {
		if (!a->rtu_up && a->rtu_retry_at < t)
			t = a->rtu_retry_at;
		if (a->rtu_up && a->rtu->inlen > 0 && a->rtu->last_rx + a->ift_ms < t)
			t = a->rtu->last_rx + a->ift_ms;
	}
	if (a->m.wander && a->next_wander < t)
		t = a->next_wander;
	return t < now ? now : t;
}

static int run(struct app *a, const sigset_t *waitmask)
{
	struct pollfd pfd[MAX_CONNS + 4];
	struct conn *owner[MAX_CONNS + 4];

	while (!stop_signal) {
		int64_t now = now_ms(), deadline = next_deadline(a, now);
		struct timespec ts;
		size_t n = 0, i;
		int rc;

		if (a->listen_fd >= 0) {
			pfd[n] = (struct pollfd) { .fd = a->listen_fd, .events = POLLIN };
			owner[n++] = NULL;
		}
		if (a->ctl_fd >= 0) {
			pfd[n] = (struct pollfd) { .fd = a->ctl_fd, .events = POLLIN };
			owner[n++] = NULL;
		}
		for (i = 0; i < a->nconns; i++) {
			struct conn *c = a->conns[i];
			short ev = POLLIN;

			if (c->kind == C_RTU && !a->rtu_up)
				continue;
			if (c->out.len > 0 && c->kind != C_STDIN)
				ev |= POLLOUT;
			pfd[n] = (struct pollfd) { .fd = c->kind == C_STDIN ? STDIN_FILENO : c->fd, .events = ev };
			owner[n++] = c;
		}
		ts.tv_sec = (deadline - now) / 1000;
		ts.tv_nsec = (long) ((deadline - now) % 1000) * 1000000L;
		rc = ppoll(pfd, n, &ts, waitmask);
		if (rc < 0 && errno != EINTR) {
			perror("agrigw-sim: ppoll");
			return -1;
		}
		if (stop_signal)
			break;
		now = now_ms();

		for (i = 0; rc > 0 && i < n; i++) {
			struct conn *c = owner[i];
			short re = pfd[i].revents;

			if (re == 0)
				continue;
			if (c == NULL) {
				accept_clients(a, pfd[i].fd == a->listen_fd ? C_TCP : C_CTL, pfd[i].fd);
				continue;
			}
			if (c->dead)
				continue;
			if (c->kind == C_RTU) {
				if (re & (POLLIN | POLLERR | POLLHUP))
					rtu_read(a, now, (re & (POLLHUP | POLLERR)) != 0);
				if (a->rtu_up && (re & POLLOUT))
					conn_write(a, c);
			} else if (c->kind == C_TCP) {
				if (re & (POLLIN | POLLERR | POLLHUP))
					tcp_read(a, c, now);
				if (!c->dead && (re & POLLOUT))
					conn_write(a, c);
			} else {
				if (re & (POLLIN | POLLERR | POLLHUP))
					ctl_read(a, c);
				if (!c->dead && (re & POLLOUT))
					conn_write(a, c);
			}
		}

		/* timers */
		if (a->rtu) {
			if (!a->rtu_up && now >= a->rtu_retry_at) {
				if (rtu_open(a) == 0)
					sim_log("pty open again");
				else
					a->rtu_retry_at = now + RTU_RETRY_MS;
			}
			if (a->rtu_up && a->rtu->inlen > 0 && now - a->rtu->last_rx >= a->ift_ms)
				rtu_frame_input(a, true, now);
		}
		if (a->m.wander && now >= a->next_wander) {
			if (model_wander(&a->m, (double) (now - a->t0) / 1000.0))
				a->values_dirty = true;
			a->next_wander = now + WANDER_TICK_MS;
		}
		for (i = 0; i < a->nconns; i++) {
			struct conn *c = a->conns[i];

			if (c->dead || (c->kind == C_RTU && !a->rtu_up))
				continue;
			conn_release(c, now);
			if (c->out.len > 0)
				conn_write(a, c);
		}
		reap(a);
		if (a->values_dirty) {
			model_write_values(&a->m);
			a->values_dirty = false;
		}
	}
	if (stop_signal > 0)
		sim_log("signal %d, exiting", (int) stop_signal);
	return 0;
}

/* ---- command line ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: agrigw-sim -f SITE.conf --bus NAME (--tcp HOST:PORT | --rtu PTY\n"
	      "                  [--baud B] [--parity N|E|O] [--data-bits 7|8] [--stop-bits 1|2])\n"
	      "                  [--control PATH|-] [--values FILE] [--wander] [--seed N] [--quiet]\n"
	      "Simulates every enabled device of bus NAME in the agrigw config.  Prints\n"
	      "\"READY tcp PORT\" or \"READY rtu PATH\" once serving.  --tcp port 0 picks a\n"
	      "free port.  --control - reads commands from stdin (answers on stdout; end\n"
	      "of input exits).  See tests/sim/README.md.\n", f);
}

static int parse_int(const char *s, long lo, long hi, long *ret)
{
	char *end;

	errno = 0;
	*ret = strtol(s, &end, 10);
	return (errno || end == s || *end || *ret < lo || *ret > hi) ? -1 : 0;
}

/* "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" (host 127.0.0.1). */
static int parse_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon;
	long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		if ((size_t) (close - s - 1) >= hostlen)
			return -1;
		memcpy(host, s + 1, (size_t) (close - s - 1));
		host[close - s - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			colon = s - 1;
			snprintf(host, hostlen, "127.0.0.1");
		} else if (colon == s) {
			snprintf(host, hostlen, "127.0.0.1");
		} else {
			if ((size_t) (colon - s) >= hostlen)
				return -1;
			memcpy(host, s, (size_t) (colon - s));
			host[colon - s] = '\0';
		}
	}
	if (parse_int(colon + 1, 0, 65535, &p) < 0)
		return -1;
	snprintf(port, portlen, "%ld", p);
	return 0;
}

static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *) &ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "bus", required_argument, NULL, 'b' },
		{ "tcp", required_argument, NULL, 't' },
		{ "rtu", required_argument, NULL, 'r' },
		{ "baud", required_argument, NULL, 'B' },
		{ "parity", required_argument, NULL, 'P' },
		{ "data-bits", required_argument, NULL, 'D' },
		{ "stop-bits", required_argument, NULL, 'S' },
		{ "control", required_argument, NULL, 'c' },
		{ "values", required_argument, NULL, 'v' },
		{ "wander", no_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = NULL, *busname = NULL, *tcp = NULL, *rtu = NULL, *values = NULL;
	long baud = -1, data_bits = -1, stop_bits = -1;
	char parity = 0;
	unsigned long long seed = 0;
	bool wander = false;
	struct app a;
	const struct bus_conf *bc = NULL;
	sigset_t block, orig;
	struct sigaction sa;
	int opt, ret = 1, bus = -1;
	size_t i;

	memset(&a, 0, sizeof(a));
	a.listen_fd = a.ctl_fd = a.capfd[0] = a.capfd[1] = -1;

	while ((opt = getopt_long(argc, argv, "f:b:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': file = optarg; break;
		case 'b': busname = optarg; break;
		case 't': tcp = optarg; break;
		case 'r': rtu = optarg; break;
		case 'B':
			if (parse_int(optarg, 50, 4000000, &baud) < 0)
				goto bad_arg;
			break;
		case 'P':
			if (strlen(optarg) != 1 || !strchr("NEOneo", optarg[0]))
				goto bad_arg;
			parity = (char) (optarg[0] & ~0x20);
			break;
		case 'D':
			if (parse_int(optarg, 5, 8, &data_bits) < 0)
				goto bad_arg;
			break;
		case 'S':
			if (parse_int(optarg, 1, 2, &stop_bits) < 0)
				goto bad_arg;
			break;
		case 'c': a.ctl_path = optarg; break;
		case 'v': values = optarg; break;
		case 'w': wander = true; break;
		case 's': {
			char *end;

			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end)
				goto bad_arg;
			break;
		}
		case 'q': sim_quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		continue;
bad_arg:
		fprintf(stderr, "agrigw-sim: bad value for an option: %s\n", optarg);
		return 2;
	}
	if (optind != argc || file == NULL || busname == NULL || (tcp == NULL) == (rtu == NULL)) {
		usage(stderr);
		return 2;
	}

	{
		int rc = conf_load(file, &a.conf, stderr);

		if (rc != 0) {
			fprintf(stderr, "agrigw-sim: %s: configuration not usable\n", file);
			return 2;
		}
	}
	for (i = 0; i < a.conf->nbuses; i++)
		if (strcmp(a.conf->buses[i].name, busname) == 0) {
			bus = (int) i;
			bc = &a.conf->buses[i];
		}
	if (bc == NULL) {
		fprintf(stderr, "agrigw-sim: %s: no bus named %s\n", file, busname);
		conf_free(a.conf);
		return 2;
	}
	if (model_init(&a.m, a.conf, bus, seed, wander, values, stderr) < 0) {
		fprintf(stderr, "agrigw-sim: out of memory\n");
		goto out;
	}
	a.m.rtu = rtu != NULL;
	if (a.m.ndevs == 0)
		fprintf(stderr, "agrigw-sim: warning: no enabled devices on bus %s\n", busname);
	for (i = 0; i < a.m.ndevs; i++)
		sim_log("unit %d: %s (profile %s, %zu points)", a.m.devs[i].dc->unit,
			a.m.devs[i].dc->name, a.m.devs[i].prof->name, a.m.devs[i].npts);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a.capfd) < 0) {
		perror("agrigw-sim: socketpair");
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigdelset(&orig, SIGINT);
	sigdelset(&orig, SIGTERM);

	if (tcp) {
		char host[256], port[16];

		if (parse_hostport(tcp, host, sizeof(host), port, sizeof(port)) < 0) {
			fprintf(stderr, "agrigw-sim: --tcp wants HOST:PORT, not %s\n", tcp);
			ret = 2;
			goto out;
		}
		if (strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0 && strcmp(host, "localhost") != 0)
			fprintf(stderr, "agrigw-sim: warning: listening on %s, not on loopback\n", host);
		a.ctx = modbus_new_tcp_pi(host, port);
		if (a.ctx == NULL) {
			fprintf(stderr, "agrigw-sim: modbus_new_tcp_pi: %s\n", modbus_strerror(errno));
			goto out;
		}
		a.listen_fd = modbus_tcp_pi_listen(a.ctx, 64);
		if (a.listen_fd < 0) {
			fprintf(stderr, "agrigw-sim: listen on %s: %s\n", tcp, modbus_strerror(errno));
			goto out;
		}
		fcntl(a.listen_fd, F_SETFL, fcntl(a.listen_fd, F_GETFL) | O_NONBLOCK);
		fcntl(a.listen_fd, F_SETFD, FD_CLOEXEC);
	} else {
		if (baud < 0)
			baud = bc->type == BUS_RTU ? bc->baud : 9600;
		if (parity == 0)
			parity = bc->type == BUS_RTU ? bc->parity : 'N';
		if (data_bits < 0)
			data_bits = bc->type == BUS_RTU ? bc->data_bits : 8;
		if (stop_bits < 0)
			stop_bits = bc->type == BUS_RTU ? bc->stop_bits : 1;
		a.ctx = modbus_new_rtu(rtu, (int) baud, parity, (int) data_bits, (int) stop_bits);
		if (a.ctx == NULL) {
			fprintf(stderr, "agrigw-sim: modbus_new_rtu: %s\n", modbus_strerror(errno));
			goto out;
		}
		a.rtu = conn_new(&a, C_RTU, -1);
		if (a.rtu == NULL)
			goto out;
		/* 3.5 characters of 11 bits, but at least what a pty's jitter needs */
		a.ift_ms = (int) (3.5 * 11 * 1000 / baud) + 1;
		if (a.ift_ms < RTU_MIN_GAP_MS)
			a.ift_ms = RTU_MIN_GAP_MS;
		if (rtu_open(&a) < 0) {
			fprintf(stderr, "agrigw-sim: open %s: %s\n", rtu, modbus_strerror(errno));
			goto out;
		}
	}

	/* modbus_reply() sleeps this long before some exception replies
	 * (to "flush" the line): keep it from stalling the loop */
	modbus_set_response_timeout(a.ctx, 0, 1);

	if (a.ctl_path && strcmp(a.ctl_path, "-") == 0) {
		if (conn_new(&a, C_STDIN, STDIN_FILENO) == NULL)
			goto out;
		a.ctl_path = NULL;
	} else if (a.ctl_path) {
		a.ctl_fd = ctl_listen(a.ctl_path);
		if (a.ctl_fd < 0) {
			a.ctl_path = NULL;
			goto out;
		}
	}

	if (values && model_write_values(&a.m) < 0)
		goto out;
	a.t0 = now_ms();
	a.next_wander = a.t0 + WANDER_TICK_MS;

	if (tcp) {
		int p = local_port(a.listen_fd);

		printf("READY tcp %d\n", p);
		sim_log("serving %zu units on TCP port %d", a.m.ndevs, p);
	} else {
		printf("READY rtu %s\n", rtu);
		sim_log("serving %zu units on %s, %ld %c%ld%ld", a.m.ndevs, rtu, baud, parity,
			data_bits, stop_bits);
	}
	fflush(stdout);

	ret = run(&a, &orig) < 0 ? 1 : 0;

out:
	for (i = 0; i < a.nconns; i++) {
		struct conn *c = a.conns[i];

		if (c->kind == C_TCP || c->kind == C_CTL)
			close(c->fd);
		conn_free(c);
	}
	if (a.listen_fd >= 0)
		close(a.listen_fd);
	if (a.ctl_fd >= 0)
		close(a.ctl_fd);
	if (a.ctl_path)
		unlink(a.ctl_path);
	if (a.capfd[0] >= 0) {
		close(a.capfd[0]);
		close(a.capfd[1]);
	}
	if (a.ctx) {
		if (rtu && a.rtu_up)
			modbus_close(a.ctx);
		modbus_free(a.ctx);
	}
	dbuf_free(&a.scratch);
	model_free(&a.m);
	conf_free(a.conf);
	return ret;
}
