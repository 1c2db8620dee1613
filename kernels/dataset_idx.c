/* dataset_idx.c — labelled image sets: IDX files (MNIST, Fashion-MNIST),
 * plain or gzip, read through zlib; named datasets, subsets, statistics,
 * epoch orders and augmented batches. */
#define _POSIX_C_SOURCE 200809L
#include "dcb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_TYPE_U8 0x08
/* Elements a file may declare (45x Fashion-MNIST's training images): refused
 * from the header alone, before anything is allocated. */
#define IDX_MAX_ELEMS (INT64_C(1) << 31)
/* Rows and columns of one image: keeps h, w and h * w within int. */
#define IDX_MAX_SIDE (INT64_C(1) << 15)
/* One gzread, and the first buffer: buffers grow with the data that has
 * arrived, never to what a header claims, so that a hostile header costs
 * nothing. */
#define IDX_CHUNK ((size_t)1 << 20)

typedef struct idx_file {
    const char *path;
    gzFile gz;
    int ndim;
    int64_t dims[3];
    int64_t count;          /* product of dims */
    unsigned char *data;    /* count bytes once read */
} idx_file;

static dcb_status bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dcb_status bad(const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dcb_fail(DCB_INVALID_FILE, "%s: %s", path, msg);
}

static void dims_str(const idx_file *f, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < f->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? " x " : "", (long long)f->dims[i]);
}

/* The stream's error after a short or failed gzread: DCB_OK when it simply
 * ended. e is errno as gzread left it. */
static dcb_status gz_status(const idx_file *f, int e)
{
    int err = Z_OK;
    const char *msg = gzerror(f->gz, &err);
    switch (err) {
    case Z_OK:
        return DCB_OK;
    case Z_ERRNO:
        return dcb_fail(DCB_IO_ERROR, "%s: cannot read: %s", f->path, strerror(e));
    case Z_MEM_ERROR:
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory in zlib", f->path);
    case Z_BUF_ERROR:   /* zlib's "unexpected end of file" */
        return bad(f->path, "truncated gzip stream (%s)", msg);
    default:
        return bad(f->path, "corrupt gzip data (%s)", msg);
    }
}

/* The gzip stream ended before its end (zlib's "unexpected end of file"). */
static int ends_early(const idx_file *f)
{
    int err = Z_OK;
    gzerror(f->gz, &err);
    return err == Z_BUF_ERROR;
}

/* Up to len bytes into buf (*got of them), in bounded gzreads. */
static dcb_status read_some(const idx_file *f, unsigned char *buf, size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) {
        size_t ask = len - *got < IDX_CHUNK ? len - *got : IDX_CHUNK;
        errno = 0;
        int r = gzread(f->gz, buf + *got, (unsigned)ask);
        if (r < 0)
            return gz_status(f, errno);
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return DCB_OK;
}

static dcb_status idx_open(idx_file *f, const char *path)
{
    f->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dcb_fail(DCB_IO_ERROR, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
        int e = S_ISDIR(sb.st_mode) ? EISDIR : errno;
        close(fd);
        return dcb_fail(DCB_IO_ERROR, "%s: cannot read: %s", path, strerror(e));
    }
    /* zlib reads gzip and copies anything else through (gzip's magic is
     * never an IDX magic, whose first two bytes are 0). */
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory opening the file", path);
    }
    gzbuffer(f->gz, 1u << 17);
    return DCB_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose_r(f->gz);
    f->gz = NULL;
    free(f->data);
    f->data = NULL;
}

