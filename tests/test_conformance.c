/* Conformance: every registered operator x every registered implementation
 * against that operator's oracle implementation, on seeded random cases, with
 * the tolerance each implementation promises (dcb_op_tolerance); and, on one
 * small case per implementation, the lifecycle (prepare twice, re-plan on a
 * new shape, new weights), no planning or allocation in a repeated run, the
 * profile, the workspace checks and the unsupported path.
 *
 * Operators and implementations come from the registry; the only per-operator
 * knowledge here is a case generator (random hyperparameters and an input
 * size), and an operator without one fails the test, so that a new operator
 * cannot go untested. No implementation is named: the oracle is the
 * registry's implementation 0 of each operator (dcb.h), and the
 * implementations with a support check are found by their engine
 * (dcb_op_get_engine).
 *
 * DRConv's region mask is an argmax over the guide conv, which has near-ties
 * (tests/test_drconv.c accepts either region within TIE_TOL against its double
 * reference). Here both sides are library implementations that share the
 * guide conv and the argmax (one sgemm and the same loop, in float) and run
 * with the same thread count, so they pick the same region at every pixel,
 * tie or not: oracle and candidate always run with the same threads, and the
 * comparison is the plain one. */
#include "testutil.h"

#include <math.h>
#include <time.h>

#define MAX_HP 24
#define MAX_IMPLS 32

/* ------------------------------------------------------------------ cases */
typedef struct tc_case {
    dcb_hparam hp[MAX_HP];
    int nhp;
    int64_t N, H, W, T; /* the input sizes (H, W for images, T for sequences) */
    int wino;           /* every conv of the case is 3x3, stride 1, dilation 1 */
} tc_case;

static void hp_put(tc_case *c, dcb_hparam h) {
    for (int i = 0; i < c->nhp; i++)
        if (!strcmp(c->hp[i].name, h.name)) {
            c->hp[i] = h;
            return;
        }
    assert_true(c->nhp < MAX_HP);
    c->hp[c->nhp++] = h;
}
static void hp_set(tc_case *c, const char *name, double v) { hp_put(c, TU_HP(name, v)); }

static void case_str(const tc_case *c, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "N=%lld H=%lld W=%lld T=%lld", (long long)c->N, (long long)c->H,
                                (long long)c->W, (long long)c->T);
    for (int i = 0; i < c->nhp && o < len; i++) {
        if (c->hp[i].str)
            o += (size_t)snprintf(buf + o, len - o, " %s=%s", c->hp[i].name, c->hp[i].str);
        else
            o += (size_t)snprintf(buf + o, len - o, " %s=%g", c->hp[i].name, c->hp[i].num);
    }
}

static void hp_del(tc_case *c, const char *name) {
    for (int i = 0; i < c->nhp; i++)
        if (!strcmp(c->hp[i].name, name)) c->hp[i--] = c->hp[--c->nhp];
}

/* The kernel size, as k or as kh and kw. */
static void set_kernel(uint64_t *r, tc_case *c, int kh, int kw) {
    hp_del(c, "k");
    hp_del(c, "kh");
    hp_del(c, "kw");
    if (kh == kw && tu_rand(r, 0, 1)) {
        hp_set(c, "k", kh);
    } else {
        hp_set(c, "kh", kh);
        hp_set(c, "kw", kw);
    }
}

/* A conv geometry (kernel, stride, pad, dilation) and an input H x W that it
 * fits; wino: 3x3, stride 1, dilation 1. big: kernels up to 7x7, inputs up
 * to 23 (else 5x5, an even kernel width sometimes, and 13). */
static void gen_geometry(uint64_t *r, int wino, int big, tc_case *c, int *kh_out, int *kw_out) {
    static const int small_ks[] = {1, 3, 5, 2}, big_ks[] = {1, 3, 5, 7};
    const int *ks = big ? big_ks : small_ks;
    int kh, kw, stride, pad, dil, H, W;
    do {
        kh = kw = ks[tu_rand(r, 0, 2 + big)];
        if (tu_rand(r, 0, 4) == 0) kw = ks[tu_rand(r, 0, 3)];
        stride = tu_rand(r, 1, 2);
        dil = tu_rand(r, 0, 3) == 0 ? 2 : 1;
        pad = tu_rand(r, 0, big ? 3 : 2);
        if (wino) kh = kw = 3, stride = dil = 1;
        H = tu_rand(r, 1, big ? 23 : 13);
        W = tu_rand(r, 1, big ? 23 : 13);
    } while (dil * (kh - 1) + 1 > H + 2 * pad || dil * (kw - 1) + 1 > W + 2 * pad);
    set_kernel(r, c, kh, kw);
    hp_set(c, "stride", stride);
    hp_set(c, "pad", pad);
    hp_set(c, "dilation", dil);
    c->H = H;
    c->W = W;
    c->wino = kh == 3 && kw == 3 && stride == 1 && dil == 1;
    if (kh_out) *kh_out = kh;
    if (kw_out) *kw_out = kw;
}

