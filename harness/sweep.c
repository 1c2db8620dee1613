/* sweep.c — dcb.sweep: expands a grid in a fixed order, gives every point a
 * stable id (a hash of what it measures, not of its position), skips points
 * already in the CSV, keeps one shard's points, measures each one and
 * appends its row atomically, then draws the figures. dcbh_lua_sweep runs
 * the steps in order: read_def, expand, open_results (which locks the CSV),
 * then under the lock read_done, write_def_json, run_points, draw_figures,
 * push_result. A point's result is the last row of its id (results.c, before
 * cmd_merge). What an operator takes as input (image or sequence, which keys
 * are sizes) comes from the library. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* Defaults of the input shape when a sweep does not give them. */
enum { DEF_N = 1, DEF_HW = 28, DEF_T = 128 };

/* ------------------------------------------------------------- values */
typedef struct pval {
    int isstr;
    double num;
    char *str;
} pval;

static void pval_fmt(dcbh_sb *b, const pval *v) {
    if (v->isstr)
        sb_add(b, v->str);
    else
        sb_num(b, v->num);
}

static int pval_from_lua(lua_State *L, int idx, pval *v) {
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: v->num = lua_tonumber(L, idx); return 0;
    case LUA_TBOOLEAN: v->num = lua_toboolean(L, idx); return 0;
    case LUA_TSTRING: v->isstr = 1; v->str = strdup(lua_tostring(L, idx)); return 0;
    default: return -1;
    }
}

static void pval_push(lua_State *L, const pval *v) {
    if (v->isstr)
        lua_pushstring(L, v->str);
    else if (v->num == floor(v->num) && fabs(v->num) < 9e15)
        lua_pushinteger(L, (lua_Integer)v->num);
    else
        lua_pushnumber(L, v->num);
}

typedef struct key {
    char *name;
    int nvals;
    pval *vals;      /* one value for base keys */
    int in_grid;
} key;

typedef struct point {
    int *vi;         /* value index per key */
    int impl;
    uint64_t id;
    int64_t N, H, W, T;
    int threads;
} point;

/* A point id the CSV holds, with the status of its last row. */
enum { DONE_OK, DONE_UNSUPPORTED, DONE_ERROR, DONE_OTHER };
typedef struct done_pt {
    uint64_t id;
    int status;
    int row;          /* its row in the CSV, to find the last one */
} done_pt;

/* What a run of the points did, for the result and the summary line; *_earlier
 * count the rows of points done before this run. */
typedef struct tally {
    int total, written, skipped, failed, unsupported;
    int failed_earlier, unsupported_earlier;
    int contended; /* rows measured while other processes held cores */
} tally;

typedef struct sweep {
    char *name, *op, *dir_name;   /* dir_name: the results subdirectory */
    int nkeys;
    key *keys;       /* sorted by name */
    int nimpls;
    char **impls;
    int m_time, m_counters, m_similarity;
    int repetitions, rotate;
    double min_time;
    uint64_t seed;
    int npoints, cap;
    point *pts;
    int has_filter;
    const dcbh_options *opt;
    /* the results: paths, the CSV open for appending and locked, the ids
     * done (sorted by id) */
    char dir[2048], base[2300], csv[2400], json[2400], gjson[2400], defpath[2400];
    char script[4096];  /* the calling script's real path ("" when none) */
    dcbh_sb def;     /* the definition's canonical text (sweep_definition) */
    uint64_t defhash;
    dcbh_calib calib;   /* dcbench calibrate's figures, for the floor columns */
    int have_calib;
    dcbh_sb hdr;     /* the CSV's header line */
    int fd;
    int ndone;
    done_pt *done;
    tally n;
} sweep;

static void sweep_free(sweep *s) {
    free(s->name);
    free(s->op);
    free(s->dir_name);
    for (int k = 0; k < s->nkeys; k++) {
        for (int v = 0; v < s->keys[k].nvals; v++) free(s->keys[k].vals[v].str);
        free(s->keys[k].vals);
        free(s->keys[k].name);
    }
    free(s->keys);
    for (int i = 0; i < s->nimpls; i++) free(s->impls[i]);
    free(s->impls);
    for (int i = 0; i < s->npoints; i++) free(s->pts[i].vi);
    free(s->pts);
    free(s->done);
    sb_free(&s->hdr);
    sb_free(&s->def);
    if (s->fd >= 0) close(s->fd);
}

/* Lua errors longjmp: the sweep lives in a userdata whose __gc frees it. */
static int sweep_gc(lua_State *L) {
    sweep_free(lua_touserdata(L, 1));
    return 0;
}

static int key_index(const sweep *s, const char *name) {
    for (int k = 0; k < s->nkeys; k++)
        if (!strcmp(s->keys[k].name, name)) return k;
    return -1;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(((const key *)a)->name, ((const key *)b)->name);
}

/* ------------------------------------------------------------- reading */
static void add_key(lua_State *L, sweep *s, const char *name, int in_grid) {
    int k = key_index(s, name);
    if (k >= 0) {   /* a grid key overrides the base value of the same name */
        for (int v = 0; v < s->keys[k].nvals; v++) free(s->keys[k].vals[v].str);
        free(s->keys[k].vals);
    } else {
        s->keys = realloc(s->keys, sizeof *s->keys * (size_t)(s->nkeys + 1));
        k = s->nkeys++;
        s->keys[k].name = strdup(name);
    }
    key *K = &s->keys[k];
    K->in_grid = in_grid;
    K->nvals = 0;
    K->vals = NULL;
    /* value at -1: a scalar, or for the grid a list of scalars */
    if (in_grid && lua_istable(L, -1)) {
        int n = (int)luaL_len(L, -1);
        if (n < 1) {
            luaL_error(L, "dcb.sweep: grid.%s is an empty list", name);
            return;
        }
        K->vals = calloc((size_t)n, sizeof *K->vals);
        for (int i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            if (pval_from_lua(L, -1, &K->vals[i]))
                luaL_error(L, "dcb.sweep: grid.%s[%d] must be a number, boolean or string, got %s", name,
                           i + 1, luaL_typename(L, -1));
            K->nvals++;
            lua_pop(L, 1);
        }
    } else {
        K->vals = calloc(1, sizeof *K->vals);
        if (pval_from_lua(L, -1, &K->vals[0]))
            luaL_error(L, "dcb.sweep: %s.%s must be a number, boolean or string%s, got %s",
                       in_grid ? "grid" : "base", name, in_grid ? " or a list of them" : "",
                       luaL_typename(L, -1));
        K->nvals = 1;
    }
}

static void read_params(lua_State *L, sweep *s, int def, const char *field, int in_grid) {
    if (lua_getfield(L, def, field) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "dcb.sweep: %s must be a table, got %s", field, luaL_typename(L, -1));
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "dcb.sweep: %s has a key that is not a name (%s)", field, luaL_typename(L, -2));
        add_key(L, s, lua_tostring(L, -2), in_grid);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static const char *valid_param_names(lua_State *L, const char *op) {
    int n = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < n; i++) {
        luaL_addstring(&b, ps[i].name);
        luaL_addstring(&b, ", ");
    }
    luaL_addstring(&b, dcb_op_input_layout(op) == DCB_INPUT_SEQUENCE ? "threads, and the input shape N, T"
                                                                      : "threads, and the input shape N, H, W");
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

static void check_param_names(lua_State *L, const sweep *s) {
    int n = 0;
    const dcb_param_spec *ps = dcb_op_params(s->op, &n);
    for (int k = 0; k < s->nkeys; k++) {
        const char *name = s->keys[k].name;
        int ok = !strcmp(name, "threads") || dcb_op_is_shape_key(s->op, name);
        for (int i = 0; i < n && !ok; i++) ok = !strcmp(ps[i].name, name);
        if (!ok)
            luaL_error(L, "dcb.sweep: %s: unknown hyperparameter '%s' (valid: %s)", s->op, name,
                       valid_param_names(L, s->op));
    }
}

