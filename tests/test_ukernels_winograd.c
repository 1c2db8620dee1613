/* The Winograd engine's tile-group transforms (kernels/ukernels/
 * winograd_f32.h): every variant compiled in that this CPU runs against the
 * scalar one, on planes of odd and tiny sizes, groups of 1..8 tiles that
 * start before the plane, run past its end or lie wholly outside it, for
 * F(2x2) and F(4x4). in_group: lanes j < k of every value row match (the
 * SIMD variants may fill the other lanes of the 8, never past them);
 * out_group: the outputs match, and no element of the output plane outside
 * the group's clipped m x m tiles is written (the plane starts as NaN
 * sentinels). avx512 and avx2 are one source: they must give the same bits.
 * Variants the CPU does not run are named as skipped. */
#include "testutil.h"

#include "dcb_internal.h"
#include "ukernels/winograd_f32.h"

#include <math.h>

#define VS 11 /* lanes per value row: 8 for the SIMD writes, 3 of guard */
static const float GUARDV = -777.25f;

static float frand(uint64_t *s) { return (float)((double)(dcb_rand_u64(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static const dcb_wk_kernels *variant(dcb_isa_level l) {
    const dcb_wk_kernels *const *vs = dcb_wk_variants();
    for (int i = 0; vs[i]; i++)
        if (vs[i]->isa == l) return vs[i];
    return NULL;
}

static void close_enough(float got, float want, double scale, const char *what, const char *name, int m, int H,
                         int W, int row0, int col0, int k) {
    if (!(fabs((double)got - want) <= 1e-5 * scale))
        fail_msg("%s %s m=%d H=%d W=%d row0=%d col0=%d k=%d: %.9g, scalar %.9g", name, what, m, H, W, row0, col0, k,
                 got, want);
}

/* One random case of both entries for variant u against the scalar one; when
 * same is given, u's results must also equal same's bit for bit. */
static void one_case(const dcb_wk_kernels *u, const dcb_wk_kernels *ref, const dcb_wk_kernels *same, uint64_t *s) {
    static const int ms[] = {2, 4, 6};
    const int m = ms[tu_rand(s, 0, 2)], a = m + 2, a2 = a * a;
    /* up to 70 columns: F(6x6)'s group of 8 tiles spans 50, and must also run inside the row */
    const int H = tu_rand(s, 1, 40), W = tu_rand(s, 1, 70), k = tu_rand(s, 1, 8);
    const int row0 = tu_rand(s, -3, H + 1), col0 = tu_rand(s, -3, W + 1);
    float *x = malloc(sizeof(float) * (size_t)H * W);
    for (int i = 0; i < H * W; i++) x[i] = frand(s);
    float *v[3];
    for (int q = 0; q < 3; q++) {
        v[q] = malloc(sizeof(float) * (size_t)a2 * VS);
        for (int i = 0; i < a2 * VS; i++) v[q][i] = GUARDV;
    }
    ref->in_group(m, x, H, W, row0, col0, k, v[0], VS);
    u->in_group(m, x, H, W, row0, col0, k, v[1], VS);
    if (same) same->in_group(m, x, H, W, row0, col0, k, v[2], VS);
    for (int xi = 0; xi < a2; xi++)
        for (int j = 0; j < VS; j++) {
            const size_t at = (size_t)xi * VS + j;
            if (j < k) close_enough(v[1][at], v[0][at], 30.0, "in_group", u->name, m, H, W, row0, col0, k);
            else if (j >= 8 && v[1][at] != GUARDV)
                fail_msg("%s in_group m=%d: wrote lane %d of row %d (past the 8 of a group)", u->name, m, j, xi);
            if (same && j < 8 && memcmp(&v[1][at], &v[2][at], sizeof(float)))
                fail_msg("%s in_group m=%d: differs in its bits from %s", u->name, m, same->name);
        }
    /* out_group from random M rows into a plane of Ho x Wo */
    const int Ho = tu_rand(s, 1, 40), Wo = tu_rand(s, 1, 70);
    const int orow = tu_rand(s, 0, Ho - 1), ocol = tu_rand(s, 0, Wo - 1);
    const float bias = frand(s);
    float *mm = malloc(sizeof(float) * (size_t)a2 * VS);
    for (int i = 0; i < a2 * VS; i++) mm[i] = frand(s);
    float *y[3];
    for (int q = 0; q < 3; q++) {
        y[q] = malloc(sizeof(float) * (size_t)Ho * Wo);
        for (int i = 0; i < Ho * Wo; i++) y[q][i] = NAN;
    }
    ref->out_group(m, mm, VS, k, bias, y[0], Ho, Wo, orow, ocol);
    u->out_group(m, mm, VS, k, bias, y[1], Ho, Wo, orow, ocol);
    if (same) same->out_group(m, mm, VS, k, bias, y[2], Ho, Wo, orow, ocol);
    for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) {
            const size_t at = (size_t)i * Wo + j;
            const int in = i >= orow && i < orow + m && j >= ocol && j < ocol + m * k;
            if (!in) {
                if (!isnan(y[1][at])) fail_msg("%s out_group m=%d k=%d: wrote (%d, %d) outside its tiles", u->name, m, k, i, j);
                continue;
            }
            close_enough(y[1][at], y[0][at], 60.0, "out_group", u->name, m, Ho, Wo, orow, ocol, k);
            if (same && memcmp(&y[1][at], &y[2][at], sizeof(float)))
                fail_msg("%s out_group m=%d: differs in its bits from %s", u->name, m, same->name);
        }
    for (int q = 0; q < 3; q++) {
        free(v[q]);
        free(y[q]);
    }
    free(mm);
    free(x);
}

static void test_variants(void **state) {
    (void)state;
    const dcb_wk_kernels *const *vs = dcb_wk_variants(), *ref = variant(DCB_ISA_SCALAR);
    const dcb_wk_kernels *avx2 = variant(DCB_ISA_AVX2);
    assert_non_null(ref);
    int tested = 0;
    for (int vi = 0; vs[vi]; vi++) {
        const dcb_wk_kernels *u = vs[vi];
        if (!dcb_isa_runs(u->isa)) {
            print_message("winograd %s: compiled in, not run by this CPU: skipped\n", u->name);
            continue;
        }
        const dcb_wk_kernels *same = u->isa == DCB_ISA_AVX512 && avx2 && dcb_isa_runs(DCB_ISA_AVX2) ? avx2 : NULL;
        uint64_t s = 77 + (uint64_t)vi;
        const int n = tu_quick() ? 300 : 3000;
        for (int it = 0; it < n; it++) one_case(u, ref, same, &s);
        print_message("winograd %s: %d cases agree with scalar%s\n", u->name, n, same ? " (and avx2, bit for bit)" : "");
        tested++;
    }
    assert_true(tested >= 1);
    const dcb_wk_kernels *w = dcb_wk();
    assert_true(dcb_isa_runs(w->isa));
    assert_int_equal(w->isa, dcb_isa_current());
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_variants)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
