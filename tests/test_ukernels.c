/* The f32 GEMM micro-kernel (kernels/ukernels/ukernels.h): every variant
 * compiled in that this CPU runs (the SIMD ones where the CPU has them, the
 * scalar one always) against a plain triple loop, on random sizes with
 * mr < 6, n < 16 and the tails, k = 0 and 1, accumulate on and off, with and
 * without bias; that nothing outside the mr x n block of C is written; that
 * rows of A past mr and columns of B past n never reach C (they hold NaN);
 * and that a block's result is the same to the bit however it is split into
 * calls (what keeps the engines' results unchanged by their tiling), gemm2's
 * two-panel calls included. */
#include "testutil.h"

#include "dcb_internal.h"
#include "ukernels/ukernels.h"

#include <float.h>
#include <math.h>

#define MAXK 300
#define MAXN 48
#define PAD 5 /* columns of C (and B) past n, and rows of C past mr */

static float frand(uint64_t *s) { return (float)((double)(dcb_rand_u64(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

/* The inputs of one call: A as np panels [k][6] (NaN past mr, and in the
 * DCB_OVERREAD_FLOATS past the end), B (k x ldb, NaN past n), C (mr + PAD
 * rows of ldc, random), bias (12 floats). */
typedef struct prob {
    int k, mr, n, np, accumulate, with_bias;
    size_t ldb, ldc;
    float *a, *b, *c0, *bias;
} prob;

static prob make_prob(uint64_t *s, int k, int mr, int n, int np, int accumulate, int with_bias) {
    prob p = {k, mr, n, np, accumulate, with_bias, (size_t)n + (size_t)tu_rand(s, 0, PAD), (size_t)n + PAD,
              NULL, NULL, NULL, NULL};
    const size_t na = (size_t)np * DCB_UK_MR * (unsigned)k + DCB_OVERREAD_FLOATS;
    p.a = malloc(sizeof(float) * na);
    for (size_t i = 0; i < na; i++) p.a[i] = NAN;
    for (int q = 0; q < np; q++)
        for (int i = 0; i < k; i++)
            for (int r = 0; r < DCB_UK_MR; r++)
                if (q * DCB_UK_MR + r < mr) p.a[((size_t)q * k + i) * DCB_UK_MR + r] = frand(s);
    const size_t nb = (size_t)(k ? k : 1) * p.ldb + 4; /* gemm_n4 reads 4 columns of the last row */
    p.b = malloc(sizeof(float) * nb);
    for (size_t i = 0; i < nb; i++) p.b[i] = NAN;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n; j++) p.b[(size_t)i * p.ldb + j] = frand(s);
    const size_t nc = (size_t)(mr + PAD) * p.ldc;
    p.c0 = malloc(sizeof(float) * nc);
    for (size_t i = 0; i < nc; i++) p.c0[i] = frand(s);
    p.bias = malloc(sizeof(float) * 2 * DCB_UK_MR);
    for (int i = 0; i < 2 * DCB_UK_MR; i++) p.bias[i] = frand(s);
    return p;
}

static void free_prob(prob *p) {
    free(p->a);
    free(p->b);
    free(p->c0);
    free(p->bias);
}

static float a_at(const prob *p, int r, int i) {
    return p->a[((size_t)(r / DCB_UK_MR) * p->k + i) * DCB_UK_MR + r % DCB_UK_MR];
}

/* c (a copy of c0 after the call) against the triple loop, and c0 outside
 * the block. */
static void check(const prob *p, const float *c, const char *what, const char *variant) {
    for (int r = 0; r < p->mr + PAD; r++)
        for (size_t j = 0; j < p->ldc; j++) {
            const size_t at = (size_t)r * p->ldc + j;
            if (r >= p->mr || j >= (size_t)p->n) {
                if (memcmp(&c[at], &p->c0[at], sizeof(float)))
                    fail_msg("%s %s k=%d mr=%d n=%d: wrote C[%d][%zu] outside the block", variant, what, p->k,
                             p->mr, p->n, r, j);
                continue;
            }
            double ref = 0, mag = 0;
            for (int i = 0; i < p->k; i++) {
                const double t = (double)a_at(p, r, i) * p->b[(size_t)i * p->ldb + j];
                ref += t;
                mag += fabs(t);
            }
            if (p->with_bias) ref += p->bias[r], mag += fabs(p->bias[r]);
            if (p->accumulate) ref += p->c0[at], mag += fabs(p->c0[at]);
            /* the worst-case rounding of k + 2 additions */
            if (!(fabs(c[at] - ref) <= (p->k + 2) * FLT_EPSILON * mag + 1e-30))
                fail_msg("%s %s k=%d mr=%d n=%d acc=%d bias=%d: C[%d][%zu] = %.9g, expected %.9g", variant, what,
                         p->k, p->mr, p->n, p->accumulate, p->with_bias, r, j, c[at], ref);
        }
}

static float *copy_c(const prob *p) {
    const size_t nc = (size_t)(p->mr + PAD) * p->ldc;
    float *c = malloc(sizeof(float) * nc);
    memcpy(c, p->c0, sizeof(float) * nc);
    return c;
}

static void assert_same_bits(const float *x, const float *y, size_t n, const char *what, const char *variant) {
    if (memcmp(x, y, sizeof(float) * n)) fail_msg("%s: %s differs in its bits", variant, what);
}

/* gemm: against the reference, then split into calls of column pieces and
 * (mr > 4) row pieces, which must give the same bits. */
static void check_gemm(const dcb_ukernels *u, const prob *p) {
    const float *bias = p->with_bias ? p->bias : NULL;
    float *c = copy_c(p);
    u->gemm(p->k, p->a, p->b, p->ldb, c, p->ldc, p->mr, p->n, p->accumulate, bias);
    check(p, c, "gemm", u->name);
    const size_t nc = (size_t)(p->mr + PAD) * p->ldc;
    /* columns: 8 at a time (then the rest), and each column alone */
    for (int w = 8; w >= 1; w -= 7) {
        float *cs = copy_c(p);
        for (int j = 0; j < p->n; j += w) {
            const int nn = p->n - j < w ? p->n - j : w;
            u->gemm(p->k, p->a, p->b + j, p->ldb, cs + j, p->ldc, p->mr, nn, p->accumulate, bias);
        }
        assert_same_bits(c, cs, nc, w == 8 ? "gemm over 8-column pieces" : "gemm column by column", u->name);
        free(cs);
    }
    if (p->mr > 4) { /* the 4-row tile against the 6-row one */
        float *cs = copy_c(p);
        u->gemm(p->k, p->a, p->b, p->ldb, cs, p->ldc, 4, p->n, p->accumulate, bias);
        for (int r = 4; r < p->mr; r++)
            memcpy(cs + (size_t)r * p->ldc, c + (size_t)r * p->ldc, sizeof(float) * p->ldc);
        assert_same_bits(c, cs, nc, "gemm with mr = 4", u->name);
        free(cs);
    }
    free(c);
}

static void check_pack(const dcb_ukernels *u, const prob *p) {
    const float *bias = p->with_bias ? p->bias : NULL;
    float *c = copy_c(p), *cg = copy_c(p);
    const int nr = u->nr;
    float *bp = malloc(sizeof(float) * ((size_t)p->k * nr + 1));
    u->gemm_pack(p->k, p->a, p->b, p->ldb, bp, c, p->ldc, p->mr, p->accumulate, bias);
    check(p, c, "gemm_pack", u->name);
    for (int i = 0; i < p->k; i++)
        if (memcmp(bp + (size_t)i * nr, p->b + (size_t)i * p->ldb, sizeof(float) * nr))
            fail_msg("%s gemm_pack k=%d: packed row %d is not B's", u->name, p->k, i);
    /* the packed panel through gemm: the same bits */
    u->gemm(p->k, p->a, bp, nr, cg, p->ldc, p->mr, nr, p->accumulate, bias);
    assert_same_bits(c, cg, (size_t)(p->mr + PAD) * p->ldc, "gemm_pack against gemm", u->name);
    free(bp);
    free(c);
    free(cg);
}

static void check_n4(const dcb_ukernels *u, const prob *p) {
    float *c = copy_c(p);
    u->gemm_n4(p->k, p->a, p->b, p->ldb, c, p->ldc, p->mr, p->n, p->accumulate, 1, 0, 0, 0);
    check(p, c, "gemm_n4", u->name);
    /* against gemm, panel by panel: the same bits */
    float *cg = copy_c(p);
    for (int q = 0; q * DCB_UK_MR < p->mr; q++) {
        const int mr = p->mr - q * DCB_UK_MR < DCB_UK_MR ? p->mr - q * DCB_UK_MR : DCB_UK_MR;
        u->gemm(p->k, p->a + (size_t)q * DCB_UK_MR * p->k, p->b, p->ldb, cg + (size_t)q * DCB_UK_MR * p->ldc,
                p->ldc, mr, p->n, p->accumulate, NULL);
    }
    assert_same_bits(c, cg, (size_t)(p->mr + PAD) * p->ldc, "gemm_n4 against gemm", u->name);
    free(c);
    free(cg);
}

/* gemm_n4 over count products at uniform strides (what the Winograd GEMMs'
 * tails pass, 4 or 8 positions a call): each product's C, the rows and
 * columns around its block included, has the bits of its own call with
 * count 1 (held to the triple loop by check_n4). */
static void check_n4_batch(const dcb_ukernels *u, uint64_t *s, int k, int mr, int n, int count, int accumulate) {
    const int np = (mr + DCB_UK_MR - 1) / DCB_UK_MR;
    prob ps[9];
    for (int i = 0; i < count; i++) ps[i] = make_prob(s, k, mr, n, np, accumulate, 0);
    /* one ldb for all (make_prob draws one each) */
    const size_t ldb = ps[0].ldb, ldc = ps[0].ldc;
    const size_t la = (size_t)np * DCB_UK_MR * (unsigned)k + DCB_OVERREAD_FLOATS, lb = (size_t)(k ? k : 1) * ldb + 4,
                 lc = (size_t)(mr + PAD) * ldc;
    const size_t as = la + (size_t)tu_rand(s, 0, 7), bs = lb + (size_t)tu_rand(s, 0, 7), cs = lc + (size_t)tu_rand(s, 0, 7);
    float *A = malloc(sizeof(float) * as * count), *B = malloc(sizeof(float) * bs * count),
          *C = malloc(sizeof(float) * cs * count);
    for (size_t i = 0; i < as * count; i++) A[i] = NAN;
    for (size_t i = 0; i < bs * count; i++) B[i] = NAN;
    for (size_t i = 0; i < cs * count; i++) C[i] = NAN;
    for (int i = 0; i < count; i++) {
        memcpy(A + i * as, ps[i].a, sizeof(float) * la);
        for (int r = 0; r < (k ? k : 1); r++)
            memcpy(B + i * bs + (size_t)r * ldb, ps[i].b + (size_t)r * ps[i].ldb, sizeof(float) * (size_t)n);
        memcpy(C + i * cs, ps[i].c0, sizeof(float) * lc);
    }
    u->gemm_n4(k, A, B, ldb, C, ldc, mr, n, accumulate, count, as, bs, cs);
    for (int i = 0; i < count; i++) {
        float *c1 = copy_c(&ps[i]);
        u->gemm_n4(k, ps[i].a, ps[i].b, ps[i].ldb, c1, ldc, mr, n, accumulate, 1, 0, 0, 0);
        if (memcmp(C + i * cs, c1, sizeof(float) * lc))
            fail_msg("%s gemm_n4 k=%d mr=%d n=%d acc=%d: product %d of %d differs from its own call", u->name, k, mr,
                     n, accumulate, i, count);
        for (size_t j = lc; j < cs; j++)
            if (!isnan(C[i * cs + j])) fail_msg("%s gemm_n4: wrote past product %d's C", u->name, i);
        free(c1);
        free_prob(&ps[i]);
    }
    free(A);
    free(B);
    free(C);
}

/* gemm2 (where a variant has one): against the reference, then against gemm
 * called panel by panel, which must give the same bits. */
static void check_gemm2(const dcb_ukernels *u, const prob *p) {
    const float *bias = p->with_bias ? p->bias : NULL;
    float *c = copy_c(p), *cg = copy_c(p);
    u->gemm2(p->k, p->a, p->b, p->ldb, c, p->ldc, p->mr, p->n, p->accumulate, bias);
    check(p, c, "gemm2", u->name);
    for (int q = 0; q * DCB_UK_MR < p->mr; q++) {
        const int mr = p->mr - q * DCB_UK_MR < DCB_UK_MR ? p->mr - q * DCB_UK_MR : DCB_UK_MR;
        u->gemm(p->k, p->a + (size_t)q * DCB_UK_MR * p->k, p->b, p->ldb, cg + (size_t)q * DCB_UK_MR * p->ldc,
                p->ldc, mr, p->n, p->accumulate, bias ? bias + q * DCB_UK_MR : NULL);
    }
    assert_same_bits(c, cg, (size_t)(p->mr + PAD) * p->ldc, "gemm2 against gemm", u->name);
    free(c);
    free(cg);
}

static void test_variants(void **state) {
    (void)state;
    const dcb_ukernels *const *vs = dcb_uk_variants();
    int tested = 0, scalar = 0;
    for (int vi = 0; vs[vi]; vi++) {
        const dcb_ukernels *u = vs[vi];
        if (!dcb_isa_runs(u->isa)) {
            print_message("ukernel %s: compiled in, not run by this CPU: skipped\n", u->name);
            continue;
        }
        scalar += strcmp(u->name, "scalar") == 0;
        uint64_t s = 1234 + (uint64_t)vi;
        const int rounds = tu_quick() ? 60 : 400;
        static const int ks[] = {0, 1, 2, 3, 7, 64};
        int calls = 0, gemm2_calls = 0;
        for (int it = 0; it < rounds; it++) {
            const int k = it < 6 * 4 ? ks[it % 6] : tu_rand(&s, 1, it % 5 ? 40 : MAXK);
            const int mr = 1 + it % DCB_UK_MR, acc = it / 2 % 2, bias = it / 4 % 2;
            const int n = it < 40 ? 1 + it % 40 : tu_rand(&s, 1, MAXN);
            prob p = make_prob(&s, k, mr, n, 1, acc, bias);
            check_gemm(u, &p);
            free_prob(&p);
            p = make_prob(&s, k, mr, u->nr, 1, acc, bias);
            check_pack(u, &p);
            free_prob(&p);
            /* up to 10 panels: gemm_n4 takes them 8, 4, 2 and 1 at a time */
            const int mr4 = 1 + it * 7 % (10 * DCB_UK_MR), n4 = 1 + it / 3 % 4;
            p = make_prob(&s, k, mr4, n4, (mr4 + DCB_UK_MR - 1) / DCB_UK_MR, it / 12 % 2, 0);
            check_n4(u, &p);
            free_prob(&p);
            /* 1 to 9 products of up to 3 panels: taken 8, 4, 2 and 1 at a time */
            check_n4_batch(u, &s, k, 1 + it * 5 % (3 * DCB_UK_MR), n4, 1 + it % 9, it / 7 % 2);
            if (u->gemm2) {
                /* column counts around the 16- and 32-wide tiles */
                const int mr2 = 1 + it % (2 * DCB_UK_MR), n2 = it < 48 ? 1 + it : tu_rand(&s, 1, MAXN);
                p = make_prob(&s, k, mr2, n2, mr2 > DCB_UK_MR ? 2 : 1, acc, bias);
                check_gemm2(u, &p);
                free_prob(&p);
                gemm2_calls++;
            }
            calls += 3;
        }
        print_message("ukernel %s: %d problems of each entry agree with the triple loop (gemm2: %d)\n", u->name,
                      calls / 3, gemm2_calls);
        tested++;
    }
    assert_true(scalar == 1);
    assert_true(tested >= 1);
}

/* dcb_uk() picks the variant of the process's level: the one DCB_ISA names
 * when set (and run here), the widest this CPU runs otherwise; dcb_isa()
 * names it, and dcb_isa_check() accepts exactly the DCB_ISA it obeyed. */
static void test_selection(void **state) {
    (void)state;
    const dcb_ukernels *u = dcb_uk(), *const *vs = dcb_uk_variants();
    assert_non_null(u);
    assert_true(dcb_isa_runs(u->isa));
    assert_string_equal(u->name, dcb_isa());
    assert_int_equal(u->isa, dcb_isa_current());
    int listed = 0;
    for (int i = 0; vs[i]; i++) listed += vs[i] == u;
    assert_int_equal(listed, 1);
    const char *want = getenv("DCB_ISA");
    char msg[256];
    const dcb_status st = dcb_isa_check(msg, sizeof msg);
    if (want && *want && st == DCB_OK) {
        assert_string_equal(u->name, want);
    } else {
        if (want && *want) { /* refused: named, and the widest runs */
            assert_int_equal(st, DCB_INVALID_PARAM);
            assert_non_null(strstr(msg, "DCB_ISA="));
            assert_non_null(strstr(msg, want));
        }
        for (int i = 0; vs[i]; i++)
            if (dcb_isa_runs(vs[i]->isa)) {
                assert_ptr_equal(u, vs[i]);
                break;
            }
    }
    /* the levels this CPU runs are what dcb_isa_available() lists */
    for (int l = 0; l < DCB_ISA_LEVELS; l++)
        assert_int_equal(dcb_isa_runs((dcb_isa_level)l), strstr(dcb_isa_available(), dcb_isa_level_name((dcb_isa_level)l)) != NULL);
    print_message("dcb_uk(): %s (available %s)%s%s\n", u->name, dcb_isa_available(), want ? ", DCB_ISA=" : "",
                  want ? want : "");
}

/* The SIMD variants compute each element by the same chain (fused
 * multiply-adds from zero, + bias, + old C): avx512 and avx2 give the same
 * bits, so that results do not depend on the machine a run lands on. */
static void test_simd_variants_agree(void **state) {
    (void)state;
    const dcb_ukernels *const *vs = dcb_uk_variants(), *ref = NULL;
    for (int i = 0; vs[i]; i++)
        if (vs[i]->isa == DCB_ISA_AVX2) ref = vs[i];
    if (!ref || !dcb_isa_runs(DCB_ISA_AVX2)) {
        print_message("avx2 does not run here: nothing to compare\n");
        return;
    }
    int compared = 0;
    for (int vi = 0; vs[vi]; vi++) {
        const dcb_ukernels *u = vs[vi];
        if (u == ref || u->isa == DCB_ISA_SCALAR) continue;
        if (!dcb_isa_runs(u->isa)) {
            print_message("ukernel %s: not run by this CPU: not compared\n", u->name);
            continue;
        }
        uint64_t s = 99;
        for (int it = 0; it < (tu_quick() ? 40 : 200); it++) {
            const int k = tu_rand(&s, 0, 80), mr = 1 + it % DCB_UK_MR, n = tu_rand(&s, 1, MAXN);
            prob p = make_prob(&s, k, mr, n, 1, it % 2, it / 2 % 2);
            const float *bias = p.with_bias ? p.bias : NULL;
            float *c1 = copy_c(&p), *c2 = copy_c(&p);
            u->gemm(p.k, p.a, p.b, p.ldb, c1, p.ldc, p.mr, p.n, p.accumulate, bias);
            ref->gemm(p.k, p.a, p.b, p.ldb, c2, p.ldc, p.mr, p.n, p.accumulate, bias);
            assert_same_bits(c1, c2, (size_t)(p.mr + PAD) * p.ldc, "gemm against avx2", u->name);
            free(c1);
            free(c2);
            free_prob(&p);
            compared++;
        }
    }
    print_message("%d problems give the same bits in every SIMD variant run here\n", compared);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_simd_variants_agree),
        cmocka_unit_test(test_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
