/* op_auto.c — impl "auto": the operator picks one of its own fast
 * implementations per input shape, thread count and ISA level, and says which
 * and why (dcb.h, AUTO).
 *
 * The auto op holds one inner op per candidate (every implementation but the
 * oracle, the naive-engine ones and the peers), created with the outer op's
 * hyperparameters, so that a candidate that cannot run them drops out at
 * create. On a new input shape make_plan asks dcb_auto_pick: candidates whose
 * plan refuses the shape drop out too, and of the rest the model picks one.
 * The picked inner op gets the weights and is prepared when the outer one is
 * planned prepared; run is the inner op's.
 *
 * The model, NNPACK-style but measured: `dcbench calibrate` times every
 * candidate on a small grid of reference layers per operator, thread count
 * and ISA level (dcb_auto_add_reference). A candidate's predicted time on a
 * shape is its time at its nearest reference (distance in log2 of the
 * operator's macs, bytes, params and output elements), scaled by the ratio
 * of the MACs it executes there and here. The candidate with the least
 * predicted time wins. Without references for the operator at this ISA
 * level, a fixed rule picks (auto_rule). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "dcb_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define AUTO_MAX_CAND 16

typedef struct ref_row {
    char op[DCB_NAME_LEN], impl[64], isa[16];
    int threads;
    double f[4], executed_macs, seconds;
} ref_row;

static pthread_mutex_t ref_lock = PTHREAD_MUTEX_INITIALIZER;
static ref_row *refs;
static int nrefs, caprefs;

struct dcb_auto {
    dcb_hparam *hp; /* the create call's hyperparameters (copied) */
    int nhp;
    int ncand;
    dcb_op *cand[AUTO_MAX_CAND]; /* NULL: the implementation refuses the hyperparameters */
    const char *cand_name[AUTO_MAX_CAND];
    int ready[AUTO_MAX_CAND];    /* holds the outer op's current weights, prepared */
    int pick;                    /* -1 before the first plan */
    char reason[768];
};

/* ------------------------------------------------------------ references */
dcb_status dcb_auto_add_reference(const char *op, const char *impl, const char *isa, int threads, double macs,
                                  double bytes, double params, double acts, double executed_macs, double seconds) {
    if (!op || !impl || !isa) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_auto_add_reference: NULL argument");
    if (strlen(op) >= DCB_NAME_LEN || strlen(impl) >= 64 || strlen(isa) >= 16)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_auto_add_reference: a name is too long ('%s', '%s', '%s')", op,
                        impl, isa);
    if (threads < 1 || !(seconds > 0) || !(macs > 0) || !(executed_macs > 0) || !(bytes >= 0) || !(params >= 0) ||
        !(acts >= 0) || !isfinite(seconds) || !isfinite(macs) || !isfinite(executed_macs))
        return dcb_fail(DCB_INVALID_ARGUMENT,
                        "dcb_auto_add_reference: %s/%s: threads=%d seconds=%g macs=%g executed_macs=%g bytes=%g "
                        "params=%g acts=%g (need threads >= 1, positive times and MACs, no negative sizes)",
                        op, impl, threads, seconds, macs, executed_macs, bytes, params, acts);
    pthread_mutex_lock(&ref_lock);
    if (nrefs == caprefs) {
        int nc = caprefs ? 2 * caprefs : 256;
        ref_row *n = realloc(refs, sizeof *n * (size_t)nc);
        if (!n) {
            pthread_mutex_unlock(&ref_lock);
            return dcb_fail(DCB_OUT_OF_MEMORY, "dcb_auto_add_reference: out of memory");
        }
        refs = n;
        caprefs = nc;
    }
    ref_row *r = &refs[nrefs++];
    memset(r, 0, sizeof *r);
    strcpy(r->op, op);
    strcpy(r->impl, impl);
    strcpy(r->isa, isa);
    r->threads = threads;
    r->f[0] = log2(macs), r->f[1] = log2(bytes + 1), r->f[2] = log2(params + 1), r->f[3] = log2(acts + 1);
    r->executed_macs = executed_macs;
    r->seconds = seconds;
    pthread_mutex_unlock(&ref_lock);
    return DCB_OK;
}

void dcb_auto_clear_references(void) {
    pthread_mutex_lock(&ref_lock);
    free(refs);
    refs = NULL;
    nrefs = caprefs = 0;
    pthread_mutex_unlock(&ref_lock);
}

