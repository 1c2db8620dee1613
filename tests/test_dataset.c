/* test_dataset.c — IDX datasets: the real Fashion-MNIST when installed,
 * round trips of small plain and gzip files, every malformed file we refuse
 * (naming it), a seeded mutation sweep, named datasets, and the pure
 * functions of training: orders, subsets, statistics, augmented batches. */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[256];
static dcb_dataset g_sentinel;   /* *out is set to this before failing loads */

/* --------------------------------------------------------------- helpers */

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_be32(buf *b, uint32_t v)
{
    unsigned char q[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    put(b, q, 4);
}

/* The pixel bytes of the synthetic images: every example distinct. */
static unsigned char pixel(size_t i) { return (unsigned char)((i * 37 + (i >> 5) * 11 + 5) & 0xff); }

/* An IDX file: magic, the dims, then data_len data bytes (pixels, or
 * labels i % label_mod when label_mod > 0). */
static buf idx_bytes(uint32_t magic, int nd, const uint32_t *dims, size_t data_len, int label_mod)
{
    buf b = {0};
    put_be32(&b, magic);
    for (int i = 0; i < nd; i++)
        put_be32(&b, dims[i]);
    for (size_t i = 0; i < data_len; i++) {
        unsigned char v = label_mod > 0 ? (unsigned char)(i % (size_t)label_mod) : pixel(i);
        put(&b, &v, 1);
    }
    return b;
}

static buf images_bytes(uint32_t n, uint32_t h, uint32_t w)
{
    return idx_bytes(0x803, 3, (const uint32_t[]){n, h, w}, (size_t)n * h * w, 0);
}
static buf labels_bytes(uint32_t n, int mod) { return idx_bytes(0x801, 1, (const uint32_t[]){n}, n, mod); }

static void path_in(const char *name, char *out, size_t cap) { snprintf(out, cap, "%s/%s", g_dir, name); }

static void write_plain(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n)
        assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static void write_file(const char *path, const buf *b, int gz)
{
    if (gz)
        write_gz(path, b->p, b->n);
    else
        write_plain(path, b->p, b->n);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf b = {0};
    unsigned char tmp[4096];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
        put(&b, tmp, r);
    fclose(f);
    *n = b.n;
    return b.p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void expect_msg(const char *a, const char *b)
{
    const char *m = dcb_last_error();
    if (a && !strstr(m, a))
        fail_msg("message \"%s\" does not mention \"%s\"", m, a);
    if (b && !strstr(m, b))
        fail_msg("message \"%s\" does not mention \"%s\"", m, b);
}

/* Loading the pair must fail with want, leave *out NULL, and say needle
 * and name the file `names`. */
static void expect_load_fails(const char *img, const char *lbl, dcb_status want, const char *names,
                              const char *needle)
{
    dcb_dataset *d = &g_sentinel;
    dcb_status st = dcb_dataset_load_idx(img, lbl, &d);
    if (st != want)
        fail_msg("%s + %s: status %s, want %s (%s)", img, lbl, dcb_status_name(st), dcb_status_name(want),
                 dcb_last_error());
    assert_null(d);
    expect_msg(names, needle);
}

static dcb_dataset *load_ok(const char *img, const char *lbl)
{
    dcb_dataset *d = NULL;
    assert_ok(dcb_dataset_load_idx(img, lbl, &d));
    assert_non_null(d);
    return d;
}

/* The synthetic images came back: shape, pixels / 255, labels, classes. */
static void check_synthetic(const dcb_dataset *d, int64_t n, int h, int w, int mod)
{
    assert_int_equal(d->n, n);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, h);
    assert_int_equal(d->w, w);
    assert_int_equal(d->classes, n < mod ? n : mod);
    for (size_t i = 0; i < (size_t)n * (size_t)h * (size_t)w; i++)
        if (d->x[i] != (float)pixel(i) / 255.0f)
            fail_msg("x[%zu] = %g, want %d/255", i, d->x[i], pixel(i));
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(d->y[i], i % mod);
}

/* A hand-made dataset that dcb_dataset_free can free (x, y from
 * dcb_aligned_alloc, the struct from calloc, as the library's own). */
static dcb_dataset *mk_dataset(int64_t n, int c, int h, int w, int classes)
{
    dcb_dataset *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->classes = classes;
    d->x = dcb_aligned_alloc(sizeof(float) * (size_t)(n * c * h * w));
    d->y = dcb_aligned_alloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n * c * h * w; i++)
        d->x[i] = (float)(i % 1000) + 0.5f;
    for (int64_t i = 0; i < n; i++)
        d->y[i] = (int32_t)(i % classes);
    return d;
}

/* ------------------------------------------------------- Fashion-MNIST */

typedef struct real_ref {
    int train;
    int64_t n, per_class;
    int64_t pixel_sum, img0_sum;
    int first[12];
    double mean, std;
} real_ref;

static const real_ref REAL[2] = {
    {1, 60000, 6000, INT64_C(3431114169), 76247, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9}, 0.286041, 0.353024},
    {0, 10000, 1000, INT64_C(573469082), 33456, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5}, 0.286849, 0.352444},
};

