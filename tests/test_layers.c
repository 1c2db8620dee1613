/* The network layers' semantics that the generic tests do not pin down:
 * batch norm in train mode (batch statistics, PyTorch's running averages
 * with the unbiased variance) against eval mode (running statistics), the
 * refusal of one value per channel; max pooling's ties; the loss. */
#include "testutil.h"

static dcb_op *make(const char *name, const dcb_hparam *hp, int n) {
    dcb_op *op = NULL;
    assert_ok(dcb_op_create(name, NULL, hp, n, &op));
    assert_ok(dcb_op_init_weights(op, 1));
    return op;
}

static void test_batchnorm_train_eval(void **state) {
    (void)state;
    const int N = 3, C = 2, HW = 4;
    const dcb_hparam hp[] = {TU_HP("channels", C), TU_HP("momentum", 0.1)};
    dcb_op *op = make("batchnorm", hp, 2);
    dcb_tensor *x = tu_randn4(N, C, 2, 2, 5), *y = TU_LIKE(x), *ye = NULL;
    for (int64_t i = 0; i < x->size; i++) x->data[i] = 3.0f * x->data[i] + 2.0f; /* mean 2, var 9 */
    /* weight 1, bias 0, running 0 / 1 after init */
    assert_ok(dcb_op_forward_train(op, x, y));
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0, ys = 0, ys2 = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < HW; k++) {
                const double v = x->data[(n * C + c) * HW + k], w = y->data[(n * C + c) * HW + k];
                s += v, s2 += v * v, ys += w, ys2 += w * w;
            }
        const double m = s / (N * HW), var_b = s2 / (N * HW) - m * m, var_u = var_b * (N * HW) / (N * HW - 1);
        /* the output is normalised with the batch's biased variance */
        assert_true(fabs(ys / (N * HW)) < 1e-5);
        assert_true(fabs(ys2 / (N * HW) - var_b / (var_b + 1e-5)) < 1e-4);
        /* running = 0.9 * running + 0.1 * batch (unbiased variance) */
        const float rm = dcb_op_get_weight(op, "running_mean")->data[c];
        const float rv = dcb_op_get_weight(op, "running_var")->data[c];
        assert_true(fabs(rm - 0.1 * m) < 1e-5);
        assert_true(fabs(rv - (0.9 + 0.1 * var_u)) < 1e-4);
    }
    /* eval mode: the running statistics, not the batch's */
    assert_ok(dcb_op_forward(op, x, &ye));
    for (int c = 0; c < C; c++) {
        const float rm = dcb_op_get_weight(op, "running_mean")->data[c];
        const float rv = dcb_op_get_weight(op, "running_var")->data[c];
        const float v = x->data[c * HW], want = (float)((v - rm) / sqrt(rv + 1e-5));
        assert_true(fabs(ye->data[c * HW] - want) < 1e-5 * (1 + fabs(want)));
    }
    assert_true(dcb_op_train_differs(op));
    assert_true(dcb_op_weight_is_buffer(op, 2) && dcb_op_weight_is_buffer(op, 3));
    /* one value per channel: no batch statistics */
    dcb_tensor *one = tu_randn4(1, C, 1, 1, 1), *yo = TU_LIKE(one);
    assert_status_msg(dcb_op_forward_train(op, one, yo), DCB_INVALID_SHAPE, "batchnorm");
    dcb_tensor_free(one);
    dcb_tensor_free(yo);
    dcb_tensor_free(x);
    dcb_tensor_free(y);
    dcb_tensor_free(ye);
    dcb_op_destroy(op);
}

static void test_maxpool_ties_first(void **state) {
    (void)state;
    const dcb_hparam hp[] = {TU_HP("k", 2)};
    dcb_op *op = make("maxpool", hp, 1);
    dcb_tensor *x = dcb_tensor_new4(1, 1, 2, 2), *y = dcb_tensor_new4(1, 1, 1, 1), *dy = dcb_tensor_new4(1, 1, 1, 1);
    dcb_tensor *dx = TU_LIKE(x);
    for (int i = 0; i < 4; i++) x->data[i] = 1.0f; /* a four-way tie */
    dy->data[0] = 5.0f;
    assert_ok(dcb_op_forward_train(op, x, y));
    assert_ok(dcb_op_backward(op, dy, dx, NULL));
    assert_true(dx->data[0] == 5.0f && dx->data[1] == 0 && dx->data[2] == 0 && dx->data[3] == 0);
    dcb_tensor_free(x);
    dcb_tensor_free(y);
    dcb_tensor_free(dy);
    dcb_tensor_free(dx);
    dcb_op_destroy(op);
}

static void test_softmax_ce(void **state) {
    (void)state;
    const int64_t s[2] = {2, 3};
    dcb_tensor *z = dcb_tensor_new(2, s), *d = dcb_tensor_new(2, s);
    const float v[6] = {1, 2, 3, 0, 0, 0};
    memcpy(z->data, v, sizeof v);
    const int32_t y[2] = {2, 1};
    int64_t hits;
    const double loss = dcb_softmax_ce(z, y, 0, d, &hits);
    const double l0 = -log(exp(3.0) / (exp(1.0) + exp(2.0) + exp(3.0))), l1 = log(3.0);
    assert_true(fabs(loss - (l0 + l1) / 2) < 1e-9);
    assert_int_equal(hits, 1); /* row 2 ties: argmax is the first, 0 */
    assert_true(fabs(d->data[2] - (exp(3.0) / (exp(1.0) + exp(2.0) + exp(3.0)) - 1) / 2) < 1e-7);
    /* label smoothing 0.3 over 3 classes: the uniform row's loss stays log 3 */
    const double ls = dcb_softmax_ce(z, y, 0.3, NULL, NULL);
    const double q0 = 0.1, q2 = 0.8, p1 = exp(1.0), p2 = exp(2.0), p3 = exp(3.0), Z = p1 + p2 + p3;
    const double r0 = -(q0 * log(p1 / Z) + q0 * log(p2 / Z) + q2 * log(p3 / Z));
    assert_true(fabs(ls - (r0 + log(3.0)) / 2) < 1e-9);
    dcb_tensor_free(z);
    dcb_tensor_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_train_eval),
        cmocka_unit_test(test_maxpool_ties_first),
        cmocka_unit_test(test_softmax_ce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
