#!/bin/sh
# Run libFuzzer targets for a while each, on scratch copies of their corpora.
#
#   sh tests/fuzz/run.sh FUZZ_DIR SECONDS NAME...
#
# FUZZ_DIR holds the built targets (make fuzz-build).  For each NAME the
# seeds in tests/fuzz/NAME/ are copied to FUZZ_DIR/corpus-NAME/ (inputs
# found earlier stay there), the target runs for SECONDS with that
# directory as its corpus, and its output goes to FUZZ_DIR/NAME.log.  One
# line per target gives runs and exec/s; a crash prints the sanitizer's or
# the invariant's message and the input's path (FUZZ_DIR/NAME-crash-*), to
# be replayed with FUZZ_DIR/NAME FILE or build/test_fuzz_SHORT FILE.  Exits
# 1 when any target failed.
set -u
if [ $# -lt 3 ]; then
	echo "usage: sh tests/fuzz/run.sh FUZZ_DIR SECONDS NAME..." >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd) || exit 2
dir=$1
secs=$2
shift 2
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
# the targets' scratch files (on tmpfs when there is one), gone afterwards
# even when a target crashed before cleaning up
scratch=$(mktemp -d /dev/shm/agrigw-fuzz-run.XXXXXX 2>/dev/null || mktemp -d) || exit 2
trap 'rm -rf "$scratch"' EXIT INT TERM
failed=0
for name in "$@"; do
	bin=$dir/$name
	corpus=$dir/corpus-$name
	log=$dir/$name.log
	if [ ! -x "$bin" ]; then
		echo "$name: $bin not built" >&2
		failed=$((failed + 1))
		continue
	fi
	mkdir -p "$corpus"
	[ -d "$here/$name" ] && cp "$here/$name"/* "$corpus"/ 2>/dev/null
	TMPDIR=$scratch "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$dir/$name-" "$corpus" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
	if [ $rc -eq 0 ]; then
		echo "ok $name: ${runs:-?} runs in $secs s, ${rate:-?} exec/s, ${cov:-no coverage line}, corpus $(ls "$corpus" | wc -l)"
	else
		echo "FAIL $name (exit $rc), log $log"
		grep -E 'ERROR: |runtime error|invariant failed|SUMMARY|Test unit written|^(    )?#[0-9]+ 0x' "$log" | head -n 30 | sed 's/^/  /'
		failed=$((failed + 1))
	fi
done
[ $failed -eq 0 ]
