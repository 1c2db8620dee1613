/* vmath.c — which exp / softmax / sigmoid variant the library calls
 * (vmath.h). */
#include "vmath.h"

#include "family.h"

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_vmath_kernels *const variants[] = {
#if DCB_ISA_X86
    &dcb_vmath_avx512,
    &dcb_vmath_avx2,
#endif
    &dcb_vmath_scalar,
    NULL,
};

const dcb_vmath_kernels *const *dcb_vmath_variants(void) { return variants; }

DCB_FAMILY_PICKER(dcb_vmath_kernels, dcb_vmath, variants)