int dcb_auto_reference_count(const char *op) {
    int n = 0;
    pthread_mutex_lock(&ref_lock);
    for (int i = 0; i < nrefs; i++)
        if (!op || !strcmp(refs[i].op, op)) n++;
    pthread_mutex_unlock(&ref_lock);
    return n;
}

/* ------------------------------------------------------------ candidates */
static int is_candidate(const dcb_op_info *info, int i) {
    const dcb_impl_vt *vt = info->impls[i];
    return i > 0 && !vt->peer && !(vt->engine && !strcmp(vt->engine->name, "naive"));
}

int dcb_impl_is_auto_candidate(const char *opname, int i) {
    const dcb_op_info *info = dcb_find_op_info(opname);
    return info && i >= 0 && i < info->nimpls && is_candidate(info, i);
}

int dcb_impl_has_auto(const char *opname) {
    const int n = dcb_impl_count(opname);
    if (n < 0) return 0;
    const dcb_op_info *info = dcb_find_op_info(opname);
    int c = 0;
    for (int i = 0; i < n; i++) c += is_candidate(info, i);
    return c >= 2;
}

static dcb_status auto_check(dcb_op *op);
static size_t auto_workspace(const dcb_op *op, const int64_t *x);
static dcb_status auto_prepare(dcb_op *op);
static dcb_status auto_plan(dcb_op *op, const int64_t *x);
static dcb_status auto_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof);
static double auto_executed(const dcb_op *op, const int64_t *x);

const dcb_impl_vt dcb_auto_impl = {
    .name = "auto",
    .doc = "picks one of the operator's implementations per input shape, threads and ISA: by the model that "
           "dcbench calibrate fits, else by a fixed rule (dcb_op_get_picked says which and why)",
    .check = auto_check, .workspace = auto_workspace, .prepare = auto_prepare, .plan = auto_plan, .run = auto_run,
    .executed_macs = auto_executed,
};

void dcb_auto_free(dcb_auto *a) {
    if (!a) return;
    for (int i = 0; i < a->ncand; i++) dcb_op_destroy(a->cand[i]);
    for (int i = 0; i < a->nhp; i++) {
        free((char *)a->hp[i].name);
        free((char *)a->hp[i].str);
    }
    free(a->hp);
    free(a);
}

dcb_status dcb_auto_init(dcb_op *op, const dcb_hparam *hp, int nhp) {
    dcb_auto *a = calloc(1, sizeof *a);
    if (!a) return dcb_fail(DCB_OUT_OF_MEMORY, "%s/auto: out of memory", op->info->name);
    op->autos = a;
    a->pick = -1;
    a->hp = calloc((size_t)nhp + 1, sizeof *a->hp);
    if (!a->hp) return dcb_fail(DCB_OUT_OF_MEMORY, "%s/auto: out of memory", op->info->name);
    /* all but "threads": the candidates get the outer op's, which may come
     * from the default */
    for (int i = 0; i < nhp; i++) {
        if (hp[i].name && !strcmp(hp[i].name, "threads")) continue;
        dcb_hparam *h = &a->hp[a->nhp++];
        h->num = hp[i].num;
        h->name = hp[i].name ? strdup(hp[i].name) : NULL;
        h->str = hp[i].str ? strdup(hp[i].str) : NULL;
        if ((hp[i].name && !h->name) || (hp[i].str && !h->str))
            return dcb_fail(DCB_OUT_OF_MEMORY, "%s/auto: out of memory", op->info->name);
    }
    return DCB_OK;
}

dcb_status dcb_auto_set_hp(dcb_op *op, const char *name, double value) {
    dcb_auto *a = op->autos;
    for (int i = 0; i < a->nhp; i++)
        if (a->hp[i].name && !strcmp(a->hp[i].name, name) && !a->hp[i].str) {
            a->hp[i].num = value;
            return DCB_OK;
        }
    dcb_hparam *n = realloc(a->hp, sizeof *n * ((size_t)a->nhp + 1));
    char *nm = strdup(name);
    if (!n || !nm) {
        if (n) a->hp = n;
        free(nm);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s/auto: out of memory", op->info->name);
    }
    a->hp = n;
    a->hp[a->nhp++] = (dcb_hparam){.name = nm, .num = value};
    return DCB_OK;
}

