# boards/rpi5.mk: Raspberry Pi 5 (BCM2712, Cortex-A76), 64-bit OS
# (Raspberry Pi OS bookworm arm64 or Debian 12 arm64).
#
#   make BOARD=rpi5      # cross-build on a Debian 12 PC; see rpi4.mk
#
# Serial port.  The Pi 5's UARTs live in its RP1 chip.  /dev/serial0 is the
# small 3-pin debug connector (/dev/ttyAMA10), not the header.  The header
# UART on GPIO 14 (TXD) and 15 (RXD) is UART0, off by default; Bluetooth has
# its own UART, so nothing has to be moved away.  In
# /boot/firmware/config.txt:
#     dtparam=uart0=on
# and reboot: the port is /dev/ttyAMA0.  More UARTs: dtoverlay=uart1-pi5 ...
# uart4-pi5, each a further /dev/ttyAMAn.  The serial console stays on the
# debug connector unless cmdline.txt names serial0 otherwise; make sure no
# "console=" entry in /boot/firmware/cmdline.txt names ttyAMA0.
#
# RS-485 HAT: if it switches its transceiver (DE/RE) from the UART's RTS
# line, set `rs485 = true;` on the bus (the kernel raises RTS while
# sending; RTS must be enabled on the GPIO the HAT's manual names, e.g. with
# the overlay's ctsrts parameter).  HATs with automatic direction control:
# leave rs485 false.  A USB RS-485 adapter: see usb-rs485.mk.
#
# Wiring: A to A, B to B on every device (if nothing answers, swap the two:
# vendors disagree on the letters), the signal ground (GND/COM) too; twisted
# pair, one daisy chain, no star; 120 ohm across A-B at both far ends of the
# chain; bias resistors (A up, B down) once on the bus.

CROSS_COMPILE ?= aarch64-linux-gnu-
CPU_FLAGS = -mcpu=cortex-a76
PKG_CONFIG = aarch64-linux-gnu-pkg-config
# its own build directory, so host and board objects never mix
B ?= build-rpi5
