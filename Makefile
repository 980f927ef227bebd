# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Thin wrapper around CMake.  The real build is CMakeLists.txt.
#
#   make demo    install missing deps, build, write a synthetic migration,
#                dump and verify it
#   make check   install missing deps, build with -Werror, run every test;
#                then (with clang) an ASan+UBSan build with libFuzzer runs
#                and a ThreadSanitizer build of the threaded tests;
#                then valgrind memcheck over the unit tests
#   make fuzz    build the ASan+UBSan libFuzzer build, run every harness
#                FUZZ_SECONDS each (default 600) over its committed corpus
#                and merge inputs that add coverage back into
#                fuzz/corpus/NAME/ (FUZZ_NAMES="reader set" for some only)
#   make bench   build, then migstream-bench: the library's speed as ratios
#                against memcpy, XXH3 and inflate in the same run
#                (BENCH_ARGS=--json for JSON lines)
#   make bench-tools  build, then scripts/bench-tools.sh: the tools as whole
#                processes on generated files against xxhsum and dd
#   make build | clean | format
#
# Missing Debian packages are installed by scripts/setup-deps.sh when run
# as root; otherwise it prints the apt-get line to run.

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= 2
CMAKE      ?= cmake
CTEST      ?= ctest
CLANG      ?= clang
# libFuzzer seconds per harness: in make check (CTest fuzz-* tests) and in
# make fuzz.
CHECK_FUZZ_SECONDS ?= 12
# Tests the sanitizer build leaves to the Release build (two minutes under
# ASan): json_schema validates dump's JSON over every capture and fuzz
# seed; under ASan the fuzz and replay tests run the library over those
# seeds, and the other CLI tests run dump on damaged input.
FUZZ_BUILD_SKIP ?= cli-json_schema
FUZZ_SECONDS ?= 600
FUZZ_NAMES ?= $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
TSAN_BUILD ?= build-tsan
# The tests whose code runs on several threads: ms_migration's concurrent
# mode (test_migration), the tools' one thread per channel file, and
# migstream-record's forwarder and writer threads (cli-record).
TSAN_TESTS ?= test_migration|cli-captures|cli-extract_multifd|cli-multifd_synth|cli-multifd10_capture|cli-windows|cli-replay|cli-record
TSAN_TARGETS = test_migration migstream-dump migstream-verify migstream-extract migstream-synth migstream-replay migstream-record
# Unit tests run under valgrind memcheck: those that take under ~20 s
# there.  test_libvirt, test_postcopy, test_qemu, test_multifd,
# test_mapped_ram and test_payload take 45-190 s each (every-offset
# truncation loops); `make check-valgrind VALGRIND_TESTS="..."` runs them.
VALGRIND_TESTS ?= test_cpr test_dirty_bitmap test_format test_kit test_limits \
                  test_migration test_multifd10 test_names test_payload_drivers \
                  test_reader test_rp test_set test_vfio_config test_vmstate \
                  test_writer test_xbzrle
BENCH_ARGS ?=

CONFIGURE_FLAGS = -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g \
                  -DMIGSTREAM_WERROR=ON
FUZZ_CONFIGURE_FLAGS = -DCMAKE_C_COMPILER=$(CLANG) \
                       -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 \
                       -DMIGSTREAM_WERROR=ON -DMIGSTREAM_FUZZ=ON \
                       -DMIGSTREAM_SANITIZE=ON \
                       -DMIGSTREAM_FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)

.PHONY: all deps build demo check check-main check-fuzz check-tsan check-valgrind clean format bench \
        bench-tools fuzz fuzz-build

all: build

deps:
	@bash scripts/setup-deps.sh

build: deps
	$(CMAKE) -S . -B $(BUILD) $(CONFIGURE_FLAGS)
	$(CMAKE) --build $(BUILD) -j$(JOBS)

