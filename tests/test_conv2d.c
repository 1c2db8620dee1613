/* conv2d: the engines on large layers and past their block sizes, Winograd's
 * sharing modes and unsupported cases, validation messages, lifecycle and
 * costs. Every engine against the naive oracle on seeded random shapes, with
 * the tolerance it promises (dcb_op_tolerance), is tests/test_conformance.c. */
#include "testutil.h"
#include "dcb_internal.h" /* dcb_winograd_set_sharing */

#include <math.h>
#include <unistd.h>

typedef struct shape {
    int N, cin, cout, H, W, kh, kw, stride, pad, dil, groups, bias;
} shape;

static void shape_str(const shape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d cin=%d cout=%d H=%d W=%d k=%dx%d stride=%d pad=%d dil=%d groups=%d bias=%d",
             s->N, s->cin, s->cout, s->H, s->W, s->kh, s->kw, s->stride, s->pad, s->dil, s->groups,
             s->bias);
}

static dcb_status make_op(const shape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("cin", s->cin),       TU_HP("cout", s->cout),   TU_HP("kh", s->kh),
                       TU_HP("kw", s->kw),         TU_HP("stride", s->stride), TU_HP("pad", s->pad),
                       TU_HP("dilation", s->dil),  TU_HP("groups", s->groups), TU_HP("bias", s->bias),
                       TU_HP("threads", threads)};
    return dcb_op_create("conv2d", impl, hp, (int)(sizeof hp / sizeof hp[0]), op);
}

/* The cost of conv2d/impl for shape s on its input (N, cin, H, W). */
static dcb_cost cost_of(const shape *s, const char *impl) {
    dcb_op *op = NULL;
    assert_ok(make_op(s, impl, 1, &op));
    return tu_cost(op, 4, (int64_t[]){s->N, s->cin, s->H, s->W});
}

/* y of impl on x with weights from wseed; *tol (when not NULL): the
 * implementation's tolerance against naive. */
static dcb_tensor *run_impl(const shape *s, const char *impl, int threads, const dcb_tensor *x,
                            uint64_t wseed, dcb_status *st_out, double *tol) {
    dcb_op *op = NULL;
    dcb_status st = make_op(s, impl, threads, &op);
    *st_out = st;
    if (st != DCB_OK) return NULL;
    if (tol) *tol = dcb_op_tolerance(op);
    assert_ok(dcb_op_init_weights(op, wseed));
    dcb_tensor *y = NULL;
    st = dcb_op_forward(op, x, &y);
    *st_out = st;
    dcb_op_destroy(op);
    return y;
}

/* A fixed case: its description, x ~ N(0,1) from xseed, and naive's output
 * with weights from wseed (threads as given). */
static dcb_tensor *naive_case(const shape *s, uint64_t xseed, uint64_t wseed, int threads, dcb_tensor **x,
                              char *desc, size_t n) {
    shape_str(s, desc, n);
    *x = tu_randn4(s->N, s->cin, s->H, s->W, xseed);
    dcb_status st;
    dcb_tensor *ref = run_impl(s, "naive", threads, *x, wseed, &st, NULL);
    assert_non_null(ref);
    return ref;
}

