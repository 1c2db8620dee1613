/* weightnet: every implementation against an independent reference written
 * from OPERATORS.md (plain loops, double accumulation), the M = G = 1 / SE
 * equivalence, the kernels / routing hooks, unsupported engines, invalid
 * hyperparameters and costs against hand-computed integers. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|), inputs N(0,1), weights from
 * dcb_op_init_weights, against each implementation's tolerance
 * (dcb_op_tolerance). The routing and kernel generation are float in every
 * implementation; the engines add their own error (Winograd F(4x4) the most).
 * Measured maxima (seed 31, full sweep) are printed by the test. */

typedef struct wshape {
    int N, cin, cout, H, W, kh, kw, stride, pad, dil, M, G, hidden, dw;
} wshape;

static void wshape_str(const wshape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d cin=%d cout=%d H=%d W=%d k=%dx%d stride=%d pad=%d dil=%d M=%d G=%d hidden=%d dw=%d", s->N,
             s->cin, s->cout, s->H, s->W, s->kh, s->kw, s->stride, s->pad, s->dil, s->M, s->G, s->hidden, s->dw);
}

static dcb_status make_op(const wshape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[16];
    int n = 0;
    hp[n++] = TU_HP("cin", s->cin);
    if (!s->dw || s->cout > 0) hp[n++] = TU_HP("cout", s->cout);
    hp[n++] = TU_HP("kh", s->kh);
    hp[n++] = TU_HP("kw", s->kw);
    hp[n++] = TU_HP("stride", s->stride);
    hp[n++] = TU_HP("pad", s->pad);
    hp[n++] = TU_HP("dilation", s->dil);
    hp[n++] = TU_HP("M", s->M);
    hp[n++] = TU_HP("G", s->G);
    if (s->hidden != 0) hp[n++] = TU_HP("hidden", s->hidden);
    hp[n++] = TU_HP("depthwise", s->dw);
    hp[n++] = TU_HP("threads", threads);
    return dcb_op_create("weightnet", impl, hp, n, op);
}

/* The cost of weightnet/impl for shape s on its input (N, cin, H, W). */
static dcb_cost cost_of(const wshape *s, const char *impl) {
    dcb_op *op = NULL;
    assert_ok(make_op(s, impl, 1, &op));
    return tu_cost(op, 4, (int64_t[]){s->N, s->cin, s->H, s->W});
}

/* ------------------------------------------------------------ reference */
typedef struct wref {
    double *a;   /* (N, A) */
    double *Wk;  /* (N, P) */
    dcb_tensor *y;
    int A;
    long P;
} wref;

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* Straight from OPERATORS.md: a = sigmoid(fc2(fc1(gap(x)))), then
 * W_n[f] = sum_m wgen[f, m] a[n, g(f)*(M/G) + m] with g(f) = f / (P / groups),
 * groups = G*cout (dense) or cin (depthwise); y[n] = conv2d(x[n], W_n). */
