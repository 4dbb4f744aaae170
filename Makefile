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

# --- Boards, install, service tests -------------------------------------------
# boards/NAME.mk sets CROSS_COMPILE, PKG_CONFIG and CPU_FLAGS (-mcpu=...);
# CPU_FLAGS go to every compile and link, beside the user's CFLAGS.
ALL_CFLAGS += $(CPU_FLAGS)
ALL_LDFLAGS += $(CPU_FLAGS)

# `make install` honours DESTDIR, PREFIX, SBINDIR, SYSCONFDIR, UNITDIR,
# SYSUSERSDIR and MANDIR.  The unit is generated here so that its ExecStart
# names the installed binary.  An existing agrigw.conf is never overwritten;
# the shipped profiles are (keep your own profiles in files of your own name).
SYSUSERSDIR ?= /usr/lib/sysusers.d
CONF_DIR = $(SYSCONFDIR)/agrigw
PROFILE_FILES = $(notdir $(wildcard config/profiles/*.conf))

.PHONY: check-service check-system check-unit-arm64 deps-arm64
install: $(B)/agrigw
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(CONF_DIR)/profiles
	install -m 0755 $(B)/agrigw $(DESTDIR)$(SBINDIR)/agrigw
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		systemd/agrigw.service.in >$(DESTDIR)$(UNITDIR)/agrigw.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/agrigw.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/agrigw.service.tmp $(DESTDIR)$(UNITDIR)/agrigw.service
	install -m 0644 systemd/agrigw.sysusers $(DESTDIR)$(SYSUSERSDIR)/agrigw.conf
	install -m 0644 docs/man/agrigw.8 $(DESTDIR)$(MANDIR)/man8/agrigw.8
	install -m 0644 docs/man/agrigw.conf.5 $(DESTDIR)$(MANDIR)/man5/agrigw.conf.5
	install -m 0644 $(PROFILE_FILES:%=config/profiles/%) $(DESTDIR)$(CONF_DIR)/profiles/
	@if [ -e $(DESTDIR)$(CONF_DIR)/agrigw.conf ]; then \
		echo "install: keeping the existing $(DESTDIR)$(CONF_DIR)/agrigw.conf"; \
	else \
		echo "install -m 0644 config/agrigw.conf $(DESTDIR)$(CONF_DIR)/agrigw.conf"; \
		install -m 0644 config/agrigw.conf $(DESTDIR)$(CONF_DIR)/agrigw.conf; \
	fi
	@# a real install (no DESTDIR): create the user now, tell systemd about the unit
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		echo "systemd-sysusers $(SYSUSERSDIR)/agrigw.conf"; systemd-sysusers $(SYSUSERSDIR)/agrigw.conf; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		echo "systemctl daemon-reload"; systemctl daemon-reload; fi

# Removes what install put there, except agrigw.conf (and the user, the
# state in /var/lib/agrigw and any file of yours in $(CONF_DIR)).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/agrigw $(DESTDIR)$(UNITDIR)/agrigw.service \
		$(DESTDIR)$(SYSUSERSDIR)/agrigw.conf $(DESTDIR)$(MANDIR)/man8/agrigw.8 \
		$(DESTDIR)$(MANDIR)/man5/agrigw.conf.5
	rm -f $(PROFILE_FILES:%=$(DESTDIR)$(CONF_DIR)/profiles/%)
	rmdir $(DESTDIR)$(CONF_DIR)/profiles 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		echo "systemctl daemon-reload"; systemctl daemon-reload; fi

# The unit (systemd-analyze verify and security), install/uninstall into a
# temporary root, the man pages.
check-service: $(B)/agrigw
	$(Q)sh tests/service/run.sh $(B)

# The installed unit under a real systemd and journald in a container
# (systemd-nspawn, Debian 12 rootfs cached under AGRIGW_CACHE); root only.
check-system: $(B)/agrigw $(B)/agrigw-sim
	$(Q)sh tests/service/system-test.sh $(B)

# The unit tests cross-built for the Raspberry Pi 4 and run under qemu-aarch64.
ARM64_B ?= build-arm64
deps-arm64:
	$(Q)sh tests/service/deps-arm64.sh

check-unit-arm64: deps-arm64
	$(Q)$(MAKE) --no-print-directory BOARD=rpi4 B=$(ARM64_B) $(ARM64_B)/agrigw $(ARM64_B)/agrigw-sim \
		$(UNIT_SRCS:tests/unit/%.c=$(ARM64_B)/%)
	$(Q)sh tests/service/run-qemu.sh $(ARM64_B)

# --- Fuzzing and checkers (hardening) -------------------------------------------
# `make fuzz` builds tests/fuzz/fuzz_*.c with clang, libFuzzer, ASan and UBSan
# into $(B)/fuzz/ and runs each target for FUZZ_SECONDS (default 60) on a
# scratch copy of its seed corpus tests/fuzz/NAME/ (found inputs stay in
# $(B)/fuzz/corpus-NAME/, crashes land in $(B)/fuzz/NAME-crash-*);
# `make fuzz-smoke` runs each for 10 s; FUZZ_TARGETS=fuzz_conf picks some.
# `make check-fuzz-corpus` replays every seed once with $(CC) and no libFuzzer
# (tests/fuzz/replay.c; fast, so `make check` runs these as unit tests).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_NAMES = $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_B = $(B)/fuzz
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = $(WARN) $(DEFS) $(PKG_CFLAGS) -O1 -g $(FUZZ_SAN) -pthread -MMD -MP \
	-Isrc -Itests/fuzz -DAGRIGW_SRCDIR=\"$(CURDIR)\"
REPLAY_BINS = $(FUZZ_NAMES:fuzz_%=$(B)/test_fuzz_%)

.PHONY: fuzz fuzz-build fuzz-smoke check-fuzz-corpus check-valgrind
$(FUZZ_B)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/obj/fuzz_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/obj/fuzz_%.o $(LIB_SRCS:src/%.c=$(FUZZ_B)/obj/%.o)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(LIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_B)/%)

fuzz: fuzz-build
	$(Q)sh tests/fuzz/run.sh $(FUZZ_B) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	$(Q)sh tests/fuzz/run.sh $(FUZZ_B) 10 $(FUZZ_TARGETS)

# The same targets with $(CC) and replay.c's main(), each run over its corpus.
$(B)/replay/fuzz_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc -Itests/fuzz -DAGRIGW_SRCDIR=\"$(CURDIR)\" -DFUZZ_REPLAY -c -o $@ $<

$(B)/replay/replay_%.o: tests/fuzz/replay.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc -Itests/fuzz -DFUZZ_CORPUS=\"$(CURDIR)/tests/fuzz/fuzz_$*\" -c -o $@ $<

$(B)/test_fuzz_%: $(B)/replay/fuzz_%.o $(B)/replay/replay_%.o $(B)/libagrigw.a
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

check check-unit: $(REPLAY_BINS)

# keep the objects (make would delete them as intermediate files)
.PRECIOUS: $(FUZZ_B)/obj/%.o $(FUZZ_B)/obj/fuzz_%.o $(B)/replay/fuzz_%.o $(B)/replay/replay_%.o

check-fuzz-corpus: $(REPLAY_BINS)
	$(Q)rc=0; for t in $(REPLAY_BINS); do echo "== $$t"; $$t || rc=1; done; exit $$rc

-include $(wildcard $(FUZZ_B)/obj/*.d $(B)/replay/*.d)

# `make check-valgrind`: the integration tests with the daemon under valgrind
# memcheck (an ordinary build in $(B)).  Fails on any memcheck error or
# definite or indirect leak, also in a test that does not look at agrigw's
# exit status: no valgrind log in $(B)/valgrind/ may count an error.  (A log
# without a summary is a run ended by kill -9, which valgrind cannot report
# on.)  VALGRIND_TESTS, a pytest -k expression, picks the tests; by default
# all but three whose timing cannot hold at valgrind's pace (kill -9 loops,
# which valgrind cannot report on anyway; a refusal that must arrive within
# the 3 s request timeout; a restart before the clock is synchronised).
# VALGRIND_TESTS= runs them all.
VALGRIND_TESTS ?= not kill9 and not dead_letter and not restart_before_sync
VALGRIND_CMD = valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=99 --num-callers=30 --log-file=$(abspath $(B))/valgrind/agrigw.%p.log
check-valgrind: all
	$(Q)rm -rf $(B)/valgrind && mkdir -p $(B)/valgrind
	$(Q)VALGRIND="$(VALGRIND_CMD)" PYTEST_ADDOPTS="$(if $(VALGRIND_TESTS),-k '$(VALGRIND_TESTS)')" \
		sh tests/run-all.sh $(B) integration; rc=$$?; \
	logs=$$(ls $(B)/valgrind/*.log 2>/dev/null | wc -l); \
	clean=$$(grep -l 'ERROR SUMMARY: 0 errors' $(B)/valgrind/*.log 2>/dev/null | wc -l); \
	bad=$$(grep -l -E 'ERROR SUMMARY: [1-9]' $(B)/valgrind/*.log 2>/dev/null); \
	for f in $$bad; do echo "== $$f"; grep -E '^==[0-9]+== ' $$f | head -n 80; done; \
	echo "valgrind: $$logs agrigw runs: $$clean clean, $$(echo $$bad | wc -w) with errors or leaks," \
		"$$((logs - clean - $$(echo $$bad | wc -w))) killed by signal 9"; \
	[ $$rc -eq 0 ] && [ -z "$$bad" ] && [ $$clean -gt 0 ]

# --- Benchmark (bench/) ---------------------------------------------------------
# `make bench` runs bench/bench.py: workloads (a) and (b), the store, the
# uplink backlog drain and the start-up time, minutes; the table goes to
# stdout, bench/results-DATE.txt and bench/last.txt.  `make bench-smoke` runs
# tiny workloads in a few seconds (the table goes to $(B)/bench-smoke.txt); it
# fails only when the benchmark itself breaks, never on a missed target.
.PHONY: bench-smoke
BENCH_BINS = $(B)/agrigw $(B)/agrigw-sim $(B)/storebench

$(B)/storebench: bench/storebench.c $(B)/libagrigw.a
	@mkdir -p $(B)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ bench/storebench.c $(B)/libagrigw.a $(LIBS)

bench: $(BENCH_BINS)
	$(Q)AGRIGW_BUILD=$(B) /usr/bin/python3 bench/bench.py

bench-smoke: $(BENCH_BINS)
	$(Q)AGRIGW_BUILD=$(B) /usr/bin/python3 bench/bench.py --smoke

# --- Soak and flaky-link runs (tests/soak/; as root: network namespaces, nft) ---
# `make soak` runs tests/soak/soak.py for SOAK_SECONDS (default 7200) with
# BLACKHOLE_SECONDS (default 300) blackholes; `make soak-ci` is the 10-minute
# version .ci/run uses (90 s blackhole); `make flaky-link` runs the link
# scenarios alone (30 % loss, a BLACKHOLE_SECONDS blackhole, the NAT forgetting
# connections), some 11 minutes.  Each prints its table and writes it to
# $(B)/soak-report.txt, soak-ci-report.txt or flaky-link-report.txt.
.PHONY: soak soak-ci flaky-link deps-soak
SOAK_SECONDS ?= 7200
BLACKHOLE_SECONDS ?= 300
deps-soak: deps
	$(Q)sh tests/deps.sh iproute2 nftables conntrack

soak: deps-soak all
	$(Q)AGRIGW_BUILD=$(B) /usr/bin/python3 tests/soak/soak.py --seconds $(SOAK_SECONDS) \
		--blackhole $(BLACKHOLE_SECONDS) --report $(B)/soak-report.txt

soak-ci: deps-soak all
	$(Q)AGRIGW_BUILD=$(B) /usr/bin/python3 tests/soak/soak.py --seconds 600 --blackhole 90 \
		--report $(B)/soak-ci-report.txt

flaky-link: deps-soak all
	$(Q)AGRIGW_BUILD=$(B) /usr/bin/python3 tests/soak/soak.py --flaky-only \
		--blackhole $(BLACKHOLE_SECONDS) --report $(B)/flaky-link-report.txt
