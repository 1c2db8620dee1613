/* Status codes, the thread-local error message, timing and small helpers. */
#define _POSIX_C_SOURCE 200809L
#include "dcb_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[1024];

static const char *const status_names[DCB_STATUS_COUNT] = {
    [DCB_OK] = "ok",
    [DCB_INVALID_ARGUMENT] = "invalid_argument", [DCB_INVALID_PARAM] = "invalid_param",
    [DCB_INVALID_SHAPE] = "invalid_shape", [DCB_INVALID_WEIGHT] = "invalid_weight",
    [DCB_INVALID_FILE] = "invalid_file",
    [DCB_UNSUPPORTED_PARAM] = "unsupported_param", [DCB_UNSUPPORTED_SHAPE] = "unsupported_shape",
    [DCB_UNKNOWN_OP] = "unknown_op", [DCB_UNKNOWN_IMPL] = "unknown_impl", [DCB_UNKNOWN_PARAM] = "unknown_param",
    [DCB_OUT_OF_MEMORY] = "out_of_memory", [DCB_IO_ERROR] = "io_error",
};

const char *dcb_status_name(dcb_status s) {
    if ((int)s < 0 || s >= DCB_STATUS_COUNT) return "unknown_status";
    return status_names[s];
}

const char *dcb_last_error(void) { return last_error; }

int dcb_status_is_unsupported(dcb_status s) {
    return s == DCB_UNSUPPORTED_PARAM || s == DCB_UNSUPPORTED_SHAPE;
}

int dcb_status_is_invalid(dcb_status s) {
    return s >= DCB_INVALID_ARGUMENT && s <= DCB_INVALID_FILE;
}

dcb_status dcb_fail(dcb_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

double dcb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const phase_names[DCB_PHASE_COUNT] = {
    "routing", "kernel_gen", "transform", "gemm", "combine"};

const char *dcb_phase_name(int phase) {
    if (phase < 0 || phase >= DCB_PHASE_COUNT) return NULL;
    return phase_names[phase];
}

#ifndef DCB_BUILD_FLAGS
#define DCB_BUILD_FLAGS "unknown"
#endif
const char *dcb_build_flags(void) { return DCB_BUILD_FLAGS; }
