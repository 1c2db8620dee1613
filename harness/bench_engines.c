/* bench_engines — the foundation's speed check: on the 3x3 ResNet layers,
 * one thread, batch 1 and 8, compare
 *   gemm      the bare sgemm of the im2col shape (cout x 9cin x H*W, N times),
 *   im2col    target: >= 75% of gemm's GFLOP/s,
 *   winograd  F(4x4,3x3), target: faster than im2col,
 *   winograd_f2,
 *   onednn    the oneDNN peer (its reorders included; see the per-phase
 *             profile of dcbench for the primitive alone).
 * Variants are interleaved round-robin within each repetition, so a busy
 * machine slows all of them alike; medians and min-max spread are printed.
 * Usage: bench_engines [reps] [threads]  */
#define _GNU_SOURCE
#include "bench_util.h"
#include "coretype.h"
#include "dcb.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { V_GEMM, V_IM2COL, V_WINO4, V_WINO2, V_ONEDNN, NV };
static const char *const vname[NV] = {"gemm", "im2col", "winograd", "winograd_f2", "onednn"};

typedef struct ctx {
    int N, C, H, threads;
    dcb_tensor *x, *y;
    dcb_op *op[NV];
    void *ws[NV];
    float *A, *B, *Cm;  /* bare GEMM operands */
} ctx;

static void run_variant(ctx *c, int v) {
    if (v == V_GEMM) {
        const int M = c->C, K = 9 * c->C, P = c->H * c->H;
        for (int n = 0; n < c->N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, P, K, 1.0f, c->A, K, c->B, P, 0.0f,
                        c->Cm + (size_t)n * M * P, P);
    } else {
        dcb_op_run(c->op[v], c->x, c->y, c->ws[v], NULL);
    }
}

