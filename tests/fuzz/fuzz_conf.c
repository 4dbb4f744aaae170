/*
 * fuzz_conf.c: conf_load() on arbitrary bytes, and conf_print() of what loads.
 *
 * The input is written to fuzz.conf in a scratch directory that has a
 * 'profiles' link to the repository's config/profiles, so the @include
 * lines of real configurations resolve (the repository is found through
 * $AGRIGW_SRCDIR, else the path the Makefile compiled in; the current
 * directory does not matter).  Errors go to /dev/null.  A configuration
 * that loads is printed, and the printed text must load again and print
 * the same: `agrigw -nv` output is meant to be a valid configuration with
 * every default filled in.
 *
 * libconfig 1.5 leaks a string token after some syntax errors (see conf.c);
 * the LeakSanitizer suppression below names libconfig only, so a leak of
 * ours is still reported.
 */
#include <sys/stat.h>

#include "fuzz.h"

#ifndef AGRIGW_SRCDIR
#define AGRIGW_SRCDIR "."
#endif

static char dir[4096], path[4200], printed[4200];
static FILE *devnull;

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

static void cleanup(void)
{
	char p[4200];

	(void) unlink(path);
	(void) unlink(printed);
	snprintf(p, sizeof(p), "%s/profiles", dir);
	(void) unlink(p);
	(void) rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *src = getenv("AGRIGW_SRCDIR");
	char target[4200], link[4200];
	struct stat st;

	(void) argc;
	(void) argv;
	if (!src || !src[0])
		src = AGRIGW_SRCDIR;
	snprintf(target, sizeof(target), "%s/config/profiles", src);
	if (stat(target, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "fuzz_conf: %s: not a directory (set AGRIGW_SRCDIR to the repository)\n", target);
		exit(2);
	}
	fuzz_scratch_dir(dir, sizeof(dir), "fuzz-conf");
	snprintf(link, sizeof(link), "%s/profiles", dir);
	if (target[0] != '/') {
		char cwd[2048];

		if (!getcwd(cwd, sizeof(cwd)))
			exit(2);
		snprintf(target, sizeof(target), "%s/%s/config/profiles", cwd, src);
	}
	if (symlink(target, link) < 0) {
		fprintf(stderr, "fuzz_conf: symlink %s: %s\n", link, strerror(errno));
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/fuzz.conf", dir);
	snprintf(printed, sizeof(printed), "%s/printed.conf", dir);
	devnull = fopen("/dev/null", "w");
	if (!devnull)
		exit(2);
	atexit(cleanup);
	return 0;
}

/* conf_print() into a malloc'ed string. */
static char *print(const struct conf *c, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	FUZZ_ASSERT(f != NULL);
	conf_print(c, f);
	FUZZ_ASSERT(fclose(f) == 0);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL, *c2 = NULL;
	char *text, *text2;
	size_t len, len2;
	int r;

	fuzz_write_file(path, data, size);
	r = conf_load(path, &c, devnull);
	FUZZ_ASSERT((r == 0) == (c != NULL));
	if (r != 0)
		return 0;
	FUZZ_ASSERT(c->nbuses >= 1 && c->nbuses <= CONF_MAX_BUSES);
	FUZZ_ASSERT(c->ndevices >= 1 && c->ndevices <= CONF_MAX_DEVICES);
	FUZZ_ASSERT(c->nprofiles >= 1 && c->nprofiles <= CONF_MAX_PROFILES);
	for (size_t i = 0; i < c->ndevices; i++) {
		FUZZ_ASSERT(c->devices[i].bus >= 0 && (size_t) c->devices[i].bus < c->nbuses);
		FUZZ_ASSERT(c->devices[i].profile >= 0 && (size_t) c->devices[i].profile < c->nprofiles);
	}
	for (size_t i = 0; i < c->nprofiles; i++)
		FUZZ_ASSERT(c->profiles[i].npoints >= 1 && c->profiles[i].npoints <= CONF_MAX_POINTS);

	/* what -nv prints is a configuration that means the same */
	text = print(c, &len);
	fuzz_write_file(printed, text, len);
	r = conf_load(printed, &c2, devnull);
	if (r != 0) {
		fprintf(stderr, "the printed configuration does not load (%d):\n", r);
		conf_load(printed, &c2, stderr);
		fprintf(stderr, "%s", text);
	}
	/* gone before the next input, which might @include it */
	(void) unlink(printed);
	FUZZ_ASSERT(r == 0);
	text2 = print(c2, &len2);
	if (len != len2 || memcmp(text, text2, len) != 0)
		fprintf(stderr, "printed twice, differently:\n%s\n----\n%s", text, text2);
	FUZZ_ASSERT(len == len2 && memcmp(text, text2, len) == 0);
	free(text);
	free(text2);
	conf_free(c);
	conf_free(c2);
	return 0;
}
