/* opcases.h — seeded random cases per registered operator, shared by the
 * forward conformance test and the backward test: each operator's case
 * generator draws hyperparameters and an input size that the operator
 * accepts, towards what its implementations treat apart. */
#ifndef DCB_TEST_OPCASES_H
#define DCB_TEST_OPCASES_H
#include "testutil.h"

#define MAX_HP 24

/* ------------------------------------------------------------------ cases */
typedef struct tc_case {
    dcb_hparam hp[MAX_HP];
    int nhp;
    int64_t N, H, W, T; /* the input sizes (H, W for images, T for sequences) */
    int wino;           /* every conv of the case is 3x3, stride 1, dilation 1 */
} tc_case;

static void hp_put(tc_case *c, dcb_hparam h) {
    for (int i = 0; i < c->nhp; i++)
        if (!strcmp(c->hp[i].name, h.name)) {
            c->hp[i] = h;
            return;
        }
    assert_true(c->nhp < MAX_HP);
    c->hp[c->nhp++] = h;
}
static void hp_set(tc_case *c, const char *name, double v) { hp_put(c, TU_HP(name, v)); }

static inline void case_str(const tc_case *c, char *buf, size_t len) {
    size_t o = (size_t)snprintf(buf, len, "N=%lld H=%lld W=%lld T=%lld", (long long)c->N, (long long)c->H,
                                (long long)c->W, (long long)c->T);
    for (int i = 0; i < c->nhp && o < len; i++) {
        if (c->hp[i].str)
            o += (size_t)snprintf(buf + o, len - o, " %s=%s", c->hp[i].name, c->hp[i].str);
        else
            o += (size_t)snprintf(buf + o, len - o, " %s=%g", c->hp[i].name, c->hp[i].num);
    }
}

static void hp_del(tc_case *c, const char *name) {
    for (int i = 0; i < c->nhp; i++)
        if (!strcmp(c->hp[i].name, name)) c->hp[i--] = c->hp[--c->nhp];
}

/* The kernel size, as k or as kh and kw. */
static void set_kernel(uint64_t *r, tc_case *c, int kh, int kw) {
    hp_del(c, "k");
    hp_del(c, "kh");
    hp_del(c, "kw");
    if (kh == kw && tu_rand(r, 0, 1)) {
        hp_set(c, "k", kh);
    } else {
        hp_set(c, "kh", kh);
        hp_set(c, "kw", kw);
    }
}

/* A conv geometry (kernel, stride, pad, dilation) and an input H x W that it
 * fits; wino: 3x3, stride 1, dilation 1. big: kernels up to 7x7, inputs up
 * to 23 (else 5x5, an even kernel width sometimes, and 13). */
static void gen_geometry(uint64_t *r, int wino, int big, tc_case *c, int *kh_out, int *kw_out) {
    static const int small_ks[] = {1, 3, 5, 2}, big_ks[] = {1, 3, 5, 7};
    const int *ks = big ? big_ks : small_ks;
    int kh, kw, stride, pad, dil, H, W;
    do {
        kh = kw = ks[tu_rand(r, 0, 2 + big)];
        if (tu_rand(r, 0, 4) == 0) kw = ks[tu_rand(r, 0, 3)];
        stride = tu_rand(r, 1, 2);
        dil = tu_rand(r, 0, 3) == 0 ? 2 : 1;
        pad = tu_rand(r, 0, big ? 3 : 2);
        if (wino) kh = kw = 3, stride = dil = 1;
        H = tu_rand(r, 1, big ? 23 : 13);
        W = tu_rand(r, 1, big ? 23 : 13);
    } while (dil * (kh - 1) + 1 > H + 2 * pad || dil * (kw - 1) + 1 > W + 2 * pad);
    set_kernel(r, c, kh, kw);
    hp_set(c, "stride", stride);
    hp_set(c, "pad", pad);
    hp_set(c, "dilation", dil);
    c->H = H;
    c->W = W;
    c->wino = kh == 3 && kw == 3 && stride == 1 && dil == 1;
    if (kh_out) *kh_out = kh;
    if (kw_out) *kw_out = kw;
}

/* cin, cout, groups and bias of a conv: depthwise (up to dw_groups channels,
 * multiplier 1 or 2), dense (up to `dense` channels, so sometimes 8 and more
 * a group) or grouped (up to `per` channels a group). */