static const char *type_name(unsigned t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

/* Magic, data type, dimensions (want of them) and their sizes. */
static dcb_status idx_header(idx_file *f, int want)
{
    const char *what = want == 3 ? "images" : "labels";
    unsigned char h[4 + 4 * 3];
    size_t got;
    dcb_status st = read_some(f, h, 4, &got);
    if (st != DCB_OK)
        return st;
    if (got < 4 && ends_early(f))
        return bad(f->path, "truncated gzip stream: it ends after %zu bytes, in the IDX header", got);
    if (got == 0)
        return bad(f->path, "empty file (no IDX header)");
    if (got < 4)
        return bad(f->path, "truncated header: %zu of the 4 magic bytes", got);
    const uint32_t magic = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (h[0] != 0 || h[1] != 0)
        return bad(f->path, "bad magic 0x%08x (not an IDX file; %s need 0x%08x)", magic, what,
                   want == 3 ? IDX_MAGIC_IMAGES : IDX_MAGIC_LABELS);
    if (h[2] != IDX_TYPE_U8) {
        const char *tn = type_name(h[2]);
        if (tn)
            return bad(f->path, "data type 0x%02x (%s) is not supported (need 0x08, unsigned byte)", h[2], tn);
        return bad(f->path, "unknown data type 0x%02x in magic 0x%08x (need 0x08, unsigned byte)", h[2], magic);
    }
    if (h[3] != want) {
        const char *hint = (want == 3 && h[3] == 1)   ? "; is it a labels file?"
                           : (want == 1 && h[3] == 3) ? "; is it an images file?"
                                                      : "";
        return bad(f->path, "%u dimensions (magic 0x%08x), %s need %d%s", h[3], magic, what, want, hint);
    }
    f->ndim = want;
    if ((st = read_some(f, h + 4, 4 * (size_t)want, &got)) != DCB_OK)
        return st;
    if (got < 4 * (size_t)want && ends_early(f))
        return bad(f->path, "truncated gzip stream: it ends in the IDX header (%zu of %d bytes of dimension sizes)",
                   got, 4 * want);
    if (got < 4 * (size_t)want)
        return bad(f->path, "truncated header: %zu of the %d bytes of dimension sizes", got, 4 * want);
    int64_t prod = 1;
    for (int i = 0; i < want; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        f->dims[i] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    }
    for (int i = 0; i < want; i++) {
        char ds[80];
        dims_str(f, ds, sizeof ds);
        if (f->dims[i] == 0)
            return bad(f->path, "dimension %d of %s is 0 (%s need nonzero sizes)", i, ds, what);
        if (i > 0 && f->dims[i] > IDX_MAX_SIDE)
            return bad(f->path, "image size %s: %s %lld exceeds the limit %lld", ds, i == 1 ? "rows" : "columns",
                       (long long)f->dims[i], (long long)IDX_MAX_SIDE);
        /* Each factor < 2^32 and prod <= 2^31: the test cannot overflow. */
        if (f->dims[i] > IDX_MAX_ELEMS / prod)
            return bad(f->path, "header declares %s %s, more than the limit of %lld elements", ds, what,
                       (long long)IDX_MAX_ELEMS);
        prod *= f->dims[i];
    }
    f->count = prod;
    return DCB_OK;
}

/* The count bytes the header declares, and nothing after them. */
static dcb_status idx_data(idx_file *f)
{
    const size_t want = (size_t)f->count;
    size_t cap = 0, got = 0;
    unsigned char *buf = NULL;
    dcb_status st = DCB_OK;
    char ds[80];
    dims_str(f, ds, sizeof ds);
    while (got < want) {
        if (got == cap) {
            size_t ncap = cap ? 2 * cap : IDX_CHUNK;
            if (ncap > want)
                ncap = want;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of data", f->path, ncap);
            }
            buf = nb;
            cap = ncap;
        }
        size_t n;
        if ((st = read_some(f, buf + got, cap - got, &n)) != DCB_OK) {
            free(buf);
            return st;
        }
        got += n;
        if (got < cap)
            break;
    }
    if (got < want) {
        const int early = ends_early(f);
        free(buf);
        return bad(f->path, "truncated: expected %zu bytes of data, got %zu (header: %s)%s", want, got, ds,
                   early ? "; the gzip stream ends early" : "");
    }
    unsigned char extra[64];
    size_t n;
    st = read_some(f, extra, sizeof extra, &n);
    if (st == DCB_OK && n > 0)
        st = bad(f->path, "trailing bytes after the %zu bytes of data that the header declares (%s)", want, ds);
    if (st == DCB_OK)
        st = gz_status(f, 0);   /* the data is complete but the gzip trailer missing */
    if (st != DCB_OK) {
        free(buf);
        return st;
    }
    f->data = buf;
    return DCB_OK;
}