static const char *script_basename(lua_State *L, char *buf, size_t len) {
    /* The calling chunk's file names the results directory: sweeps/experts.lua -> experts. */
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "S", &ar);
        if (ar.source[0] != '@') continue;
        const char *p = strrchr(ar.source, '/');
        p = p ? p + 1 : ar.source + 1;
        snprintf(buf, len, "%s", p);
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf) *dot = 0;
        return buf;
    }
    return NULL;
}

/* The calling chunk's file, as a real path (the definition records it: two
 * scripts of one basename share a results directory). */
static void script_path(lua_State *L, char *buf, size_t len) {
    lua_Debug ar;
    buf[0] = 0;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "S", &ar);
        if (ar.source[0] != '@') continue;
        char rp[PATH_MAX];
        snprintf(buf, len, "%s", realpath(ar.source + 1, rp) ? rp : ar.source + 1);
        return;
    }
}

static void check_fields(lua_State *L) {
    static const char *const valid[] = {"name", "op", "base", "grid", "impls", "filter", "measure",
                                        "plot", "repetitions", "min_time", "rotate", "seed", "dir",
                                        "roofline", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
        int ok = 0;
        for (int i = 0; valid[i]; i++) ok |= !strcmp(k, valid[i]);
        if (!ok)
            luaL_error(L, "dcb.sweep: unknown field '%s' (valid: name, op, base, grid, impls, filter, measure, "
                          "plot, repetitions, min_time, rotate, seed, dir, roofline)", k);
    }
    /* plot = {x=, ...} or a list of such tables: each checked the same way,
     * before anything is measured */
    if (lua_getfield(L, 1, "plot") == LUA_TTABLE) {
        const int pl = lua_gettop(L);
        lua_getfield(L, pl, "x");
        const int single = !lua_isnil(L, -1) || luaL_len(L, pl) == 0;
        lua_pop(L, 1);
        const int n = single ? 1 : (int)luaL_len(L, pl);
        for (int i = 0; i < n; i++) {
            if (single)
                lua_pushvalue(L, pl);
            else
                lua_geti(L, pl, i + 1);
            if (!lua_istable(L, -1)) luaL_error(L, "dcb.sweep: plot[%d] must be a table {x=, y=, by=}", i + 1);
            static const char *const pvalid[] = {"x", "y", "by", "title", "name", "kind", NULL};
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                lua_pop(L, 1);
                const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
                int ok = 0;
                for (int j = 0; pvalid[j]; j++) ok |= !strcmp(k, pvalid[j]);
                if (!ok)
                    luaL_error(L, "dcb.sweep: unknown key '%s' in plot%s (valid: x, y, by, title, name, kind)", k,
                               single ? "" : lua_pushfstring(L, "[%d]", i + 1));
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* name, op and the results directory */
static void read_names(lua_State *L, sweep *s) {
    if (lua_getfield(L, 1, "name") != LUA_TSTRING) luaL_error(L, "dcb.sweep: name (a string) is required");
    const char *name = lua_tostring(L, -1);
    for (const char *p = name; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *p) || !name[0])
            luaL_error(L, "dcb.sweep: name '%s' may hold only letters, digits, '_', '-' and '.'", name);
    s->name = strdup(name);
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "op") != LUA_TSTRING) luaL_error(L, "dcb.sweep: op (a string) is required");
    s->op = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (dcb_impl_count(s->op) < 0) {
        dcbh_sb b = {0};
        for (int i = 0; i < dcb_op_count(); i++) sb_printf(&b, "%s%s", i ? ", " : "", dcb_op_name(i));
        lua_pushstring(L, b.s);
        sb_free(&b);
        luaL_error(L, "dcb.sweep: unknown operator '%s' (valid: %s)", s->op, lua_tostring(L, -1));
    }
    char buf[256];
    if (lua_getfield(L, 1, "dir") == LUA_TSTRING)
        s->dir_name = strdup(lua_tostring(L, -1));
    else
        s->dir_name = strdup(script_basename(L, buf, sizeof buf) ? buf : s->name);
    lua_pop(L, 1);
    script_path(L, s->script, sizeof s->script);
}