static wref reference(const wshape *s, const dcb_op *op, const dcb_tensor *x) {
    const int N = s->N, cin = s->cin, cout = s->dw ? s->cin : s->cout, khw = s->kh * s->kw;
    const int hidden = s->hidden > 0 ? s->hidden : (cin / 16 > 16 ? cin / 16 : 16);
    const int lam = s->M / s->G;
    const int A = s->dw ? lam * cin : s->M * cout;
    const long P = s->dw ? (long)cin * khw : (long)cout * cin * khw;
    const long ngroups = s->dw ? cin : (long)s->G * cout, Pg = P / ngroups;
    const float *f1w = dcb_op_get_weight(op, "fc1_w")->data, *f1b = dcb_op_get_weight(op, "fc1_b")->data;
    const float *f2w = dcb_op_get_weight(op, "fc2_w")->data, *f2b = dcb_op_get_weight(op, "fc2_b")->data;
    const float *wg = dcb_op_get_weight(op, "wgen_w")->data;
    wref r;
    r.A = A;
    r.P = P;
    r.a = calloc((size_t)N * A, sizeof(double));
    r.Wk = calloc((size_t)N * P, sizeof(double));
    double *gp = calloc((size_t)cin, sizeof(double)), *h = calloc((size_t)hidden, sizeof(double));
    const int H = s->H, W = s->W;
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < cin; c++) {
            double acc = 0;
            for (int i = 0; i < H * W; i++) acc += x->data[((size_t)n * cin + c) * H * W + i];
            gp[c] = acc / (H * W);
        }
        for (int j = 0; j < hidden; j++) {
            double acc = f1b[j];
            for (int c = 0; c < cin; c++) acc += (double)f1w[(size_t)j * cin + c] * gp[c];
            h[j] = acc; /* no nonlinearity between the FCs */
        }
        for (int i = 0; i < A; i++) {
            double acc = f2b[i];
            for (int j = 0; j < hidden; j++) acc += (double)f2w[(size_t)i * hidden + j] * h[j];
            r.a[(size_t)n * A + i] = sigm(acc);
        }
        for (long f = 0; f < P; f++) {
            const long g = f / Pg;
            double acc = 0;
            for (int m = 0; m < lam; m++) acc += (double)wg[f * lam + m] * r.a[(size_t)n * A + g * lam + m];
            r.Wk[(size_t)n * P + f] = acc;
        }
    }
    free(gp);
    free(h);
    const int Ho = (H + 2 * s->pad - s->dil * (s->kh - 1) - 1) / s->stride + 1;
    const int Wo = (W + 2 * s->pad - s->dil * (s->kw - 1) - 1) / s->stride + 1;
    const int cig = s->dw ? 1 : cin;
    r.y = dcb_tensor_new4(N, cout, Ho, Wo);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < cout; o++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    double acc = 0;
                    for (int cl = 0; cl < cig; cl++) {
                        const int c = s->dw ? o : cl;
                        for (int u = 0; u < s->kh; u++)
                            for (int v = 0; v < s->kw; v++) {
                                const int ii = i * s->stride + u * s->dil - s->pad;
                                const int jj = j * s->stride + v * s->dil - s->pad;
                                if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
                                acc += r.Wk[(size_t)n * P + (((size_t)o * cig + cl) * s->kh + u) * s->kw + v] *
                                       x->data[(((size_t)n * cin + c) * H + ii) * W + jj];
                            }
                    }
                    r.y->data[(((size_t)n * cout + o) * Ho + i) * Wo + j] = (float)acc;
                }
    return r;
}

static void wref_free(wref *r) {
    free(r->a);
    free(r->Wk);
    dcb_tensor_free(r->y);
}

/* ---------------------------------------------------------- random shapes */
static int fits(const wshape *s) {
    return tu_kernel_fits(s->H, s->W, s->kh, s->kw, s->pad, s->dil);
}

static wshape random_shape(uint64_t *r, int i) {
    static const int Ms[] = {1, 2, 4, 8};
    static const int ks[] = {1, 3, 5};
    wshape s;
    for (;;) {
        s.N = tu_rand(r, 1, 4);
        s.dw = tu_rand(r, 0, 1);
        s.M = Ms[tu_rand(r, 0, 3)];
        do s.G = 1 << tu_rand(r, 0, 3); while (s.M % s.G);
        s.kh = s.kw = ks[tu_rand(r, 0, 2)];
        if (tu_rand(r, 0, 4) == 0) s.kw = ks[tu_rand(r, 0, 2)];
        s.stride = tu_rand(r, 1, 2);
        s.dil = tu_rand(r, 0, 3) == 0 ? 2 : 1;
        s.pad = tu_rand(r, 0, 2);
        if (i % 3 == 0) { /* the Winograd domain */
            s.kh = s.kw = 3;
            s.stride = s.dil = 1;
        }
        s.cin = tu_rand(r, 1, i % 5 == 1 ? 40 : s.dw ? 20 : 10); /* some wider layers */
        s.cout = s.dw ? s.cin : tu_rand(r, 1, 10);
        s.H = tu_rand(r, 1, 15);
        s.W = tu_rand(r, 1, 15);
        s.hidden = tu_rand(r, 0, 1) ? tu_rand(r, 1, 6) : 0;
        if (!s.dw && (s.cin * s.kh * s.kw) % s.G) continue; /* G*cout must divide P */
        if (fits(&s)) break;
    }
    return s;
}

static int winograd_domain(const wshape *s) { return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->dil == 1; }

