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
    X(mhattention)
#endif
