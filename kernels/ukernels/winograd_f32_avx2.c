/* winograd_f32_avx2.c — the AVX2 + FMA variant of the Winograd transforms
 * (winograd_f32.h): winograd_f32_x86.inc compiled with ISA_FLAGS_avx2 (x86-64-v3). */
#include "winograd_f32.h"

#if DCB_ISA_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "winograd_f32_avx2.c needs its ISA: build it with the Makefile's ISA_FLAGS_avx2"
#endif
#define WK_NAME(f) f##_avx2
#include "winograd_f32_x86.inc"

DCB_WK_DEFINE(avx2, DCB_ISA_AVX2)
#endif
