/* conv2d through oneDNN (Debian's libdnnl 2.6), a peer implementation timed by
 * the same machinery as ours: algorithm auto, the primitive's preferred
 * (blocked) memory layouts, and the reorders between our NCHW tensors and
 * those layouts reported as their own phase (TRANSFORM), so that the
 * primitive's own execution (GEMM phase) can be compared on its own.
 *
 * The primitive depends on the input shape: it is built by the plan hook
 * (once per shape, with the weight reorder), never inside run. */
#include "dcb_internal.h"

#ifdef DCB_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct onednn_state {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    int64_t shape[4];                       /* input shape of the built primitive */
    dnnl_primitive_t conv, r_src, r_dst;    /* reorders NULL when layouts agree */
    dnnl_memory_t usr_src, src, wei, bia, dst, usr_dst;
} onednn_state;

#define P(op) ((const dcb_conv2d_p *)(op)->hp)
#define S(op) ((onednn_state *)(op)->state)

static dcb_status dnnl_err(dnnl_status_t s, const char *what) {
    return dcb_fail(s == dnnl_out_of_memory ? DCB_OUT_OF_MEMORY : DCB_UNSUPPORTED_PARAM,
                    "conv2d/onednn: %s failed (dnnl status %d)", what, (int)s);
}
#define DNNL(call, what)                                        \
    do {                                                        \
        dnnl_status_t s_ = (call);                              \
        if (s_ != dnnl_success) return dnnl_err(s_, (what));    \
    } while (0)

static void destroy_primitive(onednn_state *st) {
    dnnl_primitive_t prims[] = {st->conv, st->r_src, st->r_dst};
    for (int i = 0; i < 3; i++)
        if (prims[i]) dnnl_primitive_destroy(prims[i]);
    dnnl_memory_t mems[] = {st->usr_src, st->src, st->wei, st->bia, st->dst, st->usr_dst};
    for (int i = 0; i < 6; i++)
        if (mems[i] && (i == 0 || mems[i] != mems[i - 1])) dnnl_memory_destroy(mems[i]);
    st->conv = st->r_src = st->r_dst = NULL;
    st->usr_src = st->src = st->wei = st->bia = st->dst = st->usr_dst = NULL;
    memset(st->shape, 0, sizeof st->shape);
}

static void onednn_release(dcb_op *op) {
    onednn_state *st = S(op);
    if (!st) return;
    destroy_primitive(st);
    if (st->strm) dnnl_stream_destroy(st->strm);
    if (st->eng) dnnl_engine_destroy(st->eng);
    free(st);
}

