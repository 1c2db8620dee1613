/* The BLAS behind the GEMM engines: OpenBLAS by default, BLIS with
 * `make BLAS=blis`. Thread counts are set here so that every GEMM of an
 * operator uses the operator's `threads`. */
#define _GNU_SOURCE
#include "dcb_internal.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef DCB_USE_BLIS
#include <blis.h>
#else
#include <cblas.h>
#endif

static char blas_info[256];

#ifdef DCB_USE_BLIS
#include <cpuid.h>
/* BLIS 0.9 does not know AMD family 0x1A (Zen 5) and falls back to generic
 * kernels; its skx configuration (BLIS_ARCH_TYPE=0) is right there. It must
 * be set before BLIS initialises, hence a constructor. Never forced on a CPU
 * without AVX-512, where skx kernels die of SIGILL. */
__attribute__((constructor)) static void dcb_blis_arch(void) {
    if (getenv("BLIS_ARCH_TYPE")) return;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned family = ((a >> 8) & 0xf) + ((a >> 20) & 0xff);
    __builtin_cpu_init();
    if (__builtin_cpu_is("amd") && family >= 0x1a && __builtin_cpu_supports("avx512f"))
        setenv("BLIS_ARCH_TYPE", "0", 0);
}
#endif

const char *dcb_blas_name(void) {
#ifdef DCB_USE_BLIS
    return "blis";
#else
    return "openblas";
#endif
}

const char *dcb_blas_core(void) {
#ifdef DCB_USE_BLIS
    return bli_arch_string(bli_arch_query_id());
#else
    return openblas_get_corename();
#endif
}

const char *dcb_blas_info(void) {
#ifdef DCB_USE_BLIS
    snprintf(blas_info, sizeof blas_info, "BLIS %s (arch %s, threads %ld)",
             bli_info_get_version_str(), dcb_blas_core(),
             (long)bli_thread_get_num_threads());
#else
    snprintf(blas_info, sizeof blas_info, "OpenBLAS (%s; core %s, threads %d)",
             openblas_get_config(), openblas_get_corename(),
             openblas_get_num_threads());
#endif
    return blas_info;
}

void dcb_blas_set_threads(int n) {
    if (n < 1) n = 1;
#ifdef DCB_USE_BLIS
    bli_thread_set_num_threads(n);
#else
    openblas_set_num_threads(n);
#endif
}

/* Setting the count costs a lock in OpenBLAS; skip it when unchanged. */
void dcb_blas_threads_for(int threads) {
    static _Thread_local int last = -1;
    if (threads != last) {
        dcb_blas_set_threads(threads);
        last = threads;
    }
}
