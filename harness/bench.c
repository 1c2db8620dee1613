/* bench.c — timing one operator on one input: prepare timed on its own,
 * then Google Benchmark repetitions (measure.h), profiled runs for the
 * per-phase split, and counters around a fixed number of iterations. */
#define _GNU_SOURCE
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dcbh_bench_defaults(dcbh_bench_opts *o, int quick) {
    memset(o, 0, sizeof *o);
    const dcbh_timing t = dcbh_timing_for(quick);
    o->repetitions = t.repetitions;
    o->min_time = t.min_time;
    o->time = 1;
    o->profile = 1;
}

static size_t llc_bytes(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    size_t v = 0;
    char unit = 0;
    if (f) {
        if (fscanf(f, "%zu%c", &v, &unit) < 1) v = 0;
        fclose(f);
    }
    if (unit == 'K') v <<= 10;
    if (unit == 'M') v <<= 20;
    return v ? v : (size_t)32 << 20;
}

typedef struct body_ctx {
    dcb_op *op;
    const dcb_tensor **xs;
    int nx;
    dcb_tensor *y;
    void *ws;
} body_ctx;

static int body(void *p, int64_t it) {
    body_ctx *c = p;
    return dcb_op_run(c->op, c->xs[it % c->nx], c->y, c->ws, NULL) != DCB_OK;
}

static dcb_status fail(dcbh_bench_result *r, dcb_status st, const char *msg) {
    r->status = st;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    return st;
}

dcb_status dcbh_bench(dcb_op *op, const dcb_tensor *x, const dcbh_bench_opts *o, dcbh_bench_result *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < DCB_PHASE_COUNT; i++) r->phase[i] = NAN;
    for (int i = 0; i < DCBH_NCOUNTERS; i++) r->c.v[i] = NAN;
    r->prepare_s = NAN;
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    size_t wsb = 0;
    dcb_status st = dcb_op_plan(op, x->ndim, x->shape, &yn, ys, &wsb);
    if (st != DCB_OK) return fail(r, st, dcb_last_error());
    double t0 = dcbh_now();
    st = dcb_op_prepare(op);
    r->prepare_s = dcbh_now() - t0;
    if (st != DCB_OK) return fail(r, st, dcb_last_error());

    body_ctx c = {op, NULL, 1, dcb_tensor_new(yn, ys), wsb ? dcb_aligned_alloc(wsb) : NULL};
    int nx = 1;
    if (o->rotate) {
        /* Enough copies that one pass over them evicts the last-level cache. */
        size_t xb = (size_t)x->size * sizeof(float);
        size_t need = 2 * llc_bytes() / (xb ? xb : 1) + 1;
        nx = (int)(need > 4096 ? 4096 : need);
        if (nx < 2) nx = 2;
    }
    c.xs = calloc((size_t)nx, sizeof *c.xs);
    c.nx = nx;
    int oom = !c.y || (wsb && !c.ws) || !c.xs;
    if (!oom) {
        c.xs[0] = x;
        for (int i = 1; i < nx && !oom; i++) oom = !(c.xs[i] = dcb_tensor_clone(x));
    }
    if (oom) {
        fail(r, DCB_OUT_OF_MEMORY, "out of memory for output, workspace or rotated inputs");
        goto done;
    }
    r->rotate_copies = o->rotate ? nx : 0;
    /* A first run: checks the shape is supported and warms caches and threads. */
    st = dcb_op_run(op, x, c.y, c.ws, NULL);
    if (st != DCB_OK) {
        fail(r, st, dcb_last_error());
        goto done;
    }
    if (o->time) {
        dcbh_time_opts to = {o->name ? o->name : dcb_op_get_name(op), o->repetitions, o->min_time,
                             dcb_op_threads(op), o->json_path};
        char err[512] = "";
        const int trc = dcbh_time(body, &c, &to, &r->t, err, sizeof err);
        if (trc && r->t.json_failed) {
            /* The operator ran; its record could not be kept. A sweep stops on
             * this rather than write the point off as an error. */
            r->io_failed = 1;
            fail(r, DCB_IO_ERROR, err);
            goto done;
        }
        if (trc) {
            st = DCB_INVALID_ARGUMENT;
            fail(r, st, err[0] ? err : dcb_last_error());
            goto done;
        }
        r->timed = 1;
    }
    if (o->profile) {
        /* Phases on the total's statistic: of a few profiled runs, the one
         * whose wall time is their median gives the split, and the split
         * is of the median total (time_median_s) where the op was timed, so
         * that the phases never add up to more than the total. */
        enum { MAXRUNS = 5 };
        const int runs = !r->timed ? 3 : r->t.median > 0.1 ? 1 : r->t.median > 0.02 ? 3 : MAXRUNS;
        dcb_profile p[MAXRUNS];
        double wall[MAXRUNS];
        int done = 0;
        for (; done < runs; done++) {
            memset(&p[done], 0, sizeof p[done]);
            const double s0 = dcbh_now();
            if (dcb_op_run(op, x, c.y, c.ws, &p[done]) != DCB_OK) break;
            wall[done] = dcbh_now() - s0;
        }
        if (done > 0) {
            int ord[MAXRUNS];
            for (int k = 0; k < done; k++) ord[k] = k;
            for (int a = 1; a < done; a++)
                for (int b = a; b > 0 && wall[ord[b - 1]] > wall[ord[b]]; b--) {
                    const int t = ord[b];
                    ord[b] = ord[b - 1];
                    ord[b - 1] = t;
                }
            const int m = ord[(done - 1) / 2];
            const double scale = r->timed && wall[m] > 0 ? r->t.median / wall[m] : 1.0;
            for (int i = 0; i < DCB_PHASE_COUNT; i++) r->phase[i] = p[m].seconds[i] * scale;
            r->profiled = 1;
        }
    }
    if (o->counters) {
        /* About 0.1 s of work, at least one iteration, reported per iteration. */
        double per = r->timed ? r->t.median : 1e-3;
        int64_t iters = per > 0 ? (int64_t)(0.1 / per) : 1;
        if (iters < 1) iters = 1;
        if (iters > 100000) iters = 100000;
        dcbh_counters_init();
        if (dcbh_counters_start() == 0) {
            for (int64_t i = 0; i < iters; i++) body(&c, i);
            if (dcbh_counters_stop(&r->c) == 0) {
                for (int i = 0; i < DCBH_NCOUNTERS; i++) r->c.v[i] /= (double)iters;
                r->counted = 1;
            }
        }
        if (!r->counted) {
            r->c.source = "none";
            for (int i = 0; i < DCBH_NCOUNTERS; i++) r->c.v[i] = NAN;
        }
    }
    r->status = DCB_OK;
done:
    if (c.xs)
        for (int i = 1; i < nx; i++) dcb_tensor_free((dcb_tensor *)c.xs[i]);
    free(c.xs);
    dcb_tensor_free(c.y);
    dcb_aligned_free(c.ws);
    return r->status;
}
