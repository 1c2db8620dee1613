/* drconv: every implementation against an independent reference written
 * from OPERATORS.md (plain loops, double accumulation), argmax ties, the
 * kernels / routing hooks, groups > 1 unsupported, invalid hyperparameters
 * and costs against hand-computed integers. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|) over the pixels whose region is
 * unambiguous (see compare()), against each implementation's tolerance
 * (dcb_op_tolerance). All three strategies compute the guide conv, the
 * kernels and the conv in float (sgemm or 8-lane dot products); measured
 * maxima are printed by the test. */

/* A pixel is ambiguous when a second region's guide value is within this
 * (relative to max(1, |F|)) of the maximum: float and double may disagree
 * there, and either region's output is accepted. */
#define TIE_TOL 1e-4

typedef struct dshape {
    int N, cin, cout, H, W, kh, kw, stride, pad, dil, m;
} dshape;

static void dshape_str(const dshape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d cin=%d cout=%d H=%d W=%d k=%dx%d stride=%d pad=%d dil=%d regions=%d", s->N, s->cin,
             s->cout, s->H, s->W, s->kh, s->kw, s->stride, s->pad, s->dil, s->m);
}

static dcb_status make_op(const dshape *s, const char *impl, int threads, int groups, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("cin", s->cin),       TU_HP("cout", s->cout),   TU_HP("kh", s->kh),
                       TU_HP("kw", s->kw),         TU_HP("stride", s->stride), TU_HP("pad", s->pad),
                       TU_HP("dilation", s->dil),  TU_HP("regions", s->m),     TU_HP("groups", groups),
                       TU_HP("threads", threads)};
    return dcb_op_create("drconv", impl, hp, (int)(sizeof hp / sizeof hp[0]), op);
}