/* impls: every registered one by default; one name or a list of them */
static void read_impls(lua_State *L, sweep *s) {
    if (lua_getfield(L, 1, "impls") == LUA_TNIL) {
        s->nimpls = dcb_impl_count(s->op);
        s->impls = calloc((size_t)s->nimpls, sizeof *s->impls);
        for (int i = 0; i < s->nimpls; i++) s->impls[i] = strdup(dcb_impl_name(s->op, i));
        lua_pop(L, 1);
        return;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {   /* one name for a list of one */
        lua_newtable(L);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    int n = (int)luaL_len(L, -1);
    s->impls = calloc((size_t)n + 1, sizeof *s->impls);
    for (int i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        const char *im = lua_tostring(L, -1);
        int ok = 0;
        for (int j = 0; im && j < dcb_impl_count(s->op); j++) ok |= !strcmp(im, dcb_impl_name(s->op, j));
        ok |= im && !strcmp(im, "auto") && dcb_impl_has_auto(s->op);
        if (!ok) {
            dcbh_sb b = {0};
            for (int j = 0; j < dcb_impl_count(s->op); j++)
                sb_printf(&b, "%s%s", j ? ", " : "", dcb_impl_name(s->op, j));
            if (dcb_impl_has_auto(s->op)) sb_add(&b, ", auto");
            lua_pushstring(L, b.s);
            sb_free(&b);
            luaL_error(L, "dcb.sweep: %s: unknown implementation '%s' (valid: %s)", s->op,
                       im ? im : "(not a string)", lua_tostring(L, -1));
        }
        s->impls[s->nimpls++] = strdup(im);
        lua_pop(L, 1);
    }
    if (!n) luaL_error(L, "dcb.sweep: impls is an empty list");
    lua_pop(L, 1);
}

static void read_measure(lua_State *L, sweep *s) {
    s->m_time = 1;
    if (lua_getfield(L, 1, "measure") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        s->m_time = 0;
        for (int i = 1; i <= (int)luaL_len(L, -1); i++) {
            lua_geti(L, -1, i);
            const char *m = lua_tostring(L, -1);
            if (m && !strcmp(m, "time"))
                s->m_time = 1;
            else if (m && !strcmp(m, "counters"))
                s->m_counters = 1;
            else if (m && !strcmp(m, "similarity"))
                s->m_similarity = 1;
            else if (!m || strcmp(m, "cost"))
                luaL_error(L, "dcb.sweep: unknown measure '%s' (valid: time, counters, similarity, cost)",
                           m ? m : luaL_typename(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* repetitions and min_time (quick mode's defaults), rotate, seed */
static void read_timing(lua_State *L, sweep *s) {
    const dcbh_timing t = dcbh_timing_for(s->opt->quick);
    s->repetitions = t.repetitions;
    s->min_time = t.min_time;
    s->seed = 1;
    if (lua_getfield(L, 1, "repetitions") != LUA_TNIL) s->repetitions = (int)luaL_checkinteger(L, -1);
    if (s->repetitions < 1 || s->repetitions > DCBH_MAX_REPS)
        luaL_error(L, "dcb.sweep: repetitions=%d must be in 1..%d", s->repetitions, DCBH_MAX_REPS);
    if (lua_getfield(L, 1, "min_time") != LUA_TNIL) s->min_time = luaL_checknumber(L, -1);
    if (!(s->min_time > 0)) luaL_error(L, "dcb.sweep: min_time must be > 0");
    if (lua_getfield(L, 1, "rotate") != LUA_TNIL) s->rotate = lua_toboolean(L, -1);
    if (lua_getfield(L, 1, "seed") != LUA_TNIL) s->seed = (uint64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 4);
}

/* Step 1: the definition (argument 1) into s. */
static void read_def(lua_State *L, sweep *s) {
    check_fields(L);
    read_names(L, s);
    read_params(L, s, 1, "base", 0);
    read_params(L, s, 1, "grid", 1);
    qsort(s->keys, (size_t)s->nkeys, sizeof *s->keys, cmp_key);
    check_param_names(L, s);
    read_impls(L, s);
    read_measure(L, s);
    read_timing(L, s);
    lua_getfield(L, 1, "filter");
    s->has_filter = !lua_isnil(L, -1);
    if (s->has_filter && !lua_isfunction(L, -1))
        luaL_error(L, "dcb.sweep: filter must be a function, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
}

/* ------------------------------------------------------------ points */
static const pval *val_of(const sweep *s, const point *p, const char *name) {
    int k = key_index(s, name);
    return k < 0 ? NULL : &s->keys[k].vals[p->vi[k]];
}

static int64_t int_of(const sweep *s, const point *p, const char *name, int64_t def) {
    const pval *v = val_of(s, p, name);
    return v && !v->isstr ? (int64_t)v->num : def;
}

/* The canonical text a point id hashes: what is measured, never where it sits. */
static uint64_t point_id(const sweep *s, const point *p) {
    dcbh_sb b = {0};
    sb_printf(&b, "op=%s;impl=%s", s->op, s->impls[p->impl]);
    for (int k = 0; k < s->nkeys; k++) {
        const char *n = s->keys[k].name;
        if (!strcmp(n, "threads") || dcb_op_is_shape_key(s->op, n) || !strcmp(n, "H") || !strcmp(n, "W"))
            continue;
        sb_printf(&b, ";%s=", n);
        pval_fmt(&b, &s->keys[k].vals[p->vi[k]]);
    }
    sb_printf(&b, ";N=%lld", (long long)p->N);
    if (p->T) sb_printf(&b, ";T=%lld", (long long)p->T);
    if (p->H) sb_printf(&b, ";H=%lld;W=%lld", (long long)p->H, (long long)p->W);
    sb_printf(&b, ";threads=%d", p->threads);
    uint64_t h = dcbh_fnv1a(b.s);
    sb_free(&b);
    return h;
}

static void push_point(lua_State *L, const sweep *s, const point *p) {
    lua_newtable(L);
    for (int k = 0; k < s->nkeys; k++) {
        pval_push(L, &s->keys[k].vals[p->vi[k]]);
        lua_setfield(L, -2, s->keys[k].name);
    }
    lua_pushinteger(L, p->N);
    lua_setfield(L, -2, "N");
    if (p->T) {
        lua_pushinteger(L, p->T);
        lua_setfield(L, -2, "T");
    } else {
        lua_pushinteger(L, p->H);
        lua_setfield(L, -2, "H");
        lua_pushinteger(L, p->W);
        lua_setfield(L, -2, "W");
    }
    lua_pushinteger(L, p->threads);
    lua_setfield(L, -2, "threads");
    lua_pushstring(L, s->op);
    lua_setfield(L, -2, "op");
    lua_pushstring(L, s->impls[p->impl]);
    lua_setfield(L, -2, "impl");
}

/* Step 2: the grid's points in a fixed order, the filter's choice of them. */
static void expand(lua_State *L, sweep *s) {
    int *vi = calloc((size_t)s->nkeys + 1, sizeof *vi);
    const int sequence = dcb_op_input_layout(s->op) == DCB_INPUT_SEQUENCE;
    for (;;) {
        for (int im = 0; im < s->nimpls; im++) {
            point p = {0};
            p.vi = vi;
            p.impl = im;
            p.N = int_of(s, &p, "N", DEF_N);
            if (sequence) {
                p.T = int_of(s, &p, "T", DEF_T);
            } else {
                p.H = int_of(s, &p, "H", DEF_HW);
                p.W = int_of(s, &p, "W", p.H);
            }
            p.threads = (int)int_of(s, &p, "threads", dcb_default_threads());
            if (s->has_filter) {
                lua_getfield(L, 1, "filter");
                push_point(L, s, &p);
                lua_call(L, 1, 1);
                int keep = lua_toboolean(L, -1);
                lua_pop(L, 1);
                if (!keep) continue;
            }
            p.id = point_id(s, &p);
            p.vi = malloc(sizeof *vi * ((size_t)s->nkeys + 1));
            memcpy(p.vi, vi, sizeof *vi * ((size_t)s->nkeys + 1));
            if (s->npoints == s->cap) s->pts = realloc(s->pts, sizeof *s->pts * (size_t)(s->cap = s->cap ? 2 * s->cap : 64));
            s->pts[s->npoints++] = p;
        }
        /* odometer: the last key (by name) moves fastest */
        int k = s->nkeys - 1;
        while (k >= 0 && ++vi[k] == s->keys[k].nvals) vi[k--] = 0;
        if (k < 0) break;
    }
    free(vi);
}

/* ------------------------------------------------------------ columns */
/* Points that errored in this process's sweeps (dcbh_sweep_errors). */
static int g_error_points;
int dcbh_sweep_errors(void) { return g_error_points; }

static const char *const time_cols[] = {
    "status", "reason", "time_median_s", "time_mean_s", "time_min_s", "time_max_s", "time_q1_s", "time_q3_s",
    "time_stddev_s",
    "time_cv", "repetitions", "iterations", "gflops", "gmacs", "macs", "flops", "params", "acts", "bytes",
    "dynamic_macs", "executed_macs", "prepare_s", "phase_routing_s", "phase_kernel_gen_s",
    "phase_transform_s", "phase_gemm_s", "phase_combine_s", "counter_source", NULL};
static const char *const sim_cols[] = {"sim_mean", "sim_std", "sim_min", "sim_max", "sim_pc_mean",
                                       "sim_pc_std", "sim_hist", NULL};
/* the micro-kernels' ISA level, and what else ran during the point
 * (measure.h, dcbh_load) */
static const char *const load_cols[] = {"isa", "loadavg", "steal_pct", "others_cpus", "contended", NULL};
/* the physical floor of a point: its FLOPs at the calibrated peak plus its
 * bytes at the calibrated bandwidth (dcbench calibrate, of this ISA level;
 * t threads: min(t x the 1-thread figure, the all-thread one)), and the
 * median time over it; empty without such a calibration */
static const char *const floor_cols[] = {"floor_s", "time_over_floor", NULL};
/* impl "auto": the implementation it picked for the point (empty for the others) */
static const char *const auto_cols[] = {"picked", NULL};

/* threads and the input shape have columns of their own */
static int is_param_col(const sweep *s, const char *n) {
    (void)s;
    return strcmp(n, "threads") && strcmp(n, "N") && strcmp(n, "H") && strcmp(n, "W") && strcmp(n, "T");
}

static void header(const sweep *s, dcbh_sb *b) {
    sb_add(b, "point_id,sweep,op,impl");
    for (int k = 0; k < s->nkeys; k++)
        if (is_param_col(s, s->keys[k].name)) sb_printf(b, ",%s", s->keys[k].name);
    sb_add(b, ",N,H,W,T,threads");
    for (int i = 0; time_cols[i]; i++) sb_printf(b, ",%s", time_cols[i]);
    for (int i = 0; i < DCBH_NCOUNTERS; i++) sb_printf(b, ",%s", dcbh_counter_names[i]);
    for (int i = 0; sim_cols[i]; i++) sb_printf(b, ",%s", sim_cols[i]);
    for (int i = 0; load_cols[i]; i++) sb_printf(b, ",%s", load_cols[i]);
    for (int i = 0; floor_cols[i]; i++) sb_printf(b, ",%s", floor_cols[i]);
    for (int i = 0; auto_cols[i]; i++) sb_printf(b, ",%s", auto_cols[i]);
    sb_add(b, "\n");
}

/* The floor in seconds of flops and bytes on t threads; NAN without a
 * calibration of the ISA level in use. */
static double floor_seconds(const dcbh_calib *c, int have, double flops, double bytes, int t) {
    if (!have || !(c->peak_gflops_1t > 0) || !(c->bw_gbs_1t > 0)) return NAN; /* have: of this level */
    double peak = c->peak_gflops_1t * t, bw = c->bw_gbs_1t * t;
    if (c->peak_gflops_all > 0 && peak > c->peak_gflops_all) peak = c->peak_gflops_all;
    if (c->bw_gbs_all > 0 && bw > c->bw_gbs_all) bw = c->bw_gbs_all;
    return flops / (peak * 1e9) + bytes / (bw * 1e9);
}

static void cell(dcbh_sb *b, double v) {
    sb_add(b, ",");
    sb_num(b, v);
}

/* --------------------------------------------------------- measuring */
typedef struct row {
    const char *status;
    char reason[600];
    dcbh_bench_result r;
    int have_cost;
    dcb_cost c;
    int have_sim;
    dcb_similarity_stats sim;
    dcbh_load load;
    char picked[64];
} row;

static void set_fail(row *w, dcb_status st, const char *msg) {
    w->status = dcb_status_is_unsupported(st) ? "unsupported" : "error";
    snprintf(w->reason, sizeof w->reason, "%s: %s", dcb_status_name(st), msg);
}

static void measure_point(const sweep *s, const point *p, const char *json_path, row *w) {
    memset(w, 0, sizeof *w);
    w->status = "ok";
    dcb_hparam hp[64];
    int nhp = 0;
    for (int k = 0; k < s->nkeys && nhp < 64; k++) {
        const char *n = s->keys[k].name;
        if (dcb_op_is_shape_key(s->op, n)) continue;
        const pval *v = &s->keys[k].vals[p->vi[k]];
        hp[nhp++] = (dcb_hparam){n, v->num, v->isstr ? v->str : NULL};
    }
    dcb_op *op = NULL;
    dcb_status st = dcb_op_create(s->op, s->impls[p->impl], hp, nhp, &op);
    if (st != DCB_OK) {
        set_fail(w, st, dcb_last_error());
        return;
    }
    int64_t shape[DCB_MAX_DIMS];
    const int nd = dcb_op_input_shape(op, p->N, p->H, p->W, p->T, shape);
    dcb_tensor *x = NULL;
    if ((st = dcb_op_init_weights(op, s->seed)) != DCB_OK || (st = dcb_op_cost(op, nd, shape, &w->c)) != DCB_OK) {
        set_fail(w, st, dcb_last_error());
        goto out;
    }
    w->have_cost = 1;
    x = dcb_tensor_new(nd, shape);
    if (!x) {
        set_fail(w, DCB_OUT_OF_MEMORY, dcb_last_error());
        goto out;
    }
    dcb_tensor_randn(x, s->seed + 1);
    dcbh_bench_opts o;
    dcbh_bench_defaults(&o, s->opt->quick);
    o.repetitions = s->repetitions;
    o.min_time = s->min_time;
    o.rotate = s->rotate;
    o.time = s->m_time;
    o.counters = s->m_counters;
    o.json_path = json_path;
    char bname[256];
    snprintf(bname, sizeof bname, "%s/%s/%016llx", s->name, s->impls[p->impl], (unsigned long long)p->id);
    o.name = bname;
    st = dcbh_bench(op, x, &o, &w->r);
    if (dcb_op_get_picked(op)) snprintf(w->picked, sizeof w->picked, "%s", dcb_op_get_picked(op));
    if (st != DCB_OK) {
        set_fail(w, st, w->r.msg);
        goto out;
    }
    if (s->m_similarity) {
        /* Pairs need a batch: a batch of 8 when the point's own N is smaller. */
        dcb_tensor *xb = x, *k = NULL;
        if (p->N < 2) {
            int64_t bs[DCB_MAX_DIMS];
            memcpy(bs, shape, sizeof bs);
            bs[0] = 8;
            xb = dcb_tensor_new(nd, bs);
            if (xb) dcb_tensor_randn(xb, s->seed + 2);
        }
        if (xb && dcb_op_kernels(op, xb, &k) == DCB_OK && dcb_similarity(k, &w->sim) == DCB_OK)
            w->have_sim = 1;   /* a static operator has no kernels: empty cells */
        dcb_tensor_free(k);
        if (xb != x) dcb_tensor_free(xb);
    }
out:
    dcb_tensor_free(x);
    dcb_op_destroy(op);
}

static void format_row(const sweep *s, const point *p, const row *w, dcbh_sb *b) {
    sb_printf(b, "%016llx,", (unsigned long long)p->id);
    sb_csv_field(b, s->name);
    sb_add(b, ",");
    sb_csv_field(b, s->op);
    sb_add(b, ",");
    sb_csv_field(b, s->impls[p->impl]);
    for (int k = 0; k < s->nkeys; k++) {
        if (!is_param_col(s, s->keys[k].name)) continue;
        dcbh_sb v = {0};
        sb_add(&v, "");
        pval_fmt(&v, &s->keys[k].vals[p->vi[k]]);
        sb_add(b, ",");
        sb_csv_field(b, v.s);
        sb_free(&v);
    }
    cell(b, (double)p->N);
    cell(b, p->H ? (double)p->H : NAN);
    cell(b, p->W ? (double)p->W : NAN);
    cell(b, p->T ? (double)p->T : NAN);
    cell(b, p->threads);
    sb_printf(b, ",%s,", w->status);
    sb_csv_field(b, w->reason);
    const dcbh_bench_result *r = &w->r;
    int ok = !strcmp(w->status, "ok");
    int t = ok && r->timed;
    cell(b, t ? r->t.median : NAN);
    cell(b, t ? r->t.mean : NAN);
    cell(b, t ? r->t.min : NAN);
    cell(b, t ? r->t.max : NAN);
    {   /* the quartiles of the per-repetition times (dcbench compare's interval) */
        double q[DCBH_MAX_REPS];
        const int nr = t ? r->t.repetitions : 0;
        for (int i = 0; i < nr; i++) q[i] = r->t.rep[i];
        qsort(q, (size_t)nr, sizeof *q, dcbh_cmp_double);
        const int have = nr > 0 && isfinite(q[0]) && isfinite(q[nr - 1]);
        cell(b, have ? dcbh_quantile(q, nr, 0.25) : NAN);
        cell(b, have ? dcbh_quantile(q, nr, 0.75) : NAN);
    }
    cell(b, t ? r->t.stddev : NAN);
    cell(b, t ? r->t.cv : NAN);
    cell(b, t ? r->t.repetitions : NAN);
    cell(b, t ? (double)r->t.iterations : NAN);
    int c = w->have_cost;
    cell(b, t && c ? w->c.flops / r->t.median * 1e-9 : NAN);
    cell(b, t && c ? w->c.macs / r->t.median * 1e-9 : NAN);
    cell(b, c ? w->c.macs : NAN);
    cell(b, c ? w->c.flops : NAN);
    cell(b, c ? w->c.params : NAN);
    cell(b, c ? w->c.acts : NAN);
    cell(b, c ? w->c.bytes : NAN);
    cell(b, c ? w->c.dynamic_macs : NAN);
    cell(b, c ? w->c.executed_macs : NAN);
    cell(b, ok ? r->prepare_s : NAN);
    for (int i = 0; i < DCB_PHASE_COUNT; i++) cell(b, ok && r->profiled ? r->phase[i] : NAN);
    sb_add(b, ",");
    if (ok && s->m_counters) sb_add(b, r->c.source ? r->c.source : "none");
    for (int i = 0; i < DCBH_NCOUNTERS; i++) cell(b, ok && s->m_counters ? r->c.v[i] : NAN);
    const dcb_similarity_stats *m = w->have_sim ? &w->sim : NULL;
    cell(b, m ? m->whole.mean : NAN);
    cell(b, m ? m->whole.std : NAN);
    cell(b, m ? m->whole.min : NAN);
    cell(b, m ? m->whole.max : NAN);
    cell(b, m ? m->per_channel.mean : NAN);
    cell(b, m ? m->per_channel.std : NAN);
    sb_add(b, ",");
    for (int i = 0; m && i < DCB_SIM_BINS; i++) sb_printf(b, "%s%lld", i ? ";" : "", (long long)m->whole.hist[i]);
    sb_printf(b, ",%s", dcb_isa());
    cell(b, w->load.loadavg);
    cell(b, w->load.steal_pct);
    cell(b, w->load.others_cpus);
    cell(b, w->load.contended);
    const double fl = c ? floor_seconds(&s->calib, s->have_calib, w->c.flops, w->c.bytes, p->threads) : NAN;
    cell(b, fl);
    cell(b, t && fl > 0 ? r->t.median / fl : NAN);
    sb_add(b, ",");
    sb_csv_field(b, w->picked);
    sb_add(b, "\n");
}

/* -------------------------------------------------------- definition JSON */
static void json_value(lua_State *L, int idx, dcbh_sb *b, int depth) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
        double v = lua_tonumber(L, idx);
        if (isfinite(v)) sb_num(b, v); else sb_add(b, "null");
        break;
    }
    case LUA_TBOOLEAN: sb_add(b, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TSTRING: sb_json_str(b, lua_tostring(L, idx)); break;
    case LUA_TTABLE: {
        if (depth > 8) {
            sb_add(b, "null");
            break;
        }
        lua_Integer n = luaL_len(L, idx);
        if (n > 0) {
            sb_add(b, "[");
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, idx, i);
                if (i > 1) sb_add(b, ", ");
                json_value(L, -1, b, depth + 1);
                lua_pop(L, 1);
            }
            sb_add(b, "]");
            break;
        }
        /* keys sorted so that the same definition writes the same text */
        int nk = 0;
        char **ks = NULL;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING) continue;
            ks = realloc(ks, sizeof *ks * (size_t)(nk + 1));
            ks[nk++] = strdup(lua_tostring(L, -1));
        }
        for (int i = 1; i < nk; i++)
            for (int j = i; j > 0 && strcmp(ks[j - 1], ks[j]) > 0; j--) {
                char *t = ks[j];
                ks[j] = ks[j - 1];
                ks[j - 1] = t;
            }
        sb_add(b, "{");
        for (int i = 0; i < nk; i++) {
            if (i) sb_add(b, ", ");
            sb_json_str(b, ks[i]);
            sb_add(b, ": ");
            lua_getfield(L, idx, ks[i]);
            json_value(L, -1, b, depth + 1);
            lua_pop(L, 1);
            free(ks[i]);
        }
        free(ks);
        sb_add(b, "}");
        break;
    }
    case LUA_TFUNCTION: sb_add(b, "\"<function>\""); break;
    default: sb_add(b, "null");
    }
}

/* ------------------------------------------------------------ progress */
static void progress(const sweep *s, const point *p, const row *w, int was_error, int done, int total, int ran,
                     double t0, int tty) {
    double el = dcbh_now() - t0;
    double eta = ran ? el / ran * (total - done) : 0;
    if (tty) {
        int width = 30, fill = total ? width * done / total : width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%-16.16s [%s] %d/%d  ETA %d:%02d  ", s->name, bar, done, total, (int)eta / 60,
                (int)eta % 60);
        if (done == total) fprintf(stderr, "\n");
    } else {
        fprintf(stderr, "dcbench: %s %d/%d %s/%s %016llx %s", s->name, done, total, s->op, s->impls[p->impl],
                (unsigned long long)p->id, w ? w->status : was_error ? "error, done earlier" : "done earlier");
        if (w && w->r.timed && !strcmp(w->status, "ok")) fprintf(stderr, " %.4g ms", 1e3 * w->r.t.median);
        fprintf(stderr, " (ETA %.0f s)\n", eta);
    }
}

/* ------------------------------------------------------------ results */
static int cmp_done(const void *a, const void *b) {
    const done_pt *x = a, *y = b;
    if (x->id != y->id) return (x->id > y->id) - (x->id < y->id);
    return (x->row > y->row) - (x->row < y->row);
}

static const done_pt *find_done(const sweep *s, uint64_t id) {
    size_t lo = 0, hi = (size_t)s->ndone;   /* ids are unique in s->done */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->done[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < (size_t)s->ndone && s->done[lo].id == id ? &s->done[lo] : NULL;
}

static int status_code(const char *st) {
    if (!strcmp(st, "ok")) return DONE_OK;
    if (!strcmp(st, "unsupported")) return DONE_UNSUPPORTED;
    if (!strcmp(st, "error")) return DONE_ERROR;
    return DONE_OTHER;
}

static void set_paths(lua_State *L, sweep *s) {
    const dcbh_options *o = s->opt;
    snprintf(s->dir, sizeof s->dir, "%s/%s", o->results_dir, s->dir_name);
    if (o->shard_n > 1)
        snprintf(s->base, sizeof s->base, "%s/%s.shard%dof%d", s->dir, s->name, o->shard_i, o->shard_n);
    else
        snprintf(s->base, sizeof s->base, "%s/%s", s->dir, s->name);
    snprintf(s->csv, sizeof s->csv, "%s.csv", s->base);
    snprintf(s->json, sizeof s->json, "%s.json", s->base);
    snprintf(s->gjson, sizeof s->gjson, "%s.gbench.jsonl", s->base);
    if (mkdir_p(s->dir)) luaL_error(L, "dcb.sweep: cannot create %s: %s", s->dir, strerror(errno));
}

/* ------------------------------------------------------- definition */
/* What a results file is keyed by: every setting that changes what its rows
 * mean, one "key: value" line each (sorted keys, canonical numbers), and the
 * FNV-1a hash of those lines. The point ids' hash stands for the grid, base,
 * filter, impls and threads together (a filter is a function: only its
 * choice can be compared). The script's path is a line of its own, outside
 * the hash: it is checked on its own (two scripts of one basename). */
static void sweep_definition(sweep *s) {
    dcbh_sb *b = &s->def;
    sb_free(b);
    sb_printf(b, "sweep: %s\nop: %s\nimpls:", s->name, s->op);
    for (int i = 0; i < s->nimpls; i++) sb_printf(b, "%s%s", i ? "," : " ", s->impls[i]);
    sb_add(b, "\n");
    for (int k = 0; k < s->nkeys; k++) {
        sb_printf(b, "%s.%s:", s->keys[k].in_grid ? "grid" : "base", s->keys[k].name);
        for (int v = 0; v < s->keys[k].nvals; v++) {
            sb_add(b, v ? "," : " ");
            pval_fmt(b, &s->keys[k].vals[v]);
        }
        sb_add(b, "\n");
    }
    dcbh_sb ids = {0};
    sb_add(&ids, "");
    for (int i = 0; i < s->npoints; i++) sb_printf(&ids, "%016llx;", (unsigned long long)s->pts[i].id);
    sb_printf(b, "filter: %s\npoints: %d (ids %016llx)\n", s->has_filter ? "yes" : "no", s->npoints,
              (unsigned long long)dcbh_fnv1a(ids.s));
    if (key_index(s, "threads") < 0) sb_printf(b, "default_threads: %d\n", dcb_default_threads());
    sb_free(&ids);
    sb_printf(b, "measure:%s%s%s\nrepetitions: %d\nmin_time: ", s->m_time ? " time" : "",
              s->m_counters ? " counters" : "", s->m_similarity ? " similarity" : "", s->repetitions);
    sb_num(b, s->min_time);
    sb_printf(b, "\nrotate: %s\nseed: %llu\nbuild: dcbench %s, %s\n", s->rotate ? "true" : "false",
              (unsigned long long)s->seed, DCB_VERSION, dcb_build_flags());
    s->defhash = dcbh_fnv1a(b->s);
}

/* --fresh: the earlier results of this sweep (CSV, JSON, Google Benchmark's
 * JSON, definition) move to <dir>/replaced-<time>/, never deleted. */
static void move_aside(lua_State *L, const sweep *s) {
    char stamp[32], to[2400];
    const time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(to, sizeof to, "%s/replaced-%s", s->dir, stamp);
    if (mkdir_p(to)) luaL_error(L, "dcb.sweep: --fresh: cannot create %s: %s", to, strerror(errno));
    const char *const files[] = {s->csv, s->json, s->gjson, s->defpath};
    for (int i = 0; i < 4; i++) {
        char dst[4800];
        const char *bn = strrchr(files[i], '/');
        snprintf(dst, sizeof dst, "%s/%s", to, bn ? bn + 1 : files[i]);
        if (rename(files[i], dst) && errno != ENOENT)
            luaL_error(L, "dcb.sweep: --fresh: cannot move %s to %s: %s", files[i], dst, strerror(errno));
    }
    fprintf(stderr, "dcbench: --fresh: the earlier results of sweep '%s' are in %s\n", s->name, to);
}

/* Whether the CSV holds at least one row below its header. */
static int has_rows(const char *csv) {
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    int c, lines = 0;
    while ((c = fgetc(f)) != EOF && lines < 2) lines += c == '\n';
    fclose(f);
    return lines >= 2;
}

/* Step 2b: a results file holds one definition. A CSV with rows whose
 * recorded definition differs from this one is refused with what changed
 * (--fresh moves it aside); so is one written by another script of the same
 * basename. A CSV with rows and no recorded definition (an older dcbench) is
 * adopted with a warning. */
static void check_definition(lua_State *L, sweep *s) {
    set_paths(L, s);
    snprintf(s->defpath, sizeof s->defpath, "%s.definition", s->base);
    sweep_definition(s);
    if (!has_rows(s->csv)) return;
    dcbh_sb rec = {0};
    char *old = dcbh_read_whole(s->defpath, &rec) ? NULL : rec.s;
    if (!old) {
        if (s->opt->fresh) {
            move_aside(L, s);
            return;
        }
        fprintf(stderr, "dcbench: warning: %s has no recorded definition (%s; an older dcbench?): "
                        "its rows are taken as this definition's\n", s->csv, s->defpath);
        return;
    }
    char a[4096], h[64];
    const char *oscript = dcbh_def_line(old, "script", a, sizeof a);
    const int same_script = !oscript || !s->script[0] || !strcmp(oscript, s->script);
    dcbh_sb why = {0};
    sb_add(&why, "");
    if (!dcbh_def_line(old, "hash", h, sizeof h) || strtoull(h, NULL, 16) != s->defhash) dcbh_def_diff(old, s->def.s, &why);
    if (!why.n && same_script) {   /* the same definition: resume */
        free(old);
        sb_free(&why);
        return;
    }
    if (s->opt->fresh) {
        free(old);
        sb_free(&why);
        move_aside(L, s);
        return;
    }
    if (!why.n) sb_add(&why, "the definition is the same, the script is not");
    lua_pushfstring(L, "dcb.sweep: %s holds results of another definition of sweep '%s'%s%s%s (%s): %s. "
                       "Nothing was measured. Run with --fresh to move those results aside and start again, "
                       "or give this sweep another name (or dir=, or --results DIR)",
                    s->csv, s->name, same_script ? "" : ", written by ", same_script ? "" : oscript,
                    same_script ? "" : lua_pushfstring(L, ", not %s", s->script), s->defpath, why.s);
    free(old);
    sb_free(&why);
    lua_error(L);
}

/* Under the lock: the definition beside the CSV, that a rerun is checked against. */
static void write_definition(lua_State *L, const sweep *s) {
    dcbh_sb b = {0};
    sb_printf(&b, "# dcbench sweep definition: a rerun must match it (--fresh moves these results aside)\n"
                  "hash: %016llx\nscript: %s\n%s", (unsigned long long)s->defhash, s->script, s->def.s);
    const int rc = write_file_atomic(s->defpath, b.s, b.n), e = errno;
    sb_free(&b);
    if (rc) luaL_error(L, "dcb.sweep: cannot write %s: %s", s->defpath, strerror(e));
}

/* The ids already in the CSV are done (resume), each with the status of its
 * LAST row: a retried point's new row follows its error row. Error rows are
 * not done under --retry-errors. 1 if the CSV has a header, which must be
 * this definition's. */
static int read_done(lua_State *L, sweep *s) {
    csv_table t;
    char err[1024];
    int exists = csv_read(s->csv, &t, CSV_REPAIR, err, sizeof err) == 0;
    if (!exists && errno != ENOENT) luaL_error(L, "dcb.sweep: %s", err);
    if (!exists) return 0;
    if (!t.cols) {
        csv_free(&t);
        return 0;
    }
    char **hf;
    int n = csv_parse_line(s->hdr.s, s->hdr.n - 1, &hf);
    int same = n == t.ncols;
    for (int c = 0; c < n; c++) {
        same = same && !strcmp(hf[c], t.cols[c]);
        free(hf[c]);
    }
    free(hf);
    if (!same) {
        csv_free(&t);
        luaL_error(L, "dcb.sweep: %s exists with different columns (another definition of sweep '%s', or an "
                      "older dcbench's columns); run with --fresh to move it aside, or give the sweep another name",
                   s->csv, s->name);
    }
    const int stc = csv_col(&t, "status");
    s->done = malloc(sizeof *s->done * ((size_t)t.nrows + 1));
    for (int r = 0; r < t.nrows; r++) {
        const int st = stc >= 0 ? status_code(t.rows[r][stc]) : DONE_OK;
        s->done[r] = (done_pt){strtoull(t.rows[r][0], NULL, 16), st, r};
    }
    qsort(s->done, (size_t)t.nrows, sizeof *s->done, cmp_done);
    s->ndone = 0;
    for (int r = 0; r < t.nrows; r++) {
        if (r + 1 < t.nrows && s->done[r + 1].id == s->done[r].id) continue;   /* not its last row */
        if (s->opt->retry_errors && s->done[r].status == DONE_ERROR) continue;
        s->done[s->ndone++] = s->done[r];
    }
    csv_free(&t);
    return 1;
}

/* Step 3: the paths, the header, and the CSV open for appending under an
 * exclusive lock, so that two runs of one sweep never measure the same
 * points into one file. Shards have files (and locks) of their own. The
 * lock goes with the descriptor (close-on-exec: no child keeps it). */
static void open_results(lua_State *L, sweep *s) {
    set_paths(L, s);
    header(s, &s->hdr);
    s->fd = open(s->csv, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s->fd < 0) luaL_error(L, "dcb.sweep: cannot open %s: %s", s->csv, strerror(errno));
    if (flock(s->fd, LOCK_EX | LOCK_NB) == 0) return;
    const int e = errno;
    if (e != EWOULDBLOCK) {
        /* A file system without locks (an NFS mount without lockd) still runs sweeps. */
        fprintf(stderr, "dcbench: warning: cannot lock %s (%s): nothing stops a second run of sweep '%s' "
                        "from measuring the same points into it\n", s->csv, strerror(e), s->name);
        return;
    }
    close(s->fd);
    s->fd = -1;
    luaL_error(L, "dcb.sweep: %s is locked: another run of sweep '%s' holds it (one run of a sweep at a time: "
                  "wait for it to finish; --shard I/N parts write files of their own)", s->csv, s->name);
}

/* Under the lock: what the CSV holds, and its header if it has none. */
static void load_results(lua_State *L, sweep *s) {
    int have_header = read_done(L, s);
    if (!have_header && csv_append_line(s->fd, s->hdr.s, s->hdr.n))
        luaL_error(L, "dcb.sweep: cannot write %s: %s", s->csv, strerror(errno));
}

/* Step 4: the machine and the definition, beside the CSV. */
static void write_def_json(lua_State *L, const sweep *s) {
    const dcbh_options *o = s->opt;
    dcbh_sb j = {0};
    char *machine = dcbh_machine_json(o->argc, o->argv);
    sb_add(&j, "{\n  \"machine\": ");
    sb_add(&j, machine ? machine : "null");
    free(machine);
    sb_add(&j, ",\n  \"sweep\": ");
    json_value(L, 1, &j, 0);
    sb_printf(&j, ",\n  \"results_dir\": ");
    sb_json_str(&j, s->dir_name);
    sb_printf(&j, ",\n  \"definition_hash\": \"%016llx\"", (unsigned long long)s->defhash);
    sb_printf(&j, ",\n  \"shard\": \"%d/%d\",\n  \"quick\": %s,\n  \"repetitions\": %d,\n  \"min_time\": ",
              o->shard_i, o->shard_n, o->quick ? "true" : "false", s->repetitions);
    sb_num(&j, s->min_time);
    sb_printf(&j, ",\n  \"rotate\": %s,\n  \"seed\": %llu,\n  \"gbench_json\": ", s->rotate ? "true" : "false",
              (unsigned long long)s->seed);
    sb_json_str(&j, s->gjson);
    sb_add(&j, "\n}\n");
    const int rc = write_file_atomic(s->json, j.s, j.n), e = errno;
    sb_free(&j);
    if (rc) luaL_error(L, "dcb.sweep: cannot write %s: %s", s->json, strerror(e));
}

static int in_shard(const sweep *s, const point *p) {
    return p->id % (uint64_t)s->opt->shard_n == (uint64_t)(s->opt->shard_i - 1);
}

/* Kept sorted so that a repeated point is not measured twice. */
static void mark_done(sweep *s, uint64_t id, int status) {
    s->done = realloc(s->done, sizeof *s->done * ((size_t)s->ndone + 2));
    int pos = s->ndone;
    while (pos > 0 && s->done[pos - 1].id > id) {
        s->done[pos] = s->done[pos - 1];
        pos--;
    }
    s->done[pos] = (done_pt){id, status, 0};
    s->ndone++;
}

/* Step 5: this shard's points not done yet, measured, a row each; ids
 * repeat only if the grid lists a value twice. */
static void run_points(lua_State *L, sweep *s, tally *n) {
    memset(n, 0, sizeof *n);
    for (int i = 0; i < s->npoints; i++) n->total += in_shard(s, &s->pts[i]);
    int tty = isatty(2), ran = 0, k = 0;
    double t0 = dcbh_now();
    for (int i = 0; i < s->npoints; i++) {
        point *p = &s->pts[i];
        if (!in_shard(s, p)) continue;
        k++;
        const done_pt *d = find_done(s, p->id);
        if (d) {
            n->skipped++;
            n->failed_earlier += d->status == DONE_ERROR;
            n->unsupported_earlier += d->status == DONE_UNSUPPORTED;
            if (!tty) progress(s, p, NULL, d->status == DONE_ERROR, k, n->total, ran, t0, tty);
            continue;
        }
        row w;
        dcbh_load_mark lm;
        dcbh_load_begin(&lm);
        measure_point(s, p, s->gjson, &w);
        dcbh_load_end(&lm, p->threads, &w.load);
        if (w.load.contended && !n->contended++)
            fprintf(stderr,
                    "dcbench: warning: %s: other processes held %.1f core(s) (steal %.0f%%) while a %d-thread "
                    "point was measured; such rows have contended=1 and their times are distorted\n",
                    s->name, w.load.others_cpus, w.load.steal_pct, p->threads);
        ran++;
        /* A result file that cannot be written (a full disk) is the harness's
         * failure: no row, so that the point is measured again on resume. */
        char id[24];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)p->id);   /* lua_pushfstring has no %llx */
        if (w.r.io_failed) {
            const char *m = w.r.msg;
            if (!strncmp(m, "dcbh_time: ", 11)) m += 11;
            luaL_error(L, "dcb.sweep: %s: %s; point %s not recorded, the sweep stops (make room and run it "
                          "again: it resumes there)", s->name, m, id);
        }
        dcbh_sb b = {0};
        format_row(s, p, &w, &b);
        const int rc = csv_append_line(s->fd, b.s, b.n), e = errno;
        sb_free(&b);
        if (rc)
            luaL_error(L, "dcb.sweep: %s: cannot append to %s: %s; point %s not recorded, the sweep stops "
                          "(make room and run it again: it resumes there)", s->name, s->csv, strerror(e), id);
        mark_done(s, p->id, status_code(w.status));
        n->written++;
        if (!strcmp(w.status, "error")) {
            n->failed++;
            dcbh_sb pd = {0};
            sb_add(&pd, "");
            for (int kk = 0; kk < s->nkeys; kk++) {
                sb_printf(&pd, " %s=", s->keys[kk].name);
                pval_fmt(&pd, &s->keys[kk].vals[p->vi[kk]]);
            }
            if (tty) fprintf(stderr, "\n");
            fprintf(stderr, "dcbench: %s: point %s (%s/%s%s, %d thread(s)) failed: %s\n", s->name, id, s->op,
                    s->impls[p->impl], pd.s, p->threads, w.reason);
            sb_free(&pd);
        }
        if (!strcmp(w.status, "unsupported")) n->unsupported++;
        progress(s, p, &w, 0, k, n->total, ran, t0, tty);
    }
    if (tty && !n->total) fprintf(stderr, "%s: no points in this shard\n", s->name);
}

/* ------------------------------------------------------------ figures */
/* One figure of the spec at the top of the stack (the i-th of the plot
 * list); its path appended to the figures table at figs_idx. */
static void draw_one(lua_State *L, const sweep *s, int i, int figs_idx) {
    if (!lua_istable(L, -1)) luaL_error(L, "dcb.sweep: plot[%d] must be a table {x=, y=, by=}", i + 1);
    dcbh_plot_spec sp = {0};
    if (lua_getfield(L, -1, "x") == LUA_TSTRING) sp.x = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "y") == LUA_TSTRING) sp.y = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "by") == LUA_TSTRING) sp.by = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "title") == LUA_TSTRING) sp.title = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "kind") == LUA_TSTRING) sp.kind = lua_tostring(L, -1);
    lua_pop(L, 1);
    char ob[4300], out[4400], err[1024];
    if (lua_getfield(L, -1, "name") == LUA_TSTRING)
        snprintf(ob, sizeof ob, "%s/%s", s->dir, lua_tostring(L, -1));
    else if (i == 0)
        snprintf(ob, sizeof ob, "%s", s->base);
    else
        snprintf(ob, sizeof ob, "%s_%s_%s", s->base, sp.y ? sp.y : "time", sp.x ? sp.x : "x");
    lua_pop(L, 1);
    sp.out = ob;
    if (!sp.x) luaL_error(L, "dcb.sweep: plot needs x (a grid key)");
    if (dcbh_plot(s->opt, s->csv, &sp, out, sizeof out, err, sizeof err) == 0) {
        lua_pushstring(L, out);
        lua_rawseti(L, figs_idx, (lua_Integer)lua_rawlen(L, figs_idx) + 1);
    } else {
        fprintf(stderr, "dcbench: %s: no figure: %s\n", s->name, err);
    }
}

