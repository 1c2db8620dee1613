/* compare.c — dcb.compare: an interleaved comparison of variants (operators
 * on their inputs, or a bare GEMM), for the focused benchmarks of
 * sweeps/bench/. Every variant is warmed up, then given an inner count so
 * that one sample lasts at least min_time; the repetitions then alternate
 * the variants (rep 1: A B C, rep 2: A B C, ...), so that a machine that
 * gets busier or quieter during the run slows every variant alike and the
 * ratios of the medians stay comparable. Reported per variant: the median,
 * the quartiles, min and max, the (max - min) / median spread, GFLOP/s and
 * the ratio of its median to the baseline's; optionally the hypervisor's
 * steal time over the repetitions (/proc/stat), one profiled run's phases,
 * a printed table and CSV rows. No operator is known here: a variant is
 * whatever op and input the script made. */
#define _GNU_SOURCE
#include "harness.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_INNER (1 << 16)
#define MAX_VARIANTS 256

typedef struct cvar {
    char name[128];
    dcb_op *op;                /* borrowed: the definition table keeps the userdata alive */
    const dcb_tensor *x;       /* borrowed, as op */
    dcb_tensor *y;
    void *ws;
    int gemm, M, N, K, batch;  /* a bare sgemm C[b] = A B, batch times */
    float *A, *B, *C;
    int threads;
    double flops;
    const char *status;        /* "ok" | "unsupported" | "error" */
    char reason[512];
    int inner;
    double t[DCBH_MAX_REPS];   /* seconds per run, in the order of the repetitions */
    int profiled;
    dcb_profile prof;
    uint64_t replans;          /* plans made during the timed runs (0 expected) */
    double median, q1, q3, min, max, mean, spread;
} cvar;

typedef struct compare {
    int nv;
    cvar *v;
    int reps, max_inner, baseline, steal, profile, print;
    double min_time, flops;
    const char *title, *csv;
    double steal_pct;          /* NAN: not asked for, or /proc/stat unreadable */
    int norder;
    int *order;                /* variant index of every sample, in time order */
} compare;

static void compare_free(compare *c) {
    for (int i = 0; i < c->nv; i++) {
        cvar *v = &c->v[i];
        dcb_tensor_free(v->y);
        dcb_aligned_free(v->ws);
        dcb_aligned_free(v->A);
        dcb_aligned_free(v->B);
        dcb_aligned_free(v->C);
    }
    free(c->v);
    free(c->order);
    memset(c, 0, sizeof *c);
}

static int compare_gc(lua_State *L) {
    compare_free(lua_touserdata(L, 1));
    return 0;
}

