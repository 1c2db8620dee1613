/* lightconv and dynconv1d: every implementation (naive, unfold, band,
 * direct) against an independent reference written from OPERATORS.md, on
 * seeded random shapes; corner cases (K = 1, causal padding never reading the
 * future, softmax of large logits), validation messages, weights, the
 * kernels hook and costs. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|), x ~ N(0, 1) and the default
 * weights, against each implementation's tolerance (dcb_op_tolerance).
 * Measured maxima over the sweeps below (printed by the test; seeds 2026 and
 * 4052, OpenBLAS Haswell): lightconv naive 1.1e-7, unfold 2.4e-7, band
 * 2.4e-7, direct 2.6e-7; dynconv1d naive 1.2e-7, unfold 5.3e-7, band 4.3e-7,
 * direct 4.3e-7. naive accumulates in double, like the reference, so its only
 * error is the final rounding (and, for dynconv1d, the float rounding of its
 * predicted kernels). The implementations (strategies) come from the
 * registry, so that every one is tested. */
#define MAX_IMPLS 8

/* The two operators on the sequence engine. */
static const char *const ops[] = {"lightconv", "dynconv1d"};

typedef struct sshape {
    int N, T, C, H, K, causal, softmax, bias;
} sshape;

static void shape_str(const sshape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d T=%d C=%d H=%d K=%d padding=%s weight_softmax=%d bias=%d", s->N, s->T, s->C, s->H,
             s->K, s->causal ? "causal" : "same", s->softmax, s->bias);
}

static dcb_status make_op(const char *opname, const sshape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("channels", s->C),         TU_HP("heads", s->H),
                       TU_HP("kernel_size", s->K),      TU_HS("padding", s->causal ? "causal" : "same"),
                       TU_HP("weight_softmax", s->softmax), TU_HP("bias", s->bias),
                       TU_HP("threads", threads)};
    return dcb_op_create(opname, impl, hp, (int)(sizeof hp / sizeof hp[0]), op);
}

/* The cost of opname/impl for shape s on its input (N, T, C). */
static dcb_cost cost_of(const char *opname, const sshape *s, const char *impl) {
    dcb_op *op = NULL;
    assert_ok(make_op(opname, s, impl, 1, &op));
    return tu_cost(op, 3, (int64_t[]){s->N, s->T, s->C});
}

/* ------------------------------------------------- the reference (OPERATORS.md) */
static void softmax_d(double *v, int K) {
    double m = -INFINITY, s = 0;
    for (int j = 0; j < K; j++) m = v[j] > m ? v[j] : m;
    for (int j = 0; j < K; j++) s += (v[j] = exp(v[j] - m));
    for (int j = 0; j < K; j++) v[j] /= s;
}

/* y[n,t,c] = bias[c] + sum_{j<K} w(n,t)[h(c), j] * x[n, t + j - left_pad, c],
 * left_pad = K/2 (same) or K-1 (causal), h(c) = c / (C/H); w(n,t) = k + (n*T+t)*kstride. */
static dcb_tensor *ref_conv(const sshape *s, const dcb_tensor *x, const double *k, size_t kstride,
                            const dcb_tensor *bias) {
    dcb_tensor *y = tu_new3(s->N, s->T, s->C);
    const int lp = s->causal ? s->K - 1 : s->K / 2, R = s->C / s->H;
    for (int n = 0; n < s->N; n++)
        for (int t = 0; t < s->T; t++) {
            const double *w = k + ((size_t)n * s->T + t) * kstride;
            for (int c = 0; c < s->C; c++) {
                double acc = bias ? bias->data[c] : 0.0;
                for (int j = 0; j < s->K; j++) {
                    int src = t + j - lp;
                    if (src >= 0 && src < s->T)
                        acc += w[(c / R) * s->K + j] * x->data[((size_t)n * s->T + src) * s->C + c];
                }
                y->data[((size_t)n * s->T + t) * s->C + c] = (float)acc;
            }
        }
    return y;
}