static void test_impls_against_reference(void **state) {
    (void)state;
    const int nshapes = tu_quick() ? 40 : 300;
    uint64_t r = 31;
    const int nimpl = dcb_impl_count("weightnet");
    assert_true(nimpl >= 5 && nimpl <= 8);  /* one per conv2d engine */
    double worst[8] = {0};
    int checked[8] = {0}, unsupported[8] = {0}, dws = 0;
    for (int i = 0; i < nshapes; i++) {
        wshape s = random_shape(&r, i);
        dws += s.dw;
        char desc[256];
        wshape_str(&s, desc, sizeof desc);
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 500 + (uint64_t)i);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < nimpl; k++) {
            const char *impl = dcb_impl_name("weightnet", k);
            dcb_op *op = NULL;
            dcb_status st = make_op(&s, impl, 1 + (i % 2), &op);
            if (strstr(impl, "winograd") && !winograd_domain(&s)) {
                tu_assert_unsupported(st, op, impl, desc);
                unsupported[k]++;
                continue;
            }
            if (st != DCB_OK) fail_msg("%s on %s: %s", impl, desc, dcb_last_error());
            assert_ok(dcb_op_init_weights(op, 70 + (uint64_t)i));
            if (!ref) {
                wref rf = reference(&s, op, x);
                ref = rf.y;
                rf.y = NULL;
                wref_free(&rf);
            }
            worst[k] = fmax(worst[k], tu_forward_err(op, x, ref, desc));
            checked[k]++;
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < nimpl; k++) {
        print_message("weightnet/%-30s %3d shapes checked, %3d unsupported, max rel err %.3g\n",
                      dcb_impl_name("weightnet", k), checked[k], unsupported[k], worst[k]);
        assert_true(checked[k] >= nshapes / 4);
    }
    assert_true(dws > nshapes / 4 && dws < 3 * nshapes / 4);
}

/* M = G = 1: W_n[o, ...] = wgen_w[f, 0] * a[n, o], so y[n, o] = a[n, o] *
 * conv(x, wgen_w reshaped to (cout, cin, kh, kw))[o] — an SE on the output
 * of a static conv. The expected output is built here from the routing hook
 * and the library's static conv2d. */
static void test_se_equivalence(void **state) {
    (void)state;
    wshape s = {3, 6, 5, 9, 8, 3, 3, 1, 1, 1, 1, 1, 0, 0};
    for (int variant = 0; variant < 2; variant++) {
        if (variant) { /* strided, dilated, 5x3 */
            s.kh = 5;
            s.stride = 2;
            s.dil = 2;
            s.pad = 2;
        }
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 12);
        dcb_op *wn = NULL, *cv = NULL;
        assert_ok(make_op(&s, "combine_then_conv/im2col", 1, &wn));
        assert_ok(dcb_op_init_weights(wn, 5));
        dcb_tensor *a = NULL, *y = NULL, *z = NULL;
        assert_ok(dcb_op_routing(wn, x, &a));
        assert_int_equal(a->shape[1], s.cout);
        assert_ok(dcb_op_forward(wn, x, &y));
        dcb_hparam hp[] = {TU_HP("cin", s.cin),       TU_HP("cout", s.cout),     TU_HP("kh", s.kh),
                           TU_HP("kw", s.kw),         TU_HP("stride", s.stride), TU_HP("pad", s.pad),
                           TU_HP("dilation", s.dil)};
        assert_ok(dcb_op_create("conv2d", "naive", hp, 7, &cv));
        const dcb_tensor *wg = dcb_op_get_weight(wn, "wgen_w");
        dcb_tensor *w4 = dcb_tensor_new4(s.cout, s.cin, s.kh, s.kw);
        memcpy(w4->data, wg->data, sizeof(float) * (size_t)w4->size);
        assert_ok(dcb_op_set_weight(cv, "weight", w4));
        assert_ok(dcb_op_forward(cv, x, &z));
        const size_t HW = (size_t)z->shape[2] * z->shape[3];
        for (int n = 0; n < s.N; n++)
            for (int o = 0; o < s.cout; o++)
                for (size_t p = 0; p < HW; p++) {
                    float *e = &z->data[((size_t)n * s.cout + o) * HW + p];
                    *e *= a->data[(size_t)n * s.cout + o];
                }
        const double err = dcb_max_rel_err(y, z, NULL);
        print_message("weightnet M=G=1 vs SE(conv): rel err %.3g\n", err);
        assert_true(err <= 3e-6);
        dcb_tensor_free(w4);
        dcb_tensor_free(a);
        dcb_tensor_free(y);
        dcb_tensor_free(z);
        dcb_tensor_free(x);
        dcb_op_destroy(wn);
        dcb_op_destroy(cv);
    }
}

