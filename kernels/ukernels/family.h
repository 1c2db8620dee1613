/* family.h — the run-time picker every kernel family of kernels/ukernels/
 * shares (dwconv.h, seq1d.h, vmath.h, dynmix.h): its variants listed best
 * first, NULL-terminated, and the first whose ISA is at most
 * dcb_isa_current() chosen once per process and cached. */
#ifndef DCB_UK_FAMILY_H
#define DCB_UK_FAMILY_H

#include "isa.h"

/* Defines `const T *pick(void)` over the NULL-terminated array `list`
 * (best first, the scalar variant last). Threads that race on the first
 * call choose alike. */
#define DCB_FAMILY_PICKER(T, pick, list)                                         \
    const T *pick(void) {                                                        \
        static const T *chosen;                                                  \
        const T *v = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);                 \
        if (!v) {                                                                \
            dcb_isa_level levels[sizeof list / sizeof *list];                    \
            int n = 0;                                                           \
            for (; list[n]; n++) levels[n] = list[n]->isa;                       \
            v = list[dcb_isa_pick(levels, n)];                                   \
            __atomic_store_n(&chosen, v, __ATOMIC_RELEASE);                      \
        }                                                                        \
        return v;                                                                \
    }

#endif