/* Step 6: the figures table on the stack; drawn only for a whole sweep
 * (shards are drawn after the merge). */
static void draw_figures(lua_State *L, const sweep *s) {
    lua_newtable(L);
    if (s->opt->shard_n != 1) return;
    const int figs = lua_gettop(L);
    lua_getfield(L, 1, "plot");
    const int pl = lua_gettop(L);
    if (lua_istable(L, pl)) {
        /* one spec {x=...} or a list of them */
        lua_getfield(L, pl, "x");
        int single = !lua_isnil(L, -1);
        lua_pop(L, 1);
        int nplots = single ? 1 : (int)luaL_len(L, pl);
        for (int i = 0; i < nplots; i++) {
            if (single)
                lua_pushvalue(L, pl);
            else
                lua_geti(L, pl, i + 1);
            draw_one(L, s, i, figs);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "roofline");
    int roof = lua_isnil(L, -1) ? s->m_time : lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!roof) return;
    char ob[4300], out[4400], err[1024];
    snprintf(ob, sizeof ob, "%s_roofline", s->base);
    if (dcbh_plot_roofline(s->opt, s->csv, ob, out, sizeof out, err, sizeof err) == 0) {
        lua_pushstring(L, out);
        lua_rawseti(L, figs, (lua_Integer)lua_rawlen(L, figs) + 1);
    } else {
        fprintf(stderr, "dcbench: %s: no roofline: %s\n", s->name, err);
    }
}

