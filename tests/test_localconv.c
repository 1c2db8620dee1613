/* localconv: both implementations against an independent reference written
 * from OPERATORS.md, the shared-weights corner case (= conv2d), the input-size
 * contract, validation messages and costs. */
#include "testutil.h"

#include <math.h>

/* Errors are max|y - ref| / max(1, max|ref|), inputs N(0,1) and the default
 * weights, against each implementation's tolerance (dcb_op_tolerance). naive
 * accumulates in double like the reference; im2col sums in float inside
 * sgemm (K <= 6*5*5 here). */

typedef struct shape {
    int N, cin, cout, H, W, kh, kw, stride, pad, dil, bias;
} shape;

static int out_size(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

static void shape_str(const shape *s, char *buf, size_t n) {
    snprintf(buf, n, "N=%d cin=%d cout=%d H=%d W=%d k=%dx%d stride=%d pad=%d dil=%d bias=%d", s->N, s->cin,
             s->cout, s->H, s->W, s->kh, s->kw, s->stride, s->pad, s->dil, s->bias);
}

static dcb_status make_op(const shape *s, const char *impl, int threads, dcb_op **op) {
    dcb_hparam hp[] = {TU_HP("cin", s->cin),   TU_HP("cout", s->cout),     TU_HP("kh", s->kh),
                       TU_HP("kw", s->kw),     TU_HP("stride", s->stride), TU_HP("pad", s->pad),
                       TU_HP("dilation", s->dil), TU_HP("bias", s->bias),  TU_HP("H", s->H),
                       TU_HP("W", s->W),       TU_HP("threads", threads)};
    return dcb_op_create("localconv", impl, hp, (int)(sizeof hp / sizeof hp[0]), op);
}

/* y[n,o,i,j] = bias[o,i,j] + sum_{c,u,v} weight[i,j,o,c,u,v] * x[n,c,i*s+u*d-p, j*s+v*d-p] */
static dcb_tensor *reference(const shape *s, const dcb_tensor *x, const dcb_tensor *w, const dcb_tensor *b) {
    const int Ho = out_size(s->H, s->kh, s->stride, s->pad, s->dil);
    const int Wo = out_size(s->W, s->kw, s->stride, s->pad, s->dil);
    dcb_tensor *y = dcb_tensor_new4(s->N, s->cout, Ho, Wo);
    for (int n = 0; n < s->N; n++)
        for (int o = 0; o < s->cout; o++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    double acc = b ? b->data[((size_t)o * Ho + i) * Wo + j] : 0.0;
                    for (int c = 0; c < s->cin; c++)
                        for (int u = 0; u < s->kh; u++)
                            for (int v = 0; v < s->kw; v++) {
                                int ii = i * s->stride + u * s->dil - s->pad;
                                int jj = j * s->stride + v * s->dil - s->pad;
                                if (ii < 0 || ii >= s->H || jj < 0 || jj >= s->W) continue;
                                size_t wi = ((((((size_t)i * Wo + j) * s->cout + o) * s->cin + c) * s->kh + u) * s->kw) + v;
                                acc += (double)w->data[wi] *
                                       x->data[(((size_t)n * s->cin + c) * s->H + ii) * s->W + jj];
                            }
                    y->data[(((size_t)n * s->cout + o) * Ho + i) * Wo + j] = (float)acc;
                }
    return y;
}

static shape random_shape(uint64_t *r) {
    static const int ks[] = {1, 2, 3, 5};
    shape s;
    for (;;) {
        s.N = tu_rand(r, 1, 4);
        s.cin = tu_rand(r, 1, 6);
        s.cout = tu_rand(r, 1, 6);
        s.kh = s.kw = ks[tu_rand(r, 0, 3)];
        if (tu_rand(r, 0, 3) == 0) s.kw = ks[tu_rand(r, 0, 3)];
        s.stride = tu_rand(r, 1, 2);
        s.pad = tu_rand(r, 0, 2);
        s.dil = tu_rand(r, 0, 2) == 0 ? 2 : 1;
        s.H = tu_rand(r, 1, 13);
        s.W = tu_rand(r, 1, 13);
        s.bias = tu_rand(r, 0, 1);
        if (tu_kernel_fits(s.H, s.W, s.kh, s.kw, s.pad, s.dil)) break;
    }
    return s;
}

static void test_impls_against_reference(void **state) {
    (void)state;
    const int nshapes = tu_quick() ? 40 : 200;
    const int nimpl = dcb_impl_count("localconv");
    assert_int_equal(nimpl, 2);
    double worst[2] = {0};
    int odd = 0, strided = 0, padded = 0, dilated = 0;
    uint64_t r = 31337;
    for (int t = 0; t < nshapes; t++) {
        shape s = random_shape(&r);
        char desc[256];
        shape_str(&s, desc, sizeof desc);
        odd += (s.H % 2) || (s.W % 2);
        strided += s.stride == 2;
        padded += s.pad > 0;
        dilated += s.dil == 2;
        dcb_tensor *x = tu_randn4(s.N, s.cin, s.H, s.W, 500 + (uint64_t)t);
        dcb_tensor *ref = NULL;
        for (int k = 0; k < nimpl; k++) {
            const char *impl = dcb_impl_name("localconv", k);
            dcb_op *op = NULL;
            assert_ok(make_op(&s, impl, 1 + (t + k) % 2, &op));
            assert_ok(dcb_op_init_weights(op, 77 + (uint64_t)t));
            if (!ref) ref = reference(&s, x, dcb_op_get_weight(op, "weight"), dcb_op_get_weight(op, "bias"));
            worst[k] = fmax(worst[k], tu_forward_err(op, x, ref, desc));
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < nimpl; k++)
        print_message("localconv/%-8s %d shapes, max rel err %.3g\n", dcb_impl_name("localconv", k), nshapes,
                      worst[k]);
    assert_true(odd > 0 && strided > 0 && padded > 0 && dilated > 0);
}

/* With the same kernel at every position, localconv is conv2d. */
static void test_shared_weights_equal_conv2d(void **state) {
    (void)state;
    static const shape cases[] = {{2, 5, 7, 11, 9, 3, 3, 1, 1, 1, 1},
                                  {3, 4, 6, 13, 10, 3, 5, 2, 2, 1, 1},
                                  {1, 3, 2, 9, 12, 3, 3, 1, 2, 2, 0},
                                  {4, 2, 3, 7, 7, 1, 1, 2, 0, 1, 1}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const shape *s = &cases[t];
        dcb_hparam hp[] = {TU_HP("cin", s->cin),    TU_HP("cout", s->cout),   TU_HP("kh", s->kh),
                           TU_HP("kw", s->kw),      TU_HP("stride", s->stride), TU_HP("pad", s->pad),
                           TU_HP("dilation", s->dil), TU_HP("bias", s->bias)};
        dcb_op *conv = NULL;
        assert_ok(dcb_op_create("conv2d", "naive", hp, 8, &conv));
        assert_ok(dcb_op_init_weights(conv, 5 + t));
        dcb_tensor *x = tu_randn4(s->N, s->cin, s->H, s->W, 9 + t);
        dcb_tensor *yc = NULL;
        assert_ok(dcb_op_forward(conv, x, &yc));
        const int Ho = (int)yc->shape[2], Wo = (int)yc->shape[3];
        const dcb_tensor *cw = dcb_op_get_weight(conv, "weight"), *cb = dcb_op_get_weight(conv, "bias");
        int64_t ws[6] = {Ho, Wo, s->cout, s->cin, s->kh, s->kw};
        dcb_tensor *lw = dcb_tensor_new(6, ws);
        for (int p = 0; p < Ho * Wo; p++)
            memcpy(lw->data + (size_t)p * cw->size, cw->data, sizeof(float) * (size_t)cw->size);
        int64_t bs[3] = {s->cout, Ho, Wo};
        dcb_tensor *lb = dcb_tensor_new(3, bs);
        if (cb)
            for (int o = 0; o < s->cout; o++)
                for (int p = 0; p < Ho * Wo; p++) lb->data[(size_t)o * Ho * Wo + p] = cb->data[o];
        for (int k = 0; k < dcb_impl_count("localconv"); k++) {
            dcb_op *op = NULL;
            assert_ok(make_op(s, dcb_impl_name("localconv", k), 2, &op));
            assert_ok(dcb_op_set_weight(op, "weight", lw));
            if (s->bias) assert_ok(dcb_op_set_weight(op, "bias", lb));
            dcb_tensor *y = NULL;
            assert_ok(dcb_op_forward(op, x, &y));
            double err = dcb_max_rel_err(y, yc, NULL);
            if (!(err <= 2e-6)) fail_msg("localconv/%s vs conv2d case %zu: %.3g", dcb_impl_name("localconv", k), t, err);
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(lw);
        dcb_tensor_free(lb);
        dcb_tensor_free(yc);
        dcb_tensor_free(x);
        dcb_op_destroy(conv);
    }
}

static void test_input_size_contract(void **state) {
    (void)state;
    shape s = {1, 3, 4, 8, 8, 3, 3, 1, 1, 1, 0};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "im2col", 1, &op));
    assert_ok(dcb_op_init_weights(op, 1));
    tu_expect_plan_fails(op, 4, (int64_t[]){1, 3, 9, 9}, DCB_INVALID_SHAPE, "localconv: input is 9x9 but H=8, W=8");
    tu_expect_plan_fails(op, 4, (int64_t[]){2, 3, 8, 7}, DCB_INVALID_SHAPE, "input is 8x7 but H=8, W=8");
    dcb_tensor *x = dcb_tensor_new4(1, 3, 9, 9), *y = NULL;
    assert_status_msg(dcb_op_forward(op, x, &y), DCB_INVALID_SHAPE, "input is 9x9 but H=8, W=8");
    assert_null(y);
    dcb_tensor_free(x);
    tu_expect_plan_fails(op, 4, (int64_t[]){1, 5, 8, 8}, DCB_INVALID_SHAPE, "5 channels, cin=3");
    tu_expect_plan_fails(op, 3, (int64_t[]){3, 8, 8}, DCB_INVALID_SHAPE, "(N, C, H, W)");
    int64_t ok[4] = {3, 3, 8, 8}, ys[DCB_MAX_DIMS];
    size_t wsb;
    assert_ok(dcb_op_plan(op, 4, ok, NULL, ys, &wsb));
    assert_int_equal(ys[0], 3);
    assert_int_equal(ys[1], 4);
    assert_int_equal(ys[2], 8);
    assert_true(wsb > 0);
    dcb_op_destroy(op);
}

static void expect_invalid(const dcb_hparam *hp, int n, dcb_status want, const char *needle) {
    dcb_op *op = (dcb_op *)0x1;
    assert_status_msg(dcb_op_create("localconv", "im2col", hp, n, &op), want, needle);
    assert_null(op);
}

static void test_invalid_params(void **state) {
    (void)state;
    dcb_hparam noH[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("W", 8)};
    expect_invalid(noH, 4, DCB_INVALID_PARAM, "localconv: H is required");
    dcb_hparam noW[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("H", 8)};
    expect_invalid(noW, 4, DCB_INVALID_PARAM, "localconv: W is required");
    dcb_hparam W0[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("H", 8), TU_HP("W", 0)};
    expect_invalid(W0, 5, DCB_INVALID_PARAM, "W=0");
    dcb_hparam Hf[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("H", 7.5), TU_HP("W", 8)};
    expect_invalid(Hf, 5, DCB_INVALID_PARAM, "H=7.5");
    dcb_hparam big[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 7), TU_HP("pad", 1), TU_HP("H", 4), TU_HP("W", 8)};
    expect_invalid(big, 6, DCB_INVALID_PARAM, "kernel height 7 (kh=7, dilation=1) exceeds the padded input height 6 (H=4, pad=1)");
    dcb_hparam bigw[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("dilation", 3), TU_HP("H", 9), TU_HP("W", 5)};
    expect_invalid(bigw, 6, DCB_INVALID_PARAM, "kernel width 7 (kw=3, dilation=3) exceeds the padded input width 5");
    dcb_hparam grp[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("H", 8), TU_HP("W", 8), TU_HP("groups", 2)};
    expect_invalid(grp, 6, DCB_UNKNOWN_PARAM, "unknown hyperparameter 'groups'");
    dcb_hparam cin0[] = {TU_HP("cin", 0), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("H", 8), TU_HP("W", 8)};
    expect_invalid(cin0, 5, DCB_INVALID_PARAM, "cin=0");
    dcb_hparam nok[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("H", 8), TU_HP("W", 8)};
    expect_invalid(nok, 4, DCB_INVALID_PARAM, "kernel size");
    dcb_hparam st0[] = {TU_HP("cin", 3), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("stride", 0), TU_HP("H", 8), TU_HP("W", 8)};
    expect_invalid(st0, 6, DCB_INVALID_PARAM, "stride=0");
    /* no kernels / routing: a static operator */
    shape s = {1, 2, 2, 4, 4, 3, 3, 1, 1, 1, 0};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "naive", 1, &op));
    assert_ok(dcb_op_init_weights(op, 3));
    dcb_tensor *x = dcb_tensor_new4(1, 2, 4, 4), *out = NULL;
    assert_status_msg(dcb_op_routing(op, x, &out), DCB_UNSUPPORTED_PARAM, "static");
    assert_status_msg(dcb_op_kernels(op, x, &out), DCB_UNSUPPORTED_PARAM, "static");
    dcb_tensor_free(x);
    dcb_op_destroy(op);
}

