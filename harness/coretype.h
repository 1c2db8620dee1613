/* OPENBLAS_CORETYPE in the environment pins OpenBLAS to one core's kernels
 * (this project's VMs set Haswell: AVX2 kernels on CPUs that may do better).
 * OpenBLAS reads it once, when the library loads, so the only cure is to
 * re-execute without it. The forced value is kept in DCB_FORCED_CORETYPE so
 * that results can report it. DCB_KEEP_CORETYPE=1 keeps the override. */
#ifndef DCB_CORETYPE_H
#define DCB_CORETYPE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void dcb_fix_coretype(char **argv) {
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *keep = getenv("DCB_KEEP_CORETYPE");
    if (!ct || (keep && strcmp(keep, "0") != 0)) return;
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
