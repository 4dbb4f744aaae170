/*
 * tools.h: the field technician's subcommands, `agrigw scan`, `agrigw read`,
 * `agrigw poll --once` and `agrigw write`, in the same binary as the daemon.
 * Main thread only.
 */
#ifndef AGRIGW_TOOLS_H
#define AGRIGW_TOOLS_H

#include <stdbool.h>

/* True when 'name' (argv[1]) is one of the subcommands. */
bool tools_command(const char *name);

/*
 * Run the subcommand argv[0] (tools_command() said yes to it) with its
 * options argv[1..argc-1], getopt_long() style.  Returns the
 * exit status: 0 done, 1 failed (one line on stderr says why), 2 usage error,
 * 130 a scan stopped by Ctrl-C (what it found is printed).
 */
int tools_main(int argc, char **argv);

#endif
