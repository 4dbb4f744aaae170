#!/bin/sh
# Golden tests of the configuration checks.
#
#   sh tests/config/run.sh BUILD_DIR
#
# BUILD_DIR holds agrigw; relative to the repository root, or absolute.
# For every NAME.conf here, run "agrigw -n -v -f NAME.conf" (NAME.ok: exit 0
# and stdout equal to NAME.ok) or "agrigw -n -f NAME.conf" (NAME.err: exit 1
# and stderr equal to NAME.err, apart from a final "N errors" summary line
# whose count must match), from this directory so messages name
# "NAME.conf".  Prints "ok NAME" or "FAIL NAME" with a diff, then one line
# "N passed, N failed"; exits 1 when a case failed.

if [ $# -ne 1 ]; then
	echo "usage: sh tests/config/run.sh BUILD_DIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd) || exit 2
root=$(cd "$here/../.." && pwd) || exit 2
case $1 in
/*) build=$1 ;;
*) build=$root/$1 ;;
esac
bin=$build/agrigw
if [ ! -x "$bin" ]; then
	echo "run.sh: $bin: no such executable" >&2
	exit 2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/agrigw-config.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

passed=0
failed=0
for conf in "$here"/*.conf; do
	name=$(basename "$conf" .conf)
	why=
	if [ -f "$here/$name.ok" ]; then
		(cd "$here" && exec "$bin" -n -v -f "$name.conf") >"$tmp/out" 2>"$tmp/err"
		rc=$?
		expect=$here/$name.ok
		got=$tmp/out
		want_rc=0
	elif [ -f "$here/$name.err" ]; then
		(cd "$here" && exec "$bin" -n -f "$name.conf") >"$tmp/out" 2>"$tmp/err"
		rc=$?
		expect=$here/$name.err
		got=$tmp/err
		want_rc=1
	else
		echo "FAIL $name"
		echo "  neither $name.ok nor $name.err exists"
		failed=$((failed + 1))
		continue
	fi
	[ "$rc" -eq "$want_rc" ] || why="exit status $rc, expected $want_rc"
	if [ "$want_rc" -eq 1 ]; then
		# agrigw may end with "NAME.conf: N errors, not started": N must
		# count the lines expected; the line itself is not compared.
		summary=$(sed -n "s/^$name\.conf: \([0-9]*\) errors\{0,1\}, not started\$/\1/p" "$tmp/err")
		if [ -n "$summary" ]; then
			sed "/^$name\.conf: [0-9]* errors\{0,1\}, not started\$/d" "$tmp/err" >"$tmp/err2"
			mv "$tmp/err2" "$tmp/err"
			lines=$(wc -l <"$expect" | tr -d ' ')
			[ "$summary" = "$lines" ] || why="agrigw counted $summary errors, expected $lines"
		fi
	fi
	if [ -z "$why" ] && cmp -s "$expect" "$got"; then
		echo "ok $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name${why:+ ($why)}"
		diff -u "$expect" "$got" | sed 's/^/  /'
		if [ "$got" = "$tmp/out" ] && [ -s "$tmp/err" ]; then
			echo "  stderr:"
			sed 's/^/  /' "$tmp/err"
		fi
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
