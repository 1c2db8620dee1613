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

#define MAX_IMPLS 32
#include "opcases.h"

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

/* Implementation k of the operator: the registered ones, then "auto" where
 * the operator has it (dcb_impl_has_auto): it is checked like the others. */
static const char *impl_of(const char *name, int k) {
    return k < dcb_impl_count(name) ? dcb_impl_name(name, k) : "auto";
}

static dcb_status make(const tc_op *o, int k, const tc_case *c, int threads, dcb_op **op) {
    dcb_hparam hp[MAX_HP + 1];
    memcpy(hp, c->hp, sizeof(dcb_hparam) * (size_t)c->nhp);
    hp[c->nhp] = TU_HP("threads", threads);
    return dcb_op_create(o->name, impl_of(o->name, k), hp, c->nhp + 1, op);
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
    snprintf(who, sizeof who, "%s/%s", o->name, impl_of(o->name, k));
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
    const char *impl = impl_of(o->name, k);
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
    o.nimpl = dcb_impl_count(name) + dcb_impl_has_auto(name);
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
            if (++tries == 20) fail_msg("%s/%s runs none of 20 small cases", name, impl_of(name, k));
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
                if (st != DCB_OK) fail_msg("%s/%s: %s", name, impl_of(name, k), dcb_last_error());
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
        const char *impl = impl_of(name, k);
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
        nimpls += dcb_impl_count(name) + dcb_impl_has_auto(name);
    }
    print_message("%d operators, %d implementations, %d cases each\n", dcb_op_count(), nimpls, ncases);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
    };
    return cmocka_run_group_tests_name("conformance", tests, NULL, NULL);
}