/* ------------------------------------------------------------- reading */
/* Integer field k of the table at t, else its element idx (when > 0), else def. */
static int int_field(lua_State *L, int t, const char *k, int idx, int def) {
    int v = def;
    if (lua_getfield(L, t, k) == LUA_TNIL && idx > 0) {
        lua_pop(L, 1);
        lua_geti(L, t, idx);
    }
    if (!lua_isnil(L, -1)) v = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* gemm = {M=, N=, K=} or {M, N, K} */
static void read_gemm(lua_State *L, int vt, cvar *v) {
    int g = lua_gettop(L);
    if (!lua_istable(L, g)) luaL_error(L, "dcb.compare: variant %s: gemm must be {M=, N=, K=}", v->name);
    v->gemm = 1;
    v->M = int_field(L, g, "M", 1, 0);
    v->N = int_field(L, g, "N", 2, 0);
    v->K = int_field(L, g, "K", 3, 0);
    if (v->M < 1 || v->N < 1 || v->K < 1)
        luaL_error(L, "dcb.compare: variant %s: gemm needs positive M, N, K, got %d, %d, %d", v->name, v->M, v->N,
                   v->K);
    v->batch = int_field(L, vt, "batch", 0, 1);
    if (v->batch < 1) luaL_error(L, "dcb.compare: variant %s: batch must be >= 1", v->name);
}

static void read_variant(lua_State *L, compare *c, int i) {
    static const char *const valid[] = {"name", "op", "x", "gemm", "batch", "threads", "flops", NULL};
    cvar *v = &c->v[i];
    int vt = lua_gettop(L);
    if (!lua_istable(L, vt)) luaL_error(L, "dcb.compare: variants[%d] must be a table {name=, op=, x=}", i + 1);
    dcbh_check_keys(L, vt, "dcb.compare: variant", valid);
    v->status = "ok";
    v->flops = NAN;
    lua_getfield(L, vt, "gemm");
    const int is_gemm = !lua_isnil(L, -1);
    lua_getfield(L, vt, "op");
    if (!is_gemm) v->op = dcbh_check_op(L, -1, "dcb.compare: variant op");
    if (lua_getfield(L, vt, "name") != LUA_TNIL)
        snprintf(v->name, sizeof v->name, "%s", luaL_checkstring(L, -1));
    else if (is_gemm)
        snprintf(v->name, sizeof v->name, "gemm");
    else
        snprintf(v->name, sizeof v->name, "%s/%s", dcb_op_get_name(v->op), dcb_op_get_impl(v->op));
    lua_pop(L, 2);
    if (is_gemm) {
        if (lua_getfield(L, vt, "op") != LUA_TNIL)
            luaL_error(L, "dcb.compare: variant %s: give op or gemm, not both", v->name);
        lua_pop(L, 1);
        read_gemm(L, vt, v);   /* the gemm table is at the top */
        v->threads = int_field(L, vt, "threads", 0, dcb_default_threads());
        v->flops = 2.0 * v->M * v->N * (double)v->K * v->batch;
    } else {
        if (lua_getfield(L, vt, "x") == LUA_TNIL)
            luaL_error(L, "dcb.compare: variant %s: x (the op's input tensor) is required", v->name);
        v->x = dcbh_check_tensor(L, -1, "dcb.compare: variant x");
        lua_pop(L, 1);
        v->threads = dcb_op_threads(v->op);
        int t = int_field(L, vt, "threads", 0, v->threads);
        if (t != v->threads)
            luaL_error(L, "dcb.compare: variant %s: threads=%d, but the op runs %d (give threads when creating the "
                          "op)", v->name, t, v->threads);
        dcb_cost cost;
        if (dcb_op_cost(v->op, v->x->ndim, v->x->shape, &cost) == DCB_OK) v->flops = cost.flops;
    }
    lua_pop(L, 1);   /* gemm */
    if (lua_getfield(L, vt, "flops") != LUA_TNIL) v->flops = luaL_checknumber(L, -1);
    else if (!isnan(c->flops)) v->flops = c->flops;
    lua_pop(L, 1);
    if (v->threads < 1) luaL_error(L, "dcb.compare: variant %s: threads must be >= 1", v->name);
    for (int j = 0; j < i; j++)
        if (!strcmp(c->v[j].name, v->name))
            luaL_error(L, "dcb.compare: two variants are named '%s' (give each a name)", v->name);
}

static void read_options(lua_State *L, compare *c) {
    static const char *const valid[] = {"variants", "baseline", "repetitions", "min_time", "max_inner", "steal",
                                        "profile", "print", "csv", "title", "flops", NULL};
    dcbh_check_keys(L, 1, "dcb.compare", valid);
    const dcbh_timing tm = dcbh_timing_for(dcbh_lua_options(L)->quick);
    c->reps = tm.repetitions;
    c->min_time = tm.min_time;
    c->max_inner = DEFAULT_MAX_INNER;
    c->print = 1;
    c->flops = NAN;
    c->steal_pct = NAN;
    if (lua_getfield(L, 1, "repetitions") != LUA_TNIL) c->reps = (int)luaL_checkinteger(L, -1);
    if (c->reps < 1 || c->reps > DCBH_MAX_REPS)
        luaL_error(L, "dcb.compare: repetitions=%d must be in 1..%d", c->reps, DCBH_MAX_REPS);
    if (lua_getfield(L, 1, "min_time") != LUA_TNIL) c->min_time = luaL_checknumber(L, -1);
    if (!(c->min_time > 0)) luaL_error(L, "dcb.compare: min_time must be > 0");
    if (lua_getfield(L, 1, "max_inner") != LUA_TNIL) c->max_inner = (int)luaL_checkinteger(L, -1);
    if (c->max_inner < 1) luaL_error(L, "dcb.compare: max_inner must be >= 1");
    if (lua_getfield(L, 1, "steal") != LUA_TNIL) c->steal = lua_toboolean(L, -1);
    if (lua_getfield(L, 1, "profile") != LUA_TNIL) c->profile = lua_toboolean(L, -1);
    if (lua_getfield(L, 1, "print") != LUA_TNIL) c->print = lua_toboolean(L, -1);
    if (lua_getfield(L, 1, "csv") != LUA_TNIL) c->csv = luaL_checkstring(L, -1);
    if (lua_getfield(L, 1, "title") != LUA_TNIL) c->title = luaL_checkstring(L, -1);
    if (lua_getfield(L, 1, "flops") != LUA_TNIL) c->flops = luaL_checknumber(L, -1);
    lua_pop(L, 9);   /* the strings stay alive in the definition table */
}

/* Step 1: the definition (argument 1) into c. */
static void read_compare(lua_State *L, compare *c) {
    read_options(L, c);
    if (lua_getfield(L, 1, "variants") != LUA_TTABLE)
        luaL_error(L, "dcb.compare: variants (a list of {name=, op=, x=} or {name=, gemm={M=, N=, K=}}) is required");
    lua_Integer n = luaL_len(L, -1);
    if (n < 1 || n > MAX_VARIANTS)
        luaL_error(L, "dcb.compare: variants has %d entries, must have 1..%d", (int)n, MAX_VARIANTS);
    c->v = calloc((size_t)n, sizeof *c->v);
    if (!c->v) luaL_error(L, "dcb.compare: out of memory");
    for (int i = 0; i < (int)n; i++) {
        c->nv = i + 1;   /* what compare_free must release */
        lua_geti(L, -1, i + 1);
        read_variant(L, c, i);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    c->baseline = 0;
    if (lua_getfield(L, 1, "baseline") != LUA_TNIL) {
        const char *b = luaL_checkstring(L, -1);
        c->baseline = -1;
        for (int i = 0; i < c->nv; i++)
            if (!strcmp(c->v[i].name, b)) c->baseline = i;
        if (c->baseline < 0) {
            dcbh_sb names = {0};
            for (int i = 0; i < c->nv; i++) sb_printf(&names, "%s%s", i ? ", " : "", c->v[i].name);
            lua_pushstring(L, names.s);
            sb_free(&names);
            luaL_error(L, "dcb.compare: baseline '%s' is no variant (variants: %s)", b, lua_tostring(L, -1));
        }
    }
    lua_pop(L, 1);
}

/* ------------------------------------------------------------- running */
static void set_fail(cvar *v, dcb_status st, const char *msg) {
    v->status = dcb_status_is_unsupported(st) ? "unsupported" : "error";
    snprintf(v->reason, sizeof v->reason, "%s: %s", dcb_status_name(st), msg);
}

/* One run of the variant; DCB_OK or why not. */
static dcb_status run_once(cvar *v, dcb_profile *prof) {
    if (!v->gemm) return dcb_op_run(v->op, v->x, v->y, v->ws, prof);
    for (int b = 0; b < v->batch; b++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, v->M, v->N, v->K, 1.0f, v->A, v->K, v->B, v->N,
                    0.0f, v->C + (size_t)b * v->M * v->N, v->N);
    return DCB_OK;
}

/* Seconds per run of `inner` runs. */
static double sample(cvar *v, int inner) {
    if (v->gemm) dcb_blas_set_threads(v->threads);
    const double t0 = dcbh_now();
    for (int i = 0; i < inner; i++) run_once(v, NULL);
    return (dcbh_now() - t0) / inner;
}

static void setup_gemm(cvar *v) {
    const size_t a = (size_t)v->M * v->K, b = (size_t)v->K * v->N, cs = (size_t)v->batch * v->M * v->N;
    v->A = dcb_aligned_alloc(sizeof(float) * a);
    v->B = dcb_aligned_alloc(sizeof(float) * b);
    v->C = dcb_aligned_alloc(sizeof(float) * cs);
    if (!v->A || !v->B || !v->C) {
        set_fail(v, DCB_OUT_OF_MEMORY, "the GEMM's operands");
        return;
    }
    for (size_t i = 0; i < a; i++) v->A[i] = (float)((int)(i % 7) - 3) * 0.01f;
    for (size_t i = 0; i < b; i++) v->B[i] = (float)((int)(i % 5) - 2) * 0.1f;
    memset(v->C, 0, sizeof(float) * cs);
}

static void setup_op(cvar *v) {
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    size_t wsb = 0;
    dcb_status st = dcb_op_prepare(v->op);
    if (st == DCB_OK) st = dcb_op_plan(v->op, v->x->ndim, v->x->shape, &yn, ys, &wsb);
    if (st != DCB_OK) {
        set_fail(v, st, dcb_last_error());
        return;
    }
    if ((wsb && !(v->ws = dcb_aligned_alloc(wsb))) || !(v->y = dcb_tensor_new(yn, ys)))
        set_fail(v, DCB_OUT_OF_MEMORY, "output or workspace");
}

/* Step 2: every variant ready, warmed up (one run), and its inner count:
 * doubled until `inner` runs last longer than min_time. */
static void prepare_variants(compare *c) {
    for (int i = 0; i < c->nv; i++) {
        cvar *v = &c->v[i];
        if (v->gemm)
            setup_gemm(v);
        else
            setup_op(v);
        if (strcmp(v->status, "ok")) continue;
        if (v->gemm) dcb_blas_set_threads(v->threads);
        dcb_status st = run_once(v, NULL);
        if (st != DCB_OK) {
            set_fail(v, st, dcb_last_error());
            continue;
        }
        v->inner = 1;
        while (sample(v, v->inner) * v->inner <= c->min_time && v->inner <= c->max_inner) v->inner *= 2;
    }
}

/* Step 3: the repetitions, variants alternating within each; then one
 * profiled run of every operator. */
static void run_interleaved(compare *c) {
    c->order = calloc((size_t)c->reps * (size_t)c->nv, sizeof *c->order);
    uint64_t *plans = calloc((size_t)c->nv, sizeof *plans);
    for (int i = 0; i < c->nv; i++)
        if (c->v[i].op) plans[i] = dcb_op_plan_count(c->v[i].op);
    /* steal: the ticks the hypervisor ran something else while this VM's
     * vCPUs wanted to run. A multi-threaded region waits for its slowest
     * thread, so steal shows in many-thread timings far more. */
    unsigned long long b0, s0, t0, b1, s1, t1;
    dcbh_cpu_ticks(&b0, &s0, &t0);
    for (int r = 0; r < c->reps; r++)
        for (int i = 0; i < c->nv; i++) {
            cvar *v = &c->v[i];
            if (strcmp(v->status, "ok")) continue;
            v->t[r] = sample(v, v->inner);
            if (c->order) c->order[c->norder++] = i;
        }
    dcbh_cpu_ticks(&b1, &s1, &t1);
    if (c->steal && t1 > t0) c->steal_pct = 100.0 * (double)(s1 - s0) / (double)(t1 - t0);
    for (int i = 0; i < c->nv; i++) {
        cvar *v = &c->v[i];
        if (v->op) v->replans = dcb_op_plan_count(v->op) - plans[i];
        if (c->profile && v->op && !strcmp(v->status, "ok"))
            v->profiled = dcb_op_run(v->op, v->x, v->y, v->ws, &v->prof) == DCB_OK;
    }
    free(plans);
}

/* ---------------------------------------------------------- statistics */
int dcbh_cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile of sorted s[0..n-1], linear between order statistics. */
double dcbh_quantile(const double *s, int n, double p) {
    const double h = p * (n - 1);
    const int lo = (int)floor(h), hi = lo + 1 < n ? lo + 1 : lo;
    return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

/* Step 4: per variant median, quartiles, min, max, mean and spread. */
static void summarise(compare *c) {
    for (int i = 0; i < c->nv; i++) {
        cvar *v = &c->v[i];
        v->median = v->q1 = v->q3 = v->min = v->max = v->mean = v->spread = NAN;
        if (strcmp(v->status, "ok")) continue;
        double s[DCBH_MAX_REPS], sum = 0;
        memcpy(s, v->t, sizeof(double) * (size_t)c->reps);
        qsort(s, (size_t)c->reps, sizeof s[0], dcbh_cmp_double);
        for (int r = 0; r < c->reps; r++) sum += s[r];
        v->median = dcbh_quantile(s, c->reps, 0.5);
        v->q1 = dcbh_quantile(s, c->reps, 0.25);
        v->q3 = dcbh_quantile(s, c->reps, 0.75);
        v->min = s[0];
        v->max = s[c->reps - 1];
        v->mean = sum / c->reps;
        v->spread = (v->max - v->min) / v->median;
    }
}

static double ratio_of(const compare *c, const cvar *v) { return v->median / c->v[c->baseline].median; }

/* ------------------------------------------------------------- output */
static void print_table(const compare *c) {
    int w = 7;
    for (int i = 0; i < c->nv; i++) w = (int)strlen(c->v[i].name) > w ? (int)strlen(c->v[i].name) : w;
    if (c->title) printf("# %s\n", c->title);
    char rh[160];
    snprintf(rh, sizeof rh, "x %s", c->v[c->baseline].name);
    printf("%-*s %3s | %9s %9s %9s %9s %9s %7s %8s | %s\n", w, "variant", "thr", "median_ms", "q1_ms", "q3_ms",
           "min_ms", "max_ms", "spread", "GFLOP/s", rh);
    for (int i = 0; i < c->nv; i++) {
        const cvar *v = &c->v[i];
        if (strcmp(v->status, "ok")) {
            printf("%-*s %3d | %s: %s\n", w, v->name, v->threads, v->status, v->reason);
            continue;
        }
        printf("%-*s %3d | %9.3f %9.3f %9.3f %9.3f %9.3f %6.1f%% %8.1f | %.2f\n", w, v->name, v->threads,
               1e3 * v->median, 1e3 * v->q1, 1e3 * v->q3, 1e3 * v->min, 1e3 * v->max, 100 * v->spread,
               v->flops / v->median * 1e-9, ratio_of(c, v));
    }
    if (!isnan(c->steal_pct)) printf("# steal: %.1f%% of all CPU time during the repetitions (/proc/stat)\n", c->steal_pct);
    fflush(stdout);
}

static const char csv_header[] = "title,variant,op,impl,threads,status,reason,repetitions,inner,median_s,q1_s,q3_s,"
                                 "min_s,max_s,mean_s,spread,flops,gflops,baseline,ratio,steal_pct\n";

static void csv_row(const compare *c, const cvar *v, dcbh_sb *b) {
    const int ok = !strcmp(v->status, "ok");
    sb_csv_field(b, c->title ? c->title : "");
    sb_add(b, ",");
    sb_csv_field(b, v->name);
    sb_add(b, ",");
    sb_csv_field(b, v->gemm ? "gemm" : dcb_op_get_name(v->op));
    sb_add(b, ",");
    sb_csv_field(b, v->gemm ? "cblas_sgemm" : dcb_op_get_impl(v->op));
    sb_printf(b, ",%d,%s,", v->threads, v->status);
    sb_csv_field(b, v->reason);
    sb_printf(b, ",%d,%d", c->reps, ok ? v->inner : 0);
    const double cells[] = {v->median, v->q1, v->q3, v->min, v->max, v->mean, v->spread, v->flops,
                            ok ? v->flops / v->median * 1e-9 : NAN};
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
        sb_add(b, ",");
        sb_num(b, cells[i]);
    }
    sb_add(b, ",");
    sb_csv_field(b, c->v[c->baseline].name);
    sb_add(b, ",");
    sb_num(b, ok ? ratio_of(c, v) : NAN);
    sb_add(b, ",");
    sb_num(b, c->steal_pct);
    sb_add(b, "\n");
}

/* Appends the rows to c->csv, with the header when the file is new. */
static void write_csv(lua_State *L, const compare *c) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", c->csv);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = 0;
        mkdir_p(dir);
    }
    int fd = open(c->csv, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) luaL_error(L, "dcb.compare: cannot open %s: %s", c->csv, strerror(errno));
    dcbh_sb b = {0};
    if (lseek(fd, 0, SEEK_END) == 0) sb_add(&b, csv_header);
    for (int i = 0; i < c->nv; i++) csv_row(c, &c->v[i], &b);
    int rc = csv_append_line(fd, b.s, b.n);
    sb_free(&b);
    close(fd);
    if (rc) luaL_error(L, "dcb.compare: cannot write %s: %s", c->csv, strerror(errno));
}

