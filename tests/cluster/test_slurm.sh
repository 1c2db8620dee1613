#!/bin/bash
# test_slurm.sh — proves scripts/slurm_submit.sh, slurm_sweep.sbatch and
# merge_shards.sh on a real single-node Slurm on this machine: a private munged
# + slurmctld + slurmd, all in a temp dir.
#
#   tests/cluster/test_slurm.sh [SCRIPT.lua [NTASKS [dcbench options...]]]
#   tests/cluster/test_slurm.sh --compare SERIAL.csv MERGED.csv
#
# First slurm_sweep.sbatch must refuse, naming the variables, a task of a
# partial array without DCB_SHARDS (also once through a real `sbatch --array=2`),
# a task id > N and a job that is no array. Then `slurm_submit.sh -n NTASKS
# SCRIPT.lua` submits the array and its merge job (afterany), with shard 2 made
# to fail (NTASKS >= 2): the task and the merge job must end FAILED, the merge
# job having merged the other shards and drawn no figures. `slurm_submit.sh
# --only 2` then runs shard 2 alone (N from the status files) and the merge job
# again, which must complete, merge every sweep's shards and draw the figures.
# The Slurm logs must be in <results>/slurm/ (none in the checkout). Last it runs
# the same script serially (no shards) and compares: the same point ids (column
# 1, no duplicates) and, for every point, the same values in every column not
# ignored; and the same figure files, none empty.
#
# SCRIPT.lua  default: a tiny conv2d timing sweep written into the temp dir.
# NTASKS      default 2.
# options     passed to dcbench in both runs; default $DCB_OPTS (default --quick).
# Environment:
#   DCBENCH        the program (default build/dcbench; a relative path is taken from
#                  the current directory if it is there, else from the repo root)
#   IGNORE_COLS    comma-separated column names or shell globs not compared
#                  (default time_*,phase_*,gflops,gmacs,prepare_s,iterations,repetitions,
#                  loadavg,steal_pct,others_cpus,contended: what else ran);
#                  e.g. for training studies add train_s,infer_*; IGNORE_COLS=none
#                  compares every column
#   THREADS        slurm_submit.sh --threads: CPUs per task and dcbench threads (default 1)
#   JOB_TIMEOUT    seconds to wait for each round of jobs (default 180)
#   KEEP_TMP=1     keep the temp dir (it is always kept on failure)
#   DCB_SLURM_PORT first port tried for slurmctld (default 6817; slurmd gets the
#                  next free one; a second run at the same time moves on)
# Needs root (slurmd runs the jobs as the submitting user, and everything runs
# as root here), slurm-wlm and munge (Debian: apt-get install slurm-wlm munge).
# Nothing outside the temp dir is written: the munge key, socket, Slurm state,
# spool, logs and slurm.conf are private, so it does not touch /etc/munge,
# /etc/slurm or a system munged/slurm.
set -euo pipefail

DEFAULT_IGNORE='time_*,phase_*,gflops,gmacs,prepare_s,iterations,repetitions,loadavg,steal_pct,others_cpus,contended'

die() { echo "test_slurm: FAIL: $*" >&2; exit 1; }
log() { echo "test_slurm: $*"; }

