/* impl "auto" (dcb.h, AUTO; kernels/op_auto.c): which operators have it,
 * its fixed rule without references, the calibrated model's choice from
 * given references (nearest reference, executed-MAC scaling, nearest thread
 * count, the ISA level), a new pick per input shape and the weights that
 * follow it, the errors of bad references, and that its results are the
 * pick's (the conformance test checks it against the oracle on many shapes). */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static dcb_op *conv(const char *impl, int c, int k, int stride, int groups, int threads) {
    dcb_hparam hp[] = {TU_HP("cin", c),         TU_HP("cout", c),        TU_HP("k", k), TU_HP("pad", k / 2),
                       TU_HP("stride", stride), TU_HP("groups", groups), TU_HP("threads", threads)};
    dcb_op *op = NULL;
    assert_ok(dcb_op_create("conv2d", impl, hp, 7, &op));
    assert_ok(dcb_op_init_weights(op, 5));
    return op;
}

static const char *pick_for(dcb_op *op, int N, int C, int H) {
    const int64_t x[4] = {N, C, H, H};
    assert_ok(dcb_op_plan(op, 4, x, NULL, NULL, NULL));
    return dcb_op_get_picked(op);
}

/* The reference of op/impl at one layer, with the cost the library gives it. */
static void add_ref(const char *impl, int C, int k, int N, int H, int threads, const char *isa, double seconds) {
    dcb_op *op = conv(impl, C, k, 1, 1, threads);
    const int64_t x[4] = {N, C, H, H};
    dcb_cost c;
    assert_ok(dcb_op_cost(op, 4, x, &c));
    assert_ok(dcb_auto_add_reference("conv2d", impl, isa, threads, c.macs, c.bytes, c.params, c.acts, c.executed_macs,
                                     seconds));
    dcb_op_destroy(op);
}

static void test_which_operators(void **state) {
    (void)state;
    assert_true(dcb_impl_has_auto("conv2d"));
    assert_true(dcb_impl_has_auto("condconv"));
    assert_true(dcb_impl_has_auto("dynconv1d"));
    assert_false(dcb_impl_has_auto("relu"));        /* only its oracle */
    assert_false(dcb_impl_has_auto("mhattention")); /* one implementation beside the oracle */
    assert_false(dcb_impl_has_auto("nope"));
    /* not in the registered list, and its candidates leave out the oracle, the naive engine and the peer */
    for (int i = 0; i < dcb_impl_count("conv2d"); i++) {
        const char *n = dcb_impl_name("conv2d", i);
        assert_string_not_equal(n, "auto");
        const int want = i > 0 && strcmp(n, "onednn") && strcmp(n, "naive");
        assert_int_equal(dcb_impl_is_auto_candidate("conv2d", i), want);
    }
    for (int i = 0; i < dcb_impl_count("condconv"); i++)
        assert_int_equal(dcb_impl_is_auto_candidate("condconv", i), !strstr(dcb_impl_name("condconv", i), "naive"));
    dcb_op *op = NULL;
    dcb_hparam hp[] = {TU_HP("threads", 1)};
    assert_status_msg(dcb_op_create("relu", "auto", hp, 1, &op), DCB_UNKNOWN_IMPL, "auto");
    assert_null(op);
}

