/* Networks: a list of nodes over the operator registry, run forward (train
 * or eval) and backward. Every node owns its output and, in training, the
 * gradient of its output; a node's inputs come earlier in the list, so the
 * list is its own topological order and backward walks it in reverse. */
#define _POSIX_C_SOURCE 200809L
#include "dcb_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { NODE_OP, NODE_SUM, NODE_ROWS };

typedef struct node {
    char name[96];
    int kind, a, b;             /* inputs (-1: the network input; b only for sums) */
    dcb_op *op;
    dcb_tensor *y, *gy;         /* output and its gradient */
    dcb_tensor *dw[DCB_MAX_WEIGHTS];
    int consumers;
    int gy_set;                 /* gy holds a first contribution (backward) */
    double t_fwd, t_bwd;        /* seconds spent, since the last dcb_net_reset_times */
    int64_t n_fwd, n_bwd;
} node;

typedef struct param {
    char name[160];
    int node, w, kind;
} param;

struct dcb_net {
    int threads;
    int n, cap;
    node *nodes;
    int np;
    param *params;
    int trained;                /* the last forward was a training one */
    const dcb_tensor *x;        /* its input */
    void *ws;                   /* the eval forward's workspace */
    size_t ws_bytes;
    dcb_tensor *tmp;            /* an input gradient to be added */
};

dcb_status dcb_net_create(int threads, dcb_net **out) {
    if (!out) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_create: out is NULL");
    *out = NULL;
    if (threads < 1 || threads > 1024)
        return dcb_fail(DCB_INVALID_PARAM, "net: threads=%d is invalid (need an integer >= 1)", threads);
    dcb_net *net = calloc(1, sizeof *net);
    if (!net) return dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory");
    net->threads = threads;
    *out = net;
    return DCB_OK;
}

void dcb_net_destroy(dcb_net *net) {
    if (!net) return;
    for (int i = 0; i < net->n; i++) {
        node *d = &net->nodes[i];
        dcb_op_destroy(d->op);
        dcb_tensor_free(d->y);
        dcb_tensor_free(d->gy);
        for (int w = 0; w < DCB_MAX_WEIGHTS; w++) dcb_tensor_free(d->dw[w]);
    }
    free(net->nodes);
    free(net->params);
    dcb_aligned_free(net->ws);
    dcb_tensor_free(net->tmp);
    free(net);
}

static dcb_status check_input(const dcb_net *net, const char *name, int in) {
    if (in < -1 || in >= net->n)
        return dcb_fail(DCB_INVALID_ARGUMENT, "net: node '%s' reads node %d, which does not exist (nodes 0..%d, -1: "
                        "the input)", name, in, net->n - 1);
    return DCB_OK;
}

static dcb_status new_node(dcb_net *net, const char *name, int kind, int a, int b, node **out) {
    char auto_name[32];
    if (!name || !*name) {
        snprintf(auto_name, sizeof auto_name, "n%d", net->n);
        name = auto_name;
    }
    if (strlen(name) >= sizeof net->nodes[0].name || strchr(name, '/'))
        return dcb_fail(DCB_INVALID_PARAM, "net: node name '%s' is too long or has a '/'", name);
    for (int i = 0; i < net->n; i++)
        if (!strcmp(net->nodes[i].name, name)) return dcb_fail(DCB_INVALID_PARAM, "net: two nodes named '%s'", name);
    dcb_status st = check_input(net, name, a);
    if (st == DCB_OK && kind == NODE_SUM) st = check_input(net, name, b);
    if (st != DCB_OK) return st;
    if (net->n == net->cap) {
        int cap = net->cap ? 2 * net->cap : 32;
        node *nn = realloc(net->nodes, sizeof *nn * (size_t)cap);
        if (!nn) return dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory");
        net->nodes = nn;
        net->cap = cap;
    }
    node *d = &net->nodes[net->n];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->kind = kind;
    d->a = a;
    d->b = kind == NODE_SUM ? b : -2;
    *out = d;
    return DCB_OK;
}