static int out_size(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

/* ------------------------------------------------------------ reference */
typedef struct dref {
    int Ho, Wo;
    double *F;     /* (N, m, Ho, Wo) guide conv */
    int *mask;     /* (N, Ho, Wo) first argmax */
    unsigned *cand;/* (N, Ho, Wo) bit t: region t within TIE_TOL of the max */
    double *K;     /* (N, m, cout, cin, kh, kw) */
    double *yall;  /* (N, m, cout, Ho, Wo): every region's conv */
} dref;

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static dref reference(const dshape *s, const dcb_op *op, const dcb_tensor *x) {
    const int N = s->N, cin = s->cin, cout = s->cout, H = s->H, W = s->W, kh = s->kh, kw = s->kw, m = s->m;
    const float *gw = dcb_op_get_weight(op, "guide_w")->data, *gb = dcb_op_get_weight(op, "guide_b")->data;
    const float *w1 = dcb_op_get_weight(op, "gen1_w")->data, *b1 = dcb_op_get_weight(op, "gen1_b")->data;
    const float *w2 = dcb_op_get_weight(op, "gen2_w")->data, *b2 = dcb_op_get_weight(op, "gen2_b")->data;
    dref r;
    r.Ho = out_size(H, kh, s->stride, s->pad, s->dil);
    r.Wo = out_size(W, kw, s->stride, s->pad, s->dil);
    const size_t P = (size_t)r.Ho * r.Wo, kern = (size_t)cout * cin * kh * kw;
    r.F = calloc((size_t)N * m * P, sizeof(double));
    r.mask = calloc((size_t)N * P, sizeof(int));
    r.cand = calloc((size_t)N * P, sizeof(unsigned));
    r.K = calloc((size_t)N * m * kern, sizeof(double));
    r.yall = calloc((size_t)N * m * cout * P, sizeof(double));
    double *pool = calloc((size_t)cin * kh * kw, sizeof(double));
    double *S = calloc((size_t)m * m * kh * kw, sizeof(double));
    for (int n = 0; n < N; n++) {
        const float *xn = x->data + (size_t)n * cin * H * W;
        /* conv of x[n] with a (cin, kh, kw) kernel at output pixel (i, j) */
#define CONV_AT(wfun, i, j, acc)                                                   \
    for (int c = 0; c < cin; c++)                                                  \
        for (int u = 0; u < kh; u++)                                               \
            for (int v = 0; v < kw; v++) {                                         \
                const int ii = (i) * s->stride + u * s->dil - s->pad;              \
                const int jj = (j) * s->stride + v * s->dil - s->pad;              \
                if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;              \
                acc += (wfun) * (double)xn[((size_t)c * H + ii) * W + jj];         \
            }
        /* guide conv and the mask, first maximum on ties */
        for (int t = 0; t < m; t++)
            for (int i = 0; i < r.Ho; i++)
                for (int j = 0; j < r.Wo; j++) {
                    double acc = gb[t];
                    CONV_AT(gw[(((size_t)t * cin + c) * kh + u) * kw + v], i, j, acc)
                    r.F[((size_t)n * m + t) * P + (size_t)i * r.Wo + j] = acc;
                }
        for (size_t p = 0; p < P; p++) {
            int best = 0;
            for (int t = 1; t < m; t++)
                if (r.F[((size_t)n * m + t) * P + p] > r.F[((size_t)n * m + best) * P + p]) best = t;
            r.mask[n * P + p] = best;
            const double fb = r.F[((size_t)n * m + best) * P + p];
            unsigned c = 0;
            for (int t = 0; t < m; t++)
                if (r.F[((size_t)n * m + t) * P + p] >= fb - TIE_TOL * fmax(1, fabs(fb))) c |= 1u << t;
            r.cand[n * P + p] = c;
        }
        /* adaptive average pool, PyTorch bins [floor(i*H/kh), ceil((i+1)*H/kh)) */
        for (int c = 0; c < cin; c++)
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++) {
                    const int h0 = (int)floor((double)i * H / kh), h1 = (int)ceil((double)(i + 1) * H / kh);
                    const int w0 = (int)floor((double)j * W / kw), w1c = (int)ceil((double)(j + 1) * W / kw);
                    double acc = 0;
                    for (int ii = h0; ii < h1; ii++)
                        for (int jj = w0; jj < w1c; jj++) acc += xn[((size_t)c * H + ii) * W + jj];
                    pool[((size_t)c * kh + i) * kw + j] = acc / ((h1 - h0) * (w1c - w0));
                }
        /* S = sigmoid(gen1 per pooled position): (m*m, kh, kw) */
        for (int q = 0; q < m * m; q++)
            for (int uv = 0; uv < kh * kw; uv++) {
                double acc = b1[q];
                for (int c = 0; c < cin; c++) acc += (double)w1[(size_t)q * cin + c] * pool[(size_t)c * kh * kw + uv];
                S[(size_t)q * kh * kw + uv] = sigm(acc);
            }
        /* K = grouped 1x1 (groups m): output row rr of group t reads S[t*m .. t*m+m) */
        for (int t = 0; t < m; t++)
            for (size_t rr = 0; rr < (size_t)cout * cin; rr++) {
                const size_t row = (size_t)t * cout * cin + rr;
                for (int uv = 0; uv < kh * kw; uv++) {
                    double acc = b2[row];
                    for (int q = 0; q < m; q++)
                        acc += (double)w2[row * m + q] * S[((size_t)t * m + q) * kh * kw + uv];
                    r.K[((size_t)n * m + t) * kern + rr * kh * kw + uv] = acc;
                }
            }
        /* every region's conv output */
        for (int t = 0; t < m; t++) {
            const double *Kt = r.K + ((size_t)n * m + t) * kern;
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < r.Ho; i++)
                    for (int j = 0; j < r.Wo; j++) {
                        double acc = 0;
                        CONV_AT(Kt[(((size_t)o * cin + c) * kh + u) * kw + v], i, j, acc)
                        r.yall[(((size_t)n * m + t) * cout + o) * P + (size_t)i * r.Wo + j] = acc;
                    }
        }
#undef CONV_AT
    }
    free(pool);
    free(S);
    return r;
}

static void dref_free(dref *r) {
    free(r->F);
    free(r->mask);
    free(r->cand);
    free(r->K);
    free(r->yall);
}

/* Relative error of y against the reference: at an unambiguous pixel the
 * region is the reference's argmax; at an ambiguous one (or, with strict,
 * never) the best of the near-tied regions. *namb counts ambiguous pixels. */
