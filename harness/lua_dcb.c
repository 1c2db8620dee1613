/* lua_dcb.c — the Lua module `dcb`: tensors and operators as userdata, the
 * registry, .npy files, similarity, timing, calibration and figures; sweeps
 * live in sweep.c, interleaved comparisons in compare.c. Every error names
 * the function, the argument and the value, and where a name is unknown
 * lists the valid ones. The options of the run (dcbh_options) live in the
 * Lua registry, set by dcbh_lua_set_options. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TENSOR_MT "dcb.tensor"
#define OP_MT "dcb.op"

typedef struct ltensor {
    dcb_tensor *t;
} ltensor;

typedef struct lop {
    dcb_op *op;
    int last_ndim;               /* input shape of the last forward, for op:cost() */
    int64_t last_shape[DCB_MAX_DIMS];
} lop;

/* ------------------------------------------------------------ options */
#define OPTIONS_KEY "dcbh.options"

void dcbh_lua_set_options(lua_State *L, const dcbh_options *o) {
    dcbh_options *copy = lua_newuserdatauv(L, sizeof *copy, 0);
    *copy = *o;
    lua_setfield(L, LUA_REGISTRYINDEX, OPTIONS_KEY);
}

const dcbh_options *dcbh_lua_options(lua_State *L) {
    static const dcbh_options defaults = DCBH_OPTIONS_DEFAULT;
    lua_getfield(L, LUA_REGISTRYINDEX, OPTIONS_KEY);
    const dcbh_options *o = lua_touserdata(L, -1);   /* the registry keeps it alive */
    lua_pop(L, 1);
    return o ? o : &defaults;
}

/* ------------------------------------------------------------ helpers */
void dcbh_check_keys(lua_State *L, int idx, const char *fn, const char *const *valid) {
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int ok = 0;
        for (int i = 0; k && valid[i]; i++) ok |= !strcmp(k, valid[i]);
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; valid[i]; i++) {
                if (i) luaL_addstring(&b, ", ");
                luaL_addstring(&b, valid[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (valid: %s)", fn,
                       k ? k : luaL_typename(L, -2), lua_tostring(L, -1));
        }
    }
}

void dcbh_push_tensor(lua_State *L, dcb_tensor *t) {
    ltensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = t;
    luaL_setmetatable(L, TENSOR_MT);
}

dcb_tensor *dcbh_check_tensor(lua_State *L, int idx, const char *fn) {
    ltensor *u = luaL_testudata(L, idx, TENSOR_MT);
    if (!u || !u->t)
        luaL_error(L, "%s: argument %d must be a tensor (from dcb.load, dcb.randn, dcb.zeros or "
                      "op:forward), got %s", fn, idx, luaL_typename(L, idx));
    return u->t;
}

static lop *check_op(lua_State *L, int idx, const char *fn) {
    lop *u = luaL_testudata(L, idx, OP_MT);
    if (!u || !u->op)
        luaL_error(L, "%s: argument %d must be an operator (from dcb.op), got %s", fn, idx,
                   luaL_typename(L, idx));
    return u;
}

dcb_op *dcbh_check_op(lua_State *L, int idx, const char *fn) { return check_op(L, idx, fn)->op; }

/* A shape: a table of 1..DCB_MAX_DIMS positive integers, or a tensor (its shape). */
static int check_shape(lua_State *L, int idx, const char *fn, int64_t shape[DCB_MAX_DIMS]) {
    ltensor *u = luaL_testudata(L, idx, TENSOR_MT);
    if (u && u->t) {
        memcpy(shape, u->t->shape, sizeof(int64_t) * DCB_MAX_DIMS);
        return u->t->ndim;
    }
    if (!lua_istable(L, idx))
        luaL_error(L, "%s: argument %d must be a shape such as {8, 64, 28, 28}, got %s", fn, idx,
                   luaL_typename(L, idx));
    int n = (int)luaL_len(L, idx);
    if (n < 1 || n > DCB_MAX_DIMS)
        luaL_error(L, "%s: a shape has 1 to %d dimensions, got %d", fn, DCB_MAX_DIMS, n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < 1)
            luaL_error(L, "%s: shape dimension %d must be a positive integer, got %s", fn, i + 1,
                       luaL_tolstring(L, -1, NULL));
        shape[i] = v;
        lua_pop(L, 1);
    }
    return n;
}

static int st_error(lua_State *L, const char *fn, dcb_status st) {
    return luaL_error(L, "%s: %s: %s", fn, dcb_status_name(st), dcb_last_error());
}

