/* dynconv1d (DynamicConv, Wu et al. 2019): lightconv whose (H, K) kernel is
 * predicted for every time step by a linear layer of x[n, t, :] and
 * (optionally) softmax-normalised over K. The kernels are generated into the
 * workspace as (N, T, H, K), then convolved by one of lightconv's strategies
 * (naive, unfold, band, direct; see lightconv.c) with a kernel stride of H*K
 * per time step. naive predicts the kernels in double (the oracle); unfold and
 * band with one sgemm over the N*T rows, then lightconv.c's vectorised
 * softmax; direct fuses prediction, softmax and convolution per block of 256
 * rows (one sgemm per block, see run_fused), so that the kernels never leave
 * the cache. */
#include "seqconv.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const dcb_param_spec dynconv1d_params[] = {
    DCB_SEQCONV_PARAMS("softmax-normalise each predicted kernel over K",
                       "biases on the kernel predictor (wlin_b) and per channel (bias)")};

/* As in fairseq's DynamicConv1dTBC: the predictor's bias and the conv bias
 * both exist only when bias is true. */
static int dynconv1d_weights(const dcb_op *op, dcb_weight_spec *s) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    int n = 0;
    s[n++] = (dcb_weight_spec){"wlin_w", 2, {(int64_t)p->H * p->K, p->C}, (double)p->C, 0};
    if (p->bias) {
        s[n++] = (dcb_weight_spec){"wlin_b", 1, {(int64_t)p->H * p->K}, (double)p->C, 1};
        s[n++] = (dcb_weight_spec){"bias", 1, {p->C}, (double)p->K, 1};
    }
    return n;
}

/* Per time step: kernel prediction H*K*C MACs (+ H*K with bias) — the
 * dynamic_macs term — plus the conv, C*K (+ C with bias). flops = 2*macs +
 * 3*H*K per time step for the softmax over K (max/sub, exp, divide). acts:
 * the predictor's outputs (H*K) and the conv output (C) per time step. */
static void dynconv1d_cost(const dcb_op *op, const int64_t *x, dcb_cost *c) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const double NT = (double)x[0] * x[1], HK = (double)p->H * p->K;
    c->dynamic_macs = NT * (HK * p->C + (p->bias ? HK : 0));
    c->macs = c->dynamic_macs + NT * ((double)p->C * p->K + (p->bias ? p->C : 0));
    c->flops = 2 * c->macs + (p->softmax ? 3.0 * NT * HK : 0);
    c->params = HK * p->C + (p->bias ? HK + p->C : 0);
    c->acts = NT * (HK + p->C);
    c->bytes = 4.0 * (NT * p->C + c->params + NT * p->C);
}

static size_t kern_bytes(const dcb_seqconv_p *p, int N, int T) {
    return dcb_align_up(sizeof(float) * (size_t)N * T * p->H * p->K);
}

/* direct predicts and convolves in blocks of rows: each thread, for each of
 * its blocks of at most FUSED_ROWS time steps, one sgemm (rows x C) . (C x
 * H*K) into its own kernel buffer (at most 256 x H*K floats, which stays in
 * L2), then the softmax and the convolution of those rows while the kernels
 * are still in cache. The BLAS runs single-threaded inside the OpenMP team,
 * so that BLAS worker threads and OpenMP threads never compete for cores. */
#define FUSED_ROWS 256

static long fused_rows(long NT, int threads, int HK) {
    long per = (NT + threads - 1) / threads;
    /* wide predictions (H*K >= 256) take 512 rows a block: the sgemm packs
     * the predictor (H*K x C) once per call, so fewer calls pack it less
     * (C=512 H=16 K=31 N=8 T=1024, 1 thread: 28.5 -> 27.7 ms); the buffer
     * stays at 1 MB or less at H*K = 496 */
    const long cap = HK >= 256 ? 2 * FUSED_ROWS : FUSED_ROWS;
    return per < cap ? per : cap;
}

static size_t dynconv1d_ws(const dcb_op *op, const int64_t *x) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)x[0], T = (int)x[1];
    const dcb_seq_strategy s = (dcb_seq_strategy)op->impl->strategy_id;
    if (s == DCB_SEQ_DIRECT) {
        const size_t b = sizeof(float) * (size_t)fused_rows((long)N * T, op->threads, p->H * p->K) * p->H * p->K;
        return (size_t)op->threads * dcb_align_up(b);
    }
    return kern_bytes(p, N, T) + dcb_seqconv_ws(s, p, N, T);
}

/* prepare (direct): the predictor's rows in tap-major order, row j*H + h =
 * wlin_w row h*K + j (and wlin_b likewise), so that the predicted kernels
 * come out as (K, H) blocks whose softmax over K runs across heads in SIMD. */