static dcb_tensor *ref_lightconv(const sshape *s, const dcb_op *op, const dcb_tensor *x) {
    const dcb_tensor *wt = dcb_op_get_weight(op, "weight");
    double *w = malloc(sizeof(double) * (size_t)s->H * s->K);
    for (int i = 0; i < s->H * s->K; i++) w[i] = wt->data[i];
    if (s->softmax)
        for (int h = 0; h < s->H; h++) softmax_d(w + (size_t)h * s->K, s->K);
    dcb_tensor *y = ref_conv(s, x, w, 0, s->bias ? dcb_op_get_weight(op, "bias") : NULL);
    free(w);
    return y;
}

/* k[n,t] = wlin_w . x[n,t,:] + wlin_b, reshaped (H, K), softmax over K. */
static double *ref_dyn_kernels(const sshape *s, const dcb_op *op, const dcb_tensor *x) {
    const dcb_tensor *W = dcb_op_get_weight(op, "wlin_w");
    const dcb_tensor *B = s->bias ? dcb_op_get_weight(op, "wlin_b") : NULL;
    const int HK = s->H * s->K;
    const size_t NT = (size_t)s->N * s->T;
    double *k = malloc(sizeof(double) * NT * HK);
    for (size_t nt = 0; nt < NT; nt++) {
        for (int o = 0; o < HK; o++) {
            double a = B ? B->data[o] : 0.0;
            for (int c = 0; c < s->C; c++) a += (double)W->data[(size_t)o * s->C + c] * x->data[nt * s->C + c];
            k[nt * HK + o] = a;
        }
        if (s->softmax)
            for (int h = 0; h < s->H; h++) softmax_d(k + nt * HK + (size_t)h * s->K, s->K);
    }
    return k;
}

static dcb_tensor *ref_dynconv1d(const sshape *s, const dcb_op *op, const dcb_tensor *x) {
    double *k = ref_dyn_kernels(s, op, x);
    dcb_tensor *y = ref_conv(s, x, k, (size_t)s->H * s->K, s->bias ? dcb_op_get_weight(op, "bias") : NULL);
    free(k);
    return y;
}

static dcb_tensor *ref_of(const char *opname, const sshape *s, const dcb_op *op, const dcb_tensor *x) {
    return strcmp(opname, "lightconv") == 0 ? ref_lightconv(s, op, x) : ref_dynconv1d(s, op, x);
}

/* ------------------------------------------------------------- random shapes */
static sshape random_shape(uint64_t *r, int i) {
    static const int ks[] = {1, 2, 3, 4, 7, 15, 31};
    sshape s;
    s.N = tu_rand(r, 1, 4);
    s.K = ks[tu_rand(r, 0, 6)];
    s.H = tu_rand(r, 1, 16);
    if (i % 5 == 0) s.H = 1;
    s.C = s.H * tu_rand(r, 1, i % 4 == 0 ? 24 : 6);
    if (i % 8 == 4) s.C = s.H * 8 * tu_rand(r, 4, 9); /* head runs of 32..72: direct's 32-wide blocks, then 8 */
    if (i % 16 == 12) s.K = 15 + 16 * (i / 16 % 2); /* with R = 32, 48, 64: direct's four-row blocks (K >= 8) */
    switch (i % 6) {   /* T = 1, T < K, T = K, then anything up to 300 */
    case 0: s.T = 1; break;
    case 1: s.T = s.K > 1 ? tu_rand(r, 1, s.K - 1) : 1; break;
    case 2: s.T = s.K; break;
    case 3: s.T = tu_rand(r, 200, 300); break;
    default: s.T = tu_rand(r, 1, 300); break;
    }
    s.causal = tu_rand(r, 0, 1);
    s.softmax = tu_rand(r, 0, 1);
    s.bias = tu_rand(r, 0, 1);
    return s;
}

