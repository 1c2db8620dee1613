/* The generic operator lifecycle and the registry. Operators describe
 * themselves with a dcb_op_info (registry.h lists them); nothing here knows a
 * particular operator. */
#define _POSIX_C_SOURCE 200809L
#include "dcb_internal.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- registry */
#define DCB_DECLARE(opname) extern const dcb_op_info dcb_##opname##_info;
DCB_OPERATORS(DCB_DECLARE)
#undef DCB_DECLARE

#define DCB_ENTRY(opname) &dcb_##opname##_info,
static const dcb_op_info *const registry[] = {DCB_OPERATORS(DCB_ENTRY)};
#undef DCB_ENTRY
#define NOPS ((int)(sizeof registry / sizeof registry[0]))

const dcb_op_info *dcb_find_op_info(const char *name);
static const dcb_op_info *find_op(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < NOPS; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}
const dcb_op_info *dcb_find_op_info(const char *name) { return find_op(name); }

int dcb_op_count(void) { return NOPS; }
const char *dcb_op_name(int i) { return i >= 0 && i < NOPS ? registry[i]->name : NULL; }

const char *dcb_op_doc(const char *op) {
    const dcb_op_info *info = find_op(op);
    return info ? info->doc : NULL;
}

int dcb_impl_count(const char *op) {
    const dcb_op_info *info = find_op(op);
    return info ? info->nimpls : -1;
}

const char *dcb_impl_name(const char *op, int i) {
    const dcb_op_info *info = find_op(op);
    if (!info || i < 0 || i >= info->nimpls) return NULL;
    return info->impls[i]->name;
}

const dcb_param_spec *dcb_op_params(const char *op, int *count) {
    const dcb_op_info *info = find_op(op);
    if (count) *count = info ? info->nparams : 0;
    return info ? info->params : NULL;
}

int dcb_op_input_layout(const char *op) {
    const dcb_op_info *info = find_op(op);
    return info ? (int)info->layout : -1;
}

int dcb_op_is_shape_key(const char *op, const char *key) {
    const dcb_op_info *info = find_op(op);
    if (!info || !key) return 0;
    if (!strcmp(key, "N")) return 1;
    if (info->layout == DCB_INPUT_SEQUENCE) return !strcmp(key, "T");
    return (!strcmp(key, "H") || !strcmp(key, "W")) && !info->hw_are_params;
}

int dcb_op_input_shape(const dcb_op *op, int64_t N, int64_t H, int64_t W, int64_t T, int64_t shape[DCB_MAX_DIMS]) {
    const dcb_op_info *info = op->info;
    const double c = info->channels_param ? dcb_pv(op, info->channels_param) : 1;
    const int64_t C = c >= 1 ? (int64_t)c : 1;
    if (info->layout == DCB_INPUT_SEQUENCE) {
        shape[0] = N, shape[1] = T, shape[2] = C;
        return 3;
    }
    if (info->hw_are_params) H = (int64_t)dcb_pv(op, "H"), W = (int64_t)dcb_pv(op, "W");
    shape[0] = N, shape[1] = C, shape[2] = H, shape[3] = W;
    return 4;
}

/* "a, b, c" of every registered op (or impl of one op). */
static void list_names(char *buf, size_t len, const dcb_op_info *info) {
    size_t o = 0;
    buf[0] = 0;
    int n = info ? info->nimpls : NOPS;
    for (int i = 0; i < n && o < len; i++) {
        const char *nm = info ? info->impls[i]->name : registry[i]->name;
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", nm);
    }
}

/* ------------------------------------------------------ parameter helpers */
int dcb_param_index(const dcb_op_info *info, const char *name) {
    for (int i = 0; i < info->nparams; i++)
        if (strcmp(info->params[i].name, name) == 0) return i;
    return -1;
}

double dcb_pv(const dcb_op *op, const char *name) {
    int i = dcb_param_index(op->info, name);
    return i < 0 ? NAN : op->pv[i];
}

const char *dcb_ps(const dcb_op *op, const char *name) {
    int i = dcb_param_index(op->info, name);
    return i < 0 ? NULL : op->ps[i];
}

void dcb_set_pv(dcb_op *op, const char *name, double v) {
    int i = dcb_param_index(op->info, name);
    if (i >= 0) op->pv[i] = v;
}

const char *dcb_num_str(double v, char *buf, size_t len) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e18)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%g", v);
    return buf;
}

dcb_status dcb_get_int(const dcb_op *op, const char *name, long lo, int *out) {
    double v = dcb_pv(op, name);
    char b[40];
    if (isnan(v) || v != floor(v) || v < (double)lo || v > 1e9)
        return dcb_fail(DCB_INVALID_PARAM, "%s: %s=%s is invalid (need an integer from %ld to 1000000000)",
                        op->info->name, name, dcb_num_str(v, b, sizeof b), lo);
    *out = (int)v;
    return DCB_OK;
}

dcb_status dcb_get_required_int(const dcb_op *op, const char *name, long lo, int *out) {
    if (isnan(dcb_pv(op, name))) return dcb_fail(DCB_INVALID_PARAM, "%s: %s is required", op->info->name, name);
    return dcb_get_int(op, name, lo, out);
}

double dcb_op_macs(const dcb_op *op, const int64_t *x_shape) {
    dcb_cost c;
    memset(&c, 0, sizeof c);
    op->info->cost(op, x_shape, &c);
    return c.macs;
}