/* The real files, when the named dataset's files exist (dataset-fashion-mnist). */
static void test_fashion_mnist(void **state)
{
    const real_ref *r = *state;
    char img[4096], lbl[4096];
    assert_ok(dcb_dataset_paths("fashion-mnist", r->train, img, lbl, sizeof img));
    if (access(img, R_OK) != 0 || access(lbl, R_OK) != 0) {
        print_message("skipping: %s or %s is missing (`make deps` installs dataset-fashion-mnist)\n", img, lbl);
        skip();
    }
    double t0 = now_s();
    dcb_dataset *d = NULL;
    assert_ok(dcb_dataset_load("fashion-mnist", r->train, &d));
    double t1 = now_s();
    assert_int_equal(d->n, r->n);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, 28);
    assert_int_equal(d->w, 28);
    assert_int_equal(d->classes, 10);
    int64_t hist[10] = {0};
    for (int64_t i = 0; i < d->n; i++) {
        assert_in_range(d->y[i], 0, 9);
        hist[d->y[i]]++;
    }
    for (int k = 0; k < 10; k++)
        assert_int_equal(hist[k], r->per_class);
    for (int i = 0; i < 12; i++)
        assert_int_equal(d->y[i], r->first[i]);
    /* The bytes themselves (sums computed independently with Python's gzip). */
    int64_t sum = 0, sum0 = 0;
    for (int64_t i = 0; i < d->n * 784; i++) {
        const float v = d->x[i];
        assert_true(v >= 0.0f && v <= 1.0f);
        const int64_t b = (int64_t)lrintf(v * 255.0f);
        sum += b;
        if (i < 784)
            sum0 += b;
    }
    assert_int_equal(sum, r->pixel_sum);
    assert_int_equal(sum0, r->img0_sum);
    float mean, std;
    dcb_dataset_stats(d, &mean, &std);
    assert_float_equal(mean, r->mean, 2e-6);
    assert_float_equal(std, r->std, 2e-6);
    print_message("fashion-mnist %s: %lld examples loaded in %.2f s, mean %.6f std %.6f\n",
                  r->train ? "train" : "t10k", (long long)d->n, t1 - t0, mean, std);
    dcb_dataset_free(d);
}

/* ---------------------------------------------------------- round trips */

static void test_roundtrip(void **state)
{
    (void)state;
    char img[512], lbl[512];
    buf ib = images_bytes(7, 5, 3), lb = labels_bytes(7, 4);
    for (int gi = 0; gi < 2; gi++)
        for (int gl = 0; gl < 2; gl++) {
            path_in(gi ? "rt-img.gz" : "rt-img", img, sizeof img);
            path_in(gl ? "rt-lbl.gz" : "rt-lbl", lbl, sizeof lbl);
            write_file(img, &ib, gi);
            write_file(lbl, &lb, gl);
            dcb_dataset *d = load_ok(img, lbl);
            check_synthetic(d, 7, 5, 3, 4);
            dcb_dataset_free(d);
            unlink(img);
            unlink(lbl);
        }
    free(ib.p);
    free(lb.p);
}

/* Larger than the reader's first buffer (1 MiB): the buffer grows with the
 * data; the name says nothing (a .gz name may hold plain bytes). */
static void test_roundtrip_large(void **state)
{
    (void)state;
    char img[512], lbl[512];
    const uint32_t n = 3001;
    buf ib = images_bytes(n, 28, 28), lb = labels_bytes(n, 10);
    for (int gz = 0; gz < 2; gz++) {
        path_in("big-img.gz", img, sizeof img);
        path_in("big-lbl", lbl, sizeof lbl);
        write_file(img, &ib, gz);
        write_file(lbl, &lb, !gz);
        dcb_dataset *d = load_ok(img, lbl);
        check_synthetic(d, n, 28, 28, 10);
        dcb_dataset_free(d);
    }
    unlink(img);
    unlink(lbl);
    free(ib.p);
    free(lb.p);
}

/* One image of one pixel; labels up to 255 (classes 256). */
static void test_extremes(void **state)
{
    (void)state;
    char img[512], lbl[512];
    path_in("one-img", img, sizeof img);
    path_in("one-lbl", lbl, sizeof lbl);
    buf ib = images_bytes(1, 1, 1);
    buf lb = idx_bytes(0x801, 1, (const uint32_t[]){1}, 0, 0);
    const unsigned char top = 255;
    put(&lb, &top, 1);
    write_file(img, &ib, 0);
    write_file(lbl, &lb, 1);
    dcb_dataset *d = load_ok(img, lbl);
    assert_int_equal(d->n, 1);
    assert_int_equal(d->h * d->w, 1);
    assert_int_equal(d->y[0], 255);
    assert_int_equal(d->classes, 256);
    dcb_dataset_free(d);
    free(ib.p);
    free(lb.p);
    unlink(img);
    unlink(lbl);
}

/* ------------------------------------------------------------- refusals */

typedef struct bad_case {
    const char *name;
    int labels;              /* the bad file is the labels file */
    uint32_t magic;
    int nd;
    uint32_t dims[3];
    int64_t data_len;        /* -1: as the dims say */
    int64_t cut;             /* >= 0: keep only this many bytes of the file */
    const char *needle;
} bad_case;

static const bad_case BAD[] = {
    {"bad_magic", 0, 0x12340803, 3, {7, 5, 3}, -1, -1, "bad magic 0x12340803"},
    {"gzip_magic_in_plain", 0, 0x1f8b0803, 3, {7, 5, 3}, -1, -1, NULL},
    {"float_type", 0, 0x00000d03, 3, {7, 5, 3}, -1, -1, "data type 0x0d (float32)"},
    {"unknown_type", 0, 0x00000703, 3, {7, 5, 3}, -1, -1, "unknown data type 0x07"},
    {"labels_as_images", 0, 0x801, 1, {7}, 7, -1, "is it a labels file"},
    {"two_dims", 0, 0x802, 2, {7, 15}, 105, -1, "2 dimensions"},
    {"four_dims", 0, 0x804, 3, {7, 5, 3}, 105, -1, "4 dimensions"},
    {"zero_images", 0, 0x803, 3, {0, 5, 3}, 0, -1, "dimension 0 of 0 x 5 x 3 is 0"},
    {"zero_rows", 0, 0x803, 3, {7, 0, 3}, 0, -1, "is 0"},
    {"zero_cols", 0, 0x803, 3, {7, 5, 0}, 0, -1, "is 0"},
    {"truncated_data", 0, 0x803, 3, {7, 5, 3}, 104, -1, "truncated: expected 105 bytes of data, got 104 (header: 7 x 5 x 3)"},
    {"no_data", 0, 0x803, 3, {7, 5, 3}, 0, -1, "truncated: expected 105 bytes of data, got 0"},
    {"trailing_byte", 0, 0x803, 3, {7, 5, 3}, 106, -1, "trailing bytes after the 105 bytes"},
    {"trailing_lots", 0, 0x803, 3, {7, 5, 3}, 5000, -1, "trailing bytes"},
    {"empty_file", 0, 0x803, 3, {7, 5, 3}, -1, 0, "empty file"},
    {"cut_magic", 0, 0x803, 3, {7, 5, 3}, -1, 3, "truncated header: 3 of the 4 magic bytes"},
    {"cut_dims", 0, 0x803, 3, {7, 5, 3}, -1, 10, "truncated header: 6 of the 12 bytes"},
    {"over_limit", 0, 0x803, 3, {65536, 256, 256}, 0, -1, "more than the limit of 2147483648 elements"},
    {"overflowing_dims", 0, 0x803, 3, {0xffffffffu, 32768, 32768}, 0, -1, "more than the limit"},
    {"huge_side", 0, 0x803, 3, {1, 1, 0xffffffffu}, 0, -1, "columns 4294967295 exceeds"},
    {"huge_rows", 0, 0x803, 3, {1, 40000, 1}, 0, -1, "rows 40000 exceeds"},
    {"labels_wrong_magic", 1, 0x00000901, 1, {7}, 7, -1, "data type 0x09 (signed byte)"},
    {"images_as_labels", 1, 0x803, 3, {7, 5, 3}, 105, -1, "is it an images file"},
    {"labels_truncated", 1, 0x801, 1, {7}, 5, -1, "truncated: expected 7 bytes of data, got 5"},
    {"labels_trailing", 1, 0x801, 1, {7}, 8, -1, "trailing bytes"},
    {"labels_empty", 1, 0x801, 1, {7}, -1, 0, "empty file"},
    {"labels_zero", 1, 0x801, 1, {0}, 0, -1, "is 0"},
    {"labels_over_limit", 1, 0x801, 1, {0xffffffffu}, 0, -1, "more than the limit"},
};