typedef struct fused_state {
    float *w, *b;
} fused_state;

static dcb_status direct_prepare(dcb_op *op) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int H = p->H, K = p->K, C = p->C;
    fused_state *s = calloc(1, sizeof *s);
    if (!s || !(s->w = malloc(sizeof(float) * (size_t)H * K * C))) {
        free(s);
        return dcb_fail(DCB_OUT_OF_MEMORY, "dynconv1d/direct: out of memory");
    }
    const float *w = dcb_w(op, "wlin_w")->data;
    const dcb_tensor *bt = dcb_w(op, "wlin_b");
    if (bt && !(s->b = malloc(sizeof(float) * (size_t)H * K))) {
        free(s->w);
        free(s);
        return dcb_fail(DCB_OUT_OF_MEMORY, "dynconv1d/direct: out of memory");
    }
    for (int h = 0; h < H; h++)
        for (int j = 0; j < K; j++) {
            memcpy(s->w + ((size_t)j * H + h) * C, w + ((size_t)h * K + j) * C, sizeof(float) * (size_t)C);
            if (bt) s->b[j * H + h] = bt->data[h * K + j];
        }
    op->state = s;
    return DCB_OK;
}

static void direct_release(dcb_op *op) {
    fused_state *s = op->state;
    if (!s) return;
    free(s->w);
    free(s->b);
    free(s);
}

static void run_fused(const dcb_op *op, const float *x, int N, int T, float *ws, float *y, dcb_profile *prof) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int HK = p->H * p->K, C = p->C;
    const long NT = (long)N * T, rows = fused_rows(NT, op->threads, HK);
    const size_t kb = dcb_align_up(sizeof(float) * (size_t)rows * HK);
    const fused_state *st = op->state;
    const float *W = st->w, *wb = st->b;
    const dcb_tensor *ct = dcb_w(op, "bias");
    const float *bias = ct ? ct->data : NULL;
    const long nblk = (NT + rows - 1) / rows;
    double gen = 0, conv = 0;
    dcb_blas_threads_for(1);
#pragma omp parallel num_threads(op->threads) reduction(+ : gen, conv)
    {
        float *k = (float *)((char *)ws + kb * (size_t)omp_get_thread_num());
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblk; blk++) {
            const long r0 = blk * rows, m = NT - r0 < rows ? NT - r0 : rows;
            double t0 = dcb_now();
            if (wb)
                for (long r = 0; r < m; r++) memcpy(k + (size_t)r * HK, wb, sizeof(float) * (size_t)HK);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, HK, C, 1.0f, x + (size_t)r0 * C, C, W, C,
                        wb ? 1.0f : 0.0f, k, HK);
            double t1 = dcb_now();
            dcb_seqconv_direct_rows(p, T, x, r0, r0 + m, k, (size_t)HK, 1, p->softmax, bias, y);
            gen += t1 - t0;
            conv += dcb_now() - t1;
        }
    }
    /* the threads' summed times, scaled to the team: wall-clock shares */
    if (prof) {
        prof->seconds[DCB_PHASE_KERNEL_GEN] += gen / op->threads;
        prof->seconds[DCB_PHASE_GEMM] += conv / op->threads;
    }
}

/* k (N*T, H*K) = x (N*T, C) . wlin_w^T + wlin_b, softmax over K: in double. */
static void predict_naive(const dcb_op *op, const float *x, long NT, float *k) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int HK = p->H * p->K, C = p->C;
    const float *w = dcb_w(op, "wlin_w")->data;
    const dcb_tensor *bt = dcb_w(op, "wlin_b");
    const float *b = bt ? bt->data : NULL;
#pragma omp parallel for schedule(static) num_threads(op->threads)
    for (long nt = 0; nt < NT; nt++) {
        const float *xr = x + (size_t)nt * C;
        for (int o = 0; o < HK; o++) {
            double acc = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++) acc += (double)w[(size_t)o * C + c] * xr[c];
            k[(size_t)nt * HK + o] = (float)acc;
        }
        if (p->softmax) dcb_seqconv_softmax_double(k + (size_t)nt * HK, (size_t)p->H, p->K);
    }
}

