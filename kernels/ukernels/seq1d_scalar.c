/* seq1d_scalar.c — the portable variant of the sequence row (seq1d.h):
 * plain loops, taps outermost; the reference the tests hold the others to. */
#include "seq1d.h"

#include <stddef.h>
#include <string.h>

#include "seq1d_loops.inc"

#define row_scalar row_loops
DCB_SEQ1D_DEFINE(scalar, DCB_ISA_SCALAR, NULL)
