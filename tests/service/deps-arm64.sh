#!/bin/sh
# Install what cross-building agrigw for arm64 (make BOARD=rpi4) and running
# its unit tests under qemu needs on Debian 12: the cross compiler, the arm64
# development packages (multiarch, beside the amd64 ones) and qemu-user.
exec sh "$(dirname "$0")/../deps.sh" gcc-aarch64-linux-gnu pkgconf qemu-user libc6:arm64 \
	libmodbus-dev:arm64 libmosquitto-dev:arm64 libcurl4-openssl-dev:arm64 libconfig-dev:arm64 \
	libjansson-dev:arm64 libsqlite3-dev:arm64 zlib1g-dev:arm64 libsystemd-dev:arm64
