#!/bin/sh
# Install the Debian 12 packages that agrigw's build, demo and tests need.
# Idempotent: when everything is present it only runs dpkg-query.
set -e
PKGS="gcc make pkg-config libmodbus-dev libmosquitto-dev libcurl4-openssl-dev libconfig-dev
libjansson-dev libsqlite3-dev zlib1g-dev libsystemd-dev mosquitto mosquitto-clients socat
openssl python3 python3-pytest python3-pytest-xdist python3-paho-mqtt"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages and not root; run as root or: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