dcb_status dcb_dataset_load_idx(const char *images, const char *labels, dcb_dataset **out)
{
    if (out)
        *out = NULL;
    if (!images || !labels || !out)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dataset_load_idx: %s is NULL",
                        !images ? "images" : !labels ? "labels" : "out");
    idx_file im = {0}, lb = {0};
    dcb_dataset *d = NULL;
    /* Both headers first: a mismatched pair fails before any data is read. */
    dcb_status st = idx_open(&im, images);
    if (st == DCB_OK)
        st = idx_header(&im, 3);
    if (st == DCB_OK)
        st = idx_open(&lb, labels);
    if (st == DCB_OK)
        st = idx_header(&lb, 1);
    if (st == DCB_OK && im.dims[0] != lb.dims[0])
        st = dcb_fail(DCB_INVALID_FILE, "mismatched pair: %s has %lld images but %s has %lld labels", images,
                      (long long)im.dims[0], labels, (long long)lb.dims[0]);
    if (st == DCB_OK)
        st = idx_data(&im);
    if (st == DCB_OK)
        st = idx_data(&lb);
    if (st == DCB_OK) {
        d = calloc(1, sizeof *d);
        if (d) {
            d->x = dcb_aligned_alloc((size_t)im.count * sizeof(float));
            d->y = dcb_aligned_alloc((size_t)lb.count * sizeof(int32_t));
        }
        if (!d || !d->x || !d->y)
            st = dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for %lld images", images, (long long)im.dims[0]);
    }
    if (st == DCB_OK) {
        float lut[256];
        for (int v = 0; v < 256; v++)
            lut[v] = (float)v / 255.0f;
        for (int64_t i = 0; i < im.count; i++)
            d->x[i] = lut[im.data[i]];
        int maxl = 0;
        for (int64_t i = 0; i < lb.count; i++) {
            d->y[i] = lb.data[i];
            if (lb.data[i] > maxl)
                maxl = lb.data[i];
        }
        d->n = im.dims[0];
        d->c = 1;
        d->h = (int)im.dims[1];
        d->w = (int)im.dims[2];
        d->classes = 1 + maxl;   /* uint8 labels: at most 256 */
        *out = d;
        d = NULL;
    }
    dcb_dataset_free(d);
    idx_close(&im);
    idx_close(&lb);
    return st;
}

/* ------------------------------------------------------- named datasets */

typedef struct known_dataset {
    const char *name, *env, *dir, *hint;
} known_dataset;

static const known_dataset KNOWN[] = {
    {"fashion-mnist", "DCB_DATA_FASHION_MNIST", "/usr/share/datasets/fashion-mnist",
     "`make deps` installs Debian's dataset-fashion-mnist, which ships these files; "
     "or set DCB_DATA_FASHION_MNIST to a directory that holds them"},
    {"mnist", "DCB_DATA_MNIST", "/usr/share/datasets/mnist",
     "set DCB_DATA_MNIST to a directory that holds MNIST's IDX files (Debian ships none; "
     "`make deps` installs Debian's dataset-fashion-mnist, for \"fashion-mnist\")"},
};
#define NKNOWN (sizeof KNOWN / sizeof KNOWN[0])

static const known_dataset *find_known(const char *name)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (strcmp(KNOWN[i].name, name) == 0)
            return &KNOWN[i];
    return NULL;
}

/* dir/base.gz, or dir/base when only the uncompressed file is there. */
static int file_path(char *buf, size_t len, const char *dir, const char *base)
{
    int n = snprintf(buf, len, "%s/%s.gz", dir, base);
    if (n < 0 || (size_t)n >= len)
        return -1;
    if (access(buf, F_OK) != 0) {
        char plain[4096];
        int m = snprintf(plain, sizeof plain, "%s/%s", dir, base);
        if (m > 0 && (size_t)m < sizeof plain && (size_t)m < len && access(plain, F_OK) == 0)
            memcpy(buf, plain, (size_t)m + 1);
    }
    return 0;
}

dcb_status dcb_dataset_paths(const char *name, int train, char *images, char *labels, size_t len)
{
    if (!name || !images || !labels)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dataset_paths: %s is NULL",
                        !name ? "name" : !images ? "images" : "labels");
    const known_dataset *k = find_known(name);
    if (!k) {
        char list[256];
        size_t n = 0;
        list[0] = '\0';
        for (size_t i = 0; i < NKNOWN && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", KNOWN[i].name);
        return dcb_fail(DCB_UNKNOWN_PARAM, "dataset '%s' is unknown (known: %s)", name, list);
    }
    const char *env = getenv(k->env);
    const char *dir = env && *env ? env : k->dir;
    const char *split = train ? "train" : "t10k";
    char ib[64], lb[64];
    snprintf(ib, sizeof ib, "%s-images-idx3-ubyte", split);
    snprintf(lb, sizeof lb, "%s-labels-idx1-ubyte", split);
    if (file_path(images, len, dir, ib) != 0 || file_path(labels, len, dir, lb) != 0)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dataset_paths: %s's paths in %s do not fit in %zu bytes", name, dir,
                        len);
    return DCB_OK;
}