static void push_shape(lua_State *L, int ndim, const int64_t *shape) {
    lua_createtable(L, ndim, 0);
    for (int i = 0; i < ndim; i++) {
        lua_pushinteger(L, shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

void dcbh_set_num(lua_State *L, const char *k, double v) {
    if (isnan(v))
        return;   /* an unavailable value is absent (nil), never 0 */
    if (v == floor(v) && fabs(v) < 9e15)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

void dcbh_set_nums(lua_State *L, const char *const *names, const double *v) {
    for (int i = 0; names[i]; i++) dcbh_set_num(L, names[i], v[i]);
}

/* ------------------------------------------------------------ tensors */
static int t_gc(lua_State *L) {
    ltensor *u = luaL_checkudata(L, 1, TENSOR_MT);
    dcb_tensor_free(u->t);
    u->t = NULL;
    return 0;
}

static int t_len(lua_State *L) {
    lua_pushinteger(L, dcbh_check_tensor(L, 1, "tensor:__len")->size);
    return 1;
}

static int t_tostring(lua_State *L) {
    dcb_tensor *t = dcbh_check_tensor(L, 1, "tensor:__tostring");
    char buf[160];
    lua_pushfstring(L, "tensor%s", dcb_shape_str(t->ndim, t->shape, buf, sizeof buf));
    return 1;
}

static int t_shape(lua_State *L) {
    dcb_tensor *t = dcbh_check_tensor(L, 1, "tensor:shape");
    push_shape(L, t->ndim, t->shape);
    return 1;
}

/* Flat offset of 1-based indexes starting at stack slot `from`. */
static int64_t t_offset(lua_State *L, dcb_tensor *t, int from, const char *fn) {
    int n = lua_gettop(L) - from + 1;
    if (n != t->ndim) luaL_error(L, "%s: the tensor has %d dimensions, got %d indexes", fn, t->ndim, n);
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) {
        lua_Integer v = luaL_checkinteger(L, from + i);
        if (v < 1 || v > t->shape[i])
            luaL_error(L, "%s: index %d is %d, outside 1..%d", fn, i + 1, (int)v, (int)t->shape[i]);
        off = off * t->shape[i] + (v - 1);
    }
    return off;
}

static int t_get(lua_State *L) {
    dcb_tensor *t = dcbh_check_tensor(L, 1, "tensor:get");
    lua_pushnumber(L, t->data[t_offset(L, t, 2, "tensor:get")]);
    return 1;
}

static int t_set(lua_State *L) {   /* t:set(value, i, j, ...) */
    dcb_tensor *t = dcbh_check_tensor(L, 1, "tensor:set");
    float v = (float)luaL_checknumber(L, 2);
    t->data[t_offset(L, t, 3, "tensor:set")] = v;
    return 0;
}

static int t_clone(lua_State *L) {
    dcb_tensor *c = dcb_tensor_clone(dcbh_check_tensor(L, 1, "tensor:clone"));
    if (!c) return luaL_error(L, "tensor:clone: %s", dcb_last_error());
    dcbh_push_tensor(L, c);
    return 1;
}

static int t_index(lua_State *L) {
    dcb_tensor *t = dcbh_check_tensor(L, 1, "tensor");
    const char *k = lua_tostring(L, 2);
    if (k && !strcmp(k, "shape")) {
        /* t.shape is a table that t:shape() may also call (it returns itself) */
        push_shape(L, t->ndim, t->shape);
        luaL_setmetatable(L, "dcb.shape");
        return 1;
    }
    if (k && !strcmp(k, "size")) {
        lua_pushinteger(L, t->size);
        return 1;
    }
    if (k && !strcmp(k, "ndim")) {
        lua_pushinteger(L, t->ndim);
        return 1;
    }
    luaL_getmetatable(L, TENSOR_MT);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (lua_isnil(L, -1))
        return luaL_error(L, "tensor: no field '%s' (fields: shape, size, ndim; methods: shape, get, set, "
                             "clone)", k ? k : luaL_typename(L, 2));
    return 1;
}

static int shape_call(lua_State *L) {
    lua_settop(L, 1);
    return 1;
}

static int l_load(lua_State *L) {
    const char *p = luaL_checkstring(L, 1);
    dcb_tensor *t = NULL;
    dcb_status st = dcb_npy_load(p, &t);
    if (st != DCB_OK) return st_error(L, "dcb.load", st);
    dcbh_push_tensor(L, t);
    return 1;
}

static int l_save(lua_State *L) {
    dcb_tensor *t = dcbh_check_tensor(L, 1, "dcb.save");
    const char *p = luaL_checkstring(L, 2);
    dcb_status st = dcb_npy_save(p, t);
    if (st != DCB_OK) return st_error(L, "dcb.save", st);
    return 0;
}

static dcb_tensor *new_tensor(lua_State *L, const char *fn) {
    int64_t shape[DCB_MAX_DIMS];
    int n = check_shape(L, 1, fn, shape);
    dcb_tensor *t = dcb_tensor_new(n, shape);
    if (!t) luaL_error(L, "%s: %s", fn, dcb_last_error());
    return t;
}

static int l_randn(lua_State *L) {
    lua_Integer seed = luaL_optinteger(L, 2, 0);
    dcb_tensor *t = new_tensor(L, "dcb.randn");
    dcb_tensor_randn(t, (uint64_t)seed);
    dcbh_push_tensor(L, t);
    return 1;
}

static int l_zeros(lua_State *L) {
    dcbh_push_tensor(L, new_tensor(L, "dcb.zeros"));
    return 1;
}

/* ----------------------------------------------------------- registry */
static const char *valid_ops(lua_State *L) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < dcb_op_count(); i++) {
        if (i) luaL_addstring(&b, ", ");
        luaL_addstring(&b, dcb_op_name(i));
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

static const char *check_opname(lua_State *L, int idx, const char *fn) {
    const char *name = luaL_checkstring(L, idx);
    if (dcb_impl_count(name) < 0) luaL_error(L, "%s: unknown operator '%s' (valid: %s)", fn, name, valid_ops(L));
    return name;
}

static int l_ops(lua_State *L) {
    lua_newtable(L);
    for (int i = 0; i < dcb_op_count(); i++) {
        lua_pushstring(L, dcb_op_name(i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_impls(lua_State *L) {
    const char *op = check_opname(L, 1, "dcb.impls");
    lua_newtable(L);
    for (int i = 0; i < dcb_impl_count(op); i++) {
        lua_pushstring(L, dcb_impl_name(op, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* dcb.has_auto(op): true where impl "auto" is available (dcb_impl_has_auto) */
static int l_has_auto(lua_State *L) {
    lua_pushboolean(L, dcb_impl_has_auto(check_opname(L, 1, "dcb.has_auto")));
    return 1;
}

/* dcb.params(op) -> {{name=, type="int"|"float"|"bool"|"string", default=, doc=}, ...}:
 * an int's default an integer, a bool's a boolean, "derived" where there is
 * none (required, or computed from others: the doc says which). */
static int l_params(lua_State *L) {
    const char *op = check_opname(L, 1, "dcb.params");
    int n = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &n);
    static const char *const types[] = {"int", "float", "bool", "string"};
    lua_newtable(L);
    for (int i = 0; i < n; i++) {
        lua_newtable(L);
        lua_pushstring(L, ps[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, types[ps[i].type]);
        lua_setfield(L, -2, "type");
        if (ps[i].type == DCB_PT_STRING)
            lua_pushstring(L, ps[i].def_str ? ps[i].def_str : "");
        else if (ps[i].derived)
            lua_pushstring(L, "derived");
        else if (ps[i].type == DCB_PT_BOOL)
            lua_pushboolean(L, ps[i].def != 0);
        else if (ps[i].type == DCB_PT_INT)
            lua_pushinteger(L, (lua_Integer)ps[i].def);
        else
            lua_pushnumber(L, ps[i].def);
        lua_setfield(L, -2, "default");
        lua_pushstring(L, ps[i].doc ? ps[i].doc : "");
        lua_setfield(L, -2, "doc");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ----------------------------------------------------------- operators */
int dcbh_read_hparams(lua_State *L, int idx, const char *fn, dcb_hparam *hp, int max, const char **impl) {
    int nhp = 0;
    if (lua_isnoneornil(L, idx)) return 0;
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "%s: hyperparameter names must be strings, got %s", fn, luaL_typename(L, -2));
        const char *k = lua_tostring(L, -2);
        if (impl && !strcmp(k, "impl")) {
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "%s: impl must be a string, got %s", fn, luaL_typename(L, -1));
            *impl = lua_tostring(L, -1);
        } else {
            if (nhp == max) return luaL_error(L, "%s: more than %d hyperparameters", fn, max);
            dcb_hparam *h = &hp[nhp++];
            h->name = k;
            h->str = NULL;
            h->num = 0;
            switch (lua_type(L, -1)) {
            case LUA_TNUMBER: h->num = lua_tonumber(L, -1); break;
            case LUA_TBOOLEAN: h->num = lua_toboolean(L, -1); break;
            case LUA_TSTRING: h->str = lua_tostring(L, -1); break;
            default:
                return luaL_error(L, "%s: hyperparameter %s must be a number, boolean or string, got %s", fn, k,
                                  luaL_typename(L, -1));
            }
        }
        lua_pop(L, 1);   /* strings stay alive: the table holds them */
    }
    return nhp;
}

/* true and false only for the boolean hyperparameters: cin = true is an error,
 * not 1. */
static void check_booleans(lua_State *L, const char *op, int idx, const char *fn) {
    if (!lua_istable(L, idx)) return;
    int n = 0;
    const dcb_param_spec *ps = dcb_op_params(op, &n);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TBOOLEAN && lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (int i = 0; i < n; i++)
                if (!strcmp(ps[i].name, k) && ps[i].type != DCB_PT_BOOL)
                    luaL_error(L, "%s: %s: %s needs a %s, got %s", fn, op, k,
                               ps[i].type == DCB_PT_STRING ? "string" : "number",
                               lua_toboolean(L, -1) ? "true" : "false");
        }
        lua_pop(L, 1);
    }
}

static int l_op(lua_State *L) {
    const char *name = check_opname(L, 1, "dcb.op");
    const char *impl = NULL;
    dcb_hparam hp[64];
    check_booleans(L, name, 2, "dcb.op");
    const int nhp = dcbh_read_hparams(L, 2, "dcb.op", hp, 64, &impl);
    dcb_op *op = NULL;
    dcb_status st = dcb_op_create(name, impl, hp, nhp, &op);
    if (st != DCB_OK) return st_error(L, "dcb.op", st);
    lop *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    u->op = op;
    luaL_setmetatable(L, OP_MT);
    return 1;
}

static int op_gc(lua_State *L) {
    lop *u = luaL_checkudata(L, 1, OP_MT);
    dcb_op_destroy(u->op);
    u->op = NULL;
    return 0;
}

static int op_tostring(lua_State *L) {
    lop *u = check_op(L, 1, "op:__tostring");
    lua_pushfstring(L, "op(%s/%s)", dcb_op_get_name(u->op), dcb_op_get_impl(u->op));
    return 1;
}

static int op_forward(lua_State *L) {
    lop *u = check_op(L, 1, "op:forward");
    dcb_tensor *x = dcbh_check_tensor(L, 2, "op:forward"), *y = NULL;
    dcb_status st = dcb_op_forward(u->op, x, &y);
    if (st != DCB_OK) return st_error(L, "op:forward", st);
    u->last_ndim = x->ndim;
    memcpy(u->last_shape, x->shape, sizeof u->last_shape);
    dcbh_push_tensor(L, y);
    return 1;
}

static void push_cost(lua_State *L, const dcb_cost *c) {
    static const char *const names[] = {"macs", "flops", "params", "acts", "bytes", "dynamic_macs",
                                        "executed_macs", NULL};
    const double v[] = {c->macs, c->flops, c->params, c->acts, c->bytes, c->dynamic_macs, c->executed_macs};
    lua_newtable(L);
    dcbh_set_nums(L, names, v);
}

/* op:cost(x | shape) — without an argument, the shape of the last forward. */
static int op_cost(lua_State *L) {
    lop *u = check_op(L, 1, "op:cost");
    int64_t shape[DCB_MAX_DIMS];
    int n;
    if (lua_isnoneornil(L, 2)) {
        if (!u->last_ndim)
            return luaL_error(L, "op:cost: costs depend on the input shape: give a tensor or a shape "
                                 "(op:cost(x), op:cost({1, 64, 28, 28})) or call op:forward first");
        n = u->last_ndim;
        memcpy(shape, u->last_shape, sizeof shape);
    } else {
        n = check_shape(L, 2, "op:cost", shape);
    }
    dcb_cost c;
    dcb_status st = dcb_op_cost(u->op, n, shape, &c);
    if (st != DCB_OK) return st_error(L, "op:cost", st);
    push_cost(L, &c);
    return 1;
}

/* op:kernels(x) and op:routing(x): a tensor the operator derives from x. */
static int op_product(lua_State *L, const char *who,
                      dcb_status (*get)(dcb_op *, const dcb_tensor *, dcb_tensor **)) {
    lop *u = check_op(L, 1, who);
    dcb_tensor *k = NULL;
    dcb_status st = get(u->op, dcbh_check_tensor(L, 2, who), &k);
    if (st != DCB_OK) return st_error(L, who, st);
    dcbh_push_tensor(L, k);
    return 1;
}

static int op_kernels(lua_State *L) { return op_product(L, "op:kernels", dcb_op_kernels); }
static int op_routing(lua_State *L) { return op_product(L, "op:routing", dcb_op_routing); }

static int op_load_weights(lua_State *L) {
    lop *u = check_op(L, 1, "op:load_weights");
    dcb_status st = dcb_op_load_weights(u->op, luaL_checkstring(L, 2));
    if (st != DCB_OK) return st_error(L, "op:load_weights", st);
    lua_settop(L, 1);
    return 1;
}

static int op_init_weights(lua_State *L) {
    lop *u = check_op(L, 1, "op:init_weights");
    lua_Integer seed = luaL_optinteger(L, 2, 0);
    dcb_status st = dcb_op_init_weights(u->op, (uint64_t)seed);
    if (st != DCB_OK) return st_error(L, "op:init_weights", st);
    lua_settop(L, 1);
    return 1;
}

static int op_set_weight(lua_State *L) {
    lop *u = check_op(L, 1, "op:set_weight");
    dcb_status st = dcb_op_set_weight(u->op, luaL_checkstring(L, 2), dcbh_check_tensor(L, 3, "op:set_weight"));
    if (st != DCB_OK) return st_error(L, "op:set_weight", st);
    lua_settop(L, 1);
    return 1;
}

/* name -> tensor (a copy) for every weight that is set; name -> expected shape otherwise. */
static int op_weights(lua_State *L) {
    lop *u = check_op(L, 1, "op:weights");
    lua_newtable(L);
    for (int i = 0; i < dcb_op_weight_count(u->op); i++) {
        const char *name = dcb_op_weight_name(u->op, i);
        const dcb_tensor *w = dcb_op_get_weight(u->op, name);
        if (w) {
            dcbh_push_tensor(L, dcb_tensor_clone(w));
        } else {
            int64_t s[DCB_MAX_DIMS];
            int n = dcb_op_weight_shape(u->op, i, s);
            push_shape(L, n, s);
        }
        lua_setfield(L, -2, name);
    }
    return 1;
}

static int op_params(lua_State *L) {
    lop *u = check_op(L, 1, "op:params");
    int n = 0;
    const dcb_param_spec *ps = dcb_op_params(dcb_op_get_name(u->op), &n);
    lua_newtable(L);
    for (int i = 0; i < n; i++)
        if (ps[i].type != DCB_PT_STRING) dcbh_set_num(L, ps[i].name, dcb_op_get_param(u->op, ps[i].name));
    dcbh_set_num(L, "threads", dcb_op_threads(u->op));
    return 1;
}

static int op_impl(lua_State *L) {
    lua_pushstring(L, dcb_op_get_impl(check_op(L, 1, "op:impl")->op));
    return 1;
}

static int op_name(lua_State *L) {
    lua_pushstring(L, dcb_op_get_name(check_op(L, 1, "op:name")->op));
    return 1;
}

/* impl "auto": op:picked() (the implementation it picked for the last
 * planned shape, nil before one and for other impls), op:pick_reason(). */
static int op_picked(lua_State *L) {
    const char *e = dcb_op_get_picked(check_op(L, 1, "op:picked")->op);
    if (e) lua_pushstring(L, e); else lua_pushnil(L);
    return 1;
}

static int op_pick_reason(lua_State *L) {
    const char *e = dcb_op_get_pick_reason(check_op(L, 1, "op:pick_reason")->op);
    if (e) lua_pushstring(L, e); else lua_pushnil(L);
    return 1;
}

/* The implementation's identity as data: op:engine() ("winograd" or nil),
 * op:strategy() ("combine_then_conv" or nil), op:doc(), op:tolerance(). */
static int op_engine(lua_State *L) {
    const char *e = dcb_op_get_engine(check_op(L, 1, "op:engine")->op);
    if (e) lua_pushstring(L, e); else lua_pushnil(L);
    return 1;
}

static int op_strategy(lua_State *L) {
    const char *e = dcb_op_get_strategy(check_op(L, 1, "op:strategy")->op);
    if (e) lua_pushstring(L, e); else lua_pushnil(L);
    return 1;
}

static int op_doc(lua_State *L) {
    const char *d = dcb_op_get_impl_doc(check_op(L, 1, "op:doc")->op);
    lua_pushstring(L, d ? d : "");
    return 1;
}

static int op_tolerance(lua_State *L) {
    lua_pushnumber(L, dcb_op_tolerance(check_op(L, 1, "op:tolerance")->op));
    return 1;
}

static int op_plan_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)dcb_op_plan_count(check_op(L, 1, "op:plan_count")->op));
    return 1;
}

/* op:input_shape{N=, H=, W=, T=} — the op's input for these sizes (its own
 * channels; defaults N=1, H=W=28, T=128, W=H), e.g. for dcb.randn. */
static int op_input_shape(lua_State *L) {
    lop *u = check_op(L, 1, "op:input_shape");
    lua_Integer N = 1, H = 28, W = 0, T = 128;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        static const char *const valid[] = {"N", "H", "W", "T", NULL};
        dcbh_check_keys(L, 2, "op:input_shape", valid);
        if (lua_getfield(L, 2, "N") != LUA_TNIL) N = luaL_checkinteger(L, -1);
        if (lua_getfield(L, 2, "H") != LUA_TNIL) H = luaL_checkinteger(L, -1);
        if (lua_getfield(L, 2, "W") != LUA_TNIL) W = luaL_checkinteger(L, -1);
        if (lua_getfield(L, 2, "T") != LUA_TNIL) T = luaL_checkinteger(L, -1);
        lua_pop(L, 4);
    }
    if (N < 1 || H < 1 || W < 0 || T < 1) return luaL_error(L, "op:input_shape: sizes must be positive");
    int64_t shape[DCB_MAX_DIMS];
    int n = dcb_op_input_shape(u->op, N, H, W ? W : H, T, shape);
    if (n < 1) return luaL_error(L, "op:input_shape: %s", dcb_last_error());
    push_shape(L, n, shape);
    return 1;
}

/* ---------------------------------------------------------- similarity */
static void push_sim(lua_State *L, const dcb_sim_summary *s) {
    lua_newtable(L);
    dcbh_set_num(L, "mean", s->mean);
    dcbh_set_num(L, "std", s->std);
    dcbh_set_num(L, "min", s->min);
    dcbh_set_num(L, "max", s->max);
    dcbh_set_num(L, "pairs", (double)s->pairs);
    lua_createtable(L, DCB_SIM_BINS, 0);
    for (int i = 0; i < DCB_SIM_BINS; i++) {
        lua_pushinteger(L, s->hist[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "hist");
}

static int l_similarity(lua_State *L) {
    dcb_tensor *k = dcbh_check_tensor(L, 1, "dcb.similarity");
    dcb_similarity_stats s;
    dcb_status st = dcb_similarity(k, &s);
    if (st != DCB_OK) return st_error(L, "dcb.similarity", st);
    push_sim(L, &s.whole);
    push_sim(L, &s.per_channel);
    lua_setfield(L, -2, "per_channel");
    return 1;
}

/* dcb.cosines(k) -> {c01, c02, ...}: every pair's whole-kernel cosine similarity. */
static int l_cosines(lua_State *L) {
    dcb_tensor *k = dcbh_check_tensor(L, 1, "dcb.cosines");
    int64_t n = 0;
    dcb_status st = dcb_similarity_pairs(k, NULL, 0, &n);
    if (st != DCB_OK) return st_error(L, "dcb.cosines", st);
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) return luaL_error(L, "dcb.cosines: out of memory (%lld pairs)", (long long)n);
    st = dcb_similarity_pairs(k, v, n, &n);
    if (st != DCB_OK) {
        free(v);
        return st_error(L, "dcb.cosines", st);
    }
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    free(v);
    return 1;
}

/* dcb.rel_err(y, ref) -> max |y-ref| / max(1, max|ref|), max |y-ref| */
static int l_rel_err(lua_State *L) {
    dcb_tensor *a = dcbh_check_tensor(L, 1, "dcb.rel_err"), *b = dcbh_check_tensor(L, 2, "dcb.rel_err");
    if (a->ndim != b->ndim || !dcb_shape_equal(a, b->ndim, b->shape)) {
        char sa[160], sb[160];
        return luaL_error(L, "dcb.rel_err: shapes differ: %s and %s", dcb_shape_str(a->ndim, a->shape, sa, sizeof sa),
                          dcb_shape_str(b->ndim, b->shape, sb, sizeof sb));
    }
    double abs_err = 0;
    lua_pushnumber(L, dcb_max_rel_err(a, b, &abs_err));
    lua_pushnumber(L, abs_err);
    return 2;
}

/* dcb.input_layout(op) -> "image" (N, C, H, W) or "sequence" (N, T, C) */
static int l_input_layout(lua_State *L) {
    const char *op = check_opname(L, 1, "dcb.input_layout");
    lua_pushstring(L, dcb_op_input_layout(op) == DCB_INPUT_SEQUENCE ? "sequence" : "image");
    return 1;
}

/* --------------------------------------------------------------- bench */
static int l_bench(lua_State *L) {
    lop *u = check_op(L, 1, "dcb.bench");
    dcb_tensor *x = dcbh_check_tensor(L, 2, "dcb.bench");
    dcbh_bench_opts o;
    dcbh_bench_defaults(&o, dcbh_lua_options(L)->quick);
    o.counters = 1;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        static const char *const valid[] = {"repetitions", "min_time", "rotate", "counters", "profile",
                                            "time", "json", "name", NULL};
        dcbh_check_keys(L, 3, "dcb.bench", valid);
        if (lua_getfield(L, 3, "repetitions") != LUA_TNIL) {
            o.repetitions = (int)luaL_checkinteger(L, -1);
            if (o.repetitions < 1 || o.repetitions > DCBH_MAX_REPS)
                return luaL_error(L, "dcb.bench: repetitions=%d must be in 1..%d", o.repetitions, DCBH_MAX_REPS);
        }
        if (lua_getfield(L, 3, "min_time") != LUA_TNIL) {
            o.min_time = luaL_checknumber(L, -1);
            if (!(o.min_time > 0)) return luaL_error(L, "dcb.bench: min_time=%f must be > 0", o.min_time);
        }
        if (lua_getfield(L, 3, "rotate") != LUA_TNIL) o.rotate = lua_toboolean(L, -1);
        if (lua_getfield(L, 3, "counters") != LUA_TNIL) o.counters = lua_toboolean(L, -1);
        if (lua_getfield(L, 3, "profile") != LUA_TNIL) o.profile = lua_toboolean(L, -1);
        if (lua_getfield(L, 3, "time") != LUA_TNIL) o.time = lua_toboolean(L, -1);
        if (lua_getfield(L, 3, "json") != LUA_TNIL) o.json_path = luaL_checkstring(L, -1);
        if (lua_getfield(L, 3, "name") != LUA_TNIL) o.name = luaL_checkstring(L, -1);
    }
    dcbh_bench_result r;
    dcb_status st = dcbh_bench(u->op, x, &o, &r);
    if (st != DCB_OK) return luaL_error(L, "dcb.bench: %s: %s", dcb_status_name(st), r.msg);
    dcb_cost c;
    dcb_op_cost(u->op, x->ndim, x->shape, &c);
    lua_newtable(L);
    if (r.timed) {
        dcbh_set_num(L, "median", r.t.median);
        dcbh_set_num(L, "mean", r.t.mean);
        dcbh_set_num(L, "min", r.t.min);
        dcbh_set_num(L, "max", r.t.max);
        dcbh_set_num(L, "stddev", r.t.stddev);
        dcbh_set_num(L, "cv", r.t.cv);
        dcbh_set_num(L, "repetitions", r.t.repetitions);
        dcbh_set_num(L, "iterations", (double)r.t.iterations);
        dcbh_set_num(L, "gflops", c.flops / r.t.median * 1e-9);
        lua_createtable(L, r.t.repetitions, 0);
        for (int i = 0; i < r.t.repetitions; i++) {
            lua_pushnumber(L, r.t.rep[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "reps");
    }
    dcbh_set_num(L, "prepare_s", r.prepare_s);
    if (r.rotate_copies) dcbh_set_num(L, "rotate_copies", r.rotate_copies);
    if (r.profiled) {
        lua_newtable(L);
        for (int i = 0; i < DCB_PHASE_COUNT; i++) dcbh_set_num(L, dcb_phase_name(i), r.phase[i]);
        lua_setfield(L, -2, "phases");
    }
    if (o.counters) {
        lua_newtable(L);
        lua_pushstring(L, r.c.source ? r.c.source : "none");
        lua_setfield(L, -2, "source");
        for (int i = 0; i < DCBH_NCOUNTERS; i++) dcbh_set_num(L, dcbh_counter_names[i], r.c.v[i]);
        lua_setfield(L, -2, "counters");
    }
    push_cost(L, &c);
    lua_setfield(L, -2, "cost");
    return 1;
}

/* dcb.calibration([isa]) -> the calibration of isa (default: this run's
 * level, dcb.isa), or nil and why. */
static int l_calibration(lua_State *L) {
    const char *isa = luaL_optstring(L, 1, dcb_isa()), *path = dcbh_calib_path();
    dcbh_calib all[DCBH_CALIB_MAX_LEVELS];
    const int n = dcbh_calib_load_all(path, all, DCBH_CALIB_MAX_LEVELS);
    int at = -1;
    for (int i = 0; i < n && at < 0; i++)
        if (!strcmp(all[i].isa, isa)) at = i;
    if (at < 0) {
        lua_pushnil(L);
        if (n < 0) {
            lua_pushfstring(L, "no calibration at %s (run: dcbench calibrate)", path);
            return 2;
        }
        char held[DCBH_CALIB_MAX_LEVELS * 34] = "";
        for (int i = 0; i < n; i++)
            snprintf(held + strlen(held), sizeof held - strlen(held), "%s%s", i ? ", " : "", all[i].isa);
        lua_pushfstring(L, "no calibration of %s in %s (it holds %s; run: DCB_ISA=%s dcbench calibrate)", isa, path,
                        held, isa);
        return 2;
    }
    const dcbh_calib c = all[at];
    lua_newtable(L);
    dcbh_set_num(L, "peak_gflops_1t", c.peak_gflops_1t);
    dcbh_set_num(L, "peak_gflops_all", c.peak_gflops_all);
    dcbh_set_num(L, "bw_gbs_1t", c.bw_gbs_1t);
    dcbh_set_num(L, "bw_gbs_all", c.bw_gbs_all);
    dcbh_set_num(L, "threads_all", c.threads_all);
    lua_pushstring(L, c.when);
    lua_setfield(L, -2, "when");
    lua_pushstring(L, c.isa);
    lua_setfield(L, -2, "isa");
    return 1;
}

/* dcb.load_begin() -> mark; dcb.load_end(mark [, threads]) -> {loadavg=,
 * steal_pct=, others_cpus=, contended=}: what else ran on the machine
 * between the two (measure.h, dcbh_load), for work timed in Lua (the
 * study units). Numbers are NaN where /proc cannot say (under 50 ms). */
static int l_load_begin(lua_State *L) {
    dcbh_load_mark m;
    dcbh_load_begin(&m);
    lua_newtable(L);
    dcbh_set_num(L, "busy", (double)m.busy);
    dcbh_set_num(L, "steal", (double)m.steal);
    dcbh_set_num(L, "total", (double)m.total);
    dcbh_set_num(L, "self_s", m.self_s);
    dcbh_set_num(L, "wall", m.wall);
    return 1;
}

static double mark_field(lua_State *L, const char *k) {
    lua_getfield(L, 1, k);
    if (!lua_isnumber(L, -1)) luaL_error(L, "dcb.load_end: the mark has no number '%s' (pass what dcb.load_begin returned)", k);
    const double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int l_load_end(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const lua_Integer threads = luaL_optinteger(L, 2, 1);
    if (threads < 1 || threads > 1024) return luaL_error(L, "dcb.load_end: threads=%d must be in 1..1024", (int)threads);
    dcbh_load_mark m = {(unsigned long long)mark_field(L, "busy"), (unsigned long long)mark_field(L, "steal"),
                        (unsigned long long)mark_field(L, "total"), mark_field(L, "self_s"), mark_field(L, "wall")};
    dcbh_load r;
    dcbh_load_end(&m, (int)threads, &r);
    lua_newtable(L);
    dcbh_set_num(L, "loadavg", r.loadavg);
    dcbh_set_num(L, "steal_pct", r.steal_pct);
    dcbh_set_num(L, "others_cpus", r.others_cpus);
    lua_pushinteger(L, r.contended);
    lua_setfield(L, -2, "contended");
    return 1;
}

/* dcb.plot(csv, {x=, y=, by=, title=, out=, kind=}) -> path of the figure (kind "crossover":
 * the fastest `by` over the grid of x and y) */
static int l_plot(lua_State *L) {
    const char *csv = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const valid[] = {"x", "y", "by", "title", "out", "kind", NULL};
    dcbh_check_keys(L, 2, "dcb.plot", valid);
    dcbh_plot_spec s = {0};
    if (lua_getfield(L, 2, "x") != LUA_TNIL) s.x = luaL_checkstring(L, -1);
    if (lua_getfield(L, 2, "y") != LUA_TNIL) s.y = luaL_checkstring(L, -1);
    if (lua_getfield(L, 2, "by") != LUA_TNIL) s.by = luaL_checkstring(L, -1);
    if (lua_getfield(L, 2, "title") != LUA_TNIL) s.title = luaL_checkstring(L, -1);
    if (lua_getfield(L, 2, "out") != LUA_TNIL) s.out = luaL_checkstring(L, -1);
    if (lua_getfield(L, 2, "kind") != LUA_TNIL) s.kind = luaL_checkstring(L, -1);
    if (!s.x) return luaL_error(L, "dcb.plot: the spec needs x (a column of %s)", csv);
    char out[4096], err[1024];
    if (dcbh_plot(dcbh_lua_options(L), csv, &s, out, sizeof out, err, sizeof err)) return luaL_error(L, "dcb.plot: %s", err);
    lua_pushstring(L, out);
    return 1;
}

/* dcb.read_csv(path [, repair]) -> rows ({column = text}), columns (list) —
 * for derived tables after a sweep (empty cells are absent). repair = true
 * truncates a torn last line (a kill in mid-write) in place, as resume does. */
static int l_read_csv(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    const int repair = lua_toboolean(L, 2);
    csv_table t;
    char err[1024];
    if (csv_read(path, &t, repair, err, sizeof err)) return luaL_error(L, "dcb.read_csv: %s", err);
    lua_createtable(L, t.nrows, 0);
    for (int r = 0; r < t.nrows; r++) {
        lua_createtable(L, 0, t.ncols);
        for (int c = 0; c < t.ncols; c++) {
            if (!t.rows[r][c][0]) continue;
            lua_pushstring(L, t.rows[r][c]);
            lua_setfield(L, -2, t.cols[c]);
        }
        lua_rawseti(L, -2, r + 1);
    }
    lua_createtable(L, t.ncols, 0);
    for (int c = 0; c < t.ncols; c++) {
        lua_pushstring(L, t.cols[c]);
        lua_rawseti(L, -2, c + 1);
    }
    csv_free(&t);
    return 2;
}

/* dcb.append_line(path, line): one whole line appended with a single
 * write(2) and fsync (csv_append_line), the file created if missing; a
 * reader sees all of the line or none. The resumable studies' rows. */
static int l_append_line(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *line = luaL_checklstring(L, 2, &n);
    if (!n || line[n - 1] != '\n') return luaL_error(L, "dcb.append_line: %s: the line must end in a newline", path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return luaL_error(L, "dcb.append_line: cannot open %s: %s", path, strerror(errno));
    int rc = csv_append_line(fd, line, n);
    int e = errno;
    close(fd);
    if (rc) return luaL_error(L, "dcb.append_line: cannot append to %s: %s", path, strerror(e));
    return 0;
}

/* dcb.write_file(path, text): the whole file through a temporary and a rename. */
static int l_write_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *text = luaL_checklstring(L, 2, &n);
    if (write_file_atomic(path, text, n)) return luaL_error(L, "dcb.write_file: cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* dcb.mkdir(path): the directory and its parents. */
static int l_mkdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (mkdir_p(path)) return luaL_error(L, "dcb.mkdir: cannot create %s: %s", path, strerror(errno));
    return 0;
}

/* dcb.point_id(text) -> 16 hex digits: the FNV-1a hash that sweep point ids use. */
static int l_point_id(lua_State *L) {
    char b[24];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)dcbh_fnv1a(luaL_checkstring(L, 1)));
    lua_pushstring(L, b);
    return 1;
}

/* dcb.max_bytes([n]) -> the memory limit in bytes (dcb_max_bytes); with n,
 * sets it first (0: back to DCB_MAX_BYTES or 80% of physical memory). */
static int l_max_bytes(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        const lua_Number n = luaL_checknumber(L, 1);
        if (!(n >= 0 && n < 1.8e19)) return luaL_error(L, "dcb.max_bytes: %f is not a size in bytes", (double)n);
        dcb_set_max_bytes((size_t)n);
    }
    lua_pushinteger(L, (lua_Integer)dcb_max_bytes());
    return 1;
}

/* dcb.machine() -> the JSON object every result file records (CPU, ISA, BLAS, build). */
static int l_machine(lua_State *L) {
    const dcbh_options *o = dcbh_lua_options(L);
    char *j = dcbh_machine_json(o->argc, o->argv);
    if (!j) return luaL_error(L, "dcb.machine: out of memory");
    lua_pushstring(L, j);
    free(j);
    return 1;
}

static void register_metatables(lua_State *L) {
    static const luaL_Reg tensor_methods[] = {
        {"shape", t_shape}, {"get", t_get}, {"set", t_set}, {"clone", t_clone}, {NULL, NULL}};
    luaL_newmetatable(L, TENSOR_MT);
    lua_pushcfunction(L, t_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, t_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, t_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, t_index);
    lua_setfield(L, -2, "__index");
    luaL_newlib(L, tensor_methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    luaL_newmetatable(L, "dcb.shape");
    lua_pushcfunction(L, shape_call);
    lua_setfield(L, -2, "__call");
    lua_pop(L, 1);

    static const luaL_Reg op_methods[] = {
        {"forward", op_forward},         {"cost", op_cost},
        {"kernels", op_kernels},         {"routing", op_routing},
        {"load_weights", op_load_weights}, {"init_weights", op_init_weights},
        {"set_weight", op_set_weight},   {"weights", op_weights},
        {"params", op_params},           {"impl", op_impl},
        {"name", op_name},               {"engine", op_engine},
        {"strategy", op_strategy},       {"doc", op_doc},
        {"picked", op_picked},           {"pick_reason", op_pick_reason},
        {"tolerance", op_tolerance},     {"plan_count", op_plan_count},
        {"input_shape", op_input_shape}, {"backward", dcbh_op_backward},
        {"set_backward", dcbh_op_set_backward}, {"backward_impl", dcbh_op_backward_impl}, {NULL, NULL}};
    luaL_newmetatable(L, OP_MT);
    lua_pushcfunction(L, op_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, op_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, op_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

static void set_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* The run's context in the module table at the top: dcb.version, quick,
 * results, format, home, shard = {i=, n=}, timing = {repetitions=,
 * min_time=} (this run's defaults), build = {flags=, blas=, blas_name=,
 * onednn=} (for the scripts' headers). */
static void set_run_fields(lua_State *L, const dcbh_options *opt) {
    set_str(L, "version", DCB_VERSION);
    lua_pushboolean(L, opt->quick);
    lua_setfield(L, -2, "quick");
    set_str(L, "results", opt->results_dir);
    set_str(L, "format", opt->format);
    set_str(L, "home", dcbh_home());
    dcbh_set_num(L, "default_threads", dcb_default_threads()); /* --threads */
    lua_newtable(L);
    dcbh_set_num(L, "i", opt->shard_i);
    dcbh_set_num(L, "n", opt->shard_n);
    lua_setfield(L, -2, "shard");
    const dcbh_timing tm = dcbh_timing_for(opt->quick);
    lua_newtable(L);
    dcbh_set_num(L, "repetitions", tm.repetitions);
    lua_pushnumber(L, tm.min_time);
    lua_setfield(L, -2, "min_time");
    lua_setfield(L, -2, "timing");
    lua_newtable(L);
    set_str(L, "flags", dcb_build_flags());
    set_str(L, "blas", dcb_blas_info());
    set_str(L, "blas_name", dcb_blas_name());
    set_str(L, "onednn", dcb_onednn_version());
    lua_setfield(L, -2, "build");
}

int luaopen_dcb(lua_State *L) {
    register_metatables(L);
    static const luaL_Reg fns[] = {
        {"load", l_load},       {"save", l_save},     {"randn", l_randn},
        {"zeros", l_zeros},     {"ops", l_ops},       {"impls", l_impls},  {"has_auto", l_has_auto},
        {"params", l_params},   {"op", l_op},         {"similarity", l_similarity}, {"cosines", l_cosines},
        {"bench", l_bench},     {"sweep", dcbh_lua_sweep}, {"calibration", l_calibration},
        {"plot", l_plot},       {"read_csv", l_read_csv}, {"compare", dcbh_lua_compare},
        {"rel_err", l_rel_err}, {"input_layout", l_input_layout}, {"append_line", l_append_line},
        {"write_file", l_write_file}, {"mkdir", l_mkdir}, {"point_id", l_point_id}, {"machine", l_machine},
        {"max_bytes", l_max_bytes}, {"load_begin", l_load_begin}, {"load_end", l_load_end},
        {NULL, NULL}};
    const dcbh_options *opt = dcbh_lua_options(L);
    luaL_newlib(L, fns);
    dcbh_lua_net_register(L);
    set_run_fields(L, opt);
    lua_pushstring(L, dcb_isa());   /* the micro-kernels' level in this process */
    lua_setfield(L, -2, "isa");
    /* The network descriptions (harness/lua/models.lua) are Lua composed from
     * the operators' costs; they load on first use, as do the networks, the
     * studies and the comparison of two sweeps' results (compare_results.lua). */
    static const char models_glue[] =
        "local dcb = ...\n"
        "function dcb.models() return require('models').names() end\n"
        "function dcb.model(name) return require('models').model(name) end\n"
        "function dcb.regnet(t) return require('models').regnet(t) end\n"
        "function dcb.net(a, b) return require('nets').net(a, b) end\n"
        "function dcb.nets() return require('nets').names() end\n"
        "function dcb.train(t) return require('nets').train(t) end\n"
        "function dcb.study(t) return require('study').study(t) end\n"
        "function dcb.sample_space(t) return require('study').sample_space(t) end\n"
        "function dcb.compare_results(a, b, o) return require('compare_results').compare(a, b, o) end\n";
    if (luaL_loadbuffer(L, models_glue, sizeof models_glue - 1, "=dcb.models") == LUA_OK) {
        lua_pushvalue(L, -2);
        lua_call(L, 1, 0);
    } else {
        lua_error(L);
    }
    return 1;
}

/* ----------------------------------------------------------- scripts */
static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* A fresh Lua state with the standard libraries, the options o and the
 * module dcb preloaded; package.path reaches the shipped sweeps/ and
 * harness/lua/. NULL (reported) when none can be made. */
static lua_State *new_state(const dcbh_options *o) {
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "dcbench: cannot create a Lua state\n");
        return NULL;
    }
    luaL_openlibs(L);
    dcbh_lua_set_options(L, o);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_dcb);
    lua_setfield(L, -2, "dcb");
    lua_pop(L, 1);
    /* Shipped sweeps may require each other's helpers from sweeps/, and the
     * network descriptions live in harness/lua/. */
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/sweeps/?.lua;%s/harness/lua/?.lua;", dcbh_home(), dcbh_home());
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}

int dcbh_run_script(const dcbh_options *o, const char *path, int argc, char **argv) {
    lua_State *L = new_state(o);
    if (!L) return 1;
    /* arg, as the standalone lua sets it: arg[0] the script, arg[1..] its arguments. */
    lua_createtable(L, argc, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    int rc = luaL_loadfile(L, path);
    if (rc == LUA_OK) {
        for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
        rc = lua_pcall(L, argc, 0, 1);
    }
    int code = 0;
    fflush(stdout);
    if (rc != LUA_OK) {
        fprintf(stderr, "dcbench: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
        code = 1;
    }
    lua_close(L);
    return code;
}

int dcbh_run_lua_main(const dcbh_options *o, const char *module, int argc, char **argv) {
    lua_State *L = new_state(o);
    if (!L) return 1;
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    int rc = lua_pcall(L, 1, 1, 1);
    int code = 1;
    if (rc == LUA_OK) {
        if (lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
            fprintf(stderr, "dcbench: the Lua module %s has no function main\n", module);
            lua_close(L);
            return 1;
        }
        lua_createtable(L, argc, 0);
        for (int i = 0; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i + 1);
        }
        rc = lua_pcall(L, 1, 1, 1);
        if (rc == LUA_OK) code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    }
    fflush(stdout);
    if (rc != LUA_OK) fprintf(stderr, "dcbench: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    lua_close(L);
    return code;
}
