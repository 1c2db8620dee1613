/* splat: every engine implementation against an independent reference
 * written from OPERATORS.md (split attention of ResNeSt), the attention
 * weights, the radix-1 sigmoid path, Winograd's unsupported cases,
 * validation messages and costs. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|), against each implementation's
 * tolerance (dcb_op_tolerance). */
typedef struct shape {
    int N, cin, cout, H, W, kh, kw, stride, pad, dil, R, Kc;
} shape;

static void shape_str(const shape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d cin=%d cout=%d H=%d W=%d k=%dx%d stride=%d pad=%d dil=%d radix=%d cardinality=%d", s->N,
             s->cin, s->cout, s->H, s->W, s->kh, s->kw, s->stride, s->pad, s->dil, s->R, s->Kc);
}

static dcb_status make_op(const shape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("cin", s->cin),      TU_HP("cout", s->cout),     TU_HP("kh", s->kh),
                       TU_HP("kw", s->kw),        TU_HP("stride", s->stride), TU_HP("pad", s->pad),
                       TU_HP("dilation", s->dil), TU_HP("radix", s->R),      TU_HP("cardinality", s->Kc),
                       TU_HP("threads", threads)};
    return dcb_op_create("splat", impl, hp, (int)(sizeof hp / sizeof hp[0]), op);
}

/* The cost of splat/impl for shape s on its input (N, cin, H, W). */
static dcb_cost cost_of(const shape *s, const char *impl) {
    dcb_op *op = NULL;
    assert_ok(make_op(s, impl, 1, &op));
    return tu_cost(op, 4, (int64_t[]){s->N, s->cin, s->H, s->W});
}

static int inter_of(const shape *s) { return s->cin * s->R / 4 > 32 ? s->cin * s->R / 4 : 32; }

/* ------------------------------------------------------------- reference
 * U = relu(conv(x, groups = Kc*R) + conv_b), split along channels into R
 * tensors of cout; g = relu(fc1(gap(sum_r U_r))) with fc1 grouped by Kc;
 * logits = fc2(g) grouped by Kc, viewed (Kc, R, cout/Kc), reordered to
 * (R, Kc, cout/Kc); a = softmax over R (sigmoid when R = 1);
 * y = sum_r a_r U_r. Everything in double; logits returned (N, cout*R). */
typedef struct ref_out {
    dcb_tensor *y, *a;
    double *logits;
} ref_out;