void dcb_auto_stale(dcb_auto *a) {
    for (int c = 0; c < a->ncand; c++) a->ready[c] = 0;
}

/* After the operator validated the hyperparameters (at create, and again
 * when dcb_op_set_param changes one): one inner op per candidate that
 * accepts them, with the outer op's thread count; the earlier ones, and
 * the pick, are dropped. */
static dcb_status auto_check(dcb_op *op) {
    dcb_auto *a = op->autos;
    char kept[1024];
    snprintf(kept, sizeof kept, "%s", dcb_last_error());
    for (int c = 0; c < a->ncand; c++) {
        dcb_op_destroy(a->cand[c]);
        a->cand[c] = NULL;
        a->ready[c] = 0;
    }
    a->ncand = 0;
    a->pick = -1;
    const dcb_op_info *info = op->info;
    char refused[512] = "";
    size_t ro = 0;
    int alive = 0;
    for (int i = 0; i < info->nimpls && a->ncand < AUTO_MAX_CAND; i++) {
        if (!is_candidate(info, i)) continue;
        const int c = a->ncand++;
        a->cand_name[c] = info->impls[i]->name;
        dcb_hparam all[DCB_MAX_PARAMS + 2];
        const int m = a->nhp < DCB_MAX_PARAMS ? a->nhp : DCB_MAX_PARAMS;
        memcpy(all, a->hp, sizeof *all * (size_t)m);
        all[m] = (dcb_hparam){.name = "threads", .num = op->threads};
        dcb_status st = dcb_op_create(info->name, a->cand_name[c], all, m + 1, &a->cand[c]);
        if (st == DCB_OK) {
            alive++;
        } else if (ro + 1 < sizeof refused) {
            ro += (size_t)snprintf(refused + ro, sizeof refused - ro, "%s%s (%s)", ro ? "; " : "", a->cand_name[c],
                                   dcb_status_name(st));
        }
    }
    if (a->ncand < 2)
        return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s/auto: the operator has %d implementation(s) to choose from, "
                        "auto needs two", info->name, a->ncand);
    if (!alive)
        return dcb_fail(DCB_UNSUPPORTED_PARAM, "%s/auto: no implementation runs these hyperparameters: %s",
                        info->name, refused);
    dcb_fail(DCB_OK, "%s", kept); /* the refusals of candidates that dropped out are not the caller's error */
    return DCB_OK;
}

/* ------------------------------------------------------------ the model */
static const char *rule_order[] = {"direct", "region_sorted", "band", "gather", "unfold", "gemm", "blas", "im2col"};

/* Lower is better: combine_then_conv before conv_then_combine, then the
 * engine: Winograd F(4x4) on outputs of at least 14 x 14, F(2x2) on
 * smaller ones (its kernel is 2.25x smaller, which is what a small image
 * reads), direct, im2col; implementations without an engine by rule_order. */
static int rule_rank(const dcb_impl_vt *vt, const int64_t *y, int yn) {
    int r = vt->strategy && strcmp(vt->strategy, "combine_then_conv") ? 100 : 0;
    const char *e = vt->engine ? vt->engine->name : vt->name;
    const int big = yn == 4 && y[2] * y[3] >= 14 * 14;
    if (!strcmp(e, "winograd")) return r + (big ? 0 : 1);
    if (!strcmp(e, "winograd_f2")) return r + (big ? 1 : 0);
    for (size_t i = 0; i < sizeof rule_order / sizeof *rule_order; i++)
        if (!strcmp(e, rule_order[i])) return r + 2 + (int)i;
    return r + 50;
}

static double feat_dist(const double *a, const double *b) {
    double d = 0;
    for (int i = 0; i < 4; i++) d += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(d);
}

/* The pick for x among the candidates that plan it; -1 (message set) when
 * none does. Writes the reason into a->reason. Does not change op. */