static dcb_status onednn_prepare(dcb_op *op) {
    onednn_state *st = calloc(1, sizeof *st);
    if (!st) return dcb_fail(DCB_OUT_OF_MEMORY, "conv2d/onednn: out of memory");
    dnnl_status_t s = dnnl_engine_create(&st->eng, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(&st->strm, st->eng, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        if (st->eng) dnnl_engine_destroy(st->eng);
        free(st);
        return dnnl_err(s, "engine/stream creation");
    }
    op->state = st;
    return DCB_OK;
}

/* A reorder from `from` into a new memory of layout `to_md` (or NULL if the
 * layouts agree, and then *out = from). */
static dcb_status make_reorder(onednn_state *st, dnnl_memory_t from, const dnnl_memory_desc_t *from_md,
                               const dnnl_memory_desc_t *to_md, dnnl_memory_t *out, dnnl_primitive_t *prim) {
    *prim = NULL;
    if (dnnl_memory_desc_equal(from_md, to_md)) {
        *out = from;
        return DCB_OK;
    }
    DNNL(dnnl_memory_create(out, to_md, st->eng, DNNL_MEMORY_ALLOCATE), "memory allocation");
    dnnl_primitive_desc_t rpd;
    DNNL(dnnl_reorder_primitive_desc_create(&rpd, from_md, st->eng, to_md, st->eng, NULL), "reorder");
    dnnl_status_t s = dnnl_primitive_create(prim, rpd);
    dnnl_primitive_desc_destroy(rpd);
    DNNL(s, "reorder creation");
    return DCB_OK;
}

static dcb_status run_reorder(onednn_state *st, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DNNL(dnnl_primitive_execute(r, st->strm, 2, args), "reorder");
    DNNL(dnnl_stream_wait(st->strm), "stream wait");
    return DCB_OK;
}

static dcb_status onednn_build(dcb_op *op, const int64_t *x) {
    onednn_state *st = S(op);
    destroy_primitive(st);
    const dcb_conv2d_p *p = P(op);
    const int64_t ho = dcb_conv_out((int)x[2], p->kh, p->stride, p->pad, p->dil);
    const int64_t wo = dcb_conv_out((int)x[3], p->kw, p->stride, p->pad, p->dil);
    const int G = p->groups;
    dnnl_dims_t src_d = {x[0], p->cin, x[2], x[3]}, dst_d = {x[0], p->cout, ho, wo}, bia_d = {p->cout};
    dnnl_dims_t wei_d = {G, p->cout / G, p->cin / G, p->kh, p->kw};
    dnnl_dims_t strides = {p->stride, p->stride}, dil = {p->dil - 1, p->dil - 1}, pad = {p->pad, p->pad};
    const int wnd = G > 1 ? 5 : 4;
    const int64_t *wd = G > 1 ? wei_d : wei_d + 1;
    dnnl_memory_desc_t any_src, any_wei, any_dst, bia_md, usr_src_md, usr_wei_md, usr_dst_md;
    DNNL(dnnl_memory_desc_init_by_tag(&any_src, 4, src_d, dnnl_f32, dnnl_format_tag_any), "src desc");
    DNNL(dnnl_memory_desc_init_by_tag(&any_dst, 4, dst_d, dnnl_f32, dnnl_format_tag_any), "dst desc");
    DNNL(dnnl_memory_desc_init_by_tag(&any_wei, wnd, wd, dnnl_f32, dnnl_format_tag_any), "weights desc");
    DNNL(dnnl_memory_desc_init_by_tag(&bia_md, 1, bia_d, dnnl_f32, dnnl_x), "bias desc");
    DNNL(dnnl_memory_desc_init_by_tag(&usr_src_md, 4, src_d, dnnl_f32, dnnl_nchw), "src desc");
    DNNL(dnnl_memory_desc_init_by_tag(&usr_dst_md, 4, dst_d, dnnl_f32, dnnl_nchw), "dst desc");
    DNNL(dnnl_memory_desc_init_by_tag(&usr_wei_md, wnd, wd, dnnl_f32, G > 1 ? dnnl_goihw : dnnl_oihw),
         "weights desc");
    dnnl_convolution_desc_t cd;
    DNNL(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_auto,
                                                    &any_src, &any_wei, p->bias ? &bia_md : NULL, &any_dst,
                                                    strides, dil, pad, pad),
         "convolution desc");
    dnnl_primitive_desc_t pd;
    DNNL(dnnl_primitive_desc_create(&pd, &cd, NULL, st->eng, NULL), "convolution primitive desc");
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dcb_status ret = DCB_OK;
    dnnl_memory_t usr_wei = NULL;
    dnnl_primitive_t r_wei = NULL;
    if (dnnl_primitive_create(&st->conv, pd) != dnnl_success)
        ret = dnnl_err(dnnl_runtime_error, "convolution primitive");
    /* our tensors are wrapped with no handle; run sets x's and y's */
    if (ret == DCB_OK && dnnl_memory_create(&st->usr_src, &usr_src_md, st->eng, DNNL_MEMORY_NONE))
        ret = dnnl_err(dnnl_out_of_memory, "src memory");
    if (ret == DCB_OK) ret = make_reorder(st, st->usr_src, &usr_src_md, src_md, &st->src, &st->r_src);
    if (ret == DCB_OK && dnnl_memory_create(&st->usr_dst, &usr_dst_md, st->eng, DNNL_MEMORY_NONE))
        ret = dnnl_err(dnnl_out_of_memory, "dst memory");
    if (ret == DCB_OK) {
        if (dnnl_memory_desc_equal(dst_md, &usr_dst_md)) {
            st->dst = st->usr_dst;
        } else {  /* from the primitive's layout back to ours */
            dnnl_primitive_desc_t rpd;
            if (dnnl_memory_create(&st->dst, dst_md, st->eng, DNNL_MEMORY_ALLOCATE) ||
                dnnl_reorder_primitive_desc_create(&rpd, dst_md, st->eng, &usr_dst_md, st->eng, NULL)) {
                ret = dnnl_err(dnnl_runtime_error, "dst reorder");
            } else {
                if (dnnl_primitive_create(&st->r_dst, rpd)) ret = dnnl_err(dnnl_runtime_error, "dst reorder");
                dnnl_primitive_desc_destroy(rpd);
            }
        }
    }
    /* Weights are reordered once, here. When the layouts agree, the primitive
     * reads our tensor in place; dcb_op_set_weight rebuilds the primitive. */
    if (ret == DCB_OK && dnnl_memory_create(&usr_wei, &usr_wei_md, st->eng, dcb_w(op, "weight")->data))
        ret = dnnl_err(dnnl_out_of_memory, "weights memory");
    if (ret == DCB_OK) ret = make_reorder(st, usr_wei, &usr_wei_md, wei_md, &st->wei, &r_wei);
    if (ret == DCB_OK && r_wei) ret = run_reorder(st, r_wei, usr_wei, st->wei);
    if (r_wei) dnnl_primitive_destroy(r_wei);
    if (usr_wei && usr_wei != st->wei) dnnl_memory_destroy(usr_wei);
    if (ret == DCB_OK && p->bias &&
        dnnl_memory_create(&st->bia, &bia_md, st->eng, dcb_w(op, "bias")->data) != dnnl_success)
        ret = dnnl_err(dnnl_out_of_memory, "bias memory");
    dnnl_primitive_desc_destroy(pd);
    if (ret != DCB_OK) {
        destroy_primitive(st);
        return ret;
    }
    memcpy(st->shape, x, sizeof st->shape);
    return DCB_OK;
}

