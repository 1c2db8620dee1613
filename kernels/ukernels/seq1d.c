/* seq1d.c — which sequence-row variant the direct strategy calls (seq1d.h). */
#include "seq1d.h"

#include "family.h"

#include <stddef.h>

/* Best first; a new ISA adds its line here (and its file). */
static const dcb_seq1d_kernels *const variants[] = {
#if DCB_ISA_X86
    &dcb_seq1d_avx512,
    &dcb_seq1d_avx2,
#endif
    &dcb_seq1d_scalar,
    NULL,
};

const dcb_seq1d_kernels *const *dcb_seq1d_variants(void) { return variants; }

DCB_FAMILY_PICKER(dcb_seq1d_kernels, dcb_seq1d, variants)
