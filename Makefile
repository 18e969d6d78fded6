# repvol - replicated block volumes.  Plain make; see README.md.

PREFIX   ?= /usr/local
CC       ?= gcc
# CFLAGS / LDFLAGS are the user's (make CFLAGS="-O1 -fsanitize=address"
# keeps working); what the code needs is added on top.
CFLAGS   ?= -O2 -g
# kmod/ for repvol_uapi.h, the one header userspace shares with repvol.ko.
INCLUDES   = -Iuserspace/lib -Ikmod
ALL_CFLAGS = $(CFLAGS) -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration \
            -D_GNU_SOURCE $(INCLUDES) -MMD -MP
ALL_LDLIBS = $(LDLIBS) -luring -laio -ljson-c -lisal -lcurl -lzstd -lcrypto -lblkid -lgnutls -lmicrohttpd -lm

B        ?= build
LIB_SRC  := $(wildcard userspace/lib/*/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LIB      := $(B)/librepvol.a
PROGS    := $(B)/repvold $(B)/repvol
# test_registry_conformance is a unit test that the etcd integration
# tests also run (against a real cluster), so "all" builds it.
TOOLS    := $(B)/tests/no_io_uring $(B)/tests/objtool $(B)/tests/mksnap \
            $(B)/tests/test_registry_conformance $(B)/tests/ackload \
            $(B)/tests/delayrelay $(B)/tests/bench_summary \
            $(B)/tests/kmod-hostile
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNITS    := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
# Helpers the unit tests share (fake bdev, fake replica...).
TESTLIB_SRC := $(wildcard tests/unit/lib/*.c)
TESTLIB  := $(B)/libtestunit.a

.PHONY: all clean kmod kmod-install kmod-clean check check-unit check-integration check-hosts check-asan check-kernel bench bench-kernel demo install deps soak crashpoints
all: $(PROGS) $(TOOLS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/repvold: $(patsubst %.c,$(B)/%.o,$(wildcard userspace/repvold/*.c)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

$(B)/repvol: $(patsubst %.c,$(B)/%.o,$(wildcard userspace/repvol/*.c)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

# Helper programs the integration tests run.
$(B)/tests/no_io_uring: tests/tools/no_io_uring.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

# objtool: the object store from the shell (put, get, list...).
$(B)/tests/objtool: $(B)/tests/tools/objtool.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

# Writes snapshots into an object store with the catalog API.
$(B)/tests/mksnap: $(B)/tests/tools/mksnap.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS)

# The acknowledged-write workload and its checker (tests/soak/), an NBD
# client through libnbd.
$(B)/tests/ackload: tests/tools/ackload.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -lnbd

# repvol.ko against bad input, through the real module (kernel test 053).
KMOD_HOSTILE_SRC := tests/kernel/kmod-hostile.c tests/kernel/kmod-hostile-recovery.c
$(B)/tests/kmod-hostile: $(KMOD_HOSTILE_SRC) tests/kernel/kmod-hostile.h kmod/repvol_uapi.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(KMOD_HOSTILE_SRC) -lpthread

# The bench's TCP relay with a one-way delay (cross-zone rows, test 104).
$(B)/tests/delayrelay: tests/perf/delayrelay.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

# Reads the bench's TSV results and fragments, writes summary.json.
$(B)/tests/bench_summary: tests/perf/bench_summary.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< -ljson-c -lm

$(TESTLIB): $(TESTLIB_SRC:%.c=$(B)/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/tests/%: $(B)/tests/unit/%.o $(TESTLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(ALL_LDLIBS) -lcmocka

deps:
	scripts/install-deps.sh

# Each unit test runs under valgrind: a leak or an uninitialised read
# fails it like an assertion would.
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
check-unit: $(UNITS)
	@set -e; for t in $(UNITS); do echo "== $$t"; $(VALGRIND) $$t; done

# TEST_JOBS tests at once (run-integration.sh): a test spends most of its
# time waiting on servers, timers and polls, so three share two cores.
TEST_JOBS ?= 3
check-integration: all
	BUILD=$(abspath $(B)) TEST_JOBS=$(TEST_JOBS) tests/run-integration.sh

# The host harness (tests/hosts/, as root): hosts and zones as network
# namespaces, etcd on three of them, link cuts and dead hosts.  Without
# root each test skips.
check-hosts: all
	BUILD=$(abspath $(B)) TEST_OUT=$(abspath tests/out-hosts) REPVOL_TEST_S3=0 \
	  tests/run-integration.sh $(sort $(wildcard tests/hosts/[0-9][0-9][0-9]-*.sh))

# The integration tests again against binaries built with AddressSanitizer
# and UBSan.  Every report (a server's too, whose exit status the tests
# do not see) lands in build-asan/reports/, and any report fails the run.
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_LOGS   = $(abspath build-asan)/reports
check-asan:
	$(MAKE) B=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all
	rm -rf $(ASAN_LOGS) && mkdir -p $(ASAN_LOGS)
	ASAN_OPTIONS=detect_leaks=1:log_path=$(ASAN_LOGS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(ASAN_LOGS)/ubsan \
	  BUILD=$(abspath build-asan) TEST_JOBS=$(TEST_JOBS) tests/run-integration.sh
	@if [ -n "$$(ls -A $(ASAN_LOGS))" ]; then cat $(ASAN_LOGS)/*; \
	  echo "check-asan: sanitizer reports above"; exit 1; fi

# The kernel tier: Debian 13 and 12 kernels (fetched once into
# $(REPVOL_VM_CACHE), default /var/cache/repvol-vm) booted under qemu, the
# tests/kernel/ tests run inside on /dev/ublkb0 and /dev/nbd0.  Without
# network (and no cache) it prints "SKIPPED, not passed" and exits 0.
check-kernel: all
	BUILD=$(abspath $(B)) tests/kernel/run.sh

# Installs missing Debian packages, builds, runs every tier (the kernel
# tier where qemu is installed; install-deps installs it).
check:
	scripts/install-deps.sh
	$(MAKE) all $(UNITS)
	$(MAKE) check-unit
	$(MAKE) check-integration
	$(MAKE) check-hosts
	$(MAKE) check-asan
	$(MAKE) check-fuzz
	if command -v qemu-system-x86_64 >/dev/null 2>&1; then $(MAKE) check-kernel; \
	else echo "check: kernel tier SKIPPED, not passed: qemu-system-x86_64 not installed"; fi

# The soak (tests/soak/soak.sh): two volumes under an acknowledged-write
# workload and fio verify while attaches, servers (and etcd members with
# SOAK_REGISTRY=etcd) are killed and stopped at random for SOAK_SECONDS;
# test 098 is its 3-minute form.  The crash-point campaign
# (tests/soak/crashpoints.sh): CRASH_POINTS kills of the attach or a
# server, each followed by a read-back; test 099 runs 100.
SOAK_SECONDS ?= 3600
CRASH_POINTS ?= 100
soak: all
	SOAK_SECONDS=$(SOAK_SECONDS) TEST_TIMEOUT=$$(($(SOAK_SECONDS) + 900)) VERBOSE=1 \
	  BUILD=$(abspath $(B)) TEST_OUT=$(abspath tests/out-soak) REPVOL_TEST_S3=0 \
	  tests/run-integration.sh tests/soak/soak.sh
crashpoints: all
	CRASH_POINTS=$(CRASH_POINTS) TEST_TIMEOUT=$$(($(CRASH_POINTS) * 5 + 300)) VERBOSE=1 \
	  BUILD=$(abspath $(B)) TEST_OUT=$(abspath tests/out-soak) REPVOL_TEST_S3=0 \
	  tests/run-integration.sh tests/soak/crashpoints.sh

# bench-kernel first, so that the last thing "make bench" does is
# tests/perf/bench.sh writing $(B)/bench/summary.json and its table.
bench:
	scripts/install-deps.sh
	$(MAKE) all
	if command -v qemu-system-x86_64 >/dev/null 2>&1; then \
	    $(MAKE) bench-kernel || echo "bench-kernel failed (above)"; fi
	BUILD=$(abspath $(B)) BENCH_DIR=$(abspath $(B))/bench tests/perf/bench.sh

# fio through /dev/ublkb0, /dev/repvolN (repvol.ko), /dev/nbdN and the NBD
# socket inside a Debian 13 and a Debian 12 guest (emulated under TCG:
# labelled so).
bench-kernel: all
	BUILD=$(abspath $(B)) tests/perf/bench-kernel.sh

demo:
	scripts/install-deps.sh
	$(MAKE) all
	scripts/demo.sh

# make install [PREFIX=/usr/local] [DESTDIR=...] [UNITDIR=...]: the
# programs, the man pages and the systemd units (systemd/: repvold@NAME,
# repvol-attach@VOL, repvol-heal.service and .timer), the units with the
# installed programs' paths; and bash completion (completion/).
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
COMPDIR ?= $(PREFIX)/share/bash-completion/completions
UNITS_IN := $(wildcard systemd/*.in)
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	  $(DESTDIR)$(MANDIR)/man4 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPDIR)
	install -m 755 $(B)/repvol $(DESTDIR)$(BINDIR)/repvol
	install -m 755 $(B)/repvold $(DESTDIR)$(SBINDIR)/repvold
	install -m 644 man/*.4 $(DESTDIR)$(MANDIR)/man4/
	install -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 man/*.7 $(DESTDIR)$(MANDIR)/man7/
	for u in $(UNITS_IN); do \
	  sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' $$u \
	    > $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) || exit 1; \
	done
	install -m 644 systemd/*.timer $(DESTDIR)$(UNITDIR)/
	install -m 644 completion/repvol.bash $(DESTDIR)$(COMPDIR)/repvol
	install -m 644 completion/repvol.bash $(DESTDIR)$(COMPDIR)/repvold

clean: kmod-clean
	rm -rf $(B) build-asan

# repvol.ko, out of tree, for the kernel whose build directory is KDIR
# (default: the running kernel's).  C=1 runs sparse over it.  The kernel
# test tier builds it for each VM kernel with scripts/kernel-vm.sh kmod.
KDIR ?= /lib/modules/$(shell uname -r)/build
kmod:
	@test -f $(KDIR)/Makefile || { echo "make kmod: no kernel build directory at $(KDIR)" \
	  "(install linux-headers-$$(uname -r), or pass KDIR=...)" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(if $(C),C=$(C)) modules
	@echo "built kmod/repvol.ko for $$(modinfo -F vermagic kmod/repvol.ko 2>/dev/null | cut -d' ' -f1)"

# Into /lib/modules/KVER/updates, where modprobe (and attach --device auto)
# finds it; KVER is the kernel it was built for.
kmod-install: kmod
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=updates modules_install
	depmod $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) -a $$(modinfo -F vermagic kmod/repvol.ko | cut -d" " -f1)

kmod-clean:
	rm -f kmod/*.o kmod/*.ko kmod/*.mod kmod/*.mod.c kmod/.*.cmd kmod/modules.order \
	  modules.order Module.symvers .*.cmd kmod/Module.symvers

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# libFuzzer harnesses (tests/fuzz/, see tests/fuzz/README): the library is
# rebuilt with clang and sanitizers into $(B)/fuzz/, separate from the
# normal objects.  `make fuzz` runs each target FUZZ_SECONDS; `check-fuzz`
# runs each briefly and replays tests/fuzz/regressions/TARGET/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_CHECK_SECONDS ?= 15
# UBSan findings stop the run like ASan's (else they are only printed
# and the fuzzer goes on: check-fuzz would pass over them).
FUZZ_CFLAGS  := -g -O1 -std=gnu11 -D_GNU_SOURCE $(INCLUDES) -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(B)/fuzz/%.o)
.PHONY: fuzz check-fuzz fuzz-build
$(B)/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
$(B)/fuzz/librepvol.a: $(FUZZ_LIB_OBJ)
	$(AR) rcs $@ $^
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(B)/fuzz/librepvol.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(B)/fuzz/librepvol.a $(ALL_LDLIBS)
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	set -e; for t in $(FUZZ_TARGETS); do mkdir -p $(B)/fuzz/work/$$t; \
	  $(B)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(B)/fuzz/work/$$t tests/fuzz/corpus/$$t; done
check-fuzz: fuzz-build
	set -e; for t in $(FUZZ_TARGETS); do \
	  r=$$(ls tests/fuzz/regressions/$$t/* 2>/dev/null || true); \
	  if [ -n "$$r" ]; then $(B)/fuzz/fuzz_$$t $$r; fi; \
	  mkdir -p $(B)/fuzz/work/$$t; \
	  $(B)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_CHECK_SECONDS) $(B)/fuzz/work/$$t tests/fuzz/corpus/$$t; done
-include $(FUZZ_LIB_OBJ:.o=.d)