/* oneDNN (OpenMP runtime) fixes a primitive's thread count when it builds
 * it, from omp_get_max_threads(), and runs its parallel regions with that
 * many threads whatever is set at execution: the team must be op->threads
 * here already, or a threads=1 op runs on every core. */
static dcb_status onednn_plan(dcb_op *op, const int64_t *x) {
    if (!memcmp(S(op)->shape, x, sizeof S(op)->shape)) return DCB_OK;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(op->threads);
    dcb_status st = onednn_build(op, x);
    omp_set_num_threads(saved);
    return st;
}

static dcb_status onednn_run(dcb_op *op, const dcb_tensor *x, dcb_tensor *y, void *ws, dcb_profile *prof) {
    (void)ws;
    onednn_state *st = S(op);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(op->threads);
    dcb_status ret = DCB_OK;
    dnnl_memory_set_data_handle(st->usr_src, x->data);
    dnnl_memory_set_data_handle(st->usr_dst, y->data);
    double t0 = dcb_now();
    if (st->r_src) ret = run_reorder(st, st->r_src, st->usr_src, st->src);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
    if (ret == DCB_OK) {
        t0 = dcb_now();
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, st->src}, {DNNL_ARG_WEIGHTS, st->wei}, {DNNL_ARG_DST, st->dst},
                                   {DNNL_ARG_BIAS, st->bia}};
        if (dnnl_primitive_execute(st->conv, st->strm, st->bia ? 4 : 3, args) != dnnl_success ||
            dnnl_stream_wait(st->strm) != dnnl_success)
            ret = dnnl_err(dnnl_runtime_error, "convolution execution");
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
    }
    t0 = dcb_now();
    if (ret == DCB_OK && st->r_dst) ret = run_reorder(st, st->r_dst, st->dst, st->usr_dst);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
    omp_set_num_threads(saved);
    return ret;
}

const dcb_impl_vt dcb_conv2d_onednn_impl = {
    .name = "onednn", .doc = "oneDNN convolution (algorithm auto, preferred layouts; reorders in the transform phase)",
    .tol = 5e-6, .prepare = onednn_prepare, .plan = onednn_plan, .run = onednn_run, .release = onednn_release,
    .peer = 1,
};

const char *dcb_onednn_version(void) {
    static char buf[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}
#else
const char *dcb_onednn_version(void) { return ""; }
#endif