static dcb_tensor *run_impl(const char *opname, const sshape *s, const char *impl, int threads,
                            const dcb_tensor *x, uint64_t wseed, dcb_op **keep) {
    dcb_op *op = NULL;
    assert_ok(make_op(opname, s, impl, threads, &op));
    assert_ok(dcb_op_init_weights(op, wseed));
    dcb_tensor *y = NULL;
    dcb_status st = dcb_op_forward(op, x, &y);
    if (st != DCB_OK) {
        char d[256];
        shape_str(s, d, sizeof d);
        fail_msg("%s/%s failed on %s: %s", opname, impl, d, dcb_last_error());
    }
    if (keep)
        *keep = op;
    else
        dcb_op_destroy(op);
    return y;
}

static void sweep(const char *opname, int nshapes, uint64_t seed) {
    uint64_t r = seed;
    double worst[MAX_IMPLS] = {0};
    const int nimpl = dcb_impl_count(opname);
    assert_true(nimpl >= 1 && nimpl <= MAX_IMPLS);
    for (int i = 0; i < nshapes; i++) {
        sshape s = random_shape(&r, i);
        char desc[256];
        shape_str(&s, desc, sizeof desc);
        dcb_tensor *x = tu_randn3(s.N, s.T, s.C, 500 + (uint64_t)i);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < nimpl; k++) {
            dcb_op *op = NULL;
            dcb_tensor *y = run_impl(opname, &s, dcb_impl_name(opname, k), 1 + (i + k) % 2, x, 31 + (uint64_t)i, &op);
            if (!ref) ref = ref_of(opname, &s, op, x);
            const double err = tu_err_within_tol(op, y, ref, desc);
            if (err > worst[k]) worst[k] = err;
            if (k == 0 && strcmp(opname, "dynconv1d") == 0) {  /* the kernels hook */
                dcb_tensor *kt = NULL;
                assert_ok(dcb_op_kernels(op, x, &kt));
                assert_int_equal(kt->ndim, 4);
                assert_true(kt->shape[0] == s.N && kt->shape[1] == s.T && kt->shape[2] == s.H &&
                            kt->shape[3] == s.K);
                double *kr = ref_dyn_kernels(&s, op, x);
                for (int64_t e = 0; e < kt->size; e++)
                    if (fabs(kt->data[e] - kr[e]) > 1e-6 * fmax(1.0, fabs(kr[e])))
                        fail_msg("dynconv1d kernels on %s: element %lld is %g, reference %g", desc,
                                 (long long)e, kt->data[e], kr[e]);
                free(kr);
                dcb_tensor_free(kt);
            }
            dcb_op_destroy(op);
            dcb_tensor_free(y);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < nimpl; k++)
        print_message("%s/%-7s %d shapes, max rel err %.3g\n", opname, dcb_impl_name(opname, k), nshapes, worst[k]);
}

static void test_lightconv_against_reference(void **state) {
    (void)state;
    sweep("lightconv", tu_quick() ? 48 : 400, 2026);
}

static void test_dynconv1d_against_reference(void **state) {
    (void)state;
    sweep("dynconv1d", tu_quick() ? 36 : 300, 4052);
}

