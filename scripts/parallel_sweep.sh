#!/bin/sh
# parallel_sweep.sh — runs a sweep script in N shards with GNU parallel (on
# this machine or on the hosts of --sshloginfile), then merges each sweep's
# shard CSVs and draws the figures (scripts/merge_shards.sh, the same step as
# the Slurm merge job).
#
#   scripts/parallel_sweep.sh [-n SHARDS] [-j JOBS] [--threads T] [--cpus C] [--no-pin]
#                             [--sshloginfile FILE] [--joblog FILE] [--resume|--resume-failed]
#                             [--results DIR] [--no-finish] [--dry-run]
#                             SCRIPT.lua [dcbench options...]
#
#   -n SHARDS    shards (default: as many as job slots)
#   -j JOBS      job slots (default: this machine's CPUs / C; with --sshloginfile,
#                parallel's default per host)
#   --threads T  threads per shard (dcbench --threads T; default 1)
#   --cpus C     CPUs per job slot (default T), for scripts whose points name more
#                threads than the default (a grid over threads, DCB_STUDY_THREADS)
#   --no-pin     do not pin the job slots to CPUs
#   --no-finish  merge, but do not draw the figures
#   --dry-run    print the pinning and the jobs, run nothing
# Shards that time on the same cores distort each other's timings. On this
# machine, when the slots fit (slots x C <= the CPUs this process may use), slot
# s is pinned with taskset to its own C CPUs: the ((s-1)C+1)-th to the sC-th of
# them. When they do not fit (or with --no-pin, or without taskset), it warns
# that the timings are distorted and runs unpinned. Remote slots (--sshloginfile)
# are not pinned: keep each host's slots x C within its cores.
# Each shard writes <results>/<sweep>/<name>.shardIofN.csv (scripts/run_shard.sh
# records how it ended). A shard that fails or has errored points does not stop
# the merge of what the shards wrote; the figures are drawn once every shard
# completed, and this script exits non-zero when one did not (running it again
# runs the shards again, each skipping the points it wrote; with --joblog,
# parallel's --resume skips the jobs the log has, --resume-failed runs the
# failed ones again). Remote hosts need the same checkout
# path and a shared results directory (or copy the shard CSVs back before
# merging). Paths must not contain spaces. Environment: DCBENCH (default
# build/dcbench).
set -eu
me=parallel_sweep.sh
shards="" jobs="" threads="" per="" results=results popts="" remote=0 pin=1 dry=0 mopts=""
root=$(cd "$(dirname "$0")/.." && pwd)
dcbench=${DCBENCH:-build/dcbench}
while [ $# -gt 0 ]; do
    case "$1" in
        -n) shards=$2; shift 2 ;;
        -j) jobs=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --cpus) per=$2; shift 2 ;;
        --no-pin) pin=0; shift ;;
        --sshloginfile) popts="$popts $1 $2"; remote=1; shift 2 ;;
        --joblog) popts="$popts $1 $2"; shift 2 ;;
        --resume|--resume-failed) popts="$popts $1"; shift ;;
        --results) results=$2; shift 2 ;;
        --no-finish) mopts="--no-finish"; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $me [-n SHARDS] [-j JOBS] [--threads T] [--cpus C] [--no-pin] [--sshloginfile F] [--joblog F] [--resume|--resume-failed] [--results DIR] [--no-finish] [--dry-run] SCRIPT.lua [dcbench options]" >&2; exit 2; }
script=$1; shift
# a --threads among the dcbench options counts as ours (one value for both);
# topt: the --threads to add to the dcbench options, where they have none
topt=""
[ -z "$threads" ] || topt="--threads $threads"
prev=""
for a in "$@"; do
    if [ "$prev" = --threads ]; then
        [ -z "$threads" ] || [ "$threads" = "$a" ] || { echo "$me: --threads $threads and the dcbench option --threads $a differ" >&2; exit 2; }
        threads=$a topt=""
    fi
    prev=$a
done
threads=${threads:-1}
case "$threads" in *[!0-9]*|0) echo "$me: --threads needs a positive integer, got '$threads'" >&2; exit 2 ;; esac
per=${per:-$threads}
case "$per" in *[!0-9]*|0) echo "$me: --cpus needs a positive integer, got '$per'" >&2; exit 2 ;; esac
[ "$per" -ge "$threads" ] || echo "$me: warning: --cpus $per < --threads $threads: each shard's threads share its CPUs, which distorts the timings" >&2
command -v parallel >/dev/null || { echo "$me: GNU parallel is not installed" >&2; exit 1; }

