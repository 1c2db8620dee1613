#!/usr/bin/env bash
# run_fuzz.sh — builds the libFuzzer targets of tests/fuzz/ and runs them.
#
#   tests/fuzz/run_fuzz.sh SECONDS [TARGET...]   build, then run each target
#                                                for SECONDS (default: all)
#   tests/fuzz/run_fuzz.sh --build [TARGET...]   build only
#   tests/fuzz/run_fuzz.sh --seeds [TARGET...]   rewrite the committed seed
#                                                corpus tests/fuzz/corpus/T/
#                                                from each target's seed writer
# Targets: fuzz_npy (the .npy reader), fuzz_idx (the IDX reader), fuzz_csv
# (the results-CSV reader of resume and merge), fuzz_ops (random operator
# calls through the whole library).
#
# Each target is built with clang -fsanitize=fuzzer,address,undefined into
# $BUILD_FUZZ (default build-fuzz/), and runs on its working corpus
# $BUILD_FUZZ/corpus/T: a copy of tests/fuzz/corpus/T (never written) plus
# what earlier runs found, with tests/fuzz/T.dict where there is one, under
# -rss_limit_mb=2048 -malloc_limit_mb=1024. Findings go to
# $BUILD_FUZZ/artifacts/T/ (crash-*, leak-*, oom-*, timeout-*), the log to
# $BUILD_FUZZ/logs/T.log. Per target it prints the executions, the coverage
# (cov: and ft: of libFuzzer's last status line), the corpus size and the
# findings; it exits non-zero when any target found a crash, a leak, an
# out-of-memory or a timeout, or did not build.
#
# Environment: CLANG (default clang), BUILD_FUZZ, FUZZ_JOBS (parallel
# compiles, default 2), FUZZ_TIMEOUT (seconds per input, default 25),
# FUZZ_KEEP_GOING=1 (libFuzzer's -fork=1 with -ignore_crashes, -ignore_ooms,
# -ignore_timeouts: collects several findings in one run; still fails),
# FUZZ_ARGS (more libFuzzer flags). A finding replays with
#   build-fuzz/T build-fuzz/artifacts/T/crash-...
# Needs Debian's clang, libclang-rt-14-dev (libFuzzer and the sanitizer
# runtimes), libomp-dev (OpenMP for fuzz_ops) and the build's usual
# zlib1g-dev and OpenBLAS (scripts/deps.sh).
set -u
cd "$(dirname "$0")/../.." || exit 2

ALL_TARGETS="fuzz_npy fuzz_idx fuzz_csv fuzz_ops"
CLANG=${CLANG:-clang}
BF=${BUILD_FUZZ:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}
TIMEOUT=${FUZZ_TIMEOUT:-25}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

mode=run
case "${1:-}" in
--build) mode=build; shift ;;
--seeds) mode=seeds; shift ;;
''|-h|--help) usage ;;
*)
    SECONDS_PER=$1
    shift
    case "$SECONDS_PER" in
    ''|*[!0-9]*) echo "run_fuzz.sh: SECONDS must be a whole number, got '$SECONDS_PER'" >&2; usage ;;
    esac
    ;;
esac
TARGETS=${*:-$ALL_TARGETS}
for t in $TARGETS; do
    case " $ALL_TARGETS " in
    *" $t "*) ;;
    *) echo "run_fuzz.sh: unknown target '$t' (targets: $ALL_TARGETS)" >&2; exit 2 ;;
    esac
done

# ------------------------------------------------------------------ build
if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "run_fuzz.sh: $CLANG not found; install Debian's clang and libclang-rt-14-dev" \
         "(apt-get install -y clang libclang-rt-14-dev libomp-dev)" >&2
    exit 2
fi

OB_INC=/usr/include/x86_64-linux-gnu/openblas-openmp
# The pthreads OpenBLAS: fuzz_ops's OpenMP is clang's libomp, which should
# not share a process with the GNU OpenMP runtime of openblas-openmp.
OB_LIB=
for l in /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 \
         /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0; do
    [ -f "$l" ] && { OB_LIB=$l; break; }
