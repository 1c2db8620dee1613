/* dcbench — the harness program. For now: `dcbench demo`, a built-in
 * comparison of the conv2d engines on a few layers, and `dcbench list`. The
 * Lua-scripted sweeps come with the harness issue. */
#define _GNU_SOURCE
#include "coretype.h"
#include "dcb.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: dcbench COMMAND\n"
            "  demo          compare the conv2d engines on a few layers (median time, GFLOP/s,\n"
            "                error against the naive oracle)\n"
            "  list          every registered operator and implementation\n"
            "  --help        this text\n"
            "Environment: OPENBLAS_CORETYPE is reported and dropped (DCB_KEEP_CORETYPE=1 keeps it).\n");
}

static void print_machine(void) {
    const char *forced = getenv("DCB_FORCED_CORETYPE");
    printf("# libdcb %s, built with: %s\n", DCB_VERSION, dcb_build_flags());
    printf("# BLAS: %s%s%s\n", dcb_blas_info(), forced ? "; environment had OPENBLAS_CORETYPE=" : "",
           forced ? forced : "");
}

static int cmd_list(void) {
    for (int i = 0; i < dcb_op_count(); i++) {
        const char *op = dcb_op_name(i);
        printf("%s:", op);
        for (int k = 0; k < dcb_impl_count(op); k++) printf(" %s", dcb_impl_name(op, k));
        printf("\n");
    }
    return 0;
}

typedef struct layer {
    const char *name;
    int N, cin, cout, H, k, stride, pad, groups;
} layer;

/* Median seconds of `reps` runs, each repeated until it lasts >= 20 ms. */
static double time_op(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, int reps, double *spread) {
    double t[16];
    int inner = 1;
    for (;;) {
        double t0 = now();
        for (int i = 0; i < inner; i++) dcb_op_run(op, x, y, ws, NULL);
        double dt = now() - t0;
        if (dt > 0.02 || inner > 1 << 20) break;
        inner *= 2;
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int i = 0; i < inner; i++) dcb_op_run(op, x, y, ws, NULL);
        t[r] = (now() - t0) / inner;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    *spread = (t[reps - 1] - t[0]) / t[reps / 2];
    return t[reps / 2];
}

static int cmd_demo(void) {
    static const layer layers[] = {
        {"resnet 3x3 64@56", 1, 64, 64, 56, 3, 1, 1, 1},
        {"resnet 3x3 128@28", 1, 128, 128, 28, 3, 1, 1, 1},
        {"resnet 3x3 256@14", 1, 256, 256, 14, 3, 1, 1, 1},
        {"resnet 3x3 512@7", 1, 512, 512, 7, 3, 1, 1, 1},
        {"1x1 256->64@56", 1, 256, 64, 56, 1, 1, 0, 1},
        {"3x3 s2 128->256@28", 1, 128, 256, 28, 3, 2, 1, 1},
        {"resnext 3x3 g32 128@28", 1, 128, 128, 28, 3, 1, 1, 32},
        {"depthwise 3x3 144@56", 1, 144, 144, 56, 3, 1, 1, 144},
    };
    print_machine();
    printf("%-24s %-12s %10s %8s %9s %10s  %s\n", "layer", "engine", "median_ms", "spread", "GFLOP/s",
           "rel_err", "status");
    int failures = 0;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
        const layer *L = &layers[l];
        dcb_tensor *x = dcb_tensor_new4(L->N, L->cin, L->H, L->H);
        dcb_tensor_randn(x, 1);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < dcb_impl_count("conv2d"); k++) {
            const char *impl = dcb_impl_name("conv2d", k);
            dcb_hparam hp[] = {{"cin", L->cin, NULL},     {"cout", L->cout, NULL},
                               {"k", L->k, NULL},         {"stride", L->stride, NULL},
                               {"pad", L->pad, NULL},     {"groups", L->groups, NULL},
                               {"threads", 1, NULL}};
            dcb_op *op = NULL;
            dcb_status st = dcb_op_create("conv2d", impl, hp, 7, &op);
            if (st != DCB_OK) {
                printf("%-24s %-12s %10s %8s %9s %10s  %s: %s\n", L->name, impl, "", "", "", "",
                       dcb_status_name(st), dcb_last_error());
                if (!dcb_status_is_unsupported(st)) failures++;
                continue;
            }
            dcb_op_init_weights(op, 7);
            dcb_op_prepare(op);
            int yn;
            int64_t ys[DCB_MAX_DIMS];
            size_t wsb = 0;
            dcb_op_plan(op, 4, x->shape, &yn, ys, &wsb);
            dcb_tensor *y = dcb_tensor_new(yn, ys);
            void *ws = wsb ? dcb_aligned_alloc(wsb) : NULL;
            dcb_cost c;
            dcb_op_cost(op, 4, x->shape, &c);
            double spread = 0, t = time_op(op, x, y, ws, 5, &spread);
            double err = 0;
            if (!ref)
                ref = dcb_tensor_clone(y);
            else
                err = dcb_max_rel_err(y, ref, NULL);
            printf("%-24s %-12s %10.3f %7.1f%% %9.1f %10.2e  ok\n", L->name, impl, 1e3 * t, 100 * spread,
                   c.flops / t * 1e-9, err);
            dcb_tensor_free(y);
            dcb_aligned_free(ws);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    printf("# GFLOP/s counts 2 * MACs of the direct convolution; rel_err is against naive.\n");
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    dcb_fix_coretype(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "demo")) return cmd_demo();
    if (!strcmp(argv[1], "list")) return cmd_list();
    fprintf(stderr, "dcbench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
