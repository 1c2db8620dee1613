/* bench_dynamic — dynamic convolutions against our own static conv (issue 6,
 * target 2): on the 3x3 layers C=128@28x28 and C=256@14x14, batch 8, compare
 *   conv2d winograd        the static reference (our best engine there),
 *   conv2d onednn          the peer,
 *   condconv E=8, dyconv K=4 in every strategy on the fast engines;
 * target: dynamic / static winograd <= 1.10.
 * Variants are interleaved round-robin within each repetition, so a busy
 * machine slows all of them alike; medians and (max-min)/median spread are
 * printed, and the per-phase split of one extra run of each dynamic variant.
 * GFLOP/s counts direct-convolution FLOPs (2*9*C*C*H*W*N) for every variant,
 * so that the column compares times, not each engine's own work.
 * Usage: bench_dynamic [reps] [threads...]   (default: 7 repetitions, 1 2) */
#define _GNU_SOURCE
#include "bench_util.h"
#include "coretype.h"
#include "dcb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct variant {
    const char *op, *impl;
} variant;

static const variant variants[] = {
    {"conv2d", "winograd"},
    {"conv2d", "onednn"},
    {"condconv", "combine_then_conv/winograd"},
    {"condconv", "combine_then_conv/winograd_f2"},
    {"condconv", "combine_then_conv/im2col"},
    {"condconv", "conv_then_combine/winograd"},
    {"dyconv", "combine_then_conv/winograd"},
    {"dyconv", "combine_then_conv/winograd_f2"},
    {"dyconv", "combine_then_conv/im2col"},
    {"dyconv", "conv_then_combine/winograd"},
};
#define NV (int)(sizeof variants / sizeof variants[0])

static int make(bench_slot *s, const variant *v, int C, int threads, const dcb_tensor *x) {
    dcb_hparam hp[] = {{"cin", C, NULL}, {"cout", C, NULL}, {"k", 3, NULL}, {"pad", 1, NULL},
                       {"threads", threads, NULL}};
    if (bench_slot_make(s, v->op, v->impl, hp, 5, x) != DCB_OK) {
        fprintf(stderr, "bench_dynamic: %s %s: %s\n", v->op, v->impl, dcb_last_error());
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    dcb_fix_coretype(argv);
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1) reps = 1;
    if (reps > BENCH_MAXREP) reps = BENCH_MAXREP;
    int thr[8] = {1, 2}, nthr = 2;
    if (argc > 2) {
        nthr = 0;
        for (int i = 2; i < argc && nthr < 8; i++) thr[nthr++] = atoi(argv[i]);
    }
    static const int layers[][2] = {{128, 28}, {256, 14}};
    const int N = 8;
    const char *forced = getenv("DCB_FORCED_CORETYPE");
    printf("# bench_dynamic: 3x3 stride 1 pad 1, cin = cout, batch %d, %d repetitions\n", N, reps);
    printf("# libdcb %s; flags: %s\n# BLAS: %s\n", DCB_VERSION, dcb_build_flags(), dcb_blas_info());
    if (forced) printf("# the environment set OPENBLAS_CORETYPE=%s; dropped, OpenBLAS chose its own core\n", forced);
    printf("%-8s %3s | %-8s %-30s %9s %7s %7s %7s | %s\n", "layer", "thr", "op", "impl", "median_ms", "spread",
           "GFLOP/s", "x_stat", "phases ms: routing kernel_gen transform gemm combine");
    int misses = 0, checked = 0;
    double static_ms[2][8] = {{0}};
    for (int l = 0; l < 2; l++)
        for (int ti = 0; ti < nthr; ti++) {
            const int C = layers[l][0], H = layers[l][1], threads = thr[ti];
            dcb_tensor *x = dcb_tensor_new4(N, C, H, H);
            dcb_tensor_randn(x, 1);
            bench_slot s[NV];
            memset(s, 0, sizeof s);
            for (int v = 0; v < NV; v++)
                if (make(&s[v], &variants[v], C, threads, x)) return 1;
            /* inner repetitions so that one sample lasts >= 40 ms */
            for (int v = 0; v < NV; v++) {
                s[v].inner = 1;
                for (;;) {
                    double t0 = now();
                    for (int i = 0; i < s[v].inner; i++) dcb_op_run(s[v].op, x, s[v].y, s[v].ws, NULL);
                    if (now() - t0 > 0.04 || s[v].inner > 1 << 12) break;
                    s[v].inner *= 2;
                }
            }
            for (int r = 0; r < reps; r++)
                for (int v = 0; v < NV; v++) {
                    double t0 = now();
                    for (int i = 0; i < s[v].inner; i++) dcb_op_run(s[v].op, x, s[v].y, s[v].ws, NULL);
                    s[v].t[r] = (now() - t0) / s[v].inner;
                }
            for (int v = 0; v < NV; v++) dcb_op_run(s[v].op, x, s[v].y, s[v].ws, &s[v].prof);
            const double flops = 2.0 * N * 9.0 * C * C * H * H;
            double med[NV];
            for (int v = 0; v < NV; v++) {
                qsort(s[v].t, (size_t)reps, sizeof(double), cmp_double);
                med[v] = s[v].t[reps / 2];
            }
            static_ms[l][ti] = 1e3 * med[0];
            for (int v = 0; v < NV; v++) {
                const double spread = (s[v].t[reps - 1] - s[v].t[0]) / med[v], q = med[v] / med[0];
                char note[160] = "";
                const dcb_profile *p = &s[v].prof;
                if (strcmp(variants[v].op, "conv2d") != 0) {
                    const int best = strncmp(variants[v].impl, "combine_then_conv/winograd", 27) == 0;
                    snprintf(note, sizeof note, "%.2f %.2f %.2f %.2f %.2f%s", 1e3 * p->seconds[0],
                             1e3 * p->seconds[1], 1e3 * p->seconds[2], 1e3 * p->seconds[3], 1e3 * p->seconds[4],
                             best ? (q <= 1.10 ? "  target <= 1.10 ok" : "  target <= 1.10 MISS") : "");
                    if (best) {
                        checked++;
                        misses += q > 1.10;
                    }
                }
                printf("%4d@%-3d %3d | %-8s %-30s %9.3f %6.1f%% %7.1f %7.2f | %s\n", C, H, threads, variants[v].op,
                       variants[v].impl, 1e3 * med[v], 100 * spread, flops / med[v] * 1e-9, q, note);
            }
            fflush(stdout);
            for (int v = 0; v < NV; v++) {
                dcb_op_destroy(s[v].op);
                dcb_aligned_free(s[v].ws);
                dcb_tensor_free(s[v].y);
            }
            dcb_tensor_free(x);
        }
    for (int l = 0; l < 2; l++)
        for (int ti = 1; ti < nthr; ti++)
            printf("# static winograd %d@%d: %d -> %d threads: %.2fx\n", layers[l][0], layers[l][1], thr[0], thr[ti],
                   static_ms[l][0] / static_ms[l][ti]);
    printf("# x_stat = median / median of conv2d winograd in the same run and thread count\n");
    printf("# %d of %d combine_then_conv/winograd targets missed\n", misses, checked);
    return 0;
}
