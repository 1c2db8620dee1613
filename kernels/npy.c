/* npy.c — reading and writing float32 .npy files (NumPy format 1.0-3.0). */
#define _XOPEN_SOURCE 700
#include "dcb_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Data is copied byte for byte between the file ('<f4') and memory. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
#define NPY_ALIGN 64
#define NPY_MAX_HEADER (1u << 20)
/* NumPy >= 1.23 leaves room after the dict so that the first axis can grow
 * in place to this many digits; we write the same bytes as NumPy does. */
#define NPY_GROWTH_DIGITS 21
/* Dims parsed before giving up (we report the count, then refuse). */
#define NPY_PARSE_DIMS 64
/* Streams of unknown size (pipes) are read this much at a time, into a
 * buffer that starts this large and doubles as the data arrives. */
#define NPY_CHUNK ((size_t)1 << 20)

static int little_endian_host(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ------------------------------------------------------------ header parse */

typedef struct npy_header {
    int have_descr, have_fortran, have_shape;
    char descr[48];
    int descr_truncated;
    int fortran;
    int ndim;                    /* may exceed DCB_MAX_DIMS; refused later */
    int64_t shape[NPY_PARSE_DIMS];
    char shape_text[96];         /* as written, for messages */
} npy_header;

typedef struct cursor {
    const char *p, *end;
    const char *begin;           /* the header text, for offsets in messages */
    char *err;
    size_t errlen;
} cursor;

static int perr(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' ||
                             *c->p == '\r' || *c->p == '\f' || *c->p == '\v'))
        c->p++;
}

/* Copies bytes for a message, replacing anything unprintable. */
static void printable(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i;
    if (cap == 0)
        return;
    for (i = 0; i < n && i + 1 < cap; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

/* A Python string literal, '...' or "...". Escapes keep the escaped char:
 * none of the strings we accept need them, they only must not end early.
 * -1: not a string; -2: a NUL byte inside it, with the message in c->err
 * (C string compares would stop there: '<f4\0xyz' must not read as '<f4'). */
static int parse_string(cursor *c, char *dst, size_t cap, int *truncated)
{
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    const char *start = c->p;
    char q = *c->p++;
    size_t n = 0;
    *truncated = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\n')
            return -1;
        if (*c->p == '\\' && c->p + 1 < c->end)
            c->p++;
        if (*c->p == '\0') {
            char shown[40];
            printable(shown, sizeof shown, start, (size_t)(c->p - start));
            perr(c, "header string starting %s contains a NUL byte (byte %zu of the header)",
                 shown, (size_t)(c->p - c->begin));
            return -2;
        }
        if (n + 1 < cap)
            dst[n++] = *c->p;
        else
            *truncated = 1;
        c->p++;
    }
    dst[n] = '\0';
    if (c->p >= c->end)
        return -1;
    c->p++;
    return 0;
}

static int is_ident(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

static int match_word(cursor *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return 0;
    if (c->p + n < c->end && is_ident(c->p[n]))
        return 0;
    c->p += n;
    return 1;
}

static int parse_shape(cursor *c, npy_header *h)
{
    const char *start = c->p;
    if (c->p >= c->end || *c->p != '(')
        return perr(c, "shape is not a tuple");
    c->p++;
    h->ndim = 0;
    int commas = 0;
    for (;;) {
        skip_ws(c);
        if (c->p < c->end && *c->p == ')')
            break;
        const char *num = c->p;
        int neg = 0;
        if (c->p < c->end && (*c->p == '-' || *c->p == '+')) {
            neg = *c->p == '-';
            c->p++;
            skip_ws(c);
        }
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return perr(c, "shape has an entry that is not an integer");
        uint64_t v = 0;
        int big = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            unsigned d = (unsigned)(*c->p++ - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10)
                big = 1;
            else
                v = v * 10 + d;
        }
        /* Python 2 NumPy wrote longs as 2L; NumPy still reads them. */
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
            c->p++;
        if (c->p < c->end && (is_ident(*c->p) || *c->p == '.'))
            return perr(c, "shape has an entry that is not an integer");
        char numtxt[32];
        printable(numtxt, sizeof numtxt, num, (size_t)(c->p - num));
        if (neg && (v != 0 || big))
            return perr(c, "negative dimension %s in shape", numtxt);
        if (big)
            return perr(c, "dimension %s in shape overflows int64", numtxt);
        if (h->ndim < NPY_PARSE_DIMS)
            h->shape[h->ndim] = (int64_t)v;
        h->ndim++;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            commas++;
            continue;
        }
        if (c->p < c->end && *c->p == ')')
            break;
        return perr(c, "malformed shape tuple");
    }
    c->p++;
    printable(h->shape_text, sizeof h->shape_text, start, (size_t)(c->p - start));
    /* (5) is the integer 5 in Python, not a tuple; NumPy refuses it too. */
    if (h->ndim == 1 && commas == 0)
        return perr(c, "shape %s is not a tuple (a 1-d shape is written (n,))",
                    h->shape_text);
    return 0;
}