static int auto_choose(const dcb_op *op, int ndim, const int64_t *x, char *reason, size_t rlen) {
    const dcb_auto *a = op->autos;
    int ok[AUTO_MAX_CAND] = {0}, nok = 0;
    char kept[1024];
    snprintf(kept, sizeof kept, "%s", dcb_last_error());
    char refused[512] = "";
    size_t ro = 0;
    for (int c = 0; c < a->ncand; c++) {
        if (!a->cand[c]) continue;
        if (dcb_op_plan(a->cand[c], ndim, x, NULL, NULL, NULL) == DCB_OK) {
            ok[c] = 1;
            nok++;
        } else if (ro + 1 < sizeof refused) {
            ro += (size_t)snprintf(refused + ro, sizeof refused - ro, "%s%s: %s", ro ? "; " : "", a->cand_name[c],
                                   dcb_last_error());
        }
    }
    if (!nok) {
        char s[128];
        dcb_fail(DCB_UNSUPPORTED_SHAPE, "%s/auto: no implementation runs the input %s: %s", op->info->name,
                 dcb_shape_str(ndim, x, s, sizeof s), refused);
        return -1;
    }
    dcb_cost q = {0}; /* the operator's cost (dcb_op_cost would ask for executed_macs: this choice) */
    op->info->cost(op, x, &q);
    const double qf[4] = {log2(q.macs > 0 ? q.macs : 1), log2(q.bytes + 1), log2(q.params + 1), log2(q.acts + 1)};
    const char *isa = dcb_isa();
    double pred[AUTO_MAX_CAND], dist[AUTO_MAX_CAND];
    int have = 0, used_threads = 0;
    pthread_mutex_lock(&ref_lock);
    /* the thread count nearest the op's among this operator's references at this ISA level */
    double best_td = INFINITY;
    for (int i = 0; i < nrefs; i++) {
        const ref_row *r = &refs[i];
        if (strcmp(r->op, op->info->name) || strcmp(r->isa, isa)) continue;
        const double td = fabs(log2((double)r->threads / op->threads));
        if (td < best_td) best_td = td, used_threads = r->threads;
    }
    for (int c = 0; c < a->ncand; c++) {
        pred[c] = INFINITY, dist[c] = INFINITY;
        if (!ok[c] || !used_threads) continue;
        const ref_row *near = NULL;
        for (int i = 0; i < nrefs; i++) {
            const ref_row *r = &refs[i];
            if (r->threads != used_threads || strcmp(r->op, op->info->name) || strcmp(r->isa, isa) ||
                strcmp(r->impl, a->cand_name[c]))
                continue;
            const double d = feat_dist(qf, r->f);
            if (d < dist[c]) dist[c] = d, near = r;
        }
        if (!near) continue;
        dcb_cost cc;
        dcb_op_cost(a->cand[c], ndim, x, &cc);
        pred[c] = near->seconds * (cc.executed_macs > 0 ? cc.executed_macs : q.macs) / near->executed_macs;
        have++;
    }
    pthread_mutex_unlock(&ref_lock);
    int best = -1;
    size_t o = 0;
    char s[128];
    dcb_shape_str(ndim, x, s, sizeof s);
    if (have) {
        for (int c = 0; c < a->ncand; c++)
            if (pred[c] < INFINITY && (best < 0 || pred[c] < pred[best])) best = c;
        o += (size_t)snprintf(reason + o, rlen - o, "calibrated (%s, %d thread%s) for %s:", isa, used_threads,
                              used_threads == 1 ? "" : "s", s);
        for (int c = 0; c < a->ncand && o + 1 < rlen; c++)
            if (pred[c] < INFINITY)
                o += (size_t)snprintf(reason + o, rlen - o, " %s %.3g ms (reference at distance %.2f);",
                                      a->cand_name[c], pred[c] * 1e3, dist[c]);
    } else {
        int yn = 0;
        int64_t y[DCB_MAX_DIMS] = {0};
        op->info->out_shape(op, ndim, x, &yn, y);
        int br = 0;
        for (int c = 0; c < a->ncand; c++) {
            if (!ok[c]) continue;
            const int rk = rule_rank(a->cand[c]->impl, y, yn);
            if (best < 0 || rk < br) best = c, br = rk;
        }
        o += (size_t)snprintf(reason + o, rlen - o,
                              "rule (no calibration of %s at %s: run dcbench calibrate) for %s; runnable:",
                              op->info->name, isa, s);
        for (int c = 0; c < a->ncand && o + 1 < rlen; c++)
            if (ok[c]) o += (size_t)snprintf(reason + o, rlen - o, " %s", a->cand_name[c]);
    }
    if (o + 1 < rlen) snprintf(reason + o, rlen - o, " -> %s", a->cand_name[best]);
    dcb_fail(DCB_OK, "%s", kept);
    return best;
}

