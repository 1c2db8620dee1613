/* calibrate_auto.c — the references of impl "auto" (dcb.h, AUTO): every
 * candidate implementation timed on a small grid of reference layers per
 * operator, on 1 thread and on all, at the ISA level in use; written as a
 * CSV beside the calibration (dcbench calibrate) and given to the library
 * at start (dcbh_auto_load). The grid follows the layers of the papers'
 * networks: ResNet's 3x3 stages at batch 1 and 8, 1x1 and stride-2
 * layers, MobileNet's depthwise ones; the dynamic operators at the sizes of
 * their ablations.
 *
 * Leave-one-out check: each reference point is picked for by a model that
 * has every other point and not it, and the pick's measured time is
 * compared with the fastest candidate's there. That is how well auto does
 * on a layer it was not calibrated on; calibrate prints it. */
#define _GNU_SOURCE
#include "harness.h"
#include "measure.h"
#include "dcb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct auto_point {
    const char *op, *hp; /* "key=value ..." */
    int N, H, T;         /* images H x H, or sequences of T */
} auto_point;

static const auto_point grid[] = {
    {"conv2d", "cin=64 cout=64 k=3 pad=1", 1, 56, 0},
    {"conv2d", "cin=128 cout=128 k=3 pad=1", 1, 28, 0},
    {"conv2d", "cin=256 cout=256 k=3 pad=1", 1, 14, 0},
    {"conv2d", "cin=512 cout=512 k=3 pad=1", 1, 7, 0},
    {"conv2d", "cin=64 cout=64 k=3 pad=1", 8, 56, 0},
    {"conv2d", "cin=128 cout=128 k=3 pad=1", 8, 28, 0},
    {"conv2d", "cin=256 cout=256 k=3 pad=1", 8, 14, 0},
    {"conv2d", "cin=512 cout=512 k=3 pad=1", 8, 7, 0},
    {"conv2d", "cin=32 cout=32 k=3 pad=1", 1, 112, 0},
    {"conv2d", "cin=256 cout=256 k=3 pad=1", 1, 7, 0},
    {"conv2d", "cin=256 cout=64 k=1", 1, 56, 0},
    {"conv2d", "cin=512 cout=512 k=1", 1, 7, 0},
    {"conv2d", "cin=128 cout=128 k=3 pad=1 stride=2", 1, 28, 0},
    {"conv2d", "cin=144 cout=144 k=3 pad=1 groups=144", 1, 56, 0},
    {"conv2d", "cin=384 cout=384 k=3 pad=1 groups=384", 1, 14, 0},
    {"condconv", "cin=128 cout=128 k=3 pad=1 experts=8", 8, 28, 0},
    {"condconv", "cin=256 cout=256 k=3 pad=1 experts=8", 8, 14, 0},
    {"condconv", "cin=128 cout=128 k=3 pad=1 experts=2", 8, 28, 0},
    {"condconv", "cin=256 cout=256 k=3 pad=1 experts=8", 1, 14, 0},
    {"condconv", "cin=64 cout=64 k=1 experts=4", 8, 28, 0},
    {"dyconv", "cin=128 cout=128 k=3 pad=1 kernels=4", 8, 28, 0},
    {"dyconv", "cin=256 cout=256 k=3 pad=1 kernels=4", 8, 14, 0},
    {"dyconv", "cin=256 cout=256 k=3 pad=1 kernels=4", 1, 14, 0},
    {"dyconv", "cin=64 cout=64 k=1 kernels=4", 8, 28, 0},
    {"weightnet", "cin=128 cout=128 k=3 pad=1", 8, 28, 0},
    {"weightnet", "cin=256 cout=256 k=3 pad=1", 1, 14, 0},
    {"drconv", "cin=64 cout=64 k=3 pad=1 regions=8", 8, 28, 0},
    {"drconv", "cin=128 cout=128 k=3 pad=1 regions=4", 1, 14, 0},
    {"skconv", "cin=128 cout=128", 8, 28, 0},
    {"skconv", "cin=256 cout=256", 1, 14, 0},
    {"splat", "cin=128 cout=128 k=3 pad=1 radix=2", 8, 28, 0},
    {"splat", "cin=256 cout=256 k=3 pad=1 radix=2", 1, 14, 0},
    {"lightconv", "channels=512 heads=16 kernel_size=31", 8, 0, 256},
    {"lightconv", "channels=512 heads=16 kernel_size=3", 8, 0, 1024},
    {"dynconv1d", "channels=512 heads=16 kernel_size=31", 8, 0, 256},
    {"dynconv1d", "channels=512 heads=16 kernel_size=3", 8, 0, 1024},
};
#define NGRID ((int)(sizeof grid / sizeof grid[0]))
#define MAX_CAND 16