static ref_out reference(const shape *s, const dcb_tensor *x, const dcb_op *op) {
    const float *cw = dcb_op_get_weight(op, "conv_w")->data, *cb = dcb_op_get_weight(op, "conv_b")->data;
    const float *w1 = dcb_op_get_weight(op, "fc1_w")->data, *b1 = dcb_op_get_weight(op, "fc1_b")->data;
    const float *w2 = dcb_op_get_weight(op, "fc2_w")->data, *b2 = dcb_op_get_weight(op, "fc2_b")->data;
    const int R = s->R, Kc = s->Kc, C = s->cout, CR = C * R, inter = inter_of(s), G = Kc * R;
    const int Ho = (s->H + 2 * s->pad - s->dil * (s->kh - 1) - 1) / s->stride + 1;
    const int Wo = (s->W + 2 * s->pad - s->dil * (s->kw - 1) - 1) / s->stride + 1, P = Ho * Wo;
    const int cg = s->cin / G, og = CR / G;
    double *U = calloc((size_t)s->N * CR * P, sizeof(double));
    for (int n = 0; n < s->N; n++)
        for (int o = 0; o < CR; o++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    const int g = o / og;
                    double acc = cb[o];
                    for (int c = 0; c < cg; c++)
                        for (int u = 0; u < s->kh; u++)
                            for (int v = 0; v < s->kw; v++) {
                                int ii = i * s->stride + u * s->dil - s->pad, jj = j * s->stride + v * s->dil - s->pad;
                                if (ii < 0 || ii >= s->H || jj < 0 || jj >= s->W) continue;
                                acc += (double)cw[(((size_t)o * cg + c) * s->kh + u) * s->kw + v] *
                                       x->data[(((size_t)n * s->cin + g * cg + c) * s->H + ii) * s->W + jj];
                            }
                    U[(((size_t)n * CR + o) * Ho + i) * Wo + j] = acc > 0 ? acc : 0;
                }
    ref_out r;
    r.y = dcb_tensor_new4(s->N, C, Ho, Wo);
    int64_t ash[3] = {s->N, R, C};
    r.a = dcb_tensor_new(3, ash);
    r.logits = calloc((size_t)s->N * CR, sizeof(double));
    double *sv = calloc((size_t)C, sizeof(double)), *gv = calloc((size_t)inter, sizeof(double));
    double *a = calloc((size_t)CR, sizeof(double));
    const int cpg = C / Kc, ipg = inter / Kc, opg = CR / Kc;
    for (int n = 0; n < s->N; n++) {
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int rr = 0; rr < R; rr++)
                for (int p = 0; p < P; p++) acc += U[((size_t)n * CR + rr * C + c) * P + p];
            sv[c] = acc / P;
        }
        for (int m = 0; m < inter; m++) {   /* fc1: group m / ipg reads s[group*cpg ...] */
            const int grp = m / ipg;
            double acc = b1[m];
            for (int c = 0; c < cpg; c++) acc += (double)w1[(size_t)m * cpg + c] * sv[grp * cpg + c];
            gv[m] = acc > 0 ? acc : 0;
        }
        double *lg = r.logits + (size_t)n * CR;
        for (int o = 0; o < CR; o++) {      /* fc2: group o / opg reads g[group*ipg ...] */
            const int grp = o / opg;
            double acc = b2[o];
            for (int m = 0; m < ipg; m++) acc += (double)w2[(size_t)o * ipg + m] * gv[grp * ipg + m];
            lg[o] = acc;
        }
        /* logits[k][r][j] -> a[r][k*cpg + j] */
        for (int k = 0; k < Kc; k++)
            for (int j = 0; j < cpg; j++) {
                if (R == 1) {
                    a[k * cpg + j] = 1.0 / (1.0 + exp(-lg[k * cpg + j]));
                    continue;
                }
                double mx = -INFINITY, sum = 0;
                for (int rr = 0; rr < R; rr++) mx = fmax(mx, lg[(k * R + rr) * cpg + j]);
                for (int rr = 0; rr < R; rr++) sum += exp(lg[(k * R + rr) * cpg + j] - mx);
                for (int rr = 0; rr < R; rr++) a[rr * C + k * cpg + j] = exp(lg[(k * R + rr) * cpg + j] - mx) / sum;
            }
        for (int i = 0; i < CR; i++) r.a->data[(size_t)n * CR + i] = (float)a[i];
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++) {
                double acc = 0;
                for (int rr = 0; rr < R; rr++) acc += a[rr * C + c] * U[((size_t)n * CR + rr * C + c) * P + p];
                r.y->data[((size_t)n * C + c) * P + p] = (float)acc;
            }
    }
    free(sv);
    free(gv);
    free(a);
    free(U);
    return r;
}

static void ref_free(ref_out *r) {
    dcb_tensor_free(r->y);
    dcb_tensor_free(r->a);
    free(r->logits);
}

static shape random_shape(uint64_t *r, int t) {
    static const int ks[] = {1, 3, 5};
    shape s;
    for (;;) {
        s.N = tu_rand(r, 1, 4);
        s.R = tu_rand(r, 1, 4);
        s.Kc = tu_rand(r, 1, 4);
        s.cin = s.Kc * s.R * tu_rand(r, 1, s.Kc == 3 ? 4 : 2);
        s.cout = s.Kc * tu_rand(r, 1, 4);
        s.kh = s.kw = ks[tu_rand(r, 0, 2)];
        if (tu_rand(r, 0, 4) == 0) s.kw = ks[tu_rand(r, 0, 2)];
        s.stride = tu_rand(r, 1, 2);
        s.pad = tu_rand(r, 0, 2);
        s.dil = tu_rand(r, 0, 3) == 0 ? 2 : 1;
        if (t % 3 == 0) { /* the Winograd domain */
            s.kh = s.kw = 3;
            s.stride = s.dil = 1;
        }
        s.H = tu_rand(r, 1, 12);
        s.W = tu_rand(r, 1, 12);
        if (inter_of(&s) % s.Kc) continue;
        if (tu_kernel_fits(s.H, s.W, s.kh, s.kw, s.pad, s.dil)) break;
    }
    return s;
}

