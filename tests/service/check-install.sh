#!/bin/sh
# `make install` and `make uninstall` into a temporary DESTDIR: the tree,
# the modes, a second install keeping an edited agrigw.conf, the sysusers
# file creating the user, the man pages rendering without warnings, and
# uninstall leaving only the configuration.
# usage: tests/service/check-install.sh BUILD_DIR     (from the top of the tree)
# Ends with "N passed, N failed".
B=${1:-build}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
d=$tmp/root

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
check() {        # check "what" command...
	what=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/    /' "$tmp/out" | head -n 20; fi
}
mode() { [ "$(stat -c %a "$1")" = "$2" ]; }
inst() { make -s --no-print-directory B="$B" DESTDIR="$d" "$@"; }

check "make install DESTDIR=..." inst install

check "binary: /usr/local/sbin/agrigw, mode 755" mode "$d/usr/local/sbin/agrigw" 755
check "binary runs: agrigw -V" sh -c "'$d/usr/local/sbin/agrigw' -V | grep -q '^agrigw '"
check "unit: /lib/systemd/system/agrigw.service, mode 644" mode "$d/lib/systemd/system/agrigw.service" 644
check "sysusers: /usr/lib/sysusers.d/agrigw.conf" mode "$d/usr/lib/sysusers.d/agrigw.conf" 644
check "man page: /usr/local/share/man/man8/agrigw.8" mode "$d/usr/local/share/man/man8/agrigw.8" 644
check "man page: /usr/local/share/man/man5/agrigw.conf.5" mode "$d/usr/local/share/man/man5/agrigw.conf.5" 644
check "config: /etc/agrigw/agrigw.conf, mode 644" mode "$d/etc/agrigw/agrigw.conf" 644
nshipped=$(ls config/profiles/*.conf | wc -l)
ninst=$(ls "$d"/etc/agrigw/profiles/*.conf 2>/dev/null | wc -l)
check "profiles: all $nshipped in /etc/agrigw/profiles/" [ "$nshipped" -gt 0 -a "$ninst" = "$nshipped" ]
check "installed config is valid: agrigw -n" "$B/agrigw" -n -f "$d/etc/agrigw/agrigw.conf"

# a second install keeps an edited configuration (and says so)
echo "# edited by the operator" >>"$d/etc/agrigw/agrigw.conf"
echo "# edited profile" >>"$d/etc/agrigw/profiles/s-rjy-01.conf"
inst install >"$tmp/second" 2>&1
check "second install keeps the edited agrigw.conf" grep -q '^# edited by the operator$' "$d/etc/agrigw/agrigw.conf"
check "second install says it kept agrigw.conf" grep -q 'keeping the existing' "$tmp/second"
check "second install refreshes the shipped profiles" cmp config/profiles/s-rjy-01.conf "$d/etc/agrigw/profiles/s-rjy-01.conf"

# the sysusers file: user agrigw, member of dialout (in a root of its own)
mkdir -p "$tmp/sys/usr/lib/sysusers.d" "$tmp/sys/etc"
cp "$d/usr/lib/sysusers.d/agrigw.conf" "$tmp/sys/usr/lib/sysusers.d/"
check "systemd-sysusers creates user agrigw" sh -c "systemd-sysusers --root='$tmp/sys' &&
	grep -q '^agrigw:x:[0-9]*:[0-9]*:agrigw telemetry gateway:/var/lib/agrigw:/usr/sbin/nologin\$' '$tmp/sys/etc/passwd'"
check "user agrigw is in group dialout" grep -q '^dialout:x:[0-9]*:agrigw$' "$tmp/sys/etc/group"

# the man pages render without warnings (man-db, and groff's own checks)
for page in docs/man/agrigw.8 docs/man/agrigw.conf.5; do
	check "man --warnings -l $page: no warnings" sh -c "MANWIDTH=80 man --warnings -l '$page' 2>&1 >/dev/null |
		{ ! grep .; }"
	check "groff -ww -z -man $page: no warnings" sh -c "groff -ww -z -man '$page' 2>&1 | { ! grep .; }"
done
check "agrigw.8 lists the subcommands" sh -c "MANWIDTH=200 man -l docs/man/agrigw.8 2>/dev/null |
	grep -q 'agrigw scan' && MANWIDTH=200 man -l docs/man/agrigw.8 2>/dev/null | grep -q 'agrigw write'"

# uninstall: everything but the configuration goes
check "make uninstall DESTDIR=..." inst uninstall
left=$(cd "$d" && find . -type f | sort | tr '\n' ' ')
check "uninstall leaves only agrigw.conf (left: $left)" [ "$left" = "./etc/agrigw/agrigw.conf " ]
check "uninstall kept the edited configuration" grep -q '^# edited by the operator$' "$d/etc/agrigw/agrigw.conf"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