static int parse_header(const char *text, size_t len, npy_header *h,
                        char *err, size_t errlen)
{
    cursor c = {text, text + len, text, err, errlen};
    memset(h, 0, sizeof *h);
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return perr(&c, "header is not a dict");
    c.p++;
    for (;;) {
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}')
            break;
        char key[40];
        int trunc;
        int src = parse_string(&c, key, sizeof key, &trunc);
        if (src == -2)
            return -1;
        if (src != 0)
            return perr(&c, "header is not a dict with string keys");
        char keyp[40];
        printable(keyp, sizeof keyp, key, strlen(key));
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return perr(&c, "header dict: expected ':' after key '%s'", keyp);
        c.p++;
        skip_ws(&c);
        int *have;
        if (!trunc && strcmp(key, "descr") == 0) {
            have = &h->have_descr;
            if (c.p < c.end && *c.p == '[')
                return perr(&c, "dtype is structured (a list of fields); "
                                "not supported (need '<f4')");
            int drc = parse_string(&c, h->descr, sizeof h->descr, &h->descr_truncated);
            if (drc == -2)
                return -1;
            if (drc != 0)
                return perr(&c, "header dict: 'descr' is not a dtype string");
        } else if (!trunc && strcmp(key, "fortran_order") == 0) {
            have = &h->have_fortran;
            if (match_word(&c, "True"))
                h->fortran = 1;
            else if (match_word(&c, "False"))
                h->fortran = 0;
            else
                return perr(&c, "header dict: fortran_order is not True or False");
        } else if (!trunc && strcmp(key, "shape") == 0) {
            have = &h->have_shape;
            if (parse_shape(&c, h) != 0)
                return -1;
        } else {
            return perr(&c, "header dict: unexpected key '%s%s'", keyp,
                        trunc ? "..." : "");
        }
        if (*have)
            return perr(&c, "header dict: duplicate key '%s'", keyp);
        *have = 1;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}')
            break;
        return perr(&c, "header dict: expected ',' or '}' after the value of '%s'",
                    keyp);
    }
    c.p++;
    skip_ws(&c);
    if (c.p != c.end)
        return perr(&c, "header has unexpected text after the dict");
    if (!h->have_descr)
        return perr(&c, "header has no 'descr' key");
    if (!h->have_fortran)
        return perr(&c, "header has no 'fortran_order' key");
    if (!h->have_shape)
        return perr(&c, "header has no 'shape' key");
    return 0;
}

/* ------------------------------------------------------------------ load */

static dcb_status bad(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static dcb_status bad(const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dcb_fail(DCB_INVALID_FILE, "%s: %s", path, msg);
}

static dcb_status io_err(const char *path, const char *what, int e)
{
    return dcb_fail(DCB_IO_ERROR, "%s: %s: %s", path, what, strerror(e));
}

/* Reads up to len bytes of f into buf, *got of them: DCB_OK, or the error
 * of a failed read. */
static dcb_status read_some(const char *path, FILE *f, void *buf, size_t len, size_t *got)
{
    *got = fread(buf, 1, len, f);
    return ferror(f) ? io_err(path, "cannot read", errno) : DCB_OK;
}

/* Checks the parsed header; gives the element count. */
static dcb_status check_header(const char *path, const npy_header *h, int64_t *size)
{
    if (h->descr_truncated || (strcmp(h->descr, "<f4") != 0 && strcmp(h->descr, "=f4") != 0)) {
        char d[48];
        printable(d, sizeof d, h->descr, strlen(h->descr));
        return bad(path, "dtype '%s%s' is not supported (need '<f4')", d,
                   h->descr_truncated ? "..." : "");
    }
    if (h->ndim > DCB_MAX_DIMS)
        return bad(path, "shape %s has %d dimensions (at most %d supported)",
                   h->shape_text, h->ndim, DCB_MAX_DIMS);
    int big = 0;
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] == 0)
            return bad(path, "zero-size dimension in shape %s: empty arrays "
                             "are not supported", h->shape_text);
        big += h->shape[i] > 1;
    }
    /* With at most one dim above 1 both orders lay out the same bytes. */
    if (h->fortran && big > 1)
        return bad(path, "fortran_order True is not supported (shape %s)",
                   h->shape_text);
    uint64_t limit = (uint64_t)INT64_MAX / sizeof(float);
    if ((uint64_t)(SIZE_MAX / sizeof(float)) < limit)
        limit = (uint64_t)(SIZE_MAX / sizeof(float));
    uint64_t n = 1;
    for (int i = 0; i < h->ndim; i++) {
        if ((uint64_t)h->shape[i] > limit / n)
            return bad(path, "shape %s overflows: too many elements", h->shape_text);
        n *= (uint64_t)h->shape[i];
    }
    *size = (int64_t)n;
    return DCB_OK;
}

