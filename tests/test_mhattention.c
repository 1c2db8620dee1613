/* mhattention: naive and gemm against an independent reference written from
 * OPERATORS.md (nn.MultiheadAttention layout), on seeded random shapes,
 * causal on and off; the causal mask never reading the future, large logits,
 * validation messages, weights and costs. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|), x ~ N(0, 1), default weights,
 * against each implementation's tolerance (dcb_op_tolerance). Measured maxima
 * over the sweep (seed 77, OpenBLAS Haswell): naive 0 (it does the
 * reference's double arithmetic in the same order), gemm 5.7e-7. */

/* The implementations, from the registry: every one is tested. */
#define MAX_IMPLS 8
static int nimpl(void) { return dcb_impl_count("mhattention"); }
static const char *impl(int k) { return dcb_impl_name("mhattention", k); }

typedef struct ashape {
    int N, T, d, H, causal;
} ashape;

static dcb_status make_op(const ashape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("channels", s->d), TU_HP("heads", s->H), TU_HP("causal", s->causal),
                       TU_HP("threads", threads)};
    return dcb_op_create("mhattention", impl, hp, 4, op);
}

/* The cost of mhattention/impl for shape s on its input (N, T, d). */
static dcb_cost cost_of(const ashape *s, const char *impl) {
    dcb_op *op = NULL;
    assert_ok(make_op(s, impl, 1, &op));
    return tu_cost(op, 3, (int64_t[]){s->N, s->T, s->d});
}

/* q, k, v = split(x in_proj_w^T + in_proj_b); per head softmax(q k^T / sqrt(d/H)) v
 * (causal: j > i masked); y = concat_heads out_proj_w^T + out_proj_b. */
static dcb_tensor *ref_mha(const ashape *s, const dcb_op *op, const dcb_tensor *x) {
    const int d = s->d, T = s->T, dh = d / s->H;
    const float *W = dcb_op_get_weight(op, "in_proj_w")->data, *B = dcb_op_get_weight(op, "in_proj_b")->data;
    const float *OW = dcb_op_get_weight(op, "out_proj_w")->data, *OB = dcb_op_get_weight(op, "out_proj_b")->data;
    double *q = malloc(sizeof(double) * T * d), *k = malloc(sizeof(double) * T * d);
    double *v = malloc(sizeof(double) * T * d), *o = malloc(sizeof(double) * T * d);
    double *p = malloc(sizeof(double) * T);
    dcb_tensor *y = tu_new3(s->N, T, d);
    for (int n = 0; n < s->N; n++) {
        const float *xn = x->data + (size_t)n * T * d;
        for (int t = 0; t < T; t++)
            for (int e = 0; e < d; e++) {
                double a[3] = {B[e], B[d + e], B[2 * d + e]};
                for (int c = 0; c < d; c++)
                    for (int m = 0; m < 3; m++) a[m] += (double)W[((size_t)m * d + e) * d + c] * xn[t * d + c];
                q[t * d + e] = a[0];
                k[t * d + e] = a[1];
                v[t * d + e] = a[2];
            }
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    if (s->causal && j > i) {
                        p[j] = -INFINITY;
                        continue;
                    }
                    double a = 0;
                    for (int e = h * dh; e < (h + 1) * dh; e++) a += q[i * d + e] * k[j * d + e];
                    p[j] = a / sqrt((double)dh);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < T; j++) sum += (p[j] = exp(p[j] - mx));
                for (int e = h * dh; e < (h + 1) * dh; e++) {
                    double a = 0;
                    for (int j = 0; j < T; j++) a += p[j] / sum * v[j * d + e];
                    o[i * d + e] = a;
                }
            }
        for (int t = 0; t < T; t++)
            for (int e = 0; e < d; e++) {
                double a = OB[e];
                for (int c = 0; c < d; c++) a += (double)OW[(size_t)e * d + c] * o[t * d + c];
                y->data[((size_t)n * T + t) * d + e] = (float)a;
            }
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(p);
    return y;
}

static dcb_tensor *run_impl(const ashape *s, const char *impl, int threads, const dcb_tensor *x, uint64_t wseed,
                            dcb_op **keep) {
    dcb_op *op = NULL;
    assert_ok(make_op(s, impl, threads, &op));
    assert_ok(dcb_op_init_weights(op, wseed));
    dcb_tensor *y = NULL;
    dcb_status st = dcb_op_forward(op, x, &y);
    if (st != DCB_OK)
        fail_msg("mhattention/%s failed on N=%d T=%d d=%d H=%d causal=%d: %s", impl, s->N, s->T, s->d, s->H,
                 s->causal, dcb_last_error());
    if (keep)
        *keep = op;
    else
        dcb_op_destroy(op);
    return y;
}

