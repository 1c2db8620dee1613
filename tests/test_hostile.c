/* Hostile hyperparameters: every operator x every implementation x every
 * hyperparameter x {0, -1, 2^31, 2^62, 1e9, NaN, inf, -inf, 0.5, "abc"} on a
 * valid case of that operator (tests/opcases.h), with a 1 GiB memory limit.
 * create, cost, plan, and where all of them pass and the cost is small, a
 * forward: each must end in ok or a named invalid_* / unsupported_* status
 * with a message, never a crash, a sanitizer report or an allocation past
 * the limit (the sanitizer run also caps ASan's allocations). Then the
 * reproducers of the hardening issue, one test each. */
#include "opcases.h"

#include <math.h>

/* Under ASan an allocation past 1.5 GiB is a reported error, not a NULL:
 * the 1 GiB limit below must keep every one of them from happening. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_allocation_size_mb=1536"; }

static const double hostile[] = {0, -1, 2147483648.0, 4611686018427387904.0, 1e9, NAN, INFINITY, -INFINITY, 0.5};
#define NHOSTILE (sizeof hostile / sizeof hostile[0])

static int acceptable(dcb_status st) {
    return st == DCB_OK || dcb_status_is_invalid(st) || dcb_status_is_unsupported(st);
}

static void expect(dcb_status st, const char *what, const char *op, const char *impl, const char *param,
                   const char *val) {
    if (acceptable(st) && (st == DCB_OK || dcb_last_error()[0])) return;
    fprintf(stderr, "%s/%s %s=%s: %s gave %s (%s)\n", op, impl, param, val, what, dcb_status_name(st),
            dcb_last_error());
    fail();
}

/* One case with h replacing (or adding) one hyperparameter. */
static void try_one(const char *op, const char *impl, const tc_case *base, dcb_hparam h, const char *val) {
    tc_case c = *base;
    hp_put(&c, h);
    dcb_op *o = NULL;
    dcb_status st = dcb_op_create(op, impl, c.hp, c.nhp, &o);
    expect(st, "create", op, impl, h.name, val);
    if (st != DCB_OK) return;
    int64_t shape[DCB_MAX_DIMS];
    const int nd = dcb_op_input_shape(o, c.N, c.H, c.W, c.T, shape);
    dcb_cost cost;
    st = dcb_op_cost(o, nd, shape, &cost);
    expect(st, "cost", op, impl, h.name, val);
    if (st == DCB_OK && !(cost.macs >= 0 && isfinite(cost.macs) && cost.params >= 0)) {
        fprintf(stderr, "%s/%s %s=%s: cost gave macs=%g params=%g\n", op, impl, h.name, val, cost.macs, cost.params);
        fail();
    }
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    size_t ws = 0;
    dcb_status pst = dcb_op_plan(o, nd, shape, &yn, ys, &ws);
    expect(pst, "plan", op, impl, h.name, val);
    if (st == DCB_OK && pst == DCB_OK && cost.macs < 2e7 && cost.params < 4e6) {
        st = dcb_op_init_weights(o, 1);
        expect(st, "init_weights", op, impl, h.name, val);
        dcb_tensor *x = dcb_tensor_new(nd, shape), *y = NULL;
        if (st == DCB_OK && x) {
            dcb_tensor_randn(x, 2);
            expect(dcb_op_forward(o, x, &y), "forward", op, impl, h.name, val);
        }
        dcb_tensor_free(x);
        dcb_tensor_free(y);
    }
    dcb_op_destroy(o);
}

static void test_every_operator_every_parameter(void **state) {
    (void)state;
    dcb_set_max_bytes((size_t)1 << 30);
    int tried = 0;
    for (int i = 0; i < dcb_op_count(); i++) {
        const char *op = dcb_op_name(i);
        tc_gen gen = generator_of(op);
        assert_non_null(gen);
        uint64_t r = 77 + (uint64_t)i;
        const tc_case base = new_case(gen, &r, 0, 2);
        int np = 0;
        const dcb_param_spec *ps = dcb_op_params(op, &np);
        for (int m = 0; m < dcb_impl_count(op); m++) {
            const char *impl = dcb_impl_name(op, m);
            for (int p = 0; p < np; p++) {
                char val[40];
                for (size_t v = 0; v < NHOSTILE; v++) {
                    snprintf(val, sizeof val, "%g", hostile[v]);
                    try_one(op, impl, &base, TU_HP(ps[p].name, hostile[v]), val);
                    tried++;
                }
                try_one(op, impl, &base, TU_HS(ps[p].name, "abc"), "\"abc\"");
                tried++;
            }
        }
    }
    dcb_set_max_bytes(0);
    fprintf(stderr, "hostile: %d (operator, implementation, hyperparameter, value) cases\n", tried);
    assert_true(tried > 1000);
}