/* Large layers, where Winograd's error grows with the channel count. */
static void test_winograd_error_on_resnet_layers(void **state) {
    (void)state;
    static const int layers[][2] = {{64, 56}, {128, 28}, {256, 14}, {512, 7}};
    int nl = tu_quick() ? 2 : 4;
    for (int l = 0; l < nl; l++) {
        shape s = {1, layers[l][0], layers[l][0], layers[l][1], layers[l][1], 3, 3, 1, 1, 1, 1, 0};
        dcb_tensor *x = tu_randn4(1, s.cin, s.H, s.W, 99);
        dcb_status st;
        dcb_tensor *ref = run_impl(&s, "naive", 2, x, 5, &st, NULL);
        assert_non_null(ref);
        static const char *const impls[] = {"im2col", "winograd_f2", "winograd"};
        for (int k = 0; k < 3; k++) {
            double tol;
            dcb_tensor *y = run_impl(&s, impls[k], 1, x, 5, &st, &tol);
            assert_non_null(y);
            double err = dcb_max_rel_err(y, ref, NULL);
            print_message("C=%d@%dx%d %-12s rel err %.3g (tolerance %.3g)\n", s.cin, s.H, s.W, impls[k], err, tol);
            assert_true(err <= tol);
            dcb_tensor_free(y);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
}

static void test_registry(void **state) {
    (void)state;
    int found = 0;
    for (int i = 0; i < dcb_op_count(); i++)
        if (strcmp(dcb_op_name(i), "conv2d") == 0) found = 1;
    assert_true(found);
    assert_null(dcb_op_name(dcb_op_count()));
    const char *want[] = {"naive", "im2col", "winograd", "winograd_f2"};
    for (int k = 0; k < 4; k++) {
        int has = 0;
        for (int i = 0; i < dcb_impl_count("conv2d"); i++)
            if (strcmp(dcb_impl_name("conv2d", i), want[k]) == 0) has = 1;
        if (!has) fail_msg("conv2d has no implementation '%s'", want[k]);
    }
    assert_int_equal(dcb_impl_count("nope"), -1);
    dcb_op *op = (dcb_op *)0x1;
    dcb_hparam hp[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3)};
    assert_status_msg(dcb_op_create("conv3d", NULL, hp, 3, &op), DCB_UNKNOWN_OP, "conv2d");
    assert_null(op);
    assert_status_msg(dcb_op_create("conv2d", "fft", hp, 3, &op), DCB_UNKNOWN_IMPL, "im2col");
    dcb_hparam bad[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("strid", 2)};
    assert_status_msg(dcb_op_create("conv2d", "naive", bad, 4, &op), DCB_UNKNOWN_PARAM, "strid");
    assert_true(strstr(dcb_last_error(), "stride") != NULL);
    assert_string_equal(dcb_status_name(DCB_UNSUPPORTED_SHAPE), "unsupported_shape");
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params("conv2d", &np);
    assert_non_null(ps);
    assert_true(np >= 9);
}

static void expect_invalid(const shape *s, dcb_status want, const char *needle) {
    dcb_op *op = NULL;
    assert_status_msg(make_op(s, "im2col", 1, &op), want, needle);
    assert_null(op);
}

static void test_invalid_params(void **state) {
    (void)state;
    /* 64 -> 64 channels, 3x3 pad 1 over 8x8, each case with the one change its message names */
    expect_invalid(&(shape){1, 64, 64, 8, 8, 3, 3, 1, 1, 1, 3, 0}, DCB_INVALID_PARAM,
                   "groups=3 does not divide cin=64");
    expect_invalid(&(shape){1, 64, 66, 8, 8, 3, 3, 1, 1, 1, 4, 0}, DCB_INVALID_PARAM,
                   "groups=4 does not divide cout=66");
    expect_invalid(&(shape){1, 0, 64, 8, 8, 3, 3, 1, 1, 1, 1, 0}, DCB_INVALID_PARAM, "cin=0");
    expect_invalid(&(shape){1, 64, 64, 8, 8, 0, 3, 1, 1, 1, 1, 0}, DCB_INVALID_PARAM, "kh=0");
    expect_invalid(&(shape){1, 64, 64, 8, 8, 3, 3, 1, -1, 1, 1, 0}, DCB_INVALID_PARAM, "pad=-1");
    expect_invalid(&(shape){1, 64, 64, 8, 8, 3, 3, 0, 1, 1, 1, 0}, DCB_INVALID_PARAM, "stride=0");
    expect_invalid(&(shape){1, 64, 64, 8, 8, 3, 3, 1, 1, 0, 1, 0}, DCB_INVALID_PARAM, "dilation=0");
    expect_invalid(&(shape){1, 64, 64, 8, 8, 3, 3, 1, 1, 1, 0, 0}, DCB_INVALID_PARAM, "groups=0");

    dcb_op *op = NULL;
    dcb_hparam frac[] = {TU_HP("cin", 4.5), TU_HP("cout", 4), TU_HP("k", 3)};
    assert_status_msg(dcb_op_create("conv2d", NULL, frac, 3, &op), DCB_INVALID_PARAM, "cin=4.5");
    dcb_hparam nok[] = {TU_HP("cin", 4), TU_HP("cout", 4)};
    assert_status_msg(dcb_op_create("conv2d", NULL, nok, 2, &op), DCB_INVALID_PARAM, "kernel size");
    dcb_hparam str[] = {TU_HP("cin", 4), TU_HS("cout", "four"), TU_HP("k", 3)};
    assert_status_msg(dcb_op_create("conv2d", NULL, str, 3, &op), DCB_INVALID_PARAM, "'four'");
    dcb_hparam thr[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("threads", 0)};
    assert_status_msg(dcb_op_create("conv2d", NULL, thr, 4, &op), DCB_INVALID_PARAM, "threads=0");
    dcb_hparam bia[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("bias", 2)};
    assert_status_msg(dcb_op_create("conv2d", NULL, bia, 4, &op), DCB_INVALID_PARAM, "bias=2");
    assert_true(dcb_status_is_invalid(DCB_INVALID_PARAM));
}

static void test_invalid_shapes_and_weights(void **state) {
    (void)state;
    shape s = {1, 4, 8, 3, 3, 7, 7, 1, 1, 1, 1, 1};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "naive", 1, &op));
    /* 7x7 kernel over a 3x3 input padded by 1 */
    tu_expect_plan_fails(op, 4, (int64_t[]){1, 4, 3, 3}, DCB_INVALID_SHAPE, "exceeds the padded input height 5");
    tu_expect_plan_fails(op, 4, (int64_t[]){1, 5, 9, 9}, DCB_INVALID_SHAPE, "5 channels, cin=4");
    tu_expect_plan_fails(op, 3, (int64_t[]){4, 9, 9}, DCB_INVALID_SHAPE, "(N, C, H, W)");

    /* missing and wrongly shaped weights */
    dcb_tensor *in = dcb_tensor_new4(1, 4, 9, 9);
    dcb_tensor *y = NULL;
    assert_status_msg(dcb_op_forward(op, in, &y), DCB_INVALID_WEIGHT, "weight 'weight' (8, 4, 7, 7) is missing");
    assert_null(y);
    dcb_tensor *w = dcb_tensor_new4(8, 4, 3, 3);
    assert_status_msg(dcb_op_set_weight(op, "weight", w), DCB_INVALID_WEIGHT,
                      "weight 'weight' has shape (8, 4, 3, 3), expected (8, 4, 7, 7)");
    assert_status_msg(dcb_op_set_weight(op, "gamma", w), DCB_INVALID_WEIGHT, "unknown weight 'gamma'");
    dcb_tensor_free(w);
    assert_ok(dcb_op_init_weights(op, 1));
    assert_ok(dcb_op_forward(op, in, &y));
    assert_int_equal(y->shape[2], 5);
    /* an output of the wrong shape */
    dcb_tensor *bad = dcb_tensor_new4(1, 8, 4, 5);
    assert_status_msg(dcb_op_run(op, in, bad, NULL, NULL), DCB_INVALID_SHAPE, "expected (1, 8, 5, 5)");
    dcb_tensor_free(bad);
    dcb_tensor_free(y);
    dcb_tensor_free(in);
    dcb_op_destroy(op);
}

