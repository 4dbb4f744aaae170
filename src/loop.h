/*
 * loop.h: the core thread.  Owns the configuration, the buses, the queue
 * and the broker connection; runs one poll() loop until SIGTERM or SIGINT.
 */
#ifndef AGRIGW_LOOP_H
#define AGRIGW_LOOP_H

#include "conf.h"

/* Block the signals the loop handles (SIGTERM, SIGINT, SIGHUP) and ignore
 * SIGPIPE.  Called first thing in main(), before any thread and before the
 * configuration is read.  0 or negative errno. */
int loop_block_signals(void);

/*
 * Run the gateway with 'c' (ownership passes to the loop; a reload may
 * replace it) loaded from 'path'.  Returns the process exit status.
 */
int loop_run(struct conf *c, const char *path);

#endif
