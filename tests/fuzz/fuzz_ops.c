/* fuzz_ops.c — libFuzzer target for random operator calls: any registered
 * operator and implementation, hostile hyperparameters, costs of hostile
 * shapes, and forward / backward runs where the sizes stay small.
 *
 * The input bytes drive the calls (a byte past the end reads as 0):
 *   op          dcb_op_name(byte % dcb_op_count())
 *   impl        dcb_impl_name(op, byte % dcb_impl_count(op))
 *   per param   one byte for each entry of dcb_op_params(op), in order:
 *               below 48 keeps the default; else a value: from HOSTILE
 *               (0, -1, 1, 2, 3, 7, 2^31, 2^62, 1e9, NaN, inf, and a few
 *               more) or a small integer 0..16, or another byte 0..255;
 *               string parameters take one of STRINGS
 *   flags       bit 0: the cost of a hostile input shape; bit 1: its plan
 *               too; bit 2: the forward against implementation 0 (the
 *               oracle) within dcb_op_tolerance; bit 3: a training forward
 *               and backward; bit 4: dcb_op_kernels and dcb_op_routing
 *   sizes       N 1..3, H and W 1..12, T 1..16 (small), then four bytes for
 *               the hostile shape's N, H, W, T; a seed
 * Every call must return a status of the enum, with a message when it is
 * not DCB_OK; costs must be neither negative nor NaN. Forward and backward
 * run only when the input, the weights and the MACs stay small (SMALL_*),
 * so that the only large allocations are the library's own: run with
 * -malloc_limit_mb=1024 and DCB_MAX_BYTES (set to 512M here unless the
 * environment sets it), and a header-driven gigabyte is a reported bug.
 *
 * Build and run: tests/fuzz/run_fuzz.sh 60 fuzz_ops (links the whole
 * library, built without OpenMP and oneDNN, and OpenBLAS). The reproducer
 * of a finding replays with: build-fuzz/fuzz_ops CRASH_FILE; a file's calls
 * print with FUZZ_OPS_VERBOSE=1.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcb.h"
#include "fuzz_seeds.h"

#define SMALL_ELEMS 200000   /* input, output, all the weights: elements */
#define SMALL_MACS 4e6

static const double HOSTILE[] = {
    0, -1, 1, 2, 3, 7, 2147483648.0 /* 2^31 */, 4611686018427387904.0 /* 2^62 */, 1e9, NAN, INFINITY,
    2147483647.0, 65536, 0.5, -INFINITY, -2147483648.0, 4294967297.0, 1e-30,
};
#define NHOSTILE (int)(sizeof HOSTILE / sizeof HOSTILE[0])
static const int64_t HOSTILE_DIM[] = {1, 2, 7, 65535, 65536, 2147483647, INT64_C(2147483648),
                                      INT64_C(1) << 40, INT64_C(1) << 62, 0, -1, INT64_MAX};
#define NHDIM (int)(sizeof HOSTILE_DIM / sizeof HOSTILE_DIM[0])
static const char *const STRINGS[] = {"same", "causal", "image", "sequence", "", "valid", "x",
                                      "same\n", "SAME"};
#define NSTRINGS (int)(sizeof STRINGS / sizeof STRINGS[0])

static int g_verbose;

typedef struct reader {
    const uint8_t *p;
    size_t n, i;
} reader;

static unsigned rd(reader *r) { return r->i < r->n ? r->p[r->i++] : 0; }

static void die(const char *what, const char *op, const char *impl)
{
    fprintf(stderr, "fuzz_ops: %s/%s: %s (last error: %s)\n", op, impl, what, dcb_last_error());
    abort();
}

/* A status of the enum, and a message with every failure. */
static void check_status(dcb_status st, const char *call, const char *op, const char *impl)
{
    if ((int)st < 0 || st >= DCB_STATUS_COUNT) {
        char b[120];
        snprintf(b, sizeof b, "%s returned %d, not a dcb_status", call, (int)st);
        die(b, op, impl);
    }
    if (st != DCB_OK) {
        const char *m = dcb_last_error();
        if (!m || !*m) {
            char b[120];
            snprintf(b, sizeof b, "%s failed (%s) without a message", call, dcb_status_name(st));
            die(b, op, impl);
        }
    }
    if (g_verbose)
        fprintf(stderr, "  %s: %s%s%s\n", call, dcb_status_name(st), st ? ": " : "",
                st ? dcb_last_error() : "");
}

