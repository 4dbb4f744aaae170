# boards/cm4.mk: Raspberry Pi Compute Module 4 (BCM2711, Cortex-A72) on a
# carrier with the 40-pin header (the CM4 IO Board or alike) and a common
# RS-485 HAT; 64-bit OS (Raspberry Pi OS bookworm arm64 or Debian 12 arm64).
#
#   make BOARD=cm4       # cross-build on a Debian 12 PC; see rpi4.mk
#
# The same SoC and UARTs as the Pi 4.  The header UART is on GPIO 14 (TXD)
# and 15 (RXD); on a CM4 with wireless the PL011 (/dev/ttyAMA0) drives
# Bluetooth and the header gets the mini-UART (/dev/ttyS0).  Give the header
# the PL011, in /boot/firmware/config.txt:
#     enable_uart=1
#     dtoverlay=disable-bt        # or dtoverlay=miniuart-bt; not needed on a CM4 without wireless
# remove "console=serial0,115200" from /boot/firmware/cmdline.txt (or
# raspi-config: Interface Options, Serial Port: login shell No, serial
# hardware Yes) and reboot.  The port is /dev/ttyAMA0 (/dev/serial0).
# Carriers with their own RS-485 ports wire them to further UARTs
# (dtoverlay=uart2 ... uart5, each a /dev/ttyAMAn): see the carrier's manual.
#
# RS-485 HAT: most common HATs either switch the transceiver (DE/RE) from the
# UART's RTS line, then set `rs485 = true;` on the bus (the kernel raises RTS
# while sending; RTS must be enabled on the GPIO the HAT's manual names), or
# switch it automatically, then leave rs485 false.  A HAT that switches
# DE/RE from a plain GPIO (neither) is not supported.
#
# Wiring: A to A, B to B on every device (if nothing answers, swap the two:
# vendors disagree on the letters), the signal ground (GND/COM) too; twisted
# pair, one daisy chain, no star; 120 ohm across A-B at both far ends of the
# chain; bias resistors (A up, B down) once on the bus, usually a jumper on
# the HAT.

CROSS_COMPILE ?= aarch64-linux-gnu-
CPU_FLAGS = -mcpu=cortex-a72
PKG_CONFIG = aarch64-linux-gnu-pkg-config
# its own build directory, so host and board objects never mix
B ?= build-cm4
