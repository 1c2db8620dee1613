/* The training loop: minibatches in a seeded order, softmax cross-entropy,
 * SGD (momentum, Nesterov) or AdamW with PyTorch's update rules, learning
 * rate schedules, temperature annealing, evaluation, and checkpoints from
 * which a killed run resumes to the same weights bit for bit. */
#define _XOPEN_SOURCE 700
#include "dcb_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#define PI 3.14159265358979323846

dcb_train_config dcb_train_defaults(void) {
    dcb_train_config c = {.epochs = 3, .batch = 64, .threads = 1, .seed = 1, .optimizer = "sgd", .lr = 0.1,
                          .momentum = 0.9, .weight_decay = 5e-4, .nesterov = 1, .beta1 = 0.9, .beta2 = 0.999,
                          .adam_eps = 1e-8, .schedule = "onecycle", .pct_start = 0.3, .div_factor = 25,
                          .final_div_factor = 1e4, .step_epochs = 1, .gamma = 0.1, .eval_batch = 500};
    return c;
}

void dcb_train_result_free(dcb_train_result *r) {
    if (!r) return;
    free(r->epochs);
    r->epochs = NULL;
    r->nepochs = 0;
}

/* ----------------------------------------------------------- schedules */
static double lr_at(const dcb_train_config *c, int64_t step, int64_t total, int64_t per_epoch) {
    if (!strcmp(c->schedule, "constant")) return c->lr;
    if (!strcmp(c->schedule, "cosine")) return c->lr * 0.5 * (1 + cos(PI * (double)step / (double)total));
    if (!strcmp(c->schedule, "step")) return c->lr * pow(c->gamma, (double)(step / per_epoch / c->step_epochs));
    /* onecycle, as torch.optim.lr_scheduler.OneCycleLR with anneal_strategy
     * "cos" (and no momentum cycling): from lr/div up to lr until step
     * pct_start*total - 1, then down to lr/div/final_div at step total - 1. */
    const double initial = c->lr / c->div_factor, final = initial / c->final_div_factor;
    const double up_end = c->pct_start * (double)total - 1, s = (double)step;
    if (s <= up_end) {
        const double p = up_end > 0 ? s / up_end : 1;
        return c->lr + (initial - c->lr) * 0.5 * (1 + cos(PI * p));
    }
    const double down = (double)total - 1 - up_end;
    const double p = down > 0 ? (s - up_end) / down : 1;
    return final + (c->lr - final) * 0.5 * (1 + cos(PI * p));
}

static double tau_at(const dcb_train_config *c, int64_t step, int64_t per_epoch) {
    const double span = c->tau_epochs * (double)per_epoch;
    if (span <= 0 || (double)step >= span) return c->tau_end;
    return c->tau_start + (c->tau_end - c->tau_start) * (double)step / span;
}

static dcb_status set_temperature(dcb_net *net, double tau) {
    for (int i = 0; i < dcb_net_size(net); i++) {
        dcb_op *op = dcb_net_node_op(net, i);
        if (!op || dcb_param_index(op->info, "temperature") < 0 || dcb_pv(op, "temperature") == tau) continue;
        dcb_status st = dcb_op_set_param(op, "temperature", tau);
        if (st != DCB_OK) return st;
    }
    return DCB_OK;
}

/* ----------------------------------------------------------- optimisers */
typedef struct optim {
    int np;
    dcb_tensor **m, **v;        /* momentum / first moment; second moment (AdamW) */
    int64_t t;                  /* steps taken */
} optim;