static double max_rel_err_d(const float *y, const double *ref, size_t n) {
    double mx = 1, e = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(y[i] - ref[i]));
    return e / mx;
}

static void test_hooks(void **state) {
    (void)state;
    wshape cases[] = {{2, 6, 4, 7, 9, 3, 3, 1, 1, 1, 4, 2, 0, 0},   /* dense, lam 2 */
                      {3, 12, 0, 8, 8, 3, 5, 2, 1, 1, 8, 2, 5, 1},  /* depthwise, lam 4 */
                      {1, 8, 3, 5, 5, 1, 1, 1, 0, 1, 8, 8, 0, 0},   /* dense 1x1, G = M */
                      {4, 5, 5, 6, 6, 3, 3, 1, 1, 1, 2, 1, 3, 1}};  /* depthwise, lam 2 */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        wshape s = cases[c];
        dcb_op *op = NULL;
        assert_ok(make_op(&s, "combine_then_conv/naive", 1, &op));
        assert_ok(dcb_op_init_weights(op, 40 + c));
        if (s.dw) s.cout = s.cin;
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 3 + c);
        wref rf = reference(&s, op, x);
        dcb_tensor *k = NULL, *a = NULL;
        assert_ok(dcb_op_kernels(op, x, &k));
        assert_ok(dcb_op_routing(op, x, &a));
        const int64_t ks[5] = {s.N, s.cout, s.dw ? 1 : s.cin, s.kh, s.kw};
        const int64_t as[2] = {s.N, rf.A};
        assert_true(dcb_shape_equal(k, 5, ks));
        assert_true(dcb_shape_equal(a, 2, as));
        const double ek = max_rel_err_d(k->data, rf.Wk, (size_t)k->size);
        const double ea = max_rel_err_d(a->data, rf.a, (size_t)a->size);
        print_message("weightnet hooks case %zu: kernels rel err %.3g, routing rel err %.3g\n", c, ek, ea);
        assert_true(ek <= 1e-6 && ea <= 1e-6);
        /* the kernels are similar enough to summarise */
        if (s.N >= 2) {
            dcb_similarity_stats st;
            assert_ok(dcb_similarity(k, &st));
            assert_true(st.whole.pairs == (int64_t)s.N * (s.N - 1) / 2);
        }
        dcb_tensor_free(k);
        dcb_tensor_free(a);
        wref_free(&rf);
        dcb_tensor_free(x);
        dcb_op_destroy(op);
    }
}

static void expect_invalid(const wshape *s, dcb_status want, const char *needle) {
    dcb_op *op = (dcb_op *)0x1;
    assert_status_msg(make_op(s, "combine_then_conv/im2col", 1, &op), want, needle);
    assert_null(op);
}