static void test_rule(void **state) {
    (void)state;
    dcb_auto_clear_references();
    dcb_op *op = conv("auto", 64, 3, 1, 1, 1);
    assert_null(dcb_op_get_picked(op));
    assert_null(dcb_op_get_pick_reason(op));
    assert_string_equal(pick_for(op, 1, 64, 56), "winograd");
    assert_non_null(strstr(dcb_op_get_pick_reason(op), "rule"));
    assert_string_equal(pick_for(op, 1, 64, 7), "winograd_f2"); /* a new shape, a new pick */
    assert_string_equal(pick_for(op, 8, 64, 13), "winograd_f2");
    assert_string_equal(pick_for(op, 8, 64, 14), "winograd");
    dcb_op_destroy(op);
    op = conv("auto", 32, 1, 1, 1, 1);
    assert_string_equal(pick_for(op, 1, 32, 20), "direct");
    dcb_op_destroy(op);
    dcb_op *none = NULL;
    assert_int_equal(dcb_op_create("marker-op", NULL, NULL, 0, &none), DCB_UNKNOWN_OP);
    op = conv("auto", 32, 3, 2, 1, 1); /* stride 2: the Winograd engines drop out at create */
    assert_string_equal(pick_for(op, 1, 32, 20), "direct");
    /* their refusals are not the caller's error: the thread's message is kept */
    assert_non_null(strstr(dcb_last_error(), "marker-op"));
    assert_null(strstr(dcb_op_get_pick_reason(op), "winograd"));
    dcb_op_destroy(op);
    dcb_hparam hc[] = {TU_HP("cin", 16), TU_HP("cout", 16), TU_HP("k", 3), TU_HP("pad", 1), TU_HP("experts", 4)};
    assert_ok(dcb_op_create("condconv", "auto", hc, 5, &op));
    const int64_t x[4] = {2, 16, 20, 20};
    assert_ok(dcb_op_plan(op, 4, x, NULL, NULL, NULL));
    assert_string_equal(dcb_op_get_picked(op), "combine_then_conv/winograd");
    assert_null(dcb_op_get_engine(op));
    dcb_op_destroy(op);
}

static void test_calibrated(void **state) {
    (void)state;
    dcb_auto_clear_references();
    const char *isa = dcb_isa();
    /* 3x3 32@28 N=1: direct measured fastest; 32@8: im2col */
    add_ref("winograd", 32, 3, 1, 28, 1, isa, 3e-3);
    add_ref("direct", 32, 3, 1, 28, 1, isa, 1e-3);
    add_ref("im2col", 32, 3, 1, 28, 1, isa, 2e-3);
    add_ref("winograd", 32, 3, 1, 8, 1, isa, 3e-3);
    add_ref("direct", 32, 3, 1, 8, 1, isa, 2e-3);
    add_ref("im2col", 32, 3, 1, 8, 1, isa, 1e-3);
    /* another ISA level's references are not this one's */
    add_ref("winograd_f2", 32, 3, 1, 28, 1, strcmp(isa, "scalar") ? "scalar" : "avx2", 1e-6);
    assert_int_equal(dcb_auto_reference_count("conv2d"), 7);
    assert_int_equal(dcb_auto_reference_count("condconv"), 0);
    dcb_op *op = conv("auto", 32, 3, 1, 1, 1);
    assert_string_equal(pick_for(op, 1, 32, 28), "direct");
    const char *why = dcb_op_get_pick_reason(op);
    assert_non_null(strstr(why, "calibrated"));
    assert_non_null(strstr(why, "direct 1 ms (reference at distance 0.00)"));
    assert_null(strstr(why, "winograd_f2")); /* no reference at this level: not predicted */
    assert_string_equal(pick_for(op, 1, 32, 8), "im2col");
    assert_string_equal(pick_for(op, 1, 32, 26), "direct"); /* nearer 28 than 8 */
    dcb_op_destroy(op);
    /* 4 threads: the nearest thread count with references (1) */
    op = conv("auto", 32, 3, 1, 1, 4);
    assert_string_equal(pick_for(op, 1, 32, 8), "im2col");
    assert_non_null(strstr(dcb_op_get_pick_reason(op), "1 thread)"));
    dcb_op_destroy(op);
    /* executed MACs scale a prediction: at 32@28 winograd predicts 3 ms and
     * direct 1 ms; a reference for winograd at the same cost but 10x faster wins */
    add_ref("winograd", 32, 3, 1, 28, 2, isa, 0.1e-3);
    add_ref("direct", 32, 3, 1, 28, 2, isa, 1e-3);
    op = conv("auto", 32, 3, 1, 1, 2);
    assert_string_equal(pick_for(op, 1, 32, 28), "winograd");
    dcb_op_destroy(op);
    dcb_auto_clear_references();
    assert_int_equal(dcb_auto_reference_count(NULL), 0);
}