static void gen_channels(uint64_t *r, tc_case *c, int dw_groups, int dense, int per) {
    int g = tu_rand(r, 1, 4), cig = tu_rand(r, 1, per), cog = tu_rand(r, 1, per);
    switch (tu_rand(r, 0, 3)) {
    case 0:
        g = tu_rand(r, 1, dw_groups);
        cig = 1;
        cog = tu_rand(r, 1, 2);
        break;
    case 1:
        g = 1;
        cig = tu_rand(r, 1, dense);
        cog = tu_rand(r, 1, dense);
        break;
    default: break;
    }
    hp_set(c, "cin", g * cig);
    hp_set(c, "cout", g * cog);
    hp_set(c, "groups", g);
    hp_set(c, "bias", tu_rand(r, 0, 1));
}

/* conv2d, towards what its engines treat apart: depthwise with any kernel
 * up to 7x7, stride, dilation and multiplier 1 or 2; 1x1 without padding
 * with up to 64 channels; dense with up to 40 channels (several K blocks of
 * direct); grouped; inputs up to 23. */
static void gen_conv2d(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 1, c, NULL, NULL);
    const int pointwise = !wino && tu_rand(r, 0, 4) == 0;
    if (pointwise) {
        set_kernel(r, c, 1, 1);
        hp_set(c, "pad", 0);
        c->wino = 0;
    }
    gen_channels(r, c, 24, pointwise ? 64 : 40, 9);
}

static void gen_se(uint64_t *r, int wino, tc_case *c) {
    static const int reds[] = {1, 2, 4, 16};
    (void)wino;
    hp_set(c, "channels", tu_rand(r, 1, 40));
    hp_set(c, "reduction", reds[tu_rand(r, 0, 3)]);
    if (tu_rand(r, 0, 2) == 0) hp_set(c, "hidden", tu_rand(r, 1, 8));
    c->H = tu_rand(r, 1, 13);
    c->W = tu_rand(r, 1, 13);
}

static void gen_condconv(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 0, c, NULL, NULL);
    gen_channels(r, c, 12, 20, 6);
    hp_set(c, "experts", tu_rand(r, 1, 8));
}

static void gen_dyconv(uint64_t *r, int wino, tc_case *c) {
    static const double taus[] = {1, 0.5, 4, 30};
    gen_geometry(r, wino, 0, c, NULL, NULL);
    gen_channels(r, c, 12, 20, 6);
    hp_set(c, "kernels", tu_rand(r, 1, 8));
    hp_set(c, "temperature", taus[tu_rand(r, 0, 3)]);
    if (tu_rand(r, 0, 2) == 0) hp_set(c, "hidden", tu_rand(r, 1, 9));
}

static void gen_weightnet(uint64_t *r, int wino, tc_case *c) {
    static const int Ms[] = {1, 2, 4};
    int kh, kw;
    gen_geometry(r, wino, 0, c, &kh, &kw);
    const int dw = tu_rand(r, 0, 1), cin = tu_rand(r, 1, 12), M = Ms[tu_rand(r, 0, 2)];
    int G = 1 << tu_rand(r, 0, 2);
    if (M % G || (!dw && (cin * kh * kw) % G)) G = 1; /* G | M, and G*cout | cout*cin*kh*kw */
    hp_set(c, "cin", cin);
    hp_set(c, "cout", dw ? cin : tu_rand(r, 1, 10));
    hp_set(c, "depthwise", dw);
    hp_set(c, "M", M);
    hp_set(c, "G", G);
    if (tu_rand(r, 0, 1)) hp_set(c, "hidden", tu_rand(r, 1, 6));
}

static void gen_drconv(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 0, c, NULL, NULL);
    hp_set(c, "cin", tu_rand(r, 1, 8));
    hp_set(c, "cout", tu_rand(r, 1, 8));
    hp_set(c, "regions", tu_rand(r, 1, 8));
}

static void gen_localconv(uint64_t *r, int wino, tc_case *c) {
    gen_geometry(r, wino, 0, c, NULL, NULL);
    hp_set(c, "cin", tu_rand(r, 1, 5));
    hp_set(c, "cout", tu_rand(r, 1, 5));
    hp_set(c, "bias", tu_rand(r, 0, 1));
    hp_set(c, "H", (double)c->H); /* the weights depend on the position */
    hp_set(c, "W", (double)c->W);
}

