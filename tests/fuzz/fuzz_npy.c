/* fuzz_npy.c — libFuzzer target for the .npy reader (dcb_npy_load).
 *
 * The input is a .npy file. It is loaded twice: as a regular file (a memory
 * file, memfd, opened by the reader through /proc/self/fd/N, so no disk),
 * where the reader checks the header against the file's size before it
 * allocates, and as a stream of unknown size (an fmemopen stream through
 * dcb_npy_load_stream, the path a pipe takes), where it reads in growing
 * chunks. Both must agree: the same status, and on success the same shape
 * and the file's bytes as data. A failure must be DCB_INVALID_FILE (or, for
 * the stream only, DCB_OUT_OF_MEMORY when its header declares more than
 * dcb_max_bytes(), set to 64 MiB here, which a stream is refused for before
 * it is read, while a regular file is first found short), leave *out NULL
 * and name the file; a success must be consistent (size = the
 * product of the shape, header + data = the file) and survive a save and a
 * load unchanged. Anything else aborts, which libFuzzer reports.
 *
 * Build and run: tests/fuzz/run_fuzz.sh 60 fuzz_npy (builds into
 * build-fuzz/, runs on a copy of tests/fuzz/corpus/fuzz_npy with
 * tests/fuzz/npy.dict). By hand, from the repository root:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -Ikernels tests/fuzz/fuzz_npy.c kernels/npy.c kernels/tensor.c kernels/status.c \
 *       -lm -o /tmp/fuzz_npy
 *   /tmp/fuzz_npy -seed_corpus=1 DIR   writes the seed corpus into DIR and exits
 *   /tmp/fuzz_npy -max_total_time=60 -max_len=4096 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
 *       -dict=tests/fuzz/npy.dict CORPUS_DIR
 * -malloc_limit_mb makes any header-driven allocation above the limit a
 * reported bug: with at most max_len bytes of data, none is legitimate.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dcb_internal.h"   /* dcb_npy_load_stream */
#include "fuzz_seeds.h"

static char g_tmpdir[256];   /* for the save/load round trip */

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_npy: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* The offset of the data: 8 + length field + header length (from the
 * input's prefix, which a successful load has validated). */
static size_t data_offset(const uint8_t *p, size_t n)
{
    if (n < 10)
        die("a load succeeded on fewer than 10 bytes", NULL);
    if (p[6] == 1)
        return 10 + ((size_t)p[8] | (size_t)p[9] << 8);
    if (n < 12)
        die("a version 2/3 load succeeded on fewer than 12 bytes", NULL);
    return 12 + ((size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24);
}

/* A stream whose header declares more than dcb_max_bytes() is refused
 * before it is read (DCB_OUT_OF_MEMORY naming DCB_MAX_BYTES); a regular file
 * is first compared with its size. */
static int over_limit(dcb_status st)
{
    return st == DCB_OUT_OF_MEMORY && strstr(dcb_last_error(), "DCB_MAX_BYTES") != NULL;
}

/* A load's result must be a clean failure or a tensor that is the file. */
static void check_result(const char *how, const char *name, dcb_status st, const dcb_tensor *t,
                         const uint8_t *p, size_t n, int limit_ok)
{
    if (st != DCB_OK) {
        const char *m = dcb_last_error();
        if (st != DCB_INVALID_FILE && !(limit_ok && over_limit(st))) {
            fprintf(stderr, "fuzz_npy: %s: status %s: %s\n", how, dcb_status_name(st), m);
            abort();
        }
        if (t)
            die(how, "a failed load left *out set");
        if (!m || strncmp(m, name, strlen(name)) != 0 || strncmp(m + strlen(name), ": ", 2) != 0) {
            fprintf(stderr, "fuzz_npy: %s: message does not start with the file name %s: %s\n", how,
                    name, m ? m : "(null)");
            abort();
        }
        return;
    }
    if (!t || !t->data)
        die(how, "a successful load gave no tensor");
    if (t->ndim < 0 || t->ndim > DCB_MAX_DIMS)
        die(how, "ndim out of range");
    int64_t size = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 1)
            die(how, "a dimension below 1");
        size *= t->shape[i];
    }
    if (size != t->size)
        die(how, "size is not the product of the shape");
    size_t off = data_offset(p, n);
    if (off > n || n - off != (size_t)t->size * sizeof(float))
        die(how, "header + data is not the file");
    if (memcmp(t->data, p + off, (size_t)t->size * sizeof(float)) != 0)
        die(how, "the data is not the file's bytes");
}

