# SPDX-License-Identifier: MIT
# altgrad — build, test, bench, install.
#
#   make            library (static + shared) and the altgrad CLI
#   make run        the main job (installs missing Debian packages as root)
#   make test       every test: C suite, sanitizers, install/pkg-config, Python
#   make bench      throughput figures as ratios to memcpy
#   make test-aarch64  the library and the C test suite cross-built for aarch64,
#                   run under qemu-aarch64 (not part of `make test`)
#   make install    PREFIX=/usr/local DESTDIR=
#
# Everything is built under $(BUILD) (default build/); `make BUILD=dir` keeps
# builds with other flags apart (the sanitizer targets use build/san).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DESTDIR ?=
BUILD ?= build
PYTHON ?= /usr/bin/python3

CC ?= cc
# the compiler of the build-time registry generator (runs on the build host:
# differs from CC when cross-compiling, see test-aarch64)
HOSTCC ?= $(CC)
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wcast-align \
        -Wundef -Wdouble-promotion -Werror
OMP := -fopenmp
BASE_CFLAGS := -std=c11 $(WARN) $(OMP) -Iinclude -I$(BUILD)
LIB_CFLAGS := $(BASE_CFLAGS) -fPIC -fvisibility=hidden -DAG_BUILDING_LIBRARY
LDLIBS_LIB := -lm