static void count_consumers(dcb_net *net) {
    for (int i = 0; i < net->n; i++) net->nodes[i].consumers = 0;
    for (int i = 0; i < net->n; i++) {
        const node *d = &net->nodes[i];
        if (d->a >= 0) net->nodes[d->a].consumers++;
        if (d->b >= 0) net->nodes[d->b].consumers++;
    }
}

static dcb_status add_params(dcb_net *net, int ni) {
    node *d = &net->nodes[ni];
    const int nw = dcb_op_weight_count(d->op);
    param *p = realloc(net->params, sizeof *p * (size_t)(net->np + nw + 1));
    if (!p) return dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory");
    net->params = p;
    for (int w = 0; w < nw; w++) {
        param *q = &net->params[net->np++];
        snprintf(q->name, sizeof q->name, "%s.%s", d->name, dcb_op_weight_name(d->op, w));
        q->node = ni;
        q->w = w;
        const int flags = d->op->wspec[w].flags;
        q->kind = (flags & DCB_W_BUFFER) ? DCB_PARAM_BUFFER
                  : ((flags & DCB_W_BIAS) || !strcmp(d->op->info->name, "batchnorm")) ? DCB_PARAM_NO_DECAY
                                                                                      : DCB_PARAM_WEIGHT;
        int64_t s[DCB_MAX_DIMS];
        const int nd = dcb_op_weight_shape(d->op, w, s);
        if (!(d->dw[w] = dcb_tensor_new(nd, s)))
            return dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory for the gradient of %s", q->name);
    }
    return DCB_OK;
}

dcb_status dcb_net_add(dcb_net *net, const char *name, const char *opname, const char *impl, const char *bwd,
                       const dcb_hparam *hp, int nhp, int input, int *id) {
    if (!net || !opname) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_add: NULL argument");
    node *d;
    dcb_status st = new_node(net, name, NODE_OP, input, -2, &d);
    if (st != DCB_OK) return st;
    dcb_hparam h[DCB_MAX_PARAMS + 1];
    if (nhp > DCB_MAX_PARAMS) return dcb_fail(DCB_INVALID_ARGUMENT, "net: node '%s' has %d hyperparameters", d->name, nhp);
    memcpy(h, hp, sizeof *h * (size_t)nhp);
    h[nhp] = (dcb_hparam){"threads", (double)net->threads, NULL};
    dcb_op *op = NULL;
    if ((st = dcb_op_create(opname, impl, h, nhp + 1, &op)) != DCB_OK)
        return dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
    if (bwd && (st = dcb_op_set_backward(op, bwd)) != DCB_OK) {
        dcb_op_destroy(op);
        return dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
    }
    d->op = op;
    const int ni = net->n++;
    if ((st = add_params(net, ni)) != DCB_OK) return st;
    count_consumers(net);
    if (id) *id = ni;
    return DCB_OK;
}

dcb_status dcb_net_add_sum(dcb_net *net, const char *name, int a, int b, int *id) {
    if (!net) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_add_sum: NULL argument");
    node *d;
    dcb_status st = new_node(net, name, NODE_SUM, a, b, &d);
    if (st != DCB_OK) return st;
    const int ni = net->n++;
    count_consumers(net);
    if (id) *id = ni;
    return DCB_OK;
}

dcb_status dcb_net_add_rows(dcb_net *net, const char *name, int input, int *id) {
    if (!net) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_add_rows: NULL argument");
    node *d;
    dcb_status st = new_node(net, name, NODE_ROWS, input, -2, &d);
    if (st != DCB_OK) return st;
    const int ni = net->n++;
    count_consumers(net);
    if (id) *id = ni;
    return DCB_OK;
}

int dcb_net_size(const dcb_net *net) { return net ? net->n : 0; }
const char *dcb_net_node_name(const dcb_net *net, int i) { return i >= 0 && i < net->n ? net->nodes[i].name : NULL; }
dcb_op *dcb_net_node_op(dcb_net *net, int i) { return i >= 0 && i < net->n ? net->nodes[i].op : NULL; }