/* Each bad case, as a plain and as a gzip file: the same refusal. */
static void test_bad(void **state)
{
    const bad_case *c = *state;
    char good[512], badp[512];
    for (int gz = 0; gz < 2; gz++) {
        char name[128];
        snprintf(name, sizeof name, "%s%s", c->name, gz ? ".gz" : "");
        path_in(name, badp, sizeof badp);
        path_in(c->labels ? "good-img" : "good-lbl", good, sizeof good);
        size_t dl = 1;
        for (int i = 0; i < c->nd; i++)
            dl *= c->dims[i];
        buf b = idx_bytes(c->magic, c->nd, c->dims, c->data_len >= 0 ? (size_t)c->data_len : dl, c->labels ? 3 : 0);
        if (c->cut >= 0)
            b.n = (size_t)c->cut;
        write_file(badp, &b, gz);
        buf g = c->labels ? images_bytes(7, 5, 3) : labels_bytes(7, 3);
        write_file(good, &g, 0);
        if (c->labels)
            expect_load_fails(good, badp, DCB_INVALID_FILE, badp, c->needle);
        else
            expect_load_fails(badp, good, DCB_INVALID_FILE, badp, c->needle);
        free(b.p);
        free(g.p);
        unlink(badp);
        unlink(good);
    }
}

static void test_mismatched_counts(void **state)
{
    (void)state;
    char img[512], lbl[512];
    path_in("mm-img.gz", img, sizeof img);
    path_in("mm-lbl.gz", lbl, sizeof lbl);
    buf ib = images_bytes(7, 5, 3), lb = labels_bytes(6, 3);
    write_file(img, &ib, 1);
    write_file(lbl, &lb, 1);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, lbl);
    expect_msg("7 images", "6 labels");
    free(ib.p);
    free(lb.p);
    unlink(img);
    unlink(lbl);
}

/* Damaged gzip streams: corrupt deflate data, a cut trailer, a cut stream. */
static void test_bad_gzip(void **state)
{
    (void)state;
    char img[512], lbl[512];
    path_in("gzbad-img.gz", img, sizeof img);
    path_in("gzbad-lbl", lbl, sizeof lbl);
    buf ib = images_bytes(40, 28, 28), lb = labels_bytes(40, 10);
    write_file(lbl, &lb, 0);
    write_file(img, &ib, 1);
    size_t n;
    unsigned char *z = read_all(img, &n);
    assert_true(n > 100);

    /* The CRC and length trailer gone: every byte of data arrived, yet the
     * stream is incomplete. */
    write_plain(img, z, n - 8);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, "gzip");
    /* Cut in the middle of the deflate data. */
    write_plain(img, z, n / 2);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, "truncated");
    /* Only gzip's 10-byte header. */
    write_plain(img, z, 10);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, "truncated gzip stream: it ends after 0 bytes");
    /* A wrong CRC. */
    unsigned char *m = malloc(n);
    memcpy(m, z, n);
    m[n - 6] ^= 0x5a;
    write_plain(img, m, n);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, "corrupt gzip data");
    /* Garbage in the deflate stream. */
    memcpy(m, z, n);
    for (size_t i = 20; i < 40; i++)
        m[i] = (unsigned char)(0xff - i);
    write_plain(img, m, n);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, NULL);
    /* An unknown compression method. */
    memcpy(m, z, n);
    m[2] = 7;
    write_plain(img, m, n);
    expect_load_fails(img, lbl, DCB_INVALID_FILE, img, "gzip");
    free(m);
    free(z);
    free(ib.p);
    free(lb.p);
    unlink(img);
    unlink(lbl);
}

/* Bytes that malloc and friends were asked for, at most, while hooked. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
int __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                              void (*f)(const volatile void *));
/* volatile: the compiler assumes malloc reads and writes no globals */
static volatile size_t g_max_alloc;
static volatile int g_hooked;
static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    if (g_hooked && n > g_max_alloc)
        g_max_alloc = n;
}
static void on_free(const volatile void *p) { (void)p; }
#else
#define TU_ASAN 0
static long vm_bytes(void)
{
    long pages = 0, rss;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        pages = -1;
    fclose(f);
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}
#endif

/* Headers that declare 2^31 bytes (the limit) with no data behind them, plain
 * and gzip: refused at once, without a big allocation (no more than 64 MiB
 * of address space under RLIMIT_AS; under ASan, no block over 8 MiB). */