const dcb_tensor *dcb_w(const dcb_op *op, const char *name) {
    for (int i = 0; i < op->nweights; i++)
        if (strcmp(op->wspec[i].name, name) == 0) return op->w[i];
    return NULL;
}

/* --------------------------------------------------------------- lifecycle */
static void release_state(dcb_op *op) {
    if (op->prepared && op->impl->release) op->impl->release(op);
    if (op->autos) dcb_auto_stale(op->autos); /* the weights may be new */
    op->state = NULL;
    op->prepared = 0;
    op->planned = 0;  /* the workspace and an impl's plan may depend on the state */
}

/* Forgets the last training forward (its saved state and workspace stay
 * allocated only until then). */
static void drop_train(dcb_op *op) {
    if (op->train_saved && op->bwd && op->bwd->free_saved) op->bwd->free_saved(op->train_saved);
    op->train_saved = NULL;
    op->trained = 0;
    op->train_x = op->train_y = NULL;
}

void dcb_op_destroy(dcb_op *op) {
    if (!op) return;
    drop_train(op);
    dcb_aligned_free(op->train_ws);
    release_state(op);
    for (int i = 0; i < DCB_MAX_PARAMS; i++) free(op->ps[i]);
    for (int i = 0; i < op->nweights; i++) dcb_tensor_free(op->w[i]);
    dcb_auto_free(op->autos);
    free(op->hp);
    free(op);
}

/* The last backward implementation that runs op's hyperparameters (NULL:
 * none does, or the op has none). Checks must not leave a message behind
 * that a later success would show, so the thread's message is kept. */
/* ----------------------------------------------------------- size guards
 * What an operator may hold (DCB_MAX_TENSOR_ELEMS per tensor, dcb_max_bytes()
 * in all), checked before any engine does arithmetic on a shape: a sweep to
 * extremes gets an invalid_* status that names the sizes and the
 * hyperparameters behind them, never an overflow or a 16 GB allocation. */

/* The integer hyperparameters worth naming: the ones equal to one of dims
 * (a weight's shape), or, without dims, every one of 65536 or more. */
static void suspects(const dcb_op *op, const int64_t *dims, int ndims, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < op->info->nparams && o + 1 < len; i++) {
        const double v = op->pv[i];
        if (op->info->params[i].type == DCB_PT_STRING || !isfinite(v) || v < 2) continue;
        int hit = !dims && v >= 1000;
        for (int d = 0; dims && d < ndims; d++) hit = hit || ((double)dims[d] == v && v >= 1000);
        if (!hit) continue;
        char b[40];
        o += (size_t)snprintf(buf + o, len - o, "%s%s=%s", o ? ", " : " (", op->info->params[i].name,
                              dcb_num_str(v, b, sizeof b));
    }
    if (o && o + 1 < len) snprintf(buf + o, len - o, ")");
}

/* The element count of shape, or -1 where it passes DCB_MAX_TENSOR_ELEMS or a
 * dim is negative or beyond 2^31-1. */
static int64_t elems_or_neg(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || shape[d] > INT32_MAX || __builtin_mul_overflow(n, shape[d], &n) ||
            n > DCB_MAX_TENSOR_ELEMS)
            return -1;
    }
    return n;
}

static double elems_double(int ndim, const int64_t *shape) {
    double n = 1;
    for (int d = 0; d < ndim; d++) n *= (double)shape[d];
    return n;
}

/* "the output (1, 4, 131076, 131076) holds 6.9e+10 elements (256.0 GiB): at
 * most 2^30 elements and 2^31-1 per dim (pad=65535)" */
static dcb_status too_big(const dcb_op *op, dcb_status st, const char *what, int ndim, const int64_t *shape,
                          const char *who) {
    char s[160], b[32];
    const double n = elems_double(ndim, shape);
    return dcb_fail(st, "%s: %s %s holds %.3g elements (%s): at most 2^30 elements and 2^31-1 per dim%s",
                    op->info->name, what, dcb_shape_str(ndim, shape, s, sizeof s), n,
                    dcb_bytes_str(4 * n, b, sizeof b), who);
}

static dcb_status check_weight_sizes(dcb_op *op) {
    double bytes = 0;
    int big = -1;
    for (int i = 0; i < op->nweights; i++) {
        const dcb_weight_spec *w = &op->wspec[i];
        const int64_t n = elems_or_neg(w->ndim, w->shape);
        if (n < 0) {
            char who[512], what[64];
            suspects(op, w->shape, w->ndim, who, sizeof who);
            snprintf(what, sizeof what, "weight %s", w->name);
            return too_big(op, DCB_INVALID_PARAM, what, w->ndim, w->shape, who);
        }
        bytes += 4.0 * (double)n;
        if (big < 0 || n > elems_or_neg(op->wspec[big].ndim, op->wspec[big].shape)) big = i;
    }
    if (bytes > (double)dcb_max_bytes()) {
        const dcb_weight_spec *w = &op->wspec[big];
        char s[160], who[512], b1[32], b2[32];
        suspects(op, w->shape, w->ndim, who, sizeof who);
        return dcb_fail(DCB_INVALID_PARAM, "%s: the weights need %s (%s %s the largest), above the limit of %s "
                        "(DCB_MAX_BYTES)%s", op->info->name, dcb_bytes_str(bytes, b1, sizeof b1), w->name,
                        dcb_shape_str(w->ndim, w->shape, s, sizeof s), dcb_bytes_str((double)dcb_max_bytes(), b2,
                        sizeof b2), who);
    }
    return DCB_OK;
}

