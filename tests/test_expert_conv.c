/* se, condconv and dyconv: every implementation against an independent naive
 * reference written from OPERATORS.md (plain loops, double accumulation, no
 * library kernels), the kernels / routing hooks, corner cases of the routers,
 * costs against hand-computed numbers, and the invalid-hyperparameter paths. */
#include "testutil.h"

#include <math.h>

#include "dcb_internal.h" /* dcb_engines: every engine must have both strategies */

/* Errors are max|y - ref| / max(1, max|ref|), inputs N(0,1), PyTorch-default
 * weights, against each implementation's tolerance (dcb_op_tolerance). The
 * kernels are mixed in float (one sgemm) before the engine runs, so even the
 * naive engine sees float-rounded kernels. Measured maxima over the sweep
 * below (seeds fixed, printed by the test): naive <= 2.8e-7, im2col <= 6.5e-7,
 * winograd_f2 <= 3.2e-7, winograd (F4) <= 5.7e-6, for either strategy. */
typedef struct shape {
    int N, cin, cout, H, W, kh, kw, stride, pad, dil, groups, bias, E, hidden; /* hidden 0: default */
    double tau;
} shape;

static void shape_str(const shape *s, char *buf, size_t n) {
    snprintf(buf, n,
             "N=%d cin=%d cout=%d H=%d W=%d k=%dx%d stride=%d pad=%d dil=%d groups=%d bias=%d E=%d hidden=%d tau=%g",
             s->N, s->cin, s->cout, s->H, s->W, s->kh, s->kw, s->stride, s->pad, s->dil, s->groups, s->bias, s->E,
             s->hidden, s->tau);
}

static int ref_hidden(const shape *s) {
    if (s->hidden) return s->hidden;
    return s->cin / 4 > 1 ? s->cin / 4 : 1;
}

static dcb_status make_op(const char *opname, const shape *s, const char *impl, int threads, dcb_op **op) {
    int dy = strcmp(opname, "dyconv") == 0;
    dcb_hparam hp[16] = {TU_HP("cin", s->cin),      TU_HP("cout", s->cout),    TU_HP("kh", s->kh),
                         TU_HP("kw", s->kw),        TU_HP("stride", s->stride), TU_HP("pad", s->pad),
                         TU_HP("dilation", s->dil), TU_HP("groups", s->groups), TU_HP("bias", s->bias),
                         TU_HP("threads", threads), TU_HP(dy ? "kernels" : "experts", s->E)};
    int n = 11;
    if (dy) {
        hp[n++] = TU_HP("temperature", s->tau);
        if (s->hidden) hp[n++] = TU_HP("hidden", s->hidden);
    }
    return dcb_op_create(opname, impl, hp, n, op);
}

/* ------------------------------------------------------------ reference */
static const float *W_(const dcb_op *op, const char *n) {
    const dcb_tensor *t = dcb_op_get_weight(op, n);
    return t ? t->data : NULL;
}

/* r (N, E) in double, straight from OPERATORS.md. */
static void ref_route(int dy, const dcb_op *op, const shape *s, const dcb_tensor *x, double *r) {
    const int HW = s->H * s->W, hid = ref_hidden(s);
    double *g = calloc((size_t)s->cin, sizeof *g), *t = calloc((size_t)hid, sizeof *t);
    for (int n = 0; n < s->N; n++) {
        for (int c = 0; c < s->cin; c++) {
            double a = 0;
            for (int i = 0; i < HW; i++) a += x->data[((size_t)n * s->cin + c) * HW + i];
            g[c] = a / HW;
        }
        double *rn = r + (size_t)n * s->E;
        if (!dy) {
            const float *rw = W_(op, "route_w"), *rb = W_(op, "route_b");
            for (int e = 0; e < s->E; e++) {
                double a = rb[e];
                for (int c = 0; c < s->cin; c++) a += (double)rw[(size_t)e * s->cin + c] * g[c];
                rn[e] = 1.0 / (1.0 + exp(-a));
            }
        } else {
            const float *w1 = W_(op, "fc1_w"), *b1 = W_(op, "fc1_b"), *w2 = W_(op, "fc2_w"), *b2 = W_(op, "fc2_b");
            for (int j = 0; j < hid; j++) {
                double a = b1[j];
                for (int c = 0; c < s->cin; c++) a += (double)w1[(size_t)j * s->cin + c] * g[c];
                t[j] = a > 0 ? a : 0;
            }
            double mx = -INFINITY, sum = 0;
            for (int k = 0; k < s->E; k++) {
                double a = b2[k];
                for (int j = 0; j < hid; j++) a += (double)w2[(size_t)k * hid + j] * t[j];
                rn[k] = a / s->tau;
                if (rn[k] > mx) mx = rn[k];
            }
            for (int k = 0; k < s->E; k++) sum += (rn[k] = exp(rn[k] - mx));
            for (int k = 0; k < s->E; k++) rn[k] /= sum;
        }
    }
    free(g);
    free(t);
}

/* y, and optionally the mixed kernels (N, cout, cin/g, kh, kw) and r. */
static dcb_tensor *ref_forward(int dy, const dcb_op *op, const shape *s, const dcb_tensor *x, dcb_tensor **kern,
                               dcb_tensor **rout) {
    const int cig = s->cin / s->groups, cog = s->cout / s->groups;
    const size_t P = (size_t)s->cout * cig * s->kh * s->kw;
    const int Ho = (s->H + 2 * s->pad - s->dil * (s->kh - 1) - 1) / s->stride + 1;
    const int Wo = (s->W + 2 * s->pad - s->dil * (s->kw - 1) - 1) / s->stride + 1;
    double *r = calloc((size_t)s->N * s->E, sizeof *r), *Wn = calloc(P, sizeof *Wn),
           *bn = calloc((size_t)s->cout, sizeof *bn);
    ref_route(dy, op, s, x, r);
    dcb_tensor *y = dcb_tensor_new4(s->N, s->cout, Ho, Wo);
    if (kern) *kern = dcb_tensor_new(5, (int64_t[]){s->N, s->cout, cig, s->kh, s->kw});
    if (rout) *rout = dcb_tensor_new(2, (int64_t[]){s->N, s->E});
    const float *w = W_(op, "weight"), *b = W_(op, "bias");
    for (int n = 0; n < s->N; n++) {
        for (size_t f = 0; f < P; f++) {
            double a = 0;
            for (int e = 0; e < s->E; e++) a += r[(size_t)n * s->E + e] * w[(size_t)e * P + f];
            Wn[f] = a;
            if (kern) (*kern)->data[(size_t)n * P + f] = (float)a;
        }
        for (int o = 0; o < s->cout; o++) {
            double a = 0;
            if (s->bias)
                for (int e = 0; e < s->E; e++) a += r[(size_t)n * s->E + e] * b[(size_t)e * s->cout + o];
            bn[o] = a;
        }
        if (rout)
            for (int e = 0; e < s->E; e++) (*rout)->data[(size_t)n * s->E + e] = (float)r[(size_t)n * s->E + e];
        for (int o = 0; o < s->cout; o++) {
            const int g = o / cog;
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    double a = bn[o];
                    for (int c = 0; c < cig; c++)
                        for (int u = 0; u < s->kh; u++)
                            for (int v = 0; v < s->kw; v++) {
                                const int yy = i * s->stride + u * s->dil - s->pad;
                                const int xx = j * s->stride + v * s->dil - s->pad;
                                if (yy < 0 || yy >= s->H || xx < 0 || xx >= s->W) continue;
                                a += Wn[(((size_t)o * cig + c) * s->kh + u) * s->kw + v] *
                                     x->data[(((size_t)n * s->cin + g * cig + c) * s->H + yy) * s->W + xx];
                            }
                    y->data[(((size_t)n * s->cout + o) * Ho + i) * Wo + j] = (float)a;
                }
        }
    }
    free(r);
    free(Wn);
    free(bn);
    return y;
}

