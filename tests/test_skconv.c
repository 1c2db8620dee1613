/* skconv: every engine implementation against an independent reference
 * written from OPERATORS.md, the attention weights, the one-branch corner
 * case, Winograd's unsupported cases, validation messages and costs. Also the
 * ResNeXt grouped conv (conv2d groups=32 over 128 channels), which is conv2d
 * itself and needs no operator of its own. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|), against each implementation's
 * tolerance (dcb_op_tolerance). The attention is computed in float by every
 * implementation; the branch convs set the difference. */
typedef struct shape {
    int N, cin, cout, H, W, M, groups, stride, r, L;
} shape;

static void shape_str(const shape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d cin=%d cout=%d H=%d W=%d branches=%d groups=%d stride=%d reduction=%d L=%d", s->N,
             s->cin, s->cout, s->H, s->W, s->M, s->groups, s->stride, s->r, s->L);
}

static dcb_status make_op(const shape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("cin", s->cin),       TU_HP("cout", s->cout),   TU_HP("branches", s->M),
                       TU_HP("groups", s->groups), TU_HP("stride", s->stride), TU_HP("reduction", s->r),
                       TU_HP("L", s->L),           TU_HP("threads", threads)};
    return dcb_op_create("skconv", impl, hp, (int)(sizeof hp / sizeof hp[0]), op);
}

/* The cost of skconv/impl for shape s on its input (N, cin, H, W). */
static dcb_cost cost_of(const shape *s, const char *impl) {
    dcb_op *op = NULL;
    assert_ok(make_op(s, impl, 1, &op));
    return tu_cost(op, 4, (int64_t[]){s->N, s->cin, s->H, s->W});
}

/* ------------------------------------------------------------- reference
 * U_i = relu(conv_i(x)) (3x3, groups, dilation = pad = i+1, bias);
 * s = gap(sum_i U_i); z = relu(fc_w s + fc_b); a = softmax_i(fcs_w z + fcs_b)
 * viewed (M, cout); y = sum_i a_i U_i. Everything in double. */
typedef struct ref_out {
    dcb_tensor *y, *a;
} ref_out;

