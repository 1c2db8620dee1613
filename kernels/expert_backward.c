/* The router's backward of condconv and dyconv (expert_backward.h), in
 * double: its sizes are N x E x cin (or N x hidden x cin), negligible beside
 * the convolution, so both backward implementations share this one. */
#include "expert_backward.h"

#include <stdlib.h>
#include <string.h>

int dcb_xc_router_wanted(const dcb_op *op, const dcb_train_ctx *c) {
    static const char *const names[] = {"route_w", "route_b", "fc1_w", "fc1_b", "fc2_w", "fc2_b"};
    for (int i = 0; i < 6; i++)
        if (dcb_dw(op, c, names[i])) return 1;
    return 0;
}

/* dw (out, in) = da^T (N, out) . v (N, in); db (out) = sum over n of da:
 * a linear layer's weight gradients (either may be NULL). */
static void linear_dw(int N, int out, int in, const double *da, const double *v, float *dw, float *db) {
    if (dw)
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += da[(size_t)n * out + o] * v[(size_t)n * in + i];
                dw[(size_t)o * in + i] = (float)s;
            }
    if (db)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += da[(size_t)n * out + o];
            db[o] = (float)s;
        }
}

/* dv (N, in) = da (N, out) . w (out, in). */
static void linear_dx(int N, int out, int in, const double *da, const float *w, double *dv) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int o = 0; o < out; o++) s += da[(size_t)n * out + o] * w[(size_t)o * in + i];
            dv[(size_t)n * in + i] = s;
        }
}

dcb_status dcb_xc_router_backward(const dcb_op *op, const dcb_train_ctx *c, int N, const double *g, const double *hid,
                                  const double *r, const double *dr, double *dg) {
    const xc_hp *h = XC_HP(op);
    const int E = h->E, cin = h->c.cin, hd = h->hidden;
    double *da = calloc((size_t)N * E, sizeof(double));
    double *dz = h->dy ? calloc((size_t)N * hd, sizeof(double)) : NULL;
    if (!da || (h->dy && !dz)) {
        free(da);
        free(dz);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s backward: out of memory", h->name);
    }
    if (!h->dy) {
        /* r = sigmoid(a): dr/da = r (1 - r) */
        for (size_t i = 0; i < (size_t)N * E; i++) da[i] = dr[i] * r[i] * (1 - r[i]);
        linear_dw(N, E, cin, da, g, dcb_dw(op, c, "route_w"), dcb_dw(op, c, "route_b"));
        if (dg) linear_dx(N, E, cin, da, dcb_w(op, "route_w")->data, dg);
    } else {
        /* pi = softmax(l / tau): dl = pi (dr - <pi, dr>) / tau */
        const double itau = 1.0 / h->tau;
        for (int n = 0; n < N; n++) {
            const double *pn = r + (size_t)n * E, *dn = dr + (size_t)n * E;
            double s = 0;
            for (int e = 0; e < E; e++) s += pn[e] * dn[e];
            for (int e = 0; e < E; e++) da[(size_t)n * E + e] = pn[e] * (dn[e] - s) * itau;
        }
        linear_dw(N, E, hd, da, hid, dcb_dw(op, c, "fc2_w"), dcb_dw(op, c, "fc2_b"));
        linear_dx(N, E, hd, da, dcb_w(op, "fc2_w")->data, dz);
        for (size_t i = 0; i < (size_t)N * hd; i++)
            if (!(hid[i] > 0)) dz[i] = 0; /* relu: no gradient where it clipped (0 at 0, as PyTorch) */
        linear_dw(N, hd, cin, dz, g, dcb_dw(op, c, "fc1_w"), dcb_dw(op, c, "fc1_b"));
        if (dg) linear_dx(N, hd, cin, dz, dcb_w(op, "fc1_w")->data, dg);
    }
    free(dz);
    free(da);
    return DCB_OK;
}