const char *dcb_net_node_inputs(const dcb_net *net, int i, int *a, int *b) {
    if (i < 0 || i >= net->n) return NULL;
    const node *d = &net->nodes[i];
    if (a) *a = d->a;
    if (b) *b = d->b;
    return d->kind == NODE_OP ? d->op->info->name : d->kind == NODE_SUM ? "sum" : "rows";
}

dcb_status dcb_net_init(dcb_net *net, uint64_t seed) {
    for (int i = 0; i < net->n; i++)
        if (net->nodes[i].op) {
            dcb_status st = dcb_op_init_weights(net->nodes[i].op, seed * 7919u + (uint64_t)i * 104729u + 1u);
            if (st != DCB_OK) return st;
        }
    net->trained = 0;
    return DCB_OK;
}

/* ----------------------------------------------------------------- shapes */
static const dcb_tensor *input_of(const dcb_net *net, int a) { return a < 0 ? net->x : net->nodes[a].y; }

static int same_shape(const dcb_tensor *t, int ndim, const int64_t *s) { return t && dcb_shape_equal(t, ndim, s); }

/* (Re)allocates t to shape s unless it has it. */
static dcb_status ensure(dcb_tensor **t, int ndim, const int64_t *s, const char *what, const char *node_name) {
    if (same_shape(*t, ndim, s)) return DCB_OK;
    dcb_tensor_free(*t);
    if (!(*t = dcb_tensor_new(ndim, s)))
        return dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory for the %s of node '%s'", what, node_name);
    return DCB_OK;
}

/* Node d's output shape for its inputs' shapes; *ws its eval workspace. */
static dcb_status node_shape(dcb_net *net, node *d, int *yn, int64_t *ys, size_t *ws) {
    const dcb_tensor *a = input_of(net, d->a);
    *ws = 0;
    switch (d->kind) {
    case NODE_OP: {
        dcb_status st = dcb_op_plan(d->op, a->ndim, a->shape, yn, ys, ws);
        return st == DCB_OK ? DCB_OK : dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
    }
    case NODE_SUM: {
        const dcb_tensor *b = input_of(net, d->b);
        if (!dcb_shape_equal(b, a->ndim, a->shape)) {
            char sa[96], sb[96];
            dcb_shape_str(a->ndim, a->shape, sa, sizeof sa);
            dcb_shape_str(b->ndim, b->shape, sb, sizeof sb);
            return dcb_fail(DCB_INVALID_SHAPE, "net: sum node '%s' adds shapes %s and %s", d->name, sa, sb);
        }
        *yn = a->ndim;
        memcpy(ys, a->shape, sizeof(int64_t) * DCB_MAX_DIMS);
        return DCB_OK;
    }
    case NODE_ROWS:
        if (a->ndim != 4) {
            char sa[96];
            dcb_shape_str(a->ndim, a->shape, sa, sizeof sa);
            return dcb_fail(DCB_INVALID_SHAPE, "net: rows node '%s' needs (N, C, H, W), got %s", d->name, sa);
        }
        *yn = 3;
        ys[0] = a->shape[0], ys[1] = a->shape[2], ys[2] = a->shape[1] * a->shape[3];
        return DCB_OK;
    }
    return DCB_INVALID_ARGUMENT;
}

static void rows_forward(const dcb_tensor *x, dcb_tensor *y) {
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t c = 0; c < C; c++)
                memcpy(y->data + ((n * H + h) * C + c) * W, x->data + ((n * C + c) * H + h) * W, sizeof(float) * W);
}

static void rows_backward(const dcb_tensor *gy, dcb_tensor *gx) {
    const int64_t N = gx->shape[0], C = gx->shape[1], H = gx->shape[2], W = gx->shape[3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t c = 0; c < C; c++) {
                const float *s = gy->data + ((n * H + h) * C + c) * W;
                float *d = gx->data + ((n * C + c) * H + h) * W;
                memcpy(d, s, sizeof(float) * W);
            }
}

