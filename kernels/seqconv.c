/* The 1-D sequence convolution engine shared by lightconv and dynconv1d
 * (seqconv.h), in four strategies:
 *   naive   direct loops, double accumulation: the oracle;
 *   unfold  materialise the K-wide windows (N, T, C, K) in the workspace,
 *           then one K-long product per output (fairseq's long-sequence path);
 *   band    per (n, head) the T x T band matrix whose row t holds the K taps
 *           on columns t-left_pad .. t-left_pad+K-1, then one sgemm
 *           (T x T) x (T x C/H) (fairseq's short-sequence path; O(T^2) work);
 *   direct  no materialisation: for each (n, t) and head, blocks of output
 *           channels held in registers while the valid taps j stream
 *           w * x[n, t+j-pad, block] through FMAs (the row kernel of
 *           ukernels/seq1d.h, its variant picked at run time for the CPU).
 *           With dcb_seqconv_run_logits the softmax over K is fused in
 *           (ukernels/vmath.h). */
#include "seqconv.h"
#include "ukernels/seq1d.h"
#include "ukernels/vmath.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- shared hyperparameters */
dcb_status dcb_seqconv_validate(dcb_op *op) {
    dcb_seqconv_p *p = dcb_new_hp(op, sizeof *p);
    if (!p) return DCB_OUT_OF_MEMORY;
    const char *opname = op->info->name;
    dcb_status st;
    if (isnan(dcb_pv(op, "channels"))) return dcb_fail(DCB_INVALID_PARAM, "%s: channels is required", opname);
    if (isnan(dcb_pv(op, "kernel_size")))
        return dcb_fail(DCB_INVALID_PARAM, "%s: kernel_size is required", opname);
    if ((st = dcb_get_int(op, "channels", 1, &p->C)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "heads", 1, &p->H)) != DCB_OK) return st;
    if ((st = dcb_get_int(op, "kernel_size", 1, &p->K)) != DCB_OK) return st;
    if (p->K > 65536)   /* as the conv extent: nothing longer makes sense, and T*K stays in range */
        return dcb_fail(DCB_INVALID_PARAM, "%s: kernel_size=%d is above 65536", opname, p->K);
    if (p->C % p->H)
        return dcb_fail(DCB_INVALID_PARAM, "%s: heads=%d does not divide channels=%d", opname, p->H, p->C);
    const char *pad = dcb_ps(op, "padding");
    if (pad && strcmp(pad, "same") == 0)
        p->causal = 0;
    else if (pad && strcmp(pad, "causal") == 0)
        p->causal = 1;
    else
        return dcb_fail(DCB_INVALID_PARAM, "%s: padding='%s' is invalid (valid: same, causal)", opname,
                        pad ? pad : "(null)");
    p->softmax = dcb_pv(op, "weight_softmax") != 0;
    p->bias = dcb_pv(op, "bias") != 0;
    return DCB_OK;
}

dcb_status dcb_seqconv_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *y) {
    const char *opname = op->info->name;
    const dcb_seqconv_p *p = op->hp;
    char s[128];
    if (ndim != 3)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input must be (N, T, C), got %s", opname,
                        dcb_shape_str(ndim, x, s, sizeof s));
    if (x[0] < 1 || x[1] < 1 || x[0] > INT32_MAX || x[1] > INT32_MAX || x[0] * x[1] > INT32_MAX)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input shape %s has a bad size", opname,
                        dcb_shape_str(ndim, x, s, sizeof s));
    if (x[2] != p->C)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input has %lld channels, channels=%d", opname,
                        (long long)x[2], p->C);
    *yn = 3;
    y[0] = x[0];
    y[1] = x[1];
    y[2] = x[2];
    return DCB_OK;
}

size_t dcb_seqconv_ws(dcb_seq_strategy s, const dcb_seqconv_p *p, int N, int T) {
    if (s == DCB_SEQ_UNFOLD) return sizeof(float) * (size_t)N * T * p->C * p->K;
    if (s == DCB_SEQ_BAND) return sizeof(float) * (size_t)T * T;
    return 0;
}

void dcb_seqconv_softmax_double(float *k, size_t rows, int K) {
    for (size_t r = 0; r < rows; r++) {
        float *v = k + r * K;
        double m = -INFINITY, s = 0;
        for (int j = 0; j < K; j++)
            if (v[j] > m) m = v[j];
        for (int j = 0; j < K; j++) s += exp((double)v[j] - m);
        for (int j = 0; j < K; j++) v[j] = (float)(exp((double)v[j] - m) / s);
    }
}