static ref_out reference(const shape *s, const dcb_tensor *x, const dcb_op *op) {
    const float *bw = dcb_op_get_weight(op, "branch_w")->data, *bb = dcb_op_get_weight(op, "branch_b")->data;
    const float *fw = dcb_op_get_weight(op, "fc_w")->data, *fb = dcb_op_get_weight(op, "fc_b")->data;
    const float *gw = dcb_op_get_weight(op, "fcs_w")->data, *gb = dcb_op_get_weight(op, "fcs_b")->data;
    const int d = s->cout / s->r > s->L ? s->cout / s->r : s->L;
    const int Ho = (s->H - 1) / s->stride + 1, Wo = (s->W - 1) / s->stride + 1, P = Ho * Wo;
    const int cg = s->cin / s->groups, og = s->cout / s->groups, C = s->cout, M = s->M;
    double *U = calloc((size_t)M * s->N * C * P, sizeof(double));
    for (int i = 0; i < M; i++) {
        const int dil = i + 1, pad = i + 1;
        for (int n = 0; n < s->N; n++)
            for (int o = 0; o < C; o++)
                for (int yi = 0; yi < Ho; yi++)
                    for (int yj = 0; yj < Wo; yj++) {
                        double acc = bb[i * C + o];
                        const int g = o / og;
                        for (int c = 0; c < cg; c++)
                            for (int u = 0; u < 3; u++)
                                for (int v = 0; v < 3; v++) {
                                    int ii = yi * s->stride + u * dil - pad, jj = yj * s->stride + v * dil - pad;
                                    if (ii < 0 || ii >= s->H || jj < 0 || jj >= s->W) continue;
                                    acc += (double)bw[((((size_t)i * C + o) * cg + c) * 3 + u) * 3 + v] *
                                           x->data[(((size_t)n * s->cin + g * cg + c) * s->H + ii) * s->W + jj];
                                }
                        U[((((size_t)i * s->N + n) * C + o) * Ho + yi) * Wo + yj] = acc > 0 ? acc : 0;
                    }
    }
    ref_out r;
    r.y = dcb_tensor_new4(s->N, C, Ho, Wo);
    int64_t ash[3] = {s->N, M, C};
    r.a = dcb_tensor_new(3, ash);
    double *sv = calloc((size_t)C, sizeof(double)), *z = calloc((size_t)d, sizeof(double));
    double *lg = calloc((size_t)M * C, sizeof(double));
    for (int n = 0; n < s->N; n++) {
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int i = 0; i < M; i++)
                for (int p = 0; p < P; p++) acc += U[(((size_t)i * s->N + n) * C + c) * P + p];
            sv[c] = acc / P;
        }
        for (int k = 0; k < d; k++) {
            double acc = fb[k];
            for (int c = 0; c < C; c++) acc += (double)fw[(size_t)k * C + c] * sv[c];
            z[k] = acc > 0 ? acc : 0;
        }
        for (int m = 0; m < M * C; m++) {
            double acc = gb[m];
            for (int k = 0; k < d; k++) acc += (double)gw[(size_t)m * d + k] * z[k];
            lg[m] = acc;
        }
        for (int c = 0; c < C; c++) {
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < M; i++) mx = fmax(mx, lg[i * C + c]);
            for (int i = 0; i < M; i++) sum += exp(lg[i * C + c] - mx);
            for (int p = 0; p < P; p++) {
                double acc = 0;
                for (int i = 0; i < M; i++)
                    acc += exp(lg[i * C + c] - mx) / sum * U[(((size_t)i * s->N + n) * C + c) * P + p];
                r.y->data[((size_t)n * C + c) * P + p] = (float)acc;
            }
            for (int i = 0; i < M; i++) r.a->data[((size_t)n * M + i) * C + c] = (float)(exp(lg[i * C + c] - mx) / sum);
        }
    }
    free(sv);
    free(z);
    free(lg);
    free(U);
    return r;
}

static shape random_shape(uint64_t *r, int t) {
    shape s;
    s.N = tu_rand(r, 1, 4);
    s.groups = tu_rand(r, 1, 4);
    s.cin = s.groups * tu_rand(r, 1, 4);
    s.cout = s.groups * tu_rand(r, 1, 5);
    s.M = tu_rand(r, 1, 3);
    s.stride = tu_rand(r, 1, 2);
    if (t % 3 == 0) { /* the Winograd domain */
        s.M = 1;
        s.stride = 1;
    }
    s.H = tu_rand(r, 1, 13);
    s.W = tu_rand(r, 1, 13);
    s.r = tu_rand(r, 1, 4);
    s.L = tu_rand(r, 1, 6);
    return s;
}

static int winograd_ok(const shape *s) { return s->M == 1 && s->stride == 1; }

static void test_impls_against_reference(void **state) {
    (void)state;
    const int nshapes = tu_quick() ? 40 : 160;
    const int nimpl = dcb_impl_count("skconv");
    assert_int_equal(nimpl, tu_engine_count());
    double worst[8] = {0}, worst_a = 0;
    int checked[8] = {0}, unsupported[8] = {0}, Ms[4] = {0}, g1 = 0, strided = 0, odd = 0;
    uint64_t r = 4242;
    for (int t = 0; t < nshapes; t++) {
        shape s = random_shape(&r, t);
        char desc[256];
        shape_str(&s, desc, sizeof desc);
        Ms[s.M]++;
        g1 += s.groups == 1;
        strided += s.stride == 2;
        odd += (s.H % 2) || (s.W % 2);
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 900 + (uint64_t)t);
        ref_out ref = {NULL, NULL};
        for (int k = 0; k < nimpl; k++) {
            const char *impl = dcb_impl_name("skconv", k);
            dcb_op *op = NULL;
            dcb_status st = make_op(&s, impl, 1 + (t + k) % 2, &op);
            if (!strncmp(impl, "winograd", 8) && !winograd_ok(&s)) {
                tu_assert_unsupported(st, op, impl, desc);
                unsupported[k]++;
                continue;
            }
            assert_ok(st);
            assert_ok(dcb_op_init_weights(op, 31 + (uint64_t)t));
            if (!ref.y) ref = reference(&s, x, op);
            worst[k] = fmax(worst[k], tu_forward_err(op, x, ref.y, desc));
            worst_a = fmax(worst_a, tu_routing_err(op, x, ref.a, desc));
            checked[k]++;
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref.y);
        dcb_tensor_free(ref.a);
        dcb_tensor_free(x);
    }
    tu_print_checked("skconv", 12, nimpl, checked, unsupported, worst, nshapes / 4);
    print_message("skconv attention (routing) max rel err %.3g\n", worst_a);
    assert_true(Ms[1] && Ms[2] && Ms[3] && g1 && strided && odd);
}

