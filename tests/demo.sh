#!/bin/sh
# `make run`: see tests/demo.py.  Debian's python3 has the paho module.
exec env AGRIGW_BUILD="${1:-build}" /usr/bin/python3 "$(dirname "$0")/demo.py"
