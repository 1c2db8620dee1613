#!/bin/sh
# merge_shards.sh — after the N shards of a sweep script: merges every sweep's
# (and study's) shard CSVs, then runs the script once without --shard (the
# "finish": every point is done, so it only draws the figures and tables).
# scripts/parallel_sweep.sh runs it after its jobs; scripts/slurm_submit.sh
# submits it as the job that depends on the array (afterany).
#
#   scripts/merge_shards.sh [--no-finish] [--finish-anyway] RESULTS N SCRIPT.lua [dcbench options...]
#
# The dcbench options must be those the shards ran with (--threads is part of
# every point's id; --quick shrinks the shipped grids). Each sweep's <name>.csv is made with
# `dcbench merge` from the <name>.shardIofN.csv under RESULTS that exist, so a
# failed shard does not lose what the others measured. How each shard ended is
# read from RESULTS/shard-status/<script>.shardIofN.status (scripts/run_shard.sh
# writes them): the finish runs only when every shard 1..N ended with status 0
# or 3 (3: some points errored; their rows count as done). Otherwise it names
# the shards to run again and draws nothing, since the finish would measure
# their missing points here, in the merge step (--finish-anyway does that).
# Shards run without run_shard.sh leave no status files: then the finish runs.
#   --no-finish      merge only
# Exit status: 0; 1 a shard did not complete (unless --finish-anyway) or a
# merge failed (what could be merged is merged); 3 every shard completed but
# points errored; else the finish's status. Environment: DCBENCH (default
# build/dcbench). Paths may hold spaces but not newlines.
set -u
finish=1 anyway=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-finish) finish=0; shift ;;
        --finish-anyway) anyway=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -ge 3 ] || { echo "usage: merge_shards.sh [--no-finish] [--finish-anyway] RESULTS N SCRIPT.lua [dcbench options]" >&2; exit 2; }
results=$1 n=$2 script=$3
shift 3
case "$n" in ''|*[!0-9]*|0) echo "merge_shards.sh: N must be a positive integer, got '$n'" >&2; exit 2 ;; esac
dcbench=${DCBENCH:-build/dcbench}
[ -d "$results" ] || { echo "merge_shards.sh: no results directory $results" >&2; exit 1; }
stem=$(basename "$script" .lua)
say() { echo "merge_shards.sh: $*" >&2; }

# --- how the shards ended -------------------------------------------------------
incomplete="" errored="" nstatus=0
i=1
while [ "$i" -le "$n" ]; do
    st=$results/shard-status/$stem.shard${i}of$n.status
    if [ -f "$st" ]; then
        nstatus=$((nstatus + 1))
        s=$(sed -n 1p "$st")
        case "$s" in
            0) ;;
            3) errored="$errored $i" ;;
            running) incomplete="$incomplete $i"; say "shard $i/$n did not finish: its status is still 'running' ($(sed -n 2p "$st"); killed, or still running)" ;;
            *) incomplete="$incomplete $i"; say "shard $i/$n failed with status $s ($(sed -n 2p "$st"))" ;;
        esac
    else
        incomplete="$incomplete $i"
    fi
    i=$((i + 1))
done
if [ "$nstatus" = 0 ]; then
    say "no shard status files ($results/shard-status/$stem.shard*of$n.status): the shards were not run by run_shard.sh; taking them as complete"
    incomplete=""
else
    for i in $incomplete; do
        [ -f "$results/shard-status/$stem.shard${i}of$n.status" ] || say "shard $i/$n never started (no $results/shard-status/$stem.shard${i}of$n.status)"
    done
fi

# --- merge every sweep that has shard CSVs of N ------------------------------------
# merge_one BASE: BASE.csv from the BASE.shardIofN.csv that exist (a function,
# so that its "$@" holds the parts)
merge_one() {
    b=$1 missing=""
    set --
    i=1
    while [ "$i" -le "$n" ]; do
        if [ -f "$b.shard${i}of$n.csv" ]; then set -- "$@" "$b.shard${i}of$n.csv"; else missing="$missing $i"; fi
        i=$((i + 1))
    done
    [ -z "$missing" ] || say "${b#"$results"/}: no CSV from shard(s)$missing of $n; merging the others"
    "$dcbench" merge "$b.csv" "$@" </dev/null
}
rc=0 nmerged=0
bases=$(find "$results" -name "*.shard*of$n.csv" | sed "s/\.shard[0-9]*of$n\.csv\$//" | sort -u)
if [ -z "$bases" ]; then
    say "no shard CSVs (*.shardIof$n.csv) under $results"
else
    while IFS= read -r b; do
        if merge_one "$b"; then nmerged=$((nmerged + 1)); else say "dcbench merge $b.csv failed"; rc=1; fi
    done <<EOF
$bases
EOF
fi

# --- the finish: figures and tables of the merged results -------------------------
if [ -n "$incomplete" ]; then
    list=$(printf "%s" "${incomplete# }" | tr " " ",")
    if [ "$anyway" = 0 ] || [ "$finish" = 0 ]; then
        say "shard(s) $list of $n did not complete: merged $nmerged sweep(s) from what the shards wrote, drew no figures."
        say "Run them again (a shard skips the points it wrote: scripts/slurm_submit.sh -n $n --only $list ..., or scripts/parallel_sweep.sh -n $n ... again); then the figures are drawn."
        exit 1
    fi
    say "shard(s) $list of $n did not complete; --finish-anyway: the finish measures their missing points here"
fi
if [ "$finish" = 1 ]; then
    frc=0
    "$dcbench" --results "$results" "$@" "$script" || frc=$?
    if [ "$frc" != 0 ]; then
        say "the finish (dcbench --results $results $* $script) exited with status $frc"
        [ "$rc" != 0 ] || rc=$frc
    fi
fi
if [ "$rc" = 0 ] && [ -n "$errored" ]; then
    say "shard(s)$errored of $n had points that errored (their reasons are in those shards' output)"
    rc=3
fi
exit "$rc"