/* One implementation per conv2d engine, named as the engine. */
static void test_registry(void **state) {
    (void)state;
    tu_assert_impl_per_engine("skconv");
    /* the defaults of OPERATORS.md, and d = max(cout/r, L) */
    dcb_op *op = NULL;
    dcb_hparam hp[] = {TU_HP("cin", 64), TU_HP("cout", 128)};
    assert_ok(dcb_op_create("skconv", "im2col", hp, 2, &op));
    assert_true(dcb_op_get_param(op, "branches") == 2 && dcb_op_get_param(op, "groups") == 32);
    assert_true(dcb_op_get_param(op, "stride") == 1 && dcb_op_get_param(op, "reduction") == 16);
    assert_true(dcb_op_get_param(op, "L") == 32);
    static const tu_weight want[] = {{"branch_w", 5, {2, 128, 2, 3, 3}}, {"branch_b", 2, {2, 128}},
                                     {"fc_w", 2, {32, 128}}, {"fc_b", 1, {32}}, {"fcs_w", 2, {256, 32}},
                                     {"fcs_b", 1, {256}}};
    tu_assert_weights(op, want, 6);
    dcb_op_destroy(op);
    /* d = cout / r when that is larger than L: 512 / 16 = 32 -> L=8 gives 32; r=4 gives 128 */
    dcb_hparam hp2[] = {TU_HP("cin", 64), TU_HP("cout", 512), TU_HP("reduction", 4), TU_HP("L", 8)};
    assert_ok(dcb_op_create("skconv", "naive", hp2, 4, &op));
    int64_t sh[DCB_MAX_DIMS];
    dcb_op_weight_shape(op, 2, sh);
    assert_int_equal(sh[0], 128);
    dcb_op_destroy(op);
}

