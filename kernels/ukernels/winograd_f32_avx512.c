/* winograd_f32_avx512.c — the AVX-512 variant of the Winograd transforms
 * (winograd_f32.h): winograd_f32_x86.inc compiled with ISA_FLAGS_avx512 (x86-64-v4). */
#include "winograd_f32.h"

#if DCB_ISA_X86
#if !defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "winograd_f32_avx512.c needs its ISA: build it with the Makefile's ISA_FLAGS_avx512"
#endif
#define WK_NAME(f) f##_avx512
#include "winograd_f32_x86.inc"

DCB_WK_DEFINE(avx512, DCB_ISA_AVX512)
#endif
