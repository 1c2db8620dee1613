/* The conv2d engines by name, for the operators whose kernel is only known at
 * run time (each sample's mixed kernel): every strategy runs on every engine.
 * Winograd uses the fused dynamic path (float kernel transform inside the
 * GEMM loop, dcb_winograd_dyn_run) where it is supported, else a plan built
 * in the workspace. */
#include "dcb_internal.h"

#include <string.h>

const char *const dcb_engine_names[DCB_ENGINE_COUNT] = {"naive", "im2col", "winograd", "winograd_f2",
                                                        "direct"};

int dcb_engine_parse(const char *name) {
    for (int e = 0; e < DCB_ENGINE_COUNT; e++)
        if (name && strcmp(name, dcb_engine_names[e]) == 0) return e;
    return -1;
}

static int wino_m(dcb_engine e) { return e == DCB_ENGINE_WINOGRAD_F2 ? 2 : 4; }

dcb_status dcb_engine_check(dcb_engine e, const dcb_conv2d_p *p, const char *who) {
    if ((e == DCB_ENGINE_WINOGRAD || e == DCB_ENGINE_WINOGRAD_F2) &&
        (p->kh != 3 || p->kw != 3 || p->stride != 1 || p->dil != 1))
        return dcb_fail(DCB_UNSUPPORTED_PARAM,
                        "%s: needs a 3x3 kernel, stride 1 and dilation 1 (got %dx%d, stride=%d, dilation=%d)",
                        who, p->kh, p->kw, p->stride, p->dil);
    return DCB_OK;
}

static size_t round_up(size_t n) { return (n + DCB_ALIGN - 1) / DCB_ALIGN * DCB_ALIGN; }

size_t dcb_engine_ws(dcb_engine e, const dcb_conv2d_p *p, int N, int H, int W, int threads) {
    switch (e) {
    case DCB_ENGINE_NAIVE: return 0;
    case DCB_ENGINE_IM2COL: return dcb_conv2d_im2col_ws(p, N, H, W, threads);
    case DCB_ENGINE_DIRECT: /* the kernel is packed per call, into the workspace */
        return round_up(dcb_direct_wpack_bytes(p)) + dcb_direct_ws(p, N, H, W, threads);
    default: {
        const int m = wino_m(e);
        if (dcb_winograd_dyn_supported(p, m))
            return round_up(sizeof(float) * (dcb_winograd_bank_floats(p) + 8)) +
                   dcb_winograd_dyn_ws(p, m, N, H, W, threads);
        size_t pb = round_up(dcb_winograd_plan_bytes(p, m));
        /* the run workspace depends on shapes only: size it from a weightless plan */
        dcb_winograd_plan *pl = dcb_winograd_plan_new(p, m, NULL);
        size_t s = pl ? dcb_winograd_ws(pl, N, H, W, threads) : 0;
        dcb_winograd_plan_free(pl);
        return pb + round_up(s);
    }
    }
}

void dcb_engine_conv(dcb_engine e, const dcb_conv2d_p *p, int N, int H, int W, const float *x,
                     const float *w, const float *b, float *y, void *ws, int threads, dcb_profile *prof) {
    switch (e) {
    case DCB_ENGINE_NAIVE: {
        double t0 = dcb_now();
        dcb_conv2d_naive(p, N, H, W, x, w, b, y, threads);
        DCB_PHASE_ADD(prof, DCB_PHASE_GEMM, t0);
        break;
    }
    case DCB_ENGINE_IM2COL: dcb_conv2d_im2col(p, N, H, W, x, w, b, y, ws, threads, prof); break;
    case DCB_ENGINE_DIRECT: {
        double t0 = dcb_now();
        dcb_direct_pack_weights(p, w, ws);
        DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
        char *rest = (char *)ws + round_up(dcb_direct_wpack_bytes(p));
        dcb_direct_run(p, N, H, W, x, w, (const float *)ws, b, y, rest, threads, prof);
        break;
    }
    default: {
        const int m = wino_m(e);
        double t0 = dcb_now();
        if (dcb_winograd_dyn_supported(p, m)) {
            /* the kernel into the engine's panel layout, then the fused float
             * transform + GEMM: no plan in double */
            float *wp = ws;
            dcb_winograd_bank_pack(p, w, wp);
            memset(wp + dcb_winograd_bank_floats(p), 0, 8 * sizeof(float));
            DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
            const dcb_wino_dyn k = {wp, NULL, NULL, b, 0, 1};
            char *rest = (char *)ws + round_up(sizeof(float) * (dcb_winograd_bank_floats(p) + 8));
            dcb_winograd_dyn_run(p, m, N, H, W, x, &k, y, rest, threads, prof);
            break;
        }
        dcb_winograd_plan *pl = dcb_winograd_plan_init(ws, p, m, w);
        DCB_PHASE_ADD(prof, DCB_PHASE_TRANSFORM, t0);
        char *rest = (char *)ws + round_up(dcb_winograd_plan_bytes(p, m));
        dcb_winograd_run(pl, N, H, W, x, b, y, rest, threads, prof);
        break;
    }
    }
}