dcb_status dcb_dataset_load(const char *name, int train, dcb_dataset **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dataset_load: out is NULL");
    char images[4096], labels[4096];
    dcb_status st = dcb_dataset_paths(name, train, images, labels, sizeof images);
    if (st != DCB_OK)
        return st;
    st = dcb_dataset_load_idx(images, labels, out);
    if (st == DCB_IO_ERROR) {
        char why[1024];
        snprintf(why, sizeof why, "%s", dcb_last_error());
        return dcb_fail(st, "%s: %s (%s)", name, why, find_known(name)->hint);
    }
    return st;
}

void dcb_dataset_free(dcb_dataset *d)
{
    if (!d)
        return;
    dcb_aligned_free(d->x);
    dcb_aligned_free(d->y);
    free(d);
}

/* ------------------------------------------------------------ orders */

/* A uniform draw in [0, bound) without modulo bias. */
static uint64_t rand_below(uint64_t *s, uint64_t bound)
{
    const uint64_t threshold = (0 - bound) % bound;   /* 2^64 mod bound */
    for (;;) {
        uint64_t r = dcb_rand_u64(s);
        if (r >= threshold)
            return r % bound;
    }
}

/* A splitmix64 state from several words: each is folded through a step, so
 * that nearby (seed, epoch, index) give unrelated streams. */
static uint64_t mix_state(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = a;
    uint64_t h = dcb_rand_u64(&s);
    s = h ^ (b * UINT64_C(0xD1B54A32D192ED03));
    h = dcb_rand_u64(&s);
    s = h ^ (c * UINT64_C(0xAEF17502108EF2D9));
    return dcb_rand_u64(&s);
}

