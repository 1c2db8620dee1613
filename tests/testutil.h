/* Shared helpers of the cmocka test programs. */
#ifndef DCB_TESTUTIL_H
#define DCB_TESTUTIL_H
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dcb.h"

/* DCB_TEST_QUICK (set for the sanitizer run) shrinks the random sweeps. */
static inline int tu_quick(void) {
    const char *q = getenv("DCB_TEST_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static inline int tu_rand(uint64_t *s, int lo, int hi) {  /* inclusive */
    return lo + (int)(dcb_rand_u64(s) % (uint64_t)(hi - lo + 1));
}

#define TU_HP(n, v) ((dcb_hparam){(n), (double)(v), NULL})
#define TU_HS(n, s) ((dcb_hparam){(n), 0, (s)})

/* Asserts st == want and that the last error message contains `needle`. */
#define assert_status_msg(st, want, needle)                                              \
    do {                                                                                 \
        dcb_status st_ = (st);                                                           \
        if (st_ != (want))                                                               \
            fail_msg("status %s, expected %s (%s)", dcb_status_name(st_),                \
                     dcb_status_name(want), dcb_last_error());                           \
        if (!strstr(dcb_last_error(), (needle)))                                         \
            fail_msg("message '%s' does not mention '%s'", dcb_last_error(), (needle)); \
    } while (0)

#define assert_ok(st)                                                                   \
    do {                                                                                \
        dcb_status st_ = (st);                                                          \
        if (st_ != DCB_OK) fail_msg("%s: %s", dcb_status_name(st_), dcb_last_error()); \
    } while (0)

/* Plans op for x (which must succeed) and allocates what a run needs: the
 * output, returned, and the workspace, *ws of *wsb bytes. */
static inline dcb_tensor *tu_plan(dcb_op *op, const dcb_tensor *x, void **ws, size_t *wsb) {
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    assert_ok(dcb_op_plan(op, x->ndim, x->shape, &yn, ys, wsb));
    *ws = dcb_aligned_alloc(*wsb);
    return dcb_tensor_new(yn, ys);
}
#define TU_LIKE(t) dcb_tensor_new((t)->ndim, (t)->shape) /* a new tensor of t's shape */

/* The relative error of op's output y against ref (dcb_max_rel_err), which
 * must be within the tolerance op's implementation promises
 * (dcb_op_tolerance); desc names the case in the failure. */
static inline double tu_err_within_tol(const dcb_op *op, const dcb_tensor *y, const dcb_tensor *ref,
                                       const char *desc) {
    const double err = dcb_max_rel_err(y, ref, NULL), tol = dcb_op_tolerance(op);
    if (!(err <= tol))
        fail_msg("%s/%s on %s: relative error %.3g above its tolerance %.3g", dcb_op_get_name(op),
                 dcb_op_get_impl(op), desc, err, tol);
    return err;
}

#endif
