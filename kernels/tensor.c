/* tensor.c — tensors, seeded random fills, aligned memory, comparisons. */
#define _POSIX_C_SOURCE 200809L
#include "dcb_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Counted for the tests' proof that a run on a planned shape allocates
 * nothing (dcb_alloc_count). */
static _Atomic uint64_t alloc_count;

uint64_t dcb_alloc_count(void) { return alloc_count; }

void *dcb_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    alloc_count++;
    /* posix_memalign(0) may legally return NULL; callers treat NULL as
     * out of memory, so always ask for at least one alignment unit. */
    size_t n = bytes ? bytes : DCB_ALIGN;
    int rc = posix_memalign(&p, DCB_ALIGN, n);
    if (rc != 0) {
        dcb_fail(DCB_OUT_OF_MEMORY, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void dcb_aligned_free(void *p)
{
    free(p);
}

uint64_t dcb_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* ------------------------------------------------------ memory limit */
static size_t max_bytes_set; /* 0: DCB_MAX_BYTES, else 80% of physical memory */

static size_t default_max_bytes(void)
{
    const char *e = getenv("DCB_MAX_BYTES");
    if (e && *e) {
        char *end;
        double v = strtod(e, &end);
        double mul = 1;
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; end++; break;
        case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
        default: break;
        }
        if (*end == 'B' || *end == 'b') end++;
        if (*end == 0 && v * mul >= 1 && v * mul < 1.8e19) return (size_t)(v * mul);
        fprintf(stderr, "dcb: DCB_MAX_BYTES='%s' is not a size (bytes, or a number with K, M, G or T); "
                        "using 80%% of physical memory\n", e);
    }
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return (size_t)8 << 30;
    return (size_t)((double)pages * (double)psz * 0.8);
}

size_t dcb_max_bytes(void)
{
    size_t m = __atomic_load_n(&max_bytes_set, __ATOMIC_RELAXED);
    if (m) return m;
    static size_t def;
    size_t d = __atomic_load_n(&def, __ATOMIC_RELAXED);
    if (!d) {
        d = default_max_bytes();
        __atomic_store_n(&def, d, __ATOMIC_RELAXED);
    }
    return d;
}

void dcb_set_max_bytes(size_t bytes) { __atomic_store_n(&max_bytes_set, bytes, __ATOMIC_RELAXED); }

const char *dcb_bytes_str(double bytes, char *buf, size_t len)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024 && u < 6) {
        bytes /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, len, "%.0f bytes", bytes);
    else snprintf(buf, len, "%.1f %s", bytes, unit[u]);
    return buf;
}

dcb_tensor *dcb_tensor_new(int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > DCB_MAX_DIMS) {
        dcb_fail(DCB_INVALID_SHAPE, "tensor: ndim=%d is out of range 0..%d",
                 ndim, DCB_MAX_DIMS);
        return NULL;
    }
    if (ndim > 0 && !shape) {
        dcb_fail(DCB_INVALID_ARGUMENT, "tensor: shape is NULL with ndim=%d", ndim);
        return NULL;
    }
    /* Elements must stay addressable as bytes in both size_t and int64_t. */
    uint64_t limit = (uint64_t)INT64_MAX / sizeof(float);
    if ((uint64_t)(SIZE_MAX / sizeof(float)) < limit)
        limit = (uint64_t)(SIZE_MAX / sizeof(float));
    uint64_t size = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) {
            dcb_fail(DCB_INVALID_SHAPE,
                     "tensor: dim %d is %lld (every dim must be >= 1)",
                     i, (long long)shape[i]);
            return NULL;
        }
        if ((uint64_t)shape[i] > limit / size) {
            char buf[160];
            dcb_fail(DCB_INVALID_SHAPE,
                     "tensor: shape %s has too many elements (overflow at dim %d)",
                     dcb_shape_str(ndim, shape, buf, sizeof buf), i);
            return NULL;
        }
        size *= (uint64_t)shape[i];
    }

    size_t bytes = (size_t)size * sizeof(float);
    if (bytes > dcb_max_bytes()) {
        char buf[160], b1[32], b2[32];
        dcb_fail(DCB_OUT_OF_MEMORY, "tensor: shape %s needs %s, above the limit of %s (DCB_MAX_BYTES)",
                 dcb_shape_str(ndim, shape, buf, sizeof buf), dcb_bytes_str((double)bytes, b1, sizeof b1),
                 dcb_bytes_str((double)dcb_max_bytes(), b2, sizeof b2));
        return NULL;
    }
    dcb_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        dcb_fail(DCB_OUT_OF_MEMORY, "tensor: out of memory");
        return NULL;
    }
    t->data = dcb_aligned_alloc(bytes);
    if (!t->data) {
        char buf[160];
        dcb_fail(DCB_OUT_OF_MEMORY, "tensor: out of memory for shape %s (%zu bytes)",
                 dcb_shape_str(ndim, shape, buf, sizeof buf), bytes);
        free(t);
        return NULL;
    }
    memset(t->data, 0, bytes);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->size = (int64_t)size;
    return t;
}

