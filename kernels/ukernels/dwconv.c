/* dwconv.c — which depthwise kernel variant the direct engine calls
 * (dwconv.h). */
#include "dwconv.h"

#include "family.h"

#include <stddef.h>

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_dwk_kernels *const variants[] = {
#if DCB_ISA_X86
    &dcb_dwk_avx512,
    &dcb_dwk_avx2,
#endif
    &dcb_dwk_scalar,
    NULL,
};

const dcb_dwk_kernels *const *dcb_dwk_variants(void) { return variants; }

DCB_FAMILY_PICKER(dcb_dwk_kernels, dcb_dwk, variants)
