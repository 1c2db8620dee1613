/* bench_util.h — the two helpers every standalone benchmark program
 * (bench_engines, bench_pointwise_dw, bench_dynamic, bench_seq) needs:
 * a monotonic clock and a comparator for sorting times to take medians. */
#ifndef DCB_BENCH_UTIL_H
#define DCB_BENCH_UTIL_H

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

#endif