/* M = 1: the softmax over one branch is 1 and y = U_0 = relu(conv_0(x)). */
static void test_one_branch(void **state) {
    (void)state;
    shape s = {3, 6, 9, 11, 7, 1, 3, 1, 2, 4};
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 21);
    for (int k = 0; k < dcb_impl_count("skconv"); k++) {
        const char *impl = dcb_impl_name("skconv", k);
        dcb_op *op = NULL;
        assert_ok(make_op(&s, impl, 2, &op));
        assert_ok(dcb_op_init_weights(op, 8));
        /* conv2d with the branch weights, then ReLU */
        dcb_hparam chp[] = {TU_HP("cin", s.cin), TU_HP("cout", s.cout), TU_HP("k", 3), TU_HP("pad", 1),
                            TU_HP("groups", s.groups), TU_HP("bias", 1)};
        dcb_op *conv = NULL;
        assert_ok(dcb_op_create("conv2d", "naive", chp, 6, &conv));
        const dcb_tensor *bw = dcb_op_get_weight(op, "branch_w"), *bb = dcb_op_get_weight(op, "branch_b");
        dcb_tensor *w = dcb_tensor_new4(s.cout, s.cin / s.groups, 3, 3);
        memcpy(w->data, bw->data, sizeof(float) * (size_t)w->size);
        int64_t bs[1] = {s.cout};
        dcb_tensor *b = dcb_tensor_new(1, bs);
        memcpy(b->data, bb->data, sizeof(float) * (size_t)s.cout);
        assert_ok(dcb_op_set_weight(conv, "weight", w));
        assert_ok(dcb_op_set_weight(conv, "bias", b));
        dcb_tensor *u = NULL, *y = NULL, *a = NULL;
        assert_ok(dcb_op_forward(conv, x, &u));
        for (int64_t i = 0; i < u->size; i++) u->data[i] = u->data[i] > 0 ? u->data[i] : 0;
        assert_ok(dcb_op_forward(op, x, &y));
        double err = dcb_max_rel_err(y, u, NULL);
        if (!(err <= dcb_op_tolerance(op))) fail_msg("skconv/%s with one branch: %.3g from relu(conv)", impl, err);
        assert_ok(dcb_op_routing(op, x, &a));
        assert_int_equal(a->shape[1], 1);
        for (int64_t i = 0; i < a->size; i++) assert_true(a->data[i] == 1.0f);
        dcb_tensor_free(a);
        dcb_tensor_free(y);
        dcb_tensor_free(u);
        dcb_tensor_free(w);
        dcb_tensor_free(b);
        dcb_op_destroy(conv);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(x);
}

static void test_winograd_unsupported(void **state) {
    (void)state;
    for (int f = 0; f < 2; f++) {
        const char *impl = f ? "winograd_f2" : "winograd";
        dcb_op *op = (dcb_op *)0x1;
        shape two = {1, 8, 8, 9, 9, 2, 2, 1, 4, 4};
        dcb_status st = make_op(&two, impl, 1, &op);
        assert_status_msg(st, DCB_UNSUPPORTED_PARAM, "dilation 2 in branch 1");
        assert_true(strstr(dcb_last_error(), "branches=2") != NULL);
        assert_true(strstr(dcb_last_error(), impl) != NULL);
        assert_null(op);
        shape three = two;
        three.M = 3;
        assert_status_msg(make_op(&three, impl, 1, &op), DCB_UNSUPPORTED_PARAM, "dilation 2 in branch 1");
        shape strided = two;
        strided.M = 1;
        strided.stride = 2;
        assert_status_msg(make_op(&strided, impl, 1, &op), DCB_UNSUPPORTED_PARAM, "stride=2");
        assert_null(op);
        /* the defaults (two branches) are unsupported too: never a silent fallback */
        dcb_hparam hp[] = {TU_HP("cin", 64), TU_HP("cout", 64)};
        assert_status_msg(dcb_op_create("skconv", impl, hp, 2, &op), DCB_UNSUPPORTED_PARAM, "dilation 2 in branch 1");
    }
}

static void expect_invalid(const dcb_hparam *hp, int n, dcb_status want, const char *needle) {
    tu_expect_create_fails("skconv", "naive", hp, n, want, needle);
}