demo: build
	rm -rf $(BUILD)/demo && mkdir -p $(BUILD)/demo
	@echo "== a synthetic 4-channel migration: 2 mlx5 devices, final images as device-state packets"
	$(BUILD)/migstream-synth --kind mlx5 -o $(BUILD)/demo
	$(BUILD)/migstream-dump $(BUILD)/demo/*.mig
	$(BUILD)/migstream-dump --summary --bandwidth 25G --channels 4 $(BUILD)/demo/*.mig
	$(BUILD)/migstream-verify --verbose $(BUILD)/demo/*.mig
	@echo "== bundled real QEMU 7.2 captures (tests/data/captures)"
	$(BUILD)/migstream-dump --summary tests/data/captures/qemu-7.2-pc-precopy/main.mig
	$(BUILD)/migstream-dump --summary tests/data/captures/qemu-7.2-pc-multifd2-zlib/*.bin
	$(BUILD)/migstream-verify --verbose tests/data/captures/qemu-7.2-pc-multifd4/*.bin
	@echo "== bundled real QEMU 10.0 captures: zstd multifd, a postcopy stream with its return path"
	$(BUILD)/migstream-verify --verbose tests/data/captures/qemu-10.0-pc-multifd4-zstd/conn*.bin
	$(BUILD)/migstream-dump tests/data/captures/qemu-10.0-pc-postcopy/conn0.d2s
	$(BUILD)/migstream-verify --verbose tests/data/captures/qemu-10.0-pc-postcopy/conn0.s2d \
	    tests/data/captures/qemu-10.0-pc-postcopy/conn0.d2s
	@echo "== the same, its devices decoded with the JSON trailer of another stream of the same machine"
	$(BUILD)/migstream-verify --verbose \
	    --vmdesc tests/data/captures/qemu-10.0-pc-multifd4-zstd/conn0.bin \
	    tests/data/captures/qemu-10.0-pc-postcopy/conn0.s2d \
	    tests/data/captures/qemu-10.0-pc-postcopy/conn0.d2s

check: check-main check-fuzz check-tsan check-valgrind

check-main: build
	$(CTEST) --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# ASan + UBSan build of everything (unit tests included) plus the libFuzzer
# runs; skipped with a note when clang is not installed.
check-fuzz: check-main
	@if command -v $(CLANG) >/dev/null 2>&1; then \
	    set -e; \
	    echo "== $(FUZZ_BUILD): clang, ASan+UBSan, libFuzzer"; \
	    $(CMAKE) -S . -B $(FUZZ_BUILD) $(FUZZ_CONFIGURE_FLAGS); \
	    $(CMAKE) --build $(FUZZ_BUILD) -j$(JOBS); \
	    $(CTEST) --test-dir $(FUZZ_BUILD) --output-on-failure -j$(JOBS) \
	        -E '^($(FUZZ_BUILD_SKIP))$$'; \
	else \
	    echo "make check: $(CLANG) not found: skipping the sanitizer and fuzz build"; \
	fi

# make fuzz: every harness for FUZZ_SECONDS over a working copy of its
# committed corpus (in $(FUZZ_BUILD)/fuzz-long/NAME), then the inputs that
# add coverage merged back into fuzz/corpus/NAME/ (libFuzzer -merge=1).
# Every harness runs even when one finds a crash (the crash input is in
# $(FUZZ_BUILD)/fuzz-artifacts/); the target fails at the end if any did.
fuzz-build: deps
	@command -v $(CLANG) >/dev/null 2>&1 || \
	    { echo "make fuzz: $(CLANG) not found"; exit 1; }
	$(CMAKE) -S . -B $(FUZZ_BUILD) $(FUZZ_CONFIGURE_FLAGS)
	$(CMAKE) --build $(FUZZ_BUILD) -j$(JOBS) \
	    --target $(addprefix fuzz-,$(FUZZ_NAMES))

fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/fuzz-long; failed=""; for n in $(FUZZ_NAMES); do \
	    echo "== fuzz-$$n: $(FUZZ_SECONDS) s"; \
	    bash fuzz/fuzz-one.sh $(FUZZ_BUILD)/fuzz/fuzz-$$n $$n $(FUZZ_SECONDS) \
	        $(FUZZ_BUILD)/fuzz-long/$$n $(FUZZ_BUILD)/fuzz-artifacts \
	        --merge fuzz/corpus/$$n fuzz/corpus/$$n \
	        >$(FUZZ_BUILD)/fuzz-long/$$n.log 2>&1 || failed="$$failed $$n"; \
	    grep -h -E '^stat::(number_of_executed_units|average_exec_per_sec)|^fuzz-one:' \
	        $(FUZZ_BUILD)/fuzz-long/$$n.log || true; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "make fuzz: failed:$$failed (logs: $(FUZZ_BUILD)/fuzz-long/NAME.log)"; exit 1; \
	fi

# ThreadSanitizer over the multi-threaded paths; skipped with a note when
# clang is not installed.
check-tsan: check-main
	@if command -v $(CLANG) >/dev/null 2>&1; then \
	    set -e; \
	    echo "== $(TSAN_BUILD): clang, ThreadSanitizer, threaded tests"; \
	    $(CMAKE) -S . -B $(TSAN_BUILD) -DCMAKE_C_COMPILER=$(CLANG) \
	        -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 \
	        -DMIGSTREAM_WERROR=ON -DMIGSTREAM_TSAN=ON \
	        -DMIGSTREAM_BUILD_EXAMPLES=OFF; \
	    $(CMAKE) --build $(TSAN_BUILD) -j$(JOBS) --target $(TSAN_TARGETS); \
	    $(CTEST) --test-dir $(TSAN_BUILD) --output-on-failure -j$(JOBS) \
	        -R '^($(TSAN_TESTS))$$'; \
	else \
	    echo "make check: $(CLANG) not found: skipping the ThreadSanitizer build"; \
	fi

# valgrind memcheck (invalid accesses, uninitialised values, leaks) over
# the unit tests of the -Werror build; any report fails.
check-valgrind: check-main
	@set -e; echo "== valgrind memcheck: $(VALGRIND_TESTS)"; \
	for t in $(VALGRIND_TESTS); do \
	    MIGSTREAM_SRC_DIR=$(CURDIR) MIGSTREAM_BIN_DIR=$(CURDIR)/$(BUILD) \
	    valgrind -q --error-exitcode=99 --leak-check=full \
	        --errors-for-leak-kinds=definite $(BUILD)/tests/$$t \
	        >$(BUILD)/valgrind-$$t.log 2>&1 || \
	        { echo "valgrind: $$t failed (exit $$?):"; \
	          tail -40 $(BUILD)/valgrind-$$t.log; exit 1; }; \
	    echo "valgrind: $$t clean"; \
	done

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(TSAN_BUILD)

format:
	find include libstream encode tools tests fuzz examples -name '*.[ch]' -print0 | \
	    xargs -0 -r clang-format -i

bench: build
	$(BUILD)/migstream-bench $(BENCH_ARGS)

bench-tools: build
	BUILD=$(BUILD) bash scripts/bench-tools.sh