void dcb_dataset_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm)
{
    if (n <= 0 || !perm)
        return;
    uint64_t s = mix_state(seed, (uint64_t)epoch, UINT64_C(0x6f72646572));   /* "order" */
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rand_below(&s, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

dcb_status dcb_dataset_subset(const dcb_dataset *d, int64_t n, uint64_t seed, dcb_dataset **out)
{
    if (out)
        *out = NULL;
    if (!d || !out)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dataset_subset: %s is NULL", !d ? "dataset" : "out");
    if (n < 1 || n > d->n)
        return dcb_fail(DCB_INVALID_ARGUMENT, "dataset_subset: n=%lld is out of range 1..%lld", (long long)n,
                        (long long)d->n);
    const size_t ex = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    int64_t *perm = malloc((size_t)d->n * sizeof *perm);
    dcb_dataset *s = calloc(1, sizeof *s);
    if (s) {
        s->x = dcb_aligned_alloc((size_t)n * ex * sizeof(float));
        s->y = dcb_aligned_alloc((size_t)n * sizeof(int32_t));
    }
    if (!perm || !s || !s->x || !s->y) {
        free(perm);
        dcb_dataset_free(s);
        return dcb_fail(DCB_OUT_OF_MEMORY, "dataset_subset: out of memory for %lld examples", (long long)n);
    }
    dcb_dataset_order(d->n, seed, 0, perm);
    for (int64_t i = 0; i < n; i++) {
        memcpy(s->x + (size_t)i * ex, d->x + (size_t)perm[i] * ex, ex * sizeof(float));
        s->y[i] = d->y[perm[i]];
    }
    free(perm);
    s->n = n;
    s->c = d->c;
    s->h = d->h;
    s->w = d->w;
    s->classes = d->classes;   /* the parent's label space, even if a class is absent */
    *out = s;
    return DCB_OK;
}

/* ------------------------------------------------------ statistics */

void dcb_dataset_stats(const dcb_dataset *d, float *mean, float *std)
{
    if (!d || d->n <= 0)
        return;
    const size_t hw = (size_t)d->h * (size_t)d->w;
    const double count = (double)d->n * (double)hw;
    for (int c = 0; c < d->c; c++) {
        /* Two passes in double: the variance of 47M pixels in one pass of
         * sums of squares would lose digits. */
        double sum = 0;
        for (int64_t i = 0; i < d->n; i++) {
            const float *p = d->x + ((size_t)i * (size_t)d->c + (size_t)c) * hw;
            for (size_t k = 0; k < hw; k++)
                sum += p[k];
        }
        const double m = sum / count;
        double ss = 0;
        for (int64_t i = 0; i < d->n; i++) {
            const float *p = d->x + ((size_t)i * (size_t)d->c + (size_t)c) * hw;
            for (size_t k = 0; k < hw; k++)
                ss += (p[k] - m) * (p[k] - m);
        }
        if (mean)
            mean[c] = (float)m;
        if (std)
            std[c] = (float)sqrt(ss / count);
    }
}

void dcb_dataset_normalize(dcb_dataset *d, const float *mean, const float *std)
{
    if (!d || !mean || !std)
        return;
    const size_t hw = (size_t)d->h * (size_t)d->w;
    for (int c = 0; c < d->c; c++) {
        /* A constant channel (std 0) is only centred, not sent to inf. */
        const float m = mean[c], inv = std[c] > 0 ? 1.0f / std[c] : 1.0f;
        for (int64_t i = 0; i < d->n; i++) {
            float *p = d->x + ((size_t)i * (size_t)d->c + (size_t)c) * hw;
            for (size_t k = 0; k < hw; k++)
                p[k] = (p[k] - m) * inv;
        }
    }
}

/* ----------------------------------------------------------- batches */

int dcb_dataset_batch(const dcb_dataset *d, const int64_t *perm, int64_t start, int B, const dcb_augment *aug,
                      float *xb, int32_t *yb)
{
    if (!d || !xb || !yb || B < 0 || start < 0) {
        dcb_fail(DCB_INVALID_ARGUMENT, "dataset_batch: %s", !d ? "dataset is NULL" : !xb ? "xb is NULL"
                                                            : !yb ? "yb is NULL" : B < 0 ? "B < 0" : "start < 0");
        return -1;
    }
    if (aug && aug->crop_pad < 0) {
        dcb_fail(DCB_INVALID_ARGUMENT, "dataset_batch: crop_pad=%d is negative", aug->crop_pad);
        return -1;
    }
    int64_t cnt = start >= d->n ? 0 : d->n - start;
    if (cnt > B)
        cnt = B;
    const int C = d->c, H = d->h, W = d->w;
    const size_t hw = (size_t)H * (size_t)W, ex = (size_t)C * hw;
    for (int64_t b = 0; b < cnt; b++) {
        const int64_t idx = perm ? perm[start + b] : start + b;
        if (idx < 0 || idx >= d->n) {
            dcb_fail(DCB_INVALID_ARGUMENT, "dataset_batch: perm[%lld]=%lld is out of range 0..%lld",
                     (long long)(start + b), (long long)idx, (long long)d->n - 1);
            return -1;
        }
        const float *src = d->x + (size_t)idx * ex;
        float *dst = xb + (size_t)b * ex;
        yb[b] = d->y[idx];
        if (!aug || (!aug->flip && aug->crop_pad == 0)) {
            memcpy(dst, src, ex * sizeof(float));
            continue;
        }
        /* Seeded by the example's index in the dataset, not its position in
         * the batch: the same (seed, epoch) augments it the same way whatever
         * the batch size. All three draws are always made, so turning flips
         * on does not move the crops. */
        uint64_t s = mix_state(aug->seed, (uint64_t)aug->epoch, (uint64_t)idx);
        const uint64_t rf = dcb_rand_u64(&s);
        const int flip = aug->flip && (rf >> 63);
        const uint64_t span = 2 * (uint64_t)aug->crop_pad + 1;
        const int dy = (int)rand_below(&s, span) - aug->crop_pad;
        const int dx = (int)rand_below(&s, span) - aug->crop_pad;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++) {
                float *o = dst + (size_t)c * hw + (size_t)i * W;
                const int si = i + dy;
                if (si < 0 || si >= H) {
                    memset(o, 0, sizeof(float) * (size_t)W);
                    continue;
                }
                const float *row = src + (size_t)c * hw + (size_t)si * W;
                for (int j = 0; j < W; j++) {
                    const int sj = (flip ? W - 1 - j : j) + dx;
                    o[j] = sj >= 0 && sj < W ? row[sj] : 0.0f;
                }
            }
    }
    return (int)cnt;
}
