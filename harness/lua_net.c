/* lua_net.c — the training half of the Lua module: networks (dcb.cnet), datasets
 * and the training loop, as low-level functions that harness/lua/nets.lua
 * wraps into dcb.net, dcb.train and net methods. Operator backward
 * (op:backward) lives here too. */
#define _GNU_SOURCE
#include "harness.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NET_MT "dcb.cnet"
#define DATA_MT "dcb.dataset"

typedef struct lnet {
    dcb_net *net;
} lnet;
typedef struct ldata {
    dcb_dataset *d;
} ldata;

static int st_err(lua_State *L, const char *fn, dcb_status st) {
    return luaL_error(L, "%s: %s: %s", fn, dcb_status_name(st), dcb_last_error());
}

static dcb_net *check_net(lua_State *L, int idx, const char *fn) {
    lnet *u = luaL_testudata(L, idx, NET_MT);
    if (!u || !u->net) luaL_error(L, "%s: argument %d must be a network (dcb.net), got %s", fn, idx, luaL_typename(L, idx));
    return u->net;
}

static dcb_dataset *check_data(lua_State *L, int idx, const char *fn) {
    ldata *u = luaL_testudata(L, idx, DATA_MT);
    if (!u || !u->d) luaL_error(L, "%s: argument %d must be a dataset (dcb.dataset), got %s", fn, idx, luaL_typename(L, idx));
    return u->d;
}

static dcb_tensor *clone_or_die(lua_State *L, const dcb_tensor *t) {
    dcb_tensor *c = dcb_tensor_clone(t);
    if (!c) luaL_error(L, "out of memory");
    return c;
}

/* ------------------------------------------------------- op:backward */
/* op:backward(x, dy) -> dx, {weight name -> gradient}: a training forward on x, then the backward. */
int dcbh_op_backward(lua_State *L) {
    dcb_op *op = dcbh_check_op(L, 1, "op:backward");
    dcb_tensor *x = dcbh_check_tensor(L, 2, "op:backward"), *dy = dcbh_check_tensor(L, 3, "op:backward");
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    dcb_status st = dcb_op_plan(op, x->ndim, x->shape, &yn, ys, NULL);
    if (st != DCB_OK) return st_err(L, "op:backward", st);
    dcb_tensor *y = dcb_tensor_new(yn, ys), *dx = dcb_tensor_new(x->ndim, x->shape);
    const int nw = dcb_op_weight_count(op);
    dcb_tensor *dw[DCB_MAX_DIMS * 4] = {0};
    int ok = y && dx && nw <= (int)(sizeof dw / sizeof dw[0]);
    for (int i = 0; ok && i < nw; i++) {
        int64_t s[DCB_MAX_DIMS];
        const int nd = dcb_op_weight_shape(op, i, s);
        ok = (dw[i] = dcb_tensor_new(nd, s)) != NULL;
    }
    if (!ok) st = DCB_OUT_OF_MEMORY;
    if (st == DCB_OK) st = dcb_op_forward_train(op, x, y);
    if (st == DCB_OK) st = dcb_op_backward(op, dy, dx, dw);
    dcb_tensor_free(y);
    if (st != DCB_OK) {
        dcb_tensor_free(dx);
        for (int i = 0; i < nw; i++) dcb_tensor_free(dw[i]);
        return st == DCB_OUT_OF_MEMORY && !ok ? luaL_error(L, "op:backward: out of memory") : st_err(L, "op:backward", st);
    }
    dcbh_push_tensor(L, dx);
    lua_createtable(L, 0, nw);
    for (int i = 0; i < nw; i++) {
        dcbh_push_tensor(L, dw[i]);
        lua_setfield(L, -2, dcb_op_weight_name(op, i));
    }
    return 2;
}