static double weight_bytes(const dcb_op *op) {
    double b = 0;
    for (int i = 0; i < op->nweights; i++) b += 4.0 * (double)elems_or_neg(op->wspec[i].ndim, op->wspec[i].shape);
    return b;
}

/* The input, then the output the operator computes for it. */
static dcb_status checked_out_shape(const dcb_op *op, int ndim, const int64_t *x, int *yn, int64_t *ys) {
    if (ndim < 0 || ndim > DCB_MAX_DIMS)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input has %d dimensions", op->info->name, ndim);
    char who[512];
    suspects(op, NULL, 0, who, sizeof who);
    if (elems_or_neg(ndim, x) < 0) return too_big(op, DCB_INVALID_SHAPE, "the input", ndim, x, who);
    dcb_status st = op->info->out_shape(op, ndim, x, yn, ys);
    if (st != DCB_OK) return st;
    for (int d = 0; d < *yn; d++)
        if (ys[d] < 1) {
            char s[160];
            return dcb_fail(DCB_INVALID_SHAPE, "%s: the output %s would be empty%s", op->info->name,
                            dcb_shape_str(*yn, ys, s, sizeof s), who);
        }
    if (elems_or_neg(*yn, ys) < 0) return too_big(op, DCB_INVALID_SHAPE, "the output", *yn, ys, who);
    return DCB_OK;
}

static const dcb_bwd_vt *default_bwd(dcb_op *op) {
    for (int i = op->info->nbwds - 1; i >= 0; i--) {
        const dcb_bwd_vt *b = op->info->bwds[i];
        if (!b->check || b->check(op) == DCB_OK) return b;
    }
    return NULL;
}

dcb_status dcb_op_create(const char *opname, const char *impl, const dcb_hparam *hp,
                         int nhp, dcb_op **out) {
    char names[1024];
    if (!out) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_create: out is NULL");
    *out = NULL;
    const dcb_op_info *info = find_op(opname);
    if (!info) {
        list_names(names, sizeof names, NULL);
        return dcb_fail(DCB_UNKNOWN_OP, "unknown operator '%s' (valid: %s)",
                        opname ? opname : "(null)", names);
    }
    const dcb_impl_vt *vt = NULL;
    if (!impl) impl = info->impls[0]->name;
    for (int i = 0; i < info->nimpls; i++)
        if (strcmp(info->impls[i]->name, impl) == 0) vt = info->impls[i];
    if (!vt && !strcmp(impl, "auto") && dcb_impl_has_auto(info->name)) vt = &dcb_auto_impl;
    if (!vt) {
        list_names(names, sizeof names, info);
        return dcb_fail(DCB_UNKNOWN_IMPL, "%s: unknown implementation '%s' (valid: %s)",
                        info->name, impl, names);
    }
    const dcb_engine_desc *e = vt->engine;
    if (e && (!e->run || !e->dyn_run ||
              (e->bank_supported && (!e->bank_floats || !e->bank_pack || !e->bank_workspace || !e->bank_run))))
        return dcb_fail(DCB_UNSUPPORTED_PARAM,
                        "%s/%s: engine '%s' is incomplete (it needs run and dyn_run, and all bank_* hooks or none)",
                        info->name, vt->name, e->name);
    dcb_op *op = calloc(1, sizeof *op);
    if (!op) return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory", info->name);
    op->info = info;
    op->impl = vt;
    op->threads = dcb_default_threads();
    for (int i = 0; i < info->nparams; i++) {
        op->pv[i] = info->params[i].derived ? NAN : info->params[i].def;
        if (info->params[i].type == DCB_PT_STRING && info->params[i].def_str)
            op->ps[i] = strdup(info->params[i].def_str);
    }
    dcb_status st = DCB_OK;
    for (int k = 0; k < nhp && st == DCB_OK; k++) {
        const dcb_hparam *h = &hp[k];
        if (!h->name) {
            st = dcb_fail(DCB_INVALID_ARGUMENT, "%s: hyperparameter %d has no name", info->name, k);
            break;
        }
        if (strcmp(h->name, "threads") == 0) {
            char b[40];
            if (h->str || h->num < 1 || h->num > 1024 || h->num != floor(h->num))
                st = dcb_fail(DCB_INVALID_PARAM, "%s: threads=%s is invalid (need an integer from 1 to 1024)",
                              info->name, h->str ? h->str : dcb_num_str(h->num, b, sizeof b));
            else
                op->threads = (int)h->num;
            continue;
        }
        int i = dcb_param_index(info, h->name);
        if (i < 0) {
            size_t o = 0;
            names[0] = 0;
            for (int j = 0; j < info->nparams && o < sizeof names; j++)
                o += (size_t)snprintf(names + o, sizeof names - o, "%s, ", info->params[j].name);
            st = dcb_fail(DCB_UNKNOWN_PARAM, "%s: unknown hyperparameter '%s' (valid: %sthreads)",
                          info->name, h->name, names);
            break;
        }
        const dcb_param_spec *ps = &info->params[i];
        if (ps->type == DCB_PT_STRING) {
            if (!h->str) {
                char b[40];
                st = dcb_fail(DCB_INVALID_PARAM, "%s: %s needs a string, got %s", info->name,
                              h->name, dcb_num_str(h->num, b, sizeof b));
                break;
            }
            free(op->ps[i]);
            op->ps[i] = strdup(h->str);
        } else {
            if (h->str) {
                st = dcb_fail(DCB_INVALID_PARAM, "%s: %s needs a number, got '%s'", info->name,
                              h->name, h->str);
                break;
            }
            char b[40];
            if (!isfinite(h->num)) {
                st = dcb_fail(DCB_INVALID_PARAM, "%s: %s=%s is not finite", info->name,
                              h->name, dcb_num_str(h->num, b, sizeof b));
                break;
            }
            if (ps->type == DCB_PT_BOOL && h->num != 0 && h->num != 1) {
                st = dcb_fail(DCB_INVALID_PARAM, "%s: %s=%s must be 0 or 1 (false/true)",
                              info->name, h->name, dcb_num_str(h->num, b, sizeof b));
                break;
            }
            op->pv[i] = h->num;
        }
    }
    if (st == DCB_OK) st = info->validate(op);
    if (st == DCB_OK && vt == &dcb_auto_impl) st = dcb_auto_init(op, hp, nhp);
    if (st == DCB_OK) {
        op->nweights = info->weights(op, op->wspec);
        st = check_weight_sizes(op);
        if (st == DCB_OK && vt->check) st = vt->check(op);
    }
    if (st == DCB_OK) op->bwd = default_bwd(op);
    if (st != DCB_OK) {
        dcb_op_destroy(op);
        return st;
    }
    *out = op;
    return DCB_OK;
}