static void push_variant(lua_State *L, const compare *c, const cvar *v) {
    const int ok = !strcmp(v->status, "ok");
    lua_newtable(L);
    lua_pushstring(L, v->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, v->gemm ? "gemm" : dcb_op_get_name(v->op));
    lua_setfield(L, -2, "op");
    lua_pushstring(L, v->gemm ? "cblas_sgemm" : dcb_op_get_impl(v->op));
    lua_setfield(L, -2, "impl");
    lua_pushinteger(L, v->threads);
    lua_setfield(L, -2, "threads");
    lua_pushstring(L, v->status);
    lua_setfield(L, -2, "status");
    if (!ok) {
        lua_pushstring(L, v->reason);
        lua_setfield(L, -2, "reason");
        return;
    }
    lua_pushinteger(L, v->inner);
    lua_setfield(L, -2, "inner");
    static const char *const names[] = {"median", "q1", "q3", "min", "max", "mean", "spread", "flops", "gflops",
                                        "ratio", NULL};
    const double vals[] = {v->median, v->q1,     v->q3,   v->min,  v->max, v->mean, v->spread,
                           v->flops,  v->flops / v->median * 1e-9, ratio_of(c, v)};
    dcbh_set_nums(L, names, vals);
    if (v->op) {
        lua_pushinteger(L, (lua_Integer)v->replans);
        lua_setfield(L, -2, "replans");
    }
    lua_createtable(L, c->reps, 0);
    for (int r = 0; r < c->reps; r++) {
        lua_pushnumber(L, v->t[r]);
        lua_rawseti(L, -2, r + 1);
    }
    lua_setfield(L, -2, "reps");
    if (v->profiled) {
        lua_newtable(L);
        for (int p = 0; p < DCB_PHASE_COUNT; p++) {
            lua_pushnumber(L, v->prof.seconds[p]);
            lua_setfield(L, -2, dcb_phase_name(p));
        }
        lua_setfield(L, -2, "phases");
    }
}