static void test_lifecycle_and_threads(void **state) {
    (void)state;
    shape s = {3, 5, 6, 11, 9, 3, 3, 1, 1, 1, 1};
    dcb_tensor *x = tu_randn4(3, 5, 11, 9, 12);
    dcb_tensor *first = NULL;
    for (int k = 0; k < 2; k++)
        for (int threads = 1; threads <= 3; threads++) {
            dcb_op *op = NULL;
            assert_ok(make_op(&s, dcb_impl_name("localconv", k), threads, &op));
            assert_ok(dcb_op_init_weights(op, 4));
            assert_ok(dcb_op_prepare(op));
            void *ws;
            size_t wsb;
            dcb_tensor *y = tu_plan(op, x, &ws, &wsb);
            dcb_profile prof = {{0}};
            assert_ok(dcb_op_run(op, x, y, ws, &prof));
            assert_true(prof.seconds[DCB_PHASE_GEMM] > 0);
            if (wsb) assert_status_msg(dcb_op_run(op, x, y, NULL, NULL), DCB_INVALID_ARGUMENT, "workspace");
            tu_keep_or_compare(&first, y, op); /* first: naive */
            dcb_aligned_free(ws);
            dcb_op_destroy(op);
        }
    dcb_tensor_free(first);
    dcb_tensor_free(x);
}

