/* condconv / dyconv backward "naive": the oracle of their other backward
 * implementations. The routing (gap, router, sigmoid or softmax) and each
 * sample's mixed kernel W_n are recomputed in double; per sample the naive
 * conv2d backward (direct loops in double) gives dx_n and dW_n, db_n; then
 *   dr[n,e]   = <dW_n, weight[e]> + <db_n, bias[e]>
 *   dweight[e] = sum_n r[n,e] dW_n,   dbias[e] = sum_n r[n,e] db_n
 * and the router's backward, whose gradient reaches x through gap(x):
 *   dx[n,c] += dg[n,c] / (H*W). */
#include "expert_backward.h"

#include <stdlib.h>
#include <string.h>

/* g, hid, r of the forward, in double (hid only for dyconv). */
static void route_f64(const dcb_op *op, const float *x, int N, size_t HW, double *g, double *hid, double *r) {
    const xc_hp *h = XC_HP(op);
    const int cin = h->c.cin, E = h->E, hd = h->hidden;
    for (size_t i = 0; i < (size_t)N * cin; i++) {
        double s = 0;
        for (size_t k = 0; k < HW; k++) s += x[i * HW + k];
        g[i] = s / (double)HW;
    }
    for (int n = 0; n < N; n++) {
        const double *gn = g + (size_t)n * cin;
        double *rn = r + (size_t)n * E;
        if (!h->dy) {
            const float *w = dcb_w(op, "route_w")->data, *b = dcb_w(op, "route_b")->data;
            for (int e = 0; e < E; e++) {
                double a = b[e];
                for (int k = 0; k < cin; k++) a += (double)w[(size_t)e * cin + k] * gn[k];
                rn[e] = 1 / (1 + exp(-a));
            }
            continue;
        }
        const float *w1 = dcb_w(op, "fc1_w")->data, *b1 = dcb_w(op, "fc1_b")->data;
        const float *w2 = dcb_w(op, "fc2_w")->data, *b2 = dcb_w(op, "fc2_b")->data;
        double *hn = hid + (size_t)n * hd;
        for (int j = 0; j < hd; j++) {
            double z = b1[j];
            for (int k = 0; k < cin; k++) z += (double)w1[(size_t)j * cin + k] * gn[k];
            hn[j] = z > 0 ? z : 0;
        }
        double mx = -INFINITY, s = 0;
        for (int e = 0; e < E; e++) {
            double l = b2[e];
            for (int j = 0; j < hd; j++) l += (double)w2[(size_t)e * hd + j] * hn[j];
            rn[e] = l / h->tau;
            if (rn[e] > mx) mx = rn[e];
        }
        for (int e = 0; e < E; e++) s += rn[e] = exp(rn[e] - mx);
        for (int e = 0; e < E; e++) rn[e] /= s;
    }
}

static dcb_status naive_run(dcb_op *op, const dcb_train_ctx *c) {
    const xc_hp *h = XC_HP(op);
    const dcb_conv2d_p *p = &h->c;
    const int N = (int)c->x->shape[0], H = (int)c->x->shape[2], W = (int)c->x->shape[3];
    const int E = h->E, cin = p->cin, cout = p->cout;
    const size_t HW = (size_t)H * W, PO = (size_t)c->dy->shape[2] * c->dy->shape[3];
    const size_t P = dcb_xc_kernel_floats(p), xs = (size_t)cin * HW, ys = (size_t)cout * PO;
    const float *wt = dcb_w(op, "weight")->data, *bs = p->bias ? dcb_w(op, "bias")->data : NULL;
    float *dweight = dcb_dw(op, c, "weight"), *dbias = p->bias ? dcb_dw(op, c, "bias") : NULL;
    const size_t nd = (size_t)N * cin * 2 + (h->dy ? (size_t)N * h->hidden : 0) + (size_t)N * E * 2 + (size_t)E * P +
                      (size_t)E * cout;
    double *dbuf = malloc(sizeof(double) * nd);
    float *fbuf = malloc(sizeof(float) * (2 * P + cout));
    if (!dbuf || !fbuf) {
        free(dbuf);
        free(fbuf);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s backward: out of memory", h->name);
    }
    double *g = dbuf, *dg = g + (size_t)N * cin, *hid = dg + (size_t)N * cin;
    double *r = hid + (h->dy ? (size_t)N * h->hidden : 0), *dr = r + (size_t)N * E;
    double *accW = dr + (size_t)N * E, *accB = accW + (size_t)E * P;
    float *Wn = fbuf, *dWn = Wn + P, *dbn = dWn + P;
    memset(accW, 0, sizeof(double) * ((size_t)E * P + (size_t)E * cout));

    route_f64(op, c->x->data, N, HW, g, hid, r);
    for (int n = 0; n < N; n++) {
        const double *rn = r + (size_t)n * E;
        const float *xn = c->x->data + n * xs, *dyn = c->dy->data + n * ys;
        if (c->dx) {
            for (size_t f = 0; f < P; f++) {
                double s = 0;
                for (int e = 0; e < E; e++) s += rn[e] * wt[(size_t)e * P + f];
                Wn[f] = (float)s;
            }
            dcb_conv2d_bwd_data_naive(p, 1, H, W, dyn, Wn, c->dx->data + n * xs, op->threads);
        }
        dcb_conv2d_bwd_weight_naive(p, 1, H, W, xn, dyn, dWn, bs ? dbn : NULL, op->threads);
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (size_t f = 0; f < P; f++) s += (double)dWn[f] * wt[(size_t)e * P + f];
            for (int o = 0; bs && o < cout; o++) s += (double)dbn[o] * bs[(size_t)e * cout + o];
            dr[(size_t)n * E + e] = s;
            for (size_t f = 0; f < P; f++) accW[(size_t)e * P + f] += rn[e] * dWn[f];
            for (int o = 0; bs && o < cout; o++) accB[(size_t)e * cout + o] += rn[e] * dbn[o];
        }
    }
    if (dweight)
        for (size_t i = 0; i < (size_t)E * P; i++) dweight[i] = (float)accW[i];
    if (dbias)
        for (size_t i = 0; i < (size_t)E * cout; i++) dbias[i] = (float)accB[i];
    dcb_status st = dcb_xc_router_backward(op, c, N, g, hid, r, dr, c->dx ? dg : NULL);
    if (st == DCB_OK && c->dx)
        for (size_t i = 0; i < (size_t)N * cin; i++) {
            float *d = c->dx->data + i * HW;
            const double add = dg[i] / (double)HW;
            for (size_t k = 0; k < HW; k++) d[k] = (float)(d[k] + add);
        }
    free(dbuf);
    free(fbuf);
    return st;
}

const dcb_bwd_vt dcb_xc_bwd_naive = {
    .name = "naive",
    .doc = "routing and mixing in double, the naive conv2d backward per sample: the oracle",
    .tol = 1e-6,
    .run = naive_run,
};