/* ------------------------------------------------------ random shapes */
static shape random_shape(uint64_t *r, int i, int dy) {
    static const int ks[] = {1, 3, 5};
    static const double taus[] = {1, 0.5, 30, 4};
    shape s;
    for (;;) {
        memset(&s, 0, sizeof s);
        s.N = tu_rand(r, 1, 4);
        const int kind = i % 5;
        s.kh = s.kw = ks[tu_rand(r, 0, 2)];
        if (tu_rand(r, 0, 5) == 0) s.kw = ks[tu_rand(r, 0, 2)];
        s.stride = tu_rand(r, 1, 2);
        s.dil = tu_rand(r, 0, 3) == 0 ? 2 : 1;
        s.pad = tu_rand(r, 0, 2);
        if (kind <= 1) { /* the Winograd domain */
            s.kh = s.kw = 3;
            s.stride = s.dil = 1;
        }
        int g = tu_rand(r, 1, 3), cig = tu_rand(r, 1, 6), cog = tu_rand(r, 1, 6);
        if (kind == 2) { /* depthwise */
            g = tu_rand(r, 1, 12);
            cig = 1;
            cog = tu_rand(r, 1, 2);
        } else if (kind == 3) {
            g = 1;
            cig = tu_rand(r, 1, 20);
            cog = tu_rand(r, 1, 20);
        }
        s.groups = g;
        s.cin = g * cig;
        s.cout = g * cog;
        s.H = tu_rand(r, 1, 15);
        s.W = tu_rand(r, 1, 15);
        s.bias = tu_rand(r, 0, 1);
        s.E = i % 7 == 0 ? 1 : tu_rand(r, 1, 16);
        s.tau = dy ? taus[tu_rand(r, 0, 3)] : 1;
        s.hidden = dy && tu_rand(r, 0, 2) == 0 ? tu_rand(r, 1, 9) : 0;
        if (tu_kernel_fits(s.H, s.W, s.kh, s.kw, s.pad, s.dil)) break;
    }
    return s;
}

static int winograd_domain(const shape *s) { return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->dil == 1; }

/* Routing weights strong enough that the experts really differ per sample:
 * default init gives routers with logits near their bias. */
static void boost_router(dcb_op *op, int dy) {
    const char *name = dy ? "fc2_w" : "route_w";
    dcb_tensor *t = dcb_tensor_clone(dcb_op_get_weight(op, name));
    for (int64_t i = 0; i < t->size; i++) t->data[i] *= 8;
    assert_ok(dcb_op_set_weight(op, name, t));
    dcb_tensor_free(t);
}

static void sweep(const char *opname) {
    const int dy = strcmp(opname, "dyconv") == 0;
    const int nshapes = tu_quick() ? 40 : 300;
    uint64_t r = dy ? 77 : 2026;
    const int nimpl = dcb_impl_count(opname);
    assert_int_equal(nimpl, 2 * DCB_ENGINE_COUNT);
    double worst[16] = {0}, tol[16] = {0};
    int checked[16] = {0}, unsupported[16] = {0};
    for (int i = 0; i < nshapes; i++) {
        shape s = random_shape(&r, i, dy);
        char desc[300];
        shape_str(&s, desc, sizeof desc);
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 500 + (uint64_t)i);
        dcb_tensor *ref = NULL, *kref = NULL, *rref = NULL;
        for (int k = 0; k < nimpl; k++) {
            const char *impl = dcb_impl_name(opname, k);
            dcb_op *op = NULL;
            dcb_status st = make_op(opname, &s, impl, 1 + (i + k) % 2, &op);
            if (strstr(impl, "/winograd") && !winograd_domain(&s)) {
                if (st != DCB_UNSUPPORTED_PARAM)
                    fail_msg("%s %s on %s: expected unsupported_param, got %s", opname, impl, desc, dcb_status_name(st));
                assert_null(op);
                unsupported[k]++;
                continue;
            }
            if (st != DCB_OK) fail_msg("%s %s create on %s: %s", opname, impl, desc, dcb_last_error());
            assert_ok(dcb_op_init_weights(op, 31 + (uint64_t)i));
            boost_router(op, dy);
            if (!ref) {
                ref = ref_forward(dy, op, &s, x, &kref, &rref);
                /* the hooks, once per shape */
                dcb_tensor *kk = NULL, *rr = NULL;
                assert_ok(dcb_op_kernels(op, x, &kk));
                assert_ok(dcb_op_routing(op, x, &rr));
                if (!(dcb_max_rel_err(kk, kref, NULL) <= 2e-6))
                    fail_msg("%s kernels on %s: rel err %.3g", opname, desc, dcb_max_rel_err(kk, kref, NULL));
                if (!(dcb_max_rel_err(rr, rref, NULL) <= 2e-6))
                    fail_msg("%s routing on %s: rel err %.3g", opname, desc, dcb_max_rel_err(rr, rref, NULL));
                dcb_tensor_free(kk);
                dcb_tensor_free(rr);
            }
            dcb_tensor *y = NULL;
            st = dcb_op_forward(op, x, &y);
            if (st != DCB_OK) fail_msg("%s %s on %s: %s", opname, impl, desc, dcb_last_error());
            const double err = tu_err_within_tol(op, y, ref, desc);
            tol[k] = dcb_op_tolerance(op);
            if (err > worst[k]) worst[k] = err;
            checked[k]++;
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(kref);
        dcb_tensor_free(rref);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < nimpl; k++) {
        const char *impl = dcb_impl_name(opname, k);
        print_message("%s/%-28s %3d checked, %3d unsupported, max rel err %.3g (tolerance %.3g)\n", opname, impl,
                      checked[k], unsupported[k], worst[k], tol[k]);
        assert_true(checked[k] >= nshapes / 3);
        if (strstr(impl, "/winograd")) assert_true(unsupported[k] > 0);
    }
}