VERSION_MAJOR := $(shell sed -n 's/^\#define ALTGRAD_VERSION_MAJOR \([0-9]*\).*/\1/p' include/altgrad.h)
VERSION_MINOR := $(shell sed -n 's/^\#define ALTGRAD_VERSION_MINOR \([0-9]*\).*/\1/p' include/altgrad.h)
VERSION_PATCH := $(shell sed -n 's/^\#define ALTGRAD_VERSION_PATCH \([0-9]*\).*/\1/p' include/altgrad.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

include sources.mk
LIB_SRC := $(AG_LIB_SRC)
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
LIB_HDR := include/altgrad.h $(wildcard src/*.h)
STATIC := $(BUILD)/libaltgrad.a
SHARED := $(BUILD)/libaltgrad.so.$(VERSION)
SONAME := libaltgrad.so.$(VERSION_MAJOR)

# The CLI: cli/*.c, plus the training bench (train/*.c) it hosts.
CLI_SRC := $(wildcard cli/*.c) $(wildcard train/*.c)
CLI_HDR := $(wildcard cli/*.h) $(wildcard train/*.h)
CLI_LIBS := -lm -lopenblas -lz
CLI := $(BUILD)/altgrad

# Tests: each tests/test_*.c is one binary, linked with the independent
# reference (tests/ref/*.c) and the static library.
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
REF_SRC := $(wildcard tests/ref/*.c)
TEST_LIBS := -lm

BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all lib cli deps run tour test gpt-step-bench check-c test-train-torch asan ubsan sanitize test-install \
        test-python test-long bench python install uninstall clean fuzz \
        test-aarch64 check-c-only

all: lib cli

lib: $(STATIC) $(SHARED)

cli: $(CLI)

# --- library ---------------------------------------------------------------
$(BUILD)/gen_registry: $(AG_GEN_SRC) $(LIB_HDR) sources.mk
	@mkdir -p $(@D)
	$(HOSTCC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $(AG_GEN_SRC) -lm

$(BUILD)/ag_registry.inc: $(BUILD)/gen_registry
	$(BUILD)/gen_registry > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/ag_registry.o: $(BUILD)/ag_registry.inc src/ag_registry_defs.h

# the optimizer loops take square roots of values >= 0: without errno the
# compiler vectorizes them (sqrtf is exact, so the bits do not change)
$(BUILD)/obj/ag_optim.o: LIB_CFLAGS += -fno-math-errno

$(BUILD)/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) $(CFLAGS) -c -o $@ $<

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) $(CFLAGS) $(OMP) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDFLAGS) $(LDLIBS_LIB)
	ln -sf libaltgrad.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libaltgrad.so

# --- CLI ---------------------------------------------------------------------
$(CLI): $(CLI_SRC) $(CLI_HDR) $(STATIC) include/altgrad.h
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $(CLI_SRC) $(STATIC) $(LDFLAGS) $(CLI_LIBS)

# --- dependencies and the main job -------------------------------------------
deps:
	@sh scripts/install-deps.sh

run: deps all
	$(CLI) compare

# --- tests -------------------------------------------------------------------
$(BUILD)/tests/%: tests/%.c $(REF_SRC) $(wildcard tests/*.h) $(wildcard tests/ref/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -Itests -o $@ $< $(REF_SRC) $(STATIC) $(LDFLAGS) $(TEST_LIBS)

# Training-bench tests: tests/train/test_*.c, each linked with the CLI's
# sources (train/*.c and cli/*.c, the latter without its main()) and the
# static library, OpenBLAS and zlib.
TRAIN_TEST_SRC := $(wildcard tests/train/test_*.c)
TRAIN_TEST_BIN := $(patsubst tests/train/%.c,$(BUILD)/tests/train/%,$(TRAIN_TEST_SRC))
$(BUILD)/tests/train/%: tests/train/%.c $(CLI_SRC) $(CLI_HDR) $(wildcard tests/*.h) $(wildcard tests/train/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -DAG_CLI_NO_MAIN -Itests -Itrain -o $@ $< $(CLI_SRC) $(STATIC) $(LDFLAGS) $(CLI_LIBS)

# The bench vs PyTorch once more after `make python`: check-c runs before the
# Python package exists on a fresh clone, so there its quantized comparison
# is reported as skipped; this run has the package.
test-train-torch: python $(BUILD)/tests/train/test_train_torch $(BUILD)/tests/train/test_gpt_torch
	AG_REQUIRE_TORCH=1 $(BUILD)/tests/train/test_train_torch
	AG_REQUIRE_TORCH=1 $(BUILD)/tests/train/test_gpt_torch

# Run every C test binary; the last line sums them up.
check-c: $(TEST_BIN) $(TRAIN_TEST_BIN) $(CLI)
	@sh tests/run_c_tests.sh $(BUILD) $(TEST_BIN) $(TRAIN_TEST_BIN)
	@sh tests/test_cli.sh $(BUILD)

# The C test binaries alone (no CLI, no training bench: those need OpenBLAS
# and zlib for the target).
check-c-only: $(TEST_BIN)
	@sh tests/run_c_tests.sh $(BUILD) $(TEST_BIN)

# aarch64: the library (portable kernel body: no x86 code is compiled) and
# every tests/test_*.c, cross-built with Debian's aarch64-linux-gnu-gcc and
# run under qemu-aarch64 (user mode; packages gcc-aarch64-linux-gnu and
# qemu-user, see scripts/install-deps.sh). Correctness only: emulated
# timings say nothing about aarch64 speed.
AARCH64_CC ?= aarch64-linux-gnu-gcc
QEMU_AARCH64 ?= qemu-aarch64
AARCH64_SYSROOT ?= /usr/aarch64-linux-gnu
test-aarch64:
	@command -v $(AARCH64_CC) >/dev/null 2>&1 && command -v $(QEMU_AARCH64) >/dev/null 2>&1 || \
	  { echo "test-aarch64: needs $(AARCH64_CC) and $(QEMU_AARCH64) (sh scripts/install-deps.sh aarch64)"; exit 1; }
	AG_TEST_WRAP="$(QEMU_AARCH64) -L $(AARCH64_SYSROOT)" \
	  $(MAKE) BUILD=build/aarch64 CC=$(AARCH64_CC) HOSTCC=$(CC) check-c-only

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) BUILD=build/asan CFLAGS="$(SAN_FLAGS) -fsanitize=address" LDFLAGS="-fsanitize=address" check-c
ubsan:
	$(MAKE) BUILD=build/ubsan CFLAGS="$(SAN_FLAGS) -fsanitize=undefined -fsanitize=float-cast-overflow" LDFLAGS="-fsanitize=undefined" check-c
# Both sanitizers in one build (what `make test` runs).
sanitize:
	$(MAKE) BUILD=build/san CFLAGS="$(SAN_FLAGS) -fsanitize=address,undefined -fsanitize=float-cast-overflow" LDFLAGS="-fsanitize=address,undefined" check-c

test-install: all
	@AG_BUILD=$(BUILD) sh tests/test_install.sh

test-python: python
	@sh tests/run_python_tests.sh $(PYTHON)

# The Python extension is built before the C suite, so that the bench's
# PyTorch comparisons in check-c run against this tree's extension (never a
# stale in-place one) and may not skip.
test: deps
	$(MAKE) all
	$(MAKE) python
	AG_REQUIRE_TORCH=1 $(MAKE) check-c
	$(MAKE) sanitize
	$(MAKE) test-install
	$(MAKE) test-python

# All 2^32 float32 inputs of six formats against the reference (slow: tens
# of minutes per core; OpenMP threads help).
test-long: $(BUILD)/tests/test_transfer $(BUILD)/tests/test_kernels
	AG_TEST_LONG=1 $(BUILD)/tests/test_kernels
	AG_TEST_LONG=1 $(BUILD)/tests/test_transfer

# --- fuzzing (tests/fuzz) ------------------------------------------------------
# `make fuzz`: the standalone replay drivers (any CC) run over the seed
# corpus, then, when clang is installed, the libFuzzer binaries
# $(BUILD)/fuzz/fuzz_* (clang -fsanitize=fuzzer,address,undefined). check-c
# needs neither: tests/test_fuzz.c replays the corpus with the normal build.
CLANG ?= clang
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRC))
$(BUILD)/tests/test_fuzz: $(FUZZ_SRC) tests/fuzz/fuzz_replay.h
$(BUILD)/fuzz/%_replay: tests/fuzz/%.c tests/fuzz/fuzz_replay.h $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) -lm

fuzz: $(FUZZ_REPLAY) $(BUILD)/ag_registry.inc
	@for t in $(FUZZ_SRC); do n=$$(basename $$t .c); \
	  $(BUILD)/fuzz/$${n}_replay tests/fuzz/corpus/$${n#fuzz_} || exit 1; done
	@if command -v $(CLANG) >/dev/null 2>&1; then \
	  for t in $(FUZZ_SRC); do n=$$(basename $$t .c); \
	    echo "$(CLANG) -fsanitize=fuzzer,address,undefined -o $(BUILD)/fuzz/$$n $$t src/*.c"; \
	    $(CLANG) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -DAG_LIBFUZZER \
	      -Iinclude -I$(BUILD) -o $(BUILD)/fuzz/$$n $$t $(LIB_SRC) -lm || exit 1; done; \
	  echo "libFuzzer: $(BUILD)/fuzz/fuzz_spec tests/fuzz/corpus/spec -max_total_time=60"; \
	else echo "fuzz: $(CLANG) not found: built and ran the replay drivers only"; fi

# --- bench -------------------------------------------------------------------
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< $(STATIC) $(LDFLAGS) -lm

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do $$b || exit 1; done

# The C GPT's FP8 step against its own float32 step, in one process
# (bench/gpt_step.c; the bench's internal interface, linked as its tests).
$(BUILD)/bench/gpt_step: bench/gpt_step.c $(CLI_SRC) $(CLI_HDR) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -DAG_CLI_NO_MAIN -Itrain -o $@ $< $(CLI_SRC) $(STATIC) $(LDFLAGS) $(CLI_LIBS)

gpt-step-bench: $(BUILD)/bench/gpt_step
	$(BUILD)/bench/gpt_step

# --- python ------------------------------------------------------------------
python: $(STATIC)
	@sh python/build.sh $(PYTHON) $(BUILD)

# --- install -----------------------------------------------------------------
# altgrad.pc is written at install time from the PREFIX of that install, so
# one build tree can be installed under several prefixes.
install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/altgrad.h $(DESTDIR)$(INCLUDEDIR)/altgrad.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libaltgrad.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libaltgrad.so.$(VERSION)
	ln -sf libaltgrad.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libaltgrad.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    altgrad.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/altgrad.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/altgrad.pc
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/altgrad

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/altgrad.h $(DESTDIR)$(LIBDIR)/libaltgrad.a \
	      $(DESTDIR)$(LIBDIR)/libaltgrad.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libaltgrad.so $(DESTDIR)$(LIBDIR)/pkgconfig/altgrad.pc \
	      $(DESTDIR)$(BINDIR)/altgrad

clean:
	rm -rf build python/build python/altgrad/*.so