static void test_huge_header_no_data(void **state)
{
    (void)state;
    char img[512], lbl[512];
    path_in("huge-lbl", lbl, sizeof lbl);
    buf lb = labels_bytes(32768, 3);
    write_file(lbl, &lb, 0);
    buf ib = idx_bytes(0x803, 3, (const uint32_t[]){32768, 256, 256}, 300, 0);
#if TU_ASAN
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
#endif
    for (int gz = 0; gz < 2; gz++) {
        path_in(gz ? "huge-img.gz" : "huge-img", img, sizeof img);
        write_file(img, &ib, gz);
        double t0 = now_s();
#if TU_ASAN
        g_max_alloc = 0;
        g_hooked = 1;
        void *volatile probe = malloc(16u << 20);   /* the hook sees allocations */
        free(probe);
        g_hooked = 0;
        assert_true(g_max_alloc >= (16u << 20));
        g_max_alloc = 0;
        g_hooked = 1;
        expect_load_fails(img, lbl, DCB_INVALID_FILE, img, "truncated: expected 2147483648 bytes of data");
        g_hooked = 0;
        if (g_max_alloc > (8u << 20))
            fail_msg("a block of %zu bytes was allocated for a file of %zu bytes", g_max_alloc, ib.n);
#else
        struct rlimit old, lim;
        assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
        long vm = vm_bytes();
        assert_true(vm > 0);
        lim = old;
        lim.rlim_cur = (rlim_t)vm + (64u << 20);
        int limited = (old.rlim_cur == RLIM_INFINITY || old.rlim_cur > lim.rlim_cur) &&
                      setrlimit(RLIMIT_AS, &lim) == 0;
        if (limited) {   /* the limit bites */
            void *volatile big = malloc(256u << 20);
            if (big)
                free(big);
            assert_null(big);
        }
        dcb_dataset *d = &g_sentinel;
        dcb_status st = dcb_dataset_load_idx(img, lbl, &d);
        if (limited)
            assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
        if (st != DCB_INVALID_FILE)
            fail_msg("status %s (%s)", dcb_status_name(st), dcb_last_error());
        assert_null(d);
        expect_msg(img, "truncated: expected 2147483648 bytes of data, got 300");
#endif
        double dt = now_s() - t0;
        if (dt > 0.5)
            fail_msg("refusing a %zu-byte file took %.2f s", ib.n, dt);
        unlink(img);
    }
#if TU_ASAN
    __sanitizer_install_malloc_and_free_hooks(NULL, NULL);
#endif
    free(ib.p);
    free(lb.p);
    unlink(lbl);
}

static void test_missing_and_unreadable(void **state)
{
    (void)state;
    char img[512], lbl[512], nope[512];
    path_in("ok-img", img, sizeof img);
    path_in("ok-lbl", lbl, sizeof lbl);
    path_in("no-such-file.gz", nope, sizeof nope);
    buf ib = images_bytes(2, 2, 2), lb = labels_bytes(2, 2);
    write_file(img, &ib, 0);
    write_file(lbl, &lb, 0);
    expect_load_fails(nope, lbl, DCB_IO_ERROR, nope, "No such file");
    expect_load_fails(img, nope, DCB_IO_ERROR, nope, "cannot open");
    expect_load_fails(g_dir, lbl, DCB_IO_ERROR, g_dir, "directory");
    expect_load_fails(img, g_dir, DCB_IO_ERROR, g_dir, "directory");
    dcb_dataset *d = &g_sentinel;
    assert_int_equal(dcb_dataset_load_idx(NULL, lbl, &d), DCB_INVALID_ARGUMENT);
    assert_null(d);
    assert_int_equal(dcb_dataset_load_idx(img, NULL, &d), DCB_INVALID_ARGUMENT);
    assert_int_equal(dcb_dataset_load_idx(img, lbl, NULL), DCB_INVALID_ARGUMENT);
    dcb_dataset_free(NULL);
    free(ib.p);
    free(lb.p);
    unlink(img);
    unlink(lbl);
}

/* ------------------------------------------------------ mutation sweep */

static void mutate(buf *b, uint64_t *s)
{
    const int k = tu_rand(s, 1, 4);
    for (int m = 0; m < k; m++) {
        const int op = tu_rand(s, 0, 9);
        if (b->n == 0) {
            unsigned char v = (unsigned char)dcb_rand_u64(s);
            put(b, &v, 1);
            continue;
        }
        const size_t at = (size_t)(dcb_rand_u64(s) % b->n);
        if (op <= 2) {                                   /* a random byte */
            b->p[at] = (unsigned char)dcb_rand_u64(s);
        } else if (op <= 4) {                            /* one bit */
            b->p[at] ^= (unsigned char)(1u << tu_rand(s, 0, 7));
        } else if (op == 5) {                            /* a header byte */
            b->p[at % (b->n < 16 ? b->n : 16)] = (unsigned char)dcb_rand_u64(s);
        } else if (op == 6) {                            /* a truncation */
            b->n = at;
        } else if (op == 7) {                            /* appended bytes */
            for (int i = tu_rand(s, 1, 8); i > 0; i--) {
                unsigned char v = (unsigned char)dcb_rand_u64(s);
                put(b, &v, 1);
            }
        } else if (op == 8) {                            /* a dimension's low byte */
            if (b->n >= 8)
                b->p[4 + 4 * (size_t)tu_rand(s, 0, (int)((b->n >= 16 ? 12 : 4) / 4) - 1) + 3] += (unsigned char)tu_rand(s, 1, 3);
        } else {                                         /* a deletion */
            memmove(b->p + at, b->p + at + 1, b->n - at - 1);
            b->n--;
        }
    }
}

/* What a successful load gives is self-consistent; a failure is
 * invalid_file naming one of the two files. */