static void test_invalid_params(void **state) {
    (void)state;
    /* 16 -> 16 channels, 3x3 pad 1 over 8x8, M = G = 2, each case with the changes its message names */
    expect_invalid(&(wshape){1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 3, 2, 0, 0}, DCB_INVALID_PARAM,
                   "weightnet: M=3 is not divisible by G=2");
    expect_invalid(&(wshape){1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 0, 2, 0, 0}, DCB_INVALID_PARAM, "M=0");
    expect_invalid(&(wshape){1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 2, 0, 0, 0}, DCB_INVALID_PARAM, "G=0");
    /* cin 3, 1x1: P = 16*3 */
    expect_invalid(&(wshape){1, 3, 16, 8, 8, 1, 1, 1, 1, 1, 2, 2, 0, 0}, DCB_INVALID_PARAM,
                   "is not divisible by G*cout=32");
    expect_invalid(&(wshape){1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 2, 2, -1, 0}, DCB_INVALID_PARAM, "hidden=-1");
    expect_invalid(&(wshape){1, 16, 8, 8, 8, 3, 3, 1, 1, 1, 2, 2, 0, 1}, DCB_INVALID_PARAM,
                   "cout=8 must equal cin=16 when depthwise=1");
    expect_invalid(&(wshape){1, 16, 16, 8, 8, 3, 3, 0, 1, 1, 2, 2, 0, 0}, DCB_INVALID_PARAM, "stride=0");
    expect_invalid(&(wshape){1, 0, 16, 8, 8, 3, 3, 1, 1, 1, 2, 2, 0, 0}, DCB_INVALID_PARAM, "cin=0");
    expect_invalid(&(wshape){1, 16, 16, 8, 8, 3, 3, 1, 1, 1, 2, 2, 0, 2}, DCB_INVALID_PARAM, "depthwise=2");
    /* depthwise P = cin*kh*kw has cin groups: any G dividing M will do (cout 0: not given) */
    dcb_op *op = NULL;
    assert_ok(make_op(&(wshape){1, 3, 0, 8, 8, 1, 1, 1, 1, 1, 2, 2, 0, 1}, "combine_then_conv/naive", 1, &op));
    assert_true(dcb_op_get_param(op, "cout") == 3);
    dcb_op_destroy(op);

    dcb_hparam nocout[] = {TU_HP("cin", 4), TU_HP("k", 3)};
    tu_expect_create_fails("weightnet", NULL, nocout, 2, DCB_INVALID_PARAM, "cout is required");
    dcb_hparam nok[] = {TU_HP("cin", 4), TU_HP("cout", 4)};
    tu_expect_create_fails("weightnet", NULL, nok, 2, DCB_INVALID_PARAM, "kernel size");
    dcb_hparam grp[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("groups", 2)};
    tu_expect_create_fails("weightnet", NULL, grp, 4, DCB_UNKNOWN_PARAM, "groups");
    tu_expect_create_fails("weightnet", "conv_then_combine/naive", grp, 3, DCB_UNKNOWN_IMPL,
                           "combine_then_conv/winograd_f2");
}

static void test_weights_and_defaults(void **state) {
    (void)state;
    wshape s = {1, 64, 32, 8, 8, 3, 3, 1, 1, 1, 4, 2, 0, 0};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "combine_then_conv/naive", 1, &op));
    assert_true(dcb_op_get_param(op, "hidden") == 16);
    static const tu_weight want[] = {{"fc1_w", 2, {16, 64}}, {"fc1_b", 1, {16}}, {"fc2_w", 2, {128, 16}},
                                     {"fc2_b", 1, {128}}, {"wgen_w", 2, {32 * 64 * 9, 2}}};
    tu_assert_weights(op, want, 5);
    dcb_op_destroy(op);
    /* cin = 512: hidden = 512/16 = 32; depthwise shapes */
    wshape d = {1, 512, 0, 8, 8, 5, 5, 1, 2, 1, 8, 2, 0, 1};
    assert_ok(make_op(&d, "combine_then_conv/im2col", 1, &op));
    assert_true(dcb_op_get_param(op, "hidden") == 32);
    int64_t sh[DCB_MAX_DIMS];
    assert_int_equal(dcb_op_weight_shape(op, 2, sh), 2);
    assert_true(sh[0] == 4 * 512 && sh[1] == 32);
    assert_int_equal(dcb_op_weight_shape(op, 4, sh), 2);
    assert_true(sh[0] == 512 * 25 && sh[1] == 4);
    dcb_op_destroy(op);
}

