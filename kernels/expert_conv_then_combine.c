/* condconv / dyconv, strategy conv_then_combine: convolve with every expert,
 * then the routing-weighted sum of the outputs (no kernel mixing, E times
 * the conv work).
 *
 * With groups == 1 the bank (E, cout, cin, kh, kw) already is the stacked
 * weight (E*cout, cin, kh, kw) and the bias (E, cout) the stacked bias, so one
 * convolution shared by the batch computes every expert's output; sum_e r_e
 * (conv_e + b_e) then is the mixed output with the mixed bias. With groups >
 * 1, stacking as E*cout channels breaks the group structure (stacked channel
 * e*cout + o would read group (e*cout + o) / (E*cout/groups)), so the E
 * expert convolutions run one after another over the whole batch: the same
 * work. The engine's weight-only part (Winograd's kernel transform, the
 * direct engine's packing) of the stacked weight or of each expert is done
 * in prepare. Workspace: router scratch, r (N, E), the expert outputs
 * (N*E*cout*H'*W'), the engine's. */
#include "expert_conv.h"

#include <stdlib.h>

typedef struct stack_state {
    int n;
    void *st[]; /* the engine's state: 1 (stacked) or E (groups > 1) */
} stack_state;

static dcb_conv2d_p stacked_params(const xc_hp *h) {
    dcb_conv2d_p pe = h->c;
    if (h->c.groups == 1) pe.cout = h->E * h->c.cout;
    return pe;
}

static void *state_of(const dcb_op *op, int i) {
    const stack_state *s = op->state;
    return s ? s->st[i] : NULL;
}

void dcb_xc_conv_then_combine_release(dcb_op *op) {
    stack_state *s = op->state;
    if (!s) return;
    for (int i = 0; i < s->n; i++) dcb_engine_release(DCB_ENGINE(op), s->st[i]);
    free(s);
}

dcb_status dcb_xc_conv_then_combine_prepare(dcb_op *op) {
    const xc_hp *h = XC_HP(op);
    if (!DCB_ENGINE(op)->prepare) return DCB_OK; /* the bank is used as it is */
    const int np = h->c.groups == 1 ? 1 : h->E;
    stack_state *s = calloc(1, sizeof *s + (size_t)np * sizeof s->st[0]);
    if (!s) return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory", h->name, op->impl->name);
    op->state = s;
    const dcb_conv2d_p pe = stacked_params(h);
    const float *w = dcb_w(op, "weight")->data;
    for (int i = 0; i < np; i++) {
        if (dcb_engine_prepare(DCB_ENGINE(op), &pe, w + (size_t)i * dcb_xc_kernel_floats(&h->c), &s->st[i]) != DCB_OK) {
            dcb_xc_conv_then_combine_release(op);
            op->state = NULL;
            return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory for the expert kernels", h->name, op->impl->name);
        }
        s->n = i + 1;
    }
    return DCB_OK;
}

size_t dcb_xc_conv_then_combine_workspace(const dcb_op *op, const int64_t *x) {
    const xc_hp *h = XC_HP(op);
    const int N = (int)x[0], H = (int)x[2], W = (int)x[3];
    const int ho = dcb_conv_out(H, h->c.kh, h->c.stride, h->c.pad, h->c.dil);
    const int wo = dcb_conv_out(W, h->c.kw, h->c.stride, h->c.pad, h->c.dil);
    const dcb_conv2d_p pe = stacked_params(h);
    const size_t eng = dcb_engine_workspace(DCB_ENGINE(op), &pe, state_of(op, 0), N, H, W, op->threads);
    return dcb_xc_route_scratch(h, N) + dcb_xc_rnd((size_t)N * h->E) +
           dcb_xc_rnd((size_t)N * h->E * h->c.cout * ho * wo) + eng;
}

dcb_status dcb_xc_conv_then_combine_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const xc_hp *h = XC_HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3], E = h->E, cout = p->cout;
    const size_t HWo = (size_t)y->shape[2] * y->shape[3];
    char *b = ws;
    void *scratch = b;
    b += dcb_xc_route_scratch(h, N);
    float *r = (float *)b;
    b += dcb_xc_rnd((size_t)N * E);
    float *Y = (float *)b;
    b += dcb_xc_rnd((size_t)N * E * cout * HWo);
    double t0 = dcb_now();
    dcb_xc_route(op, x->data, N, (size_t)H * W, scratch, r);
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);

    const float *w = dcb_w(op, "weight")->data;
    const dcb_tensor *bt = dcb_w(op, "bias");
    const float *bias = bt ? bt->data : NULL;
    size_t sn, se; /* strides of Y over n and e, in floats */
    if (p->groups == 1) {
        const dcb_conv2d_p pe = stacked_params(h);
        DCB_ENGINE(op)->run(&pe, state_of(op, 0), N, H, W, x->data, w, bias, Y, b, op->threads, prof);
        sn = (size_t)E * cout * HWo;
        se = (size_t)cout * HWo;
    } else {
        for (int e = 0; e < E; e++)
            DCB_ENGINE(op)->run(p, state_of(op, e), N, H, W, x->data, w + (size_t)e * dcb_xc_kernel_floats(p),
                            bias ? bias + (size_t)e * cout : NULL, Y + (size_t)e * N * cout * HWo, b, op->threads,
                            prof);
        sn = (size_t)cout * HWo;
        se = (size_t)N * cout * HWo;
    }

    t0 = dcb_now();
    const long NO = (long)N * cout;
#pragma omp parallel for schedule(static) num_threads(op->threads) if (op->threads > 1)
    for (long no = 0; no < NO; no++) {
        const int n = (int)(no / cout), o = (int)(no % cout);
        float *yp = y->data + (size_t)no * HWo;
        const float *Yp = Y + n * sn + (size_t)o * HWo;
        const float r0 = r[(size_t)n * E];
        for (size_t i = 0; i < HWo; i++) yp[i] = r0 * Yp[i];
        for (int e = 1; e < E; e++) {
            const float re = r[(size_t)n * E + e];
            const float *Ye = Yp + e * se;
            for (size_t i = 0; i < HWo; i++) yp[i] += re * Ye[i];
        }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_COMBINE, t0);
    return DCB_OK;
}