const char *dcbh_auto_path(void) {
    static char buf[4096];
    const char *p = getenv("DCB_AUTO_CALIBRATION");
    if (p && *p) return p;
    snprintf(buf, sizeof buf, "%s", dcbh_calib_path());
    char *sl = strrchr(buf, '/');
    if (sl)
        snprintf(sl + 1, sizeof buf - (size_t)(sl + 1 - buf), "auto_calibration.csv");
    else
        snprintf(buf, sizeof buf, "auto_calibration.csv");
    return buf;
}

/* "k=v k=v": values that parse as numbers are numbers */
static int parse_hp(const char *s, char *store, size_t len, dcb_hparam *hp, int max) {
    snprintf(store, len, "%s", s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(store, " ", &save); tok && n < max; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        char *end;
        const double v = strtod(eq + 1, &end);
        hp[n] = *end ? (dcb_hparam){.name = tok, .str = eq + 1} : (dcb_hparam){.name = tok, .num = v};
        n++;
    }
    return n;
}

static dcb_status make(const auto_point *g, const char *impl, int threads, dcb_op **op) {
    char store[256];
    dcb_hparam hp[24];
    int n = parse_hp(g->hp, store, sizeof store, hp, 23);
    hp[n++] = (dcb_hparam){.name = "threads", .num = threads};
    return dcb_op_create(g->op, impl, hp, n, op);
}

typedef struct measured {
    int point, threads, ncand;
    const char *impl[MAX_CAND];
    double sec[MAX_CAND];
    dcb_cost cost[MAX_CAND];
} measured;

/* The candidates of g->op: the implementations auto chooses from. */
static int candidates(const char *op, const char **out) {
    int n = 0;
    for (int i = 0; i < dcb_impl_count(op) && n < MAX_CAND; i++)
        if (dcb_impl_is_auto_candidate(op, i)) out[n++] = dcb_impl_name(op, i);
    return n;
}

static void add_refs(const measured *m, int nm, int skip_point) {
    dcb_auto_clear_references();
    for (int i = 0; i < nm; i++) {
        if (m[i].point == skip_point) continue;
        for (int c = 0; c < m[i].ncand; c++) {
            if (!(m[i].sec[c] > 0)) continue;
            const dcb_cost *k = &m[i].cost[c];
            dcb_auto_add_reference(grid[m[i].point].op, m[i].impl[c], dcb_isa(), m[i].threads, k->macs, k->bytes,
                                   k->params, k->acts, k->executed_macs, m[i].sec[c]);
        }
    }
}