/* ---------------------------------------------------------------- registry */
static void test_registry(void **state) {
    (void)state;
    for (int o = 0; o < 2; o++) {
        /* naive first (the oracle and the default); each implementation is a
         * strategy of the sequence engine, named as it; the four known ones */
        assert_string_equal(dcb_impl_name(ops[o], 0), "naive");
        static const char *const known[] = {"naive", "unfold", "band", "direct"};
        for (int j = 0; j < 4; j++) {
            int has = 0;
            for (int k = 0; k < dcb_impl_count(ops[o]); k++) has |= !strcmp(dcb_impl_name(ops[o], k), known[j]);
            if (!has) fail_msg("%s has no implementation '%s'", ops[o], known[j]);
        }
        int np = 0;
        const dcb_param_spec *ps = dcb_op_params(ops[o], &np);
        assert_int_equal(np, 6);
        static const char *const names[] = {"channels", "heads", "kernel_size", "padding", "weight_softmax",
                                            "bias"};
        for (int i = 0; i < 6; i++) assert_string_equal(ps[i].name, names[i]);
        assert_int_equal(ps[3].type, DCB_PT_STRING);
        assert_string_equal(ps[3].def_str, "same");
        assert_true(ps[4].type == DCB_PT_BOOL && ps[4].def == 1);
        assert_true(ps[5].type == DCB_PT_BOOL && ps[5].def == 0);
        /* defaults: heads 1, same padding, weight_softmax on, no bias */
        dcb_op *op = NULL;
        dcb_hparam hp[] = {TU_HP("channels", 8), TU_HP("kernel_size", 3)};
        assert_ok(dcb_op_create(ops[o], NULL, hp, 2, &op));
        assert_string_equal(dcb_op_get_impl(op), "naive");
        assert_true(dcb_op_get_param(op, "heads") == 1 && dcb_op_get_param(op, "weight_softmax") == 1 &&
                    dcb_op_get_param(op, "bias") == 0);
        dcb_op_destroy(op);
    }
}

/* ------------------------------------------------------------- corner cases */
/* K = 1: with weight_softmax the kernel is exactly 1, so y = x + bias exactly;
 * without it, y = weight[h] * x + bias (a per-head scale). */
static void test_lightconv_k1(void **state) {
    (void)state;
    for (int sm = 0; sm < 2; sm++)
        for (int k = 0; k < dcb_impl_count("lightconv"); k++) {
            const char *impl = dcb_impl_name("lightconv", k);
            sshape s = {3, 17, 12, 4, 1, k % 2, sm, 1};
            dcb_tensor *x = tu_randn3(s.N, s.T, s.C, 77);
            dcb_op *op = NULL;
            dcb_tensor *y = run_impl("lightconv", &s, impl, 1, x, 9, &op);
            const float *b = dcb_op_get_weight(op, "bias")->data, *w = dcb_op_get_weight(op, "weight")->data;
            for (int64_t e = 0; e < x->size; e++) {
                const int c = (int)(e % s.C);
                const float want = sm ? x->data[e] + b[c] : w[c / 3] * x->data[e] + b[c];
                if (sm && y->data[e] != want)
                    fail_msg("lightconv/%s K=1 softmax: y=%.9g, x+bias=%.9g", impl, y->data[e], want);
                if (!sm && fabsf(y->data[e] - want) > 1e-6f * fmaxf(1.0f, fabsf(want)))
                    fail_msg("lightconv/%s K=1: y=%.9g, w*x+bias=%.9g", impl, y->data[e], want);
            }
            dcb_tensor_free(y);
            dcb_tensor_free(x);
            dcb_op_destroy(op);
        }
}

/* Causal padding never reads the future: changing x[:, t+1:] leaves y[:, :t+1]
 * bit-identical, for every implementation. */
static void test_causal_never_reads_future(void **state) {
    (void)state;
    static const sshape shapes[] = {{2, 40, 24, 3, 7, 1, 1, 1}, {1, 9, 16, 16, 15, 1, 0, 0},
                                    {3, 64, 32, 4, 4, 1, 1, 0}, {2, 5, 8, 2, 31, 1, 0, 1},
                                    {2, 37, 64, 2, 15, 1, 1, 1}};
    for (int o = 0; o < 2; o++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int k = 0; k < dcb_impl_count(ops[o]); k++) {
                const sshape *s = &shapes[si];
                dcb_tensor *x = tu_randn3(s->N, s->T, s->C, 3 + si);
                dcb_op *op = NULL;
                assert_ok(make_op(ops[o], s, dcb_impl_name(ops[o], k), 1 + k % 2, &op));
                assert_ok(dcb_op_init_weights(op, 5));
                char what[96];
                snprintf(what, sizeof what, "%s/%s (shape %zu)", ops[o], dcb_impl_name(ops[o], k), si);
                tu_assert_causal(op, x, 1 + s->T / 7, 100.0f, 1000, what);
                dcb_op_destroy(op);
                dcb_tensor_free(x);
            }
}