static void optim_free(optim *o) {
    for (int i = 0; i < o->np; i++) {
        if (o->m) dcb_tensor_free(o->m[i]);
        if (o->v) dcb_tensor_free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

static dcb_status optim_init(optim *o, const dcb_net *net, int adam) {
    o->np = dcb_net_param_count(net);
    o->m = calloc((size_t)o->np, sizeof *o->m);
    o->v = adam ? calloc((size_t)o->np, sizeof *o->v) : NULL;
    if (!o->m || (adam && !o->v)) return dcb_fail(DCB_OUT_OF_MEMORY, "train: out of memory");
    for (int i = 0; i < o->np; i++) {
        const dcb_tensor *p = dcb_net_param(net, i);
        if (!p) return dcb_fail(DCB_INVALID_WEIGHT, "train: %s is not set (init the net)", dcb_net_param_name(net, i));
        if (!(o->m[i] = dcb_tensor_new(p->ndim, p->shape)) || (adam && !(o->v[i] = dcb_tensor_new(p->ndim, p->shape))))
            return dcb_fail(DCB_OUT_OF_MEMORY, "train: out of memory");
    }
    return DCB_OK;
}

static double grad_norm(const dcb_net *net) {
    double s = 0;
    for (int i = 0; i < dcb_net_param_count(net); i++) {
        if (dcb_net_param_kind(net, i) == DCB_PARAM_BUFFER) continue;
        const dcb_tensor *g = dcb_net_grad(net, i);
        for (int64_t k = 0; k < g->size; k++) s += (double)g->data[k] * g->data[k];
    }
    return sqrt(s);
}

/* One step, PyTorch's rules. The gradients are of the mean loss. SGD:
 * g += wd*w; buf = mu*buf + g (buf = g at the first step); g = g + mu*buf
 * (Nesterov) or buf; w -= lr*g. AdamW: w -= lr*wd*w, then Adam on g. */
static void optim_step(optim *o, dcb_net *net, const dcb_train_config *c, double lr) {
    const int adam = o->v != NULL;
    o->t++;
    const double bc1 = 1 - pow(c->beta1, (double)o->t), bc2 = 1 - pow(c->beta2, (double)o->t);
    for (int i = 0; i < o->np; i++) {
        const int kind = dcb_net_param_kind(net, i);
        if (kind == DCB_PARAM_BUFFER) continue;
        const double wd = (kind == DCB_PARAM_NO_DECAY && c->no_decay_bn_bias) ? 0 : c->weight_decay;
        const dcb_tensor *g = dcb_net_grad(net, i);
        dcb_tensor *w = dcb_net_param_mut(net, i);
        float *restrict pw = w->data, *restrict pm = o->m[i]->data;
        const float *restrict pg = g->data;
        const int64_t n = w->size;
        if (adam) {
            float *restrict pv = o->v[i]->data;
            const float b1 = (float)c->beta1, b2 = (float)c->beta2;
            const float decay = (float)(1 - lr * wd), step = (float)(lr / bc1), rb2 = (float)(1 / sqrt(bc2));
            const float eps = (float)c->adam_eps;
            for (int64_t k = 0; k < n; k++) {
                pw[k] *= decay;
                pm[k] = b1 * pm[k] + (1 - b1) * pg[k];
                pv[k] = b2 * pv[k] + (1 - b2) * pg[k] * pg[k];
                pw[k] -= step * pm[k] / (sqrtf(pv[k]) * rb2 + eps);
            }
        } else {
            const float mu = (float)c->momentum, fwd = (float)wd, flr = (float)lr;
            const int first = o->t == 1;
            for (int64_t k = 0; k < n; k++) {
                float gk = pg[k] + fwd * pw[k];
                if (mu != 0) {
                    pm[k] = first ? gk : mu * pm[k] + gk;
                    gk = c->nesterov ? gk + mu * pm[k] : pm[k];
                }
                pw[k] -= flr * gk;
            }
        }
    }
}

/* ---------------------------------------------------------- checkpoints
 * dir/manifest.json (the state and the settings that must match on resume),
 * dir/weights/<node>/<w>.npy, dir/optim/<param>.m.npy (.v.npy), and
 * dir/history.csv (the finished epochs). Written into dir.tmp, then
 * swapped in by renames: a kill at any point leaves dir or dir.old whole. */
typedef struct ckpt_state {
    int64_t step, epoch, batch;  /* steps done; the epoch (0-based) and its next batch */
    int64_t opt_t;
} ckpt_state;


static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a checkpoint directory of our own (dir.tmp, dir.old) and what is in it. */
static dcb_status rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return DCB_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return dcb_fail(DCB_IO_ERROR, "cannot remove %s: %s", path, strerror(errno));
    return DCB_OK;
}

/* The shortest of %.15g and %.17g that reads back as v. */
static const char *num(char *buf, double v) {
    snprintf(buf, 32, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, 32, "%.17g", v);
    return buf;
}

static void config_json(FILE *f, const dcb_net *net, const dcb_train_config *c, int64_t n_train) {
    char a[32], b[32], d[32];
    fprintf(f,
            "  \"seed\": %llu,\n  \"threads\": %d,\n  \"epochs\": %d,\n  \"batch\": %d,\n  \"optimizer\": \"%s\",\n"
            "  \"lr\": %s,\n  \"momentum\": %s,\n  \"weight_decay\": %s,\n  \"nesterov\": %d,\n"
            "  \"schedule\": \"%s\",\n  \"train_examples\": %lld,\n  \"params\": %d,\n",
            (unsigned long long)c->seed, c->threads, c->epochs, c->batch, c->optimizer, num(a, c->lr),
            num(b, c->momentum), num(d, c->weight_decay), c->nesterov, c->schedule, (long long)n_train,
            dcb_net_param_count(net));
}

static dcb_status write_history(const char *path, const dcb_epoch_stats *e, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return dcb_fail(DCB_IO_ERROR, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "epoch,train_loss,train_acc,test_loss,test_acc,seconds,images_per_s,grad_norm,lr\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", e[i].epoch, e[i].train_loss,
                e[i].train_acc, e[i].test_loss, e[i].test_acc, e[i].seconds, e[i].images_per_s, e[i].grad_norm,
                e[i].lr);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return dcb_fail(DCB_IO_ERROR, "cannot write %s: %s", path, strerror(errno));
    }
    fclose(f);
    return DCB_OK;
}

