/* test_npy.c — tensors and .npy files: round trips, NumPy's byte layout,
 * every malformed file we refuse, and saves that must fail cleanly. */
#define _XOPEN_SOURCE 700
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcb.h"

static char g_dir[256];
static dcb_tensor g_sentinel;   /* *out is set to this before failing loads */

/* ----------------------------------------------------------------- helpers */

static void path_in(const char *name, char *buf)
{
    snprintf(buf, PATH_MAX, "%s/%s", g_dir, name);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* The entries of dir but . and .., or only those whose name contains part. */
static int count_entries_with(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!part || strstr(e->d_name, part)))
            n++;
    closedir(d);
    return n;
}

static int count_entries(const char *dir) { return count_entries_with(dir, NULL); }
static int has_temp_file(const char *dir) { return count_entries_with(dir, ".tmp") > 0; }

/* Python's repr of a shape tuple. */
static void py_tuple(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
                              (long long)shape[i]);
    snprintf(buf + n, cap - n, ndim == 1 ? ",)" : ")");
}

/* numpy.lib.format._write_array_header + _wrap_header, transcribed:
 * modern = NumPy >= 1.23, which adds GROWTH_AXIS_MAX_DIGITS spare spaces. */
static size_t numpy_header(int ndim, const int64_t *shape, int modern,
                           unsigned char *out)
{
    char tup[256], d[512];
    py_tuple(ndim, shape, tup, sizeof tup);
    int n = snprintf(d, sizeof d, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", tup);
    if (modern && ndim > 0) {
        char first[32];
        int extra = 21 - snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = 0; i < extra; i++)
            d[n++] = ' ';
        d[n] = '\0';
    }
    size_t hlen = (size_t)n + 1;
    size_t padlen = 64 - ((8 + 2 + hlen) % 64);
    size_t total = 10 + hlen + padlen;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)((hlen + padlen) & 0xff);
    out[9] = (unsigned char)((hlen + padlen) >> 8);
    memcpy(out + 10, d, (size_t)n);
    memset(out + 10 + n, ' ', padlen);
    out[total - 1] = '\n';
    return total;
}

/* A file with the given version and header text (padded to 64 with spaces
 * and '\n' when pad) followed by nbytes of data. Caller frees. */
static unsigned char *make_npy_n(int major, const char *dict, size_t dl, int pad,
                                 const void *data, size_t nbytes, size_t *len)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t hl = dl;
    if (pad)
        hl = dl + 1 + (64 - (pre + dl + 1) % 64) % 64;
    unsigned char *b = malloc(pre + hl + nbytes + 1);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 8; i < pre; i++) /* the header length, little-endian */
        b[i] = (unsigned char)(hl >> 8 * (i - 8) & 0xff);
    memcpy(b + pre, dict, dl);
    if (pad) {
        memset(b + pre + dl, ' ', hl - dl);
        b[pre + hl - 1] = '\n';
    }
    if (nbytes) {
        if (data)
            memcpy(b + pre + hl, data, nbytes);
        else
            memset(b + pre + hl, 0, nbytes);
    }
    *len = pre + hl + nbytes;
    return b;
}

static unsigned char *make_npy(int major, const char *dict, int pad,
                               const void *data, size_t nbytes, size_t *len)
{
    return make_npy_n(major, dict, strlen(dict), pad, data, nbytes, len);
}

static void expect_message(const char *name, const char *keyword)
{
    const char *m = dcb_last_error();
    assert_non_null(m);
    if (!strstr(m, name) || !strstr(m, keyword))
        fail_msg("message \"%s\" should name \"%s\" and say \"%s\"", m, name, keyword);
}

static void expect_load_fails(const char *name, dcb_status want, const char *keyword)
{
    char p[PATH_MAX];
    path_in(name, p);
    dcb_tensor *t = &g_sentinel;
    dcb_status s = dcb_npy_load(p, &t);
    if (s != want)
        fail_msg("%s: status %s, want %s (%s)", name, dcb_status_name(s),
                 dcb_status_name(want), dcb_last_error());
    assert_null(t);
    expect_message(name, keyword);
}

static void expect_invalid_bytes(const char *name, const void *b, size_t n,
                                 const char *keyword)
{
    char p[PATH_MAX];
    path_in(name, p);
    write_bytes(p, b, n);
    expect_load_fails(name, DCB_INVALID_FILE, keyword);
    unlink(p);
}

static dcb_tensor *load_ok(const char *path)
{
    dcb_tensor *t = NULL;
    dcb_status s = dcb_npy_load(path, &t);
    if (s != DCB_OK)
        fail_msg("load %s: %s: %s", path, dcb_status_name(s), dcb_last_error());
    assert_non_null(t);
    return t;
}

static void save_ok(const char *path, const dcb_tensor *t)
{
    dcb_status s = dcb_npy_save(path, t);
    if (s != DCB_OK)
        fail_msg("save %s: %s: %s", path, dcb_status_name(s), dcb_last_error());
}

/* ------------------------------------------------------------ tensors */

static void test_rand_u64_reference(void **state)
{
    (void)state;
    uint64_t s = 0;
    /* splitmix64's published outputs for seed 0. */
    assert_true(dcb_rand_u64(&s) == UINT64_C(0xe220a8397b1dcdaf));
    assert_true(dcb_rand_u64(&s) == UINT64_C(0x6e789e6aa1b965f4));
    assert_true(dcb_rand_u64(&s) == UINT64_C(0x06c45d188009454f));
}

static void test_tensor_new_valid(void **state)
{
    (void)state;
    const int64_t shape[6] = {2, 3, 1, 4, 1, 5};
    for (int nd = 0; nd <= DCB_MAX_DIMS; nd++) {
        dcb_tensor *t = dcb_tensor_new(nd, shape);
        assert_non_null(t);
        assert_int_equal(t->ndim, nd);
        int64_t n = 1;
        for (int i = 0; i < nd; i++) {
            assert_int_equal(t->shape[i], shape[i]);
            n *= shape[i];
        }
        assert_int_equal(t->size, n);
        assert_int_equal((uintptr_t)t->data % DCB_ALIGN, 0);
        for (int64_t i = 0; i < n; i++)
            assert_true(t->data[i] == 0.0f);
        assert_true(dcb_shape_equal(t, nd, shape));
        dcb_tensor_free(t);
    }
    dcb_tensor *t = dcb_tensor_new(0, NULL);
    assert_non_null(t);
    assert_int_equal(t->size, 1);
    dcb_tensor_free(t);
    dcb_tensor_free(NULL);
}