dcb_tensor *dcb_tensor_new4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    const int64_t s[4] = {a, b, c, d};
    return dcb_tensor_new(4, s);
}

dcb_tensor *dcb_tensor_clone(const dcb_tensor *t)
{
    if (!t) {
        dcb_fail(DCB_INVALID_ARGUMENT, "tensor_clone: tensor is NULL");
        return NULL;
    }
    dcb_tensor *c = dcb_tensor_new(t->ndim, t->shape);
    if (c)
        memcpy(c->data, t->data, (size_t)t->size * sizeof(float));
    return c;
}

void dcb_tensor_free(dcb_tensor *t)
{
    if (!t)
        return;
    dcb_aligned_free(t->data);
    free(t);
}

/* Uniform in [0, 1) with 53 random bits. */
static double u01(uint64_t *s)
{
    return (double)(dcb_rand_u64(s) >> 11) * 0x1.0p-53;
}

void dcb_tensor_randn(dcb_tensor *t, uint64_t seed)
{
    if (!t)
        return;
    uint64_t s = seed;
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < t->size; i += 2) {
        /* 1 - u keeps the log argument in (0, 1]. */
        double r = sqrt(-2.0 * log(1.0 - u01(&s)));
        double th = two_pi * u01(&s);
        t->data[i] = (float)(r * cos(th));
        if (i + 1 < t->size)
            t->data[i + 1] = (float)(r * sin(th));
    }
}

void dcb_tensor_uniform(dcb_tensor *t, uint64_t seed, float lo, float hi)
{
    if (!t)
        return;
    uint64_t s = seed;
    double span = (double)hi - (double)lo;
    for (int64_t i = 0; i < t->size; i++) {
        float v = (float)((double)lo + span * u01(&s));
        /* Rounding to float can land on hi; keep the interval half-open. */
        if (v >= hi && hi > lo)
            v = nextafterf(hi, lo);
        t->data[i] = v;
    }
}

int dcb_shape_equal(const dcb_tensor *t, int ndim, const int64_t *shape)
{
    if (!t || t->ndim != ndim || (ndim > 0 && !shape))
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return 1;
}

char *dcb_shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    if (ndim < 0 || ndim > DCB_MAX_DIMS || (ndim > 0 && !shape)) {
        snprintf(buf, len, "(<bad ndim %d>)", ndim);
        return buf;
    }
    size_t used = 0;
    buf[0] = '\0';
    /* snprintf truncates safely; stop appending once the buffer is full. */
    for (int i = -1; i <= ndim && used < len; i++) {
        int n;
        if (i < 0)
            n = snprintf(buf + used, len - used, "(");
        else if (i == ndim)
            n = snprintf(buf + used, len - used, ")");
        else
            n = snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                         (long long)shape[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

double dcb_max_rel_err(const dcb_tensor *a, const dcb_tensor *b, double *max_abs)
{
    if (max_abs)
        *max_abs = INFINITY;
    if (!a || !b) {
        dcb_fail(DCB_INVALID_ARGUMENT, "max_rel_err: tensor is NULL");
        return INFINITY;
    }
    if (!dcb_shape_equal(a, b->ndim, b->shape)) {
        char sa[160], sb[160];
        dcb_fail(DCB_INVALID_SHAPE, "max_rel_err: shapes differ: %s vs %s",
                 dcb_shape_str(a->ndim, a->shape, sa, sizeof sa),
                 dcb_shape_str(b->ndim, b->shape, sb, sizeof sb));
        return INFINITY;
    }
    double md = 0.0, mb = 0.0;
    int nan = 0;
    for (int64_t i = 0; i < a->size; i++) {
        double x = a->data[i], y = b->data[i];
        /* Equal infinities are a match, not inf - inf = NaN. */
        double d = (x == y) ? 0.0 : fabs(x - y);
        if (isnan(d))
            nan = 1;   /* a NaN must never compare as a small error */
        else if (d > md)
            md = d;
        if (fabs(y) > mb)
            mb = fabs(y);
    }
    if (nan) {
        if (max_abs)
            *max_abs = NAN;
        return NAN;
    }
    if (max_abs)
        *max_abs = md;
    if (isinf(md))
        return INFINITY;   /* not inf / inf when b holds an infinity */
    return md / (mb > 1.0 ? mb : 1.0);
}
