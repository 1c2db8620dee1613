/* lightconv (LightConv, Wu et al. 2019): a depthwise 1-D convolution over
 * sequences x (N, T, C) whose K-tap kernel is shared by the C/H channels of
 * each head and (optionally) softmax-normalised over K (docs/OPERATORS.md).
 * Its strategies are those of the sequence engine (seqconv.c). */
#include "seqconv.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ lightconv */
static const dcb_param_spec lightconv_params[] = {
    DCB_SEQCONV_PARAMS("softmax-normalise each head's kernel over K", "add a bias per channel")};

static int lightconv_weights(const dcb_op *op, dcb_weight_spec *s) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    int n = 0;
    s[n++] = (dcb_weight_spec){"weight", 2, {p->H, p->K}, (double)p->K, 0};
    if (p->bias) s[n++] = (dcb_weight_spec){"bias", 1, {p->C}, (double)p->K, 1};
    return n;
}

/* Per time step C*K MACs (+ C bias adds, counted as MACs like a conv bias).
 * flops = 2*macs + 3*H*K once per forward for the weight softmax (max/sub,
 * exp, divide per tap). acts: the conv output, N*T*C. */
static void lightconv_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const double NT = (double)x[0] * x[1];
    c->macs = NT * ((double)p->C * p->K + (p->bias ? p->C : 0));
    c->flops = 2 * c->macs + (p->softmax ? 3.0 * p->H * p->K : 0);
    c->params = (double)p->H * p->K + (p->bias ? p->C : 0);
    c->acts = NT * p->C;
    c->bytes = 4.0 * (NT * p->C + c->params + c->acts);
    c->dynamic_macs = 0;
}

/* prepare: the (softmax-normalised) kernel is weight-only work. */
static dcb_status lightconv_prepare(dcb_op *op) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    float *w = malloc(sizeof(float) * (size_t)p->H * p->K);
    if (!w) return dcb_fail(DCB_OUT_OF_MEMORY, "lightconv/%s: out of memory", op->impl->name);
    memcpy(w, dcb_w(op, "weight")->data, sizeof(float) * (size_t)p->H * p->K);
    if (p->softmax) dcb_seqconv_softmax_double(w, (size_t)p->H, p->K);
    op->state = w;
    return DCB_OK;
}

static void lightconv_release(dcb_op *op) { free(op->state); }

static size_t lightconv_ws(const dcb_op *op, const int64_t *x) {
    return dcb_seqconv_ws((dcb_seq_strategy)op->impl->strategy_id, DCB_SEQ_P(op), (int)x[0], (int)x[1]);
}

static dcb_status lightconv_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const dcb_tensor *b = dcb_w(op, "bias");
    dcb_seqconv_run((dcb_seq_strategy)op->impl->strategy_id, DCB_SEQ_P(op), (int)x->shape[0], (int)x->shape[1], x->data,
                    op->state, 0, b ? b->data : NULL, y->data, ws, op->threads, prof);
    return DCB_OK;
}

/* band multiplies the whole T x T matrix per (n, head): T*T*C per sample. */
static double lightconv_band_executed(const dcb_op *op, const int64_t *x) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const double N = (double)x[0], T = (double)x[1];
    return N * (T * T * p->C + (p->bias ? T * p->C : 0));
}

/* One vtable per strategy of the sequence engine; band performs more (executed). */
#define LC_IMPL(s, id, tolerance, what, executed)                                                            \
    static const dcb_impl_vt lc_##s = {                                                                      \
        .name = #s, .doc = what, .strategy = #s, .strategy_id = id, .tol = tolerance,                        \
        .workspace = lightconv_ws, .prepare = lightconv_prepare, .run = lightconv_run,                       \
        .release = lightconv_release, .executed_macs = executed};
LC_IMPL(naive, DCB_SEQ_NAIVE, 1e-06, "direct loops with double accumulation: the oracle", NULL)
LC_IMPL(unfold, DCB_SEQ_UNFOLD, 2e-06, "K-wide windows (N, T, C, K) in the workspace, then products", NULL)
LC_IMPL(band, DCB_SEQ_BAND, 2e-06, "T x T band matrix per (n, head), one sgemm each (O(T^2))", lightconv_band_executed)
LC_IMPL(direct, DCB_SEQ_DIRECT, 2e-06, "no materialisation, vectorised over each head's channels", NULL)

static const dcb_impl_vt *const lightconv_impls[] = {&lc_naive, &lc_unfold, &lc_band, &lc_direct};
static const dcb_bwd_vt *const lightconv_bwds[] = {&dcb_lightconv_bwd_naive, &dcb_lightconv_bwd_direct};

const dcb_op_info dcb_lightconv_info = {
    .name = "lightconv", DCB_SEQCONV_INFO,
    .doc = "LightConv: depthwise 1-D conv over (N, T, C) with a softmax-normalised kernel shared per head",
    DCB_PARAMS(lightconv_params), DCB_IMPLS(lightconv_impls), DCB_BWDS(lightconv_bwds), .weights = lightconv_weights, .cost = lightconv_cost,
};