static void test_tensor_new_invalid(void **state)
{
    (void)state;
    struct { int nd; int64_t s[7]; const char *kw; } cases[] = {
        {-1, {0}, "ndim=-1"},
        {7, {1, 1, 1, 1, 1, 1, 1}, "ndim=7"},
        {2, {3, 0}, "dim 1 is 0"},
        {3, {2, -4, 5}, "dim 1 is -4"},
        {1, {INT64_MIN}, "dim 0 is"},
        {2, {INT64_MAX, 4}, "too many elements"},
        {3, {INT64_C(1) << 31, INT64_C(1) << 31, 4}, "too many elements"},
        {1, {INT64_MAX / 4 + 1}, "too many elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dcb_tensor *t = dcb_tensor_new(cases[i].nd, cases[i].s);
        assert_null(t);
        expect_message("tensor", cases[i].kw);
    }
    assert_null(dcb_tensor_new(2, NULL));
    assert_null(dcb_tensor_new4(1, 2, 0, 4));
    expect_message("tensor", "dim 2 is 0");
}

static void test_tensor_new4_clone(void **state)
{
    (void)state;
    dcb_tensor *t = dcb_tensor_new4(2, 3, 4, 5);
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->size, 120);
    dcb_tensor_randn(t, 7);
    dcb_tensor *c = dcb_tensor_clone(t);
    assert_non_null(c);
    assert_ptr_not_equal(c->data, t->data);
    assert_true(dcb_shape_equal(c, t->ndim, t->shape));
    assert_memory_equal(c->data, t->data, 120 * sizeof(float));
    assert_null(dcb_tensor_clone(NULL));
    dcb_tensor_free(c);
    dcb_tensor_free(t);
}

static void test_randn_deterministic(void **state)
{
    (void)state;
    const int64_t n = 200001;     /* odd: the last Box-Muller pair is half used */
    dcb_tensor *a = dcb_tensor_new(1, &n), *b = dcb_tensor_new(1, &n),
               *c = dcb_tensor_new(1, &n);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    dcb_tensor_randn(a, 42);
    dcb_tensor_randn(b, 42);
    dcb_tensor_randn(c, 43);
    assert_memory_equal(a->data, b->data, (size_t)n * sizeof(float));
    assert_memory_not_equal(a->data, c->data, (size_t)n * sizeof(float));
    double sum = 0, sq = 0;
    int differ = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(isfinite(a->data[i]));
        sum += a->data[i];
        sq += (double)a->data[i] * a->data[i];
        differ += a->data[i] != c->data[i];
    }
    double mean = sum / n, var = sq / n - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
    assert_true(differ > n - 10);
    dcb_tensor_free(a);
    dcb_tensor_free(b);
    dcb_tensor_free(c);
}

static void test_uniform(void **state)
{
    (void)state;
    const int64_t n = 100000;
    dcb_tensor *a = dcb_tensor_new(1, &n), *b = dcb_tensor_new(1, &n);
    dcb_tensor_uniform(a, 5, -0.5f, 2.0f);
    dcb_tensor_uniform(b, 5, -0.5f, 2.0f);
    assert_memory_equal(a->data, b->data, (size_t)n * sizeof(float));
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(a->data[i] >= -0.5f && a->data[i] < 2.0f);
        sum += a->data[i];
    }
    assert_true(fabs(sum / n - 0.75) < 0.02);
    dcb_tensor_free(a);
    dcb_tensor_free(b);
}

static void test_shape_str(void **state)
{
    (void)state;
    char buf[64];
    const int64_t s[4] = {8, 64, 28, 28};
    assert_string_equal(dcb_shape_str(4, s, buf, sizeof buf), "(8, 64, 28, 28)");
    assert_string_equal(dcb_shape_str(1, s, buf, sizeof buf), "(8)");
    assert_string_equal(dcb_shape_str(0, NULL, buf, sizeof buf), "()");
    char small[6];
    assert_string_equal(dcb_shape_str(4, s, small, sizeof small), "(8, 6");
    dcb_tensor *t = dcb_tensor_new(4, s);
    assert_true(dcb_shape_equal(t, 4, s));
    assert_false(dcb_shape_equal(t, 3, s));
    const int64_t o[4] = {8, 64, 28, 27};
    assert_false(dcb_shape_equal(t, 4, o));
    assert_false(dcb_shape_equal(NULL, 4, s));
    dcb_tensor_free(t);
}

static void test_max_rel_err(void **state)
{
    (void)state;
    const int64_t n = 3;
    dcb_tensor *a = dcb_tensor_new(1, &n), *b = dcb_tensor_new(1, &n);
    double ma;
    a->data[0] = 1.0f; a->data[1] = 2.0f; a->data[2] = -3.0f;
    b->data[0] = 1.0f; b->data[1] = 2.5f; b->data[2] = -4.0f;
    assert_true(fabs(dcb_max_rel_err(a, b, &ma) - 0.25) < 1e-12);
    assert_true(fabs(ma - 1.0) < 1e-12);
    /* Small references: the denominator is at least 1. */
    b->data[0] = 0.1f; b->data[1] = 0.2f; b->data[2] = -0.5f;
    a->data[0] = 0.1f; a->data[1] = 0.2f; a->data[2] = -0.25f;
    assert_true(fabs(dcb_max_rel_err(a, b, NULL) - 0.25) < 1e-7);
    a->data[1] = NAN;
    assert_true(isnan(dcb_max_rel_err(a, b, &ma)));
    assert_true(isnan(ma));
    dcb_tensor *c = dcb_tensor_new(1, (const int64_t[]){4});
    assert_true(isinf(dcb_max_rel_err(a, c, &ma)));
    expect_message("max_rel_err", "(3) vs (4)");
    dcb_tensor_free(a);
    dcb_tensor_free(b);
    dcb_tensor_free(c);
}

