# dcbench — build, test, demo, install.
#   make deps      install the Debian packages (as root; prints the command otherwise)
#   make           build/libdcb.a, build/libdcb.so, build/dcbench
#   make test      unit tests, then the same suite under ASan + UBSan
#   make demo      small versions of every shipped sweep (CSV + PNG in results/demo/)
#   make bench     conv2d engines against the bare GEMM (docs/PERFORMANCE.md)
#   make bench-direct  the direct engine against oneDNN on 1x1 and depthwise layers
#   make tables    the papers' cost tables from the network descriptions (results/tables/)
#   make bench-dynamic  condconv / dyconv against the static conv (docs/PERFORMANCE.md)
#   make bench-seq     dynconv1d / lightconv against attention (docs/PERFORMANCE.md)
#   make bench-threads 1 against 2 threads, interleaved, on the issue-6 layers
#   make bench-train   training and inference images/s against PyTorch (docs/TRAINING.md)
#   make ablations  every ablation study with accuracy (sweeps/ablations/, results/ablations/)
#   make test-cluster  a sweep and a study through GNU parallel and a real single-node Slurm
#   make valgrind-check  a small script under valgrind's memcheck (a portable build)
#   make fuzz      the libFuzzer targets of tests/fuzz/, 10 minutes each (make test: 20 s each)
#   make install PREFIX=/usr/local
#   BLAS=openblas  OpenBLAS with its own pthreads pool (the default is the OpenMP build)
#   BLAS=blis      build against BLIS instead of OpenBLAS

PREFIX  ?= /usr/local
BLAS    ?= openblas-openmp
CC      ?= cc
CXX     ?= c++
BUILD   := build

# The baseline every object is built for: x86-64-v3 (AVX2 + FMA), which every
# machine this project meets runs (Zen 3, Zen 5, Emerald Rapids), so a binary
# built on one runs on the others. The micro-kernel variant files of
# kernels/ukernels/ (*_avx512.c, *_avx2.c, *_scalar.c) are compiled with their
# own ISA's flags, appended after OPT, and chosen at run time by CPUID (DCB_ISA
# forces a narrower one). OPT="-O3 -march=native" still builds; it only changes
# the code outside the micro-kernels.
OPT     ?= -O3 -march=x86-64-v3
ISA_FLAGS_scalar := -march=x86-64 -mtune=generic
ISA_FLAGS_avx2   := -march=x86-64-v3 -mtune=generic
ISA_FLAGS_avx512 := -march=x86-64-v4 -mtune=generic -mprefer-vector-width=512
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror=switch
CSTD    := -std=c11
ifeq ($(BLAS),blis)
  BLAS_CFLAGS := -DDCB_USE_BLIS -D_POSIX_C_SOURCE=200809L -isystem /usr/include/x86_64-linux-gnu/blis-openmp
  BLAS_LIBS   := -L/usr/lib/x86_64-linux-gnu/blis-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/blis-openmp -lblis
else ifeq ($(BLAS),openblas-openmp)
  # OpenBLAS threaded with OpenMP, so that its GEMMs and our OpenMP regions
  # share one thread pool. With the pthreads build the two pools spin against
  # each other: im2col at 2 threads took 10 ms against 3.9 ms on 1 thread
  # (64@56 N=1), and 9x its bare GEMM on 16 cores.
  OB_DIR      := /usr/lib/x86_64-linux-gnu/openblas-openmp
  BLAS_CFLAGS := -isystem /usr/include/x86_64-linux-gnu/openblas-openmp
  BLAS_LIBS   := -L$(OB_DIR) -Wl,-rpath,$(OB_DIR) -lopenblas
else
  BLAS_CFLAGS = $(shell pkg-config --cflags openblas 2>/dev/null)
  BLAS_LIBS   = $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
endif
# oneDNN, the peer implementation of conv2d (ONEDNN=0 builds without it)
ONEDNN  ?= 1
ifeq ($(ONEDNN),1)
  ONEDNN_CFLAGS := -DDCB_WITH_ONEDNN
  ONEDNN_LIBS   := -ldnnl
endif
CFLAGS_LIB = $(CSTD) $(OPT) -fopenmp -fPIC -fvisibility=hidden $(WARN) $(BLAS_CFLAGS) $(ONEDNN_CFLAGS) -Ikernels \
             -DDCB_BUILD_FLAGS='"$(CC) $(OPT) -fopenmp BLAS=$(BLAS)"'
