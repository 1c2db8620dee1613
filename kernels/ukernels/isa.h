/* isa.h — the instruction-set levels libdcb's micro-kernels come in, which
 * one this process runs, and how a kernel family picks its variant.
 *
 * Levels, widest last: scalar (portable C, compiled for plain x86-64), avx2
 * (AVX2 + FMA, x86-64-v3) and avx512 (AVX-512 F/BW/DQ/VL, x86-64-v4). A
 * variant file is compiled with its level's target flags whatever the
 * baseline -march (the Makefile's ISA_FLAGS_*), so its instructions run only
 * where dcb_isa_runs() said so.
 *
 * dcb_isa_current() is chosen once per process: the widest level the CPU and
 * the OS run (CPUID, and XGETBV for the register state), or the narrower
 * one the environment variable DCB_ISA names. A DCB_ISA the CPU cannot run,
 * or a word that names no level, is not obeyed: the level is then the
 * widest, and dcb_isa_check() (which dcbench calls before anything else)
 * reports it as an error.
 *
 * A family of kernels lists its variants best first and calls
 * dcb_isa_pick() once: the index of the first variant whose level is at
 * most dcb_isa_current(). Its scalar variant is last, so there is always one. */
#ifndef DCB_ISA_H
#define DCB_ISA_H

#if defined(__x86_64__) || defined(_M_X64)
#define DCB_ISA_X86 1
#else
#define DCB_ISA_X86 0
#endif

typedef enum dcb_isa_level { DCB_ISA_SCALAR = 0, DCB_ISA_AVX2 = 1, DCB_ISA_AVX512 = 2 } dcb_isa_level;
#define DCB_ISA_LEVELS 3

const char *dcb_isa_level_name(dcb_isa_level l); /* "scalar", "avx2", "avx512" */
int dcb_isa_runs(dcb_isa_level l);               /* this CPU and OS run it */
dcb_isa_level dcb_isa_current(void);               /* the level of this process */
/* levels: n entries, best first; the index of the first <= dcb_isa_current(),
 * or n - 1 where none is. */
int dcb_isa_pick(const dcb_isa_level *levels, int n);

#endif
