/* expert_conv.h — what condconv and dyconv (condconv_dyconv.c) share with
 * their two strategies, one file each:
 *   expert_combine_then_conv.c  mix each sample's kernel, then one conv per
 *                               sample (or the engine's fused bank mixing);
 *   expert_conv_then_combine.c  convolve with every expert, then the
 *                               routing-weighted sum of the outputs.
 * Internal; not installed. */
#ifndef DCB_EXPERT_CONV_H
#define DCB_EXPERT_CONV_H
#include "dcb_internal.h"

typedef struct xc_hp {
    dcb_conv2d_p c;
    const char *name;   /* "condconv" | "dyconv" */
    int dy;             /* 1: dyconv router */
    int E;              /* experts (condconv) / kernels K (dyconv) */
    int hidden;         /* dyconv's fc1 width */
    float tau;          /* dyconv's softmax temperature */
} xc_hp;

#define XC_HP(op) ((const xc_hp *)(op)->hp)

/* The strategies, one list. Each strategy s has its own file (expert_s.c)
 * that defines dcb_xc_s_workspace, _prepare, _run and _release;
 * condconv_dyconv.c generates one implementation "s/<engine>" per strategy
 * and conv2d engine. */
#define DCB_EXPERT_STRATEGIES(X) \
    X(combine_then_conv)         \
    X(conv_then_combine)

#define XC_STRATEGY_ENUM(s) XC_##s,
enum { DCB_EXPERT_STRATEGIES(XC_STRATEGY_ENUM) XC_STRATEGY_COUNT };
#undef XC_STRATEGY_ENUM

#define XC_STRATEGY_DECLARE(s)                                                                       \
    size_t dcb_xc_##s##_workspace(const dcb_op *op, const int64_t *x);                               \
    dcb_status dcb_xc_##s##_prepare(dcb_op *op);                                                     \
    dcb_status dcb_xc_##s##_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws,            \
                                dcb_profile *prof);                                                  \
    void dcb_xc_##s##_release(dcb_op *op);
DCB_EXPERT_STRATEGIES(XC_STRATEGY_DECLARE)
#undef XC_STRATEGY_DECLARE

/* Bytes of n floats rounded up to DCB_ALIGN. */
static inline size_t dcb_xc_rnd(size_t floats) {
    return (floats * sizeof(float) + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN;
}
/* One expert's kernel: cout*(cin/groups)*kh*kw floats. */
static inline size_t dcb_xc_kernel_floats(const dcb_conv2d_p *p) {
    return (size_t)p->cout * (p->cin / p->groups) * p->kh * p->kw;
}
/* Scratch of the router: gap (N, cin), dyconv's hidden (N, hidden). */
size_t dcb_xc_route_scratch(const xc_hp *h, int N);
/* r (N, E) for x; scratch of dcb_xc_route_scratch bytes. */
void dcb_xc_route(const dcb_op *op, const float *x, int N, size_t HW, void *scratch, float *r);
/* Wm (N, P) = r (N, E) . weight (E, P); bm (N, cout) = r . bias likewise
 * (bm may be NULL): every sample's mixed kernel in one GEMM. */
void dcb_xc_mix_kernels(const dcb_op *op, const float *r, int N, float *Wm, float *bm);
#endif