static void test_aligned_alloc(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 3, 63, 64, 65, 4096, 1000003};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = dcb_aligned_alloc(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % DCB_ALIGN, 0);
        if (sizes[i])
            memset(p, 0xab, sizes[i]);
        dcb_aligned_free(p);
    }
    dcb_aligned_free(NULL);
}

/* ------------------------------------------------------------ round trips */

static void fill_random_bits(dcb_tensor *t, uint64_t *rng)
{
    /* Raw bit patterns: NaN payloads, infinities, subnormals and -0 must all
     * survive a save and a load unchanged. */
    for (int64_t i = 0; i < t->size; i++) {
        uint32_t bits = (uint32_t)dcb_rand_u64(rng);
        memcpy(&t->data[i], &bits, 4);
    }
}

static void test_roundtrip_all_ndim(void **state)
{
    (void)state;
    uint64_t rng = 12345;
    char p[PATH_MAX];
    path_in("rt.npy", p);
    for (int nd = 0; nd <= DCB_MAX_DIMS; nd++) {
        for (int rep = 0; rep < 8; rep++) {
            int64_t shape[DCB_MAX_DIMS];
            int64_t maxd = nd <= 2 ? 300 : nd <= 4 ? 12 : 5;
            for (int i = 0; i < nd; i++)
                shape[i] = 1 + (int64_t)(dcb_rand_u64(&rng) % (uint64_t)maxd);
            dcb_tensor *t = dcb_tensor_new(nd, shape);
            assert_non_null(t);
            if (rep % 2)
                fill_random_bits(t, &rng);
            else
                dcb_tensor_randn(t, rng);
            save_ok(p, t);

            /* The file is what NumPy itself would write. */
            size_t flen;
            unsigned char *file = read_bytes(p, &flen);
            unsigned char ref[512];
            size_t hl = numpy_header(nd, shape, 1, ref);
            assert_int_equal(hl % 64, 0);
            assert_int_equal(flen, hl + (size_t)t->size * 4);
            assert_memory_equal(file, ref, hl);
            free(file);

            dcb_tensor *u = load_ok(p);
            assert_int_equal(u->ndim, nd);
            assert_true(dcb_shape_equal(u, nd, shape));
            assert_int_equal(u->size, t->size);
            assert_memory_equal(u->data, t->data, (size_t)t->size * 4);
            dcb_tensor_free(u);
            dcb_tensor_free(t);
        }
    }
    unlink(p);
    assert_int_equal(count_entries(g_dir), 0);
}

static void test_roundtrip_long_first_dim(void **state)
{
    (void)state;
    /* Long first dims change the spare-space count of NumPy's header. */
    const int64_t shapes[][2] = {{1, 1}, {9, 2}, {10, 1}, {99999, 1}, {1000000, 1}};
    char p[PATH_MAX];
    path_in("long.npy", p);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        for (int nd = 1; nd <= 2; nd++) {
            dcb_tensor *t = dcb_tensor_new(nd, shapes[k]);
            dcb_tensor_uniform(t, k, -1, 1);
            save_ok(p, t);
            size_t flen;
            unsigned char *file = read_bytes(p, &flen);
            unsigned char ref[512];
            size_t hl = numpy_header(nd, shapes[k], 1, ref);
            assert_memory_equal(file, ref, hl);
            free(file);
            dcb_tensor *u = load_ok(p);
            assert_memory_equal(u->data, t->data, (size_t)t->size * 4);
            dcb_tensor_free(u);
            dcb_tensor_free(t);
        }
    }
    unlink(p);
}

/* np.save("a.npy", np.arange(6, dtype=np.float32).reshape(2, 3)), NumPy 1.26,
 * written out by hand so that the test does not need Python. */
static const char NUMPY_2X3_HEADER[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    /* 58 spaces */
    "                                                          \n";

static void test_numpy_reference_v1(void **state)
{
    (void)state;
    assert_int_equal(sizeof NUMPY_2X3_HEADER - 1, 128);
    const float vals[6] = {0, 1, 2, 3, 4, 5};
    unsigned char file[128 + 24];
    memcpy(file, NUMPY_2X3_HEADER, 128);
    memcpy(file + 128, vals, 24);
    char p[PATH_MAX];
    path_in("ref_v1.npy", p);
    write_bytes(p, file, sizeof file);
    dcb_tensor *t = load_ok(p);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_memory_equal(t->data, vals, 24);

    /* And we write it back byte for byte. */
    char q[PATH_MAX];
    path_in("ours_v1.npy", q);
    save_ok(q, t);
    size_t n;
    unsigned char *ours = read_bytes(q, &n);
    assert_int_equal(n, sizeof file);
    assert_memory_equal(ours, file, sizeof file);
    free(ours);
    dcb_tensor_free(t);
    unlink(p);
    unlink(q);
}

static void test_numpy_reference_old_layout(void **state)
{
    (void)state;
    /* NumPy < 1.23 wrote no spare spaces; such files must load the same. */
    uint64_t rng = 99;
    const int64_t shapes[][4] = {{5}, {2, 3}, {1, 2, 3, 4}, {7, 1}};
    const int nds[] = {1, 2, 4, 2};
    for (int k = 0; k < 4; k++) {
        dcb_tensor *t = dcb_tensor_new(nds[k], shapes[k]);
        fill_random_bits(t, &rng);
        unsigned char hdr[512];
        size_t hl = numpy_header(nds[k], shapes[k], 0, hdr);
        assert_int_equal(hl % 64, 0);
        unsigned char *file = malloc(hl + (size_t)t->size * 4);
        memcpy(file, hdr, hl);
        memcpy(file + hl, t->data, (size_t)t->size * 4);
        char p[PATH_MAX];
        path_in("old.npy", p);
        write_bytes(p, file, hl + (size_t)t->size * 4);
        dcb_tensor *u = load_ok(p);
        assert_true(dcb_shape_equal(u, t->ndim, t->shape));
        assert_memory_equal(u->data, t->data, (size_t)t->size * 4);
        dcb_tensor_free(u);
        dcb_tensor_free(t);
        free(file);
        unlink(p);
    }
}

static void test_numpy_reference_v2_v3(void **state)
{
    (void)state;
    const float vals[6] = {-1.5f, 2.25f, 0.0f, -0.0f, 1e-40f, 3.0e38f};
    for (int major = 2; major <= 3; major++) {
        size_t n;
        unsigned char *file = make_npy(major,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
            1, vals, sizeof vals, &n);
        assert_int_equal((n - sizeof vals) % 64, 0);
        char p[PATH_MAX];
        path_in("ref_v2.npy", p);
        write_bytes(p, file, n);
        dcb_tensor *t = load_ok(p);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 3);
        assert_int_equal(t->shape[1], 2);
        assert_memory_equal(t->data, vals, sizeof vals);
        dcb_tensor_free(t);
        free(file);
        unlink(p);
    }
}