/* ------------------------------------------------------------ the strategies */
static void seq_naive(const dcb_seqconv_p *p, int N, int T, const float *x, const float *kern,
                      size_t kstride, const float *bias, float *y, int threads) {
    const int C = p->C, K = p->K, R = p->C / p->H, lp = dcb_seqconv_left_pad(p);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long nt = 0; nt < (long)N * T; nt++) {
        const long n = nt / T, t = nt % T;
        const float *k = kern + (size_t)nt * kstride;
        for (int c = 0; c < C; c++) {
            const int h = c / R;
            double acc = bias ? bias[c] : 0.0;
            for (int j = 0; j < K; j++) {
                const long s = t + j - lp;
                if (s < 0 || s >= T) continue;
                acc += (double)k[h * K + j] * x[((size_t)n * T + s) * C + c];
            }
            y[(size_t)nt * C + c] = (float)acc;
        }
    }
}

/* ------------------------------------------------ the direct strategy's parts
 * The softmaxes over K (in float, a vectorised exp) and the output rows are
 * the kernel families' (ukernels/vmath.h, ukernels/seq1d.h). */

/* direct: no materialisation. For each (n, t) the valid taps j0..j1 (those that
 * read inside [0, T)), then direct_row. With logits, each step's (H, K) block
 * of kern is softmax-normalised in place just before its use. */
void dcb_seqconv_direct_rows(const dcb_seqconv_p *p, int T, const float *restrict x, long nt0, long nt1,
                             float *kern, size_t kstride, int tap_major, int logits, const float *restrict bias,
                             float *restrict y) {
    const int C = p->C, K = p->K, H = p->H, lp = dcb_seqconv_left_pad(p);
    const dcb_seq1d_row_fn direct_row = dcb_seq1d()->row;
    const dcb_seq1d_rows4_fn rows4 = dcb_seq1d()->rows4;
    const dcb_vmath_kernels *vm = dcb_vmath();
    for (long nt = nt0; nt < nt1; nt++) {
        const long n = nt / T, t = nt % T;
        float *k = kern + (size_t)(nt - nt0) * kstride;
        /* four rows of one sequence with all their taps inside it: one pass
         * over their input rows (the same bits as four rows). From K = 8:
         * dynconv1d C=512 H=16 N=8 T=1024 on 1 thread, K=31 28.4 -> 26.3 ms,
         * K=15 14.3 -> 14.0; at K = 3 and 5 it was 2-8% slower. */
        if (rows4 && K >= 8 && nt + 4 <= nt1 && t + 4 <= T && t - lp >= 0 && t + 3 - lp + K <= T) {
            if (logits)
                for (int r = 0; r < 4; r++) {
                    if (tap_major)
                        vm->softmax_taps(k + (size_t)r * kstride, H, K);
                    else
                        vm->softmax_heads(k + (size_t)r * kstride, H, K);
                }
            rows4(C, H, tap_major ? 1 : K, tap_major ? H : 1, k, kstride, K, x + ((size_t)n * T + t - lp) * C, bias,
                  y + (size_t)nt * C);
            nt += 3;
            continue;
        }
        if (logits) {
            if (tap_major)
                vm->softmax_taps(k, H, K);
            else
                vm->softmax_heads(k, H, K);
        }
        const int j0 = t - lp < 0 ? (int)(lp - t) : 0;
        const int j1 = t - lp + K > T ? (int)(T + lp - t) : K;
        if (j0 >= j1) {
            float *yr = y + (size_t)nt * C;
            for (int c = 0; c < C; c++) yr[c] = bias ? bias[c] : 0.0f;
            continue;
        }
        direct_row(C, H, tap_major ? 1 : K, tap_major ? H : 1, k, j0, j1, x + ((size_t)n * T + t + j0 - lp) * C,
                   bias, y + (size_t)nt * C);
    }
}

/* kern is only written when logits (kstride 0 shares one block: lightconv). */
static void seq_direct(const dcb_seqconv_p *p, int N, int T, const float *x, float *kern, size_t kstride,
                       int logits, const float *bias, float *y, int threads) {
    const long NT = (long)N * T;
#pragma omp parallel num_threads(threads)
    {
        const int nth = omp_get_num_threads(), id = omp_get_thread_num();
        const long a = NT * id / nth, b = NT * (id + 1) / nth;
        if (a < b) dcb_seqconv_direct_rows(p, T, x, a, b, kern + (size_t)a * kstride, kstride, 0, logits, bias, y);
    }
}

