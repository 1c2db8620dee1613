#!/bin/bash
# wait_policy.sh — sweeps/bench/contend.lua under each OpenMP wait policy,
# quiet and with a second identical process running (two 2-thread OpenMP
# processes on the cores), 3 alternations; one line per variant:
#   <rep> <quiet|contended> <policy> <variant> <median> ms [min, max]
# docs/PERFORMANCE.md ("Under load") tabulates the medians.
#   scripts/wait_policy.sh [dcbench]   (default build/dcbench)
DCB=${1:-build/dcbench}
for rep in 1 2 3; do
    for pol in GOMP_SPINCOUNT=300000 GOMP_SPINCOUNT=30000 GOMP_SPINCOUNT=10000 GOMP_SPINCOUNT=3000 \
               GOMP_SPINCOUNT=1000 OMP_WAIT_POLICY=passive; do
        env "$pol" "$DCB" sweeps/bench/contend.lua 2>&1 | tail -4 | sed "s/^/$rep quiet $pol /"
        env "$pol" "$DCB" sweeps/bench/contend.lua >/dev/null 2>&1 &
        env "$pol" "$DCB" sweeps/bench/contend.lua 2>&1 | tail -4 | sed "s/^/$rep contended $pol /"
        wait
    done
done