static void check_cost(const dcb_cost *c, const char *op, const char *impl)
{
    const double v[] = {c->macs, c->flops, c->params, c->acts, c->bytes, c->dynamic_macs, c->executed_macs};
    static const char *const nm[] = {"macs", "flops", "params", "acts", "bytes", "dynamic_macs",
                                     "executed_macs"};
    for (int i = 0; i < 7; i++)
        if (isnan(v[i]) || v[i] < 0) {
            char b[120];
            snprintf(b, sizeof b, "dcb_op_cost gives %s = %g", nm[i], v[i]);
            die(b, op, impl);
        }
}

static int64_t elems(int ndim, const int64_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (s[i] < 1 || s[i] > SMALL_ELEMS)
            return -1;
        n *= s[i];
        if (n > SMALL_ELEMS)
            return -1;
    }
    return n;
}

static int all_finite(const dcb_tensor *t)
{
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(t->data[i]))
            return 0;
    return 1;
}

/* The forward of implementation 0 with op's hyperparameters and weights:
 * y within dcb_op_tolerance of it. */
static void against_oracle(dcb_op *op, const dcb_hparam *hp, int nhp, const dcb_tensor *x,
                           const dcb_tensor *y, const char *opn, const char *impl)
{
    const char *oracle = dcb_impl_name(opn, 0);
    if (!strcmp(oracle, impl))
        return;
    dcb_op *o = NULL;
    dcb_status st = dcb_op_create(opn, oracle, hp, nhp, &o);
    check_status(st, "dcb_op_create(oracle)", opn, oracle);
    if (st != DCB_OK)
        die("the oracle refuses hyperparameters an implementation accepts", opn, impl);
    for (int i = 0; i < dcb_op_weight_count(op); i++) {
        const char *w = dcb_op_weight_name(op, i);
        st = dcb_op_set_weight(o, w, dcb_op_get_weight(op, w));
        check_status(st, "dcb_op_set_weight(oracle)", opn, oracle);
        if (st != DCB_OK)
            die("the oracle refuses the implementation's weights", opn, impl);
    }
    dcb_tensor *y0 = NULL;
    st = dcb_op_forward(o, x, &y0);
    check_status(st, "dcb_op_forward(oracle)", opn, oracle);
    if (st == DCB_OK) {
        if (y0->ndim != y->ndim || !dcb_shape_equal(y0, y->ndim, y->shape))
            die("output shape differs from the oracle's", opn, impl);
        if (all_finite(y) && all_finite(y0)) {
            double abs_err;
            double rel = dcb_max_rel_err(y, y0, &abs_err);
            double tol = dcb_op_tolerance(op);
            if (!(rel <= tol)) {
                char b[160];
                snprintf(b, sizeof b, "output differs from the oracle's: rel err %g > tol %g (abs %g)", rel,
                         tol, abs_err);
                die(b, opn, impl);
            }
        }
    }
    dcb_tensor_free(y0);
    dcb_op_destroy(o);
}

static void train(dcb_op *op, const dcb_tensor *x, const dcb_tensor *y, uint64_t seed, const char *opn,
                  const char *impl)
{
    if (!dcb_op_get_backward(op))
        return;
    dcb_tensor *yt = dcb_tensor_new(y->ndim, y->shape);
    dcb_tensor *dy = dcb_tensor_new(y->ndim, y->shape);
    dcb_tensor *dx = dcb_tensor_new(x->ndim, x->shape);
    int nw = dcb_op_weight_count(op);
    dcb_tensor *dw[64] = {0};
    if (!yt || !dy || !dx || nw > 64)
        die("cannot allocate the training tensors", opn, impl);
    for (int i = 0; i < nw; i++) {
        int64_t s[DCB_MAX_DIMS];
        int nd = dcb_op_weight_shape(op, i, s);
        dw[i] = dcb_tensor_new(nd, s);
    }
    dcb_tensor_randn(dy, seed + 1);
    dcb_status st = dcb_op_forward_train(op, x, yt);
    check_status(st, "dcb_op_forward_train", opn, impl);
    if (st == DCB_OK) {
        st = dcb_op_backward(op, dy, dx, dw);
        check_status(st, "dcb_op_backward", opn, impl);
    }
    for (int i = 0; i < nw; i++)
        dcb_tensor_free(dw[i]);
    dcb_tensor_free(yt);
    dcb_tensor_free(dy);
    dcb_tensor_free(dx);
}

/* ------------------------------------------------------------ seeds */