/* cin, cout, groups and bias of a conv: depthwise (up to dw_groups channels,
 * multiplier 1 or 2), dense (up to `dense` channels, so sometimes 8 and more
 * a group) or grouped (up to `per` channels a group). */
static void gen_channels(uint64_t *r, tc_case *c, int dw_groups, int dense, int per) {
    int g = tu_rand(r, 1, 4), cig = tu_rand(r, 1, per), cog = tu_rand(r, 1, per);
    switch (tu_rand(r, 0, 3)) {
    case 0:
        g = tu_rand(r, 1, dw_groups);
        cig = 1;
        cog = tu_rand(r, 1, 2);
        break;
    case 1:
        g = 1;
        cig = tu_rand(r, 1, dense);
        cog = tu_rand(r, 1, dense);
        break;
    default: break;
    }
    hp_set(c, "cin", g * cig);
    hp_set(c, "cout", g * cog);
    hp_set(c, "groups", g);
    hp_set(c, "bias", tu_rand(r, 0, 1));
}

/* conv2d, towards what its engines treat apart: depthwise with any kernel
 * up to 7x7, stride, dilation and multiplier 1 or 2; 1x1 without padding
 * with up to 64 channels; dense with up to 40 channels (several K blocks of
 * direct); grouped; inputs up to 23. */
static void gen_conv2d(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 1, c, NULL, NULL);
    const int pointwise = !wino && tu_rand(r, 0, 4) == 0;
    if (pointwise) {
        set_kernel(r, c, 1, 1);
        hp_set(c, "pad", 0);
        c->wino = 0;
    }
    gen_channels(r, c, 24, pointwise ? 64 : 40, 9);
}

static void gen_se(uint64_t *r, int wino, tc_case *c) {
    static const int reds[] = {1, 2, 4, 16};
    (void)wino;
    hp_set(c, "channels", tu_rand(r, 1, 40));
    hp_set(c, "reduction", reds[tu_rand(r, 0, 3)]);
    if (tu_rand(r, 0, 2) == 0) hp_set(c, "hidden", tu_rand(r, 1, 8));
    c->H = tu_rand(r, 1, 13);
    c->W = tu_rand(r, 1, 13);
}

static void gen_condconv(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 0, c, NULL, NULL);
    gen_channels(r, c, 12, 20, 6);
    hp_set(c, "experts", tu_rand(r, 1, 5));
}

static void gen_dyconv(uint64_t *r, int wino, tc_case *c) {
    static const double taus[] = {1, 0.5, 4, 30};
    gen_geometry(r, wino, 0, c, NULL, NULL);
    gen_channels(r, c, 12, 20, 6);
    hp_set(c, "kernels", tu_rand(r, 1, 5));
    hp_set(c, "temperature", taus[tu_rand(r, 0, 3)]);
    if (tu_rand(r, 0, 2) == 0) hp_set(c, "hidden", tu_rand(r, 1, 9));
}

static void gen_weightnet(uint64_t *r, int wino, tc_case *c) {
    static const int Ms[] = {1, 2, 4};
    int kh, kw;
    gen_geometry(r, wino, 0, c, &kh, &kw);
    const int dw = tu_rand(r, 0, 1), cin = tu_rand(r, 1, 12), M = Ms[tu_rand(r, 0, 2)];
    int G = 1 << tu_rand(r, 0, 2);
    if (M % G || (!dw && (cin * kh * kw) % G)) G = 1; /* G | M, and G*cout | cout*cin*kh*kw */
    hp_set(c, "cin", cin);
    hp_set(c, "cout", dw ? cin : tu_rand(r, 1, 10));
    hp_set(c, "depthwise", dw);
    hp_set(c, "M", M);
    hp_set(c, "G", G);
    if (tu_rand(r, 0, 1)) hp_set(c, "hidden", tu_rand(r, 1, 6));
}