/* Step 7: {csv=, json=, total=, written=, skipped=, errors=, unsupported=,
 * errors_earlier=, unsupported_earlier=, figures={...}}, the figures table
 * being at the top of the stack. errors and unsupported count this run's
 * measurements; *_earlier the skipped points whose row says so. */
static void push_result(lua_State *L, const sweep *s, const tally *n) {
    lua_newtable(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, "figures");
    lua_pushstring(L, s->csv);
    lua_setfield(L, -2, "csv");
    lua_pushstring(L, s->json);
    lua_setfield(L, -2, "json");
    lua_pushinteger(L, n->total);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, n->written);
    lua_setfield(L, -2, "written");
    lua_pushinteger(L, n->skipped);
    lua_setfield(L, -2, "skipped");
    lua_pushinteger(L, n->failed);
    lua_setfield(L, -2, "errors");
    lua_pushinteger(L, n->unsupported);
    lua_setfield(L, -2, "unsupported");
    lua_pushinteger(L, n->failed_earlier);
    lua_setfield(L, -2, "errors_earlier");
    lua_pushinteger(L, n->unsupported_earlier);
    lua_setfield(L, -2, "unsupported_earlier");
    lua_pushinteger(L, n->contended);
    lua_setfield(L, -2, "contended");
}

/* rows in point-id order, then file order (print_summary; qsort has no context) */
static char ***g_sum_rows;
static int g_sum_idc;
static int cmp_row_by_id(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    const int c = strcmp(g_sum_rows[x][g_sum_idc], g_sum_rows[y][g_sum_idc]);
    return c ? c : (x > y) - (x < y);
}

