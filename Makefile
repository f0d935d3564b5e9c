# semdex - semantic search over scientific papers.
#
#   make run     set up everything (packages, model, sample data, build) and serve
#   make test    set up what tests need, build, run every test suite
#   make         build build/semdex
#   make module  build build/semdex.so, the Redis module (docs/redis-module.md)
#   make check   build and run the unit tests only (T=substring filters them)
#   make cluster start a local Redis Cluster + gateways + HAProxy (docs/cluster.md)
#   make monitor start Prometheus against the local semdex (docs/operations.md)
#   make asan    build and run the unit tests under AddressSanitizer + UBSan
#                (and build build/asan/semdex, which tests/run-all also runs)
#   make tsan    build and run the concurrency tests under ThreadSanitizer
#   make bench   build the benchmarks (see bench/README.md)
#
# Libraries are found with pkg-config by scripts/configure; its result is
# cached in build/config.mk (delete it to re-run). See docs/development.md.

.DEFAULT_GOAL := all
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

BUILD   ?= build
# Quiet by default; `make V=1` shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif
CC      ?= cc
# Compiler for the sanitizer build: clang when present, so that every `make
# test` compiles the code with both gcc (default cc) and clang.
SAN_CC  ?= $(shell command -v clang >/dev/null 2>&1 && echo clang || echo $(CC))
JOBS    ?= $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
UNAME_M := $(shell uname -m)
UNAME_S := $(shell uname -s)
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CSTD     := -std=c17 -D_GNU_SOURCE -D_DARWIN_C_SOURCE
OPT      ?= -O2 -g
BASE_CFLAGS = $(CSTD) $(WARN) $(OPT) -pthread -fno-strict-aliasing -MMD -MP \
              -DSX_VERSION='"$(VERSION)"' $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL  = $(PKG_LIBS) -lm -lpthread $(LDLIBS)

# Per-file instruction sets: a kernel file named *_avx2.c, *_avx512.c or
# *_neon.c is compiled for that instruction set only; it is called only after
# run-time detection says the CPU has it (see src/index/kernels.c).
ifeq ($(filter x86_64 amd64,$(UNAME_M)),)
SIMD_AVX2   :=
SIMD_AVX512 :=
else
SIMD_AVX2   := -mavx2 -mfma -mf16c
SIMD_AVX512 := -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mavx512bf16 -mfma -mf16c
endif
ifneq ($(filter arm64 aarch64,$(UNAME_M)),)
SIMD_NEON := -march=armv8.2-a+dotprod+fp16
else
SIMD_NEON :=
endif

