/* dynmix.c — which variant of the dynamic operators' helpers the library
 * calls (dynmix.h). */
#include "dynmix.h"

#include "family.h"

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_dynmix_kernels *const variants[] = {
#if DCB_ISA_X86
    &dcb_dynmix_avx512,
    &dcb_dynmix_avx2,
#endif
    &dcb_dynmix_scalar,
    NULL,
};

const dcb_dynmix_kernels *const *dcb_dynmix_variants(void) { return variants; }

DCB_FAMILY_PICKER(dcb_dynmix_kernels, dcb_dynmix, variants)
