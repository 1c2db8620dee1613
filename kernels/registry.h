/* The one list of operators. Tests, the Lua API and sweeps enumerate the
 * registry built from it, so an operator (and each of its implementations)
 * is tested and benchmarkable the moment it is listed here. */
#ifndef DCB_REGISTRY_H
#define DCB_REGISTRY_H
#define DCB_OPERATORS(X) \
    X(conv2d) \
    X(se) \
    X(condconv) \
    X(dyconv) \
    X(weightnet) \
    X(drconv) \
    X(localconv) \
    X(skconv) \
    X(splat) \
    X(lightconv) \
    X(dynconv1d) \
    X(mhattention) \
    X(batchnorm) \
    X(relu) \
    X(relu6) \
    X(silu) \
    X(sigmoid) \
    X(maxpool) \
    X(avgpool) \
    X(gap) \
    X(linear) \
    X(flatten)

/* The one list of conv2d engines. Each entry `e` is defined by its own file
 * as `const dcb_engine_desc dcb_engine_e` (dcb_internal.h); the enum, the
 * names, conv2d's implementations and the per-engine implementations of
 * every operator built on an engine are generated from this list. */
#define DCB_CONV_ENGINES_WITH(X, a) \
    X(naive, a) \
    X(im2col, a) \
    X(winograd, a) \
    X(winograd_f2, a) \
    X(winograd_f6, a) \
    X(direct, a)
/* X(e) for every engine; _WITH passes one more argument, for lists crossed
 * with another list (an operator's strategies times the engines). */
#define DCB_ENGINE_ONLY(e, X) X(e)
#define DCB_CONV_ENGINES(X) DCB_CONV_ENGINES_WITH(DCB_ENGINE_ONLY, X)
#endif
