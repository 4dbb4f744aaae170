# boards/rpizero2w.mk: Raspberry Pi Zero 2 W (RP3A0, Cortex-A53), 64-bit OS
# (Raspberry Pi OS bookworm arm64 or Debian 12 arm64).  512 MB of RAM: keep
# mqtt queue_max modest.
#
#   make BOARD=rpizero2w     # cross-build on a Debian 12 PC; see rpi4.mk
#
# Serial port.  The header UART is on GPIO 14 (TXD) and 15 (RXD).  By
# default it is the mini-UART, /dev/ttyS0 (/dev/serial0), because the PL011
# (/dev/ttyAMA0) drives Bluetooth.  The mini-UART works at the usual sensor
# rates once `enable_uart=1` fixes the core clock, but it has a small FIFO,
# no parity bit and one stop bit only, so 8E1, 8O1 and 8N2 sensors need the
# PL011.  To give it to the header, in
# /boot/firmware/config.txt:
#     enable_uart=1
#     dtoverlay=disable-bt        # or dtoverlay=miniuart-bt to keep Bluetooth
# then `systemctl disable hciuart` (if present), remove
# "console=serial0,115200" from /boot/firmware/cmdline.txt (or raspi-config:
# Interface Options, Serial Port: login shell No, serial hardware Yes) and
# reboot.  The port is then /dev/ttyAMA0 (/dev/serial0).
#
# RS-485 HAT (pHAT): if it switches its transceiver (DE/RE) from the UART's
# RTS line, set `rs485 = true;` on the bus; with automatic direction control
# leave it false.  A USB RS-485 adapter on the micro-USB OTG port (through an
# OTG adapter) works too: see usb-rs485.mk.
#
# Wiring: A to A, B to B on every device (if nothing answers, swap the two:
# vendors disagree on the letters), the signal ground (GND/COM) too; twisted
# pair, one daisy chain, no star; 120 ohm across A-B at both far ends of the
# chain; bias resistors (A up, B down) once on the bus.

CROSS_COMPILE ?= aarch64-linux-gnu-
CPU_FLAGS = -mcpu=cortex-a53
PKG_CONFIG = aarch64-linux-gnu-pkg-config
# its own build directory, so host and board objects never mix
B ?= build-rpizero2w
