#!/bin/sh
# test_parallel_sweep.sh — scripts/parallel_sweep.sh with two local job slots on
# a timing sweep, for real:
#  1. shard 2 made to fail: the script exits non-zero, shard 1's points are
#     merged, no figures are drawn;
#  2. run again: shard 1 skips its points, shard 2 runs, the merge draws the
#     figures (the same files as a serial run, none empty) and the merged CSV
#     equals the serial run row for row (tests/cluster/test_slurm.sh --compare);
#  3. on a machine with 2 or more CPUs each job slot ran pinned to a CPU of its
#     own (else the warning that the timings are distorted); a dry run with
#     2 slots x as many threads as there are CPUs warns and runs nothing.
#   tests/cluster/test_parallel_sweep.sh        (DCBENCH: default build/dcbench)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dcbench=${DCBENCH:-build/dcbench}
case $dcbench in /*) ;; *) dcbench=$root/$dcbench ;; esac
t=$(mktemp -d "${TMPDIR:-/tmp}/dcb_parsweep.XXXXXX")
trap 'rm -rf "$t"' EXIT
fail() { echo "test_parallel_sweep: FAIL: $*" >&2; [ ! -f "$t/log" ] || tail -n 30 "$t/log" >&2; trap - EXIT; echo "test_parallel_sweep: kept $t" >&2; exit 1; }
cat >"$t/tiny.lua" <<'EOF'
local dcb = require "dcb"
dcb.sweep{name = "tiny", op = "conv2d", base = {cin = 4, cout = 4, k = 3, pad = 1},
          grid = {N = {1, 2}, H = {8, 12}}, impls = {"naive", "im2col"}, measure = {"time"}}
EOF
# a dcbench that records each shard's CPUs and fails shard 2 while $t/fail exists
cat >"$t/dcbench" <<EOF
#!/bin/sh
case " \$* " in *" --shard "*)
    echo "\$(echo "\$*" | sed 's|.*--shard \\([0-9]*/[0-9]*\\).*|\\1|') \$(awk '/^Cpus_allowed_list:/ { print \$2 }' /proc/self/status)" >>"$t/affinity" ;;
esac
case " \$* " in *" --shard 2/2 "*) if [ -e "$t/fail" ]; then echo "test_parallel_sweep: shard 2 made to fail" >&2; exit 1; fi ;; esac
exec "$dcbench" "\$@"
EOF
chmod +x "$t/dcbench"
cd "$root"
figures() { find "$1" \( -name '*.png' -o -name '*.pdf' -o -name '*.svg' \) | sed "s|^$1/||" | sort; }
ncpu=$(nproc)

# 1. shard 2 fails
: >"$t/fail"
rc=0
DCBENCH=$t/dcbench scripts/parallel_sweep.sh -n 2 -j 2 --results "$t/par" "$t/tiny.lua" --quick >"$t/log" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "parallel_sweep.sh exited 0 although shard 2 failed"
grep -q 'shard(s) 2 of 2 did not complete' "$t/log" || fail "no word that shard 2 did not complete"
[ -f "$t/par/tiny/tiny.csv" ] || fail "shard 1's points were not merged after shard 2 failed"
[ "$(tail -n +2 "$t/par/tiny/tiny.csv" | grep -c .)" = "$(tail -n +2 "$t/par/tiny/tiny.shard1of2.csv" | grep -c .)" ] ||
    fail "the merge after the failure does not hold shard 1's rows"
[ -z "$(figures "$t/par")" ] || fail "figures drawn although shard 2 failed: $(figures "$t/par" | tr '\n' ' ')"
echo "test_parallel_sweep: shard 2 failed: status $rc, shard 1 merged, no figures"

# 2. again: shard 2 runs, the merge draws the figures
rm -f "$t/fail"
DCBENCH=$t/dcbench scripts/parallel_sweep.sh -n 2 -j 2 --results "$t/par" "$t/tiny.lua" --quick >"$t/log" 2>&1 ||
    fail "parallel_sweep.sh run again: status $?"
grep -q 'tiny: 4 points (0 measured, 4 done earlier' "$t/log" || fail "shard 1 measured its points again"
"$dcbench" --results "$t/ser" --quick "$t/tiny.lua" >"$t/ser.log" 2>&1 || { cat "$t/ser.log" >&2; fail "serial run"; }
n=$("$here/test_slurm.sh" --compare "$t/ser/tiny/tiny.csv" "$t/par/tiny/tiny.csv") || fail "the merged CSV differs from the serial run"
pf=$(figures "$t/par") sf=$(figures "$t/ser")
echo "$pf" | grep -q '\.png$' || fail "the merge drew no PNG"
[ "$pf" = "$sf" ] || fail "figures: parallel [$(echo "$pf" | tr '\n' ' ')] vs serial [$(echo "$sf" | tr '\n' ' ')]"
for f in $pf; do [ -s "$t/par/$f" ] || fail "empty figure $f"; done
echo "test_parallel_sweep: run again: $n rows equal to the serial run, figures $(echo "$pf" | tr '\n' ' ')"

# 3. the job slots' CPUs
if [ "$ncpu" -ge 2 ]; then
    grep -q 'each pinned to its own CPU' "$t/log" || fail "2 slots on $ncpu CPUs were not pinned"
    # the last run's two shards: one CPU each, not the same
    a1=$(grep '^1/2 ' "$t/affinity" | tail -n 1 | cut -d' ' -f2) a2=$(grep '^2/2 ' "$t/affinity" | tail -n 1 | cut -d' ' -f2)
    case "$a1$a2" in *[!0-9]*|'') fail "shards not on one CPU each: shard 1 on '$a1', shard 2 on '$a2'" ;; esac
    [ "$a1" != "$a2" ] || fail "both shards ran on CPU $a1"
    echo "test_parallel_sweep: shard 1 ran on CPU $a1, shard 2 on CPU $a2"
else
    grep -q 'timings are distorted' "$t/log" || fail "2 slots on 1 CPU without the warning"
fi
scripts/parallel_sweep.sh --dry-run -n 2 -j 2 --threads "$ncpu" --results "$t/dry" "$t/tiny.lua" >"$t/log" 2>&1 || fail "the dry run: status $?"
grep -q "2 job slots x $ncpu CPU(s) = $((2 * ncpu)) > $ncpu CPU(s).*timings are distorted" "$t/log" || fail "no warning for 2 slots x $ncpu threads"
[ ! -e "$t/dry" ] || fail "the dry run wrote $t/dry"
echo "test_parallel_sweep: OK"