static int winograd_ok(const shape *s) { return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->dil == 1; }

static void test_impls_against_reference(void **state) {
    (void)state;
    const int nshapes = tu_quick() ? 40 : 160;
    const int nimpl = dcb_impl_count("splat");
    assert_int_equal(nimpl, tu_engine_count());
    double worst[8] = {0}, worst_a = 0;
    int checked[8] = {0}, unsupported[8] = {0}, radix[5] = {0}, card[5] = {0};
    uint64_t r = 777;
    for (int t = 0; t < nshapes; t++) {
        shape s = random_shape(&r, t);
        char desc[256];
        shape_str(&s, desc, sizeof desc);
        radix[s.R]++;
        card[s.Kc]++;
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 300 + (uint64_t)t);
        ref_out ref = {NULL, NULL, NULL};
        for (int k = 0; k < nimpl; k++) {
            const char *impl = dcb_impl_name("splat", k);
            dcb_op *op = NULL;
            dcb_status st = make_op(&s, impl, 1 + (t + k) % 2, &op);
            if (!strncmp(impl, "winograd", 8) && !winograd_ok(&s)) {
                tu_assert_unsupported(st, op, impl, desc);
                assert_true(strstr(dcb_last_error(), "splat/winograd") != NULL);
                unsupported[k]++;
                continue;
            }
            if (st != DCB_OK) fail_msg("%s on %s: %s", impl, desc, dcb_last_error());
            assert_ok(dcb_op_init_weights(op, 13 + (uint64_t)t));
            if (!ref.y) ref = reference(&s, x, op);
            worst[k] = fmax(worst[k], tu_forward_err(op, x, ref.y, desc));
            worst_a = fmax(worst_a, tu_routing_err(op, x, ref.a, desc));
            checked[k]++;
            dcb_op_destroy(op);
        }
        ref_free(&ref);
        dcb_tensor_free(x);
    }
    tu_print_checked("splat", 12, nimpl, checked, unsupported, worst, nshapes / 4);
    print_message("splat attention (routing) max rel err %.3g\n", worst_a);
    for (int v = 1; v <= 4; v++) assert_true(radix[v] > 0 && card[v] > 0);
}

/* R = 1: a = sigmoid(logits), not a softmax over one element (which is 1). */
static void test_radix_one_sigmoid(void **state) {
    (void)state;
    shape s = {3, 8, 6, 7, 9, 3, 3, 1, 1, 1, 1, 2};
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 44);
    for (int k = 0; k < dcb_impl_count("splat"); k++) {
        dcb_op *op = NULL;
        assert_ok(make_op(&s, dcb_impl_name("splat", k), 1, &op));
        assert_ok(dcb_op_init_weights(op, 3));
        ref_out ref = reference(&s, x, op);
        dcb_tensor *a = NULL, *y = NULL;
        assert_ok(dcb_op_routing(op, x, &a));
        assert_int_equal(a->shape[1], 1);
        int not_one = 0;
        for (int64_t i = 0; i < a->size; i++) {
            const double sg = 1.0 / (1.0 + exp(-ref.logits[i]));
            assert_true(fabs(a->data[i] - sg) <= 1e-6);
            not_one += a->data[i] < 0.999f;
        }
        assert_true(not_one > 0);
        assert_ok(dcb_op_forward(op, x, &y));
        assert_true(dcb_max_rel_err(y, ref.y, NULL) <= dcb_op_tolerance(op));
        dcb_tensor_free(a);
        dcb_tensor_free(y);
        ref_free(&ref);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(x);
}

