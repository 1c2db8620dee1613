/* OPENBLAS_CORETYPE in the environment pins OpenBLAS to one core's kernels
 * (this project's VMs set Haswell: AVX2 kernels on CPUs that may do better).
 * Where OpenBLAS does not know the CPU and falls back to an old core, the
 * program re-executes with the core the CPU can run (DCB_AUTO_CORETYPE says
 * so); DCB_KEEP_CORETYPE=1 leaves OpenBLAS alone and only warns.
 * OpenBLAS reads it once, when the library loads, so the only cure is to
 * re-execute without it. The forced value is kept in DCB_FORCED_CORETYPE so
 * that results can report it. DCB_KEEP_CORETYPE=1 keeps the override. */
#ifndef DCB_CORETYPE_H
#define DCB_CORETYPE_H
#include "dcb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS falls back to old kernels on CPUs it does not know (0.3.21 on
 * Emerald Rapids: Prescott, SSE3, at a fraction of the machine's speed).
 * Say so when the core it runs has no AVX2 kernels and the CPU has AVX2. */
static inline void dcb_warn_fallback_core(void) {
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                      "Sandybridge", "Barcelona", "Bobcat", "Bulldozer", "Piledriver",
                                      "Steamroller", "Katmai", "Coppermine", "Northwood", "Banias"};
    if (strcmp(dcb_blas_name(), "openblas") != 0) return;
    const char *core = dcb_blas_core();
#if defined(__x86_64__) || defined(__i386__)
    if (!core || !__builtin_cpu_supports("avx2")) return;
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcmp(core, old[i]) == 0) {
            fprintf(stderr,
                    "dcbench: warning: OpenBLAS runs its %s kernels on a CPU with AVX2%s (it does not know "
                    "this CPU, or OPENBLAS_CORETYPE says so); BLAS-based results will be slow: set "
                    "OPENBLAS_CORETYPE=%s DCB_KEEP_CORETYPE=1\n",
                    core, __builtin_cpu_supports("avx512f") ? " and AVX-512" : "",
                    __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell");
            return;
        }
#else
    (void)core;
    (void)old;
#endif
}

/* The core to name when OpenBLAS fell back to an old one on a CPU it does not
 * know: SkylakeX where the CPU has the AVX-512 subsets those kernels use,
 * Haswell where it has AVX2 + FMA; NULL where OpenBLAS chose well. */
static inline const char *dcb_fallback_core_fix(void) {
#if defined(__x86_64__) || defined(__i386__)
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                      "Sandybridge", "Barcelona", "Bobcat", "Bulldozer", "Piledriver",
                                      "Steamroller", "Katmai", "Coppermine", "Northwood", "Banias"};
    if (strcmp(dcb_blas_name(), "openblas") != 0) return NULL;
    const char *core = dcb_blas_core();
    if (!core || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return NULL;
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcmp(core, old[i]) == 0)
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                           __builtin_cpu_supports("avx512cd")
                       ? "SkylakeX"
                       : "Haswell";
#endif
    return NULL;
}

/* OpenMP's wait policy. libgomp's threads spin up to 300000 times at a
 * barrier before they sleep (its default where threads <= cores). On a
 * machine where another process holds a core, a thread that spins out its
 * time slice while its partner waits to be scheduled turns every barrier
 * into a scheduler quantum: two such dcbench runs at once took a 2-thread
 * depthwise conv from 0.12 to 10 ms and a Winograd one from 2.9 to 48 ms
 * (docs/PERFORMANCE.md, "Under load"). A spin of 3000 (a few tens of
 * microseconds) kept the quiet times and cut those to 0.38 and 6.3 ms;
 * OMP_WAIT_POLICY=passive doubled the quiet depthwise time. libgomp reads
 * the setting once, at load, so dcbench sets GOMP_SPINCOUNT=3000 where
 * neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY is set, and re-executes;
 * DCB_AUTO_SPINCOUNT records that it did. Returns 1 where it changed the
 * environment (the caller re-executes).
 *
 * Where other processes already hold half a core or more when dcbench
 * starts, it takes a spin of 1000 instead: that met the 1.5x-of-1-thread
 * target for contended 2-thread runs on all three VMs measured, where 3000
 * left the depthwise layer at 1.6-2.0x; on a quiet machine 1000 cost one of
 * them 34-56% of its 2-thread speed, so it is not the default. Contention
 * that begins after the start is not seen; DCB_WAIT_REASON says what was. */
#define DCB_SPINCOUNT "3000"
#define DCB_SPINCOUNT_CONTENDED "1000"