const char *dcb_op_get_name(const dcb_op *op) { return op->info->name; }
const char *dcb_op_get_impl(const dcb_op *op) { return op->impl->name; }
const char *dcb_op_get_engine(const dcb_op *op) { return op->impl->engine ? op->impl->engine->name : NULL; }
const char *dcb_op_get_strategy(const dcb_op *op) { return op->impl->strategy; }
const char *dcb_op_get_impl_doc(const dcb_op *op) {
    return op->impl->doc ? op->impl->doc : op->impl->engine ? op->impl->engine->doc : "";
}
double dcb_op_tolerance(const dcb_op *op) {
    if (op->autos) return dcb_auto_tolerance(op);
    const double e = op->impl->engine ? op->impl->engine->tol : 0;
    return op->impl->tol > e ? op->impl->tol : e;
}
uint64_t dcb_op_plan_count(const dcb_op *op) { return op->plan_count; }

const char *dcb_op_who(const dcb_op *op, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", op->info->name, op->impl->name);
    return buf;
}
int dcb_op_threads(const dcb_op *op) { return op->threads; }

/* What an op runs on when its hyperparameters name no threads. */
static int g_default_threads = 1;
dcb_status dcb_set_default_threads(int n) {
    if (n < 1 || n > 1024)
        return dcb_fail(DCB_INVALID_PARAM, "default threads=%d is invalid (need an integer from 1 to 1024)", n);
    __atomic_store_n(&g_default_threads, n, __ATOMIC_RELAXED);
    return DCB_OK;
}
int dcb_default_threads(void) { return __atomic_load_n(&g_default_threads, __ATOMIC_RELAXED); }

void *dcb_new_hp(dcb_op *op, size_t bytes) {
    op->hp = calloc(1, bytes);
    if (!op->hp) dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory", op->info->name);
    return op->hp;
}

double dcb_op_get_param(const dcb_op *op, const char *name) {
    if (strcmp(name, "threads") == 0) return op->threads;
    return dcb_pv(op, name);
}

int dcb_op_weight_count(const dcb_op *op) { return op->nweights; }

const char *dcb_op_weight_name(const dcb_op *op, int i) {
    return i >= 0 && i < op->nweights ? op->wspec[i].name : NULL;
}

int dcb_op_weight_shape(const dcb_op *op, int i, int64_t shape[DCB_MAX_DIMS]) {
    if (i < 0 || i >= op->nweights) return -1;
    memcpy(shape, op->wspec[i].shape, sizeof(int64_t) * DCB_MAX_DIMS);
    return op->wspec[i].ndim;
}

static int weight_index(const dcb_op *op, const char *name) {
    for (int i = 0; i < op->nweights; i++)
        if (strcmp(op->wspec[i].name, name) == 0) return i;
    return -1;
}