static void test_winograd_unsupported(void **state) {
    (void)state;
    wshape cases[] = {{1, 8, 8, 9, 9, 3, 3, 2, 1, 1, 2, 2, 0, 0},
                      {1, 8, 8, 9, 9, 5, 5, 1, 2, 1, 2, 2, 0, 0},
                      {1, 8, 8, 9, 9, 3, 3, 1, 2, 2, 2, 2, 0, 1},
                      {1, 8, 8, 9, 9, 1, 1, 1, 0, 1, 2, 1, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int f = 0; f < 2; f++) {
            dcb_op *op = NULL;
            const char *impl = f ? "combine_then_conv/winograd_f2" : "combine_then_conv/winograd";
            dcb_status st = make_op(&cases[i], impl, 1, &op);
            assert_status_msg(st, DCB_UNSUPPORTED_PARAM, "needs a 3x3 kernel, stride 1 and dilation 1");
            assert_true(strstr(dcb_last_error(), "weightnet/") != NULL);
            assert_null(op);
        }
}

static void test_lifecycle_and_threads(void **state) {
    (void)state;
    wshape s = {3, 16, 24, 13, 11, 3, 3, 1, 1, 1, 4, 2, 0, 0};
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 8);
    for (int k = 0; k < dcb_impl_count("weightnet"); k++) {
        const char *impl = dcb_impl_name("weightnet", k);
        dcb_op *o1 = NULL, *o2 = NULL;
        assert_ok(make_op(&s, impl, 1, &o1));
        assert_ok(make_op(&s, impl, 2, &o2));
        assert_ok(dcb_op_init_weights(o1, 9));
        assert_ok(dcb_op_init_weights(o2, 9));
        assert_ok(dcb_op_prepare(o1));
        void *ws;
        size_t wsb = 0;
        dcb_tensor *y1 = tu_plan(o1, x, &ws, &wsb), *y2 = NULL;
        assert_true(wsb > 0);
        dcb_profile prof = {{0}};
        assert_ok(dcb_op_run(o1, x, y1, ws, &prof));
        assert_true(prof.seconds[DCB_PHASE_ROUTING] > 0 && prof.seconds[DCB_PHASE_KERNEL_GEN] > 0);
        assert_true(prof.seconds[DCB_PHASE_GEMM] > 0);
        assert_status_msg(dcb_op_run(o1, x, y1, NULL, NULL), DCB_INVALID_ARGUMENT, "workspace");
        assert_ok(dcb_op_forward(o2, x, &y2));
        assert_true(dcb_max_rel_err(y2, y1, NULL) <= 1e-6);
        /* new weights after prepare are used by the next run */
        tu_scale_weight(o1, "wgen_w", 2.0f);
        assert_ok(dcb_op_run(o1, x, y2, ws, NULL));
        for (int64_t i = 0; i < y1->size; i++) assert_true(fabsf(y2->data[i] - 2 * y1->data[i]) < 1e-4f);
        dcb_tensor_free(y1);
        dcb_tensor_free(y2);
        dcb_aligned_free(ws);
        dcb_op_destroy(o1);
        dcb_op_destroy(o2);
    }
    dcb_tensor_free(x);
}

static void test_costs(void **state) {
    (void)state;
    /* dense 64->64 3x3 at 56x56, N = 2, M = G = 2 (lambda 1), hidden 16:
     * conv 9*64*64*3136 = 115605504; fc1 16*64+16 = 1040; fc2 128*16+128 =
     * 2176; generation 1*36864 */
    dcb_cost c = cost_of(&(wshape){2, 64, 64, 56, 56, 3, 3, 1, 1, 1, 2, 2, 0, 0}, "combine_then_conv/im2col");
    assert_true(c.macs == 231291168.0);
    assert_true(c.dynamic_macs == 80160.0);
    assert_true(c.params == 40080.0);
    assert_true(c.acts == 475424.0);
    assert_true(c.flops == 2 * 231291168.0 + 2 * (64.0 * 3136 + 128));
    assert_true(c.executed_macs == c.macs);
    assert_true(c.bytes == 4.0 * (2.0 * 64 * 3136 + 40080 + 2.0 * 64 * 3136));
    /* depthwise 32 channels 3x3 stride 2 at 15x15 -> 8x8, M = 4, G = 2:
     * conv 9*32*64 = 18432; fc1 528; fc2 64*16+64 = 1088; generation 2*288 */
    c = cost_of(&(wshape){1, 32, 0, 15, 15, 3, 3, 2, 1, 1, 4, 2, 0, 1}, "combine_then_conv/naive");
    assert_true(c.macs == 20624.0);
    assert_true(c.dynamic_macs == 2192.0);
    assert_true(c.params == 2192.0);
    assert_true(c.acts == 2416.0);
    assert_true(c.flops == 48512.0);
    /* Winograd F(4x4): 4 tiles of 36 products per (cin, cout) pair, plus the
     * dynamic part 144 + 272 + 576 */
    c = cost_of(&(wshape){1, 8, 8, 8, 8, 3, 3, 1, 1, 1, 2, 2, 0, 0}, "combine_then_conv/winograd");
    assert_true(c.dynamic_macs == 992.0);
    assert_true(c.macs == 9.0 * 64 * 64 + 992);
    assert_true(c.executed_macs == 4.0 * 36 * 64 + 992);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impls_against_reference),
        cmocka_unit_test(test_se_equivalence),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_weights_and_defaults),
        cmocka_unit_test(test_winograd_unsupported),
        cmocka_unit_test(test_lifecycle_and_threads),
        cmocka_unit_test(test_costs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
