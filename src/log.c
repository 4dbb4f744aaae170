/*
 * log.c: every diagnostic line goes through here.
 *
 * Under systemd stderr is connected to the journal (JOURNAL_STREAM names it),
 * so each line starts with "<N>" and journald takes the priority from it and
 * adds the time and program name itself (sd-daemon(3)).  On a terminal the
 * line gets a time and a level word instead.  One write(2) per line keeps
 * lines from different threads whole without a lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_max = LOG_INFO_;
static int log_prefix = -1;      /* -1: decide on first use */

static int journal_stream(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long dev, ino;

	if (!e || sscanf(e, "%lu:%lu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

void log_init(int max_level, int prefix)
{
	log_max = max_level;
	log_prefix = prefix;
	if (log_prefix < 0)
		log_prefix = journal_stream() || !isatty(STDERR_FILENO);
}

bool log_enabled(int level)
{
	return level <= log_max;
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	static const char *const words[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
	char buf[1024];
	int n = 0, m, saved = errno;

	if (level > log_max)
		return;
	if (log_prefix < 0)
		log_init(log_max, -1);
	if (log_prefix) {
		n = snprintf(buf, sizeof(buf), "<%d>", level);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = (int) strftime(buf, sizeof(buf), "%H:%M:%S ", &tm);
		n += snprintf(buf + n, sizeof(buf) - (size_t) n, "%s: ", words[level & 7]);
	}
	m = vsnprintf(buf + n, sizeof(buf) - (size_t) n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int) sizeof(buf) - 2)
		n = (int) sizeof(buf) - 2;
	/* a message never spans lines: one event, one journal entry */
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[n++] = '\n';
	(void) !write(STDERR_FILENO, buf, (size_t) n);
	errno = saved;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