static dcb_status save_checkpoint(const char *dir, const dcb_net *net, const optim *o, const dcb_train_config *c,
                                  const ckpt_state *s, int64_t n_train, const dcb_epoch_stats *hist, int nhist) {
    char tmp[4096], old[4096], path[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    snprintf(old, sizeof old, "%s.old", dir);
    dcb_status st = rm_rf(tmp);
    if (st == DCB_OK) st = dcb_mkdir(tmp);
    snprintf(path, sizeof path, "%s/weights", tmp);
    if (st == DCB_OK) st = dcb_net_save(net, path);
    snprintf(path, sizeof path, "%s/optim", tmp);
    if (st == DCB_OK) st = dcb_mkdir(path);
    for (int i = 0; st == DCB_OK && i < o->np; i++) {
        snprintf(path, sizeof path, "%s/optim/%s.m.npy", tmp, dcb_net_param_name(net, i));
        st = dcb_npy_save(path, o->m[i]);
        if (st == DCB_OK && o->v) {
            snprintf(path, sizeof path, "%s/optim/%s.v.npy", tmp, dcb_net_param_name(net, i));
            st = dcb_npy_save(path, o->v[i]);
        }
    }
    snprintf(path, sizeof path, "%s/history.csv", tmp);
    if (st == DCB_OK) st = write_history(path, hist, nhist);
    if (st != DCB_OK) return st;
    snprintf(path, sizeof path, "%s/manifest.json", tmp);
    FILE *f = fopen(path, "w");
    if (!f) return dcb_fail(DCB_IO_ERROR, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "{\n  \"format\": \"dcbench-checkpoint-1\",\n  \"step\": %lld,\n  \"next_epoch\": %lld,\n"
               "  \"next_batch\": %lld,\n  \"optimizer_steps\": %lld,\n",
            (long long)s->step, (long long)s->epoch, (long long)s->batch, (long long)s->opt_t);
    config_json(f, net, c, n_train);
    fprintf(f, "  \"done\": true\n}\n");
    const int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    fclose(f);
    if (bad) return dcb_fail(DCB_IO_ERROR, "cannot write %s: %s", path, strerror(errno));
    /* dir -> dir.old, dir.tmp -> dir, remove dir.old */
    struct stat sb;
    if ((st = rm_rf(old)) != DCB_OK) return st;
    if (stat(dir, &sb) == 0 && rename(dir, old) != 0)
        return dcb_fail(DCB_IO_ERROR, "cannot rename %s: %s", dir, strerror(errno));
    if (rename(tmp, dir) != 0) return dcb_fail(DCB_IO_ERROR, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    return rm_rf(old);
}

/* The value of "key": in our own manifest (one key per line; no key is a
 * suffix of another). */
static int manifest_get(const char *text, const char *key, char *val, size_t len) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(text, pat);
    if (!p) return 0;
    p += strlen(pat);
    if (*p == '"') p++;
    size_t n = strcspn(p, "\",\n");
    if (n >= len) n = len - 1;
    memcpy(val, p, n);
    val[n] = 0;
    return 1;
}

static dcb_status read_history(const char *path, dcb_epoch_stats **out, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) return dcb_fail(DCB_INVALID_FILE, "checkpoint: cannot read %s", path);
    char line[1024];
    int cap = 0;
    *n = 0;
    *out = NULL;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    while (fgets(line, sizeof line, f)) {
        dcb_epoch_stats e;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &e.epoch, &e.train_loss, &e.train_acc, &e.test_loss,
                   &e.test_acc, &e.seconds, &e.images_per_s, &e.grad_norm, &e.lr) != 9) {
            fclose(f);
            return dcb_fail(DCB_INVALID_FILE, "checkpoint: %s has a malformed line: %s", path, line);
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            dcb_epoch_stats *g = realloc(*out, sizeof *g * (size_t)cap);
            if (!g) {
                fclose(f);
                return dcb_fail(DCB_OUT_OF_MEMORY, "checkpoint: out of memory");
            }
            *out = g;
        }
        (*out)[(*n)++] = e;
    }
    fclose(f);
    return DCB_OK;
}