int dcbh_op_set_backward(lua_State *L) {
    dcb_op *op = dcbh_check_op(L, 1, "op:set_backward");
    dcb_status st = dcb_op_set_backward(op, luaL_optstring(L, 2, NULL));
    if (st != DCB_OK) return st_err(L, "op:set_backward", st);
    lua_settop(L, 1);
    return 1;
}

int dcbh_op_backward_impl(lua_State *L) {
    dcb_op *op = dcbh_check_op(L, 1, "op:backward_impl");
    const char *b = dcb_op_get_backward(op);
    if (b) lua_pushstring(L, b);
    else lua_pushnil(L);
    return 1;
}

/* dcb.backward_impls(opname) -> {"naive", ...} */
static int l_backward_impls(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    const int n = dcb_bwd_count(name);
    if (n < 0) return luaL_error(L, "dcb.backward_impls: unknown operator '%s' (dcb.ops() lists them)", name);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, dcb_bwd_name(name, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ------------------------------------------------------------ networks */
static int l_cnet(lua_State *L) {
    const lua_Integer threads = luaL_optinteger(L, 1, 1);
    lnet *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->net = NULL;
    luaL_setmetatable(L, NET_MT);
    dcb_status st = dcb_net_create((int)threads, &u->net);
    if (st != DCB_OK) return st_err(L, "dcb.net", st);
    return 1;
}

static int net_gc(lua_State *L) {
    lnet *u = luaL_checkudata(L, 1, NET_MT);
    dcb_net_destroy(u->net);
    u->net = NULL;
    return 0;
}

/* cnet:add(name, op, impl|nil, bwd|nil, params, input) -> id (0-based) */
static int net_add(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:add");
    const char *name = luaL_checkstring(L, 2), *op = luaL_checkstring(L, 3);
    const char *impl = luaL_optstring(L, 4, NULL), *bwd = luaL_optstring(L, 5, NULL);
    dcb_hparam hp[64];
    const int nhp = dcbh_read_hparams(L, 6, "net:add", hp, 64, NULL);
    int id;
    dcb_status st = dcb_net_add(net, name, op, impl, bwd, hp, nhp, (int)luaL_checkinteger(L, 7), &id);
    if (st != DCB_OK) return st_err(L, "dcb.net", st);
    lua_pushinteger(L, id);
    return 1;
}

static int net_add_sum(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:add_sum");
    int id;
    dcb_status st = dcb_net_add_sum(net, luaL_checkstring(L, 2), (int)luaL_checkinteger(L, 3),
                                    (int)luaL_checkinteger(L, 4), &id);
    if (st != DCB_OK) return st_err(L, "dcb.net", st);
    lua_pushinteger(L, id);
    return 1;
}

static int net_add_rows(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:add_rows");
    int id;
    dcb_status st = dcb_net_add_rows(net, luaL_checkstring(L, 2), (int)luaL_checkinteger(L, 3), &id);
    if (st != DCB_OK) return st_err(L, "dcb.net", st);
    lua_pushinteger(L, id);
    return 1;
}

static int net_init(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:init");
    dcb_status st = dcb_net_init(net, (uint64_t)luaL_optinteger(L, 2, 1));
    if (st != DCB_OK) return st_err(L, "net:init", st);
    lua_settop(L, 1);
    return 1;
}

/* cnet:forward(x, train) -> a new tensor (the output, copied) */
static int net_forward(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:forward");
    dcb_tensor *x = dcbh_check_tensor(L, 2, "net:forward");
    const dcb_tensor *y;
    dcb_status st = dcb_net_forward(net, x, lua_toboolean(L, 3), &y);
    if (st != DCB_OK) return st_err(L, "net:forward", st);
    dcbh_push_tensor(L, clone_or_die(L, y));
    return 1;
}

/* cnet:backward(dy): gradients of every parameter (cnet:grads()) */
static int net_backward(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:backward");
    dcb_status st = dcb_net_backward(net, dcbh_check_tensor(L, 2, "net:backward"));
    if (st != DCB_OK) return st_err(L, "net:backward", st);
    lua_settop(L, 1);
    return 1;
}

static void push_cost(lua_State *L, const dcb_cost *c) {
    static const char *const names[] = {"macs", "flops", "params", "acts", "bytes", "dynamic_macs", "executed_macs",
                                        NULL};
    const double v[] = {c->macs, c->flops, c->params, c->acts, c->bytes, c->dynamic_macs, c->executed_macs};
    lua_newtable(L);
    dcbh_set_nums(L, names, v);
}

static int read_shape(lua_State *L, int idx, int64_t *s, const char *fn) {
    luaL_checktype(L, idx, LUA_TTABLE);
    const int n = (int)luaL_len(L, idx);
    if (n < 1 || n > DCB_MAX_DIMS) luaL_error(L, "%s: a shape has 1 to %d dimensions", fn, DCB_MAX_DIMS);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        s[i] = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    return n;
}

/* cnet:cost(shape) */
static int net_cost(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:cost");
    int64_t s[DCB_MAX_DIMS];
    const int n = read_shape(L, 2, s, "net:cost");
    dcb_cost c;
    dcb_status st = dcb_net_cost(net, n, s, &c);
    if (st != DCB_OK) return st_err(L, "net:cost", st);
    push_cost(L, &c);
    return 1;
}

/* cnet:params() -> {{name=, shape=, kind="weight"|"no_decay"|"buffer"}, ...} */
static int net_params(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:params");
    const int n = dcb_net_param_count(net);
    static const char *const kinds[] = {"weight", "no_decay", "buffer"};
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, dcb_net_param_name(net, i));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, kinds[dcb_net_param_kind(net, i)]);
        lua_setfield(L, -2, "kind");
        const dcb_tensor *t = dcb_net_param(net, i);
        int64_t sh[DCB_MAX_DIMS];
        int nd = 0;
        if (t) {
            nd = t->ndim;
            memcpy(sh, t->shape, sizeof sh);
        } else {
            const dcb_tensor *g = dcb_net_grad(net, i);
            nd = g->ndim;
            memcpy(sh, g->shape, sizeof sh);
        }
        lua_createtable(L, nd, 0);
        for (int d = 0; d < nd; d++) {
            lua_pushinteger(L, sh[d]);
            lua_rawseti(L, -2, d + 1);
        }
        lua_setfield(L, -2, "shape");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* cnet:param(i) / cnet:grad(i) (1-based) -> copies */
static int net_param_or_grad(lua_State *L, int grad) {
    dcb_net *net = check_net(L, 1, grad ? "net:grad" : "net:param");
    const lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || i > dcb_net_param_count(net))
        return luaL_error(L, "net:%s: index %d out of 1..%d", grad ? "grad" : "param", (int)i, dcb_net_param_count(net));
    const dcb_tensor *t = grad ? dcb_net_grad(net, (int)i - 1) : dcb_net_param(net, (int)i - 1);
    if (!t) return luaL_error(L, "net:param: %s is not set (init the net)", dcb_net_param_name(net, (int)i - 1));
    dcbh_push_tensor(L, clone_or_die(L, t));
    return 1;
}
static int net_param(lua_State *L) { return net_param_or_grad(L, 0); }
static int net_grad(lua_State *L) { return net_param_or_grad(L, 1); }

