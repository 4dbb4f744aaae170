# boards/rpi4.mk: Raspberry Pi 4 Model B (BCM2711, Cortex-A72), 64-bit OS
# (Raspberry Pi OS bookworm arm64 or Debian 12 arm64).
#
#   make BOARD=rpi4      # on a Debian 12 PC: cross-build build-rpi4/agrigw for the Pi
#
# The cross toolchain and the arm64 libraries (Debian 12, as root):
#   sh tests/service/deps-arm64.sh
# On the Pi itself plain `make` builds natively; `make BOARD=rpi4` works there
# too (Debian's native gcc and pkg-config also answer to aarch64-linux-gnu-).
#
# Serial port.  The 40-pin header's UART is on GPIO 14 (TXD) and 15 (RXD).
# By default the good UART (PL011, /dev/ttyAMA0) drives Bluetooth and the
# header gets the mini-UART (/dev/ttyS0), whose baud rate follows the VPU
# clock.  For RS-485 give the header the PL011, in /boot/firmware/config.txt:
#     enable_uart=1
#     dtoverlay=disable-bt        # no Bluetooth; or dtoverlay=miniuart-bt
# then `systemctl disable hciuart` (if present), remove
# "console=serial0,115200" from /boot/firmware/cmdline.txt (or raspi-config:
# Interface Options, Serial Port: login shell No, serial hardware Yes) and
# reboot.  The port is then /dev/ttyAMA0, also reachable as /dev/serial0.
# More UARTs: dtoverlay=uart2 ... uart5, each a further /dev/ttyAMAn.
#
# RS-485 HAT on the header: if the HAT switches its transceiver (DE/RE) from
# the UART's RTS line, set `rs485 = true;` on the bus so the kernel raises
# RTS while sending (the HAT's manual names the GPIO; RTS must be enabled on
# that pin by the UART's overlay).  HATs with automatic direction control
# need nothing: leave rs485 false.  A USB RS-485 adapter: see usb-rs485.mk.
#
# Wiring: A to A and B to B on every device (some vendors swap the letters:
# if nothing answers, swap the two wires), and the signal ground (GND/COM)
# as well; twisted pair, one daisy chain, no star.  A 120 ohm resistor across
# A-B at both far ends of the chain (HATs often have a jumper for it), and
# one set of bias resistors on the bus (A pulled up, B pulled down; usually a
# jumper on the HAT or adapter) so the idle line reads as a clean 1.

CROSS_COMPILE ?= aarch64-linux-gnu-
CPU_FLAGS = -mcpu=cortex-a72
PKG_CONFIG = aarch64-linux-gnu-pkg-config
# its own build directory, so host and board objects never mix
B ?= build-rpi4