/* Step 5: {title=, baseline=, repetitions=, min_time=, steal=, order={names},
 * variants={...}, by_name={name = variant}}. */
static void push_result(lua_State *L, const compare *c) {
    lua_newtable(L);
    if (c->title) {
        lua_pushstring(L, c->title);
        lua_setfield(L, -2, "title");
    }
    lua_pushstring(L, c->v[c->baseline].name);
    lua_setfield(L, -2, "baseline");
    lua_pushinteger(L, c->reps);
    lua_setfield(L, -2, "repetitions");
    lua_pushnumber(L, c->min_time);
    lua_setfield(L, -2, "min_time");
    dcbh_set_num(L, "steal", c->steal_pct);
    lua_createtable(L, c->norder, 0);
    for (int k = 0; k < c->norder; k++) {
        lua_pushstring(L, c->v[c->order[k]].name);
        lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "order");
    lua_createtable(L, c->nv, 0);
    lua_newtable(L);   /* by_name */
    for (int i = 0; i < c->nv; i++) {
        push_variant(L, c, &c->v[i]);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, c->v[i].name);
        lua_rawseti(L, -3, i + 1);
    }
    lua_setfield(L, -3, "by_name");
    lua_setfield(L, -2, "variants");
}

int dcbh_lua_compare(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    compare *c = lua_newuserdatauv(L, sizeof *c, 0);   /* slot 2; __gc frees what a Lua error leaves */
    memset(c, 0, sizeof *c);
    lua_newtable(L);
    lua_pushcfunction(L, compare_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    read_compare(L, c);
    prepare_variants(c);
    run_interleaved(c);
    summarise(c);
    if (c->print) print_table(c);
    if (c->csv) write_csv(L, c);
    push_result(L, c);
    return 1;
}