/* Softmax of large logits (weights scaled by 1e4): finite, and as the reference. */
static void test_large_logits(void **state) {
    (void)state;
    static const char *const wname[] = {"weight", "wlin_w"};
    sshape s = {2, 50, 32, 4, 7, 0, 1, 1};
    dcb_tensor *x = tu_randn3(s.N, s.T, s.C, 12);
    for (int o = 0; o < 2; o++) {
        dcb_tensor *ref = NULL;
        for (int k = 0; k < dcb_impl_count(ops[o]); k++) {
            dcb_op *op = NULL;
            assert_ok(make_op(ops[o], &s, dcb_impl_name(ops[o], k), 1, &op));
            assert_ok(dcb_op_init_weights(op, 21));
            dcb_tensor *w = dcb_tensor_clone(dcb_op_get_weight(op, wname[o]));
            for (int64_t e = 0; e < w->size; e++) w->data[e] *= 1e4f;
            assert_ok(dcb_op_set_weight(op, wname[o], w));
            dcb_tensor_free(w);
            dcb_tensor *y = NULL;
            assert_ok(dcb_op_forward(op, x, &y));
            if (!ref) ref = ref_of(ops[o], &s, op, x);
            for (int64_t e = 0; e < y->size; e++) assert_true(isfinite(y->data[e]));
            /* dynconv1d's logits are ~1e4, rounded in float by ~1e-3: a near
             * tie of two logits would move the softmax weights by that much;
             * this seed has none (measured 3.8e-6) */
            double err = dcb_max_rel_err(y, ref, NULL), bound = o == 0 ? 1e-6 : 1e-4;
            print_message("%s/%-7s weights x1e4: max rel err %.3g\n", ops[o], dcb_impl_name(ops[o], k), err);
            if (!(err <= bound)) fail_msg("%s/%s with 1e4 weights: error %.3g", ops[o], dcb_impl_name(ops[o], k), err);
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
    }
    dcb_tensor_free(x);
}

/* ---------------------------------------------------------- invalid paths */
static void test_invalid_params(void **state) {
    (void)state;
    for (int o = 0; o < 2; o++) {
        char msg[128];
        dcb_op *op = NULL;
        sshape s = {1, 8, 64, 3, 3, 0, 1, 0};
        snprintf(msg, sizeof msg, "%s: heads=3 does not divide channels=64", ops[o]);
        assert_status_msg(make_op(ops[o], &s, "band", 1, &op), DCB_INVALID_PARAM, msg);
        assert_null(op);
        s.H = 4;
        s.K = 0;
        assert_status_msg(make_op(ops[o], &s, "direct", 1, &op), DCB_INVALID_PARAM, "kernel_size=0");
        s.K = 3;
        s.H = 0;
        assert_status_msg(make_op(ops[o], &s, "naive", 1, &op), DCB_INVALID_PARAM, "heads=0");
        s.H = 4;
        s.C = 0;
        assert_status_msg(make_op(ops[o], &s, "naive", 1, &op), DCB_INVALID_PARAM, "channels=0");
        dcb_hparam pad[] = {TU_HP("channels", 8), TU_HP("kernel_size", 3), TU_HS("padding", "valid")};
        snprintf(msg, sizeof msg, "%s: padding='valid' is invalid (valid: same, causal)", ops[o]);
        assert_status_msg(dcb_op_create(ops[o], "unfold", pad, 3, &op), DCB_INVALID_PARAM, msg);
        dcb_hparam padn[] = {TU_HP("channels", 8), TU_HP("kernel_size", 3), TU_HP("padding", 1)};
        assert_status_msg(dcb_op_create(ops[o], NULL, padn, 3, &op), DCB_INVALID_PARAM, "padding needs a string");
        dcb_hparam noc[] = {TU_HP("kernel_size", 3)};
        assert_status_msg(dcb_op_create(ops[o], NULL, noc, 1, &op), DCB_INVALID_PARAM, "channels is required");
        dcb_hparam nok[] = {TU_HP("channels", 8)};
        assert_status_msg(dcb_op_create(ops[o], NULL, nok, 1, &op), DCB_INVALID_PARAM, "kernel_size is required");
        dcb_hparam frac[] = {TU_HP("channels", 8), TU_HP("kernel_size", 2.5)};
        assert_status_msg(dcb_op_create(ops[o], NULL, frac, 2, &op), DCB_INVALID_PARAM, "kernel_size=2.5");
        dcb_hparam sm[] = {TU_HP("channels", 8), TU_HP("kernel_size", 3), TU_HP("weight_softmax", 2)};
        assert_status_msg(dcb_op_create(ops[o], NULL, sm, 3, &op), DCB_INVALID_PARAM, "weight_softmax=2");
        dcb_hparam bad[] = {TU_HP("channels", 8), TU_HP("kernel_size", 3), TU_HP("kernel", 3)};
        assert_status_msg(dcb_op_create(ops[o], NULL, bad, 3, &op), DCB_UNKNOWN_PARAM, "kernel_size");
        assert_status_msg(dcb_op_create(ops[o], "fft", bad, 2, &op), DCB_UNKNOWN_IMPL, "band");
        assert_null(op);
    }
}

static void test_invalid_shapes(void **state) {
    (void)state;
    for (int o = 0; o < 2; o++) {
        sshape s = {1, 8, 16, 4, 3, 0, 1, 0};
        dcb_op *op = NULL;
        assert_ok(make_op(ops[o], &s, "direct", 1, &op));
        tu_expect_plan_fails(op, 4, (int64_t[]){1, 8, 16, 1}, DCB_INVALID_SHAPE, "(N, T, C)");
        tu_expect_plan_fails(op, 3, (int64_t[]){1, 8, 15}, DCB_INVALID_SHAPE, "15 channels, channels=16");
        tu_expect_plan_fails(op, 3, (int64_t[]){2, 0, 16}, DCB_INVALID_SHAPE, "bad size");
        int yn;
        int64_t ok[3] = {2, 5, 16}, ys[DCB_MAX_DIMS];
        assert_ok(dcb_op_plan(op, 3, ok, &yn, ys, NULL));
        assert_true(yn == 3 && ys[0] == 2 && ys[1] == 5 && ys[2] == 16);
        dcb_tensor *x = tu_new3(2, 5, 16), *y = NULL;
        const char *want = o == 0 ? "weight 'weight' (4, 3) is missing" : "weight 'wlin_w' (12, 16) is missing";
        assert_status_msg(dcb_op_forward(op, x, &y), DCB_INVALID_WEIGHT, want);
        assert_null(y);
        dcb_tensor_free(x);
        dcb_op_destroy(op);
    }
}

/* Which weights exist, with which shapes, for bias off and on. */
/* Which weights exist, with which shapes, for bias off and on. */
static void expect_weights(const char *opname, int bias, const tu_weight *want, int n) {
    sshape s = {1, 8, 12, 3, 5, 0, 1, bias};
    dcb_op *op = NULL;
    assert_ok(make_op(opname, &s, "naive", 1, &op));
    tu_assert_weights(op, want, n);
    dcb_op_destroy(op);
}

static void test_weights(void **state) {
    (void)state;
    /* C 12, H 3, K 5 */
    expect_weights("lightconv", 0, (tu_weight[]){{"weight", 2, {3, 5}}}, 1);
    expect_weights("lightconv", 1, (tu_weight[]){{"weight", 2, {3, 5}}, {"bias", 1, {12}}}, 2);
    expect_weights("dynconv1d", 0, (tu_weight[]){{"wlin_w", 2, {15, 12}}}, 1);
    expect_weights("dynconv1d", 1, (tu_weight[]){{"wlin_w", 2, {15, 12}}, {"wlin_b", 1, {15}}, {"bias", 1, {12}}}, 3);
}

/* kernels / routing hooks: lightconv is static; dynconv1d has kernels only. */
static void test_hooks(void **state) {
    (void)state;
    sshape s = {2, 6, 8, 2, 3, 0, 1, 1};
    dcb_tensor *x = tu_randn3(2, 6, 8, 4), *out = NULL;
    dcb_op *op = NULL;
    assert_ok(make_op("lightconv", &s, "band", 1, &op));
    assert_ok(dcb_op_init_weights(op, 1));
    assert_status_msg(dcb_op_kernels(op, x, &out), DCB_UNSUPPORTED_PARAM, "static operator");
    assert_status_msg(dcb_op_routing(op, x, &out), DCB_UNSUPPORTED_PARAM, "static operator");
    dcb_op_destroy(op);
    assert_ok(make_op("dynconv1d", &s, "direct", 1, &op));
    assert_status_msg(dcb_op_kernels(op, x, &out), DCB_INVALID_WEIGHT, "wlin_w");
    assert_ok(dcb_op_init_weights(op, 1));
    assert_status_msg(dcb_op_routing(op, x, &out), DCB_UNSUPPORTED_PARAM, "dynconv1d: no routing weights");
    assert_null(out);
    assert_ok(dcb_op_kernels(op, x, &out));
    /* after the softmax every (n, t, head) kernel sums to 1 */
    for (int64_t r = 0; r < out->size / 3; r++) {
        double sum = 0;
        for (int j = 0; j < 3; j++) sum += out->data[r * 3 + j];
        assert_true(fabs(sum - 1) < 1e-6);
    }
    dcb_tensor_free(out);
    dcb_op_destroy(op);
    dcb_tensor_free(x);
}

/* plan / run with a caller workspace, the profile, and new weights after prepare. */
static void test_lifecycle(void **state) {
    (void)state;
    sshape s = {2, 33, 24, 3, 5, 0, 1, 1};
    dcb_tensor *x = tu_randn3(2, 33, 24, 8);
    for (int o = 0; o < 2; o++)
        for (int k = 0; k < dcb_impl_count(ops[o]); k++) {
            dcb_op *op = NULL;
            assert_ok(make_op(ops[o], &s, dcb_impl_name(ops[o], k), 2, &op));
            assert_ok(dcb_op_init_weights(op, 2));
            assert_ok(dcb_op_prepare(op));
            tu_runs r = tu_run_twice(op, x);
            /* unfold and band need their windows / band matrix */
            const char *sg = dcb_op_get_strategy(op);
            assert_non_null(sg);
            const int unfold = !strcmp(sg, "unfold"), band = !strcmp(sg, "band");
            if (o == 1 || unfold || band) assert_true(r.wsb > 0);
            if (o == 0 && unfold) assert_true(r.wsb == sizeof(float) * 2 * 33 * 24 * 5);
            if (o == 0 && band) assert_true(r.wsb == sizeof(float) * 33 * 33);
            assert_true(r.prof.seconds[DCB_PHASE_GEMM] > 0);
            if (o == 1) assert_true(r.prof.seconds[DCB_PHASE_KERNEL_GEN] > 0);
            if (unfold || band) assert_true(r.prof.seconds[DCB_PHASE_TRANSFORM] > 0);
            tu_shift_weight(op, "bias", 1.0f);
            assert_ok(dcb_op_run(op, x, r.y2, r.ws, NULL));
            for (int64_t e = 0; e < r.y->size; e++) assert_true(fabsf(r.y2->data[e] - r.y->data[e] - 1.0f) < 1e-5f);
            if (o == 0) { /* lightconv's prepared (softmaxed) kernel must follow a new weight */
                dcb_tensor *w = dcb_tensor_clone(dcb_op_get_weight(op, "weight"));
                w->data[0] += 3.0f;
                assert_ok(dcb_op_set_weight(op, "weight", w));
                assert_ok(dcb_op_run(op, x, r.y2, r.ws, NULL));
                dcb_tensor *ref = ref_lightconv(&s, op, x);
                assert_true(dcb_max_rel_err(r.y2, ref, NULL) <= dcb_op_tolerance(op));
                dcb_tensor_free(ref);
                dcb_tensor_free(w);
            }
            dcb_tensor_free(tu_runs_free(&r));
            dcb_op_destroy(op);
        }
    dcb_tensor_free(x);
}

static void test_threads_agree(void **state) {
    (void)state;
    sshape s = {3, 70, 48, 6, 7, 1, 1, 1};
    dcb_tensor *x = tu_randn3(3, 70, 48, 6);
    for (int o = 0; o < 2; o++)
        for (int k = 0; k < dcb_impl_count(ops[o]); k++) {
            dcb_tensor *a = run_impl(ops[o], &s, dcb_impl_name(ops[o], k), 1, x, 3, NULL);
            tu_assert_close_and_free(a, run_impl(ops[o], &s, dcb_impl_name(ops[o], k), 2, x, 3, NULL), 1e-6);
        }
    dcb_tensor_free(x);
}

/* ------------------------------------------------------------------- costs */
static void test_costs(void **state) {
    (void)state;
    /* lightconv C=64 H=4 K=7, N=2 T=10, bias, softmax */
    sshape s = {2, 10, 64, 4, 7, 0, 1, 1};
    dcb_cost c = cost_of("lightconv", &s, "direct");
    assert_true(c.macs == 10240);          /* 20 steps * (64*7 + 64) */
    assert_true(c.flops == 20480 + 84);    /* + 3*4*7 for the weight softmax */
    assert_true(c.params == 92);           /* 4*7 + 64 */
    assert_true(c.acts == 1280);           /* 20 * 64 */
    assert_true(c.bytes == 4.0 * (1280 + 92 + 1280));
    assert_true(c.dynamic_macs == 0 && c.executed_macs == c.macs);
    c = cost_of("lightconv", &s, "band");
    assert_true(c.macs == 10240);
    assert_true(c.executed_macs == 14080); /* 2 * (10*10*64 + 10*64) */
    s.bias = 0;
    s.softmax = 0;
    c = cost_of("lightconv", &s, "band");
    assert_true(c.macs == 8960 && c.flops == 17920 && c.params == 28);
    assert_true(c.executed_macs == 12800); /* 2 * 10*10*64 */

    /* dynconv1d C=16 H=2 K=3, N=1 T=5 */
    sshape d = {1, 5, 16, 2, 3, 1, 1, 0};
    c = cost_of("dynconv1d", &d, "unfold");
    assert_true(c.dynamic_macs == 480);    /* 5 * 6*16 */
    assert_true(c.macs == 720);            /* + 5 * 16*3 */
    assert_true(c.flops == 1440 + 90);     /* + 3 * 5*6 softmax */
    assert_true(c.params == 96);
    assert_true(c.acts == 110);            /* 5 * (6 + 16) */
    assert_true(c.executed_macs == 720);
    d.bias = 1;
    c = cost_of("dynconv1d", &d, "band");
    assert_true(c.dynamic_macs == 510);    /* 5 * (96 + 6) */
    assert_true(c.macs == 830);            /* + 5 * (48 + 16) */
    assert_true(c.params == 118);          /* 96 + 6 + 16 */
    assert_true(c.executed_macs == 510 + 400 + 80); /* + 5*5*16 + 5*16 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_invalid_shapes),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_lightconv_k1),
        cmocka_unit_test(test_causal_never_reads_future),
        cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_lightconv_against_reference),
        cmocka_unit_test(test_dynconv1d_against_reference),
    };
    return cmocka_run_group_tests_name("lightconv_dynconv1d", tests, NULL, NULL);
}