static void test_winograd_unsupported(void **state) {
    (void)state;
    shape cases[] = {{1, 8, 8, 9, 9, 3, 3, 2, 1, 1, 1, 0},
                     {1, 8, 8, 9, 9, 5, 5, 1, 2, 1, 1, 0},
                     {1, 8, 8, 9, 9, 3, 3, 1, 2, 2, 1, 0},
                     {1, 8, 8, 9, 9, 1, 1, 1, 0, 1, 1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int f = 0; f < 2; f++) {
            dcb_op *op = NULL;
            dcb_status st = make_op(&cases[i], f ? "winograd_f2" : "winograd", 1, &op);
            assert_status_msg(st, DCB_UNSUPPORTED_PARAM, "needs a 3x3 kernel, stride 1 and dilation 1");
            assert_true(dcb_status_is_unsupported(st));
            assert_null(op);
        }
    }
}

static int has_impl(const char *impl) {
    for (int i = 0; i < dcb_impl_count("conv2d"); i++)
        if (strcmp(dcb_impl_name("conv2d", i), impl) == 0) return 1;
    return 0;
}

static void test_lifecycle(void **state) {
    (void)state;
    static const char *const impls[] = {"im2col", "winograd", "winograd_f2", "onednn", "direct"};
    shape s = {2, 6, 10, 11, 13, 3, 3, 1, 1, 1, 2, 1};
    dcb_tensor *x = tu_randn4(2, 6, 11, 13, 3);
    for (int k = 0; k < 5; k++) {
        if (!has_impl(impls[k])) continue;
        dcb_op *op = NULL;
        assert_ok(make_op(&s, impls[k], 1, &op));
        assert_string_equal(dcb_op_get_impl(op), impls[k]);
        assert_int_equal(dcb_op_weight_count(op), 2);
        assert_string_equal(dcb_op_weight_name(op, 1), "bias");
        assert_ok(dcb_op_init_weights(op, 11));
        assert_ok(dcb_op_prepare(op));
        tu_runs r = tu_run_twice(op, x); /* a workspace is required when one was planned */
        assert_int_equal(r.y->ndim, 4);
        assert_int_equal(r.y->shape[1], 10);
        assert_true(r.prof.seconds[DCB_PHASE_GEMM] > 0);
        for (int ph = 0; ph < DCB_PHASE_COUNT; ph++) assert_true(r.prof.seconds[ph] >= 0);
        /* new weights after prepare: the next run must use them */
        tu_shift_weight(op, "bias", 1.0f);
        assert_ok(dcb_op_run(op, x, r.y2, r.ws, NULL));
        for (int64_t i = 0; i < r.y->size; i++) assert_true(fabsf(r.y2->data[i] - r.y->data[i] - 1.0f) < 1e-4f);
        dcb_tensor_free(tu_runs_free(&r));
        dcb_op_destroy(op);
    }
    dcb_tensor_free(x);
}