static void add_into(float *restrict d, const float *restrict s, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

dcb_status dcb_net_forward(dcb_net *net, const dcb_tensor *x, int train, const dcb_tensor **y) {
    if (!net || !x || !y) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_forward: NULL argument");
    if (!net->n) return dcb_fail(DCB_INVALID_ARGUMENT, "net: the network has no nodes");
    *y = NULL;
    net->x = x;
    net->trained = 0;
    for (int i = 0; i < net->n; i++) {
        node *d = &net->nodes[i];
        int yn;
        int64_t ys[DCB_MAX_DIMS] = {0};
        size_t wsb;
        dcb_status st = node_shape(net, d, &yn, ys, &wsb);
        if (st == DCB_OK) st = ensure(&d->y, yn, ys, "output", d->name);
        if (st != DCB_OK) return st;
        const dcb_tensor *a = input_of(net, d->a);
        const double t0 = dcb_now();
        switch (d->kind) {
        case NODE_OP:
            if (train) {
                st = dcb_op_forward_train(d->op, a, d->y);
            } else {
                if (wsb > net->ws_bytes) {
                    dcb_aligned_free(net->ws);
                    net->ws_bytes = 0;
                    if (!(net->ws = dcb_aligned_alloc(wsb)))
                        return dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory (workspace %zu bytes)", wsb);
                    net->ws_bytes = wsb;
                }
                st = dcb_op_run_ws(d->op, a, d->y, net->ws, net->ws_bytes, NULL);
            }
            if (st != DCB_OK) return dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
            break;
        case NODE_SUM: {
            const float *pa = a->data, *pb = input_of(net, d->b)->data;
            float *py = d->y->data;
            for (int64_t k = 0; k < d->y->size; k++) py[k] = pa[k] + pb[k];
            break;
        }
        case NODE_ROWS: rows_forward(a, d->y); break;
        }
        d->t_fwd += dcb_now() - t0;
        d->n_fwd++;
    }
    net->trained = train;
    *y = net->nodes[net->n - 1].y;
    return DCB_OK;
}

const dcb_tensor *dcb_net_activation(const dcb_net *net, int i) {
    return i >= 0 && i < net->n ? net->nodes[i].y : NULL;
}

/* The buffer node j's gradient contribution goes to: its gy when first, else
 * net->tmp (then added by give_grad). */
static dcb_status grad_target(dcb_net *net, int j, dcb_tensor **t) {
    node *s = &net->nodes[j];
    dcb_status st = ensure(&s->gy, s->y->ndim, s->y->shape, "gradient", s->name);
    if (st != DCB_OK) return st;
    if (!s->gy_set) {
        *t = s->gy;
        return DCB_OK;
    }
    st = ensure(&net->tmp, s->y->ndim, s->y->shape, "gradient", s->name);
    *t = net->tmp;
    return st;
}

static void give_grad(dcb_net *net, int j, dcb_tensor *t) {
    node *s = &net->nodes[j];
    if (s->gy_set) add_into(s->gy->data, t->data, t->size);
    s->gy_set = 1;
}

dcb_status dcb_net_backward(dcb_net *net, const dcb_tensor *dy) {
    if (!net || !dy) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_backward: NULL argument");
    if (!net->trained)
        return dcb_fail(DCB_INVALID_ARGUMENT, "net: backward without a training forward (forward with train = 1 first)");
    node *last = &net->nodes[net->n - 1];
    if (!dcb_shape_equal(dy, last->y->ndim, last->y->shape)) {
        char e[96], g[96];
        dcb_shape_str(last->y->ndim, last->y->shape, e, sizeof e);
        dcb_shape_str(dy->ndim, dy->shape, g, sizeof g);
        return dcb_fail(DCB_INVALID_SHAPE, "net backward: dy has shape %s, expected %s", g, e);
    }
    for (int i = 0; i < net->n; i++) net->nodes[i].gy_set = 0;
    dcb_status st = ensure(&last->gy, dy->ndim, dy->shape, "gradient", last->name);
    if (st != DCB_OK) return st;
    memcpy(last->gy->data, dy->data, sizeof(float) * (size_t)dy->size);
    last->gy_set = 1;
    for (int i = net->n - 1; i >= 0; i--) {
        node *d = &net->nodes[i];
        if (!d->gy_set) { /* feeds nothing that reaches the output: no gradient */
            if (d->op)
                for (int w = 0; w < dcb_op_weight_count(d->op); w++)
                    memset(d->dw[w]->data, 0, sizeof(float) * (size_t)d->dw[w]->size);
            continue;
        }
        dcb_tensor *ga = NULL, *gb = NULL;
        const double t0 = dcb_now();
        if (d->a >= 0 && (st = grad_target(net, d->a, &ga)) != DCB_OK) return st;
        switch (d->kind) {
        case NODE_OP:
            st = dcb_op_backward(d->op, d->gy, ga, d->dw);
            if (st != DCB_OK) return dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
            if (ga) give_grad(net, d->a, ga);
            break;
        case NODE_SUM:
            if (ga) {
                memcpy(ga->data, d->gy->data, sizeof(float) * (size_t)d->gy->size);
                give_grad(net, d->a, ga);
            }
            if (d->b >= 0) {
                if ((st = grad_target(net, d->b, &gb)) != DCB_OK) return st;
                memcpy(gb->data, d->gy->data, sizeof(float) * (size_t)d->gy->size);
                give_grad(net, d->b, gb);
            }
            break;
        case NODE_ROWS:
            if (ga) {
                rows_backward(d->gy, ga);
                give_grad(net, d->a, ga);
            }
            break;
        }
        d->t_bwd += dcb_now() - t0;
        d->n_bwd++;
    }
    return DCB_OK;
}

void dcb_net_node_times(const dcb_net *net, int i, double *fwd, double *bwd, int64_t *nfwd, int64_t *nbwd) {
    const node *d = &net->nodes[i];
    if (fwd) *fwd = d->t_fwd;
    if (bwd) *bwd = d->t_bwd;
    if (nfwd) *nfwd = d->n_fwd;
    if (nbwd) *nbwd = d->n_bwd;
}

void dcb_net_reset_times(dcb_net *net) {
    for (int i = 0; i < net->n; i++) {
        node *d = &net->nodes[i];
        d->t_fwd = d->t_bwd = 0;
        d->n_fwd = d->n_bwd = 0;
    }
}

dcb_status dcb_net_cost(dcb_net *net, int ndim, const int64_t *x, dcb_cost *total) {
    if (!net || !x || !total) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_cost: NULL argument");
    memset(total, 0, sizeof *total);
    /* shapes only: a throwaway tensor header per node */
    int64_t(*shapes)[DCB_MAX_DIMS] = calloc((size_t)net->n + 1, sizeof *shapes);
    int *nd = calloc((size_t)net->n + 1, sizeof *nd);
    dcb_status st = shapes && nd ? DCB_OK : dcb_fail(DCB_OUT_OF_MEMORY, "net: out of memory");
    for (int i = 0; st == DCB_OK && i < net->n; i++) {
        const node *d = &net->nodes[i];
        const int an = d->a < 0 ? ndim : nd[d->a];
        const int64_t *as = d->a < 0 ? x : shapes[d->a];
        int64_t elems = 1;
        for (int k = 0; k < an; k++) elems *= as[k];
        if (d->kind == NODE_OP) {
            dcb_cost c;
            st = dcb_op_cost(d->op, an, as, &c);
            if (st != DCB_OK) {
                st = dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
                break;
            }
            total->macs += c.macs, total->flops += c.flops, total->params += c.params, total->acts += c.acts;
            total->bytes += c.bytes, total->dynamic_macs += c.dynamic_macs, total->executed_macs += c.executed_macs;
            st = d->op->info->out_shape(d->op, an, as, &nd[i], shapes[i]);
        } else if (d->kind == NODE_SUM) {
            total->flops += (double)elems;
            nd[i] = an;
            memcpy(shapes[i], as, sizeof shapes[i]);
        } else {
            if (an != 4) {
                st = dcb_fail(DCB_INVALID_SHAPE, "net: rows node '%s' needs (N, C, H, W)", d->name);
                break;
            }
            nd[i] = 3;
            shapes[i][0] = as[0], shapes[i][1] = as[2], shapes[i][2] = as[1] * as[3];
        }
    }
    free(shapes);
    free(nd);
    return st;
}

/* ------------------------------------------------------------- parameters */
int dcb_net_param_count(const dcb_net *net) { return net->np; }
const char *dcb_net_param_name(const dcb_net *net, int i) { return i >= 0 && i < net->np ? net->params[i].name : NULL; }
int dcb_net_param_kind(const dcb_net *net, int i) { return i >= 0 && i < net->np ? net->params[i].kind : -1; }

const dcb_tensor *dcb_net_param(const dcb_net *net, int i) {
    if (i < 0 || i >= net->np) return NULL;
    return dcb_op_get_weight(net->nodes[net->params[i].node].op,
                             dcb_op_weight_name(net->nodes[net->params[i].node].op, net->params[i].w));
}

dcb_tensor *dcb_net_param_mut(dcb_net *net, int i) {
    if (i < 0 || i >= net->np) return NULL;
    return dcb_op_weight_mut(net->nodes[net->params[i].node].op, net->params[i].w);
}

const dcb_tensor *dcb_net_grad(const dcb_net *net, int i) {
    if (i < 0 || i >= net->np) return NULL;
    return net->nodes[net->params[i].node].dw[net->params[i].w];
}

dcb_status dcb_mkdir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return DCB_OK;
    return dcb_fail(DCB_IO_ERROR, "cannot create directory %s: %s", path, strerror(errno));
}