# ---------------------------------------------------------------------------
# compare_csv A.csv B.csv [IGNORE]
# A and B are sweep CSVs whose first column is point_id. Fails (status 1, the
# differences on stderr) unless both have the same set of non-ignored columns,
# the same point ids, no duplicate ids, and equal non-ignored values for every
# point. IGNORE: comma-separated names or globs (default $IGNORE_COLS, else the
# timing columns). On success prints the number of rows.
compare_csv() {
    local a=$1 b=$2 ignore=${3:-${IGNORE_COLS:-$DEFAULT_IGNORE}}
    [ -f "$a" ] || { echo "compare_csv: no such file: $a" >&2; return 1; }
    [ -f "$b" ] || { echo "compare_csv: no such file: $b" >&2; return 1; }
    awk -v ignore="$ignore" -v A="$a" -v B="$b" '
    function splitcsv(line, f,   n, i, c, q, cur, L) {
        sub(/\r$/, "", line)
        if (index(line, "\"") == 0) return split(line, f, ",")
        n = 0; cur = ""; q = 0; L = length(line)
        for (i = 1; i <= L; i++) {
            c = substr(line, i, 1)
            if (q) {
                if (c == "\"") { if (substr(line, i + 1, 1) == "\"") { cur = cur c; i++ } else q = 0 }
                else cur = cur c
            } else if (c == "\"") q = 1
            else if (c == ",") { f[++n] = cur; cur = "" }
            else cur = cur c
        }
        f[++n] = cur
        return n
    }
    function ignored(name,   i) {
        for (i = 1; i <= npat; i++) if (name ~ pat[i]) return 1
        return 0
    }
    function report(msg) {
        ndiff++
        if (ndiff <= 20) print "compare_csv: " msg > "/dev/stderr"
    }
    BEGIN {
        npat = 0
        n = split(ignore, p, ",")
        for (i = 1; i <= n; i++) {
            r = p[i]; gsub(/^[ \t]+|[ \t]+$/, "", r)
            if (r == "") continue
            gsub(/\./, "[.]", r); gsub(/\*/, ".*", r); gsub(/\?/, ".", r)
            pat[++npat] = "^" r "$"
        }
        ndiff = 0; fi = 0
    }
    FNR == 1 {
        fi++
        nh = splitcsv($0, h)
        if (h[1] != "point_id") { report(FILENAME ": first column is \"" h[1] "\", not point_id"); hdr_bad = 1 }
        nk[fi] = 0
        for (i = 2; i <= nh; i++) if (!ignored(h[i])) { nk[fi]++; kcol[fi, nk[fi]] = i; kname[fi, nk[fi]] = h[i]; has[fi, h[i]] = 1 }
        if (fi == 2) {
            for (j = 1; j <= nk[1]; j++) if (!((2, kname[1, j]) in has)) { report("column " kname[1, j] " is in " A " but not in " B); hdr_bad = 1 }
            for (j = 1; j <= nk[2]; j++) if (!((1, kname[2, j]) in has)) { report("column " kname[2, j] " is in " B " but not in " A); hdr_bad = 1 }
        }
        next
    }
    /^[ \t\r]*$/ { next }
    {
        n = splitcsv($0, f)
        pid = f[1]
        if ((fi, pid) in seen) { report("duplicate point id " pid " in " FILENAME); next }
        seen[fi, pid] = 1
        rows[fi]++
        if (fi == 1) {
            for (j = 1; j <= nk[1]; j++) val[pid, kname[1, j]] = f[kcol[1, j]]
        } else if (!((1, pid) in seen)) {
            report("point " pid " is in " B " but not in " A)
        } else if (!hdr_bad) {
            for (j = 1; j <= nk[2]; j++) {
                c = kname[2, j]
                if (val[pid, c] != f[kcol[2, j]])
                    report("point " pid ": " c " = \"" val[pid, c] "\" in " A ", \"" f[kcol[2, j]] "\" in " B)
            }
        }
    }
    END {
        if (fi < 2) { if (fi == 0) report(A " is empty"); report(B " is empty") }
        for (k in seen) {
            split(k, kk, SUBSEP)
            if (kk[1] == 1 && !((2, kk[2]) in seen)) report("point " kk[2] " is in " A " but not in " B)
        }
        if (ndiff > 20) print "compare_csv: ... " ndiff - 20 " more differences" > "/dev/stderr"
        if (ndiff) exit 1
        print rows[1] + 0
    }' "$a" "$b"
}

if [ "${1:-}" = "--compare" ]; then
    [ $# -ge 3 ] || die "usage: $0 --compare A.csv B.csv [IGNORE_COLS]"
    compare_csv "$2" "$3" "${4:-}"
    exit
fi
case "${1:-}" in -h|--help) sed -n '2,42p' "$0"; exit 0 ;; esac

