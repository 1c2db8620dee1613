/* bench_pointwise_dw — the "direct" engine against oneDNN (issue 6, target 4):
 * on the 1x1 256->64@56 and the depthwise 3x3 C=144@56 layers (with "all":
 * also depthwise stride 2, the 3x3 ResNet layers and the 3x3 stride-2
 * 128->256@28 layer), batch 1 and 8, time direct, im2col, winograd and
 * onednn (its reorders included) interleaved round-robin within every
 * repetition, and print medians, the (max - min) / median spread, GFLOP/s,
 * direct's relative error against the naive oracle (batch 1) and the speed
 * of direct relative to oneDNN (target >= 0.9 on the two issue layers).
 * Usage: bench_pointwise_dw [reps] [threads] [all]  */
#define _GNU_SOURCE
#include "bench_util.h"
#include "coretype.h"
#include "dcb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct layer {
    const char *name;
    int cin, cout, k, stride, pad, groups, H, target;
} layer;

static const layer layers[] = {
    {"1x1 256->64@56", 256, 64, 1, 1, 0, 1, 56, 1},
    {"dw3x3 144@56", 144, 144, 3, 1, 1, 144, 56, 1},
    {"dw3x3 s2 144@56", 144, 144, 3, 2, 1, 144, 56, 0},
    {"3x3 64@56", 64, 64, 3, 1, 1, 1, 56, 0},
    {"3x3 128@28", 128, 128, 3, 1, 1, 1, 28, 0},
    {"3x3 256@14", 256, 256, 3, 1, 1, 1, 14, 0},
    {"3x3 s2 128->256@28", 128, 256, 3, 2, 1, 1, 28, 0},
};

enum { V_DIRECT, V_IM2COL, V_WINO, V_ONEDNN, NV };
static const char *const vname[NV] = {"direct", "im2col", "winograd", "onednn"};

static dcb_op *make(const layer *l, const char *impl, int threads) {
    dcb_hparam hp[] = {{"cin", l->cin, NULL},       {"cout", l->cout, NULL},     {"k", l->k, NULL},
                       {"stride", l->stride, NULL}, {"pad", l->pad, NULL},       {"groups", l->groups, NULL},
                       {"threads", threads, NULL}};
    dcb_op *op = NULL;
    if (dcb_op_create("conv2d", impl, hp, 7, &op) != DCB_OK) return NULL;
    dcb_op_init_weights(op, 3);
    dcb_op_prepare(op);
    return op;
}

int main(int argc, char **argv) {
    dcb_fix_coretype(argv);
    const int reps = argc > 1 ? atoi(argv[1]) : 9;
    const int threads = argc > 2 ? atoi(argv[2]) : 1;
    const int all = argc > 3 && strcmp(argv[3], "all") == 0;
    const int nl = all ? (int)(sizeof layers / sizeof layers[0]) : 2;
    static const int batches[] = {1, 8};
    printf("# bench_pointwise_dw: conv2d, %d thread(s), %d repetitions, variants interleaved\n", threads, reps);
    printf("# libdcb %s; flags: %s\n# BLAS: %s; oneDNN %s\n", DCB_VERSION, dcb_build_flags(), dcb_blas_info(),
           dcb_onednn_version());
    printf("%-19s %2s | %-9s %9s %7s %8s | %s\n", "layer", "N", "variant", "median_ms", "spread", "GFLOP/s",
           "note");
    int misses = 0;
    for (int li = 0; li < nl; li++)
        for (int bi = 0; bi < 2; bi++) {
            const layer *l = &layers[li];
            const int N = batches[bi];
            dcb_tensor *x = dcb_tensor_new4(N, l->cin, l->H, l->H);
            dcb_tensor_randn(x, 1);
            dcb_op *op[NV] = {0};
            void *ws[NV] = {0};
            dcb_tensor *y = NULL;
            for (int v = 0; v < NV; v++) {
                op[v] = make(l, vname[v], threads);
                if (!op[v]) continue;
                size_t wsb = 0;
                int yn;
                int64_t ys[DCB_MAX_DIMS];
                if (dcb_op_plan(op[v], 4, x->shape, &yn, ys, &wsb) != DCB_OK) {
                    dcb_op_destroy(op[v]);
                    op[v] = NULL;
                    continue;
                }
                if (!y) y = dcb_tensor_new(yn, ys);
                ws[v] = wsb ? dcb_aligned_alloc(wsb) : NULL;
            }
            dcb_blas_set_threads(threads);
            /* direct's error against the oracle, on batch 1 */
            char errs[48] = "";
            if (N == 1 && op[V_DIRECT]) {
                dcb_op *nv = make(l, "naive", threads);
                dcb_tensor *ref = NULL;
                dcb_op_forward(nv, x, &ref);
                dcb_op_run(op[V_DIRECT], x, y, ws[V_DIRECT], NULL);
                snprintf(errs, sizeof errs, "rel err %.2g; ", dcb_max_rel_err(y, ref, NULL));
                dcb_tensor_free(ref);
                dcb_op_destroy(nv);
            }
            int inner[NV];
            for (int v = 0; v < NV; v++) {
                inner[v] = 1;
                if (!op[v]) continue;
                for (;;) {
                    double t0 = now();
                    for (int i = 0; i < inner[v]; i++) dcb_op_run(op[v], x, y, ws[v], NULL);
                    if (now() - t0 > 0.02 || inner[v] > 1 << 16) break;
                    inner[v] *= 2;
                }
            }
            double t[NV][64];
            const int R = reps < 64 ? reps : 64;
            for (int r = 0; r < R; r++)
                for (int v = 0; v < NV; v++) {
                    if (!op[v]) continue;
                    double t0 = now();
                    for (int i = 0; i < inner[v]; i++) dcb_op_run(op[v], x, y, ws[v], NULL);
                    t[v][r] = (now() - t0) / inner[v];
                }
            const int Ho = (l->H + 2 * l->pad - l->k) / l->stride + 1;
            const double flops = 2.0 * N * l->cout * (double)Ho * Ho * (l->cin / l->groups) * l->k * l->k;
            double med[NV] = {0};
            for (int v = 0; v < NV; v++) {
                if (!op[v]) {
                    printf("%-19s %2d | %-9s %9s %7s %8s | unsupported\n", l->name, N, vname[v], "-", "-", "-");
                    continue;
                }
                qsort(t[v], (size_t)R, sizeof(double), cmp_double);
                med[v] = t[v][R / 2];
            }
            for (int v = 0; v < NV; v++) {
                if (!op[v]) continue;
                char note[128] = "";
                if (v == V_DIRECT && op[V_ONEDNN]) {
                    const double q = med[V_ONEDNN] / med[v];
                    snprintf(note, sizeof note, "%sspeed / onednn = %.2f%s", errs, q,
                             l->target ? (q >= 0.9 ? " (target >= 0.9) ok" : " (target >= 0.9) MISS") : "");
                    misses += l->target && q < 0.9;
                }
                printf("%-19s %2d | %-9s %9.3f %6.1f%% %8.1f | %s\n", l->name, N, vname[v], 1e3 * med[v],
                       100 * (t[v][R - 1] - t[v][0]) / med[v], flops / med[v] * 1e-9, note);
            }
            fflush(stdout);
            for (int v = 0; v < NV; v++) {
                dcb_op_destroy(op[v]);
                dcb_aligned_free(ws[v]);
            }
            dcb_tensor_free(x);
            dcb_tensor_free(y);
        }
    printf("# GFLOP/s = 2 * MACs of the direct convolution / median time; onednn includes its reorders\n");
    printf("# %d target(s) missed\n", misses);
    return 0;
}