static void gen_skconv(uint64_t *r, int wino, tc_case *c) {
    const int g = tu_rand(r, 1, 3), M = wino ? 1 : tu_rand(r, 1, 3), stride = wino ? 1 : tu_rand(r, 1, 2);
    hp_set(c, "cin", g * tu_rand(r, 1, 4));
    hp_set(c, "cout", g * tu_rand(r, 1, 5));
    hp_set(c, "groups", g);
    hp_set(c, "branches", M); /* branch i: dilation i + 1 */
    hp_set(c, "stride", stride);
    hp_set(c, "reduction", tu_rand(r, 1, 4));
    hp_set(c, "L", tu_rand(r, 1, 6));
    c->H = tu_rand(r, 1, 13);
    c->W = tu_rand(r, 1, 13);
    c->wino = M == 1 && stride == 1;
}

static void gen_splat(uint64_t *r, int wino, tc_case *c) {
    int R, Kc, cin;
    do { /* inter = max(cin*R/4, 32) must be a multiple of Kc */
        R = tu_rand(r, 1, 4);
        Kc = tu_rand(r, 1, 3);
        cin = Kc * R * tu_rand(r, 1, Kc == 3 ? 4 : 2);
    } while ((cin * R / 4 > 32 ? cin * R / 4 : 32) % Kc);
    gen_geometry(r, wino, 0, c, NULL, NULL);
    hp_set(c, "cin", cin);
    hp_set(c, "cout", Kc * tu_rand(r, 1, 4));
    hp_set(c, "radix", R);
    hp_set(c, "cardinality", Kc);
}

/* lightconv and dynconv1d: heads, K from 1 to 31, same or causal padding,
 * T = 1, T < K, T = K and longer; some head runs of 32 channels and more. */
static void gen_seqconv(uint64_t *r, int wino, tc_case *c) {
    static const int ks[] = {1, 2, 3, 4, 5, 7, 15, 31};
    (void)wino;
    const int H = tu_rand(r, 1, 4), K = ks[tu_rand(r, 0, 7)];
    hp_set(c, "channels", H * (tu_rand(r, 0, 4) == 0 ? 8 * tu_rand(r, 4, 9) : tu_rand(r, 1, 6)));
    hp_set(c, "heads", H);
    hp_set(c, "kernel_size", K);
    hp_put(c, TU_HS("padding", tu_rand(r, 0, 1) ? "causal" : "same"));
    hp_set(c, "weight_softmax", tu_rand(r, 0, 1));
    hp_set(c, "bias", tu_rand(r, 0, 1));
    switch (tu_rand(r, 0, 4)) {
    case 0: c->T = 1; break;
    case 1: c->T = tu_rand(r, 1, K); break;
    case 2: c->T = K; break;
    case 3: c->T = tu_rand(r, 90, 130); break;
    default: c->T = tu_rand(r, 1, 60); break;
    }
}

static void gen_mhattention(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    const int H = tu_rand(r, 1, 4);
    hp_set(c, "channels", H * tu_rand(r, 1, 8));
    hp_set(c, "heads", H);
    hp_set(c, "causal", tu_rand(r, 0, 1));
    c->T = tu_rand(r, 0, 3) == 0 ? 1 : tu_rand(r, 1, 40);
}

/* The layers of networks. Their inputs come from dcb_op_input_shape: images
 * (N, C, H, W) with C the channels hyperparameter, or 1 where there is none
 * (activations, pools, gap, flatten); linear's sequences (N, T, in). */
static void gen_batchnorm(uint64_t *r, int wino, tc_case *c) {
    static const double moms[] = {0.1, 0, 1, 0.5};
    (void)wino;
    hp_set(c, "channels", tu_rand(r, 1, 24));
    hp_set(c, "momentum", moms[tu_rand(r, 0, 3)]);
    if (tu_rand(r, 0, 2) == 0) hp_set(c, "eps", 1e-3);
    do { /* training needs two values per channel */
        c->H = tu_rand(r, 1, 13);
        c->W = tu_rand(r, 1, 13);
    } while (c->N * c->H * c->W < 2);
}

/* silu, sigmoid: sometimes more than one parallel chunk. relu, relu6 and
 * maxpool are piecewise linear: the finite differences of test_backward
 * cross a kink unseen (h and h/2 both straddling it) about once in 500
 * elements (x ~ N(0, 1), h = 0.01), so their inputs stay small. */