static void test_against_reference(void **state) {
    (void)state;
    const int nshapes = tu_quick() ? 24 : 100;
    uint64_t r = 77;
    double worst[MAX_IMPLS] = {0};
    assert_true(nimpl() >= 2 && nimpl() <= MAX_IMPLS);
    for (int i = 0; i < nshapes; i++) {
        ashape s;
        s.N = tu_rand(&r, 1, 4);
        s.H = i % 5 == 0 ? 1 : tu_rand(&r, 1, 16);
        s.d = s.H * tu_rand(&r, 1, i % 4 == 0 ? 16 : 6);
        s.T = i % 6 == 0 ? 1 : i % 6 == 1 ? 2 : i % 6 == 2 ? tu_rand(&r, 200, 300) : tu_rand(&r, 1, 300);
        if (s.d > 64 && s.T > 100) s.N = 1; /* keeps the double-precision oracles quick */
        s.causal = tu_rand(&r, 0, 1);
        dcb_tensor *x = tu_randn3(s.N, s.T, s.d, 900 + (uint64_t)i);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < nimpl(); k++) {
            dcb_op *op = NULL;
            dcb_tensor *y = run_impl(&s, impl(k), 1 + (i + k) % 2, x, 60 + (uint64_t)i, &op);
            if (!ref) ref = ref_mha(&s, op, x);
            char desc[128];
            snprintf(desc, sizeof desc, "N=%d T=%d d=%d H=%d causal=%d", s.N, s.T, s.d, s.H, s.causal);
            const double err = tu_err_within_tol(op, y, ref, desc);
            if (err > worst[k]) worst[k] = err;
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < nimpl(); k++)
        print_message("mhattention/%-5s %d shapes, max rel err %.3g\n", impl(k), nshapes, worst[k]);
}

static void test_registry(void **state) {
    (void)state;
    /* naive first (the oracle and the default), gemm among the rest */
    assert_string_equal(impl(0), "naive");
    int has_gemm = 0;
    for (int k = 0; k < nimpl(); k++) has_gemm |= !strcmp(impl(k), "gemm");
    assert_true(has_gemm);
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params("mhattention", &np);
    assert_int_equal(np, 3);
    assert_string_equal(ps[0].name, "channels");
    assert_string_equal(ps[1].name, "heads");
    assert_string_equal(ps[2].name, "causal");
    assert_true(ps[2].type == DCB_PT_BOOL && ps[2].def == 0);
}

