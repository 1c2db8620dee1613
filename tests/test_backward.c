/* Backward conformance: every registered operator x every registered
 * backward implementation, on the seeded random cases of opcases.h.
 *
 *   The naive backward (implementation 0) against central finite differences
 *   of the oracle forward: for x and every weight whose gradient is exact
 *   (dcb_op_weight_grad_exact), the directional derivative along a random
 *   direction v, <grad, v>, against (L(t + h v) - L(t - h v)) / 2h with
 *   L = sum(dy * y) in double. It must agree within FD_TOL relative to
 *   |<grad, v>| + 1e-3 |grad| |v|, plus the rounding floor of the float
 *   forward (FD_FLOOR * sum|dy * y| / h). A direction whose estimates at h
 *   and h/2 disagree, or whose second differences do not shrink as h^2, crossed
 *   a kink of the forward (a ReLU, an argmax, a max) and is drawn again, up to
 *   FD_TRIES times, h shrinking each time; a kink close to the centre, which
 *   biases every central difference alike, leaves one side smooth, so a
 *   one-sided second-order estimate that agrees (within 2x) also passes. dx is
 *   checked only where it is exact (dcb_op_input_grad_exact: not drconv's,
 *   whose guide conv passes its surrogate gradient into x).
 *   Every other backward against the naive one, within the tolerance it
 *   promises (dcb_op_backward_tolerance), and its training forward's y
 *   against the oracle forward's.
 *
 * An operator without a backward implementation fails, so that no operator
 * is left untrainable. DCB_TEST_OP=name restricts the test to one operator
 * (while developing a backward). */
#include "opcases.h"

#define FD_TOL 1e-2
#define FD_FLOOR 1e-6
#define FD_TRIES 8
#define MAX_BWD 8