int dcbh_auto_calibrate(int threads_all, int quick, FILE *out) {
    const int nthr = threads_all > 1 ? 2 : 1;
    const int thr[2] = {1, threads_all};
    measured *m = calloc((size_t)NGRID * 2, sizeof *m);
    if (!m) return -1;
    int nm = 0;
    dcbh_bench_opts o;
    dcbh_bench_defaults(&o, 1);
    o.repetitions = quick ? 1 : 5;
    o.min_time = quick ? 0.0005 : 0.02;
    o.time = 1;
    const double t0 = dcbh_now();
    for (int g = 0; g < NGRID; g++) {
        if (quick && g % 6) continue; /* tests: one point in six */
        for (int ti = 0; ti < nthr; ti++) {
            measured *r = &m[nm++];
            r->point = g, r->threads = thr[ti];
            r->ncand = candidates(grid[g].op, r->impl);
            for (int c = 0; c < r->ncand; c++) {
                r->sec[c] = NAN;
                dcb_op *op = NULL;
                if (make(&grid[g], r->impl[c], thr[ti], &op) != DCB_OK) continue;
                int64_t shape[DCB_MAX_DIMS];
                const int nd = dcb_op_input_shape(op, grid[g].N, grid[g].H, grid[g].H, grid[g].T, shape);
                dcb_tensor *x = dcb_tensor_new(nd, shape);
                dcbh_bench_result br;
                if (x && dcb_op_init_weights(op, 3) == DCB_OK && dcb_op_cost(op, nd, shape, &r->cost[c]) == DCB_OK) {
                    dcb_tensor_randn(x, 5);
                    if (dcbh_bench(op, x, &o, &br) == DCB_OK && br.timed) r->sec[c] = br.t.median;
                }
                dcb_tensor_free(x);
                dcb_op_destroy(op);
            }
            if (out) {
                fprintf(out, "  %-9s %-44s N=%d %s%-4d %d thr:", grid[g].op, grid[g].hp, grid[g].N,
                        grid[g].T ? "T=" : "H=", grid[g].T ? grid[g].T : grid[g].H, thr[ti]);
                for (int c = 0; c < r->ncand; c++)
                    if (r->sec[c] > 0) fprintf(out, " %s %.3g", r->impl[c], r->sec[c] * 1e3);
                fprintf(out, " ms\n");
                fflush(out);
            }
        }
    }
    /* the CSV: the rows an earlier calibrate wrote for other ISA levels
     * (DCB_ISA=avx2 after the widest) stay; this level's are replaced */
    static const char head[] = "op,impl,isa,threads,point,N,H,W,T,macs,bytes,params,acts,executed_macs,seconds\n";
    const char *path = dcbh_auto_path();
    dcbh_sb b = {0};
    sb_add(&b, head);
    int kept = 0;
    char *old = dcbh_read_all(path);
    if (old && *old && strncmp(old, head, strlen(head)))
        fprintf(stderr, "dcbench calibrate: %s: not this version's columns (%.*s...): its rows are not kept\n", path,
                (int)strcspn(old, "\n") < 60 ? (int)strcspn(old, "\n") : 60, old);
    else if (old) {
        for (char *line = old + strlen(head), *eol; *line; line = eol ? eol + 1 : line + strlen(line)) {
            eol = strchr(line, '\n');
            const size_t len = eol ? (size_t)(eol - line) : strlen(line);
            /* op,impl,isa,...: neither op nor impl has a comma */
            const char *c1 = memchr(line, ',', len), *c2 = c1 ? memchr(c1 + 1, ',', len - (size_t)(c1 + 1 - line)) : NULL;
            const char *c3 = c2 ? memchr(c2 + 1, ',', len - (size_t)(c2 + 1 - line)) : NULL;
            if (!c3 || ((size_t)(c3 - c2 - 1) == strlen(dcb_isa()) && !strncmp(c2 + 1, dcb_isa(), (size_t)(c3 - c2 - 1))))
                continue;
            sb_addn(&b, line, len);
            sb_add(&b, "\n");
            kept++;
            if (!eol) break;
        }
    }
    free(old);
    for (int i = 0; i < nm; i++) {
        const auto_point *g = &grid[m[i].point];
        for (int c = 0; c < m[i].ncand; c++) {
            if (!(m[i].sec[c] > 0)) continue;
            const dcb_cost *k = &m[i].cost[c];
            sb_printf(&b, "%s,%s,%s,%d,", g->op, m[i].impl[c], dcb_isa(), m[i].threads);
            sb_csv_field(&b, g->hp);
            sb_printf(&b, ",%d,%d,%d,%d", g->N, g->H, g->H, g->T);
            const double v[6] = {k->macs, k->bytes, k->params, k->acts, k->executed_macs, m[i].sec[c]};
            for (int j = 0; j < 6; j++) {
                sb_add(&b, ",");
                sb_num(&b, v[j]);
            }
            sb_add(&b, "\n");
        }
    }
    dcbh_mkdir_parent(path);
    const int werr = write_file_atomic(path, b.s ? b.s : "", b.n);
    sb_free(&b);
    if (werr) {
        fprintf(stderr, "dcbench calibrate: cannot write %s: %s\n", path, strerror(errno));
        free(m);
        return -1;
    }
    /* leave one out */
    int picks = 0, best_picks = 0;
    double worst = 1, sum_log = 0;
    for (int i = 0; i < nm; i++) {
        const auto_point *g = &grid[m[i].point];
        double best = INFINITY;
        for (int c = 0; c < m[i].ncand; c++)
            if (m[i].sec[c] < best) best = m[i].sec[c];
        if (!(best < INFINITY)) continue;
        add_refs(m, nm, m[i].point);
        dcb_op *op = NULL;
        if (make(g, "auto", m[i].threads, &op) != DCB_OK) continue;
        int64_t shape[DCB_MAX_DIMS];
        const int nd = dcb_op_input_shape(op, g->N, g->H, g->H, g->T, shape);
        const char *pk = dcb_op_plan(op, nd, shape, NULL, NULL, NULL) == DCB_OK ? dcb_op_get_picked(op) : NULL;
        for (int c = 0; pk && c < m[i].ncand; c++) {
            if (strcmp(pk, m[i].impl[c]) || !(m[i].sec[c] > 0)) continue;
            const double r = m[i].sec[c] / best;
            picks++;
            best_picks += r <= 1.05;
            sum_log += log(r);
            if (r > worst) worst = r;
            if (out && r > 1.05)
                fprintf(out, "  left out %s %s N=%d %d thr: auto picks %s, %.2fx the fastest\n", g->op, g->hp, g->N,
                        m[i].threads, pk, r);
        }
        dcb_op_destroy(op);
    }
    add_refs(m, nm, -1);
    if (out)
        fprintf(out,
                "auto: %d reference points (%s); left out one at a time, the model's pick is within 5%% of the "
                "fastest on %d of %d, geometric mean %.3fx, worst %.2fx; %.0f s\nwrote %s (and kept %d rows of "
                "other ISA levels)\n",
                nm, dcb_isa(), best_picks, picks, picks ? exp(sum_log / picks) : NAN, worst, dcbh_now() - t0, path,
                kept);
    free(m);
    return 0;
}