# the CPUs this process may use (its affinity), one per line
cpulist=$(awk '/^Cpus_allowed_list:/ { n = split($2, r, ","); for (i = 1; i <= n; i++) {
           k = split(r[i], ab, "-"); hi = k > 1 ? ab[2] : ab[1]; for (c = ab[1]; c <= hi; c++) print c } }' \
       /proc/self/status 2>/dev/null || true)
[ -n "$cpulist" ] || cpulist=$(seq 0 $(( $(nproc) - 1 )))
ncpu=$(echo "$cpulist" | wc -l)
if [ -z "$jobs" ] && [ "$remote" = 0 ]; then jobs=$((ncpu / per)); [ "$jobs" -ge 1 ] || jobs=1; fi
if [ -z "$shards" ]; then shards=${jobs:-$ncpu}; fi
case "$shards" in *[!0-9]*|0) echo "$me: -n needs a positive integer, got '$shards'" >&2; exit 2 ;; esac
[ -z "$jobs" ] || popts="$popts -j $jobs"

# --- one slot's cores per shard --------------------------------------------------
pinopts="" pinfile=""
if [ "$remote" = 1 ]; then
    echo "$me: the job slots of remote hosts are not pinned to CPUs: keep each host's slots x $per CPU(s) within its cores, or the timings are distorted" >&2
else
    case "$jobs" in *[!0-9]*) slots="" ;; *) slots=$jobs; [ "$slots" -le "$shards" ] || slots=$shards ;; esac
    if [ -z "$slots" ]; then
        echo "$me: warning: -j $jobs is not a number of slots: not pinned; shards that share cores distort each other's timings" >&2
    elif [ "$slots" -gt 1 ]; then
        need=$((slots * per))
        if [ "$need" -gt "$ncpu" ]; then
            echo "$me: warning: $slots job slots x $per CPU(s) = $need > $ncpu CPU(s): the shards share cores and their timings are distorted (use fewer -j, --threads or --cpus)" >&2
        elif [ "$pin" = 0 ]; then
            echo "$me: warning: --no-pin: $slots job slots are not pinned to CPUs; the OS may run shards on the same cores, which distorts their timings" >&2
        elif ! command -v taskset >/dev/null; then
            echo "$me: warning: taskset (util-linux) not found: $slots job slots are not pinned to CPUs; the OS may run shards on the same cores, which distorts their timings" >&2
        else
            pinfile=$(mktemp "${TMPDIR:-/tmp}/dcb_pin.XXXXXX")
            trap 'rm -f "$pinfile"' EXIT
            echo "$cpulist" | awk -v t="$per" -v s="$slots" '
                { c[NR] = $1 }
                END { for (k = 1; k <= s; k++) { l = ""; for (j = (k - 1) * t + 1; j <= k * t; j++) l = l (l == "" ? "" : ",") c[j]; print l } }' >"$pinfile"
            echo "$me: $slots job slots of $per CPU(s) ($threads thread(s) by default), each pinned to its own CPU(s): $(awk '{ printf "%sslot %d: %s", (NR > 1 ? ", " : ""), NR, $0 }' "$pinfile")" >&2
            pinopts="--pin-file $pinfile --slot {%}"
        fi
    fi
fi

# --- the shards --------------------------------------------------------------------
dry_opt=""
[ "$dry" = 0 ] || dry_opt="--dry-run"
# A shard that exits non-zero (3: some of its points errored; their reasons
# are in its output) does not stop the others or the merge; merge_shards.sh
# reads how each ended from its status file.
rc=0
# shellcheck disable=SC2086
seq 1 "$shards" | parallel $dry_opt $popts --line-buffer \
    "$root/scripts/run_shard.sh -C $(pwd) --dcbench $dcbench $pinopts $results {} $shards $script $topt $*" || rc=$?
[ "$dry" = 0 ] || exit 0
[ "$rc" = 0 ] || echo "$me: $rc shard job(s) failed or had errored points (see above); merging what they wrote" >&2

# --- merge, then the figures and tables of the merged results -----------------------
mrc=0
# shellcheck disable=SC2086
DCBENCH=$dcbench "$root/scripts/merge_shards.sh" $mopts "$results" "$shards" "$script" $topt "$@" || mrc=$?
[ "$mrc" = 0 ] || exit "$mrc"
exit "$rc"
