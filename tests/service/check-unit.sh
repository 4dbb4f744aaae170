#!/bin/sh
# The systemd unit as `make install` writes it: ExecStart names the installed
# binary, `systemd-analyze verify` prints nothing, and
# `systemd-analyze security --offline=yes` rates it at most 2.0.
# usage: tests/service/check-unit.sh BUILD_DIR     (from the top of the tree)
# Ends with "N passed, N failed".
#
# verify checks that ExecStart's binary and the man pages named by
# Documentation= exist.  The unit is installed into a temporary DESTDIR, so
# verify runs in a private mount namespace (unshare -m as root, else a user
# namespace) where the installed sbin directory is bind-mounted over
# $(SBINDIR) and MANPATH points at the installed man pages: the unit is checked
# exactly as installed, and nothing outside the temporary root is touched.
# (--root=DIR would look for everything else the unit uses, /bin/kill and
# sysinit.target, inside DIR too; the system test runs verify inside a
# complete Debian root as well.)
B=${1:-build}
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

if ! command -v systemd-analyze >/dev/null; then
	fail "systemd-analyze not found (Debian package systemd)"
	echo "$passed passed, $failed failed"
	exit 1
fi

root=$tmp/root
sbindir=/usr/local/sbin
if make -s --no-print-directory B="$B" install DESTDIR="$root" >"$tmp/install.log" 2>&1; then
	ok "make install DESTDIR=... (defaults)"
else
	fail "make install DESTDIR=... (defaults)"
	cat "$tmp/install.log"
	echo "$passed passed, $failed failed"
	exit 1
fi
unit=$root/lib/systemd/system/agrigw.service

if grep -qx "ExecStart=$sbindir/agrigw -f /etc/agrigw/agrigw.conf" "$unit"; then
	ok "ExecStart names $sbindir/agrigw and /etc/agrigw/agrigw.conf"
else
	fail "ExecStart: $(grep '^ExecStart=' "$unit")"
fi
if grep -q '@[A-Z]*@' "$unit"; then
	fail "placeholders left in the unit: $(grep '@[A-Z]*@' "$unit")"
else
	ok "no @PLACEHOLDER@ left"
fi

# PREFIX and SYSCONFDIR reach the unit
if make -s --no-print-directory B="$B" install DESTDIR="$tmp/root2" PREFIX=/usr SYSCONFDIR=/usr/local/etc \
	>"$tmp/install2.log" 2>&1 &&
	grep -qx 'ExecStart=/usr/sbin/agrigw -f /usr/local/etc/agrigw/agrigw.conf' \
		"$tmp/root2/lib/systemd/system/agrigw.service" &&
	[ -x "$tmp/root2/usr/sbin/agrigw" ]; then
	ok "PREFIX=/usr SYSCONFDIR=/usr/local/etc: ExecStart=/usr/sbin/agrigw -f /usr/local/etc/agrigw/agrigw.conf"
else
	fail "PREFIX=/usr SYSCONFDIR=/usr/local/etc"
	cat "$tmp/install2.log"
fi

# systemd-analyze verify, on the installed unit with the installed binary in place
cat >"$tmp/verify.sh" <<EOF
set -e
mount --make-rprivate / 2>/dev/null || true
mount --bind "$root$sbindir" "$sbindir"
export MANPATH="$root/usr/local/share/man"
systemd-analyze verify "$unit"
EOF
if [ "$(id -u)" = 0 ]; then
	unshare -m sh "$tmp/verify.sh" >"$tmp/verify.out" 2>&1
else
	unshare -rm sh "$tmp/verify.sh" >"$tmp/verify.out" 2>&1
fi
rc=$?
if [ $rc -eq 0 ] && [ ! -s "$tmp/verify.out" ]; then
	ok "systemd-analyze verify prints nothing"
else
	fail "systemd-analyze verify (exit $rc):"
	sed 's/^/    /' "$tmp/verify.out"
fi

# systemd-analyze security: the overall exposure, 0.0 (best) .. 10.0
systemd-analyze security --offline=yes "$unit" >"$tmp/security.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for agrigw.service: \([0-9.]*\).*/\1/p' "$tmp/security.out")
if [ -z "$score" ]; then
	fail "systemd-analyze security printed no score:"
	sed 's/^/    /' "$tmp/security.out"
elif awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
	ok "systemd-analyze security --offline=yes: exposure $score (at most $MAX_EXPOSURE)"
else
	fail "systemd-analyze security --offline=yes: exposure $score, more than $MAX_EXPOSURE; what counts:"
	grep '✗' "$tmp/security.out" | sed 's/  */ /g; s/^/    /'
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
