#!/bin/sh
# `make check-service`: the unit (check-unit.sh) and install/uninstall with the
# man pages (check-install.sh); ends with one line "N passed, N failed".
# usage: tests/service/run.sh BUILD_DIR            (from the top of the tree)
B=${1:-build}
dir=$(dirname "$0")
sh "$dir/deps.sh" || exit 1
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in check-unit check-install; do
	echo "== service: $t"
	sh "$dir/$t.sh" "$B" >"$log" 2>&1
	grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "  $t: no result line"
		failed=$((failed + 1))
		continue
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