/* Step 5b: the summary of the results file (this shard's, with what earlier
 * runs measured; a point's last row counts): per implementation the ok,
 * unsupported and error points and the fastest point, on stdout. */
static void print_summary(const sweep *s) {
    csv_table t;
    char err[1024];
    if (csv_read(s->csv, &t, CSV_TOLERANT, err, sizeof err)) return;
    const int ic = csv_col(&t, "impl"), sc = csv_col(&t, "status"), tc = csv_col(&t, "time_median_s");
    const int idc = csv_col(&t, "point_id");
    if (ic < 0 || sc < 0 || tc < 0 || idc < 0) {
        csv_free(&t);
        return;
    }
    /* a retried point has several rows: only its last counts */
    char *last = calloc((size_t)t.nrows + 1, 1);
    int *ord = malloc(sizeof *ord * ((size_t)t.nrows + 1));
    for (int r = 0; r < t.nrows; r++) ord[r] = r;
    g_sum_rows = t.rows;
    g_sum_idc = idc;
    qsort(ord, (size_t)t.nrows, sizeof *ord, cmp_row_by_id);
    for (int k = 0; k < t.nrows; k++)
        last[ord[k]] = k + 1 == t.nrows || strcmp(t.rows[ord[k]][idc], t.rows[ord[k + 1]][idc]) != 0;
    free(ord);
    int npoints = 0;
    for (int r = 0; r < t.nrows; r++) npoints += last[r];
    printf("%s: %d point(s) in %s\n  %-28s %5s %11s %5s  %s\n", s->name, npoints, s->csv, "impl", "ok",
           "unsupported", "error", "fastest (median)");
    for (int i = 0; i < s->nimpls; i++) {
        int ok = 0, un = 0, er = 0, best = -1;
        double bt = INFINITY;
        for (int r = 0; r < t.nrows; r++) {
            if (!last[r] || strcmp(t.rows[r][ic], s->impls[i])) continue;
            const char *st = t.rows[r][sc];
            if (!strcmp(st, "ok")) {
                ok++;
                const double v = strtod(t.rows[r][tc], NULL);
                if (v > 0 && v < bt) bt = v, best = r;
            } else if (!strcmp(st, "unsupported")) {
                un++;
            } else {
                er++;
            }
        }
        printf("  %-28s %5d %11d %5d  ", s->impls[i], ok, un, er);
        if (best < 0) {
            printf("-\n");
            continue;
        }
        printf("%.4g ms at", bt * 1e3);
        for (int c = ic + 1; c < sc; c++)
            if (t.rows[best][c][0] && strcmp(t.rows[best][c], "nan")) printf(" %s=%s", t.cols[c], t.rows[best][c]);
        printf("\n");
    }
    free(last);
    csv_free(&t);
}