/* A workspace full of NaN from an earlier run must not leak into y. */
static void stale_workspace_on(const shape *sp, const char *const *impls, int nimpls);

static void test_stale_workspace(void **state) {
    (void)state;
    static const char *const impls[] = {"im2col", "winograd", "winograd_f2", "direct"};
    static const char *const direct_only[] = {"direct"};
    const shape grouped = {2, 12, 9, 10, 7, 3, 3, 1, 2, 1, 3, 1};
    const shape dw_s2 = {2, 6, 12, 10, 19, 3, 3, 2, 1, 1, 6, 1};  /* depthwise, multiplier 2 */
    const shape pw_s2 = {2, 20, 13, 9, 11, 1, 1, 2, 0, 1, 1, 1};  /* 1x1, stride 2 */
    stale_workspace_on(&grouped, impls, 4);
    stale_workspace_on(&dw_s2, direct_only, 1);
    stale_workspace_on(&pw_s2, direct_only, 1);
}

static void stale_workspace_on(const shape *sp, const char *const *impls, int nimpls) {
    const shape s = *sp;
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 21);
    dcb_status st;
    dcb_tensor *ref = run_impl(&s, "naive", 1, x, 9, &st, NULL);
    for (int k = 0; k < nimpls; k++) {
        dcb_op *op = NULL;
        assert_ok(make_op(&s, impls[k], 1, &op));
        assert_ok(dcb_op_init_weights(op, 9));
        int yn;
        int64_t ys[DCB_MAX_DIMS];
        size_t wsb = 0;
        assert_ok(dcb_op_plan(op, 4, x->shape, &yn, ys, &wsb));
        float *ws = dcb_aligned_alloc(wsb + 4);
        for (size_t i = 0; i < wsb / 4; i++) ws[i] = NAN;
        dcb_tensor *y = dcb_tensor_new(yn, ys);
        for (int64_t i = 0; i < y->size; i++) y->data[i] = NAN;
        assert_ok(dcb_op_run(op, x, y, ws, NULL));
        if (!(dcb_max_rel_err(y, ref, NULL) <= dcb_op_tolerance(op)))
            fail_msg("%s: stale workspace changed the result", impls[k]);
        dcb_tensor_free(y);
        dcb_aligned_free(ws);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(ref);
    dcb_tensor_free(x);
}

static void test_threads_agree(void **state) {
    (void)state;
    shape s = {3, 16, 24, 17, 15, 3, 3, 1, 1, 1, 1, 1};
    dcb_tensor *x = tu_randn4(3, 16, 17, 15, 8);
    static const char *const impls[] = {"naive", "im2col", "winograd", "winograd_f2", "onednn", "direct"};
    for (int k = 0; k < 6; k++) {
        if (!has_impl(impls[k])) continue;
        dcb_status st;
        dcb_tensor *a = run_impl(&s, impls[k], 1, x, 4, &st, NULL);
        tu_assert_close_and_free(a, run_impl(&s, impls[k], 2, x, 4, &st, NULL), 1e-6);
    }
    dcb_tensor_free(x);
}

