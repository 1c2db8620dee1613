/* bench_util.h — what the standalone benchmark programs (harness/bench_*.c)
 * share: a monotonic clock, a comparator for sorting times to take medians,
 * the hypervisor's steal time, and the record of one timed operator. */
#ifndef DCB_BENCH_UTIL_H
#define DCB_BENCH_UTIL_H

#include "dcb.h"

#include <stdio.h>
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

/* The "cpu" line of /proc/stat: time the hypervisor ran something else
 * while this VM's vCPUs wanted to run (steal) and all CPU time, in ticks of
 * every CPU together; both 0 where it cannot be read. A 2-thread region
 * waits for its slowest thread, so steal shows up in 2-thread timings far
 * more than in 1-thread ones. */
static inline void bench_cpu_ticks(unsigned long long *steal, unsigned long long *total) {
    unsigned long long v[8] = {0};
    *steal = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    const int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                         &v[6], &v[7]);
    fclose(f);
    if (n < 8) return;
    for (int i = 0; i < 8; i++) *total += v[i];
    *steal = v[7];
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

/* op/impl with hp, weights from seed 3, prepared and planned for x, with its
 * workspace and output in s. Not DCB_OK: dcb_last_error() says why. */
static inline dcb_status bench_slot_make(bench_slot *s, const char *op, const char *impl, const dcb_hparam *hp,
                                         int nhp, const dcb_tensor *x) {
    size_t wsb = 0;
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    dcb_status st = dcb_op_create(op, impl, hp, nhp, &s->op);
    if (st == DCB_OK) st = dcb_op_init_weights(s->op, 3);
    if (st == DCB_OK) st = dcb_op_prepare(s->op);
    if (st == DCB_OK) st = dcb_op_plan(s->op, x->ndim, x->shape, &yn, ys, &wsb);
    if (st == DCB_OK && wsb && !(s->ws = dcb_aligned_alloc(wsb))) st = DCB_OUT_OF_MEMORY;
    if (st == DCB_OK && !(s->y = dcb_tensor_new(yn, ys))) st = DCB_OUT_OF_MEMORY;
    return st;
}

#endif