static void test_condconv_sweep(void **state) {
    (void)state;
    sweep("condconv");
}

static void test_dyconv_sweep(void **state) {
    (void)state;
    sweep("dyconv");
}

static void test_registry(void **state) {
    (void)state;
    static const char *const ops[] = {"se", "condconv", "dyconv"};
    for (int o = 0; o < 3; o++) {
        int found = 0;
        for (int i = 0; i < dcb_op_count(); i++) found |= strcmp(dcb_op_name(i), ops[o]) == 0;
        if (!found) fail_msg("operator %s is not registered", ops[o]);
    }
    assert_int_equal(dcb_impl_count("se"), 1);
    assert_string_equal(dcb_impl_name("se", 0), "naive");
    for (int o = 1; o < 3; o++)
        for (int e = 0; e < DCB_ENGINE_COUNT; e++)
            for (int st = 0; st < 2; st++) {
                char want[64];
                snprintf(want, sizeof want, "%s/%s", st ? "conv_then_combine" : "combine_then_conv", dcb_engines[e]->name);
                int has = 0;
                for (int i = 0; i < dcb_impl_count(ops[o]); i++) has |= strcmp(dcb_impl_name(ops[o], i), want) == 0;
                if (!has) fail_msg("%s has no implementation '%s'", ops[o], want);
            }
}

/* ------------------------------------------------------------------ se */
static dcb_tensor *ref_se(const dcb_op *op, int C, int hid, const dcb_tensor *x, dcb_tensor **sout) {
    const int N = (int)x->shape[0], HW = (int)(x->shape[2] * x->shape[3]);
    const float *w1 = W_(op, "fc1_w"), *b1 = W_(op, "fc1_b"), *w2 = W_(op, "fc2_w"), *b2 = W_(op, "fc2_b");
    double *g = calloc((size_t)C, sizeof *g), *t = calloc((size_t)hid, sizeof *t);
    dcb_tensor *y = dcb_tensor_new(4, x->shape);
    *sout = dcb_tensor_new(2, (int64_t[]){N, C});
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            double a = 0;
            for (int i = 0; i < HW; i++) a += x->data[((size_t)n * C + c) * HW + i];
            g[c] = a / HW;
        }
        for (int j = 0; j < hid; j++) {
            double a = b1[j];
            for (int c = 0; c < C; c++) a += (double)w1[(size_t)j * C + c] * g[c];
            t[j] = a > 0 ? a : 0;
        }
        for (int c = 0; c < C; c++) {
            double a = b2[c];
            for (int j = 0; j < hid; j++) a += (double)w2[(size_t)c * hid + j] * t[j];
            const double sc = 1.0 / (1.0 + exp(-a));
            (*sout)->data[(size_t)n * C + c] = (float)sc;
            for (int i = 0; i < HW; i++) {
                const size_t k = ((size_t)n * C + c) * HW + i;
                y->data[k] = (float)(sc * x->data[k]);
            }
        }
    }
    free(g);
    free(t);
    return y;
}

static void test_se(void **state) {
    (void)state;
    static const int reds[] = {1, 2, 4, 16, 64};
    uint64_t r = 9;
    const int n = tu_quick() ? 10 : 40;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const int C = tu_rand(&r, 1, 70), red = reds[tu_rand(&r, 0, 4)], N = tu_rand(&r, 1, 4);
        const int H = tu_rand(&r, 1, 13), W = tu_rand(&r, 1, 13);
        const int hid_given = i % 3 == 0 ? tu_rand(&r, 1, 12) : 0;
        dcb_hparam hp[4] = {TU_HP("channels", C), TU_HP("reduction", red), TU_HP("threads", 1 + i % 2)};
        int nh = 3;
        if (hid_given) hp[nh++] = TU_HP("hidden", hid_given);
        dcb_op *op = NULL;
        assert_ok(dcb_op_create("se", NULL, hp, nh, &op));
        const int hid = hid_given ? hid_given : (C / red > 1 ? C / red : 1);
        assert_true(dcb_op_get_param(op, "hidden") == hid);
        int64_t ws[DCB_MAX_DIMS];
        assert_int_equal(dcb_op_weight_shape(op, 0, ws), 2);
        assert_true(ws[0] == hid && ws[1] == C);
        assert_ok(dcb_op_init_weights(op, 3 + (uint64_t)i));
        dcb_tensor *fc2 = dcb_tensor_clone(dcb_op_get_weight(op, "fc2_w"));
        for (int64_t k = 0; k < fc2->size; k++) fc2->data[k] *= 6;
        assert_ok(dcb_op_set_weight(op, "fc2_w", fc2));
        dcb_tensor_free(fc2);
        dcb_tensor *x = tu_randn4(N, C, H, W, 70 + (uint64_t)i);
        dcb_tensor *sref = NULL, *yref = ref_se(op, C, hid, x, &sref), *y = NULL, *s = NULL, *k = NULL;
        assert_ok(dcb_op_forward(op, x, &y));
        assert_ok(dcb_op_routing(op, x, &s));
        const double e = dcb_max_rel_err(y, yref, NULL);
        if (e > worst) worst = e;
        assert_true(e <= dcb_op_tolerance(op));
        assert_true(dcb_max_rel_err(s, sref, NULL) <= 2e-6);
        assert_status_msg(dcb_op_kernels(op, x, &k), DCB_UNSUPPORTED_PARAM, "se: generates no kernels");
        assert_null(k);
        dcb_tensor_free(x);
        dcb_tensor_free(y);
        dcb_tensor_free(s);
        dcb_tensor_free(yref);
        dcb_tensor_free(sref);
        dcb_op_destroy(op);
    }
    print_message("se/naive max rel err %.3g\n", worst);
}