static int net_save(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:save");
    const char *dir = luaL_checkstring(L, 2);
    if (mkdir_p(dir) != 0) return luaL_error(L, "net:save: cannot create %s", dir);
    dcb_status st = dcb_net_save(net, dir);
    if (st != DCB_OK) return st_err(L, "net:save", st);
    lua_settop(L, 1);
    return 1;
}

static int net_load(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:load");
    dcb_status st = dcb_net_load(net, luaL_checkstring(L, 2));
    if (st != DCB_OK) return st_err(L, "net:load", st);
    lua_settop(L, 1);
    return 1;
}

/* cnet:nodes() -> {{name=, op=, a=, b=, impl=, backward=}, ...} (inputs 0-based, -1 the input) */
static int net_nodes(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:nodes");
    const int n = dcb_net_size(net);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        int a, b;
        const char *kind = dcb_net_node_inputs(net, i, &a, &b);
        lua_createtable(L, 0, 6);
        lua_pushstring(L, dcb_net_node_name(net, i));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, kind);
        lua_setfield(L, -2, "op");
        lua_pushinteger(L, a);
        lua_setfield(L, -2, "a");
        if (b >= -1) {
            lua_pushinteger(L, b);
            lua_setfield(L, -2, "b");
        }
        dcb_op *op = dcb_net_node_op(net, i);
        if (op) {
            lua_pushstring(L, dcb_op_get_impl(op));
            lua_setfield(L, -2, "impl");
            if (dcb_op_get_backward(op)) {
                lua_pushstring(L, dcb_op_get_backward(op));
                lua_setfield(L, -2, "backward");
            }
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* cnet:kernels(x) -> {node name -> generated kernels} for every node whose
 * operator generates per-sample kernels (an inference forward first). */
static int net_kernels(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:kernels");
    dcb_tensor *x = dcbh_check_tensor(L, 2, "net:kernels");
    const dcb_tensor *y;
    dcb_status st = dcb_net_forward(net, x, 0, &y);
    if (st != DCB_OK) return st_err(L, "net:kernels", st);
    lua_newtable(L);
    for (int i = 0; i < dcb_net_size(net); i++) {
        dcb_op *op = dcb_net_node_op(net, i);
        int a, b;
        dcb_net_node_inputs(net, i, &a, &b);
        if (!op) continue;
        dcb_tensor *k = NULL;
        const dcb_tensor *in = a < 0 ? x : dcb_net_activation(net, a);
        st = dcb_op_kernels(op, in, &k);
        if (st != DCB_OK) continue; /* a static operator: no kernels */
        dcbh_push_tensor(L, k);
        lua_setfield(L, -2, dcb_net_node_name(net, i));
    }
    return 1;
}

/* cnet:profile(reset) -> {{name=, op=, forward_s=, backward_s=, forwards=, backwards=}, ...}:
 * the seconds each node spent since the last reset (reset = true resets after reading). */
static int net_profile(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:profile");
    const int n = dcb_net_size(net);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        double f, b;
        int64_t nf, nb;
        dcb_net_node_times(net, i, &f, &b, &nf, &nb);
        int a, bb;
        lua_createtable(L, 0, 6);
        lua_pushstring(L, dcb_net_node_name(net, i));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, dcb_net_node_inputs(net, i, &a, &bb));
        lua_setfield(L, -2, "op");
        dcbh_set_num(L, "forward_s", f);
        dcbh_set_num(L, "backward_s", b);
        dcbh_set_num(L, "forwards", (double)nf);
        dcbh_set_num(L, "backwards", (double)nb);
        lua_rawseti(L, -2, i + 1);
    }
    if (lua_toboolean(L, 2)) dcb_net_reset_times(net);
    return 1;
}

