/*
 * util.c: clocks, a cheap random generator and secret files.
 *
 * The random numbers only spread reconnects and first polls; they need no
 * cryptographic quality, so a per-thread xorshift seeded once from
 * getrandom() keeps the hot path free of system calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static _Atomic int64_t test_offset_ms;

int64_t wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME) + test_offset_ms;
}

void wall_set_test_offset(int64_t offset_ms)
{
	test_offset_ms = offset_ms;
}

uint32_t rand32(void)
{
	static _Thread_local uint64_t s;

	if (!s) {
		if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s))
			s = (uint64_t) mono_ms() * 6364136223846793005ULL;
		s |= 1;
	}
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (uint32_t) (s >> 16);
}

int read_secret_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	size_t len = 0;

	if (fd < 0)
		return -errno;
	while (len < size && (n = read(fd, buf + len, size - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int) n;
		}
		len += (size_t) n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len >= size) {
		memset(buf, 0, size);
		return -EFBIG;
	}
	buf[len] = '\0';
	return (int) len;
}

/*
 * A credential is only looked for by name, never by a path the
 * configuration could steer, and a name with '/' is refused.
 */
int read_secret(const char *credential_name, const char *fallback_path, char *buf, size_t size)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");

	if (credential_name && dir && dir[0]) {
		char path[PATH_MAX];
		int r;

		if (!credential_name[0] || strchr(credential_name, '/'))
			return -EINVAL;
		if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, credential_name) >= sizeof(path))
			return -ENAMETOOLONG;
		r = read_secret_file(path, buf, size);
		if (r != -ENOENT)
			return r;
	}
	if (fallback_path && fallback_path[0])
		return read_secret_file(fallback_path, buf, size);
	return -ENOENT;
}

size_t strlcpy_(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size) {
		size_t m = n < size - 1 ? n : size - 1;
		memcpy(dst, src, m);
		dst[m] = '\0';
	}
	return n;
}