static double compare(const dshape *s, const dref *r, const dcb_tensor *y, int strict, int *namb) {
    const size_t P = (size_t)r->Ho * r->Wo;
    double mx = 1, err = 0;
    for (int n = 0; n < s->N; n++)
        for (size_t p = 0; p < P; p++)
            for (int o = 0; o < s->cout; o++)
                mx = fmax(mx, fabs(r->yall[(((size_t)n * s->m + r->mask[n * P + p]) * s->cout + o) * P + p]));
    for (int n = 0; n < s->N; n++)
        for (size_t p = 0; p < P; p++) {
            unsigned c = strict ? 1u << r->mask[n * P + p] : r->cand[n * P + p];
            if (namb && (c & (c - 1))) (*namb)++;
            double best = INFINITY;
            for (int t = 0; t < s->m; t++) {
                if (!(c >> t & 1u)) continue;
                double e = 0;
                for (int o = 0; o < s->cout; o++)
                    e = fmax(e, fabs(y->data[((size_t)n * s->cout + o) * P + p] -
                                     r->yall[(((size_t)n * s->m + t) * s->cout + o) * P + p]));
                best = fmin(best, e);
            }
            err = fmax(err, best);
        }
    return err / mx;
}

/* ---------------------------------------------------------- random shapes */
static dshape random_shape(uint64_t *r, int i) {
    static const int ks[] = {1, 2, 3, 5};
    dshape s;
    for (;;) {
        s.N = tu_rand(r, 1, 4);
        s.cin = tu_rand(r, 1, i % 5 == 1 ? 32 : 9); /* some wider layers */
        s.cout = tu_rand(r, 1, i % 5 == 1 ? 24 : 9);
        s.kh = s.kw = ks[tu_rand(r, 0, 3)];
        if (tu_rand(r, 0, 3) == 0) s.kw = ks[tu_rand(r, 0, 3)];
        s.stride = tu_rand(r, 1, 2);
        s.dil = tu_rand(r, 0, 3) == 0 ? 2 : 1;
        s.pad = tu_rand(r, 0, 2);
        s.H = tu_rand(r, 1, 13);
        s.W = tu_rand(r, 1, 13);
        s.m = tu_rand(r, 1, 8);
        if (tu_kernel_fits(s.H, s.W, s.kh, s.kw, s.pad, s.dil)) break;
    }
    return s;
}

static void test_impls_against_reference(void **state) {
    (void)state;
    const int nshapes = tu_quick() ? 40 : 250;
    uint64_t r = 77;
    const int nimpl = dcb_impl_count("drconv");
    assert_int_equal(nimpl, 3);
    double worst[3] = {0}, tol[3] = {0};
    int amb = 0;
    long pixels = 0;
    for (int i = 0; i < nshapes; i++) {
        dshape s = random_shape(&r, i);
        char desc[256];
        dshape_str(&s, desc, sizeof desc);
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 900 + (uint64_t)i);
        dref rf = {0};
        int have_ref = 0;
        for (int k = 0; k < nimpl; k++) {
            const char *impl = dcb_impl_name("drconv", k);
            dcb_op *op = NULL;
            if (make_op(&s, impl, 1 + (i % 2), 1, &op) != DCB_OK) fail_msg("%s on %s: %s", impl, desc, dcb_last_error());
            assert_ok(dcb_op_init_weights(op, 300 + (uint64_t)i));
            if (!have_ref) {
                rf = reference(&s, op, x);
                have_ref = 1;
            }
            dcb_tensor *y = NULL;
            if (dcb_op_forward(op, x, &y) != DCB_OK) fail_msg("%s on %s: %s", impl, desc, dcb_last_error());
            int namb = 0;
            const double err = compare(&s, &rf, y, 0, &namb);
            tol[k] = dcb_op_tolerance(op);
            if (!(err <= tol[k]))
                fail_msg("%s on %s: relative error %.3g above its tolerance %.3g", impl, desc, err, tol[k]);
            if (err > worst[k]) worst[k] = err;
            if (k == 0) {
                amb += namb;
                pixels += (long)s.N * rf.Ho * rf.Wo;
            }
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dref_free(&rf);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < nimpl; k++)
        print_message("drconv/%-14s %3d shapes, max rel err %.3g (tolerance %.3g)\n", dcb_impl_name("drconv", k),
                      nshapes, worst[k], tol[k]);
    print_message("drconv: %d of %ld pixels had a near-tie (within %g) in the guide\n", amb, pixels, TIE_TOL);
    assert_true(amb * 100L < pixels); /* the tolerance hides almost nothing */
}

