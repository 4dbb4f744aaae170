# agrigw: one non-recursive Makefile.  See README.md for the targets.
# `make V=1` shows the commands; `make BOARD=rpi4` cross-builds (boards/*.mk);
# `make check SANITIZE=address,undefined` builds and tests with sanitizers.

-include boards/$(BOARD).mk

PKG_CONFIG ?= pkg-config
ifeq ($(origin CC),default)
CC = $(CROSS_COMPILE)gcc
endif
CFLAGS ?= -O2 -g
WARN = -std=c17 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wpointer-arith -Wcast-qual -Wno-missing-field-initializers
DEFS = -D_GNU_SOURCE -DAGRIGW_VERSION=\"$(VERSION)\"
VERSION = 0.1.0

PKGS = libmodbus libmosquitto libcurl libconfig jansson sqlite3 zlib libsystemd
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

ifneq ($(SANITIZE),)
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

B ?= build
ALL_CFLAGS = $(WARN) $(DEFS) $(PKG_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -pthread -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS) -pthread
LIBS = $(PKG_LIBS) -lm

ifeq ($(V),1)
Q =
else
Q = @
endif

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
UNITDIR ?= /lib/systemd/system

# Everything but main.c goes in a static library the tests link against.
LIB_SRCS = $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS = $(LIB_SRCS:src/%.c=$(B)/%.o)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(B)/%)
SIM_SRCS = $(wildcard tests/sim/*.c)

.PHONY: all check check-unit check-config check-integration deps deps-run run clean \
        install uninstall bench fuzz
all: $(B)/agrigw $(B)/agrigw-sim
	$(Q)ln -sf $(B)/agrigw agrigw

$(B)/%.o: src/%.c
	@mkdir -p $(B)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libagrigw.a: $(LIB_OBJS)
	$(Q)rm -f $@ && $(CROSS_COMPILE)ar rcs $@ $^

$(B)/agrigw: $(B)/main.o $(B)/libagrigw.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/sim_%.o: tests/sim/%.c
	@mkdir -p $(B)
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc -c -o $@ $<

$(B)/agrigw-sim: $(SIM_SRCS:tests/sim/%.c=$(B)/sim_%.o) $(B)/libagrigw.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/test_%.o: tests/unit/test_%.c
	@mkdir -p $(B)
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc -Itests/unit -c -o $@ $<

$(B)/test_%: $(B)/test_%.o $(B)/libagrigw.a
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Install what the build and the tests need on Debian 12 (idempotent, quick when present).
deps:
	$(Q)sh tests/deps.sh

check: deps all $(UNIT_BINS)
	$(Q)sh tests/run-all.sh $(B)

check-unit: all $(UNIT_BINS)
	$(Q)sh tests/run-all.sh $(B) unit

check-config: all
	$(Q)sh tests/run-all.sh $(B) config

check-integration: all
	$(Q)sh tests/run-all.sh $(B) integration

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh tests/demo.sh $(B)

clean:
	rm -rf $(B) agrigw

-include $(wildcard $(B)/*.d)
