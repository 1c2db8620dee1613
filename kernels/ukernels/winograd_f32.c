/* winograd_f32.c — which Winograd transform variant the engine calls
 * (winograd_f32.h). */
#include "winograd_f32.h"

#include "family.h"

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_wk_kernels *const variants[] = {
#if DCB_ISA_X86
    &dcb_wk_avx512,
    &dcb_wk_avx2,
#endif
    &dcb_wk_scalar,
    NULL,
};

const dcb_wk_kernels *const *dcb_wk_variants(void) { return variants; }

DCB_FAMILY_PICKER(dcb_wk_kernels, dcb_wk, variants)
