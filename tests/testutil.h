/* Shared helpers of the cmocka test programs. */
#ifndef DCB_TESTUTIL_H
#define DCB_TESTUTIL_H
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "dcb.h"

/* DCB_TEST_QUICK (set for the sanitizer run) shrinks the random sweeps. */
static inline int tu_quick(void) {
    const char *q = getenv("DCB_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static inline int tu_rand(uint64_t *s, int lo, int hi) {  /* inclusive */
    return lo + (int)(dcb_rand_u64(s) % (uint64_t)(hi - lo + 1));
}

#define TU_HP(n, v) ((dcb_hparam){(n), (double)(v), NULL})
#define TU_HS(n, s) ((dcb_hparam){(n), 0, (s)})

/* Asserts st == want and that the last error message contains `needle`. */
#define assert_status_msg(st, want, needle)                                              \
    do {                                                                                 \
        dcb_status st_ = (st);                                                           \
        if (st_ != (want))                                                               \
            fail_msg("status %s, expected %s (%s)", dcb_status_name(st_),                \
                     dcb_status_name(want), dcb_last_error());                           \
        if (!strstr(dcb_last_error(), (needle)))                                         \
            fail_msg("message '%s' does not mention '%s'", dcb_last_error(), (needle)); \
    } while (0)

#define assert_ok(st)                                                                   \
    do {                                                                                \
        dcb_status st_ = (st);                                                          \
        if (st_ != DCB_OK) fail_msg("%s: %s", dcb_status_name(st_), dcb_last_error()); \
    } while (0)

/* Plans op for x (which must succeed) and allocates what a run needs: the
 * output, returned, and the workspace, *ws of *wsb bytes. */
static inline dcb_tensor *tu_plan(dcb_op *op, const dcb_tensor *x, void **ws, size_t *wsb) {
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    assert_ok(dcb_op_plan(op, x->ndim, x->shape, &yn, ys, wsb));
    *ws = dcb_aligned_alloc(*wsb);
    return dcb_tensor_new(yn, ys);
}
#define TU_LIKE(t) dcb_tensor_new((t)->ndim, (t)->shape) /* a new tensor of t's shape */

/* The relative error of op's output y against ref (dcb_max_rel_err), which
 * must be within the tolerance op's implementation promises
 * (dcb_op_tolerance); desc names the case in the failure. */
static inline double tu_err_within_tol(const dcb_op *op, const dcb_tensor *y, const dcb_tensor *ref,
                                       const char *desc) {
    const double err = dcb_max_rel_err(y, ref, NULL), tol = dcb_op_tolerance(op);
    if (!(err <= tol))
        fail_msg("%s/%s on %s: relative error %.3g above its tolerance %.3g", dcb_op_get_name(op),
                 dcb_op_get_impl(op), desc, err, tol);
    return err;
}

/* --------------------------------------------------------------- registry */
/* conv2d implementations that are engines (peers such as oneDNN are not). */
static inline int tu_is_peer(const char *impl) { return strcmp(impl, "onednn") == 0; }
static inline int tu_engine_count(void) {
    int n = 0;
    for (int i = 0; i < dcb_impl_count("conv2d"); i++) n += !tu_is_peer(dcb_impl_name("conv2d", i));
    return n;
}
/* opname has an implementation named as each conv2d engine. */
static inline void tu_assert_impl_per_engine(const char *opname) {
    for (int i = 0; i < dcb_impl_count("conv2d"); i++) {
        const char *e = dcb_impl_name("conv2d", i);
        if (tu_is_peer(e)) continue;
        int has = 0;
        for (int k = 0; k < dcb_impl_count(opname); k++) has |= strcmp(dcb_impl_name(opname, k), e) == 0;
        if (!has) fail_msg("%s has no implementation for the conv2d engine '%s'", opname, e);
    }
}

/* ---------------------------------------------------------------- create */
/* dcb_op_create(opname, impl, hp) must fail with want and a message
 * containing needle, and leave no op. */
static inline void tu_expect_create_fails(const char *opname, const char *impl, const dcb_hparam *hp, int n,
                                          dcb_status want, const char *needle) {
    dcb_op *op = (dcb_op *)0x1;
    assert_status_msg(dcb_op_create(opname, impl, hp, n, &op), want, needle);
    assert_null(op);
}

/* Planning op for an input of shape x (ndim dims) must fail with want and a
 * message containing needle. */
static inline void tu_expect_plan_fails(dcb_op *op, int ndim, const int64_t *x, dcb_status want, const char *needle) {
    assert_status_msg(dcb_op_plan(op, ndim, x, NULL, NULL, NULL), want, needle);
}

/* A create (status st, *op as it left it) of an implementation that cannot
 * run the case desc: unsupported_param, and no op. */
static inline void tu_assert_unsupported(dcb_status st, const dcb_op *op, const char *impl, const char *desc) {
    if (st != DCB_UNSUPPORTED_PARAM)
        fail_msg("%s on %s: expected unsupported_param, got %s", impl, desc, dcb_status_name(st));
    assert_null(op);
}

/* --------------------------------------------------------------- weights */
/* op's weights are exactly these, in this order, with these shapes. */
typedef struct tu_weight {
    const char *name;
    int ndim;
    int64_t shape[DCB_MAX_DIMS];
} tu_weight;
static inline void tu_assert_weights(const dcb_op *op, const tu_weight *want, int n) {
    assert_int_equal(dcb_op_weight_count(op), n);
    for (int i = 0; i < n; i++) {
        int64_t sh[DCB_MAX_DIMS];
        assert_string_equal(dcb_op_weight_name(op, i), want[i].name);
        assert_int_equal(dcb_op_weight_shape(op, i, sh), want[i].ndim);
        assert_memory_equal(sh, want[i].shape, sizeof(int64_t) * (size_t)want[i].ndim);
    }
}

/* Sets op's weight `name` to f times (tu_scale_weight) or d plus
 * (tu_shift_weight) its present value. */
static inline void tu_scale_weight(dcb_op *op, const char *name, float f) {
    dcb_tensor *w = dcb_tensor_clone(dcb_op_get_weight(op, name));
    for (int64_t i = 0; i < w->size; i++) w->data[i] *= f;
    assert_ok(dcb_op_set_weight(op, name, w));
    dcb_tensor_free(w);
}
static inline void tu_shift_weight(dcb_op *op, const char *name, float d) {
    dcb_tensor *w = dcb_tensor_clone(dcb_op_get_weight(op, name));
    for (int64_t i = 0; i < w->size; i++) w->data[i] += d;
    assert_ok(dcb_op_set_weight(op, name, w));
    dcb_tensor_free(w);
}

/* ------------------------------------------------------------------ runs */
/* A new (a, b, c) tensor: the (N, T, C) sequences. */
static inline dcb_tensor *tu_new3(int64_t a, int64_t b, int64_t c) {
    int64_t s[3] = {a, b, c};
    return dcb_tensor_new(3, s);
}
/* New inputs ~ N(0, 1) from seed: images (N, C, H, W), sequences (N, T, C). */
static inline dcb_tensor *tu_randn4(int64_t N, int64_t C, int64_t H, int64_t W, uint64_t seed) {
    dcb_tensor *x = dcb_tensor_new4(N, C, H, W);
    dcb_tensor_randn(x, seed);
    return x;
}
static inline dcb_tensor *tu_randn3(int64_t N, int64_t T, int64_t C, uint64_t seed) {
    dcb_tensor *x = tu_new3(N, T, C);
    dcb_tensor_randn(x, seed);
    return x;
}
/* A kh x kw kernel with dilation dil fits an H x W input padded by pad. */
static inline int tu_kernel_fits(int H, int W, int kh, int kw, int pad, int dil) {
    return dil * (kh - 1) + 1 <= H + 2 * pad && dil * (kw - 1) + 1 <= W + 2 * pad;
}

/* op's forward on x against ref (tu_err_within_tol): the error. */
static inline double tu_forward_err(dcb_op *op, const dcb_tensor *x, const dcb_tensor *ref, const char *desc) {
    dcb_tensor *y = NULL;
    if (dcb_op_forward(op, x, &y) != DCB_OK)
        fail_msg("%s/%s on %s: %s", dcb_op_get_name(op), dcb_op_get_impl(op), desc, dcb_last_error());
    const double err = tu_err_within_tol(op, y, ref, desc);
    dcb_tensor_free(y);
    return err;
}

/* op's routing weights on x against ref: the error, within op's tolerance. */
static inline double tu_routing_err(dcb_op *op, const dcb_tensor *x, const dcb_tensor *ref, const char *desc) {
    dcb_tensor *a = NULL;
    assert_ok(dcb_op_routing(op, x, &a));
    const double err = dcb_max_rel_err(a, ref, NULL);
    if (!(err <= dcb_op_tolerance(op))) fail_msg("%s on %s: attention error %.3g", dcb_op_get_impl(op), desc, err);
    dcb_tensor_free(a);
    return err;
}

/* A sweep's summary, a line per implementation k of opname (its name padded
 * to width): cases checked, unsupported, the largest error; each must have
 * checked at least min_checked cases. */
static inline void tu_print_checked(const char *opname, int width, int nimpl, const int *checked,
                                    const int *unsupported, const double *worst, int min_checked) {
    for (int k = 0; k < nimpl; k++) {
        print_message("%s/%-*s %3d checked, %3d unsupported, max rel err %.3g\n", opname, width,
                      dcb_impl_name(opname, k), checked[k], unsupported[k], worst[k]);
        assert_true(checked[k] >= min_checked);
    }
}

/* Two runs of op on x, planned once (tu_run_twice): the workspace (filled
 * with 0xff bytes, NaN, and the outputs with NaN, none of which may leak into
 * y), the outputs of both runs, which have the same bits, and the first
 * run's profile; a run without the planned workspace fails. */
typedef struct tu_runs {
    void *ws;
    size_t wsb;
    dcb_tensor *y, *y2;
    dcb_profile prof;
} tu_runs;
static inline tu_runs tu_run_twice(dcb_op *op, const dcb_tensor *x) {
    tu_runs r = {NULL, 0, NULL, NULL, {{0}}};
    r.y = tu_plan(op, x, &r.ws, &r.wsb);
    memset(r.ws, 0xff, r.wsb);
    r.y2 = TU_LIKE(r.y);
    for (int64_t e = 0; e < r.y->size; e++) r.y->data[e] = r.y2->data[e] = NAN;
    assert_ok(dcb_op_run(op, x, r.y, r.ws, &r.prof));
    assert_ok(dcb_op_run(op, x, r.y2, r.ws, NULL));
    assert_memory_equal(r.y->data, r.y2->data, sizeof(float) * (size_t)r.y->size);
    if (r.wsb) assert_status_msg(dcb_op_run(op, x, r.y2, NULL, NULL), DCB_INVALID_ARGUMENT, "workspace");
    return r;
}
/* Frees what tu_run_twice made but the first output, which it returns. */
static inline dcb_tensor *tu_runs_free(tu_runs *r) {
    dcb_tensor_free(r->y2);
    dcb_aligned_free(r->ws);
    return r->y;
}

/* The lifecycle of an implementation on an engine with static weights and
 * attention routing (skconv, splat): op (weights set) is prepared and run
 * twice on x (tu_run_twice), with time in the gemm and routing phases; its
 * weight wname scaled by f after prepare changes the next run (the prepared
 * kernels, e.g. Winograd's transform, are rebuilt). Returns the first output. */
static inline dcb_tensor *tu_check_reprepare(dcb_op *op, const dcb_tensor *x, const char *wname, float f) {
    assert_ok(dcb_op_prepare(op));
    tu_runs r = tu_run_twice(op, x);
    assert_true(r.wsb > 0);
    assert_true(r.prof.seconds[DCB_PHASE_GEMM] > 0 && r.prof.seconds[DCB_PHASE_ROUTING] > 0);
    tu_scale_weight(op, wname, f);
    assert_ok(dcb_op_run(op, x, r.y2, r.ws, NULL));
    assert_true(dcb_max_rel_err(r.y2, r.y, NULL) > 1e-3);
    return tu_runs_free(&r);
}

/* The outputs of an operator's implementations in turn: the first (the
 * oracle's) is kept in *first, every later one must be within op's tolerance
 * of it (and is freed). */
static inline void tu_keep_or_compare(dcb_tensor **first, dcb_tensor *y, const dcb_op *op) {
    if (!*first) {
        *first = y;
        return;
    }
    assert_true(dcb_max_rel_err(y, *first, NULL) <= dcb_op_tolerance(op));
    dcb_tensor_free(y);
}

/* a and b (outputs of the same computation) agree within tol; both are freed. */
static inline void tu_assert_close_and_free(dcb_tensor *a, dcb_tensor *b, double tol) {
    assert_non_null(a);
    assert_non_null(b);
    assert_true(dcb_max_rel_err(a, b, NULL) <= tol);
    dcb_tensor_free(a);
    dcb_tensor_free(b);
}

/* The cost of op on an input of shape x (ndim dims), which must succeed;
 * op is destroyed. */
static inline dcb_cost tu_cost(dcb_op *op, int ndim, const int64_t *x) {
    dcb_cost c;
    assert_ok(dcb_op_cost(op, ndim, x, &c));
    dcb_op_destroy(op);
    return c;
}

/* ----------------------------------------------------------------- causal */
/* x (N, T, C) with every step after t replaced by scale * N(0, 1) noise from
 * seed: what a causal operator must not see at steps <= t. */
static inline dcb_tensor *tu_change_future(const dcb_tensor *x, int t, float scale, uint64_t seed) {
    const int64_t N = x->shape[0], T = x->shape[1], C = x->shape[2];
    dcb_tensor *x2 = dcb_tensor_clone(x), *noise = tu_randn3(N, T, C, seed);
    for (int64_t n = 0; n < N; n++)
        for (int64_t u = t + 1; u < T; u++)
            for (int64_t c = 0; c < C; c++) {
                const size_t e = ((size_t)n * T + u) * C + c;
                x2->data[e] = scale * noise->data[e];
            }
    dcb_tensor_free(noise);
    return x2;
}
/* Causal op (with weights) on x (N, T, C) never reads the future: for every
 * step-th t, changing x after t (tu_change_future, noise from seed + t)
 * leaves the output up to t bit-identical; what names op in the failure. */
static inline void tu_assert_causal(dcb_op *op, const dcb_tensor *x, int step, float scale, uint64_t seed,
                                    const char *what) {
    const int64_t T = x->shape[1], TC = x->shape[1] * x->shape[2];
    dcb_tensor *y0 = NULL;
    assert_ok(dcb_op_forward(op, x, &y0));
    for (int t = 0; t < T; t += step) {
        dcb_tensor *x2 = tu_change_future(x, t, scale, seed + (uint64_t)t), *y1 = NULL;
        assert_ok(dcb_op_forward(op, x2, &y1));
        for (int n = 0; n < x->shape[0]; n++)
            if (memcmp(y0->data + n * TC, y1->data + n * TC, sizeof(float) * (size_t)(t + 1) * x->shape[2]) != 0)
                fail_msg("%s: y[%d, :%d] changed with x[%d, %d:]", what, n, t + 1, n, t + 1);
        dcb_tensor_free(y1);
        dcb_tensor_free(x2);
    }
    dcb_tensor_free(y0);
}


/* The dcbench program the end-to-end tests run: $DCBENCH (default
 * build/dcbench) as an absolute path, or NULL (after a message naming
 * `who`) when it is not built. */
#include <unistd.h>
static inline const char *tu_dcbench_path(const char *who) {
    const char *d = getenv("DCBENCH");
    if (!d || !*d) d = "build/dcbench";
    static char abs[1024];
    if (d[0] != '/' && getcwd(abs, sizeof abs - 300)) {
        strcat(abs, "/");
        strncat(abs, d, 290);
        d = abs;
    }
    if (access(d, X_OK)) {
        fprintf(stderr, "%s: %s is not built (set DCBENCH)\n", who, d);
        return NULL;
    }
    return d;
}

#endif