dcb_status dcb_op_set_weight(dcb_op *op, const char *name, const dcb_tensor *t) {
    if (!op || !name || !t) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_set_weight: NULL argument");
    int i = weight_index(op, name);
    if (i < 0) {
        char names[512];
        size_t o = 0;
        names[0] = 0;
        for (int j = 0; j < op->nweights && o < sizeof names; j++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", j ? ", " : "", op->wspec[j].name);
        return dcb_fail(DCB_INVALID_WEIGHT, "%s: unknown weight '%s' (weights: %s)", op->info->name,
                        name, names);
    }
    const dcb_weight_spec *s = &op->wspec[i];
    if (!dcb_shape_equal(t, s->ndim, s->shape)) {
        char e[128], g[128];
        dcb_shape_str(s->ndim, s->shape, e, sizeof e);
        dcb_shape_str(t->ndim, t->shape, g, sizeof g);
        return dcb_fail(DCB_INVALID_WEIGHT, "%s: weight '%s' has shape %s, expected %s",
                        op->info->name, name, g, e);
    }
    dcb_tensor *c = dcb_tensor_clone(t);
    if (!c) return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory copying weight '%s'", op->info->name, name);
    dcb_tensor_free(op->w[i]);
    op->w[i] = c;
    release_state(op);
    drop_train(op);
    return DCB_OK;
}

const dcb_tensor *dcb_op_get_weight(const dcb_op *op, const char *name) {
    int i = weight_index(op, name);
    return i < 0 ? NULL : op->w[i];
}

dcb_status dcb_op_init_weights(dcb_op *op, uint64_t seed) {
    for (int i = 0; i < op->nweights; i++) {
        const dcb_weight_spec *s = &op->wspec[i];
        dcb_tensor *t = dcb_tensor_new(s->ndim, s->shape);
        if (!t) return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for weight '%s'", op->info->name, s->name);
        double fan_in = s->fan_in;
        if (fan_in <= 0) {  /* PyTorch: fan_in = size(1) * receptive field */
            fan_in = 1;
            for (int d = 1; d < s->ndim; d++) fan_in *= (double)s->shape[d];
        }
        /* kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(fan_in), as for biases. */
        float bound = (float)(1.0 / sqrt(fan_in));
        if (s->flags & (DCB_W_INIT_ONE | DCB_W_INIT_ZERO)) {
            const float v = (s->flags & DCB_W_INIT_ONE) ? 1.0f : 0.0f;
            for (int64_t j = 0; j < t->size; j++) t->data[j] = v;
        } else {
            dcb_tensor_uniform(t, seed * 1000003u + (uint64_t)i * 7919u + 17u, -bound, bound);
        }
        dcb_tensor_free(op->w[i]);
        op->w[i] = t;
    }
    release_state(op);
    drop_train(op);
    return DCB_OK;
}

dcb_status dcb_op_load_weights(dcb_op *op, const char *dir) {
    for (int i = 0; i < op->nweights; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", dir, op->wspec[i].name);
        dcb_tensor *t = NULL;
        dcb_status st = dcb_npy_load(path, &t);
        if (st != DCB_OK) return st;
        st = dcb_op_set_weight(op, op->wspec[i].name, t);
        dcb_tensor_free(t);
        if (st != DCB_OK) return st;
    }
    return DCB_OK;
}

static dcb_status check_weights(dcb_op *op) {
    for (int i = 0; i < op->nweights; i++)
        if (!op->w[i]) {
            char e[128];
            dcb_shape_str(op->wspec[i].ndim, op->wspec[i].shape, e, sizeof e);
            return dcb_fail(DCB_INVALID_WEIGHT, "%s: weight '%s' %s is missing (set, load or init it)",
                            op->info->name, op->wspec[i].name, e);
        }
    return DCB_OK;
}

dcb_status dcb_op_prepare(dcb_op *op) {
    if (!op) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_prepare: op is NULL");
    dcb_status st = check_weights(op);
    if (st != DCB_OK) return st;
    release_state(op);
    if (op->impl->prepare) {
        st = op->impl->prepare(op);
        if (st != DCB_OK) return st;
    }
    op->prepared = 1;
    return DCB_OK;
}

/* The plan of the last shape is kept (XNNPACK's reshape/setup/run): a run
 * or plan on the same shape with the same prepared state reuses it. */
static int plan_is_current(const dcb_op *op, int ndim, const int64_t *x) {
    if (!op->planned || op->plan_ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (op->plan_x[d] != x[d]) return 0;
    return 1;
}

static dcb_status make_plan(dcb_op *op, int ndim, const int64_t *x_shape) {
    if (ndim < 0 || ndim > DCB_MAX_DIMS)
        return dcb_fail(DCB_INVALID_SHAPE, "%s: input has %d dimensions", op->info->name, ndim);
    if (plan_is_current(op, ndim, x_shape)) return DCB_OK;
    op->planned = 0;
    int yn = 0;
    int64_t ys[DCB_MAX_DIMS] = {0};
    dcb_status st = checked_out_shape(op, ndim, x_shape, &yn, ys);
    if (st != DCB_OK) return st;
    if (op->autos && (st = dcb_auto_pick(op, ndim, x_shape)) != DCB_OK) return st;
    const double out_bytes = 4.0 * (double)elems_or_neg(yn, ys);
    if (out_bytes + weight_bytes(op) > (double)dcb_max_bytes()) {
        char s[160], who[512], b1[32], b2[32];
        suspects(op, NULL, 0, who, sizeof who);
        return dcb_fail(DCB_INVALID_SHAPE, "%s: the output %s and the weights need %s, above the limit of %s "
                        "(DCB_MAX_BYTES)%s", op->info->name, dcb_shape_str(yn, ys, s, sizeof s),
                        dcb_bytes_str(out_bytes + weight_bytes(op), b1, sizeof b1),
                        dcb_bytes_str((double)dcb_max_bytes(), b2, sizeof b2), who);
    }
    const size_t ws = op->impl->workspace ? op->impl->workspace(op, x_shape) : 0;
    if ((double)ws + out_bytes + weight_bytes(op) > (double)dcb_max_bytes()) {
        char s[160], who[512], b1[32], b2[32];
        suspects(op, NULL, 0, who, sizeof who);
        return dcb_fail(DCB_UNSUPPORTED_SHAPE, "%s/%s: a workspace of %s for the input %s is above the limit of %s "
                        "(DCB_MAX_BYTES) with the output and weights%s", op->info->name, op->impl->name,
                        dcb_bytes_str((double)ws, b1, sizeof b1), dcb_shape_str(ndim, x_shape, s, sizeof s),
                        dcb_bytes_str((double)dcb_max_bytes(), b2, sizeof b2), who);
    }
    if (op->prepared && op->impl->plan && (st = op->impl->plan(op, x_shape)) != DCB_OK) return st;
    op->plan_ndim = ndim;
    memcpy(op->plan_x, x_shape, sizeof(int64_t) * (size_t)ndim);
    op->plan_yndim = yn;
    memcpy(op->plan_y, ys, sizeof ys);
    op->plan_ws = ws;
    op->plan_count++;
    /* an impl's own plan needs the prepared state: an unprepared op's plan is
     * made again once prepared */
    op->planned = op->prepared || !op->impl->plan;
    return DCB_OK;
}

dcb_status dcb_op_plan(dcb_op *op, int ndim, const int64_t *x_shape, int *y_ndim,
                       int64_t y_shape[DCB_MAX_DIMS], size_t *workspace_bytes) {
    if (!op || !x_shape) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_plan: NULL argument");
    dcb_status st = make_plan(op, ndim, x_shape);
    if (st != DCB_OK) return st;
    if (y_ndim) *y_ndim = op->plan_yndim;
    if (y_shape) memcpy(y_shape, op->plan_y, sizeof(int64_t) * DCB_MAX_DIMS);
    if (workspace_bytes) *workspace_bytes = op->plan_ws;
    return DCB_OK;
}

dcb_status dcb_op_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    return dcb_op_run_ws(op, x, y, ws, SIZE_MAX, prof);
}

dcb_status dcb_op_run_ws(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, size_t ws_bytes,
                         dcb_profile *prof) {
    if (!op || !x || !y) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_run: NULL argument");
    dcb_status st = make_plan(op, x->ndim, x->shape);
    if (st != DCB_OK) return st;
    if (!op->prepared) {  /* preparing drops the plan: make it again with the state */
        if ((st = dcb_op_prepare(op)) != DCB_OK) return st;
        if ((st = make_plan(op, x->ndim, x->shape)) != DCB_OK) return st;
    }
    if (!dcb_shape_equal(y, op->plan_yndim, op->plan_y)) {
        char e[128], g[128];
        dcb_shape_str(op->plan_yndim, op->plan_y, e, sizeof e);
        dcb_shape_str(y->ndim, y->shape, g, sizeof g);
        return dcb_fail(DCB_INVALID_SHAPE, "%s: output y has shape %s, expected %s", op->info->name, g, e);
    }
    if (op->plan_ws && !ws)
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s/%s: needs a workspace of %zu bytes, got NULL",
                        op->info->name, op->impl->name, op->plan_ws);
    if (ws_bytes < op->plan_ws)
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s/%s: needs a workspace of %zu bytes, got %zu",
                        op->info->name, op->impl->name, op->plan_ws, ws_bytes);
    return op->impl->run(op, x, y, ws, prof);
}