static void test_se_invalid_and_cost(void **state) {
    (void)state;
    dcb_op *op = NULL;
    dcb_hparam none[] = {TU_HP("reduction", 4)};
    assert_status_msg(dcb_op_create("se", NULL, none, 1, &op), DCB_INVALID_PARAM, "se: channels is required");
    dcb_hparam c0[] = {TU_HP("channels", 0)};
    assert_status_msg(dcb_op_create("se", NULL, c0, 1, &op), DCB_INVALID_PARAM, "se: channels=0");
    dcb_hparam r0[] = {TU_HP("channels", 8), TU_HP("reduction", 0)};
    assert_status_msg(dcb_op_create("se", NULL, r0, 2, &op), DCB_INVALID_PARAM, "se: reduction=0");
    dcb_hparam h0[] = {TU_HP("channels", 8), TU_HP("hidden", 0)};
    assert_status_msg(dcb_op_create("se", NULL, h0, 2, &op), DCB_INVALID_PARAM, "se: hidden=0");
    dcb_hparam hf[] = {TU_HP("channels", 8), TU_HP("hidden", 2.5)};
    assert_status_msg(dcb_op_create("se", NULL, hf, 2, &op), DCB_INVALID_PARAM, "se: hidden=2.5");
    assert_null(op);
    /* hidden defaults to max(1, C / r): C = 8, r = 16 gives 1 */
    dcb_hparam ok[] = {TU_HP("channels", 8)};
    assert_ok(dcb_op_create("se", NULL, ok, 1, &op));
    assert_true(dcb_op_get_param(op, "hidden") == 1);
    int64_t bad[4] = {2, 9, 4, 4};
    dcb_cost c;
    assert_status_msg(dcb_op_cost(op, 4, bad, &c), DCB_INVALID_SHAPE, "9 channels, channels=8");
    dcb_tensor *x = dcb_tensor_new4(1, 8, 3, 3), *y = NULL;
    assert_status_msg(dcb_op_forward(op, x, &y), DCB_INVALID_WEIGHT, "weight 'fc1_w' (1, 8) is missing");
    dcb_tensor_free(x);
    dcb_op_destroy(op);
    /* cost: C = 64, r = 16 -> hidden 4; N = 2 at 7x9 */
    dcb_hparam hp[] = {TU_HP("channels", 64)};
    assert_ok(dcb_op_create("se", NULL, hp, 1, &op));
    int64_t xs[4] = {2, 64, 7, 9};
    assert_ok(dcb_op_cost(op, 4, xs, &c));
    /* per sample: fc1 4*64 + 4 = 260, fc2 64*4 + 64 = 320 */
    assert_true(c.macs == 2.0 * 580);
    assert_true(c.dynamic_macs == c.macs);
    assert_true(c.executed_macs == c.macs);
    assert_true(c.params == 580);
    assert_true(c.acts == 2.0 * (4 + 64));
    /* + gap 64*63 adds, relu 4, sigmoid 4*64, scaling 64*63 */
    assert_true(c.flops == 2 * 1160 + 2.0 * (4032 + 4 + 256 + 4032));
    assert_true(c.bytes == 4.0 * (2 * 2 * 64 * 63 + 580));
    dcb_op_destroy(op);
}

/* ------------------------------------------------------ corner cases */
static void test_dyconv_large_logits(void **state) {
    (void)state;
    shape s = {3, 6, 8, 9, 7, 3, 3, 1, 1, 1, 1, 1, 5, 0, 1.0};
    static const char *const impls[] = {"combine_then_conv/naive", "conv_then_combine/im2col",
                                        "combine_then_conv/winograd"};
    dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 5);
    for (int k = 0; k < 3; k++) {
        dcb_op *op = NULL;
        assert_ok(make_op("dyconv", &s, impls[k], 1, &op));
        assert_ok(dcb_op_init_weights(op, 8));
        dcb_tensor *b2 = dcb_tensor_clone(dcb_op_get_weight(op, "fc2_b"));
        for (int64_t i = 0; i < b2->size; i++) b2->data[i] = (float)(1e4 * (b2->data[i] + 0.1 * (double)i));
        assert_ok(dcb_op_set_weight(op, "fc2_b", b2));
        dcb_tensor_free(b2);
        dcb_tensor *y = NULL, *pi = NULL, *kref = NULL, *rref = NULL;
        dcb_tensor *ref = ref_forward(1, op, &s, x, &kref, &rref);
        assert_ok(dcb_op_forward(op, x, &y));
        assert_ok(dcb_op_routing(op, x, &pi));
        for (int64_t i = 0; i < y->size; i++) assert_true(isfinite(y->data[i]));
        for (int64_t i = 0; i < pi->size; i++) assert_true(isfinite(pi->data[i]) && pi->data[i] >= 0);
        assert_true(dcb_max_rel_err(pi, rref, NULL) <= 1e-6);
        assert_true(dcb_max_rel_err(y, ref, NULL) <= dcb_op_tolerance(op));
        dcb_tensor_free(y);
        dcb_tensor_free(pi);
        dcb_tensor_free(ref);
        dcb_tensor_free(kref);
        dcb_tensor_free(rref);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(x);
}

static void test_dyconv_temperature(void **state) {
    (void)state;
    const double taus[] = {1e4, 1e-3, 0.5, 30};
    dcb_tensor *x = tu_randn4(4, 8, 6, 6, 12);
    for (int t = 0; t < 4; t++) {
        shape s = {4, 8, 4, 6, 6, 3, 3, 1, 1, 1, 1, 0, 6, 0, taus[t]};
        dcb_op *op = NULL;
        assert_ok(make_op("dyconv", &s, "conv_then_combine/naive", 1, &op));
        assert_true(dcb_op_get_param(op, "temperature") == taus[t]);
        assert_true(dcb_op_get_param(op, "hidden") == 2);
        assert_ok(dcb_op_init_weights(op, 4));
        /* distinct logits, 1 apart plus the (small) input-dependent part */
        dcb_tensor *b2 = dcb_tensor_clone(dcb_op_get_weight(op, "fc2_b"));
        for (int64_t i = 0; i < b2->size; i++) b2->data[i] = (float)i;
        assert_ok(dcb_op_set_weight(op, "fc2_b", b2));
        dcb_tensor_free(b2);
        dcb_tensor *pi = NULL, *y = NULL, *rref = NULL;
        assert_ok(dcb_op_routing(op, x, &pi));
        for (int n = 0; n < 4; n++) {
            double mx = 0, sum = 0;
            for (int k = 0; k < 6; k++) {
                const double v = pi->data[n * 6 + k];
                sum += v;
                if (v > mx) mx = v;
                if (t == 0) assert_true(fabs(v - 1.0 / 6) < 1e-3);
            }
            assert_true(fabs(sum - 1) < 1e-5);
            if (t == 1) assert_true(mx > 0.999);
        }
        dcb_tensor *ref = ref_forward(1, op, &s, x, NULL, &rref);
        assert_true(dcb_max_rel_err(pi, rref, NULL) <= 1e-6);
        assert_ok(dcb_op_forward(op, x, &y));
        assert_true(dcb_max_rel_err(y, ref, NULL) <= dcb_op_tolerance(op));
        dcb_tensor_free(pi);
        dcb_tensor_free(y);
        dcb_tensor_free(ref);
        dcb_tensor_free(rref);
        dcb_op_destroy(op);
    }
    dcb_tensor_free(x);
}