static void test_defaults_and_weights(void **state) {
    (void)state;
    tu_assert_impl_per_engine("splat");
    dcb_op *op = NULL;
    dcb_hparam hp[] = {TU_HP("cin", 64), TU_HP("cout", 64), TU_HP("k", 3), TU_HP("pad", 1), TU_HP("cardinality", 2)};
    assert_ok(dcb_op_create("splat", "im2col", hp, 5, &op));
    assert_true(dcb_op_get_param(op, "radix") == 2 && dcb_op_get_param(op, "cardinality") == 2);
    /* inter = max(64*2/4, 32) = 32 */
    static const tu_weight want[] = {{"conv_w", 4, {128, 16, 3, 3}}, {"conv_b", 1, {128}}, {"fc1_w", 2, {32, 32}},
                                     {"fc1_b", 1, {32}}, {"fc2_w", 2, {128, 16}}, {"fc2_b", 1, {128}}};
    tu_assert_weights(op, want, 6);
    dcb_op_destroy(op);
    /* inter from cin*R/4 when above 32: cin=256, R=4 -> 256 */
    dcb_hparam big[] = {TU_HP("cin", 256), TU_HP("cout", 64), TU_HP("k", 1), TU_HP("radix", 4)};
    assert_ok(dcb_op_create("splat", "naive", big, 4, &op));
    int64_t sh[DCB_MAX_DIMS];
    dcb_op_weight_shape(op, 2, sh);
    assert_true(sh[0] == 256 && sh[1] == 64);
    dcb_op_destroy(op);
}

static void expect_invalid(const dcb_hparam *hp, int n, dcb_status want, const char *needle) {
    tu_expect_create_fails("splat", "naive", hp, n, want, needle);
}

static void test_invalid_params(void **state) {
    (void)state;
    dcb_hparam c1[] = {TU_HP("cin", 10), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("radix", 2), TU_HP("cardinality", 2)};
    expect_invalid(c1, 5, DCB_INVALID_PARAM, "splat: cardinality*radix=4 (cardinality=2, radix=2) does not divide cin=10");
    dcb_hparam c2[] = {TU_HP("cin", 8), TU_HP("cout", 5), TU_HP("k", 3), TU_HP("radix", 2), TU_HP("cardinality", 2)};
    expect_invalid(c2, 5, DCB_INVALID_PARAM, "cardinality*radix=4 does not divide cout*radix=10 (cardinality=2 does not divide cout=5)");
    dcb_hparam c3[] = {TU_HP("cin", 3), TU_HP("cout", 3), TU_HP("k", 3), TU_HP("radix", 1), TU_HP("cardinality", 3)};
    expect_invalid(c3, 5, DCB_INVALID_PARAM, "splat: cardinality=3 does not divide inter=32");
    dcb_hparam r0[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("radix", 0)};
    expect_invalid(r0, 4, DCB_INVALID_PARAM, "splat: radix=0");
    dcb_hparam k0[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("cardinality", 0)};
    expect_invalid(k0, 4, DCB_INVALID_PARAM, "cardinality=0");
    dcb_hparam rf[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("radix", 1.5)};
    expect_invalid(rf, 4, DCB_INVALID_PARAM, "radix=1.5");
    dcb_hparam nok[] = {TU_HP("cin", 8), TU_HP("cout", 8)};
    expect_invalid(nok, 2, DCB_INVALID_PARAM, "splat: the kernel size is required");
    dcb_hparam nocin[] = {TU_HP("cout", 8), TU_HP("k", 3)};
    expect_invalid(nocin, 2, DCB_INVALID_PARAM, "splat: cin is required");
    dcb_hparam grp[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("groups", 2)};
    expect_invalid(grp, 4, DCB_UNKNOWN_PARAM, "unknown hyperparameter 'groups'");
    dcb_hparam pad[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("pad", -1)};
    expect_invalid(pad, 4, DCB_INVALID_PARAM, "pad=-1");
    /* Winograd: needs 3x3, stride 1, dilation 1, and says so */
    shape bad[] = {{1, 8, 8, 9, 9, 3, 3, 2, 1, 1, 2, 1}, {1, 8, 8, 9, 9, 5, 5, 1, 2, 1, 2, 1},
                   {1, 8, 8, 9, 9, 3, 3, 1, 2, 2, 2, 1}};
    for (size_t i = 0; i < 3; i++)
        for (int f = 0; f < 2; f++) {
            dcb_op *op = (dcb_op *)0x1;
            assert_status_msg(make_op(&bad[i], f ? "winograd_f2" : "winograd", 1, &op), DCB_UNSUPPORTED_PARAM,
                              "needs a 3x3 kernel, stride 1 and dilation 1");
            assert_null(op);
        }
    /* shapes and hooks */
    shape s = {1, 8, 8, 6, 6, 3, 3, 1, 1, 1, 2, 1};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "im2col", 1, &op));
    dcb_tensor *x = dcb_tensor_new4(1, 8, 6, 6), *out = NULL;
    assert_status_msg(dcb_op_routing(op, x, &out), DCB_INVALID_WEIGHT, "weight 'conv_w' (16, 4, 3, 3) is missing");
    assert_ok(dcb_op_init_weights(op, 1));
    assert_status_msg(dcb_op_kernels(op, x, &out), DCB_UNSUPPORTED_PARAM, "splat");
    tu_expect_plan_fails(op, 4, (int64_t[]){1, 6, 6, 6}, DCB_INVALID_SHAPE, "6 channels, cin=8");
    dcb_tensor_free(x);
    dcb_op_destroy(op);
}

