# shmkit — GNU Make build. See README.md: `make demo` runs the demo, `make check` runs
# every test (installing missing Debian packages first when run as root).

VERSION   := 0.1.0
SOVERSION := 0

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DESTDIR    ?=

# SAN selects an instrumented build in its own directory: asan (ASan+UBSan) or tsan.
SAN ?=
ifeq ($(SAN),)
O        := build
SANFLAGS :=
else ifeq ($(SAN),asan)
O        := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(SAN),tsan)
O        := build-tsan
SANFLAGS := -fsanitize=thread
else
$(error SAN must be empty, asan or tsan)
endif

CC     ?= cc
CFLAGS ?= -O2 -g
WARN   := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
          -Wmissing-prototypes -Wno-missing-field-initializers
# The library, the tests that need internals and the fuzz targets see src/; the CLI and the
# benchmarks only the public headers, as any program using libshmkit does.
CPPFLAGS_PUB := -Iinclude -D_GNU_SOURCE
CPPFLAGS_ALL := $(CPPFLAGS_PUB) -Isrc
CFLAGS_ALL   := -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP
LDLIBS_ALL   := -lpthread

LIB_SRCS   := $(wildcard src/*.c)
LIB_OBJS   := $(LIB_SRCS:src/%.c=$(O)/lib/%.o)
CLI_SRCS   := $(wildcard cli/*.c)
CLI_OBJS   := $(CLI_SRCS:cli/%.c=$(O)/cli/%.o)
TEST_COMMON_SRCS := tests/testutil.c
TEST_SRCS  := $(filter-out $(TEST_COMMON_SRCS),$(wildcard tests/*.c))
TEST_BINS  := $(TEST_SRCS:tests/%.c=$(O)/tests/%)
TEST_COMMON_OBJS := $(TEST_COMMON_SRCS:tests/%.c=$(O)/tests/%.o)
# The fuzz targets (tests/fuzz/X_fuzz.c), replayed over their committed corpora
# (tests/fuzz/corpus/X), run with the test suites.
FUZZ_TARGETS := ring segment table queue pubsub
TEST_BINS  += $(FUZZ_TARGETS:%=$(O)/fuzz/%_replay)
# The sanitizer runs skip the suite that checks only files (man pages against nm -D, groff):
# the build flavour changes nothing it looks at, and CI time is bounded (15 min).
SAN_TEST_BINS := $(filter-out $(O)/tests/manpages,$(TEST_BINS))
# bench/lib/*.c hold the measuring code (no main): they are linked into every bench/X driver
# and into the CLI, so `shmkit bench` and `make bench` share it.
BENCH_COMMON_SRCS := $(wildcard bench/lib/*.c)
BENCH_SRCS := $(filter-out $(BENCH_COMMON_SRCS),$(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(O)/bench/%)
BENCH_COMMON_OBJS := $(BENCH_COMMON_SRCS:bench/%.c=$(O)/bench/%.o)
EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(O)/examples/%)

SONAME   := libshmkit.so.$(SOVERSION)
SHLIB    := $(O)/libshmkit.so.$(VERSION)
STATICLIB := $(O)/libshmkit.a
CLI      := $(O)/shmkit

# `shmkit top` is full-screen with ncurses when its headers are installed (libncurses-dev,
# installed by `make deps` when run as root), plain text otherwise.
CURSES_LIBS := $(shell pkg-config --libs ncurses 2>/dev/null)
CURSES_DEF  := $(if $(CURSES_LIBS),-DSHMKIT_HAVE_CURSES)
# The bridge (cli/bridge.c) talks NATS through libnats when pkg-config finds it; without it
# the command is a stub that says how to get it.
NATS_LIBS  := $(shell pkg-config --libs libnats 2>/dev/null)
NATS_FLAGS := $(if $(NATS_LIBS),-DSHMKIT_HAVE_NATS $(shell pkg-config --cflags libnats))
# bench/bridge (shmkit bridge against plain libnats) only with libnats.
BENCH_BINS := $(if $(NATS_LIBS),$(BENCH_BINS),$(filter-out $(O)/bench/bridge,$(BENCH_BINS)))

CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

.PHONY: bench-peers
.PHONY: all lib cli tests benches examples check test-run stress demo bench install uninstall \
        check-install deps deps-build clean fuzz fuzz-merge fuzz-seeds man-stubs python \
        python-check install-python

all: lib cli examples

lib: $(SHLIB) $(STATICLIB)
cli: $(CLI)
tests: $(TEST_BINS)
benches: $(BENCH_BINS)
examples: $(EXAMPLE_BINS)

$(O)/lib/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) -DSHMKIT_BUILDING $(CFLAGS_ALL) -fPIC -fvisibility=hidden -fno-semantic-interposition \
	  -c $< -o $@

$(SHLIB): $(LIB_OBJS) src/libshmkit.map
	$(CC) $(CFLAGS_ALL) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/libshmkit.map \
	  -Wl,-z,defs -o $@ $(LIB_OBJS) $(LDLIBS_ALL)
	ln -sf libshmkit.so.$(VERSION) $(O)/$(SONAME)
	ln -sf $(SONAME) $(O)/libshmkit.so

$(STATICLIB): $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

# The CLI, tests, benchmarks and examples link the static library, so they run from the
# build tree without LD_LIBRARY_PATH. The CLI, benchmarks and examples see only the public
# headers (CPPFLAGS_PUB: no -Isrc); the tests may include src/ internals (the ring and
# layout unit tests need them).
$(O)/cli/%.o: cli/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_PUB) -Icli -Ibench $(CFLAGS_ALL) -c $< -o $@

$(O)/cli/top.o: cli/top.c Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_PUB) $(CURSES_DEF) -Icli -Ibench $(CFLAGS_ALL) -c $< -o $@

$(filter $(O)/cli/bridge%,$(CLI_OBJS)): $(O)/cli/%.o: cli/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_PUB) -Icli $(NATS_FLAGS) $(CFLAGS_ALL) -c $< -o $@

$(CLI): $(CLI_OBJS) $(BENCH_COMMON_OBJS) $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJS) $(BENCH_COMMON_OBJS) $(STATICLIB) $(NATS_LIBS) $(LDLIBS_ALL) -lm \
	  $(CURSES_LIBS)

$(O)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) -Itests $(CHECK_CFLAGS) $(CFLAGS_ALL) -c $< -o $@

$(O)/tests/%: $(O)/tests/%.o $(TEST_COMMON_OBJS) $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(TEST_COMMON_OBJS) $(STATICLIB) $(CHECK_LIBS) $(LDLIBS_ALL)

$(O)/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c $< -o $@

.PRECIOUS: $(O)/fuzz/%.o
$(O)/fuzz/%_replay: $(O)/fuzz/%_fuzz.o $(O)/fuzz/replay.o $(O)/fuzz/image.o $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(O)/fuzz/make-seeds: $(O)/fuzz/make-seeds.o $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(O)/bench/%.o: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_PUB) -Ibench $(CFLAGS_ALL) -c $< -o $@

# bench/lib is self-contained: its files include each other and the public headers only.
$(O)/bench/lib/%.o: bench/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_PUB) $(CFLAGS_ALL) -c $< -o $@

$(O)/bench/bridge: $(O)/bench/bridge.o $(BENCH_COMMON_OBJS) $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BENCH_COMMON_OBJS) $(STATICLIB) $(NATS_LIBS) $(LDLIBS_ALL) -lm

$(O)/bench/%: $(O)/bench/%.o $(BENCH_COMMON_OBJS) $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BENCH_COMMON_OBJS) $(STATICLIB) $(LDLIBS_ALL) -lm

$(O)/examples/%: examples/%.c $(STATICLIB)
	@mkdir -p $(@D)
	$(CC) -Iinclude $(CFLAGS_ALL) -D_GNU_SOURCE -o $@ $< $(STATICLIB) $(LDLIBS_ALL)

# --- packages ---------------------------------------------------------------------------
BUILD_PKGS := gcc make libc6-dev pkg-config
# nats-server and libnats-dev: the bridge and its tests (optional for a plain build);
# groff-base and binutils: the man page check (groff -ww, nm -D); openssl and
# python3-cryptography: the bridge test's TLS certificates and NATS credentials.
# python3-dev, -setuptools, -numpy, -pytest: the Python binding (python/), built and
# tested for Debian's interpreter.
PY_PKGS    := python3-dev python3-setuptools python3-numpy python3-pytest
CHECK_PKGS := $(BUILD_PKGS) check libsubunit-dev nats-server libnats-dev groff-base binutils \
              openssl python3-cryptography $(PY_PKGS)
# Optional: full-screen `shmkit top` (ncurses) and its terminal test (tmux). Installed when
# run as root; without them top prints plain text and the tmux test is skipped.
OPT_PKGS   := libncurses-dev tmux

deps-build:
	@tools/deps.sh $(BUILD_PKGS)
	@tools/deps.sh --optional $(OPT_PKGS)
deps:
	@tools/deps.sh $(CHECK_PKGS)
	@tools/deps.sh --optional $(OPT_PKGS)

# --- the two commands -------------------------------------------------------------------
demo: deps-build
	@$(MAKE) --no-print-directory -s all
	@$(CLI) demo

# make check: plain build, then ASan+UBSan, then TSan, then a consumer built against the
# installed library through pkg-config. Each suite runs every test in its own forked
# process with a timeout (Check), so a crash or hang fails by name.
check: deps
	@$(MAKE) --no-print-directory -j2 all tests
	@tools/run-tests.sh $(O) $(TEST_BINS)
	@$(MAKE) --no-print-directory python-check
	@$(MAKE) --no-print-directory -j2 SAN=asan all tests
	@tools/run-tests.sh build-asan $(SAN_TEST_BINS:$(O)/%=build-asan/%)
	@$(MAKE) --no-print-directory -j2 SAN=tsan all tests
	@tools/run-tests.sh build-tsan $(SAN_TEST_BINS:$(O)/%=build-tsan/%)
	@$(MAKE) --no-print-directory check-install

# Runs the suites of the current build only (e.g. make test-run SAN=asan).
test-run: tests all
	@tools/run-tests.sh $(O) $(TEST_BINS)

# The opt-in stress tier: the same suites with SHMKIT_STRESS=1 (longer, more repetitions).
stress: deps
	@$(MAKE) --no-print-directory -j2 all tests
	@SHMKIT_STRESS=1 tools/run-tests.sh $(O) $(TEST_BINS)

check-install: lib cli
	@tools/check-install.sh

bench: deps-build
	@tools/deps.sh $(PY_PKGS)
	@$(MAKE) --no-print-directory -j2 all benches python
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done
	@echo "== python -m shmkit.bench"
	@$(PY_ENV) $(PY) -m shmkit.bench

# --- the Python binding (python/) ---------------------------------------------------------
# make python builds the extension against this tree (the headers in include/, the shared
# library in $(O)/, found at run time through an rpath) into $(O)/python/lib; make
# python-check runs its pytest suite there (real processes, real shared memory; the CLI is
# the C side of the interop tests). Debian's interpreter, whatever python3 comes first in
# PATH. pip install ./python builds the same module against an installed libshmkit;
# make install-python does that for PREFIX and DESTDIR.
PY     := /usr/bin/python3
PY_LIB := $(O)/python/lib
PY_ENV := PYTHONPATH=$(CURDIR)/$(PY_LIB) SHMKIT_CLI=$(CURDIR)/$(CLI) PYTHONDONTWRITEBYTECODE=1

python: $(SHLIB)
	@mkdir -p $(O)/python
	@cd python && SHMKIT_INCLUDE=$(CURDIR)/include SHMKIT_LIBDIR=$(CURDIR)/$(O) \
	  $(PY) setup.py -q build --build-base $(CURDIR)/$(O)/python --build-lib $(CURDIR)/$(PY_LIB) \
	  >$(CURDIR)/$(O)/python/build.log 2>&1 || \
	  { cat $(CURDIR)/$(O)/python/build.log; echo "make python: the extension did not build"; exit 1; }

python-check: python cli
	@echo "== python/tests (pytest)"
	@$(PY_ENV) $(PY) -m pytest -q -p no:cacheprovider python/tests

# Where install-python puts the package: Debian's site directory under PREFIX
# (/usr/local/lib/python3.X/dist-packages for the default PREFIX, on Debian's sys.path).
PYTHONDIR ?= $(PREFIX)/lib/python$(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)/dist-packages

install-python:
	$(PY) -m pip install -q --no-build-isolation --no-deps --upgrade \
	  --target $(DESTDIR)$(PYTHONDIR) ./python

# make bench-peers: other shared-memory libraries (bench/peers/) in the same format, with the
# floor and shmkit measured in the same run. Optional dependencies, installed here when
# missing; never part of `make` or `make check`. PEERS_ARGS go to each (e.g. --quick).
PEER_PKGS    := iceoryx libiceoryx-binding-c-dev libboost-dev g++
PEER_OBJS     = $(BENCH_COMMON_OBJS) $(O)/bench/peers/peer.o
ICEORYX_INC   = $(firstword $(wildcard /usr/include/iceoryx/v*))
CXX          ?= g++
PEERS_ARGS   ?=

$(O)/bench/peers/iceoryx: bench/peers/iceoryx.c $(PEER_OBJS) $(STATICLIB)
	$(CC) $(CPPFLAGS_PUB) -Ibench -Ibench/peers -isystem $(ICEORYX_INC) $(CFLAGS_ALL) -o $@ $< \
	  $(PEER_OBJS) $(STATICLIB) -liceoryx_binding_c $(LDLIBS_ALL) -lm

$(O)/bench/peers/boost: bench/peers/boost.cpp $(PEER_OBJS) $(STATICLIB)
	$(CXX) -std=c++17 -Iinclude -Ibench -Ibench/peers -Wall -Wextra -Werror $(CFLAGS) $(SANFLAGS) \
	  -o $@ $< $(PEER_OBJS) $(STATICLIB) -lrt $(LDLIBS_ALL) -lm

bench-peers: deps-build
	@tools/deps.sh $(PEER_PKGS)
	@$(MAKE) --no-print-directory -j2 lib $(O)/bench/peers/iceoryx $(O)/bench/peers/boost
	@bench/peers/run.sh $(O) $(PEERS_ARGS)

# --- fuzzing ----------------------------------------------------------------------------
# make fuzz: libFuzzer (clang, ASan+UBSan) on every parser of shared memory for
# FUZZ_SECONDS each (FUZZ_TARGETS=table for one), starting from the committed corpus:
#   ring     the ring's record parser (src/ring.c)
#   segment  the segment header, opened from a scribbled memfd
#   table    the table's control block, chains and entries: open, get, iterate, verify
#   queue    the work queue's slots: open, recv/peek, send, recover
#   pubsub   the pub/sub ring: a subscriber reading it all, then a publisher
# New inputs land in build-fuzz/new/X (make fuzz-merge folds the interesting ones into
# tests/fuzz/corpus/X). make fuzz-seeds rewrites the seed inputs from real objects.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
# SHMKIT__TABLE_WAIT_DIV: the table's reader budget (20 ms) and lock timeout (2 s) / 1000.
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
              -DSHMKIT__TABLE_WAIT_DIV=1000
fuzz:
	@tools/deps.sh clang libclang-rt-14-dev
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/new/$$t && \
	  if [ $$t = ring ]; then srcs="src/ring.c"; else srcs="tests/fuzz/image.c $(LIB_SRCS)"; fi && \
	  echo "== fuzz $$t" && \
	  $(FUZZ_CC) $(FUZZ_FLAGS) -o build-fuzz/$${t}_fuzz tests/fuzz/$${t}_fuzz.c $$srcs -lpthread && \
	  build-fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
	    build-fuzz/new/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

fuzz-merge:
	@for t in $(FUZZ_TARGETS); do \
	  build-fuzz/$${t}_fuzz -merge=1 tests/fuzz/corpus/$$t build-fuzz/new/$$t || exit 1; done

fuzz-seeds: $(FUZZ_TARGETS:%=$(O)/fuzz/%_replay) $(O)/fuzz/make-seeds
	@mkdir -p $(FUZZ_TARGETS:%=tests/fuzz/corpus/%)
	$(O)/fuzz/make-seeds tests/fuzz/corpus/ring
	@for t in $(filter-out ring,$(FUZZ_TARGETS)); do \
	  $(O)/fuzz/$${t}_replay --seeds tests/fuzz/corpus/$$t || exit 1; done

# --- man pages --------------------------------------------------------------------------
# make man-stubs: a one-line page (.so to its family page) for every exported function that
# has none yet; tests/manpages.c fails until every function has a page its family names.
man-stubs: lib
	@tools/man-stubs.sh $(O)/libshmkit.so

# The man page test reads the exported names from the shared library.
$(O)/tests/manpages: | $(SHLIB)

# --- ABI ------------------------------------------------------------------------------------
# tests/abi.c runs a program built against the SHMKIT_0.1 node against this tree's library:
# tests/abi/v01.c declares the 0.1 API itself and links against a stub exporting only that
# node (tools/abi-stub.sh), so its calls bind to name@SHMKIT_0.1 as a 0.1 binary's do.
ABI_DIR := $(O)/abi
$(ABI_DIR)/libshmkit.so.0: src/libshmkit.map tools/abi-stub.sh
	CC="$(CC)" tools/abi-stub.sh src/libshmkit.map SHMKIT_0.1 $(ABI_DIR)

$(ABI_DIR)/v01: tests/abi/v01.c $(ABI_DIR)/libshmkit.so.0
	$(CC) -D_GNU_SOURCE $(CFLAGS_ALL) -o $@ $< -L$(ABI_DIR) -lshmkit $(LDLIBS_ALL)

$(O)/tests/abi: | $(ABI_DIR)/v01 $(SHLIB)

# --- install ----------------------------------------------------------------------------
# Rewritten on every install: it holds PREFIX, which may differ from the last build's.
.PHONY: $(O)/shmkit.pc
$(O)/shmkit.pc: shmkit.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

install: lib cli $(O)/shmkit.pc
	install -d $(DESTDIR)$(INCLUDEDIR)/shmkit $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/shmkit.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/shmkit/*.h $(DESTDIR)$(INCLUDEDIR)/shmkit/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libshmkit.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmkit.so
	install -m 644 $(STATICLIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(O)/shmkit.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	install -m 644 $(wildcard man/man1/*.1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(wildcard man/man7/*.7) $(DESTDIR)$(MANDIR)/man7/
	$(if $(wildcard man/man3/*.3),install -m 644 $(wildcard man/man3/*.3) $(DESTDIR)$(MANDIR)/man3/)
	install -d $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 completion/shmkit.bash $(DESTDIR)$(BASHCOMPDIR)/shmkit
	@# The stubs say `.so man/man3/X.3` so that man -l resolves them from the source tree;
	@# installed, a .so path is relative to the man directory.
	sed -i '1s|^\.so man/man3/|.so man3/|' $(DESTDIR)$(MANDIR)/man3/shmkit*.3
	@# A real install as root: refresh the dynamic linker's cache, and say so when LIBDIR is
	@# not among the directories it searches (see README, "Using the installed library").
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
	  ldconfig; \
	  ldconfig -p | grep -q '$(LIBDIR)/$(SONAME)' || \
	    echo "shmkit: $(LIBDIR) is not searched by the dynamic linker: add it to /etc/ld.so.conf.d/ and run ldconfig, or set LD_LIBRARY_PATH"; \
	fi

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/shmkit $(DESTDIR)$(INCLUDEDIR)/shmkit.h
	rm -f $(DESTDIR)$(LIBDIR)/libshmkit.* $(DESTDIR)$(LIBDIR)/pkgconfig/shmkit.pc
	rm -f $(DESTDIR)$(BINDIR)/shmkit $(DESTDIR)$(MANDIR)/man1/shmkit*.1 $(DESTDIR)$(MANDIR)/man3/shmkit*.3 \
	  $(DESTDIR)$(MANDIR)/man7/shmkit*.7
	rm -f $(DESTDIR)$(BASHCOMPDIR)/shmkit

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(wildcard $(O)/*/*.d $(O)/*/*/*.d)
