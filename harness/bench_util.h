/* bench_util.h — what the standalone benchmark programs (harness/bench_*.c)
 * share: a monotonic clock, a comparator for sorting times to take medians,
 * and the record of one timed operator. */
#ifndef DCB_BENCH_UTIL_H
#define DCB_BENCH_UTIL_H

#include "dcb.h"

#include <time.h>

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define BENCH_MAXREP 64

/* One operator under test: its workspace and output, how many runs make
 * one timed sample, the samples, and the profile of one extra run. */
typedef struct bench_slot {
    dcb_op *op;
    void *ws;
    dcb_tensor *y;
    int inner;
    double t[BENCH_MAXREP];
    dcb_profile prof;
} bench_slot;

#endif