/* CondConv with one expert is a conv2d whose kernel (and bias) is scaled by
 * sigmoid(route), per sample. */
static void test_condconv_one_expert_is_conv2d(void **state) {
    (void)state;
    shape s = {2, 6, 10, 11, 9, 3, 3, 2, 1, 1, 2, 1, 1, 0, 1};
    for (int k = 0; k < dcb_impl_count("condconv"); k++) {
        const char *impl = dcb_impl_name("condconv", k);
        if (strstr(impl, "/winograd")) continue; /* stride 2 */
        dcb_op *op = NULL;
        assert_ok(make_op("condconv", &s, impl, 1, &op));
        assert_ok(dcb_op_init_weights(op, 21));
        dcb_tensor *x = tu_randn4(2, 6, 11, 9, 2), *y = NULL, *r = NULL;
        assert_ok(dcb_op_forward(op, x, &y));
        assert_ok(dcb_op_routing(op, x, &r));
        const size_t xs = 6 * 11 * 9, ys = (size_t)(y->size / 2);
        for (int n = 0; n < 2; n++) {
            /* r from plain arithmetic on the weights */
            const float *rw = W_(op, "route_w");
            double a = W_(op, "route_b")[0];
            for (int c = 0; c < 6; c++) {
                double g = 0;
                for (int i = 0; i < 99; i++) g += x->data[n * xs + (size_t)c * 99 + i];
                a += rw[c] * g / 99;
            }
            const double rn = 1 / (1 + exp(-a));
            assert_true(fabs(r->data[n] - rn) < 1e-6);
            dcb_hparam hp[] = {TU_HP("cin", 6),    TU_HP("cout", 10),  TU_HP("k", 3),
                               TU_HP("stride", 2), TU_HP("pad", 1),    TU_HP("groups", 2), TU_HP("bias", 1)};
            dcb_op *cv = NULL;
            assert_ok(dcb_op_create("conv2d", "naive", hp, 7, &cv));
            dcb_tensor *w = dcb_tensor_new4(10, 3, 3, 3), *b = dcb_tensor_new(1, (int64_t[]){10});
            for (int64_t i = 0; i < w->size; i++) w->data[i] = (float)(rn * W_(op, "weight")[i]);
            for (int64_t i = 0; i < b->size; i++) b->data[i] = (float)(rn * W_(op, "bias")[i]);
            assert_ok(dcb_op_set_weight(cv, "weight", w));
            assert_ok(dcb_op_set_weight(cv, "bias", b));
            dcb_tensor *xn = dcb_tensor_new4(1, 6, 11, 9), *yn = NULL;
            memcpy(xn->data, x->data + n * xs, sizeof(float) * xs);
            assert_ok(dcb_op_forward(cv, xn, &yn));
            dcb_tensor *yc = dcb_tensor_new(4, yn->shape);
            memcpy(yc->data, y->data + n * ys, sizeof(float) * ys);
            if (!(dcb_max_rel_err(yc, yn, NULL) <= dcb_op_tolerance(op)))
                fail_msg("condconv %s E=1 vs conv2d: %.3g", impl, dcb_max_rel_err(yc, yn, NULL));
            dcb_tensor_free(w);
            dcb_tensor_free(b);
            dcb_tensor_free(xn);
            dcb_tensor_free(yn);
            dcb_tensor_free(yc);
            dcb_op_destroy(cv);
        }
        dcb_tensor_free(x);
        dcb_tensor_free(y);
        dcb_tensor_free(r);
        dcb_op_destroy(op);
    }
}

static void test_similarity_of_kernels(void **state) {
    (void)state;
    shape s = {4, 8, 6, 7, 7, 3, 3, 1, 1, 1, 1, 0, 4, 0, 1};
    static const char *const ops[] = {"condconv", "dyconv"};
    for (int o = 0; o < 2; o++) {
        dcb_op *op = NULL;
        assert_ok(make_op(ops[o], &s, NULL, 1, &op));
        assert_ok(dcb_op_init_weights(op, 6));
        boost_router(op, o);
        dcb_tensor *x = tu_randn4(4, 8, 7, 7, 3), *k = NULL;
        assert_ok(dcb_op_kernels(op, x, &k));
        assert_int_equal(k->ndim, 5);
        dcb_similarity_stats st;
        assert_ok(dcb_similarity(k, &st));
        assert_int_equal(st.whole.pairs, 6);
        assert_int_equal(st.per_channel.pairs, 6 * 6);
        const dcb_sim_summary *ss[2] = {&st.whole, &st.per_channel};
        for (int j = 0; j < 2; j++) {
            assert_true(ss[j]->min >= -1 - 1e-9 && ss[j]->max <= 1 + 1e-9);
            assert_true(ss[j]->min <= ss[j]->mean && ss[j]->mean <= ss[j]->max);
        }
        /* the bank itself (E kernels) is a kernel tensor too */
        assert_ok(dcb_similarity(dcb_op_get_weight(op, "weight"), &st));
        assert_int_equal(st.whole.pairs, 6);
        dcb_tensor_free(k);
        dcb_tensor_free(x);
        dcb_op_destroy(op);
    }
}

