/*
 * main.c: command line, start-up and exit.
 *
 * `agrigw [-f FILE]` runs the gateway; `agrigw -n [-v] -f FILE` only checks
 * the configuration (OpenBSD daemons' -n): every problem as file:line, exit
 * status 1, or "configuration OK" and 0.  Nothing is started before the
 * whole configuration has been checked.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "loop.h"

#define DEFAULT_CONF "/etc/agrigw/agrigw.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: agrigw [-dnvV] [-f FILE]\n"
		"  -f FILE  configuration file (default " DEFAULT_CONF ")\n"
		"  -n       check the configuration and exit: 'configuration OK' or file:line errors\n"
		"  -v       with -n: also print the effective configuration; else log debug messages\n"
		"  -d       log in plain words with times, even when stderr is not a terminal\n"
		"  -V       print the version and exit\n");
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONF;
	bool check = false, verbose = false, words = false;
	struct conf *c = NULL;
	int opt, r;

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