/* A small valid value per hyperparameter name (0: keep the default). */
typedef struct good_value {
    const char *name;
    int v;            /* 0..16, or -1: string s */
    const char *s;
} good_value;
static const good_value GOOD[] = {
    {"cin", 4, NULL}, {"cout", 4, NULL}, {"k", 3, NULL}, {"pad", 1, NULL}, {"bias", 1, NULL},
    {"experts", 2, NULL}, {"kernels", 2, NULL}, {"channels", 4, NULL}, {"reduction", 2, NULL},
    {"regions", 2, NULL}, {"branches", 2, NULL}, {"groups", 1, NULL}, {"L", 4, NULL},
    {"radix", 2, NULL}, {"cardinality", 1, NULL}, {"heads", 2, NULL}, {"kernel_size", 3, NULL},
    {"padding", -1, "same"}, {"H", 6, NULL}, {"W", 6, NULL}, {"in", 4, NULL}, {"out", 3, NULL},
    {"layout", -1, "image"}, {"stride", 1, NULL}, {"M", 2, NULL}, {"G", 2, NULL},
};

/* The byte that reads as the small integer v (h.num = s % 17). */
static uint8_t enc_int(int v)
{
    for (unsigned s = 48 + 3 * NHOSTILE; s < 240; s++)
        if ((int)(s % 17) == v)
            return (uint8_t)s;
    return 0;
}

static uint8_t enc_str(const char *str)
{
    for (unsigned s = 48; s < 256; s++)
        if (!strcmp(STRINGS[s % NSTRINGS], str))
            return (uint8_t)s;
    return 0;
}

/* One input per operator and implementation that creates and runs it
 * (every check flag set), for tests/fuzz/corpus/fuzz_ops. */