static void gen_drconv(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 0, c, NULL, NULL);
    hp_set(c, "cin", tu_rand(r, 1, 8));
    hp_set(c, "cout", tu_rand(r, 1, 8));
    hp_set(c, "regions", tu_rand(r, 1, 5));
}

static void gen_localconv(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 0, c, NULL, NULL);
    hp_set(c, "cin", tu_rand(r, 1, 5));
    hp_set(c, "cout", tu_rand(r, 1, 5));
    hp_set(c, "bias", tu_rand(r, 0, 1));
    hp_set(c, "H", (double)c->H); /* the weights depend on the position */
    hp_set(c, "W", (double)c->W);
}

static void gen_skconv(uint64_t *r, int wino, tc_case *c) {
    const int g = tu_rand(r, 1, 3), M = wino ? 1 : tu_rand(r, 1, 3), stride = wino ? 1 : tu_rand(r, 1, 2);
    hp_set(c, "cin", g * tu_rand(r, 1, 4));
    hp_set(c, "cout", g * tu_rand(r, 1, 5));
    hp_set(c, "groups", g);
    hp_set(c, "branches", M); /* branch i: dilation i + 1 */
    hp_set(c, "stride", stride);
    hp_set(c, "reduction", tu_rand(r, 1, 4));
    hp_set(c, "L", tu_rand(r, 1, 6));
    c->H = tu_rand(r, 1, 13);
    c->W = tu_rand(r, 1, 13);
    c->wino = M == 1 && stride == 1;
}

static void gen_splat(uint64_t *r, int wino, tc_case *c) {
    int R, Kc, cin;
    do { /* inter = max(cin*R/4, 32) must be a multiple of Kc */
        R = tu_rand(r, 1, 4);
        Kc = tu_rand(r, 1, 3);
        cin = Kc * R * tu_rand(r, 1, Kc == 3 ? 4 : 2);
    } while ((cin * R / 4 > 32 ? cin * R / 4 : 32) % Kc);
    gen_geometry(r, wino, 0, c, NULL, NULL);
    hp_set(c, "cin", cin);
    hp_set(c, "cout", Kc * tu_rand(r, 1, 4));
    hp_set(c, "radix", R);
    hp_set(c, "cardinality", Kc);
}

/* lightconv and dynconv1d: heads, K from 1 to 31, same or causal padding,
 * T = 1, T < K, T = K and longer; some head runs of 32 channels and more. */
static void gen_seqconv(uint64_t *r, int wino, tc_case *c) {
    static const int ks[] = {1, 2, 3, 4, 5, 7, 15, 31};
    (void)wino;
    const int H = tu_rand(r, 1, 4), K = ks[tu_rand(r, 0, 7)];
    hp_set(c, "channels", H * (tu_rand(r, 0, 4) == 0 ? 8 * tu_rand(r, 4, 9) : tu_rand(r, 1, 6)));
    hp_set(c, "heads", H);
    hp_set(c, "kernel_size", K);
    hp_put(c, TU_HS("padding", tu_rand(r, 0, 1) ? "causal" : "same"));
    hp_set(c, "weight_softmax", tu_rand(r, 0, 1));
    hp_set(c, "bias", tu_rand(r, 0, 1));
    switch (tu_rand(r, 0, 4)) {
    case 0: c->T = 1; break;
    case 1: c->T = tu_rand(r, 1, K); break;
    case 2: c->T = K; break;
    case 3: c->T = tu_rand(r, 90, 130); break;
    default: c->T = tu_rand(r, 1, 60); break;
    }
}

static void gen_mhattention(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    const int H = tu_rand(r, 1, 4);
    hp_set(c, "channels", H * tu_rand(r, 1, 8));
    hp_set(c, "heads", H);
    hp_set(c, "causal", tu_rand(r, 0, 1));
    c->T = tu_rand(r, 0, 3) == 0 ? 1 : tu_rand(r, 1, 40);
}

/* The case generators, by operator name: gen(r, wino, c) fills c's
 * hyperparameters and input size (N is drawn by the caller); wino asks for a
 * case that the Winograd engines run (and the generator sets c->wino when
 * the case is one), so that half the cases of the engines' operators are. */
