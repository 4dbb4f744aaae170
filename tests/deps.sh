#!/bin/sh
# Install Debian 12 packages, idempotently: when everything is present it only
# runs dpkg-query.  Without arguments, what agrigw's build, demo and tests
# need; with arguments, those packages (tests/service/deps*.sh use that).
# A package named with a foreign architecture (libfoo-dev:arm64) adds that
# architecture to dpkg first.
set -e
PKGS="$*"
[ -n "$PKGS" ] || PKGS="gcc make pkg-config libmodbus-dev libmosquitto-dev libcurl4-openssl-dev libconfig-dev
libjansson-dev libsqlite3-dev zlib1g-dev libsystemd-dev mosquitto mosquitto-clients socat
openssl python3 python3-pytest python3-pytest-xdist python3-paho-mqtt"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages and not root; run as root, or: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
for arch in $(echo "$missing" | tr ' ' '\n' | sed -n 's/.*:\(.*\)$/\1/p' | sort -u); do
	dpkg --print-foreign-architectures | grep -qx "$arch" || dpkg --add-architecture "$arch"
done
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