/* Loads dir into net and o when it holds a checkpoint (*found = 1): its
 * settings must be the run's, else DCB_INVALID_ARGUMENT naming the first
 * difference. A dir.old left by a kill between the renames is used when dir
 * is missing. */
static dcb_status load_checkpoint(const char *dir_in, dcb_net *net, optim *o, const dcb_train_config *c,
                                  int64_t n_train, ckpt_state *s, dcb_epoch_stats **hist, int *nhist, int *found) {
    char dir[4096], path[4200];
    struct stat sb;
    *found = 0;
    snprintf(dir, sizeof dir, "%s/manifest.json", dir_in);
    if (stat(dir, &sb) != 0) {
        snprintf(dir, sizeof dir, "%s.old/manifest.json", dir_in);
        if (stat(dir, &sb) != 0) return DCB_OK;
        snprintf(dir, sizeof dir, "%s.old", dir_in);
    } else {
        snprintf(dir, sizeof dir, "%s", dir_in);
    }
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) return dcb_fail(DCB_IO_ERROR, "cannot read %s: %s", path, strerror(errno));
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    char v[256];
    if (!manifest_get(text, "done", v, sizeof v) || strcmp(v, "true"))
        return dcb_fail(DCB_INVALID_FILE, "checkpoint %s is incomplete or not a dcbench checkpoint", path);
    /* the settings: as this run writes them, compared line by line */
    char mine[4096];
    FILE *m = fmemopen(mine, sizeof mine, "w");
    if (!m) return dcb_fail(DCB_OUT_OF_MEMORY, "checkpoint: out of memory");
    config_json(m, net, c, n_train);
    fclose(m);
    for (char *line = strtok(mine, "\n"); line; line = strtok(NULL, "\n")) {
        char key[64], want[256];
        if (sscanf(line, " \"%63[^\"]\": %255[^,\n]", key, want) != 2) continue;
        char *q = want;
        if (*q == '"') {
            q++;
            q[strcspn(q, "\"")] = 0;
        }
        if (!manifest_get(text, key, v, sizeof v) || strcmp(v, q))
            return dcb_fail(DCB_INVALID_ARGUMENT,
                            "checkpoint %s was made with %s=%s, this run has %s=%s: use another checkpoint "
                            "directory or remove it",
                            dir, key, manifest_get(text, key, v, sizeof v) ? v : "(none)", key, q);
    }
    if (!manifest_get(text, "step", v, sizeof v)) return dcb_fail(DCB_INVALID_FILE, "checkpoint %s: no step", path);
    s->step = atoll(v);
    manifest_get(text, "next_epoch", v, sizeof v), s->epoch = atoll(v);
    manifest_get(text, "next_batch", v, sizeof v), s->batch = atoll(v);
    manifest_get(text, "optimizer_steps", v, sizeof v), s->opt_t = atoll(v);
    snprintf(path, sizeof path, "%s/weights", dir);
    dcb_status st = dcb_net_load(net, path);
    for (int i = 0; st == DCB_OK && i < o->np; i++) {
        dcb_tensor *t = NULL;
        for (int k = 0; k < 2 && st == DCB_OK; k++) {
            dcb_tensor *dst = k ? (o->v ? o->v[i] : NULL) : o->m[i];
            if (!dst) continue;
            snprintf(path, sizeof path, "%s/optim/%s.%s.npy", dir, dcb_net_param_name(net, i), k ? "v" : "m");
            if ((st = dcb_npy_load(path, &t)) != DCB_OK) break;
            if (!dcb_shape_equal(t, dst->ndim, dst->shape))
                st = dcb_fail(DCB_INVALID_FILE, "checkpoint: %s has the wrong shape", path);
            else
                memcpy(dst->data, t->data, sizeof(float) * (size_t)t->size);
            dcb_tensor_free(t);
            t = NULL;
        }
    }
    o->t = s->opt_t;
    snprintf(path, sizeof path, "%s/history.csv", dir);
    if (st == DCB_OK) st = read_history(path, hist, nhist);
    if (st == DCB_OK) *found = 1;
    return st;
}