dcb_status dcb_auto_pick(dcb_op *op, int ndim, const int64_t *x) {
    dcb_auto *a = op->autos;
    char reason[sizeof a->reason];
    const int c = auto_choose(op, ndim, x, reason, sizeof reason);
    if (c < 0) return DCB_UNSUPPORTED_SHAPE;
    a->pick = c;
    memcpy(a->reason, reason, sizeof reason);
    return DCB_OK;
}

/* The picked inner op with the outer op's weights, prepared. */
static dcb_status sync_pick(dcb_op *op) {
    dcb_auto *a = op->autos;
    const int c = a->pick;
    if (a->ready[c]) return DCB_OK;
    dcb_op *in = a->cand[c];
    for (int i = 0; i < op->nweights; i++) {
        dcb_status st = dcb_op_set_weight(in, op->wspec[i].name, op->w[i]);
        if (st != DCB_OK) return st;
    }
    dcb_status st = dcb_op_prepare(in);
    if (st != DCB_OK) return st;
    a->ready[c] = 1;
    return DCB_OK;
}

dcb_op *dcb_auto_inner(dcb_op *op) {
    if (!op->autos || op->autos->pick < 0) return NULL;
    return sync_pick(op) == DCB_OK ? op->autos->cand[op->autos->pick] : NULL;
}

/* The input's dimensions, which the vtable's shape-only hooks are not given. */
static int input_ndim(const dcb_op *op) {
    return dcb_op_input_layout(op->info->name) == DCB_INPUT_SEQUENCE ? 3 : 4;
}

static size_t auto_workspace(const dcb_op *op, const int64_t *x) {
    const dcb_auto *a = op->autos;
    size_t ws = 0;
    const int ndim = input_ndim(op);
    if (a->pick >= 0) dcb_op_plan(a->cand[a->pick], ndim, x, NULL, NULL, &ws);
    return ws;
}

/* New weights: every inner op takes them again when next picked; the
 * current pick now, so that its weight-side work is timed as preparation. */
static dcb_status auto_prepare(dcb_op *op) {
    dcb_auto *a = op->autos;
    for (int c = 0; c < a->ncand; c++) a->ready[c] = 0;
    return a->pick >= 0 ? sync_pick(op) : DCB_OK;
}

static dcb_status auto_plan(dcb_op *op, const int64_t *x) {
    dcb_status st = sync_pick(op);
    if (st != DCB_OK) return st;
    return dcb_op_plan(op->autos->cand[op->autos->pick], input_ndim(op), x, NULL, NULL, NULL);
}

static dcb_status auto_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    dcb_op *in = dcb_auto_inner(op);
    if (!in) return dcb_fail(DCB_INVALID_ARGUMENT, "%s/auto: run before a plan", op->info->name);
    /* the workspace was sized by the pick's plan before it was prepared: a
     * pick that wants more now is an error, never an overrun */
    return dcb_op_run_ws(in, x, y, ws, op->plan_ws, prof);
}

static double auto_executed(const dcb_op *op, const int64_t *x) {
    const int ndim = input_ndim(op);
    const dcb_auto *a = op->autos;
    int c = -1;
    if (a->pick >= 0 && op->planned && op->plan_ndim == ndim && !memcmp(op->plan_x, x, sizeof *x * (size_t)ndim)) {
        c = a->pick; /* the planned shape's pick: no second choice */
    } else {
        char reason[64];
        c = auto_choose(op, ndim, x, reason, sizeof reason);
    }
    dcb_cost cc = {0};
    if (c >= 0) dcb_op_cost(a->cand[c], ndim, x, &cc);
    return cc.executed_macs;
}

const char *dcb_op_get_picked(const dcb_op *op) {
    return op && op->autos && op->autos->pick >= 0 ? op->autos->cand_name[op->autos->pick] : NULL;
}

const char *dcb_op_get_pick_reason(const dcb_op *op) {
    return op && op->autos && op->autos->pick >= 0 ? op->autos->reason : NULL;
}

double dcb_auto_tolerance(const dcb_op *op) {
    const dcb_auto *a = op->autos;
    double t = 0;
    for (int c = 0; c < a->ncand; c++) {
        if (!a->cand[c] || (a->pick >= 0 && c != a->pick)) continue;
        const double ct = dcb_op_tolerance(a->cand[c]);
        if (ct > t) t = ct;
    }
    return t;
}
