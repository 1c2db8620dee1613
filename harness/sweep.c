/* sweep.c — dcb.sweep: expands a grid in a fixed order, gives every point a
 * stable id (a hash of what it measures, not of its position), skips points
 * already in the CSV, keeps one shard's points, measures each one and
 * appends its row atomically, then draws the figures. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------- input shapes */
static const dcbh_input_kind input_kinds[] = {
    /* op            sequence  hw_are_params */
    {"lightconv",    1,        0},
    {"dynconv1d",    1,        0},
    {"mhattention",  1,        0},
    {"localconv",    0,        1},
};
static const dcbh_input_kind image_kind = {"(image)", 0, 0};

const dcbh_input_kind *dcbh_input_kind_of(const char *op) {
    for (size_t i = 0; i < sizeof input_kinds / sizeof input_kinds[0]; i++)
        if (!strcmp(input_kinds[i].op, op)) return &input_kinds[i];
    return &image_kind;
}

int dcbh_is_shape_key(const char *op, const char *key) {
    const dcbh_input_kind *k = dcbh_input_kind_of(op);
    if (!strcmp(key, "N")) return 1;
    if (k->sequence) return !strcmp(key, "T");
    if (!strcmp(key, "H") || !strcmp(key, "W")) return !k->hw_are_params;
    return 0;
}

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

typedef struct sweep {
    char *name, *op, *dir;
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
} sweep;