/* cnet:op(i) (0-based) -> the node's implementation names and doc, for reports */
static int net_time_body(void *ctx, int64_t it) {
    void **c = ctx;
    const dcb_tensor *y;
    (void)it;
    return dcb_net_forward(c[0], c[1], (int)(intptr_t)c[2], &y) != DCB_OK;
}

/* cnet:time(x, {repetitions=, min_time=, train=}) -> {median=, min=, max=, cv=, images_per_s=} */
static int net_time(lua_State *L) {
    dcb_net *net = check_net(L, 1, "net:time");
    dcb_tensor *x = dcbh_check_tensor(L, 2, "net:time");
    const dcbh_timing d = dcbh_timing_for(dcbh_lua_options(L)->quick);
    dcbh_time_opts o = {.name = "net", .repetitions = d.repetitions, .min_time = d.min_time};
    int train = 0;
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "repetitions") != LUA_TNIL) o.repetitions = (int)luaL_checkinteger(L, -1);
        if (lua_getfield(L, 3, "min_time") != LUA_TNIL) o.min_time = luaL_checknumber(L, -1);
        if (lua_getfield(L, 3, "train") != LUA_TNIL) train = lua_toboolean(L, -1);
        lua_pop(L, 3);
    }
    const dcb_tensor *y;
    dcb_status st = dcb_net_forward(net, x, train, &y); /* warm-up, and the error if any */
    if (st != DCB_OK) return st_err(L, "net:time", st);
    void *ctx[3] = {net, x, (void *)(intptr_t)train};
    dcbh_time_stats ts;
    char err[256];
    if (dcbh_time(net_time_body, ctx, &o, &ts, err, sizeof err) != 0) return luaL_error(L, "net:time: %s", err);
    lua_newtable(L);
    dcbh_set_num(L, "median", ts.median);
    dcbh_set_num(L, "min", ts.min);
    dcbh_set_num(L, "max", ts.max);
    dcbh_set_num(L, "cv", ts.cv);
    dcbh_set_num(L, "repetitions", ts.repetitions);
    lua_pushnumber(L, (double)x->shape[0] / ts.median);
    lua_setfield(L, -2, "images_per_s");
    return 1;
}