/* guide_w = 0 makes F[t] = guide_b[t] exactly at every pixel. */
static void test_ties(void **state) {
    (void)state;
    dshape s = {2, 5, 4, 9, 7, 3, 3, 2, 1, 1, 4};
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 4);
    static const float biases[2][4] = {{0.25f, 3.0f, 3.0f, 1.0f}, {0.5f, 0.5f, 0.5f, 0.5f}};
    static const int want[2] = {1, 0};
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < dcb_impl_count("drconv"); k++) {
            const char *impl = dcb_impl_name("drconv", k);
            dcb_op *op = NULL;
            assert_ok(make_op(&s, impl, 1 + k % 2, 1, &op));
            assert_ok(dcb_op_init_weights(op, 8));
            dcb_tensor *gw = dcb_tensor_clone(dcb_op_get_weight(op, "guide_w"));
            memset(gw->data, 0, sizeof(float) * (size_t)gw->size);
            dcb_tensor *gb = dcb_tensor_clone(dcb_op_get_weight(op, "guide_b"));
            memcpy(gb->data, biases[c], sizeof biases[c]);
            assert_ok(dcb_op_set_weight(op, "guide_w", gw));
            assert_ok(dcb_op_set_weight(op, "guide_b", gb));
            dref rf = reference(&s, op, x);
            dcb_tensor *mask = NULL, *y = NULL;
            assert_ok(dcb_op_routing(op, x, &mask));
            for (int64_t i = 0; i < mask->size; i++) assert_true(mask->data[i] == (float)want[c]);
            for (int64_t i = 0; i < (int64_t)s.N * rf.Ho * rf.Wo; i++) assert_int_equal(rf.mask[i], want[c]);
            assert_ok(dcb_op_forward(op, x, &y));
            const double err = compare(&s, &rf, y, 1, NULL);
            if (!(err <= dcb_op_tolerance(op))) fail_msg("%s ties case %d: rel err %.3g", impl, c, err);
            dcb_tensor_free(mask);
            dcb_tensor_free(y);
            dcb_tensor_free(gw);
            dcb_tensor_free(gb);
            dref_free(&rf);
            dcb_op_destroy(op);
        }
    dcb_tensor_free(x);
}

static void test_hooks(void **state) {
    (void)state;
    dshape cases[] = {{3, 4, 3, 10, 9, 3, 3, 1, 1, 1, 8},
                      {2, 3, 5, 7, 11, 2, 3, 2, 0, 1, 3},
                      {1, 6, 2, 2, 3, 3, 3, 1, 1, 1, 2},   /* H < kh: overlapping pool bins */
                      {2, 2, 2, 13, 12, 5, 1, 2, 2, 2, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const dshape s = cases[c];
        dcb_op *op = NULL;
        assert_ok(make_op(&s, "region_sorted", 1, 1, &op));
        assert_ok(dcb_op_init_weights(op, 60 + c));
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 6 + c);
        dref rf = reference(&s, op, x);
        dcb_tensor *k = NULL, *mk = NULL;
        assert_ok(dcb_op_kernels(op, x, &k));
        assert_ok(dcb_op_routing(op, x, &mk));
        const int64_t ks[6] = {s.N, s.m, s.cout, s.cin, s.kh, s.kw};
        const int64_t ms[3] = {s.N, rf.Ho, rf.Wo};
        assert_true(dcb_shape_equal(k, 6, ks));
        assert_true(dcb_shape_equal(mk, 3, ms));
        double mx = 1, e = 0;
        for (int64_t i = 0; i < k->size; i++) mx = fmax(mx, fabs(rf.K[i]));
        for (int64_t i = 0; i < k->size; i++) e = fmax(e, fabs(k->data[i] - rf.K[i]));
        print_message("drconv hooks case %zu: kernels rel err %.3g\n", c, e / mx);
        assert_true(e / mx <= 1e-6);
        int differ = 0;
        for (int64_t i = 0; i < mk->size; i++) {
            const int t = (int)mk->data[i];
            assert_true(mk->data[i] == (float)t && t >= 0 && t < s.m);
            assert_true(rf.cand[i] >> t & 1u); /* the library's region is (near-)maximal */
            differ += t != rf.mask[i];
        }
        assert_true(differ * 50 <= mk->size);
        /* a region bank of at least two kernels has similarity statistics */
        if (s.m >= 2) {
            dcb_tensor *one = dcb_tensor_new(5, ks + 1);
            memcpy(one->data, k->data, sizeof(float) * (size_t)one->size);
            dcb_similarity_stats st;
            assert_ok(dcb_similarity(one, &st));
            assert_true(st.whole.pairs == (int64_t)s.m * (s.m - 1) / 2);
            dcb_tensor_free(one);
        }
        dcb_tensor_free(k);
        dcb_tensor_free(mk);
        dref_free(&rf);
        dcb_tensor_free(x);
        dcb_op_destroy(op);
    }
}