/* ---------------------------------------------------------------- main */
/* Steps 3b-7, with the CSV locked: 1 = the definition, 2 = the sweep. Run
 * protected, so that a Lua error in them releases the lock before it
 * propagates (a script that catches it may run the sweep again). */
static int sweep_locked(lua_State *L) {
    sweep *s = lua_touserdata(L, 2);
    load_results(L, s);
    write_definition(L, s);
    write_def_json(L, s);
    run_points(L, s, &s->n);
    print_summary(s);
    g_error_points += s->n.failed;
    draw_figures(L, s);
    push_result(L, s, &s->n);
    return 1;
}

int dcbh_lua_sweep(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sweep *s = lua_newuserdatauv(L, sizeof *s, 0);   /* slot 2; its __gc frees what a Lua error leaves */
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->opt = dcbh_lua_options(L);
    lua_newtable(L);
    lua_pushcfunction(L, sweep_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    read_def(L, s);
    expand(L, s);
    s->have_calib = dcbh_calib_load(dcbh_calib_path(), &s->calib) == 0;
    check_definition(L, s);
    open_results(L, s);
    lua_pushcfunction(L, sweep_locked);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    const int rc = lua_pcall(L, 2, 1, 0);
    close(s->fd);
    s->fd = -1;
    if (rc != LUA_OK) {
        if (lua_type(L, -1) == LUA_TSTRING) {   /* the script's line, as luaL_error outside the pcall gives */
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    const tally *n = &s->n;
    if (!isatty(2)) {
        /* the state of this shard's points: errors and unsupported rows of earlier runs count */
        fprintf(stderr, "dcbench: %s: %d points (%d measured, %d done earlier, %d unsupported, %d errors", s->name,
                n->total, n->written, n->skipped, n->unsupported + n->unsupported_earlier,
                n->failed + n->failed_earlier);
        if (n->failed_earlier)
            fprintf(stderr, ", %d of them done earlier; --retry-errors measures them again", n->failed_earlier);
        if (n->contended) fprintf(stderr, ", %d measured while other processes held cores", n->contended);
        fprintf(stderr, ") -> %s\n", s->csv);
    }
    return 1;
}
