/*
 * loop.h: the core thread.  Owns the configuration, the buses, the queue
 * and the broker connection; runs one poll() loop until SIGTERM or SIGINT.
 */
#ifndef AGRIGW_LOOP_H
#define AGRIGW_LOOP_H

#include "conf.h"

/*
 * Run the gateway with 'c' (ownership passes to the loop; a reload may
 * replace it) loaded from 'path'.  Returns the process exit status.
 */
int loop_run(struct conf *c, const char *path);

#endif