static dcb_status dynconv1d_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const int N = (int)x->shape[0], T = (int)x->shape[1];
    const dcb_seq_strategy s = (dcb_seq_strategy)op->impl->strategy_id;
    float *k = ws;
    if (s == DCB_SEQ_DIRECT) {
        run_fused(op, x->data, N, T, ws, y->data, prof);
        return DCB_OK;
    }
    double t0 = dcb_now();
    if (s == DCB_SEQ_NAIVE) {
        predict_naive(op, x->data, (long)N * T, k);
    } else {
        const dcb_tensor *b = dcb_w(op, "wlin_b");
        /* one sgemm (N*T x C) . (C x H*K) for every time step's kernel */
        dcb_linear(x->data, N * T, p->C, dcb_w(op, "wlin_w")->data, b ? b->data : NULL, p->H * p->K, k,
                   op->threads);
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
    const dcb_tensor *bias = dcb_w(op, "bias");
    if (s != DCB_SEQ_NAIVE && p->softmax)
        dcb_seqconv_run_logits(s, p, N, T, x->data, k, (size_t)p->H * p->K, bias ? bias->data : NULL, y->data,
                               (char *)ws + kern_bytes(p, N, T), op->threads, prof);
    else
        dcb_seqconv_run(s, p, N, T, x->data, k, (size_t)p->H * p->K, bias ? bias->data : NULL, y->data,
                        (char *)ws + kern_bytes(p, N, T), op->threads, prof);
    return DCB_OK;
}

/* band: the kernel prediction, then the whole T x T matrix per (n, head). */
static double dynconv1d_band_executed(const dcb_op *op, const int64_t *x) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    const double N = (double)x[0], T = (double)x[1], HK = (double)p->H * p->K;
    return N * T * (HK * p->C + (p->bias ? HK : 0)) + N * (T * T * p->C + (p->bias ? T * p->C : 0));
}

/* The kernels hook: (N, T, H, K) after the softmax, as the oracle computes them. */
static dcb_status dynconv1d_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    const dcb_seqconv_p *p = DCB_SEQ_P(op);
    int64_t shape[4] = {x->shape[0], x->shape[1], p->H, p->K};
    dcb_tensor *k = dcb_tensor_new(4, shape);
    if (!k) return dcb_fail(DCB_OUT_OF_MEMORY, "dynconv1d: out of memory for the kernels");
    predict_naive(op, x->data, (long)(x->shape[0] * x->shape[1]), k->data);
    *out = k;
    return DCB_OK;
}

/* DynamicConv has no routing weights separate from its kernels: the per-step
 * kernels are dcb_op_kernels' answer. */
static dcb_status dynconv1d_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    return dcb_fail(DCB_UNSUPPORTED_PARAM,
                    "dynconv1d: no routing weights; its per-step kernels (N, T, heads, kernel_size) "
                    "come from dcb_op_kernels");
}

/* One vtable per strategy of the sequence engine: direct predicts in its own
 * layout (prepare), band performs more (executed). */
#define DC_IMPL(s, id, tolerance, what, prep, rel, executed)                                                 \
    static const dcb_impl_vt dc_##s = {.name = #s, .doc = what, .strategy = #s, .strategy_id = id,           \
                                       .tol = tolerance, .workspace = dynconv1d_ws, .prepare = prep,         \
                                       .run = dynconv1d_run, .release = rel, .executed_macs = executed};
DC_IMPL(naive, DCB_SEQ_NAIVE, 1e-06, "double-precision kernel prediction and direct loops: the oracle", NULL, NULL,
        NULL)
DC_IMPL(unfold, DCB_SEQ_UNFOLD, 5e-06, "sgemm kernel prediction; K-wide windows (N, T, C, K), products", NULL, NULL,
        NULL)
DC_IMPL(band, DCB_SEQ_BAND, 5e-06, "sgemm kernel prediction; T x T band matrix per (n, head), sgemm", NULL, NULL,
        dynconv1d_band_executed)
DC_IMPL(direct, DCB_SEQ_DIRECT, 5e-06, "per 256-row block: sgemm kernel prediction, softmax, AVX2 direct conv",
        direct_prepare, direct_release, NULL)

static const dcb_impl_vt *const dynconv1d_impls[] = {&dc_naive, &dc_unfold, &dc_band, &dc_direct};
static const dcb_bwd_vt *const dynconv1d_bwds[] = {&dcb_dynconv1d_bwd_naive, &dcb_dynconv1d_bwd_gemm};

const dcb_op_info dcb_dynconv1d_info = {
    .name = "dynconv1d", DCB_SEQCONV_INFO,
    .doc = "DynamicConv: lightconv with a (heads, K) kernel predicted per time step by a linear layer",
    DCB_PARAMS(dynconv1d_params), DCB_IMPLS(dynconv1d_impls), DCB_BWDS(dynconv1d_bwds), .weights = dynconv1d_weights, .cost = dynconv1d_cost,
    .kernels = dynconv1d_kernels, .routing = dynconv1d_routing,
};