int dcbh_auto_load(const char *path, char *err, size_t errlen) {
    csv_table t;
    if (csv_read(path, &t, CSV_TOLERANT, err, errlen)) return errno == ENOENT ? 1 : -1;
    const char *need[] = {"op", "impl", "isa", "threads", "macs", "bytes", "params", "acts", "executed_macs", "seconds"};
    int col[10];
    for (int i = 0; i < 10; i++)
        if ((col[i] = csv_col(&t, need[i])) < 0) {
            snprintf(err, errlen, "%s: no column '%s' (write it again with dcbench calibrate)", path, need[i]);
            csv_free(&t);
            return -1;
        }
    int rc = 0;
    for (int r = 0; r < t.nrows && !rc; r++) {
        char **f = t.rows[r];
        double v[7];
        for (int i = 0; i < 7; i++) {
            char *end;
            v[i] = strtod(f[col[3 + i]], &end);
            if (end == f[col[3 + i]] || *end) v[i] = NAN;
        }
        if (dcb_auto_add_reference(f[col[0]], f[col[1]], f[col[2]], isfinite(v[0]) ? (int)v[0] : 0, v[1], v[2], v[3],
                                   v[4], v[5], v[6]) != DCB_OK) {
            snprintf(err, errlen, "%s: row %d: %s", path, r + 2, dcb_last_error());
            rc = -1;
        }
    }
    csv_free(&t);
    return rc;
}
