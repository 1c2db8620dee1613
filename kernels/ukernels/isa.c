/* isa.c — which instruction-set level this process runs (isa.h), and the
 * public dcb_isa*() of dcb.h. */
#include "isa.h"

#include "dcb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[DCB_ISA_LEVELS] = {"scalar", "avx2", "avx512"};

const char *dcb_isa_level_name(dcb_isa_level l) { return l >= 0 && l < DCB_ISA_LEVELS ? names[l] : "?"; }

int dcb_isa_runs(dcb_isa_level l) {
    if (l == DCB_ISA_SCALAR) return 1;
#if DCB_ISA_X86 && defined(__GNUC__)
    /* libgcc's CPUID reading reports AVX2 and AVX-512 features only where
     * XGETBV says the OS saves the ymm / zmm and mask registers. */
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (l == DCB_ISA_AVX2) return avx2;
    if (l == DCB_ISA_AVX512)
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    return 0;
}

static dcb_isa_level widest(void) {
    for (int l = DCB_ISA_LEVELS - 1; l > 0; l--)
        if (dcb_isa_runs((dcb_isa_level)l)) return (dcb_isa_level)l;
    return DCB_ISA_SCALAR;
}

/* DCB_ISA's level: -1 unset or empty, -2 names no level. */
static int requested(void) {
    const char *want = getenv("DCB_ISA");
    if (!want || !*want) return -1;
    for (int l = 0; l < DCB_ISA_LEVELS; l++)
        if (!strcmp(want, names[l])) return l;
    return -2;
}

static dcb_isa_level choose(void) {
    const int want = requested();
    if (want >= 0 && dcb_isa_runs((dcb_isa_level)want)) return (dcb_isa_level)want;
    return widest();
}

dcb_isa_level dcb_isa_current(void) {
    static int chosen = -1;
    int l = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (l < 0) {
        l = (int)choose(); /* threads that race here choose alike */
        __atomic_store_n(&chosen, l, __ATOMIC_RELEASE);
    }
    return (dcb_isa_level)l;
}

int dcb_isa_pick(const dcb_isa_level *levels, int n) {
    const dcb_isa_level cur = dcb_isa_current();
    for (int i = 0; i < n; i++)
        if (levels[i] <= cur) return i;
    return n - 1;
}

const char *dcb_isa(void) { return names[dcb_isa_current()]; }

const char *dcb_isa_available(void) {
    static char buf[64];
    static int done;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        char tmp[64] = "";
        for (int l = DCB_ISA_LEVELS - 1; l >= 0; l--)
            if (dcb_isa_runs((dcb_isa_level)l)) {
                if (*tmp) strcat(tmp, ",");
                strcat(tmp, names[l]);
            }
        memcpy(buf, tmp, sizeof buf);
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
    return buf;
}

dcb_status dcb_isa_check(char *msg, size_t cap) {
    const int want = requested();
    if (msg && cap) msg[0] = 0;
    if (want == -1 || (want >= 0 && dcb_isa_runs((dcb_isa_level)want))) return DCB_OK;
    if (msg && cap) {
        if (want == -2)
            snprintf(msg, cap, "DCB_ISA=%s names no instruction set (valid: avx512, avx2, scalar; this CPU runs %s)",
                     getenv("DCB_ISA"), dcb_isa_available());
        else
            snprintf(msg, cap, "DCB_ISA=%s: this CPU does not run %s (it runs %s)", getenv("DCB_ISA"), names[want],
                     dcb_isa_available());
    }
    return DCB_INVALID_PARAM;
}