done

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
BASE="-g -O1 -std=c11 -march=x86-64-v3 $SAN"
# A micro-kernel variant's own target flags, as the Makefile's ISA_FLAGS_*.
isa_flags_of() {
    case $1 in
    kernels/ukernels/*_avx512.c) echo "-march=x86-64-v4 -mprefer-vector-width=512" ;;
    kernels/ukernels/*_avx2.c) echo "-march=x86-64-v3" ;;
    kernels/ukernels/*_scalar.c) echo "-march=x86-64" ;;
    esac
}
# Library sources: instrumented for coverage (fuzzer-no-link), built as the
# Makefile builds them (OpenMP, no oneDNN), without its warnings.
LIBFLAGS="$BASE -fsanitize=fuzzer-no-link -fopenmp -fPIC -w -Ikernels -Iharness -isystem $OB_INC"
TGTFLAGS="$BASE -fsanitize=fuzzer -Wall -Wextra -Wno-unused-parameter -Ikernels -Iharness"
HEADERS=$(ls kernels/*.h kernels/ukernels/*.h kernels/ukernels/*.inc harness/*.h tests/fuzz/*.h)

mkdir -p "$BF/obj" || exit 2
# Objects built with other flags are rebuilt.
stamp="$BF/obj/flags"
if [ "$(cat "$stamp" 2>/dev/null)" != "$CLANG $LIBFLAGS" ]; then
    rm -rf "$BF/obj"
    mkdir -p "$BF/obj"
    printf '%s\n' "$CLANG $LIBFLAGS" >"$stamp"
fi

obj_of() { local s=${1%.c}; echo "$BF/obj/${s//\//_}.o"; }

stale() {   # object older than its source or any header
    local o=$2 h
    [ -f "$o" ] || return 0
    [ "$1" -nt "$o" ] && return 0
    for h in $HEADERS; do [ "$h" -nt "$o" ] && return 0; done
    return 1
}

# Compiles the stale ones of the given sources, FUZZ_JOBS at a time.
compile() {
    local s o fail=0 n=0
    local -a pids=()
    for s in "$@"; do
        o=$(obj_of "$s")
        stale "$s" "$o" || continue
        echo "  cc $s"
        # shellcheck disable=SC2086
        ( $CLANG $LIBFLAGS $(isa_flags_of "$s") -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o" ) &
        pids+=($!)
        n=$((n + 1))
        if [ "$n" -ge "$JOBS" ]; then
            wait "${pids[0]}" || fail=1
            pids=("${pids[@]:1}")
            n=$((n - 1))
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    return $fail
}

srcs_of() {
    case $1 in
    fuzz_npy) echo kernels/npy.c kernels/tensor.c kernels/status.c ;;
    fuzz_idx) echo kernels/dataset_idx.c kernels/tensor.c kernels/status.c ;;
    fuzz_csv) echo harness/results.c ;;
    fuzz_ops) ls kernels/*.c kernels/ukernels/*.c ;;
    esac
}

libs_of() {
    case $1 in
    fuzz_npy|fuzz_csv) echo -lm ;;
    fuzz_idx) echo -lz -lm ;;
    fuzz_ops)
        if [ -z "$OB_LIB" ]; then
            echo "run_fuzz.sh: no OpenBLAS (libopenblas0-pthread) found" >&2
            return 1
        fi
        echo -fopenmp "$OB_LIB" -Wl,-rpath,"$(dirname "$OB_LIB")" -lz -lm ;;
    esac
}

build() {
    local t=$1 srcs objs libs s
    srcs=$(srcs_of "$t")
    libs=$(libs_of "$t") || return 1
    # shellcheck disable=SC2086
    compile $srcs || { echo "run_fuzz.sh: $t: a library source did not compile" >&2; return 1; }
    objs=
    for s in $srcs; do objs="$objs $(obj_of "$s")"; done
    local newest=0
    [ -f "$BF/$t" ] || newest=1
    for s in tests/fuzz/$t.c $objs $HEADERS; do [ "$s" -nt "$BF/$t" ] && newest=1; done
    [ $newest = 1 ] || return 0
    echo "  ld $BF/$t"
    # shellcheck disable=SC2086
    $CLANG $TGTFLAGS tests/fuzz/$t.c $objs $libs -o "$BF/$t"
}

for t in $TARGETS; do
    echo "== build $t"
    build "$t" || { echo "run_fuzz.sh: $t: build failed" >&2; exit 1; }
done
[ "$mode" = build ] && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# ------------------------------------------------------------------ seeds
if [ "$mode" = seeds ]; then
    for t in $TARGETS; do
        d=tests/fuzz/corpus/$t
        rm -rf "$d"
        mkdir -p "$d"
        "$BF/$t" -seed_corpus=1 "$d" >/dev/null 2>&1
        echo "$t: $(find "$d" -type f | wc -l) seeds in $d ($(cat "$d"/* | wc -c) bytes)"
    done
    exit 0
fi

# -------------------------------------------------------------------- run
nfiles() { find "$1" -maxdepth 1 -type f | wc -l; }
maxlen_of() { case $1 in fuzz_ops) echo 256 ;; *) echo 4096 ;; esac; }

status=0
summary=
for t in $TARGETS; do
    work=$BF/corpus/$t art=$BF/artifacts/$t log=$BF/logs/$t.log
    mkdir -p "$work" "$BF/logs"
    rm -rf "$art"
    mkdir -p "$art"
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp -p "tests/fuzz/corpus/$t"/* "$work"/ 2>/dev/null
    fi
    before=$(nfiles "$work")
    dict=
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    keep=
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep="-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1"
    echo "== run $t for ${SECONDS_PER}s (corpus $work: $before files)"
    touch "$BF/logs/.start"
    # shellcheck disable=SC2086
    "$BF/$t" -max_total_time="$SECONDS_PER" -max_len="$(maxlen_of "$t")" -timeout="$TIMEOUT" \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$art/" \
        $dict $keep ${FUZZ_ARGS:-} "$work" >"$log" 2>&1
    rc=$?
    # libomp registers every process in /dev/shm and leaves the file behind
    # when the process dies (each crash, each -fork job): remove those of
    # this run's dead processes.
    find /dev/shm -maxdepth 1 -name '__KMP_REGISTERED_LIB_*' -newer "$BF/logs/.start" 2>/dev/null |
        while read -r f; do
            pid=${f#/dev/shm/__KMP_REGISTERED_LIB_}
            pid=${pid%%_*}
            [ -d "/proc/$pid" ] || rm -f "$f"
        done
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(printf '%s\n' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
    cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    after=$(nfiles "$work")
    found=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \
            -o -name 'timeout-*' \) | wc -l)
    verdict=ok
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        verdict="FAILED (exit $rc)"
        status=1
    fi
    line=$(printf '%-9s execs %-10s cov %-6s ft %-7s corpus %s files (%+d)  findings %s  %s' "$t" \
           "${execs:-?}" "${cov:-?}" "${ft:-?}" "$after" $((after - before)) "$found" "$verdict")
    echo "$line"
    if [ "$verdict" != ok ]; then
        # The report: from the first sanitizer / libFuzzer error line on.
        awk '/^==[0-9]+==ERROR|^==[0-9]+== ERROR|runtime error:|^fuzz_[a-z]+: |deadly signal|out-of-memory|timeout after|LeakSanitizer/ {p=1} p' \
            "$log" | head -40
        find "$art" -maxdepth 1 -type f | sort | head -10 | sed 's|^|  artifact: |'
        n=$(nfiles "$art")
        [ "$n" -gt 10 ] && echo "  ... and $((n - 10)) more in $art/"
        echo "  log: $log"
    fi
    summary="$summary$line"$'\n'
done
echo "== summary"
printf '%s' "$summary"
exit $status
