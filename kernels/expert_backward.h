/* expert_backward.h — the backward implementations of condconv and dyconv
 * (condconv_dyconv.c registers them), one file each:
 *   expert_backward_naive.c  routing and mixing in double, then the naive
 *                            conv2d backward per sample: the oracle;
 *   expert_backward_gemm.c   im2col + sgemm per sample (OpenMP across
 *                            samples), the bank gradient as one GEMM;
 *   expert_backward_batch.c  its own training forward that keeps the
 *                            routing and the im2col columns, then the
 *                            gemm algebra with nothing recomputed;
 * and expert_backward.c, the router's backward they share. Internal. */
#ifndef DCB_EXPERT_BACKWARD_H
#define DCB_EXPERT_BACKWARD_H
#include "expert_conv.h"

extern const dcb_bwd_vt dcb_xc_bwd_naive;
extern const dcb_bwd_vt dcb_xc_bwd_gemm;
extern const dcb_bwd_vt dcb_xc_bwd_batch;

/* The router's backward, in double, for N samples. g (N, cin) = gap(x);
 * hid (N, hidden) = dyconv's relu output (NULL for condconv); r (N, E) the
 * routing weights; dr (N, E) = dL/dr. Writes the router weights' gradients
 * that c wants (route_w, route_b | fc1_w, fc1_b, fc2_w, fc2_b) and, when dg
 * is not NULL, dg (N, cin) = dL/dg. */
dcb_status dcb_xc_router_backward(const dcb_op *op, const dcb_train_ctx *c, int N, const double *g, const double *hid,
                                  const double *r, const double *dr, double *dg);
/* 1 when c wants a gradient of the router's weights. */
int dcb_xc_router_wanted(const dcb_op *op, const dcb_train_ctx *c);
#endif