/* Plans op for x: *wsb the workspace bytes, *y a new tensor of the output
 * shape (NULL when out of memory). */
static dcb_status plan_output(dcb_op *op, const dcb_tensor *x, dcb_tensor **y, size_t *wsb) {
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    *y = NULL;
    dcb_status st = dcb_op_plan(op, x->ndim, x->shape, &yn, ys, wsb);
    if (st == DCB_OK) *y = dcb_tensor_new(yn, ys);
    return st;
}

dcb_status dcb_capture_ws(dcb_op *op, const dcb_tensor *x, size_t ws_offset, int ndim, const int64_t *shape,
                          dcb_tensor **out) {
    dcb_tensor *y;
    size_t wsb;
    dcb_status st = plan_output(op, x, &y, &wsb);
    if (st != DCB_OK) return st;
    dcb_tensor *a = dcb_tensor_new(ndim, shape);
    void *ws = dcb_aligned_alloc(wsb);
    if (!y || !a || !ws) {
        st = dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for the routing weights", op->info->name);
    } else {
        st = dcb_op_run(op, x, y, ws, NULL);
        if (st == DCB_OK) memcpy(a->data, (char *)ws + ws_offset, sizeof(float) * (size_t)a->size);
    }
    dcb_tensor_free(y);
    dcb_aligned_free(ws);
    if (st != DCB_OK) {
        dcb_tensor_free(a);
        return st;
    }
    *out = a;
    return DCB_OK;
}

dcb_status dcb_op_forward(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    if (!op || !x || !out) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_forward: NULL argument");
    *out = NULL;
    dcb_tensor *y;
    size_t wsb;
    dcb_status st = plan_output(op, x, &y, &wsb);
    if (st != DCB_OK) return st;
    if (!y) return dcb_fail(DCB_OUT_OF_MEMORY, "%s: %s", op->info->name, dcb_last_error());
    void *ws = wsb ? dcb_aligned_alloc(wsb) : NULL;
    if (wsb && !ws) {
        char b[32];
        dcb_tensor_free(y);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s/%s: out of memory for a workspace of %s", op->info->name,
                        op->impl->name, dcb_bytes_str((double)wsb, b, sizeof b));
    }
    st = dcb_op_run(op, x, y, ws, NULL);
    dcb_aligned_free(ws);
    if (st != DCB_OK) {
        dcb_tensor_free(y);
        return st;
    }
    *out = y;
    return DCB_OK;
}

dcb_status dcb_op_cost(const dcb_op *op, int ndim, const int64_t *x_shape, dcb_cost *c) {
    if (!op || !x_shape || !c) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_cost: NULL argument");
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    dcb_status st = checked_out_shape(op, ndim, x_shape, &yn, ys);
    if (st != DCB_OK) return st;
    memset(c, 0, sizeof *c);
    op->info->cost(op, x_shape, c);
    c->executed_macs = op->impl->executed_macs ? op->impl->executed_macs(op, x_shape) : c->macs;
    return DCB_OK;
}

