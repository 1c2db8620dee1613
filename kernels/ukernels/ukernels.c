/* ukernels.c — which micro-kernel variant the engines call (ukernels.h). */
#include "ukernels.h"

#include <stdlib.h>
#include <string.h>

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_ukernels *const variants[] = {
#if DCB_ISA_X86
    &dcb_uk_avx512,
    &dcb_uk_avx2,
#endif
    &dcb_uk_scalar,
    NULL,
};

const dcb_ukernels *const *dcb_uk_variants(void) { return variants; }

const dcb_ukernels *dcb_uk(void) {
    static const dcb_ukernels *chosen;
    const dcb_ukernels *u = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!u) {
        dcb_isa_level levels[sizeof variants / sizeof *variants];
        int n = 0;
        for (; variants[n]; n++) levels[n] = variants[n]->isa;
        u = variants[dcb_isa_pick(levels, n)];
        __atomic_store_n(&chosen, u, __ATOMIC_RELEASE);
    }
    return u;
}