static void sweep_free(sweep *s) {
    free(s->name);
    free(s->op);
    free(s->dir);
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

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
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
    const dcbh_input_kind *k = dcbh_input_kind_of(op);
    luaL_addstring(&b, k->sequence ? "threads, and the input shape N, T" : "threads, and the input shape N, H, W");
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

static void check_param_names(lua_State *L, const sweep *s) {
    int n = 0;
    const dcb_param_spec *ps = dcb_op_params(s->op, &n);
    for (int k = 0; k < s->nkeys; k++) {
        const char *name = s->keys[k].name;
        int ok = !strcmp(name, "threads") || dcbh_is_shape_key(s->op, name);
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

static void read_def(lua_State *L, sweep *s) {
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
        s->dir = strdup(lua_tostring(L, -1));
    else
        s->dir = strdup(script_basename(L, buf, sizeof buf) ? buf : s->name);
    lua_pop(L, 1);

    read_params(L, s, 1, "base", 0);
    read_params(L, s, 1, "grid", 1);
    qsort(s->keys, (size_t)s->nkeys, sizeof *s->keys, cmp_key);
    check_param_names(L, s);

    if (lua_getfield(L, 1, "impls") == LUA_TNIL) {
        s->nimpls = dcb_impl_count(s->op);
        s->impls = calloc((size_t)s->nimpls, sizeof *s->impls);
        for (int i = 0; i < s->nimpls; i++) s->impls[i] = strdup(dcb_impl_name(s->op, i));
    } else {
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
            if (!ok) {
                dcbh_sb b = {0};
                for (int j = 0; j < dcb_impl_count(s->op); j++)
                    sb_printf(&b, "%s%s", j ? ", " : "", dcb_impl_name(s->op, j));
                lua_pushstring(L, b.s);
                sb_free(&b);
                luaL_error(L, "dcb.sweep: %s: unknown implementation '%s' (valid: %s)", s->op,
                           im ? im : "(not a string)", lua_tostring(L, -1));
            }
            s->impls[s->nimpls++] = strdup(im);
            lua_pop(L, 1);
        }
        if (!n) luaL_error(L, "dcb.sweep: impls is an empty list");
    }
    lua_pop(L, 1);

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
    s->repetitions = dcbh_opt.quick ? 3 : 9;
    s->min_time = dcbh_opt.quick ? 0.005 : 0.05;
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
        if (!strcmp(n, "threads") || dcbh_is_shape_key(s->op, n) || !strcmp(n, "H") || !strcmp(n, "W"))
            continue;
        sb_printf(&b, ";%s=", n);
        pval_fmt(&b, &s->keys[k].vals[p->vi[k]]);
    }
    sb_printf(&b, ";N=%lld", (long long)p->N);
    if (p->T) sb_printf(&b, ";T=%lld", (long long)p->T);
    if (p->H) sb_printf(&b, ";H=%lld;W=%lld", (long long)p->H, (long long)p->W);
    sb_printf(&b, ";threads=%d", p->threads);
    uint64_t h = fnv1a(b.s);
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

static void expand(lua_State *L, sweep *s, int has_filter) {
    int *vi = calloc((size_t)s->nkeys + 1, sizeof *vi);
    const dcbh_input_kind *kind = dcbh_input_kind_of(s->op);
    for (;;) {
        for (int im = 0; im < s->nimpls; im++) {
            point p = {0};
            p.vi = vi;
            p.impl = im;
            p.N = int_of(s, &p, "N", DEF_N);
            if (kind->sequence) {
                p.T = int_of(s, &p, "T", DEF_T);
            } else {
                p.H = int_of(s, &p, "H", DEF_HW);
                p.W = int_of(s, &p, "W", p.H);
            }
            p.threads = (int)int_of(s, &p, "threads", 1);
            if (has_filter) {
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
static const char *const time_cols[] = {
    "status", "reason", "time_median_s", "time_mean_s", "time_min_s", "time_max_s", "time_stddev_s",
    "time_cv", "repetitions", "iterations", "gflops", "gmacs", "macs", "flops", "params", "acts", "bytes",
    "dynamic_macs", "executed_macs", "prepare_s", "phase_routing_s", "phase_kernel_gen_s",
    "phase_transform_s", "phase_gemm_s", "phase_combine_s", "counter_source", NULL};
static const char *const sim_cols[] = {"sim_mean", "sim_std", "sim_min", "sim_max", "sim_pc_mean",
                                       "sim_pc_std", "sim_hist", NULL};

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
    sb_add(b, "\n");
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
        if (dcbh_is_shape_key(s->op, n)) continue;
        const pval *v = &s->keys[k].vals[p->vi[k]];
        hp[nhp++] = (dcb_hparam){n, v->num, v->isstr ? v->str : NULL};
    }
    int64_t shape[4];
    int nd;
    const dcbh_input_kind *kind = dcbh_input_kind_of(s->op);
    const pval *cin = val_of(s, p, "cin"), *ch = val_of(s, p, "channels");
    int64_t C = cin && !cin->isstr ? (int64_t)cin->num : ch && !ch->isstr ? (int64_t)ch->num : 0;
    dcb_op *op = NULL;
    dcb_status st = dcb_op_create(s->op, s->impls[p->impl], hp, nhp, &op);
    if (st != DCB_OK) {
        set_fail(w, st, dcb_last_error());
        return;
    }
    if (C <= 0) {   /* derived or default channel counts */
        double c = dcb_op_get_param(op, kind->sequence ? "channels" : "cin");
        if (!(c > 0)) c = dcb_op_get_param(op, "channels");
        C = c > 0 ? (int64_t)c : 1;
    }
    if (kind->sequence) {
        nd = 3;
        shape[0] = p->N, shape[1] = p->T, shape[2] = C;
    } else {
        nd = 4;
        shape[0] = p->N, shape[1] = C, shape[2] = p->H, shape[3] = p->W;
    }
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
    dcbh_bench_defaults(&o);
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
    if (st != DCB_OK) {
        set_fail(w, st, w->r.msg);
        goto out;
    }
    if (s->m_similarity) {
        /* Pairs need a batch: a batch of 8 when the point's own N is smaller. */
        dcb_tensor *xb = x, *k = NULL;
        if (p->N < 2) {
            int64_t bs[4];
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
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(const sweep *s, const point *p, const row *w, int done, int total, int ran,
                     double t0, int tty) {
    double el = now() - t0;
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
                (unsigned long long)p->id, w ? w->status : "done earlier");
        if (w && w->r.timed && !strcmp(w->status, "ok")) fprintf(stderr, " %.4g ms", 1e3 * w->r.t.median);
        fprintf(stderr, " (ETA %.0f s)\n", eta);
    }
}

/* ---------------------------------------------------------------- main */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int dcbh_lua_sweep(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sweep *s = lua_newuserdatauv(L, sizeof *s, 0);   /* slot 2 */
    memset(s, 0, sizeof *s);
    lua_newtable(L);
    lua_pushcfunction(L, sweep_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    read_def(L, s);
    lua_getfield(L, 1, "filter");
    int has_filter = !lua_isnil(L, -1);
    if (has_filter && !lua_isfunction(L, -1))
        luaL_error(L, "dcb.sweep: filter must be a function, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);
    expand(L, s, has_filter);

    char dir[2048], csv[2400], json[2400], gjson[2400], base[2300];
    snprintf(dir, sizeof dir, "%s/%s", dcbh_opt.results_dir, s->dir);
    if (dcbh_opt.shard_n > 1)
        snprintf(base, sizeof base, "%s/%s.shard%dof%d", dir, s->name, dcbh_opt.shard_i, dcbh_opt.shard_n);
    else
        snprintf(base, sizeof base, "%s/%s", dir, s->name);
    snprintf(csv, sizeof csv, "%s.csv", base);
    snprintf(json, sizeof json, "%s.json", base);
    snprintf(gjson, sizeof gjson, "%s.gbench.jsonl", base);
    if (mkdir_p(dir)) luaL_error(L, "dcb.sweep: cannot create %s: %s", dir, strerror(errno));

    dcbh_sb hdr = {0};
    header(s, &hdr);
    /* Resume: the ids already in the CSV are done. */
    int ndone = 0;
    uint64_t *done = NULL;
    csv_table t;
    char err[1024];
    int exists = csv_read(csv, &t, 1, err, sizeof err) == 0;
    if (!exists && errno != ENOENT) {
        sb_free(&hdr);
        luaL_error(L, "dcb.sweep: %s", err);
    }
    if (exists && t.cols) {
        char **hf;
        int n = csv_parse_line(hdr.s, hdr.n - 1, &hf);
        int same = n == t.ncols;
        for (int c = 0; c < n; c++) {
            same = same && !strcmp(hf[c], t.cols[c]);
            free(hf[c]);
        }
        free(hf);
        if (!same) {
            csv_free(&t);
            sb_free(&hdr);
            luaL_error(L, "dcb.sweep: %s exists with different columns (another definition of sweep '%s'); "
                          "move it away or give the sweep another name", csv, s->name);
        }
        done = malloc(sizeof *done * ((size_t)t.nrows + 1));
        for (int r = 0; r < t.nrows; r++) done[ndone++] = strtoull(t.rows[r][0], NULL, 16);
        qsort(done, (size_t)ndone, sizeof *done, cmp_u64);
    }
    int have_header = exists && t.cols;
    if (exists) csv_free(&t);

    int fd = open(csv, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        free(done);
        sb_free(&hdr);
        luaL_error(L, "dcb.sweep: cannot open %s: %s", csv, strerror(errno));
    }
    if (!have_header && csv_append_line(fd, hdr.s, hdr.n)) {
        close(fd);
        free(done);
        sb_free(&hdr);
        luaL_error(L, "dcb.sweep: cannot write %s: %s", csv, strerror(errno));
    }
    sb_free(&hdr);

    /* The machine and the definition, beside the CSV. */
    dcbh_sb j = {0};
    char *machine = dcbh_machine_json(dcbh_opt.argc, dcbh_opt.argv);
    sb_add(&j, "{\n  \"machine\": ");
    sb_add(&j, machine ? machine : "null");
    free(machine);
    sb_add(&j, ",\n  \"sweep\": ");
    json_value(L, 1, &j, 0);
    sb_printf(&j, ",\n  \"results_dir\": ");
    sb_json_str(&j, s->dir);
    sb_printf(&j, ",\n  \"shard\": \"%d/%d\",\n  \"quick\": %s,\n  \"repetitions\": %d,\n  \"min_time\": ",
              dcbh_opt.shard_i, dcbh_opt.shard_n, dcbh_opt.quick ? "true" : "false", s->repetitions);
    sb_num(&j, s->min_time);
    sb_printf(&j, ",\n  \"rotate\": %s,\n  \"seed\": %llu,\n  \"gbench_json\": ", s->rotate ? "true" : "false",
              (unsigned long long)s->seed);
    sb_json_str(&j, gjson);
    sb_add(&j, "\n}\n");
    write_file_atomic(json, j.s, j.n);
    sb_free(&j);

    /* This shard's points; ids repeat only if the grid lists a value twice. */
    int total = 0, skipped = 0, written = 0, failed = 0, unsupported = 0, ran = 0, k = 0;
    for (int i = 0; i < s->npoints; i++)
        if (s->pts[i].id % (uint64_t)dcbh_opt.shard_n == (uint64_t)(dcbh_opt.shard_i - 1)) total++;
    int tty = isatty(2);
    double t0 = now();
    for (int i = 0; i < s->npoints; i++) {
        point *p = &s->pts[i];
        if (p->id % (uint64_t)dcbh_opt.shard_n != (uint64_t)(dcbh_opt.shard_i - 1)) continue;
        k++;
        if (done && bsearch(&p->id, done, (size_t)ndone, sizeof *done, cmp_u64)) {
            skipped++;
            if (!tty) progress(s, p, NULL, k, total, ran, t0, tty);
            continue;
        }
        row w;
        measure_point(s, p, gjson, &w);
        ran++;
        dcbh_sb b = {0};
        format_row(s, p, &w, &b);
        if (csv_append_line(fd, b.s, b.n)) {
            sb_free(&b);
            close(fd);
            free(done);
            luaL_error(L, "dcb.sweep: cannot append to %s: %s", csv, strerror(errno));
        }
        sb_free(&b);
        done = realloc(done, sizeof *done * ((size_t)ndone + 2));
        /* keep the list sorted so that a repeated point is not measured twice */
        int pos = ndone;
        while (pos > 0 && done[pos - 1] > p->id) {
            done[pos] = done[pos - 1];
            pos--;
        }
        done[pos] = p->id;
        ndone++;
        written++;
        if (!strcmp(w.status, "error")) failed++;
        if (!strcmp(w.status, "unsupported")) unsupported++;
        progress(s, p, &w, k, total, ran, t0, tty);
    }
    if (tty && !total) fprintf(stderr, "%s: no points in this shard\n", s->name);
    close(fd);
    free(done);

    /* Figures: only for a whole sweep (shards are drawn after the merge). */
    lua_newtable(L);
    int figs = 0;
    if (dcbh_opt.shard_n == 1) {
        lua_getfield(L, 1, "plot");
        int pl = lua_gettop(L);
        int nplots = 0;
        if (lua_istable(L, pl)) {
            /* one spec {x=...} or a list of them */
            lua_getfield(L, pl, "x");
            int single = !lua_isnil(L, -1);
            lua_pop(L, 1);
            nplots = single ? 1 : (int)luaL_len(L, pl);
            for (int i = 0; i < nplots; i++) {
                if (single)
                    lua_pushvalue(L, pl);
                else
                    lua_geti(L, pl, i + 1);
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
                char ob[4300], out[4400];
                if (lua_getfield(L, -1, "name") == LUA_TSTRING)
                    snprintf(ob, sizeof ob, "%s/%s", dir, lua_tostring(L, -1));
                else if (i == 0)
                    snprintf(ob, sizeof ob, "%s", base);
                else
                    snprintf(ob, sizeof ob, "%s_%s_%s", base, sp.y ? sp.y : "time", sp.x ? sp.x : "x");
                lua_pop(L, 1);
                sp.out = ob;
                if (!sp.x) luaL_error(L, "dcb.sweep: plot needs x (a grid key)");
                if (dcbh_plot(csv, &sp, out, sizeof out, err, sizeof err) == 0) {
                    lua_pushstring(L, out);
                    lua_rawseti(L, pl - 1, ++figs);   /* the figures table sits below plot */
                } else {
                    fprintf(stderr, "dcbench: %s: no figure: %s\n", s->name, err);
                }
                lua_pop(L, 1);
            }
        }
        lua_getfield(L, 1, "roofline");
        int roof = lua_isnil(L, -1) ? s->m_time : lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (roof) {
            char ob[4300], out[4400];
            snprintf(ob, sizeof ob, "%s_roofline", base);
            if (dcbh_plot_roofline(csv, ob, out, sizeof out, err, sizeof err) == 0) {
                lua_pushstring(L, out);
                lua_rawseti(L, pl - 1, ++figs);
            } else {
                fprintf(stderr, "dcbench: %s: no roofline: %s\n", s->name, err);
            }
        }
        lua_pop(L, 1);
    }
    /* result: {csv=, json=, total=, written=, skipped=, errors=, unsupported=, figures={...}} */
    lua_newtable(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, "figures");
    lua_pushstring(L, csv);
    lua_setfield(L, -2, "csv");
    lua_pushstring(L, json);
    lua_setfield(L, -2, "json");
    lua_pushinteger(L, total);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, written);
    lua_setfield(L, -2, "written");
    lua_pushinteger(L, skipped);
    lua_setfield(L, -2, "skipped");
    lua_pushinteger(L, failed);
    lua_setfield(L, -2, "errors");
    lua_pushinteger(L, unsupported);
    lua_setfield(L, -2, "unsupported");
    if (!tty)
        fprintf(stderr, "dcbench: %s: %d points (%d measured, %d done earlier, %d unsupported, %d errors) -> %s\n",
                s->name, total, written, skipped, unsupported, failed, csv);
    return 1;
}