/* A pick on a new shape and new weights after a pick: the output is always
 * the oracle's, with the op's current weights. */
static void test_weights_follow(void **state) {
    (void)state;
    dcb_auto_clear_references();
    dcb_op *a = conv("auto", 12, 3, 1, 1, 1), *n = conv("naive", 12, 3, 1, 1, 1);
    for (int round = 0; round < 3; round++) {
        if (round == 2) { /* new weights on both */
            assert_ok(dcb_op_init_weights(a, 77));
            assert_ok(dcb_op_init_weights(n, 77));
        }
        const int H = round == 1 ? 6 : 30;
        dcb_tensor *x = tu_randn4(2, 12, H, H, 9 + (uint64_t)round), *y = NULL, *ref = NULL;
        assert_ok(dcb_op_forward(a, x, &y));
        assert_ok(dcb_op_forward(n, x, &ref));
        assert_string_equal(dcb_op_get_picked(a), H >= 14 ? "winograd" : "winograd_f2");
        tu_err_within_tol(a, y, ref, "auto");
        /* the tolerance is the pick's */
        dcb_op *p = conv(dcb_op_get_picked(a), 12, 3, 1, 1, 1);
        assert_true(dcb_op_tolerance(a) == dcb_op_tolerance(p));
        dcb_cost ca, cp;
        assert_ok(dcb_op_cost(a, 4, x->shape, &ca));
        assert_ok(dcb_op_cost(p, 4, x->shape, &cp));
        assert_true(ca.executed_macs == cp.executed_macs);
        dcb_op_destroy(p);
        dcb_tensor_free(x), dcb_tensor_free(y), dcb_tensor_free(ref);
    }
    dcb_op_destroy(a);
    dcb_op_destroy(n);
}

/* The dynamic operators' products come from the pick (its workspace layout). */
static void test_dynamic_products(void **state) {
    (void)state;
    dcb_hparam hc[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("pad", 1), TU_HP("experts", 3)};
    dcb_op *a = NULL, *w = NULL;
    assert_ok(dcb_op_create("condconv", "auto", hc, 5, &a));
    assert_ok(dcb_op_create("condconv", "combine_then_conv/winograd", hc, 5, &w));
    assert_ok(dcb_op_init_weights(a, 3));
    assert_ok(dcb_op_init_weights(w, 3));
    dcb_tensor *x = tu_randn4(3, 8, 16, 16, 4), *ka = NULL, *kw = NULL, *ra = NULL, *rw = NULL;
    assert_ok(dcb_op_kernels(a, x, &ka));
    assert_ok(dcb_op_kernels(w, x, &kw));
    assert_ok(dcb_op_routing(a, x, &ra));
    assert_ok(dcb_op_routing(w, x, &rw));
    assert_true(dcb_max_rel_err(ka, kw, NULL) == 0);
    assert_true(dcb_max_rel_err(ra, rw, NULL) == 0);
    dcb_tensor_free(ka), dcb_tensor_free(kw), dcb_tensor_free(ra), dcb_tensor_free(rw), dcb_tensor_free(x);
    dcb_op_destroy(a);
    dcb_op_destroy(w);
}

/* New weights and a new hyperparameter value reach the pick: dyconv's
 * temperature changed with dcb_op_set_param, new weights by init_weights,
 * both seen by forward and by dcb_op_kernels; a refused value leaves the op
 * as it was. */
