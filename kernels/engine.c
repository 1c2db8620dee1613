/* The conv2d engines as one table, generated from DCB_CONV_ENGINES, and the
 * helpers every operator built on an engine shares. Nothing here knows a
 * particular engine: each one's file defines its descriptor. */
#include "dcb_internal.h"

#include <stdio.h>

#define DCB_ENGINE_REF(e) &dcb_engine_##e,
const dcb_engine_desc *const dcb_engines[DCB_ENGINE_COUNT] = {DCB_CONV_ENGINES(DCB_ENGINE_REF)};
#undef DCB_ENGINE_REF

double dcb_conv2d_direct_macs(const dcb_conv2d_p *p, int N, int H, int W) {
    const double ho = dcb_conv_out(H, p->kh, p->stride, p->pad, p->dil);
    const double wo = dcb_conv_out(W, p->kw, p->stride, p->pad, p->dil);
    const double outs = (double)p->cout * ho * wo;
    return (double)N * ((double)p->kh * p->kw * (p->cin / p->groups) * outs + (p->bias ? outs : 0));
}

double dcb_engine_executed_macs(const dcb_engine_desc *e, const dcb_conv2d_p *p, int N, int H, int W) {
    return e->executed_macs ? e->executed_macs(p, N, H, W) : dcb_conv2d_direct_macs(p, N, H, W);
}

dcb_status dcb_engine_prepare(const dcb_engine_desc *e, const dcb_conv2d_p *p, const float *w, void **state) {
    *state = NULL;
    return e->prepare ? e->prepare(p, w, state) : DCB_OK;
}

void dcb_engine_release(const dcb_engine_desc *e, void *state) {
    if (state && e->release) e->release(state);
}

double dcb_engine_extra_macs(const dcb_engine_desc *e, const dcb_conv2d_p *p, int N, int H, int W) {
    if (!e->executed_macs) return 0;
    dcb_conv2d_p q = *p;
    q.bias = 0; /* the bias adds are counted as they are */
    return e->executed_macs(p, N, H, W) - dcb_conv2d_direct_macs(&q, N, H, W);
}

dcb_status dcb_engine_check_op(const dcb_op *op, const dcb_conv2d_p *p) {
    char who[128];
    const dcb_engine_desc *e = op->impl->engine;
    return e->check ? e->check(p, dcb_op_who(op, who, sizeof who)) : DCB_OK;
}

size_t dcb_engine_workspace(const dcb_engine_desc *e, const dcb_conv2d_p *p, const void *state, int N, int H, int W,
                            int threads) {
    return e->workspace ? e->workspace(p, state, N, H, W, threads) : 0;
}

size_t dcb_engine_dyn_workspace(const dcb_engine_desc *e, const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    return e->dyn_workspace ? e->dyn_workspace(p, N, H, W, threads) : 0;
}