typedef struct good_case {
    const char *name;
    int major;
    const char *dict;
    int pad;
    int ndim;
    int64_t shape[DCB_MAX_DIMS];
} good_case;

static const good_case GOOD[] = {
    {"key_order", 1, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 1, 2, {2, 3}},
    {"double_quotes", 1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (4,)}", 1, 1, {4}},
    {"whitespace", 1, " {\n\t'descr' :'<f4' ,\r\n 'fortran_order':False,'shape':(  2 ,\n3 , 1 ,) , }  ", 1, 3, {2, 3, 1}},
    {"no_trailing_comma", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)}", 1, 2, {2, 2}},
    {"native_order", 1, "{'descr': '=f4', 'fortran_order': False, 'shape': (3,), }", 1, 1, {3}},
    {"python2_longs", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", 1, 2, {2, 3}},
    {"zero_d", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 1, 0, {0}},
    {"zero_d_spaced", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': ( ), }", 1, 0, {0}},
    {"fortran_vector", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 5, 1), }", 1, 3, {1, 5, 1}},
    {"unpadded", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 0, 1, {2}},
    {"plus_sign", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (+2, 1), }", 1, 2, {2, 1}},
    {"six_dims", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1, 2, 1, 2), }", 1, 6, {1, 2, 1, 2, 1, 2}},
};

static void test_header_variant(void **state)
{
    const good_case *g = *state;
    int64_t n = 1;
    for (int i = 0; i < g->ndim; i++)
        n *= g->shape[i];
    float *vals = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        vals[i] = (float)i * 0.5f - 1.0f;
    size_t len;
    unsigned char *file = make_npy(g->major, g->dict, g->pad, vals, (size_t)n * 4, &len);
    char p[PATH_MAX], name[64];
    snprintf(name, sizeof name, "good_%s.npy", g->name);
    path_in(name, p);
    write_bytes(p, file, len);
    dcb_tensor *t = load_ok(p);
    assert_int_equal(t->ndim, g->ndim);
    assert_true(dcb_shape_equal(t, g->ndim, g->shape));
    assert_int_equal(t->size, n);
    assert_memory_equal(t->data, vals, (size_t)n * 4);
    dcb_tensor_free(t);
    free(file);
    free(vals);
    unlink(p);
}

/* ------------------------------------------------------------ malformed */

typedef struct bad_raw {
    const char *name;
    const char *bytes;
    size_t len;
    const char *keyword;
} bad_raw;

#define RAW(s) s, sizeof(s) - 1
static const bad_raw BAD_RAW[] = {
    {"empty.npy", RAW(""), "magic"},
    {"trunc_magic.npy", RAW("\x93NUM"), "truncated magic"},
    {"wrong_magic.npy", RAW("\x93NUMPX\x01\x00\x10\x00{}              "), "bad magic"},
    {"text_file.npy", RAW("hello, world\n"), "bad magic"},
    {"no_version.npy", RAW("\x93NUMPY\x01"), "truncated header"},
    {"version_4.npy", RAW("\x93NUMPY\x04\x00\x10\x00{}              "), "version 4.0"},
    {"version_1_1.npy", RAW("\x93NUMPY\x01\x01\x10\x00{}              "), "version 1.1"},
    {"version_0.npy", RAW("\x93NUMPY\x00\x00\x10\x00{}              "), "version 0.0"},
    {"trunc_len_v1.npy", RAW("\x93NUMPY\x01\x00\x10"), "truncated header length"},
    {"trunc_len_v2.npy", RAW("\x93NUMPY\x02\x00\x10\x00\x00"), "truncated header length"},
    {"trunc_header.npy", RAW("\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_or"), "truncated header"},
    {"huge_header.npy", RAW("\x93NUMPY\x02\x00\x00\x00\x00\x7f{"), "too large"},
    {"empty_header.npy", RAW("\x93NUMPY\x01\x00\x00\x00"), "not a dict"},
    {"nul_header.npy", RAW("\x93NUMPY\x01\x00\x04\x00\x00\x00\x00\x00"), "not a dict"},
};

static void test_bad_raw(void **state)
{
    const bad_raw *b = *state;
    expect_invalid_bytes(b->name, b->bytes, b->len, b->keyword);
}

typedef struct bad_dict {
    const char *name;
    int major;
    const char *dict;
    size_t data_bytes;
    const char *keyword;
} bad_dict;