/* A memory file holding p[0..n): its fd, or -1. */
static int mem_file(const uint8_t *p, size_t n)
{
    int fd = memfd_create("npy", 0);
    if (fd < 0)
        return -1;
    if (n && write(fd, p, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* dcb_npy_save writes what dcb_npy_load reads back unchanged. */
static void round_trip(const dcb_tensor *t)
{
    if (!g_tmpdir[0])
        return;
    char path[300];
    snprintf(path, sizeof path, "%s/rt.npy", g_tmpdir);
    if (dcb_npy_save(path, t) != DCB_OK)
        die("cannot save a loaded tensor", dcb_last_error());
    dcb_tensor *u = NULL;
    if (dcb_npy_load(path, &u) != DCB_OK)
        die("cannot load a saved tensor", dcb_last_error());
    if (u->ndim != t->ndim || !dcb_shape_equal(u, t->ndim, t->shape) ||
        memcmp(u->data, t->data, (size_t)t->size * sizeof(float)) != 0)
        die("save + load changed the tensor", NULL);
    dcb_tensor_free(u);
    unlink(path);
}

static void remove_tmpdir(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/rt.npy", g_tmpdir);
    unlink(path);
    rmdir(g_tmpdir);
}

/* ------------------------------------------------------------ seeds */

static void put(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* A header (version major, dict padded with spaces and '\n' to 64 bytes)
 * followed by nbytes of data (a ramp). */
static void put_npy(const char *dir, const char *name, int major, const char *dict, size_t nbytes)
{
    uint8_t b[1024];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hl = dl + 1 + (64 - (pre + dl + 1) % 64) % 64;
    if (pre + hl + nbytes > sizeof b)
        return;
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    for (size_t i = 8; i < pre; i++)
        b[i] = (uint8_t)(hl >> 8 * (i - 8));
    memcpy(b + pre, dict, dl);
    memset(b + pre + dl, ' ', hl - dl);
    b[pre + hl - 1] = '\n';
    for (size_t i = 0; i < nbytes; i++)
        b[pre + hl + i] = (uint8_t)(i * 37 + 11);
    put(dir, name, b, pre + hl + nbytes);
}

/* The seed corpus (tests/fuzz/corpus/fuzz_npy): files dcb_npy_save writes,
 * the header variants NumPy writes or reads, and a few near misses. */
static void write_seeds(const char *dir)
{
    static const int64_t shapes[][4] = {{1, 0, 0, 0}, {2, 3, 0, 0}, {1, 2, 3, 4}, {5, 0, 0, 0}};
    static const int nd[] = {1, 2, 4, 0};
    for (int k = 0; k < 4; k++) {
        dcb_tensor *t = dcb_tensor_new(nd[k], shapes[k]);
        if (!t)
            continue;
        dcb_tensor_uniform(t, (uint64_t)k, -2, 2);
        char path[4096];
        snprintf(path, sizeof path, "%s/saved_%dd.npy", dir, nd[k]);
        dcb_npy_save(path, t);
        dcb_tensor_free(t);
    }
#define H(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"
    put_npy(dir, "v2.npy", 2, H("(3,)"), 12);
    put_npy(dir, "v3.npy", 3, H("(2, 1)"), 8);
    put_npy(dir, "eq_f4.npy", 1, "{'descr': '=f4', 'fortran_order': False, 'shape': (2,), }", 8);
    put_npy(dir, "dq.npy", 1, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,)}", 4);
    put_npy(dir, "py2_long.npy", 1, H("(2L, 1L)"), 8);
    put_npy(dir, "fortran_vec.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3), }", 12);
    put_npy(dir, "six_d.npy", 1, H("(1, 2, 1, 1, 2, 1)"), 16);
    put_npy(dir, "zero_d.npy", 1, H("()"), 4);
    put_npy(dir, "unpadded_dict.npy", 1, "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", 8);
    put_npy(dir, "huge_declared.npy", 1, H("(500000000,)"), 0);
    put_npy(dir, "stream_growth.npy", 1, H("(300000,)"), 64);
    put_npy(dir, "f8.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8);
#undef H
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_write_seeds_if_asked(*argc, *argv, write_seeds);
    /* A limit that headers can pass (the data of a file stays below it). */
    dcb_set_max_bytes((size_t)64 << 20);
    /* dcb_npy_save fsyncs: in memory (/dev/shm) where there is one. */
    const char *tmp = getenv("FUZZ_TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/fuzz_npy_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_tmpdir))
        atexit(remove_tmpdir);
    else
        g_tmpdir[0] = 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As a regular file. */
    dcb_tensor *a = NULL;
    dcb_status sa = DCB_INVALID_FILE;
    char name[64] = "";
    int fd = mem_file(data, size);
    if (fd < 0)
        return 0;
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    sa = dcb_npy_load(name, &a);
    check_result("regular file", name, sa, a, data, size, 0);
    close(fd);

    /* As a stream of unknown size (fmemopen needs at least one byte). */
    if (size > 0) {
        FILE *f = fmemopen((void *)data, size, "rb");
        if (f) {
            dcb_tensor *b = NULL;
            dcb_status sb = dcb_npy_load_stream("stream.npy", f, &b);
            fclose(f);
            check_result("stream", "stream.npy", sb, b, data, size, 1);
            const int limit = over_limit(sb);
            if (limit ? sa == DCB_OK : sa != sb) {
                fprintf(stderr, "fuzz_npy: regular file %s, stream %s (%s)\n", dcb_status_name(sa),
                        dcb_status_name(sb), dcb_last_error());
                abort();
            }
            dcb_tensor_free(b);
        }
    }
    if (a)
        round_trip(a);
    dcb_tensor_free(a);
    return 0;
}