/* dcb_op_kernels and dcb_op_routing: the operator's hook (NULL: a static
 * operator, which has `none`), after the weights and a plan for x. */
static dcb_status dynamic_hook(dcb_op *op, const dcb_tensor *x, dcb_tensor **out, const char *fn, int routing,
                               const char *none) {
    if (!op || !x || !out) return dcb_fail(DCB_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    dcb_status (*hook)(dcb_op *, const dcb_tensor *, dcb_tensor **) = routing ? op->info->routing : op->info->kernels;
    if (!hook) return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s: a static operator %s", op->info->name, none);
    dcb_status st = check_weights(op);
    if (st == DCB_OK) st = dcb_op_plan(op, x->ndim, x->shape, NULL, NULL, NULL);
    if (st == DCB_OK && op->autos) { /* the picked implementation's workspace layout */
        dcb_op *in = dcb_auto_inner(op);
        if (!in) return dcb_fail(DCB_INVALID_ARGUMENT, "%s: %s", fn, dcb_last_error());
        return dynamic_hook(in, x, out, fn, routing, none);
    }
    return st == DCB_OK ? hook(op, x, out) : st;
}

dcb_status dcb_op_kernels(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    return dynamic_hook(op, x, out, "dcb_op_kernels", 0, "generates no per-sample kernels");
}

dcb_status dcb_op_routing(dcb_op *op, const dcb_tensor *x, dcb_tensor **out) {
    return dynamic_hook(op, x, out, "dcb_op_routing", 1, "has no routing weights");
}

/* ------------------------------------------------------------- training */
int dcb_bwd_count(const char *op) {
    const dcb_op_info *info = find_op(op);
    return info ? info->nbwds : -1;
}

const char *dcb_bwd_name(const char *op, int i) {
    const dcb_op_info *info = find_op(op);
    if (!info || i < 0 || i >= info->nbwds) return NULL;
    return info->bwds[i]->name;
}

dcb_status dcb_op_set_backward(dcb_op *op, const char *name) {
    if (!op) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_set_backward: op is NULL");
    const dcb_op_info *info = op->info;
    if (!info->nbwds) return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s: has no backward implementation", info->name);
    const dcb_bwd_vt *b = NULL;
    if (!name) {
        b = default_bwd(op);
        if (!b)
            return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s: no backward implementation runs these hyperparameters",
                            info->name);
    } else {
        for (int i = 0; i < info->nbwds; i++)
            if (!strcmp(info->bwds[i]->name, name)) b = info->bwds[i];
        if (!b) {
            char names[512];
            size_t o = 0;
            names[0] = 0;
            for (int i = 0; i < info->nbwds && o < sizeof names; i++)
                o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", info->bwds[i]->name);
            return dcb_fail(DCB_UNKNOWN_IMPL, "%s: unknown backward implementation '%s' (valid: %s)", info->name,
                            name, names);
        }
        dcb_status st = b->check ? b->check(op) : DCB_OK;
        if (st != DCB_OK) return st;
    }
    drop_train(op);
    op->bwd = b;
    return DCB_OK;
}

const char *dcb_op_get_backward(const dcb_op *op) { return op->bwd ? op->bwd->name : NULL; }
const char *dcb_op_get_backward_doc(const dcb_op *op) { return op->bwd && op->bwd->doc ? op->bwd->doc : ""; }
double dcb_op_backward_tolerance(const dcb_op *op) { return op->bwd ? op->bwd->tol : 0; }

float *dcb_dw(const dcb_op *op, const dcb_train_ctx *c, const char *name) {
    if (!c->dw) return NULL;
    for (int i = 0; i < op->nweights; i++)
        if (!strcmp(op->wspec[i].name, name)) return c->dw[i] ? c->dw[i]->data : NULL;
    return NULL;
}

int dcb_op_weight_grad_exact(const dcb_op *op, int i) {
    return i >= 0 && i < op->nweights && !(op->wspec[i].flags & (DCB_W_SURROGATE | DCB_W_BUFFER));
}
int dcb_op_input_grad_exact(const dcb_op *op) {
    for (int i = 0; i < op->nweights; i++)
        if (op->wspec[i].flags & DCB_W_SURROGATE) return 0;
    return 1;
}
int dcb_op_weight_is_buffer(const dcb_op *op, int i) { return i >= 0 && i < op->nweights && (op->wspec[i].flags & DCB_W_BUFFER); }
int dcb_op_train_differs(const dcb_op *op) { return op->info->train_differs; }

dcb_tensor *dcb_op_weight_mut(dcb_op *op, int i) {
    if (!op || i < 0 || i >= op->nweights) return NULL;
    release_state(op);
    drop_train(op);
    return op->w[i];
}

static dcb_status shape_mismatch(const dcb_op *op, const char *what, const dcb_tensor *t, int ndim,
                                 const int64_t *shape) {
    char e[128], g[128];
    dcb_shape_str(ndim, shape, e, sizeof e);
    dcb_shape_str(t->ndim, t->shape, g, sizeof g);
    return dcb_fail(DCB_INVALID_SHAPE, "%s backward: %s has shape %s, expected %s", op->info->name, what, g, e);
}

