#!/bin/sh
# Run the arm64 unit test programs (BUILD_DIR/test_*) under qemu-aarch64 and
# end with one line "N passed, N failed" (their lines summed).
# usage: tests/service/run-qemu.sh BUILD_DIR
# The arm64 C library and the libraries come from Debian's multiarch :arm64
# packages (tests/service/deps-arm64.sh), so the host's /lib/ld-linux-aarch64.so.1
# loads them; without it, the cross toolchain's copy (-L) is used.
B=${1:-build-arm64}
QEMU=${QEMU:-qemu-aarch64}
set -- "$QEMU"
[ -e /lib/ld-linux-aarch64.so.1 ] || set -- "$QEMU" -L /usr/aarch64-linux-gnu
passed=0
failed=0
ran=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$B"/test_*; do
	case $t in *.o|*.d) continue ;; esac
	[ -x "$t" ] || continue
	# ELF e_machine (offset 18, little-endian) is 183 for aarch64
	[ "$(od -An -tu2 -j18 -N2 "$t" | tr -d ' ')" = 183 ] ||
		{ echo "  $t: not an aarch64 program"; failed=$((failed + 1)); continue; }
	echo "== unit (aarch64, qemu): $(basename "$t")"
	ran=$((ran + 1))
	"$@" "$t" >"$log" 2>&1
	rc=$?
	grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$log" | head -n 40
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "  $(basename "$t"): no result line (exit $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { echo "  $(basename "$t"): exit $rc"; failed=$((failed + 1)); }
done
[ "$ran" -eq 0 ] && { echo "  no test programs in $B"; failed=$((failed + 1)); }

# the daemon itself: an aarch64 program that runs and checks the shipped example
echo "== agrigw (aarch64, qemu)"
if [ "$(od -An -tu2 -j18 -N2 "$B/agrigw" 2>/dev/null | tr -d ' ')" = 183 ] &&
	"$@" "$B/agrigw" -V | grep -q '^agrigw '; then
	echo "ok $B/agrigw is aarch64 and runs: $("$@" "$B/agrigw" -V)"
	passed=$((passed + 1))
else
	echo "FAIL $B/agrigw: not an aarch64 program that runs"
	failed=$((failed + 1))
fi
if "$@" "$B/agrigw" -n -f config/agrigw.conf >"$log" 2>&1; then
	echo "ok agrigw -n -f config/agrigw.conf: $(tail -n 1 "$log")"
	passed=$((passed + 1))
else
	echo "FAIL agrigw -n -f config/agrigw.conf:"
	cat "$log"
	failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