LDLIBS  = $(BLAS_LIBS) $(ONEDNN_LIBS) -lz -fopenmp -lm

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC := $(wildcard kernels/*.c) $(wildcard kernels/ukernels/*.c)
LIB_OBJ := $(LIB_SRC:kernels/%.c=$(BUILD)/obj/%.o)
SAN_OBJ := $(LIB_SRC:kernels/%.c=$(BUILD)/san/%.o)
# kernels/ukernels/*.c build by the object rules below (into obj/ukernels/,
# san/ukernels/); every library object also depends on their header.
$(LIB_OBJ) $(SAN_OBJ): kernels/ukernels/*.h kernels/ukernels/*.inc
TESTS   := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

.PHONY: all deps test test-unit test-isa test-san demo bench bench-direct bench-dynamic bench-seq bench-threads bench-train tables install clean \
        ablations test-cluster valgrind-check fuzz fuzz-quick
all: deps $(BUILD)/libdcb.a $(BUILD)/libdcb.so $(BUILD)/dcbench

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: kernels/%.c kernels/*.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) $(ISA_FLAGS) -c $< -o $@

$(BUILD)/san/%.o: kernels/%.c kernels/*.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB:-O3=-O1) $(SAN) $(ISA_FLAGS) -c $< -o $@

# A micro-kernel variant's own target flags (ukernels.h, isa.h).
$(BUILD)/obj/ukernels/%_scalar.o $(BUILD)/san/ukernels/%_scalar.o: ISA_FLAGS = $(ISA_FLAGS_scalar)
$(BUILD)/obj/ukernels/%_avx2.o $(BUILD)/san/ukernels/%_avx2.o: ISA_FLAGS = $(ISA_FLAGS_avx2)
$(BUILD)/obj/ukernels/%_avx512.o $(BUILD)/san/ukernels/%_avx512.o: ISA_FLAGS = $(ISA_FLAGS_avx512)

$(BUILD)/libdcb.a: $(LIB_OBJ)
	ar rcs $@ $^

# The shared library's version is DCB_VERSION (kernels/dcb.h); its SONAME
# carries the major number, so that programs linked now keep loading
# libdcb.so.0 after a compatible update.
DCB_VER   := $(shell sed -n 's/^\#define DCB_VERSION "\(.*\)"/\1/p' kernels/dcb.h)
DCB_MAJOR := $(firstword $(subst ., ,$(DCB_VER)))
$(BUILD)/libdcb.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libdcb.so.$(DCB_MAJOR) -o $@ $^ $(LDLIBS)

$(BUILD)/libdcb-san.a: $(SAN_OBJ)
	ar rcs $@ $^

# The harness: C, plus one C++ file (the Google Benchmark shim).
HARNESS_C   := $(wildcard harness/*.c)
HARNESS_CXX := $(wildcard harness/*.cc)
HARNESS_OBJ := $(HARNESS_C:harness/%.c=$(BUILD)/harness/%.o) $(HARNESS_CXX:harness/%.cc=$(BUILD)/harness/%.o)
HARNESS_CFLAGS = $(CFLAGS_LIB) -Iharness $(shell pkg-config --cflags lua5.4 papi 2>/dev/null)
HARNESS_LIBS = $(shell pkg-config --libs lua5.4 benchmark papi 2>/dev/null) -lstdc++ -lpthread -ldl

$(BUILD)/harness/%.o: harness/%.c harness/*.h kernels/dcb.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(HARNESS_CFLAGS) -c $< -o $@

HARNESS_CXXFLAGS = -std=c++17 -fPIC $(WARN) -Iharness -Ikernels $(shell pkg-config --cflags benchmark 2>/dev/null) \
                   -DDCB_GBENCH_VERSION='"$(shell pkg-config --modversion benchmark 2>/dev/null)"'

$(BUILD)/harness/%.o: harness/%.cc harness/*.h | deps
	@mkdir -p $(dir $@)
	$(CXX) $(OPT) $(HARNESS_CXXFLAGS) -c $< -o $@

# The harness without its main programs, for the tests of the harness
# (tests/test_measure.c, tests/test_harness_*.c); -san: the same under ASan+UBSan.
HARNESS_LIB_OBJ := $(filter-out $(BUILD)/harness/dcbench.o,$(HARNESS_OBJ))
HARNESS_SAN_OBJ := $(HARNESS_LIB_OBJ:$(BUILD)/harness/%=$(BUILD)/san-harness/%)
HARNESS_TESTS   := $(filter test_measure test_harness_%,$(TESTS))

$(BUILD)/libdcbh.a: $(HARNESS_LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/san-harness/%.o: harness/%.c harness/*.h kernels/dcb.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(HARNESS_CFLAGS:-O3=-O1) $(SAN) -c $< -o $@

$(BUILD)/san-harness/%.o: harness/%.cc harness/*.h | deps
	@mkdir -p $(dir $@)
	$(CXX) $(OPT:-O3=-O1) $(HARNESS_CXXFLAGS) $(SAN) -c $< -o $@

$(BUILD)/libdcbh-san.a: $(HARNESS_SAN_OBJ)
	ar rcs $@ $^

$(BUILD)/dcbench: $(HARNESS_OBJ) $(BUILD)/libdcb.a
	$(CC) $(HARNESS_OBJ) $(BUILD)/libdcb.a $(HARNESS_LIBS) $(LDLIBS) -o $@

# The same program under ASan + UBSan, for the end-to-end tests of test-san.
HARNESS_SAN_OBJ := $(HARNESS_C:harness/%.c=$(BUILD)/harness-san/%.o) $(HARNESS_CXX:harness/%.cc=$(BUILD)/harness-san/%.o)

$(BUILD)/harness-san/%.o: harness/%.c harness/*.h kernels/dcb.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(HARNESS_CFLAGS:-O3=-O1) $(SAN) -c $< -o $@

$(BUILD)/harness-san/%.o: harness/%.cc harness/*.h | deps
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O1 $(SAN) -fPIC $(WARN) -Iharness -Ikernels $(shell pkg-config --cflags benchmark 2>/dev/null) -c $< -o $@

$(BUILD)/dcbench-san: $(HARNESS_SAN_OBJ) $(BUILD)/libdcb-san.a
	$(CC) $(SAN) $(HARNESS_SAN_OBJ) $(BUILD)/libdcb-san.a $(HARNESS_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/*.h $(BUILD)/libdcb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -Itests $< $(BUILD)/libdcb.a $(LDLIBS) -lcmocka -o $@

$(BUILD)/tests-san/%: tests/%.c tests/*.h $(BUILD)/libdcb-san.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB:-O3=-O1) $(SAN) -Itests $< $(BUILD)/libdcb-san.a $(LDLIBS) -lcmocka -o $@

$(HARNESS_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: tests/%.c tests/*.h harness/measure.h $(BUILD)/libdcbh.a $(BUILD)/libdcb.a
	@mkdir -p $(dir $@)
	$(CC) $(HARNESS_CFLAGS) -Itests $< $(BUILD)/libdcbh.a $(BUILD)/libdcb.a $(HARNESS_LIBS) $(LDLIBS) -lcmocka -o $@

$(HARNESS_TESTS:%=$(BUILD)/tests-san/%): $(BUILD)/tests-san/%: tests/%.c tests/*.h harness/measure.h $(BUILD)/libdcbh-san.a $(BUILD)/libdcb-san.a
	@mkdir -p $(dir $@)
	$(CC) $(HARNESS_CFLAGS:-O3=-O1) $(SAN) -Itests $< $(BUILD)/libdcbh-san.a $(BUILD)/libdcb-san.a $(HARNESS_LIBS) $(LDLIBS) -lcmocka -o $@

# The focused benchmarks are Lua scripts (sweeps/bench/*.lua) of interleaved
# comparisons (dcb.compare), run by the bench targets below.

# Unit tests, then the whole suite again under AddressSanitizer + UBSan.
# OpenBLAS threads are capped so that the sanitizer run stays within budget.
# test_harness_e2e runs the program named by DCBENCH: build/dcbench, and
# build/dcbench-san in the sanitizer run.
test: test-unit test-isa test-san
	@$(MAKE) --no-print-directory fuzz-quick
	@echo "dcbench: all test suites passed"

# Lua tests (tests/lua/*.lua) run through dcbench: the network cost tables.
LUA_TESTS := $(wildcard tests/lua/test_*.lua)

test-unit: all $(TESTS:%=$(BUILD)/tests/%)
	@set -e; for t in $(TESTS); do echo "== $$t"; DCBENCH=$(BUILD)/dcbench $(BUILD)/tests/$$t; done
	@set -e; for t in $(LUA_TESTS); do echo "== $$t"; $(BUILD)/dcbench $$t; done
	@echo "== test_parallel_study"; DCBENCH=$(BUILD)/dcbench tests/cluster/test_parallel_study.sh
	@echo "== test_readme_c"; tests/test_readme_c.sh $(BUILD)
	@echo "== test_lua_docs"; tests/test_lua_docs.sh $(BUILD)/dcbench

# The engine and conformance tests once more under every narrower ISA level
# this CPU runs (test-unit ran the widest): DCB_ISA=avx2 and DCB_ISA=scalar on
# an AVX-512 machine, DCB_ISA=scalar on an AVX2 one. Says which levels this
# machine cannot run, so that a reader knows what was not tested here.
ISA_TESTS := test_ukernels test_ukernels_families test_ukernels_winograd test_conformance test_conv2d test_expert_conv test_weightnet test_drconv test_lightconv \
             test_mhattention test_skconv test_splat test_localconv test_layers test_backward
test-isa: all $(ISA_TESTS:%=$(BUILD)/tests/%)
	@set -e; out=$$(env -u DCB_ISA $(BUILD)/dcbench isa); widest=$${out%% *}; avail=$${out#* }; \
	for l in avx512 avx2 scalar; do case ",$$avail," in *,$$l,*) ;; \
	  *) echo "== ISA $$l: this CPU does not run it: its variants are not tested here";; esac; done; \
	for l in $$(echo $$avail | tr , ' '); do [ $$l = $$widest ] && continue; \
	  for t in $(ISA_TESTS); do echo "== $$t (DCB_ISA=$$l)"; \
	    DCB_ISA=$$l DCB_TEST_QUICK=1 $(BUILD)/tests/$$t; done; done

test-san: deps $(TESTS:%=$(BUILD)/tests-san/%) $(BUILD)/dcbench-san
	@set -e; for t in $(TESTS); do echo "== $$t (asan+ubsan)"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 DCB_TEST_QUICK=1 \
	  DCBENCH=$(BUILD)/dcbench-san $(BUILD)/tests-san/$$t; done
	@set -e; for t in $(LUA_TESTS); do echo "== $$t (asan+ubsan)"; \
	  ASAN_OPTIONS=detect_leaks=1 DCB_TEST_QUICK=1 $(BUILD)/dcbench-san $$t; done

# The papers' cost tables: results/tables/*.csv and *.md.
tables: all
	$(BUILD)/dcbench tables

# Small versions of the seven sweeps (sweeps/demo.lua skips operators that
# are not registered): CSV, JSON and PNG figures in results/demo/.
# The roofline figures need this machine's peak and bandwidth: measured once.
# The demo starts afresh: results/demo holds only what this build measured
# (a results file of an older build, with other columns, would be refused).
demo: all
	@test -f results/calibration.json || $(BUILD)/dcbench calibrate
	rm -rf results/demo
	$(BUILD)/dcbench --quick --results results/demo sweeps/demo.lua

bench: all
	$(BUILD)/dcbench sweeps/bench/engines.lua

bench-direct: all
	$(BUILD)/dcbench sweeps/bench/direct.lua 9 1
	$(BUILD)/dcbench sweeps/bench/direct.lua 9 2
bench-dynamic: all
	$(BUILD)/dcbench sweeps/bench/dynamic.lua
bench-seq: all
	$(BUILD)/dcbench sweeps/bench/seq.lua
bench-threads: all
	$(BUILD)/dcbench sweeps/bench/threads.lua 9 2
bench-train: all
	$(BUILD)/dcbench sweeps/bench/train.lua 2 1 2

# Every ablation study (sweeps/ablations/all.lua) in ABL_JOBS shards of 1-thread
# training runs through GNU parallel, merged, then the tables and figures:
# results/ablations/README.md. A killed run resumes where it stopped.
ABL_JOBS ?= 2
ablations: all
	DCBENCH=$(BUILD)/dcbench scripts/parallel_sweep.sh -n $(ABL_JOBS) -j $(ABL_JOBS) --results results sweeps/ablations/all.lua

# test-cluster: scripts/slurm_submit.sh on a real single-node Slurm on this
# machine (root; Debian's slurm-wlm + munge, installed when missing): a private
# munged, slurmctld and slurmd in a temp dir run a timing sweep and a training
# study as array jobs with shard 2 made to fail, then --only 2; the dependent
# merge job must merge, draw the figures and match a serial run. Then GNU
# parallel with two local slots: a timing sweep (a failed shard, the rerun,
# pinning) and the study (tests/cluster/). Shellcheck, where installed, checks
# the cluster scripts first.
#   make test-cluster [CLUSTER_SCRIPT=sweeps/attention.lua] [CLUSTER_TASKS=3]
CLUSTER_SCRIPT ?=
CLUSTER_TASKS  ?= 2
CLUSTER_SH := scripts/run_shard.sh scripts/merge_shards.sh scripts/parallel_sweep.sh \
              tests/cluster/test_parallel_study.sh tests/cluster/test_parallel_sweep.sh
CLUSTER_BASH := scripts/slurm_sweep.sbatch scripts/slurm_submit.sh tests/cluster/test_slurm.sh
test-cluster: all
	@dpkg -s slurm-wlm munge parallel >/dev/null 2>&1 || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y slurm-wlm munge parallel || \
	  { apt-get update && apt-get install -y slurm-wlm munge parallel; }; }
	@if command -v shellcheck >/dev/null; then echo "shellcheck (cluster scripts)"; \
	  shellcheck $(CLUSTER_SH) && shellcheck -s bash $(CLUSTER_BASH); \
	else echo "shellcheck not installed: not checked"; fi
	DCBENCH=$(BUILD)/dcbench tests/cluster/test_slurm.sh "$(CLUSTER_SCRIPT)" $(CLUSTER_TASKS)
	DCBENCH=$(BUILD)/dcbench IGNORE_COLS='train_s,train_s_per_img_*,infer_*,curve_csv,loadavg,steal_pct,others_cpus,contended' \
	  tests/cluster/test_slurm.sh tests/cluster/tiny_study.lua $(CLUSTER_TASKS)
	DCBENCH=$(BUILD)/dcbench tests/cluster/test_parallel_sweep.sh
	DCBENCH=$(BUILD)/dcbench tests/cluster/test_parallel_study.sh

# Fuzzing: the libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan), built into
# $(BUILD)/fuzz and run on a copy of tests/fuzz/corpus/; any crash, leak, OOM or
# timeout fails (findings in $(BUILD)/fuzz/artifacts/<target>/). make test runs
# each for FUZZ_QUICK_SECONDS.
#   make fuzz [FUZZ_SECONDS=600] [FUZZ_TARGETS="fuzz_npy fuzz_csv"]
FUZZ_SECONDS       ?= 600
FUZZ_QUICK_SECONDS ?= 20
FUZZ_TARGETS       ?= fuzz_npy fuzz_idx fuzz_csv fuzz_ops
fuzz: deps
	BUILD_FUZZ=$(BUILD)/fuzz tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
fuzz-quick: deps
	BUILD_FUZZ=$(BUILD)/fuzz tests/fuzz/run_fuzz.sh $(FUZZ_QUICK_SECONDS) $(FUZZ_TARGETS)

# valgrind-check: a small script (tests/valgrind/small.lua) under memcheck,
# 0 errors and no definite leak, with the default build's own binary (built
# with -g added, in build-valgrind/): valgrind reports a CPU without AVX-512,
# so the avx2 micro-kernels run, and OpenBLAS and oneDNN pick their kernels
# from that CPU too.
valgrind-check: deps
	$(MAKE) BUILD=build-valgrind OPT="$(OPT) -g" all
	ONEDNN_MAX_CPU_ISA=AVX2 valgrind --error-exitcode=9 --leak-check=full \
	  --errors-for-leak-kinds=definite -q build-valgrind/dcbench tests/valgrind/small.lua

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libdcb.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libdcb.so $(DESTDIR)$(PREFIX)/lib/libdcb.so.$(DCB_VER)
	ln -sf libdcb.so.$(DCB_VER) $(DESTDIR)$(PREFIX)/lib/libdcb.so.$(DCB_MAJOR)
	ln -sf libdcb.so.$(DCB_MAJOR) $(DESTDIR)$(PREFIX)/lib/libdcb.so
	install -m 644 kernels/dcb.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/dcbench $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/dcbench/scripts $(DESTDIR)$(PREFIX)/share/dcbench/sweeps \
	           $(DESTDIR)$(PREFIX)/share/dcbench/harness/lua $(DESTDIR)$(PREFIX)/share/dcbench/docs
	install -m 644 scripts/*.gp $(DESTDIR)$(PREFIX)/share/dcbench/scripts/
	install -m 644 sweeps/*.lua $(DESTDIR)$(PREFIX)/share/dcbench/sweeps/
	install -m 644 harness/lua/*.lua $(DESTDIR)$(PREFIX)/share/dcbench/harness/lua/
	@# dcbench list OP reads the weight layouts from docs/OPERATORS.md
	install -m 644 docs/*.md $(DESTDIR)$(PREFIX)/share/dcbench/docs/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(DCB_VER)|' \
	    -e 's|@BLAS_LIBS@|$(BLAS_LIBS) $(ONEDNN_LIBS)|' scripts/dcb.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dcb.pc
	@# one .pc cannot make -ldcb pick libdcb.a over libdcb.so: the static link has a module of its own
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(DCB_VER)|' \
	    -e 's|@BLAS_LIBS@|$(BLAS_LIBS) $(ONEDNN_LIBS)|' scripts/dcb-static.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dcb-static.pc
	@# a system prefix: refresh the loader's cache (programs built with dcb.pc's rpath need not)
	@case "$(PREFIX)" in /usr|/usr/local) if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi;; esac

clean:
	rm -rf $(BUILD)