#define H(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"
static const bad_dict BAD_DICT[] = {
    {"list_header.npy", 1, "[1, 2]", 0, "not a dict"},
    {"int_header.npy", 1, "42", 0, "not a dict"},
    {"unclosed_dict.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, "expected ','"},
    {"unclosed_string.npy", 1, "{'descr: '<f4'}", 0, "header"},
    {"bare_key.npy", 1, "{descr: '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "string keys"},
    {"no_colon.npy", 1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "':'"},
    {"no_comma.npy", 1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", 8, "expected ','"},
    {"text_after.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8, "after the dict"},
    {"two_dicts.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}{}", 8, "after the dict"},
    {"no_descr.npy", 1, "{'fortran_order': False, 'shape': (2,), }", 8, "'descr'"},
    {"no_fortran.npy", 1, "{'descr': '<f4', 'shape': (2,), }", 8, "'fortran_order'"},
    {"no_shape.npy", 1, "{'descr': '<f4', 'fortran_order': False, }", 8, "'shape'"},
    {"empty_dict.npy", 1, "{}", 0, "'descr'"},
    {"extra_key.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'foo': 1}", 8, "'foo'"},
    {"dup_key.npy", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "duplicate key 'descr'"},
    {"fortran_true.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, "fortran_order True"},
    {"fortran_int.npy", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8, "fortran_order"},
    {"fortran_prefix.npy", 1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,), }", 8, "fortran_order"},
    {"dtype_f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, "dtype '<f8'"},
    {"dtype_big_endian.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype '>f4'"},
    {"dtype_i4.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype '<i4'"},
    {"dtype_u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (8,), }", 8, "dtype '|u1'"},
    {"dtype_f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", 8, "dtype '<f2'"},
    {"dtype_empty.npy", 1, "{'descr': '', 'fortran_order': False, 'shape': (2,), }", 8, "dtype ''"},
    {"dtype_long.npy", 1, "{'descr': '<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype '<f4<f4"},
    {"dtype_struct.npy", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "dtype"},
    {"dtype_not_str.npy", 1, "{'descr': 4, 'fortran_order': False, 'shape': (2,), }", 8, "descr"},
    {"neg_dim.npy", 1, H("(-3, 2)"), 0, "negative dimension -3"},
    {"neg_dim_late.npy", 1, H("(3, - 2)"), 0, "negative dimension"},
    {"overflow_shape.npy", 1, H("(9223372036854775807, 4)"), 0, "overflow"},
    {"overflow_bytes.npy", 1, H("(2305843009213693952,)"), 0, "overflow"},
    {"overflow_int64.npy", 1, H("(99999999999999999999,)"), 0, "overflow"},
    {"overflow_product.npy", 2, H("(4294967296, 4294967296, 2)"), 0, "overflow"},
    {"seven_dims.npy", 1, H("(1, 1, 1, 1, 1, 1, 1)"), 4, "7 dimensions"},
    {"many_dims.npy", 1, H("(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
                           "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
                           "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
                           "1, 1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, "70 dimensions"},
    {"zero_dim.npy", 1, H("(0,)"), 0, "zero-size"},
    {"zero_dim_inner.npy", 1, H("(3, 0, 2)"), 0, "zero-size"},
    {"shape_not_tuple.npy", 1, H("(5)"), 20, "not a tuple"},
    {"shape_list.npy", 1, H("[2, 3]"), 24, "not a tuple"},
    {"shape_int.npy", 1, H("5"), 20, "not a tuple"},
    {"shape_float.npy", 1, H("(2.5, 2)"), 20, "not an integer"},
    {"shape_name.npy", 1, H("(n, 2)"), 20, "not an integer"},
    {"shape_hex.npy", 1, H("(0x10,)"), 64, "not an integer"},
    {"shape_unclosed.npy", 1, H("(2, 3"), 24, "shape"},
    {"shape_double_comma.npy", 1, H("(2,, 3)"), 24, "not an integer"},
    {"trunc_data.npy", 1, H("(32, 32)"), 100, "data truncated: expected 4096 bytes, found 100"},
    {"no_data.npy", 1, H("(2,)"), 0, "data truncated"},
    {"trunc_data_v2.npy", 2, H("(4,)"), 15, "data truncated"},
    {"trailing_data.npy", 1, H("(16, 16)"), 1028, "trailing bytes"},
    {"trailing_one.npy", 1, H("()"), 5, "trailing bytes"},
    {"lying_huge.npy", 1, H("(1099511627776,)"), 64, "data truncated"},
};

static void test_bad_dict(void **state)
{
    const bad_dict *b = *state;
    size_t len;
    unsigned char *file = make_npy(b->major, b->dict, 1, NULL, b->data_bytes, &len);
    expect_invalid_bytes(b->name, file, len, b->keyword);
    free(file);
}

/* Every prefix of a good file is refused cleanly; so is one extra byte. */
static void test_every_truncation(void **state)
{
    (void)state;
    const int64_t shape[3] = {2, 3, 4};
    dcb_tensor *t = dcb_tensor_new(3, shape);
    dcb_tensor_randn(t, 3);
    char p[PATH_MAX];
    path_in("whole.npy", p);
    save_ok(p, t);
    size_t n;
    unsigned char *file = read_bytes(p, &n);
    unlink(p);
    for (size_t cut = 0; cut < n; cut++)
        expect_invalid_bytes("cut.npy", file, cut, cut < 6 ? "magic" : "truncated");
    unsigned char *more = malloc(n + 1);
    memcpy(more, file, n);
    more[n] = 0;
    expect_invalid_bytes("more.npy", more, n + 1, "trailing bytes");
    free(more);
    free(file);
    dcb_tensor_free(t);
}

/* Damaged headers either load or fail with DCB_INVALID_FILE, never crash. */
static void test_header_corruption(void **state)
{
    (void)state;
    const int64_t shape[2] = {3, 5};
    dcb_tensor *t = dcb_tensor_new(2, shape);
    dcb_tensor_randn(t, 4);
    char p[PATH_MAX];
    path_in("corrupt.npy", p);
    save_ok(p, t);
    size_t n;
    unsigned char *file = read_bytes(p, &n);
    const unsigned char subst[] = {0, ' ', '\'', '"', '(', ')', ',', '{', '}', ':',
                                   '-', '9', 'L', 0x80, 0xff};
    for (size_t i = 0; i < 128; i++) {
        for (size_t k = 0; k < sizeof subst; k++) {
            unsigned char keep = file[i];
            file[i] = subst[k];
            write_bytes(p, file, n);
            dcb_tensor *u = &g_sentinel;
            dcb_status s = dcb_npy_load(p, &u);
            if (s == DCB_OK) {
                assert_non_null(u);
                assert_true(u->size * 4 + 128 == (int64_t)n);
                dcb_tensor_free(u);
            } else {
                if (s != DCB_INVALID_FILE)
                    fail_msg("byte %zu -> 0x%02x: %s (%s)", i, subst[k],
                             dcb_status_name(s), dcb_last_error());
                assert_null(u);
                expect_message("corrupt.npy", ": ");
            }
            file[i] = keep;
        }
    }
    free(file);
    unlink(p);
    dcb_tensor_free(t);
}

static void test_missing_file(void **state)
{
    (void)state;
    expect_load_fails("does_not_exist.npy", DCB_IO_ERROR, "No such file");
}

static void test_load_directory(void **state)
{
    (void)state;
    char p[PATH_MAX];
    path_in("a_dir.npy", p);
    assert_int_equal(mkdir(p, 0755), 0);
    expect_load_fails("a_dir.npy", DCB_IO_ERROR, "directory");
    rmdir(p);
}

static void test_null_arguments(void **state)
{
    (void)state;
    dcb_tensor *t = &g_sentinel;
    assert_int_equal(dcb_npy_load(NULL, &t), DCB_INVALID_ARGUMENT);
    assert_null(t);
    assert_int_equal(dcb_npy_load("x.npy", NULL), DCB_INVALID_ARGUMENT);
    assert_int_equal(dcb_npy_save(NULL, &g_sentinel), DCB_INVALID_ARGUMENT);
    assert_int_equal(dcb_npy_save("x.npy", NULL), DCB_INVALID_ARGUMENT);
}

/* A NUL inside a header string ends nothing: '<f4\0xyz' is not '<f4'. */
typedef struct nul_case {
    const char *name;
    const char *dict;
    size_t len;
} nul_case;

#define NUL_DICT(s) s, sizeof(s) - 1
static const nul_case NUL_CASES[] = {
    {"nul_descr.npy", NUL_DICT("{'descr': '<f4\0xyz', 'fortran_order': False, 'shape': (2,), }")},
    {"nul_descr_end.npy", NUL_DICT("{'descr': '<f4\0', 'fortran_order': False, 'shape': (2,), }")},
    {"nul_descr_dq.npy", NUL_DICT("{'descr': \"<f4\0\", 'fortran_order': False, 'shape': (2,), }")},
    {"nul_key.npy", NUL_DICT("{'descr\0junk': '<f4', 'fortran_order': False, 'shape': (2,), }")},
    {"nul_key_fortran.npy", NUL_DICT("{'descr': '<f4', 'fortran_order\0': False, 'shape': (2,), }")},
    {"nul_escaped.npy", NUL_DICT("{'descr': '<f4\\\0', 'fortran_order': False, 'shape': (2,), }")},
};

static void test_nul_in_header_string(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof NUL_CASES / sizeof NUL_CASES[0]; i++) {
        const nul_case *c = &NUL_CASES[i];
        assert_non_null(memchr(c->dict, '\0', c->len));
        size_t len;
        unsigned char *file = make_npy_n(1, c->dict, c->len, 1, NULL, 8, &len);
        expect_invalid_bytes(c->name, file, len, "NUL byte");
        free(file);
    }
}

/* ------------------------------------------------------------ streams */

/* A FIFO at g_dir/name and a child that writes b[0..n) into it, then exits
 * (with 0 when the reader took it all, 3 when the reader closed first): a
 * pipe, whose size the loader cannot know in advance. Returns the child. */
static pid_t feed_fifo(const char *name, const void *b, size_t n, char *path)
{
    path_in(name, path);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);   /* a closed reader: EPIPE */
        alarm(120);                 /* never outlive a parent that stopped reading */
        int fd = open(path, O_WRONLY);
        const char *p = b;
        while (fd >= 0 && n > 0) {
            ssize_t w = write(fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            p += w;
            n -= (size_t)w;
        }
        _exit(fd >= 0 && n == 0 ? 0 : 3);
    }
    return pid;
}

/* 1 when the child wrote everything. */
static int reap(pid_t pid, const char *path)
{
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    unlink(path);
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* The load of name when it is a FIFO fed with b[0..n): its status; *out and
 * the message as dcb_npy_load leaves them; *allocs: dcb_aligned_alloc calls;
 * *fed_all (when not NULL): whether the loader read all n bytes. */
static dcb_status load_fifo_fed(const char *name, const void *b, size_t n, dcb_tensor **out,
                                uint64_t *allocs, int *fed_all)
{
    char p[PATH_MAX];
    pid_t pid = feed_fifo(name, b, n, p);
    uint64_t a0 = dcb_alloc_count();
    *out = &g_sentinel;
    dcb_status s = dcb_npy_load(p, out);
    *allocs = dcb_alloc_count() - a0;
    int all = reap(pid, p);
    if (fed_all)
        *fed_all = all;
    return s;
}

static dcb_status load_fifo(const char *name, const void *b, size_t n, dcb_tensor **out,
                            uint64_t *allocs)
{
    return load_fifo_fed(name, b, n, out, allocs, NULL);
}

/* The file: 128 bytes of header that declare 500000000 floats and no
 * data. From a pipe it must fail at once, as it does from a regular file,
 * without a 2 GB tensor (no dcb_aligned_alloc at all). */
static void test_stream_declared_huge_no_data(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = make_npy(1, H("(500000000,)"), 1, NULL, 0, &len);
    assert_int_equal(len, 128);
    dcb_tensor *t;
    uint64_t allocs;
    dcb_status s = load_fifo("pipe_huge.npy", file, len, &t, &allocs);
    if (s != DCB_INVALID_FILE)
        fail_msg("status %s (%s)", dcb_status_name(s), dcb_last_error());
    assert_null(t);
    expect_message("pipe_huge.npy", "declares 2000000000 bytes, got 0");
    assert_int_equal(allocs, 0);

    /* The same header with a little data: the message counts what came. */
    unsigned char *some = make_npy(1, H("(500000000,)"), 1, NULL, 1000, &len);
    s = load_fifo("pipe_huge_some.npy", some, len, &t, &allocs);
    assert_int_equal(s, DCB_INVALID_FILE);
    assert_null(t);
    expect_message("pipe_huge_some.npy", "declares 2000000000 bytes, got 1000");
    assert_int_equal(allocs, 0);
    free(some);
    free(file);
}

/* Short by a lot, past the first chunks of the growing buffer. */
static void test_stream_truncated_after_growth(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = make_npy(2, H("(1024, 1024)"), 1, NULL, 1572864, &len);
    dcb_tensor *t;
    uint64_t allocs;
    dcb_status s = load_fifo("pipe_short.npy", file, len, &t, &allocs);
    assert_int_equal(s, DCB_INVALID_FILE);
    assert_null(t);
    expect_message("pipe_short.npy", "data truncated: the header declares 4194304 bytes, got 1572864");
    assert_int_equal(allocs, 0);
    free(file);
}

/* A stream whose header declares more than dcb_max_bytes() is refused
 * before its data is read (4 MiB, more than a pipe holds: the writer sees
 * the reader close), with the status and message of a regular file. */
static void test_stream_above_limit(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = make_npy(1, H("(1048576,)"), 1, NULL, (size_t)4 << 20, &len);
    char p[PATH_MAX], msg[512];
    path_in("file_limit.npy", p);
    write_bytes(p, file, len);
    dcb_set_max_bytes((size_t)3 << 20);
    dcb_tensor *u = &g_sentinel, *t;
    dcb_status sf = dcb_npy_load(p, &u);
    snprintf(msg, sizeof msg, "%s", dcb_last_error());
    uint64_t allocs;
    int fed_all;
    dcb_status s = load_fifo_fed("pipe_limit.npy", file, len, &t, &allocs, &fed_all);
    dcb_set_max_bytes(0);   /* before any assert: the other tests need the default */
    unlink(p);
    free(file);
    assert_int_equal(sf, DCB_OUT_OF_MEMORY);
    assert_null(u);
    if (!strstr(msg, "file_limit.npy") || !strstr(msg, "DCB_MAX_BYTES"))
        fail_msg("message \"%s\" should name file_limit.npy and DCB_MAX_BYTES", msg);
    if (s != DCB_OUT_OF_MEMORY)
        fail_msg("status %s (%s)", dcb_status_name(s), dcb_last_error());
    assert_null(t);
    assert_int_equal(allocs, 0);
    expect_message("pipe_limit.npy", "DCB_MAX_BYTES");
    if (fed_all)
        fail_msg("the loader read the whole 4 MiB stream before refusing it");
}

/* Whole files through a pipe load as they do from disk, and one byte more
 * or less is refused: below one chunk, 3 MiB (the buffer grows twice) and
 * 3 MiB + 12 bytes (not a multiple of the chunk). */
static void test_stream_roundtrip(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{2, 3, 4}, {3, 262144, 1}, {1, 786435, 1}};
    uint64_t rng = 99;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        dcb_tensor *t = dcb_tensor_new(3, shapes[k]);
        fill_random_bits(t, &rng);
        char p[PATH_MAX];
        path_in("disk.npy", p);
        save_ok(p, t);
        size_t n;
        unsigned char *file = read_bytes(p, &n);
        unlink(p);

        dcb_tensor *u;
        uint64_t allocs;
        int fed_all;
        dcb_status s = load_fifo_fed("pipe_ok.npy", file, n, &u, &allocs, &fed_all);
        if (s != DCB_OK)
            fail_msg("shape %zu: %s: %s", k, dcb_status_name(s), dcb_last_error());
        assert_non_null(u);
        assert_true(fed_all);
        assert_true(dcb_shape_equal(u, 3, shapes[k]));
        assert_memory_equal(u->data, t->data, (size_t)t->size * 4);
        assert_int_equal(allocs, 1);   /* the tensor, nothing else of libdcb's */
        dcb_tensor_free(u);

        unsigned char *more = malloc(n + 1);
        memcpy(more, file, n);
        more[n] = 7;
        s = load_fifo("pipe_more.npy", more, n + 1, &u, &allocs);
        assert_int_equal(s, DCB_INVALID_FILE);
        assert_null(u);
        expect_message("pipe_more.npy", "trailing bytes");
        free(more);

        s = load_fifo("pipe_cut.npy", file, n - 1, &u, &allocs);
        assert_int_equal(s, DCB_INVALID_FILE);
        assert_null(u);
        expect_message("pipe_cut.npy", "data truncated");
        /* Up to one chunk (1 MiB) the tensor is made before the read. */
        assert_int_equal(allocs, (size_t)t->size * 4 <= ((size_t)1 << 20) ? 1 : 0);
        free(file);
        dcb_tensor_free(t);
    }
}

/* ------------------------------------------------------------ saving */

static void test_save_missing_directory(void **state)
{
    (void)state;
    char p[PATH_MAX];
    path_in("dir/that/does/not/exist/x.npy", p);
    dcb_tensor *t = dcb_tensor_new4(1, 2, 3, 4);
    assert_int_equal(dcb_npy_save(p, t), DCB_IO_ERROR);
    expect_message("dir/that/does/not/exist/x.npy", "No such file");
    assert_int_equal(count_entries(g_dir), 0);
    dcb_tensor_free(t);
}

static void test_save_onto_directory(void **state)
{
    (void)state;
    char p[PATH_MAX];
    path_in("is_a_dir.npy", p);
    assert_int_equal(mkdir(p, 0755), 0);
    dcb_tensor *t = dcb_tensor_new4(1, 2, 3, 4);
    assert_int_equal(dcb_npy_save(p, t), DCB_IO_ERROR);
    expect_message("is_a_dir.npy", "rename");
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_false(has_temp_file(g_dir));
    assert_int_equal(count_entries(g_dir), 1);
    rmdir(p);
    dcb_tensor_free(t);
}

static void test_save_leaves_no_temp(void **state)
{
    (void)state;
    char sub[PATH_MAX], p[PATH_MAX];
    path_in("clean", sub);
    assert_int_equal(mkdir(sub, 0755), 0);
    path_in("clean/only.npy", p);
    dcb_tensor *t = dcb_tensor_new4(2, 2, 2, 2);
    for (int i = 0; i < 5; i++) {
        dcb_tensor_randn(t, (uint64_t)i);
        save_ok(p, t);
        assert_int_equal(count_entries(sub), 1);
        dcb_tensor *u = load_ok(p);
        assert_memory_equal(u->data, t->data, 16 * 4);
        dcb_tensor_free(u);
    }
    /* Relative paths keep the temporary file in the same directory. */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(sub), 0);
    save_ok("rel.npy", t);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(count_entries(sub), 2);
    assert_false(has_temp_file(sub));
    dcb_tensor_free(t);
    unlink(p);
    path_in("clean/rel.npy", p);
    unlink(p);
    rmdir(sub);
}

static void test_save_mode_follows_umask(void **state)
{
    (void)state;
    mode_t old = umask(022);
    char p[PATH_MAX];
    path_in("mode.npy", p);
    dcb_tensor *t = dcb_tensor_new4(1, 1, 1, 1);
    save_ok(p, t);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    unlink(p);
    dcb_tensor_free(t);
}

/* A write that fails half way (file size limit) must leave the old file. */
static void test_failed_save_keeps_old_file(void **state)
{
    (void)state;
    char p[PATH_MAX];
    path_in("keep.npy", p);
    dcb_tensor *good = dcb_tensor_new4(1, 2, 3, 4);
    dcb_tensor_randn(good, 1);
    save_ok(p, good);
    size_t n0;
    unsigned char *before = read_bytes(p, &n0);

    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 4096;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        signal(SIGXFSZ, oldsig);
        free(before);
        dcb_tensor_free(good);
        skip();
    }
    dcb_tensor *big = dcb_tensor_new4(1, 16, 64, 64);
    dcb_status s = dcb_npy_save(p, big);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(s, DCB_IO_ERROR);
    expect_message("keep.npy", "cannot write");

    size_t n1;
    unsigned char *after = read_bytes(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_false(has_temp_file(g_dir));
    assert_int_equal(count_entries(g_dir), 1);

    /* Refused tensors do not touch the file either. */
    dcb_tensor bogus = *good;
    bogus.ndim = 7;
    assert_int_equal(dcb_npy_save(p, &bogus), DCB_INVALID_ARGUMENT);
    bogus = *good;
    bogus.size = 5;
    assert_int_equal(dcb_npy_save(p, &bogus), DCB_INVALID_ARGUMENT);
    bogus = *good;
    bogus.shape[1] = 0;
    assert_int_equal(dcb_npy_save(p, &bogus), DCB_INVALID_ARGUMENT);
    free(after);
    after = read_bytes(p, &n1);
    assert_memory_equal(before, after, n0);

    free(before);
    free(after);
    unlink(p);
    dcb_tensor_free(big);
    dcb_tensor_free(good);
}

static void test_save_overwrites(void **state)
{
    (void)state;
    char p[PATH_MAX];
    path_in("over.npy", p);
    dcb_tensor *a = dcb_tensor_new4(4, 4, 4, 4), *b = dcb_tensor_new(1, (const int64_t[]){3});
    dcb_tensor_randn(a, 1);
    dcb_tensor_randn(b, 2);
    save_ok(p, a);
    save_ok(p, b);
    dcb_tensor *u = load_ok(p);
    assert_int_equal(u->ndim, 1);
    assert_memory_equal(u->data, b->data, 12);
    dcb_tensor_free(u);
    dcb_tensor_free(a);
    dcb_tensor_free(b);
    unlink(p);
}

/* ------------------------------------------------------------ main */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/dcb_test_npy_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    static struct CMUnitTest tests[256];
    size_t nt = 0;
#define ADD(f) tests[nt++] = (struct CMUnitTest)cmocka_unit_test(f)
    ADD(test_rand_u64_reference);
    ADD(test_tensor_new_valid);
    ADD(test_tensor_new_invalid);
    ADD(test_tensor_new4_clone);
    ADD(test_randn_deterministic);
    ADD(test_uniform);
    ADD(test_shape_str);
    ADD(test_max_rel_err);
    ADD(test_aligned_alloc);
    ADD(test_roundtrip_all_ndim);
    ADD(test_roundtrip_long_first_dim);
    ADD(test_numpy_reference_v1);
    ADD(test_numpy_reference_old_layout);
    ADD(test_numpy_reference_v2_v3);
    for (size_t i = 0; i < sizeof GOOD / sizeof GOOD[0]; i++)
        tests[nt++] = (struct CMUnitTest){GOOD[i].name, test_header_variant, NULL, NULL,
                                          (void *)&GOOD[i]};
    for (size_t i = 0; i < sizeof BAD_RAW / sizeof BAD_RAW[0]; i++)
        tests[nt++] = (struct CMUnitTest){BAD_RAW[i].name, test_bad_raw, NULL, NULL,
                                          (void *)&BAD_RAW[i]};
    for (size_t i = 0; i < sizeof BAD_DICT / sizeof BAD_DICT[0]; i++)
        tests[nt++] = (struct CMUnitTest){BAD_DICT[i].name, test_bad_dict, NULL, NULL,
                                          (void *)&BAD_DICT[i]};
    ADD(test_every_truncation);
    ADD(test_header_corruption);
    ADD(test_missing_file);
    ADD(test_load_directory);
    ADD(test_null_arguments);
    ADD(test_nul_in_header_string);
    ADD(test_stream_declared_huge_no_data);
    ADD(test_stream_truncated_after_growth);
    ADD(test_stream_above_limit);
    ADD(test_stream_roundtrip);
    ADD(test_save_missing_directory);
    ADD(test_save_onto_directory);
    ADD(test_save_leaves_no_temp);
    ADD(test_save_mode_follows_umask);
    ADD(test_failed_save_keeps_old_file);
    ADD(test_save_overwrites);
#undef ADD
    int rc = _cmocka_run_group_tests("npy", tests, nt, NULL, NULL);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