/* A zeroed tensor of the header's shape, or NULL with the message (naming
 * the file) set. */
static dcb_tensor *new_tensor(const char *path, const npy_header *h)
{
    dcb_tensor *t = dcb_tensor_new(h->ndim, h->shape);
    if (!t) {
        char why[200];
        snprintf(why, sizeof why, "%s", dcb_last_error());
        dcb_fail(DCB_OUT_OF_MEMORY, "%s: %s", path, why);
    }
    return t;
}

static dcb_status stream_short(const char *path, const npy_header *h, uint64_t bytes, size_t got)
{
    return bad(path, "data truncated: the header declares %llu bytes, got %zu before the end "
                     "of the stream (shape %s)", (unsigned long long)bytes, got, h->shape_text);
}

/* The data of a stream whose size is not known in advance (a pipe, a FIFO,
 * a character device): read in chunks into a buffer that starts at
 * NPY_CHUNK and doubles only as data arrives, so that a header that declares
 * gigabytes and a stream that ends early cost one chunk, not the declared
 * size. The tensor is made once all the data is there, and filled from the
 * buffer (both exist for that copy: twice the data, for a whole stream). */
static dcb_status read_stream_data(const char *path, FILE *f, const npy_header *h,
                                   uint64_t bytes, dcb_tensor **out)
{
    size_t cap = NPY_CHUNK, got = 0;
    char *buf = malloc(cap);
    if (!buf)
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for a %zu-byte read buffer", path, cap);
    dcb_status st = DCB_OK;
    for (;;) {
        if (got == cap) {
            if ((uint64_t)cap == bytes)
                break;
            size_t ncap = (uint64_t)cap * 2 < bytes ? cap * 2 : (size_t)bytes;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                st = dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory growing the read buffer to %zu "
                                                 "bytes (%zu read of %llu declared)", path, ncap, got,
                              (unsigned long long)bytes);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - got > NPY_CHUNK ? NPY_CHUNK : cap - got, n;
        if ((st = read_some(path, f, buf + got, want, &n)) != DCB_OK)
            break;
        got += n;
        if (n < want) {
            st = stream_short(path, h, bytes, got);
            break;
        }
    }
    if (st == DCB_OK) {
        dcb_tensor *t = new_tensor(path, h);
        if (t) {
            memcpy(t->data, buf, got);
            *out = t;
        } else {
            st = DCB_OUT_OF_MEMORY;
        }
    }
    free(buf);
    return st;
}

/* Reads a .npy from f. regular: f is a regular file of file_size bytes,
 * checked against the header before any allocation; otherwise a stream
 * whose size shows only at its end (read_stream_data). */
