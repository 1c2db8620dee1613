/* Kernel-similarity statistics: identical kernels give 1, orthogonal 0,
 * opposite -1; histogram and pair counts add up. */
#include "testutil.h"

#include <math.h>

static void test_identical_and_orthogonal(void **state) {
    (void)state;
    int64_t sh[3] = {3, 2, 4};
    dcb_tensor *k = dcb_tensor_new(3, sh);
    /* kernel 0 and 1 identical, kernel 2 orthogonal to both (disjoint support) */
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 2; i++) {
            k->data[0 * 8 + o * 4 + i] = (float)(1 + o + i);
            k->data[1 * 8 + o * 4 + i] = (float)(1 + o + i);
            k->data[2 * 8 + o * 4 + 2 + i] = (float)(3 - i);
        }
    dcb_similarity_stats s;
    assert_ok(dcb_similarity(k, &s));
    assert_int_equal(s.whole.pairs, 3);
    assert_int_equal(s.per_channel.pairs, 6);
    assert_true(fabs(s.whole.max - 1.0) < 1e-12);
    assert_true(fabs(s.whole.min) < 1e-12);
    assert_true(fabs(s.whole.mean - 1.0 / 3.0) < 1e-12);
    assert_true(fabs(s.whole.std - sqrt(2.0) / 3.0) < 1e-12);
    int64_t tot = 0;
    for (int b = 0; b < DCB_SIM_BINS; b++) tot += s.whole.hist[b];
    assert_int_equal(tot, 3);
    assert_int_equal(s.whole.hist[DCB_SIM_BINS - 1], 1);  /* the identical pair */
    assert_int_equal(s.whole.hist[DCB_SIM_BINS / 2], 2);  /* the two orthogonal pairs */
    dcb_tensor_free(k);
}

static void test_opposite_scaled_and_zero(void **state) {
    (void)state;
    int64_t sh[2] = {3, 5};
    dcb_tensor *k = dcb_tensor_new(2, sh);
    for (int i = 0; i < 5; i++) {
        k->data[i] = (float)(i - 2) + 0.5f;
        k->data[5 + i] = -3.0f * k->data[i];  /* opposite direction, other scale */
    }                                          /* kernel 2 stays zero */
    dcb_similarity_stats s;
    assert_ok(dcb_similarity(k, &s));
    assert_true(fabs(s.whole.min + 1.0) < 1e-12);
    assert_true(fabs(s.whole.max) < 1e-12);   /* pairs with the zero kernel count as 0 */
    assert_int_equal(s.whole.hist[0], 1);
    dcb_tensor_free(k);
}

static void test_random_kernels_near_zero(void **state) {
    (void)state;
    int64_t sh[4] = {16, 8, 9, 9};
    dcb_tensor *k = dcb_tensor_new(4, sh);
    dcb_tensor_randn(k, 5);
    dcb_similarity_stats s;
    assert_ok(dcb_similarity(k, &s));
    assert_int_equal(s.whole.pairs, 16 * 15 / 2);
    assert_int_equal(s.per_channel.pairs, 8 * 16 * 15 / 2);
    assert_true(fabs(s.whole.mean) < 0.05);
    assert_true(s.whole.max < 0.3 && s.whole.min > -0.3);
    assert_true(s.per_channel.std > s.whole.std);  /* shorter vectors scatter more */
    dcb_tensor_free(k);
}

static void test_invalid(void **state) {
    (void)state;
    int64_t one[3] = {1, 4, 4};
    dcb_tensor *k = dcb_tensor_new(3, one);
    dcb_similarity_stats s;
    assert_status_msg(dcb_similarity(k, &s), DCB_INVALID_SHAPE, "at least 2 kernels");
    dcb_tensor_free(k);
    int64_t flat[1] = {9};
    k = dcb_tensor_new(1, flat);
    assert_status_msg(dcb_similarity(k, &s), DCB_INVALID_SHAPE, "(9)");
    dcb_tensor_free(k);
}

/* Every pair's cosine, in order (0,1), (0,2), (1,2), ...: the values whose
 * mean, min and max dcb_similarity reports; too small a buffer is refused. */
static void test_pairs(void **state) {
    (void)state;
    int64_t sh[2] = {5, 7};
    dcb_tensor *k = dcb_tensor_new(2, sh);
    dcb_tensor_randn(k, 3);
    int64_t n = 0;
    assert_ok(dcb_similarity_pairs(k, NULL, 0, &n));
    assert_int_equal(n, 10);
    double v[10], small[4];
    assert_int_equal(dcb_similarity_pairs(k, small, 4, &n), DCB_INVALID_ARGUMENT);
    assert_ok(dcb_similarity_pairs(k, v, 10, &n));
    dcb_similarity_stats s;
    assert_ok(dcb_similarity(k, &s));
    double sum = 0, mn = 2, mx = -2;
    int p = 0;
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++, p++) {
            double ab = 0, aa = 0, bb = 0;
            for (int e = 0; e < 7; e++) {
                ab += (double)k->data[i * 7 + e] * k->data[j * 7 + e];
                aa += (double)k->data[i * 7 + e] * k->data[i * 7 + e];
                bb += (double)k->data[j * 7 + e] * k->data[j * 7 + e];
            }
            assert_true(fabs(v[p] - ab / sqrt(aa * bb)) < 1e-12);
            sum += v[p];
            mn = fmin(mn, v[p]);
            mx = fmax(mx, v[p]);
        }
    assert_true(fabs(sum / 10 - s.whole.mean) < 1e-12);
    assert_true(mn == s.whole.min && mx == s.whole.max);
    dcb_tensor_free(k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_and_orthogonal),
        cmocka_unit_test(test_opposite_scaled_and_zero),
        cmocka_unit_test(test_random_kernels_near_zero),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_pairs),
    };
    return cmocka_run_group_tests_name("similarity", tests, NULL, NULL);
}