static void check_outcome(dcb_status st, dcb_dataset *d, const char *img, const char *lbl, const buf *plain_img,
                          int iter)
{
    if (st != DCB_OK) {
        if (st != DCB_INVALID_FILE)
            fail_msg("mutation %d: status %s (%s)", iter, dcb_status_name(st), dcb_last_error());
        if (d)
            fail_msg("mutation %d: failed load left a dataset", iter);
        if (!strstr(dcb_last_error(), img) && !strstr(dcb_last_error(), lbl))
            fail_msg("mutation %d: message \"%s\" names neither file", iter, dcb_last_error());
        return;
    }
    assert_non_null(d);
    assert_true(d->n >= 1 && d->c == 1 && d->h >= 1 && d->w >= 1);
    assert_true(d->classes >= 1 && d->classes <= 256);
    if (plain_img)   /* the file is exactly its header and the data it declares */
        assert_int_equal(plain_img->n, 16 + (size_t)d->n * (size_t)d->h * (size_t)d->w);
    int maxy = 0;
    for (int64_t i = 0; i < d->n; i++) {
        assert_true(d->y[i] >= 0 && d->y[i] < d->classes);
        if (d->y[i] > maxy)
            maxy = d->y[i];
    }
    assert_int_equal(maxy + 1, d->classes);
    for (int64_t i = 0; i < d->n * d->h * d->w; i++) {
        const float v = d->x[i] * 255.0f;
        if (!(v >= 0.0f && v <= 255.0f && fabsf(v - rintf(v)) < 1e-3f))
            fail_msg("mutation %d: x[%lld] = %g", iter, (long long)i, d->x[i]);
    }
    dcb_dataset_free(d);
}

/* Seeded random damage to small valid files: to the plain bytes, to the
 * gzip bytes, and to the content before gzip; every load must either
 * succeed consistently or fail as invalid_file (never crash: this also runs
 * under ASan + UBSan). */
static void test_mutations(void **state)
{
    (void)state;
    char img[512], lbl[512];
    path_in("mut-img", img, sizeof img);
    path_in("mut-lbl", lbl, sizeof lbl);
    const buf ib = images_bytes(6, 4, 5), lb = labels_bytes(6, 5);
    char gzi[512], gzl[512];
    path_in("mut-src-img.gz", gzi, sizeof gzi);
    path_in("mut-src-lbl.gz", gzl, sizeof gzl);
    write_file(gzi, &ib, 1);
    write_file(gzl, &lb, 1);
    buf zi = {0}, zl = {0};
    zi.p = read_all(gzi, &zi.n);
    zl.p = read_all(gzl, &zl.n);
    const int iters = tu_quick() ? 5000 : 20000;
    uint64_t s = 20240601;
    int ok = 0, fails = 0;
    double t0 = now_s();
    for (int it = 0; it < iters; it++) {
        const int form = it % 3;          /* 0 plain, 1 gzip bytes, 2 content then gzip */
        const int which = tu_rand(&s, 0, 2);   /* images, labels, both */
        const buf *si = form == 1 ? &zi : &ib, *sl = form == 1 ? &zl : &lb;
        buf mi = {0}, ml = {0};
        put(&mi, si->p, si->n);
        put(&ml, sl->p, sl->n);
        if (which != 1)
            mutate(&mi, &s);
        if (which != 0)
            mutate(&ml, &s);
        write_file(img, &mi, form == 2);
        write_file(lbl, &ml, form == 2);
        dcb_dataset *d = &g_sentinel;
        dcb_status st = dcb_dataset_load_idx(img, lbl, &d);
        if (st == DCB_OK)
            ok++;
        else
            fails++;
        check_outcome(st, d, img, lbl, form == 1 ? NULL : &mi, it);
        free(mi.p);
        free(ml.p);
    }
    print_message("%d mutations: %d loaded, %d refused, %.2f s\n", iters, ok, fails, now_s() - t0);
    assert_true(ok > iters / 20 && fails > iters / 20);
    free(ib.p);
    free(lb.p);
    free(zi.p);
    free(zl.p);
    unlink(img);
    unlink(lbl);
    unlink(gzi);
    unlink(gzl);
}

/* ------------------------------------------------------ named datasets */

/* Sets env var k to v (NULL: unset) for one test, and back. */
typedef struct saved_env {
    const char *k;
    char *v;
} saved_env;
static saved_env env_set(const char *k, const char *v)
{
    const char *old = getenv(k);
    saved_env e = {k, old ? strdup(old) : NULL};
    if (v)
        setenv(k, v, 1);
    else
        unsetenv(k);
    return e;
}
static void env_restore(saved_env *e)
{
    if (e->v)
        setenv(e->k, e->v, 1);
    else
        unsetenv(e->k);
    free(e->v);
}

