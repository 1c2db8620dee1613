#!/bin/bash
# slurm_submit.sh — runs a sweep script as a Slurm job array of N shards
# (scripts/slurm_sweep.sbatch) and, after the array, a merge job that merges
# every sweep's shard CSVs and draws the figures (scripts/merge_shards.sh).
#
#   scripts/slurm_submit.sh [-n SHARDS] [--threads T] [--cpus C] [--partition P] [--time HH:MM:SS]
#                           [--merge-time HH:MM:SS] [--results DIR] [--only LIST] [--no-merge]
#                           [--dry-run] [--parsable] SCRIPT.lua [dcbench options...]
#
#   -n SHARDS      the number of shards N (default 4; with --only, the N of the status
#                  files of an earlier submission when there is exactly one)
#   --threads T    threads per shard: each task asks for T CPUs (--cpus-per-task=T) and
#                  dcbench runs with --threads T (default 1; a --threads in the dcbench
#                  options counts the same)
#   --cpus C       CPUs per task instead of T, for scripts whose points name more threads
#                  than the default (a grid over threads, DCB_STUDY_THREADS)
#   --partition P, --time HH:MM:SS   per array task (default: the partition's default
#                  and 02:00:00); --merge-time for the merge job (default 00:30:00)
#   --results DIR  where the shards write (default results); the Slurm logs go to
#                  DIR/slurm/%x-%A_%a.out (tasks) and DIR/slurm/%x-%j.out (merge)
#   --only LIST    resubmit some shards of the same N, e.g. --only 2,5 or 3-4 (after they
#                  failed or their CSVs were deleted; a shard skips the points it has),
#                  and the merge job again
#   --no-merge     submit the array only
#   --dry-run      print the sbatch commands instead of running them
#   --parsable     print "ARRAY_JOB_ID MERGE_JOB_ID" on stdout (messages go to stderr)
# Other sbatch settings come from sbatch's own environment variables (SBATCH_ACCOUNT,
# SBATCH_QOS, ...). The merge job depends on the array with afterany, not afterok:
# it runs when every task has ended, however it ended, so a failed shard does not
# lose the merge of the others; merge_shards.sh then draws no figures, names the
# shards to run again (--only) and exits 1, so the merge job itself shows FAILED.
# The checkout, the results and DCBENCH (default build/dcbench) must be on a file
# system the nodes share.
set -euo pipefail
me=slurm_submit.sh
die() { echo "$me: $*" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
n="" threads="" cpus="" partition="" time="" mtime=00:30:00 results=results only="" merge=1 dry=0 parsable=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n=${2:-}; shift 2 ;;
        --threads) threads=${2:-}; shift 2 ;;
        --cpus) cpus=${2:-}; shift 2 ;;
        --partition) partition=${2:-}; shift 2 ;;
        --time) time=${2:-}; shift 2 ;;
        --merge-time) mtime=${2:-}; shift 2 ;;
        --results) results=${2:-}; shift 2 ;;
        --only) only=${2:-}; shift 2 ;;
        --no-merge) merge=0; shift ;;
        --dry-run) dry=1; shift ;;
        --parsable) parsable=1; shift ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        -*) die "unknown option '$1' (before SCRIPT.lua; --help lists them)" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || die "usage: $me [-n SHARDS] [--threads T] [--partition P] [--time HH:MM:SS] [--results DIR] [--only 2,5] SCRIPT.lua [dcbench options]"
script=$1; shift
[ -f "$script" ] || die "no such script: $script"
script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
stem=$(basename "$script" .lua)

# the dcbench options: --threads is taken out (one value for both), --shard and
# --results are the wrapper's
opts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --threads)
            [ -z "$threads" ] || [ "$threads" = "${2:-}" ] || die "--threads $threads and the dcbench option --threads ${2:-} differ"
            threads=${2:-}; shift 2 ;;
        --shard|--results) die "the dcbench option $1 is set by $me (use -n, --only, --results before SCRIPT.lua)" ;;
        *) opts+=("$1"); shift ;;
    esac
done
threads=${threads:-1}
case "$threads" in ''|*[!0-9]*|0) die "--threads needs a positive integer, got '$threads'" ;; esac
case "$cpus" in *[!0-9]*|0) die "--cpus needs a positive integer, got '$cpus'" ;; esac
[ -z "$cpus" ] || [ "$cpus" -ge "$threads" ] || echo "$me: warning: --cpus $cpus < --threads $threads: each task's threads share its CPUs, which distorts the timings" >&2

