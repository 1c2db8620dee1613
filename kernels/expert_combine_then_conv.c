/* condconv / dyconv, strategy combine_then_conv: routing, the kernel mixing,
 * then the engine once per sample.
 *
 * Where the engine mixes a bank itself (bank_supported: the Winograd engines'
 * fused path) the bank is kept in the engine's layout (prepare) and each
 * sample's kernel is mixed block by block inside the engine, fused with its
 * float kernel transform and GEMM: no per-sample plan. Elsewhere one GEMM
 * mixes every sample's kernel and the engine's dyn_run convolves per sample.
 * Workspace: router scratch, r (N, E), bm (N, cout), then either Wm (N, P)
 * and the engine's, or the fused engine's. */
#include "expert_conv.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

typedef struct mix_state {
    float *bank; /* E kernels in the engine's layout (+ DCB_OVERREAD_FLOATS) */
} mix_state;

static int fused(const dcb_op *op) {
    return DCB_ENGINE(op)->bank_supported && DCB_ENGINE(op)->bank_supported(&XC_HP(op)->c);
}

void dcb_xc_combine_then_conv_release(dcb_op *op) {
    mix_state *s = op->state;
    if (!s) return;
    dcb_aligned_free(s->bank);
    free(s);
}

dcb_status dcb_xc_combine_then_conv_prepare(dcb_op *op) {
    const xc_hp *h = XC_HP(op);
    if (!fused(op)) return DCB_OK;
    mix_state *s = calloc(1, sizeof *s);
    const size_t Pp = DCB_ENGINE(op)->bank_floats(&h->c);
    if (s) s->bank = dcb_aligned_alloc(sizeof(float) * (Pp * h->E + DCB_OVERREAD_FLOATS));
    if (!s || !s->bank) {
        free(s);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory for the expert bank", h->name, op->impl->name);
    }
    const float *w = dcb_w(op, "weight")->data;
    for (int e = 0; e < h->E; e++)
        DCB_ENGINE(op)->bank_pack(&h->c, w + (size_t)e * dcb_xc_kernel_floats(&h->c), s->bank + e * Pp);
    memset(s->bank + (size_t)h->E * Pp, 0, DCB_OVERREAD_FLOATS * sizeof(float));
    op->state = s;
    return DCB_OK;
}

size_t dcb_xc_combine_then_conv_workspace(const dcb_op *op, const int64_t *x) {
    const xc_hp *h = XC_HP(op);
    const int N = (int)x[0], H = (int)x[2], W = (int)x[3];
    size_t n = dcb_xc_route_scratch(h, N) + dcb_xc_rnd((size_t)N * h->E) +
               (h->c.bias ? dcb_xc_rnd((size_t)N * h->c.cout) : 0);
    if (fused(op)) return n + DCB_ENGINE(op)->bank_workspace(&h->c, N, H, W, h->E, op->threads);
    return n + dcb_xc_rnd((size_t)N * dcb_xc_kernel_floats(&h->c)) +
           dcb_engine_dyn_workspace(DCB_ENGINE(op), &h->c, 1, H, W, op->threads);
}

dcb_status dcb_xc_combine_then_conv_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const xc_hp *h = XC_HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const size_t P = dcb_xc_kernel_floats(p);
    char *b = ws;
    void *scratch = b;
    b += dcb_xc_route_scratch(h, N);
    float *r = (float *)b;
    b += dcb_xc_rnd((size_t)N * h->E);
    float *bm = NULL;
    if (p->bias) {
        bm = (float *)b;
        b += dcb_xc_rnd((size_t)N * p->cout);
    }
    double t0 = dcb_now();
    dcb_xc_route(op, x->data, N, (size_t)H * W, scratch, r);
    DCB_PHASE_ADD(prof, DCB_PHASE_ROUTING, t0);
    if (fused(op)) {
        t0 = dcb_now();
        if (bm)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, p->cout, h->E, 1.0f, r, h->E,
                        dcb_w(op, "bias")->data, p->cout, 0.0f, bm, p->cout);
        DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
        const mix_state *s = op->state;
        const dcb_dyn_bank k = {s->bank, r, bm, h->E};
        DCB_ENGINE(op)->bank_run(p, N, H, W, x->data, &k, y->data, b, op->threads, prof);
        return DCB_OK;
    }
    float *Wm = (float *)b;
    b += dcb_xc_rnd((size_t)N * P);
    t0 = dcb_now();
    dcb_xc_mix_kernels(op, r, N, Wm, bm);
    DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
    const size_t xs = (size_t)p->cin * H * W, ys = (size_t)y->shape[1] * y->shape[2] * y->shape[3];
    for (int n = 0; n < N; n++)
        DCB_ENGINE(op)->dyn_run(p, 1, H, W, x->data + n * xs, Wm + n * P, bm ? bm + (size_t)n * p->cout : NULL,
                            y->data + n * ys, b, op->threads, prof);
    return DCB_OK;
}