static dcb_status load_from(const char *path, FILE *f, int regular, uint64_t file_size,
                            dcb_tensor **out)
{
    unsigned char pre[8];
    size_t n;
    dcb_status st = read_some(path, f, pre, 8, &n);
    if (st != DCB_OK)
        return st;
    if (n < 6 && memcmp(pre, NPY_MAGIC, n) == 0)
        return bad(path, "truncated magic: file has only %zu bytes", n);
    if (n < 6 || memcmp(pre, NPY_MAGIC, 6) != 0)
        return bad(path, "bad magic (not a .npy file)");
    if (n < 8)
        return bad(path, "truncated header: no format version");
    unsigned major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return bad(path, "unsupported format version %u.%u (need 1.0, 2.0 or 3.0)",
                   major, minor);

    size_t lenbytes = major == 1 ? 2 : 4;
    unsigned char lb[4];
    if ((st = read_some(path, f, lb, lenbytes, &n)) != DCB_OK)
        return st;
    if (n < lenbytes)
        return bad(path, "truncated header length (%zu of %zu bytes)", n, lenbytes);
    uint32_t hlen = (uint32_t)lb[0] | (uint32_t)lb[1] << 8;
    if (lenbytes == 4)
        hlen |= (uint32_t)lb[2] << 16 | (uint32_t)lb[3] << 24;
    if (hlen > NPY_MAX_HEADER)
        return bad(path, "header length %lu is too large (limit 1 MiB)",
                   (unsigned long)hlen);

    char *text = malloc((size_t)hlen + 1);
    if (!text)
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory for the header", path);
    st = read_some(path, f, text, hlen, &n);
    if (st == DCB_OK && n < hlen)
        st = bad(path, "truncated header: expected %lu bytes, found %zu", (unsigned long)hlen, n);
    if (st != DCB_OK) {
        free(text);
        return st;
    }
    text[hlen] = '\0';
    npy_header h;
    char perrmsg[200];
    int prc = parse_header(text, hlen, &h, perrmsg, sizeof perrmsg);
    free(text);
    if (prc != 0)
        return bad(path, "%s", perrmsg);

    int64_t size = 0;
    st = check_header(path, &h, &size);
    if (st != DCB_OK)
        return st;
    uint64_t bytes = (uint64_t)size * sizeof(float);

    /* Compare with the file's size before allocating, so that a header that
     * lies about the shape cannot make us allocate gigabytes. */
    if (regular) {
        uint64_t off = 8 + lenbytes + hlen;
        uint64_t have = file_size > off ? file_size - off : 0;
        if (have < bytes)
            return bad(path, "data truncated: expected %llu bytes, found %llu",
                       (unsigned long long)bytes, (unsigned long long)have);
        if (have > bytes)
            return bad(path, "trailing bytes after data: header says %lld elements "
                             "(%llu bytes), file has %llu", (long long)size,
                       (unsigned long long)bytes, (unsigned long long)have);
    }

    /* A stream is read before its tensor is made: what the tensor would
     * refuse (dcb_max_bytes) is refused before any of it is read. */
    if (!regular && bytes > dcb_max_bytes()) {
        char b1[32], b2[32];
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: shape %s needs %s, above the limit of %s (DCB_MAX_BYTES)",
                        path, h.shape_text, dcb_bytes_str((double)bytes, b1, sizeof b1),
                        dcb_bytes_str((double)dcb_max_bytes(), b2, sizeof b2));
    }
    dcb_tensor *t = NULL;
    if (regular || bytes <= NPY_CHUNK) {
        if (!(t = new_tensor(path, &h)))
            return DCB_OUT_OF_MEMORY;
        st = read_some(path, f, t->data, (size_t)bytes, &n);
        if (st == DCB_OK && n < bytes)
            st = regular
                     ? bad(path, "data truncated: expected %llu bytes, found %zu",
                           (unsigned long long)bytes, n)
                     : stream_short(path, &h, bytes, n);
    } else {
        st = read_stream_data(path, f, &h, bytes, &t);
    }
    if (st == DCB_OK && fgetc(f) != EOF)
        st = bad(path, "trailing bytes after data: header says %lld elements", (long long)size);
    if (st != DCB_OK) {
        dcb_tensor_free(t);
        return st;
    }
    *out = t;
    return DCB_OK;
}

static dcb_status load_stream(const char *path, FILE *f, dcb_tensor **out)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        return io_err(path, "cannot stat", errno);
    if (S_ISDIR(sb.st_mode))
        return io_err(path, "cannot read", EISDIR);
    return load_from(path, f, S_ISREG(sb.st_mode), (uint64_t)sb.st_size, out);
}

/* dcb_internal.h: dcb_npy_load from an open stream of unknown size. */
dcb_status dcb_npy_load_stream(const char *name, FILE *f, dcb_tensor **out)
{
    if (out)
        *out = NULL;
    if (!name || !f || !out)
        return dcb_fail(DCB_INVALID_ARGUMENT, "npy_load_stream: %s is NULL",
                        !name ? "name" : !f ? "stream" : "out");
    if (!little_endian_host())
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s: .npy needs a little-endian host", name);
    return load_from(name, f, 0, 0, out);
}

dcb_status dcb_npy_load(const char *path, dcb_tensor **out)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return dcb_fail(DCB_INVALID_ARGUMENT, "npy_load: %s is NULL",
                        path ? "out" : "path");
    if (!little_endian_host())
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s: .npy needs a little-endian host", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return io_err(path, "cannot open", errno);
    dcb_status st = load_stream(path, f, out);
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------ save */

/* Header bytes as NumPy writes them: magic, version, length, dict, spaces up
 * to a multiple of NPY_ALIGN, '\n'. Returns the length, 0 if it cannot fit. */
