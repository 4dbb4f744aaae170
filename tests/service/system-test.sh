#!/bin/sh
# `make check-system`: the installed agrigw.service under a real systemd and
# journald, in a Debian container booted with systemd-nspawn.
# usage: tests/service/system-test.sh BUILD_DIR      (from the top of the tree, as root)
#
# 1. A Debian root of the host's release (minbase + systemd, mosquitto and
#    the libraries the host-built binaries load) is made by debootstrap from
#    the mirror the host's apt uses, once, and cached under $AGRIGW_CACHE
#    (default /var/cache/agrigw-test), keyed by release, mirror and package
#    list.  Making it takes about 2 minutes; later runs copy it (1-2 s).
# 2. A copy gets `make install DESTDIR=...` (the real install: unit,
#    sysusers.d, man pages, profiles), agrigw-sim, a test configuration (a
#    simulated Modbus TCP bus, a broker that wants a password), the password
#    as a root-only file passed to agrigw as a systemd credential, a short
#    watchdog (a drop-in) and tests/service/system/in-container.sh as a unit.
# 3. systemd-nspawn --boot --private-network boots it: the container has
#    its own network namespace with loopback only, so nothing leaves it.  The
#    checks run inside and the container powers off; their log comes back
#    through a bind mount and ends with "N passed, N failed".
#
# Environment: AGRIGW_CACHE (cache directory), AGRIGW_MIRROR (a Debian
# mirror URL; default: the host's apt source for its release),
# AGRIGW_SYSTEST_TIMEOUT (seconds for the boot and the checks, default 600),
# AGRIGW_KEEP=1 (keep the work directory).
set -u
B=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.." || exit 1
t0=$(date +%s)
ROOTFS_VERSION=1          # bump when the root's preparation below changes

