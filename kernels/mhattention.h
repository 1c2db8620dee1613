/* mhattention.h — what mhattention.c shares with its backward
 * (mhattention_backward.c); private to libdcb. */
#ifndef DCB_MHATTENTION_H
#define DCB_MHATTENTION_H

#include "dcb_internal.h"

typedef struct mha_p {
    int d, H, causal;
} mha_p;

#define DCB_MHA_P(op) ((const mha_p *)(op)->hp)

/* The gemm forward on x (N, T, d) into y: qkv (N*T, 3d) and att (N*T, d)
 * are filled; S holds the attention probabilities, one T x T block per
 * (sample, head) at S + (n*H + h) * T*T when keep_p, else one block per
 * OpenMP thread, DCB_ALIGN-aligned apart (scratch). */
void dcb_mha_gemm_forward(const dcb_op *op, const float *x, int N, int T, float *y, float *qkv, float *att,
                          float *S, int keep_p, dcb_profile *prof);

extern const dcb_bwd_vt dcb_mha_bwd_naive, dcb_mha_bwd_gemm;

#endif
