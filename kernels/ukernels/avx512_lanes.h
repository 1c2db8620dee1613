/* avx512_lanes.h — the mask of the first n lanes of a 16-float vector (all
 * 16 for n >= 16, none for n <= 0): the masked tails of every avx512
 * variant. Included only by files compiled with ISA_FLAGS_avx512, after
 * <immintrin.h>. */
#ifndef DCB_UK_AVX512_LANES_H
#define DCB_UK_AVX512_LANES_H

static inline __attribute__((always_inline)) __mmask16 lanes(long n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1);
}

#endif