static void test_invalid_params(void **state) {
    (void)state;
    dcb_hparam g3[] = {TU_HP("cin", 64), TU_HP("cout", 66), TU_HP("groups", 3)};
    expect_invalid(g3, 3, DCB_INVALID_PARAM, "skconv: groups=3 does not divide cin=64");
    dcb_hparam g4[] = {TU_HP("cin", 64), TU_HP("cout", 66), TU_HP("groups", 4)};
    expect_invalid(g4, 3, DCB_INVALID_PARAM, "skconv: groups=4 does not divide cout=66");
    dcb_hparam def[] = {TU_HP("cin", 16), TU_HP("cout", 16)};   /* groups defaults to 32 */
    expect_invalid(def, 2, DCB_INVALID_PARAM, "groups=32 does not divide cin=16");
    dcb_hparam m0[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("groups", 1), TU_HP("branches", 0)};
    expect_invalid(m0, 4, DCB_INVALID_PARAM, "skconv: branches=0");
    dcb_hparam r0[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("groups", 1), TU_HP("reduction", 0)};
    expect_invalid(r0, 4, DCB_INVALID_PARAM, "reduction=0");
    dcb_hparam l0[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("groups", 1), TU_HP("L", 0)};
    expect_invalid(l0, 4, DCB_INVALID_PARAM, "L=0");
    dcb_hparam s0[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("groups", 1), TU_HP("stride", 0)};
    expect_invalid(s0, 4, DCB_INVALID_PARAM, "stride=0");
    dcb_hparam g0[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("groups", 0)};
    expect_invalid(g0, 3, DCB_INVALID_PARAM, "groups=0");
    dcb_hparam nocin[] = {TU_HP("cout", 4), TU_HP("groups", 1)};
    expect_invalid(nocin, 2, DCB_INVALID_PARAM, "skconv: cin is required");
    dcb_hparam nocout[] = {TU_HP("cin", 4), TU_HP("groups", 1)};
    expect_invalid(nocout, 2, DCB_INVALID_PARAM, "skconv: cout is required");
    dcb_hparam frac[] = {TU_HP("cin", 4), TU_HP("cout", 4.5), TU_HP("groups", 1)};
    expect_invalid(frac, 3, DCB_INVALID_PARAM, "cout=4.5");
    dcb_hparam k[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("groups", 1), TU_HP("k", 5)};
    expect_invalid(k, 4, DCB_UNKNOWN_PARAM, "unknown hyperparameter 'k'");

    shape s = {1, 4, 4, 6, 6, 2, 2, 1, 1, 1};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "naive", 1, &op));
    dcb_tensor *x = dcb_tensor_new4(1, 4, 6, 6), *out = NULL;
    assert_status_msg(dcb_op_routing(op, x, &out), DCB_INVALID_WEIGHT, "weight 'branch_w' (2, 4, 2, 3, 3) is missing");
    assert_ok(dcb_op_init_weights(op, 1));
    assert_status_msg(dcb_op_kernels(op, x, &out), DCB_UNSUPPORTED_PARAM, "skconv");
    assert_null(out);
    dcb_tensor *x5 = dcb_tensor_new4(1, 5, 6, 6);
    assert_status_msg(dcb_op_routing(op, x5, &out), DCB_INVALID_SHAPE, "5 channels, cin=4");
    dcb_tensor_free(x5);
    dcb_tensor_free(x);
    dcb_op_destroy(op);
}

static void test_costs(void **state) {
    (void)state;
    /* cin = cout = 64, groups 32 (cg = 2), M = 2, d = max(64/16, 32) = 32, 8x8, N = 2 */
    shape s = {2, 64, 64, 8, 8, 2, 32, 1, 16, 32};
    dcb_cost c = cost_of(&s, "im2col");
    /* per image: convs 2*(9*2*64*64 + 64*64) = 155648; fc 32*64+32 = 2080; fcs 2*64*32+128 = 4224 */
    assert_true(c.macs == 323904);
    assert_true(c.dynamic_macs == 12608);
    assert_true(c.params == 8736);
    assert_true(c.acts == 16704);
    /* elementwise per image: 8192 relu + 4096 sum + 4096 gap + 32 relu + 384 softmax + 12288 mix */
    assert_true(c.flops == 2 * 323904 + 2 * 29088);
    assert_true(c.bytes == 4.0 * (8192 + 8736 + 8192));
    assert_true(c.executed_macs == c.macs);
    /* stride 2 over 9x9 -> 5x5, M = 3, groups 1, cin 4, cout 8, r 2, L 3 -> d = 4; N = 1 */
    shape t = {1, 4, 8, 9, 9, 3, 1, 2, 2, 3};
    c = cost_of(&t, "naive");
    /* convs 3*(9*4*8*25 + 8*25) = 22200; fc 4*8+4 = 36; fcs 3*8*4+24 = 120 */
    assert_true(c.macs == 22356);
    assert_true(c.dynamic_macs == 156);
    assert_true(c.params == 3 * (288 + 8) + 156);
    assert_true(c.acts == 3 * 200 + 4 + 24);
    /* 600 relu + 400 sum + 200 gap + 4 relu + 72 softmax + 1000 mix */
    assert_true(c.flops == 2 * 22356 + 2276);
    /* Winograd (one branch): F(4x4) does 4 tiles * 36 per (c, o) instead of 9 * 64 */
    shape w = {1, 64, 64, 8, 8, 1, 32, 1, 16, 32};
    c = cost_of(&w, "winograd");
    assert_true(c.macs == 73728 + 4096 + 2080 + 2112);
    assert_true(c.executed_macs == c.macs - 73728 + 18432);
    c = cost_of(&w, "winograd_f2");
    assert_true(c.executed_macs == c.macs - 73728 + 32768);
}