static void test_groups_unsupported_and_invalid(void **state) {
    (void)state;
    const dshape base = {1, 4, 4, 8, 8, 3, 3, 1, 1, 1, 4};
    for (int k = 0; k < dcb_impl_count("drconv"); k++) {
        dcb_op *op = (dcb_op *)0x1;
        dcb_status st = make_op(&base, dcb_impl_name("drconv", k), 1, 2, &op);
        assert_status_msg(st, DCB_UNSUPPORTED_PARAM, "drconv: groups=2 is not supported (regions need groups = 1)");
        assert_true(dcb_status_is_unsupported(st));
        assert_null(op);
    }
    dcb_op *op = NULL;
    assert_status_msg(make_op(&base, "gather", 1, 3, &op), DCB_INVALID_PARAM, "groups=3 does not divide cin=4");
    assert_status_msg(make_op(&base, "gather", 1, 0, &op), DCB_INVALID_PARAM, "groups=0");
    dshape s = base;
    s.m = 0;
    assert_status_msg(make_op(&s, "gather", 1, 1, &op), DCB_INVALID_PARAM, "regions=0");
    s = base;
    s.pad = -1;
    assert_status_msg(make_op(&s, "gather", 1, 1, &op), DCB_INVALID_PARAM, "pad=-1");
    s = base;
    s.dil = 0;
    assert_status_msg(make_op(&s, "all_regions", 1, 1, &op), DCB_INVALID_PARAM, "dilation=0");
    s = base;
    s.cout = 0;
    assert_status_msg(make_op(&s, "all_regions", 1, 1, &op), DCB_INVALID_PARAM, "cout=0");
    dcb_hparam nok[] = {TU_HP("cin", 4), TU_HP("cout", 4)};
    assert_status_msg(dcb_op_create("drconv", NULL, nok, 2, &op), DCB_INVALID_PARAM, "kernel size");
    dcb_hparam frac[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("regions", 2.5)};
    assert_status_msg(dcb_op_create("drconv", NULL, frac, 4, &op), DCB_INVALID_PARAM, "regions=2.5");
    assert_status_msg(dcb_op_create("drconv", "sorted", frac, 3, &op), DCB_UNKNOWN_IMPL, "region_sorted");
    /* defaults: regions 8, groups 1 */
    assert_ok(dcb_op_create("drconv", NULL, frac, 3, &op));
    assert_true(dcb_op_get_param(op, "regions") == 8 && dcb_op_get_param(op, "groups") == 1);
    static const char *const names[] = {"guide_w", "guide_b", "gen1_w", "gen1_b", "gen2_w", "gen2_b"};
    const int64_t first[6] = {8, 8, 64, 64, 8 * 16, 8 * 16}, second[6] = {4, 0, 4, 0, 8, 0};
    assert_int_equal(dcb_op_weight_count(op), 6);
    for (int i = 0; i < 6; i++) {
        int64_t sh[DCB_MAX_DIMS];
        assert_string_equal(dcb_op_weight_name(op, i), names[i]);
        const int nd = dcb_op_weight_shape(op, i, sh);
        assert_true(sh[0] == first[i] && (nd == 1 || sh[1] == second[i]));
    }
    /* an input of the wrong shape */
    tu_expect_plan_fails(op, 4, (int64_t[]){1, 5, 8, 8}, DCB_INVALID_SHAPE, "5 channels, cin=4");
    dcb_op_destroy(op);
}