int main(int argc, char **argv) {
    dcb_fix_coretype(argv);
    const int reps = argc > 1 ? atoi(argv[1]) : 9;
    const int threads = argc > 2 ? atoi(argv[2]) : 1;
    static const int layers[][2] = {{64, 56}, {128, 28}, {256, 14}, {512, 7}};
    static const int batches[] = {1, 8};
    const char *forced = getenv("DCB_FORCED_CORETYPE");
    printf("# bench_engines: conv2d 3x3 stride 1 pad 1, cin = cout, %d thread(s), %d repetitions\n", threads,
           reps);
    printf("# libdcb %s; flags: %s\n# BLAS: %s\n", DCB_VERSION, dcb_build_flags(), dcb_blas_info());
    if (forced) printf("# the environment set OPENBLAS_CORETYPE=%s; dropped, OpenBLAS chose its own core\n", forced);
    printf("%-10s %2s | %-12s %9s %7s %8s | %s\n", "layer", "N", "variant", "median_ms", "spread", "GFLOP/s",
           "ratio");
    int misses = 0;
    for (size_t l = 0; l < 4; l++)
        for (size_t b = 0; b < 2; b++) {
            ctx c = {0};
            c.N = batches[b];
            c.C = layers[l][0];
            c.H = layers[l][1];
            c.threads = threads;
            const size_t P = (size_t)c.H * c.H, K = 9 * (size_t)c.C;
            c.x = dcb_tensor_new4(c.N, c.C, c.H, c.H);
            c.y = dcb_tensor_new4(c.N, c.C, c.H, c.H);
            dcb_tensor_randn(c.x, 1);
            c.A = dcb_aligned_alloc(sizeof(float) * c.C * K);
            c.B = dcb_aligned_alloc(sizeof(float) * K * P);
            c.Cm = dcb_aligned_alloc(sizeof(float) * c.N * c.C * P);
            for (size_t i = 0; i < c.C * K; i++) c.A[i] = (float)((i % 7) - 3) * 0.01f;
            for (size_t i = 0; i < K * P; i++) c.B[i] = (float)((i % 5) - 2) * 0.1f;
            for (int v = V_IM2COL; v < NV; v++) {
                dcb_hparam hp[] = {{"cin", c.C, NULL}, {"cout", c.C, NULL}, {"k", 3, NULL},
                                   {"pad", 1, NULL},   {"threads", threads, NULL}};
                if (dcb_op_create("conv2d", vname[v], hp, 5, &c.op[v]) != DCB_OK) {
                    fprintf(stderr, "bench_engines: %s: %s\n", vname[v], dcb_last_error());
                    return 1;
                }
                dcb_op_init_weights(c.op[v], 3);
                dcb_op_prepare(c.op[v]);
                size_t wsb = 0;
                int yn;
                int64_t ys[DCB_MAX_DIMS];
                dcb_op_plan(c.op[v], 4, c.x->shape, &yn, ys, &wsb);
                c.ws[v] = wsb ? dcb_aligned_alloc(wsb) : NULL;
            }
            dcb_blas_set_threads(threads);
            /* inner repetition count so that one sample lasts >= 30 ms */
            int inner[NV];
            for (int v = 0; v < NV; v++) {
                inner[v] = 1;
                for (;;) {
                    double t0 = now();
                    for (int i = 0; i < inner[v]; i++) run_variant(&c, v);
                    if (now() - t0 > 0.03 || inner[v] > 1 << 16) break;
                    inner[v] *= 2;
                }
            }
            double t[NV][64];
            for (int r = 0; r < reps && r < 64; r++)
                for (int v = 0; v < NV; v++) {
                    double t0 = now();
                    for (int i = 0; i < inner[v]; i++) run_variant(&c, v);
                    t[v][r] = (now() - t0) / inner[v];
                }
            const double flops = 2.0 * c.N * c.C * K * P;
            double med[NV];
            for (int v = 0; v < NV; v++) {
                qsort(t[v], (size_t)reps, sizeof(double), cmp_double);
                med[v] = t[v][reps / 2];
                double spread = (t[v][reps - 1] - t[v][0]) / med[v];
                char ratio[96] = "";
                if (v == V_IM2COL) {
                    double q = med[V_GEMM] / med[v];
                    snprintf(ratio, sizeof ratio, "%.2f of gemm (target >= 0.75) %s", q, q >= 0.75 ? "ok" : "MISS");
                    misses += q < 0.75;
                } else if (v == V_WINO4 || v == V_WINO2) {
                    double q = med[V_IM2COL] / med[v];
                    snprintf(ratio, sizeof ratio, "%.2fx im2col%s", q,
                             v == V_WINO4 ? (q > 1 ? " (target > 1) ok" : " (target > 1) MISS") : "");
                    if (v == V_WINO4) misses += q <= 1;
                } else if (v == V_ONEDNN) {
                    double best = med[V_WINO4] < med[V_WINO2] ? med[V_WINO4] : med[V_WINO2];
                    if (med[V_IM2COL] < best) best = med[V_IM2COL];
                    snprintf(ratio, sizeof ratio, "our best / onednn = %.2f", best / med[v]);
                }
                printf("%4d@%-5d %2d | %-12s %9.3f %6.1f%% %8.1f | %s\n", c.C, c.H, c.N, vname[v], 1e3 * med[v],
                       100 * spread, flops / med[v] * 1e-9, ratio);
            }
            fflush(stdout);
            for (int v = V_IM2COL; v < NV; v++) {
                dcb_op_destroy(c.op[v]);
                dcb_aligned_free(c.ws[v]);
            }
            dcb_aligned_free(c.A);
            dcb_aligned_free(c.B);
            dcb_aligned_free(c.Cm);
            dcb_tensor_free(c.x);
            dcb_tensor_free(c.y);
        }
    printf("# GFLOP/s = 2 * 9 * C * C * H * W * N / median time (direct-convolution FLOPs for every variant)\n");
    printf("# %d target(s) missed\n", misses);
    return 0;
}