/* ------------------------------------------------------------ datasets */
static void push_data(lua_State *L, dcb_dataset *d) {
    ldata *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->d = d;
    luaL_setmetatable(L, DATA_MT);
}

/* dcb.dataset(name, split) or dcb.dataset{images=, labels=} -> dataset */
static int l_dataset(lua_State *L) {
    dcb_dataset *d = NULL;
    dcb_status st;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "images");
        lua_getfield(L, 1, "labels");
        const char *im = lua_tostring(L, -2), *lb = lua_tostring(L, -1);
        if (!im || !lb) return luaL_error(L, "dcb.dataset: give {images = path, labels = path} or a name");
        st = dcb_dataset_load_idx(im, lb, &d);
    } else {
        const char *name = luaL_checkstring(L, 1), *split = luaL_optstring(L, 2, "train");
        if (strcmp(split, "train") && strcmp(split, "test"))
            return luaL_error(L, "dcb.dataset: split must be \"train\" or \"test\", got \"%s\"", split);
        st = dcb_dataset_load(name, !strcmp(split, "train"), &d);
    }
    if (st != DCB_OK) return st_err(L, "dcb.dataset", st);
    push_data(L, d);
    return 1;
}

static int data_gc(lua_State *L) {
    ldata *u = luaL_checkudata(L, 1, DATA_MT);
    dcb_dataset_free(u->d);
    u->d = NULL;
    return 0;
}

static int data_info(lua_State *L) {
    dcb_dataset *d = check_data(L, 1, "dataset:info");
    lua_newtable(L);
    dcbh_set_num(L, "n", (double)d->n);
    dcbh_set_num(L, "c", d->c);
    dcbh_set_num(L, "h", d->h);
    dcbh_set_num(L, "w", d->w);
    dcbh_set_num(L, "classes", d->classes);
    return 1;
}

static int data_subset(lua_State *L) {
    dcb_dataset *d = check_data(L, 1, "dataset:subset"), *s = NULL;
    const lua_Integer n = luaL_checkinteger(L, 2);
    dcb_status st = dcb_dataset_subset(d, n, (uint64_t)luaL_optinteger(L, 3, 1), &s);
    if (st != DCB_OK) return st_err(L, "dataset:subset", st);
    push_data(L, s);
    return 1;
}

