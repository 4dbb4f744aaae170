/*
 * control.c: the control commands, one line in, one line out.
 *
 * Replies start with "ok" or "error", except "stats", which answers with one
 * line of JSON.  UNIT is a unit id or a device name.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sim.h"

bool sim_quiet;

void sim_log(const char *fmt, ...)
{
	va_list ap;

	if (sim_quiet)
		return;
	va_start(ap, fmt);
	fputs("agrigw-sim: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#define MAX_ARGS 6

static int split(char *line, char **argv)
{
	int n = 0;
	char *save = NULL, *tok;

	for (tok = strtok_r(line, " \t\r", &save); tok && n < MAX_ARGS;
	     tok = strtok_r(NULL, " \t\r", &save))
		argv[n++] = tok;
	if (tok != NULL)
		return -1;
	return n;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;

	if (*s == '-' || *s == '+')
		return -1;
	errno = 0;
	*ret = strtoul(s, &end, 0);
	if (errno || end == s || *end != '\0' || *ret > max)
		return -1;
	return 0;
}

static json_t *unit_stats(const struct sim_dev *d)
{
	json_t *o = json_object();

	json_object_set_new(o, "device", json_string(d->dc->name));
	json_object_set_new(o, "requests", json_integer((json_int_t) d->st.requests));
	json_object_set_new(o, "replies", json_integer((json_int_t) d->st.replies));
	json_object_set_new(o, "exceptions", json_integer((json_int_t) d->st.exceptions));
	json_object_set_new(o, "faults", json_integer((json_int_t) d->st.faults));
	return o;
}

static void stats(struct sim_model *m, struct dbuf *out)
{
	struct sim_stats t = { 0 };
	json_t *root = json_object(), *units = json_object();
	char key[8], *s;
	size_t i;

	for (i = 0; i < m->ndevs; i++) {
		const struct sim_dev *d = &m->devs[i];

		t.requests += d->st.requests;
		t.replies += d->st.replies;
		t.exceptions += d->st.exceptions;
		t.faults += d->st.faults;
		snprintf(key, sizeof(key), "%d", d->dc->unit);
		json_object_set_new(units, key, unit_stats(d));
	}
	json_object_set_new(root, "requests", json_integer((json_int_t) t.requests));
	json_object_set_new(root, "replies", json_integer((json_int_t) t.replies));
	json_object_set_new(root, "exceptions", json_integer((json_int_t) t.exceptions));
	json_object_set_new(root, "faults", json_integer((json_int_t) t.faults));
	json_object_set_new(root, "bad_frames", json_integer((json_int_t) m->bad_frames));
	json_object_set_new(root, "ignored", json_integer((json_int_t) m->ignored));
	json_object_set_new(root, "clients", json_integer((json_int_t) m->clients));
	json_object_set_new(root, "resets", json_integer((json_int_t) m->resets));
	json_object_set_new(root, "units", units);
	s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (s) {
		dbuf_printf(out, "%s\n", s);
		free(s);
	} else {
		dbuf_printf(out, "error out of memory\n");
	}
	json_decref(root);
}

static const char HELP[] =
	"ok commands: silence UNIT on|off; exception UNIT ADDR CODE; badcrc UNIT N; "
	"garbage UNIT N; delay UNIT MS; wrongunit UNIT N; truncate UNIT N; "
	"set DEVICE POINT VALUE; get DEVICE POINT; clear UNIT|all; reset; stats; reset-stats; help";

static void clear_faults(struct sim_dev *d)
{
	memset(&d->f, 0, sizeof(d->f));
}

void control_exec(struct sim_model *m, char *line, struct dbuf *out)
{
	char *argv[MAX_ARGS];
	int argc = split(line, argv);
	struct sim_dev *d = NULL;
	unsigned long n = 0, n2 = 0;
	const char *cmd;

	if (argc < 0) {
		dbuf_printf(out, "error too many arguments\n");
		return;
	}
	if (argc == 0) {
		dbuf_printf(out, "error empty command\n");
		return;
	}
	cmd = argv[0];
	if (strcmp(cmd, "stats") == 0 && argc == 1) {
		stats(m, out);
		return;
	}
	if (strcmp(cmd, "reset-stats") == 0 && argc == 1) {
		size_t i;

		for (i = 0; i < m->ndevs; i++)
			memset(&m->devs[i].st, 0, sizeof(m->devs[i].st));
		m->bad_frames = m->ignored = 0;
		dbuf_printf(out, "ok reset-stats\n");
		return;
	}
	if (strcmp(cmd, "reset") == 0 && argc == 1) {
		if (m->rtu) {
			dbuf_printf(out, "error reset: only TCP connections can be reset\n");
			return;
		}
		m->reset_pending = true;
		dbuf_printf(out, "ok reset\n");
		return;
	}
	if (strcmp(cmd, "help") == 0) {
		dbuf_printf(out, "%s\n", HELP);
		return;
	}
	if (strcmp(cmd, "clear") == 0 && argc == 2 && strcmp(argv[1], "all") == 0) {
		size_t i;

		for (i = 0; i < m->ndevs; i++)
			clear_faults(&m->devs[i]);
		dbuf_printf(out, "ok clear all\n");
		return;
	}

	{
		static const char *const known[] = { "set", "get", "clear", "silence", "exception",
			"badcrc", "garbage", "wrongunit", "truncate", "delay" };
		size_t i;

		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(cmd, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0]) || argc < 2) {
			dbuf_printf(out, "error unknown command or wrong arguments: %s (try help)\n", cmd);
			return;
		}
	}
	{
		d = model_find_dev(m, argv[1]);
		if (d == NULL) {
			dbuf_printf(out, "error no simulated unit or device %s\n", argv[1]);
			return;
		}
	}

	if (strcmp(cmd, "set") == 0 && argc == 4) {
		char err[200];
		const struct sim_point *sp;

		if (model_set(m, d, argv[2], argv[3], err, sizeof(err)) < 0) {
			dbuf_printf(out, "error %s\n", err);
			return;
		}
		model_write_values(m);
		sp = model_find_point(d, argv[2]);
		dbuf_printf(out, "ok set %s %s %.17g\n", d->dc->name, argv[2], sp->expected);
		return;
	}
	if (strcmp(cmd, "get") == 0 && argc == 3) {
		const struct sim_point *sp = model_find_point(d, argv[2]);

		if (sp == NULL)
			dbuf_printf(out, "error no point %s on %s\n", argv[2], d->dc->name);
		else
			dbuf_printf(out, "ok %.17g\n", sp->expected);
		return;
	}
	if (strcmp(cmd, "clear") == 0 && argc == 2) {
		clear_faults(d);
		dbuf_printf(out, "ok clear %d\n", d->dc->unit);
		return;
	}
	if (strcmp(cmd, "silence") == 0 && argc == 3) {
		if (strcmp(argv[2], "on") == 0 || strcmp(argv[2], "1") == 0) {
			d->f.silent = true;
		} else if (strcmp(argv[2], "off") == 0 || strcmp(argv[2], "0") == 0) {
			d->f.silent = false;
		} else {
			dbuf_printf(out, "error silence UNIT on|off\n");
			return;
		}
		dbuf_printf(out, "ok silence %d %s\n", d->dc->unit, d->f.silent ? "on" : "off");
		return;
	}
	if (strcmp(cmd, "exception") == 0 && argc == 4) {
		int i;

		if (parse_uint(argv[2], 65535, &n) < 0 || parse_uint(argv[3], 255, &n2) < 0 || n2 == 0) {
			dbuf_printf(out, "error exception UNIT ADDR(0..65535) CODE(1..255)\n");
			return;
		}
		for (i = 0; i < d->f.nexc; i++)
			if (d->f.exc[i].addr == n)
				break;
		if (i == SIM_MAX_EXC) {
			dbuf_printf(out, "error at most %d exception rules per unit\n", SIM_MAX_EXC);
			return;
		}
		d->f.exc[i].addr = (uint16_t) n;
		d->f.exc[i].code = (uint8_t) n2;
		if (i == d->f.nexc)
			d->f.nexc++;
		dbuf_printf(out, "ok exception %d %lu %lu\n", d->dc->unit, n, n2);
		return;
	}
	if (argc == 3 && (strcmp(cmd, "badcrc") == 0 || strcmp(cmd, "garbage") == 0 ||
			  strcmp(cmd, "wrongunit") == 0 || strcmp(cmd, "truncate") == 0 ||
			  strcmp(cmd, "delay") == 0)) {
		unsigned *slot = strcmp(cmd, "badcrc") == 0 ? &d->f.badcrc :
				 strcmp(cmd, "garbage") == 0 ? &d->f.garbage :
				 strcmp(cmd, "wrongunit") == 0 ? &d->f.wrongunit :
				 strcmp(cmd, "truncate") == 0 ? &d->f.truncate : &d->f.delay_ms;
		unsigned long max = slot == &d->f.delay_ms ? 600000 : 1000000;

		if (parse_uint(argv[2], max, &n) < 0) {
			dbuf_printf(out, "error %s UNIT %s (0..%lu)\n", cmd,
				    slot == &d->f.delay_ms ? "MS" : "N", max);
			return;
		}
		*slot = (unsigned) n;
		dbuf_printf(out, "ok %s %d %lu\n", cmd, d->dc->unit, n);
		return;
	}
	dbuf_printf(out, "error unknown command or wrong arguments: %s (try help)\n", cmd);
}
