/* vexp.h — the vectorised float exp of the softmaxes (mhattention and any
 * other user), now the exp family of ukernels/vmath.h, whose variant (avx512,
 * avx2 or scalar) is picked at run time for the CPU (DCB_ISA). Internal. */
#ifndef DCB_VEXP_H
#define DCB_VEXP_H

#include "ukernels/vmath.h"

#include <math.h>

/* v[j] = exp(v[j] - m) for j < n, in place (the shifted logits clamped at
 * -87, where e^x vanishes next to the row's largest term, 1); returns their
 * sum. One call per row: the variant's vector loop inside. */
static inline float dcb_exp_shift_sum(float *v, int n, float m) { return dcb_vmath()->exp_shift_sum(v, n, m); }

#endif