/* dataset:stats() -> mean, std (tables per channel) */
static int data_stats(lua_State *L) {
    dcb_dataset *d = check_data(L, 1, "dataset:stats");
    float mean[64], sd[64];
    if (d->c > 64) return luaL_error(L, "dataset:stats: %d channels", d->c);
    dcb_dataset_stats(d, mean, sd);
    for (int k = 0; k < 2; k++) {
        lua_createtable(L, d->c, 0);
        for (int c = 0; c < d->c; c++) {
            lua_pushnumber(L, k ? sd[c] : mean[c]);
            lua_rawseti(L, -2, c + 1);
        }
    }
    return 2;
}

static int data_normalize(lua_State *L) {
    dcb_dataset *d = check_data(L, 1, "dataset:normalize");
    float mean[64], sd[64];
    if (d->c > 64) return luaL_error(L, "dataset:normalize: %d channels", d->c);
    for (int k = 0; k < 2; k++) {
        luaL_checktype(L, 2 + k, LUA_TTABLE);
        for (int c = 0; c < d->c; c++) {
            lua_geti(L, 2 + k, c + 1);
            (k ? sd : mean)[c] = (float)luaL_checknumber(L, -1);
            lua_pop(L, 1);
        }
    }
    for (int c = 0; c < d->c; c++)
        if (!(sd[c] > 0)) return luaL_error(L, "dataset:normalize: std[%d] = %g must be > 0", c + 1, sd[c]);
    dcb_dataset_normalize(d, mean, sd);
    lua_settop(L, 1);
    return 1;
}