static void write_seeds(const char *dir)
{
    for (int o = 0; o < dcb_op_count(); o++) {
        const char *opn = dcb_op_name(o);
        int np = 0;
        const dcb_param_spec *ps = dcb_op_params(opn, &np);
        for (int i = 0; i < dcb_impl_count(opn); i++) {
            uint8_t b[64];
            size_t n = 0;
            b[n++] = (uint8_t)o;
            b[n++] = (uint8_t)i;
            for (int k = 0; k < np && n < 40; k++) {
                uint8_t v = 0;
                for (size_t g = 0; g < sizeof GOOD / sizeof GOOD[0]; g++)
                    if (!strcmp(GOOD[g].name, ps[k].name))
                        v = GOOD[g].v < 0 ? enc_str(GOOD[g].s) : enc_int(GOOD[g].v);
                /* skconv's second branch is dilated: Winograd runs one. */
                if (!strcmp(ps[k].name, "branches") && strstr(dcb_impl_name(opn, i), "winograd"))
                    v = enc_int(1);
                b[n++] = v;
            }
            b[n++] = 0x1f;                        /* flags: every check */
            b[n++] = 1, b[n++] = 5, b[n++] = 5;   /* N=2, H=W=6 */
            b[n++] = 7;                           /* T=8 */
            b[n++] = 5, b[n++] = 1, b[n++] = 2, b[n++] = 3;   /* hostile: 2^31-1, 2, 7, 65535 */
            b[n++] = (uint8_t)(o * 31 + i);       /* seed */
            char path[4096], nm[128];
            snprintf(nm, sizeof nm, "%s_%s", opn, dcb_impl_name(opn, i));
            for (char *c = nm; *c; c++)
                if (*c == '/')
                    *c = '-';
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(b, 1, n, f);
                fclose(f);
            }
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_write_seeds_if_asked(*argc, *argv, write_seeds);
    setenv("DCB_MAX_BYTES", "512M", 0);
    g_verbose = getenv("FUZZ_OPS_VERBOSE") && atoi(getenv("FUZZ_OPS_VERBOSE"));
    dcb_blas_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    const char *opn = dcb_op_name((int)(rd(&r) % (unsigned)dcb_op_count()));
    const char *impl = dcb_impl_name(opn, (int)(rd(&r) % (unsigned)dcb_impl_count(opn)));
    int np = 0;
    const dcb_param_spec *ps = dcb_op_params(opn, &np);
    dcb_hparam hp[32];
    int nhp = 0;
    for (int i = 0; i < np && nhp < 32; i++) {
        unsigned s = rd(&r);
        if (s < 48)
            continue;
        dcb_hparam h = {ps[i].name, 0, NULL};
        if (ps[i].type == DCB_PT_STRING)
            h.str = STRINGS[s % NSTRINGS];
        else if (s < 48 + 3 * NHOSTILE)
            h.num = HOSTILE[(s - 48) % NHOSTILE];
        else if (s < 240)
            h.num = s % 17;
        else
            h.num = rd(&r);
        hp[nhp++] = h;
    }
    const unsigned flags = rd(&r);
    const int64_t N = 1 + rd(&r) % 3, H = 1 + rd(&r) % 12, W = 1 + rd(&r) % 12, T = 1 + rd(&r) % 16;
    int64_t hN = HOSTILE_DIM[rd(&r) % NHDIM], hH = HOSTILE_DIM[rd(&r) % NHDIM];
    int64_t hW = HOSTILE_DIM[rd(&r) % NHDIM], hT = HOSTILE_DIM[rd(&r) % NHDIM];
    const uint64_t seed = rd(&r);

    if (g_verbose) {
        fprintf(stderr, "fuzz_ops: %s/%s", opn, impl);
        for (int i = 0; i < nhp; i++) {
            if (hp[i].str)
                fprintf(stderr, " %s='%s'", hp[i].name, hp[i].str);
            else
                fprintf(stderr, " %s=%.17g", hp[i].name, hp[i].num);
        }
        fprintf(stderr, " flags=0x%x N=%lld H=%lld W=%lld T=%lld hostile N=%lld H=%lld W=%lld T=%lld\n",
                flags, (long long)N, (long long)H, (long long)W, (long long)T, (long long)hN,
                (long long)hH, (long long)hW, (long long)hT);
    }

    dcb_op *op = NULL;
    dcb_status st = dcb_op_create(opn, impl, hp, nhp, &op);
    check_status(st, "dcb_op_create", opn, impl);
    if (st != DCB_OK) {
        if (op)
            die("a failed create left *out set", opn, impl);
        return 0;
    }

    int64_t shape[DCB_MAX_DIMS];
    dcb_cost c;
    int ndim;
    if (flags & 1) {
        ndim = dcb_op_input_shape(op, hN, hH, hW, hT, shape);
        st = dcb_op_cost(op, ndim, shape, &c);
        check_status(st, "dcb_op_cost(hostile shape)", opn, impl);
        if (st == DCB_OK)
            check_cost(&c, opn, impl);
        if (flags & 2) {
            int yn;
            int64_t ys[DCB_MAX_DIMS];
            size_t ws;
            st = dcb_op_plan(op, ndim, shape, &yn, ys, &ws);
            check_status(st, "dcb_op_plan(hostile shape)", opn, impl);
        }
    }

    ndim = dcb_op_input_shape(op, N, H, W, T, shape);
    st = dcb_op_cost(op, ndim, shape, &c);
    check_status(st, "dcb_op_cost", opn, impl);
    if (st == DCB_OK)
        check_cost(&c, opn, impl);
    int64_t wel = 0;
    for (int i = 0; i < dcb_op_weight_count(op) && wel >= 0; i++) {
        int64_t s[DCB_MAX_DIMS];
        int nd = dcb_op_weight_shape(op, i, s);
        int64_t e = elems(nd, s);
        wel = e < 0 || wel + e > SMALL_ELEMS ? -1 : wel + e;
    }
    int yn;
    int64_t ys[DCB_MAX_DIMS];
    size_t ws = 0;
    dcb_status pst = DCB_INVALID_SHAPE;
    if (st == DCB_OK && c.macs <= SMALL_MACS && c.acts <= 4.0 * SMALL_ELEMS && wel >= 0 &&
        elems(ndim, shape) > 0) {
        pst = dcb_op_plan(op, ndim, shape, &yn, ys, &ws);
        check_status(pst, "dcb_op_plan", opn, impl);
    }
    if (pst == DCB_OK && elems(yn, ys) > 0 && ws <= (size_t)64 << 20) {
        st = dcb_op_init_weights(op, seed);
        check_status(st, "dcb_op_init_weights", opn, impl);
        dcb_tensor *x = dcb_tensor_new(ndim, shape);
        if (st == DCB_OK && x) {
            dcb_tensor_randn(x, seed);
            dcb_tensor *y = NULL;
            st = dcb_op_forward(op, x, &y);
            check_status(st, "dcb_op_forward", opn, impl);
            if (st == DCB_OK) {
                if (!y || y->ndim != yn || !dcb_shape_equal(y, yn, ys))
                    die("the forward's output is not the planned shape", opn, impl);
                if (flags & 4)
                    against_oracle(op, hp, nhp, x, y, opn, impl);
                if (flags & 8)
                    train(op, x, y, seed, opn, impl);
                if (flags & 16) {
                    dcb_tensor *k = NULL, *rt = NULL;
                    st = dcb_op_kernels(op, x, &k);
                    check_status(st, "dcb_op_kernels", opn, impl);
                    st = dcb_op_routing(op, x, &rt);
                    check_status(st, "dcb_op_routing", opn, impl);
                    dcb_tensor_free(k);
                    dcb_tensor_free(rt);
                }
            } else if (y) {
                die("a failed forward left *y set", opn, impl);
            }
            dcb_tensor_free(y);
        }
        dcb_tensor_free(x);
    }
    dcb_op_destroy(op);
    return 0;
}