# ---------------------------------------------------------------------------
START=$(date +%s)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
script=${1:-}
ntasks=${2:-2}
if [ $# -gt 2 ]; then shift 2; else set --; fi
if [ $# -gt 0 ]; then opts=("$@"); else read -r -a opts <<<"${DCB_OPTS---quick}"; fi
case "$ntasks" in ''|*[!0-9]*|0) die "NTASKS must be a positive integer, got '$ntasks'" ;; esac

[ "$(id -u)" = 0 ] || die "must run as root (it starts its own slurmctld/slurmd/munged)"
for c in munged mungekey munge unmunge slurmctld slurmd sbatch sinfo squeue scontrol scancel; do
    command -v "$c" >/dev/null || die "$c not found: apt-get install -y slurm-wlm munge"
done

dcbench=${DCBENCH:-build/dcbench}
case "$dcbench" in
    /*) ;;
    */*) if [ -x "$dcbench" ]; then dcbench=$(cd "$(dirname "$dcbench")" && pwd)/$(basename "$dcbench"); else dcbench=$REPO/$dcbench; fi ;;
    *) dcbench=$(command -v "$dcbench" || echo "$REPO/$dcbench") ;;
esac
[ -x "$dcbench" ] || die "no dcbench at $dcbench (make all, or set DCBENCH)"

# Slurm variables of an enclosing job or shell would leak into sbatch/squeue.
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SQUEUE|SINFO|SCONTROL)_' || true); do unset "$v"; done

if [ -n "$script" ]; then
    if [ -f "$script" ]; then script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
    elif [ -f "$REPO/$script" ]; then script=$REPO/$script
    else die "no such script: $script"; fi
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/dcb-slurm.XXXXXX")
chmod 755 "$T"
mkdir -p "$T/munge" "$T/state" "$T/spool/slurmd" "$T/log" "$T/out"
chmod 755 "$T/munge"   # munged wants its socket dir searchable by all

