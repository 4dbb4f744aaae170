#!/bin/sh
# Run the test groups and end with one line "N passed, N failed".
# usage: tests/run-all.sh BUILD_DIR [unit|config|integration ...]
# SANITIZE and VALGRIND in the environment are passed on to the groups.
B=${1:-build}
shift
groups=${*:-unit config integration}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# add the last "N passed, N failed" line of a group's output to the totals
tally() {
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "  $1: no result line (crashed?)"
		failed=$((failed + 1))
		return
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
}

for g in $groups; do
	case $g in
	unit)
		for t in "$B"/test_*; do
			case $t in *.o|*.d) continue ;; esac
			[ -x "$t" ] || continue
			echo "== unit: $(basename "$t")"
			"$t" >"$log" 2>&1
			rc=$?
			grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$log" | head -n 40
			tally "$(basename "$t")"
			[ $rc -ne 0 ] && [ "$(tail -n 1 "$log" | grep -c ' 0 failed')" = 1 ] && { echo "  exit $rc"; failed=$((failed + 1)); }
		done
		;;
	config)
		echo "== config golden tests"
		sh tests/config/run.sh "$B" >"$log" 2>&1
		grep -v '^ok ' "$log" | grep -v -E '^[0-9]+ passed, [0-9]+ failed' | head -n 60
		tally config
		;;
	integration)
		echo "== integration (mosquitto, simulator, agrigw)"
		AGRIGW_BUILD="$B" /usr/bin/python3 -m pytest -q -p no:cacheprovider -n "${TEST_JOBS:-4}" tests/integration >"$log" 2>&1
		cat "$log" | tail -n 60
		# pytest: "5 passed, 1 failed in 3.2s" or "6 passed in 3.2s"
		res=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error).* in [0-9.]+s' "$log" | tail -n 1)
		p=$(echo "$res" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
		f=$(echo "$res" | grep -oE '[0-9]+ (failed|error)' | awk '{s += $1} END {print s + 0}')
		[ -z "$res" ] && { echo "  integration: no pytest summary"; f=1; }
		passed=$((passed + ${p:-0}))
		failed=$((failed + ${f:-0}))
		;;
	esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
