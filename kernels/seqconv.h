/* seqconv.h — the 1-D sequence convolution shared by lightconv and
 * dynconv1d (kernels/seqconv.c; used by lightconv.c and dynconv1d.c); private to libdcb.
 *
 * Both operators convolve x (N, T, C) with a per-head kernel of K taps; they
 * differ only in where the kernel comes from (a static (H, K) weight, or one
 * (H, K) kernel per time step predicted from x). The four strategies below
 * therefore take the kernel as a pointer plus a stride between time steps:
 * 0 for lightconv, H*K for dynconv1d. */
#ifndef DCB_SEQCONV_H
#define DCB_SEQCONV_H

#include "dcb_internal.h"

typedef struct dcb_seqconv_p {
    int C, H, K;        /* channels, heads, kernel_size */
    int causal;         /* padding "causal" (left pad K-1) vs "same" (K/2) */
    int softmax;        /* weight_softmax */
    int bias;
} dcb_seqconv_p;

typedef enum { DCB_SEQ_NAIVE, DCB_SEQ_UNFOLD, DCB_SEQ_BAND, DCB_SEQ_DIRECT, DCB_SEQ_COUNT } dcb_seq_strategy;

static inline int dcb_seqconv_left_pad(const dcb_seqconv_p *p) {
    return p->causal ? p->K - 1 : p->K / 2;
}

/* The parameter rows of both operators, with the docs of weight_softmax
 * and bias, which say what each one's kernel and biases are. */
#define DCB_SEQCONV_PARAMS(softmax_doc, bias_doc)                                                            \
    {"channels", DCB_PT_INT, 0, NULL, 1, "channels C (required)"},                                           \
    {"heads", DCB_PT_INT, 1, NULL, 0, "heads H; must divide channels (channel c uses head c / (C/H))"},      \
    {"kernel_size", DCB_PT_INT, 0, NULL, 1, "kernel width K (required)"},                                    \
    {"padding", DCB_PT_STRING, 0, "same", 0, "\"same\" (left pad K/2) or \"causal\" (left pad K-1)"},     \
    {"weight_softmax", DCB_PT_BOOL, 1, NULL, 0, softmax_doc},                                                \
    {"bias", DCB_PT_BOOL, 0, NULL, 0, bias_doc}
/* The validate and out_shape of both operators, their messages naming the
 * operator: op->hp becomes the dcb_seqconv_p read from channels, heads,
 * kernel_size, padding, weight_softmax and bias; x must be (N, T, C) with C =
 * channels, and y has the same shape. */
dcb_status dcb_seqconv_validate(dcb_op *op);
dcb_status dcb_seqconv_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y);
/* The dcb_op_info fields both operators share. */
#define DCB_SEQCONV_INFO                                                                                     \
    .layout = DCB_INPUT_SEQUENCE, .channels_param = "channels", .validate = dcb_seqconv_validate,            \
    .out_shape = dcb_seqconv_out_shape
/* The operator's hyperparameters (op->hp). */
#define DCB_SEQ_P(op) ((const dcb_seqconv_p *)(op)->hp)
/* Workspace bytes of one strategy (0 for naive and direct). */
size_t dcb_seqconv_ws(dcb_seq_strategy s, const dcb_seqconv_p *p, int N, int T);
/* y[n,t,c] = bias[c] + sum_j k(n,t)[h(c), j] * x[n, t + j - left_pad, c] with
 * k(n,t) = kern + (n*T + t) * kstride, each an (H, K) row-major block. naive
 * accumulates in double; the others in float. bias may be NULL. */
void dcb_seqconv_run(dcb_seq_strategy s, const dcb_seqconv_p *p, int N, int T, const float *x,
                     const float *kern, size_t kstride, const float *bias, float *y, void *ws,
                     int threads, dcb_profile *prof);
/* As dcb_seqconv_run, but logits holds unnormalised kernels (same layout),
 * which are softmax-normalised over K in place (in float, a vectorised exp)
 * before use: direct fuses this into its parallel loop, one time step's
 * (H, K) block just before that step's products (phase gemm); the others
 * normalise all of them first (phase kernel_gen), in parallel. */
void dcb_seqconv_run_logits(dcb_seq_strategy s, const dcb_seqconv_p *p, int N, int T, const float *x,
                            float *logits, size_t kstride, const float *bias, float *y, void *ws, int threads,
                            dcb_profile *prof);
/* The direct strategy on the output rows nt0 <= n*T + t < nt1, serially (no
 * threads): kern points at row nt0's kernel block, kstride apart, (H, K)
 * row-major or, with tap_major, (K, H) (element [j][h] at j*H + h); with
 * logits each block is softmax-normalised over K in place first. y and x are
 * whole tensors. */
void dcb_seqconv_direct_rows(const dcb_seqconv_p *p, int T, const float *x, long nt0, long nt1, float *kern,
                             size_t kstride, int tap_major, int logits, const float *bias, float *y);
/* Row-wise softmax over K in double (the oracle's), in place on float. */
void dcb_seqconv_softmax_double(float *k, size_t rows, int K);

/* The backward implementations of both operators (seqconv_backward.c). */
extern const dcb_bwd_vt dcb_lightconv_bwd_naive, dcb_lightconv_bwd_direct;
extern const dcb_bwd_vt dcb_dynconv1d_bwd_naive, dcb_dynconv1d_bwd_gemm;

#endif
