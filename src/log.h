/*
 * log.h: the only writer of diagnostics.  Under systemd (stderr is the
 * journal, JOURNAL_STREAM set) or when asked, each line starts with a
 * "<N>" priority prefix as sd-daemon(3) describes; on a terminal, plain
 * words with a level name.  Thread-safe: one write(2) per line.
 */
#ifndef AGRIGW_LOG_H
#define AGRIGW_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_ERR_ = 3, LOG_WARNING_ = 4, LOG_NOTICE_ = 5, LOG_INFO_ = 6, LOG_DEBUG_ = 7 };

/* 'prefix' true forces "<N>" prefixes, false forces words, auto when not called. */
void log_init(int max_level, int prefix);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Would a message of this level be written?  (To skip building costly ones.) */
bool log_enabled(int level);
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_err(...) log_msg(LOG_ERR_, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING_, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE_, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO_, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG_, __VA_ARGS__)

#endif