say() { echo "system-test: $*"; }
die() { echo "system-test: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, systemd-nspawn)"
sh "$here/deps.sh" system || die "cannot install systemd-container and debootstrap"
[ -x "$B/agrigw" ] && [ -x "$B/agrigw-sim" ] || die "no $B/agrigw or $B/agrigw-sim: make B=$B first"

. /etc/os-release
suite=${VERSION_CODENAME:?}

# The host's Debian mirror for its release: deb822 .sources first, then
# sources.list lines; the first http(s) URI whose suites include the release.
find_mirror() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '
			function flush() { if (!done && deb && hit && uri != "") { print uri; done = 1; exit } deb = hit = 0; uri = "" }
			/^[ \t]*$/ { flush(); next }
			/^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
			END { flush() }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '$1 == "deb" { sub(/\[[^]]*\] */, ""); if ($3 == s) { print $2; exit } }' "$f"
	done
}
mirror=${AGRIGW_MIRROR:-$(find_mirror | grep -E '^https?://' | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}

# The Debian packages of the libraries the two binaries load (ldd), so a
# sanitizer build or a new library needs no change here.
lib_packages() {
	for f in $(ldd "$B/agrigw" "$B/agrigw-sim" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u); do
		p=$(dpkg -S "$f" 2>/dev/null | head -n 1)
		if [ -z "$p" ]; then
			case $f in /usr/*) g=${f#/usr} ;; *) g=/usr$f ;; esac
			p=$(dpkg -S "$g" 2>/dev/null | head -n 1)
		fi
		[ -n "$p" ] && echo "${p%%:*}"
	done
}
base="systemd systemd-sysv dbus procps kmod mosquitto mosquitto-clients
libmodbus5 libmosquitto1 libcurl4 libconfig9 libjansson4 libsqlite3-0 zlib1g libsystemd0"
key=$(printf '%s\n' "$ROOTFS_VERSION" "$suite" "$mirror" $base | sha256sum | cut -c1-12)
cache=${AGRIGW_CACHE:-/var/cache/agrigw-test}
rootfs=$cache/rootfs-$suite-$key
mkdir -p "$cache" || die "cannot create $cache"

work=$(mktemp -d /var/tmp/agrigw-systest.XXXXXX) || die "mktemp"
cleanup() { [ "${AGRIGW_KEEP:-0}" = 1 ] && { say "kept $work"; return; }; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
root=$work/root

# --- the cached root, made once; copied under the lock --------------------------
exec 9>"$cache/lock"
flock 9
# packages the binaries need that the cached root lacks (a sanitizer build,
# a new library): the root is made again with them, and keeps them
missing=""
if [ -f "$rootfs/.agrigw-rootfs" ]; then
	for p in $(lib_packages | sort -u); do
		dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing="$missing $p"
	done
fi
if [ ! -f "$rootfs/.agrigw-rootfs" ] || [ -n "$missing" ]; then
	extra=$(cat "$rootfs/.agrigw-extra" 2>/dev/null)
	[ -f "$rootfs/.agrigw-rootfs" ] || extra="$extra $(lib_packages)"
	extra=$(printf '%s\n' $extra $missing | sort -u | tr '\n' ' ')
	pkgs=$(printf '%s\n' $base $extra | sort -u | tr '\n' ' ')
	say "debootstrap $suite from $mirror into $rootfs (once; later runs reuse it)${missing:+; adding$missing}"
	rm -rf "$rootfs.tmp"
	s=$(date +%s)
	if ! debootstrap --variant=minbase --include="$(echo $pkgs | tr ' ' ,)" "$suite" "$rootfs.tmp" "$mirror" \
		>"$cache/debootstrap.log" 2>&1; then
		tail -n 30 "$cache/debootstrap.log"
		rm -rf "$rootfs.tmp"
		die "debootstrap failed (log: $cache/debootstrap.log)"
	fi
	r=$rootfs.tmp
	echo agrigw-systest >"$r/etc/hostname"
	# no logins, no periodic jobs (no network inside anyway)
	for u in console-getty.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
		dpkg-db-backup.timer e2scrub_all.timer systemd-tmpfiles-clean.timer; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	rm -f "$r"/var/cache/apt/archives/*.deb
	echo "$extra" >"$r/.agrigw-extra"
	touch "$r/.agrigw-rootfs"
	for old in "$cache"/rootfs-*; do
		[ "$old" != "$rootfs.tmp" ] && [ -d "$old" ] && rm -rf "$old"
	done
	mv "$rootfs.tmp" "$rootfs"
	say "debootstrap took $(($(date +%s) - s)) s"
fi
cp -a "$rootfs" "$root" || die "cannot copy $rootfs"
exec 9>&-

# --- install agrigw the real way, then the test's own files -----------------------
make -s --no-print-directory B="$B" install DESTDIR="$root" >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log"; die "make install DESTDIR=$root failed"; }
install -m 0755 "$B/agrigw-sim" "$root/usr/local/bin/agrigw-sim"

pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
reader_pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
umask 077
printf '%s\n' "$pw" >"$root/etc/agrigw/mqtt.pass"          # root only: agrigw gets it as a credential
printf '%s\n' "$reader_pw" >"$root/root/reader.pass"
umask 022
chroot "$root" mosquitto_passwd -c -b /etc/mosquitto/passwd agrigw "$pw" >/dev/null &&
	chroot "$root" mosquitto_passwd -b /etc/mosquitto/passwd reader "$reader_pw" >/dev/null &&
	chroot "$root" chown mosquitto:mosquitto /etc/mosquitto/passwd ||
	die "mosquitto_passwd failed"
cat >"$root/etc/mosquitto/conf.d/systest.conf" <<'EOF'
listener 1883 127.0.0.1
allow_anonymous false
password_file /etc/mosquitto/passwd
EOF

# the site: two simulated sensors and one that never answers (unit 9)
cat >"$root/etc/agrigw/agrigw.conf" <<'EOF'
# agrigw system test site
gateway = { site = "systest"; id = "gw01"; };
# the container shares the host's kernel, which may never report an NTP sync
clock = { trust_system = true; };
mqtt = {
  host = "127.0.0.1";
  port = 1883;
  username = "agrigw";
  password_file = "/etc/agrigw/mqtt.pass";
  status_interval = 5;
  reconnect_max = 2;
};
# Two serial buses probe the unit's device policy (the nodes are made inside
# the container): a ttyS node (serial: allowed) and a character device of an
# unassigned major (not serial: refused).  Neither has hardware behind it.
buses = (
  { name = "pond-tcp"; type = "tcp"; host = "127.0.0.1"; port = 1502; response_timeout = 0.3; },
  { name = "serial-s5"; type = "rtu"; device = "/dev/ttyS5"; },
  { name = "not-serial"; type = "rtu"; device = "/dev/agrigw-not-serial"; }
);
devices = (
  { name = "pond1-do"; bus = "pond-tcp"; unit = 55; profile = "s-rjy-01"; interval = 1; },
  { name = "pond1-temp"; bus = "pond-tcp"; unit = 1; profile = "water-temp"; interval = 1; },
  { name = "ghost"; bus = "pond-tcp"; unit = 9; profile = "water-temp"; interval = 1; backoff_max = 2; },
  { name = "probe-s5"; bus = "serial-s5"; unit = 1; profile = "water-temp"; interval = 5; },
  { name = "probe-ns"; bus = "not-serial"; unit = 1; profile = "water-temp"; interval = 5; }
);
profiles = {
  @include "profiles/s-rjy-01.conf"
  @include "profiles/water-temp.conf"
};
EOF
# the simulator plays every enabled device of the bus: not the ghost
sed 's/name = "ghost";/name = "ghost"; enabled = false;/' "$root/etc/agrigw/agrigw.conf" >"$root/etc/agrigw/sim.conf"
"$B/agrigw" -n -f "$root/etc/agrigw/agrigw.conf" >/dev/null || die "the test configuration is not valid"

mkdir -p "$root/etc/systemd/system/agrigw.service.d"
cat >"$root/etc/systemd/system/agrigw.service.d/10-systest.conf" <<'EOF'
# system test: the password as a credential, a short watchdog, quick restarts
[Service]
LoadCredential=mqtt-password:/etc/agrigw/mqtt.pass
WatchdogSec=3s
TimeoutAbortSec=2s
RestartSec=1s
EOF
cat >"$root/etc/systemd/system/agrigw-sim.service" <<'EOF'
[Unit]
Description=Modbus TCP simulator for the agrigw system test
[Service]
ExecStart=/usr/local/bin/agrigw-sim -f /etc/agrigw/sim.conf --bus pond-tcp --tcp 127.0.0.1:1502 --quiet
EOF
mkdir -p "$root/usr/local/lib/agrigw-systest" "$work/out"
install -m 0755 "$here/system/in-container.sh" "$root/usr/local/lib/agrigw-systest/in-container.sh"
cat >"$root/etc/systemd/system/agrigw-systest.service" <<'EOF'
[Unit]
Description=agrigw system test checks
After=multi-user.target
[Service]
ExecStart=/bin/sh /usr/local/lib/agrigw-systest/in-container.sh
ExecStopPost=/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/agrigw-systest.service \
	"$root/etc/systemd/system/multi-user.target.wants/agrigw-systest.service"

# --- boot it --------------------------------------------------------------------
say "booting the container (systemd $(chroot "$root" dpkg-query -W -f='${Version}' systemd))"
s=$(date +%s)
# The unit's DevicePolicy/DeviceAllow need the BPF device controller of the
# unified cgroup hierarchy (as on Raspberry Pi OS and Debian 12): a host on
# the hybrid hierarchy would hand the container a read-only cgroup v1 devices
# controller and the policy would silently not apply, so the container gets
# the unified hierarchy, and bpf(2), which nspawn's seccomp filter otherwise
# refuses.  Without host systemd there is no machine registration.
timeout -k 20 "${AGRIGW_SYSTEST_TIMEOUT:-600}" env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 \
	systemd-nspawn -q -D "$root" --boot --private-network --system-call-filter=bpf \
	--register=no --keep-unit --machine=agrigw-systest --console=read-only \
	--bind="$work/out:/systest-out" >"$work/console.log" 2>&1 </dev/null
rc=$?
say "container ran $(($(date +%s) - s)) s (systemd-nspawn exit $rc)"
if [ -f "$work/out/log" ]; then
	cat "$work/out/log"
fi
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out/log" 2>/dev/null | tail -n 1)
if [ -z "$line" ]; then
	echo "system-test: the checks did not finish; the container's console:"
	tail -n 60 "$work/console.log"
	die "no result from inside the container"
fi
say "total $(($(date +%s) - t0)) s"
echo "$line"
case $line in *" 0 failed") exit 0 ;; esac
exit 1
