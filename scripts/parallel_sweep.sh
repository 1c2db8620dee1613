#!/bin/sh
# parallel_sweep.sh — runs a sweep script in N shards with GNU parallel (on
# this machine or on the hosts of --sshloginfile), then merges each sweep's
# shard CSVs into one (dcbench merge: by point id, no duplicates).
#
#   scripts/parallel_sweep.sh [-n SHARDS] [-j JOBS] [--sshloginfile FILE] [--joblog FILE]
#                             [--resume] [--results DIR] SCRIPT.lua [dcbench options...]
#
# Each shard writes <results>/<sweep>/<name>.shardIofN.csv; a shard that is run
# again (--resume re-runs only failed/missing jobs; dcbench itself skips the
# points a shard already wrote) loses nothing. Remote hosts need the same
# checkout path and a shared results directory (or copy the shard CSVs back
# before merging).
set -eu
shards=$(nproc)
jobs=""
results=results
popts=""
finish=1
dcbench=${DCBENCH:-build/dcbench}
while [ $# -gt 0 ]; do
    case "$1" in
        -n) shards=$2; shift 2 ;;
        -j) jobs=$2; shift 2 ;;
        --sshloginfile|--joblog) popts="$popts $1 $2"; shift 2 ;;
        --resume) popts="$popts --resume"; shift ;;
        --results) results=$2; shift 2 ;;
        --no-finish) finish=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [-n SHARDS] [-j JOBS] [--sshloginfile F] [--joblog F] [--resume] [--no-finish] SCRIPT.lua" >&2; exit 2; }
script=$1; shift
command -v parallel >/dev/null || { echo "parallel_sweep.sh: GNU parallel is not installed" >&2; exit 1; }
[ -n "$jobs" ] && popts="$popts -j $jobs"
# shellcheck disable=SC2086
# A shard that exits non-zero (3: some of its points errored; their reasons
# are in its output) does not stop the merge of what the shards wrote; this
# script then exits non-zero after the merge and the figures.
rc=0
seq 1 "$shards" | parallel $popts --line-buffer \
    "cd $(pwd) && $dcbench --results $results --shard {}/$shards $* $script" || rc=$?
[ "$rc" = 0 ] || echo "parallel_sweep.sh: $rc shard job(s) failed or had errored points (see above); merging what they wrote" >&2
# merge every sweep that has shard files of this run
for first in $(find "$results" -name "*.shard1of$shards.csv"); do
    out=${first%.shard1of$shards.csv}.csv
    parts=$(ls "${first%.shard1of$shards.csv}".shard*of"$shards".csv)
    # shellcheck disable=SC2086
    "$dcbench" merge "$out" $parts
done
# the figures and tables of the merged results
if [ "$finish" = 1 ]; then
    # shellcheck disable=SC2086
    "$dcbench" --results "$results" $* "$script" || rc=$?
fi
exit "$rc"
