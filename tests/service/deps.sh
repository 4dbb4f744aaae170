#!/bin/sh
# Install what the service tests need on Debian 12: systemd-analyze (systemd),
# man and groff for the man pages, and for the system test (check-system)
# systemd-nspawn and debootstrap.  Idempotent: when everything is present it
# only runs dpkg-query.
# usage: tests/service/deps.sh [system]
set -e
PKGS="systemd util-linux man-db groff-base"
[ "${1:-}" = system ] && PKGS="$PKGS systemd-container debootstrap"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "service deps: missing packages and not root; run as root or: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
