/* The "direct" conv2d engine: no im2col matrix in memory, no BLAS.
 * Depthwise (groups == cin) runs as direct loops (conv2d_direct_dw.c),
 * everything else as an implicit GEMM on the shared 6x16 micro-kernel
 * (conv2d_direct_gemm.c); this file dispatches between them and holds the
 * engine descriptor. */
#include "dcb_internal.h"

static int is_depthwise(const dcb_conv2d_p *p) { return p->groups == p->cin; }

/* ==================================================================== entry */
size_t dcb_direct_wpack_bytes(const dcb_conv2d_p *p) {
    return is_depthwise(p) ? 0 : dcb_direct_gemm_wpack_bytes(p);
}

void dcb_direct_pack_weights(const dcb_conv2d_p *p, const float *w, float *wpacked) {
    if (!is_depthwise(p)) dcb_direct_gemm_pack_weights(p, w, wpacked);
}

size_t dcb_direct_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    if (threads < 1) threads = 1;
    return is_depthwise(p) ? dcb_direct_dw_ws(p, H, W, threads) : dcb_direct_gemm_ws(p, N, H, W, threads);
}

void dcb_direct_run(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,
                    const float *wpacked, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    if (threads < 1) threads = 1;
    const double t0 = dcb_now();
    if (is_depthwise(p))
        dcb_direct_dw_run(p, N, H, W, x, w, b, y, ws, threads);
    else
        dcb_direct_gemm_run(p, N, H, W, x, wpacked, b, y, ws, threads);
    DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
}

/* ------------------------------------------------------- the engine */
static size_t dround(size_t n) { return (n + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN; }

static dcb_status direct_engine_prepare(const dcb_conv2d_p *p, const float *w, void **state) {
    *state = NULL;
    const size_t bytes = dcb_direct_wpack_bytes(p);
    if (!bytes) return DCB_OK; /* depthwise reads the weights as they are */
    float *wp = dcb_aligned_alloc(bytes);
    if (!wp) return dcb_fail(DCB_OUT_OF_MEMORY, "direct: out of memory for the packed weights (%zu bytes)", bytes);
    dcb_direct_pack_weights(p, w, wp);
    *state = wp;
    return DCB_OK;
}

static void direct_engine_release(void *state) { dcb_aligned_free(state); }

static size_t direct_engine_ws(const dcb_conv2d_p *p, const void *state, int N, int H, int W, int threads) {
    (void)state;
    return dcb_direct_ws(p, N, H, W, threads);
}

static void direct_engine_run(const dcb_conv2d_p *p, const void *state, int N, int H, int W, const float *x,
                              const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    dcb_direct_run(p, N, H, W, x, w, state, b, y, ws, threads, prof);
}

/* A kernel that changes every call is packed into the workspace first. */
static size_t direct_engine_dyn_ws(const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    return dround(dcb_direct_wpack_bytes(p)) + dcb_direct_ws(p, N, H, W, threads);
}

static void direct_engine_dyn(const dcb_conv2d_p *p, int N, int H, int W, const float *x, const float *w,
                              const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    double t0 = dcb_now();
    dcb_direct_pack_weights(p, w, ws);
    DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
    char *rest = (char *)ws + dround(dcb_direct_wpack_bytes(p));
    dcb_direct_run(p, N, H, W, x, w, (const float *)ws, b, y, rest, threads, prof);
}

const dcb_engine_desc dcb_engine_direct = {
    .name = "direct",
    .doc = "depthwise as direct loops, the rest as implicit GEMM with a packed AVX2 6x16 micro-kernel",
    .tol = 2e-6, .prepare = direct_engine_prepare, .release = direct_engine_release,
    .workspace = direct_engine_ws, .run = direct_engine_run,
    .dyn_workspace = direct_engine_dyn_ws, .dyn_run = direct_engine_dyn,
};
