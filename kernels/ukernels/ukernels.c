/* ukernels.c — which micro-kernel variant the engines call (ukernels.h). */
#include "ukernels.h"

#include <stdlib.h>
#include <string.h>

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_ukernels *const variants[] = {
#ifdef DCB_UK_HAVE_AVX2
    &dcb_uk_avx2,
#endif
    &dcb_uk_scalar,
    NULL,
};

const dcb_ukernels *const *dcb_uk_variants(void) { return variants; }

/* The first variant this CPU runs, or the one DCB_ISA names (where it runs). */
static const dcb_ukernels *choose(void) {
    const char *want = getenv("DCB_ISA");
    const dcb_ukernels *best = NULL;
    for (int i = 0; variants[i]; i++) {
        const dcb_ukernels *v = variants[i];
        if (v->usable && !v->usable()) continue;
        if (!best) best = v;
        if (want && strcmp(want, v->name) == 0) return v;
    }
    return best;
}

const dcb_ukernels *dcb_uk(void) {
    static const dcb_ukernels *chosen;
    const dcb_ukernels *u = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!u) {
        u = choose(); /* threads that race here choose alike */
        __atomic_store_n(&chosen, u, __ATOMIC_RELEASE);
    }
    return u;
}
