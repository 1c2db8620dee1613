/* OPENBLAS_CORETYPE in the environment pins OpenBLAS to one core's kernels
 * (this project's VMs set Haswell: AVX2 kernels on CPUs that may do better).
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

static inline void dcb_fix_coretype(char **argv) {
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *keep = getenv("DCB_KEEP_CORETYPE");
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