static void gen_act(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    const int big = tu_rand(r, 0, 5) == 0;
    c->H = big ? tu_rand(r, 100, 140) : tu_rand(r, 1, 17);
    c->W = big ? tu_rand(r, 100, 140) : tu_rand(r, 1, 17);
}

static void gen_act_pwl(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    c->H = tu_rand(r, 1, 2);
    c->W = tu_rand(r, 1, 4);
}

/* maxpool, avgpool: k 1 to 5, stride 0 (= k) to 3, pad up to k/2; maxpool
 * on inputs up to 7 x 7 (piecewise linear, above), avgpool up to 15 */
static void gen_pool_n(uint64_t *r, tc_case *c, int maxhw) {
    const int k = tu_rand(r, 1, 5), pad = tu_rand(r, 0, k / 2);
    hp_set(c, "k", k);
    if (tu_rand(r, 0, 3)) hp_set(c, "stride", tu_rand(r, 0, 3));
    if (pad || tu_rand(r, 0, 1)) hp_set(c, "pad", pad);
    do {
        c->H = tu_rand(r, 1, maxhw);
        c->W = tu_rand(r, 1, maxhw);
    } while (c->H + 2 * pad < k || c->W + 2 * pad < k);
}

static void gen_maxpool(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    gen_pool_n(r, c, 7);
}

static void gen_avgpool(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    gen_pool_n(r, c, 15);
}

/* both layouts: on the (N, 1, H, W) input, "sequence" averages over 1 * H
 * positions of W channels */
static void gen_gap(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    if (tu_rand(r, 0, 1)) hp_put(c, TU_HS("layout", tu_rand(r, 0, 1) ? "sequence" : "image"));
    c->H = tu_rand(r, 1, 13);
    c->W = tu_rand(r, 1, 13);
}

/* (N, T, in) inputs, T = 1 sometimes */
static void gen_linear(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    hp_set(c, "in", tu_rand(r, 0, 4) == 0 ? tu_rand(r, 40, 80) : tu_rand(r, 1, 24));
    hp_set(c, "out", tu_rand(r, 1, 40));
    if (tu_rand(r, 0, 2)) hp_set(c, "bias", tu_rand(r, 0, 1));
    c->T = tu_rand(r, 0, 2) == 0 ? 1 : tu_rand(r, 1, 20);
}

static void gen_flatten(uint64_t *r, int wino, tc_case *c) {
    (void)wino;
    c->H = tu_rand(r, 1, 13);
    c->W = tu_rand(r, 1, 13);
}

/* The case generators, by operator name: gen(r, wino, c) fills c's
 * hyperparameters and input size (N is drawn by the caller); wino asks for a
 * case that the Winograd engines run (and the generator sets c->wino when
 * the case is one), so that half the cases of the engines' operators are. */
typedef void (*tc_gen)(uint64_t *r, int wino, tc_case *c);
static const struct {
    const char *op;
    tc_gen gen;
} generators[] = {
    {"conv2d", gen_conv2d},       {"se", gen_se},           {"condconv", gen_condconv},
    {"dyconv", gen_dyconv},       {"weightnet", gen_weightnet}, {"drconv", gen_drconv},
    {"localconv", gen_localconv}, {"skconv", gen_skconv},   {"splat", gen_splat},
    {"lightconv", gen_seqconv},   {"dynconv1d", gen_seqconv}, {"mhattention", gen_mhattention},
    {"batchnorm", gen_batchnorm}, {"relu", gen_act_pwl},    {"relu6", gen_act_pwl},
    {"silu", gen_act},            {"sigmoid", gen_act},     {"maxpool", gen_maxpool},
    {"avgpool", gen_avgpool},     {"gap", gen_gap},         {"linear", gen_linear},
    {"flatten", gen_flatten},
};

static tc_gen generator_of(const char *op) {
    for (size_t i = 0; i < sizeof generators / sizeof generators[0]; i++)
        if (!strcmp(generators[i].op, op)) return generators[i].gen;
    return NULL;
}

static tc_case new_case(tc_gen gen, uint64_t *r, int wino, int64_t N) {
    tc_case c;
    memset(&c, 0, sizeof c);
    c.N = N;
    c.H = c.W = c.T = 1;
    gen(r, wino, &c);
    return c;
}

#endif
