#!/bin/sh
# run_shard.sh — runs shard I of N of a sweep script and records how it ended,
# for scripts/merge_shards.sh. scripts/slurm_sweep.sbatch (a Slurm array task)
# and scripts/parallel_sweep.sh (a GNU parallel job) run every shard through it.
#
#   scripts/run_shard.sh [-C DIR] [--dcbench PROG] [--pin-file FILE --slot S]
#                        RESULTS I N SCRIPT.lua [dcbench options...]
#
# It runs `PROG --results RESULTS --shard I/N [options] SCRIPT.lua` (PROG:
# --dcbench, else $DCBENCH, else build/dcbench) and keeps its status in
# RESULTS/shard-status/<script>.shardIofN.status: "running" while it runs, then
# its exit status (0; 3: points errored, their rows are written; anything else:
# it failed; 143/130: stopped by SIGTERM/SIGINT, e.g. scancel or a time limit).
# A shard killed outright (SIGKILL, a lost node) stays "running"; one that never
# started has no file. merge_shards.sh draws the figures only when every shard
# of 1..N ended with 0 or 3.
#   -C DIR           cd to DIR first (relative paths are taken from there)
#   --pin-file FILE  line S of FILE is a CPU list (taskset -c) for job slot S:
#   --slot S         the shard runs on those CPUs only (parallel_sweep.sh)
set -eu
dir="" prog=${DCBENCH:-build/dcbench} pinfile="" slot=""
while [ $# -gt 0 ]; do
    case "$1" in
        -C) dir=$2; shift 2 ;;
        --dcbench) prog=$2; shift 2 ;;
        --pin-file) pinfile=$2; shift 2 ;;
        --slot) slot=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -ge 4 ] || { echo "usage: run_shard.sh [-C DIR] [--dcbench PROG] [--pin-file FILE --slot S] RESULTS I N SCRIPT.lua [dcbench options]" >&2; exit 2; }
results=$1 i=$2 n=$3 script=$4
shift 4
case "$i$n" in *[!0-9]*) echo "run_shard.sh: I and N must be integers, got I=$i N=$n" >&2; exit 2 ;; esac
if [ "$i" -lt 1 ] || [ "$n" -lt 1 ] || [ "$i" -gt "$n" ]; then
    echo "run_shard.sh: shard $i of $n: need 1 <= I <= N" >&2; exit 2
fi
[ -z "$dir" ] || cd "$dir"
pin=""
if [ -n "$pinfile" ]; then
    [ -n "$slot" ] || { echo "run_shard.sh: --pin-file needs --slot" >&2; exit 2; }
    pin=$(sed -n "${slot}p" "$pinfile")
    [ -n "$pin" ] || { echo "run_shard.sh: $pinfile has no CPU list for slot $slot" >&2; exit 2; }
fi
stem=$(basename "$script" .lua)
sdir=$results/shard-status
st=$sdir/$stem.shard${i}of$n.status
mkdir -p "$sdir"
where="host $(hostname 2>/dev/null || echo '?'), pid $$${SLURM_JOB_ID:+, Slurm job ${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+_$SLURM_ARRAY_TASK_ID}}${pin:+, CPUs $pin}"
stamp() { date '+%Y-%m-%d %H:%M:%S'; }
printf 'running\n%s, started %s\n' "$where" "$(stamp)" >"$st"
# a shard stopped by a signal (scancel, a time limit's SIGTERM) records it
trap 'printf "143\n%s, stopped by SIGTERM %s\n" "$where" "$(stamp)" >"$st"; exit 143' TERM
trap 'printf "130\n%s, stopped by SIGINT %s\n" "$where" "$(stamp)" >"$st"; exit 130' INT
[ -z "$pin" ] || echo "run_shard.sh: shard $i/$n in job slot $slot, pinned to CPU(s) $pin" >&2
rc=0
if [ -n "$pin" ]; then
    taskset -c "$pin" "$prog" --results "$results" --shard "$i/$n" "$@" "$script" || rc=$?
else
    "$prog" --results "$results" --shard "$i/$n" "$@" "$script" || rc=$?
fi
printf '%s\n%s, ended %s\n' "$rc" "$where" "$(stamp)" >"$st"
exit "$rc"
