/*
 * replay.c: main() for a fuzz target built without libFuzzer.  Runs the
 * target once over every file named on the command line (a directory
 * stands for the files in it, in name order), or over the target's own
 * seed corpus (FUZZ_CORPUS, set by the Makefile) when none is named, and
 * ends with the unit tests' "N passed, N failed" line.  A failed invariant
 * or a sanitizer report aborts, so the runner sees a crash.
 *
 * This is what `make check-fuzz-corpus` (and so `make check`) runs: every
 * seed and every input that once crashed a target is replayed with the
 * ordinary compiler and whatever SANITIZE= the build has, in well under a
 * second per target, without clang.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS
#error "FUZZ_CORPUS must name the seed corpus directory"
#endif

static int ran, failed;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long size;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
		failed++;
		goto out;
	}
	/* an exact-size copy, so reading past the input is an ASan report */
	buf = malloc(size ? (size_t) size : 1);
	if (!buf || (size && fread(buf, 1, (size_t) size, f) != (size_t) size)) {
		fprintf(stderr, "%s: cannot read\n", path);
		failed++;
		goto out;
	}
	LLVMFuzzerTestOneInput(buf, (size_t) size);
	ran++;
out:
	free(buf);
	if (f)
		fclose(f);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	char sub[4096];
	int n;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		failed++;
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	n = scandir(path, &names, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		failed++;
		return;
	}
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
			if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
				run_file(sub);
		}
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2)
		run_path(FUZZ_CORPUS);
	for (int i = 1; i < argc; i++)
		run_path(argv[i]);
	if (ran == 0 && failed == 0) {
		fprintf(stderr, "no inputs\n");
		failed++;
	}
	printf("%d passed, %d failed\n", ran, failed);
	return failed ? 1 : 0;
}
