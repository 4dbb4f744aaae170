/* util.h: clocks, randomness and small file helpers.  Any thread. */
#ifndef AGRIGW_UTIL_H
#define AGRIGW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC (schedules) and CLOCK_REALTIME (stamps). */
int64_t mono_ms(void);
int64_t wall_ms(void);

/* Tests only (wallclock.c, AGRIGW_TEST_CLOCK): shift what wall_ms() returns. */
void wall_set_test_offset(int64_t offset_ms);

/* A random 32-bit number from a per-thread generator seeded from getrandom(). */
uint32_t rand32(void);

/*
 * Read a small secret file (password, token) into buf, without the trailing
 * newline.  Returns the length, or negative errno (-EFBIG when it does not fit).
 */
int read_secret_file(const char *path, char *buf, size_t size);

/*
 * Read a secret the same way from the systemd credential credential_name
 * ($CREDENTIALS_DIRECTORY/credential_name, set by LoadCredential=) if there
 * is one, else from fallback_path (NULL or "" for none).  Returns the length,
 * or negative errno: -ENOENT when neither exists.
 */
int read_secret(const char *credential_name, const char *fallback_path, char *buf, size_t size);

/* Copy with truncation; always NUL-terminates; returns strlen(src). */
size_t strlcpy_(char *dst, const char *src, size_t size);

#endif