static void test_costs(void **state) {
    (void)state;
    /* cin = cout = 64, 3x3 pad 1, R = 2, Kc = 1 over 8x8, N = 2; inter = 32, cg = 32, P = 64 */
    shape s = {2, 64, 64, 8, 8, 3, 3, 1, 1, 1, 2, 1};
    dcb_cost c = cost_of(&s, "im2col");
    /* per image: conv 9*32*128*64 + 128*64 = 2367488; fc1 32*64+32 = 2080; fc2 128*32+128 = 4224 */
    assert_true(c.macs == 2 * 2373792.0);
    assert_true(c.dynamic_macs == 12608);
    assert_true(c.params == 36864 + 128 + 6304);
    assert_true(c.acts == 2 * (8192 + 32 + 128));
    /* 8192 relu + 4096 split sum + 4096 gap + 32 relu + 384 softmax + 12288 mix */
    assert_true(c.flops == 2 * c.macs + 2 * 29088);
    assert_true(c.bytes == 4.0 * (8192 + 43296 + 8192));
    assert_true(c.executed_macs == c.macs);
    /* cardinality 2 divides the FCs: fc1 32*64/2+32 = 1056, fc2 128*32/2+128 = 2176; cg = 16; N = 1 */
    shape g = {1, 64, 64, 8, 8, 3, 3, 1, 1, 1, 2, 2};
    c = cost_of(&g, "winograd");
    assert_true(c.macs == 1179648 + 8192 + 1056 + 2176);
    assert_true(c.dynamic_macs == 3232);
    assert_true(c.params == 18432 + 128 + 3232);
    /* F(4x4): 4 tiles * 36 per (c, o) instead of 9 * 64 */
    assert_true(c.executed_macs == c.macs - 1179648 + 4 * 36 * 16 * 128);
    /* radix 1, 1x1 stride 2 over 9x9 -> 5x5, cin 8, cout 4; inter 32 */
    shape o = {1, 8, 4, 9, 9, 1, 1, 2, 0, 1, 1, 1};
    c = cost_of(&o, "naive");
    /* conv 8*4*25 + 4*25 = 900; fc1 32*4+32 = 160; fc2 4*32+4 = 132 */
    assert_true(c.macs == 1192 && c.dynamic_macs == 292);
    assert_true(c.acts == 100 + 32 + 4);
    /* 100 relu + 0 sum + 100 gap + 32 relu + 12 sigmoid + 100 scale */
    assert_true(c.flops == 2 * 1192 + 344);
}

static void test_lifecycle_and_profile(void **state) {
    (void)state;
    shape s = {2, 12, 9, 10, 9, 3, 3, 1, 1, 1, 3, 1};
    dcb_tensor *x = tu_randn4(2, 12, 10, 9, 6);
    dcb_tensor *first = NULL;
    for (int k = 0; k < dcb_impl_count("splat"); k++) {
        dcb_op *op = NULL;
        assert_ok(make_op(&s, dcb_impl_name("splat", k), 1 + k % 2, &op));
        assert_ok(dcb_op_init_weights(op, 2));
        /* new conv weights after prepare must be used (the Winograd plan is rebuilt) */
        tu_keep_or_compare(&first, tu_check_reprepare(op, x, "conv_w", -1.0f), op); /* first: naive */
        dcb_op_destroy(op);
    }
    dcb_tensor_free(first);
    dcb_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impls_against_reference),
        cmocka_unit_test(test_radix_one_sigmoid),
        cmocka_unit_test(test_defaults_and_weights),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_lifecycle_and_profile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