/* ------------------------------------------------------------------ loop */
/* The net's output y must give a score per class of d. */
static dcb_status check_logits(const dcb_tensor *y, int b, const dcb_dataset *d) {
    const int64_t k = b ? y->size / b : 0;
    if (y->ndim != 2 || k < d->classes)
        return dcb_fail(DCB_INVALID_SHAPE,
                        "train: the network gives %lld scores per image (a %d-D output), the dataset has %d classes",
                        (long long)k, y->ndim, d->classes);
    return DCB_OK;
}

dcb_status dcb_net_evaluate(dcb_net *net, const dcb_dataset *d, int batch, double *loss, double *acc) {
    if (!net || !d || batch < 1) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_net_evaluate: bad argument");
    int64_t *perm = malloc(sizeof *perm * (size_t)d->n);
    int32_t *yb = malloc(sizeof *yb * (size_t)batch);
    dcb_tensor *x = dcb_tensor_new4(batch, d->c, d->h, d->w);
    dcb_status st = perm && yb && x ? DCB_OK : dcb_fail(DCB_OUT_OF_MEMORY, "evaluate: out of memory");
    double sum = 0;
    int64_t hits = 0;
    for (int64_t i = 0; i < d->n; i++) perm[i] = i;
    for (int64_t s = 0; st == DCB_OK && s < d->n; s += batch) {
        const int b = dcb_dataset_batch(d, perm, s, batch, NULL, x->data, yb);
        x->shape[0] = b;
        x->size = (int64_t)b * d->c * d->h * d->w;
        const dcb_tensor *y;
        if ((st = dcb_net_forward(net, x, 0, &y)) != DCB_OK || (st = check_logits(y, b, d)) != DCB_OK) break;
        int64_t c = 0;
        sum += dcb_softmax_ce(y, yb, 0, NULL, &c) * b;
        hits += c;
    }
    free(perm);
    free(yb);
    dcb_tensor_free(x);
    if (st == DCB_OK) {
        *loss = d->n ? sum / (double)d->n : 0;
        *acc = d->n ? (double)hits / (double)d->n : 0;
    }
    return st;
}

static dcb_status check_config(const dcb_train_config *c) {
    if (c->epochs < 1) return dcb_fail(DCB_INVALID_PARAM, "train: epochs=%d (need >= 1)", c->epochs);
    if (c->batch < 1) return dcb_fail(DCB_INVALID_PARAM, "train: batch=%d (need >= 1)", c->batch);
    if (c->threads < 1) return dcb_fail(DCB_INVALID_PARAM, "train: threads=%d (need >= 1)", c->threads);
    if (!(c->lr > 0) || !isfinite(c->lr)) return dcb_fail(DCB_INVALID_PARAM, "train: lr=%g (need > 0)", c->lr);
    if (!c->optimizer || (strcmp(c->optimizer, "sgd") && strcmp(c->optimizer, "adamw")))
        return dcb_fail(DCB_INVALID_PARAM, "train: unknown optimizer '%s' (valid: sgd, adamw)",
                        c->optimizer ? c->optimizer : "(null)");
    static const char *const sch[] = {"onecycle", "cosine", "step", "constant"};
    int ok = 0;
    for (int i = 0; i < 4; i++) ok |= c->schedule && !strcmp(c->schedule, sch[i]);
    if (!ok)
        return dcb_fail(DCB_INVALID_PARAM, "train: unknown schedule '%s' (valid: onecycle, cosine, step, constant)",
                        c->schedule ? c->schedule : "(null)");
    if (c->momentum < 0 || c->momentum >= 1) return dcb_fail(DCB_INVALID_PARAM, "train: momentum=%g", c->momentum);
    if (c->weight_decay < 0) return dcb_fail(DCB_INVALID_PARAM, "train: weight_decay=%g", c->weight_decay);
    if (c->label_smoothing < 0 || c->label_smoothing >= 1)
        return dcb_fail(DCB_INVALID_PARAM, "train: label_smoothing=%g (need 0 <= s < 1)", c->label_smoothing);
    if (c->step_epochs < 1) return dcb_fail(DCB_INVALID_PARAM, "train: step_epochs=%d", c->step_epochs);
    if (c->eval_batch < 1) return dcb_fail(DCB_INVALID_PARAM, "train: eval_batch=%d", c->eval_batch);
    if (c->tau_epochs > 0 && !(c->tau_start > 0 && c->tau_end > 0))
        return dcb_fail(DCB_INVALID_PARAM, "train: temperatures %g -> %g must be > 0", c->tau_start, c->tau_end);
    return DCB_OK;
}

