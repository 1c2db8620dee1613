/* The kernel families of kernels/ukernels/ besides the GEMM (test_ukernels.c
 * has that one): the depthwise rows and stride-2 split (dwconv.h), the
 * sequence row (seq1d.h), the exp / softmax / sigmoid family (vmath.h) and
 * the dynamic operators' helpers (dynmix.h). Every variant compiled in that
 * this CPU runs (dcb_isa_runs) against a plain-C reference in double, on many
 * sizes including the empty, the odd and the vector tails (0, 1, 15, 17, ...);
 * every output sits between guard floats that must come back untouched (so
 * nothing outside the output range is written), and inputs past what an
 * entry may read hold NaN where the contract lets a variant load them
 * without using them. The SIMD variants that promise the same bits are
 * checked to give them; the picked variant of each family is the process's
 * level (DCB_ISA). Variants the CPU does not run are named as skipped. */
#include "testutil.h"

#include "dcb_internal.h"
#include "ukernels/dwconv.h"
#include "ukernels/dynmix.h"
#include "ukernels/seq1d.h"
#include "ukernels/vmath.h"

#include <float.h>
#include <math.h>

static float frand(uint64_t *s) { return (float)((double)(dcb_rand_u64(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

/* ------------------------------------------------------------ guarded buffers
 * n floats at p with GUARD floats of a known pattern on either side. */
#define GUARD 37
typedef struct gbuf {
    float *base, *p;
    size_t n;
} gbuf;

static float guard_val(size_t i) { return -1234.5f - (float)i * 0.25f; }

static gbuf gb_new(size_t n) {
    gbuf g;
    g.n = n;
    g.base = malloc(sizeof(float) * (n + 2 * GUARD));
    g.p = g.base + GUARD;
    for (size_t i = 0; i < GUARD; i++) g.base[i] = g.p[n + i] = guard_val(i);
    for (size_t i = 0; i < n; i++) g.p[i] = guard_val(i + GUARD);
    return g;
}

static void gb_check(const gbuf *g, const char *variant, const char *what) {
    for (size_t i = 0; i < GUARD; i++) {
        const float v = guard_val(i);
        if (memcmp(&g->base[i], &v, sizeof v)) fail_msg("%s %s: wrote %zu floats before its output", variant, what, GUARD - i);
        if (memcmp(&g->p[g->n + i], &v, sizeof v)) fail_msg("%s %s: wrote the float %zu past its output", variant, what, i);
    }
}

static void gb_free(gbuf *g) { free(g->base); }

static void close_to(double got, double ref, double tol, const char *variant, const char *what, size_t at) {
    if (!(fabs(got - ref) <= tol)) fail_msg("%s %s: element %zu = %.9g, expected %.9g (tolerance %.3g)", variant, what, at, got, ref, tol);
}

/* The variants of a family the CPU runs: `body` with v set, the others named. */
#define FOR_VARIANTS(T, list, fam, ...)                                                                   \
    do {                                                                                                  \
        const T *const *vs_ = (list);                                                                     \
        int ran_ = 0, scalar_ = 0;                                                                        \
        for (int vi_ = 0; vs_[vi_]; vi_++) {                                                              \
            const T *v = vs_[vi_];                                                                        \
            if (!dcb_isa_runs(v->isa)) {                                                                  \
                print_message("%s %s: compiled in, not run by this CPU: skipped\n", fam, v->name);       \
                continue;                                                                                 \
            }                                                                                             \
            scalar_ += v->isa == DCB_ISA_SCALAR;                                                          \
            __VA_ARGS__;                                                                                  \
            ran_++;                                                                                       \
        }                                                                                                 \
        assert_int_equal(scalar_, 1);                                                                     \
        assert_true(ran_ >= 1);                                                                           \
    } while (0)

static const int sizes[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 47, 48, 49,
                            55, 56, 57, 63, 64, 65, 79, 95, 100, 127, 128, 129, 200, 257};
#define NSIZES ((int)(sizeof sizes / sizeof *sizes))

/* ================================================================ dwconv */
static void check_dw_row(const dcb_dwk_kernels *v, uint64_t *s, int kk, int n, float *keep) {
    int off[25];
    int maxoff = 0;
    for (int t = 0; t < kk; t++) {
        off[t] = tu_rand(s, 0, 40);
        maxoff = off[t] > maxoff ? off[t] : maxoff;
    }
    float wt[25];
    for (int t = 0; t < kk; t++) wt[t] = frand(s);
    const float bias = frand(s);
    /* src: what row may read (j < n rounded up to 8 past each offset) */
    const size_t ns = (size_t)maxoff + (size_t)(n + 7) / 8 * 8 + 1;
    float *src = malloc(sizeof(float) * ns);
    for (size_t i = 0; i < ns; i++) src[i] = frand(s);
    gbuf y = gb_new((size_t)n);
    v->row(kk, wt, off, src, bias, y.p, n);
    char what[64];
    snprintf(what, sizeof what, "dw row kk=%d n=%d", kk, n);
    gb_check(&y, v->name, what);
    for (int j = 0; j < n; j++) {
        double ref = bias, mag = fabs(bias);
        for (int t = 0; t < kk; t++) {
            ref += (double)wt[t] * src[off[t] + j];
            mag += fabs((double)wt[t] * src[off[t] + j]);
        }
        close_to(y.p[j], ref, (kk + 2) * FLT_EPSILON * mag + 1e-30, v->name, what, (size_t)j);
    }
    if (keep) memcpy(keep, y.p, sizeof(float) * (size_t)n);
    gb_free(&y);
    free(src);
}

/* rows2_3x3 gives the bits of row applied to rows i and i+1 (off = u * rs + v),
 * and writes nothing outside its two rows. */
static void check_dw_rows2(const dcb_dwk_kernels *v, uint64_t *s, int n) {
    const size_t rs = (size_t)(n + 7) / 8 * 8 + 2 + (size_t)tu_rand(s, 0, 9);
    float *src = malloc(sizeof(float) * (4 * rs + 16));
    for (size_t i = 0; i < 4 * rs + 16; i++) src[i] = frand(s);
    float wt[9];
    for (int t = 0; t < 9; t++) wt[t] = frand(s);
    const float bias = frand(s);
    int off[9];
    for (int u = 0; u < 3; u++)
        for (int c = 0; c < 3; c++) off[3 * u + c] = u * (int)rs + c;
    gbuf y0 = gb_new((size_t)n), y1 = gb_new((size_t)n);
    v->rows2_3x3(wt, src, rs, bias, y0.p, y1.p, n);
    char what[64];
    snprintf(what, sizeof what, "dw rows2_3x3 n=%d", n);
    gb_check(&y0, v->name, what);
    gb_check(&y1, v->name, what);
    float *r0 = malloc(sizeof(float) * (size_t)(n + 1)), *r1 = malloc(sizeof(float) * (size_t)(n + 1));
    v->row(9, wt, off, src, bias, r0, n);
    v->row(9, wt, off, src + rs, bias, r1, n);
    if (memcmp(r0, y0.p, sizeof(float) * (size_t)n) || memcmp(r1, y1.p, sizeof(float) * (size_t)n))
        fail_msg("%s %s: not the bits of row on rows i and i+1", v->name, what);
    free(r0);
    free(r1);
    gb_free(&y0);
    gb_free(&y1);
    free(src);
}

static void test_dwconv(void **state) {
    (void)state;
    static const int kks[] = {1, 2, 3, 4, 9, 25};
    FOR_VARIANTS(dcb_dwk_kernels, dcb_dwk_variants(), "dwconv", {
        uint64_t s = 77;
        int calls = 0;
        for (int ki = 0; ki < 6; ki++)
            for (int si = 0; si < NSIZES; si++, calls++) check_dw_row(v, &s, kks[ki], sizes[si], NULL);
        for (int si = 0; si < NSIZES; si++, calls++) check_dw_rows2(v, &s, sizes[si]);
        /* split2: every width up to 100, then some long ones */
        for (int w = 0; w <= 300; w += w < 100 ? 1 : 37, calls++) {
            float *x = malloc(sizeof(float) * (size_t)(w + 1));
            for (int i = 0; i < w; i++) x[i] = frand(&s);
            gbuf e = gb_new((size_t)(w + 1) / 2), o = gb_new((size_t)w / 2);
            v->split2(x, w, e.p, o.p);
            char what[64];
            snprintf(what, sizeof what, "dw split2 w=%d", w);
            gb_check(&e, v->name, what);
            gb_check(&o, v->name, what);
            for (int t = 0; 2 * t < w; t++)
                if (memcmp(&e.p[t], &x[2 * t], sizeof(float))) fail_msg("%s %s: even[%d] wrong", v->name, what, t);
            for (int t = 0; 2 * t + 1 < w; t++)
                if (memcmp(&o.p[t], &x[2 * t + 1], sizeof(float))) fail_msg("%s %s: odd[%d] wrong", v->name, what, t);
            gb_free(&e);
            gb_free(&o);
            free(x);
        }
        print_message("dwconv %s: %d cases agree with the reference\n", v->name, calls);
    });
}

/* ================================================================ seq1d */
static void check_seq_row(const dcb_seq1d_kernels *v, uint64_t *s, int H, int R, int tap_major, int with_b) {
    const int C = H * R, K = tu_rand(s, 1, 9);
    const int j0 = tu_rand(s, 0, K - 1), j1 = tu_rand(s, j0 + 1, K);
    const int hs = tap_major ? 1 : K, js = tap_major ? H : 1;
    float *k = malloc(sizeof(float) * (size_t)H * K);
    for (int i = 0; i < H * K; i++) k[i] = frand(s);
    /* the input rows of taps j0 .. j1-1, exactly, then NaN: nothing past them is read */
    const size_t nx = (size_t)(j1 - j0) * C;
    gbuf xs = gb_new(nx), b = gb_new((size_t)C);
    for (size_t i = 0; i < nx; i++) xs.p[i] = frand(s);
    for (int c = 0; c < C; c++) b.p[c] = frand(s);
    gbuf y = gb_new((size_t)C);
    v->row(C, H, hs, js, k, j0, j1, xs.p, with_b ? b.p : NULL, y.p);
    char what[96];
    snprintf(what, sizeof what, "seq row H=%d R=%d taps %d..%d %s%s", H, R, j0, j1, tap_major ? "(K,H)" : "(H,K)",
             with_b ? " bias" : "");
    gb_check(&y, v->name, what);
    gb_check(&xs, v->name, what);
    for (int c = 0; c < C; c++) {
        const int h = c / R;
        double ref = with_b ? b.p[c] : 0, mag = fabs(ref);
        for (int j = j0; j < j1; j++) {
            const double t = (double)k[(size_t)h * hs + (size_t)j * js] * xs.p[(size_t)(j - j0) * C + c];
            ref += t;
            mag += fabs(t);
        }
        close_to(y.p[c], ref, (K + 2) * FLT_EPSILON * mag + 1e-30, v->name, what, (size_t)c);
    }
    gb_free(&y);
    gb_free(&xs);
    gb_free(&b);
    free(k);
}

/* rows4 (where a variant has one): four row calls of the same variant, bit
 * for bit, reading exactly the K + 3 input rows and writing exactly the 4
 * output rows; kernel blocks ks apart (0: one shared block, as lightconv). */
static void check_seq_rows4(const dcb_seq1d_kernels *v, uint64_t *s, int H, int R, int tap_major, int with_b) {
    const int C = H * R, K = tu_rand(s, 1, 40);
    const int hs = tap_major ? 1 : K, js = tap_major ? H : 1;
    const size_t ks = tu_rand(s, 0, 3) == 0 ? 0 : (size_t)H * K + (size_t)tu_rand(s, 0, 5);
    const size_t nk = 3 * ks + (size_t)H * K;
    float *k = malloc(sizeof(float) * nk);
    for (size_t i = 0; i < nk; i++) k[i] = frand(s);
    const size_t nx = (size_t)(K + 3) * C;
    gbuf xs = gb_new(nx), b = gb_new((size_t)C), y = gb_new(4 * (size_t)C);
    for (size_t i = 0; i < nx; i++) xs.p[i] = frand(s);
    for (int c = 0; c < C; c++) b.p[c] = frand(s);
    v->rows4(C, H, hs, js, k, ks, K, xs.p, with_b ? b.p : NULL, y.p);
    char what[96];
    snprintf(what, sizeof what, "seq rows4 H=%d R=%d K=%d ks=%zu %s%s", H, R, K, ks, tap_major ? "(K,H)" : "(H,K)",
             with_b ? " bias" : "");
    gb_check(&y, v->name, what);
    gb_check(&xs, v->name, what);
    float *yr = malloc(sizeof(float) * (size_t)C);
    for (int r = 0; r < 4; r++) {
        v->row(C, H, hs, js, k + r * ks, 0, K, xs.p + (size_t)r * C, with_b ? b.p : NULL, yr);
        if (memcmp(yr, y.p + (size_t)r * C, sizeof(float) * (size_t)C))
            fail_msg("%s %s: output row %d is not row's", v->name, what, r);
    }
    free(yr);
    gb_free(&y);
    gb_free(&xs);
    gb_free(&b);
    free(k);
}

static void test_seq1d(void **state) {
    (void)state;
    static const int Rs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 63, 64, 65, 72, 96, 128, 129};
    static const int Hs[] = {1, 2, 3, 5};
    FOR_VARIANTS(dcb_seq1d_kernels, dcb_seq1d_variants(), "seq1d", {
        uint64_t s = 91;
        int calls = 0, calls4 = 0;
        for (int hi = 0; hi < 4; hi++)
            for (int ri = 0; ri < (int)(sizeof Rs / sizeof *Rs); ri++)
                for (int tm = 0; tm < 2; tm++)
                    for (int wb = 0; wb < 2; wb++, calls++) {
                        check_seq_row(v, &s, Hs[hi], Rs[ri], tm, wb);
                        if (v->rows4) check_seq_rows4(v, &s, Hs[hi], Rs[ri], tm, wb), calls4++;
                    }
        print_message("seq1d %s: %d rows agree with the reference, %d rows4 with row\n", v->name, calls, calls4);
    });
}

/* ================================================================ vmath */
static double clampd(double x) { return x < -87 ? -87 : x > 88 ? 88 : x; }

/* exp's error: the polynomial's ~1 ulp, the reduction's and 2^n's: 4 ulp. */
#define EXP_TOL (4 * FLT_EPSILON)

static void test_vmath(void **state) {
    (void)state;
    FOR_VARIANTS(dcb_vmath_kernels, dcb_vmath_variants(), "vmath", {
        uint64_t s = 5;
        int calls = 0;
        for (int si = 0; si < NSIZES; si++, calls += 3) {
            const int n = sizes[si];
            char what[64];
            /* exp, on [-100, 100]: both clamps */
            gbuf e = gb_new((size_t)n);
            float *x = malloc(sizeof(float) * (size_t)(n + 1));
            for (int i = 0; i < n; i++) x[i] = e.p[i] = 100.0f * frand(&s);
            v->exp(e.p, (size_t)n);
            snprintf(what, sizeof what, "exp n=%d", n);
            gb_check(&e, v->name, what);
            for (int i = 0; i < n; i++) {
                const double r = exp(clampd(x[i]));
                close_to(e.p[i], r, EXP_TOL * r, v->name, what, (size_t)i);
            }
            /* exp_shift_sum on logits of one row, m their maximum */
            float m = -INFINITY;
            for (int i = 0; i < n; i++) {
                x[i] = e.p[i] = 30.0f * frand(&s);
                m = x[i] > m ? x[i] : m;
            }
            if (n > 2) e.p[1] = x[1] = m - 95.0f; /* under the clamp */
            const float sum = v->exp_shift_sum(e.p, n, m);
            snprintf(what, sizeof what, "exp_shift_sum n=%d", n);
            gb_check(&e, v->name, what);
            double rs = 0;
            for (int i = 0; i < n; i++) {
                const float d = x[i] - m; /* rounded as the variants do */
                const double r = exp(d < -87 ? -87 : d);
                close_to(e.p[i], r, EXP_TOL * r, v->name, what, (size_t)i);
                rs += r;
            }
            close_to(sum, rs, (n + 4) * FLT_EPSILON * rs + 1e-30, v->name, what, (size_t)n);
            /* sigmoid, out of place, then in place */
            gbuf y = gb_new((size_t)n);
            for (int i = 0; i < n; i++) x[i] = 100.0f * frand(&s);
            if (n > 3) x[0] = 95.0f, x[1] = -95.0f, x[2] = 0.0f;
            v->sigmoid(x, y.p, (size_t)n);
            snprintf(what, sizeof what, "sigmoid n=%d", n);
            gb_check(&y, v->name, what);
            for (int i = 0; i < n; i++) {
                const double r = 1.0 / (1.0 + exp(clampd(-(double)x[i])));
                close_to(y.p[i], r, EXP_TOL * r, v->name, what, (size_t)i);
            }
            memcpy(e.p, x, sizeof(float) * (size_t)n);
            v->sigmoid(e.p, e.p, (size_t)n);
            gb_check(&e, v->name, what);
            if (memcmp(e.p, y.p, sizeof(float) * (size_t)n)) fail_msg("%s %s: in place differs", v->name, what);
            gb_free(&y);
            gb_free(&e);
            free(x);
        }
        /* the softmaxes over K of (H, K) and (K, H) blocks */
        static const int Hs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40};
        static const int Ks[] = {1, 2, 3, 7, 15, 31};
        for (int hi = 0; hi < (int)(sizeof Hs / sizeof *Hs); hi++)
            for (int ki = 0; ki < 6; ki++)
                for (int tm = 0; tm < 2; tm++, calls++) {
                    const int H = Hs[hi], K = Ks[ki];
                    const size_t n = (size_t)H * K;
                    gbuf g = gb_new(n);
                    float *x = malloc(sizeof(float) * n);
                    for (size_t i = 0; i < n; i++) x[i] = g.p[i] = 20.0f * frand(&s);
                    if (n > 4) x[3] = g.p[3] = -150.0f; /* under the clamp after the shift */
                    char what[64];
                    snprintf(what, sizeof what, "softmax_%s H=%d K=%d", tm ? "taps" : "heads", H, K);
                    if (tm)
                        v->softmax_taps(g.p, H, K);
                    else
                        v->softmax_heads(g.p, H, K);
                    gb_check(&g, v->name, what);
                    for (int h = 0; h < H; h++) {
                        const size_t hs = tm ? 1 : (size_t)K, js = tm ? (size_t)H : 1;
                        double mx = -INFINITY, sm = 0;
                        for (int j = 0; j < K; j++) mx = fmax(mx, x[h * hs + j * js]);
                        for (int j = 0; j < K; j++) sm += exp(fmax((float)(x[h * hs + j * js] - mx), -87.0));
                        for (int j = 0; j < K; j++) {
                            const size_t at = h * hs + j * js;
                            const double r = exp(fmax((float)(x[at] - mx), -87.0)) / sm;
                            close_to(g.p[at], r, (K + 8) * FLT_EPSILON * r, v->name, what, at);
                        }
                    }
                    gb_free(&g);
                    free(x);
                }
        print_message("vmath %s: %d cases agree with the reference\n", v->name, calls);
    });
}

/* ================================================================ dynmix */
static const double G4[6][3] = {{0.25, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

/* One (m, n) call of wino_taps: every output against G g G^T in double,
 * the taps ts >= n floats apart, U's positions us >= n apart; every float of
 * u that is no output stays as it was. Returns u (a*a*us floats) for the
 * bit comparisons. */
static float *check_wino_taps(const dcb_dynmix_kernels *v, uint64_t *s, int m, size_t n, size_t *nout) {
    const int a = m + 2;
    const size_t ts = n + (size_t)tu_rand(s, 0, 5), us = n + (size_t)tu_rand(s, 0, 5);
    /* NaN between the taps' rows: nothing past a tap's n floats may reach U */
    float *g = malloc(sizeof(float) * (9 * ts + 1));
    for (size_t t = 0; t < 9 * ts; t++) g[t] = t % ts < n ? frand(s) : NAN;
    gbuf u = gb_new((size_t)a * a * us);
    v->wino_taps(m, g, ts, n, u.p, us);
    char what[64];
    snprintf(what, sizeof what, "wino_taps m=%d n=%zu", m, n);
    gb_check(&u, v->name, what);
    for (int r = 0; r < a; r++)
        for (int c = 0; c < a; c++)
            for (size_t i = 0; i < us; i++) {
                const size_t at = (size_t)(r * a + c) * us + i;
                if (i >= n) {
                    const float gv = guard_val(at + GUARD);
                    if (memcmp(&u.p[at], &gv, sizeof gv)) fail_msg("%s %s: wrote U[%d][%d] at %zu past n", v->name, what, r, c, i);
                    continue;
                }
                double ref = 0, mag = 0;
                for (int kr = 0; kr < 3; kr++)
                    for (int kc = 0; kc < 3; kc++) {
                        const double gi = m == 4 ? G4[r][kr] : G2[r][kr], gj = m == 4 ? G4[c][kc] : G2[c][kc];
                        const double term = gi * g[(size_t)(kr * 3 + kc) * ts + i] * gj;
                        ref += term;
                        mag += fabs(term);
                    }
                close_to(u.p[at], ref, 16 * FLT_EPSILON * mag + 1e-30, v->name, what, at);
            }
    float *out = malloc(sizeof(float) * u.n);
    memcpy(out, u.p, sizeof(float) * u.n);
    if (nout) *nout = u.n;
    gb_free(&u);
    free(g);
    return out;
}

static void test_dynmix(void **state) {
    (void)state;
    FOR_VARIANTS(dcb_dynmix_kernels, dcb_dynmix_variants(), "dynmix", {
        uint64_t s = 31;
        int calls = 0;
        char what[80];
        /* mix */
        static const int Es[] = {1, 2, 3, 4, 8};
        for (int ei = 0; ei < 5; ei++)
            for (int si = 0; si < NSIZES; si++, calls++) {
                const int E = Es[ei];
                const size_t n = (size_t)sizes[si], es = n + (size_t)tu_rand(&s, 0, 9);
                float *src = malloc(sizeof(float) * (es * E + 1)), r[8];
                for (size_t t = 0; t < es * E; t++) src[t] = frand(&s);
                for (int e = 0; e < E; e++) r[e] = frand(&s);
                gbuf d = gb_new(n);
                v->mix(src, es, r, E, d.p, n);
                snprintf(what, sizeof what, "mix E=%d n=%zu", E, n);
                gb_check(&d, v->name, what);
                for (size_t t = 0; t < n; t++) {
                    double ref = 0, mag = 0;
                    for (int e = 0; e < E; e++) {
                        ref += (double)r[e] * src[e * es + t];
                        mag += fabs((double)r[e] * src[e * es + t]);
                    }
                    close_to(d.p[t], ref, (E + 1) * FLT_EPSILON * mag + 1e-30, v->name, what, t);
                }
                gb_free(&d);
                free(src);
            }
        /* the kernel transform, on lengths around the vector widths */
        for (int m = 2; m <= 4; m += 2)
            for (int si = 0; si < NSIZES; si++, calls++) free(check_wino_taps(v, &s, m, (size_t)sizes[si], NULL));
        /* the transposes, with at NULL and a scattering permutation */
        static const int Ps[] = {0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 50};
        static const int Kds[] = {1, 3, 7, 8, 9, 16, 17, 27};
        for (int pi = 0; pi < 14; pi++)
            for (int ki = 0; ki < 8; ki++)
                for (int scatter = 0; scatter < 2; scatter++, calls += 2) {
                    const size_t P = (size_t)Ps[pi], Kd = (size_t)Kds[ki], Pr = P + (scatter ? 3 : 0);
                    int *at = NULL;
                    if (scatter) { /* P distinct rows of Pr, shuffled */
                        int *all = malloc(sizeof(int) * Pr);
                        for (size_t t = 0; t < Pr; t++) all[t] = (int)t;
                        for (size_t t = Pr; t > 1; t--) {
                            const size_t u = dcb_rand_u64(&s) % t;
                            const int tmp = all[t - 1];
                            all[t - 1] = all[u];
                            all[u] = tmp;
                        }
                        at = all;
                    }
                    float *cols = malloc(sizeof(float) * (Kd * P + 1));
                    for (size_t t = 0; t < Kd * P; t++) cols[t] = frand(&s);
                    gbuf rows = gb_new(Pr * Kd);
                    v->c2r(cols, P, Kd, rows.p, at);
                    snprintf(what, sizeof what, "c2r P=%zu Kd=%zu%s", P, Kd, scatter ? " scattered" : "");
                    gb_check(&rows, v->name, what);
                    int *hit = calloc(Pr + 1, sizeof(int));
                    for (size_t p = 0; p < P; p++) {
                        const size_t rr = at ? (size_t)at[p] : p;
                        hit[rr] = 1;
                        for (size_t k = 0; k < Kd; k++)
                            if (memcmp(&rows.p[rr * Kd + k], &cols[k * P + p], sizeof(float)))
                                fail_msg("%s %s: rows[%zu][%zu] wrong", v->name, what, rr, k);
                    }
                    for (size_t rr = 0; rr < Pr; rr++)
                        for (size_t k = 0; k < Kd && !hit[rr]; k++) {
                            const float g = guard_val(rr * Kd + k + GUARD);
                            if (memcmp(&rows.p[rr * Kd + k], &g, sizeof g))
                                fail_msg("%s %s: wrote row %zu, which no p maps to", v->name, what, rr);
                        }
                    gbuf back = gb_new(Kd * P);
                    v->r2c(rows.p, P, Kd, back.p, at);
                    snprintf(what, sizeof what, "r2c P=%zu Kd=%zu%s", P, Kd, scatter ? " scattered" : "");
                    gb_check(&back, v->name, what);
                    if (memcmp(back.p, cols, sizeof(float) * Kd * P)) fail_msg("%s %s: not c2r's inverse", v->name, what);
                    gb_free(&back);
                    gb_free(&rows);
                    free(hit);
                    free(cols);
                    free(at);
                }
        /* sum_f64 */
        for (int si = 0; si < NSIZES; si++)
            for (int off = 0; off < 3; off++, calls++) {
                const size_t n = (size_t)sizes[si] * (off == 2 ? 7 : 1) + (size_t)off;
                gbuf x = gb_new(n);
                for (size_t t = 0; t < n; t++) x.p[t] = 1000.0f * frand(&s);
                double ref = 0, mag = 0;
                for (size_t t = 0; t < n; t++) ref += x.p[t], mag += fabs(x.p[t]);
                snprintf(what, sizeof what, "sum_f64 n=%zu", n);
                close_to(v->sum_f64(x.p, n), ref, (n + 2) * DBL_EPSILON * mag + 1e-300, v->name, what, n);
                gb_check(&x, v->name, what);
                gb_free(&x);
            }
        print_message("dynmix %s: %d cases agree with the reference\n", v->name, calls);
    });
}

/* ================================================= the SIMD variants' bits
 * Where the avx2 and avx512 variants promise one chain per element (the
 * depthwise rows, the sequence row at C/H % 8 == 0, the mixing and the
 * kernel transform), both give the same bits: results do not depend on the
 * machine a run lands on. */
static void test_simd_agree(void **state) {
    (void)state;
#if DCB_ISA_X86
    if (!dcb_isa_runs(DCB_ISA_AVX512) || !dcb_isa_runs(DCB_ISA_AVX2)) {
        print_message("avx512 against avx2: this CPU does not run both: skipped\n");
        return;
    }
    uint64_t s1 = 8, s2 = 8;
    int cases = 0;
    for (int si = 0; si < NSIZES; si++, cases++) {
        const int n = sizes[si];
        float *a = malloc(sizeof(float) * (size_t)(n + 1)), *b = malloc(sizeof(float) * (size_t)(n + 1));
        check_dw_row(&dcb_dwk_avx2, &s1, 9, n, a);
        check_dw_row(&dcb_dwk_avx512, &s2, 9, n, b);
        if (memcmp(a, b, sizeof(float) * (size_t)n)) fail_msg("dw row n=%d: avx512 and avx2 differ in their bits", n);
        free(a);
        free(b);
    }
    for (int m = 2; m <= 4; m += 2)
        for (int si = 0; si < NSIZES; si++, cases++) {
            s1 = s2 = 100 + (uint64_t)si;
            size_t na, nb;
            float *a = check_wino_taps(&dcb_dynmix_avx2, &s1, m, (size_t)sizes[si], &na);
            float *b = check_wino_taps(&dcb_dynmix_avx512, &s2, m, (size_t)sizes[si], &nb);
            /* the same draws: the same inputs and strides */
            assert_true(na == nb);
            if (memcmp(a, b, sizeof(float) * na)) fail_msg("wino_taps m=%d n=%d: avx512 and avx2 differ", m, sizes[si]);
            free(a);
            free(b);
        }
    uint64_t s = 9;
    for (int R = 8; R <= 136; R += 8)
        for (int H = 1; H <= 3; H++, cases++) {
            const int C = H * R, K = 5;
            float *k = malloc(sizeof(float) * (size_t)H * K), *x = malloc(sizeof(float) * (size_t)K * C),
                  *b = malloc(sizeof(float) * (size_t)C), *ya = malloc(sizeof(float) * (size_t)C),
                  *yb = malloc(sizeof(float) * (size_t)C);
            for (int t = 0; t < H * K; t++) k[t] = frand(&s);
            for (int t = 0; t < K * C; t++) x[t] = frand(&s);
            for (int t = 0; t < C; t++) b[t] = frand(&s);
            dcb_seq1d_avx2.row(C, H, K, 1, k, 0, K, x, b, ya);
            dcb_seq1d_avx512.row(C, H, K, 1, k, 0, K, x, b, yb);
            if (memcmp(ya, yb, sizeof(float) * (size_t)C)) fail_msg("seq row H=%d R=%d: avx512 and avx2 differ", H, R);
            free(k), free(x), free(b), free(ya), free(yb);
        }
    for (int si = 0; si < NSIZES; si++, cases++) {
        const size_t n = (size_t)sizes[si];
        float *src = malloc(sizeof(float) * (4 * n + 1)), *ya = malloc(sizeof(float) * (n + 1)),
              *yb = malloc(sizeof(float) * (n + 1)), r[4];
        for (size_t t = 0; t < 4 * n; t++) src[t] = frand(&s);
        for (int e = 0; e < 4; e++) r[e] = frand(&s);
        dcb_dynmix_avx2.mix(src, n, r, 4, ya, n);
        dcb_dynmix_avx512.mix(src, n, r, 4, yb, n);
        /* the avx2 variant's tail (n % 8) is unfused C: compare its vectors */
        if (memcmp(ya, yb, sizeof(float) * (n / 8 * 8))) fail_msg("mix n=%zu: avx512 and avx2 differ", n);
        free(src), free(ya), free(yb);
    }
    print_message("avx512 against avx2: %d cases give the same bits\n", cases);
#else
    print_message("avx512 against avx2: not an x86-64 build: skipped\n");
#endif
}

/* Each family's picked variant is the process's level. */
static void test_picked(void **state) {
    (void)state;
    const dcb_isa_level l = dcb_isa_current();
    assert_int_equal(dcb_dwk()->isa, l);
    assert_int_equal(dcb_seq1d()->isa, l);
    assert_int_equal(dcb_vmath()->isa, l);
    assert_int_equal(dcb_dynmix()->isa, l);
    assert_string_equal(dcb_dwk()->name, dcb_isa());
    print_message("families picked: dwconv %s, seq1d %s, vmath %s, dynmix %s (available %s)\n", dcb_dwk()->name,
                  dcb_seq1d()->name, dcb_vmath()->name, dcb_dynmix()->name, dcb_isa_available());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dwconv), cmocka_unit_test(test_seq1d),      cmocka_unit_test(test_vmath),
        cmocka_unit_test(test_dynmix), cmocka_unit_test(test_simd_agree), cmocka_unit_test(test_picked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