/* Busy jiffies of all CPUs and the total, from /proc/stat's first line; -1
 * where it cannot be read. */
static inline int dcb_proc_stat_cpu(unsigned long long *busy, unsigned long long *total) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long v[8] = {0};
    const int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                         &v[6], &v[7]);
    fclose(f);
    if (n < 5) return -1;
    *total = 0;
    for (int i = 0; i < 8; i++) *total += v[i];
    *busy = *total - v[3] - v[4]; /* not idle, not iowait */
    return 0;
}

/* Cores' worth of CPU time other processes use now: a 100 ms sample of
 * /proc/stat (this process sleeps through it), only where the 1-minute load
 * average says there may be any (a quiet start costs nothing); -1 unknown. */
static inline double dcb_others_busy_now(void) {
    double la = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    const int got = fscanf(f, "%lf", &la);
    fclose(f);
    if (got != 1) return -1;
    if (la < 0.3) return 0;
    unsigned long long b0, t0, b1, t1;
    if (dcb_proc_stat_cpu(&b0, &t0)) return -1;
    usleep(100000);
    if (dcb_proc_stat_cpu(&b1, &t1) || t1 <= t0) return -1;
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return (double)(b1 - b0) / (double)(t1 - t0) * (double)(ncpu > 0 ? ncpu : 1);
}
/* Under valgrind /proc/self/exe is valgrind's tool, which refuses to be run
 * directly: no re-execution there (its preload library is in LD_PRELOAD). */
static inline int dcb_under_valgrind(void) {
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

static inline int dcb_set_wait_policy(void) {
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY") || dcb_under_valgrind()) return 0;
    const double others = dcb_others_busy_now();
    const char *spin = others >= 0.5 ? DCB_SPINCOUNT_CONTENDED : DCB_SPINCOUNT;
    char why[128];
    if (others >= 0.5)
        snprintf(why, sizeof why, "other processes used %.1f cores at start", others);
    else
        snprintf(why, sizeof why, others < 0 ? "the machine's load was not readable" : "quiet at start");
    setenv("GOMP_SPINCOUNT", spin, 1);
    setenv("DCB_AUTO_SPINCOUNT", spin, 1);
    setenv("DCB_WAIT_REASON", why, 1);
    return 1;
}

/* The re-execution dcb_set_wait_policy() asked for, unless
 * dcb_fix_coretype() made one already (then it never returns). */
static inline void dcb_apply_wait_policy(char **argv) {
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT"); /* could not: run on as the environment said */
    unsetenv("DCB_AUTO_SPINCOUNT");
    unsetenv("DCB_WAIT_REASON");
}

static inline void dcb_fix_coretype(char **argv) {
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *keep = getenv("DCB_KEEP_CORETYPE");
    const char *autoc = getenv("DCB_AUTO_CORETYPE");
    if (ct && autoc && strcmp(ct, autoc) == 0) return;   /* our own choice, below, in the re-executed run */
    if (dcb_under_valgrind()) return;
    if (!ct && !(keep && strcmp(keep, "0") != 0)) {
        /* OpenBLAS 0.3.21 picks Prescott (SSE3) on CPUs it does not know (Emerald
         * Rapids; the generic "Intel Xeon Processor" some VMs show): run it on
         * the kernels the CPU has, at 2-4x the speed; results record it. */
        const char *fix = dcb_fallback_core_fix();
        if (fix) {
            setenv("OPENBLAS_CORETYPE", fix, 1);
            setenv("DCB_AUTO_CORETYPE", fix, 1);
            execv("/proc/self/exe", argv);
            unsetenv("OPENBLAS_CORETYPE");
            unsetenv("DCB_AUTO_CORETYPE");
        }
    }
    if (!ct || (keep && strcmp(keep, "0") != 0)) {
        dcb_warn_fallback_core();
        return;
    }
    fprintf(stderr,
            "dcbench: OPENBLAS_CORETYPE=%s is set in the environment and would force OpenBLAS onto "
            "that core's kernels; re-running with the core OpenBLAS detects itself "
            "(DCB_KEEP_CORETYPE=1 keeps the override)\n", ct);
    setenv("DCB_FORCED_CORETYPE", ct, 1);
    unsetenv("OPENBLAS_CORETYPE");
    execv("/proc/self/exe", argv);
    perror("dcbench: re-exec without OPENBLAS_CORETYPE failed; continuing with it");
    setenv("OPENBLAS_CORETYPE", ct, 1);
}
#endif