/* direct on shapes past its block sizes: several K blocks (K > 320), several
 * row blocks (cout_g > 144), many column blocks and a ragged last one, and
 * depthwise planes wider than 32 outputs; each thread count gives the same
 * bits (the work is split by output, never by K). */
static void test_direct_blocking(void **state) {
    (void)state;
    const shape cases[] = {
        {1, 400, 150, 20, 19, 1, 1, 1, 0, 1, 1, 1},   /* 1x1: 2 K blocks, 2 row blocks */
        {2, 40, 20, 23, 21, 3, 3, 2, 1, 1, 1, 0},     /* 3x3 stride 2, K = 360 */
        {1, 48, 64, 30, 30, 3, 3, 1, 1, 2, 2, 1},     /* grouped, dilated */
        {1, 16, 16, 57, 45, 3, 3, 1, 1, 1, 16, 1},    /* depthwise, wide rows */
        {1, 8, 16, 41, 50, 7, 7, 2, 3, 1, 8, 0},      /* depthwise 7x7 stride 2, multiplier 2 */
        {1, 8, 8, 37, 40, 5, 5, 1, 4, 2, 8, 1},       /* depthwise 5x5 dilation 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const shape *s = &cases[i];
        char desc[256];
        dcb_tensor *x, *ref = naive_case(s, 50 + i, 3, 2, &x, desc, sizeof desc);
        dcb_status st;
        double tol;
        dcb_tensor *y1 = run_impl(s, "direct", 1, x, 3, &st, &tol);
        if (!y1) fail_msg("direct failed on %s: %s", desc, dcb_last_error());
        const double err = dcb_max_rel_err(y1, ref, NULL);
        if (!(err <= tol)) fail_msg("direct on %s: relative error %.3g above %.3g", desc, err, tol);
        for (int t = 2; t <= 3; t++) {
            dcb_tensor *yt = run_impl(s, "direct", t, x, 3, &st, NULL);
            assert_non_null(yt);
            if (memcmp(yt->data, y1->data, sizeof(float) * (size_t)y1->size))
                fail_msg("direct on %s: %d threads differ from 1", desc, t);
            dcb_tensor_free(yt);
        }
        dcb_tensor_free(y1);
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
}

/* Winograd's two ways of sharing tile blocks among threads (the whole team
 * on each block, or a block per thread) on shapes with enough tiles for
 * several private blocks per thread, ragged last blocks and borders: F(4x4)
 * and F(2x2), packed GEMMs and small groups, 2 and 3 threads; each mode
 * against naive and against the others. */
static void test_winograd_block_sharing(void **state) {
    (void)state;
    const shape cases[] = {
        {3, 16, 24, 37, 35, 3, 3, 1, 1, 1, 1, 1},  /* 3 x 9 x 9 = 243 F4 tiles, ragged */
        {2, 8, 8, 66, 61, 3, 3, 1, 1, 1, 1, 0},    /* 2 x 17 x 16 = 544 tiles */
        {2, 16, 16, 45, 47, 3, 3, 1, 0, 1, 4, 1},  /* groups of 4 channels: the direct multiply */
        {1, 12, 18, 40, 29, 3, 3, 1, 1, 1, 1, 1},
    };
    static const char *const impls[] = {"winograd", "winograd_f2"};
    static const int modes[] = {DCB_WINO_AUTO, DCB_WINO_SHARED, DCB_WINO_PRIVATE};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const shape *s = &cases[i];
        char desc[256];
        dcb_tensor *x, *ref = naive_case(s, 70 + i, 5, 1, &x, desc, sizeof desc);
        dcb_status st;
        for (int k = 0; k < 2; k++)
            for (int threads = 2; threads <= 3; threads++) {
                dcb_tensor *first = NULL;
                for (int md = 0; md < 3; md++) {
                    dcb_winograd_set_sharing(modes[md]);
                    double tol;
                    dcb_tensor *y = run_impl(s, impls[k], threads, x, 5, &st, &tol);
                    dcb_winograd_set_sharing(DCB_WINO_AUTO);
                    if (!y) fail_msg("%s on %s: %s", impls[k], desc, dcb_last_error());
                    const double err = dcb_max_rel_err(y, ref, NULL);
                    if (!(err <= tol))
                        fail_msg("%s on %s, %d threads, sharing mode %d: relative error %.3g", impls[k], desc,
                                 threads, modes[md], err);
                    if (!first) {
                        first = y;
                        continue;
                    }
                    const double d = dcb_max_rel_err(y, first, NULL);
                    if (!(d <= 1e-6))
                        fail_msg("%s on %s, %d threads: sharing mode %d differs from auto by %.3g", impls[k],
                                 desc, threads, modes[md], d);
                    dcb_tensor_free(y);
                }
                dcb_tensor_free(first);
            }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
}

static void test_costs(void **state) {
    (void)state;
    dcb_cost c = cost_of(&(shape){8, 64, 64, 56, 56, 3, 3, 1, 1, 1, 1, 0}, "im2col");
    assert_true(c.macs == 8.0 * 9 * 64 * 64 * 56 * 56);
    assert_true(c.flops == 2 * c.macs);
    assert_true(c.params == 9 * 64 * 64);
    assert_true(c.acts == 8.0 * 64 * 56 * 56);
    assert_true(c.bytes == 4.0 * (8.0 * 64 * 56 * 56 * 2 + 9 * 64 * 64));
    assert_true(c.dynamic_macs == 0 && c.executed_macs == c.macs);
    /* grouped, strided, biased: 3x3 s2 groups 32 of 128->256 at 28 -> 14 */
    c = cost_of(&(shape){1, 128, 256, 28, 28, 3, 3, 2, 1, 1, 32, 1}, "naive");
    assert_true(c.macs == 9.0 * 4 * 256 * 14 * 14 + 256 * 14 * 14);
    assert_true(c.params == 9.0 * 4 * 256 + 256);
    /* Winograd F(4x4) performs 36/144 of the multiplications per 4x4 tile */
    c = cost_of(&(shape){1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 0}, "winograd");
    assert_true(c.executed_macs == 4.0 * 36 * 16 * 16);
    assert_true(c.macs == 9.0 * 16 * 16 * 64);
}

static void test_weights_from_npy_dir(void **state) {
    (void)state;
    char dir[] = "/tmp/dcb_test_w_XXXXXX";
    assert_non_null(mkdtemp(dir));
    shape s = {1, 3, 5, 6, 6, 3, 3, 1, 1, 1, 1, 1};
    dcb_op *a = NULL, *b = NULL;
    assert_ok(make_op(&s, "naive", 1, &a));
    assert_ok(make_op(&s, "im2col", 1, &b));
    char path[256];
    assert_status_msg(dcb_op_load_weights(b, dir), DCB_IO_ERROR, "weight.npy");
    assert_ok(dcb_op_init_weights(a, 42));
    for (int i = 0; i < dcb_op_weight_count(a); i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, dcb_op_weight_name(a, i));
        assert_ok(dcb_npy_save(path, dcb_op_get_weight(a, dcb_op_weight_name(a, i))));
    }
    assert_ok(dcb_op_load_weights(b, dir));
    dcb_tensor *x = tu_randn4(1, 3, 6, 6, 1), *ya = NULL, *yb = NULL;
    assert_ok(dcb_op_forward(a, x, &ya));
    assert_ok(dcb_op_forward(b, x, &yb));
    assert_true(dcb_max_rel_err(yb, ya, NULL) < 1e-6);
    /* a wrongly shaped weight file is refused with its name and both shapes */
    dcb_tensor *wrong = dcb_tensor_new4(5, 3, 1, 1);
    snprintf(path, sizeof path, "%s/weight.npy", dir);
    assert_ok(dcb_npy_save(path, wrong));
    assert_status_msg(dcb_op_load_weights(b, dir), DCB_INVALID_WEIGHT, "(5, 3, 1, 1), expected (5, 3, 3, 3)");
    for (int i = 0; i < dcb_op_weight_count(a); i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, dcb_op_weight_name(a, i));
        unlink(path);
    }
    rmdir(dir);
    dcb_tensor_free(wrong);
    dcb_tensor_free(x);
    dcb_tensor_free(ya);
    dcb_tensor_free(yb);
    dcb_op_destroy(a);
    dcb_op_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_invalid_shapes_and_weights),
        cmocka_unit_test(test_winograd_unsupported),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_stale_workspace),
        cmocka_unit_test(test_direct_blocking),
        cmocka_unit_test(test_winograd_block_sharing),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_weights_from_npy_dir),
        cmocka_unit_test(test_winograd_error_on_resnet_layers),
    };
    return cmocka_run_group_tests_name("conv2d", tests, NULL, NULL);
}