/* ------------------------------------------------------ the reproducers */
static dcb_op *make(const char *op, const char *impl, const dcb_hparam *hp, int n) {
    dcb_op *o = NULL;
    assert_ok(dcb_op_create(op, impl, hp, n, &o));
    return o;
}

/* conv2d pad=1e9 on a 2^31-1 row: refused, naming pad; no signed overflow. */
static void test_conv_out_overflow(void **state) {
    (void)state;
    dcb_op *o = NULL;
    dcb_hparam hp[] = {TU_HP("cin", 1), TU_HP("cout", 1), TU_HP("k", 1), TU_HP("pad", 1e9)};
    assert_int_equal(dcb_op_create("conv2d", NULL, hp, 4, &o), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "pad=1000000000"));
    /* the largest pad allowed, on the largest input row: the output is refused as too large */
    dcb_hparam hp2[] = {TU_HP("cin", 1), TU_HP("cout", 1), TU_HP("k", 1), TU_HP("pad", 65535)};
    o = make("conv2d", "im2col", hp2, 4);
    const int64_t x[4] = {1, 1, 2147483647, 1};
    dcb_cost c;
    assert_int_equal(dcb_op_cost(o, 4, x, &c), DCB_INVALID_SHAPE);
    assert_non_null(strstr(dcb_last_error(), "at most 2^30 elements"));
    size_t ws;
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    assert_int_equal(dcb_op_plan(o, 4, x, &yn, ys, &ws), DCB_INVALID_SHAPE);
    dcb_op_destroy(o);
}

/* direct with pad=65535: the output plane is refused before the engine plans it. */
static void test_direct_big_pad(void **state) {
    (void)state;
    dcb_hparam hp[] = {TU_HP("cin", 4), TU_HP("cout", 4), TU_HP("k", 3), TU_HP("pad", 65535)};
    dcb_op *o = make("conv2d", "direct", hp, 4);
    const int64_t x[4] = {1, 4, 8, 8};
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    size_t ws = 0;
    assert_int_equal(dcb_op_plan(o, 4, x, &yn, ys, &ws), DCB_INVALID_SHAPE);
    assert_non_null(strstr(dcb_last_error(), "pad=65535"));
    dcb_op_destroy(o);
}

/* se hidden=1e9: refused at create with the size and the parameter, nothing allocated. */
static void test_weight_limit(void **state) {
    (void)state;
    const uint64_t before = dcb_alloc_count();
    dcb_op *o = NULL;
    dcb_hparam hp[] = {TU_HP("channels", 4), TU_HP("hidden", 1e9)};
    assert_int_equal(dcb_op_create("se", NULL, hp, 2, &o), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "hidden=1000000000"));
    assert_non_null(strstr(dcb_last_error(), "GiB"));
    assert_int_equal(dcb_alloc_count(), before);
    /* below the 2^30-element cap, above a 64 MiB limit */
    dcb_set_max_bytes((size_t)64 << 20);
    dcb_hparam hp2[] = {TU_HP("channels", 4096), TU_HP("hidden", 4096)};
    assert_int_equal(dcb_op_create("se", NULL, hp2, 2, &o), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "DCB_MAX_BYTES"));
    dcb_set_max_bytes(0);
    o = make("se", NULL, hp2, 2);
    dcb_op_destroy(o);
    /* and a tensor past the limit */
    dcb_set_max_bytes((size_t)1 << 20);
    const int64_t big[2] = {1024, 1024};
    assert_null(dcb_tensor_new(2, big));
    assert_non_null(strstr(dcb_last_error(), "limit"));
    dcb_set_max_bytes(0);
}

/* Integers print as integers; k is reported as k. */
static void test_messages(void **state) {
    (void)state;
    dcb_op *o = NULL;
    dcb_hparam hp[] = {TU_HP("cin", 2147483648.0), TU_HP("cout", 1), TU_HP("k", 1)};
    assert_int_equal(dcb_op_create("conv2d", NULL, hp, 3, &o), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "cin=2147483648"));
    dcb_hparam hk[] = {TU_HP("cin", 1), TU_HP("cout", 1), TU_HP("k", 2147483648.0)};
    assert_int_equal(dcb_op_create("conv2d", NULL, hk, 3, &o), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "k=2147483648"));
    assert_null(strstr(dcb_last_error(), "kh"));
    dcb_hparam hn[] = {TU_HP("cin", NAN), TU_HP("cout", 1), TU_HP("k", 1)};
    assert_int_equal(dcb_op_create("conv2d", NULL, hn, 3, &o), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "nan"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_out_overflow),
        cmocka_unit_test(test_direct_big_pad),
        cmocka_unit_test(test_weight_limit),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_every_operator_every_parameter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