/* A ResNet-sized layer, where Winograd's error grows with the channel count. */
static void test_larger_layer(void **state) {
    (void)state;
    shape s = {2, 64, 64, 14, 14, 3, 3, 1, 1, 1, 1, 1, 8, 0, 1};
    dcb_tensor *x = tu_randn4(2, 64, 14, 14, 64);
    for (int o = 0; o < 2; o++) {
        const char *opname = o ? "dyconv" : "condconv";
        dcb_tensor *ref = NULL;
        for (int k = 0; k < dcb_impl_count(opname); k++) {
            const char *impl = dcb_impl_name(opname, k);
            dcb_op *op = NULL;
            assert_ok(make_op(opname, &s, impl, 2, &op));
            assert_ok(dcb_op_init_weights(op, 640));
            boost_router(op, o);
            if (!ref) ref = ref_forward(o, op, &s, x, NULL, NULL);
            dcb_tensor *y = NULL;
            assert_ok(dcb_op_forward(op, x, &y));
            const double err = dcb_max_rel_err(y, ref, NULL);
            print_message("%s/%-28s C=64@14x14 E=8 rel err %.3g\n", opname, impl, err);
            assert_true(err <= dcb_op_tolerance(op));
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
    }
    dcb_tensor_free(x);
}

/* The fused dynamic Winograd path (dcb_winograd_dyn_run) at its edges: more
 * output channels than one block (12), a partial last panel, more input
 * channels than one chunk of the panel layout (128), groups, tiles
 * that do not fill the last column group, batches of several samples in
 * chunks with a ragged last one, 1 to 3 threads (a sample per thread, or the
 * threads sharing one chunk when the samples are fewer); only the Winograd
 * implementations, against the reference. */
static void test_winograd_dynamic_blocks(void **state) {
    (void)state;
    static const shape shapes[] = {
        {3, 16, 100, 11, 13, 3, 3, 1, 1, 1, 1, 1, 5, 0, 1},  /* 9 blocks, the last of 4 channels */
        {2, 24, 52, 9, 7, 3, 3, 1, 0, 1, 2, 0, 4, 0, 2},    /* 2 groups of 26 outputs */
        {4, 40, 8, 6, 17, 3, 3, 1, 2, 1, 1, 1, 3, 0, 0.5},  /* pad 2, one panel and a bit */
        {3, 48, 48, 40, 37, 3, 3, 1, 1, 1, 1, 1, 4, 0, 1},  /* 1.5 MB a sample: chunks of 2 + 1 */
        {1, 20, 30, 15, 16, 3, 3, 1, 1, 1, 1, 0, 2, 0, 1},  /* fewer samples than threads */
        {2, 264, 20, 9, 10, 3, 3, 1, 1, 1, 1, 1, 3, 0, 1},  /* inputs in 3 chunks of U, the last of 8 */
        {2, 280, 26, 7, 8, 3, 3, 1, 1, 1, 2, 0, 2, 0, 1},   /* 2 groups of 140 inputs: chunks of 128 + 12 */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        dcb_tensor *x = tu_randn4(s->N, s->cin, s->H, s->W, 70 + i);
        for (int o = 0; o < 2; o++) {
            const char *opname = o ? "dyconv" : "condconv";
            dcb_tensor *ref = NULL;
            for (int k = 0; k < dcb_impl_count(opname); k++) {
                const char *impl = dcb_impl_name(opname, k);
                if (!strstr(impl, "/winograd")) continue;
                for (int threads = 1; threads <= 3; threads++) {
                    dcb_op *op = NULL;
                    assert_ok(make_op(opname, s, impl, threads, &op));
                    assert_ok(dcb_op_init_weights(op, 700 + i));
                    boost_router(op, o);
                    if (!ref) ref = ref_forward(o, op, s, x, NULL, NULL);
                    dcb_tensor *y = NULL;
                    assert_ok(dcb_op_forward(op, x, &y));
                    const double err = dcb_max_rel_err(y, ref, NULL);
                    if (!(err <= dcb_op_tolerance(op)))
                        fail_msg("%s %s shape %zu threads %d: rel err %.3g above %.3g", opname, impl, i, threads, err,
                                 dcb_op_tolerance(op));
                    dcb_tensor_free(y);
                    dcb_op_destroy(op);
                }
            }
            dcb_tensor_free(ref);
        }
        dcb_tensor_free(x);
    }
}

/* The bank path mixes every sample's kernel first when that moves less
 * (dcb_winograd_bank_run: E + 2N < N*E). It must give the bits of the fused
 * path, which mixes block by block inside the GEMM loop (dcb_winograd_dyn_run
 * with E > 0): same routing weights, F(4x4) and F(2x2), 1 and 2 threads,
 * groups and a partial panel, E = 3 (premixed from N = 4) and E = 8. */
static void test_winograd_premix_bits(void **state) {
    (void)state;
    static const struct { int N, cin, cout, H, W, groups, E, m; } cs[] = {
        {4, 12, 20, 9, 11, 1, 3, 4}, {3, 16, 52, 8, 8, 2, 8, 2}, {5, 8, 8, 13, 6, 1, 8, 4},
        {3, 144, 14, 6, 7, 1, 4, 4}, /* inputs in two chunks, 128 + 16 */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        dcb_conv2d_p p = {0};
        p.cin = cs[i].cin, p.cout = cs[i].cout, p.kh = p.kw = 3, p.stride = 1, p.pad = 1, p.dil = 1;
        p.groups = cs[i].groups;
        const int N = cs[i].N, E = cs[i].E, m = cs[i].m, H = cs[i].H, W = cs[i].W;
        assert_true(E + 2 * N < N * E);
        const size_t Pp = dcb_winograd_bank_floats(&p), K = (size_t)p.cout * (p.cin / p.groups) * 9;
        float *w = malloc(sizeof(float) * K), *bank = calloc((size_t)E * Pp + DCB_OVERREAD_FLOATS, sizeof(float));
        float *r = malloc(sizeof(float) * (size_t)N * E);
        uint64_t rs = 91 + i;
        for (int e = 0; e < E; e++) {
            for (size_t k = 0; k < K; k++) w[k] = (float)tu_rand(&rs, -1000, 1000) / 1000.0f;
            dcb_winograd_bank_pack(&p, w, bank + (size_t)e * Pp);
        }
        for (int k = 0; k < N * E; k++) r[k] = (float)tu_rand(&rs, 1, 1000) / 1000.0f;
        dcb_tensor *x = tu_randn4(N, p.cin, H, W, 50 + i);
        const size_t ys = (size_t)N * p.cout * H * W;
        float *y1 = malloc(sizeof(float) * ys), *y2 = malloc(sizeof(float) * ys);
        const dcb_wino_dyn k = {NULL, bank, r, NULL, E, 0};
        for (int threads = 1; threads <= 2; threads++) {
            void *ws1 = malloc(dcb_winograd_bank_ws(&p, m, N, H, W, E, threads));
            void *ws2 = malloc(dcb_winograd_dyn_ws(&p, m, N, H, W, threads));
            dcb_winograd_bank_run(&p, m, N, H, W, x->data, &k, y1, ws1, threads, NULL);
            dcb_winograd_dyn_run(&p, m, N, H, W, x->data, &k, y2, ws2, threads, NULL);
            if (memcmp(y1, y2, sizeof(float) * ys))
                fail_msg("case %zu threads %d: the premixed bank path differs from the fused one", i, threads);
            free(ws1);
            free(ws2);
        }
        free(y1), free(y2), free(w), free(bank), free(r);
        dcb_tensor_free(x);
    }
}

/* --------------------------------------------------- lifecycle, phases */
static void test_lifecycle_and_phases(void **state) {
    (void)state;
    shape s = {2, 8, 8, 10, 9, 3, 3, 1, 1, 1, 1, 1, 3, 0, 1};
    shape sg = s;
    sg.groups = 2;
    dcb_tensor *x = tu_randn4(2, 8, 10, 9, 1);
    for (int o = 0; o < 2; o++)
        for (int gi = 0; gi < 2; gi++)
            for (int k = 0; k < dcb_impl_count("condconv"); k++) {
                const char *opname = o ? "dyconv" : "condconv", *impl = dcb_impl_name(opname, k);
                const shape *sp = gi ? &sg : &s;
                dcb_op *op = NULL;
                assert_ok(make_op(opname, sp, impl, 2, &op));
                assert_string_equal(dcb_op_get_impl(op), impl);
                assert_ok(dcb_op_init_weights(op, 2));
                assert_ok(dcb_op_prepare(op));
                void *ws;
                size_t wsb = 0;
                dcb_tensor *y1 = tu_plan(op, x, &ws, &wsb), *y2 = TU_LIKE(y1);
                assert_true(wsb > 0);
                dcb_profile prof = {{0}};
                assert_ok(dcb_op_run(op, x, y1, ws, &prof));
                assert_ok(dcb_op_run(op, x, y2, ws, NULL));
                assert_memory_equal(y1->data, y2->data, sizeof(float) * (size_t)y1->size);
                assert_true(prof.seconds[DCB_PHASE_ROUTING] > 0);
                assert_true(prof.seconds[DCB_PHASE_GEMM] > 0);
                if (strstr(impl, "combine_then_conv"))
                    assert_true(prof.seconds[DCB_PHASE_KERNEL_GEN] > 0);
                else
                    assert_true(prof.seconds[DCB_PHASE_COMBINE] > 0);
                /* new expert weights after prepare: the next run uses them
                 * (the prepared Winograd transform of the stacked bank too) */
                dcb_tensor *w = dcb_tensor_clone(dcb_op_get_weight(op, "weight"));
                for (int64_t i = 0; i < w->size; i++) w->data[i] *= -1;
                assert_ok(dcb_op_set_weight(op, "weight", w));
                dcb_tensor *b = dcb_tensor_clone(dcb_op_get_weight(op, "bias"));
                for (int64_t i = 0; i < b->size; i++) b->data[i] *= -1;
                assert_ok(dcb_op_set_weight(op, "bias", b));
                assert_ok(dcb_op_run(op, x, y2, ws, NULL));
                for (int64_t i = 0; i < y1->size; i++) assert_true(fabsf(y2->data[i] + y1->data[i]) < 1e-4f);
                assert_status_msg(dcb_op_run(op, x, y2, NULL, NULL), DCB_INVALID_ARGUMENT, "workspace");
                dcb_tensor_free(w);
                dcb_tensor_free(b);
                dcb_tensor_free(y1);
                dcb_tensor_free(y2);
                dcb_aligned_free(ws);
                dcb_op_destroy(op);
            }
    dcb_tensor_free(x);
}

/* --------------------------------------------------------------- costs */
static void test_costs(void **state) {
    (void)state;
    /* condconv: cin 16, cout 32, 3x3, stride 1, pad 1, groups 2, bias, E 4;
     * N 2 at 8x8 -> 8x8. P = 32*8*9 = 2304. */
    shape s = {2, 16, 32, 8, 8, 3, 3, 1, 1, 1, 2, 1, 4, 0, 1};
    int64_t xs[4] = {2, 16, 8, 8};
    dcb_cost c;
    dcb_op *op = NULL;
    assert_ok(make_op("condconv", &s, "combine_then_conv/im2col", 1, &op));
    assert_ok(dcb_op_cost(op, 4, xs, &c));
    const double conv = 9.0 * 8 * 32 * 64 + 32 * 64; /* 149504 */
    const double kgen = 4 * 2304 + 4 * 32;           /* 9344 */
    assert_true(conv == 149504 && kgen == 9344); /* routing: 4*16 + 4 = 68 */
    assert_true(c.macs == 2 * (149504 + 68 + 9344));
    assert_true(c.dynamic_macs == 2 * (68 + 9344));
    assert_true(c.executed_macs == c.macs);
    assert_true(c.params == 4 * 2304 + 4 * 32 + 68);
    assert_true(c.acts == 2 * (32 * 64 + 4));
    assert_true(c.flops == 2 * c.macs + 2 * (16 * 64 + 4 * 4));
    assert_true(c.bytes == 4.0 * (2 * 16 * 64 + c.params + 2 * 32 * 64));
    dcb_op_destroy(op);
    /* conv_then_combine: E times the conv plus the weighted sum, no kernel mixing */
    assert_ok(make_op("condconv", &s, "conv_then_combine/naive", 1, &op));
    assert_ok(dcb_op_cost(op, 4, xs, &c));
    assert_true(c.macs == 2 * (149504 + 68 + 9344));
    assert_true(c.executed_macs == 2 * (68 + 4 * 149504 + 4 * 32 * 64));
    dcb_op_destroy(op);
    /* Winograd F(4x4): 4 tiles of 6x6 per plane, per channel pair */
    assert_ok(make_op("condconv", &s, "combine_then_conv/winograd", 1, &op));
    assert_ok(dcb_op_cost(op, 4, xs, &c));
    assert_true(c.executed_macs == 2 * (68 + 9344 + 4 * 36 * 8 * 32));
    dcb_op_destroy(op);
    assert_ok(make_op("condconv", &s, "conv_then_combine/winograd_f2", 1, &op));
    assert_ok(dcb_op_cost(op, 4, xs, &c));
    assert_true(c.executed_macs == 2 * (68 + 4 * (16 * 16 * 8 * 32) + 4 * 32 * 64));
    dcb_op_destroy(op);

    /* dyconv: cin 24, cout 16, 3x3 stride 2 pad 1 at 9x11 -> 5x6, no
     * bias, K 4, hidden max(1, 24/4) = 6; N 3. P = 16*24*9 = 3456. */
    shape d = {3, 24, 16, 9, 11, 3, 3, 2, 1, 1, 1, 0, 4, 0, 1};
    int64_t xd[4] = {3, 24, 9, 11};
    assert_ok(make_op("dyconv", &d, "combine_then_conv/naive", 1, &op));
    assert_ok(dcb_op_cost(op, 4, xd, &c));
    const double dconv = 9.0 * 24 * 16 * 30;          /* 103680 */
    const double droute = 6 * 24 + 6 + 4 * 6 + 4;      /* 178 */
    const double dkgen = 4 * 3456;                      /* 13824 */
    assert_true(c.macs == 3 * (dconv + droute + dkgen));
    assert_true(c.macs == 3.0 * 117682);
    assert_true(c.dynamic_macs == 3 * (178 + 13824));
    assert_true(c.params == 13824 + 178);
    assert_true(c.acts == 3 * (16 * 30 + 4 + 6));
    assert_true(c.flops == 2 * c.macs + 3 * (24 * 99 + 4 * 4 + 6));
    dcb_op_destroy(op);
}

/* ------------------------------------------------------------ invalid */
static void test_invalid(void **state) {
    (void)state;
    dcb_op *op = NULL;
    shape base = {1, 8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 0, 4, 0, 1};
    shape s = base;
    s.E = 0;
    assert_status_msg(make_op("condconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "condconv: experts=0");
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "dyconv: kernels=0");
    s = base;
    s.hidden = -2;
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "dyconv: hidden=-2");
    s = base;
    s.tau = 0;
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "dyconv: temperature=0 is invalid");
    s.tau = -1.5;
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "dyconv: temperature=-1.5");
    s.tau = 1e-60; /* rounds to zero in float */
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "temperature=1e-60");
    s = base;
    s.groups = 3;
    assert_status_msg(make_op("condconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "condconv: groups=3 does not divide cin=8");
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "dyconv: groups=3 does not divide cin=8");
    s = base;
    s.stride = 0;
    assert_status_msg(make_op("condconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "stride=0");
    s = base;
    s.pad = -1;
    assert_status_msg(make_op("dyconv", &s, NULL, 1, &op), DCB_INVALID_PARAM, "pad=-1");
    dcb_hparam nocin[] = {TU_HP("cout", 4), TU_HP("k", 3)};
    assert_status_msg(dcb_op_create("condconv", NULL, nocin, 2, &op), DCB_INVALID_PARAM, "condconv: cin is required");
    dcb_hparam nok[] = {TU_HP("cin", 4), TU_HP("cout", 4)};
    assert_status_msg(dcb_op_create("dyconv", NULL, nok, 2, &op), DCB_INVALID_PARAM, "kernel size");
    dcb_hparam ef[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("experts", 2.5)};
    assert_status_msg(dcb_op_create("condconv", NULL, ef, 4, &op), DCB_INVALID_PARAM, "experts=2.5");
    dcb_hparam ts[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HS("temperature", "hot")};
    assert_status_msg(dcb_op_create("dyconv", NULL, ts, 4, &op), DCB_INVALID_PARAM, "'hot'");
    dcb_hparam ex[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("experts", 2)};
    assert_status_msg(dcb_op_create("dyconv", NULL, ex, 4, &op), DCB_UNKNOWN_PARAM, "'experts'");
    assert_status_msg(dcb_op_create("condconv", "combine_then_conv/fft", ex, 4, &op), DCB_UNKNOWN_IMPL,
                      "conv_then_combine/winograd_f2");
    assert_null(op);

    /* Winograd engines: a 3x3 kernel, stride 1, dilation 1 only */
    shape un[3] = {base, base, base};
    un[0].stride = 2;
    un[1].kh = un[1].kw = 5;
    un[2].dil = 2;
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < dcb_impl_count("condconv"); k++) {
                const char *opname = o ? "dyconv" : "condconv", *impl = dcb_impl_name(opname, k);
                dcb_status st = make_op(opname, &un[i], impl, 1, &op);
                if (strstr(impl, "/winograd")) {
                    assert_status_msg(st, DCB_UNSUPPORTED_PARAM, "needs a 3x3 kernel, stride 1 and dilation 1");
                    assert_true(strstr(dcb_last_error(), impl) != NULL);
                    assert_null(op);
                } else {
                    assert_ok(st);
                    dcb_op_destroy(op);
                    op = NULL;
                }
            }

    /* weights: names and shapes from OPERATORS.md */
    s = base;
    s.bias = 1;
    s.groups = 2;
    assert_ok(make_op("condconv", &s, NULL, 1, &op));
    static const char *const cw[] = {"weight", "bias", "route_w", "route_b"};
    assert_int_equal(dcb_op_weight_count(op), 4);
    for (int i = 0; i < 4; i++) assert_string_equal(dcb_op_weight_name(op, i), cw[i]);
    dcb_tensor *x = dcb_tensor_new4(1, 8, 5, 5), *y = NULL;
    assert_status_msg(dcb_op_forward(op, x, &y), DCB_INVALID_WEIGHT, "weight 'weight' (4, 8, 4, 3, 3) is missing");
    dcb_tensor *k = NULL;
    assert_status_msg(dcb_op_kernels(op, x, &k), DCB_INVALID_WEIGHT, "is missing");
    dcb_tensor *bad = dcb_tensor_new(2, (int64_t[]){4, 9});
    assert_status_msg(dcb_op_set_weight(op, "route_w", bad), DCB_INVALID_WEIGHT, "expected (4, 8)");
    dcb_tensor_free(bad);
    assert_ok(dcb_op_init_weights(op, 1));
    dcb_tensor *x7 = dcb_tensor_new4(1, 7, 5, 5);
    assert_status_msg(dcb_op_forward(op, x7, &y), DCB_INVALID_SHAPE, "condconv: input has 7 channels, cin=8");
    assert_status_msg(dcb_op_routing(op, x7, &k), DCB_INVALID_SHAPE, "7 channels");
    dcb_tensor_free(x7);
    dcb_op_destroy(op);
    assert_ok(make_op("dyconv", &s, NULL, 1, &op));
    static const char *const dw[] = {"weight", "bias", "fc1_w", "fc1_b", "fc2_w", "fc2_b"};
    assert_int_equal(dcb_op_weight_count(op), 6);
    for (int i = 0; i < 6; i++) assert_string_equal(dcb_op_weight_name(op, i), dw[i]);
    int64_t sh[DCB_MAX_DIMS];
    assert_int_equal(dcb_op_weight_shape(op, 4, sh), 2);
    assert_true(sh[0] == 4 && sh[1] == 2); /* fc2_w (K, hidden), hidden = max(1, 8/4) */
    dcb_op_destroy(op);
    dcb_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_se),
        cmocka_unit_test(test_se_invalid_and_cost),
        cmocka_unit_test(test_dyconv_large_logits),
        cmocka_unit_test(test_dyconv_temperature),
        cmocka_unit_test(test_condconv_one_expert_is_conv2d),
        cmocka_unit_test(test_similarity_of_kernels),
        cmocka_unit_test(test_lifecycle_and_phases),
        cmocka_unit_test(test_larger_layer),
        cmocka_unit_test(test_winograd_dynamic_blocks),
        cmocka_unit_test(test_winograd_premix_bits),
        cmocka_unit_test(test_condconv_sweep),
        cmocka_unit_test(test_dyconv_sweep),
    };
    return cmocka_run_group_tests_name("se, condconv, dyconv", tests, NULL, NULL);
}