case "$results" in /*) ;; *) results=$PWD/$results ;; esac
[ "$dry" = 1 ] || { mkdir -p "$results" && results=$(cd "$results" && pwd); }
dcbench=${DCBENCH:-build/dcbench}
case "$dcbench" in /*) ;; *) dcbench=$root/$dcbench ;; esac
[ -x "$dcbench" ] || die "no dcbench at $dcbench (make all, or set DCBENCH)"

# the N of earlier submissions of this script (their status files)
ns=$(find "$results/shard-status" -name "$stem.shard*of*.status" 2>/dev/null | sed 's/.*of\([0-9]*\)\.status$/\1/' | sort -un || true)
if [ -z "$n" ]; then
    if [ -n "$only" ]; then
        { [ -n "$ns" ] && [ "$(wc -l <<<"$ns")" = 1 ]; } ||
            die "--only needs -n N: the status files under $results/shard-status name ${ns:+N = $(tr '\n' ' ' <<<"$ns")}${ns:-no earlier submission of $stem}"
        n=$ns
    else
        n=4
    fi
elif [ -n "$only" ] && [ -n "$ns" ] && ! grep -qx -- "$n" <<<"$ns"; then
    die "--only with -n $n, but the earlier submissions of $stem under $results ran N = $(tr '\n' ' ' <<<"$ns")(shard i of another N is another part of the points)"
fi
case "$n" in *[!0-9]*|0) die "-n needs a positive integer, got '$n'" ;; esac
array=1-$n
if [ -n "$only" ]; then
    IFS=, read -r -a parts <<<"$only"
    [ "${#parts[@]}" -gt 0 ] || die "--only needs a list of indices, e.g. 2,5 or 3-4"
    for p in "${parts[@]}"; do
        [[ $p =~ ^([0-9]+)(-([0-9]+))?$ ]] || die "--only $only: '$p' is not an index or a range a-b"
        lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
        { [ "$lo" -ge 1 ] && [ "$hi" -le "$n" ] && [ "$lo" -le "$hi" ]; } || die "--only $only: '$p' is not within 1..$n"
    done
    array=$only
fi

logs=$results/slurm
[ "$dry" = 1 ] || mkdir -p "$logs"
export RESULTS=$results DCBENCH=$dcbench
common=(--chdir="$root")
[ -z "$partition" ] || common+=(--partition="$partition")
arr=(sbatch --parsable --job-name="dcb-$stem" --array="$array" --cpus-per-task="${cpus:-$threads}" "${common[@]}")
[ -z "$time" ] || arr+=(--time="$time")
arr+=(--output="$logs/%x-%A_%a.out" --export="ALL,DCB_SHARDS=$n${cpus:+,DCB_CPUS=$cpus}"
      "$root/scripts/slurm_sweep.sbatch" "$script" --threads "$threads" "${opts[@]}")

if [ "$dry" = 1 ]; then
    echo "RESULTS=$(printf %q "$results") DCBENCH=$(printf %q "$dcbench") $(printf '%q ' "${arr[@]}")"
    aid=ARRAY_JOB_ID
else
    out=$("${arr[@]}") || die "sbatch of the array failed"
    aid=${out%%;*}
    echo "$me: array job $aid: shards $array of $n of $(basename "$script"), $threads thread(s) and ${cpus:-$threads} CPU(s) each; logs $logs/dcb-$stem-${aid}_<i>.out" >&2
fi
mid=""
if [ "$merge" = 1 ]; then
    mrg=(sbatch --parsable --job-name="dcb-$stem-merge" --dependency=afterany:"$aid" --cpus-per-task=1
         --time="$mtime" "${common[@]}" --output="$logs/%x-%j.out" --export=ALL
         "$root/scripts/merge_shards.sh" "$results" "$n" "$script" --threads "$threads" "${opts[@]}")
    if [ "$dry" = 1 ]; then
        echo "RESULTS=$(printf %q "$results") DCBENCH=$(printf %q "$dcbench") $(printf '%q ' "${mrg[@]}")"
        mid=MERGE_JOB_ID
    else
        out=$("${mrg[@]}") || {
            echo "$me: sbatch of the merge job failed; after array job $aid, run:" \
                 "DCBENCH=$dcbench $root/scripts/merge_shards.sh $results $n $script --threads $threads ${opts[*]}" >&2
            exit 1
        }
        mid=${out%%;*}
        echo "$me: merge job $mid (after array job $aid ends, however it ends): merges the shards and draws the figures; log $logs/dcb-$stem-merge-$mid.out" >&2
    fi
fi
[ "$parsable" = 0 ] || echo "$aid${mid:+ $mid}"
