/* Kernel-similarity statistics (WeightNet's ablation): pairwise cosine
 * similarity of flattened kernels, whole and per output channel. */
#include "dcb_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct acc {
    double s, s2, mn, mx;
    int64_t n, hist[DCB_SIM_BINS];
} acc;

static void acc_add(acc *a, double v) {
    a->s += v;
    a->s2 += v * v;
    if (a->n == 0 || v < a->mn) a->mn = v;
    if (a->n == 0 || v > a->mx) a->mx = v;
    int b = (int)floor((v + 1.0) * 0.5 * DCB_SIM_BINS);
    if (b < 0) b = 0;
    if (b >= DCB_SIM_BINS) b = DCB_SIM_BINS - 1;
    a->hist[b]++;
    a->n++;
}

static void acc_done(const acc *a, dcb_sim_summary *o) {
    memset(o, 0, sizeof *o);
    o->pairs = a->n;
    memcpy(o->hist, a->hist, sizeof o->hist);
    if (a->n == 0) {
        o->mean = o->std = o->min = o->max = NAN;
        return;
    }
    o->mean = a->s / (double)a->n;
    double var = a->s2 / (double)a->n - o->mean * o->mean;
    o->std = var > 0 ? sqrt(var) : 0;
    o->min = a->mn;
    o->max = a->mx;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0 || bb == 0) return 0;
    double c = ab / sqrt(aa * bb);
    return c > 1 ? 1 : (c < -1 ? -1 : c);
}

dcb_status dcb_similarity(const dcb_tensor *k, dcb_similarity_stats *out) {
    if (!k || !out) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_similarity: NULL argument");
    if (k->ndim < 2 || k->shape[0] < 2) {
        char s[128];
        return dcb_fail(DCB_INVALID_SHAPE,
                        "similarity: need at least 2 kernels along the first dimension, got shape %s",
                        dcb_shape_str(k->ndim, k->shape, s, sizeof s));
    }
    const int64_t nk = k->shape[0], per = k->size / nk, nch = k->shape[1], chlen = per / nch;
    acc whole = {0}, chan = {0};
    for (int64_t i = 0; i < nk; i++)
        for (int64_t j = i + 1; j < nk; j++) {
            const float *a = k->data + i * per, *b = k->data + j * per;
            acc_add(&whole, cosine(a, b, (size_t)per));
            for (int64_t o = 0; o < nch; o++)
                acc_add(&chan, cosine(a + o * chlen, b + o * chlen, (size_t)chlen));
        }
    acc_done(&whole, &out->whole);
    acc_done(&chan, &out->per_channel);
    return DCB_OK;
}

dcb_status dcb_similarity_pairs(const dcb_tensor *k, double *out, int64_t cap, int64_t *npairs) {
    if (!k || !npairs) return dcb_fail(DCB_INVALID_ARGUMENT, "dcb_similarity_pairs: NULL argument");
    if (k->ndim < 2 || k->shape[0] < 2) {
        char s[128];
        return dcb_fail(DCB_INVALID_SHAPE,
                        "similarity: need at least 2 kernels along the first dimension, got shape %s",
                        dcb_shape_str(k->ndim, k->shape, s, sizeof s));
    }
    const int64_t nk = k->shape[0], per = k->size / nk;
    *npairs = nk * (nk - 1) / 2;
    if (!out || cap < *npairs) return out ? dcb_fail(DCB_INVALID_ARGUMENT, "dcb_similarity_pairs: room for %lld of "
                                                     "%lld pairs", (long long)cap, (long long)*npairs) : DCB_OK;
    int64_t p = 0;
    for (int64_t i = 0; i < nk; i++)
        for (int64_t j = i + 1; j < nk; j++) out[p++] = cosine(k->data + i * per, k->data + j * per, (size_t)per);
    return DCB_OK;
}