typedef void (*tc_gen)(uint64_t *r, int wino, tc_case *c);
static const struct {
    const char *op;
    tc_gen gen;
} generators[] = {
    {"conv2d", gen_conv2d},       {"se", gen_se},           {"condconv", gen_condconv},
    {"dyconv", gen_dyconv},       {"weightnet", gen_weightnet}, {"drconv", gen_drconv},
    {"localconv", gen_localconv}, {"skconv", gen_skconv},   {"splat", gen_splat},
    {"lightconv", gen_seqconv},   {"dynconv1d", gen_seqconv}, {"mhattention", gen_mhattention},
};

static tc_gen generator_of(const char *op) {
    for (size_t i = 0; i < sizeof generators / sizeof generators[0]; i++)
        if (!strcmp(generators[i].op, op)) return generators[i].gen;
    return NULL;
}

static tc_case new_case(tc_gen gen, uint64_t *r, int wino, int64_t N) {
    tc_case c;
    memset(&c, 0, sizeof c);
    c.N = N;
    c.H = c.W = c.T = 1;
    gen(r, wino, &c);
    return c;
}

/* ------------------------------------------------------------ operators */
typedef struct tc_op {
    const char *name;
    int nimpl, oracle;
    const char *engine[MAX_IMPLS]; /* learnt from the small case (NULL: none) */
} tc_op;

/* Implementation 0 of every operator is its oracle (the registry's rule,
 * dcb.h): naive loops, or drconv's all_regions. */
enum { ORACLE = 0 };

/* The engines with a support check: Winograd runs 3x3, stride 1, dilation 1. */
static int checked_engine(const char *engine) { return engine && !strncmp(engine, "winograd", 8); }

static dcb_status make(const tc_op *o, int k, const tc_case *c, int threads, dcb_op **op) {
    dcb_hparam hp[MAX_HP + 1];
    memcpy(hp, c->hp, sizeof(dcb_hparam) * (size_t)c->nhp);
    hp[c->nhp] = TU_HP("threads", threads);
    return dcb_op_create(o->name, dcb_impl_name(o->name, k), hp, c->nhp + 1, op);
}

static dcb_op *make_ok(const tc_op *o, int k, const tc_case *c, int threads, uint64_t wseed) {
    dcb_op *op = NULL;
    assert_ok(make(o, k, c, threads, &op));
    assert_ok(dcb_op_init_weights(op, wseed));
    return op;
}

/* The input of the created op for sizes N, H, W, T, x ~ N(0, 1) from seed. */
static dcb_tensor *input_of(const dcb_op *op, int64_t N, int64_t H, int64_t W, int64_t T, uint64_t seed) {
    int64_t s[DCB_MAX_DIMS];
    const int nd = dcb_op_input_shape(op, N, H, W, T, s);
    dcb_tensor *x = dcb_tensor_new(nd, s);
    assert_non_null(x);
    dcb_tensor_randn(x, seed);
    return x;
}

static dcb_tensor *forward_ok(dcb_op *op, const dcb_tensor *x, const char *what) {
    dcb_tensor *y = NULL;
    dcb_status st = dcb_op_forward(op, x, &y);
    if (st != DCB_OK)
        fail_msg("%s/%s (%s): %s: %s", dcb_op_get_name(op), dcb_op_get_impl(op), what, dcb_status_name(st),
                 dcb_last_error());
    return y;
}

/* y against the oracle's ref, within the implementation's tolerance: the error. */
static double expect_close(const dcb_op *op, const dcb_tensor *y, const dcb_tensor *ref, const char *what,
                           const tc_case *c) {
    char desc[600];
    const int n = snprintf(desc, sizeof desc, "%s: ", what);
    case_str(c, desc + n, sizeof desc - (size_t)n);
    if (!dcb_shape_equal(y, ref->ndim, ref->shape)) {
        char a[128], b[128];
        fail_msg("%s/%s (%s): output %s, the oracle's %s", dcb_op_get_name(op), dcb_op_get_impl(op), desc,
                 dcb_shape_str(y->ndim, y->shape, a, sizeof a), dcb_shape_str(ref->ndim, ref->shape, b, sizeof b));
    }
    return tu_err_within_tol(op, y, ref, desc);
}

/* An unsupported answer names the implementation ("op/impl"); on a case
 * in a Winograd engine's domain that engine must run, and outside it must
 * refuse (never a silent fallback). Returns 1 when st is unsupported. */