/* dataset:batch(start, count) -> x tensor, labels table (examples start+1 .. in the stored order) */
static int data_batch(lua_State *L) {
    dcb_dataset *d = check_data(L, 1, "dataset:batch");
    const lua_Integer start = luaL_checkinteger(L, 2) - 1, count = luaL_checkinteger(L, 3);
    if (start < 0 || start >= d->n || count < 1)
        return luaL_error(L, "dataset:batch: examples %d.. of %d", (int)start + 1, (int)d->n);
    const int64_t b = count < d->n - start ? count : d->n - start;
    int64_t *perm = malloc(sizeof *perm * (size_t)d->n);
    int32_t *y = malloc(sizeof *y * (size_t)b);
    dcb_tensor *x = dcb_tensor_new4(b, d->c, d->h, d->w);
    if (!perm || !y || !x) {
        free(perm);
        free(y);
        dcb_tensor_free(x);
        return luaL_error(L, "dataset:batch: out of memory");
    }
    for (int64_t i = 0; i < d->n; i++) perm[i] = i;
    dcb_dataset_batch(d, perm, start, (int)b, NULL, x->data, y);
    dcbh_push_tensor(L, x);
    lua_createtable(L, (int)b, 0);
    for (int64_t i = 0; i < b; i++) {
        lua_pushinteger(L, y[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    free(perm);
    free(y);
    return 2;
}

/* ------------------------------------------------------------ training */
typedef struct train_cb {
    lua_State *L;
    int fn;     /* stack index of the progress function, 0: none */
    int error;  /* the function raised: its message is on the stack */
} train_cb;

static void push_epoch(lua_State *L, const dcb_epoch_stats *e) {
    static const char *const names[] = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                                        "images_per_s", "grad_norm", "lr", NULL};
    const double v[] = {e->epoch, e->train_loss, e->train_acc, e->test_loss, e->test_acc, e->seconds,
                        e->images_per_s, e->grad_norm, e->lr};
    lua_newtable(L);
    dcbh_set_nums(L, names, v);
}

static int on_progress(void *ud, const dcb_train_progress *p) {
    train_cb *c = ud;
    lua_State *L = c->L;
    if (!c->fn) return 0;
    lua_pushvalue(L, c->fn);
    static const char *const names[] = {"epoch", "epochs", "batch", "batches", "step", "loss", "acc",
                                        "images_per_s", "eta_s", "lr", "grad_norm", NULL};
    const double v[] = {p->epoch, p->epochs, (double)p->batch, (double)p->batches, (double)p->step, p->loss, p->acc,
                        p->images_per_s, p->eta_s, p->lr, p->grad_norm};
    lua_newtable(L);
    dcbh_set_nums(L, names, v);
    if (p->epoch_done) {
        push_epoch(L, p->epoch_done);
        lua_setfield(L, -2, "epoch_done");
    }
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        c->error = 1;
        return 1;
    }
    const int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

static double opt_num(lua_State *L, int t, const char *k, double def) {
    double v = def;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        if (lua_type(L, -1) == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
        else if (!lua_isnumber(L, -1)) luaL_error(L, "dcb.train: %s must be a number, got %s", k, luaL_typename(L, -1));
        else v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static const char *opt_str(lua_State *L, int t, const char *k, const char *def) {
    const char *v = def;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "dcb.train: %s must be a string, got %s", k, luaL_typename(L, -1));
        v = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays alive in the config table */
    return v;
}

/* dcb.train_raw(cnet, train, test|nil, cfg, progress|nil) -> result */
static int l_train_raw(lua_State *L) {
    dcb_net *net = check_net(L, 1, "dcb.train");
    dcb_dataset *tr = check_data(L, 2, "dcb.train"), *te = lua_isnil(L, 3) ? NULL : check_data(L, 3, "dcb.train");
    luaL_checktype(L, 4, LUA_TTABLE);
    dcb_train_config c = dcb_train_defaults();
    c.epochs = (int)opt_num(L, 4, "epochs", c.epochs);
    c.batch = (int)opt_num(L, 4, "batch", c.batch);
    c.threads = (int)opt_num(L, 4, "threads", c.threads);
    c.seed = (uint64_t)opt_num(L, 4, "seed", (double)c.seed);
    c.optimizer = opt_str(L, 4, "optimizer", c.optimizer);
    c.lr = opt_num(L, 4, "lr", c.lr);
    c.momentum = opt_num(L, 4, "momentum", c.momentum);
    c.weight_decay = opt_num(L, 4, "weight_decay", c.weight_decay);
    c.nesterov = (int)opt_num(L, 4, "nesterov", c.nesterov);
    c.no_decay_bn_bias = (int)opt_num(L, 4, "no_decay_bn_bias", c.no_decay_bn_bias);
    c.beta1 = opt_num(L, 4, "beta1", c.beta1);
    c.beta2 = opt_num(L, 4, "beta2", c.beta2);
    c.adam_eps = opt_num(L, 4, "eps", c.adam_eps);
    c.schedule = opt_str(L, 4, "schedule", c.schedule);
    c.pct_start = opt_num(L, 4, "pct_start", c.pct_start);
    c.div_factor = opt_num(L, 4, "div_factor", c.div_factor);
    c.final_div_factor = opt_num(L, 4, "final_div_factor", c.final_div_factor);
    c.step_epochs = (int)opt_num(L, 4, "step_epochs", c.step_epochs);
    c.gamma = opt_num(L, 4, "gamma", c.gamma);
    c.label_smoothing = opt_num(L, 4, "label_smoothing", c.label_smoothing);
    c.flip = (int)opt_num(L, 4, "flip", c.flip);
    c.crop_pad = (int)opt_num(L, 4, "crop_pad", c.crop_pad);
    c.tau_start = opt_num(L, 4, "tau_start", c.tau_start);
    c.tau_end = opt_num(L, 4, "tau_end", c.tau_end);
    c.tau_epochs = opt_num(L, 4, "tau_epochs", c.tau_epochs);
    c.checkpoint = opt_str(L, 4, "checkpoint", NULL);
    c.checkpoint_every = (int64_t)opt_num(L, 4, "checkpoint_every", 0);
    c.max_steps = (int64_t)opt_num(L, 4, "max_steps", 0);
    c.eval_batch = (int)opt_num(L, 4, "eval_batch", c.eval_batch);
    if (c.checkpoint && mkdir_p(c.checkpoint) != 0) return luaL_error(L, "dcb.train: cannot create %s", c.checkpoint);
    train_cb cb = {L, lua_isfunction(L, 5) ? 5 : 0, 0};
    dcb_train_result r;
    dcb_status st = dcb_train(net, tr, te, &c, on_progress, &cb, &r);
    if (cb.error) {
        dcb_train_result_free(&r);
        return lua_error(L);
    }
    if (st != DCB_OK) return st_err(L, "dcb.train", st);
    lua_newtable(L);
    dcbh_set_num(L, "test_acc", r.test_acc);
    dcbh_set_num(L, "test_loss", r.test_loss);
    dcbh_set_num(L, "steps", (double)r.steps);
    lua_pushinteger(L, r.resumed_step);
    lua_setfield(L, -2, "resumed_step");
    lua_createtable(L, r.nepochs, 0);
    for (int i = 0; i < r.nepochs; i++) {
        push_epoch(L, &r.epochs[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "epochs");
    dcb_train_result_free(&r);
    return 1;
}

/* dcb.softmax_ce(logits, labels, smoothing) -> mean loss, correct, dlogits */
static int l_softmax_ce(lua_State *L) {
    dcb_tensor *z = dcbh_check_tensor(L, 1, "dcb.softmax_ce");
    luaL_checktype(L, 2, LUA_TTABLE);
    const int64_t N = z->shape[0];
    if ((int64_t)luaL_len(L, 2) != N) return luaL_error(L, "dcb.softmax_ce: %d labels for %d rows", (int)luaL_len(L, 2), (int)N);
    int32_t *y = malloc(sizeof *y * (size_t)(N ? N : 1));
    const int64_t K = N ? z->size / N : 0;
    for (int64_t i = 0; i < N; i++) {
        lua_geti(L, 2, i + 1);
        const lua_Integer v = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (v < 0 || v >= K) {
            free(y);
            return luaL_error(L, "dcb.softmax_ce: label %d of row %d is outside 0..%d", (int)v, (int)i + 1, (int)K - 1);
        }
        y[i] = (int32_t)v;
    }
    dcb_tensor *d = dcb_tensor_new(z->ndim, z->shape);
    int64_t hits = 0;
    const double loss = dcb_softmax_ce(z, y, luaL_optnumber(L, 3, 0), d, &hits);
    free(y);
    lua_pushnumber(L, loss);
    lua_pushinteger(L, hits);
    dcbh_push_tensor(L, d);
    return 3;
}

/* dcb.now() -> monotonic seconds (the harness's one clock), for timing loops in scripts */
static int l_now(lua_State *L) {
    lua_pushnumber(L, dcbh_now());
    return 1;
}

void dcbh_lua_net_register(lua_State *L) {
    static const luaL_Reg net_methods[] = {
        {"add", net_add},       {"add_sum", net_add_sum}, {"add_rows", net_add_rows}, {"init", net_init},
        {"forward", net_forward}, {"backward", net_backward}, {"cost", net_cost},   {"params", net_params},
        {"param", net_param},   {"grad", net_grad},       {"save", net_save},         {"load", net_load},
        {"nodes", net_nodes},   {"kernels", net_kernels}, {"time", net_time},         {"profile", net_profile},
        {NULL, NULL}};
    luaL_newmetatable(L, NET_MT);
    lua_pushcfunction(L, net_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, net_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    static const luaL_Reg data_methods[] = {{"info", data_info},         {"subset", data_subset},
                                            {"stats", data_stats},       {"normalize", data_normalize},
                                            {"batch", data_batch},       {NULL, NULL}};
    luaL_newmetatable(L, DATA_MT);
    lua_pushcfunction(L, data_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, data_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    /* the module table is at the top */
    static const luaL_Reg fns[] = {{"cnet", l_cnet},
                                   {"dataset", l_dataset},
                                   {"train_raw", l_train_raw},
                                   {"softmax_ce", l_softmax_ce},
                                   {"backward_impls", l_backward_impls},
                                   {"now", l_now},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