LIB_DIRS := common text model index shard keyword corpus storage server cluster
# src/cluster/module.c is the Redis module (semdex.so), built on its own: it
# must not be linked into build/semdex or the unit tests.
MODULE_SRC := src/cluster/module.c
LIB_SRC  := $(filter-out $(MODULE_SRC),$(foreach d,$(LIB_DIRS),$(wildcard src/$(d)/*.c)))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := tests/runner.c $(wildcard tests/test-*.c)

# obj(DIR, SOURCES): object paths for SOURCES under build directory DIR.
obj = $(patsubst %.c,$(1)/obj/%.o,$(2))

# Files compiled into the binary (see scripts/bin2c.c).
ASSETS   := web/index.html web/docs.html web/openapi.json

# lib_obj(DIR): the library objects of one build variant (the compiled-in
# web assets hold no code to sanitize and are shared by every variant).
lib_obj = $(call obj,$(1),$(LIB_SRC)) $(BUILD)/obj/gen/assets.o

LIB_OBJ      := $(call lib_obj,$(BUILD))
CLI_OBJ      := $(call obj,$(BUILD),$(CLI_SRC))
TEST_OBJ     := $(call obj,$(BUILD),$(TEST_SRC))
ASAN_LIB_OBJ := $(call lib_obj,$(BUILD)/asan)
ASAN_TEST_OBJ:= $(call obj,$(BUILD)/asan,$(TEST_SRC))
TSAN_LIB_OBJ := $(call lib_obj,$(BUILD)/tsan)
TSAN_TEST_OBJ:= $(call obj,$(BUILD)/tsan,$(TEST_SRC))

# Goals that do not compile anything must work before the libraries are
# installed (make test installs them first), so only the others read config.
NOCONFIG_GOALS := run test cluster setup model data clean distclean help
ifneq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
include $(BUILD)/config.mk
endif

$(BUILD)/config.mk: scripts/configure
	@mkdir -p $(BUILD)
	@scripts/configure > $@.tmp && mv $@.tmp $@

.PHONY: testdata
.PHONY: module module-asan cluster monitor
.PHONY: all run test setup model data check asan unit-tests asan-tests test-inputs crashloop tsan tsan-tests fuzz fuzz-build cross-arm64 cross-arm64-test bench clean distclean help

all: $(BUILD)/semdex

# Objects are linked directly (no static archive: ar keys members by file
# name, and two modules may both have a kernels.c).
$(BUILD)/semdex: $(CLI_OBJ) $(LIB_OBJ)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(BASE_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(BASE_CFLAGS) $(SIMD) -c -o $@ $<

$(BUILD)/obj/%_avx2.o: SIMD = $(SIMD_AVX2)
$(BUILD)/obj/%_avx512.o: SIMD = $(SIMD_AVX512)
$(BUILD)/obj/%_neon.o: SIMD = $(SIMD_NEON)

$(BUILD)/tools/bin2c: scripts/bin2c.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -O1 -o $@ $<

# The page renders LaTeX with Debian's KaTeX (libjs-katex, fonts-katex), its
# files compiled in and served under /assets/katex/; without them (macOS) the
# page shows titles' LaTeX as written.
KATEX_DIR ?= /usr/share/javascript/katex
KATEX_FILES := $(wildcard $(KATEX_DIR)/katex.min.js $(KATEX_DIR)/katex.min.css \
                 $(KATEX_DIR)/contrib/auto-render.js $(KATEX_DIR)/fonts/*.woff2)
KATEX_ARGS := $(foreach f,$(KATEX_FILES),$(f)=katex/$(patsubst $(KATEX_DIR)/%,%,$(f)))
ifeq ($(KATEX_FILES),)
$(info note: no KaTeX in $(KATEX_DIR) (apt-get install libjs-katex): the page will show LaTeX as written)
endif

$(BUILD)/gen/assets.c: $(ASSETS) $(KATEX_FILES) $(BUILD)/tools/bin2c
	@mkdir -p $(dir $@)
	$(Q)$(BUILD)/tools/bin2c $(ASSETS) $(KATEX_ARGS) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/assets.o: $(BUILD)/gen/assets.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CSTD) -O1 -c -o $@ $<

# The Redis module (src/cluster/module.c, see docs/redis-module.md): the shard
# and what it calls, compiled position-independent under build/pic, with
# symbols hidden but the entry point so none clashes with redis-server's.
# redismodule.h comes from Debian's redis source package
# (scripts/get-redismodule-h); it is never committed.
MOD_DIRS := common index shard text keyword
MOD_SRC  := $(foreach d,$(MOD_DIRS),$(wildcard src/$(d)/*.c)) src/cluster/module.c
PIC_OBJ  := $(call obj,$(BUILD)/pic,$(MOD_SRC))
ASAN_PIC_OBJ := $(call obj,$(BUILD)/asan-pic,$(MOD_SRC))
MOD_FLAGS := -fPIC -fvisibility=hidden -isystem $(BUILD)/include

$(BUILD)/include/redismodule.h:
	scripts/get-redismodule-h $(BUILD)/include

$(BUILD)/pic/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-PIC  $<')
	$(Q)$(CC) $(BASE_CFLAGS) $(MOD_FLAGS) $(SIMD) -c -o $@ $<

$(BUILD)/pic/obj/%_avx2.o: SIMD = $(SIMD_AVX2)
$(BUILD)/pic/obj/%_avx512.o: SIMD = $(SIMD_AVX512)
$(BUILD)/pic/obj/%_neon.o: SIMD = $(SIMD_NEON)
$(BUILD)/pic/obj/src/cluster/module.o $(BUILD)/asan-pic/obj/src/cluster/module.o: $(BUILD)/include/redismodule.h

$(BUILD)/semdex.so: $(PIC_OBJ)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(BASE_CFLAGS) -shared -o $@ $^ -Wl,--as-needed $(LDLIBS_ALL)

# The same under AddressSanitizer + UBSan (clang): redis-server must run
# with LD_PRELOAD of the ASan runtime (tests/e2e/redis-module.sh does so
# when SEMDEX_MODULE=build/asan/semdex.so).
$(BUILD)/asan-pic/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-SAN  $<')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) -O1 $(SAN_FLAGS) $(MOD_FLAGS) $(SIMD) -c -o $@ $<

$(BUILD)/asan-pic/obj/%_avx2.o: SIMD = $(SIMD_AVX2)
$(BUILD)/asan-pic/obj/%_avx512.o: SIMD = $(SIMD_AVX512)
$(BUILD)/asan-pic/obj/%_neon.o: SIMD = $(SIMD_NEON)

$(BUILD)/asan/semdex.so: $(ASAN_PIC_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD-SAN  $@')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) $(SAN_FLAGS) -shared-libsan -shared -o $@ $^ $(LDLIBS_ALL)

module: $(BUILD)/semdex.so
module-asan: $(BUILD)/asan/semdex.so

# Unit tests: one binary, every test in tests/list.h.
$(BUILD)/tests/run: $(TEST_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(BASE_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# rc-tool drives the Redis Cluster client from tests/e2e/redis-cluster-client.sh.
$(BUILD)/tests/rc-tool: tests/rc-tool.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(BASE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

unit-tests: $(BUILD)/tests/run $(BUILD)/semdex $(BUILD)/tests/rc-tool

# What the unit tests read besides their fixtures: the model and
# build/testdata (embedded once with build/semdex), so that `make check` and
# `make asan` work on a fresh clone. Both scripts do nothing when it is there.
test-inputs: $(BUILD)/semdex
	scripts/get-model
	scripts/test-data

check: unit-tests test-inputs
	$(BUILD)/tests/run $(T)

# AddressSanitizer + UndefinedBehaviorSanitizer build of the unit tests.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
$(BUILD)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-SAN  $<')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) -O1 $(SAN_FLAGS) $(SIMD) -c -o $@ $<

$(BUILD)/asan/obj/%_avx2.o: SIMD = $(SIMD_AVX2)
# UBSan is left out of the AVX-512 kernels: clang 14 takes two minutes on
# kernels_avx512.c with ASan and UBSan together (4 s with either alone); the
# kernels' arithmetic is checked against the scalar twin in every build.
$(BUILD)/asan/obj/%_avx512.o: SIMD = $(SIMD_AVX512) -fno-sanitize=undefined
$(BUILD)/asan/obj/%_neon.o: SIMD = $(SIMD_NEON)

$(BUILD)/asan/tests/run: $(ASAN_TEST_OBJ) $(ASAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD-SAN  $@')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)

# The semdex binary under the same sanitizers: tests/run-all runs the server
# and CLI end-to-end scripts a second time against it (SEMDEX=build/asan/semdex).
ASAN_CLI_OBJ := $(call obj,$(BUILD)/asan,$(CLI_SRC))
$(BUILD)/asan/semdex: $(ASAN_CLI_OBJ) $(ASAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD-SAN  $@')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)

asan-tests: $(BUILD)/asan/tests/run $(BUILD)/asan/semdex

# Benchmarks: one binary per bench/<name>/ folder with C sources.
# Only they link the BLAS they are compared with.
BENCH_OBJ := $(call obj,$(BUILD),$(wildcard bench/encoder/*.c))
$(BENCH_OBJ): CFLAGS += $(BENCH_CFLAGS)
$(BUILD)/bench/encoder: $(BENCH_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $^ $(LDLIBS_ALL) $(BENCH_LIBS)

bench: $(BUILD)/bench/encoder

asan: asan-tests test-inputs
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/asan/tests/run $(T)

# ThreadSanitizer build of the unit tests; `make tsan` runs the tests whose
# name contains "concurrent" (the stress tests; the others are single-threaded
# or already covered by the ASan build).
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
$(BUILD)/tsan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-TSAN $<')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) -O1 $(TSAN_FLAGS) $(SIMD) -c -o $@ $<

$(BUILD)/tsan/obj/%_avx2.o: SIMD = $(SIMD_AVX2)
$(BUILD)/tsan/obj/%_avx512.o: SIMD = $(SIMD_AVX512)
$(BUILD)/tsan/obj/%_neon.o: SIMD = $(SIMD_NEON)

$(BUILD)/tsan/tests/run: $(TSAN_TEST_OBJ) $(TSAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD-TSAN $@')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) $(TSAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)

tsan-tests: $(BUILD)/tsan/tests/run

tsan: tsan-tests
	TSAN_OPTIONS=halt_on_error=1 $(BUILD)/tsan/tests/run $(or $(T),concurrent)

# libFuzzer targets (clang, ASan + UBSan), one per parser of outside bytes:
# tests/fuzz/<name>.c, seeds in tests/fuzz/corpus/<name>/, inputs that once
# crashed in tests/fuzz/crashes/<name>/. `make fuzz` builds them all and runs
# each for FUZZ_SECONDS (tests/fuzz/run; FUZZ_TARGETS picks some); `make
# test` runs each briefly (tests/e2e/fuzz-targets.sh). See docs/testing.md.
# The library is compiled with coverage instrumentation (fuzzer-no-link) so
# that the fuzzer sees which checks an input reaches.
FUZZ_SECONDS ?= 60
FUZZ_ALL     := shard_load keyword_load safetensors tokenizer routes jsonl npy store module search_args rcproto
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BINS    := $(addprefix $(BUILD)/fuzz/,$(FUZZ_ALL))
FUZZ_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_LIB_OBJ := $(call lib_obj,$(BUILD)/fuzz)
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-FUZZ $<')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) -O1 $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(SIMD) -c -o $@ $<

$(BUILD)/fuzz/obj/%_avx2.o: SIMD = $(SIMD_AVX2)
$(BUILD)/fuzz/obj/%_avx512.o: SIMD = $(SIMD_AVX512) -fno-sanitize=undefined
$(BUILD)/fuzz/obj/%_neon.o: SIMD = $(SIMD_NEON)

$(FUZZ_BINS): $(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h tests/testsec.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD-FUZZ $@')
	$(Q)$(SAN_CC) $(BASE_CFLAGS) -O1 $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

# The program that writes the shard seed / format fixture (tests/fuzz/shard_load.c).
$(BUILD)/fuzz/make-seed: tests/fuzz/shard_load.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -DSX_FUZZ_MAKE_SEED -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

fuzz-build: $(FUZZ_BINS)

fuzz: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
	tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# arm64 cross build (Debian's gcc-aarch64-linux-gnu, arm64 packages of
# utf8proc, cJSON and zstd, qemu-user: scripts/setup --test installs them).
# The unit tests of common, text, model and index (kernels, tokenizer,
# encoder) are linked for aarch64 with a test list of those modules only,
# and run under QEMU: with `-cpu max` the NEON tables must be chosen (the
# dispatch test checks) and match the scalar reference; with `-cpu
# cortex-a72` (no dot product) the encoder falls back to scalar. The
# encoder tests read the model in ./models like the native run.
ARM64_CC    ?= aarch64-linux-gnu-gcc
ARM64_QEMU  ?= $(shell command -v qemu-aarch64-static 2>/dev/null || command -v qemu-aarch64 2>/dev/null || echo qemu-aarch64)
# QEMU's root for the arm64 loader and libraries: the multiarch packages
# (libc6:arm64 and the arm64 -dev libraries scripts/setup installs), not the
# cross sysroot /usr/aarch64-linux-gnu, whose ld.so is another glibc build
# than the libc6:arm64 the libraries come with; mixing the two hung every
# pthread_create (ld.so's stack cache list read with the other's layout).
ARM64_SYSROOT ?= /
ARM64_PKG   := PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig pkg-config
ARM64_DEPS  := libutf8proc libcjson libzstd
ARM64_MODS  := common text model index
ARM64_TESTS ?= common_crc32c text_ model_kernels model_half model_safetensors model_embed_matches \
               model_int8 model_random_berts model_embed_edges model_bad_model index_kernels \
               index_sq8 index_bad_input index_small_lists
ARM64_DIR   := $(BUILD)/arm64
ARM64_SRC   := $(foreach d,$(ARM64_MODS),$(wildcard src/$(d)/*.c)) src/corpus/npy.c tests/runner.c \
               $(foreach d,$(ARM64_MODS),tests/test-$(d).c)
ARM64_OBJ   := $(call obj,$(ARM64_DIR),$(ARM64_SRC))
ARM64_CFLAGS = $(CSTD) $(WARN) -O2 -g -pthread -fno-strict-aliasing -MMD -MP \
               $(shell $(ARM64_PKG) --cflags $(ARM64_DEPS) 2>/dev/null)

$(ARM64_DIR)/list.h: tests/list.h
	@mkdir -p $(dir $@)
	$(Q)grep -E '^TEST\((common|text|model|index)_' $< > $@.tmp && mv $@.tmp $@

$(ARM64_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC-A64  $<')
	$(Q)$(ARM64_CC) $(ARM64_CFLAGS) $(ARM64_SIMD) -c -o $@ $<

$(ARM64_DIR)/obj/%_neon.o: ARM64_SIMD = -march=armv8.2-a+dotprod+fp16
$(ARM64_DIR)/obj/tests/runner.o: ARM64_CFLAGS += -DSX_TEST_LIST='"$(abspath $(ARM64_DIR)/list.h)"'
$(ARM64_DIR)/obj/tests/runner.o: $(ARM64_DIR)/list.h

$(ARM64_DIR)/tests/run: $(ARM64_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  LD-A64  $@')
	$(Q)$(ARM64_CC) $(ARM64_CFLAGS) -o $@ $^ $$($(ARM64_PKG) --libs $(ARM64_DEPS)) -lm -lpthread

cross-arm64: $(ARM64_DIR)/tests/run

cross-arm64-test: $(ARM64_DIR)/tests/run
	SEMDEX_EXPECT_KERNELS="model=neon index=neon" SEMDEX_TEST_EMBED_STEP=50 $(ARM64_QEMU) -L $(ARM64_SYSROOT) -cpu max \
	  $(ARM64_DIR)/tests/run --no-fork model_kernels_dispatch $(ARM64_TESTS)
	SEMDEX_EXPECT_KERNELS="model=scalar index=neon" $(ARM64_QEMU) -L $(ARM64_SYSROOT) -cpu cortex-a72 \
	  $(ARM64_DIR)/tests/run --no-fork model_kernels_dispatch model_kernels_match_scalar

# The crash-safety loop (tests/crashloop.sh): kill -9 during writes and
# ingests, torn log tails, flipped snapshot bytes; CRASHLOOP_ITERATIONS sets
# the count (tests/e2e/crash-loop.sh runs a few in `make test`).
CRASHLOOP_ITERATIONS ?= 200
crashloop: all
	CRASHLOOP_ITERATIONS=$(CRASHLOOP_ITERATIONS) tests/crashloop.sh

fuzz: crashloop

# Benchmarks (bench/ann drives them; see bench/README.md).
$(BUILD)/bench/ann_bench: bench/ann_bench.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

$(BUILD)/bench/shard_bench: bench/shard_bench.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

bench: $(BUILD)/bench/ann_bench $(BUILD)/bench/shard_bench

# The keyword index: its loader's seed writer (tests/fuzz/keyword_load.c,
# a fuzz target above), and its benchmark (bench/keyword_bench.c).
$(BUILD)/fuzz/make-kw-seed: tests/fuzz/keyword_load.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -DSX_FUZZ_MAKE_SEED -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

$(BUILD)/bench/keyword_bench: bench/keyword_bench.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS_ALL)

bench: $(BUILD)/bench/keyword_bench

# The two commands of the README. Both are idempotent.
run:
	scripts/setup
	scripts/get-model
	scripts/get-data
	$(MAKE) -j$(JOBS) all
	scripts/run-default

# A local Redis Cluster with the module, two gateways and HAProxy
# (docs/cluster.md); `scripts/cluster down` stops it.
cluster:
	scripts/setup --test
	scripts/get-model
	scripts/get-redismodule-h
	$(MAKE) -j$(JOBS) all module
	scripts/cluster up

# Prometheus (and Grafana's dashboard queries) against the semdex on this
# machine (docs/operations.md#monitoring): MONITOR_ARGS are scripts/monitor's,
# e.g. MONITOR_ARGS="--cluster-dir data/cluster". `scripts/monitor down` stops it.
monitor:
	scripts/setup --test
	scripts/monitor up $(MONITOR_ARGS)

test:
	scripts/setup --test
	scripts/get-model
	scripts/get-redismodule-h
	$(MAKE) -j$(JOBS) all unit-tests asan-tests tsan-tests module module-asan fuzz-build
	scripts/test-data
	tests/run-all

testdata: all
	scripts/test-data

setup:
	scripts/setup

model:
	scripts/get-model

data:
	scripts/get-data

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf models data .venv

help:
	@sed -n '2,14p' Makefile

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