dcb_status dcb_op_forward_train(dcb_op *op, const dcb_tensor *x, dcb_tensor *y) {
    if (!op || !x || !y) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_forward_train: NULL argument");
    if (!op->bwd) {
        if (!op->info->nbwds) return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s: has no backward implementation",
                                              op->info->name);
        return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s: no backward implementation runs these hyperparameters",
                        op->info->name);
    }
    drop_train(op);
    dcb_status st = check_weights(op);
    if (st != DCB_OK) return st;
    size_t wsb = 0;
    if ((st = dcb_op_plan(op, x->ndim, x->shape, NULL, NULL, &wsb)) != DCB_OK) return st;
    if (!dcb_shape_equal(y, op->plan_yndim, op->plan_y)) return shape_mismatch(op, "y", y, op->plan_yndim, op->plan_y);
    if (op->bwd->forward) {
        void *saved = NULL;
        st = op->bwd->forward(op, x, y, &saved);
        if (st != DCB_OK) {
            if (saved && op->bwd->free_saved) op->bwd->free_saved(saved);
            return st;
        }
        op->train_saved = saved;
    } else {
        if (!op->prepared) {  /* preparing drops the plan: its workspace may change */
            if ((st = dcb_op_prepare(op)) != DCB_OK) return st;
            if ((st = dcb_op_plan(op, x->ndim, x->shape, NULL, NULL, &wsb)) != DCB_OK) return st;
        }
        if (wsb > op->train_ws_bytes) {
            dcb_aligned_free(op->train_ws);
            op->train_ws_bytes = 0;
            if (!(op->train_ws = dcb_aligned_alloc(wsb)))
                return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory (training workspace %zu bytes)",
                                op->info->name, wsb);
            op->train_ws_bytes = wsb;
        }
        if ((st = dcb_op_run_ws(op, x, y, op->train_ws, op->train_ws_bytes, NULL)) != DCB_OK) return st;
    }
    op->train_x = x;
    op->train_y = y;
    op->trained = 1;
    return DCB_OK;
}

dcb_status dcb_op_backward(dcb_op *op, const dcb_tensor *dy, dcb_tensor *dx, dcb_tensor *const *dw) {
    if (!op || !dy) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_backward: NULL argument");
    if (!op->trained)
        return dcb_fail(DCB_INVALID_ARGUMENT,
                        "%s: backward without a training forward (call forward_train first; changing the weights "
                        "or the backward implementation forgets it)",
                        op->info->name);
    const dcb_tensor *x = op->train_x, *y = op->train_y;
    if (!dcb_shape_equal(dy, y->ndim, y->shape)) return shape_mismatch(op, "dy", dy, y->ndim, y->shape);
    if (dx && !dcb_shape_equal(dx, x->ndim, x->shape)) return shape_mismatch(op, "dx", dx, x->ndim, x->shape);
    if (dw)
        for (int i = 0; i < op->nweights; i++)
            if (dw[i] && !dcb_shape_equal(dw[i], op->wspec[i].ndim, op->wspec[i].shape)) {
                char what[96];
                snprintf(what, sizeof what, "the gradient of '%s'", op->wspec[i].name);
                return shape_mismatch(op, what, dw[i], op->wspec[i].ndim, op->wspec[i].shape);
            }
    dcb_train_ctx c = {.x = x, .y = y, .dy = dy, .dx = dx, .dw = dw, .saved = op->train_saved};
    return op->bwd->run(op, &c);
}

dcb_status dcb_op_set_param(dcb_op *op, const char *name, double value) {
    if (!op || !name) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_op_set_param: NULL argument");
    const int i = dcb_param_index(op->info, name);
    if (i < 0) return dcb_fail(DCB_UNKNOWN_PARAM, "%s: unknown hyperparameter '%s'", op->info->name, name);
    if (op->info->params[i].type == DCB_PT_STRING)
        return dcb_fail(DCB_INVALID_PARAM, "%s: %s is a string; only numbers can be changed", op->info->name, name);
    if (!isfinite(value)) return dcb_fail(DCB_INVALID_PARAM, "%s: %s=%g is not finite", op->info->name, name, value);
    const double old = op->pv[i];
    void *old_hp = op->hp;
    op->hp = NULL;
    op->pv[i] = value;
    dcb_status st = op->info->validate(op);
    int auto_changed = 0;
    if (st == DCB_OK && op->autos) auto_changed = (st = dcb_auto_set_hp(op, name, value)) == DCB_OK;
    if (st == DCB_OK && op->impl->check) st = op->impl->check(op);
    dcb_weight_spec specs[DCB_MAX_WEIGHTS];
    if (st == DCB_OK) {
        const int nw = op->info->weights(op, specs);
        int same = nw == op->nweights;
        for (int w = 0; same && w < nw; w++)
            same = specs[w].ndim == op->wspec[w].ndim &&
                   !memcmp(specs[w].shape, op->wspec[w].shape, sizeof(int64_t) * (size_t)specs[w].ndim);
        if (!same) st = dcb_fail(DCB_INVALID_PARAM, "%s: %s=%g would change the weights' shapes", op->info->name,
                                 name, value);
    }
    if (st != DCB_OK) {
        free(op->hp);
        op->hp = old_hp;
        op->pv[i] = old;
        if (auto_changed) { /* the candidates back to the old value; the message is the refusal's */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", dcb_last_error());
            if (dcb_auto_set_hp(op, name, old) == DCB_OK) op->impl->check(op);
            op->planned = 0; /* the candidates are new: pick again */
            dcb_fail(st, "%s", msg);
        }
        return st;
    }
    free(old_hp);
    release_state(op);
    drop_train(op);
    return DCB_OK;
}