static double dot_f64(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double nrm_f64(const float *a, int64_t n) { return sqrt(dot_f64(a, a, n)); }

/* L = sum(dy * forward(x)) with the op's training forward (the function the
 * backward differentiates); *absum = sum |dy * y|. */
static double loss_of(dcb_op *op, const dcb_tensor *x, const dcb_tensor *dy, double *absum) {
    dcb_tensor *y = TU_LIKE(dy);
    assert_ok(dcb_op_forward_train(op, x, y));
    double s = 0, a = 0;
    for (int64_t i = 0; i < y->size; i++) {
        s += (double)dy->data[i] * y->data[i];
        a += fabs((double)dy->data[i] * y->data[i]);
    }
    dcb_tensor_free(y);
    if (absum) *absum = a;
    return s;
}

/* Finite differences of L along random directions of tensor t (x, or weight
 * wi of op when wi >= 0), against the analytic gradient g. */
static void fd_check(dcb_op *op, dcb_tensor *x, int wi, const dcb_tensor *g, const dcb_tensor *dy, uint64_t seed,
                     const char *desc) {
    /* a weight is perturbed in a copy t, set anew each time (set_weight copies it) */
    const char *what = wi < 0 ? "x" : dcb_op_weight_name(op, wi);
    dcb_tensor *t = wi < 0 ? x : dcb_tensor_clone(dcb_op_get_weight(op, what));
    dcb_tensor *t0 = dcb_tensor_clone(t), *v = TU_LIKE(t);
    const double rms = nrm_f64(t0->data, t0->size) / sqrt((double)t0->size);
    double h = 1e-2 * (rms > 0.05 ? rms : 0.05);
    double last_an = 0, last_fd = 0, last_fd2 = 0, last_allowed = 0;
    for (int attempt = 0; attempt < FD_TRIES; attempt++, h *= 0.4) {
        dcb_tensor_uniform(v, seed + 977u * (uint64_t)attempt, -1, 1);
        const double an = dot_f64(g->data, v->data, v->size);
        double L[5], absum = 0;
        const double steps[5] = {h, -h, h / 2, -h / 2, 0};
        for (int s = 0; s < 5; s++) {
            for (int64_t i = 0; i < t->size; i++) t->data[i] = t0->data[i] + (float)(steps[s]) * v->data[i];
            if (wi >= 0) assert_ok(dcb_op_set_weight(op, what, t)); /* drops the prepared state */
            L[s] = loss_of(op, x, dy, s == 0 ? &absum : NULL);
        }
        memcpy(t->data, t0->data, sizeof(float) * (size_t)t->size);
        if (wi >= 0) assert_ok(dcb_op_set_weight(op, what, t0));
        const double fd = (L[0] - L[1]) / (2 * h), fd2 = (L[2] - L[3]) / h;
        const double scale = fabs(an) + 1e-3 * nrm_f64(g->data, g->size) * nrm_f64(v->data, v->size);
        const double noise = FD_FLOOR * absum, allowed = FD_TOL * scale + noise / h;
        /* second differences: O(h^2) on a smooth path (c1 = 4 c2), O(h) across a kink */
        const double c1 = L[0] + L[1] - 2 * L[4], c2 = L[2] + L[3] - 2 * L[4];
        last_an = an, last_fd = fd, last_fd2 = fd2, last_allowed = allowed;
        if (fabs(fd - fd2) > 2 * allowed || fabs(c1 - 4 * c2) > 0.25 * fabs(c1) + 12 * noise)
            continue; /* a kink between the samples: another direction */
        /* one-sided second-order estimates: a kink close to the centre spoils the
         * central differences but leaves one side smooth */
        const double fdp = (4 * (L[2] - L[4]) - (L[0] - L[4])) / h, fdm = -(4 * (L[3] - L[4]) - (L[1] - L[4])) / h;
        if (fabs(fd - an) > allowed && fabs(fdp - an) > 2 * allowed && fabs(fdm - an) > 2 * allowed)
            fail_msg("%s: d%s: <grad, v> = %.9g, finite differences %.9g (h %.3g, allowed %.3g)", desc, what, an,
                     fd, h, allowed);
        dcb_tensor_free(t0);
        dcb_tensor_free(v);
        if (wi >= 0) dcb_tensor_free(t);
        return;
    }
    fail_msg("%s: d%s: no smooth direction in %d tries (last: <grad, v> %.9g, FD %.9g and %.9g at h/2, allowed "
             "%.3g)",
             desc, what, FD_TRIES, last_an, last_fd, last_fd2, last_allowed);
}

typedef struct grads {
    dcb_tensor *y, *dx, *dw[16];
    int nw;
} grads;

static void grads_free(grads *g) {
    dcb_tensor_free(g->y);
    dcb_tensor_free(g->dx);
    for (int i = 0; i < g->nw; i++) dcb_tensor_free(g->dw[i]);
    memset(g, 0, sizeof *g);
}

/* Training forward and backward of op on x with dy, into new tensors. */
static dcb_status run_backward(dcb_op *op, const dcb_tensor *x, const dcb_tensor *dy, grads *g) {
    memset(g, 0, sizeof *g);
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    dcb_status st = dcb_op_plan(op, x->ndim, x->shape, &yn, ys, NULL);
    if (st != DCB_OK) return st;
    g->y = dcb_tensor_new(yn, ys);
    g->dx = TU_LIKE(x);
    g->nw = dcb_op_weight_count(op);
    for (int i = 0; i < g->nw; i++) {
        int64_t s[DCB_MAX_DIMS];
        const int nd = dcb_op_weight_shape(op, i, s);
        g->dw[i] = dcb_tensor_new(nd, s);
        dcb_tensor_uniform(g->dw[i], 99, -1, 1); /* overwritten: garbage must not survive */
    }
    dcb_tensor_uniform(g->dx, 98, -1, 1);
    if ((st = dcb_op_forward_train(op, x, g->y)) != DCB_OK) return st;
    return dcb_op_backward(op, dy, g->dx, g->dw);
}

static double rel_err(const dcb_tensor *a, const dcb_tensor *b) { return dcb_max_rel_err(a, b, NULL); }

static void backward_op(const char *name, tc_gen gen, int ncases, int *nchecked) {
    const int nb = dcb_bwd_count(name);
    if (nb <= 0) fail_msg("operator '%s' has no backward implementation", name);
    assert_true(nb <= MAX_BWD);
    int checked[MAX_BWD] = {0}, unsupported[MAX_BWD] = {0};
    double worst[MAX_BWD] = {0};
    uint64_t r = 0xbac4u + (uint64_t)strlen(name) * 131u;
    for (int ci = 0; ci < ncases; ci++) {
        tc_case c = new_case(gen, &r, ci % 3 == 0, tu_rand(&r, 1, 3));
        char desc[512], cs[400];
        case_str(&c, cs, sizeof cs);
        dcb_op *op = NULL;
        assert_ok(dcb_op_create(name, NULL, c.hp, c.nhp, &op));
        assert_ok(dcb_op_init_weights(op, 7 + (uint64_t)ci));
        int64_t xs[DCB_MAX_DIMS];
        const int xn = dcb_op_input_shape(op, c.N, c.H, c.W, c.T, xs);
        dcb_tensor *x = dcb_tensor_new(xn, xs);
        dcb_tensor_randn(x, 1000 + (uint64_t)ci);
        int yn;
        int64_t ys[DCB_MAX_DIMS];
        assert_ok(dcb_op_plan(op, xn, xs, &yn, ys, NULL));
        dcb_tensor *dy = dcb_tensor_new(yn, ys);
        dcb_tensor_randn(dy, 2000 + (uint64_t)ci);
        dcb_tensor *yref = NULL;
        assert_ok(dcb_op_forward(op, x, &yref));

        grads ref;
        snprintf(desc, sizeof desc, "%s/naive backward on %s", name, cs);
        assert_ok(dcb_op_set_backward(op, dcb_bwd_name(name, 0)));
        dcb_status st = run_backward(op, x, dy, &ref);
        if (st != DCB_OK) fail_msg("%s: %s", desc, dcb_last_error());
        const int same_y = !dcb_op_train_differs(op); /* else the training forward's y is compared among backwards */
        if (same_y && rel_err(ref.y, yref) > 1e-6)
            fail_msg("%s: training forward y differs by %.3g", desc, rel_err(ref.y, yref));
        if (dcb_op_input_grad_exact(op)) fd_check(op, x, -1, ref.dx, dy, 31 + (uint64_t)ci, desc);
        for (int i = 0; i < ref.nw; i++)
            if (dcb_op_weight_is_buffer(op, i) && nrm_f64(ref.dw[i]->data, ref.dw[i]->size) != 0)
                fail_msg("%s: the buffer %s has a nonzero gradient", desc, dcb_op_weight_name(op, i));
        for (int i = 0; i < ref.nw; i++)
            if (dcb_op_weight_grad_exact(op, i)) fd_check(op, x, i, ref.dw[i], dy, 57 + (uint64_t)ci * 13 + i, desc);
        checked[0]++;

        for (int k = 1; k < nb; k++) {
            const char *bn = dcb_bwd_name(name, k);
            snprintf(desc, sizeof desc, "%s/%s backward on %s", name, bn, cs);
            st = dcb_op_set_backward(op, bn);
            if (dcb_status_is_unsupported(st)) {
                unsupported[k]++;
                continue;
            }
            assert_ok(st);
            grads g;
            st = run_backward(op, x, dy, &g);
            if (st != DCB_OK) fail_msg("%s: %s", desc, dcb_last_error());
            const double tol = dcb_op_backward_tolerance(op);
            double e = rel_err(g.y, same_y ? yref : ref.y);
            if (e > (tol > 1e-5 ? tol : 1e-5)) fail_msg("%s: training forward y differs by %.3g", desc, e);
            e = rel_err(g.dx, ref.dx);
            for (int i = 0; i < g.nw; i++) {
                if (dcb_op_weight_is_buffer(op, i)) continue;
                const double ei = rel_err(g.dw[i], ref.dw[i]);
                if (ei > tol)
                    fail_msg("%s: d%s differs from the naive backward by %.3g (tolerance %.3g)", desc,
                             dcb_op_weight_name(op, i), ei, tol);
                e = ei > e ? ei : e;
            }
            if (e > tol) fail_msg("%s: dx differs from the naive backward by %.3g (tolerance %.3g)", desc, e, tol);
            worst[k] = e > worst[k] ? e : worst[k];
            checked[k]++;
            grads_free(&g);
        }
        grads_free(&ref);
        dcb_tensor_free(yref);
        dcb_tensor_free(dy);
        dcb_tensor_free(x);
        dcb_op_destroy(op);
    }
    for (int k = 0; k < nb; k++) {
        if (k)
            print_message("%-11s backward %-20s %3d checked, %3d unsupported, max rel err vs naive %.3g\n", name,
                          dcb_bwd_name(name, k), checked[k], unsupported[k], worst[k]);
        else
            print_message("%-11s backward %-20s %3d checked against finite differences\n", name,
                          dcb_bwd_name(name, k), checked[k]);
        if (checked[k] < ncases / 3)
            fail_msg("%s backward %s checked on %d of %d cases", name, dcb_bwd_name(name, k), checked[k], ncases);
        *nchecked += checked[k];
    }
}

static void test_backward_all(void **state) {
    (void)state;
    const char *only = getenv("DCB_TEST_OP");
    const int ncases = tu_quick() ? 4 : 12;
    int n = 0;
    for (int i = 0; i < dcb_op_count(); i++) {
        const char *name = dcb_op_name(i);
        if (only && *only && strcmp(only, name)) continue;
        tc_gen gen = generator_of(name);
        if (!gen) fail_msg("operator '%s' has no case generator in tests/opcases.h", name);
        backward_op(name, gen, ncases, &n);
    }
    assert_true(n > 0);
}

/* The errors of the training API, on conv2d. */
static void test_backward_errors(void **state) {
    (void)state;
    const dcb_hparam hp[] = {TU_HP("cin", 2), TU_HP("cout", 3), TU_HP("k", 3), TU_HP("pad", 1), TU_HP("bias", 1)};
    dcb_op *op = NULL;
    assert_ok(dcb_op_create("conv2d", NULL, hp, 5, &op));
    assert_ok(dcb_op_init_weights(op, 1));
    dcb_tensor *x = tu_randn4(2, 2, 5, 5, 1), *y = tu_randn4(2, 3, 5, 5, 2), *dy = tu_randn4(2, 3, 5, 5, 3);
    dcb_tensor *bad = tu_randn4(2, 3, 4, 5, 4), *dx = TU_LIKE(x);
    assert_status_msg(dcb_op_backward(op, dy, dx, NULL), DCB_INVALID_ARGUMENT, "without a training forward");
    assert_status_msg(dcb_op_forward_train(op, x, bad), DCB_INVALID_SHAPE, "y has shape");
    assert_ok(dcb_op_forward_train(op, x, y));
    assert_status_msg(dcb_op_backward(op, bad, dx, NULL), DCB_INVALID_SHAPE, "dy has shape (2, 3, 4, 5)");
    assert_status_msg(dcb_op_backward(op, dy, bad, NULL), DCB_INVALID_SHAPE, "dx has shape");
    dcb_tensor *dw[2] = {bad, NULL};
    assert_status_msg(dcb_op_backward(op, dy, dx, dw), DCB_INVALID_SHAPE, "gradient of 'weight'");
    assert_ok(dcb_op_backward(op, dy, dx, NULL));
    /* new weights forget the training forward */
    assert_ok(dcb_op_init_weights(op, 2));
    assert_status_msg(dcb_op_backward(op, dy, dx, NULL), DCB_INVALID_ARGUMENT, "without a training forward");
    assert_status_msg(dcb_op_set_backward(op, "nope"), DCB_UNKNOWN_IMPL, "unknown backward implementation 'nope'");
    assert_true(dcb_bwd_count("nope") == -1);
    assert_non_null(dcb_op_get_backward(op));
    dcb_tensor_free(x);
    dcb_tensor_free(y);
    dcb_tensor_free(dy);
    dcb_tensor_free(bad);
    dcb_tensor_free(dx);
    dcb_op_destroy(op);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_errors),
        cmocka_unit_test(test_backward_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
