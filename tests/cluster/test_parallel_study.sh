#!/bin/sh
# test_parallel_study.sh — a training study through scripts/parallel_sweep.sh (GNU
# parallel, two local job slots) must merge to the same units and the same table
# as the serial run (every column but the times and the paths) and draw the
# serial run's figures.
#   tests/cluster/test_parallel_study.sh [STUDY.lua]   (default tests/cluster/tiny_study.lua)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script=${1:-$here/tiny_study.lua}
dcbench=${DCBENCH:-build/dcbench}
case $dcbench in /*) ;; *) dcbench=$root/$dcbench ;; esac
t=$(mktemp -d /tmp/dcb_parallel.XXXXXX)
trap 'rm -rf "$t"' EXIT
cd "$root"
DCBENCH=$dcbench scripts/parallel_sweep.sh -n 2 -j 2 --results "$t/par" "$script" > "$t/par.log" 2>&1 ||
    { cat "$t/par.log"; echo "test_parallel_study: FAIL: parallel_sweep.sh" >&2; exit 1; }
"$dcbench" --results "$t/ser" "$script" > "$t/ser.log" 2>&1 ||
    { cat "$t/ser.log"; echo "test_parallel_study: FAIL: serial run" >&2; exit 1; }
ign='train_s,train_s_per_img_*,infer_*,curve_csv,loadavg,steal_pct,others_cpus,contended'
n=0
for ser in "$t"/ser/ablations/*.csv; do
    b=$(basename "$ser")
    par=$t/par/ablations/$b
    [ -f "$par" ] || { echo "test_parallel_study: FAIL: the parallel run has no $b" >&2; exit 1; }
    case $b in
        *_table.csv)
            # a row per variant, keyed by label: equal but for the time columns
            for f in "$ser" "$par"; do
                awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) drop[i] = ($i ~ /^(infer|train)_us/) }
                         { o = ""; for (i = 1; i <= NF; i++) if (!drop[i]) o = o $i ","; print o }' "$f" > "$f.cmp"
            done
            cmp -s "$ser.cmp" "$par.cmp" || { diff "$ser.cmp" "$par.cmp" >&2;
                echo "test_parallel_study: FAIL: $b differs" >&2; exit 1; } ;;
        *) IGNORE_COLS=$ign "$here/test_slurm.sh" --compare "$ser" "$par" >/dev/null ||
               { echo "test_parallel_study: FAIL: $b differs" >&2; exit 1; } ;;
    esac
    n=$((n + 1))
done
[ "$n" -ge 2 ] || { echo "test_parallel_study: FAIL: expected a units CSV and a table, found $n files" >&2; exit 1; }
ls "$t"/par/ablations/*.shard1of2.csv >/dev/null
# the merge step drew the study's figures: the serial run's, none empty
nf=0
for ser in "$t"/ser/ablations/*.png "$t"/ser/ablations/*.pdf "$t"/ser/ablations/*.svg; do
    [ -e "$ser" ] || continue
    [ -s "$t/par/ablations/$(basename "$ser")" ] ||
        { echo "test_parallel_study: FAIL: the parallel run drew no $(basename "$ser") (or an empty one)" >&2; exit 1; }
    nf=$((nf + 1))
done
ls "$t"/par/ablations/*.png >/dev/null 2>&1 || { echo "test_parallel_study: FAIL: the parallel run drew no PNG" >&2; exit 1; }
echo "test_parallel_study: OK ($n files equal between 2 shards + merge and the serial run; $nf figures)"
