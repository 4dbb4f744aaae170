#!/bin/sh
# Install what the service tests need on Debian 12: systemd-analyze (systemd),
# man and groff for the man pages, and for the system test (check-system)
# systemd-nspawn and debootstrap.
# usage: tests/service/deps.sh [system]
PKGS="systemd util-linux man-db groff-base"
[ "${1:-}" = system ] && PKGS="$PKGS systemd-container debootstrap"
exec sh "$(dirname "$0")/../deps.sh" $PKGS