static void test_lifecycle_and_profile(void **state) {
    (void)state;
    shape s = {2, 8, 8, 9, 10, 1, 2, 1, 2, 4};
    dcb_tensor *x = tu_randn4(2, 8, 9, 10, 5);
    dcb_tensor *first = NULL;
    for (int k = 0; k < dcb_impl_count("skconv"); k++) {
        dcb_op *op = NULL;
        assert_ok(make_op(&s, dcb_impl_name("skconv", k), 1 + k % 2, &op));
        assert_ok(dcb_op_init_weights(op, 2));
        /* new branch weights after prepare must be used (the Winograd plan is rebuilt) */
        tu_keep_or_compare(&first, tu_check_reprepare(op, x, "branch_w", 2.0f), op); /* first: naive */
        dcb_op_destroy(op);
    }
    dcb_tensor_free(first);
    dcb_tensor_free(x);
}

/* ResNeXt's grouped conv is conv2d with groups: listed, and every engine runs
 * 3x3 groups=32 over 128 channels (4 channels per group). */
static void test_resnext_grouped_conv2d(void **state) {
    (void)state;
    int np = 0, has_groups = 0;
    const dcb_param_spec *ps = dcb_op_params("conv2d", &np);
    for (int i = 0; i < np; i++) has_groups |= strcmp(ps[i].name, "groups") == 0;
    assert_true(has_groups);
    dcb_hparam hp[] = {TU_HP("cin", 128), TU_HP("cout", 128), TU_HP("k", 3), TU_HP("pad", 1), TU_HP("groups", 32)};
    const int HW = tu_quick() ? 8 : 14;
    dcb_tensor *x = tu_randn4(2, 128, HW, HW, 32);
    dcb_tensor *ref = NULL;
    for (int k = 0; k < dcb_impl_count("conv2d"); k++) {
        const char *impl = dcb_impl_name("conv2d", k);
        dcb_op *op = NULL;
        assert_ok(dcb_op_create("conv2d", impl, hp, 5, &op));
        int64_t sh[DCB_MAX_DIMS];
        assert_int_equal(dcb_op_weight_shape(op, 0, sh), 4);
        assert_int_equal(sh[1], 4);
        assert_ok(dcb_op_init_weights(op, 6));
        dcb_tensor *y = NULL;
        assert_ok(dcb_op_forward(op, x, &y));
        if (!ref)
            ref = y;
        else {
            double err = dcb_max_rel_err(y, ref, NULL);
            if (!(err <= dcb_op_tolerance(op)))
                fail_msg("conv2d/%s groups=32: %.3g from %s", impl, err, dcb_impl_name("conv2d", 0));
            dcb_tensor_free(y);
        }
        dcb_cost c;
        assert_ok(dcb_op_cost(op, 4, x->shape, &c));
        assert_true(c.macs == 2.0 * 9 * 4 * 128 * HW * HW);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(ref);
    dcb_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impls_against_reference),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_one_branch),
        cmocka_unit_test(test_winograd_unsupported),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_lifecycle_and_profile),
        cmocka_unit_test(test_resnext_grouped_conv2d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