/* Causal attention never reads the future, bit for bit, in both impls. */
static void test_causal_never_reads_future(void **state) {
    (void)state;
    static const ashape shapes[] = {{2, 37, 24, 3, 1}, {1, 9, 16, 16, 1}, {3, 70, 32, 4, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int k = 0; k < nimpl(); k++) {
            const ashape *s = &shapes[si];
            dcb_tensor *x = tu_randn3(s->N, s->T, s->d, 40 + si);
            dcb_op *op = NULL;
            assert_ok(make_op(s, impl(k), 1 + k % 2, &op));
            assert_ok(dcb_op_init_weights(op, 2));
            char what[64];
            snprintf(what, sizeof what, "mhattention/%s (shape %zu)", impl(k), si);
            tu_assert_causal(op, x, 1 + s->T / 6, 50.0f, 7000, what);
            dcb_op_destroy(op);
            dcb_tensor_free(x);
        }
}

/* Large logits: the query rows of in_proj_w scaled by 1e4, so the scores are
 * ~1e4 and the softmax is nearly one-hot; the output must stay finite and
 * agree with the reference (the max-subtracted softmax). */
static void test_large_logits(void **state) {
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        ashape s = {2, 60, 32, 4, causal};
        dcb_tensor *x = tu_randn3(s.N, s.T, s.d, 31);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < nimpl(); k++) {
            dcb_op *op = NULL;
            assert_ok(make_op(&s, impl(k), 1, &op));
            assert_ok(dcb_op_init_weights(op, 8));
            dcb_tensor *w = dcb_tensor_clone(dcb_op_get_weight(op, "in_proj_w"));
            for (int64_t e = 0; e < (int64_t)s.d * s.d; e++) w->data[e] *= 1e4f;
            assert_ok(dcb_op_set_weight(op, "in_proj_w", w));
            dcb_tensor_free(w);
            dcb_tensor *y = NULL;
            assert_ok(dcb_op_forward(op, x, &y));
            if (!ref) ref = ref_mha(&s, op, x);
            for (int64_t e = 0; e < y->size; e++) assert_true(isfinite(y->data[e]));
            double err = dcb_max_rel_err(y, ref, NULL);
            print_message("mhattention/%-5s causal=%d q x1e4: max rel err %.3g\n", impl(k), causal, err);
            if (!(err <= 1e-4)) fail_msg("mhattention/%s causal=%d with 1e4 logits: error %.3g", impl(k), causal, err);
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
}

static void test_invalid(void **state) {
    (void)state;
    dcb_op *op = NULL;
    ashape s = {1, 4, 64, 3, 0};
    assert_status_msg(make_op(&s, "gemm", 1, &op), DCB_INVALID_PARAM, "mhattention: heads=3 does not divide channels=64");
    assert_null(op);
    s.H = 0;
    assert_status_msg(make_op(&s, "gemm", 1, &op), DCB_INVALID_PARAM, "heads=0");
    s.H = 4;
    s.d = 0;
    assert_status_msg(make_op(&s, "naive", 1, &op), DCB_INVALID_PARAM, "channels=0");
    dcb_hparam noc[] = {TU_HP("heads", 2)};
    assert_status_msg(dcb_op_create("mhattention", NULL, noc, 1, &op), DCB_INVALID_PARAM, "channels is required");
    dcb_hparam cz[] = {TU_HP("channels", 8), TU_HP("causal", 2)};
    assert_status_msg(dcb_op_create("mhattention", NULL, cz, 2, &op), DCB_INVALID_PARAM, "causal=2");
    dcb_hparam cs[] = {TU_HP("channels", 8), TU_HS("causal", "yes")};
    assert_status_msg(dcb_op_create("mhattention", NULL, cs, 2, &op), DCB_INVALID_PARAM, "'yes'");
    assert_status_msg(dcb_op_create("mhattention", "flash", cz, 1, &op), DCB_UNKNOWN_IMPL, "gemm");

    s.d = 16;
    assert_ok(make_op(&s, "gemm", 1, &op));
    tu_expect_plan_fails(op, 2, (int64_t[]){4, 16}, DCB_INVALID_SHAPE, "(N, T, C)");
    tu_expect_plan_fails(op, 3, (int64_t[]){1, 4, 12}, DCB_INVALID_SHAPE, "12 channels, channels=16");
    tu_expect_plan_fails(op, 3, (int64_t[]){1, 0, 16}, DCB_INVALID_SHAPE, "bad size");
    dcb_tensor *x = tu_new3(1, 4, 16), *y = NULL;
    assert_status_msg(dcb_op_forward(op, x, &y), DCB_INVALID_WEIGHT, "weight 'in_proj_w' (48, 16) is missing");
    assert_ok(dcb_op_init_weights(op, 1));
    assert_status_msg(dcb_op_kernels(op, x, &y), DCB_UNSUPPORTED_PARAM, "static operator");
    dcb_tensor_free(x);
    dcb_op_destroy(op);
}

static void test_weights(void **state) {
    (void)state;
    ashape s = {1, 4, 12, 3, 0};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "naive", 1, &op));
    static const tu_weight want[] = {{"in_proj_w", 2, {36, 12}}, {"in_proj_b", 1, {36}},
                                     {"out_proj_w", 2, {12, 12}}, {"out_proj_b", 1, {12}}};
    tu_assert_weights(op, want, 4);
    dcb_op_destroy(op);
}

static void test_lifecycle_and_threads(void **state) {
    (void)state;
    ashape s = {3, 45, 24, 4, 1};
    dcb_tensor *x = tu_randn3(3, 45, 24, 5);
    for (int k = 0; k < nimpl(); k++) {
        dcb_op *op = NULL;
        assert_ok(make_op(&s, impl(k), 2, &op));
        assert_ok(dcb_op_init_weights(op, 4));
        tu_runs r = tu_run_twice(op, x);
        assert_true(r.wsb > 0);
        assert_true(r.prof.seconds[DCB_PHASE_GEMM] > 0 && r.prof.seconds[DCB_PHASE_COMBINE] > 0);
        tu_assert_close_and_free(run_impl(&s, impl(k), 1, x, 4, NULL), tu_runs_free(&r), 1e-6);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(x);
}

static void test_costs(void **state) {
    (void)state;
    /* d=8 H=2 N=2 T=5; per step 3*64+24 + 2*5*8 + 64+8 = 368 */
    ashape s = {2, 5, 8, 2, 0};
    dcb_cost c = cost_of(&s, "gemm");
    assert_true(c.macs == 3680);
    assert_true(c.flops == 7360 + 400);    /* + 4 per score * N*H*T*T = 4 * 100 */
    assert_true(c.params == 288);          /* 4*64 + 4*8 */
    assert_true(c.acts == 320);            /* 10 steps * (3*8 + 8) */
    assert_true(c.bytes == 4.0 * (160 + 288));
    assert_true(c.dynamic_macs == 0 && c.executed_macs == 3680);
    s.causal = 1;
    c = cost_of(&s, "gemm");
    assert_true(c.macs == 3680 && c.executed_macs == 3680); /* gemm computes the full squares */
    c = cost_of(&s, "naive");
    assert_true(c.macs == 3680);
    assert_true(c.executed_macs == 3360);  /* 2 * (5*(216+72) + 5*6*8): masked scores skipped */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_lifecycle_and_threads),
        cmocka_unit_test(test_causal_never_reads_future),
        cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests_name("mhattention", tests, NULL, NULL);
}