static size_t build_header(const dcb_tensor *t, unsigned char *buf, size_t cap)
{
    char dict[320];
    char shape[200];
    size_t sl = 0;
    shape[sl++] = '(';
    for (int i = 0; i < t->ndim; i++)
        sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%lld",
                               i ? ", " : "", (long long)t->shape[i]);
    if (t->ndim == 1)
        shape[sl++] = ',';
    shape[sl++] = ')';
    shape[sl] = '\0';
    int dl = snprintf(dict, sizeof dict,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t growth = 0;
    if (t->ndim > 0) {
        char first[24];
        int fl = snprintf(first, sizeof first, "%lld", (long long)t->shape[0]);
        growth = NPY_GROWTH_DIGITS > fl ? (size_t)(NPY_GROWTH_DIGITS - fl) : 0;
    }
    size_t body = (size_t)dl + growth + 1;          /* dict, spaces, '\n' */
    /* NumPy pads with 1..64 spaces, never 0, and moves to version 2.0 only
     * when the padded length does not fit version 1.0's 16 bits. */
    size_t prefix = 10;
    size_t pad = NPY_ALIGN - (prefix + body) % NPY_ALIGN;
    if (body + pad > 65535) {
        prefix = 12;
        pad = NPY_ALIGN - (prefix + body) % NPY_ALIGN;
    }
    size_t total = prefix + body + pad;
    if (total > cap)
        return 0;
    size_t hlen = total - prefix;
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = prefix == 10 ? 1 : 2;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8 & 0xff);
    if (prefix == 12) {
        buf[10] = (unsigned char)(hlen >> 16 & 0xff);
        buf[11] = (unsigned char)(hlen >> 24 & 0xff);
    }
    memcpy(buf + prefix, dict, (size_t)dl);
    memset(buf + prefix + dl, ' ', growth + pad);
    buf[total - 1] = '\n';
    return total;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, c, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A fresh file next to path. Not mkstemp: its mode 0600 would survive the
 * rename, while open(0666) lets the umask decide as for any new file. */
static int open_temp(const char *path, char *tmp, size_t cap)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^
                 (uint64_t)getpid() << 40 ^ (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t r = dcb_rand_u64(&s);
        char suf[7];
        for (int i = 0; i < 6; i++, r /= 62)
            suf[i] = al[r % 62];
        suf[6] = '\0';
        snprintf(tmp, cap, "%s.tmp%s", path, suf);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);   /* durability of the rename; best effort */
        close(fd);
    }
    free(dir);
}

dcb_status dcb_npy_save(const char *path, const dcb_tensor *t)
{
    if (!path || !t)
        return dcb_fail(DCB_INVALID_ARGUMENT, "npy_save: %s is NULL",
                        path ? "tensor" : "path");
    if (!path[0])
        return dcb_fail(DCB_INVALID_ARGUMENT, "npy_save: path is empty");
    if (!little_endian_host())
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s: .npy needs a little-endian host", path);
    if (t->ndim < 0 || t->ndim > DCB_MAX_DIMS)
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s: tensor has ndim=%d", path, t->ndim);
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 1 || n > INT64_MAX / t->shape[i])
            return dcb_fail(DCB_INVALID_ARGUMENT, "%s: tensor has dim %d = %lld",
                            path, i, (long long)t->shape[i]);
        n *= t->shape[i];
    }
    if (n != t->size || !t->data)
        return dcb_fail(DCB_INVALID_ARGUMENT,
                        "%s: tensor is inconsistent (size %lld, shape product %lld%s)",
                        path, (long long)t->size, (long long)n,
                        t->data ? "" : ", no data");

    unsigned char hdr[512];
    size_t hl = build_header(t, hdr, sizeof hdr);
    if (hl == 0)
        return dcb_fail(DCB_INVALID_ARGUMENT, "%s: header does not fit", path);

    size_t cap = strlen(path) + 16;
    char *tmp = malloc(cap);
    if (!tmp)
        return dcb_fail(DCB_OUT_OF_MEMORY, "%s: out of memory", path);
    int fd = open_temp(path, tmp, cap);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return io_err(path, "cannot create a temporary file to save", e);
    }
    const char *what = NULL;
    if (write_all(fd, hdr, hl) != 0 ||
        write_all(fd, t->data, (size_t)t->size * sizeof(float)) != 0)
        what = "cannot write";
    else if (fsync(fd) != 0)
        what = "cannot sync";
    int e = errno;
    if (close(fd) != 0 && !what) {
        what = "cannot close";
        e = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "cannot rename the temporary file over it";
        e = errno;
    }
    if (what) {
        unlink(tmp);
        free(tmp);
        return io_err(path, what, e);
    }
    free(tmp);
    sync_parent_dir(path);
    return DCB_OK;
}