dcb_status dcb_train(dcb_net *net, const dcb_dataset *train, const dcb_dataset *test, const dcb_train_config *c,
                     dcb_train_callback cb, void *ud, dcb_train_result *out) {
    if (!net || !train || !c || !out) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_train: NULL argument");
    memset(out, 0, sizeof *out);
    out->resumed_step = -1;
    dcb_status st = check_config(c);
    if (st != DCB_OK) return st;
    if (train->n < 1) return dcb_fail(DCB_INVALID_ARGUMENT, "train: the training set is empty");
    const int adam = !strcmp(c->optimizer, "adamw");
    const int64_t per_epoch = (train->n + c->batch - 1) / c->batch, total = per_epoch * c->epochs;
    optim o;
    memset(&o, 0, sizeof o);
    int64_t *perm = malloc(sizeof *perm * (size_t)train->n);
    int32_t *yb = malloc(sizeof *yb * (size_t)c->batch);
    dcb_tensor *x = dcb_tensor_new4(c->batch, train->c, train->h, train->w), *dlog = NULL;
    dcb_epoch_stats *hist = NULL;
    int nhist = 0;
    if (!perm || !yb || !x) st = dcb_fail(DCB_OUT_OF_MEMORY, "train: out of memory");
    if (st == DCB_OK) st = optim_init(&o, net, adam);
    ckpt_state s = {0, 0, 0, 0};
    if (st == DCB_OK && c->checkpoint) {
        int found = 0;
        st = load_checkpoint(c->checkpoint, net, &o, c, train->n, &s, &hist, &nhist, &found);
        if (st == DCB_OK && found) out->resumed_step = s.step;
    }
    dcb_blas_threads_for(c->threads);
    int stop = 0;
    for (; st == DCB_OK && !stop && s.epoch < c->epochs; s.epoch++, s.batch = 0) {
        dcb_dataset_order(train->n, c->seed, s.epoch, perm);
        const dcb_augment aug = {.flip = c->flip, .crop_pad = c->crop_pad, .seed = c->seed ^ 0xA5A5u, .epoch = s.epoch};
        double loss_sum = 0, gn_sum = 0, t_train = 0, lr = c->lr;
        int64_t hits = 0, seen = 0, nb = 0;
        for (; st == DCB_OK && s.batch < per_epoch; s.batch++) {
            if (c->max_steps && s.step >= c->max_steps) {
                stop = 1;
                break;
            }
            const double t0 = dcb_now();
            const int b = dcb_dataset_batch(train, perm, s.batch * c->batch, c->batch,
                                            (c->flip || c->crop_pad) ? &aug : NULL, x->data, yb);
            x->shape[0] = b;
            x->size = (int64_t)b * train->c * train->h * train->w;
            lr = lr_at(c, s.step, total, per_epoch);
            if (c->tau_epochs > 0 && (st = set_temperature(net, tau_at(c, s.step, per_epoch))) != DCB_OK) break;
            const dcb_tensor *y;
            if ((st = dcb_net_forward(net, x, 1, &y)) != DCB_OK || (st = check_logits(y, b, train)) != DCB_OK) break;
            if (!dlog || !dcb_shape_equal(dlog, y->ndim, y->shape)) {
                dcb_tensor_free(dlog);
                if (!(dlog = dcb_tensor_new(y->ndim, y->shape))) {
                    st = dcb_fail(DCB_OUT_OF_MEMORY, "train: out of memory");
                    break;
                }
            }
            int64_t hb = 0;
            const double loss = dcb_softmax_ce(y, yb, c->label_smoothing, dlog, &hb);
            if (!isfinite(loss)) {
                st = dcb_fail(DCB_INVALID_ARGUMENT, "train: the loss is %g at step %lld (epoch %lld): lower lr=%g",
                              loss, (long long)s.step, (long long)s.epoch + 1, c->lr);
                break;
            }
            if ((st = dcb_net_backward(net, dlog)) != DCB_OK) break;
            const double gn = grad_norm(net);
            optim_step(&o, net, c, lr);
            s.step++;
            t_train += dcb_now() - t0;
            loss_sum += loss * b;
            hits += hb;
            seen += b;
            gn_sum += gn;
            nb++;
            if (c->checkpoint && c->checkpoint_every && s.step % c->checkpoint_every == 0 && s.batch + 1 < per_epoch) {
                ckpt_state cs = s;
                cs.batch = s.batch + 1;
                cs.opt_t = o.t;
                if ((st = save_checkpoint(c->checkpoint, net, &o, c, &cs, train->n, hist, nhist)) != DCB_OK) break;
            }
            if (cb) {
                const double ips = t_train > 0 ? (double)seen / t_train : 0;
                const int64_t left = (per_epoch - s.batch - 1) + (int64_t)(c->epochs - s.epoch - 1) * per_epoch;
                dcb_train_progress p = {.epoch = (int)s.epoch + 1, .epochs = c->epochs, .batch = s.batch + 1,
                                        .batches = per_epoch, .step = s.step, .loss = loss_sum / (double)seen,
                                        .acc = (double)hits / (double)seen, .images_per_s = ips,
                                        .eta_s = ips > 0 ? (double)left * c->batch / ips : 0, .lr = lr,
                                        .grad_norm = gn};
                if (cb(ud, &p)) {
                    stop = 1;
                    s.batch++; /* this batch is done: a checkpoint resumes after it */
                    break;
                }
            }
        }
        if (st != DCB_OK) break;
        if (stop) {
            if (c->checkpoint) {
                ckpt_state cs = s;
                cs.opt_t = o.t;
                st = save_checkpoint(c->checkpoint, net, &o, c, &cs, train->n, hist, nhist);
            }
            break;
        }
        dcb_epoch_stats e = {.epoch = (int)s.epoch + 1, .train_loss = seen ? loss_sum / (double)seen : NAN,
                             .train_acc = seen ? (double)hits / (double)seen : NAN, .test_loss = NAN, .test_acc = NAN,
                             .seconds = t_train, .images_per_s = t_train > 0 ? (double)seen / t_train : NAN,
                             .grad_norm = nb ? gn_sum / (double)nb : NAN, .lr = lr};
        if (test && (st = dcb_net_evaluate(net, test, c->eval_batch, &e.test_loss, &e.test_acc)) != DCB_OK) break;
        dcb_epoch_stats *g = realloc(hist, sizeof *g * (size_t)(nhist + 1));
        if (!g) {
            st = dcb_fail(DCB_OUT_OF_MEMORY, "train: out of memory");
            break;
        }
        hist = g;
        hist[nhist++] = e;
        if (c->checkpoint) {
            ckpt_state cs = {.step = s.step, .epoch = s.epoch + 1, .batch = 0, .opt_t = o.t};
            if ((st = save_checkpoint(c->checkpoint, net, &o, c, &cs, train->n, hist, nhist)) != DCB_OK) break;
        }
        if (cb) {
            dcb_train_progress p = {.epoch = (int)s.epoch + 1, .epochs = c->epochs, .batch = per_epoch,
                                    .batches = per_epoch, .step = s.step, .loss = e.train_loss, .acc = e.train_acc,
                                    .images_per_s = e.images_per_s, .lr = lr, .grad_norm = e.grad_norm,
                                    .epoch_done = &hist[nhist - 1]};
            if (cb(ud, &p)) stop = 1;
        }
    }
    out->steps = s.step;
    out->epochs = hist;
    out->nepochs = nhist;
    out->test_loss = nhist ? hist[nhist - 1].test_loss : NAN;
    out->test_acc = nhist ? hist[nhist - 1].test_acc : NAN;
    if (st != DCB_OK) {
        free(hist);
        out->epochs = NULL;
        out->nepochs = 0;
    }
    optim_free(&o);
    free(perm);
    free(yb);
    dcb_tensor_free(x);
    dcb_tensor_free(dlog);
    return st;
}
