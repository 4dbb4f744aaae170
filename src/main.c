/*
 * main.c: command line, start-up and exit.
 *
 * `agrigw [-f FILE]` runs the gateway; `agrigw -n [-v] -f FILE` only checks
 * the configuration (OpenBSD daemons' -n): every problem as file:line, exit
 * status 1, or "configuration OK" and 0.  Nothing is started before the
 * whole configuration has been checked.  `agrigw scan|read|poll|write ...`
 * are the field technician's tools (tools.c), dispatched before any option
 * of the daemon is looked at.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "loop.h"
#include "tools.h"

#define DEFAULT_CONF "/etc/agrigw/agrigw.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: agrigw [-dnvV] [-f FILE]\n"
		"       agrigw scan|read|poll|write ...   field tools; agrigw COMMAND -h for theirs\n"
		"  -f FILE  configuration file (default " DEFAULT_CONF ")\n"
		"  -n       check the configuration and exit: 'configuration OK' or file:line errors\n"
		"  -v       with -n: also print the effective configuration; else log debug messages\n"
		"  -d       log in plain words with times, even when stderr is not a terminal\n"
		"  -V       print the version and exit\n"
		"  scan     find which unit ids answer at which baud and parity\n"
		"  read     read registers and show them decoded as every type and word order\n"
		"  poll     poll --once -f FILE: every configured device once, as the daemon would\n"
		"  write    write one holding register or coil (with --yes), then read it back\n");
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONF;
	bool check = false, verbose = false, words = false;
	struct conf *c = NULL;
	int opt, r;

	if (argc > 1 && tools_command(argv[1]))
		return tools_main(argc - 1, argv + 1);
	while ((opt = getopt(argc, argv, "df:hnvV")) != -1) {
		switch (opt) {
		case 'd':
			words = true;
			break;
		case 'f':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'n':
			check = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'V':
			printf("agrigw %s\n", AGRIGW_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agrigw: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	log_init(verbose && !check ? LOG_DEBUG_ : LOG_INFO_, words ? 0 : -1);
	if (!check && loop_block_signals() < 0) {
		fprintf(stderr, "agrigw: cannot block signals\n");
		return 1;
	}

	r = conf_load(path, &c, stderr);
	if (r != 0) {
		if (r > 0)
			fprintf(stderr, "%s: %d error%s, not started\n", path, r, r == 1 ? "" : "s");
		return 1;
	}
	if (check) {
		if (verbose)
			conf_print(c, stdout);
		printf("configuration OK\n");
		conf_free(c);
		return 0;
	}
	return loop_run(c, path);
}