static int unsupported_ok(const tc_op *o, int k, dcb_status st, const tc_case *c) {
    char who[128], desc[512];
    snprintf(who, sizeof who, "%s/%s", o->name, dcb_impl_name(o->name, k));
    case_str(c, desc, sizeof desc);
    const int wino_engine = checked_engine(o->engine[k]);
    if (!dcb_status_is_unsupported(st)) {
        if (st == DCB_OK && wino_engine && !c->wino)
            fail_msg("%s on %s: %s outside its engine's domain, expected unsupported", who, desc, dcb_status_name(st));
        return 0;
    }
    if (k == o->oracle)
        fail_msg("the oracle %s answers %s on %s: %s", who, dcb_status_name(st), desc, dcb_last_error());
    if (wino_engine && c->wino) fail_msg("%s on %s (3x3, stride 1, dilation 1): %s", who, desc, dcb_last_error());
    if (!strstr(dcb_last_error(), who))
        fail_msg("%s on %s: message '%s' does not name it", who, desc, dcb_last_error());
    return 1;
}

/* ---------------------------------------------- one implementation, one case */
static double profile_sum(const dcb_profile *p, const char *who) {
    double s = 0;
    for (int ph = 0; ph < DCB_PHASE_COUNT; ph++) {
        if (!(p->seconds[ph] >= 0 && isfinite(p->seconds[ph])))
            fail_msg("%s: phase %s has %g seconds", who, dcb_phase_name(ph), p->seconds[ph]);
        s += p->seconds[ph];
    }
    return s;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The small-case checks of implementation k; 0 when it does not run case c
 * (the caller tries another). */
static int lifecycle(tc_op *o, int k, const tc_case *c, int threads) {
    const char *impl = dcb_impl_name(o->name, k);
    char who[128];
    snprintf(who, sizeof who, "%s/%s", o->name, impl);
    dcb_op *op = NULL;
    dcb_status st = make(o, k, c, threads, &op);
    if (st == DCB_OK) {
        o->engine[k] = dcb_op_get_engine(op);
        assert_ok(dcb_op_init_weights(op, 11));
        assert_ok(dcb_op_prepare(op));
        int64_t xs[DCB_MAX_DIMS];
        st = dcb_op_plan(op, dcb_op_input_shape(op, c->N, c->H, c->W, c->T, xs), xs, NULL, NULL, NULL);
    }
    if (st != DCB_OK) {
        if (!unsupported_ok(o, k, st, c)) fail_msg("%s: %s", who, dcb_last_error());
        dcb_op_destroy(op);
        return 0;
    }
    assert_string_equal(dcb_op_get_name(op), o->name);
    assert_string_equal(dcb_op_get_impl(op), impl);
    const double tol = dcb_op_tolerance(op);
    if (!(tol > 0 && tol < 1e-3)) fail_msg("%s: tolerance %g", who, tol);
    dcb_op *orc = make_ok(o, o->oracle, c, threads, 11);
    dcb_tensor *x = input_of(op, c->N, c->H, c->W, c->T, 3);
    dcb_tensor *ref = forward_ok(orc, x, "oracle");

    /* prepared once, then twice: the same result */
    void *ws;
    size_t wsb;
    dcb_tensor *y = tu_plan(op, x, &ws, &wsb), *y2 = TU_LIKE(y);
    assert_ok(dcb_op_run(op, x, y, ws, NULL));
    expect_close(op, y, ref, "small case", c);
    assert_ok(dcb_op_prepare(op));
    assert_ok(dcb_op_prepare(op));
    size_t wsb2;
    assert_ok(dcb_op_plan(op, x->ndim, x->shape, NULL, NULL, &wsb2));
    assert_true(wsb2 == wsb);
    assert_ok(dcb_op_run(op, x, y2, ws, NULL));
    if (memcmp(y->data, y2->data, sizeof(float) * (size_t)y->size))
        fail_msg("%s: prepared twice, a different result", who);

    /* plan once: after a warm-up run, runs on the same shape plan and
     * allocate nothing; the profile has finite phases >= 0, and some time
     * once the runs took a millisecond (a clock far coarser than that aside) */
    assert_ok(dcb_op_run(op, x, y2, ws, NULL));
    const uint64_t plans = dcb_op_plan_count(op), allocs = dcb_alloc_count();
    dcb_profile prof = {{0}};
    const double t0 = now_s();
    int runs = 0;
    while (runs < 5 || (now_s() - t0 < 1e-3 && runs < 2000)) {
        assert_ok(dcb_op_run(op, x, y2, ws, &prof));
        runs++;
    }
    if (dcb_op_plan_count(op) != plans) fail_msg("%s: %d runs on the planned shape made a plan", who, runs);
    if (dcb_alloc_count() != allocs)
        fail_msg("%s: %d runs on the planned shape allocated %llu times", who, runs,
                 (unsigned long long)(dcb_alloc_count() - allocs));
    if (!(profile_sum(&prof, who) > 0)) fail_msg("%s: %d runs (%.3g s) profiled no time", who, runs, now_s() - t0);
    if (memcmp(y->data, y2->data, sizeof(float) * (size_t)y->size)) fail_msg("%s: repeated runs differ", who);

    /* the workspace: NULL and one byte short are refused, naming it */
    if (wsb > 0) {
        assert_status_msg(dcb_op_run(op, x, y2, NULL, NULL), DCB_INVALID_ARGUMENT, "workspace");
        assert_status_msg(dcb_op_run_ws(op, x, y2, ws, wsb - 1, NULL), DCB_INVALID_ARGUMENT, "workspace");
        assert_ok(dcb_op_run_ws(op, x, y2, ws, wsb, NULL));
    } else {
        assert_ok(dcb_op_run(op, x, y2, NULL, NULL));
    }

    /* new weights on the prepared and planned op: the next run uses them (no
     * stale prepared state), giving the oracle's result with them */
    assert_ok(dcb_op_init_weights(op, 12));
    assert_ok(dcb_op_init_weights(orc, 12));
    dcb_tensor *ref3 = forward_ok(orc, x, "oracle, new weights"), *w = TU_LIKE(y);
    assert_ok(dcb_op_plan(op, x->ndim, x->shape, NULL, NULL, &wsb2));
    assert_true(wsb2 == wsb);
    assert_ok(dcb_op_run(op, x, w, ws, NULL));
    expect_close(op, w, ref3, "new weights", c);
    if (dcb_max_rel_err(ref3, ref, NULL) > 4 * tol && !(dcb_max_rel_err(w, y, NULL) > tol))
        fail_msg("%s: new weights did not change the result", who);

    /* a new shape (N and H, W or T): a new plan, the output shape follows,
     * still the oracle's result */
    const uint64_t before = dcb_op_plan_count(op);
    dcb_tensor *x2 = input_of(op, c->N + 1, c->H + 3, c->W + 2, c->T + 5, 4);
    dcb_tensor *ref2 = forward_ok(orc, x2, "oracle, new shape"), *z = forward_ok(op, x2, "new shape");
    assert_true(dcb_op_plan_count(op) > before);
    expect_close(op, z, ref2, "re-planned on a new shape", c);

    dcb_tensor_free(w);
    dcb_tensor_free(ref3);
    dcb_tensor_free(z);
    dcb_tensor_free(ref2);
    dcb_tensor_free(x2);
    dcb_tensor_free(y);
    dcb_tensor_free(y2);
    dcb_aligned_free(ws);
    dcb_tensor_free(ref);
    dcb_tensor_free(x);
    dcb_op_destroy(orc);
    dcb_op_destroy(op);

    /* the unsupported path: a stride-2 and a 5x5 case refused at create */
    if (checked_engine(o->engine[k])) {
        int np = 0, tried = 0;
        const dcb_param_spec *ps = dcb_op_params(o->name, &np);
        for (int v = 0; v < 2; v++) {
            const char *key = v ? "kh" : "stride";
            int has = 0;
            for (int i = 0; i < np; i++) has |= !strcmp(ps[i].name, key);
            if (!has) continue;
            tc_case u = *c;
            if (v) {
                hp_set(&u, "kh", 5);
                hp_set(&u, "kw", 5);
            } else {
                hp_set(&u, "stride", 2);
            }
            op = (dcb_op *)0x1;
            assert_status_msg(make(o, k, &u, threads, &op), DCB_UNSUPPORTED_PARAM, who);
            assert_null(op);
            tried++;
        }
        if (!tried) fail_msg("%s: no stride or kernel size to make a case it cannot run", who);
    }
    return 1;
}

/* ------------------------------------------------------------- one operator */
static void conform(const char *name, tc_gen gen, int ncases) {
    tc_op o;
    memset(&o, 0, sizeof o);
    o.name = name;
    o.nimpl = dcb_impl_count(name);
    o.oracle = ORACLE;
    assert_true(o.nimpl >= 1 && o.nimpl <= MAX_IMPLS);
    uint64_t r = 0x5eed;
    for (const char *p = name; *p; p++) r = r * 131 + (unsigned char)*p;

    /* the small case of each implementation: the first of a few that it runs */
    for (int k = 0; k < o.nimpl; k++) {
        uint64_t rs = r + 1000u * (uint64_t)k;
        int tries = 0;
        for (;;) {
            const tc_case small = new_case(gen, &rs, 1, 1 + k % 2);
            if (lifecycle(&o, k, &small, 1 + k % 2)) break;
            if (++tries == 20) fail_msg("%s/%s runs none of 20 small cases", name, dcb_impl_name(name, k));
        }
    }

    int checked[MAX_IMPLS] = {0}, unsupported[MAX_IMPLS] = {0}, n1 = 0, odd = 0;
    double worst[MAX_IMPLS] = {0};
    for (int i = 0; i < ncases; i++) {
        const int threads = 1 + i % 2;
        tc_case c = new_case(gen, &r, i % 2 == 0, i % 3 == 1 ? 1 : tu_rand(&r, 1, 3));
        n1 += c.N == 1;
        odd += (c.H % 2) || (c.W % 2) || (c.T % 2);
        dcb_op *orc = make_ok(&o, o.oracle, &c, threads, 100 + (uint64_t)i);
        dcb_tensor *x = input_of(orc, c.N, c.H, c.W, c.T, 200 + (uint64_t)i);
        dcb_tensor *ref = forward_ok(orc, x, "oracle");
        dcb_op_destroy(orc);
        for (int k = 0; k < o.nimpl; k++) {
            if (k == o.oracle) continue;
            dcb_op *op = NULL;
            dcb_status st = make(&o, k, &c, threads, &op);
            dcb_tensor *y = NULL;
            if (st == DCB_OK) {
                assert_ok(dcb_op_init_weights(op, 100 + (uint64_t)i));
                st = dcb_op_forward(op, x, &y);
            }
            if (unsupported_ok(&o, k, st, &c)) {
                unsupported[k]++;
            } else {
                if (st != DCB_OK) fail_msg("%s/%s: %s", name, dcb_impl_name(name, k), dcb_last_error());
                const double err = expect_close(op, y, ref, "sweep", &c);
                worst[k] = err > worst[k] ? err : worst[k];
                checked[k]++;
            }
            dcb_tensor_free(y);
            dcb_op_destroy(op);
        }
        dcb_tensor_free(ref);
        dcb_tensor_free(x);
    }
    for (int k = 0; k < o.nimpl; k++) {
        const char *impl = dcb_impl_name(name, k);
        if (k == o.oracle) {
            print_message("%-11s %-28s the oracle\n", name, impl);
            continue;
        }
        print_message("%-11s %-28s %3d checked, %3d unsupported, max rel err %.3g\n", name, impl, checked[k],
                      unsupported[k], worst[k]);
        if (checked[k] < ncases / 3)
            fail_msg("%s/%s checked on %d of %d cases (unsupported on %d)", name, impl, checked[k], ncases,
                     unsupported[k]);
    }
    assert_true(n1 > 0 && n1 < ncases && odd > 0);
}

static void test_conformance(void **state) {
    (void)state;
    const int ncases = tu_quick() ? 80 : 300;
    int nimpls = 0;
    for (int i = 0; i < dcb_op_count(); i++) {
        const char *name = dcb_op_name(i);
        tc_gen gen = generator_of(name);
        if (!gen) fail_msg("operator '%s' has no case generator in tests/test_conformance.c: add one", name);
        const double t0 = now_s();
        conform(name, gen, ncases);
        print_message("%s: %.2f s\n", name, now_s() - t0);
        nimpls += dcb_impl_count(name);
    }
    print_message("%d operators, %d implementations, %d cases each\n", dcb_op_count(), nimpls, ncases);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
    };
    return cmocka_run_group_tests_name("conformance", tests, NULL, NULL);
}