static void test_changes_reach_the_pick(void **state) {
    (void)state;
    dcb_auto_clear_references();
    dcb_hparam hc[] = {TU_HP("cin", 8), TU_HP("cout", 8), TU_HP("k", 3), TU_HP("pad", 1), TU_HP("kernels", 3)};
    dcb_op *a = NULL, *w = NULL;
    assert_ok(dcb_op_create("dyconv", "auto", hc, 5, &a));
    assert_ok(dcb_op_create("dyconv", "combine_then_conv/winograd", hc, 5, &w));
    dcb_tensor *x = tu_randn4(2, 8, 16, 16, 4);
    for (int step = 0; step < 3; step++) {
        if (step == 0 || step == 2) {
            assert_ok(dcb_op_init_weights(a, 10 + (uint64_t)step));
            assert_ok(dcb_op_init_weights(w, 10 + (uint64_t)step));
        }
        if (step >= 1) {
            assert_ok(dcb_op_set_param(a, "temperature", 0.25 * step));
            assert_ok(dcb_op_set_param(w, "temperature", 0.25 * step));
        }
        dcb_tensor *ya = NULL, *yw = NULL, *ka = NULL, *kw = NULL;
        assert_ok(dcb_op_kernels(a, x, &ka));
        assert_ok(dcb_op_kernels(w, x, &kw));
        assert_ok(dcb_op_forward(a, x, &ya));
        assert_ok(dcb_op_forward(w, x, &yw));
        assert_string_equal(dcb_op_get_picked(a), "combine_then_conv/winograd");
        if (dcb_max_rel_err(ya, yw, NULL) != 0 || dcb_max_rel_err(ka, kw, NULL) != 0)
            fail_msg("step %d: auto differs from its pick", step);
        dcb_tensor_free(ya), dcb_tensor_free(yw), dcb_tensor_free(ka), dcb_tensor_free(kw);
    }
    assert_int_equal(dcb_op_set_param(a, "temperature", -1), DCB_INVALID_PARAM);
    assert_non_null(strstr(dcb_last_error(), "temperature"));
    dcb_tensor *y = NULL;
    assert_ok(dcb_op_forward(a, x, &y));
    dcb_tensor_free(y);
    dcb_tensor_free(x);
    dcb_op_destroy(a);
    dcb_op_destroy(w);
    /* a value the Winograd candidates refuse: they drop out, the pick follows */
    dcb_op *c = conv("auto", 8, 3, 1, 1, 1), *n = conv("naive", 8, 3, 1, 1, 1);
    assert_string_equal(pick_for(c, 1, 8, 20), "winograd");
    assert_ok(dcb_op_set_param(c, "stride", 2));
    assert_ok(dcb_op_set_param(n, "stride", 2));
    dcb_tensor *xs = tu_randn4(1, 8, 20, 20, 6), *yc = NULL, *yn = NULL;
    assert_ok(dcb_op_forward(c, xs, &yc));
    assert_ok(dcb_op_forward(n, xs, &yn));
    assert_string_equal(dcb_op_get_picked(c), "direct");
    tu_err_within_tol(c, yc, yn, "stride 2 after set_param");
    dcb_tensor_free(xs), dcb_tensor_free(yc), dcb_tensor_free(yn);
    dcb_op_destroy(c);
    dcb_op_destroy(n);
}

static void test_bad_references(void **state) {
    (void)state;
    assert_status_msg(dcb_auto_add_reference("conv2d", "direct", "avx2", 0, 1, 1, 1, 1, 1, 1), DCB_INVALID_ARGUMENT,
                      "threads=0");
    assert_status_msg(dcb_auto_add_reference("conv2d", "direct", "avx2", 1, 1, 1, 1, 1, 1, -2), DCB_INVALID_ARGUMENT,
                      "seconds=-2");
    assert_status_msg(dcb_auto_add_reference("conv2d", "direct", "avx2", 1, NAN, 1, 1, 1, 1, 1), DCB_INVALID_ARGUMENT,
                      "macs=nan");
    assert_status_msg(dcb_auto_add_reference(NULL, "direct", "avx2", 1, 1, 1, 1, 1, 1, 1), DCB_INVALID_ARGUMENT,
                      "NULL");
    assert_int_equal(dcb_auto_reference_count(NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_which_operators), cmocka_unit_test(test_rule),
        cmocka_unit_test(test_calibrated),      cmocka_unit_test(test_weights_follow),
        cmocka_unit_test(test_dynamic_products), cmocka_unit_test(test_changes_reach_the_pick),
        cmocka_unit_test(test_bad_references),
    };
    return cmocka_run_group_tests_name("impl auto", tests, NULL, NULL);
}