static void seq_unfold(const dcb_seqconv_p *p, int N, int T, const float *x, const float *kern,
                       size_t kstride, const float *bias, float *y, float *U, int threads,
                       dcb_profile *prof) {
    const int C = p->C, K = p->K, R = p->C / p->H, lp = dcb_seqconv_left_pad(p);
    double t0 = dcb_now();
    /* U[n, t, c, j] = x[n, t + j - left_pad, c], zero outside the sequence: a
     * (K x C) -> (C x K) transpose per time step, in blocks of 16 channels so
     * that both the reads and the writes stay in a few cache lines */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long nt = 0; nt < (long)N * T; nt++) {
        const long n = nt / T, t = nt % T;
        float *u = U + (size_t)nt * C * K;
        for (int c0 = 0; c0 < C; c0 += 16) {
            const int c1 = c0 + 16 < C ? c0 + 16 : C;
            for (int j = 0; j < K; j++) {
                const long s = t + j - lp;
                if (s < 0 || s >= T) {
                    for (int c = c0; c < c1; c++) u[(size_t)c * K + j] = 0.0f;
                    continue;
                }
                const float *xr = x + ((size_t)n * T + s) * C;
                for (int c = c0; c < c1; c++) u[(size_t)c * K + j] = xr[c];
            }
        }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
    t0 = dcb_now();
    /* the batched products: each (n, t, head)'s (C/H x K) window block times
     * its K taps. Eight channels at a time with independent accumulators, so
     * the K-long dot products run side by side instead of as one serial chain. */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long nt = 0; nt < (long)N * T; nt++) {
        const float *k = kern + (size_t)nt * kstride;
        const float *u = U + (size_t)nt * C * K;
        float *yr = y + (size_t)nt * C;
        int c = 0;
        for (; c + 8 <= C; c += 8) {
            const float *kc[8];
            float acc[8];
            for (int r = 0; r < 8; r++) {
                kc[r] = k + (size_t)((c + r) / R) * K;
                acc[r] = 0.0f;
            }
            for (int j = 0; j < K; j++)
                for (int r = 0; r < 8; r++) acc[r] += u[(size_t)(c + r) * K + j] * kc[r][j];
            for (int r = 0; r < 8; r++) yr[c + r] = bias ? bias[c + r] + acc[r] : acc[r];
        }
        for (; c < C; c++) {
            const float *kh = k + (size_t)(c / R) * K;
            const float *uc = u + (size_t)c * K;
            float acc = 0.0f;
            for (int j = 0; j < K; j++) acc += uc[j] * kh[j];
            yr[c] = bias ? bias[c] + acc : acc;
        }
    }
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
}

static void seq_band(const dcb_seqconv_p *p, int N, int T, const float *x, const float *kern,
                     size_t kstride, const float *bias, float *y, float *B, int threads,
                     dcb_profile *prof) {
    const int C = p->C, K = p->K, H = p->H, R = p->C / p->H, lp = dcb_seqconv_left_pad(p);
    /* sgemm accumulates onto y (beta = 1), so y starts as the bias */
    for (long nt = 0; nt < (long)N * T; nt++) {
        float *yr = y + (size_t)nt * C;
        if (bias)
            memcpy(yr, bias, sizeof(float) * (size_t)C);
        else
            memset(yr, 0, sizeof(float) * (size_t)C);
    }
    dcb_blas_threads_for(threads);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            double t0 = dcb_now();
            memset(B, 0, sizeof(float) * (size_t)T * T);
            for (int t = 0; t < T; t++) {
                const float *k = kern + ((size_t)n * T + t) * kstride + (size_t)h * K;
                float *row = B + (size_t)t * T;
                for (int j = 0; j < K; j++) {
                    const int s = t + j - lp;
                    if (s >= 0 && s < T) row[s] = k[j];
                }
            }
            DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
            t0 = dcb_now();
            const size_t off = (size_t)n * T * C + (size_t)h * R;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, R, T, 1.0f, B, T, x + off, C, 1.0f,
                        y + off, C);
            DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        }
}

void dcb_seqconv_run(dcb_seq_strategy s, const dcb_seqconv_p *p, int N, int T, const float *x,
                     const float *kern, size_t kstride, const float *bias, float *y, void *ws, int threads,
                     dcb_profile *prof) {
    double t0 = dcb_now();
    switch (s) {
    case DCB_SEQ_NAIVE:
        seq_naive(p, N, T, x, kern, kstride, bias, y, threads);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        break;
    case DCB_SEQ_DIRECT:
        seq_direct(p, N, T, x, (float *)kern, kstride, 0, bias, y, threads);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        break;
    case DCB_SEQ_UNFOLD:
        seq_unfold(p, N, T, x, kern, kstride, bias, y, ws, threads, prof);
        break;
    case DCB_SEQ_BAND:
        seq_band(p, N, T, x, kern, kstride, bias, y, ws, threads, prof);
        break;
    case DCB_SEQ_COUNT: /* not a strategy; a new one without a case is a -Wswitch error */
        break;
    }
}

void dcb_seqconv_run_logits(dcb_seq_strategy s, const dcb_seqconv_p *p, int N, int T, const float *x,
                            float *logits, size_t kstride, const float *bias, float *y, void *ws, int threads,
                            dcb_profile *prof) {
    double t0 = dcb_now();
    if (s == DCB_SEQ_DIRECT) {
        seq_direct(p, N, T, x, logits, kstride, 1, bias, y, threads);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        return;
    }
    const dcb_vmath_kernels *vm = dcb_vmath();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long nt = 0; nt < (long)N * T; nt++) vm->softmax_heads(logits + (size_t)nt * kstride, p->H, p->K);
    DCB_PHASE_ADD(prof, DCB_PHASE_KERNEL_GEN, t0);
    dcb_seqconv_run(s, p, N, T, x, logits, kstride, bias, y, ws, threads, prof);
}