static void test_lifecycle_and_threads(void **state) {
    (void)state;
    dshape s = {3, 12, 10, 17, 15, 3, 3, 1, 1, 1, 5};
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 2);
    dcb_tensor *first = NULL;
    for (int k = 0; k < dcb_impl_count("drconv"); k++) {
        const char *impl = dcb_impl_name("drconv", k);
        dcb_op *o1 = NULL, *o2 = NULL;
        assert_ok(make_op(&s, impl, 1, 1, &o1));
        assert_ok(make_op(&s, impl, 2, 1, &o2));
        assert_ok(dcb_op_init_weights(o1, 3));
        assert_ok(dcb_op_init_weights(o2, 3));
        void *ws;
        size_t wsb = 0;
        dcb_tensor *y1 = tu_plan(o1, x, &ws, &wsb), *y2 = NULL;
        dcb_profile prof = {{0}};
        assert_ok(dcb_op_run(o1, x, y1, ws, &prof));
        assert_true(prof.seconds[DCB_PHASE_ROUTING] > 0 && prof.seconds[DCB_PHASE_KERNEL_GEN] > 0 &&
                    prof.seconds[DCB_PHASE_GEMM] > 0 && prof.seconds[DCB_PHASE_TRANSFORM] > 0);
        assert_status_msg(dcb_op_run(o1, x, y1, NULL, NULL), DCB_INVALID_ARGUMENT, "workspace");
        assert_ok(dcb_op_forward(o2, x, &y2));
        assert_true(dcb_max_rel_err(y2, y1, NULL) <= 1e-6);
        if (!first)
            first = dcb_tensor_clone(y1);
        else
            assert_true(dcb_max_rel_err(y1, first, NULL) <= dcb_op_tolerance(o1)); /* as the first (the oracle) */
        dcb_tensor_free(y1);
        dcb_tensor_free(y2);
        dcb_aligned_free(ws);
        dcb_op_destroy(o1);
        dcb_op_destroy(o2);
    }
    dcb_tensor_free(first);
    dcb_tensor_free(x);
}

static void test_costs(void **state) {
    (void)state;
    /* cin 16, cout 32, 3x3, pad 1 at 10x10 (P' = 100), m = 4, N = 2:
     * conv 32*144*100 = 460800; guide 4*144*100 + 400 = 58000;
     * gen1 (16*16 + 16)*9 = 2448; gen2 4*512*9*4 + 4*512*9 = 92160. */
    dshape s = {2, 16, 32, 10, 10, 3, 3, 1, 1, 1, 4};
    int64_t x[4] = {2, 16, 10, 10};
    const double macs = 2.0 * (460800 + 58000 + 2448 + 92160);
    for (int k = 0; k < dcb_impl_count("drconv"); k++) {
        const char *impl = dcb_impl_name("drconv", k);
        dcb_op *op = NULL;
        dcb_cost c;
        assert_ok(make_op(&s, impl, 1, 1, &op));
        assert_ok(dcb_op_cost(op, 4, x, &c));
        assert_true(c.macs == macs);
        assert_true(c.macs == 1226816.0);
        assert_true(c.dynamic_macs == 305216.0);
        assert_true(c.params == 11092.0);
        assert_true(c.acts == 44640.0);
        /* pool adds 16*(4+4+4)^2 = 2304, sigmoids 16*9 = 144, compares 3*100 */
        assert_true(c.flops == 2 * 1226816.0 + 2 * (2304 + 144 + 300));
        assert_true(c.bytes == 4.0 * (2 * 1600 + 11092 + 2 * 3200));
        if (strcmp(impl, "all_regions") == 0)
            assert_true(c.executed_macs == 1226816.0 + 3 * 2 * 460800.0);
        else
            assert_true(c.executed_macs == c.macs);
        dcb_op_destroy(op);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impls_against_reference),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_groups_unsupported_and_invalid),
        cmocka_unit_test(test_lifecycle_and_threads),
        cmocka_unit_test(test_costs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