MUNGED_PID="" CTLD_PID="" SLURMD_PID=""
stop_pid() {  # stop_pid PID NAME: TERM, up to 10 s, then KILL
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then echo "test_slurm: $2 ($pid) did not stop, killing it" >&2; kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}
show_logs() {
    local f outs=()
    for f in "$T"/out/* "$T"/sharded/slurm/*; do [ -e "$f" ] && outs+=("${f#"$T"/}"); done
    for f in munge/munged.log log/munged.out log/slurmctld.log log/slurmctld.out log/slurmd.log \
             log/slurmd.out log/submit.err log/serial.out "${outs[@]}"; do
        case $f in  # a daemon's stdout repeats its log file
            log/slurm*.out) [ -s "$T/${f%.out}.log" ] && continue ;;
            log/munged.out) [ -s "$T/munge/munged.log" ] && continue ;;
        esac
        [ -s "$T/$f" ] || continue
        echo "----- $f (last 30 lines)" >&2
        tail -n 30 "$T/$f" >&2
    done
}
cleanup() {
    local rc=$? i
    set +e +E
    trap - EXIT INT TERM ERR
    if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
        if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then   # every job of this private cluster is ours
            scancel --quiet --user=root 2>/dev/null
            for i in $(seq 1 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
        fi
    fi
    stop_pid "$SLURMD_PID" slurmd
    stop_pid "$CTLD_PID" slurmctld
    stop_pid "$MUNGED_PID" munged
    if [ "$rc" != 0 ]; then
        show_logs
        echo "test_slurm: FAILED (status $rc); everything is in $T" >&2
    elif [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "test_slurm: kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
set -E
trap 'echo "test_slurm: FAIL: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$script" ]; then
    script=$T/tiny.lua
    cat >"$script" <<'EOF'
local dcb = require "dcb"
dcb.sweep{name = "tiny", op = "conv2d", base = {cin = 4, cout = 4, k = 3, pad = 1},
          grid = {N = {1, 2}, H = {8, 12}}, impls = {"naive", "im2col"}, measure = {"time"}}
EOF
fi

# --- munge: a private key and socket ----------------------------------------
key=$T/munge/munge.key
mungekey --create --keyfile="$key" >/dev/null 2>&1 ||
    dd if=/dev/urandom of="$key" bs=1 count=1024 status=none ||
    die "cannot create a munge key"
chmod 600 "$key"
sock=$T/munge/munge.socket.2
munged --foreground --force --socket="$sock" --key-file="$key" \
    --pid-file="$T/munge/munged.pid" --log-file="$T/munge/munged.log" \
    --seed-file="$T/munge/munged.seed" >"$T/log/munged.out" 2>&1 &
MUNGED_PID=$!
for i in $(seq 1 50); do [ -S "$sock" ] && break; kill -0 $MUNGED_PID 2>/dev/null || break; sleep 0.1; done
[ -S "$sock" ] || die "munged did not start"
munge -n -S "$sock" | unmunge -S "$sock" >/dev/null 2>&1 || die "munge/unmunge round trip failed"

# --- slurm.conf ----------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
p=${DCB_SLURM_PORT:-6817}
while ! port_free "$p"; do p=$((p + 1)); done; ctld_port=$p; p=$((p + 1))
while ! port_free "$p"; do p=$((p + 1)); done; slurmd_port=$p

nodeline=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1) || true
[ -n "$nodeline" ] || die "slurmd -C printed no NodeName line"
node=${nodeline%% *}; node=${node#NodeName=}
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$nodeline")
host=$(hostname -s)
: >"$T/plugstack.conf"
export SLURM_CONF=$T/slurm.conf
cat >"$SLURM_CONF" <<EOF
# generated by tests/cluster/test_slurm.sh
ClusterName=dcbtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool/slurmd
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
PlugStackConfig=$T/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=600
SlurmdTimeout=120
$nodeline NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

# --- daemons -------------------------------------------------------------------
slurmctld -D -f "$SLURM_CONF" >"$T/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
for i in $(seq 1 100); do scontrol ping >/dev/null 2>&1 && break; kill -0 $CTLD_PID 2>/dev/null || break; sleep 0.2; done
scontrol ping >/dev/null 2>&1 || die "slurmctld did not come up (port $ctld_port)"
slurmd -D -f "$SLURM_CONF" -N "$node" >"$T/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=""
for i in $(seq 1 120); do
    state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n 1)
    [ "$state" = idle ] && break
    kill -0 $SLURMD_PID 2>/dev/null || die "slurmd exited"
    sleep 0.5
done
[ "$state" = idle ] || die "node $node not idle after 60 s (state '${state:-none}')"
log "slurm $(sinfo -V | awk '{print $2}') up: node $node ($cpus CPUs), ports $ctld_port/$slurmd_port, in $T"

# --- the sbatch script's refusals (its own checks, no Slurm needed) ----------------
refused() {  # refused WHAT WANT VAR=VALUE...: slurm_sweep.sbatch must exit 2 naming WANT
    local what=$1 want=$2 out rc=0
    shift 2
    out=$(env -u DCB_SHARDS "$@" bash "$REPO/scripts/slurm_sweep.sbatch" "$script" 2>&1) || rc=$?
    [ "$rc" = 2 ] || die "slurm_sweep.sbatch with $what: status $rc, not 2 (refused): $out"
    grep -qF -- "$want" <<<"$out" || die "slurm_sweep.sbatch with $what: the refusal does not name '$want': $out"
}
refused "task 2 of --array=2, no DCB_SHARDS" "SLURM_ARRAY_TASK_MIN=2" \
    SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_MAX=2 SLURM_ARRAY_TASK_COUNT=1
refused "task 3 of --array=1,3, no DCB_SHARDS" "SLURM_ARRAY_TASK_COUNT=2" \
    SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 SLURM_ARRAY_TASK_COUNT=2
refused "task 5 with DCB_SHARDS=4" "SLURM_ARRAY_TASK_ID=5 is outside 1..4" SLURM_ARRAY_TASK_ID=5 DCB_SHARDS=4
refused "no array" "SLURM_ARRAY_TASK_ID is not set"
log "slurm_sweep.sbatch refuses a partial array without DCB_SHARDS, a task id > N and a non-array job"
dry=$("$REPO/scripts/slurm_submit.sh" --dry-run -n 3 --threads 2 --cpus 4 --results "$T/dry" "$script" 2>&1) ||
    die "slurm_submit.sh --dry-run: $dry"
for want in '--array=1-3 ' '--cpus-per-task=4 ' 'DCB_SHARDS=3' 'DCB_CPUS=4' 'slurm_sweep.sbatch' ' --threads 2' \
            '--dependency=afterany:ARRAY_JOB_ID' 'merge_shards.sh'; do
    grep -qF -- "$want" <<<"$dry" || die "slurm_submit.sh --dry-run does not say '$want': $dry"
done
[ ! -e "$T/dry" ] || die "slurm_submit.sh --dry-run created $T/dry"

# --- jobs ------------------------------------------------------------------------
threads=${THREADS:-1}
case "$threads" in ''|*[!0-9]*|0) die "THREADS must be a positive integer, got '$threads'" ;; esac
RESULTS=$T/sharded
LOGS=$RESULTS/slurm
stem=$(basename "$script" .lua)
export DCBENCH=$dcbench
cd "$REPO"
# the jobs' results, logs and figures stay out of the checkout
repo_outs() { find "$REPO" -maxdepth 1 -name 'slurm-*.out' | wc -l; }
outs_before=$(repo_outs)
wait_jobs() {  # wait_jobs ID...: until none is in the queue
    local ids deadline
    ids=$(IFS=,; echo "$*")
    deadline=$(( $(date +%s) + ${JOB_TIMEOUT:-180} ))
    while [ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || die "jobs $ids still queued after ${JOB_TIMEOUT:-180} s: $(squeue -h -j "$ids" -o '%i %T %R' | tr '\n' ' ')"
        sleep 0.5
    done
}
states() {  # states ID: "TASK STATE EXIT" per task (TASK - for a job that is no array), sorted
    scontrol -o show job "$1" 2>/dev/null | awk '{
        id = "-"; st = ec = "?"
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^ArrayTaskId=/) id = substr($i, 13)
            else if ($i ~ /^JobState=/) st = substr($i, 10)
            else if ($i ~ /^ExitCode=/) ec = substr($i, 10)
        }
        print id, st, ec }' | sort -n || true
}
expect_state() {  # expect_state ID TASK STATE EXIT WHAT
    local got
    got=$(awk -v t="$2" '$1 == t { print $2, $3 }' <<<"$(states "$1")")
    [ "$got" = "$3 $4" ] || die "$5: job $1 task $2 is '${got:-not found}', expected '$3 $4' (all: $(states "$1" | tr '\n' ' '))"
}
submit() {  # submit WHAT slurm_submit.sh-options...: sets AID and MID
    local out
    out=$("$REPO/scripts/slurm_submit.sh" --parsable --results "$RESULTS" --threads "$threads" "$@" \
              "$script" "${opts[@]}" 2>"$T/log/submit.err") || { cat "$T/log/submit.err" >&2; die "slurm_submit.sh $* failed"; }
    read -r AID MID <<<"$out"
    { [ -n "$AID" ] && [ -n "$MID" ]; } || die "slurm_submit.sh --parsable printed '$out', not two job ids"
}
figures() {  # the figure files next to the sweep CSVs under $1 (not the study units' own), relative
    find "$1" \( -name '*.png' -o -name '*.pdf' -o -name '*.svg' \) ! -path '*.units/*' ! -path "$1/slurm/*" | sed "s|^$1/||" | sort
}
# A task resubmitted on its own must be given N: without DCB_SHARDS a real
# `sbatch --array=2` is refused with the array's variables in its log.
RID=$(RESULTS=$RESULTS sbatch --parsable --array=2 --chdir="$REPO" --output="$T/out/refused-%A_%a.out" \
          scripts/slurm_sweep.sbatch "$script" "${opts[@]}") || die "sbatch --array=2 failed"
RID=${RID%%;*}

# Round 1: all N shards through slurm_submit.sh, shard 2 (of N >= 2) made to
# fail: the merge job (afterany) still runs, merges the others, draws no
# figures and fails.
fail=0
[ "$ntasks" -lt 2 ] || fail=2
if [ "$fail" != 0 ]; then
    cat >"$T/dcbench-failing" <<EOF
#!/bin/sh
# tests/cluster/test_slurm.sh: shard $fail of $ntasks fails while $T/fail-shard exists
case " \$* " in *" --shard $fail/$ntasks "*) if [ -e "$T/fail-shard" ]; then echo "test_slurm: shard $fail made to fail" >&2; exit 1; fi ;; esac
exec "$dcbench" "\$@"
EOF
    chmod +x "$T/dcbench-failing"
    : >"$T/fail-shard"
    export DCBENCH=$T/dcbench-failing
fi
submit -n "$ntasks"
note=""
[ "$fail" = 0 ] || note=", shard $fail made to fail"
log "submitted array job $AID (1-$ntasks, $threads CPU(s) and thread(s) per task$note) and merge job $MID (afterany): $(basename "$script") ${opts[*]}"
wait_jobs "$RID" "$AID" "$MID"
expect_state "$RID" 2 FAILED 2:0 "sbatch --array=2 without DCB_SHARDS"
grep -q 'SLURM_ARRAY_TASK_MIN=2' "$T/out/refused-${RID}_2.out" || die "the refused task's log does not name SLURM_ARRAY_TASK_MIN=2: $(cat "$T/out/refused-${RID}_2.out")"
for i in $(seq 1 "$ntasks"); do
    if [ "$i" = "$fail" ]; then expect_state "$AID" "$i" FAILED 1:0 "round 1"; else expect_state "$AID" "$i" COMPLETED 0:0 "round 1"; fi
    [ -s "$LOGS/dcb-$stem-${AID}_$i.out" ] || die "no log $LOGS/dcb-$stem-${AID}_$i.out"
done
cpt=$(scontrol -o show job "$AID" | sed -n 's|.* CPUs/Task=\([0-9]*\).*|\1|p' | sort -u)
[ "$cpt" = "$threads" ] || die "the array's tasks asked for '$cpt' CPU(s) each, not $threads (--threads $threads)"
! grep -l 'CPU(s) per task but the sweep runs' "$LOGS"/dcb-"$stem"-"$AID"_*.out >/dev/null || die "a task warns that its CPUs and threads differ"
mlog=$LOGS/dcb-$stem-merge-$MID.out
[ -s "$mlog" ] || die "no merge log $mlog"
if [ "$fail" != 0 ]; then
    expect_state "$MID" - FAILED 1:0 "the merge job after a failed shard"
    grep -q "shard(s) $fail of $ntasks did not complete" "$mlog" || die "the merge log does not name shard $fail as incomplete: $(tail -n 5 "$mlog")"
    grep -q 'dcbench merge: ' "$mlog" || die "the merge job merged nothing after shard $fail failed: $(tail -n 5 "$mlog")"
    [ -z "$(figures "$RESULTS")" ] || die "figures drawn although shard $fail failed: $(figures "$RESULTS" | tr '\n' ' ')"
    log "round 1: shard $fail failed, merge job $MID merged the other shards, drew no figures and FAILED"

    # Round 2: shard 2 again (N from the status files), and the merge job again.
    rm -f "$T/fail-shard"
    submit --only "$fail"
    log "resubmitted shard $fail: array job $AID (--array=$fail), merge job $MID"
    wait_jobs "$AID" "$MID"
    expect_state "$AID" "$fail" COMPLETED 0:0 "round 2 (--only $fail)"
    [ -z "$(states "$AID" | awk -v f="$fail" '$1 != f')" ] || die "--only $fail ran other tasks: $(states "$AID" | tr '\n' ' ')"
    [ -s "$LOGS/dcb-$stem-${AID}_$fail.out" ] || die "no log $LOGS/dcb-$stem-${AID}_$fail.out"
    mlog=$LOGS/dcb-$stem-merge-$MID.out
    [ -s "$mlog" ] || die "no merge log $mlog"
fi
expect_state "$MID" - COMPLETED 0:0 "the merge job"
[ "$(repo_outs)" = "$outs_before" ] || die "Slurm logs were written into $REPO (slurm-*.out)"

# --- what the merge job made ---------------------------------------------------------
bases=$(find "$RESULTS" -name "*.shard*of$ntasks.csv" | sed "s/\.shard[0-9]*of$ntasks\.csv\$//" | sort -u)
[ -n "$bases" ] || die "no shard CSVs (*.shardIof$ntasks.csv) under $RESULTS"
while IFS= read -r b; do
    shardrows=0
    for i in $(seq 1 "$ntasks"); do
        f=$b.shard${i}of$ntasks.csv
        [ -f "$f" ] || die "missing shard $i of $ntasks: $f"
        shardrows=$((shardrows + $(tail -n +2 "$f" | grep -c . || true)))
    done
    [ -f "$b.csv" ] || die "the merge job wrote no ${b#"$RESULTS"/}.csv"
    merged=$(tail -n +2 "$b.csv" | grep -c . || true)
    [ "$merged" = "$shardrows" ] || die "${b#"$RESULTS"/}: shards hold $shardrows rows but the merge has $merged (a point in two shards?)"
done <<<"$bases"
m_figs=$(figures "$RESULTS")
grep -q '\.png$' <<<"$m_figs" || die "the merge job drew no PNG under $RESULTS (log: $(tail -n 5 "$mlog"))"
while IFS= read -r f; do [ -s "$RESULTS/$f" ] || die "empty figure $RESULTS/$f"; done <<<"$m_figs"
log "merge job $MID: merged $(wc -l <<<"$bases") sweep(s), drew $(wc -l <<<"$m_figs") figure(s); logs in ${LOGS#"$T"/}: $(find "$LOGS" -type f -printf '%f\n' | sort | tr '\n' ' ')"

# --- the same script, serially ------------------------------------------------
SERIAL=$T/serial
"$dcbench" --results "$SERIAL" --threads "$threads" "${opts[@]}" "$script" >"$T/log/serial.out" 2>&1 || { tail -n 40 "$T/log/serial.out" >&2; die "serial run failed"; }

# --- compare ---------------------------------------------------------------------
sweep_csvs() {  # relative paths of the sweep CSVs (first column point_id, not shards) under $1
    find "$1" -name '*.csv' ! -name '*.shard*of*.csv' | sort | while read -r f; do
        if [ "$(head -n 1 "$f" | cut -d, -f1 | tr -d "\r\"")" = point_id ]; then echo "${f#"$1"/}"; fi
    done
}
s_list=$(sweep_csvs "$SERIAL"); m_list=$(sweep_csvs "$RESULTS")
[ -n "$s_list" ] || die "the serial run wrote no sweep CSV under $SERIAL"
[ "$s_list" = "$m_list" ] || die "different sweep CSVs: serial [$(tr '\n' ' ' <<<"$s_list")] vs merged [$(tr '\n' ' ' <<<"$m_list")]"
rows=0
while IFS= read -r f; do
    n=$(compare_csv "$SERIAL/$f" "$RESULTS/$f") || die "$f: the merged shards differ from the serial run (ignoring ${IGNORE_COLS:-$DEFAULT_IGNORE})"
    log "$f: $n rows, same points and values (serial vs $ntasks shards)"
    rows=$((rows + n))
done <<<"$s_list"
[ "$rows" -gt 0 ] || die "the sweeps have no rows"
s_figs=$(figures "$SERIAL")
[ "$s_figs" = "$m_figs" ] || die "different figures: serial [$(tr '\n' ' ' <<<"$s_figs")] vs merge job [$(tr '\n' ' ' <<<"$m_figs")]"
log "the same $(wc -l <<<"$m_figs") figure file(s) as the serial run"
log "took $(( $(date +%s) - START )) s"
echo "test_slurm: OK ($ntasks tasks, $rows rows)"