dcb_status dcb_net_save(const dcb_net *net, const char *dir) {
    dcb_status st = dcb_mkdir(dir);
    for (int i = 0; st == DCB_OK && i < net->n; i++) {
        const node *d = &net->nodes[i];
        if (!d->op || !dcb_op_weight_count(d->op)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, d->name);
        if ((st = dcb_mkdir(path)) != DCB_OK) break;
        for (int w = 0; st == DCB_OK && w < dcb_op_weight_count(d->op); w++) {
            const char *wn = dcb_op_weight_name(d->op, w);
            const dcb_tensor *t = dcb_op_get_weight(d->op, wn);
            if (!t) return dcb_fail(DCB_INVALID_WEIGHT, "net: %s.%s is not set (init or load the net)", d->name, wn);
            snprintf(path, sizeof path, "%s/%s/%s.npy", dir, d->name, wn);
            st = dcb_npy_save(path, t);
        }
    }
    return st;
}

dcb_status dcb_net_load(dcb_net *net, const char *dir) {
    for (int i = 0; i < net->n; i++) {
        node *d = &net->nodes[i];
        if (!d->op || !dcb_op_weight_count(d->op)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, d->name);
        dcb_status st = dcb_op_load_weights(d->op, path);
        if (st != DCB_OK) return dcb_fail(st, "net: node '%s': %s", d->name, dcb_last_error());
    }
    net->trained = 0;
    return DCB_OK;
}

/* ------------------------------------------------------------------- loss */
double dcb_softmax_ce(const dcb_tensor *logits, const int32_t *labels, double smoothing, dcb_tensor *dlogits,
                      int64_t *correct) {
    const int64_t N = logits->shape[0], K = logits->size / (N ? N : 1);
    double loss = 0;
    int64_t hits = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *z = logits->data + n * K;
        int64_t arg = 0;
        for (int64_t k = 1; k < K; k++)
            if (z[k] > z[arg]) arg = k;
        hits += arg == labels[n];
        double se = 0;
        for (int64_t k = 0; k < K; k++) se += exp((double)z[k] - z[arg]);
        const double lse = z[arg] + log(se);
        double l = 0;
        for (int64_t k = 0; k < K; k++) {
            const double q = (k == labels[n] ? 1 - smoothing : 0) + smoothing / (double)K;
            l -= q * ((double)z[k] - lse);
            if (dlogits) dlogits->data[n * K + k] = (float)((exp((double)z[k] - lse) - q) / (double)N);
        }
        loss += l;
    }
    if (correct) *correct = hits;
    return N ? loss / (double)N : 0;
}