static void test_weights_and_costs(void **state) {
    (void)state;
    /* cin=3 cout=4 3x3 stride 2 pad 1 over 9x9 -> 5x5, bias, N=2 */
    shape s = {2, 3, 4, 9, 9, 3, 3, 2, 1, 1, 1};
    dcb_op *op = NULL;
    assert_ok(make_op(&s, "im2col", 1, &op));
    assert_int_equal(dcb_op_weight_count(op), 2);
    int64_t sh[DCB_MAX_DIMS];
    assert_int_equal(dcb_op_weight_shape(op, 0, sh), 6);
    int64_t want_w[6] = {5, 5, 4, 3, 3, 3};
    assert_memory_equal(sh, want_w, sizeof want_w);
    assert_int_equal(dcb_op_weight_shape(op, 1, sh), 3);
    int64_t want_b[3] = {4, 5, 5};
    assert_memory_equal(sh, want_b, sizeof want_b);
    assert_string_equal(dcb_op_weight_name(op, 1), "bias");
    int64_t x[4] = {2, 3, 9, 9};
    dcb_cost c;
    assert_ok(dcb_op_cost(op, 4, x, &c));
    /* per image: 9*3*4*25 = 2700 weight MACs + 100 bias */
    assert_true(c.macs == 5600);
    assert_true(c.flops == 11200);
    assert_true(c.params == 2800);
    assert_true(c.acts == 200);
    assert_true(c.bytes == 4.0 * (486 + 2800 + 200));
    assert_true(c.dynamic_macs == 0 && c.executed_macs == 5600);
    assert_true(dcb_op_get_param(op, "H") == 9 && dcb_op_get_param(op, "kw") == 3);
    dcb_op_destroy(op);
    /* no bias, 5x3 kernel, dilation 2 over 12x10, pad 0 -> 4x6; N=1 */
    shape t = {1, 2, 3, 12, 10, 5, 3, 1, 0, 2, 0};
    assert_ok(make_op(&t, "naive", 1, &op));
    int64_t xt[4] = {1, 2, 12, 10};
    assert_ok(dcb_op_cost(op, 4, xt, &c));
    assert_true(c.macs == 15.0 * 2 * 3 * 24);
    assert_true(c.params == 2160);
    assert_true(c.acts == 72);
    dcb_op_destroy(op);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impls_against_reference),
        cmocka_unit_test(test_shared_weights_equal_conv2d),
        cmocka_unit_test(test_input_size_contract),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_weights_and_costs),
        cmocka_unit_test(test_lifecycle_and_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