static void test_paths(void **state)
{
    (void)state;
    char img[4096], lbl[4096];
    saved_env e1 = env_set("DCB_DATA_FASHION_MNIST", NULL), e2 = env_set("DCB_DATA_MNIST", "");
    assert_ok(dcb_dataset_paths("fashion-mnist", 1, img, lbl, sizeof img));
    assert_string_equal(img, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    assert_string_equal(lbl, "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
    assert_ok(dcb_dataset_paths("fashion-mnist", 0, img, lbl, sizeof img));
    assert_string_equal(img, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    assert_string_equal(lbl, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
    if (access("/usr/share/datasets/mnist", F_OK) != 0) {
        assert_ok(dcb_dataset_paths("mnist", 0, img, lbl, sizeof img));
        assert_string_equal(img, "/usr/share/datasets/mnist/t10k-images-idx3-ubyte.gz");
    }
    setenv("DCB_DATA_FASHION_MNIST", "/somewhere/else", 1);
    assert_ok(dcb_dataset_paths("fashion-mnist", 1, img, lbl, sizeof img));
    assert_string_equal(img, "/somewhere/else/train-images-idx3-ubyte.gz");
    assert_string_equal(lbl, "/somewhere/else/train-labels-idx1-ubyte.gz");

    assert_status_msg(dcb_dataset_paths("cifar10", 1, img, lbl, sizeof img), DCB_UNKNOWN_PARAM, "cifar10");
    expect_msg("fashion-mnist", "mnist");
    dcb_dataset *d = &g_sentinel;
    assert_status_msg(dcb_dataset_load("Fashion-MNIST", 1, &d), DCB_UNKNOWN_PARAM, "known: fashion-mnist, mnist");
    assert_null(d);
    assert_status_msg(dcb_dataset_paths("fashion-mnist", 1, img, lbl, 20), DCB_INVALID_ARGUMENT, "20 bytes");
    assert_int_equal(dcb_dataset_paths(NULL, 1, img, lbl, sizeof img), DCB_INVALID_ARGUMENT);
    assert_int_equal(dcb_dataset_paths("mnist", 1, NULL, lbl, sizeof img), DCB_INVALID_ARGUMENT);
    env_restore(&e1);
    env_restore(&e2);
}

/* DCB_DATA_* directories: gzip files, plain files (found when no .gz is
 * there), and missing files with the way to get them. */
static void test_named_from_env(void **state)
{
    (void)state;
    char dir[512], p[1024];
    buf ib = images_bytes(9, 4, 4), lb = labels_bytes(9, 3), tb = images_bytes(3, 4, 4), tl = labels_bytes(3, 3);

    path_in("fm", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    saved_env e1 = env_set("DCB_DATA_FASHION_MNIST", dir);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_file(p, &ib, 1);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_file(p, &lb, 1);
    dcb_dataset *d = NULL;
    assert_ok(dcb_dataset_load("fashion-mnist", 1, &d));
    check_synthetic(d, 9, 4, 4, 3);
    dcb_dataset_free(d);
    /* The test split is missing: which file, and how to install it. */
    d = &g_sentinel;
    assert_status_msg(dcb_dataset_load("fashion-mnist", 0, &d), DCB_IO_ERROR, "t10k-images-idx3-ubyte.gz");
    expect_msg(dir, "`make deps` installs Debian's dataset-fashion-mnist");
    expect_msg("DCB_DATA_FASHION_MNIST", "No such file");
    assert_null(d);
    /* Only the labels missing. */
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_file(p, &tb, 1);
    assert_status_msg(dcb_dataset_load("fashion-mnist", 0, &d), DCB_IO_ERROR, "t10k-labels-idx1-ubyte.gz");
    expect_msg("make deps", "dataset-fashion-mnist");
    /* Broken files are invalid, not missing: no install hint. */
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_file(p, &lb, 1);
    assert_status_msg(dcb_dataset_load("fashion-mnist", 0, &d), DCB_INVALID_FILE, "3 images");
    expect_msg("t10k-labels-idx1-ubyte.gz", "9 labels");

    path_in("mn", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    saved_env e2 = env_set("DCB_DATA_MNIST", dir);
    assert_status_msg(dcb_dataset_load("mnist", 0, &d), DCB_IO_ERROR, "t10k-images-idx3-ubyte.gz");
    expect_msg("DCB_DATA_MNIST", "make deps");
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_file(p, &tb, 0);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    write_file(p, &tl, 0);
    char img[4096], lbl[4096];
    assert_ok(dcb_dataset_paths("mnist", 0, img, lbl, sizeof img));
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    assert_string_equal(img, p);
    assert_ok(dcb_dataset_load("mnist", 0, &d));
    assert_int_equal(d->n, 3);
    dcb_dataset_free(d);
    assert_int_equal(dcb_dataset_load("mnist", 0, NULL), DCB_INVALID_ARGUMENT);
    env_restore(&e1);
    env_restore(&e2);
    free(ib.p);
    free(lb.p);
    free(tb.p);
    free(tl.p);
}

/* --------------------------------------------------------------- orders */

static int is_perm(const int64_t *p, int64_t n)
{
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (ok)
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_order(void **state)
{
    (void)state;
    const int64_t ns[] = {1, 2, 3, 10, 1000, 60000};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int64_t n = ns[k];
        int64_t *a = malloc(sizeof *a * (size_t)n), *b = malloc(sizeof *b * (size_t)n),
                *c = malloc(sizeof *c * (size_t)n);
        dcb_dataset_order(n, 42, 3, a);
        assert_true(is_perm(a, n));
        dcb_dataset_order(n, 42, 4, c);   /* other calls in between change nothing */
        dcb_dataset_order(n, 7, 3, c);
        dcb_dataset_order(n, 42, 3, b);
        assert_memory_equal(a, b, sizeof *a * (size_t)n);
        if (n >= 10) {
            dcb_dataset_order(n, 42, 4, c);
            assert_true(memcmp(a, c, sizeof *a * (size_t)n) != 0);
            dcb_dataset_order(n, 43, 3, c);
            assert_true(memcmp(a, c, sizeof *a * (size_t)n) != 0);
            int moved = 0;
            for (int64_t i = 0; i < n; i++)
                moved += a[i] != i;
            assert_true(moved > n / 2);
        }
        free(a);
        free(b);
        free(c);
    }
    dcb_dataset_order(0, 1, 0, NULL);   /* nothing to do */

    /* All 24 orders of 4 come out about equally often, over epochs and
     * over seeds (Fisher-Yates with unbiased draws). */
    for (int over_seed = 0; over_seed < 2; over_seed++) {
        int count[256] = {0};
        const int trials = 24000;
        for (int t = 0; t < trials; t++) {
            int64_t p[4];
            dcb_dataset_order(4, over_seed ? (uint64_t)t : 99, over_seed ? 0 : t, p);
            count[p[0] * 64 + p[1] * 16 + p[2] * 4 + p[3]]++;
        }
        int distinct = 0;
        for (int i = 0; i < 256; i++)
            if (count[i]) {
                distinct++;
                if (count[i] < 800 || count[i] > 1200)
                    fail_msg("order %d came out %d times of %d", i, count[i], trials);
            }
        assert_int_equal(distinct, 24);
    }
}

/* -------------------------------------------------------------- subsets */

static void test_subset(void **state)
{
    (void)state;
    dcb_dataset *d = mk_dataset(50, 2, 3, 3, 7), *s = NULL, *s2 = NULL;
    const size_t ex = 18;
    assert_ok(dcb_dataset_subset(d, 20, 5, &s));
    assert_int_equal(s->n, 20);
    assert_true(s->c == 2 && s->h == 3 && s->w == 3);
    assert_int_equal(s->classes, 7);
    int seen[50] = {0};
    for (int64_t i = 0; i < s->n; i++) {
        /* mk_dataset's examples are distinct: x[0] names the example. */
        const int64_t src = (int64_t)(s->x[i * (int64_t)ex] - 0.5f) / (int64_t)ex;
        assert_in_range(src, 0, 49);
        assert_memory_equal(s->x + i * (int64_t)ex, d->x + src * (int64_t)ex, ex * sizeof(float));
        assert_int_equal(s->y[i], d->y[src]);
        assert_int_equal(seen[src], 0);
        seen[src] = 1;
    }
    assert_ok(dcb_dataset_subset(d, 20, 5, &s2));
    assert_memory_equal(s->x, s2->x, 20 * ex * sizeof(float));
    assert_memory_equal(s->y, s2->y, 20 * sizeof(int32_t));
    dcb_dataset_free(s2);
    assert_ok(dcb_dataset_subset(d, 20, 6, &s2));
    assert_true(memcmp(s->y, s2->y, 20 * sizeof(int32_t)) != 0 || memcmp(s->x, s2->x, 20 * ex * sizeof(float)) != 0);
    dcb_dataset_free(s2);
    /* The first n of the seed's permutation: a larger subset extends it. */
    assert_ok(dcb_dataset_subset(d, 50, 5, &s2));
    assert_memory_equal(s->x, s2->x, 20 * ex * sizeof(float));
    dcb_dataset_free(s2);
    s2 = &g_sentinel;
    assert_status_msg(dcb_dataset_subset(d, 51, 5, &s2), DCB_INVALID_ARGUMENT, "n=51");
    assert_null(s2);
    assert_status_msg(dcb_dataset_subset(d, 0, 5, &s2), DCB_INVALID_ARGUMENT, "1..50");
    assert_int_equal(dcb_dataset_subset(NULL, 1, 5, &s2), DCB_INVALID_ARGUMENT);
    assert_int_equal(dcb_dataset_subset(d, 1, 5, NULL), DCB_INVALID_ARGUMENT);
    dcb_dataset_free(s);
    dcb_dataset_free(d);
}

/* ---------------------------------------------------- stats, normalize */

static void test_stats_normalize(void **state)
{
    (void)state;
    dcb_dataset *d = mk_dataset(10, 3, 2, 2, 2);
    const size_t hw = 4;
    for (int64_t i = 0; i < d->n; i++)
        for (size_t k = 0; k < hw; k++) {
            float *x = d->x + (size_t)i * 3 * hw;
            x[k] = (float)((i + (int64_t)k) % 2);          /* 0/1: mean .5, std .5 */
            x[hw + k] = 3.0f;                             /* constant: std 0 */
            x[2 * hw + k] = (float)(i * 4 + (int64_t)k);  /* 0..39 */
        }
    float mean[3], std[3];
    dcb_dataset_stats(d, mean, std);
    assert_float_equal(mean[0], 0.5, 1e-6);
    assert_float_equal(std[0], 0.5, 1e-6);
    assert_float_equal(mean[1], 3.0, 1e-6);
    assert_float_equal(std[1], 0.0, 1e-6);
    assert_float_equal(mean[2], 19.5, 1e-5);
    assert_float_equal(std[2], sqrt((40.0 * 40.0 - 1.0) / 12.0), 1e-4);
    dcb_dataset_normalize(d, mean, std);
    for (int64_t i = 0; i < d->n; i++)
        for (size_t k = 0; k < hw; k++) {
            const float *x = d->x + (size_t)i * 3 * hw;
            assert_float_equal(fabsf(x[k]), 1.0, 1e-6);
            assert_true(x[hw + k] == 0.0f);   /* centred, not divided by 0 */
        }
    float m2[3], s2[3];
    dcb_dataset_stats(d, m2, s2);
    assert_float_equal(m2[0], 0.0, 1e-6);
    assert_float_equal(s2[0], 1.0, 1e-6);
    assert_float_equal(m2[1], 0.0, 1e-6);
    assert_float_equal(m2[2], 0.0, 1e-5);
    assert_float_equal(s2[2], 1.0, 1e-5);
    dcb_dataset_free(d);
}

/* -------------------------------------------------------------- batches */

/* out == src cropped by (dy, dx) and flipped when f, zero outside. */
static int matches(const float *out, const float *src, int C, int H, int W, int f, int dy, int dx)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                const int si = i + dy, sj = (f ? W - 1 - j : j) + dx;
                const float want = si >= 0 && si < H && sj >= 0 && sj < W ? src[(c * H + si) * W + sj] : 0.0f;
                if (out[(c * H + i) * W + j] != want)
                    return 0;
            }
    return 1;
}

static void test_batch_plain(void **state)
{
    (void)state;
    dcb_dataset *d = mk_dataset(23, 2, 3, 4, 5);
    const size_t ex = 24;
    int64_t perm[23];
    dcb_dataset_order(23, 11, 2, perm);
    float xb[8 * 24];
    int32_t yb[8];
    for (int64_t start = 0; start <= 25; start += 5) {
        const int got = dcb_dataset_batch(d, perm, start, 8, NULL, xb, yb);
        const int want = start >= 23 ? 0 : (int)(23 - start < 8 ? 23 - start : 8);
        assert_int_equal(got, want);
        for (int b = 0; b < got; b++) {
            assert_memory_equal(xb + b * ex, d->x + perm[start + b] * (int64_t)ex, ex * sizeof(float));
            assert_int_equal(yb[b], d->y[perm[start + b]]);
        }
    }
    /* No perm: the dataset's order. An augmentation that does nothing. */
    const dcb_augment none = {0, 0, 9, 1};
    assert_int_equal(dcb_dataset_batch(d, NULL, 20, 8, &none, xb, yb), 3);
    assert_memory_equal(xb, d->x + 20 * ex, 3 * ex * sizeof(float));
    assert_int_equal(yb[2], d->y[22]);
    assert_int_equal(dcb_dataset_batch(d, perm, 0, 0, NULL, xb, yb), 0);
    /* Refused arguments: -1 and a message. */
    int64_t badp[2] = {0, 23};
    assert_int_equal(dcb_dataset_batch(d, badp, 0, 2, NULL, xb, yb), -1);
    expect_msg("perm[1]=23", NULL);
    assert_int_equal(dcb_dataset_batch(d, perm, -1, 2, NULL, xb, yb), -1);
    assert_int_equal(dcb_dataset_batch(d, perm, 0, -1, NULL, xb, yb), -1);
    assert_int_equal(dcb_dataset_batch(NULL, perm, 0, 2, NULL, xb, yb), -1);
    assert_int_equal(dcb_dataset_batch(d, perm, 0, 2, NULL, NULL, yb), -1);
    const dcb_augment neg = {0, -1, 0, 0};
    assert_int_equal(dcb_dataset_batch(d, perm, 0, 2, &neg, xb, yb), -1);
    expect_msg("crop_pad=-1", NULL);
    dcb_dataset_free(d);
}

static void test_batch_augment(void **state)
{
    (void)state;
    const int N = 64, C = 2, H = 6, W = 5;
    const size_t ex = (size_t)C * H * W;
    dcb_dataset *d = mk_dataset(N, C, H, W, 10);
    int64_t perm[64];
    dcb_dataset_order(N, 1, 0, perm);
    float *xa = malloc(sizeof(float) * ex * (size_t)N), *xb = malloc(sizeof(float) * ex * (size_t)N);
    int32_t ya[64], yb[64];

    /* Flips only: each example as it is or mirrored, both seen. */
    dcb_augment fl = {1, 0, 77, 3};
    assert_int_equal(dcb_dataset_batch(d, perm, 0, N, &fl, xa, ya), N);
    int flipped = 0;
    for (int b = 0; b < N; b++) {
        const float *src = d->x + perm[b] * (int64_t)ex;
        const int f = matches(xa + b * ex, src, C, H, W, 1, 0, 0);
        assert_true(f || matches(xa + b * ex, src, C, H, W, 0, 0, 0));
        flipped += f;
        assert_int_equal(ya[b], d->y[perm[b]]);
    }
    assert_in_range(flipped, 12, N - 12);

    /* Crops with padding 2 (and flips): some shift in [-2, 2]^2, several seen. */
    dcb_augment cr = {1, 2, 77, 3};
    assert_int_equal(dcb_dataset_batch(d, perm, 0, N, &cr, xa, ya), N);
    int shifts[2][5][5] = {{{0}}};
    for (int b = 0; b < N; b++) {
        const float *src = d->x + perm[b] * (int64_t)ex;
        int found = 0;
        for (int f = 0; f < 2 && !found; f++)
            for (int dy = -2; dy <= 2 && !found; dy++)
                for (int dx = -2; dx <= 2 && !found; dx++)
                    if (matches(xa + b * ex, src, C, H, W, f, dy, dx)) {
                        shifts[f][dy + 2][dx + 2]++;
                        found = 1;
                    }
        if (!found)
            fail_msg("example %d is no flip and crop of its source", b);
    }
    int distinct = 0;
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++)
                distinct += shifts[f][i][j] > 0;
    assert_true(distinct >= 15);

    /* A function of the position alone: the same batch in pieces, again. */
    assert_int_equal(dcb_dataset_batch(d, perm, 0, 10, &cr, xb, yb), 10);
    assert_int_equal(dcb_dataset_batch(d, perm, 10, 54, &cr, xb + 10 * ex, yb + 10), 54);
    assert_memory_equal(xa, xb, sizeof(float) * ex * (size_t)N);
    assert_memory_equal(ya, yb, sizeof(int32_t) * (size_t)N);
    /* And of the example, not its place: another order, same augmentations. */
    int64_t perm2[64];
    dcb_dataset_order(N, 2, 0, perm2);
    assert_int_equal(dcb_dataset_batch(d, perm2, 0, N, &cr, xb, yb), N);
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++)
            if (perm2[b] == perm[a])
                assert_memory_equal(xa + a * ex, xb + b * ex, sizeof(float) * ex);
    /* Another epoch or seed: other augmentations. */
    dcb_augment ep = cr;
    ep.epoch = 4;
    assert_int_equal(dcb_dataset_batch(d, perm, 0, N, &ep, xb, yb), N);
    assert_true(memcmp(xa, xb, sizeof(float) * ex * (size_t)N) != 0);
    ep = cr;
    ep.seed = 78;
    assert_int_equal(dcb_dataset_batch(d, perm, 0, N, &ep, xb, yb), N);
    assert_true(memcmp(xa, xb, sizeof(float) * ex * (size_t)N) != 0);
    /* Flips on or off leave the crops where they were. */
    dcb_augment nf = cr;
    nf.flip = 0;
    assert_int_equal(dcb_dataset_batch(d, perm, 0, N, &nf, xb, yb), N);
    for (int b = 0; b < N; b++) {
        const float *src = d->x + perm[b] * (int64_t)ex;
        int same = 0;
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++)
                if (matches(xb + b * ex, src, C, H, W, 0, dy, dx) &&
                    (matches(xa + b * ex, src, C, H, W, 0, dy, dx) || matches(xa + b * ex, src, C, H, W, 1, dy, dx)))
                    same = 1;
        assert_true(same);
    }
    free(xa);
    free(xb);
    dcb_dataset_free(d);
}

/* ----------------------------------------------------------------- main */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    /* tmpfs when there is one: the mutation sweep rewrites files thousands
     * of times, which on a disk with online discard costs seconds. */
    snprintf(g_dir, sizeof g_dir, "/dev/shm/dcb_test_dataset_XXXXXX");
    if (!mkdtemp(g_dir)) {
        snprintf(g_dir, sizeof g_dir, "/tmp/dcb_test_dataset_XXXXXX");
        if (!mkdtemp(g_dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    static struct CMUnitTest tests[128];
    size_t nt = 0;
#define ADD(f) tests[nt++] = (struct CMUnitTest)cmocka_unit_test(f)
    tests[nt++] = (struct CMUnitTest){"fashion_mnist_train", test_fashion_mnist, NULL, NULL, (void *)&REAL[0]};
    tests[nt++] = (struct CMUnitTest){"fashion_mnist_test", test_fashion_mnist, NULL, NULL, (void *)&REAL[1]};
    ADD(test_roundtrip);
    ADD(test_roundtrip_large);
    ADD(test_extremes);
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
        tests[nt++] = (struct CMUnitTest){BAD[i].name, test_bad, NULL, NULL, (void *)&BAD[i]};
    ADD(test_mismatched_counts);
    ADD(test_bad_gzip);
    ADD(test_huge_header_no_data);
    ADD(test_missing_and_unreadable);
    ADD(test_mutations);
    ADD(test_paths);
    ADD(test_named_from_env);
    ADD(test_order);
    ADD(test_subset);
    ADD(test_stats_normalize);
    ADD(test_batch_plain);
    ADD(test_batch_augment);
#undef ADD
    int rc = _cmocka_run_group_tests("dataset", tests, nt, NULL, NULL);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
