#!/bin/sh
# Install what cross-building agrigw for arm64 (make BOARD=rpi4) and running
# its unit tests under qemu needs on Debian 12: the cross compiler, the arm64
# development packages (multiarch, beside the amd64 ones) and qemu-user.
# Idempotent: when everything is present it only runs dpkg-query.
set -e
PKGS="gcc-aarch64-linux-gnu pkgconf qemu-user libc6:arm64 libmodbus-dev:arm64 libmosquitto-dev:arm64
libcurl4-openssl-dev:arm64 libconfig-dev:arm64 libjansson-dev:arm64 libsqlite3-dev:arm64
zlib1g-dev:arm64 libsystemd-dev:arm64"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps-arm64: missing packages and not root; as root: dpkg --add-architecture arm64;" \
		"apt-get update; apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
