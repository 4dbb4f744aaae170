# boards/usb-rs485.mk: any aarch64 board (Raspberry Pi 3/4/5, Zero 2 W, CM4,
# other Debian 12 arm64 boards) with a USB RS-485 adapter (CH340/CH341,
# FTDI FT232R, CP2102, PL2303 and alike).
#
#   make BOARD=usb-rs485     # cross-build on a Debian 12 PC, generic ARMv8-A
#
# Serial port: /dev/ttyUSB0 (the next adapter /dev/ttyUSB1, in plug-in
# order; a few CDC-ACM adapters appear as /dev/ttyACM0).  With more than one
# adapter use the stable names under /dev/serial/by-id/ (or by-path/, per USB
# socket) as the bus' device.  No UART set-up and no config.txt change.
# The agrigw service loads the usbserial and cdc_acm drivers before it
# starts, so an adapter plugged in later is still allowed.
#
# RS-485 mode: these adapters switch the transceiver direction themselves;
# leave `rs485 = false;` (the default).  Setting it on a port that refuses
# it only gives a warning.
#
# Wiring: the adapter's A (D+, "485+") to A, B (D-, "485-") to B on every
# device (if nothing answers, swap the two: vendors disagree on the
# letters), and GND to the sensors' signal ground where the adapter has a
# GND terminal; twisted pair, one daisy chain, no star; 120 ohm across A-B
# at both far ends of the chain (many adapters have a jumper or switch for
# their end); bias resistors (A up, B down) once on the bus, usually in the
# adapter.

CROSS_COMPILE ?= aarch64-linux-gnu-
CPU_FLAGS = -march=armv8-a
PKG_CONFIG = aarch64-linux-gnu-pkg-config
# its own build directory, so host and board objects never mix
B ?= build-usb-rs485
